// Private helpers shared by the compact-weight kernels (not visible to Swift).
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H

#include "ckernels.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CK_X86 1
#endif

#define CK_INLINE static inline __attribute__((always_inline))

/// The fp32 value of bf16 bits (exact).
CK_INLINE float ck_bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/// bf16 bits of x rounded to nearest, ties to even; NaN stays a quiet NaN with its sign.
CK_INLINE uint16_t ck_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/// x rounded to bf16, as fp32.
CK_INLINE float ck_bf16_round(float x) { return ck_bf16_value(ck_bf16_bits(x)); }

/// The fp32 value of IEEE half bits (exact, like Swift's Float(Float16(bitPattern:))).
CK_INLINE float ck_half_value(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 31u, man = h & 0x3FFu, u;
    if (exp == 31) {
        u = sign | 0x7F800000u | (man << 13) | (man ? 0x00400000u : 0);
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else { // subnormal half: normalize
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400u));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FFu) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

CK_INLINE uint16_t ck_load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/// Scalar dequantization of blocks [b0, b1) of one row (bit-identical to GGMLDequantize.swift).
void ck_dequant_blocks_c(int type, const uint8_t *row, int b0, int b1, float *out);

#ifdef CK_X86
/// The AVX-512 version of ck_dequant_blocks_c (same bits).
void ck_dequant_blocks_avx512(int type, const uint8_t *row, int b0, int b1, float *out);
#endif

#endif
