// Inner loops of MirageKernels' linear layers (see include/CMirageKernels.h). Compiled with -march=native;
// the AVX-512 paths need AVX512F/BW/VL, the bf16 GEMM AVX512-BF16.
#include "CMirageKernels.h"

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

int mk_has_avx512bf16(void) {
#if defined(__AVX512BF16__)
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

// MARK: - Loading weights as f32

INLINE __mmask16 mask16(long count) { return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1); }

/// 16 weights of `format` starting at element `c` of a row, lanes outside `m` zero.
INLINE __m512 load_w16(int format, const void *row, long c, __mmask16 m) {
    switch (format) {
    case MK_F32:
        return m == 0xFFFF ? _mm512_loadu_ps((const float *)row + c) : _mm512_maskz_loadu_ps(m, (const float *)row + c);
    case MK_F16: {
        const uint16_t *p = (const uint16_t *)row + c;
        __m256i h = m == 0xFFFF ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16(m, p);
        return _mm512_cvtph_ps(h);
    }
    default: { // MK_BF16: bf16 is the upper half of an f32
        const uint16_t *p = (const uint16_t *)row + c;
        __m256i h = m == 0xFFFF ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16(m, p);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    }
}

/// 16 int8 values widened to f32, lanes outside `m` zero.
INLINE __m512 load_q16(const int8_t *p, __mmask16 m) {
    __m128i b = m == 0xFFFF ? _mm_loadu_si128((const __m128i *)p) : _mm_maskz_loadu_epi8(m, p);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
}

// MARK: - Decode, one input (n = 1; n = 2…8 run the mid-n tile kernel, see Linear.swift)

/// One weight row (f32/f16/bf16) against x: 4 column chunks of 16 in flight, 4 independent FMA chains;
/// the row's ragged tail accumulates into the first chain, then the chains are added in order.
INLINE float decode_row(int format, const mk_weight *w, const float *x, long r) {
    const long cols = w->cols;
    const char *row = (const char *)w->data + (size_t)r * w->row_stride;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    long c = 0;
    for (; c + 64 <= cols; c += 64)
        for (int u = 0; u < 4; u++)
            acc[u] = _mm512_fmadd_ps(load_w16(format, row, c + 16 * u, 0xFFFF), _mm512_loadu_ps(x + c + 16 * u), acc[u]);
    for (; c < cols; c += 16) {
        const __mmask16 m = mask16(cols - c);
        acc[0] = _mm512_fmadd_ps(load_w16(format, row, c, m), _mm512_maskz_loadu_ps(m, x + c), acc[0]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), acc[2]), acc[3]));
}

/// acc0 += group g's first 16 weights · x, acc1 += its last 16 (int8 widened and scaled once).
INLINE void decode_q8_group(const mk_weight *w, const char *row, const char *scales, const float *x, long g,
                            __mmask16 m0, __mmask16 m1, __m512 *acc0, __m512 *acc1) {
    const long c = g * 32;
    const int8_t *q = (const int8_t *)(row + g * w->group_stride);
    const __m512 s = _mm512_set1_ps(*(const float *)(scales + g * w->scale_group_stride));
    const __m512 x0 = m0 == 0xFFFF ? _mm512_loadu_ps(x + c) : _mm512_maskz_loadu_ps(m0, x + c);
    const __m512 x1 = m1 == 0xFFFF ? _mm512_loadu_ps(x + c + 16) : _mm512_maskz_loadu_ps(m1, x + c + 16);
    *acc0 = _mm512_fmadd_ps(_mm512_mul_ps(load_q16(q, m0), s), x0, *acc0);
    *acc1 = _mm512_fmadd_ps(_mm512_mul_ps(load_q16(q + 16, m1), s), x1, *acc1);
}

/// One q8 row against x: two 32-input groups in flight, one accumulator per 16-lane half (4 chains);
/// groups left over (one full, the ragged one) go to the first two, then the chains are added in order.
INLINE float decode_row_q8(const mk_weight *w, const float *x, long r) {
    const long cols = w->cols, groups = (cols + 31) / 32, fullGroups = cols / 32;
    const char *row = (const char *)w->data + (size_t)r * w->row_stride;
    const char *scales = (const char *)w->scales + (size_t)r * w->scale_row_stride;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    long g = 0;
    for (; g + 2 <= fullGroups; g += 2) {
        decode_q8_group(w, row, scales, x, g, 0xFFFF, 0xFFFF, &acc[0], &acc[1]);
        decode_q8_group(w, row, scales, x, g + 1, 0xFFFF, 0xFFFF, &acc[2], &acc[3]);
    }
    for (; g < groups; g++) {
        const long c = g * 32;
        decode_q8_group(w, row, scales, x, g, mask16(cols - c), mask16(cols - c - 16 > 0 ? cols - c - 16 : 0),
                        &acc[0], &acc[1]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), acc[2]), acc[3]));
}

