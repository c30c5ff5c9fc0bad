/*
 * layout.h -- device-independent plans over strided arrays: how a kernel walks its operands,
 * worked out from shapes and strides alone. A backend runs the plans with its own loops (the
 * CPU's: backend/cpu/iter.h, move.h, the scan and sort kernels); nothing here touches data,
 * threads or anything device-specific.
 *
 * Strides are in elements, as in lx_node, and may be 0 (broadcast) or negative. Three plans:
 *
 *  - lx_layout_collapse: the loop of an elementwise kernel over its row-contiguous output and
 *    up to LX_LAYOUT_MAX_IN inputs (right-aligned, size-1 dims broadcast), after dropping size-1
 *    dims and merging neighbouring dims that every input walks contiguously (stride[i] ==
 *    stride[i+1] * shape[i+1]; the row-contiguous output always does), so a plain op over
 *    row-contiguous inputs is one 1-d row.
 *  - lx_mv_plan: a strided n-d block copy between two stride sets (size-1 dims dropped, dims
 *    contiguous on both sides merged), run as whole rows of the innermost dim.
 *  - lx_axis_rows: an array of shape [outer..., n, inner...] seen as outer * inner rows of n
 *    elements along one axis (the scan and sort kernels), row (o, j) starting at element
 *    outer_off(o) + inner_off(j) and stepping axis_stride; outer and inner dims coalesced.
 *
 * Plain data and static inline functions: each compilation unit (every CPU variant, a device
 * module) gets its own copy.
 */
#ifndef LX_GRAPH_LAYOUT_H
#define LX_GRAPH_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/node.h"

/* ------------------------------------------------------------------------------------------ */
/* Elementwise loops                                                                          */

#define LX_LAYOUT_MAX_IN 4

/* Fills shape[0 .. *ndim) and strides[k][0 .. *ndim) (k < nin <= LX_LAYOUT_MAX_IN) with the
 * collapsed loop over out's elements reading ins (an input may have fewer dims than out,
 * right-aligned, and size 1 where out has more: those broadcast with stride 0). *ndim >= 1:
 * a single element is one dim of size 1. Returns whether the loop is one row that every input
 * walks with stride 1. */
static inline bool lx_layout_collapse(const lx_node *out, lx_node *const *ins, int nin,
                                      int64_t *shape, int64_t (*strides)[LX_MAX_NDIM],
                                      int *ndim) {
    int64_t st[LX_LAYOUT_MAX_IN][LX_MAX_NDIM];
    for (int k = 0; k < nin; k++) {
        const lx_node *x = ins[k];
        int lead = out->ndim - x->ndim;
        for (int d = 0; d < out->ndim; d++) {
            int j = d - lead;
            st[k][d] = (j < 0 || x->shape[j] != out->shape[d]) ? 0 : x->strides[j];
        }
    }
    /* drop size-1 dims */
    int nd = 0;
    for (int d = 0; d < out->ndim; d++) {
        if (out->shape[d] == 1) continue;
        shape[nd] = out->shape[d];
        for (int k = 0; k < nin; k++) strides[k][nd] = st[k][d];
        nd++;
    }
    if (nd == 0) { /* a single element */
        shape[0] = 1;
        for (int k = 0; k < nin; k++) strides[k][0] = 1;
        nd = 1;
    }
    /* merge neighbours every input walks contiguously */
    int j = 0;
    for (int d = 1; d < nd; d++) {
        bool merge = true;
        for (int k = 0; k < nin && merge; k++) merge = strides[k][j] == strides[k][d] * shape[d];
        if (merge) {
            shape[j] *= shape[d];
            for (int k = 0; k < nin; k++) strides[k][j] = strides[k][d];
        } else {
            j++;
            shape[j] = shape[d];
            for (int k = 0; k < nin; k++) strides[k][j] = strides[k][d];
        }
    }
    *ndim = j + 1;
    bool contiguous = *ndim == 1;
    for (int k = 0; k < nin; k++)
        if (strides[k][0] != 1) contiguous = false;
    return contiguous;
}

/* ------------------------------------------------------------------------------------------ */
/* Block copies                                                                               */

/* A planned n-d block copy. dims[ndim - 1] is the innermost; ndim 0 (size > 0) is a single
 * element. */
