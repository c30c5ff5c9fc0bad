/*
 * test_backend_ops.c -- every primitive on a reference and on each target, compared (in the
 * style of ggml's test-backend-ops).
 *
 * A case is a row of `cases[]` below: a public op (which builds the primitive under test),
 * its input shapes, the dtypes tried and the tolerance. Each case runs for every shape set,
 * every dtype of `dtypes` (default: all 13; a dtype the op refuses with LX_E_DTYPE when it is
 * built is counted as refused, not run) and every input layout (contiguous, permuted,
 * strided, broadcast, offset, reversed; empty shapes contiguous only), with inputs drawn from
 * a seed that names the instance. The instance is built and evaluated on the reference and on
 * the target from the same seed, the outputs read back with lx_read, and compared:
 *
 *   integer and bool outputs, and every data-movement case: exact (byte-equal);
 *   EXACT     floats bit-equal (NaN with any payload equals NaN);
 *   ULP(k)    floats within k units in the last place of the output dtype at the reference;
 *   NORM(k)   max |ref - got| / max |ref| over each row (last axis) <= k * eps of the output
 *             dtype (eps = 2^-23 float32, 2^-10 float16, 2^-7 bfloat16, 2^-52 float64);
 *   COND(k)   |ref - got| <= k * eps * C elementwise, C the same op on |inputs| (in float32):
 *             sum(|x|), |a| @ |b|, ..., the classical bound of a sum in any order (a case may
 *             give its own C); for sums, where cancellation makes max |ref| meaningless;
 *   and, under every metric, NaN where the reference has NaN, the same infinities, no
 *   non-finite value where the reference is finite.
 *
 * Targets (`targets[]`): each is {name, reference context, target context, which cases,
 * whether the target's own contract is bit-identity}; a context is {name, enter, leave,
 * available}: the CPU kernel variants (select.h) against the generic one, native fused code
 * (LX_JIT always) against the fused-program interpreter (LX_JIT off) on closures that fuse,
 * and the GPU device (lx_set_default_device(LX_GPU), whatever module LX_DEVICE_MODULES loaded)
 * against the generic CPU. A target whose context is unavailable is reported as skipped.
 *
 * Arguments: -o OP (only cases whose op contains OP), -t TARGET (only that target), -r (a
 * skipped target is a failure: for runs that load a device module on purpose), -v (every
 * instance). Prints per target the cases run and passed, the worst error per primitive and
 * dtype, the failures with case, shapes, dtypes, layouts and seed; exits 1 on any failure.
 */
#include <stdarg.h>

#include "backend/cpu/jit.h"
#include "backend/cpu/select.h"
#include "core/dtype.h"
#include "core/handle.h"
#include "core/node.h"
#include "graph/prims.h"
#include "test_graph.h"
#include "test_util.h"
#include "test_values.h"

/* ---------------------------------------------------------------------------------------- */
/* Input domains, layouts, tolerances                                                         */

typedef enum {
    D_ANY,    /* floats in [-3, 3]; signed ints [-20, 20]; unsigned [0, 40]; bool */
    D_POS,    /* floats [0.05, 4]; ints [1, 20] */
    D_UNIT,   /* floats (-0.99, 0.99); ints [-1, 1] */
    D_NEAR1,  /* floats [0.8, 1.25]; ints +-1 (unsigned 1): products that stay in range */
    D_SMALL,  /* floats [-3, 3]; ints [-3, 3] (unsigned [0, 3]): bases of pow */
    D_EXP,    /* floats [-3, 3]; ints [0, 4]: exponents of pow */
    D_IDX,    /* indices into input 0's axis `iarg[0]`, some out of range (clamped) and negative */
    D_RANGE,  /* indices in [0, param) (param: the extent of input `dparam`'s axis 0) */
    D_PERM,   /* each last-axis row a prefix of a permutation of input 0's axis iarg[0] */
    D_BOOL,   /* random true / false */
    D_KEY,    /* full-range uint32 */
} domain;

typedef struct {
    int dtype;  /* -1: the case's dtype */
    domain dom;
    int dparam;
} in_spec;

enum { L_CONTIG, L_PERMUTED, L_STRIDED, L_BROADCAST, L_OFFSET, L_REVERSED, L_COUNT };
static const char *const LAYOUT_NAME[L_COUNT] = {"contiguous", "permuted", "strided",
                                                 "broadcast",  "offset",   "reversed"};

typedef enum { M_EXACT, M_ULP, M_NORM, M_COND } metric;
typedef struct {
    metric m;
    double k;
} tolerance;
#define EXACT ((tolerance){M_EXACT, 0})
#define ULP(k) ((tolerance){M_ULP, (k)})
#define NORM(k) ((tolerance){M_NORM, (k)})
#define COND(k) ((tolerance){M_COND, (k)})

/* case flags */
#define F_SPECIALS 1u /* float inputs get NaN, +-Inf, +-0, subnormals, extremes */
#define F_FUSE 2u     /* a fused-program case: only for the fused targets, via lx_compile */
#define F_NOLAYOUT 4u /* inputs contiguous only (the op's inputs are parameters) */
/* input 0 is never broadcast (a stride-0 row is constant: layer_norm's variance is then 0 and
 * its output the rounding noise of the mean amplified by 1/sqrt(eps), which says nothing about
 * either implementation) */
#define F_ROWVAR 8u

#define DT(t) (1u << (t))
#define DT_ALL 0x1fffu
#define DT_FLOAT (DT(LX_FLOAT16) | DT(LX_BFLOAT16) | DT(LX_FLOAT32) | DT(LX_FLOAT64))
#define DT_QFLOAT (DT(LX_FLOAT16) | DT(LX_BFLOAT16) | DT(LX_FLOAT32))

/* ---------------------------------------------------------------------------------------- */
/* The case table's row                                                                       */

#define MAX_IN 5
#define MAX_OUT 8
#define MAX_SETS 8

typedef struct bcase bcase;
typedef struct {
    const bcase *c;
    int set;
    lx_dtype t;
    int layout;
    uint64_t seed;
    int n_shapes;
    int ndim[MAX_IN + 2];
    int dims[MAX_IN + 2][LX_MAX_NDIM];
    int in_layout[MAX_IN];
} inst;

/* Builds the case's outputs from its inputs; returns how many (or 0 on an op error). */
typedef int (*apply_fn)(const inst *I, const lx_array *in, lx_array *out);

struct bcase {
    const char *op;   /* what the summary calls it */
    int prim;         /* the primitive under test: must appear in the built graph */
    apply_fn apply;
    int n_in, n_out;
    in_spec in[MAX_IN];
    const char *shapes; /* sets by ';', inputs by ',', dims by 'x'; "s": a 0-d array */
    unsigned dtypes;    /* DT mask; 0 = all */
    tolerance tol;      /* for float outputs; integer / bool outputs are always exact */
    unsigned flags;
    const char *why;    /* the tolerance's reason (the table's comment, printed with -v) */
    apply_fn cond;      /* COND's magnitudes C (default: apply on |inputs| in float32) */
    /* op parameters */
    lx_array (*u)(lx_array);
    lx_array (*b)(lx_array, lx_array);
    lx_array (*bs)(lx_array, double);
    lx_array (*ax)(lx_array, int);
    lx_array (*red)(lx_array, int, bool);
    lx_array (*redn)(lx_array, const int *, int, bool);
    int iarg[6];
    double darg;
    int to; /* astype target */
};

/* ---------------------------------------------------------------------------------------- */
/* Apply functions                                                                            */

static int ap_unary(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = I->c->u(in[0]);
    return 1;
}
/* COND magnitude |x| (cast like the op's result) */
static int cond_abs_x(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_abs(lx_astype(in[0], LX_FLOAT32));
    return 1;
}
static int ap_binary(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = I->c->b(in[0], in[1]);
    return 1;
}
static int ap_scalar(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = I->c->bs(in[0], I->c->darg);
    return 1;
}
static int ap_where(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_where(in[0], in[1], in[2]);
    return 1;
}
static int ap_clip(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_clip(in[0], in[1], in[2]);
    return 1;
}
static int ap_astype(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_astype(in[0], (lx_dtype)I->c->to);
    return 1;
}
static int ap_contiguous(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_contiguous(in[0]);
    return 1;
}
static int ap_full(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_full(I->dims[0], I->ndim[0], I->c->darg, I->t);
    return 1;
}
static int ap_arange(const inst *I, const lx_array *in, lx_array *out) {
    const int *a = I->c->iarg;
    out[0] = lx_arange(a[0] * 0.25, a[1] * 0.25, a[2] * 0.25, I->t);
    return 1;
}
static int ap_reduce(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = I->c->red(in[0], I->c->iarg[0], I->c->iarg[1] != 0);
    return 1;
}
static int ap_reduce_all(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = I->c->redn(in[0], NULL, 0, I->c->iarg[1] != 0);
    return 1;
}
static int ap_var(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_var(in[0], I->c->iarg[0], false, I->c->iarg[1]);
    return 1;
}
static int ap_axis(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = I->c->ax(in[0], I->c->iarg[0]);
    return 1;
}
/* partition / argpartition / topk leave their order open: sort what they give */
static int ap_partition(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_sort(lx_partition(in[0], I->c->iarg[1], I->c->iarg[0]), I->c->iarg[0]);
    return 1;
}
static int ap_argpartition(const inst *I, const lx_array *in, lx_array *out) {
    int axis = I->c->iarg[0];
    lx_array ix = lx_argpartition(in[0], I->c->iarg[1], axis);
    out[0] = lx_sort(lx_take_along_axis(in[0], ix, axis), axis);
    return 1;
}
static int ap_topk(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_sort(lx_topk(in[0], I->c->iarg[1], I->c->iarg[0]), I->c->iarg[0]);
    return 1;
}
static int ap_rms_norm(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_rms_norm(in[0], I->c->n_in > 1 ? in[1] : LX_NULL_ARRAY, 1e-5f);
    return 1;
}
static int ap_layer_norm(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_layer_norm(in[0], I->c->n_in > 1 ? in[1] : LX_NULL_ARRAY,
                           I->c->n_in > 2 ? in[2] : LX_NULL_ARRAY, 1e-5f);
    return 1;
}
static int ap_group_norm(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_group_norm(in[0], I->c->iarg[0], I->c->n_in > 1 ? in[1] : LX_NULL_ARRAY,
                           I->c->n_in > 2 ? in[2] : LX_NULL_ARRAY, 1e-5f);
    return 1;
}
static int ap_rope(const inst *I, const lx_array *in, lx_array *out) {
    const int *a = I->c->iarg;
    int dims = a[0] ? a[0] : I->dims[0][I->ndim[0] - 1];
    out[0] = lx_rope(in[0], dims, a[1] != 0, 10000.0f, I->c->darg ? (float)I->c->darg : 1.0f,
                     a[2]);
    return 1;
}
static int ap_sdpa(const inst *I, const lx_array *in, lx_array *out) {
    const bcase *c = I->c;
    float scale = 1.0f / sqrtf((float)I->dims[0][I->ndim[0] - 1]);
    lx_array mask = c->iarg[1] ? in[3] : LX_NULL_ARRAY;
    if (c->iarg[2]) out[0] = lx_sdpa_sinks(in[0], in[1], in[2], scale, c->iarg[0] != 0, mask,
                                           in[c->n_in - 1]);
    else out[0] = lx_sdpa(in[0], in[1], in[2], scale, c->iarg[0] != 0, mask);
    return 1;
}
static int ap_conv1d(const inst *I, const lx_array *in, lx_array *out) {
    const int *a = I->c->iarg;
    out[0] = lx_conv1d(in[0], in[1], a[0], a[1], a[2], a[3]);
    return 1;
}
static int ap_conv2d(const inst *I, const lx_array *in, lx_array *out) {
    const int *a = I->c->iarg;
    out[0] = lx_conv2d(in[0], in[1], (const int[]){a[0], a[0]}, (const int[]){a[1], a[1]},
                       (const int[]){a[2], a[2]}, a[3]);
    return 1;
}
static int ap_conv_t1d(const inst *I, const lx_array *in, lx_array *out) {
    const int *a = I->c->iarg;
    out[0] = lx_conv_transpose1d(in[0], in[1], a[0], a[1], a[2], a[4], a[3]);
    return 1;
}
static int ap_random_bits(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_random_bits(I->dims[1], I->ndim[1], I->c->iarg[0], in[0]);
    return 1;
}
static int ap_random_normal(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_random_normal(I->dims[1], I->ndim[1], I->t, in[0]);
    return 1;
}
static int ap_take(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_take(in[0], in[1], I->c->iarg[0]);
    return 1;
}
static int ap_take_along(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_take_along_axis(in[0], in[1], I->c->iarg[0]);
    return 1;
}
static int ap_put_along(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_put_along_axis(in[0], in[1], in[2], I->c->iarg[0]);
    return 1;
}
static int ap_slice_update(const inst *I, const lx_array *in, lx_array *out) {
    const int *a = I->c->iarg; /* start0, start1, step0, step1 */
    int nd = I->ndim[1];
    int start[2] = {a[0], a[1]}, step[2] = {a[2], a[3]}, stop[2];
    for (int d = 0; d < nd; d++) stop[d] = start[d] + (I->dims[1][d] - 1) * step[d] + 1;
    out[0] = lx_slice_update(in[0], in[1], start, stop, step, nd);
    return 1;
}
static int ap_concat(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_concatenate(in, I->c->n_in, I->c->iarg[0]);
    return 1;
}
static int ap_pad(const inst *I, const lx_array *in, lx_array *out) {
    const int *a = I->c->iarg;
    out[0] = lx_pad(in[0], (const int[]){a[0], a[1]}, (const int[]){a[2], a[3]}, I->ndim[0],
                    I->c->darg);
    return 1;
}
static int ap_tile(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_tile(in[0], I->c->iarg, I->ndim[0]);
    return 1;
}
static int ap_repeat(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_repeat(in[0], I->c->iarg[0], I->c->iarg[1]);
    return 1;
}
static int ap_tril(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = I->c->iarg[1] ? lx_triu(in[0], I->c->iarg[0]) : lx_tril(in[0], I->c->iarg[0]);
    return 1;
}
static int ap_reshape(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_reshape(in[0], (const int[]){-1}, 1);
    return 1;
}
static int ap_transpose(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_contiguous(lx_transpose(in[0], NULL, 0));
    return 1;
}
static int ap_slice(const inst *I, const lx_array *in, lx_array *out) {
    int nd = I->ndim[0], start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM];
    for (int d = 0; d < nd; d++) {
        start[d] = I->dims[0][d] > 1 ? 1 : 0;
        stop[d] = I->dims[0][d];
        step[d] = d == nd - 1 ? 3 : 1;
    }
    out[0] = lx_contiguous(lx_slice(in[0], start, stop, step, nd));
    return 1;
}
static int ap_broadcast(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_contiguous(lx_broadcast_to(in[0], I->dims[1], I->ndim[1]));
    return 1;
}
static int ap_as_strided(const inst *I, const lx_array *in, lx_array *out) {
    /* overlapping windows of 5 over the flattened input, hop 3 */
    int n = (int)lx_size(in[0]);
    int rows = n >= 5 ? (n - 5) / 3 + 1 : 0;
    out[0] = lx_contiguous(
        lx_as_strided(in[0], (const int[]){rows, 5}, (const int64_t[]){3, 1}, 2, 0));
    return 1;
}
static int ap_split(const inst *I, const lx_array *in, lx_array *out) {
    lx_status st = lx_split(in[0], (const int[]){1, 4}, 2, -1, out);
    return st == LX_OK ? 3 : 0;
}
static int ap_quantize(const inst *I, const lx_array *in, lx_array *out) {
    lx_status st = lx_quantize(in[0], I->c->iarg[0], I->c->iarg[1], &out[0], &out[1], &out[2]);
    return st == LX_OK ? 3 : 0;
}
static int ap_dequantize(const inst *I, const lx_array *in, lx_array *out) {
    int gs = I->c->iarg[0], bits = I->c->iarg[1];
    lx_array wq, s, b;
    if (lx_quantize(in[0], gs, bits, &wq, &s, &b) != LX_OK) return 0;
    out[0] = lx_dequantize(wq, s, b, gs, bits);
    return 1;
}
static int ap_qmm(const inst *I, const lx_array *in, lx_array *out) {
    int gs = I->c->iarg[0], bits = I->c->iarg[1];
    lx_array wq, s, b;
    if (lx_quantize(in[1], gs, bits, &wq, &s, &b) != LX_OK) return 0;
    out[0] = lx_quantized_matmul(in[0], wq, s, b, I->c->iarg[2] != 0, gs, bits);
    return 1;
}
static int ap_gather_mm(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_gather_mm(in[0], in[1], in[2], in[3]);
    return 1;
}
static int ap_gather_qmm(const inst *I, const lx_array *in, lx_array *out) {
    int gs = I->c->iarg[0], bits = I->c->iarg[1];
    lx_array wq, s, b;
    if (lx_quantize(in[1], gs, bits, &wq, &s, &b) != LX_OK) return 0;
    out[0] = lx_gather_qmm(in[0], wq, s, b, in[2], in[3], true, gs, bits);
    return 1;
}