#define DEFINE_DECODE(NAME, ROW)                                                                     \
    static void NAME(const mk_weight *w, const float *x, long r0, long r1, const float *bias, float *y) { \
        for (long r = r0; r < r1; r++) y[r] = ROW + (bias ? bias[r] : 0.0f);                              \
    }
DEFINE_DECODE(decode_f32, decode_row(MK_F32, w, x, r))
DEFINE_DECODE(decode_f16, decode_row(MK_F16, w, x, r))
DEFINE_DECODE(decode_bf16, decode_row(MK_BF16, w, x, r))
DEFINE_DECODE(decode_q8, decode_row_q8(w, x, r))

void mk_decode(const mk_weight *w, const float *x, long r0, long r1, const float *bias, float *y) {
    switch (w->format) {
    case MK_F32: decode_f32(w, x, r0, r1, bias, y); break;
    case MK_F16: decode_f16(w, x, r0, r1, bias, y); break;
    case MK_BF16: decode_bf16(w, x, r0, r1, bias, y); break;
    default: decode_q8(w, x, r0, r1, bias, y); break;
    }
}

// MARK: - GEMM packing

/// In-register transpose of a 16×16 block of 32-bit values: afterwards r[c] holds column c.
INLINE void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int p = 0; p < 8; p++) {
        t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    // u[4q + m], lane L: rows 4q…4q+3 at column 4L + m.
    for (int q = 0; q < 4; q++) {
        __m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 1]);
        __m512d c = _mm512_castps_pd(t[4 * q + 2]), d = _mm512_castps_pd(t[4 * q + 3]);
        u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int m = 0; m < 4; m++) {
        __m512 s0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44);
        __m512 s1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44);
        __m512 s2 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xEE);
        __m512 s3 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xEE);
        r[m] = _mm512_shuffle_f32x4(s0, s1, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(s0, s1, 0xDD);
        r[8 + m] = _mm512_shuffle_f32x4(s2, s3, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(s2, s3, 0xDD);
    }
}

INLINE long kpairs(long k) { return (k + 1) / 2; }

/// K-block sizes: f32 inputs per block, and bf16 pairs per block. NC: most features per task (the
/// Swift side uses exactly NC).
/// MC: x panels per L2-resident block.
enum { KC = 256, KCP = 256, NC = 64, MC = 16 };

/// Packed x is K-block-major: block b holds every panel's slice [b·kc, b·kc + kc) contiguously, so the
/// slices one GEMM block streams through L2 are adjacent (a per-panel layout puts them a multiple of
/// 4 KiB apart for k = 4864, and they thrash the same L2 sets). Offset, in elements, of panel p at
/// input (or pair) k of `depth` with blocks of `block`:
INLINE size_t a_offset(long p, long k, long depth, long panels, long block) {
    const long k0 = k / block * block;
    const long width = depth - k0 < block ? depth - k0 : block;
    return (size_t)k0 * panels * MK_MR + (size_t)p * width * MK_MR + (size_t)(k - k0) * MK_MR;
}

size_t mk_packed_a_bytes(long n, long k, int bf16) {
    long panels = (n + MK_MR - 1) / MK_MR;
    return (size_t)panels * (size_t)(bf16 ? kpairs(k) : k) * MK_MR * 4;
}

