/*
 * elementwise_ops.h -- the per-element definitions of every UNARY and BINARY op, shared by the
 * unfused kernels (unary.c, binary.c) and the fused-program interpreter (fused.c), so a fused
 * chain computes exactly what the separate kernels compute.
 *
 * Each function runs one op over n values of one value class (iter.h): F (float: float16,
 * bfloat16, float32), D (double), I (int64_t), U (uint64_t); y may be an operand (same
 * positions). Results are in the class; the caller narrows them to the output dtype.
 *   lx_ew_unary_<C>(op, x, y, n)          ops whose output has the input's dtype
 *   lx_ew_unary_pred_<C>(op, x, y8, n)    logical_not, isnan, isinf, isfinite: bytes 0/1
 *   lx_ew_binary_<C>(op, a, b, y, n)      arithmetic
 *   lx_ew_binary_pred_<C>(op, a, b, y8, n) comparisons and logical and/or: bytes 0/1
 * The definitions (NaN handling, integer wrapping, division by zero ...) are documented at the
 * top of unary.c and binary.c. Everything is static inline: compiled into every CPU variant.
 */
#ifndef LX_BACKEND_CPU_ELEMENTWISE_OPS_H
#define LX_BACKEND_CPU_ELEMENTWISE_OPS_H

#include "backend/cpu/iter.h"

/* ======================================================================================== */
/* Unary                                                                                    */

/* ---- erfinv ---- */

static inline double lx_ew_erfinv_core(double x, int steps) {
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
        p = 3.43273939e-07 + p * w;
        p = -3.5233877e-06 + p * w;
        p = -4.39150654e-06 + p * w;
        p = 0.00021858087 + p * w;
        p = -0.00125372503 + p * w;
        p = -0.00417768164 + p * w;
        p = 0.246640727 + p * w;
        p = 1.50140941 + p * w;
        y = p * a;
    } else if (w < 16.0) {
        w = sqrt(w) - 3.0;
        double p = -0.000200214257;
        p = 0.000100950558 + p * w;
        p = 0.00134934322 + p * w;
        p = -0.00367342844 + p * w;
        p = 0.00573950773 + p * w;
        p = -0.0076224613 + p * w;
        p = 0.00943887047 + p * w;
        p = 1.00167406 + p * w;
        p = 2.83297682 + p * w;
        y = p * a;
    } else { /* only float64 gets this close to 1: erfc(y) ~ e^(-y^2) / (y sqrt(pi)) */
        y = sqrt(-log(t));
        for (int k = 0; k < 3; k++) y = sqrt(-log(t * 1.7724538509055160 * y));
        steps += 1;
    }
    for (int k = 0; k < steps; k++) {
        double r = a > 0.5 ? t - erfc(y) : erf(y) - a; /* erf(y) - a */
        double d = 1.1283791670955126 * exp(-y * y);   /* its derivative */
        y -= r / (d + y * r);                           /* Halley */
    }
    return copysign(y, x);
}

/* ---- scalar helpers ---- */

/* A branch-free select through bit masks, so that loops over it vectorize (GCC does not
 * if-convert an ordinary ?: on floats under -ftrapping-math). */
static inline float lx_ew_select_f(int c, float a, float b) {
    uint32_t m = 0u - (uint32_t)(c != 0);
    return lx_f32_from_bits((lx_bits_from_f32(a) & m) | (lx_bits_from_f32(b) & ~m));
}

/* erf in float: one rational function, branch-free so that it vectorizes (libm's erff is a
 * scalar call of ~20 ns; this is ~0.45 ns an element with AVX2, half the cost of the
 * two-polynomial form it replaced, which the GELU chain of compiled closures is bound by):
 *   erf(x) = c P(c^2) / Q(c^2),  c = x clamped to [-3.92, 3.92],  P, Q of degree 5,
 * then clamped to [-1, 1]. The fit (weighted least squares iterated towards minimax on
 * 3000 Chebyshev nodes, float64) has relative error 1.9e-8 (0.3 ulp); float evaluation adds
 * the rest. Checked against float64 erf over every float of [0, 5] (the function is odd and
 * exactly +-1 beyond 3.92): at most 6.5 ulp with FMA contraction (worst near erf = 1, where
 * the rounding of P, Q and the quotient add up), relative error <= 4e-7 everywhere, including
 * near zero (PyTorch's and MLX's vectorised erf, Abramowitz-Stegun 7.1.26, are within 1.5e-7
 * absolute but lose relative accuracy near zero). erf(+-Inf) = +-1, erf(-0) = -0, NaN
 * propagates (both compares are false for NaN). erf in double is libm's. */
