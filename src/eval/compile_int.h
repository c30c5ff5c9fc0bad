/*
 * compile_int.h -- what the files of compile share (compile.h is what the rest of lx sees, and
 * says what compile does). One file per step:
 *
 *   compile_api.c     lx_compile, lx_call, lx_closure_free, the compile switch
 *   compile_cache.c   a closure's traces in least-recently-used order, and their bound
 *   compile_trace.c   runs fn on placeholders and turns what it built into a tape
 *   compile_graph.c   the working graph: collect it from the traced nodes, simplify it, emit
 *                     the tape from it
 *   compile_fuse.c    elementwise groups into FUSED nodes (graph/fused.h programs)
 *   compile_shape.c   shapeless compile: the shape rule of each primitive, picked and checked
 *                     while tracing, followed on replay
 *   compile_replay.c  fresh nodes from a tape and the real inputs
 *
 * Vocabulary. While a trace is turned into a tape, the graph is a list of values in
 * topological order (lx_wval): the inputs (placeholders) first, then constants and ops as the
 * depth-first walk from the outputs finishes them. Simplification maps values to
 * representatives (rep), fusion maps fused members to the FUSED node or its PART views (fmap),
 * and the final tape is a second depth-first walk from the outputs over the mapped graph.
 */
#ifndef LX_EVAL_COMPILE_INT_H
#define LX_EVAL_COMPILE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eval/compile.h"
#include "core/handle.h"
#include "core/node.h"
#include "lx.h"

/* ---- the tape ------------------------------------------------------------------------- */

/* How a shapeless replay computes an op's shape. */
enum {
    LX_RULE_LITERAL = 0, /* the traced shape (the op does not depend on the inputs) */
    LX_RULE_PRIM,        /* the primitive's rule (graph/prim_info.h); params patched */
    LX_RULE_SQUEEZE,     /* RESHAPE that drops / inserts size-1 dims (map) */
    LX_RULE_PART_FUSED,  /* output aux of the FUSED input */
    LX_RULE_MM_BCAST,    /* a matmul operand broadcast to the batch it shares with value `ref` */
};

typedef struct lx_tape_op {
    uint16_t prim;
    uint8_t dtype, ndim, device, rule;
    int8_t map[LX_MAX_NDIM]; /* SQUEEZE rule: input dim of each output dim, -1 for an inserted 1 */
    int32_t shape[LX_MAX_NDIM];
    uint32_t params_off, params_size;
    uint32_t in_off;
    uint16_t n_in;
    int32_t aux;
    int32_t ref;             /* LX_RULE_MM_BCAST: the other operand's value index */
    const char *op;
} lx_tape_op;

/* The cache key of one input. */
typedef struct lx_trace_key {
    uint8_t dtype, ndim, device;
    int32_t shape[LX_MAX_NDIM];
} lx_trace_key;

typedef struct lx_trace {
    struct lx_trace *prev, *next; /* the closure's list, most recently used first */
    int n_in, n_out, n_const, n_ops;
    bool shapeless;
    lx_trace_key *keys;
    lx_handle_list handles; /* every handle made while tracing */
    lx_node **consts;       /* retained */
    lx_tape_op *ops;
    int32_t *ins;           /* op inputs, flattened: value indices */
    unsigned char *params;  /* op params, 16-byte aligned offsets */
    int32_t *outs;          /* value index of each output */
    uint32_t max_params;
    int max_in;
} lx_trace;

struct lx_closure {
    lx_fn fn;
    void *ctx;
    int n_out;
    unsigned flags;
    pthread_mutex_t lock;
    lx_trace *head, *tail;
    int n_traces;
    atomic_int trace_count;
};

/* ---- the working graph ------------------------------------------------------------------ */

enum { LX_WVAL_INPUT = 0, LX_WVAL_CONST, LX_WVAL_OP };

typedef struct lx_wval {
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
    lx_node *node;      /* CONST: the constant (retained by the graph); OP: the traced node */
    int32_t rep;        /* simplify: the value standing for this one */
    int32_t group;      /* fuse: group id, or -1 */
    int32_t fmap;       /* fuse: the FUSED / PART value standing for a member, or -1 */
    int32_t aux;        /* PART of a fused group: output index */
    int32_t shape_ref;  /* shapeless: a BROADCAST into a matmul: the other operand, or -1 */
    bool live;
} lx_wval;

typedef struct lx_wgraph {
    lx_wval *v;
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
} lx_wgraph;

/* A growable int32 vector. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} lx_ivec;

/* An input's shape as a shape rule sees it. */
typedef struct {
    int ndim;
    const int32_t *shape;
    const void *params; /* the input's params (PART of FUSED reads its parent's header) */
    int dtype;          /* the input's dtype (the primitives' rules check them) */
} lx_shape_in;

