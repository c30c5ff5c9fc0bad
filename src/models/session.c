/*
 * session.c -- lx_session_generate: prefill and the decode loop of the memory model.
 *
 * The loop is the seed's pattern: step t+1's graph is built from token t while t is still
 * computing (lx_async_eval returns once the work is queued); then token t is read, which
 * waits only for t. Each step keeps the new cache arrays and the sampler state, frees the old
 * token, and the async eval sweeps everything else the step made, so the tracked count and
 * the memory stay flat.
 *
 * A session keeps the tokens whose keys and values its cache holds; a later call reuses the
 * longest common prefix of its prompt with them (multi-turn chat re-sends the conversation
 * and only the new turn is prefilled).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "models/kv_cache.h"
#include "models/model.h"
#include "models/sampler.h"

struct lx_session {
    lx_model *m;
    int max_context;
    lx_kv_cache *cache;
    int32_t *tokens; /* tokens[0, cache->len) have keys and values in the cache */
    int n_tokens, cap_tokens;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lx_gen_params lx_gen_params_default(void) {
    lx_gen_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 256;
    p.temperature = 0.0f;
    p.top_p = 1.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.prefill_chunk = 512;
    return p;
}

lx_session *lx_session_new(lx_model *m, int max_context) {
    if (!m) {
        lx_set_error(LX_E_ARG, "lx_session_new: model is NULL");
        return NULL;
    }
    if (max_context < 0) {
        lx_set_error(LX_E_ARG, "lx_session_new: max_context %d is negative", max_context);
        return NULL;
    }
    if (max_context == 0 || max_context > m->cfg.context_length)
        max_context = m->cfg.context_length;
    lx_session *s = calloc(1, sizeof *s);
    if (!s) {
        lx_set_error(LX_E_OOM, "lx_session_new: out of memory");
        return NULL;
    }
    s->m = m;
    s->max_context = max_context;
    s->cache = lx_kv_cache_new(m->cfg.n_layers, m->cfg.n_kv_heads, m->cfg.head_dim, m->act,
                               max_context);
    if (!s->cache) {
        free(s);
        return NULL;
    }
    return s;
}

void lx_session_free(lx_session *s) {
    if (!s) return;
    lx_kv_cache_free(s->cache);
    free(s->tokens);
    free(s);
}

void lx_session_reset(lx_session *s) {
    if (!s) return;
    lx_kv_cache_truncate(s->cache, 0);
    s->n_tokens = 0;
}

const lx_kv_cache *lx_session_kv(const lx_session *s) { return s ? s->cache : NULL; }

int lx_session_tokens(const lx_session *s, const int32_t **ids) {
    if (!s) return 0;
    if (ids) *ids = s->tokens;
    return s->n_tokens;
}

static bool push_token(lx_session *s, int32_t id) {
    if (s->n_tokens == s->cap_tokens) {
        int cap = s->cap_tokens ? s->cap_tokens * 2 : 256;
        int32_t *t = realloc(s->tokens, sizeof(int32_t) * (size_t)cap);
        if (!t) return false;
        s->tokens = t;
        s->cap_tokens = cap;
    }
    s->tokens[s->n_tokens++] = id;
    return true;
}

static bool is_eos(const lx_model *m, int32_t id) {
    for (int i = 0; i < m->cfg.n_eos; i++)
        if (m->cfg.eos[i] == id) return true;
    return false;
}

/* Hands every row of evaluated float32 logits to on_logits. */
static lx_status emit_logits(const lx_gen_params *p, lx_array logits) {
    if (!p->on_logits) return LX_OK;
    const float *rows = lx_data(logits);
    if (!rows) return lx_error();
    p->on_logits(p->user, rows, lx_dim(logits, 0), lx_dim(logits, 1));
    return LX_OK;
}

/* Feeds ids[0, n) at the cache's end, in chunks with an eval between them. Returns the
 * logits of the last position (all positions of each chunk go to on_logits when it is set),
 * lazy, tracked and unkept. */
