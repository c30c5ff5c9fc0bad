/*
 * test_model.c -- the Llama-family generator on the tiny fixture models against Hugging Face
 * transformers (../shared/fixtures/<model>/reference.safetensors: prompt ids, greedy output
 * ids, float32 logits of every position), plus chunked prefill, cache reuse across calls, the
 * memory of a long run, and bad model folders.
 *
 * Tolerance: 1e-4 of the row's largest logit for both (transformers and lx sum in different
 * orders; observed ~2e-6). The bfloat16 fixture is computed in float32 over bfloat16 weights
 * by both, with rope frequencies rounded to bfloat16 (model_load.c says why); the issue's
 * 2e-2 for bfloat16 assumed bfloat16 activations, which lx does not use.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lx.h"
#include "models/kv_cache.h"
#include "test_util.h"


typedef struct {
    int32_t ids[4096];
    int n;
    float *rows;
    size_t n_rows, cap_rows;
    int vocab;
    size_t tracked[4096], active[4096];
    const void *kv_ptr[4096]; /* layer 0's key buffer after each step */
    const lx_kv_cache *kv;
} collect;

static bool on_token(void *u, int32_t id, const char *text, size_t len) {
    collect *c = u;
    if (id >= 0 && c->n < 4096) {
        lx_synchronize(); /* the step in flight finishes: its memory is then what it keeps */
        c->tracked[c->n] = lx_tracked_count();
        c->active[c->n] = lx_active_memory();
        c->kv_ptr[c->n] = c->kv ? lx_data(c->kv->k[0]) : NULL;
        c->ids[c->n++] = id;
    }
    return true;
}

static void on_logits(void *u, const float *rows, int n, int vocab) {
    collect *c = u;
    c->vocab = vocab;
    t_rows_append(&c->rows, &c->n_rows, &c->cap_rows, rows, n, vocab);
}

typedef struct {
    lx_weights *w;
    const int32_t *prompt, *output;
    int n_prompt, n_output;
    const float *logits;
    int rows, vocab;
} reference;

static bool load_reference(const char *dir, reference *r) {
    char path[1200];
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    memset(r, 0, sizeof *r);
    r->w = lx_load(path);
    if (!r->w) return false;
    lx_array p = lx_astype(lx_weights_get(r->w, "prompt_ids"), LX_INT32);
    lx_array o = lx_astype(lx_weights_get(r->w, "output_ids"), LX_INT32);
    lx_array l = lx_weights_get(r->w, "logits");
    lx_keep(p, o);
    r->prompt = lx_data(p);
    r->output = lx_data(o);
    r->logits = lx_data(l);
    r->n_prompt = (int)lx_size(p);
    r->n_output = (int)lx_size(o);
    r->rows = lx_dim(l, 0);
    r->vocab = lx_dim(l, 1);
    return r->prompt && r->output && r->logits;
}