/* ---- compile_api.c ---- */

/* Sets LX_E_OOM ("lx_call: out of host memory <what>") and returns it. */
lx_status lx_compile_oom(const char *what);

/* ---- compile_cache.c (the caller holds c->lock) ---- */

/* The trace of c that fits these inputs, moved to the front of the list; NULL if none. */
lx_trace *lx_compile_cache_find(lx_closure *c, lx_node *const *real, int n_in);
/* t at the front of c's list. */
void lx_compile_cache_add(lx_closure *c, lx_trace *t);
/* Drops the least recently used traces past the bound (lx_set_compile_cache_limit). */
void lx_compile_cache_trim(lx_closure *c);
/* Drops every trace of c. */
void lx_compile_cache_clear(lx_closure *c);

/* ---- compile_trace.c ---- */

/* Runs c's fn on placeholders of real's dtypes and shapes and turns what it built into a
 * tape. On failure returns NULL with the error set (or *st = fn's status) and nothing left
 * behind. */
lx_trace *lx_compile_trace_new(lx_closure *c, lx_node *const *real, int n_in, lx_status *st);
/* Frees t: its handles, constants and tape (NULL is fine). */
void lx_compile_trace_free(lx_trace *t);

/* ---- compile_replay.c ---- */

/* Builds t's nodes on the real inputs; out gets a handle per output, on the caller's
 * tracker. */
lx_status lx_compile_replay(const lx_trace *t, lx_node *const *real, lx_array *out);

/* ---- compile_graph.c: the working graph and the helpers its passes share ---- */

bool lx_ivec_push(lx_ivec *a, int32_t x);
/* A new value (zeroed, its own representative, in no group); -1 when out of memory. It may
 * move g->v. */
int lx_compile_graph_add(lx_wgraph *g);
void lx_compile_graph_free(lx_wgraph *g);
void lx_compile_set_shape(lx_wval *w, const int32_t *shape, int ndim);
bool lx_compile_same_shape(const lx_wval *a, const lx_wval *b);
/* A READY size-1 constant's value as a double, when exact and readable on the host. */
bool lx_compile_const_scalar_value(const lx_wval *w, double *out);
/* A FULL op of one element: its value. */
bool lx_compile_full_scalar_value(const lx_wval *w, double *out);
/* v as a value of dtype t holds it (rounded as a CONST of that dtype is). */
double lx_compile_value_in(lx_dtype t, double v);
/* Whether dtype t holds v exactly. */
bool lx_compile_exact_in(lx_dtype t, double v);
/* The value an input really reads: BROADCAST views stripped. */
int32_t lx_compile_strip_broadcast(const lx_wgraph *g, int32_t u);
/* The value standing for v after simplification and fusion. */
int32_t lx_compile_mapped(const lx_wgraph *g, int32_t v);

/* Depth-first from the outputs: every LAZY node becomes an op, anything else (READY, or being
 * computed) a constant, the placeholders the inputs. */
lx_status lx_compile_graph_collect(lx_wgraph *g, lx_node *const *ph, int n_in,
                                   lx_node *const *outs, int n_out);
/* No-op views and copies, astype of scalar constants, equal scalars, common subexpressions. */
lx_status lx_compile_graph_simplify(lx_wgraph *g);
/* Marks what the outputs need (after simplification). */
void lx_compile_graph_mark_live(lx_wgraph *g);
/* The final tape of t from the mapped graph (shapeless: with each op's shape rule). */
lx_status lx_compile_graph_emit(lx_wgraph *g, lx_trace *t);

/* ---- compile_fuse.c ---- */

/* Groups of elementwise values become FUSED values (members get fmap). */
lx_status lx_compile_graph_fuse(lx_wgraph *g);

/* ---- compile_shape.c: shapeless compile ---- */

/* Shapeless: a BROADCAST feeding a matmul operand takes its batch from both operands (sets
 * shape_ref). */
void lx_compile_graph_matmul_refs(lx_wgraph *g);
/* Picks the shape rule of op w (emitted as op, its params at tparams) and checks that it gives
 * back the traced shape; sets the error (LX_E_UNSUPPORTED naming the primitive) if not. */
lx_status lx_compile_shape_rule(const lx_wgraph *g, const lx_wval *w, lx_tape_op *op,
                                const void *tparams);
/* The shape of op from its inputs' shapes (rule op->rule); params that depend on the shape
 * are written to pbuf and *params points at them (else at the traced params). Returns LX_OK or
 * sets the error. */
lx_status lx_compile_shape_infer(const lx_tape_op *op, const void *tparams,
                                 const lx_shape_in *in, int n_in, const lx_shape_in *ref,
                                 int32_t *shape, int *ndim, void *pbuf, const void **params);

#endif
