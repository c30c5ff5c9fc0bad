/*
 * stub_device.h -- what the test stub device module (liblx-stub.so, stub_device.c) exports
 * besides its entry point, for tests that look inside it: counters of what lx asked of it and
 * the contract violations it caught. A test reaches these through dlopen(RTLD_NOLOAD) of the
 * module lx loaded and dlsym (the module is not linked into the test).
 */
#ifndef LX_TESTS_STUB_DEVICE_H
#define LX_TESTS_STUB_DEVICE_H

#include <stddef.h>
#include <stdint.h>

typedef struct lx_stub_stats {
    uint64_t kernels_queued;    /* kernels lx called that were queued to the worker */
    uint64_t kernels_run;       /* ... that the worker has run */
    uint64_t kernels_refused;   /* kernel calls refused (bad pointer, unsupported node ...) */
    uint64_t copies_to_host, copies_from_host, copies, memsets;
    uint64_t imports, releases;
    uint64_t allocs, frees;
    uint64_t live_blocks;       /* alloc'd and imported blocks not yet freed / released */
    uint64_t live_bytes;
    uint64_t live_imports;
    uint64_t live_events;       /* recorded and not freed */
    uint64_t events_recorded;
    uint64_t slice_updates_in_place; /* SLICE_UPDATE run over a donated input (no copy of a) */
    uint64_t slice_updates_copied;   /* ... that copied a into a fresh output first */
    uint64_t free_size_mismatches; /* free(nbytes) other than the block's alloc size */
    uint64_t violations;        /* contract violations caught (message below) */
    char first_violation[512];
    char last_violation[512];
} lx_stub_stats;

/* Fills *out (a consistent snapshot). */
typedef void (*lx_stub_get_stats_fn)(lx_stub_stats *out);
#define LX_STUB_GET_STATS "lx_stub_get_stats"
/* How many kernels of primitive `prim` were queued so far. */
typedef uint64_t (*lx_stub_kernel_count_fn)(int prim);
#define LX_STUB_KERNEL_COUNT "lx_stub_kernel_count"

#endif
