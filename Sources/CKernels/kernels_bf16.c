// Products with bf16 weights: y = x · Wᵀ (ck_gemm_bf16) and dx = dy · W (ck_gemm_bf16_t).
//
// Both are C[M, J] = A[M, R] · B[R, J] with B read from the bf16 weight W (N, K):
//   forward   A = x  (M, K), R = K, J = N, B[r][j] = W[j][r]
//   gradient  A = dy (M, N), R = N, J = K, B[r][j] = W[r][j]
// and share one driver in the GotoBLAS shape: a block of B (KC reduction rows × NC columns) is
// converted and packed into column panels of NR (in L2), then for every MR rows of A an MR × NR
// register tile accumulates over the block with A broadcast from its rows (outer products, no
// horizontal sums). Mode 0 packs fp32 (the conversion from bf16 is exact) and uses fp32 FMA;
// mode 1 with AVX512_BF16 packs bf16 pairs along the reduction and runs vdpbf16ps on A rounded to
// bf16. Written for this project.
#include "ck_internal.h"

#include <stdlib.h>

// Register tiles: MR rows of A × NR columns of B. AVX-512: 8 × 48 (24 zmm accumulators);
// plain C / AVX2: 6 × 16 (12 ymm accumulators once vectorized).
enum { MR512 = 8, NR512 = 48, MRC = 6, NRC = 16 };
// Reduction block (KC) and column block (NC) of packed B: KC · NC · 4 bytes stay in L2 while all
// of A's rows stream past; an MR × KC strip of A stays in L1 across the NC / NR panels.
enum { KC_F32 = 256, KC_PAIRS = 512, NC_BLOCK = 480 };
// Up to this many rows the forward product reads W once with row dot products (ck_gemm_q's path)
// instead of packing it (measured: row dots win up to ~20 rows in fp32, up to ~10 against
// vdpbf16ps).
enum { SMALL_M_EXACT = 20, SMALL_M_BF16 = 10 };

/// Where B comes from: W (N, K) row-major bf16, read transposed for the forward product.
typedef struct {
    const uint16_t *w;
    int ldw;   // K
    int trans; // 0: B[r][j] = w[j·ldw + r] (forward); 1: B[r][j] = w[r·ldw + j] (gradient)
} bsource;

CK_INLINE uint16_t b_at(bsource s, int r, int j) {
    return s.trans ? s.w[(size_t)r * s.ldw + j] : s.w[(size_t)j * s.ldw + r];
}

/// Packs B[r0 .. r0+rc) × [j0 .. j0+jc) as fp32 panels of nr columns: panel p at out + p·rc·nr,
/// element (r, j) at r·nr + j; columns past jc are zero.
static void pack_f32(bsource s, int r0, int rc, int j0, int jc, int nr, float *out) {
    for (int p = 0; p * nr < jc; p++) {
        float *panel = out + (size_t)p * rc * nr;
        int cols = jc - p * nr < nr ? jc - p * nr : nr;
        if (s.trans) {
            for (int r = 0; r < rc; r++) {
                const uint16_t *src = s.w + (size_t)(r0 + r) * s.ldw + j0 + p * nr;
                float *dst = panel + (size_t)r * nr;
                for (int j = 0; j < cols; j++) dst[j] = ck_bf16_value(src[j]);
                for (int j = cols; j < nr; j++) dst[j] = 0;
            }
        } else {
            for (int j = 0; j < nr; j++) {
                if (j >= cols) {
                    for (int r = 0; r < rc; r++) panel[(size_t)r * nr + j] = 0;
                    continue;
                }
                const uint16_t *src = s.w + (size_t)(j0 + p * nr + j) * s.ldw + r0;
                for (int r = 0; r < rc; r++) panel[(size_t)r * nr + j] = ck_bf16_value(src[r]);
            }
        }
    }
}

/// Packs B as bf16 pairs along the reduction for vdpbf16ps: panel p at out + p·⌈rc/2⌉·nr (32-bit
/// words), word (q, j) at q·nr + j holds B[r0+2q][j] (low half) and B[r0+2q+1][j] (high half, 0
/// past the end); columns past jc are zero.
static void pack_pairs(bsource s, int r0, int rc, int j0, int jc, int nr, uint32_t *out) {
    const int pairs = (rc + 1) / 2;
    for (int p = 0; p * nr < jc; p++) {
        uint32_t *panel = out + (size_t)p * pairs * nr;
        int cols = jc - p * nr < nr ? jc - p * nr : nr;
        for (int q = 0; q < pairs; q++) {
            uint32_t *dst = panel + (size_t)q * nr;
            int r = r0 + 2 * q, second = 2 * q + 1 < rc;
            for (int j = 0; j < cols; j++) {
                uint32_t lo = b_at(s, r, j0 + p * nr + j), hi = second ? b_at(s, r + 1, j0 + p * nr + j) : 0;
                dst[j] = lo | hi << 16;
            }
            for (int j = cols; j < nr; j++) dst[j] = 0;
        }
    }
}

