/*
 * fallback.h -- primitives rewritten as other primitives, for a device that leaves one out.
 *
 * A fallback takes a fully described LAZY node (prim, params, inputs, dtype, shape) and builds
 * an equivalent LAZY subgraph over the same input nodes from primitives of the small core
 * (COPY, FULL, ARANGE, UNARY, BINARY, WHERE, REDUCE, MATMUL, TAKE, CONCATENATE, the views)
 * and of other fallbacks' results. The nodes are made with lx_build, so they land on the
 * default device, which is the node's own when placement (ops/build.c) asks, and each one
 * goes through placement in turn.
 *
 * Why here and not in graph/prim_info.h: fallbacks build nodes with the ops layer's helpers,
 * and graph/ is the vocabulary below ops that devices share, so it must not depend on ops.
 * The table of which primitive has one is fallback.c's, generated like prim_info's.
 *
 * Precision: the fallbacks compute as the CPU kernels do where that is cheap to say (float32
 * for half inputs, float64 for float64; rope's angles in float64; softmax and sdpa subtract
 * the row maximum), but sums run in another order, so results agree to rounding, not bit for
 * bit (tests/test_prim_info.c states the tolerances).
 */
#ifndef LX_OPS_FALLBACK_H
#define LX_OPS_FALLBACK_H

#include <stdbool.h>

#include "core/node.h"

/* A new LAZY node equal in meaning to n (LAZY, not consumed; its inputs are retained as the
 * subgraph needs them). NULL with no error set when n's primitive has no fallback; NULL with
 * the thread error set when building failed or this node's form has none (a multi-output
 * FUSED node: see lx_fused_output_fallback). */
lx_node *lx_prim_fallback(const lx_node *n);

/* Whether prim has a fallback (some nodes of it may still refuse, as above). MATMUL has none,
 * but lx_prim_fallback rewrites its mixed form (a half b under float32) as b converted and
 * the one-dtype product. */
bool lx_prim_has_fallback(int prim);

/* Output j of a FUSED node (any n_out) rebuilt from UNARY/BINARY/WHERE/COPY/FULL nodes: what
 * the PART view of output j reads. NULL with the thread error set on failure. */
lx_node *lx_fused_output_fallback(const lx_node *fused, int j);

#endif
