/*
 * eval.c -- lx_eval / lx_async_eval: sweep, schedule, execute, wait.
 *
 * Scheduling claims the LAZY nodes an evaluation needs (LAZY -> SCHEDULED) under one lock and
 * lists them in depth-first post-order (a tape), which keeps few intermediates alive at once.
 * A node goes back to LAZY (a failed tape) only under that lock too, so a tape's walk sees
 * states that cannot reorder it (exec_tape).
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
#include "graph/prim_info.h"

typedef struct eval_owner {
    pthread_mutex_t lock;
    lx_status status; /* first error of this thread's async work not yet reported */
    char message[512];
} eval_owner;

typedef struct lx_tape {
    lx_node **nodes;
    size_t n;
    uint64_t seq;
    int device; /* the queue it runs on (async) */
    eval_owner *owner;
    struct lx_tape *next;
} lx_tape;

static pthread_mutex_t sched_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_seq = 1;

/* Node waiters sleep here; executors broadcast when a tape finishes. */
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;

/* The async queues: one worker thread per device, each running its tapes in order. A tape
 * goes to the queue of its first output's device. */
typedef struct {
    lx_tape *head, *tail;
    lx_tape *running;
    bool started;
    pthread_t thread;
} work_queue;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER; /* guards both queues */
static pthread_cond_t q_cond[2] = {PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};
static pthread_cond_t q_done = PTHREAD_COND_INITIALIZER;
static work_queue queues[2];

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

/* Claims a LAZY node for tape `seq`. Claims are made under sched_lock only, so no one else
 * moves a LAZY node to SCHEDULED between the check and the CAS: tape_seq is written first, and
 * a waiter that sees the node SCHEDULED (acquire) sees which tape claimed it. Un-claims
 * (SCHEDULED -> LAZY, a failed tape's nodes) are made under sched_lock too (exec_tape). */
static bool claim(lx_node *n, uint64_t seq) {
    if (atomic_load_explicit(&n->state, memory_order_acquire) != LX_NODE_LAZY) return false;
    atomic_store_explicit(&n->tape_seq, seq, memory_order_relaxed);
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
        if (!outs[o] || !claim(outs[o], t->seq)) continue;
        /* a node claimed but neither on the stack nor on the tape would stay SCHEDULED and
         * its waiters would wait forever: un-claim it when its push fails */
        if (!(ok = stack_push(&depth, outs[o])))
            atomic_store_explicit(&outs[o]->state, LX_NODE_LAZY, memory_order_release);
        while (ok && depth) {
            dfs_frame *f = &tl_stack[depth - 1];
            if (f->next < f->node->n_inputs) {
                lx_node *in = f->node->inputs[f->next++];
                if (claim(in, t->seq) && !(ok = stack_push(&depth, in)))
                    atomic_store_explicit(&in->state, LX_NODE_LAZY, memory_order_release);
            } else if ((ok = tape_push(t, &cap, f->node))) {
                depth--; /* else it stays on the stack, un-claimed below */
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
        lx_wait_node_data(nodes[i]);
        if (st == LX_OK && lx_node_state_of(nodes[i]) != LX_NODE_READY) {
            char what[96];
            snprintf(what, sizeof what, "%s: output %d failed to evaluate", op, i);
            st = fail_from_last(what);
        }
    }
    return st;
}

/* Tapes are ordered and a tape waits only for nodes of earlier tapes. A node an earlier tape
 * failed goes back to LAZY and may be claimed again by a later tape before a waiter of this
 * tape wakes: that claim is not waited for (the input has failed, and the later tape may be
 * waiting for this one's nodes: a deadlock). */
void lx_wait_node(lx_node *n) {
    if (lx_node_state_of(n) != LX_NODE_SCHEDULED) return;
    uint64_t mine = tl_exec_seq;
    pthread_mutex_lock(&ready_lock);
    while (lx_node_state_of(n) == LX_NODE_SCHEDULED &&
           !(mine && atomic_load_explicit(&n->tape_seq, memory_order_relaxed) > mine))
        pthread_cond_wait(&ready_cond, &ready_lock);
    pthread_mutex_unlock(&ready_lock);
}

void lx_wait_node_data(lx_node *n) {
    lx_wait_node(n);
    if (lx_node_state_of(n) == LX_NODE_READY) lx_buffer_wait(n->buf);
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
    return lx_prim_donatable(n); /* the primitive table's (graph/prim_info.h) */
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
        /* inflight first: completions take refs before inflight_refs and give them back
         * after, so a race only ever makes the difference look larger (no donation) */
        uint32_t inflight = atomic_load_explicit(&b->inflight_refs, memory_order_acquire);
        if (atomic_load_explicit(&b->refs, memory_order_acquire) - inflight != 1) continue;
        lx_buffer_retain(b);
        return b;
    }
    return NULL;
}