static void run_fixture(const char *name, double tol) {
    const char *dir = t_fixture(name);
    reference ref;
    if (!load_reference(dir, &ref)) {
        CHECK_MSG(0, "%s: reference: %s", name, lx_error_message());
        return;
    }
    lx_model *m = lx_model_load(dir);
    CHECK_MSG(m != NULL, "%s: %s", name, lx_error_message());
    if (!m) return;
    printf("  %s: %s\n", name, lx_model_describe(m));
    CHECK(lx_model_vocab_size(m) == ref.vocab);
    /* greedy, every position's logits, prefilled whole and in chunks of 7 */
    int chunks[2] = {512, 7};
    for (int c = 0; c < 2; c++) {
        lx_session *s = lx_session_new(m, 0);
        collect got = {0};
        lx_gen_params p = lx_gen_params_default();
        p.max_tokens = ref.n_output;
        p.ignore_eos = true;
        p.prefill_chunk = chunks[c];
        p.on_token = on_token;
        p.on_logits = on_logits;
        p.user = &got;
        lx_gen_stats st;
        CHECK_OK(lx_session_generate(s, ref.prompt, ref.n_prompt, &p, &st));
        CHECK(st.prompt_tokens == ref.n_prompt && st.generated_tokens == ref.n_output);
        CHECK_MSG(got.n == ref.n_output, "%s: %d tokens, %d expected", name, got.n, ref.n_output);
        int first_diff = -1;
        for (int i = 0; i < got.n && i < ref.n_output; i++)
            if (got.ids[i] != ref.output[i] && first_diff < 0) first_diff = i;
        CHECK_MSG(first_diff < 0, "%s (chunk %d): greedy token %d is %d, transformers gives %d",
                  name, chunks[c], first_diff, first_diff >= 0 ? got.ids[first_diff] : 0,
                  first_diff >= 0 ? ref.output[first_diff] : 0);
        CHECK_MSG(got.n_rows == (size_t)ref.rows, "%s: %zu logits rows, %d expected", name,
                  got.n_rows, ref.rows);
        double worst = 0;
        int worst_row = -1;
        for (int r = 0; r < ref.rows && (size_t)r < got.n_rows; r++) {
            double e = t_row_rel_err(got.rows + (size_t)r * ref.vocab,
                                   ref.logits + (size_t)r * ref.vocab, ref.vocab);
            if (e > worst) {
                worst = e;
                worst_row = r;
            }
        }
        if (getenv("LX_TEST_VERBOSE"))
            for (int r = 0; r < ref.rows && (size_t)r < got.n_rows; r++) {
                const float *g = got.rows + (size_t)r * ref.vocab, *w = ref.logits + (size_t)r * ref.vocab;
                int a = 0, b = -1;
                for (int i = 1; i < ref.vocab; i++) if (w[i] > w[a]) a = i;
                for (int i = 0; i < ref.vocab; i++) if (i != a && (b < 0 || w[i] > w[b])) b = i;
                printf("    row %d err %.3g ref top %d %.4f second %d %.4f got %.4f %.4f\n", r,
                       t_row_rel_err(g, w, ref.vocab), a, w[a], b, w[b], g[a], g[b]);
            }
        printf("  %s chunk %d: largest logits error %.3g (row %d), bound %.3g\n", name,
               chunks[c], worst, worst_row, tol);
        CHECK_MSG(worst <= tol, "%s: logits row %d differs by %.3g of its largest value (bound "
                  "%.3g)", name, worst_row, worst, tol);
        free(got.rows);
        lx_session_free(s);
    }
    lx_model_free(m);
    lx_weights_free(ref.w);
    lx_sweep();
}

static void test_tiny_llama(void) { run_fixture("tiny-llama-f32", 1e-4); }
static void test_tiny_qwen3(void) { run_fixture("tiny-qwen3-bf16", 1e-4); }

/* A second call whose prompt extends the first call's context reuses the cached prefix and
 * gives what a fresh session gives. */
static void test_cache_reuse(void) {
    lx_model *m = lx_model_load(t_fixture("tiny-llama-f32"));
    CHECK(m != NULL);
    if (!m) return;
    int32_t prompt[12] = {54, 489, 223, 83, 87, 281, 77, 294, 319, 89, 80, 278};
    lx_session *s = lx_session_new(m, 0);
    collect a = {0};
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = 10;
    p.ignore_eos = true;
    p.on_token = on_token;
    p.user = &a;
    lx_gen_stats st;
    CHECK_OK(lx_session_generate(s, prompt, 12, &p, &st));
    const int32_t *ctx;
    int n_ctx = lx_session_tokens(s, &ctx);
    CHECK(n_ctx == 22);
    int32_t second[40];
    memcpy(second, ctx, sizeof(int32_t) * (size_t)n_ctx);
    second[n_ctx] = 91;
    second[n_ctx + 1] = 303;
    collect b = {0};
    p.user = &b;
    CHECK_OK(lx_session_generate(s, second, n_ctx + 2, &p, &st));
    CHECK_MSG(st.reused_tokens == 21, "reused %d tokens, 21 expected (the cached context "
              "less its last token, whose keys were not computed)", st.reused_tokens);
    lx_session *fresh = lx_session_new(m, 0);
    collect c = {0};
    p.user = &c;
    CHECK_OK(lx_session_generate(fresh, second, n_ctx + 2, &p, &st));
    CHECK(st.reused_tokens == 0);
    CHECK(b.n == c.n && memcmp(b.ids, c.ids, sizeof(int32_t) * (size_t)b.n) == 0);
    lx_session_free(fresh);
    lx_session_free(s);
    lx_model_free(m);
    lx_sweep();
}

/* 600 greedy steps: the tracked count is the same after every step, and the active memory
 * grows only when the KV cache takes another step of positions. */
