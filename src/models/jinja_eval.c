/*
 * jinja_eval.c -- runs a parsed template: statements write to the current output buffer,
 * expressions evaluate to values in the render's arena. Scoping follows jinja2 where chat
 * templates can tell: a for loop's body has its own scope (so templates carry state out of
 * loops through namespace()), if blocks do not, a macro runs in a scope of its own over the
 * template's top level.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "models/jinja_int.h"

enum { X_OK = 0, X_ERR = -1, X_BREAK = 1, X_CONTINUE = 2 };

void *jj_fail(jj_ctx *c, const jj_node *at, const char *fmt, ...) {
    if (c->failed) return NULL;
    c->failed = true;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!at) at = c->cur;
    if (at)
        lx_set_error(LX_E_FORMAT, "%s:%d:%d: %s", c->tmpl->origin, at->line, at->col, msg);
    else
        lx_set_error(LX_E_FORMAT, "%s: %s", c->tmpl->origin, msg);
    return NULL;
}

void *jj_buf_fail(jj_ctx *c, const jj_buf *b, const jj_node *at, const char *what) {
    if (!b->too_long) return jj_oom(c);
    return jj_fail(c, at, "%s longer than %zu bytes", what, JJ_MAX_STRING);
}

void *jj_oom(jj_ctx *c) {
    if (c->failed) return NULL;
    c->failed = true;
    if (c->arena.limit && c->arena.total + ((size_t)64 << 10) > c->arena.limit)
        lx_set_error(LX_E_FORMAT, "%s: the template used more than %zu MiB", c->tmpl->origin,
                     JJ_MAX_ARENA >> 20);
    else
        lx_set_error(LX_E_OOM, "chat template: out of memory");
    return NULL;
}

/* ---- scopes ---- */

static jj_frame *frame_new(jj_ctx *c, jj_frame *parent) {
    jj_frame *f = jj_alloc(&c->arena, sizeof *f);
    if (!f) return jj_oom(c);
    f->parent = parent;
    return f;
}

static bool frame_set(jj_ctx *c, jj_frame *f, const char *name, jv *v) {
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            f->vals[i] = v;
            return true;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        const char **nn = jj_alloc(&c->arena, cap * sizeof *nn);
        jv **nv = jj_alloc(&c->arena, cap * sizeof *nv);
        if (!nn || !nv) { jj_oom(c); return false; }
        if (f->n) {
            memcpy(nn, f->names, f->n * sizeof *nn);
            memcpy(nv, f->vals, f->n * sizeof *nv);
        }
        f->names = nn;
        f->vals = nv;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n] = v;
    f->n++;
    return true;
}

static jv *lookup(jj_ctx *c, jj_frame *f, const char *name) {
    for (; f; f = f->parent)
        for (size_t i = f->n; i-- > 0;)
            if (!strcmp(f->names[i], name)) return f->vals[i];
    jv *g = jj_global(c, name);
    if (g || c->failed) return g;
    return jv_undef(c, name);
}

/* ---- attribute and item access (jinja2's environment.getattr / getitem) ---- */

static jv *undefined_use(jj_ctx *c, const jv *u, const jj_node *at) {
    if (u->u.undef.what) return jj_fail(c, at, "'%.80s' is undefined", u->u.undef.what);
    return jj_fail(c, at, "an undefined value was used");
}

static jv *loop_attr(jj_ctx *c, jv *lv, const char *name) {
    jj_loop *L = lv->u.loop;
    size_t n = L->items->u.l.n, i = L->index0;
    if (!strcmp(name, "index")) return jv_int(c, (int64_t)i + 1);
    if (!strcmp(name, "index0")) return jv_int(c, (int64_t)i);
    if (!strcmp(name, "revindex")) return jv_int(c, (int64_t)(n - i));
    if (!strcmp(name, "revindex0")) return jv_int(c, (int64_t)(n - i - 1));
    if (!strcmp(name, "first")) return JV_BOOL_P(i == 0);
    if (!strcmp(name, "last")) return JV_BOOL_P(i + 1 == n);
    if (!strcmp(name, "length")) return jv_int(c, (int64_t)n);
    if (!strcmp(name, "depth")) return jv_int(c, 1);
    if (!strcmp(name, "depth0")) return jv_int(c, 0);
    if (!strcmp(name, "previtem")) return i > 0 ? L->items->u.l.v[i - 1] : jv_undef(c, "previtem");
    if (!strcmp(name, "nextitem")) return i + 1 < n ? L->items->u.l.v[i + 1] : jv_undef(c, "nextitem");
    jv *m = jj_method(c, lv, name);
    return m ? m : c->failed ? NULL : jv_undef(c, name);
}

jv *jj_getattr(jj_ctx *c, jv *obj, const char *name, const jj_node *at) {
    switch (obj->t) {
    case JV_UNDEF: return undefined_use(c, obj, at);
    case JV_DICT: {
        jv *m = jj_method(c, obj, name); /* Python attributes come before items */
        if (m || c->failed) return m;
        jv *v = jv_dict_gets(obj, name);
        return v ? v : jv_undef(c, name);
    }
    case JV_NS: {
        jv *v = jv_dict_gets(obj, name);
        return v ? v : jv_undef(c, name);
    }
    case JV_LOOP: return loop_attr(c, obj, name);
    default: {
        jv *m = jj_method(c, obj, name);
        return m ? m : c->failed ? NULL : jv_undef(c, name);
    }
    }
}

