/*
 * compile_shape.c -- shapeless compile (LX_COMPILE_SHAPELESS): the shape rule of each
 * primitive whose shape depends on the inputs, picked and checked against the traced shapes
 * while tracing (lx_compile_shape_rule, from emission) and followed on each replay
 * (lx_compile_shape_infer). compile.h lists the rules.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/compile_int.h"
#include "graph/fused.h"
#include "graph/prims.h"
#include "graph/prims_scan.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/ops.h"

static bool bcast_into(int32_t *acc, int *n, const int32_t *s, int ns) {
    int32_t r[LX_MAX_NDIM];
    int rn = ns > *n ? ns : *n;
    for (int d = 0; d < rn; d++) {
        int da = d - (rn - *n) >= 0 ? acc[d - (rn - *n)] : 1;
        int db = d - (rn - ns) >= 0 ? s[d - (rn - ns)] : 1;
        if (da != db && da != 1 && db != 1) return false;
        r[d] = da == 1 ? db : da;
    }
    memcpy(acc, r, sizeof(int32_t) * (size_t)rn);
    *n = rn;
    return true;
}

static const char *shape_text(const int32_t *s, int n, char *buf) {
    return lx_shape_str(s, n, buf, 96);
}

/* The shape of op from its inputs' shapes (rule op->rule); params that depend on the shape
 * are written to pbuf and *params points at them (else at the traced params). Returns LX_OK or
 * sets the error. */
