/*
 * nn_fast.c -- MLX's "fast" ops: layer_norm, group_norm, rope, scaled dot-product attention.
 *
 * Semantics follow mlx.core.fast (mlx/fast.cpp) and mlx.nn.GroupNorm:
 *  - layer_norm normalises the last axis; w and b are optional [D] arrays; the output dtype is
 *    x's promoted with w's and b's (a floating type), computed in float32 for half inputs.
 *  - group_norm is nn.GroupNorm(pytorch_compatible=True) on channels-last input [N, ..., C]:
 *    for each n and group g the statistics run over all positions and the C/groups
 *    consecutive channels g*C/groups ... (g+1)*C/groups - 1 (PyTorch's grouping, which the
 *    diffusion models' weights expect), then the per-channel affine w, b [C] (optional).
 *    MLX's default, pytorch_compatible=False, would put channel c in group c % groups
 *    instead; lx has no flag for it (reshape/transpose the channels to get it).
 *  - rope: positions on axis -2 (offset + index), the first `dims` features rotated; see
 *    lx_rope_params. MLX asks for at least 3 dims; lx accepts 2 ([L, D]) as well. The _at
 *    forms take the offset as an array (one element, any integer dtype), as fast.rope does.
 *  - sdpa: q [B, Hq, Lq, D], k/v [B, Hkv, Lk, D/Dv], grouped-query heads, causal aligned
 *    bottom-right, a bool (true = keep) or additive mask broadcastable to [B, Hq, Lq, Lk]
 *    (causal and a mask may be combined), optional sinks [Hq]. The output dtype is q, k and v
 *    promoted. Deviations from MLX: any floating mask dtype is accepted (MLX requires that it
 *    does not promote the output), and a query row that sees no key (everything masked) gives
 *    zeros where MLX's fallback averages all values.
 */
#include <math.h>
#include <string.h>

#include "graph/prims_nn.h"
#include "ops/ops.h"

/* An optional argument: NULL for the null array (not an error), else lx_arg. */
static lx_node *opt_arg(lx_array a, const char *op, const char *name, bool *bad) {
    if (lx_is_null(a)) return NULL;
    lx_node *n = lx_arg(a, op, name);
    if (!n) *bad = true;
    return n;
}

static lx_array fail(lx_node **nodes, int n) {
    lx_release_nodes(nodes, n);
    return LX_NULL_ARRAY;
}

/* Converts the non-NULL nodes to dtype; false (all released) if one fails. */
static bool astype_all(const char *op, lx_node **nodes, int n, lx_dtype dtype) {
    bool ok = true;
    for (int i = 0; i < n; i++) {
        if (!nodes[i]) continue;
        if (!ok) {
            lx_node_release(nodes[i]);
            nodes[i] = NULL;
            continue;
        }
        nodes[i] = lx_node_astype(op, nodes[i], dtype);
        if (!nodes[i]) ok = false;
    }
    if (!ok) lx_release_nodes(nodes, n);
    return ok;
}

/* Moves the non-NULL nodes to the front; returns their count. */
static int compact(lx_node **nodes, int n) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (nodes[i]) nodes[k++] = nodes[i];
    return k;
}

/* w or b of a norm: 1-d with `size` elements. */
static bool check_affine(const char *op, const char *name, const lx_node *a, int size,
                         const char *what) {
    if (!a) return true;
    if (a->ndim != 1 || a->shape[0] != size) {
        lx_set_error(LX_E_SHAPE, "%s: argument %s has shape %s; expected [%d] (%s)", op, name,
                     LX_SHAPE_STR(a), size, what);
        return false;
    }
    return true;
}

