/*
 * test_alloc_failure.c -- allocation-failure injection, as SQLite tests it.
 *
 * Linked with -Wl,--wrap=malloc,... (tests/CMakeLists.txt), so every host allocation that lx's
 * own code makes -- and the device memory of the CPU backend, which comes from aligned_alloc --
 * goes through the wrappers below. Libraries lx calls (cJSON, PCRE2, OpenBLAS, libc itself)
 * allocate through their own references and are not failed.
 *
 * For each scenario (an op family, an eval, compile + replay, file loads, tokenizers, models, a
 * few generation steps): a warm-up run without failures (lazy globals start, the reference
 * results are taken), then runs where allocation k fails, for k = 1, 2, 3, ... until a run
 * completes without reaching allocation k. Each run must either succeed with the right result
 * (lx recovered: the allocator returns its cache and retries) or report LX_E_OOM (a clean
 * error of another status is reported as a finding); afterwards the live node count, the
 * active memory and the tracked count are back to the baseline. Run under the ASan build
 * (scripts/test.sh --sanitize), LeakSanitizer also checks that no host allocation leaks.
 *
 * Modes: one failure (the k-th allocation only), then with LX_FAULT_PERSIST=1 (or the
 * argument "persist") every allocation from the k-th on, which also tests that error paths
 * clean up without allocating. LX_FAULT_ONLY=name runs one scenario; LX_FAULT_VERBOSE=1 prints
 * each k before its run (a crash then shows where).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/node.h"
#include "lx.h"
#include "test_util.h"

/* ---- the wrappers ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static atomic_long g_count;   /* allocations since arm() */
static atomic_long g_fail_at; /* 0: off */
static atomic_long g_hits;    /* allocations failed since arm() */
static atomic_int g_persist;  /* fail every allocation from g_fail_at on */

static bool inject(void) {
    long k = atomic_load_explicit(&g_fail_at, memory_order_relaxed);
    if (!k) return false;
    long n = atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed) + 1;
    if (n == k || (n > k && atomic_load_explicit(&g_persist, memory_order_relaxed))) {
        atomic_fetch_add_explicit(&g_hits, 1, memory_order_relaxed);
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n) { return inject() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return inject() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return inject() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t align, size_t n) {
    return inject() ? NULL : __real_aligned_alloc(align, n);
}
int __wrap_posix_memalign(void **p, size_t align, size_t n) {
    return inject() ? ENOMEM : __real_posix_memalign(p, align, n);
}
char *__wrap_strdup(const char *s) { return inject() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return inject() ? NULL : __real_strndup(s, n); }

static void arm(long k) {
    atomic_store(&g_count, 0);
    atomic_store(&g_hits, 0);
    atomic_store(&g_fail_at, k);
}
static void disarm(void) { atomic_store(&g_fail_at, 0); }

/* ---- scenarios ---- */

#define WRONG 1000 /* a scenario's result differs from the warm-up's */

static char g_rpath[1024];
static const char *repo_fixture(const char *name) {
    const char *root = getenv("LX_REPO");
    snprintf(g_rpath, sizeof g_rpath, "%s/tests/fixtures/%s", root ? root : ".", name);
    return g_rpath;
}
static char g_tpath[1024];
static const char *tmp_file(const char *name) {
    const char *root = getenv("LX_TEST_TMP");
    snprintf(g_tpath, sizeof g_tpath, "%s/alloc-failure-%d-%s", root && *root ? root : "/tmp",
             (int)getpid(), name);
    return g_tpath;
}

/* Reads a into dst and compares with (or, on the warm-up run, records) the reference. */
static bool g_record;
static int check_read(lx_array a, float *ref, float *dst, size_t n) {
    lx_status st = lx_read(a, dst, sizeof(float) * n);
    if (st != LX_OK) return st;
    if (g_record) {
        memcpy(ref, dst, sizeof(float) * n);
        return LX_OK;
    }
    return memcmp(ref, dst, sizeof(float) * n) == 0 ? LX_OK : WRONG;
}