static bool index_of(const jv *key, size_t n, size_t *out) {
    if (key->t != JV_INT && key->t != JV_BOOL) return false;
    int64_t i = key->t == JV_INT ? key->u.i : key->u.b;
    if (i < 0) i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n) return false;
    *out = (size_t)i;
    return true;
}

jv *jj_getitem(jj_ctx *c, jv *obj, jv *key, const jj_node *at) {
    size_t i;
    switch (obj->t) {
    case JV_UNDEF: return undefined_use(c, obj, at);
    case JV_DICT: {
        jv *v = jv_dict_get(obj, key);
        if (v) return v;
        break;
    }
    case JV_NS: {
        jv *v = jv_dict_get(obj, key);
        if (v) return v;
        break;
    }
    case JV_LIST:
        if (index_of(key, obj->u.l.n, &i)) return obj->u.l.v[i];
        break;
    case JV_STR: {
        size_t n = jj_utf8_len(obj->u.s.p, obj->u.s.n);
        if (index_of(key, n, &i)) {
            size_t a = jj_utf8_offset(obj->u.s.p, obj->u.s.n, i);
            size_t b = jj_utf8_offset(obj->u.s.p, obj->u.s.n, i + 1);
            return jv_str_own(c, obj->u.s.p + a, b - a);
        }
        break;
    }
    default: break;
    }
    /* a failed item lookup by a string tries the attribute */
    if (key->t == JV_STR && obj->t != JV_DICT && obj->t != JV_NS) {
        const char *name = jj_strdup(&c->arena, key->u.s.p, key->u.s.n);
        if (!name) return jj_oom(c);
        return jj_getattr(c, obj, name, at);
    }
    if (key->t == JV_STR && obj->t == JV_DICT) {
        const char *name = jj_strdup(&c->arena, key->u.s.p, key->u.s.n);
        if (!name) return jj_oom(c);
        jv *m = jj_method(c, obj, name);
        if (m || c->failed) return m;
    }
    return jv_undef(c, NULL);
}

/* Python slice over n items: the indices picked, in order */
static bool slice_indices(jj_ctx *c, const jv *st, const jv *sp, const jv *stp, size_t n,
                          int64_t *start, int64_t *stop, int64_t *step, const jj_node *at) {
    const jv *parts[3] = {st, sp, stp};
    int64_t v[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int k = 0; k < 3; k++) {
        const jv *p = parts[k];
        if (!p || p->t == JV_NONE) continue;
        if (p->t != JV_INT && p->t != JV_BOOL) {
            jj_fail(c, at, "slice indices must be integers or None, not %s", jv_type_name(p));
            return false;
        }
        v[k] = p->t == JV_INT ? p->u.i : p->u.b;
        given[k] = true;
    }
    if (v[2] == 0) { jj_fail(c, at, "slice step cannot be zero"); return false; }
    if (v[2] == INT64_MIN) v[2] = -INT64_MAX;
    int64_t len = (int64_t)n;
    *step = v[2];
    for (int k = 0; k < 2; k++) {
        int64_t x = v[k];
        if (!given[k]) {
            x = k == 0 ? (*step > 0 ? 0 : len - 1) : (*step > 0 ? len : -1);
        } else {
            if (x < 0) { x = x < -len ? -len : x; x += len; if (x < 0) x = *step < 0 ? -1 : 0; }
            else if (x >= len) x = *step < 0 ? len - 1 : len;
        }
        if (k == 0) *start = x;
        else *stop = x;
    }
    return true;
}

static jv *do_slice(jj_ctx *c, jv *obj, const jv *st, const jv *sp, const jv *stp, const jj_node *at) {
    int64_t a, b, s;
    if (obj->t == JV_UNDEF) return undefined_use(c, obj, at);
    if (obj->t == JV_LIST) {
        if (!slice_indices(c, st, sp, stp, obj->u.l.n, &a, &b, &s, at)) return NULL;
        jv *r = jv_list(c, 0);
        if (!r) return NULL;
        r->tuple = obj->tuple;
        for (int64_t i = a; s > 0 ? i < b : i > b; i += s) {
            if (!jv_list_push(c, r, obj->u.l.v[i])) return NULL;
            if ((s > 0 && i > INT64_MAX - s) || (s < 0 && i < INT64_MIN - s)) break;
        }
        return r;
    }
    if (obj->t == JV_STR) {
        const char *p = obj->u.s.p;
        size_t n = obj->u.s.n, cps = jj_utf8_len(p, n);
        if (!slice_indices(c, st, sp, stp, cps, &a, &b, &s, at)) return NULL;
        if (s == 1) {
            if (b <= a) return jv_str_own(c, "", 0);
            size_t x = jj_utf8_offset(p, n, (size_t)a), y = jj_utf8_offset(p, n, (size_t)b);
            return jv_str_own(c, p + x, y - x);
        }
        /* code point offsets, then gather */
        size_t *off = jj_alloc(&c->arena, (cps + 1) * sizeof *off);
        if (!off) return jj_oom(c);
        for (size_t k = 0, pos = 0; k <= cps; k++) {
            off[k] = pos;
            if (k < cps) pos = jj_utf8_offset(p + pos, n - pos, 1) + pos;
        }
        jj_buf out = {0};
        bool ok = true;
        for (int64_t i = a; ok && (s > 0 ? i < b : i > b); i += s) {
            ok = jj_buf_add(&out, p + off[i], off[i + 1] - off[i]);
            if ((s > 0 && i > INT64_MAX - s) || (s < 0 && i < INT64_MIN - s)) break;
        }
        jv *r = ok ? jv_str(c, out.p ? out.p : "", out.n) : jj_oom(c);
        jj_buf_free(&out);
        return r;
    }
    return jj_fail(c, at, "'%s' object is not subscriptable", jv_type_name(obj));
}

