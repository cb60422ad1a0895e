// The int8 path of ck_gemm_q (mode CK_Q_INT8) for Q8_0 and Q4_0 weights, for decoding.
//
// Each 32-element block of a row of x is quantized to int8 with its own fp32 scale
// (dx = max|x| / 127, q = round-to-nearest-even(x / dx)), so a block's dot product with a weight
// block is an integer sum: y += dw · dx · Σ_j qw[j] · qx[j]. The integer sums are exact on every
// path; only the rounding of x is lost (|x − dx·qx| ≤ dx / 2), which bounds the error by
// Σ_blocks (max|x| / 254) · Σ|w| per output (docs/TRAINING_MATH.md). llama.cpp's Q8_0 activations
// do the same with an fp16 scale; here the scale stays fp32.
//
// With AVX512_VNNI the block product is one vpdpbusd (unsigned × signed bytes): Q4_0's nibbles
// are already unsigned (q − 8 = nibble − 8) and Q8_0's bytes become unsigned by adding 128, so
// Σ qw·qx = Σ u·qx − offset · Σ qx with the block sums of qx computed once. Written for this
// project.
#include "ck_internal.h"

#include <math.h>
#include <stdlib.h>

int ck_gemm_q8_int8(int type, const float *x, int M, int K, const void *w, int n0, int n1, float *y, int ldy);

/// Quantizes x (M, K) to qx (M, K) int8, with per-block scales dx (M, K/32) and per-block
/// corrections off · Σ qx (M, K/32), off = 8 for Q4_0 and 128 for Q8_0.
static void quantize_x(const float *x, int M, int K, int off, int8_t *qx, float *dx, int32_t *corr) {
    const int nb = K / 32;
    for (int m = 0; m < M; m++)
        for (int b = 0; b < nb; b++) {
            const float *src = x + (size_t)m * K + 32 * b;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fabsf(src[j]) > amax ? fabsf(src[j]) : amax;
            const float d = amax / 127, id = d > 0 ? 1 / d : 0;
            int32_t sum = 0;
            int8_t *q = qx + (size_t)m * K + 32 * b;
            for (int j = 0; j < 32; j++) {
                float v = nearbyintf(src[j] * id);
                v = v > 127 ? 127 : v < -127 ? -127 : v;
                q[j] = (int8_t)v;
                sum += q[j];
            }
            dx[(size_t)m * nb + b] = d;
            corr[(size_t)m * nb + b] = off * sum;
        }
}

/// Σ_j qw[j] · qx[j] over one block, plainly.
CK_INLINE int32_t block_dot_c(int type, const uint8_t *block, const int8_t *q) {
    int32_t s = 0;
    if (type == CK_TYPE_Q8_0) {
        const int8_t *qs = (const int8_t *)(block + 2);
        for (int j = 0; j < 32; j++) s += qs[j] * q[j];
    } else {
        const uint8_t *qs = block + 2;
        for (int j = 0; j < 16; j++) s += ((qs[j] & 0x0F) - 8) * q[j] + ((qs[j] >> 4) - 8) * q[j + 16];
    }
    return s;
}

CK_INLINE void int8_c(int type, const int8_t *qx, const float *dx, int M, int K, const uint8_t *w, size_t rowbytes,
                      int n0, int n1, float *y, int ldy) {
    const int nb = K / 32, bytes = ck_type_block_bytes(type);
    for (int n = n0; n < n1; n++) {
        const uint8_t *row = w + (size_t)n * rowbytes;
        for (int m = 0; m < M; m++) {
            float sum = 0;
            for (int b = 0; b < nb; b++) {
                const uint8_t *block = row + (size_t)b * bytes;
                const float scale = ck_half_value(ck_load_u16(block)) * dx[(size_t)m * nb + b];
                sum += scale * (float)block_dot_c(type, block, qx + (size_t)m * K + 32 * b);
            }
            y[(size_t)m * ldy + n] = sum;
        }
    }
}

static void int8_base(int type, const int8_t *qx, const float *dx, int M, int K, const uint8_t *w, size_t rowbytes,
                      int n0, int n1, float *y, int ldy) {
    int8_c(type, qx, dx, M, K, w, rowbytes, n0, n1, y, ldy);
}

#ifdef CK_X86
__attribute__((target("avx2,fma"))) static void int8_avx2(int type, const int8_t *qx, const float *dx, int M, int K,
                                                          const uint8_t *w, size_t rowbytes, int n0, int n1, float *y,
                                                          int ldy) {
    int8_c(type, qx, dx, M, K, w, rowbytes, n0, n1, y, ldy);
}

#define TVNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c")))

