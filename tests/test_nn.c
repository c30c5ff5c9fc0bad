/*
 * test_nn.c -- layer_norm, group_norm, rope, sdpa, conv1d/2d, conv_transpose1d and
 * upsample_nearest against float64 references computed here (naive loops: explicit softmax
 * attention, direct rotation, direct convolution sums).
 *
 * Inputs are rounded to their dtype before the reference sees them, so the only differences
 * are the kernels' arithmetic and the rounding of the output. Tolerances (|got - want| <=
 * atol + rtol |want|):
 *   float64  1e-12 (relative to the magnitude of the result);
 *   float32  1e-5 (norms, rope, attention: float32 sums of at most a few hundred terms of
 *            magnitude <= 1 carry errors ~1e-6); 1e-4 of the largest |value| for convolutions
 *            (sums of up to ~300 products through sgemm);
 *   float16  2e-3: one rounding of the output (2^-11 = 4.9e-4 relative) plus float32 compute;
 *   bfloat16 1.6e-2: one rounding of the output (2^-8 = 3.9e-3 relative), twice for margin
 *            on values near a power of two, plus float32 compute.
 */
#include <math.h>

#include "backend/cpu/nn_util.h"
#include "core/dtype.h"
#include "test_util.h"

#define MAXN (1 << 22)

static double tol_of(lx_dtype t) {
    switch (t) {
    case LX_FLOAT64: return 1e-12;
    case LX_FLOAT32: return 1e-5;
    case LX_FLOAT16: return 2e-3;
    default: return 1.6e-2;
    }
}

static size_t prod(const int *shape, int nd) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    return n;
}

static void fill(double *v, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) v[i] = t_uniform(lo, hi);
}

/* An array of dtype t holding v (logical shape `shape`), laid out physically with its axes
 * permuted by perm (NULL: row-contiguous) and viewed back with lx_transpose, so the op sees a
 * non-contiguous input. v is rounded to t in place. */
static lx_array mk_perm(double *v, const int *shape, int nd, lx_dtype t, const int *perm) {
    if (nd < 0 || nd > 8) return LX_NULL_ARRAY; /* also tells gcc the bound of ps/inv */
    size_t n = prod(shape, nd), es = lx_dtype_size(t);
    char *buf = malloc(n * es + 1);
    int ps[8], inv[8];
    for (int j = 0; j < nd; j++) {
        int a = perm ? perm[j] : j;
        ps[j] = shape[a];
        inv[a] = j;
    }
    int idx[8] = {0};
    for (size_t pi = 0; pi < n; pi++) {
        /* physical index -> logical flat index */
        size_t rem = pi;
        for (int j = nd - 1; j >= 0; j--) {
            idx[j] = (int)(rem % (size_t)ps[j]);
            rem /= (size_t)ps[j];
        }
        size_t li = 0;
        for (int a = 0; a < nd; a++) li = li * (size_t)shape[a] + (size_t)idx[inv[a]];
        lx_dtype_store(t, buf + pi * es, v[li]);
        v[li] = lx_dtype_load(t, buf + pi * es);
    }
    lx_array p = lx_array_new(buf, ps, nd, t);
    free(buf);
    if (!perm) return p;
    return lx_transpose(p, inv, nd);
}

static lx_array mk(double *v, const int *shape, int nd, lx_dtype t) {
    return mk_perm(v, shape, nd, t, NULL);
}

/* The array's values as doubles (n of them), or NULL on error. */
static double *rd(lx_array a, size_t n) {
    if (lx_size(a) != n) {
        fprintf(stderr, "rd: size %zu, expected %zu (%s)\n", lx_size(a), n, lx_error_message());
        return NULL;
    }
    lx_dtype t = lx_dtype_of(a);
    size_t es = lx_dtype_size(t);
    char *buf = malloc(n * es + 1);
    double *out = malloc(sizeof(double) * (n + 1));
    if (lx_read(a, buf, n * es) != LX_OK) {
        fprintf(stderr, "rd: %s\n", lx_error_message());
        free(buf);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) out[i] = lx_dtype_load(t, buf + i * es);
    free(buf);
    return out;
}

static double maxabs(const double *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(v[i]) > m) m = fabs(v[i]);
    return m;
}

/* Compares a's values with want; frees nothing of the caller's. */
static int expect(const char *what, lx_array a, const double *want, size_t n, double rtol,
                  double atol) {
    t_checks++;
    double *got = rd(a, n);
    if (!got) {
        t_failures++;
        fprintf(stderr, "%s: could not read the result\n", what);
        lx_clear_error();
        return 0;
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!t_close(got[i], want[i], rtol, atol)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", what, i, got[i], want[i]);
            bad++;
        }
    free(got);
    if (bad) {
        t_failures++;
        fprintf(stderr, "%s: %d of %zu values outside rtol %g atol %g\n", what, bad, n, rtol,
                atol);
    }
    return bad == 0;
}

static const lx_dtype float_types[4] = {LX_FLOAT32, LX_FLOAT16, LX_BFLOAT16, LX_FLOAT64};

/* ---- layer_norm ---------------------------------------------------------------------------- */

static void ref_layer_norm(const double *x, const double *w, const double *b, size_t rows, int d,
                           double eps, double *out) {
    for (size_t r = 0; r < rows; r++) {
        const double *xr = x + r * d;
        double mean = 0, var = 0;
        for (int j = 0; j < d; j++) mean += xr[j];
        mean /= d;
        for (int j = 0; j < d; j++) var += (xr[j] - mean) * (xr[j] - mean);
        var /= d;
        double inv = 1.0 / sqrt(var + eps);
        for (int j = 0; j < d; j++)
            out[r * d + j] = (xr[j] - mean) * inv * (w ? w[j] : 1.0) + (b ? b[j] : 0.0);
    }
}

