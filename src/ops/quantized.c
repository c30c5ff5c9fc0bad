/*
 * quantized.c -- MLX affine quantization ops: quantize, dequantize, quantized_matmul,
 * gather_qmm, gather_mm.
 *
 * The format (graph/prims_quant.h) is MLX's, so MLX-quantized checkpoints load as they are.
 * quantize is a multi-output primitive: one QUANTIZE node owns a byte buffer holding wq,
 * scales and biases at 64-byte-aligned offsets, and three PART views hand out the outputs.
 *
 * quantized_matmul and gather_qmm share one primitive: each of x and w gets its batch matrix
 * either from an index array (gather) or by broadcasting its batch dims against the output's
 * (no index). With a 2-D w and no indices, x's leading dims fold into M, so a [B, L, K] input
 * makes one [B*L, K] product. The kernels take row-contiguous operands: the ops wrap inputs in
 * CONTIGUOUS, a view unless a copy is needed.
 */
#include <string.h>

#include "graph/prims_quant.h"
#include "ops/ops.h"

static bool is_qfloat(lx_dtype t) {
    return t == LX_FLOAT32 || t == LX_FLOAT16 || t == LX_BFLOAT16;
}

static bool check_qparams(const char *op, int group_size, int bits) {
    if (!lx_quant_group_ok(group_size)) {
        lx_set_error(LX_E_ARG, "%s: group_size %d is not supported (32, 64 or 128)", op,
                     group_size);
        return false;
    }
    if (!lx_quant_bits_ok(bits)) {
        lx_set_error(LX_E_ARG, "%s: bits %d is not supported (2, 3, 4, 5, 6 or 8)", op, bits);
        return false;
    }
    return true;
}

/* x as a row-contiguous node: itself when already computed that way, else a CONTIGUOUS view
 * (which copies only when the layout needs it). */
static lx_node *contig(const char *op, lx_node *x) {
    if (!x) return NULL;
    if (lx_node_state_of(x) == LX_NODE_READY && lx_node_is_row_contiguous(x)) return x;
    return lx_build(op, LX_PRIM_CONTIGUOUS, (lx_dtype)x->dtype, x->shape, x->ndim, &x, 1, NULL,
                    0);
}

/* x reshaped to ndim dims by prepending 1s (ndim >= x->ndim). */
static lx_node *lift(const char *op, lx_node *x, int ndim) {
    if (!x || x->ndim == ndim) return x;
    int shape[LX_MAX_NDIM];
    int lead = ndim - x->ndim;
    for (int i = 0; i < ndim; i++) shape[i] = i < lead ? 1 : x->shape[i - lead];
    return lx_node_reshape(op, x, shape, ndim);
}

static int64_t prod(const int32_t *shape, int n) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= shape[i];
    return p;
}

/* ---- quantize ---------------------------------------------------------------------------- */

static lx_node *part(const char *op, lx_node *k, lx_dtype dtype, const int *shape, int ndim,
                     int64_t byte_offset) {
    lx_part_params p;
    memset(&p, 0, sizeof p);
    p.byte_offset = byte_offset;
    lx_node_retain(k);
    return lx_build(op, LX_PRIM_PART, dtype, shape, ndim, &k, 1, &p, sizeof p);
}