/// Two consecutive blocks' weights as 64 unsigned bytes in element order (nibbles, or bytes + 128).
TVNNI CK_INLINE __m512i unsigned_weights2(int type, const uint8_t *block, int bytes) {
    if (type == CK_TYPE_Q8_0) {
        const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(block + 2))),
                                             _mm256_loadu_si256((const __m256i *)(block + bytes + 2)), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
    }
    const __m256i q = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(block + bytes + 2)),
                                       _mm_loadu_si128((const __m128i *)(block + 2)));
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    // [lo0 lo1 hi0 hi1] (16 bytes each) → [lo0 hi0 lo1 hi1]
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    return _mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(3, 1, 2, 0));
}

/// Each weight row is read from memory once and stays in L1 while every row of x passes; two
/// blocks per vpdpbusd, four rows of x at a time share the unpacked weight bytes.
TVNNI static void int8_vnni(int type, const int8_t *qx, const float *dx, const int32_t *corr, int M, int K,
                            const uint8_t *w, size_t rowbytes, int n0, int n1, float *y, int ldy) {
    const int nb = K / 32, bytes = ck_type_block_bytes(type);
    const __m512i pick = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0); // lane 8 ← 1, lane 0 ← 0
    for (int n = n0; n < n1; n++) {
        const uint8_t *row = w + (size_t)n * rowbytes;
        for (int m0 = 0; m0 < M; m0 += 4) {
            const int mn = M - m0 < 4 ? M - m0 : 4;
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            int b = 0;
            for (; b + 2 <= nb; b += 2) {
                const uint8_t *block = row + (size_t)b * bytes;
                const __m512i u = unsigned_weights2(type, block, bytes);
                const float dw0 = _cvtsh_ss(ck_load_u16(block)), dw1 = _cvtsh_ss(ck_load_u16(block + bytes));
                for (int i = 0; i < 4; i++) {
                    if (i >= mn) break;
                    const size_t m = (size_t)(m0 + i);
                    const __m512i q = _mm512_loadu_si512(qx + m * K + 32 * b);
                    // Lanes 0 and 8 start at −off·Σqx of their block, so each half sums to Σ qw·qx.
                    const __m512i start = _mm512_maskz_permutexvar_epi32(
                        0x0101, pick, _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(corr + m * nb + b))));
                    const __m512i dot = _mm512_dpbusd_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), start), u, q);
                    const __m512 scale = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(dw0 * dx[m * nb + b]),
                                                              _mm512_set1_ps(dw1 * dx[m * nb + b + 1]));
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[i]);
                }
            }
            if (b < nb) { // an odd last block, in the low half
                const uint8_t *block = row + (size_t)b * bytes;
                __m256i lowhalf;
                if (type == CK_TYPE_Q8_0)
                    lowhalf = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(block + 2)), _mm256_set1_epi8((char)0x80));
                else {
                    const __m128i q = _mm_loadu_si128((const __m128i *)(block + 2)), low4 = _mm_set1_epi8(0x0F);
                    lowhalf = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), low4), _mm_and_si128(q, low4));
                }
                const float dw = _cvtsh_ss(ck_load_u16(block));
                for (int i = 0; i < mn; i++) {
                    const size_t m = (size_t)(m0 + i);
                    const __m512i q = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(qx + m * K + 32 * b)));
                    const __m512i start = _mm512_maskz_loadu_epi32(1, corr + m * nb + b);
                    const __m512i dot = _mm512_maskz_dpbusd_epi32(0x00FF, _mm512_sub_epi32(_mm512_setzero_si512(), start),
                                                                  _mm512_zextsi256_si512(lowhalf), q);
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(dw * dx[m * nb + b]), acc[i]);
                }
            }
            for (int i = 0; i < mn; i++) y[(size_t)(m0 + i) * ldy + n] = _mm512_reduce_add_ps(acc[i]);
        }
    }
}
#endif

int ck_gemm_q8_int8(int type, const float *x, int M, int K, const void *w, int n0, int n1, float *y, int ldy) {
    const int nb = K / 32;
    int8_t *qx = malloc((size_t)M * K + 64);
    float *dx = malloc((size_t)M * nb * sizeof(float) + 64);
    int32_t *corr = malloc((size_t)M * nb * sizeof(int32_t) + 64);
    if (!qx || !dx || !corr) {
        free(qx), free(dx), free(corr);
        return -1;
    }
    quantize_x(x, M, K, type == CK_TYPE_Q8_0 ? 128 : 8, qx, dx, corr);
    const size_t rowbytes = (size_t)nb * ck_type_block_bytes(type);
    const int level = ck_isa();
#ifdef CK_X86
    if (level >= CK_ISA_VNNI) int8_vnni(type, qx, dx, corr, M, K, (const uint8_t *)w, rowbytes, n0, n1, y, ldy);
    else if (level >= CK_ISA_AVX2) int8_avx2(type, qx, dx, M, K, (const uint8_t *)w, rowbytes, n0, n1, y, ldy);
    else
#endif
        int8_base(type, qx, dx, M, K, (const uint8_t *)w, rowbytes, n0, n1, y, ldy);
    (void)level;
    free(qx), free(dx), free(corr);
    return 0;
}
