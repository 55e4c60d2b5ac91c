import Testing
@testable import MirageKernels

@Suite struct LinearTests {
    static let pool = WorkerPool(threadCount: 2)

    /// Runs Kernels.linear and returns the worst error relative to Σ|x·w| per output.
    func worstRelativeError(rows: Int, cols: Int, n: Int, format: WeightFormat, withBias: Bool, seed: UInt64,
                            path: Kernels.LinearPath? = nil, precision: Precision = .exact) -> Double {
        let path = path ?? Kernels.path(n: n, format: format)
        var random = SeededRandom(seed: seed)
        let weight = TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols),
                                precision: precision)
        let x = random.floats(n * cols, in: -2...2)
        let bias = withBias ? random.floats(rows) : nil
        var y = [Float](repeating: .nan, count: n * rows)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                if let bias {
                    bias.withUnsafeBufferPointer { bp in
                        Kernels.linear(xp.baseAddress!, n: n, weight: weight.matrix, bias: bp.baseAddress!,
                                       into: yp.baseAddress!, pool: Self.pool, path: path)
                    }
                } else {
                    Kernels.linear(xp.baseAddress!, n: n, weight: weight.matrix, bias: nil,
                                   into: yp.baseAddress!, pool: Self.pool, path: path)
                }
            }
        }
        let reference = referenceLinear(x: x, n: n, w: weight.stored, rows: rows, cols: cols, bias: bias)
        return Self.worstRelativeError(y, reference)
    }

    /// The worst |y − reference| / Σ|x·w| over all outputs (NaN counts as infinite).
    static func worstRelativeError(_ y: [Float], _ reference: (values: [Double], magnitudes: [Double])) -> Double {
        var worst = 0.0
        for k in y.indices {
            let error = abs(Double(y[k]) - reference.values[k]) / reference.magnitudes[k]
            worst = max(worst, error.isNaN ? .infinity : error)
        }
        return worst
    }

    /// The paths `linear` picks (decode for n ≤ 8: 4-row quads and single rows for n = 1, the 4-row tile
    /// kernel with one or two input groups for 2…8; mid-n for 9 and 33), every format, every decode n, odd shapes,
    /// rows longer than 1024 inputs (512-input column blocks), bias on odd row counts. Bound: f32
    /// accumulation of ≤ 1700 products errs by ≲ cols·2⁻²⁴·Σ|xw| in the worst case; we allow 1e-5
    /// (typically 1e-7), for every format in `Precision.exact`. `Precision.fast` changes bf16 on the
    /// mid-n and GEMM paths (with AVX512-BF16), which rounds x to bf16 (relative 2⁻⁸ per product) → 4e-3,
    /// and q8 on every path (with AVX512-VNNI), which quantizes x to int8 per 32-input group (each input errs
    /// by at most max|x_group| / 254, here ≤ 2/254 of the mean |x| of 1) → 8e-3.
    @Test(arguments: WeightFormat.allCases, [1, 2, 3, 4, 5, 6, 7, 8, 9, 33])
    func linearMatchesFloat64Reference(format: WeightFormat, n: Int) {
        for precision in Precision.allCases {
            for (rows, cols) in [(37, 77), (70, 300), (129, 64), (3, 1000), (5, 1700)] {
                let error = worstRelativeError(rows: rows, cols: cols, n: n, format: format,
                                               withBias: rows % 2 == 1, seed: UInt64(rows * 7919 + cols * 31 + n),
                                               precision: precision)
                let bound = Self.bound(format: format, precision: precision, n: n)
                #expect(error <= bound, "format \(format) \(precision) n \(n) rows \(rows) cols \(cols): \(error)")
            }
        }
    }

    /// The error bound of `worstRelativeError` for a format, precision and n (see above).
    static func bound(format: WeightFormat, precision: Precision, n: Int,
                      path: Kernels.LinearPath? = nil) -> Double {
        guard precision == .fast else { return 1e-5 }
        if format == .bf16 && n > Kernels.decodeMaxRows && Kernels.usesBF16DotProducts { return 4e-3 }
        // The f16 GEMM (fast f16 on the GEMM path, `linear`'s choice unless `path` forces one).
        if format == .f16 && Kernels.usesF16DotProducts && (path ?? Kernels.path(n: n, format: .f16)) == .gemm { return 2e-3 }
        if format == .q8 && Kernels.usesInt8DotProducts { return 8e-3 }
        return 1e-5
    }

    /// `Precision.fast` on bf16 weights really takes the bf16 dot products on the mid-n and GEMM paths (its
    /// error is that of x rounded to bf16, far above f32 rounding), and only there; q8 weights take int8
    /// dot products on every path (error of x quantized to int8); f16 weights take the f16 GEMM on the GEMM path
    /// where AVX512-FP16 pays (`usesF16DotProducts`: x rounded to f16, f16 sums of 64 products); decode (n ≤ 8)
    /// of bf16 and every other format and path compute bit-identically in both precisions.
    @Test(arguments: [5, 40, 200])
    func fastPrecisionChangesOnlyDotProductPaths(n: Int) {
        let rows = 70, cols = 300
        for format in WeightFormat.allCases {
            let exact = worstRelativeError(rows: rows, cols: cols, n: n, format: format, withBias: true, seed: 9,
                                           precision: .exact)
            let fast = worstRelativeError(rows: rows, cols: cols, n: n, format: format, withBias: true, seed: 9,
                                          precision: .fast)
            if format == .bf16 && n > Kernels.decodeMaxRows && Kernels.usesBF16DotProducts {
                #expect(exact <= 1e-5 && fast > 1e-4 && fast <= 4e-3, "bf16 n \(n): exact \(exact), fast \(fast)")
            } else if format == .f16 && Kernels.path(n: n, format: .f16) == .gemm && Kernels.usesF16DotProducts {
                #expect(exact <= 1e-5 && fast > 1e-5 && fast <= 2e-3, "f16 n \(n): exact \(exact), fast \(fast)")
            } else if format == .q8 && Kernels.usesInt8DotProducts {
                #expect(exact <= 1e-5 && fast > 1e-4 && fast <= 8e-3, "q8 n \(n): exact \(exact), fast \(fast)")
            } else {
                #expect(exact == fast, "format \(format) n \(n): exact \(exact), fast \(fast)")
            }
        }
    }

    /// f16 → bf16 at load (`--precision fast` on f16 checkpoints): every weight is the f16 value rounded to
    /// nearest even bf16, i.e. within 2⁻⁸ relative of it.
    @Test func f16ConvertsToBF16RoundedToNearestEven() {
        let rows = 9, cols = 133
        var random = SeededRandom(seed: 5)
        let f16 = TestWeight(rows: rows, cols: cols, format: .f16, values: random.floats(rows * cols), precision: .fast)
        let converted = f16.matrix.convertedF16ToBF16()
        #expect(converted.format == .bf16 && converted.precision == .fast)
        // The bf16 rounding of the f16 values, computed by the test helper's own path.
        let expected = TestWeight(rows: rows, cols: cols, format: .bf16, values: f16.stored)
        var row = [Float](repeating: 0, count: cols)
        for r in 0..<rows {
            converted.copyRow(r, into: &row)
            #expect(row == Array(expected.stored[(r * cols)..<((r + 1) * cols)]), "row \(r)")
            for c in 0..<cols {
                let v = f16.stored[r * cols + c]
                #expect(abs(row[c] - v) <= abs(v) * 0x1p-8, "row \(r) column \(c)")
            }
        }
    }

    /// Runs `body(gemm, weight, x, bias, y)` for the bf16 kernel tests' shapes (odd sizes, partial tiles,
    /// 1700 inputs: several depth blocks) on the GEMM and, for n ≤ `midNRowLimit`, the mid-n kernel, and
    /// returns each run's worst error relative to Σ|x·w| of the float64 reference.
    func bf16KernelErrors(n: Int, precision: Precision, seed: (_ rows: Int, _ cols: Int) -> UInt64,
                          _ body: (_ gemm: Bool, _ weight: WeightMatrix, _ x: UnsafePointer<Float>,
                                   _ bias: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) -> Void)
        -> [(gemm: Bool, shape: String, worst: Double)] {
        var results: [(gemm: Bool, shape: String, worst: Double)] = []
        for (rows, cols) in [(37, 77), (70, 300), (5, 1700)] {
            var random = SeededRandom(seed: seed(rows, cols))
            let weight = TestWeight(rows: rows, cols: cols, format: .bf16, values: random.floats(rows * cols),
                                    precision: precision)
            let x = random.floats(n * cols, in: -2...2)
            let bias = random.floats(rows)
            let reference = referenceLinear(x: x, n: n, w: weight.stored, rows: rows, cols: cols, bias: bias)
            for gemm in [false, true] where gemm || n <= Kernels.midNRowLimit {
                var y = [Float](repeating: .nan, count: n * rows)
                x.withUnsafeBufferPointer { xp in
                    bias.withUnsafeBufferPointer { bp in
                        y.withUnsafeMutableBufferPointer { yp in
                            body(gemm, weight.matrix, xp.baseAddress!, bp.baseAddress!, yp.baseAddress!)
                        }
                    }
                }
                results.append((gemm, "rows \(rows) cols \(cols)", Self.worstRelativeError(y, reference)))
            }
        }
        return results
    }

    /// bf16 weights on a CPU without AVX512-BF16: the mid-n tile and the GEMM widen them to f32 and keep x
    /// in f32 (this machine has the instructions, so `linear` never takes these paths here). Same bound as
    /// f32 accumulation: 1e-5 of Σ|x·w|.
    @Test(arguments: [9, 40, 130])
    func bf16WithoutDotProductsWidensToF32(n: Int) {
        let results = bf16KernelErrors(n: n, precision: .exact, seed: { rows, _ in UInt64(n * 131 + rows) }) {
            gemm, weight, x, b, out in
            let rows = weight.rows, cols = weight.cols, view = WeightView(weight)
            if gemm {
                let packed = AlignedBuffer(byteCount: Kernels.gemmPackedBytes(n: n, cols: cols, bf16: false))
                Kernels.gemmPack(x, n: n, cols: cols, panels: 0, (n + Kernels.gemmPanelRows - 1) / Kernels.gemmPanelRows,
                                 bf16: false, into: packed.pointer)
                let work = AlignedBuffer(byteCount: Kernels.gemmWorkBytes)
                for j in stride(from: 0, to: rows, by: Kernels.gemmFeaturesPerTask) {
                    Kernels.gemmTask(view, packed.pointer, n: n, features: j, min(rows, j + Kernels.gemmFeaturesPerTask),
                                     bias: b, into: out, ldy: rows, bf16: false, work: work.pointer)
                }
            } else {
                let packed = AlignedBuffer(byteCount: Kernels.midNPackedBytes(n: n, cols: cols, bf16: false))
                Kernels.midNPack(x, n: n, cols: cols, bf16: false, into: packed.pointer)
                Kernels.midN(view, packed.pointer, n: n, rows: 0, rows, bias: b, into: out, ldy: rows, bf16: false)
            }
        }
        for r in results { #expect(r.worst <= 1e-5, "\(r.gemm ? "GEMM" : "mid-n") n \(n) \(r.shape): \(r.worst)") }
    }

    /// The bf16 dot-product kernels (the mid-n tile and the GEMM micro-kernel, `vdpbf16ps`) on every CPU with
    /// AVX512-BF16, also where `linear` does not take them because they are slower than f32 FMAs
    /// (`Kernels.usesBF16DotProducts` false): odd shapes, partial tiles and depth blocks (1700 inputs = 850
    /// pairs, 3 blocks of 256 plus 82), bias. x is rounded to bf16 (relative 2⁻⁸ per product): every shape
    /// within 4e-3 of Σ|x·w| of the float64 reference, and each kernel's worst shape above f32 rounding
    /// (> 1e-4), so the rounding really happened.
    @Test(.enabled(if: Kernels.hasAVX512BF16), arguments: [9, 40, 130])
    func bf16DotProductKernelsWithinBound(n: Int) {
        let results = bf16KernelErrors(n: n, precision: .fast, seed: { _, cols in UInt64(n * 17 + cols) }) {
            gemm, weight, x, b, out in
            let packed = gemm ? Kernels.packPanels(x, n: n, cols: weight.cols, bf16: true, pool: Self.pool)
                              : Kernels.packRows(x, n: n, cols: weight.cols, bf16: true, pool: Self.pool)
            Kernels.multiply(packed, weight: weight, bias: b, into: out, pool: Self.pool)
        }
        for r in results { #expect(r.worst <= 4e-3, "\(r.gemm ? "GEMM" : "mid-n") n \(n) \(r.shape): \(r.worst)") }
        for gemm in Set(results.map(\.gemm)) {
            let worst = results.filter { $0.gemm == gemm }.map(\.worst).max()!
            #expect(worst > 1e-4, "\(gemm ? "GEMM" : "mid-n") n \(n): \(worst)")
        }
    }

    /// The f16 GEMM (`mk_gemm_kernel_f16`, AVX512-FP16) on every CPU that has it, paid or not: odd shapes,
    /// partial tiles, several depth blocks (1700 inputs = 850 pairs) and tasks (300 features), bias. x is
    /// rounded to f16 after a per-row power-of-two scale and each lane sums 64 products in f16 before f32:
    /// every shape within 2e-3 of Σ|x·w| of the float64 reference (half the bf16 route's 4e-3; a float64
    /// simulation of the same arithmetic on 0.5B-like data gave ≤ 6.4e-4), and above f32 rounding (> 1e-5),
    /// so the f16 arithmetic really ran. The same with inputs of 1e4 and weights of 1e3 (f16 sums of the raw
    /// products would overflow 65504), and with inputs of 1e-6 and weights of 1e-4 (their raw products would be
    /// f16 subnormals or zero): the scales keep the sums in range and the errors within the same bound.
    @Test(.enabled(if: Kernels.hasAVX512FP16), arguments: [130, 200])
    func f16GemmWithinBound(n: Int) {
        for (rows, cols) in [(37, 77), (70, 300), (300, 1700)] {
            for (xScale, wScale) in [(Float(1), Float(1)), (1e4, 1e3), (1e-6, 1e-4)] {
                var random = SeededRandom(seed: UInt64(n * 7 + cols))
                let weight = TestWeight(rows: rows, cols: cols, format: .f16,
                                        values: random.floats(rows * cols).map { $0 * wScale }, precision: .fast)
                let x = random.floats(n * cols, in: -2...2).map { $0 * xScale }
                let bias = random.floats(rows).map { $0 * xScale * wScale }
                let reference = referenceLinear(x: x, n: n, w: weight.stored, rows: rows, cols: cols, bias: bias)
                var y = [Float](repeating: .nan, count: n * rows)
                x.withUnsafeBufferPointer { xp in
                    bias.withUnsafeBufferPointer { bp in
                        y.withUnsafeMutableBufferPointer { yp in
                            let packed = Kernels.packF16Panels(xp.baseAddress!, n: n, cols: cols, pool: Self.pool)
                            Kernels.multiply(packed, weight: weight.matrix, bias: bp.baseAddress!, into: yp.baseAddress!,
                                             pool: Self.pool)
                        }
                    }
                }
                let worst = Self.worstRelativeError(y, reference)
                #expect(worst > 1e-5 && worst <= 2e-3, "n \(n) rows \(rows) cols \(cols) x×\(xScale) w×\(wScale): \(worst)")
            }
        }
    }

    /// `linear` on fast f16 weights takes the f16 GEMM exactly when `usesF16DotProducts` holds and n takes the
    /// GEMM path, and `packInput` packs for it (same outputs, bit for bit); a mismatched packing is refused.
    @Test func fastF16TakesTheF16GemmOnlyOnTheGemmPath() {
        let rows = 70, cols = 300, n = 150
        var random = SeededRandom(seed: 31)
        let weight = TestWeight(rows: rows, cols: cols, format: .f16, values: random.floats(rows * cols), precision: .fast)
        let x = random.floats(n * cols, in: -2...2)
        var direct = [Float](repeating: 0, count: n * rows), viaPacked = direct, f16 = direct, f32 = direct
        x.withUnsafeBufferPointer { xp in
            let p = xp.baseAddress!
            direct.withUnsafeMutableBufferPointer {
                Kernels.linear(p, n: n, weight: weight.matrix, bias: nil, into: $0.baseAddress!, pool: Self.pool)
            }
            viaPacked.withUnsafeMutableBufferPointer {
                let packed = Kernels.packInput(p, n: n, cols: cols, for: weight.matrix, pool: Self.pool)
                Kernels.linear(packed, weight: weight.matrix, bias: nil, into: $0.baseAddress!, pool: Self.pool)
            }
            f32.withUnsafeMutableBufferPointer {
                Kernels.linear(p, n: n, weight: weight.matrix.withPrecision(.exact), bias: nil, into: $0.baseAddress!,
                               pool: Self.pool)
            }
            if Kernels.hasAVX512FP16 {
                f16.withUnsafeMutableBufferPointer {
                    let packed = Kernels.packF16Panels(p, n: n, cols: cols, pool: Self.pool)
                    Kernels.multiply(packed, weight: weight.matrix, bias: nil, into: $0.baseAddress!, pool: Self.pool)
                }
            }
        }
        #expect(direct == viaPacked)
        #expect(Kernels.usesF16DotProducts(weight.matrix) == Kernels.usesF16DotProducts)
        #expect(!Kernels.usesF16DotProducts(weight.matrix.withPrecision(.exact)))
        if Kernels.usesF16DotProducts {
            #expect(direct == f16 && direct != f32)
        } else {
            #expect(direct == f32)
        }
    }

    /// The f16 FMA probe: 0 without AVX512-FP16; with it a plausible rate ratio (measured 2 on the Intel VM),
    /// and `usesF16DotProducts` follows it.
    @Test func f16FMAProbeIsPlausible() {
        let speedup = Kernels.f16FMASpeedup
        if !Kernels.hasAVX512FP16 || !Kernels.hasAVX512BF16 {
            #expect(speedup == 0 && !Kernels.usesF16DotProducts)
            return
        }
        #expect(speedup > 0.125 && speedup < 4, "speedup \(speedup)")
        #expect(Kernels.usesF16DotProducts == (speedup >= Kernels.bf16DotProductMinimumSpeedup))
    }

    /// The bf16 dot-product probe: 0 without AVX512-BF16; with it a plausible rate ratio (between an eighth
    /// and 4× the FMA's multiply-adds: measured 0.5 on an Intel VM, 2 on Zen 5), and `usesBF16DotProducts`
    /// follows it.
    @Test func bf16DotProductProbeIsPlausible() {
        let speedup = Kernels.bf16DotProductSpeedup
        if !Kernels.hasAVX512BF16 {
            #expect(speedup == 0 && !Kernels.usesBF16DotProducts)
            return
        }
        #expect(speedup > 0.125 && speedup < 4, "speedup \(speedup)")
        #expect(Kernels.usesBF16DotProducts == (speedup >= Kernels.bf16DotProductMinimumSpeedup))
    }

    /// q8 against the original f32 weights: each weight errs by at most scale/2 = max|w_group|/254
    /// (round to nearest), so |y − y_f32| ≤ Σ_c |x_c|·max|w_group(c)|/254 ≤ Σ|x|·max|w|/254.
    @Test func q8QuantizationErrorIsBounded() {
        let rows = 53, cols = 200, n = 3
        var random = SeededRandom(seed: 99)
        let values = random.floats(rows * cols)
        let f32 = TestWeight(rows: rows, cols: cols, format: .f32, values: values)
        let q8 = TestWeight(rows: rows, cols: cols, format: .q8, values: values)
        let x = random.floats(n * cols)
        var y = [Float](repeating: 0, count: n * rows)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                Kernels.linear(xp.baseAddress!, n: n, weight: q8.matrix, bias: nil, into: yp.baseAddress!, pool: Self.pool)
            }
        }
        let exact = referenceLinear(x: x, n: n, w: f32.stored, rows: rows, cols: cols, bias: nil).values
        for i in 0..<n {
            for r in 0..<rows {
                var bound = 0.0
                for c in 0..<cols {
                    let g = c / 32 * 32
                    let groupMax = (g..<min(g + 32, cols)).map { abs(Double(values[r * cols + $0])) }.max()!
                    bound += abs(Double(x[i * cols + c])) * groupMax / 254
                }
                let error = abs(Double(y[i * rows + r]) - exact[i * rows + r])
                #expect(error <= bound * 1.001 + 1e-6, "row \(r) input \(i): error \(error) > bound \(bound)")
            }
        }
        // Each stored value is within half a quantisation step of the original.
        for r in 0..<rows {
            for c in 0..<cols {
                let g = c / 32 * 32
                let groupMax = (g..<min(g + 32, cols)).map { abs(values[r * cols + $0]) }.max()!
                #expect(abs(q8.stored[r * cols + c] - values[r * cols + c]) <= groupMax / 254 * 1.0001)
            }
        }
    }
}

