/*
 * compose.h -- node-level elementwise helpers for ops that are built from other primitives
 * (var, isclose, the random distributions), so they make no tracked handles for their
 * intermediates. Same conventions as ops.h: node arguments are consumed, a new node (or NULL
 * with the error set, everything released) is returned. The dtype rules are those of the
 * public elementwise ops (ops/elementwise.c).
 */
#ifndef LX_OPS_COMPOSE_H
#define LX_OPS_COMPOSE_H

#include <string.h>

#include "ops/ops.h"

/* op(a, b): promoted (true division of integers in float32) and broadcast; comparisons and
 * logical ops give bool. */
static inline lx_node *lx_cmp_binary(const char *name, int op, lx_node *a, lx_node *b) {
    if (!a || !b) {
        if (a) lx_node_release(a);
        if (b) lx_node_release(b);
        return NULL;
    }
    lx_dtype t = lx_promote_types((lx_dtype)a->dtype, (lx_dtype)b->dtype);
    if ((op == LX_BINARY_DIV || op == LX_BINARY_ARCTAN2) && !lx_dtype_is_float(t)) t = LX_FLOAT32;
    if (!lx_broadcast_pair(name, &a, &b, (int)t)) return NULL;
    int shape[LX_MAX_NDIM];
    for (int i = 0; i < a->ndim; i++) shape[i] = a->shape[i];
    lx_binary_params p;
    memset(&p, 0, sizeof p);
    p.op = op;
    bool pred = op >= LX_BINARY_EQUAL && op <= LX_BINARY_LOGICAL_OR;
    lx_node *ins[2] = {a, b};
    return lx_build(name, LX_PRIM_BINARY, pred ? LX_BOOL : t, shape, a->ndim, ins, 2, &p, sizeof p);
}

/* op(a, scalar s) with s in a's dtype. */
static inline lx_node *lx_cmp_binary_s(const char *name, int op, lx_node *a, double s) {
    if (!a) return NULL;
    return lx_cmp_binary(name, op, a, lx_node_scalar(name, s, (lx_dtype)a->dtype));
}

/* op(x): bool for logical_not / isnan / isinf / isfinite, x's dtype for neg, abs, sign,
 * square, relu, floor, ceil, round; at least float32 for the rest. */
static inline lx_node *lx_cmp_unary(const char *name, int op, lx_node *x) {
    if (!x) return NULL;
    lx_dtype t = (lx_dtype)x->dtype, out = t;
    switch (op) {
    case LX_UNARY_NEG: case LX_UNARY_ABS: case LX_UNARY_SIGN: case LX_UNARY_SQUARE:
    case LX_UNARY_RELU: case LX_UNARY_FLOOR: case LX_UNARY_CEIL: case LX_UNARY_ROUND:
        break;
    case LX_UNARY_LOGICAL_NOT: case LX_UNARY_ISNAN: case LX_UNARY_ISINF: case LX_UNARY_ISFINITE:
        out = LX_BOOL;
        break;
    default:
        if (!lx_dtype_is_float(t)) {
            out = LX_FLOAT32;
            x = lx_node_astype(name, x, out);
            if (!x) return NULL;
        }
    }
    lx_unary_params p;
    memset(&p, 0, sizeof p);
    p.op = op;
    int shape[LX_MAX_NDIM];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    return lx_build(name, LX_PRIM_UNARY, out, shape, x->ndim, &x, 1, &p, sizeof p);
}

/* where(cond, a, b) computed in promote(a, b), all broadcast together. */
static inline lx_node *lx_cmp_where(const char *name, lx_node *cond, lx_node *a, lx_node *b) {
    if (!cond || !a || !b) {
        if (cond) lx_node_release(cond);
        if (a) lx_node_release(a);
        if (b) lx_node_release(b);
        return NULL;
    }
    cond = lx_node_astype(name, cond, LX_BOOL);
    lx_dtype t = lx_promote_types((lx_dtype)a->dtype, (lx_dtype)b->dtype);
    if (!cond || !lx_broadcast_pair(name, &a, &b, (int)t)) {
        if (cond) lx_node_release(cond);
        else { lx_node_release(a); lx_node_release(b); }
        return NULL;
    }
    int shape[LX_MAX_NDIM], nd;
    if (!lx_broadcast_shape(name, cond->shape, cond->ndim, a->shape, a->ndim, shape, &nd)) {
        lx_node_release(cond);
        lx_node_release(a);
        lx_node_release(b);
        return NULL;
    }
    cond = lx_node_broadcast(name, cond, shape, nd);
    a = lx_node_broadcast(name, a, shape, nd);
    b = lx_node_broadcast(name, b, shape, nd);
    if (!cond || !a || !b) {
        if (cond) lx_node_release(cond);
        if (a) lx_node_release(a);
        if (b) lx_node_release(b);
        return NULL;
    }
    lx_node *ins[3] = {cond, a, b};
    return lx_build(name, LX_PRIM_WHERE, t, shape, nd, ins, 3, NULL, 0);
}

/* Another reference to x (for graphs that use a node twice); NULL stays NULL. */
static inline lx_node *lx_cmp_dup(lx_node *x) {
    if (x) lx_node_retain(x);
    return x;
}

#endif
