/*
 * compile.h -- compiled closures (lx_compile / lx_call, DESIGN §3 and §6): trace, simplify,
 * fuse, cache, replay.
 *
 * Trace. The first call with a new input signature runs fn on placeholder inputs: PLACEHOLDER
 * nodes with the callers' dtypes and shapes, which fail if anything tries to evaluate them.
 * Every handle made meanwhile goes to the trace's own handle list (lx_handle_sink), never to a
 * tracker; the list lives as long as the trace. A failing fn (a status, a sticky error raised
 * while tracing, a null output) makes lx_call fail cleanly, with the trace dropped. A call made
 * while this thread traces runs fn inline, so nested compiled calls inline into the outer trace.
 *
 * Tape. From the outputs back to the placeholders: inputs (placeholders), constants (READY or
 * in-flight nodes met on the way: weights from ctx, arrays created in fn; retained) and ops
 * (LAZY nodes: primitive, dtype, shape, params bytes, input indices), in topological order.
 *
 * Simplify. Removes no-op views (RESHAPE to the same shape; CONTIGUOUS and same-dtype COPY of
 * a kernel's output, which is row-contiguous already), folds astype of a scalar constant when
 * exact, merges equal scalar constants (READY size-1 leaves with equal bytes) and common
 * subexpressions (same primitive, dtype, shape, params bytes and inputs; FULL nodes included).
 *
 * Fuse. Maximal groups of elementwise nodes (UNARY, BINARY, WHERE, COPY) of one shape, grown
 * from the last node backwards: a producer joins when all its consumers are in the group, or,
 * as an extra output of the group, when no consumer outside leads back into it (no cycle).
 * BROADCAST views of the group's inputs are absorbed (the kernel reads the source with
 * broadcast strides) and scalar constants become immediates. A group has fewer than 24 inputs,
 * at most LX_FUSED_MAX_OUT outputs and LX_FUSED_MAX_INSTR instructions. Each group becomes one
 * FUSED node whose params are the device-independent program of graph/fused.h (one output:
 * the node is the output; several: a byte buffer plus PART views at 64-byte offsets). A lone
 * node stays as it is (its own kernel is at least as fast) unless shapeless replay needs it
 * fused (it absorbs a BROADCAST).
 *
 * Cache. Per closure, a list of traces in least-recently-used order, keyed by each input's
 * dtype, ndim and shape (LX_COMPILE_SHAPELESS: dtype and ndim). The bound
 * (lx_set_compile_cache_limit, default 32) applies to every closure; lx_closure_trace_count
 * counts the traces made. lx_closure_free drops every trace: its handles, constants and tape.
 *
 * Replay. Each call builds fresh nodes from the tape with the real input nodes; only the
 * outputs get handles, on the caller's tracker. Shapeless traces recompute shapes from the
 * real inputs with each primitive's own shape rule (graph/prim_info.h: elementwise and FUSED
 * broadcast their inputs, REDUCE and ARG_REDUCE set their axes to 1 and a mean's or variance's
 * scale 1 / (count - ddof) follows the new count, MATMUL multiplies, RANDOM_BITS keeps the
 * key's leading dims, ...), plus three rules over the trace's structure: a BROADCAST into a
 * matmul operand takes the batch of both operands, a RESHAPE that only drops or inserts size-1
 * dims (keepdims = false) follows its input, and a PART of a FUSED node follows its program.
 * Every rule is checked against the traced shapes when tracing. A primitive whose shape is its
 * own (a RESHAPE or BROADCAST to a literal shape, SLICE, PAD, ...) or that has a literal size
 * (top-k, partition) and depends on the inputs makes the trace fail
 * with LX_E_UNSUPPORTED naming it. Ops that do not depend on the inputs keep their traced
 * shapes (so lx_zeros with an input's traced shape stays that shape).
 *
 * Switch. lx_set_compile_enabled(false), or LX_DISABLE_COMPILE=1 in the environment, makes
 * lx_call run fn directly.
 */
#ifndef LX_EVAL_COMPILE_H
#define LX_EVAL_COMPILE_H

#include <stdbool.h>

#include "lx.h"

/* True while this thread is tracing a compiled function. */
bool lx_compile_tracing(void);

#endif
