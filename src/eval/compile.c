/*
 * compile.c -- compiled closures: trace, simplify, fuse, cache and replay (see compile.h).
 *
 * Vocabulary. While a trace is turned into a tape, the graph is a list of values in
 * topological order ("wval"): the inputs (placeholders) first, then constants and ops as the
 * depth-first walk from the outputs finishes them. Simplification maps values to
 * representatives (rep), fusion maps fused members to the FUSED node or its PART views (fmap),
 * and the final tape is a second depth-first walk from the outputs over the mapped graph.
 */
#include "eval/compile.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/fused.h"
#include "graph/prims.h"
#include "graph/prims_scan.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/handle.h"
#include "core/node.h"
#include "ops/ops.h"

#define MAX_OUTPUTS 1024
#define DEFAULT_CACHE_LIMIT 32
#define MAX_GROUP_MEMBERS 160

/* ---- global switches ------------------------------------------------------------------- */

static atomic_int g_enabled = -1; /* -1: not read from the environment yet */
static atomic_int g_cache_limit = DEFAULT_CACHE_LIMIT;
static _Thread_local int tl_tracing;

bool lx_compile_tracing(void) { return tl_tracing > 0; }

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

int lx_set_compile_cache_limit(int traces) {
    if (traces < 0) {
        lx_set_error(LX_E_ARG, "lx_set_compile_cache_limit: the limit %d is negative", traces);
        return atomic_load(&g_cache_limit);
    }
    return atomic_exchange(&g_cache_limit, traces);
}

/* ---- the tape ------------------------------------------------------------------------- */

/* How a shapeless replay computes an op's shape. */
enum {
    R_LITERAL = 0, /* the traced shape (the op does not depend on the inputs) */
    R_SAME0,       /* input 0's shape */
    R_BCAST,       /* broadcast of all inputs */
    R_FUSED,       /* broadcast of all inputs and min_ndim ones; params patched */
    R_REDUCE,      /* reduced axes -> 1 (aux: scale = 1 / (count - (aux - 1)) when aux > 0) */
    R_ARGRED,      /* axis -> 1 */
    R_MATMUL,
    R_PERMUTE,
    R_RANDOM,      /* key's leading dims + the last aux traced dims */
    R_SQUEEZE,     /* RESHAPE that drops / inserts size-1 dims (map) */
    R_PART_FUSED,  /* output aux of the FUSED input */
    R_MM_BCAST,    /* a matmul operand broadcast to the batch it shares with value `ref` */
};

typedef struct tape_op {
    uint16_t prim;
    uint8_t dtype, ndim, device, rule;
    int8_t map[LX_MAX_NDIM]; /* R_SQUEEZE: input dim of each output dim, -1 for an inserted 1 */
    int32_t shape[LX_MAX_NDIM];
    uint32_t params_off, params_size;
    uint32_t in_off;
    uint16_t n_in;
    int32_t aux;
    int32_t ref;             /* R_MM_BCAST: the other operand's value index */
    const char *op;
} tape_op;

typedef struct in_key {
    uint8_t dtype, ndim, device;
    int32_t shape[LX_MAX_NDIM];
} in_key;

typedef struct trace {
    struct trace *prev, *next; /* the closure's list, most recently used first */
    int n_in, n_out, n_const, n_ops;
    bool shapeless;
    in_key *keys;
    lx_handle_list handles; /* every handle made while tracing */
    lx_node **consts;       /* retained */
    tape_op *ops;
    int32_t *ins;           /* op inputs, flattened: value indices */
    unsigned char *params;  /* op params, 16-byte aligned offsets */
    int32_t *outs;          /* value index of each output */
    uint32_t max_params;
    int max_in;
} trace;

struct lx_closure {
    lx_fn fn;
    void *ctx;
    int n_out;
    unsigned flags;
    pthread_mutex_t lock;
    trace *head, *tail;
    int n_traces;
    atomic_int trace_count;
};

static void trace_free(trace *t) {
    if (!t) return;
    for (int i = 0; i < t->n_const; i++)
        if (t->consts[i]) lx_node_release(t->consts[i]);
    lx_handle_list_free(&t->handles);
    free(t->consts);
    free(t->ops);
    free(t->ins);
    free(t->params);
    free(t->outs);
    free(t->keys);
    free(t);
}

/* ---- small containers ------------------------------------------------------------------- */

typedef struct {
    lx_node **keys;
    int32_t *vals;
    size_t cap, n;
} ptrmap;

static size_t ptr_hash(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static bool ptrmap_grow(ptrmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    lx_node **k = calloc(cap, sizeof *k);
    int32_t *v = malloc(cap * sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = ptr_hash(m->keys[i]) & (cap - 1);
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = cap;
    return true;
}

static int32_t ptrmap_get(const ptrmap *m, const lx_node *key) {
    if (!m->cap) return -1;
    size_t j = ptr_hash(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == key) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

static bool ptrmap_put(ptrmap *m, lx_node *key, int32_t val) {
    if ((m->n + 1) * 2 > m->cap && !ptrmap_grow(m)) return false;
    size_t j = ptr_hash(key) & (m->cap - 1);
    while (m->keys[j]) j = (j + 1) & (m->cap - 1);
    m->keys[j] = key;
    m->vals[j] = val;
    m->n++;
    return true;
}

static void ptrmap_free(ptrmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* A growable int32 vector. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static bool ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return false;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return true;
}

/* ---- the working graph ------------------------------------------------------------------ */

enum { V_INPUT = 0, V_CONST, V_OP };

typedef struct wval {
    uint8_t kind, dtype, ndim, device;
    uint16_t prim;
    int32_t shape[LX_MAX_NDIM];
    int64_t size;
    const void *params; /* the traced node's (alive while the trace is), or owned (fusion) */
    uint32_t params_size;
    bool params_owned;
    int32_t *in;        /* value indices (heap) */
    int n_in;
    const char *op;
    lx_node *node;      /* V_CONST: the constant (retained by the graph); V_OP: the traced node */
    int32_t rep;        /* simplify: the value standing for this one */
    int32_t group;      /* fuse: group id, or -1 */
    int32_t fmap;       /* fuse: the FUSED / PART value standing for a member, or -1 */
    int32_t aux;        /* PART of a fused group: output index */
    int32_t shape_ref;  /* shapeless: a BROADCAST into a matmul: the other operand, or -1 */
    bool live;
} wval;

typedef struct graph {
    wval *v;
    int n, cap;
    int n_in;
    bool shapeless;
    int32_t *outs;
    int n_out;
    /* fusion scratch */
    int32_t *cons_off, *cons; /* consumers (CSR) */
    bool *is_out;
    int32_t *stamp, *stamp2;
    int stamp_gen;
} graph;

static int graph_add(graph *g) {
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 128;
        wval *p = realloc(g->v, (size_t)cap * sizeof *p);
        if (!p) return -1;
        g->v = p;
        g->cap = cap;
    }
    wval *w = &g->v[g->n];
    memset(w, 0, sizeof *w);
    w->rep = g->n;
    w->group = -1;
    w->fmap = -1;
    w->shape_ref = -1;
    return g->n++;
}

static void graph_free(graph *g) {
    for (int i = 0; i < g->n; i++) {
        wval *w = &g->v[i];
        free(w->in);
        if (w->params_owned) free((void *)w->params);
        if (w->kind == V_CONST && w->node) lx_node_release(w->node);
    }
    free(g->v);
    free(g->outs);
    free(g->cons_off);
    free(g->cons);
    free(g->is_out);
    free(g->stamp);
    free(g->stamp2);
    memset(g, 0, sizeof *g);
}

static void set_shape(wval *w, const int32_t *shape, int ndim) {
    w->ndim = (uint8_t)ndim;
    w->size = 1;
    for (int i = 0; i < LX_MAX_NDIM; i++) {
        w->shape[i] = i < ndim ? shape[i] : 0;
        if (i < ndim) w->size *= shape[i];
    }
}

static lx_status oom(const char *what) {
    return lx_set_error(LX_E_OOM, "lx_call: out of host memory %s", what);
}

/* Depth-first from the outputs: every LAZY node becomes an op, anything else (READY, or being
 * computed) a constant, the placeholders the inputs. */
static lx_status graph_collect(graph *g, lx_node *const *ph, int n_in, lx_node *const *outs,
                               int n_out) {
    ptrmap map = {0};
    typedef struct { lx_node *n; int next; } frame;
    frame *stack = NULL;
    size_t depth = 0, cap = 0;
    lx_status st = LX_OK;
    g->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        int v = graph_add(g);
        if (v < 0 || !ptrmap_put(&map, ph[i], v)) {
            st = oom("for the trace");
            goto done;
        }
        wval *w = &g->v[v];
        w->kind = V_INPUT;
        w->dtype = ph[i]->dtype;
        w->device = ph[i]->device;
        w->prim = LX_PRIM_PLACEHOLDER;
        w->op = ph[i]->op;
        set_shape(w, ph[i]->shape, ph[i]->ndim);
    }
    g->outs = malloc(sizeof(int32_t) * (size_t)(n_out ? n_out : 1));
    if (!g->outs) {
        st = oom("for the trace");
        goto done;
    }
    g->n_out = n_out;
    for (int o = 0; o < n_out; o++) {
        lx_node *root = outs[o];
        int32_t have = ptrmap_get(&map, root);
        if (have >= 0) {
            g->outs[o] = have;
            continue;
        }
        /* push root */
        if (depth == cap) {
            cap = cap ? cap * 2 : 256;
            frame *p = realloc(stack, cap * sizeof *p);
            if (!p) { st = oom("for the trace"); goto done; }
            stack = p;
        }
        stack[depth++] = (frame){root, 0};
        while (depth) {
            frame *f = &stack[depth - 1];
            lx_node *n = f->n;
            bool lazy = lx_node_state_of(n) == LX_NODE_LAZY && n->prim != LX_PRIM_NONE;
            if (lazy && f->next < n->n_inputs) {
                lx_node *in = n->inputs[f->next++];
                if (ptrmap_get(&map, in) >= 0) continue;
                if (depth == cap) {
                    cap *= 2;
                    frame *p = realloc(stack, cap * sizeof *p);
                    if (!p) { st = oom("for the trace"); goto done; }
                    stack = p;
                }
                stack[depth++] = (frame){in, 0};
                continue;
            }
            depth--;
            int v = graph_add(g);
            if (v < 0 || !ptrmap_put(&map, n, v)) { st = oom("for the trace"); goto done; }
            wval *w = &g->v[v];
            w->dtype = n->dtype;
            w->device = n->device;
            w->op = n->op;
            set_shape(w, n->shape, n->ndim);
            if (!lazy) {
                w->kind = V_CONST;
                lx_node_retain(n);
                w->node = n;
            } else {
                w->kind = V_OP;
                w->node = n;
                w->prim = n->prim;
                w->params = n->params;
                w->params_size = n->params_size;
                w->n_in = n->n_inputs;
                if (n->n_inputs) {
                    w->in = malloc(sizeof(int32_t) * n->n_inputs);
                    if (!w->in) { st = oom("for the trace"); goto done; }
                    for (int k = 0; k < n->n_inputs; k++)
                        w->in[k] = ptrmap_get(&map, n->inputs[k]);
                }
            }
        }
        g->outs[o] = ptrmap_get(&map, root);
    }
done:
    free(stack);
    ptrmap_free(&map);
    return st;
}

/* ---- simplification --------------------------------------------------------------------- */

static bool same_shape(const wval *a, const wval *b) {
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int32_t) * a->ndim) == 0;
}

