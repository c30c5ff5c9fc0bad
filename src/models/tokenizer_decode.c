/*
 * tokenizer_decode.c -- ids back to text, one token at a time, for both lx_detokenize and the
 * streaming lx_detokenizer (so the stream's text equals the batch decode by construction).
 *
 * Hugging Face decoder chains are run in two stages. Steps before the first fusing step
 * (ByteLevel or Fuse) act on each token: Replace, Strip, Metaspace (its ▁ to spaces, all ▁
 * of the first token dropped), ByteLevel's char-to-byte map, and ByteFallback, whose runs of
 * <0xXX> tokens become their bytes when valid UTF-8 and one U+FFFD per byte otherwise (so a
 * run is held until it ends). Steps after the fuse act on the joined text as streaming
 * filters holding back what a later byte could still change (Strip's trailing characters,
 * Replace's partial match). Last, invalid UTF-8 is replaced by U+FFFD (maximal subparts,
 * as from_utf8_lossy), an incomplete tail held until more bytes come or the stream ends.
 * GGUF vocabularies decode as llama.cpp's token_to_piece does.
 */
#include "models/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct {
    int skipped;          /* Strip: leading content characters dropped so far */
    bool started;         /* Strip: past the start */
    int held;             /* Strip: trailing content characters held back */
    tok_buf pend;         /* Replace: bytes that may begin a match */
} post_state;

struct lx_detokenizer {
    const lx_tokenizer *t;
    bool skip_special;
    int index;            /* tokens decoded since the start (skipped ones not counted) */
    int first_post;       /* index in t->dec of the first step after the fuse */
    bool has_fallback;    /* ByteFallback among the per-token steps */
    tok_buf run;          /* pending ByteFallback run */
    post_state *post;
    tok_utf8_stream u8;
    tok_buf tok, tmp, out;
    bool oom;
};

/* ---- after the fuse: streaming filters --------------------------------------------------------- */

static bool post_put(lx_detokenizer *d, int k, const char *s, size_t n);

static bool emit_final(lx_detokenizer *d, const char *s, size_t n) {
    return tok_utf8_stream_put(&d->u8, (const uint8_t *)s, n, &d->out);
}

static bool next_put(lx_detokenizer *d, int k, const char *s, size_t n) {
    if (!n) return true;
    return k + 1 < d->t->n_dec ? post_put(d, k + 1, s, n) : emit_final(d, s, n);
}

/* Strip after the fuse, for a one-byte content character. */
static bool strip_put(lx_detokenizer *d, int k, const tok_dec *st, post_state *ps, const char *s,
                      size_t n) {
    char c = st->a[0];
    size_t i = 0;
    if (!ps->started) {
        while (i < n && s[i] == c && ps->skipped < st->start) { ps->skipped++; i++; }
        if (i < n) ps->started = true;
    }
    while (i < n) {
        if (s[i] == c) {
            ps->held++;
            if (ps->held > st->stop) {
                ps->held--;
                if (!next_put(d, k, &c, 1)) return false;
            }
            i++;
            continue;
        }
        for (; ps->held > 0; ps->held--)
            if (!next_put(d, k, &c, 1)) return false;
        size_t j = i;
        while (j < n && s[j] != c) j++;
        if (!next_put(d, k, s + i, j - i)) return false;
        i = j;
    }
    return true;
}

static bool replace_put(lx_detokenizer *d, int k, const tok_dec *st, post_state *ps,
                        const char *s, size_t n) {
    if (!tok_buf_put(&ps->pend, s, n)) return false;
    const char *p = ps->pend.p;
    size_t len = ps->pend.n, i = 0;
    for (;;) {
        const char *f = st->alen && st->alen <= len - i ? memmem(p + i, len - i, st->a, st->alen) : NULL;
        if (!f) break;
        if (!next_put(d, k, p + i, (size_t)(f - (p + i))) || !next_put(d, k, st->b, st->blen))
            return false;
        i = (size_t)(f - p) + st->alen;
    }
    /* keep the longest tail that is a proper prefix of the pattern */
    size_t keep = 0;
    for (size_t l = st->alen ? st->alen - 1 : 0; l > 0; l--)
        if (l <= len - i && memcmp(p + len - l, st->a, l) == 0) { keep = l; break; }
    if (!next_put(d, k, p + i, len - i - keep)) return false;
    memmove(ps->pend.p, p + len - keep, keep);
    ps->pend.n = keep;
    return true;
}

