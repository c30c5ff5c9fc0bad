/*
 * fallback.c -- the fallbacks of ops/fallback.h: RMS_NORM, LAYER_NORM, SOFTMAX (and
 * log-softmax), ARG_REDUCE, ROPE, SDPA, DEQUANTIZE, QUANTIZED_MATMUL, GATHER_MM, TAKE_ALONG,
 * PUT_ALONG, SCAN and FUSED, each as a graph of core primitives.
 *
 * The builders below follow ops.h's convention (node arguments consumed, NULL propagates with
 * everything released), so a fallback is written as a chain and checked once at its end.
 * Every node's shape comes from its primitive's rule (lx_build_derived) except the views and
 * constants, whose shape is their own.
 */
#include "ops/fallback.h"

#include <math.h>
#include <string.h>

#include "graph/fused.h"
#include "graph/prim_info.h"
#include "graph/prims_index.h"
#include "graph/prims_nn.h"
#include "graph/prims_quant.h"
#include "graph/prims_scan.h"
#include "ops/ops.h"

/* ---- builders ------------------------------------------------------------------------------ */

/* The op that built the node being rewritten: the new nodes' messages name it. */
static _Thread_local const char *tl_op;
#define OP (tl_op ? tl_op : "fallback")

static lx_node *dup(lx_node *x) {
    if (x) lx_node_retain(x);
    return x;
}

/* Input i of n, a new reference. */
static lx_node *input(const lx_node *n, int i) { return dup(n->inputs[i]); }

/* Releases the non-NULL ones; true if any was NULL (a failed link upstream). */
static bool any_null(lx_node **x, int n) {
    bool bad = false;
    for (int i = 0; i < n; i++) bad = bad || !x[i];
    if (bad) lx_release_nodes(x, n);
    return bad;
}

static bool is_half(lx_dtype t) { return t == LX_FLOAT16 || t == LX_BFLOAT16; }
/* What the kernels compute a float dtype in: float64 stays, the rest are float32. */
static lx_dtype compute_dtype(lx_dtype t) { return t == LX_FLOAT64 ? LX_FLOAT64 : LX_FLOAT32; }

static lx_node *cast(lx_node *x, lx_dtype t) { return lx_node_astype(OP, x, t); }

static lx_node *reshape(lx_node *x, const int *shape, int ndim) {
    return lx_node_reshape(OP, x, shape, ndim);
}

static lx_node *permute(lx_node *x, const int *perm) { return lx_node_permute(OP, x, perm); }

/* x with axes a and b swapped. */
static lx_node *swap_axes(lx_node *x, int a, int b) {
    if (!x) return NULL;
    int perm[LX_MAX_NDIM];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return permute(x, perm);
}

static lx_node *scalar(double v, lx_dtype t) { return lx_node_scalar(OP, v, t); }

static lx_node *unary(int op, lx_node *x) {
    if (!x) return NULL;
    lx_unary_params p;
    memset(&p, 0, sizeof p);
    p.op = op;
    return lx_build_derived(OP, LX_PRIM_UNARY, (lx_dtype)x->dtype, &x, 1, &p, sizeof p);
}

/* op(a, b) of one dtype, broadcast together. */
static lx_node *binary(int op, lx_node *a, lx_node *b) {
    lx_node *in[2] = {a, b};
    if (any_null(in, 2) || !lx_broadcast_pair(OP, &in[0], &in[1], -1)) return NULL;
    lx_binary_params p;
    memset(&p, 0, sizeof p);
    p.op = op;
    return lx_build_derived(OP, LX_PRIM_BINARY, (lx_dtype)in[0]->dtype, in, 2, &p, sizeof p);
}

/* op(a, s) with s in a's dtype. */
static lx_node *binary_s(int op, lx_node *a, double s) {
    if (!a) return NULL;
    return binary(op, a, scalar(s, (lx_dtype)a->dtype));
}

/* c ? a : b, all broadcast to one shape (c bool, a and b of one dtype). */
static lx_node *where(lx_node *c, lx_node *a, lx_node *b) {
    lx_node *in[3] = {c, a, b};
    if (any_null(in, 3)) return NULL;
    int s1[LX_MAX_NDIM], s2[LX_MAX_NDIM], n1, n2;
    if (!lx_broadcast_shape(OP, c->shape, c->ndim, a->shape, a->ndim, s1, &n1) ||
        !lx_broadcast_shape(OP, s1, n1, b->shape, b->ndim, s2, &n2)) {
        lx_release_nodes(in, 3);
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        lx_node *x = in[i];
        in[i] = NULL;
        in[i] = lx_node_broadcast(OP, x, s2, n2);
        if (!in[i]) {
            lx_release_nodes(in, 3);
            return NULL;
        }
    }
    return lx_build_derived(OP, LX_PRIM_WHERE, (lx_dtype)a->dtype, in, 3, NULL, 0);
}

