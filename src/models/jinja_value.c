/*
 * jinja_value.c -- the interpreter's values as Python sees them: made from cJSON, truth,
 * equality and ordering, str() and repr(), and json.dumps for tojson (cJSON escapes the
 * strings; the layout follows Python's separators, which cJSON has no mode for).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/jinja_int.h"

jv jv_undef_v = {.t = JV_UNDEF}, jv_none_v = {.t = JV_NONE};
jv jv_true_v = {.t = JV_BOOL, .u.b = true}, jv_false_v = {.t = JV_BOOL, .u.b = false};

static jv *newv(jj_ctx *c, jv_type t) {
    jv *v = jj_alloc(&c->arena, sizeof *v);
    if (!v) return jj_oom(c);
    v->t = t;
    return v;
}

jv *jv_int(jj_ctx *c, int64_t i) {
    jv *v = newv(c, JV_INT);
    if (v) v->u.i = i;
    return v;
}

jv *jv_float(jj_ctx *c, double f) {
    jv *v = newv(c, JV_FLOAT);
    if (v) v->u.f = f;
    return v;
}

jv *jv_str_own(jj_ctx *c, const char *s, size_t n) {
    jv *v = newv(c, JV_STR);
    if (!v) return NULL;
    v->u.s.p = s;
    v->u.s.n = n;
    return v;
}

jv *jv_str(jj_ctx *c, const char *s, size_t n) {
    if (n > JJ_MAX_STRING) return jj_fail(c, NULL, "string longer than %zu bytes", JJ_MAX_STRING);
    char *p = jj_strdup(&c->arena, s, n);
    if (!p) return jj_oom(c);
    return jv_str_own(c, p, n);
}

jv *jv_list(jj_ctx *c, size_t cap) {
    jv *v = newv(c, JV_LIST);
    if (!v) return NULL;
    if (cap) {
        if (cap > SIZE_MAX / sizeof(jv *) / 2) return jj_oom(c);
        v->u.l.v = jj_alloc(&c->arena, cap * sizeof(jv *));
        if (!v->u.l.v) return jj_oom(c);
        v->u.l.cap = cap;
    }
    return v;
}

bool jv_list_push(jj_ctx *c, jv *l, jv *x) {
    if (l->u.l.n == l->u.l.cap) {
        size_t cap = l->u.l.cap ? l->u.l.cap * 2 : 4;
        jv **p = jj_alloc(&c->arena, cap * sizeof *p);
        if (!p) { jj_oom(c); return false; }
        if (l->u.l.n) memcpy(p, l->u.l.v, l->u.l.n * sizeof *p);
        l->u.l.v = p;
        l->u.l.cap = cap;
    }
    l->u.l.v[l->u.l.n++] = x;
    return true;
}

jv *jv_dict(jj_ctx *c, jv_type t) { return newv(c, t); }

jv *jv_dict_get(const jv *d, const jv *k) {
    for (size_t i = 0; i < d->u.d.n; i++)
        if (jv_equal(d->u.d.k[i], k)) return d->u.d.v[i];
    return NULL;
}

jv *jv_dict_gets(const jv *d, const char *k) {
    size_t n = strlen(k);
    for (size_t i = 0; i < d->u.d.n; i++) {
        const jv *key = d->u.d.k[i];
        if (key->t == JV_STR && key->u.s.n == n && memcmp(key->u.s.p, k, n) == 0) return d->u.d.v[i];
    }
    return NULL;
}

bool jv_dict_set(jj_ctx *c, jv *d, jv *k, jv *v) {
    for (size_t i = 0; i < d->u.d.n; i++)
        if (jv_equal(d->u.d.k[i], k)) {
            d->u.d.v[i] = v;
            return true;
        }
    if (d->u.d.n == d->u.d.cap) {
        size_t cap = d->u.d.cap ? d->u.d.cap * 2 : 4;
        jv **nk = jj_alloc(&c->arena, cap * sizeof *nk), **nv = jj_alloc(&c->arena, cap * sizeof *nv);
        if (!nk || !nv) { jj_oom(c); return false; }
        if (d->u.d.n) {
            memcpy(nk, d->u.d.k, d->u.d.n * sizeof *nk);
            memcpy(nv, d->u.d.v, d->u.d.n * sizeof *nv);
        }
        d->u.d.k = nk;
        d->u.d.v = nv;
        d->u.d.cap = cap;
    }
    d->u.d.k[d->u.d.n] = k;
    d->u.d.v[d->u.d.n] = v;
    d->u.d.n++;
    return true;
}

jv *jv_undef(jj_ctx *c, const char *what) {
    jv *v = newv(c, JV_UNDEF);
    if (v) v->u.undef.what = what;
    return v;
}

jv *jv_from_cjson(jj_ctx *c, const cJSON *j, int depth) {
    if (depth > 1000) return jj_fail(c, NULL, "context nested too deeply");
    if (!j || cJSON_IsNull(j)) return JV_NONE_P;
    if (cJSON_IsBool(j)) return JV_BOOL_P(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        /* JSON does not say int or float; cJSON keeps only the double: integral values
         * that fit exactly are ints, as Python's json reads the usual "3" */
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) return jv_int(c, (int64_t)d);
        return jv_float(c, d);
    }
    if (cJSON_IsString(j) || cJSON_IsRaw(j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        return jv_str(c, s, strlen(s));
    }
    if (cJSON_IsArray(j)) {
        jv *l = jv_list(c, (size_t)cJSON_GetArraySize(j));
        if (!l) return NULL;
        for (const cJSON *e = j->child; e; e = e->next) {
            jv *x = jv_from_cjson(c, e, depth + 1);
            if (!x || !jv_list_push(c, l, x)) return NULL;
        }
        return l;
    }
    if (cJSON_IsObject(j)) {
        jv *d = jv_dict(c, JV_DICT);
        if (!d) return NULL;
        for (const cJSON *e = j->child; e; e = e->next) {
            const char *k = e->string ? e->string : "";
            jv *key = jv_str(c, k, strlen(k)), *x = jv_from_cjson(c, e, depth + 1);
            if (!key || !x || !jv_dict_set(c, d, key, x)) return NULL;
        }
        return d;
    }
    return JV_NONE_P;
}

