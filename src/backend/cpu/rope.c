/*
 * rope.c -- ROPE on the CPU: rotary position embeddings as MLX's fast.rope.
 *
 * x [..., L, D] (any strides): the row at index p of axis -2 has position offset + p. For pair
 * i < dims/2 the angle is scale * position * inv_freq_i, inv_freq_i = base^(-2i/dims) (or
 * 1/freqs[i]); non-traditional pairs are (i, i + dims/2), traditional pairs (2i, 2i + 1):
 *     a' = a cos - b sin,   b' = a sin + b cos;
 * features from dims on pass through. Angles and their cosines/sines are computed in float64
 * (positions reach 10^5 and more, where a float32 angle is off by 10^-2 radians), once per
 * position and shared by every row at that position; the rotation runs in float32 (float64
 * for float64 inputs). An offset input (has_offset) is read here, at run time, so a compiled
 * trace replays with each call's position.
 */
#ifndef LX_NN_TEMPLATE_PASS

#include <stdatomic.h>

#include "backend/cpu/move.h"
#include "backend/cpu/nn_util.h"
#include "graph/prims_nn.h"

#define LX_NN_TEMPLATE_PASS
#define CT float
#define SFX(name) name##_f32
#include "backend/cpu/rope.c"
#undef CT
#undef SFX
#define CT double
#define SFX(name) name##_f64
#include "backend/cpu/rope.c"
#undef CT
#undef SFX
#undef LX_NN_TEMPLATE_PASS

lx_status LX_CPU_KERNEL(ROPE)(lx_kctx *kctx, lx_node *out) {
    if (out->size == 0) return LX_OK;
    return lx_nn_is_f64((lx_dtype)out->dtype) ? rope_f64(kctx, out) : rope_f32(kctx, out);
}

#else /* ---- template body ---- */

typedef struct {
    const lx_node *out, *x;
    const lx_rope_params *p;
    const double *inv_freq; /* [dims/2] */
    double offset;          /* exact below 2^53 (int offsets and any real position) */
    int64_t outer, len, d;
    lx_task_scratch *ts; /* d + dims values per task */
    _Atomic int failed;
} SFX(rope_ctx);

static void SFX(rope_positions)(void *vctx, int64_t begin, int64_t end) {
    SFX(rope_ctx) *c = vctx;
    const lx_rope_params *p = c->p;
    const lx_node *x = c->x;
    lx_dtype t = (lx_dtype)x->dtype;
    size_t esz = lx_dtype_size(t);
    int64_t d = c->d, half = p->dims / 2, L = c->len;
    int nd = x->ndim - 1;
    int64_t xs = x->strides[nd];
    int slot;
    CT *buf = lx_task_scratch_take(c->ts, &slot);
    if (!buf) {
        atomic_store(&c->failed, 1);
        return;
    }
    CT *cs = buf + d, *sn = cs + half;
    char *op = lx_node_ptr(c->out);
    for (int64_t pi = begin; pi < end; pi++) {
        double pos = (c->offset + (double)pi) * (double)p->scale;
        for (int64_t i = 0; i < half; i++) {
            double a = pos * c->inv_freq[i];
            cs[i] = (CT)cos(a);
            sn[i] = (CT)sin(a);
        }
        for (int64_t o = 0; o < c->outer; o++) {
            int64_t row = o * L + pi;
            SFX(lx_nn_load)(buf, lx_nn_elem(x, lx_nn_offset(x, nd, row)), t, xs, d);
            if (p->traditional) {
                for (int64_t i = 0; i < half; i++) {
                    CT a = buf[2 * i], b = buf[2 * i + 1];
                    buf[2 * i] = a * cs[i] - b * sn[i];
                    buf[2 * i + 1] = a * sn[i] + b * cs[i];
                }
            } else {
                for (int64_t i = 0; i < half; i++) {
                    CT a = buf[i], b = buf[i + half];
                    buf[i] = a * cs[i] - b * sn[i];
                    buf[i + half] = a * sn[i] + b * cs[i];
                }
            }
            SFX(lx_nn_store)(op + (size_t)(row * d) * esz, t, buf, d);
        }
    }
    lx_task_scratch_give(c->ts, slot);
}

static lx_status SFX(rope)(lx_kctx *kctx, lx_node *out) {
    const lx_rope_params *p = out->params;
    SFX(rope_ctx) c = {.out = out, .x = out->inputs[0], .p = p};
    int nd = out->ndim;
    c.d = out->shape[nd - 1];
    c.len = out->shape[nd - 2];
    c.outer = out->size / (c.d * c.len);
    int64_t half = p->dims / 2;
    double *inv = lx_kernel_scratch(kctx, sizeof(double) * (size_t)(half ? half : 1));
    if (!inv) return LX_NN_OOM(out->op);
    if (p->has_freqs) {
        const lx_node *f = out->inputs[1]; /* float32 [half] */
        const float *fp = lx_node_ptr(f);
        for (int64_t i = 0; i < half; i++) inv[i] = 1.0 / (double)fp[i * f->strides[0]];
    } else {
        double lb = log((double)p->base);
        for (int64_t i = 0; i < half; i++) inv[i] = exp(-(double)i * lb / (double)half);
    }
    c.inv_freq = inv;
    c.offset = (double)p->offset;
    if (p->has_offset) {
        const lx_node *o = out->inputs[p->has_freqs ? 2 : 1]; /* one integer element */
        c.offset = (double)lx_mv_load_index(lx_node_ptr(o), (lx_dtype)o->dtype);
    }
    atomic_init(&c.failed, 0);
    int64_t per = c.outer * c.d, grain = 16384 / (per + 1) + 1;
    lx_task_scratch ts;
    if (!lx_task_scratch_init(&ts, kctx, sizeof(CT) * (size_t)(c.d + 2 * half), c.len, grain))
        return LX_NN_OOM(out->op);
    c.ts = &ts;
    lx_parallel_for(c.len, grain, SFX(rope_positions), &c);
    if (atomic_load(&c.failed)) return LX_NN_OOM(out->op);
    return LX_OK;
}

#endif