typedef struct {
    int ndim;
    size_t es;
    int64_t shape[LX_MAX_NDIM];
    int64_t dst[LX_MAX_NDIM], src[LX_MAX_NDIM];
    int64_t rows; /* product of all dims but the innermost (1 if ndim <= 1) */
    int64_t size; /* elements in all */
} lx_mv_plan;

/* Plans copying a block of `shape` between the given strides; size-1 dims are dropped and
 * adjacent dims that are contiguous on both sides are merged. */
static inline void lx_mv_plan_make(lx_mv_plan *p, const int32_t *shape, int ndim,
                                   const int64_t *dst_strides, const int64_t *src_strides,
                                   size_t es) {
    p->es = es;
    p->ndim = 0;
    p->size = 1;
    for (int i = 0; i < ndim; i++) p->size *= shape[i];
    if (p->size == 0) {
        p->rows = 0;
        return;
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 1) continue;
        int k = p->ndim;
        if (k > 0 && p->dst[k - 1] == dst_strides[i] * shape[i] &&
            p->src[k - 1] == src_strides[i] * shape[i]) { /* merge into the previous dim */
            p->shape[k - 1] *= shape[i];
            p->dst[k - 1] = dst_strides[i];
            p->src[k - 1] = src_strides[i];
            continue;
        }
        p->shape[k] = shape[i];
        p->dst[k] = dst_strides[i];
        p->src[k] = src_strides[i];
        p->ndim++;
    }
    p->rows = 1;
    for (int i = 0; i + 1 < p->ndim; i++) p->rows *= p->shape[i];
}

/* Row-major strides (elements) for a shape. */
static inline void lx_mv_row_strides(const int32_t *shape, int ndim, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i];
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Rows along an axis                                                                         */

typedef struct {
    int64_t outer, n, inner; /* rows = outer * inner, each of n elements */
    int64_t axis_stride;     /* in elements */
    int n_od, n_id;          /* coalesced outer / inner dims */
    int64_t od_shape[LX_MAX_NDIM], od_stride[LX_MAX_NDIM];
    int64_t id_shape[LX_MAX_NDIM], id_stride[LX_MAX_NDIM];
} lx_axis_rows;

/* Appends dims [d0, d1) of x to (shape, stride), dropping size-1 dims and merging a dim into
 * the previous one when the pair is contiguous. Returns the product of the sizes. */
static inline int64_t lx_axis_rows_dims_(const lx_node *x, int d0, int d1, int64_t *shape,
                                         int64_t *stride, int *count) {
    int64_t total = 1;
    int k = 0;
    for (int d = d0; d < d1; d++) {
        int64_t s = x->shape[d];
        total *= s;
        if (s == 1) continue;
        if (k > 0 && stride[k - 1] == x->strides[d] * s) {
            shape[k - 1] *= s;
            stride[k - 1] = x->strides[d];
        } else {
            shape[k] = s;
            stride[k] = x->strides[d];
            k++;
        }
    }
    *count = k;
    return total;
}

static inline void lx_axis_rows_init(lx_axis_rows *g, const lx_node *x, int axis) {
    g->outer = lx_axis_rows_dims_(x, 0, axis, g->od_shape, g->od_stride, &g->n_od);
    g->inner = lx_axis_rows_dims_(x, axis + 1, x->ndim, g->id_shape, g->id_stride, &g->n_id);
    g->n = x->shape[axis];
    g->axis_stride = x->strides[axis];
}

static inline int64_t lx_axis_rows_off_(int64_t i, int nd, const int64_t *shape,
                                        const int64_t *stride) {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0 && i; d--) {
        off += (i % shape[d]) * stride[d];
        i /= shape[d];
    }
    return off;
}

/* Element offset of the start of the rows with outer index o (inner index 0). */
static inline int64_t lx_axis_rows_outer_off(const lx_axis_rows *g, int64_t o) {
    return lx_axis_rows_off_(o, g->n_od, g->od_shape, g->od_stride);
}
/* Element offset of inner index j relative to its outer start. */
static inline int64_t lx_axis_rows_inner_off(const lx_axis_rows *g, int64_t j) {
    return lx_axis_rows_off_(j, g->n_id, g->id_shape, g->id_stride);
}
/* True if inner index j is at element offset j (inner dims contiguous with unit stride). */
static inline bool lx_axis_rows_inner_unit(const lx_axis_rows *g) {
    return g->n_id == 0 || (g->n_id == 1 && g->id_stride[0] == 1);
}

#endif
