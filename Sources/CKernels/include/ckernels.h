#ifndef CKERNELS_H
#define CKERNELS_H


/// Attention for one query: scores[u] = scale · Σ_i q[i] · k[u·ldk + i] for u < S (HD = head
/// dimension), the softmax of the scores in place, and out[i] = Σ_u scores[u] · v[u·ldv + i].
/// AVX-512 when the CPU has it, plain C otherwise.
void ck_attend_one(const float *q, const float *k, int ldk, const float *v, int ldv, int S, int HD, float scale,
                   float *scores, float *out);

/// 1 when the AVX-512 kernels are used.
int ck_uses_avx512(void);

#endif
