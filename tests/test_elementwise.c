/*
 * test_elementwise.c -- the elementwise ops (src/ops/elementwise.c) and their CPU kernels
 * (COPY, FULL, ARANGE, UNARY, BINARY, WHERE) against float64 references computed here.
 *
 * Inputs are random arrays of 1-4 dimensions in every dtype, made contiguous, transposed
 * (lx_transpose), strided (lx_slice with step 2) or reversed (lx_slice with step -1), and
 * broadcast against each other. Input values are first rounded to their dtype, so a
 * reference sees exactly what the kernel sees; the reference is computed in double and
 * rounded to the output dtype (correct rounding, written here independently of lx).
 *
 * Tolerances (relative, plus an absolute floor for results near zero):
 *  - float64: 1e-13. libm's double functions are within an ulp or two (~2e-16 each); the
 *    composed ones (sigmoid, gelu, erfinv's Halley steps) add a few ulps.
 *  - float32: 2e-6 (~16 ulps) for math functions: glibc's float functions are within 1-2
 *    ulps and sigmoid/silu/gelu compose a few of them; single arithmetic ops are within 1e-7
 *    (one rounding) but share the bound. erfinv is checked separately at 2.4e-7 (2 ulps).
 *  - float16: 2^-10. The kernel computes in float32 and rounds once to float16 (at most
 *    2^-11 relative), so the result can differ from the correctly rounded reference by one
 *    float16 ulp; absolute floor 2^-24, float16's subnormal spacing.
 *  - bfloat16: 2^-8, for the same reason with bfloat16's 8-bit significand (rounding error
 *    at most 2^-9 relative).
 *  - integers and bool: exact.
 * Math functions also get their conditioning: rtol + cond(x) * 2^-23 (float32, float16,
 * bfloat16, which compute in float32) or 2^-51 (float64), cond(x) = |x f'(x) / f(x)|. A float
 * kernel rounds intermediates proportional to x (x/sqrt2 in gelu, 2u in gelu_approx), which
 * moves f by cond * 2^-24; for gelu(-9) = -1e-18, cond ~ 81 and the bound is ~1e-5. Such
 * results are as good as float32 evaluation allows, not an implementation error.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h" /* white-box: the float16/bfloat16 bit conversions */
#include "core/node.h"  /* white-box: lx_node_live_count */
#include "test_util.h"

#define NDT 13
static const lx_dtype ALL[NDT] = {LX_BOOL,  LX_UINT8,  LX_UINT16, LX_UINT32,   LX_UINT64,
                                  LX_INT8,  LX_INT16,  LX_INT32,  LX_INT64,    LX_FLOAT16,
                                  LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};

static bool is_float(lx_dtype t) { return lx_dtype_is_float(t); }
static bool is_unsigned(lx_dtype t) { return t >= LX_UINT8 && t <= LX_UINT64; }

/* ------------------------------------------------------------------------------------------ */
/* Reference rounding and conversions                                                        */

/* Correctly rounded (nearest, ties to even) float16 / bfloat16 value of d, as a double. */
static double round_half(double d, bool bf) {
    if (isnan(d) || isinf(d) || d == 0) return d;
    int man = bf ? 7 : 10, emin = bf ? -126 : -14;
    double maxv = bf ? 3.3895313892515355e38 : 65504.0;
    int e;
    frexp(fabs(d), &e); /* |d| = m 2^e, m in [0.5, 1) */
    int ex = e - 1 < emin ? emin : e - 1;
    double q = ldexp(1.0, ex - man);
    double r = nearbyint(d / q) * q; /* d / q < 2^(man+1): exact, then ties to even */
    if (fabs(r) > maxv) return d > 0 ? INFINITY : -INFINITY;
    return r;
}

/* Wraps an integer value (|v| < 2^63) into dtype t's range, modulo 2^bits. */
static double wrap_int(double v, lx_dtype t) {
    int64_t i = (int64_t)v;
    switch (t) {
    case LX_BOOL: return v != 0;
    case LX_UINT8: return (uint8_t)i;
    case LX_UINT16: return (uint16_t)i;
    case LX_UINT32: return (uint32_t)i;
    case LX_UINT64: return (double)(uint64_t)i;
    case LX_INT8: return (int8_t)i;
    case LX_INT16: return (int16_t)i;
    case LX_INT32: return (int32_t)i;
    default: return (double)i;
    }
}

/* The value of v rounded to dtype t (for floats); integers as they are. */
static double round_to(lx_dtype t, double v) {
    switch (t) {
    case LX_FLOAT16: return round_half(v, false);
    case LX_BFLOAT16: return round_half(v, true);
    case LX_FLOAT32: return (double)(float)v;
    case LX_BOOL: return v != 0;
    default: return v;
    }
}

/* Writes an (already representable) value as dtype t. */
static void put(void *p, size_t i, lx_dtype t, double v) {
    switch (t) {
    case LX_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case LX_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case LX_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case LX_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case LX_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; break;
    case LX_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case LX_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
    case LX_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case LX_INT64: ((int64_t *)p)[i] = (int64_t)v; break;
    case LX_FLOAT16: ((uint16_t *)p)[i] = lx_f32_to_f16((float)v); break;
    case LX_BFLOAT16: ((uint16_t *)p)[i] = lx_f32_to_bf16((float)v); break;
    case LX_FLOAT32: ((float *)p)[i] = (float)v; break;
    default: ((double *)p)[i] = v; break;
    }
}

static double get(const void *p, size_t i, lx_dtype t) {
    switch (t) {
    case LX_BOOL: return ((const uint8_t *)p)[i];
    case LX_UINT8: return ((const uint8_t *)p)[i];
    case LX_UINT16: return ((const uint16_t *)p)[i];
    case LX_UINT32: return ((const uint32_t *)p)[i];
    case LX_UINT64: return (double)((const uint64_t *)p)[i];
    case LX_INT8: return ((const int8_t *)p)[i];
    case LX_INT16: return ((const int16_t *)p)[i];
    case LX_INT32: return ((const int32_t *)p)[i];
    case LX_INT64: return (double)((const int64_t *)p)[i];
    case LX_FLOAT16: return lx_f16_to_f32(((const uint16_t *)p)[i]);
    case LX_BFLOAT16: return lx_bf16_to_f32(((const uint16_t *)p)[i]);
    case LX_FLOAT32: return ((const float *)p)[i];
    default: return ((const double *)p)[i];
    }
}

static double convert_ref(double v, lx_dtype from, lx_dtype to);

static void tol_for(lx_dtype t, double *rtol, double *atol) {
    switch (t) {
    case LX_FLOAT64: *rtol = 1e-13; *atol = 1e-300; break;
    case LX_FLOAT32: *rtol = 2e-6; *atol = 1e-37; break;
    case LX_FLOAT16: *rtol = 1.0 / 1024; *atol = 1.0 / 16777216; break;
    case LX_BFLOAT16: *rtol = 1.0 / 256; *atol = 1e-38; break;
    default: *rtol = 0; *atol = 0;
    }
}

/* Reads an array as doubles (n elements). Returns NULL on failure. */
static double *read_all(lx_array y, size_t *n_out) {
    size_t n = lx_size(y), nb = lx_nbytes(y);
    lx_dtype t = lx_dtype_of(y);
    void *raw = malloc(nb ? nb : 1);
    double *v = malloc(sizeof(double) * (n ? n : 1));
    lx_status st = lx_read(y, raw, nb);
    if (st != LX_OK) {
        fprintf(stderr, "lx_read failed: %s\n", lx_error_message());
        lx_clear_error();
        free(raw);
        free(v);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) v[i] = get(raw, i, t);
    free(raw);
    if (n_out) *n_out = n;
    return v;
}

/* Compares n values; reports the first few mismatches under `what`. */
static int compare_each(const char *what, const double *got, const double *want,
                        const double *in1, const double *in2, size_t n, double rtol,
                        const double *rtols, double atol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok = t_close(got[i], want[i], rtols ? rtols[i] : rtol, atol);
        if (ok && want[i] == 0 && got[i] != 0) ok = fabs(got[i]) <= atol; /* zero is zero */
        if (!ok) {
            if (bad < 4) {
                fprintf(stderr, "  %s[%zu]: got %.17g want %.17g", what, i, got[i], want[i]);
                if (in1) fprintf(stderr, " (x %.17g", in1[i]);
                if (in2) fprintf(stderr, ", y %.17g", in2[i]);
                fprintf(stderr, "%s\n", in1 ? ")" : "");
            }
            bad++;
        }
    }
    t_checks++;
    if (bad) {
        t_failures++;
        fprintf(stderr, "%s: %d of %zu values outside rtol %g%s atol %g\n", what, bad, n, rtol,
                rtols ? " (+ conditioning)" : "", atol);
    }
    return bad == 0;
}

static int compare(const char *what, const double *got, const double *want, const double *in1,
                   const double *in2, size_t n, double rtol, double atol) {
    return compare_each(what, got, want, in1, in2, n, rtol, NULL, atol);
}

/* The relative condition number |x f'(x) / f(x)| of f at x (0 where it is not finite):
 * rounding x, or an intermediate proportional to it, by a relative e moves f(x) by about
 * cond * e. Float kernels round such intermediates (x/sqrt2 in gelu, -x in sigmoid, ...), so
 * their error bound grows with it, e.g. gelu(-9) = -1e-18 has cond ~ 81. */
