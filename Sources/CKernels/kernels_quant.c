// Products with weights kept in ggml's block formats (and bf16/f16/f32 rows), exact in fp32:
// each block is dequantized exactly as GGMLDequantize.swift does (same operations in the same
// order, no fused multiply-add, so the same bits) into a small buffer in L1, and x is multiplied
// with it by fp32 FMA. Block layouts: ggml's ggml-common.h; this code is written for this project.
#include "ck_internal.h"

#include <stdlib.h>

// Dequantization must round exactly like the Swift code: a·b + c stays two roundings.
#pragma STDC FP_CONTRACT OFF

int ck_type_block_elements(int type) {
    switch (type) {
    case CK_TYPE_F32: case CK_TYPE_F16: case CK_TYPE_BF16: return 1;
    case CK_TYPE_Q8_0: case CK_TYPE_Q4_0: case CK_TYPE_Q4_1: return 32;
    case CK_TYPE_Q4_K: case CK_TYPE_Q6_K: return 256;
    default: return 0;
    }
}

int ck_type_block_bytes(int type) {
    switch (type) {
    case CK_TYPE_F32: return 4;
    case CK_TYPE_F16: case CK_TYPE_BF16: return 2;
    case CK_TYPE_Q8_0: return 34;
    case CK_TYPE_Q4_0: return 18;
    case CK_TYPE_Q4_1: return 20;
    case CK_TYPE_Q4_K: return 144;
    case CK_TYPE_Q6_K: return 210;
    default: return 0;
    }
}

