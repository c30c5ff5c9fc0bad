/*
 * bench_compile.c -- compiled closures vs the same ops uncompiled (results in BENCHMARKS.md):
 *   1. GELU x10 on [1000, 1024] float32 (x * (1 + erf(x / sqrt2)) / 2 written with primitives,
 *      applied ten times: 50 elementwise ops); goal >= 4x, required >= 2.5x;
 *      and the same in float16 and bfloat16;
 *   2. GPT-OSS SwiGLU x10 on [1, 2880] (clip, sigmoid(alpha x) x (y + 1), ten times);
 *   3. a top-p sampler (softmax, argsort, cumsum, mask, categorical) over a 128k vocabulary;
 *   4. the per-call overhead of a cached 20-op closure on tiny inputs: lx_call alone, and
 *      lx_call + eval against the 20 ops built and evaluated uncompiled (goal <= 2 us).
 * "uncompiled" runs the same function with lx_set_compile_enabled(false) (lx_call then calls it
 * directly). Uncompiled and compiled repetitions alternate (21 rounds, 5 with "quick"); the
 * report gives the best time of each, their ratio, and the median and range of the ratios of
 * the rounds, which is the steadier number on a shared machine.
 * Usage: bench_compile [quick]
 */
#include <math.h>
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

static lx_array rand_f32(const int *shape, int ndim, unsigned seed) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *d = malloc(n * sizeof *d);
    srand(seed);
    for (size_t i = 0; i < n; i++) d[i] = (float)rand() / (float)RAND_MAX * 6.0f - 3.0f;
    lx_array a = lx_array_f32(d, shape, ndim);
    free(d);
    return a;
}

/* ---- functions ---- */

static lx_array gelu_prims(lx_array x) {
    lx_array t = lx_erf(lx_div_scalar(x, sqrt(2.0)));
    return lx_div_scalar(lx_mul(x, lx_add_scalar(t, 1.0)), 2.0);
}

static lx_status fn_gelu10(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array x = in[0];
    for (int i = 0; i < 10; i++) x = gelu_prims(x);
    out[0] = x;
    return LX_OK;
}

static lx_array swiglu(lx_array x_glu, lx_array x_lin) {
    lx_array hi = lx_scalar_f32(7.0f), lo = lx_scalar_f32(-7.0f);
    lx_array g = lx_clip(x_glu, LX_NULL_ARRAY, hi);
    lx_array l = lx_clip(x_lin, lo, hi);
    lx_array glu = lx_mul(g, lx_sigmoid(lx_mul_scalar(g, 1.702)));
    return lx_mul(glu, lx_add_scalar(l, 1.0));
}

static lx_status fn_swiglu10(void *ctx, const lx_array *in, int n_in, lx_array *out,
                             int n_out) {
    lx_array x = in[0];
    for (int i = 0; i < 10; i++) x = swiglu(x, in[1]);
    out[0] = x;
    return LX_OK;
}

static lx_status fn_topp(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array k1, k2;
    lx_status st = lx_random_split(in[1], &k1, &k2);
    if (st != LX_OK) return st;
    lx_array probs = lx_softmax(lx_mul_scalar(in[0], 1.0 / 0.7), -1);
    lx_array idx = lx_argsort(probs, -1);
    lx_array sp = lx_take_along_axis(probs, idx, -1);
    lx_array cp = lx_cumsum(sp, -1);
    lx_array top = lx_where(lx_greater(cp, lx_scalar_f32(1.0f - 0.9f)), sp, lx_scalar_f32(0.0f));
    lx_array s = lx_random_categorical(lx_log(top), -1, k2);
    lx_array s2 = lx_expand_dims(s, (const int[]){-1}, 1);
    out[0] = lx_squeeze(lx_take_along_axis(idx, s2, -1), (const int[]){-1}, 1);
    out[1] = k1;
    return LX_OK;
}

/* 20 elementwise ops on tiny arrays */
static lx_status fn_20ops(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array x = in[0], y = in[1];
    lx_array a = lx_add(x, y);             /* 1 */
    lx_array b = lx_mul(a, x);             /* 2 */
    b = lx_sub(b, y);                      /* 3 */
    b = lx_mul_scalar(b, 0.5);             /* 4 */
    b = lx_tanh(b);                        /* 5 */
    lx_array c = lx_maximum(b, y);         /* 6 */
    c = lx_add_scalar(c, 1.0);             /* 7 */
    c = lx_sqrt(lx_abs(c));                /* 8, 9 */
    c = lx_mul(c, a);                      /* 10 */
    lx_array d = lx_exp(lx_neg(c));        /* 11, 12 */
    d = lx_add_scalar(d, 1.0);             /* 13 */
    d = lx_reciprocal(d);                  /* 14 */
    d = lx_mul(d, c);                      /* 15 */
    d = lx_minimum(d, x);                  /* 16 */
    d = lx_square(d);                      /* 17 */
    d = lx_add(d, b);                      /* 18 */
    d = lx_sigmoid(d);                     /* 19 */
    out[0] = lx_mul(d, y);                 /* 20 */
    return LX_OK;
}

/* ---- timing ---- */

/* Best time of `reps` repetitions of `iters` calls (+ eval) of closure c, in seconds per call. */
static double time_calls(lx_closure *c, const lx_array *in, int n_in, int n_out, bool compiled,
                         bool eval, int iters, int reps) {
    bool prev = lx_set_compile_enabled(compiled);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* the first repetition warms up (and traces) */
        double t0 = now();
        for (int i = 0; i < iters; i++) {
            lx_array o[4];
            if (lx_call(c, in, n_in, o, n_out) != LX_OK) {
                printf("error: %s\n", lx_error_message());
                exit(1);
            }
            if (eval) {
                lx_eval_n(o, n_out);
                for (int j = 0; j < n_out; j++) lx_free(o[j]);
            } else {
                lx_sweep();
            }
        }
        double t = (now() - t0) / iters;
        if (r > 0 && t < best) best = t;
    }
    lx_sweep();
    lx_set_compile_enabled(prev);
    return best;
}

