/*
 * eval.h -- scheduling and execution of lazy graphs (internal).
 */
#ifndef LX_EVAL_EVAL_H
#define LX_EVAL_EVAL_H

#include "backend/device.h"
#include "core/node.h"

/* Computes the nodes (and what they need) and waits for them; no sweep. Returns LX_OK or the
 * evaluation's error (also recorded as the thread error). Used by reads and by compile. */
lx_status lx_eval_nodes(lx_node *const *nodes, int n);
/* Waits until the node is no longer SCHEDULED. */
void lx_wait_node(lx_node *n);
/* ... and, on an asynchronous device, until its data is written. */
void lx_wait_node_data(lx_node *n);
/* Waits until the buffer's last writer has completed (no-op on synchronous devices). */
lx_status lx_buffer_wait(lx_buffer *b);
/* Waits for device d's launched kernels and releases what they held. */
void completions_drain(int d);
/* Releases what device d's completed kernels held (no waiting). */
void lx_device_retire(int d);
/* The view primitives (eval/view.c): sets buf/strides/offset of n from its READY input. */
lx_status lx_view_eval(lx_node *n);
/* Runs the backend COPY kernel from `src` into a fresh row-contiguous buffer of dtype. */
lx_buffer *lx_copy_contiguous(const lx_node *src, lx_dtype dtype, const char *op);

/* Runs kernel k of device dev for node n (output buffer set): with a kernel context whose
 * scratch is released once the work is done; on an asynchronous device records the event
 * that marks n's buffer written. */
lx_status lx_run_kernel(const lx_device_impl *dev, lx_kernel_fn k, lx_node *n);

#endif
