#include "CMirageKernels.h"