/* COND magnitudes that are not the op on |inputs|. float32 is enough for a magnitude (and
 * the one dtype every op here takes). */
static lx_array abs32(lx_array x) { return lx_abs(lx_astype(x, LX_FLOAT32)); }
static int cond_var(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_mean(lx_square(abs32(in[0])), I->c->iarg[0], false); /* var <= E[x^2] */
    return 1;
}
static int cond_sdpa(const inst *I, const lx_array *in, lx_array *out) {
    /* the output is softmax(q k') v: its rounding scales with softmax(q k') |v| */
    lx_array mod[MAX_IN];
    for (int k = 0; k < I->c->n_in; k++)
        mod[k] = lx_dtype_is_float(lx_dtype_of(in[k])) ? lx_astype(in[k], LX_FLOAT32) : in[k];
    mod[2] = lx_abs(mod[2]);
    return ap_sdpa(I, mod, out);
}
static lx_array abs_dequantized(const inst *I, lx_array w) {
    int gs = I->c->iarg[0], bits = I->c->iarg[1];
    lx_array wq, s, b;
    if (lx_quantize(w, gs, bits, &wq, &s, &b) != LX_OK) return LX_NULL_ARRAY;
    return abs32(lx_dequantize(wq, s, b, gs, bits));
}
static int cond_qmm(const inst *I, const lx_array *in, lx_array *out) {
    lx_array w = abs_dequantized(I, in[1]);
    out[0] = lx_matmul(abs32(in[0]), I->c->iarg[2] ? lx_swapaxes(w, -1, -2) : w);
    return 1;
}
static int cond_gather_qmm(const inst *I, const lx_array *in, lx_array *out) {
    lx_array w = abs_dequantized(I, in[1]);
    out[0] = lx_gather_mm(abs32(in[0]), lx_swapaxes(w, -1, -2), in[2], in[3]);
    return 1;
}

/* Fused-program cases: several elementwise ops of one input (or two) in one program. An op
 * that refuses the dtype (LX_E_DTYPE) is left out: that output is the input, passed through. */
static lx_array (*const UNARY_OPS[])(lx_array) = {
    lx_neg,   lx_abs,   lx_sign,  lx_square, lx_sqrt,     lx_rsqrt,       lx_reciprocal, lx_exp,
    lx_expm1, lx_log,   lx_log1p, lx_log2,   lx_log10,    lx_sin,         lx_cos,        lx_tan,
    lx_tanh,  lx_erf,   lx_erfinv, lx_sigmoid, lx_silu,   lx_relu,        lx_gelu,
    lx_gelu_approx, lx_floor, lx_ceil, lx_round, lx_logical_not, lx_isnan, lx_isinf, lx_isfinite};
static lx_array (*const BINARY_OPS[])(lx_array, lx_array) = {
    lx_add,     lx_sub,          lx_mul,          lx_div,        lx_pow,       lx_maximum,
    lx_minimum, lx_floor_divide, lx_remainder,    lx_arctan2,    lx_equal,     lx_not_equal,
    lx_less,    lx_less_equal,   lx_greater,      lx_greater_equal, lx_logical_and,
    lx_logical_or};
static const lx_dtype CASTS[] = {LX_BOOL,  LX_UINT8, LX_UINT16,  LX_UINT32,   LX_UINT64,
                                 LX_INT8,  LX_INT16, LX_INT32,   LX_INT64,    LX_FLOAT16,
                                 LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};

static lx_array or_input(lx_array y, lx_array x) {
    if (lx_error() != LX_E_DTYPE) return y;
    lx_clear_error();
    return x;
}
static int ap_fuse_unary(const inst *I, const lx_array *in, lx_array *out) {
    for (int j = 0; j < I->c->n_out; j++)
        out[j] = or_input(UNARY_OPS[I->c->iarg[0] + j](in[0]), in[0]);
    return I->c->n_out;
}
static int ap_fuse_binary(const inst *I, const lx_array *in, lx_array *out) {
    for (int j = 0; j < I->c->n_out; j++)
        out[j] = or_input(BINARY_OPS[I->c->iarg[0] + j](in[0], in[1]), in[0]);
    return I->c->n_out;
}
static int ap_fuse_select(const inst *I, const lx_array *in, lx_array *out) {
    out[0] = lx_where(lx_less(in[0], in[1]), lx_exp(in[0]), lx_neg(in[1]));
    out[1] = lx_clip(lx_mul(in[0], in[1]), in[1], LX_NULL_ARRAY);
    out[2] = lx_where(lx_isnan(in[0]), in[1], lx_silu(in[0]));
    for (int j = 0; j < 3; j++) out[j] = or_input(out[j], in[0]);
    return 3;
}
static int ap_fuse_cast(const inst *I, const lx_array *in, lx_array *out) {
    for (int j = 0; j < I->c->n_out; j++)
        out[j] = lx_astype(lx_add(in[0], in[0]), CASTS[I->c->iarg[0] + j]);
    return I->c->n_out;
}

/* ---------------------------------------------------------------------------------------- */
/* The case table                                                                             */

/* Tolerances and their reasons. */
/* Elementwise kernels (unary.c, binary.c, where.c, copy.c) are built with -ffp-contract=off
 * and one per-element definition shared by every variant (HACKING: fused programs): IEEE
 * operations and exact ones give the same bits in every variant, 0 ulp; the functions written
 * with LX_EW_FMA do not (UNV below). */
#define TOL_EW ULP(0)
#define WHY_EW "elementwise: one per-element definition, -ffp-contract=off in every variant"
/* Kernels built with -ffp-contract=fast: v3/v4 contract a*b+c into FMA (one rounding instead
 * of two) and may accumulate in vector lanes, a device in its own order. Row ops (norms,
 * softmax, rope) round a few times per element: NORM(8), 8 eps of the row's largest value.
 * Sums: COND(k) bounds |ref - got| by k eps * sum|x|; summing n terms in another order moves
 * the result by about sqrt(n) roundings of the partial sums (a random walk), so k is at least
 * sqrt(n) of the case's longest sum: 32 for reductions and scans (n <= 514: 22.7), 16 for
 * products of K <= 257 (16.0). */
#define WHY_ROW "row op (norm/softmax/rope): FMA contraction and lane order, a few eps of the row"
#define WHY_RED "sum of n <= 514 terms in another order: <= sqrt(n) eps * sum|x|"
#define WHY_SEL "a selection: exact"
#define WHY_PROD "product of n <= 257 terms in another order: each product rounds once, <= n eps relative"
#define WHY_MM "dot products of K <= 257 terms (BLAS or own loops): <= sqrt(K) eps * |a||b|"

#define IN1(d) {{-1, (d), 0}}
#define IN2(d0, d1) {{-1, (d0), 0}, {-1, (d1), 0}}

#define UNT(name, fn, dom, tol_, why_)                                                    \
    {.op = name, .prim = LX_PRIM_UNARY, .apply = ap_unary, .n_in = 1, .in = IN1(dom),      \
     .shapes = "s;1;7;3x33;2x257;2x3x4x9;0x3", .tol = tol_, .flags = F_SPECIALS,           \
     .why = why_, .u = fn}
#define UN(name, fn, dom) UNT(name, fn, dom, TOL_EW, WHY_EW)
/* A function whose multiply-adds are LX_EW_FMA: fused on v3/v4, two roundings on generic/v2
 * (graph/values.h), and erf's polynomial differs with FMA: each variant is within its
 * accuracy bound of the true value (tests/test_unary_accuracy.c, test_erf_exhaustive.c: tanh
 * 1.5, log2 1.4, log10 1.3, expm1 1.7, log1p 1.0, sin/cos 0.6, erfinv 0.6, erf 7 ulp; exp
 * and log ~1), so two variants within twice that, rounded up. */
#define UNV(name, fn, dom, k) UNT(name, fn, dom, ULP(k), WHY_VAR)
#define WHY_VAR "variants round LX_EW_FMA once or twice: 2x the op's accuracy bound"
/* gelu and gelu_approx cancel in 1 + erf / 1 + tanh for x < 0, where the result's own ulp
 * means nothing: the error is bounded against |x| (COND with C = |x|), 4 eps */
#define WHY_GELU "1 + erf(x) cancels for x < 0: error relative to |x|"
#define BIN(name, fn, d0, d1)                                                              \
    {.op = name, .prim = LX_PRIM_BINARY, .apply = ap_binary, .n_in = 2, .in = IN2(d0, d1), \
     .shapes = "1,1;7,7;3x33,3x33;2x257,2x257;5x1x9,3x9;3x33,s;0x3,1x3", .tol = TOL_EW,     \
     .flags = F_SPECIALS, .why = WHY_EW, .b = fn}