extension LinearTests {
    /// One packed input serves several weights (q/k/v style) and matches the unpacked call exactly.
    @Test(arguments: WeightFormat.allCases, [20, 200]) // the mid-n and the GEMM layout
    func packedInputIsReusable(format: WeightFormat, n: Int) {
        let cols = 300
        for precision in Precision.allCases {
            var random = SeededRandom(seed: 77)
            let x = random.floats(n * cols)
            let weights = [45, 128].map { rows in
                TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols), precision: precision)
            }
            let packed = Kernels.packInput(x, n: n, cols: cols, for: weights[0].matrix, pool: Self.pool)
            for weight in weights {
                let rows = weight.matrix.rows
                var direct = [Float](repeating: 0, count: n * rows), reused = direct
                Kernels.linear(x, n: n, weight: weight.matrix, bias: nil, into: &direct, pool: Self.pool)
                Kernels.linear(packed, weight: weight.matrix, bias: nil, into: &reused, pool: Self.pool)
                #expect(direct == reused, "format \(format) \(precision)")
            }
        }
    }
}

extension LinearTests {
    /// More x rows than one L2 block of panels (16 × 12 = 192), so the GEMM's row blocking is exercised.
    @Test(arguments: WeightFormat.allCases)
    func gemmAcrossRowBlocks(format: WeightFormat) {
        for precision in Precision.allCases {
            let error = worstRelativeError(rows: 70, cols: 530, n: 200, format: format, withBias: true, seed: 4242,
                                           precision: precision)
            #expect(error <= Self.bound(format: format, precision: precision, n: 200), "format \(format) \(precision): \(error)")
        }
    }
}

