/*
 * handle.c -- the slot table behind lx_array handles.
 *
 * Slots live in chunks that are never freed, so a stale or forged handle can always be decoded
 * safely: it names a slot whose generation no longer matches. Fresh slots come from a global
 * counter; released ones are recycled through a per-thread spare list (spilling to a global
 * one), so making and sweeping handles takes no lock in the steady state.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/handle.h"
#include "core/slots.h"

_Atomic(lx_slot *) lx_slot_chunks[LX_SLOT_MAX_CHUNKS];
static _Atomic uint32_t slots_used; /* fresh slots handed out so far */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t *global_spare;
/* written under slots_lock; atomic because slot_alloc peeks at it without the lock (a stale
 * value only means a needless lock or a fresh slot) */
static _Atomic size_t global_spare_n;
static size_t global_spare_cap;

#define SPARE_MAX 4096
static _Thread_local uint32_t *spare;
static _Thread_local size_t spare_n, spare_cap;

static _Thread_local const char *site_file;
static _Thread_local int site_line;

void lx_debug_site_(const char *file, int line) {
    site_file = file;
    site_line = line;
}

static bool spare_push(uint32_t idx) {
    if (spare_n == spare_cap) {
        size_t cap = spare_cap ? spare_cap * 2 : 256;
        uint32_t *p = realloc(spare, cap * sizeof *p);
        if (!p) return false;
        spare = p;
        spare_cap = cap;
    }
    spare[spare_n++] = idx;
    return true;
}

static void spill_spares(size_t keep) {
    pthread_mutex_lock(&slots_lock);
    while (spare_n > keep) {
        if (global_spare_n == global_spare_cap) {
            size_t cap = global_spare_cap ? global_spare_cap * 2 : 1024;
            uint32_t *p = realloc(global_spare, cap * sizeof *p);
            if (!p) break; /* the slot is simply not recycled: a bounded loss under OOM */
            global_spare = p;
            global_spare_cap = cap;
        }
        global_spare[global_spare_n++] = spare[--spare_n];
    }
    pthread_mutex_unlock(&slots_lock);
}

void lx_slot_return_spares(void) {
    spill_spares(0);
    free(spare);
    spare = NULL;
    spare_cap = 0;
}

/* A slot index for a new handle, or UINT32_MAX when the table is full or memory is out. */
static uint32_t slot_alloc(void) {
    if (spare_n) return spare[--spare_n];
    if (atomic_load_explicit(&global_spare_n, memory_order_relaxed)) {
        pthread_mutex_lock(&slots_lock);
        while (global_spare_n && spare_n < SPARE_MAX / 2) {
            if (!spare_push(global_spare[global_spare_n - 1])) break;
            global_spare_n--;
        }
        pthread_mutex_unlock(&slots_lock);
        if (spare_n) return spare[--spare_n];
    }
    uint32_t idx = atomic_fetch_add_explicit(&slots_used, 1, memory_order_relaxed);
    if (idx >= LX_SLOT_CHUNK * LX_SLOT_MAX_CHUNKS - 1) {
        atomic_fetch_sub_explicit(&slots_used, 1, memory_order_relaxed);
        return UINT32_MAX;
    }
    uint32_t c = idx >> LX_SLOT_CHUNK_BITS;
    if (!atomic_load_explicit(&lx_slot_chunks[c], memory_order_acquire)) {
        pthread_mutex_lock(&slots_lock);
        if (!atomic_load_explicit(&lx_slot_chunks[c], memory_order_relaxed)) {
            lx_slot *chunk = calloc(LX_SLOT_CHUNK, sizeof *chunk);
            if (chunk) {
                for (uint32_t i = 0; i < LX_SLOT_CHUNK; i++) atomic_init(&chunk[i].gen, 1);
            }
            atomic_store_explicit(&lx_slot_chunks[c], chunk, memory_order_release);
        }
        pthread_mutex_unlock(&slots_lock);
        if (!atomic_load_explicit(&lx_slot_chunks[c], memory_order_acquire)) return UINT32_MAX;
    }
    return idx;
}

