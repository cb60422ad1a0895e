// Decoding kernels: see ckernels.h. Written for this project; the AVX-512 path is chosen at run
// time so the binary still runs on CPUs without it.
#include "ckernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CK_X86 1
#endif

static inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void matmul_f32_generic(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy) {
    for (int n = n0; n < n1; n++) {
        const float *row = w + (size_t)n * K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            float s[8] = {0};
            int k = 0;
            for (; k + 8 <= K; k += 8)
                for (int j = 0; j < 8; j++) s[j] += xm[k + j] * row[k + j];
            float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
            for (; k < K; k++) sum += xm[k] * row[k];
            y[(size_t)m * ldy + n] = sum;
        }
    }
}

static void matmul_bf16_generic(const float *x, int M, int K, const uint16_t *w, int n0, int n1, float *y, int ldy) {
    for (int n = n0; n < n1; n++) {
        const uint16_t *row = w + (size_t)n * K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            float sum = 0;
            for (int k = 0; k < K; k++) sum += xm[k] * bf16_to_f32(row[k]);
            y[(size_t)m * ldy + n] = sum;
        }
    }
}

#ifdef CK_X86
// Four weight rows at a time stay in L1 while every input row is multiplied with them.
#define CK_ROWS 4

__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline __m512 load_bf16(const uint16_t *p, __mmask16 mask) {
    __m256i h = _mm256_maskz_loadu_epi16(mask, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void matmul_bf16_avx512(const float *x, int M, int K, const uint16_t *w, int n0, int n1, float *y, int ldy) {
    int n = n0;
    for (; n + CK_ROWS <= n1; n += CK_ROWS) {
        const uint16_t *r0 = w + (size_t)n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < K; k += 16) {
                __mmask16 mask = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
                __m512 xv = _mm512_maskz_loadu_ps(mask, xm + k);
                a0 = _mm512_fmadd_ps(xv, load_bf16(r0 + k, mask), a0);
                a1 = _mm512_fmadd_ps(xv, load_bf16(r1 + k, mask), a1);
                a2 = _mm512_fmadd_ps(xv, load_bf16(r2 + k, mask), a2);
                a3 = _mm512_fmadd_ps(xv, load_bf16(r3 + k, mask), a3);
            }
            float *ym = y + (size_t)m * ldy + n;
            ym[0] = _mm512_reduce_add_ps(a0);
            ym[1] = _mm512_reduce_add_ps(a1);
            ym[2] = _mm512_reduce_add_ps(a2);
            ym[3] = _mm512_reduce_add_ps(a3);
        }
    }
    for (; n < n1; n++) {
        const uint16_t *r0 = w + (size_t)n * K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            __m512 a0 = _mm512_setzero_ps();
            for (int k = 0; k < K; k += 16) {
                __mmask16 mask = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
                a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, xm + k), load_bf16(r0 + k, mask), a0);
            }
            y[(size_t)m * ldy + n] = _mm512_reduce_add_ps(a0);
        }
    }
}

__attribute__((target("avx512f")))
static void matmul_f32_avx512(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy) {
    int n = n0;
    for (; n + CK_ROWS <= n1; n += CK_ROWS) {
        const float *r0 = w + (size_t)n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < K; k += 16) {
                __mmask16 mask = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
                __m512 xv = _mm512_maskz_loadu_ps(mask, xm + k);
                a0 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, r0 + k), a0);
                a1 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, r1 + k), a1);
                a2 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, r2 + k), a2);
                a3 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, r3 + k), a3);
            }
            float *ym = y + (size_t)m * ldy + n;
            ym[0] = _mm512_reduce_add_ps(a0);
            ym[1] = _mm512_reduce_add_ps(a1);
            ym[2] = _mm512_reduce_add_ps(a2);
            ym[3] = _mm512_reduce_add_ps(a3);
        }
    }
    for (; n < n1; n++) {
        const float *r0 = w + (size_t)n * K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            __m512 a0 = _mm512_setzero_ps();
            for (int k = 0; k < K; k += 16) {
                __mmask16 mask = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
                a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, xm + k), _mm512_maskz_loadu_ps(mask, r0 + k), a0);
            }
            y[(size_t)m * ldy + n] = _mm512_reduce_add_ps(a0);
        }
    }
}

static int avx512_state = -1;

int ck_uses_avx512(void) {
    if (avx512_state < 0) {
        __builtin_cpu_init();
        avx512_state = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }
    return avx512_state;
}
#else
int ck_uses_avx512(void) { return 0; }
#endif

void ck_matmul_wt_f32(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy) {
#ifdef CK_X86
    if (ck_uses_avx512()) { matmul_f32_avx512(x, M, K, w, n0, n1, y, ldy); return; }
#endif
    matmul_f32_generic(x, M, K, w, n0, n1, y, ldy);
}

void ck_matmul_wt_bf16(const float *x, int M, int K, const uint16_t *w, int n0, int n1, float *y, int ldy) {
#ifdef CK_X86
    if (ck_uses_avx512()) { matmul_bf16_avx512(x, M, K, w, n0, n1, y, ldy); return; }
#endif
    matmul_bf16_generic(x, M, K, w, n0, n1, y, ldy);
}

void ck_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &src[i], sizeof bits);
        if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu)) {
            dst[i] = (uint16_t)((bits >> 16) | 0x0040u);  // quiet NaN
        } else {
            bits += 0x7FFFu + ((bits >> 16) & 1u);
            dst[i] = (uint16_t)(bits >> 16);
        }
    }
}
