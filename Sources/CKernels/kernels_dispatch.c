// Instruction-set dispatch for the compact-weight kernels and the bf16 converters. The level is
// chosen once from the CPU (and CORPUS_KERNEL_ISA), and tests lower it with ck_set_isa to run
// every path on one machine.
#include "ck_internal.h"

#include <stdatomic.h>
#include <stdlib.h>

static _Atomic int isa_level = -1;
static _Atomic int isa_best = -1;

static int detect(void) {
#ifdef CK_X86
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return CK_ISA_C;
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        return CK_ISA_AVX2;
    if (!__builtin_cpu_supports("avx512vnni")) return CK_ISA_AVX512;
    if (!__builtin_cpu_supports("avx512bf16")) return CK_ISA_VNNI;
    return CK_ISA_BF16;
#else
    return CK_ISA_C;
#endif
}

static const char *const names[] = {"c", "avx2", "avx512", "vnni", "bf16"};

const char *ck_isa_name(int level) { return level >= 0 && level <= CK_ISA_BF16 ? names[level] : "?"; }

int ck_isa_supported(void) {
    int best = atomic_load_explicit(&isa_best, memory_order_relaxed);
    if (best < 0) {
        best = detect();
        atomic_store_explicit(&isa_best, best, memory_order_relaxed);
    }
    return best;
}

static int default_level(void) {
    int best = ck_isa_supported();
    const char *env = getenv("CORPUS_KERNEL_ISA");
    if (env)
        for (int level = 0; level <= CK_ISA_BF16; level++)
            if (strcmp(env, names[level]) == 0) return level < best ? level : best;
    return best;
}

int ck_isa(void) {
    int level = atomic_load_explicit(&isa_level, memory_order_relaxed);
    if (level < 0) {
        level = default_level();
        atomic_store_explicit(&isa_level, level, memory_order_relaxed);
    }
    return level;
}

int ck_set_isa(int level) {
    int best = ck_isa_supported();
    if (level < 0) level = default_level();
    else if (level > best) level = best;
    atomic_store_explicit(&isa_level, level, memory_order_relaxed);
    return level;
}

// ---- converters ----

#ifdef CK_X86
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void round_bf16_avx512(const float *x, uint16_t *out, size_t n) {
    const __m512i bias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
    const __m512i abs = _mm512_set1_epi32(0x7FFFFFFF), inf = _mm512_set1_epi32(0x7F800000);
    const __m512i quiet = _mm512_set1_epi32(0x00400000);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        r = _mm512_mask_or_epi32(r, nan, u, quiet);
        _mm256_mask_storeu_epi16(out + i, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void bf16_to_f32_avx512(const uint16_t *x, float *out, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, x + i));
        _mm512_mask_storeu_ps(out + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
}
#endif

void ck_round_bf16(const float *x, uint16_t *out, size_t n) {
#ifdef CK_X86
    if (ck_isa() >= CK_ISA_AVX512) { round_bf16_avx512(x, out, n); return; }
#endif
    for (size_t i = 0; i < n; i++) out[i] = ck_bf16_bits(x[i]);
}

void ck_bf16_to_f32(const uint16_t *x, float *out, size_t n) {
#ifdef CK_X86
    if (ck_isa() >= CK_ISA_AVX512) { bf16_to_f32_avx512(x, out, n); return; }
#endif
    for (size_t i = 0; i < n; i++) out[i] = ck_bf16_value(x[i]);
}