/* Whether value v is surely row-contiguous when computed: a kernel's output. */
static bool is_kernel_output(const graph *g, int v) {
    const wval *w = &g->v[v];
    return w->kind == V_OP && !lx_prim_is_view(w->prim);
}

/* A READY size-1 constant's value as a double, when exact and readable on the host. */
static bool const_scalar_value(const wval *w, double *out) {
    if (w->kind != V_CONST || w->size != 1 || !w->node) return false;
    lx_node *n = w->node;
    if (lx_node_state_of(n) != LX_NODE_READY || !n->buf || n->device != LX_CPU) return false;
    const void *p = lx_node_ptr(n);
    double v = lx_dtype_load((lx_dtype)n->dtype, p);
    if (n->dtype == LX_INT64) {
        int64_t raw;
        memcpy(&raw, p, 8);
        if (!(fabs(v) < 9007199254740992.0) || (int64_t)v != raw) return false;
    } else if (n->dtype == LX_UINT64) {
        uint64_t raw;
        memcpy(&raw, p, 8);
        if (!(v < 9007199254740992.0) || (uint64_t)v != raw) return false;
    }
    *out = v;
    return true;
}

/* A FULL op of one element: its value. */
static bool full_scalar_value(const wval *w, double *out) {
    if (w->kind != V_OP || w->prim != LX_PRIM_FULL || w->size != 1 || w->n_in != 0 ||
        w->params_size < sizeof(lx_full_params))
        return false;
    lx_full_params p;
    memcpy(&p, w->params, sizeof p);
    *out = p.value;
    return true;
}

/* v as a value of dtype t holds it (rounded as a CONST of that dtype is). */
static double value_in(lx_dtype t, double v) {
    unsigned char b[8];
    lx_dtype_store(t, b, v);
    return lx_dtype_load(t, b);
}

