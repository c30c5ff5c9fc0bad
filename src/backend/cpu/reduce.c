/*
 * reduce.c -- REDUCE (sum, prod, max, min, all, any, logsumexp over a set of axes) and
 * ARG_REDUCE (argmax, argmin along one axis) on the CPU.
 *
 * Layout: the input's dims are split into kept dims (in output order) and reduced dims;
 * size-1 dims are dropped, adjacent kept dims merge when their strides allow, and reduced dims
 * are sorted by stride (smallest innermost) and merged, so a reduction over a contiguous block
 * becomes one long contiguous run. Two loops then cover every case:
 *   - per output: each output walks its reduced elements as runs along the innermost reduced
 *     dim, converted chunk by chunk to an accumulation type (float32 for float16/bfloat16/
 *     float32, float64, int64 or uint64); contiguous float32 runs are summed in place with the
 *     vectorized blocked sum of rowconv.h. Few outputs over many elements are split into fixed
 *     segments (independent of the thread count) whose partials are combined in order;
 *   - rows: when the innermost kept dim is contiguous and the reduced dims are not, whole rows
 *     are accumulated into a vector of outputs (sum/prod in float64 for floats).
 *
 * Accuracy (float inputs): a SUM is exact to within 37 * 2^-24 * sum|x| for float32 and half
 * inputs (blocked float32 lanes, float64 between blocks) or n * 2^-53 * sum|x| in the row
 * loop, plus the final rounding to the output dtype. Integers accumulate in 64 bits with
 * wrap-around and are narrowed to the output dtype (MLX's int32 sums wrap the same way).
 * MAX/MIN propagate NaN; ALL/ANY count NaN as true.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/rowconv.h"

enum { K_F32, K_F64, K_I64, K_U64 };

#define CHUNK 1024      /* elements converted at a time (per-output loop) */
#define ROW_W 256       /* outputs per task in the row loop */
#define SEG (1 << 15)   /* elements per segment when few outputs reduce many elements */

static int natural_kind(lx_dtype t) {
    switch (t) {
    case LX_FLOAT16: case LX_BFLOAT16: case LX_FLOAT32: return K_F32;
    case LX_FLOAT64: return K_F64;
    case LX_INT8: case LX_INT16: case LX_INT32: case LX_INT64: return K_I64;
    default: return K_U64; /* bool and unsigned */
    }
}

/* Integer value i of a run as int64 / uint64 (wrap-around for uint64 -> int64 is not used). */
static inline int64_t get_i64(const void *p, lx_dtype t, int64_t i) {
    switch (t) {
    case LX_INT8: return ((const int8_t *)p)[i];
    case LX_INT16: return ((const int16_t *)p)[i];
    case LX_INT32: return ((const int32_t *)p)[i];
    default: return ((const int64_t *)p)[i];
    }
}
static inline uint64_t get_u64(const void *p, lx_dtype t, int64_t i) {
    switch (t) {
    case LX_BOOL: return ((const bool *)p)[i] ? 1u : 0u;
    case LX_UINT8: return ((const uint8_t *)p)[i];
    case LX_UINT16: return ((const uint16_t *)p)[i];
    case LX_UINT32: return ((const uint32_t *)p)[i];
    default: return ((const uint64_t *)p)[i];
    }
}

/* n elements of dtype t at src (element stride) as a contiguous run of `kind`: src itself when
 * it already is one, else converted into buf (CHUNK * 8 bytes). */
static const void *load_kind(void *buf, int kind, const void *src, lx_dtype t, int64_t stride,
                             int64_t n) {
    switch (kind) {
    case K_F32:
        if (t == LX_FLOAT32 && stride == 1) return src;
        lx_row_load_f32(buf, src, t, stride, n);
        return buf;
    case K_F64: {
        if (t == LX_FLOAT64 && stride == 1) return src;
        double *d = buf;
        for (int64_t i = 0; i < n; i++) d[i] = lx_row_get_f64(src, t, i * stride);
        return buf;
    }
    case K_I64: {
        if (t == LX_INT64 && stride == 1) return src;
        int64_t *d = buf;
        for (int64_t i = 0; i < n; i++) d[i] = get_i64(src, t, i * stride);
        return buf;
    }
    default: {
        if (t == LX_UINT64 && stride == 1) return src;
        uint64_t *d = buf;
        for (int64_t i = 0; i < n; i++) d[i] = get_u64(src, t, i * stride);
        return buf;
    }
    }
}

/* ---- layout ---------------------------------------------------------------------------- */

typedef struct {
    int nk, nr;
    int64_t kshape[LX_MAX_NDIM], kstride[LX_MAX_NDIM]; /* kept dims, output order */
    int64_t rshape[LX_MAX_NDIM], rstride[LX_MAX_NDIM]; /* reduced dims, innermost last */
    int64_t n_out, n_red;
} rlayout;

static int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