static void fill(float *x, int n, int seed) {
    for (int i = 0; i < n; i++) x[i] = (float)((i * 37 + seed * 11) % 23) / 23.0f - 0.4f;
}

static float r_ew[3][64], r_red[5][8], r_shape[4][128], r_nn[4][256], r_sort[4][64], r_q[64],
    r_rand[64], r_async[64], r_compile[2][64];

static int sc_elementwise(void) {
    float a[64], b[64], out[64];
    fill(a, 64, 1);
    fill(b, 64, 2);
    lx_array x = lx_array_f32(a, (const int[]){8, 8}, 2);
    lx_array y = lx_array_f32(b, (const int[]){8, 1, 8}, 3); /* broadcast */
    lx_array z = lx_where(lx_greater(x, y), lx_exp(x), lx_mul(lx_add(x, y), lx_scalar_f32(2)));
    lx_array h = lx_astype(lx_astype(lx_tanh(z), LX_FLOAT16), LX_FLOAT32);
    lx_array s = lx_sqrt(lx_abs(lx_sub_scalar(x, 0.1)));
    lx_status st = lx_eval(z, h, s);
    int r = st;
    if (!r) r = check_read(lx_slice(z, (const int[]){0, 0, 0}, (const int[]){1, 8, 8}, NULL, 3),
                           r_ew[0], out, 64);
    if (!r) r = check_read(lx_slice(h, (const int[]){7, 0, 0}, (const int[]){8, 8, 8}, NULL, 3),
                           r_ew[1], out, 64);
    if (!r) r = check_read(s, r_ew[2], out, 64);
    lx_free(z);
    lx_free(h);
    lx_free(s);
    return r;
}

static int sc_reduce(void) {
    float a[64], out[8];
    fill(a, 64, 3);
    lx_array x = lx_array_f32(a, (const int[]){8, 8}, 2);
    lx_array outs[5] = {lx_sum(x, 1, false), lx_max(x, 0, false), lx_logsumexp(x, 1, false),
                        lx_astype(lx_argmax(x, 1, false), LX_FLOAT32),
                        lx_sum(lx_softmax(x, 1), 0, false)};
    lx_status st = lx_eval_n(outs, 5);
    int r = st;
    for (int i = 0; i < 5 && !r; i++) r = check_read(outs[i], r_red[i], out, 8);
    for (int i = 0; i < 5; i++) lx_free(outs[i]);
    return r;
}

static int sc_shape(void) {
    float a[64], out[128];
    fill(a, 64, 4);
    lx_array x = lx_array_f32(a, (const int[]){4, 16}, 2);
    lx_array t = lx_contiguous(lx_transpose(x, NULL, 0));
    lx_array c = lx_concatenate((const lx_array[]){x, x}, 2, 0);
    lx_array idx = lx_array_i32((const int32_t[]){3, 0, 2}, (const int[]){3}, 1);
    lx_array g = lx_pad(lx_take(x, idx, 0), (const int[]){0, 1}, (const int[]){1, 0}, 2, 0.5);
    lx_array u = lx_slice_update(c, lx_ones((const int[]){2, 4}, 2, LX_FLOAT32),
                                 (const int[]){1, 2}, (const int[]){3, 6}, NULL, 2);
    lx_status st = lx_eval(t, c, g, u);
    int r = st;
    if (!r) r = check_read(t, r_shape[0], out, 64);
    if (!r) r = check_read(c, r_shape[1], out, 128);
    if (!r) r = check_read(g, r_shape[2], out, 4 * 17);
    if (!r) r = check_read(u, r_shape[3], out, 128);
    lx_free(t);
    lx_free(c);
    lx_free(g);
    lx_free(u);
    return r;
}

