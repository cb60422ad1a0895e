#ifndef CKERNELS_H
#define CKERNELS_H


/// Attention for one query: scores[u] = scale · Σ_i q[i] · k[u·ldk + i] for u < S (HD = head
/// dimension), the softmax of the scores in place, and out[i] = Σ_u scores[u] · v[u·ldv + i].
/// AVX-512 when the CPU has it, plain C otherwise.
void ck_attend_one(const float *q, const float *k, int ldk, const float *v, int ldv, int S, int HD, float scale,
                   float *scores, float *out);

/// Small-batch products for decoding: y[m·ldy + n] = Σ_k x[m·K + k] · w[n·K + k] for the output
/// rows n in [n0, n1) and every input row m < M. w is (N, K) row-major, a PyTorch linear weight;
/// four of its rows at a time stay in cache while every input row is multiplied with them, so the
/// weights are read from memory once per call (a packed GEMM copies them on every call, which is
/// most of a decoding step's time). The caller splits [0, N) between threads.
void ck_matmul_wt(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy);

/// 1 when the AVX-512 kernels are used.
int ck_uses_avx512(void);

#endif
