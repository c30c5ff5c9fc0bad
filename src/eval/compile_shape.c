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
#include "graph/prim_info.h"
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
    case LX_RULE_PRIM: {
        /* the primitive's own rule (graph/prim_info.h), which also rewrites the params that
         * follow the shapes (a mean's scale, a FUSED program's shape and output offsets) */
        const lx_prim_info *pi = lx_prim_info_get(op->prim);
        lx_prim_meta m_inline[8], *m = m_inline;
        if (!pi) return lx_set_error(LX_E_INTERNAL, "lx_call: unknown primitive %d", op->prim);
        if (n_in > 8 && !(m = malloc(sizeof *m * (size_t)n_in)))
            return lx_compile_oom("to replay a compiled function");
        for (int k = 0; k < n_in; k++) {
            m[k].dtype = in[k].dtype;
            m[k].ndim = in[k].ndim;
            memcpy(m[k].shape, in[k].shape, sizeof(int32_t) * (size_t)in[k].ndim);
        }
        /* the traced dtype and shape: what the rule keeps (COPY's dtype, RANDOM_BITS's
         * per-key dims) */
        lx_prim_meta out = {.dtype = op->dtype, .ndim = op->ndim};
        memcpy(out.shape, op->shape, sizeof(int32_t) * (size_t)op->ndim);
        if (op->params_size) memcpy(pbuf, tparams, op->params_size);
        lx_status st = pi->rule("lx_call", m, n_in, op->params_size ? tparams : NULL,
                                op->params_size, op->params_size ? pbuf : NULL, &out);
        if (m != m_inline) free(m);
        if (st != LX_OK) return st;
        if (out.dtype != op->dtype)
            return lx_set_error(LX_E_DTYPE, "lx_call: %s: %s gives %s where the trace has %s",
                                op->op, pi->name, lx_dtype_name((lx_dtype)out.dtype),
                                lx_dtype_name((lx_dtype)op->dtype));
        if (op->params_size) *params = pbuf;
        nd = out.ndim;
        memcpy(shape, out.shape, sizeof(int32_t) * (size_t)nd);
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
    const lx_prim_info *pi = lx_prim_info_get(w->prim);
    switch (w->prim) {
    case LX_PRIM_SORT: {
        /* a literal k or kth would be followed as it is, which is rarely what a caller means
         * for another axis length */
        lx_sort_params p;
        if (w->params_size < sizeof p) return refuse(w, "has no parameters");
        memcpy(&p, w->params, sizeof p);
        if (p.mode == LX_SORT_TOPK) return refuse(w, "(top-k) has a literal size");
        if (p.mode == LX_SORT_PARTITION || p.mode == LX_SORT_ARGPARTITION)
            return refuse(w, "(partition) has a literal kth");
        break;
    }
    /* views whose shape is their own: rules over the trace's structure */
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
        break;
    }
    if (!pi || pi->shape == LX_SHAPE_GIVEN)
        return refuse(w, "has no shape rule (its output shape is a literal)");
    t->rule = LX_RULE_PRIM;
    return LX_OK;
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
        pin[k] = (lx_shape_in){x->ndim, x->shape, x->params, x->dtype};
    }
    unsigned char *pbuf = malloc(w->params_size + 16);
    int32_t shape[LX_MAX_NDIM];
    int nd;
    const void *pp;
    if (!pbuf) st = lx_compile_oom("for the trace");
    lx_shape_in ref = {0, NULL, NULL, 0};
    if (w->shape_ref >= 0) {
        const lx_wval *r = &g->v[lx_compile_mapped(g, w->shape_ref)];
        ref = (lx_shape_in){r->ndim, r->shape, r->params, r->dtype};
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
