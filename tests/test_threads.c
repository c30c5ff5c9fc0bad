/*
 * test_threads.c -- lx used from several threads at once: the paths ThreadSanitizer
 * (scripts/test.sh --tsan) is pointed at, each also checked for its results.
 *
 *   concurrent evaluations  threads evaluate graphs that share a lazy node (one claims it, the
 *                           others wait for it) on arrays large enough for the kernel pool,
 *                           which only one evaluation holds at a time (the others run inline)
 *   async hand-off          a producer's lx_async_eval chain (the decode-loop pattern) read and
 *                           freed on a consumer thread while a third thread evaluates inline
 *   trackers                waves of short-lived threads keep, free, sweep and exit (their
 *                           owners are reused; a kept array outlives its thread)
 *   compile + JIT           a compiled closure called and evaluated on several threads while its
 *                           fused program, hot by repetition, compiles on the JIT's background
 *                           thread; every result has the bits of the uncompiled graph
 *   random, tokenizer       the global key stream and one tokenizer's piece cache shared
 *   sessions                two sessions of one model generating at once on two threads
 *
 * Sizes are small: under ThreadSanitizer the whole program runs in well under a minute.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/fused_native.h"
#include "backend/cpu/jit.h"
#include "lx.h"
#include "test_util.h"

#define N_THREADS 4

static pthread_mutex_t g_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_thread_failures;

/* A failed check on a worker thread (the harness's counters are not thread-safe). */
#define TCHECK(cond, ...)                                                          \
    do {                                                                           \
        if (!(cond)) {                                                             \
            pthread_mutex_lock(&g_fail_lock);                                      \
            g_thread_failures++;                                                   \
            fprintf(stderr, "%s:%d: thread check failed: %s: ", __FILE__, __LINE__, \
                    #cond);                                                        \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            pthread_mutex_unlock(&g_fail_lock);                                    \
        }                                                                          \
    } while (0)

static void collect_thread_failures(void) {
    pthread_mutex_lock(&g_fail_lock);
    t_checks++;
    if (g_thread_failures) t_failures++;
    g_thread_failures = 0;
    pthread_mutex_unlock(&g_fail_lock);
}

static void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size) {
    pthread_t th[16];
    for (int i = 0; i < n; i++)
        CHECK(pthread_create(&th[i], NULL, fn, (char *)args + (size_t)i * arg_size) == 0);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    collect_thread_failures();
}

/* ---- concurrent evaluations over a shared lazy node ---- */

#define ROWS 96
#define COLS 64
#define ROUNDS 6

static pthread_barrier_t g_barrier;
static lx_array g_shared[ROUNDS]; /* exp(w * (r + 1) / 8), lazy until some thread needs it */
static float g_w[COLS * COLS];

typedef struct {
    int id;
} eval_arg;

static void *eval_thread(void *p) {
    eval_arg *a = p;
    float x[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++) x[i] = (float)((i * 7 + a->id * 13) % 17) / 17.0f - 0.5f;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&g_barrier); /* every thread asks for g_shared[r] at once */
        lx_array xa = lx_array_f32(x, (const int[]){ROWS, COLS}, 2);
        lx_array y = lx_matmul(xa, g_shared[r]);          /* [ROWS, COLS] */
        lx_array z = lx_sum(lx_tanh(lx_add_scalar(y, 0.25)), 1, false); /* [ROWS] */
        lx_status st = lx_eval(z);
        TCHECK(st == LX_OK, "thread %d round %d: %s", a->id, r, lx_error_message());
        float got[ROWS];
        if (st == LX_OK) st = lx_read(z, got, sizeof got);
        TCHECK(st == LX_OK, "read: %s", lx_error_message());
        /* a float64 reference for a few rows */
        for (int i = 0; i < ROWS && st == LX_OK; i += 17) {
            double want = 0;
            for (int j = 0; j < COLS; j++) {
                double acc = 0;
                for (int k = 0; k < COLS; k++)
                    acc += (double)x[i * COLS + k] * exp((double)g_w[k * COLS + j] * (r + 1) / 8.0);
                want += tanh(acc + 0.25);
            }
            TCHECK(t_close(got[i], want, 1e-4, 1e-4), "thread %d round %d row %d: %g vs %g", a->id,
                   r, i, (double)got[i], want);
        }
        lx_free(z);
        lx_clear_error();
    }
    lx_sweep();
    TCHECK(lx_tracked_count() == 0, "thread %d tracks %zu arrays", a->id, lx_tracked_count());
    return NULL;
}

