/*
 * elementwise.c -- the public elementwise ops: binary arithmetic and comparisons (with
 * numpy broadcasting and MLX type promotion), their scalar forms, the unary math ops,
 * where, clip and astype. No arithmetic here: each op validates, picks dtypes and builds a
 * BINARY / UNARY / WHERE / COPY node (graph/prims.h).
 *
 * Dtypes (MLX's rules):
 *  - binary ops compute in lx_promote_types(a, b); lx_div and lx_arctan2 of integers or bools
 *    compute in float32 (true division); comparisons and logical_and/or return bool, the
 *    logical ops taking nonzero as true in any dtype;
 *  - neg, abs, sign, square and relu keep the dtype (integers wrap; lx_neg of bool is an
 *    LX_E_DTYPE error, as MLX); floor, ceil and round of integers or bools return the array
 *    unchanged (a new handle to it); the other math ops (sqrt ... erfinv, sigmoid, silu,
 *    gelu, gelu_approx) compute integers and bools in float32 and keep float dtypes;
 *  - logical_not, isnan, isinf and isfinite return bool (isnan/isinf are false and isfinite
 *    true for integers and bools);
 *  - the *_scalar forms keep a's dtype: s becomes a scalar of a's dtype (converted as
 *    lx_astype converts: truncated toward zero and clamped for integers), except
 *    lx_div_scalar of an integer or bool array, which divides in float64 and converts the
 *    quotient back to a's dtype (so 7 / 2.5 gives 2; x / 0 clamps to the dtype's range and
 *    0 / 0 gives 0);
 *  - lx_where computes in the promotion of a and b, cond converted to bool (nonzero = true);
 *  - lx_clip(a, lo, hi) is minimum(maximum(a, lo), hi) with a null lo or hi meaning no bound
 *    (both null: a new handle to a); dtypes promote as those ops do;
 *  - lx_astype to a's own dtype returns a new handle to the same array. Conversions: see
 *    backend/cpu/iter.h (float -> integer truncates after clamping to the range, NaN -> 0;
 *    integers wrap; float16/bfloat16 round to nearest even; NaN and Inf are kept).
 * Integer division and remainder by zero give 0 (backend/cpu/binary.c has the details).
 */
#include <string.h>

#include "ops/compose.h"

static lx_dtype at_least_float(lx_dtype t) { return lx_dtype_is_float(t) ? t : LX_FLOAT32; }

/* op(a, b) on nodes (references consumed, NULL propagates); promotes and broadcasts.
 *
 * BINARY, UNARY and WHERE, most of a graph's nodes, are built with the shape and dtype the op
 * has at hand (the inputs were just broadcast to one shape) rather than derived from their
 * rules (graph/prim_info.c), which costs about a fifth of building a node (bench_core's
 * 500-op graph); lx_prim_check holds every node to its rule in debug builds. */
lx_node *lx_node_binary(const char *name, int op, lx_node *a, lx_node *b) {
    if (!a || !b) {
        if (a) lx_node_release(a);
        if (b) lx_node_release(b);
        return NULL;
    }
    lx_dtype t = lx_promote_types((lx_dtype)a->dtype, (lx_dtype)b->dtype);
    if (op == LX_BINARY_DIV || op == LX_BINARY_ARCTAN2) t = at_least_float(t);
    if (!lx_broadcast_pair(name, &a, &b, (int)t)) return NULL;
    lx_binary_params p;
    memset(&p, 0, sizeof p);
    p.op = op;
    lx_node *ins[2] = {a, b};
    lx_dtype out = lx_binary_op_is_pred(op) ? LX_BOOL : t;
    return lx_build(name, LX_PRIM_BINARY, out, a->shape, a->ndim, ins, 2, &p, sizeof p);
}
#define binary_node lx_node_binary