/// f32 x panel: [k][MR] floats. bf16: [k/2][MR] pairs (x[i][2p] low half, x[i][2p+1] high), rounded to
/// nearest even as torch's `.to(torch.bfloat16)` (vcvtne2ps2bf16).
void mk_pack_a(const float *x, long n, long k, long p0, long p1, int bf16, void *dst) {
    const __m512 zero = _mm512_setzero_ps();
    const long kp = kpairs(k);
    const long panels = (n + MK_MR - 1) / MK_MR;
    for (long p = p0; p < p1; p++) {
        const long row0 = p * MK_MR;
        const int rows = (int)(n - row0 < MK_MR ? n - row0 : MK_MR);
        if (!bf16) {
            float *out = (float *)dst;
            for (long c = 0; c < k; c += 16) {
                __mmask16 m = mask16(k - c);
                __m512 r[16];
                for (int i = 0; i < 16; i++)
                    r[i] = i < rows ? _mm512_maskz_loadu_ps(m, x + (size_t)(row0 + i) * k + c) : zero;
                transpose16(r);
                const int valid = (int)(k - c < 16 ? k - c : 16);
                float *o = out + a_offset(p, c, k, panels, KC); // 16 inputs never straddle a block
                for (int j = 0; j < valid; j++) _mm512_mask_storeu_ps(o + j * MK_MR, 0x0FFF, r[j]);
            }
        } else {
#if defined(__AVX512BF16__)
            uint32_t *out = (uint32_t *)dst;
            for (long c = 0; c < k; c += 32) { // 32 inputs = 16 pairs
                __mmask16 m0 = mask16(k - c), m1 = mask16(k - c - 16 > 0 ? k - c - 16 : 0);
                __m512 r[16];
                for (int i = 0; i < 16; i++) {
                    if (i < rows) {
                        const float *src = x + (size_t)(row0 + i) * k + c;
                        __m512 lo = _mm512_maskz_loadu_ps(m0, src);
                        __m512 hi = m1 ? _mm512_maskz_loadu_ps(m1, src + 16) : zero;
                        r[i] = _mm512_castsi512_ps((__m512i)_mm512_cvtne2ps_pbh(hi, lo));
                    } else {
                        r[i] = zero;
                    }
                }
                transpose16(r);
                const long pair0 = c / 2;
                const int valid = (int)(kp - pair0 < 16 ? kp - pair0 : 16);
                uint32_t *o = out + a_offset(p, pair0, kp, panels, KCP);
                for (int j = 0; j < valid; j++) _mm512_mask_storeu_ps((float *)(o + j * MK_MR), 0x0FFF, r[j]);
            }
#else
            (void)kp;
#endif
        }
    }
}

size_t mk_gemm_work_bytes(void) { return (size_t)KC * NC * 4; }

/// 16 consecutive packed-depth entries of weight row j from depth index d: f32 inputs d…d+15 converted
/// from the stored format (lanes at or beyond `end` zero), or with `bf16` the 16 bf16 pairs
/// (W[j][2d], W[j][2d+1]) … as 32-bit lanes, unconverted (inputs beyond cols zero).
INLINE __m512 load_b16(const mk_weight *w, long j, long d, long end, int bf16) {
    const char *row = (const char *)w->data + (size_t)j * w->row_stride;
    if (bf16) {
        const long remaining = w->cols - 2 * d;
        __mmask32 m = remaining >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << remaining) - 1);
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m, (const uint16_t *)row + 2 * d));
    }
    __mmask16 m = mask16(end - d);
    switch (w->format) {
    case MK_Q8: { // 16 inputs never straddle a 32-input group
        const long g = d / 32;
        const char *scale = (const char *)w->scales + (size_t)j * w->scale_row_stride + g * w->scale_group_stride;
        return _mm512_mul_ps(load_q16((const int8_t *)(row + g * w->group_stride) + d % 32, m),
                             _mm512_set1_ps(*(const float *)scale));
    }
    case MK_F32: return load_w16(MK_F32, row, d, m);
    case MK_F16: return load_w16(MK_F16, row, d, m);
    default: return load_w16(MK_BF16, row, d, m);
    }
}

/// Packs features [j0, j1) (≤ NC) × depth [d0, d0+kc) as micro-panels [⌈(j1−j0)/32⌉][kc][32] of 32-bit
/// lanes: f32 (converted from the stored format) or, with `bf16`, bf16 pairs. Features beyond j1 are zero.
static void pack_b(const mk_weight *w, long j0, long j1, long d0, long kc, int bf16, float *dst) {
    const __m512 zero = _mm512_setzero_ps();
    for (long jj = j0; jj < j1; jj += 16) {
        const long panel = (jj - j0) / 32, half = ((jj - j0) / 16) % 2;
        float *out = dst + (size_t)panel * kc * 32 + half * 16;
        for (long c = 0; c < kc; c += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = jj + i < j1 ? load_b16(w, jj + i, d0 + c, d0 + kc, bf16) : zero;
            transpose16(r);
            const int valid = (int)(kc - c < 16 ? kc - c : 16);
            for (int t = 0; t < valid; t++) _mm512_storeu_ps(out + (c + t) * 32, r[t]);
        }
    }
    // A trailing half panel (j1 − j0 not a multiple of 32) is zero-filled.
    const long width = j1 - j0;
    if (width % 32 != 0 && width % 32 <= 16) {
        float *out = dst + (size_t)(width / 32) * kc * 32 + 16;
        for (long c = 0; c < kc; c++) _mm512_storeu_ps(out + c * 32, zero);
    }
}

