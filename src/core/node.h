/*
 * node.h -- graph nodes: the array descriptors behind handles.
 *
 * A node is an array: dtype, shape, and either data (a buffer with strides and an offset, once
 * READY) or a recipe (a primitive with parameters and owning references to input nodes).
 * Handles, consumers and the eval tape each hold a reference. Once computed a node detaches:
 * it drops its primitive and inputs, so intermediates are reclaimed as soon as nothing needs
 * them. Destruction is iterative: a million-node chain is released without deep recursion.
 *
 * Nodes come from a type-stable pool (their memory is only ever reused for nodes), which lets a
 * handle lookup race safely with a release: see lx_node_try_retain.
 */
#ifndef LX_CORE_NODE_H
#define LX_CORE_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buffer.h"
#include "lx.h"

typedef enum {
    LX_NODE_LAZY = 0,  /* not yet scheduled: recipe only */
    LX_NODE_SCHEDULED, /* claimed by an evaluation (running or queued) */
    LX_NODE_READY,     /* computed: buf/strides/offset valid, recipe dropped */
} lx_node_state;

#define LX_NODE_INLINE_INPUTS 3
#define LX_NODE_INLINE_PARAMS 80 /* most primitives' params fit: no allocation per node */

typedef struct lx_node {
    _Atomic uint32_t refs;
    _Atomic uint8_t state;   /* lx_node_state */
    uint8_t dtype;           /* lx_dtype */
    uint8_t ndim;
    uint8_t device;          /* lx_device that computes it */
    uint16_t prim;           /* lx_prim (graph/prims.h); LX_PRIM_NONE once READY */
    uint16_t n_inputs;
    uint32_t params_size;
    int32_t shape[LX_MAX_NDIM];
    int64_t strides[LX_MAX_NDIM]; /* in elements; valid when READY */
    int64_t offset;               /* in elements from buf->ptr; valid when READY */
    int64_t size;                 /* number of elements */
    lx_buffer *buf;               /* valid when READY */
    _Atomic(lx_buffer *) host_copy; /* row-major copy made by lx_data for a strided array */
    struct lx_node **inputs;      /* points at inline_inputs or a heap array */
    struct lx_node *inline_inputs[LX_NODE_INLINE_INPUTS];
    void *params;                 /* primitive parameters (params_size bytes): params_inline or heap */
    _Alignas(16) unsigned char params_inline[LX_NODE_INLINE_PARAMS];
    const char *op;               /* the public op that made it, for messages and debugging */
    const char *site_file;        /* LX_DEBUG: where it was made */
    int site_line;
    struct lx_node *next_free;    /* pool link; also used by iterative traversals */
    _Atomic uint64_t tape_seq;    /* eval.c: the tape that claimed it (read while SCHEDULED) */
} lx_node;

/* A new LAZY node with one reference, or NULL with the thread error set. Shapes must have been
 * validated (lx_shape_check). `inputs` references are transferred to the node. */
lx_node *lx_node_new(const char *op, int prim, lx_dtype dtype, const int *shape, int ndim,
                     lx_node *const *inputs, int n_inputs, const void *params,
                     size_t params_size);
/* A READY node over a buffer (reference transferred), row-contiguous at offset 0. */
lx_node *lx_node_new_ready(const char *op, lx_dtype dtype, const int *shape, int ndim,
                           lx_buffer *buf);

static inline void lx_node_retain(lx_node *n) {
    atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
}
/* Takes a reference only if the node is still alive (refs > 0). */
bool lx_node_try_retain(lx_node *n);
/* Drops a reference; the last one destroys the node and, iteratively, what only it held. */
void lx_node_release(lx_node *n);

/* Drops primitive, params and inputs (after evaluation). */
void lx_node_detach(lx_node *n);

static inline lx_node_state lx_node_state_of(const lx_node *n) {
    return (lx_node_state)atomic_load_explicit(&((lx_node *)n)->state, memory_order_acquire);
}
static inline size_t lx_node_nbytes(const lx_node *n) {
    return (size_t)n->size * lx_dtype_size((lx_dtype)n->dtype);
}
/* Host address of element 0 of a READY node (CPU backend). */
static inline void *lx_node_ptr(const lx_node *n) {
    return (char *)n->buf->ptr + n->offset * (int64_t)lx_dtype_size((lx_dtype)n->dtype);
}
/* Row-major strides for the node's shape. */
void lx_node_set_row_strides(lx_node *n);
/* True if the READY node is row-contiguous (strides of size-1 dims are ignored). */
bool lx_node_is_row_contiguous(const lx_node *n);

/* Live node count (for tests and lx_debug_arrays). */
size_t lx_node_live_count(void);

/* Shape validation shared by creation and ops: ndim in [0, LX_MAX_NDIM], dims >= 0, element
 * count and byte count fit in int64/size_t. Sets the thread error naming `op` and returns
 * false on failure; *size gets the element count. */
bool lx_shape_check(const char *op, const int *shape, int ndim, lx_dtype dtype, int64_t *size);

#endif
