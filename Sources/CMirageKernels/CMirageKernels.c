// The AVX512-BF16 and AVX512-VNNI dot-product loops (see include/CMirageKernels.h). Compiled with
// -march=native; without the instructions the functions are empty and mk_has_avx512bf16() /
// mk_has_avx512vnni() are false, so Swift never calls them.
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

#include <x86intrin.h>

// 16 chains: enough independent work to reach either instruction's issue rate (latency ≤ 8 cycles at
// 2 per cycle). The empty asm makes the multiplier opaque each step, so no step can be hoisted or folded.
#define PROBE_CHAINS 16
#define PROBE_STEPS 2000

// A probe: PROBE_CHAINS accumulators (`init`, with i the chain), each PROBE_STEPS dependent `step`s on
// `acc[i]` and the multiplier `b`; returns the TSC ticks and adds every accumulator (`sum`) to *sink.
#define DEFINE_PROBE(name, acc_type, init, b_type, b_value, step, sum)       \
    static uint64_t name(float *sink) {                                       \
        acc_type acc[PROBE_CHAINS];                                           \
        for (int i = 0; i < PROBE_CHAINS; i++) acc[i] = init;                 \
        b_type b = b_value;                                                   \
        const uint64_t t0 = __rdtsc();                                        \
        for (int s = 0; s < PROBE_STEPS; s++) {                               \
            for (int i = 0; i < PROBE_CHAINS; i++) acc[i] = step;             \
            __asm__ volatile("" : "+v"(b));                                   \
        }                                                                     \
        const uint64_t t = __rdtsc() - t0;                                    \
        for (int i = 0; i < PROBE_CHAINS; i++) *sink += sum;                  \
        return t;                                                             \
    }

DEFINE_PROBE(probe_fma, __m512, _mm512_set1_ps((float)i), __m512, _mm512_set1_ps(1e-7f),
             _mm512_fmadd_ps(b, b, acc[i]), _mm512_reduce_add_ps(acc[i]))
// b: 1e-7 in both bf16 halves.
DEFINE_PROBE(probe_dpbf16, __m512, _mm512_set1_ps((float)i), __m512bh, (__m512bh)_mm512_set1_epi32(0x33d633d6),
             _mm512_dpbf16_ps(acc[i], b, b), _mm512_reduce_add_ps(acc[i]))

/// Multiply-adds per second of `probe`'s instruction (32 per instruction) over those of the FMA (16 each), from
/// the same instruction count: the fastest of seven alternated runs of each (a preempted run only ever counts
/// slower).
static double probe_speedup(uint64_t (*probe)(float *)) {
    volatile float sink = 0;
    float s = 0;
    uint64_t fma = UINT64_MAX, other = UINT64_MAX;
    for (int round = 0; round < 7; round++) {
        const uint64_t f = probe_fma(&s), d = probe(&s);
        if (f < fma) fma = f;
        if (d < other) other = d;
    }
    sink = s;
    (void)sink;
    return other > 0 ? 2.0 * (double)fma / (double)other : 0;
}

double mk_bf16_dot_product_speedup(void) {
    if (!mk_has_avx512bf16()) return 0;
    return probe_speedup(probe_dpbf16);
}

#else

double mk_bf16_dot_product_speedup(void) { return 0; }

#endif

#if defined(__AVX512F__)

INLINE __mmask16 mask16(long count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

/// Lane q of the result = horizontal sum of a_q (q = 0…3); a fixed reduction order.
INLINE __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    __m512d d0 = _mm512_castps_pd(t0), d1 = _mm512_castps_pd(t1);
    __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)), _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

#endif

#if defined(__AVX512BF16__)

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

// MARK: - q8 × int8 activations with vpdpbusd (AVX512-VNNI)

int mk_has_avx512vnni(void) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    return __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)