static void test_layer_norm(void) {
    t_seed(11);
    for (int iter = 0; iter < 40; iter++) {
        lx_dtype t = float_types[iter % 4];
        int nd = t_int(1, 4), shape[4];
        for (int i = 0; i < nd; i++) shape[i] = t_int(1, 5);
        shape[nd - 1] = t_int(1, 300);
        int d = shape[nd - 1];
        size_t n = prod(shape, nd), rows = n / (size_t)d;
        bool hw = iter % 3 != 0, hb = iter % 5 != 0, transposed = nd >= 2 && iter % 2;
        double *x = malloc(sizeof(double) * n), *w = malloc(sizeof(double) * d),
               *b = malloc(sizeof(double) * d), *want = malloc(sizeof(double) * n);
        double off = iter % 7 == 3 ? 1000.0 : 0.0; /* a large mean: the two-pass variance */
        fill(x, n, off - 2, off + 2);
        fill(w, (size_t)d, -1.5, 1.5);
        fill(b, (size_t)d, -1, 1);
        int perm[4] = {0, 1, 2, 3};
        if (transposed) perm[nd - 1] = nd - 2, perm[nd - 2] = nd - 1;
        lx_array xa = mk_perm(x, shape, nd, t, transposed ? perm : NULL);
        lx_array wa = hw ? mk(w, &d, 1, t) : LX_NULL_ARRAY;
        lx_array ba = hb ? mk(b, &d, 1, t) : LX_NULL_ARRAY;
        float eps = iter % 2 ? 1e-5f : 1e-6f;
        lx_array y = lx_layer_norm(xa, wa, ba, eps);
        CHECK(lx_dtype_of(y) == t);
        ref_layer_norm(x, hw ? w : NULL, hb ? b : NULL, rows, d, (double)eps, want);
        double tol = tol_of(t);
        /* a mean of 1000: the float32 mean carries ~1e-4 of absolute error (1e-4 of the spread) */
        if (off != 0 && tol < 2e-3) tol = 2e-3;
        char what[64];
        snprintf(what, sizeof what, "layer_norm %s d=%d", lx_dtype_name(t), d);
        expect(what, y, want, n, tol, tol);
        free(x), free(w), free(b), free(want);
        lx_sweep();
    }
    /* a strided w (every other element of a [2d] array) and promotion f16 x with f32 w */
    {
        int shape[2] = {3, 40}, d = 40, d2 = 80;
        double x[120], w2[80], want[120], w[40];
        fill(x, 120, -1, 1);
        fill(w2, 80, -1, 1);
        lx_array xa = mk(x, shape, 2, LX_FLOAT16);
        lx_array wa = mk(w2, &d2, 1, LX_FLOAT32);
        int st = 0, sp = 80, step = 2;
        lx_array ws = lx_slice(wa, &st, &sp, &step, 1);
        for (int j = 0; j < d; j++) w[j] = w2[2 * j];
        lx_array y = lx_layer_norm(xa, ws, LX_NULL_ARRAY, 1e-5f);
        CHECK(lx_dtype_of(y) == LX_FLOAT32);
        ref_layer_norm(x, w, NULL, 3, d, 1e-5, want);
        expect("layer_norm strided w", y, want, 120, 1e-5, 1e-5);
    }
}

/* ---- group_norm ---------------------------------------------------------------------------- */
/* PyTorch's grouping (MLX's GroupNorm with pytorch_compatible=True): group g holds the
 * consecutive channels [g*C/G, (g+1)*C/G). */

static void test_group_norm(void) {
    t_seed(12);
    for (int iter = 0; iter < 16; iter++) {
        lx_dtype t = float_types[iter % 4];
        int groups = t_int(1, 4), gs = t_int(1, 6), C = groups * gs;
        int shape[4] = {t_int(1, 3), t_int(1, 6), t_int(1, 6), C};
        int nd = iter % 3 == 0 ? 3 : 4;
        if (nd == 3) shape[2] = C;
        size_t n = prod(shape, nd);
        double *x = malloc(sizeof(double) * n), *want = malloc(sizeof(double) * n);
        double w[24], b[24];
        fill(x, n, -3, 3);
        fill(w, (size_t)C, -1, 1);
        fill(b, (size_t)C, -1, 1);
        bool hw = iter % 2 == 0, hb = iter % 4 < 2;
        int perm[4] = {1, 0, 2, 3}; /* N and H swapped in memory */
        lx_array xa = mk_perm(x, shape, nd, t, iter % 3 == 1 ? perm : NULL);
        lx_array wa = hw ? mk(w, &C, 1, t) : LX_NULL_ARRAY;
        lx_array ba = hb ? mk(b, &C, 1, t) : LX_NULL_ARRAY;
        lx_array y = lx_group_norm(xa, groups, wa, ba, 1e-5f);
        int N = shape[0];
        size_t S = n / ((size_t)N * C);
        for (int bn = 0; bn < N; bn++)
            for (int g = 0; g < groups; g++) {
                double mean = 0, var = 0, cnt = (double)S * gs;
                for (size_t s = 0; s < S; s++)
                    for (int j = 0; j < gs; j++) mean += x[(bn * S + s) * C + g * gs + j];
                mean /= cnt;
                for (size_t s = 0; s < S; s++)
                    for (int j = 0; j < gs; j++) {
                        double dv = x[(bn * S + s) * C + g * gs + j] - mean;
                        var += dv * dv;
                    }
                var /= cnt;
                for (size_t s = 0; s < S; s++)
                    for (int j = 0; j < gs; j++) {
                        size_t i = (bn * S + s) * C + g * gs + j;
                        int c = g * gs + j;
                        want[i] = (x[i] - mean) / sqrt(var + 1e-5) * (hw ? w[c] : 1.0) +
                                  (hb ? b[c] : 0.0);
                    }
            }
        char what[64];
        snprintf(what, sizeof what, "group_norm %s groups=%d C=%d", lx_dtype_name(t), groups, C);
        expect(what, y, want, n, tol_of(t), tol_of(t));
        free(x), free(want);
        lx_sweep();
    }
}

/* ---- rope ---------------------------------------------------------------------------------- */

/* x [outer, L, D] flattened */
static void ref_rope(const double *x, size_t outer, int L, int D, int dims, bool trad,
                     const double *inv_freq, double scale, long offset, double *out) {
    int half = dims / 2;
    for (size_t o = 0; o < outer; o++)
        for (int p = 0; p < L; p++) {
            const double *xr = x + (o * L + p) * D;
            double *yr = out + (o * L + p) * D;
            for (int j = 0; j < D; j++) yr[j] = xr[j];
            for (int i = 0; i < half; i++) {
                double a = scale * (double)(offset + p) * inv_freq[i];
                int i1 = trad ? 2 * i : i, i2 = trad ? 2 * i + 1 : i + half;
                yr[i1] = xr[i1] * cos(a) - xr[i2] * sin(a);
                yr[i2] = xr[i1] * sin(a) + xr[i2] * cos(a);
            }
        }
}

