/*
 * quantized.c -- CPU kernels of MLX affine quantization: QUANTIZE, DEQUANTIZE,
 * QUANTIZED_MATMUL (also gather_qmm) and GATHER_MM.
 *
 * Format (graph/prims_quant.h): a row's q values form one little-endian bit stream (value j
 * at bit j*bits) and w ~ scale*q + bias per group of group_size values. Every group starts on
 * a byte boundary (group_size*bits is a multiple of 32), so a group unpacks on its own.
 *
 * Quantization follows MLX's CPU rule exactly (mlx/backend/cpu/quantized.cpp): per group,
 * scale = max((max - min) / (2^bits - 1), 1e-7), negated unless |min| > |max|; the end with the
 * larger magnitude (the "edge") is made exact: q0 = rint(edge / scale), and if q0 != 0 then
 * scale = edge / q0 and bias = edge (else bias = 0); q = clip(rint((w - bias) / scale)).
 * Scales can therefore be negative. Dequantization is MLX's too: (q * scale) rounded to the
 * dtype, then + bias rounded to the dtype (no fused multiply-add), so results match bit for bit.
 * (MLX's Metal kernel differs from its CPU one in two details -- it rounds halves away from
 * zero and starts w_max at 0 -- so a checkpoint quantized on a Mac GPU can differ from lx's
 * quantize in rare ties and in all-negative groups; loading such checkpoints is unaffected.)
 *
 * Quantized matmul never dequantizes the whole matrix and accumulates in float32:
 * - small M (decode; QMM_SMALL_M_T with transpose, QMM_SMALL_M without): each packed byte
 *   is read once, 8 values at a time unpacked into registers; the bias term uses per-group
 *   sums of x (sum_j x_j*(s*q_j + b) = s*dot(q, x) + b*sum(x)). One row of x against 4- or
 *   8-bit rows (the common decode case) has its own AVX2 kernel: 16 nibbles from 8 bytes by a
 *   mask and a shift, against x reordered once per call (QT_NIBBLES). With transpose the work is
 *   split over output columns; without, over rows of w (each thread streams its rows into
 *   float32 partial sums, added up at the end).
 * - larger M (prefill): panels of the weights are dequantized to float32 and multiplied with
 *   sgemm (lx_blas_gemm).
 * Scratch (x in float32, its group sums and reordering, partial sums, panels) is the kernel's,
 * from lx's caching allocator (lx_kernel_scratch): one block per call (and one for the panels).
 * The per-dtype kernels are written once, in the template body at the end of this file, which
 * the file includes into itself once per dtype (float32, float16, bfloat16) with QT_T (the
 * stored type), QT_SFX(name) (name_f32, ...), QT_LD / QT_ST (to and from float) and QT_ROUND
 * (a float rounded to the dtype) defined; the bit width is a constant argument of always-
 * inlined bodies (QT_SWITCH_BITS), so each width gets its own specialised loop.
 */
#ifndef QT_TEMPLATE_PASS

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "graph/prims_quant.h"

/* Up to these M the fused kernels run; above, dequantized panels and sgemm. Measured on a
 * 16-core Xeon (AVX2) with K = 4096, N = 14336, 4 bits: with transpose the fused kernel wins
 * up to M ~ 48-64 (M = 32: 12 ms against 21 ms); without, the partial sums grow with M and
 * the panels win from M = 9. */
#ifndef QMM_SMALL_M
#define QMM_SMALL_M 8
#endif
#ifndef QMM_SMALL_M_T
#define QMM_SMALL_M_T 48
#endif
/* Dequantized panel size: 32 MiB of float32 (panels of 1 << 20 floats ran M = 512 at half
 * the speed: sgemm calls on thin panels do not scale over 16 threads). */
#ifndef QMM_PANEL_FLOATS
#define QMM_PANEL_FLOATS (1 << 23)
#endif

typedef uint32_t qt_u32x8 __attribute__((vector_size(32)));
typedef int32_t qt_i32x8 __attribute__((vector_size(32)));
typedef float qt_f32x8 __attribute__((vector_size(32)));

/* Keeps the compiler from fusing a multiply and a following add (the build uses
 * -ffp-contract=fast), so dequantization rounds the product as MLX does. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define QT_NO_CONTRACT(v) __asm__("" : "+x"(v))
#elif defined(__GNUC__) && defined(__aarch64__)
#define QT_NO_CONTRACT(v) __asm__("" : "+w"(v))
#else
#define QT_NO_CONTRACT(v)          \
    do {                           \
        volatile float qt_t_ = (v); \
        (v) = qt_t_;               \
    } while (0)
#endif

static inline float qt_f32_ld(float v) { return v; }
static inline float qt_f32_st(float v) { return v; }
static inline float qt_f32_round(float v) { QT_NO_CONTRACT(v); return v; }
static inline float qt_f16_round(float v) { return lx_f16_to_f32(lx_f32_to_f16(v)); }
static inline float qt_bf16_round(float v) { return lx_bf16_to_f32(lx_f32_to_bf16(v)); }

/* ---- unpacking ------------------------------------------------------------------------------ */

/* The 8 values of chunk i of a group (8 values take exactly `bits` bytes, at byte i*bits) as
 * a float vector in *dst; `bits` is a constant where this is inlined, so the load and shifts
 * specialise. (Through a pointer: 32-byte vectors passed or returned by value change the ABI
 * where AVX is off.) */
static inline __attribute__((always_inline)) void qt_chunk(qt_f32x8 *dst, const uint8_t *p,
                                                           const int bits, int64_t i) {
    uint64_t u = 0;
    memcpy(&u, p + i * bits, (size_t)bits); /* little-endian host */
    qt_u32x8 v;
    if (bits <= 4) {
        const qt_u32x8 sh = {0, bits, 2 * bits, 3 * bits, 4 * bits, 5 * bits, 6 * bits, 7 * bits};
        v = ((qt_u32x8){0} + (uint32_t)u) >> sh;
    } else {
        uint32_t a = (uint32_t)u, b = (uint32_t)(u >> (4 * bits));
        const qt_u32x8 sh = {0, bits, 2 * bits, 3 * bits, 0, bits, 2 * bits, 3 * bits};
        v = (qt_u32x8){a, a, a, a, b, b, b, b} >> sh;
    }
    v &= (uint32_t)((1u << bits) - 1u);
    *dst = __builtin_convertvector((qt_i32x8)v, qt_f32x8);
}