bool jv_truthy(const jv *v) {
    switch (v->t) {
    case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v->u.b;
    case JV_INT: return v->u.i != 0;
    case JV_FLOAT: return v->u.f != 0.0;
    case JV_STR: return v->u.s.n > 0;
    case JV_LIST: return v->u.l.n > 0;
    case JV_DICT: return v->u.d.n > 0;
    default: return true;
    }
}

bool jv_is_number(const jv *v) { return v->t == JV_BOOL || v->t == JV_INT || v->t == JV_FLOAT; }

double jv_num(const jv *v) {
    return v->t == JV_FLOAT ? v->u.f : v->t == JV_INT ? (double)v->u.i : v->u.b ? 1.0 : 0.0;
}

static int64_t as_i64(const jv *v) { return v->t == JV_INT ? v->u.i : v->u.b ? 1 : 0; }

bool jv_equal(const jv *a, const jv *b) {
    if (a == b) return true;
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->t != JV_FLOAT && b->t != JV_FLOAT) return as_i64(a) == as_i64(b);
        return jv_num(a) == jv_num(b);
    }
    if (a->t != b->t) return false;
    switch (a->t) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    case JV_LIST:
        if (a->tuple != b->tuple || a->u.l.n != b->u.l.n) return false;
        for (size_t i = 0; i < a->u.l.n; i++)
            if (!jv_equal(a->u.l.v[i], b->u.l.v[i])) return false;
        return true;
    case JV_DICT:
        if (a->u.d.n != b->u.d.n) return false;
        for (size_t i = 0; i < a->u.d.n; i++) {
            const jv *x = jv_dict_get(b, a->u.d.k[i]);
            if (!x || !jv_equal(a->u.d.v[i], x)) return false;
        }
        return true;
    case JV_FUNC:
        return a->u.fn.id == b->u.fn.id && a->u.fn.self == b->u.fn.self;
    default:
        return false; /* namespaces, loops, macros: identity only */
    }
}

bool jv_compare(const jv *a, const jv *b, int *out) {
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->t != JV_FLOAT && b->t != JV_FLOAT) {
            int64_t x = as_i64(a), y = as_i64(b);
            *out = x < y ? -1 : x > y;
        } else {
            double x = jv_num(a), y = jv_num(b);
            *out = x < y ? -1 : x > y ? 1 : 0; /* NaN: every comparison false, like 0 here */
            if (x != x || y != y) *out = 2;    /* unordered: callers treat 2 as all-false */
        }
        return true;
    }
    if (a->t == JV_STR && b->t == JV_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int r = n ? memcmp(a->u.s.p, b->u.s.p, n) : 0;
        *out = r < 0 ? -1 : r > 0 ? 1 : a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
        return true;
    }
    if (a->t == JV_LIST && b->t == JV_LIST && a->tuple == b->tuple) {
        size_t n = a->u.l.n < b->u.l.n ? a->u.l.n : b->u.l.n;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a->u.l.v[i], b->u.l.v[i])) continue;
            return jv_compare(a->u.l.v[i], b->u.l.v[i], out);
        }
        *out = a->u.l.n < b->u.l.n ? -1 : a->u.l.n > b->u.l.n;
        return true;
    }
    return false;
}

