/*
 * unary.c -- the CPU UNARY kernel: every op of LX_UNARY_OPS (graph/ew_ops.h).
 *
 * The op layer has chosen the dtypes: the output has the input's dtype, except LOGICAL_NOT,
 * ISNAN, ISINF and ISFINITE, whose output is bool. Values are computed in their class
 * (values.h): float16/bfloat16/float32 in float, float64 in double, integers in int64/uint64.
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
 * Float accuracy where lx computes rather than calls libm (elementwise_ops.h; all branch-free
 * so the loops vectorize; measured against float64 by tests/test_exp_log_accuracy.c and
 * test_erf_exhaustive.c): exp 1.01 ulp, log 0.82, sigmoid 2.4, silu 3.1, erf 5.9 (7.0 without
 * FMA). float64 and the other functions are libm's.
 * erfinv: float64 starts from Giles' single-precision approximation (M. Giles, "Approximating
 * the erfinv function", GPU Computing Gems, 2011), then three Halley steps on erf(y) - x
 * (residual through erfc near +-1); float (lx_ew_erfinv_f) is Giles' form with refitted
 * polynomials evaluated in double, branch-free (0.54 ulp); erfinv(+-1) = +-Inf, |x| > 1 gives NaN.
 */
#include "graph/elementwise_ops.h" /* the per-op definitions, shared with fused.c */
#include "backend/cpu/iter.h"

/* ---- rows: one per dtype ---- */

#define DEF_UNARY_ROW(E, T, S)                                                             \
    static void unary_row_##S(void *c, char *out, const char *const *in,                   \
                              const int64_t *st, int64_t n) {                              \
        typedef LX_ICAT_(LX_CT_, LX_CLS_##S) CT;                                           \
        typedef LX_ST_##S ST;                                                              \
        const int op = *(const int *)c;                                                    \
        const ST *x = (const ST *)in[0];                                                   \
        const int64_t s = st[0];                                                           \
        CT buf[LX_CHUNK];                                                                  \
        if (lx_unary_op_is_pred(op)) {                                                     \
            uint8_t *y = (uint8_t *)out;                                                   \
            if (LX_DIRECT_##S && s == 1) {                                                 \
                LX_ICAT_(lx_ew_unary_pred_, LX_CLS_##S)(op, (const CT *)(const void *)x, y, n); \
                return;                                                                    \
            }                                                                              \
            for (int64_t i = 0; i < n; i += LX_CHUNK) {                                    \
                int64_t m = n - i < LX_CHUNK ? n - i : LX_CHUNK;                           \
                lx_chunk_load_##S(x + i * s, s, buf, m);                                   \
                LX_ICAT_(lx_ew_unary_pred_, LX_CLS_##S)(op, buf, y + i, m);                \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        ST *y = (ST *)out;                                                                 \
        if (LX_DIRECT_##S && s == 1) {                                                     \
            LX_ICAT_(lx_ew_unary_, LX_CLS_##S)(op, (const CT *)(const void *)x,            \
                                         (CT *)(void *)y, n);                              \
            return;                                                                        \
        }                                                                                  \
        for (int64_t i = 0; i < n; i += LX_CHUNK) {                                        \
            int64_t m = n - i < LX_CHUNK ? n - i : LX_CHUNK;                               \
            /* the chunk is read whole before it is written (out may be in's buffer) */    \
            lx_chunk_load_##S(x + i * s, s, buf, m);                                       \
            LX_ICAT_(lx_ew_unary_, LX_CLS_##S)(op, buf, buf, m);                           \
            lx_chunk_store_##S(buf, y + i, m);                                             \
        }                                                                                  \
    }
LX_FOR_EACH_DTYPE(DEF_UNARY_ROW)
#undef DEF_UNARY_ROW

static const lx_iter_row_fn unary_rows[LX_DTYPE_COUNT] = {
#define X(E, T, S) [E] = unary_row_##S,
    LX_FOR_EACH_DTYPE(X)
#undef X
};

lx_status LX_CPU_KERNEL(UNARY)(lx_kctx *kctx, lx_node *out) {
    const lx_unary_params *p = out->params;
    if (!p || out->params_size < sizeof *p || p->op < 0 || p->op >= LX_UNARY_COUNT ||
        out->n_inputs != 1)
        return lx_set_error(LX_E_INTERNAL, "%s: bad unary parameters", out->op);
    lx_node *in = out->inputs[0];
    int op = p->op;
    lx_dtype want = lx_unary_op_is_pred(op) ? LX_BOOL : (lx_dtype)in->dtype;
    if (out->dtype != want || !lx_dtype_valid(in->dtype))
        return lx_set_error(LX_E_INTERNAL, "%s: unary op %d from %s to %s", out->op, op,
                            lx_dtype_name((lx_dtype)in->dtype),
                            lx_dtype_name((lx_dtype)out->dtype));
    lx_iter it;
    lx_iter_init(&it, out, &in, 1);
    int64_t grain = lx_ew_unary_is_expensive(op) ? LX_ITER_GRAIN / 8 : LX_ITER_GRAIN;
    lx_iter_run(&it, grain, unary_rows[in->dtype], &op);
    return LX_OK;
}
