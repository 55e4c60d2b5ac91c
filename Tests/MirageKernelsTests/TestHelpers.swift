import Foundation
import MirageData
@testable import MirageKernels

/// Deterministic random numbers so failures reproduce: MirageData's SplitMix64.
typealias SeededRandom = SplitMix64

extension SplitMix64 {
    mutating func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &self) }
    }
}

/// A weight matrix in `format` built from f32 values, plus the exact f32 values it stores.
struct TestWeight {
    let matrix: WeightMatrix
    /// What the matrix holds, dequantised exactly (row-major rows × cols).
    let stored: [Float]

    init(rows: Int, cols: Int, format: WeightFormat, values: [Float], precision: Precision = .exact) {
        let buffer: AlignedBuffer
        switch format {
        case .f32, .q8:
            buffer = AlignedBuffer(byteCount: rows * cols * 4)
            values.withUnsafeBufferPointer { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: rows * cols * 4) }
        case .f16:
            buffer = AlignedBuffer(byteCount: rows * cols * 2)
            values.withUnsafeBufferPointer { Kernels.convertF32ToF16($0.baseAddress!, count: rows * cols, into: buffer.pointer) }
        case .bf16:
            buffer = AlignedBuffer(byteCount: rows * cols * 2)
            values.withUnsafeBufferPointer { Kernels.convertF32ToBF16($0.baseAddress!, count: rows * cols, into: buffer.pointer) }
        }
        let base = WeightMatrix(rows: rows, cols: cols, format: format == .q8 ? .f32 : format,
                                data: buffer.pointer, owner: buffer, precision: precision)
        let matrix = format == .q8 ? base.quantizedQ8() : base
        self.matrix = matrix
        var stored = [Float](repeating: 0, count: rows * cols)
        stored.withUnsafeMutableBufferPointer { out in
            for r in 0..<rows { matrix.copyRow(r, into: out.baseAddress! + r * cols) }
        }
        self.stored = stored
    }
}

/// y = x·Wᵀ + b in f64, and Σ|x||w| per output (the scale for rounding-error bounds).
func referenceLinear(x: [Float], n: Int, w: [Float], rows: Int, cols: Int, bias: [Float]?)
    -> (values: [Double], magnitudes: [Double]) {
    var y = [Double](repeating: 0, count: n * rows)
    var m = [Double](repeating: 0, count: n * rows)
    for i in 0..<n {
        for r in 0..<rows {
            var s = Double(bias?[r] ?? 0), a = abs(Double(bias?[r] ?? 0))
            for c in 0..<cols {
                let p = Double(x[i * cols + c]) * Double(w[r * cols + c])
                s += p
                a += abs(p)
            }
            y[i * rows + r] = s
            m[i * rows + r] = a
        }
    }
    return (y, m)
}
