import Foundation
import Testing
@testable import MirageKernels

/// Every element-wise kernel against a straightforward f64 reference on random data of odd sizes.
@Suite struct ElementwiseTests {
    static let sizes = [1, 7, 16, 17, 33, 100, 896]

    func check(_ actual: [Float], _ expected: [Double], tolerance: Double, scale: Double? = nil,
               _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(actual.count == expected.count, sourceLocation: sourceLocation)
        var worst = 0.0, at = 0
        for (k, (a, e)) in zip(actual, expected).enumerated() {
            let error = abs(Double(a) - e) / (scale ?? max(1, abs(e)))
            if !(error <= worst) { worst = error.isNaN ? .infinity : error; at = k }
        }
        #expect(worst <= tolerance, "\(what): worst error \(worst) at \(at) (\(actual[at]) vs \(expected[at]))",
                sourceLocation: sourceLocation)
    }

    @Test(arguments: sizes) func dotAxpyAdd(count: Int) {
        var random = SeededRandom(seed: UInt64(count))
        let a = random.floats(count), b = random.floats(count)
        let dot = Kernels.dot(a, b, count: count)
        let reference = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let magnitude = zip(a, b).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
        #expect(abs(Double(dot) - reference) <= 1e-6 * magnitude + 1e-30)

        var y = b
        Kernels.axpy(0.37, a, &y, count: count)
        check(y, zip(a, b).map { 0.37 * Double($0) + Double($1) }, tolerance: 1e-6, "axpy")

        var sum = [Float](repeating: 0, count: count)
        Kernels.add(a, b, count: count, into: &sum)
        check(sum, zip(a, b).map { Double($0) + Double($1) }, tolerance: 1e-7, "add")
    }

    @Test(arguments: sizes) func norms(count: Int) {
        var random = SeededRandom(seed: UInt64(100 + count))
        // A common offset makes a one-pass variance lose digits; the kernel must not.
        let x = random.floats(count, in: 2.5...3.5)
        let weight = random.floats(count), bias = random.floats(count)
        let eps: Float = 1e-6
        var y = [Float](repeating: 0, count: count)

        Kernels.rmsNorm(x, weight: weight, count: count, eps: eps, into: &y)
        let meanSquare = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(count)
        let inverse = 1 / (meanSquare + Double(eps)).squareRoot()
        check(y, zip(x, weight).map { Double($0) * inverse * Double($1) }, tolerance: 2e-6, "rmsNorm")

        Kernels.layerNorm(x, weight: weight, bias: bias, count: count, eps: eps, into: &y)
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(count)
        let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(count)
        let scale = 1 / (variance + Double(eps)).squareRoot()
        let expected = (0..<count).map { (Double(x[$0]) - mean) * scale * Double(weight[$0]) + Double(bias[$0]) }
        // Normalised values reach |x − mean|/σ ≈ 1.7 before the weight: allow a few ulps of that.
        check(y, expected, tolerance: count == 1 ? 1e-6 : 2e-5, "layerNorm")
    }

    @Test(arguments: sizes) func softmaxMatchesReference(count: Int) {
        var random = SeededRandom(seed: UInt64(200 + count))
        var x = random.floats(count, in: -30...30)
        if count > 3 { x[1] = -.infinity; x[count - 1] = -.infinity } // masked positions
        let maximum = Double(x.max()!)
        let exps = x.map { $0 == -.infinity ? 0 : Foundation.exp(Double($0) - maximum) }
        let total = exps.reduce(0, +)
        Kernels.softmax(&x, count: count)
        check(x, exps.map { $0 / total }, tolerance: 3e-7, scale: 1, "softmax (absolute)")
        for (k, e) in exps.enumerated() where e > 1e-30 {
            #expect(abs(Double(x[k]) - e / total) <= 1e-5 * e / total + 1e-37, "softmax relative at \(k)")
        }
        if count > 3 { #expect(x[1] == 0 && x[count - 1] == 0) }
    }

    @Test func expIsAccurateOverTheWholeRange() {
        var values: [Float] = stride(from: -100, through: 88, by: 0.0173).map { Float($0) }
        values += [0, -0.0, 1e-8, -1e-8, 88.3, -87.3, -.infinity]
        for start in stride(from: 0, to: values.count, by: 16) {
            let n = min(16, values.count - start)
            var lanes = F16x16(repeating: 0)
            for j in 0..<n { lanes[j] = values[start + j] }
            let result = exp16(lanes)
            for j in 0..<n {
                let v = values[start + j]
                let expected = v < -87.3 ? 0 : Foundation.exp(Double(v))
                let error = abs(Double(result[j]) - expected) / max(expected, 1e-38)
                #expect(error <= 4e-7, "exp(\(v)) = \(result[j]), expected \(expected)")
            }
        }
    }

    @Test(arguments: sizes) func activations(count: Int) {
        var random = SeededRandom(seed: UInt64(300 + count))
        var x = random.floats(count, in: -12...12)
        if count >= 7 { x[0] = 0; x[1] = 1e-3; x[2] = -1e-3; x[3] = 40; x[4] = -40 }
        let up = random.floats(count)

        var y = [Float](repeating: 0, count: count)
        Kernels.siluMul(gate: x, up: up, count: count, into: &y)
        check(y, zip(x, up).map { Double($0) / (1 + Foundation.exp(-Double($0))) * Double($1) },
              tolerance: 1e-6, "siluMul")

        let references: [GeluKind: (Double) -> Double] = [
            .erf: { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) },
            .tanh: { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) },
            .quick: { $0 / (1 + Foundation.exp(-1.702 * $0)) },
        ]
        for kind in GeluKind.allCases {
            var values = x
            Kernels.gelu(&values, count: count, approximation: kind)
            // A&S 7.1.26 errs by ≤ 1.5e-7 in erf, i.e. ≤ 7.5e-8·|x| in gelu: absolute 1e-6 at |x| ≤ 12.
            check(values, x.map { references[kind]!(Double($0)) }, tolerance: 1e-6, "gelu \(kind)")
        }
    }

    @Test func ropeRotatesPairsHalfApart() {
        let headDim = 64
        var random = SeededRandom(seed: 5)
        let inverse = (0..<(headDim / 2)).map { Float(pow(1_000_000.0, -2.0 * Double($0) / Double(headDim))) }
        for position in [0, 1, 17, 4095] {
            let original = random.floats(headDim)
            var x = original
            Kernels.ropeRotateHalf(&x, headDim: headDim, position: position, inverseFrequencies: inverse)
            var expected = [Double](repeating: 0, count: headDim)
            for j in 0..<(headDim / 2) {
                let angle = Double(Float(position) * inverse[j]) // formed in f32, as transformers does
                let a = Double(original[j]), b = Double(original[j + headDim / 2])
                expected[j] = a * cos(angle) - b * sin(angle)
                expected[j + headDim / 2] = b * cos(angle) + a * sin(angle)
            }
            check(x, expected, tolerance: 1e-6, scale: 1, "rope at \(position)")
        }
    }

    @Test func conversionsAreExact() {
        var random = SeededRandom(seed: 11)
        let count = 37
        let values = random.floats(count, in: -70000...70000) + [0, -0.0, 1, 65504, 1e-7, .infinity]
        var halves = [UInt16](repeating: 0, count: values.count)
        halves.withUnsafeMutableBytes { Kernels.convertF32ToF16(values, count: values.count, into: $0.baseAddress!) }
        var widened = [Float](repeating: 0, count: values.count)
        halves.withUnsafeBytes { Kernels.convertF16ToF32($0.baseAddress!, count: values.count, into: &widened) }
        for (k, v) in values.enumerated() {
            #expect(widened[k].bitPattern == Float(Float16(v)).bitPattern, "f16 of \(v)")
        }

        // bf16: round to nearest, ties to even; widening is exact.
        let cases: [(Float, UInt16)] = [(1, 0x3F80), (1.00390625, 0x3F80), (1.01171875, 0x3F82),
                                        (1.0078125, 0x3F81), (-2.5, 0xC020), (Float(bitPattern: 0x3F80_8001), 0x3F81)]
        var bf = [UInt16](repeating: 0, count: cases.count)
        bf.withUnsafeMutableBytes { Kernels.convertF32ToBF16(cases.map(\.0), count: cases.count, into: $0.baseAddress!) }
        #expect(bf == cases.map(\.1))
        var back = [Float](repeating: 0, count: values.count)
        let bits = values.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
        bits.withUnsafeBytes { Kernels.convertBF16ToF32($0.baseAddress!, count: values.count, into: &back) }
        for (k, v) in values.enumerated() {
            #expect(back[k].bitPattern == v.bitPattern & 0xFFFF_0000, "bf16 widening of \(v)")
        }
        var nan = [UInt16](repeating: 0, count: 1)
        nan.withUnsafeMutableBytes { Kernels.convertF32ToBF16([Float.nan], count: 1, into: $0.baseAddress!) }
        #expect(Float(bitPattern: UInt32(nan[0]) << 16).isNaN)
    }
}