static void test_rope(void) {
    t_seed(13);
    for (int iter = 0; iter < 48; iter++) {
        lx_dtype t = float_types[iter % 4];
        int nd = 2 + iter % 3, shape[4];
        for (int i = 0; i < nd; i++) shape[i] = t_int(1, 4);
        shape[nd - 2] = t_int(1, 9);
        int D = 2 * t_int(1, 40);
        shape[nd - 1] = D;
        int dims = 2 * t_int(1, D / 2);
        if (iter % 5 == 0) dims = D;
        bool trad = iter % 2;
        bool custom = iter % 6 == 5;
        long offset = iter % 4 == 1 ? t_int(0, 5000) : (iter % 8 == 7 ? 100000 : 0);
        double scale = iter % 3 == 2 ? 0.25 : 1.0, base = iter % 2 ? 10000.0 : 500000.0;
        size_t n = prod(shape, nd);
        int L = shape[nd - 2];
        double *x = malloc(sizeof(double) * n), *want = malloc(sizeof(double) * n);
        double inv[64], fr[64];
        fill(x, n, -2, 2);
        int perm[4] = {0, 1, 2, 3};
        bool tr = nd == 4 && iter % 2 == 0; /* [B, L, H, D] in memory, viewed as [B, H, L, D] */
        if (tr) perm[1] = 2, perm[2] = 1;
        lx_array xa = mk_perm(x, shape, nd, t, tr ? perm : NULL);
        lx_array y;
        int half = dims / 2;
        if (custom) {
            for (int i = 0; i < half; i++) fr[i] = (double)(float)t_uniform(1.0, 5000.0);
            lx_array fa = mk(fr, &half, 1, LX_FLOAT32);
            for (int i = 0; i < half; i++) inv[i] = 1.0 / fr[i];
            y = lx_rope_freqs(xa, dims, trad, fa, (float)scale, (int)offset);
        } else {
            for (int i = 0; i < half; i++) inv[i] = pow(base, -2.0 * i / dims);
            y = lx_rope(xa, dims, trad, (float)base, (float)scale, (int)offset);
        }
        CHECK(lx_dtype_of(y) == t);
        ref_rope(x, n / ((size_t)L * D), L, D, dims, trad, inv, scale, offset, want);
        char what[96];
        snprintf(what, sizeof what, "rope %s dims=%d/%d trad=%d offset=%ld%s", lx_dtype_name(t),
                 dims, D, trad, offset, custom ? " freqs" : "");
        /* positions up to 1e5: the float32 rotation of the float64 angle adds ~1e-7 */
        /* float64 at position 1e5: the angle's few-ulp differences (pow vs exp of log) give
         * ~1e-11 */
        double tol = t == LX_FLOAT64 && offset >= 100000 ? 1e-9 : tol_of(t);
        expect(what, y, want, n, tol, tol * 2);
        free(x), free(want);
        lx_sweep();
    }
}

/* Both arrays evaluated to the same bytes. */
static bool same_bytes(lx_array a, lx_array b) {
    size_t n = lx_nbytes(a);
    if (n != lx_nbytes(b) || n == 0) return false;
    char *pa = malloc(n), *pb = malloc(n);
    bool ok = pa && pb && lx_read(a, pa, n) == LX_OK && lx_read(b, pb, n) == LX_OK &&
              memcmp(pa, pb, n) == 0;
    free(pa), free(pb);
    return ok;
}

/* lx_rope_at / lx_rope_freqs_at (the offset an array of any integer dtype, scalar or [1]) give
 * the same bits as lx_rope / lx_rope_freqs with that offset as an int. */
static void test_rope_at(void) {
    static const lx_dtype itypes[] = {LX_INT32, LX_INT64, LX_UINT32, LX_INT16,
                                      LX_UINT16, LX_UINT64, LX_INT8, LX_UINT8};
    t_seed(17);
    int bad = 0, cases = 0;
    for (int iter = 0; iter < 400; iter++) {
        lx_dtype t = float_types[iter % 4];
        lx_dtype it = itypes[iter % 8];
        bool sgn = lx_dtype_is_signed(it);
        int bits = (int)lx_dtype_size(it) * 8;
        long lim = bits >= 32 ? 2000000 : (sgn ? (1L << (bits - 1)) - 1 : (1L << bits) - 1);
        long offset = iter < 300 ? iter % (lim + 1) : t_int(0, (int)lim);
        if (sgn && iter % 7 == 3) offset = -offset;
        if (iter == 399) it = LX_UINT32, offset = 2147483647L - 16; /* positions stay <= INT_MAX */
        if (iter == 398) it = LX_INT64, offset = -2147483647L;
        int shape[4] = {t_int(1, 3), t_int(1, 3), t_int(1, 5), 2 * t_int(1, 12)};
        int D = shape[3], dims = 2 * t_int(1, D / 2);
        bool trad = iter % 2, custom = iter % 5 == 4;
        double x[4 * 3 * 5 * 24], fr[12];
        size_t n = prod(shape, 4);
        fill(x, n, -2, 2);
        lx_array xa = mk(x, shape, 4, t);
        double ov = (double)offset;
        lx_array oa = iter % 3 == 0 ? mk(&ov, (int[]){1}, 1, it) : mk(&ov, NULL, 0, it);
        lx_array got, want;
        if (custom) {
            int half = dims / 2;
            for (int i = 0; i < half; i++) fr[i] = t_uniform(1.0, 5000.0);
            lx_array fa = mk(fr, &half, 1, LX_FLOAT32);
            got = lx_rope_freqs_at(xa, dims, trad, fa, 0.5f, oa);
            want = lx_rope_freqs(xa, dims, trad, fa, 0.5f, (int)offset);
        } else {
            got = lx_rope_at(xa, dims, trad, 10000.0f, 1.0f, oa);
            want = lx_rope(xa, dims, trad, 10000.0f, 1.0f, (int)offset);
        }
        cases++;
        if (!same_bytes(got, want)) {
            if (bad++ < 5)
                fprintf(stderr, "  rope_at %s offset %ld (%s) dims %d/%d trad %d%s differs\n",
                        lx_dtype_name(t), offset, lx_dtype_name(it), dims, D, trad,
                        custom ? " freqs" : "");
        }
        lx_sweep();
    }
    CHECK_MSG(bad == 0, "%d of %d lx_rope_at cases differ from lx_rope", bad, cases);
}

/* ---- sdpa ---------------------------------------------------------------------------------- */

typedef struct {
    int B, Hq, Hkv, Lq, Lk, D, Dv;
    bool causal;
    int mask_kind;   /* 0 none, 1 bool, 2 additive */
    int mshape[4];   /* mask shape (4-d, with 1s for broadcast dims) */
    int mnd;         /* mask ndim given to lx (trailing dims of mshape) */
    bool sinks;
    lx_dtype t;
    bool transposed; /* q/k/v laid out [B, L, H, D] */
} sdpa_case;

