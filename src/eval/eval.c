/*
 * eval.c -- lx_eval / lx_async_eval: sweep, schedule, execute, wait.
 *
 * Scheduling claims the LAZY nodes an evaluation needs (LAZY -> SCHEDULED) under one lock and
 * lists them in depth-first post-order (a tape), which keeps few intermediates alive at once.
 * Because claims are made under the lock, tapes are totally ordered and a tape only ever waits
 * for nodes of earlier tapes, so concurrent evaluations cannot deadlock.
 *
 * lx_eval runs its tape on the calling thread; lx_async_eval hands it to the worker thread and
 * returns. Each executed node detaches (drops its inputs), so intermediates are released as
 * soon as their last consumer has run. A failed node goes back to LAZY with the nodes after it,
 * leaving the graph consistent: the error is reported and the program may free memory and
 * evaluate again.
 */
#include "eval/eval.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "core/error.h"
#include "core/handle.h"

typedef struct eval_owner {
    pthread_mutex_t lock;
    lx_status status; /* first error of this thread's async work not yet reported */
    char message[512];
} eval_owner;

typedef struct lx_tape {
    lx_node **nodes;
    size_t n;
    uint64_t seq;
    eval_owner *owner;
    struct lx_tape *next;
} lx_tape;

static pthread_mutex_t sched_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_seq = 1;

/* Node waiters sleep here; executors broadcast when a tape finishes. */
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;

/* The async worker queue. */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_done = PTHREAD_COND_INITIALIZER;
static lx_tape *q_head, *q_tail;
static lx_tape *q_running;
static bool worker_started;
static pthread_t worker;

static _Thread_local eval_owner *tl_owner;
static _Thread_local bool tl_is_worker;
static _Thread_local uint64_t tl_exec_seq; /* seq of the tape this thread executes, or 0 */

/* The message of the most recent failure, for evaluations that find a failed input. */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static lx_status last_fail_status;
static char last_fail_message[512];

/* Per-thread state: the DFS stack and the async error owner. When a thread exits, it waits
 * for the work it may have queued (whose errors would land in its owner), frees its stack and
 * returns its owner for reuse by later threads. */
static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;
static eval_owner *spare_owners[64];
static int n_spare_owners;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void wait_queue_before(uint64_t seq);
static void eval_thread_exit(void *unused);
static void make_thread_key(void) { pthread_key_create(&thread_key, eval_thread_exit); }

static eval_owner *owner_get(void) {
    if (!tl_owner) {
        pthread_once(&thread_key_once, make_thread_key);
        pthread_mutex_lock(&owners_lock);
        if (n_spare_owners) tl_owner = spare_owners[--n_spare_owners];
        pthread_mutex_unlock(&owners_lock);
        if (!tl_owner) {
            tl_owner = calloc(1, sizeof *tl_owner);
            if (tl_owner) pthread_mutex_init(&tl_owner->lock, NULL);
        }
        if (tl_owner) pthread_setspecific(thread_key, tl_owner);
    }
    return tl_owner;
}

/* Moves this thread's pending async error into its sticky error. */
static lx_status deliver_async_error(void) {
    eval_owner *o = tl_owner;
    if (!o) return LX_OK;
    pthread_mutex_lock(&o->lock);
    lx_status st = o->status;
    if (st != LX_OK) {
        lx_set_error(st, "%s", o->message);
        o->status = LX_OK;
    }
    pthread_mutex_unlock(&o->lock);
    return st;
}

/* ---- scheduling ---------------------------------------------------------------------- */

typedef struct {
    lx_node *node;
    int next;
} dfs_frame;

static _Thread_local dfs_frame *tl_stack;
static _Thread_local size_t tl_stack_cap;

static void eval_thread_exit(void *unused) {
    (void)unused;
    free(tl_stack);
    tl_stack = NULL;
    tl_stack_cap = 0;
    eval_owner *o = tl_owner;
    if (!o) return;
    wait_queue_before(UINT64_MAX); /* its async tapes may still report into o */
    tl_owner = NULL;
    o->status = LX_OK;
    pthread_mutex_lock(&owners_lock);
    if (n_spare_owners < (int)(sizeof spare_owners / sizeof spare_owners[0])) {
        spare_owners[n_spare_owners++] = o;
        o = NULL;
    }
    pthread_mutex_unlock(&owners_lock);
    if (o) {
        pthread_mutex_destroy(&o->lock);
        free(o);
    }
}

