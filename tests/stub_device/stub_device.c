/*
 * stub_device.c -- a second device for the tests: liblx-stub.so, a device module (backend/
 * device.h) that serves LX_GPU on the host, built to catch lx treating a device as the CPU.
 *
 * - Its own memory: host RAM, but declared host_visible = false, so lx must move data with
 *   copy_to_host / copy_from_host / import_host (an actual copy; release_import frees it).
 *   Fresh blocks are filled with a poison pattern (bytes A5 7F: NaN in float16, bfloat16 and
 *   float32, ~1e307 in float64), so data lx forgot to upload reads as NaN. Every block is in
 *   a registry: a kernel or copy handed an address that is not inside a live stub block (a
 *   host pointer, a freed block) fails with LX_E_DEVICE naming the node and the address.
 *   With LX_STUB_ADDR=opaque the addresses lx sees are the blocks' host addresses plus 2^62
 *   (non-canonical on x86-64): lx dereferencing device memory as host memory then faults at
 *   once instead of silently working. With LX_STUB_HOST_VISIBLE=1 it declares host_visible
 *   instead (a unified-memory device): lx then reads and writes its memory in place, which
 *   is right only after waiting for the buffer's write_event (a kernel's output is poisoned
 *   when the kernel is queued, so a read that did not wait sees NaNs), and import_host is
 *   the host range itself.
 * - Asynchronous: kernels validate the node and capture everything they need (addresses,
 *   strides, shape, params: the node may be detached before the work runs) on lx's thread,
 *   then queue the work to the module's one worker thread (one queue per device; `stream` is
 *   ignored: it must be NULL or the device's state). event_record gives an event that completes
 *   once everything queued before it has run. Copies, memset and import wait for the queued
 *   work first. A block freed (free / release_import) while queued work still uses it is a
 *   violation: its memory is kept until that work has run, the violation is printed, counted
 *   (lx_stub_get_stats) and returned as LX_E_DEVICE by the next synchronize / event_wait.
 *   LX_STUB_DELAY_US=n makes the worker sleep n microseconds before each kernel, which widens
 *   the window in which lx could read or release too early.
 * - Few primitives: COPY (every dtype pair, strided and reshaping inputs), FULL (every dtype),
 *   UNARY and BINARY in float32 for a subset of ops (stub_unary_ok / stub_binary_ok), MATMUL
 *   float32 (a plain triple loop accumulating in double, optional alpha/beta/c; B is packed
 *   into kernel scratch from core->scratch, which must be stub memory and must stay alive
 *   until the work has run). supports() refuses the rest, so everything else reaches it
 *   through fallbacks and transfers.
 * - Environment (read through core->getenv): LX_STUB_FAIL=init (no device, with a reason),
 *   =score0 (a device scoring itself unusable), =table (a table without COPY), =version (a
 *   device claiming another interface version): the loader's refusals. LX_STUB_MEMORY_MB (the
 *   capacity, default 1024).
 *
 * Not linked against liblx: it reaches lx only through the lx_core_api it is handed and the
 * static inline functions of the headers (values.h, elementwise_ops.h), so the results of its
 * elementwise kernels are the CPU's bits.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/device.h"
#include "graph/elementwise_ops.h"
#include "graph/prims.h"
#include "stub_device.h"

#define STUB_POISON_LO 0xA5u
#define STUB_POISON_HI 0x7Fu
#define STUB_OPAQUE_OFFSET ((uintptr_t)1 << 62)
#define STUB_EVENT_MAGIC 0x57ab3e7eu
#define STUB_EVENT_DEAD 0xdeadbeefu
#define STUB_MAX_VIOLATION_PRINTS 20

static const lx_core_api *core;

/* ---- dtype sizes (lx_dtype_size is liblx's, not ours to call) ---- */

static size_t dsize(int t) {
    switch (t) {
#define X(E, T, S) case E: return sizeof(LX_ST_##S);
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: return 0;
    }
}

static const char *dname(int t) {
    static const char *names[LX_DTYPE_COUNT] = {
        "bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
        "int32", "int64", "float16", "bfloat16", "float32", "float64"};
    return t >= 0 && t < LX_DTYPE_COUNT ? names[t] : "?";
}

static const char *pname(int prim) { return core && core->prim_name ? core->prim_name(prim) : "?"; }

/* ---- the block registry: every live block, sorted by device address ---- */

typedef struct block {
    uintptr_t addr;   /* what lx sees */
    size_t size;      /* bytes asked for */
    unsigned char *real;
    bool imported;
    bool borrowed;    /* host-visible mode: an import of host memory in place (not freed) */
    bool zombie;      /* freed by lx while queued work still used it */
    int pending;      /* queued jobs that use it */
} block;

typedef struct job job;

typedef struct {
    /* registry */
    pthread_mutex_t reg_lock;
    block **blocks;
    size_t n_blocks, cap_blocks;
    uint64_t live_bytes, live_imports, allocs, frees, imports, releases, size_mismatches;
    /* queue */
    pthread_mutex_t q_lock;
    pthread_cond_t q_work, q_done;
    job *q_head, *q_tail;
    uint64_t submitted, completed;
    bool worker_started, stop;
    pthread_t worker;
    /* counters */
    _Atomic uint64_t kernels_queued, kernels_run, kernels_refused, copies_to_host,
        copies_from_host, copies, memsets, live_events, events_recorded, su_in_place, su_copied;
    _Atomic uint64_t by_prim[LX_PRIM_COUNT];
    /* violations */
    pthread_mutex_t v_lock;
    uint64_t violations;
    bool unreported;
    char first_violation[512], last_violation[512];
    /* settings */
    bool opaque;
    bool host_visible;     /* LX_STUB_HOST_VISIBLE=1 */
    _Atomic long delay_us; /* read by the worker; an init may set it again */
    size_t capacity;
} stub_state;

static stub_state G = {
    .reg_lock = PTHREAD_MUTEX_INITIALIZER,
    .q_lock = PTHREAD_MUTEX_INITIALIZER,
    .q_work = PTHREAD_COND_INITIALIZER,
    .q_done = PTHREAD_COND_INITIALIZER,
    .v_lock = PTHREAD_MUTEX_INITIALIZER,
};

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&G.v_lock);
    if (G.violations == 0) snprintf(G.first_violation, sizeof G.first_violation, "%s", msg);
    snprintf(G.last_violation, sizeof G.last_violation, "%s", msg);
    bool print = G.violations < STUB_MAX_VIOLATION_PRINTS;
    G.violations++;
    G.unreported = true;
    pthread_mutex_unlock(&G.v_lock);
    if (print) fprintf(stderr, "lx stub device: contract violation: %s\n", msg);
}

/* LX_E_DEVICE with the first violation not yet reported, else LX_OK. */
static lx_status report_violations(const char *where) {
    pthread_mutex_lock(&G.v_lock);
    bool un = G.unreported;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", G.last_violation);
    uint64_t n = G.violations;
    G.unreported = false;
    pthread_mutex_unlock(&G.v_lock);
    if (!un) return LX_OK;
    return core->set_error(LX_E_DEVICE, "stub %s: %" PRIu64 " contract violation(s), the last: %s",
                           where, n, msg);
}

