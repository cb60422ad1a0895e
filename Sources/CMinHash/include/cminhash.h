// MinHash signatures of character n-grams, written for this project (see docs/QUALITY.md,
// "Near duplicates"). Plain C with an AVX-512 path chosen at run time.
#ifndef CMINHASH_H
#define CMINHASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The 32-bit hash of every character n-gram of `text` (`count` Unicode scalar values), written to
/// `out` (room for max(1, count - n + 1) values); returns how many were written. A text shorter
/// than n is one n-gram; an empty text has none.
size_t cmh_shingles(const uint32_t *text, size_t count, int n, uint32_t *out);

/// signature[i] = min over the shingles of mix(shingle XOR seeds[i]), for i < permutations, where
/// mix is a bijection on 32-bit values; all 0xFFFFFFFF when there are no shingles.
void cmh_signature(const uint32_t *shingles, size_t count, const uint32_t *seeds, int permutations,
                   uint32_t *signature);

/// Number of equal positions of two signatures.
int cmh_matches(const uint32_t *a, const uint32_t *b, int permutations);

#ifdef __cplusplus
}
#endif

#endif
