/*
 * compile_api.c -- the public entry points of compile (lx.h): lx_compile, lx_call,
 * lx_closure_free, lx_closure_trace_count and the switch lx_set_compile_enabled (or
 * LX_DISABLE_COMPILE). lx_call looks the inputs up in the closure's cache, traces on a miss and
 * replays; the steps themselves are in the other compile_*.c files (see compile_int.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/compile_int.h"
#include "core/error.h"
#include "core/handle.h"
#include "core/node.h"

#define MAX_OUTPUTS 1024

static atomic_int g_enabled = -1; /* -1: not read from the environment yet */

static bool compile_enabled(void) {
    int e = atomic_load_explicit(&g_enabled, memory_order_acquire);
    if (e < 0) {
        const char *s = getenv("LX_DISABLE_COMPILE");
        int v = (s && *s && strcmp(s, "0") != 0) ? 0 : 1;
        int expect = -1;
        atomic_compare_exchange_strong(&g_enabled, &expect, v);
        e = atomic_load(&g_enabled);
    }
    return e != 0;
}

bool lx_set_compile_enabled(bool enabled) {
    bool prev = compile_enabled();
    atomic_store(&g_enabled, enabled ? 1 : 0);
    return prev;
}

lx_status lx_compile_oom(const char *what) {
    return lx_set_error(LX_E_OOM, "lx_call: out of host memory %s", what);
}

lx_closure *lx_compile(lx_fn fn, void *ctx, int n_out, unsigned flags) {
    if (!fn) {
        lx_set_error(LX_E_ARG, "lx_compile: fn is NULL");
        return NULL;
    }
    if (n_out < 1 || n_out > MAX_OUTPUTS) {
        lx_set_error(LX_E_ARG, "lx_compile: n_out %d is outside [1, %d]", n_out, MAX_OUTPUTS);
        return NULL;
    }
    if (flags & ~LX_COMPILE_SHAPELESS) {
        lx_set_error(LX_E_ARG, "lx_compile: unknown flags %#x", flags);
        return NULL;
    }
    lx_closure *c = calloc(1, sizeof *c);
    if (!c) {
        lx_set_error(LX_E_OOM, "lx_compile: out of host memory");
        return NULL;
    }
    c->fn = fn;
    c->ctx = ctx;
    c->n_out = n_out;
    c->flags = flags;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void lx_closure_free(lx_closure *c) {
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    lx_compile_cache_clear(c);
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int lx_closure_trace_count(const lx_closure *c) {
    return c ? atomic_load(&((lx_closure *)c)->trace_count) : 0;
}

/* fn called directly (compile off, or inside a trace). */
static lx_status call_direct(lx_closure *c, const lx_array *in, int n_in, lx_array *out,
                             int n_out) {
    lx_status st = c->fn(c->ctx, in, n_in, out, n_out);
    if (st != LX_OK && lx_error() == LX_OK)
        lx_set_error(st, "lx_call: the compiled function returned %s", lx_status_string(st));
    return st;
}

lx_status lx_call(lx_closure *c, const lx_array *in, int n_in, lx_array *out, int n_out) {
    if (!c) return lx_set_error(LX_E_ARG, "lx_call: the closure is NULL");
    if (!out || n_out != c->n_out)
        return lx_set_error(LX_E_ARG, "lx_call: %d outputs requested (out %s) but the closure "
                            "makes %d", n_out, out ? "given" : "NULL", c->n_out);
    for (int j = 0; j < n_out; j++) out[j] = LX_NULL_ARRAY;
    if (n_in < 0 || (n_in > 0 && !in))
        return lx_set_error(LX_E_ARG, "lx_call: in is NULL or n_in is negative (%d)", n_in);
    if (lx_compile_tracing() || !compile_enabled()) return call_direct(c, in, n_in, out, n_out);

    lx_node *small[16];
    lx_node **real = n_in <= 16 ? small : calloc((size_t)n_in, sizeof *real);
    if (!real) return lx_set_error(LX_E_OOM, "lx_call: out of host memory");
    lx_status st = LX_OK;
    int got = 0;
    for (; got < n_in; got++) {
        real[got] = lx_handle_get_nth(in[got], "lx_call", "in", got);
        if (!real[got]) {
            st = lx_error();
            goto done;
        }
    }
    pthread_mutex_lock(&c->lock);
    lx_trace *t = lx_compile_cache_find(c, real, n_in);
    if (!t) {
        /* trace with this thread's earlier error (if any) set aside, so that a failure while
         * tracing is seen; the earlier error is the one kept */
        lx_status saved = lx_error();
        char saved_msg[512] = "";
        if (saved != LX_OK) {
            snprintf(saved_msg, sizeof saved_msg, "%s", lx_error_message());
            lx_clear_error();
        }
        t = lx_compile_trace_new(c, real, n_in, &st);
        if (saved != LX_OK) {
            lx_clear_error();
            lx_set_error(saved, "%s", saved_msg);
        }
        if (t) {
            atomic_fetch_add(&c->trace_count, 1);
            lx_compile_cache_add(c, t);
        }
    }
    if (t) st = lx_compile_replay(t, real, out);
    lx_compile_cache_trim(c);
    pthread_mutex_unlock(&c->lock);
done:
    for (int i = 0; i < got; i++) lx_node_release(real[i]);
    if (real != small) free(real);
    return st;
}