/* ---- completions ------------------------------------------------------------------------
 * On an asynchronous device a kernel may still run after it returned: the buffers it reads
 * (its inputs'), writes (its output) and its scratch must not go back to the allocator, where
 * another kernel could take them, before its event has completed. Each launch leaves one
 * entry here holding references to those buffers; entries are retired in launch order as
 * their events complete (polled at each launch, waited for by reads, lx_eval, lx_synchronize
 * and memory pressure). */

typedef struct completion {
    lx_event *event;
    lx_buffer *out;          /* whose write_event is `event` */
    int n_bufs;
    lx_buffer **bufs;        /* held until the event completes */
    struct completion *next;
} completion;

typedef struct {
    pthread_mutex_t lock;
    completion *head, *tail;
} completion_list;

static completion_list completions[2] = {
    {.lock = PTHREAD_MUTEX_INITIALIZER},
    {.lock = PTHREAD_MUTEX_INITIALIZER},
};

static void completion_retire(const lx_device_impl *dev, completion *c) {
    lx_event *expect = c->event;
    if (c->out) {
        atomic_compare_exchange_strong(&c->out->write_event, &expect, NULL);
        atomic_fetch_sub_explicit(&c->out->inflight_refs, 1, memory_order_release);
        lx_buffer_release(c->out);
    }
    for (int i = 0; i < c->n_bufs; i++) {
        atomic_fetch_sub_explicit(&c->bufs[i]->inflight_refs, 1, memory_order_release);
        lx_buffer_release(c->bufs[i]);
    }
    dev->event_free(dev, c->event);
    free(c);
}

/* Retires the completed entries at the head (all of them, waiting, when `wait`). */
static void completions_poll(int d, bool wait) {
    const lx_device_impl *dev = lx_device_get((lx_device)d);
    if (!dev || !dev->event_record) return;
    completion_list *l = &completions[d];
    for (;;) {
        pthread_mutex_lock(&l->lock);
        completion *c = l->head;
        bool done = false;
        if (c && wait) {
            dev->event_wait(dev, c->event); /* a device error ends the wait too */
            done = true;
        } else if (c) {
            done = dev->event_query(dev, c->event);
        }
        if (done) {
            l->head = c->next;
            if (!l->head) l->tail = NULL;
        }
        pthread_mutex_unlock(&l->lock);
        if (!done) return;
        completion_retire(dev, c);
    }
}

void completions_drain(int d) { completions_poll(d, true); }
void lx_device_retire(int d) { completions_poll(d, false); }

/* Waits until the buffer's last writer has completed (a no-op on synchronous devices). */
lx_status lx_buffer_wait(lx_buffer *b) {
    if (!b || !atomic_load_explicit(&b->write_event, memory_order_acquire)) return LX_OK;
    completions_drain(b->device);
    return LX_OK;
}

/* ---- kernel calls ----------------------------------------------------------------------- */

static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;

