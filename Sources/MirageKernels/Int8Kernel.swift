import CMirageKernels
import Synchronization

// q8 weights under `Precision.fast` on a CPU with AVX512-VNNI: x is quantized to int8 per 32-input group
// (as llama.cpp's Q8_0 activations, see CMirageKernels.c) and every 32-term dot product of a weight group
// with an input group is an exact integer sum (vpdpbusd); the group sums are scaled by d_w·d_x and
// accumulated in f32. One schedule for every n (the C kernel, CMirageKernels.c):
//
//   for each block of weight rows (one task, ~256 KB of weights, as on the decode path):
//     for each chunk of inputs (x quantized, ≤ int8ChunkBytes, stays in L2):
//       for each 4-row tile of the block:     weights: from DRAM once per chunk (prefetched 2 tiles ahead)
//         for each group of ≤ 4 inputs:       4·N vpdpbusd per 64 inputs
//         (or all 5–6 inputs of a chunk in one group: a beam step prepares each weight pair once)
//
// Every output sums its groups in the same order whatever n, the chunk, the tile or the thread.

/// Whether a chunk of 5 or 6 inputs runs as one tile (the default) or as two (3 + 2, 3 + 3, the schedule
/// before 2026-12-07); `Kernels.setInt8WideTiles` switches for A/B comparisons. Results are identical.
private let int8WideTiles = Atomic<Bool>(true)

extension Kernels {
    /// For benchmarks: `true` (the default) runs 5 or 6 inputs (a beam step) as one tile of the int8 kernel,
    /// each pair of weight groups prepared once for all of them; `false` runs them as two tiles (3 + 2,
    /// 3 + 3), as before 2026-12-07. Outputs are bit-identical; only speed differs.
    public static func setInt8WideTiles(_ enabled: Bool) {
        int8WideTiles.store(enabled, ordering: .relaxed)
    }

    /// True when the CPU has AVX512-VNNI, so that q8 weights with `Precision.fast` use int8 dot products.
    public static let usesInt8DotProducts: Bool = mk_has_avx512vnni() != 0

    /// True when `linear` multiplies by `weight` with int8 dot products (x quantized to int8 per 32-input
    /// group) on every path: q8 weights, `Precision.fast`, and a CPU with AVX512-VNNI.
    public static func usesInt8DotProducts(_ weight: WeightMatrix) -> Bool {
        weight.format == .q8 && weight.precision == .fast && usesInt8DotProducts
    }

    /// Bytes of one quantized input row: ⌈cols / 64⌉ pairs of 32-input groups, `MK_Q8_PAIR_BYTES` each.
    static func int8RowBytes(cols: Int) -> Int { (cols + 63) / 64 * Int(MK_Q8_PAIR_BYTES) }

    /// Quantized inputs per chunk: ~384 KB of them stay in L2 (1 MB per Zen 5 core) beside a tile of weights.
    static let int8ChunkBytes = 384 * 1024

    /// The int8 activations of x (n rows × cols), as `mk_q8_vnni_rows` reads them: each row's groups of 32
    /// inputs as int8 values, the llama.cpp Q8_0 scale max|x| / 127 and the −128·Σq correction for the
    /// weights' unsigned offset. Rows split across the pool when there are many.
    public static func quantizeActivations(_ x: UnsafePointer<Float>, n: Int, cols: Int, pool: WorkerPool) -> PackedInput {
        let packed = PackedInput(n: n, cols: cols, bf16: false, layout: .int8, pool: pool)
        let destination = packed.buffer.pointer, rowBytes = int8RowBytes(cols: cols)
        let chunk = 16
        if n <= chunk {
            mk_q8_quantize_rows(x, cols, cols, 0, n, destination, rowBytes)
        } else {
            pool.parallelFor((n + chunk - 1) / chunk) { t in
                mk_q8_quantize_rows(x, cols, cols, t * chunk, min(n, (t + 1) * chunk), destination, rowBytes)
            }
        }
        return packed
    }

    /// One quantized input (`quantizeActivations` with n = 1) read back: its int8 values (cols) and group
    /// scales (⌈cols / 32⌉), for tests and reference computations.
    public static func quantizedActivation(_ packed: PackedInput, row i: Int) -> (values: [Int8], scales: [Float]) {
        precondition(packed.layout == .int8, "quantizedActivation reads inputs made by quantizeActivations")
        let base = UnsafeRawPointer(packed.buffer.pointer) + i * int8RowBytes(cols: packed.cols)
        let pair = Int(MK_Q8_PAIR_BYTES)
        let values = (0..<packed.cols).map { c in base.load(fromByteOffset: c / 64 * pair + c % 64, as: Int8.self) }
        let scales = (0..<WeightMatrix.q8GroupsPerRow(packed.cols)).map { g in
            base.load(fromByteOffset: g / 2 * pair + 128 + (g % 2) * 32, as: Float.self)
        }
        return (values, scales)
    }

    /// y = x·Wᵀ (+ bias) with int8 dot products from inputs made by `quantizeActivations`; rows of W split
    /// across the pool as on the decode path.
    static func linearInt8(_ packed: PackedInput, weight: WeightMatrix, bias: UnsafePointer<Float>?,
                           into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        let rows = weight.rows, n = packed.n, rowBytes = int8RowBytes(cols: weight.cols)
        var matrix = mk_q8_matrix(values: weight.data, scales: UnsafeRawPointer(weight.scales!), rows: rows,
                                  cols: weight.cols, row_stride: weight.rowStride, group_stride: weight.groupStride,
                                  scale_row_stride: weight.scaleRowStride, scale_group_stride: weight.scaleGroupStride)
        let blockRows = decodeBlockRows(rows: rows, cols: weight.cols, format: .q8, threads: pool.threadCount)
        let chunk = max(4, int8ChunkBytes / rowBytes / 4 * 4)
        let x = UnsafeRawPointer(packed.buffer.pointer)
        let wide = int8WideTiles.load(ordering: .relaxed) ? 1 : 0
        withUnsafePointer(to: &matrix) { m in
            pool.parallelFor((rows + blockRows - 1) / blockRows) { block in
                mk_q8_vnni_rows(m, block * blockRows, min(rows, (block + 1) * blockRows), x, rowBytes, n, chunk,
                                wide, bias, y, rows)
            }
        }
    }
}