static void make_layout(const lx_node *in, const bool *reduced, bool sort_reduced, rlayout *L) {
    L->nk = L->nr = 0;
    L->n_out = L->n_red = 1;
    for (int i = 0; i < in->ndim; i++) {
        int64_t d = in->shape[i], s = in->strides[i];
        if (reduced[i]) L->n_red *= d;
        else L->n_out *= d;
        if (d == 1) continue;
        if (reduced[i]) {
            L->rshape[L->nr] = d;
            L->rstride[L->nr++] = s;
        } else if (L->nk && L->kstride[L->nk - 1] == d * s) {
            L->kshape[L->nk - 1] *= d;
            L->kstride[L->nk - 1] = s;
        } else {
            L->kshape[L->nk] = d;
            L->kstride[L->nk++] = s;
        }
    }
    if (!sort_reduced) return;
    /* reduced dims by decreasing |stride| (insertion sort, stable), then merge */
    for (int i = 1; i < L->nr; i++) {
        int64_t d = L->rshape[i], s = L->rstride[i];
        int j = i;
        while (j > 0 && abs64(L->rstride[j - 1]) < abs64(s)) {
            L->rshape[j] = L->rshape[j - 1];
            L->rstride[j] = L->rstride[j - 1];
            j--;
        }
        L->rshape[j] = d;
        L->rstride[j] = s;
    }
    int m = 0;
    for (int i = 0; i < L->nr; i++) {
        if (m && L->rstride[m - 1] == L->rshape[i] * L->rstride[i]) {
            L->rshape[m - 1] *= L->rshape[i];
            L->rstride[m - 1] = L->rstride[i];
        } else {
            L->rshape[m] = L->rshape[i];
            L->rstride[m++] = L->rstride[i];
        }
    }
    L->nr = m;
}

/* Element offset of kept index o (row-major over the kept dims [0, nk)). */
static int64_t kept_offset(const int64_t *shape, const int64_t *stride, int nk, int64_t o) {
    int64_t off = 0;
    for (int d = nk - 1; d >= 0; d--) {
        off += (o % shape[d]) * stride[d];
        o /= shape[d];
    }
    return off;
}

/* ---- partial results ------------------------------------------------------------------- */

typedef struct {
    double d; /* float kinds: sum, product, max/min (NaN propagates), LSE max */
    double s; /* LSE: sum of exp(x - d) */
    int64_t i; /* K_I64 max/min */
    uint64_t u; /* integer sums/products (wrapping), K_U64 max/min, all/any */
} part;

static void part_init(part *p, int op) {
    p->d = p->s = 0.0;
    p->i = 0;
    p->u = 0;
    switch (op) {
    case LX_REDUCE_SUM: p->d = 0.0; p->u = 0; p->i = 0; break;
    case LX_REDUCE_PROD: p->d = 1.0; p->u = 1; p->i = 1; break;
    case LX_REDUCE_MAX: p->d = -INFINITY; p->i = INT64_MIN; p->u = 0; break;
    case LX_REDUCE_MIN: p->d = INFINITY; p->i = INT64_MAX; p->u = UINT64_MAX; break;
    case LX_REDUCE_ALL: p->u = 1; break;
    case LX_REDUCE_ANY: p->u = 0; break;
    default: p->d = -INFINITY; break; /* LOGSUMEXP */
    }
}

static void lse_add(part *p, double m, double s) {
    if (isnan(p->d) || isnan(m)) {
        p->d = NAN;
        return;
    }
    double M = p->d > m ? p->d : m;
    if (isinf(M)) { /* all -inf so far (sum stays 0), or +inf (the result) */
        p->d = M;
        p->s = 0.0;
        return;
    }
    p->s = p->s * exp(p->d - M) + s * exp(m - M);
    p->d = M;
}

static void part_combine(part *p, const part *q, int op, int kind) {
    switch (op) {
    case LX_REDUCE_SUM: p->d += q->d; p->u += q->u; break;
    case LX_REDUCE_PROD: p->d *= q->d; p->u *= q->u; break;
    case LX_REDUCE_MAX:
        if (isnan(p->d) || isnan(q->d)) p->d = NAN;
        else if (q->d > p->d) p->d = q->d;
        if (q->i > p->i) p->i = q->i;
        if (q->u > p->u) p->u = q->u;
        break;
    case LX_REDUCE_MIN:
        if (isnan(p->d) || isnan(q->d)) p->d = NAN;
        else if (q->d < p->d) p->d = q->d;
        if (q->i < p->i) p->i = q->i;
        if (q->u < p->u) p->u = q->u;
        break;
    case LX_REDUCE_ALL: p->u = p->u && q->u; break;
    case LX_REDUCE_ANY: p->u = p->u || q->u; break;
    default: lse_add(p, q->d, q->s); break;
    }
    (void)kind;
}

/* sum of exp(x - m) over n floats (m finite), blocked like lx_row_sum_f32 */
static double sumexp_f32(const float *x, int64_t n, float m) {
    double total = 0.0;
    for (int64_t b = 0; b < n; b += LX_ROW_BLOCK) {
        int64_t len = n - b < LX_ROW_BLOCK ? n - b : LX_ROW_BLOCK;
        const float *p = x + b;
        float acc[LX_ROW_LANES] = {0};
        int64_t j = 0;
        for (; j + LX_ROW_LANES <= len; j += LX_ROW_LANES)
            for (int k = 0; k < LX_ROW_LANES; k++) acc[k] += lx_ew_exp_f(p[j + k] - m);
        for (int k = 0; j + k < len; k++) acc[k] += lx_ew_exp_f(p[j + k] - m);
        for (int w = LX_ROW_LANES / 2; w > 0; w /= 2)
            for (int k = 0; k < w; k++) acc[k] += acc[k + w];
        total += acc[0];
    }
    return total;
}