/* REDUCE op of x over `axis`, kept as size 1, with output dtype t (a mean when by_count). */
static lx_node *reduce(int op, lx_node *x, int axis, lx_dtype t, bool by_count) {
    if (!x) return NULL;
    lx_reduce_params p;
    memset(&p, 0, sizeof p);
    p.op = op;
    p.n_axes = 1;
    p.axes[0] = axis;
    p.scale = 1.0;
    if (by_count) {
        int d = x->shape[axis];
        p.by_count = 1;
        p.scale = d > 0 ? 1.0 / (double)d : INFINITY; /* as the rule computes it */
    }
    return lx_build_derived(OP, LX_PRIM_REDUCE, t, &x, 1, &p, sizeof p);
}
static lx_node *mean_last(lx_node *x) {
    return x ? reduce(LX_REDUCE_SUM, x, x->ndim - 1, (lx_dtype)x->dtype, true) : NULL;
}

/* A row-contiguous FULL of shape. */
static lx_node *full(const int *shape, int ndim, double v, lx_dtype t) {
    lx_full_params p = {v};
    return lx_build(OP, LX_PRIM_FULL, t, shape, ndim, NULL, 0, &p, sizeof p);
}

/* start + step * i, i < n, laid along `axis` of an ndim-dim shape of ones. */
static lx_node *arange_along(int n, double start, double step, lx_dtype t, int axis, int ndim) {
    int shape[LX_MAX_NDIM];
    for (int i = 0; i < ndim; i++) shape[i] = i == axis ? n : 1;
    lx_arange_params p = {start, step};
    return lx_build(OP, LX_PRIM_ARANGE, t, shape, ndim, NULL, 0, &p, sizeof p);
}

/* x[..., start : start + len*step : step, ...] along axis (a view). */
static lx_node *slice_axis(lx_node *x, int axis, int start, int len, int step) {
    if (!x) return NULL;
    lx_slice_params p;
    memset(&p, 0, sizeof p);
    int shape[LX_MAX_NDIM];
    for (int i = 0; i < x->ndim; i++) {
        p.step[i] = 1;
        shape[i] = x->shape[i];
    }
    p.start[axis] = start;
    p.step[axis] = step;
    shape[axis] = len;
    return lx_build(OP, LX_PRIM_SLICE, (lx_dtype)x->dtype, shape, x->ndim, &x, 1, &p, sizeof p);
}

static lx_node *concat(lx_node **x, int n, int axis) {
    if (any_null(x, n)) return NULL;
    lx_concat_params p;
    memset(&p, 0, sizeof p);
    p.axis = axis;
    return lx_build_derived(OP, LX_PRIM_CONCATENATE, (lx_dtype)x[0]->dtype, x, n, &p, sizeof p);
}

/* TAKE along axis with 1-D or n-D integer indices. */
static lx_node *take(lx_node *a, lx_node *idx, int axis) {
    lx_node *in[2] = {a, idx};
    if (any_null(in, 2)) return NULL;
    lx_take_params p;
    memset(&p, 0, sizeof p);
    p.axis = axis;
    return lx_build_derived(OP, LX_PRIM_TAKE, (lx_dtype)a->dtype, in, 2, &p, sizeof p);
}

/* a @ b over the last two axes, batch dims broadcast (views) as the MATMUL kernel wants. */
static lx_node *matmul(lx_node *a, lx_node *b) {
    lx_node *in[2] = {a, b};
    if (any_null(in, 2)) return NULL;
    int batch[LX_MAX_NDIM], nb;
    if (!lx_broadcast_shape(OP, a->shape, a->ndim - 2, b->shape, b->ndim - 2, batch, &nb)) {
        lx_release_nodes(in, 2);
        return NULL;
    }
    int sa[LX_MAX_NDIM], sb[LX_MAX_NDIM];
    memcpy(sa, batch, sizeof(int) * (size_t)nb);
    memcpy(sb, batch, sizeof(int) * (size_t)nb);
    sa[nb] = a->shape[a->ndim - 2];
    sa[nb + 1] = a->shape[a->ndim - 1];
    sb[nb] = b->shape[b->ndim - 2];
    sb[nb + 1] = b->shape[b->ndim - 1];
    in[0] = lx_node_broadcast(OP, in[0], sa, nb + 2);
    in[1] = lx_node_broadcast(OP, in[1], sb, nb + 2);
    if (any_null(in, 2)) return NULL;
    return lx_build_derived(OP, LX_PRIM_MATMUL, (lx_dtype)in[0]->dtype, in, 2, NULL, 0);
}

/* ---- norms, softmax, arg reduce ----------------------------------------------------------- */

static lx_node *fb_rms_norm(const lx_node *n) {
    const lx_norm_params *p = n->params;
    lx_dtype t = (lx_dtype)n->dtype, ct = compute_dtype(t);
    lx_node *x = cast(input(n, 0), ct);
    lx_node *ms = mean_last(unary(LX_UNARY_SQUARE, dup(x)));
    lx_node *y = binary(LX_BINARY_MUL, x, unary(LX_UNARY_RSQRT, binary_s(LX_BINARY_ADD, ms, p->eps)));
    if (n->n_inputs > 1) y = binary(LX_BINARY_MUL, y, cast(input(n, 1), ct));
    return cast(y, t);
}

