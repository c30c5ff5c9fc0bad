/*
 * sampler.c -- the next-token sampler (sampler.h): one compiled closure per sampler.
 *
 * The closure's inputs are the logits, the random key (when sampling) and the repetition
 * window (when penalising); its outputs the token and the new key and window. Everything in
 * the config is a constant of the trace, so each step is a replay: no retrace, no host sync,
 * the same number of nodes and buffers every step.
 *
 * Steps, as Hugging Face's logits processors run them (float32 throughout):
 *  - penalty: the window is a fixed ring of the last N ids (int32 [N], empty slots = vocab).
 *    The logits at the window's ids are gathered (take clamps vocab to vocab - 1, harmlessly),
 *    become logit / p if > 0 else logit * p, and are scattered back (put_along_axis drops the
 *    out-of-range empty slots). Gathering from the unpenalised logits before any write makes
 *    repeated ids count once, as HF's gather/scatter does.
 *  - temperature 0: argmax of the penalised logits. Else logits / temperature, then:
 *  - top-k keeps every logit >= the k-th largest (ties with it kept, HF's rule);
 *  - top-p: over the probabilities after top-k (renormalised), in descending order, keeps the
 *    tokens whose cumulative probability before them is < p (the first always); tokens tied
 *    with the smallest kept probability are kept with it (a threshold, not a sort order);
 *  - min-p keeps probability >= min_p * the largest probability (unchanged by renormalising),
 *    computed as logit >= max logit + log(min_p);
 *  - a categorical draw (Gumbel-max) over the kept tokens' tempered logits, with the second
 *    half of split(key); the first half is the next key.
 * The window then drops its oldest id and takes the token.
 */
#include "models/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MAX_WINDOW (1 << 20)

struct lx_sampler {
    lx_sampler_config c;
    int vocab;
    int top_k;   /* 0 when off or >= vocab */
    int window;  /* ring size; 0 = no penalty */
    bool greedy;
    lx_closure *fn;
    lx_array key, ring; /* kept state; null when unused */
};

/* ---- the closure ---------------------------------------------------------------------- */

static lx_array penalize(const lx_sampler *s, lx_array x, lx_array ring) {
    lx_array ids = lx_reshape(ring, (const int[]){1, s->window}, 2);
    lx_array g = lx_take_along_axis(x, ids, -1);
    double p = s->c.repeat_penalty;
    lx_array pen = lx_where(lx_greater(g, lx_scalar_f32(0.0f)), lx_div_scalar(g, p),
                            lx_mul_scalar(g, p));
    return lx_put_along_axis(x, ids, pen, -1);
}

static lx_array and_keep(lx_array keep, lx_array m) {
    return lx_is_null(keep) ? m : lx_logical_and(keep, m);
}

/* The top-p threshold as a logit: d [1, n] the candidates' logits in descending order, e their
 * exp(d - max), z the sum of exp(logit - max) over every token still in (top-k's). */
static lx_array top_p_logit(lx_array d, lx_array e, lx_array z, float p) {
    lx_array prob = lx_div(e, z);
    lx_array before = lx_sub(lx_cumsum(prob, -1), prob);
    lx_array in = lx_less(before, lx_scalar_f32(p));
    return lx_min(lx_where(in, d, lx_scalar_f32(INFINITY)), -1, true);
}

/* The tokens kept by top-k, top-p and min-p (bool [1, vocab]); null when none filters. Each
 * filter becomes a threshold on the logits (probability is monotone in the logit), so only
 * the candidates are sorted and exponentiated: the k largest with top-k on (ties beyond the
 * k-th add (count - k) exp(kth - max) to the normaliser), every token for top-p alone. */
static lx_array filter(const lx_sampler *s, lx_array lt) {
    bool top_p = s->c.top_p < 1.0f, min_p = s->c.min_p > 0.0f;
    lx_array keep = LX_NULL_ARRAY, m;
    if (s->top_k > 0) {
        int k = s->top_k;
        lx_array d = lx_neg(lx_sort(lx_neg(lx_topk(lt, k, -1)), -1)); /* descending [1, k] */
        lx_array kth = lx_slice(d, (const int[]){0, k - 1}, (const int[]){1, k},
                                (const int[]){1, 1}, 2);
        keep = lx_greater_equal(lt, kth);
        m = lx_slice(d, (const int[]){0, 0}, (const int[]){1, 1}, (const int[]){1, 1}, 2);
        if (top_p) {
            lx_array e = lx_exp(lx_sub(d, m));
            lx_array extra = lx_sub_scalar(lx_astype(lx_sum(keep, -1, true), LX_FLOAT32), k);
            lx_array z = lx_add(lx_sum(e, -1, true), lx_mul(extra, lx_exp(lx_sub(kth, m))));
            keep = lx_logical_and(keep, lx_greater_equal(lt, top_p_logit(d, e, z, s->c.top_p)));
        }
    } else {
        if (!top_p && !min_p) return keep;
        m = lx_max(lt, -1, true);
        if (top_p) {
            lx_array d = lx_neg(lx_sort(lx_neg(lt), -1));
            lx_array e = lx_exp(lx_sub(d, m));
            lx_array z = lx_sum(e, -1, true);
            keep = lx_greater_equal(lt, top_p_logit(d, e, z, s->c.top_p));
        }
    }
    if (min_p) { /* p >= min_p * p_max  <=>  logit >= max + log(min_p) */
        lx_array mp = lx_greater_equal(lt, lx_add_scalar(m, log((double)s->c.min_p)));
        keep = and_keep(keep, mp);
    }
    return keep;
}

