/*
 * scan.c -- the SCAN kernel: inclusive cumulative sum, product, max and min along one axis.
 *
 * Every dtype comes from one macro (expanded over LX_FOR_EACH_DTYPE) parameterised by a
 * per-dtype "class" that says how a value is accumulated:
 *   BOOL  sum counts into int32 (the node's dtype), prod/max/min are and/or/and;
 *   INT   integers up to 32 bits: sum/prod in uint32_t (two's complement wrap, no UB),
 *         truncated to the dtype on store; max/min compare natively;
 *   LONG  64-bit integers: uint64_t; F16/BF16: float32 accumulator, rounded on store;
 *   FLT   float32 accumulates sequentially in float32; DBL: double.
 * max/min propagate NaN (as MLX and numpy).
 *
 * Work is split into (outer index, block of up to SCAN_BLOCK inner indices) tasks run with
 * lx_parallel_for; a task walks the axis once, carrying one accumulator per inner index, so
 * an inner-contiguous input is read and written sequentially.
 */
#include <stdlib.h>

#include "backend/cpu/cpu.h"
#include "graph/layout.h"
#include "graph/prims_scan.h"

#define SCAN_BLOCK 256

typedef struct scan_ctx scan_ctx;
typedef void (*scan_block_fn)(const scan_ctx *c, int64_t o, int64_t j0, int64_t nj,
                              const int64_t *joff);
struct scan_ctx {
    lx_axis_rows g;
    const char *in;
    char *out;
    bool inner_unit;
    int64_t nblk; /* blocks of inner indices per outer index */
    scan_block_fn fn;
};

/* ---- per-dtype classes ------------------------------------------------------------------ */

#define SC_CLASS_bool SCK_BOOL
#define SC_CLASS_u8 SCK_INT
#define SC_CLASS_u16 SCK_INT
#define SC_CLASS_u32 SCK_INT
#define SC_CLASS_u64 SCK_LONG
#define SC_CLASS_i8 SCK_INT
#define SC_CLASS_i16 SCK_INT
#define SC_CLASS_i32 SCK_INT
#define SC_CLASS_i64 SCK_LONG
#define SC_CLASS_f16 SCK_F16
#define SC_CLASS_bf16 SCK_BF16
#define SC_CLASS_f32 SCK_FLT
#define SC_CLASS_f64 SCK_DBL

/* A: the sum/prod accumulator; LDA/STA: value <-> accumulator (STA also for prod output);
 * SOT/STS: the sum's output type and store; C: the max/min value type; LDC/STC; NAN(x). */
#define SC_A_SCK_BOOL(T) uint32_t
#define SC_LDA_SCK_BOOL(T, v) ((uint32_t)(v))
#define SC_STA_SCK_BOOL(T, a) ((a) != 0)
#define SC_SOT_SCK_BOOL(T) int32_t
#define SC_STS_SCK_BOOL(T, a) ((int32_t)(a))
#define SC_C_SCK_BOOL(T) T
#define SC_LDC_SCK_BOOL(T, v) (v)
#define SC_STC_SCK_BOOL(T, c) (c)
#define SC_NAN_SCK_BOOL(x) 0

#define SC_A_SCK_INT(T) uint32_t
#define SC_LDA_SCK_INT(T, v) ((uint32_t)(v))
#define SC_STA_SCK_INT(T, a) ((T)(a))
#define SC_SOT_SCK_INT(T) T
#define SC_STS_SCK_INT(T, a) ((T)(a))
#define SC_C_SCK_INT(T) T
#define SC_LDC_SCK_INT(T, v) (v)
#define SC_STC_SCK_INT(T, c) (c)
#define SC_NAN_SCK_INT(x) 0

#define SC_A_SCK_LONG(T) uint64_t
#define SC_LDA_SCK_LONG(T, v) ((uint64_t)(v))
#define SC_STA_SCK_LONG(T, a) ((T)(a))
#define SC_SOT_SCK_LONG(T) T
#define SC_STS_SCK_LONG(T, a) ((T)(a))
#define SC_C_SCK_LONG(T) T
#define SC_LDC_SCK_LONG(T, v) (v)
#define SC_STC_SCK_LONG(T, c) (c)
#define SC_NAN_SCK_LONG(x) 0

#define SC_A_SCK_F16(T) float
#define SC_LDA_SCK_F16(T, v) lx_f16_to_f32(v)
#define SC_STA_SCK_F16(T, a) lx_f32_to_f16(a)
#define SC_SOT_SCK_F16(T) T
#define SC_STS_SCK_F16(T, a) lx_f32_to_f16(a)
#define SC_C_SCK_F16(T) float
#define SC_LDC_SCK_F16(T, v) lx_f16_to_f32(v)
#define SC_STC_SCK_F16(T, c) lx_f32_to_f16(c)
#define SC_NAN_SCK_F16(x) ((x) != (x))