static lx_node *fb_layer_norm(const lx_node *n) {
    const lx_layer_norm_params *p = n->params;
    lx_dtype t = (lx_dtype)n->dtype, ct = compute_dtype(t);
    lx_node *x = cast(input(n, 0), ct);
    lx_node *d = binary(LX_BINARY_SUB, dup(x), mean_last(dup(x)));
    lx_node_release(x);
    lx_node *var = mean_last(unary(LX_UNARY_SQUARE, dup(d)));
    lx_node *y = binary(LX_BINARY_MUL, d, unary(LX_UNARY_RSQRT, binary_s(LX_BINARY_ADD, var, p->eps)));
    int k = 1;
    if (p->has_w) y = binary(LX_BINARY_MUL, y, cast(input(n, k++), ct));
    if (p->has_b) y = binary(LX_BINARY_ADD, y, cast(input(n, k++), ct));
    return cast(y, t);
}

static lx_node *fb_softmax(const lx_node *n) {
    const lx_softmax_params *p = n->params;
    lx_dtype t = (lx_dtype)n->dtype, ct = compute_dtype(t);
    lx_node *x = cast(input(n, 0), ct);
    lx_node *z = binary(LX_BINARY_SUB, dup(x), reduce(LX_REDUCE_MAX, dup(x), p->axis, ct, false));
    lx_node_release(x);
    lx_node *sum = reduce(LX_REDUCE_SUM, unary(LX_UNARY_EXP, dup(z)), p->axis, ct, false);
    lx_node *y = p->log ? binary(LX_BINARY_SUB, z, unary(LX_UNARY_LOG, sum))
                        : binary(LX_BINARY_DIV, unary(LX_UNARY_EXP, z), sum);
    return cast(y, t);
}

/* The first index of the maximum (minimum) along the axis; a NaN counts as the extreme, so a
 * row holding one gives its first NaN. */
static lx_node *fb_arg_reduce(const lx_node *n) {
    const lx_arg_reduce_params *p = n->params;
    lx_node *x = input(n, 0);
    if (!x) return NULL;
    lx_dtype t = (lx_dtype)x->dtype;
    int ax = p->axis, d = x->shape[ax];
    lx_node *m = reduce(p->op == LX_ARG_MAX ? LX_REDUCE_MAX : LX_REDUCE_MIN, dup(x), ax, t, false);
    lx_node *hit = binary(LX_BINARY_EQUAL, dup(x), m);
    if (lx_dtype_is_float(t)) {
        lx_node *nan = unary(LX_UNARY_ISNAN, dup(x));
        lx_node *row_nan = reduce(LX_REDUCE_ANY, dup(nan), ax, LX_BOOL, false);
        hit = where(row_nan, nan, hit);
    }
    lx_node_release(x);
    lx_node *idx = arange_along(d, 0, 1, LX_UINT32, ax, n->ndim);
    lx_node *cand = where(hit, idx, scalar((double)d, LX_UINT32));
    return reduce(LX_REDUCE_MIN, cand, ax, LX_UINT32, false);
}

/* ---- rope ----------------------------------------------------------------------------------- */

/* The rotation as the kernel states it: angle of pair i at position p is
 * scale * (offset + p) * inv_freq_i, computed in float64 (positions reach 10^5 and more), its
 * cosine and sine rounded to the compute dtype; non-traditional pairs (i, i + dims/2),
 * traditional (2i, 2i + 1); features from dims on pass through. */