static bool exact_in(lx_dtype t, double v) {
    double r = value_in(t, v);
    return r == v || (r != r && v != v);
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t op_hash(const wval *w) {
    uint64_t h = 0xcbf29ce484222325ull;
    uint32_t head[4] = {w->prim, w->dtype, w->ndim, (uint32_t)w->n_in};
    h = hash_bytes(h, head, sizeof head);
    h = hash_bytes(h, w->shape, sizeof(int32_t) * w->ndim);
    if (w->params_size) h = hash_bytes(h, w->params, w->params_size);
    if (w->n_in) h = hash_bytes(h, w->in, sizeof(int32_t) * (size_t)w->n_in);
    return h;
}

static bool op_equal(const wval *a, const wval *b) {
    return a->prim == b->prim && a->dtype == b->dtype && a->device == b->device &&
           same_shape(a, b) && a->n_in == b->n_in && a->params_size == b->params_size &&
           (!a->params_size || memcmp(a->params, b->params, a->params_size) == 0) &&
           (!a->n_in || memcmp(a->in, b->in, sizeof(int32_t) * (size_t)a->n_in) == 0);
}

static bool const_equal(const wval *a, const wval *b) {
    if (a->dtype != b->dtype || a->device != b->device || !same_shape(a, b)) return false;
    const lx_node *x = a->node, *y = b->node;
    if (x->device != LX_CPU || !x->buf || !y->buf) return false;
    return memcmp(lx_node_ptr(x), lx_node_ptr(y), lx_dtype_size((lx_dtype)x->dtype)) == 0;
}

static lx_status graph_simplify(graph *g) {
    size_t cap = 16;
    while (cap < (size_t)g->n * 2) cap *= 2;
    int32_t *table = malloc(cap * sizeof *table);
    ivec scalars = {0};
    if (!table) return oom("for the trace");
    for (size_t i = 0; i < cap; i++) table[i] = -1;
    lx_status st = LX_OK;
    for (int v = 0; v < g->n; v++) {
        wval *w = &g->v[v];
        if (w->kind == V_INPUT) continue;
        if (w->kind == V_CONST) { /* merge equal scalars */
            if (w->size != 1 || lx_node_state_of(w->node) != LX_NODE_READY) continue;
            for (size_t k = 0; k < scalars.n; k++)
                if (const_equal(&g->v[scalars.v[k]], w)) {
                    w->rep = scalars.v[k];
                    break;
                }
            if (w->rep == v && !ivec_push(&scalars, v)) { st = oom("for the trace"); break; }
            continue;
        }
        for (int k = 0; k < w->n_in; k++) w->in[k] = g->v[w->in[k]].rep;
        const wval *x = w->n_in ? &g->v[w->in[0]] : NULL;
        /* no-op views and copies */
        if (x && same_shape(w, x) && w->dtype == x->dtype) {
            bool noop = w->prim == LX_PRIM_RESHAPE || w->prim == LX_PRIM_BROADCAST ||
                        ((w->prim == LX_PRIM_CONTIGUOUS || w->prim == LX_PRIM_COPY) &&
                         is_kernel_output(g, w->in[0]));
            if (noop) {
                w->rep = w->in[0];
                continue;
            }
        }
        /* astype of a scalar FULL, when the value is exact in both dtypes */
        double val;
        if (w->prim == LX_PRIM_COPY && x && x->size == 1 && same_shape(w, x) &&
            full_scalar_value(x, &val) && exact_in((lx_dtype)x->dtype, val) &&
            exact_in((lx_dtype)w->dtype, val)) {
            lx_full_params *p = calloc(1, sizeof *p);
            if (!p) { st = oom("for the trace"); break; }
            p->value = val;
            w->prim = LX_PRIM_FULL;
            w->params = p;
            w->params_owned = true;
            w->params_size = sizeof *p;
            w->n_in = 0;
        }
        /* common subexpressions */
        uint64_t h = op_hash(w);
        size_t j = (size_t)h & (cap - 1);
        while (table[j] >= 0) {
            if (op_equal(&g->v[table[j]], w)) break;
            j = (j + 1) & (cap - 1);
        }
        if (table[j] >= 0) w->rep = table[j];
        else table[j] = v;
    }
    for (int o = 0; o < g->n_out && st == LX_OK; o++) g->outs[o] = g->v[g->outs[o]].rep;
    free(table);
    free(scalars.v);
    return st;
}

/* Marks what the outputs need (after simplification). Values are topologically ordered, so
 * one backward pass suffices. */
static void graph_mark_live(graph *g) {
    for (int v = 0; v < g->n; v++) g->v[v].live = false;
    for (int o = 0; o < g->n_out; o++) g->v[g->outs[o]].live = true;
    for (int v = g->n - 1; v >= 0; v--) {
        wval *w = &g->v[v];
        if (!w->live || w->rep != v) continue;
        for (int k = 0; k < w->n_in; k++) g->v[w->in[k]].live = true;
    }
}

/* ---- fusion ---------------------------------------------------------------------------- */

static bool fusable(const wval *w) {
    if (w->kind != V_OP || !lx_dtype_valid(w->dtype)) return false;
    switch (w->prim) {
    case LX_PRIM_UNARY: {
        if (w->n_in != 1 || w->params_size < sizeof(lx_unary_params)) return false;
        lx_unary_params p;
        memcpy(&p, w->params, sizeof p);
        return p.op >= 0 && p.op < LX_UNARY_COUNT;
    }
    case LX_PRIM_BINARY: {
        if (w->n_in != 2 || w->params_size < sizeof(lx_binary_params)) return false;
        lx_binary_params p;
        memcpy(&p, w->params, sizeof p);
        return p.op >= 0 && p.op < LX_BINARY_COUNT;
    }
    case LX_PRIM_WHERE: return w->n_in == 3;
    case LX_PRIM_COPY: return w->n_in == 1;
    default: return false;
    }
}

/* The value an input really reads: BROADCAST views stripped. */
static int32_t strip_broadcast(const graph *g, int32_t u) {
    while (g->v[u].kind == V_OP && g->v[u].prim == LX_PRIM_BROADCAST && g->v[u].n_in == 1)
        u = g->v[u].in[0];
    return u;
}

static bool immediate_value(const graph *g, int32_t s, double *val) {
    const wval *w = &g->v[s];
    return full_scalar_value(w, val) || const_scalar_value(w, val);
}

typedef struct {
    int gid;
    int root;
    ivec members;
    int32_t ext[LX_FUSED_MAX_IN + 1];
    int n_ext;
    int n_outputs;
    int lowest;
} group_state;

static bool ext_has(const group_state *s, int32_t v) {
    for (int i = 0; i < s->n_ext; i++)
        if (s->ext[i] == v) return true;
    return false;
}

/* The sources (non-member, non-immediate, broadcast-stripped inputs) of v not in ext yet. */
static int new_sources(const graph *g, const group_state *s, int v, int32_t *out) {
    const wval *w = &g->v[v];
    int n = 0;
    for (int k = 0; k < w->n_in; k++) {
        int32_t u = strip_broadcast(g, w->in[k]);
        double val;
        if (g->v[u].group == s->gid || u == v || immediate_value(g, u, &val)) continue;
        if (ext_has(s, u)) continue;
        bool dup = false;
        for (int i = 0; i < n; i++) dup = dup || out[i] == u;
        if (!dup) out[n++] = u;
    }
    return n;
}

/* Whether a path from c (outside the group) leads into the group, through values at most
 * `limit` in topological order. */
static bool reaches_group(graph *g, int c, int gid, int limit) {
    ivec stack = {0};
    int gen = ++g->stamp_gen;
    bool found = false;
    if (!ivec_push(&stack, c)) return true; /* out of memory: refuse the fusion */
    g->stamp2[c] = gen;
    while (stack.n && !found) {
        int x = stack.v[--stack.n];
        if (g->v[x].group == gid) {
            found = true;
            break;
        }
        for (int i = g->cons_off[x]; i < g->cons_off[x + 1]; i++) {
            int y = g->cons[i];
            if (y > limit || g->stamp2[y] == gen) continue;
            g->stamp2[y] = gen;
            if (!ivec_push(&stack, y)) {
                found = true;
                break;
            }
        }
    }
    free(stack.v);
    return found;
}

static bool has_outside_consumer(const graph *g, int v, int gid) {
    if (g->is_out[v]) return true;
    for (int i = g->cons_off[v]; i < g->cons_off[v + 1]; i++)
        if (g->v[g->cons[i]].group != gid) return true;
    return false;
}

static void add_member(graph *g, group_state *s, int v) {
    wval *w = &g->v[v];
    w->group = s->gid;
    ivec_push(&s->members, v); /* capacity reserved by the caller */
    /* v leaves the sources; its own sources join */
    for (int i = 0; i < s->n_ext; i++)
        if (s->ext[i] == v) {
            s->ext[i] = s->ext[--s->n_ext];
            break;
        }
    int32_t add[4];
    int n = new_sources(g, s, v, add);
    for (int i = 0; i < n; i++) s->ext[s->n_ext++] = add[i];
    for (int k = 0; k < w->n_in; k++) {
        int32_t u = w->in[k];
        const wval *x = &g->v[u];
        if (x->group < 0 && fusable(x) && same_shape(x, w)) {
            g->stamp[u] = s->gid + 1;
            if (u < s->lowest) s->lowest = u;
        }
    }
}

static bool try_add(graph *g, group_state *s, int q) {
    if ((int)s->members.n >= MAX_GROUP_MEMBERS) return false;
    int32_t add[4];
    int n = new_sources(g, s, q, add);
    int n_ext = s->n_ext - (ext_has(s, q) ? 1 : 0) + n;
    if (n_ext > LX_FUSED_MAX_IN) return false;
    if (has_outside_consumer(g, q, s->gid)) {
        if (s->n_outputs + 1 > LX_FUSED_MAX_OUT) return false;
        for (int i = g->cons_off[q]; i < g->cons_off[q + 1]; i++) {
            int c = g->cons[i];
            if (g->v[c].group != s->gid && reaches_group(g, c, s->gid, s->root)) return false;
        }
        s->n_outputs++;
    }
    add_member(g, s, q);
    return true;
}

/* ---- fused programs ---- */

typedef struct {
    lx_fused_instr ins;
    int32_t va, vb, vc; /* operand instructions, -1 if none */
} vinstr;

typedef struct {
    vinstr *code;
    int n, cap;
} vprog;

static int vprog_emit(vprog *p, const lx_fused_instr *ins, int va, int vb, int vc) {
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        vinstr *c = realloc(p->code, (size_t)cap * sizeof *c);
        if (!c) return -1;
        p->code = c;
        p->cap = cap;
    }
    p->code[p->n] = (vinstr){*ins, va, vb, vc};
    return p->n++;
}

typedef struct {
    uint8_t dtype;
    double v;
    int32_t reg;
} const_slot;

/* The instruction of CONST (dtype, v), emitted once per program; -1 if out of room/memory. */
static int emit_const(vprog *p, const_slot *consts, int *n_consts, uint8_t dtype, double v) {
    for (int m = 0; m < *n_consts; m++)
        if (consts[m].dtype == dtype && memcmp(&consts[m].v, &v, sizeof v) == 0)
            return consts[m].reg;
    if (*n_consts == 64) return -1;
    lx_fused_instr ci;
    memset(&ci, 0, sizeof ci);
    ci.op = LX_FOP_CONST;
    ci.dtype = dtype;
    ci.imm = v;
    int r = vprog_emit(p, &ci, -1, -1, -1);
    if (r < 0) return -1;
    consts[*n_consts] = (const_slot){dtype, v, r};
    (*n_consts)++;
    return r;
}

/* Builds the FUSED value (and PART values) for a group. Returns false (and leaves the graph
 * as it was, members unfused) if the program does not fit. */
