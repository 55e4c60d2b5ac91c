#include "CMirageKernels.h"

int mk_has_avx512bf16(void) {
#if defined(__AVX512BF16__)
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}