const char *jv_type_name(const jv *v) {
    switch (v->t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_LOOP: return "LoopContext";
    case JV_FUNC: return "builtin_function_or_method";
    case JV_MACRO: return "Macro";
    }
    return "object";
}

/* ---- UTF-8 ---- */

/* byte length of the code point at i (1 for an invalid byte), its value in *cp */
static size_t u8_next(const char *s, size_t n, size_t i, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[i];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c < 0xE0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c < 0xF0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c < 0xF5) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = c; return 1; }
    if (i + len > n) { *cp = c; return 1; }
    for (size_t k = 1; k < len; k++) {
        if ((u[i + k] & 0xC0) != 0x80) { *cp = c; return 1; }
        v = (v << 6) | (u[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) { *cp = c; return 1; }
    *cp = v;
    return len;
}

size_t jj_utf8_len(const char *s, size_t n) {
    size_t k = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; i += u8_next(s, n, i, &cp)) k++;
    return k;
}

size_t jj_utf8_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    uint32_t cp;
    while (k-- > 0 && i < n) i += u8_next(s, n, i, &cp);
    return i;
}

static bool py_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

bool jj_is_space_at(const char *s, size_t n, size_t i, size_t *clen) {
    uint32_t cp;
    *clen = u8_next(s, n, i, &cp);
    return py_isspace(cp);
}

/* ---- str() and repr() ---- */

static bool fmt_float(double f, jj_buf *b) {
    char out[64];
    if (f != f) return jj_buf_adds(b, "nan");
    if (isinf(f)) return jj_buf_adds(b, f < 0 ? "-inf" : "inf");
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    /* buf: [-]d[.ddd]e[+-]XX */
    const char *p = buf;
    bool neg = *p == '-';
    if (neg) p++;
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd < 20) digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    size_t k = 0;
    if (neg) out[k++] = '-';
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++) out[k++] = i < nd ? digits[i] : '0';
            out[k++] = '.';
            if (nd > exp + 1) for (int i = exp + 1; i < nd; i++) out[k++] = digits[i];
            else out[k++] = '0';
        } else {
            out[k++] = '0';
            out[k++] = '.';
            for (int i = 0; i < -exp - 1; i++) out[k++] = '0';
            for (int i = 0; i < nd; i++) out[k++] = digits[i];
        }
        out[k] = '\0';
    } else {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (int i = 1; i < nd; i++) out[k++] = digits[i];
        }
        snprintf(out + k, sizeof out - k, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    return jj_buf_adds(b, out);
}

/* Python's str.isprintable() for the code points templates meet: controls, the format
 * characters and the separators other than space are not */
static bool py_printable(uint32_t c) {
    if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F)) return false;
    if ((c >= 0x205F && c <= 0x2064) || c == 0x3000 || c == 0xFEFF) return false;
    return true;
}

static bool repr_str(const char *s, size_t n, jj_buf *b) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if (!jj_buf_add(b, &q, 1)) return false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = u8_next(s, n, i, &cp);
        char e[16];
        const char *out = NULL;
        if (l == 1 && (unsigned char)s[i] >= 0x80) {
            /* an invalid byte: Python would hold a surrogate escape */
            snprintf(e, sizeof e, "\\udc%02x", (unsigned char)s[i]);
            out = e;
        } else if (cp == '\\') out = "\\\\";
        else if (cp == (uint32_t)q) out = q == '\'' ? "\\'" : "\\\"";
        else if (cp == '\n') out = "\\n";
        else if (cp == '\r') out = "\\r";
        else if (cp == '\t') out = "\\t";
        else if (!py_printable(cp)) {
            if (cp < 0x100) snprintf(e, sizeof e, "\\x%02x", cp);
            else snprintf(e, sizeof e, "\\u%04x", cp);
            out = e;
        }
        if (out ? !jj_buf_adds(b, out) : !jj_buf_add(b, s + i, l)) return false;
        i += l;
    }
    return jj_buf_add(b, &q, 1);
}

