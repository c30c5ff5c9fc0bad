/*
 * softmax.c -- SOFTMAX (and log-softmax) along one axis on the CPU.
 *
 * Each row along the axis: m = max (NaN propagates), s = sum exp(x - m) in float32 lanes over
 * blocks added in float64, then exp(x - m) * (1/s), or (x - m) - log(s) for log-softmax.
 * float16/bfloat16 rows are computed in float32 and rounded once at the end; float64 rows in
 * float64. A contiguous float32 row is processed in place (exp written to the output, then
 * scaled); other rows are converted chunk by chunk (exp recomputed in the last pass), so no
 * scratch of the row's size is needed.
 */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/rowconv.h"

typedef struct {
    const char *in;
    char *out;
    lx_dtype t;
    size_t esz;
    bool log;
    int64_t len, istride, ostride; /* along the axis */
    int nd;                        /* the other dims, merged */
    int64_t shape[LX_MAX_NDIM], is[LX_MAX_NDIM], os[LX_MAX_NDIM];
} smctx;

/* Softmax of n contiguous floats x into y (x == y allowed). */
static void softmax_f32(const float *x, float *y, int64_t n, bool log_out) {
    float m = lx_row_max_f32(x, n);
    double total = 0.0;
    for (int64_t b = 0; b < n; b += LX_ROW_BLOCK) {
        int64_t len = n - b < LX_ROW_BLOCK ? n - b : LX_ROW_BLOCK;
        const float *p = x + b;
        float *q = y + b;
        float acc[LX_ROW_LANES] = {0};
        int64_t j = 0;
        if (log_out) {
            for (; j + LX_ROW_LANES <= len; j += LX_ROW_LANES)
                for (int k = 0; k < LX_ROW_LANES; k++) acc[k] += lx_ew_exp_f(p[j + k] - m);
            for (int k = 0; j + k < len; k++) acc[k] += lx_ew_exp_f(p[j + k] - m);
        } else {
            for (; j + LX_ROW_LANES <= len; j += LX_ROW_LANES)
                for (int k = 0; k < LX_ROW_LANES; k++) {
                    float e = lx_ew_exp_f(p[j + k] - m);
                    q[j + k] = e;
                    acc[k] += e;
                }
            for (int k = 0; j + k < len; k++) {
                float e = lx_ew_exp_f(p[j + k] - m);
                q[j + k] = e;
                acc[k] += e;
            }
        }
        for (int w = LX_ROW_LANES / 2; w > 0; w /= 2)
            for (int k = 0; k < w; k++) acc[k] += acc[k + w];
        total += acc[0];
    }
    if (log_out) {
        float ls = (float)log(total);
        for (int64_t j = 0; j < n; j++) y[j] = (x[j] - m) - ls;
    } else {
        float inv = (float)(1.0 / total);
        for (int64_t j = 0; j < n; j++) y[j] *= inv;
    }
}

#define SM_CHUNK 1024

/* A strided row of float64 values, in chunks (no scratch the size of the row). */
static void softmax_row_f64(const double *x, int64_t is, double *y, int64_t os, int64_t n,
                            bool log_out) {
    double m = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        double v = x[j * is];
        if (isnan(v)) { m = NAN; break; }
        if (v > m) m = v;
    }
    double s = 0.0;
    for (int64_t j = 0; j < n; j++) s += exp(x[j * is] - m);
    double ls = log(s), inv = 1.0 / s;
    for (int64_t j = 0; j < n; j++) {
        double d = x[j * is] - m;
        y[j * os] = log_out ? d - ls : exp(d) * inv;
    }
}

/* A strided row of any float dtype, computed in float32 chunk by chunk: max, sum of exp, then
 * the outputs (exp is recomputed rather than kept in a row-sized scratch). */