// Activations are quantized per 32-input group as llama.cpp quantizes Q8_0 blocks (ggml/src/ggml-quants.c,
// quantize_row_q8_0_ref: d = amax / 127, q = round(x / d)); ggml rounds half away from zero and stores d
// as f16, here ties go to even (as its AVX2 path, ggml/src/ggml-cpu/arch/x86/quants.c) and d stays f32.
void mk_q8_quantize_rows(const float *x, long cols, long ldx, long i0, long i1, void *out, long row_bytes) {
    const long groups = (cols + 31) / 32, pairs = (groups + 1) / 2;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (long i = i0; i < i1; i++) {
        const float *row = x + (size_t)i * ldx;
        char *o = (char *)out + (size_t)i * row_bytes;
        for (long p = 0; p < pairs; p++) {
            char *pair = o + (size_t)p * MK_Q8_PAIR_BYTES;
            __m512i corr = _mm512_setzero_si512();
            __m512 scale = _mm512_setzero_ps();
            for (int h = 0; h < 2; h++) {
                const long g = 2 * p + h, c0 = g * 32;
                __m256i q = _mm256_setzero_si256();
                if (g < groups) {
                    const __m512 a = _mm512_maskz_loadu_ps(mask16(cols - c0), row + c0);
                    const __m512 b = _mm512_maskz_loadu_ps(mask16(cols - c0 - 16), row + c0 + 16);
                    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, a), _mm512_andnot_ps(sign, b)));
                    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
                    const __m512 vid = _mm512_set1_ps(id);
                    const __m512i qa = _mm512_cvt_roundps_epi32(_mm512_mul_ps(a, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    const __m512i qb = _mm512_cvt_roundps_epi32(_mm512_mul_ps(b, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(qa)), _mm512_cvtepi32_epi8(qb), 1);
                    const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
                    corr = _mm512_mask_set1_epi32(corr, (__mmask16)(1u << (8 * h)), -128 * sum);
                    scale = _mm512_mask_mov_ps(scale, (__mmask16)(0xFFu << (8 * h)), _mm512_set1_ps(d));
                }
                _mm256_storeu_si256((__m256i *)(pair + 32 * h), q);
            }
            _mm512_storeu_si512((void *)(pair + 64), corr);
            _mm512_storeu_ps((void *)(pair + 128), scale);
        }
    }
}

/// Row q's weights for pair p of a tile (rows at v[q], scales at s[q]): the 64 values offset to unsigned
/// (w + 128, an xor of the sign bit) in *wv and the two group scales in the lanes of their groups in *dw. At
/// the row's end (p ≥ full_pairs) a partial group and/or a missing second group read as zero weights with
/// zero scale.
INLINE void q8_pair_weights(const mk_q8_matrix *w, const char *v, const char *s, long p, long full_pairs,
                            __m512i *wv, __m512 *dw) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const long gs = w->group_stride, ss = w->scale_group_stride;
    const char *g0 = v + (size_t)(2 * p) * gs, *s0 = s + (size_t)(2 * p) * ss;
    if (p < full_pairs) {
        const __m256i lo = _mm256_loadu_si256((const __m256i *)g0);
        const __m256i hi = _mm256_loadu_si256((const __m256i *)(g0 + gs));
        *wv = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), flip);
        *dw = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_broadcast_ss((const float *)s0)),
                                 _mm256_broadcast_ss((const float *)(s0 + ss)), 1);
    } else {
        const long c0 = 2 * p * 32, n0 = w->cols - c0, n1 = w->cols - c0 - 32;
        const __mmask32 m0 = n0 >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << n0) - 1);
        const __mmask32 m1 = n1 >= 32 ? 0xFFFFFFFFu : n1 <= 0 ? 0u : (__mmask32)((1u << n1) - 1);
        const __m256i lo = _mm256_maskz_loadu_epi8(m0, g0);
        const __m256i hi = n1 > 0 ? _mm256_maskz_loadu_epi8(m1, g0 + gs) : _mm256_setzero_si256();
        *wv = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), flip);
        const __m256 d1 = n1 > 0 ? _mm256_broadcast_ss((const float *)(s0 + ss)) : _mm256_setzero_ps();
        *dw = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_broadcast_ss((const float *)s0)), d1, 1);
    }
}

