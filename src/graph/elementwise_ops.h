/*
 * elementwise_ops.h -- the per-element definitions of every UNARY and BINARY op, shared by the
 * unfused kernels (unary.c, binary.c), the fused-program interpreter (fused.c) and the C code
 * the JIT generates for fused programs (fused_gen.c), so all of them compute the same bits.
 *
 * Per element, for each value class C (values.h): F (float: float16, bfloat16, float32),
 * D (double), I (int64_t), U (uint64_t), with CT its C type:
 *   CT  lx_ew_unary1_C(op, v)             ops whose output has the input's dtype
 *   int lx_ew_unary_pred1_C(op, v)        logical_not, isnan, isinf, isfinite: 0 or 1
 *   CT  lx_ew_binary1_C(op, u, v)         arithmetic
 *   int lx_ew_binary_pred1_C(op, u, v)    comparisons and logical and/or: 0 or 1
 * Each is a switch over op and always inlined, so a call with a constant op folds to that
 * op's expression. These are the only place the expressions are written.
 *
 * Over n values (y may be an operand, same positions), for the kernels: the switch on op is
 * outside and each case is a loop over the per-element function with its op constant, so every
 * loop is the plain expression (and vectorizes where the expression does):
 *   lx_ew_unary_<C>(op, x, y, n)          lx_ew_unary_pred_<C>(op, x, y8, n)
 *   lx_ew_binary_<C>(op, a, b, y, n)      lx_ew_binary_pred_<C>(op, a, b, y8, n)
 *   lx_ew_binary_vs_<C>, lx_ew_binary_sv_<C> (and _pred_vs_/_pred_sv_): b, resp. a, a scalar
 * Results are in the class; the caller narrows them to the output dtype. The definitions (NaN
 * handling, integer wrapping, division by zero ...) are documented at the top of unary.c and
 * binary.c.
 *
 * Self-contained (given the include paths include/ and src/): only values.h, ew_ops.h and
 * system headers, and nothing is called but static inline functions and libm, because the
 * JIT compiles this header into code linked against libm alone. Multiply-adds are written with
 * LX_EW_FMA / LX_EW_FMAF (values.h), so the results do not depend on the compiler's
 * contraction setting: the kernels that use this file are compiled with -ffp-contract=off, as
 * is the JIT's code, and give the bits they gave under -ffp-contract=fast.
 * Everything is static inline: compiled into every CPU variant.
 */
#ifndef LX_GRAPH_ELEMENTWISE_OPS_H
#define LX_GRAPH_ELEMENTWISE_OPS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "graph/values.h"
#include "graph/ew_ops.h"

/* Per-element functions are inlined whatever the caller's size, so the switch folds. */
#if defined(__CUDACC__) /* the CUDA module (backend/cuda/): also device functions */
#define LX_EW_INLINE static inline __host__ __device__ __attribute__((always_inline))
#else
#define LX_EW_INLINE static inline __attribute__((always_inline))
#endif

/* ======================================================================================== */
/* Unary                                                                                    */

/* ---- erfinv ---- */

LX_HD static inline double lx_ew_erfinv_core(double x, int steps) {
    if (x != x) return x;
    if (x >= 1.0) return x == 1.0 ? INFINITY : NAN;
    if (x <= -1.0) return x == -1.0 ? -INFINITY : NAN;
    if (x == 0.0) return x;
    double a = fabs(x);
    double t = 1.0 - a; /* exact when a >= 0.5, where it is used */
    double w = -log((1.0 - a) * (1.0 + a));
    double y;
    if (w < 5.0) {
        w -= 2.5;
        double p = 2.81022636e-08;
        p = LX_EW_FMA(p, w, 3.43273939e-07);
        p = LX_EW_FMA(p, w, -3.5233877e-06);
        p = LX_EW_FMA(p, w, -4.39150654e-06);
        p = LX_EW_FMA(p, w, 0.00021858087);
        p = LX_EW_FMA(p, w, -0.00125372503);
        p = LX_EW_FMA(p, w, -0.00417768164);
        p = LX_EW_FMA(p, w, 0.246640727);
        p = LX_EW_FMA(p, w, 1.50140941);
        y = p * a;
    } else if (w < 16.0) {
        w = sqrt(w) - 3.0;
        double p = -0.000200214257;
        p = LX_EW_FMA(p, w, 0.000100950558);
        p = LX_EW_FMA(p, w, 0.00134934322);
        p = LX_EW_FMA(p, w, -0.00367342844);
        p = LX_EW_FMA(p, w, 0.00573950773);
        p = LX_EW_FMA(p, w, -0.0076224613);
        p = LX_EW_FMA(p, w, 0.00943887047);
        p = LX_EW_FMA(p, w, 1.00167406);
        p = LX_EW_FMA(p, w, 2.83297682);
        y = p * a;
    } else { /* only float64 gets this close to 1: erfc(y) ~ e^(-y^2) / (y sqrt(pi)) */
        y = sqrt(-log(t));
        for (int k = 0; k < 3; k++) y = sqrt(-log(t * 1.7724538509055160 * y));
        steps += 1;
    }
    for (int k = 0; k < steps; k++) {
        double r = a > 0.5 ? t - erfc(y) : erf(y) - a; /* erf(y) - a */
        double d = 1.1283791670955126 * exp(-y * y);   /* its derivative */
        y -= r / LX_EW_FMA(y, r, d);                    /* Halley: d + y r */
    }
    return copysign(y, x);
}

/* ---- scalar helpers ---- */

/* A branch-free select through bit masks, so that loops over it vectorize (GCC does not
 * if-convert an ordinary ?: on floats under -ftrapping-math). */
LX_EW_INLINE float lx_ew_select_f(int c, float a, float b) {
    uint32_t m = lx_mask_u32(c);
    return lx_f32_from_bits((lx_bits_from_f32(a) & m) | (lx_bits_from_f32(b) & ~m));
}

/* IEEE min/max with x86's operand rule: the second operand when either is NaN (MINPS(a, b) is
 * a < b ? a : b). With a constant first, NaN in b passes through. Scalar forms for the
 * per-element code; the vector forms below are single instructions with the same results. */
LX_EW_INLINE float lx_ew_minps_f(float a, float b) { return lx_ew_select_f(a < b, a, b); }
LX_EW_INLINE float lx_ew_maxps_f(float a, float b) { return lx_ew_select_f(a > b, a, b); }

/* erf in float: one rational function, branch-free so that it vectorizes (libm's erff is a
 * scalar call of ~20 ns; this is ~0.3 ns an element with AVX2):
 *   erf(x) = x P(s) / Q(s),  s = min(x^2, 16),  P, Q of degree 5,
 * then clamped to [-1, 1]. The fit (on [0, 3.92]: weighted least squares iterated towards
 * minimax on 3000 Chebyshev nodes, float64) has relative error 1.9e-8 (0.3 ulp); float
 * evaluation adds the rest. Checked against float64 erf over every float of [2^-10, 5] and a
 * sample below (tests/test_erf_exhaustive.c; the function is odd and exactly +-1 from
 * |x| = 4): at most 5.9 ulp with FMA (worst near erf = 1, where the rounding of P, Q and the
 * quotient add up), 7.0 without; relative error <= 4e-7 everywhere, including near zero
 * (PyTorch's and MLX's vectorised erf, Abramowitz-Stegun 7.1.26, are within 1.5e-7 absolute
 * but lose relative accuracy near zero). The Horner steps are FMA where the variant has it,
 * whatever the contraction setting. erf(+-Inf) = +-1, erf(-0) = -0, NaN propagates: clamping
 * s = x^2 (not x) needs one min instead of two; beyond |x| = 4 the quotient x P(16) / Q(16)
 * ~ x / 4 exceeds 1 and the final clamp gives +-1 (Inf too); NaN passes every min and max.
 *
 * Where the variant has FMA, the same fit is scaled so that Q is monic: its first Horner step
 * is then an addition, which runs on the adder pipes instead of taking one of the two FMA
 * pipes (x86-64-v3 on Zen 3: GELU's erf is bound by those pipes; 3-5% faster). The scaled
 * coefficients round differently: 5.83 ulp at most over [2^-10, 5], 3.1 ulp below 2^-10
 * (checked over every float). Without FMA the monic form measures 7.2 ulp, so those variants
 * keep Q(0) = 1 (6.95 ulp).
 *
 * The body is written once, over a value type V and its operations, and instantiated for a
 * float (the per-element function) and for the variant's vector (lx_ew_erf_n_f). The vector
 * form exists because the clamps are one MINPS/MAXPS each there, where GCC makes a compare and
 * a blend of the per-element selects, on the same two pipes as the FMAs: the vector form is
 * ~25% faster, with the same bits. erf in double is libm's. */
