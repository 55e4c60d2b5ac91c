// CMirageKernels: the AVX512-BF16 dot-product loops (vdpbf16ps) and the AVX512-VNNI int8 ones (vpdpbusd),
// which Swift cannot express, plus two instruction hints. Every other linear kernel (f32, f16, q8, and bf16 weights widened to f32) is Swift
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

/// How many multiply-adds per second `vdpbf16ps` does relative to `vfmadd231ps` (both on zmm registers) on
/// this core, timed once (~0.3 ms: 16 independent accumulator chains of each, alternated seven times, the
/// fastest run of each kept); 0 without AVX512-BF16. Each `vdpbf16ps` does 32 multiply-adds and each FMA
/// 16, so the ratio is 2 where both issue at the same rate (Zen 5) and below 1 where `vdpbf16ps` issues at
/// a quarter of the FMA rate (measured on an Intel Xeon family 6 model 207 VM: 0.5).
double mk_bf16_dot_product_speedup(void);

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

/// True when this build has AVX512-VNNI and the running CPU supports it.
int mk_has_avx512vnni(void);

/// int8 activations for the VNNI q8 kernel (`Kernels.quantizeActivations`): each row of x is cut into groups
/// of 32 inputs, quantized like llama.cpp's Q8_0 (scale d = max|x| / 127, q = x / d rounded to nearest even),
/// and stored as MK_Q8_PAIR_BYTES per pair of groups: 64 int8 values (group 2p, then 2p + 1, zero past the
/// row's end), 16 int32 (lane 0: −128·Σ q of group 2p, lane 8: the same for 2p + 1, others 0: the correction
/// for the weights' +128 offset) and 16 f32 (lanes 0–7 the scale of group 2p, lanes 8–15 that of 2p + 1).
enum { MK_Q8_PAIR_BYTES = 192 };

/// Quantizes rows [i0, i1) of x (`cols` inputs, rows `ldx` floats apart) into `out` (rows `row_bytes` apart,
/// ⌈cols / 64⌉ pairs each).
void mk_q8_quantize_rows(const float *x, long cols, long ldx, long i0, long i1, void *out, long row_bytes);

/// A q8 weight matrix for the VNNI kernel (see MirageKernels/WeightView.swift): group g of row r holds its
/// 32 values at `values + r·row_stride + g·group_stride` and its f32 scale at `scales + r·scale_row_stride +
/// g·scale_group_stride` (bytes).
typedef struct {
    const void *values;
    const void *scales;
    long rows, cols, row_stride, group_stride, scale_row_stride, scale_group_stride;
} mk_q8_matrix;

/// y[i·ldy + r] = Σ_g d_w(r, g)·d_x(i, g)·Σ_{c in g} w[r, c]·q[i, c] (+ bias[r]) for rows r in [r0, r1) and
/// inputs i < n quantized by mk_q8_quantize_rows (`x`, rows `x_row_bytes` apart); the 32-term integer sums are
/// exact (vpdpbusd), the group terms accumulate in f32. Each weight row is read from memory once for up to
/// `chunk` inputs (the whole chunk of x stays in cache while 4-row tiles of weights stream past it). A chunk
/// of 5 or 6 inputs runs as one tile when `wide_tiles` is nonzero, else as two (3 + 2, 3 + 3); the outputs
/// are the same either way.
void mk_q8_vnni_rows(const mk_q8_matrix *w, long r0, long r1, const void *x, long x_row_bytes, long n, long chunk,
                     long wide_tiles, const float *bias, float *y, long ldy);

/// True when this build has AVX512-FP16 and the running CPU supports it.
int mk_has_avx512fp16(void);

/// How many multiply-adds per second `vfmadd231ph` (32 f16 lanes) does relative to `vfmadd231ps` (16 f32
/// lanes) on this core, timed like `mk_bf16_dot_product_speedup`; 0 without AVX512-FP16. Measured on an Intel
/// Xeon family 6 model 207 VM: 2 (both issue at the FMA's rate).
double mk_f16_fma_speedup(void);

/// Products each f16 accumulator lane of `mk_gemm_kernel_f16` sums before it is added to f32 (pairs per flush).
enum { MK_F16_FLUSH_PAIRS = 64 };

/// The power of two that brings the largest |x| of a row (`count` inputs) into [1/2, 1) (1 for a row of zeros
/// or with inf/NaN; within 2^±126).
float mk_f16_row_scale(const float *x, long count);

/// x for the f16 GEMM: `count` inputs of one row multiplied by `scale` and rounded to f16 (nearest even) into
/// `out`, zero-padded to `padded` (≥ count) halves.
void mk_f16_pack_row(const float *x, long count, float scale, uint16_t *out, long padded);

/// A packed f16 weight micro-panel (`kcp` × 32 pairs of f16, 32-bit lanes) multiplied in place by the power of
/// two that brings its largest magnitude to [128, 256) (1 for an all-zero panel), so that MK_F16_FLUSH_PAIRS
/// products of it with inputs |x| ≤ 1 sum to at most 2¹⁴ in f16; returns the inverse of that factor.
float mk_f16_scale_panel(uint32_t *b, long kcp);

/// One f16 GEMM micro-tile (AVX512-FP16): as `mk_gemm_kernel_bf16`, but A and B pairs hold f16 values, each
/// of the 32 lanes of an accumulator (16 features × the two inputs of a pair) sums MK_F16_FLUSH_PAIRS products
/// with `vfmadd231ph` (f16 rounding at each step) and is then added into f32; the two lanes of a feature are
/// added at the end and the sum multiplied by `row_scale[i]·panel_scale` (the inverses of x's and the panel's
/// scale factors) before the bias or C is added.
void mk_gemm_kernel_f16(long kcp, const uint32_t *a, const uint32_t *b, float *c, long ldc, int mr, int width,
                        int accumulate, const float *bias, const float *row_scale, float panel_scale);
