/*
 * indexing.c -- indexing and layout ops with MLX semantics: concatenate, stack, split,
 * slice_update, take, take_along_axis, put_along_axis, pad, tile, repeat, tril, triu.
 *
 * The idea: every op here validates, then lowers onto a handful of data-movement primitives
 * (graph/prims_index.def) plus the view primitives. split returns slice views of its input
 * (no copy); stack is concatenate of reshaped views; repeat is tile with a divisor.
 *
 * Index semantics (the same for lazy and ready index arrays): indices may have any integer
 * dtype; a negative index counts from the end of the axis (MLX); gathers (take,
 * take_along_axis) clamp what is still out of range to the axis, so a bad index never reads
 * outside the array; put_along_axis drops writes whose index is out of range. Taking a
 * non-empty set of indices from an axis of size 0 is an error (LX_E_SHAPE).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/prims_index.h"
#include "ops/ops.h"

/* Releases the nodes and returns the null array. */
static lx_array fail_nodes(lx_node **nodes, int n) {
    lx_release_nodes(nodes, n);
    return LX_NULL_ARRAY;
}

/* Indices must be an integer array (bool is not an index dtype, as in MLX). */
static bool check_index_dtype(const char *op, const lx_node *ix) {
    if (lx_dtype_is_integer((lx_dtype)ix->dtype)) return true;
    lx_set_error(LX_E_DTYPE, "%s: indices must have an integer dtype, not %s", op,
                 lx_dtype_name((lx_dtype)ix->dtype));
    return false;
}


/* ---- concatenate, stack ------------------------------------------------------------------- */

/* Looks up n array arguments into nodes (all or nothing). */
static bool get_args(const char *op, const lx_array *arrays, int n, lx_node **nodes) {
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "arrays[%d]", i);
        nodes[i] = lx_arg(arrays[i], op, name);
        if (!nodes[i]) {
            lx_release_nodes(nodes, i);
            return false;
        }
    }
    return true;
}

/* Converts every node to their promoted dtype and concatenates them along axis into shape. */
static lx_array concat_nodes(const char *op, lx_node **nodes, int n, int axis, const int *shape,
                             int ndim) {
    lx_dtype dt = (lx_dtype)nodes[0]->dtype;
    for (int i = 1; i < n; i++) dt = lx_promote_types(dt, (lx_dtype)nodes[i]->dtype);
    bool ok = true;
    for (int i = 0; i < n; i++) {
        nodes[i] = lx_node_astype(op, nodes[i], dt);
        ok = ok && nodes[i];
    }
    if (!ok) return fail_nodes(nodes, n);
    lx_concat_params p;
    memset(&p, 0, sizeof p);
    p.axis = axis;
    return lx_build_array(op, LX_PRIM_CONCATENATE, dt, shape, ndim, nodes, n, &p, sizeof p);
}

static bool check_count(const char *op, const lx_array *arrays, int n) {
    if (n <= 0 || !arrays || n > UINT16_MAX) {
        lx_set_error(LX_E_ARG, "%s: %d arrays given%s (1 to %d)", op, n,
                     (n > 0 && !arrays) ? " with a NULL pointer" : "", UINT16_MAX);
        return false;
    }
    return true;
}

lx_array lx_concatenate(const lx_array *arrays, int n, int axis) {
    const char *op = "lx_concatenate";
    if (!check_count(op, arrays, n)) return LX_NULL_ARRAY;
    lx_node *small[8];
    lx_node **nodes = n <= 8 ? small : calloc((size_t)n, sizeof *nodes);
    if (!nodes) {
        lx_set_error(LX_E_OOM, "%s: out of host memory", op);
        return LX_NULL_ARRAY;
    }
    lx_array r = LX_NULL_ARRAY;
    if (!get_args(op, arrays, n, nodes)) goto done;
    int nd = nodes[0]->ndim;
    int ax = lx_norm_axis(op, axis, nd);
    if (ax < 0) {
        fail_nodes(nodes, n);
        goto done;
    }
    int shape[LX_MAX_NDIM];
    memcpy(shape, nodes[0]->shape, sizeof(int) * (size_t)nd);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        bool same = nodes[i]->ndim == nd;
        for (int d = 0; same && d < nd; d++) same = d == ax || nodes[i]->shape[d] == shape[d];
        if (!same) {
            lx_set_error(LX_E_SHAPE, "%s: arrays[%d] has shape %s, arrays[0] %s: all dims but "
                         "axis %d must match", op, i, LX_SHAPE_STR(nodes[i]),
                         LX_SHAPE_STR(nodes[0]), axis);
            fail_nodes(nodes, n);
            goto done;
        }
        total += nodes[i]->shape[ax];
    }
    if (total > INT32_MAX) {
        lx_set_error(LX_E_SHAPE, "%s: the result has %lld elements along axis %d (max %d)", op,
                     (long long)total, axis, INT32_MAX);
        fail_nodes(nodes, n);
        goto done;
    }
    shape[ax] = (int)total;
    r = concat_nodes(op, nodes, n, ax, shape, nd);