/* in: logits, [key], [ring]; out: token int32 [1], [key], [ring]. */
static lx_status step_fn(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    const lx_sampler *s = ctx;
    (void)n_in, (void)n_out;
    int i = 1, o = 1;
    lx_array x = lx_astype(lx_reshape(in[0], (const int[]){1, s->vocab}, 2), LX_FLOAT32);
    lx_array key = s->greedy ? LX_NULL_ARRAY : in[i++];
    lx_array ring = s->window ? in[i++] : LX_NULL_ARRAY;
    if (s->window) x = penalize(s, x, ring);
    lx_array tok;
    if (s->greedy) {
        tok = lx_argmax(x, -1, false);
    } else {
        lx_array next = LX_NULL_ARRAY, draw = LX_NULL_ARRAY;
        lx_status st = lx_random_split(key, &next, &draw);
        if (st != LX_OK) return st;
        lx_array lt = s->c.temperature == 1.0f ? x : lx_div_scalar(x, s->c.temperature);
        lx_array keep = filter(s, lt);
        if (!lx_is_null(keep)) lt = lx_where(keep, lt, lx_scalar_f32(-INFINITY));
        tok = lx_random_categorical(lt, -1, draw);
        out[o++] = next;
    }
    tok = lx_astype(tok, LX_INT32); /* [1] */
    out[0] = tok;
    if (s->window) {
        if (s->window == 1) {
            out[o++] = lx_reshape(tok, (const int[]){1}, 1); /* its own handle */
        } else {
            lx_array rest = lx_slice(ring, (const int[]){1}, (const int[]){s->window},
                                     (const int[]){1}, 1);
            out[o++] = lx_concatenate((const lx_array[]){rest, tok}, 2, 0);
        }
    }
    return lx_error();
}

/* ---- the sampler ---------------------------------------------------------------------- */

static bool check_config(const lx_sampler_config *c, int vocab) {
    const char *op = "lx_sampler_new";
    if (!c) return lx_set_error(LX_E_ARG, "%s: config is NULL", op), false;
    if (vocab <= 0) return lx_set_error(LX_E_ARG, "%s: vocab %d must be positive", op, vocab), false;
    if (!(c->temperature >= 0.0f) || !isfinite(c->temperature))
        return lx_set_error(LX_E_ARG, "%s: temperature %g must be finite and >= 0 (0 = greedy)",
                            op, (double)c->temperature), false;
    if (c->top_k < 0)
        return lx_set_error(LX_E_ARG, "%s: top_k %d must be >= 0 (0 = off)", op, c->top_k), false;
    if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
        return lx_set_error(LX_E_ARG, "%s: top_p %g must be in (0, 1] (1 = off)", op,
                            (double)c->top_p), false;
    if (!(c->min_p >= 0.0f && c->min_p <= 1.0f))
        return lx_set_error(LX_E_ARG, "%s: min_p %g must be in [0, 1] (0 = off)", op,
                            (double)c->min_p), false;
    if (!(c->repeat_penalty > 0.0f) || !isfinite(c->repeat_penalty))
        return lx_set_error(LX_E_ARG, "%s: repeat_penalty %g must be finite and > 0 (1 = off)",
                            op, (double)c->repeat_penalty), false;
    if (c->repeat_last_n < 0 || c->repeat_last_n > MAX_WINDOW)
        return lx_set_error(LX_E_ARG, "%s: repeat_last_n %d must be in [0, %d] (0 = off)", op,
                            c->repeat_last_n, MAX_WINDOW), false;
    return true;
}

/* Replaces a kept state array by a new one (kept); the old one is freed. */
static void set_state(lx_array *slot, lx_array a) {
    lx_keep(a);
    if (!lx_is_null(*slot)) lx_free(*slot);
    *slot = a;
}

