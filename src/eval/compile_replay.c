/*
 * compile_replay.c -- replay (compile.h's "Replay"): each call builds fresh nodes from the
 * tape with the real input nodes and the trace's constants; only the outputs get handles, on
 * the caller's tracker. Shapeless traces recompute each op's shape by its rule
 * (compile_shape.c).
 */
#include <stdlib.h>

#include "ops/ops.h"
#include "eval/compile_int.h"
#include "core/error.h"
#include "core/handle.h"
#include "core/node.h"

lx_status lx_compile_replay(const lx_trace *t, lx_node *const *real, lx_array *out) {
    int n_vals = t->n_in + t->n_const + t->n_ops;
    lx_node *small_vals[64];
    lx_node **vals = n_vals <= 64 ? small_vals : malloc(sizeof(lx_node *) * (size_t)n_vals);
    lx_node *small_ins[16];
    lx_node **ins = t->max_in <= 16 ? small_ins : malloc(sizeof(lx_node *) * (size_t)t->max_in);
    lx_shape_in small_shp[16];
    lx_shape_in *pin = !t->shapeless ? NULL
               : t->max_in <= 16 ? small_shp : malloc(sizeof(lx_shape_in) * (size_t)t->max_in);
    _Alignas(16) unsigned char small_p[1024];
    unsigned char *pbuf = t->max_params + 16 <= sizeof small_p ? small_p
                                                               : malloc(t->max_params + 16);
    lx_status st = LX_OK;
    int built = 0;
    if (!vals || !ins || (t->shapeless && !pin) || !pbuf) {
        st = lx_compile_oom("to replay a compiled function");
        goto done;
    }
    for (int i = 0; i < t->n_in; i++) vals[i] = real[i];
    for (int i = 0; i < t->n_const; i++) vals[t->n_in + i] = t->consts[i];
    for (int i = 0; i < t->n_ops; i++) {
        const lx_tape_op *op = &t->ops[i];
        const int32_t *idx = t->ins + op->in_off;
        for (int k = 0; k < op->n_in; k++) ins[k] = vals[idx[k]];
        const int32_t *shape = op->shape;
        int ndim = op->ndim;
        const void *params = t->params + op->params_off;
        int32_t sbuf[LX_MAX_NDIM];
        if (op->rule != LX_RULE_LITERAL) {
            for (int k = 0; k < op->n_in; k++)
                pin[k] = (lx_shape_in){ins[k]->ndim, ins[k]->shape, ins[k]->params, ins[k]->dtype};
            lx_shape_in ref = {0, NULL, NULL, 0};
            if (op->ref >= 0)
                ref = (lx_shape_in){vals[op->ref]->ndim, vals[op->ref]->shape, NULL, vals[op->ref]->dtype};
            st = lx_compile_shape_infer(op, params, pin, op->n_in, &ref, sbuf, &ndim, pbuf,
                                        &params);
            if (st == LX_OK && !lx_shape_check(op->op, sbuf, ndim, (lx_dtype)op->dtype, NULL))
                st = lx_error();
            if (st != LX_OK) goto done;
            shape = sbuf;
        }
        for (int k = 0; k < op->n_in; k++) lx_node_retain(ins[k]);
        lx_node *n = lx_node_new(op->op, op->prim, (lx_dtype)op->dtype, shape, ndim, ins,
                                 op->n_in, params, op->params_size);
        if (!n) {
            st = lx_error() ? lx_error() : LX_E_OOM;
            goto done;
        }
        n->device = op->device;
        /* placed as lx_build places: a device without this primitive (a FUSED program on a
         * device that does not run them) gets its fallback or a CPU run between transfers */
        if (!(n = lx_node_place(n))) {
            st = lx_error() ? lx_error() : LX_E_OOM;
            goto done;
        }
        vals[t->n_in + t->n_const + i] = n;
        built++;
    }
    for (int j = 0; j < t->n_out; j++) {
        lx_node *n = vals[t->outs[j]];
        lx_node_retain(n);
        out[j] = lx_handle_new(n);
        if (lx_is_null(out[j])) {
            st = lx_error() ? lx_error() : LX_E_OOM;
            for (int k = 0; k < j; k++) {
                lx_free(out[k]);
                out[k] = LX_NULL_ARRAY;
            }
            goto done;
        }
    }
done:
    for (int i = 0; i < built; i++) lx_node_release(vals[t->n_in + t->n_const + i]);
    if (vals != small_vals) free(vals);
    if (ins != small_ins) free(ins);
    if (pin && pin != small_shp) free(pin);
    if (pbuf != small_p) free(pbuf);
    return st;
}
