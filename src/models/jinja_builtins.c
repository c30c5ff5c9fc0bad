/*
 * jinja_builtins.c -- what templates call: jinja2's filters and tests, Python's str / dict
 * methods, and the globals (range, namespace, dict, and HF's raise_exception and strftime_now).
 * Case mapping (upper, lower, title, capitalize) covers ASCII letters only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "models/jinja_int.h"

enum {
    /* globals */
    B_RANGE = 1, B_NAMESPACE, B_DICT, B_RAISE, B_STRFTIME,
    /* str methods */
    B_STRIP, B_LSTRIP, B_RSTRIP, B_SPLIT, B_RSPLIT, B_STARTSWITH, B_ENDSWITH, B_UPPER, B_LOWER,
    B_REPLACE, B_TITLE, B_CAPITALIZE, B_FIND, B_RFIND, B_COUNT, B_JOIN, B_FORMAT, B_ISDIGIT,
    B_ISALPHA, B_ISSPACE, B_SPLITLINES,
    /* dict methods */
    B_ITEMS, B_KEYS, B_VALUES, B_GET,
    /* loop */
    B_CYCLE
};

static const struct { const char *name; int id; } str_methods[] = {
    {"strip", B_STRIP}, {"lstrip", B_LSTRIP}, {"rstrip", B_RSTRIP}, {"split", B_SPLIT},
    {"rsplit", B_RSPLIT}, {"startswith", B_STARTSWITH}, {"endswith", B_ENDSWITH},
    {"upper", B_UPPER}, {"lower", B_LOWER}, {"replace", B_REPLACE}, {"title", B_TITLE},
    {"capitalize", B_CAPITALIZE}, {"find", B_FIND}, {"rfind", B_RFIND}, {"count", B_COUNT},
    {"join", B_JOIN}, {"format", B_FORMAT}, {"isdigit", B_ISDIGIT}, {"isalpha", B_ISALPHA},
    {"isspace", B_ISSPACE}, {"splitlines", B_SPLITLINES},
};
static const struct { const char *name; int id; } dict_methods[] = {
    {"items", B_ITEMS}, {"keys", B_KEYS}, {"values", B_VALUES}, {"get", B_GET},
};

static jv *mkfn(jj_ctx *c, int id, jv *self, const char *name) {
    jv *f = jv_dict(c, JV_FUNC);
    if (!f) return NULL;
    f->u.fn.id = id;
    f->u.fn.self = self;
    f->u.fn.name = name;
    return f;
}

jv *jj_method(jj_ctx *c, jv *self, const char *name) {
    if (self->t == JV_STR) {
        for (size_t i = 0; i < sizeof str_methods / sizeof str_methods[0]; i++)
            if (!strcmp(name, str_methods[i].name)) return mkfn(c, str_methods[i].id, self, str_methods[i].name);
    } else if (self->t == JV_DICT) {
        for (size_t i = 0; i < sizeof dict_methods / sizeof dict_methods[0]; i++)
            if (!strcmp(name, dict_methods[i].name)) return mkfn(c, dict_methods[i].id, self, dict_methods[i].name);
    } else if (self->t == JV_LOOP && !strcmp(name, "cycle")) {
        return mkfn(c, B_CYCLE, self, "cycle");
    }
    return NULL;
}

jv *jj_global(jj_ctx *c, const char *name) {
    static const struct { const char *name; int id; } g[] = {
        {"range", B_RANGE}, {"namespace", B_NAMESPACE}, {"dict", B_DICT},
        {"raise_exception", B_RAISE}, {"strftime_now", B_STRFTIME},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (!strcmp(name, g[i].name)) return mkfn(c, g[i].id, NULL, g[i].name);
    return NULL;
}

/* ---- argument helpers ---- */

static jv *arg(const jj_args *a, int pos, const char *kw) {
    if (pos >= 0 && pos < a->npos) return a->pos[pos];
    if (kw)
        for (int i = 0; i < a->nkw; i++)
            if (!strcmp(a->kwn[i], kw)) return a->kwv[i];
    return NULL;
}

static bool want_str(jj_ctx *c, const jv *v, const char *what, const jj_node *at) {
    if (v->t == JV_STR) return true;
    if (v->t == JV_UNDEF) jj_fail(c, at, "%s: '%s' is undefined", what, v->u.undef.what ? v->u.undef.what : "value");
    else jj_fail(c, at, "%s: expected a string, not %s", what, jv_type_name(v));
    return false;
}

static bool want_int(jj_ctx *c, const jv *v, const char *what, int64_t *out, const jj_node *at) {
    if (v->t == JV_INT) { *out = v->u.i; return true; }
    if (v->t == JV_BOOL) { *out = v->u.b; return true; }
    jj_fail(c, at, "%s: expected an integer, not %s", what, jv_type_name(v));
    return false;
}

/* ---- string helpers (code points; Python's whitespace) ---- */

static bool cp_in(const char *s, size_t n, size_t i, const jv *chars, size_t *clen) {
    if (!chars) return jj_is_space_at(s, n, i, clen);
    *clen = jj_utf8_offset(s + i, n - i, 1);
    for (size_t k = 0; k < chars->u.s.n;) {
        size_t l = jj_utf8_offset(chars->u.s.p + k, chars->u.s.n - k, 1);
        if (l == *clen && !memcmp(chars->u.s.p + k, s + i, l)) return true;
        k += l;
    }
    return false;
}

static jv *strip(jj_ctx *c, const jv *s, const jv *chars, bool left, bool right) {
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, a = 0, b = n, l;
    if (left)
        while (a < n && cp_in(p, n, a, chars, &l)) a += l;
    if (right) {
        /* the end after the last code point not stripped */
        size_t end = a;
        for (size_t i = a; i < n; i += l)
            if (!cp_in(p, n, i, chars, &l)) end = i + l;
        b = end;
    }
    return jv_str_own(c, p + a, b - a);
}

static char up(char ch) { return ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch; }
static char low(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch; }
static bool alpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }

/* 0 upper, 1 lower, 2 str.title, 3 capitalize, 4 jinja2's title filter */
static jv *recase(jj_ctx *c, const jv *s, int mode) {
    char *d = jj_alloc(&c->arena, s->u.s.n + 1);
    if (!d) return jj_oom(c);
    bool prev_cased = false, word_start = true;
    for (size_t i = 0; i < s->u.s.n; i++) {
        char ch = s->u.s.p[i];
        switch (mode) {
        case 0: d[i] = up(ch); break;
        case 1: d[i] = low(ch); break;
        case 2:
            d[i] = alpha(ch) ? (prev_cased ? low(ch) : up(ch)) : ch;
            prev_cased = alpha(ch);
            break;
        case 3: d[i] = i == 0 ? up(ch) : low(ch); break;
        default: {
            /* words start after runs of - whitespace ( { [ < */
            bool sep = ch == '-' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
                       ch == '\v' || ch == '\f' || ch == '(' || ch == '{' || ch == '[' || ch == '<';
            if (sep) { d[i] = ch; word_start = true; }
            else { d[i] = word_start ? up(ch) : low(ch); word_start = false; }
        }
        }
    }
    return jv_str_own(c, d, s->u.s.n);
}

