/*
 * allocator.c -- the caching buffer allocator, one per device.
 *
 * Requests are rounded up to size classes (64-byte steps up to 512 bytes, then eight steps per
 * power of two, so at most 12.5% is wasted) and released blocks are cached per class for reuse.
 * The cache is bounded (lx_set_cache_limit) and evicted least recently used first. Active
 * memory counts the bytes asked for by live buffers, exactly; cache memory counts the capacity
 * of cached blocks. When an allocation would pass the memory limit the cache is trimmed, work
 * in flight is waited for (it may release buffers), and only then LX_E_OOM is reported.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buffer.h"
#include "core/error.h"

#define N_CLASSES 512

typedef struct {
    pthread_mutex_t lock;
    lx_device_memory mem;
    _Atomic bool registered; /* set once, read without the lock */
    bool limits_set;
    size_t active, peak, cached;
    size_t cache_limit, memory_limit;
    lx_buffer *classes[N_CLASSES];  /* head = most recently cached */
    lx_buffer *lru_head, *lru_tail; /* head = most recent, tail = eviction candidate */
} device_alloc;

static device_alloc allocs[2] = {
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
};
static void (*pressure_hook)(void);

static size_t physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return (size_t)8 << 30;
    return (size_t)pages * (size_t)page;
}

/* The device's size once registered (host RAM before: a limit read or set before the devices
 * start applies to the CPU, whose size that is). */
static size_t device_total(const device_alloc *a) {
    return a->registered && a->mem.total ? a->mem.total : physical_memory();
}

/* The default limits, once (lock held): at registration or at the first get/set of a limit,
 * whichever comes first, so a limit set before the backend starts is not overwritten. */
static void limits_default(device_alloc *a) {
    if (a->limits_set) return;
    size_t phys = device_total(a);
    a->memory_limit = phys / 10 * 9;
    a->cache_limit = phys / 10;
    a->limits_set = true;
}

void lx_allocator_register(lx_device d, const lx_device_memory *mem) {
    device_alloc *a = &allocs[d];
    pthread_mutex_lock(&a->lock);
    a->mem = *mem;
    a->registered = true;
    limits_default(a);
    pthread_mutex_unlock(&a->lock);
}

bool lx_allocator_registered(lx_device d) {
    return (unsigned)d <= LX_GPU && atomic_load_explicit(&allocs[d].registered, memory_order_acquire);
}

void lx_allocator_set_pressure_hook(void (*hook)(void)) { pressure_hook = hook; }

/* Size class of n bytes and its capacity. */
static int size_class(size_t n, size_t *capacity) {
    if (n <= 512) {
        size_t k = n == 0 ? 1 : (n + 63) / 64;
        *capacity = k * 64;
        return (int)k; /* 1..8 */
    }
    int e = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^e < n <= 2^(e+1), e >= 9 */
    size_t granule = (size_t)1 << (e - 3); /* eight steps per power of two */
    size_t k = (n + granule - 1) / granule; /* 9..16 */
    *capacity = k * granule;
    return 9 + (e - 9) * 8 + (int)(k - 9);
}

static void lru_unlink(device_alloc *a, lx_buffer *b) {
    if (b->lru_prev) b->lru_prev->lru_next = b->lru_next; else a->lru_head = b->lru_next;
    if (b->lru_next) b->lru_next->lru_prev = b->lru_prev; else a->lru_tail = b->lru_prev;
    int cls = size_class(b->capacity, &(size_t){0});
    if (b->cls_prev) b->cls_prev->cls_next = b->cls_next; else a->classes[cls] = b->cls_next;
    if (b->cls_next) b->cls_next->cls_prev = b->cls_prev;
    b->lru_prev = b->lru_next = b->cls_prev = b->cls_next = NULL;
    a->cached -= b->capacity;
}

/* Frees cached blocks, oldest first, until cached <= target. Called with the lock held;
 * collects the blocks in *out so the raw frees run outside the lock. */
static lx_buffer *evict_until(device_alloc *a, size_t target) {
    lx_buffer *out = NULL;
    while (a->cached > target && a->lru_tail) {
        lx_buffer *b = a->lru_tail;
        lru_unlink(a, b);
        b->lru_next = out;
        out = b;
    }
    return out;
}

static void free_list(device_alloc *a, lx_buffer *list) {
    while (list) {
        lx_buffer *next = list->lru_next;
        a->mem.free(a->mem.ctx, list->ptr, list->capacity);
        free(list);
        list = next;
    }
}

lx_buffer *lx_buffer_alloc(lx_device d, size_t nbytes) { return lx_buffer_alloc_ex(d, nbytes, true); }

