/*
 * bench_core.c -- the core's benchmarks (results recorded in BENCHMARKS.md):
 *   1. graph overhead: build, track and sweep a 500-op "LLM forward" on 2x2 arrays (the shape
 *      of the Go binding's benchmark), in ns per op; also with an eval of the result;
 *   2. sweep cost per array;
 *   3. large float32 add vs the machine's memory bandwidth measured here (a STREAM-style
 *      a[i] = b[i] + c[i] loop in plain C, same bytes moved);
 *   4. float32 matmul through lx vs cblas_sgemm called directly.
 * Usage: bench_core [quick]
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lx.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One transformer-layer-shaped sequence of 25 ops on tiny arrays; 20 layers = 500 ops. */
static lx_array layer(lx_array x, lx_array w1, lx_array w2, lx_array g) {
    lx_array h = lx_rms_norm(x, g, 1e-5f);                 /* 1 */
    lx_array q = lx_matmul(h, w1);                         /* 2 */
    lx_array k = lx_matmul(h, w2);                         /* 3 */
    lx_array v = lx_mul(h, g);                             /* 4 */
    lx_array s = lx_matmul(q, lx_transpose(k, NULL, 0));   /* 5, 6 */
    s = lx_mul_scalar(s, 0.5);                             /* 7 */
    s = lx_softmax(s, -1);                                 /* 8 */
    lx_array o = lx_matmul(s, v);                          /* 9 */
    o = lx_reshape(o, (int[]){2, 2}, 2);                   /* 10 */
    x = lx_add(x, o);                                      /* 11 */
    h = lx_rms_norm(x, g, 1e-5f);                          /* 12 */
    lx_array a = lx_matmul(h, w1);                         /* 13 */
    lx_array b = lx_matmul(h, w2);                         /* 14 */
    a = lx_silu(a);                                        /* 15 */
    a = lx_mul(a, b);                                      /* 16 */
    a = lx_matmul(a, w2);                                  /* 17 */
    x = lx_add(x, a);                                      /* 18 */
    x = lx_mul_scalar(x, 0.999);                           /* 19 */
    x = lx_add_scalar(x, 0.001);                           /* 20 */
    x = lx_tanh(x);                                        /* 21 */
    x = lx_exp(lx_neg(lx_neg(lx_log(lx_exp(x)))));         /* 22..25 */
    return x;
}

static void bench_graph(int iters) {
    float w[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    lx_array w1 = lx_array_f32(w, (int[]){2, 2}, 2), w2 = lx_array_f32(w, (int[]){2, 2}, 2);
    lx_array g = lx_array_f32(w, (int[]){2}, 1);
    lx_keep(w1, w2, g);
    lx_eval(w1, w2, g);
    for (int pass = 0; pass < 2; pass++) {
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            for (int it = 0; it < iters; it++) {
                lx_array x = lx_array_f32(w, (int[]){2, 2}, 2);
                for (int l = 0; l < 20; l++) x = layer(x, w1, w2, g);
                if (pass == 0) lx_sweep();
                else {
                    lx_eval(x);
                    lx_free(x);
                }
            }
            double t = (now() - t0) / iters / 500.0 * 1e9;
            if (t < best) best = t;
        }
        printf("%-48s %8.1f ns/op\n",
               pass == 0 ? "500-op forward, 2x2: build+track+sweep" :
                           "500-op forward, 2x2: build+track+eval", best);
    }
    lx_sweep();
    if (lx_error()) printf("error: %s\n", lx_error_message());
    lx_free(w1);
    lx_free(w2);
    lx_free(g);
    lx_sweep();
}

static void bench_sweep(void) {
    enum { N = 1000000 };
    float v = 1.0f;
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        lx_array *keep = malloc(sizeof(lx_array) * 1000);
        for (int i = 0; i < N; i++) {
            lx_array a = lx_array_f32(&v, NULL, 0);
            if (i % 1000 == 0) {
                keep[i / 1000] = a;
                lx_keep(a);
            }
        }
        double t0 = now();
        lx_sweep(); /* releases 999,000 arrays and scans 1,000 kept ones */
        double t = (now() - t0) / N * 1e9;
        if (t < best) best = t;
        for (int i = 0; i < 1000; i++) lx_free(keep[i]);
        lx_sweep();
        free(keep);
    }
    printf("%-48s %8.1f ns/array\n", "sweep (1M arrays, 0.1% kept)", best);
}

