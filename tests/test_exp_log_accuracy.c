/*
 * test_exp_log_accuracy.c -- float32 exp, log, sigmoid and silu (the UNARY kernels of the CPU
 * variant in use, whose float forms are elementwise_ops.h's vectorizable lx_ew_exp_f and
 * lx_ew_log_f) against float64, through the public API, over every 29th float of their
 * working ranges (log: every positive float, subnormals included).
 *
 * Bounds (ulp of the float64 result, taken at the float32 result's binade), measured over
 * every float when the forms were written: exp 1.01 ulp (Cephes' reduction and polynomial),
 * log 0.82 ulp (every third positive float; Cephes' too),
 * sigmoid 2.40 (exp, then a division), silu 3.13 where sigmoid is a normal number; below that
 * (x < -87) silu multiplies a subnormal sigmoid, whose own relative error is large, so there
 * it is checked in absolute terms. Exact: exp(+-Inf) = Inf, 0; sigmoid(+-Inf) = 1, 0;
 * silu(-Inf) = -0; log(+-0) = -Inf, log(x < 0) = NaN, log(+Inf) = +Inf; NaN propagates; exp underflows to 0 below -103.97 and overflows to Inf
 * above 88.72.
 */
#include "test_ulp.h"

#define STRIDE 29u

typedef lx_array (*op_fn)(lx_array);
typedef double (*ref_fn)(double);

static double ref_exp(double x) { return exp(x); }
static double ref_log(double x) { return log(x); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_silu(double x) { return x / (1.0 + exp(-x)); }

/* Every STRIDE-th float from bits `from` up to `to` (same sign, moving away from zero) through
 * op; returns the worst error in ulp (see t_ulp_check). */
static double sweep(const char *name, op_fn op, ref_fn ref, uint32_t from, uint32_t to,
                    float ulp_limit, double abs_tol, float *worst_x) {
    t_ulp_acc acc = {ref, ulp_limit, abs_tol, 0, 0, 0};
    t_sweep_floats(op, from, to, STRIDE, t_ulp_check, &acc);
    CHECK_MSG(acc.bad == 0, "%s: %d results off by more than %g", name, acc.bad, abs_tol);
    *worst_x = acc.worst_x;
    return acc.worst;
}

/* Both signs, every STRIDE-th float of [0, limit]. */
static double sweep_both(const char *name, op_fn op, ref_fn ref, float limit, float ulp_limit,
                         double abs_tol) {
    uint32_t top;
    memcpy(&top, &limit, 4);
    float wx_pos = 0, wx_neg = 0;
    double pos = sweep(name, op, ref, 0, top, ulp_limit, abs_tol, &wx_pos);
    double neg = sweep(name, op, ref, 0x80000000u, 0x80000000u | top, ulp_limit, abs_tol, &wx_neg);
    double worst = pos > neg ? pos : neg;
    printf("%s float32: max error %.3f ulp at x = %.9g (%s)\n", name, worst,
           (double)(pos > neg ? wx_pos : wx_neg), lx_backend_info());
    return worst;
}

static void test_exp(void) {
    double w = sweep_both("exp", lx_exp, ref_exp, 110.0f, 110.0f, 0);
    CHECK_MSG(w <= 1.5, "exp: %.3f ulp", w);
}

static void test_log(void) {
    float wx = 0;
    double w = sweep("log", lx_log, ref_log, 1, 0x7f800000u, INFINITY, 0, &wx);
    printf("log float32: max error %.3f ulp at x = %.9g (%s)\n", w, (double)wx, lx_backend_info());
    CHECK_MSG(w <= 1.0, "log: %.3f ulp", w);
}

static void test_sigmoid(void) {
    double w = sweep_both("sigmoid", lx_sigmoid, ref_sigmoid, 120.0f, 120.0f, 0);
    CHECK_MSG(w <= 3.0, "sigmoid: %.3f ulp", w);
}

static void test_silu(void) {
    /* below -87 the sigmoid is subnormal: within 2^-126 * 120 absolute */
    double w = sweep_both("silu", lx_silu, ref_silu, 120.0f, 87.0f, 1.5e-36);
    CHECK_MSG(w <= 3.5, "silu: %.3f ulp", w);
}

static void test_specials(void) {
    const float in[] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 88.8f, -104.0f, 1e-30f};
    lx_array x = lx_array_f32(in, (const int[]){8}, 1);
    lx_array e = lx_exp(x), s = lx_sigmoid(x), l = lx_silu(x);
    CHECK_OK(lx_eval(e, s, l));
    const float *ed = lx_data(e), *sd = lx_data(s), *ld = lx_data(l);
    CHECK(ed[0] == INFINITY && ed[1] == 0.0f && isnan(ed[2]) && ed[3] == 1.0f && ed[4] == 1.0f);
    CHECK(ed[5] == INFINITY && ed[6] == 0.0f && ed[7] == 1.0f);
    CHECK(sd[0] == 1.0f && sd[1] == 0.0f && isnan(sd[2]) && sd[3] == 0.5f && sd[4] == 0.5f);
    CHECK(ld[0] == INFINITY && ld[1] == 0.0f && signbit(ld[1]) && isnan(ld[2]));
    CHECK(ld[3] == 0.0f && !signbit(ld[3]) && ld[4] == 0.0f && signbit(ld[4]));
    const float lin[] = {0.0f, -0.0f, -1.0f, INFINITY, -INFINITY, NAN, 1.0f, 1e-45f};
    lx_array g = lx_log(lx_array_f32(lin, (const int[]){8}, 1));
    CHECK_OK(lx_eval(g));
    const float *gd = lx_data(g);
    CHECK(gd[0] == -INFINITY && gd[1] == -INFINITY && isnan(gd[2]) && gd[3] == INFINITY);
    CHECK(isnan(gd[4]) && isnan(gd[5]) && gd[6] == 0.0f && fabsf(gd[7] + 103.2789f) < 1e-3f);
    lx_sweep();
}

int main(void) {
    RUN_TEST(test_specials);
    RUN_TEST(test_exp);
    RUN_TEST(test_log);
    RUN_TEST(test_sigmoid);
    RUN_TEST(test_silu);
    return test_finish();
}