lx_buffer *lx_buffer_alloc_ex(lx_device d, size_t nbytes, bool may_wait) {
    if ((unsigned)d > LX_GPU || !lx_allocator_registered(d)) {
        lx_set_error(LX_E_DEVICE, "allocator: no device registered for device %d", (int)d);
        return NULL;
    }
    if (nbytes > SIZE_MAX / 2) {
        lx_set_error(LX_E_OOM, "allocator: %zu bytes is more than any device has", nbytes);
        return NULL;
    }
    device_alloc *a = &allocs[d];
    size_t cap;
    int cls = size_class(nbytes, &cap);
    bool waited = false;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        lx_buffer *b = a->classes[cls];
        if (b) {
            lru_unlink(a, b);
            a->active += nbytes;
            if (a->active > a->peak) a->peak = a->active;
            pthread_mutex_unlock(&a->lock);
            atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
            b->size = nbytes;
            return b;
        }
        lx_buffer *evicted = NULL;
        if (a->active + a->cached + cap > a->memory_limit)
            evicted = evict_until(a, a->active + cap >= a->memory_limit
                                         ? 0
                                         : a->memory_limit - a->active - cap);
        if (a->active + nbytes <= a->memory_limit) {
            a->active += nbytes; /* reserve before the raw allocation */
            if (a->active > a->peak) a->peak = a->active;
            pthread_mutex_unlock(&a->lock);
            free_list(a, evicted);
            break;
        }
        size_t active = a->active, limit = a->memory_limit;
        pthread_mutex_unlock(&a->lock);
        free_list(a, evicted);
        if (waited || !pressure_hook || !may_wait) {
            lx_set_error(LX_E_OOM,
                         "allocator: %zu more bytes would pass the memory limit (%zu active, "
                         "limit %zu); release arrays or raise lx_set_memory_limit",
                         nbytes, active, limit);
            return NULL;
        }
        pressure_hook();
        waited = true;
        pthread_mutex_lock(&a->lock);
    }
    lx_buffer *b = calloc(1, sizeof *b);
    void *p = b ? a->mem.alloc(a->mem.ctx, cap) : NULL;
    if (b && !p) { /* the system is out: return the cache and try once more */
        lx_clear_cache();
        p = a->mem.alloc(a->mem.ctx, cap);
    }
    if (!p) {
        free(b);
        pthread_mutex_lock(&a->lock);
        a->active -= nbytes;
        pthread_mutex_unlock(&a->lock);
        lx_set_error(LX_E_OOM, "allocator: the system refused %zu bytes", cap);
        return NULL;
    }
    atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
    b->device = (uint8_t)d;
    b->ptr = p;
    b->size = nbytes;
    b->capacity = cap;
    return b;
}

lx_buffer *lx_buffer_wrap(lx_device d, void *ptr, size_t nbytes, void (*release)(void *owner),
                          void *owner) {
    lx_buffer *b = calloc(1, sizeof *b);
    if (!b) {
        lx_set_error(LX_E_OOM, "allocator: out of host memory");
        return NULL;
    }
    atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
    b->device = (uint8_t)d;
    b->external = 1;
    b->ptr = ptr;
    b->size = nbytes;
    b->capacity = nbytes;
    b->release = release;
    b->owner = owner;
    return b;
}

void lx_buffer_release(lx_buffer *b) {
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    if (b->external) {
        if (b->release) b->release(b->owner);
        free(b);
        return;
    }
    device_alloc *a = &allocs[b->device];
    size_t cap;
    int cls = size_class(b->capacity, &cap);
    pthread_mutex_lock(&a->lock);
    a->active -= b->size;
    b->size = 0;
    b->lru_prev = NULL;
    b->lru_next = a->lru_head;
    if (a->lru_head) a->lru_head->lru_prev = b; else a->lru_tail = b;
    a->lru_head = b;
    b->cls_prev = NULL;
    b->cls_next = a->classes[cls];
    if (a->classes[cls]) a->classes[cls]->cls_prev = b;
    a->classes[cls] = b;
    a->cached += b->capacity;
    lx_buffer *evicted = a->cached > a->cache_limit ? evict_until(a, a->cache_limit) : NULL;
    pthread_mutex_unlock(&a->lock);
    free_list(a, evicted);
}

size_t lx_allocator_active(lx_device d) {
    device_alloc *a = &allocs[d];
    pthread_mutex_lock(&a->lock);
    size_t v = a->active;
    pthread_mutex_unlock(&a->lock);
    return v;
}

static device_alloc *default_alloc(void) { return &allocs[lx_default_device()]; }

size_t lx_active_memory(void) { return lx_allocator_active(lx_default_device()); }

size_t lx_peak_memory(void) {
    device_alloc *a = default_alloc();
    pthread_mutex_lock(&a->lock);
    size_t v = a->peak;
    pthread_mutex_unlock(&a->lock);
    return v;
}

void lx_reset_peak_memory(void) {
    device_alloc *a = default_alloc();
    pthread_mutex_lock(&a->lock);
    a->peak = a->active;
    pthread_mutex_unlock(&a->lock);
}

size_t lx_cache_memory(void) {
    device_alloc *a = default_alloc();
    pthread_mutex_lock(&a->lock);
    size_t v = a->cached;
    pthread_mutex_unlock(&a->lock);
    return v;
}

size_t lx_set_cache_limit(size_t bytes) {
    device_alloc *a = default_alloc();
    pthread_mutex_lock(&a->lock);
    limits_default(a);
    size_t old = a->cache_limit;
    a->cache_limit = bytes;
    lx_buffer *evicted = evict_until(a, bytes);
    pthread_mutex_unlock(&a->lock);
    free_list(a, evicted);
    return old;
}

size_t lx_set_memory_limit(size_t bytes) {
    device_alloc *a = default_alloc();
    pthread_mutex_lock(&a->lock);
    size_t old = a->memory_limit;
    a->memory_limit = bytes;
    pthread_mutex_unlock(&a->lock);
    return old;
}

/* Getters: reading a limit through its setter would evict the cache. */
size_t lx_cache_limit(void) {
    device_alloc *a = default_alloc();
    pthread_mutex_lock(&a->lock);
    limits_default(a);
    size_t v = a->cache_limit;
    pthread_mutex_unlock(&a->lock);
    return v;
}

size_t lx_memory_limit(void) {
    device_alloc *a = default_alloc();
    pthread_mutex_lock(&a->lock);
    limits_default(a);
    size_t v = a->memory_limit;
    pthread_mutex_unlock(&a->lock);
    return v;
}

void lx_clear_cache(void) {
    for (int d = 0; d < 2; d++) {
        device_alloc *a = &allocs[d];
        pthread_mutex_lock(&a->lock);
        lx_buffer *evicted = evict_until(a, 0);
        pthread_mutex_unlock(&a->lock);
        free_list(a, evicted);
    }
}
