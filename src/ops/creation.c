/*
 * creation.c -- arrays from host data (copied now) and from constants (lazy FULL/ARANGE).
 */
#include <math.h>
#include <string.h>

#include "backend/device.h"
#include "ops/ops.h"

lx_array lx_array_new(const void *data, const int *shape, int ndim, lx_dtype dtype) {
    const char *op = "lx_array_new";
    int64_t size;
    if (!lx_shape_check(op, shape, ndim, dtype, &size)) return LX_NULL_ARRAY;
    if (!data && size > 0) {
        lx_set_error(LX_E_ARG, "%s: data is NULL for %lld elements", op, (long long)size);
        return LX_NULL_ARRAY;
    }
    size_t nbytes = (size_t)size * lx_dtype_size(dtype);
    lx_devices_init(); /* registers the devices' memory */
    lx_buffer *b = lx_buffer_alloc(LX_CPU, nbytes);
    if (!b) return LX_NULL_ARRAY;
    if (dtype == LX_BOOL) { /* any nonzero byte is true; stored as exactly 0 or 1 */
        const unsigned char *src = data;
        unsigned char *dst = b->ptr;
        for (int64_t i = 0; i < size; i++) dst[i] = src[i] != 0;
    } else if (nbytes) {
        memcpy(b->ptr, data, nbytes);
    }
    /* the array lives on the default device: copied there now, once */
    return lx_wrap(lx_node_upload(op, lx_node_new_ready(op, dtype, shape, ndim, b),
                                  lx_default_device()));
}

lx_array lx_array_f32(const float *data, const int *shape, int ndim) {
    return lx_array_new(data, shape, ndim, LX_FLOAT32);
}

lx_array lx_array_i32(const int32_t *data, const int *shape, int ndim) {
    return lx_array_new(data, shape, ndim, LX_INT32);
}

lx_array lx_scalar(double value, lx_dtype dtype) {
    if (!lx_dtype_valid((int)dtype)) {
        lx_set_error(LX_E_DTYPE, "lx_scalar: invalid dtype %d", (int)dtype);
        return LX_NULL_ARRAY;
    }
    unsigned char bytes[8];
    lx_dtype_store(dtype, bytes, value);
    return lx_array_new(bytes, NULL, 0, dtype);
}

lx_array lx_scalar_f32(float value) { return lx_array_new(&value, NULL, 0, LX_FLOAT32); }
lx_array lx_scalar_i32(int32_t value) { return lx_array_new(&value, NULL, 0, LX_INT32); }

lx_array lx_full(const int *shape, int ndim, double value, lx_dtype dtype) {
    lx_full_params p = {value};
    return lx_build_array("lx_full", LX_PRIM_FULL, dtype, shape, ndim, NULL, 0, &p, sizeof p);
}

lx_array lx_zeros(const int *shape, int ndim, lx_dtype dtype) {
    lx_full_params p = {0.0};
    return lx_build_array("lx_zeros", LX_PRIM_FULL, dtype, shape, ndim, NULL, 0, &p, sizeof p);
}

lx_array lx_ones(const int *shape, int ndim, lx_dtype dtype) {
    lx_full_params p = {1.0};
    return lx_build_array("lx_ones", LX_PRIM_FULL, dtype, shape, ndim, NULL, 0, &p, sizeof p);
}

static lx_array full_like(lx_array a, double v, const char *op) {
    lx_node *x = lx_arg(a, op, "a");
    if (!x) return LX_NULL_ARRAY;
    lx_full_params p = {v};
    lx_array r = lx_build_array(op, LX_PRIM_FULL, (lx_dtype)x->dtype, x->shape, x->ndim, NULL, 0,
                                &p, sizeof p);
    lx_node_release(x);
    return r;
}

lx_array lx_zeros_like(lx_array a) { return full_like(a, 0.0, "lx_zeros_like"); }
lx_array lx_ones_like(lx_array a) { return full_like(a, 1.0, "lx_ones_like"); }

static lx_array arange_n(const char *op, double start, double step, double count, lx_dtype dtype) {
    if (!(count >= 0) || count > (double)INT32_MAX) {
        lx_set_error(LX_E_ARG, "%s: %g elements is not a valid length", op, count);
        return LX_NULL_ARRAY;
    }
    int n = (int)count;
    lx_arange_params p = {start, step};
    return lx_build_array(op, LX_PRIM_ARANGE, dtype, &n, 1, NULL, 0, &p, sizeof p);
}