/// The 6-bit scale and min of sub-block j (0..<8) from the 12 packed bytes of a Q4_K block.
CK_INLINE void scale_min_k4(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *min = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// ---- scalar dequantization (the reference; plain C) ----

CK_INLINE void dequant_body(int type, const uint8_t *row, int b0, int b1, float *y) {
    const int bytes = ck_type_block_bytes(type);
    for (int b = b0; b < b1; b++) {
        const uint8_t *block = row + (size_t)b * bytes;
        switch (type) {
        case CK_TYPE_F32: memcpy(y, block, 4); y += 1; break;
        case CK_TYPE_F16: *y++ = ck_half_value(ck_load_u16(block)); break;
        case CK_TYPE_BF16: *y++ = ck_bf16_value(ck_load_u16(block)); break;
        case CK_TYPE_Q8_0: {
            const float d = ck_half_value(ck_load_u16(block));
            for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)block[2 + j];
            y += 32;
            break;
        }
        case CK_TYPE_Q4_0: {
            const float d = ck_half_value(ck_load_u16(block));
            const uint8_t *qs = block + 2;
            for (int j = 0; j < 16; j++) {
                y[j] = d * (float)((qs[j] & 0x0F) - 8);
                y[j + 16] = d * (float)((qs[j] >> 4) - 8);
            }
            y += 32;
            break;
        }
        case CK_TYPE_Q4_1: {
            const float d = ck_half_value(ck_load_u16(block)), m = ck_half_value(ck_load_u16(block + 2));
            const uint8_t *qs = block + 4;
            for (int j = 0; j < 16; j++) {
                y[j] = d * (float)(qs[j] & 0x0F) + m;
                y[j + 16] = d * (float)(qs[j] >> 4) + m;
            }
            y += 32;
            break;
        }
        case CK_TYPE_Q4_K: {
            const float d = ck_half_value(ck_load_u16(block)), dmin = ck_half_value(ck_load_u16(block + 2));
            const uint8_t *scales = block + 4, *q = block + 16;
            for (int pair = 0; pair < 4; pair++, q += 32, y += 64) {
                uint8_t sc1, m1, sc2, m2;
                scale_min_k4(2 * pair, scales, &sc1, &m1);
                scale_min_k4(2 * pair + 1, scales, &sc2, &m2);
                const float d1 = d * (float)sc1, min1 = dmin * (float)m1;
                const float d2 = d * (float)sc2, min2 = dmin * (float)m2;
                for (int l = 0; l < 32; l++) y[l] = d1 * (float)(q[l] & 0x0F) - min1;
                for (int l = 0; l < 32; l++) y[32 + l] = d2 * (float)(q[l] >> 4) - min2;
            }
            break;
        }
        case CK_TYPE_Q6_K: {
            const uint8_t *ql = block, *qh = block + 128;
            const int8_t *sc = (const int8_t *)(block + 192);
            const float d = ck_half_value(ck_load_u16(block + 208));
            for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
                for (int l = 0; l < 32; l++) {
                    const int s = l / 16;
                    const int q1 = ((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32;
                    const int q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32;
                    const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                    y[l] = d * (float)sc[s] * (float)q1;
                    y[l + 32] = d * (float)sc[s + 2] * (float)q2;
                    y[l + 64] = d * (float)sc[s + 4] * (float)q3;
                    y[l + 96] = d * (float)sc[s + 6] * (float)q4;
                }
            }
            break;
        }
        default: break;
        }
    }
}

void ck_dequant_blocks_c(int type, const uint8_t *row, int b0, int b1, float *y) { dequant_body(type, row, b0, b1, y); }

#ifdef CK_X86
#define TAVX2 __attribute__((target("avx2,fma,f16c")))

/// Eight bytes from p, widened to int32 lanes (unsigned or signed).
TAVX2 CK_INLINE __m256i u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
TAVX2 CK_INLINE __m256i s8x8(const uint8_t *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

/// The AVX2 version of the scalar dequantization: the same operations eight lanes at a time.
TAVX2 static void dequant_avx2(int type, const uint8_t *row, int b0, int b1, float *y) {
    const int bytes = ck_type_block_bytes(type);
    if (type == CK_TYPE_F32 || type == CK_TYPE_F16 || type == CK_TYPE_BF16) {
        const uint8_t *src = row + (size_t)b0 * bytes;
        const int n = b1 - b0;
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            if (type == CK_TYPE_F32) { memcpy(y + i, src + 4 * (size_t)i, 32); continue; }
            const __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * (size_t)i));
            _mm256_storeu_ps(y + i, type == CK_TYPE_F16 ? _mm256_cvtph_ps(h)
                                                        : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
        }
        dequant_body(type, src + (size_t)bytes * i, 0, n - i, y + i);
        return;
    }
    const __m256i m4 = _mm256_set1_epi32(0x0F), m2 = _mm256_set1_epi32(3), k8 = _mm256_set1_epi32(8), k32 = _mm256_set1_epi32(32);
    for (int b = b0; b < b1; b++) {
        const uint8_t *block = row + (size_t)b * bytes;
        switch (type) {
        case CK_TYPE_Q8_0: {
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(ck_load_u16(block)));
            for (int j = 0; j < 32; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(s8x8(block + 2 + j))));
            y += 32;
            break;
        }
        case CK_TYPE_Q4_0: case CK_TYPE_Q4_1: {
            const int q4_1 = type == CK_TYPE_Q4_1;
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(ck_load_u16(block)));
            const __m256 m = _mm256_set1_ps(q4_1 ? _cvtsh_ss(ck_load_u16(block + 2)) : 0);
            const __m256i off = q4_1 ? _mm256_setzero_si256() : k8;
            for (int j = 0; j < 16; j += 8) {
                const __m256i v = u8x8(block + (q4_1 ? 4 : 2) + j);
                const __m256 lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v, m4), off));
                const __m256 hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v, 4), off));
                _mm256_storeu_ps(y + j, q4_1 ? _mm256_add_ps(_mm256_mul_ps(d, lo), m) : _mm256_mul_ps(d, lo));
                _mm256_storeu_ps(y + 16 + j, q4_1 ? _mm256_add_ps(_mm256_mul_ps(d, hi), m) : _mm256_mul_ps(d, hi));
            }
            y += 32;
            break;
        }
        case CK_TYPE_Q4_K: {
            const float d = _cvtsh_ss(ck_load_u16(block)), dmin = _cvtsh_ss(ck_load_u16(block + 2));
            const uint8_t *scales = block + 4, *q = block + 16;
            for (int pair = 0; pair < 4; pair++, q += 32, y += 64) {
                uint8_t sc1, m1, sc2, m2;
                scale_min_k4(2 * pair, scales, &sc1, &m1);
                scale_min_k4(2 * pair + 1, scales, &sc2, &m2);
                const __m256 d1 = _mm256_set1_ps(d * (float)sc1), min1 = _mm256_set1_ps(dmin * (float)m1);
                const __m256 d2 = _mm256_set1_ps(d * (float)sc2), min2 = _mm256_set1_ps(dmin * (float)m2);
                for (int l = 0; l < 32; l += 8) {
                    const __m256i v = u8x8(q + l);
                    _mm256_storeu_ps(y + l, _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_and_si256(v, m4))), min1));
                    _mm256_storeu_ps(y + 32 + l, _mm256_sub_ps(_mm256_mul_ps(d2, _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4))), min2));
                }
            }
            break;
        }
        case CK_TYPE_Q6_K: {
            const uint8_t *ql = block, *qh = block + 128;
            const int8_t *sc = (const int8_t *)(block + 192);
            const float d = _cvtsh_ss(ck_load_u16(block + 208));
            for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
                for (int l = 0; l < 32; l += 8) {
                    const int s = l / 16;
                    const __m256i a = u8x8(ql + l), c = u8x8(ql + l + 32), h = u8x8(qh + l);
                    const __m256i q1 = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi32(_mm256_and_si256(h, m2), 4));
                    const __m256i q2 = _mm256_or_si256(_mm256_and_si256(c, m4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2), m2), 4));
                    const __m256i q3 = _mm256_or_si256(_mm256_srli_epi32(a, 4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 4), m2), 4));
                    const __m256i q4 = _mm256_or_si256(_mm256_srli_epi32(c, 4), _mm256_slli_epi32(_mm256_srli_epi32(h, 6), 4));
                    _mm256_storeu_ps(y + l, _mm256_mul_ps(_mm256_set1_ps(d * (float)sc[s]), _mm256_cvtepi32_ps(_mm256_sub_epi32(q1, k32))));
                    _mm256_storeu_ps(y + l + 32, _mm256_mul_ps(_mm256_set1_ps(d * (float)sc[s + 2]), _mm256_cvtepi32_ps(_mm256_sub_epi32(q2, k32))));
                    _mm256_storeu_ps(y + l + 64, _mm256_mul_ps(_mm256_set1_ps(d * (float)sc[s + 4]), _mm256_cvtepi32_ps(_mm256_sub_epi32(q3, k32))));
                    _mm256_storeu_ps(y + l + 96, _mm256_mul_ps(_mm256_set1_ps(d * (float)sc[s + 6]), _mm256_cvtepi32_ps(_mm256_sub_epi32(q4, k32))));
                }
            }
            break;
        }
        default: break;
        }
    }
}
#endif

