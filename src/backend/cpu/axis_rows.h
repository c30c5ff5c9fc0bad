/*
 * axis_rows.h -- geometry of "rows along one axis" of a strided array, shared by the scan and
 * sort kernels (static inline: every CPU variant gets its own copy).
 *
 * An input of shape [outer dims..., n, inner dims...] is seen as outer * inner rows of n
 * elements each, row (o, j) starting at element outer_off(o) + inner_off(j) and stepping
 * `axis_stride` elements. Outer and inner dims are coalesced where their strides allow and
 * size-1 dims are dropped, so the per-row offset computation is as short as possible.
 */
#ifndef LX_BACKEND_CPU_AXIS_ROWS_H
#define LX_BACKEND_CPU_AXIS_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/node.h"

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
