/*
 * reduce.c -- reductions (sum, mean, max, min, prod, all, any, logsumexp, var, std), argmax /
 * argmin, and the comparisons built on them (isclose, allclose, array_equal).
 *
 * MLX semantics:
 *  - axes are negative-aware; out-of-range or repeated axes are LX_E_ARG. The single-axis forms
 *    reduce one axis; the _axes forms reduce the listed ones, or every axis when axes == NULL
 *    and n == 0 (a non-NULL empty list reduces nothing: the input converted to the output
 *    dtype, as MLX's empty axis list).
 *  - dtypes: sum and prod of bool and of signed (unsigned) integers up to 32 bits give int32
 *    (uint32), wrapping on overflow; 64-bit integers stay 64-bit; floats keep their dtype.
 *    mean, var, std and logsumexp give floats (float32 for integers and bools). max and min
 *    keep the dtype; all and any give bool; argmax / argmin give uint32.
 *  - empty reductions: sum 0, prod 1, all true, any false, mean NaN; max, min, argmax, argmin
 *    over an axis of size 0 and logsumexp of an empty array are LX_E_SHAPE errors at op time.
 *  - var(ddof) divides by max(n - ddof, 0); half inputs compute in float32 and round once.
 *  - argmax / argmin pick the first occurrence; a NaN counts as the extreme (the first NaN).
 */
#include <math.h>
#include <string.h>

#include "ops/compose.h"

/* Output dtype of sum / prod (MLX). */
static lx_dtype sum_dtype(lx_dtype t) {
    switch (t) {
    case LX_BOOL: case LX_INT8: case LX_INT16: case LX_INT32: return LX_INT32;
    case LX_UINT8: case LX_UINT16: case LX_UINT32: return LX_UINT32;
    default: return t;
    }
}

static lx_dtype at_least_float(lx_dtype t) { return lx_dtype_is_float(t) ? t : LX_FLOAT32; }

/* The reduced axes of x: mask[i] set for each; false (error set) if invalid. axes == NULL with
 * n == 0 means all axes. */
static bool reduce_mask(const char *op, const lx_node *x, const int *axes, int n, bool *mask,
                        int *n_red) {
    memset(mask, 0, sizeof(bool) * LX_MAX_NDIM);
    *n_red = 0;
    if (n < 0 || (n > 0 && !axes)) {
        lx_set_error(LX_E_ARG, "%s: axes is NULL or n is negative (%d)", op, n);
        return false;
    }
    if (!axes) {
        for (int i = 0; i < x->ndim; i++) mask[i] = true;
        *n_red = x->ndim;
        return true;
    }
    for (int i = 0; i < n; i++) {
        int ax = lx_norm_axis(op, axes[i], x->ndim);
        if (ax < 0) return false;
        if (mask[ax]) {
            lx_set_error(LX_E_ARG, "%s: axis %d is repeated", op, axes[i]);
            return false;
        }
        mask[ax] = true;
        (*n_red)++;
    }
    return true;
}

enum { R_SUM, R_MEAN, R_PROD, R_MAX, R_MIN, R_ALL, R_ANY, R_LSE };

/* The REDUCE node of x over mask with output dtype `ot` (keepdims shape), then reshaped
 * unless keepdims. With by_count a SUM is divided by the reduced count minus ddof (a mean:
 * ddof 0; a variance), recorded in the params so that the scale follows the shape.
 * Consumes x. */
static lx_node *reduce_node(const char *op, lx_node *x, const bool *mask, int rop, lx_dtype ot,
                            bool by_count, int ddof, bool keepdims) {
    lx_reduce_params p;
    memset(&p, 0, sizeof p);
    p.op = rop;
    p.scale = 1.0;
    int sshape[LX_MAX_NDIM], ns = 0;
    int64_t count = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (mask[i]) {
            p.axes[p.n_axes++] = i;
            count *= x->shape[i];
        } else {
            sshape[ns++] = x->shape[i];
        }
    }
    if (rop == LX_REDUCE_SUM && by_count) {
        /* as the rule computes it (graph/prim_info.c); a zero denominator gives inf (or NaN
         * for 0 / 0) as MLX's division does */
        double denom = (double)count - (double)ddof;
        p.by_count = 1;
        p.ddof = ddof;
        p.scale = denom > 0 ? 1.0 / denom : INFINITY;
    }
    lx_node *r;
    if (p.n_axes == 0 && p.scale == 1.0) {
        /* nothing to reduce: the value itself in the output dtype (a mean of no axes is x; a
         * var with ddof still needs its scale, so it keeps the REDUCE node) */
        r = lx_node_astype(op, x, ot);
    } else {
        r = lx_build_derived(op, LX_PRIM_REDUCE, ot, &x, 1, &p, sizeof p);
    }
    if (!r || keepdims) return r;
    return lx_node_reshape(op, r, sshape, ns);
}

