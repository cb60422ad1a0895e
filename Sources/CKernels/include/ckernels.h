#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

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

/// 1 when the AVX-512 kernels are used (follows `ck_set_isa`).
int ck_uses_avx512(void);

// ---------------------------------------------------------------------------------------------
// Compact-weight kernels (kernels_dispatch.c, kernels_bf16.c, kernels_quant.c, kernels_q8.c).
// Dimension letters: M = rows of activations (tokens), N = output features, K = input features.
// W is (N, K) row-major like a PyTorch linear weight, stored compact (bf16 or ggml blocks).
// Every kernel computes a slice of the output ([n0, n1) or [k0, k1)) so the caller can split the
// output between threads; slices never overlap, and the inputs are only read.

/// Instruction-set levels, lowest first. The level in use is the best the CPU has unless lowered
/// by `ck_set_isa` or the environment variable CORPUS_KERNEL_ISA=c|avx2|avx512|vnni|bf16.
enum {
    CK_ISA_C = 0,      // plain C (whatever the compiler makes of it for x86-64 baseline)
    CK_ISA_AVX2 = 1,   // AVX2 + FMA + F16C: AVX2 dequantization and dots, the plain C tiles compiled for AVX2
    CK_ISA_AVX512 = 2, // AVX-512 F/BW/DQ/VL intrinsics
    CK_ISA_VNNI = 3,   // + AVX512_VNNI (int8 dot products, CK_Q_INT8)
    CK_ISA_BF16 = 4,   // + AVX512_BF16 (vdpbf16ps, bf16 mode 1)
};

/// The level the kernels use now.
int ck_isa(void);
/// The best level this CPU supports.
int ck_isa_supported(void);
/// Sets the level (clamped to `ck_isa_supported()`); a negative level restores the default (the
/// environment variable, else the best). Returns the level now in use. Not for use while another
/// thread runs a kernel.
int ck_set_isa(int level);
/// A level's name ("c", "avx2", "avx512", "vnni", "bf16").
const char *ck_isa_name(int level);

/// out[i] = x[i] rounded to bf16, to nearest with ties to even (PyTorch's rounding; subnormals
/// kept, overflow to ±inf, a NaN stays a quiet NaN with its sign).
void ck_round_bf16(const float *x, uint16_t *out, size_t n);
/// out[i] = the fp32 value of bf16 x[i] (exact).
void ck_bf16_to_f32(const uint16_t *x, float *out, size_t n);

/// Modes of the bf16 products.
enum {
    CK_BF16_EXACT = 0, // bf16 weights expanded exactly to fp32, fp32 FMA
    CK_BF16_ROUND = 1, // activations rounded to bf16 too (as under PyTorch's bf16 autocast);
                       // vdpbf16ps on AVX512_BF16, fp32 FMA of the same bf16 values elsewhere
};

/// y[m·ldy + n] = Σ_k x[m·K + k] · w[n·K + k] for m < M and n in [n0, n1).
/// x (M, K) fp32; w (N, K) bf16; y (M, ldy) fp32, only columns [n0, n1) written.
/// mode CK_BF16_EXACT: equals an fp32 GEMM with the expanded weights up to summation order.
/// mode CK_BF16_ROUND: |y − exact| ≤ 2^-8 · Σ_k |x[m,k]| · |w[n,k]| (plus fp32 summation error).
/// Returns 0, or -1 when scratch memory could not be allocated (y is then unspecified).
int ck_gemm_bf16(const float *x, int M, int K, const uint16_t *w, int n0, int n1, float *y, int ldy, int mode);

/// The input gradient of y = x · Wᵀ: dx[m·lddx + k] = Σ_n dy[m·N + n] · w[n·K + k] for m < M and
/// k in [k0, k1). dy (M, N) fp32; w (N, K) bf16; dx (M, lddx) fp32, only columns [k0, k1) written
/// (overwritten, not accumulated). Modes and return value as for `ck_gemm_bf16` (in mode 1 dy is
/// rounded to bf16).
int ck_gemm_bf16_t(const float *dy, int M, int N, const uint16_t *w, int K, int k0, int k1, float *dx, int lddx,
                   int mode);

/// ggml tensor types the compact kernels read (the values of ggml's `enum ggml_type`).
enum {
    CK_TYPE_F32 = 0, CK_TYPE_F16 = 1, CK_TYPE_Q4_0 = 2, CK_TYPE_Q4_1 = 3, CK_TYPE_Q8_0 = 8,
    CK_TYPE_Q4_K = 12, CK_TYPE_Q6_K = 14, CK_TYPE_BF16 = 30,
};

/// Elements per block of `type` (1 for F32/F16/BF16, 32, or 256), or 0 for an unsupported type.
int ck_type_block_elements(int type);
/// Bytes per block of `type`, or 0 for an unsupported type. A row of K elements takes
/// K / ck_type_block_elements(type) · ck_type_block_bytes(type) bytes.
int ck_type_block_bytes(int type);

/// out[(r − r0)·K + k] = dequantized w[r, k] for rows r in [r0, r1): w is (rows, K) in ggml's
/// layout for `type` (K a multiple of the block size). Bit-identical to GGMLDequantize.swift.
/// Returns 0, or -1 for an unsupported type or a K that is not a multiple of the block size.
int ck_dequantize_rows(int type, const void *w, int K, int r0, int r1, float *out);

/// Modes of `ck_gemm_q`.
enum {
    CK_Q_EXACT = 0, // weights dequantized exactly to fp32, fp32 FMA: equals dequantize + fp32 GEMM
                    // up to summation order
    CK_Q_INT8 = 1,  // Q8_0 and Q4_0 only: each 32-block of x quantized to int8 with its own scale
                    // (like llama.cpp's Q8_0 activations), integer dot products (VNNI when present);
                    // not exact, see docs/TRAINING_MATH.md. Other types fall back to CK_Q_EXACT.
};

/// y[m·ldy + n] = Σ_k x[m·K + k] · dequant(w)[n, k] for m < M and n in [n0, n1).
/// x (M, K) fp32; w (N, K) in ggml's layout for `type` (rows of K / block elements blocks);
/// y (M, ldy) fp32, only columns [n0, n1) written. Weights are read once per call per 16 rows of x
/// (meant for decoding, M ≤ 16; for large M dequantize tiles and use sgemm).
/// Returns 0, or -1 for an unsupported type, a K that is not a multiple of the block size, or
/// failed scratch allocation.
int ck_gemm_q(int type, const float *x, int M, int K, const void *w, int n0, int n1, float *y, int ldy, int mode);

/// Returns heap memory the allocator holds freed to the system (glibc's malloc_trim; nothing
/// elsewhere).
void ck_release_free_memory(void);

#endif
