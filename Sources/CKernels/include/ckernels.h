#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Small-batch matrix products for decoding: y[m·ldy + n] = Σ_k x[m·K + k] · w[n·K + k] for the
/// output rows n in [n0, n1) and every input row m < M. The weight matrix w is (N, K) row-major,
/// as a PyTorch linear weight, and is streamed once for all M rows (decoding is bound by reading
/// the weights, which a packed GEMM would copy on every call). AVX-512 when the CPU has it, plain
/// C otherwise; the caller splits [0, N) between threads.
void ck_matmul_wt_f32(const float *x, int M, int K, const float *w, int n0, int n1, float *y, int ldy);

/// The same with the weights in bfloat16 (half the bytes to read).
void ck_matmul_wt_bf16(const float *x, int M, int K, const uint16_t *w, int n0, int n1, float *y, int ldy);

/// fp32 → bfloat16, rounding to nearest even (NaN stays NaN).
void ck_f32_to_bf16(const float *src, uint16_t *dst, size_t n);

/// 1 when the AVX-512 kernels are used.
int ck_uses_avx512(void);

#endif
