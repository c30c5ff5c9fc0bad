/*
 * iter.h -- strided N-d iteration and chunk conversions shared by the CPU kernels.
 *
 * Iteration. A kernel's output is row-contiguous; its inputs may be strided, broadcast (stride
 * 0), transposed or sliced, at an offset. lx_iter_init describes the loop over the output's
 * elements with one stride per input and dimension, collapsed by graph/layout.h's
 * lx_layout_collapse (size-1 dimensions dropped, neighbours that every input walks
 * contiguously merged), so a plain elementwise op over row-contiguous inputs is a single 1-D
 * row (it->contiguous); it adds the CPU's choice of a tiled walk for transposed inputs.
 * lx_iter_run splits the elements into ranges on the thread pool and calls the row function
 * for each run along the innermost dimension: fn(ctx, out, in, in_strides, n) where out is
 * row-contiguous, in[k] points at the first element of input k for that run, and in_strides[k]
 * is its stride in elements (0 for a broadcast input, possibly negative).
 *
 * Aliasing. The eval layer may hand a kernel an output buffer that is an input's buffer
 * (donation), always position for position (the donated input is row-contiguous with the
 * output's shape and element size). Row functions must read element i before writing element
 * i and must not assume out and in do not overlap (no `restrict` across them).
 *
 * Values. The value classes and the per-value conversions are values.h's; this file adds the
 * chunk conversions (n values of a dtype <-> a buffer of its class, float16 through F16C where
 * the variant has it).
 * Every helper is static inline: this header is compiled into each CPU variant.
 */
#ifndef LX_BACKEND_CPU_ITER_H
#define LX_BACKEND_CPU_ITER_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "graph/layout.h"
#include "graph/values.h"

/* ------------------------------------------------------------------------------------------ */
/* Chunk conversions                                                                          */

/* A chunk buffer that holds LX_CHUNK values of any class. */
typedef union {
    uint64_t u[LX_CHUNK];
    int64_t i[LX_CHUNK];
    float f[LX_CHUNK];
    double d[LX_CHUNK];
} lx_chunk_buf;

/* ---- chunk conversions: n values of dtype S (at stride s) <-> a buffer of its class ----
 * lx_chunk_load_<s>(p, s, buf, n) widens, lx_chunk_store_<s>(buf, p, n) narrows into a
 * row-contiguous destination. float16 uses the F16C instructions where the variant has them
 * (same results: round to nearest even, NaN kept quiet with its payload's top bits). */
#if defined(__F16C__)
#include <immintrin.h>
#define LX_F16C_ 1
static inline void lx_f16c_load(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = lx_f16_to_f32(x[i]);
}
static inline void lx_f16c_store(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = lx_f32_to_f16(x[i]);
}
#else
#define LX_F16C_ 0
static inline void lx_f16c_load(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = lx_f16_to_f32(x[i]);
}
static inline void lx_f16c_store(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = lx_f32_to_f16(x[i]);
}
#endif
#define LX_F16C_bool 0
#define LX_F16C_u8 0
#define LX_F16C_u16 0
#define LX_F16C_u32 0
#define LX_F16C_u64 0
#define LX_F16C_i8 0
#define LX_F16C_i16 0
#define LX_F16C_i32 0
#define LX_F16C_i64 0
#define LX_F16C_f16 LX_F16C_
#define LX_F16C_bf16 0
#define LX_F16C_f32 0
#define LX_F16C_f64 0

