/*
 * move.h -- element-size-generic data movement for the CPU kernels of index.c and pad.c.
 *
 * Pure data movement does not care what the bytes mean, only how many there are per element:
 * every dtype of lx is 1, 2, 4 or 8 bytes, so one copy routine per element size (chosen at run
 * time) serves all of them, and a strided n-d block copy is planned once (graph/layout.h's
 * lx_mv_plan: size-1 dims dropped, dims that are contiguous in both source and destination
 * merged) and then run here as memcpy of whole rows when the innermost dim is dense on both
 * sides, or as a typed element loop.
 *
 * Strides are in elements, as in lx_node. Helpers are static so each ISA variant has its own.
 */
#ifndef LX_BACKEND_CPU_MOVE_H
#define LX_BACKEND_CPU_MOVE_H

#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "graph/layout.h"

/* Copies n elements of es bytes from s (stride ss elements) to d (stride ds elements). */
#define LX_MV_COPY_N(ES)                                                                   \
    static inline void lx_mv_copy_##ES(char *d, int64_t ds, const char *s, int64_t ss,   \
                                       int64_t n) {                                      \
        for (int64_t i = 0; i < n; i++) memcpy(d + i * ds * ES, s + i * ss * ES, ES);    \
    }
LX_MV_COPY_N(1)
LX_MV_COPY_N(2)
LX_MV_COPY_N(4)
LX_MV_COPY_N(8)
#undef LX_MV_COPY_N

static inline void lx_mv_copy_elems(char *d, int64_t ds, const char *s, int64_t ss, int64_t n,
                                    size_t es) {
    if (ds == 1 && ss == 1) {
        memcpy(d, s, (size_t)n * es);
        return;
    }
    switch (es) {
    case 1: lx_mv_copy_1(d, ds, s, ss, n); break;
    case 2: lx_mv_copy_2(d, ds, s, ss, n); break;
    case 4: lx_mv_copy_4(d, ds, s, ss, n); break;
    case 8: lx_mv_copy_8(d, ds, s, ss, n); break;
    default:
        for (int64_t i = 0; i < n; i++) memcpy(d + i * ds * (int64_t)es, s + i * ss * (int64_t)es, es);
    }
}

/* One element of es bytes (es <= 8). */
static inline void lx_mv_copy1(char *d, const char *s, size_t es) {
    switch (es) {
    case 1: memcpy(d, s, 1); break;
    case 2: memcpy(d, s, 2); break;
    case 4: memcpy(d, s, 4); break;
    case 8: memcpy(d, s, 8); break;
    default: memcpy(d, s, es);
    }
}

/* Fills n elements (row-contiguous) with the es-byte pattern at v. */
static inline void lx_mv_fill(char *d, const void *v, int64_t n, size_t es) {
    if (n <= 0) return;
    bool zero = true;
    for (size_t i = 0; i < es; i++) zero = zero && ((const unsigned char *)v)[i] == 0;
    if (zero) {
        memset(d, 0, (size_t)n * es);
        return;
    }
    memcpy(d, v, es); /* doubling copies: log2(n) memcpy calls */
    int64_t have = 1;
    while (have < n) {
        int64_t m = have < n - have ? have : n - have;
        memcpy(d + have * (int64_t)es, d, (size_t)m * es);
        have += m;
    }
}

/* Runs rows [begin, end) of the plan (a row is one run of the innermost dim). */
static inline void lx_mv_plan_rows(const lx_mv_plan *p, char *dst, const char *src, int64_t begin,
                                   int64_t end) {
    if (p->size == 0) return;
    const int64_t es = (int64_t)p->es;
    if (p->ndim == 0) { /* a single element */
        if (begin == 0 && end > 0) lx_mv_copy1(dst, src, p->es);
        return;
    }
    const int nd = p->ndim;
    const int64_t inner = p->shape[nd - 1];
    int64_t c[LX_MAX_NDIM];
    int64_t rem = begin, doff = 0, soff = 0;
    for (int i = nd - 2; i >= 0; i--) {
        c[i] = rem % p->shape[i];
        rem /= p->shape[i];
        doff += c[i] * p->dst[i];
        soff += c[i] * p->src[i];
    }
    for (int64_t r = begin; r < end; r++) {
        lx_mv_copy_elems(dst + doff * es, p->dst[nd - 1], src + soff * es, p->src[nd - 1], inner,
                         p->es);
        for (int i = nd - 2; i >= 0; i--) { /* odometer step */
            doff += p->dst[i];
            soff += p->src[i];
            if (++c[i] < p->shape[i]) break;
            doff -= c[i] * p->dst[i];
            soff -= c[i] * p->src[i];
            c[i] = 0;
        }
    }
}

typedef struct {
    const lx_mv_plan *plan;
    char *dst;
    const char *src;
} lx_mv_job;

static void lx_mv_job_run(void *ctx, int64_t begin, int64_t end) {
    const lx_mv_job *j = ctx;
    lx_mv_plan_rows(j->plan, j->dst, j->src, begin, end);
}

/* Copies a block: parallel over rows when it is large. */
static inline void lx_mv_copy_block(char *dst, const int64_t *dst_strides, const char *src,
                                    const int64_t *src_strides, const int32_t *shape, int ndim,
                                    size_t es) {
    lx_mv_plan p;
    lx_mv_plan_make(&p, shape, ndim, dst_strides, src_strides, es);
    if (p.size == 0) return;
    int64_t bytes = p.size * (int64_t)es;
    if (bytes < ((int64_t)1 << 20) || p.rows < 2) {
        lx_mv_plan_rows(&p, dst, src, 0, p.rows);
        return;
    }
    int64_t row_bytes = bytes / p.rows;
    int64_t grain = ((int64_t)1 << 16) / (row_bytes ? row_bytes : 1);
    lx_mv_job j = {&p, dst, src};
    lx_parallel_for(p.rows, grain < 1 ? 1 : grain, lx_mv_job_run, &j);
}

/* An index element of integer dtype t at p, as int64 (uint64 beyond INT64_MAX saturates). */
static inline int64_t lx_mv_load_index(const char *p, lx_dtype t) {
    switch (t) {
    case LX_UINT8: { uint8_t v; memcpy(&v, p, 1); return v; }
    case LX_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case LX_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case LX_UINT64: { uint64_t v; memcpy(&v, p, 8); return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v; }
    case LX_INT8: { int8_t v; memcpy(&v, p, 1); return v; }
    case LX_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case LX_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case LX_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    default: return 0;
    }
}

/* Negative indices count from the end; the result is clamped to [0, d - 1] (d > 0). */
static inline int64_t lx_mv_clamp_index(int64_t i, int64_t d) {
    if (i < 0) i += d;
    return i < 0 ? 0 : (i >= d ? d - 1 : i);
}

#endif