static lx_status build_group(graph *g, group_state *s, bool *fused) {
    *fused = false;
    int nm = (int)s->members.n;
    int32_t *mem = s->members.v;
    /* members in topological order */
    for (int i = 1; i < nm; i++) {
        int32_t x = mem[i];
        int j = i - 1;
        while (j >= 0 && mem[j] > x) {
            mem[j + 1] = mem[j];
            j--;
        }
        mem[j + 1] = x;
    }
    const wval *root = &g->v[s->root];
    int32_t *vreg = malloc(sizeof(int32_t) * (size_t)nm);
    vprog p = {0};
    int32_t ext[LX_FUSED_MAX_IN], ext_vreg[LX_FUSED_MAX_IN];
    int n_ext = 0;
    int32_t outv[LX_FUSED_MAX_OUT];
    int n_outv = 0;
    int min_ndim = 0;
    const_slot consts[64];
    int n_consts = 0;
    lx_status st = LX_OK;
    bool ok = vreg != NULL;
    if (!ok) st = oom("for the trace");
    for (int i = 0; ok && i < nm; i++) {
        int v = mem[i];
        const wval *w = &g->v[v];
        int32_t opr[3] = {-1, -1, -1};
        for (int k = 0; k < w->n_in && ok; k++) {
            int32_t u = w->in[k];
            if (g->v[u].group == s->gid) { /* a member: its register */
                for (int m = 0; m < i; m++)
                    if (mem[m] == u) opr[k] = vreg[m];
                continue;
            }
            int32_t src = strip_broadcast(g, u);
            double val;
            if (immediate_value(g, src, &val)) {
                const wval *c = &g->v[src];
                if (c->ndim > min_ndim) min_ndim = c->ndim;
                opr[k] = emit_const(&p, consts, &n_consts, c->dtype, val);
                if (opr[k] < 0) { ok = false; break; }
                continue;
            }
            int e = -1;
            for (int m = 0; m < n_ext; m++)
                if (ext[m] == src) e = m;
            if (e < 0) {
                if (n_ext == LX_FUSED_MAX_IN) { ok = false; break; }
                lx_fused_instr li;
                memset(&li, 0, sizeof li);
                li.op = LX_FOP_LOAD;
                li.dtype = g->v[src].dtype;
                li.a = (uint8_t)n_ext;
                int r = vprog_emit(&p, &li, -1, -1, -1);
                if (r < 0) { ok = false; st = oom("for the trace"); break; }
                ext[n_ext] = src;
                ext_vreg[n_ext] = r;
                e = n_ext++;
            }
            opr[k] = ext_vreg[e];
        }
        if (!ok) break;
        lx_fused_instr ins;
        memset(&ins, 0, sizeof ins);
        ins.dtype = w->dtype;
        switch (w->prim) {
        case LX_PRIM_UNARY: {
            lx_unary_params up;
            memcpy(&up, w->params, sizeof up);
            ins.op = LX_FOP_UNARY;
            ins.sub = up.op;
            ins.adtype = g->v[w->in[0]].dtype;
            break;
        }
        case LX_PRIM_BINARY: {
            lx_binary_params bp;
            memcpy(&bp, w->params, sizeof bp);
            ins.op = LX_FOP_BINARY;
            ins.sub = bp.op;
            ins.adtype = g->v[w->in[0]].dtype;
            /* x / 2^k is exactly x * 2^-k (one rounding of the same real number): division
             * by a power-of-two constant becomes a multiplication, much cheaper in a loop. The
             * constant is taken as its dtype holds it: random uniforms divide by 4294967295.0,
             * which is 2^32 in float32. */
            if (bp.op == LX_BINARY_DIV && lx_dtype_is_float((lx_dtype)ins.adtype) &&
                opr[1] >= 0 && p.code[opr[1]].ins.op == LX_FOP_CONST) {
                const lx_fused_instr *ci = &p.code[opr[1]].ins;
                double c = value_in((lx_dtype)ci->dtype, ci->imm);
                int ex;
                if (isfinite(c) && c != 0.0 && fabs(frexp(c, &ex)) == 0.5 &&
                    exact_in((lx_dtype)ci->dtype, 1.0 / c)) {
                    int r = emit_const(&p, consts, &n_consts, ci->dtype, 1.0 / c);
                    if (r >= 0) {
                        opr[1] = r;
                        ins.sub = LX_BINARY_MUL;
                    }
                }
            }
            break;
        }
        case LX_PRIM_WHERE:
            ins.op = LX_FOP_WHERE;
            ins.adtype = LX_BOOL;
            break;
        default: /* COPY */
            ins.op = LX_FOP_CAST;
            ins.adtype = g->v[w->in[0]].dtype;
            break;
        }
        vreg[i] = vprog_emit(&p, &ins, opr[0], opr[1], opr[2]);
        if (vreg[i] < 0) { ok = false; st = oom("for the trace"); break; }
        if (has_outside_consumer(g, v, s->gid)) {
            if (n_outv == LX_FUSED_MAX_OUT) { ok = false; break; }
            outv[n_outv++] = i;
        }
    }
    for (int j = 0; ok && j < n_outv; j++) {
        lx_fused_instr si;
        memset(&si, 0, sizeof si);
        si.op = LX_FOP_STORE;
        si.dtype = g->v[mem[outv[j]]].dtype;
        si.b = (uint8_t)j;
        if (vprog_emit(&p, &si, vreg[outv[j]], -1, -1) < 0) { ok = false; st = oom(""); }
    }
    if (ok && (p.n > LX_FUSED_MAX_INSTR || n_outv == 0)) ok = false;
    /* shape rule for shapeless replay: the inputs' broadcast must give the group's shape */
    if (ok && g->shapeless) {
        int32_t bs[LX_MAX_NDIM] = {0};
        int bn = min_ndim;
        for (int d = 0; d < bn; d++) bs[d] = 1;
        for (int e = 0; e < n_ext && ok; e++) {
            const wval *x = &g->v[ext[e]];
            int32_t r[LX_MAX_NDIM];
            int rn = x->ndim > bn ? x->ndim : bn;
            for (int d = 0; d < rn; d++) {
                int da = d - (rn - bn) >= 0 ? bs[d - (rn - bn)] : 1;
                int db = d - (rn - x->ndim) >= 0 ? x->shape[d - (rn - x->ndim)] : 1;
                if (da != db && da != 1 && db != 1) ok = false;
                r[d] = da == 1 ? db : da;
            }
            memcpy(bs, r, sizeof r);
            bn = rn;
        }
        if (ok && (bn != root->ndim || memcmp(bs, root->shape, sizeof(int32_t) * bn) != 0)) {
            st = lx_set_error(LX_E_UNSUPPORTED,
                              "lx_compile: shapeless: an elementwise group of shape %s is "
                              "broadcast to a literal shape (lx_broadcast_to); compile without "
                              "LX_COMPILE_SHAPELESS",
                              lx_shape_str(root->shape, root->ndim, (char[96]){0}, 96));
            ok = false;
        }
    }
    if (!ok) {
        free(vreg);
        free(p.code);
        return st;
    }
    /* drop CONSTs nothing reads (a divisor turned into its reciprocal) */
    {
        int *newi = malloc(sizeof(int) * (size_t)p.n);
        bool *used = calloc((size_t)p.n, sizeof(bool));
        if (!newi || !used) {
            free(newi);
            free(used);
            free(vreg);
            free(p.code);
            return oom("for the trace");
        }
        for (int i = 0; i < p.n; i++) {
            if (p.code[i].va >= 0) used[p.code[i].va] = true;
            if (p.code[i].vb >= 0) used[p.code[i].vb] = true;
            if (p.code[i].vc >= 0) used[p.code[i].vc] = true;
        }
        int m = 0;
        for (int i = 0; i < p.n; i++) {
            if (p.code[i].ins.op == LX_FOP_CONST && !used[i]) {
                newi[i] = -1;
                continue;
            }
            vinstr c = p.code[i];
            if (c.va >= 0) c.va = newi[c.va];
            if (c.vb >= 0) c.vb = newi[c.vb];
            if (c.vc >= 0) c.vc = newi[c.vc];
            newi[i] = m;
            p.code[m++] = c;
        }
        p.n = m;
        free(newi);
        free(used);
    }
    /* register allocation by liveness; CONST registers are never reused */
    int *last = malloc(sizeof(int) * (size_t)p.n);
    int *phys = malloc(sizeof(int) * (size_t)p.n);
    int free_regs[256], n_free = 0, n_regs = 0;
    if (!last || !phys) {
        free(last);
        free(phys);
        free(vreg);
        free(p.code);
        return oom("for the trace");
    }
    for (int i = 0; i < p.n; i++) last[i] = -1;
    for (int i = 0; i < p.n; i++) {
        const vinstr *c = &p.code[i];
        if (c->va >= 0) last[c->va] = i;
        if (c->vb >= 0) last[c->vb] = i;
        if (c->vc >= 0) last[c->vc] = i;
    }
    for (int i = 0; i < p.n; i++) {
        vinstr *c = &p.code[i];
        int ops[3] = {c->va, c->vb, c->vc};
        for (int k = 0; k < 3; k++) {
            int o = ops[k];
            if (o < 0 || last[o] != i || p.code[o].ins.op == LX_FOP_CONST) continue;
            bool dup = false;
            for (int m = 0; m < k; m++) dup = dup || ops[m] == o;
            if (!dup) free_regs[n_free++] = phys[o];
        }
        if (c->ins.op == LX_FOP_STORE) {
            c->ins.a = (uint8_t)phys[c->va];
            continue;
        }
        /* a CONST gets a register of its own: a backend may fill it once per launch */
        bool pinned = c->ins.op == LX_FOP_CONST;
        phys[i] = (n_free && !pinned) ? free_regs[--n_free] : n_regs++;
        c->ins.dst = (uint8_t)phys[i];
        if (c->va >= 0) c->ins.a = (uint8_t)phys[c->va];
        if (c->vb >= 0) c->ins.b = (uint8_t)phys[c->vb];
        if (c->vc >= 0) c->ins.c = (uint8_t)phys[c->vc];
    }
    free(last);
    free(phys);
    if (n_regs > 255) {
        free(vreg);
        free(p.code);
        return LX_OK;
    }
    /* the FUSED value */
    uint32_t psize = lx_fused_params_size(p.n);
    lx_fused_header *h = calloc(1, psize);
    int fv = h ? graph_add(g) : -1;
    if (fv < 0) {
        free(h);
        free(vreg);
        free(p.code);
        return oom("for the trace");
    }
    root = &g->v[s->root]; /* graph_add may have moved the values */
    h->version = LX_FUSED_VERSION;
    h->n_in = (uint16_t)n_ext;
    h->n_out = (uint16_t)n_outv;
    h->n_instr = (uint16_t)p.n;
    h->n_regs = (uint16_t)n_regs;
    h->ndim = root->ndim;
    h->min_ndim = (uint8_t)min_ndim;
    memcpy(h->shape, root->shape, sizeof h->shape);
    lx_fused_instr *code = (lx_fused_instr *)(void *)(h + 1);
    for (int i = 0; i < p.n; i++) code[i] = p.code[i].ins;
    int64_t off = 0;
    for (int j = 0; j < n_outv; j++) {
        h->out_dtype[j] = g->v[mem[outv[j]]].dtype;
        if (n_outv > 1) {
            off = lx_fused_align(off);
            h->out_offset[j] = off;
            off += root->size * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[j]);
        }
    }
    wval *f = &g->v[fv];
    f->kind = V_OP;
    f->prim = LX_PRIM_FUSED;
    f->device = root->device;
    f->op = "lx_compile (fused elementwise group)";
    f->params = h;
    f->params_size = psize;
    f->params_owned = true;
    f->live = true;
    f->in = malloc(sizeof(int32_t) * (size_t)(n_ext ? n_ext : 1));
    if (!f->in) {
        free(vreg);
        free(p.code);
        return oom("for the trace");
    }
    memcpy(f->in, ext, sizeof(int32_t) * (size_t)n_ext);
    f->n_in = n_ext;
    if (n_outv == 1) {
        f->dtype = h->out_dtype[0];
        set_shape(f, root->shape, root->ndim);
        g->v[mem[outv[0]]].fmap = fv;
    } else {
        int64_t total = lx_fused_align(off);
        if (total / 64 > INT32_MAX) {
            free(vreg);
            free(p.code);
            return lx_set_error(LX_E_SHAPE, "lx_compile: a fused group's outputs are too large");
        }
        int32_t bshape[2] = {(int32_t)(total / 64), 64};
        f->dtype = LX_UINT8;
        set_shape(f, bshape, 2);
        for (int j = 0; j < n_outv; j++) {
            int pv = graph_add(g);
            lx_part_params *pp = calloc(1, sizeof *pp);
            int32_t *pin = malloc(sizeof(int32_t));
            if (pv < 0 || !pp || !pin) {
                free(pp);
                free(pin);
                free(vreg);
                free(p.code);
                return oom("for the trace");
            }
            const wval *m = &g->v[mem[outv[j]]];
            wval *pw = &g->v[pv];
            pw->kind = V_OP;
            pw->prim = LX_PRIM_PART;
            pw->dtype = m->dtype;
            pw->device = m->device;
            set_shape(pw, m->shape, m->ndim);
            pp->byte_offset = h->out_offset[j];
            pw->params = pp;
            pw->params_size = sizeof *pp;
            pw->params_owned = true;
            pin[0] = fv;
            pw->in = pin;
            pw->n_in = 1;
            pw->op = m->op;
            pw->aux = j;
            pw->live = true;
            g->v[mem[outv[j]]].fmap = pv;
        }
    }
    free(vreg);
    free(p.code);
    *fused = true;
    return LX_OK;
}

