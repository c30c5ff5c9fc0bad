/*
 * bench_ops.c -- the op set against the machine's limits, all measured in one run:
 *   (a) memory bandwidth: a STREAM triad a[i] = b[i] + s*c[i] in plain C (float32, arrays far
 *       larger than the last-level cache), on 1 thread and on as many pthreads as lx uses;
 *       also a read-only pass (sum), the access pattern of a GEMV;
 *   (b) float32 GEMV through lx, x[1,K] @ W[K,N] and x @ transpose(Wt[N,K]) (K = N = 4096),
 *       as a fraction of that bandwidth (bytes = the weights, 64 MiB); 4 rows of x against
 *       transpose(Wt); the bfloat16 GEMV against transpose(Wt) (32 MiB);
 *   (c) 4-bit quantized GEMV, lx_quantized_matmul (group 64, K = N = 4096), bytes = packed
 *       weights + scales + biases; the same with bfloat16 x/scales/biases, and 8 bits; and a
 *       small model's decode step, x[1,576] @ W[1536,576]^T at 4 bits, group 32 (SmolLM2-135M's
 *       MLP up projection; GGUF Q4_1 loads as this), float32 and float16;
 *   (d) float32 matmul 1024^3 and 2048^3 as a fraction of the FLOP peak, estimated as
 *       cores * GHz * 32 flops/cycle (two 256-bit FMA pipes: 2 * 8 lanes * 2 flops); GHz is
 *       read from /proc/cpuinfo and measured with a dependent add chain (1 add per cycle; the
 *       larger of the two is used), and an FMA throughput loop (the achievable peak) is
 *       measured too; and a batched product, 32 heads of [256,128] @ [128,256];
 *   (e) softmax and rms_norm on [4096, 4096] float32 in GB/s (bytes = read + write).
 * Each lx figure is the best of several evaluations of a fresh graph over kept inputs (so it
 * includes building the graph, which is negligible at these sizes); before each timed call a
 * 128 MiB read evicts the caches, so GEMV weights (10 MiB for q4) come from memory.
 * Usage: bench_ops [quick] [quant]  (quick: fewer repetitions; quant: (a) and (c) only)
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lx.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int g_reps = 10;
static int g_quant; /* only the bandwidth reference and the quantized GEMVs */