static lx_node *fb_rope(const lx_node *n) {
    const lx_rope_params *p = n->params;
    lx_dtype t = (lx_dtype)n->dtype, ct = compute_dtype(t);
    int nd = n->ndim, L = n->shape[nd - 2], D = n->shape[nd - 1], half = p->dims / 2;
    lx_node *pos = arange_along(L, (double)p->offset, 1, LX_FLOAT64, 0, 2); /* [L, 1] */
    if (p->has_offset)
        pos = binary(LX_BINARY_ADD, pos, cast(reshape(input(n, n->n_inputs - 1), NULL, 0), LX_FLOAT64));
    pos = binary_s(LX_BINARY_MUL, pos, (double)p->scale);
    lx_node *inv;
    if (p->has_freqs) {
        inv = binary(LX_BINARY_DIV, scalar(1.0, LX_FLOAT64), cast(input(n, 1), LX_FLOAT64));
        inv = reshape(inv, (int[]){1, half}, 2);
    } else {
        double lb = log((double)p->base);
        inv = unary(LX_UNARY_EXP, arange_along(half, 0, -lb / (double)half, LX_FLOAT64, 1, 2));
    }
    lx_node *ang = binary(LX_BINARY_MUL, pos, inv); /* [L, half] */
    lx_node *c = cast(unary(LX_UNARY_COS, dup(ang)), ct);
    lx_node *s = cast(unary(LX_UNARY_SIN, ang), ct);
    lx_node *x = cast(input(n, 0), ct);
    int start_b = p->traditional ? 1 : half, step = p->traditional ? 2 : 1;
    lx_node *a = slice_axis(dup(x), nd - 1, 0, half, step);
    lx_node *b = slice_axis(dup(x), nd - 1, start_b, half, step);
    lx_node *a2 = binary(LX_BINARY_SUB, binary(LX_BINARY_MUL, dup(a), dup(c)),
                         binary(LX_BINARY_MUL, dup(b), dup(s)));
    lx_node *b2 = binary(LX_BINARY_ADD, binary(LX_BINARY_MUL, a, s), binary(LX_BINARY_MUL, b, c));
    lx_node *rot;
    if (p->traditional) { /* interleave: [..., half, 1] pairs side by side, then flattened */
        int sh[LX_MAX_NDIM];
        memcpy(sh, n->shape, sizeof(int) * (size_t)nd);
        sh[nd - 1] = half;
        sh[nd] = 1;
        lx_node *pair[2] = {reshape(a2, sh, nd + 1), reshape(b2, sh, nd + 1)};
        rot = concat(pair, 2, nd);
        sh[nd - 1] = p->dims;
        rot = reshape(rot, sh, nd);
    } else {
        lx_node *pair[2] = {a2, b2};
        rot = concat(pair, 2, nd - 1);
    }
    if (p->dims < D) {
        lx_node *parts[2] = {rot, slice_axis(dup(x), nd - 1, p->dims, D - p->dims, 1)};
        rot = concat(parts, 2, nd - 1);
    }
    lx_node_release(x);
    return cast(rot, t);
}

/* ---- sdpa ----------------------------------------------------------------------------------- */

/* softmax(scale * q k^T + mask) v per query head, query head h reading kv head h / (Hq/Hkv):
 * the heads of a group fold into the rows of one product with their kv head. Masked scores are
 * -inf; a sink joins the denominator only; a row that keeps no key is zero. */
static lx_node *fb_sdpa(const lx_node *n) {
    const lx_sdpa_params *p = n->params;
    lx_dtype t = (lx_dtype)n->dtype, ct = compute_dtype(t);
    const lx_node *q0 = n->inputs[0], *k0 = n->inputs[1], *v0 = n->inputs[2];
    int B = q0->shape[0], Hq = q0->shape[1], Lq = q0->shape[2], D = q0->shape[3];
    int Hkv = k0->shape[1], Lk = k0->shape[2], Dv = v0->shape[3], G = Hq / Hkv;
    lx_node *q = binary_s(LX_BINARY_MUL, cast(input(n, 0), ct), (double)p->scale);
    q = reshape(q, (int[]){B, Hkv, G * Lq, D}, 4);
    lx_node *kT = swap_axes(cast(input(n, 1), ct), 2, 3);
    lx_node *sc = reshape(matmul(q, kT), (int[]){B, Hq, Lq, Lk}, 4);
    int idx = 3;
    if (p->has_mask) {
        lx_node *m = input(n, idx++);
        if (m && m->dtype == LX_BOOL)
            sc = where(m, sc, scalar(-INFINITY, ct));
        else
            sc = binary(LX_BINARY_ADD, sc, cast(m, ct));
    }
    if (p->causal) { /* key j is seen by query i iff j <= i + Lk - Lq */
        lx_node *row = arange_along(Lq, (double)(Lk - Lq), 1, LX_INT32, 0, 2);
        lx_node *col = arange_along(Lk, 0, 1, LX_INT32, 1, 2);
        sc = where(binary(LX_BINARY_LESS_EQUAL, col, row), sc, scalar(-INFINITY, ct));
    }
    lx_node *mx = reduce(LX_REDUCE_MAX, dup(sc), 3, ct, false); /* [B, Hq, Lq, 1] */
    lx_node *sink = NULL;
    if (p->has_sinks) {
        sink = reshape(cast(input(n, idx), ct), (int[]){1, Hq, 1, 1}, 4);
        mx = binary(LX_BINARY_MAXIMUM, mx, dup(sink));
    }
    /* a row with nothing to see has max -inf: shift by 0 instead, its weights are all 0 */
    mx = where(binary_s(LX_BINARY_EQUAL, dup(mx), -INFINITY), scalar(0, ct), mx);
    lx_node *w = unary(LX_UNARY_EXP, binary(LX_BINARY_SUB, sc, dup(mx)));
    lx_node *l = reduce(LX_REDUCE_SUM, dup(w), 3, ct, false);
    if (sink) l = binary(LX_BINARY_ADD, l, unary(LX_UNARY_EXP, binary(LX_BINARY_SUB, sink, dup(mx))));
    lx_node_release(mx);
    w = reshape(w, (int[]){B, Hkv, G * Lq, Lk}, 4);
    lx_node *pv = reshape(matmul(w, cast(input(n, 2), ct)), (int[]){B, Hq, Lq, Dv}, 4);
    lx_node *ok = binary_s(LX_BINARY_GREATER, dup(l), 0.0);
    lx_node *y = where(ok, binary(LX_BINARY_DIV, pv, l), scalar(0, ct));
    return cast(y, t);
}

