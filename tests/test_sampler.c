/*
 * test_sampler.c -- the models layer's sampler (src/models/sampler.c) against float64
 * references computed here.
 *
 * Distributions: for fixed logits, N = 100000 draws through lx_sampler_next (one call each,
 * the real path: compiled closure, key split per step) are compared with the expected
 * filtered, tempered softmax (penalty, temperature, top-k, top-p, min-p in float64, as
 * sampler.h defines them) by Pearson's chi-square test. Bins with an expected count below 5
 * are merged; the degrees of freedom are (bins - 1); the threshold is the chi-square quantile
 * at significance 0.001 (Wilson-Hilferty: df (1 - 2/(9 df) + 3.0902 sqrt(2/(9 df)))^3, within
 * 0.5% of the exact quantile for df >= 3). The draws are deterministic (fixed seeds), so the
 * test cannot flake; the threshold says how unlikely the observed counts would be under the
 * expected distribution. Tokens with expected probability 0 must never be drawn. The test
 * logits keep every top-p and min-p decision away from float32 rounding (checked: the margin
 * of each decision is at least 1e-3), so float32 and float64 filter the same tokens.
 *
 * Also: greedy equals the float64 argmax after the penalty over 60 steps whose window takes
 * each new token; equal seeds give equal sequences, different seeds different ones; float16
 * and [vocab] logits work; 1000 steps keep the tracked count and active memory flat with one
 * trace; bad configs and arguments are refused with LX_E_ARG / LX_E_SHAPE / LX_E_DTYPE.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "models/sampler.h"
#include "test_util.h"

#define V 24
#define NDRAW 100000

/* Fixed logits: distinct, in [-1.5, 1.5], spaced so no decision lands near a boundary. */
static void test_logits(double *l) {
    static const double base[V] = {0.31, -0.72, 1.20, 0.05, -1.41, 0.88, -0.20, 1.47,
                                   -0.95, 0.60, -0.43, 1.02, -1.18, 0.17, -0.61, 0.74,
                                   -1.30, 0.43, 1.33, -0.08, -0.84, 0.96, -1.05, 0.25};
    for (int i = 0; i < V; i++) l[i] = (double)(float)base[i];
}

static lx_array logits_array(const double *l, int n, lx_dtype t, bool flat) {
    float f[1024];
    for (int i = 0; i < n; i++) f[i] = (float)l[i];
    lx_array a = flat ? lx_array_f32(f, (const int[]){n}, 1) : lx_array_f32(f, (const int[]){1, n}, 2);
    return t == LX_FLOAT32 ? a : lx_astype(a, t);
}

/* The penalised logits (float64) given the last `window` ids of hist. */
static void ref_penalize(const double *l, int n, const lx_sampler_config *c, const int *hist,
                         int nh, double *out) {
    memcpy(out, l, sizeof(double) * (size_t)n);
    if (c->repeat_penalty == 1.0f || c->repeat_last_n == 0) return;
    bool *seen = calloc((size_t)n, 1);
    int from = nh > c->repeat_last_n ? nh - c->repeat_last_n : 0;
    for (int i = from; i < nh; i++) seen[hist[i]] = true;
    double p = (double)(float)c->repeat_penalty;
    for (int i = 0; i < n; i++)
        if (seen[i]) out[i] = l[i] > 0 ? l[i] / p : l[i] * p;
    free(seen);
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Expected probabilities (float64); *margin gets the smallest distance of a top-p or min-p
 * decision from its boundary. */
static void ref_probs(const double *l, int n, const lx_sampler_config *c, const int *hist,
                      int nh, double *prob, double *margin) {
    double *x = malloc(sizeof(double) * (size_t)n), *d = malloc(sizeof(double) * (size_t)n);
    bool *keep = malloc((size_t)n);
    ref_penalize(l, n, c, hist, nh, x);
    double T = (double)(float)c->temperature;
    for (int i = 0; i < n; i++) x[i] /= T, keep[i] = true;
    *margin = INFINITY;
    if (c->top_k > 0 && c->top_k < n) {
        memcpy(d, x, sizeof(double) * (size_t)n);
        qsort(d, (size_t)n, sizeof(double), cmp_desc);
        for (int i = 0; i < n; i++) keep[i] = x[i] >= d[c->top_k - 1];
    }
    /* softmax over the kept */
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < n; i++)
        if (keep[i] && x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) z += keep[i] ? exp(x[i] - mx) : 0.0;
    for (int i = 0; i < n; i++) prob[i] = keep[i] ? exp(x[i] - mx) / z : 0.0;
    if (c->top_p < 1.0f) {
        double p = (double)c->top_p;
        int m = 0;
        for (int i = 0; i < n; i++)
            if (keep[i]) d[m++] = prob[i];
        qsort(d, (size_t)m, sizeof(double), cmp_desc);
        double before = 0, thr = d[0];
        for (int i = 0; i < m; i++) {
            if (fabs(before - p) < *margin) *margin = fabs(before - p);
            if (before < p) thr = d[i];
            before += d[i];
        }
        for (int i = 0; i < n; i++) keep[i] = keep[i] && prob[i] >= thr;
    }
    if (c->min_p > 0.0f) {
        double pm = 0;
        for (int i = 0; i < n; i++) pm = prob[i] > pm ? prob[i] : pm;
        double thr = (double)c->min_p * pm;
        for (int i = 0; i < n; i++)
            if (keep[i]) {
                if (fabs(prob[i] - thr) < *margin) *margin = fabs(prob[i] - thr);
                keep[i] = prob[i] >= thr;
            }
    }
    z = 0;
    for (int i = 0; i < n; i++) z += keep[i] ? prob[i] : 0.0;
    for (int i = 0; i < n; i++) prob[i] = keep[i] ? prob[i] / z : 0.0;
    free(x), free(d), free(keep);
}

