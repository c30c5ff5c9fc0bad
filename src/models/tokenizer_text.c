/*
 * tokenizer_text.c -- text handling for the tokenizer: buffers, UTF-8 (validation, repair,
 * streaming repair), regexes through PCRE2, and the normalizer and pre-tokenizer steps
 * (Hugging Face semantics; GGUF vocabularies are expressed with the same steps).
 */
#include "models/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"

/* ---- buffers -------------------------------------------------------------------------------- */

bool tok_buf_put(tok_buf *b, const void *s, size_t n) {
    if (b->oom) return false;
    if (n > SIZE_MAX / 2 - b->n) { b->oom = true; return false; }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return false; }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

bool tok_buf_putc(tok_buf *b, char c) { return tok_buf_put(b, &c, 1); }

bool tok_strs_push(tok_strs *s, const char *p, size_t n) {
    if (s->oom) return false;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        size_t *o = realloc(s->off, sizeof *o * (size_t)cap);
        if (o) s->off = o;
        size_t *l = o ? realloc(s->len, sizeof *l * (size_t)cap) : NULL;
        if (l) s->len = l;
        if (!o || !l || cap < 0) { s->oom = true; return false; }
        s->cap = cap;
    }
    s->off[s->n] = s->buf.n;
    s->len[s->n] = n;
    if (!tok_buf_put(&s->buf, p, n)) { s->oom = true; return false; }
    s->n++;
    return true;
}

void tok_strs_clear(tok_strs *s) { s->n = 0; s->buf.n = 0; }

void tok_strs_free(tok_strs *s) {
    free(s->buf.p);
    free(s->off);
    free(s->len);
    memset(s, 0, sizeof *s);
}

/* ---- UTF-8 ------------------------------------------------------------------------------------ */

/* The length a lead byte announces (2..4; 0 for a byte that starts no sequence) and the range
 * its second byte must lie in (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
static int utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0) *lo = 0xa0;
        if (c == 0xed) *hi = 0x9f;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0) *lo = 0x90;
        if (c == 0xf4) *hi = 0x8f;
        return 4;
    }
    return 0;
}

int tok_utf8_seq(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    uint8_t lo, hi;
    int len = utf8_lead(c, &lo, &hi);
    if (!len) return 0;
    if (n < (size_t)len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

int tok_utf8_put(char out[4], uint32_t cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

uint32_t tok_utf8_get(const uint8_t *s, int len) {
    switch (len) {
    case 1: return s[0];
    case 2: return (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
    case 3: return (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
    default:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
               (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
    }
}

static const char k_fffd[3] = {(char)0xef, (char)0xbf, (char)0xbd};

/* Length of the maximal valid prefix of a sequence at s (>= 1): what one U+FFFD replaces. */
static size_t utf8_bad_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    uint8_t lo, hi;
    int len = utf8_lead(c, &lo, &hi);
    if (!len) return 1;
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < (size_t)len && i < n && (s[i] & 0xc0) == 0x80) i++;
    }
    return i;
}

char *tok_utf8_sanitize(const char *s, size_t n, size_t *out_n, bool *oom) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        int l = tok_utf8_seq(u + i, n - i);
        if (!l) break;
        i += (size_t)l;
    }
    if (i == n) return NULL;
    tok_buf b = {0};
    tok_buf_put(&b, s, i);
    while (i < n) {
        int l = tok_utf8_seq(u + i, n - i);
        if (l) {
            tok_buf_put(&b, s + i, (size_t)l);
            i += (size_t)l;
        } else {
            tok_buf_put(&b, k_fffd, 3);
            i += utf8_bad_len(u + i, n - i);
        }
    }
    if (b.oom) { free(b.p); *oom = true; return NULL; }
    *out_n = b.n;
    return b.p;
}

/* Expected length of a sequence from its lead byte, 0 for a byte that cannot lead. */
static int lead_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) return 3;
    if (c >= 0xf0 && c <= 0xf4) return 4;
    return 0;
}

/* Whether c may follow the pending bytes p[0..np) of a sequence. */
static bool continues(const uint8_t *p, int np, uint8_t c) {
    if ((c & 0xc0) != 0x80) return false;
    if (np == 1) {
        if (p[0] == 0xe0) return c >= 0xa0;
        if (p[0] == 0xed) return c <= 0x9f;
        if (p[0] == 0xf0) return c >= 0x90;
        if (p[0] == 0xf4) return c <= 0x8f;
    }
    return true;
}