static double cond_number(double (*f)(double), double x) {
    if (!isfinite(x) || x == 0) return 0;
    double h = 1e-7, fx = f(x);
    double d = (f(x * (1 + h)) - f(x * (1 - h))) / (2 * h);
    double c = fabs(d / fx);
    return isfinite(c) ? c : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Random inputs in several layouts                                                           */

enum { D_ANY, D_POS, D_UNIT, D_EXP, D_TAN, D_LOG1P, D_NONZERO, D_HALF, D_POWBASE, D_POWEXP,
       D_WIDE };
enum { L_CONTIG, L_TRANSPOSED, L_STRIDED, L_REVERSED, L_COUNT };

static double gen(lx_dtype t, int domain) {
    if (is_float(t)) {
        switch (domain) {
        case D_POS: return t_uniform(0.05, 10);
        case D_UNIT: return t_uniform(-0.999, 0.999);
        case D_EXP: return t_uniform(-10, 10);
        case D_TAN: return t_uniform(-1.4, 1.4);
        case D_LOG1P: return t_uniform(-0.9, 10);
        case D_NONZERO: return (t_next() & 1 ? 1 : -1) * t_uniform(0.1, 10);
        case D_HALF: return 0.5 * t_int(-12, 12);
        case D_POWBASE: return t_uniform(0.1, 4);
        case D_POWEXP: return t_uniform(-3, 3);
        case D_WIDE: return t_uniform(-100, 100);
        default: return t_uniform(-5, 5);
        }
    }
    if (t == LX_BOOL) return (double)(t_next() & 1);
    int lo, hi;
    switch (domain) {
    case D_POS: lo = 1; hi = 10; break;
    case D_UNIT: lo = -1; hi = 1; break;
    case D_EXP: lo = -10; hi = 10; break;
    case D_TAN: lo = -1; hi = 1; break;
    case D_LOG1P: lo = 0; hi = 10; break;
    case D_NONZERO: lo = 1; hi = 10; break;
    case D_POWBASE: lo = -5; hi = 5; break;
    case D_POWEXP: lo = 0; hi = 6; break;
    case D_WIDE: lo = -120; hi = 120; break;
    default: lo = -9; hi = 9;
    }
    double v = t_int(lo, hi);
    if (domain == D_NONZERO && (t_next() & 1)) v = -v;
    if (is_unsigned(t)) v = fabs(v);
    return v;
}

typedef struct {
    lx_array a;
    lx_dtype t;
    int nd;
    int shape[LX_MAX_NDIM];
    size_t n;
    double *v; /* logical values, row-major */
} tensor;

static size_t prod(const int *shape, int nd) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    return n;
}

/* Row-major index of idx (with src_shape) */
static size_t flat(const int *idx, const int *shape, int nd) {
    size_t f = 0;
    for (int d = 0; d < nd; d++) f = f * (size_t)shape[d] + (size_t)idx[d];
    return f;
}

static void unflat(size_t f, const int *shape, int nd, int *idx) {
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = shape[d] ? (int)(f % (size_t)shape[d]) : 0;
        if (shape[d]) f /= (size_t)shape[d];
    }
}

/* An array of dtype t and the given shape holding `vals` (or random values of `domain` when
 * vals is NULL), laid out as `layout`. The array is kept; release with drop(). */
static tensor make(lx_dtype t, const int *shape, int nd, int layout, int domain,
                   const double *vals) {
    tensor x;
    memset(&x, 0, sizeof x);
    x.t = t;
    x.nd = nd;
    memcpy(x.shape, shape, sizeof(int) * (size_t)nd);
    x.n = prod(shape, nd);
    x.v = malloc(sizeof(double) * (x.n ? x.n : 1));
    for (size_t i = 0; i < x.n; i++) x.v[i] = round_to(t, vals ? vals[i] : gen(t, domain));
    size_t es = lx_dtype_size(t);
    if (nd < 1 || x.n == 0) layout = L_CONTIG;
    if (layout == L_CONTIG) {
        void *raw = malloc(x.n * es + 1);
        for (size_t i = 0; i < x.n; i++) put(raw, i, t, x.v[i]);
        x.a = lx_array_new(raw, shape, nd, t);
        free(raw);
    } else if (layout == L_TRANSPOSED) {
        int src_shape[LX_MAX_NDIM], idx[LX_MAX_NDIM], lidx[LX_MAX_NDIM];
        for (int d = 0; d < nd; d++) src_shape[d] = shape[nd - 1 - d];
        void *raw = malloc(x.n * es + 1);
        for (size_t j = 0; j < x.n; j++) {
            unflat(j, src_shape, nd, idx);
            for (int d = 0; d < nd; d++) lidx[d] = idx[nd - 1 - d];
            put(raw, j, t, x.v[flat(lidx, shape, nd)]);
        }
        lx_array src = lx_array_new(raw, src_shape, nd, t);
        free(raw);
        x.a = lx_transpose(src, NULL, 0);
    } else {
        bool rev = layout == L_REVERSED;
        int src_shape[LX_MAX_NDIM], start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM];
        int idx[LX_MAX_NDIM], sidx[LX_MAX_NDIM];
        for (int d = 0; d < nd; d++) {
            src_shape[d] = rev ? shape[d] : 2 * shape[d] + 1;
            start[d] = rev ? shape[d] - 1 : 1;
            stop[d] = rev ? -shape[d] - 1 : 1 + 2 * shape[d];
            step[d] = rev ? -1 : 2;
        }
        size_t sn = prod(src_shape, nd);
        void *raw = malloc(sn * es + 1);
        for (size_t j = 0; j < sn; j++) put(raw, j, t, t == LX_BOOL ? 1 : 77); /* filler */
        for (size_t i = 0; i < x.n; i++) {
            unflat(i, shape, nd, idx);
            for (int d = 0; d < nd; d++) sidx[d] = rev ? shape[d] - 1 - idx[d] : 1 + 2 * idx[d];
            put(raw, flat(sidx, src_shape, nd), t, x.v[i]);
        }
        lx_array src = lx_array_new(raw, src_shape, nd, t);
        free(raw);
        x.a = lx_slice(src, start, stop, step, nd);
    }
    lx_keep(x.a);
    return x;
}

static void drop(tensor *x) {
    lx_free(x->a);
    free(x->v);
    x->v = NULL;
}

/* The value of x at output index idx (out has nd dims), with broadcasting. */
static double at(const tensor *x, const int *idx, int nd) {
    size_t f = 0;
    int lead = nd - x->nd;
    for (int d = 0; d < x->nd; d++) {
        int i = x->shape[d] == 1 ? 0 : idx[d + lead];
        f = f * (size_t)x->shape[d] + (size_t)i;
    }
    return x->v[f];
}

static int random_shape(int *shape, int max_dim) {
    int nd = t_int(1, 4);
    for (int d = 0; d < nd; d++) shape[d] = t_int(1, max_dim);
    return nd;
}