lx_status lx_quantize(lx_array w, int group_size, int bits, lx_array *wq, lx_array *scales,
                      lx_array *biases) {
    const char *op = "lx_quantize";
    if (wq) *wq = LX_NULL_ARRAY;
    if (scales) *scales = LX_NULL_ARRAY;
    if (biases) *biases = LX_NULL_ARRAY;
    if (!wq || !scales || !biases)
        return lx_set_error(LX_E_ARG, "%s: wq, scales and biases must not be NULL", op);
    lx_node *x = lx_arg(w, op, "w");
    if (!x) return lx_error();
    lx_status st = LX_OK;
    if (!check_qparams(op, group_size, bits)) {
        st = LX_E_ARG;
    } else if (!is_qfloat((lx_dtype)x->dtype)) {
        st = lx_set_error(LX_E_DTYPE, "%s: w has dtype %s; float32, float16 or bfloat16 expected",
                          op, lx_dtype_name((lx_dtype)x->dtype));
    } else if (x->ndim < 2) {
        st = lx_set_error(LX_E_SHAPE, "%s: w must have at least 2 dimensions, got shape %s", op,
                          LX_SHAPE_STR(x));
    } else if (x->shape[x->ndim - 1] % group_size != 0) {
        st = lx_set_error(LX_E_SHAPE, "%s: the last dimension of w (shape %s) is not divisible "
                          "by group_size %d", op, LX_SHAPE_STR(x), group_size);
    }
    if (st != LX_OK) {
        lx_node_release(x);
        return st;
    }
    lx_dtype dt = (lx_dtype)x->dtype;
    int ndim = x->ndim, K = x->shape[ndim - 1];
    int qshape[LX_MAX_NDIM], sshape[LX_MAX_NDIM];
    memcpy(qshape, x->shape, sizeof(int) * (size_t)ndim);
    memcpy(sshape, x->shape, sizeof(int) * (size_t)ndim);
    qshape[ndim - 1] = (int)((int64_t)K * bits / 32);
    sshape[ndim - 1] = K / group_size;

    int64_t qbytes = x->size / 8 * bits; /* size is a multiple of 32 */
    int64_t sbytes = x->size / group_size * (int64_t)lx_dtype_size(dt);
    lx_quantize_params p;
    memset(&p, 0, sizeof p);
    p.group_size = group_size;
    p.bits = bits;
    p.scales_offset = (qbytes + 63) / 64 * 64;
    p.biases_offset = p.scales_offset + (sbytes + 63) / 64 * 64;
    int64_t total = p.biases_offset + (sbytes + 63) / 64 * 64;
    if (total / 64 > INT32_MAX) {
        lx_node_release(x);
        return lx_set_error(LX_E_SHAPE, "%s: w of shape %s is too large", op, LX_SHAPE_STR(x));
    }
    /* [total/64, 64] rather than [total] keeps the dims within int32 for any size */
    int kshape[2] = {(int)(total / 64), 64};
    x = contig(op, x);
    lx_node *k = x ? lx_build(op, LX_PRIM_QUANTIZE, LX_UINT8, kshape, 2, &x, 1, &p, sizeof p)
                   : NULL;
    if (!k) return lx_error() ? lx_error() : LX_E_INTERNAL;
    lx_node *outs[3];
    outs[0] = part(op, k, LX_UINT32, qshape, ndim, 0);
    outs[1] = part(op, k, dt, sshape, ndim, p.scales_offset);
    outs[2] = part(op, k, dt, sshape, ndim, p.biases_offset);
    lx_node_release(k);
    if (!outs[0] || !outs[1] || !outs[2]) {
        lx_release_nodes(outs, 3);
        return lx_error() ? lx_error() : LX_E_INTERNAL;
    }
    *wq = lx_wrap(outs[0]);
    *scales = lx_wrap(outs[1]);
    *biases = lx_wrap(outs[2]);
    if (lx_is_null(*wq) || lx_is_null(*scales) || lx_is_null(*biases)) {
        /* a handle could not be made (its node was released); the others go at the sweep */
        *wq = *scales = *biases = LX_NULL_ARRAY;
        return lx_error() ? lx_error() : LX_E_OOM;
    }
    return LX_OK;
}

/* ---- shared validation of (wq, scales, biases) -------------------------------------------- */

/* Checks the quantized triple; on success *dt is the promoted scale dtype and *cols the
 * unpacked length of wq's last axis. Does not consume. */
