/*
 * compose.h -- node-level elementwise ops for ops that are built from other primitives (var,
 * isclose, the random distributions), so they make no tracked handles for their
 * intermediates. Same conventions as ops.h: node arguments are consumed, NULL arguments
 * propagate, a new node (or NULL with the error set, everything released) is returned.
 *
 * These are the public elementwise ops' own node builders (ops/elementwise.c), so the dtype
 * rules (promotion, true division, bool comparisons, at-least-float math) have one definition.
 */
#ifndef LX_OPS_COMPOSE_H
#define LX_OPS_COMPOSE_H

#include "ops/ops.h"

/* op(a, b) as lx_add / lx_less / ... compute it: promoted and broadcast. */
lx_node *lx_node_binary(const char *name, int op, lx_node *a, lx_node *b);
/* op(x) as lx_exp / lx_isnan / ... compute it (floor, ceil, round of an integer: x itself). */
lx_node *lx_node_unary(const char *name, int op, lx_node *x);
/* where(cond, a, b) as lx_where: in promote(a, b), cond converted to bool, all broadcast. */
lx_node *lx_node_where(const char *name, lx_node *cond, lx_node *a, lx_node *b);

static inline lx_node *lx_cmp_binary(const char *name, int op, lx_node *a, lx_node *b) {
    return lx_node_binary(name, op, a, b);
}
/* op(a, scalar s) with s in a's dtype. */
static inline lx_node *lx_cmp_binary_s(const char *name, int op, lx_node *a, double s) {
    if (!a) return NULL;
    return lx_node_binary(name, op, a, lx_node_scalar(name, s, (lx_dtype)a->dtype));
}
static inline lx_node *lx_cmp_unary(const char *name, int op, lx_node *x) {
    return lx_node_unary(name, op, x);
}
static inline lx_node *lx_cmp_where(const char *name, lx_node *cond, lx_node *a, lx_node *b) {
    return lx_node_where(name, cond, a, b);
}

/* Another reference to x (for graphs that use a node twice); NULL stays NULL. */
static inline lx_node *lx_cmp_dup(lx_node *x) {
    if (x) lx_node_retain(x);
    return x;
}

#endif
