/*
 * where.c -- the CPU WHERE kernel: out[i] = cond[i] ? a[i] : b[i].
 *
 * The op layer has converted cond to bool, a and b to the output's dtype, and broadcast all
 * three to the output's shape. Selection moves elements without looking at their values, so
 * one row function per element size (1, 2, 4, 8 bytes) serves every dtype, NaN payloads
 * included. A cond byte is true when nonzero. Each element is read before it is written, so
 * the output may be an input's buffer.
 */
#include "backend/cpu/iter.h"

#define DEF_WHERE_ROW(BITS)                                                                \
    static void where_row_##BITS(void *ctx, char *out, const char *const *in,              \
                                 const int64_t *st, int64_t n) {                           \
        typedef uint##BITS##_t E;                                                          \
        const uint8_t *c = (const uint8_t *)in[0];                                         \
        const E *a = (const E *)in[1], *b = (const E *)in[2];                              \
        E *y = (E *)out;                                                                   \
        const int64_t sc = st[0], sa = st[1], sb = st[2];                                  \
        if (sc == 1 && sa == 1 && sb == 1) {                                               \
            for (int64_t i = 0; i < n; i++) y[i] = c[i] ? a[i] : b[i];                     \
        } else if (sc == 1 && sa == 1 && sb == 0) {                                        \
            const E vb = b[0];                                                             \
            for (int64_t i = 0; i < n; i++) y[i] = c[i] ? a[i] : vb;                       \
        } else if (sc == 1 && sa == 0 && sb == 1) {                                        \
            const E va = a[0];                                                             \
            for (int64_t i = 0; i < n; i++) y[i] = c[i] ? va : b[i];                       \
        } else {                                                                           \
            for (int64_t i = 0; i < n; i++) y[i] = c[i * sc] ? a[i * sa] : b[i * sb];      \
        }                                                                                  \
    }
DEF_WHERE_ROW(8)
DEF_WHERE_ROW(16)
DEF_WHERE_ROW(32)
DEF_WHERE_ROW(64)
#undef DEF_WHERE_ROW

lx_status LX_CPU_KERNEL(WHERE)(lx_kctx *kctx, lx_node *out) {
    if (out->n_inputs != 3)
        return lx_set_error(LX_E_INTERNAL, "%s: where needs three inputs", out->op);
    lx_node *ins[3] = {out->inputs[0], out->inputs[1], out->inputs[2]};
    if (ins[0]->dtype != LX_BOOL || ins[1]->dtype != out->dtype || ins[2]->dtype != out->dtype)
        return lx_set_error(LX_E_INTERNAL, "%s: where of %s, %s, %s to %s", out->op,
                            lx_dtype_name((lx_dtype)ins[0]->dtype),
                            lx_dtype_name((lx_dtype)ins[1]->dtype),
                            lx_dtype_name((lx_dtype)ins[2]->dtype),
                            lx_dtype_name((lx_dtype)out->dtype));
    static const lx_iter_row_fn rows[9] = {
        [1] = where_row_8, [2] = where_row_16, [4] = where_row_32, [8] = where_row_64};
    size_t es = lx_dtype_size((lx_dtype)out->dtype);
    if (es > 8 || !rows[es]) return lx_set_error(LX_E_INTERNAL, "%s: bad dtype", out->op);
    lx_iter it;
    lx_iter_init(&it, out, ins, 3);
    lx_iter_run(&it, LX_ITER_GRAIN, rows[es], NULL);
    return LX_OK;
}