done:
    if (nodes != small) free(nodes);
    return r;
}

lx_array lx_stack(const lx_array *arrays, int n, int axis) {
    const char *op = "lx_stack";
    if (!check_count(op, arrays, n)) return LX_NULL_ARRAY;
    lx_node *small[8];
    lx_node **nodes = n <= 8 ? small : calloc((size_t)n, sizeof *nodes);
    if (!nodes) {
        lx_set_error(LX_E_OOM, "%s: out of host memory", op);
        return LX_NULL_ARRAY;
    }
    lx_array r = LX_NULL_ARRAY;
    if (!get_args(op, arrays, n, nodes)) goto done;
    int nd = nodes[0]->ndim;
    int ax = lx_norm_axis(op, axis, nd + 1);
    if (ax < 0) {
        fail_nodes(nodes, n);
        goto done;
    }
    if (nd + 1 > LX_MAX_NDIM) {
        lx_set_error(LX_E_SHAPE, "%s: stacking %d-dimensional arrays needs more than %d dims",
                     op, nd, LX_MAX_NDIM);
        fail_nodes(nodes, n);
        goto done;
    }
    for (int i = 1; i < n; i++) {
        if (nodes[i]->ndim != nd ||
            memcmp(nodes[i]->shape, nodes[0]->shape, sizeof(int32_t) * (size_t)nd) != 0) {
            lx_set_error(LX_E_SHAPE, "%s: arrays[%d] has shape %s but arrays[0] has %s", op, i,
                         LX_SHAPE_STR(nodes[i]), LX_SHAPE_STR(nodes[0]));
            fail_nodes(nodes, n);
            goto done;
        }
    }
    int one[LX_MAX_NDIM], shape[LX_MAX_NDIM];
    for (int d = 0, k = 0; d <= nd; d++) one[d] = d == ax ? 1 : nodes[0]->shape[k++];
    memcpy(shape, one, sizeof shape);
    shape[ax] = n;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        nodes[i] = lx_node_reshape(op, nodes[i], one, nd + 1);
        ok = ok && nodes[i];
    }
    r = ok ? concat_nodes(op, nodes, n, ax, shape, nd + 1) : fail_nodes(nodes, n);
done:
    if (nodes != small) free(nodes);
    return r;
}

/* ---- split ----------------------------------------------------------------------------------- */

/* A slice view of x (x's reference is not consumed) over [start, stop) of axis. */
static lx_node *axis_slice(const char *op, lx_node *x, int axis, int start, int stop) {
    lx_slice_params p;
    memset(&p, 0, sizeof p);
    int shape[LX_MAX_NDIM];
    for (int i = 0; i < x->ndim; i++) {
        shape[i] = x->shape[i];
        p.step[i] = 1;
    }
    int s = start;
    shape[axis] = lx_slice_len(x->shape[axis], &s, stop, 1);
    bool empty = false;
    for (int i = 0; i < x->ndim; i++) empty = empty || shape[i] == 0;
    p.start[axis] = empty ? 0 : s;
    lx_node_retain(x);
    return lx_build(op, LX_PRIM_SLICE, (lx_dtype)x->dtype, shape, x->ndim, &x, 1, &p, sizeof p);
}

/* Fills out[0..n) with slices of x at the cut points (cuts[0] = start of piece 1, ...). */
static lx_status split_at(const char *op, lx_node *x, int ax, const int *cuts, int n_cuts,
                          lx_array *out) {
    int start = 0;
    for (int i = 0; i <= n_cuts; i++) {
        int stop = i < n_cuts ? cuts[i] : x->shape[ax];
        out[i] = lx_wrap(axis_slice(op, x, ax, start, stop));
        if (lx_is_null(out[i])) {
            for (int j = 0; j <= n_cuts; j++) out[j] = LX_NULL_ARRAY;
            lx_node_release(x);
            return lx_error() ? lx_error() : LX_E_INTERNAL;
        }
        start = stop;
    }
    lx_node_release(x);
    return LX_OK;
}

