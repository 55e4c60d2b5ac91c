// CMirageKernels: the few kernels Swift cannot express directly (AVX512-BF16 dot products).
#pragma once