/* Chi-square quantile at significance 0.001 (Wilson-Hilferty). */
static double chi2_crit(int df) {
    double a = 2.0 / (9.0 * df);
    double t = 1.0 - a + 3.0902 * sqrt(a);
    return df * t * t * t;
}

/* Draws NDRAW tokens; with hist, the window is reset to hist before every draw. */
static void draw_counts(lx_sampler *s, lx_array logits, const int32_t *hist, int nh,
                        long *counts, int n) {
    memset(counts, 0, sizeof(long) * (size_t)n);
    for (int i = 0; i < NDRAW; i++) {
        if (hist) CHECK_OK(lx_sampler_accept_ids(s, hist, nh));
        lx_array tok = lx_sampler_next(s, logits);
        lx_array ev[5] = {tok};
        int ns = lx_sampler_state(s, ev + 1, 4);
        if (lx_eval_n(ev, 1 + ns) != LX_OK) {
            CHECK_OK(lx_error());
            return;
        }
        int32_t t = lx_item_i32(tok);
        lx_free(tok);
        if (t < 0 || t >= n) {
            CHECK_MSG(false, "token %d out of range", (int)t);
            return;
        }
        counts[t]++;
    }
}

/* Pearson's statistic of counts against prob: bins in index order, each grown until its
 * expected count reaches 5, a remainder below 5 joined to the last bin; tokens of probability
 * 0 are left out (their draws are counted in *never). */
static double chi2_of(const double *prob, const long *counts, int *df, long *never, int *kept) {
    double be[V], bo[V], e_acc = 0, o_acc = 0, chi2 = 0;
    int bins = 0;
    *never = 0, *kept = 0;
    for (int i = 0; i < V; i++) {
        if (prob[i] == 0.0) {
            *never += counts[i];
            continue;
        }
        (*kept)++;
        e_acc += prob[i] * NDRAW;
        o_acc += (double)counts[i];
        if (e_acc >= 5.0) {
            be[bins] = e_acc, bo[bins] = o_acc, bins++;
            e_acc = o_acc = 0;
        }
    }
    if (e_acc > 0 && bins > 0) be[bins - 1] += e_acc, bo[bins - 1] += o_acc;
    for (int k = 0; k < bins; k++) chi2 += (bo[k] - be[k]) * (bo[k] - be[k]) / be[k];
    *df = bins - 1;
    return chi2;
}

/* Draws under c (window reset to hist before each draw) and tests them against the expected
 * distribution; when alt is given, the same counts must be rejected against alt's expected
 * distribution (the test can tell the difference the option makes). */