static const char *find_sub(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    for (size_t i = 0; i + nn <= hn; i++)
        if (!memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

static jv *split(jj_ctx *c, const jv *s, const jv *sep, int64_t maxsplit, const jj_node *at) {
    jv *l = jv_list(c, 0);
    if (!l) return NULL;
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, i = 0, k;
    if (!sep || sep->t == JV_NONE) {
        for (;;) {
            while (i < n && jj_is_space_at(p, n, i, &k)) i += k;
            if (i >= n) break;
            size_t start = i;
            if (maxsplit >= 0 && (int64_t)l->u.l.n >= maxsplit) {
                /* the rest, its trailing whitespace kept */
                jv *x = jv_str_own(c, p + start, n - start);
                if (!x || !jv_list_push(c, l, x)) return NULL;
                break;
            }
            while (i < n && !jj_is_space_at(p, n, i, &k)) i += k;
            jv *x = jv_str_own(c, p + start, i - start);
            if (!x || !jv_list_push(c, l, x)) return NULL;
        }
        return l;
    }
    if (!want_str(c, sep, "split", at)) return NULL;
    if (sep->u.s.n == 0) return jj_fail(c, at, "empty separator");
    for (;;) {
        const char *m = maxsplit >= 0 && (int64_t)l->u.l.n >= maxsplit ? NULL
                                                                       : find_sub(p + i, n - i, sep->u.s.p, sep->u.s.n);
        size_t end = m ? (size_t)(m - p) : n;
        jv *x = jv_str_own(c, p + i, end - i);
        if (!x || !jv_list_push(c, l, x)) return NULL;
        if (!m) break;
        i = end + sep->u.s.n;
    }
    return l;
}

static jv *rsplit(jj_ctx *c, const jv *s, const jv *sep, int64_t maxsplit, const jj_node *at) {
    if (maxsplit < 0 || !sep || sep->t == JV_NONE) {
        if (maxsplit < 0) return split(c, s, sep, -1, at);
        return jj_fail(c, at, "rsplit with maxsplit and no separator is not supported");
    }
    if (!want_str(c, sep, "rsplit", at)) return NULL;
    if (sep->u.s.n == 0) return jj_fail(c, at, "empty separator");
    /* the pieces from the right, then reversed */
    jv *rev = jv_list(c, 0);
    if (!rev) return NULL;
    const char *p = s->u.s.p;
    size_t end = s->u.s.n, nn = sep->u.s.n;
    while ((int64_t)rev->u.l.n < maxsplit) {
        size_t found = SIZE_MAX;
        for (size_t i = end; i >= nn; i--)
            if (!memcmp(p + i - nn, sep->u.s.p, nn)) { found = i - nn; break; }
        if (found == SIZE_MAX) break;
        jv *x = jv_str_own(c, p + found + nn, end - found - nn);
        if (!x || !jv_list_push(c, rev, x)) return NULL;
        end = found;
    }
    jv *x = jv_str_own(c, p, end);
    if (!x || !jv_list_push(c, rev, x)) return NULL;
    jv *l = jv_list(c, rev->u.l.n);
    if (!l) return NULL;
    for (size_t i = rev->u.l.n; i-- > 0;)
        if (!jv_list_push(c, l, rev->u.l.v[i])) return NULL;
    return l;
}

static jv *replace(jj_ctx *c, const jv *s, const jv *old, const jv *rep, int64_t count) {
    jj_buf b = {0};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, i = 0;
    int64_t done = 0;
    bool ok = true;
    if (old->u.s.n == 0) {
        /* new goes before every code point and at the end */
        while (ok && (count < 0 || done < count)) {
            ok = jj_buf_add(&b, rep->u.s.p, rep->u.s.n);
            done++;
            if (i >= n) break;
            size_t l = jj_utf8_offset(p + i, n - i, 1);
            ok = ok && jj_buf_add(&b, p + i, l);
            i += l;
        }
        ok = ok && jj_buf_add(&b, p + i, n - i);
    } else {
        while (ok) {
            const char *m = count >= 0 && done >= count ? NULL : find_sub(p + i, n - i, old->u.s.p, old->u.s.n);
            if (!m) { ok = jj_buf_add(&b, p + i, n - i); break; }
            ok = jj_buf_add(&b, p + i, (size_t)(m - (p + i))) && jj_buf_add(&b, rep->u.s.p, rep->u.s.n);
            i = (size_t)(m - p) + old->u.s.n;
            done++;
        }
    }
    jv *r = ok ? jv_str(c, b.p ? b.p : "", b.n) : jj_buf_fail(c, &b, NULL, "string");
    jj_buf_free(&b);
    return r;
}

static bool prefix_test(jj_ctx *c, const jv *s, const jv *x, bool suffix, bool *out, const jj_node *at) {
    if (x->t == JV_LIST && x->tuple) {
        *out = false;
        for (size_t i = 0; i < x->u.l.n && !*out; i++)
            if (!prefix_test(c, s, x->u.l.v[i], suffix, out, at)) return false;
        return true;
    }
    if (x->t != JV_STR) {
        jj_fail(c, at, "%s first arg must be str or a tuple of str, not %s", suffix ? "endswith" : "startswith", jv_type_name(x));
        return false;
    }
    size_t n = x->u.s.n;
    *out = n <= s->u.s.n && !memcmp(suffix ? s->u.s.p + s->u.s.n - n : s->u.s.p, x->u.s.p, n);
    return true;
}

/* the items a filter or a for loop walks: a list's items, a dict's keys, a string's
 * characters; `what` (the filter) prefixes the error, NULL for a loop */
jv *jj_iterable(jj_ctx *c, jv *v, const char *what, const jj_node *at) {
    switch (v->t) {
    case JV_LIST: return v;
    case JV_UNDEF: return jv_list(c, 0);
    case JV_DICT: {
        jv *l = jv_list(c, v->u.d.n);
        if (!l) return NULL;
        for (size_t i = 0; i < v->u.d.n; i++)
            if (!jv_list_push(c, l, v->u.d.k[i])) return NULL;
        return l;
    }
    case JV_STR: {
        jv *l = jv_list(c, 0);
        if (!l) return NULL;
        for (size_t i = 0; i < v->u.s.n;) {
            size_t k = jj_utf8_offset(v->u.s.p + i, v->u.s.n - i, 1);
            jv *s = jv_str_own(c, v->u.s.p + i, k);
            if (!s || !jv_list_push(c, l, s)) return NULL;
            i += k;
        }
        return l;
    }
    default:
        if (!what) return jj_fail(c, at, "'%s' object is not iterable", jv_type_name(v));
        return jj_fail(c, at, "%s: '%s' object is not iterable", what, jv_type_name(v));
    }
}

static jv *str_join(jj_ctx *c, const jv *sep, jv *items, bool strict, const jj_node *at) {
    jj_buf b = {0};
    bool ok = true;
    for (size_t i = 0; ok && i < items->u.l.n; i++) {
        jv *x = items->u.l.v[i];
        if (strict && x->t != JV_STR) {
            jj_buf_free(&b);
            return jj_fail(c, at, "sequence item %zu: expected str instance, %s found", i, jv_type_name(x));
        }
        if (i) ok = jj_buf_add(&b, sep->u.s.p, sep->u.s.n);
        ok = ok && jv_to_str(c, x, &b);
    }
    jv *r = ok ? jv_str(c, b.p ? b.p : "", b.n) : c->failed ? NULL : jj_buf_fail(c, &b, at, "string");
    jj_buf_free(&b);
    return r;
}

/* '{} and {0} and {name}'.format(...) without format specs */
static jv *str_format(jj_ctx *c, const jv *s, const jj_args *a, const jj_node *at) {
    jj_buf b = {0};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    int auto_i = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '{' && i + 1 < n && p[i + 1] == '{') { if (!jj_buf_add(&b, "{", 1)) goto oom; i++; continue; }
        if (p[i] == '}' && i + 1 < n && p[i + 1] == '}') { if (!jj_buf_add(&b, "}", 1)) goto oom; i++; continue; }
        if (p[i] != '{') { if (!jj_buf_add(&b, p + i, 1)) goto oom; continue; }
        const char *e = memchr(p + i, '}', n - i);
        if (!e) { jj_buf_free(&b); return jj_fail(c, at, "format: single '{' encountered in format string"); }
        size_t fl = (size_t)(e - (p + i + 1));
        const char *field = p + i + 1;
        jv *v = NULL;
        if (memchr(field, ':', fl) || memchr(field, '!', fl)) {
            jj_buf_free(&b);
            return jj_fail(c, at, "format: conversions and format specs are not supported");
        }
        if (fl == 0) v = arg(a, auto_i++, NULL);
        else if (field[0] >= '0' && field[0] <= '9') v = arg(a, atoi(field), NULL);
        else {
            for (int k = 0; k < a->nkw; k++)
                if (strlen(a->kwn[k]) == fl && !memcmp(a->kwn[k], field, fl)) v = a->kwv[k];
        }
        if (!v) { jj_buf_free(&b); return jj_fail(c, at, "format: no argument for field '{%.*s}'", (int)fl, field); }
        if (!jv_to_str(c, v, &b)) { jj_buf_free(&b); return NULL; }
        i = (size_t)(e - p);
    }
    jv *r = jv_str(c, b.p ? b.p : "", b.n);
    jj_buf_free(&b);
    return r;
oom:
    jj_buf_free(&b);
    return jj_buf_fail(c, &b, at, "string");
}

