/*
 * test_memory.c -- the memory model of DESIGN.md §1, case by case: tracking, keep, free,
 * sweep, eval keeping its outputs, async evaluation, chaining, graph lifetime after handle
 * release, multi-output ops, flat decode loops, threads, the out-of-memory path, a
 * million-node chain, and released-handle errors.
 */
#include <pthread.h>

#include "test_util.h"

static lx_array vec(const float *v, int n) { return lx_array_f32(v, (int[]){n}, 1); }

static float read1(lx_array a, int i) {
    const float *p = lx_data(a);
    return p ? p[i] : NAN;
}

static void test_tracking_and_sweep(void) {
    size_t base = lx_tracked_count();
    float v[3] = {1, 2, 3};
    lx_array a = vec(v, 3);
    lx_array b = vec(v, 3);
    CHECK(lx_tracked_count() == base + 2);
    CHECK(lx_valid(a) && lx_valid(b));
    CHECK(!lx_kept(a));
    lx_keep(a);
    CHECK(lx_kept(a));
    lx_sweep();
    CHECK(lx_valid(a));
    CHECK(!lx_valid(b)); /* unkept: released by the sweep */
    CHECK(lx_tracked_count() == base + 1);
    lx_free(a);
    CHECK(lx_valid(a)); /* marked only: released at the next sweep */
    CHECK(!lx_kept(a));
    lx_sweep();
    CHECK(!lx_valid(a));
    CHECK(lx_tracked_count() == base);
}

static void test_keep_is_a_flag(void) {
    float v[2] = {1, 2};
    lx_array a = vec(v, 2);
    lx_keep(a);
    lx_keep(a);
    lx_keep(a, a);
    lx_free(a); /* one free undoes any number of keeps */
    lx_free(a); /* idempotent */
    lx_sweep();
    CHECK(!lx_valid(a));
}

static void test_eval_keeps_outputs_and_sweeps(void) {
    float v[3] = {1, 2, 3};
    size_t base = lx_tracked_count();
    lx_array a = vec(v, 3);
    lx_array b = lx_add(a, a);
    lx_array c = lx_mul(b, a);
    CHECK(lx_tracked_count() == base + 3);
    CHECK_OK(lx_eval(c));
    CHECK(lx_valid(c) && lx_kept(c));
    CHECK(!lx_valid(a) && !lx_valid(b)); /* intermediates swept */
    CHECK(lx_tracked_count() == base + 1);
    CHECK(read1(c, 0) == 2.0f && read1(c, 1) == 8.0f && read1(c, 2) == 18.0f);
    lx_free(c);
    lx_sweep();
    CHECK(!lx_valid(c));
}

static void test_released_handle_keeps_graph(void) {
    float v[2] = {3, 4};
    lx_array a = vec(v, 2);
    lx_array b = lx_neg(a);
    lx_array c = lx_add(b, b);
    lx_keep(c);
    lx_sweep(); /* a and b released while c is still unevaluated */
    CHECK(!lx_valid(a) && !lx_valid(b));
    CHECK(read1(c, 0) == -6.0f && read1(c, 1) == -8.0f);
    lx_free(c);
}

static void test_released_handle_errors(void) {
    float v[1] = {1};
    lx_array a = vec(v, 1);
    lx_sweep();
    lx_clear_error();
    lx_array r = lx_add(a, a);
    CHECK(r.id == 0);
    CHECK(lx_error() == LX_E_FREED);
    CHECK(strstr(lx_error_message(), "lx_add") != NULL);
    CHECK(strstr(lx_error_message(), "argument a") != NULL);
    lx_clear_error();
    lx_array null_arr = {0};
    r = lx_neg(null_arr);
    CHECK(r.id == 0);
    CHECK_ERROR(LX_E_ARG);
    /* the error is sticky: the first one wins, later ones do not replace it */
    lx_add(a, a);
    lx_neg(null_arr);
    CHECK(lx_error() == LX_E_FREED);
    CHECK(lx_eval(lx_scalar_f32(1)) == LX_E_FREED); /* eval reports the sticky error */
    lx_clear_error();
    /* a reused slot does not revive an old handle */
    lx_array fresh = vec(v, 1);
    CHECK(lx_valid(fresh));
    CHECK(!lx_valid(a));
    CHECK(lx_size(a) == 0);
    CHECK_ERROR(LX_E_FREED);
    /* forged handles are detected too */
    lx_array forged = {0x12345678ull << 32 | 0x7fffffffull};
    CHECK(!lx_valid(forged));
    CHECK(lx_ndim(forged) == -1);
    CHECK_ERROR(LX_E_FREED);
    lx_free(forged); /* harmless */
    lx_keep(forged);
    CHECK_ERROR(LX_E_FREED);
}