#if defined(__FMA__) || defined(__CUDA_ARCH__)
#define LX_EW_ERF_P_ 0.053820080851450132f, 7.4788034839670603f, 98.854306468683774f, \
                     1384.7736305369622f, 4998.5753715124238f, 29622.651317620144f
#define LX_EW_ERF_Q_(ADD, FMA, K, s) FMA(FMA(FMA(FMA(ADD(s, K(30.518812743213246f)), s,     \
                                     K(392.97348548649677f)), s, K(2995.6165728709607f)), s,  \
                                     K(13180.653779166838f)), s, K(26252.391686462379f))
#else
#define LX_EW_ERF_P_ 2.0501020057232971e-06f, 0.00028488084336421315f, 0.003765535256723301f, \
                     0.052748475151353579f, 0.19040457079916451f, 1.1283791462282544f
#define LX_EW_ERF_Q_(ADD, FMA, K, s) FMA(FMA(FMA(FMA(FMA(K(3.8091767483252656e-05f), s,      \
                                     K(0.0011625155188794071f)), s, K(0.014969054636234998f)), \
                                     s, K(0.11410832996277882f)), s, K(0.50207439903327855f)), \
                                     s, K(1.0f))
#endif
#define LX_EW_ERF_HORNER5_(FMA, K, s, c5, c4, c3, c2, c1, c0)                             \
    FMA(FMA(FMA(FMA(FMA(K(c5), s, K(c4)), s, K(c3)), s, K(c2)), s, K(c1)), s, K(c0))
#define LX_EW_ERF_HORNER5(...) LX_EW_ERF_HORNER5_(__VA_ARGS__)
#define LX_EW_DEF_ERF_F_(NAME, V, K, ADD, MUL, DIV, FMA, MIN, MAX)                        \
    LX_EW_INLINE V NAME(V x) {                                                          \
        V s = MIN(K(16.0f), MUL(x, x));                                                 \
        V p = LX_EW_ERF_HORNER5(FMA, K, s, LX_EW_ERF_P_);                               \
        V q = LX_EW_ERF_Q_(ADD, FMA, K, s);                                             \
        V r = DIV(MUL(x, p), q);                                                        \
        r = MIN(K(1.0f), r);                                                            \
        return MAX(K(-1.0f), r);                                                        \
    }
#define LX_EW_K_(c) (c)
#define LX_EW_ADD_(a, b) ((a) + (b))
#define LX_EW_MUL_(a, b) ((a) * (b))
#define LX_EW_DIV_(a, b) ((a) / (b))
LX_EW_DEF_ERF_F_(lx_ew_erf_f, float, LX_EW_K_, LX_EW_ADD_, LX_EW_MUL_, LX_EW_DIV_, LX_EW_FMAF,
                 lx_ew_minps_f, lx_ew_maxps_f)
#undef LX_EW_K_
#undef LX_EW_ADD_
#undef LX_EW_MUL_
#undef LX_EW_DIV_

/* The variant's float vector, for the ops whose vector form differs from what the compiler
 * makes of the per-element code (only erf so far). LX_EW_VF_N: floats per vector, 0 if none. */
#if defined(__CUDACC__) /* CUDA: no vector form (the per-element function in kernels) */
#define LX_EW_VF_N 0
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LX_EW_VF_N 8
typedef __m256 lx_ew_vf;
#define LX_EW_VF_LOAD(p) _mm256_loadu_ps(p)
#define LX_EW_VF_STORE(p, v) _mm256_storeu_ps(p, v)
LX_EW_DEF_ERF_F_(lx_ew_erf_vf, __m256, _mm256_set1_ps, _mm256_add_ps, _mm256_mul_ps, _mm256_div_ps,
                 _mm256_fmadd_ps, _mm256_min_ps, _mm256_max_ps)
#elif defined(__SSE2__) && !defined(__FMA__)
#include <emmintrin.h>
#define LX_EW_VF_N 4
typedef __m128 lx_ew_vf;
#define LX_EW_VF_LOAD(p) _mm_loadu_ps(p)
#define LX_EW_VF_STORE(p, v) _mm_storeu_ps(p, v)
#define LX_EW_SSE_FMA_(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c) /* LX_EW_FMAF without FMA */
LX_EW_DEF_ERF_F_(lx_ew_erf_vf, __m128, _mm_set1_ps, _mm_add_ps, _mm_mul_ps, _mm_div_ps, LX_EW_SSE_FMA_,
                 _mm_min_ps, _mm_max_ps)
#undef LX_EW_SSE_FMA_
#else
#define LX_EW_VF_N 0
#endif
#undef LX_EW_DEF_ERF_F_
#undef LX_EW_ERF_P_
#undef LX_EW_ERF_Q_
#undef LX_EW_ERF_HORNER5_
#undef LX_EW_ERF_HORNER5

/* y[i] = erf(x[i]) for n floats (y may be x): vectors, then the per-element function. */
static inline void lx_ew_erf_n_f(const float *x, float *y, int64_t n) {
    int64_t nv = 0;
#if LX_EW_VF_N
    nv = n - n % LX_EW_VF_N;
    for (int64_t i = 0; i < nv; i += LX_EW_VF_N)
        LX_EW_VF_STORE(y + i, lx_ew_erf_vf(LX_EW_VF_LOAD(x + i)));
#endif
    for (int64_t i = nv; i < n; i++) y[i] = lx_ew_erf_f(x[i]);
}
LX_EW_INLINE double lx_ew_erf_d(double x) { return erf(x); }

/* exp(x) in float within 2 ulp, written so that loops over it vectorize (libm's expf is a
 * scalar call): Cephes' range reduction and polynomial, 2^n built in the exponent bits as two
 * factors so that results down to the subnormals are right. exp(x > 88.72) = Inf,
 * exp(x < -103.97) = 0, NaN stays NaN. The multiply-adds are LX_EW_FMAF, where the reduction
 * wants them anyway. Also the exp of the softmax and logsumexp kernels (rowconv.h). */
/* The argument reduction of exp and expm1 (Cephes'): x = n ln 2 + r, n = round(x / ln 2)
 * returned (|x| below 2^22 ln 2), r in *r, with ln 2 in two parts so that r is nearly exact. */
LX_EW_INLINE int32_t lx_ew_exp_reduce_f(float x, float *r) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: rounds to an integer in the low bits */
    float t = LX_EW_FMAF(x, 1.44269504088896341f, magic);
    float n = t - magic;
    float rh = LX_EW_FMAF(-n, 0.693359375f, x); /* ln 2 in two parts */
    *r = LX_EW_FMAF(-n, -2.12194440e-4f, rh);
    return (int32_t)(lx_bits_from_f32(t) - 0x4b400000u);
}

LX_EW_INLINE float lx_ew_exp_f(float x) {
    const float hi = 88.72283f, lo = -103.97208f;
    /* every select is a bit mask (see lx_ew_select_f) */
    uint32_t over = lx_mask_u32(x > hi), under = lx_mask_u32(x < lo);
    uint32_t xb = (lx_bits_from_f32(x) & ~(over | under)) | (lx_bits_from_f32(hi) & over) |
                  (lx_bits_from_f32(lo) & under);
    float r;
    int32_t ni = lx_ew_exp_reduce_f(lx_f32_from_bits(xb), &r);
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = LX_EW_FMAF(p, r, 1.3981999507e-3f);
    p = LX_EW_FMAF(p, r, 8.3334519073e-3f);
    p = LX_EW_FMAF(p, r, 4.1665795894e-2f);
    p = LX_EW_FMAF(p, r, 1.6666665459e-1f);
    p = LX_EW_FMAF(p, r, 5.0000001201e-1f);
    p = LX_EW_FMAF(p, z, r) + 1.0f;
    /* 2^ni = 2^h1 * 2^h2 with both halves in the normal range (ni is in [-150, 128]) */
    int32_t h1 = ni / 2, h2 = ni - h1;
    float s1 = lx_f32_from_bits((uint32_t)(h1 + 127) << 23);
    float s2 = lx_f32_from_bits((uint32_t)(h2 + 127) << 23);
    uint32_t rb = lx_bits_from_f32(p * s1 * s2);
    return lx_f32_from_bits(((rb & ~over) | (0x7f800000u & over)) & ~under);
}
LX_EW_INLINE double lx_ew_exp_d(double x) { return exp(x); }