static bool to_str(jj_ctx *c, const jv *v, jj_buf *b, bool repr, int depth) {
    char tmp[64];
    if (depth > 200) {
        jj_fail(c, NULL, "value nested too deeply to print");
        return false;
    }
    switch (v->t) {
    case JV_UNDEF: return repr ? jj_buf_adds(b, "Undefined") : true;
    case JV_NONE: return jj_buf_adds(b, "None");
    case JV_BOOL: return jj_buf_adds(b, v->u.b ? "True" : "False");
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i);
        return jj_buf_adds(b, tmp);
    case JV_FLOAT: return fmt_float(v->u.f, b);
    case JV_STR: return repr ? repr_str(v->u.s.p, v->u.s.n, b) : jj_buf_add(b, v->u.s.p, v->u.s.n);
    case JV_LIST:
        if (!jj_buf_adds(b, v->tuple ? "(" : "[")) return false;
        for (size_t i = 0; i < v->u.l.n; i++) {
            if (i && !jj_buf_adds(b, ", ")) return false;
            if (!to_str(c, v->u.l.v[i], b, true, depth + 1)) return false;
        }
        if (v->tuple && v->u.l.n == 1 && !jj_buf_adds(b, ",")) return false;
        return jj_buf_adds(b, v->tuple ? ")" : "]");
    case JV_DICT:
    case JV_NS:
        if (v->t == JV_NS && !jj_buf_adds(b, "<Namespace ")) return false;
        if (!jj_buf_adds(b, "{")) return false;
        for (size_t i = 0; i < v->u.d.n; i++) {
            if (i && !jj_buf_adds(b, ", ")) return false;
            if (!to_str(c, v->u.d.k[i], b, true, depth + 1) || !jj_buf_adds(b, ": ") ||
                !to_str(c, v->u.d.v[i], b, true, depth + 1))
                return false;
        }
        return jj_buf_adds(b, v->t == JV_NS ? "}>" : "}");
    case JV_LOOP:
        snprintf(tmp, sizeof tmp, "<LoopContext %zu/%zu>", v->u.loop->index0 + 1, v->u.loop->items->u.l.n);
        return jj_buf_adds(b, tmp);
    case JV_FUNC:
        return jj_buf_adds(b, "<built-in method ") && jj_buf_adds(b, v->u.fn.name ? v->u.fn.name : "?") &&
               jj_buf_adds(b, ">");
    case JV_MACRO:
        return jj_buf_adds(b, "<Macro '") && jj_buf_adds(b, v->u.m.node->name ? v->u.m.node->name : "caller") &&
               jj_buf_adds(b, "'>");
    }
    return true;
}

static bool buf_ok(jj_ctx *c, jj_buf *b, bool ok) {
    if (!ok && b->oom && !c->failed) jj_buf_fail(c, b, NULL, "string");
    return ok;
}

bool jv_to_str(jj_ctx *c, const jv *v, jj_buf *b) { return buf_ok(c, b, to_str(c, v, b, false, 0)); }
bool jv_repr(jj_ctx *c, const jv *v, jj_buf *b) { return buf_ok(c, b, to_str(c, v, b, true, 0)); }

jv *jv_stringify(jj_ctx *c, const jv *v) {
    if (v->t == JV_STR) return (jv *)v;
    if (v->t == JV_UNDEF) return jv_str_own(c, "", 0);
    jj_buf b = {0};
    if (!jv_to_str(c, v, &b)) {
        jj_buf_free(&b);
        return NULL;
    }
    jv *r = jv_str(c, b.p ? b.p : "", b.n);
    jj_buf_free(&b);
    return r;
}

/* ---- json.dumps ---- */

/* a JSON string through cJSON's escaping (the same as Python's json with ensure_ascii off);
 * a NUL, which cJSON's C strings cannot hold, is written between pieces */
static bool json_str(jj_ctx *c, const char *s, size_t n, jj_buf *b) {
    if (!jj_buf_adds(b, "\"")) return false;
    size_t i = 0;
    for (;;) {
        const char *z = memchr(s + i, '\0', n - i);
        size_t piece = z ? (size_t)(z - (s + i)) : n - i;
        char *tmp = malloc(piece + 1);
        if (!tmp) return false;
        memcpy(tmp, s + i, piece);
        tmp[piece] = '\0';
        cJSON *j = cJSON_CreateString(tmp);
        free(tmp);
        char *out = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (!out) return false;
        size_t ol = strlen(out);
        bool ok = ol >= 2 && jj_buf_add(b, out + 1, ol - 2);
        free(out);
        if (!ok) return false;
        if (!z) break;
        if (!jj_buf_adds(b, "\\u0000")) return false;
        i += piece + 1;
    }
    return jj_buf_adds(b, "\"");
}

