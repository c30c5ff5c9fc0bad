/*
 * nn.c -- softmax, log_softmax and rms_norm.
 *
 *  - lx_softmax / lx_log_softmax(a, axis): numerically stable (max subtracted), accumulated in
 *    float32 for half inputs; the output has a's dtype, integers and bools give float32 (MLX's
 *    softmax). An empty array comes back converted, as MLX returns it.
 *  - lx_rms_norm(x, w, eps): MLX's fast.rms_norm: x * rsqrt(mean(x^2, -1) + eps) * w over the
 *    last axis, w 1-D of that length or null; computed in float32 (float64 for float64), the
 *    output dtype is promote(x, w) (x's dtype without w) and must be a float.
 */
#include <string.h>

#include "ops/ops.h"

static lx_array softmax_common(const char *op, lx_array a, int axis, bool log) {
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    if (x->ndim == 0) {
        lx_set_error(LX_E_ARG, "%s: axis %d given for an array of 0 dimensions", op, axis);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int ax = lx_norm_axis(op, axis, x->ndim);
    if (ax < 0) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    lx_dtype t = lx_dtype_is_float((lx_dtype)x->dtype) ? (lx_dtype)x->dtype : LX_FLOAT32;
    x = lx_node_astype(op, x, t);
    if (!x) return LX_NULL_ARRAY;
    if (x->size == 0) return lx_wrap(x);
    lx_softmax_params p;
    memset(&p, 0, sizeof p);
    p.axis = ax;
    p.log = log;
    return lx_wrap(lx_build_derived(op, LX_PRIM_SOFTMAX, t, &x, 1, &p, sizeof p));
}

lx_array lx_softmax(lx_array a, int axis) { return softmax_common("lx_softmax", a, axis, false); }
lx_array lx_log_softmax(lx_array a, int axis) {
    return softmax_common("lx_log_softmax", a, axis, true);
}

lx_array lx_rms_norm(lx_array x, lx_array w, float eps) {
    const char *op = "lx_rms_norm";
    lx_node *nx = lx_arg(x, op, "x");
    if (!nx) return LX_NULL_ARRAY;
    lx_node *nw = NULL;
    if (!lx_is_null(w)) {
        nw = lx_arg(w, op, "w");
        if (!nw) {
            lx_node_release(nx);
            return LX_NULL_ARRAY;
        }
    }
    lx_status st = LX_OK;
    if (nx->ndim == 0) {
        st = lx_set_error(LX_E_SHAPE, "%s: x must have at least 1 dimension", op);
    } else if (nw && (nw->ndim != 1 || nw->shape[0] != nx->shape[nx->ndim - 1])) {
        char sx[96], sw[96];
        st = lx_set_error(LX_E_SHAPE, "%s: w of shape %s does not match the last axis of x %s", op,
                          lx_shape_str(nw->shape, nw->ndim, sw, sizeof sw),
                          lx_shape_str(nx->shape, nx->ndim, sx, sizeof sx));
    }
    lx_dtype t = nw ? lx_promote_types((lx_dtype)nx->dtype, (lx_dtype)nw->dtype) : (lx_dtype)nx->dtype;
    if (st == LX_OK && !lx_dtype_is_float(t))
        st = lx_set_error(LX_E_DTYPE, "%s: x (%s) and w (%s) must give a float dtype", op,
                          lx_dtype_name((lx_dtype)nx->dtype),
                          nw ? lx_dtype_name((lx_dtype)nw->dtype) : "none");
    if (st == LX_OK && !(eps >= 0.0f))
        st = lx_set_error(LX_E_ARG, "%s: eps must be >= 0 (got %g)", op, (double)eps);
    if (st != LX_OK) {
        lx_node_release(nx);
        if (nw) lx_node_release(nw);
        return LX_NULL_ARRAY;
    }
    nx = lx_node_astype(op, nx, t);
    if (nw) nw = lx_node_astype(op, nw, t);
    if (!nx || (!lx_is_null(w) && !nw)) {
        if (nx) lx_node_release(nx);
        if (nw) lx_node_release(nw);
        return LX_NULL_ARRAY;
    }
    lx_norm_params p;
    memset(&p, 0, sizeof p);
    p.eps = eps;
    lx_node *ins[2] = {nx, nw};
    return lx_wrap(lx_build_derived(op, LX_PRIM_RMS_NORM, t, ins, nw ? 2 : 1, &p, sizeof p));
}