extension LinearTests {
    /// q8 given as separate value and scale arrays (the public initializer) and row slices of every
    /// format compute the same as the matrices they came from.
    @Test(arguments: WeightFormat.allCases)
    func separateQ8ArraysAndRowSlicesAgree(format: WeightFormat) {
        let rows = 50, cols = 77, n = 3
        var random = SeededRandom(seed: 31)
        let weight = TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols))
        let x = random.floats(n * cols)
        var full = [Float](repeating: 0, count: n * rows)
        Kernels.linear(x, n: n, weight: weight.matrix, bias: nil, into: &full, pool: Self.pool)

        let slice = weight.matrix.rowSlice(13..<41)
        var part = [Float](repeating: 0, count: n * 28)
        Kernels.linear(x, n: n, weight: slice, bias: nil, into: &part, pool: Self.pool)
        for i in 0..<n { #expect(Array(part[(i * 28)..<(i * 28 + 28)]) == Array(full[(i * rows + 13)..<(i * rows + 41)])) }

        guard format == .q8 else { return }
        let m = weight.matrix, groups = WeightMatrix.q8GroupsPerRow(cols)
        var values = [Int8](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 0, count: rows * groups)
        for r in 0..<rows {
            for c in 0..<cols { values[r * cols + c] = m.q8Value(row: r, column: c) }
            for g in 0..<groups { scales[r * groups + g] = m.q8Scale(row: r, group: g) }
        }
        var separate = [Float](repeating: 0, count: n * rows)
        values.withUnsafeBytes { v in
            scales.withUnsafeBufferPointer { s in
                let matrix = WeightMatrix(rows: rows, cols: cols, q8Values: v.baseAddress!, scales: s.baseAddress!, owner: nil)
                Kernels.linear(x, n: n, weight: matrix, bias: nil, into: &separate, pool: Self.pool)
            }
        }
        #expect(separate == full)
    }
}