bool tok_utf8_stream_put(tok_utf8_stream *u, const uint8_t *s, size_t n, tok_buf *out) {
    size_t i = 0;
    while (i < n) {
        if (u->npend == 0) {
            /* fast path: a run of complete valid sequences */
            size_t j = i;
            while (j < n) {
                int l = tok_utf8_seq(s + j, n - j);
                if (!l) break;
                j += (size_t)l;
            }
            if (j > i && !tok_buf_put(out, s + i, j - i)) return false;
            i = j;
            if (i == n) break;
            int l = lead_len(s[i]);
            if (!l) {
                if (!tok_buf_put(out, k_fffd, 3)) return false;
                i++;
                continue;
            }
            u->pend[0] = s[i++];
            u->npend = 1;
            u->need = l;
            continue;
        }
        uint8_t c = s[i];
        if (continues(u->pend, u->npend, c)) {
            u->pend[u->npend++] = c;
            i++;
            if (u->npend == u->need) {
                if (!tok_buf_put(out, u->pend, (size_t)u->npend)) return false;
                u->npend = 0;
            }
        } else {
            /* the pending prefix is one maximal invalid subpart; c starts afresh */
            if (!tok_buf_put(out, k_fffd, 3)) return false;
            u->npend = 0;
        }
    }
    return true;
}

bool tok_utf8_stream_end(tok_utf8_stream *u, tok_buf *out) {
    bool ok = true;
    if (u->npend) ok = tok_buf_put(out, k_fffd, 3);
    u->npend = 0;
    return ok;
}

bool tok_is_ws(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

/* ---- regexes ---------------------------------------------------------------------------------- */

/* Oniguruma's \s (and llama.cpp's whitespace set) include U+0085, PCRE2's UCP \s does not. */
static bool translate_pattern(const char *p, size_t n, tok_buf *out) {
    bool in_class = false;
    size_t class_start = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if (d == 's') tok_buf_put(out, in_class ? "\\s\\x{85}" : "[\\s\\x{85}]", in_class ? 8 : 10);
            else if (d == 'S' && !in_class) tok_buf_put(out, "[^\\s\\x{85}]", 11);
            else tok_buf_put(out, p + i, 2);
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            tok_buf_putc(out, c);
            class_start = i + 1;
            if (class_start < n && p[class_start] == '^') {
                tok_buf_putc(out, '^');
                class_start++;
                i++;
            }
            /* a ']' first in the class is a literal */
            if (class_start < n && p[class_start] == ']') {
                tok_buf_putc(out, ']');
                i++;
            }
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') {
            /* POSIX class [:name:] */
            const char *e = NULL;
            for (size_t k = i + 2; k + 1 < n; k++)
                if (p[k] == ':' && p[k + 1] == ']') { e = p + k; break; }
            if (e) {
                size_t l = (size_t)(e - (p + i)) + 2;
                tok_buf_put(out, p + i, l);
                i += l - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = false;
        tok_buf_putc(out, c);
    }
    return !out->oom;
}

pcre2_code *tok_regex_compile(const char *pat, size_t len, const char *file, const char *what) {
    tok_buf b = {0};
    if (!translate_pattern(pat, len, &b)) {
        free(b.p);
        lx_set_error(LX_E_OOM, "lx_tokenizer_load: %s: out of host memory", file);
        return NULL;
    }
    int err = 0;
    PCRE2_SIZE eoff = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.p, b.n, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    free(b.p);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        lx_set_error(LX_E_FORMAT, "lx_tokenizer_load: %s: %s: bad regex '%.*s': %s", file, what,
                     (int)(len > 200 ? 200 : len), pat, (const char *)msg);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter runs when JIT cannot */
    return re;
}

int tok_regex_find(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                   size_t start, size_t *ms, size_t *me) {
    while (start < n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                             NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            lx_set_error(LX_E_INTERNAL, "lx_tokenize: regex match failed: %s", (const char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* empty match: look again from the next character */
        start = ov[1] + (size_t)tok_utf8_len((uint8_t)s[ov[1] < n ? ov[1] : n - 1]);
        if (ov[1] >= n) return 0;
    }
    return 0;
}

/* ---- normalizers ------------------------------------------------------------------------------ */

static bool all_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] >= 0x80) return false;
    return true;
}