/// One (row, input) step of a pair: input pair bytes at xp (values, correction, scales); one vpdpbusd started
/// from the input's −128·Σq correction gives 8 exact partial sums per group, which are converted, scaled by
/// d_w·d_x and added to the f32 accumulator.
/// The multiply-add is written as the instruction (acc += a·b, `vfmadd231ps`, the accumulator its
/// destination): with the intrinsic, clang chose the 213 form with the scale product as destination, so each
/// accumulator moved to another register every pair and the loop ended in 16–24 register moves and spills.
INLINE __m512 q8_pair_step(__m512 acc, __m512i wv, __m512 dw, const char *xp) {
    const __m512i xv = _mm512_loadu_si512((const void *)xp);
    const __m512i corr = _mm512_loadu_si512((const void *)(xp + 64));
    const __m512 dx = _mm512_loadu_ps((const void *)(xp + 128));
    const __m512 sums = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(corr, wv, xv)), scale = _mm512_mul_ps(dw, dx);
    __asm__("vfmadd231ps %2, %1, %0" : "+v"(acc) : "v"(sums), "v"(scale));
    return acc;
}

/// Pairs [p0, p1) of a tile (`full`: every one of them whole, a constant after inlining, so the main loop
/// has no tail branch): acc[q][i] += each pair's `q8_pair_step` for row q and input i, in pair order.
/// N ≤ 4: per pair, the 4 rows' weights are prepared once into registers and every input meets all four:
/// 16 accumulators + 4 weight vectors + 4 scale vectors + 3 input vectors fit the 32 zmm registers.
/// N = 5, 6 (a beam step's 5 sequences in one tile instead of 3 + 2, so each pair's weights are prepared
/// once, not twice): 24 accumulators leave no room for 4 rows' weights, so the rows take turns (one row's
/// weight and scale vectors live at a time) and each row reads the inputs again from L1 (memory operands).
/// The empty volatile asm statements make the input pointer opaque per input (N ≤ 4) or row (N ≥ 5) and
/// pin that step's accumulator updates before the next step's loads: without them clang hoisted every
/// input's loads (or the next rows' vpdpbusd) to the top of the pair and spilled accumulators to the stack
/// in every pair (objdump; the N ≤ 4 loop before this change spilled 2 and moved 16 per pair). With `full`
/// the weights' bounds check folds away (p < p + 1). Prefetches `per_pair` lines from *pf (up to pf_end)
/// per pair.
INLINE void q8_tile_pairs(int N, int full, const mk_q8_matrix *w, const char *const v[4], const char *const s[4],
                          const char *x, long xs, long p0, long p1, long full_pairs, __m512 acc[4][6],
                          const char **pf, const char *pf_end, long per_pair) {
    for (long p = p0; p < p1; p++) {
        for (long j = 0; j < per_pair && *pf < pf_end; j++, *pf += 64) _mm_prefetch(*pf, _MM_HINT_T0);
        const char *xp = x + (size_t)p * MK_Q8_PAIR_BYTES;
        if (N <= 4) {
            __m512i wv[4];
            __m512 dw[4];
            for (int q = 0; q < 4; q++) q8_pair_weights(w, v[q], s[q], p, full ? p + 1 : full_pairs, &wv[q], &dw[q]);
            for (int i = 0; i < N; i++) {
                const char *xi = xp + (size_t)i * xs;
                __asm__ volatile("" : "+r"(xi));
                for (int q = 0; q < 4; q++) acc[q][i] = q8_pair_step(acc[q][i], wv[q], dw[q], xi);
                __asm__ volatile("" : "+v"(acc[0][i]), "+v"(acc[1][i]), "+v"(acc[2][i]), "+v"(acc[3][i]));
            }
        } else {
#pragma clang loop unroll(full)
            for (int q = 0; q < 4; q++) {
                __m512i wv;
                __m512 dw;
                q8_pair_weights(w, v[q], s[q], p, full ? p + 1 : full_pairs, &wv, &dw);
                const char *xq = xp;
                __asm__ volatile("" : "+r"(xq));
                for (int i = 0; i < N; i++) acc[q][i] = q8_pair_step(acc[q][i], wv, dw, xq + (size_t)i * xs);
                if (N == 5) __asm__ volatile("" : "+v"(acc[q][0]), "+v"(acc[q][1]), "+v"(acc[q][2]), "+v"(acc[q][3]), "+v"(acc[q][4]));
                else __asm__ volatile("" : "+v"(acc[q][0]), "+v"(acc[q][1]), "+v"(acc[q][2]), "+v"(acc[q][3]), "+v"(acc[q][4]), "+v"(acc[q][5]));
            }
        }
    }
}