/* Calls body(bits) with bits a constant, so each width gets its own specialised loop. */
#define QT_SWITCH_BITS(bits, body)      \
    switch (bits) {                     \
    case 2: body(2); break;             \
    case 3: body(3); break;             \
    case 4: body(4); break;             \
    case 5: body(5); break;             \
    case 6: body(6); break;             \
    default: body(8); break;            \
    }

static inline __attribute__((always_inline)) void qt_unpack_bits(const uint8_t *p, int bits,
                                                                  int n, float *q) {
    for (int i = 0; i < n / 8; i++) {
        qt_f32x8 v;
        qt_chunk(&v, p, bits, i);
        memcpy(q + 8 * i, &v, sizeof v);
    }
}

/* n values (a multiple of 8) starting at byte p of a packed row (on a chunk boundary). */
static void qt_unpack(const uint8_t *p, int bits, int n, float *q) {
#define QT_UNPACK_CASE(b) qt_unpack_bits(p, b, n, q)
    QT_SWITCH_BITS(bits, QT_UNPACK_CASE)
#undef QT_UNPACK_CASE
}

static inline float qt_hsum(const qt_f32x8 *v) {
    const float *f = (const float *)v;
    return ((f[0] + f[4]) + (f[1] + f[5])) + ((f[2] + f[6]) + (f[3] + f[7]));
}
static inline void qt_load8(qt_f32x8 *v, const float *p) { memcpy(v, p, sizeof *v); }

/* ---- per-dtype kernels ---------------------------------------------------------------------- */

typedef struct {
    const void *w;   /* QUANTIZE: input values; DEQUANTIZE: output values */
    uint8_t *q;      /* packed */
    void *s, *b;     /* scales, biases */
    int gs, bits;
} qt_group_ctx;

typedef struct {
    int M, N, K, gs, bits, G; /* G: groups per packed row */
    const int64_t *xb, *wb;   /* per output matrix: which x and which w matrix */
    const float *x;           /* float32 x, [count, M, K] */
    const float *xsum;        /* transpose, small M: per x row, per group, the sum of x */
    const float *xp;          /* transpose, M = 1, 4 or 8 bits (QT_NIBBLES): x as the single-row
                                 kernel reads it (4 bits: each run of 16 values reordered evens
                                 then odds; 8 bits: x itself), or NULL: that kernel does not run */
    const uint8_t *w;
    int64_t w_mat, w_row;     /* bytes per w matrix and per packed row */
    const void *s, *b;
    int64_t s_mat;            /* scale elements per w matrix */
    void *out;                /* [batch, M, N] */
    /* no transpose, small M: per (matrix, part of K) partial sums */
    int parts;
    int64_t part_floats;      /* M*N + M*G */
    float *partial;
    /* panels (large M) */
    float *panel;
    int64_t mat;              /* w matrix of the panel */
    int n0, nb;               /* output columns of the panel */
} qt_mm_ctx;

typedef struct {
    void (*quantize)(void *, int64_t, int64_t);
    void (*dequantize)(void *, int64_t, int64_t);
    void (*mm_t_small)(void *, int64_t, int64_t);
    void (*mm_n_small)(void *, int64_t, int64_t);
    void (*mm_n_reduce)(void *, int64_t, int64_t);
    void (*panel_t)(void *, int64_t, int64_t);
    void (*panel_n)(void *, int64_t, int64_t);
    void (*to_f32)(const void *, float *, int64_t);
    void (*from_f32)(const float *, void *, int64_t);
} qt_ops;

/* The 4- and 8-bit single-row kernel with AVX2 and FMA (qt_t_quad); elsewhere the pair kernel
 * runs. */
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define QT_NIBBLES 1
#else
#define QT_NIBBLES 0
#endif

#define QT_TEMPLATE_PASS
#define QT_T float
#define QT_SFX(name) name##_f32
#define QT_LD qt_f32_ld
#define QT_ST qt_f32_st
#define QT_ROUND qt_f32_round
#include "backend/cpu/quantized.c"
#undef QT_T
#undef QT_SFX
#undef QT_LD
#undef QT_ST
#undef QT_ROUND
#define QT_T lx_f16
#define QT_SFX(name) name##_f16
#define QT_LD lx_f16_to_f32
#define QT_ST lx_f32_to_f16
#define QT_ROUND qt_f16_round
#include "backend/cpu/quantized.c"
#undef QT_T
#undef QT_SFX
#undef QT_LD
#undef QT_ST
#undef QT_ROUND
#define QT_T lx_bf16
#define QT_SFX(name) name##_bf16
#define QT_LD lx_bf16_to_f32
#define QT_ST lx_f32_to_bf16
#define QT_ROUND qt_bf16_round
#include "backend/cpu/quantized.c"
#undef QT_T
#undef QT_SFX
#undef QT_LD
#undef QT_ST
#undef QT_ROUND
#undef QT_TEMPLATE_PASS

static const qt_ops *ops_for(lx_dtype t) {
    switch (t) {
    case LX_FLOAT32: return &qt_ops_f32;
    case LX_FLOAT16: return &qt_ops_f16;
    case LX_BFLOAT16: return &qt_ops_bf16;
    default: return NULL;
    }
}

static lx_status bad_dtype(const lx_node *out, lx_dtype t) {
    return lx_set_error(LX_E_DTYPE, "%s: %s: dtype %s is not supported", out->op,
                        lx_prim_name(out->prim), lx_dtype_name(t));
}

/* ---- QUANTIZE, DEQUANTIZE ------------------------------------------------------------------- */

static int64_t group_grain(int gs) { return 16384 / gs > 0 ? 16384 / gs : 1; }

lx_status LX_CPU_KERNEL(QUANTIZE)(lx_kctx *kctx, lx_node *out) {
    const lx_quantize_params *p = out->params;
    const lx_node *w = out->inputs[0];
    const qt_ops *ops = ops_for((lx_dtype)w->dtype);
    if (!ops) return bad_dtype(out, (lx_dtype)w->dtype);
    uint8_t *base = lx_node_ptr(out);
    qt_group_ctx c = {lx_node_ptr(w), base, base + p->scales_offset, base + p->biases_offset,
                      p->group_size, p->bits};
    /* the alignment padding is never read, but keep the buffer deterministic */
    memset(base, 0, (size_t)lx_node_nbytes(out));
    lx_parallel_for(w->size / p->group_size, group_grain(p->group_size), ops->quantize, &c);
    return LX_OK;
}

