/*
 * read.c -- reading arrays: data, items and metadata. Reads evaluate what they need (without
 * a sweep) and wait for work in flight.
 */
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/handle.h"
#include "backend/device.h"
#include "eval/eval.h"

/* The node of a, evaluated; NULL with the error set. */
static lx_node *ready_node(lx_array a, const char *op) {
    lx_node *n = lx_handle_get(a, op, "a");
    if (!n) return NULL;
    if (lx_node_state_of(n) != LX_NODE_READY) {
        if (lx_eval_nodes(&n, 1) != LX_OK || lx_node_state_of(n) != LX_NODE_READY) {
            if (lx_error() == LX_OK)
                lx_set_error(LX_E_INTERNAL, "%s: the array could not be evaluated", op);
            lx_node_release(n);
            return NULL;
        }
    }
    return n;
}

/* A host buffer holding n's data in row-major order: n's device makes it contiguous (when it
 * is not) and copies it to the host. */
static lx_buffer *host_copy_of(lx_node *n, const char *op) {
    const lx_device_impl *dev = lx_device_get((lx_device)n->device);
    if (!dev) {
        lx_set_error(LX_E_DEVICE, "%s: the array's device is absent", op);
        return NULL;
    }
    if (dev->host_visible) { /* the copy may be queued: wait for it before the host reads */
        lx_buffer *b = lx_copy_contiguous(n, (lx_dtype)n->dtype, op);
        if (b) lx_buffer_wait(b);
        return b;
    }
    size_t nbytes = lx_node_nbytes(n);
    lx_buffer *tmp = NULL;
    const char *src = (const char *)n->buf->ptr + n->offset * (int64_t)lx_dtype_size((lx_dtype)n->dtype);
    if (nbytes && !lx_node_is_row_contiguous(n)) {
        if (!(tmp = lx_copy_contiguous(n, (lx_dtype)n->dtype, op))) return NULL;
        src = tmp->ptr;
    }
    lx_buffer *h = lx_buffer_alloc(LX_CPU, nbytes);
    lx_status st = h ? (nbytes ? dev->copy_to_host(dev, h->ptr, src, nbytes) : LX_OK) : lx_error();
    if (tmp) lx_buffer_release(tmp);
    lx_device_retire(n->device); /* the copy waited for earlier work: let its buffers go */
    if (st != LX_OK) {
        if (h) lx_buffer_release(h);
        if (lx_error() == LX_OK)
            lx_set_error(st, "%s: copying %zu bytes from %s failed", op, nbytes, dev->name);
        return NULL;
    }
    return h;
}

/* Host address of n's row-major data: its own buffer if it is host memory and row-contiguous,
 * else a copy made once and kept with the node. */
static const void *row_major(lx_node *n, const char *op) {
    const lx_device_impl *dev = lx_device_get((lx_device)n->device);
    if (dev && dev->host_visible && lx_node_is_row_contiguous(n)) {
        lx_buffer_wait(n->buf);
        return lx_node_ptr(n);
    }
    lx_buffer *hc = atomic_load_explicit(&n->host_copy, memory_order_acquire);
    if (!hc) {
        lx_buffer *b = host_copy_of(n, op);
        if (!b) return NULL;
        lx_buffer *expect = NULL;
        if (atomic_compare_exchange_strong(&n->host_copy, &expect, b)) hc = b;
        else { lx_buffer_release(b); hc = expect; }
    }
    return hc->ptr;
}

lx_status lx_read(lx_array a, void *dst, size_t nbytes) {
    lx_node *n = ready_node(a, "lx_read");
    if (!n) return lx_error();
    lx_status st = LX_OK;
    size_t want = lx_node_nbytes(n);
    if (nbytes != want) {
        st = lx_set_error(LX_E_ARG, "lx_read: the array holds %zu bytes but nbytes is %zu", want,
                          nbytes);
    } else if (!dst && nbytes) {
        st = lx_set_error(LX_E_ARG, "lx_read: dst is NULL");
    } else if (nbytes) {
        const void *src = row_major(n, "lx_read");
        if (src) memcpy(dst, src, nbytes);
        else st = lx_error();
    }
    lx_node_release(n);
    return st;
}

