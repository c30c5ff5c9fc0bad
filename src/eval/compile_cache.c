/*
 * compile_cache.c -- a closure's traces, most recently used first, keyed by each input's
 * dtype, ndim, device and shape (shapeless traces: not the shape), and the bound on their
 * number (lx_set_compile_cache_limit, default 32, for every closure). The caller holds the
 * closure's lock.
 */
#include <stdatomic.h>
#include <string.h>

#include "eval/compile_int.h"
#include "core/error.h"

#define DEFAULT_CACHE_LIMIT 32

static atomic_int g_cache_limit = DEFAULT_CACHE_LIMIT;

int lx_set_compile_cache_limit(int traces) {
    if (traces < 0) {
        lx_set_error(LX_E_ARG, "lx_set_compile_cache_limit: the limit %d is negative", traces);
        return atomic_load(&g_cache_limit);
    }
    return atomic_exchange(&g_cache_limit, traces);
}

static bool key_match(const lx_trace *t, lx_node *const *real, int n_in) {
    if (t->n_in != n_in) return false;
    for (int i = 0; i < n_in; i++) {
        const lx_trace_key *k = &t->keys[i];
        const lx_node *x = real[i];
        if (k->dtype != x->dtype || k->ndim != x->ndim || k->device != x->device) return false;
        if (!t->shapeless && memcmp(k->shape, x->shape, sizeof(int32_t) * k->ndim) != 0)
            return false;
    }
    return true;
}

static void list_unlink(lx_closure *c, lx_trace *t) {
    if (t->prev) t->prev->next = t->next;
    else c->head = t->next;
    if (t->next) t->next->prev = t->prev;
    else c->tail = t->prev;
    t->prev = t->next = NULL;
    c->n_traces--;
}

static void list_push_front(lx_closure *c, lx_trace *t) {
    t->prev = NULL;
    t->next = c->head;
    if (c->head) c->head->prev = t;
    c->head = t;
    if (!c->tail) c->tail = t;
    c->n_traces++;
}

lx_trace *lx_compile_cache_find(lx_closure *c, lx_node *const *real, int n_in) {
    lx_trace *t = c->head;
    while (t && !key_match(t, real, n_in)) t = t->next;
    if (t && t != c->head) {
        list_unlink(c, t);
        list_push_front(c, t);
    }
    return t;
}

void lx_compile_cache_add(lx_closure *c, lx_trace *t) { list_push_front(c, t); }

void lx_compile_cache_trim(lx_closure *c) {
    int limit = atomic_load(&g_cache_limit);
    while (c->n_traces > limit && c->tail) {
        lx_trace *old = c->tail;
        list_unlink(c, old);
        lx_compile_trace_free(old);
    }
}

void lx_compile_cache_clear(lx_closure *c) {
    while (c->head) {
        lx_trace *t = c->head;
        list_unlink(c, t);
        lx_compile_trace_free(t);
    }
}