/* Index of the first block with addr > a. Caller holds reg_lock. */
static size_t reg_upper(uintptr_t a) {
    size_t lo = 0, hi = G.n_blocks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (G.blocks[mid]->addr <= a) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The live block holding [a, a + len), or NULL. Caller holds reg_lock. */
static block *reg_find(uintptr_t a, size_t len) {
    size_t i = reg_upper(a);
    if (i == 0) return NULL;
    block *b = G.blocks[i - 1];
    if (a - b->addr > b->size || len > b->size - (a - b->addr)) return NULL;
    if (len == 0 && a == b->addr + b->size && b->size) return NULL; /* one past the end */
    return b;
}

/* The live block starting exactly at a, with its index, or NULL. Caller holds reg_lock. */
static block *reg_exact(uintptr_t a, size_t *index) {
    size_t i = reg_upper(a);
    if (i == 0 || G.blocks[i - 1]->addr != a) return NULL;
    *index = i - 1;
    return G.blocks[i - 1];
}

static bool reg_insert(block *b) {
    pthread_mutex_lock(&G.reg_lock);
    if (G.n_blocks == G.cap_blocks) {
        size_t cap = G.cap_blocks ? G.cap_blocks * 2 : 256;
        block **p = realloc(G.blocks, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&G.reg_lock);
            return false;
        }
        G.blocks = p;
        G.cap_blocks = cap;
    }
    size_t i = reg_upper(b->addr);
    memmove(G.blocks + i + 1, G.blocks + i, (G.n_blocks - i) * sizeof *G.blocks);
    G.blocks[i] = b;
    G.n_blocks++;
    G.live_bytes += b->size;
    if (b->imported) {
        G.live_imports++;
        G.imports++;
    } else {
        G.allocs++;
    }
    pthread_mutex_unlock(&G.reg_lock);
    return true;
}

static void block_destroy(block *b) {
    if (!b->borrowed) free(b->real);
    free(b);
}

/* Whether [p, p + len) (a host address lx passes as host memory) overlaps a live block. */
static bool is_device_range(const void *p, size_t len) {
    uintptr_t a = (uintptr_t)p;
    pthread_mutex_lock(&G.reg_lock);
    bool hit = reg_find(a, len ? 1 : 0) != NULL;
    if (!hit && len) hit = reg_find(a + len - 1, 1) != NULL;
    pthread_mutex_unlock(&G.reg_lock);
    return hit;
}

/* ---- memory ---- */

static block *block_new(size_t nbytes, bool imported) {
    block *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    size_t cap = (nbytes + 63) / 64 * 64;
    if (cap == 0) cap = 64;
    b->real = aligned_alloc(64, cap);
    if (!b->real) {
        free(b);
        return NULL;
    }
    for (size_t i = 0; i < cap; i += 2) {
        b->real[i] = STUB_POISON_LO;
        b->real[i + 1] = STUB_POISON_HI;
    }
    b->size = nbytes;
    b->imported = imported;
    b->addr = (uintptr_t)b->real + (G.opaque ? STUB_OPAQUE_OFFSET : 0);
    return b;
}

static void *stub_alloc(const lx_device_impl *dev, size_t nbytes) {
    (void)dev;
    pthread_mutex_lock(&G.reg_lock);
    bool full = nbytes > G.capacity || G.live_bytes > G.capacity - nbytes;
    pthread_mutex_unlock(&G.reg_lock);
    if (full) return NULL;
    block *b = block_new(nbytes, false);
    if (!b) return NULL;
    if (!reg_insert(b)) {
        block_destroy(b);
        return NULL;
    }
    return (void *)b->addr;
}

/* Removes the block at p (free or release_import); keeps its memory while queued work uses
 * it (a violation). */
static void block_release(const void *p, size_t nbytes, bool imported, const char *what) {
    size_t i;
    pthread_mutex_lock(&G.reg_lock);
    block *b = reg_exact((uintptr_t)p, &i);
    if (!b) {
        pthread_mutex_unlock(&G.reg_lock);
        violation("%s(%p, %zu): not the start of a live stub block (a host pointer, a block "
                  "freed twice, or an address inside a block)", what, p, nbytes);
        return;
    }
    if (b->imported != imported) {
        pthread_mutex_unlock(&G.reg_lock);
        violation("%s(%p, %zu): the block came from %s", what, p, nbytes,
                  b->imported ? "import_host (release it with release_import)"
                              : "alloc (free it with free)");
        return;
    }
    if (nbytes != b->size) G.size_mismatches++;
    memmove(G.blocks + i, G.blocks + i + 1, (G.n_blocks - i - 1) * sizeof *G.blocks);
    G.n_blocks--;
    G.live_bytes -= b->size;
    if (imported) {
        G.live_imports--;
        G.releases++;
    } else {
        G.frees++;
    }
    int pending = b->pending;
    size_t size = b->size;
    if (pending) b->zombie = true; /* the worker frees it once that work has run */
    pthread_mutex_unlock(&G.reg_lock);
    if (pending)
        violation("%s(%p, %zu bytes) while %d queued kernel(s) still use the block: lx released "
                  "it before their events completed", what, p, size, pending);
    else
        block_destroy(b);
}

static void stub_free(const lx_device_impl *dev, void *ptr, size_t nbytes) {
    (void)dev;
    if (!ptr) return;
    block_release(ptr, nbytes, false, "free");
}

/* ---- the queue ---- */

enum { MAX_IN = 3 };

struct job {
    job *next;
    int prim, op;
    int out_dtype, in_dtype;
    int ndim;                    /* the iteration shape (COPY: the input's) */
    int64_t shape[LX_MAX_NDIM];
    int64_t size;
    unsigned char *out;          /* host address of the row-contiguous output */
    int n_in;
    const unsigned char *in[MAX_IN];
    int64_t st[MAX_IN][LX_MAX_NDIM]; /* element strides over the iteration dims */
    double value;                /* FULL */
    /* SLICE_UPDATE: the update's shape and strides (upd_*), the slice's start and step */
    int upd_ndim;
    int64_t upd_shape[LX_MAX_NDIM], upd_st[LX_MAX_NDIM], start[LX_MAX_NDIM], step[LX_MAX_NDIM];
    /* MATMUL: a [.., M, K] b [.., K, N] c [.., M, N]; batch strides in st[i][0 .. ndim-2) */
    int64_t M, N, K, a_sm, a_sk, b_sk, b_sn, c_sm, c_sn;
    float alpha, beta;
    bool scaled;
    float *packed;               /* MATMUL: kernel scratch (lx's, device memory) for B packed */
    block *blocks[MAX_IN + 2];
    int n_blocks;
};

static void run_job(job *j);