// MARK: - Micro-kernels (12 rows × 32 features, 24 zmm accumulators)

/// Writes or accumulates a 12×32 tile: rows < mr, columns per masks; `bias` (32 entries) only when
/// not accumulating.
INLINE void store_tile(__m512 c[MK_MR][2], float *C, long ldc, int mr, __mmask16 m0, __mmask16 m1,
                       int accumulate, const float *bias) {
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (!accumulate && bias) {
        b0 = _mm512_maskz_loadu_ps(m0, bias);
        b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int i = 0; i < MK_MR; i++) {
        if (i >= mr) break;
        float *row = C + (size_t)i * ldc;
        if (accumulate) {
            b0 = _mm512_maskz_loadu_ps(m0, row);
            b1 = _mm512_maskz_loadu_ps(m1, row + 16);
        }
        _mm512_mask_storeu_ps(row, m0, _mm512_add_ps(c[i][0], b0));
        _mm512_mask_storeu_ps(row + 16, m1, _mm512_add_ps(c[i][1], b1));
    }
}

static void kernel_f32(long kc, const float *restrict A, const float *restrict B, float *C, long ldc, int mr,
                       __mmask16 m0, __mmask16 m1, int accumulate, const float *bias) {
    __m512 c[MK_MR][2];
    for (int i = 0; i < MK_MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (long k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(B), b1 = _mm512_load_ps(B + 16);
        for (int i = 0; i < MK_MR; i++) {
            __m512 a = _mm512_set1_ps(A[i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
        A += MK_MR;
        B += 32;
    }
    store_tile(c, C, ldc, mr, m0, m1, accumulate, bias);
}

#if defined(__AVX512BF16__)
static void kernel_bf16(long kcp, const uint32_t *restrict A, const uint32_t *restrict B, float *C, long ldc,
                        int mr, __mmask16 m0, __mmask16 m1, int accumulate, const float *bias) {
    __m512 c[MK_MR][2];
    for (int i = 0; i < MK_MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (long k = 0; k < kcp; k++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)B);
        __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(B + 16));
        for (int i = 0; i < MK_MR; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[i]);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
            c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
        }
        A += MK_MR;
        B += 32;
    }
    store_tile(c, C, ldc, mr, m0, m1, accumulate, bias);
}
#endif

void mk_gemm_task(const mk_weight *w, const void *packed_a, long n, long j0, long j1, const float *bias,
                  float *y, long ldy, int bf16, void *work) {
#if !defined(__AVX512BF16__)
    if (bf16) return; // mk_has_avx512bf16() is false, so the Swift side never asks for it
#endif
    // Depth counts f32 inputs, or bf16 pairs; both packed element types are 4 bytes, so panel offsets
    // are the same expressions.
    const long depth = bf16 ? kpairs(w->cols) : w->cols;
    const long block = bf16 ? KCP : KC;
    const long panels = (n + MK_MR - 1) / MK_MR;
    for (long k0 = 0; k0 < depth; k0 += block) {
        const long kc = depth - k0 < block ? depth - k0 : block;
        pack_b(w, j0, j1, k0, kc, bf16, (float *)work);
        // BLIS order: MC panels of x (~200 KB) stay in L2 while every weight micro-panel (32 KB, L1)
        // meets them; x therefore comes from L3 once per block, not once per micro-panel.
        for (long pm = 0; pm < panels; pm += MC)
            for (long jj = j0; jj < j1; jj += 32) {
                const long width = j1 - jj;
                __mmask16 m0 = mask16(width), m1 = mask16(width > 16 ? width - 16 : 0);
                const size_t b = (size_t)((jj - j0) / 32) * kc * 32;
                for (long p = pm; p < panels && p < pm + MC; p++) {
                    const int mr = (int)(n - p * MK_MR < MK_MR ? n - p * MK_MR : MK_MR);
                    const size_t a = a_offset(p, k0, depth, panels, block);
                    float *C = y + (size_t)p * MK_MR * ldy + jj;
                    const float *tileBias = bias ? bias + jj : 0;
#if defined(__AVX512BF16__)
                    if (bf16) {
                        kernel_bf16(kc, (const uint32_t *)packed_a + a, (const uint32_t *)work + b, C, ldy, mr,
                                    m0, m1, k0 > 0, tileBias);
                        continue;
                    }
#endif
                    kernel_f32(kc, (const float *)packed_a + a, (const float *)work + b, C, ldy, mr, m0, m1,
                               k0 > 0, tileBias);
                }
            }
    }
}

// MARK: - Mid-n (n = 9…MK_MIDN_MAX_ROWS, and decode n = 2…8 with f32 x): the decode path, register-blocked over inputs

// For a few dozen rows of x (OPERA's 25 candidate rows) the GEMM path computes whole 12-row panels
// (25 rows → 36) and packs every weight panel it streams; here weights are streamed once, unpacked,
// as on the decode path, and each tile of MIDN_R = 4 consecutive weight rows (one sequential stream,
// 4 rows apart is contiguous memory) is dotted with all n inputs while it sits in L1:
//
//   for each 4-row tile of the task:                 weights: from DRAM once (prefetched 2 tiles ahead)
//     for each column block (512 inputs; whole rows ≤ 1024):   q8: block dequantized once to f32
//       for each group of N ≤ 6 inputs:                x: n rows, from L1/L2 once per tile
//         accumulators: zero, or parked by the previous block
//         for each 32-input chunk (16 for f32 FMA):    4 weight loads + N x loads → 4·N FMAs / dot products
//                                                      (q8 with a single group: widened in registers instead)
//         last block: 4·N horizontal sums, 4 at a time (hsum4), + bias → y[i][r…r+3]; else park them
//
// 4 × 6 accumulators + 4 weight vectors + 1 x vector = 29 of 32 zmm registers. The n inputs are split
// into ⌈n/6⌉ groups of nearly equal size (25 = 5+5+5+5+5), so no group runs with a sliver of inputs.
// Every accumulator sums its (row, input) products in the same chunk order whatever the tile, group,
// block or task, so an output does not depend on n, on the row's position in a tile, or on threading.

enum { MIDN_R = 4, MIDN_NMAX = 6 };

/// Column blocks. A tile's weights for a whole row of `down` (4 × 4864 bf16 = 39 KB) do not stay in
/// L1 while x streams past them, so rows longer than MIDN_KC_WHOLE inputs run in blocks of MIDN_KC
/// (4 × 512 inputs = 4 KB of bf16 weights, 8 KB of f32), every input group passing over a block before
/// the next; the groups' accumulators are parked in memory between blocks (4·N stores and loads per
/// block), so the summation order, and every result, is the same as without blocks. Single core,
/// n = 25, 896 × 4864 bf16, hot: 280 → 337 GFLOP/s; 20000 × 4864 from DRAM: 200 → 265. Blocks of
/// 512 for 896-input rows cost 10% (parking), so those run whole.
enum { MIDN_KC = 512, MIDN_KC_WHOLE = 1024 };

/// Software prefetch of a later tile's weights. A 4-row tile is one contiguous region but is read as
/// 4 streams a row apart, which the hardware prefetcher does not run ahead of, so every call on a tile
/// prefetches its share of the tile MIDN_PF_TILES ahead, a few lines per chunk, spread evenly over the
/// tile's (column block, input group) calls. Measured single core from DRAM, 100000 × 896 bf16,
/// n = 25: no prefetch (2 threads, 24 layers) 54 ms → prefetch during the first group only 46 ms;
/// spread over all groups 20.5 → 13.8 ms single core (219 → 324 GFLOP/s). Distances of 1…16 tiles and
/// the T0/T1/T2/NTA hints were all within ±5%.
enum { MIDN_PF_TILES = 2 };

/// One kernel call: rows [r, r + valid) of W (valid ≤ 4) against one group of N inputs over columns
/// [c0, c1); accumulators start at zero (`first`) or from `save`, and end as sums in y (`last`, + bias)
/// or back in `save` (4·N vectors, index q·N + i). Prefetch share `part` of `parts`. `deq`: the
/// tile's q8 weights over [c0, c1) dequantized to f32 (row q at deq + q·MIDN_KC_WHOLE, column c at
/// offset c − c0), or null.
typedef struct {
    long r, c0, c1;
    int valid, first, last, part, parts;
    __m512 *save;
    const float *deq;
    const float *bias;
    float *y;
    long ldy;
} midn_call;

typedef struct { const char *next, *end; long perChunk; } midn_prefetch;

INLINE midn_prefetch midn_prefetch_plan(const mk_weight *w, const midn_call *k, long chunks) {
    const long lines = (MIDN_R * w->row_stride + 63) / 64;
    const char *base = (const char *)w->data + (size_t)(k->r + MIDN_PF_TILES * MIDN_R) * w->row_stride;
    midn_prefetch p;
    p.next = base + (size_t)(lines * k->part / k->parts) * 64;
    p.end = base + (size_t)(lines * (k->part + 1) / k->parts) * 64;
    p.perChunk = ((p.end - p.next) / 64 + chunks - 1) / chunks;
    return p;
}

INLINE void midn_prefetch_step(midn_prefetch *p) {
    for (long j = 0; j < p->perChunk && p->next < p->end; j++, p->next += 64) _mm_prefetch(p->next, _MM_HINT_T0);
}

/// Lane q of the result = horizontal sum of a_q (q = 0…3); a fixed reduction order.
INLINE __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    // Per 128-bit lane: t0 = (a0[0]+a0[2], a1[0]+a1[2], a0[1]+a0[3], a1[1]+a1[3]), t1 likewise for a2, a3.
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    // Per 128-bit lane: (a0, a1, a2, a3) partial sums.
    __m512d d0 = _mm512_castps_pd(t0), d1 = _mm512_castps_pd(t1);
    __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)), _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/// Accumulators at the start of a call: zero, or parked by the previous column block.