lx_status lx_split(lx_array a, const int *indices, int n_indices, int axis, lx_array *out) {
    const char *op = "lx_split";
    if (!out || n_indices < 0 || (n_indices > 0 && !indices))
        return lx_set_error(LX_E_ARG, "%s: out or indices is NULL or n_indices is negative (%d)",
                            op, n_indices);
    for (int i = 0; i <= n_indices; i++) out[i] = LX_NULL_ARRAY;
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return lx_error();
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0) {
        lx_node_release(x);
        return lx_error();
    }
    return split_at(op, x, ax, indices, n_indices, out);
}

lx_status lx_split_equal(lx_array a, int parts, int axis, lx_array *out) {
    const char *op = "lx_split_equal";
    if (!out || parts <= 0)
        return lx_set_error(LX_E_ARG, "%s: out is NULL or parts (%d) is not positive", op, parts);
    for (int i = 0; i < parts; i++) out[i] = LX_NULL_ARRAY;
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return lx_error();
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0 || x->shape[ax] % parts != 0) {
        if (ax >= 0)
            lx_set_error(LX_E_SHAPE, "%s: axis %d of shape %s cannot be split into %d equal "
                         "parts", op, axis, LX_SHAPE_STR(x), parts);
        lx_node_release(x);
        return lx_error();
    }
    int *cuts = malloc(sizeof(int) * (size_t)parts);
    if (!cuts) {
        lx_node_release(x);
        return lx_set_error(LX_E_OOM, "%s: out of host memory", op);
    }
    int q = x->shape[ax] / parts;
    for (int i = 0; i < parts - 1; i++) cuts[i] = q * (i + 1);
    lx_status st = split_at(op, x, ax, cuts, parts - 1, out);
    free(cuts);
    return st;
}

/* ---- slice_update ---------------------------------------------------------------------------- */

lx_array lx_slice_update(lx_array a, lx_array update, const int *start, const int *stop,
                         const int *strides, int ndim) {
    const char *op = "lx_slice_update";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    lx_node *u = lx_arg(update, op, "update");
    lx_node *in[2] = {x, u};
    if (!u) return fail_nodes(in, 2);
    if (ndim != x->ndim || (ndim > 0 && (!start || !stop))) {
        lx_set_error(LX_E_ARG, "%s: %d start/stop entries for an array of %d dimensions%s", op,
                     ndim, x->ndim, (ndim > 0 && (!start || !stop)) ? " (NULL pointer)" : "");
        return fail_nodes(in, 2);
    }
    lx_slice_params p;
    memset(&p, 0, sizeof p);
    int shape[LX_MAX_NDIM];
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        int step = strides ? strides[i] : 1;
        if (step == 0) {
            lx_set_error(LX_E_ARG, "%s: stride of axis %d is zero", op, i);
            return fail_nodes(in, 2);
        }
        int s = start[i];
        shape[i] = lx_slice_len(x->shape[i], &s, stop[i], step);
        p.start[i] = s;
        p.step[i] = step;
        empty = empty || shape[i] == 0;
    }
    if (empty) memset(p.start, 0, sizeof p.start);
    u = lx_node_broadcast(op, lx_node_astype(op, u, (lx_dtype)x->dtype), shape, ndim);
    if (!u) return fail_nodes(in, 1);
    in[1] = u;
    return lx_wrap(lx_build_derived(op, LX_PRIM_SLICE_UPDATE, (lx_dtype)x->dtype, in, 2, &p,
                                    sizeof p));
}

/* ---- take, take_along_axis, put_along_axis ------------------------------------------------------ */

lx_array lx_take(lx_array a, lx_array indices, int axis) {
    const char *op = "lx_take";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    lx_node *ix = lx_arg(indices, op, "indices");
    lx_node *in[2] = {x, ix};
    if (!ix || !check_index_dtype(op, ix)) return fail_nodes(in, 2);
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0) return fail_nodes(in, 2);
    int nd = x->ndim - 1 + ix->ndim;
    if (nd > LX_MAX_NDIM) {
        lx_set_error(LX_E_SHAPE, "%s: the result would have %d dims (max %d): a %s, indices %s",
                     op, nd, LX_MAX_NDIM, LX_SHAPE_STR(x), LX_SHAPE_STR(ix));
        return fail_nodes(in, 2);
    }
    if (x->shape[ax] == 0 && ix->size > 0) {
        lx_set_error(LX_E_SHAPE, "%s: cannot take %lld indices from axis %d of size 0 (a %s)",
                     op, (long long)ix->size, axis, LX_SHAPE_STR(x));
        return fail_nodes(in, 2);
    }
    lx_take_params p;
    memset(&p, 0, sizeof p);
    p.axis = ax;
    return lx_wrap(lx_build_derived(op, LX_PRIM_TAKE, (lx_dtype)x->dtype, in, 2, &p, sizeof p));
}