lx_status lx_compile_shape_infer(const lx_tape_op *op, const void *tparams,
                                 const lx_shape_in *in, int n_in, const lx_shape_in *ref,
                                 int32_t *shape, int *ndim, void *pbuf, const void **params) {
    char b1[96], b2[96];
    *params = tparams;
    int nd = op->ndim;
    switch (op->rule) {
    case LX_RULE_LITERAL:
        memcpy(shape, op->shape, sizeof(int32_t) * LX_MAX_NDIM);
        break;
    case LX_RULE_SAME0:
        memcpy(shape, in[0].shape, sizeof(int32_t) * (size_t)in[0].ndim);
        nd = in[0].ndim;
        break;
    case LX_RULE_BCAST:
    case LX_RULE_FUSED: {
        nd = 0;
        if (op->rule == LX_RULE_FUSED) {
            const lx_fused_header *h = tparams;
            nd = h->min_ndim;
            for (int d = 0; d < nd; d++) shape[d] = 1;
        }
        for (int k = 0; k < n_in; k++)
            if (!bcast_into(shape, &nd, in[k].shape, in[k].ndim))
                return lx_set_error(LX_E_SHAPE, "lx_call: %s: input shapes %s and %s cannot be "
                                    "broadcast together", op->op,
                                    shape_text(shape, nd, b1),
                                    shape_text(in[k].shape, in[k].ndim, b2));
        if (op->rule == LX_RULE_FUSED) {
            lx_fused_header *h = pbuf;
            memcpy(h, tparams, op->params_size);
            memset(h->shape, 0, sizeof h->shape);
            memcpy(h->shape, shape, sizeof(int32_t) * (size_t)nd);
            h->ndim = (uint8_t)nd;
            int64_t size = 1;
            for (int d = 0; d < nd; d++) size *= shape[d];
            *params = h;
            if (h->n_out > 1) {
                int64_t off = 0;
                for (int j = 0; j < h->n_out; j++) {
                    off = lx_fused_align(off);
                    h->out_offset[j] = off;
                    off += size * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[j]);
                }
                off = lx_fused_align(off);
                if (off / 64 > INT32_MAX)
                    return lx_set_error(LX_E_SHAPE, "lx_call: a fused group's outputs are too "
                                        "large");
                shape[0] = (int32_t)(off / 64);
                shape[1] = 64;
                nd = 2;
            }
        }
        break;
    }
    case LX_RULE_PART_FUSED: {
        const lx_fused_header *h = in[0].params;
        lx_part_params *pp = pbuf;
        memset(pp, 0, sizeof *pp);
        pp->byte_offset = h->out_offset[op->aux];
        *params = pp;
        nd = h->ndim;
        memcpy(shape, h->shape, sizeof(int32_t) * (size_t)nd);
        break;
    }
    case LX_RULE_REDUCE: {
        lx_reduce_params p;
        memcpy(&p, tparams, sizeof p);
        nd = in[0].ndim;
        memcpy(shape, in[0].shape, sizeof(int32_t) * (size_t)nd);
        int64_t count = 1;
        for (int i = 0; i < p.n_axes; i++) {
            if (p.axes[i] < 0 || p.axes[i] >= nd)
                return lx_set_error(LX_E_SHAPE, "lx_call: %s: bad reduction axis", op->op);
            count *= shape[p.axes[i]];
            shape[p.axes[i]] = 1;
        }
        if (op->aux > 0) {
            p.scale = 1.0 / (double)(count - (op->aux - 1));
            memcpy(pbuf, tparams, op->params_size);
            memcpy(pbuf, &p, sizeof p);
            *params = pbuf;
        }
        break;
    }
    case LX_RULE_ARGRED: {
        lx_arg_reduce_params p;
        memcpy(&p, tparams, sizeof p);
        nd = in[0].ndim;
        memcpy(shape, in[0].shape, sizeof(int32_t) * (size_t)nd);
        if (p.axis < 0 || p.axis >= nd)
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: bad axis", op->op);
        shape[p.axis] = 1;
        break;
    }
    case LX_RULE_MATMUL: {
        const lx_shape_in *a = &in[0], *b = &in[1];
        if (a->ndim < 2 || b->ndim < 2 || a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: shapes %s and %s cannot be "
                                "multiplied", op->op, shape_text(a->shape, a->ndim, b1),
                                shape_text(b->shape, b->ndim, b2));
        nd = 0;
        if (!bcast_into(shape, &nd, a->shape, a->ndim - 2) ||
            !bcast_into(shape, &nd, b->shape, b->ndim - 2))
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: batch shapes of %s and %s do not "
                                "broadcast", op->op, shape_text(a->shape, a->ndim, b1),
                                shape_text(b->shape, b->ndim, b2));
        shape[nd++] = a->shape[a->ndim - 2];
        shape[nd++] = b->shape[b->ndim - 1];
        break;
    }
    case LX_RULE_PERMUTE: {
        lx_permute_params p;
        memcpy(&p, tparams, sizeof p);
        nd = in[0].ndim;
        for (int i = 0; i < nd; i++) shape[i] = in[0].shape[p.perm[i]];
        break;
    }
    case LX_RULE_RANDOM: {
        int lead = in[0].ndim - 1;
        nd = 0;
        for (int i = 0; i < lead; i++) shape[nd++] = in[0].shape[i];
        for (int i = op->ndim - op->aux; i < op->ndim; i++) shape[nd++] = op->shape[i];
        break;
    }
    case LX_RULE_SQUEEZE: {
        int64_t pin = 1, pout = 1;
        for (int i = 0; i < in[0].ndim; i++) pin *= in[0].shape[i];
        for (int o = 0; o < nd; o++) {
            shape[o] = op->map[o] >= 0 ? in[0].shape[op->map[o]] : 1;
            pout *= shape[o];
        }
        if (pin != pout)
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: a reshape traced as dropping size-1 "
                                "axes cannot reshape %s (shapeless compile)", op->op,
                                shape_text(in[0].shape, in[0].ndim, b1));
        break;
    }
    case LX_RULE_MM_BCAST: {
        const lx_shape_in *x = &in[0];
        if (x->ndim < 2 || ref->ndim < 2)
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: matmul operands need 2 dims", op->op);
        nd = 0;
        if (!bcast_into(shape, &nd, x->shape, x->ndim - 2) ||
            !bcast_into(shape, &nd, ref->shape, ref->ndim - 2))
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: batch shapes of %s and %s do not "
                                "broadcast", op->op, shape_text(x->shape, x->ndim, b1),
                                shape_text(ref->shape, ref->ndim, b2));
        shape[nd++] = x->shape[x->ndim - 2];
        shape[nd++] = x->shape[x->ndim - 1];
        break;
    }
    default:
        return lx_set_error(LX_E_INTERNAL, "lx_call: unknown shape rule %d", op->rule);
    }
    if (nd != op->ndim)
        return lx_set_error(LX_E_SHAPE, "lx_call: %s: inferred %d dimensions, traced %d "
                            "(shapeless compile)", op->op, nd, op->ndim);
    for (int d = nd; d < LX_MAX_NDIM; d++) shape[d] = 0;
    *ndim = nd;
    return LX_OK;
}

