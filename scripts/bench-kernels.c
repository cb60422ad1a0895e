// Timing of the compact-weight kernels (Sources/CKernels) against OpenBLAS sgemm, outside SwiftPM.
//
// Build and run (from the repository root):
//   clang -O3 -ISources/CKernels/include -ISources/CKernels scripts/bench-kernels.c Sources/CKernels/*.c \
//       -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas -lpthread -lm -o /tmp/bench-kernels
//   /tmp/bench-kernels              # all: bf16 GEMMs (M = 1024), quantized products (M = 1, 16)
//   /tmp/bench-kernels bf16 | q     # one family
//   /tmp/bench-kernels bf16 N K     # one shape
//   CORPUS_KERNEL_ISA=avx512 /tmp/bench-kernels   # a lower path
//   OPENBLAS_CORETYPE=SKYLAKEX /tmp/bench-kernels # OpenBLAS's AVX-512 kernels for the sgemm column
// Each figure is the best of a few repetitions (the machine is shared). 2-thread runs split the
// output columns in halves, one pthread each, as the Swift caller does; sgemm gets 2 OpenBLAS
// threads. A quick check against an fp64 reference is printed beside each kernel.
#include "ckernels.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static uint64_t rng = 42;
static uint64_t next(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uniform(void) { return (float)((next() >> 40) * (1.0 / 16777216.0) * 2 - 1); }

typedef struct {
    int kind; // 0 bf16, 1 bf16_t, 2 quant
    int type, mode, M, N, K, lo, hi;
    const float *x;
    const void *w;
    float *y;
} job;

static void run(const job *j) {
    switch (j->kind) {
    case 0: ck_gemm_bf16(j->x, j->M, j->K, j->w, j->lo, j->hi, j->y, j->N, j->mode); break;
    case 1: ck_gemm_bf16_t(j->x, j->M, j->N, j->w, j->K, j->lo, j->hi, j->y, j->K, j->mode); break;
    default: ck_gemm_q(j->type, j->x, j->M, j->K, j->w, j->lo, j->hi, j->y, j->N, j->mode); break;
    }
}
static void *thread_main(void *arg) { run(arg); return NULL; }

/// Seconds for one call of the job on `threads` threads (best of `reps`).
static double time_job(job j, int threads, int reps) {
    const int J = j.kind == 1 ? j.K : j.N;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (threads == 1) {
            j.lo = 0, j.hi = J;
            run(&j);
        } else {
            job parts[2] = {j, j};
            int mid = (J / 2 + 15) & ~15;
            parts[0].lo = 0, parts[0].hi = mid, parts[1].lo = mid, parts[1].hi = J;
            pthread_t t;
            pthread_create(&t, NULL, thread_main, &parts[1]);
            run(&parts[0]);
            pthread_join(t, NULL);
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static double time_sgemm(const float *x, const float *w, float *y, int M, int N, int K, int trans, int threads, int reps) {
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (M == 1 && !trans) cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1, w, K, x, 1, 0, y, 1);
        else if (!trans) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, x, K, w, K, 0, y, N);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1, x, N, w, K, 0, y, K);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

/// Largest |y − ref| / Σ|x||w| over a few sampled outputs (ref in fp64 from the fp32 weights wf).
static double check(const float *x, const float *wf, const float *y, int M, int N, int K, int trans) {
    double worst = 0;
    for (int s = 0; s < 64; s++) {
        int m = (int)(next() % M), c = (int)(next() % (trans ? K : N));
        double ref = 0, mag = 0;
        if (!trans)
            for (int k = 0; k < K; k++) ref += (double)x[(size_t)m * K + k] * wf[(size_t)c * K + k], mag += fabs((double)x[(size_t)m * K + k] * wf[(size_t)c * K + k]);
        else
            for (int n = 0; n < N; n++) ref += (double)x[(size_t)m * N + n] * wf[(size_t)n * K + c], mag += fabs((double)x[(size_t)m * N + n] * wf[(size_t)n * K + c]);
        double e = fabs(y[(size_t)m * (trans ? K : N) + c] - ref) / (mag > 0 ? mag : 1);
        if (e > worst) worst = e;
    }
    return worst;
}

static int only_n, only_k; // a single shape from the command line

static void bench_bf16(void) {
    static int shapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}, {896, 896}, {4864, 896}, {896, 4864}, {2048, 2048}};
    const int M = 1024;
    printf("bf16 GEMMs, M = %d, GFLOP/s (1 thread / 2 threads); err = max |y - fp64| / sum|x||w| on samples\n", M);
    printf("%-5s %-5s | %-11s | %-19s | %-19s | %-11s | %-19s | %-19s\n", "N", "K", "sgemm xW^T", "bf16 mode 0, err",
           "bf16 mode 1, err", "sgemm dyW", "bf16_t mode 0, err", "bf16_t mode 1, err");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        if (only_n) { if (s) break; shapes[0][0] = only_n, shapes[0][1] = only_k; }
        const int N = shapes[s][0], K = shapes[s][1];
        float *x = malloc(sizeof(float) * M * (K > N ? K : N)), *wf = malloc(sizeof(float) * N * K);
        float *y = malloc(sizeof(float) * M * (K > N ? K : N));
        uint16_t *w = malloc(2 * (size_t)N * K);
        for (size_t i = 0; i < (size_t)M * (K > N ? K : N); i++) x[i] = uniform();
        for (size_t i = 0; i < (size_t)N * K; i++) wf[i] = uniform() * 0.05f;
        ck_round_bf16(wf, w, (size_t)N * K);
        ck_bf16_to_f32(w, wf, (size_t)N * K);
        const double flop = 2.0 * M * N * K;
        double g[6][2], err[4];
        for (int t = 1; t <= 2; t++) {
            g[0][t - 1] = flop / time_sgemm(x, wf, y, M, N, K, 0, t, 3) * 1e-9;
            for (int mode = 0; mode < 2; mode++) {
                job j = {0, 0, mode, M, N, K, 0, 0, x, w, y};
                g[1 + mode][t - 1] = flop / time_job(j, t, 3) * 1e-9;
                if (t == 2) err[mode] = check(x, wf, y, M, N, K, 0);
            }
            g[3][t - 1] = flop / time_sgemm(x, wf, y, M, N, K, 1, t, 3) * 1e-9;
            for (int mode = 0; mode < 2; mode++) {
                job j = {1, 0, mode, M, N, K, 0, 0, x, w, y};
                g[4 + mode][t - 1] = flop / time_job(j, t, 3) * 1e-9;
                if (t == 2) err[2 + mode] = check(x, wf, y, M, N, K, 1);
            }
        }
        printf("%-5d %-5d | %5.1f %5.1f | %5.1f %5.1f %7.1e | %5.1f %5.1f %7.1e | %5.1f %5.1f | %5.1f %5.1f %7.1e | %5.1f %5.1f %7.1e\n",
               N, K, g[0][0], g[0][1], g[1][0], g[1][1], err[0], g[2][0], g[2][1], err[1], g[3][0], g[3][1], g[4][0],
               g[4][1], err[2], g[5][0], g[5][1], err[3]);
        fflush(stdout);
        free(x), free(wf), free(y), free(w);
    }
}