extension LinearTests {
    /// Decode with n ≥ 3 runs 4-row tiles and, for rows longer than 1024 inputs, 512-input column blocks
    /// (1700 inputs); every row must come out bit-identical to that row computed alone (a 1-row tile
    /// repeating its row), and close to the float64 reference.
    @Test(arguments: WeightFormat.allCases, [3, 5, 8])
    func decodeTilesMatchSingleRows(format: WeightFormat, n: Int) {
        let rows = 9, cols = 1700
        var random = SeededRandom(seed: UInt64(97 + n))
        let weight = TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols))
        let x = random.floats(n * cols, in: -2...2)
        expectRowsAloneMatchFullCall(x: x, n: n, weight: weight.matrix, context: "format \(format) n \(n)")
        let error = worstRelativeError(rows: rows, cols: cols, n: n, format: format, withBias: true, seed: 555)
        #expect(error <= 1e-5, "format \(format) n \(n): \(error)")
    }
}

extension LinearTests {
    /// The mid-n path (and, for comparison, the GEMM path forced at the same n) against the float64
    /// reference: every format, odd n, n not a multiple of the 6-input groups (13 = 5+4+4, 25 = 5×5,
    /// 47 = 6×7+5), rows not a multiple of the 4-row tile (37, 70, 3), cols not a multiple of the
    /// 16/32-input chunk (77, 300, 1000), rows longer than 1024 inputs, which the mid-n kernel runs in
    /// 512-input column blocks (1700 = 3 × 512 + 164), bias on odd row counts, and the largest mid-n n (128).
    @Test(arguments: WeightFormat.allCases, [9, 13, 25, 32, 47, Kernels.midNMaxRows(.f32)])
    func midNAndGEMMPathsMatchFloat64Reference(format: WeightFormat, n: Int) {
        for precision in Precision.allCases {
            for path in [Kernels.LinearPath.midN, .gemm] {
                for (rows, cols) in [(37, 77), (70, 300), (3, 1000), (64, 32), (5, 1700)] {
                    let error = worstRelativeError(rows: rows, cols: cols, n: n, format: format, withBias: rows % 2 == 1,
                                                   seed: UInt64(rows * 7919 + cols * 31 + n), path: path,
                                                   precision: precision)
                    #expect(error <= Self.bound(format: format, precision: precision, n: n, path: path), "\(path) format \(format) \(precision) n \(n) rows \(rows) cols \(cols): \(error)")
                }
            }
        }
    }