/* Checks a/indices for the along-axis ops and computes the index shape B: a's and the
 * indices' dims broadcast together except on the axis, where B has the indices' size. */
static int along_shape(const char *op, const lx_node *x, const lx_node *ix, int axis, int *B) {
    if (!check_index_dtype(op, ix)) return -1;
    if (ix->ndim != x->ndim) {
        lx_set_error(LX_E_SHAPE, "%s: indices of %d dims %s for an array of %d dims %s", op,
                     ix->ndim, LX_SHAPE_STR(ix), x->ndim, LX_SHAPE_STR(x));
        return -1;
    }
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0) return -1;
    for (int i = 0; i < x->ndim; i++) {
        int da = x->shape[i], di = ix->shape[i];
        if (i == ax) B[i] = di;
        else if (da == di || di == 1) B[i] = da;
        else if (da == 1) B[i] = di;
        else {
            lx_set_error(LX_E_SHAPE, "%s: indices %s do not broadcast with a %s (axis %d)", op,
                         LX_SHAPE_STR(ix), LX_SHAPE_STR(x), axis);
            return -1;
        }
    }
    return ax;
}

lx_array lx_take_along_axis(lx_array a, lx_array indices, int axis) {
    const char *op = "lx_take_along_axis";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    lx_node *ix = lx_arg(indices, op, "indices");
    lx_node *in[2] = {x, ix};
    if (!ix) return fail_nodes(in, 2);
    int B[LX_MAX_NDIM];
    int ax = along_shape(op, x, ix, axis, B);
    if (ax < 0) return fail_nodes(in, 2);
    int64_t bsize = 1;
    for (int i = 0; i < x->ndim; i++) bsize *= B[i];
    if (x->shape[ax] == 0 && bsize > 0) {
        lx_set_error(LX_E_SHAPE, "%s: cannot take from axis %d of size 0 (a %s)", op, axis,
                     LX_SHAPE_STR(x));
        return fail_nodes(in, 2);
    }
    int sa[LX_MAX_NDIM];
    memcpy(sa, B, sizeof sa);
    sa[ax] = x->shape[ax];
    int nd = x->ndim;
    in[0] = lx_node_broadcast(op, x, sa, nd);
    in[1] = lx_node_broadcast(op, ix, B, nd);
    if (!in[0] || !in[1]) return fail_nodes(in, 2);
    lx_take_params p;
    memset(&p, 0, sizeof p);
    p.axis = ax;
    lx_dtype dt = (lx_dtype)in[0]->dtype;
    return lx_wrap(lx_build_derived(op, LX_PRIM_TAKE_ALONG, dt, in, 2, &p, sizeof p));
}

lx_array lx_put_along_axis(lx_array a, lx_array indices, lx_array values, int axis) {
    const char *op = "lx_put_along_axis";
    lx_node *in[3] = {NULL, NULL, NULL};
    in[0] = lx_arg(a, op, "a");
    in[1] = in[0] ? lx_arg(indices, op, "indices") : NULL;
    in[2] = in[1] ? lx_arg(values, op, "values") : NULL;
    if (!in[2]) return fail_nodes(in, 3);
    lx_node *x = in[0];
    int B[LX_MAX_NDIM];
    int ax = along_shape(op, x, in[1], axis, B);
    if (ax < 0) return fail_nodes(in, 3);
    int nd = x->ndim;
    in[1] = lx_node_broadcast(op, in[1], B, nd);
    in[2] = lx_node_broadcast(op, lx_node_astype(op, in[2], (lx_dtype)x->dtype), B, nd);
    if (!in[1] || !in[2]) return fail_nodes(in, 3);
    lx_take_params p;
    memset(&p, 0, sizeof p);
    p.axis = ax;
    return lx_wrap(lx_build_derived(op, LX_PRIM_PUT_ALONG, (lx_dtype)x->dtype, in, 3, &p,
                                    sizeof p));
}

/* ---- pad, tile, repeat ------------------------------------------------------------------------ */