/// One tile: weight rows r … r + valid − 1 (valid ≤ 4; missing rows repeat the last, their sums dropped)
/// against N ≤ 6 quantized inputs (`q8_tile_pairs`): the whole pairs, then the row's ragged end. Optionally
/// prefetches `pf_lines` lines from `pf` spread over the pairs (the weights of a later tile).
INLINE void q8_tile(int N, const mk_q8_matrix *w, long r, int valid, const char *x, long xs, long i0,
                    const float *bias, float *y, long ldy, const char *pf, long pf_lines) {
    const long groups = (w->cols + 31) / 32, pairs = (groups + 1) / 2, full_pairs = w->cols / 64;
    const char *v[4], *s[4];
    for (int q = 0; q < 4; q++) {
        const long row = r + (q < valid ? q : valid - 1);
        v[q] = (const char *)w->values + (size_t)row * w->row_stride;
        s[q] = (const char *)w->scales + (size_t)row * w->scale_row_stride;
    }
    __m512 acc[4][6];
    for (int q = 0; q < 4; q++)
        for (int i = 0; i < 6; i++) acc[q][i] = _mm512_setzero_ps();
    const long per_pair = pf ? (pf_lines + pairs - 1) / pairs : 0;
    const char *pf_end = pf ? pf + pf_lines * 64 : pf;
    const char *xi = x + (size_t)i0 * xs;
    q8_tile_pairs(N, 1, w, v, s, xi, xs, 0, full_pairs, full_pairs, acc, &pf, pf_end, per_pair);
    q8_tile_pairs(N, 0, w, v, s, xi, xs, full_pairs, pairs, full_pairs, acc, &pf, pf_end, per_pair);
    const __mmask8 mask = (__mmask8)((1u << valid) - 1);
    const __m128 b = bias ? _mm_maskz_loadu_ps(mask, bias + r) : _mm_setzero_ps();
    for (int i = 0; i < N; i++)
        _mm_mask_storeu_ps(y + (size_t)(i0 + i) * ldy + r, mask, _mm_add_ps(hsum4(acc[0][i], acc[1][i], acc[2][i], acc[3][i]), b));
}

#define Q8_CASE(N) case N: q8_tile(N, w, r, valid, (const char *)x, x_row_bytes, i, bias, y, ldy, pf, pf_lines); break;

void mk_q8_vnni_rows(const mk_q8_matrix *w, long r0, long r1, const void *x, long x_row_bytes, long n, long chunk,
                     long wide_tiles, const float *bias, float *y, long ldy) {
    if (chunk < 1) chunk = 1;
    for (long c0 = 0; c0 < n; c0 += chunk) {
        const long c1 = c0 + chunk < n ? c0 + chunk : n;
        // Inputs in ⌈count / 4⌉ groups of nearly equal size (7 = 4 + 3), so no group runs with a sliver; 5 or 6
        // inputs in one group of their own when `wide_tiles` (a beam step: each pair's weights prepared once).
        const long count = c1 - c0, tiles = wide_tiles && count <= 6 ? 1 : (count + 3) / 4;
        for (long r = r0; r < r1; r += 4) {
            const int valid = r1 - r < 4 ? (int)(r1 - r) : 4;
            // The first pass over a tile prefetches the tile two ahead (4 rows read as 4 streams a row apart,
            // which the hardware prefetcher does not run ahead of; see MidNKernel.swift).
            const char *pf = c0 == 0 ? (const char *)w->values + (size_t)(r + 8) * w->row_stride : 0;
            long pf_lines = c0 == 0 ? (4 * w->row_stride + 63) / 64 : 0;
            long i = c0;
            for (long t = 0; t < tiles; t++) {
                const int N = (int)(count / tiles + (t < count % tiles ? 1 : 0));
                switch (N) { Q8_CASE(1) Q8_CASE(2) Q8_CASE(3) Q8_CASE(4) Q8_CASE(5) Q8_CASE(6) default: break; }
                i += N;
                pf = 0;
                pf_lines = 0;
            }
        }
    }
}

#else

void mk_q8_quantize_rows(const float *x, long cols, long ldx, long i0, long i1, void *out, long row_bytes) {}
void mk_q8_vnni_rows(const mk_q8_matrix *w, long r0, long r1, const void *x, long x_row_bytes, long n, long chunk,
                     long wide_tiles, const float *bias, float *y, long ldy) {}