#define SCAL(name, fn, v, dom)                                                              \
    {.op = name, .prim = LX_PRIM_BINARY, .apply = ap_scalar, .n_in = 1, .in = IN1(dom),     \
     .shapes = "7;3x33;2x257;0x2", .tol = TOL_EW, .flags = F_SPECIALS, .why = WHY_EW, \
     .bs = fn, .darg = v}
#define CAST(name, t)                                                                      \
    {.op = name, .prim = LX_PRIM_COPY, .apply = ap_astype, .n_in = 1, .in = IN1(D_ANY),     \
     .shapes = "s;7;3x33;2x257;2x3x4x9;0x3", .tol = EXACT, .flags = F_SPECIALS,   \
     .why = "a conversion is exact or correctly rounded", .to = t}
#define REDS(name, prim_, fn, dom, axis, tol_, shapes_, why_)                               \
    {.op = name, .prim = prim_, .apply = ap_reduce, .n_in = 1, .in = IN1(dom),             \
     .shapes = shapes_, .tol = tol_, .why = why_, .red = fn, .iarg = {axis, 0}}
#define RED(name, prim_, fn, dom, axis, tol_, why_) \
    REDS(name, prim_, fn, dom, axis, tol_, "7;3x33;2x257;4x5x6;0x4;4x0", why_)
#define REDALL(name, fn, dom, tol_, shapes_, why_)                                          \
    {.op = name, .prim = LX_PRIM_REDUCE, .apply = ap_reduce_all, .n_in = 1, .in = IN1(dom), \
     .shapes = shapes_, .tol = tol_, .why = why_, .redn = fn, .iarg = {0, 1}}
#define AXIS(name, prim_, fn, dom, axis, tol_, why_)                                        \
    {.op = name, .prim = prim_, .apply = ap_axis, .n_in = 1, .in = IN1(dom),               \
     .shapes = "7;3x33;2x257;4x5x6;0x4", .tol = tol_, .why = why_, .ax = fn, .iarg = {axis}}
#define MOVE(name, prim_, fn, shapes_)                                                       \
    {.op = name, .prim = prim_, .apply = fn, .n_in = 1, .in = IN1(D_ANY), .shapes = shapes_, \
     .tol = EXACT, .flags = F_SPECIALS, .why = "data movement: exact"}