static lx_array binary(const char *name, int op, lx_array a, lx_array b) {
    lx_node *na = lx_arg(a, name, "a");
    if (!na) return LX_NULL_ARRAY;
    lx_node *nb = lx_arg(b, name, "b");
    if (!nb) {
        lx_node_release(na);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(binary_node(name, op, na, nb));
}

lx_array lx_add(lx_array a, lx_array b) { return binary("lx_add", LX_BINARY_ADD, a, b); }
lx_array lx_sub(lx_array a, lx_array b) { return binary("lx_sub", LX_BINARY_SUB, a, b); }
lx_array lx_mul(lx_array a, lx_array b) { return binary("lx_mul", LX_BINARY_MUL, a, b); }
lx_array lx_div(lx_array a, lx_array b) { return binary("lx_div", LX_BINARY_DIV, a, b); }
lx_array lx_pow(lx_array a, lx_array b) { return binary("lx_pow", LX_BINARY_POW, a, b); }
lx_array lx_maximum(lx_array a, lx_array b) {
    return binary("lx_maximum", LX_BINARY_MAXIMUM, a, b);
}
lx_array lx_minimum(lx_array a, lx_array b) {
    return binary("lx_minimum", LX_BINARY_MINIMUM, a, b);
}
lx_array lx_floor_divide(lx_array a, lx_array b) {
    return binary("lx_floor_divide", LX_BINARY_FLOOR_DIVIDE, a, b);
}
lx_array lx_remainder(lx_array a, lx_array b) {
    return binary("lx_remainder", LX_BINARY_REMAINDER, a, b);
}
lx_array lx_arctan2(lx_array a, lx_array b) {
    return binary("lx_arctan2", LX_BINARY_ARCTAN2, a, b);
}
lx_array lx_equal(lx_array a, lx_array b) { return binary("lx_equal", LX_BINARY_EQUAL, a, b); }
lx_array lx_not_equal(lx_array a, lx_array b) {
    return binary("lx_not_equal", LX_BINARY_NOT_EQUAL, a, b);
}
lx_array lx_less(lx_array a, lx_array b) { return binary("lx_less", LX_BINARY_LESS, a, b); }
lx_array lx_less_equal(lx_array a, lx_array b) {
    return binary("lx_less_equal", LX_BINARY_LESS_EQUAL, a, b);
}
lx_array lx_greater(lx_array a, lx_array b) {
    return binary("lx_greater", LX_BINARY_GREATER, a, b);
}
lx_array lx_greater_equal(lx_array a, lx_array b) {
    return binary("lx_greater_equal", LX_BINARY_GREATER_EQUAL, a, b);
}
lx_array lx_logical_and(lx_array a, lx_array b) {
    return binary("lx_logical_and", LX_BINARY_LOGICAL_AND, a, b);
}
lx_array lx_logical_or(lx_array a, lx_array b) {
    return binary("lx_logical_or", LX_BINARY_LOGICAL_OR, a, b);
}

/* ---- scalar forms: keep a's dtype ---- */

static lx_array binary_scalar(const char *name, int op, lx_array a, double s) {
    lx_node *na = lx_arg(a, name, "a");
    if (!na) return LX_NULL_ARRAY;
    lx_dtype t = (lx_dtype)na->dtype;
    if (op == LX_BINARY_DIV && !lx_dtype_is_float(t)) {
        /* integer / s: divide in float64, convert the quotient back */
        lx_node *x = lx_node_astype(name, na, LX_FLOAT64);
        lx_node *ns = x ? lx_node_scalar(name, s, LX_FLOAT64) : NULL;
        if (!ns) {
            if (x) lx_node_release(x);
            return LX_NULL_ARRAY;
        }
        return lx_wrap(lx_node_astype(name, binary_node(name, op, x, ns), t));
    }
    lx_node *ns = lx_node_scalar(name, s, t);
    if (!ns) {
        lx_node_release(na);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(binary_node(name, op, na, ns));
}

lx_array lx_add_scalar(lx_array a, double s) {
    return binary_scalar("lx_add_scalar", LX_BINARY_ADD, a, s);
}
lx_array lx_sub_scalar(lx_array a, double s) {
    return binary_scalar("lx_sub_scalar", LX_BINARY_SUB, a, s);
}
lx_array lx_mul_scalar(lx_array a, double s) {
    return binary_scalar("lx_mul_scalar", LX_BINARY_MUL, a, s);
}
lx_array lx_div_scalar(lx_array a, double s) {
    return binary_scalar("lx_div_scalar", LX_BINARY_DIV, a, s);
}
lx_array lx_pow_scalar(lx_array a, double s) {
    return binary_scalar("lx_pow_scalar", LX_BINARY_POW, a, s);
}

/* ---- unary ---- */

lx_node *lx_node_unary(const char *name, int op, lx_node *x) {
    if (!x) return NULL;
    lx_dtype t = (lx_dtype)x->dtype;
    switch (op) {
    case LX_UNARY_NEG:
        if (t == LX_BOOL) {
            lx_set_error(LX_E_DTYPE, "%s: argument a: negation of a bool array is not "
                         "supported (use lx_logical_not)", name);
            lx_node_release(x);
            return NULL;
        }
        /* fall through */
    case LX_UNARY_ABS: case LX_UNARY_SIGN: case LX_UNARY_SQUARE: case LX_UNARY_RELU:
    case LX_UNARY_LOGICAL_NOT: case LX_UNARY_ISNAN: case LX_UNARY_ISINF:
    case LX_UNARY_ISFINITE:
        break; /* the rule gives t, or bool for the predicates */
    case LX_UNARY_FLOOR: case LX_UNARY_CEIL: case LX_UNARY_ROUND:
        if (!lx_dtype_is_float(t)) return x; /* integers are already whole */
        break;
    default:
        x = lx_node_astype(name, x, at_least_float(t));
        if (!x) return NULL;
    }
    lx_unary_params p;
    memset(&p, 0, sizeof p);
    p.op = op;
    lx_dtype out = lx_unary_op_is_pred(op) ? LX_BOOL : (lx_dtype)x->dtype;
    return lx_build(name, LX_PRIM_UNARY, out, x->shape, x->ndim, &x, 1, &p, sizeof p);
}
#define unary_node lx_node_unary

static lx_array unary(const char *name, int op, lx_array a) {
    lx_node *x = lx_arg(a, name, "a");
    if (!x) return LX_NULL_ARRAY;
    return lx_wrap(unary_node(name, op, x));
}

#define DEF_UNARY(fn, OP) \
    lx_array lx_##fn(lx_array a) { return unary("lx_" #fn, LX_UNARY_##OP, a); }
DEF_UNARY(neg, NEG)
DEF_UNARY(abs, ABS)
DEF_UNARY(sign, SIGN)
DEF_UNARY(square, SQUARE)
DEF_UNARY(sqrt, SQRT)
DEF_UNARY(rsqrt, RSQRT)
DEF_UNARY(reciprocal, RECIPROCAL)
DEF_UNARY(exp, EXP)
DEF_UNARY(expm1, EXPM1)
DEF_UNARY(log, LOG)
DEF_UNARY(log1p, LOG1P)
DEF_UNARY(log2, LOG2)
DEF_UNARY(log10, LOG10)
DEF_UNARY(sin, SIN)
DEF_UNARY(cos, COS)
DEF_UNARY(tan, TAN)
DEF_UNARY(tanh, TANH)
DEF_UNARY(erf, ERF)
DEF_UNARY(erfinv, ERFINV)
DEF_UNARY(sigmoid, SIGMOID)
DEF_UNARY(silu, SILU)
DEF_UNARY(relu, RELU)
DEF_UNARY(gelu, GELU)
DEF_UNARY(gelu_approx, GELU_APPROX)
DEF_UNARY(floor, FLOOR)
DEF_UNARY(ceil, CEIL)
DEF_UNARY(round, ROUND)
DEF_UNARY(logical_not, LOGICAL_NOT)
DEF_UNARY(isnan, ISNAN)
DEF_UNARY(isinf, ISINF)
DEF_UNARY(isfinite, ISFINITE)
#undef DEF_UNARY

/* ---- where, clip, astype ---- */

lx_node *lx_node_where(const char *name, lx_node *cond, lx_node *a, lx_node *b) {
    lx_node *n[3] = {cond, a, b};
    if (!cond || !a || !b) {
        lx_release_nodes(n, 3);
        return NULL;
    }
    int s1[LX_MAX_NDIM], s2[LX_MAX_NDIM], n1, n2;
    if (!lx_broadcast_shape(name, n[0]->shape, n[0]->ndim, n[1]->shape, n[1]->ndim, s1, &n1) ||
        !lx_broadcast_shape(name, s1, n1, n[2]->shape, n[2]->ndim, s2, &n2)) {
        lx_release_nodes(n, 3);
        return NULL;
    }
    lx_dtype t = lx_promote_types((lx_dtype)n[1]->dtype, (lx_dtype)n[2]->dtype);
    for (int i = 0; i < 3; i++) {
        lx_node *x = n[i];
        n[i] = NULL;
        x = lx_node_astype(name, x, i == 0 ? LX_BOOL : t);
        n[i] = lx_node_broadcast(name, x, s2, n2);
        if (!n[i]) {
            lx_release_nodes(n, 3);
            return NULL;
        }
    }
    return lx_build(name, LX_PRIM_WHERE, t, s2, n2, n, 3, NULL, 0);
}

lx_array lx_where(lx_array cond, lx_array a, lx_array b) {
    const char *name = "lx_where";
    lx_node *c = lx_arg(cond, name, "cond"), *x = NULL, *y = NULL;
    if (c) x = lx_arg(a, name, "a");
    if (x) y = lx_arg(b, name, "b");
    return lx_wrap(lx_node_where(name, c, x, y));
}

lx_array lx_clip(lx_array a, lx_array lo, lx_array hi) {
    const char *name = "lx_clip";
    lx_node *x = lx_arg(a, name, "a");
    if (!x) return LX_NULL_ARRAY;
    lx_node *nlo = NULL, *nhi = NULL;
    if (!lx_is_null(lo) && !(nlo = lx_arg(lo, name, "lo"))) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    if (!lx_is_null(hi) && !(nhi = lx_arg(hi, name, "hi"))) {
        lx_node_release(x);
        if (nlo) lx_node_release(nlo);
        return LX_NULL_ARRAY;
    }
    if (nlo) {
        x = binary_node(name, LX_BINARY_MAXIMUM, x, nlo);
        if (!x) {
            if (nhi) lx_node_release(nhi);
            return LX_NULL_ARRAY;
        }
    }
    if (nhi) x = binary_node(name, LX_BINARY_MINIMUM, x, nhi);
    return lx_wrap(x);
}

lx_array lx_astype(lx_array a, lx_dtype dtype) {
    const char *name = "lx_astype";
    if (!lx_dtype_valid((int)dtype)) {
        lx_set_error(LX_E_DTYPE, "%s: invalid dtype %d", name, (int)dtype);
        return LX_NULL_ARRAY;
    }
    lx_node *x = lx_arg(a, name, "a");
    if (!x) return LX_NULL_ARRAY;
    return lx_wrap(lx_node_astype(name, x, dtype));
}