// ---- register tiles ----

/// C[i][j] (+)= Σ_r A[i][r] · B[r][j] for i < mr ≤ MRC, j < nvalid ≤ NRC; plain C the compiler
/// vectorizes over j (compiled twice: baseline and AVX2 + FMA).
CK_INLINE void tile_c(int mr, int kc, const float *a, int lda, const float *b, float *c, int ldc, int nvalid,
                      int accumulate) {
    float t[MRC][NRC];
    for (int i = 0; i < MRC; i++)
        for (int j = 0; j < NRC; j++) t[i][j] = 0;
    for (int r = 0; r < kc; r++)
        for (int i = 0; i < MRC; i++) {
            if (i >= mr) break;
            const float av = a[(size_t)i * lda + r];
            for (int j = 0; j < NRC; j++) t[i][j] += av * b[(size_t)r * NRC + j];
        }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nvalid; j++) c[(size_t)i * ldc + j] = accumulate ? c[(size_t)i * ldc + j] + t[i][j] : t[i][j];
}

#define TILE_C_VARIANTS(suffix, attr)                                                                   \
    attr static void tile_c_##suffix(int mr, int kc, const float *a, int lda, const float *b, float *c, \
                                     int ldc, int nvalid, int accumulate) {                            \
        switch (mr) {                                                                                  \
        case 6: tile_c(6, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                           \
        case 5: tile_c(5, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                           \
        case 4: tile_c(4, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                           \
        case 3: tile_c(3, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                           \
        case 2: tile_c(2, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                           \
        default: tile_c(1, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                          \
        }                                                                                              \
    }

TILE_C_VARIANTS(base, )
#ifdef CK_X86
TILE_C_VARIANTS(avx2, __attribute__((target("avx2,fma"))))

#define T512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define TBF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))

T512 CK_INLINE __mmask16 lanes(int count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

/// Stores (or adds) the MR × 48 accumulators to C, columns < nvalid.
T512 CK_INLINE void store_tile(int mr, __m512 *c0, __m512 *c1, __m512 *c2, float *c, int ldc, int nvalid,
                               int accumulate) {
    const __mmask16 m0 = lanes(nvalid), m1 = lanes(nvalid - 16), m2 = lanes(nvalid - 32);
    for (int i = 0; i < MR512; i++) {
        if (i >= mr) break;
        float *row = c + (size_t)i * ldc;
        if (accumulate) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, row));
            c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, row + 16));
            c2[i] = _mm512_add_ps(c2[i], _mm512_maskz_loadu_ps(m2, row + 32));
        }
        _mm512_mask_storeu_ps(row, m0, c0[i]);
        _mm512_mask_storeu_ps(row + 16, m1, c1[i]);
        _mm512_mask_storeu_ps(row + 32, m2, c2[i]);
    }
}

/// fp32 tile: C (+)= A[mr × kc] · B panel (kc × 48).
T512 CK_INLINE void tile_f32(int mr, int kc, const float *a, int lda, const float *b, float *c, int ldc, int nvalid,
                             int accumulate) {
    __m512 c0[MR512], c1[MR512], c2[MR512];
    for (int i = 0; i < MR512; i++) c0[i] = c1[i] = c2[i] = _mm512_setzero_ps();
    for (int r = 0; r < kc; r++) {
        const float *br = b + (size_t)r * NR512;
        const __m512 b0 = _mm512_loadu_ps(br), b1 = _mm512_loadu_ps(br + 16), b2 = _mm512_loadu_ps(br + 32);
        for (int i = 0; i < MR512; i++) {
            if (i >= mr) break;
            const __m512 av = _mm512_set1_ps(a[(size_t)i * lda + r]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
            c2[i] = _mm512_fmadd_ps(av, b2, c2[i]);
        }
    }
    store_tile(mr, c0, c1, c2, c, ldc, nvalid, accumulate);
}

/// bf16 tile: C (+)= A[mr × 2·pairs] · B panel (pairs of rows × 48), A in bf16 with lda even.
TBF16 CK_INLINE void tile_bf16(int mr, int pairs, const uint16_t *a, int lda, const uint32_t *b, float *c, int ldc,
                               int nvalid, int accumulate) {
    __m512 c0[MR512], c1[MR512], c2[MR512];
    for (int i = 0; i < MR512; i++) c0[i] = c1[i] = c2[i] = _mm512_setzero_ps();
    for (int q = 0; q < pairs; q++) {
        const uint32_t *bq = b + (size_t)q * NR512;
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bq), b1 = (__m512bh)_mm512_loadu_si512(bq + 16),
                       b2 = (__m512bh)_mm512_loadu_si512(bq + 32);
        for (int i = 0; i < MR512; i++) {
            if (i >= mr) break;
            uint32_t pair;
            memcpy(&pair, a + (size_t)i * lda + 2 * q, 4);
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)pair);
            c0[i] = _mm512_dpbf16_ps(c0[i], av, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], av, b1);
            c2[i] = _mm512_dpbf16_ps(c2[i], av, b2);
        }
    }
    store_tile(mr, c0, c1, c2, c, ldc, nvalid, accumulate);
}