    /// Every (row, input) output of the mid-n path is summed in the same order whatever the row's place
    /// in a 4-row tile, the task split, n, or the input's group (1100 inputs: 512-input column blocks
    /// with parked accumulators): a row computed alone, and the first 11 inputs computed alone, are
    /// bit-identical to the same outputs of the full call.
    @Test(arguments: WeightFormat.allCases)
    func midNOutputsDoNotDependOnTilingOrGrouping(format: WeightFormat) {
        let rows = 23, cols = 1100, n = 25, fewer = 11
        #expect(Kernels.path(n: n, format: format) == .midN && Kernels.path(n: fewer, format: format) == .midN)
        for precision in Precision.allCases {
            var random = SeededRandom(seed: 2024)
            let weight = TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols),
                                    precision: precision)
            let x = random.floats(n * cols, in: -2...2)
            let full = expectRowsAloneMatchFullCall(x: x, n: n, weight: weight.matrix, context: "format \(format) \(precision)")
            var part = [Float](repeating: 0, count: fewer * rows)
            Kernels.linear(x, n: fewer, weight: weight.matrix, bias: nil, into: &part, pool: Self.pool)
            #expect(part == Array(full[0..<(fewer * rows)]), "format \(format) \(precision): first \(fewer) inputs differ")
        }
    }
}