static bool post_put(lx_detokenizer *d, int k, const char *s, size_t n) {
    const tok_dec *st = &d->t->dec[k];
    post_state *ps = &d->post[k];
    switch (st->kind) {
    case DEC_STRIP: return strip_put(d, k, st, ps, s, n);
    case DEC_REPLACE: return replace_put(d, k, st, ps, s, n);
    default: return next_put(d, k, s, n); /* fusing steps are no-ops on joined text */
    }
}

/* End of stream for post steps k.. (each step's remainder flows through the later ones). */
static bool post_end(lx_detokenizer *d, int k) {
    if (k >= d->t->n_dec) return tok_utf8_stream_end(&d->u8, &d->out);
    const tok_dec *st = &d->t->dec[k];
    post_state *ps = &d->post[k];
    bool ok = true;
    if (st->kind == DEC_STRIP) {
        char c = st->a[0];
        int emit = ps->held - st->stop;
        for (int i = 0; ok && i < emit; i++) ok = next_put(d, k, &c, 1);
    } else if (st->kind == DEC_REPLACE) {
        ok = next_put(d, k, ps->pend.p, ps->pend.n);
    }
    ps->held = ps->skipped = 0;
    ps->started = false;
    ps->pend.n = 0;
    return ok && post_end(d, k + 1);
}

static bool stage_out(lx_detokenizer *d, const char *s, size_t n) {
    if (!n) return true;
    if (d->first_post < d->t->n_dec) return post_put(d, d->first_post, s, n);
    return emit_final(d, s, n);
}

/* ---- per-token steps -------------------------------------------------------------------------- */

static bool run_resolve(lx_detokenizer *d) {
    if (!d->run.n) return true;
    size_t i = 0, n = d->run.n;
    const uint8_t *u = (const uint8_t *)d->run.p;
    while (i < n) {
        int l = tok_utf8_seq(u + i, n - i);
        if (!l) break;
        i += (size_t)l;
    }
    bool ok;
    if (i == n) ok = stage_out(d, d->run.p, n);
    else {
        ok = true;
        for (size_t k = 0; ok && k < n; k++) ok = stage_out(d, "\xef\xbf\xbd", 3);
    }
    d->run.n = 0;
    return ok;
}

/* in -> out with every a replaced by b */
static bool replace_all(const char *s, size_t n, const char *a, size_t alen, const char *b,
                        size_t blen, tok_buf *out) {
    out->n = 0;
    size_t i = 0;
    while (i < n) {
        const char *f = alen && alen <= n - i ? memmem(s + i, n - i, a, alen) : NULL;
        if (!f) { tok_buf_put(out, s + i, n - i); break; }
        tok_buf_put(out, s + i, (size_t)(f - (s + i)));
        tok_buf_put(out, b, blen);
        i = (size_t)(f - s) + alen;
    }
    if (!out->p) tok_buf_put(out, "", 0);
    return !out->oom;
}