static int sc_nn(void) {
    float a[256], b[256], out[256];
    fill(a, 256, 5);
    fill(b, 256, 6);
    lx_array x = lx_array_f32(a, (const int[]){1, 2, 8, 16}, 4); /* [B, H, L, D] */
    lx_array w = lx_array_f32(b, (const int[]){16, 16}, 2);
    lx_array mm = lx_matmul(x, w);
    lx_array rn = lx_layer_norm(lx_rms_norm(x, LX_NULL_ARRAY, 1e-5f), LX_NULL_ARRAY,
                                LX_NULL_ARRAY, 1e-5f);
    lx_array ro = lx_rope(x, 16, false, 10000.0f, 1.0f, 3);
    lx_array at = lx_sdpa(ro, x, mm, 0.25f, true, LX_NULL_ARRAY);
    lx_status st = lx_eval(mm, rn, ro, at);
    int r = st;
    if (!r) r = check_read(mm, r_nn[0], out, 256);
    if (!r) r = check_read(rn, r_nn[1], out, 256);
    if (!r) r = check_read(ro, r_nn[2], out, 256);
    if (!r) r = check_read(at, r_nn[3], out, 256);
    lx_free(mm);
    lx_free(rn);
    lx_free(ro);
    lx_free(at);
    return r;
}

static float r_nn2[6][128];

static int sc_nn2(void) {
    float a[128], b[128], out[128];
    fill(a, 128, 14);
    fill(b, 128, 15);
    lx_array x = lx_array_f32(a, (const int[]){1, 16, 8}, 3);    /* [N, L, C] */
    lx_array w = lx_array_f32(b, (const int[]){4, 3, 8}, 3);     /* [Cout, K, Cin] */
    lx_array c1 = lx_conv1d(x, w, 1, 1, 1, 1);                   /* [1, 16, 4] */
    lx_array x2 = lx_reshape(x, (const int[]){1, 4, 4, 8}, 4);   /* [N, H, W, C] */
    lx_array w2 = lx_reshape(lx_slice(w, (const int[]){0, 0, 0}, (const int[]){2, 2, 8}, NULL, 3),
                             (const int[]){2, 2, 1, 8}, 4);
    lx_array c2 = lx_conv2d(x2, w2, (const int[]){1, 1}, (const int[]){0, 0}, (const int[]){1, 1}, 1);
    lx_array gn = lx_group_norm(x2, 2, LX_NULL_ARRAY, LX_NULL_ARRAY, 1e-5f);
    lx_array up = lx_upsample_nearest(lx_slice(x2, (const int[]){0, 0, 0, 0}, (const int[]){1, 2, 2, 8}, NULL, 4), 2, 1);
    lx_array parts[2];
    lx_status st = lx_split_equal(x, 2, 1, parts);
    if (st) return st;
    lx_array stk = lx_stack(parts, 2, 0);                         /* [2, 1, 8, 8] */
    lx_array gm = lx_gather_mm(lx_reshape(stk, (const int[]){2, 8, 8}, 3),
                               lx_reshape(lx_slice(x, (const int[]){0, 0, 0}, (const int[]){1, 8, 8}, NULL, 3),
                                          (const int[]){1, 8, 8}, 3),
                               LX_NULL_ARRAY, lx_array_i32((const int32_t[]){0, 0}, (const int[]){2}, 1));
    lx_array outs[6] = {c1, c2, gn, up, lx_cumprod(lx_tile(parts[0], (const int[]){1, 1, 1}, 3), 2), gm};
    st = lx_eval_n(outs, 6);
    int r = st;
    for (int i = 0; i < 6 && !r; i++)
        r = lx_size(outs[i]) > 128 ? WRONG : check_read(outs[i], r_nn2[i], out, lx_size(outs[i]));
    for (int i = 0; i < 6; i++) lx_free(outs[i]);
    return r;
}

static int sc_sort_scan(void) {
    float a[64], out[64];
    fill(a, 64, 7);
    lx_array x = lx_array_f32(a, (const int[]){4, 16}, 2);
    lx_array outs[4] = {lx_sort(x, 1), lx_astype(lx_argsort(x, 0), LX_FLOAT32), lx_cumsum(x, 1),
                        lx_sort(lx_topk(x, 4, 1), 1)};
    lx_status st = lx_eval_n(outs, 4);
    int r = st;
    if (!r) r = check_read(outs[0], r_sort[0], out, 64);
    if (!r) r = check_read(outs[1], r_sort[1], out, 64);
    if (!r) r = check_read(outs[2], r_sort[2], out, 64);
    if (!r) r = check_read(outs[3], r_sort[3], out, 16);
    for (int i = 0; i < 4; i++) lx_free(outs[i]);
    return r;
}