#define LX_DEF_CHUNK_IO_(E, T, S)                                                          \
    static inline void lx_chunk_load_##S(const void *p, int64_t s, void *buf_, int64_t n) { \
        const LX_ST_##S *x = (const LX_ST_##S *)p;                                         \
        LX_ICAT_(LX_CT_, LX_CLS_##S) *buf = buf_;                                          \
        if (LX_F16C_##S && s == 1) {                                                       \
            lx_f16c_load((const uint16_t *)p, (float *)buf_, n);                           \
        } else if (s == 1) {                                                               \
            for (int64_t i = 0; i < n; i++) buf[i] = LX_LOAD_##S(x[i]);                    \
        } else {                                                                           \
            for (int64_t i = 0; i < n; i++) buf[i] = LX_LOAD_##S(x[i * s]);                \
        }                                                                                  \
    }                                                                                      \
    static inline void lx_chunk_store_##S(const void *buf_, void *p, int64_t n) {          \
        const LX_ICAT_(LX_CT_, LX_CLS_##S) *buf = buf_;                                    \
        LX_ST_##S *y = (LX_ST_##S *)p;                                                     \
        if (LX_F16C_##S) {                                                                 \
            lx_f16c_store((const float *)buf_, (uint16_t *)p, n);                          \
        } else {                                                                           \
            for (int64_t i = 0; i < n; i++) y[i] = LX_ICAT_(lx_cvt_##S##_, LX_CLS_##S)(buf[i]); \
        }                                                                                  \
    }
LX_FOR_EACH_DTYPE(LX_DEF_CHUNK_IO_)
#undef LX_DEF_CHUNK_IO_

/* ------------------------------------------------------------------------------------------ */
/* Iteration                                                                                  */

#define LX_ITER_MAX_IN LX_LAYOUT_MAX_IN
/* Elements per parallel task for cheap elementwise work. */
#define LX_ITER_GRAIN 16384
/* Tile edge (elements) for inputs read across their memory order (transposes). */
#define LX_ITER_TILE 32

typedef struct {
    int nin;
    int ndim;          /* after collapsing, >= 1 */
    int64_t size;      /* elements of the output */
    bool contiguous;   /* ndim == 1 and every input has stride 1 */
    bool tiled;        /* walk the last two dims in LX_ITER_TILE squares (see lx_iter_init) */
    int64_t shape[LX_MAX_NDIM];
    int64_t strides[LX_ITER_MAX_IN][LX_MAX_NDIM]; /* in elements */
    const char *in[LX_ITER_MAX_IN];               /* element 0 of each input */
    size_t in_es[LX_ITER_MAX_IN];                 /* element sizes */
    char *out;
    size_t out_es;
} lx_iter;

/* out[0..n) (row-contiguous) from in[k][i * in_strides[k]], k < nin. */
typedef void (*lx_iter_row_fn)(void *ctx, char *out, const char *const *in,
                               const int64_t *in_strides, int64_t n);

/* Describes the loop over out's elements reading ins (READY nodes, nin <= LX_ITER_MAX_IN;
 * out's buffer allocated, row-contiguous at offset 0). An input may have fewer
 * dimensions than out (right-aligned) and size-1 dimensions where out has more: those
 * broadcast with stride 0. */
static inline void lx_iter_init(lx_iter *it, const lx_node *out, lx_node *const *ins, int nin) {
    memset(it, 0, sizeof *it);
    it->nin = nin;
    it->size = out->size;
    it->out = (char *)lx_node_ptr(out);
    it->out_es = lx_dtype_size((lx_dtype)out->dtype);
    for (int k = 0; k < nin; k++) {
        it->in[k] = (const char *)lx_node_ptr(ins[k]);
        it->in_es[k] = lx_dtype_size((lx_dtype)ins[k]->dtype);
    }
    it->contiguous = lx_layout_collapse(out, ins, nin, it->shape, it->strides, &it->ndim);
    /* An input that jumps more than a cache line along the last dim but is denser along the
     * one before (a transpose): walk both in tiles, so the lines it touches are reused by the
     * tile's next rows instead of being evicted before the next column comes round. */
    if (it->ndim >= 2) {
        const int a = it->ndim - 1, b = it->ndim - 2;
        for (int k = 0; k < nin; k++) {
            int64_t sl = it->strides[k][a] < 0 ? -it->strides[k][a] : it->strides[k][a];
            int64_t sr = it->strides[k][b] < 0 ? -it->strides[k][b] : it->strides[k][b];
            if (sl * (int64_t)it->in_es[k] > 64 && sr < sl) it->tiled = true;
        }
        if (it->shape[a] < LX_ITER_TILE || it->shape[b] < 2) it->tiled = false;
    }
}

typedef struct {
    const lx_iter *it;
    lx_iter_row_fn fn;
    void *ctx;
} lx_iter_job_;

/* Runs the rows of elements [begin, end). Offsets are kept as integers (elements) and pointers
 * are formed only for rows that exist, so no out-of-range pointer is ever computed. */
static inline void lx_iter_range_(void *job_, int64_t begin, int64_t end) {
    const lx_iter_job_ *job = job_;
    const lx_iter *it = job->it;
    const int nd = it->ndim, last = nd - 1, nin = it->nin;
    int64_t idx[LX_MAX_NDIM];
    int64_t off[LX_ITER_MAX_IN] = {0};
    int64_t rem = begin;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % it->shape[d];
        rem /= it->shape[d];
    }
    for (int k = 0; k < nin; k++)
        for (int d = 0; d < nd; d++) off[k] += idx[d] * it->strides[k][d];
    int64_t inner_st[LX_ITER_MAX_IN];
    for (int k = 0; k < nin; k++) inner_st[k] = it->strides[k][last];
    const char *p[LX_ITER_MAX_IN];
    int64_t pos = begin;
    while (pos < end) {
        int64_t n = it->shape[last] - idx[last];
        if (n > end - pos) n = end - pos;
        for (int k = 0; k < nin; k++) p[k] = it->in[k] + off[k] * (int64_t)it->in_es[k];
        job->fn(job->ctx, it->out + pos * (int64_t)it->out_es, p, inner_st, n);
        pos += n;
        if (pos >= end) break;
        idx[last] += n;
        for (int k = 0; k < nin; k++) off[k] += n * inner_st[k];
        for (int d = last; d > 0 && idx[d] == it->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
            for (int k = 0; k < nin; k++)
                off[k] += it->strides[k][d - 1] - it->shape[d] * it->strides[k][d];
        }
    }
}