#define SC_A_SCK_BF16(T) float
#define SC_LDA_SCK_BF16(T, v) lx_bf16_to_f32(v)
#define SC_STA_SCK_BF16(T, a) lx_f32_to_bf16(a)
#define SC_SOT_SCK_BF16(T) T
#define SC_STS_SCK_BF16(T, a) lx_f32_to_bf16(a)
#define SC_C_SCK_BF16(T) float
#define SC_LDC_SCK_BF16(T, v) lx_bf16_to_f32(v)
#define SC_STC_SCK_BF16(T, c) lx_f32_to_bf16(c)
#define SC_NAN_SCK_BF16(x) ((x) != (x))

#define SC_A_SCK_FLT(T) float
#define SC_LDA_SCK_FLT(T, v) (v)
#define SC_STA_SCK_FLT(T, a) (a)
#define SC_SOT_SCK_FLT(T) T
#define SC_STS_SCK_FLT(T, a) (a)
#define SC_C_SCK_FLT(T) float
#define SC_LDC_SCK_FLT(T, v) (v)
#define SC_STC_SCK_FLT(T, c) (c)
#define SC_NAN_SCK_FLT(x) ((x) != (x))

#define SC_A_SCK_DBL(T) double
#define SC_LDA_SCK_DBL(T, v) (v)
#define SC_STA_SCK_DBL(T, a) (a)
#define SC_SOT_SCK_DBL(T) T
#define SC_STS_SCK_DBL(T, a) (a)
#define SC_C_SCK_DBL(T) double
#define SC_LDC_SCK_DBL(T, v) (v)
#define SC_STC_SCK_DBL(T, c) (c)
#define SC_NAN_SCK_DBL(x) ((x) != (x))

#define SC_CAT2_(a, b) a##b
#define SC_CAT_(a, b) SC_CAT2_(a, b)
/* SC_K(WHAT, K) -> SC_WHAT_K for a class K (already expanded, e.g. SCK_INT) */
#define SC_K(what, K) SC_CAT_(SC_##what##_, K)

/* The combining steps (A: accumulator, X: new value). */
#define SC_SUM(K, a, x) ((a) + (x))
#define SC_PROD(K, a, x) ((a) * (x))
#define SC_MAX(K, a, x) (((x) > (a) || SC_CAT_(SC_NAN_, K)(x)) ? (x) : (a))
#define SC_MIN(K, a, x) (((x) < (a) || SC_CAT_(SC_NAN_, K)(x)) ? (x) : (a))

/* One block of the scan: rows (o, j0 + [0, nj)) of input type T, output type OT, carried in
 * V, loaded with LD and stored with ST, combined by COMB. */