/* ---- quantized ------------------------------------------------------------------------------ */

/* The values of wq [.., R, W] (uint32 words of `bits`-bit values, little-endian bit stream per
 * row), as float64 [.., R, W*32/bits]: value j starts at bit j*bits, in word j*bits/32 at shift
 * j*bits%32, and for 3, 5 and 6 bits may continue into the next word. Exact: every step is an
 * integer below 2^53 in float64 (a division by a power of two, a floor, a remainder). */
static lx_node *unpack(lx_node *wq, int bits) {
    if (!wq) return NULL;
    int nd = wq->ndim, W = wq->shape[nd - 1];
    int C = (int)((int64_t)W * 32 / bits);
    lx_node *bit = arange_along(C, 0, bits, LX_INT64, 0, 1);          /* j * bits */
    lx_node *word = binary_s(LX_BINARY_FLOOR_DIVIDE, dup(bit), 32.0);
    lx_node *shift = cast(binary_s(LX_BINARY_REMAINDER, bit, 32.0), LX_FLOAT64);
    lx_node *pow2 = binary(LX_BINARY_POW, scalar(2.0, LX_FLOAT64), dup(shift)); /* 2^shift */
    lx_node *lo = cast(take(dup(wq), dup(word), nd - 1), LX_FLOAT64);
    lx_node *q = unary(LX_UNARY_FLOOR, binary(LX_BINARY_DIV, lo, pow2));
    if (32 % bits != 0) { /* the high part from the next word: (hi mod 2^bits) * 2^(32-shift) */
        lx_node *next = binary_s(LX_BINARY_MINIMUM, binary_s(LX_BINARY_ADD, dup(word), 1.0), W - 1);
        lx_node *hi = cast(take(dup(wq), next, nd - 1), LX_FLOAT64);
        hi = binary_s(LX_BINARY_REMAINDER, hi, (double)(1 << bits));
        lx_node *up = binary(LX_BINARY_POW, scalar(2.0, LX_FLOAT64),
                             binary(LX_BINARY_SUB, scalar(32.0, LX_FLOAT64), dup(shift)));
        q = binary(LX_BINARY_ADD, q, binary(LX_BINARY_MUL, hi, up));
    }
    lx_node_release(shift);
    lx_node_release(word);
    lx_node_release(wq);
    return binary_s(LX_BINARY_REMAINDER, q, (double)(1 << bits));
}

/* scale * q + bias per group (computed in float32, float64 for float64 scales) as [.., R, C]:
 * in the scales' dtype, or left in the compute dtype when `keep` (a product's operand). All
 * three consumed. */
static lx_node *dequant(lx_node *wq, lx_node *s, lx_node *b, int group_size, int bits, bool keep) {
    lx_node *in[3] = {wq, s, b};
    if (any_null(in, 3)) return NULL;
    lx_dtype t = (lx_dtype)s->dtype, ct = compute_dtype(t);
    int nd = wq->ndim, G = s->shape[nd - 1];
    int sh[LX_MAX_NDIM];
    memcpy(sh, s->shape, sizeof(int) * (size_t)nd);
    sh[nd] = 1;
    lx_node *sg = reshape(cast(s, ct), sh, nd + 1); /* [.., R, G, 1] */
    lx_node *bg = reshape(cast(b, ct), sh, nd + 1);
    sh[nd] = group_size;
    lx_node *q = reshape(cast(unpack(wq, bits), ct), sh, nd + 1); /* [.., R, G, gs] */
    lx_node *w = binary(LX_BINARY_ADD, binary(LX_BINARY_MUL, q, sg), bg);
    sh[nd - 1] = G * group_size;
    w = reshape(w, sh, nd);
    return keep ? w : cast(w, t);
}

static lx_node *fb_dequantize(const lx_node *n) {
    const lx_quant_params *p = n->params;
    return dequant(input(n, 0), input(n, 1), input(n, 2), p->group_size, p->bits, false);
}

/* Operand opnd ([count, rows, cols] when idx is given) for each output matrix: gathered by the
 * index array (flattened, then reshaped to the index's shape) or as it is (its batch dims then
 * broadcast in the product). Both consumed. */
static lx_node *gathered(lx_node *opnd, lx_node *idx) {
    if (!idx) return opnd;
    lx_node *in[2] = {opnd, idx};
    if (any_null(in, 2)) return NULL;
    int bn = idx->ndim, rows = opnd->shape[1], cols = opnd->shape[2];
    int64_t count = 1;
    int sh[LX_MAX_NDIM];
    for (int i = 0; i < bn; i++) {
        count *= idx->shape[i];
        sh[i] = idx->shape[i];
    }
    sh[bn] = rows;
    sh[bn + 1] = cols;
    lx_node *flat = reshape(idx, (int[]){(int)count}, 1);
    return reshape(take(opnd, flat, 0), sh, bn + 2);
}

