// MinHash kernels: see cminhash.h. Written for this project.
#include "cminhash.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define CMH_X86 1
#endif

// The finalizer of MurmurHash3 (a bijection on 32-bit values with good avalanche).
static inline uint32_t mix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

size_t cmh_shingles(const uint32_t *text, size_t count, int n, uint32_t *out) {
    if (count == 0 || n < 1) return 0;
    size_t width = count < (size_t)n ? count : (size_t)n;
    size_t total = count - width + 1;
    for (size_t i = 0; i < total; i++) {
        // FNV-1a over the scalars, 64-bit, folded to 32 bits through the finalizer.
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t j = 0; j < width; j++) {
            h ^= text[i + j];
            h *= 0x100000001b3ull;
        }
        out[i] = mix32((uint32_t)(h ^ (h >> 32)));
    }
    return total;
}

static void signature_generic(const uint32_t *shingles, size_t count, const uint32_t *seeds, int permutations,
                              uint32_t *signature) {
    for (int p = 0; p < permutations; p++) signature[p] = 0xFFFFFFFFu;
    for (size_t i = 0; i < count; i++) {
        const uint32_t x = shingles[i];
        for (int p = 0; p < permutations; p++) {
            uint32_t h = mix32(x ^ seeds[p]);
            if (h < signature[p]) signature[p] = h;
        }
    }
}

#ifdef CMH_X86
__attribute__((target("avx512f")))
static inline __m512i mix32x16(__m512i h) {
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32((int)0x85ebca6bu));
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 13));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32((int)0xc2b2ae35u));
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
    return h;
}

// Eight blocks of sixteen permutations (128) stay in registers over all shingles.
__attribute__((target("avx512f")))
static void signature_avx512(const uint32_t *shingles, size_t count, const uint32_t *seeds, int permutations,
                             uint32_t *signature) {
    int p = 0;
    for (; p + 128 <= permutations; p += 128) {
        __m512i s[8], m[8];
        for (int b = 0; b < 8; b++) {
            s[b] = _mm512_loadu_si512((const void *)(seeds + p + 16 * b));
            m[b] = _mm512_set1_epi32(-1);
        }
        for (size_t i = 0; i < count; i++) {
            const __m512i x = _mm512_set1_epi32((int)shingles[i]);
            for (int b = 0; b < 8; b++) m[b] = _mm512_min_epu32(m[b], mix32x16(_mm512_xor_si512(x, s[b])));
        }
        for (int b = 0; b < 8; b++) _mm512_storeu_si512((void *)(signature + p + 16 * b), m[b]);
    }
    for (; p + 16 <= permutations; p += 16) {
        const __m512i s = _mm512_loadu_si512((const void *)(seeds + p));
        __m512i m = _mm512_set1_epi32(-1);
        for (size_t i = 0; i < count; i++)
            m = _mm512_min_epu32(m, mix32x16(_mm512_xor_si512(_mm512_set1_epi32((int)shingles[i]), s)));
        _mm512_storeu_si512((void *)(signature + p), m);
    }
    if (p < permutations) signature_generic(shingles, count, seeds + p, permutations - p, signature + p);
}
#endif

void cmh_signature(const uint32_t *shingles, size_t count, const uint32_t *seeds, int permutations,
                   uint32_t *signature) {
#ifdef CMH_X86
    static int has_avx512 = -1;
    if (has_avx512 < 0) {
        __builtin_cpu_init();
        has_avx512 = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    if (has_avx512) {
        signature_avx512(shingles, count, seeds, permutations, signature);
        return;
    }
#endif
    signature_generic(shingles, count, seeds, permutations, signature);
}

int cmh_matches(const uint32_t *a, const uint32_t *b, int permutations) {
    int equal = 0;
    for (int p = 0; p < permutations; p++) equal += a[p] == b[p];
    return equal;
}
