/*
 * norm.c -- RMS_NORM on the CPU: y = x * rsqrt(mean(x^2) + eps) * w over the last axis.
 *
 * As MLX's fast.rms_norm: computed in float32 (float64 for float64 input), the normalized
 * value is rounded to the output dtype before the multiplication by w (which is rounded
 * again), so float16/bfloat16 results match MLX's `(x * r).astype(t) * w`. The sum of squares
 * is the blocked float32 sum of rowconv.h (float64 between blocks).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/rowconv.h"

#define NORM_CHUNK 1024

typedef struct {
    const char *x;
    const char *w;    /* NULL: no weight */
    const float *wf;  /* w converted to float32 (half and float32 outputs) */
    char *out;
    lx_dtype t;
    size_t esz;
    float eps;
    int64_t n, xs, ws; /* row length, x's and w's stride along it */
    int nd;
    int64_t shape[LX_MAX_NDIM], is[LX_MAX_NDIM];
} normctx;

static float round_to(float v, lx_dtype t) {
    if (t == LX_FLOAT16) return lx_f16_to_f32(lx_f32_to_f16(v));
    if (t == LX_BFLOAT16) return lx_bf16_to_f32(lx_f32_to_bf16(v));
    return v;
}

static void norm_rows(void *ctx, int64_t b, int64_t e) {
    const normctx *c = ctx;
    _Alignas(64) float buf[NORM_CHUNK];
    for (int64_t r = b; r < e; r++) {
        int64_t ioff = 0, rem = r;
        for (int d = c->nd - 1; d >= 0; d--) {
            ioff += (rem % c->shape[d]) * c->is[d];
            rem /= c->shape[d];
        }
        const char *x = c->x + ioff * (int64_t)c->esz;
        char *y = c->out + r * c->n * (int64_t)c->esz;
        if (c->t == LX_FLOAT64) {
            const double *xd = (const double *)x;
            double ss = 0.0;
            for (int64_t j = 0; j < c->n; j++) ss += xd[j * c->xs] * xd[j * c->xs];
            double inv = 1.0 / sqrt(ss / (double)c->n + (double)c->eps);
            for (int64_t j = 0; j < c->n; j++) {
                double v = xd[j * c->xs] * inv;
                if (c->w) v *= ((const double *)c->w)[j * c->ws];
                ((double *)y)[j] = v;
            }
            continue;
        }
        double ss = 0.0;
        if (c->t == LX_FLOAT32 && c->xs == 1) {
            ss = lx_row_sumsq_f32((const float *)x, c->n);
        } else {
            for (int64_t q = 0; q < c->n; q += NORM_CHUNK) {
                int64_t len = c->n - q < NORM_CHUNK ? c->n - q : NORM_CHUNK;
                lx_row_load_f32(buf, x + q * c->xs * (int64_t)c->esz, c->t, c->xs, len);
                ss += lx_row_sumsq_f32(buf, len);
            }
        }
        float inv = (float)(1.0 / sqrt(ss / (double)c->n + (double)c->eps));
        if (c->t == LX_FLOAT32 && c->xs == 1) {
            const float *xf = (const float *)x;
            float *yf = (float *)y;
            if (c->wf)
                for (int64_t j = 0; j < c->n; j++) yf[j] = (xf[j] * inv) * c->wf[j];
            else
                for (int64_t j = 0; j < c->n; j++) yf[j] = xf[j] * inv;
            continue;
        }
        for (int64_t q = 0; q < c->n; q += NORM_CHUNK) {
            int64_t len = c->n - q < NORM_CHUNK ? c->n - q : NORM_CHUNK;
            lx_row_load_f32(buf, x + q * c->xs * (int64_t)c->esz, c->t, c->xs, len);
            if (c->wf)
                for (int64_t j = 0; j < len; j++) buf[j] = round_to(buf[j] * inv, c->t) * c->wf[q + j];
            else
                for (int64_t j = 0; j < len; j++) buf[j] *= inv;
            lx_row_store_f32(y + q * (int64_t)c->esz, c->t, 1, buf, len);
        }
    }
}

lx_status LX_CPU_KERNEL(RMS_NORM)(lx_kctx *kctx, lx_node *out) {
    const lx_node *x = out->inputs[0];
    const lx_node *w = out->n_inputs > 1 ? out->inputs[1] : NULL;
    const lx_norm_params *p = out->params;
    if (out->size == 0) return LX_OK;
    lx_dtype t = (lx_dtype)out->dtype;
    if (!lx_dtype_is_float(t) || x->dtype != t || (w && w->dtype != t))
        return lx_set_error(LX_E_DTYPE, "%s: rms_norm kernel needs x and w of the output dtype",
                            out->op);
    normctx c;
    memset(&c, 0, sizeof c);
    c.x = lx_node_ptr(x);
    c.out = lx_node_ptr(out);
    c.t = t;
    c.esz = lx_dtype_size(t);
    c.eps = p->eps;
    c.n = x->shape[x->ndim - 1];
    c.xs = x->strides[x->ndim - 1];
    for (int i = 0; i < x->ndim - 1; i++) {
        int64_t d = x->shape[i];
        if (d == 1) continue;
        if (c.nd && c.is[c.nd - 1] == d * x->strides[i]) {
            c.shape[c.nd - 1] *= d;
            c.is[c.nd - 1] = x->strides[i];
        } else {
            c.shape[c.nd] = d;
            c.is[c.nd++] = x->strides[i];
        }
    }
    float *wf = NULL;
    if (w) {
        c.w = lx_node_ptr(w);
        c.ws = w->strides[w->ndim - 1];
        if (t != LX_FLOAT64) {
            wf = lx_kernel_scratch(kctx, (size_t)c.n * sizeof(float));
            if (!wf) return lx_set_error(LX_E_OOM, "%s: out of host memory", out->op);
            lx_row_load_f32(wf, c.w, t, c.ws, c.n);
            c.wf = wf;
        }
    }
    int64_t rows = out->size / c.n;
    lx_parallel_for(rows, c.n >= 16384 ? 1 : 16384 / c.n, norm_rows, &c);
    return LX_OK;
}