static double cpu_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The 1-minute load average (other work on the machine skews every figure here). */
static double loadavg(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double v = -1;
    if (f) {
        if (fscanf(f, "%lf", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}

static void die_on_error(const char *what) {
    if (lx_error() != LX_OK) {
        fprintf(stderr, "bench_ops: %s: %s\n", what, lx_error_message());
        exit(1);
    }
}

/* ---- (a) memory bandwidth ------------------------------------------------------------- */

typedef struct {
    float *a, *b, *c;
    size_t lo, hi;
    int kind; /* 0 triad, 1 read-only sum */
    double sum;
    double t_start, t_end; /* each worker times itself: robust to the main thread sleeping */
    pthread_barrier_t *start;
} stream_job;

static void *stream_worker(void *p) {
    stream_job *j = p;
    pthread_barrier_wait(j->start);
    j->t_start = now();
    if (j->kind == 0) {
        float *a = j->a;
        const float *b = j->b, *c = j->c;
        for (size_t i = j->lo; i < j->hi; i++) a[i] = b[i] + 3.0f * c[i];
    } else {
        /* vector accumulators (GCC vector extensions; pairs of SSE adds without AVX), so the
         * loop is bound by memory, not by the adds: scalar accumulators capped it near
         * 12 GB/s a thread, below what a BLAS GEMV reads */
        typedef float v8f __attribute__((vector_size(32)));
        const float *b = j->b;
        v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        size_t i = j->lo;
        for (; i + 32 <= j->hi; i += 32) {
            v8f x0, x1, x2, x3;
            memcpy(&x0, b + i, 32);
            memcpy(&x1, b + i + 8, 32);
            memcpy(&x2, b + i + 16, 32);
            memcpy(&x3, b + i + 24, 32);
            s0 += x0;
            s1 += x1;
            s2 += x2;
            s3 += x3;
        }
        v8f t = s0 + s1 + s2 + s3;
        float sum = 0;
        for (int k = 0; k < 8; k++) sum += t[k];
        for (; i < j->hi; i++) sum += b[i];
        j->sum = (double)sum;
    }
    j->t_end = now();
    return NULL;
}

/* GB/s of the triad (kind 0, 12 bytes per element) or read (kind 1, 4 bytes per element) on
 * `threads` threads; best of reps. */
static double stream_gbs(float *a, float *b, float *c, size_t n, int threads, int kind, int reps) {
    double best = 1e30;
    pthread_t tid[64];
    stream_job jobs[64];
    if (threads > 64) threads = 64;
    for (int r = 0; r < reps; r++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
        for (int t = 0; t < threads; t++) {
            jobs[t] = (stream_job){a, b, c, n * (size_t)t / (size_t)threads,
                                   n * (size_t)(t + 1) / (size_t)threads, kind, 0.0, 0.0, 0.0,
                                   &bar};
            pthread_create(&tid[t], NULL, stream_worker, &jobs[t]);
        }
        pthread_barrier_wait(&bar);
        double t0 = 1e300, t1 = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            if (jobs[t].t_start < t0) t0 = jobs[t].t_start;
            if (jobs[t].t_end > t1) t1 = jobs[t].t_end;
        }
        double dt = t1 - t0;
        pthread_barrier_destroy(&bar);
        if (dt < best) best = dt;
    }
    double bytes = (kind == 0 ? 12.0 : 4.0) * (double)n;
    return bytes / best / 1e9;
}

/* ---- (d) the FLOP peak ---------------------------------------------------------------- */

static double cpuinfo_mhz(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[512];
    double mhz = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        double v;
        if (sscanf(line, "cpu MHz : %lf", &v) == 1 || sscanf(line, "cpu MHz\t: %lf", &v) == 1) {
            mhz += v;
            n++;
        }
    }
    fclose(f);
    return n ? mhz / n : 0;
}

/* GHz from a dependent chain of integer adds: each add waits for the previous one, one
 * cycle each on every x86 core of the last decade. */
static double measure_ghz(void) {
#if defined(__x86_64__)
    /* many short runs (about 1 ms each): the best one is the least disturbed by other work */
    const long iters = 250 * 1000;
    double best = 1e30;
    for (int r = 0; r < 400; r++) {
        uint64_t x = 1;
        long i = iters;
        double t0 = now();
        __asm__ volatile(
            "1:\n\t"
            "add %[one], %[x]\n\t" "add %[one], %[x]\n\t" "add %[one], %[x]\n\t"
            "add %[one], %[x]\n\t" "add %[one], %[x]\n\t" "add %[one], %[x]\n\t"
            "add %[one], %[x]\n\t" "add %[one], %[x]\n\t" "add %[one], %[x]\n\t"
            "add %[one], %[x]\n\t"
            "dec %[i]\n\t"
            "jnz 1b\n\t"
            : [x] "+r"(x), [i] "+r"(i)
            : [one] "r"((uint64_t)1)
            : "cc");
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return 10.0 * (double)iters / best / 1e9;
#else
    return 0;
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
typedef struct {
    long iters;
    double secs;
    float out;
    pthread_barrier_t *start;
} fma_job;

/* 10 independent 8-lane FMA chains (enough to fill two pipes of latency 4-5): flops =
 * iters * 10 * 8 * 2. */
__attribute__((target("avx2,fma"))) static void *fma_worker(void *p) {
    fma_job *j = p;
    /* ten separate variables (not an array) so that they stay in registers */
    __m256 a0 = _mm256_set1_ps(0.0f), a1 = _mm256_set1_ps(0.1f), a2 = _mm256_set1_ps(0.2f),
           a3 = _mm256_set1_ps(0.3f), a4 = _mm256_set1_ps(0.4f), a5 = _mm256_set1_ps(0.5f),
           a6 = _mm256_set1_ps(0.6f), a7 = _mm256_set1_ps(0.7f), a8 = _mm256_set1_ps(0.8f),
           a9 = _mm256_set1_ps(0.9f);
    const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(0.0001f);
    pthread_barrier_wait(j->start);
    double t0 = now();
    for (long i = 0; i < j->iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c);
        a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c);
        a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c);
        a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c);
        /* keeps the compiler from folding the loop; no memory traffic */
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5),
                         "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9));
    }
    j->secs = now() - t0;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(a8, a9));
    float buf[8];
    _mm256_storeu_ps(buf, s);
    j->out = buf[0];
    return NULL;
}