static void *worker_main(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&G.q_lock);
        while (!G.q_head && !G.stop) pthread_cond_wait(&G.q_work, &G.q_lock);
        if (!G.q_head) {
            pthread_mutex_unlock(&G.q_lock);
            return NULL;
        }
        job *j = G.q_head;
        G.q_head = j->next;
        if (!G.q_head) G.q_tail = NULL;
        pthread_mutex_unlock(&G.q_lock);

        long delay = atomic_load(&G.delay_us);
        if (delay > 0) {
            struct timespec ts = {delay / 1000000, (delay % 1000000) * 1000};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
        run_job(j);
        atomic_fetch_add(&G.kernels_run, 1);
        block *dead[MAX_IN + 2];
        int n_dead = 0;
        pthread_mutex_lock(&G.reg_lock);
        for (int i = 0; i < j->n_blocks; i++) {
            block *b = j->blocks[i];
            if (--b->pending == 0 && b->zombie) dead[n_dead++] = b;
        }
        pthread_mutex_unlock(&G.reg_lock);
        for (int i = 0; i < n_dead; i++) block_destroy(dead[i]);
        free(j);

        pthread_mutex_lock(&G.q_lock);
        G.completed++;
        pthread_cond_broadcast(&G.q_done);
        pthread_mutex_unlock(&G.q_lock);
    }
}

/* Starts the worker on first use (not at init: a module the loader refuses is unloaded). */
static lx_status enqueue(job *j) {
    pthread_mutex_lock(&G.q_lock);
    if (!G.worker_started) {
        if (pthread_create(&G.worker, NULL, worker_main, NULL) != 0) {
            pthread_mutex_unlock(&G.q_lock);
            return core->set_error(LX_E_DEVICE, "stub: cannot start its worker thread");
        }
        G.worker_started = true;
    }
    j->next = NULL;
    if (G.q_tail) G.q_tail->next = j;
    else G.q_head = j;
    G.q_tail = j;
    G.submitted++;
    pthread_cond_signal(&G.q_work);
    pthread_mutex_unlock(&G.q_lock);
    atomic_fetch_add(&G.kernels_queued, 1);
    return LX_OK;
}

/* Waits until the jobs queued so far (or up to `seq`) have run. */
static void wait_seq(uint64_t seq) {
    pthread_mutex_lock(&G.q_lock);
    while (G.completed < seq) pthread_cond_wait(&G.q_done, &G.q_lock);
    pthread_mutex_unlock(&G.q_lock);
}

static void wait_queued(void) {
    pthread_mutex_lock(&G.q_lock);
    uint64_t seq = G.submitted;
    while (G.completed < seq) pthread_cond_wait(&G.q_done, &G.q_lock);
    pthread_mutex_unlock(&G.q_lock);
}

/* ---- copies ---- */

/* The host address of device range [p, p + n), or NULL after setting an error. */
static unsigned char *device_range(const void *p, size_t n, const char *what) {
    pthread_mutex_lock(&G.reg_lock);
    block *b = reg_find((uintptr_t)p, n);
    unsigned char *r = b ? b->real + ((uintptr_t)p - b->addr) : NULL;
    pthread_mutex_unlock(&G.reg_lock);
    if (!r)
        core->set_error(LX_E_DEVICE, "stub %s: %p (%zu bytes) is not inside a live stub block "
                        "(a host pointer or a freed block given as device memory)", what, p, n);
    return r;
}

static lx_status check_host(const void *p, size_t n, const char *what) {
    if (!p) return core->set_error(LX_E_DEVICE, "stub %s: host address NULL", what);
    if (G.host_visible) return LX_OK; /* host and device addresses are one space */
    if (is_device_range(p, n))
        return core->set_error(LX_E_DEVICE, "stub %s: the host address %p is stub device memory "
                               "(a device pointer given as host memory)", what, p);
    return LX_OK;
}

static lx_status stub_copy_to_host(const lx_device_impl *dev, void *host_dst, const void *src,
                                   size_t n) {
    (void)dev;
    if (n == 0) return LX_OK;
    wait_queued();
    lx_status st = check_host(host_dst, n, "copy_to_host");
    if (st) return st;
    unsigned char *s = device_range(src, n, "copy_to_host");
    if (!s) return LX_E_DEVICE;
    memcpy(host_dst, s, n);
    atomic_fetch_add(&G.copies_to_host, 1);
    return LX_OK;
}

static lx_status stub_copy_from_host(const lx_device_impl *dev, void *dst, const void *host_src,
                                     size_t n) {
    (void)dev;
    if (n == 0) return LX_OK;
    wait_queued();
    lx_status st = check_host(host_src, n, "copy_from_host");
    if (st) return st;
    unsigned char *d = device_range(dst, n, "copy_from_host");
    if (!d) return LX_E_DEVICE;
    memcpy(d, host_src, n);
    atomic_fetch_add(&G.copies_from_host, 1);
    return LX_OK;
}

static lx_status stub_copy(const lx_device_impl *dev, void *dst, const void *src, size_t n) {
    (void)dev;
    if (n == 0) return LX_OK;
    wait_queued();
    unsigned char *d = device_range(dst, n, "copy (destination)");
    if (!d) return LX_E_DEVICE;
    unsigned char *s = device_range(src, n, "copy (source)");
    if (!s) return LX_E_DEVICE;
    memmove(d, s, n);
    atomic_fetch_add(&G.copies, 1);
    return LX_OK;
}

static lx_status stub_memset(const lx_device_impl *dev, void *dst, int value, size_t n) {
    (void)dev;
    if (n == 0) return LX_OK;
    wait_queued();
    unsigned char *d = device_range(dst, n, "memset");
    if (!d) return LX_E_DEVICE;
    memset(d, value, n);
    atomic_fetch_add(&G.memsets, 1);
    return LX_OK;
}

static lx_status stub_import_host(const lx_device_impl *dev, const void *host, size_t n,
                                  void **dev_ptr) {
    (void)dev;
    if (!dev_ptr) return core->set_error(LX_E_DEVICE, "stub import_host: dev_ptr is NULL");
    if (n) {
        lx_status st = check_host(host, n, "import_host");
        if (st) return st;
    }
    block *b;
    if (G.host_visible && n) { /* the device reads host memory: the same address, no copy */
        b = calloc(1, sizeof *b);
        if (b) {
            b->real = (unsigned char *)(uintptr_t)host;
            b->addr = (uintptr_t)host;
            b->size = n;
            b->imported = b->borrowed = true;
        }
    } else {
        b = block_new(n, true);
        if (b && n) memcpy(b->real, host, n);
    }
    if (!b) return core->set_error(LX_E_OOM, "stub import_host: out of memory (%zu bytes)", n);
    if (!reg_insert(b)) {
        block_destroy(b);
        return core->set_error(LX_E_OOM, "stub import_host: out of memory");
    }
    *dev_ptr = (void *)b->addr;
    return LX_OK;
}

