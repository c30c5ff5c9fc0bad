/*
 * test_model_smollm2.c -- the real model (SmolLM2-135M-Instruct Q4_1 GGUF, env LX_TEST_GGUF)
 * against Hugging Face transformers in float32 over the dequantized GGUF
 * (tests/fixtures/smollm2: reference.safetensors, prompts.json, README.md), through the public
 * API only (lx_model_load, lx_session_new, lx_session_generate with on_token / on_logits).
 * Skipped (77) when the GGUF is absent.
 *
 * For each of the six prompts:
 *  - free-running greedy (EOS not ignored, at most 32 tokens as transformers' generate): the
 *    ids equal output_ids, a stopping EOS included and stopped_by_eos set. A difference is
 *    excused only as the README says: at a generated position whose reference top-1/top-2
 *    margin is below 1e-2 (float32 noise: either token is right there) and where lx chose the
 *    reference's second token; the comparison then stops for that prompt (the contexts
 *    differ). The test prints how many were excused (the README expects at most one: prompt 0,
 *    generated index 15, margin 0.0041).
 *  - teacher-forced (prompt_ids + output_ids as one prompt, every row's logits via on_logits):
 *    every row's logits at the reference's top-20 ids, and the row's logsumexp, agree with
 *    transformers to LOGIT_TOL of the row's largest |logit|; row P-1 is compared in full
 *    (last_logits); the argmax of each row predicting an output token is that token (same
 *    margin excuse, counted). The longest prompt (104 tokens) again in prefill chunks of 16.
 *    The free-running rows are compared too as long as the ids agree
 *    (they come from the decode path: one position per forward, KV cache).
 *
 * LOGIT_TOL = 3e-5 of the row's largest |logit| (about 1e-3 absolute here: rows peak at
 * 35..43). Why: lx and transformers both run float32 over the same float32 weights (Q4_1/Q8_0
 * dequantize exactly), in other summation orders; the README measured transformers' own
 * float32 error against a float64 pass at <= 2e-6 of the largest |logit| (<= 8e-5 absolute),
 * so two float32 implementations should differ by ~4e-6; 3e-5 leaves ~8x for lx's blocked
 * quantized matmuls and long rows (49152-way head, 576-wide dots) while an actual bug (rope,
 * eps, scale, a dropped bias: README) moves logits by > 1e-4 relative. The largest errors seen
 * are printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lx.h"
#include "test_util.h"

#define LOGIT_TOL 3e-5
#define MARGIN_NOISE 1e-2
#define TOPK 20
#define N_PROMPTS 6

typedef struct {
    int32_t ids[512];
    int n;
    float *rows;
    size_t n_rows, cap_rows;
    int vocab;
} collect;

static bool on_token(void *u, int32_t id, const char *text, size_t len) {
    (void)text;
    (void)len;
    collect *c = u;
    if (id >= 0 && c->n < 512) c->ids[c->n++] = id;
    return true;
}

static void on_logits(void *u, const float *rows, int n, int vocab) {
    collect *c = u;
    c->vocab = vocab;
    t_rows_append(&c->rows, &c->n_rows, &c->cap_rows, rows, n, vocab);
}

typedef struct {
    const int32_t *prompt, *output, *top_idx;
    const float *top_val, *lse, *margin, *last_logits;
    int P, G, N;
} ref_prompt;

static const void *get(lx_weights *w, int k, const char *what, lx_dtype dt, size_t *n) {
    char name[64];
    snprintf(name, sizeof name, "p%d.%s", k, what);
    lx_array a = lx_weights_get(w, name);
    if (lx_is_null(a) || lx_dtype_of(a) != dt) {
        fprintf(stderr, "reference: %s missing or not of the expected dtype (%s)\n", name,
                lx_error_message());
        return NULL;
    }
    *n = lx_size(a);
    return lx_data(a);
}

static bool load_ref(lx_weights *w, int k, ref_prompt *r) {
    size_t n[7] = {0};
    r->prompt = get(w, k, "prompt_ids", LX_INT32, &n[0]);
    r->output = get(w, k, "output_ids", LX_INT32, &n[1]);
    r->top_idx = get(w, k, "top_idx", LX_INT32, &n[2]);
    r->top_val = get(w, k, "top_val", LX_FLOAT32, &n[3]);
    r->lse = get(w, k, "lse", LX_FLOAT32, &n[4]);
    r->margin = get(w, k, "margin", LX_FLOAT32, &n[5]);
    r->last_logits = get(w, k, "last_logits", LX_FLOAT32, &n[6]);
    if (!r->prompt || !r->output || !r->top_idx || !r->top_val || !r->lse || !r->margin ||
        !r->last_logits)
        return false;
    r->P = (int)n[0];
    r->G = (int)n[1];
    r->N = r->P + r->G;
    return n[2] == (size_t)r->N * TOPK && n[3] == (size_t)r->N * TOPK && n[4] == (size_t)r->N &&
           n[5] == (size_t)r->N;
}

/* the errors of one row of lx's logits against reference row t, relative to the row's largest
 * |logit| (lx's full row: the reference keeps only its top 20) */