static bool claim(lx_node *n) {
    uint8_t expect = LX_NODE_LAZY;
    return atomic_compare_exchange_strong_explicit(&n->state, &expect, LX_NODE_SCHEDULED,
                                                   memory_order_acq_rel, memory_order_acquire);
}

static bool tape_push(lx_tape *t, size_t *cap, lx_node *n) {
    if (t->n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        lx_node **p = realloc(t->nodes, c * sizeof *p);
        if (!p) return false;
        t->nodes = p;
        *cap = c;
    }
    lx_node_retain(n);
    t->nodes[t->n++] = n;
    return true;
}

static bool stack_push(size_t *depth, lx_node *n) {
    if (!tl_stack) owner_get(); /* registers the thread-exit hook that frees the stack */
    if (*depth == tl_stack_cap) {
        size_t c = tl_stack_cap ? tl_stack_cap * 2 : 256;
        dfs_frame *p = realloc(tl_stack, c * sizeof *p);
        if (!p) return false;
        tl_stack = p;
        tl_stack_cap = c;
    }
    tl_stack[(*depth)++] = (dfs_frame){n, 0};
    return true;
}

/* Claims what the outputs need and returns it as a tape (NULL + *st on failure; an empty tape
 * when nothing needs computing). */
static lx_tape *schedule(lx_node *const *outs, int n_outs, lx_status *st) {
    lx_tape *t = calloc(1, sizeof *t);
    *st = LX_OK;
    if (!t) {
        *st = lx_set_error(LX_E_OOM, "lx_eval: out of host memory for the schedule");
        return NULL;
    }
    size_t cap = 0, depth = 0;
    bool ok = true;
    pthread_mutex_lock(&sched_lock);
    t->seq = next_seq++;
    for (int o = 0; o < n_outs && ok; o++) {
        if (!outs[o] || !claim(outs[o])) continue;
        ok = stack_push(&depth, outs[o]);
        while (ok && depth) {
            dfs_frame *f = &tl_stack[depth - 1];
            if (f->next < f->node->n_inputs) {
                lx_node *in = f->node->inputs[f->next++];
                if (claim(in)) ok = stack_push(&depth, in);
            } else {
                ok = tape_push(t, &cap, f->node);
                depth--;
            }
        }
    }
    if (!ok) { /* out of memory: un-claim everything claimed so far */
        for (size_t i = 0; i < depth; i++)
            atomic_store_explicit(&tl_stack[i].node->state, LX_NODE_LAZY, memory_order_release);
        for (size_t i = 0; i < t->n; i++) {
            atomic_store_explicit(&t->nodes[i]->state, LX_NODE_LAZY, memory_order_release);
            lx_node_release(t->nodes[i]);
        }
        free(t->nodes);
        free(t);
        pthread_mutex_unlock(&sched_lock);
        *st = lx_set_error(LX_E_OOM, "lx_eval: out of host memory for the schedule");
        return NULL;
    }
    pthread_mutex_unlock(&sched_lock);
    return t;
}

/* ---- execution ------------------------------------------------------------------------ */

/* Records "<what>: <message of the most recent failed evaluation>" as this thread's error. */
static lx_status fail_from_last(const char *what) {
    pthread_mutex_lock(&fail_lock);
    lx_status st = lx_set_error(last_fail_status ? last_fail_status : LX_E_INTERNAL, "%s: %s",
                                what, last_fail_message);
    pthread_mutex_unlock(&fail_lock);
    return st;
}

/* Waits for the outputs; one that another (failed) evaluation left unfinished is an error. */
static lx_status wait_outputs(lx_node *const *nodes, int n, lx_status st, const char *op) {
    for (int i = 0; i < n; i++) {
        if (!nodes[i]) continue;
        lx_wait_node(nodes[i]);
        if (st == LX_OK && lx_node_state_of(nodes[i]) != LX_NODE_READY) {
            char what[96];
            snprintf(what, sizeof what, "%s: output %d failed to evaluate", op, i);
            st = fail_from_last(what);
        }
    }
    return st;
}

