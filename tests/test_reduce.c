/*
 * test_reduce.c -- reductions (sum, mean, prod, max, min, all, any, logsumexp, var, std),
 * argmax/argmin, softmax/log_softmax and rms_norm against float64 references computed here,
 * plus isclose/allclose/array_equal.
 *
 * Inputs: random shapes of 0-4 dims in every dtype, with values rounded to the dtype first
 * (the reference sees exactly what the kernel sees), laid out contiguous, transposed
 * (lx_transpose), strided (lx_slice, step 2, offset 1), broadcast (lx_broadcast_to, a zero
 * stride) or reversed (lx_slice, step -1: negative strides); random axis sets given with positive or negative indices in any order, keepdims
 * both ways, the single-axis and _axes forms, and all axes (NULL, 0).
 *
 * Tolerances, |got - want| <= atol + rtol |want|, with S = sum |x| over the reduced elements
 * and u(t) the output rounding (2^-24 float32, 2^-11 float16, 2^-8 bfloat16, 2^-53 float64):
 *  - sum: atol 40 * 2^-24 * S (the kernel's bound is 37 * 2^-24 * S: float32 lanes over blocks
 *    of 512, float64 between blocks), rtol 2 u(t); float64 1e-13 S. mean: the same over n.
 *  - prod: rtol 4 u(t) (accumulated in float64, rounded once) + n * 1e-15.
 *  - max, min, all, any, argmax, argmin, integer sums and products (wrapping): exact.
 *  - logsumexp: atol 4e-6 (float32 exp within ~2 ulp, sum blocked as above), rtol 2 u(t).
 *  - var, std: rtol 1e-5 + 2 u(t) relative to the result, atol 1e-6 * mean(x^2).
 *  - softmax: atol 2e-6 (float32), 2 u(t) relative for halves; log_softmax atol 4e-6 * (1 +
 *    |want|). rms_norm: rtol 4e-6 float32, 2 u(t) (two roundings of halves, as MLX) otherwise.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "test_util.h"
#include "test_layout.h"

#define NDT 13
static const lx_dtype ALL_DT[NDT] = {LX_BOOL,  LX_UINT8,  LX_UINT16,   LX_UINT32,  LX_UINT64,
                                     LX_INT8,  LX_INT16,  LX_INT32,    LX_INT64,   LX_FLOAT16,
                                     LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};
static const lx_dtype FLOAT_DT[4] = {LX_FLOAT16, LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};

/* the layouts the reductions run over (the transposes are one case for them) */
static const int REDUCE_LAYOUTS[5] = {LAYOUT_CONTIGUOUS, LAYOUT_PERMUTED, LAYOUT_STRIDED,
                                      LAYOUT_BROADCAST, LAYOUT_REVERSED};
static bool is_signed_int(lx_dtype t) { return t >= LX_INT8 && t <= LX_INT64; }

