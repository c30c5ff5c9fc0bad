/*
 * conv.c -- CONV on the CPU: channels-last convolution over 1 or 2 spatial dims (MLX's
 * conv_general: stride, padding low/high, kernel dilation, input dilation, groups, flip).
 *
 * im2col + GEMM: the output positions of all batch items are flattened into rows and handled
 * in chunks; for each chunk the receptive fields are unfolded into a column matrix
 * cols[row][group][kernel position][Cin/groups] (zeros where the window falls in the padding or
 * between dilated input elements), then for each group
 *     out[row][g*Cout_g + o] = sum_k cols[row][g][k] * w[g*Cout_g + o][k]
 * runs as one OpenBLAS GEMM (sgemm for float32/float16/bfloat16 inputs, dgemm for float64),
 * or as direct dot products when a group's GEMM is tiny (depthwise convolutions). A 1x1
 * convolution with unit stride, no padding and a row-contiguous compute-dtype input skips the
 * unfolding and multiplies the input in place. Half inputs are converted to float32 while
 * unfolding; the output is rounded to the node's dtype once.
 */
#ifndef LX_NN_TEMPLATE_PASS

#include <stdatomic.h>

#include "backend/cpu/nn_util.h"
#include "graph/prims_nn.h"

#define LX_CONV_CHUNK_ELEMS (1 << 22) /* column-matrix elements per chunk (16 MiB in float32) */

/* The geometry, with 1-d convolutions seen as 2-d ones of height 1. */
typedef struct {
    int64_t N, IH, IW, Cin, OH, OW, Cout, KH, KW, G, cin_g, cout_g;
    int64_t st[2], lo[2], kd[2], id[2];
    int64_t xs[4]; /* element strides of x: n, h, w, c */
    bool flip;
} lx_conv_geom;

#define LX_NN_TEMPLATE_PASS
#define CT float
#define SFX(name) name##_f32
#define CT_DTYPE LX_FLOAT32
#include "backend/cpu/conv.c"
#undef CT
#undef SFX
#undef CT_DTYPE
#define CT double
#define SFX(name) name##_f64
#define CT_DTYPE LX_FLOAT64
#include "backend/cpu/conv.c"
#undef CT
#undef SFX
#undef CT_DTYPE
#undef LX_NN_TEMPLATE_PASS

lx_status LX_CPU_KERNEL(CONV)(lx_kctx *kctx, lx_node *out) {
    if (out->size == 0) return LX_OK;
    const lx_conv_params *p = out->params;
    const lx_node *x = out->inputs[0], *w = out->inputs[1];
    lx_conv_geom g;
    memset(&g, 0, sizeof g);
    int s = p->nsp == 2 ? 0 : 1; /* first of the two 2-d slots the spatial dims occupy */
    g.N = x->shape[0];
    g.Cin = x->shape[x->ndim - 1];
    g.Cout = w->shape[0];
    g.G = p->groups;
    g.cin_g = g.Cin / g.G;
    g.cout_g = g.Cout / g.G;
    g.IH = g.OH = g.KH = 1;
    g.st[0] = g.kd[0] = g.id[0] = 1;
    g.xs[0] = x->strides[0];
    g.xs[3] = x->strides[x->ndim - 1];
    for (int d = 0; d < p->nsp; d++) {
        int slot = s + d;
        int64_t in = x->shape[1 + d], k = w->shape[1 + d], o = out->shape[1 + d];
        if (slot == 0) g.IH = in, g.KH = k, g.OH = o;
        else g.IW = in, g.KW = k, g.OW = o;
        g.st[slot] = p->stride[d];
        g.lo[slot] = p->pad_lo[d];
        g.kd[slot] = p->kdil[d];
        g.id[slot] = p->idil[d];
        g.xs[1 + slot] = x->strides[1 + d];
    }
    g.flip = p->flip != 0;
    return lx_nn_is_f64((lx_dtype)out->dtype) ? conv_f64(kctx, out, &g) : conv_f32(kctx, out, &g);
}

#else /* ---- template body ---- */