/* The product of the dequantized matrices in float32 (float64 for float64), as the kernels
 * accumulate, rounded once to the node's dtype. */
static lx_node *fb_quantized_matmul(const lx_node *n) {
    const lx_quant_params *p = n->params;
    lx_dtype t = (lx_dtype)n->dtype, ct = compute_dtype(t);
    int k = 4;
    lx_node *li = p->flags & LX_QMM_LHS_INDEXED ? input(n, k++) : NULL;
    lx_node *ri = p->flags & LX_QMM_RHS_INDEXED ? input(n, k++) : NULL;
    lx_node *x = cast(gathered(input(n, 0), li), ct);
    lx_node *w;
    if (ri) { /* gather the packed matrices first: only the used ones are unpacked */
        lx_node *q = input(n, 1), *s = input(n, 2), *b = input(n, 3);
        lx_node_retain(ri);
        lx_node_retain(ri); /* one reference for each gather */
        w = dequant(gathered(q, ri), gathered(s, ri), gathered(b, ri), p->group_size, p->bits, true);
    } else {
        w = dequant(input(n, 1), input(n, 2), input(n, 3), p->group_size, p->bits, true);
    }
    w = cast(w, ct);
    if (w && p->transpose) w = swap_axes(w, w->ndim - 2, w->ndim - 1);
    return cast(matmul(x, w), t);
}

static lx_node *fb_gather_mm(const lx_node *n) {
    const lx_quant_params *p = n->params;
    int k = 2;
    lx_node *li = p->flags & LX_QMM_LHS_INDEXED ? input(n, k++) : NULL;
    lx_node *ri = p->flags & LX_QMM_RHS_INDEXED ? input(n, k++) : NULL;
    lx_dtype t = (lx_dtype)n->dtype, ct = compute_dtype(t);
    return cast(matmul(cast(gathered(input(n, 0), li), ct), cast(gathered(input(n, 1), ri), ct)), t);
}

/* ---- take_along, put_along, scan ------------------------------------------------------------ */

/* idx (any integer dtype) as int64 positions along an axis of size d: negative ones count
 * from the end, then clamped to [0, d - 1] (the gathers' rule, graph/prims_index.h). */
static lx_node *clamp_index(lx_node *idx, int d) {
    idx = cast(idx, LX_INT64);
    lx_node *neg = binary_s(LX_BINARY_LESS, dup(idx), 0.0);
    idx = where(neg, binary_s(LX_BINARY_ADD, dup(idx), (double)d), idx);
    idx = binary_s(LX_BINARY_MAXIMUM, idx, 0.0);
    return binary_s(LX_BINARY_MINIMUM, idx, (double)(d > 0 ? d - 1 : 0));
}

/* a[..., idx[p], ...] along axis for every position p of idx, a of idx's shape except on the
 * axis: one TAKE from a flattened by the row-major position of each element. Both consumed. */
static lx_node *gather_along(lx_node *a, lx_node *idx, int axis) {
    lx_node *in[2] = {a, idx};
    if (any_null(in, 2)) return NULL;
    int nd = a->ndim;
    int64_t stride[LX_MAX_NDIM], st = 1;
    for (int i = nd - 1; i >= 0; i--) {
        stride[i] = st;
        st *= a->shape[i];
    }
    lx_node *pos = binary_s(LX_BINARY_MUL, clamp_index(idx, a->shape[axis]), (double)stride[axis]);
    for (int i = 0; i < nd; i++)
        if (i != axis && a->shape[i] > 1)
            pos = binary(LX_BINARY_ADD, pos,
                         arange_along(a->shape[i], 0, (double)stride[i], LX_INT64, i, nd));
    lx_node *flat = reshape(a, (int[]){(int)st}, 1);
    return take(flat, pos, 0);
}

static lx_node *fb_take_along(const lx_node *n) {
    const lx_take_params *p = n->params;
    return gather_along(input(n, 0), input(n, 1), p->axis);
}

/* a with values[p] written at idx[p] along the axis; writes outside the axis are skipped and of
 * several writes to one element the last wins. Built on the axis moved last: each element j
 * takes the last i with idx[..., i] == j ([..., n, d] comparisons), else keeps a's value. */