static const bcase cases[] = {
    /* ---- UNARY: every op, every dtype (the op promotes or refuses) ---- */
    UN("neg", lx_neg, D_ANY), UN("abs", lx_abs, D_ANY), UN("sign", lx_sign, D_ANY),
    UN("square", lx_square, D_ANY), UN("sqrt", lx_sqrt, D_POS), UN("rsqrt", lx_rsqrt, D_POS),
    UN("reciprocal", lx_reciprocal, D_POS), UNV("exp", lx_exp, D_ANY, 2),
    UNV("expm1", lx_expm1, D_ANY, 4), UNV("log", lx_log, D_POS, 2),
    UNV("log1p", lx_log1p, D_POS, 2), UNV("log2", lx_log2, D_POS, 3),
    UNV("log10", lx_log10, D_POS, 3), UNV("sin", lx_sin, D_ANY, 2), UNV("cos", lx_cos, D_ANY, 2),
    UNV("tan", lx_tan, D_UNIT, 2), UNV("tanh", lx_tanh, D_ANY, 3), UNV("erf", lx_erf, D_ANY, 14),
    UNV("erfinv", lx_erfinv, D_UNIT, 2), UNV("sigmoid", lx_sigmoid, D_ANY, 4),
    UNV("silu", lx_silu, D_ANY, 4), UN("relu", lx_relu, D_ANY),
    {.op = "gelu", .prim = LX_PRIM_UNARY, .apply = ap_unary, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "s;1;7;3x33;2x257;2x3x4x9;0x3", .tol = COND(4), .flags = F_SPECIALS,
     .why = WHY_GELU, .u = lx_gelu, .cond = cond_abs_x},
    {.op = "gelu_approx", .prim = LX_PRIM_UNARY, .apply = ap_unary, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "s;1;7;3x33;2x257;2x3x4x9;0x3", .tol = COND(4), .flags = F_SPECIALS,
     .why = WHY_GELU, .u = lx_gelu_approx, .cond = cond_abs_x},
    UN("floor", lx_floor, D_ANY),
    UN("ceil", lx_ceil, D_ANY), UN("round", lx_round, D_ANY),
    UN("logical_not", lx_logical_not, D_ANY), UN("isnan", lx_isnan, D_ANY),
    UN("isinf", lx_isinf, D_ANY), UN("isfinite", lx_isfinite, D_ANY),
    /* ---- BINARY ---- */
    BIN("add", lx_add, D_ANY, D_ANY), BIN("sub", lx_sub, D_ANY, D_ANY),
    BIN("mul", lx_mul, D_ANY, D_ANY), BIN("div", lx_div, D_ANY, D_POS),
    BIN("pow", lx_pow, D_SMALL, D_EXP), BIN("maximum", lx_maximum, D_ANY, D_ANY),
    BIN("minimum", lx_minimum, D_ANY, D_ANY), BIN("floor_divide", lx_floor_divide, D_ANY, D_POS),
    BIN("remainder", lx_remainder, D_ANY, D_POS), BIN("arctan2", lx_arctan2, D_ANY, D_ANY),
    BIN("equal", lx_equal, D_SMALL, D_SMALL), BIN("not_equal", lx_not_equal, D_SMALL, D_SMALL),
    BIN("less", lx_less, D_SMALL, D_SMALL), BIN("less_equal", lx_less_equal, D_SMALL, D_SMALL),
    BIN("greater", lx_greater, D_SMALL, D_SMALL),
    BIN("greater_equal", lx_greater_equal, D_SMALL, D_SMALL),
    BIN("logical_and", lx_logical_and, D_SMALL, D_SMALL),
    BIN("logical_or", lx_logical_or, D_SMALL, D_SMALL),
    {.op = "add(T, float32)", .prim = LX_PRIM_BINARY, .apply = ap_binary, .n_in = 2,
     .in = {{-1, D_ANY, 0}, {LX_FLOAT32, D_ANY, 0}}, .shapes = "7,7;3x33,1x33;2x257,2x257",
     .tol = TOL_EW, .why = WHY_EW, .b = lx_add},
    {.op = "mul(T, int32)", .prim = LX_PRIM_BINARY, .apply = ap_binary, .n_in = 2,
     .in = {{-1, D_ANY, 0}, {LX_INT32, D_SMALL, 0}}, .shapes = "7,7;3x33,3x1;2x257,2x257",
     .tol = TOL_EW, .why = WHY_EW, .b = lx_mul},
    SCAL("add_scalar", lx_add_scalar, 2.5, D_ANY), SCAL("sub_scalar", lx_sub_scalar, -1.0, D_ANY),
    SCAL("mul_scalar", lx_mul_scalar, 3.0, D_ANY), SCAL("div_scalar", lx_div_scalar, 7.0, D_ANY),
    SCAL("pow_scalar", lx_pow_scalar, 2.0, D_SMALL),
    /* ---- WHERE, clip (BINARY max/min) ---- */
    {.op = "where", .prim = LX_PRIM_WHERE, .apply = ap_where, .n_in = 3,
     .in = {{LX_BOOL, D_BOOL, 0}, {-1, D_ANY, 0}, {-1, D_ANY, 0}},
     .shapes = "7,7,7;3x33,1x33,3x33;2x257,2x257,1;4x5x6,5x6,4x1x6;0x3,0x3,3", .tol = TOL_EW,
     .flags = F_SPECIALS, .why = WHY_EW},
    {.op = "clip", .prim = LX_PRIM_BINARY, .apply = ap_clip, .n_in = 3,
     .in = {{-1, D_ANY, 0}, {-1, D_SMALL, 0}, {-1, D_ANY, 0}}, .shapes = "7,s,s;3x33,33,3x1",
     .tol = TOL_EW, .flags = F_SPECIALS, .why = WHY_EW},
    /* ---- COPY: astype to every dtype, contiguous ---- */
    CAST("astype(bool)", LX_BOOL), CAST("astype(uint8)", LX_UINT8),
    CAST("astype(uint16)", LX_UINT16), CAST("astype(uint32)", LX_UINT32),
    CAST("astype(uint64)", LX_UINT64), CAST("astype(int8)", LX_INT8),
    CAST("astype(int16)", LX_INT16), CAST("astype(int32)", LX_INT32),
    CAST("astype(int64)", LX_INT64), CAST("astype(float16)", LX_FLOAT16),
    CAST("astype(bfloat16)", LX_BFLOAT16), CAST("astype(float32)", LX_FLOAT32),
    CAST("astype(float64)", LX_FLOAT64),
    MOVE("contiguous", LX_PRIM_CONTIGUOUS, ap_contiguous, "7;3x33;2x257;2x3x4x9;0x3"),
    /* ---- FULL, ARANGE (no inputs) ---- */
    {.op = "full", .prim = LX_PRIM_FULL, .apply = ap_full, .shapes = "s;7;3x33;2x257;0x4",
     .tol = EXACT, .why = "a constant", .darg = -2.75},
    {.op = "arange(0,33,1)", .prim = LX_PRIM_ARANGE, .apply = ap_arange, .shapes = "1",
     .tol = EXACT, .why = "start + i*step in copy.c (-ffp-contract=off)", .iarg = {0, 132, 4}},
    {.op = "arange(-3.5,60,0.75)", .prim = LX_PRIM_ARANGE, .apply = ap_arange, .shapes = "1",
     .tol = EXACT, .why = "start + i*step in copy.c (-ffp-contract=off)", .iarg = {-14, 240, 3}},
    /* ---- REDUCE / ARG_REDUCE ---- */
    RED("sum(-1)", LX_PRIM_REDUCE, lx_sum, D_ANY, -1, COND(32), WHY_RED),
    RED("sum(0)", LX_PRIM_REDUCE, lx_sum, D_ANY, 0, COND(32), WHY_RED),
    REDALL("sum(all)", lx_sum_axes, D_ANY, COND(32), "7;3x33;2x257;4x5x6;0x4", WHY_RED),
    RED("mean(-1)", LX_PRIM_REDUCE, lx_mean, D_ANY, -1, COND(32), WHY_RED),
    RED("prod(-1)", LX_PRIM_REDUCE, lx_prod, D_NEAR1, -1, NORM(256), WHY_PROD),
    RED("prod(0)", LX_PRIM_REDUCE, lx_prod, D_NEAR1, 0, NORM(256), WHY_PROD),
    REDS("max(-1)", LX_PRIM_REDUCE, lx_max, D_ANY, -1, EXACT, "7;3x33;2x257;4x5x6;0x4", WHY_SEL),
    REDS("min(0)", LX_PRIM_REDUCE, lx_min, D_ANY, 0, EXACT, "7;3x33;2x257;4x5x6;4x0", WHY_SEL),
    REDALL("max(all)", lx_max_axes, D_ANY, EXACT, "7;3x33;2x257;4x5x6", WHY_SEL),
    RED("all(-1)", LX_PRIM_REDUCE, lx_all, D_SMALL, -1, EXACT, WHY_SEL),
    RED("any(0)", LX_PRIM_REDUCE, lx_any, D_SMALL, 0, EXACT, WHY_SEL),
    REDS("logsumexp(-1)", LX_PRIM_REDUCE, lx_logsumexp, D_ANY, -1, NORM(8), "7;3x33;2x257;4x5x6",
         WHY_ROW),
    {.op = "var(-1)", .prim = LX_PRIM_REDUCE, .apply = ap_var, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "7;3x33;2x257;4x5x6", .tol = COND(32), .why = WHY_RED, .iarg = {-1, 1},
     .cond = cond_var},
    REDS("argmax(-1)", LX_PRIM_ARG_REDUCE, lx_argmax, D_ANY, -1, EXACT, "7;3x33;2x257;4x5x6",
         WHY_SEL),
    REDS("argmin(0)", LX_PRIM_ARG_REDUCE, lx_argmin, D_ANY, 0, EXACT, "7;3x33;2x257;4x5x6",
         WHY_SEL),
    /* ---- SCAN, SORT ---- */
    AXIS("cumsum(-1)", LX_PRIM_SCAN, lx_cumsum, D_ANY, -1, COND(32), WHY_RED),
    AXIS("cumsum(0)", LX_PRIM_SCAN, lx_cumsum, D_ANY, 0, COND(32), WHY_RED),
    AXIS("cumprod(-1)", LX_PRIM_SCAN, lx_cumprod, D_NEAR1, -1, NORM(256), WHY_PROD),
    AXIS("cummax(-1)", LX_PRIM_SCAN, lx_cummax, D_ANY, -1, EXACT, WHY_SEL),
    AXIS("cummin(0)", LX_PRIM_SCAN, lx_cummin, D_ANY, 0, EXACT, WHY_SEL),
    AXIS("sort(-1)", LX_PRIM_SORT, lx_sort, D_ANY, -1, EXACT, "a permutation: exact"),
    AXIS("sort(0)", LX_PRIM_SORT, lx_sort, D_ANY, 0, EXACT, "a permutation: exact"),
    AXIS("argsort(-1)", LX_PRIM_SORT, lx_argsort, D_ANY, -1, EXACT, "indices: exact (stable)"),
    {.op = "partition(-1)", .prim = LX_PRIM_SORT, .apply = ap_partition, .n_in = 1,
     .in = IN1(D_ANY), .shapes = "7;3x33;2x257", .tol = EXACT, .why = "values, sorted: exact",
     .iarg = {-1, 3}},
    {.op = "argpartition(-1)", .prim = LX_PRIM_SORT, .apply = ap_argpartition, .n_in = 1,
     .in = IN1(D_ANY), .shapes = "7;3x33;2x257", .tol = EXACT,
     .why = "the values it selects, sorted: exact", .iarg = {-1, 5}},
    {.op = "topk(-1)", .prim = LX_PRIM_SORT, .apply = ap_topk, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "7;3x33;2x257", .tol = EXACT, .why = "values, sorted: exact", .iarg = {-1, 4}},
    /* ---- SOFTMAX, norms, rope ---- */
    AXIS("softmax(-1)", LX_PRIM_SOFTMAX, lx_softmax, D_ANY, -1, NORM(8), WHY_ROW),
    AXIS("softmax(0)", LX_PRIM_SOFTMAX, lx_softmax, D_ANY, 0, NORM(8), WHY_ROW),
    AXIS("log_softmax(-1)", LX_PRIM_SOFTMAX, lx_log_softmax, D_ANY, -1, NORM(8), WHY_ROW),
    {.op = "rms_norm(x, w)", .prim = LX_PRIM_RMS_NORM, .apply = ap_rms_norm, .n_in = 2,
     .in = IN2(D_ANY, D_ANY), .shapes = "1x7,7;3x33,33;2x257,257;2x3x16,16", .tol = NORM(8),
     .why = WHY_ROW},
    {.op = "rms_norm(x)", .prim = LX_PRIM_RMS_NORM, .apply = ap_rms_norm, .n_in = 1,
     .in = IN1(D_ANY), .shapes = "1x7;3x33;2x257", .tol = NORM(8), .why = WHY_ROW},
    {.op = "layer_norm(x, w, b)", .prim = LX_PRIM_LAYER_NORM, .apply = ap_layer_norm, .n_in = 3,
     .in = {{-1, D_ANY, 0}, {-1, D_ANY, 0}, {-1, D_ANY, 0}},
     .shapes = "1x7,7,7;3x33,33,33;2x257,257,257", .tol = NORM(8), .flags = F_ROWVAR,
     .why = WHY_ROW},
    {.op = "layer_norm(x)", .prim = LX_PRIM_LAYER_NORM, .apply = ap_layer_norm, .n_in = 1,
     .in = IN1(D_ANY), .shapes = "1x7;3x33;2x257", .tol = NORM(8), .flags = F_ROWVAR,
     .why = WHY_ROW},
    {.op = "group_norm(x, 4, w, b)", .prim = LX_PRIM_GROUP_NORM, .apply = ap_group_norm,
     .n_in = 3, .in = {{-1, D_ANY, 0}, {-1, D_ANY, 0}, {-1, D_ANY, 0}},
     .shapes = "2x5x8,8,8;1x33x12,12,12", .tol = NORM(8), .why = WHY_ROW, .iarg = {4}},
    {.op = "rope(dims=D)", .prim = LX_PRIM_ROPE, .apply = ap_rope, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "1x2x7x16;2x1x33x8", .tol = NORM(8), .why = WHY_ROW, .iarg = {0, 0, 3}},
    {.op = "rope(dims=8, traditional)", .prim = LX_PRIM_ROPE, .apply = ap_rope, .n_in = 1,
     .in = IN1(D_ANY), .shapes = "1x2x7x16;2x1x33x8", .tol = NORM(8), .why = WHY_ROW,
     .iarg = {8, 1, 5}, .darg = 0.5},
    /* ---- MATMUL, SDPA, CONV ---- */
    {.op = "matmul", .prim = LX_PRIM_MATMUL, .apply = ap_binary, .n_in = 2,
     .in = IN2(D_ANY, D_ANY),
     .shapes = "1x7,7x1;3x33,33x7;7x257,257x3;2x5x17,17x9;2x3x4x9,3x9x5;0x5,5x3;4x0,0x3",
     .tol = COND(16), .why = WHY_MM, .b = lx_matmul},
    {.op = "sdpa", .prim = LX_PRIM_SDPA, .apply = ap_sdpa, .n_in = 3,
     .in = {{-1, D_ANY, 0}, {-1, D_ANY, 0}, {-1, D_ANY, 0}},
     .shapes = "1x4x7x16,1x2x9x16,1x2x9x16;2x2x1x8,2x2x33x8,2x2x33x8", .tol = COND(16),
     .why = WHY_ROW, .cond = cond_sdpa},
    {.op = "sdpa(causal)", .prim = LX_PRIM_SDPA, .apply = ap_sdpa, .n_in = 3,
     .in = {{-1, D_ANY, 0}, {-1, D_ANY, 0}, {-1, D_ANY, 0}},
     .shapes = "1x4x7x16,1x2x9x16,1x2x9x16;1x2x33x8,1x1x33x8,1x1x33x8", .tol = COND(16),
     .why = WHY_ROW, .iarg = {1}, .cond = cond_sdpa},
    {.op = "sdpa(bool mask, sinks)", .prim = LX_PRIM_SDPA, .apply = ap_sdpa, .n_in = 5,
     .in = {{-1, D_ANY, 0}, {-1, D_ANY, 0}, {-1, D_ANY, 0}, {LX_BOOL, D_BOOL, 0}, {-1, D_ANY, 0}},
     .shapes = "1x4x7x16,1x2x9x16,1x2x9x16,1x4x7x9,4", .tol = COND(16), .why = WHY_ROW,
     .iarg = {0, 1, 1}, .cond = cond_sdpa},
    {.op = "conv1d(s1,p1)", .prim = LX_PRIM_CONV, .apply = ap_conv1d, .n_in = 2,
     .in = IN2(D_ANY, D_ANY), .shapes = "2x9x4,6x3x4;1x33x3,5x5x3", .tol = COND(16),
     .why = WHY_MM, .iarg = {1, 1, 1, 1}},
    {.op = "conv1d(s2,d2,groups 2)", .prim = LX_PRIM_CONV, .apply = ap_conv1d, .n_in = 2,
     .in = IN2(D_ANY, D_ANY), .shapes = "2x17x4,6x3x2", .tol = COND(16), .why = WHY_MM,
     .iarg = {2, 2, 2, 2}},
    {.op = "conv2d(s1,p1)", .prim = LX_PRIM_CONV, .apply = ap_conv2d, .n_in = 2,
     .in = IN2(D_ANY, D_ANY), .shapes = "1x6x7x3,4x3x3x3", .tol = COND(16), .why = WHY_MM,
     .iarg = {1, 1, 1, 1}},
    {.op = "conv_transpose1d(s2,p1)", .prim = LX_PRIM_CONV, .apply = ap_conv_t1d, .n_in = 2,
     .in = IN2(D_ANY, D_ANY), .shapes = "2x9x4,6x3x4", .tol = COND(16), .why = WHY_MM,
     .iarg = {2, 1, 1, 1, 1}},
    /* ---- RANDOM_BITS (and normal samples: bits through erfinv) ---- */
    {.op = "random_bits(4 bytes)", .prim = LX_PRIM_RANDOM_BITS, .apply = ap_random_bits,
     .n_in = 1, .in = {{LX_UINT32, D_KEY, 0}}, .shapes = "2,7;2,3x33;2,257;2,0x3",
     .dtypes = DT(LX_UINT32), .tol = EXACT, .why = "threefry bits", .iarg = {4}},
    {.op = "random_bits(1 byte)", .prim = LX_PRIM_RANDOM_BITS, .apply = ap_random_bits,
     .n_in = 1, .in = {{LX_UINT32, D_KEY, 0}}, .shapes = "2,7;2,3x33;2,257",
     .dtypes = DT(LX_UINT8), .tol = EXACT, .why = "threefry bits", .iarg = {1}},
    {.op = "random_normal", .prim = LX_PRIM_RANDOM_BITS, .apply = ap_random_normal, .n_in = 1,
     .in = {{LX_UINT32, D_KEY, 0}}, .shapes = "2,7;2,3x33;2,257", .dtypes = DT_FLOAT,
     .tol = TOL_EW, .why = WHY_EW},
    /* ---- index family ---- */
    {.op = "take(axis 0, int32)", .prim = LX_PRIM_TAKE, .apply = ap_take, .n_in = 2,
     .in = {{-1, D_ANY, 0}, {LX_INT32, D_IDX, 0}}, .shapes = "7,5;3x33,4;5x257,3x2;5x4,0",
     .tol = EXACT, .why = "data movement: exact", .iarg = {0}},
    {.op = "take(axis -1, int64)", .prim = LX_PRIM_TAKE, .apply = ap_take, .n_in = 2,
     .in = {{-1, D_ANY, 0}, {LX_INT64, D_IDX, 0}}, .shapes = "3x33,9;2x257,2x3", .tol = EXACT,
     .why = "data movement: exact", .iarg = {-1}},
    {.op = "take(axis 1, uint8)", .prim = LX_PRIM_TAKE, .apply = ap_take, .n_in = 2,
     .in = {{-1, D_ANY, 0}, {LX_UINT8, D_IDX, 0}}, .shapes = "3x33x2,7", .tol = EXACT,
     .why = "data movement: exact", .iarg = {1}},
    {.op = "take_along_axis(-1)", .prim = LX_PRIM_TAKE_ALONG, .apply = ap_take_along,
     .n_in = 2, .in = {{-1, D_ANY, 0}, {LX_INT32, D_IDX, 0}},
     .shapes = "3x33,3x5;2x257,2x257;4x6,1x9", .tol = EXACT, .why = "data movement: exact",
     .iarg = {-1}},
    {.op = "take_along_axis(0)", .prim = LX_PRIM_TAKE_ALONG, .apply = ap_take_along, .n_in = 2,
     .in = {{-1, D_ANY, 0}, {LX_INT16, D_IDX, 0}}, .shapes = "4x6,2x6;9x33,3x33", .tol = EXACT,
     .why = "data movement: exact", .iarg = {0}},
    {.op = "put_along_axis(-1)", .prim = LX_PRIM_PUT_ALONG, .apply = ap_put_along, .n_in = 3,
     .in = {{-1, D_ANY, 0}, {LX_INT32, D_PERM, 0}, {-1, D_ANY, 0}},
     .shapes = "3x33,3x5,3x5;2x257,2x7,2x7;4x6,4x6,4x6", .tol = EXACT,
     .why = "data movement: exact (indices unique per row)", .iarg = {-1}},
    {.op = "slice_update", .prim = LX_PRIM_SLICE_UPDATE, .apply = ap_slice_update, .n_in = 2,
     .in = IN2(D_ANY, D_ANY), .shapes = "5x33,2x10;9x257,4x100", .tol = EXACT,
     .why = "data movement: exact", .iarg = {1, 3, 1, 1}},
    {.op = "slice_update(strided)", .prim = LX_PRIM_SLICE_UPDATE, .apply = ap_slice_update,
     .n_in = 2, .in = IN2(D_ANY, D_ANY), .shapes = "5x33,2x10;9x257,3x80", .tol = EXACT,
     .why = "data movement: exact", .iarg = {0, 2, 2, 3}},
    {.op = "concatenate(-1)", .prim = LX_PRIM_CONCATENATE, .apply = ap_concat, .n_in = 3,
     .in = {{-1, D_ANY, 0}, {-1, D_ANY, 0}, {-1, D_ANY, 0}},
     .shapes = "3x7,3x1,3x33;2x257,2x0,2x9", .tol = EXACT, .why = "data movement: exact",
     .iarg = {-1}},
    {.op = "concatenate(0)", .prim = LX_PRIM_CONCATENATE, .apply = ap_concat, .n_in = 2,
     .in = IN2(D_ANY, D_ANY), .shapes = "3x33,1x33;2x3x4,5x3x4", .tol = EXACT,
     .why = "data movement: exact", .iarg = {0}},
    {.op = "pad", .prim = LX_PRIM_PAD, .apply = ap_pad, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "3x7;2x257;0x3", .tol = EXACT, .why = "data movement: exact",
     .iarg = {1, 2, 0, 3}, .darg = 1.5},
    {.op = "tile", .prim = LX_PRIM_TILE, .apply = ap_tile, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "3x7;2x33", .tol = EXACT, .why = "data movement: exact", .iarg = {2, 3}},
    {.op = "repeat(3, axis 0)", .prim = LX_PRIM_TILE, .apply = ap_repeat, .n_in = 1,
     .in = IN1(D_ANY), .shapes = "3x7;2x257", .tol = EXACT, .why = "data movement: exact",
     .iarg = {3, 0}},
    {.op = "tril(0)", .prim = LX_PRIM_TRI_SELECT, .apply = ap_tril, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "5x7;33x33;2x5x9", .tol = EXACT, .why = "data movement: exact", .iarg = {0, 0}},
    {.op = "triu(1)", .prim = LX_PRIM_TRI_SELECT, .apply = ap_tril, .n_in = 1, .in = IN1(D_ANY),
     .shapes = "5x7;33x33;2x5x9", .tol = EXACT, .why = "data movement: exact", .iarg = {1, 1}},
    /* ---- view primitives (eval/view.c; COPY where the layout needs one) ---- */
    MOVE("reshape(-1)", LX_PRIM_RESHAPE, ap_reshape, "7;3x33;2x257;2x3x4x9;0x3"),
    MOVE("transpose", LX_PRIM_PERMUTE, ap_transpose, "7;3x33;2x257;2x3x4x9"),
    MOVE("slice(::3)", LX_PRIM_SLICE, ap_slice, "7;3x33;2x257;2x3x4x9"),
    {.op = "broadcast_to", .prim = LX_PRIM_BROADCAST, .apply = ap_broadcast, .n_in = 1,
     .in = IN1(D_ANY), .shapes = "1,7;3x1,3x33;257,2x257;1x4x1,2x3x4x9", .tol = EXACT,
     .flags = F_SPECIALS, .why = "data movement: exact"},
    MOVE("as_strided(windows)", LX_PRIM_AS_STRIDED, ap_as_strided, "7;3x33;2x257"),
    {.op = "split(1, 4)", .prim = LX_PRIM_SLICE, .apply = ap_split, .n_in = 1, .n_out = 3,
     .in = IN1(D_ANY), .shapes = "3x7;2x257", .tol = EXACT, .why = "data movement: exact"},
    /* ---- quantization (MLX affine) ---- */
    {.op = "quantize(gs 32, 4 bits)", .prim = LX_PRIM_QUANTIZE, .apply = ap_quantize,
     .n_in = 1, .n_out = 3, .in = IN1(D_ANY), .shapes = "7x64;3x256", .dtypes = DT_QFLOAT,
     .tol = NORM(2), .why = "scale and bias per group: min/max then one division",
     .iarg = {32, 4}},
    {.op = "quantize(gs 64, 8 bits)", .prim = LX_PRIM_QUANTIZE, .apply = ap_quantize,
     .n_in = 1, .n_out = 3, .in = IN1(D_ANY), .shapes = "1x64;5x128", .dtypes = DT_QFLOAT,
     .tol = NORM(2), .why = "scale and bias per group: min/max then one division",
     .iarg = {64, 8}},
    {.op = "dequantize(gs 32, 4 bits)", .prim = LX_PRIM_DEQUANTIZE, .apply = ap_dequantize,
     .n_in = 1, .in = IN1(D_ANY), .shapes = "7x64;3x256", .dtypes = DT_QFLOAT, .tol = NORM(2),
     .why = "scale*q + bias: one FMA or two roundings", .iarg = {32, 4}},
    {.op = "quantized_matmul(transpose, 32, 4)", .prim = LX_PRIM_QUANTIZED_MATMUL,
     .apply = ap_qmm, .n_in = 2, .in = IN2(D_ANY, D_ANY), .shapes = "1x64,7x64;7x256,33x256",
     .dtypes = DT_QFLOAT, .tol = COND(16), .why = WHY_MM, .iarg = {32, 4, 1}, .cond = cond_qmm},
    {.op = "quantized_matmul(32, 8)", .prim = LX_PRIM_QUANTIZED_MATMUL, .apply = ap_qmm,
     .n_in = 2, .in = IN2(D_ANY, D_ANY), .shapes = "3x64,64x64;2x5x32,32x96",
     .dtypes = DT_QFLOAT, .tol = COND(16), .why = WHY_MM, .iarg = {32, 8, 0}, .cond = cond_qmm},
    {.op = "gather_mm", .prim = LX_PRIM_GATHER_MM, .apply = ap_gather_mm, .n_in = 4,
     .in = {{-1, D_ANY, 0}, {-1, D_ANY, 0}, {LX_UINT32, D_RANGE, 0}, {LX_UINT32, D_RANGE, 1}},
     .shapes = "2x3x16,4x16x5,7,7;3x1x33,2x33x9,4,4", .dtypes = DT_QFLOAT, .tol = COND(16),
     .why = WHY_MM},
    {.op = "gather_qmm(32, 4)", .prim = LX_PRIM_QUANTIZED_MATMUL, .apply = ap_gather_qmm,
     .n_in = 4,
     .in = {{-1, D_ANY, 0}, {-1, D_ANY, 0}, {LX_UINT32, D_RANGE, 0}, {LX_UINT32, D_RANGE, 1}},
     .shapes = "2x3x64,4x8x64,5,5", .dtypes = DT_QFLOAT, .tol = COND(16), .why = WHY_MM,
     .iarg = {32, 4}, .cond = cond_gather_qmm},
    /* ---- FUSED: fused targets only (each distinct program is one compiler run, ~0.3 s, so
     * ops are grouped 8 to a program, each group runs in two or three dtypes (float32 and one
     * other, rotating) and one shape, 2x257, whose rows leave both blocks and tails; every
     * layout. tests/test_fused_native.c runs every op in every compute dtype, contiguous) ---- */
#define FUSE_UN(first, count, dt)                                                          \
    {.op = "fused unary ops " #first "+" #count, .prim = LX_PRIM_FUSED, .apply = ap_fuse_unary, \
     .n_in = 1, .n_out = count, .in = IN1(D_ANY), .shapes = "2x257", .dtypes = dt,           \
     .tol = EXACT, .flags = F_SPECIALS | F_FUSE, .why = "bit-identity", .iarg = {first}}
#define FUSE_BIN(first, count, dt)                                                         \
    {.op = "fused binary ops " #first "+" #count, .prim = LX_PRIM_FUSED,                    \
     .apply = ap_fuse_binary, .n_in = 2, .n_out = count, .in = IN2(D_SMALL, D_POS),          \
     .shapes = "2x257,2x257", .dtypes = dt, .tol = EXACT, .flags = F_SPECIALS | F_FUSE,     \
     .why = "bit-identity", .iarg = {first}}
    FUSE_UN(0, 8, DT(LX_FLOAT32) | DT(LX_FLOAT16)),
    FUSE_UN(8, 8, DT(LX_FLOAT32) | DT(LX_BFLOAT16)),
    FUSE_UN(16, 8, DT(LX_FLOAT32) | DT(LX_FLOAT64)),
    FUSE_UN(24, 7, DT(LX_FLOAT32) | DT(LX_FLOAT16)),
    FUSE_BIN(0, 8, DT(LX_FLOAT32) | DT(LX_BFLOAT16) | DT(LX_INT32)),
    FUSE_BIN(8, 8, DT(LX_FLOAT32) | DT(LX_UINT8)),
    FUSE_BIN(16, 2, DT(LX_FLOAT32) | DT(LX_BOOL)),
    {.op = "fused where / clip / compare", .prim = LX_PRIM_FUSED, .apply = ap_fuse_select,
     .n_in = 2, .n_out = 3, .in = IN2(D_ANY, D_ANY), .shapes = "2x257,2x257",
     .dtypes = DT(LX_FLOAT32) | DT(LX_INT64), .tol = EXACT, .flags = F_SPECIALS | F_FUSE,
     .why = "bit-identity"},
    {.op = "fused casts 0+7", .prim = LX_PRIM_FUSED, .apply = ap_fuse_cast, .n_in = 1,
     .n_out = 7, .in = IN1(D_ANY), .shapes = "2x257",
     .dtypes = DT(LX_FLOAT32) | DT(LX_FLOAT16),
     .tol = EXACT, .flags = F_SPECIALS | F_FUSE, .why = "bit-identity", .iarg = {0}},
    {.op = "fused casts 7+6", .prim = LX_PRIM_FUSED, .apply = ap_fuse_cast, .n_in = 1,
     .n_out = 6, .in = IN1(D_ANY), .shapes = "2x257",
     .dtypes = DT(LX_FLOAT64) | DT(LX_INT16),
     .tol = EXACT, .flags = F_SPECIALS | F_FUSE, .why = "bit-identity", .iarg = {7}},
    {.op = "fused random_normal", .prim = LX_PRIM_FUSED, .apply = ap_random_normal, .n_in = 1,
     .in = {{LX_UINT32, D_KEY, 0}}, .shapes = "2,2x257", .dtypes = DT(LX_FLOAT32),
     .tol = EXACT, .flags = F_FUSE, .why = "bit-identity"},
    /* (cases added later go last: an instance's seed follows its case's index, so the
     * instances before keep theirs) */
    /* a float32 a times a weight kept in half (MATMUL's mixed form: b converted as it is
     * read, on the decode paths too: M = 1 with W^T rows or b rows contiguous, the K split
     * from K * N >= 2^20) */
    {.op = "matmul(float32, half b)", .prim = LX_PRIM_MATMUL, .apply = ap_binary, .n_in = 2,
     .in = {{LX_FLOAT32, D_ANY, 0}, {-1, D_ANY, 0}}, .dtypes = DT(LX_FLOAT16) | DT(LX_BFLOAT16),
     .shapes = "1x7,7x1;1x33,33x7;3x33,33x7;7x257,257x3;2x5x17,17x9;1x257,257x4100;"
               "70x65,65x80",
     .tol = COND(16), .why = WHY_MM, .b = lx_matmul},
};
#define N_CASES ((int)(sizeof cases / sizeof *cases))

