// Decoding kernels: see ckernels.h. Written for this project; the AVX-512 path is chosen at run
// time so the binary still runs on CPUs without it.
#include "ckernels.h"

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

static int avx512_state = -1;

int ck_uses_avx512(void) {
    if (avx512_state < 0) {
        __builtin_cpu_init();
        avx512_state = __builtin_cpu_supports("avx512f");
    }
    return avx512_state;
}
#else
int ck_uses_avx512(void) { return 0; }
#endif

void ck_attend_one(const float *q, const float *k, int ldk, const float *v, int ldv, int S, int HD, float scale,
                   float *scores, float *out) {
#ifdef CK_X86
    if (ck_uses_avx512()) { attend_avx512(q, k, ldk, v, ldv, S, HD, scale, scores, out); return; }
#endif
    attend_generic(q, k, ldk, v, ldv, S, HD, scale, scores, out);
}