static bool check_triple(const char *op, const lx_node *q, const lx_node *s, const lx_node *b,
                         int group_size, int bits, lx_dtype *dt, int *cols) {
    if (q->dtype != LX_UINT32) {
        lx_set_error(LX_E_DTYPE, "%s: wq has dtype %s; uint32 expected", op,
                     lx_dtype_name((lx_dtype)q->dtype));
        return false;
    }
    lx_dtype t = lx_promote_types((lx_dtype)s->dtype, (lx_dtype)b->dtype);
    if (!is_qfloat((lx_dtype)s->dtype) || !is_qfloat((lx_dtype)b->dtype) || !is_qfloat(t)) {
        lx_set_error(LX_E_DTYPE, "%s: scales (%s) and biases (%s) must be float32, float16 or "
                     "bfloat16", op, lx_dtype_name((lx_dtype)s->dtype),
                     lx_dtype_name((lx_dtype)b->dtype));
        return false;
    }
    if (q->ndim < 2) {
        lx_set_error(LX_E_SHAPE, "%s: wq must have at least 2 dimensions, got shape %s", op,
                     LX_SHAPE_STR(q));
        return false;
    }
    bool same = s->ndim == q->ndim && b->ndim == q->ndim &&
                memcmp(s->shape, b->shape, sizeof(int32_t) * (size_t)q->ndim) == 0 &&
                memcmp(s->shape, q->shape, sizeof(int32_t) * (size_t)(q->ndim - 1)) == 0;
    int64_t n = (int64_t)q->shape[q->ndim - 1] * 32;
    if (!same || n % bits != 0 || n / bits != (int64_t)s->shape[s->ndim - 1] * group_size) {
        char sq[96], ss[96], sb[96];
        lx_set_error(LX_E_SHAPE, "%s: wq %s, scales %s and biases %s do not fit together with "
                     "group_size %d and bits %d", op,
                     lx_shape_str(q->shape, q->ndim, sq, 96),
                     lx_shape_str(s->shape, s->ndim, ss, 96),
                     lx_shape_str(b->shape, b->ndim, sb, 96), group_size, bits);
        return false;
    }
    if (n / bits > INT32_MAX) {
        lx_set_error(LX_E_SHAPE, "%s: wq %s is too large", op, LX_SHAPE_STR(q));
        return false;
    }
    *dt = t;
    *cols = (int)(n / bits);
    return true;
}

/* ---- dequantize --------------------------------------------------------------------------- */

lx_array lx_dequantize(lx_array wq, lx_array scales, lx_array biases, int group_size, int bits) {
    const char *op = "lx_dequantize";
    lx_node *in[3] = {lx_arg(wq, op, "wq"), NULL, NULL};
    if (in[0]) in[1] = lx_arg(scales, op, "scales");
    if (in[1]) in[2] = lx_arg(biases, op, "biases");
    lx_dtype dt;
    int cols;
    if (!in[2] || !check_qparams(op, group_size, bits) ||
        !check_triple(op, in[0], in[1], in[2], group_size, bits, &dt, &cols)) {
        lx_release_nodes(in, 3);
        return LX_NULL_ARRAY;
    }
    (void)cols; /* the DEQUANTIZE rule's last axis */
    in[1] = lx_node_astype(op, in[1], dt);
    in[2] = lx_node_astype(op, in[2], dt);
    for (int i = 0; i < 3; i++) in[i] = contig(op, in[i]);
    if (!in[0] || !in[1] || !in[2]) {
        lx_release_nodes(in, 3);
        return LX_NULL_ARRAY;
    }
    lx_quant_params p;
    memset(&p, 0, sizeof p);
    p.group_size = group_size;
    p.bits = bits;
    return lx_wrap(lx_build_derived(op, LX_PRIM_DEQUANTIZE, dt, in, 3, &p, sizeof p));
}

/* ---- quantized matmul and gather_qmm ------------------------------------------------------ */

/* An integer index array (null: none); false with the error set if it is not integer. */
static bool get_index(const char *op, lx_array a, const char *name, lx_node **out) {
    *out = NULL;
    if (lx_is_null(a)) return true;
    lx_node *n = lx_arg(a, op, name);
    if (!n) return false;
    if (!lx_dtype_is_integer((lx_dtype)n->dtype)) {
        lx_set_error(LX_E_DTYPE, "%s: %s has dtype %s; an integer dtype expected", op, name,
                     lx_dtype_name((lx_dtype)n->dtype));
        lx_node_release(n);
        return false;
    }
    *out = n;
    return true;
}

/* The batch shape an operand contributes: its index's shape, or its own leading dims. */
static void batch_of(const lx_node *op_node, const lx_node *idx, const int32_t **shape, int *n) {
    if (idx) {
        *shape = idx->shape;
        *n = idx->ndim;
    } else {
        *shape = op_node->shape;
        *n = op_node->ndim - 2;
    }
}