lx_slot *lx_slot_of(lx_array a) {
    uint32_t lo = (uint32_t)a.id;
    if (lo == 0) return NULL;
    uint32_t idx = lo - 1;
    if (idx >= atomic_load_explicit(&slots_used, memory_order_acquire)) return NULL;
    lx_slot *s = lx_slot_at(idx);
    if (!s || atomic_load_explicit(&s->gen, memory_order_acquire) != (uint32_t)(a.id >> 32))
        return NULL;
    return s;
}

void lx_slot_release(uint32_t idx) {
    lx_slot *s = lx_slot_at(idx);
    uint32_t g = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->gen, g ? g : 1, memory_order_release);
    lx_node *n = atomic_exchange_explicit(&s->node, NULL, memory_order_acq_rel);
    atomic_store_explicit(&s->kept, 0, memory_order_relaxed);
    if (!spare_push(idx) || spare_n > SPARE_MAX) spill_spares(SPARE_MAX / 2);
    if (n) lx_node_release(n);
}

/* Implemented by the tracker: adds a new slot to this thread's tracker or the active sink. */
bool lx_tracker_add(uint32_t idx);

lx_array lx_handle_new(lx_node *node) {
    if (!node) return LX_NULL_ARRAY;
    uint32_t idx = slot_alloc();
    if (idx == UINT32_MAX) {
        lx_set_error(LX_E_OOM, "%s: no handle available (out of memory)", node->op);
        lx_node_release(node);
        return LX_NULL_ARRAY;
    }
    if (site_file) {
        node->site_file = site_file;
        node->site_line = site_line;
        site_file = NULL;
    }
    lx_slot *s = lx_slot_at(idx);
    atomic_store_explicit(&s->kept, 0, memory_order_relaxed);
    atomic_store_explicit(&s->node, node, memory_order_release);
    uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
    if (!lx_tracker_add(idx)) {
        lx_set_error(LX_E_OOM, "%s: out of memory tracking a new array", node->op);
        lx_slot_release(idx);
        return LX_NULL_ARRAY;
    }
    return (lx_array){((uint64_t)gen << 32) | (uint64_t)(idx + 1)};
}

lx_node *lx_handle_peek(lx_array a) {
    lx_slot *s = lx_slot_of(a);
    if (!s) return NULL;
    lx_node *n = atomic_load_explicit(&s->node, memory_order_acquire);
    if (!n || !lx_node_try_retain(n)) return NULL;
    if (atomic_load_explicit(&s->gen, memory_order_acquire) != (uint32_t)(a.id >> 32)) {
        lx_node_release(n);
        return NULL;
    }
    return n;
}

lx_node *lx_handle_get(lx_array a, const char *op, const char *arg) {
    if (a.id == 0) {
        lx_set_error(LX_E_ARG, "%s: argument %s is the null array", op, arg);
        return NULL;
    }
    lx_node *n = lx_handle_peek(a);
    if (!n)
        lx_set_error(LX_E_FREED, "%s: argument %s is a released array (handle %#llx)", op, arg,
                     (unsigned long long)a.id);
    return n;
}

lx_node *lx_handle_get_nth(lx_array a, const char *op, const char *arg, int index) {
    lx_node *n = a.id ? lx_handle_peek(a) : NULL;
    if (n) return n;
    char name[64];
    snprintf(name, sizeof name, "%s[%d]", arg, index);
    return lx_handle_get(a, op, name);
}

bool lx_handle_keep(lx_array a, const char *op) {
    lx_slot *s = lx_slot_of(a);
    if (!s) {
        lx_set_error(a.id ? LX_E_FREED : LX_E_ARG, "%s: %s array", op,
                     a.id ? "released" : "null");
        return false;
    }
    atomic_store_explicit(&s->kept, 1, memory_order_release);
    return true;
}
