/*
 * prim_info.h -- one description of each primitive, generated from the .def lists
 * (graph/prims.h): its name, its shape/dtype rule, which inputs its output may share a buffer
 * with (donation) and whether compile fuses it. Every reader takes these facts from here:
 * ops (each lx_build checks the node against the rule; ops that only need the rule's answer
 * ask lx_build_derived, ops/ops.h), shapeless compile (replay recomputes shapes and
 * shape-dependent params with the rule), eval (donation) and compile's fusion.
 *
 * Fallbacks (a primitive rewritten as other primitives, for a device that leaves it out)
 * build nodes, which is the ops layer's business, so they live in ops/fallback.h; this file
 * stays below ops (it uses only core and the graph vocabulary).
 *
 * Rules. A rule is given the inputs' dtypes and shapes, the params (a copy the caller owns)
 * and `out` holding the dtype and shape the node was built (or traced) with. It writes into
 * `out` everything the inputs and params determine and checks the rest against the inputs:
 *   LX_SHAPE_DERIVED  the shape follows from the inputs and params alone;
 *   LX_SHAPE_PARTIAL  part of it comes from `out` (RANDOM_BITS: the per-key dims after the
 *                     key's leading dims; with a fixed rank, as shapeless compile keeps it);
 *   LX_SHAPE_GIVEN    the shape is the node's own (FULL, RESHAPE, SLICE, PAD, ...): the rule
 *                     only checks that it fits the inputs.
 * The dtype is written where the primitive fixes it (UNARY, BINARY, SORT's indices, ...) and
 * kept from `out` where the node chooses it (COPY's target, REDUCE's accumulator dtype, FULL).
 * Params that depend on the shapes are rewritten to match the inputs: REDUCE's scale when it
 * divides by the count (mean, var), FUSED's logical shape and output offsets, QUANTIZE's
 * offsets. A rule that finds the inputs inconsistent sets the thread error (LX_E_SHAPE or
 * LX_E_DTYPE, or LX_E_INTERNAL for malformed params) naming `who` and the primitive.
 */
#ifndef LX_GRAPH_PRIM_INFO_H
#define LX_GRAPH_PRIM_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/node.h"
#include "graph/prims.h"

/* The dtype and shape of an input or of the output, as a rule sees them. */
typedef struct lx_prim_meta {
    int32_t dtype; /* lx_dtype */
    int32_t ndim;
    int32_t shape[LX_MAX_NDIM];
} lx_prim_meta;

typedef enum { LX_SHAPE_DERIVED, LX_SHAPE_PARTIAL, LX_SHAPE_GIVEN } lx_prim_shape_kind;

/* who names the caller in messages ("lx_add", "lx_call"). Rules whose params depend on the
 * shapes (REDUCE's mean scale, QUANTIZE's offsets, FUSED's header) write the params that fit
 * these inputs to `rewrite` (params_size bytes) when it is not NULL; an op that built its
 * params already passes NULL, so deriving a node copies nothing. */
typedef lx_status (*lx_prim_rule_fn)(const char *who, const lx_prim_meta *in, int n_in,
                                     const void *params, uint32_t params_size, void *rewrite,
                                     lx_prim_meta *out);

#define LX_DONATE_ALL (-1) /* every input may be donated */

typedef struct lx_prim_info {
    const char *name;     /* "SOFTMAX" */
    lx_prim_rule_fn rule; /* never NULL */
    uint8_t shape;        /* lx_prim_shape_kind */
    bool view;            /* evaluated by the eval layer over the input's buffer */
    bool fuses;           /* compile may fuse it into a FUSED program (elementwise) */
    /* How many leading inputs the output may take the buffer of (eval's donation); the
     * kernel then reads each element before writing it. LX_DONATE_ALL: every input. */
    int8_t donate;
} lx_prim_info;

extern const lx_prim_info *const lx_prim_table[LX_PRIM_COUNT];

/* The primitive's description; NULL for a number outside [0, LX_PRIM_COUNT). Inline: eval
 * reads it for every node it runs. */
static inline const lx_prim_info *lx_prim_info_get(int prim) {
    return prim >= 0 && prim < LX_PRIM_COUNT ? lx_prim_table[prim] : NULL;
}

/* The inputs of node n that its output may reuse the buffer of: n's first k inputs. */
static inline int lx_prim_donatable(const lx_node *n) {
    const lx_prim_info *pi = lx_prim_info_get(n->prim);
    if (!pi) return 0;
    if (pi->donate == LX_DONATE_ALL) return n->n_inputs;
    return pi->donate < n->n_inputs ? pi->donate : n->n_inputs;
}

/* Whether compile may fuse a node of prim with these params and n_in inputs: the primitive
 * fuses and the node is well formed (a known UNARY/BINARY op, the right input count). */
bool lx_prim_node_fuses(int prim, const void *params, uint32_t params_size, int n_in);

/* A node's dtype and shape as a rule sees them. */
void lx_prim_meta_of(const lx_node *n, lx_prim_meta *m);

/* Runs prim's rule for inputs and params (not modified: the rule works on a copy) and
 * compares its answer with (dtype, shape, ndim): LX_OK, or LX_E_INTERNAL naming `who`, the
 * primitive and both shapes when the node does not follow its rule (the rule's own error when
 * the inputs do not fit together). What lx_build checks every node with. */
lx_status lx_prim_check(const char *who, int prim, int dtype, const int32_t *shape, int ndim,
                        lx_node *const *inputs, int n_inputs, const void *params,
                        size_t params_size);

#endif
