// CMirageKernels: the inner loops of the linear kernels, written with AVX-512 intrinsics (Swift cannot
// import them, and its generic SIMD conversions are outlined calls). Scheduling, blocking and threading
// live in Swift (MirageKernels); everything here is single-threaded and works on a caller-given range.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// Spin-wait hint for the worker pool (x86 `pause`).
static inline void mk_cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Storage formats, matching MirageKernels.WeightFormat.
enum { MK_F32 = 0, MK_F16 = 1, MK_BF16 = 2, MK_Q8 = 3 };

/// A weight matrix as the C kernels see it: `rows × cols` elements of `format`, row r at
/// `data + r·row_stride` bytes. q8 (all strides in bytes): group g (32 inputs) of row r has its values at
/// `data + r·row_stride + g·group_stride` and its f32 scale at
/// `scales + r·scale_row_stride + g·scale_group_stride`.
typedef struct {
    const void *data;
    const float *scales;
    long rows;
    long cols;
    long row_stride;
    long group_stride;
    long scale_row_stride;
    long scale_group_stride;
    int format;
} mk_weight;

/// True when this build has AVX512-BF16 and the running CPU supports it.
int mk_has_avx512bf16(void);

/// Decode path for one input: y[r] = Σ_c x[c]·W[r, c] (+ bias[r]) for r in [r0, r1); f32 accumulation.
/// (2…8 inputs run mk_midn on x packed with f32 rows.)
void mk_decode(const mk_weight *w, const float *x, long r0, long r1, const float *bias, float *y);

/// GEMM micro-panel geometry: MR rows of x by NR output features per micro-kernel call.
enum { MK_MR = 12, MK_NR = 32 };

/// Bytes of packed x needed for `n` rows and `k` inputs (f32: panels [ceil(n/MR)][k][MR];
/// bf16: panels [ceil(n/MR)][ceil(k/2)][MR] of bf16 pairs).
size_t mk_packed_a_bytes(long n, long k, int bf16);

/// Packs row panels [p0, p1) of x (n × k, row-major) into `dst` (layout above; zero padding).
void mk_pack_a(const float *x, long n, long k, long p0, long p1, int bf16, void *dst);

/// One GEMM task: y[i·ldy + j] = Σ_c x[i, c]·W[j, c] (+ bias[j]) for all i < n and j in [j0, j1), j1 − j0 ≤ 64,
/// from x packed by mk_pack_a (bf16 pairs when `bf16` is set, which needs bf16 weights and AVX512-BF16).
/// `work` is scratch of at least mk_gemm_work_bytes() bytes, 64-byte aligned.
void mk_gemm_task(const mk_weight *w, const void *packed_a, long n, long j0, long j1, const float *bias,
                  float *y, long ldy, int bf16, void *work);

/// Scratch bytes one mk_gemm_task needs.
size_t mk_gemm_work_bytes(void);

/// Mid-n path (a few dozen rows of x): rows at most this many (mk_midn takes n = 1…MK_MIDN_MAX_ROWS).
enum { MK_MIDN_MAX_ROWS = 128 };

/// Bytes of x packed for the mid-n path: n rows of cols padded to 32 inputs, f32 or (bf16) bf16 pairs.
size_t mk_midn_packed_bytes(long n, long cols, int bf16);

/// Packs x (n × cols, row-major) for mk_midn: f32 rows, or bf16 pairs rounded to nearest even; zero padding.
void mk_midn_pack(const float *x, long n, long cols, int bf16, void *dst);

/// Mid-n path: y[i·ldy + r] = Σ_c x[i, c]·W[r, c] (+ bias[r]) for r in [r0, r1), i < n, from x packed by
/// mk_midn_pack (bf16 pairs when `bf16` is set: bf16 weights and AVX512-BF16, vdpbf16ps); weights are
/// streamed once in tiles of 4 rows, each dotted with all n inputs. Any n ≥ 1 works.
void mk_midn(const mk_weight *w, const void *packed_x, long n, long r0, long r1, const float *bias, float *y,
             long ldy, int bf16);
