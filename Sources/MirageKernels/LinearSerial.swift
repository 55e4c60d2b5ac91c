import CMirageKernels

// Added by the vision engineer: a GEMM on the calling thread, for callers that already run independent
// products in parallel (ViT attention: one scores GEMM and one probabilities·values GEMM per head).

extension Kernels {
    /// y = x·Wᵀ (+ bias) for any n ≥ 1 on the calling thread only, with the GEMM path's numerics (f32
    /// weights and activations; other weight formats are widened per packed tile). x is n × cols, y n × rows.
    public static func linearSerial(_ x: UnsafePointer<Float>, n: Int, weight: WeightMatrix,
                                    bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        precondition(n >= 0, "linearSerial: n must be non-negative")
        if n == 0 { return }
        let bf16: Int32 = 0
        let packed = AlignedBuffer(byteCount: mk_packed_a_bytes(n, weight.cols, bf16))
        let panels = (n + Int(MK_MR) - 1) / Int(MK_MR)
        mk_pack_a(x, n, weight.cols, 0, panels, bf16, packed.pointer)
        let work = AlignedBuffer(byteCount: mk_gemm_work_bytes())
        var w = weight.cDescriptor
        withUnsafePointer(to: &w) { w in
            var j = 0
            while j < weight.rows {
                let end = min(weight.rows, j + gemmFeaturesPerTask)
                mk_gemm_task(w, packed.pointer, n, j, end, bias, y, weight.rows, bf16, work.pointer)
                j = end
            }
        }
    }
}
