// MirageKernels: explicit SIMD kernels (GEMM, matvec, norms, softmax, RoPE, activations) and the
// persistent worker pool the engine runs them on. No model knowledge lives here.
