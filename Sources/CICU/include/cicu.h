#ifndef CORPUS_CICU_H
#define CORPUS_CICU_H
// Our own declarations only: system ICU headers are included by cicu.c, never by Swift.
#include <stdint.h>

/// ICU's version string, e.g. "72.1" (used by tests and `corpus --version`).
const char *cicu_version(void);

#endif