static void test_concurrent_evals(void) {
    for (int i = 0; i < COLS * COLS; i++) g_w[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
    lx_array w = lx_array_f32(g_w, (const int[]){COLS, COLS}, 2);
    lx_keep(w);
    for (int r = 0; r < ROUNDS; r++) {
        g_shared[r] = lx_exp(lx_mul_scalar(w, (r + 1) / 8.0));
        lx_keep(g_shared[r]);
    }
    pthread_barrier_init(&g_barrier, NULL, N_THREADS);
    eval_arg args[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) args[i].id = i;
    run_threads(N_THREADS, eval_thread, args, sizeof args[0]);
    pthread_barrier_destroy(&g_barrier);
    for (int r = 0; r < ROUNDS; r++) {
        CHECK(lx_is_evaluated(g_shared[r]));
        lx_free(g_shared[r]);
    }
    lx_free(w);
}

/* ---- an async chain read on another thread ---- */

#define CHAIN 200
#define CHAIN_N 4096

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static lx_array q_items[CHAIN];
static int q_put, q_taken;

static void *producer(void *unused) {
    (void)unused;
    lx_array cur = lx_zeros((const int[]){CHAIN_N}, 1, LX_FLOAT32);
    lx_keep(cur);
    for (int k = 0; k < CHAIN; k++) {
        lx_array next = lx_add_scalar(lx_mul_scalar(cur, 0.5), 1.0);
        lx_status st = lx_async_eval(next); /* keeps next, sweeps the temporaries */
        TCHECK(st == LX_OK, "async step %d: %s", k, lx_error_message());
        pthread_mutex_lock(&q_lock);
        q_items[q_put++] = next; /* the consumer reads it, then frees it */
        pthread_cond_signal(&q_cond);
        pthread_mutex_unlock(&q_lock);
        if (k == 0) lx_free(cur); /* the zeros; later ones the consumer frees */
        cur = next;
    }
    lx_clear_error();
    lx_synchronize();
    lx_sweep();
    return NULL;
}

static void *consumer(void *unused) {
    (void)unused;
    float *buf = malloc(sizeof(float) * CHAIN_N);
    float want = 0;
    for (int k = 0; k < CHAIN; k++) {
        pthread_mutex_lock(&q_lock);
        while (q_taken == q_put) pthread_cond_wait(&q_cond, &q_lock);
        lx_array a = q_items[q_taken++];
        pthread_mutex_unlock(&q_lock);
        want = want * 0.5f + 1.0f;
        lx_status st = lx_read(a, buf, sizeof(float) * CHAIN_N); /* waits for the worker */
        TCHECK(st == LX_OK, "read %d: %s", k, lx_error_message());
        TCHECK(st != LX_OK || (buf[0] == want && buf[CHAIN_N - 1] == want), "step %d: %g vs %g", k,
               (double)buf[0], (double)want);
        lx_free(a); /* released at the producer's next sweep */
    }
    free(buf);
    lx_clear_error();
    return NULL;
}

static void *bystander(void *unused) {
    (void)unused;
    for (int k = 0; k < 40; k++) {
        lx_array a = lx_full((const int[]){CHAIN_N * 4}, 1, 2.0, LX_FLOAT32);
        lx_array s = lx_sum(lx_sqrt(lx_mul(a, a)), 0, false);
        TCHECK(lx_eval(s) == LX_OK, "%s", lx_error_message());
        TCHECK(lx_item_f32(s) == 2.0f * CHAIN_N * 4, "sum %g", (double)lx_item_f32(s));
        lx_free(s);
    }
    lx_sweep();
    lx_clear_error();
    return NULL;
}

static void test_async_handoff(void) {
    q_put = q_taken = 0;
    pthread_t p, c, b;
    CHECK(pthread_create(&p, NULL, producer, NULL) == 0);
    CHECK(pthread_create(&c, NULL, consumer, NULL) == 0);
    CHECK(pthread_create(&b, NULL, bystander, NULL) == 0);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    pthread_join(b, NULL);
    collect_thread_failures();
    /* the last one was freed by the consumer after the producer's final sweep: still valid
     * (an orphan now) until some sweep of its tracker, which has exited */
    lx_synchronize();
}

/* ---- waves of short-lived threads ---- */

typedef struct {
    int id;
    lx_array out; /* kept, outlives the thread */
} wave_arg;

static void *wave_thread(void *p) {
    wave_arg *a = p;
    lx_array keep_me = lx_full((const int[]){256}, 1, (double)a->id, LX_FLOAT32);
    lx_keep(keep_me);
    for (int i = 0; i < 10; i++) {
        lx_array t = lx_add_scalar(keep_me, 1.0);
        lx_array u = lx_mul_scalar(t, 2.0);
        TCHECK(lx_async_eval(u) == LX_OK, "%s", lx_error_message());
        lx_free(u);
    }
    lx_array out = lx_sum(keep_me, 0, false);
    lx_async_eval(out); /* still in flight when the thread exits: its exit waits for it */
    a->out = out;
    lx_free(keep_me);
    lx_clear_error();
    return NULL;
}

static void test_thread_waves(void) {
    for (int wave = 0; wave < 3; wave++) {
        wave_arg args[6];
        for (int i = 0; i < 6; i++) args[i] = (wave_arg){wave * 6 + i, LX_NULL_ARRAY};
        run_threads(6, wave_thread, args, sizeof args[0]);
        for (int i = 0; i < 6; i++) {
            CHECK(lx_valid(args[i].out));
            CHECK(lx_item_f32(args[i].out) == 256.0f * (float)args[i].id);
            lx_free(args[i].out);
        }
    }
    lx_sweep();
}

/* ---- a compiled closure on several threads while its program compiles in the background ---- */

#define JIT_N 4096 /* 128 calls reach the JIT's 2^19 elements: hot by repetition */

static lx_status fn_chain(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    (void)ctx;
    (void)n_in;
    (void)n_out;
    lx_array x = in[0];
    lx_array a = lx_mul(lx_add_scalar(x, 0.5), lx_tanh(x));
    out[0] = lx_sub(lx_exp(lx_mul_scalar(a, 0.25)), lx_sigmoid(x));
    return lx_error();
}

typedef struct {
    lx_closure *c;
    lx_array x, want;
    int calls;
} jit_arg;

static void *jit_thread(void *p) {
    jit_arg *a = p;
    const void *want = lx_data(a->want);
    for (int i = 0; i < a->calls; i++) {
        lx_array o;
        lx_status st = lx_call(a->c, &a->x, 1, &o, 1);
        if (st == LX_OK) st = lx_eval(o);
        TCHECK(st == LX_OK, "call %d: %s", i, lx_error_message());
        if (st != LX_OK) break;
        TCHECK(memcmp(lx_data(o), want, sizeof(float) * JIT_N) == 0, "call %d: other bits", i);
        lx_free(o);
    }
    lx_sweep();
    lx_clear_error();
    return NULL;
}

static void test_compile_jit_background(void) {
    lx_jit_mode prev_mode = lx_jit_mode_get();
    lx_jit_set_mode(LX_JIT_HOT);
    int64_t bg_before = lx_fused_native_background_compiles();
    lx_closure *c = lx_compile(fn_chain, NULL, 1, 0);
    CHECK(c != NULL);
    if (!c) return;
    float xs[JIT_N];
    for (int i = 0; i < JIT_N; i++) xs[i] = (float)i / JIT_N * 6.0f - 3.0f;
    lx_array x = lx_array_f32(xs, (const int[]){JIT_N}, 1);
    lx_keep(x);
    lx_array want;
    bool prev = lx_set_compile_enabled(false); /* separate kernels: the reference bits */
    CHECK_OK(lx_call(c, &x, 1, &want, 1));
    lx_set_compile_enabled(prev);
    CHECK_OK(lx_eval(want));
    jit_arg args[3];
    for (int i = 0; i < 3; i++) args[i] = (jit_arg){c, x, want, 80};
    run_threads(3, jit_thread, args, sizeof args[0]);
    CHECK(lx_fused_native_wait_idle(300.0));
    CHECK_MSG(lx_fused_native_background_compiles() > bg_before, "no background compile");
    /* native code now (unless the compiler is missing): same bits */
    args[0].calls = 4;
    run_threads(1, jit_thread, args, sizeof args[0]);
    lx_free(want);
    lx_free(x);
    lx_closure_free(c);
    lx_jit_set_mode(prev_mode);
}

/* ---- the global random stream and a shared tokenizer ---- */

static void *random_thread(void *unused) {
    (void)unused;
    for (int i = 0; i < 30; i++) {
        lx_array u = lx_random_uniform((const int[]){512}, 1, LX_FLOAT32, 0.0, 1.0, LX_NULL_ARRAY);
        lx_array m = lx_mean(u, 0, false);
        TCHECK(lx_eval(m) == LX_OK, "%s", lx_error_message());
        float v = lx_item_f32(m);
        TCHECK(v > 0.3f && v < 0.7f, "mean %g", (double)v);
        lx_free(m);
    }
    lx_sweep();
    lx_clear_error();
    return NULL;
}

static void test_random_stream(void) {
    lx_random_seed(7);
    run_threads(N_THREADS, random_thread, (char[N_THREADS]){0}, 1);
}

static const char *g_texts[] = {
    "Hello world, hello again.", "The quick brown fox jumps over the lazy dog 12345.",
    "  spaces   and\ttabs\nnewlines  ", "unicode: caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 100",
    "repeat repeat repeat repeat repeat repeat",
};
#define N_TEXTS (int)(sizeof g_texts / sizeof g_texts[0])

typedef struct {
    const lx_tokenizer *tok;
    int32_t want[N_TEXTS][128];
    int n_want[N_TEXTS];
} tok_shared;

static tok_shared g_tok;

static void *tokenize_thread(void *unused) {
    (void)unused;
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < N_TEXTS; i++) {
            int32_t ids[128];
            int n = lx_tokenize(g_tok.tok, g_texts[i], strlen(g_texts[i]), 0, ids, 128);
            TCHECK(n == g_tok.n_want[i] && memcmp(ids, g_tok.want[i], sizeof(int32_t) * (size_t)n) == 0,
                   "text %d: %d ids, %d expected", i, n, g_tok.n_want[i]);
            char out[512];
            long len = lx_detokenize(g_tok.tok, ids, n, false, out, sizeof out);
            TCHECK(len > 0, "detokenize text %d: %s", i, lx_error_message());
        }
    lx_clear_error();
    return NULL;
}


