/*
 * index.c -- CPU kernels that move elements by index: take (gather along an axis),
 * take_along_axis, put_along_axis (scatter), slice_update and concatenate.
 *
 * All of them are pure data movement, so each is written once for every dtype in terms of the
 * element size (move.h). Index arrays may have any integer dtype and any strides; a negative
 * index counts from the end and gathers clamp to the axis, so a bad index never reads outside
 * the array (prims_index.h states the rule for all backends).
 *
 * slice_update and put_along_axis may be handed their target's own buffer as output (donation,
 * prims_index.h: lx_prim_inplace_input); they detect it by address and then write only the
 * updated elements, which is what makes writing one token into a KV cache O(token).
 */
#include <stdlib.h>

#include "backend/cpu/move.h"
#include "graph/prims_index.h"

/* ---- take ------------------------------------------------------------------------------ */

typedef struct {
    const lx_node *a;
    char *out;
    const int64_t *idx; /* n_idx clamped indices */
    int64_t n_idx;
    int axis;
    lx_mv_plan inner;   /* a[axis+1:] -> one contiguous block of the output */
    int64_t block;      /* elements per block */
} take_ctx;

/* Rows are (outer position, index position) pairs; each copies one inner block. */
static void take_rows(void *vctx, int64_t begin, int64_t end) {
    const take_ctx *t = vctx;
    const lx_node *a = t->a;
    const int64_t es = (int64_t)lx_dtype_size((lx_dtype)a->dtype);
    const char *base = lx_node_ptr(a);
    for (int64_t r = begin; r < end; r++) {
        int64_t o = r / t->n_idx, j = r % t->n_idx;
        int64_t off = t->idx[j] * a->strides[t->axis];
        for (int i = t->axis - 1; i >= 0; i--) { /* outer coordinates of o */
            off += (o % a->shape[i]) * a->strides[i];
            o /= a->shape[i];
        }
        char *dst = t->out + r * t->block * es;
        lx_mv_plan_rows(&t->inner, dst, base + off * es, 0, t->inner.rows);
    }
}

/* Loads the indices (any integer dtype, any strides) into a clamped int64 vector. */
static int64_t *load_indices(lx_kctx *kctx, const lx_node *idx, int64_t d) {
    int64_t n = idx->size;
    int64_t *v = lx_kernel_scratch(kctx, sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!v) return NULL;
    const char *p = lx_node_ptr(idx);
    const int64_t es = (int64_t)lx_dtype_size((lx_dtype)idx->dtype);
    int64_t c[LX_MAX_NDIM] = {0}, off = 0;
    for (int64_t k = 0; k < n; k++) {
        v[k] = lx_mv_clamp_index(lx_mv_load_index(p + off * es, (lx_dtype)idx->dtype), d);
        for (int i = idx->ndim - 1; i >= 0; i--) {
            off += idx->strides[i];
            if (++c[i] < idx->shape[i]) break;
            off -= c[i] * idx->strides[i];
            c[i] = 0;
        }
    }
    return v;
}

lx_status LX_CPU_KERNEL(TAKE)(lx_kctx *kctx, lx_node *out) {
    const lx_take_params *p = out->params;
    const lx_node *a = out->inputs[0], *idx = out->inputs[1];
    if (out->size == 0) return LX_OK;
    int axis = p->axis;
    int64_t d = a->shape[axis];
    if (d == 0) /* the op rejects this; never read from an empty axis */
        return lx_set_error(LX_E_SHAPE, "%s: take of %lld indices from an empty axis", out->op,
                            (long long)idx->size);
    take_ctx t;
    t.a = a;
    t.out = lx_node_ptr(out);
    t.n_idx = idx->size;
    t.axis = axis;
    t.idx = load_indices(kctx, idx, d);
    if (!t.idx) return lx_set_error(LX_E_OOM, "%s: out of host memory for indices", out->op);
    int64_t dst_strides[LX_MAX_NDIM];
    int in_nd = a->ndim - axis - 1;
    lx_mv_row_strides(a->shape + axis + 1, in_nd, dst_strides);
    lx_mv_plan_make(&t.inner, a->shape + axis + 1, in_nd, dst_strides, a->strides + axis + 1,
                    lx_dtype_size((lx_dtype)a->dtype));
    t.block = t.inner.size;
    int64_t rows = out->size / t.block;
    int64_t grain = (int64_t)4096 / t.block;
    lx_parallel_for(rows, grain < 1 ? 1 : grain, take_rows, &t);
    return LX_OK;
}

/* ---- take_along_axis / put_along_axis ----------------------------------------------------- */

/* Walks the index array (shape B = the node's or the scatter's shape) row by row; for each
 * element it knows the offset of the same coordinates in `a` without the axis term. */