static void test_async_eval_and_chaining(void) {
    float v[4] = {1, 2, 3, 4};
    lx_array a = vec(v, 4);
    lx_array b = lx_mul(a, a);
    CHECK_OK(lx_async_eval(b));
    CHECK(lx_kept(b));
    lx_array c = lx_add(b, b); /* using a scheduled output needs no wait */
    CHECK_OK(lx_async_eval(c));
    CHECK(read1(c, 3) == 32.0f); /* reading waits */
    CHECK(read1(b, 2) == 9.0f);
    CHECK_OK(lx_synchronize());
    lx_free(b);
    lx_free(c);
    lx_sweep();
}

static void test_eval_already_evaluated(void) {
    float v[2] = {1, 2};
    lx_array a = vec(v, 2);
    CHECK_OK(lx_eval(a)); /* a leaf: nothing to compute, but it is kept */
    CHECK(lx_kept(a));
    CHECK_OK(lx_eval(a));
    CHECK(lx_is_evaluated(a));
    lx_free(a);
}

static void test_views_share_memory(void) {
    float v[6] = {0, 1, 2, 3, 4, 5};
    lx_array a = lx_array_f32(v, (int[]){2, 3}, 2);
    lx_keep(a);
    CHECK_OK(lx_eval(a));
    size_t before = lx_active_memory();
    lx_array t = lx_transpose(a, NULL, 0);
    lx_array s = lx_slice(t, (int[]){1, 0}, (int[]){3, 2}, NULL, 2); /* rows 1..2 of [3,2] */
    lx_array r = lx_reshape(s, (int[]){4}, 1);                     /* needs a copy */
    lx_keep(t, s, r);
    CHECK_OK(lx_eval(t, s));
    CHECK(lx_active_memory() == before); /* transpose and slice are views */
    float out[4];
    CHECK_OK(lx_read(s, out, sizeof out));
    CHECK(out[0] == 1 && out[1] == 4 && out[2] == 2 && out[3] == 5);
    CHECK_OK(lx_eval(r));
    CHECK_OK(lx_read(r, out, sizeof out));
    CHECK(out[0] == 1 && out[1] == 4 && out[2] == 2 && out[3] == 5);
    lx_free(a);
    lx_free(t);
    lx_free(s);
    lx_free(r);
}

static void test_multi_output(void) {
    /* split: several outputs of one primitive; each output lives on independently */
    float v[6] = {0, 1, 2, 3, 4, 5};
    lx_array a = lx_array_f32(v, (int[]){6}, 1);
    lx_array parts[3];
    CHECK_OK(lx_split_equal(a, 3, 0, parts));
    CHECK_OK(lx_eval(parts[1]));
    CHECK(!lx_valid(parts[0])); /* unkept siblings are swept like any array */
    float out[2];
    CHECK_OK(lx_read(parts[1], out, sizeof out));
    CHECK(out[0] == 2 && out[1] == 3);
    lx_free(parts[1]);
    /* quantize: three outputs of one primitive, evaluated together */
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = (float)i / 7.0f;
    lx_array wa = lx_array_f32(w, (int[]){2, 32}, 2);
    lx_array q, sc, bi;
    CHECK_OK(lx_quantize(wa, 32, 8, &q, &sc, &bi));
    CHECK_OK(lx_eval(q, sc, bi));
    CHECK(lx_valid(q) && lx_valid(sc) && lx_valid(bi));
    lx_array back = lx_dequantize(q, sc, bi, 32, 8);
    float deq[64];
    CHECK_OK(lx_read(back, deq, sizeof deq));
    int close = 1;
    for (int i = 0; i < 64; i++) close &= fabsf(deq[i] - w[i]) < 0.02f;
    CHECK(close);
    lx_free(q);
    lx_free(sc);
    lx_free(bi);
}

