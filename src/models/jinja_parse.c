/*
 * jinja_parse.c -- tokens to a syntax tree, by recursive descent with jinja2's precedence:
 * conditional < or < and < not < comparisons < + - < ~ < * / // % < ** < unary - + <
 * postfix (. [] ()) and filters / tests. Node fields by kind:
 *   JN_BODY list | JN_TEXT value | JN_OUTPUT a
 *   JN_IF a=cond b=then c=else | JN_FOR a=target b=iter c=body d=else, list[0]=filter or none
 *   JN_SET a=target b=value | JN_SET_BLOCK a=target b=body c=filter chain (JN_FILTER on a null
 *   operand) | JN_MACRO name, names/list2 params and defaults (NULL: none), b=body
 *   JN_CALL_BLOCK a=call b=body names/list2 caller params | JN_FILTER_BLOCK b=body c=chain
 *   JN_GETATTR a name | JN_GETITEM a b | JN_SLICE a, list[3] start stop step (NULL: none)
 *   JN_CALL a=callee list args, names/list2 kwargs | JN_FILTER / JN_TEST name a=operand + args
 *   JN_BINOP op a b | JN_NEG/POS/NOT a | JN_AND/OR a b | JN_COND a=cond b=then c=else or NULL
 *   JN_LIST / JN_TUPLE list | JN_DICT list keys list2 values | JN_COMPARE a, ops + list
 *   JN_CONCAT list | JN_SET target: JN_NAME, JN_TUPLE of names, or JN_GETATTR(name) for ns.attr
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "models/jinja_int.h"

typedef struct {
    jj_arena *a;
    const jj_tok *t;
    size_t n, i;
    const char *origin;
    int depth;
    bool failed;
} parser;

static const jj_tok *cur(parser *P) { return &P->t[P->i]; }
static const jj_tok *peek(parser *P, size_t k) {
    return P->i + k < P->n ? &P->t[P->i + k] : &P->t[P->n - 1];
}

static void *perr(parser *P, const jj_tok *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void *perr(parser *P, const jj_tok *at, const char *fmt, ...) {
    if (P->failed) return NULL;
    P->failed = true;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lx_set_error(LX_E_FORMAT, "%s:%d:%d: %s", P->origin, at->line, at->col, msg);
    return NULL;
}

static void *poom(parser *P) {
    if (!P->failed) lx_set_error(LX_E_OOM, "chat template: out of memory");
    P->failed = true;
    return NULL;
}

static const char *describe(const jj_tok *t, char *buf, size_t cap) {
    switch (t->type) {
    case JT_EOF: return "end of template";
    case JT_TEXT: return "template text";
    case JT_BLOCK_BEGIN: return "'{%'";
    case JT_BLOCK_END: return "end of statement block";
    case JT_VAR_BEGIN: return "'{{'";
    case JT_VAR_END: return "end of print statement";
    case JT_NAME: snprintf(buf, cap, "'%.40s'", t->s); return buf;
    case JT_STRING: return "string literal";
    case JT_INT: return "integer literal";
    case JT_FLOAT: return "float literal";
    case JT_OP: break;
    }
    static const char *const names[] = {
        "", "+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", "<=", ">", ">=", "=",
        "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
    snprintf(buf, cap, "'%s'", (size_t)t->op < sizeof names / sizeof names[0] ? names[t->op] : "?");
    return buf;
}

static void *unexpected(parser *P, const char *expected) {
    char b[64];
    return perr(P, cur(P), "unexpected %s, expected %s", describe(cur(P), b, sizeof b), expected);
}

static bool is_op(parser *P, jj_op op) { return cur(P)->type == JT_OP && cur(P)->op == op; }
static bool is_name(parser *P, const char *s) {
    return cur(P)->type == JT_NAME && strcmp(cur(P)->s, s) == 0;
}
static bool skip_op(parser *P, jj_op op) {
    if (!is_op(P, op)) return false;
    P->i++;
    return true;
}
static bool skip_name(parser *P, const char *s) {
    if (!is_name(P, s)) return false;
    P->i++;
    return true;
}
static bool expect_op(parser *P, jj_op op, const char *what) {
    if (skip_op(P, op)) return true;
    unexpected(P, what);
    return false;
}
static bool expect_end(parser *P) {
    if (cur(P)->type == JT_BLOCK_END) { P->i++; return true; }
    unexpected(P, "end of statement block '%}'");
    return false;
}

static jj_node *mk(parser *P, jj_kind k, const jj_tok *at) {
    jj_node *n = jj_alloc(P->a, sizeof *n);
    if (!n) return poom(P);
    n->kind = k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* growable node list in the arena */