static lx_status graph_fuse(graph *g) {
    int n = g->n;
    lx_status st = LX_OK;
    if (n <= 0) return LX_OK;
    g->cons_off = calloc((size_t)n + 1, sizeof(int32_t));
    g->is_out = calloc((size_t)n + 1, sizeof(bool));
    g->stamp = calloc((size_t)n + 1, sizeof(int32_t));
    g->stamp2 = calloc((size_t)n + 1, sizeof(int32_t));
    if (!g->cons_off || !g->is_out || !g->stamp || !g->stamp2) return oom("for the trace");
    for (int v = 0; v < n; v++) {
        const wval *w = &g->v[v];
        if (!w->live || w->rep != v || w->kind != V_OP) continue;
        for (int k = 0; k < w->n_in; k++) g->cons_off[w->in[k] + 1]++;
    }
    for (int v = 0; v < n; v++) g->cons_off[v + 1] += g->cons_off[v];
    g->cons = malloc(sizeof(int32_t) * (size_t)(g->cons_off[n] ? g->cons_off[n] : 1));
    int32_t *fill = calloc((size_t)n, sizeof(int32_t));
    if (!g->cons || !fill) {
        free(fill);
        return oom("for the trace");
    }
    for (int v = 0; v < n; v++) {
        const wval *w = &g->v[v];
        if (!w->live || w->rep != v || w->kind != V_OP) continue;
        for (int k = 0; k < w->n_in; k++) {
            int u = w->in[k];
            bool dup = false; /* one entry per consumer */
            for (int m = 0; m < k; m++) dup = dup || w->in[m] == u;
            if (!dup) g->cons[g->cons_off[u] + fill[u]++] = v;
        }
    }
    /* duplicate inputs left holes at the end of some lists: compact them away */
    {
        int32_t w_at = 0;
        for (int v = 0; v < n; v++) {
            int32_t b = g->cons_off[v], cnt = fill[v];
            g->cons_off[v] = w_at;
            memmove(&g->cons[w_at], &g->cons[b], sizeof(int32_t) * (size_t)cnt);
            w_at += cnt;
        }
        g->cons_off[n] = w_at;
    }
    free(fill);
    for (int o = 0; o < g->n_out; o++) g->is_out[g->outs[o]] = true;
    int gid = 0;
    group_state s;
    memset(&s, 0, sizeof s);
    s.members.v = malloc(sizeof(int32_t) * MAX_GROUP_MEMBERS);
    s.members.cap = MAX_GROUP_MEMBERS;
    if (!s.members.v) return oom("for the trace");
    for (int r = n - 1; r >= 0 && st == LX_OK; r--) {
        wval *w = &g->v[r];
        if (!w->live || w->rep != r || w->group >= 0 || !fusable(w)) continue;
        s.gid = gid++;
        s.root = r;
        s.lowest = r;
        s.members.n = 0;
        s.n_ext = 0;
        s.n_outputs = 1;
        add_member(g, &s, r);
        for (int q = r - 1; q >= s.lowest; q--) {
            if (g->stamp[q] != s.gid + 1 || g->v[q].group >= 0) continue;
            try_add(g, &s, q);
        }
        bool want = s.members.n > 1;
        if (!want && g->shapeless)
            for (int k = 0; k < w->n_in; k++)
                if (g->v[w->in[k]].prim == LX_PRIM_BROADCAST && g->v[w->in[k]].kind == V_OP)
                    want = true;
        bool fused = false;
        if (want) st = build_group(g, &s, &fused);
        if (!fused)
            for (size_t i = 0; i < s.members.n; i++) g->v[s.members.v[i]].group = -1;
    }
    free(s.members.v);
    return st;
}

/* ---- shapes for shapeless replay -------------------------------------------------------- */

typedef struct {
    int ndim;
    const int32_t *shape;
    const void *params; /* the input's params (PART of FUSED reads its parent's header) */
} shp;

static bool bcast_into(int32_t *acc, int *n, const int32_t *s, int ns) {
    int32_t r[LX_MAX_NDIM];
    int rn = ns > *n ? ns : *n;
    for (int d = 0; d < rn; d++) {
        int da = d - (rn - *n) >= 0 ? acc[d - (rn - *n)] : 1;
        int db = d - (rn - ns) >= 0 ? s[d - (rn - ns)] : 1;
        if (da != db && da != 1 && db != 1) return false;
        r[d] = da == 1 ? db : da;
    }
    memcpy(acc, r, sizeof(int32_t) * (size_t)rn);
    *n = rn;
    return true;
}

static const char *shape_text(const int32_t *s, int n, char *buf) {
    return lx_shape_str(s, n, buf, 96);
}

/* The shape of op from its inputs' shapes (rule op->rule); params that depend on the shape
 * are written to pbuf and *params points at them (else at the traced params). Returns LX_OK or
 * sets the error. */