static void ref_sdpa(const sdpa_case *c, const double *q, const double *k, const double *v,
                     const double *mask, const double *sinks, double scale, double *out) {
    int G = c->Hq / c->Hkv;
    double *s = malloc(sizeof(double) * (c->Lk + 1));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->Hq; h++)
            for (int i = 0; i < c->Lq; i++) {
                int hk = h / G;
                const double *qr = q + (((size_t)b * c->Hq + h) * c->Lq + i) * c->D;
                double mx = -INFINITY;
                for (int j = 0; j < c->Lk; j++) {
                    const double *kr = k + (((size_t)b * c->Hkv + hk) * c->Lk + j) * c->D;
                    double dot = 0;
                    for (int d = 0; d < c->D; d++) dot += qr[d] * kr[d];
                    s[j] = dot * scale;
                    if (c->causal && j > i + c->Lk - c->Lq) s[j] = -INFINITY;
                    if (c->mask_kind) {
                        const int *ms = c->mshape;
                        size_t mi = ((((size_t)(ms[0] > 1 ? b : 0) * ms[1] + (ms[1] > 1 ? h : 0)) *
                                          ms[2] + (ms[2] > 1 ? i : 0)) * ms[3]) + (ms[3] > 1 ? j : 0);
                        if (c->mask_kind == 1) {
                            if (mask[mi] == 0) s[j] = -INFINITY;
                        } else {
                            s[j] += mask[mi];
                        }
                    }
                    if (s[j] > mx) mx = s[j];
                }
                if (c->sinks && sinks[h] > mx) mx = sinks[h];
                double den = 0;
                for (int j = 0; j < c->Lk; j++) {
                    s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
                    den += s[j];
                }
                if (c->sinks) den += exp(sinks[h] - mx);
                double *o = out + (((size_t)b * c->Hq + h) * c->Lq + i) * c->Dv;
                for (int d = 0; d < c->Dv; d++) {
                    double acc = 0;
                    for (int j = 0; j < c->Lk; j++)
                        acc += s[j] * v[(((size_t)b * c->Hkv + hk) * c->Lk + j) * c->Dv + d];
                    o[d] = den > 0 ? acc / den : 0.0; /* a row that sees nothing is zero */
                }
            }
    free(s);
}

static void run_sdpa_case(const sdpa_case *c, const char *label) {
    int qs[4] = {c->B, c->Hq, c->Lq, c->D}, ks[4] = {c->B, c->Hkv, c->Lk, c->D},
        vs[4] = {c->B, c->Hkv, c->Lk, c->Dv};
    size_t nq = prod(qs, 4), nk = prod(ks, 4), nv = prod(vs, 4), no = nq / (c->D ? c->D : 1);
    no = (size_t)c->B * c->Hq * c->Lq * c->Dv;
    size_t nm = prod(c->mshape, 4);
    double *q = malloc(sizeof(double) * (nq + 1)), *k = malloc(sizeof(double) * (nk + 1)),
           *v = malloc(sizeof(double) * (nv + 1)), *m = malloc(sizeof(double) * (nm + 1)),
           *want = malloc(sizeof(double) * (no + 1)), sk[64];
    fill(q, nq, -1, 1);
    fill(k, nk, -1, 1);
    fill(v, nv, -1, 1);
    for (size_t i = 0; i < nm; i++)
        m[i] = c->mask_kind == 1 ? (t_uniform(0, 1) < 0.7) : t_uniform(-3, 1);
    if (c->mask_kind == 2 && nm > 2) m[1] = -INFINITY; /* an additive -inf entry */
    for (int h = 0; h < c->Hq; h++) sk[h] = t_uniform(-1, 2);
    int perm[4] = {0, 2, 1, 3};
    lx_array qa = mk_perm(q, qs, 4, c->t, c->transposed ? perm : NULL);
    lx_array ka = mk_perm(k, ks, 4, c->t, c->transposed ? perm : NULL);
    lx_array va = mk_perm(v, vs, 4, c->t, c->transposed ? perm : NULL);
    lx_array ma = LX_NULL_ARRAY;
    if (c->mask_kind) {
        lx_dtype mt = c->mask_kind == 1 ? LX_BOOL : c->t;
        ma = mk(m, c->mshape + (4 - c->mnd), c->mnd, mt);
    }
    double scale = 1.0 / sqrt(c->D > 0 ? c->D : 1);
    lx_array y;
    if (c->sinks) {
        lx_array sa = mk(sk, &c->Hq, 1, c->t);
        y = lx_sdpa_sinks(qa, ka, va, (float)scale, c->causal, ma, sa);
    } else {
        y = lx_sdpa(qa, ka, va, (float)scale, c->causal, ma);
    }
    ref_sdpa(c, q, k, v, m, sk, (double)(float)scale, want);
    char what[200];
    snprintf(what, sizeof what,
             "sdpa %s %s B=%d Hq=%d Hkv=%d Lq=%d Lk=%d D=%d Dv=%d causal=%d mask=%d/%d sinks=%d "
             "tr=%d", label, lx_dtype_name(c->t), c->B, c->Hq, c->Hkv, c->Lq, c->Lk, c->D, c->Dv,
             c->causal, c->mask_kind, c->mnd, c->sinks, c->transposed);
    CHECK_MSG(lx_dtype_of(y) == c->t, "%s: dtype %s", what, lx_dtype_name(lx_dtype_of(y)));
    double tol = tol_of(c->t);
    if (c->t == LX_FLOAT64) tol = 1e-11;
    expect(what, y, want, no, tol, tol);
    free(q), free(k), free(v), free(m), free(want);
    lx_sweep();
}

static void random_mask_shape(sdpa_case *c) {
    int full[4] = {c->B, c->Hq, c->Lq, c->Lk};
    c->mnd = t_int(2, 4);
    for (int i = 0; i < 4; i++) {
        bool present = i >= 4 - c->mnd;
        c->mshape[i] = present && (i >= 2 || t_int(0, 1)) ? full[i] : 1;
    }
    if (t_int(0, 3) == 0) c->mshape[2] = 1; /* one row for every query */
}