typedef struct {
    const lx_node *out, *x, *w;
    const lx_conv_geom *g;
    CT *wf;      /* [Cout][KH*KW*cin_g] */
    CT *cols;    /* [chunk][G * Kc] */
    CT *cbuf;    /* [chunk][Cout] when the output is not of the compute dtype */
    int64_t row0; /* first flattened (n, position) row of the chunk */
    int64_t kc;   /* KH * KW * cin_g */
} SFX(conv_ctx);

/* Unfolds rows [begin, end) of the chunk into cols. */
static void SFX(conv_unfold)(void *vctx, int64_t begin, int64_t end) {
    SFX(conv_ctx) *c = vctx;
    const lx_conv_geom *g = c->g;
    const lx_node *x = c->x;
    lx_dtype t = (lx_dtype)x->dtype;
    size_t esz = lx_dtype_size(t);
    const char *xp = lx_node_ptr(x);
    int64_t P = g->OH * g->OW, width = g->G * c->kc;
    int64_t hd = (g->IH - 1) * g->id[0] + 1, wd = (g->IW - 1) * g->id[1] + 1;
    for (int64_t r = begin; r < end; r++) {
        int64_t row = c->row0 + r, n = row / P, pos = row % P;
        int64_t oh = pos / g->OW, ow = pos % g->OW;
        CT *dst = c->cols + r * width;
        for (int64_t kh = 0; kh < g->KH; kh++) {
            int64_t ihd = oh * g->st[0] - g->lo[0] + kh * g->kd[0];
            bool hok = ihd >= 0 && ihd < hd && ihd % g->id[0] == 0;
            int64_t ih = hok ? ihd / g->id[0] : 0;
            for (int64_t kw = 0; kw < g->KW; kw++) {
                int64_t iwd = ow * g->st[1] - g->lo[1] + kw * g->kd[1];
                bool ok = hok && iwd >= 0 && iwd < wd && iwd % g->id[1] == 0;
                int64_t iw = ok ? iwd / g->id[1] : 0;
                int64_t kk = kh * g->KW + kw;
                const char *src = xp + (size_t)(n * g->xs[0] + ih * g->xs[1] + iw * g->xs[2]) * esz;
                for (int64_t gi = 0; gi < g->G; gi++) {
                    CT *d = dst + gi * c->kc + kk * g->cin_g;
                    if (ok)
                        SFX(lx_nn_load)(d, src + (size_t)(gi * g->cin_g * g->xs[3]) * esz, t,
                                        g->xs[3], g->cin_g);
                    else
                        for (int64_t ci = 0; ci < g->cin_g; ci++) d[ci] = 0;
                }
            }
        }
    }
}

typedef struct {
    SFX(conv_ctx) *c;
    const CT *a; /* rows of the column matrix (or of x) */
    int64_t lda;
    CT *dst;
    int64_t ldc;
} SFX(conv_direct_ctx);

/* Tiny groups: out[r][g*cout_g + o] = dot(a[r][g*kc ...], wf[g*cout_g + o]). */
static void SFX(conv_direct)(void *vctx, int64_t begin, int64_t end) {
    SFX(conv_direct_ctx) *d = vctx;
    const lx_conv_geom *g = d->c->g;
    int64_t kc = d->c->kc;
    for (int64_t r = begin; r < end; r++) {
        const CT *a = d->a + r * d->lda;
        CT *o = d->dst + r * d->ldc;
        for (int64_t gi = 0; gi < g->G; gi++)
            for (int64_t oc = 0; oc < g->cout_g; oc++) {
                const CT *wr = d->c->wf + (gi * g->cout_g + oc) * kc;
                const CT *ar = a + gi * kc;
                CT s = 0;
                for (int64_t k = 0; k < kc; k++) s += ar[k] * wr[k];
                o[gi * g->cout_g + oc] = s;
            }
    }
}

