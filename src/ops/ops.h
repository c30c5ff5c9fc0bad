/*
 * ops.h -- what op constructors share: argument lookup, node building, and node-level shape
 * helpers (broadcast, astype, reshape) that let an op compose others without making handles
 * for its intermediates.
 *
 * Convention: functions taking `lx_node *` consume the caller's reference to it and return a
 * node with one reference (or NULL with the thread error set, having released what they got).
 * An op validates every argument, then builds nodes; it never computes values.
 */
#ifndef LX_OPS_OPS_H
#define LX_OPS_OPS_H

#include "graph/prims.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/handle.h"
#include "core/node.h"

/* The node behind an argument (new reference), or NULL with "<op>: argument <name>: ...". */
static inline lx_node *lx_arg(lx_array a, const char *op, const char *name) {
    return lx_handle_get(a, op, name);
}
/* Releases up to n nodes (NULLs skipped). */
void lx_release_nodes(lx_node **nodes, int n);

/* A new lazy node on the default device (views: on their input's), inputs on other devices
 * reached through TRANSFER nodes, and a primitive the device does not compute replaced by
 * its fallback or run on the CPU (build.c). Inputs' references are transferred. */
lx_node *lx_build(const char *op, int prim, lx_dtype dtype, const int *shape, int ndim,
                  lx_node *const *inputs, int n_inputs, const void *params, size_t params_size);
/* A new LAZY node n (reference consumed) made ready to run on its device (n->device): inputs
 * on other devices behind TRANSFER nodes, and, where the device does not compute it, the
 * fallback or a CPU run in its place. What lx_build does after making the node; compile's
 * replay, which makes nodes itself, calls it too. NULL with the error set. */
lx_node *lx_node_place(lx_node *n);
/* x (reference consumed) on device d: itself, or through a TRANSFER node. */
lx_node *lx_node_to_device(lx_node *x, lx_device d);
/* A READY node x (reference consumed) copied to device d now (a leaf made from host data
 * lives where it is used); x itself when it is already there. NULL with the error set. */
lx_node *lx_node_upload(const char *op, lx_node *x, lx_device d);
/* A new LAZY node computing what n (not consumed) computes from other primitives, built with
 * lx_build on n's device; NULL with no error set when n's primitive has no fallback. */
lx_node *lx_prim_fallback(const lx_node *n);
/* lx_build with the dtype and shape from prim's shape/dtype rule (graph/prim_info.h) for
 * these inputs and params; `dtype` is the node's choice where the rule leaves it (COPY's
 * target, REDUCE's accumulator), ignored where the rule fixes it. For LX_SHAPE_DERIVED
 * primitives (derive.c). */
lx_node *lx_build_derived(const char *op, int prim, lx_dtype dtype, lx_node *const *inputs,
                          int n_inputs, const void *params, size_t params_size);
/* lx_build + a tracked handle. */
lx_array lx_build_array(const char *op, int prim, lx_dtype dtype, const int *shape, int ndim,
                        lx_node *const *inputs, int n_inputs, const void *params,
                        size_t params_size);
/* Hands a node (reference transferred) to a new tracked handle; NULL gives the null array. */
static inline lx_array lx_wrap(lx_node *n) { return n ? lx_handle_new(n) : LX_NULL_ARRAY; }

/* Axis in [-ndim, ndim) to [0, ndim); -1 with "<op>: axis A is out of range for N dims". */
int lx_norm_axis(const char *op, int axis, int ndim);
/* The broadcast shape of two shapes (numpy rules); false with LX_E_SHAPE naming both. */
bool lx_broadcast_shape(const char *op, const int *a, int na, const int *b, int nb, int *out,
                        int *nout);
/* View of x broadcast to shape (x returned as is if it already has it). */
lx_node *lx_node_broadcast(const char *op, lx_node *x, const int *shape, int ndim);
/* x converted to dtype (x returned as is if it has it). */
lx_node *lx_node_astype(const char *op, lx_node *x, lx_dtype dtype);
/* x viewed (or copied) with a new shape of the same size. */
lx_node *lx_node_reshape(const char *op, lx_node *x, const int *shape, int ndim);
/* x with axes permuted. */
lx_node *lx_node_permute(const char *op, lx_node *x, const int *perm);
/* A scalar constant node (ndim 0) of dtype. */
lx_node *lx_node_scalar(const char *op, double value, lx_dtype dtype);
/* Broadcasts a and b to a common shape (and converts both to dtype unless it is -1). */
bool lx_broadcast_pair(const char *op, lx_node **a, lx_node **b, int dtype);

/* Python-style slice bounds: negative start/stop count from the end, then clamp to the axis.
 * Returns the slice length and sets *start to its first index. */
int lx_slice_len(int dim, int *start, int stop, int step);

/* "[2, 3, 4]" into buf, for messages. */
const char *lx_shape_str(const int32_t *shape, int ndim, char *buf, size_t n);
#define LX_SHAPE_STR(node) lx_shape_str((node)->shape, (node)->ndim, (char[96]){0}, 96)

#endif