static void test_sdpa(void) {
    t_seed(14);
    for (int iter = 0; iter < 80; iter++) {
        sdpa_case c;
        memset(&c, 0, sizeof c);
        c.t = float_types[iter % 4];
        c.B = t_int(1, 2);
        c.Hkv = t_int(1, 3);
        c.Hq = c.Hkv * t_int(1, 4);
        c.Lq = iter % 5 == 0 ? 1 : t_int(1, 70);
        c.Lk = t_int(1, 150);
        if (iter % 7 == 0) c.Lk = c.Lq; /* square */
        c.D = t_int(1, 40);
        c.Dv = iter % 3 == 0 ? t_int(1, 40) : c.D;
        c.causal = iter % 2 == 1;
        c.mask_kind = iter % 3;
        c.sinks = iter % 4 == 3;
        c.transposed = iter % 5 >= 3;
        for (int i = 0; i < 4; i++) c.mshape[i] = 1;
        if (c.mask_kind) random_mask_shape(&c);
        run_sdpa_case(&c, "random");
    }
    /* causal with Lq > Lk: the first rows see nothing (zeros), with and without sinks */
    sdpa_case c = {.B = 1, .Hq = 2, .Hkv = 1, .Lq = 9, .Lk = 5, .D = 8, .Dv = 8, .causal = true,
                   .t = LX_FLOAT32, .mshape = {1, 1, 1, 1}};
    run_sdpa_case(&c, "causal Lq>Lk");
    c.sinks = true;
    run_sdpa_case(&c, "causal Lq>Lk sinks");
    /* a fully false bool row */
    sdpa_case z = {.B = 1, .Hq = 1, .Hkv = 1, .Lq = 3, .Lk = 4, .D = 4, .Dv = 4, .mask_kind = 1,
                   .mshape = {1, 1, 3, 4}, .mnd = 2, .t = LX_FLOAT32};
    {
        double q[12], k[16], v[16], m[12] = {1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1}, want[12];
        fill(q, 12, -1, 1), fill(k, 16, -1, 1), fill(v, 16, -1, 1);
        int qs[4] = {1, 1, 3, 4}, ks[4] = {1, 1, 4, 4}, ms[2] = {3, 4};
        lx_array y = lx_sdpa(mk(q, qs, 4, LX_FLOAT32), mk(k, ks, 4, LX_FLOAT32),
                             mk(v, ks, 4, LX_FLOAT32), 0.5f, false, mk(m, ms, 2, LX_BOOL));
        ref_sdpa(&z, q, k, v, m, NULL, 0.5, want);
        for (int i = 4; i < 8; i++) CHECK(want[i] == 0.0);
        expect("sdpa fully masked row", y, want, 12, 1e-5, 1e-5);
    }
    /* decode: Lq = 1, long Lk, few tasks: split-K with 8 threads (and causal, sinks, masks) */
    int old = lx_set_num_threads(8);
    for (int iter = 0; iter < 8; iter++) {
        sdpa_case d = {.B = 1, .Hkv = 1 + iter % 2, .Lq = 1 + (iter == 5) * 3,
                       .Lk = 700 + t_int(0, 2500), .D = 64, .Dv = 64, .t = float_types[iter % 4],
                       .mshape = {1, 1, 1, 1}};
        d.Hq = d.Hkv * (iter % 3 + 1);
        d.causal = iter % 2;
        d.sinks = iter % 4 == 2;
        d.mask_kind = iter % 3;
        d.transposed = iter >= 4;
        if (d.mask_kind) random_mask_shape(&d);
        run_sdpa_case(&d, "decode");
    }
    /* prefill-sized: blocks within one head, causal block skipping */
    sdpa_case p = {.B = 1, .Hq = 4, .Hkv = 2, .Lq = 100, .Lk = 130, .D = 32, .Dv = 16,
                   .causal = true, .t = LX_FLOAT32, .mshape = {1, 1, 1, 1}};
    run_sdpa_case(&p, "prefill");
    p.t = LX_BFLOAT16;
    p.sinks = true;
    run_sdpa_case(&p, "prefill");
    lx_set_num_threads(old);
    /* empty keys (zeros) and empty batch */
    sdpa_case e = {.B = 1, .Hq = 2, .Hkv = 2, .Lq = 3, .Lk = 0, .D = 4, .Dv = 5,
                   .t = LX_FLOAT32, .mshape = {1, 1, 1, 1}};
    run_sdpa_case(&e, "no keys");
    e.B = 0;
    e.Lk = 3;
    run_sdpa_case(&e, "empty batch");
}

/* ---- convolutions --------------------------------------------------------------------------- */

typedef struct {
    int nsp, N, Cin, Cout, groups;
    int in[2], k[2], stride[2], pad[2], dil[2];
    int out_pad; /* transpose only */
    bool transpose;
    lx_dtype t;
    bool strided_x;
} conv_case;

/* Direct double loops: forward conv (correlation) or the transposed conv as a scatter. */
static void ref_conv(const conv_case *c, const double *x, const double *w, const int *os,
                     double *out) {
    int cin_g = c->Cin / c->groups, cout_g = c->Cout / c->groups;
    int IH = c->nsp == 2 ? c->in[0] : 1, IW = c->in[c->nsp - 1];
    int KH = c->nsp == 2 ? c->k[0] : 1, KW = c->k[c->nsp - 1];
    int OH = c->nsp == 2 ? os[0] : 1, OW = os[c->nsp - 1];
    int sh = c->nsp == 2 ? c->stride[0] : 1, sw = c->stride[c->nsp - 1];
    int ph = c->nsp == 2 ? c->pad[0] : 0, pw = c->pad[c->nsp - 1];
    int dh = c->nsp == 2 ? c->dil[0] : 1, dw = c->dil[c->nsp - 1];
    size_t no = (size_t)c->N * OH * OW * c->Cout;
    for (size_t i = 0; i < no; i++) out[i] = 0;
    for (int n = 0; n < c->N; n++)
        for (int co = 0; co < c->Cout; co++) {
            int g = co / cout_g;
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++)
                    for (int ci = 0; ci < cin_g; ci++) {
                        double wv = w[(((size_t)co * KH + kh) * KW + kw) * cin_g + ci];
                        if (!c->transpose) {
                            for (int oh = 0; oh < OH; oh++)
                                for (int ow = 0; ow < OW; ow++) {
                                    int ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw;
                                    if (ih < 0 || ih >= IH || iw < 0 || iw >= IW) continue;
                                    out[(((size_t)n * OH + oh) * OW + ow) * c->Cout + co] +=
                                        wv * x[(((size_t)n * IH + ih) * IW + iw) * c->Cin +
                                               g * cin_g + ci];
                                }
                        } else { /* 1-d: out[i*s - p + k*d] += x[i] * w[k] */
                            for (int i = 0; i < IW; i++) {
                                int o = i * sw - pw + kw * dw;
                                if (o < 0 || o >= OW) continue;
                                out[((size_t)n * OW + o) * c->Cout + co] +=
                                    wv * x[((size_t)n * IW + i) * c->Cin + g * cin_g + ci];
                            }
                        }
                    }
        }
}

