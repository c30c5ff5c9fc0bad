/*
 * test_ulp.h -- what the float32 accuracy tests share: the size of an ulp at a float64
 * reference, and a sweep that runs every stride-th float of a range of bit patterns through an
 * op, a chunk at a time, handing each chunk's inputs and results to the test's own check.
 */
#ifndef LX_TEST_ULP_H
#define LX_TEST_ULP_H

#include "test_util.h"

/* Values per evaluation of the op (16 MiB of float32). */
#define T_SWEEP_CHUNK (1u << 22)

/* One ulp at r, taken at the float32 result's binade; subnormals count in their spacing. */
static inline double t_ulp_at(double r) {
    float f = fabsf((float)r);
    if (f < 1.17549435e-38f) return 1.40129846e-45; /* subnormal spacing */
    return (double)(nextafterf(f, INFINITY) - f);
}

typedef void (*t_sweep_check)(void *ctx, const float *x, const float *y, uint32_t n);

/* Every stride-th float from bit pattern `from` up to (not including) `to`, moving away from
 * zero within one sign, through op; check sees each chunk. */
static inline void t_sweep_floats(lx_array (*op)(lx_array), uint32_t from, uint32_t to,
                                  uint32_t stride, t_sweep_check check, void *ctx) {
    float *x = malloc(T_SWEEP_CHUNK * sizeof *x);
    CHECK(x != NULL);
    if (!x) return;
    for (uint32_t next = from; next < to;) {
        uint32_t n = 0;
        for (; n < T_SWEEP_CHUNK && next < to; next += stride) memcpy(&x[n++], &next, 4);
        lx_array y = op(lx_array_f32(x, (const int[]){(int)n}, 1));
        CHECK_OK(lx_eval(y));
        const float *yd = lx_data(y);
        CHECK(yd != NULL);
        if (!yd) break;
        check(ctx, x, yd, n);
        lx_sweep();
    }
    free(x);
}

/* A check for t_sweep_floats: the worst error in ulp against ref over inputs with
 * |x| <= ulp_limit (INFINITY: all); beyond, results within abs_tol of the reference. NaN and
 * infinite references must be matched exactly, and a NaN result counts as infinitely wrong;
 * bad counts the results that break these rules. */
typedef struct {
    double (*ref)(double);
    float ulp_limit;
    double abs_tol;
    double worst;
    float worst_x;
    int bad;
} t_ulp_acc;

static inline void t_ulp_check(void *ctx, const float *x, const float *y, uint32_t n) {
    t_ulp_acc *a = ctx;
    for (uint32_t i = 0; i < n; i++) {
        double r = a->ref((double)x[i]);
        if (isnan(r)) {
            if (!isnan(y[i])) a->bad++;
            continue;
        }
        if (isinf((float)r)) {
            if (y[i] != (float)r) a->bad++;
            continue;
        }
        if (fabsf(x[i]) <= a->ulp_limit) {
            double u = fabs((double)y[i] - r) / t_ulp_at(r);
            if (!(u <= a->worst)) {
                a->worst = u;
                a->worst_x = x[i];
            }
        } else if (!(fabs((double)y[i] - r) <= a->abs_tol)) {
            a->bad++;
        }
    }
}

#endif