// ---- AVX-512 dequantization (same operations, 16 lanes) ----

#ifdef CK_X86
#define T512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,f16c")))

T512 void ck_dequant_blocks_avx512(int type, const uint8_t *row, int b0, int b1, float *y) {
    const int bytes = ck_type_block_bytes(type);
    const __m512 nibble = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512 nibble_minus8 = _mm512_set_ps(7, 6, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, -6, -7, -8);
    if (type == CK_TYPE_F32 || type == CK_TYPE_F16 || type == CK_TYPE_BF16) {
        const int n = b1 - b0;
        const uint8_t *src = row + (size_t)b0 * bytes;
        for (int i = 0; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
            __m512 v;
            if (type == CK_TYPE_F32) v = _mm512_maskz_loadu_ps(m, src + 4 * (size_t)i);
            else {
                __m256i h = _mm256_maskz_loadu_epi16(m, src + 2 * (size_t)i);
                v = type == CK_TYPE_F16 ? _mm512_cvtph_ps(h)
                                        : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            }
            _mm512_mask_storeu_ps(y + i, m, v);
        }
        return;
    }
    for (int b = b0; b < b1; b++) {
        const uint8_t *block = row + (size_t)b * bytes;
        switch (type) {
        case CK_TYPE_Q8_0: {
            const __m512 d = _mm512_set1_ps(_cvtsh_ss(ck_load_u16(block)));
            const __m256i q = _mm256_loadu_si256((const __m256i *)(block + 2));
            _mm512_storeu_ps(y, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)))));
            _mm512_storeu_ps(y + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)))));
            y += 32;
            break;
        }
        case CK_TYPE_Q4_0: {
            // The 16 possible values d·(q − 8) in a table; vpermps picks each lane's by its low
            // four bits (the same products as the scalar code, so the same bits).
            const __m512 table = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(ck_load_u16(block))), nibble_minus8);
            const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(block + 2)));
            _mm512_storeu_ps(y, _mm512_permutexvar_ps(q, table));
            _mm512_storeu_ps(y + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table));
            y += 32;
            break;
        }
        case CK_TYPE_Q4_1: {
            const __m512 d = _mm512_set1_ps(_cvtsh_ss(ck_load_u16(block)));
            const __m512 table = _mm512_add_ps(_mm512_mul_ps(d, nibble), _mm512_set1_ps(_cvtsh_ss(ck_load_u16(block + 2))));
            const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(block + 4)));
            _mm512_storeu_ps(y, _mm512_permutexvar_ps(q, table));
            _mm512_storeu_ps(y + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table));
            y += 32;
            break;
        }
        case CK_TYPE_Q4_K: {
            const float d = _cvtsh_ss(ck_load_u16(block)), dmin = _cvtsh_ss(ck_load_u16(block + 2));
            const uint8_t *scales = block + 4, *q = block + 16;
            for (int pair = 0; pair < 4; pair++, q += 32, y += 64) {
                uint8_t sc1, m1, sc2, m2;
                scale_min_k4(2 * pair, scales, &sc1, &m1);
                scale_min_k4(2 * pair + 1, scales, &sc2, &m2);
                const __m512 t1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d * (float)sc1), nibble), _mm512_set1_ps(dmin * (float)m1));
                const __m512 t2 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d * (float)sc2), nibble), _mm512_set1_ps(dmin * (float)m2));
                for (int h = 0; h < 32; h += 16) {
                    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + h)));
                    _mm512_storeu_ps(y + h, _mm512_permutexvar_ps(v, t1));
                    _mm512_storeu_ps(y + 32 + h, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), t2));
                }
            }
            break;
        }
        case CK_TYPE_Q6_K: {
            const uint8_t *ql = block, *qh = block + 128;
            const int8_t *sc = (const int8_t *)(block + 192);
            const float d = _cvtsh_ss(ck_load_u16(block + 208));
            const __m512i m4 = _mm512_set1_epi32(0x0F), m2 = _mm512_set1_epi32(3), k32 = _mm512_set1_epi32(32);
            for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
                for (int l = 0; l < 32; l += 16) {
                    const int s = l / 16;
                    const __m512i a = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + l)));
                    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + l + 32)));
                    const __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + l)));
                    const __m512i q1 = _mm512_or_si512(_mm512_and_si512(a, m4), _mm512_slli_epi32(_mm512_and_si512(h, m2), 4));
                    const __m512i q2 = _mm512_or_si512(_mm512_and_si512(b, m4),
                                                       _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2), m2), 4));
                    const __m512i q3 = _mm512_or_si512(_mm512_srli_epi32(a, 4),
                                                       _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 4), m2), 4));
                    const __m512i q4 = _mm512_or_si512(_mm512_srli_epi32(b, 4), _mm512_slli_epi32(_mm512_srli_epi32(h, 6), 4));
                    _mm512_storeu_ps(y + l, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[s]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q1, k32))));
                    _mm512_storeu_ps(y + l + 32,
                                     _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[s + 2]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q2, k32))));
                    _mm512_storeu_ps(y + l + 64,
                                     _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[s + 4]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q3, k32))));
                    _mm512_storeu_ps(y + l + 96,
                                     _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[s + 6]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q4, k32))));
                }
            }
            break;
        }
        default: break;
        }
    }
}
#endif