/* Kernel primitives that no case can run, and why. */
static const struct {
    int prim;
    const char *why;
} NOT_RUN[] = {
    {LX_PRIM_PLACEHOLDER, "a traced input of a compiled function: evaluating it is an error"},
};

/* ---------------------------------------------------------------------------------------- */
/* Shapes, values, layouts                                                                    */

/* Shape set `set` of the case into I (false when there is no such set). */
static bool parse_set(const bcase *c, int set, inst *I) {
    const char *p = c->shapes;
    for (int s = 0; s < set; s++) {
        p = strchr(p, ';');
        if (!p) return false;
        p++;
    }
    I->n_shapes = 0;
    while (*p && *p != ';' && I->n_shapes < MAX_IN + 2) {
        int k = I->n_shapes++, nd = 0;
        if (*p == 's') p++;
        else
            while (*p >= '0' && *p <= '9') {
                I->dims[k][nd++] = (int)strtol(p, (char **)&p, 10);
                if (*p == 'x') p++;
            }
        I->ndim[k] = nd;
        if (*p == ',') p++;
    }
    return true;
}

static void fmt_shape(char *buf, size_t cap, const int *s, int nd) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < nd && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", s[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

static const double SPECIAL[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1e-40, -3e-39, 65504.0,
                                 -1e30, 1e-7, 0.5, -2.5};

static double draw(lx_dtype t, domain d, int m) {
    bool f = lx_dtype_is_float(t), sg = lx_dtype_is_signed(t) || f;
    if (t == LX_BOOL && d != D_IDX && d != D_RANGE && d != D_PERM) return (double)(t_next() & 1);
    switch (d) {
    case D_ANY: return f ? t_uniform(-3, 3) : sg ? t_int(-20, 20) : t_int(0, 40);
    case D_POS: return f ? t_uniform(0.05, 4) : t_int(1, 20);
    case D_UNIT: return f ? t_uniform(-0.99, 0.99) : sg ? t_int(-1, 1) : t_int(0, 1);
    case D_NEAR1: return f ? t_uniform(0.8, 1.25) : sg ? (t_next() & 1 ? 1 : -1) : 1;
    case D_SMALL: return f ? t_uniform(-3, 3) : sg ? t_int(-3, 3) : t_int(0, 3);
    case D_EXP: return f ? t_uniform(-3, 3) : t_int(0, 4);
    case D_IDX: return m ? t_int(sg ? -m - 2 : 0, m + 1) : 0;
    case D_RANGE: return m ? t_int(0, m - 1) : 0;
    case D_BOOL: return (double)(t_next() & 1);
    case D_KEY: return (double)(uint32_t)t_next();
    default: return 0;
    }
}