static void stub_release_import(const lx_device_impl *dev, void *dev_ptr, size_t n) {
    (void)dev;
    if (!dev_ptr) return;
    block_release(dev_ptr, n, true, "release_import");
}

static lx_status stub_memory_info(const lx_device_impl *dev, size_t *free_bytes, size_t *total) {
    (void)dev;
    pthread_mutex_lock(&G.reg_lock);
    *total = G.capacity;
    *free_bytes = G.live_bytes < G.capacity ? G.capacity - G.live_bytes : 0;
    pthread_mutex_unlock(&G.reg_lock);
    return LX_OK;
}

/* ---- events ---- */

struct lx_event {
    uint32_t magic;
    uint64_t seq;
};

static lx_event *stub_event_record(const lx_device_impl *dev, void *stream) {
    if (stream && stream != dev->state) {
        violation("event_record: stream %p is not the stub's queue (NULL or the device's "
                  "state %p)", stream, dev->state);
    }
    lx_event *e = malloc(sizeof *e);
    if (!e) return NULL;
    e->magic = STUB_EVENT_MAGIC;
    pthread_mutex_lock(&G.q_lock);
    e->seq = G.submitted;
    pthread_mutex_unlock(&G.q_lock);
    atomic_fetch_add(&G.live_events, 1);
    atomic_fetch_add(&G.events_recorded, 1);
    return e;
}

static bool event_ok(const lx_event *e, const char *what) {
    if (e && e->magic == STUB_EVENT_MAGIC) return true;
    violation("%s(%p): not a live stub event%s", what, (const void *)e,
              e && e->magic == STUB_EVENT_DEAD ? " (already freed)" : "");
    return false;
}

static lx_status stub_event_wait(const lx_device_impl *dev, lx_event *e) {
    (void)dev;
    if (!event_ok(e, "event_wait")) return report_violations("event_wait");
    wait_seq(e->seq);
    return report_violations("event_wait");
}

static bool stub_event_query(const lx_device_impl *dev, lx_event *e) {
    (void)dev;
    if (!event_ok(e, "event_query")) return true;
    pthread_mutex_lock(&G.q_lock);
    bool done = G.completed >= e->seq;
    pthread_mutex_unlock(&G.q_lock);
    return done;
}

static void stub_event_free(const lx_device_impl *dev, lx_event *e) {
    (void)dev;
    if (!e) return;
    if (!event_ok(e, "event_free")) return;
    e->magic = STUB_EVENT_DEAD;
    free(e);
    atomic_fetch_sub(&G.live_events, 1);
}

static lx_status stub_synchronize(const lx_device_impl *dev) {
    (void)dev;
    wait_queued();
    return report_violations("synchronize");
}

/* ---- what it computes ---- */

static bool stub_unary_ok(int op) {
    switch (op) {
    case LX_UNARY_NEG: case LX_UNARY_ABS: case LX_UNARY_SQUARE: case LX_UNARY_SQRT:
    case LX_UNARY_RSQRT: case LX_UNARY_RECIPROCAL: case LX_UNARY_EXP: case LX_UNARY_LOG:
    case LX_UNARY_SIN: case LX_UNARY_COS: case LX_UNARY_TANH: case LX_UNARY_SIGMOID:
    case LX_UNARY_SILU: case LX_UNARY_RELU:
        return true;
    default:
        return false; /* erf, gelu, floor ..., the predicates: the CPU's */
    }
}

static bool stub_binary_ok(int op) {
    switch (op) {
    case LX_BINARY_ADD: case LX_BINARY_SUB: case LX_BINARY_MUL: case LX_BINARY_DIV:
    case LX_BINARY_POW: case LX_BINARY_MAXIMUM: case LX_BINARY_MINIMUM:
        return true;
    default:
        return false; /* floor_divide, remainder, arctan2, the comparisons */
    }
}

/* Whether `in`'s shape broadcasts (right-aligned) to `out`'s. */
static bool broadcasts(const lx_node *in, const lx_node *out) {
    if (in->ndim > out->ndim) return false;
    int lead = out->ndim - in->ndim;
    for (int d = 0; d < in->ndim; d++)
        if (in->shape[d] != out->shape[lead + d] && in->shape[d] != 1) return false;
    return true;
}

static bool stub_supports(const lx_device_impl *dev, const lx_node *n) {
    (void)dev;
    if (n->dtype >= LX_DTYPE_COUNT) return false;
    for (int i = 0; i < n->n_inputs; i++)
        if (!n->inputs || !n->inputs[i] || n->inputs[i]->dtype >= LX_DTYPE_COUNT) return false;
    switch (n->prim) {
    case LX_PRIM_COPY:
        return n->n_inputs == 1 && n->inputs[0]->size == n->size;
    case LX_PRIM_FULL:
        return n->n_inputs == 0 && n->params && n->params_size >= sizeof(lx_full_params);
    case LX_PRIM_UNARY: {
        const lx_unary_params *p = n->params;
        return n->dtype == LX_FLOAT32 && n->n_inputs == 1 && p &&
               n->params_size >= sizeof *p && stub_unary_ok(p->op) &&
               n->inputs[0]->dtype == LX_FLOAT32 && broadcasts(n->inputs[0], n);
    }
    case LX_PRIM_BINARY: {
        const lx_binary_params *p = n->params;
        return n->dtype == LX_FLOAT32 && n->n_inputs == 2 && p &&
               n->params_size >= sizeof *p && stub_binary_ok(p->op) &&
               n->inputs[0]->dtype == LX_FLOAT32 && n->inputs[1]->dtype == LX_FLOAT32 &&
               broadcasts(n->inputs[0], n) && broadcasts(n->inputs[1], n);
    }
    case LX_PRIM_SLICE_UPDATE: /* a (node's shape), update (node's dtype), any dtype */
        return n->n_inputs == 2 && n->params && n->params_size >= sizeof(lx_slice_params) &&
               n->inputs[0]->dtype == n->dtype && n->inputs[1]->dtype == n->dtype &&
               n->inputs[0]->ndim == n->ndim && n->inputs[1]->ndim == n->ndim;
    case LX_PRIM_MATMUL: {
        if (n->dtype != LX_FLOAT32 || n->ndim < 2) return false;
        bool scaled = n->params_size >= sizeof(lx_matmul_params) && n->params;
        if (!(n->n_inputs == 2 || (n->n_inputs == 3 && scaled))) return false;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i]->dtype != LX_FLOAT32) return false;
        const lx_node *a = n->inputs[0], *b = n->inputs[1];
        int nd = n->ndim;
        if (a->ndim < 2 || b->ndim < 2 || a->ndim > nd || b->ndim > nd) return false;
        int32_t M = n->shape[nd - 2], N = n->shape[nd - 1], K = a->shape[a->ndim - 1];
        if (a->shape[a->ndim - 2] != M || b->shape[b->ndim - 2] != K ||
            b->shape[b->ndim - 1] != N)
            return false;
        for (int d = 0; d < a->ndim - 2; d++)
            if (a->shape[d] != n->shape[nd - a->ndim + d] && a->shape[d] != 1) return false;
        for (int d = 0; d < b->ndim - 2; d++)
            if (b->shape[d] != n->shape[nd - b->ndim + d] && b->shape[d] != 1) return false;
        return n->n_inputs == 2 || broadcasts(n->inputs[2], n);
    }
    default:
        return false;
    }
}