/* Measured FMA throughput in GFLOP/s on `threads` threads (0 if AVX2/FMA is absent). */
static double fma_gflops(int threads) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    const long iters = 200 * 1000; /* about 1 ms per run; the best of many runs */
    double best = 1e30;
    for (int r = 0; r < 200; r++) {
        pthread_t tid[64];
        fma_job jobs[64];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads);
        for (int t = 0; t < threads; t++) {
            jobs[t] = (fma_job){iters, 0, 0, &bar};
            pthread_create(&tid[t], NULL, fma_worker, &jobs[t]);
        }
        double worst = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            if (jobs[t].secs > worst) worst = jobs[t].secs;
        }
        pthread_barrier_destroy(&bar);
        if (worst < best) best = worst;
    }
    return (double)threads * (double)iters * 10 * 8 * 2 / best / 1e9;
}
#else
static double fma_gflops(int threads) {
    (void)threads;
    return 0;
}
#endif

/* ---- lx helpers ----------------------------------------------------------------------- */

typedef lx_array (*build_fn)(void *ctx);

/* Reading a buffer of twice the last-level cache (at least 128 MiB) evicts the previous
 * call's data, so each timed call reads its operands from memory, not from the cache. */
/* The last-level cache size in bytes (sysfs), or 32 MiB if unknown. */
static size_t llc_bytes(void) {
    size_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], buf[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(buf, sizeof buf, f)) {
            char *end;
            double v = strtod(buf, &end);
            size_t mult = (*end == 'M') ? (1u << 20) : (*end == 'K') ? 1024u : 1u;
            if ((size_t)(v * (double)mult) > best) best = (size_t)(v * (double)mult);
        }
        fclose(f);
    }
    return best ? best : (size_t)32 << 20;
}

static float *g_flush;
static size_t g_flush_n;
static volatile float g_flush_sink;

static void flush_cache(void) {
    if (!g_flush) {
        size_t bytes = 2 * llc_bytes();
        if (bytes < ((size_t)128 << 20)) bytes = (size_t)128 << 20;
        g_flush_n = bytes / sizeof(float);
        g_flush = malloc(g_flush_n * sizeof(float));
        if (!g_flush) return;
        for (size_t i = 0; i < g_flush_n; i++) g_flush[i] = (float)(i & 7);
    }
    float s = 0;
    for (size_t i = 0; i < g_flush_n; i += 16) s += g_flush[i];
    g_flush_sink = s;
}

/* Best wall time of building and evaluating fn's graph (inputs kept by the caller). */
static double time_lx(build_fn fn, void *ctx, int reps) {
    lx_array warm = fn(ctx);
    lx_eval(warm);
    die_on_error("warm-up");
    lx_free(warm);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        flush_cache();
        double t0 = now();
        lx_array out = fn(ctx);
        lx_eval(out);
        double dt = now() - t0;
        die_on_error("eval");
        lx_free(out);
        if (dt < best) best = dt;
    }
    lx_sweep();
    return best;
}

static lx_array random_f32(int rows, int cols, float scale, uint64_t seed) {
    lx_array a = lx_random_normal((int[]){rows, cols}, 2, LX_FLOAT32, lx_random_key(seed));
    a = lx_mul_scalar(a, scale);
    lx_keep(a);
    lx_eval(a);
    die_on_error("random input");
    return a;
}

typedef struct {
    lx_array x, w, scales, biases;
    int bits; /* quantized: the width */
    int gs;   /* quantized: the group size (0: 64) */
} ops_ctx;

