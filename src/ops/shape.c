/*
 * shape.c -- shape ops that are views (no copy unless the layout requires one): reshape,
 * transpose, swapaxes, moveaxis, expand_dims, squeeze, flatten, broadcast_to, slice,
 * as_strided, contiguous.
 */
#include <string.h>

#include "ops/ops.h"

lx_array lx_reshape(lx_array a, const int *shape, int ndim) {
    const char *op = "lx_reshape";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    if (ndim < 0 || ndim > LX_MAX_NDIM || (ndim > 0 && !shape)) {
        lx_set_error(LX_E_ARG, "%s: bad shape (ndim %d)", op, ndim);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int s[LX_MAX_NDIM], infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (shape[i] == -1) {
            if (infer >= 0) {
                lx_set_error(LX_E_SHAPE, "%s: more than one -1 in the new shape", op);
                lx_node_release(x);
                return LX_NULL_ARRAY;
            }
            infer = i;
        } else if (shape[i] < 0) {
            lx_set_error(LX_E_SHAPE, "%s: dimension %d is negative (%d)", op, i, shape[i]);
            lx_node_release(x);
            return LX_NULL_ARRAY;
        } else {
            if (shape[i] && known > INT64_MAX / shape[i]) known = -1;
            else known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (known > 0 && x->size % known == 0 && x->size / known <= INT32_MAX)
            s[infer] = (int)(x->size / known);
        else
            known = -1;
    }
    if (known < 0 || (infer < 0 && known != x->size) || (infer >= 0 && known == 0)) {
        char sb[96];
        lx_set_error(LX_E_SHAPE, "%s: cannot reshape an array of shape %s (%lld elements) to %s",
                     op, LX_SHAPE_STR(x), (long long)x->size, lx_shape_str(shape, ndim, sb, 96));
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, s, ndim, &x, 1, NULL, 0));
}

/* Validates a permutation of [0, ndim) (negative entries allowed) into out. */
static bool check_perm(const char *op, const int *axes, int n, int ndim, int *out) {
    bool seen[LX_MAX_NDIM] = {false};
    if (n != ndim) {
        lx_set_error(LX_E_ARG, "%s: %d axes given for an array of %d dimensions", op, n, ndim);
        return false;
    }
    for (int i = 0; i < n; i++) {
        int ax = lx_norm_axis(op, axes[i], ndim);
        if (ax < 0) return false;
        if (seen[ax]) {
            lx_set_error(LX_E_ARG, "%s: axis %d repeated", op, axes[i]);
            return false;
        }
        seen[ax] = true;
        out[i] = ax;
    }
    return true;
}

/* x permuted as a new array (a distinct node even for the identity permutation). */
static lx_array permuted(const char *op, lx_node *x, const int *perm) {
    lx_node *r = lx_node_permute(op, x, perm);
    if (r && r == x)
        r = lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, x->shape, x->ndim, &x, 1, NULL, 0);
    return lx_wrap(r);
}

lx_array lx_transpose(lx_array a, const int *axes, int n) {
    const char *op = "lx_transpose";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int perm[LX_MAX_NDIM];
    if (n == 0) {
        for (int i = 0; i < x->ndim; i++) perm[i] = x->ndim - 1 - i;
    } else if (!axes) {
        lx_set_error(LX_E_ARG, "%s: axes is NULL with n %d", op, n);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    } else if (!check_perm(op, axes, n, x->ndim, perm)) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    return permuted(op, x, perm);
}

lx_array lx_swapaxes(lx_array a, int axis1, int axis2) {
    const char *op = "lx_swapaxes";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int a1 = lx_norm_axis(op, axis1, x->ndim);
    int a2 = a1 < 0 ? -1 : lx_norm_axis(op, axis2, x->ndim);
    if (a2 < 0) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int perm[LX_MAX_NDIM];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[a1] = a2;
    perm[a2] = a1;
    return permuted(op, x, perm);
}