static lx_node *fb_put_along(const lx_node *n) {
    const lx_take_params *p = n->params;
    const lx_node *a0 = n->inputs[0], *i0 = n->inputs[1];
    int nd = n->ndim, ax = p->axis, d = a0->shape[ax], m = i0->shape[ax];
    for (int i = 0; i < nd; i++)
        if (i != ax && i0->shape[i] != a0->shape[i]) {
            lx_set_error(LX_E_UNSUPPORTED, "%s: PUT_ALONG fallback: indices %s broadcast beyond "
                         "the array %s", n->op, LX_SHAPE_STR(i0), LX_SHAPE_STR(a0));
            return NULL;
        }
    int perm[LX_MAX_NDIM];
    for (int i = 0, k = 0; i < nd; i++)
        if (i != ax) perm[k++] = i;
    perm[nd - 1] = ax;
    lx_node *a = permute(input(n, 0), perm);
    lx_node *idx = permute(input(n, 1), perm);
    lx_node *val = permute(input(n, 2), perm);
    /* idx as int64, negative counting from the end; still outside [0, d): matches nothing */
    idx = cast(idx, LX_INT64);
    idx = where(binary_s(LX_BINARY_LESS, dup(idx), 0.0), binary_s(LX_BINARY_ADD, dup(idx), (double)d), idx);
    int sh[LX_MAX_NDIM + 1] = {0};
    if (idx) memcpy(sh, idx->shape, sizeof(int) * (size_t)nd);
    sh[nd] = 1;
    lx_node *eq = binary(LX_BINARY_EQUAL, reshape(idx, sh, nd + 1),                  /* [.., m, 1] */
                         arange_along(d, 0, 1, LX_INT64, nd, nd + 1));               /* [.., 1, d] */
    lx_node *who = where(eq, arange_along(m, 0, 1, LX_INT64, nd - 1, nd + 1), scalar(-1, LX_INT64));
    who = reduce(LX_REDUCE_MAX, who, nd - 1, LX_INT64, false); /* [.., 1, d]: the last writer */
    if (who) {
        memcpy(sh, who->shape, sizeof(int) * (size_t)nd);
        sh[nd - 1] = d;
        who = reshape(who, sh, nd);
    }
    lx_node *has = binary_s(LX_BINARY_GREATER_EQUAL, dup(who), 0.0);
    lx_node *got = gather_along(val, who, nd - 1); /* -1 clamps to 0: masked off by `has` */
    lx_node *y = where(has, got, a);
    int inv[LX_MAX_NDIM];
    for (int i = 0; i < nd; i++) inv[perm[i]] = i;
    return permute(y, inv);
}

/* Inclusive scan by doubling (Hillis-Steele): after the step of shift s every element holds
 * op over the 2s elements ending at it. The first s elements combine with the identity (sum,
 * product) or with themselves (max, min: op(x, x) = x). */
static lx_node *fb_scan(const lx_node *n) {
    const lx_scan_params *p = n->params;
    lx_dtype t = (lx_dtype)n->dtype, ct = is_half(t) ? LX_FLOAT32 : t;
    int ax = p->axis, len = n->shape[ax];
    static const int bop[] = {[LX_SCAN_SUM] = LX_BINARY_ADD, [LX_SCAN_PROD] = LX_BINARY_MUL,
                              [LX_SCAN_MAX] = LX_BINARY_MAXIMUM, [LX_SCAN_MIN] = LX_BINARY_MINIMUM};
    lx_node *x = cast(input(n, 0), ct);
    for (int s = 1; s < len && x; s *= 2) {
        lx_node *head;
        if (p->op == LX_SCAN_SUM || p->op == LX_SCAN_PROD) {
            int sh[LX_MAX_NDIM];
            memcpy(sh, x->shape, sizeof(int) * (size_t)x->ndim);
            sh[ax] = s;
            head = full(sh, x->ndim, p->op == LX_SCAN_SUM ? 0.0 : 1.0, ct);
        } else {
            head = slice_axis(dup(x), ax, 0, s, 1);
        }
        lx_node *parts[2] = {head, slice_axis(dup(x), ax, 0, len - s, 1)};
        x = binary(bop[p->op], x, concat(parts, 2, ax));
    }
    return cast(x, t);
}

/* ---- fused ---------------------------------------------------------------------------------- */

lx_node *lx_fused_output_fallback(const lx_node *n, int j) {
    const lx_fused_header *h = n->params;
    const lx_fused_instr *code = lx_fused_code(h);
    if (n->prim != LX_PRIM_FUSED || j < 0 || j >= h->n_out) {
        lx_set_error(LX_E_INTERNAL, "%s: no output %d of this FUSED node", n->op, j);
        return NULL;
    }
    const char *saved = tl_op;
    tl_op = n->op;
    lx_node *reg[256] = {NULL};
    lx_node *result = NULL;
    bool ok = true;
    for (int i = 0; ok && i < h->n_instr; i++) {
        const lx_fused_instr *in = &code[i];
        lx_node *r = NULL;
        switch (in->op) {
        case LX_FOP_LOAD: r = lx_node_broadcast(OP, input(n, in->a), h->shape, h->ndim); break;
        case LX_FOP_CONST: r = full(h->shape, h->ndim, in->imm, (lx_dtype)in->dtype); break;
        case LX_FOP_UNARY: r = unary(in->sub, dup(reg[in->a])); break;
        case LX_FOP_BINARY: r = binary(in->sub, dup(reg[in->a]), dup(reg[in->b])); break;
        case LX_FOP_WHERE: r = where(dup(reg[in->a]), dup(reg[in->b]), dup(reg[in->c])); break;
        case LX_FOP_CAST: r = cast(dup(reg[in->a]), (lx_dtype)in->dtype); break;
        case LX_FOP_STORE:
            if (in->b == j && !result) result = cast(dup(reg[in->a]), (lx_dtype)h->out_dtype[j]);
            continue;
        default:
            lx_set_error(LX_E_INTERNAL, "%s: FUSED instruction %d has op %d", n->op, i, in->op);
            ok = false;
            continue;
        }
        if (!r) ok = false;
        if (reg[in->dst]) lx_node_release(reg[in->dst]);
        reg[in->dst] = r;
    }
    for (int i = 0; i < 256; i++)
        if (reg[i]) lx_node_release(reg[i]);
    if (!ok && result) {
        lx_node_release(result);
        result = NULL;
    }
    if (ok && !result) lx_set_error(LX_E_INTERNAL, "%s: FUSED program stores no output %d", n->op, j);
    tl_op = saved;
    return result;
}