static lx_node *reduce_nodes(const char *op, lx_node *x, const bool *mask, int kind,
                             bool keepdims) {
    lx_dtype t = (lx_dtype)x->dtype;
    for (int i = 0; i < x->ndim; i++)
        if (mask[i]) {
            if (x->shape[i] == 0 && (kind == R_MAX || kind == R_MIN)) {
                lx_set_error(LX_E_SHAPE, "%s: cannot reduce over axis %d of size 0 (shape %s)",
                             op, i, LX_SHAPE_STR(x));
                lx_node_release(x);
                return NULL;
            }
        }
    switch (kind) {
    case R_SUM: return reduce_node(op, x, mask, LX_REDUCE_SUM, sum_dtype(t), false, 0, keepdims);
    case R_PROD: return reduce_node(op, x, mask, LX_REDUCE_PROD, sum_dtype(t), false, 0, keepdims);
    case R_MEAN: return reduce_node(op, x, mask, LX_REDUCE_SUM, at_least_float(t), true, 0, keepdims);
    case R_MAX: return reduce_node(op, x, mask, LX_REDUCE_MAX, t, false, 0, keepdims);
    case R_MIN: return reduce_node(op, x, mask, LX_REDUCE_MIN, t, false, 0, keepdims);
    case R_ALL: return reduce_node(op, x, mask, LX_REDUCE_ALL, LX_BOOL, false, 0, keepdims);
    case R_ANY: return reduce_node(op, x, mask, LX_REDUCE_ANY, LX_BOOL, false, 0, keepdims);
    default:
        if (x->size == 0) {
            lx_set_error(LX_E_SHAPE, "%s: logsumexp of an empty array (shape %s)", op,
                         LX_SHAPE_STR(x));
            lx_node_release(x);
            return NULL;
        }
        return reduce_node(op, x, mask, LX_REDUCE_LOGSUMEXP, at_least_float(t), false, 0,
                           keepdims);
    }
}

static lx_array reduce_axes(const char *op, lx_array a, const int *axes, int n, bool keepdims,
                            int kind) {
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    bool mask[LX_MAX_NDIM];
    int n_red;
    if (!reduce_mask(op, x, axes, n, mask, &n_red)) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(reduce_nodes(op, x, mask, kind, keepdims));
}

#define DEF_REDUCE(name, KIND)                                                                 \
    lx_array lx_##name(lx_array a, int axis, bool keepdims) {                                  \
        return reduce_axes("lx_" #name, a, &axis, 1, keepdims, KIND);                          \
    }                                                                                          \
    lx_array lx_##name##_axes(lx_array a, const int *axes, int n, bool keepdims) {             \
        return reduce_axes("lx_" #name "_axes", a, axes, n, keepdims, KIND);                   \
    }
DEF_REDUCE(sum, R_SUM)
DEF_REDUCE(mean, R_MEAN)
DEF_REDUCE(prod, R_PROD)
DEF_REDUCE(max, R_MAX)
DEF_REDUCE(min, R_MIN)
DEF_REDUCE(all, R_ALL)
DEF_REDUCE(any, R_ANY)
DEF_REDUCE(logsumexp, R_LSE)
#undef DEF_REDUCE

/* ---- var / std ---------------------------------------------------------------------------- */