/* Evaluates y (checking its dtype and shape) and returns its values (caller frees). */
static double *eval_read(const char *what, lx_array y, lx_dtype want_dtype, const int *shape,
                         int nd) {
    if (lx_is_null(y)) {
        fprintf(stderr, "%s: null result: %s\n", what, lx_error_message());
        t_failures++;
        lx_clear_error();
        return NULL;
    }
    CHECK_MSG(lx_dtype_of(y) == want_dtype, "%s: dtype %s, want %s", what,
              lx_dtype_name(lx_dtype_of(y)), lx_dtype_name(want_dtype));
    CHECK_MSG(lx_ndim(y) == nd, "%s: ndim %d want %d", what, lx_ndim(y), nd);
    for (int d = 0; d < nd && d < lx_ndim(y); d++)
        CHECK_MSG(lx_dim(y, d) == shape[d], "%s: dim %d is %d want %d", what, d, lx_dim(y, d),
                  shape[d]);
    lx_status st = lx_eval(y);
    if (st != LX_OK) {
        fprintf(stderr, "%s: eval failed: %s\n", what, lx_error_message());
        t_failures++;
        lx_clear_error();
        lx_free(y);
        return NULL;
    }
    double *v = read_all(y, NULL);
    lx_free(y);
    if (!v) t_failures++;
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Unary ops                                                                                  */

static double ref_erfinv(double x) {
    if (isnan(x) || x < -1 || x > 1) return NAN;
    if (x == 1) return INFINITY;
    if (x == -1) return -INFINITY;
    if (x == 0) return x;
    double a = fabs(x), lo = 0, hi = 10;
    for (int i = 0; i < 200; i++) { /* bisection; erfc where erf saturates */
        double mid = 0.5 * (lo + hi);
        bool below = a > 0.5 ? erfc(mid) > 1 - a : erf(mid) < a;
        if (below) lo = mid;
        else hi = mid;
    }
    return copysign(0.5 * (lo + hi), x);
}
static double ref_neg(double x) { return -x; }
static double ref_sign(double x) { return x > 0 ? 1 : (x < 0 ? -1 : x); }
static double ref_square(double x) { return x * x; }
static double ref_rsqrt(double x) { return 1 / sqrt(x); }
static double ref_recip(double x) { return 1 / x; }
static double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double ref_silu(double x) { return isinf(x) && x < 0 ? 0.0 : x / (1 + exp(-x)); }
static double ref_relu(double x) { return isnan(x) ? x : (x > 0 ? x : 0); }
/* gelu = x/2 (1 + erf(x/sqrt2)) and gelu_approx = x/2 (1 + tanh(u)); the references use
 * 1 + erf(z) = erfc(-z) and 1 + tanh(u) = 2 / (1 + e^-2u), which are exact identities that
 * avoid the cancellation for negative x (where the results are tiny). */
static double ref_gelu(double x) {
    return isinf(x) && x < 0 ? 0.0 : 0.5 * x * erfc(-x / sqrt(2.0));
}
static double ref_gelu_approx(double x) {
    if (isinf(x)) return x < 0 ? 0.0 : x;
    double u = sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
    return x / (1 + exp(-2 * u));
}
static double ref_round(double x) { /* half to even, by hand */
    if (!isfinite(x)) return x;
    double r = floor(x), d = x - r;
    if (d > 0.5 || (d == 0.5 && fmod(r, 2) != 0)) r += 1;
    return r == 0 ? copysign(0.0, x) : r;
}
static double ref_not(double x) { return x == 0; }
static double ref_isnan(double x) { return isnan(x) != 0; }
static double ref_isinf(double x) { return isinf(x) != 0; }
static double ref_isfinite(double x) { return isfinite(x) != 0; }

enum { K_KEEP, K_FLOAT, K_PRED, K_ROUND };
typedef struct {
    const char *name;
    lx_array (*fn)(lx_array);
    double (*ref)(double);
    int domain;
    int kind;
} uop;

static const uop UOPS[] = {
    {"neg", lx_neg, ref_neg, D_ANY, K_KEEP},
    {"abs", lx_abs, fabs, D_ANY, K_KEEP},
    {"sign", lx_sign, ref_sign, D_ANY, K_KEEP},
    {"square", lx_square, ref_square, D_ANY, K_KEEP},
    {"sqrt", lx_sqrt, sqrt, D_POS, K_FLOAT},
    {"rsqrt", lx_rsqrt, ref_rsqrt, D_POS, K_FLOAT},
    {"reciprocal", lx_reciprocal, ref_recip, D_NONZERO, K_FLOAT},
    {"exp", lx_exp, exp, D_EXP, K_FLOAT},
    {"expm1", lx_expm1, expm1, D_EXP, K_FLOAT},
    {"log", lx_log, log, D_POS, K_FLOAT},
    {"log1p", lx_log1p, log1p, D_LOG1P, K_FLOAT},
    {"log2", lx_log2, log2, D_POS, K_FLOAT},
    {"log10", lx_log10, log10, D_POS, K_FLOAT},
    {"sin", lx_sin, sin, D_ANY, K_FLOAT},
    {"cos", lx_cos, cos, D_ANY, K_FLOAT},
    {"tan", lx_tan, tan, D_TAN, K_FLOAT},
    {"tanh", lx_tanh, tanh, D_ANY, K_FLOAT},
    {"erf", lx_erf, erf, D_ANY, K_FLOAT},
    {"erfinv", lx_erfinv, ref_erfinv, D_UNIT, K_FLOAT},
    {"sigmoid", lx_sigmoid, ref_sigmoid, D_WIDE, K_FLOAT},
    {"silu", lx_silu, ref_silu, D_ANY, K_FLOAT},
    {"relu", lx_relu, ref_relu, D_ANY, K_KEEP},
    {"gelu", lx_gelu, ref_gelu, D_ANY, K_FLOAT},
    {"gelu_approx", lx_gelu_approx, ref_gelu_approx, D_ANY, K_FLOAT},
    {"floor", lx_floor, floor, D_ANY, K_ROUND},
    {"ceil", lx_ceil, ceil, D_ANY, K_ROUND},
    {"round", lx_round, ref_round, D_HALF, K_ROUND},
    {"logical_not", lx_logical_not, ref_not, D_HALF, K_PRED},
    {"isnan", lx_isnan, ref_isnan, D_ANY, K_PRED},
    {"isinf", lx_isinf, ref_isinf, D_ANY, K_PRED},
    {"isfinite", lx_isfinite, ref_isfinite, D_ANY, K_PRED},
};
#define N_UOPS ((int)(sizeof UOPS / sizeof UOPS[0]))

static lx_dtype unary_out_dtype(const uop *op, lx_dtype t) {
    switch (op->kind) {
    case K_PRED: return LX_BOOL;
    case K_FLOAT: return is_float(t) ? t : LX_FLOAT32;
    default: return t;
    }
}

/* Reference of op on x of dtype t, rounded to the output dtype. */
static double unary_want(const uop *op, lx_dtype t, double x) {
    lx_dtype ot = unary_out_dtype(op, t);
    double r = op->ref(x);
    if (!is_float(ot)) return ot == LX_BOOL ? r != 0 : wrap_int(r, ot);
    return round_to(ot, r);
}

static void run_unary(const uop *op, const tensor *x, const char *tag) {
    char what[128];
    snprintf(what, sizeof what, "%s(%s%s)", op->name, lx_dtype_name(x->t), tag);
    lx_dtype ot = unary_out_dtype(op, x->t);
    double *got = eval_read(what, op->fn(x->a), ot, x->shape, x->nd);
    if (!got) return;
    double *want = malloc(sizeof(double) * (x->n + 1));
    for (size_t i = 0; i < x->n; i++) want[i] = unary_want(op, x->t, x->v[i]);
    double rtol, atol;
    tol_for(ot, &rtol, &atol);
    /* plus the conditioning: intermediates rounded to float32 (2^-23 allows two roundings)
     * or to float64 */
    double *rtols = malloc(sizeof(double) * (x->n + 1));
    double e = ot == LX_FLOAT64 ? ldexp(1, -51) : ldexp(1, -23);
    for (size_t i = 0; i < x->n; i++) rtols[i] = rtol + cond_number(op->ref, x->v[i]) * e;
    compare_each(what, got, want, x->v, NULL, x->n, rtol, is_float(ot) ? rtols : NULL, atol);
    free(rtols);
    free(want);
    free(got);
}

static void test_unary_random(void) {
    t_seed(1);
    static const char *layout_names[L_COUNT] = {"", ", transposed", ", strided", ", reversed"};
    for (int o = 0; o < N_UOPS; o++) {
        const uop *op = &UOPS[o];
        for (int k = 0; k < NDT; k++) {
            lx_dtype t = ALL[k];
            if (op->fn == lx_neg && t == LX_BOOL) continue; /* an error, tested below */
            for (int trial = 0; trial < 2; trial++) {
                int shape[LX_MAX_NDIM];
                int nd = random_shape(shape, 6);
                int layout = t_int(0, L_COUNT - 1);
                tensor x = make(t, shape, nd, layout, op->domain, NULL);
                run_unary(op, &x, layout_names[layout]);
                drop(&x);
            }
        }
    }
}

/* NaN, Inf, signed zeros and extremes through every unary op of every float dtype. */
static void test_unary_specials(void) {
    static const double sp[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5,
                                1e30, -1e30, 1e-30, 100.0, -100.0, 2.5, -2.5, 0.999, -0.999};
    int n = (int)(sizeof sp / sizeof sp[0]);
    static const lx_dtype fl[] = {LX_FLOAT16, LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};
    for (int k = 0; k < 4; k++)
        for (int o = 0; o < N_UOPS; o++) {
            tensor x = make(fl[k], (int[]){n}, 1, L_CONTIG, 0, sp);
            run_unary(&UOPS[o], &x, ", specials");
            drop(&x);
        }
}

static void test_unary_exact_cases(void) {
    /* round: half to even, keeping the sign of zero */
    {
        float in[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -3.5f, 0.49999997f, 1e8f};
        float want[] = {0.0f, 2.0f, 2.0f, -0.0f, -2.0f, -2.0f, 4.0f, -4.0f, 0.0f, 1e8f};
        lx_array y = lx_round(lx_array_f32(in, (int[]){10}, 1));
        float got[10];
        CHECK_OK(lx_eval(y));
        CHECK_OK(lx_read(y, got, sizeof got));
        for (int i = 0; i < 10; i++)
            CHECK_MSG(got[i] == want[i] && signbit(got[i]) == signbit(want[i]),
                      "round(%g) = %g want %g", in[i], got[i], want[i]);
        lx_free(y);
    }
    /* integer wrap-around: neg/abs of the most negative value, square overflow */
    {
        int8_t in[] = {-128, 127, -1, 16, 0};
        lx_array x = lx_array_new(in, (int[]){5}, 1, LX_INT8);
        lx_keep(x);
        lx_array n = lx_neg(x), a = lx_abs(x), s = lx_square(x), g = lx_sign(x);
        int8_t gn[5], ga[5], gs[5], gg[5];
        CHECK_OK(lx_eval(n, a, s, g));
        CHECK_OK(lx_read(n, gn, 5));
        CHECK_OK(lx_read(a, ga, 5));
        CHECK_OK(lx_read(s, gs, 5));
        CHECK_OK(lx_read(g, gg, 5));
        int8_t wn[] = {-128, -127, 1, -16, 0}, wa[] = {-128, 127, 1, 16, 0};
        int8_t ws[] = {0, 1, 1, 0, 0}, wg[] = {-1, 1, -1, 1, 0};
        CHECK(memcmp(gn, wn, 5) == 0);
        CHECK(memcmp(ga, wa, 5) == 0);
        CHECK(memcmp(gs, ws, 5) == 0);
        CHECK(memcmp(gg, wg, 5) == 0);
        lx_free(x);
        lx_free(n);
        lx_free(a);
        lx_free(s);
        lx_free(g);
    }
    {
        int64_t in[] = {INT64_MIN, INT64_MAX, -5, 3037000500LL};
        lx_array x = lx_array_new(in, (int[]){4}, 1, LX_INT64);
        lx_keep(x);
        lx_array n = lx_neg(x), a = lx_abs(x), s = lx_square(x);
        int64_t gn[4], ga[4], gs[4];
        CHECK_OK(lx_eval(n, a, s));
        CHECK_OK(lx_read(n, gn, sizeof gn));
        CHECK_OK(lx_read(a, ga, sizeof ga));
        CHECK_OK(lx_read(s, gs, sizeof gs));
        CHECK(gn[0] == INT64_MIN && gn[1] == -INT64_MAX && gn[2] == 5);
        CHECK(ga[0] == INT64_MIN && ga[1] == INT64_MAX && ga[2] == 5);
        CHECK(gs[2] == 25);
        CHECK(gs[3] == (int64_t)(3037000500ULL * 3037000500ULL)); /* wraps */
        lx_free(x);
        lx_free(n);
        lx_free(a);
        lx_free(s);
    }
    {
        uint8_t in[] = {0, 1, 200};
        lx_array n = lx_neg(lx_array_new(in, (int[]){3}, 1, LX_UINT8));
        uint8_t got[3];
        CHECK_OK(lx_eval(n));
        CHECK_OK(lx_read(n, got, 3));
        CHECK(got[0] == 0 && got[1] == 255 && got[2] == 56);
        lx_free(n);
    }
    /* sigmoid at the extremes: no overflow to NaN, tiny results kept */
    {
        float in[] = {-1000.0f, -100.0f, -20.0f, 0.0f, 20.0f, 100.0f, 1000.0f};
        lx_array y = lx_sigmoid(lx_array_f32(in, (int[]){7}, 1));
        float got[7];
        CHECK_OK(lx_eval(y));
        CHECK_OK(lx_read(y, got, sizeof got));
        for (int i = 0; i < 7; i++) {
            double w = ref_sigmoid(in[i]);
            /* -100 gives a float32 subnormal (3.7e-44): absolute spacing 1.4e-45 */
            CHECK_MSG(t_close(got[i], w, 2e-6, 3e-45), "sigmoid(%g) = %g want %g", in[i],
                      got[i], w);
        }
        lx_free(y);
        double ind[] = {-700.0, -40.0, 40.0};
        lx_array yd = lx_sigmoid(lx_array_new(ind, (int[]){3}, 1, LX_FLOAT64));
        double gd[3];
        CHECK_OK(lx_eval(yd));
        CHECK_OK(lx_read(yd, gd, sizeof gd));
        for (int i = 0; i < 3; i++)
            CHECK_MSG(t_close(gd[i], ref_sigmoid(ind[i]), 1e-14, 0), "sigmoid(%g) = %g", ind[i],
                      gd[i]);
        lx_free(yd);
    }
}

/* erfinv: float32 within 2 ulps of the float64 reference, including next to +-1; float64
 * within 1e-13 (erf(erfinv(x)) == x checked through erfc near 1). */
static void test_erfinv(void) {
    enum { N = 4096 };
    static float in[N];
    static double ind[N];
    t_seed(7);
    for (int i = 0; i < N; i++) {
        double u = t_uniform(-1, 1);
        if (i % 4 == 1) u = copysign(1 - pow(10, -t_uniform(1, 7)), u); /* close to +-1 */
        if (i % 4 == 2) u = copysign(pow(10, -t_uniform(0, 30)), u);    /* close to 0 */
        in[i] = (float)u;
        if (fabsf(in[i]) >= 1.0f) in[i] = copysignf(0.99999994f, in[i]);
        ind[i] = u;
        if (i % 4 == 3) ind[i] = copysign(1 - pow(10, -t_uniform(7, 15.5)), u);
    }
    lx_array y = lx_erfinv(lx_array_f32(in, (int[]){N}, 1));
    lx_array yd = lx_erfinv(lx_array_new(ind, (int[]){N}, 1, LX_FLOAT64));
    static float got[N];
    static double gd[N], want[N], wantd[N], x32[N];
    CHECK_OK(lx_eval(y, yd));
    CHECK_OK(lx_read(y, got, sizeof got));
    CHECK_OK(lx_read(yd, gd, sizeof gd));
    static double g32[N];
    for (int i = 0; i < N; i++) {
        x32[i] = in[i];
        g32[i] = got[i];
        want[i] = ref_erfinv(in[i]);
        wantd[i] = ref_erfinv(ind[i]);
    }
    compare("erfinv f32", g32, want, x32, NULL, N, 2.4e-7, 1e-44);
    compare("erfinv f64", gd, wantd, ind, NULL, N, 1e-13, 1e-300);
    lx_free(y);
    lx_free(yd);
}

/* ------------------------------------------------------------------------------------------ */
/* Binary ops                                                                                 */

enum { B_ARITH, B_FLOAT, B_PRED };
typedef struct {
    const char *name;
    lx_array (*fn)(lx_array, lx_array);
    int op; /* lx_binary_op, for the reference */
    int kind;
    int da, db;
} bop;

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAX, OP_MIN, OP_FDIV, OP_REM, OP_ATAN2, OP_EQ,
       OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_AND, OP_OR };

