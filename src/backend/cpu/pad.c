/*
 * pad.c -- CPU kernels that lay an array out anew: constant padding, tile/repeat, and the
 * triangular selections tril/triu. Pure data movement written once per element size
 * (move.h), for every dtype; inputs may have any strides (including broadcast zeros).
 */
#include "backend/cpu/move.h"
#include "graph/prims_index.h"

/* ---- pad ------------------------------------------------------------------------------- */

lx_status LX_CPU_KERNEL(PAD)(lx_kctx *kctx, lx_node *out) {
    const lx_pad_params *p = out->params;
    const lx_node *a = out->inputs[0];
    if (out->size == 0) return LX_OK;
    size_t es = lx_dtype_size((lx_dtype)out->dtype);
    unsigned char value[8] = {0};
    lx_dtype_store((lx_dtype)out->dtype, value, p->value);
    char *dst = lx_node_ptr(out);
    /* fill everything, then the interior: the border is usually most of nothing, and a
     * single fill pass is cheaper than walking the border's pieces */
    lx_mv_fill(dst, value, out->size, es);
    if (a->size == 0) return LX_OK;
    int64_t off = 0;
    for (int i = 0; i < out->ndim; i++) off += (int64_t)p->low[i] * out->strides[i];
    lx_mv_copy_block(dst + off * (int64_t)es, out->strides, lx_node_ptr(a), a->strides, a->shape,
                     a->ndim, es);
    return LX_OK;
}

/* ---- tile / repeat ----------------------------------------------------------------------- */

typedef struct {
    const lx_node *a;
    const lx_node *out;
    const int32_t *div;
} tile_ctx;

/* Rows are runs of the output's last axis. */
static void tile_rows(void *vctx, int64_t begin, int64_t end) {
    const tile_ctx *t = vctx;
    const lx_node *a = t->a, *out = t->out;
    const int nd = out->ndim, last = nd - 1;
    const int64_t es = (int64_t)lx_dtype_size((lx_dtype)out->dtype);
    const int64_t L = out->shape[last], d = a->shape[last], st = a->strides[last];
    const int64_t dv = t->div[last];
    const char *src = lx_node_ptr(a);
    char *dst = lx_node_ptr(out);
    for (int64_t r = begin; r < end; r++) {
        int64_t rem = r, off = 0;
        for (int i = last - 1; i >= 0; i--) {
            int64_t o = rem % out->shape[i];
            rem /= out->shape[i];
            off += ((o / t->div[i]) % a->shape[i]) * a->strides[i];
        }
        const char *s = src + off * es;
        char *o = dst + r * L * es;
        if (dv == 1) { /* one input row, then copies of what is already written */
            int64_t first = d < L ? d : L;
            lx_mv_copy_elems(o, 1, s, st, first, (size_t)es);
            for (int64_t have = first; have < L;) {
                int64_t m = have < L - have ? have : L - have;
                memcpy(o + have * es, o, (size_t)(m * es));
                have += m;
            }
        } else {
            for (int64_t k = 0; k < L; k++)
                lx_mv_copy1(o + k * es, s + ((k / dv) % d) * st * es, (size_t)es);
        }
    }
}

lx_status LX_CPU_KERNEL(TILE)(lx_kctx *kctx, lx_node *out) {
    const lx_tile_params *p = out->params;
    if (out->size == 0) return LX_OK;
    tile_ctx t = {out->inputs[0], out, p->div};
    if (out->ndim == 0) {
        lx_mv_copy1(lx_node_ptr(out), lx_node_ptr(t.a), lx_dtype_size((lx_dtype)out->dtype));
        return LX_OK;
    }
    int64_t L = out->shape[out->ndim - 1];
    int64_t grain = 16384 / L;
    lx_parallel_for(out->size / L, grain < 1 ? 1 : grain, tile_rows, &t);
    return LX_OK;
}

/* ---- tril / triu --------------------------------------------------------------------------- */

typedef struct {
    const lx_node *a;
    const lx_node *out;
    int64_t k;
    bool upper;
} tri_ctx;

/* Rows are rows of the matrices (all axes but the last). */
static void tri_rows(void *vctx, int64_t begin, int64_t end) {
    const tri_ctx *t = vctx;
    const lx_node *a = t->a, *out = t->out;
    const int nd = out->ndim;
    const int64_t es = (int64_t)lx_dtype_size((lx_dtype)out->dtype);
    const int64_t C = out->shape[nd - 1], R = out->shape[nd - 2], st = a->strides[nd - 1];
    const char *src = lx_node_ptr(a);
    char *dst = lx_node_ptr(out);
    for (int64_t r = begin; r < end; r++) {
        int64_t rem = r, off = 0;
        for (int i = nd - 2; i >= 0; i--) {
            off += (rem % out->shape[i]) * a->strides[i];
            rem /= out->shape[i];
        }
        int64_t row = r % R;
        /* kept columns: c <= row + k (tril) or c >= row + k (triu) */
        int64_t lo = t->upper ? row + t->k : 0;
        int64_t hi = t->upper ? C : row + t->k + 1;
        lo = lo < 0 ? 0 : (lo > C ? C : lo);
        hi = hi < lo ? lo : (hi > C ? C : hi);
        char *o = dst + r * C * es;
        memset(o, 0, (size_t)(lo * es));
        lx_mv_copy_elems(o + lo * es, 1, src + (off + lo * st) * es, st, hi - lo, (size_t)es);
        memset(o + hi * es, 0, (size_t)((C - hi) * es));
    }
}

lx_status LX_CPU_KERNEL(TRI_SELECT)(lx_kctx *kctx, lx_node *out) {
    const lx_tri_params *p = out->params;
    if (out->size == 0) return LX_OK;
    tri_ctx t = {out->inputs[0], out, p->k, p->upper != 0};
    int64_t C = out->shape[out->ndim - 1];
    int64_t grain = 16384 / C;
    lx_parallel_for(out->size / C, grain < 1 ? 1 : grain, tri_rows, &t);
    return LX_OK;
}
