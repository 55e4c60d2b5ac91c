import Testing
@testable import MirageKernels

/// q8 weights under `Precision.fast`: activations quantized per 32-input group as llama.cpp's Q8_0 and int8
/// dot products (AVX512-VNNI). Without VNNI, fast q8 computes as exact, which these tests also accept where
/// the result is the same by construction (exact integer sums), and skip where it is not.
@Suite struct Int8KernelTests {
    static let pool = WorkerPool(threadCount: 2)

    /// Scalar Q8_0 quantization of one row: per group of 32 d = max|x| / 127, q = x · (1/d) rounded to
    /// nearest even (0 for an all-zero group).
    static func referenceQuantize(_ x: ArraySlice<Float>) -> (values: [Int8], scales: [Float]) {
        let row = Array(x)
        var values: [Int8] = [], scales: [Float] = []
        for start in stride(from: 0, to: row.count, by: 32) {
            let group = row[start..<min(start + 32, row.count)]
            let d = group.map(abs).max()! / 127
            let inverse: Float = d != 0 ? 1 / d : 0
            scales.append(d)
            values += group.map { Int8(($0 * inverse).rounded(.toNearestOrEven)) }
        }
        return (values, scales)
    }

    /// `quantizeActivations` gives the scalar reference's values and scales exactly, on rows with a ragged
    /// last group, an all-zero group, ties (x / d = k + 0.5) and the parallel split (n > 16).
    @Test(arguments: [1, 5, 40])
    func activationsQuantizeAsQ8_0(n: Int) {
        let cols = 109
        var random = SeededRandom(seed: UInt64(n))
        var x = random.floats(n * cols, in: -3...3)
        for c in 32..<64 { x[c] = 0 }                        // row 0, group 1: all zero
        x[64] = 127; x[65] = 2.5; x[66] = -0.5; x[67] = 1.5  // row 0, group 2: d = 1, ties
        let packed = Kernels.quantizeActivations(x, n: n, cols: cols, pool: Self.pool)
        for i in 0..<n {
            let expected = Self.referenceQuantize(x[(i * cols)..<((i + 1) * cols)])
            let got = Kernels.quantizedActivation(packed, row: i)
            #expect(got.values == expected.values, "row \(i)")
            #expect(got.scales == expected.scales, "row \(i)")
        }
        let row0 = Kernels.quantizedActivation(packed, row: 0)
        #expect(Array(row0.values[64..<68]) == [127, 2, 0, 2] && row0.scales[1] == 0)
    }

    /// Integer weights with scale 1 and integer inputs whose groups each hold ±127 (so d_x = 1 and q = x):
    /// every output must be the exact integer dot product (all partial sums stay below 2²⁴, so the f32
    /// accumulation of the group sums is exact too), for the block layout and separate value/scale arrays,
    /// decode and large n, odd shapes, with bias.
    @Test(arguments: [1, 2, 3, 5, 6, 7, 8, 9, 13, 40, 200])
    func integerSumsAreExact(n: Int) {
        for (rows, cols) in [(37, 77), (70, 300), (3, 1000), (9, 64), (5, 33)] {
            var random = SeededRandom(seed: UInt64(rows * 31 + cols + n))
            let w = (0..<(rows * cols)).map { k in (k % cols) % 32 == 0 ? Float(127) : Float(Int.random(in: -127...127, using: &random)) }
            let x = (0..<(n * cols)).map { k in (k % cols) % 32 == 0 ? Float(-127) : Float(Int.random(in: -127...127, using: &random)) }
            let bias = (0..<rows).map { _ in Float(Int.random(in: -1000...1000, using: &random)) }
            var expected = [Float](repeating: 0, count: n * rows)
            for i in 0..<n {
                for r in 0..<rows {
                    var s = Int(bias[r])
                    for c in 0..<cols { s += Int(x[i * cols + c]) * Int(w[r * cols + c]) }
                    expected[i * rows + r] = Float(s)
                }
            }
            // The block layout (quantized from f32 weights: every group's max is 127, so its scale is 1).
            let blocks = TestWeight(rows: rows, cols: cols, format: .q8, values: w, precision: .fast)
            let integers = blocks.stored == w
            #expect(integers, "rows \(rows) cols \(cols): the quantized weights are not the integers")
            #expect(Kernels.usesInt8DotProducts(blocks.matrix) == Kernels.usesInt8DotProducts)
            var y = [Float](repeating: .nan, count: n * rows)
            Kernels.linear(x, n: n, weight: blocks.matrix, bias: bias, into: &y, pool: Self.pool)
            let exact = y == expected
            #expect(exact, "block layout rows \(rows) cols \(cols) n \(n)")
            // Separate arrays (values row-major, scales per group).
            let values = w.map { Int8($0) }, scales = [Float](repeating: 1, count: rows * WeightMatrix.q8GroupsPerRow(cols))
            values.withUnsafeBytes { v in
                scales.withUnsafeBufferPointer { s in
                    let matrix = WeightMatrix(rows: rows, cols: cols, q8Values: v.baseAddress!, scales: s.baseAddress!,
                                              owner: nil).withPrecision(.fast)
                    var y2 = [Float](repeating: .nan, count: n * rows)
                    Kernels.linear(x, n: n, weight: matrix, bias: bias, into: &y2, pool: Self.pool)
                    let exact2 = y2 == expected
                    #expect(exact2, "separate arrays rows \(rows) cols \(cols) n \(n)")
                }
            }
        }
    }

