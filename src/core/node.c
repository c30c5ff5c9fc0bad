/*
 * node.c -- graph node pool, reference counting and iterative destruction.
 *
 * Nodes are carved from chunks that are never returned to the system, and freed nodes go on
 * free lists (per thread, spilling to a global one). Their memory is therefore always a node,
 * which is what lets lx_node_try_retain run against a concurrent release without touching
 * freed memory: a stale reader either sees refs == 0 or takes a reference it then rechecks.
 */
#include "core/node.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"

#define NODE_CHUNK 256
#define LOCAL_FREE_MAX 1024

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static lx_node *global_free;
static size_t global_free_n;
static _Atomic size_t live_nodes;

static _Thread_local lx_node *local_free;
static _Thread_local size_t local_free_n;
static _Thread_local bool local_registered;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* A thread's spare nodes go back to the global list when it exits. */
static void return_local(void *unused) {
    (void)unused;
    if (!local_free) return;
    lx_node *tail = local_free;
    while (tail->next_free) tail = tail->next_free;
    pthread_mutex_lock(&pool_lock);
    tail->next_free = global_free;
    global_free = local_free;
    global_free_n += local_free_n;
    pthread_mutex_unlock(&pool_lock);
    local_free = NULL;
    local_free_n = 0;
}

static void make_exit_key(void) { pthread_key_create(&exit_key, return_local); }

static void register_thread(void) {
    if (local_registered) return;
    pthread_once(&exit_once, make_exit_key);
    pthread_setspecific(exit_key, &local_free); /* any non-NULL value: the hook runs */
    local_registered = true;
}

size_t lx_node_live_count(void) { return atomic_load(&live_nodes); }

static lx_node *pool_take(void) {
    register_thread();
    if (!local_free) {
        pthread_mutex_lock(&pool_lock);
        if (global_free) {
            /* take up to half a local list's worth */
            size_t take = 0;
            while (global_free && take < LOCAL_FREE_MAX / 2) {
                lx_node *n = global_free;
                global_free = n->next_free;
                n->next_free = local_free;
                local_free = n;
                take++;
            }
            global_free_n -= take;
            local_free_n += take;
        }
        pthread_mutex_unlock(&pool_lock);
    }
    if (!local_free) {
        lx_node *chunk = calloc(NODE_CHUNK, sizeof(lx_node));
        if (!chunk) return NULL;
        for (int i = 0; i < NODE_CHUNK; i++) {
            chunk[i].next_free = local_free;
            local_free = &chunk[i];
        }
        local_free_n += NODE_CHUNK;
    }
    lx_node *n = local_free;
    local_free = n->next_free;
    local_free_n--;
    return n;
}

static void pool_give(lx_node *n) {
    register_thread();
    n->next_free = local_free;
    local_free = n;
    if (++local_free_n > LOCAL_FREE_MAX) {
        /* spill half to the global list so nodes freed on a worker thread come back */
        lx_node *head = local_free, *tail = head;
        size_t k = 1;
        while (k < LOCAL_FREE_MAX / 2) { tail = tail->next_free; k++; }
        local_free = tail->next_free;
        local_free_n -= k;
        pthread_mutex_lock(&pool_lock);
        tail->next_free = global_free;
        global_free = head;
        global_free_n += k;
        pthread_mutex_unlock(&pool_lock);
    }
}

static void node_init(lx_node *n, const char *op, lx_dtype dtype, const int *shape, int ndim) {
    /* refs is written last by the caller-visible store below; everything else first */
    n->dtype = (uint8_t)dtype;
    n->ndim = (uint8_t)ndim;
    n->device = LX_CPU;
    n->prim = 0;
    n->n_inputs = 0;
    n->params_size = 0;
    int64_t size = 1;
    for (int i = 0; i < LX_MAX_NDIM; i++) {
        n->shape[i] = i < ndim ? shape[i] : 0;
        n->strides[i] = 0;
        if (i < ndim) size *= shape[i];
    }
    n->size = size;
    n->offset = 0;
    n->buf = NULL;
    atomic_store_explicit(&n->host_copy, NULL, memory_order_relaxed);
    n->inputs = n->inline_inputs;
    n->params = NULL;
    n->op = op;
    n->site_file = NULL;
    n->site_line = 0;
    n->next_free = NULL;
    atomic_store_explicit(&n->state, LX_NODE_LAZY, memory_order_relaxed);
    atomic_fetch_add_explicit(&live_nodes, 1, memory_order_relaxed);
}

lx_node *lx_node_new(const char *op, int prim, lx_dtype dtype, const int *shape, int ndim,
                     lx_node *const *inputs, int n_inputs, const void *params,
                     size_t params_size) {
    lx_node *n = pool_take();
    void *p = NULL;
    lx_node **in = NULL;
    if (n && params_size) {
        p = params_size <= LX_NODE_INLINE_PARAMS ? n->params_inline : malloc(params_size);
        if (p) memcpy(p, params, params_size);
    }
    if (n && n_inputs > LX_NODE_INLINE_INPUTS) in = malloc(sizeof(lx_node *) * (size_t)n_inputs);
    if (!n || (params_size && !p) || (n_inputs > LX_NODE_INLINE_INPUTS && !in)) {
        if (n && p != n->params_inline) free(p);
        free(in);
        if (n) pool_give(n);
        for (int i = 0; i < n_inputs; i++) lx_node_release(inputs[i]);
        lx_set_error(LX_E_OOM, "%s: out of host memory for a graph node", op);
        return NULL;
    }
    node_init(n, op, dtype, shape, ndim);
    n->prim = (uint16_t)prim;
    n->params = p;
    n->params_size = (uint32_t)params_size;
    if (in) n->inputs = in;
    for (int i = 0; i < n_inputs; i++) n->inputs[i] = inputs[i];
    n->n_inputs = (uint16_t)n_inputs;
    atomic_store_explicit(&n->refs, 1, memory_order_release);
    return n;
}