static lx_array f_gemv(void *p) {
    ops_ctx *c = p;
    return lx_matmul(c->x, c->w);
}
static lx_array f_gemv_t(void *p) {
    ops_ctx *c = p;
    return lx_matmul(c->x, lx_transpose(c->w, NULL, 0));
}
static lx_array f_qgemv(void *p) {
    ops_ctx *c = p;
    return lx_quantized_matmul(c->x, c->w, c->scales, c->biases, true, c->gs ? c->gs : 64,
                               c->bits);
}
static lx_array f_matmul(void *p) {
    ops_ctx *c = p;
    return lx_matmul(c->x, c->w);
}
static lx_array f_bmm(void *p) { /* 32 heads of attention scores: [32,256,128] @ [32,128,256] */
    ops_ctx *c = p;
    return lx_matmul(lx_reshape(c->x, (int[]){32, 256, 128}, 3),
                     lx_reshape(c->w, (int[]){32, 128, 256}, 3));
}
static lx_array f_softmax(void *p) {
    ops_ctx *c = p;
    return lx_softmax(c->x, -1);
}
static lx_array f_rms(void *p) {
    ops_ctx *c = p;
    return lx_rms_norm(c->x, c->w, 1e-5f);
}

/* The closing lines: how much of the machine this process got. */
static void finish(double wall0, double cpu0, long cores) {
    printf("\n(fractions: of the STREAM triad on all lx threads, or of the peak estimate)\n");
    double wall = now() - wall0, cpu = cpu_time() - cpu0;
    printf("load average %.2f at the end; this process got %.0f%% of %d cores over %.1f s "
           "(far below 100%% means the machine was shared and the figures are low)\n",
           loadavg(), 100.0 * cpu / (wall * (double)cores), (int)cores, wall);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "quick") == 0) g_reps = 3;
        else if (strcmp(argv[i], "quant") == 0) g_quant = 1;
    }
    int threads = lx_num_threads();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("bench_ops: lx %s, %s\n", LX_VERSION_STRING, lx_backend_info());
    printf("threads: lx uses %d, online cores %ld; load average %.2f at start\n\n", threads,
           cores, loadavg());
    double wall0 = now(), cpu0 = cpu_time();

    /* (a) bandwidth */
    /* each array at least 64 MiB and twice the last-level cache, so every pass streams from
     * memory */
    size_t llc = llc_bytes();
    size_t n = (size_t)16 << 20;
    if (n * sizeof(float) < 2 * llc) n = 2 * llc / sizeof(float);
    printf("last-level cache %.0f MiB; STREAM arrays %.0f MiB each\n", (double)llc / (1 << 20),
           (double)(n * sizeof(float)) / (1 << 20));
    float *a = aligned_alloc(64, n * sizeof(float));
    float *b = aligned_alloc(64, n * sizeof(float));
    float *c = aligned_alloc(64, n * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "bench_ops: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0f;
        b[i] = (float)(i & 1023);
        c[i] = 1.0f;
    }
    int sreps = g_reps < 5 ? 5 : 20; /* short passes, best of many: robust to other work */
    double triad1 = stream_gbs(a, b, c, n, 1, 0, sreps);
    double triadN = stream_gbs(a, b, c, n, threads, 0, sreps);
    double read1 = stream_gbs(a, b, c, n, 1, 1, sreps);
    double readN = stream_gbs(a, b, c, n, threads, 1, sreps);
    free(a);
    free(b);
    free(c);
    double bw = triadN > triad1 ? triadN : triad1; /* the reference: STREAM triad */
    double rbw = readN > read1 ? readN : read1;

    /* the FLOP peak */
    double mhz = cpuinfo_mhz();
    double ghz_meas = measure_ghz();
    /* the nominal clock unless the measurement shows a higher (boost) clock; a measurement
     * below it means the core was shared, not that it runs slower */
    double ghz = mhz / 1000.0 > ghz_meas ? mhz / 1000.0 : ghz_meas;
    const char *ghz_src = mhz / 1000.0 > ghz_meas ? "cpuinfo" : "measured";
    double peak = (double)threads * ghz * 32.0;
    double fma1 = fma_gflops(1), fmaN = fma_gflops(threads);

    printf("%-58s %10s %12s\n", "measurement", "value", "of limit");
    printf("%-58s %10s %12s\n", "-----------", "-----", "--------");
    printf("%-58s %7.2f GB/s\n", "(a) STREAM triad a=b+3c, float32, 1 thread", triad1);
    printf("%-58s %7.2f GB/s   <- bandwidth reference\n", "(a) STREAM triad, all lx threads", triadN);
    printf("%-58s %7.2f GB/s\n", "(a) read-only sum, 1 thread", read1);
    printf("%-58s %7.2f GB/s\n", "(a) read-only sum, all lx threads", readN);

    /* (b) float32 GEMV */
    const int K = 4096, N = 4096;
    ops_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.x = random_f32(1, K, 1.0f, 1);
    ctx.w = random_f32(K, N, 0.02f, 2);
    double wbytes = (double)K * N * 4;
    double t = 0;
    if (!g_quant) {
        t = time_lx(f_gemv, &ctx, 3 * g_reps); /* short ops: more tries */
        printf("%-58s %7.2f GB/s %8.1f%% (%.1f%% of read)\n",
               "(b) GEMV x[1,4096] @ W[4096,4096] f32 (bytes = W)", wbytes / t / 1e9,
               100.0 * wbytes / t / 1e9 / bw, 100.0 * wbytes / t / 1e9 / rbw);
        t = time_lx(f_gemv_t, &ctx, 3 * g_reps);
        printf("%-58s %7.2f GB/s %8.1f%% (%.1f%% of read)\n",
               "(b) GEMV x[1,4096] @ transpose(Wt[4096,4096]) f32", wbytes / t / 1e9,
               100.0 * wbytes / t / 1e9 / bw, 100.0 * wbytes / t / 1e9 / rbw);

        /* (b) a few rows (batched decoding) and half weights, against W^T */
        {
            ops_ctx r4 = ctx;
            r4.x = random_f32(4, K, 1.0f, 7);
            t = time_lx(f_gemv_t, &r4, 3 * g_reps);
            printf("%-58s %7.2f GB/s %8.1f%% (%.3f ms)\n",
                   "(b) 4 rows x[4,4096] @ transpose(Wt) f32", wbytes / t / 1e9,
                   100.0 * wbytes / t / 1e9 / bw, t * 1e3);
            lx_free(r4.x);
            ops_ctx hb = ctx;
            hb.x = lx_astype(ctx.x, LX_BFLOAT16);
            hb.w = lx_astype(ctx.w, LX_BFLOAT16);
            lx_keep(hb.x, hb.w);
            lx_eval(hb.x, hb.w);
            double hbytes = (double)lx_nbytes(hb.w);
            t = time_lx(f_gemv_t, &hb, 3 * g_reps);
            printf("%-58s %7.2f GB/s %8.1f%% (%.3f ms)\n",
                   "(b) GEMV bfloat16 x @ transpose(Wt) (bytes = W, 32 MiB)", hbytes / t / 1e9,
                   100.0 * hbytes / t / 1e9 / bw, t * 1e3);
            lx_free(hb.x);
            lx_free(hb.w);
            lx_sweep();
        }
    }

    /* (c) 4-bit quantized GEMV */
    lx_array wq, sc, bi;
    if (lx_quantize(ctx.w, 64, 4, &wq, &sc, &bi) != LX_OK) die_on_error("lx_quantize");
    lx_keep(wq, sc, bi);
    lx_eval(wq, sc, bi);
    lx_free(ctx.w);
    ops_ctx q = ctx;
    q.bits = 4;
    q.w = wq;
    q.scales = sc;
    q.biases = bi;
    double qbytes = (double)(lx_nbytes(wq) + lx_nbytes(sc) + lx_nbytes(bi));
    t = time_lx(f_qgemv, &q, 3 * g_reps);
    printf("%-58s %7.2f GB/s %8.1f%% (%.1f%% of read)\n",
           "(c) q4 GEMV g64 x[1,4096] @ W^T (bytes = wq+scales+biases)", qbytes / t / 1e9,
           100.0 * qbytes / t / 1e9 / bw, 100.0 * qbytes / t / 1e9 / rbw);
    printf("%-58s %7.3f ms  (%.1f MiB of weights)\n", "(c) q4 GEMV time per call", t * 1e3,
           qbytes / (1 << 20));
    /* the same with bfloat16 scales/biases (what MLX checkpoints ship) */
    lx_array wf = random_f32(K, N, 0.02f, 3);
    lx_array wb = lx_astype(wf, LX_BFLOAT16);
    lx_array wq2, sc2, bi2;
    if (lx_quantize(wb, 64, 4, &wq2, &sc2, &bi2) != LX_OK) die_on_error("lx_quantize bf16");
    lx_keep(wq2, sc2, bi2);
    lx_array xb = lx_astype(ctx.x, LX_BFLOAT16);
    lx_keep(xb);
    lx_eval(wq2, sc2, bi2, xb);
    lx_free(wf);
    ops_ctx q2 = {xb, wq2, sc2, bi2, 4, 64};
    double qbytes2 = (double)(lx_nbytes(wq2) + lx_nbytes(sc2) + lx_nbytes(bi2));
    t = time_lx(f_qgemv, &q2, 3 * g_reps);
    printf("%-58s %7.2f GB/s %8.1f%% (%.1f%% of read)\n",
           "(c) q4 GEMV g64, bfloat16 x/scales/biases", qbytes2 / t / 1e9,
           100.0 * qbytes2 / t / 1e9 / bw, 100.0 * qbytes2 / t / 1e9 / rbw);
    /* 8 bits, float32 scales */
    {
        lx_array w8f = random_f32(K, N, 0.02f, 4);
        lx_array wq8, sc8, bi8;
        if (lx_quantize(w8f, 64, 8, &wq8, &sc8, &bi8) != LX_OK) die_on_error("lx_quantize 8");
        lx_keep(wq8, sc8, bi8);
        lx_eval(wq8, sc8, bi8);
        lx_free(w8f);
        ops_ctx q8 = {ctx.x, wq8, sc8, bi8, 8, 64};
        double qbytes8 = (double)(lx_nbytes(wq8) + lx_nbytes(sc8) + lx_nbytes(bi8));
        t = time_lx(f_qgemv, &q8, 3 * g_reps);
        printf("%-58s %7.2f GB/s %8.1f%% (%.3f ms)\n", "(c) q8 GEMV g64 x[1,4096] @ W^T",
               qbytes8 / t / 1e9, 100.0 * qbytes8 / t / 1e9 / bw, t * 1e3);
        lx_free(wq8);
        lx_free(sc8);
        lx_free(bi8);
    }
    /* a small model's decode GEMV: 4 bits, group 32, [1,576] @ [1536,576]^T */
    {
        const int dk = 576, dn = 1536;
        lx_array wsf = random_f32(dn, dk, 0.02f, 5);
        lx_array xs = random_f32(1, dk, 1.0f, 6);
        lx_array wqs, scs, bis;
        if (lx_quantize(wsf, 32, 4, &wqs, &scs, &bis) != LX_OK) die_on_error("lx_quantize g32");
        lx_keep(wqs, scs, bis);
        lx_eval(wqs, scs, bis);
        lx_free(wsf);
        ops_ctx qs = {xs, wqs, scs, bis, 4, 32};
        double sbytes = (double)(lx_nbytes(wqs) + lx_nbytes(scs) + lx_nbytes(bis));
        t = time_lx(f_qgemv, &qs, 10 * g_reps);
        printf("%-58s %7.2f GB/s %8.1f%% (%.1f us)\n",
               "(c) q4 GEMV g32 x[1,576] @ W[1536,576]^T f32",
               sbytes / t / 1e9, 100.0 * sbytes / t / 1e9 / bw, t * 1e6);
        ops_ctx qh = {lx_astype(xs, LX_FLOAT16), wqs, lx_astype(scs, LX_FLOAT16),
                      lx_astype(bis, LX_FLOAT16), 4, 32};
        lx_keep(qh.x, qh.scales, qh.biases);
        lx_eval(qh.x, qh.scales, qh.biases);
        double hbytes = (double)(lx_nbytes(wqs) + lx_nbytes(qh.scales) + lx_nbytes(qh.biases));
        t = time_lx(f_qgemv, &qh, 10 * g_reps);
        printf("%-58s %7.2f GB/s %8.1f%% (%.1f us)\n",
               "(c) q4 GEMV g32 x[1,576] @ W[1536,576]^T f16",
               hbytes / t / 1e9, 100.0 * hbytes / t / 1e9 / bw, t * 1e6);
        lx_free(qh.x);
        lx_free(qh.scales);
        lx_free(qh.biases);
        lx_free(xs);
        lx_free(wqs);
        lx_free(scs);
        lx_free(bis);
    }
    lx_free(wq);
    lx_free(sc);
    lx_free(bi);
    lx_free(wq2);
    lx_free(sc2);
    lx_free(bi2);
    lx_free(xb);
    lx_free(ctx.x);
    lx_sweep();
    if (g_quant) {
        free(g_flush);
        finish(wall0, cpu0, cores);
        return 0;
    }

    /* (d) matmul vs the FLOP peak */
    printf("%-58s %7.0f MHz\n", "(d) clock from /proc/cpuinfo (cpu MHz, mean)", mhz);
    printf("%-58s %7.3f GHz\n", "(d) clock measured (dependent integer add chain)", ghz_meas);
    printf("%-58s %7.1f GFLOP/s (= %d cores x %.3f GHz (%s) x 32)\n",
           "(d) peak estimate, float32 AVX2 FMA", peak, threads, ghz, ghz_src);
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f"))
        printf("%-58s\n", "(d) note: AVX-512 is present; its FMA peak can be twice the estimate");
