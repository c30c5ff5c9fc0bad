/*
 * binary.c -- the CPU BINARY kernel: every op of LX_BINARY_OPS (graph/ew_ops.h).
 *
 * The op layer has promoted both inputs to one dtype and broadcast them to the output's shape
 * (broadcast inputs arrive with stride 0). The output has the inputs' dtype, except the
 * comparisons and LOGICAL_AND/OR, whose output is bool (0 or 1). Values are computed in their
 * class (values.h): float16/bfloat16/float32 in float, float64 in double, integers in int64 or
 * uint64 and narrowed back by wrapping.
 *
 * Definitions:
 *  - integer add/sub/mul/pow wrap modulo 2^bits (computed unsigned: never undefined);
 *  - integer division by zero gives 0 for div, floor_divide and remainder; MIN / -1 wraps to
 *    MIN (numpy's result) and MIN % -1 is 0; integer div truncates toward zero (the op layer
 *    sends integer lx_div to float32; this is what a kernel given integers does);
 *  - floor_divide: floor(a / b) for floats, the floor of the quotient for integers;
 *  - remainder has the sign of the divisor (Python): r = fmod(a, b), plus b when r != 0 and
 *    r and b differ in sign; remainder(a, 0) is NaN for floats;
 *  - integer pow by repeated squaring; a negative exponent gives the truncated result
 *    (1 for base 1, +-1 for base -1, otherwise 0);
 *  - maximum/minimum propagate NaN (from either side), as MLX;
 *  - comparisons with NaN are false except not_equal; logical ops take nonzero as true.
 */
#include "graph/elementwise_ops.h" /* the per-op definitions, shared with fused.c */
#include "backend/cpu/iter.h"

/* ---- rows: one per dtype ----
 * Each chunk of an input is either used in place (its dtype is its class type and it is
 * contiguous), or widened into a buffer; a broadcast scalar (stride 0) is widened once. The
 * output is written in place when its dtype is its class type, else narrowed from a buffer
 * after the whole chunk was computed (so out may be an input's buffer). */
#define DEF_BINARY_ROW(E, T, S)                                                            \
    static void binary_row_##S(void *c, char *out, const char *const *in,                  \
                               const int64_t *st, int64_t n) {                             \
        typedef LX_ICAT_(LX_CT_, LX_CLS_##S) CT;                                           \
        typedef LX_ST_##S ST;                                                              \
        const int op = *(const int *)c;                                                    \
        const bool pred = lx_binary_op_is_pred(op);                                        \
        const ST *a = (const ST *)in[0], *b = (const ST *)in[1];                           \
        const int64_t sa = st[0], sb = st[1];                                              \
        const bool da = LX_DIRECT_##S && sa == 1, db = LX_DIRECT_##S && sb == 1;           \
        CT ba[LX_CHUNK], bb[LX_CHUNK], bo[LX_CHUNK];                                       \
        if (sa == 0) {                                                                     \
            CT v = LX_LOAD_##S(a[0]);                                                      \
            for (int j = 0; j < LX_CHUNK; j++) ba[j] = v;                                  \
        }                                                                                  \
        if (sb == 0) {                                                                     \
            CT v = LX_LOAD_##S(b[0]);                                                      \
            for (int j = 0; j < LX_CHUNK; j++) bb[j] = v;                                  \
        }                                                                                  \
        for (int64_t i = 0; i < n; i += LX_CHUNK) {                                        \
            int64_t m = n - i < LX_CHUNK ? n - i : LX_CHUNK;                               \
            const CT *pa = ba, *pb = bb;                                                   \
            if (da) pa = (const CT *)(const void *)a + i;                                  \
            else if (sa != 0) lx_chunk_load_##S(a + i * sa, sa, ba, m);                    \
            if (db) pb = (const CT *)(const void *)b + i;                                  \
            else if (sb != 0) lx_chunk_load_##S(b + i * sb, sb, bb, m);                    \
            if (pred) {                                                                    \
                LX_ICAT_(lx_ew_binary_pred_, LX_CLS_##S)(op, pa, pb, (uint8_t *)out + i, m); \
            } else if (LX_DIRECT_##S) {                                                    \
                LX_ICAT_(lx_ew_binary_, LX_CLS_##S)(op, pa, pb, (CT *)(void *)out + i, m); \
            } else {                                                                       \
                LX_ICAT_(lx_ew_binary_, LX_CLS_##S)(op, pa, pb, bo, m);                    \
                lx_chunk_store_##S(bo, (ST *)out + i, m);                                  \
            }                                                                              \
        }                                                                                  \
    }
LX_FOR_EACH_DTYPE(DEF_BINARY_ROW)
#undef DEF_BINARY_ROW

static const lx_iter_row_fn binary_rows[LX_DTYPE_COUNT] = {
#define X(E, T, S) [E] = binary_row_##S,
    LX_FOR_EACH_DTYPE(X)
#undef X
};

lx_status LX_CPU_KERNEL(BINARY)(lx_kctx *kctx, lx_node *out) {
    const lx_binary_params *p = out->params;
    if (!p || out->params_size < sizeof *p || p->op < 0 || p->op >= LX_BINARY_COUNT ||
        out->n_inputs != 2)
        return lx_set_error(LX_E_INTERNAL, "%s: bad binary parameters", out->op);
    int op = p->op;
    lx_node *ins[2] = {out->inputs[0], out->inputs[1]};
    lx_dtype t = (lx_dtype)ins[0]->dtype;
    lx_dtype want = lx_binary_op_is_pred(op) ? LX_BOOL : t;
    if (ins[1]->dtype != t || !lx_dtype_valid(t) || out->dtype != want)
        return lx_set_error(LX_E_INTERNAL, "%s: binary op %d on %s and %s to %s", out->op, op,
                            lx_dtype_name(t), lx_dtype_name((lx_dtype)ins[1]->dtype),
                            lx_dtype_name((lx_dtype)out->dtype));
    lx_iter it;
    lx_iter_init(&it, out, ins, 2);
    lx_iter_run(&it, lx_ew_binary_is_expensive(op, lx_dtype_class(t)) ? LX_ITER_GRAIN / 8 : LX_ITER_GRAIN, binary_rows[t], &op);
    return LX_OK;
}