/* expm1(x) in float, branch-free (libm's expm1f is a scalar call of ~7 ns an element): exp's
 * reduction x = n ln 2 + r, |r| <= ln2/2 (r = x when |x| < ln2/2), expm1(r) = r + r^2 Q(r)
 * with Q of degree 5 (a fit of (expm1(r) - r)/r^2, relative error 2.7e-9), then with s = 2^n
 * (p s is exact):
 *   n >= -1:  expm1(x) = p s + (s - 1)      (s - 1 exact; one rounding),
 *   n <= -2:  expm1(x) = (p s + s) - 1      (e^x <= 0.35 rounded first, then the exact 1),
 * and n = 128 as 2^127 times 2. x is clamped to [-18, 88.72283]: expm1 is -1 in float below
 * -17.33, +Inf above 88.72283 (as exp). Measured against float64 over every float of
 * [-20, 89]: at most 1.44 ulp with FMA, 1.49 without. expm1(+-0) = +-0, tiny x give x
 * (subnormals too), expm1(-Inf) = -1, expm1(+Inf) = +Inf, NaN is x itself. */
LX_EW_INLINE float lx_ew_expm1_f(float x) {
    const float hi = 88.72283f;
    float r;
    int32_t ni = lx_ew_exp_reduce_f(lx_ew_minps_f(hi, lx_ew_maxps_f(-18.0f, x)), &r); /* [-26, 128] */
    float q = 0.00019857798179145902f;
    q = LX_EW_FMAF(q, r, 0.0013933604350313544f);
    q = LX_EW_FMAF(q, r, 0.008333360776305199f);
    q = LX_EW_FMAF(q, r, 0.04166646674275398f);
    q = LX_EW_FMAF(q, r, 0.1666666716337204f);
    q = LX_EW_FMAF(q, r, 0.5f);
    float p = LX_EW_FMAF(r * r, q, r);
    int32_t n1 = ni < 127 ? ni : 127;
    float s = lx_f32_from_bits((uint32_t)(n1 + 127) << 23);
    int ge = ni >= -1;
    float b = LX_EW_FMAF(p, s, lx_ew_select_f(ge, s - 1.0f, s));
    float res = lx_ew_select_f(ge, b, b - 1.0f) * lx_ew_select_f(ni > n1, 2.0f, 1.0f);
    res = lx_ew_select_f(x > hi, INFINITY, res);
    res = lx_ew_select_f(x == 0.0f, x, res);
    return lx_ew_select_f(x != x, x, res);
}
LX_EW_INLINE double lx_ew_expm1_d(double x) { return expm1(x); }

/* The reduction and polynomial of log, log2, log10 and log1p: Cephes' reduction u = 2^e (1 + f)
 * with 1 + f in [sqrt(1/2), sqrt(2)) and a degree-8 polynomial P, log(1 + f) = f - f^2/2 +
 * f^3 P(f). Subnormal u are scaled by 2^23 first; u <= 0, Inf and NaN give finite garbage,
 * replaced by lx_ew_log_specials_f. Returns f (exact); *fe = e, *z = f^2, *t = f^3 P(f). */
LX_EW_INLINE float lx_ew_log_reduce_f(float x, float *fe, float *z, float *t) {
    uint32_t tiny = lx_mask_u32(x < 1.17549435e-38f); /* subnormal (or <= 0: replaced) */
    float xs = lx_f32_from_bits((lx_bits_from_f32(x * 8388608.0f) & tiny) |
                                (lx_bits_from_f32(x) & ~tiny));
    uint32_t u = lx_bits_from_f32(xs);
    int32_t e = (int32_t)((u >> 23) & 0xffu) - 126 - (int32_t)(tiny & 23u);
    float m = lx_f32_from_bits((u & 0x007fffffu) | 0x3f000000u); /* [0.5, 1) */
    uint32_t lo = lx_mask_u32(m < 0.707106781186547524f);
    e -= (int32_t)(lo & 1u);
    m = m + lx_f32_from_bits(lx_bits_from_f32(m) & lo) - 1.0f; /* 2m - 1 or m - 1 */
    *fe = (float)e;
    *z = m * m;
    float p = 7.0376836292e-2f;
    p = LX_EW_FMAF(p, m, -1.1514610310e-1f);
    p = LX_EW_FMAF(p, m, 1.1676998740e-1f);
    p = LX_EW_FMAF(p, m, -1.2420140846e-1f);
    p = LX_EW_FMAF(p, m, 1.4249322787e-1f);
    p = LX_EW_FMAF(p, m, -1.6668057665e-1f);
    p = LX_EW_FMAF(p, m, 2.0000714765e-1f);
    p = LX_EW_FMAF(p, m, -2.4999993993e-1f);
    p = LX_EW_FMAF(p, m, 3.3333331174e-1f);
    *t = p * m * *z;
    return m;
}
/* The special values of the logarithms of x: -Inf at +-0, NaN below 0, +Inf at +Inf, NaN
 * stays NaN (the same NaN); r where x is positive and finite. */
LX_EW_INLINE float lx_ew_log_specials_f(float x, float r) {
    r = lx_ew_select_f(x == INFINITY, INFINITY, r);
    r = lx_ew_select_f(x == 0.0f, -INFINITY, r);
    r = lx_ew_select_f(x < 0.0f, NAN, r);
    return lx_ew_select_f(x != x, x, r);
}

/* log(x) in float within 1 ulp, branch-free so that loops over it vectorize (libm's logf is a
 * scalar call): lx_ew_log_reduce_f, then e ln 2 + log(1 + f) with ln 2 in two parts. */
LX_EW_INLINE float lx_ew_log_f(float x) {
    float fe, z, t;
    float m = lx_ew_log_reduce_f(x, &fe, &z, &t);
    float y = LX_EW_FMAF(fe, -2.12194440e-4f, t);
    y = LX_EW_FMAF(-0.5f, z, y);
    float r = LX_EW_FMAF(fe, 0.693359375f, m + y);
    return lx_ew_log_specials_f(x, r);
}
LX_EW_INLINE double lx_ew_log_d(double x) { return log(x); }

/* log2 and log10 in float, branch-free (libm's are scalar calls of ~4 ns an element): the same
 * reduction, then with w = log(1 + f) - f = t - f^2/2 (|w| < f/2) and L = log2(e) or log10(e)
 * split as Lhi + Llo (Lhi the float nearest), log(1 + f) L = f K + (f (Lhi - K) + (w Lhi +
 * f Llo)), K = 1 for log2 and 1/2 for log10: f K is exact and the rounded products are in the
 * smaller terms (Lhi - K is 0.44 resp. -0.066, exact), which matters without FMA. Then
 *   log2(x)  = e + that,
 *   log10(x) = e A + (that + e B), log10(2) = A + B, A of 11 bits so that e A is exact.
 * Measured against float64 over every positive float (subnormals included): log2 at most 1.12
 * ulp with FMA, 1.21 without; log10 1.11 and 1.06. log2 of a power of two is exact. Special
 * values as log's. */
LX_EW_INLINE float lx_ew_log2_f(float x) {
    float fe, z, t;
    float f = lx_ew_log_reduce_f(x, &fe, &z, &t);
    float w = LX_EW_FMAF(-0.5f, z, t);
    float s = LX_EW_FMAF(w, 1.4426950216293335f, f * 1.925963033500011e-08f);
    s = LX_EW_FMAF(f, 0.4426950216293335f, s);
    return lx_ew_log_specials_f(x, fe + (f + s));
}
LX_EW_INLINE double lx_ew_log2_d(double x) { return log2(x); }
LX_EW_INLINE float lx_ew_log10_f(float x) {
    float fe, z, t;
    float f = lx_ew_log_reduce_f(x, &fe, &z, &t);
    float w = LX_EW_FMAF(-0.5f, z, t);
    float s = LX_EW_FMAF(fe, 4.605039066518657e-06f, f * -1.0103049952192578e-08f);
    s = LX_EW_FMAF(w, 0.4342944920063019f, s);
    s = LX_EW_FMAF(f, -0.06570550799369812f, s);
    float r = LX_EW_FMAF(f, 0.5f, s);
    return lx_ew_log_specials_f(x, LX_EW_FMAF(fe, 0.301025390625f, r));
}
LX_EW_INLINE double lx_ew_log10_d(double x) { return log10(x); }

