// Returning freed heap memory to the system (corpus serve when idle).
#include "ckernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void ck_release_free_memory(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