lx_array lx_arange(double start, double stop, double step, lx_dtype dtype) {
    const char *op = "lx_arange";
    if (!isfinite(start) || !isfinite(stop) || !isfinite(step) || step == 0.0) {
        lx_set_error(LX_E_ARG, "%s: start %g, stop %g and step %g must be finite, step nonzero",
                     op, start, stop, step);
        return LX_NULL_ARRAY;
    }
    if (dtype == LX_BOOL) {
        lx_set_error(LX_E_DTYPE, "%s: bool is not a valid arange dtype", op);
        return LX_NULL_ARRAY;
    }
    double count = ceil((stop - start) / step);
    return arange_n(op, start, step, count < 0 ? 0 : count, dtype);
}

lx_array lx_linspace(double start, double stop, int num, lx_dtype dtype) {
    const char *op = "lx_linspace";
    if (num < 0 || !isfinite(start) || !isfinite(stop)) {
        lx_set_error(LX_E_ARG, "%s: num %d must be >= 0 and the ends finite", op, num);
        return LX_NULL_ARRAY;
    }
    double step = num > 1 ? (stop - start) / (num - 1) : 0.0;
    return arange_n(op, start, step, num, dtype);
}

/* ones where col - row <= k: built from two aranges and a comparison */
static lx_node *tri_mask(const char *op, int n, int m, int k) {
    lx_arange_params pr = {0, 1}, pc = {0, 1};
    int rs[2] = {n, 1}, cs[2] = {1, m}, shape[2] = {n, m};
    lx_node *rows = lx_build(op, LX_PRIM_ARANGE, LX_INT32, rs, 2, NULL, 0, &pr, sizeof pr);
    lx_node *cols = lx_build(op, LX_PRIM_ARANGE, LX_INT32, cs, 2, NULL, 0, &pc, sizeof pc);
    if (!rows || !cols) {
        if (rows) lx_node_release(rows);
        if (cols) lx_node_release(cols);
        return NULL;
    }
    rows = lx_node_broadcast(op, rows, shape, 2);
    cols = lx_node_broadcast(op, cols, shape, 2);
    lx_node *in[2] = {cols, rows};
    if (!rows || !cols) {
        lx_release_nodes(in, 2);
        return NULL;
    }
    lx_binary_params sub = {LX_BINARY_SUB};
    lx_node *diff = lx_build(op, LX_PRIM_BINARY, LX_INT32, shape, 2, in, 2, &sub, sizeof sub);
    lx_node *kk = lx_node_broadcast(op, lx_node_scalar(op, k, LX_INT32), shape, 2);
    if (!diff || !kk) {
        if (diff) lx_node_release(diff);
        if (kk) lx_node_release(kk);
        return NULL;
    }
    lx_node *in2[2] = {diff, kk};
    lx_binary_params le = {LX_BINARY_LESS_EQUAL};
    return lx_build(op, LX_PRIM_BINARY, LX_BOOL, shape, 2, in2, 2, &le, sizeof le);
}

lx_array lx_tri(int n, int m, int k, lx_dtype dtype) {
    if (m <= 0) m = n;
    if (n < 0) {
        lx_set_error(LX_E_ARG, "lx_tri: n %d is negative", n);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(lx_node_astype("lx_tri", tri_mask("lx_tri", n, m, k), dtype));
}

lx_array lx_eye(int n, int m, int k, lx_dtype dtype) {
    const char *op = "lx_eye";
    if (m <= 0) m = n;
    if (n < 0) {
        lx_set_error(LX_E_ARG, "%s: n %d is negative", op, n);
        return LX_NULL_ARRAY;
    }
    /* col - row == k */
    lx_node *upper = tri_mask(op, n, m, k);      /* col - row <= k */
    lx_node *lower = tri_mask(op, n, m, k - 1);  /* col - row <= k - 1 */
    if (!upper || !lower) {
        if (upper) lx_node_release(upper);
        if (lower) lx_node_release(lower);
        return LX_NULL_ARRAY;
    }
    lx_node *in[2] = {upper, lower};
    lx_binary_params ne = {LX_BINARY_NOT_EQUAL};
    int shape[2] = {n, m};
    lx_node *eq = lx_build(op, LX_PRIM_BINARY, LX_BOOL, shape, 2, in, 2, &ne, sizeof ne);
    return lx_wrap(lx_node_astype(op, eq, dtype));
}