/* The promoted dtype of the non-NULL nodes, which must be floating; -1 with LX_E_DTYPE. */
static int float_result(const char *op, lx_node *const *nodes, const char *const *names, int n) {
    int t = -1;
    for (int i = 0; i < n; i++)
        if (nodes[i]) t = t < 0 ? nodes[i]->dtype : lx_promote_types((lx_dtype)t, nodes[i]->dtype);
    if (t >= 0 && lx_dtype_is_float((lx_dtype)t)) return t;
    char buf[160];
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len + 40 < sizeof buf; i++)
        if (nodes[i])
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s %s", len ? ", " : "",
                                    names[i], lx_dtype_name((lx_dtype)nodes[i]->dtype));
    lx_set_error(LX_E_DTYPE, "%s: unsupported dtype %s (%s); a floating type is required", op,
                 t >= 0 ? lx_dtype_name((lx_dtype)t) : "?", buf);
    return -1;
}

/* ---- layer_norm, group_norm ------------------------------------------------------------ */

lx_array lx_layer_norm(lx_array xa, lx_array wa, lx_array ba, float eps) {
    const char *op = "lx_layer_norm";
    static const char *const names[3] = {"x", "w", "b"};
    lx_node *in[3] = {NULL, NULL, NULL};
    bool bad = false;
    in[0] = lx_arg(xa, op, "x");
    if (!in[0]) return LX_NULL_ARRAY;
    in[1] = opt_arg(wa, op, "w", &bad);
    in[2] = opt_arg(ba, op, "b", &bad);
    if (bad) return fail(in, 3);
    lx_node *x = in[0];
    if (x->ndim == 0) {
        lx_set_error(LX_E_SHAPE, "%s: argument x must have at least 1 dimension (got a scalar)",
                     op);
        return fail(in, 3);
    }
    int d = x->shape[x->ndim - 1];
    char what[128];
    snprintf(what, sizeof what, "the last axis of x, shape %s", LX_SHAPE_STR(x));
    if (!check_affine(op, "w", in[1], d, what) || !check_affine(op, "b", in[2], d, what))
        return fail(in, 3);
    int t = float_result(op, in, names, 3);
    if (t < 0) return fail(in, 3);
    lx_layer_norm_params p;
    memset(&p, 0, sizeof p);
    p.eps = eps;
    p.has_w = in[1] != NULL;
    p.has_b = in[2] != NULL;
    if (!astype_all(op, in, 3, (lx_dtype)t)) return LX_NULL_ARRAY;
    int n = compact(in, 3);
    return lx_wrap(lx_build_derived(op, LX_PRIM_LAYER_NORM, (lx_dtype)t, in, n, &p, sizeof p));
}

lx_array lx_group_norm(lx_array xa, int groups, lx_array wa, lx_array ba, float eps) {
    const char *op = "lx_group_norm";
    static const char *const names[3] = {"x", "w", "b"};
    lx_node *in[3] = {NULL, NULL, NULL};
    bool bad = false;
    in[0] = lx_arg(xa, op, "x");
    if (!in[0]) return LX_NULL_ARRAY;
    in[1] = opt_arg(wa, op, "w", &bad);
    in[2] = opt_arg(ba, op, "b", &bad);
    if (bad) return fail(in, 3);
    lx_node *x = in[0];
    if (x->ndim < 2) {
        lx_set_error(LX_E_SHAPE,
                     "%s: argument x has shape %s; expected at least 2 dimensions [N, ..., C]",
                     op, LX_SHAPE_STR(x));
        return fail(in, 3);
    }
    int c = x->shape[x->ndim - 1];
    if (groups <= 0 || c % groups != 0) {
        lx_set_error(LX_E_ARG, "%s: groups %d must be positive and divide the %d channels of x %s",
                     op, groups, c, LX_SHAPE_STR(x));
        return fail(in, 3);
    }
    char what[128];
    snprintf(what, sizeof what, "the channels of x, shape %s", LX_SHAPE_STR(x));
    if (!check_affine(op, "w", in[1], c, what) || !check_affine(op, "b", in[2], c, what))
        return fail(in, 3);
    int t = float_result(op, in, names, 3);
    if (t < 0) return fail(in, 3);
    lx_group_norm_params p;
    memset(&p, 0, sizeof p);
    p.eps = eps;
    p.groups = groups;
    p.has_w = in[1] != NULL;
    p.has_b = in[2] != NULL;
    bool converted = in[0]->dtype != t;
    if (!astype_all(op, in, 3, (lx_dtype)t)) return LX_NULL_ARRAY;
    int shape[LX_MAX_NDIM], nd = in[0]->ndim;
    memcpy(shape, in[0]->shape, sizeof(int) * nd);
    if (!converted) { /* the kernel wants x row-contiguous: a view when it already is */
        in[0] = lx_build(op, LX_PRIM_CONTIGUOUS, (lx_dtype)t, shape, nd, &in[0], 1, NULL, 0);
        if (!in[0]) return fail(in, 3);
    }
    int n = compact(in, 3);
    return lx_wrap(lx_build_derived(op, LX_PRIM_GROUP_NORM, (lx_dtype)t, in, n, &p, sizeof p));
}