INLINE void midn_begin(int N, __m512 acc[MIDN_R][MIDN_NMAX], const midn_call *k) {
    for (int q = 0; q < MIDN_R; q++)
        for (int i = 0; i < N; i++) acc[q][i] = k->first ? _mm512_setzero_ps() : k->save[q * N + i];
}

/// At the end of a call: park the accumulators, or store the 4·N sums (+ bias) to y[i·ldy + r + q]
/// for q < valid.
INLINE void midn_end(int N, __m512 acc[MIDN_R][MIDN_NMAX], const midn_call *k) {
    if (!k->last) {
        for (int q = 0; q < MIDN_R; q++)
            for (int i = 0; i < N; i++) k->save[q * N + i] = acc[q][i];
        return;
    }
    const __mmask8 m = (__mmask8)((1u << k->valid) - 1);
    const __m128 b = k->bias ? _mm_maskz_loadu_ps(m, k->bias + k->r) : _mm_setzero_ps();
    for (int i = 0; i < N; i++) {
        __m128 s = _mm_add_ps(hsum4(acc[0][i], acc[1][i], acc[2][i], acc[3][i]), b);
        _mm_mask_storeu_ps(k->y + (size_t)i * k->ldy + k->r, m, s);
    }
}

/// Row q of the tile; rows past the end repeat the last valid row (their sums are computed and dropped).
INLINE long midn_row_index(const midn_call *k, int q) { return k->r + (q < k->valid ? q : k->valid - 1); }
INLINE const char *midn_row(const mk_weight *w, const midn_call *k, int q) {
    return (const char *)w->data + (size_t)midn_row_index(k, q) * w->row_stride;
}