lx_array lx_moveaxis(lx_array a, int source, int destination) {
    const char *op = "lx_moveaxis";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int s = lx_norm_axis(op, source, x->ndim);
    int d = s < 0 ? -1 : lx_norm_axis(op, destination, x->ndim);
    if (d < 0) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int perm[LX_MAX_NDIM], k = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != s) perm[k++] = i;
    memmove(perm + d + 1, perm + d, sizeof(int) * (size_t)(x->ndim - 1 - d));
    perm[d] = s;
    return permuted(op, x, perm);
}

lx_array lx_expand_dims(lx_array a, const int *axes, int n) {
    const char *op = "lx_expand_dims";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int out_nd = x->ndim + n;
    if (n < 0 || (n > 0 && !axes) || out_nd > LX_MAX_NDIM) {
        lx_set_error(LX_E_ARG, "%s: cannot add %d axes to %d dimensions (max %d)", op, n, x->ndim,
                     LX_MAX_NDIM);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    bool is_new[LX_MAX_NDIM] = {false};
    for (int i = 0; i < n; i++) {
        int ax = lx_norm_axis(op, axes[i], out_nd);
        if (ax < 0 || is_new[ax]) {
            if (ax >= 0) lx_set_error(LX_E_ARG, "%s: axis %d repeated", op, axes[i]);
            lx_node_release(x);
            return LX_NULL_ARRAY;
        }
        is_new[ax] = true;
    }
    int shape[LX_MAX_NDIM];
    for (int i = 0, k = 0; i < out_nd; i++) shape[i] = is_new[i] ? 1 : x->shape[k++];
    return lx_wrap(lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, shape, out_nd, &x, 1, NULL, 0));
}

lx_array lx_squeeze(lx_array a, const int *axes, int n) {
    const char *op = "lx_squeeze";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    bool drop[LX_MAX_NDIM] = {false};
    if (n == 0) {
        for (int i = 0; i < x->ndim; i++) drop[i] = x->shape[i] == 1;
    } else {
        if (!axes || n < 0) {
            lx_set_error(LX_E_ARG, "%s: axes is NULL or n is negative", op);
            lx_node_release(x);
            return LX_NULL_ARRAY;
        }
        for (int i = 0; i < n; i++) {
            int ax = lx_norm_axis(op, axes[i], x->ndim);
            if (ax >= 0 && x->shape[ax] != 1)
                lx_set_error(LX_E_SHAPE, "%s: axis %d has size %d, not 1", op, axes[i],
                             x->shape[ax]);
            if (ax < 0 || x->shape[ax] != 1) {
                lx_node_release(x);
                return LX_NULL_ARRAY;
            }
            drop[ax] = true;
        }
    }
    int shape[LX_MAX_NDIM], k = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!drop[i]) shape[k++] = x->shape[i];
    return lx_wrap(lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, shape, k, &x, 1, NULL, 0));
}

lx_array lx_flatten(lx_array a, int start_axis, int end_axis) {
    const char *op = "lx_flatten";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    if (x->ndim == 0) {
        int one = 1;
        return lx_wrap(lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, &one, 1, &x, 1, NULL, 0));
    }
    int s = lx_norm_axis(op, start_axis, x->ndim);
    int e = s < 0 ? -1 : lx_norm_axis(op, end_axis, x->ndim);
    if (e < 0 || s > e) {
        if (e >= 0) lx_set_error(LX_E_ARG, "%s: start axis %d is after end axis %d", op, start_axis, end_axis);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int shape[LX_MAX_NDIM], k = 0;
    int64_t m = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < s || i > e) shape[k++] = x->shape[i];
        else {
            m *= x->shape[i];
            if (i == e) shape[k++] = (int)m; /* fits: the total size was checked at creation */
        }
    }
    if (m > INT32_MAX) {
        lx_set_error(LX_E_SHAPE, "%s: the flattened dimension has %lld elements (max %d)", op,
                     (long long)m, INT32_MAX);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, shape, k, &x, 1, NULL, 0));
}