static int sc_quantized(void) {
    float a[64 * 32], b[2 * 64], out[64];
    fill(a, 64 * 32, 8);
    fill(b, 2 * 64, 9);
    lx_array w = lx_array_f32(a, (const int[]){32, 64}, 2);
    lx_array wq, sc, bi;
    lx_status st = lx_quantize(w, 32, 4, &wq, &sc, &bi);
    if (st) return st;
    lx_array x = lx_array_f32(b, (const int[]){2, 64}, 2);
    lx_array y = lx_quantized_matmul(x, wq, sc, bi, true, 32, 4); /* [2, 32] */
    st = lx_eval(y);
    int r = st ? (int)st : check_read(y, r_q, out, 64);
    lx_free(y);
    return r;
}

static int sc_random(void) {
    float out[64];
    lx_array key = lx_random_key(42);
    lx_array k1, k2;
    lx_status st = lx_random_split(key, &k1, &k2);
    if (st) return st;
    lx_array u = lx_random_uniform((const int[]){32}, 1, LX_FLOAT32, -1.0, 1.0, k1);
    lx_array n = lx_random_normal((const int[]){16}, 1, LX_FLOAT32, k2);
    lx_array logits = lx_reshape(u, (const int[]){2, 16}, 2);
    lx_array c = lx_astype(lx_random_categorical_n(logits, 1, 8, key), LX_FLOAT32); /* [2, 8] */
    lx_array all = lx_concatenate((const lx_array[]){u, n, lx_reshape(c, (const int[]){16}, 1)},
                                  3, 0);
    st = lx_eval(all);
    int r = st ? (int)st : check_read(all, r_rand, out, 64);
    lx_free(all);
    return r;
}

/* The decode-loop pattern: keep the new state, free the old one, lx_async_eval. */
static int sc_async(void) {
    float a[64], out[64];
    fill(a, 64, 10);
    lx_array s = lx_array_f32(a, (const int[]){64}, 1);
    lx_keep(s);
    lx_status st = LX_OK;
    for (int i = 0; i < 6 && !st; i++) {
        lx_array next = lx_add_scalar(lx_mul_scalar(lx_tanh(s), 0.9), 0.05);
        lx_free(s);
        s = next;
        st = lx_async_eval(s);
    }
    int r = st ? (int)st : check_read(s, r_async, out, 64);
    if (!r) r = lx_synchronize();
    lx_free(s);
    return r;
}

static lx_status fn_compiled(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    (void)ctx;
    (void)n_in;
    (void)n_out;
    lx_array a = lx_mul(lx_add_scalar(in[0], 0.5), lx_sigmoid(in[1]));
    out[0] = lx_exp(lx_mul_scalar(a, 0.25));
    out[1] = lx_sum(lx_mul(a, in[1]), 1, true);
    return lx_error();
}

static int sc_compile(void) {
    float a[64], b[64], out[64];
    fill(a, 64, 11);
    fill(b, 64, 12);
    lx_closure *c = lx_compile(fn_compiled, NULL, 2, 0);
    if (!c) return lx_error() ? lx_error() : LX_E_INTERNAL;
    lx_array in[2] = {lx_array_f32(a, (const int[]){8, 8}, 2), lx_array_f32(b, (const int[]){8, 8}, 2)};
    lx_keep(in[0], in[1]); /* they outlive the evaluations between calls */
    lx_array o[2] = {LX_NULL_ARRAY, LX_NULL_ARRAY};
    int r = LX_OK;
    for (int call = 0; call < 3 && !r; call++) { /* trace, then replays */
        r = lx_call(c, in, 2, o, 2);
        if (!r) r = lx_eval_n(o, 2);
        if (!r) r = check_read(o[0], r_compile[0], out, 64);
        if (!r) r = check_read(o[1], r_compile[1], out, 8);
        lx_free(o[0]);
        lx_free(o[1]);
    }
    lx_closure_free(c);
    lx_free(in[0]);
    lx_free(in[1]);
    return r;
}