/* Folds a contiguous run of n (>= 1) accumulation-kind values into p. */
static void run_partial(part *p, int op, int kind, const void *data, int64_t n) {
    part q;
    part_init(&q, op);
    switch (kind) {
    case K_F32: {
        const float *x = data;
        switch (op) {
        case LX_REDUCE_SUM: q.d = lx_row_sum_f32(x, n); break;
        case LX_REDUCE_PROD: for (int64_t j = 0; j < n; j++) q.d *= x[j]; break;
        case LX_REDUCE_MAX: q.d = lx_row_max_f32(x, n); break;
        case LX_REDUCE_MIN: q.d = lx_row_min_f32(x, n); break;
        case LX_REDUCE_ALL: for (int64_t j = 0; j < n && q.u; j++) q.u = x[j] != 0.0f; break;
        case LX_REDUCE_ANY: for (int64_t j = 0; j < n && !q.u; j++) q.u = x[j] != 0.0f; break;
        default: {
            float m = lx_row_max_f32(x, n);
            q.d = m;
            q.s = isfinite(m) ? sumexp_f32(x, n, m) : 0.0;
            break;
        }
        }
        break;
    }
    case K_F64: {
        const double *x = data;
        switch (op) {
        case LX_REDUCE_SUM: {
            double acc[8] = {0};
            int64_t j = 0;
            for (; j + 8 <= n; j += 8)
                for (int k = 0; k < 8; k++) acc[k] += x[j + k];
            for (int k = 0; j + k < n; k++) acc[k] += x[j + k];
            q.d = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
            break;
        }
        case LX_REDUCE_PROD: for (int64_t j = 0; j < n; j++) q.d *= x[j]; break;
        case LX_REDUCE_MAX:
            for (int64_t j = 0; j < n; j++) {
                if (isnan(x[j])) { q.d = NAN; break; }
                if (x[j] > q.d) q.d = x[j];
            }
            break;
        case LX_REDUCE_MIN:
            for (int64_t j = 0; j < n; j++) {
                if (isnan(x[j])) { q.d = NAN; break; }
                if (x[j] < q.d) q.d = x[j];
            }
            break;
        case LX_REDUCE_ALL: for (int64_t j = 0; j < n && q.u; j++) q.u = x[j] != 0.0; break;
        case LX_REDUCE_ANY: for (int64_t j = 0; j < n && !q.u; j++) q.u = x[j] != 0.0; break;
        default: {
            double m = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                if (isnan(x[j])) { m = NAN; break; }
                if (x[j] > m) m = x[j];
            }
            q.d = m;
            if (isfinite(m))
                for (int64_t j = 0; j < n; j++) q.s += exp(x[j] - m);
            break;
        }
        }
        break;
    }
    case K_I64: {
        const int64_t *x = data;
        switch (op) {
        case LX_REDUCE_SUM: for (int64_t j = 0; j < n; j++) q.u += (uint64_t)x[j]; break;
        case LX_REDUCE_PROD: for (int64_t j = 0; j < n; j++) q.u *= (uint64_t)x[j]; break;
        case LX_REDUCE_MAX: for (int64_t j = 0; j < n; j++) q.i = x[j] > q.i ? x[j] : q.i; break;
        case LX_REDUCE_MIN: for (int64_t j = 0; j < n; j++) q.i = x[j] < q.i ? x[j] : q.i; break;
        case LX_REDUCE_ALL: for (int64_t j = 0; j < n && q.u; j++) q.u = x[j] != 0; break;
        case LX_REDUCE_ANY: for (int64_t j = 0; j < n && !q.u; j++) q.u = x[j] != 0; break;
        default: break;
        }
        break;
    }
    default: {
        const uint64_t *x = data;
        switch (op) {
        case LX_REDUCE_SUM: for (int64_t j = 0; j < n; j++) q.u += x[j]; break;
        case LX_REDUCE_PROD: for (int64_t j = 0; j < n; j++) q.u *= x[j]; break;
        case LX_REDUCE_MAX: for (int64_t j = 0; j < n; j++) q.u = x[j] > q.u ? x[j] : q.u; break;
        case LX_REDUCE_MIN: for (int64_t j = 0; j < n; j++) q.u = x[j] < q.u ? x[j] : q.u; break;
        case LX_REDUCE_ALL: for (int64_t j = 0; j < n && q.u; j++) q.u = x[j] != 0; break;
        case LX_REDUCE_ANY: for (int64_t j = 0; j < n && !q.u; j++) q.u = x[j] != 0; break;
        default: break;
        }
        break;
    }
    }
    part_combine(p, &q, op, kind);
}