static void test_memory_flat(void) {
    lx_model *m = lx_model_load(t_fixture("tiny-llama-f32"));
    CHECK(m != NULL);
    if (!m) return;
    int32_t prompt[4] = {54, 489, 223, 83};
    lx_session *s = lx_session_new(m, 1024);
    collect *c = calloc(1, sizeof *c);
    c->kv = lx_session_kv(s);
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = 600;
    p.ignore_eos = true;
    p.on_token = on_token;
    p.user = c;
    lx_gen_stats st;
    CHECK_OK(lx_session_generate(s, prompt, 4, &p, &st));
    CHECK(c->n == 600);
    /* per position: 4 layers x 2 (k, v) x 2 heads x 32 x 4 bytes; steps of 256 positions */
    size_t kv_step = (size_t)4 * 2 * 2 * 32 * 4 * 256;
    int growths = 0;
    for (int i = 11; i < c->n; i++) {
        CHECK_MSG(c->tracked[i] == c->tracked[10], "tracked %zu at step %d, %zu at step 10",
                  c->tracked[i], i, c->tracked[10]);
        if (c->active[i] != c->active[i - 1]) {
            growths++;
            CHECK_MSG(c->active[i] - c->active[i - 1] == kv_step,
                      "step %d: active memory %zu -> %zu (a KV step is %zu)", i,
                      c->active[i - 1], c->active[i], kv_step);
        }
    }
    CHECK_MSG(growths <= 2, "active memory changed %d times over 600 steps", growths);
    /* the cache is written in place: between growths its buffer stays where it is, so a step
     * moves one position's keys and values, not the cache */
    int moves = 0;
    for (int i = 11; i < c->n; i++) moves += c->kv_ptr[i] != c->kv_ptr[i - 1];
    CHECK_MSG(moves <= 2, "layer 0's key buffer moved %d times over 600 steps (growths: %d)",
              moves, growths);
    free(c);
    lx_session_free(s);
    lx_model_free(m);
    lx_sweep();
}

static void test_long_prompt(void) {
    lx_model *m = lx_model_load(t_fixture("tiny-llama-f32"));
    CHECK(m != NULL);
    if (!m) return;
    lx_session *s = lx_session_new(m, 16);
    int32_t prompt[17] = {0};
    lx_clear_error();
    CHECK(lx_session_generate(s, prompt, 17, NULL, NULL) == LX_E_ARG);
    CHECK(strstr(lx_error_message(), "17 tokens") != NULL);
    lx_clear_error();
    prompt[3] = 512; /* outside the vocabulary */
    CHECK(lx_session_generate(s, prompt, 8, NULL, NULL) == LX_E_ARG);
    lx_clear_error();
    lx_session_free(s);
    lx_model_free(m);
    lx_sweep();
}

/* ---- bad model folders ---------------------------------------------------------------------- */

static char g_tmp[1024];

static const char *tmp_dir(const char *name) {
    const char *root = getenv("LX_TEST_TMP");
    snprintf(g_tmp, sizeof g_tmp, "%s/model_%s", root ? root : "/tmp", name);
    mkdir(g_tmp, 0755);
    return g_tmp;
}

static void copy_file(const char *from, const char *to, size_t limit) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n, total = 0;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0 && total < limit) {
        if (total + n > limit) n = limit - total;
        fwrite(buf, 1, n, b);
        total += n;
    }
    if (a) fclose(a);
    if (b) fclose(b);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void expect_load_error(const char *dir, lx_status want, const char *needle) {
    lx_clear_error();
    lx_model *m = lx_model_load(dir);
    CHECK_MSG(m == NULL, "%s loaded", dir);
    lx_model_free(m);
    CHECK_MSG(lx_error() == want, "%s: status %s, %s expected (%s)", dir,
              lx_status_string(lx_error()), lx_status_string(want), lx_error_message());
    CHECK_MSG(strstr(lx_error_message(), needle) != NULL, "%s: '%s' does not name '%s'", dir,
              lx_error_message(), needle);
    lx_clear_error();
    lx_sweep();
}