/* Files: a weight's first bytes against the warm-up's. */
static float r_load[4][16];

static int check_weights(lx_weights *w, const char *name, float *ref) {
    if (!w) return lx_error() ? lx_error() : LX_E_INTERNAL;
    lx_array a = lx_weights_get(w, name);
    lx_array f = lx_astype(lx_flatten(a, 0, -1), LX_FLOAT32);
    lx_array head = lx_slice(f, (const int[]){0}, (const int[]){16}, NULL, 1);
    float out[16];
    int r = lx_eval(head);
    if (!r) r = check_read(head, ref, out, 16);
    lx_free(head);
    int n = lx_weights_count(w);
    if (!r && n <= 0) r = WRONG;
    lx_weights_free(w);
    return r;
}

static int sc_load_safetensors(void) {
    char p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors", t_fixture("tiny-llama-f32"));
    return check_weights(lx_load(p), "model.embed_tokens.weight", r_load[0]);
}

static int sc_load_bf16_folder(void) {
    return check_weights(lx_load(t_fixture("tiny-qwen3-bf16")), "model.norm.weight", r_load[1]);
}

static int sc_save_load(void) {
    float a[48], out[16];
    fill(a, 48, 13);
    lx_array x = lx_array_f32(a, (const int[]){3, 16}, 2);
    lx_array y = lx_astype(x, LX_BFLOAT16);
    lx_keep(x, y); /* used again after evaluations */
    const char *names[2] = {"x", "y"};
    char st_path[1100], npy_path[1100];
    snprintf(st_path, sizeof st_path, "%s", tmp_file("w.safetensors"));
    snprintf(npy_path, sizeof npy_path, "%s", tmp_file("x.npy"));
    int r = lx_save_safetensors(st_path, names, (const lx_array[]){x, y}, 2);
    if (!r) r = check_weights(lx_load(st_path), "y", r_load[2]);
    if (!r) r = lx_save_npy(npy_path, x);
    if (!r) {
        lx_array l = lx_load_npy(npy_path);
        lx_array head = lx_slice(lx_reshape(l, (const int[]){48}, 1), (const int[]){16},
                                 (const int[]){32}, NULL, 1);
        r = lx_eval(head);
        if (!r) r = check_read(head, r_load[3], out, 16);
        lx_free(head);
    }
    remove(st_path);
    remove(npy_path);
    lx_free(x);
    lx_free(y);
    return r;
}

static int sc_load_gguf(void) {
    lx_weights *w = lx_load(repo_fixture("tiny_spm.gguf"));
    if (!w) return lx_error() ? lx_error() : LX_E_INTERNAL;
    int n = lx_weights_metadata_array_len(w, "tokenizer.ggml.tokens");
    const char *item = n > 3 ? lx_weights_metadata_array_item(w, "tokenizer.ggml.tokens", 3) : NULL;
    int r = n > 3 && item ? LX_OK : WRONG;
    lx_weights_free(w);
    return r;
}

/* Tokenizers: the ids of a few texts against the warm-up's. */
static int32_t r_ids[4][64];
static int r_nids[4];

static int check_tokenizer(lx_tokenizer *t, int slot) {
    if (!t) return lx_error() ? lx_error() : LX_E_INTERNAL;
    const char *text = "Hello world! The quick brown fox, caf\xc3\xa9 <s> 1234 ";
    int32_t ids[64];
    int n = lx_tokenize(t, text, strlen(text), LX_TOKENIZE_ADD_SPECIAL | LX_TOKENIZE_PARSE_SPECIAL,
                        ids, 64);
    int r = n < 0 ? (int)(lx_error() ? lx_error() : LX_E_INTERNAL) : LX_OK;
    if (!r && n > 64) r = WRONG;
    char back[512];
    if (!r && lx_detokenize(t, ids, n, true, back, sizeof back) < 0)
        r = lx_error() ? lx_error() : LX_E_INTERNAL;
    if (!r) {
        lx_detokenizer *d = lx_detokenizer_new(t, false);
        if (!d) r = lx_error() ? lx_error() : LX_E_INTERNAL;
        for (int i = 0; i < n && !r; i++) {
            size_t len;
            if (!lx_detokenizer_push(d, ids[i], &len)) r = lx_error() ? lx_error() : LX_E_INTERNAL;
        }
        lx_detokenizer_free(d);
    }
    if (!r && g_record) {
        memcpy(r_ids[slot], ids, sizeof(int32_t) * (size_t)n);
        r_nids[slot] = n;
    } else if (!r && (n != r_nids[slot] || memcmp(ids, r_ids[slot], sizeof(int32_t) * (size_t)n))) {
        r = WRONG;
    }
    lx_tokenizer_free(t);
    return r;
}

