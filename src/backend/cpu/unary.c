/*
 * unary.c -- the CPU UNARY kernel: every op of LX_UNARY_OPS (backend/prims.h).
 *
 * The op layer has chosen the dtypes: the output has the input's dtype, except LOGICAL_NOT,
 * ISNAN, ISINF and ISFINITE, whose output is bool. Values are computed in their class
 * (iter.h): float16/bfloat16/float32 in float, float64 in double, integers in int64/uint64.
 * Integer arithmetic wraps (computed in unsigned, so never undefined): neg and abs of the most
 * negative value give it back, as numpy. Float-only ops on integers (not produced by the op
 * layer, which promotes to float32) are computed in double and converted back with clamping.
 *
 * Definitions (float): sign(NaN) = NaN, sign(+-0) = +-0; round is half to even (rint in the
 * default rounding mode); relu(NaN) = NaN (maximum(x, 0) as MLX); sigmoid is 1/(1+e^-x) for
 * x >= 0 and e^x/(1+e^x) below, so it neither overflows nor loses small results;
 * silu = x * sigmoid(x); gelu = x/2 * (1 + erf(x/sqrt2)) computed as x/2 * erfc(-x/sqrt2),
 * which is the same function without the cancellation for negative x; gelu_approx =
 * x/2 * (1 + tanh(u)), u = sqrt(2/pi) * (x + 0.044715 x^3), computed as x * sigmoid(2u);
 * silu, gelu and gelu_approx of -Inf are -0 (their limit) rather than NaN.
 * erfinv: Giles' single-precision approximation (M. Giles, "Approximating the erfinv
 * function", GPU Computing Gems, 2011) as the start, then Halley steps on erf(y) - x in double
 * (residual through erfc near +-1): one step for float inputs (correctly rounded in practice),
 * three for float64; erfinv(+-1) = +-Inf, |x| > 1 gives NaN.
 */
#include "backend/cpu/iter.h"

/* ---- erfinv ---- */