/* log1p(x) in float, branch-free (libm's log1pf is a scalar call of ~7 ns an element): u = 1 + x
 * rounded, d = (1 + x) - u exactly (Fast2Sum, the larger of |x| and 1 first), then
 * log1p(x) = log(u) + log(1 + d/u) = e ln 2 + f + w + d/u with log's reduction of u; d/u is
 * below half an ulp of u, so its own rounding does not matter, and for |x| < 2^-25 (u = 1,
 * d = x) the result is x itself, subnormals too. Measured against float64 over every float of
 * (-1, 2^32] and every 7th beyond: at most 0.85 ulp with FMA, 0.86 without. log1p(+-0) = +-0,
 * log1p(-1) = -Inf, log1p(x < -1) = NaN, log1p(+Inf) = +Inf, NaN is x itself. */
LX_EW_INLINE float lx_ew_log1p_f(float x) {
    float u = 1.0f + x;
    int big = fabsf(x) > 1.0f;
    float d = lx_ew_select_f(big, 1.0f, x) - (u - lx_ew_select_f(big, x, 1.0f));
    float fe, z, t;
    float f = lx_ew_log_reduce_f(u, &fe, &z, &t);
    float y = LX_EW_FMAF(fe, -2.12194440e-4f, t + d / u);
    y = LX_EW_FMAF(-0.5f, z, y);
    float r = lx_ew_log_specials_f(u, LX_EW_FMAF(fe, 0.693359375f, f + y));
    r = lx_ew_select_f(x == 0.0f, x, r);
    return lx_ew_select_f(x != x, x, r);
}
LX_EW_INLINE double lx_ew_log1p_d(double x) { return log1p(x); }

/* erfinv in float, branch-free so that loops over it vectorize (lx_ew_erfinv_core is libm's log,
 * erf, erfc and exp in double per element, ~12 ns; float64 keeps it). Giles' form ("Approximating
 * the erfinv function", 2010), with the polynomials refitted and evaluated in double:
 *   w = -log(1 - a^2), a = |x|;  erfinv(a) = a P(w - 2.5) for w < 5, a Q(sqrt(w) - c) beyond,
 * P and Q of degree 10 (fits of erfinv(a)/a, a = sqrt(1 - e^-w), on w in [0, 5] and
 * sqrt(w) in [sqrt 5, 4]: weighted least squares iterated towards minimax on Chebyshev nodes
 * against mpmath; relative errors 2.3e-9 and 1.3e-9, i.e. ~0.03 ulp). 1 - a^2 = (1 - a)(1 + a)
 * is exact to 1e-16 in double (no cancellation), u is that rounded to float, and
 * w = -(log(u) + (1 - a^2 - u)/u) with log(u) = e ln2 + f - f^2/2 + f^3 R(f) summed in double
 * from log's reduction (f, f^2 exact there; the float term f^3 R(f) is below 0.024): w is good
 * to ~1e-9, so the one rounding to float dominates: measured over every float of (-1, 1)
 * against lx_ew_erfinv_core, at most 0.542 ulp with FMA and without. ~2.7 ns an element
 * (the double work; a float form of the higher terms was no faster). erfinv(+-1) = +-Inf, |x| > 1 (Inf too) gives NaN, NaN is x itself, +-0 gives
 * +-0 and tiny x give x sqrt(pi)/2 rounded once (subnormals too). */
LX_EW_INLINE float lx_ew_erfinv_f(float x) {
    float a = fabsf(x);
    double ad = a;
    double pr = (1.0 - ad) * (1.0 + ad); /* 1 - a^2, one rounding */
    float u = (float)pr;                 /* in [2^-23, 1] for a < 1 */
    float fe, z, t;
    float f = lx_ew_log_reduce_f(u, &fe, &z, &t);
    double fd = f;
    double lu = (double)fe * 0.69314718055994531 + ((fd - 0.5 * fd * fd) + (double)t);
    double w = -(lu + (double)((float)(pr - (double)u) / u));
    double v = w - 2.5;
    double p = 3.3557426698495283e-10;
    p = LX_EW_FMA(p, v, -8.77266606195493e-09);
    p = LX_EW_FMA(p, v, 1.8036761594675916e-08);
    p = LX_EW_FMA(p, v, 4.6589007814138236e-07);
    p = LX_EW_FMA(p, v, -3.434609864427159e-06);
    p = LX_EW_FMA(p, v, -4.961903320537632e-06);
    p = LX_EW_FMA(p, v, 0.00021828262857846218);
    p = LX_EW_FMA(p, v, -0.001252744673976701);
    p = LX_EW_FMA(p, v, -0.004177339404031537);
    p = LX_EW_FMA(p, v, 0.24664028764051804);
    p = LX_EW_FMA(p, v, 1.5014093535138795);
    double s = sqrt(w) - 3.1150558434674855;
    double q = -2.608351955206315e-05;
    q = LX_EW_FMA(q, s, 0.0001286951262100544);
    q = LX_EW_FMA(q, s, -0.0001347122176904303);
    q = LX_EW_FMA(q, s, -0.00030780725748180693);
    q = LX_EW_FMA(q, s, 0.001298400108250497);
    q = LX_EW_FMA(q, s, -0.0026005546157681914);
    q = LX_EW_FMA(q, s, 0.003918397400976215);
    q = LX_EW_FMA(q, s, -0.005453800996770286);
    q = LX_EW_FMA(q, s, 0.007208553566674325);
    q = LX_EW_FMA(q, s, 1.0035769097356089);
    q = LX_EW_FMA(q, s, 2.948339713398707);
    float y = lx_ew_select_f(u > 6.737947e-3f, (float)(ad * p), (float)(ad * q)); /* w < 5 */
    y = lx_ew_select_f(a == 1.0f, INFINITY, y);
    y = lx_ew_select_f(a > 1.0f, NAN, y);
    y = lx_f32_from_bits(lx_bits_from_f32(y) | (lx_bits_from_f32(x) & 0x80000000u));
    return lx_ew_select_f(x != x, x, y);
}
LX_EW_INLINE double lx_ew_erfinv_d(double x) { return lx_ew_erfinv_core(x, 3); }

/* sin and cos in float, vectorizable (libm's sinf/cosf are scalar calls of ~4.5 ns an element):
 * the reduction and the polynomials in double, where they are simple and exact enough to give
 * results within ~0.5 ulp once rounded to float. For |x| <= 2^21:
 *   j = rint(x 2/pi), r = x - j pi/2 with pi/2 in three parts (the first of 32 bits, so that
 *   j P1 and x - j P1 are exact; the next two bring the error of r to ~2^-53 |r| + j 2^-110,
 *   negligible even where x is closest to a multiple of pi/2);
 *   sin(r) = r + r^3 P(r^2), cos(r) = 1 - r^2/2 + r^4 Q(r^2), P and Q of degree 3 (fits on
 *   [0, (pi/4)^2], relative errors 1.7e-10 and 5.7e-11, well below float's 6e-8);
 *   each rounded to float, then chosen and signed by the quadrant j (mod 4), plus one for cos.
 * Beyond 2^21 (and for +-Inf) libm's sinf/cosf: the per-element function branches there, the
 * loop lx_ew_trig_n_f computes blocks branch-free and calls libm only for the elements of a
 * block beyond 2^21, with the same bits. Measured against float64 over every 3rd float of
 * [0, 2^21] and every 17th of [-2^21, 0]: at most 0.5 ulp plus ~1e-3 (sin and cos), with FMA
 * and without: correctly rounded but for a few near-ties. sin(+-0) = +-0,
 * tiny x give sin x = x (subnormals too), NaN is x itself. */