lx_status LX_CPU_KERNEL(DEQUANTIZE)(lx_kctx *kctx, lx_node *out) {
    const lx_quant_params *p = out->params;
    const qt_ops *ops = ops_for((lx_dtype)out->dtype);
    if (!ops) return bad_dtype(out, (lx_dtype)out->dtype);
    qt_group_ctx c = {lx_node_ptr(out), lx_node_ptr(out->inputs[0]), lx_node_ptr(out->inputs[1]),
                      lx_node_ptr(out->inputs[2]), p->group_size, p->bits};
    lx_parallel_for(out->size / p->group_size, group_grain(p->group_size), ops->dequantize, &c);
    return LX_OK;
}

/* ---- batch resolution (QUANTIZED_MATMUL, GATHER_MM) ----------------------------------------- */

/* For each of the node's `nbatch` output matrices, which matrix of operand `a` it uses: the
 * value of index array `idx` (any integer dtype, possibly strided), or, with no index, the
 * operand's batch dims broadcast against the node's. */
static lx_status resolve_batch(const lx_node *out, const lx_node *a, const lx_node *idx,
                               const char *name, int64_t nbatch, int64_t *res) {
    int bn = out->ndim - 2;
    if (idx) {
        int64_t count = a->shape[0];
        size_t es = lx_dtype_size((lx_dtype)idx->dtype);
        const char *base = (const char *)lx_node_ptr(idx);
        for (int64_t i = 0; i < nbatch; i++) {
            int64_t off = 0, rem = i;
            for (int d = bn - 1; d >= 0; d--) {
                off += (rem % idx->shape[d]) * idx->strides[d];
                rem /= idx->shape[d];
            }
            double v = lx_dtype_load((lx_dtype)idx->dtype, base + off * (int64_t)es);
            if (!(v >= 0 && v < (double)count))
                return lx_set_error(LX_E_ARG, "%s: %s[%lld] = %.0f is out of range for %lld "
                                    "matrices", out->op, name, (long long)i, v, (long long)count);
            res[i] = (int64_t)v;
        }
        return LX_OK;
    }
    for (int64_t i = 0; i < nbatch; i++) {
        int64_t r = 0, stride = 1, rem = i;
        for (int d = bn - 1; d >= 0; d--) {
            int64_t c = rem % out->shape[d];
            rem /= out->shape[d];
            if (a->shape[d] != 1) r += c * stride;
            stride *= a->shape[d];
        }
        res[i] = r;
    }
    return LX_OK;
}

static int64_t batch_count(const lx_node *out) {
    int64_t n = 1;
    for (int d = 0; d < out->ndim - 2; d++) n *= out->shape[d];
    return n;
}

/* ---- QUANTIZED_MATMUL ----------------------------------------------------------------------- */

static void xsum_rows(void *vc, int64_t r0, int64_t r1) {
    qt_mm_ctx *c = vc;
    float *xs = (float *)c->xsum;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = c->x + r * c->K;
        for (int g = 0; g < c->G; g++) {
            qt_f32x8 d = {0};
            for (int j = 0; j < c->gs; j += 8) {
                qt_f32x8 v;
                qt_load8(&v, x + (int64_t)g * c->gs + j);
                d += v;
            }
            xs[r * c->G + g] = qt_hsum(&d);
        }
    }
}

/* x rows for the 4-bit single-row kernel: each run of 16 values as its 8 even-indexed values,
 * then its 8 odd ones (the order in which nibbles come out of 8 packed bytes). */
static void nibble_order(const float *x, float *xp, int64_t rows, int64_t K) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i + 16 <= K; i += 16)
            for (int j = 0; j < 8; j++) {
                xp[r * K + i + j] = x[r * K + i + 2 * j];
                xp[r * K + i + 8 + j] = x[r * K + i + 2 * j + 1];
            }
}

static lx_status oom(const lx_node *out) {
    return lx_set_error(LX_E_OOM, "%s: out of memory for %s scratch", out->op,
                        lx_prim_name(out->prim));
}

/* Bytes rounded up to the allocator's 64-byte alignment, so that parts of one scratch block
 * carved in sequence each start aligned. */
static size_t qt_round64(size_t n) { return (n + 63) / 64 * 64; }

/* Large M: per output matrix, panels of dequantized weights times x with sgemm. */
static lx_status qmm_large(lx_kctx *kctx, const lx_node *out, qt_mm_ctx *c, const qt_ops *ops,
                           bool transpose, int64_t nbatch) {
    const int M = c->M, N = c->N, K = c->K;
    bool direct = out->dtype == LX_FLOAT32;
    int nb = QMM_PANEL_FLOATS / (K > 0 ? K : 1);
    if (nb < 64) nb = 64;
    nb = nb / c->gs * c->gs; /* column panels start on a group */
    if (nb <= 0) nb = c->gs;
    if (nb > N) nb = N;
    size_t pbytes = qt_round64(sizeof(float) * (size_t)nb * (size_t)(K > 0 ? K : 1));
    size_t obytes = direct ? 0 : sizeof(float) * (size_t)M * (size_t)N;
    char *scratch = lx_kernel_scratch(kctx, pbytes + obytes);
    if (!scratch) return oom(out);
    float *panel = (float *)(void *)scratch;
    float *o32 = direct ? NULL : (float *)(void *)(scratch + pbytes);
    c->panel = panel;
    for (int64_t bi = 0; bi < nbatch; bi++) {
        const float *x = c->x + c->xb[bi] * M * (int64_t)K;
        float *o = direct ? (float *)c->out + bi * M * (int64_t)N : o32;
        c->mat = c->wb[bi];
        for (int n0 = 0; n0 < N; n0 += nb) {
            c->n0 = n0;
            c->nb = nb < N - n0 ? nb : N - n0;
            if (transpose) {
                lx_parallel_for(c->nb, 8, ops->panel_t, c);
                lx_blas_gemm(LX_FLOAT32, false, true, M, c->nb, K, 1.0, x, K, panel, K, 0.0,
                             o + n0, N);
            } else {
                lx_parallel_for(K, 64, ops->panel_n, c);
                lx_blas_gemm(LX_FLOAT32, false, false, M, c->nb, K, 1.0, x, K, panel, c->nb, 0.0,
                             o + n0, N);
            }
        }
        if (!direct) {
            int64_t es = (int64_t)lx_dtype_size((lx_dtype)out->dtype);
            ops->from_f32(o32, (char *)c->out + bi * M * (int64_t)N * es, (int64_t)M * N);
        }
    }
    return LX_OK;
}