/// Format code of a tile's weights already widened into `deq` (midn_dequantize).
enum { MIDN_DEQ = -1 };

/// Dequantizes a q8 tile's weights over [c0, c1) to f32 once, into `deq` (each 32-input group widened
/// and multiplied by its scale: the values the decode path forms). Converting inside the group loop
/// repeats it for every input group (5 times for n = 25), and for q8 that costs nearly as many
/// instructions as the FMAs (24 n = 25 layers: 55.7 → 51.0 ms). For f16 the same pass made it slower
/// (52.2 → 64.8 ms): one vcvtph2ps per weight vector hides behind the FMAs, a store-and-reload does not.
static void midn_dequantize(const mk_weight *w, const midn_call *k, float *deq) {
    const long cols = w->cols;
    for (int q = 0; q < MIDN_R; q++) {
        const long row = midn_row_index(k, q);
        const char *data = (const char *)w->data + (size_t)row * w->row_stride;
        float *out = deq + (size_t)q * MIDN_KC_WHOLE; // column c at out[c − c0]
        const char *scales = (const char *)w->scales + (size_t)row * w->scale_row_stride;
        for (long g = k->c0 / 32; g * 32 < k->c1; g++) {
            const long c = g * 32;
            const __m512 s = _mm512_set1_ps(*(const float *)(scales + g * w->scale_group_stride));
            const int8_t *v = (const int8_t *)(data + g * w->group_stride);
            _mm512_store_ps(out + (c - k->c0), _mm512_mul_ps(load_q16(v, mask16(cols - c)), s));
            _mm512_store_ps(out + (c - k->c0) + 16, _mm512_mul_ps(load_q16(v + 16, mask16(cols - c - 16 > 0 ? cols - c - 16 : 0)), s));
        }
    }
}