#define LX_EW_TRIG_MAX_ 2097152.0f
LX_EW_INLINE float lx_ew_trig_core_f(float x, int is_cos) {
    double xd = x;
    double jd = (xd * 0.6366197723675814 + 6755399441055744.0) - 6755399441055744.0;
    double r = xd - jd * 1.5707963267341256;
    r = r - jd * 6.077100506506192e-11;
    r = r - jd * 3.5215598651832e-27;
    double s = r * r;
    double p = LX_EW_FMA(LX_EW_FMA(LX_EW_FMA(2.7249410388199575e-06, s, -0.0001984008196162239), s,
                                   0.008333331863647358), s, -0.16666666663817228);
    double q = LX_EW_FMA(LX_EW_FMA(LX_EW_FMA(-2.730068471013523e-07, s, 2.480059783609731e-05), s,
                                   -0.0013888887666132666), s, 0.041666666664301015);
    float sr = (float)LX_EW_FMA(r * s, p, r);
    float cr = (float)LX_EW_FMA(s * s, q, LX_EW_FMA(-0.5, s, 1.0));
    uint32_t k = (uint32_t)(int32_t)jd + (uint32_t)is_cos;
    float v = lx_ew_select_f(k & 1u, cr, sr);
    v = lx_f32_from_bits(lx_bits_from_f32(v) ^ ((k & 2u) << 30));
    if (!is_cos) v = lx_ew_select_f(x == 0.0f, x, v);
    return lx_ew_select_f(x != x, x, v);
}
LX_EW_INLINE float lx_ew_sin_f(float x) {
    if (fabsf(x) > LX_EW_TRIG_MAX_) return sinf(x);
    return lx_ew_trig_core_f(x, 0);
}
LX_EW_INLINE float lx_ew_cos_f(float x) {
    if (fabsf(x) > LX_EW_TRIG_MAX_) return cosf(x);
    return lx_ew_trig_core_f(x, 1);
}
LX_EW_INLINE double lx_ew_sin_d(double x) { return sin(x); }
LX_EW_INLINE double lx_ew_cos_d(double x) { return cos(x); }
/* y[i] = sin(x[i]) or cos(x[i]) for n floats (y may be x): blocks through the branch-free core,
 * then libm for the elements beyond 2^21, if any, before the block is stored. */
static inline void lx_ew_trig_n_f(const float *x, float *y, int64_t n, int is_cos) {
    float tmp[64];
    for (int64_t i0 = 0; i0 < n; i0 += 64) {
        int m = n - i0 < 64 ? (int)(n - i0) : 64, big = 0;
        for (int i = 0; i < m; i++) {
            tmp[i] = lx_ew_trig_core_f(x[i0 + i], is_cos);
            big |= fabsf(x[i0 + i]) > LX_EW_TRIG_MAX_;
        }
        if (big)
            for (int i = 0; i < m; i++)
                if (fabsf(x[i0 + i]) > LX_EW_TRIG_MAX_) tmp[i] = is_cos ? cosf(x[i0 + i]) : sinf(x[i0 + i]);
        for (int i = 0; i < m; i++) y[i0 + i] = tmp[i];
    }
}
#undef LX_EW_TRIG_MAX_

/* sigmoid = 1/(1+e) for x >= 0 and e/(1+e) below, e = exp(-|x|) <= 1: neither overflows nor
 * loses small results, and without a branch the loops vectorize. sigmoid(NaN) is x itself, so
 * that x * sigmoid(x) (silu and the like) multiplies two equal NaNs: which operand's NaN a
 * product returns depends on the order the compiler puts them in. */