/* A decode-shaped loop: kept weights and cache, per-step intermediates, the token fed back. */
static void test_decode_loop_is_flat(void) {
    enum { D = 32, STEPS = 10000 };
    float wv[D * D];
    for (int i = 0; i < D * D; i++) wv[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    lx_array w = lx_array_f32(wv, (int[]){D, D}, 2);
    lx_array state = lx_zeros((int[]){1, D}, 2, LX_FLOAT32);
    lx_keep(w, state);
    CHECK_OK(lx_eval(w, state));
    size_t mem_base = 0, tracked_base = 0, nodes_mem = 0;
    for (int step = 0; step < STEPS; step++) {
        lx_array x = lx_add_scalar(state, 1.0);
        lx_array h = lx_matmul(x, w);
        h = lx_tanh(h);
        lx_array old = state;
        state = lx_add(lx_mul_scalar(h, 0.5), lx_mul_scalar(old, 0.5));
        lx_keep(state);
        lx_free(old);
        lx_status st = (step % 2) ? lx_async_eval(state) : lx_eval(state);
        if (st != LX_OK) {
            CHECK_OK(st);
            break;
        }
        if (step == 100) {
            CHECK_OK(lx_synchronize());
            mem_base = lx_active_memory();
            tracked_base = lx_tracked_count();
            nodes_mem = lx_peak_memory();
        }
    }
    CHECK_OK(lx_synchronize());
    CHECK_MSG(lx_active_memory() == mem_base, "active %zu vs %zu", lx_active_memory(), mem_base);
    CHECK_MSG(lx_tracked_count() == tracked_base, "tracked %zu vs %zu", lx_tracked_count(),
              tracked_base);
    (void)nodes_mem;
    lx_free(w);
    lx_free(state);
    lx_sweep();
}

/* Two threads run independent loops: neither's sweep touches the other's arrays. */
typedef struct {
    int id;
    int failures;
    float result;
} thread_arg;

static void *thread_loop(void *p) {
    thread_arg *t = p;
    float v[4] = {1, 1, 1, 1};
    lx_array acc = lx_array_f32(v, (int[]){4}, 1);
    lx_keep(acc);
    for (int i = 0; i < 2000; i++) {
        lx_array tmp = lx_add_scalar(acc, 1.0);
        lx_array next = lx_sub_scalar(tmp, 1.0 - (t->id + 1) * 0.001);
        lx_free(acc);
        acc = next;
        if (lx_eval(acc) != LX_OK) t->failures++;
        if (!lx_valid(acc)) t->failures++;
    }
    t->result = read1(acc, 0);
    if (lx_tracked_count() != 1) t->failures++;
    lx_free(acc);
    lx_sweep();
    return NULL;
}

static void test_two_threads(void) {
    /* an array of the main thread, unkept: the other threads' sweeps must not release it */
    float v[1] = {5};
    lx_array mine = vec(v, 1);
    pthread_t th[2];
    thread_arg args[2] = {{0, 0, 0}, {1, 0, 0}};
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thread_loop, &args[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK(args[i].failures == 0);
        CHECK(fabsf(args[i].result - (1.0f + 2000 * (i + 1) * 0.001f)) < 1e-2f);
    }
    CHECK(lx_valid(mine));
    CHECK(read1(mine, 0) == 5.0f);
    /* handles may be passed between threads: keep/free/valid work from anywhere */
    lx_keep(mine);
    CHECK(lx_kept(mine));
    lx_sweep();
    CHECK(lx_valid(mine));
    lx_free(mine);
    lx_sweep();
    CHECK(!lx_valid(mine));
}

static void test_out_of_memory(void) {
    lx_synchronize();
    lx_clear_cache();
    size_t old = lx_set_memory_limit(lx_active_memory() + (1 << 20)); /* 1 MiB headroom */
    lx_array big = lx_ones((int[]){1024, 1024}, 2, LX_FLOAT32);      /* 4 MiB */
    lx_array small = lx_ones((int[]){16}, 1, LX_FLOAT32);
    lx_keep(big, small);
    lx_status st = lx_eval(big);
    CHECK(st == LX_E_OOM);
    CHECK(strstr(lx_error_message(), "memory limit") != NULL);
    lx_clear_error();
    CHECK(lx_valid(big) && !lx_is_evaluated(big)); /* consistent: still there, still lazy */
    CHECK_OK(lx_eval(small)); /* the program goes on */
    lx_set_memory_limit(old);
    CHECK_OK(lx_eval(big)); /* and can retry once memory is available */
    CHECK(read1(big, 1024 * 1024 - 1) == 1.0f);
    lx_free(big);
    lx_free(small);
    lx_sweep();
}

static void test_million_node_chain(void) {
    enum { N = 1000000 };
    size_t base = lx_tracked_count();
    float v[2] = {1.5f, -2.0f};
    lx_array x = vec(v, 2);
    for (int i = 0; i < N; i++) x = lx_neg(x);
    CHECK(lx_error() == LX_OK);
    CHECK_OK(lx_eval(x)); /* even count: the value comes back */
    CHECK(read1(x, 0) == 1.5f && read1(x, 1) == -2.0f);
    lx_free(x);
    /* build and release without evaluating: destruction must not recurse */
    lx_array y = vec(v, 2);
    for (int i = 0; i < N; i++) y = lx_neg(y);
    lx_sweep();
    CHECK(!lx_valid(y));
    CHECK(lx_tracked_count() == base);
}

static void test_active_memory_exact(void) {
    lx_synchronize();
    size_t before = lx_active_memory();
    lx_array a = lx_zeros((int[]){1000, 3}, 2, LX_FLOAT32);
    CHECK_OK(lx_eval(a));
    CHECK(lx_active_memory() == before + 12000);
    CHECK(lx_peak_memory() >= before + 12000);
    lx_free(a);
    lx_sweep();
    CHECK(lx_active_memory() == before);
    CHECK(lx_cache_memory() >= 12000); /* the block went to the cache */
    lx_clear_cache();
    CHECK(lx_cache_memory() == 0);
}

static void test_async_error_is_reported(void) {
    lx_clear_cache(); /* a cached block of the right size would be reused: no new memory */
    size_t old = lx_set_memory_limit(lx_active_memory() + 1024);
    lx_array big = lx_ones((int[]){1 << 20}, 1, LX_FLOAT32);
    lx_status st = lx_async_eval(big); /* scheduling succeeds */
    CHECK(st == LX_OK);
    st = lx_synchronize(); /* the failure surfaces at the next wait */
    CHECK(st == LX_E_OOM);
    lx_clear_error();
    lx_set_memory_limit(old);
    CHECK_OK(lx_eval(big));
    lx_free(big);
}

static void test_bad_arguments(void) {
    CHECK(lx_array_f32(NULL, (int[]){3}, 1).id == 0);
    CHECK_ERROR(LX_E_ARG);
    float v[1] = {0};
    CHECK(lx_array_f32(v, (int[]){-1}, 1).id == 0);
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_zeros((int[]){1 << 30, 1 << 30, 1 << 30}, 3, LX_FLOAT32).id == 0);
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_zeros((int[]){2}, LX_MAX_NDIM + 1, LX_FLOAT32).id == 0);
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_zeros((int[]){2}, 1, (lx_dtype)99).id == 0);
    CHECK_ERROR(LX_E_DTYPE);
    lx_array a = lx_zeros((int[]){2, 3}, 2, LX_FLOAT32);
    CHECK(lx_reshape(a, (int[]){4}, 1).id == 0);
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_transpose(a, (int[]){0, 0}, 2).id == 0);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_dim(a, 5) == -1);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_read(a, v, 4) == LX_E_ARG); /* wrong byte count */
    lx_clear_error();
    CHECK(lx_eval_n(NULL, 2) == LX_E_ARG);
    lx_clear_error();
}

