import CMirageKernels

// y = x·Wᵀ (+ bias): the decode path (n ≤ 8 rows of x, weights streamed once), the mid-n path (a few
// dozen rows: weights streamed once in 4-row tiles) and the GEMM path.
// The inner loops are Swift SIMD (DecodeKernel, MidNKernel, GemmKernel); only bf16 dot products
// (vdpbf16ps) are C (CMirageKernels). Blocking and threading are decided here.

extension Kernels {
    /// Rows of x at most this many take the decode path (weights streamed once for all of them).
    public static let decodeMaxRows = 8

    /// True when the CPU has AVX512-BF16 instructions (whether or not they pay; see `usesBF16DotProducts`).
    public static let hasAVX512BF16: Bool = mk_has_avx512bf16() != 0

    /// Multiply-adds per second of `vdpbf16ps` over those of the f32 FMA on this core, timed once at first
    /// use (`mk_bf16_dot_product_speedup`, ~0.3 ms); 0 without AVX512-BF16. Zen 5 issues both at the same
    /// rate (2: the dot product does twice the multiply-adds); an Intel Xeon (family 6, model 207) VM
    /// issues `vdpbf16ps` at a quarter of the FMA rate (0.5), so there bf16 dot products halve the GEMM.
    public static let bf16DotProductSpeedup: Double = mk_bf16_dot_product_speedup()

    /// Least `bf16DotProductSpeedup` at which bf16 weights take bf16 dot products in `Precision.fast`: they
    /// round x to bf16 (relative error 2⁻⁸), which only buys speed well above the f32 FMA rate.
    public static let bf16DotProductMinimumSpeedup = 1.3

    /// True when the CPU has AVX512-BF16 and its dot products are faster than f32 FMAs
    /// (`bf16DotProductSpeedup` ≥ `bf16DotProductMinimumSpeedup`), so that bf16 weights with
    /// `Precision.fast` use them on the mid-n and GEMM paths (activations rounded to bf16). Otherwise fast
    /// bf16 weights are widened to f32 as in `exact` (bit-identical results), and the engine keeps f16
    /// checkpoints in f16 in fast mode.
    public static let usesBF16DotProducts: Bool = hasAVX512BF16 && bf16DotProductSpeedup >= bf16DotProductMinimumSpeedup

    /// True when the CPU has AVX512-FP16 instructions (whether or not they pay; see `usesF16DotProducts`).
    public static let hasAVX512FP16: Bool = mk_has_avx512fp16() != 0

    /// Multiply-adds per second of `vfmadd231ph` (32 f16 lanes) over those of the f32 FMA on this core, timed
    /// once at first use (`mk_f16_fma_speedup`, ~0.3 ms); 0 without AVX512-FP16 (or a build without
    /// AVX512-BF16, whose probe loop it shares). 2 on the Intel Xeon (family 6, model 207) VM: both issue at
    /// the same rate.
    public static let f16FMASpeedup: Double = mk_f16_fma_speedup()

    /// True when the CPU has AVX512-FP16 and its f16 FMAs do at least `bf16DotProductMinimumSpeedup` times the
    /// f32 FMA's multiply-adds, so that f16 weights with `Precision.fast` take the f16 GEMM on the GEMM path
    /// (`usesF16DotProducts(_:)`; x scaled per row by a power of two and rounded to f16, products summed in
    /// f16 over `MK_F16_FLUSH_PAIRS` pairs, then in f32). The mid-n and decode paths keep f32 FMAs.
    public static let usesF16DotProducts: Bool = hasAVX512FP16 && f16FMASpeedup >= bf16DotProductMinimumSpeedup

    /// The multiply-adds `linear` takes for weights of one format on its mid-n and GEMM paths (q8: every path).
    public enum DotProducts: String, Sendable, CaseIterable {
        /// f32 FMAs of weights widened to f32 (the `exact` computation).
        case f32
        /// AVX512-BF16 `vdpbf16ps`, x rounded to bf16.
        case bf16
        /// AVX512-VNNI `vpdpbusd`, x quantized to int8 per 32-input group.
        case int8
        /// AVX512-FP16 `vfmadd231ph` on the GEMM path (f16 weights), x rounded to f16 after a per-row power-of-two
        /// scale, f16 sums over 64 products flushed into f32; mid-n and decode take f32 FMAs.
        case f16
    }