/* A RESHAPE that only drops and inserts size-1 dims: map of output dims to input dims. */
static bool squeeze_map(const lx_wval *in, const lx_wval *out, int8_t *map) {
    int i = 0, o = 0;
    while (o < out->ndim) {
        if (i < in->ndim && in->shape[i] == out->shape[o]) {
            map[o++] = (int8_t)i++;
        } else if (i < in->ndim && in->shape[i] == 1) {
            i++;
        } else if (out->shape[o] == 1) {
            map[o++] = -1;
        } else {
            return false;
        }
    }
    for (; i < in->ndim; i++)
        if (in->shape[i] != 1) return false;
    return true;
}

static lx_status refuse(const lx_wval *w, const char *why) {
    return lx_set_error(LX_E_UNSUPPORTED,
                        "lx_compile: shapeless: primitive %s (from %s) %s; compile this "
                        "function without LX_COMPILE_SHAPELESS",
                        lx_prim_name(w->prim), w->op ? w->op : "?", why);
}

/* The shapeless rule of an op whose shape depends on the inputs. */
static lx_status pick_rule(const lx_wgraph *g, const lx_wval *w, lx_tape_op *t) {
    switch (w->prim) {
    case LX_PRIM_UNARY: case LX_PRIM_COPY: case LX_PRIM_CONTIGUOUS: case LX_PRIM_SOFTMAX:
    case LX_PRIM_RMS_NORM: case LX_PRIM_LAYER_NORM: case LX_PRIM_ROPE: case LX_PRIM_SCAN:
        t->rule = LX_RULE_SAME0;
        return LX_OK;
    case LX_PRIM_SORT: {
        lx_sort_params p;
        if (w->params_size < sizeof p) return refuse(w, "has no parameters");
        memcpy(&p, w->params, sizeof p);
        if (p.mode == LX_SORT_TOPK) return refuse(w, "(top-k) has a literal size");
        if (p.mode == LX_SORT_PARTITION || p.mode == LX_SORT_ARGPARTITION)
            return refuse(w, "(partition) has a literal kth");
        t->rule = LX_RULE_SAME0;
        return LX_OK;
    }
    case LX_PRIM_BINARY: case LX_PRIM_WHERE:
        t->rule = LX_RULE_BCAST;
        return LX_OK;
    case LX_PRIM_FUSED:
        t->rule = LX_RULE_FUSED;
        return LX_OK;
    case LX_PRIM_ARG_REDUCE:
        t->rule = LX_RULE_ARGRED;
        return LX_OK;
    case LX_PRIM_MATMUL:
        t->rule = LX_RULE_MATMUL;
        return LX_OK;
    case LX_PRIM_PERMUTE:
        t->rule = LX_RULE_PERMUTE;
        return LX_OK;
    case LX_PRIM_REDUCE: {
        lx_reduce_params p;
        if (w->params_size < sizeof p) return refuse(w, "has no parameters");
        memcpy(&p, w->params, sizeof p);
        t->rule = LX_RULE_REDUCE;
        t->aux = 0;
        if (p.op != LX_REDUCE_SUM) return LX_OK;
        /* a mean or variance: scale = 1 / (count - d) with d fixed (0, or ddof) */
        const lx_wval *x = &g->v[w->in[0]];
        int64_t count = 1;
        for (int i = 0; i < p.n_axes; i++)
            if (p.axes[i] >= 0 && p.axes[i] < x->ndim) count *= x->shape[p.axes[i]];
        if (p.scale == 0.0 || (p.scale == 1.0 && count != 1)) return LX_OK; /* a sum */
        if (p.scale == 1.0)
            return refuse(w, "reduces axes of size 1 (a sum and a mean look alike there)");
        double inv = 1.0 / p.scale;
        if (!(inv >= 1.0 && inv < 1e15)) return refuse(w, "has a scale that cannot be followed");
        long long m = llround(inv);
        long long d = (long long)count - m;
        if (1.0 / (double)m != p.scale || d < 0 || d > 1000000)
            return refuse(w, "has a scale that depends on the shape in an unknown way");
        t->aux = (int32_t)d + 1;
        return LX_OK;
    }
    case LX_PRIM_RANDOM_BITS: {
        const lx_wval *key = &g->v[w->in[0]];
        int trail = w->ndim - (key->ndim - 1);
        if (trail < 0) return refuse(w, "has an unexpected shape");
        t->rule = LX_RULE_RANDOM;
        t->aux = trail;
        return LX_OK;
    }
    case LX_PRIM_RESHAPE:
        if (!squeeze_map(&g->v[w->in[0]], w, t->map))
            return refuse(w, "reshapes to a literal shape");
        t->rule = LX_RULE_SQUEEZE;
        return LX_OK;
    case LX_PRIM_PART:
        if (g->v[w->in[0]].prim == LX_PRIM_FUSED && g->v[w->in[0]].kind == LX_WVAL_OP) {
            t->rule = LX_RULE_PART_FUSED;
            return LX_OK;
        }
        return refuse(w, "is an output of a multi-output primitive with a literal shape");
    case LX_PRIM_BROADCAST:
        if (w->shape_ref >= 0) {
            t->rule = LX_RULE_MM_BCAST;
            return LX_OK;
        }
        return refuse(w, "broadcasts to a literal shape");
    default:
        return refuse(w, "has no shape rule (its output shape is a literal)");
    }
}

