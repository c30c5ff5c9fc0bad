/*
 * prim_info.c -- the primitive table (graph/prim_info.h): one entry per primitive of the .def
 * lists, each with its shape/dtype rule. The table is expanded from the lists, so a
 * primitive added to a .def file without an entry here does not build.
 */
#include "graph/prim_info.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "graph/fused.h"
#include "graph/prims_index.h"
#include "graph/prims_nn.h"
#include "graph/prims_quant.h"
#include "graph/prims_scan.h"

/* ---- helpers ------------------------------------------------------------------------------ */

#define RULE(name)                                                                             \
    static lx_status rule_##name(const char *who, const lx_prim_meta *in, int n_in,            \
                                 const void *params, uint32_t params_size, void *rewrite,      \
                                 lx_prim_meta *out)
#define UNUSED_RULE_ARGS                                                                       \
    (void)who, (void)in, (void)n_in, (void)params, (void)params_size, (void)rewrite, (void)out

static const char *shape_text(const int32_t *s, int n, char *buf, size_t size) {
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && len + 14 < size; i++)
        len += (size_t)snprintf(buf + len, size - len, i ? ", %d" : "%d", s[i]);
    snprintf(buf + len, size - len, "]");
    return buf;
}
#define META_STR(m) shape_text((m)->shape, (m)->ndim, (char[96]){0}, 96)

/* "who: PRIM: <message>" with status st. */
__attribute__((format(printf, 4, 5))) static lx_status fail(lx_status st, const char *who,
                                                              const char *prim,
                                                              const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lx_set_error(st, "%s: %s: %s", who ? who : "lx", prim, msg);
}
#define SHAPE_FAIL(...) fail(LX_E_SHAPE, who, PRIM_NAME, __VA_ARGS__)
#define DTYPE_FAIL(...) fail(LX_E_DTYPE, who, PRIM_NAME, __VA_ARGS__)
#define PARAM_FAIL(...) fail(LX_E_INTERNAL, who, PRIM_NAME, __VA_ARGS__)

#define NEED_INPUTS(lo, hi)                                                                    \
    do {                                                                                       \
        if (n_in < (lo) || n_in > (hi))                                                        \
            return PARAM_FAIL("%d inputs (expected %d to %d)", n_in, (lo), (hi));              \
    } while (0)
/* The params as struct T in local p (NULL params read as zeros only if allowed). */
#define GET_PARAMS(T, p)                                                                       \
    T p;                                                                                       \
    do {                                                                                       \
        if (!params || params_size < sizeof(T))                                                \
            return PARAM_FAIL("params of %u bytes (expected %zu)", params_size, sizeof(T));    \
        memcpy(&p, params, sizeof p);                                                          \
    } while (0)

static void copy_shape(lx_prim_meta *out, const lx_prim_meta *src) {
    out->ndim = src->ndim;
    memcpy(out->shape, src->shape, sizeof(int32_t) * (size_t)src->ndim);
}

static int64_t meta_size(const lx_prim_meta *m) {
    int64_t s = 1;
    for (int i = 0; i < m->ndim; i++) s *= m->shape[i];
    return s;
}

/* Broadcasts shape (n dims) into acc (right-aligned, numpy rules); false if they clash. */
static bool bcast_into(int32_t *acc, int32_t *nacc, const int32_t *shape, int n) {
    /* the common cases first, for the cost of building a node: the first shape, an equal one
     * (the ops broadcast elementwise inputs to one shape before they build) */
    if (*nacc == 0 || (*nacc == n && memcmp(acc, shape, sizeof(int32_t) * (size_t)n) == 0)) {
        if (n > LX_MAX_NDIM) return false;
        if (*nacc == 0 && n) memcpy(acc, shape, sizeof(int32_t) * (size_t)n);
        *nacc = n;
        return true;
    }
    int32_t r[LX_MAX_NDIM];
    int rn = *nacc > n ? *nacc : n;
    if (rn > LX_MAX_NDIM) return false;
    for (int d = 0; d < rn; d++) {
        int ia = d - (rn - *nacc), ib = d - (rn - n);
        int32_t da = ia >= 0 ? acc[ia] : 1, db = ib >= 0 ? shape[ib] : 1;
        if (da != db && da != 1 && db != 1) return false;
        r[d] = da == 1 ? db : da;
    }
    memcpy(acc, r, sizeof(int32_t) * (size_t)rn);
    *nacc = rn;
    return true;
}

/* Whether src broadcasts (right-aligned) to dst exactly. */
static bool broadcasts_to(const lx_prim_meta *src, const lx_prim_meta *dst) {
    if (src->ndim > dst->ndim) return false;
    for (int i = 0; i < src->ndim; i++) {
        int32_t d = src->shape[src->ndim - 1 - i];
        if (d != 1 && d != dst->shape[dst->ndim - 1 - i]) return false;
    }
    return true;
}

static bool same_shape(const lx_prim_meta *a, const lx_prim_meta *b) {
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int32_t) * (size_t)a->ndim) == 0;
}

static bool is_float(int t) { return lx_dtype_valid(t) && lx_dtype_is_float((lx_dtype)t); }
static bool is_int(int t) { return lx_dtype_valid(t) && lx_dtype_is_integer((lx_dtype)t); }
static const char *dname(int t) { return lx_dtype_valid(t) ? lx_dtype_name((lx_dtype)t) : "?"; }

/* Input k must have dtype t (the node's, usually). */
#define NEED_DTYPE(k, t)                                                                       \
    do {                                                                                       \
        if (in[k].dtype != (t))                                                                \
            return DTYPE_FAIL("input %d has dtype %s, expected %s", (k), dname(in[k].dtype),   \
                              dname(t));                                                       \
    } while (0)

/* ---- leaves and views --------------------------------------------------------------------- */