static void chi_square_case(const char *name, const lx_sampler_config *c, const int32_t *hist,
                            int nh, const lx_sampler_config *alt) {
    double l[V], prob[V], margin;
    test_logits(l);
    int h[64];
    for (int i = 0; i < nh; i++) h[i] = hist[i];
    ref_probs(l, V, c, h, nh, prob, &margin);
    CHECK_MSG(margin >= 1e-3, "%s: a filter decision is %.2g from its boundary (test setup)",
              name, margin);
    lx_sampler *s = lx_sampler_new(c, V);
    CHECK(s != NULL);
    if (!s) return;
    lx_array logits = logits_array(l, V, LX_FLOAT32, false);
    lx_keep(logits);
    long counts[V];
    draw_counts(s, logits, hist, nh, counts, V);
    int df, kept;
    long never;
    double chi2 = chi2_of(prob, counts, &df, &never, &kept);
    double crit = df > 0 ? chi2_crit(df) : 0.0;
    printf("  %-34s kept %2d of %d  chi2 %7.2f  df %2d  threshold(0.001) %6.2f", name, kept, V,
           chi2, df, crit);
    CHECK_MSG(never == 0, "%s: %ld draws of filtered-out tokens", name, never);
    if (df > 0)
        CHECK_MSG(chi2 < crit, "%s: chi2 %.2f >= %.2f (df %d)", name, chi2, crit, df);
    else
        CHECK_MSG(kept == 1 && counts[0] + never <= NDRAW, "%s: one bin but %d tokens", name,
                  kept);
    if (alt) {
        double pa[V], m2;
        int dfa, ka;
        long na;
        ref_probs(l, V, alt, h, nh, pa, &m2);
        double ca = chi2_of(pa, counts, &dfa, &na, &ka);
        bool rejected = na > 0 || (dfa > 0 && ca >= chi2_crit(dfa));
        if (na > 0) printf("  alt: %ld draws it excludes", na);
        else printf("  alt: chi2 %.0f", ca);
        CHECK_MSG(rejected, "%s: the counts also fit the alternative (chi2 %.2f)", name, ca);
    }
    printf("\n");
    CHECK(lx_sampler_trace_count(s) == 1);
    lx_sampler_free(s);
    lx_free(logits);
}

static lx_sampler_config cfg(float temp, int k, float p, float minp) {
    lx_sampler_config c = {.temperature = temp, .top_k = k, .top_p = p, .min_p = minp,
                           .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 1234};
    return c;
}

static void test_distributions(void) {
    lx_sampler_config c, alt;
    c = cfg(0.7f, 0, 1.0f, 0.0f), alt = cfg(0.75f, 0, 1.0f, 0.0f);
    chi_square_case("temperature 0.7 (alt 0.75)", &c, NULL, 0, &alt);
    c = cfg(1.0f, 0, 1.0f, 0.0f), alt = cfg(1.05f, 0, 1.0f, 0.0f);
    chi_square_case("temperature 1 (alt 1.05)", &c, NULL, 0, &alt);
    c = cfg(1.0f, 7, 1.0f, 0.0f), alt = cfg(1.0f, 0, 1.0f, 0.0f);
    chi_square_case("top-k 7", &c, NULL, 0, &alt);
    c = cfg(0.9f, 0, 0.8f, 0.0f), alt = cfg(0.9f, 0, 1.0f, 0.0f);
    chi_square_case("top-p 0.8, temperature 0.9", &c, NULL, 0, &alt);
    c = cfg(1.2f, 0, 1.0f, 0.4f), alt = cfg(1.2f, 0, 1.0f, 0.0f);
    chi_square_case("min-p 0.4, temperature 1.2", &c, NULL, 0, &alt);
    c = cfg(0.8f, 12, 0.9f, 0.3f), alt = cfg(0.8f, 12, 0.9f, 0.0f);
    chi_square_case("top-k 12 + top-p 0.9 + min-p 0.3", &c, NULL, 0, &alt);
    c = cfg(1.0f, 3, 0.2f, 0.0f);
    chi_square_case("top-k 3 + top-p 0.2 (one token)", &c, NULL, 0, NULL);
    /* penalty: window 8 of a 12-id history (ids 7 and 2 only in the older part, so not
     * penalised); repeated ids count once; positive and negative logits */
    static const int32_t hist[12] = {7, 2, 7, 2, 18, 18, 4, 1, 18, 11, 4, 9};
    c = cfg(1.0f, 0, 1.0f, 0.0f);
    c.repeat_penalty = 1.8f, c.repeat_last_n = 8;
    alt = c, alt.repeat_last_n = 12;
    chi_square_case("repeat penalty 1.8, window 8", &c, hist, 12, &alt);
    c = cfg(0.8f, 10, 0.95f, 0.05f);
    c.repeat_penalty = 1.3f, c.repeat_last_n = 8;
    alt = c, alt.repeat_penalty = 1.0f;
    chi_square_case("penalty 1.3 + top-k/top-p/min-p", &c, hist, 12, &alt);
}

