/*
 * device.h -- the versioned interface between lx and a device: what a device module implements
 * and what lx lends it.
 *
 * A device is a table: kernels indexed by primitive, memory (alloc, free, copies between host
 * and device, memset, importing a host range such as a mapped weight file), events, a
 * supports() test and memory information. The CPU backend (backend/cpu/, linked into liblx)
 * is one such table; other devices come from shared modules found next to liblx at start
 * (backend/registry.c) whose entry point LX_DEVICE_MODULE_ENTRY returns them. liblx is built
 * with hidden visibility, so a module reaches lx only through the lx_core_api it is handed:
 * nothing here assumes the module links against liblx's internals.
 *
 * Graph data crosses the interface as lx_node (core/node.h) and lx_buffer (core/buffer.h):
 * their layouts are part of the interface version, as are the primitive numbers and
 * parameter structs (graph/prims*.h). Any change to those bumps LX_DEVICE_API_VERSION; a
 * module built for another version is refused (and lx info says so).
 *
 * Kernels. A kernel computes one node on its device: inputs are READY on that device
 * (buffers, strides and offsets set, possibly non-contiguous or broadcast with zero strides);
 * the eval layer has allocated the node's row-contiguous output (out->buf, offset 0) unless
 * the primitive is a view. It returns LX_OK, or an error status after setting a message with
 * core->set_error. A synchronous device (event_record NULL) has finished when the kernel
 * returns; an asynchronous one may only have queued the work: lx then records an event and
 * keeps the inputs' buffers (and the kernel's scratch) alive until that event completes.
 */
#ifndef LX_BACKEND_DEVICE_H
#define LX_BACKEND_DEVICE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buffer.h"
#include "core/node.h"
#include "graph/prims.h"

/* Version 1: this file, core/node.h's lx_node, core/buffer.h's lx_buffer, graph/prims*.h. */
#define LX_DEVICE_API_VERSION 1u
/* The symbol a module exports (type lx_device_module_init_fn). */
#define LX_DEVICE_MODULE_ENTRY "lx_device_module_init"

typedef struct lx_device_impl lx_device_impl;
typedef struct lx_event lx_event; /* defined by each device */

/* The context of one kernel call. A device may keep per-call state in `stream`. */
typedef struct lx_kctx {
    const lx_device_impl *dev;
    void *stream;            /* the device's queue for this evaluation (NULL on the CPU) */
    /* Scratch taken through lx_core_api.scratch: released after the kernel (synchronous
     * devices) or once its event has completed. Owned by lx. */
    lx_buffer *scratch_inline[4];
    lx_buffer **scratch;
    int n_scratch, cap_scratch;
    void *scratch_lock;      /* lx's, for kernels that take scratch from several threads */
    pthread_t thread;        /* the thread running the kernel (others must not wait on memory
                              * pressure: the evaluation they work for is what they'd wait for) */
} lx_kctx;

typedef lx_status (*lx_kernel_fn)(lx_kctx *ctx, lx_node *out);

/* What lx lends a module. Every function is safe to call from any thread. */
typedef struct lx_core_api {
    uint32_t version;        /* LX_DEVICE_API_VERSION */
    uint32_t size;           /* sizeof(lx_core_api): later versions only append */
    /* Records the calling thread's error (as lx_error reports it) and returns st. */
    lx_status (*set_error)(lx_status st, const char *fmt, ...);
    lx_status (*set_error_v)(lx_status st, const char *fmt, va_list ap);
    /* nbytes of device memory from lx's caching allocator for the current kernel: valid until
     * the kernel's work has completed, then returned to the cache. NULL with LX_E_OOM set. */
    void *(*scratch)(lx_kctx *ctx, size_t nbytes);
    const char *(*prim_name)(int prim);
    /* The value of an LX_* environment setting, or NULL (modules read none directly). */
    const char *(*getenv)(const char *name);
} lx_core_api;

struct lx_device_impl {
    uint32_t api_version;    /* LX_DEVICE_API_VERSION the device was built against */
    uint32_t size;           /* sizeof(lx_device_impl) */
    /* The layouts the device was built with (LX_DEVICE_LAYOUT fills them): a module built
     * against other headers is refused even if someone forgot to bump the version. */
    uint32_t node_size, buffer_size, prim_count;
    const char *name;        /* short: "cpu", "cuda", "stub" */
    const char *description; /* for lx info: kernel variant, device name, capability (no
                              * "; ": lx_backend_info separates its parts with it) */
    lx_device kind;          /* the public device it serves: LX_CPU or LX_GPU */
    int score;               /* among the devices of one kind, the highest usable wins */
    void *state;             /* the module's own */