typedef struct { jj_node **v; int n, cap; } nlist;
static bool nl_push(parser *P, nlist *l, jj_node *x) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        jj_node **v = jj_alloc(P->a, (size_t)cap * sizeof *v);
        if (!v) { poom(P); return false; }
        if (l->n) memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return true;
}
typedef struct { const char **v; int n, cap; } slist;
static bool sl_push(parser *P, slist *l, const char *x) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        const char **v = jj_alloc(P->a, (size_t)cap * sizeof *v);
        if (!v) { poom(P); return false; }
        if (l->n) memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return true;
}

static jv *const_val(parser *P, jv_type t) {
    jv *v = jj_alloc(P->a, sizeof *v);
    if (!v) return poom(P);
    v->t = t;
    return v;
}

static jj_node *parse_expr(parser *P);
static jj_node *parse_or(parser *P);
static jj_node *parse_unary(parser *P, bool with_filter);
static jj_node *parse_tuple(parser *P, bool with_condexpr, bool explicit_parens);

static bool enter(parser *P) {
    if (++P->depth > JJ_MAX_PARSE_DEPTH) {
        perr(P, cur(P), "template nested too deeply (more than %d levels)", JJ_MAX_PARSE_DEPTH);
        return false;
    }
    return true;
}
static void leave(parser *P) { P->depth--; }

/* (args, kw=args) after the opening parenthesis was seen (not consumed) */
static bool parse_call_args(parser *P, jj_node *call) {
    if (!expect_op(P, JO_LPAREN, "'('")) return false;
    nlist args = {0}, kwv = {0};
    slist kwn = {0};
    while (!is_op(P, JO_RPAREN)) {
        if (args.n + kwv.n > 0 && !expect_op(P, JO_COMMA, "',' or ')'")) return false;
        if (is_op(P, JO_RPAREN)) break;
        if (cur(P)->type == JT_NAME && peek(P, 1)->type == JT_OP && peek(P, 1)->op == JO_ASSIGN) {
            const char *name = cur(P)->s;
            P->i += 2;
            jj_node *v = parse_expr(P);
            if (!v || !sl_push(P, &kwn, name) || !nl_push(P, &kwv, v)) return false;
        } else {
            if (kwv.n) { perr(P, cur(P), "positional argument after a keyword argument"); return false; }
            if (is_op(P, JO_MUL) || is_op(P, JO_POW)) { perr(P, cur(P), "*args and **kwargs are not supported"); return false; }
            jj_node *v = parse_expr(P);
            if (!v || !nl_push(P, &args, v)) return false;
        }
    }
    P->i++;
    call->list = args.v;
    call->n = args.n;
    call->names = kwn.v;
    call->list2 = kwv.v;
    call->n2 = kwv.n;
    return true;
}