static int sc_tokenizer_json(void) { return check_tokenizer(lx_tokenizer_load(t_fixture("tiny-llama-f32")), 0); }
static int sc_tokenizer_gguf(void) {
    return check_tokenizer(lx_tokenizer_load(repo_fixture("tiny_spm.gguf")), 1);
}
static int sc_tokenizer_metaspace(void) {
    return check_tokenizer(lx_tokenizer_load(repo_fixture("tiny_metaspace_tokenizer.json")), 2);
}

static int sc_model_load(void) {
    lx_model *m = lx_model_load(t_fixture("tiny-llama-f32"));
    if (!m) return lx_error() ? lx_error() : LX_E_INTERNAL;
    int r = lx_model_vocab_size(m) == 512 && lx_model_describe(m) ? LX_OK : WRONG;
    lx_model_free(m);
    return r;
}

static int sc_model_load_qwen3(void) {
    lx_model *m = lx_model_load(t_fixture("tiny-qwen3-bf16"));
    if (!m) return lx_error() ? lx_error() : LX_E_INTERNAL;
    lx_model_free(m);
    return LX_OK;
}

/* Generation on a model loaded once outside the injected runs. */
static lx_model *g_model;
static int32_t r_gen[8];

static bool gen_on_token(void *u, int32_t id, const char *text, size_t len) {
    (void)text;
    (void)len;
    int *n = u;
    if (id >= 0 && *n < 8) {
        if (g_record) r_gen[*n] = id;
        else if (r_gen[*n] != id) return false;
        (*n)++;
    }
    return true;
}

static int sc_generate(void) {
    lx_session *s = lx_session_new(g_model, 64);
    if (!s) return lx_error() ? lx_error() : LX_E_INTERNAL;
    int32_t prompt[6] = {54, 489, 223, 83, 87, 281};
    int n = 0;
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = 4;
    p.ignore_eos = true;
    p.on_token = gen_on_token;
    p.user = &n;
    p.prefill_chunk = 4; /* two prefill passes */
    lx_gen_stats stats;
    int r = lx_session_generate(s, prompt, 6, &p, &stats);
    if (!r && n != 4) r = WRONG;
    lx_session_free(s);
    return r;
}

static int sc_sampled(void) {
    lx_session *s = lx_session_new(g_model, 64);
    if (!s) return lx_error() ? lx_error() : LX_E_INTERNAL;
    int32_t prompt[3] = {54, 489, 223};
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = 3;
    p.ignore_eos = true;
    p.temperature = 0.8f;
    p.top_k = 20;
    p.top_p = 0.9f;
    p.repeat_penalty = 1.1f;
    p.seed = 5;
    int r = lx_session_generate(s, prompt, 3, &p, NULL);
    lx_session_free(s);
    return r;
}

/* A model folder with a chat template: the tiny llama's files and a template of the repo's. */
static char g_chat_dir[1024];

static bool make_chat_folder(void) {
    snprintf(g_chat_dir, sizeof g_chat_dir, "%s", tmp_file("chat-model"));
    if (mkdir(g_chat_dir, 0700) != 0) return false;
    const char *files[3] = {"config.json", "model.safetensors", "tokenizer.json"};
    char from[1100], to[1100];
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/%s", t_fixture("tiny-llama-f32"), files[i]);
        snprintf(to, sizeof to, "%s/%s", g_chat_dir, files[i]);
        if (symlink(from, to) != 0) return false;
    }
    snprintf(to, sizeof to, "%s/chat_template.jinja", g_chat_dir);
    return symlink(repo_fixture("chat_templates/llama-3.1-instruct.jinja"), to) == 0;
}