/* nodes: x, wq, scales, biases, lhs (or NULL), rhs (or NULL); all consumed. */
static lx_array qmm_build(const char *op, lx_node **nd, bool transpose, int group_size, int bits,
                          bool gather) {
    lx_node *x = nd[0], *q = nd[1], *s = nd[2], *b = nd[3], *li = nd[4], *ri = nd[5];
    lx_dtype sdt;
    int wcols;
    if (!check_qparams(op, group_size, bits) ||
        !check_triple(op, q, s, b, group_size, bits, &sdt, &wcols))
        goto fail;
    lx_dtype dt = lx_promote_types((lx_dtype)x->dtype, sdt);
    if (!is_qfloat(dt)) {
        lx_set_error(LX_E_DTYPE, "%s: x has dtype %s; the product would be %s (float32, float16 "
                     "or bfloat16 supported)", op, lx_dtype_name((lx_dtype)x->dtype),
                     lx_dtype_name(dt));
        goto fail;
    }
    int K = transpose ? wcols : q->shape[q->ndim - 2];
    int N = transpose ? q->shape[q->ndim - 2] : wcols;
    if (x->ndim < (gather ? 2 : 1) || x->shape[x->ndim - 1] != K) {
        char sx[96], sq[96];
        lx_set_error(LX_E_SHAPE, "%s: x of shape %s does not fit the quantized matrix (%d, %d) "
                     "of wq %s (group_size %d, bits %d, transpose %d)", op,
                     lx_shape_str(x->shape, x->ndim, sx, 96),
                     K, N, lx_shape_str(q->shape, q->ndim, sq, 96), group_size, bits, transpose);
        goto fail;
    }

    int out_shape[LX_MAX_NDIM], on, final_shape[LX_MAX_NDIM], fn;
    lx_quant_params p;
    memset(&p, 0, sizeof p);
    p.group_size = group_size;
    p.bits = bits;
    p.transpose = transpose;
    if (!gather && q->ndim == 2) {
        /* x's leading dims fold into M: one [M, K] x [K, N] product */
        fn = x->ndim;
        memcpy(final_shape, x->shape, sizeof(int) * (size_t)fn);
        final_shape[fn - 1] = N;
        int64_t M = prod(x->shape, x->ndim - 1);
        if (M > INT32_MAX) {
            lx_set_error(LX_E_SHAPE, "%s: x of shape %s has too many rows", op, LX_SHAPE_STR(x));
            goto fail;
        }
        int xs[2] = {(int)M, K};
        x = lx_node_reshape(op, x, xs, 2);
        nd[0] = x;
        out_shape[0] = (int)M;
        out_shape[1] = N;
        on = 2;
    } else {
        bool vec = x->ndim == 1; /* [K] -> [1, K], squeezed back after */
        if (vec) {
            int xs[2] = {1, K};
            nd[0] = x = lx_node_reshape(op, x, xs, 2);
            if (!x) goto fail;
        }
        const int32_t *lb, *rb;
        int ln, rn;
        batch_of(x, li, &lb, &ln);
        batch_of(q, ri, &rb, &rn);
        int bshape[LX_MAX_NDIM], bn;
        if (!lx_broadcast_shape(op, lb, ln, rb, rn, bshape, &bn)) goto fail;
        if (bn + 2 > LX_MAX_NDIM) {
            lx_set_error(LX_E_SHAPE, "%s: the output would have more than %d dimensions", op,
                         LX_MAX_NDIM);
            goto fail;
        }
        int M = x->shape[x->ndim - 2];
        memcpy(out_shape, bshape, sizeof(int) * (size_t)bn);
        out_shape[bn] = M;
        out_shape[bn + 1] = N;
        on = bn + 2;
        memcpy(final_shape, out_shape, sizeof out_shape);
        fn = on;
        if (vec) final_shape[--fn - 1] = N; /* drop the M axis */
        /* operands without an index broadcast their batch dims against the output's; those
         * with one are flattened to [count, rows, cols] and indexed */
        for (int i = 0; i < 4; i++) {
            lx_node *idx = i == 0 ? li : ri;
            lx_node *n = nd[i];
            if (idx) {
                int sh[3] = {(int)prod(n->shape, n->ndim - 2), n->shape[n->ndim - 2],
                             n->shape[n->ndim - 1]};
                nd[i] = lx_node_reshape(op, n, sh, 3);
            } else {
                nd[i] = lift(op, n, on);
            }
        }
        for (int i = 4; i < 6; i++)
            if (nd[i]) nd[i] = lx_node_broadcast(op, nd[i], bshape, bn);
        if (li) p.flags |= LX_QMM_LHS_INDEXED;
        if (ri) p.flags |= LX_QMM_RHS_INDEXED;
    }
    nd[0] = lx_node_astype(op, nd[0], dt);
    nd[2] = lx_node_astype(op, nd[2], dt);
    nd[3] = lx_node_astype(op, nd[3], dt);
    for (int i = 0; i < 4; i++) nd[i] = contig(op, nd[i]);
    lx_node *in[6];
    int n_in = 0;
    for (int i = 0; i < 6; i++) {
        bool want = i < 4 || (i == 4 && li) || (i == 5 && ri);
        if (want && !nd[i]) goto fail;
        if (want) in[n_in++] = nd[i];
    }
    lx_node *out =
        lx_build(op, LX_PRIM_QUANTIZED_MATMUL, dt, out_shape, on, in, n_in, &p, sizeof p);
    if (!out) return LX_NULL_ARRAY;
    return lx_wrap(lx_node_reshape(op, out, final_shape, fn));
fail:
    lx_release_nodes(nd, 6);
    return LX_NULL_ARRAY;
}