static lx_array prefill(lx_session *s, const int32_t *ids, int n, const lx_gen_params *p,
                        lx_status *st) {
    int chunk = p->prefill_chunk > 0 ? p->prefill_chunk : 512;
    lx_array last = LX_NULL_ARRAY;
    lx_array cache[2 * 1024];
    for (int at = 0; at < n; at += chunk) {
        int L = n - at < chunk ? n - at : chunk;
        if ((*st = lx_kv_cache_reserve(s->cache, L))) goto fail;
        lx_array x = lx_array_i32(ids + at, (int[]){L}, 1);
        bool final = at + L == n;
        lx_array logits = lx_model_forward(s->m, x, s->cache, p->on_logits != NULL);
        if (lx_is_null(logits)) {
            *st = lx_error() ? lx_error() : LX_E_INTERNAL;
            goto fail;
        }
        int nc = lx_kv_cache_arrays(s->cache, cache, 2 * 1024);
        lx_kv_cache_advance(s->cache, L);
        if (p->on_logits || final) {
            lx_keep(logits);
            if (!lx_is_null(last)) lx_free(last);
            last = logits;
        }
        /* the cache's arrays are what a chunk must leave behind; its logits only when asked */
        if ((*st = lx_eval_n(cache, nc))) goto fail;
        if (p->on_logits) {
            if ((*st = lx_eval(logits)) || (*st = emit_logits(p, logits))) goto fail;
        }
    }
    if (p->on_logits && n > 0) {
        /* the sampler wants the last row only */
        int V = lx_dim(last, 1), R = lx_dim(last, 0);
        lx_array row = lx_slice(last, (int[]){R - 1, 0}, (int[]){R, V}, NULL, 2);
        lx_free(last);
        return row;
    }
    if (!lx_is_null(last)) lx_free(last); /* unkept again: tracked until the next sweep */
    return last;
fail: /* the kept logits go with the next sweep */
    if (!lx_is_null(last)) lx_free(last);
    return LX_NULL_ARRAY;
}

static lx_sampler *make_sampler(const lx_session *s, const lx_gen_params *p) {
    lx_sampler_config c = {
        .temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p, .min_p = p->min_p,
        .repeat_penalty = p->repeat_penalty, .repeat_last_n = p->repeat_last_n, .seed = p->seed};
    return lx_sampler_new(&c, s->m->head.out);
}

static lx_status check_prompt(const lx_session *s, const int32_t *prompt, int n) {
    if (!prompt || n <= 0)
        return lx_set_error(LX_E_ARG, "lx_session_generate: the prompt is empty");
    if (n > s->max_context)
        return lx_set_error(LX_E_ARG, "lx_session_generate: the prompt has %d tokens, more than "
                            "the context of %d", n, s->max_context);
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= s->m->cfg.vocab)
            return lx_set_error(LX_E_ARG, "lx_session_generate: prompt token %d is %d, outside "
                                "the vocabulary (%d)", i, prompt[i], s->m->cfg.vocab);
    return LX_OK;
}