typedef struct {
    double top, lse;
} row_err;

static row_err compare_row(const float *row, int vocab, const ref_prompt *r, int t) {
    double mx = 0, big = -INFINITY;
    for (int i = 0; i < vocab; i++) {
        mx = fmax(mx, fabs((double)row[i]));
        big = fmax(big, (double)row[i]);
    }
    double s = 0;
    for (int i = 0; i < vocab; i++) s += exp((double)row[i] - big);
    double lse = big + log(s);
    row_err e = {0, fabs(lse - (double)r->lse[t]) / mx};
    for (int j = 0; j < TOPK; j++) {
        int id = r->top_idx[(size_t)t * TOPK + j];
        double d = fabs((double)row[id] - (double)r->top_val[(size_t)t * TOPK + j]);
        e.top = fmax(e.top, d / mx);
    }
    return e;
}

static int argmax(const float *row, int n) {
    int a = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[a]) a = i;
    return a;
}

static double worst_top = 0, worst_lse = 0, worst_last = 0, worst_free = 0;
static int excused_free = 0, excused_teacher = 0;

/* free-running greedy as transformers' generate (max 32 new tokens, stop at EOS) */
static void free_running(lx_model *m, const ref_prompt *r, int k) {
    lx_session *s = lx_session_new(m, 0);
    CHECK_MSG(s != NULL, "%s", lx_error_message());
    if (!s) return;
    collect c = {0};
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = 32;
    p.on_token = on_token;
    p.on_logits = on_logits;
    p.user = &c;
    lx_gen_stats st;
    double t0 = t_now_s();
    CHECK_OK(lx_session_generate(s, r->prompt, r->P, &p, &st));
    double dt = t_now_s() - t0;
    bool eos_ref = r->G > 0 && r->output[r->G - 1] == 2 && r->G < 32;
    int diverged = -1;
    for (int i = 0; i < c.n && i < r->G; i++) {
        if (c.ids[i] == r->output[i]) continue;
        int t = r->P - 1 + i;
        bool excuse = r->margin[t] < MARGIN_NOISE && c.ids[i] == r->top_idx[(size_t)t * TOPK + 1];
        CHECK_MSG(excuse, "prompt %d: greedy token %d is %d, transformers gives %d (margin %.4g)",
                  k, i, c.ids[i], r->output[i], (double)r->margin[t]);
        if (excuse) {
            excused_free++;
            printf("  prompt %d: generated token %d excused (lx %d, transformers %d, the "
                   "reference's second; margin %.4g < %g); comparison stops there\n",
                   k, i, c.ids[i], r->output[i], (double)r->margin[t], MARGIN_NOISE);
        }
        diverged = i;
        break;
    }
    if (diverged < 0) {
        CHECK_MSG(c.n == r->G, "prompt %d: %d tokens, transformers gives %d", k, c.n, r->G);
        CHECK(st.generated_tokens == c.n);
        CHECK_MSG(st.stopped_by_eos == eos_ref, "prompt %d: stopped_by_eos %d", k,
                  st.stopped_by_eos);
    }
    CHECK(st.prompt_tokens == r->P && st.reused_tokens == 0);
    /* rows: the prompt's P, then one per generated token; comparable while the context is
     * the reference's: rows 0 .. P-1+diverged (that row predicts the diverging token) */
    CHECK_MSG(c.n_rows == (size_t)(r->P + c.n), "prompt %d: %zu logits rows, %d expected", k,
              c.n_rows, r->P + c.n);
    int last_row = diverged >= 0 ? r->P - 1 + diverged : r->N - 1;
    double worst = 0;
    for (int t = 0; t <= last_row && (size_t)t < c.n_rows; t++) {
        row_err e = compare_row(c.rows + (size_t)t * c.vocab, c.vocab, r, t);
        worst = fmax(worst, fmax(e.top, e.lse));
        CHECK_MSG(e.top <= LOGIT_TOL && e.lse <= LOGIT_TOL,
                  "prompt %d free-running row %d: top-20 error %.3g, lse error %.3g of the "
                  "largest |logit| (bound %g)", k, t, e.top, e.lse, LOGIT_TOL);
    }
    worst_free = fmax(worst_free, worst);
    printf("  prompt %d: free-running %d tokens (%s) in %.2f s, %.1f tok/s decode; logits rows "
           "0..%d largest error %.3g\n", k, c.n, st.stopped_by_eos ? "eos" : "length", dt,
           st.decode_tok_s, last_row, worst);
    free(c.rows);
    lx_session_free(s);
}