lx_array lx_quantized_matmul(lx_array x, lx_array wq, lx_array scales, lx_array biases,
                             bool transpose, int group_size, int bits) {
    const char *op = "lx_quantized_matmul";
    lx_node *nd[6] = {lx_arg(x, op, "x"), NULL, NULL, NULL, NULL, NULL};
    if (nd[0]) nd[1] = lx_arg(wq, op, "wq");
    if (nd[1]) nd[2] = lx_arg(scales, op, "scales");
    if (nd[2]) nd[3] = lx_arg(biases, op, "biases");
    if (!nd[3]) {
        lx_release_nodes(nd, 6);
        return LX_NULL_ARRAY;
    }
    return qmm_build(op, nd, transpose, group_size, bits, false);
}

lx_array lx_gather_qmm(lx_array x, lx_array wq, lx_array scales, lx_array biases,
                       lx_array lhs_indices, lx_array rhs_indices, bool transpose,
                       int group_size, int bits) {
    const char *op = "lx_gather_qmm";
    if (lx_is_null(lhs_indices) && lx_is_null(rhs_indices))
        return lx_quantized_matmul(x, wq, scales, biases, transpose, group_size, bits);
    lx_node *nd[6] = {lx_arg(x, op, "x"), NULL, NULL, NULL, NULL, NULL};
    if (nd[0]) nd[1] = lx_arg(wq, op, "wq");
    if (nd[1]) nd[2] = lx_arg(scales, op, "scales");
    if (nd[2]) nd[3] = lx_arg(biases, op, "biases");
    if (!nd[3] || !get_index(op, lhs_indices, "lhs_indices", &nd[4]) ||
        !get_index(op, rhs_indices, "rhs_indices", &nd[5])) {
        lx_release_nodes(nd, 6);
        return LX_NULL_ARRAY;
    }
    return qmm_build(op, nd, transpose, group_size, bits, true);
}

/* ---- gather_mm ---------------------------------------------------------------------------- */