static void remove_chat_folder(void) {
    const char *files[4] = {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"};
    char p[1100];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", g_chat_dir, files[i]);
        unlink(p);
    }
    rmdir(g_chat_dir);
}

static char r_chat[4096];

static int sc_chat_template(void) {
    lx_model *m = lx_model_load(g_chat_dir);
    if (!m) return lx_error() ? lx_error() : LX_E_INTERNAL;
    const lx_chat_message msgs[3] = {{"system", "Be brief."}, {"user", "What is 2 + 2?"},
                                     {"assistant", "4"}};
    char *text = lx_chat_apply(m, msgs, 3, true);
    int r = text ? LX_OK : (lx_error() ? lx_error() : LX_E_INTERNAL);
    if (text && g_record) snprintf(r_chat, sizeof r_chat, "%s", text);
    else if (text && strcmp(text, r_chat) != 0) r = WRONG;
    free(text);
    lx_model_free(m);
    return r;
}

typedef struct {
    const char *name;
    int (*fn)(void);
    int step; /* k advances by this much (1: every allocation) */
} scenario;

static const scenario g_scenarios[] = {
    {"elementwise", sc_elementwise, 1},
    {"reduce", sc_reduce, 1},
    {"shape", sc_shape, 1},
    {"nn", sc_nn, 1},
    {"nn2", sc_nn2, 1},
    {"sort_scan", sc_sort_scan, 1},
    {"quantized", sc_quantized, 1},
    {"random", sc_random, 1},
    {"async", sc_async, 1},
    {"compile", sc_compile, 1},
    {"load_safetensors", sc_load_safetensors, 1},
    {"load_bf16_folder", sc_load_bf16_folder, 1},
    {"save_load", sc_save_load, 1},
    {"load_gguf", sc_load_gguf, 1},
    {"tokenizer_json", sc_tokenizer_json, 1},
    {"tokenizer_gguf", sc_tokenizer_gguf, 1},
    {"tokenizer_metaspace", sc_tokenizer_metaspace, 1},
    {"model_load", sc_model_load, 1},
    {"model_load_qwen3", sc_model_load_qwen3, 1},
    /* a single failure here may fail one step of the async decode loop while the main thread
     * schedules the next one (that once hung: see exec_tape's un-claim in eval.c) */
    {"generate", sc_generate, 1},
    {"sampled", sc_sampled, 1},
    {"chat_template", sc_chat_template, 1},
};

/* After a run: its work done, its error cleared, its arrays released, and the allocator's
 * cache emptied, so that the next run's buffers come from aligned_alloc again. */
static void settle(void) {
    lx_synchronize();
    lx_clear_error();
    lx_sweep();
    lx_clear_cache();
}