static jv *items_of(jj_ctx *c, jv *d, const jj_node *at) {
    if (d->t == JV_UNDEF) return jv_list(c, 0);
    if (d->t != JV_DICT && d->t != JV_NS) return jj_fail(c, at, "Can only get item pairs from a mapping.");
    jv *l = jv_list(c, d->u.d.n);
    if (!l) return NULL;
    for (size_t i = 0; i < d->u.d.n; i++) {
        jv *t = jv_list(c, 2);
        if (!t) return NULL;
        t->tuple = true;
        if (!jv_list_push(c, t, d->u.d.k[i]) || !jv_list_push(c, t, d->u.d.v[i]) || !jv_list_push(c, l, t)) return NULL;
    }
    return l;
}

static jv *strftime_now(jj_ctx *c, const jv *fmt, const jj_node *at) {
    if (!want_str(c, fmt, "strftime_now", at)) return NULL;
    if (fmt->u.s.n > 256 || memchr(fmt->u.s.p, '\0', fmt->u.s.n)) return jj_fail(c, at, "strftime_now: format too long");
    if (fmt->u.s.n == 0) return jv_str_own(c, "", 0);
    struct tm tm;
    time_t t = c->have_now ? (time_t)c->now : time(NULL);
    if (!(c->have_now ? gmtime_r(&t, &tm) : localtime_r(&t, &tm))) return jj_fail(c, at, "strftime_now: bad time");
    char f[260], out[2048];
    memcpy(f, fmt->u.s.p, fmt->u.s.n);
    f[fmt->u.s.n] = '\0';
    size_t n = strftime(out, sizeof out, f, &tm);
    return jv_str(c, out, n);
}