static const bop BOPS[] = {
    {"add", lx_add, OP_ADD, B_ARITH, D_WIDE, D_WIDE},
    {"sub", lx_sub, OP_SUB, B_ARITH, D_WIDE, D_WIDE},
    {"mul", lx_mul, OP_MUL, B_ARITH, D_WIDE, D_WIDE},
    {"div", lx_div, OP_DIV, B_FLOAT, D_ANY, D_NONZERO},
    {"pow", lx_pow, OP_POW, B_ARITH, D_POWBASE, D_POWEXP},
    {"maximum", lx_maximum, OP_MAX, B_ARITH, D_ANY, D_ANY},
    {"minimum", lx_minimum, OP_MIN, B_ARITH, D_ANY, D_ANY},
    {"floor_divide", lx_floor_divide, OP_FDIV, B_ARITH, D_WIDE, D_NONZERO},
    {"remainder", lx_remainder, OP_REM, B_ARITH, D_WIDE, D_NONZERO},
    {"arctan2", lx_arctan2, OP_ATAN2, B_FLOAT, D_ANY, D_ANY},
    {"equal", lx_equal, OP_EQ, B_PRED, D_HALF, D_HALF},
    {"not_equal", lx_not_equal, OP_NE, B_PRED, D_HALF, D_HALF},
    {"less", lx_less, OP_LT, B_PRED, D_HALF, D_HALF},
    {"less_equal", lx_less_equal, OP_LE, B_PRED, D_HALF, D_HALF},
    {"greater", lx_greater, OP_GT, B_PRED, D_HALF, D_HALF},
    {"greater_equal", lx_greater_equal, OP_GE, B_PRED, D_HALF, D_HALF},
    {"logical_and", lx_logical_and, OP_AND, B_PRED, D_HALF, D_HALF},
    {"logical_or", lx_logical_or, OP_OR, B_PRED, D_HALF, D_HALF},
};
#define N_BOPS ((int)(sizeof BOPS / sizeof BOPS[0]))

static double ref_rem(double a, double b) {
    double r = fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
static double ref_max(double a, double b) { return isnan(a) || isnan(b) ? NAN : (a > b ? a : b); }
static double ref_min(double a, double b) { return isnan(a) || isnan(b) ? NAN : (a < b ? a : b); }

/* float reference (double arithmetic) */
static double ref_binary_float(int op, double a, double b) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return pow(a, b);
    case OP_MAX: return ref_max(a, b);
    case OP_MIN: return ref_min(a, b);
    case OP_FDIV: return floor(a / b);
    case OP_REM: return ref_rem(a, b);
    case OP_ATAN2: return atan2(a, b);
    case OP_EQ: return a == b;
    case OP_NE: return a != b;
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    case OP_GE: return a >= b;
    case OP_AND: return a != 0 && b != 0;
    default: return a != 0 || b != 0;
    }
}

/* integer reference for small values (|a|, |b| <= 120, exponents <= 6), wrapped to t */
static double ref_binary_int(int op, double a, double b, lx_dtype t) {
    double r;
    switch (op) {
    case OP_POW:
        if (b < 0) r = a == 1 ? 1 : (a == -1 ? (fmod(b, 2) != 0 ? -1 : 1) : 0);
        else r = pow(a, b); /* exact: <= 5^6 */
        break;
    case OP_FDIV: r = b == 0 ? 0 : floor(a / b); break;
    case OP_REM: r = b == 0 ? 0 : a - b * floor(a / b); break;
    case OP_DIV: r = b == 0 ? 0 : trunc(a / b); break;
    default: r = ref_binary_float(op, a, b);
    }
    return t == LX_BOOL ? r != 0 : wrap_int(r, t);
}

static lx_dtype binary_out_dtype(const bop *op, lx_dtype ta, lx_dtype tb) {
    lx_dtype t = lx_promote_types(ta, tb);
    if (op->kind == B_PRED) return LX_BOOL;
    if (op->kind == B_FLOAT && !is_float(t)) return LX_FLOAT32;
    return t;
}

static void run_binary(const bop *op, const tensor *a, const tensor *b, const int *oshape,
                       int ond, const char *tag) {
    char what[160];
    snprintf(what, sizeof what, "%s(%s, %s%s)", op->name, lx_dtype_name(a->t),
             lx_dtype_name(b->t), tag);
    lx_dtype ct = lx_promote_types(a->t, b->t);
    if (op->kind == B_FLOAT && !is_float(ct)) ct = LX_FLOAT32;
    lx_dtype ot = binary_out_dtype(op, a->t, b->t);
    double *got = eval_read(what, op->fn(a->a, b->a), ot, oshape, ond);
    if (!got) return;
    size_t n = prod(oshape, ond);
    double *want = malloc(sizeof(double) * (n + 1));
    double *va = malloc(sizeof(double) * (n + 1)), *vb = malloc(sizeof(double) * (n + 1));
    int idx[LX_MAX_NDIM];
    for (size_t i = 0; i < n; i++) {
        unflat(i, oshape, ond, idx);
        /* inputs as converted to the computation dtype */
        double x = at(a, idx, ond), y = at(b, idx, ond);
        if (is_float(ct)) {
            x = round_to(ct, x);
            y = round_to(ct, y);
        } else {
            x = wrap_int(x, ct);
            y = wrap_int(y, ct);
        }
        va[i] = x;
        vb[i] = y;
        if (is_float(ct)) {
            double r = ref_binary_float(op->op, x, y);
            want[i] = ot == LX_BOOL ? r : round_to(ot, r);
        } else {
            want[i] = op->kind == B_PRED ? ref_binary_float(op->op, x, y)
                                          : ref_binary_int(op->op, x, y, ot);
        }
    }
    double rtol, atol;
    tol_for(ot, &rtol, &atol);
    if (ot == LX_FLOAT32 && op->op <= OP_DIV) rtol = 1e-7; /* one rounding */
    compare(what, got, want, va, vb, n, rtol, atol);
    free(want);
    free(va);
    free(vb);
    free(got);
}

/* A shape b broadcast against `out`: some dims 1, maybe fewer leading dims. */
static int broadcast_shape_of(const int *out, int nd, int *shape) {
    int drop = t_int(0, nd - 1);
    int bnd = nd - drop;
    for (int d = 0; d < bnd; d++) shape[d] = (t_next() % 3 == 0) ? 1 : out[d + drop];
    return bnd;
}

static void test_binary_random(void) {
    t_seed(2);
    static const char *tags[] = {"", ", broadcast b", ", broadcast a", ", broadcast both"};
    for (int o = 0; o < N_BOPS; o++) {
        const bop *op = &BOPS[o];
        for (int k = 0; k < NDT; k++) {
            lx_dtype t = ALL[k];
            for (int trial = 0; trial < 3; trial++) {
                int oshape[LX_MAX_NDIM], as[LX_MAX_NDIM], bs[LX_MAX_NDIM];
                int ond = random_shape(oshape, 5), and_ = ond, bnd = ond;
                int mode = trial == 0 ? 0 : t_int(1, 3);
                memcpy(as, oshape, sizeof as);
                memcpy(bs, oshape, sizeof bs);
                if (mode & 1) bnd = broadcast_shape_of(oshape, ond, bs);
                if (mode & 2) and_ = broadcast_shape_of(oshape, ond, as);
                /* the real output shape: broadcasting may have dropped every full dim */
                int rshape[LX_MAX_NDIM], rnd = and_ > bnd ? and_ : bnd;
                for (int d = 0; d < rnd; d++) {
                    int da = d - (rnd - and_) >= 0 ? as[d - (rnd - and_)] : 1;
                    int db = d - (rnd - bnd) >= 0 ? bs[d - (rnd - bnd)] : 1;
                    rshape[d] = da == 1 ? db : da;
                }
                tensor a = make(t, as, and_, t_int(0, L_COUNT - 1), op->da, NULL);
                tensor b = make(t, bs, bnd, t_int(0, L_COUNT - 1), op->db, NULL);
                run_binary(op, &a, &b, rshape, rnd, tags[mode]);
                drop(&a);
                drop(&b);
            }
        }
    }
}