/* ---- rope ------------------------------------------------------------------------------ */

/* The rope ops: freqs when with_freqs, the offset an array (oa) when with_offset, else the
 * int `offset` (a constant of a compiled trace). */
static lx_array rope_impl(const char *op, lx_array xa, int dims, bool traditional, float base,
                          float scale, int offset, lx_array fa, bool with_freqs, lx_array oa,
                          bool with_offset) {
    lx_node *in[3] = {NULL, NULL, NULL};
    in[0] = lx_arg(xa, op, "x");
    if (!in[0]) return LX_NULL_ARRAY;
    if (with_freqs) {
        in[1] = lx_arg(fa, op, "freqs");
        if (!in[1]) return fail(in, 3);
    }
    if (with_offset) {
        in[2] = lx_arg(oa, op, "offset");
        if (!in[2]) return fail(in, 3);
    }
    lx_node *x = in[0];
    if (!lx_dtype_is_float((lx_dtype)x->dtype)) {
        lx_set_error(LX_E_DTYPE, "%s: argument x has dtype %s; a floating type is required", op,
                     lx_dtype_name((lx_dtype)x->dtype));
        return fail(in, 3);
    }
    if (x->ndim < 2) {
        lx_set_error(LX_E_SHAPE,
                     "%s: argument x has shape %s; expected at least 2 dimensions [..., L, D]",
                     op, LX_SHAPE_STR(x));
        return fail(in, 3);
    }
    int d = x->shape[x->ndim - 1];
    if (dims <= 0 || dims % 2 != 0 || dims > d) {
        lx_set_error(LX_E_ARG,
                     "%s: dims %d must be positive, even and at most the last axis (%d) of x %s",
                     op, dims, d, LX_SHAPE_STR(x));
        return fail(in, 3);
    }
    if (!with_freqs && !(base > 0.0f && isfinite(base))) {
        lx_set_error(LX_E_ARG, "%s: base %g must be positive and finite", op, (double)base);
        return fail(in, 3);
    }
    if (!isfinite(scale)) {
        lx_set_error(LX_E_ARG, "%s: scale %g is not finite", op, (double)scale);
        return fail(in, 3);
    }
    if (with_offset) {
        lx_node *o = in[2];
        if (!lx_dtype_is_integer((lx_dtype)o->dtype)) {
            lx_set_error(LX_E_DTYPE,
                         "%s: argument offset has dtype %s; an integer type is required", op,
                         lx_dtype_name((lx_dtype)o->dtype));
            return fail(in, 3);
        }
        if (o->ndim > 1 || o->size != 1) {
            lx_set_error(LX_E_SHAPE,
                         "%s: argument offset has shape %s; expected a scalar or shape [1]", op,
                         LX_SHAPE_STR(o));
            return fail(in, 3);
        }
    }
    if (with_freqs) {
        lx_node *f = in[1];
        if (f->ndim != 1 || f->shape[0] != dims / 2) {
            lx_set_error(LX_E_SHAPE, "%s: argument freqs has shape %s; expected [%d] (dims / 2)",
                         op, LX_SHAPE_STR(f), dims / 2);
            return fail(in, 3);
        }
        if (f->dtype == LX_BOOL) {
            lx_set_error(LX_E_DTYPE, "%s: argument freqs has dtype bool; a number type is required",
                         op);
            return fail(in, 3);
        }
        in[1] = lx_node_astype(op, in[1], LX_FLOAT32);
        if (!in[1]) return fail(in, 3);
    }
    lx_rope_params p;
    memset(&p, 0, sizeof p);
    p.dims = dims;
    p.traditional = traditional;
    p.has_freqs = with_freqs;
    p.has_offset = with_offset;
    p.offset = with_offset ? 0 : offset;
    p.base = with_freqs ? 0.0f : base;
    p.scale = scale;
    int n = compact(in, 3);
    return lx_wrap(lx_build_derived(op, LX_PRIM_ROPE, (lx_dtype)x->dtype, in, n, &p, sizeof p));
}