extension LinearTests {
    /// Decode with 3…8 inputs sums every (row, input) output in the same order as the mid-n path: q8
    /// weights widened in registers (one input group, n ≤ 6) or dequantized once per tile (two groups,
    /// n = 7, 8) give the same products, so the first n inputs' outputs are bit-identical for every
    /// n = 3…8 and (f32 inputs on mid-n: every format in exact precision) for n = 9.
    @Test(arguments: WeightFormat.allCases)
    func decodeOutputsDoNotDependOnN(format: WeightFormat) {
        let rows = 19, cols = 1100
        var random = SeededRandom(seed: 77)
        let weight = TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols))
        let x = random.floats(9 * cols, in: -2...2)
        let ns = Kernels.usesBF16DotProducts(weight.matrix) ? Array(3...8) : Array(3...9)
        var outputs: [Int: [Float]] = [:]
        for n in ns {
            var y = [Float](repeating: .nan, count: n * rows)
            Kernels.linear(x, n: n, weight: weight.matrix, bias: nil, into: &y, pool: Self.pool)
            outputs[n] = y
        }
        for n in ns.dropFirst() {
            #expect(Array(outputs[n]![0..<(3 * rows)]) == outputs[3]!, "format \(format): n = \(n) differs from n = 3")
        }
    }
}

