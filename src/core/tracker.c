/*
 * tracker.c -- per-thread trackers: every new handle is recorded by its thread's tracker, and a
 * sweep releases the recorded handles that are not kept, in one O(n) pass that compacts the
 * kept ones in place. While a compiled closure traces, new handles go to its list instead.
 *
 * When a thread exits, its unkept arrays are released and its kept ones become orphans (no
 * live thread could sweep them); any thread's sweep releases orphans whose mark was cleared.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/handle.h"
#include "core/slots.h"

static _Thread_local lx_handle_list tl_tracked;
static _Thread_local lx_handle_list *tl_sink;
static _Thread_local bool tl_registered;

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static lx_handle_list orphans;
static _Atomic size_t orphan_count;

static bool list_push(lx_handle_list *l, uint32_t idx) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        uint32_t *p = realloc(l->slots, cap * sizeof *p);
        if (!p) return false;
        l->slots = p;
        l->cap = cap;
    }
    l->slots[l->n++] = idx;
    return true;
}

/* Releases the unkept slots of l, keeping the kept ones in order. */
static void list_sweep(lx_handle_list *l) {
    size_t w = 0;
    for (size_t r = 0; r < l->n; r++) {
        uint32_t idx = l->slots[r];
        lx_slot *s = lx_slot_at(idx);
        if (atomic_load_explicit(&s->kept, memory_order_acquire))
            l->slots[w++] = idx;
        else
            lx_slot_release(idx);
    }
    l->n = w;
}

static void thread_exit(void *unused) {
    (void)unused;
    list_sweep(&tl_tracked);
    pthread_mutex_lock(&orphan_lock);
    for (size_t i = 0; i < tl_tracked.n; i++) list_push(&orphans, tl_tracked.slots[i]);
    atomic_store(&orphan_count, orphans.n);
    pthread_mutex_unlock(&orphan_lock);
    free(tl_tracked.slots);
    memset(&tl_tracked, 0, sizeof tl_tracked);
    lx_slot_return_spares();
}

static void make_exit_key(void) { pthread_key_create(&exit_key, thread_exit); }

bool lx_tracker_add(uint32_t idx) {
    if (tl_sink) return list_push(tl_sink, idx);
    if (!tl_registered) {
        pthread_once(&exit_once, make_exit_key);
        pthread_setspecific(exit_key, &tl_tracked);
        tl_registered = true;
    }
    return list_push(&tl_tracked, idx);
}

lx_handle_list *lx_handle_sink(lx_handle_list *list) {
    lx_handle_list *prev = tl_sink;
    tl_sink = list;
    return prev;
}

void lx_handle_list_release_all(lx_handle_list *l) {
    for (size_t i = 0; i < l->n; i++) lx_slot_release(l->slots[i]);
    l->n = 0;
}

void lx_handle_list_free(lx_handle_list *l) {
    lx_handle_list_release_all(l);
    free(l->slots);
    memset(l, 0, sizeof *l);
}

void lx_sweep(void) {
    list_sweep(&tl_tracked);
    if (atomic_load_explicit(&orphan_count, memory_order_relaxed)) {
        pthread_mutex_lock(&orphan_lock);
        list_sweep(&orphans);
        atomic_store(&orphan_count, orphans.n);
        pthread_mutex_unlock(&orphan_lock);
    }
}

size_t lx_tracked_count(void) { return tl_tracked.n; }

void lx_keep_n(const lx_array *arrays, int n) {
    if (!arrays && n > 0) {
        lx_set_error(LX_E_ARG, "lx_keep: arrays is NULL");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!lx_handle_keep(arrays[i], "lx_keep")) continue;
    }
}

void lx_free(lx_array a) {
    lx_slot *s = lx_slot_of(a);
    if (s) atomic_store_explicit(&s->kept, 0, memory_order_release);
}

bool lx_valid(lx_array a) { return lx_slot_of(a) != NULL; }

bool lx_kept(lx_array a) {
    lx_slot *s = lx_slot_of(a);
    return s && atomic_load_explicit(&s->kept, memory_order_acquire);
}

typedef struct {
    lx_node *node;
    size_t bytes;
    bool kept;
} debug_entry;

static int by_bytes_desc(const void *x, const void *y) {
    size_t a = ((const debug_entry *)x)->bytes, b = ((const debug_entry *)y)->bytes;
    return a < b ? 1 : (a > b ? -1 : 0);
}

void lx_debug_arrays(FILE *out, int top_n) {
    if (!out) return;
    size_t n = tl_tracked.n, kept = 0, kept_bytes = 0, unkept_bytes = 0;
    debug_entry *e = calloc(n ? n : 1, sizeof *e);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        lx_slot *s = lx_slot_at(tl_tracked.slots[i]);
        lx_node *node = atomic_load(&s->node);
        if (!node || !lx_node_try_retain(node)) continue;
        bool k = atomic_load(&s->kept);
        size_t bytes = lx_node_nbytes(node);
        if (k) { kept++; kept_bytes += bytes; } else { unkept_bytes += bytes; }
        if (e) e[m++] = (debug_entry){node, bytes, k};
        else lx_node_release(node);
    }
    fprintf(out, "lx: %zu tracked arrays on this thread: %zu kept (%zu bytes), %zu unkept "
                 "(%zu bytes); %zu live nodes; active %zu bytes, cache %zu bytes\n",
            n, kept, kept_bytes, n - kept, unkept_bytes, lx_node_live_count(),
            lx_active_memory(), lx_cache_memory());
    if (e) {
        qsort(e, m, sizeof *e, by_bytes_desc);
        for (size_t i = 0; i < m; i++) {
            if ((int)i < top_n) {
                lx_node *nd = e[i].node;
                char shape[128];
                int len = snprintf(shape, sizeof shape, "[");
                for (int d = 0; d < nd->ndim && len < (int)sizeof shape - 16; d++)
                    len += snprintf(shape + len, sizeof shape - (size_t)len, d ? ", %d" : "%d",
                                    nd->shape[d]);
                snprintf(shape + len, sizeof shape - (size_t)len, "]");
                fprintf(out, "  %12zu bytes  %-9s %-24s %-5s %s", e[i].bytes,
                        lx_dtype_name((lx_dtype)nd->dtype), shape, e[i].kept ? "kept" : "",
                        nd->op ? nd->op : "?");
                if (nd->site_file) fprintf(out, " at %s:%d", nd->site_file, nd->site_line);
                fputc('\n', out);
            }
            lx_node_release(e[i].node);
        }
        free(e);
    }
}
