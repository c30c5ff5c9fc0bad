/*
 * sort.c -- ordering ops along one axis: lx_sort, lx_argsort, lx_partition, lx_argpartition,
 * lx_topk.
 *
 * MLX semantics: negative axes, NaN sorts last, argsort is stable with uint32 indices;
 * partition's kth may be negative (counts from the end) and must name an element of the axis;
 * topk's k is in [0, size of the axis] and the output has k along the axis. Where MLX leaves
 * the order open lx fixes it: partition and argpartition are deterministic (see the kernel),
 * and topk returns the k largest in ascending order (the last k of lx_sort).
 */
#include <string.h>

#include "graph/prims_scan.h"
#include "ops/ops.h"

static lx_array order(lx_array a, int axis, lx_sort_mode mode, int kth, const char *op) {
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int n = x->shape[ax];
    lx_sort_params p;
    memset(&p, 0, sizeof p);
    p.mode = mode;
    p.axis = ax;
    if (mode == LX_SORT_PARTITION || mode == LX_SORT_ARGPARTITION) {
        int k = kth < 0 ? kth + n : kth;
        if (k < 0 || k >= n) {
            lx_set_error(LX_E_ARG, "%s: kth %d is out of range for axis %d of size %d (shape %s)",
                         op, kth, axis, n, LX_SHAPE_STR(x));
            lx_node_release(x);
            return LX_NULL_ARRAY;
        }
        p.kth = k;
    } else if (mode == LX_SORT_TOPK) {
        if (kth < 0 || kth > n) {
            lx_set_error(LX_E_ARG, "%s: k %d is out of range for axis %d of size %d (shape %s)",
                         op, kth, axis, n, LX_SHAPE_STR(x));
            lx_node_release(x);
            return LX_NULL_ARRAY;
        }
        p.kth = kth; /* the output's axis size (the SORT rule) */
    }
    /* dtype (uint32 indices) and shape (top-k's axis of k) are the SORT rule's */
    return lx_wrap(lx_build_derived(op, LX_PRIM_SORT, (lx_dtype)x->dtype, &x, 1, &p, sizeof p));
}

lx_array lx_sort(lx_array a, int axis) { return order(a, axis, LX_SORT_VALUES, 0, "lx_sort"); }
lx_array lx_argsort(lx_array a, int axis) {
    return order(a, axis, LX_SORT_INDICES, 0, "lx_argsort");
}
lx_array lx_partition(lx_array a, int kth, int axis) {
    return order(a, axis, LX_SORT_PARTITION, kth, "lx_partition");
}
lx_array lx_argpartition(lx_array a, int kth, int axis) {
    return order(a, axis, LX_SORT_ARGPARTITION, kth, "lx_argpartition");
}
lx_array lx_topk(lx_array a, int k, int axis) { return order(a, axis, LX_SORT_TOPK, k, "lx_topk"); }