typedef struct {
    const lx_node *idx;
    int axis;
    int64_t d;                  /* a's size along axis */
    int64_t a_strides[LX_MAX_NDIM]; /* a's strides over B's coordinates (axis entry unused) */
    int64_t a_axis_stride;
    char *a_base;               /* a's element 0 (gather source or scatter target) */
    char *v_base;               /* gather: the output; scatter: values */
    const lx_node *values;      /* scatter only */
    size_t es;
    bool scatter;
} along_ctx;

/* Gathers along the last axis with 32-bit indices, contiguous: the common case (a sampler's
 * take_along_axis over a sorted vocabulary), without the per-element dtype switches. */
#define DEF_GATHER_FAST(T)                                                                  \
    static void gather_fast_##T(T *dst, const char *src, int64_t step, const int32_t *ix,   \
                                bool is_unsigned, int64_t d, int64_t n) {                   \
        for (int64_t k = 0; k < n; k++) {                                                   \
            int64_t j = is_unsigned ? (int64_t)(uint32_t)ix[k] : (int64_t)ix[k];             \
            j = lx_mv_clamp_index(j, d);                                                    \
            memcpy(&dst[k], src + j * step, sizeof(T));                                     \
        }                                                                                   \
    }
DEF_GATHER_FAST(uint16_t)
DEF_GATHER_FAST(uint32_t)
DEF_GATHER_FAST(uint64_t)
#undef DEF_GATHER_FAST

/* Elements [k0, k1) of row r of the index array. */
static void along_row(const along_ctx *t, int64_t r, int64_t k0, int64_t k1) {
    const lx_node *idx = t->idx;
    const int nd = idx->ndim, last = nd - 1;
    const int64_t L = idx->shape[last];
    const int64_t es = (int64_t)t->es, ies = (int64_t)lx_dtype_size((lx_dtype)idx->dtype);
    const lx_dtype it = (lx_dtype)idx->dtype;
    const char *ip = lx_node_ptr(idx);
    const int64_t *vst = t->scatter ? t->values->strides : NULL;
    int64_t rem = r, aoff = 0, ioff = 0, voff = 0;
    for (int i = last - 1; i >= 0; i--) {
        int64_t c = rem % idx->shape[i];
        rem /= idx->shape[i];
        if (i != t->axis) aoff += c * t->a_strides[i];
        ioff += c * idx->strides[i];
        if (vst) voff += c * vst[i];
    }
    if (!t->scatter && last == t->axis && idx->strides[last] == 1 &&
        (it == LX_INT32 || it == LX_UINT32) && (es == 2 || es == 4 || es == 8)) {
        const int32_t *ix = (const int32_t *)(const void *)(ip + ioff * ies) + k0;
        char *dst = t->v_base + (r * L + k0) * es;
        const char *src = t->a_base + aoff * es;
        int64_t step = t->a_axis_stride * es;
        bool u = it == LX_UINT32;
        if (es == 2) gather_fast_uint16_t((uint16_t *)(void *)dst, src, step, ix, u, t->d, k1 - k0);
        else if (es == 4) gather_fast_uint32_t((uint32_t *)(void *)dst, src, step, ix, u, t->d, k1 - k0);
        else gather_fast_uint64_t((uint64_t *)(void *)dst, src, step, ix, u, t->d, k1 - k0);
        return;
    }
    for (int64_t k = k0; k < k1; k++) {
        int64_t j = lx_mv_load_index(ip + (ioff + k * idx->strides[last]) * ies, it);
        int64_t ao = aoff + (last == t->axis ? 0 : k * t->a_strides[last]);
        if (t->scatter) {
            if (j < 0) j += t->d;
            if (j < 0 || j >= t->d) continue; /* out of range: the write is dropped */
            lx_mv_copy1(t->a_base + (ao + j * t->a_axis_stride) * es,
                        t->v_base + (voff + k * vst[last]) * es, t->es);
        } else {
            j = lx_mv_clamp_index(j, t->d);
            lx_mv_copy1(t->v_base + (r * L + k) * es, t->a_base + (ao + j * t->a_axis_stride) * es,
                        t->es);
        }
    }
}

static void along_rows(void *vctx, int64_t begin, int64_t end) {
    const along_ctx *t = vctx;
    const int64_t L = t->idx->shape[t->idx->ndim - 1];
    for (int64_t r = begin; r < end; r++) along_row(t, r, 0, L);
}

/* Gathers only: tasks are segments of SEGMENT elements of a row, so that a few long rows still
 * use every thread (a scatter keeps whole rows: its writes may meet). */
#define SEGMENT 8192
static void along_segments(void *vctx, int64_t begin, int64_t end) {
    const along_ctx *t = vctx;
    const int64_t L = t->idx->shape[t->idx->ndim - 1], nseg = (L + SEGMENT - 1) / SEGMENT;
    for (int64_t task = begin; task < end; task++) {
        int64_t r = task / nseg, k0 = (task % nseg) * SEGMENT;
        along_row(t, r, k0, k0 + SEGMENT < L ? k0 + SEGMENT : L);
    }
}