#define SC_DEFINE_BLOCK(NAME, T, OT, V, LD, ST, COMB, K)                                       \
    static void NAME(const scan_ctx *c, int64_t o, int64_t j0, int64_t nj,                    \
                     const int64_t *joff) {                                                    \
        const int64_t n = c->g.n, inner = c->g.inner, s = c->g.axis_stride;                   \
        const T *in = (const T *)(const void *)c->in + lx_axis_rows_outer_off(&c->g, o);      \
        OT *out = (OT *)(void *)c->out + o * n * inner + j0;                                   \
        if (nj == 1) {                                                                         \
            const T *p = in + joff[0];                                                         \
            V acc = LD(T, p[0]);                                                               \
            out[0] = ST(OT, acc);                                                              \
            for (int64_t i = 1; i < n; i++) {                                                  \
                V x = LD(T, p[i * s]);                                                         \
                acc = COMB(K, acc, x);                                                         \
                out[i * inner] = ST(OT, acc);                                                  \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        V acc[SCAN_BLOCK];                                                                     \
        if (c->inner_unit) {                                                                   \
            const T *p = in + j0;                                                              \
            for (int64_t j = 0; j < nj; j++) {                                                 \
                acc[j] = LD(T, p[j]);                                                          \
                out[j] = ST(OT, acc[j]);                                                       \
            }                                                                                  \
            for (int64_t i = 1; i < n; i++) {                                                  \
                const T *pi = p + i * s;                                                       \
                OT *q = out + i * inner;                                                       \
                for (int64_t j = 0; j < nj; j++) {                                             \
                    V x = LD(T, pi[j]);                                                        \
                    acc[j] = COMB(K, acc[j], x);                                               \
                    q[j] = ST(OT, acc[j]);                                                     \
                }                                                                              \
            }                                                                                  \
        } else {                                                                               \
            for (int64_t j = 0; j < nj; j++) {                                                 \
                acc[j] = LD(T, in[joff[j]]);                                                   \
                out[j] = ST(OT, acc[j]);                                                       \
            }                                                                                  \
            for (int64_t i = 1; i < n; i++) {                                                  \
                const T *pi = in + i * s;                                                      \
                OT *q = out + i * inner;                                                       \
                for (int64_t j = 0; j < nj; j++) {                                             \
                    V x = LD(T, pi[joff[j]]);                                                  \
                    acc[j] = COMB(K, acc[j], x);                                               \
                    q[j] = ST(OT, acc[j]);                                                     \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* Names are pasted here, where the short name S is not macro-expanded (`bool` is a macro). */
#define SC_DEFINE_DTYPE(E, T, S)                                                               \
    SC_DEFINE_ALL(T, SC_CLASS_##S, scan_sum_##S, scan_prod_##S, scan_max_##S, scan_min_##S)
#define SC_DEFINE_ALL(T, K, NSUM, NPROD, NMAX, NMIN)                                           \
    SC_DEFINE_BLOCK(NSUM, T, SC_K(SOT, K)(T), SC_K(A, K)(T), SC_K(LDA, K), SC_K(STS, K),      \
                    SC_SUM, K)                                                                 \
    SC_DEFINE_BLOCK(NPROD, T, T, SC_K(A, K)(T), SC_K(LDA, K), SC_K(STA, K), SC_PROD, K)       \
    SC_DEFINE_BLOCK(NMAX, T, T, SC_K(C, K)(T), SC_K(LDC, K), SC_K(STC, K), SC_MAX, K)         \
    SC_DEFINE_BLOCK(NMIN, T, T, SC_K(C, K)(T), SC_K(LDC, K), SC_K(STC, K), SC_MIN, K)
LX_FOR_EACH_DTYPE(SC_DEFINE_DTYPE)

static const scan_block_fn scan_table[LX_DTYPE_COUNT][4] = {
#define SC_ENTRY(E, T, S)                                                                      \
    [E] = {[LX_SCAN_SUM] = scan_sum_##S, [LX_SCAN_PROD] = scan_prod_##S,                      \
           [LX_SCAN_MAX] = scan_max_##S, [LX_SCAN_MIN] = scan_min_##S},
    LX_FOR_EACH_DTYPE(SC_ENTRY)
#undef SC_ENTRY
};

static void scan_range(void *vc, int64_t begin, int64_t end) {
    const scan_ctx *c = vc;
    int64_t joff[SCAN_BLOCK];
    for (int64_t t = begin; t < end; t++) {
        int64_t o = t / c->nblk, j0 = (t % c->nblk) * SCAN_BLOCK;
        int64_t nj = c->g.inner - j0 < SCAN_BLOCK ? c->g.inner - j0 : SCAN_BLOCK;
        if (c->inner_unit) {
            joff[0] = j0; /* only read when nj == 1 */
        } else {
            for (int64_t j = 0; j < nj; j++) joff[j] = lx_axis_rows_inner_off(&c->g, j0 + j);
        }
        c->fn(c, o, j0, nj, joff);
    }
}

lx_status LX_CPU_KERNEL(SCAN)(lx_kctx *kctx, lx_node *out) {
    const lx_node *in = out->inputs[0];
    const lx_scan_params *p = out->params;
    if (out->size == 0) return LX_OK;
    if (!p || p->op < 0 || p->op > LX_SCAN_MIN || p->axis < 0 || p->axis >= in->ndim ||
        !lx_dtype_valid(in->dtype))
        return lx_set_error(LX_E_INTERNAL, "%s: bad SCAN parameters", out->op);
    scan_ctx c;
    lx_axis_rows_init(&c.g, in, p->axis);
    c.in = lx_node_ptr(in);
    c.out = lx_node_ptr(out);
    c.inner_unit = lx_axis_rows_inner_unit(&c.g);
    c.nblk = (c.g.inner + SCAN_BLOCK - 1) / SCAN_BLOCK;
    c.fn = scan_table[in->dtype][p->op];
    int64_t per_task = c.g.n * (c.g.inner < SCAN_BLOCK ? c.g.inner : SCAN_BLOCK);
    int64_t grain = per_task >= 32768 ? 1 : 32768 / per_task;
    lx_parallel_for(c.g.outer * c.nblk, grain, scan_range, &c);
    return LX_OK;
}