/* Writes integer bits (two's complement, wrapping) as an integer dtype. */
static void put_bits(void *out, lx_dtype t, int64_t o, uint64_t v) {
    switch (t) {
    case LX_BOOL: ((bool *)out)[o] = v != 0; break;
    case LX_UINT8: case LX_INT8: { uint8_t b = (uint8_t)v; memcpy((char *)out + o, &b, 1); break; }
    case LX_UINT16: case LX_INT16: { uint16_t b = (uint16_t)v; memcpy((char *)out + 2 * o, &b, 2); break; }
    case LX_UINT32: case LX_INT32: { uint32_t b = (uint32_t)v; memcpy((char *)out + 4 * o, &b, 4); break; }
    default: memcpy((char *)out + 8 * o, &v, 8); break;
    }
}

static void store_part(void *out, lx_dtype ot, int64_t o, int op, int kind, const part *p,
                       double scale) {
    if (op == LX_REDUCE_ALL || op == LX_REDUCE_ANY) {
        if (ot == LX_BOOL) ((bool *)out)[o] = p->u != 0;
        else lx_row_put_f64(out, ot, o, p->u ? 1.0 : 0.0);
        return;
    }
    bool minmax = op == LX_REDUCE_MAX || op == LX_REDUCE_MIN;
    if (kind == K_F32 || kind == K_F64) {
        double v = p->d;
        if (op == LX_REDUCE_LOGSUMEXP && isfinite(v)) v += log(p->s);
        if (op == LX_REDUCE_SUM && scale != 1.0) v *= scale;
        lx_row_put_f64(out, ot, o, v);
        return;
    }
    /* integer kinds */
    uint64_t bits = (kind == K_I64 && minmax) ? (uint64_t)p->i : p->u;
    if (lx_dtype_is_float(ot)) {
        double v = kind == K_I64 ? (double)(int64_t)bits : (double)bits;
        if (op == LX_REDUCE_SUM && scale != 1.0) v *= scale;
        lx_row_put_f64(out, ot, o, v);
    } else {
        put_bits(out, ot, o, bits);
    }
}

/* ---- the per-output loop ----------------------------------------------------------------- */

typedef struct {
    const rlayout *L;
    const char *base; /* input element 0 */
    size_t isz;
    lx_dtype it, ot;
    int op, kind;
    double scale;
    void *out;
    int64_t nseg, seg; /* segmented mode: partials[o * nseg + s] */
    part *partials;
} rctx;

/* Folds reduced elements [b, e) (row-major over the reduced dims) of the output at kept
 * offset koff into p. */
static void reduce_range(const rctx *c, int64_t koff, int64_t b, int64_t e, part *p) {
    const rlayout *L = c->L;
    int64_t inner = L->nr ? L->rshape[L->nr - 1] : 1;
    int64_t istride = L->nr ? L->rstride[L->nr - 1] : 0;
    _Alignas(64) char buf[CHUNK * 8];
    int64_t idx = b;
    while (idx < e) {
        int64_t outer = idx / inner, j = idx % inner;
        int64_t off = koff;
        for (int d = L->nr - 2; d >= 0; d--) {
            off += (outer % L->rshape[d]) * L->rstride[d];
            outer /= L->rshape[d];
        }
        int64_t len = inner - j < e - idx ? inner - j : e - idx;
        off += j * istride;
        for (int64_t q = 0; q < len; q += CHUNK) {
            int64_t m = len - q < CHUNK ? len - q : CHUNK;
            const void *src = c->base + (off + q * istride) * (int64_t)c->isz;
            run_partial(p, c->op, c->kind, load_kind(buf, c->kind, src, c->it, istride, m), m);
        }
        idx += len;
    }
}

static void per_output_fn(void *ctx, int64_t b, int64_t e) {
    const rctx *c = ctx;
    const rlayout *L = c->L;
    for (int64_t o = b; o < e; o++) {
        part p;
        part_init(&p, c->op);
        reduce_range(c, kept_offset(L->kshape, L->kstride, L->nk, o), 0, L->n_red, &p);
        store_part(c->out, c->ot, o, c->op, c->kind, &p, c->scale);
    }
}

static void segment_fn(void *ctx, int64_t b, int64_t e) {
    const rctx *c = ctx;
    const rlayout *L = c->L;
    for (int64_t t = b; t < e; t++) {
        int64_t o = t / c->nseg, s = t % c->nseg;
        int64_t lo = s * c->seg, hi = lo + c->seg < L->n_red ? lo + c->seg : L->n_red;
        part_init(&c->partials[t], c->op);
        reduce_range(c, kept_offset(L->kshape, L->kstride, L->nk, o), lo, hi, &c->partials[t]);
    }
}

/* ---- the row loop ------------------------------------------------------------------------ */

typedef union {
    double d[ROW_W];
    float f[ROW_W];
    int64_t i[ROW_W];
    uint64_t u[ROW_W];
} row_acc;

typedef struct {
    const rlayout *L;
    const char *base;
    size_t isz;
    lx_dtype it, ot;
    int op, kind;
    double scale;
    void *out;
    int64_t width, nchunks; /* kept inner width, chunks of cw per row */
    int64_t cw;
} rowctx;

