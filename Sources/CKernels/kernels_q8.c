// Placeholder: the int8 path comes later; until then CK_Q_INT8 is exact.
#include "ck_internal.h"

int ck_gemm_q8_int8(int type, const float *x, int M, int K, const void *w, int n0, int n1, float *y, int ldy);

int ck_gemm_q8_int8(int type, const float *x, int M, int K, const void *w, int n0, int n1, float *y, int ldy) {
    return ck_gemm_q(type, x, M, K, w, n0, n1, y, ldy, CK_Q_EXACT);
}