static inline float lx_ew_erf_f(float x) {
    float c = lx_ew_select_f(x > 3.92f, 3.92f, x);
    c = lx_ew_select_f(c < -3.92f, -3.92f, c);
    float s = c * c;
    float p = 2.0501020057232971e-06f;
    p = p * s + 0.00028488084336421315f;
    p = p * s + 0.003765535256723301f;
    p = p * s + 0.052748475151353579f;
    p = p * s + 0.19040457079916451f;
    p = p * s + 1.1283791462282544f;
    float q = 3.8091767483252656e-05f;
    q = q * s + 0.0011625155188794071f;
    q = q * s + 0.014969054636234998f;
    q = q * s + 0.11410832996277882f;
    q = q * s + 0.50207439903327855f;
    q = q * s + 1.0f;
    float r = c * p / q;
    r = lx_ew_select_f(r > 1.0f, 1.0f, r);
    return lx_ew_select_f(r < -1.0f, -1.0f, r);
}
static inline double lx_ew_erf_d(double x) { return erf(x); }

static inline float lx_ew_sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}
static inline double lx_ew_sigmoid_d(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
static inline float lx_ew_silu_f(float x) {
    return isinf(x) && x < 0 ? -0.0f : x * lx_ew_sigmoid_f(x);
}
static inline double lx_ew_silu_d(double x) {
    return isinf(x) && x < 0 ? -0.0 : x * lx_ew_sigmoid_d(x);
}
static inline float lx_ew_gelu_f(float x) {
    return isinf(x) && x < 0 ? -0.0f : 0.5f * x * erfcf(-x * 0.70710678118654752f);
}
static inline double lx_ew_gelu_d(double x) {
    return isinf(x) && x < 0 ? -0.0 : 0.5 * x * erfc(-x * 0.70710678118654752440);
}
static inline float lx_ew_gelu_approx_f(float x) {
    if (isinf(x)) return x < 0 ? -0.0f : x;
    float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return x * lx_ew_sigmoid_f(2.0f * u);
}
static inline double lx_ew_gelu_approx_d(double x) {
    if (isinf(x)) return x < 0 ? -0.0 : x;
    double u = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
    return x * lx_ew_sigmoid_d(2.0 * u);
}

static inline bool lx_ew_unary_is_pred(int op) {
    return op == LX_UNARY_LOGICAL_NOT || op == LX_UNARY_ISNAN || op == LX_UNARY_ISINF ||
           op == LX_UNARY_ISFINITE;
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

/* ---- float classes: y[i] = op(x[i]), y may be x ---- */

#define LOOP(expr)                                                                      \
    for (int64_t i = 0; i < n; i++) {                                                   \
        CT v = x[i];                                                                    \
        (void)v;                                                                        \
        y[i] = (expr);                                                                  \
    }                                                                                   \
    break

/* SUF: the libm suffix (f for float, empty for double); SF: the helpers' suffix. */
#define DEF_UNARY_FLOAT(C, CT_, SUF, SF)                                                \
    static inline void lx_ew_unary_##C(int op, const CT_ *x, CT_ *y, int64_t n) {                  \
        typedef CT_ CT;                                                                 \
        switch (op) {                                                                   \
        case LX_UNARY_NEG: LOOP(-v);                                                    \
        case LX_UNARY_ABS: LOOP(fabs##SUF(v));                                          \
        case LX_UNARY_SIGN: LOOP(v > 0 ? (CT)1 : (v < 0 ? (CT)-1 : v));                 \
        case LX_UNARY_SQUARE: LOOP(v * v);                                              \
        case LX_UNARY_SQRT: LOOP(sqrt##SUF(v));                                         \
        case LX_UNARY_RSQRT: LOOP((CT)1 / sqrt##SUF(v));                                \
        case LX_UNARY_RECIPROCAL: LOOP((CT)1 / v);                                      \
        case LX_UNARY_EXP: LOOP(exp##SUF(v));                                           \
        case LX_UNARY_EXPM1: LOOP(expm1##SUF(v));                                       \
        case LX_UNARY_LOG: LOOP(log##SUF(v));                                           \
        case LX_UNARY_LOG1P: LOOP(log1p##SUF(v));                                       \
        case LX_UNARY_LOG2: LOOP(log2##SUF(v));                                         \
        case LX_UNARY_LOG10: LOOP(log10##SUF(v));                                       \
        case LX_UNARY_SIN: LOOP(sin##SUF(v));                                           \
        case LX_UNARY_COS: LOOP(cos##SUF(v));                                           \
        case LX_UNARY_TAN: LOOP(tan##SUF(v));                                           \
        case LX_UNARY_TANH: LOOP(tanh##SUF(v));                                         \
        case LX_UNARY_ERF: LOOP(lx_ew_erf_##SF(v));                                     \
        case LX_UNARY_ERFINV: LOOP((CT)lx_ew_erfinv_core((double)v, sizeof(CT) == 4 ? 1 : 3)); \
        case LX_UNARY_SIGMOID: LOOP(lx_ew_sigmoid_##SF(v));                                   \
        case LX_UNARY_SILU: LOOP(lx_ew_silu_##SF(v));                                         \
        case LX_UNARY_RELU: LOOP(v != v ? v : (v > 0 ? v : (CT)0));                     \
        case LX_UNARY_GELU: LOOP(lx_ew_gelu_##SF(v));                                         \
        case LX_UNARY_GELU_APPROX: LOOP(lx_ew_gelu_approx_##SF(v));                           \
        case LX_UNARY_FLOOR: LOOP(floor##SUF(v));                                       \
        case LX_UNARY_CEIL: LOOP(ceil##SUF(v));                                         \
        case LX_UNARY_ROUND: LOOP(rint##SUF(v)); /* half to even */                     \
        default: LOOP(v);                        /* predicates never come here */       \
        }                                                                               \
    }                                                                                   \
    static inline void lx_ew_unary_pred_##C(int op, const CT_ *x, uint8_t *y, int64_t n) {         \
        typedef CT_ CT;                                                                 \
        switch (op) {                                                                   \
        case LX_UNARY_LOGICAL_NOT: LOOP(v == 0);                                        \
        case LX_UNARY_ISNAN: LOOP(v != v);                                              \
        case LX_UNARY_ISINF: LOOP(isinf(v) != 0);                                       \
        default: LOOP(isfinite(v) != 0);                                                \
        }                                                                               \
    }

DEF_UNARY_FLOAT(F, float, f, f)
DEF_UNARY_FLOAT(D, double, , d)
#undef DEF_UNARY_FLOAT

/* ---- integer classes ---- */

/* Float-only ops on integers: through double, clamped back into the class's range. */
static inline void lx_ew_unary_int_via_double(int op, const void *x, void *y, int64_t n,
                                              bool is_signed) {
    double d[LX_CHUNK];
    for (int64_t i = 0; i < n; i += LX_CHUNK) {
        int64_t m = n - i < LX_CHUNK ? n - i : LX_CHUNK;
        for (int64_t j = 0; j < m; j++)
            d[j] = is_signed ? (double)((const int64_t *)x)[i + j]
                             : (double)((const uint64_t *)x)[i + j];
        lx_ew_unary_D(op, d, d, m);
        for (int64_t j = 0; j < m; j++) {
            if (is_signed) ((int64_t *)y)[i + j] = lx_cvt_i64_D(d[j]);
            else ((uint64_t *)y)[i + j] = lx_cvt_u64_D(d[j]);
        }
    }
}

static inline void lx_ew_unary_I(int op, const int64_t *x, int64_t *y, int64_t n) {
    typedef int64_t CT;
    switch (op) {
    case LX_UNARY_NEG: LOOP((int64_t)(0u - (uint64_t)v));
    case LX_UNARY_ABS: LOOP(v < 0 ? (int64_t)(0u - (uint64_t)v) : v);
    case LX_UNARY_SIGN: LOOP((v > 0) - (v < 0));
    case LX_UNARY_SQUARE: LOOP((int64_t)((uint64_t)v * (uint64_t)v));
    case LX_UNARY_RELU: LOOP(v > 0 ? v : 0);
    case LX_UNARY_FLOOR: case LX_UNARY_CEIL: case LX_UNARY_ROUND: LOOP(v);
    default: lx_ew_unary_int_via_double(op, x, y, n, true);
    }
}

static inline void lx_ew_unary_U(int op, const uint64_t *x, uint64_t *y, int64_t n) {
    typedef uint64_t CT;
    switch (op) {
    case LX_UNARY_NEG: LOOP(0u - v);
    case LX_UNARY_SIGN: LOOP(v != 0);
    case LX_UNARY_SQUARE: LOOP(v * v);
    case LX_UNARY_ABS: case LX_UNARY_RELU: case LX_UNARY_FLOOR: case LX_UNARY_CEIL:
    case LX_UNARY_ROUND: LOOP(v);
    default: lx_ew_unary_int_via_double(op, x, y, n, false);
    }
}

#define DEF_UNARY_PRED_INT(C, CT_)                                                      \
    static inline void lx_ew_unary_pred_##C(int op, const CT_ *x, uint8_t *y, int64_t n) {         \
        typedef CT_ CT;                                                                 \
        switch (op) {                                                                   \
        case LX_UNARY_LOGICAL_NOT: LOOP(v == 0);                                        \
        case LX_UNARY_ISFINITE: LOOP(1 + 0 * v); /* v unused: integers are finite */  \
        default: LOOP(0 * v); /* isnan, isinf: never for integers */                  \
        }                                                                               \
    }
DEF_UNARY_PRED_INT(I, int64_t)
DEF_UNARY_PRED_INT(U, uint64_t)
#undef DEF_UNARY_PRED_INT
#undef LOOP

/* ======================================================================================== */
/* Binary                                                                                   */

static inline bool lx_ew_binary_is_pred(int op) {
    return op >= LX_BINARY_EQUAL && op <= LX_BINARY_LOGICAL_OR;
}

/* ---- y[i] = op(a[i], b[i]); y may be a or b (same positions) ----
 * Each op is written once (the *_CASES macros) and instantiated three times: both operands
 * arrays (lx_ew_binary_<C>), and one of them a scalar (lx_ew_binary_vs_<C>: op(a[i], s);
 * lx_ew_binary_sv_<C>: op(s, b[i])), which the fused kernel uses for constant operands. The
 * element expressions are the same in all three, so they give the same values. */

#define LOOP(expr)                                                                      \
    for (int64_t i = 0; i < n; i++) {                                                   \
        CT u = LX_EW_A_(i), v = LX_EW_B_(i);                                            \
        y[i] = (expr);                                                                  \
    }                                                                                   \
    break

static inline float lx_ew_fmax_nan_f(float u, float v) { return u != u ? u : (u > v ? u : v); }
static inline float lx_ew_fmin_nan_f(float u, float v) { return u != u ? u : (u < v ? u : v); }
static inline double lx_ew_fmax_nan_d(double u, double v) { return u != u ? u : (u > v ? u : v); }
static inline double lx_ew_fmin_nan_d(double u, double v) { return u != u ? u : (u < v ? u : v); }
static inline float lx_ew_rem_f(float u, float v) {
    float r = fmodf(u, v);
    if (r != 0 && ((r < 0) != (v < 0))) r += v;
    return r;
}
static inline double lx_ew_rem_d(double u, double v) {
    double r = fmod(u, v);
    if (r != 0 && ((r < 0) != (v < 0))) r += v;
    return r;
}

static inline int64_t lx_ew_neg_i(int64_t u) { return (int64_t)(0u - (uint64_t)u); }
static inline int64_t lx_ew_div_i(int64_t u, int64_t v) {
    return v == 0 ? 0 : (v == -1 ? lx_ew_neg_i(u) : u / v);
}
static inline int64_t lx_ew_floordiv_i(int64_t u, int64_t v) {
    if (v == 0) return 0;
    if (v == -1) return lx_ew_neg_i(u);
    int64_t q = u / v;
    return (u % v != 0 && ((u < 0) != (v < 0))) ? q - 1 : q;
}
static inline int64_t lx_ew_rem_i(int64_t u, int64_t v) {
    if (v == 0 || v == -1) return 0;
    int64_t r = u % v;
    return (r != 0 && ((r < 0) != (v < 0))) ? r + v : r;
}
static inline uint64_t lx_ew_pow_u(uint64_t base, uint64_t e) {
    uint64_t r = 1;
    while (e) {
        if (e & 1u) r *= base;
        e >>= 1;
        base *= base;
    }
    return r;
}
static inline int64_t lx_ew_pow_i(int64_t base, int64_t e) {
    if (e < 0) return base == 1 ? 1 : (base == -1 ? (e % 2 != 0 ? -1 : 1) : 0);
    return (int64_t)lx_ew_pow_u((uint64_t)base, (uint64_t)e);
}

/* SUF: the libm suffix (f for float, empty for double); SF: the helpers' suffix. */
#define LX_EW_FLOAT_CASES_(SUF, SF)                                                     \
    case LX_BINARY_ADD: LOOP(u + v);                                                    \
    case LX_BINARY_SUB: LOOP(u - v);                                                    \
    case LX_BINARY_MUL: LOOP(u * v);                                                    \
    case LX_BINARY_DIV: LOOP(u / v);                                                    \
    case LX_BINARY_POW: LOOP(pow##SUF(u, v));                                           \
    case LX_BINARY_MAXIMUM: LOOP(lx_ew_fmax_nan_##SF(u, v));                            \
    case LX_BINARY_MINIMUM: LOOP(lx_ew_fmin_nan_##SF(u, v));                            \
    case LX_BINARY_FLOOR_DIVIDE: LOOP(floor##SUF(u / v));                               \
    case LX_BINARY_REMAINDER: LOOP(lx_ew_rem_##SF(u, v));                               \
    case LX_BINARY_ARCTAN2: LOOP(atan2##SUF(u, v));                                     \
    default: break; /* predicates never come here */

#define LX_EW_I_CASES_                                                                  \
    case LX_BINARY_ADD: LOOP((int64_t)((uint64_t)u + (uint64_t)v));                     \
    case LX_BINARY_SUB: LOOP((int64_t)((uint64_t)u - (uint64_t)v));                     \
    case LX_BINARY_MUL: LOOP((int64_t)((uint64_t)u * (uint64_t)v));                     \
    case LX_BINARY_DIV: LOOP(lx_ew_div_i(u, v));                                        \
    case LX_BINARY_POW: LOOP(lx_ew_pow_i(u, v));                                        \
    case LX_BINARY_MAXIMUM: LOOP(u > v ? u : v);                                        \
    case LX_BINARY_MINIMUM: LOOP(u < v ? u : v);                                        \
    case LX_BINARY_FLOOR_DIVIDE: LOOP(lx_ew_floordiv_i(u, v));                          \
    case LX_BINARY_REMAINDER: LOOP(lx_ew_rem_i(u, v));                                  \
    case LX_BINARY_ARCTAN2: LOOP((int64_t)atan2((double)u, (double)v)); /* |.| <= pi */ \
    default: break; /* predicates never come here */

#define LX_EW_U_CASES_                                                                  \
    case LX_BINARY_ADD: LOOP(u + v);                                                    \
    case LX_BINARY_SUB: LOOP(u - v);                                                    \
    case LX_BINARY_MUL: LOOP(u * v);                                                    \
    case LX_BINARY_DIV: case LX_BINARY_FLOOR_DIVIDE: LOOP(v == 0 ? 0 : u / v);          \
    case LX_BINARY_POW: LOOP(lx_ew_pow_u(u, v));                                        \
    case LX_BINARY_MAXIMUM: LOOP(u > v ? u : v);                                        \
    case LX_BINARY_MINIMUM: LOOP(u < v ? u : v);                                        \
    case LX_BINARY_REMAINDER: LOOP(v == 0 ? 0 : u % v);                                 \
    case LX_BINARY_ARCTAN2: LOOP((uint64_t)atan2((double)u, (double)v)); /* [0, pi/2] */ \
    default: break; /* predicates never come here */

/* comparisons and logical ops: bool out */
#define LX_EW_PRED_CASES_                                                               \
    case LX_BINARY_EQUAL: LOOP(u == v);                                                 \
    case LX_BINARY_NOT_EQUAL: LOOP(u != v);                                             \
    case LX_BINARY_LESS: LOOP(u < v);                                                   \
    case LX_BINARY_LESS_EQUAL: LOOP(u <= v);                                            \
    case LX_BINARY_GREATER: LOOP(u > v);                                                \
    case LX_BINARY_GREATER_EQUAL: LOOP(u >= v);                                         \
    case LX_BINARY_LOGICAL_AND: LOOP(u != 0 && v != 0);                                 \
    default: LOOP(u != 0 || v != 0); /* LOGICAL_OR */

/* One family of functions: NAME##C for each class, operands of types AT / BT. */
#define LX_EW_DEF_BINARY_(NAME, PNAME, AT, BT)                                          \
    static inline void NAME##F(int op, AT(float) a, BT(float) b, float *y, int64_t n) { \
        typedef float CT;                                                               \
        switch (op) { LX_EW_FLOAT_CASES_(f, f) }                                        \
    }                                                                                   \
    static inline void NAME##D(int op, AT(double) a, BT(double) b, double *y,           \
                               int64_t n) {                                             \
        typedef double CT;                                                              \
        switch (op) { LX_EW_FLOAT_CASES_(, d) }                                         \
    }                                                                                   \
    static inline void NAME##I(int op, AT(int64_t) a, BT(int64_t) b, int64_t *y,        \
                               int64_t n) {                                             \
        typedef int64_t CT;                                                             \
        switch (op) { LX_EW_I_CASES_ }                                                  \
    }                                                                                   \
    static inline void NAME##U(int op, AT(uint64_t) a, BT(uint64_t) b, uint64_t *y,     \
                               int64_t n) {                                             \
        typedef uint64_t CT;                                                            \
        switch (op) { LX_EW_U_CASES_ }                                                  \
    }                                                                                   \
    static inline void PNAME##F(int op, AT(float) a, BT(float) b, uint8_t *y,           \
                                int64_t n) {                                            \
        typedef float CT;                                                               \
        switch (op) { LX_EW_PRED_CASES_ }                                               \
    }                                                                                   \
    static inline void PNAME##D(int op, AT(double) a, BT(double) b, uint8_t *y,         \
                                int64_t n) {                                            \
        typedef double CT;                                                              \
        switch (op) { LX_EW_PRED_CASES_ }                                               \
    }                                                                                   \
    static inline void PNAME##I(int op, AT(int64_t) a, BT(int64_t) b, uint8_t *y,       \
                                int64_t n) {                                            \
        typedef int64_t CT;                                                             \
        switch (op) { LX_EW_PRED_CASES_ }                                               \
    }                                                                                   \
    static inline void PNAME##U(int op, AT(uint64_t) a, BT(uint64_t) b, uint8_t *y,     \
                                int64_t n) {                                            \
        typedef uint64_t CT;                                                            \
        switch (op) { LX_EW_PRED_CASES_ }                                               \
    }

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
#undef LOOP

#endif
