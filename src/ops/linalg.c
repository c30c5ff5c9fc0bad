/*
 * linalg.c -- lx_matmul and lx_addmm (MLX semantics).
 *
 * a [..., M, K] @ b [..., K, N]: a 1-D a is [1, K] and a 1-D b is [K, 1] (the inserted dim is
 * removed from the result); 0-D operands are LX_E_ARG; K must match (LX_E_SHAPE); batch dims
 * broadcast; the dtype is promote(a, b) (MLX allows only floats; lx also multiplies integers,
 * wrapping, and bools as any(a & b)). addmm(c, a, b, alpha, beta) = alpha * a @ b + beta * c,
 * c broadcast to the result's shape, dtype promote(a, b, c).
 * The batch is broadcast with views (no copies); the kernel (backend/cpu/matmul.c) hands
 * transposed layouts to BLAS as they are.
 */
#include <string.h>

#include "ops/ops.h"

static lx_array matmul_common(const char *op, lx_array ca, lx_array aa, lx_array ba, float alpha,
                              float beta, bool addmm) {
    lx_node *c = NULL, *a = NULL, *b = NULL;
    if (addmm && !(c = lx_arg(ca, op, "c"))) return LX_NULL_ARRAY;
    if (!(a = lx_arg(aa, op, "a")) || !(b = lx_arg(ba, op, "b"))) goto fail;
    if (a->ndim == 0 || b->ndim == 0) {
        lx_set_error(LX_E_ARG, "%s: operands must have at least one dimension (got %d and %d)",
                     op, a->ndim, b->ndim);
        goto fail;
    }
    int a_nd0 = a->ndim, b_nd0 = b->ndim;
    int ashape[LX_MAX_NDIM], bshape[LX_MAX_NDIM], na = a->ndim, nb = b->ndim;
    for (int i = 0; i < na; i++) ashape[i] = a->shape[i];
    for (int i = 0; i < nb; i++) bshape[i] = b->shape[i];
    if (na == 1) { ashape[1] = ashape[0]; ashape[0] = 1; na = 2; }
    if (nb == 1) { bshape[1] = 1; nb = 2; }
    if (ashape[na - 1] != bshape[nb - 2]) {
        char sa[96], sb[96];
        lx_set_error(LX_E_SHAPE, "%s: the last dim of a %s must match the second-to-last of b %s",
                     op, lx_shape_str(a->shape, a->ndim, sa, sizeof sa),
                     lx_shape_str(b->shape, b->ndim, sb, sizeof sb));
        goto fail;
    }
    int batch[LX_MAX_NDIM], nbatch;
    if (!lx_broadcast_shape(op, ashape, na - 2, bshape, nb - 2, batch, &nbatch)) goto fail;
    int nd = nbatch + 2;
    if (nd > LX_MAX_NDIM) {
        lx_set_error(LX_E_SHAPE, "%s: result would have more than %d dims", op, LX_MAX_NDIM);
        goto fail;
    }
    int M = ashape[na - 2], K = ashape[na - 1], N = bshape[nb - 1];
    lx_dtype t = lx_promote_types((lx_dtype)a->dtype, (lx_dtype)b->dtype);
    if (c) t = lx_promote_types(t, (lx_dtype)c->dtype);

    int fa[LX_MAX_NDIM], fb[LX_MAX_NDIM], fo[LX_MAX_NDIM];
    memcpy(fa, batch, sizeof(int) * (size_t)nbatch);
    memcpy(fb, batch, sizeof(int) * (size_t)nbatch);
    memcpy(fo, batch, sizeof(int) * (size_t)nbatch);
    fa[nbatch] = M; fa[nbatch + 1] = K;
    fb[nbatch] = K; fb[nbatch + 1] = N;
    fo[nbatch] = M; fo[nbatch + 1] = N;
    /* the result's shape without the inserted dims */
    int rshape[LX_MAX_NDIM], nr = 0;
    for (int i = 0; i < nbatch; i++) rshape[nr++] = batch[i];
    if (a_nd0 != 1) rshape[nr++] = M;
    if (b_nd0 != 1) rshape[nr++] = N;

    if (c) {
        /* c broadcasts to the result's shape (as the user sees it), then to [..., M, N] */
        int cs[LX_MAX_NDIM], ncs;
        if (!lx_broadcast_shape(op, c->shape, c->ndim, rshape, nr, cs, &ncs)) goto fail;
        if (ncs != nr || memcmp(cs, rshape, sizeof(int) * (size_t)nr) != 0) {
            char s1[96], s2[96];
            lx_set_error(LX_E_SHAPE, "%s: c of shape %s does not broadcast to the result %s", op,
                         lx_shape_str(c->shape, c->ndim, s1, sizeof s1),
                         lx_shape_str(rshape, nr, s2, sizeof s2));
            goto fail;
        }
        c = lx_node_astype(op, c, t);
        c = lx_node_broadcast(op, c, rshape, nr);
        c = lx_node_reshape(op, c, fo, nd);
        if (!c) goto fail;
    }
    a = lx_node_astype(op, a, t);
    /* a half b under float32 stays as stored: MATMUL converts it as it reads it (graph/prims.h),
     * the same values as a float32 copy, without writing that copy every call */
    if (!lx_matmul_mixed_ok(t, b->dtype)) b = lx_node_astype(op, b, t);
    a = lx_node_reshape(op, a, ashape, na);
    b = lx_node_reshape(op, b, bshape, nb);
    a = lx_node_broadcast(op, a, fa, nd);
    b = lx_node_broadcast(op, b, fb, nd);
    if (!a || !b) goto fail;

    lx_node *ins[3] = {a, b, c};
    lx_matmul_params p;
    memset(&p, 0, sizeof p);
    p.alpha = alpha;
    p.beta = beta;
    /* the shape is at hand (the inputs were just broadcast to it): built directly rather than
     * derived, a fifth of the cost of building the node (lx_prim_check holds it to the MATMUL
     * rule in debug builds) */
    lx_node *r = lx_build(op, LX_PRIM_MATMUL, t, fo, nd, ins, c ? 3 : 2, addmm ? &p : NULL,
                          addmm ? sizeof p : 0);
    if (r && nr != nd) r = lx_node_reshape(op, r, rshape, nr);
    return lx_wrap(r);
fail:
    if (a) lx_node_release(a);
    if (b) lx_node_release(b);
    if (c) lx_node_release(c);
    return LX_NULL_ARRAY;
}

lx_array lx_matmul(lx_array a, lx_array b) {
    return matmul_common("lx_matmul", LX_NULL_ARRAY, a, b, 1.0f, 0.0f, false);
}

lx_array lx_addmm(lx_array c, lx_array a, lx_array b, float alpha, float beta) {
    return matmul_common("lx_addmm", c, a, b, alpha, beta, true);
}