    /// Random weights and inputs: the kernel against a float64 scalar computation of the same quantized
    /// arithmetic (Σ_g d_w·d_x·Σ q·w over the inputs as quantized by `quantizeActivations`), within f32
    /// rounding of the group terms (1e-5 of Σ_g |d_w·d_x|·Σ|q·w|); packing once and reusing the packed
    /// input gives bit-identical outputs; an output does not depend on n (the first inputs alone).
    @Test(arguments: [1, 4, 5, 6, 25, 200])
    func kernelMatchesScalarQuantizedReference(n: Int) throws {
        try #require(Kernels.usesInt8DotProducts, "this CPU has no AVX512-VNNI: fast q8 computes as exact")
        for (rows, cols) in [(37, 77), (70, 300), (5, 1700)] {
            var random = SeededRandom(seed: UInt64(rows + cols * 7 + n))
            let weight = TestWeight(rows: rows, cols: cols, format: .q8, values: random.floats(rows * cols), precision: .fast)
            let m = weight.matrix
            let x = random.floats(n * cols, in: -2...2)
            let packed = Kernels.quantizeActivations(x, n: n, cols: cols, pool: Self.pool)
            var y = [Float](repeating: .nan, count: n * rows), reused = y
            Kernels.linear(x, n: n, weight: m, bias: nil, into: &y, pool: Self.pool)
            Kernels.linear(packed, weight: m, bias: nil, into: &reused, pool: Self.pool)
            #expect(y == reused)
            var worst = 0.0
            for i in 0..<n {
                let q = Kernels.quantizedActivation(packed, row: i)
                for r in 0..<rows {
                    var s = 0.0, magnitude = 0.0
                    for g in 0..<WeightMatrix.q8GroupsPerRow(cols) {
                        var integer = 0, absolute = 0
                        for c in (g * 32)..<min(cols, g * 32 + 32) {
                            let p = Int(q.values[c]) * Int(m.q8Value(row: r, column: c))
                            integer += p
                            absolute += abs(p)
                        }
                        let d = Double(m.q8Scale(row: r, group: g)) * Double(q.scales[g])
                        s += d * Double(integer)
                        magnitude += abs(d) * Double(absolute)
                    }
                    worst = max(worst, abs(Double(y[i * rows + r]) - s) / max(magnitude, .leastNormalMagnitude))
                }
            }
            #expect(worst <= 1e-5, "rows \(rows) cols \(cols) n \(n): \(worst)")
            let fewer = max(1, n / 3)
            var part = [Float](repeating: .nan, count: fewer * rows)
            Kernels.linear(Array(x[0..<(fewer * cols)]), n: fewer, weight: m, bias: nil, into: &part, pool: Self.pool)
            #expect(part == Array(y[0..<(fewer * rows)]), "rows \(rows) cols \(cols): the first \(fewer) of \(n) inputs differ")
        }
    }

    /// 5 or 6 inputs as one tile (rows taking turns over the pair's weights) give bit for bit what two tiles
    /// (3 + 2, 3 + 3, the earlier schedule) and one input at a time give, on rows with a ragged last pair
    /// (cols 77: a partial group; 96: a missing second group), whole pairs only (128), a partial tile of rows
    /// (37 = 9·4 + 1) and bias.
    @Test(arguments: [5, 6])
    func wideTilesMatchSplitTilesAndSingleInputs(n: Int) throws {
        try #require(Kernels.usesInt8DotProducts, "this CPU has no AVX512-VNNI: fast q8 computes as exact")
        defer { Kernels.setInt8WideTiles(true) }
        for (rows, cols) in [(37, 77), (12, 96), (41, 128), (70, 300)] {
            var random = SeededRandom(seed: UInt64(rows * 13 + cols + n))
            let m = TestWeight(rows: rows, cols: cols, format: .q8, values: random.floats(rows * cols), precision: .fast).matrix
            let x = random.floats(n * cols, in: -2...2), bias = random.floats(rows)
            var wide = [Float](repeating: .nan, count: n * rows), split = wide
            Kernels.setInt8WideTiles(true)
            Kernels.linear(x, n: n, weight: m, bias: bias, into: &wide, pool: Self.pool)
            Kernels.setInt8WideTiles(false)
            Kernels.linear(x, n: n, weight: m, bias: bias, into: &split, pool: Self.pool)
            Kernels.setInt8WideTiles(true)
            #expect(wide == split, "rows \(rows) cols \(cols) n \(n): one tile differs from two")
            for i in 0..<n {
                var one = [Float](repeating: .nan, count: rows)
                Kernels.linear(Array(x[(i * cols)..<((i + 1) * cols)]), n: 1, weight: m, bias: bias, into: &one, pool: Self.pool)
                #expect(one == Array(wide[(i * rows)..<((i + 1) * rows)]), "rows \(rows) cols \(cols): input \(i) of \(n) differs alone")
            }
        }
    }
}