static void test_shared_tokenizer(void) {
    lx_tokenizer *t = lx_tokenizer_load(t_fixture("tiny-llama-f32"));
    CHECK_MSG(t != NULL, "%s", lx_error_message());
    if (!t) {
        lx_clear_error();
        return;
    }
    g_tok.tok = t;
    for (int i = 0; i < N_TEXTS; i++) {
        g_tok.n_want[i] = lx_tokenize(t, g_texts[i], strlen(g_texts[i]), 0, g_tok.want[i], 128);
        CHECK(g_tok.n_want[i] > 0 && g_tok.n_want[i] <= 128);
    }
    lx_tokenizer_free(t); /* again from scratch: the threads fill the piece cache at once */
    t = lx_tokenizer_load(t_fixture("tiny-llama-f32"));
    CHECK(t != NULL);
    if (!t) return;
    g_tok.tok = t;
    run_threads(N_THREADS, tokenize_thread, (char[N_THREADS]){0}, 1);
    lx_tokenizer_free(t);
}

/* ---- two sessions of one model, generating at once ---- */

typedef struct {
    lx_model *m;
    int32_t ids[16];
    int n;
} gen_arg;

static bool gen_on_token(void *u, int32_t id, const char *text, size_t len) {
    (void)text;
    (void)len;
    gen_arg *g = u;
    if (id >= 0 && g->n < 16) g->ids[g->n++] = id; /* -1: the text's flush */
    return true;
}

