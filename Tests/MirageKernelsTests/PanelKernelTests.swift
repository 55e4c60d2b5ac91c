import Foundation
import Testing
@testable import MirageKernels

/// The small-M panel kernel (PanelKernel.swift): every output is one chain of fused multiply-adds in input order,
/// then the bias, so it equals a scalar loop bit for bit, whatever the row groups (⌈n/6⌉), the 128-input blocks,
/// a ragged last panel (rows not a multiple of 64) or the threads.
@Suite struct PanelKernelTests {
    /// (Σ_c fma in order from 0) + bias, one output at a time.
    static func scalarFMA(x: [Float], n: Int, w: [Float], rows: Int, cols: Int, bias: [Float]?) -> [Float] {
        var y = [Float](repeating: 0, count: n * rows)
        for i in 0..<n {
            for r in 0..<rows {
                var sum: Float = 0
                for c in 0..<cols { sum = sum.addingProduct(x[i * cols + c], w[r * cols + c]) }
                y[i * rows + r] = bias.map { sum + $0[r] } ?? sum
            }
        }
        return y
    }

    @Test(arguments: [WeightFormat.f32, .f16, .bf16], [1, 5, 6, 7, 13, 32, 41])
    func panelsEqualScalarFusedMultiplyAdds(format: WeightFormat, n: Int) {
        var random = SeededRandom(seed: UInt64(17 + n))
        // 70 rows: one whole panel and a ragged one of 6; 300 inputs: two whole 128-input blocks and a part.
        let rows = 70, cols = 300
        let weight = TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols))
        let x = random.floats(n * cols, in: -2...2)
        let bias = random.floats(rows)
        let panels = PanelWeights(weight.matrix, pool: WorkerPool(threadCount: 2))
        #expect(panels.byteCount == 2 * 64 * cols * 4)
        for (threads, withBias) in [(1, true), (2, true), (2, false)] {
            let pool = WorkerPool(threadCount: threads)
            var y = [Float](repeating: .nan, count: n * rows)
            x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in bias.withUnsafeBufferPointer { b in
                Kernels.linear(xb.baseAddress!, n: n, panels: panels, bias: withBias ? b.baseAddress : nil,
                               into: yb.baseAddress!, pool: pool)
            }}}
            let expected = Self.scalarFMA(x: x, n: n, w: weight.stored, rows: rows, cols: cols,
                                          bias: withBias ? bias : nil)
            let differing = zip(y, expected).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(format), n \(n), \(threads) threads, bias \(withBias): \(differing) outputs differ")
        }
    }

    /// Against the f64 reference: within the bound LinearTests allows the other paths in `Precision.exact`.
    @Test func panelsMatchFloat64Reference() {
        var random = SeededRandom(seed: 3)
        let rows = 192, cols = 768, n = 41
        let weight = TestWeight(rows: rows, cols: cols, format: .f16, values: random.floats(rows * cols))
        let x = random.floats(n * cols)
        let pool = WorkerPool(threadCount: 2)
        let panels = PanelWeights(weight.matrix, pool: pool)
        var y = [Float](repeating: 0, count: n * rows)
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
            Kernels.linear(xb.baseAddress!, n: n, panels: panels, bias: nil, into: yb.baseAddress!, pool: pool)
        }}
        let reference = referenceLinear(x: x, n: n, w: weight.stored, rows: rows, cols: cols, bias: nil)
        let worst = LinearTests.worstRelativeError(y, reference)
        // A sequential f32 sum of 768 products errs by ≲ 768·2⁻²⁴ ≈ 4.6e-5 of Σ|x·w| at worst, ~1e-7 typically.
        #expect(worst < 1e-5, "worst error \(worst) of Σ|x·w|")
    }
}
