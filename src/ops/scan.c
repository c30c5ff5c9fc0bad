/*
 * scan.c -- cumulative ops along one axis: lx_cumsum, lx_cumprod, lx_cummax, lx_cummin.
 *
 * MLX semantics: inclusive, forward, negative axes count from the end, a 0-d array has no
 * axis to scan (LX_E_ARG). Output dtype: int32 for the cumsum of bool, else the input's dtype
 * (MLX's cumsum does not widen small integers the way its sum does: int8 stays int8 and
 * wraps). float16/bfloat16 accumulate in float32 in the kernel.
 */
#include <string.h>

#include "graph/prims_scan.h"
#include "ops/ops.h"

static lx_array scan(lx_array a, int axis, lx_scan_op kind, const char *op) {
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    lx_scan_params p;
    memset(&p, 0, sizeof p);
    p.op = kind;
    p.axis = ax;
    /* the dtype is the SCAN rule's: int32 for a sum of bools, else the input's */
    return lx_wrap(lx_build_derived(op, LX_PRIM_SCAN, (lx_dtype)x->dtype, &x, 1, &p, sizeof p));
}

lx_array lx_cumsum(lx_array a, int axis) { return scan(a, axis, LX_SCAN_SUM, "lx_cumsum"); }
lx_array lx_cumprod(lx_array a, int axis) { return scan(a, axis, LX_SCAN_PROD, "lx_cumprod"); }
lx_array lx_cummax(lx_array a, int axis) { return scan(a, axis, LX_SCAN_MAX, "lx_cummax"); }
lx_array lx_cummin(lx_array a, int axis) { return scan(a, axis, LX_SCAN_MIN, "lx_cummin"); }