    /// The dot products weights of `format` (as loaded) take under `precision`: bf16 weights take bf16 dot
    /// products and q8 weights int8 dot products in `fast` where this CPU's probes allow them
    /// (`usesBF16DotProducts`, `usesInt8DotProducts`; pass other decisions to see another CPU's route),
    /// everything else f32 FMAs.
    public static func dotProducts(format: WeightFormat, precision: Precision, bf16DotProducts: Bool = usesBF16DotProducts,
                                   int8DotProducts: Bool = usesInt8DotProducts,
                                   f16DotProducts: Bool = usesF16DotProducts) -> DotProducts {
        guard precision == .fast else { return .f32 }
        switch format {
        case .bf16: return bf16DotProducts ? .bf16 : .f32
        case .q8: return int8DotProducts ? .int8 : .f32
        case .f16: return f16DotProducts ? .f16 : .f32
        case .f32: return .f32
        }
    }

    /// True when `linear` multiplies by `weight` with the f16 GEMM (`usesF16DotProducts`) on its GEMM path: f16
    /// weights, `Precision.fast`, and a CPU whose AVX512-FP16 FMAs pay.
    public static func usesF16DotProducts(_ weight: WeightMatrix) -> Bool {
        weight.format == .f16 && weight.precision == .fast && usesF16DotProducts
    }

    /// True when `linear` multiplies by `weight` with bf16 dot products (x rounded to bf16) on the mid-n and
    /// GEMM paths: bf16 weights, `Precision.fast`, and a CPU with AVX512-BF16. Otherwise f32 throughout.
    public static func usesBF16DotProducts(_ weight: WeightMatrix) -> Bool {
        weight.format == .bf16 && weight.precision == .fast && usesBF16DotProducts
    }

    /// y[i, r] = Σ_c x[i, c]·W[r, c] (+ bias[r]) for i < n; x is n×cols, y is n×rows (f32, row-major).
    /// n = 1...8 takes the decode path (weights streamed once for all n rows), 9…`midNMaxRows` the mid-n
    /// path (weights streamed once, in 4-row tiles), larger n the GEMM path (`path(n:format:)`).
    /// f32 accumulation throughout, except bf16 weights with `Precision.fast` on the mid-n and GEMM paths,
    /// which use AVX512-BF16 dot products with x rounded to bf16 (relative error ≤ 2⁻⁸ per product) when
    /// the CPU has them.
    /// `y` must not overlap `x`.
    public static func linear(_ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix,
                              bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        linear(x, n: n, weight: weight, bias: bias, into: y, pool: pool, path: path(n: n, format: weight.format))
    }

    /// The three ways `linear` can compute y.
    public enum LinearPath: String, Sendable, CaseIterable {
        /// n ≤ 8: each weight row streamed once and dotted with all n inputs.
        case decode
        /// 9 ≤ n ≤ `midNMaxRows`: weights streamed once in 4-row tiles, each dotted with all n inputs.
        case midN
        /// Packed x panels and weight panels, 12×32 micro-kernel.
        case gemm
    }

    /// The path `linear` takes for n rows of x and weights of `format`.
    public static func path(n: Int, format: WeightFormat) -> LinearPath {
        n <= decodeMaxRows ? .decode : usesMidN(n: n, format: format) ? .midN : .gemm
    }

    /// `linear` on a chosen path (benchmarks compare them); `.decode` needs n ≤ 8. Every path gives the
    /// same results up to f32 rounding (fast bf16 weights on the mid-n and GEMM paths: x rounded to bf16).
    /// q8 weights with int8 dot products (`usesInt8DotProducts(weight)`) take their own schedule whatever
    /// the path.
    public static func linear(_ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix,
                              bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, pool: WorkerPool,
                              path: LinearPath) {
        precondition(n >= 0, "linear: n must be non-negative")
        if n == 0 { return }
        if usesInt8DotProducts(weight) { // one int8 schedule for every n (Int8Kernel.swift)
            let packed = quantizeActivations(x, n: n, cols: weight.cols, pool: pool)
            linearInt8(packed, weight: weight, bias: bias, into: y, pool: pool)
            return
        }
        switch path {
        case .decode:
            precondition(n <= decodeMaxRows, "linear: the decode path takes at most \(decodeMaxRows) rows, not \(n)")
            linearDecode(x, n: n, weight: weight, bias: bias, into: y, pool: pool)
        case .midN:
            let packed = packRows(x, n: n, cols: weight.cols, bf16: usesBF16DotProducts(weight), pool: pool)
            linear(packed, weight: weight, bias: bias, into: y, pool: pool)
        case .gemm:
            let packed = usesF16DotProducts(weight) ? packF16Panels(x, n: n, cols: weight.cols, pool: pool)
                : packPanels(x, n: n, cols: weight.cols, bf16: usesBF16DotProducts(weight), pool: pool)
            linear(packed, weight: weight, bias: bias, into: y, pool: pool)
        }
    }

