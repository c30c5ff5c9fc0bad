/*
 * fused.c -- the CPU kernels of compile: FUSED (a fused group of elementwise ops, one program
 * of graph/fused.h) and PLACEHOLDER (a traced input, which is never computed).
 *
 * FUSED streams over the output in tiles: for each tile of up to TILE consecutive elements it
 * runs the program instruction by instruction, each over the whole tile, on registers that are
 * small arrays on the stack (a few KiB each: the live ones stay in L1). Inputs are read once
 * and outputs written once, so a chain of n ops makes one pass over memory instead of n.
 * Tiles are spread over the thread pool. Register values are kept in their value class
 * (iter.h: float for float16/bfloat16/float32, double, int64, uint64) and every instruction
 * narrows its result to its dtype and widens it back, which is exactly what storing and
 * reloading between separate kernels does. The per-element math is elementwise_ops.h, the same
 * definitions the UNARY and BINARY kernels use, and conversions are iter.h's, as COPY's.
 *
 * Native code: when fused_gen.c has (or decides to make) a compiled function for the program,
 * the kernel calls it instead over the same ranges; strided inputs are first gathered into
 * contiguous tiles of raw elements. Both paths give the same bits.
 */
#include "graph/elementwise_ops.h"
#include "backend/cpu/iter.h"
#include "backend/cpu/fused_native.h"
#include "graph/fused.h"

/* Elements per tile, and the stack bytes for registers (each 8 bytes per element). */
#define TILE_MAX 1024
#define SCRATCH_BYTES (48 * 1024)

lx_status LX_CPU_KERNEL(PLACEHOLDER)(lx_kctx *kctx, lx_node *out) {
    return lx_set_error(LX_E_ARG,
                        "%s: an input of a compiled function was evaluated while it was being "
                        "traced; a compiled function must not evaluate, read or wait for values "
                        "computed from its inputs",
                        out->op ? out->op : "lx_call");
}

/* ---- class kernels over a tile ------------------------------------------------------------ */

/* Narrows each value to dtype S and widens it back (the effect of storing and reloading). */
#define DEF_ROUND(E, T, S)                                                                  \
    static inline void round_##S(void *buf, int64_t n) {                                           \
        typedef LX_ICAT_(LX_CT_, LX_CLS_##S) CT;                                            \
        CT *x = buf;                                                                        \
        for (int64_t i = 0; i < n; i++)                                                     \
            x[i] = LX_LOAD_##S(LX_ICAT_(lx_cvt_##S##_, LX_CLS_##S)(x[i]));                  \
    }
LX_FOR_EACH_DTYPE(DEF_ROUND)
#undef DEF_ROUND
/* the half floats' round trips without leaving float (values.h): the same bits, vectorized */
static void round_f16_fast(void *buf, int64_t n) { lx_round_f16_n(buf, n); }
static void round_bf16_fast(void *buf, int64_t n) {
    float *x = buf;
    for (int64_t i = 0; i < n; i++) x[i] = lx_round_bf16_F(x[i]);
}

typedef void (*round_fn)(void *buf, int64_t n);
static const round_fn rounders[LX_DTYPE_COUNT] = {
    [LX_BOOL] = round_bool,   [LX_UINT8] = round_u8,  [LX_UINT16] = round_u16,
    [LX_UINT32] = round_u32,  [LX_UINT64] = NULL,     [LX_INT8] = round_i8,
    [LX_INT16] = round_i16,   [LX_INT32] = round_i32, [LX_INT64] = NULL,
    [LX_FLOAT16] = round_f16_fast, [LX_BFLOAT16] = round_bf16_fast, [LX_FLOAT32] = NULL,
    [LX_FLOAT64] = NULL,
};