static int run_scenario(const scenario *s, bool persist, bool verbose, long stride) {
    int failures = 0;
    g_record = true;
    int r = s->fn();
    g_record = false;
    settle();
    if (r != LX_OK) {
        fprintf(stderr, "%s: the run without failures gives %d (%s)\n", s->name, r,
                r < WRONG ? lx_status_string((lx_status)r) : "wrong result");
        return 1;
    }
    r = s->fn(); /* a second run: what the first one started lazily is there now */
    settle();
    if (r != LX_OK) {
        fprintf(stderr, "%s: a second run without failures gives %d\n", s->name, r);
        return 1;
    }
    size_t nodes0 = lx_node_live_count(), active0 = lx_active_memory(), tracked0 = lx_tracked_count();
    arm(LONG_MAX); /* counts */
    s->fn();
    disarm();
    settle();
    long total = atomic_load(&g_count);
    long step = s->step * stride;
    int runs = 0, recovered = 0, oom = 0;
    atomic_store(&g_persist, persist);
    for (long k = 1;; k += step) {
        if (verbose) {
            printf("  %s k=%ld\n", s->name, k);
            fflush(stdout);
        }
        arm(k);
        r = s->fn();
        disarm();
        long hits = atomic_load(&g_hits);
        lx_status err = lx_error();
        char msg[256];
        snprintf(msg, sizeof msg, "%s", lx_error_message());
        settle();
        runs++;
        if (hits == 0) {
            if (r != LX_OK) {
                fprintf(stderr, "%s k=%ld: no failure injected, yet %d (%s)\n", s->name, k, r, msg);
                failures++;
            }
            break;
        }
        if (r == WRONG) {
            fprintf(stderr, "%s k=%ld: reported success with a wrong result\n", s->name, k);
            failures++;
        } else if (r == LX_OK) {
            recovered++;
        } else if (r != LX_E_OOM) {
            fprintf(stderr, "%s k=%ld: an allocation failure reported as %s: %s\n", s->name, k,
                    lx_status_string((lx_status)r), msg);
            failures++;
        } else {
            oom++;
            if (err != LX_OK && err != LX_E_OOM)
                fprintf(stderr, "%s k=%ld: returned LX_E_OOM, sticky error %s\n", s->name, k,
                        lx_status_string(err));
        }
        size_t nodes = lx_node_live_count(), active = lx_active_memory(), tracked = lx_tracked_count();
        if (nodes != nodes0 || active != active0 || tracked != tracked0) {
            fprintf(stderr, "%s k=%ld (%s): after the run %zu nodes (%zu before), %zu bytes active "
                    "(%zu), %zu tracked (%zu)\n", s->name, k, r == LX_OK ? "recovered" : msg,
                    nodes, nodes0, active, active0, tracked, tracked0);
            failures++;
            nodes0 = nodes; /* report each leak once */
            active0 = active;
            tracked0 = tracked;
        }
        if (failures > 20) break;
        if (k > total * 4 + 1000) {
            fprintf(stderr, "%s: still failing at k=%ld of %ld allocations\n", s->name, k, total);
            failures++;
            break;
        }
    }
    atomic_store(&g_persist, 0);
    printf("  %-22s %s %6ld allocations, %5d runs: %d OOM, %d recovered\n", s->name,
           persist ? "persist" : "once   ", total, runs, oom, recovered);
    return failures;
}

int main(int argc, char **argv) {
    bool persist_only = (argc > 1 && strcmp(argv[1], "persist") == 0);
    const char *only = getenv("LX_FAULT_ONLY");
    const char *v = getenv("LX_FAULT_VERBOSE");
    const char *stride_env = getenv("LX_FAULT_STRIDE");
    long stride = stride_env && atol(stride_env) > 0 ? atol(stride_env) : 1;
    bool verbose = v && *v == '1';
    const char *p = getenv("LX_FAULT_PERSIST");
    bool persist = persist_only || (p && *p == '1');
    lx_set_num_threads(2);
    g_model = lx_model_load(t_fixture("tiny-llama-f32"));
    CHECK_MSG(g_model != NULL, "%s", lx_error_message());
    if (!g_model) return test_finish();
    bool chat = make_chat_folder();
    CHECK_MSG(chat, "cannot make the chat-template model folder %s", g_chat_dir);
    double t0 = t_now_s();
    for (size_t i = 0; i < sizeof g_scenarios / sizeof g_scenarios[0]; i++) {
        const scenario *s = &g_scenarios[i];
        if (only && *only && strcmp(only, s->name) != 0) continue;
        if (s->fn == sc_chat_template && !chat) continue;
        double t = t_now_s();
        int f = 0;
        if (!persist_only) f += run_scenario(s, false, verbose, stride);
        if (persist) f += run_scenario(s, true, verbose, stride);
        t_checks++;
        if (f) t_failures++;
        printf("%-48s %s (%.1f s)\n", s->name, f ? "FAILED" : "ok", t_now_s() - t);
        fflush(stdout);
    }
    printf("fault injection: %.1f s\n", t_now_s() - t0);
    remove_chat_folder();
    lx_model_free(g_model);
    lx_synchronize();
    lx_sweep();
    return test_finish();
}