/* Uncompiled and compiled repetitions alternate, so that a change of load on this shared machine
 * hits both; reports the best time of each and the median of the per-round ratios. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static void compare(const char *what, lx_closure *c, const lx_array *in, int n_in, int n_out,
                    int iters, int rounds) {
    double bu = 1e30, bk = 1e30, ratio[64];
    if (rounds > 64) rounds = 64;
    time_calls(c, in, n_in, n_out, true, true, 1, 1); /* trace, compile, warm */
    for (int r = 0; r < rounds; r++) {
        double u = time_calls(c, in, n_in, n_out, false, true, iters, 1);
        double k = time_calls(c, in, n_in, n_out, true, true, iters, 1);
        bu = u < bu ? u : bu;
        bk = k < bk ? k : bk;
        ratio[r] = u / k;
    }
    qsort(ratio, (size_t)rounds, sizeof *ratio, cmp_double);
    printf("%-32s uncompiled %8.3f ms   compiled %8.3f ms   speedup %5.2fx best/best, "
           "%5.2fx median of %d rounds (%.2f-%.2f)\n",
           what, bu * 1e3, bk * 1e3, bu / bk, ratio[rounds / 2], rounds, ratio[0],
           ratio[rounds - 1]);
}

int main(int argc, char **argv) {
    bool quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    int reps = quick ? 2 : 5, rounds = quick ? 5 : 21;
    printf("lx %s; %s\n", LX_VERSION_STRING, lx_backend_info());

    /* 1. GELU x10 */
    {
        lx_array x = rand_f32((const int[]){1000, 1024}, 2, 1);
        lx_keep(x);
        lx_eval(x);
        lx_closure *c = lx_compile(fn_gelu10, NULL, 1, 0);
        compare("GELU x10 [1000, 1024] f32", c, &x, 1, 1, quick ? 2 : 5, rounds);
        lx_closure_free(c);
        lx_free(x);
    }
    /* 1b. the same in float16 and bfloat16 (every op rounds to the dtype, compiled or not) */
    for (int h = 0; h < 2; h++) {
        lx_dtype t = h ? LX_BFLOAT16 : LX_FLOAT16;
        lx_array x = lx_astype(rand_f32((const int[]){1000, 1024}, 2, 1), t);
        lx_keep(x);
        lx_eval(x);
        lx_closure *c = lx_compile(fn_gelu10, NULL, 1, 0);
        compare(h ? "GELU x10 [1000, 1024] bf16" : "GELU x10 [1000, 1024] f16", c, &x, 1, 1,
                quick ? 2 : 5, quick ? rounds : 7);
        lx_closure_free(c);
        lx_free(x);
    }
    /* 2. SwiGLU x10 */
    {
        lx_array in[2] = {rand_f32((const int[]){1, 2880}, 2, 2),
                          rand_f32((const int[]){1, 2880}, 2, 3)};
        lx_keep(in[0], in[1]);
        lx_eval(in[0], in[1]);
        lx_closure *c = lx_compile(fn_swiglu10, NULL, 1, 0);
        compare("SwiGLU x10 [1, 2880] f32", c, in, 2, 1, quick ? 200 : 1000, rounds);
        lx_closure_free(c);
        lx_free(in[0]);
        lx_free(in[1]);
    }
    /* 3. top-p sampler, 128k vocabulary */
    {
        lx_array in[2] = {rand_f32((const int[]){1, 131072}, 2, 4), lx_random_key(1)};
        lx_keep(in[0], in[1]);
        lx_eval(in[0], in[1]);
        lx_closure *c = lx_compile(fn_topp, NULL, 2, 0);
        compare("top-p sampler [1, 131072] f32", c, in, 2, 2, quick ? 5 : 20, rounds);
        lx_closure_free(c);
        lx_free(in[0]);
        lx_free(in[1]);
    }
    /* 4. per-call overhead of a cached 20-op closure */
    {
        lx_array in[2] = {rand_f32((const int[]){4}, 1, 5), rand_f32((const int[]){4}, 1, 6)};
        lx_keep(in[0], in[1]);
        lx_eval(in[0], in[1]);
        lx_closure *c = lx_compile(fn_20ops, NULL, 1, 0);
        int it = quick ? 20000 : 200000;
        double call_only = time_calls(c, in, 2, 1, true, false, it, reps);
        double build_only = time_calls(c, in, 2, 1, false, false, it, reps);
        double u = time_calls(c, in, 2, 1, false, true, it / 4, reps);
        double k = time_calls(c, in, 2, 1, true, true, it / 4, reps);
        printf("%-44s lx_call %8.3f us   (the 20 ops built uncompiled: %8.3f us)\n",
               "20-op closure on [4]: per call", call_only * 1e6, build_only * 1e6);
        printf("%-44s uncompiled %10.3f us   compiled %10.3f us   speedup %5.2fx\n",
               "20-op closure on [4]: call + eval", u * 1e6, k * 1e6, u / k);
        lx_closure_free(c);
        lx_free(in[0]);
        lx_free(in[1]);
    }
    if (lx_error()) printf("error: %s\n", lx_error_message());
    return 0;
}
