/*
 * jinja_lex.c -- template source to tokens: text between tags (with trim_blocks, lstrip_blocks
 * and the -/+ whitespace controls applied), the tags' delimiters and the expression tokens
 * inside them. Comments and {% raw %} blocks are resolved here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/jinja_int.h"

typedef struct {
    jj_arena *a;
    const char *s;
    size_t n;
    const char *origin;
    jj_toks *out;
    /* line / column of position lc_pos (positions only move forward) */
    size_t lc_pos;
    int line, col;
} lexer;

static void where(lexer *L, size_t pos, int *line, int *col) {
    if (pos < L->lc_pos) { L->lc_pos = 0; L->line = 1; L->col = 1; }
    for (; L->lc_pos < pos && L->lc_pos < L->n; L->lc_pos++) {
        if (L->s[L->lc_pos] == '\n') { L->line++; L->col = 1; }
        else L->col++;
    }
    *line = L->line;
    *col = L->col;
}

static bool lex_fail(lexer *L, size_t pos, const char *msg) {
    int line, col;
    where(L, pos, &line, &col);
    lx_set_error(LX_E_FORMAT, "%s:%d:%d: %s", L->origin, line, col, msg);
    return false;
}

static jj_tok *push(lexer *L, jj_tok_type type, size_t pos) {
    jj_toks *t = L->out;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        jj_tok *v = jj_alloc(L->a, cap * sizeof *v);
        if (!v) {
            lx_set_error(LX_E_OOM, "chat template: out of memory");
            return NULL;
        }
        if (t->n) memcpy(v, t->v, t->n * sizeof *v);
        t->v = v;
        t->cap = cap;
    }
    jj_tok *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    k->type = type;
    where(L, pos, &k->line, &k->col);
    return k;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_name0(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* appends the UTF-8 encoding of code point cp */
static size_t put_utf8(char *d, uint32_t cp) {
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) { d[0] = (char)(0xC0 | (cp >> 6)); d[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A string literal at *pos (its quote); Python's escapes, unknown ones kept as written. */
static bool lex_string(lexer *L, size_t *pos) {
    size_t start = *pos, p = start + 1;
    char q = L->s[start];
    /* the value is never longer than the literal */
    size_t end = p;
    while (end < L->n && L->s[end] != q) end += (L->s[end] == '\\' && end + 1 < L->n) ? 2 : 1;
    if (end >= L->n) return lex_fail(L, start, "unterminated string literal");
    char *v = jj_alloc(L->a, end - p + 1);
    if (!v) {
        lx_set_error(LX_E_OOM, "chat template: out of memory");
        return false;
    }
    size_t k = 0;
    while (p < end) {
        char c = L->s[p];
        if (c != '\\') { v[k++] = c; p++; continue; }
        char e = L->s[p + 1];
        p += 2;
        switch (e) {
        case 'n': v[k++] = '\n'; break;
        case 't': v[k++] = '\t'; break;
        case 'r': v[k++] = '\r'; break;
        case '\\': v[k++] = '\\'; break;
        case '\'': v[k++] = '\''; break;
        case '"': v[k++] = '"'; break;
        case 'a': v[k++] = '\a'; break;
        case 'b': v[k++] = '\b'; break;
        case 'f': v[k++] = '\f'; break;
        case 'v': v[k++] = '\v'; break;
        case '\n': break; /* a line continuation */
        case 'x': case 'u': case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            bool ok = p + (size_t)nd <= end;
            for (int i = 0; ok && i < nd; i++) {
                int h = hexval(L->s[p + (size_t)i]);
                if (h < 0) ok = false;
                else cp = cp * 16 + (uint32_t)h;
            }
            if (!ok || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
                return lex_fail(L, p - 2, "malformed \\x, \\u or \\U escape in a string literal");
            /* the value grows by at most one byte over the escape's length */
            k += put_utf8(v + k, cp);
            p += (size_t)nd;
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int i = 0; i < 2 && p < end && L->s[p] >= '0' && L->s[p] <= '7'; i++, p++)
                    cp = cp * 8 + (uint32_t)(L->s[p] - '0');
                k += put_utf8(v + k, cp);
            } else {
                v[k++] = '\\';
                v[k++] = e;
            }
        }
    }
    v[k] = '\0';
    jj_tok *t = push(L, JT_STRING, start);
    if (!t) return false;
    t->s = v;
    t->len = k;
    *pos = end + 1;
    return true;
}

static bool lex_number(lexer *L, size_t *pos) {
    size_t p = *pos, start = p;
    char buf[128];
    size_t k = 0;
    bool is_float = false;
    while (p < L->n && (is_digit(L->s[p]) || (L->s[p] == '_' && p + 1 < L->n && is_digit(L->s[p + 1])))) {
        if (L->s[p] != '_' && k < sizeof buf - 1) buf[k++] = L->s[p];
        p++;
    }
    if (p + 1 < L->n && L->s[p] == '.' && is_digit(L->s[p + 1])) {
        is_float = true;
        buf[k < sizeof buf - 1 ? k++ : k] = '.';
        p++;
        while (p < L->n && (is_digit(L->s[p]) || (L->s[p] == '_' && p + 1 < L->n && is_digit(L->s[p + 1])))) {
            if (L->s[p] != '_' && k < sizeof buf - 1) buf[k++] = L->s[p];
            p++;
        }
    }
    if (p < L->n && (L->s[p] == 'e' || L->s[p] == 'E')) {
        size_t q = p + 1;
        if (q < L->n && (L->s[q] == '+' || L->s[q] == '-')) q++;
        if (q < L->n && is_digit(L->s[q])) {
            is_float = true;
            for (size_t r = p; r < q; r++) if (k < sizeof buf - 1) buf[k++] = L->s[r];
            p = q;
            while (p < L->n && is_digit(L->s[p])) {
                if (k < sizeof buf - 1) buf[k++] = L->s[p];
                p++;
            }
        }
    }
    if (k >= sizeof buf - 1) return lex_fail(L, start, "number literal too long");
    buf[k] = '\0';
    jj_tok *t = push(L, is_float ? JT_FLOAT : JT_INT, start);
    if (!t) return false;
    if (is_float) {
        t->f = strtod(buf, NULL);
    } else {
        int64_t v = 0;
        for (size_t i = 0; i < k; i++) {
            if (v > (INT64_MAX - (buf[i] - '0')) / 10) return lex_fail(L, start, "integer literal too large");
            v = v * 10 + (buf[i] - '0');
        }
        t->i = v;
    }
    *pos = p;
    return true;
}

static bool lex_op(lexer *L, size_t *pos) {
    static const struct { const char *s; jj_op op; } ops[] = {
        {"//", JO_FLOORDIV}, {"**", JO_POW}, {"==", JO_EQ}, {"!=", JO_NE}, {"<=", JO_LE},
        {">=", JO_GE}, {"+", JO_ADD}, {"-", JO_SUB}, {"*", JO_MUL}, {"/", JO_DIV},
        {"%", JO_MOD}, {"~", JO_TILDE}, {"<", JO_LT}, {">", JO_GT}, {"=", JO_ASSIGN},
        {"(", JO_LPAREN}, {")", JO_RPAREN}, {"[", JO_LBRACKET}, {"]", JO_RBRACKET},
        {"{", JO_LBRACE}, {"}", JO_RBRACE}, {",", JO_COMMA}, {".", JO_DOT}, {":", JO_COLON},
        {"|", JO_PIPE},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t l = strlen(ops[i].s);
        if (*pos + l <= L->n && memcmp(L->s + *pos, ops[i].s, l) == 0) {
            jj_tok *t = push(L, JT_OP, *pos);
            if (!t) return false;
            t->op = ops[i].op;
            *pos += l;
            return true;
        }
    }
    char msg[64];
    unsigned char c = (unsigned char)L->s[*pos];
    if (c >= 0x20 && c < 0x7F) snprintf(msg, sizeof msg, "unexpected character '%c'", c);
    else snprintf(msg, sizeof msg, "unexpected byte 0x%02x", c);
    return lex_fail(L, *pos, msg);
}

/* Tokens of one tag's inside from *pos up to its closing delimiter; *pos ends past it and
 * *ended_nl says whether what the close consumed ended with a line break. */
static bool lex_tag(lexer *L, size_t *pos, bool block, size_t open_pos, bool *ended_nl) {
    size_t p = *pos;
    int depth = 0;
    for (;;) {
        while (p < L->n && is_ws(L->s[p])) p++;
        if (p >= L->n)
            return lex_fail(L, open_pos, block ? "unclosed tag: expected '%}'" : "unclosed tag: expected '}}'");
        const char *s = L->s + p;
        size_t left = L->n - p;
        char close = block ? '%' : '}';
        bool at_close = false, strip = false, keep = false;
        if (left >= 3 && s[0] == '-' && s[1] == close && s[2] == '}') { at_close = true; strip = true; }
        else if (block && left >= 3 && s[0] == '+' && s[1] == '%' && s[2] == '}') { at_close = true; keep = true; }
        else if (left >= 2 && s[0] == close && s[1] == '}' && (block || depth == 0)) at_close = true;
        if (at_close) {
            jj_tok *t = push(L, block ? JT_BLOCK_END : JT_VAR_END, p);
            if (!t) return false;
            p += strip || keep ? 3 : 2;
            *ended_nl = false;
            if (strip) {
                while (p < L->n && is_ws(L->s[p])) { *ended_nl = L->s[p] == '\n'; p++; }
            } else if (block && !keep && p < L->n && L->s[p] == '\n') {
                p++; /* trim_blocks */
                *ended_nl = true;
            }
            *pos = p;
            return true;
        }
        char c = s[0];
        if (is_name0(c)) {
            size_t q = p;
            while (q < L->n && (is_name0(L->s[q]) || is_digit(L->s[q]))) q++;
            jj_tok *t = push(L, JT_NAME, p);
            if (!t) return false;
            t->s = jj_strdup(L->a, L->s + p, q - p);
            if (!t->s) {
                lx_set_error(LX_E_OOM, "chat template: out of memory");
                return false;
            }
            t->len = q - p;
            p = q;
        } else if (is_digit(c)) {
            if (!lex_number(L, &p)) return false;
        } else if (c == '\'' || c == '"') {
            if (!lex_string(L, &p)) return false;
        } else {
            if (!lex_op(L, &p)) return false;
            jj_op op = L->out->v[L->out->n - 1].op;
            if (op == JO_LPAREN || op == JO_LBRACKET || op == JO_LBRACE) depth++;
            else if ((op == JO_RPAREN || op == JO_RBRACKET || op == JO_RBRACE) && depth > 0) depth--;
        }
    }
}

static bool push_text(lexer *L, size_t from, size_t len) {
    if (len == 0) return true;
    jj_tok *t = push(L, JT_TEXT, from);
    if (!t) return false;
    t->s = L->s + from;
    t->len = len;
    return true;
}

/* {% raw %} at its name token: the text up to {% endraw %} is output as written. */
static bool lex_raw(lexer *L, size_t *pos, size_t open_pos) {
    /* the tokens pushed for this tag (BLOCK_BEGIN, raw, BLOCK_END) are dropped */
    size_t p = *pos;
    for (size_t q = p; q + 1 < L->n; q++) {
        if (L->s[q] != '{' || L->s[q + 1] != '%') continue;
        size_t r = q + 2;
        bool strip = r < L->n && L->s[r] == '-';
        if (r < L->n && (L->s[r] == '-' || L->s[r] == '+')) r++;
        while (r < L->n && is_ws(L->s[r])) r++;
        if (L->n - r < 6 || memcmp(L->s + r, "endraw", 6) != 0) continue;
        r += 6;
        while (r < L->n && is_ws(L->s[r])) r++;
        bool strip_after = false;
        if (r < L->n && L->s[r] == '-') { strip_after = true; r++; }
        if (L->n - r < 2 || L->s[r] != '%' || L->s[r + 1] != '}') continue;
        r += 2;
        size_t end = q;
        if (strip) while (end > p && is_ws(L->s[end - 1])) end--;
        if (!push_text(L, p, end - p)) return false;
        if (strip_after) while (r < L->n && is_ws(L->s[r])) r++;
        else if (r < L->n && L->s[r] == '\n') r++;
        *pos = r;
        return true;
    }
    return lex_fail(L, open_pos, "unclosed raw block: expected '{% endraw %}'");
}

/* jinja2 reads the source through str.splitlines(): every line break it knows becomes \n
 * and one trailing break goes (keep_trailing_newline is off). */
static char *normalize(jj_arena *a, const char *src, size_t len, size_t *out_len) {
    char *d = jj_alloc(a, len + 1);
    if (!d) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '\r') {
            if (i + 1 < len && src[i + 1] == '\n') i++;
            d[k++] = '\n';
        } else if (c == '\n' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E) {
            d[k++] = '\n';
        } else if (c == 0xC2 && i + 1 < len && (unsigned char)src[i + 1] == 0x85) {
            d[k++] = '\n';
            i++;
        } else if (c == 0xE2 && i + 2 < len && (unsigned char)src[i + 1] == 0x80 &&
                   ((unsigned char)src[i + 2] == 0xA8 || (unsigned char)src[i + 2] == 0xA9)) {
            d[k++] = '\n';
            i += 2;
        } else {
            d[k++] = (char)c;
        }
    }
    if (k > 0 && d[k - 1] == '\n') k--;
    d[k] = '\0';
    *out_len = k;
    return d;
}