extension LinearTests {
    /// Runs `linear` over all rows of `weight`, then each row alone (a one-row slice), and expects every
    /// output bit-identical; returns the full call's y.
    @discardableResult
    func expectRowsAloneMatchFullCall(x: [Float], n: Int, weight: WeightMatrix, context: String) -> [Float] {
        let rows = weight.rows
        var full = [Float](repeating: 0, count: n * rows)
        Kernels.linear(x, n: n, weight: weight, bias: nil, into: &full, pool: Self.pool)
        for r in 0..<rows {
            var one = [Float](repeating: 0, count: n)
            Kernels.linear(x, n: n, weight: weight.rowSlice(r..<(r + 1)), bias: nil, into: &one, pool: Self.pool)
            for i in 0..<n { #expect(one[i] == full[i * rows + r], "\(context) row \(r) input \(i)") }
        }
        return full
    }
}

extension LinearTests {
    /// n = 1 runs 4-row quads (16 FMA chains, software prefetch) and the rows left over one at a time; each
    /// quad row keeps the one-row kernel's 4 chains and summation order, so for every format, row counts
    /// that are not a multiple of 4, rows shorter than one 64-input step (32), ragged ends (77, 65, 1000:
    /// q8 with an odd group count and a half group), and rows longer than 1024 inputs (1700) the quads'
    /// outputs must be bit-identical to `decodeRows` over the same rows, and within f32 rounding (1e-5 of
    /// Σ|x·w|, as `linearMatchesFloat64Reference`) of the float64 reference.
    @Test(arguments: WeightFormat.allCases)
    func singleInputQuadsMatchOneRowKernel(format: WeightFormat) {
        for (rows, cols) in [(37, 77), (13, 1000), (12, 32), (8, 96), (21, 65), (9, 1700), (3, 300)] {
            var random = SeededRandom(seed: UInt64(rows * 131 + cols))
            let weight = TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols))
            let x = random.floats(cols, in: -2...2)
            let bias = random.floats(rows)
            let view = WeightView(weight.matrix)
            var quads = [Float](repeating: .nan, count: rows), single = [Float](repeating: .nan, count: rows)
            x.withUnsafeBufferPointer { xp in
                bias.withUnsafeBufferPointer { bp in
                    // Rows 1..<rows: quads start off a multiple of 4 of the matrix (r0 = 1).
                    Kernels.decodeRowBlock(view, xp.baseAddress!, 0, 1, bp.baseAddress!, &quads)
                    Kernels.decodeRowBlock(view, xp.baseAddress!, 1, rows, bp.baseAddress!, &quads)
                    Kernels.decodeRows(view, xp.baseAddress!, 0, rows, bp.baseAddress!, &single)
                }
            }
            #expect(quads == single, "format \(format) rows \(rows) cols \(cols): quads differ from one row at a time")
            let reference = referenceLinear(x: x, n: 1, w: weight.stored, rows: rows, cols: cols, bias: bias)
            let error = Self.worstRelativeError(quads, reference)
            #expect(error <= 1e-5, "format \(format) rows \(rows) cols \(cols): \(error)")
        }
    }
}