lx_array lx_pad(lx_array a, const int *low, const int *high, int n, double value) {
    const char *op = "lx_pad";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    if (n != x->ndim || (n > 0 && (!low || !high))) {
        lx_set_error(LX_E_ARG, "%s: %d low/high entries for an array of %d dimensions%s", op, n,
                     x->ndim, (n > 0 && (!low || !high)) ? " (NULL pointer)" : "");
        return fail_nodes(&x, 1);
    }
    lx_pad_params p;
    memset(&p, 0, sizeof p);
    p.value = value;
    int shape[LX_MAX_NDIM];
    for (int i = 0; i < n; i++) {
        if (low[i] < 0 || high[i] < 0) {
            lx_set_error(LX_E_ARG, "%s: padding of axis %d is negative (low %d, high %d)", op, i,
                         low[i], high[i]);
            return fail_nodes(&x, 1);
        }
        int64_t d = (int64_t)x->shape[i] + low[i] + high[i];
        if (d > INT32_MAX) {
            lx_set_error(LX_E_SHAPE, "%s: axis %d would have %lld elements (max %d)", op, i,
                         (long long)d, INT32_MAX);
            return fail_nodes(&x, 1);
        }
        shape[i] = (int)d;
        p.low[i] = low[i];
    }
    return lx_build_array(op, LX_PRIM_PAD, (lx_dtype)x->dtype, shape, n, &x, 1, &p, sizeof p);
}

lx_array lx_tile(lx_array a, const int *reps, int n) {
    const char *op = "lx_tile";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    if (n < 0 || (n > 0 && !reps)) {
        lx_set_error(LX_E_ARG, "%s: reps is NULL or n is negative (%d)", op, n);
        return fail_nodes(&x, 1);
    }
    int nd = n > x->ndim ? n : x->ndim;
    if (nd > LX_MAX_NDIM) {
        lx_set_error(LX_E_SHAPE, "%s: %d reps would give %d dims (max %d)", op, n, nd,
                     LX_MAX_NDIM);
        return fail_nodes(&x, 1);
    }
    int in_shape[LX_MAX_NDIM], shape[LX_MAX_NDIM];
    lx_tile_params p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < nd; i++) {
        int xi = i - (nd - x->ndim), ri = i - (nd - n);
        int r = ri >= 0 ? reps[ri] : 1;
        if (r < 0) {
            lx_set_error(LX_E_ARG, "%s: reps[%d] is negative (%d)", op, ri, r);
            return fail_nodes(&x, 1);
        }
        in_shape[i] = xi >= 0 ? x->shape[xi] : 1;
        int64_t d = (int64_t)in_shape[i] * r;
        if (d > INT32_MAX) {
            lx_set_error(LX_E_SHAPE, "%s: axis %d would have %lld elements (max %d)", op, i,
                         (long long)d, INT32_MAX);
            return fail_nodes(&x, 1);
        }
        shape[i] = (int)d;
        p.div[i] = 1;
    }
    x = lx_node_reshape(op, x, in_shape, nd);
    if (!x) return LX_NULL_ARRAY;
    return lx_build_array(op, LX_PRIM_TILE, (lx_dtype)x->dtype, shape, nd, &x, 1, &p, sizeof p);
}

lx_array lx_repeat(lx_array a, int repeats, int axis) {
    const char *op = "lx_repeat";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0) return fail_nodes(&x, 1);
    if (repeats < 0) {
        lx_set_error(LX_E_ARG, "%s: repeats is negative (%d)", op, repeats);
        return fail_nodes(&x, 1);
    }
    int64_t d = (int64_t)x->shape[ax] * repeats;
    if (d > INT32_MAX) {
        lx_set_error(LX_E_SHAPE, "%s: axis %d would have %lld elements (max %d)", op, axis,
                     (long long)d, INT32_MAX);
        return fail_nodes(&x, 1);
    }
    int shape[LX_MAX_NDIM];
    lx_tile_params p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < x->ndim; i++) {
        shape[i] = x->shape[i];
        p.div[i] = 1;
    }
    shape[ax] = (int)d;
    p.div[ax] = repeats > 0 ? repeats : 1;
    return lx_build_array(op, LX_PRIM_TILE, (lx_dtype)x->dtype, shape, x->ndim, &x, 1, &p,
                          sizeof p);
}

/* ---- tril, triu -------------------------------------------------------------------------------- */

static lx_array tri_select(const char *op, lx_array a, int k, bool upper) {
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    if (x->ndim < 2) {
        lx_set_error(LX_E_SHAPE, "%s: the array must have at least 2 dims, not %d (shape %s)",
                     op, x->ndim, LX_SHAPE_STR(x));
        return fail_nodes(&x, 1);
    }
    lx_tri_params p;
    memset(&p, 0, sizeof p);
    p.k = k;
    p.upper = upper;
    return lx_wrap(lx_build_derived(op, LX_PRIM_TRI_SELECT, (lx_dtype)x->dtype, &x, 1, &p,
                                    sizeof p));
}

lx_array lx_tril(lx_array a, int k) { return tri_select("lx_tril", a, k, false); }
lx_array lx_triu(lx_array a, int k) { return tri_select("lx_triu", a, k, true); }