static jj_node *parse_primary(parser *P) {
    const jj_tok *t = cur(P);
    jj_node *n = NULL;
    if (!enter(P)) return NULL;
    switch (t->type) {
    case JT_NAME: {
        P->i++;
        const char *s = t->s;
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "false") || !strcmp(s, "False")) {
            n = mk(P, JN_CONST, t);
            if (n && (n->value = const_val(P, JV_BOOL))) n->value->u.b = s[0] == 't' || s[0] == 'T';
        } else if (!strcmp(s, "none") || !strcmp(s, "None")) {
            n = mk(P, JN_CONST, t);
            if (n) n->value = const_val(P, JV_NONE);
        } else {
            n = mk(P, JN_NAME, t);
            if (n) n->name = s;
        }
        break;
    }
    case JT_STRING: {
        /* adjacent literals concatenate */
        size_t total = 0, k = P->i;
        while (k < P->n && P->t[k].type == JT_STRING) total += P->t[k++].len;
        char *s = jj_alloc(P->a, total + 1);
        if (!s) return poom(P);
        size_t off = 0;
        while (P->i < k) {
            memcpy(s + off, P->t[P->i].s, P->t[P->i].len);
            off += P->t[P->i].len;
            P->i++;
        }
        n = mk(P, JN_CONST, t);
        if (n && (n->value = const_val(P, JV_STR))) {
            n->value->u.s.p = s;
            n->value->u.s.n = total;
        }
        break;
    }
    case JT_INT:
    case JT_FLOAT:
        P->i++;
        n = mk(P, JN_CONST, t);
        if (n && (n->value = const_val(P, t->type == JT_INT ? JV_INT : JV_FLOAT))) {
            if (t->type == JT_INT) n->value->u.i = t->i;
            else n->value->u.f = t->f;
        }
        break;
    case JT_OP:
        if (t->op == JO_LPAREN) {
            P->i++;
            n = parse_tuple(P, true, true);
            if (n && !expect_op(P, JO_RPAREN, "')'")) n = NULL;
        } else if (t->op == JO_LBRACKET) {
            P->i++;
            n = mk(P, JN_LIST, t);
            nlist items = {0};
            while (n && !is_op(P, JO_RBRACKET)) {
                if (items.n && !expect_op(P, JO_COMMA, "',' or ']'")) { n = NULL; break; }
                if (is_op(P, JO_RBRACKET)) break;
                jj_node *x = parse_expr(P);
                if (!x || !nl_push(P, &items, x)) { n = NULL; break; }
            }
            if (n) {
                P->i++;
                n->list = items.v;
                n->n = items.n;
            }
        } else if (t->op == JO_LBRACE) {
            P->i++;
            n = mk(P, JN_DICT, t);
            nlist keys = {0}, vals = {0};
            while (n && !is_op(P, JO_RBRACE)) {
                if (keys.n && !expect_op(P, JO_COMMA, "',' or '}'")) { n = NULL; break; }
                if (is_op(P, JO_RBRACE)) break;
                jj_node *k = parse_expr(P);
                if (!k || !expect_op(P, JO_COLON, "':'")) { n = NULL; break; }
                jj_node *v = parse_expr(P);
                if (!v || !nl_push(P, &keys, k) || !nl_push(P, &vals, v)) { n = NULL; break; }
            }
            if (n) {
                P->i++;
                n->list = keys.v;
                n->n = keys.n;
                n->list2 = vals.v;
                n->n2 = vals.n;
            }
        } else {
            unexpected(P, "an expression");
        }
        break;
    default:
        unexpected(P, "an expression");
    }
    leave(P);
    return P->failed ? NULL : n;
}

/* [subscript] after '[' was consumed: an index or a slice start:stop:step */
static jj_node *parse_subscript(parser *P, jj_node *obj, const jj_tok *at) {
    jj_node *parts[3] = {NULL, NULL, NULL};
    bool slice = false;
    int k = 0;
    for (;;) {
        if (!is_op(P, JO_COLON) && !is_op(P, JO_RBRACKET)) {
            parts[k] = parse_expr(P);
            if (!parts[k]) return NULL;
        }
        if (skip_op(P, JO_COLON)) {
            slice = true;
            if (++k > 2) return unexpected(P, "']'");
            continue;
        }
        break;
    }
    if (!expect_op(P, JO_RBRACKET, "']'")) return NULL;
    if (!slice && !parts[0]) return perr(P, at, "empty subscript");
    jj_node *n = mk(P, slice ? JN_SLICE : JN_GETITEM, at);
    if (!n) return NULL;
    n->a = obj;
    if (slice) {
        n->list = jj_alloc(P->a, 3 * sizeof *n->list);
        if (!n->list) return poom(P);
        memcpy(n->list, parts, sizeof parts);
        n->n = 3;
    } else {
        n->b = parts[0];
    }
    return n;
}