/* ---- kernels: validate and capture on lx's thread, compute on the worker ---- */

/* Element strides of `in` over out-dims [0, nd) right-aligned (broadcast dims: 0). */
static void aligned_strides(const lx_node *in, int nd, int64_t *st) {
    int lead = nd - in->ndim;
    for (int d = 0; d < nd; d++) {
        int k = d - lead;
        st[d] = (k < 0 || in->shape[k] == 1) ? 0 : in->strides[k];
    }
}

/* Looks up the block holding a READY node's elements and marks it used by job j; the host
 * address of element 0 in *host. Caller holds reg_lock. */
static lx_status capture(job *j, const lx_node *out, const lx_node *n, int which,
                         const unsigned char **host) {
    size_t es = dsize(n->dtype);
    if (n->size == 0 && which >= 0) { /* no elements to read (a K = 0 product) */
        *host = NULL;
        return LX_OK;
    }
    if (!n->buf)
        return core->set_error(LX_E_DEVICE, "stub %s (%s): %s has no buffer", pname(out->prim),
                               out->op ? out->op : "?", which < 0 ? "the output" : "an input");
    int64_t lo = n->offset, hi = n->offset;
    for (int d = 0; d < n->ndim; d++) {
        if (n->shape[d] <= 0) continue;
        int64_t span = (int64_t)(n->shape[d] - 1) * n->strides[d];
        if (span < 0) lo += span;
        else hi += span;
    }
    uintptr_t base = (uintptr_t)n->buf->ptr;
    uintptr_t first = base + (uintptr_t)(lo * (int64_t)es);
    size_t len = (size_t)(hi - lo + 1) * es;
    block *b = reg_find(first, len);
    if (!b) {
        char what[32];
        if (which < 0) snprintf(what, sizeof what, "its output");
        else snprintf(what, sizeof what, "input %d", which);
        return core->set_error(
            LX_E_DEVICE,
            "stub %s (%s): %s (%s, buffer %p on device %d, elements %lld..%lld) is not stub "
            "device memory: lx passed a host pointer or a freed block to the device",
            pname(out->prim), out->op ? out->op : "?", what, dname(n->dtype), n->buf->ptr,
            (int)n->buf->device, (long long)lo, (long long)hi);
    }
    if (which < 0 && b->imported)
        return core->set_error(LX_E_DEVICE, "stub %s (%s): the output is imported (read-only) "
                               "memory", pname(out->prim), out->op ? out->op : "?");
    if (lx_node_state_of(n) != LX_NODE_READY && which >= 0)
        return core->set_error(LX_E_DEVICE, "stub %s (%s): input %d is not READY",
                               pname(out->prim), out->op ? out->op : "?", which);
    *host = b->real + (base - b->addr) + (size_t)(n->offset * (int64_t)es);
    /* the same block twice is fine: each use is counted and released */
    j->blocks[j->n_blocks++] = b;
    return LX_OK;
}