static lx_array var_axes(const char *op, lx_array a, const int *axes, int n, bool keepdims,
                         int ddof, bool take_sqrt) {
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    bool mask[LX_MAX_NDIM];
    int n_red;
    if (!reduce_mask(op, x, axes, n, mask, &n_red)) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    lx_dtype ot = at_least_float((lx_dtype)x->dtype);
    lx_dtype ct = lx_dtype_is_half(ot) ? LX_FLOAT32 : ot; /* computed in */
    x = lx_node_astype(op, x, ct);
    if (!x) return LX_NULL_ARRAY;
    lx_node *mu = reduce_node(op, lx_cmp_dup(x), mask, LX_REDUCE_SUM, ct, true, 0, true);
    lx_node *d = lx_cmp_binary(op, LX_BINARY_SUB, x, mu);
    lx_node *sq = lx_cmp_unary(op, LX_UNARY_SQUARE, d);
    if (!sq) return LX_NULL_ARRAY;
    lx_node *v = reduce_node(op, sq, mask, LX_REDUCE_SUM, take_sqrt ? ct : ot, true, ddof, keepdims);
    if (take_sqrt) v = lx_node_astype(op, lx_cmp_unary(op, LX_UNARY_SQRT, v), ot);
    return lx_wrap(v);
}

lx_array lx_var(lx_array a, int axis, bool keepdims, int ddof) {
    return var_axes("lx_var", a, &axis, 1, keepdims, ddof, false);
}
lx_array lx_var_axes(lx_array a, const int *axes, int n, bool keepdims, int ddof) {
    return var_axes("lx_var_axes", a, axes, n, keepdims, ddof, false);
}
lx_array lx_std(lx_array a, int axis, bool keepdims, int ddof) {
    return var_axes("lx_std", a, &axis, 1, keepdims, ddof, true);
}
lx_array lx_std_axes(lx_array a, const int *axes, int n, bool keepdims, int ddof) {
    return var_axes("lx_std_axes", a, axes, n, keepdims, ddof, true);
}

/* ---- argmax / argmin ------------------------------------------------------------------------ */