static bool set_oom(void) {
    lx_set_error(LX_E_OOM, "lx_tokenize: out of host memory");
    return false;
}

/* Literal replace-all (left to right, non-overlapping, as Rust's str::replace). */
static bool replace_lit(const char *s, size_t n, const char *a, size_t alen, const char *b,
                        size_t blen, tok_buf *out) {
    size_t i = 0;
    if (alen == 0) return tok_buf_put(out, s, n);
    while (i < n) {
        const char *f = alen <= n - i ? memmem(s + i, n - i, a, alen) : NULL;
        if (!f) { tok_buf_put(out, s + i, n - i); break; }
        tok_buf_put(out, s + i, (size_t)(f - (s + i)));
        tok_buf_put(out, b, blen);
        i = (size_t)(f - s) + alen;
    }
    return !out->oom;
}

static bool replace_re(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                       const char *b, size_t blen, tok_buf *out) {
    size_t pos = 0, ms, me;
    for (;;) {
        int r = tok_regex_find(re, md, s, n, pos, &ms, &me);
        if (r < 0) return false;
        if (r == 0) break;
        tok_buf_put(out, s + pos, ms - pos);
        tok_buf_put(out, b, blen);
        pos = me;
    }
    tok_buf_put(out, s + pos, n - pos);
    return !out->oom;
}

static bool normalize_one(const tok_norm *st, const char *s, size_t n, tok_buf *out,
                          tok_scratch *sc) {
    out->n = 0;
    switch (st->kind) {
    case NORM_NFC: case NORM_NFKC: case NORM_NFD: case NORM_NFKD: {
        if (all_ascii(s, n)) return tok_buf_put(out, s, n) || set_oom();
        int opt = UTF8PROC_STABLE;
        opt |= (st->kind == NORM_NFC || st->kind == NORM_NFKC) ? UTF8PROC_COMPOSE
                                                                 : UTF8PROC_DECOMPOSE;
        if (st->kind == NORM_NFKC || st->kind == NORM_NFKD) opt |= UTF8PROC_COMPAT;
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                          (utf8proc_option_t)opt);
        if (r < 0) {
            free(dst);
            if (r == UTF8PROC_ERROR_NOMEM) return set_oom();
            return tok_buf_put(out, s, n) || set_oom(); /* cannot happen on valid text */
        }
        bool ok = tok_buf_put(out, dst, (size_t)r);
        free(dst);
        return ok || set_oom();
    }
    case NORM_LOWER: {
        const uint8_t *u = (const uint8_t *)s;
        for (size_t i = 0; i < n;) {
            int l = tok_utf8_len(u[i]);
            if (i + (size_t)l > n) l = (int)(n - i);
            uint32_t cp = tok_utf8_get(u + i, l);
            char enc[4];
            int el = tok_utf8_put(enc, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
            tok_buf_put(out, enc, (size_t)el);
            i += (size_t)l;
        }
        return !out->oom || set_oom();
    }
    case NORM_STRIP: {
        const uint8_t *u = (const uint8_t *)s;
        size_t b = 0, e = n;
        if (st->left)
            while (b < e) {
                int l = tok_utf8_len(u[b]);
                if (!tok_is_ws(tok_utf8_get(u + b, l))) break;
                b += (size_t)l;
            }
        if (st->right)
            while (e > b) {
                size_t k = e - 1;
                while (k > b && (u[k] & 0xc0) == 0x80) k--;
                if (!tok_is_ws(tok_utf8_get(u + k, (int)(e - k)))) break;
                e = k;
            }
        return tok_buf_put(out, s + b, e - b) || set_oom();
    }
    case NORM_PREPEND:
        /* Hugging Face prepends only to a non-empty text */
        if (n && !tok_buf_put(out, st->a, st->alen)) return set_oom();
        return tok_buf_put(out, s, n) || set_oom();
    case NORM_REPLACE:
        if (st->re) return replace_re(st->re, sc->md, s, n, st->b, st->blen, out) || (out->oom && set_oom());
        return replace_lit(s, n, st->a, st->alen, st->b, st->blen, out) || set_oom();
    }
    return false;
}