lx_status LX_CPU_KERNEL(QUANTIZED_MATMUL)(lx_kctx *kctx, lx_node *out) {
    const lx_quant_params *p = out->params;
    const lx_node *x = out->inputs[0], *w = out->inputs[1];
    const lx_node *li = NULL, *ri = NULL;
    int next = 4;
    if (p->flags & LX_QMM_LHS_INDEXED) li = out->inputs[next++];
    if (p->flags & LX_QMM_RHS_INDEXED) ri = out->inputs[next++];
    const qt_ops *ops = ops_for((lx_dtype)out->dtype);
    if (!ops) return bad_dtype(out, (lx_dtype)out->dtype);
    if (out->size == 0) return LX_OK;
    const int M = out->shape[out->ndim - 2], N = out->shape[out->ndim - 1];
    const int K = x->shape[x->ndim - 1];
    const bool transpose = p->transpose != 0;
    const int wcols = w->shape[w->ndim - 1] * 32 / p->bits;
    if (K == 0) {
        memset(lx_node_ptr(out), 0, lx_node_nbytes(out));
        return LX_OK;
    }
    int64_t nbatch = batch_count(out);
    const bool small = transpose ? M <= QMM_SMALL_M_T : M <= QMM_SMALL_M;
    const int G = wcols / p->group_size;
    const int64_t rows = x->size / K;
    /* the small-M paths' scratch in one block: the batch maps, x in float32 (unless it is),
     * x's group sums and reordering (transpose) or the partial sums (no transpose) */
    int64_t parts = 1;
    if (small && !transpose) { /* split K so that every thread streams its own rows when
                                * there are few matrices */
        int threads = lx_num_threads();
        parts = nbatch >= threads ? 1 : (2 * threads + nbatch - 1) / nbatch;
        if (parts > K / 16) parts = K / 16 > 0 ? K / 16 : 1;
    }
    const int64_t part_floats = (int64_t)M * N + (int64_t)M * G;
    const bool want_xp = QT_NIBBLES && small && transpose && M == 1 && p->group_size % 16 == 0;
    size_t b_xb = qt_round64(sizeof(int64_t) * (size_t)nbatch * 2);
    size_t b_x32 = out->dtype == LX_FLOAT32 ? 0 : qt_round64(sizeof(float) * (size_t)x->size);
    size_t b_xsum = small && transpose ? qt_round64(sizeof(float) * (size_t)rows * (size_t)G) : 0;
    size_t b_xp = want_xp && p->bits == 4 ? qt_round64(sizeof(float) * (size_t)x->size) : 0;
    size_t b_part =
        small && !transpose ? sizeof(float) * (size_t)(nbatch * parts * part_floats) : 0;
    char *scratch = lx_kernel_scratch(kctx, b_xb + b_x32 + b_xsum + b_xp + b_part);
    if (!scratch) return oom(out);
    int64_t *xb = (int64_t *)(void *)scratch;
    int64_t *wb = xb + nbatch;
    lx_status st = resolve_batch(out, x, li, "lhs_indices", nbatch, xb);
    if (st == LX_OK) st = resolve_batch(out, w, ri, "rhs_indices", nbatch, wb);
    if (st != LX_OK) return st;
    scratch += b_xb;

    qt_mm_ctx c;
    memset(&c, 0, sizeof c);
    c.M = M;
    c.N = N;
    c.K = K;
    c.gs = p->group_size;
    c.bits = p->bits;
    c.G = G;
    c.xb = xb;
    c.wb = wb;
    c.w = lx_node_ptr(w);
    c.w_row = (int64_t)w->shape[w->ndim - 1] * 4;
    c.w_mat = c.w_row * w->shape[w->ndim - 2];
    c.s = lx_node_ptr(out->inputs[2]);
    c.b = lx_node_ptr(out->inputs[3]);
    c.s_mat = (int64_t)c.G * w->shape[w->ndim - 2];
    c.out = lx_node_ptr(out);

    if (out->dtype == LX_FLOAT32) {
        c.x = lx_node_ptr(x);
    } else {
        float *x32 = (float *)(void *)scratch;
        scratch += b_x32;
        ops->to_f32(lx_node_ptr(x), x32, x->size);
        c.x = x32;
    }

    if (!small) return qmm_large(kctx, out, &c, ops, transpose, nbatch);
    if (transpose) {
        float *xsum = (float *)(void *)scratch;
        scratch += b_xsum;
        c.xsum = xsum;
        lx_parallel_for(rows, 64, xsum_rows, &c);
        if (want_xp) {
            if (c.bits == 8) {
                c.xp = c.x;
            } else if (c.bits == 4) {
                float *xperm = (float *)(void *)scratch;
                nibble_order(c.x, xperm, rows, K);
                c.xp = xperm;
            }
        }
        int64_t grain = 65536 / ((int64_t)K * M) + 1;
        lx_parallel_for(nbatch * N, grain, ops->mm_t_small, &c);
    } else {
        c.parts = (int)parts;
        c.part_floats = part_floats;
        c.partial = (float *)(void *)scratch;
        lx_parallel_for(nbatch * parts, 1, ops->mm_n_small, &c);
        int64_t nblk = (N + 255) / 256;
        lx_parallel_for(nbatch * M * nblk, 16, ops->mm_n_reduce, &c);
    }
    return LX_OK;
}

/* ---- GATHER_MM ------------------------------------------------------------------------------ */

typedef struct {
    int M, N, K;
    lx_dtype dt;
    const int64_t *ab, *bb;
    const void *a, *b;
    void *out;
    lx_task_scratch *ts; /* 2 * N floats per task */
    _Atomic int failed;  /* a worker could not get scratch memory */
} qt_gmm_ctx;