static void run_conv_case(const conv_case *c, const char *label) {
    int nsp = c->nsp, xs[4], ws[4], os[2] = {1, 1};
    xs[0] = c->N;
    ws[0] = c->Cout;
    for (int d = 0; d < nsp; d++) {
        xs[1 + d] = c->in[d];
        ws[1 + d] = c->k[d];
        if (c->transpose)
            os[d] = (c->in[d] - 1) * c->stride[d] - 2 * c->pad[d] + c->dil[d] * (c->k[d] - 1) +
                    c->out_pad + 1;
        else
            os[d] = (c->in[d] + 2 * c->pad[d] - c->dil[d] * (c->k[d] - 1) - 1) / c->stride[d] + 1;
    }
    xs[nsp + 1] = c->Cin;
    ws[nsp + 1] = c->Cin / c->groups;
    size_t nx = prod(xs, nsp + 2), nw = prod(ws, nsp + 2);
    size_t no = (size_t)c->N * c->Cout * os[0] * (nsp == 2 ? os[1] : 1);
    double *x = malloc(sizeof(double) * nx), *w = malloc(sizeof(double) * nw),
           *want = malloc(sizeof(double) * (no + 1));
    fill(x, nx, -1, 1);
    fill(w, nw, -1, 1);
    int perm3[3] = {1, 0, 2}, perm4[4] = {0, 2, 1, 3};
    lx_array xa = mk_perm(x, xs, nsp + 2, c->t, c->strided_x ? (nsp == 1 ? perm3 : perm4) : NULL);
    lx_array wa = mk(w, ws, nsp + 2, c->t);
    lx_array y;
    if (c->transpose)
        y = lx_conv_transpose1d(xa, wa, c->stride[0], c->pad[0], c->dil[0], c->out_pad,
                                c->groups);
    else if (nsp == 1)
        y = lx_conv1d(xa, wa, c->stride[0], c->pad[0], c->dil[0], c->groups);
    else
        y = lx_conv2d(xa, wa, c->stride, c->pad, c->dil, c->groups);
    ref_conv(c, x, w, os, want);
    char what[200];
    snprintf(what, sizeof what, "%s %s %dd%s N=%d Cin=%d Cout=%d g=%d in=%dx%d k=%dx%d s=%d,%d "
             "p=%d,%d d=%d,%d op=%d", label, lx_dtype_name(c->t), nsp, c->transpose ? "T" : "",
             c->N, c->Cin, c->Cout, c->groups, c->in[0], c->in[1], c->k[0], c->k[1], c->stride[0],
             c->stride[1], c->pad[0], c->pad[1], c->dil[0], c->dil[1], c->out_pad);
    int ond = lx_ndim(y);
    CHECK_MSG(ond == nsp + 2 && lx_dim(y, 0) == c->N && lx_dim(y, -1) == c->Cout &&
                  lx_dim(y, 1) == os[0] && (nsp == 1 || lx_dim(y, 2) == os[1]),
              "%s: wrong output shape", what);
    double m = maxabs(want, no), tol = tol_of(c->t);
    if (c->t == LX_FLOAT32) tol = 1e-4;
    expect(what, y, want, no, tol, tol * (m > 1 ? m : 1));
    free(x), free(w), free(want);
    lx_sweep();
}

static void test_conv(void) {
    t_seed(15);
    for (int iter = 0; iter < 60; iter++) {
        conv_case c;
        memset(&c, 0, sizeof c);
        c.nsp = iter % 3 == 2 ? 1 : 2 - iter % 2;
        c.transpose = iter % 3 == 2;
        c.t = float_types[iter % 4];
        c.groups = t_int(1, 3);
        c.Cin = c.groups * t_int(1, 5);
        c.Cout = c.groups * t_int(1, 5);
        c.N = t_int(1, 3);
        c.strided_x = iter % 4 == 1;
        for (int d = 0; d < c.nsp; d++) {
            c.k[d] = t_int(1, 4);
            c.stride[d] = t_int(1, 3);
            c.dil[d] = t_int(1, 2);
            c.pad[d] = t_int(0, 2);
            int need = c.dil[d] * (c.k[d] - 1) + 1 - 2 * c.pad[d];
            c.in[d] = (need > 1 ? need : 1) + t_int(0, 8);
        }
        if (c.transpose) {
            c.pad[0] = t_int(0, c.dil[0] * (c.k[0] - 1));
            c.out_pad = t_int(0, c.stride[0] - 1);
        }
        if (c.nsp == 1) c.in[1] = c.k[1] = c.stride[1] = c.dil[1] = 1, c.pad[1] = 0;
        run_conv_case(&c, "conv");
    }
    /* depthwise (direct dot path) and 1x1 (in-place GEMM path), a bigger 3x3 */
    conv_case dw = {.nsp = 1, .N = 2, .Cin = 16, .Cout = 16, .groups = 16, .in = {20, 1},
                    .k = {4, 1}, .stride = {1, 1}, .pad = {3, 0}, .dil = {1, 1}, .t = LX_FLOAT32};
    run_conv_case(&dw, "depthwise");
    conv_case pw = {.nsp = 2, .N = 2, .Cin = 24, .Cout = 40, .groups = 1, .in = {5, 7},
                    .k = {1, 1}, .stride = {1, 1}, .dil = {1, 1}, .t = LX_FLOAT32};
    run_conv_case(&pw, "1x1");
    pw.groups = 4;
    run_conv_case(&pw, "1x1 grouped");
    pw.t = LX_FLOAT16;
    run_conv_case(&pw, "1x1 half");
    conv_case big = {.nsp = 2, .N = 1, .Cin = 32, .Cout = 48, .groups = 1, .in = {24, 20},
                     .k = {3, 3}, .stride = {1, 1}, .pad = {1, 1}, .dil = {1, 1},
                     .t = LX_FLOAT32};
    run_conv_case(&big, "3x3");
    big.stride[0] = big.stride[1] = 2;
    big.t = LX_BFLOAT16;
    run_conv_case(&big, "3x3 stride 2");
    conv_case tr = {.nsp = 1, .N = 2, .Cin = 6, .Cout = 4, .groups = 2, .in = {9, 1},
                    .k = {4, 1}, .stride = {2, 1}, .pad = {1, 0}, .dil = {1, 1}, .out_pad = 1,
                    .transpose = true, .t = LX_FLOAT32};
    run_conv_case(&tr, "transpose");
    tr.pad[0] = 5; /* padding beyond dilation*(K-1): negative low padding, cropped */
    tr.in[0] = 12;
    run_conv_case(&tr, "transpose cropped");
}