#endif

// MARK: - f16 GEMM (AVX512-FP16, fast precision only)

int mk_has_avx512fp16(void) {
#if defined(__AVX512FP16__)
    return __builtin_cpu_supports("avx512fp16");
#else
    return 0;
#endif
}

// The probe reuses the bf16 probe's FMA loop and timing, so it needs both extensions in the build (every CPU with
// AVX512-FP16 so far also has AVX512-BF16).
#if defined(__AVX512FP16__) && defined(__AVX512BF16__)

DEFINE_PROBE(probe_fmaph, __m512h, _mm512_set1_ph((_Float16)i), __m512h, _mm512_set1_ph((_Float16)1e-3f),
             _mm512_fmadd_ph(b, b, acc[i]), (float)_mm512_reduce_add_ph(acc[i]))

double mk_f16_fma_speedup(void) {
    if (!mk_has_avx512fp16()) return 0;
    return probe_speedup(probe_fmaph);
}

#else

double mk_f16_fma_speedup(void) { return 0; }

#endif

#if defined(__AVX512FP16__)

/// 2^e for |e| ≤ 126, exactly.
INLINE float power_of_two(int e) {
    const uint32_t bits = (uint32_t)(e + 127) << 23;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

float mk_f16_row_scale(const float *x, long count) {
    __m512 top = _mm512_setzero_ps();
    for (long c = 0; c < count; c += 16) top = _mm512_max_ps(top, _mm512_abs_ps(_mm512_maskz_loadu_ps(mask16(count - c), x + c)));
    const float largest = _mm512_reduce_max_ps(top);
    if (!(largest > 0) || largest > 3.4e38f) return 1; // zero, or inf/NaN (which propagate unscaled)
    uint32_t bits;
    __builtin_memcpy(&bits, &largest, 4);
    // largest = f·2^e with f in [1, 2): the factor 2^-(e+1) brings it into [1/2, 1); kept within float's normal range.
    int e = -((int)((bits >> 23) & 0xff) - 127 + 1);
    if (e > 126) e = 126;
    if (e < -126) e = -126;
    return power_of_two(e);
}

void mk_f16_pack_row(const float *x, long count, float scale, uint16_t *out, long padded) {
    const __m512 s = _mm512_set1_ps(scale);
    long c = 0;
    for (; c + 16 <= count; c += 16) {
        const __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_loadu_ps(x + c), s), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)(out + c), h);
    }
    if (c < count) {
        const __mmask16 m = mask16(count - c);
        const __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), s), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(out + c, m, h);
    }
    for (long e = count; e < padded; e++) out[e] = 0;
}

float mk_f16_scale_panel(uint32_t *b, long kcp) {
    // |w| as 16-bit integers: for finite f16 values the integer order is the magnitude order.
    const __m512i magnitude = _mm512_set1_epi16(0x7fff);
    __m512i top = _mm512_setzero_si512();
    for (long p = 0; p < kcp; p++) {
        top = _mm512_max_epu16(top, _mm512_and_si512(_mm512_load_si512((const void *)(b + 32 * p)), magnitude));
        top = _mm512_max_epu16(top, _mm512_and_si512(_mm512_load_si512((const void *)(b + 32 * p + 16)), magnitude));
    }
    const __m512h lanes = _mm512_castsi512_ph(top);
    const float largest = (float)_mm512_reduce_max_ph(lanes);
    if (!(largest > 0) || largest > 65504.0f) return 1; // all zero, or inf/NaN (which propagate unscaled)
    // 2^e with largest·2^e in [128, 256); e ≤ 15, the largest power of two f16 holds (tiny panels stay smaller).
    uint32_t bits;
    __builtin_memcpy(&bits, &largest, 4);
    int e = 7 - ((int)((bits >> 23) & 0xff) - 127);
    if (e > 15) e = 15;
    if (e == 0) return 1;
    const __m512h factor = _mm512_set1_ph((_Float16)power_of_two(e));
    for (long p = 0; p < 2 * kcp; p++) {
        __m512i *v = (__m512i *)(b + 16 * p);
        _mm512_store_si512(v, _mm512_castph_si512(_mm512_mul_ph(_mm512_castsi512_ph(_mm512_load_si512(v)), factor)));
    }
    return power_of_two(-e);
}