#define PRIM_NAME "NONE"
RULE(NONE) { /* a leaf: its dtype and shape are its own */
    UNUSED_RULE_ARGS;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "PLACEHOLDER"
RULE(PLACEHOLDER) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(0, 0);
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "RESHAPE"
RULE(RESHAPE) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    if (meta_size(&in[0]) != meta_size(out))
        return SHAPE_FAIL("cannot reshape %s to %s", META_STR(&in[0]), META_STR(out));
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "PERMUTE"
RULE(PERMUTE) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_permute_params, p);
    bool seen[LX_MAX_NDIM] = {false};
    for (int i = 0; i < in[0].ndim; i++) {
        int a = p.perm[i];
        if (a < 0 || a >= in[0].ndim || seen[a])
            return PARAM_FAIL("perm is not a permutation of the %d axes of %s", in[0].ndim,
                              META_STR(&in[0]));
        seen[a] = true;
        out->shape[i] = in[0].shape[a];
    }
    out->ndim = in[0].ndim;
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* start + step * j for j < len stays inside [0, dim) (nothing to check when len is 0). */
static bool slice_fits(int32_t start, int32_t step, int32_t len, int32_t dim) {
    if (len == 0) return true;
    int64_t last = (int64_t)start + (int64_t)step * (len - 1);
    return step != 0 && start >= 0 && start < dim && last >= 0 && last < dim;
}