    /* [LX_PRIM_COUNT]: NULL entries are primitives the device leaves out. COPY is required.
     * A node whose primitive the device leaves out (or does not support()) is built from the
     * primitive's fallback (graph/prim_info.h) or runs on the CPU with transfers around it. */
    const lx_kernel_fn *kernels;
    /* Whether the device computes this (LAZY, fully described) node; NULL: kernels[prim]. */
    bool (*supports)(const lx_device_impl *dev, const lx_node *n);

    /* ---- memory. Addresses are the device's; `host_visible` devices' are host addresses
     * (reads and writes then need no copy). Copies are ordered after the work queued so far
     * and complete before they return. ---- */
    bool host_visible;
    void *(*alloc)(const lx_device_impl *dev, size_t nbytes);  /* NULL if out of memory */
    void (*free)(const lx_device_impl *dev, void *ptr, size_t nbytes);
    lx_status (*copy_to_host)(const lx_device_impl *dev, void *host_dst, const void *src,
                              size_t nbytes);
    lx_status (*copy_from_host)(const lx_device_impl *dev, void *dst, const void *host_src,
                                size_t nbytes);
    lx_status (*copy)(const lx_device_impl *dev, void *dst, const void *src, size_t nbytes);
    lx_status (*memset)(const lx_device_impl *dev, void *dst, int value, size_t nbytes);
    /* A device address holding the host range [host, host + nbytes) (a mapped weight file),
     * which lx only reads: the same address when the device reads host memory, else an
     * upload. release_import(dev, *dev_ptr, nbytes) when lx no longer needs it. */
    lx_status (*import_host)(const lx_device_impl *dev, const void *host, size_t nbytes,
                             void **dev_ptr);
    void (*release_import)(const lx_device_impl *dev, void *dev_ptr, size_t nbytes);
    /* Free and total bytes of device memory (host RAM for the CPU). */
    lx_status (*memory_info)(const lx_device_impl *dev, size_t *free_bytes, size_t *total_bytes);

    /* ---- completion. All NULL for a synchronous device. ---- */
    lx_event *(*event_record)(const lx_device_impl *dev, void *stream); /* NULL if OOM */
    lx_status (*event_wait)(const lx_device_impl *dev, lx_event *e);   /* blocks the host */
    bool (*event_query)(const lx_device_impl *dev, lx_event *e);       /* completed? */
    void (*event_free)(const lx_device_impl *dev, lx_event *e);
    lx_status (*synchronize)(const lx_device_impl *dev);               /* all queued work */

    void (*shutdown)(const lx_device_impl *dev); /* at exit; may be NULL */
};

/* The first fields of every lx_device_impl initializer: version and layouts. */
#define LX_DEVICE_LAYOUT                                                                      \
    .api_version = LX_DEVICE_API_VERSION, .size = sizeof(lx_device_impl),                    \
    .node_size = sizeof(lx_node), .buffer_size = sizeof(lx_buffer), .prim_count = LX_PRIM_COUNT

/* A module's entry point. It checks api_version (a module refuses versions it was not built
 * for), keeps `core`, and fills devices[0 .. n) with n <= max_devices of its devices (with
 * their scores), returning n. 0 devices is not an error: it writes why (no driver, no
 * device, ...) into why[why_size] for lx info. */
typedef int (*lx_device_module_init_fn)(uint32_t api_version, const lx_core_api *core,
                                         const lx_device_impl **devices, int max_devices,
                                         char *why, size_t why_size);

/* ---- for lx's own layers (not modules) ---- */

/* The device that computes for `d` (LX_CPU is always present; LX_GPU when a module gave
 * one), initialising the devices on first use. */
const lx_device_impl *lx_device_get(lx_device d);
/* The core functions lx lends modules (also used by the built-in CPU device). */
const lx_core_api *lx_core_api_get(void);
/* Finds and initialises the devices once (the CPU variant, then modules). */
void lx_devices_init(void);
/* Scratch for the kernel running with ctx (what lx_core_api.scratch does): thread-safe, so a
 * kernel's pool tasks may each take their own; NULL with LX_E_OOM set. */
void *lx_kernel_scratch(lx_kctx *ctx, size_t nbytes);
/* Whether `dev` computes node n (its supports() or its table). */
bool lx_device_supports(const lx_device_impl *dev, const lx_node *n);

#endif
