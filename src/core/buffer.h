/*
 * buffer.h -- reference-counted data buffers and the caching allocator.
 *
 * A buffer is a block of device memory (host memory for the CPU) shared by an array and its
 * views. Buffers from the allocator return to a size-bucketed cache when released; buffers
 * that wrap outside memory (a mapped file) call their owner's release hook instead and are
 * never donated or written.
 */
#ifndef LX_CORE_BUFFER_H
#define LX_CORE_BUFFER_H

#include <stdatomic.h>
#include <stddef.h>

#include "lx.h"

typedef struct lx_buffer {
    _Atomic uint32_t refs;
    uint8_t device;    /* lx_device */
    uint8_t external;  /* not from the allocator: read-only, never donated */
    void *ptr;         /* device address (host address for the CPU) */
    size_t size;       /* bytes asked for: what active memory counts */
    size_t capacity;   /* bytes of the block */
    void (*release)(void *owner); /* external buffers: called when the last ref goes */
    void *owner;
    /* The completion event of the kernel that last wrote it, on an asynchronous device (else
     * NULL): host reads and other devices wait for it (eval/eval.c). */
    struct lx_event *_Atomic write_event;
    /* References held only until launched kernels complete (eval's completions): work on a
     * device's one queue runs in order, so they do not stop a later kernel on that queue
     * from writing the buffer in place (donation). */
    _Atomic uint32_t inflight_refs;
    struct lx_buffer *lru_prev, *lru_next; /* allocator cache: global LRU order */
    struct lx_buffer *cls_prev, *cls_next; /* allocator cache: same size class */
} lx_buffer;

/* Raw device memory, provided by each device (backend/device.h) when it is registered. */
typedef struct lx_device_memory {
    void *ctx; /* passed back to alloc and free: the device */
    void *(*alloc)(void *ctx, size_t nbytes);
    void (*free)(void *ctx, void *ptr, size_t nbytes);
    size_t total;  /* bytes the device has: the default limits are fractions of it */
} lx_device_memory;

void lx_allocator_register(lx_device d, const lx_device_memory *mem);
/* Whether a device was registered (the eval layer starts the devices before first use). */
bool lx_allocator_registered(lx_device d);
/* Called when an allocation would pass the memory limit, before giving up: waits for work in
 * flight (whose buffers it may release). Set by the eval layer. */
void lx_allocator_set_pressure_hook(void (*hook)(void));

/* A new buffer with one reference, or NULL with the thread error set (LX_E_OOM). */
lx_buffer *lx_buffer_alloc(lx_device d, size_t nbytes);
/* ... where may_wait false skips the wait for work in flight before LX_E_OOM: for threads
 * that work for an evaluation (a kernel's pool helpers), which must not wait for it. */
lx_buffer *lx_buffer_alloc_ex(lx_device d, size_t nbytes, bool may_wait);
/* Wraps outside memory; release(owner) is called when the last reference goes. */
lx_buffer *lx_buffer_wrap(lx_device d, void *ptr, size_t nbytes, void (*release)(void *owner),
                          void *owner);
static inline void lx_buffer_retain(lx_buffer *b) {
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}
void lx_buffer_release(lx_buffer *b);

/* Accounting of one device (lx_active_memory etc. report the default device). */
size_t lx_allocator_active(lx_device d);

#endif