static double erfinv_core(double x, int steps) {
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

static inline float sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}
static inline double sigmoid_d(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
static inline float silu_f(float x) { return isinf(x) && x < 0 ? -0.0f : x * sigmoid_f(x); }
static inline double silu_d(double x) { return isinf(x) && x < 0 ? -0.0 : x * sigmoid_d(x); }
static inline float gelu_f(float x) {
    return isinf(x) && x < 0 ? -0.0f : 0.5f * x * erfcf(-x * 0.70710678118654752f);
}
static inline double gelu_d(double x) {
    return isinf(x) && x < 0 ? -0.0 : 0.5 * x * erfc(-x * 0.70710678118654752440);
}
static inline float gelu_approx_f(float x) {
    if (isinf(x)) return x < 0 ? -0.0f : x;
    float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return x * sigmoid_f(2.0f * u);
}
static inline double gelu_approx_d(double x) {
    if (isinf(x)) return x < 0 ? -0.0 : x;
    double u = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
    return x * sigmoid_d(2.0 * u);
}

static inline bool is_pred(int op) {
    return op == LX_UNARY_LOGICAL_NOT || op == LX_UNARY_ISNAN || op == LX_UNARY_ISINF ||
           op == LX_UNARY_ISFINITE;
}
static inline bool is_expensive(int op) {
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
        y[i] = (expr);                                                                  \
    }                                                                                   \
    break

/* SUF: the libm suffix (f for float, empty for double); SF: the helpers' suffix. */
#define DEF_UNARY_FLOAT(C, CT_, SUF, SF)                                                \
    static void unary_##C(int op, const CT_ *x, CT_ *y, int64_t n) {                    \
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
        case LX_UNARY_ERF: LOOP(erf##SUF(v));                                           \
        case LX_UNARY_ERFINV: LOOP((CT)erfinv_core((double)v, sizeof(CT) == 4 ? 1 : 3)); \
        case LX_UNARY_SIGMOID: LOOP(sigmoid_##SF(v));                                   \
        case LX_UNARY_SILU: LOOP(silu_##SF(v));                                         \
        case LX_UNARY_RELU: LOOP(v != v ? v : (v > 0 ? v : (CT)0));                     \
        case LX_UNARY_GELU: LOOP(gelu_##SF(v));                                         \
        case LX_UNARY_GELU_APPROX: LOOP(gelu_approx_##SF(v));                           \
        case LX_UNARY_FLOOR: LOOP(floor##SUF(v));                                       \
        case LX_UNARY_CEIL: LOOP(ceil##SUF(v));                                         \
        case LX_UNARY_ROUND: LOOP(rint##SUF(v)); /* half to even */                     \
        default: LOOP(v);                        /* predicates never come here */       \
        }                                                                               \
    }                                                                                   \
    static void unary_pred_##C(int op, const CT_ *x, uint8_t *y, int64_t n) {           \
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
static void unary_int_via_double(int op, const void *x, void *y, int64_t n, bool is_signed) {
    double d[LX_CHUNK];
    for (int64_t i = 0; i < n; i += LX_CHUNK) {
        int64_t m = n - i < LX_CHUNK ? n - i : LX_CHUNK;
        for (int64_t j = 0; j < m; j++)
            d[j] = is_signed ? (double)((const int64_t *)x)[i + j]
                             : (double)((const uint64_t *)x)[i + j];
        unary_D(op, d, d, m);
        for (int64_t j = 0; j < m; j++) {
            if (is_signed) ((int64_t *)y)[i + j] = lx_cvt_i64_D(d[j]);
            else ((uint64_t *)y)[i + j] = lx_cvt_u64_D(d[j]);
        }
    }
}

static void unary_I(int op, const int64_t *x, int64_t *y, int64_t n) {
    typedef int64_t CT;
    switch (op) {
    case LX_UNARY_NEG: LOOP((int64_t)(0u - (uint64_t)v));
    case LX_UNARY_ABS: LOOP(v < 0 ? (int64_t)(0u - (uint64_t)v) : v);
    case LX_UNARY_SIGN: LOOP((v > 0) - (v < 0));
    case LX_UNARY_SQUARE: LOOP((int64_t)((uint64_t)v * (uint64_t)v));
    case LX_UNARY_RELU: LOOP(v > 0 ? v : 0);
    case LX_UNARY_FLOOR: case LX_UNARY_CEIL: case LX_UNARY_ROUND: LOOP(v);
    default: unary_int_via_double(op, x, y, n, true);
    }
}

static void unary_U(int op, const uint64_t *x, uint64_t *y, int64_t n) {
    typedef uint64_t CT;
    switch (op) {
    case LX_UNARY_NEG: LOOP(0u - v);
    case LX_UNARY_SIGN: LOOP(v != 0);
    case LX_UNARY_SQUARE: LOOP(v * v);
    case LX_UNARY_ABS: case LX_UNARY_RELU: case LX_UNARY_FLOOR: case LX_UNARY_CEIL:
    case LX_UNARY_ROUND: LOOP(v);
    default: unary_int_via_double(op, x, y, n, false);
    }
}

#define DEF_UNARY_PRED_INT(C, CT_)                                                      \
    static void unary_pred_##C(int op, const CT_ *x, uint8_t *y, int64_t n) {           \
        typedef CT_ CT;                                                                 \
        switch (op) {                                                                   \
        case LX_UNARY_LOGICAL_NOT: LOOP(v == 0);                                        \
        case LX_UNARY_ISFINITE: LOOP(1 + 0 * v);                                        \
        default: LOOP(0 * v); /* isnan, isinf */                                        \
        }                                                                               \
    }
DEF_UNARY_PRED_INT(I, int64_t)
DEF_UNARY_PRED_INT(U, uint64_t)
#undef DEF_UNARY_PRED_INT
#undef LOOP

/* ---- rows: one per dtype ---- */

#define DEF_UNARY_ROW(E, T, S)                                                          \
    static void unary_row_##S(void *c, char *out, const char *const *in,                \
                              const int64_t *st, int64_t n) {                           \
        typedef LX_ICAT_(LX_CT_, LX_CLS_##S) CT;                                        \
        typedef LX_ST_##S ST;                                                           \
        const int op = *(const int *)c;                                                 \
        const ST *x = (const ST *)in[0];                                                \
        const int64_t s = st[0];                                                        \
        CT buf[LX_CHUNK];                                                               \
        if (is_pred(op)) {                                                              \
            uint8_t *y = (uint8_t *)out;                                                \
            if (LX_DIRECT_##S && s == 1) {                                              \
                LX_ICAT_(unary_pred_, LX_CLS_##S)(op, (const CT *)(const void *)x, y, n); \
                return;                                                                 \
            }                                                                           \
            for (int64_t i = 0; i < n; i += LX_CHUNK) {                                 \
                int64_t m = n - i < LX_CHUNK ? n - i : LX_CHUNK;                        \
                lx_chunk_load_##S(x + i * s, s, buf, m);                                \
                LX_ICAT_(unary_pred_, LX_CLS_##S)(op, buf, y + i, m);                   \
            }                                                                           \
            return;                                                                     \
        }                                                                               \
        ST *y = (ST *)out;                                                              \
        if (LX_DIRECT_##S && s == 1) {                                                  \
            LX_ICAT_(unary_, LX_CLS_##S)(op, (const CT *)(const void *)x,               \
                                         (CT *)(void *)y, n);                           \
            return;                                                                     \
        }                                                                               \
        for (int64_t i = 0; i < n; i += LX_CHUNK) {                                     \
            int64_t m = n - i < LX_CHUNK ? n - i : LX_CHUNK;                            \
            /* the chunk is read whole before it is written (out may be in's buffer) */ \
            lx_chunk_load_##S(x + i * s, s, buf, m);                                    \
            LX_ICAT_(unary_, LX_CLS_##S)(op, buf, buf, m);                              \
            lx_chunk_store_##S(buf, y + i, m);                                          \
        }                                                                               \
    }
LX_FOR_EACH_DTYPE(DEF_UNARY_ROW)
#undef DEF_UNARY_ROW

static const lx_iter_row_fn unary_rows[LX_DTYPE_COUNT] = {
#define X(E, T, S) [E] = unary_row_##S,
    LX_FOR_EACH_DTYPE(X)
#undef X
};

lx_status LX_CPU_KERNEL(UNARY)(lx_node *out) {
    const lx_unary_params *p = out->params;
    if (!p || out->params_size < sizeof *p || p->op < 0 || p->op >= LX_UNARY_COUNT ||
        out->n_inputs != 1)
        return lx_set_error(LX_E_INTERNAL, "%s: bad unary parameters", out->op);
    lx_node *in = out->inputs[0];
    int op = p->op;
    lx_dtype want = is_pred(op) ? LX_BOOL : (lx_dtype)in->dtype;
    if (out->dtype != want || !lx_dtype_valid(in->dtype))
        return lx_set_error(LX_E_INTERNAL, "%s: unary op %d from %s to %s", out->op, op,
                            lx_dtype_name((lx_dtype)in->dtype),
                            lx_dtype_name((lx_dtype)out->dtype));
    lx_iter it;
    lx_iter_init(&it, out, &in, 1);
    lx_iter_run(&it, is_expensive(op) ? LX_ITER_GRAIN / 8 : LX_ITER_GRAIN, unary_rows[in->dtype],
                &op);
    return LX_OK;
}