/* Loaders: a strided run of dtype S to class values. */
#define DEF_LOAD(E, T, S)                                                                   \
    static void load_##S(const char *p, int64_t s, void *buf, int64_t n) {                  \
        const LX_ST_##S *x = (const LX_ST_##S *)(const void *)p;                            \
        LX_ICAT_(LX_CT_, LX_CLS_##S) *b = buf;                                              \
        if (s == 1)                                                                         \
            for (int64_t i = 0; i < n; i++) b[i] = LX_LOAD_##S(x[i]);                       \
        else if (s == 0) {                                                                  \
            LX_ICAT_(LX_CT_, LX_CLS_##S) v = LX_LOAD_##S(x[0]);                             \
            for (int64_t i = 0; i < n; i++) b[i] = v;                                       \
        } else                                                                              \
            for (int64_t i = 0; i < n; i++) b[i] = LX_LOAD_##S(x[i * s]);                   \
    }
LX_FOR_EACH_DTYPE(DEF_LOAD)
#undef DEF_LOAD

typedef void (*load_fn)(const char *p, int64_t stride, void *buf, int64_t n);
static const load_fn loaders[LX_DTYPE_COUNT] = {
#define X(E, T, S) [E] = load_##S,
    LX_FOR_EACH_DTYPE(X)
#undef X
};

/* Copiers: a strided run of dtype S, as stored (native code's gathered tiles). */
#define DEF_COPY(E, T, S)                                                                   \
    static void copy_##S(const char *p, int64_t s, void *buf, int64_t n) {                  \
        const LX_ST_##S *x = (const LX_ST_##S *)(const void *)p;                            \
        LX_ST_##S *b = buf;                                                                 \
        for (int64_t i = 0; i < n; i++) b[i] = x[i * s];                                    \
    }
LX_FOR_EACH_DTYPE(DEF_COPY)
#undef DEF_COPY
static const load_fn copiers[LX_DTYPE_COUNT] = {
#define X(E, T, S) [E] = copy_##S,
    LX_FOR_EACH_DTYPE(X)
#undef X
};

/* Storers and casts: class C values to dtype S (stored, or widened back into S's class).
 * (Names are pasted before being passed on: `bool` is itself a macro.) */
#define DEF_CVT1(STORE, CAST, ST, CTS, CVT, LOAD, CT)                                       \
    static void STORE(const void *buf, char *out, int64_t n) {                              \
        const CT *b = buf;                                                                  \
        ST *y = (ST *)(void *)out;                                                          \
        for (int64_t i = 0; i < n; i++) y[i] = CVT(b[i]);                                   \
    }                                                                                       \
    static void CAST(const void *buf, void *out, int64_t n) {                               \
        const CT *b = buf;                                                                  \
        CTS *y = out;                                                                       \
        if (sizeof(CTS) > sizeof(CT)) /* widening, maybe in place: last element first */    \
            for (int64_t i = n - 1; i >= 0; i--) y[i] = LOAD(CVT(b[i]));                    \
        else                                                                                \
            for (int64_t i = 0; i < n; i++) y[i] = LOAD(CVT(b[i]));                         \
    }