bool jj_lex(jj_arena *a, const char *src, size_t len, const char *origin, jj_toks *out) {
    lexer L = {.a = a, .origin = origin, .out = out, .line = 1, .col = 1};
    L.s = normalize(a, src, len, &L.n);
    if (!L.s) {
        lx_set_error(LX_E_OOM, "chat template: out of memory");
        return false;
    }
    size_t pos = 0;
    bool line_starting = true;
    while (pos < L.n) {
        /* the next tag opener */
        size_t k = pos;
        while (k + 1 < L.n && !(L.s[k] == '{' && (L.s[k + 1] == '{' || L.s[k + 1] == '%' || L.s[k + 1] == '#'))) k++;
        if (k + 1 >= L.n) {
            if (!push_text(&L, pos, L.n - pos)) return false;
            break;
        }
        char kind = L.s[k + 1];
        size_t p = k + 2;
        char sign = p < L.n ? L.s[p] : '\0';
        size_t tlen = k - pos;
        if (sign == '-') {
            while (tlen > 0 && is_ws(L.s[pos + tlen - 1])) tlen--;
            p++;
        } else {
            if (sign == '+' && kind != '{') p++;
            else if (kind != '{') {
                /* lstrip_blocks: spaces and tabs alone before the tag on its line go */
                size_t l_pos = tlen;
                while (l_pos > 0 && L.s[pos + l_pos - 1] != '\n') l_pos--;
                if (l_pos > 0 || line_starting) {
                    bool blank = true;
                    for (size_t i = l_pos; i < tlen; i++)
                        if (L.s[pos + i] != ' ' && L.s[pos + i] != '\t') { blank = false; break; }
                    if (blank) tlen = l_pos;
                }
            }
        }
        if (!push_text(&L, pos, tlen)) return false;
        bool ended_nl = false;
        if (kind == '#') {
            size_t q = p;
            while (q + 1 < L.n && !(L.s[q] == '#' && L.s[q + 1] == '}')) q++;
            if (q + 1 >= L.n) return lex_fail(&L, k, "unclosed comment: expected '#}'");
            bool strip = q > p && L.s[q - 1] == '-';
            bool keep = q > p && L.s[q - 1] == '+';
            q += 2;
            if (strip) {
                while (q < L.n && is_ws(L.s[q])) { ended_nl = L.s[q] == '\n'; q++; }
            } else if (!keep && q < L.n && L.s[q] == '\n') {
                q++;
                ended_nl = true;
            }
            pos = q;
        } else if (kind == '%') {
            size_t first = out->n;
            if (!push(&L, JT_BLOCK_BEGIN, k)) return false;
            if (!lex_tag(&L, &p, true, k, &ended_nl)) return false;
            if (out->n == first + 3 && out->v[first + 1].type == JT_NAME &&
                strcmp(out->v[first + 1].s, "raw") == 0) {
                out->n = first;
                size_t close_end = p;
                /* {% raw -%}: the content's leading whitespace was consumed by lex_tag */
                if (!lex_raw(&L, &close_end, k)) return false;
                p = close_end;
                ended_nl = p > 0 && L.s[p - 1] == '\n';
            }
            pos = p;
        } else {
            if (!push(&L, JT_VAR_BEGIN, k)) return false;
            if (!lex_tag(&L, &p, false, k, &ended_nl)) return false;
            pos = p;
        }
        line_starting = ended_nl;
    }
    return push(&L, JT_EOF, L.n) != NULL;
}