    /// Decode: rows of W are split across the pool in blocks of ~256 KB; each weight row is read from
    /// memory once and dotted with all n inputs. One input: 4 rows at a time (`decodeRowBlock`, bit-identical
    /// to one row at a time). 2…8 inputs: the
    /// mid-n kernel's 4-row tiles (software prefetch two tiles ahead, q8 weights widened once for all
    /// inputs) on x packed as f32 rows, so bf16 weights keep f32 inputs as on the n = 1 path. Measured
    /// (`mirage-bench kernels --only beams`, 24 Qwen2-0.5B layers + LM head, 2 cores), n = 5 over n = 1:
    /// row-pair kernel f16 1.54–1.78×, bf16 1.70×, q8 2.22× → tiles 1.11×, 1.11×, 1.18×; n = 2: row kernel
    /// f16 1.16×, q8 1.28× → tiles 1.09×, 1.03×. For n = 1 the tiles are not faster (f32 47.5 vs 41.6 ms,
    /// f16 23.7 vs 22.1 ms).
    static func linearDecode(_ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix,
                             bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        let rows = weight.rows
        let blockRows = decodeBlockRows(rows: rows, cols: weight.cols, format: weight.format, threads: pool.threadCount)
        let blocks = (rows + blockRows - 1) / blockRows
        let w = WeightView(weight)
        if n == 1 {
            pool.parallelFor(blocks) { block in
                decodeRowBlock(w, x, block * blockRows, min(rows, (block + 1) * blockRows), bias, y)
            }
            return
        }
        let packed = PackedInput(n: n, cols: weight.cols, bf16: false, layout: .rows, pool: pool)
        midNPack(x, n: n, cols: weight.cols, bf16: false, into: packed.buffer.pointer)
        let a = UnsafeRawPointer(packed.buffer.pointer)
        pool.parallelFor(blocks) { block in
            midN(w, a, n: n, rows: block * blockRows, min(rows, (block + 1) * blockRows), bias: bias, into: y,
                 ldy: rows, bf16: false)
        }
    }

    /// Rows per decode task: ~256 KB of weights (a claim costs ~0.1 µs, streaming 256 KB ~6 µs), a
    /// multiple of 4 rows, and at least 8 tasks per thread when the matrix allows, so both cores finish
    /// together.
    static func decodeBlockRows(rows: Int, cols: Int, format: WeightFormat, threads: Int) -> Int {
        let rowBytes = max(1, cols * format.bytesPerElement)
        var block = max(4, (256 * 1024) / rowBytes)
        let minTasks = 8 * threads
        if rows / block < minTasks { block = max(4, rows / minTasks) }
        return (block + 3) / 4 * 4
    }

    /// Most rows of x the mid-n kernel takes (its parked accumulators live on the stack).
    public static let midNRowLimit = 128

    /// Most rows of x that take the mid-n path, per weight format. Measured (`mirage-bench kernels
    /// --only midn`, 8 Qwen2-0.5B layers from DRAM, 2 cores): mid-n is faster than the GEMM at every
    /// n ≤ 96 for every format (2.4–4.5× at n = 9, 1.4–1.7× at 32, 6–13% at 96); at 128 bf16 and q8
    /// tie, f32 and f16 are still 6–7% faster on mid-n, which the kernel's 128-row limit ends.
    public static func midNMaxRows(_ format: WeightFormat) -> Int {
        switch format {
        case .f32, .f16: return midNRowLimit
        case .bf16, .q8: return 96
        }
    }