static lx_status stub_kernel(lx_kctx *ctx, lx_node *out) {
    const lx_device_impl *dev = ctx->dev;
    const char *op = out->op ? out->op : "?";
    if (ctx->stream && ctx->stream != dev->state) {
        atomic_fetch_add(&G.kernels_refused, 1);
        return core->set_error(LX_E_DEVICE, "stub %s (%s): stream %p is not the stub's queue",
                               pname(out->prim), op, ctx->stream);
    }
    if (!stub_supports(dev, out)) {
        atomic_fetch_add(&G.kernels_refused, 1);
        return core->set_error(LX_E_DEVICE, "stub %s (%s, %s): a node supports() refuses was "
                               "given to the kernel", pname(out->prim), op, dname(out->dtype));
    }
    if (out->size == 0) return LX_OK;
    /* the output: row-contiguous at offset 0 */
    int64_t expect = 1;
    for (int d = out->ndim - 1; d >= 0; d--) {
        if (out->shape[d] != 1 && out->strides[d] != expect) {
            atomic_fetch_add(&G.kernels_refused, 1);
            return core->set_error(LX_E_DEVICE, "stub %s (%s): the output is not "
                                   "row-contiguous", pname(out->prim), op);
        }
        expect *= out->shape[d];
    }
    job *j = calloc(1, sizeof *j);
    if (!j) return core->set_error(LX_E_OOM, "stub %s: out of host memory", pname(out->prim));
    j->prim = out->prim;
    j->out_dtype = out->dtype;
    j->size = out->size;
    j->n_in = out->n_inputs;
    lx_status st = LX_OK;
    const unsigned char *outp = NULL;
    pthread_mutex_lock(&G.reg_lock);
    st = capture(j, out, out, -1, &outp);
    for (int i = 0; st == LX_OK && i < out->n_inputs; i++)
        st = capture(j, out, out->inputs[i], i, &j->in[i]);
    if (st == LX_OK) {
        /* The output is poisoned now, so a read before this work has run (a write_event not
         * waited for) sees NaNs rather than an older value; not when queued work still uses
         * the block (lx reusing it in queue order) or the node writes over an input
         * (donation). */
        block *ob = j->blocks[0];
        bool poison = ob->pending == 0;
        for (int i = 1; i < j->n_blocks; i++) poison = poison && j->blocks[i] != ob;
        if (poison) {
            size_t nb = (size_t)out->size * dsize(out->dtype);
            unsigned char *o = (unsigned char *)outp;
            for (size_t i = 0; i + 1 < nb; i += 2) {
                o[i] = STUB_POISON_LO;
                o[i + 1] = STUB_POISON_HI;
            }
        }
        for (int i = 0; i < j->n_blocks; i++) j->blocks[i]->pending++;
    }
    pthread_mutex_unlock(&G.reg_lock);
    if (st != LX_OK) {
        atomic_fetch_add(&G.kernels_refused, 1);
        free(j);
        return st;
    }
    j->out = (unsigned char *)outp;

    switch (out->prim) {
    case LX_PRIM_COPY: {
        const lx_node *in = out->inputs[0];
        j->in_dtype = in->dtype;
        j->ndim = in->ndim; /* walked in its own row-major order into the flat output */
        for (int d = 0; d < in->ndim; d++) {
            j->shape[d] = in->shape[d];
            j->st[0][d] = in->strides[d];
        }
        break;
    }
    case LX_PRIM_FULL:
        j->value = ((const lx_full_params *)out->params)->value;
        break;
    case LX_PRIM_SLICE_UPDATE: {
        const lx_node *a = out->inputs[0], *u = out->inputs[1];
        const lx_slice_params *sp = out->params;
        j->ndim = out->ndim;
        j->upd_ndim = u->ndim;
        for (int d = 0; d < out->ndim; d++) {
            j->shape[d] = a->shape[d];
            j->st[0][d] = a->strides[d];
            j->upd_shape[d] = u->shape[d];
            j->upd_st[d] = u->strides[d];
            j->start[d] = sp->start[d];
            j->step[d] = sp->step[d];
        }
        break;
    }
    case LX_PRIM_UNARY:
    case LX_PRIM_BINARY:
        j->op = out->prim == LX_PRIM_UNARY ? ((const lx_unary_params *)out->params)->op
                                           : ((const lx_binary_params *)out->params)->op;
        j->ndim = out->ndim;
        for (int d = 0; d < out->ndim; d++) j->shape[d] = out->shape[d];
        for (int i = 0; i < out->n_inputs; i++) aligned_strides(out->inputs[i], out->ndim, j->st[i]);
        break;
    case LX_PRIM_MATMUL: {
        const lx_node *a = out->inputs[0], *b = out->inputs[1];
        int nd = out->ndim;
        j->ndim = nd - 2; /* the batch dims */
        for (int d = 0; d < nd - 2; d++) j->shape[d] = out->shape[d];
        j->M = out->shape[nd - 2];
        j->N = out->shape[nd - 1];
        j->K = a->shape[a->ndim - 1];
        int64_t st_full[LX_MAX_NDIM];
        aligned_strides(a, nd, st_full);
        memcpy(j->st[0], st_full, sizeof(int64_t) * (size_t)(nd - 2));
        j->a_sm = a->shape[a->ndim - 2] == 1 ? 0 : a->strides[a->ndim - 2];
        j->a_sk = a->strides[a->ndim - 1];
        aligned_strides(b, nd, st_full);
        memcpy(j->st[1], st_full, sizeof(int64_t) * (size_t)(nd - 2));
        j->b_sk = b->strides[b->ndim - 2];
        j->b_sn = b->shape[b->ndim - 1] == 1 ? 0 : b->strides[b->ndim - 1];
        if (out->n_inputs == 3) {
            aligned_strides(out->inputs[2], nd, st_full);
            memcpy(j->st[2], st_full, sizeof(int64_t) * (size_t)(nd - 2));
            j->c_sm = st_full[nd - 2];
            j->c_sn = st_full[nd - 1];
        }
        /* B packed row-major into scratch per batch, so lx's scratch lifetime is exercised:
         * it must stay alive (not be freed to the device) until this work has run */
        if (j->K > 0 && j->N > 0) {
            size_t sn = (size_t)j->K * (size_t)j->N * sizeof(float);
            void *sp = core->scratch ? core->scratch(ctx, sn) : NULL;
            if (!sp) {
                st = core->set_error(LX_E_OOM, "stub MATMUL (%s): no kernel scratch of %zu bytes",
                                     op, sn);
            } else {
                pthread_mutex_lock(&G.reg_lock);
                block *sb = reg_find((uintptr_t)sp, sn);
                if (sb) {
                    j->packed = (float *)(void *)(sb->real + ((uintptr_t)sp - sb->addr));
                    sb->pending++;
                    j->blocks[j->n_blocks++] = sb;
                }
                pthread_mutex_unlock(&G.reg_lock);
                if (!sb)
                    st = core->set_error(LX_E_DEVICE, "stub MATMUL (%s): the kernel scratch lx "
                                         "gave (%p, %zu bytes) is not stub device memory", op, sp,
                                         sn);
            }
            if (st != LX_OK) {
                atomic_fetch_add(&G.kernels_refused, 1);
                pthread_mutex_lock(&G.reg_lock);
                for (int i = 0; i < j->n_blocks; i++) j->blocks[i]->pending--;
                pthread_mutex_unlock(&G.reg_lock);
                free(j);
                return st;
            }
        }
        j->scaled = out->params && out->params_size >= sizeof(lx_matmul_params);
        if (j->scaled) {
            const lx_matmul_params *p = out->params;
            j->alpha = p->alpha;
            j->beta = p->beta;
        }
        break;
    }
    default:
        break; /* not reached: stub_supports */
    }
    if (j->ndim == 0 && out->prim != LX_PRIM_MATMUL && out->prim != LX_PRIM_FULL) {
        j->ndim = 1; /* a scalar: one element */
        j->shape[0] = 1;
        for (int i = 0; i < MAX_IN; i++) j->st[i][0] = 0;
    }
    atomic_fetch_add(&G.by_prim[out->prim], 1);
    st = enqueue(j);
    if (st != LX_OK) {
        pthread_mutex_lock(&G.reg_lock);
        for (int i = 0; i < j->n_blocks; i++) j->blocks[i]->pending--;
        pthread_mutex_unlock(&G.reg_lock);
        free(j);
    }
    return st;
}

/* ---- the worker's side ---- */

typedef union {
    uint64_t u;
    int64_t i;
    float f;
    double d;
} cval;

#define CV_U u
#define CV_I i
#define CV_F f
#define CV_D d
#define CV_(C) LX_ICAT_(CV_, C)