lx_array lx_rope(lx_array x, int dims, bool traditional, float base, float scale, int offset) {
    return rope_impl("lx_rope", x, dims, traditional, base, scale, offset, LX_NULL_ARRAY, false,
                     LX_NULL_ARRAY, false);
}

lx_array lx_rope_freqs(lx_array x, int dims, bool traditional, lx_array freqs, float scale,
                       int offset) {
    return rope_impl("lx_rope_freqs", x, dims, traditional, 0.0f, scale, offset, freqs, true,
                     LX_NULL_ARRAY, false);
}

lx_array lx_rope_at(lx_array x, int dims, bool traditional, float base, float scale,
                    lx_array offset) {
    return rope_impl("lx_rope_at", x, dims, traditional, base, scale, 0, LX_NULL_ARRAY, false,
                     offset, true);
}

lx_array lx_rope_freqs_at(lx_array x, int dims, bool traditional, lx_array freqs, float scale,
                          lx_array offset) {
    return rope_impl("lx_rope_freqs_at", x, dims, traditional, 0.0f, scale, 0, freqs, true,
                     offset, true);
}

/* ---- scaled dot-product attention ------------------------------------------------------- */

static lx_array sdpa_impl(const char *op, lx_array qa, lx_array ka, lx_array va, float scale,
                          bool causal, lx_array ma, lx_array sa, bool with_sinks) {
    static const char *const names[3] = {"q", "k", "v"};
    lx_node *in[5] = {NULL, NULL, NULL, NULL, NULL};
    bool bad = false;
    in[0] = lx_arg(qa, op, "q");
    in[1] = in[0] ? lx_arg(ka, op, "k") : NULL;
    in[2] = in[1] ? lx_arg(va, op, "v") : NULL;
    if (!in[2]) return fail(in, 5);
    in[3] = opt_arg(ma, op, "mask", &bad);
    if (with_sinks && !bad) {
        if (lx_is_null(sa)) {
            lx_set_error(LX_E_ARG, "%s: argument sinks: null array", op);
            bad = true;
        } else {
            in[4] = lx_arg(sa, op, "sinks");
            if (!in[4]) bad = true;
        }
    }
    if (bad) return fail(in, 5);
    lx_node *q = in[0], *k = in[1], *v = in[2];
    for (int i = 0; i < 3; i++)
        if (in[i]->ndim != 4) {
            lx_set_error(LX_E_SHAPE, "%s: argument %s has shape %s; expected 4 dimensions "
                         "[B, heads, L, head_dim]", op, names[i], LX_SHAPE_STR(in[i]));
            return fail(in, 5);
        }
    char sq[96], sk[96], sv[96];
    lx_shape_str(q->shape, 4, sq, sizeof sq);
    lx_shape_str(k->shape, 4, sk, sizeof sk);
    lx_shape_str(v->shape, 4, sv, sizeof sv);
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0]) {
        lx_set_error(LX_E_SHAPE, "%s: batch sizes differ: q %s, k %s, v %s", op, sq, sk, sv);
        return fail(in, 5);
    }
    if (q->shape[3] != k->shape[3]) {
        lx_set_error(LX_E_SHAPE, "%s: q %s and k %s have different head dims", op, sq, sk);
        return fail(in, 5);
    }
    if (k->shape[1] != v->shape[1] || k->shape[2] != v->shape[2]) {
        lx_set_error(LX_E_SHAPE, "%s: k %s and v %s differ in kv heads or length", op, sk, sv);
        return fail(in, 5);
    }
    int B = q->shape[0], Hq = q->shape[1], Lq = q->shape[2], Hkv = k->shape[1],
        Lk = k->shape[2];
    if (Hkv == 0 || Hq % Hkv != 0) {
        lx_set_error(LX_E_SHAPE, "%s: the %d query heads of q %s are not a multiple of the %d kv "
                     "heads of k %s", op, Hq, sq, Hkv, sk);
        return fail(in, 5);
    }
    int t = float_result(op, in, names, 3);
    if (t < 0) return fail(in, 5);
    int full[4] = {B, Hq, Lq, Lk};
    if (in[3]) {
        lx_node *m = in[3];
        bool ok = m->ndim <= 4;
        for (int i = 0; ok && i < m->ndim; i++) {
            int dm = m->shape[m->ndim - 1 - i];
            ok = dm == 1 || dm == full[3 - i];
        }
        if (!ok) {
            char sm[96], sf[96];
            lx_set_error(LX_E_SHAPE, "%s: argument mask has shape %s, which does not broadcast "
                         "to [B, Hq, Lq, Lk] = %s", op, lx_shape_str(m->shape, m->ndim, sm, 96),
                         lx_shape_str(full, 4, sf, 96));
            return fail(in, 5);
        }
        if (m->dtype != LX_BOOL && !lx_dtype_is_float((lx_dtype)m->dtype)) {
            lx_set_error(LX_E_DTYPE, "%s: argument mask has dtype %s; expected bool (true = "
                         "attend) or a floating type (added to the scores)", op,
                         lx_dtype_name((lx_dtype)m->dtype));
            return fail(in, 5);
        }
    }
    if (in[4]) {
        lx_node *s = in[4];
        if (s->ndim != 1 || s->shape[0] != Hq) {
            lx_set_error(LX_E_SHAPE, "%s: argument sinks has shape %s; expected [%d] (one per "
                         "query head of q %s)", op, LX_SHAPE_STR(s), Hq, sq);
            return fail(in, 5);
        }
        if (!lx_dtype_is_float((lx_dtype)s->dtype)) {
            lx_set_error(LX_E_DTYPE, "%s: argument sinks has dtype %s; a floating type is "
                         "required", op, lx_dtype_name((lx_dtype)s->dtype));
            return fail(in, 5);
        }
    }
    lx_sdpa_params p;
    memset(&p, 0, sizeof p);
    p.scale = scale;
    p.causal = causal;
    p.has_mask = in[3] != NULL;
    p.has_sinks = in[4] != NULL;
    if (!astype_all(op, in, 3, (lx_dtype)t)) return fail(in, 5);
    if (in[3]) {
        in[3] = lx_node_broadcast(op, in[3], full, 4);
        if (!in[3]) return fail(in, 5);
    }
    if (in[4]) {
        in[4] = lx_node_astype(op, in[4], (lx_dtype)t);
        if (!in[4]) return fail(in, 5);
    }
    int n = compact(in, 5);
    return lx_wrap(lx_build_derived(op, LX_PRIM_SDPA, (lx_dtype)t, in, n, &p, sizeof p));
}

lx_array lx_sdpa(lx_array q, lx_array k, lx_array v, float scale, bool causal, lx_array mask) {
    return sdpa_impl("lx_sdpa", q, k, v, scale, causal, mask, LX_NULL_ARRAY, false);
}

lx_array lx_sdpa_sinks(lx_array q, lx_array k, lx_array v, float scale, bool causal,
                       lx_array mask, lx_array sinks) {
    return sdpa_impl("lx_sdpa_sinks", q, k, v, scale, causal, mask, sinks, true);
}