/* A random value representable in t, for op `kind` (0 general, 1 near 1 for products). */
static double rand_val(lx_dtype t, int kind) {
    if (t == LX_BOOL) return (double)(t_next() & 1);
    if (kind == 1) {
        if (is_float(t)) return round_to(t_uniform(t == LX_FLOAT32 || t == LX_FLOAT64 ? 0.5 : 0.9,
                                                   t == LX_FLOAT32 || t == LX_FLOAT64 ? 1.5 : 1.1), t);
        return is_signed_int(t) ? t_int(-3, 3) : t_int(0, 3);
    }
    switch (t) {
    case LX_UINT8: return t_int(0, 255);
    case LX_UINT16: return t_int(0, 65535);
    case LX_UINT32: return (double)(t_next() >> 40);
    case LX_UINT64: return (double)(t_next() >> 20);
    case LX_INT8: return t_int(-128, 127);
    case LX_INT16: return t_int(-32768, 32767);
    case LX_INT32: return t_int(-1000000, 1000000);
    case LX_INT64: return (double)((int64_t)(t_next() >> 20) - (1ll << 43));
    default: return round_to(t_uniform(-2.0, 2.0), t);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Reference reductions                                                                      */

enum { OP_SUM, OP_MEAN, OP_PROD, OP_MAX, OP_MIN, OP_ALL, OP_ANY, OP_LSE, OP_VAR, OP_STD, OP_N };
static const char *OP_NAME[OP_N] = {"sum", "mean", "prod", "max", "min", "all", "any", "logsumexp",
                                    "var", "std"};

static lx_dtype expected_dtype(int op, lx_dtype t) {
    switch (op) {
    case OP_SUM: case OP_PROD:
        if (t == LX_BOOL || t == LX_INT8 || t == LX_INT16 || t == LX_INT32) return LX_INT32;
        if (t == LX_UINT8 || t == LX_UINT16 || t == LX_UINT32) return LX_UINT32;
        return t;
    case OP_MAX: case OP_MIN: return t;
    case OP_ALL: case OP_ANY: return LX_BOOL;
    default: return is_float(t) ? t : LX_FLOAT32;
    }
}

/* Integer bits wrapped to integer dtype t, as a double. */
static double wrap_bits(uint64_t b, lx_dtype t) {
    switch (t) {
    case LX_INT32: return (double)(int32_t)(uint32_t)b;
    case LX_UINT32: return (double)(uint32_t)b;
    case LX_INT64: return (double)(int64_t)b;
    case LX_UINT64: return (double)b;
    default: return (double)b;
    }
}

typedef struct {
    double want, tol;
} refval;

/* Reference of op over mask for input values x (dtype t) of shape; out[o] over the keepdims
 * shape in row-major order. */
static void ref_reduce(const double *x, const int *shape, int nd, const bool *mask, int op,
                       lx_dtype t, int ddof, refval *out, size_t nout) {
    int oshape[LX_MAX_NDIM];
    for (int d = 0; d < nd; d++) oshape[d] = mask[d] ? 1 : shape[d];
    size_t n = shape_size(shape, nd);
    double *sum = calloc(nout, sizeof(double)), *abs = calloc(nout, sizeof(double));
    double *mx = malloc(nout * sizeof(double)), *mn = malloc(nout * sizeof(double));
    double *prod = malloc(nout * sizeof(double)), *cnt = calloc(nout, sizeof(double));
    double *sq = calloc(nout, sizeof(double)), *se = calloc(nout, sizeof(double));
    double *x2 = calloc(nout, sizeof(double));
    uint64_t *isum = calloc(nout, sizeof(uint64_t)), *iprod = malloc(nout * sizeof(uint64_t));
    bool *all = malloc(nout), *any = calloc(nout, 1), *nan = calloc(nout, 1);
    for (size_t o = 0; o < nout; o++) {
        mx[o] = -INFINITY;
        mn[o] = INFINITY;
        prod[o] = 1;
        iprod[o] = 1;
        all[o] = true;
    }
    int idx[LX_MAX_NDIM];
    size_t *oi = malloc((n + 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        unravel(i, shape, nd, idx);
        for (int d = 0; d < nd; d++)
            if (mask[d]) idx[d] = 0;
        size_t o = ravel(idx, oshape, nd);
        oi[i] = o;
        double v = x[i];
        sum[o] += v;
        abs[o] += fabs(v);
        x2[o] += v * v;
        cnt[o] += 1;
        prod[o] *= v;
        isum[o] += (uint64_t)(int64_t)v;
        iprod[o] *= (uint64_t)(int64_t)v;
        if (isnan(v)) nan[o] = true;
        if (v > mx[o]) mx[o] = v;
        if (v < mn[o]) mn[o] = v;
        if (v == 0) all[o] = false;
        else any[o] = true;
    }
    for (size_t i = 0; i < n; i++) {
        size_t o = oi[i];
        double mean = sum[o] / cnt[o];
        sq[o] += (x[i] - mean) * (x[i] - mean);
        if (isfinite(mx[o])) se[o] += exp(x[i] - mx[o]);
    }
    lx_dtype ot = expected_dtype(op, t);
    double u = unit_round(ot);
    for (size_t o = 0; o < nout; o++) {
        double w = 0, tol = 0;
        switch (op) {
        case OP_SUM:
            if (is_float(t)) {
                w = sum[o];
                tol = (t == LX_FLOAT64 ? 1e-13 : 40 * 5.96e-8) * abs[o] + 2 * u * fabs(w);
            } else {
                w = wrap_bits(isum[o], ot);
            }
            break;
        case OP_MEAN:
            w = sum[o] / cnt[o];
            tol = ((t == LX_FLOAT64 ? 1e-13 : 40 * 5.96e-8) * abs[o] + 1e-300) / cnt[o] + 2 * u * fabs(w);
            break;
        case OP_PROD:
            if (is_float(t)) {
                w = prod[o];
                tol = (4 * u + cnt[o] * 1e-15) * fabs(w);
            } else {
                w = wrap_bits(iprod[o], ot);
            }
            break;
        case OP_MAX: w = nan[o] ? NAN : mx[o]; break;
        case OP_MIN: w = nan[o] ? NAN : mn[o]; break;
        case OP_ALL: w = all[o]; break;
        case OP_ANY: w = any[o]; break;
        case OP_LSE:
            w = isfinite(mx[o]) ? mx[o] + log(se[o]) : mx[o];
            tol = (ot == LX_FLOAT64 ? 1e-13 : 4e-6) + 2 * u * fabs(w);
            break;
        case OP_VAR:
        case OP_STD: {
            double den = cnt[o] - ddof;
            w = den > 0 ? sq[o] / den : (sq[o] > 0 ? INFINITY : NAN);
            if (op == OP_STD) w = sqrt(w);
            double scale = op == OP_VAR ? x2[o] / cnt[o] : sqrt(x2[o] / cnt[o]);
            tol = (ot == LX_FLOAT64 ? 1e-12 : 1e-5 + 2 * u) * fabs(w) +
                  (ot == LX_FLOAT64 ? 1e-14 : 1e-6) * scale;
            break;
        }
        }
        out[o].want = w;
        out[o].tol = tol;
    }
    free(sum); free(abs); free(mx); free(mn); free(prod); free(cnt); free(sq); free(se);
    free(x2); free(isum); free(iprod); free(all); free(any); free(nan); free(oi);
}

static lx_array run_op(int op, lx_array a, const int *axes, int n, bool single, bool keepdims,
                       int ddof) {
    if (single) {
        int ax = axes[0];
        switch (op) {
        case OP_SUM: return lx_sum(a, ax, keepdims);
        case OP_MEAN: return lx_mean(a, ax, keepdims);
        case OP_PROD: return lx_prod(a, ax, keepdims);
        case OP_MAX: return lx_max(a, ax, keepdims);
        case OP_MIN: return lx_min(a, ax, keepdims);
        case OP_ALL: return lx_all(a, ax, keepdims);
        case OP_ANY: return lx_any(a, ax, keepdims);
        case OP_LSE: return lx_logsumexp(a, ax, keepdims);
        case OP_VAR: return lx_var(a, ax, keepdims, ddof);
        default: return lx_std(a, ax, keepdims, ddof);
        }
    }
    switch (op) {
    case OP_SUM: return lx_sum_axes(a, axes, n, keepdims);
    case OP_MEAN: return lx_mean_axes(a, axes, n, keepdims);
    case OP_PROD: return lx_prod_axes(a, axes, n, keepdims);
    case OP_MAX: return lx_max_axes(a, axes, n, keepdims);
    case OP_MIN: return lx_min_axes(a, axes, n, keepdims);
    case OP_ALL: return lx_all_axes(a, axes, n, keepdims);
    case OP_ANY: return lx_any_axes(a, axes, n, keepdims);
    case OP_LSE: return lx_logsumexp_axes(a, axes, n, keepdims);
    case OP_VAR: return lx_var_axes(a, axes, n, keepdims, ddof);
    default: return lx_std_axes(a, axes, n, keepdims, ddof);
    }
}

static int n_fail_reports = 0;

/* One random case: op on dtype t in layout mode; returns false on mismatch. */
static bool reduce_case(int op, lx_dtype t, int mode, int maxdim, int maxnd) {
    int nd = t_int(0, maxnd);
    if (mode != 0 && nd == 0) nd = 1;
    int shape[LX_MAX_NDIM];
    for (int d = 0; d < nd; d++) shape[d] = t_int(1, maxdim);
    size_t n = shape_size(shape, nd);
    double *v = malloc((n + 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) v[i] = rand_val(t, op == OP_PROD ? 1 : 0);
    /* sprinkle zeros for all/any */
    if ((op == OP_ALL || op == OP_ANY) && n > 2)
        for (int k = 0; k < 3; k++) v[t_int(0, (int)n - 1)] = 0;
    lx_array a = make_array(v, shape, nd, t, mode);

    bool mask[LX_MAX_NDIM] = {false};
    int axes[LX_MAX_NDIM], na = 0;
    bool single = nd > 0 && (t_next() & 1);
    bool all_axes = !single && (t_next() % 4 == 0);
    if (single) {
        int ax = t_int(0, nd - 1);
        mask[ax] = true;
        axes[na++] = (t_next() & 1) ? ax - nd : ax;
    } else if (all_axes) {
        for (int d = 0; d < nd; d++) mask[d] = true;
    } else {
        for (int d = 0; d < nd; d++)
            if (t_next() & 1) {
                mask[d] = true;
                axes[na++] = (t_next() & 1) ? d - nd : d;
            }
        for (int i = na - 1; i > 0; i--) { /* any order */
            int j = t_int(0, i), tmp = axes[i];
            axes[i] = axes[j];
            axes[j] = tmp;
        }
        if (na == 0) { /* a non-NULL empty list reduces nothing */
            axes[0] = 0;
        }
    }
    bool keepdims = t_next() & 1;
    int ddof = t_int(0, 1);
    lx_array r = run_op(op, a, all_axes ? NULL : axes, all_axes ? 0 : na, single, keepdims, ddof);

    int oshape[LX_MAX_NDIM], on = 0;
    for (int d = 0; d < nd; d++) {
        if (!mask[d]) oshape[on++] = shape[d];
        else if (keepdims) oshape[on++] = 1;
    }
    size_t nout = 1;
    for (int d = 0; d < nd; d++) nout *= mask[d] ? 1 : (size_t)shape[d];
    bool ok = !lx_is_null(r) && lx_error() == LX_OK;
    ok = ok && lx_ndim(r) == on;
    for (int d = 0; ok && d < on; d++) ok = lx_dim(r, d) == oshape[d];
    ok = ok && lx_dtype_of(r) == expected_dtype(op, t);
    refval *ref = malloc((nout + 1) * sizeof(refval));
    double *got = malloc((nout + 1) * sizeof(double));
    if (ok) {
        ref_reduce(v, shape, nd, mask, op, t, ddof, ref, nout);
        ok = read_doubles(r, got, nout);
        for (size_t o = 0; ok && o < nout; o++) {
            double w = ref[o].want, g = got[o];
            if (is_float(lx_dtype_of(r)) && isinf(round_to(w, lx_dtype_of(r)))) w = round_to(w, lx_dtype_of(r));
            bool good = isnan(w) ? isnan(g) : (isinf(w) ? g == w : fabs(g - w) <= ref[o].tol);
            if (!good) {
                if (n_fail_reports++ < 10)
                    fprintf(stderr, "  %s %s %s: out[%zu] got %.9g want %.9g (tol %.3g)\n",
                            OP_NAME[op], lx_dtype_name(t), MODE_NAME[mode], o, g, w, ref[o].tol);
                ok = false;
            }
        }
    }
    if (!ok && n_fail_reports++ < 10) {
        char buf[128];
        int len = 0;
        for (int d = 0; d < nd; d++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%d ", shape[d]);
        fprintf(stderr, "  failing case: %s %s %s shape [%s] single %d all %d na %d keep %d (%s)\n",
                OP_NAME[op], lx_dtype_name(t), MODE_NAME[mode], buf, single, all_axes, na, keepdims,
                lx_error_message());
        lx_clear_error();
    }
    free(ref);
    free(got);
    free(v);
    lx_sweep();
    return ok;
}

static void test_reductions_random(void) {
    t_seed(1234);
    for (int op = 0; op < OP_N; op++)
        for (int k = 0; k < NDT; k++) {
            int bad = 0;
            /* small shapes, then wider ones (rows of >= 16 outputs take the row loop) */
            for (int rep = 0; rep < 32; rep++) {
                int mode = REDUCE_LAYOUTS[rep % 5];
                bool wide = rep >= 24 && op != OP_PROD;
                if (!reduce_case(op, ALL_DT[k], mode, wide ? 40 : (op == OP_PROD ? 4 : 7), wide ? 3 : 4))
                    bad++;
            }
            CHECK_MSG(bad == 0, "%s on %s: %d of 32 cases failed", OP_NAME[op],
                      lx_dtype_name(ALL_DT[k]), bad);
        }
}

/* Bigger shapes: the segmented path (few outputs, many elements), the row path (reducing
 * leading axes of a contiguous array) and long contiguous rows. */
static void test_reductions_large(void) {
    t_seed(99);
    struct { int shape[3]; int nd; int axes[2]; int na; } cases[] = {
        {{1 << 20}, 1, {0}, 1},          /* one output over 2^20: segments */
        {{3, 100000}, 2, {1}, 1},        /* few outputs, long rows */
        {{700, 300}, 2, {0}, 1},         /* row loop */
        {{50, 40, 30}, 3, {0, 2}, 2},    /* mixed */
        {{4000, 33}, 2, {1}, 1},         /* many short rows */
        {{2, 70000, 3}, 3, {1}, 1},      /* strided runs */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int ti = 0; ti < 4; ti++) {
            lx_dtype t = FLOAT_DT[ti];
            int nd = cases[c].nd;
            size_t n = shape_size(cases[c].shape, nd);
            double *v = malloc(n * sizeof(double));
            for (size_t i = 0; i < n; i++) v[i] = round_to(t_uniform(-1.0, 3.0), t);
            lx_array a = from_doubles(v, cases[c].shape, nd, t);
            bool mask[LX_MAX_NDIM] = {false};
            for (int i = 0; i < cases[c].na; i++) mask[cases[c].axes[i]] = true;
            size_t nout = 1;
            for (int d = 0; d < nd; d++) nout *= mask[d] ? 1 : (size_t)cases[c].shape[d];
            refval *ref = malloc(nout * sizeof(refval));
            double *got = malloc(nout * sizeof(double));
            int ops[] = {OP_SUM, OP_MEAN, OP_MAX, OP_MIN, OP_LSE, OP_VAR};
            for (size_t oi = 0; oi < sizeof ops / sizeof ops[0]; oi++) {
                int op = ops[oi];
                lx_array r = run_op(op, a, cases[c].axes, cases[c].na, false, false, 0);
                ref_reduce(v, cases[c].shape, nd, mask, op, t, 0, ref, nout);
                bool ok = read_doubles(r, got, nout);
                int bad = 0;
                for (size_t o = 0; ok && o < nout; o++)
                    if (!(fabs(got[o] - ref[o].want) <= ref[o].tol) &&
                        !(isinf(round_to(ref[o].want, t)) && got[o] == round_to(ref[o].want, t))) {
                        if (bad++ < 3)
                            fprintf(stderr, "  large case %zu %s %s: out[%zu] got %.9g want %.9g tol %.3g\n",
                                    c, OP_NAME[op], lx_dtype_name(t), o, got[o], ref[o].want, ref[o].tol);
                    }
                CHECK_MSG(ok && bad == 0, "large case %zu, %s, %s", c, OP_NAME[op], lx_dtype_name(t));
            }
            free(ref);
            free(got);
            free(v);
            lx_sweep();
        }
    }
}

/* The float32 sum's error bound holds on an adversarial-ish input (large magnitudes that
 * cancel) and is far better than a naive float32 loop. */
static void test_sum_accuracy(void) {
    int n = 1 << 22;
    float *x = malloc((size_t)n * sizeof(float));
    double exact = 0, s_abs = 0;
    t_seed(7);
    for (int i = 0; i < n; i++) {
        x[i] = (float)(t_uniform(0, 1) + ((i & 1) ? 1000.0 : -1000.0));
        exact += x[i];
        s_abs += fabs(x[i]);
    }
    lx_array a = lx_array_f32(x, (int[]){n}, 1);
    float got = lx_item_f32(lx_sum(a, 0, false));
    double err = fabs(got - exact);
    CHECK_MSG(err <= 37 * 5.960464477539063e-08 * s_abs + fabs(exact) * 6e-8,
              "sum of 2^22 float32: error %g, bound %g", err, 37 * 5.96e-8 * s_abs);
    /* the result does not depend on the thread count (fixed segments, fixed blocks) */
    lx_keep(a);
    float by[3];
    int old = lx_set_num_threads(1);
    by[0] = lx_item_f32(lx_sum(a, 0, false));
    lx_set_num_threads(3);
    by[1] = lx_item_f32(lx_sum(a, 0, false));
    lx_set_num_threads(old);
    by[2] = lx_item_f32(lx_sum(a, 0, false));
    CHECK(by[0] == got && by[1] == got && by[2] == got);
    lx_free(a);
    free(x);
}

static void test_dtypes_and_semantics(void) {
    /* sum of int32 wraps like MLX's int32 accumulator */
    int32_t big[2] = {2147483647, 1};
    lx_array a = lx_array_i32(big, (int[]){2}, 1);
    lx_array s = lx_sum(a, 0, false);
    CHECK(lx_dtype_of(s) == LX_INT32);
    CHECK(lx_item_i32(s) == INT32_MIN);
    /* bool sums to int32, uint8 to uint32 (no wrap at 255) */
    bool bv[5] = {1, 0, 1, 1, 1};
    lx_array b = lx_array_new(bv, (int[]){5}, 1, LX_BOOL);
    lx_array bs = lx_sum(b, 0, false);
    CHECK(lx_dtype_of(bs) == LX_INT32 && lx_item_i32(bs) == 4);
    uint8_t u8[3] = {200, 200, 200};
    lx_array u = lx_array_new(u8, (int[]){3}, 1, LX_UINT8);
    lx_array us = lx_sum(u, 0, false);
    CHECK(lx_dtype_of(us) == LX_UINT32 && lx_item_f64(us) == 600.0);
    CHECK(lx_dtype_of(lx_mean(u, 0, false)) == LX_FLOAT32);
    CHECK(lx_item_f32(lx_mean(u, 0, false)) == 200.0f);
    CHECK(lx_dtype_of(lx_max(u, 0, false)) == LX_UINT8);
    CHECK(lx_dtype_of(lx_all(u, 0, false)) == LX_BOOL);
    CHECK(lx_dtype_of(lx_logsumexp(u, 0, false)) == LX_FLOAT32);
    CHECK(lx_dtype_of(lx_sum(lx_array_new((int64_t[]){1, 2}, (int[]){2}, 1, LX_INT64), 0, false)) == LX_INT64);
    uint16_t h[2] = {lx_f32_to_f16(1.5f), lx_f32_to_f16(2.0f)};
    lx_array hf = lx_array_new(h, (int[]){2}, 1, LX_FLOAT16);
    CHECK(lx_dtype_of(lx_sum(hf, 0, false)) == LX_FLOAT16);
    CHECK(lx_item_f32(lx_sum(hf, 0, false)) == 3.5f);
    CHECK(lx_dtype_of(lx_var(hf, 0, false, 0)) == LX_FLOAT16);
    CHECK(lx_item_f32(lx_var(hf, 0, false, 0)) == 0.0625f);
    /* half sums accumulate in float32: 4096 ones + small values do not stall at 2048 */
    int n = 4096;
    uint16_t *ones = malloc((size_t)n * 2);
    for (int i = 0; i < n; i++) ones[i] = lx_f32_to_f16(1.0f);
    CHECK(lx_item_f32(lx_sum(lx_array_new(ones, (int[]){n}, 1, LX_FLOAT16), 0, false)) == 4096.0f);
    free(ones);
    /* scalars: reducing "all axes" of a 0-d array is the value itself */
    lx_array sc = lx_scalar_f32(2.5f);
    CHECK(lx_item_f32(lx_sum_axes(sc, NULL, 0, false)) == 2.5f);
    CHECK(lx_ndim(lx_sum_axes(sc, NULL, 0, true)) == 0);
    CHECK(lx_dtype_of(lx_sum_axes(lx_scalar(1, LX_BOOL), NULL, 0, false)) == LX_INT32);
    /* NaN propagates through max/min, also along strided axes (row loop) */
    float xv[6] = {1, NAN, 3, 4, 5, 6};
    lx_array x = lx_array_f32(xv, (int[]){2, 3}, 2);
    CHECK(isnan(lx_item_f32(lx_max_axes(x, NULL, 0, false))));
    float col[3];
    lx_array m0 = lx_min(x, 0, false);
    CHECK_OK(lx_read(m0, col, sizeof col));
    CHECK(col[0] == 1 && isnan(col[1]) && col[2] == 3);
    float big_rows[2 * 20];
    for (int i = 0; i < 40; i++) big_rows[i] = (float)i;
    big_rows[25] = NAN;
    float cm[20];
    CHECK_OK(lx_read(lx_max(lx_array_f32(big_rows, (int[]){2, 20}, 2), 0, false), cm, sizeof cm));
    CHECK(cm[0] == 20 && isnan(cm[5]) && cm[19] == 39);
    /* logsumexp with infinities */
    float lv[4] = {-INFINITY, -INFINITY, INFINITY, 1};
    float lo[2];
    CHECK_OK(lx_read(lx_logsumexp(lx_array_f32(lv, (int[]){2, 2}, 2), 1, false), lo, sizeof lo));
    CHECK(lo[0] == -INFINITY && lo[1] == INFINITY);
    float lbig[2] = {1000.0f, 1000.0f};
    CHECK(fabsf(lx_item_f32(lx_logsumexp(lx_array_f32(lbig, (int[]){2}, 1), 0, false)) -
                (1000.0f + logf(2.0f))) < 1e-3f);
}

static void test_empty(void) {
    lx_array e = lx_zeros((int[]){3, 0}, 2, LX_FLOAT32);
    lx_keep(e);
    float out[3];
    CHECK_OK(lx_read(lx_sum(e, 1, false), out, sizeof out));
    CHECK(out[0] == 0 && out[2] == 0);
    CHECK_OK(lx_read(lx_prod(e, 1, false), out, sizeof out));
    CHECK(out[0] == 1 && out[1] == 1);
    CHECK_OK(lx_read(lx_mean(e, 1, false), out, sizeof out));
    CHECK(isnan(out[0]));
    bool bo[3];
    CHECK_OK(lx_read(lx_all(e, 1, false), bo, sizeof bo));
    CHECK(bo[0] && bo[2]);
    CHECK_OK(lx_read(lx_any(e, 1, false), bo, sizeof bo));
    CHECK(!bo[0] && !bo[2]);
    /* reducing the non-empty axis of an empty array gives an empty result */
    lx_array m = lx_max(e, 0, false);
    CHECK(!lx_is_null(m) && lx_size(m) == 0 && lx_dim(m, 0) == 0);
    CHECK_OK(lx_eval(m));
    /* max / min / argmax over an empty axis and logsumexp of nothing: errors at op time */
    CHECK(lx_is_null(lx_max(e, 1, false)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_min_axes(e, NULL, 0, false)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_argmax(e, 1, false)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_logsumexp(e, 1, false)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_item_f32(lx_sum_axes(e, NULL, 0, false)) == 0.0f);
    lx_free(e);
}

static void test_errors(void) {
    lx_array a = lx_zeros((int[]){2, 3}, 2, LX_FLOAT32);
    lx_keep(a);
    CHECK(lx_is_null(lx_sum(a, 2, false)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_mean(a, -3, false)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_sum_axes(a, (int[]){0, -2}, 2, false))); /* repeated */
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_sum_axes(a, NULL, 2, false)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_var(a, 5, false, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_argmax(a, -3, false)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_softmax(a, 2)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_sum(LX_NULL_ARRAY, 0, false)));
    CHECK_ERROR(LX_E_ARG);
    lx_array freed = lx_zeros((int[]){2}, 1, LX_FLOAT32);
    lx_sweep();
    CHECK(lx_is_null(lx_max(freed, 0, false)));
    CHECK_ERROR(LX_E_FREED);
    /* the message names the op and the axis */
    lx_sum(a, 7, true);
    CHECK(strstr(lx_error_message(), "lx_sum") != NULL && strstr(lx_error_message(), "7") != NULL);
    lx_clear_error();
    lx_free(a);
}

/* ------------------------------------------------------------------------------------------ */
/* argmax / argmin                                                                            */

static void test_arg_reduce(void) {
    t_seed(4242);
    int bad = 0, total = 0;
    for (int k = 0; k < NDT; k++) {
        lx_dtype t = ALL_DT[k];
        for (int rep = 0; rep < 25; rep++) {
            int mode = REDUCE_LAYOUTS[rep % 5], nd = t_int(1, 4), shape[LX_MAX_NDIM];
            for (int d = 0; d < nd; d++) shape[d] = t_int(1, rep >= 20 ? 40 : 6);
            size_t n = shape_size(shape, nd);
            double *v = malloc(n * sizeof(double));
            /* few distinct values: many ties, first occurrence must win */
            for (size_t i = 0; i < n; i++)
                v[i] = t == LX_BOOL ? (double)(t_next() & 1) : round_to((double)t_int(0, 4), t);
            lx_array a = make_array(v, shape, nd, t, mode);
            int ax = t_int(0, nd - 1);
            bool keep = t_next() & 1, is_min = t_next() & 1;
            lx_array r = is_min ? lx_argmin(a, (t_next() & 1) ? ax - nd : ax, keep)
                                : lx_argmax(a, (t_next() & 1) ? ax - nd : ax, keep);
            size_t nout = n / (size_t)shape[ax];
            bool ok = lx_dtype_of(r) == LX_UINT32 && lx_ndim(r) == (keep ? nd : nd - 1) &&
                      lx_size(r) == nout;
            uint32_t *got = malloc((nout + 1) * sizeof(uint32_t));
            ok = ok && lx_read(r, got, nout * sizeof(uint32_t)) == LX_OK;
            int oshape[LX_MAX_NDIM], idx[LX_MAX_NDIM];
            for (int d = 0; d < nd; d++) oshape[d] = d == ax ? 1 : shape[d];
            for (size_t o = 0; ok && o < nout; o++) {
                unravel(o, oshape, nd, idx);
                uint32_t best = 0;
                double bv = 0;
                for (int j = 0; j < shape[ax]; j++) {
                    idx[ax] = j;
                    double x = v[ravel(idx, shape, nd)];
                    if (j == 0 || (is_min ? x < bv : x > bv)) {
                        bv = x;
                        best = (uint32_t)j;
                    }
                }
                if (got[o] != best) {
                    if (bad < 5)
                        fprintf(stderr, "  arg%s %s %s: out[%zu] got %u want %u\n", is_min ? "min" : "max",
                                lx_dtype_name(t), MODE_NAME[mode], o, got[o], best);
                    ok = false;
                }
            }
            if (!ok) {
                bad++;
                lx_clear_error();
            }
            total++;
            free(got);
            free(v);
            lx_sweep();
        }
    }
    CHECK_MSG(bad == 0, "%d of %d argmax/argmin cases failed", bad, total);

    /* NaN counts as the extreme: the first NaN wins, for argmax and argmin */
    float x[5] = {1, NAN, 7, NAN, -3};
    lx_array a = lx_array_f32(x, (int[]){5}, 1);
    CHECK(lx_item_i32(lx_argmax(a, 0, false)) == 1);
    CHECK(lx_item_i32(lx_argmin(a, 0, false)) == 1);
    /* long rows (chunked) with the maximum in a late chunk and ties across chunks */
    int n = 5000;
    float *y = malloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) y[i] = (float)(i % 100);
    y[3000] = 500;
    y[4999] = 500;
    CHECK(lx_item_i32(lx_argmax(lx_array_f32(y, (int[]){n}, 1), 0, false)) == 3000);
    CHECK(lx_item_i32(lx_argmin(lx_array_f32(y, (int[]){n}, 1), 0, false)) == 0);
    free(y);
    /* keepdims shape */
    lx_array k = lx_argmax(lx_zeros((int[]){2, 3, 4}, 3, LX_FLOAT32), 1, true);
    CHECK(lx_ndim(k) == 3 && lx_dim(k, 1) == 1 && lx_dim(k, 2) == 4);
}

/* ------------------------------------------------------------------------------------------ */
/* softmax, log_softmax, rms_norm                                                             */

static void test_softmax(void) {
    t_seed(555);
    int bad = 0, total = 0;
    for (int ti = 0; ti < 4 + 2; ti++) {
        lx_dtype t = ti < 4 ? FLOAT_DT[ti] : (ti == 4 ? LX_INT32 : LX_BOOL);
        lx_dtype ot = is_float(t) ? t : LX_FLOAT32;
        for (int rep = 0; rep < 25; rep++) {
            int mode = REDUCE_LAYOUTS[rep % 5], nd = t_int(1, 4), shape[LX_MAX_NDIM];
            for (int d = 0; d < nd; d++) shape[d] = t_int(1, rep >= 20 ? 300 : 7);
            size_t n = shape_size(shape, nd);
            if (n > 200000) { shape[0] = 1; n = shape_size(shape, nd); }
            double *v = malloc(n * sizeof(double));
            for (size_t i = 0; i < n; i++)
                v[i] = is_float(t) ? round_to(t_uniform(-8, 8), t) : (t == LX_BOOL ? (double)(t_next() & 1) : t_int(-5, 5));
            lx_array a = make_array(v, shape, nd, t, mode);
            int ax = t_int(0, nd - 1);
            bool lg = t_next() & 1;
            lx_array r = lg ? lx_log_softmax(a, ax - nd) : lx_softmax(a, ax);
            double *got = malloc(n * sizeof(double));
            bool ok = lx_dtype_of(r) == ot && lx_size(r) == n && read_doubles(r, got, n);
            int oshape[LX_MAX_NDIM], idx[LX_MAX_NDIM];
            for (int d = 0; d < nd; d++) oshape[d] = d == ax ? 1 : shape[d];
            for (size_t o = 0; ok && o < n / (size_t)shape[ax]; o++) {
                unravel(o, oshape, nd, idx);
                double m = -INFINITY, s = 0;
                for (int j = 0; j < shape[ax]; j++) {
                    idx[ax] = j;
                    m = fmax(m, v[ravel(idx, shape, nd)]);
                }
                for (int j = 0; j < shape[ax]; j++) {
                    idx[ax] = j;
                    s += exp(v[ravel(idx, shape, nd)] - m);
                }
                for (int j = 0; j < shape[ax]; j++) {
                    idx[ax] = j;
                    size_t i = ravel(idx, shape, nd);
                    double w = lg ? v[i] - m - log(s) : exp(v[i] - m) / s;
                    double u = unit_round(ot);
                    double tol = ot == LX_FLOAT64 ? 1e-13 * (1 + fabs(w))
                               : lg ? 4e-6 * (1 + fabs(w)) + 2 * u * fabs(w)
                                    : 2e-6 * fabs(w) + 1e-7 + 2 * u * fabs(w);
                    if (!(fabs(got[i] - w) <= tol)) {
                        if (bad < 5)
                            fprintf(stderr, "  %s %s %s: [%zu] got %.9g want %.9g\n", lg ? "log_softmax" : "softmax",
                                    lx_dtype_name(t), MODE_NAME[mode], i, got[i], w);
                        ok = false;
                        break;
                    }
                }
            }
            if (!ok) {
                bad++;
                lx_clear_error();
            }
            total++;
            free(got);
            free(v);
            lx_sweep();
        }
    }
    CHECK_MSG(bad == 0, "%d of %d softmax cases failed", bad, total);
    /* stability: huge logits, and a row of -inf with one finite value */
    float x[4] = {1000, 1001, -INFINITY, 5};
    float y[4];
    CHECK_OK(lx_read(lx_softmax(lx_array_f32(x, (int[]){2, 2}, 2), 1), y, sizeof y));
    CHECK(fabsf(y[0] - 0.26894142f) < 1e-6f && fabsf(y[1] - 0.73105858f) < 1e-6f);
    CHECK(y[2] == 0.0f && y[3] == 1.0f);
    /* an empty array comes back as it is */
    lx_array e = lx_softmax(lx_zeros((int[]){0, 3}, 2, LX_FLOAT32), 1);
    CHECK(!lx_is_null(e) && lx_size(e) == 0);
}

static void test_rms_norm(void) {
    t_seed(808);
    int bad = 0, total = 0;
    for (int ti = 0; ti < 4; ti++) {
        lx_dtype t = FLOAT_DT[ti];
        for (int rep = 0; rep < 20; rep++) {
            int mode = REDUCE_LAYOUTS[rep % 5], nd = t_int(1, 4), shape[LX_MAX_NDIM];
            for (int d = 0; d < nd; d++) shape[d] = t_int(1, 6);
            if (rep >= 15) shape[nd - 1] = t_int(500, 3000);
            size_t n = shape_size(shape, nd);
            int D = shape[nd - 1];
            double *v = malloc(n * sizeof(double)), *w = malloc((size_t)D * sizeof(double));
            for (size_t i = 0; i < n; i++) v[i] = round_to(t_uniform(-3, 3), t);
            for (int i = 0; i < D; i++) w[i] = round_to(t_uniform(0.5, 1.5), t);
            lx_array x = make_array(v, shape, nd, t, mode);
            bool with_w = rep % 3 != 0;
            lx_array wa = with_w ? from_doubles(w, &D, 1, t) : LX_NULL_ARRAY;
            float eps = 1e-5f;
            lx_array r = lx_rms_norm(x, wa, eps);
            double *got = malloc(n * sizeof(double));
            bool ok = lx_dtype_of(r) == t && read_doubles(r, got, n);
            for (size_t row = 0; ok && row < n / (size_t)D; row++) {
                double ss = 0;
                for (int j = 0; j < D; j++) ss += v[row * D + j] * v[row * D + j];
                double inv = 1.0 / sqrt(ss / D + (double)eps);
                for (int j = 0; j < D; j++) {
                    double want = v[row * D + j] * inv * (with_w ? w[j] : 1.0);
                    double u = unit_round(t);
                    double tol = t == LX_FLOAT64 ? 1e-7 * fabs(want) + 1e-12
                                                 : (t == LX_FLOAT32 ? 4e-6 : 3 * u) * fabs(want) + 1e-7;
                    if (!(fabs(got[row * D + j] - want) <= tol)) {
                        if (bad < 5)
                            fprintf(stderr, "  rms_norm %s %s: [%zu] got %.9g want %.9g\n", lx_dtype_name(t),
                                    MODE_NAME[mode], row * D + j, got[row * D + j], want);
                        ok = false;
                        break;
                    }
                }
            }
            if (!ok) {
                bad++;
                lx_clear_error();
            }
            total++;
            free(got);
            free(v);
            free(w);
            lx_sweep();
        }
    }
    CHECK_MSG(bad == 0, "%d of %d rms_norm cases failed", bad, total);
    /* dtype promotion as MLX: float16 x with float32 w gives float32 */
    lx_array xh = lx_ones((int[]){2, 4}, 2, LX_FLOAT16);
    lx_array wf = lx_ones((int[]){4}, 1, LX_FLOAT32);
    CHECK(lx_dtype_of(lx_rms_norm(xh, wf, 1e-5f)) == LX_FLOAT32);
    /* errors */
    CHECK(lx_is_null(lx_rms_norm(xh, lx_ones((int[]){3}, 1, LX_FLOAT16), 1e-5f)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_rms_norm(lx_ones((int[]){2, 4}, 2, LX_INT32), LX_NULL_ARRAY, 1e-5f)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_rms_norm(lx_scalar_f32(1), LX_NULL_ARRAY, 1e-5f)));
    CHECK_ERROR(LX_E_SHAPE);
}

/* ------------------------------------------------------------------------------------------ */
/* isclose / allclose / array_equal                                                           */

static void test_close(void) {
    float a[6] = {1.0f, 2.0f, NAN, INFINITY, -INFINITY, 5.0f};
    float b[6] = {1.0f + 1e-6f, 2.1f, NAN, INFINITY, INFINITY, 5.0f};
    lx_array x = lx_array_f32(a, (int[]){6}, 1), y = lx_array_f32(b, (int[]){6}, 1);
    bool r[6];
    CHECK_OK(lx_read(lx_isclose(x, y, 1e-5, 1e-8, false), r, sizeof r));
    CHECK(r[0] && !r[1] && !r[2] && r[3] && !r[4] && r[5]);
    CHECK_OK(lx_read(lx_isclose(x, y, 1e-5, 1e-8, true), r, sizeof r));
    CHECK(r[2]);
    /* |a - b| <= atol + rtol |b| is asymmetric: tolerance from b */
    lx_array p = lx_scalar_f32(100.0f), q = lx_scalar_f32(109.0f);
    CHECK(lx_item_i32(lx_isclose(p, q, 0.085, 0, false)) == 1);
    CHECK(lx_item_i32(lx_isclose(q, p, 0.085, 0, false)) == 0);
    /* broadcasting and mixed dtypes */
    lx_array ones_i = lx_ones((int[]){2, 3}, 2, LX_INT32);
    lx_array ones_h = lx_ones((int[]){3}, 1, LX_FLOAT16);
    lx_array ic = lx_isclose(ones_i, ones_h, 1e-5, 1e-8, false);
    CHECK(lx_ndim(ic) == 2 && lx_dtype_of(ic) == LX_BOOL);
    CHECK(lx_item_i32(lx_allclose(ones_i, ones_h, 1e-5, 1e-8, false)) == 1);
    lx_array ac = lx_allclose(x, y, 1e-5, 1e-8, false);
    CHECK(lx_ndim(ac) == 0 && lx_item_i32(ac) == 0);
    CHECK(lx_item_i32(lx_allclose(x, x, 0, 0, true)) == 1);
    CHECK(lx_item_i32(lx_allclose(x, x, 0, 0, false)) == 0); /* NaN != NaN */
    /* array_equal: shapes must match exactly (no broadcasting), dtypes may differ */
    CHECK(lx_item_i32(lx_array_equal(ones_i, lx_ones((int[]){2, 3}, 2, LX_FLOAT32), false)) == 1);
    CHECK(lx_item_i32(lx_array_equal(ones_i, ones_h, false)) == 0);
    CHECK(lx_item_i32(lx_array_equal(x, x, false)) == 0);
    CHECK(lx_item_i32(lx_array_equal(x, x, true)) == 1);
    CHECK(lx_is_null(lx_isclose(lx_ones((int[]){2}, 1, LX_FLOAT32), lx_ones((int[]){3}, 1, LX_FLOAT32), 0, 0, false)));
    CHECK_ERROR(LX_E_SHAPE);
}

/* Reductions of arrays that are still lazy, and tracking: one handle per op. */
static void test_lazy_and_tracking(void) {
    lx_array a = lx_arange(0, 12, 1, LX_FLOAT32);
    lx_array b = lx_reshape(a, (int[]){3, 4}, 2);
    size_t before = lx_tracked_count();
    lx_array s = lx_var_axes(b, NULL, 0, false, 1);
    CHECK(lx_tracked_count() == before + 1);
    CHECK(fabsf(lx_item_f32(s) - 13.0f) < 1e-5f);
    lx_array m = lx_mean(b, -1, true);
    float mv[3];
    CHECK_OK(lx_read(m, mv, sizeof mv));
    CHECK(mv[0] == 1.5f && mv[1] == 5.5f && mv[2] == 9.5f);
    lx_array sd = lx_std(b, 0, false, 0);
    float sv[4];
    CHECK_OK(lx_read(sd, sv, sizeof sv));
    CHECK(fabsf(sv[0] - sqrtf(32.0f / 3.0f)) < 1e-5f);
}

int main(void) {
    RUN_TEST(test_dtypes_and_semantics);
    RUN_TEST(test_reductions_random);
    RUN_TEST(test_reductions_large);
    RUN_TEST(test_sum_accuracy);
    RUN_TEST(test_empty);
    RUN_TEST(test_errors);
    RUN_TEST(test_arg_reduce);
    RUN_TEST(test_softmax);
    RUN_TEST(test_rms_norm);
    RUN_TEST(test_close);
    RUN_TEST(test_lazy_and_tracking);
    return test_finish();
}
