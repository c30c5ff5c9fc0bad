/*
 * test_unary_accuracy.c -- the float32 forms of tanh, gelu, log2, log10, expm1, log1p, sin,
 * cos and erfinv (the UNARY kernels of the CPU variant in use, whose float forms are elementwise_ops.h's
 * vectorizable lx_ew_*_f) against float64 libm, through the public API, over every 97th float
 * of their working ranges (~10M values each; ~4 s in all, ~40 s under the sanitizers), both
 * signs where the function takes both; plus their special values, which are exact.
 *
 * Bounds (ulp of the float64 result, taken at the float32 result's binade): the maximum
 * measured over every float of the range (every 7th for the wider ones) when each form was
 * written, under the generic (SSE2, no FMA) and x86-64-v3 (FMA) variants, rounded up by
 * 0.1-0.3 ulp so that another compiler's instruction choice may not fail the test while a real
 * regression (a wrong coefficient costs tens of ulp) still does:
 *   tanh  1.33 measured -> 1.5
 *   gelu  3.71 measured (generic; 3.32 with FMA) -> 4.0; subnormal results (x near -14)
 *         count in units of the subnormal spacing
 *   log2  1.21 measured (generic; 1.12 with FMA) over every positive float -> 1.4
 *   log10 1.11 measured (v3; 1.06 generic) over every positive float -> 1.3
 *   expm1 1.49 measured (generic; 1.44 with FMA) over every float of [-20, 89] -> 1.7
 *   log1p 0.86 measured (generic; 0.85 with FMA) over every float of (-1, 2^32], every 7th
 *         beyond -> 1.0
 *   sin, cos 0.50 measured over every 3rd float of [0, 2^21] and every 17th of [-2^21, 0] (the
 *         reduction and polynomials are in double; beyond 2^21 libm) -> 0.6, every 97th float
 *   erfinv 0.542 measured (v3 and generic alike) over every float of (-1, 1) against float64
 *         lx_ew_erfinv_core (Halley steps on libm's erf/erfc; evaluated in double) -> 0.6
 */
#include "test_ulp.h"

#include "graph/elementwise_ops.h" /* lx_ew_erfinv_core: the float64 reference */

#define STRIDE 97u

typedef lx_array (*op_fn)(lx_array);
typedef double (*ref_fn)(double);

/* Every stride-th float of [lo, hi) (0 <= lo < hi), and of (-hi, -lo] when both_signs. */
static void check_range_s(const char *name, op_fn op, ref_fn ref, float lo, float hi,
                          bool both_signs, uint32_t stride, double bound) {
    uint32_t a, b;
    memcpy(&a, &lo, 4);
    memcpy(&b, &hi, 4);
    t_ulp_acc acc = {ref, INFINITY, 0, 0, 0, 0};
    t_sweep_floats(op, a, b, stride, t_ulp_check, &acc);
    if (both_signs) t_sweep_floats(op, a | 0x80000000u, b | 0x80000000u, stride, t_ulp_check, &acc);
    double w = acc.worst;
    float wx = acc.worst_x;
    int bad = acc.bad;
    printf("%s float32 on %s[%g, %g]: max error %.3f ulp at x = %.9g (%s)\n", name,
           both_signs ? "+-" : "", (double)lo, (double)hi, w, (double)wx, lx_backend_info());
    CHECK_MSG(w <= bound, "%s: %.3f ulp (bound %.2f)", name, w, bound);
    CHECK_MSG(bad == 0, "%s: %d infinite or NaN results wrong", name, bad);
}

static void check_range(const char *name, op_fn op, ref_fn ref, float lo, float hi,
                        bool both_signs, double bound) {
    check_range_s(name, op, ref, lo, hi, both_signs, STRIDE, bound);
}

/* op over in[] must give exactly want[] (bit for bit but for NaN, which must be a NaN). */
static void check_exact(const char *name, op_fn op, const float *in, const float *want, int n) {
    lx_array y = op(lx_array_f32(in, (const int[]){n}, 1));
    CHECK_OK(lx_eval(y));
    const float *yd = lx_data(y);
    CHECK(yd != NULL);
    for (int i = 0; yd && i < n; i++) {
        bool ok = isnan(want[i]) ? isnan(yd[i]) : memcmp(&yd[i], &want[i], 4) == 0;
        CHECK_MSG(ok, "%s(%.9g) = %.9g, want %.9g", name, (double)in[i], (double)yd[i],
                  (double)want[i]);
    }
    lx_sweep();
}

#define SUBN 1.4e-45f /* the smallest subnormal */

static void test_tanh(void) {
    const float in[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, SUBN, -SUBN, 1e-30f, 9.5f,
                        -1e30f};
    const float want[] = {0.0f, -0.0f, 1.0f, -1.0f, NAN, SUBN, -SUBN, 1e-30f, 1.0f, -1.0f};
    check_exact("tanh", lx_tanh, in, want, 10);
    check_range("tanh", lx_tanh, tanh, 0.0f, 10.0f, true, 1.5);
}

static double ref_gelu(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }

static void test_gelu(void) {
    const float in[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -100.0f, -14.5f, 1e30f, -1e30f};
    const float want[] = {0.0f, -0.0f, INFINITY, -0.0f, NAN, -0.0f, -0.0f, 1e30f, -0.0f};
    check_exact("gelu", lx_gelu, in, want, 9);
    check_range("gelu", lx_gelu, ref_gelu, 0.0f, 15.0f, true, 4.0);
}