/* Ties: top-k keeps every token tied with the k-th largest logit (HF's rule: remove only
 * those below it); top-p keeps the tokens tied with its smallest kept probability together. */
static void test_ties(void) {
    double l[V];
    for (int i = 0; i < V; i++) l[i] = 0.0;
    l[5] = 3.0, l[2] = l[9] = l[17] = 1.0;
    lx_array logits = logits_array(l, V, LX_FLOAT32, false);
    lx_keep(logits);
    static const char *const names[3] = {"top-k", "top-p", "top-k + top-p"};
    for (int which = 0; which < 3; which++) {
        /* top-k 2 (the 3 and the three tied 1s); top-p 0.45: p(5) = 0.416 < 0.45, so one 1.0
         * token is needed, and all three tie with it; top-k 2 + top-p 0.75: after top-k
         * p(5) = 0.711 < 0.75, the same (the two ties beyond k count in the normaliser) */
        lx_sampler_config c = which == 0   ? cfg(1.0f, 2, 1.0f, 0.0f)
                              : which == 1 ? cfg(1.0f, 0, 0.45f, 0.0f)
                                           : cfg(1.0f, 2, 0.75f, 0.0f);
        lx_sampler *s = lx_sampler_new(&c, V);
        CHECK(s != NULL);
        if (!s) continue;
        long counts[V];
        draw_counts(s, logits, NULL, 0, counts, V);
        long others = 0;
        for (int i = 0; i < V; i++)
            if (i != 5 && i != 2 && i != 9 && i != 17) others += counts[i];
        CHECK_MSG(others == 0, "%s: %ld draws outside the top and its ties", names[which],
                  others);
        /* each tied token has probability e / (e^3 + 3 e) = 0.0963 (sd of a count: 93) */
        static const int tied[3] = {2, 9, 17};
        for (int j = 0; j < 3; j++)
            CHECK_MSG(counts[tied[j]] > NDRAW * 0.09 && counts[tied[j]] < NDRAW * 0.103,
                      "%s: tied token %d drawn %ld times", names[which], tied[j],
                      counts[tied[j]]);
        lx_sampler_free(s);
    }
    lx_free(logits);
}

/* Greedy: each step the float64 argmax of the logits penalised over the window, which then
 * takes the token (the sampler's window is lazy and never read back). */
static void test_greedy(void) {
    double l[V];
    test_logits(l);
    lx_sampler_config c = cfg(0.0f, 0, 1.0f, 0.0f);
    c.repeat_penalty = 3.0f, c.repeat_last_n = 5;
    lx_sampler *s = lx_sampler_new(&c, V);
    CHECK(s != NULL);
    if (!s) return;
    int hist[256], nh = 0;
    static const int32_t prompt[3] = {7, 18, 2}; /* the three largest logits */
    CHECK_OK(lx_sampler_accept_ids(s, prompt, 3));
    for (int i = 0; i < 3; i++) hist[nh++] = prompt[i];
    lx_array logits = logits_array(l, V, LX_FLOAT32, false);
    lx_keep(logits);
    int bad = 0, distinct = 0;
    bool seen[V] = {false};
    for (int step = 0; step < 60; step++) {
        double x[V];
        ref_penalize(l, V, &c, hist, nh, x);
        int want = 0;
        for (int i = 1; i < V; i++)
            if (x[i] > x[want]) want = i;
        lx_array tok = lx_sampler_next(s, logits);
        lx_array ev[3] = {tok};
        int ns = lx_sampler_state(s, ev + 1, 2);
        CHECK(ns == 1);
        CHECK_OK(lx_eval_n(ev, 1 + ns));
        int got = lx_item_i32(tok);
        lx_free(tok);
        if (got != want && bad++ < 5)
            fprintf(stderr, "  greedy step %d: got %d want %d\n", step, got, want);
        if (got >= 0 && got < V && !seen[got]) seen[got] = true, distinct++;
        hist[nh++] = want;
    }
    CHECK_MSG(bad == 0, "%d greedy steps differ", bad);
    CHECK_MSG(distinct >= 4, "the penalty rotated through %d tokens only", distinct);
    CHECK(lx_sampler_trace_count(s) == 1);
    lx_sampler_free(s);

    /* without penalty: the argmax every time, and no state */
    c = cfg(0.0f, 0, 1.0f, 0.0f);
    s = lx_sampler_new(&c, V);
    CHECK(lx_sampler_state(s, NULL, 0) == 0);
    for (int i = 0; i < 5; i++) {
        lx_array tok = lx_sampler_next(s, logits);
        CHECK(lx_item_i32(tok) == 7);
    }
    lx_sampler_free(s);
    lx_free(logits);
}