static bool newline_indent(jj_buf *b, int indent, int level) {
    if (!jj_buf_adds(b, "\n")) return false;
    for (int i = 0; i < indent * level; i++)
        if (!jj_buf_add(b, " ", 1)) return false;
    return true;
}

typedef struct { const jv *k, *v; } kvpair;

static int cmp_keys(const void *x, const void *y) {
    const kvpair *a = x, *b = y;
    int r = 0;
    if (!jv_compare(a->k, b->k, &r)) r = 0;
    return r == 2 ? 0 : r;
}

static bool dumps(jj_ctx *c, const jv *v, int indent, bool sort_keys, jj_buf *b, const jj_node *at, int level) {
    if (level > 200) { jj_fail(c, at, "value nested too deeply for tojson"); return false; }
    char tmp[64];
    switch (v->t) {
    case JV_NONE: return jj_buf_adds(b, "null");
    case JV_BOOL: return jj_buf_adds(b, v->u.b ? "true" : "false");
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i);
        return jj_buf_adds(b, tmp);
    case JV_FLOAT:
        if (v->u.f != v->u.f) return jj_buf_adds(b, "NaN");
        if (isinf(v->u.f)) return jj_buf_adds(b, v->u.f < 0 ? "-Infinity" : "Infinity");
        return fmt_float(v->u.f, b);
    case JV_STR: return json_str(c, v->u.s.p, v->u.s.n, b);
    case JV_LIST:
        if (!v->u.l.n) return jj_buf_adds(b, "[]");
        if (!jj_buf_adds(b, "[")) return false;
        for (size_t i = 0; i < v->u.l.n; i++) {
            if (i && !jj_buf_adds(b, indent >= 0 ? "," : ", ")) return false;
            if (indent >= 0 && !newline_indent(b, indent, level + 1)) return false;
            if (!dumps(c, v->u.l.v[i], indent, sort_keys, b, at, level + 1)) return false;
        }
        if (indent >= 0 && !newline_indent(b, indent, level)) return false;
        return jj_buf_adds(b, "]");
    case JV_DICT: {
        if (!v->u.d.n) return jj_buf_adds(b, "{}");
        kvpair *kv = jj_alloc(&c->arena, v->u.d.n * sizeof *kv);
        if (!kv) { jj_oom(c); return false; }
        for (size_t i = 0; i < v->u.d.n; i++) {
            kv[i].k = v->u.d.k[i];
            kv[i].v = v->u.d.v[i];
        }
        if (sort_keys) {
            for (size_t i = 1; i < v->u.d.n; i++) {
                int r;
                if (!jv_compare(kv[0].k, kv[i].k, &r)) {
                    jj_fail(c, at, "tojson: sort_keys over keys of different types");
                    return false;
                }
            }
            qsort(kv, v->u.d.n, sizeof *kv, cmp_keys);
        }
        if (!jj_buf_adds(b, "{")) return false;
        for (size_t i = 0; i < v->u.d.n; i++) {
            if (i && !jj_buf_adds(b, indent >= 0 ? "," : ", ")) return false;
            if (indent >= 0 && !newline_indent(b, indent, level + 1)) return false;
            const jv *k = kv[i].k;
            bool ok;
            if (k->t == JV_STR) ok = json_str(c, k->u.s.p, k->u.s.n, b);
            else if (k->t == JV_INT || k->t == JV_FLOAT || k->t == JV_BOOL || k->t == JV_NONE) {
                /* json.dumps writes such keys as strings of their JSON form */
                jj_buf kb = {0};
                ok = dumps(c, k, -1, false, &kb, at, level + 1) && jj_buf_adds(b, "\"") &&
                     jj_buf_add(b, kb.p, kb.n) && jj_buf_adds(b, "\"");
                jj_buf_free(&kb);
            } else {
                jj_fail(c, at, "tojson: keys must be str, int, float, bool or None, not %s", jv_type_name(k));
                return false;
            }
            if (!ok || !jj_buf_adds(b, ": ") || !dumps(c, kv[i].v, indent, sort_keys, b, at, level + 1)) return false;
        }
        if (indent >= 0 && !newline_indent(b, indent, level)) return false;
        return jj_buf_adds(b, "}");
    }
    default:
        jj_fail(c, at, "tojson: Object of type %s is not JSON serializable", jv_type_name(v));
        return false;
    }
}

bool jv_tojson(jj_ctx *c, const jv *v, int indent, bool sort_keys, jj_buf *b, const jj_node *at) {
    bool ok = dumps(c, v, indent, sort_keys, b, at, 0);
    if (!ok && !c->failed) jj_fail(c, at, "tojson: string too long or out of memory");
    return ok;
}