/// out[0..n) = x rounded to bf16 by vcvtne2ps2bf16: to nearest even, but subnormals become zero,
/// which changes nothing here because vdpbf16ps treats subnormal inputs as zero anyway.
TBF16 static void round_panel_row(const float *x, uint16_t *out, int n) {
    int i = 0;
    for (; i + 32 <= n; i += 32)
        _mm512_storeu_si512(out + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i)));
    for (; i < n; i += 16) {
        const __mmask16 m = lanes(n - i);
        _mm256_mask_storeu_epi16(out + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

#define TILE_512_VARIANTS(name, attr, body, atype, btype)                                                  \
    attr static void name(int mr, int kc, const atype *a, int lda, const btype *b, float *c, int ldc,     \
                          int nvalid, int accumulate) {                                                  \
        switch (mr) {                                                                                    \
        case 8: body(8, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                               \
        case 7: body(7, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                               \
        case 6: body(6, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                               \
        case 5: body(5, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                               \
        case 4: body(4, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                               \
        case 3: body(3, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                               \
        case 2: body(2, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                               \
        default: body(1, kc, a, lda, b, c, ldc, nvalid, accumulate); break;                              \
        }                                                                                                \
    }

TILE_512_VARIANTS(tile_f32_avx512, T512, tile_f32, float, float)
TILE_512_VARIANTS(tile_bf16_avx512, TBF16, tile_bf16, uint16_t, uint32_t)
#endif

// ---- driver ----

typedef void (*tile_f32_fn)(int, int, const float *, int, const float *, float *, int, int, int);

/// Copies rows [0, rows) × [pc, pc + rc) of A into a contiguous panel (row stride rc), rounded to
/// bf16 values when `round` is set: the tiles then broadcast from one small block in L1.
static void pack_a_f32(const float *A, int lda, int rows, int pc, int rc, int round, float *out) {
    for (int i = 0; i < rows; i++) {
        const float *src = A + (size_t)i * lda + pc;
        float *dst = out + (size_t)i * rc;
        if (round)
            for (int r = 0; r < rc; r++) dst[r] = ck_bf16_round(src[r]);
        else
            memcpy(dst, src, (size_t)rc * sizeof(float));
    }
}

/// C[M, j0..j1) = A[M, R] · B[R, j0..j1) in fp32 (A with row stride lda, C with ldc); A rounded
/// to bf16 values first when `round` is set (mode 1 without AVX512_BF16).
static int driver_f32(const float *A, int lda, int M, int R, bsource s, int j0, int j1, float *C, int ldc, int round,
                      int level) {
    tile_f32_fn tile = tile_c_base;
    int mr = MRC, nr = NRC;
#ifdef CK_X86
    if (level >= CK_ISA_AVX512) tile = tile_f32_avx512, mr = MR512, nr = NR512;
    else if (level >= CK_ISA_AVX2) tile = tile_c_avx2;
#endif
    const int nc = NC_BLOCK / nr * nr;
    float apanel[MR512 * KC_F32];
    float *packed = aligned_alloc(64, (size_t)KC_F32 * nc * sizeof(float));
    if (!packed) return -1;
    for (int jc = j0; jc < j1; jc += nc) {
        const int jn = j1 - jc < nc ? j1 - jc : nc;
        for (int pc = 0; pc < R; pc += KC_F32) {
            const int rc = R - pc < KC_F32 ? R - pc : KC_F32;
            pack_f32(s, pc, rc, jc, jn, nr, packed);
            for (int ic = 0; ic < M; ic += mr) {
                const int rows = M - ic < mr ? M - ic : mr;
                pack_a_f32(A + (size_t)ic * lda, lda, rows, pc, rc, round, apanel);
                for (int p = 0; p * nr < jn; p++) {
                    const int cols = jn - p * nr < nr ? jn - p * nr : nr;
                    tile(rows, rc, apanel, rc, packed + (size_t)p * rc * nr, C + (size_t)ic * ldc + jc + p * nr, ldc,
                         cols, pc > 0);
                }
            }
        }
    }
    free(packed);
    return 0;
}

#ifdef CK_X86
/// The same product with vdpbf16ps: A is rounded to bf16 one MR × KC panel at a time (row stride
/// even, a zero after an odd count) and B packed as pairs.
static int driver_bf16(const float *A, int lda, int M, int R, bsource s, int j0, int j1, float *C, int ldc) {
    const int nc = NC_BLOCK / NR512 * NR512;
    uint16_t apanel[MR512 * KC_PAIRS];
    uint32_t *packed = aligned_alloc(64, (size_t)(KC_PAIRS / 2) * nc * sizeof(uint32_t));
    if (!packed) return -1;
    for (int jc = j0; jc < j1; jc += nc) {
        const int jn = j1 - jc < nc ? j1 - jc : nc;
        for (int pc = 0; pc < R; pc += KC_PAIRS) {
            const int rc = R - pc < KC_PAIRS ? R - pc : KC_PAIRS, pairs = (rc + 1) / 2;
            pack_pairs(s, pc, rc, jc, jn, NR512, packed);
            for (int ic = 0; ic < M; ic += MR512) {
                const int rows = M - ic < MR512 ? M - ic : MR512;
                for (int i = 0; i < rows; i++) {
                    round_panel_row(A + (size_t)(ic + i) * lda + pc, apanel + (size_t)i * 2 * pairs, rc);
                    if (rc & 1) apanel[(size_t)i * 2 * pairs + rc] = 0;
                }
                for (int p = 0; p * NR512 < jn; p++) {
                    const int cols = jn - p * NR512 < NR512 ? jn - p * NR512 : NR512;
                    tile_bf16_avx512(rows, pairs, apanel, 2 * pairs, packed + (size_t)p * pairs * NR512,
                                     C + (size_t)ic * ldc + jc + p * NR512, ldc, cols, pc > 0);
                }
            }
        }
    }
    free(packed);
    return 0;
}
#endif

/// C = A · B in the given mode (mode 1 rounds A to bf16).
static int product(const float *A, int M, int R, bsource s, int j0, int j1, float *C, int ldc, int mode) {
    if (M <= 0 || j0 >= j1) return 0;
    if (R <= 0) {
        for (int m = 0; m < M; m++)
            for (int j = j0; j < j1; j++) C[(size_t)m * ldc + j] = 0;
        return 0;
    }
    const int level = ck_isa();
#ifdef CK_X86
    if (mode != CK_BF16_EXACT && level >= CK_ISA_BF16) return driver_bf16(A, R, M, R, s, j0, j1, C, ldc);
#endif
    return driver_f32(A, R, M, R, s, j0, j1, C, ldc, mode != CK_BF16_EXACT, level);
}

int ck_gemm_bf16(const float *x, int M, int K, const uint16_t *w, int n0, int n1, float *y, int ldy, int mode) {
    const int small = mode == CK_BF16_EXACT || ck_isa() < CK_ISA_BF16 ? SMALL_M_EXACT : SMALL_M_BF16;
    if (M > 0 && M <= small && K > 0 && n0 < n1) {
        // Few rows: stream W once with row dot products (exact fp32 of the bf16-rounded x in mode 1).
        if (mode == CK_BF16_EXACT) return ck_gemm_q(CK_TYPE_BF16, x, M, K, w, n0, n1, y, ldy, CK_Q_EXACT);
        float *rounded = malloc((size_t)M * K * sizeof(float));
        if (!rounded) return -1;
        for (size_t i = 0; i < (size_t)M * K; i++) rounded[i] = ck_bf16_round(x[i]);
        int status = ck_gemm_q(CK_TYPE_BF16, rounded, M, K, w, n0, n1, y, ldy, CK_Q_EXACT);
        free(rounded);
        return status;
    }
    bsource s = {w, K, 0};
    return product(x, M, K, s, n0, n1, y, ldy, mode);
}

int ck_gemm_bf16_t(const float *dy, int M, int N, const uint16_t *w, int K, int k0, int k1, float *dx, int lddx,
                   int mode) {
    bsource s = {w, K, 1};
    return product(dy, M, N, s, k0, k1, dx, lddx, mode);
}