LX_EW_INLINE float lx_ew_sigmoid_f(float x) {
    float e = lx_ew_exp_f(-fabsf(x));
    return lx_ew_select_f(x != x, x, lx_ew_select_f(x >= 0.0f, 1.0f, e) / (1.0f + e));
}
LX_EW_INLINE double lx_ew_sigmoid_d(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* tanh in float, branch-free so that loops over it vectorize (libm's tanhf is a scalar call of
 * ~10 ns an element; this is ~0.5 ns with AVX2). With a = |x| and the sign put back at the end:
 *   a < 0.625:  a + a s P(s), s = a^2, P of degree 4 (a fit of (tanh(a) - a) / a^3 in s on
 *               [0, 0.39], relative error 1.3e-7, scaled by s P(s) <= 0.13 in the result);
 *   else:       1 - 2 / (exp(2a) + 1) with lx_ew_exp_f, a clamped to 9.1 (tanh is 1 in float
 *               from 9.01; the clamp keeps exp finite).
 * Both are computed and one is selected. Measured against float64 tanh over every float of
 * [0, 10] (it is odd): at most 1.33 ulp with FMA and without (tests/test_unary_accuracy.c).
 * tanh(+-0) = +-0, tiny x give x (subnormals too), tanh(+-Inf) = +-1, NaN is x itself. */
#define LX_EW_TANH_P_(FMA, s)                                                           \
    FMA(FMA(FMA(FMA(-0.006096937227994204f, s, 0.02099735476076603f), s,                \
                -0.05385095253586769f), s, 0.13332770764827728f), s, -0.333333283662796f)
LX_EW_INLINE float lx_ew_tanh_f(float x) {
    uint32_t sign = lx_bits_from_f32(x) & 0x80000000u;
    float a = fabsf(x);
    float s = a * a;
    float small = LX_EW_FMAF(s * LX_EW_TANH_P_(LX_EW_FMAF, s), a, a);
    float e = lx_ew_exp_f(2.0f * lx_ew_minps_f(9.1f, a));
    float large = 1.0f - 2.0f / (e + 1.0f);
    float r = lx_ew_select_f(a < 0.625f, small, large);
    r = lx_f32_from_bits(lx_bits_from_f32(r) | sign);
    return lx_ew_select_f(x != x, x, r);
}
#undef LX_EW_TANH_P_
LX_EW_INLINE double lx_ew_tanh_d(double x) { return tanh(x); }
LX_EW_INLINE float lx_ew_silu_f(float x) { /* silu(-Inf) = -0, its limit */
    return lx_ew_select_f(x == -INFINITY, -0.0f, x * lx_ew_sigmoid_f(x));
}
LX_EW_INLINE double lx_ew_silu_d(double x) {
    return isinf(x) && x < 0 ? -0.0 : x * lx_ew_sigmoid_d(x);
}
/* gelu(x) = x/2 erfc(-x/sqrt2) in float, branch-free so that loops over it vectorize (libm's
 * erfcf is a scalar call of ~10 ns an element). With a = |x| clamped to [T, 14.5], T = 1/sqrt2,
 * two forms, both computed, one selected:
 *   |x| <= T:  (x/2) (1 + erf(x/sqrt2)) with lx_ew_erf_f (1 + erf is in [0.48, 1.52]);
 *   x < -T:    -g, g = gelu(-a) = H(a) exp(-a^2/2), where 1 + erf would cancel;
 *   x > T:     x - g (gelu(x) = x + gelu(-x); g <= 0.24 x, and erf's error near 1 is avoided).
 * H(a) = (a/2) erfc(a/sqrt2) exp(a^2/2) rises from 0.22 to its limit c = 1/sqrt(2 pi); it is
 * computed as c - D(a), D a rational of degree 4/6 in a (fitted on [T, 14.6] against c rounded
 * to float: relative error 1.1e-9), so that the rounding errors of D's Horner steps (several
 * ulp of D) shrink by D/H, 0.83 at T and ~1/a^2 beyond. The exponent is split exactly,
 * a^2 = hi + lo (FMA, or Dekker's product without it), and exp(-(hi + lo)/2) =
 * exp(-hi/2) (1 - lo/2): rounding a^2 alone would cost up to ~100 ulp at a = 14. From
 * a = 14.42, where gelu(-a) is below half the smallest subnormal, lx_ew_exp_f gives 0, so the
 * clamp at 14.5 is exact.
 * Measured against float64 over every float of [-15, 15] (subnormal results in units of their
 * spacing): at most 3.32 ulp with FMA (x = -1.84), 3.71 without (x = -0.67, erf's form). gelu(+-0) = +-0, gelu(-Inf) = -0
 * (as every x below -14.42), gelu(+Inf) = +Inf, NaN is x itself. */
#define LX_EW_GELU_T_ 0.70710678f
#define LX_EW_GELU_P_(FMA, a)                                                           \
    FMA(FMA(FMA(FMA(0.0013931187568232417f, a, 0.016231851652264595f), a,               \
                0.08787305653095245f), a, 0.2602311074733734f), a, 0.39894625544548035f)
#define LX_EW_GELU_Q_(FMA, a)                                                           \
    FMA(FMA(FMA(FMA(FMA(FMA(0.003491666866466403f, a, 0.04070117324590683f), a,         \
                        0.23045888543128967f), a, 0.7779619097709656f), a,              \
                1.6084848642349243f), a, 1.9056830406188965f), a, 1.0f)
LX_EW_INLINE float lx_ew_gelu_f(float x) {
    float near = 0.5f * x * (1.0f + lx_ew_erf_f(x * 0.70710678118654752f));
    float a = lx_ew_minps_f(14.5f, lx_ew_maxps_f(LX_EW_GELU_T_, fabsf(x)));
    float hi = a * a;
#if defined(__CUDA_ARCH__)
    float lo = __fmaf_rn(a, a, -hi);
#elif defined(__FMA__)
    float lo = __builtin_fmaf(a, a, -hi);
#else
    float c = a * 4097.0f; /* Dekker: a = ah + al, 12 bits each, products exact */
    float ah = c - (c - a), al = a - ah;
    float lo = ((ah * ah - hi) + 2.0f * ah * al) + al * al;
#endif
    float h = 0.3989422917366028f - LX_EW_GELU_P_(LX_EW_FMAF, a) / LX_EW_GELU_Q_(LX_EW_FMAF, a);
    h = LX_EW_FMAF(h, -0.5f * lo, h);
    float g = h * lx_ew_exp_f(-0.5f * hi);
    float r = lx_ew_select_f(x < 0.0f, -g, x - g);
    r = lx_ew_select_f(fabsf(x) <= LX_EW_GELU_T_, near, r);
    return lx_ew_select_f(x != x, x, r);
}
#undef LX_EW_GELU_T_
#undef LX_EW_GELU_P_
#undef LX_EW_GELU_Q_
LX_EW_INLINE double lx_ew_gelu_d(double x) {
    return isinf(x) && x < 0 ? -0.0 : 0.5 * x * erfc(-x * 0.70710678118654752440);
}
/* x + 0.044715 x^3 is the multiply-add (0.044715 x x) x + x, fused where the variant has FMA. */
LX_EW_INLINE float lx_ew_gelu_approx_f(float x) {
    if (isinf(x)) return x < 0 ? -0.0f : x;
    float u = 0.79788456080286536f * LX_EW_FMAF(0.044715f * x * x, x, x);
    return x * lx_ew_sigmoid_f(2.0f * u);
}
LX_EW_INLINE double lx_ew_gelu_approx_d(double x) {
    if (isinf(x)) return x < 0 ? -0.0 : x;
    double u = 0.79788456080286535588 * LX_EW_FMA(0.044715 * x * x, x, x);
    return x * lx_ew_sigmoid_d(2.0 * u);
}

static inline bool lx_ew_unary_is_expensive(int op) {
    switch (op) {
    case LX_UNARY_NEG: case LX_UNARY_ABS: case LX_UNARY_SIGN: case LX_UNARY_SQUARE:
    case LX_UNARY_RECIPROCAL: case LX_UNARY_RELU: case LX_UNARY_FLOOR: case LX_UNARY_CEIL:
    case LX_UNARY_ROUND: case LX_UNARY_LOGICAL_NOT: case LX_UNARY_ISNAN: case LX_UNARY_ISINF:
    case LX_UNARY_ISFINITE: case LX_UNARY_SQRT: case LX_UNARY_RSQRT:
        return false;
    default:
        return true;
    }
}

/* ---- per element: float classes ---- */

/* SUF: the libm suffix (f for float, empty for double); SF: the helpers' suffix. */
#define LX_EW_DEF_UNARY1_FLOAT_(C, CT, SUF, SF)                                         \
    LX_EW_INLINE CT lx_ew_unary1_##C(int op, CT v) {                                    \
        switch (op) {                                                                   \
        case LX_UNARY_NEG: return -v;                                                   \
        case LX_UNARY_ABS: return fabs##SUF(v);                                         \
        case LX_UNARY_SIGN: return v > 0 ? (CT)1 : (v < 0 ? (CT)-1 : v);                \
        case LX_UNARY_SQUARE: return v * v;                                             \
        case LX_UNARY_SQRT: return sqrt##SUF(v);                                        \
        case LX_UNARY_RSQRT: return (CT)1 / sqrt##SUF(v);                               \
        case LX_UNARY_RECIPROCAL: return (CT)1 / v;                                     \
        case LX_UNARY_EXP: return lx_ew_exp_##SF(v);                                    \
        case LX_UNARY_EXPM1: return lx_ew_expm1_##SF(v);                                \
        case LX_UNARY_LOG: return lx_ew_log_##SF(v);                                    \
        case LX_UNARY_LOG1P: return lx_ew_log1p_##SF(v);                                \
        case LX_UNARY_LOG2: return lx_ew_log2_##SF(v);                                  \
        case LX_UNARY_LOG10: return lx_ew_log10_##SF(v);                                \
        case LX_UNARY_SIN: return lx_ew_sin_##SF(v);                                    \
        case LX_UNARY_COS: return lx_ew_cos_##SF(v);                                    \
        case LX_UNARY_TAN: return tan##SUF(v);                                          \
        case LX_UNARY_TANH: return lx_ew_tanh_##SF(v);                                  \
        case LX_UNARY_ERF: return lx_ew_erf_##SF(v);                                    \
        case LX_UNARY_ERFINV: return lx_ew_erfinv_##SF(v);                              \
        case LX_UNARY_SIGMOID: return lx_ew_sigmoid_##SF(v);                            \
        case LX_UNARY_SILU: return lx_ew_silu_##SF(v);                                  \
        case LX_UNARY_RELU: return v != v ? v : (v > 0 ? v : (CT)0);                    \
        case LX_UNARY_GELU: return lx_ew_gelu_##SF(v);                                  \
        case LX_UNARY_GELU_APPROX: return lx_ew_gelu_approx_##SF(v);                    \
        case LX_UNARY_FLOOR: return floor##SUF(v);                                      \
        case LX_UNARY_CEIL: return ceil##SUF(v);                                        \
        case LX_UNARY_ROUND: return rint##SUF(v); /* half to even */                    \
        default: return v;                        /* predicates never come here */      \
        }                                                                               \
    }                                                                                   \
    LX_EW_INLINE int lx_ew_unary_pred1_##C(int op, CT v) {                              \
        switch (op) {                                                                   \
        case LX_UNARY_LOGICAL_NOT: return v == 0;                                       \
        case LX_UNARY_ISNAN: return v != v;                                             \
        case LX_UNARY_ISINF: return isinf(v) != 0;                                      \
        default: return isfinite(v) != 0; /* ISFINITE */                                \
        }                                                                               \
    }
LX_EW_DEF_UNARY1_FLOAT_(F, float, f, f)
LX_EW_DEF_UNARY1_FLOAT_(D, double, , d)
#undef LX_EW_DEF_UNARY1_FLOAT_

/* ---- per element: integer classes ----
 * Float-only ops on integers go through double and are clamped back into the class's range. */

LX_EW_INLINE int64_t lx_ew_unary1_I(int op, int64_t v) {
    switch (op) {
    case LX_UNARY_NEG: return (int64_t)(0u - (uint64_t)v);
    case LX_UNARY_ABS: return v < 0 ? (int64_t)(0u - (uint64_t)v) : v;
    case LX_UNARY_SIGN: return (v > 0) - (v < 0);
    case LX_UNARY_SQUARE: return (int64_t)((uint64_t)v * (uint64_t)v);
    case LX_UNARY_RELU: return v > 0 ? v : 0;
    case LX_UNARY_FLOOR: case LX_UNARY_CEIL: case LX_UNARY_ROUND: return v;
    default: return lx_cvt_i64_D(lx_ew_unary1_D(op, (double)v));
    }
}

LX_EW_INLINE uint64_t lx_ew_unary1_U(int op, uint64_t v) {
    switch (op) {
    case LX_UNARY_NEG: return 0u - v;
    case LX_UNARY_SIGN: return v != 0;
    case LX_UNARY_SQUARE: return v * v;
    case LX_UNARY_ABS: case LX_UNARY_RELU: case LX_UNARY_FLOOR: case LX_UNARY_CEIL:
    case LX_UNARY_ROUND: return v;
    default: return lx_cvt_u64_D(lx_ew_unary1_D(op, (double)v));
    }
}

#define LX_EW_DEF_UNARY_PRED1_INT_(C, CT)                                               \
    LX_EW_INLINE int lx_ew_unary_pred1_##C(int op, CT v) {                              \
        switch (op) {                                                                   \
        case LX_UNARY_LOGICAL_NOT: return v == 0;                                       \
        case LX_UNARY_ISFINITE: return 1; /* integers are finite */                     \
        default: return 0;                /* isnan, isinf: never for integers */        \
        }                                                                               \
    }
LX_EW_DEF_UNARY_PRED1_INT_(I, int64_t)
LX_EW_DEF_UNARY_PRED1_INT_(U, uint64_t)
#undef LX_EW_DEF_UNARY_PRED1_INT_

/* ---- loops: y[i] = op(x[i]), y may be x ---- */