/* Small products: units are output rows (matrix, m), accumulated in float32. */
static void gmm_rows(void *vc, int64_t u0, int64_t u1) {
    const qt_gmm_ctx *c = vc;
    const int M = c->M, N = c->N, K = c->K;
    size_t es = lx_dtype_size(c->dt);
    int slot;
    float *acc = lx_task_scratch_take(c->ts, &slot);
    if (!acc) {
        atomic_store(&((qt_gmm_ctx *)vc)->failed, 1);
        return;
    }
    float *brow = acc + N;
    for (int64_t u = u0; u < u1; u++) {
        int64_t bi = u / M;
        int m = (int)(u % M);
        const char *a = (const char *)c->a + ((c->ab[bi] * M + m) * (int64_t)K) * (int64_t)es;
        const char *b = (const char *)c->b + c->bb[bi] * (int64_t)K * N * (int64_t)es;
        memset(acc, 0, sizeof(float) * (size_t)N);
        for (int k = 0; k < K; k++) {
            float av;
            const char *bk = b + (int64_t)k * N * (int64_t)es;
            const float *bp;
            if (c->dt == LX_FLOAT32) {
                memcpy(&av, a + (int64_t)k * 4, 4);
                bp = (const float *)bk;
            } else {
                ops_for(c->dt)->to_f32(a + (int64_t)k * (int64_t)es, &av, 1);
                ops_for(c->dt)->to_f32(bk, brow, N);
                bp = brow;
            }
            for (int n = 0; n < N; n++) acc[n] += av * bp[n];
        }
        ops_for(c->dt)->from_f32(acc, (char *)c->out + (bi * M + m) * (int64_t)N * (int64_t)es,
                                 N);
    }
    lx_task_scratch_give(c->ts, slot);
}

lx_status LX_CPU_KERNEL(GATHER_MM)(lx_kctx *kctx, lx_node *out) {
    const lx_quant_params *p = out->params;
    const lx_node *a = out->inputs[0], *b = out->inputs[1];
    const lx_node *li = NULL, *ri = NULL;
    int next = 2;
    if (p->flags & LX_QMM_LHS_INDEXED) li = out->inputs[next++];
    if (p->flags & LX_QMM_RHS_INDEXED) ri = out->inputs[next++];
    lx_dtype dt = (lx_dtype)out->dtype;
    const qt_ops *ops = ops_for(dt);
    if (!ops) return bad_dtype(out, dt);
    if (out->size == 0) return LX_OK;
    const int M = out->shape[out->ndim - 2], N = out->shape[out->ndim - 1];
    const int K = a->shape[a->ndim - 1];
    int64_t nbatch = batch_count(out);
    const bool rows = (int64_t)M * N * K < 64 * 64 * 64 || K == 0;
    /* the batch maps, and float32 copies of one product's a, b and out for half dtypes */
    size_t b_ab = qt_round64(sizeof(int64_t) * (size_t)nbatch * 2);
    size_t b_a = 0, b_b = 0, b_o = 0;
    if (!rows && dt != LX_FLOAT32) {
        b_a = qt_round64(sizeof(float) * (size_t)M * K);
        b_b = qt_round64(sizeof(float) * (size_t)K * N);
        b_o = sizeof(float) * (size_t)M * N;
    }
    char *scratch = lx_kernel_scratch(kctx, b_ab + b_a + b_b + b_o);
    if (!scratch) return oom(out);
    int64_t *ab = (int64_t *)(void *)scratch;
    int64_t *bb = ab + nbatch;
    lx_status st = resolve_batch(out, a, li, "lhs_indices", nbatch, ab);
    if (st == LX_OK) st = resolve_batch(out, b, ri, "rhs_indices", nbatch, bb);
    if (st != LX_OK) return st;
    qt_gmm_ctx c = {M, N, K, dt, ab, bb, lx_node_ptr(a), lx_node_ptr(b), lx_node_ptr(out), NULL,
                    0};
    if (rows) {
        int64_t grain = 65536 / ((int64_t)N * (K ? K : 1)) + 1;
        lx_task_scratch ts;
        if (!lx_task_scratch_init(&ts, kctx, sizeof(float) * (size_t)N * 2, nbatch * M, grain))
            return oom(out);
        c.ts = &ts;
        lx_parallel_for(nbatch * M, grain, gmm_rows, &c);
        return atomic_load(&c.failed) ? oom(out) : LX_OK;
    }
    size_t es = lx_dtype_size(dt);
    float *sa = (float *)(void *)(scratch + b_ab);
    float *sb = (float *)(void *)(scratch + b_ab + b_a);
    float *so = (float *)(void *)(scratch + b_ab + b_a + b_b);
    for (int64_t i = 0; i < nbatch; i++) {
        const char *am = (const char *)c.a + ab[i] * M * (int64_t)K * (int64_t)es;
        const char *bm = (const char *)c.b + bb[i] * (int64_t)K * N * (int64_t)es;
        char *om = (char *)c.out + i * M * (int64_t)N * (int64_t)es;
        if (dt == LX_FLOAT32) {
            lx_blas_gemm(LX_FLOAT32, false, false, M, N, K, 1.0, am, K, bm, N, 0.0, om, N);
        } else {
            ops->to_f32(am, sa, (int64_t)M * K);
            ops->to_f32(bm, sb, (int64_t)K * N);
            lx_blas_gemm(LX_FLOAT32, false, false, M, N, K, 1.0, sa, K, sb, N, 0.0, so, N);
            ops->from_f32(so, om, (int64_t)M * N);
        }
    }
    return LX_OK;
}

#else /* ---- template body: QT_T is the stored type, QT_SFX(name) names its functions ---- */