static void test_bad_folders(void) {
    char src[1200], dst[1200];
    const char *good = t_fixture("tiny-llama-f32");
    char good_dir[1024];
    snprintf(good_dir, sizeof good_dir, "%s", good);
    expect_load_error("/nonexistent/model", LX_E_ARG, "/nonexistent/model");

    const char *d = tmp_dir("no_weights");
    snprintf(src, sizeof src, "%s/config.json", good_dir);
    snprintf(dst, sizeof dst, "%s/config.json", d);
    copy_file(src, dst, SIZE_MAX);
    expect_load_error(d, LX_E_IO, "model.safetensors");

    d = tmp_dir("no_config");
    expect_load_error(d, LX_E_IO, "config.json");

    d = tmp_dir("unknown_arch");
    snprintf(dst, sizeof dst, "%s/config.json", d);
    write_text(dst, "{\"model_type\": \"gpt2\", \"num_hidden_layers\": 2}");
    expect_load_error(d, LX_E_UNSUPPORTED, "gpt2");

    d = tmp_dir("bad_json");
    snprintf(dst, sizeof dst, "%s/config.json", d);
    write_text(dst, "{\"model_type\": \"llama\", \"num_hidden_layers\": ");
    expect_load_error(d, LX_E_FORMAT, "config.json");

    /* truncated weights */
    d = tmp_dir("truncated");
    snprintf(src, sizeof src, "%s/config.json", good_dir);
    snprintf(dst, sizeof dst, "%s/config.json", d);
    copy_file(src, dst, SIZE_MAX);
    snprintf(src, sizeof src, "%s/model.safetensors", good_dir);
    snprintf(dst, sizeof dst, "%s/model.safetensors", d);
    copy_file(src, dst, 100000);
    expect_load_error(d, LX_E_FORMAT, "model.safetensors");

    /* a weight of the wrong shape: the fixture's weights with one layer's q_proj cut */
    d = tmp_dir("wrong_shape");
    snprintf(src, sizeof src, "%s/config.json", good_dir);
    snprintf(dst, sizeof dst, "%s/config.json", d);
    copy_file(src, dst, SIZE_MAX);
    snprintf(src, sizeof src, "%s/tokenizer.json", good_dir);
    snprintf(dst, sizeof dst, "%s/tokenizer.json", d);
    copy_file(src, dst, SIZE_MAX);
    snprintf(src, sizeof src, "%s/model.safetensors", good_dir);
    lx_weights *w = lx_load(src);
    CHECK(w != NULL);
    if (w) {
        int n = lx_weights_count(w);
        const char **names = calloc((size_t)n, sizeof *names);
        lx_array *arrays = calloc((size_t)n, sizeof *arrays);
        for (int i = 0; i < n; i++) {
            names[i] = lx_weights_name(w, i);
            arrays[i] = lx_weights_get(w, names[i]);
            if (!strcmp(names[i], "model.layers.2.self_attn.q_proj.weight"))
                arrays[i] = lx_slice(arrays[i], (int[]){0, 0}, (int[]){100, 128}, NULL, 2);
        }
        snprintf(dst, sizeof dst, "%s/model.safetensors", d);
        CHECK_OK(lx_save_safetensors(dst, names, arrays, n));
        free(names);
        free(arrays);
        lx_weights_free(w);
        expect_load_error(d, LX_E_FORMAT, "model.layers.2.self_attn.q_proj.weight");
        /* and without the tokenizer */
        snprintf(dst, sizeof dst, "%s/tokenizer.json", d);
        remove(dst);
    }
    lx_sweep();
}

/* ---- MLX affine-quantized folders -------------------------------------------------------------- */

/* The tiny llama's linears and embedding quantized with lx_quantize into an MLX-community style
 * folder (config.json's "quantization", .weight/.scales/.biases), next to a float32 folder of
 * the same weights dequantized: both must give the same greedy ids and logits within float32
 * noise, which checks the quantized path (names, group size and bits from the config, the
 * quantized embedding rows) against the plain one. */
static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

static bool quantizable(const char *name) {
    size_t n = strlen(name);
    return (n > 12 && !strcmp(name + n - 12, "_proj.weight")) ||
           !strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight");
}

