// CMirageKernels: the few kernels Swift cannot express directly (AVX512-BF16 dot products, `pause`).
#pragma once
#include <stddef.h>
#include <stdint.h>

/// Spin-wait hint for the worker pool (x86 `pause`).
static inline void mk_cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// True when this build was compiled with AVX512-BF16 and the running CPU supports it.
int mk_has_avx512bf16(void);