static void row_init(row_acc *a, row_acc *m, int op, int kind, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        switch (op) {
        case LX_REDUCE_SUM: a->u[j] = 0; if (kind <= K_F64) a->d[j] = 0.0; break;
        case LX_REDUCE_PROD: a->u[j] = 1; if (kind <= K_F64) a->d[j] = 1.0; break;
        case LX_REDUCE_MAX:
            if (kind == K_F32) a->f[j] = -INFINITY;
            else if (kind == K_F64) a->d[j] = -INFINITY;
            else if (kind == K_I64) a->i[j] = INT64_MIN;
            else a->u[j] = 0;
            break;
        case LX_REDUCE_MIN:
            if (kind == K_F32) a->f[j] = INFINITY;
            else if (kind == K_F64) a->d[j] = INFINITY;
            else if (kind == K_I64) a->i[j] = INT64_MAX;
            else a->u[j] = UINT64_MAX;
            break;
        case LX_REDUCE_ALL: a->u[j] = 1; break;
        case LX_REDUCE_ANY: a->u[j] = 0; break;
        default: /* LSE: a = sum (double), m = max */
            a->d[j] = 0.0;
            if (kind == K_F32) m->f[j] = -INFINITY;
            else m->d[j] = -INFINITY;
            break;
        }
    }
}

/* a op= x over n values of the accumulation kind (LSE: pass 1 max into m, pass 2 sums). */
static void row_accum(row_acc *restrict a, row_acc *restrict m, int op, int kind, int pass,
                      const void *data, int64_t n) {
    switch (kind) {
    case K_F32: {
        const float *x = data;
        switch (op) {
        case LX_REDUCE_SUM: for (int64_t j = 0; j < n; j++) a->d[j] += x[j]; break;
        case LX_REDUCE_PROD: for (int64_t j = 0; j < n; j++) a->d[j] *= x[j]; break;
        case LX_REDUCE_MAX:
            for (int64_t j = 0; j < n; j++) a->f[j] = (x[j] > a->f[j] || x[j] != x[j]) ? x[j] : a->f[j];
            break;
        case LX_REDUCE_MIN:
            for (int64_t j = 0; j < n; j++) a->f[j] = (x[j] < a->f[j] || x[j] != x[j]) ? x[j] : a->f[j];
            break;
        case LX_REDUCE_ALL: for (int64_t j = 0; j < n; j++) a->u[j] &= x[j] != 0.0f; break;
        case LX_REDUCE_ANY: for (int64_t j = 0; j < n; j++) a->u[j] |= x[j] != 0.0f; break;
        default:
            if (pass == 0) {
                for (int64_t j = 0; j < n; j++)
                    m->f[j] = (x[j] > m->f[j] || x[j] != x[j]) ? x[j] : m->f[j];
            } else {
                for (int64_t j = 0; j < n; j++) {
                    float e = lx_ew_exp_f(x[j] - m->f[j]);
                    a->d[j] += isfinite(m->f[j]) ? e : 0.0f;
                }
            }
            break;
        }
        break;
    }
    case K_F64: {
        const double *x = data;
        switch (op) {
        case LX_REDUCE_SUM: for (int64_t j = 0; j < n; j++) a->d[j] += x[j]; break;
        case LX_REDUCE_PROD: for (int64_t j = 0; j < n; j++) a->d[j] *= x[j]; break;
        case LX_REDUCE_MAX:
            for (int64_t j = 0; j < n; j++) a->d[j] = (x[j] > a->d[j] || x[j] != x[j]) ? x[j] : a->d[j];
            break;
        case LX_REDUCE_MIN:
            for (int64_t j = 0; j < n; j++) a->d[j] = (x[j] < a->d[j] || x[j] != x[j]) ? x[j] : a->d[j];
            break;
        case LX_REDUCE_ALL: for (int64_t j = 0; j < n; j++) a->u[j] &= x[j] != 0.0; break;
        case LX_REDUCE_ANY: for (int64_t j = 0; j < n; j++) a->u[j] |= x[j] != 0.0; break;
        default:
            if (pass == 0) {
                for (int64_t j = 0; j < n; j++)
                    m->d[j] = (x[j] > m->d[j] || x[j] != x[j]) ? x[j] : m->d[j];
            } else {
                for (int64_t j = 0; j < n; j++)
                    if (isfinite(m->d[j])) a->d[j] += exp(x[j] - m->d[j]);
            }
            break;
        }
        break;
    }
    case K_I64: {
        const int64_t *x = data;
        switch (op) {
        case LX_REDUCE_SUM: for (int64_t j = 0; j < n; j++) a->u[j] += (uint64_t)x[j]; break;
        case LX_REDUCE_PROD: for (int64_t j = 0; j < n; j++) a->u[j] *= (uint64_t)x[j]; break;
        case LX_REDUCE_MAX: for (int64_t j = 0; j < n; j++) a->i[j] = x[j] > a->i[j] ? x[j] : a->i[j]; break;
        case LX_REDUCE_MIN: for (int64_t j = 0; j < n; j++) a->i[j] = x[j] < a->i[j] ? x[j] : a->i[j]; break;
        case LX_REDUCE_ALL: for (int64_t j = 0; j < n; j++) a->u[j] &= x[j] != 0; break;
        case LX_REDUCE_ANY: for (int64_t j = 0; j < n; j++) a->u[j] |= x[j] != 0; break;
        default: break;
        }
        break;
    }
    default: {
        const uint64_t *x = data;
        switch (op) {
        case LX_REDUCE_SUM: for (int64_t j = 0; j < n; j++) a->u[j] += x[j]; break;
        case LX_REDUCE_PROD: for (int64_t j = 0; j < n; j++) a->u[j] *= x[j]; break;
        case LX_REDUCE_MAX: for (int64_t j = 0; j < n; j++) a->u[j] = x[j] > a->u[j] ? x[j] : a->u[j]; break;
        case LX_REDUCE_MIN: for (int64_t j = 0; j < n; j++) a->u[j] = x[j] < a->u[j] ? x[j] : a->u[j]; break;
        case LX_REDUCE_ALL: for (int64_t j = 0; j < n; j++) a->u[j] &= x[j] != 0; break;
        case LX_REDUCE_ANY: for (int64_t j = 0; j < n; j++) a->u[j] |= x[j] != 0; break;
        default: break;
        }
        break;
    }
    }
}