void lx_wait_node(lx_node *n) {
    if (lx_node_state_of(n) != LX_NODE_SCHEDULED) return;
    pthread_mutex_lock(&ready_lock);
    while (lx_node_state_of(n) == LX_NODE_SCHEDULED) pthread_cond_wait(&ready_cond, &ready_lock);
    pthread_mutex_unlock(&ready_lock);
}

static void notify_ready(void) {
    pthread_mutex_lock(&ready_lock);
    pthread_cond_broadcast(&ready_cond);
    pthread_mutex_unlock(&ready_lock);
}

/* How many leading inputs a primitive's kernel may share its output buffer with: elementwise
 * kernels read element i before writing element i (any input); in-place updates (slice_update,
 * put_along_axis) copy input 0 into the output unless it already is the output. */
static int donatable_inputs(const lx_node *n) {
    switch (n->prim) {
    case LX_PRIM_UNARY: case LX_PRIM_BINARY: case LX_PRIM_WHERE: case LX_PRIM_COPY:
    case LX_PRIM_FUSED: /* within each tile every store comes after every load */
        return n->n_inputs;
    case LX_PRIM_SLICE_UPDATE: case LX_PRIM_PUT_ALONG:
        return 1;
    default:
        return 0;
    }
}

/* Reuses an input's buffer for the output when nothing else can see that input: it is held
 * only by this node, its buffer only by it, it is row-contiguous with the output's shape and
 * byte size, and the kernel allows it (donatable_inputs). */
static lx_buffer *try_donation(lx_node *n) {
    int k = donatable_inputs(n);
    size_t nbytes = lx_node_nbytes(n);
    for (int i = 0; i < k; i++) {
        lx_node *in = n->inputs[i];
        lx_buffer *b = in->buf;
        if (!b || b->external || b->size != nbytes || in->offset != 0) continue;
        if (lx_dtype_size((lx_dtype)in->dtype) != lx_dtype_size((lx_dtype)n->dtype)) continue;
        if (in->ndim != n->ndim || memcmp(in->shape, n->shape, sizeof(int32_t) * n->ndim)) continue;
        if (!lx_node_is_row_contiguous(in)) continue;
        if (atomic_load_explicit(&in->refs, memory_order_acquire) != 1) continue;
        if (atomic_load_explicit(&b->refs, memory_order_acquire) != 1) continue;
        lx_buffer_retain(b);
        return b;
    }
    return NULL;
}

/* ---- kernel calls ----------------------------------------------------------------------- */

static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;

void *lx_kernel_scratch(lx_kctx *ctx, size_t nbytes) {
    lx_buffer *b = lx_buffer_alloc(ctx->dev->kind, nbytes ? nbytes : 1);
    if (!b) return NULL;
    pthread_mutex_lock(&scratch_lock); /* kernels may ask from their pool's threads */
    if (ctx->n_scratch == ctx->cap_scratch) {
        int cap = ctx->cap_scratch * 2;
        lx_buffer **p = ctx->scratch == ctx->scratch_inline ? malloc(sizeof *p * (size_t)cap)
                                                            : realloc(ctx->scratch, sizeof *p * (size_t)cap);
        if (!p) {
            pthread_mutex_unlock(&scratch_lock);
            lx_buffer_release(b);
            lx_set_error(LX_E_OOM, "kernel scratch: out of host memory");
            return NULL;
        }
        if (ctx->scratch == ctx->scratch_inline)
            memcpy(p, ctx->scratch_inline, sizeof ctx->scratch_inline);
        ctx->scratch = p;
        ctx->cap_scratch = cap;
    }
    ctx->scratch[ctx->n_scratch++] = b;
    pthread_mutex_unlock(&scratch_lock);
    return b->ptr;
}

static void kctx_release_scratch(lx_kctx *ctx) {
    for (int i = 0; i < ctx->n_scratch; i++) lx_buffer_release(ctx->scratch[i]);
    if (ctx->scratch != ctx->scratch_inline) free(ctx->scratch);
    ctx->n_scratch = 0;
}

lx_status lx_run_kernel(const lx_device_impl *dev, lx_kernel_fn k, lx_node *n) {
    lx_kctx ctx = {.dev = dev, .cap_scratch = 4};
    ctx.scratch = ctx.scratch_inline;
    lx_status st = k(&ctx, n);
    kctx_release_scratch(&ctx);
    return st;
}