/* Logical values of input k of the instance (row-major over its shape). */
static void gen_values(const inst *I, int k, lx_dtype t, double *v, size_t n) {
    const bcase *c = I->c;
    const in_spec *sp = &c->in[k];
    int m = 0;
    if (sp->dom == D_IDX || sp->dom == D_PERM) {
        int ax = c->iarg[0] < 0 ? c->iarg[0] + I->ndim[0] : c->iarg[0];
        m = I->ndim[0] ? I->dims[0][ax] : 0;
    } else if (sp->dom == D_RANGE) {
        m = I->ndim[sp->dparam] ? I->dims[sp->dparam][0] : 0;
    }
    if (sp->dom == D_PERM) { /* rows of the last axis: distinct indices into m */
        int row = I->ndim[k] ? I->dims[k][I->ndim[k] - 1] : 1;
        int *perm = malloc(sizeof(int) * (size_t)(m + 1));
        for (size_t r = 0; row && r < n / (size_t)row; r++) {
            for (int i = 0; i < m; i++) perm[i] = i;
            for (int i = m - 1; i > 0; i--) {
                int j = t_int(0, i), tmp = perm[i];
                perm[i] = perm[j];
                perm[j] = tmp;
            }
            for (int i = 0; i < row; i++) v[r * (size_t)row + (size_t)i] = perm[i % m];
        }
        free(perm);
        return;
    }
    for (size_t i = 0; i < n; i++) v[i] = draw(t, sp->dom, m);
    if ((c->flags & F_SPECIALS) && lx_dtype_is_float(t))
        for (size_t i = 0; i < n; i++)
            if (t_next() % 11 == 0) v[i] = SPECIAL[t_next() % (sizeof SPECIAL / sizeof *SPECIAL)];
}

/* Whether `layout` means something for this shape (a view that is not the plain array). */
static bool layout_applies(int layout, const int *shape, int nd, size_t n, bool perm_dom) {
    if (layout == L_CONTIG) return true;
    if (n == 0) return false;
    switch (layout) {
    case L_PERMUTED: {
        int big = 0;
        for (int d = 0; d < nd; d++) big += shape[d] > 1;
        return big >= 2;
    }
    case L_BROADCAST:
        for (int d = 0; d < nd - (perm_dom ? 1 : 0); d++)
            if (shape[d] > 1) return true;
        return false;
    case L_STRIDED:
    case L_OFFSET: return nd >= 1;
    case L_REVERSED: return n > 1;
    default: return false;
    }
}

/* Input values v (row-major over shape) as an array in `layout`; v is made constant along the
 * broadcast axis in place. */
static lx_array make_input(double *v, const int *shape, int nd, lx_dtype t, int layout,
                           bool perm_dom) {
    size_t n = shape_size(shape, nd);
    int idx[LX_MAX_NDIM], j[LX_MAX_NDIM], ps[LX_MAX_NDIM];
    switch (layout) {
    case L_PERMUTED: { /* every axis reversed in memory: lx_transpose(base) */
        for (int k = 0; k < nd; k++) ps[k] = shape[nd - 1 - k];
        double *phys = malloc((n + 1) * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            unravel(i, shape, nd, idx);
            for (int k = 0; k < nd; k++) j[k] = idx[nd - 1 - k];
            phys[ravel(j, ps, nd)] = v[i];
        }
        lx_array base = from_doubles(phys, ps, nd, t);
        free(phys);
        return lx_transpose(base, NULL, 0);
    }
    case L_STRIDED: { /* every other element of a (2n+1)-wide buffer, from 1 */
        int start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM];
        for (int k = 0; k < nd; k++) {
            ps[k] = 2 * shape[k] + 1;
            start[k] = 1;
            stop[k] = ps[k];
            step[k] = 2;
        }
        size_t pn = shape_size(ps, nd);
        double *phys = malloc((pn + 1) * sizeof(double));
        for (size_t i = 0; i < pn; i++) phys[i] = 99; /* never read */
        for (size_t i = 0; i < n; i++) {
            unravel(i, shape, nd, idx);
            for (int k = 0; k < nd; k++) j[k] = 2 * idx[k] + 1;
            phys[ravel(j, ps, nd)] = v[i];
        }
        lx_array base = from_doubles(phys, ps, nd, t);
        free(phys);
        return lx_slice(base, start, stop, step, nd);
    }
    case L_BROADCAST: { /* stride 0 along one axis of extent > 1 */
        int cand[LX_MAX_NDIM], nc = 0;
        for (int d = 0; d < nd - (perm_dom ? 1 : 0); d++)
            if (shape[d] > 1) cand[nc++] = d;
        int k = cand[t_int(0, nc - 1)];
        for (int d = 0; d < nd; d++) ps[d] = d == k ? 1 : shape[d];
        size_t bn = shape_size(ps, nd);
        double *b = malloc((bn + 1) * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            unravel(i, shape, nd, idx);
            idx[k] = 0;
            v[i] = v[ravel(idx, shape, nd)];
        }
        for (size_t i = 0; i < bn; i++) {
            unravel(i, ps, nd, idx);
            b[i] = v[ravel(idx, shape, nd)];
        }
        lx_array base = from_doubles(b, ps, nd, t);
        free(b);
        return lx_broadcast_to(base, shape, nd);
    }
    case L_OFFSET: { /* a contiguous view 3 elements into its buffer */
        double *phys = malloc((n + 4) * sizeof(double));
        phys[0] = phys[1] = phys[2] = 77; /* never read */
        memcpy(phys + 3, v, n * sizeof(double));
        int pn = (int)n + 3;
        lx_array base = from_doubles(phys, &pn, 1, t);
        free(phys);
        return lx_reshape(lx_slice(base, (const int[]){3}, &pn, NULL, 1), shape, nd);
    }
    case L_REVERSED: { /* negative strides on every axis */
        int start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM];
        for (int k = 0; k < nd; k++) {
            start[k] = shape[k] - 1;
            stop[k] = -shape[k] - 1;
            step[k] = -1;
        }
        double *phys = malloc((n + 1) * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            unravel(i, shape, nd, idx);
            for (int k = 0; k < nd; k++) idx[k] = shape[k] - 1 - idx[k];
            phys[ravel(idx, shape, nd)] = v[i];
        }
        lx_array base = from_doubles(phys, shape, nd, t);
        free(phys);
        return lx_slice(base, start, stop, step, nd);
    }
    default: return from_doubles(v, shape, nd, t);
    }
}

static lx_dtype in_dtype(const inst *I, int k) {
    return I->c->in[k].dtype < 0 ? I->t : (lx_dtype)I->c->in[k].dtype;
}

/* The instance's layouts: input 0 gets `layout`, input k the k-th next one that applies to
 * it (so inputs mix layouts); false when no input takes `layout` (the instance would repeat
 * the contiguous one). */
static bool plan_layouts(inst *I) {
    const bcase *c = I->c;
    bool any = I->layout == L_CONTIG;
    for (int k = 0; k < c->n_in; k++) {
        size_t n = shape_size(I->dims[k], I->ndim[k]);
        bool pd = c->in[k].dom == D_PERM;
        int l = L_CONTIG;
        if (I->layout != L_CONTIG && !(c->flags & F_NOLAYOUT))
            for (int s = 0; s < L_COUNT - 1; s++) {
                int cand = 1 + (I->layout - 1 + k + s) % (L_COUNT - 1);
                if (k == 0 && (c->flags & F_ROWVAR) && cand == L_BROADCAST) continue;
                if (layout_applies(cand, I->dims[k], I->ndim[k], n, pd)) {
                    l = cand;
                    break;
                }
            }
        if (l == I->layout) any = true;
        I->in_layout[k] = l;
    }
    return any;
}

static void make_inputs(const inst *I, lx_array *in) {
    t_seed(I->seed);
    for (int k = 0; k < I->c->n_in; k++) {
        size_t n = shape_size(I->dims[k], I->ndim[k]);
        double *v = malloc((n + 1) * sizeof(double));
        lx_dtype t = in_dtype(I, k);
        gen_values(I, k, t, v, n);
        in[k] = make_input(v, I->dims[k], I->ndim[k], t, I->in_layout[k],
                           I->c->in[k].dom == D_PERM);
        free(v);
    }
}

static void describe(const inst *I, char *buf, size_t cap) {
    const bcase *c = I->c;
    size_t len = (size_t)snprintf(buf, cap, "%s T=%s", c->op, lx_dtype_name(I->t));
    for (int k = 0; k < c->n_in && len < cap; k++) {
        char sh[64];
        fmt_shape(sh, sizeof sh, I->dims[k], I->ndim[k]);
        len += (size_t)snprintf(buf + len, cap - len, "%s%s %s %s", k ? ", " : " in: ", sh,
                                lx_dtype_name(in_dtype(I, k)), LAYOUT_NAME[I->in_layout[k]]);
    }
    for (int k = c->n_in; k < I->n_shapes && len < cap; k++) {
        char sh[64];
        fmt_shape(sh, sizeof sh, I->dims[k], I->ndim[k]);
        len += (size_t)snprintf(buf + len, cap - len, "%sshape %s", k == c->n_in ? "; " : ", ",
                                sh);
    }
    if (len < cap) snprintf(buf + len, cap - len, "; seed 0x%016llx", (unsigned long long)I->seed);
}

/* ---------------------------------------------------------------------------------------- */
/* Contexts and targets                                                                       */

/* Where an instance runs: make it current, run, restore. */
typedef struct {
    const char *name;
    const char *arg;
    bool (*available)(const char *arg, char *why, size_t cap);
    void (*enter)(const char *arg);
    void (*leave)(const char *arg);
} context;

static const char *g_default_variant = "generic";
static lx_jit_mode g_default_jit;

static bool variant_available(const char *arg, char *why, size_t cap) {
    if (lx_cpu_variant_table(arg)) return true;
    snprintf(why, cap, "CPU variant %s is not built or this processor cannot run it", arg);
    return false;
}
static void variant_enter(const char *arg) { CHECK(lx_cpu_use_variant(arg)); }
static void variant_leave(const char *arg) { CHECK(lx_cpu_use_variant(g_default_variant)); }

static bool jit_available(const char *arg, char *why, size_t cap) { return true; }
static void jit_enter(const char *arg) {
    lx_jit_set_mode(strcmp(arg, "always") == 0 ? LX_JIT_ALWAYS : LX_JIT_OFF);
}
static void jit_leave(const char *arg) { lx_jit_set_mode(g_default_jit); }

static bool gpu_available(const char *arg, char *why, size_t cap) {
    if (lx_gpu_available()) return true;
    snprintf(why, cap, "no GPU device (%s)", lx_backend_info());
    return false;
}
static void gpu_enter(const char *arg) { CHECK_OK(lx_set_default_device(LX_GPU)); }
static void gpu_leave(const char *arg) { CHECK_OK(lx_set_default_device(LX_CPU)); }

#define CPU_VARIANT(v) {"cpu:" v, v, variant_available, variant_enter, variant_leave}
static const context CTX_GENERIC = CPU_VARIANT("generic");
static const context CTX_V2 = CPU_VARIANT("v2");
static const context CTX_V3 = CPU_VARIANT("v3");
static const context CTX_V4 = CPU_VARIANT("v4");
static const context CTX_INTERP = {"fused:interpreter", "off", jit_available, jit_enter, jit_leave};
static const context CTX_NATIVE = {"fused:native", "always", jit_available, jit_enter, jit_leave};
static const context CTX_GPU = {"device:gpu", NULL, gpu_available, gpu_enter, gpu_leave};

typedef struct {
    const char *name;
    const context *ref, *tgt;
    bool fused;  /* F_FUSE cases only, each through lx_compile (fused into FUSED nodes) */
    bool exact;  /* the target promises the reference's bits: every float output EXACT */
} target;

static const target targets[] = {
    {"cpu:v2", &CTX_GENERIC, &CTX_V2, false, false},
    {"cpu:v3", &CTX_GENERIC, &CTX_V3, false, false},
    {"cpu:v4", &CTX_GENERIC, &CTX_V4, false, false},
    /* fused.c interprets a program; fused_gen.c + jit.c compile the same program to C: the
     * contract is bit-identity (HACKING: fused programs), so floats are compared EXACT */
    {"fused:native", &CTX_INTERP, &CTX_NATIVE, true, true},
    /* the GPU device (a module from LX_DEVICE_MODULES) against the generic CPU kernels */
    {"device:gpu", &CTX_GENERIC, &CTX_GPU, false, false},
};
#define N_TARGETS ((int)(sizeof targets / sizeof *targets))

/* ---------------------------------------------------------------------------------------- */
/* One run: build, evaluate, read back                                                        */

typedef struct {
    int n;
    lx_dtype dt[MAX_OUT];
    int nd[MAX_OUT];
    int shape[MAX_OUT][LX_MAX_NDIM];
    size_t nbytes[MAX_OUT];
    unsigned char *data[MAX_OUT];
    float *cond[MAX_OUT]; /* COND's magnitudes (reference runs) */
    bool prims[LX_PRIM_COUNT];
} result;