static void test_upsample(void) {
    t_seed(16);
    int shape[4] = {2, 3, 4, 5};
    size_t n = prod(shape, 4);
    double x[120];
    fill(x, n, -5, 5);
    for (int ti = 0; ti < 2; ti++) {
        lx_dtype t = ti ? LX_INT32 : LX_FLOAT32;
        lx_array xa = mk(x, shape, 4, t);
        lx_array y = lx_upsample_nearest(xa, 2, 3);
        int oh = 6, ow = 12;
        double *want = malloc(sizeof(double) * 2 * oh * ow * 5);
        for (int b = 0; b < 2; b++)
            for (int h = 0; h < oh; h++)
                for (int w = 0; w < ow; w++)
                    for (int c = 0; c < 5; c++)
                        want[((b * oh + h) * ow + w) * 5 + c] =
                            x[((b * 3 + h / 2) * 4 + w / 3) * 5 + c];
        CHECK(lx_dim(y, 1) == 6 && lx_dim(y, 2) == 12 && lx_dtype_of(y) == t);
        expect("upsample_nearest", y, want, (size_t)2 * oh * ow * 5, 0, 0);
        free(want);
        lx_array same = lx_upsample_nearest(xa, 1, 1);
        expect("upsample_nearest 1x1", same, x, n, 0, 0);
    }
}

/* ---- errors --------------------------------------------------------------------------------- */

static void expect_error(lx_array r, lx_status st, const char *name, const char *op) {
    CHECK(lx_is_null(r));
    const char *msg = lx_error_message();
    CHECK_MSG(msg && strstr(msg, op) != NULL, "%s: message '%s' does not name %s", name,
              msg ? msg : "(null)", op);
    CHECK_ERROR(st);
}