lx_sampler *lx_sampler_new(const lx_sampler_config *c, int vocab) {
    if (!check_config(c, vocab)) return NULL;
    lx_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        lx_set_error(LX_E_OOM, "lx_sampler_new: out of memory");
        return NULL;
    }
    s->c = *c;
    s->vocab = vocab;
    s->greedy = c->temperature == 0.0f;
    s->top_k = c->top_k < vocab ? c->top_k : 0;
    s->window = c->repeat_penalty != 1.0f ? c->repeat_last_n : 0;
    s->key = s->ring = LX_NULL_ARRAY;
    int n_out = 1 + !s->greedy + (s->window > 0);
    s->fn = lx_compile(step_fn, s, n_out, 0);
    if (!s->fn) goto fail;
    if (!s->greedy) {
        lx_array k = lx_random_key(c->seed);
        if (lx_is_null(k)) goto fail;
        set_state(&s->key, k);
    }
    if (s->window) {
        lx_array r = lx_full((const int[]){s->window}, 1, (double)vocab, LX_INT32);
        if (lx_is_null(r)) goto fail;
        set_state(&s->ring, r);
    }
    return s;
fail:
    lx_sampler_free(s);
    return NULL;
}

lx_status lx_sampler_accept_ids(lx_sampler *s, const int32_t *ids, int n) {
    const char *op = "lx_sampler_accept_ids";
    if (!s) return lx_set_error(LX_E_ARG, "%s: sampler is NULL", op);
    if (n < 0 || (n > 0 && !ids))
        return lx_set_error(LX_E_ARG, "%s: %d ids at %p", op, n, (const void *)ids);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->vocab)
            return lx_set_error(LX_E_ARG, "%s: id %d (index %d) is outside [0, %d)", op,
                                (int)ids[i], i, s->vocab);
    if (!s->window || n == 0) return LX_OK;
    int w = s->window, take = n < w ? n : w;
    lx_array add = lx_array_i32(ids + (n - take), (const int[]){take}, 1);
    lx_array r = add;
    if (take < w) {
        lx_array rest = lx_slice(s->ring, (const int[]){take}, (const int[]){w},
                                 (const int[]){1}, 1);
        r = lx_concatenate((const lx_array[]){rest, add}, 2, 0);
    }
    if (lx_is_null(r)) return lx_error() ? lx_error() : LX_E_INTERNAL;
    set_state(&s->ring, r);
    return LX_OK;
}

lx_array lx_sampler_next(lx_sampler *s, lx_array logits) {
    const char *op = "lx_sampler_next";
    if (!s) return lx_set_error(LX_E_ARG, "%s: sampler is NULL", op), LX_NULL_ARRAY;
    int shape[LX_MAX_NDIM];
    int nd = lx_shape(logits, shape);
    if (nd < 0) return LX_NULL_ARRAY; /* lx_shape set the error (null or freed) */
    if (!((nd == 1 && shape[0] == s->vocab) || (nd == 2 && shape[0] == 1 && shape[1] == s->vocab))) {
        char buf[96];
        int len = 0;
        buf[0] = 0;
        for (int i = 0; i < nd && len < 80; i++)
            len += snprintf(buf + len, sizeof buf - (size_t)len, i ? ", %d" : "%d", shape[i]);
        lx_set_error(LX_E_SHAPE, "%s: logits have shape [%s]; expected [1, %d] or [%d]", op, buf,
                     s->vocab, s->vocab);
        return LX_NULL_ARRAY;
    }
    lx_dtype t = lx_dtype_of(logits);
    if (!lx_dtype_is_float(t)) {
        lx_set_error(LX_E_DTYPE, "%s: logits have dtype %s; a floating type is required", op,
                     lx_dtype_name(t));
        return LX_NULL_ARRAY;
    }
    lx_array in[3] = {logits}, out[3];
    int n_in = 1;
    if (!s->greedy) in[n_in++] = s->key;
    if (s->window) in[n_in++] = s->ring;
    int n_out = n_in;
    if (lx_call(s->fn, in, n_in, out, n_out) != LX_OK) return LX_NULL_ARRAY;
    int o = 1;
    if (!s->greedy) set_state(&s->key, out[o++]);
    if (s->window) set_state(&s->ring, out[o++]);
    return out[0];
}

int lx_sampler_state(const lx_sampler *s, lx_array *out, int cap) {
    if (!s) return 0;
    lx_array st[2];
    int n = 0;
    if (!s->greedy) st[n++] = s->key;
    if (s->window) st[n++] = s->ring;
    for (int i = 0; i < n && i < cap && out; i++) out[i] = st[i];
    return n;
}

int lx_sampler_trace_count(const lx_sampler *s) {
    return s && s->fn ? lx_closure_trace_count(s->fn) : 0;
}

void lx_sampler_free(lx_sampler *s) {
    if (!s) return;
    if (s->fn) lx_closure_free(s->fn);
    if (!lx_is_null(s->key)) lx_free(s->key);
    if (!lx_is_null(s->ring)) lx_free(s->ring);
    free(s);
}
