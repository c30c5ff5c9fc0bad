/*
 * layer_norm.c -- LAYER_NORM and GROUP_NORM on the CPU.
 *
 * Both compute in float32 for float16/bfloat16/float32 inputs and in float64 for float64
 * (the body below is instantiated once per compute type CT by including this file again),
 * with two passes per normalised set: the mean, then the mean squared deviation, so the
 * variance never suffers the cancellation of E[x^2] - E[x]^2. Each output element is rounded
 * to the node's dtype once: y = (x - mean) * rsqrt(var + eps) * w + b.
 *
 * LAYER_NORM normalises each row of the last axis (x may be strided); GROUP_NORM normalises,
 * for each batch index n and group g, all positions of the C/groups consecutive channels of g
 * (PyTorch's grouping; x row-contiguous, channels last), then applies the per-channel w, b.
 */
#ifndef LX_NN_TEMPLATE_PASS

#include <stdatomic.h>

#include "backend/cpu/nn_util.h"
#include "graph/prims_nn.h"

#define LX_NN_LANES 8

#define LX_NN_TEMPLATE_PASS
#define CT float
#define SFX(name) name##_f32
#define CT_SQRT sqrtf
#include "backend/cpu/layer_norm.c"
#undef CT
#undef SFX
#undef CT_SQRT
#define CT double
#define SFX(name) name##_f64
#define CT_SQRT sqrt
#include "backend/cpu/layer_norm.c"
#undef CT
#undef SFX
#undef CT_SQRT
#undef LX_NN_TEMPLATE_PASS

lx_status LX_CPU_KERNEL(LAYER_NORM)(lx_kctx *kctx, lx_node *out) {
    if (out->size == 0) return LX_OK;
    return lx_nn_is_f64((lx_dtype)out->dtype) ? layer_norm_f64(kctx, out)
                                               : layer_norm_f32(kctx, out);
}

lx_status LX_CPU_KERNEL(GROUP_NORM)(lx_kctx *kctx, lx_node *out) {
    if (out->size == 0) return LX_OK;
    return lx_nn_is_f64((lx_dtype)out->dtype) ? group_norm_f64(kctx, out)
                                               : group_norm_f32(kctx, out);
}

#else /* ---- template body: CT is the compute type, SFX(name) names its functions ---- */

/* Sum of x[0..n) with LX_NN_LANES independent accumulators (vectorisable). */
static CT SFX(ln_sum)(const CT *x, int64_t n) {
    CT acc[LX_NN_LANES] = {0};
    int64_t i = 0;
    for (; i + LX_NN_LANES <= n; i += LX_NN_LANES)
        for (int l = 0; l < LX_NN_LANES; l++) acc[l] += x[i + l];
    CT s = 0;
    for (; i < n; i++) s += x[i];
    for (int l = 0; l < LX_NN_LANES; l++) s += acc[l];
    return s;
}

/* Sum of (x[i] - mean)^2. */
static CT SFX(ln_sqdev)(const CT *x, int64_t n, CT mean) {
    CT acc[LX_NN_LANES] = {0};
    int64_t i = 0;
    for (; i + LX_NN_LANES <= n; i += LX_NN_LANES)
        for (int l = 0; l < LX_NN_LANES; l++) {
            CT d = x[i + l] - mean;
            acc[l] += d * d;
        }
    CT s = 0;
    for (; i < n; i++) s += (x[i] - mean) * (x[i] - mean);
    for (int l = 0; l < LX_NN_LANES; l++) s += acc[l];
    return s;
}

typedef struct {
    const lx_node *out, *x, *w, *b;
    const lx_layer_norm_params *p;
    int64_t d;
    lx_task_scratch *ts; /* 3 * d values per task */
    _Atomic int failed;
} SFX(ln_ctx);

static void SFX(ln_rows)(void *vctx, int64_t begin, int64_t end) {
    SFX(ln_ctx) *c = vctx;
    int64_t d = c->d;
    lx_dtype t = (lx_dtype)c->out->dtype;
    int slot;
    CT *buf = lx_task_scratch_take(c->ts, &slot);
    if (!buf) {
        atomic_store(&c->failed, 1);
        return;
    }
    CT *w = buf + d, *b = buf + 2 * d;
    for (int64_t j = 0; j < d; j++) w[j] = (CT)1, b[j] = (CT)0;
    if (c->w) SFX(lx_nn_load)(w, lx_node_ptr(c->w), t, c->w->strides[0], d);
    if (c->b) SFX(lx_nn_load)(b, lx_node_ptr(c->b), t, c->b->strides[0], d);
    const lx_node *x = c->x;
    int nd = x->ndim - 1;
    int64_t xs = x->strides[nd];
    size_t esz = lx_dtype_size(t);
    CT eps = (CT)c->p->eps;
    for (int64_t r = begin; r < end; r++) {
        SFX(lx_nn_load)(buf, lx_nn_elem(x, lx_nn_offset(x, nd, r)), t, xs, d);
        CT mean = SFX(ln_sum)(buf, d) / (CT)d;
        CT var = SFX(ln_sqdev)(buf, d, mean) / (CT)d;
        CT inv = (CT)1 / CT_SQRT(var + eps);
        for (int64_t j = 0; j < d; j++) buf[j] = (buf[j] - mean) * inv * w[j] + b[j];
        SFX(lx_nn_store)((char *)lx_node_ptr(c->out) + (size_t)(r * d) * esz, t, buf, d);
    }
    lx_task_scratch_give(c->ts, slot);
}