/// f32 FMA on 16-input chunks: f32/f16/bf16 weights widened by load_w16 per group, or (MIDN_DEQ) q8
/// weights dequantized once into `deq`; x f32 (row stride xs).
INLINE void midn_tile_f32(int format, int N, const mk_weight *w, const float *x, long xs, const midn_call *k) {
    const long cols = w->cols;
    const char *rows[MIDN_R], *scales[MIDN_R];
    for (int q = 0; q < MIDN_R; q++) {
        rows[q] = midn_row(w, k, q);
        if (format == MK_Q8) scales[q] = (const char *)w->scales + (size_t)midn_row_index(k, q) * w->scale_row_stride;
    }
    __m512 acc[MIDN_R][MIDN_NMAX];
    midn_begin(N, acc, k);
    midn_prefetch pf = midn_prefetch_plan(w, k, (k->c1 - k->c0 + 15) / 16);
    for (long c = k->c0; c < k->c1; c += 16) {
        midn_prefetch_step(&pf);
        const __mmask16 m = mask16(cols - c);
        __m512 wv[MIDN_R];
        for (int q = 0; q < MIDN_R; q++) {
            if (format == MIDN_DEQ) {
                wv[q] = _mm512_load_ps(k->deq + (size_t)q * MIDN_KC_WHOLE + (c - k->c0));
            } else if (format == MK_Q8) { // the product midn_dequantize forms, in a register
                const long g = c / 32;
                const __m512 sv = _mm512_set1_ps(*(const float *)(scales[q] + g * w->scale_group_stride));
                wv[q] = _mm512_mul_ps(load_q16((const int8_t *)(rows[q] + g * w->group_stride) + c % 32, m), sv);
            } else {
                wv[q] = load_w16(format, rows[q], c, m);
            }
        }
        for (int i = 0; i < N; i++) {
            // x rows are zero-padded to a multiple of 32 inputs: no mask needed.
            const __m512 xv = _mm512_loadu_ps(x + (size_t)i * xs + c);
            for (int q = 0; q < MIDN_R; q++) acc[q][i] = _mm512_fmadd_ps(wv[q], xv, acc[q][i]);
        }
    }
    midn_end(N, acc, k);
}

#if defined(__AVX512BF16__)
/// bf16 with vdpbf16ps on 32-input chunks: weights as stored, x rounded to bf16 pairs (row stride xs
/// pairs). Each instruction does 32 multiply-adds, twice the f32 FMA's 16.
INLINE void midn_tile_bf16(int N, const mk_weight *w, const uint32_t *x, long xs, const midn_call *k) {
    const long cols = w->cols;
    const uint16_t *rows[MIDN_R];
    for (int q = 0; q < MIDN_R; q++) rows[q] = (const uint16_t *)midn_row(w, k, q);
    __m512 acc[MIDN_R][MIDN_NMAX];
    midn_begin(N, acc, k);
    midn_prefetch pf = midn_prefetch_plan(w, k, (k->c1 - k->c0 + 31) / 32);
    for (long c = k->c0; c < k->c1; c += 32) {
        midn_prefetch_step(&pf);
        const long remaining = cols - c;
        const __mmask32 m = remaining >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << remaining) - 1);
        __m512bh wv[MIDN_R];
        for (int q = 0; q < MIDN_R; q++) wv[q] = (__m512bh)_mm512_maskz_loadu_epi16(m, rows[q] + c);
        for (int i = 0; i < N; i++) {
            const __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(x + (size_t)i * xs + c / 2));
            for (int q = 0; q < MIDN_R; q++) acc[q][i] = _mm512_dpbf16_ps(acc[q][i], xv, wv[q]);
        }
    }
    midn_end(N, acc, k);
}
#define MIDN_BF16_CALL(N) midn_tile_bf16(N, w, (const uint32_t *)x, xs, k);
#else
#define MIDN_BF16_CALL(N) return; // mk_has_avx512bf16() is false, so the Swift side never asks for it
#endif

/// One call for a group of N inputs; N is a constant in each instantiation, so the accumulator arrays
/// live in registers.
#define DEFINE_MIDN(N)                                                                                    \
    static void midn_group_##N(const mk_weight *w, const void *x, long xs, int bf16, const midn_call *k) { \
        if (bf16) {                                                                                       \
            MIDN_BF16_CALL(N)                                                                             \
        } else if (k->deq) {                                                                              \
            midn_tile_f32(MIDN_DEQ, N, w, (const float *)x, xs, k);                                       \
        } else if (w->format == MK_F32) {                                                                 \
            midn_tile_f32(MK_F32, N, w, (const float *)x, xs, k);                                         \
        } else if (w->format == MK_Q8) {                                                                  \
            midn_tile_f32(MK_Q8, N, w, (const float *)x, xs, k);                                          \
        } else if (w->format == MK_F16) {                                                                 \
            midn_tile_f32(MK_F16, N, w, (const float *)x, xs, k);                                         \
        } else {                                                                                          \
            midn_tile_f32(MK_BF16, N, w, (const float *)x, xs, k);                                        \
        }                                                                                                 \
    }