static jj_node *parse_postfix(parser *P, jj_node *n) {
    while (n) {
        const jj_tok *t = cur(P);
        if (skip_op(P, JO_DOT)) {
            if (cur(P)->type == JT_NAME) {
                jj_node *g = mk(P, JN_GETATTR, t);
                if (!g) return NULL;
                g->a = n;
                g->name = cur(P)->s;
                P->i++;
                n = g;
            } else if (cur(P)->type == JT_INT) {
                jj_node *g = mk(P, JN_GETITEM, t), *k = mk(P, JN_CONST, cur(P));
                if (!g || !k || !(k->value = const_val(P, JV_INT))) return NULL;
                k->value->u.i = cur(P)->i;
                P->i++;
                g->a = n;
                g->b = k;
                n = g;
            } else {
                return unexpected(P, "an attribute name");
            }
        } else if (skip_op(P, JO_LBRACKET)) {
            n = parse_subscript(P, n, t);
        } else if (is_op(P, JO_LPAREN)) {
            jj_node *c = mk(P, JN_CALL, t);
            if (!c) return NULL;
            c->a = n;
            if (!parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            break;
        }
    }
    return n;
}

/* a filter or test name, possibly dotted */
static const char *parse_dotted_name(parser *P, const char *what) {
    if (cur(P)->type != JT_NAME) { unexpected(P, what); return NULL; }
    const char *s = cur(P)->s;
    P->i++;
    while (is_op(P, JO_DOT) && peek(P, 1)->type == JT_NAME) {
        const char *t = peek(P, 1)->s;
        size_t a = strlen(s), b = strlen(t);
        char *d = jj_alloc(P->a, a + b + 2);
        if (!d) { poom(P); return NULL; }
        memcpy(d, s, a);
        d[a] = '.';
        memcpy(d + a + 1, t, b + 1);
        s = d;
        P->i += 2;
    }
    return s;
}

static jj_node *parse_filter(parser *P, jj_node *operand, const jj_tok *at) {
    jj_node *f = mk(P, JN_FILTER, at);
    if (!f) return NULL;
    f->a = operand;
    if (!(f->name = parse_dotted_name(P, "a filter name"))) return NULL;
    if (is_op(P, JO_LPAREN) && !parse_call_args(P, f)) return NULL;
    return f;
}

static jj_node *parse_filter_expr(parser *P, jj_node *n) {
    while (n) {
        const jj_tok *t = cur(P);
        if (skip_op(P, JO_PIPE)) {
            n = parse_filter(P, n, t);
        } else if (skip_name(P, "is")) {
            jj_node *x = mk(P, JN_TEST, t);
            if (!x) return NULL;
            x->a = n;
            x->flag = skip_name(P, "not");
            if (!(x->name = parse_dotted_name(P, "a test name"))) return NULL;
            const jj_tok *c = cur(P);
            if (is_op(P, JO_LPAREN)) {
                if (!parse_call_args(P, x)) return NULL;
            } else if ((c->type == JT_NAME || c->type == JT_STRING || c->type == JT_INT ||
                        c->type == JT_FLOAT ||
                        (c->type == JT_OP && (c->op == JO_LBRACKET || c->op == JO_LBRACE))) &&
                       !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
                /* one argument without parentheses: x is divisibleby 3 */
                if (is_name(P, "is")) return perr(P, c, "you cannot chain multiple tests with is");
                jj_node *arg = parse_postfix(P, parse_primary(P));
                if (!arg) return NULL;
                x->list = jj_alloc(P->a, sizeof *x->list);
                if (!x->list) return poom(P);
                x->list[0] = arg;
                x->n = 1;
            }
            n = x;
        } else if (is_op(P, JO_LPAREN)) {
            jj_node *c = mk(P, JN_CALL, t);
            if (!c) return NULL;
            c->a = n;
            if (!parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            break;
        }
    }
    return n;
}

static jj_node *parse_unary(parser *P, bool with_filter) {
    const jj_tok *t = cur(P);
    jj_node *n;
    if (!enter(P)) return NULL;
    if (is_op(P, JO_SUB) || is_op(P, JO_ADD)) {
        P->i++;
        n = mk(P, t->op == JO_SUB ? JN_NEG : JN_POS, t);
        if (n && !(n->a = parse_unary(P, false))) n = NULL;
    } else {
        n = parse_primary(P);
    }
    n = parse_postfix(P, n);
    if (with_filter) n = parse_filter_expr(P, n);
    leave(P);
    return n;
}

static jj_node *binop(parser *P, jj_op op, jj_node *l, jj_node *r, const jj_tok *at) {
    if (!l || !r) return NULL;
    jj_node *n = mk(P, JN_BINOP, at);
    if (!n) return NULL;
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static jj_node *parse_pow(parser *P) {
    jj_node *l = parse_unary(P, true);
    while (l && is_op(P, JO_POW)) {
        const jj_tok *t = cur(P);
        P->i++;
        l = binop(P, JO_POW, l, parse_unary(P, true), t);
    }
    return l;
}

static jj_node *parse_math2(parser *P) {
    jj_node *l = parse_pow(P);
    while (l && (is_op(P, JO_MUL) || is_op(P, JO_DIV) || is_op(P, JO_FLOORDIV) || is_op(P, JO_MOD))) {
        const jj_tok *t = cur(P);
        P->i++;
        l = binop(P, t->op, l, parse_pow(P), t);
    }
    return l;
}

static jj_node *parse_concat(parser *P) {
    const jj_tok *t = cur(P);
    jj_node *first = parse_math2(P);
    if (!first || !is_op(P, JO_TILDE)) return first;
    nlist args = {0};
    if (!nl_push(P, &args, first)) return NULL;
    while (skip_op(P, JO_TILDE)) {
        jj_node *x = parse_math2(P);
        if (!x || !nl_push(P, &args, x)) return NULL;
    }
    jj_node *n = mk(P, JN_CONCAT, t);
    if (!n) return NULL;
    n->list = args.v;
    n->n = args.n;
    return n;
}

static jj_node *parse_math1(parser *P) {
    jj_node *l = parse_concat(P);
    while (l && (is_op(P, JO_ADD) || is_op(P, JO_SUB))) {
        const jj_tok *t = cur(P);
        P->i++;
        l = binop(P, t->op, l, parse_concat(P), t);
    }
    return l;
}

static jj_node *parse_compare(parser *P) {
    const jj_tok *t = cur(P);
    jj_node *first = parse_math1(P);
    if (!first) return NULL;
    nlist rhs = {0};
    jj_op ops[64];
    int nops = 0;
    for (;;) {
        jj_op op;
        if (cur(P)->type == JT_OP && cur(P)->op >= JO_EQ && cur(P)->op <= JO_GE) {
            op = cur(P)->op;
            P->i++;
        } else if (is_name(P, "in")) {
            op = JO_IN;
            P->i++;
        } else if (is_name(P, "not") && peek(P, 1)->type == JT_NAME && !strcmp(peek(P, 1)->s, "in")) {
            op = JO_NOTIN;
            P->i += 2;
        } else {
            break;
        }
        if (nops == 64) return perr(P, cur(P), "too many chained comparisons");
        ops[nops++] = op;
        jj_node *r = parse_math1(P);
        if (!r || !nl_push(P, &rhs, r)) return NULL;
    }
    if (!nops) return first;
    jj_node *n = mk(P, JN_COMPARE, t);
    if (!n) return NULL;
    n->a = first;
    n->list = rhs.v;
    n->n = rhs.n;
    n->ops = jj_alloc(P->a, (size_t)nops * sizeof *n->ops);
    if (!n->ops) return poom(P);
    memcpy(n->ops, ops, (size_t)nops * sizeof *ops);
    return n;
}

static jj_node *parse_not(parser *P) {
    const jj_tok *t = cur(P);
    if (is_name(P, "not")) {
        P->i++;
        if (!enter(P)) return NULL;
        jj_node *n = mk(P, JN_NOT, t);
        if (n && !(n->a = parse_not(P))) n = NULL;
        leave(P);
        return n;
    }
    return parse_compare(P);
}

static jj_node *parse_and(parser *P) {
    jj_node *l = parse_not(P);
    while (l && is_name(P, "and")) {
        const jj_tok *t = cur(P);
        P->i++;
        jj_node *n = mk(P, JN_AND, t);
        if (!n) return NULL;
        n->a = l;
        if (!(n->b = parse_not(P))) return NULL;
        l = n;
    }
    return l;
}

static jj_node *parse_or(parser *P) {
    jj_node *l = parse_and(P);
    while (l && is_name(P, "or")) {
        const jj_tok *t = cur(P);
        P->i++;
        jj_node *n = mk(P, JN_OR, t);
        if (!n) return NULL;
        n->a = l;
        if (!(n->b = parse_and(P))) return NULL;
        l = n;
    }
    return l;
}

/* a if c else b (the else part may be missing: undefined) */
static jj_node *parse_expr(parser *P) {
    if (!enter(P)) return NULL;
    jj_node *a = parse_or(P);
    while (a && is_name(P, "if")) {
        const jj_tok *t = cur(P);
        P->i++;
        jj_node *n = mk(P, JN_COND, t);
        if (!n) { a = NULL; break; }
        n->b = a;
        if (!(n->a = parse_or(P))) { a = NULL; break; }
        if (skip_name(P, "else") && !(n->c = parse_expr(P))) { a = NULL; break; }
        a = n;
    }
    leave(P);
    return a;
}

static bool at_tuple_end(parser *P) {
    const jj_tok *t = cur(P);
    if (t->type == JT_BLOCK_END || t->type == JT_VAR_END || t->type == JT_EOF) return true;
    if (t->type == JT_OP && (t->op == JO_RPAREN || t->op == JO_ASSIGN)) return true;
    return is_name(P, "in") || is_name(P, "if") || is_name(P, "recursive");
}

/* a, b, c as a tuple; one item without a comma is itself */
static jj_node *parse_tuple(parser *P, bool with_condexpr, bool explicit_parens) {
    const jj_tok *t = cur(P);
    nlist items = {0};
    bool comma = false;
    if (explicit_parens && is_op(P, JO_RPAREN)) {
        jj_node *n = mk(P, JN_TUPLE, t);
        return n;
    }
    for (;;) {
        if (items.n) {
            if (!skip_op(P, JO_COMMA)) break;
            comma = true;
            if (at_tuple_end(P)) break;
        }
        jj_node *x = with_condexpr ? parse_expr(P) : parse_or(P);
        if (!x || !nl_push(P, &items, x)) return NULL;
    }
    if (items.n == 1 && !comma) return items.v[0];
    jj_node *n = mk(P, JN_TUPLE, t);
    if (!n) return NULL;
    n->list = items.v;
    n->n = items.n;
    return n;
}

/* for / set targets: a name, ns.attr (set only), or names separated by commas */
static jj_node *parse_target(parser *P, bool allow_attr) {
    const jj_tok *t = cur(P);
    bool paren = skip_op(P, JO_LPAREN);
    nlist names = {0};
    for (;;) {
        if (cur(P)->type != JT_NAME) return unexpected(P, "a variable name");
        const jj_tok *nt = cur(P);
        P->i++;
        jj_node *x = mk(P, JN_NAME, nt);
        if (!x) return NULL;
        x->name = nt->s;
        if (allow_attr && !names.n && is_op(P, JO_DOT)) {
            P->i++;
            if (cur(P)->type != JT_NAME) return unexpected(P, "an attribute name");
            jj_node *g = mk(P, JN_GETATTR, nt);
            if (!g) return NULL;
            g->a = x;
            g->name = cur(P)->s;
            P->i++;
            if (!paren) return g;
            x = g;
        }
        if (!nl_push(P, &names, x)) return NULL;
        if (!skip_op(P, JO_COMMA)) break;
        if (paren && is_op(P, JO_RPAREN)) break;
    }
    if (paren && !expect_op(P, JO_RPAREN, "')'")) return NULL;
    if (names.n == 1 && names.v[0]->kind != JN_NAME) return unexpected(P, "a variable name");
    if (names.n == 1 && !paren) return names.v[0];
    for (int i = 0; i < names.n; i++)
        if (names.v[i]->kind != JN_NAME) return perr(P, t, "can't assign to an attribute inside a tuple");
    jj_node *n = mk(P, JN_TUPLE, t);
    if (!n) return NULL;
    n->list = names.v;
    n->n = names.n;
    return n;
}

static jj_node *parse_body(parser *P, const char *const *ends, const char *opener, const jj_tok *open_tok);

/* the statement tag after '{%' */
static jj_node *parse_statement(parser *P) {
    const jj_tok *t = cur(P);
    if (t->type != JT_NAME) return unexpected(P, "a statement name");
    const char *s = t->s;
    P->i++;
    jj_node *n = NULL;
    if (!strcmp(s, "if")) {
        n = mk(P, JN_IF, t);
        if (!n || !(n->a = parse_expr(P)) || !expect_end(P)) return NULL;
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        if (!(n->b = parse_body(P, ends, "if", t))) return NULL;
        jj_node *last = n;
        for (;;) {
            const jj_tok *e = cur(P); /* the end name (after '{%') */
            P->i++;
            if (!strcmp(e->s, "elif")) {
                jj_node *m = mk(P, JN_IF, e);
                if (!m || !(m->a = parse_expr(P)) || !expect_end(P)) return NULL;
                if (!(m->b = parse_body(P, ends, "if", t))) return NULL;
                last->c = m;
                last = m;
            } else if (!strcmp(e->s, "else")) {
                static const char *const ends2[] = {"endif", NULL};
                if (!expect_end(P) || !(last->c = parse_body(P, ends2, "if", t))) return NULL;
                P->i++;
                return expect_end(P) ? n : NULL;
            } else {
                return expect_end(P) ? n : NULL;
            }
        }
    }
    if (!strcmp(s, "for")) {
        n = mk(P, JN_FOR, t);
        if (!n || !(n->a = parse_target(P, false))) return NULL;
        if (!skip_name(P, "in")) return unexpected(P, "'in'");
        if (!(n->b = parse_tuple(P, false, false))) return NULL;
        if (skip_name(P, "if")) {
            n->list = jj_alloc(P->a, sizeof *n->list);
            if (!n->list) return poom(P);
            if (!(n->list[0] = parse_expr(P))) return NULL;
            n->n = 1;
        }
        if (skip_name(P, "recursive")) return perr(P, t, "recursive for loops are not supported");
        if (!expect_end(P)) return NULL;
        static const char *const ends[] = {"else", "endfor", NULL};
        if (!(n->c = parse_body(P, ends, "for", t))) return NULL;
        if (skip_name(P, "else")) {
            static const char *const ends2[] = {"endfor", NULL};
            if (!expect_end(P) || !(n->d = parse_body(P, ends2, "for", t))) return NULL;
        }
        P->i++;
        return expect_end(P) ? n : NULL;
    }
    if (!strcmp(s, "set")) {
        jj_node *target = parse_target(P, true);
        if (!target) return NULL;
        if (skip_op(P, JO_ASSIGN)) {
            n = mk(P, JN_SET, t);
            if (!n) return NULL;
            n->a = target;
            if (!(n->b = parse_tuple(P, true, false)) || !expect_end(P)) return NULL;
            return n;
        }
        if (target->kind != JN_NAME) return unexpected(P, "'='");
        n = mk(P, JN_SET_BLOCK, t);
        if (!n) return NULL;
        n->a = target;
        jj_node *chain = NULL;
        while (is_op(P, JO_PIPE)) {
            const jj_tok *pt = cur(P);
            P->i++;
            if (!(chain = parse_filter(P, chain, pt))) return NULL;
        }
        n->c = chain;
        if (!expect_end(P)) return NULL;
        static const char *const ends[] = {"endset", NULL};
        if (!(n->b = parse_body(P, ends, "set", t))) return NULL;
        P->i++;
        return expect_end(P) ? n : NULL;
    }
    if (!strcmp(s, "macro") || !strcmp(s, "call")) {
        bool is_call = s[0] == 'c';
        n = mk(P, is_call ? JN_CALL_BLOCK : JN_MACRO, t);
        if (!n) return NULL;
        slist names = {0};
        nlist defs = {0};
        if (!is_call) {
            if (cur(P)->type != JT_NAME) return unexpected(P, "a macro name");
            n->name = cur(P)->s;
            P->i++;
        }
        if (!is_call || is_op(P, JO_LPAREN)) {
            if (!expect_op(P, JO_LPAREN, "'('")) return NULL;
            while (!is_op(P, JO_RPAREN)) {
                if (names.n && !expect_op(P, JO_COMMA, "',' or ')'")) return NULL;
                if (is_op(P, JO_RPAREN)) break;
                if (cur(P)->type != JT_NAME) return unexpected(P, "a parameter name");
                const char *pn = cur(P)->s;
                P->i++;
                jj_node *d = NULL;
                if (skip_op(P, JO_ASSIGN) && !(d = parse_expr(P))) return NULL;
                else if (!d && defs.n && defs.v[defs.n - 1])
                    return perr(P, cur(P), "parameter without a default after one with a default");
                if (!sl_push(P, &names, pn) || !nl_push(P, &defs, d)) return NULL;
            }
            P->i++;
        }
        n->names = names.v;
        n->list2 = defs.v;
        n->n2 = names.n;
        if (is_call) {
            jj_node *c = parse_expr(P);
            if (!c) return NULL;
            if (c->kind != JN_CALL) return perr(P, t, "expected a call after 'call'");
            n->a = c;
        }
        if (!expect_end(P)) return NULL;
        static const char *const mends[] = {"endmacro", NULL}, *const cends[] = {"endcall", NULL};
        if (!(n->b = parse_body(P, is_call ? cends : mends, s, t))) return NULL;
        P->i++;
        return expect_end(P) ? n : NULL;
    }
    if (!strcmp(s, "filter")) {
        n = mk(P, JN_FILTER_BLOCK, t);
        if (!n) return NULL;
        jj_node *chain = NULL;
        const jj_tok *ft = cur(P);
        if (!(chain = parse_filter(P, NULL, ft))) return NULL;
        while (is_op(P, JO_PIPE)) {
            const jj_tok *pt = cur(P);
            P->i++;
            if (!(chain = parse_filter(P, chain, pt))) return NULL;
        }
        n->c = chain;
        if (!expect_end(P)) return NULL;
        static const char *const ends[] = {"endfilter", NULL};
        if (!(n->b = parse_body(P, ends, "filter", t))) return NULL;
        P->i++;
        return expect_end(P) ? n : NULL;
    }
    if (!strcmp(s, "generation")) {
        /* transformers' AssistantTracker extension: only marks a span; renders its body */
        if (!expect_end(P)) return NULL;
        static const char *const ends[] = {"endgeneration", NULL};
        if (!(n = parse_body(P, ends, "generation", t))) return NULL;
        P->i++;
        return expect_end(P) ? n : NULL;
    }
    if (!strcmp(s, "break") || !strcmp(s, "continue")) {
        n = mk(P, s[0] == 'b' ? JN_BREAK : JN_CONTINUE, t);
        return n && expect_end(P) ? n : NULL;
    }
    static const char *const enders[] = {"endif", "endfor", "endset", "endmacro", "endcall",
                                         "endfilter", "endgeneration", "elif", "else", NULL};
    for (int i = 0; enders[i]; i++)
        if (!strcmp(s, enders[i])) return perr(P, t, "unexpected '%s' outside a matching block", s);
    if (!strcmp(s, "extends") || !strcmp(s, "include") || !strcmp(s, "import") ||
        !strcmp(s, "from") || !strcmp(s, "block") || !strcmp(s, "with") || !strcmp(s, "do") ||
        !strcmp(s, "autoescape"))
        return perr(P, t, "the '%s' statement is not supported", s);
    return perr(P, t, "unknown statement '%.40s'", s);
}

/* statements until '{%' followed by one of ends (left unconsumed, the cursor on the name), or
 * the end of the template when ends is NULL */
static jj_node *parse_body(parser *P, const char *const *ends, const char *opener, const jj_tok *open_tok) {
    jj_node *body = mk(P, JN_BODY, cur(P));
    if (!body || !enter(P)) return NULL;
    nlist items = {0};
    for (;;) {
        const jj_tok *t = cur(P);
        if (t->type == JT_EOF) {
            if (ends) {
                leave(P);
                return perr(P, t, "unexpected end of template: the '%s' at line %d:%d was never closed (expected '%s')",
                            opener, open_tok->line, open_tok->col, ends[0]);
            }
            break;
        }
        jj_node *x = NULL;
        if (t->type == JT_TEXT) {
            x = mk(P, JN_TEXT, t);
            if (x && (x->value = const_val(P, JV_STR))) {
                x->value->u.s.p = t->s;
                x->value->u.s.n = t->len;
            }
            P->i++;
        } else if (t->type == JT_VAR_BEGIN) {
            P->i++;
            x = mk(P, JN_OUTPUT, t);
            if (x && !(x->a = parse_tuple(P, true, false))) x = NULL;
            if (x && cur(P)->type != JT_VAR_END) x = unexpected(P, "end of print statement '}}'");
            P->i++;
        } else if (t->type == JT_BLOCK_BEGIN) {
            const jj_tok *nt = peek(P, 1);
            if (ends && nt->type == JT_NAME)
                for (int i = 0; ends[i]; i++)
                    if (!strcmp(nt->s, ends[i])) {
                        P->i++;
                        goto done;
                    }
            P->i++;
            x = parse_statement(P);
        } else {
            x = unexpected(P, "template text or a tag");
        }
        if (!x || !nl_push(P, &items, x)) {
            leave(P);
            return NULL;
        }
    }
done:
    leave(P);
    body->list = items.v;
    body->n = items.n;
    return body;
}

jj_node *jj_parse_tokens(jj_arena *a, const jj_toks *toks, const char *origin) {
    parser P = {.a = a, .t = toks->v, .n = toks->n, .origin = origin};
    jj_node *root = parse_body(&P, NULL, NULL, NULL);
    return P.failed ? NULL : root;
}