    /// True when n rows of x (n > decodeMaxRows) take the mid-n path rather than the GEMM path.
    public static func usesMidN(n: Int, format: WeightFormat) -> Bool {
        n > decodeMaxRows && n <= midNMaxRows(format)
    }

    /// Rows per mid-n task: as on the decode path (~256 KB of weights, ≥ 8 tasks per thread, a multiple of
    /// 4 rows = one kernel tile).
    static func midNBlockRows(rows: Int, cols: Int, format: WeightFormat, threads: Int) -> Int {
        decodeBlockRows(rows: rows, cols: cols, format: format, threads: threads)
    }

    /// Packs x (n × cols, n > 8) once, so several linears sharing the input (q, k, v; gate, up) skip
    /// repacking it: row-major for the mid-n path, 12-row panels for the GEMM path (`usesMidN`). `weight`
    /// is any of the weights the input will be multiplied by (all must share its format and precision):
    /// with bf16 dot products (`usesBF16DotProducts(weight)`) x is rounded to bf16 pairs, with int8 dot
    /// products (`usesInt8DotProducts(weight)`) quantized to int8 per 32-input group, otherwise f32.
    public static func packInput(_ x: UnsafePointer<Float>, n: Int, cols: Int, for weight: WeightMatrix,
                                 pool: WorkerPool) -> PackedInput {
        precondition(n > decodeMaxRows, "packInput is for n > \(decodeMaxRows); call linear with x for n = \(n)")
        precondition(cols > 0, "packInput: cols must be positive")
        if usesInt8DotProducts(weight) { return quantizeActivations(x, n: n, cols: cols, pool: pool) }
        let bf16 = usesBF16DotProducts(weight)
        if usesMidN(n: n, format: weight.format) { return packRows(x, n: n, cols: cols, bf16: bf16, pool: pool) }
        return usesF16DotProducts(weight) ? packF16Panels(x, n: n, cols: cols, pool: pool)
                                          : packPanels(x, n: n, cols: cols, bf16: bf16, pool: pool)
    }

    /// x row-major for the mid-n path, rows padded to 32 inputs (f32, or bf16 pairs for bf16 weights
    /// dot products). A few dozen rows: one thread converts them (25 × 896 inputs take ~5 µs).
    static func packRows(_ x: UnsafePointer<Float>, n: Int, cols: Int, bf16: Bool, pool: WorkerPool) -> PackedInput {
        precondition(n <= midNRowLimit, "linear: the mid-n path takes at most \(midNRowLimit) rows, not \(n)")
        let packed = PackedInput(n: n, cols: cols, bf16: bf16, layout: .rows, pool: pool)
        midNPack(x, n: n, cols: cols, bf16: bf16, into: packed.buffer.pointer)
        return packed
    }

    /// x in 12-row panels for the GEMM path (see docs/kernels.md), packing split by panels.
    static func packPanels(_ x: UnsafePointer<Float>, n: Int, cols: Int, bf16: Bool, pool: WorkerPool) -> PackedInput {
        let packed = PackedInput(n: n, cols: cols, bf16: bf16, layout: .panels, pool: pool)
        let panels = (n + gemmPanelRows - 1) / gemmPanelRows
        let chunk = max(1, panels / (4 * pool.threadCount))
        let destination = packed.buffer.pointer
        pool.parallelFor((panels + chunk - 1) / chunk) { t in
            gemmPack(x, n: n, cols: cols, panels: t * chunk, min(panels, (t + 1) * chunk), bf16: bf16, into: destination)
        }
        return packed
    }

    /// x in 12-row panels of f16 pairs for the f16 GEMM (`usesF16DotProducts(_:)`): each row multiplied by the
    /// power of two that brings its largest magnitude into [1/2, 1) (`gemmPackF16`).
    static func packF16Panels(_ x: UnsafePointer<Float>, n: Int, cols: Int, pool: WorkerPool) -> PackedInput {
        let packed = PackedInput(n: n, cols: cols, bf16: false, layout: .f16Panels, pool: pool)
        let panels = (n + gemmPanelRows - 1) / gemmPanelRows
        let chunk = max(1, panels / (4 * pool.threadCount))
        let destination = packed.buffer.pointer
        pool.parallelFor((panels + chunk - 1) / chunk) { t in
            gemmPackF16(x, n: n, cols: cols, panels: t * chunk, min(panels, (t + 1) * chunk), into: destination)
        }
        return packed
    }