/* n tokens from a fresh sampler. */
static void sequence(const lx_sampler_config *c, lx_array logits, int n, int32_t *out) {
    lx_sampler *s = lx_sampler_new(c, lx_dim(logits, lx_ndim(logits) - 1));
    CHECK(s != NULL);
    if (!s) return;
    for (int i = 0; i < n; i++) {
        lx_array tok = lx_sampler_next(s, logits);
        lx_array ev[5] = {tok};
        int ns = lx_sampler_state(s, ev + 1, 4);
        CHECK_OK(lx_eval_n(ev, 1 + ns));
        out[i] = lx_item_i32(tok);
        lx_free(tok);
    }
    lx_sampler_free(s);
}

static void test_seeds(void) {
    double l[V];
    test_logits(l);
    lx_sampler_config c = cfg(1.0f, 16, 0.95f, 0.02f);
    c.repeat_penalty = 1.2f, c.repeat_last_n = 16;
    lx_array logits = logits_array(l, V, LX_FLOAT32, false);
    lx_keep(logits);
    int32_t a[200], b[200], d[200];
    sequence(&c, logits, 200, a);
    sequence(&c, logits, 200, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    c.seed = 1235;
    sequence(&c, logits, 200, d);
    int diff = 0;
    for (int i = 0; i < 200; i++) diff += a[i] != d[i];
    CHECK_MSG(diff > 100, "seeds 1234 and 1235 agree on %d of 200 tokens", 200 - diff);
    /* float16 and [vocab] logits: the same values give the same sequence as float32 [1, V] */
    double lh[V];
    for (int i = 0; i < V; i++) lh[i] = (double)lx_f16_to_f32(lx_f32_to_f16((float)l[i]));
    lx_array f32 = logits_array(lh, V, LX_FLOAT32, false), f16 = logits_array(lh, V, LX_FLOAT16, true);
    lx_array b16 = logits_array(lh, V, LX_BFLOAT16, false);
    lx_keep(f32, f16, b16);
    sequence(&c, f32, 100, a);
    sequence(&c, f16, 100, b);
    CHECK(memcmp(a, b, sizeof(int32_t) * 100) == 0);
    sequence(&c, b16, 50, b); /* bfloat16 rounds differently: it only has to run */
    for (int i = 0; i < 50; i++) CHECK(b[i] >= 0 && b[i] < V);
    lx_free(logits), lx_free(f32), lx_free(f16), lx_free(b16);
}

/* The caller's loop: next, async_eval(token + state), free the previous token. */
static void test_flat(void) {
    enum { VOC = 4096 };
    float *f = malloc(sizeof(float) * VOC);
    t_seed(3);
    for (int i = 0; i < VOC; i++) f[i] = (float)t_uniform(-4, 4);
    lx_array logits = lx_array_f32(f, (const int[]){1, VOC}, 2);
    free(f);
    lx_keep(logits);
    lx_sampler_config c = cfg(0.8f, 0, 0.9f, 0.05f);
    c.repeat_penalty = 1.1f, c.repeat_last_n = 64;
    for (int variant = 0; variant < 3; variant++) {
        if (variant == 1) c.top_k = 40;
        if (variant == 2) c.temperature = 0.0f;
        lx_sampler *s = lx_sampler_new(&c, VOC);
        CHECK(s != NULL);
        if (!s) continue;
        lx_array prev = LX_NULL_ARRAY;
        size_t tracked0 = 0, mem0 = 0;
        for (int step = 1; step <= 1000; step++) {
            lx_array tok = lx_sampler_next(s, logits);
            lx_array ev[5] = {tok};
            int ns = lx_sampler_state(s, ev + 1, 4);
            if (!lx_is_null(prev)) lx_free(prev);
            CHECK_OK(lx_async_eval_n(ev, 1 + ns));
            prev = tok;
            if (step == 10 || step == 1000) {
                CHECK_OK(lx_synchronize());
                if (step == 10) tracked0 = lx_tracked_count(), mem0 = lx_active_memory();
            }
        }
        CHECK_MSG(lx_tracked_count() == tracked0, "variant %d: tracked %zu -> %zu", variant,
                  tracked0, lx_tracked_count());
        CHECK_MSG(lx_active_memory() == mem0, "variant %d: active memory %zu -> %zu", variant,
                  mem0, lx_active_memory());
        CHECK_MSG(lx_sampler_trace_count(s) == 1, "variant %d: %d traces", variant,
                  lx_sampler_trace_count(s));
        lx_free(prev);
        lx_sampler_free(s);
    }
    lx_free(logits);
}

static void expect_refused(lx_sampler_config c, int vocab, const char *what) {
    lx_sampler *s = lx_sampler_new(&c, vocab);
    CHECK_MSG(s == NULL, "%s accepted", what);
    if (s) lx_sampler_free(s);
    const char *msg = lx_error_message();
    CHECK_MSG(msg && strstr(msg, "lx_sampler_new"), "%s: message '%s'", what, msg ? msg : "");
    CHECK_ERROR(LX_E_ARG);
}

static void test_bad_configs(void) {
    lx_sampler_config ok = cfg(0.8f, 40, 0.95f, 0.05f), c;
#define BAD(field, value)                                                                     \
    c = ok, c.field = value, expect_refused(c, 100, #field " = " #value)
    BAD(temperature, -0.1f);
    BAD(temperature, NAN);
    BAD(temperature, INFINITY);
    BAD(top_k, -1);
    BAD(top_p, 0.0f);
    BAD(top_p, -0.5f);
    BAD(top_p, 1.01f);
    BAD(top_p, NAN);
    BAD(min_p, -0.01f);
    BAD(min_p, 1.5f);
    BAD(min_p, NAN);
    BAD(repeat_penalty, 0.0f);
    BAD(repeat_penalty, -1.0f);
    BAD(repeat_penalty, INFINITY);
    BAD(repeat_penalty, NAN);
    BAD(repeat_last_n, -1);
#undef BAD
    expect_refused(ok, 0, "vocab 0");
    CHECK(lx_sampler_new(NULL, 10) == NULL);
    CHECK_ERROR(LX_E_ARG);
    /* edge values are accepted */
    c = ok, c.top_p = 1.0f, c.min_p = 1.0f, c.top_k = 1000, c.temperature = 0.0f;
    lx_sampler *s = lx_sampler_new(&c, 100);
    CHECK(s != NULL);
    lx_sampler_free(s);

    c = ok, c.repeat_penalty = 1.5f, c.repeat_last_n = 4;
    s = lx_sampler_new(&c, 10);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(lx_sampler_accept_ids(s, (const int32_t[]){3, 10}, 2) == LX_E_ARG);
    lx_clear_error();
    CHECK(lx_sampler_accept_ids(s, (const int32_t[]){-1}, 1) == LX_E_ARG);
    lx_clear_error();
    CHECK(lx_sampler_accept_ids(s, NULL, 3) == LX_E_ARG);
    lx_clear_error();
    CHECK_OK(lx_sampler_accept_ids(s, NULL, 0));
    float f[11] = {0};
    lx_array wrong = lx_array_f32(f, (const int[]){1, 11}, 2);
    CHECK(lx_is_null(lx_sampler_next(s, wrong)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_sampler_next(s, lx_array_f32(f, (const int[]){2, 5}, 2))));
    CHECK_ERROR(LX_E_SHAPE);
    int32_t ids[10] = {0};
    CHECK(lx_is_null(lx_sampler_next(s, lx_array_i32(ids, (const int[]){10}, 1))));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_sampler_next(s, LX_NULL_ARRAY)));
    CHECK(lx_error() != LX_OK);
    lx_clear_error();
    /* still works after the errors */
    lx_array tok = lx_sampler_next(s, lx_array_f32(f, (const int[]){10}, 1));
    CHECK(!lx_is_null(tok) && lx_item_i32(tok) >= 0 && lx_item_i32(tok) < 10);
    lx_sampler_free(s);
    lx_sampler_free(NULL);
}

int main(void) {
    RUN_TEST(test_bad_configs);
    RUN_TEST(test_greedy);
    RUN_TEST(test_seeds);
    RUN_TEST(test_flat);
    RUN_TEST(test_distributions);
    RUN_TEST(test_ties);
    return test_finish();
}