/* ---- operators ---- */

static jv *type_error(jj_ctx *c, const char *op, const jv *a, const jv *b, const jj_node *at) {
    if (a->t == JV_UNDEF) return undefined_use(c, a, at);
    if (b->t == JV_UNDEF) return undefined_use(c, b, at);
    return jj_fail(c, at, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a),
                   jv_type_name(b));
}

static jv *repeat(jj_ctx *c, jv *seq, int64_t times, const jj_node *at) {
    if (times < 0) times = 0;
    if (seq->t == JV_STR) {
        if (seq->u.s.n && (uint64_t)times > JJ_MAX_STRING / seq->u.s.n)
            return jj_fail(c, at, "string longer than %zu bytes", JJ_MAX_STRING);
        size_t total = seq->u.s.n * (size_t)times;
        char *p = jj_alloc(&c->arena, total + 1);
        if (!p) return jj_oom(c);
        for (int64_t i = 0; i < times; i++) memcpy(p + (size_t)i * seq->u.s.n, seq->u.s.p, seq->u.s.n);
        return jv_str_own(c, p, total);
    }
    if (seq->u.l.n && (uint64_t)times > (uint64_t)JJ_MAX_RANGE / seq->u.l.n)
        return jj_fail(c, at, "list longer than %ld items", JJ_MAX_RANGE);
    jv *r = jv_list(c, seq->u.l.n * (size_t)times);
    if (!r) return NULL;
    r->tuple = seq->tuple;
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq->u.l.n; k++)
            if (!jv_list_push(c, r, seq->u.l.v[k])) return NULL;
    return r;
}

static int64_t ival(const jv *v) { return v->t == JV_INT ? v->u.i : v->u.b; }
static bool is_intish(const jv *v) { return v->t == JV_INT || v->t == JV_BOOL; }

static jv *arith(jj_ctx *c, jj_op op, jv *a, jv *b, const jj_node *at) {
    static const char *const names[] = {[JO_ADD] = "+", [JO_SUB] = "-", [JO_MUL] = "*",
                                        [JO_DIV] = "/", [JO_FLOORDIV] = "//", [JO_MOD] = "%",
                                        [JO_POW] = "**"};
    const char *opn = names[op];
    if (jv_is_number(a) && jv_is_number(b)) {
        if (is_intish(a) && is_intish(b)) {
            int64_t x = ival(a), y = ival(b), r;
            switch (op) {
            case JO_ADD: if (__builtin_add_overflow(x, y, &r)) goto overflow; return jv_int(c, r);
            case JO_SUB: if (__builtin_sub_overflow(x, y, &r)) goto overflow; return jv_int(c, r);
            case JO_MUL: if (__builtin_mul_overflow(x, y, &r)) goto overflow; return jv_int(c, r);
            case JO_DIV:
                if (y == 0) return jj_fail(c, at, "division by zero");
                return jv_float(c, (double)x / (double)y);
            case JO_FLOORDIV:
            case JO_MOD: {
                if (y == 0) return jj_fail(c, at, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) goto overflow;
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) { q--; m += y; }
                return jv_int(c, op == JO_MOD ? m : q);
            }
            case JO_POW: {
                if (y < 0) return jv_float(c, pow((double)x, (double)y));
                int64_t base = x, acc = 1;
                while (y > 0) {
                    if ((y & 1) && __builtin_mul_overflow(acc, base, &acc)) goto overflow;
                    y >>= 1;
                    if (y && __builtin_mul_overflow(base, base, &base)) goto overflow;
                }
                return jv_int(c, acc);
            }
            default: break;
            }
        } else {
            double x = jv_num(a), y = jv_num(b);
            switch (op) {
            case JO_ADD: return jv_float(c, x + y);
            case JO_SUB: return jv_float(c, x - y);
            case JO_MUL: return jv_float(c, x * y);
            case JO_DIV:
                if (y == 0) return jj_fail(c, at, "float division by zero");
                return jv_float(c, x / y);
            case JO_FLOORDIV:
                if (y == 0) return jj_fail(c, at, "float floor division by zero");
                return jv_float(c, floor(x / y));
            case JO_MOD: {
                if (y == 0) return jj_fail(c, at, "float modulo");
                double m = fmod(x, y);
                if (m != 0 && ((m < 0) != (y < 0))) m += y;
                return jv_float(c, m);
            }
            case JO_POW:
                if (x == 0 && y < 0) return jj_fail(c, at, "0.0 cannot be raised to a negative power");
                return jv_float(c, pow(x, y));
            default: break;
            }
        }
    }
    if (op == JO_ADD && a->t == JV_STR && b->t == JV_STR) {
        if (a->u.s.n > JJ_MAX_STRING - b->u.s.n) return jj_fail(c, at, "string longer than %zu bytes", JJ_MAX_STRING);
        char *p = jj_alloc(&c->arena, a->u.s.n + b->u.s.n + 1);
        if (!p) return jj_oom(c);
        memcpy(p, a->u.s.p, a->u.s.n);
        memcpy(p + a->u.s.n, b->u.s.p, b->u.s.n);
        return jv_str_own(c, p, a->u.s.n + b->u.s.n);
    }
    if (op == JO_ADD && a->t == JV_LIST && b->t == JV_LIST && a->tuple == b->tuple) {
        jv *r = jv_list(c, a->u.l.n + b->u.l.n);
        if (!r) return NULL;
        r->tuple = a->tuple;
        for (size_t i = 0; i < a->u.l.n; i++) if (!jv_list_push(c, r, a->u.l.v[i])) return NULL;
        for (size_t i = 0; i < b->u.l.n; i++) if (!jv_list_push(c, r, b->u.l.v[i])) return NULL;
        return r;
    }
    if (op == JO_MUL && (a->t == JV_STR || a->t == JV_LIST) && is_intish(b)) return repeat(c, a, ival(b), at);
    if (op == JO_MUL && (b->t == JV_STR || b->t == JV_LIST) && is_intish(a)) return repeat(c, b, ival(a), at);
    if (op == JO_MOD && a->t == JV_STR)
        return jj_fail(c, at, "printf-style string formatting ('%%') is not supported");
    return type_error(c, opn, a, b, at);