/* One case of a loop function: the loop with op constant. FN is a per-element function. */
#define LX_EW_UNARY_CASE_(FN, name)                                                     \
    case LX_UNARY_##name:                                                               \
        for (int64_t i = 0; i < n; i++) y[i] = FN(LX_UNARY_##name, x[i]);               \
        break;
/* The X callbacks of each class (an X-macro passes only the op name). */
#define LX_EW_UCASE_F_(name) LX_EW_UNARY_CASE_(lx_ew_unary1_F, name)
#define LX_EW_UCASE_D_(name) LX_EW_UNARY_CASE_(lx_ew_unary1_D, name)
#define LX_EW_UCASE_I_(name) LX_EW_UNARY_CASE_(lx_ew_unary1_I, name)
#define LX_EW_UCASE_U_(name) LX_EW_UNARY_CASE_(lx_ew_unary1_U, name)
#define LX_EW_UPCASE_F_(name) LX_EW_UNARY_CASE_(lx_ew_unary_pred1_F, name)
#define LX_EW_UPCASE_D_(name) LX_EW_UNARY_CASE_(lx_ew_unary_pred1_D, name)
#define LX_EW_UPCASE_I_(name) LX_EW_UNARY_CASE_(lx_ew_unary_pred1_I, name)
#define LX_EW_UPCASE_U_(name) LX_EW_UNARY_CASE_(lx_ew_unary_pred1_U, name)

#define LX_EW_DEF_UNARY_LOOPS_(C, CT)                                                   \
    static inline void lx_ew_unary_##C(int op, const CT *x, CT *y, int64_t n) {         \
        LX_EW_UNARY_VECTOR_##C##_(op, x, y, n)                                          \
        switch (op) {                                                                   \
            LX_UNARY_VALUE_OPS(LX_EW_UCASE_##C##_)                                      \
        default: break; /* predicates never come here */                                \
        }                                                                               \
    }                                                                                   \
    static inline void lx_ew_unary_pred_##C(int op, const CT *x, uint8_t *y, int64_t n) { \
        switch (op) {                                                                   \
            LX_UNARY_PRED_OPS(LX_EW_UPCASE_##C##_)                                      \
        default: break; /* value ops never come here */                                 \
        }                                                                               \
    }
/* Ops with a vector form (above) take it; the others' loops are the per-element function. */
#define LX_EW_UNARY_VECTOR_F_(op, x, y, n)                                              \
    if (op == LX_UNARY_ERF) {                                                           \
        lx_ew_erf_n_f(x, y, n);                                                         \
        return;                                                                         \
    }                                                                                   \
    if (op == LX_UNARY_SIN || op == LX_UNARY_COS) {                                     \
        lx_ew_trig_n_f(x, y, n, op == LX_UNARY_COS);                                    \
        return;                                                                         \
    }
#define LX_EW_UNARY_VECTOR_D_(op, x, y, n)
#define LX_EW_UNARY_VECTOR_I_(op, x, y, n)
#define LX_EW_UNARY_VECTOR_U_(op, x, y, n)
LX_EW_DEF_UNARY_LOOPS_(F, float)
LX_EW_DEF_UNARY_LOOPS_(D, double)
LX_EW_DEF_UNARY_LOOPS_(I, int64_t)
LX_EW_DEF_UNARY_LOOPS_(U, uint64_t)
#undef LX_EW_DEF_UNARY_LOOPS_
#undef LX_EW_UNARY_VECTOR_F_
#undef LX_EW_UNARY_VECTOR_D_
#undef LX_EW_UNARY_VECTOR_I_
#undef LX_EW_UNARY_VECTOR_U_
#undef LX_EW_UCASE_F_
#undef LX_EW_UCASE_D_
#undef LX_EW_UCASE_I_
#undef LX_EW_UCASE_U_
#undef LX_EW_UPCASE_F_
#undef LX_EW_UPCASE_D_
#undef LX_EW_UPCASE_I_
#undef LX_EW_UPCASE_U_
#undef LX_EW_UNARY_CASE_

/* ======================================================================================== */
/* Binary                                                                                   */

/* Ops of many cycles an element in class cls (libm calls; integer division, which no x86
 * vector unit has). */
static inline bool lx_ew_binary_is_expensive(int op, int cls) {
    if (op == LX_BINARY_POW || op == LX_BINARY_ARCTAN2 || op == LX_BINARY_REMAINDER) return true;
    return (cls == LX_CLASS_I || cls == LX_CLASS_U) &&
           (op == LX_BINARY_DIV || op == LX_BINARY_FLOOR_DIVIDE);
}

/* ---- scalar helpers ---- */

LX_EW_INLINE float lx_ew_fmax_nan_f(float u, float v) { return u != u ? u : (u > v ? u : v); }
LX_EW_INLINE float lx_ew_fmin_nan_f(float u, float v) { return u != u ? u : (u < v ? u : v); }
LX_EW_INLINE double lx_ew_fmax_nan_d(double u, double v) { return u != u ? u : (u > v ? u : v); }
LX_EW_INLINE double lx_ew_fmin_nan_d(double u, double v) { return u != u ? u : (u < v ? u : v); }
LX_EW_INLINE float lx_ew_rem_f(float u, float v) {
    float r = fmodf(u, v);
    if (r != 0 && ((r < 0) != (v < 0))) r += v;
    return r;
}
LX_EW_INLINE double lx_ew_rem_d(double u, double v) {
    double r = fmod(u, v);
    if (r != 0 && ((r < 0) != (v < 0))) r += v;
    return r;
}

LX_EW_INLINE int64_t lx_ew_neg_i(int64_t u) { return (int64_t)(0u - (uint64_t)u); }
LX_EW_INLINE int64_t lx_ew_div_i(int64_t u, int64_t v) {
    return v == 0 ? 0 : (v == -1 ? lx_ew_neg_i(u) : u / v);
}
LX_EW_INLINE int64_t lx_ew_floordiv_i(int64_t u, int64_t v) {
    if (v == 0) return 0;
    if (v == -1) return lx_ew_neg_i(u);
    int64_t q = u / v;
    return (u % v != 0 && ((u < 0) != (v < 0))) ? q - 1 : q;
}
LX_EW_INLINE int64_t lx_ew_rem_i(int64_t u, int64_t v) {
    if (v == 0 || v == -1) return 0;
    int64_t r = u % v;
    return (r != 0 && ((r < 0) != (v < 0))) ? r + v : r;
}
LX_EW_INLINE uint64_t lx_ew_pow_u(uint64_t base, uint64_t e) {
    uint64_t r = 1;
    while (e) {
        if (e & 1u) r *= base;
        e >>= 1;
        base *= base;
    }
    return r;
}
LX_EW_INLINE int64_t lx_ew_pow_i(int64_t base, int64_t e) {
    if (e < 0) return base == 1 ? 1 : (base == -1 ? (e % 2 != 0 ? -1 : 1) : 0);
    return (int64_t)lx_ew_pow_u((uint64_t)base, (uint64_t)e);
}

/* ---- per element ---- */

/* SUF: the libm suffix (f for float, empty for double); SF: the helpers' suffix. */
#define LX_EW_DEF_BINARY1_FLOAT_(C, CT, SUF, SF)                                        \
    LX_EW_INLINE CT lx_ew_binary1_##C(int op, CT u, CT v) {                             \
        switch (op) {                                                                   \
        case LX_BINARY_ADD: return u + v;                                               \
        case LX_BINARY_SUB: return u - v;                                               \
        case LX_BINARY_MUL: return u * v;                                               \
        case LX_BINARY_DIV: return u / v;                                               \
        case LX_BINARY_POW: return pow##SUF(u, v);                                      \
        case LX_BINARY_MAXIMUM: return lx_ew_fmax_nan_##SF(u, v);                       \
        case LX_BINARY_MINIMUM: return lx_ew_fmin_nan_##SF(u, v);                       \
        case LX_BINARY_FLOOR_DIVIDE: return floor##SUF(u / v);                          \
        case LX_BINARY_REMAINDER: return lx_ew_rem_##SF(u, v);                          \
        case LX_BINARY_ARCTAN2: return atan2##SUF(u, v);                                \
        default: return 0; /* predicates never come here */                             \
        }                                                                               \
    }
LX_EW_DEF_BINARY1_FLOAT_(F, float, f, f)
LX_EW_DEF_BINARY1_FLOAT_(D, double, , d)
#undef LX_EW_DEF_BINARY1_FLOAT_