static void softmax_row_f32(const char *x, int64_t is, char *y, int64_t os, lx_dtype t,
                            int64_t n, bool log_out) {
    _Alignas(64) float buf[SM_CHUNK];
    size_t esz = lx_dtype_size(t);
    float m = -INFINITY;
    for (int64_t q = 0; q < n; q += SM_CHUNK) {
        int64_t len = n - q < SM_CHUNK ? n - q : SM_CHUNK;
        lx_row_load_f32(buf, x + q * is * (int64_t)esz, t, is, len);
        float mq = lx_row_max_f32(buf, len);
        if (isnan(mq) || isnan(m)) m = NAN;
        else if (mq > m) m = mq;
    }
    double total = 0.0;
    for (int64_t q = 0; q < n; q += SM_CHUNK) {
        int64_t len = n - q < SM_CHUNK ? n - q : SM_CHUNK;
        lx_row_load_f32(buf, x + q * is * (int64_t)esz, t, is, len);
        for (int64_t b = 0; b < len; b += LX_ROW_BLOCK) {
            int64_t bl = len - b < LX_ROW_BLOCK ? len - b : LX_ROW_BLOCK;
            const float *p = buf + b;
            float acc[LX_ROW_LANES] = {0};
            int64_t j = 0;
            for (; j + LX_ROW_LANES <= bl; j += LX_ROW_LANES)
                for (int k = 0; k < LX_ROW_LANES; k++) acc[k] += lx_ew_exp_f(p[j + k] - m);
            for (int k = 0; j + k < bl; k++) acc[k] += lx_ew_exp_f(p[j + k] - m);
            for (int w = LX_ROW_LANES / 2; w > 0; w /= 2)
                for (int k = 0; k < w; k++) acc[k] += acc[k + w];
            total += acc[0];
        }
    }
    float ls = (float)log(total), inv = (float)(1.0 / total);
    for (int64_t q = 0; q < n; q += SM_CHUNK) {
        int64_t len = n - q < SM_CHUNK ? n - q : SM_CHUNK;
        lx_row_load_f32(buf, x + q * is * (int64_t)esz, t, is, len);
        if (log_out)
            for (int64_t j = 0; j < len; j++) buf[j] = (buf[j] - m) - ls;
        else
            for (int64_t j = 0; j < len; j++) buf[j] = lx_ew_exp_f(buf[j] - m) * inv;
        lx_row_store_f32(y + q * os * (int64_t)esz, t, os, buf, len);
    }
}

static void softmax_rows(void *ctx, int64_t b, int64_t e) {
    const smctx *c = ctx;
    bool direct = c->t == LX_FLOAT32 && c->istride == 1 && c->ostride == 1;
    for (int64_t r = b; r < e; r++) {
        int64_t ioff = 0, ooff = 0, rem = r;
        for (int d = c->nd - 1; d >= 0; d--) {
            int64_t k = rem % c->shape[d];
            rem /= c->shape[d];
            ioff += k * c->is[d];
            ooff += k * c->os[d];
        }
        const char *src = c->in + ioff * (int64_t)c->esz;
        char *dst = c->out + ooff * (int64_t)c->esz;
        if (direct)
            softmax_f32((const float *)src, (float *)dst, c->len, c->log);
        else if (c->t == LX_FLOAT64)
            softmax_row_f64((const double *)src, c->istride, (double *)dst, c->ostride, c->len, c->log);
        else
            softmax_row_f32(src, c->istride, dst, c->ostride, c->t, c->len, c->log);
    }
}

lx_status LX_CPU_KERNEL(SOFTMAX)(lx_kctx *kctx, lx_node *out) {
    const lx_node *in = out->inputs[0];
    const lx_softmax_params *p = out->params;
    if (out->size == 0) return LX_OK;
    lx_dtype t = (lx_dtype)out->dtype;
    if (!lx_dtype_is_float(t) || in->dtype != out->dtype)
        return lx_set_error(LX_E_DTYPE, "%s: softmax of %s into %s", out->op,
                            lx_dtype_name((lx_dtype)in->dtype), lx_dtype_name(t));
    int axis = p->axis;
    smctx c;
    memset(&c, 0, sizeof c);
    c.in = lx_node_ptr(in);
    c.out = lx_node_ptr(out);
    c.t = t;
    c.esz = lx_dtype_size(t);
    c.log = p->log;
    c.len = in->shape[axis];
    c.istride = in->strides[axis];
    c.ostride = out->strides[axis];
    for (int i = 0; i < in->ndim; i++) {
        if (i == axis || in->shape[i] == 1) continue;
        int64_t d = in->shape[i];
        if (c.nd && c.is[c.nd - 1] == d * in->strides[i] && c.os[c.nd - 1] == d * out->strides[i]) {
            c.shape[c.nd - 1] *= d;
            c.is[c.nd - 1] = in->strides[i];
            c.os[c.nd - 1] = out->strides[i];
        } else {
            c.shape[c.nd] = d;
            c.is[c.nd] = in->strides[i];
            c.os[c.nd++] = out->strides[i];
        }
    }
    int64_t rows = out->size / c.len;
    lx_parallel_for(rows, c.len >= 16384 ? 1 : 16384 / c.len, softmax_rows, &c);
    return LX_OK;
}