static cval load_val(int t, const unsigned char *p) {
    cval v = {0};
    switch (t) {
#define X(E, T, S)                                                                         \
    case E: {                                                                              \
        LX_ST_##S x;                                                                       \
        memcpy(&x, p, sizeof x);                                                           \
        v.CV_(LX_CLS_##S) = LX_LOAD_##S(x);                                                \
        break;                                                                             \
    }
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: break;
    }
    return v;
}

/* Stores v (of value class cls) as dtype t, converting as values.h says. */
static void store_val(int t, int cls, unsigned char *p, cval v) {
    switch (t) {
#define X(E, T, S)                                                                         \
    case E: {                                                                              \
        LX_ST_##S y;                                                                       \
        switch (cls) {                                                                     \
        case LX_CLASS_U: y = lx_cvt_##S##_U(v.u); break;                                   \
        case LX_CLASS_I: y = lx_cvt_##S##_I(v.i); break;                                   \
        case LX_CLASS_F: y = lx_cvt_##S##_F(v.f); break;                                   \
        default: y = lx_cvt_##S##_D(v.d); break;                                           \
        }                                                                                  \
        memcpy(p, &y, sizeof y);                                                           \
        break;                                                                             \
    }
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: break;
    }
}

/* Offset (elements) of operand k at the row with index idx over dims [0, nd - 1). */
static int64_t row_off(const job *j, int k, const int64_t *idx, int nd) {
    int64_t o = 0;
    for (int d = 0; d < nd - 1; d++) o += idx[d] * j->st[k][d];
    return o;
}

/* Next row index over dims [0, nd - 1). */
static void next_row(const int64_t *shape, int64_t *idx, int nd) {
    for (int d = nd - 2; d >= 0; d--) {
        if (++idx[d] < shape[d]) return;
        idx[d] = 0;
    }
}

static void run_copy(const job *j) {
    size_t ies = dsize(j->in_dtype), oes = dsize(j->out_dtype);
    int nd = j->ndim;
    int64_t inner = j->shape[nd - 1], rows = inner ? j->size / inner : 0;
    int64_t s = j->st[0][nd - 1];
    int64_t idx[LX_MAX_NDIM] = {0};
    bool same = j->in_dtype == j->out_dtype;
    int cls = lx_dtype_class((lx_dtype)j->in_dtype);
    unsigned char *y = j->out;
    for (int64_t r = 0; r < rows; r++) {
        const unsigned char *x = j->in[0] + row_off(j, 0, idx, nd) * (int64_t)ies;
        for (int64_t i = 0; i < inner; i++, y += oes) {
            const unsigned char *xi = x + i * s * (int64_t)ies;
            if (same) memcpy(y, xi, oes); /* NaN payloads and all */
            else store_val(j->out_dtype, cls, y, load_val(j->in_dtype, xi));
        }
        next_row(j->shape, idx, nd);
    }
}

/* SLICE_UPDATE: out = a (unless lx donated a's buffer: then out already is a), then the
 * update written over the slice start + i * step. Data movement only: any dtype. */
static void run_slice_update(const job *j) {
    size_t es = dsize(j->out_dtype);
    int nd = j->ndim;
    atomic_fetch_add(j->out == j->in[0] ? &G.su_in_place : &G.su_copied, 1);
    if (j->out != j->in[0]) { /* a, in its own strides, into the row-contiguous output */
        int64_t idx[LX_MAX_NDIM] = {0};
        for (int64_t i = 0; i < j->size; i++) {
            int64_t o = 0;
            for (int d = 0; d < nd; d++) o += idx[d] * j->st[0][d];
            memcpy(j->out + (size_t)i * es, j->in[0] + o * (int64_t)es, es);
            for (int d = nd - 1; d >= 0; d--) {
                if (++idx[d] < j->shape[d]) break;
                idx[d] = 0;
            }
        }
    }
    int64_t count = 1, row[LX_MAX_NDIM];
    for (int d = 0; d < nd; d++) count *= j->upd_shape[d];
    for (int d = nd - 1, r = 1; d >= 0; d--) {
        row[d] = r;
        r *= (int)j->shape[d];
    }
    int64_t idx[LX_MAX_NDIM] = {0};
    for (int64_t i = 0; i < count; i++) {
        int64_t o = 0, u = 0;
        for (int d = 0; d < nd; d++) {
            o += (j->start[d] + idx[d] * j->step[d]) * row[d];
            u += idx[d] * j->upd_st[d];
        }
        memcpy(j->out + (size_t)o * es, j->in[1] + u * (int64_t)es, es);
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < j->upd_shape[d]) break;
            idx[d] = 0;
        }
    }
}

static void run_full(const job *j) {
    unsigned char v[16];
    size_t es = dsize(j->out_dtype);
    store_val(j->out_dtype, LX_CLASS_D, v, (cval){.d = j->value});
    for (int64_t i = 0; i < j->size; i++) memcpy(j->out + (size_t)i * es, v, es);
}

/* UNARY / BINARY float32: rows gathered into contiguous chunks and computed with the same
 * loop functions the CPU kernels use (elementwise_ops.h), so the bits are the CPU's. */
static void run_elementwise(const job *j) {
    int nd = j->ndim;
    int64_t inner = j->shape[nd - 1], rows = inner ? j->size / inner : 0;
    int64_t idx[LX_MAX_NDIM] = {0};
    float *y = (float *)(void *)j->out;
    float a[LX_CHUNK], b[LX_CHUNK];
    for (int64_t r = 0; r < rows; r++) {
        const float *x0 = (const float *)(const void *)j->in[0] + row_off(j, 0, idx, nd);
        const float *x1 = j->n_in > 1 ? (const float *)(const void *)j->in[1] + row_off(j, 1, idx, nd)
                                      : NULL;
        int64_t s0 = j->st[0][nd - 1], s1 = j->n_in > 1 ? j->st[1][nd - 1] : 0;
        for (int64_t i = 0; i < inner; i += LX_CHUNK) {
            int64_t m = inner - i < LX_CHUNK ? inner - i : LX_CHUNK;
            for (int64_t k = 0; k < m; k++) a[k] = x0[(i + k) * s0];
            if (j->prim == LX_PRIM_UNARY) {
                lx_ew_unary_F(j->op, a, a, m);
            } else {
                for (int64_t k = 0; k < m; k++) b[k] = x1[(i + k) * s1];
                lx_ew_binary_F(j->op, a, b, a, m);
            }
            memcpy(y, a, sizeof(float) * (size_t)m);
            y += m;
        }
        next_row(j->shape, idx, nd);
    }
}