lx_status LX_CPU_KERNEL(TAKE_ALONG)(lx_kctx *kctx, lx_node *out) {
    const lx_take_params *p = out->params;
    const lx_node *a = out->inputs[0], *idx = out->inputs[1];
    if (out->size == 0) return LX_OK;
    along_ctx t;
    memset(&t, 0, sizeof t);
    t.idx = idx;
    t.axis = p->axis;
    t.d = a->shape[p->axis];
    if (t.d == 0)
        return lx_set_error(LX_E_SHAPE, "%s: take_along_axis from an empty axis", out->op);
    for (int i = 0; i < a->ndim; i++) t.a_strides[i] = a->strides[i]; /* a is broadcast to B */
    t.a_axis_stride = a->strides[p->axis];
    t.a_base = lx_node_ptr(a);
    t.v_base = lx_node_ptr(out);
    t.es = lx_dtype_size((lx_dtype)out->dtype);
    int64_t L = idx->shape[idx->ndim - 1];
    int64_t rows = out->size / L, grain = 4096 / L;
    if (L >= 2 * SEGMENT) lx_parallel_for(rows * ((L + SEGMENT - 1) / SEGMENT), 1, along_segments, &t);
    else lx_parallel_for(rows, grain < 1 ? 1 : grain, along_rows, &t);
    return LX_OK;
}

/* Copies `a` into the row-contiguous output unless the output is a's own (donated) buffer. */
static void copy_target(lx_node *out, const lx_node *a) {
    if (a->size == 0) return;
    char *dst = lx_node_ptr(out);
    const char *src = lx_node_ptr(a);
    if (dst == src) return; /* in place: only the updated elements are written */
    lx_mv_copy_block(dst, out->strides, src, a->strides, a->shape, a->ndim,
                     lx_dtype_size((lx_dtype)a->dtype));
}

lx_status LX_CPU_KERNEL(PUT_ALONG)(lx_kctx *kctx, lx_node *out) {
    const lx_take_params *p = out->params;
    const lx_node *a = out->inputs[0], *idx = out->inputs[1], *val = out->inputs[2];
    copy_target(out, a);
    if (idx->size == 0 || out->size == 0) return LX_OK;
    along_ctx t;
    memset(&t, 0, sizeof t);
    t.idx = idx;
    t.values = val;
    t.scatter = true;
    t.axis = p->axis;
    t.d = out->shape[p->axis];
    /* B's coordinates map onto the output's, except dims where `a` has size 1 (broadcast) */
    for (int i = 0; i < out->ndim; i++)
        t.a_strides[i] = (out->shape[i] == 1) ? 0 : out->strides[i];
    t.a_axis_stride = out->strides[p->axis];
    t.a_base = lx_node_ptr(out);
    t.v_base = lx_node_ptr(val);
    t.es = lx_dtype_size((lx_dtype)out->dtype);
    /* serial: with repeated indices the last write in row-major order wins, deterministically */
    along_rows(&t, 0, idx->size / idx->shape[idx->ndim - 1]);
    return LX_OK;
}

/* ---- slice_update ---------------------------------------------------------------------------- */

lx_status LX_CPU_KERNEL(SLICE_UPDATE)(lx_kctx *kctx, lx_node *out) {
    const lx_slice_params *p = out->params;
    const lx_node *a = out->inputs[0], *upd = out->inputs[1];
    copy_target(out, a);
    if (upd->size == 0) return LX_OK;
    int64_t off = 0, strides[LX_MAX_NDIM];
    for (int i = 0; i < out->ndim; i++) {
        off += (int64_t)p->start[i] * out->strides[i];
        strides[i] = out->strides[i] * p->step[i];
    }
    size_t es = lx_dtype_size((lx_dtype)out->dtype);
    lx_mv_copy_block((char *)lx_node_ptr(out) + off * (int64_t)es, strides, lx_node_ptr(upd),
                     upd->strides, upd->shape, upd->ndim, es);
    return LX_OK;
}

/* ---- concatenate ----------------------------------------------------------------------------- */

lx_status LX_CPU_KERNEL(CONCATENATE)(lx_kctx *kctx, lx_node *out) {
    const lx_concat_params *p = out->params;
    size_t es = lx_dtype_size((lx_dtype)out->dtype);
    int64_t at = 0;
    for (int k = 0; k < out->n_inputs; k++) {
        const lx_node *in = out->inputs[k];
        if (in->size > 0)
            lx_mv_copy_block((char *)lx_node_ptr(out) + at * out->strides[p->axis] * (int64_t)es,
                             out->strides, lx_node_ptr(in), in->strides, in->shape, in->ndim, es);
        at += in->shape[p->axis];
    }
    return LX_OK;
}