bool tok_normalize(const lx_tokenizer *t, const char *s, size_t n, tok_buf *out, tok_scratch *sc) {
    out->n = 0;
    if (!t->n_norm) return tok_buf_put(out, s, n) || set_oom();
    /* ping-pong between out and sc->tmp */
    tok_buf *cur = out, *other = &sc->tmp;
    if (t->n_norm % 2 == 0) { cur = &sc->tmp; other = out; }
    if (!normalize_one(&t->norm[0], s, n, cur, sc)) return false;
    for (int i = 1; i < t->n_norm; i++) {
        if (!normalize_one(&t->norm[i], cur->p ? cur->p : "", cur->n, other, sc)) return false;
        tok_buf *x = cur;
        cur = other;
        other = x;
    }
    return true;
}

/* ---- pre-tokenizers --------------------------------------------------------------------------- */

typedef struct {
    size_t s, e;
    bool match;
} span;

typedef struct {
    span *v;
    int n, cap;
    bool oom;
} spans;

static void spans_push(spans *sp, size_t s, size_t e, bool m) {
    if (sp->oom) return;
    if (sp->n == sp->cap) {
        int cap = sp->cap ? sp->cap * 2 : 32;
        span *v = realloc(sp->v, sizeof *v * (size_t)cap);
        if (!v) { sp->oom = true; return; }
        sp->v = v;
        sp->cap = cap;
    }
    sp->v[sp->n++] = (span){s, e, m};
}

/* Matches of st's pattern over s, with the gaps, covering s in order. */
static bool find_matches(const tok_pre *st, const char *s, size_t n, pcre2_match_data *md,
                         spans *sp) {
    size_t pos = 0, ms, me;
    for (;;) {
        int r;
        if (st->re) {
            r = tok_regex_find(st->re, md, s, n, pos, &ms, &me);
            if (r < 0) return false;
        } else {
            const char *f = st->litlen && st->litlen <= n - pos ? memmem(s + pos, n - pos, st->lit, st->litlen) : NULL;
            r = f != NULL;
            if (f) { ms = (size_t)(f - s); me = ms + st->litlen; }
        }
        if (!r) break;
        if (ms > pos) spans_push(sp, pos, ms, false);
        spans_push(sp, ms, me, true);
        pos = me;
    }
    if (pos < n) spans_push(sp, pos, n, false);
    return true;
}

/* Hugging Face's split by behaviour over the (offsets, is_match) list. */
static bool split_push(const tok_pre *st, const char *s, size_t n, pcre2_match_data *md,
                       tok_strs *out) {
    spans sp = {0};
    if (!find_matches(st, s, n, md, &sp)) { free(sp.v); return false; }
    if (sp.oom) { free(sp.v); return set_oom(); }
    if (st->invert)
        for (int i = 0; i < sp.n; i++) sp.v[i].match = !sp.v[i].match;
    /* merge according to the behaviour into (s, e, remove) */
    int m = 0;
    bool prev = false;
    switch (st->behavior) {
    case SPLIT_ISOLATED:
        for (int i = 0; i < sp.n; i++) sp.v[i].match = false;
        m = sp.n;
        break;
    case SPLIT_REMOVED:
        m = sp.n;
        break;
    case SPLIT_CONTIGUOUS:
        for (int i = 0; i < sp.n; i++) {
            bool im = sp.v[i].match;
            if (im == prev && m > 0) sp.v[m - 1].e = sp.v[i].e;
            else sp.v[m++] = (span){sp.v[i].s, sp.v[i].e, false};
            prev = im;
        }
        for (int i = 0; i < m; i++) sp.v[i].match = false;
        break;
    case SPLIT_PREV:
        for (int i = 0; i < sp.n; i++) {
            bool im = sp.v[i].match;
            if (im && !prev && m > 0) sp.v[m - 1].e = sp.v[i].e;
            else sp.v[m++] = (span){sp.v[i].s, sp.v[i].e, false};
            prev = im;
        }
        break;
    case SPLIT_NEXT: {
        /* walk backwards, merging a match into the piece after it, then restore the order */
        span *r = malloc(sizeof *r * (size_t)(sp.n ? sp.n : 1));
        if (!r) { free(sp.v); return set_oom(); }
        for (int i = sp.n - 1; i >= 0; i--) {
            bool im = sp.v[i].match;
            if (im && !prev && m > 0) r[m - 1].s = sp.v[i].s;
            else r[m++] = (span){sp.v[i].s, sp.v[i].e, false};
            prev = im;
        }
        for (int i = 0; i < m; i++) sp.v[i] = r[m - 1 - i];
        free(r);
        break;
    }
    }
    bool ok = true;
    for (int i = 0; i < m && ok; i++)
        if (!sp.v[i].match && sp.v[i].e > sp.v[i].s)
            ok = tok_strs_push(out, s + sp.v[i].s, sp.v[i].e - sp.v[i].s);
    free(sp.v);
    return ok || set_oom();
}