static void run_mlx_quantized(int bits) {
    char src[1200], dst[1200], qdir[1024], ddir[1024], name[40];
    const char *good = t_fixture("tiny-llama-f32");
    char good_dir[1024];
    snprintf(good_dir, sizeof good_dir, "%s", good);
    snprintf(name, sizeof name, "mlx_q%d", bits);
    snprintf(qdir, sizeof qdir, "%s", tmp_dir(name));
    snprintf(name, sizeof name, "mlx_q%d_deq", bits);
    snprintf(ddir, sizeof ddir, "%s", tmp_dir(name));
    snprintf(src, sizeof src, "%s/config.json", good_dir);
    char *cfg = read_all(src);
    CHECK(cfg && cfg[0] == '{');
    if (!cfg) return;
    char quant[96];
    snprintf(quant, sizeof quant, "{\n  \"quantization\": {\"group_size\": 32, \"bits\": %d},", bits);
    snprintf(dst, sizeof dst, "%s/config.json", qdir);
    FILE *f = fopen(dst, "wb");
    if (f) {
        fputs(quant, f);
        fputs(cfg + 1, f);
        fclose(f);
    }
    snprintf(dst, sizeof dst, "%s/config.json", ddir);
    write_text(dst, cfg);
    free(cfg);
    const char *dirs[2] = {qdir, ddir};
    for (int d = 0; d < 2; d++) {
        snprintf(src, sizeof src, "%s/tokenizer.json", good_dir);
        snprintf(dst, sizeof dst, "%s/tokenizer.json", dirs[d]);
        copy_file(src, dst, SIZE_MAX);
    }
    snprintf(src, sizeof src, "%s/model.safetensors", good_dir);
    lx_weights *w = lx_load(src);
    CHECK(w != NULL);
    if (!w) return;
    int n = lx_weights_count(w);
    const char **qn = calloc((size_t)n * 3, sizeof *qn), **dn = calloc((size_t)n, sizeof *dn);
    char (*names)[2][160] = calloc((size_t)n, sizeof *names);
    lx_array *qa = calloc((size_t)n * 3, sizeof *qa), *da = calloc((size_t)n, sizeof *da);
    int nq = 0, quantized = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = lx_weights_name(w, i);
        lx_array a = lx_weights_get(w, nm);
        dn[i] = nm;
        if (!quantizable(nm)) {
            qn[nq] = nm;
            qa[nq++] = a;
            da[i] = a;
            continue;
        }
        lx_array wq, sc, bi;
        CHECK_OK(lx_quantize(a, 32, bits, &wq, &sc, &bi));
        size_t len = strlen(nm) - strlen(".weight");
        snprintf(names[i][0], 160, "%.*s.scales", (int)len, nm);
        snprintf(names[i][1], 160, "%.*s.biases", (int)len, nm);
        qn[nq] = nm;
        qa[nq++] = wq;
        qn[nq] = names[i][0];
        qa[nq++] = sc;
        qn[nq] = names[i][1];
        qa[nq++] = bi;
        da[i] = lx_dequantize(wq, sc, bi, 32, bits);
        quantized++;
    }
    CHECK(quantized == 4 * 7 + 2);
    snprintf(dst, sizeof dst, "%s/model.safetensors", qdir);
    CHECK_OK(lx_save_safetensors(dst, qn, qa, nq));
    snprintf(dst, sizeof dst, "%s/model.safetensors", ddir);
    CHECK_OK(lx_save_safetensors(dst, dn, da, n));
    free(qn);
    free(dn);
    free(qa);
    free(da);
    free(names);
    lx_weights_free(w);
    lx_sweep();

    collect *got[2];
    for (int d = 0; d < 2; d++) {
        got[d] = calloc(1, sizeof(collect));
        lx_model *m = lx_model_load(dirs[d]);
        CHECK_MSG(m != NULL, "%s: %s", dirs[d], lx_error_message());
        if (!m) return;
        if (d == 0) {
            printf("  %s\n", lx_model_describe(m));
            CHECK(strstr(lx_model_describe(m), bits == 4 ? "4-bit (group 32)" : "8-bit (group 32)"));
        }
        int32_t prompt[12] = {54, 489, 223, 83, 87, 281, 77, 294, 319, 89, 80, 278};
        lx_session *s = lx_session_new(m, 0);
        lx_gen_params p = lx_gen_params_default();
        p.max_tokens = 20;
        p.ignore_eos = true;
        p.on_token = on_token;
        p.on_logits = on_logits;
        p.user = got[d];
        CHECK_OK(lx_session_generate(s, prompt, 12, &p, NULL));
        lx_session_free(s);
        lx_model_free(m);
        lx_sweep();
    }
    CHECK(got[0]->n == 20 && got[1]->n == 20 &&
          memcmp(got[0]->ids, got[1]->ids, sizeof(int32_t) * 20) == 0);
    CHECK(got[0]->n_rows == got[1]->n_rows && got[0]->n_rows == 32);
    double worst = 0;
    for (size_t r = 0; r < got[0]->n_rows && r < got[1]->n_rows; r++)
        worst = fmax(worst, t_row_rel_err(got[0]->rows + r * 512, got[1]->rows + r * 512, 512));
    printf("  %d-bit: quantized vs dequantized float32 folder: largest logits error %.3g\n", bits,
           worst);
    CHECK_MSG(worst <= 1e-4, "%d-bit: logits differ by %.3g of the row's largest", bits, worst);
    for (int d = 0; d < 2; d++) {
        free(got[d]->rows);
        free(got[d]);
    }
}

static void test_mlx_quantized(void) {
    run_mlx_quantized(4);
    run_mlx_quantized(8);
}

int main(void) {
    RUN_TEST(test_tiny_llama);
    RUN_TEST(test_tiny_qwen3);
    RUN_TEST(test_cache_reuse);
    RUN_TEST(test_memory_flat);
    RUN_TEST(test_long_prompt);
    RUN_TEST(test_bad_folders);
    RUN_TEST(test_mlx_quantized);
    return test_finish();
}