/* An empty array whose other dimensions multiply past int64 is refused like any shape whose
 * strides would overflow (found by fuzz_gguf: UBSan flagged the row strides of such a tensor);
 * an empty array with large dimensions that fit still works end to end. */
static void test_empty_with_huge_dims(void) {
    const int big = 2147483647;
    CHECK(lx_zeros((int[]){big, big, big, 0, big}, 5, LX_FLOAT32).id == 0);
    CHECK_ERROR(LX_E_SHAPE);
    const int mid = 1 << 20; /* big * mid * 4 bytes = 2^53: fits */
    lx_array z = lx_zeros((int[]){big, 0, mid}, 3, LX_FLOAT32);
    CHECK(z.id != 0);
    lx_array t = lx_transpose(z, (int[]){2, 1, 0}, 3);
    lx_array s = lx_add(lx_exp(z), lx_mul_scalar(lx_transpose(t, (int[]){2, 1, 0}, 3), 2.0));
    lx_array r = lx_slice(z, (int[]){big - 1, 0, 5}, (int[]){big, 0, mid}, (int[]){1, 1, 1}, 3);
    CHECK_OK(lx_eval(t, s, r));
    CHECK(lx_size(t) == 0 && lx_size(s) == 0 && lx_size(r) == 0);
    CHECK(lx_dim(s, 0) == big && lx_dim(s, 1) == 0 && lx_dim(r, 2) == mid - 5);
    lx_sweep();
}