static lx_status run_node(lx_node *n) {
    for (int i = 0; i < n->n_inputs; i++) {
        lx_node *in = n->inputs[i];
        lx_wait_node(in);
        if (lx_node_state_of(in) != LX_NODE_READY) {
            char what[96];
            snprintf(what, sizeof what, "%s: an input failed to evaluate", n->op);
            return fail_from_last(what);
        }
    }
    if (n->prim == LX_PRIM_NONE) return LX_OK; /* a leaf that was never computed? */
    if (lx_prim_is_view(n->prim)) return lx_view_eval(n);
    const lx_device_impl *dev = lx_device_get((lx_device)n->device);
    lx_kernel_fn k = dev ? dev->kernels[n->prim] : NULL;
    if (!k)
        return lx_set_error(LX_E_UNSUPPORTED, "%s: primitive %s is not implemented by the %s "
                            "device", n->op, lx_prim_name(n->prim), dev ? dev->name : "(absent)");
    lx_buffer *b = try_donation(n);
    if (!b) b = lx_buffer_alloc((lx_device)n->device, lx_node_nbytes(n));
    if (!b) return lx_error() ? lx_error() : LX_E_OOM;
    n->buf = b;
    lx_node_set_row_strides(n);
    lx_status st = lx_run_kernel(dev, k, n);
    if (st != LX_OK) {
        n->buf = NULL;
        lx_buffer_release(b);
        if (lx_error() == LX_OK) lx_set_error(st, "%s: kernel %s failed", n->op, lx_prim_name(n->prim));
    }
    return st;
}

/* Runs a tape in order. On failure, the failed node and the rest go back to LAZY. */
static lx_status exec_tape(lx_tape *t) {
    lx_status st = LX_OK;
    size_t i = 0;
    uint64_t prev_seq = tl_exec_seq;
    tl_exec_seq = t->seq;
    for (; i < t->n; i++) {
        lx_node *n = t->nodes[i];
        lx_status prior = lx_error();
        st = run_node(n);
        if (st != LX_OK) {
            const char *msg = lx_error() != prior ? lx_error_message() : "";
            if (prior != LX_OK && lx_error() == prior) msg = "(see the earlier error)";
            pthread_mutex_lock(&fail_lock);
            last_fail_status = st;
            strncpy(last_fail_message, msg, sizeof last_fail_message - 1);
            pthread_mutex_unlock(&fail_lock);
            break;
        }
        lx_node_detach(n);
        atomic_store_explicit(&n->state, LX_NODE_READY, memory_order_release);
        lx_node_release(n);
    }
    for (; i < t->n; i++) {
        atomic_store_explicit(&t->nodes[i]->state, LX_NODE_LAZY, memory_order_release);
        lx_node_release(t->nodes[i]);
    }
    tl_exec_seq = prev_seq;
    notify_ready();
    return st;
}

static void tape_free(lx_tape *t) {
    free(t->nodes);
    free(t);
}

/* ---- the async worker ------------------------------------------------------------------ */

static void *worker_main(void *arg) {
    (void)arg;
    tl_is_worker = true;
    for (;;) {
        pthread_mutex_lock(&q_lock);
        while (!q_head) pthread_cond_wait(&q_cond, &q_lock);
        lx_tape *t = q_head;
        q_head = t->next;
        if (!q_head) q_tail = NULL;
        q_running = t;
        pthread_mutex_unlock(&q_lock);

        lx_status st = exec_tape(t);
        if (st != LX_OK && t->owner) {
            pthread_mutex_lock(&t->owner->lock);
            if (t->owner->status == LX_OK) {
                t->owner->status = st;
                snprintf(t->owner->message, sizeof t->owner->message, "%s",
                         lx_error_message());
            }
            pthread_mutex_unlock(&t->owner->lock);
        }
        lx_clear_error();

        pthread_mutex_lock(&q_lock);
        q_running = NULL;
        pthread_cond_broadcast(&q_done);
        pthread_mutex_unlock(&q_lock);
        tape_free(t);
    }
    return NULL;
}

static lx_status enqueue(lx_tape *t) {
    pthread_mutex_lock(&q_lock);
    if (!worker_started) {
        if (pthread_create(&worker, NULL, worker_main, NULL) != 0) {
            pthread_mutex_unlock(&q_lock);
            return LX_E_INTERNAL;
        }
        pthread_detach(worker);
        worker_started = true;
    }
    t->next = NULL;
    if (q_tail) q_tail->next = t; else q_head = t;
    q_tail = t;
    pthread_cond_signal(&q_cond);
    pthread_mutex_unlock(&q_lock);
    return LX_OK;
}

