/*
 * backend.h -- what a backend provides: a table of kernels indexed by primitive, raw device
 * memory, and a name. The CPU backend is always present (in the best instruction-set variant
 * the processor supports); the CUDA backend is a module loaded at run time.
 *
 * A kernel computes one node: its inputs are READY (buffers, strides and offsets set, possibly
 * non-contiguous or broadcast with zero strides); the eval layer has allocated the node's
 * row-contiguous output buffer (out->buf, offset 0), unless the primitive is a view.
 * A kernel returns LX_OK or an error status after recording a message with lx_set_error.
 */
#ifndef LX_BACKEND_BACKEND_H
#define LX_BACKEND_BACKEND_H

#include "backend/prims.h"
#include "core/buffer.h"
#include "core/node.h"

typedef lx_status (*lx_kernel_fn)(lx_node *out);

typedef struct lx_backend {
    const char *name;        /* "cpu", "cuda" */
    const char *variant;     /* e.g. "x86-64-v3 (AVX2, FMA, F16C)" */
    lx_device device;
    const lx_kernel_fn *kernels; /* [LX_PRIM_COUNT]; NULL entries are unsupported */
    lx_device_memory memory;
    void (*synchronize)(void);   /* waits for device work; NULL for synchronous backends */
} lx_backend;

/* The backend for a device, or NULL if absent. Initialises backends on first use. */
const lx_backend *lx_backend_for(lx_device d);

#endif