static void rows_fn(void *ctx, int64_t b, int64_t e) {
    const rowctx *c = ctx;
    const rlayout *L = c->L;
    row_acc a, m;
    _Alignas(64) char buf[ROW_W * 8];
    int passes = c->op == LX_REDUCE_LOGSUMEXP ? 2 : 1;
    for (int64_t t = b; t < e; t++) {
        int64_t ko = t / c->nchunks, w0 = (t % c->nchunks) * c->cw;
        int64_t cw = c->width - w0 < c->cw ? c->width - w0 : c->cw;
        int64_t koff = kept_offset(L->kshape, L->kstride, L->nk - 1, ko) + w0;
        row_init(&a, &m, c->op, c->kind, cw);
        for (int pass = 0; pass < passes; pass++) {
            int64_t idx[LX_MAX_NDIM] = {0}, roff = 0;
            for (int64_t r = 0; r < L->n_red; r++) {
                const void *src = c->base + (koff + roff) * (int64_t)c->isz;
                row_accum(&a, &m, c->op, c->kind, pass, load_kind(buf, c->kind, src, c->it, 1, cw), cw);
                for (int d = L->nr - 1; d >= 0; d--) { /* odometer over the reduced dims */
                    roff += L->rstride[d];
                    if (++idx[d] < L->rshape[d]) break;
                    roff -= L->rstride[d] * L->rshape[d];
                    idx[d] = 0;
                }
            }
        }
        int64_t o0 = ko * c->width + w0;
        for (int64_t j = 0; j < cw; j++) {
            part p;
            part_init(&p, c->op);
            switch (c->kind) {
            case K_F32:
                if (c->op == LX_REDUCE_MAX || c->op == LX_REDUCE_MIN) p.d = a.f[j];
                else if (c->op == LX_REDUCE_LOGSUMEXP) { p.d = m.f[j]; p.s = a.d[j]; }
                else if (c->op == LX_REDUCE_ALL || c->op == LX_REDUCE_ANY) p.u = a.u[j];
                else p.d = a.d[j];
                break;
            case K_F64:
                if (c->op == LX_REDUCE_LOGSUMEXP) { p.d = m.d[j]; p.s = a.d[j]; }
                else if (c->op == LX_REDUCE_ALL || c->op == LX_REDUCE_ANY) p.u = a.u[j];
                else p.d = a.d[j];
                break;
            case K_I64:
                if (c->op == LX_REDUCE_MAX || c->op == LX_REDUCE_MIN) p.i = a.i[j];
                else p.u = a.u[j];
                break;
            default: p.u = a.u[j]; break;
            }
            store_part(c->out, c->ot, o0 + j, c->op, c->kind, &p, c->scale);
        }
    }
}

/* ---- REDUCE -------------------------------------------------------------------------------- */

