/*
 * compile_trace.c -- tracing (compile.h's "Trace"): fn runs on PLACEHOLDER inputs with every
 * handle it makes going to the trace's own list, then what it built goes through the working
 * graph's passes (collect, simplify, mark live, fuse, shapeless matmul refs, emit) into the
 * trace's tape. Also whether this thread is tracing.
 */
#include <stdlib.h>
#include <string.h>

#include "eval/compile_int.h"
#include "graph/prims.h"
#include "core/error.h"
#include "core/handle.h"
#include "core/node.h"

static _Thread_local int tl_tracing;

bool lx_compile_tracing(void) { return tl_tracing > 0; }

void lx_compile_trace_free(lx_trace *t) {
    if (!t) return;
    for (int i = 0; i < t->n_const; i++)
        if (t->consts[i]) lx_node_release(t->consts[i]);
    lx_handle_list_free(&t->handles);
    free(t->consts);
    free(t->ops);
    free(t->ins);
    free(t->params);
    free(t->outs);
    free(t->keys);
    free(t);
}

/* Runs fn on placeholders and turns what it built into a tape. On failure returns NULL with
 * the error set (or *st = fn's status) and nothing left behind. */
lx_trace *lx_compile_trace_new(lx_closure *c, lx_node *const *real, int n_in, lx_status *st) {
    lx_trace *t = calloc(1, sizeof *t);
    lx_array *ph = calloc((size_t)(n_in ? n_in : 1), sizeof(lx_array));
    lx_node **ph_nodes = calloc((size_t)(n_in ? n_in : 1), sizeof(lx_node *));
    lx_array *outs = calloc((size_t)c->n_out, sizeof(lx_array));
    lx_node **out_nodes = calloc((size_t)c->n_out, sizeof(lx_node *));
    lx_wgraph g;
    memset(&g, 0, sizeof g);
    *st = LX_OK;
    if (!t || !ph || !ph_nodes || !outs || !out_nodes) {
        *st = lx_compile_oom("for a trace");
        goto fail;
    }
    t->n_in = n_in;
    t->shapeless = (c->flags & LX_COMPILE_SHAPELESS) != 0;
    t->keys = calloc((size_t)(n_in ? n_in : 1), sizeof(lx_trace_key));
    if (!t->keys) {
        *st = lx_compile_oom("for a trace");
        goto fail;
    }
    for (int i = 0; i < n_in; i++) {
        t->keys[i].dtype = real[i]->dtype;
        t->keys[i].ndim = real[i]->ndim;
        t->keys[i].device = real[i]->device;
        memcpy(t->keys[i].shape, real[i]->shape, sizeof t->keys[i].shape);
    }
    /* trace: everything made from here on belongs to t->handles */
    lx_handle_list *prev = lx_handle_sink(&t->handles);
    tl_tracing++;
    bool made = true;
    for (int i = 0; i < n_in && made; i++) {
        lx_node *p = lx_node_new("lx_call (a traced input)", LX_PRIM_PLACEHOLDER,
                                 (lx_dtype)real[i]->dtype, real[i]->shape, real[i]->ndim, NULL,
                                 0, NULL, 0);
        if (p) p->device = real[i]->device;
        ph_nodes[i] = p;
        ph[i] = lx_handle_new(p); /* the handle holds the reference */
        made = !lx_is_null(ph[i]);
    }
    lx_status fst = made ? c->fn(c->ctx, ph, n_in, outs, c->n_out) : lx_error();
    tl_tracing--;
    lx_handle_sink(prev);
    if (fst != LX_OK || lx_error() != LX_OK) {
        if (lx_error() == LX_OK)
            lx_set_error(fst, "lx_call: the compiled function returned %s while it was traced",
                         lx_status_string(fst));
        *st = lx_error();
        goto fail;
    }
    for (int j = 0; j < c->n_out; j++) {
        out_nodes[j] = lx_handle_peek(outs[j]);
        if (!out_nodes[j]) {
            *st = lx_set_error(lx_is_null(outs[j]) ? LX_E_ARG : LX_E_FREED,
                               "lx_call: output %d of the compiled function is %s", j,
                               lx_is_null(outs[j]) ? "the null array" : "a released array");
            goto fail;
        }
    }
    g.shapeless = t->shapeless;
    if ((*st = lx_compile_graph_collect(&g, ph_nodes, n_in, out_nodes, c->n_out)) != LX_OK)
        goto fail;
    if ((*st = lx_compile_graph_simplify(&g)) != LX_OK) goto fail;
    lx_compile_graph_mark_live(&g);
    if ((*st = lx_compile_graph_fuse(&g)) != LX_OK) goto fail;
    if (g.shapeless) lx_compile_graph_matmul_refs(&g);
    if ((*st = lx_compile_graph_emit(&g, t)) != LX_OK) goto fail;
    lx_compile_graph_free(&g);
    for (int j = 0; j < c->n_out; j++) lx_node_release(out_nodes[j]);
    free(ph);
    free(ph_nodes);
    free(outs);
    free(out_nodes);
    return t;
fail:
    lx_compile_graph_free(&g);
    if (out_nodes)
        for (int j = 0; j < c->n_out; j++)
            if (out_nodes[j]) lx_node_release(out_nodes[j]);
    lx_compile_trace_free(t);
    free(ph);
    free(ph_nodes);
    free(outs);
    free(out_nodes);
    if (*st == LX_OK) *st = LX_E_INTERNAL;
    return NULL;
}
