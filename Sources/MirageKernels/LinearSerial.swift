// Added by the vision engineer: a GEMM on the calling thread, for callers that already run independent
// products in parallel (ViT attention: one scores GEMM and one probabilities·values GEMM per head).

extension Kernels {
    /// y = x·Wᵀ (+ bias) for any n ≥ 1 on the calling thread only, with the GEMM path's numerics (f32
    /// weights and activations; other weight formats are widened per packed tile). x is n × cols, y n × rows.
    public static func linearSerial(_ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix,
                                    bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        precondition(n >= 0, "linearSerial: n must be non-negative")
        if n == 0 { return }
        let packed = AlignedBuffer(byteCount: gemmPackedBytes(n: n, cols: weight.cols, bf16: false))
        gemmPack(x, n: n, cols: weight.cols, panels: 0, (n + gemmPanelRows - 1) / gemmPanelRows, bf16: false,
                 into: packed.pointer)
        // 64 features per task: many small products (ViT attention heads) keep a 64 KB scratch buffer.
        let features = 64
        let work = AlignedBuffer(byteCount: gemmWorkBytes(features: features))
        let w = WeightView(weight)
        var j = 0
        while j < weight.rows {
            let end = min(weight.rows, j + features)
            gemmTask(w, packed.pointer, n: n, features: j, end, bias: bias, into: y, ldy: weight.rows, bf16: false,
                     work: work.pointer)
            j = end
        }
    }
}
