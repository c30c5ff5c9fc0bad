/*
 * derive.c -- lx_build_derived: nodes whose dtype and shape come from their primitive's rule
 * (graph/prim_info.h), so that an op states the semantics once (the rule) instead of
 * computing the same shape beside it. The elementwise ops and matmul, which have the shape at
 * hand after broadcasting, build directly (ops/elementwise.c says why).
 */
#include <stdlib.h>
#include <string.h>

#include "graph/prim_info.h"
#include "ops/ops.h"

lx_node *lx_build_derived(const char *op, int prim, lx_dtype dtype, lx_node *const *inputs,
                          int n_inputs, const void *params, size_t params_size) {
    const lx_prim_info *pi = lx_prim_info_get(prim);
    lx_prim_meta in_inline[4], *in = in_inline;
    lx_prim_meta out = {.dtype = dtype};
    lx_status st = LX_OK;
    if (!pi || pi->shape != LX_SHAPE_DERIVED)
        st = lx_set_error(LX_E_INTERNAL, "%s: %s has no derived shape", op, lx_prim_name(prim));
    else if (n_inputs > 4 && !(in = malloc(sizeof *in * (size_t)n_inputs)))
        st = lx_set_error(LX_E_OOM, "%s: out of host memory", op);
    if (st == LX_OK) {
        for (int i = 0; i < n_inputs; i++) lx_prim_meta_of(inputs[i], &in[i]);
        /* the op's params already fit these shapes (lx_prim_check verifies it in debug
         * builds), so the rule rewrites nothing */
        st = pi->rule(op, in, n_inputs, params_size ? params : NULL, (uint32_t)params_size, NULL,
                      &out);
    }
    if (in != in_inline) free(in);
    if (st != LX_OK) {
        for (int i = 0; i < n_inputs; i++) lx_node_release(inputs[i]);
        return NULL;
    }
    return lx_build(op, prim, (lx_dtype)out.dtype, out.shape, out.ndim, inputs, n_inputs, params,
                    params_size);
}
