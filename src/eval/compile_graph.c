/*
 * compile_graph.c -- the working graph of a trace (compile_int.h's vocabulary): collected
 * from the nodes fn built, simplified (no-op views and copies dropped, astype of a scalar
 * folded, equal scalar constants and common subexpressions merged), marked live, and, after
 * fusion (compile_fuse.c), emitted as the trace's tape. Also the small helpers the passes
 * share.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/compile_int.h"
#include "graph/prims.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/node.h"

/* ---- small containers ----------------------------------------------------------------------- */

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

bool lx_ivec_push(lx_ivec *a, int32_t x) {
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

/* ---- the working graph ---------------------------------------------------------------------- */

int lx_compile_graph_add(lx_wgraph *g) {
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 128;
        lx_wval *p = realloc(g->v, (size_t)cap * sizeof *p);
        if (!p) return -1;
        g->v = p;
        g->cap = cap;
    }
    lx_wval *w = &g->v[g->n];
    memset(w, 0, sizeof *w);
    w->rep = g->n;
    w->group = -1;
    w->fmap = -1;
    w->shape_ref = -1;
    return g->n++;
}

void lx_compile_graph_free(lx_wgraph *g) {
    for (int i = 0; i < g->n; i++) {
        lx_wval *w = &g->v[i];
        free(w->in);
        if (w->params_owned) free((void *)w->params);
        if (w->kind == LX_WVAL_CONST && w->node) lx_node_release(w->node);
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

void lx_compile_set_shape(lx_wval *w, const int32_t *shape, int ndim) {
    w->ndim = (uint8_t)ndim;
    w->size = 1;
    for (int i = 0; i < LX_MAX_NDIM; i++) {
        w->shape[i] = i < ndim ? shape[i] : 0;
        if (i < ndim) w->size *= shape[i];
    }
}

/* The value an input really reads: BROADCAST views stripped. */
int32_t lx_compile_strip_broadcast(const lx_wgraph *g, int32_t u) {
    while (g->v[u].kind == LX_WVAL_OP && g->v[u].prim == LX_PRIM_BROADCAST && g->v[u].n_in == 1)
        u = g->v[u].in[0];
    return u;
}

int32_t lx_compile_mapped(const lx_wgraph *g, int32_t v) {
    v = g->v[v].rep;
    return g->v[v].fmap >= 0 ? g->v[v].fmap : v;
}

/* Depth-first from the outputs: every LAZY node becomes an op, anything else (READY, or being
 * computed) a constant, the placeholders the inputs. */
lx_status lx_compile_graph_collect(lx_wgraph *g, lx_node *const *ph, int n_in,
                                   lx_node *const *outs, int n_out) {
    ptrmap map = {0};
    typedef struct { lx_node *n; int next; } frame;
    frame *stack = NULL;
    size_t depth = 0, cap = 0;
    lx_status st = LX_OK;
    g->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        int v = lx_compile_graph_add(g);
        if (v < 0 || !ptrmap_put(&map, ph[i], v)) {
            st = lx_compile_oom("for the trace");
            goto done;
        }
        lx_wval *w = &g->v[v];
        w->kind = LX_WVAL_INPUT;
        w->dtype = ph[i]->dtype;
        w->device = ph[i]->device;
        w->prim = LX_PRIM_PLACEHOLDER;
        w->op = ph[i]->op;
        lx_compile_set_shape(w, ph[i]->shape, ph[i]->ndim);
    }
    g->outs = malloc(sizeof(int32_t) * (size_t)(n_out ? n_out : 1));
    if (!g->outs) {
        st = lx_compile_oom("for the trace");
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
            if (!p) { st = lx_compile_oom("for the trace"); goto done; }
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
                    if (!p) { st = lx_compile_oom("for the trace"); goto done; }
                    stack = p;
                }
                stack[depth++] = (frame){in, 0};
                continue;
            }
            depth--;
            int v = lx_compile_graph_add(g);
            if (v < 0 || !ptrmap_put(&map, n, v)) {
                st = lx_compile_oom("for the trace");
                goto done;
            }
            lx_wval *w = &g->v[v];
            w->dtype = n->dtype;
            w->device = n->device;
            w->op = n->op;
            lx_compile_set_shape(w, n->shape, n->ndim);
            if (!lazy) {
                w->kind = LX_WVAL_CONST;
                lx_node_retain(n);
                w->node = n;
            } else {
                w->kind = LX_WVAL_OP;
                w->node = n;
                w->prim = n->prim;
                w->params = n->params;
                w->params_size = n->params_size;
                w->n_in = n->n_inputs;
                if (n->n_inputs) {
                    w->in = malloc(sizeof(int32_t) * n->n_inputs);
                    if (!w->in) { st = lx_compile_oom("for the trace"); goto done; }
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

/* ---- simplification ------------------------------------------------------------------------- */

bool lx_compile_same_shape(const lx_wval *a, const lx_wval *b) {
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int32_t) * a->ndim) == 0;
}

/* Whether value v is surely row-contiguous when computed: a kernel's output. */
static bool is_kernel_output(const lx_wgraph *g, int v) {
    const lx_wval *w = &g->v[v];
    return w->kind == LX_WVAL_OP && !lx_prim_is_view(w->prim);
}

/* A READY size-1 constant's value as a double, when exact and readable on the host. */
bool lx_compile_const_scalar_value(const lx_wval *w, double *out) {
    if (w->kind != LX_WVAL_CONST || w->size != 1 || !w->node) return false;
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
bool lx_compile_full_scalar_value(const lx_wval *w, double *out) {
    if (w->kind != LX_WVAL_OP || w->prim != LX_PRIM_FULL || w->size != 1 || w->n_in != 0 ||
        w->params_size < sizeof(lx_full_params))
        return false;
    lx_full_params p;
    memcpy(&p, w->params, sizeof p);
    *out = p.value;
    return true;
}

/* v as a value of dtype t holds it (rounded as a CONST of that dtype is). */
double lx_compile_value_in(lx_dtype t, double v) {
    unsigned char b[8];
    lx_dtype_store(t, b, v);
    return lx_dtype_load(t, b);
}

bool lx_compile_exact_in(lx_dtype t, double v) {
    double r = lx_compile_value_in(t, v);
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

static uint64_t op_hash(const lx_wval *w) {
    uint64_t h = 0xcbf29ce484222325ull;
    uint32_t head[4] = {w->prim, w->dtype, w->ndim, (uint32_t)w->n_in};
    h = hash_bytes(h, head, sizeof head);
    h = hash_bytes(h, w->shape, sizeof(int32_t) * w->ndim);
    if (w->params_size) h = hash_bytes(h, w->params, w->params_size);
    if (w->n_in) h = hash_bytes(h, w->in, sizeof(int32_t) * (size_t)w->n_in);
    return h;
}

static bool op_equal(const lx_wval *a, const lx_wval *b) {
    return a->prim == b->prim && a->dtype == b->dtype && a->device == b->device &&
           lx_compile_same_shape(a, b) && a->n_in == b->n_in && a->params_size == b->params_size &&
           (!a->params_size || memcmp(a->params, b->params, a->params_size) == 0) &&
           (!a->n_in || memcmp(a->in, b->in, sizeof(int32_t) * (size_t)a->n_in) == 0);
}

static bool const_equal(const lx_wval *a, const lx_wval *b) {
    if (a->dtype != b->dtype || a->device != b->device || !lx_compile_same_shape(a, b))
        return false;
    const lx_node *x = a->node, *y = b->node;
    if (x->device != LX_CPU || !x->buf || !y->buf) return false;
    return memcmp(lx_node_ptr(x), lx_node_ptr(y), lx_dtype_size((lx_dtype)x->dtype)) == 0;
}

lx_status lx_compile_graph_simplify(lx_wgraph *g) {
    size_t cap = 16;
    while (cap < (size_t)g->n * 2) cap *= 2;
    int32_t *table = malloc(cap * sizeof *table);
    lx_ivec scalars = {0};
    if (!table) return lx_compile_oom("for the trace");
    for (size_t i = 0; i < cap; i++) table[i] = -1;
    lx_status st = LX_OK;
    for (int v = 0; v < g->n; v++) {
        lx_wval *w = &g->v[v];
        if (w->kind == LX_WVAL_INPUT) continue;
        if (w->kind == LX_WVAL_CONST) { /* merge equal scalars */
            if (w->size != 1 || lx_node_state_of(w->node) != LX_NODE_READY) continue;
            for (size_t k = 0; k < scalars.n; k++)
                if (const_equal(&g->v[scalars.v[k]], w)) {
                    w->rep = scalars.v[k];
                    break;
                }
            if (w->rep == v && !lx_ivec_push(&scalars, v)) {
                st = lx_compile_oom("for the trace");
                break;
            }
            continue;
        }
        for (int k = 0; k < w->n_in; k++) w->in[k] = g->v[w->in[k]].rep;
        const lx_wval *x = w->n_in ? &g->v[w->in[0]] : NULL;
        /* no-op views and copies */
        if (x && lx_compile_same_shape(w, x) && w->dtype == x->dtype) {
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
        if (w->prim == LX_PRIM_COPY && x && x->size == 1 && lx_compile_same_shape(w, x) &&
            lx_compile_full_scalar_value(x, &val) && lx_compile_exact_in((lx_dtype)x->dtype, val) &&
            lx_compile_exact_in((lx_dtype)w->dtype, val)) {
            lx_full_params *p = calloc(1, sizeof *p);
            if (!p) { st = lx_compile_oom("for the trace"); break; }
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
void lx_compile_graph_mark_live(lx_wgraph *g) {
    for (int v = 0; v < g->n; v++) g->v[v].live = false;
    for (int o = 0; o < g->n_out; o++) g->v[g->outs[o]].live = true;
    for (int v = g->n - 1; v >= 0; v--) {
        lx_wval *w = &g->v[v];
        if (!w->live || w->rep != v) continue;
        for (int k = 0; k < w->n_in; k++) g->v[w->in[k]].live = true;
    }
}

/* ---- the final tape ------------------------------------------------------------------------- */

lx_status lx_compile_graph_emit(lx_wgraph *g, lx_trace *t) {
    int n = g->n;
    int32_t *tag = malloc(sizeof(int32_t) * (size_t)n);
    int32_t *order = malloc(sizeof(int32_t) * (size_t)n);
    bool *dep = calloc((size_t)n, sizeof(bool));
    typedef struct { int32_t v; int next; } frame;
    frame *stack = malloc(sizeof(frame) * (size_t)n);
    int n_const = 0, n_ops = 0, n_order = 0;
    lx_status st = LX_OK;
    if (!tag || !order || !dep || !stack) {
        st = lx_compile_oom("for the trace");
        goto done;
    }
    for (int v = 0; v < n; v++) tag[v] = -1;
    for (int i = 0; i < g->n_in; i++) {
        tag[i] = i;
        dep[i] = true;
    }
    for (int o = 0; o < g->n_out; o++) {
        int32_t root = lx_compile_mapped(g, g->outs[o]);
        if (tag[root] >= 0) continue;
        int depth = 0;
        stack[depth++] = (frame){root, 0};
        tag[root] = -2; /* on the stack */
        while (depth) {
            frame *f = &stack[depth - 1];
            const lx_wval *w = &g->v[f->v];
            int n_visit = w->n_in + (w->shape_ref >= 0 ? 1 : 0);
            if (w->kind == LX_WVAL_OP && f->next < n_visit) {
                int32_t u = f->next < w->n_in ? lx_compile_mapped(g, w->in[f->next])
                                              : lx_compile_mapped(g, w->shape_ref);
                f->next++;
                if (tag[u] != -1) continue;
                tag[u] = -2;
                stack[depth++] = (frame){u, 0};
                continue;
            }
            depth--;
            if (w->kind == LX_WVAL_CONST) {
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
    t->ops = calloc((size_t)(n_ops ? n_ops : 1), sizeof(lx_tape_op));
    t->outs = malloc(sizeof(int32_t) * (size_t)(g->n_out ? g->n_out : 1));
    size_t n_ins = 0, pbytes = 0;
    for (int i = 0; i < n_ops; i++) {
        const lx_wval *w = &g->v[order[i]];
        n_ins += (size_t)w->n_in;
        pbytes += ((size_t)w->params_size + 15) & ~(size_t)15;
    }
    t->ins = malloc(sizeof(int32_t) * (n_ins ? n_ins : 1));
    t->params = malloc(pbytes ? pbytes : 1);
    if (!t->consts || !t->ops || !t->outs || !t->ins || !t->params) {
        st = lx_compile_oom("for the trace");
        goto done;
    }
    for (int v = 0; v < n; v++)
        if (g->v[v].kind == LX_WVAL_CONST && tag[v] >= 0) {
            lx_node_retain(g->v[v].node);
            t->consts[tag[v]] = g->v[v].node;
        }
    size_t in_at = 0, p_at = 0;
    int base_const = t->n_in, base_op = t->n_in + n_const;
#define VAL_INDEX(u)                                                                     \
    (g->v[u].kind == LX_WVAL_INPUT   ? (u)                                                \
     : g->v[u].kind == LX_WVAL_CONST ? base_const + tag[u]                                \
                                     : base_op + tag[u])
    for (int i = 0; i < n_ops && st == LX_OK; i++) {
        int32_t v = order[i];
        const lx_wval *w = &g->v[v];
        lx_tape_op *op = &t->ops[i];
        op->prim = w->prim;
        op->dtype = w->dtype;
        op->ndim = w->ndim;
        op->device = w->device;
        memcpy(op->shape, w->shape, sizeof op->shape);
        op->op = w->op;
        op->aux = w->aux;
        op->ref = w->shape_ref >= 0 ? VAL_INDEX(lx_compile_mapped(g, w->shape_ref)) : -1;
        op->n_in = (uint16_t)w->n_in;
        op->in_off = (uint32_t)in_at;
        bool d = false;
        for (int k = 0; k < w->n_in; k++) {
            int32_t u = lx_compile_mapped(g, w->in[k]);
            t->ins[in_at++] = VAL_INDEX(u);
            d = d || dep[u];
        }
        if (w->shape_ref >= 0) d = d || dep[lx_compile_mapped(g, w->shape_ref)];
        dep[v] = d;
        if (w->n_in > t->max_in) t->max_in = w->n_in;
        op->params_off = (uint32_t)p_at;
        op->params_size = w->params_size;
        if (w->params_size) memcpy(t->params + p_at, w->params, w->params_size);
        p_at += ((size_t)w->params_size + 15) & ~(size_t)15;
        if (w->params_size > t->max_params) t->max_params = w->params_size;
        op->rule = LX_RULE_LITERAL;
        if (g->shapeless && d) {
            st = lx_compile_shape_rule(g, w, op, t->params + op->params_off);
            if (st != LX_OK) break;
        }
    }
    for (int o = 0; o < g->n_out && st == LX_OK; o++) {
        int32_t u = lx_compile_mapped(g, g->outs[o]);
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