lx_array lx_broadcast_to(lx_array a, const int *shape, int ndim) {
    const char *op = "lx_broadcast_to";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int64_t size;
    if (!lx_shape_check(op, shape, ndim, (lx_dtype)x->dtype, &size)) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    lx_node *r = lx_node_broadcast(op, x, shape, ndim);
    if (r && r == x)
        r = lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, x->shape, x->ndim, &x, 1, NULL, 0);
    return lx_wrap(r);
}

lx_array lx_contiguous(lx_array a) {
    const char *op = "lx_contiguous";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    return lx_wrap(lx_build(op, LX_PRIM_CONTIGUOUS, (lx_dtype)x->dtype, x->shape, x->ndim, &x, 1,
                            NULL, 0));
}

/* Python-style slice bounds: negative indices count from the end, then clamp. */
int lx_slice_len(int dim, int *start, int stop, int step) {
    int s = *start, e = stop;
    if (step > 0) {
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        s = s < 0 ? 0 : (s > dim ? dim : s);
        e = e < 0 ? 0 : (e > dim ? dim : e);
        *start = s;
        return e > s ? (int)(((int64_t)e - s + step - 1) / step) : 0;
    }
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    s = s < -1 ? -1 : (s > dim - 1 ? dim - 1 : s);
    e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
    *start = s;
    return s > e ? (int)(((int64_t)s - e - step - 1) / -step) : 0;
}

lx_array lx_slice(lx_array a, const int *start, const int *stop, const int *strides, int ndim) {
    const char *op = "lx_slice";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    if (ndim != x->ndim || (ndim > 0 && (!start || !stop))) {
        lx_set_error(LX_E_ARG, "%s: %d start/stop entries for an array of %d dimensions%s", op,
                     ndim, x->ndim, (ndim > 0 && (!start || !stop)) ? " (NULL pointer)" : "");
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    lx_slice_params p;
    memset(&p, 0, sizeof p);
    int shape[LX_MAX_NDIM];
    for (int i = 0; i < ndim; i++) {
        int step = strides ? strides[i] : 1;
        if (step == 0) {
            lx_set_error(LX_E_ARG, "%s: stride of axis %d is zero", op, i);
            lx_node_release(x);
            return LX_NULL_ARRAY;
        }
        int s = start[i];
        shape[i] = lx_slice_len(x->shape[i], &s, stop[i], step);
        p.start[i] = shape[i] ? s : 0;
        p.step[i] = step;
    }
    return lx_wrap(lx_build(op, LX_PRIM_SLICE, (lx_dtype)x->dtype, shape, ndim, &x, 1, &p, sizeof p));
}

lx_array lx_as_strided(lx_array a, const int *shape, const int64_t *strides, int ndim,
                       size_t offset) {
    const char *op = "lx_as_strided";
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    int64_t size;
    if (!lx_shape_check(op, shape, ndim, (lx_dtype)x->dtype, &size)) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    if (ndim > 0 && !strides) {
        lx_set_error(LX_E_ARG, "%s: strides is NULL", op);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    /* every element the view can reach must lie inside a's elements */
    lx_as_strided_params p;
    memset(&p, 0, sizeof p);
    __int128 lo = (__int128)offset, hi = (__int128)offset;
    for (int i = 0; i < ndim; i++) {
        p.strides[i] = strides[i];
        if (shape[i] == 0) { lo = 0; hi = -1; break; }
        __int128 reach = (__int128)strides[i] * (shape[i] - 1);
        if (reach < 0) lo += reach; else hi += reach;
    }
    if (size > 0 && (lo < 0 || hi >= x->size)) {
        lx_set_error(LX_E_ARG, "%s: the view reaches outside the %lld elements of the array", op,
                     (long long)x->size);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    p.offset = (int64_t)offset;
    return lx_wrap(lx_build(op, LX_PRIM_AS_STRIDED, (lx_dtype)x->dtype, shape, ndim, &x, 1, &p,
                            sizeof p));
}