/* MLX's rule, group by group */
static void QT_SFX(qt_quantize)(void *vc, int64_t g0, int64_t g1) {
    const qt_group_ctx *c = vc;
    const QT_T *w = c->w;
    const int gs = c->gs, bits = c->bits;
    const float n_bins = (float)((1 << bits) - 1), eps = 1e-7f;
    for (int64_t g = g0; g < g1; g++) {
        const QT_T *wg = w + g * gs;
        float w_min = INFINITY, w_max = -INFINITY;
        for (int j = 0; j < gs; j++) { /* std::max/min: a NaN is skipped */
            float v = QT_LD(wg[j]);
            w_max = w_max < v ? v : w_max;
            w_min = v < w_min ? v : w_min;
        }
        bool mask = fabsf(w_min) > fabsf(w_max);
        float scale = (w_max - w_min) / n_bins;
        scale = scale < eps ? eps : scale;
        scale = mask ? scale : -scale;
        float edge = mask ? w_min : w_max;
        float q0 = rintf(edge / scale);
        float bias = 0.0f;
        if (q0 != 0.0f) {
            scale = edge / q0;
            bias = edge;
        }
        uint8_t *o = c->q + g * gs * bits / 8;
        uint64_t acc = 0;
        int nacc = 0;
        for (int j = 0; j < gs; j++) {
            float v = rintf((QT_LD(wg[j]) - bias) / scale);
            v = v < 0.0f ? 0.0f : v;
            v = n_bins < v ? n_bins : v;
            uint32_t qv = v == v ? (uint32_t)v : 0u; /* NaN -> 0 */
            acc |= (uint64_t)qv << nacc;
            nacc += bits;
            while (nacc >= 8) {
                *o++ = (uint8_t)acc;
                acc >>= 8;
                nacc -= 8;
            }
        }
        ((QT_T *)c->s)[g] = QT_ST(scale);
        ((QT_T *)c->b)[g] = QT_ST(bias);
    }
}

static void QT_SFX(qt_dequantize)(void *vc, int64_t g0, int64_t g1) {
    const qt_group_ctx *c = vc;
    QT_T *w = (QT_T *)c->w;
    const int gs = c->gs, bits = c->bits;
    float q[128] __attribute__((aligned(32)));
    for (int64_t g = g0; g < g1; g++) {
        qt_unpack(c->q + g * gs * bits / 8, bits, gs, q);
        float s = QT_LD(((const QT_T *)c->s)[g]), b = QT_LD(((const QT_T *)c->b)[g]);
        QT_T *o = w + g * gs;
        for (int j = 0; j < gs; j++) o[j] = QT_ST(QT_ROUND(q[j] * s) + b);
    }
}

/* transpose, small M: MB (1, 2 or 4, a constant) rows of x against packed row wr; each
 * chunk of 8 values is unpacked once into registers and used for every row */
static inline __attribute__((always_inline)) void QT_SFX(qt_t_rows)(
    const qt_mm_ctx *c, const uint8_t *wr, const QT_T *sr, const QT_T *br, const float *x,
    const float *xs, QT_T *o, const int bits, const int MB) {
    const int K = c->K, G = c->G, gs = c->gs, N = c->N;
    const int gbytes = gs * bits / 8, chunks = gs / 8;
    qt_f32x8 acc[4] = {{0}};
    float bacc[4] = {0};
    for (int g = 0; g < G; g++) {
        const uint8_t *wg = wr + (int64_t)g * gbytes;
        const float *xg = x + (int64_t)g * gs;
        qt_f32x8 d[4] = {{0}}, e[4] = {{0}}; /* two chains per row */
        for (int i = 0; i < chunks; i += 2) {
            qt_f32x8 q0, q1;
            qt_chunk(&q0, wg, bits, i);
            qt_chunk(&q1, wg, bits, i + 1);
            for (int m = 0; m < MB; m++) {
                qt_f32x8 x0, x1;
                qt_load8(&x0, xg + (int64_t)m * K + 8 * i);
                qt_load8(&x1, xg + (int64_t)m * K + 8 * i + 8);
                d[m] += q0 * x0;
                e[m] += q1 * x1;
            }
        }
        float s = QT_LD(sr[g]), b = QT_LD(br[g]);
        for (int m = 0; m < MB; m++) {
            acc[m] += s * (d[m] + e[m]);
            bacc[m] += b * xs[(int64_t)m * G + g];
        }
    }
    for (int m = 0; m < MB; m++) o[(int64_t)m * N] = QT_ST(qt_hsum(&acc[m]) + bacc[m]);
}
/* transpose, M = 1, 4 or 8 bits: four packed rows (outputs o[0..3]) against x, runs of
 * 16 values. 4 bits: byte j of a run's 8 holds values 2j (low nibble) and 2j+1 (high),
 * so the bytes zero-extended to 32 bits give the even values by a mask and the odd ones
 * by a shift, against x reordered evens-then-odds (xp): 2 integer ops and 2 conversions
 * per 16 weights, where qt_chunk takes a broadcast, a variable shift, a mask and a
 * conversion per 8. 8 bits: a zero-extension and a conversion per 8. */