static lx_status SFX(conv)(lx_kctx *kctx, lx_node *out, const lx_conv_geom *g) {
    const lx_node *x = out->inputs[0], *w = out->inputs[1];
    lx_dtype t = (lx_dtype)out->dtype;
    size_t esz = lx_dtype_size(t);
    SFX(conv_ctx) c = {.out = out, .x = x, .w = w, .g = g};
    c.kc = g->KH * g->KW * g->cin_g;
    int64_t rows = g->N * g->OH * g->OW;
    lx_status st = LX_OK;

    /* weights as [Cout][kh][kw][cin_g] in the compute type, flipped spatially if asked */
    c.wf = lx_kernel_scratch(kctx, sizeof(CT) * (size_t)(g->Cout * c.kc + 1));
    if (!c.wf) return LX_NN_OOM(out->op);
    {
        int nd = w->ndim;
        int64_t ws0 = w->strides[0], wsc = w->strides[nd - 1];
        int64_t wsh = nd == 4 ? w->strides[1] : 0, wsw = w->strides[nd - 2];
        for (int64_t o = 0; o < g->Cout; o++)
            for (int64_t kh = 0; kh < g->KH; kh++)
                for (int64_t kw = 0; kw < g->KW; kw++) {
                    int64_t sh = g->flip ? g->KH - 1 - kh : kh, sw = g->flip ? g->KW - 1 - kw : kw;
                    SFX(lx_nn_load)(c.wf + o * c.kc + (kh * g->KW + kw) * g->cin_g,
                                    lx_nn_elem(w, o * ws0 + sh * wsh + sw * wsw), t, wsc,
                                    g->cin_g);
                }
    }

    bool in_place = g->KH == 1 && g->KW == 1 && g->st[0] == 1 && g->st[1] == 1 &&
                    g->lo[0] == 0 && g->lo[1] == 0 && g->id[0] == 1 && g->id[1] == 1 &&
                    g->OH == g->IH && g->OW == g->IW && x->dtype == CT_DTYPE &&
                    lx_node_is_row_contiguous(x);
    bool direct_out = t == CT_DTYPE;
    bool tiny = g->cout_g * c.kc <= 64;
    int64_t width = g->G * c.kc;
    int64_t chunk = LX_CONV_CHUNK_ELEMS / (width > g->Cout ? width : g->Cout);
    if (chunk < 16) chunk = 16;
    if (chunk > rows) chunk = rows;
    if (!in_place) {
        c.cols = lx_kernel_scratch(kctx, sizeof(CT) * (size_t)(chunk * width));
        if (!c.cols) return LX_NN_OOM(out->op);
    }
    if (!direct_out) {
        c.cbuf = lx_kernel_scratch(kctx, sizeof(CT) * (size_t)(chunk * g->Cout));
        if (!c.cbuf) return LX_NN_OOM(out->op);
    }
    char *op = lx_node_ptr(out);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t m = rows - r0 < chunk ? rows - r0 : chunk;
        c.row0 = r0;
        const CT *a;
        int64_t lda;
        if (in_place) {
            a = (const CT *)lx_node_ptr(x) + r0 * g->Cin;
            lda = g->Cin;
        } else {
            lx_parallel_for(m, 4096 / (width + 1) + 1, SFX(conv_unfold), &c);
            a = c.cols;
            lda = width;
        }
        CT *dst = direct_out ? (CT *)(void *)op + r0 * g->Cout : c.cbuf;
        if (tiny) {
            SFX(conv_direct_ctx) d = {.c = &c, .a = a, .lda = lda, .dst = dst, .ldc = g->Cout};
            lx_parallel_for(m, 1024 / (g->Cout * c.kc + 1) + 1, SFX(conv_direct), &d);
        } else {
            for (int64_t gi = 0; gi < g->G; gi++)
                lx_blas_gemm(CT_DTYPE, false, true, m, g->cout_g, c.kc, 1.0,
                             a + gi * (in_place ? g->cin_g : c.kc), lda,
                             c.wf + gi * g->cout_g * c.kc, c.kc, 0.0, dst + gi * g->cout_g,
                             g->Cout);
        }
        if (!direct_out)
            SFX(lx_nn_store)(op + (size_t)(r0 * g->Cout) * esz, t, c.cbuf, m * g->Cout);
    }
    return st;
}

#endif
