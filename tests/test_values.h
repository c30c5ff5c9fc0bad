/*
 * test_values.h -- logical values held as doubles, to and from lx arrays of any dtype, and the
 * row-major index arithmetic over them (shared by test_layout.h and test_backend_ops.c).
 */
#ifndef LX_TEST_VALUES_H
#define LX_TEST_VALUES_H

#include <stdlib.h>

#include "core/dtype.h"
#include "lx.h"

static inline size_t shape_size(const int *s, int nd) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)s[i];
    return n;
}

/* A row-contiguous array of dtype t holding v[0 .. size) (each rounded or wrapped as storing
 * into t does). */
static inline lx_array from_doubles(const double *v, const int *shape, int nd, lx_dtype t) {
    size_t n = shape_size(shape, nd), es = lx_dtype_size(t);
    unsigned char *buf = malloc(n * es + 1);
    for (size_t i = 0; i < n; i++) lx_dtype_store(t, buf + i * es, v[i]);
    lx_array a = lx_array_new(buf, shape, nd, t);
    free(buf);
    return a;
}

/* Row-major flat index <-> multi-index. */
static inline void unravel(size_t i, const int *shape, int nd, int *idx) {
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = shape[d] ? (int)(i % (size_t)shape[d]) : 0;
        if (shape[d]) i /= (size_t)shape[d];
    }
}
static inline size_t ravel(const int *idx, const int *shape, int nd) {
    size_t o = 0;
    for (int d = 0; d < nd; d++) o = o * (size_t)shape[d] + (size_t)idx[d];
    return o;
}

#endif