static int valid(int type, int K) {
    const int qk = ck_type_block_elements(type);
    return qk > 0 && K >= 0 && K % qk == 0;
}

int ck_dequantize_rows(int type, const void *w, int K, int r0, int r1, float *out) {
    if (!valid(type, K)) return -1;
    const int qk = ck_type_block_elements(type);
    const size_t rowbytes = (size_t)(K / qk) * ck_type_block_bytes(type);
    const int level = ck_isa();
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * rowbytes;
        float *dst = out + (size_t)(r - r0) * K;
#ifdef CK_X86
        if (level >= CK_ISA_AVX512) { ck_dequant_blocks_avx512(type, row, 0, K / qk, dst); continue; }
#endif
        (void)level;
        ck_dequant_blocks_c(type, row, 0, K / qk, dst);
    }
    return 0;
}

// ---- exact products ----

// Four weight rows at a time are dequantized KCQ elements at a time into an L1 buffer; up to MCQ
// rows of x are multiplied with them, partial sums kept as vectors between chunks.
enum { RQ = 4, KCQ = 1024, MCQ = 16, LANES = 16 };

typedef void (*dequant_fn)(int, const uint8_t *, int, int, float *);

/// Σ_k a[k]·b[k] for k < n in LANES interleaved partial sums (vectorizable without reassociation).
CK_INLINE void dot_lanes(const float *restrict a, const float *restrict b, int n, float *restrict lanes) {
    float acc[LANES]; // local, so that the compiler keeps it in registers
    for (int l = 0; l < LANES; l++) acc[l] = lanes[l];
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[k + l] * b[k + l];
    for (int l = 0; k + l < n; l++) acc[l] += a[k + l] * b[k + l];
    for (int l = 0; l < LANES; l++) lanes[l] = acc[l];
}