/* The shapeless rule of op w, checked against the traced shape. */
lx_status lx_compile_shape_rule(const lx_wgraph *g, const lx_wval *w, lx_tape_op *op,
                                const void *tparams) {
    lx_status st = pick_rule(g, w, op);
    if (st != LX_OK) return st;
    /* the rule must give back the traced shape */
    lx_shape_in in[LX_FUSED_MAX_IN + 8];
    lx_shape_in *pin =
        w->n_in <= LX_FUSED_MAX_IN + 8 ? in : malloc(sizeof(lx_shape_in) * (size_t)w->n_in);
    if (!pin) return lx_compile_oom("for the trace");
    for (int k = 0; k < w->n_in; k++) {
        const lx_wval *x = &g->v[lx_compile_mapped(g, w->in[k])];
        pin[k] = (lx_shape_in){x->ndim, x->shape, x->params};
    }
    unsigned char *pbuf = malloc(w->params_size + 16);
    int32_t shape[LX_MAX_NDIM];
    int nd;
    const void *pp;
    if (!pbuf) st = lx_compile_oom("for the trace");
    lx_shape_in ref = {0, NULL, NULL};
    if (w->shape_ref >= 0) {
        const lx_wval *r = &g->v[lx_compile_mapped(g, w->shape_ref)];
        ref = (lx_shape_in){r->ndim, r->shape, r->params};
    }
    if (pbuf)
        st = lx_compile_shape_infer(op, tparams, pin, w->n_in, &ref, shape, &nd, pbuf, &pp);
    if (st == LX_OK && (nd != w->ndim || memcmp(shape, w->shape, sizeof(int32_t) * nd)))
        st = refuse(w, "has a shape its rule does not reproduce");
    free(pbuf);
    if (pin != in) free(pin);
    return st;
}

/* Shapeless: a BROADCAST feeding a matmul operand takes its batch from both operands. */
void lx_compile_graph_matmul_refs(lx_wgraph *g) {
    int n = g->n;
    for (int v = 0; v < n; v++) {
        const lx_wval *m = &g->v[v];
        if (!m->live || m->rep != v || m->kind != LX_WVAL_OP || m->prim != LX_PRIM_MATMUL ||
            m->n_in < 2)
            continue;
        for (int k = 0; k < 2; k++) {
            int32_t u = m->in[k];
            lx_wval *b = &g->v[u];
            if (b->kind != LX_WVAL_OP || b->prim != LX_PRIM_BROADCAST || b->n_in != 1) continue;
            const lx_wval *src = &g->v[b->in[0]];
            if (src->kind == LX_WVAL_OP && src->prim == LX_PRIM_BROADCAST) continue;
            int32_t other = lx_compile_strip_broadcast(g, m->in[1 - k]);
            if (b->shape_ref == -1) b->shape_ref = other;
            else if (b->shape_ref != other) b->shape_ref = -2; /* ambiguous: no rule */
        }
    }
    for (int v = 0; v < n; v++)
        if (g->v[v].shape_ref == -2) g->v[v].shape_ref = -1;
}