/* Waits until every queued tape with a sequence number below `seq` has run. */
static void wait_queue_before(uint64_t seq) {
    pthread_mutex_lock(&q_lock);
    for (;;) {
        bool busy = (q_running && q_running->seq < seq) || (q_head && q_head->seq < seq);
        if (!busy) break;
        pthread_cond_wait(&q_done, &q_lock);
    }
    pthread_mutex_unlock(&q_lock);
}

/* Allocator pressure: let earlier work finish (it releases buffers). The worker cannot wait
 * for itself; an inline evaluation waits only for tapes older than its own. */
static void memory_pressure(void) {
    if (tl_is_worker) return;
    wait_queue_before(tl_exec_seq ? tl_exec_seq : UINT64_MAX);
}

static pthread_once_t hook_once = PTHREAD_ONCE_INIT;
static void install_hook(void) {
    lx_devices_init();
    lx_allocator_set_pressure_hook(memory_pressure);
}

/* ---- public entry points ---------------------------------------------------------------- */

lx_status lx_synchronize(void) {
    wait_queue_before(UINT64_MAX);
    for (int d = 0; d < 2; d++) {
        const lx_device_impl *dev = lx_device_get((lx_device)d);
        if (dev && dev->synchronize) dev->synchronize(dev);
    }
    deliver_async_error();
    return lx_error();
}

/* Looks up the outputs (with references), marking them kept when `keep`. */
static lx_node **get_outputs(const lx_array *outs, int n, const char *op, bool keep,
                             lx_node **small, int small_n) {
    lx_node **nodes = n <= small_n ? small : calloc((size_t)n, sizeof *nodes);
    if (!nodes) {
        lx_set_error(LX_E_OOM, "%s: out of host memory", op);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        nodes[i] = lx_handle_get_nth(outs[i], op, "outs", i);
        if (nodes[i] && keep) lx_handle_keep(outs[i], op);
    }
    return nodes;
}

static void put_outputs(lx_node **nodes, int n, lx_node **small) {
    for (int i = 0; i < n; i++)
        if (nodes[i]) lx_node_release(nodes[i]);
    if (nodes != small) free(nodes);
}

static lx_status eval_common(const lx_array *outs, int n, bool async, const char *op) {
    pthread_once(&hook_once, install_hook);
    if (n < 0 || (n > 0 && !outs)) {
        lx_set_error(LX_E_ARG, "%s: outs is NULL or n is negative (%d)", op, n);
        lx_sweep();
        return lx_error();
    }
    deliver_async_error();
    lx_node *small[8];
    lx_node **nodes = get_outputs(outs, n, op, true, small, 8);
    lx_sweep();
    if (!nodes) return lx_error();
    lx_status st = LX_OK;
    lx_tape *t = schedule(nodes, n, &st);
    if (t && t->n == 0) {
        tape_free(t);
        t = NULL;
    }
    if (t && async) {
        t->owner = owner_get();
        if (enqueue(t) != LX_OK) {
            st = exec_tape(t); /* no worker thread: run it here */
            tape_free(t);
        }
    } else if (t) {
        st = exec_tape(t);
        tape_free(t);
    }
    if (!async) {
        st = wait_outputs(nodes, n, st, op);
        deliver_async_error();
    }
    put_outputs(nodes, n, small);
    return lx_error() != LX_OK ? lx_error() : st;
}

lx_status lx_eval_n(const lx_array *outs, int n) { return eval_common(outs, n, false, "lx_eval"); }

lx_status lx_async_eval_n(const lx_array *outs, int n) {
    return eval_common(outs, n, true, "lx_async_eval");
}

lx_status lx_eval_nodes(lx_node *const *nodes, int n) {
    pthread_once(&hook_once, install_hook);
    lx_status st = LX_OK;
    lx_tape *t = schedule(nodes, n, &st);
    if (!t) return st;
    if (t->n) st = exec_tape(t);
    tape_free(t);
    st = wait_outputs(nodes, n, st, "evaluation");
    deliver_async_error();
    return st;
}