typedef void (*dot_fn)(const float *, const float *, int, float *);

#ifdef CK_X86
/// dot_lanes with AVX2 FMA (two 8-lane accumulators).
TAVX2 static void dot_lanes_avx2(const float *a, const float *b, int n, float *lanes) {
    __m256 acc0 = _mm256_loadu_ps(lanes), acc1 = _mm256_loadu_ps(lanes + 8);
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), acc1);
    }
    _mm256_storeu_ps(lanes, acc0);
    _mm256_storeu_ps(lanes + 8, acc1);
    for (int l = 0; k + l < n; l++) lanes[l] += a[k + l] * b[k + l];
}
#endif

static void dot_lanes_base(const float *a, const float *b, int n, float *lanes) { dot_lanes(a, b, n, lanes); }

CK_INLINE void gemmq_c(int type, const float *x, int M, int K, const uint8_t *w, size_t rowbytes, int n0, int n1,
                       float *y, int ldy, float *buf, dequant_fn dequant, dot_fn dot) {
    const int qk = ck_type_block_elements(type);
    float sums[MCQ][RQ][LANES];
    for (int mc = 0; mc < M; mc += MCQ) {
        const int mn = M - mc < MCQ ? M - mc : MCQ;
        for (int n = n0; n < n1; n += RQ) {
            const int rn = n1 - n < RQ ? n1 - n : RQ;
            memset(sums, 0, sizeof sums);
            for (int kc = 0; kc < K; kc += KCQ) {
                const int kn = K - kc < KCQ ? K - kc : KCQ;
                for (int r = 0; r < rn; r++) dequant(type, w + (size_t)(n + r) * rowbytes, kc / qk, (kc + kn) / qk, buf + r * KCQ);
                for (int m = 0; m < mn; m++)
                    for (int r = 0; r < rn; r++) dot(x + (size_t)(mc + m) * K + kc, buf + r * KCQ, kn, sums[m][r]);
            }
            for (int m = 0; m < mn; m++)
                for (int r = 0; r < rn; r++) {
                    float s = 0;
                    for (int l = 0; l < LANES; l++) s += sums[m][r][l];
                    y[(size_t)(mc + m) * ldy + n + r] = s;
                }
        }
    }
}

static void gemmq_base(int type, const float *x, int M, int K, const uint8_t *w, size_t rowbytes, int n0, int n1,
                       float *y, int ldy, float *buf) {
    gemmq_c(type, x, M, K, w, rowbytes, n0, n1, y, ldy, buf, ck_dequant_blocks_c, dot_lanes_base);
}

#ifdef CK_X86
__attribute__((target("avx2,fma"))) static void gemmq_avx2(int type, const float *x, int M, int K, const uint8_t *w,
                                                           size_t rowbytes, int n0, int n1, float *y, int ldy,
                                                           float *buf) {
    gemmq_c(type, x, M, K, w, rowbytes, n0, n1, y, ldy, buf, dequant_avx2, dot_lanes_avx2);
}

T512 CK_INLINE __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