static bool bytelevel_push(const char *s, size_t n, tok_strs *out, tok_buf *tmp) {
    tmp->n = 0;
    for (size_t i = 0; i < n; i++) {
        char enc[4];
        int l = tok_utf8_put(enc, tok_byte_cp((uint8_t)s[i]));
        tok_buf_put(tmp, enc, (size_t)l);
    }
    if (tmp->oom) return set_oom();
    return tok_strs_push(out, tmp->p ? tmp->p : "", tmp->n) || set_oom();
}

static bool pre_one(const tok_pre *st, const tok_strs *in, bool first, tok_strs *out,
                    tok_scratch *sc) {
    tok_strs_clear(out);
    for (int i = 0; i < in->n; i++) {
        const char *s = in->buf.p + in->off[i];
        size_t n = in->len[i];
        switch (st->kind) {
        case PRE_SPLIT: case PRE_DIGITS: case PRE_WHITESPACE_SPLIT: case PRE_PUNCT:
            if (!split_push(st, s, n, sc->md, out)) return false;
            break;
        case PRE_BYTELEVEL: {
            tok_buf *pre = &sc->tmp;
            pre->n = 0;
            if (st->add_prefix_space && (n == 0 || s[0] != ' ')) tok_buf_putc(pre, ' ');
            tok_buf_put(pre, s, n);
            if (pre->oom) return set_oom();
            /* split the prefixed text first (into a private list), then map each piece */
            tok_strs parts = {0};
            bool ok;
            if (st->re) {
                tok_pre iso = *st;
                iso.behavior = SPLIT_ISOLATED;
                iso.invert = false;
                ok = split_push(&iso, pre->p, pre->n, sc->md, &parts);
            } else ok = pre->n == 0 || tok_strs_push(&parts, pre->p, pre->n) || set_oom();
            tok_buf enc = {0};
            for (int k = 0; ok && k < parts.n; k++)
                ok = bytelevel_push(parts.buf.p + parts.off[k], parts.len[k], out, &enc);
            free(enc.p);
            tok_strs_free(&parts);
            if (!ok) return false;
            break;
        }
        case PRE_METASPACE: {
            tok_buf *m = &sc->tmp;
            m->n = 0;
            bool starts = n >= st->repllen && memcmp(s, st->repl, st->repllen) == 0;
            bool starts_space = n && s[0] == ' ';
            bool pre = st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && first && i == 0);
            if (pre && !starts && !starts_space) tok_buf_put(m, st->repl, st->repllen);
            if (!replace_lit(s, n, " ", 1, st->repl, st->repllen, m)) return set_oom();
            if (st->split) {
                tok_pre sp = {.kind = PRE_SPLIT, .lit = st->repl, .litlen = st->repllen,
                              .behavior = SPLIT_NEXT};
                tok_buf copy = {0};
                if (!tok_buf_put(&copy, m->p ? m->p : "", m->n)) { free(copy.p); return set_oom(); }
                bool ok = split_push(&sp, copy.p, copy.n, sc->md, out);
                free(copy.p);
                if (!ok) return false;
            } else if (m->n && !tok_strs_push(out, m->p, m->n)) return set_oom();
            break;
        }
        }
    }
    return !out->oom || set_oom();
}

bool tok_pretokenize(const lx_tokenizer *t, const char *s, size_t n, bool first, tok_strs *out,
                     tok_scratch *sc) {
    tok_strs_clear(out);
    if (!n) return true;
    if (!t->n_pre) return tok_strs_push(out, s, n) || set_oom();
    tok_strs *a = &sc->a, *b = &sc->b;
    tok_strs_clear(a);
    if (!tok_strs_push(a, s, n)) return set_oom();
    for (int i = 0; i < t->n_pre; i++) {
        tok_strs *dst = i == t->n_pre - 1 ? out : b;
        if (!pre_one(&t->pre[i], a, first, dst, sc)) return false;
        if (dst == b) { tok_strs x = *a; *a = *b; *b = x; }
    }
    return true;
}