static lx_status SFX(layer_norm)(lx_kctx *kctx, lx_node *out) {
    const lx_layer_norm_params *p = out->params;
    SFX(ln_ctx) c = {.out = out, .x = out->inputs[0], .p = p};
    int k = 1;
    if (p->has_w) c.w = out->inputs[k++];
    if (p->has_b) c.b = out->inputs[k++];
    c.d = out->shape[out->ndim - 1];
    atomic_init(&c.failed, 0);
    int64_t rows = out->size / c.d;
    int64_t grain = 16384 / c.d + 1;
    lx_task_scratch ts;
    if (!lx_task_scratch_init(&ts, kctx, sizeof(CT) * (size_t)c.d * 3, rows, grain))
        return LX_NN_OOM(out->op);
    c.ts = &ts;
    lx_parallel_for(rows, grain, SFX(ln_rows), &c);
    if (atomic_load(&c.failed)) return LX_NN_OOM(out->op);
    return LX_OK;
}

typedef struct {
    const lx_node *out, *x, *w, *b;
    const lx_group_norm_params *p;
    int64_t spatial, channels, gsize;
    lx_task_scratch *ts; /* 3 * gsize values per task */
    _Atomic int failed;
} SFX(gn_ctx);

/* One task per (n, g): statistics in CT over spatial * gsize values, two passes. */
static void SFX(gn_tasks)(void *vctx, int64_t begin, int64_t end) {
    SFX(gn_ctx) *c = vctx;
    lx_dtype t = (lx_dtype)c->out->dtype;
    size_t esz = lx_dtype_size(t);
    int64_t gs = c->gsize, C = c->channels, S = c->spatial, G = c->p->groups;
    int slot;
    CT *buf = lx_task_scratch_take(c->ts, &slot);
    if (!buf) {
        atomic_store(&c->failed, 1);
        return;
    }
    CT *w = buf + gs, *b = buf + 2 * gs;
    const char *xp = lx_node_ptr(c->x);
    char *op = lx_node_ptr(c->out);
    for (int64_t task = begin; task < end; task++) {
        int64_t n = task / G, g = task % G;
        int64_t base = n * S * C + g * gs; /* element offset of (n, 0, g*gs) */
        for (int64_t j = 0; j < gs; j++) w[j] = (CT)1, b[j] = (CT)0;
        if (c->w) SFX(lx_nn_load)(w, lx_nn_elem(c->w, g * gs * c->w->strides[0]), t,
                                  c->w->strides[0], gs);
        if (c->b) SFX(lx_nn_load)(b, lx_nn_elem(c->b, g * gs * c->b->strides[0]), t,
                                  c->b->strides[0], gs);
        /* float64 accumulation across positions: a group can hold millions of values */
        double sum = 0.0;
        for (int64_t s = 0; s < S; s++) {
            SFX(lx_nn_load)(buf, xp + (size_t)(base + s * C) * esz, t, 1, gs);
            sum += (double)SFX(ln_sum)(buf, gs);
        }
        double count = (double)S * (double)gs;
        CT mean = (CT)(sum / count);
        double sq = 0.0;
        for (int64_t s = 0; s < S; s++) {
            SFX(lx_nn_load)(buf, xp + (size_t)(base + s * C) * esz, t, 1, gs);
            sq += (double)SFX(ln_sqdev)(buf, gs, mean);
        }
        CT inv = (CT)(1.0 / sqrt(sq / count + (double)(CT)c->p->eps));
        for (int64_t s = 0; s < S; s++) {
            SFX(lx_nn_load)(buf, xp + (size_t)(base + s * C) * esz, t, 1, gs);
            for (int64_t j = 0; j < gs; j++) buf[j] = (buf[j] - mean) * inv * w[j] + b[j];
            SFX(lx_nn_store)(op + (size_t)(base + s * C) * esz, t, buf, gs);
        }
    }
    lx_task_scratch_give(c->ts, slot);
}

static lx_status SFX(group_norm)(lx_kctx *kctx, lx_node *out) {
    const lx_group_norm_params *p = out->params;
    SFX(gn_ctx) c = {.out = out, .x = out->inputs[0], .p = p};
    int k = 1;
    if (p->has_w) c.w = out->inputs[k++];
    if (p->has_b) c.b = out->inputs[k++];
    if (!lx_node_is_row_contiguous(c.x))
        return lx_set_error(LX_E_INTERNAL, "%s: GROUP_NORM input is not row-contiguous", out->op);
    c.channels = out->shape[out->ndim - 1];
    c.gsize = c.channels / p->groups;
    c.spatial = out->size / ((int64_t)out->shape[0] * c.channels);
    atomic_init(&c.failed, 0);
    int64_t tasks = (int64_t)out->shape[0] * p->groups;
    int64_t per = c.spatial * c.gsize;
    int64_t grain = per >= 8192 ? 1 : 8192 / (per + 1) + 1;
    lx_task_scratch ts;
    if (!lx_task_scratch_init(&ts, kctx, sizeof(CT) * (size_t)c.gsize * 3, tasks, grain))
        return LX_NN_OOM(out->op);
    c.ts = &ts;
    lx_parallel_for(tasks, grain, SFX(gn_tasks), &c);
    if (atomic_load(&c.failed)) return LX_NN_OOM(out->op);
    return LX_OK;
}

#endif