#define PRIM_NAME "SLICE"
RULE(SLICE) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_slice_params, p);
    if (out->ndim != in[0].ndim)
        return SHAPE_FAIL("slice %s of %s has another rank", META_STR(out), META_STR(&in[0]));
    for (int i = 0; i < out->ndim && meta_size(out) > 0; i++) /* an empty slice reads nothing */
        if (!slice_fits(p.start[i], p.step[i], out->shape[i], in[0].shape[i]))
            return SHAPE_FAIL("slice %s (axis %d: start %d, step %d) is outside %s",
                              META_STR(out), i, p.start[i], p.step[i], META_STR(&in[0]));
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "BROADCAST"
RULE(BROADCAST) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    if (!broadcasts_to(&in[0], out))
        return SHAPE_FAIL("cannot broadcast %s to %s", META_STR(&in[0]), META_STR(out));
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "AS_STRIDED"
RULE(AS_STRIDED) { /* the op checked the strides against the input's size */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "CONTIGUOUS"
RULE(CONTIGUOUS) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "PART"
RULE(PART) { /* one output of a multi-output node's byte buffer */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_part_params, p);
    if (!lx_dtype_valid(out->dtype)) return DTYPE_FAIL("invalid dtype %d", out->dtype);
    int64_t bytes = meta_size(out) * (int64_t)lx_dtype_size((lx_dtype)out->dtype);
    int64_t have = meta_size(&in[0]) * (int64_t)lx_dtype_size((lx_dtype)in[0].dtype);
    if (in[0].dtype != LX_UINT8 || p.byte_offset < 0 || p.byte_offset + bytes > have)
        return SHAPE_FAIL("part %s %s at byte %lld is outside its %s %s buffer", dname(out->dtype),
                          META_STR(out), (long long)p.byte_offset, dname(in[0].dtype),
                          META_STR(&in[0]));
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "TRANSFER"
RULE(TRANSFER) { /* a copy onto the node's device */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* ---- core kernels ------------------------------------------------------------------------- */

#define PRIM_NAME "COPY"
RULE(COPY) { /* the dtype is the node's (astype) */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    copy_shape(out, &in[0]);
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "FULL"
RULE(FULL) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(0, 0);
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "ARANGE"
RULE(ARANGE) { /* start + step * (flat index) over the node's own shape */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(0, 0);
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "UNARY"
RULE(UNARY) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_unary_params, p);
    if (p.op < 0 || p.op >= LX_UNARY_COUNT) return PARAM_FAIL("unknown op %d", p.op);
    copy_shape(out, &in[0]);
    out->dtype = lx_unary_op_is_pred(p.op) ? LX_BOOL : in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "BINARY"
RULE(BINARY) { /* inputs of one dtype; ops broadcast them, FUSED members need not be */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(2, 2);
    GET_PARAMS(lx_binary_params, p);
    if (p.op < 0 || p.op >= LX_BINARY_COUNT) return PARAM_FAIL("unknown op %d", p.op);
    NEED_DTYPE(1, in[0].dtype);
    out->ndim = 0;
    for (int k = 0; k < 2; k++)
        if (!bcast_into(out->shape, &out->ndim, in[k].shape, in[k].ndim))
            return SHAPE_FAIL("shapes %s and %s cannot be broadcast together", META_STR(&in[0]),
                              META_STR(&in[1]));
    out->dtype = lx_binary_op_is_pred(p.op) ? LX_BOOL : in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "WHERE"
RULE(WHERE) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(3, 3);
    NEED_DTYPE(0, LX_BOOL);
    NEED_DTYPE(2, in[1].dtype);
    out->ndim = 0;
    for (int k = 0; k < 3; k++)
        if (!bcast_into(out->shape, &out->ndim, in[k].shape, in[k].ndim))
            return SHAPE_FAIL("shapes %s, %s and %s cannot be broadcast together",
                              META_STR(&in[0]), META_STR(&in[1]), META_STR(&in[2]));
    out->dtype = in[1].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "REDUCE"
RULE(REDUCE) { /* the dtype is the node's (the accumulator rules of the op) */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_reduce_params, p);
    if (p.n_axes < 0 || p.n_axes > in[0].ndim) return PARAM_FAIL("%d axes", p.n_axes);
    copy_shape(out, &in[0]);
    int64_t count = 1;
    for (int i = 0; i < p.n_axes; i++) {
        int a = p.axes[i];
        if (a < 0 || a >= in[0].ndim || (i > 0 && a <= p.axes[i - 1]))
            return SHAPE_FAIL("axes are not sorted, distinct axes of %s", META_STR(&in[0]));
        count *= in[0].shape[a];
        out->shape[a] = 1;
    }
    if (p.by_count) {
        /* a mean or a variance: the scale follows the reduced count */
        double denom = (double)count - (double)p.ddof;
        p.scale = denom > 0 ? 1.0 / denom : INFINITY;
        if (rewrite) memcpy(rewrite, &p, sizeof p);
    }
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "ARG_REDUCE"
RULE(ARG_REDUCE) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_arg_reduce_params, p);
    if (p.axis < 0 || p.axis >= in[0].ndim)
        return SHAPE_FAIL("axis %d is outside %s", p.axis, META_STR(&in[0]));
    copy_shape(out, &in[0]);
    out->shape[p.axis] = 1;
    out->dtype = LX_UINT32;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "SOFTMAX"
RULE(SOFTMAX) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_softmax_params, p);
    if (p.axis < 0 || p.axis >= in[0].ndim)
        return SHAPE_FAIL("axis %d is outside %s", p.axis, META_STR(&in[0]));
    if (!is_float(in[0].dtype)) return DTYPE_FAIL("input dtype %s is not a float", dname(in[0].dtype));
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* The batch dims of two operands broadcast into out, then rows, cols appended. */
static bool batch_into(lx_prim_meta *out, const int32_t *a, int na, const int32_t *b, int nb,
                       int32_t rows, int32_t cols) {
    out->ndim = 0;
    if (!bcast_into(out->shape, &out->ndim, a, na) || !bcast_into(out->shape, &out->ndim, b, nb) ||
        out->ndim + 2 > LX_MAX_NDIM)
        return false;
    out->shape[out->ndim++] = rows;
    out->shape[out->ndim++] = cols;
    return true;
}

#define PRIM_NAME "MATMUL"
RULE(MATMUL) { /* one dtype, or a float32 a times a half b (a weight read as stored) */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(2, 3);
    const lx_prim_meta *a = &in[0], *b = &in[1];
    if (!lx_matmul_mixed_ok(a->dtype, b->dtype)) NEED_DTYPE(1, a->dtype);
    if (a->ndim < 2 || b->ndim < 2 || a->shape[a->ndim - 1] != b->shape[b->ndim - 2] ||
        !batch_into(out, a->shape, a->ndim - 2, b->shape, b->ndim - 2, a->shape[a->ndim - 2],
                    b->shape[b->ndim - 1]))
        return SHAPE_FAIL("shapes %s and %s cannot be multiplied", META_STR(a), META_STR(b));
    if (n_in == 3) {
        NEED_DTYPE(2, a->dtype);
        if (!broadcasts_to(&in[2], out))
            return SHAPE_FAIL("c %s does not broadcast to the product %s", META_STR(&in[2]),
                              META_STR(out));
    }
    out->dtype = a->dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* w (input k, when present) is [D] of x's dtype, D x's last dim. */
static lx_status affine_ok(const char *who, const char *prim, const lx_prim_meta *in, int k,
                           int32_t d) {
    if (in[k].ndim != 1 || in[k].shape[0] != d)
        return fail(LX_E_SHAPE, who, prim, "input %d has shape %s, expected [%d]", k,
                    META_STR(&in[k]), d);
    if (in[k].dtype != in[0].dtype)
        return fail(LX_E_DTYPE, who, prim, "input %d has dtype %s, expected %s", k,
                    dname(in[k].dtype), dname(in[0].dtype));
    return LX_OK;
}

#define PRIM_NAME "RMS_NORM"
RULE(RMS_NORM) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 2);
    if (in[0].ndim < 1) return SHAPE_FAIL("x %s has no last axis", META_STR(&in[0]));
    if (!is_float(in[0].dtype)) return DTYPE_FAIL("x dtype %s is not a float", dname(in[0].dtype));
    if (n_in == 2) {
        lx_status st = affine_ok(who, PRIM_NAME, in, 1, in[0].shape[in[0].ndim - 1]);
        if (st != LX_OK) return st;
    }
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "RANDOM_BITS"
RULE(RANDOM_BITS) { /* key's leading dims, then the node's per-key dims */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_random_bits_params, p);
    const lx_prim_meta *k = &in[0];
    NEED_DTYPE(0, LX_UINT32);
    if (k->ndim < 1 || k->shape[k->ndim - 1] != 2)
        return SHAPE_FAIL("key %s is not [..., 2]", META_STR(k));
    int lead = k->ndim - 1;
    if (out->ndim < lead)
        return SHAPE_FAIL("output %s has fewer dims than the key's leading dims %s",
                          META_STR(out), META_STR(k));
    for (int i = 0; i < lead; i++) out->shape[i] = k->shape[i];
    switch (p.width) {
    case 1: out->dtype = LX_UINT8; break;
    case 2: out->dtype = LX_UINT16; break;
    case 4: out->dtype = LX_UINT32; break;
    default: return PARAM_FAIL("width %d", p.width);
    }
    return LX_OK;
}
#undef PRIM_NAME

/* ---- index -------------------------------------------------------------------------------- */

#define PRIM_NAME "TAKE"
RULE(TAKE) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(2, 2);
    GET_PARAMS(lx_take_params, p);
    const lx_prim_meta *a = &in[0], *ix = &in[1];
    if (!is_int(ix->dtype)) return DTYPE_FAIL("indices dtype %s is not an integer", dname(ix->dtype));
    if (p.axis < 0 || p.axis >= a->ndim || a->ndim - 1 + ix->ndim > LX_MAX_NDIM)
        return SHAPE_FAIL("axis %d of %s with indices %s", p.axis, META_STR(a), META_STR(ix));
    int k = 0;
    int32_t s[LX_MAX_NDIM];
    for (int i = 0; i < p.axis; i++) s[k++] = a->shape[i];
    for (int i = 0; i < ix->ndim; i++) s[k++] = ix->shape[i];
    for (int i = p.axis + 1; i < a->ndim; i++) s[k++] = a->shape[i];
    memcpy(out->shape, s, sizeof(int32_t) * (size_t)k);
    out->ndim = k;
    out->dtype = a->dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* a and indices of one rank, equal except on the axis (the op broadcast them). */
static lx_status along_ok(const char *who, const char *prim, const lx_prim_meta *a,
                          const lx_prim_meta *ix, int axis) {
    if (!is_int(ix->dtype))
        return fail(LX_E_DTYPE, who, prim, "indices dtype %s is not an integer", dname(ix->dtype));
    bool ok = axis >= 0 && axis < a->ndim && ix->ndim == a->ndim;
    for (int i = 0; ok && i < a->ndim; i++) ok = i == axis || a->shape[i] == ix->shape[i];
    if (!ok)
        return fail(LX_E_SHAPE, who, prim, "indices %s do not fit %s along axis %d",
                    META_STR(ix), META_STR(a), axis);
    return LX_OK;
}

#define PRIM_NAME "TAKE_ALONG"
RULE(TAKE_ALONG) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(2, 2);
    GET_PARAMS(lx_take_params, p);
    lx_status st = along_ok(who, PRIM_NAME, &in[0], &in[1], p.axis);
    if (st != LX_OK) return st;
    copy_shape(out, &in[1]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "PUT_ALONG"
RULE(PUT_ALONG) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(3, 3);
    GET_PARAMS(lx_take_params, p);
    NEED_DTYPE(2, in[0].dtype);
    if (!is_int(in[1].dtype)) return DTYPE_FAIL("indices dtype %s is not an integer", dname(in[1].dtype));
    if (!same_shape(&in[1], &in[2]) || in[1].ndim != in[0].ndim || p.axis < 0 ||
        p.axis >= in[0].ndim)
        return SHAPE_FAIL("indices %s and values %s do not fit %s along axis %d",
                          META_STR(&in[1]), META_STR(&in[2]), META_STR(&in[0]), p.axis);
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "SLICE_UPDATE"
RULE(SLICE_UPDATE) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(2, 2);
    GET_PARAMS(lx_slice_params, p);
    NEED_DTYPE(1, in[0].dtype);
    if (in[1].ndim != in[0].ndim)
        return SHAPE_FAIL("update %s has another rank than %s", META_STR(&in[1]), META_STR(&in[0]));
    for (int i = 0; i < in[0].ndim && meta_size(&in[1]) > 0; i++) /* empty: writes nothing */
        if (!slice_fits(p.start[i], p.step[i], in[1].shape[i], in[0].shape[i]))
            return SHAPE_FAIL("update %s (axis %d: start %d, step %d) is outside %s",
                              META_STR(&in[1]), i, p.start[i], p.step[i], META_STR(&in[0]));
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "CONCATENATE"
RULE(CONCATENATE) {
    UNUSED_RULE_ARGS;
    GET_PARAMS(lx_concat_params, p);
    if (n_in < 1) return PARAM_FAIL("no inputs");
    if (p.axis < 0 || p.axis >= in[0].ndim)
        return SHAPE_FAIL("axis %d is outside %s", p.axis, META_STR(&in[0]));
    copy_shape(out, &in[0]);
    int64_t total = 0;
    for (int k = 0; k < n_in; k++) {
        NEED_DTYPE(k, in[0].dtype);
        bool ok = in[k].ndim == in[0].ndim;
        for (int i = 0; ok && i < in[0].ndim; i++) ok = i == p.axis || in[k].shape[i] == in[0].shape[i];
        if (!ok)
            return SHAPE_FAIL("input %d %s does not fit %s along axis %d", k, META_STR(&in[k]),
                              META_STR(&in[0]), p.axis);
        total += in[k].shape[p.axis];
    }
    if (total > INT32_MAX) return SHAPE_FAIL("axis %d would have %lld elements", p.axis, (long long)total);
    out->shape[p.axis] = (int32_t)total;
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "PAD"
RULE(PAD) { /* the node's shape: the high padding is not a parameter */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_pad_params, p);
    bool ok = out->ndim == in[0].ndim;
    for (int i = 0; ok && i < out->ndim; i++)
        ok = p.low[i] >= 0 && (int64_t)p.low[i] + in[0].shape[i] <= out->shape[i];
    if (!ok) return SHAPE_FAIL("%s does not hold %s padded low by the params", META_STR(out), META_STR(&in[0]));
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "TILE"
RULE(TILE) { /* the node's shape: the repeat counts are not parameters */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    if (out->ndim != in[0].ndim)
        return SHAPE_FAIL("%s is not of the rank of %s", META_STR(out), META_STR(&in[0]));
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "TRI_SELECT"
RULE(TRI_SELECT) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    if (in[0].ndim < 2) return SHAPE_FAIL("%s has fewer than 2 dims", META_STR(&in[0]));
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* ---- nn ----------------------------------------------------------------------------------- */

#define PRIM_NAME "LAYER_NORM"
RULE(LAYER_NORM) {
    UNUSED_RULE_ARGS;
    GET_PARAMS(lx_layer_norm_params, p);
    int want = 1 + (p.has_w != 0) + (p.has_b != 0);
    NEED_INPUTS(want, want);
    if (in[0].ndim < 1) return SHAPE_FAIL("x %s has no last axis", META_STR(&in[0]));
    if (!is_float(in[0].dtype)) return DTYPE_FAIL("x dtype %s is not a float", dname(in[0].dtype));
    for (int k = 1; k < n_in; k++) {
        lx_status st = affine_ok(who, PRIM_NAME, in, k, in[0].shape[in[0].ndim - 1]);
        if (st != LX_OK) return st;
    }
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "GROUP_NORM"
RULE(GROUP_NORM) {
    UNUSED_RULE_ARGS;
    GET_PARAMS(lx_group_norm_params, p);
    int want = 1 + (p.has_w != 0) + (p.has_b != 0);
    NEED_INPUTS(want, want);
    if (in[0].ndim < 2) return SHAPE_FAIL("x %s has fewer than 2 dims", META_STR(&in[0]));
    if (!is_float(in[0].dtype)) return DTYPE_FAIL("x dtype %s is not a float", dname(in[0].dtype));
    int32_t c = in[0].shape[in[0].ndim - 1];
    if (p.groups <= 0 || c % p.groups != 0)
        return SHAPE_FAIL("%d groups do not divide the %d channels of %s", p.groups, c, META_STR(&in[0]));
    for (int k = 1; k < n_in; k++) {
        lx_status st = affine_ok(who, PRIM_NAME, in, k, c);
        if (st != LX_OK) return st;
    }
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "ROPE"
RULE(ROPE) {
    UNUSED_RULE_ARGS;
    GET_PARAMS(lx_rope_params, p);
    int want = 1 + (p.has_freqs != 0) + (p.has_offset != 0);
    NEED_INPUTS(want, want);
    const lx_prim_meta *x = &in[0];
    if (!is_float(x->dtype)) return DTYPE_FAIL("x dtype %s is not a float", dname(x->dtype));
    if (x->ndim < 2 || p.dims <= 0 || p.dims % 2 || p.dims > x->shape[x->ndim - 1])
        return SHAPE_FAIL("dims %d do not fit x %s", p.dims, META_STR(x));
    if (p.has_freqs && (in[1].ndim != 1 || in[1].shape[0] != p.dims / 2 || in[1].dtype != LX_FLOAT32))
        return SHAPE_FAIL("freqs %s %s are not float32 [%d]", dname(in[1].dtype), META_STR(&in[1]),
                          p.dims / 2);
    if (p.has_offset) {
        const lx_prim_meta *o = &in[n_in - 1];
        if (!is_int(o->dtype) || o->ndim > 1 || meta_size(o) != 1)
            return SHAPE_FAIL("offset %s %s is not one integer", dname(o->dtype), META_STR(o));
    }
    copy_shape(out, x);
    out->dtype = x->dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "SDPA"
RULE(SDPA) {
    UNUSED_RULE_ARGS;
    GET_PARAMS(lx_sdpa_params, p);
    int want = 3 + (p.has_mask != 0) + (p.has_sinks != 0);
    NEED_INPUTS(want, want);
    const lx_prim_meta *q = &in[0], *k = &in[1], *v = &in[2];
    if (!is_float(q->dtype)) return DTYPE_FAIL("q dtype %s is not a float", dname(q->dtype));
    NEED_DTYPE(1, q->dtype);
    NEED_DTYPE(2, q->dtype);
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || k->shape[0] != q->shape[0] ||
        v->shape[0] != q->shape[0] || k->shape[3] != q->shape[3] || k->shape[1] != v->shape[1] ||
        k->shape[2] != v->shape[2] || k->shape[1] == 0 || q->shape[1] % k->shape[1] != 0)
        return SHAPE_FAIL("q %s, k %s and v %s do not fit together", META_STR(q), META_STR(k),
                          META_STR(v));
    out->ndim = 4;
    out->shape[0] = q->shape[0];
    out->shape[1] = q->shape[1];
    out->shape[2] = q->shape[2];
    out->shape[3] = v->shape[3];
    out->dtype = q->dtype;
    int idx = 3;
    if (p.has_mask) {
        const lx_prim_meta *m = &in[idx++];
        lx_prim_meta full = {.ndim = 4, .shape = {q->shape[0], q->shape[1], q->shape[2], k->shape[2]}};
        if (!broadcasts_to(m, &full))
            return SHAPE_FAIL("mask %s does not broadcast to %s", META_STR(m), META_STR(&full));
        if (m->dtype != LX_BOOL && !is_float(m->dtype))
            return DTYPE_FAIL("mask dtype %s is neither bool nor a float", dname(m->dtype));
    }
    if (p.has_sinks) {
        const lx_prim_meta *s = &in[idx];
        if (s->ndim != 1 || s->shape[0] != q->shape[1])
            return SHAPE_FAIL("sinks %s are not [%d]", META_STR(s), q->shape[1]);
        NEED_DTYPE(idx, q->dtype);
    }
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "CONV"
RULE(CONV) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(2, 2);
    GET_PARAMS(lx_conv_params, p);
    const lx_prim_meta *x = &in[0], *w = &in[1];
    NEED_DTYPE(1, x->dtype);
    if (p.nsp < 1 || p.nsp > 2 || x->ndim != p.nsp + 2 || w->ndim != p.nsp + 2 || p.groups <= 0 ||
        w->shape[p.nsp + 1] * p.groups != x->shape[p.nsp + 1])
        return SHAPE_FAIL("x %s and w %s do not fit a %d-d convolution of %d groups", META_STR(x),
                          META_STR(w), p.nsp, p.groups);
    out->ndim = p.nsp + 2;
    out->shape[0] = x->shape[0];
    for (int d = 0; d < p.nsp; d++) {
        int64_t in_d = (int64_t)(x->shape[1 + d] - 1) * p.idil[d] + 1;
        int64_t padded = in_d + p.pad_lo[d] + p.pad_hi[d];
        int64_t k_d = (int64_t)p.kdil[d] * (w->shape[1 + d] - 1) + 1;
        if (p.stride[d] <= 0 || padded < k_d)
            return SHAPE_FAIL("spatial dim %d of x %s does not fit w %s", d, META_STR(x), META_STR(w));
        out->shape[1 + d] = (int32_t)((padded - k_d) / p.stride[d] + 1);
    }
    out->shape[p.nsp + 1] = w->shape[0];
    out->dtype = x->dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* ---- quant -------------------------------------------------------------------------------- */

static int64_t round64(int64_t n) { return (n + 63) / 64 * 64; }

#define PRIM_NAME "QUANTIZE"
RULE(QUANTIZE) { /* uint8 [total/64, 64]: wq | scales | biases at 64-byte offsets */
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_quantize_params, p);
    const lx_prim_meta *w = &in[0];
    if (!lx_quant_bits_ok(p.bits) || !lx_quant_group_ok(p.group_size))
        return PARAM_FAIL("bits %d, group_size %d", p.bits, p.group_size);
    if (!is_float(w->dtype) || w->ndim < 2 || w->shape[w->ndim - 1] % p.group_size)
        return SHAPE_FAIL("w %s %s cannot be quantized in groups of %d", dname(w->dtype),
                          META_STR(w), p.group_size);
    int64_t size = meta_size(w);
    int64_t sbytes = size / p.group_size * (int64_t)lx_dtype_size((lx_dtype)w->dtype);
    p.scales_offset = round64(size / 8 * p.bits);
    p.biases_offset = p.scales_offset + round64(sbytes);
    int64_t total = p.biases_offset + round64(sbytes);
    if (total / 64 > INT32_MAX) return SHAPE_FAIL("w %s is too large", META_STR(w));
    if (rewrite) memcpy(rewrite, &p, sizeof p);
    out->ndim = 2;
    out->shape[0] = (int32_t)(total / 64);
    out->shape[1] = 64;
    out->dtype = LX_UINT8;
    return LX_OK;
}
#undef PRIM_NAME

/* wq (input 1), scales and biases (2, 3) of one quantized matrix stack: *rows, *cols the
 * unpacked matrix. */
static lx_status triple_ok(const char *who, const char *prim, const lx_prim_meta *q,
                           const lx_prim_meta *s, const lx_prim_meta *b, int group_size,
                           int bits, int32_t *rows, int32_t *cols) {
    if (!lx_quant_bits_ok(bits) || !lx_quant_group_ok(group_size))
        return fail(LX_E_INTERNAL, who, prim, "bits %d, group_size %d", bits, group_size);
    if (q->dtype != LX_UINT32 || !is_float(s->dtype) || b->dtype != s->dtype)
        return fail(LX_E_DTYPE, who, prim, "wq %s, scales %s, biases %s", dname(q->dtype),
                    dname(s->dtype), dname(b->dtype));
    int64_t n = q->ndim >= 2 ? (int64_t)q->shape[q->ndim - 1] * 32 : -1;
    bool ok = q->ndim >= 2 && same_shape(s, b) && s->ndim == q->ndim &&
              memcmp(s->shape, q->shape, sizeof(int32_t) * (size_t)(q->ndim - 1)) == 0 &&
              n % bits == 0 && n / bits == (int64_t)s->shape[s->ndim - 1] * group_size &&
              n / bits <= INT32_MAX;
    if (!ok)
        return fail(LX_E_SHAPE, who, prim, "wq %s, scales %s and biases %s do not fit together "
                    "(group_size %d, bits %d)", META_STR(q), META_STR(s), META_STR(b),
                    group_size, bits);
    *rows = q->shape[q->ndim - 2];
    *cols = (int32_t)(n / bits);
    return LX_OK;
}

#define PRIM_NAME "DEQUANTIZE"
RULE(DEQUANTIZE) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(3, 3);
    GET_PARAMS(lx_quant_params, p);
    int32_t rows, cols;
    lx_status st = triple_ok(who, PRIM_NAME, &in[0], &in[1], &in[2], p.group_size, p.bits, &rows,
                             &cols);
    if (st != LX_OK) return st;
    copy_shape(out, &in[0]);
    out->shape[out->ndim - 1] = cols;
    out->dtype = in[1].dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* The batch shape an operand contributes: its index's shape when indexed, else its own
 * leading dims (an indexed operand is [count, rows, cols]). */
static void operand_batch(const lx_prim_meta *opnd, const lx_prim_meta *idx, const int32_t **s,
                          int *n) {
    if (idx) {
        *s = idx->shape;
        *n = idx->ndim;
    } else {
        *s = opnd->shape;
        *n = opnd->ndim - 2;
    }
}

/* QUANTIZED_MATMUL and GATHER_MM: the index inputs after the n_ops operands. */
static lx_status gather_out(const char *who, const char *prim, const lx_prim_meta *in, int n_in,
                            int n_ops, int flags, const lx_prim_meta *x, const lx_prim_meta *w,
                            int32_t M, int32_t N, lx_prim_meta *out) {
    int want = n_ops + ((flags & LX_QMM_LHS_INDEXED) != 0) + ((flags & LX_QMM_RHS_INDEXED) != 0);
    if (n_in != want) return fail(LX_E_INTERNAL, who, prim, "%d inputs (expected %d)", n_in, want);
    const lx_prim_meta *li = NULL, *ri = NULL;
    int k = n_ops;
    if (flags & LX_QMM_LHS_INDEXED) li = &in[k++];
    if (flags & LX_QMM_RHS_INDEXED) ri = &in[k++];
    if ((li && (!is_int(li->dtype) || x->ndim != 3)) || (ri && (!is_int(ri->dtype) || w->ndim != 3)))
        return fail(LX_E_SHAPE, who, prim, "an indexed operand must be [count, rows, cols] "
                    "with integer indices");
    const int32_t *lb, *rb;
    int ln, rn;
    operand_batch(x, li, &lb, &ln);
    operand_batch(w, ri, &rb, &rn);
    if (!batch_into(out, lb, ln, rb, rn, M, N))
        return fail(LX_E_SHAPE, who, prim, "the batch dims of %s and %s do not broadcast",
                    META_STR(x), META_STR(w));
    return LX_OK;
}

#define PRIM_NAME "QUANTIZED_MATMUL"
RULE(QUANTIZED_MATMUL) {
    UNUSED_RULE_ARGS;
    GET_PARAMS(lx_quant_params, p);
    if (n_in < 4) return PARAM_FAIL("%d inputs", n_in);
    const lx_prim_meta *x = &in[0];
    int32_t rows, cols;
    lx_status st = triple_ok(who, PRIM_NAME, &in[1], &in[2], &in[3], p.group_size, p.bits, &rows,
                             &cols);
    if (st != LX_OK) return st;
    int32_t K = p.transpose ? cols : rows, N = p.transpose ? rows : cols;
    if (x->ndim < 2 || x->shape[x->ndim - 1] != K)
        return SHAPE_FAIL("x %s does not fit the quantized %s matrix (%d, %d)", META_STR(x),
                          p.transpose ? "transposed" : "", K, N);
    if (!is_float(x->dtype) || in[2].dtype != x->dtype)
        return DTYPE_FAIL("x %s and scales %s", dname(x->dtype), dname(in[2].dtype));
    st = gather_out(who, PRIM_NAME, in, n_in, 4, p.flags, x, &in[1], x->shape[x->ndim - 2], N, out);
    if (st != LX_OK) return st;
    out->dtype = x->dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "GATHER_MM"
RULE(GATHER_MM) {
    UNUSED_RULE_ARGS;
    GET_PARAMS(lx_quant_params, p);
    if (n_in < 2) return PARAM_FAIL("%d inputs", n_in);
    const lx_prim_meta *a = &in[0], *b = &in[1];
    NEED_DTYPE(1, a->dtype);
    if (a->ndim < 2 || b->ndim < 2 || a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return SHAPE_FAIL("a %s and b %s cannot be multiplied", META_STR(a), META_STR(b));
    lx_status st = gather_out(who, PRIM_NAME, in, n_in, 2, p.flags, a, b, a->shape[a->ndim - 2],
                              b->shape[b->ndim - 1], out);
    if (st != LX_OK) return st;
    out->dtype = a->dtype;
    return LX_OK;
}
#undef PRIM_NAME

/* ---- scan, sort --------------------------------------------------------------------------- */

#define PRIM_NAME "SCAN"
RULE(SCAN) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_scan_params, p);
    if (p.axis < 0 || p.axis >= in[0].ndim)
        return SHAPE_FAIL("axis %d is outside %s", p.axis, META_STR(&in[0]));
    copy_shape(out, &in[0]);
    out->dtype = p.op == LX_SCAN_SUM && in[0].dtype == LX_BOOL ? LX_INT32 : in[0].dtype;
    return LX_OK;
}
#undef PRIM_NAME

#define PRIM_NAME "SORT"
RULE(SORT) {
    UNUSED_RULE_ARGS;
    NEED_INPUTS(1, 1);
    GET_PARAMS(lx_sort_params, p);
    if (p.axis < 0 || p.axis >= in[0].ndim)
        return SHAPE_FAIL("axis %d is outside %s", p.axis, META_STR(&in[0]));
    int32_t n = in[0].shape[p.axis];
    copy_shape(out, &in[0]);
    out->dtype = in[0].dtype;
    switch (p.mode) {
    case LX_SORT_VALUES: break;
    case LX_SORT_INDICES: out->dtype = LX_UINT32; break;
    case LX_SORT_ARGPARTITION: out->dtype = LX_UINT32; /* fall through */
    case LX_SORT_PARTITION:
        if (p.kth < 0 || p.kth >= n) return SHAPE_FAIL("kth %d is outside axis %d of %s", p.kth, p.axis, META_STR(&in[0]));
        break;
    case LX_SORT_TOPK:
        if (p.kth < 0 || p.kth > n) return SHAPE_FAIL("k %d is more than axis %d of %s", p.kth, p.axis, META_STR(&in[0]));
        out->shape[p.axis] = p.kth;
        break;
    default: return PARAM_FAIL("mode %d", p.mode);
    }
    return LX_OK;
}
#undef PRIM_NAME

/* ---- compile ------------------------------------------------------------------------------ */

#define PRIM_NAME "FUSED"
RULE(FUSED) { /* the broadcast of the inputs and of min_ndim ones; header rewritten */
    UNUSED_RULE_ARGS;
    lx_fused_header h;
    if (!params || params_size < sizeof h) return PARAM_FAIL("params of %u bytes", params_size);
    memcpy(&h, params, sizeof h);
    if (h.version != LX_FUSED_VERSION || params_size != lx_fused_params_size(h.n_instr) ||
        h.n_in != n_in || h.n_out < 1 || h.n_out > LX_FUSED_MAX_OUT || h.min_ndim > LX_MAX_NDIM)
        return PARAM_FAIL("malformed program header (version %u, %d inputs for %d)", h.version,
                          h.n_in, n_in);
    lx_prim_meta s = {.ndim = h.min_ndim};
    for (int d = 0; d < s.ndim; d++) s.shape[d] = 1;
    for (int k = 0; k < n_in; k++)
        if (!bcast_into(s.shape, &s.ndim, in[k].shape, in[k].ndim))
            return SHAPE_FAIL("input shapes %s and %s cannot be broadcast together",
                              META_STR(&s), META_STR(&in[k]));
    for (int k = 0; k < n_in; k++)
        if (!lx_dtype_valid(in[k].dtype)) return DTYPE_FAIL("input %d dtype %d", k, in[k].dtype);
    memset(h.shape, 0, sizeof h.shape);
    memcpy(h.shape, s.shape, sizeof(int32_t) * (size_t)s.ndim);
    h.ndim = (uint8_t)s.ndim;
    if (h.n_out == 1) {
        copy_shape(out, &s);
        out->dtype = h.out_dtype[0];
    } else {
        int64_t size = meta_size(&s), off = 0;
        for (int j = 0; j < h.n_out; j++) {
            off = lx_fused_align(off);
            h.out_offset[j] = off;
            off += size * (int64_t)lx_dtype_size((lx_dtype)h.out_dtype[j]);
        }
        off = lx_fused_align(off);
        if (off / 64 > INT32_MAX) return SHAPE_FAIL("the outputs of %s are too large", META_STR(&s));
        out->ndim = 2;
        out->shape[0] = (int32_t)(off / 64);
        out->shape[1] = 64;
        out->dtype = LX_UINT8;
    }
    if (rewrite) memcpy(rewrite, &h, sizeof h);
    return LX_OK;
}
#undef PRIM_NAME

/* ---- the table ---------------------------------------------------------------------------- */

enum { D = LX_SHAPE_DERIVED, P = LX_SHAPE_PARTIAL, G = LX_SHAPE_GIVEN };

/* name, shape kind, view, fuses, donate */
#define INFO(name, shape, view, fuses, donate) \
    static const lx_prim_info info_##name = {#name, rule_##name, shape, view, fuses, donate};
INFO(NONE, G, false, false, 0)
/* views: eval shares the input's buffer */
INFO(RESHAPE, G, true, false, 0)
INFO(PERMUTE, D, true, false, 0)
INFO(SLICE, G, true, false, 0)
INFO(BROADCAST, G, true, false, 0)
INFO(AS_STRIDED, G, true, false, 0)
INFO(CONTIGUOUS, D, true, false, 0)
INFO(PART, G, true, false, 0)
/* core kernels; elementwise ones fuse and may write over any input (each element is read
 * before it is written) */
INFO(COPY, D, false, true, LX_DONATE_ALL)
INFO(FULL, G, false, false, 0)
INFO(ARANGE, G, false, false, 0)
INFO(UNARY, D, false, true, LX_DONATE_ALL)
INFO(BINARY, D, false, true, LX_DONATE_ALL)
INFO(WHERE, D, false, true, LX_DONATE_ALL)
INFO(REDUCE, D, false, false, 0)
INFO(ARG_REDUCE, D, false, false, 0)
INFO(SOFTMAX, D, false, false, 0)
INFO(MATMUL, D, false, false, 0)
INFO(RMS_NORM, D, false, false, 0)
INFO(RANDOM_BITS, P, false, false, 0)
INFO(TRANSFER, D, false, false, 0) /* run by eval through the devices' copies */
/* index: SLICE_UPDATE and PUT_ALONG update input 0 in place when given its buffer */
INFO(TAKE, D, false, false, 0)
INFO(TAKE_ALONG, D, false, false, 0)
INFO(PUT_ALONG, D, false, false, 1)
INFO(SLICE_UPDATE, D, false, false, 1)
INFO(CONCATENATE, D, false, false, 0)
INFO(PAD, G, false, false, 0)
INFO(TILE, G, false, false, 0)
INFO(TRI_SELECT, D, false, false, 0)
/* scan */
INFO(SCAN, D, false, false, 0)
INFO(SORT, D, false, false, 0)
/* nn */
INFO(LAYER_NORM, D, false, false, 0)
INFO(GROUP_NORM, D, false, false, 0)
INFO(ROPE, D, false, false, 0)
INFO(SDPA, D, false, false, 0)
INFO(CONV, D, false, false, 0)
/* quant */
INFO(QUANTIZE, D, false, false, 0)
INFO(DEQUANTIZE, D, false, false, 0)
INFO(QUANTIZED_MATMUL, D, false, false, 0)
INFO(GATHER_MM, D, false, false, 0)
/* compile: a FUSED program stores only after every load of each tile */
INFO(PLACEHOLDER, G, false, false, 0)
INFO(FUSED, D, false, false, LX_DONATE_ALL)
#undef INFO

const lx_prim_info *const lx_prim_table[LX_PRIM_COUNT] = {
    [LX_PRIM_NONE] = &info_NONE,
#define LX_PRIM(name) [LX_PRIM_##name] = &info_##name,
#include "graph/prims_view.def"
#include "graph/prims_kernel.def"
#include "graph/prims_ops.def"
#undef LX_PRIM
};

bool lx_prim_node_fuses(int prim, const void *params, uint32_t params_size, int n_in) {
    const lx_prim_info *pi = lx_prim_info_get(prim);
    if (!pi || !pi->fuses) return false;
    switch (prim) {
    case LX_PRIM_UNARY: {
        lx_unary_params p;
        if (n_in != 1 || !params || params_size < sizeof p) return false;
        memcpy(&p, params, sizeof p);
        return p.op >= 0 && p.op < LX_UNARY_COUNT;
    }
    case LX_PRIM_BINARY: {
        lx_binary_params p;
        if (n_in != 2 || !params || params_size < sizeof p) return false;
        memcpy(&p, params, sizeof p);
        return p.op >= 0 && p.op < LX_BINARY_COUNT;
    }
    case LX_PRIM_WHERE: return n_in == 3;
    default: return n_in == 1; /* COPY */
    }
}

void lx_prim_meta_of(const lx_node *n, lx_prim_meta *m) {
    /* a node's dims past ndim are 0 (node_init): one fixed-size copy, no memset + call */
    _Static_assert(sizeof m->shape == sizeof n->shape, "lx_prim_meta's shape is a node's");
    m->dtype = n->dtype;
    m->ndim = n->ndim;
    memcpy(m->shape, n->shape, sizeof m->shape);
}

lx_status lx_prim_check(const char *who, int prim, int dtype, const int32_t *shape, int ndim,
                        lx_node *const *inputs, int n_inputs, const void *params,
                        size_t params_size) {
    const lx_prim_info *pi = lx_prim_info_get(prim);
    if (!pi) return lx_set_error(LX_E_INTERNAL, "%s: unknown primitive %d", who, prim);
    lx_prim_meta in_inline[4], *in = in_inline;
    if (n_inputs > 4 && !(in = malloc(sizeof *in * (size_t)n_inputs)))
        return lx_set_error(LX_E_OOM, "%s: out of memory", who);
    for (int i = 0; i < n_inputs; i++) lx_prim_meta_of(inputs[i], &in[i]);
    /* the rule may rewrite shape-dependent params: into a copy, compared after */
    _Alignas(16) unsigned char pbuf_inline[128];
    unsigned char *pbuf = pbuf_inline;
    if (params_size > sizeof pbuf_inline && !(pbuf = malloc(params_size))) {
        if (in != in_inline) free(in);
        return lx_set_error(LX_E_OOM, "%s: out of memory", who);
    }
    if (params_size) memcpy(pbuf, params, params_size);
    lx_prim_meta out = {.dtype = dtype, .ndim = ndim};
    /* a scalar's shape may be NULL: memcpy/memcmp with NULL are undefined even for 0 bytes */
    if (ndim) memcpy(out.shape, shape, sizeof(int32_t) * (size_t)ndim);
    lx_status st = pi->rule(who, in, n_inputs, params_size ? params : NULL, (uint32_t)params_size,
                            params_size ? pbuf : NULL, &out);
    if (st == LX_OK && params_size && memcmp(pbuf, params, params_size) != 0)
        st = lx_set_error(LX_E_INTERNAL, "%s: built %s with params that its rule rewrites for "
                          "these inputs (shape-dependent params out of date)", who, pi->name);
    if (st == LX_OK && (out.dtype != dtype || out.ndim != ndim ||
                        (ndim && memcmp(out.shape, shape, sizeof(int32_t) * (size_t)ndim) != 0))) {
        char a[96], b[96];
        st = lx_set_error(LX_E_INTERNAL, "%s: built %s as %s %s; its rule gives %s %s", who,
                          pi->name, dname(dtype), shape_text(shape, ndim, a, sizeof a),
                          dname(out.dtype), shape_text(out.shape, out.ndim, b, sizeof b));
    }
    if (pbuf != pbuf_inline) free(pbuf);
    if (in != in_inline) free(in);
    return st;
}

const char *lx_prim_name(int p) {
    const lx_prim_info *pi = lx_prim_info_get(p);
    return pi ? pi->name : "?";
}