static void run_matmul(const job *j) {
    int nb = j->ndim;
    int64_t batches = 1;
    for (int d = 0; d < nb; d++) batches *= j->shape[d];
    int64_t idx[LX_MAX_NDIM] = {0};
    float *y = (float *)(void *)j->out;
    for (int64_t t = 0; t < batches; t++) {
        int64_t oa = 0, ob = 0, oc = 0;
        for (int d = 0; d < nb; d++) {
            oa += idx[d] * j->st[0][d];
            ob += idx[d] * j->st[1][d];
            oc += idx[d] * j->st[2][d];
        }
        /* with K = 0, A and B hold no elements (NULL) */
        const float *A = j->in[0] ? (const float *)(const void *)j->in[0] + oa : NULL;
        const float *B = j->in[1] ? (const float *)(const void *)j->in[1] + ob : NULL;
        const float *C = j->n_in > 2 && j->in[2] ? (const float *)(const void *)j->in[2] + oc : NULL;
        float *P = j->packed; /* B row-major [K, N] */
        if (P)
            for (int64_t k = 0; k < j->K; k++)
                for (int64_t n = 0; n < j->N; n++) P[k * j->N + n] = B[k * j->b_sk + n * j->b_sn];
        for (int64_t m = 0; m < j->M; m++)
            for (int64_t n = 0; n < j->N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < j->K; k++)
                    acc += (double)A[m * j->a_sm + k * j->a_sk] * (double)P[k * j->N + n];
                if (j->scaled) {
                    acc *= j->alpha;
                    if (C) acc += (double)j->beta * C[m * j->c_sm + n * j->c_sn];
                }
                *y++ = (float)acc;
            }
        /* next batch index over dims [0, nb) */
        for (int d = nb - 1; d >= 0; d--) {
            if (++idx[d] < j->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static void run_job(job *j) {
    switch (j->prim) {
    case LX_PRIM_COPY: run_copy(j); break;
    case LX_PRIM_FULL: run_full(j); break;
    case LX_PRIM_SLICE_UPDATE: run_slice_update(j); break;
    case LX_PRIM_UNARY:
    case LX_PRIM_BINARY: run_elementwise(j); break;
    case LX_PRIM_MATMUL: run_matmul(j); break;
    default: break;
    }
}

/* ---- the device and the entry point ---- */

static lx_kernel_fn kernels[LX_PRIM_COUNT];
static lx_device_impl device;
static char description[256];

static void stub_shutdown(const lx_device_impl *dev) {
    (void)dev;
    pthread_mutex_lock(&G.q_lock);
    bool started = G.worker_started;
    G.stop = true;
    pthread_cond_broadcast(&G.q_work);
    pthread_mutex_unlock(&G.q_lock);
    if (started) pthread_join(G.worker, NULL);
    pthread_mutex_lock(&G.q_lock);
    G.worker_started = false;
    G.stop = false;
    pthread_mutex_unlock(&G.q_lock);
}

LX_API void lx_stub_get_stats(lx_stub_stats *out) {
    memset(out, 0, sizeof *out);
    out->kernels_queued = atomic_load(&G.kernels_queued);
    out->kernels_run = atomic_load(&G.kernels_run);
    out->kernels_refused = atomic_load(&G.kernels_refused);
    out->copies_to_host = atomic_load(&G.copies_to_host);
    out->copies_from_host = atomic_load(&G.copies_from_host);
    out->copies = atomic_load(&G.copies);
    out->memsets = atomic_load(&G.memsets);
    out->live_events = atomic_load(&G.live_events);
    out->events_recorded = atomic_load(&G.events_recorded);
    out->slice_updates_in_place = atomic_load(&G.su_in_place);
    out->slice_updates_copied = atomic_load(&G.su_copied);
    pthread_mutex_lock(&G.reg_lock);
    out->imports = G.imports;
    out->releases = G.releases;
    out->allocs = G.allocs;
    out->frees = G.frees;
    out->live_blocks = G.n_blocks;
    out->live_bytes = G.live_bytes;
    out->live_imports = G.live_imports;
    out->free_size_mismatches = G.size_mismatches;
    pthread_mutex_unlock(&G.reg_lock);
    pthread_mutex_lock(&G.v_lock);
    out->violations = G.violations;
    snprintf(out->first_violation, sizeof out->first_violation, "%s", G.first_violation);
    snprintf(out->last_violation, sizeof out->last_violation, "%s", G.last_violation);
    pthread_mutex_unlock(&G.v_lock);
}

LX_API uint64_t lx_stub_kernel_count(int prim) {
    return prim >= 0 && prim < LX_PRIM_COUNT ? atomic_load(&G.by_prim[prim]) : 0;
}

static long env_long(const char *name, long dflt, long lo, long hi) {
    const char *v = core->getenv ? core->getenv(name) : NULL;
    if (!v || !*v) return dflt;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi) return dflt;
    return x;
}

LX_API int lx_device_module_init(uint32_t api_version, const lx_core_api *api,
                                 const lx_device_impl **devices, int max_devices, char *why,
                                 size_t why_size);

LX_API int lx_device_module_init(uint32_t api_version, const lx_core_api *api,
                                 const lx_device_impl **devices, int max_devices, char *why,
                                 size_t why_size) {
    char dummy[1];
    if (!why || why_size == 0) {
        why = dummy;
        why_size = sizeof dummy;
    }
    why[0] = '\0';
    if (api_version != LX_DEVICE_API_VERSION) {
        snprintf(why, why_size, "the stub was built for device interface %u, lx offers %u",
                 LX_DEVICE_API_VERSION, api_version);
        return 0;
    }
    if (!api || api->version != LX_DEVICE_API_VERSION || api->size < sizeof(lx_core_api) ||
        !api->set_error || !api->prim_name || !api->getenv) {
        snprintf(why, why_size, "the stub needs lx_core_api version %u (size %zu); it was "
                 "given %s", LX_DEVICE_API_VERSION, sizeof(lx_core_api),
                 api ? "another or an incomplete one" : "none");
        return 0;
    }
    if (!devices || max_devices < 1) {
        snprintf(why, why_size, "no room for a device (max_devices %d)", max_devices);
        return 0;
    }
    core = api;
    const char *fail = core->getenv("LX_STUB_FAIL");
    if (fail && strcmp(fail, "init") == 0) {
        snprintf(why, why_size, "LX_STUB_FAIL=init: the stub reports no device, as asked");
        return 0;
    }
    const char *addr = core->getenv("LX_STUB_ADDR");
    const char *hv = core->getenv("LX_STUB_HOST_VISIBLE");
    G.host_visible = hv && strcmp(hv, "1") == 0;
    G.opaque = !G.host_visible && addr && strcmp(addr, "opaque") == 0;
    atomic_store(&G.delay_us, env_long("LX_STUB_DELAY_US", 0, 0, 1000000));
    G.capacity = (size_t)env_long("LX_STUB_MEMORY_MB", 1024, 1, 1L << 20) << 20;

    for (int p = 0; p < LX_PRIM_COUNT; p++) kernels[p] = NULL;
    kernels[LX_PRIM_COPY] = stub_kernel;
    kernels[LX_PRIM_FULL] = stub_kernel;
    kernels[LX_PRIM_UNARY] = stub_kernel;
    kernels[LX_PRIM_BINARY] = stub_kernel;
    kernels[LX_PRIM_MATMUL] = stub_kernel;
    kernels[LX_PRIM_SLICE_UPDATE] = stub_kernel;

    snprintf(description, sizeof description,
             "lx's test stub: host RAM as %s device memory (%s addresses, poisoned), one "
             "asynchronous worker queue%s, COPY/FULL/SLICE_UPDATE and float32 UNARY/BINARY/MATMUL only "
             "(tests/stub_device)",
             G.host_visible ? "host-visible" : "non-host-visible", G.opaque ? "opaque" : "host",
             atomic_load(&G.delay_us) ? " with a delay per kernel" : "");
    device = (lx_device_impl){
        LX_DEVICE_LAYOUT,
        .name = "stub",
        .description = description,
        .kind = LX_GPU,
        .score = 5,
        .state = &G,
        .kernels = kernels,
        .supports = stub_supports,
        .host_visible = G.host_visible,
        .alloc = stub_alloc,
        .free = stub_free,
        .copy_to_host = stub_copy_to_host,
        .copy_from_host = stub_copy_from_host,
        .copy = stub_copy,
        .memset = stub_memset,
        .import_host = stub_import_host,
        .release_import = stub_release_import,
        .memory_info = stub_memory_info,
        .event_record = stub_event_record,
        .event_wait = stub_event_wait,
        .event_query = stub_event_query,
        .event_free = stub_event_free,
        .synchronize = stub_synchronize,
        .shutdown = stub_shutdown,
    };
    /* the loader's refusals, on request */
    if (fail && strcmp(fail, "score0") == 0) device.score = 0;
    if (fail && strcmp(fail, "table") == 0) kernels[LX_PRIM_COPY] = NULL;
    if (fail && strcmp(fail, "version") == 0) device.api_version = LX_DEVICE_API_VERSION + 1;
    devices[0] = &device;
    return 1;
}