static lx_status infer(const tape_op *op, const void *tparams, const shp *in, int n_in,
                       const shp *ref, int32_t *shape, int *ndim, void *pbuf,
                       const void **params) {
    char b1[96], b2[96];
    *params = tparams;
    int nd = op->ndim;
    switch (op->rule) {
    case R_LITERAL:
        memcpy(shape, op->shape, sizeof(int32_t) * LX_MAX_NDIM);
        break;
    case R_SAME0:
        memcpy(shape, in[0].shape, sizeof(int32_t) * (size_t)in[0].ndim);
        nd = in[0].ndim;
        break;
    case R_BCAST:
    case R_FUSED: {
        nd = 0;
        if (op->rule == R_FUSED) {
            const lx_fused_header *h = tparams;
            nd = h->min_ndim;
            for (int d = 0; d < nd; d++) shape[d] = 1;
        }
        for (int k = 0; k < n_in; k++)
            if (!bcast_into(shape, &nd, in[k].shape, in[k].ndim))
                return lx_set_error(LX_E_SHAPE, "lx_call: %s: input shapes %s and %s cannot be "
                                    "broadcast together", op->op,
                                    shape_text(shape, nd, b1),
                                    shape_text(in[k].shape, in[k].ndim, b2));
        if (op->rule == R_FUSED) {
            lx_fused_header *h = pbuf;
            memcpy(h, tparams, op->params_size);
            memset(h->shape, 0, sizeof h->shape);
            memcpy(h->shape, shape, sizeof(int32_t) * (size_t)nd);
            h->ndim = (uint8_t)nd;
            int64_t size = 1;
            for (int d = 0; d < nd; d++) size *= shape[d];
            *params = h;
            if (h->n_out > 1) {
                int64_t off = 0;
                for (int j = 0; j < h->n_out; j++) {
                    off = lx_fused_align(off);
                    h->out_offset[j] = off;
                    off += size * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[j]);
                }
                off = lx_fused_align(off);
                if (off / 64 > INT32_MAX)
                    return lx_set_error(LX_E_SHAPE, "lx_call: a fused group's outputs are too "
                                        "large");
                shape[0] = (int32_t)(off / 64);
                shape[1] = 64;
                nd = 2;
            }
        }
        break;
    }
    case R_PART_FUSED: {
        const lx_fused_header *h = in[0].params;
        lx_part_params *pp = pbuf;
        memset(pp, 0, sizeof *pp);
        pp->byte_offset = h->out_offset[op->aux];
        *params = pp;
        nd = h->ndim;
        memcpy(shape, h->shape, sizeof(int32_t) * (size_t)nd);
        break;
    }
    case R_REDUCE: {
        lx_reduce_params p;
        memcpy(&p, tparams, sizeof p);
        nd = in[0].ndim;
        memcpy(shape, in[0].shape, sizeof(int32_t) * (size_t)nd);
        int64_t count = 1;
        for (int i = 0; i < p.n_axes; i++) {
            if (p.axes[i] < 0 || p.axes[i] >= nd)
                return lx_set_error(LX_E_SHAPE, "lx_call: %s: bad reduction axis", op->op);
            count *= shape[p.axes[i]];
            shape[p.axes[i]] = 1;
        }
        if (op->aux > 0) {
            p.scale = 1.0 / (double)(count - (op->aux - 1));
            memcpy(pbuf, tparams, op->params_size);
            memcpy(pbuf, &p, sizeof p);
            *params = pbuf;
        }
        break;
    }
    case R_ARGRED: {
        lx_arg_reduce_params p;
        memcpy(&p, tparams, sizeof p);
        nd = in[0].ndim;
        memcpy(shape, in[0].shape, sizeof(int32_t) * (size_t)nd);
        if (p.axis < 0 || p.axis >= nd)
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: bad axis", op->op);
        shape[p.axis] = 1;
        break;
    }
    case R_MATMUL: {
        const shp *a = &in[0], *b = &in[1];
        if (a->ndim < 2 || b->ndim < 2 || a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: shapes %s and %s cannot be "
                                "multiplied", op->op, shape_text(a->shape, a->ndim, b1),
                                shape_text(b->shape, b->ndim, b2));
        nd = 0;
        if (!bcast_into(shape, &nd, a->shape, a->ndim - 2) ||
            !bcast_into(shape, &nd, b->shape, b->ndim - 2))
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: batch shapes of %s and %s do not "
                                "broadcast", op->op, shape_text(a->shape, a->ndim, b1),
                                shape_text(b->shape, b->ndim, b2));
        shape[nd++] = a->shape[a->ndim - 2];
        shape[nd++] = b->shape[b->ndim - 1];
        break;
    }
    case R_PERMUTE: {
        lx_permute_params p;
        memcpy(&p, tparams, sizeof p);
        nd = in[0].ndim;
        for (int i = 0; i < nd; i++) shape[i] = in[0].shape[p.perm[i]];
        break;
    }
    case R_RANDOM: {
        int lead = in[0].ndim - 1;
        nd = 0;
        for (int i = 0; i < lead; i++) shape[nd++] = in[0].shape[i];
        for (int i = op->ndim - op->aux; i < op->ndim; i++) shape[nd++] = op->shape[i];
        break;
    }
    case R_SQUEEZE: {
        int64_t pin = 1, pout = 1;
        for (int i = 0; i < in[0].ndim; i++) pin *= in[0].shape[i];
        for (int o = 0; o < nd; o++) {
            shape[o] = op->map[o] >= 0 ? in[0].shape[op->map[o]] : 1;
            pout *= shape[o];
        }
        if (pin != pout)
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: a reshape traced as dropping size-1 "
                                "axes cannot reshape %s (shapeless compile)", op->op,
                                shape_text(in[0].shape, in[0].ndim, b1));
        break;
    }
    case R_MM_BCAST: {
        const shp *x = &in[0];
        if (x->ndim < 2 || ref->ndim < 2)
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: matmul operands need 2 dims", op->op);
        nd = 0;
        if (!bcast_into(shape, &nd, x->shape, x->ndim - 2) ||
            !bcast_into(shape, &nd, ref->shape, ref->ndim - 2))
            return lx_set_error(LX_E_SHAPE, "lx_call: %s: batch shapes of %s and %s do not "
                                "broadcast", op->op, shape_text(x->shape, x->ndim, b1),
                                shape_text(ref->shape, ref->ndim, b2));
        shape[nd++] = x->shape[x->ndim - 2];
        shape[nd++] = x->shape[x->ndim - 1];
        break;
    }
    default:
        return lx_set_error(LX_E_INTERNAL, "lx_call: unknown shape rule %d", op->rule);
    }
    if (nd != op->ndim)
        return lx_set_error(LX_E_SHAPE, "lx_call: %s: inferred %d dimensions, traced %d "
                            "(shapeless compile)", op->op, nd, op->ndim);
    for (int d = nd; d < LX_MAX_NDIM; d++) shape[d] = 0;
    *ndim = nd;
    return LX_OK;
}

/* A RESHAPE that only drops and inserts size-1 dims: map of output dims to input dims. */
static bool squeeze_map(const wval *in, const wval *out, int8_t *map) {
    int i = 0, o = 0;
    while (o < out->ndim) {
        if (i < in->ndim && in->shape[i] == out->shape[o]) {
            map[o++] = (int8_t)i++;
        } else if (i < in->ndim && in->shape[i] == 1) {
            i++;
        } else if (out->shape[o] == 1) {
            map[o++] = -1;
        } else {
            return false;
        }
    }
    for (; i < in->ndim; i++)
        if (in->shape[i] != 1) return false;
    return true;
}

static lx_status refuse(const wval *w, const char *why) {
    return lx_set_error(LX_E_UNSUPPORTED,
                        "lx_compile: shapeless: primitive %s (from %s) %s; compile this "
                        "function without LX_COMPILE_SHAPELESS",
                        lx_prim_name(w->prim), w->op ? w->op : "?", why);
}

/* The shapeless rule of an op whose shape depends on the inputs. */
static lx_status pick_rule(const graph *g, const wval *w, tape_op *t) {
    switch (w->prim) {
    case LX_PRIM_UNARY: case LX_PRIM_COPY: case LX_PRIM_CONTIGUOUS: case LX_PRIM_SOFTMAX:
    case LX_PRIM_RMS_NORM: case LX_PRIM_LAYER_NORM: case LX_PRIM_ROPE: case LX_PRIM_SCAN:
        t->rule = R_SAME0;
        return LX_OK;
    case LX_PRIM_SORT: {
        lx_sort_params p;
        if (w->params_size < sizeof p) return refuse(w, "has no parameters");
        memcpy(&p, w->params, sizeof p);
        if (p.mode == LX_SORT_TOPK) return refuse(w, "(top-k) has a literal size");
        if (p.mode == LX_SORT_PARTITION || p.mode == LX_SORT_ARGPARTITION)
            return refuse(w, "(partition) has a literal kth");
        t->rule = R_SAME0;
        return LX_OK;
    }
    case LX_PRIM_BINARY: case LX_PRIM_WHERE:
        t->rule = R_BCAST;
        return LX_OK;
    case LX_PRIM_FUSED:
        t->rule = R_FUSED;
        return LX_OK;
    case LX_PRIM_ARG_REDUCE:
        t->rule = R_ARGRED;
        return LX_OK;
    case LX_PRIM_MATMUL:
        t->rule = R_MATMUL;
        return LX_OK;
    case LX_PRIM_PERMUTE:
        t->rule = R_PERMUTE;
        return LX_OK;
    case LX_PRIM_REDUCE: {
        lx_reduce_params p;
        if (w->params_size < sizeof p) return refuse(w, "has no parameters");
        memcpy(&p, w->params, sizeof p);
        t->rule = R_REDUCE;
        t->aux = 0;
        if (p.op != LX_REDUCE_SUM) return LX_OK;
        /* a mean or variance: scale = 1 / (count - d) with d fixed (0, or ddof) */
        const wval *x = &g->v[w->in[0]];
        int64_t count = 1;
        for (int i = 0; i < p.n_axes; i++)
            if (p.axes[i] >= 0 && p.axes[i] < x->ndim) count *= x->shape[p.axes[i]];
        if (p.scale == 0.0 || (p.scale == 1.0 && count != 1)) return LX_OK; /* a sum */
        if (p.scale == 1.0)
            return refuse(w, "reduces axes of size 1 (a sum and a mean look alike there)");
        double inv = 1.0 / p.scale;
        if (!(inv >= 1.0 && inv < 1e15)) return refuse(w, "has a scale that cannot be followed");
        long long m = llround(inv);
        long long d = (long long)count - m;
        if (1.0 / (double)m != p.scale || d < 0 || d > 1000000)
            return refuse(w, "has a scale that depends on the shape in an unknown way");
        t->aux = (int32_t)d + 1;
        return LX_OK;
    }
    case LX_PRIM_RANDOM_BITS: {
        const wval *key = &g->v[w->in[0]];
        int trail = w->ndim - (key->ndim - 1);
        if (trail < 0) return refuse(w, "has an unexpected shape");
        t->rule = R_RANDOM;
        t->aux = trail;
        return LX_OK;
    }
    case LX_PRIM_RESHAPE:
        if (!squeeze_map(&g->v[w->in[0]], w, t->map))
            return refuse(w, "reshapes to a literal shape");
        t->rule = R_SQUEEZE;
        return LX_OK;
    case LX_PRIM_PART:
        if (g->v[w->in[0]].prim == LX_PRIM_FUSED && g->v[w->in[0]].kind == V_OP) {
            t->rule = R_PART_FUSED;
            return LX_OK;
        }
        return refuse(w, "is an output of a multi-output primitive with a literal shape");
    case LX_PRIM_BROADCAST:
        if (w->shape_ref >= 0) {
            t->rule = R_MM_BCAST;
            return LX_OK;
        }
        return refuse(w, "broadcasts to a literal shape");
    default:
        return refuse(w, "has no shape rule (its output shape is a literal)");
    }
}

