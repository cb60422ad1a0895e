// Decoding kernels: see ckernels.h. Written for this project; the AVX-512 path is chosen at run
// time so the binary still runs on CPUs without it.
#include "ck_internal.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CK_X86 1
#endif

#include <math.h>

static void attend_generic(const float *q, const float *k, int ldk, const float *v, int ldv, int S, int HD, float scale,
                           float *scores, float *out) {
    float max = -INFINITY;
    for (int u = 0; u < S; u++) {
        const float *key = k + (size_t)u * ldk;
        float dot = 0;
        for (int i = 0; i < HD; i++) dot += q[i] * key[i];
        scores[u] = dot * scale;
        if (scores[u] > max) max = scores[u];
    }
    float sum = 0;
    for (int u = 0; u < S; u++) { scores[u] = expf(scores[u] - max); sum += scores[u]; }
    for (int i = 0; i < HD; i++) out[i] = 0;
    for (int u = 0; u < S; u++) {
        const float w = scores[u] / sum;
        const float *value = v + (size_t)u * ldv;
        for (int i = 0; i < HD; i++) out[i] += w * value[i];
    }
}

#ifdef CK_X86
__attribute__((target("avx512f")))
static void attend_avx512(const float *q, const float *k, int ldk, const float *v, int ldv, int S, int HD, float scale,
                          float *scores, float *out) {
    float max = -INFINITY;
    for (int u = 0; u < S; u++) {
        const float *key = k + (size_t)u * ldk;
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < HD; i += 16) {
            __mmask16 mask = HD - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (HD - i)) - 1);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, q + i), _mm512_maskz_loadu_ps(mask, key + i), acc);
        }
        scores[u] = _mm512_reduce_add_ps(acc) * scale;
        if (scores[u] > max) max = scores[u];
    }
    float sum = 0;
    for (int u = 0; u < S; u++) { scores[u] = expf(scores[u] - max); sum += scores[u]; }
    const float inv = 1.0f / sum;
    for (int i = 0; i < HD; i += 16) {
        __mmask16 mask = HD - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (HD - i)) - 1);
        __m512 acc = _mm512_setzero_ps();
        for (int u = 0; u < S; u++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(scores[u]), _mm512_maskz_loadu_ps(mask, v + (size_t)u * ldv + i), acc);
        _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(acc, _mm512_set1_ps(inv)));
    }
}

int ck_uses_avx512(void) { return ck_isa() >= CK_ISA_AVX512; }
#else
int ck_uses_avx512(void) { return 0; }
#endif

static void matmul_generic(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy) {
    for (int n = n0; n < n1; n++) {
        const float *row = w + (size_t)n * K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            float sum = 0;
            for (int k = 0; k < K; k++) sum += xm[k] * row[k];
            y[(size_t)m * ldy + n] = sum;
        }
    }
}

#ifdef CK_X86
__attribute__((target("avx512f")))
static inline float dot_tail(const float *a, const float *b, int k, int K) {
    __mmask16 mask = (__mmask16)((1u << (K - k)) - 1);
    return _mm512_reduce_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, a + k), _mm512_maskz_loadu_ps(mask, b + k)));
}

// Eight weight rows times two input rows: 16 independent accumulators hide the FMA latency; the
// eight weight rows stay in L1 while the input rows stream past them (from L2 when there are
// many), so the weights are read from memory once and the inputs once per eight weight rows.
__attribute__((target("avx512f")))
static void block_8x2(const float *x, int K, const float *w, int n, float *y, int ldy) {
    const int K16 = K & ~15;
    const float *r[8];
    for (int j = 0; j < 8; j++) r[j] = w + (size_t)(n + j) * K;
    const float *x0 = x, *x1 = x + K;
    __m512 a0[8], a1[8];
    for (int j = 0; j < 8; j++) { a0[j] = _mm512_setzero_ps(); a1[j] = _mm512_setzero_ps(); }
    for (int k = 0; k < K16; k += 16) {
        __m512 v0 = _mm512_loadu_ps(x0 + k), v1 = _mm512_loadu_ps(x1 + k);
        for (int j = 0; j < 8; j++) {
            __m512 wv = _mm512_loadu_ps(r[j] + k);
            a0[j] = _mm512_fmadd_ps(v0, wv, a0[j]);
            a1[j] = _mm512_fmadd_ps(v1, wv, a1[j]);
        }
    }
    for (int j = 0; j < 8; j++) {
        float s0 = _mm512_reduce_add_ps(a0[j]), s1 = _mm512_reduce_add_ps(a1[j]);
        if (K16 < K) { s0 += dot_tail(x0, r[j], K16, K); s1 += dot_tail(x1, r[j], K16, K); }
        y[n + j] = s0;
        y[(size_t)ldy + n + j] = s1;
    }
}

// Eight weight rows times one input row: eight accumulators.
__attribute__((target("avx512f")))
static void block_8x1(const float *x, int K, const float *w, int n, int count, float *y) {
    const int K16 = K & ~15;
    __m512 acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm512_setzero_ps();
    for (int k = 0; k < K16; k += 16) {
        __m512 v = _mm512_loadu_ps(x + k);
        for (int j = 0; j < 8; j++)
            if (j < count) acc[j] = _mm512_fmadd_ps(v, _mm512_loadu_ps(w + (size_t)(n + j) * K + k), acc[j]);
    }
    for (int j = 0; j < count; j++) {
        float sum = _mm512_reduce_add_ps(acc[j]);
        if (K16 < K) sum += dot_tail(x, w + (size_t)(n + j) * K, K16, K);
        y[n + j] = sum;
    }
}

// Weight rows outermost, so each block of weight rows is read from memory once and stays in L1
// while every input row is multiplied with it.
__attribute__((target("avx512f")))
static void matmul_avx512(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy) {
    const int M2 = M & ~1;
    int n = n0;
    for (; n + 8 <= n1; n += 8) {
        for (int m = 0; m < M2; m += 2) block_8x2(x + (size_t)m * K, K, w, n, y + (size_t)m * ldy, ldy);
        if (M2 < M) block_8x1(x + (size_t)M2 * K, K, w, n, 8, y + (size_t)M2 * ldy);
    }
    if (n < n1)
        for (int m = 0; m < M; m++) block_8x1(x + (size_t)m * K, K, w, n, n1 - n, y + (size_t)m * ldy);
}
#endif

void ck_matmul_wt(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy) {
#ifdef CK_X86
    if (ck_uses_avx512()) { matmul_avx512(x, M, K, w, n0, n1, y, ldy); return; }
#endif
    matmul_generic(x, M, K, w, n0, n1, y, ldy);
}

void ck_attend_one(const float *q, const float *k, int ldk, const float *v, int ldv, int S, int HD, float scale,
                   float *scores, float *out) {
#ifdef CK_X86
    if (ck_uses_avx512()) { attend_avx512(q, k, ldk, v, ldv, S, HD, scale, scores, out); return; }
#endif
    attend_generic(q, k, ldk, v, ldv, S, HD, scale, scores, out);
}
