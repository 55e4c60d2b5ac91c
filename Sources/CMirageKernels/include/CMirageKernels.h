// CMirageKernels: the AVX512-BF16 dot-product loops (vdpbf16ps), which Swift cannot express, plus two
// instruction hints. Every other linear kernel (f32, f16, q8, and bf16 weights widened to f32) is Swift
// SIMD in MirageKernels, which also schedules, blocks, packs and threads these; everything here is
// single-threaded and works on what the caller hands it.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// Spin-wait hint for the worker pool (x86 `pause`).
static inline void mk_cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Software prefetch of the cache line holding `p` into all cache levels (no fault on any address).
static inline void mk_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/// True when this build has AVX512-BF16 and the running CPU supports it.
int mk_has_avx512bf16(void);

/// GEMM geometry shared with the Swift driver (MirageKernels/GemmKernel.swift): micro-tiles of MK_MR rows of
/// x by MK_NR output features; depth blocks of MK_KC inputs (f32) or bf16 pairs; a packed x panel block
/// holds MK_MR rows MK_A_STRIDE 32-bit elements apart.
enum { MK_MR = 12, MK_NR = 32, MK_KC = 256, MK_A_STRIDE = MK_KC + 16 };

/// One bf16 GEMM micro-tile: C[i·ldc + j] (+)= Σ_p A[i·MK_A_STRIDE + p]·B[p·32 + j] over p < kcp pairs,
/// for i < mr, j < width (≤ 32), each A and B element a pair of bf16 values (vdpbf16ps). With
/// `accumulate` C is added to, otherwise `bias` (32 entries, may be null) is.
void mk_gemm_kernel_bf16(long kcp, const uint32_t *a, const uint32_t *b, float *c, long ldc, int mr, int width,
                         int accumulate, const float *bias);

/// Mid-n tiles: MK_MIDN_R weight rows against a group of up to MK_MIDN_NMAX inputs.
enum { MK_MIDN_R = 4, MK_MIDN_NMAX = 6 };

/// One mid-n tile call (see MirageKernels/MidNKernel.swift): rows [r, r + valid) of W (valid ≤ 4) against one
/// group of inputs over columns [c0, c1); accumulators start at zero (`first`) or from `save`, and end as sums
/// in y (`last`, + bias) or back in `save` (4·n vectors of 16 floats, index q·n + i, 64-byte aligned).
/// Prefetch share `part` of `parts` for the tile two tiles ahead. `deq`: q8 weights dequantized (Swift only).
typedef struct {
    long r, c0, c1;
    int valid, first, last, part, parts;
    float *save;
    const float *deq;
    const float *bias;
    float *y;
    long ldy;
} mk_midn_call;

/// The bf16 mid-n tile with vdpbf16ps: bf16 weights (`data`, rows `row_stride` bytes apart, `cols` inputs)
/// against n ≤ MK_MIDN_NMAX inputs packed as bf16 pairs (`x`, rows `xs` pairs apart, zero-padded to 32 inputs).
void mk_midn_bf16(const void *data, long row_stride, long cols, const uint32_t *x, long xs, int n,
                  const mk_midn_call *k);