/* Mixed dtypes: promotion of the inputs (checked through the result dtype and values). */
static void test_binary_promotion(void) {
    t_seed(3);
    for (int o = 0; o < N_BOPS; o++) {
        const bop *op = &BOPS[o];
        for (int trial = 0; trial < 12; trial++) {
            lx_dtype ta = ALL[t_int(0, NDT - 1)], tb = ALL[t_int(0, NDT - 1)];
            int shape[LX_MAX_NDIM];
            int nd = random_shape(shape, 4);
            int da = op->da, db = op->db;
            if (op->op == OP_POW) da = db = D_POS; /* keep mixed int/float pow in range */
            tensor a = make(ta, shape, nd, L_CONTIG, da, NULL);
            tensor b = make(tb, shape, nd, L_TRANSPOSED, db, NULL);
            if (op->op == OP_POW && !is_float(lx_promote_types(ta, tb))) {
                /* integer pow: small exponents only */
                double *vals = malloc(sizeof(double) * (b.n + 1));
                for (size_t i = 0; i < b.n; i++) vals[i] = (double)t_int(0, 4);
                drop(&b);
                b = make(tb, shape, nd, L_TRANSPOSED, 0, vals);
                free(vals);
            }
            run_binary(op, &a, &b, shape, nd, ", mixed");
            drop(&a);
            drop(&b);
        }
    }
}

static void test_binary_specials(void) {
    static const double sp[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, 2.5, -7.5, 1e30};
    enum { S = sizeof sp / sizeof sp[0] };
    double va[S * S], vb[S * S];
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++) {
            va[i * S + j] = sp[i];
            vb[i * S + j] = sp[j];
        }
    static const lx_dtype fl[] = {LX_FLOAT16, LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};
    for (int k = 0; k < 4; k++)
        for (int o = 0; o < N_BOPS; o++) {
            tensor a = make(fl[k], (int[]){S, S}, 2, L_CONTIG, 0, va);
            tensor b = make(fl[k], (int[]){S, S}, 2, L_STRIDED, 0, vb);
            run_binary(&BOPS[o], &a, &b, (int[]){S, S}, 2, ", specials");
            drop(&a);
            drop(&b);
        }
}