overflow:
    return jj_fail(c, at, "integer overflow in '%s' (lx keeps integers in 64 bits)", opn);
}

/* item in container: 1, 0, or -1 on a type error */
static int contains(jj_ctx *c, jv *container, jv *item, const jj_node *at) {
    switch (container->t) {
    case JV_STR:
        if (item->t != JV_STR) {
            if (item->t == JV_UNDEF) undefined_use(c, item, at);
            else jj_fail(c, at, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
            return -1;
        }
        if (item->u.s.n == 0) return 1;
        for (size_t i = 0; i + item->u.s.n <= container->u.s.n; i++)
            if (!memcmp(container->u.s.p + i, item->u.s.p, item->u.s.n)) return 1;
        return 0;
    case JV_LIST:
        for (size_t i = 0; i < container->u.l.n; i++)
            if (jv_equal(container->u.l.v[i], item)) return 1;
        return 0;
    case JV_DICT:
        return jv_dict_get(container, item) != NULL;
    case JV_UNDEF:
        return 0; /* jinja2's Undefined iterates as empty */
    default:
        jj_fail(c, at, "argument of type '%s' is not iterable", jv_type_name(container));
        return -1;
    }
}

/* ---- evaluation ---- */

static jv *eval(jj_ctx *c, jj_frame *f, const jj_node *n);
static int exec(jj_ctx *c, jj_frame *f, const jj_node *n);

static bool eval_args(jj_ctx *c, jj_frame *f, const jj_node *n, jj_args *a, int extra_pos) {
    memset(a, 0, sizeof *a);
    a->npos = n->n;
    if (n->n + extra_pos) {
        a->pos = jj_alloc(&c->arena, (size_t)(n->n + extra_pos) * sizeof *a->pos);
        if (!a->pos) { jj_oom(c); return false; }
    }
    for (int i = 0; i < n->n; i++)
        if (!(a->pos[i + extra_pos] = eval(c, f, n->list[i]))) return false;
    a->nkw = n->n2;
    if (n->n2) {
        a->kwv = jj_alloc(&c->arena, (size_t)n->n2 * sizeof *a->kwv);
        if (!a->kwv) { jj_oom(c); return false; }
        a->kwn = n->names;
        for (int i = 0; i < n->n2; i++)
            if (!(a->kwv[i] = eval(c, f, n->list2[i]))) return false;
    }
    return true;
}

static jv *call_value(jj_ctx *c, jv *fn, const jj_args *args, const jj_node *at) {
    switch (fn->t) {
    case JV_FUNC: return jj_call_builtin(c, fn, args, at);
    case JV_MACRO: return jj_call_macro(c, fn, args, at);
    case JV_UNDEF: return undefined_use(c, fn, at);
    default: return jj_fail(c, at, "'%s' object is not callable", jv_type_name(fn));
    }
}

/* a filter node applied to x (the chain of filter blocks and set blocks: operand NULL) */
static jv *apply_filter(jj_ctx *c, jj_frame *f, const jj_node *n, jv *x) {
    jj_args a;
    if (!eval_args(c, f, n, &a, 0)) return NULL;
    return jj_filter(c, n->name, x, &a, n);
}

static jv *apply_chain(jj_ctx *c, jj_frame *f, const jj_node *chain, jv *x) {
    if (!chain) return x;
    if (chain->a) x = apply_chain(c, f, chain->a, x);
    return x ? apply_filter(c, f, chain, x) : NULL;
}

static jv *eval_inner(jj_ctx *c, jj_frame *f, const jj_node *n) {
    switch (n->kind) {
    case JN_CONST: return n->value;
    case JN_NAME: return lookup(c, f, n->name);
    case JN_GETATTR: {
        jv *o = eval(c, f, n->a);
        return o ? jj_getattr(c, o, n->name, n) : NULL;
    }
    case JN_GETITEM: {
        jv *o = eval(c, f, n->a), *k = o ? eval(c, f, n->b) : NULL;
        return k ? jj_getitem(c, o, k, n) : NULL;
    }
    case JN_SLICE: {
        jv *o = eval(c, f, n->a), *p[3] = {NULL, NULL, NULL};
        if (!o) return NULL;
        for (int i = 0; i < 3; i++)
            if (n->list[i] && !(p[i] = eval(c, f, n->list[i]))) return NULL;
        return do_slice(c, o, p[0], p[1], p[2], n);
    }
    case JN_CALL: {
        jv *fn = eval(c, f, n->a);
        jj_args a;
        if (!fn || !eval_args(c, f, n, &a, 0)) return NULL;
        return call_value(c, fn, &a, n);
    }
    case JN_FILTER: {
        jv *x = eval(c, f, n->a);
        return x ? apply_filter(c, f, n, x) : NULL;
    }
    case JN_TEST: {
        jv *x = eval(c, f, n->a);
        jj_args a;
        if (!x || !eval_args(c, f, n, &a, 0)) return NULL;
        int r = jj_test(c, n->name, x, &a, n);
        if (r < 0) return NULL;
        return JV_BOOL_P(n->flag ? !r : r);
    }
    case JN_BINOP: {
        jv *a = eval(c, f, n->a), *b = a ? eval(c, f, n->b) : NULL;
        return b ? arith(c, n->op, a, b, n) : NULL;
    }
    case JN_NEG:
    case JN_POS: {
        jv *a = eval(c, f, n->a);
        if (!a) return NULL;
        if (a->t == JV_FLOAT) return jv_float(c, n->kind == JN_NEG ? -a->u.f : a->u.f);
        if (is_intish(a)) {
            int64_t v = ival(a);
            if (n->kind == JN_POS) return jv_int(c, v);
            if (v == INT64_MIN) return jj_fail(c, n, "integer overflow in unary '-'");
            return jv_int(c, -v);
        }
        if (a->t == JV_UNDEF) return undefined_use(c, a, n);
        return jj_fail(c, n, "bad operand type for unary %s: '%s'", n->kind == JN_NEG ? "-" : "+", jv_type_name(a));
    }
    case JN_NOT: {
        jv *a = eval(c, f, n->a);
        return a ? JV_BOOL_P(!jv_truthy(a)) : NULL;
    }
    case JN_AND:
    case JN_OR: {
        jv *a = eval(c, f, n->a);
        if (!a) return NULL;
        bool t = jv_truthy(a);
        if (n->kind == JN_AND ? !t : t) return a;
        return eval(c, f, n->b);
    }
    case JN_COND: {
        jv *t = eval(c, f, n->a);
        if (!t) return NULL;
        if (jv_truthy(t)) return eval(c, f, n->b);
        return n->c ? eval(c, f, n->c) : jv_undef(c, NULL);
    }
    case JN_LIST:
    case JN_TUPLE: {
        jv *l = jv_list(c, (size_t)n->n);
        if (!l) return NULL;
        l->tuple = n->kind == JN_TUPLE;
        for (int i = 0; i < n->n; i++) {
            jv *x = eval(c, f, n->list[i]);
            if (!x || !jv_list_push(c, l, x)) return NULL;
        }
        return l;
    }
    case JN_DICT: {
        jv *d = jv_dict(c, JV_DICT);
        if (!d) return NULL;
        for (int i = 0; i < n->n; i++) {
            jv *k = eval(c, f, n->list[i]), *v = k ? eval(c, f, n->list2[i]) : NULL;
            if (!v) return NULL;
            if (k->t == JV_LIST && !k->tuple) return jj_fail(c, n->list[i], "unhashable type: 'list'");
            if (k->t == JV_DICT || k->t == JV_NS) return jj_fail(c, n->list[i], "unhashable type: '%s'", jv_type_name(k));
            if (!jv_dict_set(c, d, k, v)) return NULL;
        }
        return d;
    }
    case JN_COMPARE: {
        jv *l = eval(c, f, n->a);
        if (!l) return NULL;
        for (int i = 0; i < n->n; i++) {
            jv *r = eval(c, f, n->list[i]);
            if (!r) return NULL;
            bool ok;
            jj_op op = n->ops[i];
            if (op == JO_EQ || op == JO_NE) {
                ok = jv_equal(l, r) == (op == JO_EQ);
            } else if (op == JO_IN || op == JO_NOTIN) {
                int k = contains(c, r, l, n);
                if (k < 0) return NULL;
                ok = (k == 1) == (op == JO_IN);
            } else {
                int cmp;
                if (!jv_compare(l, r, &cmp)) {
                    if (l->t == JV_UNDEF) return undefined_use(c, l, n);
                    if (r->t == JV_UNDEF) return undefined_use(c, r, n);
                    static const char *const s[] = {[JO_LT] = "<", [JO_LE] = "<=", [JO_GT] = ">", [JO_GE] = ">="};
                    return jj_fail(c, n, "'%s' not supported between instances of '%s' and '%s'", s[op],
                                   jv_type_name(l), jv_type_name(r));
                }
                ok = cmp != 2 && (op == JO_LT ? cmp < 0 : op == JO_LE ? cmp <= 0 : op == JO_GT ? cmp > 0 : cmp >= 0);
            }
            if (!ok) return JV_BOOL_P(false);
            l = r;
        }
        return JV_BOOL_P(true);
    }
    case JN_CONCAT: {
        jj_buf b = {0};
        for (int i = 0; i < n->n; i++) {
            jv *x = eval(c, f, n->list[i]);
            if (!x || !jv_to_str(c, x, &b)) {
                jj_buf_free(&b);
                return NULL;
            }
        }
        jv *r = jv_str(c, b.p ? b.p : "", b.n);
        jj_buf_free(&b);
        return r;
    }
    default:
        return jj_fail(c, n, "internal error: a statement used as an expression");
    }
}

static jv *eval(jj_ctx *c, jj_frame *f, const jj_node *n) {
    if (c->failed) return NULL;
    if (++c->depth > JJ_MAX_EVAL_DEPTH) {
        c->depth--;
        return jj_fail(c, n, "expression or macro calls nested too deeply (more than %d levels)", JJ_MAX_EVAL_DEPTH);
    }
    const jj_node *saved = c->cur;
    c->cur = n;
    jv *r = eval_inner(c, f, n);
    c->cur = saved;
    c->depth--;
    if (!r && !c->failed) jj_fail(c, n, "internal error: evaluation failed without a reason");
    return r;
}

/* ---- statements ---- */

static bool assign(jj_ctx *c, jj_frame *f, const jj_node *target, jv *v, const jj_node *at) {
    if (target->kind == JN_NAME) return frame_set(c, f, target->name, v);
    if (target->kind == JN_GETATTR) {
        jv *ns = lookup(c, f, target->a->name);
        if (!ns) return false;
        if (ns->t != JV_NS) {
            jj_fail(c, at, "cannot assign attribute on non-namespace object");
            return false;
        }
        jv *k = jv_str_own(c, target->name, strlen(target->name));
        return k && jv_dict_set(c, ns, k, v);
    }
    /* a tuple of names */
    if (v->t == JV_STR) {
        /* unpacking a string takes its characters */
        size_t cps = jj_utf8_len(v->u.s.p, v->u.s.n);
        if (cps != (size_t)target->n) {
            jj_fail(c, at, "cannot unpack %zu values into %d names", cps, target->n);
            return false;
        }
        for (int i = 0; i < target->n; i++) {
            jv *k = jv_int(c, i), *x = k ? jj_getitem(c, v, k, at) : NULL;
            if (!x || !frame_set(c, f, target->list[i]->name, x)) return false;
        }
        return true;
    }
    if (v->t == JV_DICT) {
        if (v->u.d.n != (size_t)target->n) {
            jj_fail(c, at, "cannot unpack %zu values into %d names", v->u.d.n, target->n);
            return false;
        }
        for (int i = 0; i < target->n; i++)
            if (!frame_set(c, f, target->list[i]->name, v->u.d.k[i])) return false;
        return true;
    }
    if (v->t != JV_LIST) {
        if (v->t == JV_UNDEF) undefined_use(c, v, at);
        else jj_fail(c, at, "cannot unpack non-iterable %s object", jv_type_name(v));
        return false;
    }
    if (v->u.l.n != (size_t)target->n) {
        jj_fail(c, at, "cannot unpack %zu values into %d names", v->u.l.n, target->n);
        return false;
    }
    for (int i = 0; i < target->n; i++)
        if (!frame_set(c, f, target->list[i]->name, v->u.l.v[i])) return false;
    return true;
}

static bool step(jj_ctx *c, const jj_node *at) {
    if (++c->steps > JJ_MAX_STEPS) {
        jj_fail(c, at, "the template ran more than %ld loop iterations and calls", JJ_MAX_STEPS);
        return false;
    }
    return true;
}

static int exec_for(jj_ctx *c, jj_frame *f, const jj_node *n) {
    jv *src = eval(c, f, n->b);
    if (!src) return X_ERR;
    jv *items = jj_iterable(c, src, NULL, n->b);
    if (!items) return X_ERR;
    jj_frame *lf = frame_new(c, f);
    if (!lf) return X_ERR;
    if (n->n) {
        /* for x in y if cond: the filter runs first, loop.length counts what it kept */
        jv *kept = jv_list(c, 0);
        if (!kept) return X_ERR;
        for (size_t i = 0; i < items->u.l.n; i++) {
            if (!step(c, n)) return X_ERR;
            if (!assign(c, lf, n->a, items->u.l.v[i], n)) return X_ERR;
            jv *t = eval(c, lf, n->list[0]);
            if (!t) return X_ERR;
            if (jv_truthy(t) && !jv_list_push(c, kept, items->u.l.v[i])) return X_ERR;
        }
        items = kept;
        lf = frame_new(c, f);
        if (!lf) return X_ERR;
    }
    if (items->u.l.n == 0) return n->d ? exec(c, f, n->d) : X_OK;
    jj_loop *L = jj_alloc(&c->arena, sizeof *L);
    jv *lv = jv_dict(c, JV_LOOP);
    if (!L || !lv) return jj_oom(c), X_ERR;
    L->items = items;
    lv->u.loop = L;
    if (!frame_set(c, lf, "loop", lv)) return X_ERR;
    for (size_t i = 0; i < items->u.l.n; i++) {
        if (!step(c, n)) return X_ERR;
        L->index0 = i;
        if (!assign(c, lf, n->a, items->u.l.v[i], n)) return X_ERR;
        int r = exec(c, lf, n->c);
        if (r == X_ERR) return X_ERR;
        if (r == X_BREAK) break;
    }
    return X_OK;
}

/* runs body into a fresh buffer; the text as a string value */
static jv *capture(jj_ctx *c, jj_frame *f, const jj_node *body) {
    jj_buf b = {0}, *saved = c->out;
    c->out = &b;
    int r = exec(c, f, body);
    c->out = saved;
    if (r != X_OK) {
        jj_buf_free(&b);
        if (r != X_ERR) jj_fail(c, body, "'break' or 'continue' outside a loop");
        return NULL;
    }
    if (b.oom) {
        jj_buf_free(&b);
        return jj_buf_fail(c, &b, body, "output");
    }
    jv *v = jv_str(c, b.p ? b.p : "", b.n);
    jj_buf_free(&b);
    return v;
}

jv *jj_call_macro(jj_ctx *c, const jv *m, const jj_args *args, const jj_node *at) {
    const jj_node *def = m->u.m.node;
    if (!step(c, at)) return NULL;
    jj_frame *f = frame_new(c, c->root);
    if (!f) return NULL;
    int np = def->n2;
    if (args->npos > np)
        return jj_fail(c, at, "macro '%s' takes not more than %d argument(s)", def->name ? def->name : "caller", np);
    jv **vals = np ? jj_alloc(&c->arena, (size_t)np * sizeof *vals) : NULL;
    if (np && !vals) return jj_oom(c);
    for (int i = 0; i < args->npos; i++) vals[i] = args->pos[i];
    jv *caller = NULL;
    for (int k = 0; k < args->nkw; k++) {
        int i;
        for (i = 0; i < np; i++)
            if (!strcmp(def->names[i], args->kwn[k])) break;
        if (i == np) {
            if (!strcmp(args->kwn[k], "caller")) { caller = args->kwv[k]; continue; }
            return jj_fail(c, at, "macro '%s' takes no keyword argument '%s'", def->name ? def->name : "caller", args->kwn[k]);
        }
        if (vals[i]) return jj_fail(c, at, "macro '%s' got multiple values for argument '%s'", def->name, def->names[i]);
        vals[i] = args->kwv[k];
    }
    for (int i = 0; i < np; i++) {
        if (!vals[i]) {
            /* defaults see the parameters bound so far */
            if (def->list2[i]) {
                if (!(vals[i] = eval(c, f, def->list2[i]))) return NULL;
            } else {
                vals[i] = jv_undef(c, def->names[i]);
                if (!vals[i]) return NULL;
            }
        }
        if (!frame_set(c, f, def->names[i], vals[i])) return NULL;
    }
    if (caller && !frame_set(c, f, "caller", caller)) return NULL;
    if (++c->depth > JJ_MAX_EVAL_DEPTH) {
        c->depth--;
        return jj_fail(c, at, "macro calls nested too deeply (more than %d levels)", JJ_MAX_EVAL_DEPTH);
    }
    jv *r = capture(c, f, def->b);
    c->depth--;
    return r;
}

static int exec_inner(jj_ctx *c, jj_frame *f, const jj_node *n) {
    switch (n->kind) {
    case JN_BODY:
        for (int i = 0; i < n->n; i++) {
            int r = exec(c, f, n->list[i]);
            if (r != X_OK) return r;
        }
        return X_OK;
    case JN_TEXT:
        if (!jj_buf_add(c->out, n->value->u.s.p, n->value->u.s.n)) {
            jj_fail(c, n, "output longer than %zu bytes or out of memory", JJ_MAX_STRING);
            return X_ERR;
        }
        return X_OK;
    case JN_OUTPUT: {
        jv *v = eval(c, f, n->a);
        if (!v || !jv_to_str(c, v, c->out)) {
            if (!c->failed) jj_fail(c, n, "output longer than %zu bytes or out of memory", JJ_MAX_STRING);
            return X_ERR;
        }
        return X_OK;
    }
    case JN_IF: {
        jv *t = eval(c, f, n->a);
        if (!t) return X_ERR;
        if (jv_truthy(t)) return exec(c, f, n->b);
        return n->c ? exec(c, f, n->c) : X_OK;
    }
    case JN_FOR: return exec_for(c, f, n);
    case JN_SET: {
        jv *v = eval(c, f, n->b);
        return v && assign(c, f, n->a, v, n) ? X_OK : X_ERR;
    }
    case JN_SET_BLOCK: {
        jv *v = capture(c, f, n->b);
        if (v) v = apply_chain(c, f, n->c, v);
        return v && assign(c, f, n->a, v, n) ? X_OK : X_ERR;
    }
    case JN_FILTER_BLOCK: {
        jv *v = capture(c, f, n->b);
        if (v) v = apply_chain(c, f, n->c, v);
        return v && jv_to_str(c, v, c->out) ? X_OK : X_ERR;
    }
    case JN_MACRO: {
        jv *m = jv_dict(c, JV_MACRO);
        if (!m) return X_ERR;
        m->u.m.node = n;
        return frame_set(c, f, n->name, m) ? X_OK : X_ERR;
    }
    case JN_CALL_BLOCK: {
        jv *caller = jv_dict(c, JV_MACRO);
        if (!caller) return X_ERR;
        caller->u.m.node = n;
        const jj_node *call = n->a;
        jv *fn = eval(c, f, call->a);
        jj_args a;
        if (!fn || !eval_args(c, f, call, &a, 0)) return X_ERR;
        /* caller= joins the keyword arguments */
        const char **kn = jj_alloc(&c->arena, (size_t)(a.nkw + 1) * sizeof *kn);
        jv **kv = jj_alloc(&c->arena, (size_t)(a.nkw + 1) * sizeof *kv);
        if (!kn || !kv) return jj_oom(c), X_ERR;
        for (int i = 0; i < a.nkw; i++) { kn[i] = a.kwn[i]; kv[i] = a.kwv[i]; }
        kn[a.nkw] = "caller";
        kv[a.nkw] = caller;
        a.kwn = kn;
        a.kwv = kv;
        a.nkw++;
        jv *r = call_value(c, fn, &a, call);
        return r && jv_to_str(c, r, c->out) ? X_OK : X_ERR;
    }
    case JN_BREAK: return X_BREAK;
    case JN_CONTINUE: return X_CONTINUE;
    default:
        jj_fail(c, n, "internal error: an expression used as a statement");
        return X_ERR;
    }
}

static int exec(jj_ctx *c, jj_frame *f, const jj_node *n) {
    if (c->failed) return X_ERR;
    if (++c->depth > JJ_MAX_EVAL_DEPTH) {
        c->depth--;
        jj_fail(c, n, "blocks nested too deeply (more than %d levels)", JJ_MAX_EVAL_DEPTH);
        return X_ERR;
    }
    const jj_node *saved = c->cur;
    c->cur = n;
    int r = exec_inner(c, f, n);
    c->cur = saved;
    c->depth--;
    if (r == X_ERR && !c->failed) jj_fail(c, n, "internal error: a statement failed without a reason");
    return r;
}

/* ---- entry points ---- */

lx_jinja *lx_jinja_parse(const char *src, size_t len, const char *origin) {
    if (!src && len) {
        lx_set_error(LX_E_ARG, "lx_jinja_parse: src is NULL");
        return NULL;
    }
    lx_jinja *t = calloc(1, sizeof *t);
    if (!t) {
        lx_set_error(LX_E_OOM, "chat template: out of memory");
        return NULL;
    }
    t->origin = jj_strdup(&t->arena, origin ? origin : "chat template", strlen(origin ? origin : "chat template"));
    jj_toks toks = {0};
    if (!t->origin) {
        lx_set_error(LX_E_OOM, "chat template: out of memory");
    } else if (jj_lex(&t->arena, src ? src : "", len, t->origin, &toks)) {
        t->root = jj_parse_tokens(&t->arena, &toks, t->origin);
    }
    if (!t->root) {
        lx_jinja_free(t);
        return NULL;
    }
    return t;
}

void lx_jinja_free(lx_jinja *t) {
    if (!t) return;
    jj_arena_free(&t->arena);
    free(t);
}

static char *render(const lx_jinja *t, const cJSON *context, bool have_now, int64_t now) {
    if (!t) {
        lx_set_error(LX_E_ARG, "lx_jinja_render: template is NULL");
        return NULL;
    }
    if (context && !cJSON_IsObject(context)) {
        lx_set_error(LX_E_ARG, "lx_jinja_render: the context must be a JSON object");
        return NULL;
    }
    jj_ctx c = {.tmpl = t, .have_now = have_now, .now = now};
    c.arena.limit = JJ_MAX_ARENA;
    jj_buf out = {0};
    c.out = &out;
    char *result = NULL;
    c.root = frame_new(&c, NULL);
    if (c.root && context) {
        for (const cJSON *e = context->child; e; e = e->next) {
            if (!e->string) continue;
            jv *v = jv_from_cjson(&c, e, 0);
            const char *name = v ? jj_strdup(&c.arena, e->string, strlen(e->string)) : NULL;
            if (!name) {
                if (v) jj_oom(&c);
                break;
            }
            if (!frame_set(&c, c.root, name, v)) break;
        }
    }
    if (!c.failed) {
        int r = exec(&c, c.root, t->root);
        if (r == X_BREAK || r == X_CONTINUE) jj_fail(&c, t->root, "'break' or 'continue' outside a loop");
    }
    if (!c.failed && out.oom) jj_buf_fail(&c, &out, t->root, "output");
    if (!c.failed) {
        result = out.p ? out.p : calloc(1, 1);
        if (!result) jj_oom(&c);
        out.p = NULL;
    }
    jj_buf_free(&out);
    jj_arena_free(&c.arena);
    return result;
}

char *lx_jinja_render(const lx_jinja *t, const cJSON *context) { return render(t, context, false, 0); }

char *lx_jinja_render_at(const lx_jinja *t, const cJSON *context, int64_t now_utc) {
    return render(t, context, true, now_utc);
}