lx_array lx_gather_mm(lx_array a, lx_array b, lx_array lhs_indices, lx_array rhs_indices) {
    const char *op = "lx_gather_mm";
    if (lx_is_null(lhs_indices) && lx_is_null(rhs_indices)) return lx_matmul(a, b);
    lx_node *nd[4] = {lx_arg(a, op, "a"), NULL, NULL, NULL};
    if (nd[0]) nd[1] = lx_arg(b, op, "b");
    if (!nd[1] || !get_index(op, lhs_indices, "lhs_indices", &nd[2]) ||
        !get_index(op, rhs_indices, "rhs_indices", &nd[3]))
        goto fail;
    lx_node *x = nd[0], *w = nd[1], *li = nd[2], *ri = nd[3];
    if (x->ndim == 0 || w->ndim == 0) {
        lx_set_error(LX_E_SHAPE, "%s: a %s and b %s must have at least one dimension", op,
                     LX_SHAPE_STR(x), LX_SHAPE_STR(w));
        goto fail;
    }
    lx_dtype dt = lx_promote_types((lx_dtype)x->dtype, (lx_dtype)w->dtype);
    if (!is_qfloat(dt)) {
        lx_set_error(LX_E_DTYPE, "%s: a (%s) and b (%s) promote to %s; float32, float16 or "
                     "bfloat16 supported", op, lx_dtype_name((lx_dtype)x->dtype),
                     lx_dtype_name((lx_dtype)w->dtype), lx_dtype_name(dt));
        goto fail;
    }
    bool a_vec = x->ndim == 1, b_vec = w->ndim == 1;
    if (a_vec) {
        int sh[2] = {1, x->shape[0]};
        nd[0] = x = lx_node_reshape(op, x, sh, 2);
    }
    if (b_vec && x) {
        int sh[2] = {w->shape[0], 1};
        nd[1] = w = lx_node_reshape(op, w, sh, 2);
    }
    if (!x || !w) goto fail;
    int K = x->shape[x->ndim - 1], M = x->shape[x->ndim - 2], N = w->shape[w->ndim - 1];
    if (w->shape[w->ndim - 2] != K) {
        lx_set_error(LX_E_SHAPE, "%s: a %s and b %s do not fit for a matrix product", op,
                     LX_SHAPE_STR(x), LX_SHAPE_STR(w));
        goto fail;
    }
    const int32_t *lb, *rb;
    int ln, rn;
    batch_of(x, li, &lb, &ln);
    batch_of(w, ri, &rb, &rn);
    int out_shape[LX_MAX_NDIM], bn;
    if (!lx_broadcast_shape(op, lb, ln, rb, rn, out_shape, &bn)) goto fail;
    if (bn + 2 > LX_MAX_NDIM) {
        lx_set_error(LX_E_SHAPE, "%s: the output would have more than %d dimensions", op,
                     LX_MAX_NDIM);
        goto fail;
    }
    int on = bn + 2;
    out_shape[bn] = M;
    out_shape[bn + 1] = N;
    int final_shape[LX_MAX_NDIM], fn = 0;
    for (int i = 0; i < on; i++) {
        if ((a_vec && i == on - 2) || (b_vec && i == on - 1)) continue;
        final_shape[fn++] = out_shape[i];
    }
    lx_quant_params p;
    memset(&p, 0, sizeof p);
    if (li) p.flags |= LX_QMM_LHS_INDEXED;
    if (ri) p.flags |= LX_QMM_RHS_INDEXED;
    for (int i = 0; i < 2; i++) {
        lx_node *idx = nd[2 + i], *n = nd[i];
        if (idx) {
            int sh[3] = {(int)prod(n->shape, n->ndim - 2), n->shape[n->ndim - 2],
                         n->shape[n->ndim - 1]};
            nd[i] = lx_node_reshape(op, n, sh, 3);
        } else {
            nd[i] = lift(op, n, on);
        }
        nd[i] = contig(op, lx_node_astype(op, nd[i], dt));
    }
    for (int i = 2; i < 4; i++)
        if (nd[i]) nd[i] = lx_node_broadcast(op, nd[i], out_shape, bn);
    lx_node *in[4];
    int n_in = 0;
    for (int i = 0; i < 4; i++) {
        bool want = i < 2 || (i == 2 && li) || (i == 3 && ri);
        if (want && !nd[i]) goto fail;
        if (want) in[n_in++] = nd[i];
    }
    lx_node *out = lx_build(op, LX_PRIM_GATHER_MM, dt, out_shape, on, in, n_in, &p, sizeof p);
    if (!out) return LX_NULL_ARRAY;
    return lx_wrap(lx_node_reshape(op, out, final_shape, fn));
fail:
    lx_release_nodes(nd, 4);
    return LX_NULL_ARRAY;
}