DEFINE_MIDN(1) DEFINE_MIDN(2) DEFINE_MIDN(3) DEFINE_MIDN(4) DEFINE_MIDN(5) DEFINE_MIDN(6)
static void (*const midn_table[MIDN_NMAX])(const mk_weight *, const void *, long, int, const midn_call *) = {
    midn_group_1, midn_group_2, midn_group_3, midn_group_4, midn_group_5, midn_group_6};

/// Row stride of packed x, in 32-bit elements (f32 values or bf16 pairs): cols padded to 32 inputs.
INLINE long midn_stride(long cols, int bf16) { return bf16 ? (cols + 31) / 32 * 16 : (cols + 31) / 32 * 32; }

size_t mk_midn_packed_bytes(long n, long cols, int bf16) { return (size_t)n * midn_stride(cols, bf16) * 4; }

void mk_midn_pack(const float *x, long n, long cols, int bf16, void *dst) {
    const long xs = midn_stride(cols, bf16);
    for (long i = 0; i < n; i++) {
        const float *src = x + (size_t)i * cols;
        if (!bf16) {
            float *out = (float *)dst + (size_t)i * xs;
            for (long c = 0; c < xs; c += 16) _mm512_storeu_ps(out + c, _mm512_maskz_loadu_ps(mask16(cols - c > 0 ? cols - c : 0), src + c));
            continue;
        }
#if defined(__AVX512BF16__)
        uint32_t *out = (uint32_t *)dst + (size_t)i * xs;
        for (long c = 0; c < 2 * xs; c += 32) { // 32 inputs → 16 pairs, rounded to nearest even
            const long left = cols - c;
            const __m512 lo = _mm512_maskz_loadu_ps(mask16(left > 0 ? left : 0), src + c);
            const __m512 hi = _mm512_maskz_loadu_ps(mask16(left > 16 ? left - 16 : 0), src + c + 16);
            _mm512_storeu_si512((void *)(out + c / 2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
#endif
    }
}

void mk_midn(const mk_weight *w, const void *packed_x, long n, long r0, long r1, const float *bias, float *y,
             long ldy, int bf16) {
    if (n < 1 || n > MK_MIDN_MAX_ROWS || r0 >= r1) return;
    const long xs = midn_stride(w->cols, bf16);
    const long groups = (n + MIDN_NMAX - 1) / MIDN_NMAX;
    const long base = n / groups, extra = n % groups; // the first `extra` groups take base + 1 inputs
    const long kc = w->cols <= MIDN_KC_WHOLE ? w->cols : MIDN_KC;
    const long blocks = (w->cols + kc - 1) / kc;
    // Accumulators parked between column blocks: 4·N per group, n·4 vectors in all (≤ 32 KB).
    __m512 save[MK_MIDN_MAX_ROWS * MIDN_R];
    // q8: the tile's block dequantized to f32 once (≤ 16 KB, L1). With one input group (n ≤ 6) each
    // weight is widened once anyway, in registers, which skips the store and reload (24 layers + LM
    // head, n = 5: 22.2 → 16.2 ms).
    const int widen = w->format == MK_Q8 && groups > 1;
    float deq[MIDN_R * MIDN_KC_WHOLE] __attribute__((aligned(64)));
    midn_call k = {.ldy = ldy, .bias = bias, .parts = (int)(blocks * groups), .deq = widen ? deq : 0};
    for (long r = r0; r < r1; r += MIDN_R) {
        k.r = r;
        k.valid = (int)(r1 - r < MIDN_R ? r1 - r : MIDN_R);
        for (long b = 0; b < blocks; b++) {
            k.c0 = b * kc;
            k.c1 = k.c0 + kc < w->cols ? k.c0 + kc : w->cols;
            k.first = b == 0;
            k.last = b == blocks - 1;
            if (widen) midn_dequantize(w, &k, deq);
            long i0 = 0;
            for (long g = 0; g < groups; g++) {
                const long size = base + (g < extra ? 1 : 0);
                k.part = (int)(b * groups + g);
                k.save = save + i0 * MIDN_R;
                k.y = y + (size_t)i0 * ldy;
                midn_table[size - 1](w, (const char *)packed_x + (size_t)i0 * xs * 4, xs, bf16, &k);
                i0 += size;
            }
        }
    }
}
