/*
 * test_layout.h -- test arrays in several memory layouts, built from logical values held as
 * doubles, and read back as doubles (shared by the kernel tests that compare with float64
 * references over layouts: test_linalg.c, test_reduce.c).
 */
#ifndef LX_TEST_LAYOUT_H
#define LX_TEST_LAYOUT_H

#include "core/dtype.h"
#include "test_util.h"
#include "test_values.h"

static bool is_float(lx_dtype t) { return lx_dtype_is_float(t); }

/* Unit roundoff of a float dtype (float32's for the others). */
static double unit_round(lx_dtype t) {
    switch (t) {
    case LX_FLOAT16: return 1.0 / 2048;
    case LX_BFLOAT16: return 1.0 / 256;
    case LX_FLOAT64: return 1.1102230246251565e-16;
    default: return 5.960464477539063e-08;
    }
}

static double round_to(double v, lx_dtype t) {
    unsigned char b[8];
    lx_dtype_store(t, b, v);
    return lx_dtype_load(t, b);
}

enum { LAYOUT_CONTIGUOUS, LAYOUT_TRANSPOSED, LAYOUT_PERMUTED, LAYOUT_STRIDED, LAYOUT_BROADCAST,
       LAYOUT_REVERSED, LAYOUT_COUNT };
static const char *const MODE_NAME[LAYOUT_COUNT] = {"contiguous", "transposed", "permuted",
                                                    "strided",    "broadcast",  "reversed"};

/* Logical values v (row-major over shape) in layout `mode`: 0 contiguous, 1 last two dims
 * transposed, 2 a random permutation, 3 strided, 4 broadcast along one axis (v made constant
 * along it, in place), 5 reversed (negative strides). */
static lx_array make_array(double *v, const int *shape, int nd, lx_dtype t, int mode) {
    size_t n = shape_size(shape, nd);
    if ((mode == 1 || mode == 2) && nd >= 2) {
        int P[LX_MAX_NDIM], Q[LX_MAX_NDIM], ps[LX_MAX_NDIM];
        for (int i = 0; i < nd; i++) P[i] = i;
        if (mode == 1) {
            P[nd - 2] = nd - 1;
            P[nd - 1] = nd - 2;
        } else {
            for (int i = nd - 1; i > 0; i--) {
                int j = t_int(0, i), tmp = P[i];
                P[i] = P[j];
                P[j] = tmp;
            }
            bool identity = true;
            for (int i = 0; i < nd; i++) identity = identity && P[i] == i;
            if (identity) { /* a permutation that moves something */
                P[nd - 2] = nd - 1;
                P[nd - 1] = nd - 2;
            }
        }
        for (int k = 0; k < nd; k++) {
            ps[k] = shape[P[k]];
            Q[P[k]] = k;
        }
        double *phys = malloc((n + 1) * sizeof(double));
        int idx[LX_MAX_NDIM], j[LX_MAX_NDIM];
        for (size_t i = 0; i < n; i++) {
            unravel(i, shape, nd, idx);
            for (int k = 0; k < nd; k++) j[k] = idx[P[k]];
            phys[ravel(j, ps, nd)] = v[i];
        }
        lx_array base = from_doubles(phys, ps, nd, t);
        free(phys);
        return lx_transpose(base, Q, nd);
    }
    if (mode == 3 && nd >= 1) {
        int ps[LX_MAX_NDIM], start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM];
        for (int k = 0; k < nd; k++) {
            ps[k] = 2 * shape[k] + 1;
            start[k] = 1;
            stop[k] = ps[k];
            step[k] = 2;
        }
        size_t pn = shape_size(ps, nd);
        double *phys = malloc((pn + 1) * sizeof(double));
        for (size_t i = 0; i < pn; i++) phys[i] = 99; /* never read */
        int idx[LX_MAX_NDIM], j[LX_MAX_NDIM];
        for (size_t i = 0; i < n; i++) {
            unravel(i, shape, nd, idx);
            for (int k = 0; k < nd; k++) j[k] = 2 * idx[k] + 1;
            phys[ravel(j, ps, nd)] = v[i];
        }
        lx_array base = from_doubles(phys, ps, nd, t);
        free(phys);
        return lx_slice(base, start, stop, step, nd);
    }
    if (mode == 5 && nd >= 1) { /* negative strides: lx_slice with step -1 on every axis */
        int start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM], idx[LX_MAX_NDIM];
        for (int k = 0; k < nd; k++) {
            start[k] = shape[k] - 1;
            stop[k] = -shape[k] - 1;
            step[k] = -1;
        }
        double *phys = malloc((n + 1) * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            unravel(i, shape, nd, idx);
            for (int k = 0; k < nd; k++) idx[k] = shape[k] - 1 - idx[k];
            phys[ravel(idx, shape, nd)] = v[i];
        }
        lx_array base = from_doubles(phys, shape, nd, t);
        free(phys);
        return lx_slice(base, start, stop, step, nd);
    }
    if (mode == 4 && nd >= 1) {
        int k = t_int(0, nd - 1), bs[LX_MAX_NDIM], idx[LX_MAX_NDIM];
        for (int d = 0; d < nd; d++) bs[d] = d == k ? 1 : shape[d];
        size_t bn = shape_size(bs, nd);
        double *b = malloc((bn + 1) * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            unravel(i, shape, nd, idx);
            idx[k] = 0;
            v[i] = v[ravel(idx, shape, nd)];
        }
        for (size_t i = 0; i < bn; i++) {
            unravel(i, bs, nd, idx);
            b[i] = v[ravel(idx, shape, nd)];
        }
        lx_array base = from_doubles(b, bs, nd, t);
        free(b);
        return lx_broadcast_to(base, shape, nd);
    }
    return from_doubles(v, shape, nd, t);
}

static bool read_doubles(lx_array a, double *out, size_t n) {
    lx_dtype t = lx_dtype_of(a);
    size_t es = lx_dtype_size(t);
    if (lx_size(a) != n) return false;
    unsigned char *buf = malloc(n * es + 1);
    lx_status st = lx_read(a, buf, n * es);
    for (size_t i = 0; st == LX_OK && i < n; i++) out[i] = lx_dtype_load(t, buf + i * es);
    free(buf);
    return st == LX_OK;
}

#endif