#define DEF_CVT(E, T, S)                                                                    \
    DEF_CVT1(store_##S##_U, cast_##S##_U, LX_ST_##S, LX_ICAT_(LX_CT_, LX_CLS_##S),          \
             lx_cvt_##S##_U, LX_LOAD_##S, uint64_t)                                         \
    DEF_CVT1(store_##S##_I, cast_##S##_I, LX_ST_##S, LX_ICAT_(LX_CT_, LX_CLS_##S),          \
             lx_cvt_##S##_I, LX_LOAD_##S, int64_t)                                          \
    DEF_CVT1(store_##S##_F, cast_##S##_F, LX_ST_##S, LX_ICAT_(LX_CT_, LX_CLS_##S),          \
             lx_cvt_##S##_F, LX_LOAD_##S, float)                                            \
    DEF_CVT1(store_##S##_D, cast_##S##_D, LX_ST_##S, LX_ICAT_(LX_CT_, LX_CLS_##S),          \
             lx_cvt_##S##_D, LX_LOAD_##S, double)
LX_FOR_EACH_DTYPE(DEF_CVT)
#undef DEF_CVT
#undef DEF_CVT1

typedef void (*store_fn)(const void *buf, char *out, int64_t n);
typedef void (*cast_fn)(const void *buf, void *out, int64_t n);
static const store_fn storers[LX_DTYPE_COUNT][4] = {
#define X(E, T, S) [E] = {store_##S##_U, store_##S##_I, store_##S##_F, store_##S##_D},
    LX_FOR_EACH_DTYPE(X)
#undef X
};
static const cast_fn casts[LX_DTYPE_COUNT][4] = {
#define X(E, T, S) [E] = {cast_##S##_U, cast_##S##_I, cast_##S##_F, cast_##S##_D},
    LX_FOR_EACH_DTYPE(X)
#undef X
};

static void widen_bytes(const uint8_t *src, uint64_t *dst, int64_t n) {
    for (int64_t i = n - 1; i >= 0; i--) dst[i] = src[i]; /* dst may start at src */
}

static void run_unary(int cls, int op, const void *x, void *y, int64_t n) {
    switch (cls) {
    case LX_CLASS_F: lx_ew_unary_F(op, x, y, n); break;
    case LX_CLASS_D: lx_ew_unary_D(op, x, y, n); break;
    case LX_CLASS_I: lx_ew_unary_I(op, x, y, n); break;
    default: lx_ew_unary_U(op, x, y, n); break;
    }
}

static void run_unary_pred(int cls, int op, const void *x, uint8_t *y, int64_t n) {
    switch (cls) {
    case LX_CLASS_F: lx_ew_unary_pred_F(op, x, y, n); break;
    case LX_CLASS_D: lx_ew_unary_pred_D(op, x, y, n); break;
    case LX_CLASS_I: lx_ew_unary_pred_I(op, x, y, n); break;
    default: lx_ew_unary_pred_U(op, x, y, n); break;
    }
}

static void run_binary(int cls, int op, const void *a, const void *b, void *y, int64_t n) {
    switch (cls) {
    case LX_CLASS_F: lx_ew_binary_F(op, a, b, y, n); break;
    case LX_CLASS_D: lx_ew_binary_D(op, a, b, y, n); break;
    case LX_CLASS_I: lx_ew_binary_I(op, a, b, y, n); break;
    default: lx_ew_binary_U(op, a, b, y, n); break;
    }
}

/* A class value (a constant operand). */
typedef union {
    float f;
    double d;
    int64_t i;
    uint64_t u;
} cval;

/* op(a[i], s) (swap false) or op(s, a[i]) (swap true) for a scalar operand s */
/* A binary op between a tile and a scalar s (s first when swap), per class: the value ops'
 * loops (results in the class) and the predicates' (bytes). */
#define DEF_RUN_SCALAR(NAME, PFX, YT)                                                       \
    static void NAME(int cls, int op, const void *a, cval s, bool swap, YT *y, int64_t n) { \
        switch (cls) {                                                                      \
        case LX_CLASS_F:                                                                    \
            if (swap) PFX##sv_F(op, s.f, a, (void *)y, n);                                  \
            else PFX##vs_F(op, a, s.f, (void *)y, n);                                       \
            break;                                                                          \
        case LX_CLASS_D:                                                                    \
            if (swap) PFX##sv_D(op, s.d, a, (void *)y, n);                                  \
            else PFX##vs_D(op, a, s.d, (void *)y, n);                                       \
            break;                                                                          \
        case LX_CLASS_I:                                                                    \
            if (swap) PFX##sv_I(op, s.i, a, (void *)y, n);                                  \
            else PFX##vs_I(op, a, s.i, (void *)y, n);                                       \
            break;                                                                          \
        default:                                                                            \
            if (swap) PFX##sv_U(op, s.u, a, (void *)y, n);                                  \
            else PFX##vs_U(op, a, s.u, (void *)y, n);                                       \
            break;                                                                          \
        }                                                                                   \
    }
DEF_RUN_SCALAR(run_binary_scalar, lx_ew_binary_, void)
DEF_RUN_SCALAR(run_binary_pred_scalar, lx_ew_binary_pred_, uint8_t)
#undef DEF_RUN_SCALAR

static void run_binary_pred(int cls, int op, const void *a, const void *b, uint8_t *y,
                            int64_t n) {
    switch (cls) {
    case LX_CLASS_F: lx_ew_binary_pred_F(op, a, b, y, n); break;
    case LX_CLASS_D: lx_ew_binary_pred_D(op, a, b, y, n); break;
    case LX_CLASS_I: lx_ew_binary_pred_I(op, a, b, y, n); break;
    default: lx_ew_binary_pred_U(op, a, b, y, n); break;
    }
}

static void run_where(int cls, const uint64_t *c, const void *a, const void *b, void *y,
                      int64_t n) {
    if (cls == LX_CLASS_F) {
        const float *pa = a, *pb = b;
        float *py = y;
        for (int64_t i = 0; i < n; i++) py[i] = c[i] ? pa[i] : pb[i];
    } else { /* 8-byte classes: move the bits */
        const uint64_t *pa = a, *pb = b;
        uint64_t *py = y;
        for (int64_t i = 0; i < n; i++) py[i] = c[i] ? pa[i] : pb[i];
    }
}

/* ---- the kernel ------------------------------------------------------------------------- */

typedef struct {
    const lx_fused_header *h;
    const lx_fused_instr *code;
    int nd;                                  /* collapsed dims, >= 1 */
    int64_t shape[LX_MAX_NDIM];
    int64_t strides[LX_FUSED_MAX_IN][LX_MAX_NDIM];
    const char *in[LX_FUSED_MAX_IN];
    uint8_t in_dtype[LX_FUSED_MAX_IN];
    bool in_contig[LX_FUSED_MAX_IN];         /* stride 1 over the whole (collapsed) range */
    bool in_const[LX_FUSED_MAX_IN];          /* stride 0 everywhere: one value */
    char *out[LX_FUSED_MAX_OUT];
    int64_t size;
    int tile;
} fused_job;

/* Input k's elements [p, p + n) in logical order into buf, by runs along the last
 * dimension: load(src, stride, dst, run) converts a run into elements of bs bytes. */
static void gather_runs(const fused_job *job, int k, int64_t p, int64_t n, void *buf,
                        load_fn load, size_t bs) {
    const size_t es = lx_dtype_size((lx_dtype)job->in_dtype[k]);
    const int nd = job->nd, last = nd - 1;
    const int64_t *st = job->strides[k];
    if (nd == 1) {
        load(job->in[k] + p * st[0] * (int64_t)es, st[0], buf, n);
        return;
    }
    int64_t idx[LX_MAX_NDIM], rem = p, off = 0;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % job->shape[d];
        rem /= job->shape[d];
    }
    for (int d = 0; d < nd; d++) off += idx[d] * st[d];
    char *b = buf;
    int64_t done = 0;
    while (done < n) {
        int64_t run = job->shape[last] - idx[last];
        if (run > n - done) run = n - done;
        load(job->in[k] + off * (int64_t)es, st[last], b + done * (int64_t)bs, run);
        done += run;
        if (done >= n) break;
        idx[last] += run;
        off += run * st[last];
        for (int d = last; d > 0 && idx[d] == job->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
            off += st[d - 1] - job->shape[d] * st[d];
        }
    }
}

/* ... as class values (the interpreter's registers) */
static void gather(const fused_job *job, int k, int64_t p, int64_t n, void *buf) {
    const lx_dtype t = (lx_dtype)job->in_dtype[k];
    gather_runs(job, k, p, n, buf, loaders[t],
                lx_dtype_class(t) == LX_CLASS_F ? sizeof(float) : 8);
}

/* Fills a CONST's register (and returns its value in its class). */
static cval fill_const(const lx_fused_instr *ins, void *dst, int64_t n) {
    lx_dtype t = (lx_dtype)ins->dtype;
    double v = ins->imm;
    cval c;
    memset(&c, 0, sizeof c);
    switch (lx_dtype_class(t)) {
    case LX_CLASS_F: {
        casts[t][LX_CLASS_D](&v, &c.f, 1);
        float *y = dst;
        for (int64_t i = 0; i < n; i++) y[i] = c.f;
        break;
    }
    default: {
        casts[t][LX_CLASS_D](&v, &c.u, 1);
        uint64_t *y = dst;
        for (int64_t i = 0; i < n; i++) y[i] = c.u;
    }
    }
    return c;
}

static void fused_range(void *ctx, int64_t begin, int64_t end) {
    const fused_job *job = ctx;
    const lx_fused_header *h = job->h;
    const lx_fused_instr *code = job->code;
    const int T = job->tile;
    _Alignas(64) unsigned char scratch[SCRATCH_BYTES];
    uint8_t pred[TILE_MAX];
    void *reg[256];       /* where each register's values are (scratch or input memory) */
    void *home[256];      /* each register's scratch */
    for (int r = 0; r < h->n_regs; r++) home[r] = reg[r] = scratch + (size_t)r * (size_t)T * 8;
    /* CONSTs: filled once (as far as this range's first tile reaches: on tiny arrays filling
     * whole tiles cost more than the program), never overwritten; binary ops read them as
     * scalars */
    const int64_t fill_n = end - begin < T ? end - begin : T;
    bool skip[LX_FUSED_MAX_INSTR];
    bool is_const[256];
    memset(is_const, 0, (size_t)h->n_regs); /* the program's registers (check_program) */
    cval cv[256];
    for (int i = 0; i < h->n_instr; i++) {
        const lx_fused_instr *ins = &code[i];
        skip[i] = false;
        if (ins->op == LX_FOP_CONST) {
            cv[ins->dst] = fill_const(ins, home[ins->dst], fill_n);
            is_const[ins->dst] = true;
            skip[i] = true;
        }
    }
    for (int64_t p = begin; p < end; p += T) {
        const int64_t n = end - p < T ? end - p : T;
        for (int i = 0; i < h->n_instr; i++) {
            if (skip[i]) continue;
            const lx_fused_instr *ins = &code[i];
            const lx_dtype t = (lx_dtype)ins->dtype;
            void *y = home[ins->dst];
            switch (ins->op) {
            case LX_FOP_LOAD: {
                int k = ins->a;
                lx_dtype it = (lx_dtype)job->in_dtype[k];
                if (job->in_contig[k] && lx_dtype_is_direct(it)) { /* read in place */
                    reg[ins->dst] = (void *)(job->in[k] + p * (int64_t)lx_dtype_size(it));
                    continue;
                }
                if (job->in_const[k]) loaders[it](job->in[k], 0, y, n);
                else gather(job, k, p, n, y);
                break;
            }
            case LX_FOP_UNARY: {
                const void *x = reg[ins->a];
                int cls = lx_dtype_class((lx_dtype)ins->adtype);
                if (lx_unary_op_is_pred(ins->sub)) {
                    run_unary_pred(cls, ins->sub, x, pred, n);
                    widen_bytes(pred, y, n);
                } else {
                    run_unary(cls, ins->sub, x, y, n);
                    if (rounders[t]) rounders[t](y, n);
                }
                break;
            }
            case LX_FOP_BINARY: {
                const void *a = reg[ins->a], *b = reg[ins->b];
                int cls = lx_dtype_class((lx_dtype)ins->adtype);
                bool pr = lx_binary_op_is_pred(ins->sub);
                if (is_const[ins->b] && !is_const[ins->a]) {
                    if (pr) run_binary_pred_scalar(cls, ins->sub, a, cv[ins->b], false, pred, n);
                    else run_binary_scalar(cls, ins->sub, a, cv[ins->b], false, y, n);
                } else if (is_const[ins->a] && !is_const[ins->b]) {
                    if (pr) run_binary_pred_scalar(cls, ins->sub, b, cv[ins->a], true, pred, n);
                    else run_binary_scalar(cls, ins->sub, b, cv[ins->a], true, y, n);
                } else if (pr) {
                    run_binary_pred(cls, ins->sub, a, b, pred, n);
                } else {
                    run_binary(cls, ins->sub, a, b, y, n);
                }
                if (pr) widen_bytes(pred, y, n);
                else if (rounders[t]) rounders[t](y, n);
                break;
            }
            case LX_FOP_WHERE:
                run_where(lx_dtype_class(t), reg[ins->a], reg[ins->b], reg[ins->c], y, n);
                break;
            case LX_FOP_CAST:
                casts[t][lx_dtype_class((lx_dtype)ins->adtype)](reg[ins->a], y, n);
                break;
            case LX_FOP_STORE: {
                int j = ins->b;
                storers[t][lx_dtype_class(t)](reg[ins->a],
                                              job->out[j] + p * (int64_t)lx_dtype_size(t), n);
                continue;
            }
            default:
                break;
            }
            reg[ins->dst] = y;
        }
    }
}

/* ---- native code ------------------------------------------------------------------------ */

typedef struct {
    const fused_job *job;
    lx_fused_native_fn fn;
    uint8_t kind[LX_FUSED_MAX_IN]; /* 0: contiguous in memory, 1: one value, 2: gather */
} native_job;

static void native_range(void *ctx, int64_t begin, int64_t end) {
    const native_job *nj = ctx;
    const fused_job *job = nj->job;
    const lx_fused_header *h = job->h;
    const void *in[LX_FUSED_MAX_IN];
    void *out[LX_FUSED_MAX_OUT];
    int n_gather = 0;
    for (int k = 0; k < h->n_in; k++) n_gather += nj->kind[k] == 2;
    if (n_gather == 0) { /* one call for the whole range */
        for (int k = 0; k < h->n_in; k++)
            in[k] = nj->kind[k] == 1 ? job->in[k]
                                     : job->in[k] + begin * (int64_t)lx_dtype_size(
                                                                (lx_dtype)job->in_dtype[k]);
        for (int j = 0; j < h->n_out; j++)
            out[j] = job->out[j] + begin * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[j]);
        nj->fn(end - begin, in, out);
        return;
    }
    /* tiles: gathered inputs in stack buffers (at most 8 bytes an element) */
    _Alignas(64) unsigned char scratch[SCRATCH_BYTES];
    int64_t T = SCRATCH_BYTES / (8 * n_gather);
    if (T > TILE_MAX) T = TILE_MAX;
    for (int64_t p = begin; p < end; p += T) {
        const int64_t n = end - p < T ? end - p : T;
        int g = 0;
        for (int k = 0; k < h->n_in; k++) {
            const int64_t es = (int64_t)lx_dtype_size((lx_dtype)job->in_dtype[k]);
            if (nj->kind[k] == 1) in[k] = job->in[k];
            else if (nj->kind[k] == 0) in[k] = job->in[k] + p * es;
            else {
                void *buf = scratch + (size_t)g++ * (size_t)T * 8;
                gather_runs(job, k, p, n, buf, copiers[job->in_dtype[k]],
                            lx_dtype_size((lx_dtype)job->in_dtype[k]));
                in[k] = buf;
            }
        }
        for (int j = 0; j < h->n_out; j++)
            out[j] = job->out[j] + p * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[j]);
        nj->fn(n, in, out);
    }
}

#define LX_FUSED_STR2_(x) #x
#define LX_FUSED_STR_(x) LX_FUSED_STR2_(x)

/* Runs the program through native code when there is some for it; false otherwise. */
static bool run_native(const lx_node *out, const fused_job *job, int64_t grain) {
    const lx_fused_header *h = job->h;
    native_job nj;
    uint8_t key_kind[LX_FUSED_MAX_IN];
    nj.job = job;
    for (int k = 0; k < h->n_in; k++) {
        nj.kind[k] = job->in_const[k] ? 1 : (job->in_contig[k] ? 0 : 2);
        key_kind[k] = nj.kind[k] == 1; /* the generated code only tells scalars apart */
    }
    nj.fn = lx_fused_native(h, out->params_size, key_kind, LX_FUSED_STR_(LX_CPU_VARIANT),
                            job->size);
    if (!nj.fn) return false;
    lx_fused_native_count_run();
    lx_parallel_for(job->size, grain, native_range, &nj);
    return true;
}

static lx_status bad_program(const lx_node *out, const char *why) {
    return lx_set_error(LX_E_INTERNAL, "%s: malformed fused program (%s)",
                        out->op ? out->op : "FUSED", why);
}

/* Register r holds a value: within the program's registers (only those are cleared) and set. */
static inline bool is_def(const bool *defined, const lx_fused_header *h, int r) {
    return r < h->n_regs && defined[r];
}

/* Checks the program against the node before running it. */
static lx_status check_program(const lx_node *out, const lx_fused_header *h) {
    if (!h || out->params_size < sizeof *h || h->version != LX_FUSED_VERSION)
        return bad_program(out, "header");
    if (out->params_size != lx_fused_params_size(h->n_instr) || h->n_instr > LX_FUSED_MAX_INSTR)
        return bad_program(out, "size");
    if (h->n_in != out->n_inputs || h->n_in > LX_FUSED_MAX_IN || h->n_out < 1 ||
        h->n_out > LX_FUSED_MAX_OUT || h->n_regs > 255 || h->ndim > LX_MAX_NDIM)
        return bad_program(out, "counts");
    const lx_fused_instr *code = lx_fused_code(h);
    uint8_t regt[256];
    bool defined[256];
    memset(defined, 0, h->n_regs); /* registers past n_regs are refused below */
    for (int i = 0; i < h->n_instr; i++) {
        const lx_fused_instr *ins = &code[i];
        if (!lx_dtype_valid(ins->dtype)) return bad_program(out, "dtype");
        switch (ins->op) {
        case LX_FOP_LOAD:
            if (ins->a >= h->n_in || out->inputs[ins->a]->dtype != ins->dtype)
                return bad_program(out, "load");
            break;
        case LX_FOP_CONST: break;
        case LX_FOP_UNARY:
            if (ins->sub < 0 || ins->sub >= LX_UNARY_COUNT || !is_def(defined, h, ins->a) ||
                regt[ins->a] != ins->adtype ||
                ins->dtype != (lx_unary_op_is_pred(ins->sub) ? LX_BOOL : ins->adtype))
                return bad_program(out, "unary");
            break;
        case LX_FOP_BINARY:
            if (ins->sub < 0 || ins->sub >= LX_BINARY_COUNT || !is_def(defined, h, ins->a) ||
                !is_def(defined, h, ins->b) || regt[ins->a] != ins->adtype ||
                regt[ins->b] != ins->adtype ||
                ins->dtype != (lx_binary_op_is_pred(ins->sub) ? LX_BOOL : ins->adtype))
                return bad_program(out, "binary");
            break;
        case LX_FOP_WHERE:
            if (!is_def(defined, h, ins->a) || !is_def(defined, h, ins->b) ||
                !is_def(defined, h, ins->c) ||
                regt[ins->a] != LX_BOOL || regt[ins->b] != ins->dtype ||
                regt[ins->c] != ins->dtype)
                return bad_program(out, "where");
            break;
        case LX_FOP_CAST:
            if (!is_def(defined, h, ins->a) || regt[ins->a] != ins->adtype ||
                !lx_dtype_valid(ins->adtype))
                return bad_program(out, "cast");
            break;
        case LX_FOP_STORE:
            if (!is_def(defined, h, ins->a) || ins->b >= h->n_out || regt[ins->a] != ins->dtype ||
                h->out_dtype[ins->b] != ins->dtype)
                return bad_program(out, "store");
            continue;
        default:
            return bad_program(out, "opcode");
        }
        if (ins->dst >= h->n_regs) return bad_program(out, "register");
        regt[ins->dst] = ins->dtype;
        defined[ins->dst] = true;
    }
    return LX_OK;
}

lx_status LX_CPU_KERNEL(FUSED)(lx_kctx *kctx, lx_node *out) {
    const lx_fused_header *h = out->params;
    lx_status st = check_program(out, h);
    if (st != LX_OK) return st;
    fused_job job; /* not cleared (1.7 KB, a tenth of a tiny call): every field read is set
                    * below, for the inputs, outputs and dimensions the program has */
    job.h = h;
    job.code = lx_fused_code(h);
    int64_t size = 1;
    for (int d = 0; d < h->ndim; d++) size *= h->shape[d];
    job.size = size;
    if (size == 0) return LX_OK;
    /* outputs */
    if (h->n_out == 1) {
        if (out->dtype != h->out_dtype[0] || out->size != size)
            return bad_program(out, "output shape");
        job.out[0] = lx_node_ptr(out);
    } else {
        int64_t need = 0;
        for (int j = 0; j < h->n_out; j++) {
            if (h->out_offset[j] != lx_fused_align(need)) return bad_program(out, "offsets");
            need = h->out_offset[j] + size * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[j]);
            job.out[j] = (char *)lx_node_ptr(out) + h->out_offset[j];
        }
        if ((int64_t)lx_node_nbytes(out) < need) return bad_program(out, "output bytes");
    }
    /* input strides over the logical shape (right-aligned broadcast), then size-1 dims
     * dropped and neighbours merged where every input walks them contiguously */
    int64_t st0[LX_FUSED_MAX_IN][LX_MAX_NDIM];
    for (int k = 0; k < h->n_in; k++) {
        const lx_node *x = out->inputs[k];
        int lead = h->ndim - x->ndim;
        if (lead < 0) return bad_program(out, "input rank");
        for (int d = 0; d < h->ndim; d++) {
            int j = d - lead;
            if (j >= 0 && x->shape[j] != h->shape[d] && x->shape[j] != 1)
                return bad_program(out, "input shape");
            st0[k][d] = (j < 0 || x->shape[j] != h->shape[d]) ? 0 : x->strides[j];
        }
        job.in[k] = (const char *)lx_node_ptr(x);
        job.in_dtype[k] = x->dtype;
    }
    int nd = 0;
    for (int d = 0; d < h->ndim; d++) {
        if (h->shape[d] == 1) continue;
        job.shape[nd] = h->shape[d];
        for (int k = 0; k < h->n_in; k++) job.strides[k][nd] = st0[k][d];
        nd++;
    }
    if (nd == 0) {
        job.shape[0] = 1;
        for (int k = 0; k < h->n_in; k++) job.strides[k][0] = 1;
        nd = 1;
    }
    int j = 0;
    for (int d = 1; d < nd; d++) {
        bool merge = true;
        for (int k = 0; k < h->n_in && merge; k++)
            merge = job.strides[k][j] == job.strides[k][d] * job.shape[d];
        if (merge) {
            job.shape[j] *= job.shape[d];
            for (int k = 0; k < h->n_in; k++) job.strides[k][j] = job.strides[k][d];
        } else {
            j++;
            job.shape[j] = job.shape[d];
            for (int k = 0; k < h->n_in; k++) job.strides[k][j] = job.strides[k][d];
        }
    }
    job.nd = j + 1;
    for (int k = 0; k < h->n_in; k++) {
        job.in_contig[k] = job.nd == 1 && job.strides[k][0] == 1;
        bool zero = true;
        for (int d = 0; d < job.nd; d++) zero = zero && job.strides[k][d] == 0;
        job.in_const[k] = zero;
    }
    /* tile: as many elements as the registers' scratch allows */
    int regs = h->n_regs ? h->n_regs : 1;
    int64_t t = SCRATCH_BYTES / (8 * regs);
    t = t > TILE_MAX ? TILE_MAX : t;
    t &= ~(int64_t)15;
    if (t < 16) return bad_program(out, "too many registers");
    job.tile = (int)t;
    /* cheap programs need bigger chunks to be worth a thread. The interpreter's chunks are
     * whole tiles; native code takes any length, so its chunks are only rounded to its blocks
     * (rounding them to the tile kept programs of a few thousand elements on one thread:
     * SwiGLU x10 on [1, 2880], 60 instructions, got a grain of two 864-element tiles) */
    int64_t grain = 16384 / (h->n_instr > 4 ? h->n_instr / 4 : 1);
    if (grain < 1024) grain = 1024;
    if (run_native(out, &job, (grain + 127) / 128 * 128)) return LX_OK;
    lx_parallel_for(size, (grain + t - 1) / t * t, fused_range, &job);
    return LX_OK;
}