#if QT_NIBBLES
static inline __attribute__((always_inline)) void QT_SFX(qt_t_quad)(
    const qt_mm_ctx *c, const uint8_t *wr, const QT_T *sr, const QT_T *br, const float *xp,
    const float *xs, QT_T *o, const int bits) {
    const int G = c->G, gs = c->gs, gbytes = gs * bits / 8;
    const int64_t wrow = c->w_row;
    const __m256i low4 = _mm256_set1_epi32(15);
    __m256 acc[4];
    float bacc[4] = {0};
    for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_ps();
    for (int g = 0; g < G; g++) {
        const float *xg = xp + (int64_t)g * gs;
        const uint8_t *wg = wr + (int64_t)g * gbytes;
        __m256 d[4], e[4];
        for (int r = 0; r < 4; r++) d[r] = e[r] = _mm256_setzero_ps();
        for (int i = 0; i < gs; i += 16) {
            __m256 xe = _mm256_loadu_ps(xg + i), xo = _mm256_loadu_ps(xg + i + 8);
            for (int r = 0; r < 4; r++) {
                const uint8_t *p = wg + r * wrow + i * bits / 8;
                __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
                if (bits == 4) { /* xe, xo: the even and the odd values of the run */
                    d[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, low4)),
                                           xe, d[r]);
                    e[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)),
                                           xo, e[r]);
                } else { /* 8 bits: one byte per value, x in order */
                    __m256i v2 = _mm256_cvtepu8_epi32(
                        _mm_loadl_epi64((const __m128i *)(p + 8)));
                    d[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), xe, d[r]);
                    e[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v2), xo, e[r]);
                }
            }
        }
        float xsg = xs[g];
        for (int r = 0; r < 4; r++) {
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(QT_LD(sr[(int64_t)r * G + g])),
                                     _mm256_add_ps(d[r], e[r]), acc[r]);
            bacc[r] += QT_LD(br[(int64_t)r * G + g]) * xsg;
        }
    }
    for (int r = 0; r < 4; r++) {
        qt_f32x8 a;
        memcpy(&a, &acc[r], sizeof a);
        o[r] = QT_ST(qt_hsum(&a) + bacc[r]);
    }
}
#endif
/* transpose, M = 1: two packed rows (outputs o[0], o[1]) share the loads of x */
static inline __attribute__((always_inline)) void QT_SFX(qt_t_pair)(
    const qt_mm_ctx *c, const uint8_t *wr, const QT_T *sr, const QT_T *br, const float *x,
    const float *xs, QT_T *o, const int bits) {
    const int G = c->G, gs = c->gs;
    const int gbytes = gs * bits / 8, chunks = gs / 8;
    const int64_t wrow = c->w_row;
    qt_f32x8 acc0 = {0}, acc1 = {0};
    float bacc0 = 0.0f, bacc1 = 0.0f;
    for (int g = 0; g < G; g++) {
        const uint8_t *wg = wr + (int64_t)g * gbytes;
        const float *xg = x + (int64_t)g * gs;
        qt_f32x8 d0 = {0}, d1 = {0}, e0 = {0}, e1 = {0};
        for (int i = 0; i < chunks; i += 2) {
            qt_f32x8 x0, x1, q0, q1, r0, r1;
            qt_load8(&x0, xg + 8 * i);
            qt_load8(&x1, xg + 8 * i + 8);
            qt_chunk(&q0, wg, bits, i);
            qt_chunk(&q1, wg, bits, i + 1);
            qt_chunk(&r0, wg + wrow, bits, i);
            qt_chunk(&r1, wg + wrow, bits, i + 1);
            d0 += q0 * x0;
            d1 += q1 * x1;
            e0 += r0 * x0;
            e1 += r1 * x1;
        }
        float xsg = xs[g];
        acc0 += QT_LD(sr[g]) * (d0 + d1);
        acc1 += QT_LD(sr[G + g]) * (e0 + e1);
        bacc0 += QT_LD(br[g]) * xsg;
        bacc1 += QT_LD(br[G + g]) * xsg;
    }
    o[0] = QT_ST(qt_hsum(&acc0) + bacc0);
    o[1] = QT_ST(qt_hsum(&acc1) + bacc1);
}
/* transpose, small M: units are (matrix, output column n) */
static inline __attribute__((always_inline)) void QT_SFX(qt_mm_t_body)(
    const qt_mm_ctx *c, int64_t u0, int64_t u1, const int bits) {
    const int M = c->M, N = c->N, K = c->K, G = c->G;
    for (int64_t u = u0; u < u1; u++) {
        int64_t bi = u / N;
        int n = (int)(u % N);
        int64_t wm = c->wb[bi], xm = c->xb[bi];
        const uint8_t *wr = c->w + wm * c->w_mat + n * c->w_row;
        const QT_T *sr = (const QT_T *)c->s + wm * c->s_mat + (int64_t)n * G;
        const QT_T *br = (const QT_T *)c->b + wm * c->s_mat + (int64_t)n * G;
        const float *x = c->x + xm * M * (int64_t)K;
        const float *xs = c->xsum + xm * M * (int64_t)G;
        QT_T *o = (QT_T *)c->out + bi * M * (int64_t)N + n;
#if QT_NIBBLES
        if (c->xp && n + 3 < N && u + 3 < u1) {
            QT_SFX(qt_t_quad)(c, wr, sr, br, c->xp + xm * (int64_t)K, xs, o, bits);
            u += 3;
            continue;
        }
#endif
        if (M == 1 && n + 1 < N && u + 1 < u1) { /* two columns of the same matrix */
            QT_SFX(qt_t_pair)(c, wr, sr, br, x, xs, o, bits);
            u++;
            continue;
        }
        int m = 0;
        for (; m + 4 <= M; m += 4)
            QT_SFX(qt_t_rows)(c, wr, sr, br, x + (int64_t)m * K, xs + (int64_t)m * G,
                          o + (int64_t)m * N, bits, 4);
        if (m + 2 <= M) {
            QT_SFX(qt_t_rows)(c, wr, sr, br, x + (int64_t)m * K, xs + (int64_t)m * G,
                          o + (int64_t)m * N, bits, 2);
            m += 2;
        }
        if (m < M)
            QT_SFX(qt_t_rows)(c, wr, sr, br, x + (int64_t)m * K, xs + (int64_t)m * G,
                          o + (int64_t)m * N, bits, 1);
    }
}
static void QT_SFX(qt_mm_t_small)(void *vc, int64_t u0, int64_t u1) {
    const qt_mm_ctx *c = vc;
#define QT_CASE(b) QT_SFX(qt_mm_t_body)(c, u0, u1, b)
    QT_SWITCH_BITS(c->bits, QT_CASE)
#undef QT_CASE
}

/* no transpose, M <= QMM_SMALL_M: units are (matrix, part of the K rows); a unit streams
 * its rows front to back into float32 partial sums (M x N, plus M x G bias sums:
 * sum_k x_k*(s*q + b) = sum_k (x_k*s)*q + sum_k x_k*b), added up by qt_mm_n_reduce */