LX_EW_INLINE int64_t lx_ew_binary1_I(int op, int64_t u, int64_t v) {
    switch (op) {
    case LX_BINARY_ADD: return (int64_t)((uint64_t)u + (uint64_t)v);
    case LX_BINARY_SUB: return (int64_t)((uint64_t)u - (uint64_t)v);
    case LX_BINARY_MUL: return (int64_t)((uint64_t)u * (uint64_t)v);
    case LX_BINARY_DIV: return lx_ew_div_i(u, v);
    case LX_BINARY_POW: return lx_ew_pow_i(u, v);
    case LX_BINARY_MAXIMUM: return u > v ? u : v;
    case LX_BINARY_MINIMUM: return u < v ? u : v;
    case LX_BINARY_FLOOR_DIVIDE: return lx_ew_floordiv_i(u, v);
    case LX_BINARY_REMAINDER: return lx_ew_rem_i(u, v);
    case LX_BINARY_ARCTAN2: return (int64_t)atan2((double)u, (double)v); /* |.| <= pi */
    default: return 0; /* predicates never come here */
    }
}

LX_EW_INLINE uint64_t lx_ew_binary1_U(int op, uint64_t u, uint64_t v) {
    switch (op) {
    case LX_BINARY_ADD: return u + v;
    case LX_BINARY_SUB: return u - v;
    case LX_BINARY_MUL: return u * v;
    case LX_BINARY_DIV: case LX_BINARY_FLOOR_DIVIDE: return v == 0 ? 0 : u / v;
    case LX_BINARY_POW: return lx_ew_pow_u(u, v);
    case LX_BINARY_MAXIMUM: return u > v ? u : v;
    case LX_BINARY_MINIMUM: return u < v ? u : v;
    case LX_BINARY_REMAINDER: return v == 0 ? 0 : u % v;
    case LX_BINARY_ARCTAN2: return (uint64_t)atan2((double)u, (double)v); /* [0, pi/2] */
    default: return 0; /* predicates never come here */
    }
}

/* comparisons and logical ops: the same expressions for every class */
#define LX_EW_DEF_BINARY_PRED1_(C, CT)                                                  \
    LX_EW_INLINE int lx_ew_binary_pred1_##C(int op, CT u, CT v) {                       \
        switch (op) {                                                                   \
        case LX_BINARY_EQUAL: return u == v;                                            \
        case LX_BINARY_NOT_EQUAL: return u != v;                                        \
        case LX_BINARY_LESS: return u < v;                                              \
        case LX_BINARY_LESS_EQUAL: return u <= v;                                       \
        case LX_BINARY_GREATER: return u > v;                                           \
        case LX_BINARY_GREATER_EQUAL: return u >= v;                                    \
        case LX_BINARY_LOGICAL_AND: return u != 0 && v != 0;                            \
        default: return u != 0 || v != 0; /* LOGICAL_OR */                              \
        }                                                                               \
    }
LX_EW_DEF_BINARY_PRED1_(F, float)
LX_EW_DEF_BINARY_PRED1_(D, double)
LX_EW_DEF_BINARY_PRED1_(I, int64_t)
LX_EW_DEF_BINARY_PRED1_(U, uint64_t)
#undef LX_EW_DEF_BINARY_PRED1_

/* ---- loops: y[i] = op(a[i], b[i]); y may be a or b (same positions) ----
 * Three forms: both operands arrays (lx_ew_binary_<C>), and one of them a scalar
 * (lx_ew_binary_vs_<C>: op(a[i], s); lx_ew_binary_sv_<C>: op(s, b[i])), which the fused
 * kernel uses for constant operands. LX_EW_A_(i) / LX_EW_B_(i) read the operands of a form;
 * they are defined around each instantiation, where the case macros expand. */

/* The operands are read into u, v first, a before b: GCC orders the operands of a commutative
 * op by when they were read, and x86 gives the first operand's payload for NaN + NaN, so this
 * keeps the payloads the kernels gave before (passing a[i], b[i] straight to FN swapped them). */
#define LX_EW_BINARY_CASE_(FN, name)                                                    \
    case LX_BINARY_##name:                                                              \
        for (int64_t i = 0; i < n; i++) {                                               \
            CT u = LX_EW_A_(i), v = LX_EW_B_(i);                                        \
            y[i] = FN(LX_BINARY_##name, u, v);                                          \
        }                                                                               \
        break;
#define LX_EW_BCASE_F_(name) LX_EW_BINARY_CASE_(lx_ew_binary1_F, name)
#define LX_EW_BCASE_D_(name) LX_EW_BINARY_CASE_(lx_ew_binary1_D, name)
#define LX_EW_BCASE_I_(name) LX_EW_BINARY_CASE_(lx_ew_binary1_I, name)
#define LX_EW_BCASE_U_(name) LX_EW_BINARY_CASE_(lx_ew_binary1_U, name)
#define LX_EW_BPCASE_F_(name) LX_EW_BINARY_CASE_(lx_ew_binary_pred1_F, name)
#define LX_EW_BPCASE_D_(name) LX_EW_BINARY_CASE_(lx_ew_binary_pred1_D, name)
#define LX_EW_BPCASE_I_(name) LX_EW_BINARY_CASE_(lx_ew_binary_pred1_I, name)
#define LX_EW_BPCASE_U_(name) LX_EW_BINARY_CASE_(lx_ew_binary_pred1_U, name)

/* The value and predicate loop functions NAME##C and PNAME##C of one class, operands of
 * types AT(CT_) / BT(CT_). */
#define LX_EW_DEF_BINARY_LOOPS_(NAME, PNAME, AT, BT, C, CT_)                            \
    static inline void NAME##C(int op, AT(CT_) a, BT(CT_) b, CT_ *y, int64_t n) {       \
        typedef CT_ CT;                                                                 \
        switch (op) {                                                                   \
            LX_BINARY_VALUE_OPS(LX_EW_BCASE_##C##_)                                     \
        default: break; /* predicates never come here */                                \
        }                                                                               \
    }                                                                                   \
    static inline void PNAME##C(int op, AT(CT_) a, BT(CT_) b, uint8_t *y, int64_t n) {  \
        typedef CT_ CT;                                                                 \
        switch (op) {                                                                   \
            LX_BINARY_PRED_OPS(LX_EW_BPCASE_##C##_)                                     \
        default: break; /* value ops never come here */                                 \
        }                                                                               \
    }
#define LX_EW_DEF_BINARY_(NAME, PNAME, AT, BT)                                          \
    LX_EW_DEF_BINARY_LOOPS_(NAME, PNAME, AT, BT, F, float)                              \
    LX_EW_DEF_BINARY_LOOPS_(NAME, PNAME, AT, BT, D, double)                             \
    LX_EW_DEF_BINARY_LOOPS_(NAME, PNAME, AT, BT, I, int64_t)                            \
    LX_EW_DEF_BINARY_LOOPS_(NAME, PNAME, AT, BT, U, uint64_t)

#define LX_EW_ARR_(T) const T *
#define LX_EW_VAL_(T) T

#define LX_EW_A_(i) a[i]
#define LX_EW_B_(i) b[i]
LX_EW_DEF_BINARY_(lx_ew_binary_, lx_ew_binary_pred_, LX_EW_ARR_, LX_EW_ARR_)
#undef LX_EW_A_
#undef LX_EW_B_

#define LX_EW_A_(i) a[i]
#define LX_EW_B_(i) b
LX_EW_DEF_BINARY_(lx_ew_binary_vs_, lx_ew_binary_pred_vs_, LX_EW_ARR_, LX_EW_VAL_)
#undef LX_EW_A_
#undef LX_EW_B_

#define LX_EW_A_(i) a
#define LX_EW_B_(i) b[i]
LX_EW_DEF_BINARY_(lx_ew_binary_sv_, lx_ew_binary_pred_sv_, LX_EW_VAL_, LX_EW_ARR_)
#undef LX_EW_A_
#undef LX_EW_B_

#undef LX_EW_DEF_BINARY_
#undef LX_EW_DEF_BINARY_LOOPS_
#undef LX_EW_ARR_
#undef LX_EW_VAL_
#undef LX_EW_BCASE_F_
#undef LX_EW_BCASE_D_
#undef LX_EW_BCASE_I_
#undef LX_EW_BCASE_U_
#undef LX_EW_BPCASE_F_
#undef LX_EW_BPCASE_D_
#undef LX_EW_BPCASE_I_
#undef LX_EW_BPCASE_U_
#undef LX_EW_BINARY_CASE_

#endif
