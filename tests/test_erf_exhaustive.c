/*
 * test_erf_exhaustive.c -- float32 erf (the UNARY kernel of the CPU variant in use) against
 * float64 erf, through the public API: every float of [2^-10, 5] and its negative, and every
 * 61st float below 2^-10 (where erf(x) ~ 2x/sqrt(pi) and the rational's leading term rules;
 * the stride keeps the run at a few seconds).
 *
 * Bound: 7 ulp of the float64 result (ulp taken at the float32 result's binade). Measured
 * over every float of [0, 5] (elementwise_ops.h): 5.83 ulp with FMA (x86-64-v3, the monic-Q
 * form), 6.95 without (baseline SSE2), both near x = 3.5, where erf ~ 1; a change of
 * coefficients, evaluation order or contraction shows up here. Also exact: erf(+-0) = +-0
 * with its sign, erf(x) = +-1 for |x| >= 4 and at +-Inf, |erf(x)| <= 1 everywhere, NaN
 * propagates. The sanitizer build runs the generic variant (no FMA), so both evaluation modes
 * are covered between the two CI builds. The reference runs on two threads (~10 s in all).
 */
#include <pthread.h>

#include "test_ulp.h"

#define ERF_MAX_ULP 7.0
#define CHUNK (1u << 22)


typedef struct {
    const float *x, *y;
    size_t n;
    double worst;
    float worst_x;
    int bad; /* exact-property violations */
} part;

static void *check_part(void *arg) {
    part *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        float x = p->x[i], y = p->y[i];
        double r = erf((double)x);
        double u = fabs((double)y - r) / t_ulp_at(r);
        if (u > p->worst) {
            p->worst = u;
            p->worst_x = x;
        }
        if (fabsf(y) > 1.0f || (fabsf(x) >= 4.0f && fabsf(y) != 1.0f) ||
            (y != 0.0f && signbit(y) != signbit(x)))
            p->bad++;
    }
    return NULL;
}

static void test_every_float(void) {
    const uint32_t end = 0x40A00000u;   /* 5.0f */
    const uint32_t dense = 0x3A800000u; /* 2^-10: every float from here on */
    float *x = malloc(CHUNK * sizeof *x);
    CHECK(x != NULL);
    if (!x) return;
    double worst = 0;
    float worst_x = 0;
    int bad = 0;
    for (int sign = 0; sign < 2; sign++) {
        uint32_t next = 0;
        while (next < end) {
            uint32_t n = 0;
            while (n < CHUNK && next < end) {
                uint32_t bits = next | (sign ? 0x80000000u : 0u);
                memcpy(&x[n++], &bits, 4);
                next += next < dense ? 61u : 1u;
            }
            lx_array y = lx_erf(lx_array_f32(x, (const int[]){(int)n}, 1));
            CHECK_OK(lx_eval(y));
            const float *yd = lx_data(y);
            CHECK(yd != NULL);
            if (!yd) break;
            part parts[2] = {{x, yd, n / 2, 0, 0, 0}, {x + n / 2, yd + n / 2, n - n / 2, 0, 0, 0}};
            pthread_t th;
            int threaded = pthread_create(&th, NULL, check_part, &parts[1]) == 0;
            check_part(&parts[0]);
            if (threaded) pthread_join(th, NULL);
            else check_part(&parts[1]);
            for (int k = 0; k < 2; k++) {
                if (parts[k].worst > worst) {
                    worst = parts[k].worst;
                    worst_x = parts[k].worst_x;
                }
                bad += parts[k].bad;
            }
            lx_sweep();
        }
    }
    free(x);
    printf("erf float32: max error %.3f ulp at x = %.9g (%s)\n", worst, (double)worst_x,
           lx_backend_info());
    CHECK_MSG(worst <= ERF_MAX_ULP, "max error %.3f ulp at %.9g", worst, (double)worst_x);
    CHECK_MSG(bad == 0, "%d values break |erf| <= 1, erf = +-1 from |x| = 4 or the sign", bad);
}

static void test_specials(void) {
    const float in[] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e30f, -1e30f, 1e-40f};
    lx_array y = lx_erf(lx_array_f32(in, (const int[]){8}, 1));
    CHECK_OK(lx_eval(y));
    const float *d = lx_data(y);
    CHECK(d[0] == 1.0f && d[1] == -1.0f && isnan(d[2]));
    CHECK(d[3] == 0.0f && !signbit(d[3]) && d[4] == 0.0f && signbit(d[4]));
    CHECK(d[5] == 1.0f && d[6] == -1.0f);
    CHECK(d[7] > 0.0f && d[7] < 2e-40f); /* 2/sqrt(pi) x in the subnormals */
    lx_sweep();
}

int main(void) {
    RUN_TEST(test_specials);
    RUN_TEST(test_every_float);
    return test_finish();
}
