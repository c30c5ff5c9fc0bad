/*
 * copy.c -- CPU kernels COPY (any dtype to any dtype, from any strided input into the
 * row-contiguous output), FULL (fill with a value) and ARANGE (start + i * step).
 *
 * Conversions follow values.h: integer -> integer wraps, float -> integer truncates after
 * clamping to the destination's range with NaN -> 0, anything -> bool is (v != 0), and
 * float16/bfloat16 results are rounded to nearest even once, keeping NaN and Inf.
 * A same-dtype copy moves elements of 1, 2, 4 or 8 bytes (NaN payloads and all). A converting
 * copy widens a chunk of the input into its value class (iter.h's lx_chunk_load_<s>) and
 * narrows it into the output: lx_chunk_store_<s> from the dtype's own class (float16 <->
 * float32 through F16C where available), otherwise one storer per (dtype, class) pair, all
 * expanded from LX_FOR_EACH_DTYPE. Transposed inputs are walked in tiles (iter.h).
 */
#include "backend/cpu/iter.h"

/* ---- loaders (iter.h's lx_chunk_load_<s>) and storers: class C values -> dtype S ---- */
typedef void (*load_fn)(const void *p, int64_t stride, void *buf, int64_t n);
typedef void (*store_fn)(const void *buf, void *out, int64_t n);

/* ---- storers: class C values -> row-contiguous dtype S ---- */
/* (S is pasted before being passed on: `bool` is itself a macro.) */
#define DEF_STORE1(NAME, ST, CVT, CT)                                                      \
    static void NAME(const void *buf, void *out, int64_t n) {                              \
        const CT *b = buf;                                                                 \
        ST *y = (ST *)out;                                                                 \
        for (int64_t i = 0; i < n; i++) y[i] = CVT(b[i]);                                  \
    }