/// Random blocks of `type` with finite, modest fp16 scales (the bench needs no real model).
static void random_blocks(int type, uint8_t *w, size_t bytes) {
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)next();
    const int size = ck_type_block_bytes(type);
    const uint16_t scale = 0x2000; // fp16 0.0078
    for (size_t b = 0; b + size <= bytes; b += size) {
        switch (type) {
        case CK_TYPE_Q8_0: case CK_TYPE_Q4_0: memcpy(w + b, &scale, 2); break;
        case CK_TYPE_Q4_1: case CK_TYPE_Q4_K: memcpy(w + b, &scale, 2); memcpy(w + b + 2, &scale, 2); break;
        case CK_TYPE_Q6_K: memcpy(w + b + 208, &scale, 2); break;
        case CK_TYPE_BF16: { uint16_t v = (uint16_t)(0x3C00 | (next() & 0x00FF)); memcpy(w + b, &v, 2); break; }
        case CK_TYPE_F16: { uint16_t v = (uint16_t)(0x2000 | (next() & 0x03FF)); memcpy(w + b, &v, 2); break; }
        default: break;
        }
    }
}

static void bench_q(void) {
    static const int types[] = {CK_TYPE_Q8_0, CK_TYPE_Q4_0, CK_TYPE_Q4_1, CK_TYPE_Q4_K, CK_TYPE_Q6_K, CK_TYPE_BF16, CK_TYPE_F16};
    static const char *names[] = {"Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K", "BF16", "F16"};
    static const int shapes[][2] = {{896, 896}, {4864, 896}, {896, 4864}, {2048, 2048}};
    static const int rows[] = {1, 16};
    printf("quantized products: GFLOP/s and weight GB/s (1 thread / 2 threads); sgemv/sgemm on the fp32 weights\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int N = shapes[s][0], K = shapes[s][1];
        for (size_t r = 0; r < 2; r++) {
            const int M = rows[r];
            float *x = malloc(sizeof(float) * M * K), *y = malloc(sizeof(float) * M * N), *wf = malloc(sizeof(float) * N * K);
            for (int i = 0; i < M * K; i++) x[i] = uniform();
            const double flop = 2.0 * M * N * K;
            printf("N %d K %d M %d: fp32 %s %.1f / %.1f GFLOP/s\n", N, K, M, M == 1 ? "sgemv" : "sgemm",
                   flop / time_sgemm(x, wf, y, M, N, K, 0, 1, 5) * 1e-9, flop / time_sgemm(x, wf, y, M, N, K, 0, 2, 5) * 1e-9);
            for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
                if (K % ck_type_block_elements(types[t])) continue;
                const size_t bytes = (size_t)N * K / ck_type_block_elements(types[t]) * ck_type_block_bytes(types[t]);
                uint8_t *w = malloc(bytes);
                random_blocks(types[t], w, bytes);
                ck_dequantize_rows(types[t], w, K, 0, N, wf);
                printf("  %-5s", names[t]);
                for (int mode = 0; mode < 2; mode++) {
                    if (mode == 1 && types[t] != CK_TYPE_Q8_0 && types[t] != CK_TYPE_Q4_0) continue;
                    job j = {2, types[t], mode, M, N, K, 0, 0, x, w, y};
                    double t1 = time_job(j, 1, 5), t2 = time_job(j, 2, 5);
                    double err = check(x, wf, y, M, N, K, 0);
                    printf("  %s %6.1f / %6.1f GFLOP/s, %5.1f / %5.1f GB/s, err %.1e", mode ? "int8" : "exact", flop / t1 * 1e-9,
                           flop / t2 * 1e-9, bytes / t1 * 1e-9, bytes / t2 * 1e-9, err);
                }
                printf("\n");
                fflush(stdout);
                free(w);
            }
            free(x), free(y), free(wf);
        }
    }
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    if (argc > 3) only_n = atoi(argv[2]), only_k = atoi(argv[3]);
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("kernel ISA %s (CPU best %s), OPENBLAS_CORETYPE=%s\n", ck_isa_name(ck_isa()), ck_isa_name(ck_isa_supported()),
           core ? core : "(unset)");
    if (!strcmp(which, "all") || !strcmp(which, "bf16")) bench_bf16();
    if (!strcmp(which, "all") || !strcmp(which, "q")) bench_q();
    return 0;
}
