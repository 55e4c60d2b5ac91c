// The AVX512-BF16 dot-product loops (see include/CMirageKernels.h). Compiled with -march=native; without
// AVX512-BF16 the functions are empty and mk_has_avx512bf16() is false, so Swift never calls them.
#include "CMirageKernels.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

int mk_has_avx512bf16(void) {
#if defined(__AVX512BF16__)
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

#if defined(__AVX512BF16__)

INLINE __mmask16 mask16(long count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

// MARK: - GEMM micro-kernel (12 rows × 32 features, 24 zmm accumulators)

void mk_gemm_kernel_bf16(long kcp, const uint32_t *a, const uint32_t *b, float *c, long ldc, int mr, int width,
                         int accumulate, const float *bias) {
    __m512 acc[MK_MR][2];
    for (int i = 0; i < MK_MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (long p = 0; p < kcp; p++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)b);
        const __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(b + 16));
        for (int i = 0; i < MK_MR; i++) {
            const __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[i * MK_A_STRIDE]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, b1);
        }
        a += 1;
        b += 32;
    }
    const __mmask16 m0 = mask16(width), m1 = mask16(width - 16);
    __m512 add0 = _mm512_setzero_ps(), add1 = _mm512_setzero_ps();
    if (!accumulate && bias) {
        add0 = _mm512_maskz_loadu_ps(m0, bias);
        add1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int i = 0; i < mr && i < MK_MR; i++) {
        float *row = c + (size_t)i * ldc;
        if (accumulate) {
            add0 = _mm512_maskz_loadu_ps(m0, row);
            add1 = _mm512_maskz_loadu_ps(m1, row + 16);
        }
        _mm512_mask_storeu_ps(row, m0, _mm512_add_ps(acc[i][0], add0));
        _mm512_mask_storeu_ps(row + 16, m1, _mm512_add_ps(acc[i][1], add1));
    }
}

// MARK: - Mid-n tile

/// Lane q of the result = horizontal sum of a_q (q = 0…3); a fixed reduction order.
INLINE __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    __m512d d0 = _mm512_castps_pd(t0), d1 = _mm512_castps_pd(t1);
    __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)), _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/// One tile for a group of N inputs; N is a constant in each instantiation, so the accumulators live in
/// registers (4 × 6 + 4 weight vectors + 1 input vector = 29 of 32 zmm).
INLINE void midn_tile(int N, const char *data, long row_stride, long cols, const uint32_t *x, long xs,
                      const mk_midn_call *k) {
    const uint16_t *rows[MK_MIDN_R];
    for (int q = 0; q < MK_MIDN_R; q++) // rows past the end repeat the last valid row; their sums are dropped
        rows[q] = (const uint16_t *)(data + (size_t)(k->r + (q < k->valid ? q : k->valid - 1)) * row_stride);
    __m512 acc[MK_MIDN_R][MK_MIDN_NMAX];
    const __m512 *save = (const __m512 *)k->save;
    for (int q = 0; q < MK_MIDN_R; q++)
        for (int i = 0; i < N; i++) acc[q][i] = k->first ? _mm512_setzero_ps() : save[q * N + i];
    // Prefetch this call's share of the tile two tiles ahead, a few lines per chunk (MidNKernel.swift).
    const long lines = (MK_MIDN_R * row_stride + 63) / 64, chunks = (k->c1 - k->c0 + 31) / 32;
    const char *base = data + (size_t)(k->r + 2 * MK_MIDN_R) * row_stride;
    const char *next = base + (size_t)(lines * k->part / k->parts) * 64;
    const char *end = base + (size_t)(lines * (k->part + 1) / k->parts) * 64;
    const long perChunk = ((end - next) / 64 + chunks - 1) / chunks;
    for (long c = k->c0; c < k->c1; c += 32) {
        for (long j = 0; j < perChunk && next < end; j++, next += 64) _mm_prefetch(next, _MM_HINT_T0);
        const long remaining = cols - c;
        const __mmask32 m = remaining >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << remaining) - 1);
        __m512bh wv[MK_MIDN_R];
        for (int q = 0; q < MK_MIDN_R; q++) wv[q] = (__m512bh)_mm512_maskz_loadu_epi16(m, rows[q] + c);
        for (int i = 0; i < N; i++) {
            const __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(x + (size_t)i * xs + c / 2));
            for (int q = 0; q < MK_MIDN_R; q++) acc[q][i] = _mm512_dpbf16_ps(acc[q][i], xv, wv[q]);
        }
    }
    if (!k->last) {
        __m512 *out = (__m512 *)k->save;
        for (int q = 0; q < MK_MIDN_R; q++)
            for (int i = 0; i < N; i++) out[q * N + i] = acc[q][i];
        return;
    }
    const __mmask8 mask = (__mmask8)((1u << k->valid) - 1);
    const __m128 b = k->bias ? _mm_maskz_loadu_ps(mask, k->bias + k->r) : _mm_setzero_ps();
    for (int i = 0; i < N; i++)
        _mm_mask_storeu_ps(k->y + (size_t)i * k->ldy + k->r, mask, _mm_add_ps(hsum4(acc[0][i], acc[1][i], acc[2][i], acc[3][i]), b));
}

#define MIDN_CASE(N) case N: midn_tile(N, (const char *)data, row_stride, cols, x, xs, k); break;

void mk_midn_bf16(const void *data, long row_stride, long cols, const uint32_t *x, long xs, int n,
                  const mk_midn_call *k) {
    switch (n) { MIDN_CASE(1) MIDN_CASE(2) MIDN_CASE(3) MIDN_CASE(4) MIDN_CASE(5) MIDN_CASE(6) default: break; }
}

#else

void mk_gemm_kernel_bf16(long kcp, const uint32_t *a, const uint32_t *b, float *c, long ldc, int mr, int width,
                         int accumulate, const float *bias) {}
void mk_midn_bf16(const void *data, long row_stride, long cols, const uint32_t *x, long xs, int n,
                  const mk_midn_call *k) {}

#endif