/* Shapeless: a BROADCAST feeding a matmul operand takes its batch from both operands. */
static void graph_matmul_refs(graph *g) {
    int n = g->n;
    for (int v = 0; v < n; v++) {
        const wval *m = &g->v[v];
        if (!m->live || m->rep != v || m->kind != V_OP || m->prim != LX_PRIM_MATMUL ||
            m->n_in < 2)
            continue;
        for (int k = 0; k < 2; k++) {
            int32_t u = m->in[k];
            wval *b = &g->v[u];
            if (b->kind != V_OP || b->prim != LX_PRIM_BROADCAST || b->n_in != 1) continue;
            const wval *src = &g->v[b->in[0]];
            if (src->kind == V_OP && src->prim == LX_PRIM_BROADCAST) continue;
            int32_t other = strip_broadcast(g, m->in[1 - k]);
            if (b->shape_ref == -1) b->shape_ref = other;
            else if (b->shape_ref != other) b->shape_ref = -2; /* ambiguous: no rule */
        }
    }
    for (int v = 0; v < n; v++)
        if (g->v[v].shape_ref == -2) g->v[v].shape_ref = -1;
}

/* ---- the final tape --------------------------------------------------------------------- */

static int32_t mapped(const graph *g, int32_t v) {
    v = g->v[v].rep;
    return g->v[v].fmap >= 0 ? g->v[v].fmap : v;
}

static lx_status graph_emit(graph *g, trace *t) {
    int n = g->n;
    int32_t *tag = malloc(sizeof(int32_t) * (size_t)n);
    int32_t *order = malloc(sizeof(int32_t) * (size_t)n);
    bool *dep = calloc((size_t)n, sizeof(bool));
    typedef struct { int32_t v; int next; } frame;
    frame *stack = malloc(sizeof(frame) * (size_t)n);
    int n_const = 0, n_ops = 0, n_order = 0;
    lx_status st = LX_OK;
    if (!tag || !order || !dep || !stack) {
        st = oom("for the trace");
        goto done;
    }
    for (int v = 0; v < n; v++) tag[v] = -1;
    for (int i = 0; i < g->n_in; i++) {
        tag[i] = i;
        dep[i] = true;
    }
    for (int o = 0; o < g->n_out; o++) {
        int32_t root = mapped(g, g->outs[o]);
        if (tag[root] >= 0) continue;
        int depth = 0;
        stack[depth++] = (frame){root, 0};
        tag[root] = -2; /* on the stack */
        while (depth) {
            frame *f = &stack[depth - 1];
            const wval *w = &g->v[f->v];
            int n_visit = w->n_in + (w->shape_ref >= 0 ? 1 : 0);
            if (w->kind == V_OP && f->next < n_visit) {
                int32_t u = f->next < w->n_in ? mapped(g, w->in[f->next]) : mapped(g, w->shape_ref);
                f->next++;
                if (tag[u] != -1) continue;
                tag[u] = -2;
                stack[depth++] = (frame){u, 0};
                continue;
            }
            depth--;
            if (w->kind == V_CONST) {
                tag[f->v] = n_const++;
            } else {
                tag[f->v] = n_ops++;
                order[n_order++] = f->v;
            }
        }
    }
    /* consts in discovery order */
    t->n_const = n_const;
    t->n_ops = n_ops;
    t->consts = calloc((size_t)(n_const ? n_const : 1), sizeof(lx_node *));
    t->ops = calloc((size_t)(n_ops ? n_ops : 1), sizeof(tape_op));
    t->outs = malloc(sizeof(int32_t) * (size_t)(g->n_out ? g->n_out : 1));
    size_t n_ins = 0, pbytes = 0;
    for (int i = 0; i < n_ops; i++) {
        const wval *w = &g->v[order[i]];
        n_ins += (size_t)w->n_in;
        pbytes += ((size_t)w->params_size + 15) & ~(size_t)15;
    }
    t->ins = malloc(sizeof(int32_t) * (n_ins ? n_ins : 1));
    t->params = malloc(pbytes ? pbytes : 1);
    if (!t->consts || !t->ops || !t->outs || !t->ins || !t->params) {
        st = oom("for the trace");
        goto done;
    }
    for (int v = 0; v < n; v++)
        if (g->v[v].kind == V_CONST && tag[v] >= 0) {
            lx_node_retain(g->v[v].node);
            t->consts[tag[v]] = g->v[v].node;
        }
    size_t in_at = 0, p_at = 0;
    int base_const = t->n_in, base_op = t->n_in + n_const;
#define VAL_INDEX(u)                                                                     \
    (g->v[u].kind == V_INPUT ? (u) : g->v[u].kind == V_CONST ? base_const + tag[u]          \
                                                              : base_op + tag[u])
    for (int i = 0; i < n_ops && st == LX_OK; i++) {
        int32_t v = order[i];
        const wval *w = &g->v[v];
        tape_op *op = &t->ops[i];
        op->prim = w->prim;
        op->dtype = w->dtype;
        op->ndim = w->ndim;
        op->device = w->device;
        memcpy(op->shape, w->shape, sizeof op->shape);
        op->op = w->op;
        op->aux = w->aux;
        op->ref = w->shape_ref >= 0 ? VAL_INDEX(mapped(g, w->shape_ref)) : -1;
        op->n_in = (uint16_t)w->n_in;
        op->in_off = (uint32_t)in_at;
        bool d = false;
        for (int k = 0; k < w->n_in; k++) {
            int32_t u = mapped(g, w->in[k]);
            t->ins[in_at++] = VAL_INDEX(u);
            d = d || dep[u];
        }
        if (w->shape_ref >= 0) d = d || dep[mapped(g, w->shape_ref)];
        dep[v] = d;
        if (w->n_in > t->max_in) t->max_in = w->n_in;
        op->params_off = (uint32_t)p_at;
        op->params_size = w->params_size;
        if (w->params_size) memcpy(t->params + p_at, w->params, w->params_size);
        p_at += ((size_t)w->params_size + 15) & ~(size_t)15;
        if (w->params_size > t->max_params) t->max_params = w->params_size;
        op->rule = R_LITERAL;
        if (g->shapeless && d) {
            st = pick_rule(g, w, op);
            if (st != LX_OK) break;
            /* the rule must give back the traced shape */
            shp in[LX_FUSED_MAX_IN + 8];
            shp *pin = w->n_in <= LX_FUSED_MAX_IN + 8 ? in : malloc(sizeof(shp) * (size_t)w->n_in);
            if (!pin) { st = oom("for the trace"); break; }
            for (int k = 0; k < w->n_in; k++) {
                const wval *x = &g->v[mapped(g, w->in[k])];
                pin[k] = (shp){x->ndim, x->shape, x->params};
            }
            unsigned char *pbuf = malloc(w->params_size + 16);
            int32_t shape[LX_MAX_NDIM];
            int nd;
            const void *pp;
            if (!pbuf) st = oom("for the trace");
            shp ref = {0, NULL, NULL};
            if (w->shape_ref >= 0) {
                const wval *r = &g->v[mapped(g, w->shape_ref)];
                ref = (shp){r->ndim, r->shape, r->params};
            }
            if (pbuf)
                st = infer(op, t->params + op->params_off, pin, w->n_in, &ref, shape, &nd, pbuf,
                           &pp);
            if (st == LX_OK && (nd != w->ndim || memcmp(shape, w->shape, sizeof(int32_t) * nd)))
                st = refuse(w, "has a shape its rule does not reproduce");
            free(pbuf);
            if (pin != in) free(pin);
        }
    }
    for (int o = 0; o < g->n_out && st == LX_OK; o++) {
        int32_t u = mapped(g, g->outs[o]);
        t->outs[o] = VAL_INDEX(u);
    }
#undef VAL_INDEX
    t->n_out = g->n_out;
done:
    free(tag);
    free(order);
    free(dep);
    free(stack);
    return st;
}

/* ---- tracing ------------------------------------------------------------------------------ */

/* Runs fn on placeholders and turns what it built into a tape. On failure returns NULL with
 * the error set (or *st = fn's status) and nothing left behind. */