#endif
    if (fma1 > 0) {
        printf("%-58s %7.1f GFLOP/s (%.1f flops/cycle)\n", "(d) measured AVX2 FMA loop, 1 thread",
               fma1, fma1 / ghz);
        printf("%-58s %7.1f GFLOP/s %8.1f%%\n", "(d) measured AVX2 FMA loop, all lx threads", fmaN,
               100.0 * fmaN / peak);
    }
    for (int sz = 1024; sz <= 2048; sz *= 2) {
        ops_ctx m;
        memset(&m, 0, sizeof m);
        m.x = random_f32(sz, sz, 1.0f, 10 + (uint64_t)sz);
        m.w = random_f32(sz, sz, 1.0f, 20 + (uint64_t)sz);
        t = time_lx(f_matmul, &m, sz == 1024 ? g_reps : (g_reps + 1) / 2);
        double gf = 2.0 * sz * sz * (double)sz / t / 1e9;
        char label[96];
        snprintf(label, sizeof label, "(d) matmul %d^3 float32 (%.1f ms)", sz, t * 1e3);
        printf("%-58s %7.1f GFLOP/s %8.1f%%", label, gf, 100.0 * gf / peak);
        if (fmaN > 0) printf(" (%.1f%% of the FMA loop)", 100.0 * gf / fmaN);
        printf("\n");
        lx_free(m.x);
        lx_free(m.w);
        lx_sweep();
    }

    {
        ops_ctx m;
        memset(&m, 0, sizeof m);
        m.x = random_f32(32 * 256, 128, 1.0f, 41);
        m.w = random_f32(32 * 128, 256, 1.0f, 42);
        t = time_lx(f_bmm, &m, g_reps);
        double gf = 2.0 * 32 * 256 * 256 * 128 / t / 1e9;
        char label[96];
        snprintf(label, sizeof label, "(d) batched matmul 32 x [256,128]@[128,256] (%.2f ms)",
                 t * 1e3);
        printf("%-58s %7.1f GFLOP/s %8.1f%%\n", label, gf, 100.0 * gf / peak);
        lx_free(m.x);
        lx_free(m.w);
        lx_sweep();
    }

    /* (e) softmax and rms_norm on [4096, 4096] float32 */
    ops_ctx e;
    memset(&e, 0, sizeof e);
    e.x = random_f32(4096, 4096, 3.0f, 30);
    e.w = lx_ones((int[]){4096}, 1, LX_FLOAT32);
    lx_keep(e.w);
    lx_eval(e.w);
    double ebytes = 2.0 * 4096 * 4096 * 4;
    t = time_lx(f_softmax, &e, 2 * g_reps);
    printf("%-58s %7.2f GB/s %8.1f%% (%.2f ms)\n", "(e) softmax [4096,4096] f32 (read + write)",
           ebytes / t / 1e9, 100.0 * ebytes / t / 1e9 / bw, t * 1e3);
    t = time_lx(f_rms, &e, 2 * g_reps);
    printf("%-58s %7.2f GB/s %8.1f%% (%.2f ms)\n", "(e) rms_norm [4096,4096] f32 (read + write)",
           ebytes / t / 1e9, 100.0 * ebytes / t / 1e9 / bw, t * 1e3);
    lx_free(e.x);
    lx_free(e.w);
    lx_sweep();
    free(g_flush);
    finish(wall0, cpu0, cores);
    return 0;
}