lx_status lx_session_generate(lx_session *s, const int32_t *prompt, int n_prompt,
                              const lx_gen_params *params, lx_gen_stats *stats) {
    if (!s) return lx_set_error(LX_E_ARG, "lx_session_generate: session is NULL");
    lx_gen_params p = params ? *params : lx_gen_params_default();
    lx_gen_stats st_local;
    lx_gen_stats *out = stats ? stats : &st_local;
    memset(out, 0, sizeof *out);
    lx_status st = check_prompt(s, prompt, n_prompt);
    if (st) return st;
    if (p.max_tokens < 0) return lx_set_error(LX_E_ARG, "lx_session_generate: max_tokens %d is "
                                              "negative", p.max_tokens);
    if (p.max_tokens > s->max_context - n_prompt) p.max_tokens = s->max_context - n_prompt;

    /* reuse the cached prefix; at least the last prompt token is fed again for its logits */
    int reuse = 0;
    int cached = s->cache->len < s->n_tokens ? s->cache->len : s->n_tokens;
    while (reuse < cached && reuse < n_prompt - 1 && s->tokens[reuse] == prompt[reuse]) reuse++;
    lx_kv_cache_truncate(s->cache, reuse);
    s->n_tokens = reuse;
    for (int i = reuse; i < n_prompt; i++)
        if (!push_token(s, prompt[i])) return lx_set_error(LX_E_OOM, "lx_session_generate: out "
                                                            "of memory");
    out->prompt_tokens = n_prompt;
    out->reused_tokens = reuse;
    if (p.max_tokens == 0) {
        out->peak_memory_bytes = lx_peak_memory();
        out->active_memory_bytes = lx_active_memory();
        out->tracked = lx_tracked_count();
        return LX_OK;
    }

    lx_sampler *sampler = make_sampler(s, &p);
    if (!sampler) return lx_error();
    lx_detokenizer *detok = lx_detokenizer_new(s->m->tok, true);
    if (!detok) {
        lx_sampler_free(sampler);
        return lx_error();
    }
    int window = p.repeat_last_n > 0 && n_prompt > p.repeat_last_n ? p.repeat_last_n : n_prompt;
    if ((st = lx_sampler_accept_ids(sampler, prompt + n_prompt - window, window))) goto done;

    double t0 = now_s();
    lx_array logits = prefill(s, prompt + reuse, n_prompt - reuse, &p, &st);
    if (st) goto done;
    lx_array state[4 + 2 * 1024];
    lx_array tok = lx_sampler_next(sampler, logits);
    if (lx_is_null(tok)) {
        st = lx_error() ? lx_error() : LX_E_INTERNAL;
        goto done;
    }
    lx_keep(tok);
    int ns = lx_sampler_state(sampler, state, 4);
    state[ns++] = tok;
    if ((st = lx_async_eval_n(state, ns))) {
        lx_free(tok);
        goto done;
    }
    lx_array tok_logits = LX_NULL_ARRAY; /* the logits tok was drawn from, for on_logits */
    double t_first = 0;
    for (int i = 0; i < p.max_tokens; i++) {
        lx_array next = LX_NULL_ARRAY, next_logits = LX_NULL_ARRAY;
        bool more = i + 1 < p.max_tokens && !(p.stop && *p.stop);
        if (more) {
            if ((st = lx_kv_cache_reserve(s->cache, 1))) break;
            next_logits = lx_model_forward(s->m, tok, s->cache, false);
            next = lx_sampler_next(sampler, next_logits);
            if (lx_is_null(next)) {
                st = lx_error() ? lx_error() : LX_E_INTERNAL;
                break;
            }
            lx_kv_cache_advance(s->cache, 1);
            lx_keep(next);
            if (p.on_logits) lx_keep(next_logits);
            ns = lx_sampler_state(sampler, state, 4);
            state[ns++] = next;
            ns += lx_kv_cache_arrays(s->cache, state + ns, 2 * 1024);
            if ((st = lx_async_eval_n(state, ns))) {
                lx_free(next); /* kept above: released by the next sweep, as tok is */
                if (p.on_logits) lx_free(next_logits);
                break;
            }
        }
        int32_t id = lx_item_i32(tok); /* waits for tok only; next goes on computing */
        if ((st = lx_error())) {
            if (!lx_is_null(next)) lx_free(next);
            if (!lx_is_null(next_logits) && p.on_logits) lx_free(next_logits);
            break;
        }
        if (i == 0) {
            t_first = now_s();
            out->first_token_s = t_first - t0;
            out->prefill_s = out->first_token_s;
        }
        if (p.on_logits && i > 0) {
            if ((st = emit_logits(&p, tok_logits))) break;
        }
        if (!lx_is_null(tok_logits)) lx_free(tok_logits);
        tok_logits = next_logits;
        lx_free(tok);
        tok = next;
        out->generated_tokens++;
        if (!push_token(s, id)) {
            st = lx_set_error(LX_E_OOM, "lx_session_generate: out of memory");
            break;
        }
        size_t len = 0;
        const char *text = lx_detokenizer_push(detok, id, &len);
        if (!text) {
            st = lx_error();
            break;
        }
        bool go_on = !p.on_token || p.on_token(p.user, id, text, len);
        if (is_eos(s->m, id) && !p.ignore_eos) {
            out->stopped_by_eos = true;
            break;
        }
        if (!go_on || (p.stop && *p.stop)) {
            out->stopped_by_user = true;
            break;
        }
    }
    if (!st && p.on_logits && out->generated_tokens > 0) {
        /* a row for every position fed, the last token's included (its logits are those
         * of the sequence the caller now holds) */
        if (lx_is_null(tok_logits)) {
            int32_t last_id = s->tokens[s->n_tokens - 1];
            if (!(st = lx_kv_cache_reserve(s->cache, 1))) {
                tok_logits = lx_model_forward(s->m, lx_array_i32(&last_id, (int[]){1}, 1),
                                              s->cache, false);
                lx_kv_cache_advance(s->cache, 1);
                lx_keep(tok_logits);
            }
        }
        if (!st) st = lx_eval(tok_logits);
        if (!st) st = emit_logits(&p, tok_logits);
    }
    if (!st) {
        size_t len = 0;
        const char *rest = lx_detokenizer_flush(detok, &len);
        if (rest && len && p.on_token) p.on_token(p.user, -1, rest, len);
    }
    if (!lx_is_null(tok)) lx_free(tok);
    if (!lx_is_null(tok_logits)) lx_free(tok_logits);
    lx_status sync = lx_synchronize(); /* a step queued past the end finishes before we return */
    if (!st) st = sync;
    if (out->generated_tokens > 0) {
        out->decode_s = now_s() - t_first;
        int prefilled = n_prompt - reuse;
        out->prefill_tok_s = out->prefill_s > 0 ? prefilled / out->prefill_s : 0;
        out->decode_tok_s =
            out->generated_tokens > 1 && out->decode_s > 0
                ? (out->generated_tokens - 1) / out->decode_s
                : 0;
    }
    lx_sweep();
done:
    lx_detokenizer_free(detok);
    lx_sampler_free(sampler);
    out->peak_memory_bytes = lx_peak_memory();
    out->active_memory_bytes = lx_active_memory();
    out->tracked = lx_tracked_count();
    return st;
}