jv *jj_call_builtin(jj_ctx *c, const jv *fn, const jj_args *a, const jj_node *at) {
    jv *self = fn->u.fn.self;
    jv *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
    int64_t k;
    switch (fn->u.fn.id) {
    case B_RANGE: {
        int64_t start = 0, stop, stepv = 1;
        if (a->npos < 1 || a->npos > 3) return jj_fail(c, at, "range expected 1 to 3 arguments, got %d", a->npos);
        if (a->npos == 1) { if (!want_int(c, a0, "range", &stop, at)) return NULL; }
        else {
            if (!want_int(c, a0, "range", &start, at) || !want_int(c, a1, "range", &stop, at)) return NULL;
            if (a->npos == 3 && !want_int(c, a->pos[2], "range", &stepv, at)) return NULL;
        }
        if (stepv == 0) return jj_fail(c, at, "range() arg 3 must not be zero");
        double count = stepv > 0 ? ceil(((double)stop - (double)start) / (double)stepv)
                                 : ceil(((double)start - (double)stop) / -(double)stepv);
        if (count < 0) count = 0;
        if (count > (double)JJ_MAX_RANGE) return jj_fail(c, at, "range() of more than %ld items is refused", JJ_MAX_RANGE);
        jv *l = jv_list(c, (size_t)count);
        if (!l) return NULL;
        for (int64_t i = 0, v = start; i < (int64_t)count; i++, v += stepv) {
            jv *x = jv_int(c, v);
            if (!x || !jv_list_push(c, l, x)) return NULL;
        }
        return l;
    }
    case B_NAMESPACE:
    case B_DICT: {
        jv *d = jv_dict(c, fn->u.fn.id == B_NAMESPACE ? JV_NS : JV_DICT);
        if (!d) return NULL;
        if (a0) {
            if (a->npos > 1 || (a0->t != JV_DICT && a0->t != JV_NS))
                return jj_fail(c, at, "%s() takes at most one mapping argument", fn->u.fn.name);
            for (size_t i = 0; i < a0->u.d.n; i++)
                if (!jv_dict_set(c, d, a0->u.d.k[i], a0->u.d.v[i])) return NULL;
        }
        for (int i = 0; i < a->nkw; i++) {
            jv *key = jv_str_own(c, a->kwn[i], strlen(a->kwn[i]));
            if (!key || !jv_dict_set(c, d, key, a->kwv[i])) return NULL;
        }
        return d;
    }
    case B_RAISE: {
        jv *msg = a0 ? jv_stringify(c, a0) : jv_str_own(c, "", 0);
        if (!msg) return NULL;
        if (!c->failed) {
            c->failed = true;
            lx_set_error(LX_E_ARG, "chat template: %.*s", (int)(msg->u.s.n > 400 ? 400 : msg->u.s.n), msg->u.s.p);
        }
        return NULL;
    }
    case B_STRFTIME:
        if (!a0) return jj_fail(c, at, "strftime_now() missing the format");
        return strftime_now(c, a0, at);
    case B_STRIP: case B_LSTRIP: case B_RSTRIP: {
        jv *chars = a0 && a0->t != JV_NONE ? a0 : NULL;
        if (chars && !want_str(c, chars, fn->u.fn.name, at)) return NULL;
        int id = fn->u.fn.id;
        return strip(c, self, chars, id != B_RSTRIP, id != B_LSTRIP);
    }
    case B_SPLIT: case B_RSPLIT: {
        int64_t maxsplit = -1;
        jv *sep = arg(a, 0, "sep"), *ms = arg(a, 1, "maxsplit");
        if (ms && !want_int(c, ms, "split", &maxsplit, at)) return NULL;
        return fn->u.fn.id == B_SPLIT ? split(c, self, sep, maxsplit, at) : rsplit(c, self, sep, maxsplit, at);
    }
    case B_STARTSWITH: case B_ENDSWITH: {
        bool r;
        if (!a0) return jj_fail(c, at, "%s() takes at least 1 argument", fn->u.fn.name);
        if (a->npos > 1) return jj_fail(c, at, "%s() with start / end is not supported", fn->u.fn.name);
        if (!prefix_test(c, self, a0, fn->u.fn.id == B_ENDSWITH, &r, at)) return NULL;
        return JV_BOOL_P(r);
    }
    case B_UPPER: return recase(c, self, 0);
    case B_LOWER: return recase(c, self, 1);
    case B_TITLE: return recase(c, self, 2);
    case B_CAPITALIZE: return recase(c, self, 3);
    case B_REPLACE: {
        int64_t count = -1;
        if (!a0 || !a1) return jj_fail(c, at, "replace() takes at least 2 arguments");
        if (!want_str(c, a0, "replace", at) || !want_str(c, a1, "replace", at)) return NULL;
        jv *cn = arg(a, 2, "count");
        if (cn && !want_int(c, cn, "replace", &count, at)) return NULL;
        return replace(c, self, a0, a1, count);
    }
    case B_FIND: case B_RFIND: case B_COUNT: {
        if (!a0) return jj_fail(c, at, "%s() takes at least 1 argument", fn->u.fn.name);
        if (!want_str(c, a0, fn->u.fn.name, at)) return NULL;
        if (a->npos > 1) return jj_fail(c, at, "%s() with start / end is not supported", fn->u.fn.name);
        const char *p = self->u.s.p;
        size_t n = self->u.s.n, nn = a0->u.s.n;
        if (fn->u.fn.id == B_COUNT) {
            if (nn == 0) return jv_int(c, (int64_t)jj_utf8_len(p, n) + 1);
            int64_t cnt = 0;
            for (size_t i = 0; i + nn <= n;)
                if (!memcmp(p + i, a0->u.s.p, nn)) { cnt++; i += nn; } else i++;
            return jv_int(c, cnt);
        }
        int64_t found = -1;
        for (size_t i = 0; i + nn <= n; i++)
            if (!memcmp(p + i, a0->u.s.p, nn)) {
                found = (int64_t)jj_utf8_len(p, i);
                if (fn->u.fn.id == B_FIND) break;
            }
        return jv_int(c, found);
    }
    case B_JOIN: {
        if (!a0) return jj_fail(c, at, "join() takes exactly one argument");
        jv *items = jj_iterable(c, a0, "join", at);
        return items ? str_join(c, self, items, true, at) : NULL;
    }
    case B_FORMAT: return str_format(c, self, a, at);
    case B_ISDIGIT: case B_ISALPHA: case B_ISSPACE: {
        if (self->u.s.n == 0) return JV_BOOL_P(false);
        for (size_t i = 0; i < self->u.s.n;) {
            char ch = self->u.s.p[i];
            size_t l = 1;
            bool ok = fn->u.fn.id == B_ISDIGIT ? (ch >= '0' && ch <= '9')
                      : fn->u.fn.id == B_ISALPHA ? alpha(ch)
                                                 : jj_is_space_at(self->u.s.p, self->u.s.n, i, &l);
            if (!ok) return JV_BOOL_P(false);
            i += l;
        }
        return JV_BOOL_P(true);
    }
    case B_SPLITLINES: {
        jv *l = jv_list(c, 0);
        if (!l) return NULL;
        const char *p = self->u.s.p;
        size_t n = self->u.s.n, start = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] != '\n' && p[i] != '\r') continue;
            jv *x = jv_str_own(c, p + start, i - start);
            if (!x || !jv_list_push(c, l, x)) return NULL;
            if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < n) {
            jv *x = jv_str_own(c, p + start, n - start);
            if (!x || !jv_list_push(c, l, x)) return NULL;
        }
        return l;
    }
    case B_ITEMS: return items_of(c, self, at);
    case B_KEYS: case B_VALUES: {
        jv *l = jv_list(c, self->u.d.n);
        if (!l) return NULL;
        for (size_t i = 0; i < self->u.d.n; i++)
            if (!jv_list_push(c, l, fn->u.fn.id == B_KEYS ? self->u.d.k[i] : self->u.d.v[i])) return NULL;
        return l;
    }
    case B_GET: {
        if (!a0) return jj_fail(c, at, "get expected at least 1 argument, got 0");
        jv *v = jv_dict_get(self, a0);
        return v ? v : a1 ? a1 : JV_NONE_P;
    }
    case B_CYCLE:
        if (a->npos == 0) return jj_fail(c, at, "no items for cycling given");
        k = (int64_t)(self->u.loop->index0 % (size_t)a->npos);
        return a->pos[k];
    }
    return jj_fail(c, at, "internal error: unknown builtin");
}

/* ---- tests ---- */

static const char *const test_names[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping",
    "iterable", "sequence", "boolean", "true", "false", "equalto", "eq", "==", "ne", "!=",
    "lt", "<", "le", "<=", "gt", ">", "ge", ">=", "lessthan", "greaterthan", "in", "odd",
    "even", "divisibleby", "callable", "lower", "upper", "sameas", "escaped", NULL};

bool jj_have_test(const char *name) {
    for (int i = 0; test_names[i]; i++)
        if (!strcmp(name, test_names[i])) return true;
    return false;
}