    /// y = x·Wᵀ (+ bias) from x packed by `packInput` (same numerics as `linear(_:n:...)`).
    public static func linear(_ packed: PackedInput, weight: WeightMatrix, bias: UnsafePointer<Float>?,
                              into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        precondition(packed.cols == weight.cols,
                     "linear: packed input has \(packed.cols) columns but the weight has \(weight.cols)")
        precondition(packed.bf16 == usesBF16DotProducts(weight) && (packed.layout == .int8) == usesInt8DotProducts(weight)
                        && (packed.layout == .f16Panels) == (usesF16DotProducts(weight) && packed.layout != .rows),
                     "linear: input packed for \(packed.layout == .int8 ? "int8" : packed.layout == .f16Panels ? "f16" : packed.bf16 ? "bf16" : "f32") "
                        + "dot products, weight is \(weight.format) with precision \(weight.precision); pack it with "
                        + "Kernels.packInput(_:n:cols:for:pool:) for this weight")
        multiply(packed, weight: weight, bias: bias, into: y, pool: pool)
    }

    /// `linear(_ packed:…)` without the check that the packing suits the weight (tests run the bf16 dot
    /// products on CPUs where `usesBF16DotProducts` is false this way).
    static func multiply(_ packed: PackedInput, weight: WeightMatrix, bias: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        if packed.layout == .int8 {
            linearInt8(packed, weight: weight, bias: bias, into: y, pool: pool)
            return
        }
        let rows = weight.rows, n = packed.n
        let a = UnsafeRawPointer(packed.buffer.pointer)
        let bf16 = packed.bf16
        let w = WeightView(weight)
        if packed.layout == .rows {
            let blockRows = midNBlockRows(rows: rows, cols: weight.cols, format: weight.format, threads: pool.threadCount)
            pool.parallelFor((rows + blockRows - 1) / blockRows) { block in
                midN(w, a, n: n, rows: block * blockRows, min(rows, (block + 1) * blockRows), bias: bias, into: y,
                     ldy: rows, bf16: bf16)
            }
            return
        }
        let perTask = gemmTaskFeatures(rows: rows, threads: pool.threadCount)
        pool.parallelFor((rows + perTask - 1) / perTask) { t in
            let work = UnsafeMutableRawPointer.allocate(byteCount: gemmWorkBytes(features: perTask), alignment: 64)
            defer { work.deallocate() }
            gemmTask(w, a, n: n, features: t * perTask, min(rows, (t + 1) * perTask), bias: bias, into: y, ldy: rows,
                     bf16: bf16, f16: packed.layout == .f16Panels, work: work)
        }
    }
}

/// x packed by `Kernels.packInput`; its memory goes back to the pool's scratch arena when released.
public final class PackedInput: @unchecked Sendable {
    /// Row-major rows for the mid-n path, 12-row panels for the GEMM path, or int8 groups for q8 weights'
    /// int8 dot products (`Kernels.quantizeActivations`), or 12-row panels of f16 pairs with per-row scales for
    /// the f16 GEMM (`Kernels.packF16Panels`).
    enum Layout { case rows, panels, int8, f16Panels }

    public let n: Int
    public let cols: Int
    /// True when packed as bf16 pairs for AVX512-BF16 dot products.
    public let bf16: Bool
    let layout: Layout
    let buffer: AlignedBuffer
    private let arena: ScratchArena

    init(n: Int, cols: Int, bf16: Bool, layout: Layout, pool: WorkerPool) {
        self.n = n
        self.cols = cols
        self.bf16 = bf16
        self.layout = layout
        arena = pool.scratch
        switch layout {
        case .rows: buffer = arena.take(byteCount: Kernels.midNPackedBytes(n: n, cols: cols, bf16: bf16))
        case .panels: buffer = arena.take(byteCount: Kernels.gemmPackedBytes(n: n, cols: cols, bf16: bf16))
        case .int8: buffer = arena.take(byteCount: n * Kernels.int8RowBytes(cols: cols))
        case .f16Panels: buffer = arena.take(byteCount: Kernels.gemmF16PackedBytes(n: n, cols: cols))
        }
    }

    deinit { arena.give(buffer) }
}