lx_status LX_CPU_KERNEL(REDUCE)(lx_kctx *kctx, lx_node *out) {
    const lx_node *in = out->inputs[0];
    const lx_reduce_params *p = out->params;
    if (out->size == 0) return LX_OK;
    bool reduced[LX_MAX_NDIM] = {false};
    for (int i = 0; i < p->n_axes; i++) {
        if (p->axes[i] < 0 || p->axes[i] >= in->ndim)
            return lx_set_error(LX_E_INTERNAL, "%s: reduce axis %d out of range", out->op, p->axes[i]);
        reduced[p->axes[i]] = true;
    }
    rlayout L;
    make_layout(in, reduced, true, &L);
    lx_dtype it = (lx_dtype)in->dtype;
    int kind = natural_kind(it);
    if (p->op == LX_REDUCE_LOGSUMEXP && kind != K_F64) kind = K_F32;
    double scale = p->scale == 0.0 ? 1.0 : p->scale;

    if (L.n_red == 0) { /* an empty reduction: the identity everywhere */
        part id;
        part_init(&id, p->op);
        for (int64_t o = 0; o < L.n_out; o++)
            store_part(lx_node_ptr(out), (lx_dtype)out->dtype, o, p->op, kind, &id, scale);
        return LX_OK;
    }

    const char *base = lx_node_ptr(in);
    size_t isz = lx_dtype_size(it);
    bool rows = L.nk >= 1 && L.kstride[L.nk - 1] == 1 && L.kshape[L.nk - 1] >= 16 && L.nr >= 1 &&
                L.rstride[L.nr - 1] != 1;
    if (rows) {
        rowctx c = {&L, base, isz, it, (lx_dtype)out->dtype, p->op, kind, scale, lx_node_ptr(out),
                    L.kshape[L.nk - 1], 0, ROW_W};
        int64_t n_rows = L.n_out / c.width;
        int threads = lx_num_threads();
        /* narrower chunks when there are few rows, so every thread gets some (the result of
         * each output does not depend on the chunking) */
        while (c.cw > 32 && n_rows * ((c.width + c.cw - 1) / c.cw) < 2 * threads) c.cw /= 2;
        c.nchunks = (c.width + c.cw - 1) / c.cw;
        int64_t work = c.cw * L.n_red;
        lx_parallel_for(n_rows * c.nchunks, work >= 32768 ? 1 : 32768 / work, rows_fn, &c);
        return LX_OK;
    }

    rctx c = {&L, base, isz, it, (lx_dtype)out->dtype, p->op, kind, scale, lx_node_ptr(out),
              1, L.n_red, NULL};
    if (L.n_out < 64 && L.n_red >= 2 * SEG) {
        c.seg = SEG;
        c.nseg = (L.n_red + SEG - 1) / SEG;
        c.partials = lx_kernel_scratch(kctx, sizeof(part) * (size_t)(L.n_out * c.nseg));
        if (!c.partials) return lx_set_error(LX_E_OOM, "%s: out of host memory", out->op);
        lx_parallel_for(L.n_out * c.nseg, 1, segment_fn, &c);
        for (int64_t o = 0; o < L.n_out; o++) {
            part acc = c.partials[o * c.nseg];
            for (int64_t s = 1; s < c.nseg; s++) part_combine(&acc, &c.partials[o * c.nseg + s], p->op, kind);
            store_part(c.out, c.ot, o, p->op, kind, &acc, scale);
        }
        return LX_OK;
    }
    lx_parallel_for(L.n_out, L.n_red >= 32768 ? 1 : 32768 / L.n_red, per_output_fn, &c);
    return LX_OK;
}

/* ---- ARG_REDUCE ---------------------------------------------------------------------------- */

/* First index of the maximum (or minimum) of n >= 1 floats; a NaN counts as the extreme
 * (numpy's rule): the first NaN wins. */
static int64_t argbest_f32(const float *x, int64_t n, bool is_min, float *best) {
    float m = is_min ? lx_row_min_f32(x, n) : lx_row_max_f32(x, n);
    int64_t j = 0;
    if (isnan(m)) {
        while (!isnan(x[j])) j++;
    } else {
        while (x[j] != m) j++;
    }
    *best = x[j];
    return j;
}

typedef struct {
    const lx_node *in;
    uint32_t *out;
    const char *base;
    size_t isz;
    lx_dtype it;
    int kind;
    bool is_min;
    int64_t len, astride;             /* the reduced axis */
    int nk;
    int64_t kshape[LX_MAX_NDIM], kstride[LX_MAX_NDIM];
} argctx;

static bool better_d(double x, double best, bool is_min) {
    if (isnan(best)) return false;
    if (isnan(x)) return true;
    return is_min ? x < best : x > best;
}

static void arg_fn(void *ctx, int64_t b, int64_t e) {
    const argctx *c = ctx;
    _Alignas(64) char buf[CHUNK * 8];
    for (int64_t o = b; o < e; o++) {
        int64_t off = kept_offset(c->kshape, c->kstride, c->nk, o);
        int64_t best_i = 0;
        double bd = 0;
        int64_t bi = 0;
        uint64_t bu = 0;
        for (int64_t q = 0; q < c->len; q += CHUNK) {
            int64_t m = c->len - q < CHUNK ? c->len - q : CHUNK;
            const void *src = c->base + (off + q * c->astride) * (int64_t)c->isz;
            const void *data = load_kind(buf, c->kind, src, c->it, c->astride, m);
            switch (c->kind) {
            case K_F32: {
                float v;
                int64_t j = argbest_f32(data, m, c->is_min, &v);
                if (q == 0 || better_d(v, bd, c->is_min)) { bd = v; best_i = q + j; }
                break;
            }
            case K_F64: {
                const double *x = data;
                for (int64_t j = 0; j < m; j++)
                    if ((q == 0 && j == 0) || better_d(x[j], bd, c->is_min)) { bd = x[j]; best_i = q + j; }
                break;
            }
            case K_I64: {
                const int64_t *x = data;
                for (int64_t j = 0; j < m; j++)
                    if ((q == 0 && j == 0) || (c->is_min ? x[j] < bi : x[j] > bi)) { bi = x[j]; best_i = q + j; }
                break;
            }
            default: {
                const uint64_t *x = data;
                for (int64_t j = 0; j < m; j++)
                    if ((q == 0 && j == 0) || (c->is_min ? x[j] < bu : x[j] > bu)) { bu = x[j]; best_i = q + j; }
                break;
            }
            }
        }
        c->out[o] = (uint32_t)best_i;
    }
}