void *lx_kernel_scratch(lx_kctx *ctx, size_t nbytes) {
    /* a pool helper of the kernel must not wait for work in flight: that includes the
     * evaluation running this kernel */
    bool own = pthread_equal(pthread_self(), ctx->thread);
    lx_buffer *b = lx_buffer_alloc_ex(ctx->dev->kind, nbytes ? nbytes : 1, own);
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

/* After an asynchronous launch: an entry holding n's buffers and the scratch until the event
 * completes. If no event or entry can be had, waits for the device instead. */
static void launched(const lx_device_impl *dev, lx_kctx *ctx, lx_node *n) {
    int d = dev->kind;
    completions_poll(d, false);
    lx_event *ev = dev->event_record(dev, ctx->stream);
    int nb = n->n_inputs + ctx->n_scratch;
    completion *c = ev ? calloc(1, sizeof *c + sizeof(lx_buffer *) * (size_t)(nb ? nb : 1)) : NULL;
    if (!c) {
        if (ev) dev->event_free(dev, ev);
        dev->synchronize(dev);
        kctx_release_scratch(ctx);
        return;
    }
    c->event = ev;
    c->bufs = (lx_buffer **)(c + 1);
    for (int i = 0; i < n->n_inputs; i++) {
        lx_buffer *b = n->inputs[i]->buf;
        if (!b) continue;
        lx_buffer_retain(b);
        atomic_fetch_add_explicit(&b->inflight_refs, 1, memory_order_acq_rel);
        c->bufs[c->n_bufs++] = b;
    }
    for (int i = 0; i < ctx->n_scratch; i++) { /* the kctx's reference becomes the entry's */
        atomic_fetch_add_explicit(&ctx->scratch[i]->inflight_refs, 1, memory_order_acq_rel);
        c->bufs[c->n_bufs++] = ctx->scratch[i];
    }
    if (ctx->scratch != ctx->scratch_inline) free(ctx->scratch);
    ctx->n_scratch = 0;
    if (n->buf) {
        lx_buffer_retain(n->buf);
        atomic_fetch_add_explicit(&n->buf->inflight_refs, 1, memory_order_acq_rel);
        c->out = n->buf;
        atomic_store_explicit(&n->buf->write_event, ev, memory_order_release);
    }
    completion_list *l = &completions[d];
    pthread_mutex_lock(&l->lock);
    if (l->tail) l->tail->next = c; else l->head = c;
    l->tail = c;
    pthread_mutex_unlock(&l->lock);
}

lx_status lx_run_kernel(const lx_device_impl *dev, lx_kernel_fn k, lx_node *n) {
    lx_kctx ctx; /* field by field: the inline scratch slots need no zeroing */
    ctx.dev = dev;
    ctx.stream = NULL;
    ctx.scratch = ctx.scratch_inline;
    ctx.n_scratch = 0;
    ctx.cap_scratch = 4;
    ctx.scratch_lock = NULL;
    ctx.thread = pthread_self();
    lx_status st = k(&ctx, n);
    if (st == LX_OK && dev->event_record) launched(dev, &ctx, n);
    else if (dev->event_record) { /* a failed launch may have queued part of its work */
        dev->synchronize(dev);
        kctx_release_scratch(&ctx);
    } else kctx_release_scratch(&ctx);
    return st;
}

/* ---- transfers --------------------------------------------------------------------------- */

/* TRANSFER: n's input (READY on its device) copied into n's fresh row-contiguous buffer on
 * n's device. A strided input is made contiguous on its own device first. Copies complete
 * before they return (device.h), so n's buffer needs no event. */
static lx_status run_transfer(lx_node *n) {
    lx_node *src = n->inputs[0];
    const lx_device_impl *from = lx_device_get((lx_device)src->device);
    const lx_device_impl *to = lx_device_get((lx_device)n->device);
    if (!from || !to)
        return lx_set_error(LX_E_DEVICE, "%s: a device of the transfer is absent", n->op);
    size_t nbytes = lx_node_nbytes(n);
    lx_buffer *tmp = NULL;
    const char *sp = NULL;
    if (nbytes) {
        if (lx_node_is_row_contiguous(src)) {
            sp = (const char *)src->buf->ptr + src->offset * (int64_t)lx_dtype_size((lx_dtype)src->dtype);
        } else {
            if (!(tmp = lx_copy_contiguous(src, (lx_dtype)src->dtype, n->op))) return lx_error();
            sp = tmp->ptr;
        }
    }
    lx_buffer *b = lx_buffer_alloc((lx_device)n->device, nbytes);
    if (!b) {
        if (tmp) lx_buffer_release(tmp);
        return lx_error() ? lx_error() : LX_E_OOM;
    }
    lx_status st = LX_OK;
    if (nbytes) {
        if (from->host_visible) {
            /* a host-visible source on an asynchronous device: let its writer finish */
            lx_buffer_wait(tmp ? tmp : src->buf);
            st = to->copy_from_host(to, b->ptr, sp, nbytes);
        } else if (to->host_visible) {
            st = from->copy_to_host(from, b->ptr, sp, nbytes);
        } else { /* two devices that cannot see each other: through host memory */
            void *h = malloc(nbytes);
            st = h ? from->copy_to_host(from, h, sp, nbytes) : LX_E_OOM;
            if (st == LX_OK) st = to->copy_from_host(to, b->ptr, h, nbytes);
            if (!h) lx_set_error(LX_E_OOM, "%s: out of host memory for a transfer", n->op);
            free(h);
        }
    }
    if (tmp) lx_buffer_release(tmp);
    if (st != LX_OK) {
        lx_buffer_release(b);
        if (lx_error() == LX_OK)
            lx_set_error(st, "%s: copying %zu bytes from %s to %s failed", n->op, nbytes,
                         from->name, to->name);
        return st;
    }
    n->buf = b;
    n->offset = 0;
    lx_node_set_row_strides(n);
    return LX_OK;
}

static lx_status run_node(lx_node *n) {
    for (int i = 0; i < n->n_inputs; i++) {
        lx_node *in = n->inputs[i];
        /* An input claimed by this very tape but not yet run is listed after its consumer:
         * waiting would never end (a tape runs in order). Only a scheduling bug does that; it
         * is reported instead of hanging. */
        if (lx_node_state_of(in) == LX_NODE_SCHEDULED && tl_exec_seq &&
            atomic_load_explicit(&in->tape_seq, memory_order_relaxed) == tl_exec_seq)
            return lx_set_error(LX_E_INTERNAL, "%s: its input %s is scheduled after it on the "
                                "same tape (an evaluation ordering bug)", n->op, in->op);
        lx_wait_node(in);
        if (lx_node_state_of(in) != LX_NODE_READY) {
            char what[96];
            snprintf(what, sizeof what, "%s: an input failed to evaluate", n->op);
            return fail_from_last(what);
        }
    }
    if (n->prim == LX_PRIM_NONE) return LX_OK; /* a leaf that was never computed? */
    if (lx_prim_is_view(n->prim)) return lx_view_eval(n);
    if (n->prim == LX_PRIM_TRANSFER) return run_transfer(n);
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
    /* The un-claim (SCHEDULED -> LAZY) is made under sched_lock, as claims are. schedule()'s
     * depth-first walk relies on no node going back to LAZY while it holds the lock: a node it
     * finds SCHEDULED by another tape is left out (and waited for), so if that tape failed and
     * un-claimed it mid-walk, the walk could claim it when it reaches it again through another
     * consumer and list it after a consumer it had already listed. Executing that tape, the
     * consumer would wait for a node of its own tape that runs only later: a hang (seen with
     * an allocation failing in the async decode loop while the next step was being scheduled).
     * Under the lock, the states a walk sees are LAZY (only it claims them), SCHEDULED (which
     * may only become READY meanwhile) or READY, and its tape is in dependency order. */
    if (i < t->n) {
        pthread_mutex_lock(&sched_lock);
        for (size_t j = i; j < t->n; j++)
            atomic_store_explicit(&t->nodes[j]->state, LX_NODE_LAZY, memory_order_release);
        pthread_mutex_unlock(&sched_lock);
        for (; i < t->n; i++) lx_node_release(t->nodes[i]);
    }
    tl_exec_seq = prev_seq;
    notify_ready();
    return st;
}

static void tape_free(lx_tape *t) {
    free(t->nodes);
    free(t);
}

/* ---- the async workers ------------------------------------------------------------------ */

static void *worker_main(void *arg) {
    work_queue *q = arg;
    int d = (int)(q - queues);
    tl_is_worker = true;
    for (;;) {
        pthread_mutex_lock(&q_lock);
        while (!q->head) pthread_cond_wait(&q_cond[d], &q_lock);
        lx_tape *t = q->head;
        q->head = t->next;
        if (!q->head) q->tail = NULL;
        q->running = t;
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
        q->running = NULL;
        pthread_cond_broadcast(&q_done);
        pthread_mutex_unlock(&q_lock);
        tape_free(t);
    }
    return NULL;
}

static lx_status enqueue(lx_tape *t) {
    work_queue *q = &queues[t->device];
    pthread_mutex_lock(&q_lock);
    if (!q->started) {
        if (pthread_create(&q->thread, NULL, worker_main, q) != 0) {
            pthread_mutex_unlock(&q_lock);
            return LX_E_INTERNAL;
        }
        pthread_detach(q->thread);
        q->started = true;
    }
    t->next = NULL;
    if (q->tail) q->tail->next = t; else q->head = t;
    q->tail = t;
    pthread_cond_signal(&q_cond[t->device]);
    pthread_mutex_unlock(&q_lock);
    return LX_OK;
}

/* Waits until every queued tape (of every queue) with a sequence number below `seq` has run. */
static void wait_queue_before(uint64_t seq) {
    pthread_mutex_lock(&q_lock);
    for (;;) {
        bool busy = false;
        for (int d = 0; d < 2 && !busy; d++) {
            const work_queue *q = &queues[d];
            busy = (q->running && q->running->seq < seq) || (q->head && q->head->seq < seq);
        }
        if (!busy) break;
        pthread_cond_wait(&q_done, &q_lock);
    }
    pthread_mutex_unlock(&q_lock);
}

/* Allocator pressure: let earlier work finish (it releases buffers), on every queue, and let
 * the devices finish what they were given (their completions release input buffers). A tape
 * only waits for older tapes: a worker's own older tapes are done, the other queue's are
 * waited for; an inline evaluation waits for tapes older than its own. */
static void memory_pressure(void) {
    if (tl_is_worker && !tl_exec_seq) return;
    wait_queue_before(tl_exec_seq ? tl_exec_seq : UINT64_MAX);
    for (int d = 0; d < 2; d++) completions_drain(d);
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
        completions_drain(d);
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
        t->device = LX_CPU;
        for (int i = 0; i < n; i++)
            if (nodes[i]) {
                t->device = nodes[i]->device;
                break;
            }
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