lx_node *lx_node_new_ready(const char *op, lx_dtype dtype, const int *shape, int ndim,
                           lx_buffer *buf) {
    lx_node *n = pool_take();
    if (!n) {
        lx_buffer_release(buf);
        lx_set_error(LX_E_OOM, "%s: out of host memory for a graph node", op);
        return NULL;
    }
    node_init(n, op, dtype, shape, ndim);
    n->buf = buf;
    n->device = buf->device;
    lx_node_set_row_strides(n);
    atomic_store_explicit(&n->state, LX_NODE_READY, memory_order_relaxed);
    atomic_store_explicit(&n->refs, 1, memory_order_release);
    return n;
}

bool lx_node_try_retain(lx_node *n) {
    uint32_t r = atomic_load_explicit(&n->refs, memory_order_relaxed);
    while (r != 0) {
        if (atomic_compare_exchange_weak_explicit(&n->refs, &r, r + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

/* Releases the node's own resources and pushes inputs whose count drops to zero onto the
 * caller's worklist (next_free links), so destruction never recurses. */
static void node_destroy_one(lx_node *n, lx_node **work) {
    for (int i = 0; i < n->n_inputs; i++) {
        lx_node *in = n->inputs[i];
        if (atomic_fetch_sub_explicit(&in->refs, 1, memory_order_acq_rel) == 1) {
            in->next_free = *work;
            *work = in;
        }
    }
    if (n->inputs != n->inline_inputs) free(n->inputs);
    n->inputs = n->inline_inputs;
    n->n_inputs = 0;
    if (n->params != n->params_inline) free(n->params);
    n->params = NULL;
    if (n->buf) lx_buffer_release(n->buf);
    n->buf = NULL;
    lx_buffer *hc = atomic_exchange_explicit(&n->host_copy, NULL, memory_order_acq_rel);
    if (hc) lx_buffer_release(hc);
    atomic_fetch_sub_explicit(&live_nodes, 1, memory_order_relaxed);
    pool_give(n);
}

void lx_node_release(lx_node *n) {
    if (atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) != 1) return;
    lx_node *work = n;
    n->next_free = NULL;
    while (work) {
        lx_node *cur = work;
        work = cur->next_free;
        node_destroy_one(cur, &work);
    }
}

void lx_node_detach(lx_node *n) {
    int k = n->n_inputs;
    lx_node **in = n->inputs;
    n->n_inputs = 0;
    n->inputs = n->inline_inputs;
    n->prim = 0;
    if (n->params != n->params_inline) free(n->params);
    n->params = NULL;
    n->params_size = 0;
    for (int i = 0; i < k; i++) lx_node_release(in[i]);
    if (in != n->inline_inputs) free(in);
}

void lx_node_set_row_strides(lx_node *n) {
    int64_t s = 1;
    for (int i = n->ndim - 1; i >= 0; i--) {
        n->strides[i] = s;
        s *= n->shape[i] > 0 ? n->shape[i] : 1;
    }
    n->offset = 0;
}

bool lx_node_is_row_contiguous(const lx_node *n) {
    int64_t s = 1;
    for (int i = n->ndim - 1; i >= 0; i--) {
        if (n->shape[i] == 1) continue;
        if (n->shape[i] == 0) return true;
        if (n->strides[i] != s) return false;
        s *= n->shape[i];
    }
    return true;
}

bool lx_shape_check(const char *op, const int *shape, int ndim, lx_dtype dtype, int64_t *size) {
    if (ndim < 0 || ndim > LX_MAX_NDIM) {
        lx_set_error(LX_E_SHAPE, "%s: ndim %d is outside [0, %d]", op, ndim, LX_MAX_NDIM);
        return false;
    }
    if (ndim > 0 && !shape) {
        lx_set_error(LX_E_ARG, "%s: shape is NULL with ndim %d", op, ndim);
        return false;
    }
    if (!lx_dtype_valid((int)dtype)) {
        lx_set_error(LX_E_DTYPE, "%s: invalid dtype %d", op, (int)dtype);
        return false;
    }
    /* The product of the dimensions with zeros counted as 1, times the element size, must fit
     * in int64 (and so in size_t on 64-bit hosts): it bounds the row strides, which count a
     * zero dimension as 1, so an empty array's strides, offsets and loops cannot overflow
     * either. The element count is that product, or 0 with any zero dimension. */
    int64_t n = 1, bytes;
    bool overflow = false, empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            lx_set_error(LX_E_SHAPE, "%s: dimension %d is negative (%d)", op, i, shape[i]);
            return false;
        }
        empty |= shape[i] == 0;
        overflow |= __builtin_mul_overflow(n, (int64_t)(shape[i] ? shape[i] : 1), &n);
    }
    if (overflow || __builtin_mul_overflow(n, (int64_t)lx_dtype_size(dtype), &bytes) ||
        (uint64_t)bytes > (uint64_t)(SIZE_MAX / 2)) {
        lx_set_error(LX_E_SHAPE, "%s: shape too large: the product of its dimensions overflows",
                     op);
        return false;
    }
    if (empty) n = 0;
    if (size) *size = n;
    return true;
}
