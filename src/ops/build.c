/*
 * build.c -- node building and the shape helpers every op shares.
 */
#include <stdio.h>
#include <string.h>

#include "ops/ops.h"

void lx_release_nodes(lx_node **nodes, int n) {
    for (int i = 0; i < n; i++)
        if (nodes[i]) {
            lx_node_release(nodes[i]);
            nodes[i] = NULL;
        }
}

lx_node *lx_build(const char *op, int prim, lx_dtype dtype, const int *shape, int ndim,
                  lx_node *const *inputs, int n_inputs, const void *params, size_t params_size) {
    int64_t size;
    if (!lx_shape_check(op, shape, ndim, dtype, &size)) {
        for (int i = 0; i < n_inputs; i++) lx_node_release(inputs[i]);
        return NULL;
    }
    lx_node *n = lx_node_new(op, prim, dtype, shape, ndim, inputs, n_inputs, params, params_size);
    if (n) n->device = (uint8_t)lx_default_device();
    return n;
}

lx_array lx_build_array(const char *op, int prim, lx_dtype dtype, const int *shape, int ndim,
                        lx_node *const *inputs, int n_inputs, const void *params,
                        size_t params_size) {
    return lx_wrap(lx_build(op, prim, dtype, shape, ndim, inputs, n_inputs, params, params_size));
}

int lx_norm_axis(const char *op, int axis, int ndim) {
    if (axis < -ndim || axis >= ndim) {
        lx_set_error(LX_E_ARG, "%s: axis %d is out of range for an array of %d dimensions", op,
                     axis, ndim);
        return -1;
    }
    return axis < 0 ? axis + ndim : axis;
}

const char *lx_shape_str(const int32_t *shape, int ndim, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len + 14 < n; i++)
        len += (size_t)snprintf(buf + len, n - len, i ? ", %d" : "%d", shape[i]);
    snprintf(buf + len, n - len, "]");
    return buf;
}

bool lx_broadcast_shape(const char *op, const int *a, int na, const int *b, int nb, int *out,
                        int *nout) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int da = i - (n - na) >= 0 ? a[i - (n - na)] : 1;
        int db = i - (n - nb) >= 0 ? b[i - (n - nb)] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            lx_set_error(LX_E_SHAPE, "%s: shapes %s and %s cannot be broadcast together", op,
                         lx_shape_str(a, na, sa, sizeof sa), lx_shape_str(b, nb, sb, sizeof sb));
            return false;
        }
        out[i] = da == 1 ? db : da;
    }
    *nout = n;
    return true;
}

lx_node *lx_node_broadcast(const char *op, lx_node *x, const int *shape, int ndim) {
    if (!x) return NULL;
    if (x->ndim == ndim && memcmp(x->shape, shape, sizeof(int) * (size_t)ndim) == 0) return x;
    bool ok = ndim >= x->ndim;
    for (int i = 0; ok && i < x->ndim; i++) {
        int d = x->shape[x->ndim - 1 - i];
        ok = d == 1 || d == shape[ndim - 1 - i];
    }
    if (!ok) {
        char sa[96], sb[96];
        lx_set_error(LX_E_SHAPE, "%s: cannot broadcast shape %s to %s", op,
                     lx_shape_str(x->shape, x->ndim, sa, sizeof sa),
                     lx_shape_str(shape, ndim, sb, sizeof sb));
        lx_node_release(x);
        return NULL;
    }
    return lx_build(op, LX_PRIM_BROADCAST, (lx_dtype)x->dtype, shape, ndim, &x, 1, NULL, 0);
}

lx_node *lx_node_astype(const char *op, lx_node *x, lx_dtype dtype) {
    if (!x) return NULL;
    if (x->dtype == dtype) return x;
    return lx_build(op, LX_PRIM_COPY, dtype, x->shape, x->ndim, &x, 1, NULL, 0);
}

lx_node *lx_node_reshape(const char *op, lx_node *x, const int *shape, int ndim) {
    if (!x) return NULL;
    if (x->ndim == ndim && memcmp(x->shape, shape, sizeof(int) * (size_t)ndim) == 0) return x;
    return lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, shape, ndim, &x, 1, NULL, 0);
}

lx_node *lx_node_permute(const char *op, lx_node *x, const int *perm) {
    if (!x) return NULL;
    bool identity = true;
    int shape[LX_MAX_NDIM];
    lx_permute_params p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < x->ndim; i++) {
        p.perm[i] = perm[i];
        shape[i] = x->shape[perm[i]];
        if (perm[i] != i) identity = false;
    }
    if (identity) return x;
    return lx_build(op, LX_PRIM_PERMUTE, (lx_dtype)x->dtype, shape, x->ndim, &x, 1, &p, sizeof p);
}

lx_node *lx_node_scalar(const char *op, double value, lx_dtype dtype) {
    lx_full_params p = {value};
    return lx_build(op, LX_PRIM_FULL, dtype, NULL, 0, NULL, 0, &p, sizeof p);
}

bool lx_broadcast_pair(const char *op, lx_node **a, lx_node **b, int dtype) {
    int shape[LX_MAX_NDIM], n;
    if (!lx_broadcast_shape(op, (*a)->shape, (*a)->ndim, (*b)->shape, (*b)->ndim, shape, &n)) {
        lx_node_release(*a);
        lx_node_release(*b);
        *a = *b = NULL;
        return false;
    }
    if (dtype >= 0) {
        *a = lx_node_astype(op, *a, (lx_dtype)dtype);
        *b = lx_node_astype(op, *b, (lx_dtype)dtype);
    }
    *a = lx_node_broadcast(op, *a, shape, n);
    *b = lx_node_broadcast(op, *b, shape, n);
    if (!*a || !*b) {
        if (*a) lx_node_release(*a);
        if (*b) lx_node_release(*b);
        *a = *b = NULL;
        return false;
    }
    return true;
}