const void *lx_data(lx_array a) {
    lx_node *n = ready_node(a, "lx_data");
    if (!n) return NULL;
    const void *p = row_major(n, "lx_data");
    /* the pointer stays valid while the handle is: its slot holds a reference to n */
    lx_node_release(n);
    return p;
}

static bool item(lx_array a, const char *op, double *out) {
    *out = 0.0;
    lx_node *n = ready_node(a, op);
    if (!n) return false;
    bool ok = false;
    if (n->size != 1) {
        lx_set_error(LX_E_SHAPE, "%s: the array has %lld elements, not 1", op, (long long)n->size);
    } else {
        const void *p = row_major(n, op);
        if (p) *out = lx_dtype_load((lx_dtype)n->dtype, p);
        ok = p != NULL;
    }
    lx_node_release(n);
    return ok;
}

float lx_item_f32(lx_array a) {
    double v;
    item(a, "lx_item_f32", &v);
    return (float)v;
}

int32_t lx_item_i32(lx_array a) {
    double v;
    if (!item(a, "lx_item_i32", &v)) return 0;
    return (int32_t)lx_clamp_f64(v, (double)INT32_MIN, (double)INT32_MAX);
}

double lx_item_f64(lx_array a) {
    double v;
    item(a, "lx_item_f64", &v);
    return v;
}

/* ---- metadata: no evaluation ---- */

int lx_ndim(lx_array a) {
    lx_node *n = lx_handle_get(a, "lx_ndim", "a");
    if (!n) return -1;
    int d = n->ndim;
    lx_node_release(n);
    return d;
}

int lx_dim(lx_array a, int axis) {
    lx_node *n = lx_handle_get(a, "lx_dim", "a");
    if (!n) return -1;
    int d = -1;
    if (axis < -(int)n->ndim || axis >= (int)n->ndim)
        lx_set_error(LX_E_ARG, "lx_dim: axis %d is out of range for %d dimensions", axis, n->ndim);
    else
        d = n->shape[axis < 0 ? axis + n->ndim : axis];
    lx_node_release(n);
    return d;
}

int lx_shape(lx_array a, int *out) {
    lx_node *n = lx_handle_get(a, "lx_shape", "a");
    if (!n) return -1;
    int d = n->ndim;
    if (!out && d > 0) {
        lx_set_error(LX_E_ARG, "lx_shape: out is NULL");
        d = -1;
    } else {
        for (int i = 0; i < n->ndim; i++) out[i] = n->shape[i];
    }
    lx_node_release(n);
    return d;
}

size_t lx_size(lx_array a) {
    lx_node *n = lx_handle_get(a, "lx_size", "a");
    if (!n) return 0;
    size_t s = (size_t)n->size;
    lx_node_release(n);
    return s;
}

size_t lx_nbytes(lx_array a) {
    lx_node *n = lx_handle_get(a, "lx_nbytes", "a");
    if (!n) return 0;
    size_t s = lx_node_nbytes(n);
    lx_node_release(n);
    return s;
}

lx_dtype lx_dtype_of(lx_array a) {
    lx_node *n = lx_handle_get(a, "lx_dtype_of", "a");
    if (!n) return LX_FLOAT32;
    lx_dtype t = (lx_dtype)n->dtype;
    lx_node_release(n);
    return t;
}

lx_device lx_device_of(lx_array a) {
    lx_node *n = lx_handle_get(a, "lx_device_of", "a");
    if (!n) return LX_CPU;
    lx_device d = (lx_device)n->device;
    lx_node_release(n);
    return d;
}

bool lx_is_evaluated(lx_array a) {
    lx_node *n = lx_handle_peek(a);
    if (!n) return false;
    bool r = lx_node_state_of(n) == LX_NODE_READY;
    lx_node_release(n);
    return r;
}