static void result_free(result *r) {
    for (int i = 0; i < r->n; i++) {
        free(r->data[i]);
        free(r->cond[i]);
    }
    r->n = 0;
}

/* COND's magnitudes for the outputs of r, from the same inputs. */
static lx_status compute_cond(const inst *I, const lx_array *in, result *r, char *err, size_t cap) {
    const bcase *c = I->c;
    lx_array mod[MAX_IN], out[MAX_OUT];
    int n;
    if (c->cond) n = c->cond(I, in, out);
    else {
        for (int k = 0; k < c->n_in; k++) { /* values, not indices or masks */
            domain d = c->in[k].dom;
            bool index = d == D_IDX || d == D_RANGE || d == D_PERM || d == D_BOOL;
            mod[k] = index ? in[k] : abs32(in[k]);
        }
        n = c->apply(I, mod, out);
    }
    lx_status st = lx_error();
    if (st == LX_OK && n != r->n) st = LX_E_INTERNAL;
    for (int i = 0; st == LX_OK && i < n; i++) out[i] = lx_astype(out[i], LX_FLOAT32);
    if (st == LX_OK) st = lx_eval_n(out, n);
    for (int i = 0; st == LX_OK && i < n; i++) {
        size_t cnt = r->nbytes[i] / lx_dtype_size(r->dt[i]);
        if (lx_size(out[i]) != cnt) {
            st = LX_E_INTERNAL;
            break;
        }
        r->cond[i] = malloc(cnt * sizeof(float) + 1);
        st = lx_read(out[i], r->cond[i], cnt * sizeof(float));
    }
    if (st != LX_OK)
        snprintf(err, cap, "magnitudes for COND: %s (%s)", lx_status_string(st),
                 lx_error_message());
    for (int i = 0; st == LX_OK && i < n; i++) lx_free(out[i]);
    return st;
}

/* The primitives in the graph behind outs (still lazy). */
static void mark_prim(lx_node *nd, void *prims) {
    if (nd->prim < LX_PRIM_COUNT) ((bool *)prims)[nd->prim] = true;
}
static void collect_prims(const lx_array *outs, int n, bool *prims) {
    t_walk_lazy(outs, n, mark_prim, prims);
}

/* What the fused targets compile: the case with each input x first put through a chain that
 * gives x back (neg(neg(x)); logical_not twice for bool), so even a one-op case is a group of
 * fusable nodes. */
static lx_status fused_fn(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    const inst *I = ctx;
    lx_array pre[MAX_IN];
    for (int k = 0; k < n_in; k++)
        pre[k] = lx_dtype_of(in[k]) == LX_BOOL ? lx_logical_not(lx_logical_not(in[k]))
                                               : lx_neg(lx_neg(in[k]));
    int n = I->c->apply(I, pre, out);
    if (lx_error() != LX_OK) return lx_error();
    return n == n_out ? LX_OK : LX_E_INTERNAL;
}

enum { RUN_OK, RUN_REFUSED, RUN_ERROR };

/* Runs instance I on context cx (through closure cl when not NULL); with_cond: also COND's
 * magnitudes. */