/* Row variant: the axis is strided and the innermost kept dim contiguous; rows of the axis are
 * folded into vectors of running bests. */
static void arg_rows_fn(void *ctx, int64_t b, int64_t e) {
    const argctx *c = ctx;
    int64_t width = c->kshape[c->nk - 1];
    int64_t nchunks = (width + ROW_W - 1) / ROW_W;
    _Alignas(64) char buf[ROW_W * 8];
    row_acc best;
    uint32_t idx[ROW_W];
    for (int64_t t = b; t < e; t++) {
        int64_t ko = t / nchunks, w0 = (t % nchunks) * ROW_W;
        int64_t cw = width - w0 < ROW_W ? width - w0 : ROW_W;
        int64_t koff = kept_offset(c->kshape, c->kstride, c->nk - 1, ko) + w0;
        for (int64_t r = 0; r < c->len; r++) {
            const void *src = c->base + (koff + r * c->astride) * (int64_t)c->isz;
            const void *data = load_kind(buf, c->kind, src, c->it, 1, cw);
            if (r == 0) {
                memcpy(&best, data, (size_t)cw * (c->kind == K_F32 ? 4 : 8));
                memset(idx, 0, sizeof idx);
                continue;
            }
            uint32_t rr = (uint32_t)r;
            switch (c->kind) { /* a NaN best is never replaced; a NaN x replaces any other */
            case K_F32: {
                const float *x = data;
                for (int64_t j = 0; j < cw; j++) {
                    float v = best.f[j];
                    bool take = v == v && (x[j] != x[j] || (c->is_min ? x[j] < v : x[j] > v));
                    best.f[j] = take ? x[j] : v;
                    idx[j] = take ? rr : idx[j];
                }
                break;
            }
            case K_F64: {
                const double *x = data;
                for (int64_t j = 0; j < cw; j++) {
                    double v = best.d[j];
                    bool take = v == v && (x[j] != x[j] || (c->is_min ? x[j] < v : x[j] > v));
                    best.d[j] = take ? x[j] : v;
                    idx[j] = take ? rr : idx[j];
                }
                break;
            }
            case K_I64: {
                const int64_t *x = data;
                for (int64_t j = 0; j < cw; j++) {
                    bool take = c->is_min ? x[j] < best.i[j] : x[j] > best.i[j];
                    best.i[j] = take ? x[j] : best.i[j];
                    idx[j] = take ? rr : idx[j];
                }
                break;
            }
            default: {
                const uint64_t *x = data;
                for (int64_t j = 0; j < cw; j++) {
                    bool take = c->is_min ? x[j] < best.u[j] : x[j] > best.u[j];
                    best.u[j] = take ? x[j] : best.u[j];
                    idx[j] = take ? rr : idx[j];
                }
                break;
            }
            }
        }
        memcpy(c->out + ko * width + w0, idx, (size_t)cw * sizeof(uint32_t));
    }
}

lx_status LX_CPU_KERNEL(ARG_REDUCE)(lx_kctx *kctx, lx_node *out) {
    const lx_node *in = out->inputs[0];
    const lx_arg_reduce_params *p = out->params;
    if (out->size == 0) return LX_OK;
    if (p->axis < 0 || p->axis >= in->ndim || in->shape[p->axis] == 0)
        return lx_set_error(LX_E_INTERNAL, "%s: bad arg-reduce axis %d", out->op, p->axis);
    bool reduced[LX_MAX_NDIM] = {false};
    reduced[p->axis] = true;
    rlayout L;
    make_layout(in, reduced, false, &L);
    argctx c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.out = lx_node_ptr(out);
    c.base = lx_node_ptr(in);
    c.it = (lx_dtype)in->dtype;
    c.isz = lx_dtype_size(c.it);
    c.kind = natural_kind(c.it);
    c.is_min = p->op == LX_ARG_MIN;
    c.len = in->shape[p->axis];
    c.astride = in->strides[p->axis];
    c.nk = L.nk;
    memcpy(c.kshape, L.kshape, sizeof c.kshape);
    memcpy(c.kstride, L.kstride, sizeof c.kstride);
    if (c.len == 1) {
        memset(c.out, 0, (size_t)out->size * sizeof(uint32_t));
        return LX_OK;
    }
    if (L.nk >= 1 && L.kstride[L.nk - 1] == 1 && L.kshape[L.nk - 1] >= 16 && c.astride != 1) {
        int64_t width = L.kshape[L.nk - 1];
        int64_t tasks = (L.n_out / width) * ((width + ROW_W - 1) / ROW_W);
        int64_t work = ROW_W * c.len;
        lx_parallel_for(tasks, work >= 32768 ? 1 : 32768 / work, arg_rows_fn, &c);
        return LX_OK;
    }
    lx_parallel_for(L.n_out, c.len >= 32768 ? 1 : 32768 / c.len, arg_fn, &c);
    return LX_OK;
}