static void *gen_thread(void *p) {
    gen_arg *g = p;
    lx_session *s = lx_session_new(g->m, 0);
    TCHECK(s != NULL, "%s", lx_error_message());
    if (!s) return NULL;
    int32_t prompt[6] = {54, 489, 223, 83, 87, 281};
    lx_gen_params gp = lx_gen_params_default();
    gp.max_tokens = 8;
    gp.ignore_eos = true;
    gp.on_token = gen_on_token;
    gp.user = g;
    lx_status st = lx_session_generate(s, prompt, 6, &gp, NULL);
    TCHECK(st == LX_OK, "%s", lx_error_message());
    lx_session_free(s);
    lx_sweep();
    lx_clear_error();
    return NULL;
}

static void test_two_sessions(void) {
    lx_model *m = lx_model_load(t_fixture("tiny-llama-f32"));
    CHECK_MSG(m != NULL, "%s", lx_error_message());
    if (!m) {
        lx_clear_error();
        return;
    }
    gen_arg ref = {m, {0}, 0};
    gen_thread(&ref); /* alone first */
    collect_thread_failures();
    CHECK(ref.n == 8);
    gen_arg args[2] = {{m, {0}, 0}, {m, {0}, 0}};
    run_threads(2, gen_thread, args, sizeof args[0]);
    for (int i = 0; i < 2; i++)
        CHECK(args[i].n == ref.n && memcmp(args[i].ids, ref.ids, sizeof(int32_t) * 8) == 0);
    lx_model_free(m);
    lx_sweep();
}

int main(void) {
    RUN_TEST(test_concurrent_evals);
    RUN_TEST(test_async_handoff);
    RUN_TEST(test_thread_waves);
    RUN_TEST(test_compile_jit_background);
    RUN_TEST(test_random_stream);
    RUN_TEST(test_shared_tokenizer);
    RUN_TEST(test_two_sessions);
    lx_synchronize();
    return test_finish();
}