#define DEF_STORE(E, T, S)                                                                 \
    DEF_STORE1(store_##S##_U, LX_ST_##S, lx_cvt_##S##_U, uint64_t)                         \
    DEF_STORE1(store_##S##_I, LX_ST_##S, lx_cvt_##S##_I, int64_t)                          \
    DEF_STORE1(store_##S##_F, LX_ST_##S, lx_cvt_##S##_F, float)                            \
    DEF_STORE1(store_##S##_D, LX_ST_##S, lx_cvt_##S##_D, double)
LX_FOR_EACH_DTYPE(DEF_STORE)
#undef DEF_STORE
#undef DEF_STORE1

static const load_fn loaders[LX_DTYPE_COUNT] = {
#define X(E, T, S) [E] = lx_chunk_load_##S,
    LX_FOR_EACH_DTYPE(X)
#undef X
};

static const store_fn storers[LX_DTYPE_COUNT][4] = {
#define X(E, T, S) [E] = {store_##S##_U, store_##S##_I, store_##S##_F, store_##S##_D},
    LX_FOR_EACH_DTYPE(X)
#undef X
};

/* From the dtype's own class (the fast paths, e.g. F16C for float16). */
static const store_fn own_storers[LX_DTYPE_COUNT] = {
#define X(E, T, S) [E] = lx_chunk_store_##S,
    LX_FOR_EACH_DTYPE(X)
#undef X
};

/* ---- same dtype: move elements of 1, 2, 4 or 8 bytes ---- */
#define DEF_MOVE(BITS)                                                                     \
    static void move_row_##BITS(void *ctx, char *out, const char *const *in,               \
                                const int64_t *st, int64_t n) {                            \
        const uint##BITS##_t *x = (const uint##BITS##_t *)in[0];                           \
        uint##BITS##_t *y = (uint##BITS##_t *)out;                                         \
        int64_t s = st[0];                                                                 \
        if (s == 1) {                                                                      \
            memmove(y, x, (size_t)n * sizeof *y); /* out may be in's buffer */             \
        } else if (s == 0) {                                                               \
            uint##BITS##_t v = x[0];                                                       \
            for (int64_t i = 0; i < n; i++) y[i] = v;                                      \
        } else {                                                                           \
            for (int64_t i = 0; i < n; i++) y[i] = x[i * s];                               \
        }                                                                                  \
    }
DEF_MOVE(8)
DEF_MOVE(16)
DEF_MOVE(32)
DEF_MOVE(64)
#undef DEF_MOVE

typedef struct {
    load_fn load;
    store_fn store;
    int64_t in_es, out_es;
} convert_ctx;

static void convert_row(void *c, char *out, const char *const *in, const int64_t *st,
                        int64_t n) {
    const convert_ctx *ctx = c;
    lx_chunk_buf buf;
    for (int64_t i = 0; i < n; i += LX_CHUNK) {
        int64_t m = n - i < LX_CHUNK ? n - i : LX_CHUNK;
        /* the whole chunk is read before any of it is written: safe when out is in's buffer */
        ctx->load(in[0] + i * st[0] * ctx->in_es, st[0], &buf, m);
        ctx->store(&buf, out + i * ctx->out_es, m);
    }
}

lx_status LX_CPU_KERNEL(COPY)(lx_kctx *kctx, lx_node *out) {
    if (out->n_inputs != 1) return lx_set_error(LX_E_INTERNAL, "%s: copy needs one input", out->op);
    lx_node *in = out->inputs[0];
    if (in->size != out->size)
        return lx_set_error(LX_E_INTERNAL, "%s: copy of %lld elements into %lld", out->op,
                            (long long)in->size, (long long)out->size);
    if (out->size == 0) return LX_OK;
    lx_iter it;
    if (in->ndim == out->ndim && memcmp(in->shape, out->shape, sizeof(int32_t) * out->ndim) == 0) {
        lx_iter_init(&it, out, &in, 1);
    } else {
        /* same element count, other shape (a reshape that could not be a view): walk the
         * input in its own row-major order into the flat output */
        lx_node flat = *out;
        flat.ndim = in->ndim;
        memcpy(flat.shape, in->shape, sizeof flat.shape);
        lx_iter_init(&it, &flat, &in, 1);
    }
    if (in->dtype == out->dtype) {
        static const lx_iter_row_fn moves[9] = {
            [1] = move_row_8, [2] = move_row_16, [4] = move_row_32, [8] = move_row_64};
        size_t es = lx_dtype_size((lx_dtype)out->dtype);
        if (es > 8 || !moves[es]) return lx_set_error(LX_E_INTERNAL, "%s: bad dtype", out->op);
        lx_iter_run(&it, LX_ITER_GRAIN * 4, moves[es], NULL);
        return LX_OK;
    }
    int cls = lx_dtype_class((lx_dtype)in->dtype);
    convert_ctx ctx = {loaders[in->dtype],
                       cls == lx_dtype_class((lx_dtype)out->dtype) ? own_storers[out->dtype]
                                                                   : storers[out->dtype][cls],
                       (int64_t)lx_dtype_size((lx_dtype)in->dtype),
                       (int64_t)lx_dtype_size((lx_dtype)out->dtype)};
    lx_iter_run(&it, LX_ITER_GRAIN, convert_row, &ctx);
    return LX_OK;
}

/* ---- FULL ---- */

typedef struct {
    char *out;
    unsigned char value[8];
    size_t es;
} fill_ctx;

static void fill_range(void *c, int64_t b, int64_t e) {
    const fill_ctx *ctx = c;
    switch (ctx->es) {
#define FILL(BITS)                                                                         \
    case BITS / 8: {                                                                       \
        uint##BITS##_t v;                                                                  \
        memcpy(&v, ctx->value, sizeof v);                                                  \
        uint##BITS##_t *y = (uint##BITS##_t *)ctx->out;                                    \
        for (int64_t i = b; i < e; i++) y[i] = v;                                          \
        break;                                                                             \
    }
        FILL(16)
        FILL(32)
        FILL(64)
#undef FILL
    default:
        memset(ctx->out + b, ctx->value[0], (size_t)(e - b));
    }
}

lx_status LX_CPU_KERNEL(FULL)(lx_kctx *kctx, lx_node *out) {
    const lx_full_params *p = out->params;
    if (!p || out->params_size < sizeof *p)
        return lx_set_error(LX_E_INTERNAL, "%s: full without a value", out->op);
    fill_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.out = lx_node_ptr(out);
    ctx.es = lx_dtype_size((lx_dtype)out->dtype);
    double v = p->value;
    storers[out->dtype][LX_CLASS_D](&v, ctx.value, 1);
    lx_parallel_for(out->size, LX_ITER_GRAIN * 4, fill_range, &ctx);
    return LX_OK;
}

/* ---- ARANGE ---- */

typedef struct {
    char *out;
    size_t es;
    double start, step;
    store_fn store;
} arange_ctx;

static void arange_range(void *c, int64_t b, int64_t e) {
    const arange_ctx *ctx = c;
    double buf[LX_CHUNK];
    for (int64_t i = b; i < e; i += LX_CHUNK) {
        int64_t m = e - i < LX_CHUNK ? e - i : LX_CHUNK;
        /* i * step + start as one multiply-add where the variant has FMA, whatever the
         * contraction setting (this file is compiled with -ffp-contract=off) */
        for (int64_t j = 0; j < m; j++)
            buf[j] = LX_EW_FMA((double)(i + j), ctx->step, ctx->start);
        ctx->store(buf, ctx->out + i * (int64_t)ctx->es, m);
    }
}

lx_status LX_CPU_KERNEL(ARANGE)(lx_kctx *kctx, lx_node *out) {
    const lx_arange_params *p = out->params;
    if (!p || out->params_size < sizeof *p)
        return lx_set_error(LX_E_INTERNAL, "%s: arange without parameters", out->op);
    arange_ctx ctx = {lx_node_ptr(out), lx_dtype_size((lx_dtype)out->dtype), p->start, p->step,
                      storers[out->dtype][LX_CLASS_D]};
    lx_parallel_for(out->size, LX_ITER_GRAIN, arange_range, &ctx);
    return LX_OK;
}