int jj_test(jj_ctx *c, const char *t, jv *x, const jj_args *a, const jj_node *at) {
    jv *a0 = arg(a, 0, NULL);
    if (!strcmp(t, "defined")) return x->t != JV_UNDEF;
    if (!strcmp(t, "undefined")) return x->t == JV_UNDEF;
    if (!strcmp(t, "none")) return x->t == JV_NONE;
    if (!strcmp(t, "string")) return x->t == JV_STR;
    if (!strcmp(t, "number")) return jv_is_number(x);
    if (!strcmp(t, "integer")) return x->t == JV_INT;
    if (!strcmp(t, "float")) return x->t == JV_FLOAT;
    if (!strcmp(t, "boolean")) return x->t == JV_BOOL;
    if (!strcmp(t, "true")) return x->t == JV_BOOL && x->u.b;
    if (!strcmp(t, "false")) return x->t == JV_BOOL && !x->u.b;
    if (!strcmp(t, "mapping")) return x->t == JV_DICT;
    if (!strcmp(t, "iterable")) return x->t == JV_LIST || x->t == JV_DICT || x->t == JV_STR || x->t == JV_UNDEF;
    if (!strcmp(t, "sequence")) return x->t == JV_LIST || x->t == JV_DICT || x->t == JV_STR || x->t == JV_UNDEF;
    if (!strcmp(t, "callable")) return x->t == JV_FUNC || x->t == JV_MACRO;
    if (!strcmp(t, "escaped")) return 0;
    if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        jv *s = jv_stringify(c, x);
        if (!s) return -1;
        bool up_t = t[0] == 'u', cased = false;
        for (size_t i = 0; i < s->u.s.n; i++) {
            char ch = s->u.s.p[i];
            if (alpha(ch)) {
                cased = true;
                if ((ch >= 'a' && ch <= 'z') == up_t) return 0;
            }
        }
        return cased;
    }
    if (!strcmp(t, "odd") || !strcmp(t, "even") || !strcmp(t, "divisibleby")) {
        int64_t v, d = 2;
        if (!want_int(c, x, t, &v, at)) return -1;
        if (t[0] == 'd') {
            if (!a0 || !want_int(c, a0, t, &d, at)) return a0 ? -1 : (jj_fail(c, at, "divisibleby needs an argument"), -1);
            if (d == 0) return jj_fail(c, at, "integer division or modulo by zero"), -1;
            if (d == -1) return 1;
            return v % d == 0;
        }
        bool even = v % 2 == 0;
        return t[0] == 'e' ? even : !even;
    }
    if (!a0) return jj_fail(c, at, "the '%s' test needs an argument", t), -1;
    if (!strcmp(t, "equalto") || !strcmp(t, "eq") || !strcmp(t, "==")) return jv_equal(x, a0);
    if (!strcmp(t, "ne") || !strcmp(t, "!=")) return !jv_equal(x, a0);
    if (!strcmp(t, "sameas")) return x == a0 || (x->t == a0->t && (x->t == JV_NONE || x->t == JV_UNDEF ||
                                                                 (x->t == JV_BOOL && x->u.b == a0->u.b)));
    if (!strcmp(t, "in")) {
        if (a0->t == JV_STR) {
            if (x->t != JV_STR) return jj_fail(c, at, "'in <string>' requires string as left operand, not %s", jv_type_name(x)), -1;
            return find_sub(a0->u.s.p, a0->u.s.n, x->u.s.p, x->u.s.n) != NULL;
        }
        if (a0->t == JV_LIST) {
            for (size_t i = 0; i < a0->u.l.n; i++)
                if (jv_equal(a0->u.l.v[i], x)) return 1;
            return 0;
        }
        if (a0->t == JV_DICT) return jv_dict_get(a0, x) != NULL;
        if (a0->t == JV_UNDEF) return 0;
        return jj_fail(c, at, "argument of type '%s' is not iterable", jv_type_name(a0)), -1;
    }
    int cmp;
    const char *ops[] = {"lt", "<", "lessthan", "le", "<=", "gt", ">", "greaterthan", "ge", ">="};
    for (int i = 0; i < 10; i++) {
        if (strcmp(t, ops[i])) continue;
        if (!jv_compare(x, a0, &cmp))
            return jj_fail(c, at, "'%s' not supported between instances of '%s' and '%s'", t, jv_type_name(x), jv_type_name(a0)), -1;
        if (cmp == 2) return 0;
        return i < 3 ? cmp < 0 : i < 5 ? cmp <= 0 : i < 8 ? cmp > 0 : cmp >= 0;
    }
    return jj_fail(c, at, "no test named '%.60s'", t), -1;
}

/* ---- filters ---- */

static const char *const filter_names[] = {
    "trim", "length", "count", "tojson", "upper", "lower", "title", "capitalize", "replace",
    "default", "d", "first", "last", "join", "list", "string", "int", "float", "items",
    "selectattr", "rejectattr", "select", "reject", "map", "reverse", "sort", "unique", "safe",
    "escape", "e", "abs", "indent", "wordcount", "sum", "min", "max", "round", NULL};

bool jj_have_filter(const char *name) {
    for (int i = 0; filter_names[i]; i++)
        if (!strcmp(name, filter_names[i])) return true;
    return false;
}

/* item[attr] through dotted parts, as jinja2's make_attrgetter */
static jv *attr_path(jj_ctx *c, jv *item, const jv *attr, const jj_node *at) {
    if (attr->t == JV_INT) return jj_getitem(c, item, (jv *)attr, at);
    if (attr->t != JV_STR) return jj_fail(c, at, "attribute must be a string");
    const char *p = attr->u.s.p;
    size_t n = attr->u.s.n, i = 0;
    jv *v = item;
    for (;;) {
        const char *dot = memchr(p + i, '.', n - i);
        size_t end = dot ? (size_t)(dot - p) : n;
        jv *key;
        bool digits = end > i;
        for (size_t k = i; k < end; k++) if (p[k] < '0' || p[k] > '9') digits = false;
        if (digits && end - i < 18) key = jv_int(c, strtoll(p + i, NULL, 10));
        else key = jv_str_own(c, p + i, end - i);
        if (!key || !(v = jj_getitem(c, v, key, at))) return NULL;
        if (!dot) return v;
        i = end + 1;
    }
}

static int lower_cmp(const jv *a, const jv *b, bool *ok) {
    int r;
    if (a->t == JV_STR && b->t == JV_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        for (size_t i = 0; i < n; i++) {
            char x = low(a->u.s.p[i]), y = low(b->u.s.p[i]);
            if (x != y) return (unsigned char)x < (unsigned char)y ? -1 : 1;
        }
        return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
    }
    if (!jv_compare(a, b, &r)) { *ok = false; return 0; }
    return r == 2 ? 0 : r;
}