/* one token through the per-token steps of a Hugging Face chain */
static bool hf_token(lx_detokenizer *d, const char *s, size_t n) {
    const lx_tokenizer *t = d->t;
    if (d->has_fallback && tok_byte_of(s, n) >= 0) {
        if (!d->run.n) d->index++;
        char b = (char)tok_byte_of(s, n);
        return tok_buf_put(&d->run, &b, 1);
    }
    if (!run_resolve(d)) return false;
    int idx = d->index++;
    if (t->dec_none) {
        if (idx > 0 && !stage_out(d, " ", 1)) return false;
        return stage_out(d, s, n);
    }
    tok_buf *cur = &d->tok, *oth = &d->tmp;
    cur->n = 0;
    if (!tok_buf_put(cur, s, n)) return false;
    for (int k = 0; k < d->first_post; k++) {
        const tok_dec *st = &t->dec[k];
        switch (st->kind) {
        case DEC_REPLACE:
            if (!replace_all(cur->p, cur->n, st->a, st->alen, st->b, st->blen, oth)) return false;
            { tok_buf x = *cur; *cur = *oth; *oth = x; }
            break;
        case DEC_STRIP: {
            size_t b = 0, e = cur->n;
            for (int i = 0; i < st->start && e - b >= st->alen && st->alen &&
                            memcmp(cur->p + b, st->a, st->alen) == 0; i++)
                b += st->alen;
            for (int i = 0; i < st->stop && e - b >= st->alen && st->alen &&
                            memcmp(cur->p + e - st->alen, st->a, st->alen) == 0; i++)
                e -= st->alen;
            memmove(cur->p, cur->p + b, e - b);
            cur->n = e - b;
            break;
        }
        case DEC_METASPACE:
            /* Hugging Face drops every ▁ of the first token (prepend scheme not never) */
            if (!replace_all(cur->p, cur->n, st->a, st->alen, " ", idx == 0 && st->strip_first ? 0 : 1, oth))
                return false;
            { tok_buf x = *cur; *cur = *oth; *oth = x; }
            break;
        default: break; /* ByteFallback handled above; fusing steps end this stage */
        }
    }
    if (d->first_post < t->n_dec && t->dec[d->first_post].kind == DEC_BYTELEVEL) {
        /* chars to bytes; a token with a char outside the alphabet stays as it is */
        oth->n = 0;
        const uint8_t *u = (const uint8_t *)cur->p;
        bool all = true;
        for (size_t i = 0; i < cur->n && all;) {
            int l = tok_utf8_len(u[i]);
            if ((size_t)l > cur->n - i) { all = false; break; }
            int b = tok_cp_byte(tok_utf8_get(u + i, l));
            if (b < 0) all = false;
            else tok_buf_putc(oth, (char)b);
            i += (size_t)l;
        }
        if (oth->oom) return false;
        return all ? stage_out(d, oth->p, oth->n) : stage_out(d, cur->p, cur->n);
    }
    return stage_out(d, cur->p, cur->n);
}

/* llama.cpp's token_to_piece */
static bool gguf_token(lx_detokenizer *d, int32_t id) {
    const lx_tokenizer *t = d->t;
    const char *s = t->text[id];
    size_t n = t->len[id];
    uint8_t a = t->attr[id];
    int idx = d->index++;
    if (a & (TOK_SPECIAL | TOK_UNKNOWN | TOK_ADDED)) return stage_out(d, s, n);
    if (a & TOK_UNUSED) return true;
    if (!t->spm) {
        if (a & TOK_BYTE) return true;
        tok_buf *o = &d->tmp;
        o->n = 0;
        const uint8_t *u = (const uint8_t *)s;
        for (size_t i = 0; i < n;) {
            int l = tok_utf8_len(u[i]);
            if ((size_t)l > n - i) l = (int)(n - i);
            int b = tok_cp_byte(tok_utf8_get(u + i, l));
            if (b >= 0) tok_buf_putc(o, (char)b);
            else tok_buf_put(o, s + i, (size_t)l);
            i += (size_t)l;
        }
        return !o->oom && stage_out(d, o->p, o->n);
    }
    if (a & TOK_BYTE) {
        int b = tok_byte_of(s, n);
        char c = (char)(b < 0 ? 0 : b);
        return b < 0 || stage_out(d, &c, 1);
    }
    if (!replace_all(s, n, "\xe2\x96\x81", 3, " ", 1, &d->tmp)) return false;
    size_t skip = idx == 0 && t->spm_space_prefix && d->tmp.n && d->tmp.p[0] == ' ';
    return stage_out(d, d->tmp.p + skip, d->tmp.n - skip);
}

/* ---- public ----------------------------------------------------------------------------------- */