static inline __attribute__((always_inline)) void QT_SFX(qt_mm_n_body)(
    const qt_mm_ctx *c, int64_t u0, int64_t u1, const int bits, const int MB) {
    const int N = c->N, K = c->K, gs = c->gs, G = c->G, P = c->parts;
    const int gbytes = gs * bits / 8, chunks = gs / 8;
    for (int64_t u = u0; u < u1; u++) {
        int64_t bi = u / P;
        int p = (int)(u % P);
        int k0 = (int)((int64_t)K * p / P), k1 = (int)((int64_t)K * (p + 1) / P);
        int64_t wm = c->wb[bi];
        const float *x = c->x + c->xb[bi] * c->M * (int64_t)K;
        float *acc = c->partial + u * c->part_floats, *bsum = acc + (int64_t)c->M * N;
        memset(acc, 0, sizeof(float) * (size_t)c->part_floats);
        for (int k = k0; k < k1; k++) {
            const uint8_t *wr = c->w + wm * c->w_mat + k * c->w_row;
            const QT_T *sr = (const QT_T *)c->s + wm * c->s_mat + (int64_t)k * G;
            const QT_T *br = (const QT_T *)c->b + wm * c->s_mat + (int64_t)k * G;
            float xk[QMM_SMALL_M];
            for (int m = 0; m < MB; m++) xk[m] = x[(int64_t)m * K + k];
            for (int g = 0; g < G; g++) {
                const uint8_t *wg = wr + (int64_t)g * gbytes;
                float s = QT_LD(sr[g]), b = QT_LD(br[g]), a[QMM_SMALL_M];
                for (int m = 0; m < MB; m++) {
                    a[m] = xk[m] * s;
                    bsum[(int64_t)m * G + g] += xk[m] * b;
                }
                float *ag = acc + (int64_t)g * gs;
                for (int i = 0; i < chunks; i++) {
                    qt_f32x8 q;
                    qt_chunk(&q, wg, bits, i);
                    for (int m = 0; m < MB; m++) {
                        float *ap = ag + (int64_t)m * N + 8 * i;
                        qt_f32x8 v;
                        qt_load8(&v, ap);
                        v += a[m] * q;
                        memcpy(ap, &v, sizeof v);
                    }
                }
            }
        }
    }
}
static void QT_SFX(qt_mm_n_small)(void *vc, int64_t u0, int64_t u1) {
    const qt_mm_ctx *c = vc;
    if (c->M == 1) {
#define QT_CASE(b) QT_SFX(qt_mm_n_body)(c, u0, u1, b, 1)
        QT_SWITCH_BITS(c->bits, QT_CASE)
#undef QT_CASE
    } else {
#define QT_CASE(b) QT_SFX(qt_mm_n_body)(c, u0, u1, b, c->M)
        QT_SWITCH_BITS(c->bits, QT_CASE)
#undef QT_CASE
    }
}
/* units are (matrix, row m, block of 256 columns): out = sum over parts */
static void QT_SFX(qt_mm_n_reduce)(void *vc, int64_t u0, int64_t u1) {
    const qt_mm_ctx *c = vc;
    const int M = c->M, N = c->N, G = c->G, gs = c->gs, P = c->parts;
    const int nblk = (N + 255) / 256;
    for (int64_t u = u0; u < u1; u++) {
        int64_t bm = u / nblk; /* matrix * M + row */
        int n0 = (int)(u % nblk) * 256, n1 = n0 + 256 < N ? n0 + 256 : N;
        int64_t bi = bm / M;
        int m = (int)(bm % M);
        QT_T *o = (QT_T *)c->out + bm * (int64_t)N;
        for (int n = n0; n < n1; n++) {
            float v = 0.0f;
            for (int p = 0; p < P; p++) {
                const float *part = c->partial + (bi * P + p) * c->part_floats;
                v += part[(int64_t)m * N + n] +
                     part[(int64_t)M * N + (int64_t)m * G + n / gs];
            }
            o[n] = QT_ST(v);
        }
    }
}

/* transpose panel: rows n0 + [r0, r1) of w matrix c->mat as float32 [nb, K] */
static void QT_SFX(qt_panel_t)(void *vc, int64_t r0, int64_t r1) {
    const qt_mm_ctx *c = vc;
    const int K = c->K, gs = c->gs, bits = c->bits, G = c->G, gbytes = gs * bits / 8;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = c->n0 + r;
        const uint8_t *wr = c->w + c->mat * c->w_mat + n * c->w_row;
        const QT_T *sr = (const QT_T *)c->s + c->mat * c->s_mat + n * G;
        const QT_T *br = (const QT_T *)c->b + c->mat * c->s_mat + n * G;
        float *o = c->panel + r * K;
        for (int g = 0; g < G; g++) {
            float *og = o + (int64_t)g * gs;
            qt_unpack(wr + (int64_t)g * gbytes, bits, gs, og);
            float s = QT_LD(sr[g]), b = QT_LD(br[g]);
            for (int j = 0; j < gs; j++) og[j] = og[j] * s + b;
        }
    }
}

/* no-transpose panel: columns [n0, n0 + nb) of rows [k0, k1) as float32 [K, nb] */
static void QT_SFX(qt_panel_n)(void *vc, int64_t k0, int64_t k1) {
    const qt_mm_ctx *c = vc;
    const int gs = c->gs, bits = c->bits, G = c->G, gbytes = gs * bits / 8;
    const int ga = c->n0 / gs, gb = (c->n0 + c->nb) / gs;
    for (int64_t k = k0; k < k1; k++) {
        const uint8_t *wr = c->w + c->mat * c->w_mat + k * c->w_row;
        const QT_T *sr = (const QT_T *)c->s + c->mat * c->s_mat + k * G;
        const QT_T *br = (const QT_T *)c->b + c->mat * c->s_mat + k * G;
        float *o = c->panel + k * c->nb;
        for (int g = ga; g < gb; g++) {
            float *og = o + (int64_t)(g - ga) * gs;
            qt_unpack(wr + (int64_t)g * gbytes, bits, gs, og);
            float s = QT_LD(sr[g]), b = QT_LD(br[g]);
            for (int j = 0; j < gs; j++) og[j] = og[j] * s + b;
        }
    }
}

static void QT_SFX(qt_to_f32)(const void *src, float *dst, int64_t n) {
    const QT_T *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = QT_LD(p[i]);
}
static void QT_SFX(qt_from_f32)(const float *src, void *dst, int64_t n) {
    QT_T *p = dst;
    for (int64_t i = 0; i < n; i++) p[i] = QT_ST(src[i]);
}

static const qt_ops QT_SFX(qt_ops) = {
    QT_SFX(qt_quantize), QT_SFX(qt_dequantize), QT_SFX(qt_mm_t_small),
    QT_SFX(qt_mm_n_small), QT_SFX(qt_mm_n_reduce), QT_SFX(qt_panel_t),
    QT_SFX(qt_panel_n), QT_SFX(qt_to_f32), QT_SFX(qt_from_f32)};


#endif