static void test_log2_log10(void) {
    const float in[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -1.0f, 1.0f, 1024.0f, 0x1p-149f,
                        0x1p-126f};
    const float want2[] = {-INFINITY, -INFINITY, INFINITY, NAN, NAN, NAN, 0.0f, 10.0f, -149.0f,
                           -126.0f};
    check_exact("log2", lx_log2, in, want2, 10);
    const float want10[] = {-INFINITY, -INFINITY, INFINITY, NAN, NAN, NAN, 0.0f};
    check_exact("log10", lx_log10, in, want10, 7);
    /* every positive float, subnormals included (+0 gives -Inf, checked exactly) */
    check_range("log2", lx_log2, log2, 0.0f, INFINITY, false, 1.4);
    check_range("log10", lx_log10, log10, 0.0f, INFINITY, false, 1.3);
}

static void test_expm1_log1p(void) {
    const float in[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, SUBN, -SUBN, 1e-30f, -100.0f,
                        100.0f};
    const float want[] = {0.0f, -0.0f, INFINITY, -1.0f, NAN, SUBN, -SUBN, 1e-30f, -1.0f,
                          INFINITY};
    check_exact("expm1", lx_expm1, in, want, 10);
    check_range("expm1", lx_expm1, expm1, 0.0f, 90.0f, true, 1.7);
    const float lin[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, SUBN, -SUBN, 1e-30f, -1.0f,
                         -2.0f};
    const float lwant[] = {0.0f, -0.0f, INFINITY, NAN, NAN, SUBN, -SUBN, 1e-30f, -INFINITY,
                           NAN};
    check_exact("log1p", lx_log1p, lin, lwant, 10);
    check_range("log1p", lx_log1p, log1p, 0.0f, 1.0f, true, 1.0); /* and (-1, 0] */
    check_range("log1p", lx_log1p, log1p, 1.0f, INFINITY, false, 1.0);
}

/* Beyond 2^21 the float forms call libm's sinf / cosf, also for such elements within a block of
 * small ones (the loop's fix-up pass): a mixed array against per-element expectations. */
static void test_sin_cos(void) {
    enum { N = 200 };
    float in[N];
    for (int i = 0; i < N; i++)
        in[i] = i % 37 == 5 ? (i % 2 ? -3e6f : 1e30f) * (float)(i + 1) : 0.37f * (float)(i - 100);
    in[7] = INFINITY;
    in[8] = -INFINITY;
    in[9] = NAN;
    in[10] = 0.0f;
    in[11] = -0.0f;
    in[12] = SUBN;
    lx_array xs = lx_array_f32(in, (const int[]){N}, 1);
    lx_array s = lx_sin(xs), c = lx_cos(xs);
    CHECK_OK(lx_eval(s, c));
    const float *sd = lx_data(s), *cd = lx_data(c);
    CHECK(sd != NULL && cd != NULL);
    for (int i = 0; sd && cd && i < N; i++) {
        float ws = sinf(in[i]), wc = cosf(in[i]);
        if (fabsf(in[i]) > 2097152.0f || isnan(in[i])) { /* libm's exact bits, or a NaN */
            CHECK_MSG(isnan(ws) ? isnan(sd[i]) : memcmp(&sd[i], &ws, 4) == 0, "sin(%g)", (double)in[i]);
            CHECK_MSG(isnan(wc) ? isnan(cd[i]) : memcmp(&cd[i], &wc, 4) == 0, "cos(%g)", (double)in[i]);
        } else {
            double rs = sin((double)in[i]), rc = cos((double)in[i]);
            CHECK_MSG(fabs(sd[i] - rs) <= 0.6 * t_ulp_at(rs), "sin(%.9g) = %.9g", (double)in[i], (double)sd[i]);
            CHECK_MSG(fabs(cd[i] - rc) <= 0.6 * t_ulp_at(rc), "cos(%.9g) = %.9g", (double)in[i], (double)cd[i]);
        }
    }
    CHECK(sd && signbit(sd[11]) && sd[11] == 0.0f && sd[12] == SUBN && cd[10] == 1.0f);
    lx_sweep();
    /* every 97th float of [-2^21, 2^21] */
    check_range_s("sin", lx_sin, sin, 0.0f, 2097152.0f, true, 97, 0.6);
    check_range_s("cos", lx_cos, cos, 0.0f, 2097152.0f, true, 97, 0.6);
}

static double ref_erfinv(double x) { return lx_ew_erfinv_core(x, 3); }

static void test_erfinv(void) {
    const float in[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, 1.00000012f, -2.0f,
                        SUBN, -SUBN, 1e-30f, 0x1p-126f, 0.99999994f};
    const float want[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, NAN, NAN, NAN, NAN, SUBN,
                          -SUBN, 0x1.1f98dap-100f, 0x1.c5bf88p-127f, 0x1.ea8f96p+1f};
    check_exact("erfinv", lx_erfinv, in, want, 14);
    check_range("erfinv", lx_erfinv, ref_erfinv, 0.0f, 1.0f, true, 0.6); /* and (-1, 0] */
}

int main(void) {
    RUN_TEST(test_tanh);
    RUN_TEST(test_gelu);
    RUN_TEST(test_log2_log10);
    RUN_TEST(test_expm1_log1p);
    RUN_TEST(test_sin_cos);
    RUN_TEST(test_erfinv);
    return test_finish();
}