/* Tiled walk: unit u is LX_ITER_TILE rows (of the last two dims) of one outer index, done
 * tile by tile; rows are cut into LX_ITER_TILE-long pieces. */
static inline void lx_iter_tiles_(void *job_, int64_t ub, int64_t ue) {
    const lx_iter_job_ *job = job_;
    const lx_iter *it = job->it;
    const int nd = it->ndim, nin = it->nin, a = nd - 1, b = nd - 2;
    const int64_t R = it->shape[b], C = it->shape[a], T = LX_ITER_TILE;
    const int64_t nrb = (R + T - 1) / T;
    int64_t inner_st[LX_ITER_MAX_IN];
    for (int k = 0; k < nin; k++) inner_st[k] = it->strides[k][a];
    const char *p[LX_ITER_MAX_IN];
    for (int64_t u = ub; u < ue; u++) {
        int64_t o = u / nrb, r0 = (u % nrb) * T;
        int64_t r1 = r0 + T < R ? r0 + T : R;
        int64_t base[LX_ITER_MAX_IN] = {0};
        int64_t rem = o;
        for (int d = nd - 3; d >= 0; d--) {
            int64_t i = rem % it->shape[d];
            rem /= it->shape[d];
            for (int k = 0; k < nin; k++) base[k] += i * it->strides[k][d];
        }
        for (int64_t c0 = 0; c0 < C; c0 += T) {
            int64_t n = C - c0 < T ? C - c0 : T;
            for (int64_t r = r0; r < r1; r++) {
                for (int k = 0; k < nin; k++)
                    p[k] = it->in[k] + (base[k] + r * it->strides[k][b] + c0 * inner_st[k]) *
                                           (int64_t)it->in_es[k];
                job->fn(job->ctx, it->out + ((o * R + r) * C + c0) * (int64_t)it->out_es, p,
                        inner_st, n);
            }
        }
    }
}

/* Calls fn over every row, in parallel chunks of at least `grain` elements. */
static inline void lx_iter_run(const lx_iter *it, int64_t grain, lx_iter_row_fn fn, void *ctx) {
    if (it->size <= 0) return;
    lx_iter_job_ job = {it, fn, ctx};
    if (it->tiled) {
        const int64_t R = it->shape[it->ndim - 2], C = it->shape[it->ndim - 1];
        const int64_t nrb = (R + LX_ITER_TILE - 1) / LX_ITER_TILE;
        const int64_t units = it->size / (R * C) * nrb;
        const int64_t per_unit = LX_ITER_TILE * C;
        lx_parallel_for(units, grain / per_unit > 0 ? grain / per_unit : 1, lx_iter_tiles_, &job);
        return;
    }
    lx_parallel_for(it->size, grain, lx_iter_range_, &job);
}

#endif