/* prompt_ids + output_ids as one prompt: every row's logits */
static void teacher_forced(lx_model *m, const ref_prompt *r, int k, int chunk) {
    lx_session *s = lx_session_new(m, 0);
    CHECK_MSG(s != NULL, "%s", lx_error_message());
    if (!s) return;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)r->N);
    memcpy(ids, r->prompt, sizeof(int32_t) * (size_t)r->P);
    memcpy(ids + r->P, r->output, sizeof(int32_t) * (size_t)r->G);
    collect c = {0};
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = 1;
    p.ignore_eos = true;
    p.on_logits = on_logits;
    p.prefill_chunk = chunk;
    p.user = &c;
    lx_gen_stats st;
    CHECK_OK(lx_session_generate(s, ids, r->N, &p, &st));
    /* N prefill rows, then the generated token's */
    CHECK_MSG(c.n_rows == (size_t)r->N + 1, "prompt %d: %zu rows, %d expected", k, c.n_rows,
              r->N + 1);
    CHECK(c.vocab == 49152);
    double wt = 0, wl = 0;
    int wt_row = -1;
    for (int t = 0; t < r->N && (size_t)t < c.n_rows; t++) {
        const float *row = c.rows + (size_t)t * c.vocab;
        row_err e = compare_row(row, c.vocab, r, t);
        if (e.top > wt) {
            wt = e.top;
            wt_row = t;
        }
        wl = fmax(wl, e.lse);
        CHECK_MSG(e.top <= LOGIT_TOL, "prompt %d row %d: logits at the top-20 ids differ by "
                  "%.3g of the largest |logit| (bound %g)", k, t, e.top, LOGIT_TOL);
        CHECK_MSG(e.lse <= LOGIT_TOL, "prompt %d row %d: logsumexp differs by %.3g of the "
                  "largest |logit| (bound %g)", k, t, e.lse, LOGIT_TOL);
        if (t >= r->P - 1 && t < r->N - 1) { /* predicts output token t - P + 1 */
            int want = r->output[t - r->P + 1], got = argmax(row, c.vocab);
            if (got != want) {
                bool excuse = r->margin[t] < MARGIN_NOISE &&
                              got == r->top_idx[(size_t)t * TOPK + 1];
                CHECK_MSG(excuse, "prompt %d row %d: teacher-forced top-1 %d, transformers %d "
                          "(margin %.4g)", k, t, got, want, (double)r->margin[t]);
                if (excuse) excused_teacher++;
            }
        }
        if (t == r->P - 1) {
            double mx = 0, d = 0;
            for (int i = 0; i < c.vocab; i++) {
                mx = fmax(mx, fabs((double)r->last_logits[i]));
                d = fmax(d, fabs((double)row[i] - (double)r->last_logits[i]));
            }
            worst_last = fmax(worst_last, d / mx);
            CHECK_MSG(d / mx <= LOGIT_TOL, "prompt %d: the full row %d differs by %.3g of its "
                      "largest |logit| (%.3g absolute; bound %g)", k, t, d / mx, d, LOGIT_TOL);
        }
    }
    worst_top = fmax(worst_top, wt);
    worst_lse = fmax(worst_lse, wl);
    printf("  prompt %d: teacher-forced %d rows (prefill chunks of %d): top-20 largest error "
           "%.3g (row %d), lse %.3g\n", k, r->N, chunk, wt, wt_row, wl);
    free(c.rows);
    free(ids);
    lx_session_free(s);
}

int main(void) {
    const char *path = t_real_model();
    if (!path) return 77;
    const char *repo = getenv("LX_REPO");
    char refpath[1200];
    snprintf(refpath, sizeof refpath, "%s/tests/fixtures/smollm2/reference.safetensors",
             repo ? repo : ".");
    lx_weights *w = lx_load(refpath);
    CHECK_MSG(w != NULL, "%s", lx_error_message());
    double t0 = t_now_s();
    lx_model *m = lx_model_load(path);
    CHECK_MSG(m != NULL, "%s: %s", path, lx_error_message());
    if (!w || !m) {
        lx_model_free(m);
        lx_weights_free(w);
        return test_finish();
    }
    printf("  %s (loaded in %.2f s)\n", lx_model_describe(m), t_now_s() - t0);
    CHECK(lx_model_vocab_size(m) == 49152);
    int32_t eos[8];
    int n_eos = lx_model_eos_ids(m, eos, 8);
    CHECK_MSG(n_eos >= 1 && eos[0] == 2, "%d eos ids, first %d", n_eos, n_eos > 0 ? eos[0] : -1);
    for (int k = 0; k < N_PROMPTS; k++) {
        ref_prompt r;
        CHECK_MSG(load_ref(w, k, &r), "prompt %d: reference tensors", k);
        if (t_failures) break;
        free_running(m, &r, k);
        teacher_forced(m, &r, k, 512);
        if (k == N_PROMPTS - 1) teacher_forced(m, &r, k, 16); /* 104 tokens: 7 chunks */
        lx_sweep();
    }
    printf("  largest errors (of the row's largest |logit|; bound %g): teacher-forced top-20 "
           "%.3g, logsumexp %.3g, full row P-1 %.3g; free-running %.3g\n",
           LOGIT_TOL, worst_top, worst_lse, worst_last, worst_free);
    printf("  greedy positions excused (margin < %g, lx took the reference's second): %d "
           "free-running, %d teacher-forced top-1\n", MARGIN_NOISE, excused_free,
           excused_teacher);
    CHECK_MSG(excused_free <= 1 && excused_teacher <= 1, "more near-ties than the README's one");
    lx_model_free(m);
    lx_weights_free(w);
    lx_sweep();
    return test_finish();
}