static trace *trace_create(lx_closure *c, lx_node *const *real, int n_in, lx_status *st) {
    trace *t = calloc(1, sizeof *t);
    lx_array *ph = calloc((size_t)(n_in ? n_in : 1), sizeof(lx_array));
    lx_node **ph_nodes = calloc((size_t)(n_in ? n_in : 1), sizeof(lx_node *));
    lx_array *outs = calloc((size_t)c->n_out, sizeof(lx_array));
    lx_node **out_nodes = calloc((size_t)c->n_out, sizeof(lx_node *));
    graph g;
    memset(&g, 0, sizeof g);
    *st = LX_OK;
    if (!t || !ph || !ph_nodes || !outs || !out_nodes) {
        *st = oom("for a trace");
        goto fail;
    }
    t->n_in = n_in;
    t->shapeless = (c->flags & LX_COMPILE_SHAPELESS) != 0;
    t->keys = calloc((size_t)(n_in ? n_in : 1), sizeof(in_key));
    if (!t->keys) {
        *st = oom("for a trace");
        goto fail;
    }
    for (int i = 0; i < n_in; i++) {
        t->keys[i].dtype = real[i]->dtype;
        t->keys[i].ndim = real[i]->ndim;
        t->keys[i].device = real[i]->device;
        memcpy(t->keys[i].shape, real[i]->shape, sizeof t->keys[i].shape);
    }
    /* trace: everything made from here on belongs to t->handles */
    lx_handle_list *prev = lx_handle_sink(&t->handles);
    tl_tracing++;
    bool made = true;
    for (int i = 0; i < n_in && made; i++) {
        lx_node *p = lx_node_new("lx_call (a traced input)", LX_PRIM_PLACEHOLDER,
                                 (lx_dtype)real[i]->dtype, real[i]->shape, real[i]->ndim, NULL,
                                 0, NULL, 0);
        if (p) p->device = real[i]->device;
        ph_nodes[i] = p;
        ph[i] = lx_handle_new(p); /* the handle holds the reference */
        made = !lx_is_null(ph[i]);
    }
    lx_status fst = made ? c->fn(c->ctx, ph, n_in, outs, c->n_out) : lx_error();
    tl_tracing--;
    lx_handle_sink(prev);
    if (fst != LX_OK || lx_error() != LX_OK) {
        if (lx_error() == LX_OK)
            lx_set_error(fst, "lx_call: the compiled function returned %s while it was traced",
                         lx_status_string(fst));
        *st = lx_error();
        goto fail;
    }
    for (int j = 0; j < c->n_out; j++) {
        out_nodes[j] = lx_handle_peek(outs[j]);
        if (!out_nodes[j]) {
            *st = lx_set_error(lx_is_null(outs[j]) ? LX_E_ARG : LX_E_FREED,
                               "lx_call: output %d of the compiled function is %s", j,
                               lx_is_null(outs[j]) ? "the null array" : "a released array");
            goto fail;
        }
    }
    g.shapeless = t->shapeless;
    if ((*st = graph_collect(&g, ph_nodes, n_in, out_nodes, c->n_out)) != LX_OK) goto fail;
    if ((*st = graph_simplify(&g)) != LX_OK) goto fail;
    graph_mark_live(&g);
    if ((*st = graph_fuse(&g)) != LX_OK) goto fail;
    if (g.shapeless) graph_matmul_refs(&g);
    if ((*st = graph_emit(&g, t)) != LX_OK) goto fail;
    graph_free(&g);
    for (int j = 0; j < c->n_out; j++) lx_node_release(out_nodes[j]);
    free(ph);
    free(ph_nodes);
    free(outs);
    free(out_nodes);
    return t;
fail:
    graph_free(&g);
    if (out_nodes)
        for (int j = 0; j < c->n_out; j++)
            if (out_nodes[j]) lx_node_release(out_nodes[j]);
    trace_free(t);
    free(ph);
    free(ph_nodes);
    free(outs);
    free(out_nodes);
    if (*st == LX_OK) *st = LX_E_INTERNAL;
    return NULL;
}

/* ---- replay -------------------------------------------------------------------------------- */

static lx_status replay(const trace *t, lx_node *const *real, lx_array *out) {
    int n_vals = t->n_in + t->n_const + t->n_ops;
    lx_node *small_vals[64];
    lx_node **vals = n_vals <= 64 ? small_vals : malloc(sizeof(lx_node *) * (size_t)n_vals);
    lx_node *small_ins[16];
    lx_node **ins = t->max_in <= 16 ? small_ins : malloc(sizeof(lx_node *) * (size_t)t->max_in);
    shp small_shp[16];
    shp *pin = !t->shapeless ? NULL
               : t->max_in <= 16 ? small_shp : malloc(sizeof(shp) * (size_t)t->max_in);
    _Alignas(16) unsigned char small_p[1024];
    unsigned char *pbuf = t->max_params + 16 <= sizeof small_p ? small_p
                                                               : malloc(t->max_params + 16);
    lx_status st = LX_OK;
    int built = 0;
    if (!vals || !ins || (t->shapeless && !pin) || !pbuf) {
        st = oom("to replay a compiled function");
        goto done;
    }
    for (int i = 0; i < t->n_in; i++) vals[i] = real[i];
    for (int i = 0; i < t->n_const; i++) vals[t->n_in + i] = t->consts[i];
    for (int i = 0; i < t->n_ops; i++) {
        const tape_op *op = &t->ops[i];
        const int32_t *idx = t->ins + op->in_off;
        for (int k = 0; k < op->n_in; k++) ins[k] = vals[idx[k]];
        const int32_t *shape = op->shape;
        int ndim = op->ndim;
        const void *params = t->params + op->params_off;
        int32_t sbuf[LX_MAX_NDIM];
        if (op->rule != R_LITERAL) {
            for (int k = 0; k < op->n_in; k++)
                pin[k] = (shp){ins[k]->ndim, ins[k]->shape, ins[k]->params};
            shp ref = {0, NULL, NULL};
            if (op->ref >= 0) ref = (shp){vals[op->ref]->ndim, vals[op->ref]->shape, NULL};
            st = infer(op, params, pin, op->n_in, &ref, sbuf, &ndim, pbuf, &params);
            if (st == LX_OK && !lx_shape_check(op->op, sbuf, ndim, (lx_dtype)op->dtype, NULL))
                st = lx_error();
            if (st != LX_OK) goto done;
            shape = sbuf;
        }
        for (int k = 0; k < op->n_in; k++) lx_node_retain(ins[k]);
        lx_node *n = lx_node_new(op->op, op->prim, (lx_dtype)op->dtype, shape, ndim, ins,
                                 op->n_in, params, op->params_size);
        if (!n) {
            st = lx_error() ? lx_error() : LX_E_OOM;
            goto done;
        }
        n->device = op->device;
        vals[t->n_in + t->n_const + i] = n;
        built++;
    }
    for (int j = 0; j < t->n_out; j++) {
        lx_node *n = vals[t->outs[j]];
        lx_node_retain(n);
        out[j] = lx_handle_new(n);
        if (lx_is_null(out[j])) {
            st = lx_error() ? lx_error() : LX_E_OOM;
            for (int k = 0; k < j; k++) {
                lx_free(out[k]);
                out[k] = LX_NULL_ARRAY;
            }
            goto done;
        }
    }
done:
    for (int i = 0; i < built; i++) lx_node_release(vals[t->n_in + t->n_const + i]);
    if (vals != small_vals) free(vals);
    if (ins != small_ins) free(ins);
    if (pin && pin != small_shp) free(pin);
    if (pbuf != small_p) free(pbuf);
    return st;
}

/* ---- the cache ---------------------------------------------------------------------------- */

static bool key_match(const trace *t, lx_node *const *real, int n_in) {
    if (t->n_in != n_in) return false;
    for (int i = 0; i < n_in; i++) {
        const in_key *k = &t->keys[i];
        const lx_node *x = real[i];
        if (k->dtype != x->dtype || k->ndim != x->ndim || k->device != x->device) return false;
        if (!t->shapeless && memcmp(k->shape, x->shape, sizeof(int32_t) * k->ndim) != 0)
            return false;
    }
    return true;
}

static void list_unlink(lx_closure *c, trace *t) {
    if (t->prev) t->prev->next = t->next;
    else c->head = t->next;
    if (t->next) t->next->prev = t->prev;
    else c->tail = t->prev;
    t->prev = t->next = NULL;
    c->n_traces--;
}

static void list_push_front(lx_closure *c, trace *t) {
    t->prev = NULL;
    t->next = c->head;
    if (c->head) c->head->prev = t;
    c->head = t;
    if (!c->tail) c->tail = t;
    c->n_traces++;
}

/* ---- public API ------------------------------------------------------------------------------ */

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
    while (c->head) {
        trace *t = c->head;
        list_unlink(c, t);
        trace_free(t);
    }
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
    if (tl_tracing > 0 || !compile_enabled()) return call_direct(c, in, n_in, out, n_out);

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
    trace *t = c->head;
    while (t && !key_match(t, real, n_in)) t = t->next;
    if (t) {
        if (t != c->head) {
            list_unlink(c, t);
            list_push_front(c, t);
        }
    } else {
        /* trace with this thread's earlier error (if any) set aside, so that a failure while
         * tracing is seen; the earlier error is the one kept */
        lx_status saved = lx_error();
        char saved_msg[512] = "";
        if (saved != LX_OK) {
            snprintf(saved_msg, sizeof saved_msg, "%s", lx_error_message());
            lx_clear_error();
        }
        t = trace_create(c, real, n_in, &st);
        if (saved != LX_OK) {
            lx_clear_error();
            lx_set_error(saved, "%s", saved_msg);
        }
        if (t) {
            atomic_fetch_add(&c->trace_count, 1);
            list_push_front(c, t);
        }
    }
    if (t) st = replay(t, real, out);
    int limit = atomic_load(&g_cache_limit);
    while (c->n_traces > limit && c->tail) {
        trace *old = c->tail;
        list_unlink(c, old);
        trace_free(old);
    }
    pthread_mutex_unlock(&c->lock);
done:
    for (int i = 0; i < got; i++) lx_node_release(real[i]);
    if (real != small) free(real);
    return st;
}