static lx_node *fb_fused(const lx_node *n) {
    const lx_fused_header *h = n->params;
    if (h->n_out != 1) { /* a byte buffer of outputs: each PART view has its own fallback */
        lx_set_error(LX_E_UNSUPPORTED, "%s: a FUSED node of %d outputs has no single fallback "
                     "(lx_fused_output_fallback rebuilds each)", n->op, h->n_out);
        return NULL;
    }
    return lx_fused_output_fallback(n, 0);
}

/* ---- the table ------------------------------------------------------------------------------ */

typedef lx_node *(*fallback_fn)(const lx_node *n);

static const fallback_fn fallbacks[LX_PRIM_COUNT] = {
    [LX_PRIM_RMS_NORM] = fb_rms_norm,
    [LX_PRIM_LAYER_NORM] = fb_layer_norm,
    [LX_PRIM_SOFTMAX] = fb_softmax,
    [LX_PRIM_ARG_REDUCE] = fb_arg_reduce,
    [LX_PRIM_ROPE] = fb_rope,
    [LX_PRIM_SDPA] = fb_sdpa,
    [LX_PRIM_DEQUANTIZE] = fb_dequantize,
    [LX_PRIM_QUANTIZED_MATMUL] = fb_quantized_matmul,
    [LX_PRIM_GATHER_MM] = fb_gather_mm,
    [LX_PRIM_TAKE_ALONG] = fb_take_along,
    [LX_PRIM_PUT_ALONG] = fb_put_along,
    [LX_PRIM_SCAN] = fb_scan,
    [LX_PRIM_FUSED] = fb_fused,
};

bool lx_prim_has_fallback(int prim) {
    return prim >= 0 && prim < LX_PRIM_COUNT && fallbacks[prim] != NULL;
}

/* MATMUL's mixed form (a float32 a times a half b, graph/prims.h) on a backend without it: b
 * converted, then the one-dtype product. (The one-dtype form is core: it has none.) */
static bool is_mixed_matmul(const lx_node *n) {
    return n->prim == LX_PRIM_MATMUL && n->n_inputs >= 2 && n->inputs[1]->dtype != n->dtype;
}
static lx_node *fb_matmul_mixed(const lx_node *n) {
    lx_node *in[3] = {input(n, 0), cast(input(n, 1), (lx_dtype)n->dtype),
                      n->n_inputs > 2 ? input(n, 2) : NULL};
    int k = n->n_inputs > 2 ? 3 : 2;
    if (any_null(in, k)) return NULL;
    return lx_build(OP, LX_PRIM_MATMUL, (lx_dtype)n->dtype, n->shape, n->ndim, in, k, n->params,
                    n->params_size);
}

lx_node *lx_prim_fallback(const lx_node *n) {
    bool mixed_mm = is_mixed_matmul(n);
    if (!mixed_mm && !lx_prim_has_fallback(n->prim)) return NULL;
    const char *saved = tl_op;
    tl_op = n->op;
    lx_node *r = mixed_mm ? fb_matmul_mixed(n) : fallbacks[n->prim](n);
    tl_op = saved;
    if (!r) {
        if (lx_error() == LX_OK)
            lx_set_error(LX_E_INTERNAL, "%s: the %s fallback failed", n->op, lx_prim_name(n->prim));
        return NULL;
    }
    if (r->dtype != n->dtype || r->ndim != n->ndim ||
        memcmp(r->shape, n->shape, sizeof(int32_t) * n->ndim) != 0) {
        lx_set_error(LX_E_INTERNAL, "%s: the %s fallback built %s %s for %s %s", n->op,
                     lx_prim_name(n->prim), lx_dtype_name((lx_dtype)r->dtype), LX_SHAPE_STR(r),
                     lx_dtype_name((lx_dtype)n->dtype), LX_SHAPE_STR(n));
        lx_node_release(r);
        return NULL;
    }
    return r;
}
