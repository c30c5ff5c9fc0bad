/*
 * codegen.h -- what the generators of fused-program source share (the CPU's C,
 * backend/cpu/fused_gen.c; the CUDA module's CUDA C, backend/cuda/fused_cuda.c): a growing
 * string and the names the generated code uses for dtypes, value classes and ops.
 * Header-only: a device module cannot link lx's internals, but it may compile the same source.
 */
#ifndef LX_GRAPH_CODEGEN_H
#define LX_GRAPH_CODEGEN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/dtype.h"  /* LX_FOR_EACH_DTYPE */
#include "graph/ew_ops.h" /* LX_UNARY_OPS, LX_BINARY_OPS */

/* ---- a growing string ---- */

typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

static inline void sb_put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void sb_put(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = true;
            return;
        }
        if (b->p && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->len + (size_t)k) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* ---- names ---- */

static const char *const dtype_sfx[LX_DTYPE_COUNT] = {
#define X(E, T, S) [E] = #S,
    LX_FOR_EACH_DTYPE(X)
#undef X
};
static const char *const class_name[4] = {"U", "I", "F", "D"};
static const char *const class_type[4] = {"uint64_t", "int64_t", "float", "double"};
static const char *const unary_name[LX_UNARY_COUNT] = {
#define X(n) [LX_UNARY_##n] = "LX_UNARY_" #n,
    LX_UNARY_OPS(X)
#undef X
};
static const char *const binary_name[LX_BINARY_COUNT] = {
#define X(n) [LX_BINARY_##n] = "LX_BINARY_" #n,
    LX_BINARY_OPS(X)
#undef X
};

#endif