/// sums[0..rows)[0..4) += x rows (stride K) · the four dequantized weight rows in buf, kn elements.
T512 CK_INLINE void dot_rows(int rows, const float *x, int K, const float *buf, int kn, __m512 *sums) {
    __m512 a[2][RQ];
    for (int i = 0; i < 2; i++)
        for (int r = 0; r < RQ; r++) a[i][r] = sums[i * RQ + r];
    int k = 0;
    for (; k + 16 <= kn; k += 16) {
        const __m512 x0 = _mm512_loadu_ps(x + k);
        const __m512 x1 = rows > 1 ? _mm512_loadu_ps(x + K + k) : x0;
        for (int r = 0; r < RQ; r++) {
            const __m512 b = _mm512_loadu_ps(buf + r * KCQ + k);
            a[0][r] = _mm512_fmadd_ps(x0, b, a[0][r]);
            if (rows > 1) a[1][r] = _mm512_fmadd_ps(x1, b, a[1][r]);
        }
    }
    if (k < kn) {
        const __mmask16 m = tail_mask(kn - k);
        const __m512 x0 = _mm512_maskz_loadu_ps(m, x + k);
        const __m512 x1 = rows > 1 ? _mm512_maskz_loadu_ps(m, x + K + k) : x0;
        for (int r = 0; r < RQ; r++) {
            const __m512 b = _mm512_maskz_loadu_ps(m, buf + r * KCQ + k);
            a[0][r] = _mm512_fmadd_ps(x0, b, a[0][r]);
            if (rows > 1) a[1][r] = _mm512_fmadd_ps(x1, b, a[1][r]);
        }
    }
    for (int i = 0; i < rows; i++)
        for (int r = 0; r < RQ; r++) sums[i * RQ + r] = a[i][r];
}

T512 static void gemmq_avx512(int type, const float *x, int M, int K, const uint8_t *w, size_t rowbytes, int n0,
                              int n1, float *y, int ldy, float *buf) {
    const int qk = ck_type_block_elements(type);
    __m512 sums[MCQ * RQ];
    for (int mc = 0; mc < M; mc += MCQ) {
        const int mn = M - mc < MCQ ? M - mc : MCQ;
        for (int n = n0; n < n1; n += RQ) {
            const int rn = n1 - n < RQ ? n1 - n : RQ;
            for (int i = 0; i < MCQ * RQ; i++) sums[i] = _mm512_setzero_ps();
            for (int kc = 0; kc < K; kc += KCQ) {
                const int kn = K - kc < KCQ ? K - kc : KCQ;
                for (int r = 0; r < rn; r++)
                    ck_dequant_blocks_avx512(type, w + (size_t)(n + r) * rowbytes, kc / qk, (kc + kn) / qk, buf + r * KCQ);
                const float *xc = x + (size_t)mc * K + kc;
                int m = 0;
                for (; m + 2 <= mn; m += 2) dot_rows(2, xc + (size_t)m * K, K, buf, kn, sums + m * RQ);
                if (m < mn) dot_rows(1, xc + (size_t)m * K, K, buf, kn, sums + m * RQ);
            }
            for (int m = 0; m < mn; m++)
                for (int r = 0; r < rn; r++) y[(size_t)(mc + m) * ldy + n + r] = _mm512_reduce_add_ps(sums[m * RQ + r]);
        }
    }
}
#endif

int ck_gemm_q8_int8(int type, const float *x, int M, int K, const void *w, int n0, int n1, float *y, int ldy);

int ck_gemm_q(int type, const float *x, int M, int K, const void *w, int n0, int n1, float *y, int ldy, int mode) {
    if (!valid(type, K)) return -1;
    if (M <= 0 || n0 >= n1) return 0;
    if (mode == CK_Q_INT8 && (type == CK_TYPE_Q8_0 || type == CK_TYPE_Q4_0))
        return ck_gemm_q8_int8(type, x, M, K, w, n0, n1, y, ldy);
    const size_t rowbytes = (size_t)(K / ck_type_block_elements(type)) * ck_type_block_bytes(type);
    float *buf = aligned_alloc(64, RQ * KCQ * sizeof(float));
    if (!buf) return -1;
    // The last group of rows may have fewer than RQ; the buffer rows past it are multiplied (the
    // results never stored), so they must hold defined values.
    const int tail = (n1 - n0) % RQ;
    if (tail) memset(buf + tail * KCQ, 0, (size_t)(RQ - tail) * KCQ * sizeof(float));
    const int level = ck_isa();
#ifdef CK_X86
    if (level >= CK_ISA_AVX512) gemmq_avx512(type, x, M, K, (const uint8_t *)w, rowbytes, n0, n1, y, ldy, buf);
    else if (level >= CK_ISA_AVX2) gemmq_avx2(type, x, M, K, (const uint8_t *)w, rowbytes, n0, n1, y, ldy, buf);
    else
#endif
        gemmq_base(type, x, M, K, (const uint8_t *)w, rowbytes, n0, n1, y, ldy, buf);
    (void)level;
    free(buf);
    return 0;
}