static int run_inst(const inst *I, const context *cx, lx_closure *cl, bool with_cond, result *r,
                    char *err, size_t cap) {
    const bcase *c = I->c;
    int n_out = c->n_out ? c->n_out : 1, rc = RUN_OK;
    lx_array in[MAX_IN], out[MAX_OUT];
    memset(r, 0, sizeof *r);
    lx_clear_error();
    cx->enter(cx->arg);
    make_inputs(I, in);
    int got = 0;
    if (lx_error() == LX_OK) {
        if (cl) {
            lx_status st = lx_call(cl, in, c->n_in, out, n_out);
            got = st == LX_OK ? n_out : 0;
        } else {
            got = c->apply(I, in, out);
        }
    }
    lx_status st = lx_error();
    if (st == LX_E_DTYPE) {
        rc = RUN_REFUSED;
        snprintf(err, cap, "%s", lx_error_message());
    } else if (st != LX_OK || got != n_out) {
        rc = RUN_ERROR;
        snprintf(err, cap, "building: %s (%s)", lx_status_string(st), lx_error_message());
    } else {
        collect_prims(out, n_out, r->prims);
        bool cond = with_cond && c->tol.m == M_COND;
        if (cond) lx_keep_n(in, c->n_in); /* for compute_cond, past the sweep */
        st = lx_eval_n(out, n_out);
        for (int i = 0; st == LX_OK && i < n_out; i++) {
            r->dt[i] = lx_dtype_of(out[i]);
            r->nd[i] = lx_shape(out[i], r->shape[i]);
            r->nbytes[i] = lx_nbytes(out[i]);
            r->data[i] = malloc(r->nbytes[i] + 1);
            r->n = i + 1;
            st = lx_read(out[i], r->data[i], r->nbytes[i]);
        }
        if (st != LX_OK) {
            rc = RUN_ERROR;
            snprintf(err, cap, "evaluating: %s (%s)", lx_status_string(st), lx_error_message());
        } else if (cond && compute_cond(I, in, r, err, cap) != LX_OK) {
            rc = RUN_ERROR;
        }
        for (int i = 0; i < n_out; i++) lx_free(out[i]);
        for (int k = 0; cond && k < c->n_in; k++) lx_free(in[k]);
    }
    lx_clear_error();
    lx_sweep();
    cx->leave(cx->arg);
    if (rc != RUN_OK) result_free(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Comparison                                                                                 */

static double dtype_eps(lx_dtype t) {
    switch (t) {
    case LX_FLOAT16: return 0x1p-10;
    case LX_BFLOAT16: return 0x1p-7;
    case LX_FLOAT64: return 0x1p-52;
    default: return 0x1p-23;
    }
}

/* The spacing of dtype t's values at |r| (subnormals: their fixed spacing). */
static double ulp_of(lx_dtype t, double r) {
    int mant = t == LX_FLOAT16 ? 10 : t == LX_BFLOAT16 ? 7 : t == LX_FLOAT64 ? 52 : 23;
    int emin = t == LX_FLOAT16 ? -14 : t == LX_FLOAT64 ? -1022 : -126;
    r = fabs(r);
    int e = r > 0 ? ilogb(r) : emin;
    if (e < emin) e = emin;
    return ldexp(1.0, e - mant);
}

/* Compares one output. *err: mismatches (EXACT), worst ulp (ULP) or worst normalized error
 * in eps (NORM); returns whether it is within bound. *where: a first bad element. */
static bool compare_out(lx_dtype t, const unsigned char *a, const unsigned char *b,
                        const float *cond, size_t n, size_t row, tolerance tol, double *err,
                        size_t *where) {
    size_t es = lx_dtype_size(t);
    *err = 0;
    *where = 0;
    bool ok = true;
    if (!lx_dtype_is_float(t) || tol.m == M_EXACT) {
        for (size_t i = 0; i < n; i++) {
            const unsigned char *x = a + i * es, *y = b + i * es;
            if (memcmp(x, y, es) == 0) continue;
            if (lx_dtype_is_float(t) && isnan(lx_dtype_load(t, x)) && isnan(lx_dtype_load(t, y)))
                continue;
            if (ok) *where = i;
            ok = false;
            *err += 1;
        }
        return ok;
    }
    if (row == 0) row = 1;
    for (size_t r0 = 0; r0 < n; r0 += row) {
        double maxref = 0, maxdiff = 0;
        size_t worst_i = r0;
        for (size_t i = r0; i < r0 + row && i < n; i++) {
            double x = lx_dtype_load(t, a + i * es), y = lx_dtype_load(t, b + i * es);
            bool bad = false;
            if (isnan(x)) bad = !isnan(y);
            else if (isinf(x)) bad = y != x;
            else if (!isfinite(y)) bad = true;
            if (bad) {
                if (ok) *where = i;
                ok = false;
                *err = INFINITY;
                continue;
            }
            if (!isfinite(x)) continue;
            double d = fabs(x - y);
            if (tol.m == M_COND) {
                double e = d == 0         ? 0
                           : cond[i] > 0    ? d / ((double)cond[i] * dtype_eps(t))
                                            : INFINITY;
                if (e > *err) *err = e;
                if (e > tol.k && ok) {
                    ok = false;
                    *where = i;
                }
            } else if (tol.m == M_ULP) {
                double u = d / ulp_of(t, x);
                if (u > *err) *err = u;
                if (u > tol.k && ok) {
                    ok = false;
                    *where = i;
                }
            } else {
                if (fabs(x) > maxref) maxref = fabs(x);
                if (d > maxdiff) {
                    maxdiff = d;
                    worst_i = i;
                }
            }
        }
        if (tol.m == M_NORM) {
            double e = maxdiff == 0 ? 0 : maxref > 0 ? maxdiff / maxref / dtype_eps(t) : INFINITY;
            if (e > *err) *err = e;
            if (e > tol.k && ok) {
                ok = false;
                *where = worst_i;
            }
        }
    }
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Per-target results                                                                         */

typedef struct {
    int n, n_float;          /* outputs compared; of them float outputs under ULP / NORM */
    double worst_exact;      /* most differing elements of an exactly compared output */
    double worst_float;      /* the error of the float comparison nearest its bound */
    double worst_ratio;      /* that error / its bound */
    metric m;                /* that comparison's metric */
} cell;

typedef struct {
    bool skipped;
    char why[512];
    int run, passed, failed, refused, no_prim;
    cell cells[LX_PRIM_COUNT][LX_DTYPE_COUNT];
    int n_msgs;
    char *msgs[64];
    int case_failed[N_CASES];
    double case_worst[N_CASES]; /* worst float error of a failed comparison */
} target_stats;

static target_stats stats[N_TARGETS];
static int g_case; /* the case running, for the failure counts */
static bool g_verbose;
static bool g_require; /* -r: a target that is skipped fails the run */

static void fail_msg(target_stats *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_msg(target_stats *s, const char *fmt, ...) {
    s->failed++;
    s->case_failed[g_case]++;
    if (s->n_msgs >= (int)(sizeof s->msgs / sizeof *s->msgs)) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->msgs[s->n_msgs++] = strdup(buf);
}

static void fmt_value(char *buf, size_t cap, lx_dtype t, const unsigned char *p) {
    double v = lx_dtype_load(t, p);
    if (lx_dtype_is_float(t)) snprintf(buf, cap, "%.9g", v);
    else snprintf(buf, cap, "%.0f", v);
}

static int ci_of(const bcase *c) { return (int)(c - cases); }

/* Compares the target's result with the reference's and records it. */
static void judge(const target *tg, target_stats *s, const inst *I, const result *ref,
                  const result *got) {
    const bcase *c = I->c;
    char what[1024];
    describe(I, what, sizeof what);
    if (got->n != ref->n) {
        fail_msg(s, "%s: %d outputs, reference %d", what, got->n, ref->n);
        return;
    }
    bool pass = true;
    for (int o = 0; o < ref->n; o++) {
        char rs[64], gs[64];
        fmt_shape(rs, sizeof rs, ref->shape[o], ref->nd[o]);
        fmt_shape(gs, sizeof gs, got->shape[o], got->nd[o]);
        if (got->dt[o] != ref->dt[o] || strcmp(rs, gs) != 0) {
            fail_msg(s, "%s: output %d is %s %s, reference %s %s", what, o,
                     lx_dtype_name(got->dt[o]), gs, lx_dtype_name(ref->dt[o]), rs);
            pass = false;
            continue;
        }
        lx_dtype t = ref->dt[o];
        tolerance tol = c->tol;
        if (tg->exact || !lx_dtype_is_float(t)) tol = EXACT;
        size_t n = ref->nbytes[o] / lx_dtype_size(t);
        size_t row = ref->nd[o] ? (size_t)ref->shape[o][ref->nd[o] - 1] : 1;
        double err;
        size_t at;
        bool ok = compare_out(t, ref->data[o], got->data[o], ref->cond[o], n, row, tol, &err, &at);
        cell *ce = &s->cells[c->prim][I->t];
        ce->n++;
        if (tol.m == M_EXACT) {
            if (err > ce->worst_exact) ce->worst_exact = err;
        } else {
            double ratio = err == 0 ? 0 : tol.k > 0 ? err / tol.k : INFINITY;
            if (!ce->n_float++ || ratio > ce->worst_ratio) {
                ce->worst_ratio = ratio;
                ce->worst_float = err;
                ce->m = tol.m;
            }
        }
        if (!ok) {
            char rv[48], gv[48];
            size_t es = lx_dtype_size(t);
            fmt_value(rv, sizeof rv, t, ref->data[o] + at * es);
            fmt_value(gv, sizeof gv, t, got->data[o] + at * es);
            const char *unit = tol.m == M_EXACT ? "elements differ"
                               : tol.m == M_ULP ? "ulp"
                               : tol.m == M_COND ? "eps of |op|(|x|)"
                                                 : "eps of the row's max";
            if (err > s->case_worst[ci_of(c)]) s->case_worst[ci_of(c)] = err;
            fail_msg(s, "%s: output %d (%s %s): %g %s (bound %g: %s); element %zu: expected %s, "
                     "got %s", what, o, lx_dtype_name(t), rs, err, unit, tol.k,
                     tol.m == c->tol.m ? c->why : "exact", at, rv, gv);
            pass = false;
        }
    }
    if (pass) s->passed++;
    if (g_verbose) printf("  [%s] %s: %s\n", tg->name, what, pass ? "ok" : "FAILED");
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---------------------------------------------------------------------------------------- */
/* The driver                                                                                 */

static const char *g_only_op, *g_only_target;
static bool case_built[N_CASES]; /* some instance built the case's primitive */
static bool g_exercised[LX_PRIM_COUNT]; /* over every target */

/* Runs every instance of case ci on the active targets. */
static void run_case(int ci, const bool *active) {
    const bcase *c = &cases[ci];
    unsigned mask = c->dtypes ? c->dtypes : DT_ALL;
    for (int set = 0; set < MAX_SETS; set++) {
        inst I = {.c = c, .set = set};
        if (!parse_set(c, set, &I)) break;
        size_t in_elems = 0;
        for (int k = 0; k < c->n_in; k++) in_elems += shape_size(I.dims[k], I.ndim[k]);
        bool empty = false;
        for (int k = 0; k < c->n_in; k++) empty = empty || shape_size(I.dims[k], I.ndim[k]) == 0;
        for (int t = 0; t < LX_DTYPE_COUNT; t++) {
            if (!(mask & DT(t))) continue;
            I.t = (lx_dtype)t;
            for (int l = 0; l < L_COUNT; l++) {
                if (l != L_CONTIG && (c->n_in == 0 || empty)) break;
                I.layout = l;
                if (!plan_layouts(&I)) continue;
                I.seed = mix64(((uint64_t)ci << 32) ^ ((uint64_t)set << 16) ^ ((uint64_t)t << 8) ^
                               (uint64_t)l);
                /* reference results, once per (reference, path) */
                result refs[2][N_TARGETS];
                int ref_rc[2][N_TARGETS];
                char ref_err[2][N_TARGETS][512];
                bool have[2][N_TARGETS];
                memset(have, 0, sizeof have);
                lx_closure *cl = NULL;
                for (int ti = 0; ti < N_TARGETS; ti++) {
                    const target *tg = &targets[ti];
                    target_stats *s = &stats[ti];
                    if (!active[ti] || tg->fused != ((c->flags & F_FUSE) != 0)) continue;
                    if (tg->fused && !cl) cl = lx_compile(fused_fn, &I, c->n_out ? c->n_out : 1, 0);
                    int path = tg->fused, rslot = ti;
                    for (int tj = 0; tj < ti; tj++)
                        if (targets[tj].ref == tg->ref && targets[tj].fused == tg->fused &&
                            have[path][tj])
                            rslot = tj;
                    if (!have[path][rslot]) {
                        ref_rc[path][rslot] = run_inst(&I, tg->ref, tg->fused ? cl : NULL, true,
                                                       &refs[path][rslot], ref_err[path][rslot],
                                                       sizeof ref_err[path][rslot]);
                        have[path][rslot] = true;
                    }
                    const result *ref = &refs[path][rslot];
                    int rc = ref_rc[path][rslot];
                    char what[1024];
                    if (rc == RUN_REFUSED) {
                        s->refused++;
                        continue;
                    }
                    s->run++;
                    describe(&I, what, sizeof what);
                    if (rc == RUN_ERROR) {
                        fail_msg(s, "%s: reference %s: %s", what, tg->ref->name,
                                 ref_err[path][rslot]);
                        continue;
                    }
                    int want = tg->fused ? LX_PRIM_FUSED : c->prim;
                    if (!ref->prims[want]) {
                        /* the op needs no such node for this input (floor of an integer is
                         * the integer): not a run of the primitive; a case must build it for
                         * some instance (checked at the end) */
                        s->run--;
                        s->no_prim++;
                        continue;
                    }
                    case_built[ci] = true;
                    result got;
                    char err[512];
                    rc = run_inst(&I, tg->tgt, tg->fused ? cl : NULL, false, &got, err, sizeof err);
                    if (rc != RUN_OK) {
                        fail_msg(s, "%s: %s on %s, not on %s: %s", what,
                                 rc == RUN_REFUSED ? "refused" : "failed", tg->tgt->name,
                                 tg->ref->name, err);
                        continue;
                    }
                    for (int p = 0; p < LX_PRIM_COUNT; p++)
                        if (got.prims[p]) g_exercised[p] = true;
                    judge(tg, s, &I, ref, &got);
                    result_free(&got);
                }
                for (int path = 0; path < 2; path++)
                    for (int ti = 0; ti < N_TARGETS; ti++)
                        if (have[path][ti] && ref_rc[path][ti] == RUN_OK)
                            result_free(&refs[path][ti]);
                if (cl) lx_closure_free(cl);
            }
        }
    }
}

static const char *short_dtype(int t) {
    static const char *const n[LX_DTYPE_COUNT] = {"bool", "u8",  "u16", "u32", "u64",
                                                  "i8",   "i16", "i32", "i64", "f16",
                                                  "bf16", "f32", "f64"};
    return n[t];
}

static void print_summary(int ti) {
    const target *tg = &targets[ti];
    target_stats *s = &stats[ti];
    printf("\n== target %s (reference %s)", tg->name, tg->ref->name);
    if (s->skipped) {
        printf(": SKIPPED: %s\n", s->why);
        return;
    }
    printf(": %d run, %d passed, %d failed; not run: %d refused by the op (dtype not accepted), "
           "%d without the case's primitive (e.g. floor of an integer)\n",
           s->run, s->passed, s->failed, s->refused, s->no_prim);
    printf("   worst error per primitive and case dtype (of the comparison nearest its bound): "
           "'=' every output exact,\n   'Nu' N ulp, 'Ne' N eps row-normalized, 'Nc' N eps of "
           "the op on |inputs|, 'N!' N elements of an\n   exact output differ, '-' none run\n"
           "   %-18s", "primitive");
    for (int t = 0; t < LX_DTYPE_COUNT; t++) printf(" %8s", short_dtype(t));
    printf("\n");
    for (int p = 0; p < LX_PRIM_COUNT; p++) {
        bool anyp = false;
        for (int t = 0; t < LX_DTYPE_COUNT; t++) anyp = anyp || s->cells[p][t].n;
        if (!anyp) continue;
        printf("   %-18s", lx_prim_name(p));
        for (int t = 0; t < LX_DTYPE_COUNT; t++) {
            const cell *ce = &s->cells[p][t];
            char b[32];
            if (!ce->n) snprintf(b, sizeof b, "-");
            else if (ce->worst_exact > 0) snprintf(b, sizeof b, "%g!", ce->worst_exact);
            else if (!ce->n_float) snprintf(b, sizeof b, "=");
            else snprintf(b, sizeof b, "%.3g%s", ce->worst_float,
                          ce->m == M_ULP ? "u" : ce->m == M_COND ? "c" : "e");
            printf(" %8s", b);
        }
        printf("\n");
    }
    for (int i = 0; i < s->n_msgs; i++) printf("   FAIL %s\n", s->msgs[i]);
    if (s->failed) {
        printf("   failures by case (instances; worst error of a failed comparison):");
        for (int ci = 0, k = 0; ci < N_CASES; ci++)
            if (s->case_failed[ci])
                printf("%s%s %d (%.3g)", k++ % 4 ? ", " : "\n     ", cases[ci].op,
                       s->case_failed[ci], s->case_worst[ci]);
        printf("\n");
    }
    if (s->failed > s->n_msgs) printf("   ... and %d more failures\n", s->failed - s->n_msgs);
}

/* Kernel primitives of the CPU table (backend/cpu/kernels.def) and the view primitives. */
static const int KERNEL_PRIMS[] = {
#define LX_PRIM(name) LX_PRIM_##name,
#include "backend/cpu/kernels.def"
#include "graph/prims_view.def"
#undef LX_PRIM
};

/* Every primitive must have been exercised (full runs only), and every case must have built
 * its primitive at least once. */
static int check_coverage(void) {
    int missing = 0;
    printf("\ncoverage over all targets:\n");
    for (size_t i = 0; i < sizeof KERNEL_PRIMS / sizeof *KERNEL_PRIMS; i++) {
        int p = KERNEL_PRIMS[i];
        bool exempt = false;
        for (size_t j = 0; j < sizeof NOT_RUN / sizeof *NOT_RUN; j++) {
            if (NOT_RUN[j].prim != p) continue;
            exempt = true;
            printf("   not run: %s (%s)\n", lx_prim_name(p), NOT_RUN[j].why);
        }
        if (!exempt && !g_exercised[p]) {
            printf("   FAIL coverage: no case exercises %s\n", lx_prim_name(p));
            missing++;
        }
    }
    for (int ci = 0; ci < N_CASES; ci++)
        if (!case_built[ci]) {
            printf("   FAIL coverage: case %s never built %s\n", cases[ci].op,
                   lx_prim_name(cases[ci].prim));
            missing++;
        }
    return missing;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) g_only_op = argv[++i];
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) g_only_target = argv[++i];
        else if (strcmp(argv[i], "-v") == 0) g_verbose = true;
        else if (strcmp(argv[i], "-r") == 0) g_require = true;
        else {
            fprintf(stderr, "usage: %s [-o OP] [-t TARGET] [-r] [-v]\n", argv[0]);
            return 2;
        }
    }
    double t0 = t_now_s();
    printf("backend: %s\n", lx_backend_info());
    const char *force = getenv("LX_CPU_VARIANT");
    static const char *const order[] = {"v4", "v3", "v2", "generic"};
    if (force && *force && lx_cpu_variant_table(force)) g_default_variant = force;
    else
        for (int i = 0; i < 4; i++)
            if (lx_cpu_variant_table(order[i])) {
                g_default_variant = order[i];
                break;
            }
    g_default_jit = lx_jit_mode_get();

    bool active[N_TARGETS];
    for (int ti = 0; ti < N_TARGETS; ti++) {
        const target *tg = &targets[ti];
        target_stats *s = &stats[ti];
        active[ti] = !g_only_target || strcmp(g_only_target, tg->name) == 0;
        if (!active[ti]) continue;
        char why[512] = "";
        if (!tg->ref->available(tg->ref->arg, why, sizeof why) ||
            !tg->tgt->available(tg->tgt->arg, why, sizeof why)) {
            s->skipped = true;
            snprintf(s->why, sizeof s->why, "%s", why);
            active[ti] = false;
        }
    }
    int n_cases = 0;
    for (int ci = 0; ci < N_CASES; ci++) {
        if (g_only_op && !strstr(cases[ci].op, g_only_op)) continue;
        double c0 = t_now_s();
        g_case = ci;
        run_case(ci, active);
        n_cases++;
        if (g_verbose) printf("%-40s %.3f s\n", cases[ci].op, t_now_s() - c0);
    }
    CHECK_OK(lx_set_default_device(LX_CPU));
    int failed = 0, covered_fail = 0, skipped = 0;
    for (int ti = 0; ti < N_TARGETS; ti++) {
        if (!active[ti] && !stats[ti].skipped) continue;
        print_summary(ti);
        failed += stats[ti].failed;
        skipped += stats[ti].skipped;
    }
    /* coverage of the kernel table means something only where kernels were compared: a build
     * without CPU variants (the sanitizer builds) and without a device runs only the fused
     * target, whose cases are elementwise */
    bool kernels_compared = false;
    for (int ti = 0; ti < N_TARGETS; ti++)
        if (active[ti] && strncmp(targets[ti].name, "fused:", 6) != 0) kernels_compared = true;
    if (!g_only_op && !g_only_target && kernels_compared) covered_fail = check_coverage();
    else if (!g_only_op && !g_only_target)
        printf("\ncoverage not checked: no CPU-variant or device target could run here\n");
    printf("\n%d cases of %d in the table, %.1f s\n", n_cases, N_CASES, t_now_s() - t0);
    if (g_require && skipped) {
        printf("FAILED: %d targets skipped under -r\n", skipped);
        return 1;
    }
    if (failed || covered_fail || t_failures) {
        printf("FAILED: %d instance failures, %d primitives not covered\n", failed, covered_fail);
        return 1;
    }
    int ran = 0;
    for (int ti = 0; ti < N_TARGETS; ti++) ran += active[ti];
    if (!ran && skipped) { /* e.g. -t device:gpu without a GPU: CTest counts it as skipped */
        printf("skipped: no target asked for could run (the SKIPPED line above says why)\n");
        return 77;
    }
    printf("all targets that ran passed\n");
    return 0;
}