lx_detokenizer *lx_detokenizer_new(const lx_tokenizer *t, bool skip_special) {
    if (!t) {
        lx_set_error(LX_E_ARG, "lx_detokenizer_new: tokenizer is NULL");
        return NULL;
    }
    lx_detokenizer *d = calloc(1, sizeof *d);
    if (d) d->post = calloc((size_t)(t->n_dec ? t->n_dec : 1), sizeof *d->post);
    if (!d || !d->post) {
        free(d);
        lx_set_error(LX_E_OOM, "lx_detokenizer_new: out of host memory");
        return NULL;
    }
    d->t = t;
    d->skip_special = skip_special;
    d->first_post = t->n_dec;
    for (int k = 0; k < t->n_dec; k++)
        if (t->dec[k].kind == DEC_BYTELEVEL || t->dec[k].kind == DEC_FUSE) {
            d->first_post = k;
            break;
        }
    for (int k = 0; k < d->first_post; k++)
        if (t->dec[k].kind == DEC_BYTEFALLBACK) d->has_fallback = true;
    return d;
}

void lx_detokenizer_free(lx_detokenizer *d) {
    if (!d) return;
    if (d->post)
        for (int k = 0; k < d->t->n_dec; k++) free(d->post[k].pend.p);
    free(d->post);
    free(d->run.p);
    free(d->tok.p);
    free(d->tmp.p);
    free(d->out.p);
    free(d);
}

static const char *finish(lx_detokenizer *d, bool ok, size_t *len, const char *op) {
    if (!ok || d->out.oom) {
        lx_set_error(LX_E_OOM, "%s: out of host memory", op);
        if (len) *len = 0;
        return NULL;
    }
    if (!d->out.p) tok_buf_put(&d->out, "", 0);
    if (len) *len = d->out.n;
    return d->out.p;
}

const char *lx_detokenizer_push(lx_detokenizer *d, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!d) {
        lx_set_error(LX_E_ARG, "lx_detokenizer_push: detokenizer is NULL");
        return NULL;
    }
    const lx_tokenizer *t = d->t;
    if (id < 0 || id >= t->n_vocab || !t->text[id]) {
        lx_set_error(LX_E_ARG, "lx_detokenizer_push: token id %d is out of range (vocabulary of %d)",
                     (int)id, t->n_vocab);
        return NULL;
    }
    d->out.n = 0;
    bool ok = true;
    if (!(d->skip_special && (t->attr[id] & TOK_SPECIAL)))
        ok = t->gguf ? gguf_token(d, id) : hf_token(d, t->text[id], t->len[id]);
    return finish(d, ok, len, "lx_detokenizer_push");
}

const char *lx_detokenizer_flush(lx_detokenizer *d, size_t *len) {
    if (len) *len = 0;
    if (!d) {
        lx_set_error(LX_E_ARG, "lx_detokenizer_flush: detokenizer is NULL");
        return NULL;
    }
    d->out.n = 0;
    bool ok = run_resolve(d);
    ok = ok && (d->first_post < d->t->n_dec ? post_end(d, d->first_post)
                                           : tok_utf8_stream_end(&d->u8, &d->out));
    d->index = 0;
    return finish(d, ok, len, "lx_detokenizer_flush");
}

long lx_detokenize(const lx_tokenizer *t, const int32_t *ids, int n, bool skip_special, char *out,
                   size_t cap) {
    if (!t || n < 0 || (n > 0 && !ids) || (cap > 0 && !out)) {
        lx_set_error(LX_E_ARG, "lx_detokenize: %s", !t ? "tokenizer is NULL" : "bad ids, n or out");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->text[ids[i]]) {
            lx_set_error(LX_E_ARG, "lx_detokenize: ids[%d] = %d is out of range (vocabulary of %d)",
                         i, (int)ids[i], t->n_vocab);
            return -1;
        }
    lx_detokenizer *d = lx_detokenizer_new(t, skip_special);
    if (!d) return -1;
    tok_buf all = {0};
    bool ok = true;
    for (int i = 0; ok && i <= n; i++) {
        size_t l = 0;
        const char *p = i < n ? lx_detokenizer_push(d, ids[i], &l) : lx_detokenizer_flush(d, &l);
        ok = p && tok_buf_put(&all, p, l);
    }
    lx_detokenizer_free(d);
    long r = -1;
    if (!ok) {
        if (lx_error() == LX_OK) lx_set_error(LX_E_OOM, "lx_detokenize: out of host memory");
    } else {
        r = (long)all.n;
        if (cap) {
            size_t k = all.n < cap - 1 ? all.n : cap - 1;
            if (k) memcpy(out, all.p, k);
            out[k] = 0;
        }
    }
    free(all.p);
    return r;
}