static void test_binary_int_edges(void) {
    /* floor_divide / remainder: Python signs; division by zero gives 0; MIN / -1 wraps */
    {
        int32_t a[] = {-7, 7, -7, 7, 5, INT32_MIN, INT32_MIN, 0, -1, 9};
        int32_t b[] = {2, -2, -2, 2, 0, -1, 1, 3, 5, -3};
        int32_t wq[] = {-4, -4, 3, 3, 0, INT32_MIN, INT32_MIN, 0, -1, -3};
        int32_t wr[] = {1, -1, -1, 1, 0, 0, 0, 0, 4, 0};
        lx_array xa = lx_array_i32(a, (int[]){10}, 1), xb = lx_array_i32(b, (int[]){10}, 1);
        lx_keep(xa, xb);
        lx_array q = lx_floor_divide(xa, xb), r = lx_remainder(xa, xb);
        int32_t gq[10], gr[10];
        CHECK_OK(lx_eval(q, r));
        CHECK_OK(lx_read(q, gq, sizeof gq));
        CHECK_OK(lx_read(r, gr, sizeof gr));
        for (int i = 0; i < 10; i++) {
            CHECK_MSG(gq[i] == wq[i], "floor_divide(%d, %d) = %d want %d", a[i], b[i], gq[i],
                      wq[i]);
            CHECK_MSG(gr[i] == wr[i], "remainder(%d, %d) = %d want %d", a[i], b[i], gr[i], wr[i]);
        }
        lx_free(xa);
        lx_free(xb);
        lx_free(q);
        lx_free(r);
    }
    {
        int64_t a[] = {INT64_MIN, INT64_MAX, INT64_MIN, -9};
        int64_t b[] = {-1, 1, 0, 4};
        lx_array xa = lx_array_new(a, (int[]){4}, 1, LX_INT64);
        lx_array xb = lx_array_new(b, (int[]){4}, 1, LX_INT64);
        lx_keep(xa, xb);
        lx_array q = lx_floor_divide(xa, xb), r = lx_remainder(xa, xb), s = lx_add(xa, xb);
        lx_array m = lx_mul(xa, xa);
        int64_t gq[4], gr[4], gs[4], gm[4];
        CHECK_OK(lx_eval(q, r, s, m));
        CHECK_OK(lx_read(q, gq, sizeof gq));
        CHECK_OK(lx_read(r, gr, sizeof gr));
        CHECK_OK(lx_read(s, gs, sizeof gs));
        CHECK_OK(lx_read(m, gm, sizeof gm));
        CHECK(gq[0] == INT64_MIN && gq[1] == INT64_MAX && gq[2] == 0 && gq[3] == -3);
        CHECK(gr[0] == 0 && gr[1] == 0 && gr[2] == 0 && gr[3] == 3);
        CHECK(gs[0] == INT64_MAX && gs[1] == INT64_MIN && gs[2] == INT64_MIN && gs[3] == -5);
        CHECK(gm[0] == 0 && gm[1] == 1 && gm[3] == 81);
        lx_free(xa);
        lx_free(xb);
        lx_free(q);
        lx_free(r);
        lx_free(s);
        lx_free(m);
    }
    {
        /* integer pow: wraps; negative exponents truncate */
        int32_t a[] = {2, 2, -1, -1, 1, 3, 0, 0, -2};
        int32_t b[] = {10, -1, -3, -4, -5, 40, 0, 3, 3};
        uint64_t p340 = 1;
        for (int i = 0; i < 40; i++) p340 *= 3;
        int32_t w[] = {1024, 0, -1, 1, 1, (int32_t)(uint32_t)p340, 1, 0, -8};
        lx_array y = lx_pow(lx_array_i32(a, (int[]){9}, 1), lx_array_i32(b, (int[]){9}, 1));
        int32_t g[9];
        CHECK_OK(lx_eval(y));
        CHECK_OK(lx_read(y, g, sizeof g));
        for (int i = 0; i < 9; i++)
            CHECK_MSG(g[i] == w[i], "pow(%d, %d) = %d want %d", a[i], b[i], g[i], w[i]);
        lx_free(y);
    }
    {
        /* uint8 wraps; int8 add overflow wraps */
        uint8_t a[] = {0, 255, 10}, b[] = {1, 1, 20};
        lx_array xa = lx_array_new(a, (int[]){3}, 1, LX_UINT8);
        lx_array xb = lx_array_new(b, (int[]){3}, 1, LX_UINT8);
        lx_keep(xa, xb);
        lx_array s = lx_sub(xa, xb), p = lx_add(xa, xb);
        uint8_t gs[3], gp[3];
        CHECK_OK(lx_eval(s, p));
        CHECK_OK(lx_read(s, gs, 3));
        CHECK_OK(lx_read(p, gp, 3));
        CHECK(gs[0] == 255 && gs[1] == 254 && gs[2] == 246);
        CHECK(gp[0] == 1 && gp[1] == 0 && gp[2] == 30);
        lx_free(xa);
        lx_free(xb);
        lx_free(s);
        lx_free(p);
        int8_t c[] = {127, -128}, d[] = {1, -1};
        lx_array y = lx_add(lx_array_new(c, (int[]){2}, 1, LX_INT8),
                            lx_array_new(d, (int[]){2}, 1, LX_INT8));
        int8_t g[2];
        CHECK_OK(lx_eval(y));
        CHECK_OK(lx_read(y, g, 2));
        CHECK(g[0] == -128 && g[1] == 127);
        lx_free(y);
    }
    {
        /* float remainder takes the divisor's sign */
        float a[] = {-7.5f, 7.5f, -7.5f, 7.5f, 6.0f};
        float b[] = {2.0f, -2.0f, -2.0f, 2.0f, 3.0f};
        float w[] = {0.5f, -0.5f, -1.5f, 1.5f, 0.0f};
        lx_array y = lx_remainder(lx_array_f32(a, (int[]){5}, 1), lx_array_f32(b, (int[]){5}, 1));
        float g[5];
        CHECK_OK(lx_eval(y));
        CHECK_OK(lx_read(y, g, sizeof g));
        for (int i = 0; i < 5; i++)
            CHECK_MSG(g[i] == w[i], "remainder %g %g = %g", a[i], b[i], g[i]);
        lx_free(y);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Scalar forms, where, clip                                                                  */

static void test_scalar_forms(void) {
    t_seed(4);
    typedef lx_array (*sfn)(lx_array, double);
    static const struct { const char *name; sfn fn; int op; } S[] = {
        {"add_scalar", lx_add_scalar, OP_ADD}, {"sub_scalar", lx_sub_scalar, OP_SUB},
        {"mul_scalar", lx_mul_scalar, OP_MUL}, {"div_scalar", lx_div_scalar, OP_DIV},
        {"pow_scalar", lx_pow_scalar, OP_POW}};
    static const double svals[] = {2.0, -3.0, 0.5, 1.5};
    for (int o = 0; o < 5; o++)
        for (int k = 0; k < NDT; k++) {
            lx_dtype t = ALL[k];
            if (t == LX_BOOL) continue;
            for (int si = 0; si < 4; si++) {
                double s = svals[si];
                if (S[o].op == OP_POW) s = is_float(t) ? s : fabs(trunc(s)) + 1;
                int shape[LX_MAX_NDIM];
                int nd = random_shape(shape, 5);
                tensor x = make(t, shape, nd, t_int(0, L_COUNT - 1),
                                S[o].op == OP_POW ? D_POWBASE : D_ANY, NULL);
                char what[96];
                snprintf(what, sizeof what, "%s(%s, %g)", S[o].name, lx_dtype_name(t), s);
                double *got = eval_read(what, S[o].fn(x.a, s), t, x.shape, x.nd);
                if (got) {
                    double *want = malloc(sizeof(double) * (x.n + 1));
                    for (size_t i = 0; i < x.n; i++) {
                        if (is_float(t)) {
                            double r = ref_binary_float(S[o].op, x.v[i], round_to(t, s));
                            want[i] = round_to(t, r);
                        } else if (S[o].op == OP_DIV) { /* float64 quotient, converted back */
                            want[i] = convert_ref(x.v[i] / s, LX_FLOAT64, t);
                        } else { /* s converted to t first (truncated, clamped) */
                            double st = convert_ref(s, LX_FLOAT64, t);
                            want[i] = ref_binary_int(S[o].op, x.v[i], st, t);
                        }
                    }
                    double rtol, atol;
                    tol_for(t, &rtol, &atol);
                    compare(what, got, want, x.v, NULL, x.n, rtol, atol);
                    free(want);
                    free(got);
                }
                drop(&x);
            }
        }
}

static void test_where_clip(void) {
    t_seed(5);
    for (int trial = 0; trial < 40; trial++) {
        int oshape[LX_MAX_NDIM], cs[LX_MAX_NDIM], as[LX_MAX_NDIM], bs[LX_MAX_NDIM];
        int ond = random_shape(oshape, 5);
        memcpy(cs, oshape, sizeof cs);
        memcpy(as, oshape, sizeof as);
        memcpy(bs, oshape, sizeof bs);
        int cn = ond, an = ond, bn = ond;
        if (trial % 2) cn = broadcast_shape_of(oshape, ond, cs);
        if (trial % 3) an = broadcast_shape_of(oshape, ond, as);
        if (trial % 5) bn = broadcast_shape_of(oshape, ond, bs);
        /* out shape: the broadcast of the three */
        int rnd = cn > an ? cn : an;
        rnd = rnd > bn ? rnd : bn;
        int rshape[LX_MAX_NDIM];
        for (int d = 0; d < rnd; d++) {
            int dc = d - (rnd - cn) >= 0 ? cs[d - (rnd - cn)] : 1;
            int da = d - (rnd - an) >= 0 ? as[d - (rnd - an)] : 1;
            int db = d - (rnd - bn) >= 0 ? bs[d - (rnd - bn)] : 1;
            rshape[d] = dc != 1 ? dc : (da != 1 ? da : db);
        }
        lx_dtype tc = trial % 4 == 0 ? LX_FLOAT32 : LX_BOOL; /* cond converted to bool */
        lx_dtype ta = ALL[t_int(0, NDT - 1)], tb = ALL[t_int(0, NDT - 1)];
        tensor c = make(tc, cs, cn, t_int(0, L_COUNT - 1), D_HALF, NULL);
        tensor a = make(ta, as, an, t_int(0, L_COUNT - 1), D_ANY, NULL);
        tensor b = make(tb, bs, bn, t_int(0, L_COUNT - 1), D_ANY, NULL);
        lx_dtype ot = lx_promote_types(ta, tb);
        char what[96];
        snprintf(what, sizeof what, "where(%s, %s, %s)", lx_dtype_name(tc), lx_dtype_name(ta),
                 lx_dtype_name(tb));
        double *got = eval_read(what, lx_where(c.a, a.a, b.a), ot, rshape, rnd);
        if (got) {
            size_t n = prod(rshape, rnd);
            double *want = malloc(sizeof(double) * (n + 1));
            int idx[LX_MAX_NDIM];
            for (size_t i = 0; i < n; i++) {
                unflat(i, rshape, rnd, idx);
                double v = at(&c, idx, rnd) != 0 ? at(&a, idx, rnd) : at(&b, idx, rnd);
                want[i] = is_float(ot) ? round_to(ot, v) : wrap_int(v, ot);
            }
            compare(what, got, want, NULL, NULL, n, 0, 0);
            free(want);
            free(got);
        }
        /* clip(a, lo, hi) with lo/hi scalars or arrays of b's shape, either may be null */
        {
            double lo = -1.5, hi = 2.0;
            int mode = trial % 4; /* 0 both, 1 lo only, 2 hi only, 3 none */
            bool has_lo = mode == 0 || mode == 1, has_hi = mode == 0 || mode == 2;
            lx_array alo = has_lo ? lx_full(NULL, 0, lo, LX_FLOAT32) : LX_NULL_ARRAY;
            lx_array ahi = has_hi ? lx_full(bs, bn, hi, LX_FLOAT32) : LX_NULL_ARRAY;
            lx_dtype cto = ta;
            if (!lx_is_null(alo)) cto = lx_promote_types(cto, LX_FLOAT32);
            if (!lx_is_null(ahi)) cto = lx_promote_types(cto, LX_FLOAT32);
            int clshape[LX_MAX_NDIM], clnd = an;
            memcpy(clshape, as, sizeof clshape);
            if (!lx_is_null(ahi)) { /* broadcast with b's shape */
                int r2 = an > bn ? an : bn;
                for (int d = 0; d < r2; d++) {
                    int da = d - (r2 - an) >= 0 ? as[d - (r2 - an)] : 1;
                    int db = d - (r2 - bn) >= 0 ? bs[d - (r2 - bn)] : 1;
                    clshape[d] = da == 1 ? db : da;
                }
                clnd = r2;
            }
            snprintf(what, sizeof what, "clip(%s, mode %d)", lx_dtype_name(ta), mode);
            double *g2 = eval_read(what, lx_clip(a.a, alo, ahi), cto, clshape, clnd);
            if (g2) {
                size_t n = prod(clshape, clnd);
                double *want = malloc(sizeof(double) * (n + 1));
                int idx[LX_MAX_NDIM];
                for (size_t i = 0; i < n; i++) {
                    unflat(i, clshape, clnd, idx);
                    double v = at(&a, idx, clnd);
                    if (mode == 0 || mode == 1) v = ref_max(v, lo);
                    if (mode == 0 || mode == 2) v = ref_min(v, hi);
                    want[i] = is_float(cto) ? round_to(cto, v) : v;
                }
                compare(what, g2, want, NULL, NULL, n, 0, 0);
                free(want);
                free(g2);
            }
        }
        drop(&c);
        drop(&a);
        drop(&b);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* astype, full, arange                                                                       */

/* Expected conversion of value v (exact in `from`) to `to`. */
static double convert_ref(double v, lx_dtype from, lx_dtype to) {
    if (to == LX_BOOL) return v != 0 || isnan(v);
    if (is_float(to)) return round_to(to, v);
    if (is_float(from)) { /* truncate, clamp, NaN -> 0 */
        if (isnan(v)) return 0;
        double lo, hi;
        switch (to) {
        case LX_UINT8: lo = 0; hi = 255; break;
        case LX_UINT16: lo = 0; hi = 65535; break;
        case LX_UINT32: lo = 0; hi = 4294967295.0; break;
        case LX_UINT64: lo = 0; hi = 18446744073709549568.0; break;
        case LX_INT8: lo = -128; hi = 127; break;
        case LX_INT16: lo = -32768; hi = 32767; break;
        case LX_INT32: lo = -2147483648.0; hi = 2147483647.0; break;
        default: lo = -9223372036854775808.0; hi = 9223372036854774784.0;
        }
        v = v < lo ? lo : (v > hi ? hi : v);
        return trunc(v);
    }
    return wrap_int(v, to); /* integer -> integer wraps */
}

static void test_astype_all_pairs(void) {
    static const double fvals[] = {0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 3.7, -3.7, 127.9, 128.4,
                                   255.5, 300.0, -129.0, 65504.0, 70000.0, 1e10, -1e10, 3e38,
                                   NAN, INFINITY, -INFINITY, 1e-8, 0.1, 1.00048828125,
                                   1.0009765625, 33.3, 1e-40, 4e9, 2e19};
    static const double ivals[] = {0, 1, -1, 127, -128, 255, 256, -129, 65535, 65536, -32769,
                                   2147483647.0, -2147483648.0, 4294967295.0, 4294967296.0,
                                   16777217.0, 123456789.0, 2049, 2051};
    int nf = (int)(sizeof fvals / sizeof fvals[0]), ni = (int)(sizeof ivals / sizeof ivals[0]);
    t_seed(6);
    for (int i = 0; i < NDT; i++)
        for (int j = 0; j < NDT; j++) {
            lx_dtype from = ALL[i], to = ALL[j];
            const double *src = is_float(from) ? fvals : ivals;
            int n = is_float(from) ? nf : ni;
            double vals[64];
            for (int k = 0; k < n; k++) { /* exact values of `from` */
                double v = src[k];
                if (from == LX_UINT64) v = fabs(v); /* stay below 2^53 */
                vals[k] = is_float(from) ? round_to(from, v)
                                         : (from == LX_BOOL ? v != 0 : wrap_int(v, from));
            }
            int layout = t_int(0, L_COUNT - 1);
            int shape[2] = {1, n};
            tensor x = make(from, shape, 2, layout, 0, vals);
            char what[64];
            snprintf(what, sizeof what, "astype(%s -> %s)", lx_dtype_name(from), lx_dtype_name(to));
            double *got = eval_read(what, lx_astype(x.a, to), to, shape, 2);
            if (got) {
                double want[64];
                for (int k = 0; k < n; k++) want[k] = convert_ref(x.v[k], from, to);
                compare(what, got, want, x.v, NULL, (size_t)n, 0, 0);
                free(got);
            }
            drop(&x);
        }
}

static void test_astype_edges(void) {
    /* float64 -> float16 rounds once: 1 + 2^-11 + 2^-40 is just above a tie, so it goes up
     * (rounding through float32 first would land on the tie and go down to 1) */
    {
        double in[] = {1 + ldexp(1, -11) + ldexp(1, -40), 1 + ldexp(1, -11), 1 + 3 * ldexp(1, -11),
                       65519.99, 65520.0, 1 + ldexp(1, -8) + ldexp(1, -40)};
        lx_array x = lx_array_new(in, (int[]){6}, 1, LX_FLOAT64);
        lx_keep(x);
        lx_array h = lx_astype(x, LX_FLOAT16), b = lx_astype(x, LX_BFLOAT16);
        uint16_t gh[6], gb[6];
        CHECK_OK(lx_eval(h, b));
        CHECK_OK(lx_read(h, gh, sizeof gh));
        CHECK_OK(lx_read(b, gb, sizeof gb));
        CHECK_MSG(lx_f16_to_f32(gh[0]) == 1.0009765625f, "f16 %.10g", lx_f16_to_f32(gh[0]));
        CHECK(lx_f16_to_f32(gh[1]) == 1.0f);          /* a tie: to even */
        CHECK(lx_f16_to_f32(gh[2]) == 1.001953125f);  /* a tie: to even (up) */
        CHECK(lx_f16_to_f32(gh[3]) == 65504.0f);
        CHECK(isinf(lx_f16_to_f32(gh[4])));
        CHECK_MSG(lx_bf16_to_f32(gb[5]) == 1.0078125f, "bf16 %.10g", lx_bf16_to_f32(gb[5]));
        lx_free(x);
        lx_free(h);
        lx_free(b);
    }
    /* 64-bit integers: wrap between widths, round once to bfloat16, exact extremes */
    {
        int64_t in[] = {INT64_MIN, INT64_MAX, -1, (INT64_C(1) << 62) + (INT64_C(1) << 54) + 1};
        lx_array x = lx_array_new(in, (int[]){4}, 1, LX_INT64);
        lx_keep(x);
        lx_array u = lx_astype(x, LX_UINT64), b = lx_astype(x, LX_BFLOAT16);
        lx_array u8 = lx_astype(x, LX_UINT8), f = lx_astype(x, LX_FLOAT32);
        uint64_t gu[4];
        uint16_t gb[4];
        uint8_t g8[4];
        float gf[4];
        CHECK_OK(lx_eval(u, b, u8, f));
        CHECK_OK(lx_read(u, gu, sizeof gu));
        CHECK_OK(lx_read(b, gb, sizeof gb));
        CHECK_OK(lx_read(u8, g8, sizeof g8));
        CHECK_OK(lx_read(f, gf, sizeof gf));
        CHECK(gu[0] == (UINT64_C(1) << 63) && gu[2] == UINT64_MAX);
        CHECK(g8[0] == 0 && g8[1] == 255 && g8[2] == 255 && g8[3] == 1);
        CHECK(lx_bf16_to_f32(gb[0]) == -9223372036854775808.0f);
        CHECK_MSG(lx_bf16_to_f32(gb[3]) == ldexpf(1, 62) + ldexpf(1, 55), "bf16 %.10g",
                  lx_bf16_to_f32(gb[3]));
        CHECK(gf[1] == 9223372036854775808.0f && gf[2] == -1.0f);
        lx_free(x);
        lx_free(u);
        lx_free(b);
        lx_free(u8);
        lx_free(f);
        uint64_t um[] = {UINT64_MAX, 0};
        lx_array y = lx_astype(lx_array_new(um, (int[]){2}, 1, LX_UINT64), LX_INT64);
        int64_t gy[2];
        CHECK_OK(lx_eval(y));
        CHECK_OK(lx_read(y, gy, sizeof gy));
        CHECK(gy[0] == -1 && gy[1] == 0);
        lx_free(y);
    }
    /* same dtype: a new handle with the same values; bool bytes other than 0/1 read as true */
    {
        float in[] = {1, 2, 3};
        lx_array x = lx_array_f32(in, (int[]){3}, 1);
        lx_array y = lx_astype(x, LX_FLOAT32);
        CHECK(!lx_is_null(y) && y.id != x.id);
        float g[3];
        CHECK_OK(lx_eval(y));
        CHECK_OK(lx_read(y, g, sizeof g));
        CHECK(g[0] == 1 && g[2] == 3);
        lx_free(y);
        uint8_t raw[] = {0, 1, 2, 255};
        lx_array b = lx_array_new(raw, (int[]){4}, 1, LX_BOOL);
        lx_array f = lx_astype(b, LX_FLOAT32);
        lx_array nb = lx_logical_not(b);
        float gf[4];
        uint8_t gn[4];
        CHECK_OK(lx_eval(f, nb));
        CHECK_OK(lx_read(f, gf, sizeof gf));
        CHECK_OK(lx_read(nb, gn, sizeof gn));
        CHECK(gf[0] == 0 && gf[1] == 1 && gf[2] == 1 && gf[3] == 1);
        CHECK(gn[0] == 1 && gn[1] == 0 && gn[2] == 0 && gn[3] == 0);
        lx_free(f);
        lx_free(nb);
    }
}

static void test_full_arange(void) {
    for (int k = 0; k < NDT; k++) {
        lx_dtype t = ALL[k];
        double v = t == LX_BOOL ? 1 : (is_unsigned(t) ? 200 : (is_float(t) ? -2.75 : -100));
        int shape[] = {3, 70001}; /* large enough to run in parallel */
        char what[64];
        snprintf(what, sizeof what, "full(%s)", lx_dtype_name(t));
        double *got = eval_read(what, lx_full(shape, 2, v, t), t, shape, 2);
        if (got) {
            size_t n = prod(shape, 2);
            int bad = 0;
            for (size_t i = 0; i < n; i++) bad += got[i] != round_to(t, v);
            CHECK_MSG(bad == 0, "%s: %d wrong values", what, bad);
            free(got);
        }
        if (t == LX_BOOL) continue;
        snprintf(what, sizeof what, "arange(%s)", lx_dtype_name(t));
        double step = is_float(t) ? 0.25 : 3;
        size_t es = lx_dtype_size(t);
        int count = es == 1 ? 40 : (es == 2 && !is_float(t) ? 10000 : 20000);
        double *ga = eval_read(what, lx_arange(1, 1 + count * step, step, t), t, &count, 1);
        if (ga) {
            double *want = malloc(sizeof(double) * (size_t)count);
            for (int i = 0; i < count; i++) want[i] = round_to(t, 1 + i * step);
            double rtol, atol;
            tol_for(t, &rtol, &atol);
            compare(what, ga, want, NULL, NULL, (size_t)count, rtol, atol);
            free(want);
            free(ga);
        }
    }
    /* full converts its value: clamped to integers, rounded for halves */
    {
        lx_array a = lx_full((int[]){2}, 1, 300.7, LX_UINT8);
        lx_array b = lx_full((int[]){2}, 1, NAN, LX_INT32);
        lx_array c = lx_full((int[]){2}, 1, 1e6, LX_FLOAT16);
        uint8_t ga[2];
        int32_t gb[2];
        uint16_t gc[2];
        CHECK_OK(lx_eval(a, b, c));
        CHECK_OK(lx_read(a, ga, sizeof ga));
        CHECK_OK(lx_read(b, gb, sizeof gb));
        CHECK_OK(lx_read(c, gc, sizeof gc));
        CHECK(ga[0] == 255 && gb[1] == 0 && isinf(lx_f16_to_f32(gc[0])));
        lx_free(a);
        lx_free(b);
        lx_free(c);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Large arrays (threads), chains (buffer donation), zero-size arrays                         */

static void test_large_and_chains(void) {
    t_seed(8);
    /* 300 x 257 transposed + broadcast row: many threads, partial rows per chunk */
    int shape[] = {300, 257};
    tensor a = make(LX_FLOAT32, shape, 2, L_TRANSPOSED, D_ANY, NULL);
    tensor b = make(LX_FLOAT32, (int[]){257}, 1, L_CONTIG, D_ANY, NULL);
    tensor h = make(LX_FLOAT16, shape, 2, L_STRIDED, D_ANY, NULL);
    double *got = eval_read("large mul", lx_mul(a.a, b.a), LX_FLOAT32, shape, 2);
    size_t n = a.n;
    double *want = malloc(sizeof(double) * n);
    if (got) {
        for (size_t i = 0; i < n; i++) want[i] = (double)(float)(a.v[i] * b.v[i % 257]);
        compare("large mul", got, want, a.v, NULL, n, 1e-7, 0);
        free(got);
    }
    /* a chain: each intermediate is released by the eval's sweep, so kernels get their
     * input's buffer as output (donation) */
    lx_array y = lx_exp(lx_neg(lx_add_scalar(lx_mul(a.a, a.a), 1.0)));
    lx_array z = lx_astype(lx_add(lx_astype(lx_mul_scalar(a.a, 100.0), LX_INT32),
                                  lx_astype(a.a, LX_INT32)),
                           LX_FLOAT32);
    lx_array w = lx_sigmoid(lx_sub(lx_mul(h.a, h.a), h.a)); /* float16 all along */
    lx_array yy = y, zz = z, ww = w;
    CHECK_OK(lx_eval(yy, zz, ww));
    double *gy = read_all(y, NULL), *gz = read_all(z, NULL), *gw = read_all(w, NULL);
    if (gy && gz && gw) {
        for (size_t i = 0; i < n; i++) {
            float m = (float)a.v[i] * (float)a.v[i];
            want[i] = exp(-(double)(m + 1.0f));
        }
        compare("chain f32", gy, want, a.v, NULL, n, 2e-6, 0);
        for (size_t i = 0; i < n; i++) {
            float s = (float)a.v[i] * 100.0f;
            want[i] = trunc(s) + trunc(a.v[i]);
        }
        compare("chain int32", gz, want, a.v, NULL, n, 0, 0);
        for (size_t i = 0; i < n; i++) {
            double m = round_half(h.v[i] * h.v[i], false);
            double d = round_half(m - h.v[i], false);
            want[i] = round_half(ref_sigmoid(d), false);
        }
        compare("chain f16", gw, want, h.v, NULL, n, 1.0 / 1024, 1.0 / 16777216);
    } else {
        t_failures++;
    }
    free(gy);
    free(gz);
    free(gw);
    /* transposed float16 and int8 inputs (walked in tiles) through astype and where */
    tensor ht = make(LX_FLOAT16, shape, 2, L_TRANSPOSED, D_ANY, NULL);
    tensor ct = make(LX_INT8, shape, 2, L_TRANSPOSED, D_ANY, NULL);
    double *g1 = eval_read("astype tiled", lx_astype(ht.a, LX_FLOAT32), LX_FLOAT32, shape, 2);
    if (g1) {
        compare("astype tiled", g1, ht.v, NULL, NULL, n, 0, 0);
        free(g1);
    }
    double *g2 = eval_read("where tiled", lx_where(ct.a, ht.a, b.a), LX_FLOAT32, shape, 2);
    if (g2) {
        for (size_t i = 0; i < n; i++) want[i] = ct.v[i] != 0 ? ht.v[i] : b.v[i % 257];
        compare("where tiled", g2, want, NULL, NULL, n, 0, 0);
        free(g2);
    }
    drop(&ht);
    drop(&ct);
    free(want);
    lx_free(y);
    lx_free(z);
    lx_free(w);
    drop(&a);
    drop(&b);
    drop(&h);
}

static void test_zero_size(void) {
    float one[3] = {1, 2, 3};
    lx_array e = lx_zeros((int[]){0, 3}, 2, LX_FLOAT32);
    lx_array r = lx_array_f32(one, (int[]){1, 3}, 2);
    lx_keep(e, r);
    lx_array outs[] = {lx_add(e, r), lx_exp(e), lx_where(lx_less(e, r), e, r),
                       lx_astype(e, LX_FLOAT16), lx_equal(r, e),
                       lx_mul(lx_zeros((int[]){3, 0}, 2, LX_INT32),
                              lx_ones((int[]){3, 1}, 2, LX_INT32))};
    int n = (int)(sizeof outs / sizeof outs[0]);
    for (int i = 0; i < n; i++)
        CHECK_MSG(!lx_is_null(outs[i]) && lx_size(outs[i]) == 0, "out %d", i);
    CHECK_OK(lx_eval_n(outs, n));
    for (int i = 0; i < n; i++) {
        char dummy[1];
        CHECK_OK(lx_read(outs[i], dummy, 0));
        lx_free(outs[i]);
    }
    /* 0 against 2 does not broadcast */
    lx_array bad = lx_add(lx_zeros((int[]){0}, 1, LX_FLOAT32), lx_zeros((int[]){2}, 1, LX_FLOAT32));
    CHECK(lx_is_null(bad));
    CHECK_ERROR(LX_E_SHAPE);
    lx_free(e);
    lx_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* Dtypes of results, errors                                                                  */

static void test_result_dtypes(void) {
    struct { lx_dtype a, b, add, div; } T[] = {
        /* a, b, add, div */
        {LX_INT32, LX_FLOAT16, LX_FLOAT16, LX_FLOAT16},
        {LX_UINT8, LX_INT8, LX_INT16, LX_FLOAT32},
        {LX_BOOL, LX_BOOL, LX_BOOL, LX_FLOAT32},
        {LX_INT32, LX_INT32, LX_INT32, LX_FLOAT32},
        {LX_FLOAT16, LX_BFLOAT16, LX_FLOAT32, LX_FLOAT32},
        {LX_UINT64, LX_INT8, LX_FLOAT32, LX_FLOAT32},
        {LX_BFLOAT16, LX_INT64, LX_BFLOAT16, LX_BFLOAT16},
        {LX_FLOAT32, LX_FLOAT64, LX_FLOAT64, LX_FLOAT64},
        {LX_UINT32, LX_INT32, LX_INT64, LX_FLOAT32},
        {LX_BOOL, LX_UINT16, LX_UINT16, LX_FLOAT32},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        lx_array a = lx_zeros((int[]){2}, 1, T[i].a), b = lx_ones((int[]){2}, 1, T[i].b);
        CHECK_MSG(lx_dtype_of(lx_add(a, b)) == T[i].add, "add %s %s", lx_dtype_name(T[i].a),
                  lx_dtype_name(T[i].b));
        CHECK_MSG(lx_dtype_of(lx_div(a, b)) == T[i].div, "div %s %s", lx_dtype_name(T[i].a),
                  lx_dtype_name(T[i].b));
        CHECK(lx_dtype_of(lx_less(a, b)) == LX_BOOL);
        CHECK(lx_dtype_of(lx_logical_and(a, b)) == LX_BOOL);
        CHECK(lx_dtype_of(lx_arctan2(a, b)) == T[i].div);
    }
    lx_array i32 = lx_zeros((int[]){2}, 1, LX_INT32), f16 = lx_zeros((int[]){2}, 1, LX_FLOAT16);
    lx_array bf = lx_zeros((int[]){2}, 1, LX_BFLOAT16), f64 = lx_zeros((int[]){2}, 1, LX_FLOAT64);
    lx_array bo = lx_zeros((int[]){2}, 1, LX_BOOL), u8 = lx_zeros((int[]){2}, 1, LX_UINT8);
    CHECK(lx_dtype_of(lx_sqrt(i32)) == LX_FLOAT32);
    CHECK(lx_dtype_of(lx_exp(bo)) == LX_FLOAT32);
    CHECK(lx_dtype_of(lx_sigmoid(u8)) == LX_FLOAT32);
    CHECK(lx_dtype_of(lx_silu(i32)) == LX_FLOAT32);
    CHECK(lx_dtype_of(lx_sqrt(f16)) == LX_FLOAT16);
    CHECK(lx_dtype_of(lx_erf(bf)) == LX_BFLOAT16);
    CHECK(lx_dtype_of(lx_log(f64)) == LX_FLOAT64);
    CHECK(lx_dtype_of(lx_abs(u8)) == LX_UINT8);
    CHECK(lx_dtype_of(lx_relu(i32)) == LX_INT32);
    CHECK(lx_dtype_of(lx_floor(i32)) == LX_INT32);
    CHECK(lx_dtype_of(lx_round(f16)) == LX_FLOAT16);
    CHECK(lx_dtype_of(lx_isnan(i32)) == LX_BOOL);
    CHECK(lx_dtype_of(lx_logical_not(f16)) == LX_BOOL);
    CHECK(lx_dtype_of(lx_add_scalar(bf, 2.5)) == LX_BFLOAT16);
    CHECK(lx_dtype_of(lx_mul_scalar(f16, 1e-3)) == LX_FLOAT16);
    CHECK(lx_dtype_of(lx_div_scalar(i32, 2.5)) == LX_INT32);
    CHECK(lx_dtype_of(lx_pow_scalar(u8, 2)) == LX_UINT8);
    CHECK(lx_dtype_of(lx_where(bo, i32, f16)) == LX_FLOAT16);
    CHECK(lx_dtype_of(lx_where(i32, u8, u8)) == LX_UINT8);
    CHECK(lx_dtype_of(lx_clip(i32, f16, LX_NULL_ARRAY)) == LX_FLOAT16);
    CHECK(lx_dtype_of(lx_clip(i32, LX_NULL_ARRAY, LX_NULL_ARRAY)) == LX_INT32);
    CHECK(lx_dtype_of(lx_astype(i32, LX_BFLOAT16)) == LX_BFLOAT16);
    CHECK(lx_error() == LX_OK);
    lx_sweep();
}

static void test_errors(void) {
    lx_array x = lx_zeros((int[]){2, 3}, 2, LX_FLOAT32);
    lx_keep(x);
    lx_array y = lx_zeros((int[]){4}, 1, LX_FLOAT32);
    lx_keep(y);
    lx_array gone = lx_ones((int[]){2}, 1, LX_FLOAT32);
    lx_sweep(); /* releases `gone` */
    CHECK(!lx_valid(gone));

    CHECK(lx_is_null(lx_add(LX_NULL_ARRAY, x)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_mul(x, LX_NULL_ARRAY)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_exp(LX_NULL_ARRAY)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_add(gone, x)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_sigmoid(gone)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_add_scalar(gone, 1)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_astype(gone, LX_INT32)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_where(x, gone, x)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_where(LX_NULL_ARRAY, x, x)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_clip(x, gone, LX_NULL_ARRAY)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_clip(x, LX_NULL_ARRAY, gone)));
    CHECK_ERROR(LX_E_FREED);

    CHECK(lx_is_null(lx_add(x, y))); /* [2, 3] and [4] */
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_less(y, x)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_where(lx_ones((int[]){3}, 1, LX_BOOL), x, y)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_clip(x, y, LX_NULL_ARRAY)));
    CHECK_ERROR(LX_E_SHAPE);

    CHECK(lx_is_null(lx_astype(x, (lx_dtype)99)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_neg(lx_ones((int[]){2}, 1, LX_BOOL))));
    CHECK_ERROR(LX_E_DTYPE);

    /* an error recorded by an op is reported at eval */
    lx_array bad = lx_exp(lx_add(x, y));
    CHECK(lx_is_null(bad));
    CHECK(lx_eval(x) == LX_E_SHAPE);
    lx_clear_error();
    /* the first error sticks */
    lx_add(x, y);
    lx_exp(gone);
    CHECK_ERROR(LX_E_SHAPE);

    lx_free(x);
    lx_free(y);
}

int main(void) {
    RUN_TEST(test_result_dtypes);
    RUN_TEST(test_errors);
    RUN_TEST(test_astype_all_pairs);
    RUN_TEST(test_astype_edges);
    RUN_TEST(test_full_arange);
    RUN_TEST(test_unary_random);
    RUN_TEST(test_unary_specials);
    RUN_TEST(test_unary_exact_cases);
    RUN_TEST(test_erfinv);
    RUN_TEST(test_binary_random);
    RUN_TEST(test_binary_promotion);
    RUN_TEST(test_binary_specials);
    RUN_TEST(test_binary_int_edges);
    RUN_TEST(test_scalar_forms);
    RUN_TEST(test_where_clip);
    RUN_TEST(test_large_and_chains);
    RUN_TEST(test_zero_size);
    /* every error path released what it held: nothing is left once all is swept */
    lx_sweep();
    CHECK_MSG(lx_tracked_count() == 0, "%zu tracked arrays left", lx_tracked_count());
    CHECK_MSG(lx_node_live_count() == 0, "%zu graph nodes left", lx_node_live_count());
    return test_finish();
}