static lx_array arg_reduce(const char *op, lx_array a, int axis, bool keepdims, int aop) {
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    if (x->size == 0) {
        lx_set_error(LX_E_SHAPE, "%s: cannot reduce an empty array (shape %s)", op, LX_SHAPE_STR(x));
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int sshape[LX_MAX_NDIM], ns = 0, nd = x->ndim;
    for (int i = 0; i < nd; i++)
        if (i != ax) sshape[ns++] = x->shape[i];
    lx_arg_reduce_params p;
    memset(&p, 0, sizeof p);
    p.op = aop;
    p.axis = ax;
    lx_node *r = lx_build_derived(op, LX_PRIM_ARG_REDUCE, LX_UINT32, &x, 1, &p, sizeof p);
    if (r && !keepdims) r = lx_node_reshape(op, r, sshape, ns);
    return lx_wrap(r);
}

lx_array lx_argmax(lx_array a, int axis, bool keepdims) {
    return arg_reduce("lx_argmax", a, axis, keepdims, LX_ARG_MAX);
}
lx_array lx_argmin(lx_array a, int axis, bool keepdims) {
    return arg_reduce("lx_argmin", a, axis, keepdims, LX_ARG_MIN);
}

/* ---- isclose / allclose / array_equal --------------------------------------------------------- */

/* |a - b| <= atol + rtol * |b| where both are finite, a == b where either is infinite, and
 * (equal_nan) NaN == NaN; computed in the promotion of a, b and float32 (float64 stays). */
static lx_node *isclose_node(const char *op, lx_node *a, lx_node *b, double rtol, double atol,
                             bool equal_nan) {
    lx_dtype t = lx_promote_types((lx_dtype)a->dtype, (lx_dtype)b->dtype);
    t = t == LX_FLOAT64 ? LX_FLOAT64 : LX_FLOAT32;
    if (!lx_broadcast_pair(op, &a, &b, (int)t)) return NULL;
    lx_node *diff = lx_cmp_unary(op, LX_UNARY_ABS, lx_cmp_binary(op, LX_BINARY_SUB, lx_cmp_dup(a), lx_cmp_dup(b)));
    lx_node *tol = lx_cmp_binary_s(op, LX_BINARY_MUL, lx_cmp_unary(op, LX_UNARY_ABS, lx_cmp_dup(b)), rtol);
    tol = lx_cmp_binary_s(op, LX_BINARY_ADD, tol, atol);
    lx_node *close = lx_cmp_binary(op, LX_BINARY_LESS_EQUAL, diff, tol);
    lx_node *any_inf = lx_cmp_binary(op, LX_BINARY_LOGICAL_OR, lx_cmp_unary(op, LX_UNARY_ISINF, lx_cmp_dup(a)),
                                     lx_cmp_unary(op, LX_UNARY_ISINF, lx_cmp_dup(b)));
    close = lx_cmp_binary(op, LX_BINARY_LOGICAL_AND, close, lx_cmp_unary(op, LX_UNARY_LOGICAL_NOT, any_inf));
    /* equal infinities (same sign) */
    lx_node *same_inf = lx_cmp_binary(op, LX_BINARY_LOGICAL_AND, lx_cmp_unary(op, LX_UNARY_ISINF, lx_cmp_dup(a)),
                                      lx_cmp_binary(op, LX_BINARY_EQUAL, lx_cmp_dup(a), lx_cmp_dup(b)));
    close = lx_cmp_binary(op, LX_BINARY_LOGICAL_OR, close, same_inf);
    if (equal_nan) {
        lx_node *both_nan = lx_cmp_binary(op, LX_BINARY_LOGICAL_AND, lx_cmp_unary(op, LX_UNARY_ISNAN, lx_cmp_dup(a)),
                                          lx_cmp_unary(op, LX_UNARY_ISNAN, lx_cmp_dup(b)));
        close = lx_cmp_binary(op, LX_BINARY_LOGICAL_OR, close, both_nan);
    }
    lx_node_release(a);
    lx_node_release(b);
    return close;
}

static bool two_args(const char *op, lx_array a, lx_array b, lx_node **na, lx_node **nb) {
    *na = lx_arg(a, op, "a");
    if (!*na) return false;
    *nb = lx_arg(b, op, "b");
    if (!*nb) {
        lx_node_release(*na);
        return false;
    }
    return true;
}

lx_array lx_isclose(lx_array a, lx_array b, double rtol, double atol, bool equal_nan) {
    lx_node *na, *nb;
    if (!two_args("lx_isclose", a, b, &na, &nb)) return LX_NULL_ARRAY;
    return lx_wrap(isclose_node("lx_isclose", na, nb, rtol, atol, equal_nan));
}

static lx_node *all_of(const char *op, lx_node *x) {
    if (!x) return NULL;
    bool mask[LX_MAX_NDIM];
    for (int i = 0; i < LX_MAX_NDIM; i++) mask[i] = i < x->ndim;
    return reduce_node(op, x, mask, LX_REDUCE_ALL, LX_BOOL, false, 0, false);
}

lx_array lx_allclose(lx_array a, lx_array b, double rtol, double atol, bool equal_nan) {
    lx_node *na, *nb;
    if (!two_args("lx_allclose", a, b, &na, &nb)) return LX_NULL_ARRAY;
    return lx_wrap(all_of("lx_allclose", isclose_node("lx_allclose", na, nb, rtol, atol, equal_nan)));
}

lx_array lx_array_equal(lx_array a, lx_array b, bool equal_nan) {
    const char *op = "lx_array_equal";
    lx_node *na, *nb;
    if (!two_args(op, a, b, &na, &nb)) return LX_NULL_ARRAY;
    bool same = na->ndim == nb->ndim &&
                memcmp(na->shape, nb->shape, sizeof(int32_t) * (size_t)na->ndim) == 0;
    if (!same) { /* MLX: different shapes are simply not equal */
        lx_node_release(na);
        lx_node_release(nb);
        return lx_wrap(lx_node_scalar(op, 0.0, LX_BOOL));
    }
    lx_dtype t = lx_promote_types((lx_dtype)na->dtype, (lx_dtype)nb->dtype);
    equal_nan = equal_nan && lx_dtype_is_float(t);
    lx_node *eq;
    if (equal_nan) {
        na = lx_node_astype(op, na, t);
        nb = lx_node_astype(op, nb, t);
        if (!na || !nb) {
            if (na) lx_node_release(na);
            if (nb) lx_node_release(nb);
            return LX_NULL_ARRAY;
        }
        lx_node *both_nan = lx_cmp_binary(op, LX_BINARY_LOGICAL_AND, lx_cmp_unary(op, LX_UNARY_ISNAN, lx_cmp_dup(na)),
                                          lx_cmp_unary(op, LX_UNARY_ISNAN, lx_cmp_dup(nb)));
        eq = lx_cmp_binary(op, LX_BINARY_LOGICAL_OR, lx_cmp_binary(op, LX_BINARY_EQUAL, na, nb), both_nan);
    } else {
        eq = lx_cmp_binary(op, LX_BINARY_EQUAL, na, nb);
    }
    return lx_wrap(all_of(op, eq));
}