static void test_errors(void) {
    double buf[4096];
    for (int i = 0; i < 4096; i++) buf[i] = 0.5;
    int s3[3] = {2, 3, 8}, s4[4] = {1, 4, 5, 8}, s4k[4] = {1, 3, 5, 8}, s1[1] = {7};
    lx_array x3 = mk(buf, s3, 3, LX_FLOAT32);
    lx_array xi = mk(buf, s3, 3, LX_INT32);
    lx_array w7 = mk(buf, s1, 1, LX_FLOAT32);
    lx_keep(x3, xi, w7);

    /* layer_norm */
    expect_error(lx_layer_norm(x3, w7, LX_NULL_ARRAY, 1e-5f), LX_E_SHAPE, "ln w", "lx_layer_norm");
    expect_error(lx_layer_norm(xi, LX_NULL_ARRAY, LX_NULL_ARRAY, 1e-5f), LX_E_DTYPE, "ln int",
                 "lx_layer_norm");
    expect_error(lx_layer_norm(lx_scalar_f32(1), LX_NULL_ARRAY, LX_NULL_ARRAY, 1e-5f), LX_E_SHAPE,
                 "ln scalar", "lx_layer_norm");
    expect_error(lx_layer_norm(LX_NULL_ARRAY, LX_NULL_ARRAY, LX_NULL_ARRAY, 1e-5f), LX_E_ARG,
                 "ln null", "lx_layer_norm");
    /* group_norm */
    expect_error(lx_group_norm(x3, 3, LX_NULL_ARRAY, LX_NULL_ARRAY, 1e-5f), LX_E_ARG, "gn groups",
                 "lx_group_norm");
    expect_error(lx_group_norm(x3, 2, w7, LX_NULL_ARRAY, 1e-5f), LX_E_SHAPE, "gn w",
                 "lx_group_norm");
    expect_error(lx_group_norm(w7, 1, LX_NULL_ARRAY, LX_NULL_ARRAY, 1e-5f), LX_E_SHAPE, "gn 1d",
                 "lx_group_norm");
    /* rope */
    expect_error(lx_rope(x3, 3, false, 10000, 1, 0), LX_E_ARG, "rope odd", "lx_rope");
    expect_error(lx_rope(x3, 10, false, 10000, 1, 0), LX_E_ARG, "rope dims>D", "lx_rope");
    expect_error(lx_rope(x3, 0, false, 10000, 1, 0), LX_E_ARG, "rope 0", "lx_rope");
    expect_error(lx_rope(xi, 4, false, 10000, 1, 0), LX_E_DTYPE, "rope int", "lx_rope");
    expect_error(lx_rope(w7, 2, false, 10000, 1, 0), LX_E_SHAPE, "rope 1d", "lx_rope");
    expect_error(lx_rope(x3, 4, false, -1, 1, 0), LX_E_ARG, "rope base", "lx_rope");
    expect_error(lx_rope_freqs(x3, 4, false, w7, 1, 0), LX_E_SHAPE, "rope freqs",
                 "lx_rope_freqs");
    expect_error(lx_rope_freqs(x3, 4, false, LX_NULL_ARRAY, 1, 0), LX_E_ARG, "rope null freqs",
                 "lx_rope_freqs");
    lx_array o2 = mk(buf, (int[]){2}, 1, LX_INT32), o11 = mk(buf, (int[]){1, 1}, 2, LX_INT32);
    expect_error(lx_rope_at(x3, 4, false, 10000, 1, mk(buf, s1, 1, LX_INT64)), LX_E_SHAPE,
                 "rope_at [7]", "lx_rope_at");
    expect_error(lx_rope_at(x3, 4, false, 10000, 1, o2), LX_E_SHAPE, "rope_at [2]", "lx_rope_at");
    expect_error(lx_rope_at(x3, 4, false, 10000, 1, o11), LX_E_SHAPE, "rope_at [1,1]",
                 "lx_rope_at");
    expect_error(lx_rope_at(x3, 4, false, 10000, 1, lx_scalar_f32(3)), LX_E_DTYPE,
                 "rope_at float", "lx_rope_at");
    expect_error(lx_rope_at(x3, 4, false, 10000, 1, lx_scalar(1, LX_BOOL)), LX_E_DTYPE,
                 "rope_at bool", "lx_rope_at");
    expect_error(lx_rope_at(x3, 4, false, 10000, 1, LX_NULL_ARRAY), LX_E_ARG, "rope_at null",
                 "lx_rope_at");
    expect_error(lx_rope_at(x3, 3, false, 10000, 1, lx_scalar_i32(0)), LX_E_ARG, "rope_at odd",
                 "lx_rope_at");
    expect_error(lx_rope_freqs_at(x3, 4, false, w7, 1, lx_scalar_i32(0)), LX_E_SHAPE,
                 "rope_freqs_at freqs", "lx_rope_freqs_at");
    expect_error(lx_rope_freqs_at(x3, 4, false, mk(buf, (int[]){2}, 1, LX_FLOAT32), 1, o2),
                 LX_E_SHAPE, "rope_freqs_at offset", "lx_rope_freqs_at");
    /* sdpa */
    lx_array q = mk(buf, s4, 4, LX_FLOAT32), k = mk(buf, s4k, 4, LX_FLOAT32);
    lx_array k2 = mk(buf, (int[]){1, 2, 5, 8}, 4, LX_FLOAT32);
    lx_array v2 = mk(buf, (int[]){1, 2, 6, 8}, 4, LX_FLOAT32);
    lx_array kd = mk(buf, (int[]){1, 2, 5, 6}, 4, LX_FLOAT32);
    lx_array qi = mk(buf, s4, 4, LX_INT32);
    lx_keep(q, k, k2, v2, kd, qi);
    expect_error(lx_sdpa(q, k, k, 1, false, LX_NULL_ARRAY), LX_E_SHAPE, "sdpa heads", "lx_sdpa");
    expect_error(lx_sdpa(q, k2, v2, 1, false, LX_NULL_ARRAY), LX_E_SHAPE, "sdpa Lk", "lx_sdpa");
    expect_error(lx_sdpa(q, kd, kd, 1, false, LX_NULL_ARRAY), LX_E_SHAPE, "sdpa D", "lx_sdpa");
    expect_error(lx_sdpa(x3, x3, x3, 1, false, LX_NULL_ARRAY), LX_E_SHAPE, "sdpa 3d", "lx_sdpa");
    expect_error(lx_sdpa(qi, qi, qi, 1, false, LX_NULL_ARRAY), LX_E_DTYPE, "sdpa int", "lx_sdpa");
    expect_error(lx_sdpa(q, k2, k2, 1, false, w7), LX_E_SHAPE, "sdpa mask shape", "lx_sdpa");
    lx_array mi = mk(buf, (int[]){5, 5}, 2, LX_INT32);
    expect_error(lx_sdpa(q, k2, k2, 1, false, mi), LX_E_DTYPE, "sdpa mask dtype", "lx_sdpa");
    expect_error(lx_sdpa_sinks(q, k2, k2, 1, false, LX_NULL_ARRAY, w7), LX_E_SHAPE, "sdpa sinks",
                 "lx_sdpa_sinks");
    expect_error(lx_sdpa_sinks(q, k2, k2, 1, false, LX_NULL_ARRAY, LX_NULL_ARRAY), LX_E_ARG,
                 "sdpa null sinks", "lx_sdpa_sinks");
    /* conv */
    lx_array cx = mk(buf, (int[]){1, 10, 4}, 3, LX_FLOAT32);
    lx_array cw = mk(buf, (int[]){6, 3, 2}, 3, LX_FLOAT32);
    lx_array cw4 = mk(buf, (int[]){6, 3, 3, 4}, 4, LX_FLOAT32);
    lx_keep(cx, cw, cw4);
    expect_error(lx_conv1d(cx, cw, 1, 0, 1, 1), LX_E_SHAPE, "conv channels", "lx_conv1d");
    expect_error(lx_conv1d(cx, cw, 1, 0, 1, 3), LX_E_SHAPE, "conv groups", "lx_conv1d");
    expect_error(lx_conv1d(cx, cw, 0, 0, 1, 2), LX_E_ARG, "conv stride", "lx_conv1d");
    expect_error(lx_conv1d(cx, cw, 1, -1, 1, 2), LX_E_ARG, "conv padding", "lx_conv1d");
    expect_error(lx_conv1d(cx, cw, 1, 0, 6, 2), LX_E_SHAPE, "conv too short", "lx_conv1d");
    expect_error(lx_conv1d(cx, cw, 1, 0, 1, 0), LX_E_ARG, "conv groups 0", "lx_conv1d");
    expect_error(lx_conv2d(cx, cw4, NULL, NULL, NULL, 1), LX_E_SHAPE, "conv2d ndim", "lx_conv2d");
    expect_error(lx_conv1d(mk(buf, (int[]){1, 10, 4}, 3, LX_INT32), mk(buf, (int[]){6, 3, 4}, 3,
                                                                     LX_INT32), 1, 0, 1, 1),
                 LX_E_DTYPE, "conv int", "lx_conv1d");
    expect_error(lx_conv_transpose1d(cx, cw, 1, 0, 1, -1, 2), LX_E_ARG, "convT out pad",
                 "lx_conv_transpose1d");
    expect_error(lx_upsample_nearest(cx, 2, 2), LX_E_SHAPE, "upsample ndim",
                 "lx_upsample_nearest");
    expect_error(lx_upsample_nearest(mk(buf, s4, 4, LX_FLOAT32), 0, 2), LX_E_ARG,
                 "upsample scale", "lx_upsample_nearest");
    /* a released handle */
    lx_array gone = mk(buf, s3, 3, LX_FLOAT32);
    lx_sweep();
    expect_error(lx_layer_norm(gone, LX_NULL_ARRAY, LX_NULL_ARRAY, 1e-5f), LX_E_FREED, "freed",
                 "lx_layer_norm");
    /* valid calls still work after the errors */
    lx_array ok = lx_sdpa(q, k2, k2, 0.1f, true, LX_NULL_ARRAY);
    CHECK(lx_eval(ok) == LX_OK);
    lx_free(x3), lx_free(xi), lx_free(w7), lx_free(q), lx_free(k), lx_free(k2), lx_free(v2);
    lx_free(kd), lx_free(qi), lx_free(cx), lx_free(cw), lx_free(cw4), lx_free(ok);
}

/* The kernels' branch-free float16 conversion agrees with the reference one on every bit
 * pattern. (Their exp is elementwise_ops.h's, checked by test_exp_log_accuracy.) */
static void test_h2f(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = lx_nn_h2f((uint16_t)h), b = lx_f16_to_f32((uint16_t)h);
        if (memcmp(&a, &b, 4) != 0 && !(a != a && b != b)) bad++;
    }
    CHECK_MSG(bad == 0, "%d float16 patterns convert differently", bad);
}

int main(void) {
    RUN_TEST(test_h2f);
    RUN_TEST(test_layer_norm);
    RUN_TEST(test_group_norm);
    RUN_TEST(test_rope);
    RUN_TEST(test_rope_at);
    RUN_TEST(test_sdpa);
    RUN_TEST(test_conv);
    RUN_TEST(test_upsample);
    RUN_TEST(test_errors);
    return test_finish();
}