/// acc's 32 f16 lanes (16 features × 2 inputs of a pair) added into two f32 vectors (features 0–7, 8–15).
INLINE void flush_f16(__m512h acc, __m512 *lo, __m512 *hi) {
    const __m512i bits = _mm512_castph_si512(acc);
    *lo = _mm512_add_ps(*lo, _mm512_cvtph_ps(_mm512_castsi512_si256(bits)));
    *hi = _mm512_add_ps(*hi, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(bits, 1)));
}

void mk_gemm_kernel_f16(long kcp, const uint32_t *a, const uint32_t *b, float *c, long ldc, int mr, int width,
                        int accumulate, const float *bias, const float *row_scale, float panel_scale) {
    // f32 sums per row: features 0–7, 8–15, 16–23, 24–31, each feature's two inputs in adjacent lanes.
    __m512 sums[MK_MR][4];
    for (int i = 0; i < MK_MR; i++) sums[i][0] = sums[i][1] = sums[i][2] = sums[i][3] = _mm512_setzero_ps();
    for (long p0 = 0; p0 < kcp; p0 += MK_F16_FLUSH_PAIRS) {
        const long p1 = p0 + MK_F16_FLUSH_PAIRS < kcp ? p0 + MK_F16_FLUSH_PAIRS : kcp;
        __m512h acc[MK_MR][2];
        for (int i = 0; i < MK_MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ph();
        for (long p = p0; p < p1; p++) {
            const __m512h b0 = _mm512_castsi512_ph(_mm512_load_si512((const void *)(b + 32 * p)));
            const __m512h b1 = _mm512_castsi512_ph(_mm512_load_si512((const void *)(b + 32 * p + 16)));
            for (int i = 0; i < MK_MR; i++) {
                // One 32-bit broadcast (a load-port operation) carries both inputs of the pair.
                const __m512h x = _mm512_castsi512_ph(_mm512_set1_epi32((int)a[i * MK_A_STRIDE + p]));
                acc[i][0] = _mm512_fmadd_ph(x, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ph(x, b1, acc[i][1]);
            }
        }
        for (int i = 0; i < MK_MR; i++) {
            flush_f16(acc[i][0], &sums[i][0], &sums[i][1]);
            flush_f16(acc[i][1], &sums[i][2], &sums[i][3]);
        }
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __mmask16 m0 = mask16(width), m1 = mask16(width - 16);
    __m512 add0 = _mm512_setzero_ps(), add1 = _mm512_setzero_ps();
    if (!accumulate && bias) {
        add0 = _mm512_maskz_loadu_ps(m0, bias);
        add1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int i = 0; i < mr && i < MK_MR; i++) {
        const __m512 scale = _mm512_set1_ps(row_scale[i] * panel_scale);
        const __m512 f0 = _mm512_add_ps(_mm512_permutex2var_ps(sums[i][0], even, sums[i][1]),
                                        _mm512_permutex2var_ps(sums[i][0], odd, sums[i][1]));
        const __m512 f1 = _mm512_add_ps(_mm512_permutex2var_ps(sums[i][2], even, sums[i][3]),
                                        _mm512_permutex2var_ps(sums[i][2], odd, sums[i][3]));
        float *row = c + (size_t)i * ldc;
        if (accumulate) {
            add0 = _mm512_maskz_loadu_ps(m0, row);
            add1 = _mm512_maskz_loadu_ps(m1, row + 16);
        }
        _mm512_mask_storeu_ps(row, m0, _mm512_fmadd_ps(f0, scale, add0));
        _mm512_mask_storeu_ps(row + 16, m1, _mm512_fmadd_ps(f1, scale, add1));
    }
}

#else

float mk_f16_row_scale(const float *x, long count) { return 1; }
void mk_f16_pack_row(const float *x, long count, float scale, uint16_t *out, long padded) {}
float mk_f16_scale_panel(uint32_t *b, long kcp) { return 1; }
void mk_gemm_kernel_f16(long kcp, const uint32_t *a, const uint32_t *b, float *c, long ldc, int mr, int width,
                        int accumulate, const float *bias, const float *row_scale, float panel_scale) {}

#endif