/* a stable merge sort whose comparison can fail */
static bool msort(jv **v, jv **keys, jv **tmpv, jv **tmpk, size_t n, bool ci, bool rev, bool *ok) {
    if (n < 2) return true;
    size_t h = n / 2;
    msort(v, keys, tmpv, tmpk, h, ci, rev, ok);
    msort(v + h, keys + h, tmpv, tmpk, n - h, ci, rev, ok);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r = ci ? lower_cmp(keys[j], keys[i], ok) : 0;
        if (!ci && !jv_compare(keys[j], keys[i], &r)) *ok = false;
        if (r == 2) r = 0;
        bool take_right = rev ? r > 0 : r < 0;
        if (take_right) { tmpv[k] = v[j]; tmpk[k++] = keys[j++]; }
        else { tmpv[k] = v[i]; tmpk[k++] = keys[i++]; }
    }
    while (i < h) { tmpv[k] = v[i]; tmpk[k++] = keys[i++]; }
    while (j < n) { tmpv[k] = v[j]; tmpk[k++] = keys[j++]; }
    memcpy(v, tmpv, n * sizeof *v);
    memcpy(keys, tmpk, n * sizeof *keys);
    return *ok;
}

static jv *html_escape(jj_ctx *c, jv *x) {
    jv *s = jv_stringify(c, x);
    if (!s) return NULL;
    jj_buf b = {0};
    bool ok = true;
    for (size_t i = 0; ok && i < s->u.s.n; i++) {
        switch (s->u.s.p[i]) {
        case '&': ok = jj_buf_adds(&b, "&amp;"); break;
        case '<': ok = jj_buf_adds(&b, "&lt;"); break;
        case '>': ok = jj_buf_adds(&b, "&gt;"); break;
        case '"': ok = jj_buf_adds(&b, "&#34;"); break;
        case '\'': ok = jj_buf_adds(&b, "&#39;"); break;
        default: ok = jj_buf_add(&b, s->u.s.p + i, 1);
        }
    }
    jv *r = ok ? jv_str(c, b.p ? b.p : "", b.n) : jj_fail(c, NULL, "string too long");
    jj_buf_free(&b);
    return r;
}