/* The limit getters read without evicting; a limit set before the backend starts (this runs
 * first, before any array exists) is not overwritten by the defaults at its start. */
static void test_limit_getters(void) {
    size_t mem0 = lx_memory_limit(), cache0 = lx_cache_limit();
    CHECK(mem0 > 0 && cache0 > 0);
    CHECK(lx_set_memory_limit(mem0 - 4096) == mem0);
    CHECK(lx_memory_limit() == mem0 - 4096);
    lx_array a = lx_ones((int[]){1 << 16}, 1, LX_FLOAT32); /* starts the backend */
    CHECK_OK(lx_eval(a));
    CHECK(lx_memory_limit() == mem0 - 4096);
    lx_free(a);
    lx_sweep();
    lx_synchronize();
    size_t cached = lx_cache_memory();
    CHECK(cached >= (size_t)4 << 16); /* a's buffer went to the cache */
    CHECK(lx_cache_limit() == cache0 && lx_memory_limit() == mem0 - 4096);
    CHECK(lx_cache_memory() == cached); /* reading evicted nothing */
    CHECK(lx_set_memory_limit(mem0) == mem0 - 4096);
    CHECK(lx_set_cache_limit(cache0) == cache0);
}

int main(void) {
    RUN_TEST(test_limit_getters); /* first: before the backend starts */
    RUN_TEST(test_tracking_and_sweep);
    RUN_TEST(test_keep_is_a_flag);
    RUN_TEST(test_eval_keeps_outputs_and_sweeps);
    RUN_TEST(test_released_handle_keeps_graph);
    RUN_TEST(test_released_handle_errors);
    RUN_TEST(test_async_eval_and_chaining);
    RUN_TEST(test_eval_already_evaluated);
    RUN_TEST(test_views_share_memory);
    RUN_TEST(test_multi_output);
    RUN_TEST(test_active_memory_exact);
    RUN_TEST(test_decode_loop_is_flat);
    RUN_TEST(test_two_threads);
    RUN_TEST(test_out_of_memory);
    RUN_TEST(test_async_error_is_reported);
    RUN_TEST(test_empty_with_huge_dims);
    RUN_TEST(test_bad_arguments);
    RUN_TEST(test_million_node_chain);
    return test_finish();
}