typedef struct { float *a, *b, *c; int begin, end; } add_part;
static void *add_range(void *p) {
    add_part *r = p;
    for (int i = r->begin; i < r->end; i++) r->a[i] = r->b[i] + r->c[i];
    return NULL;
}

/* a = b + c in plain C on `threads` pthreads: the bandwidth reference */
static double plain_add(float *a, float *b, float *c, int n, int threads) {
    pthread_t th[64];
    add_part parts[64];
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        parts[t] = (add_part){a, b, c, (int)((long)n * t / threads), (int)((long)n * (t + 1) / threads)};
        pthread_create(&th[t], NULL, add_range, &parts[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    return now() - t0;
}

static void bench_add(int n) {
    float *b = aligned_alloc(64, sizeof(float) * (size_t)n);
    float *c = aligned_alloc(64, sizeof(float) * (size_t)n);
    float *a = aligned_alloc(64, sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) { b[i] = (float)i; c[i] = 1.0f; a[i] = 0; }
    double bytes = 3.0 * sizeof(float) * n;
    /* memory bandwidth: the same a = b + c in plain C on as many threads as lx uses */
    int threads = lx_num_threads() > 64 ? 64 : lx_num_threads();
    double best_c = 1e9;
    for (int rep = 0; rep < 10; rep++) {
        double t = plain_add(a, b, c, n, threads);
        if (t < best_c) best_c = t;
    }
    lx_array lb = lx_array_f32(b, (int[]){n}, 1), lc = lx_array_f32(c, (int[]){n}, 1);
    lx_keep(lb, lc);
    lx_eval(lb, lc);
    double best_lx = 1e9;
    for (int rep = 0; rep < 10; rep++) {
        lx_array s = lx_add(lb, lc);
        double t0 = now();
        lx_eval(s);
        double t = now() - t0;
        if (t < best_lx) best_lx = t;
        lx_free(s);
    }
    lx_sweep();
    printf("%-48s %8.2f GB/s\n", "memory bandwidth (plain C a=b+c, lx's threads)",
           bytes / best_c / 1e9);
    printf("%-48s %8.2f GB/s  (%.0f%% of plain C)\n", "lx_add float32 (eval only)",
           bytes / best_lx / 1e9, 100.0 * best_c / best_lx);
    lx_free(lb);
    lx_free(lc);
    lx_sweep();
    free(a);
    free(b);
    free(c);
}

static void bench_sgemm(int m, int k, int nn) {
    float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)k * nn);
    float *c = malloc(sizeof(float) * (size_t)m * nn);
    for (int i = 0; i < m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (int i = 0; i < k * nn; i++) b[i] = (float)(i % 5) * 0.1f;
    double flops = 2.0 * m * k * nn;
    double best_blas = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, nn, k, 1.0f, a, k, b, nn, 0.0f,
                    c, nn);
        double t = now() - t0;
        if (t < best_blas) best_blas = t;
    }
    lx_array la = lx_array_f32(a, (int[]){m, k}, 2), lb = lx_array_f32(b, (int[]){k, nn}, 2);
    lx_keep(la, lb);
    lx_eval(la, lb);
    double best_lx = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        lx_array r = lx_matmul(la, lb);
        double t0 = now();
        lx_eval(r);
        double t = now() - t0;
        if (t < best_lx) best_lx = t;
        lx_free(r);
    }
    printf("sgemm %dx%dx%d: cblas %.1f GFLOP/s, lx %.1f GFLOP/s (%.1f%%)\n", m, k, nn,
           flops / best_blas / 1e9, flops / best_lx / 1e9, 100.0 * best_blas / best_lx);
    lx_free(la);
    lx_free(lb);
    lx_sweep();
    free(a);
    free(b);
    free(c);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    printf("lx %s  %s\n", LX_VERSION_STRING, lx_backend_info());
    bench_graph(quick ? 20 : 200);
    bench_sweep();
    bench_add(quick ? 1 << 22 : 1 << 25);
    bench_sgemm(512, 512, 512);
    bench_sgemm(1024, 1024, 1024);
    if (!quick) bench_sgemm(2048, 2048, 2048);
    return 0;
}