static jv *do_indent(jj_ctx *c, jv *x, const jj_args *a, const jj_node *at) {
    jv *s = jv_stringify(c, x), *w = arg(a, 0, "width"), *first = arg(a, 1, "first"), *blank = arg(a, 2, "blank");
    if (!s) return NULL;
    jj_buf ind = {0}, b = {0};
    bool ok = true;
    if (w && w->t == JV_STR) ok = jj_buf_add(&ind, w->u.s.p, w->u.s.n);
    else {
        int64_t width = 4;
        if (w && !want_int(c, w, "indent", &width, at)) return NULL;
        for (int64_t i = 0; ok && i < width && i < 4096; i++) ok = jj_buf_add(&ind, " ", 1);
    }
    /* lines of s + "\n" (splitlines), joined as jinja2's do_indent does */
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, start = 0;
    int line = 0;
    bool bl = blank && jv_truthy(blank);
    for (size_t i = 0; ok && i <= n; i++) {
        if (i < n && p[i] != '\n' && p[i] != '\r') continue;
        if (i == n && start == n) break; /* the added "\n" ends the last line */
        size_t len = i - start;
        if (line > 0) {
            ok = jj_buf_add(&b, "\n", 1);
            if (ok && (bl || len > 0)) ok = jj_buf_add(&b, ind.p ? ind.p : "", ind.n);
        }
        ok = ok && jj_buf_add(&b, p + start, len);
        line++;
        if (i < n && p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') i++;
        start = i + 1;
    }
    jv *r = NULL;
    if (ok) {
        jj_buf out = {0};
        if (first && jv_truthy(first)) ok = jj_buf_add(&out, ind.p ? ind.p : "", ind.n);
        ok = ok && jj_buf_add(&out, b.p ? b.p : "", b.n);
        r = ok ? jv_str(c, out.p ? out.p : "", out.n) : NULL;
        jj_buf_free(&out);
    }
    if (!r && !c->failed) jj_fail(c, at, "string too long");
    jj_buf_free(&ind);
    jj_buf_free(&b);
    return r;
}

jv *jj_filter(jj_ctx *c, const char *f, jv *x, const jj_args *a, const jj_node *at) {
    jv *a0 = arg(a, 0, NULL);
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        jv *dv = arg(a, 0, "default_value"), *boolean = arg(a, 1, "boolean");
        bool use = x->t == JV_UNDEF || (boolean && jv_truthy(boolean) && !jv_truthy(x));
        return use ? (dv ? dv : jv_str_own(c, "", 0)) : x;
    }
    if (!strcmp(f, "safe")) return x;
    if (!strcmp(f, "string")) return jv_stringify(c, x);
    if (!strcmp(f, "escape") || !strcmp(f, "e")) return html_escape(c, x);
    if (!strcmp(f, "length") || !strcmp(f, "count")) {
        switch (x->t) {
        case JV_STR: return jv_int(c, (int64_t)jj_utf8_len(x->u.s.p, x->u.s.n));
        case JV_LIST: return jv_int(c, (int64_t)x->u.l.n);
        case JV_DICT: case JV_NS: return jv_int(c, (int64_t)x->u.d.n);
        case JV_UNDEF: return jv_int(c, 0);
        default: return jj_fail(c, at, "object of type '%s' has no len()", jv_type_name(x));
        }
    }
    if (!strcmp(f, "tojson")) {
        jv *ea = arg(a, 0, "ensure_ascii"), *ind = arg(a, 1, "indent"), *sep = arg(a, 2, "separators"),
           *sk = arg(a, 3, "sort_keys");
        if (ea && jv_truthy(ea)) return jj_fail(c, at, "tojson: ensure_ascii=True is not supported");
        if (sep && sep->t != JV_NONE) return jj_fail(c, at, "tojson: separators are not supported");
        int64_t indent = -1;
        if (ind && ind->t != JV_NONE) {
            if (!want_int(c, ind, "tojson indent", &indent, at)) return NULL;
            if (indent < 0) indent = 0;
            if (indent > 64) return jj_fail(c, at, "tojson: indent over 64 is refused");
        }
        jj_buf b = {0};
        if (!jv_tojson(c, x, (int)indent, sk && jv_truthy(sk), &b, at)) {
            jj_buf_free(&b);
            return NULL;
        }
        jv *r = jv_str(c, b.p ? b.p : "", b.n);
        jj_buf_free(&b);
        return r;
    }
    if (!strcmp(f, "trim") || !strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "title") ||
        !strcmp(f, "capitalize") || !strcmp(f, "replace") || !strcmp(f, "wordcount")) {
        jv *s = jv_stringify(c, x);
        if (!s) return NULL;
        switch (f[0]) {
        case 't':
            if (f[1] == 'i') return recase(c, s, 4);
            if (a0 && a0->t != JV_NONE && !want_str(c, a0, "trim", at)) return NULL;
            return strip(c, s, a0 && a0->t != JV_NONE ? a0 : NULL, true, true);
        case 'u': return recase(c, s, 0);
        case 'l': return recase(c, s, 1);
        case 'c': return recase(c, s, 3);
        case 'w': {
            jv *l = split(c, s, NULL, -1, at);
            return l ? jv_int(c, (int64_t)l->u.l.n) : NULL;
        }
        default: {
            jv *o = arg(a, 0, "old"), *n = arg(a, 1, "new"), *cn = arg(a, 2, "count");
            int64_t count = -1;
            if (!o || !n) return jj_fail(c, at, "replace needs old and new");
            if (!(o = jv_stringify(c, o)) || !(n = jv_stringify(c, n))) return NULL;
            if (cn && cn->t != JV_NONE && !want_int(c, cn, "replace", &count, at)) return NULL;
            return replace(c, s, o, n, count);
        }
        }
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        jv *l = jj_iterable(c, x, f, at);
        if (!l) return NULL;
        if (!l->u.l.n) return jv_undef(c, f);
        return l->u.l.v[f[0] == 'f' ? 0 : l->u.l.n - 1];
    }
    if (!strcmp(f, "join")) {
        jv *sep = arg(a, 0, "d"), *attr = arg(a, 1, "attribute");
        jv *l = jj_iterable(c, x, "join", at);
        if (!l) return NULL;
        if (sep && !(sep = jv_stringify(c, sep))) return NULL;
        if (attr && attr->t != JV_NONE) {
            jv *m = jv_list(c, l->u.l.n);
            if (!m) return NULL;
            for (size_t i = 0; i < l->u.l.n; i++) {
                jv *v = attr_path(c, l->u.l.v[i], attr, at);
                if (!v || !jv_list_push(c, m, v)) return NULL;
            }
            l = m;
        }
        return str_join(c, sep ? sep : jv_str_own(c, "", 0), l, false, at);
    }
    if (!strcmp(f, "list")) {
        jv *l = jj_iterable(c, x, "list", at);
        if (!l) return NULL;
        if (l != x && !(l->t == JV_LIST && !l->tuple)) return l;
        jv *copy = jv_list(c, l->u.l.n);
        if (!copy) return NULL;
        for (size_t i = 0; i < l->u.l.n; i++) if (!jv_list_push(c, copy, l->u.l.v[i])) return NULL;
        return copy;
    }
    if (!strcmp(f, "int")) {
        jv *dv = arg(a, 0, "default");
        if (x->t == JV_INT) return x;
        if (x->t == JV_BOOL) return jv_int(c, x->u.b);
        if (x->t == JV_FLOAT && isfinite(x->u.f) && fabs(x->u.f) < 9.2e18) return jv_int(c, (int64_t)x->u.f);
        if (x->t == JV_STR && x->u.s.n < 64) {
            char buf[64], *end;
            memcpy(buf, x->u.s.p, x->u.s.n);
            buf[x->u.s.n] = '\0';
            size_t i = 0, n = x->u.s.n;
            while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n')) i++;
            while (n > i && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\n')) buf[--n] = '\0';
            size_t d = i + (buf[i] == '+' || buf[i] == '-');
            bool digits = d < n;
            for (size_t k = d; k < n; k++) if (buf[k] < '0' || buf[k] > '9') digits = false;
            if (digits && n - d < 19) return jv_int(c, strtoll(buf + i, NULL, 10));
            double v = strtod(buf + i, &end);
            if (end != buf + i && *end == '\0' && isfinite(v) && fabs(v) < 9.2e18) return jv_int(c, (int64_t)v);
        }
        return dv ? dv : jv_int(c, 0);
    }
    if (!strcmp(f, "float")) {
        jv *dv = arg(a, 0, "default");
        if (jv_is_number(x)) return jv_float(c, jv_num(x));
        if (x->t == JV_STR && x->u.s.n < 64) {
            char buf[64], *end;
            memcpy(buf, x->u.s.p, x->u.s.n);
            buf[x->u.s.n] = '\0';
            double v = strtod(buf, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n') end++;
            if (end != buf && *end == '\0') return jv_float(c, v);
        }
        return dv ? dv : jv_float(c, 0.0);
    }
    if (!strcmp(f, "items")) return items_of(c, x, at);
    if (!strcmp(f, "selectattr") || !strcmp(f, "rejectattr") || !strcmp(f, "select") || !strcmp(f, "reject")) {
        bool by_attr = f[6] == 'a', keep_true = f[0] == 's';
        jv *l = jj_iterable(c, x, f, at);
        if (!l) return NULL;
        int first_test_arg = by_attr ? 1 : 0;
        if (by_attr && !a0) return jj_fail(c, at, "%s needs an attribute", f);
        jv *test = arg(a, first_test_arg, NULL);
        if (test && !want_str(c, test, f, at)) return NULL;
        const char *tname = test ? jj_strdup(&c->arena, test->u.s.p, test->u.s.n) : NULL;
        if (test && !tname) return jj_oom(c);
        if (tname && !jj_have_test(tname)) return jj_fail(c, at, "no test named '%.60s'", tname);
        jj_args ta = {0};
        if (a->npos > first_test_arg + 1) {
            ta.pos = a->pos + first_test_arg + 1;
            ta.npos = a->npos - first_test_arg - 1;
        }
        jv *r = jv_list(c, 0);
        if (!r) return NULL;
        for (size_t i = 0; i < l->u.l.n; i++) {
            jv *item = l->u.l.v[i], *v = by_attr ? attr_path(c, item, a0, at) : item;
            if (!v) return NULL;
            int t = tname ? jj_test(c, tname, v, &ta, at) : jv_truthy(v);
            if (t < 0) return NULL;
            if ((t == 1) == keep_true && !jv_list_push(c, r, item)) return NULL;
        }
        return r;
    }
    if (!strcmp(f, "map")) {
        jv *l = jj_iterable(c, x, "map", at);
        if (!l) return NULL;
        jv *attr = arg(a, -1, "attribute"), *dv = arg(a, -1, "default");
        jv *r = jv_list(c, l->u.l.n);
        if (!r) return NULL;
        if (attr) {
            for (size_t i = 0; i < l->u.l.n; i++) {
                jv *v = attr_path(c, l->u.l.v[i], attr, at);
                if (!v) return NULL;
                if (v->t == JV_UNDEF && dv) v = dv;
                if (!jv_list_push(c, r, v)) return NULL;
            }
            return r;
        }
        if (!a0 || !want_str(c, a0, "map", at)) return a0 ? NULL : jj_fail(c, at, "map needs a filter name or attribute=");
        const char *fname = jj_strdup(&c->arena, a0->u.s.p, a0->u.s.n);
        if (!fname) return jj_oom(c);
        if (!jj_have_filter(fname)) return jj_fail(c, at, "no filter named '%.60s'", fname);
        jj_args fa = {.pos = a->pos + 1, .npos = a->npos - 1, .kwn = a->kwn, .kwv = a->kwv, .nkw = a->nkw};
        for (size_t i = 0; i < l->u.l.n; i++) {
            jv *v = jj_filter(c, fname, l->u.l.v[i], &fa, at);
            if (!v || !jv_list_push(c, r, v)) return NULL;
        }
        return r;
    }
    if (!strcmp(f, "reverse")) {
        if (x->t == JV_STR) {
            size_t cps = jj_utf8_len(x->u.s.p, x->u.s.n);
            char *d = jj_alloc(&c->arena, x->u.s.n + 1);
            if (!d) return jj_oom(c);
            size_t out = x->u.s.n;
            for (size_t k = 0, i = 0; k < cps; k++) {
                size_t l = jj_utf8_offset(x->u.s.p + i, x->u.s.n - i, 1);
                out -= l;
                memcpy(d + out, x->u.s.p + i, l);
                i += l;
            }
            return jv_str_own(c, d, x->u.s.n);
        }
        jv *l = jj_iterable(c, x, "reverse", at);
        if (!l) return NULL;
        jv *r = jv_list(c, l->u.l.n);
        if (!r) return NULL;
        for (size_t i = l->u.l.n; i-- > 0;) if (!jv_list_push(c, r, l->u.l.v[i])) return NULL;
        return r;
    }
    if (!strcmp(f, "sort") || !strcmp(f, "unique")) {
        bool is_sort = f[0] == 's';
        jv *rev = is_sort ? arg(a, 0, "reverse") : NULL;
        jv *cs = arg(a, is_sort ? 1 : 0, "case_sensitive"), *attr = arg(a, is_sort ? 2 : 1, "attribute");
        bool ci = !(cs && jv_truthy(cs));
        jv *l = jj_iterable(c, x, f, at);
        if (!l) return NULL;
        size_t n = l->u.l.n;
        jv **keys = jj_alloc(&c->arena, (n + 1) * sizeof *keys), **vals = jj_alloc(&c->arena, (n + 1) * sizeof *vals);
        if (!keys || !vals) return jj_oom(c);
        for (size_t i = 0; i < n; i++) {
            vals[i] = l->u.l.v[i];
            keys[i] = attr && attr->t != JV_NONE ? attr_path(c, vals[i], attr, at) : vals[i];
            if (!keys[i]) return NULL;
        }
        jv *r = jv_list(c, n);
        if (!r) return NULL;
        if (is_sort) {
            jv **tv = jj_alloc(&c->arena, (n + 1) * sizeof *tv), **tk = jj_alloc(&c->arena, (n + 1) * sizeof *tk);
            bool ok = true;
            if (!tv || !tk) return jj_oom(c);
            msort(vals, keys, tv, tk, n, ci, rev && jv_truthy(rev), &ok);
            if (!ok) return jj_fail(c, at, "sort: the items cannot be ordered");
            for (size_t i = 0; i < n; i++) if (!jv_list_push(c, r, vals[i])) return NULL;
            return r;
        }
        for (size_t i = 0; i < n; i++) {
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++) {
                bool ok = true;
                if (ci && keys[i]->t == JV_STR && keys[j]->t == JV_STR) seen = lower_cmp(keys[i], keys[j], &ok) == 0;
                else seen = jv_equal(keys[i], keys[j]);
            }
            if (!seen && !jv_list_push(c, r, vals[i])) return NULL;
        }
        return r;
    }
    if (!strcmp(f, "abs")) {
        if (x->t == JV_FLOAT) return jv_float(c, fabs(x->u.f));
        if (x->t == JV_INT || x->t == JV_BOOL) {
            int64_t v = x->t == JV_INT ? x->u.i : x->u.b;
            if (v == INT64_MIN) return jj_fail(c, at, "integer overflow in abs");
            return jv_int(c, v < 0 ? -v : v);
        }
        return jj_fail(c, at, "bad operand type for abs(): '%s'", jv_type_name(x));
    }
    if (!strcmp(f, "round")) {
        jv *prec = arg(a, 0, "precision"), *method = arg(a, 1, "method");
        int64_t p = 0;
        if (prec && !want_int(c, prec, "round", &p, at)) return NULL;
        if (!jv_is_number(x)) return jj_fail(c, at, "round: expected a number, not %s", jv_type_name(x));
        if (p < 0 || p > 15) return jj_fail(c, at, "round: precision out of range");
        double v = jv_num(x), m = pow(10.0, (double)p);
        const char *md = method && method->t == JV_STR ? method->u.s.p : "common";
        if (!strncmp(md, "floor", 5)) return jv_float(c, floor(v * m) / m);
        if (!strncmp(md, "ceil", 4)) return jv_float(c, ceil(v * m) / m);
        return jv_float(c, round(v * m) / m);
    }
    if (!strcmp(f, "sum") || !strcmp(f, "min") || !strcmp(f, "max")) {
        jv *l = jj_iterable(c, x, f, at);
        if (!l) return NULL;
        if (f[0] == 's') {
            jv *acc = arg(a, 1, "start");
            if (!acc && !(acc = jv_int(c, 0))) return NULL;
            jv *attr = arg(a, 0, "attribute");
            for (size_t i = 0; i < l->u.l.n; i++) {
                jv *v = attr && attr->t != JV_NONE ? attr_path(c, l->u.l.v[i], attr, at) : l->u.l.v[i];
                if (!v) return NULL;
                if (!jv_is_number(v) || !jv_is_number(acc)) return jj_fail(c, at, "sum: expected numbers");
                if (acc->t == JV_FLOAT || v->t == JV_FLOAT) acc = jv_float(c, jv_num(acc) + jv_num(v));
                else {
                    int64_t s;
                    if (__builtin_add_overflow(acc->t == JV_INT ? acc->u.i : acc->u.b, v->t == JV_INT ? v->u.i : v->u.b, &s))
                        return jj_fail(c, at, "integer overflow in sum");
                    acc = jv_int(c, s);
                }
                if (!acc) return NULL;
            }
            return acc;
        }
        if (!l->u.l.n) return jv_undef(c, f);
        jv *best = l->u.l.v[0];
        for (size_t i = 1; i < l->u.l.n; i++) {
            bool ok = true;
            int r = lower_cmp(l->u.l.v[i], best, &ok);
            if (!ok) return jj_fail(c, at, "%s: the items cannot be ordered", f);
            if (f[1] == 'i' ? r < 0 : r > 0) best = l->u.l.v[i];
        }
        return best;
    }
    if (!strcmp(f, "indent")) return do_indent(c, x, a, at);
    return jj_fail(c, at, "no filter named '%.60s'", f);
}