extension LinearTests {
    /// From 6 input groups (n ≥ 31) the mid-n tiles widen f16/bf16 weight blocks to f32 once per tile and
    /// read them back from L1; the widened values are exact, so every output must be bit-identical to
    /// widening at each group's load (`Kernels.setMidNWidensOnce(false)`), for 896-input rows (whole),
    /// 1100 (512-input column blocks) and ragged ends (77, 300), row counts that are not a multiple of
    /// the 4-row tile, and n = 31, 47 and the largest mid-n n; and within f32 rounding of the float64
    /// reference. (Switching it while other tests run changes only their speed.)
    @Test func midNWideningOnceIsBitIdentical() {
        defer { Kernels.setMidNWidensOnce(true) }
        for format in [WeightFormat.f16, .bf16] {
            for (rows, cols) in [(37, 77), (13, 300), (9, 1100), (8, 896)] {
                for n in [31, 47, Kernels.midNMaxRows(format)] {
                    var random = SeededRandom(seed: UInt64(rows * 7 + cols * 3 + n))
                    let weight = TestWeight(rows: rows, cols: cols, format: format, values: random.floats(rows * cols))
                    let x = random.floats(n * cols, in: -2...2)
                    var outputs: [[Float]] = []
                    for once in [true, false] {
                        Kernels.setMidNWidensOnce(once)
                        var y = [Float](repeating: .nan, count: n * rows)
                        Kernels.linear(x, n: n, weight: weight.matrix, bias: nil, into: &y, pool: Self.pool, path: .midN)
                        outputs.append(y)
                    }
                    let context = "format \(format) rows \(rows) cols \(cols) n \(n)"
                    #expect(outputs[0] == outputs[1], "\(context): widening once differs from widening per group")
                    let reference = referenceLinear(x: x, n: n, w: weight.stored, rows: rows, cols: cols, bias: nil)
                    let error = Self.worstRelativeError(outputs[0], reference)
                    #expect(error <= 1e-5, "\(context): \(error)")
                }
            }
        }
    }
}
