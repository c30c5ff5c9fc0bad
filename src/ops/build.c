/*
 * build.c -- node building and the shape helpers every op shares.
 *
 * Placement. A node is computed on the default device (lx_set_default_device), except views,
 * which stay with the data they look at. An input that lives on another device reaches the
 * node through a TRANSFER node. A node whose primitive the device leaves out (or whose
 * supports() refuses it) is built from the primitive's fallback (graph/prim_info.h) when it
 * has one, else it is computed on the CPU with transfers in and out: so a device with a few
 * kernels still runs every model, and the transfers show in the graph where they happen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "eval/eval.h"
#include "graph/prim_info.h"
#include "ops/ops.h"

void lx_release_nodes(lx_node **nodes, int n) {
    for (int i = 0; i < n; i++)
        if (nodes[i]) {
            lx_node_release(nodes[i]);
            nodes[i] = NULL;
        }
}

/* x (reference consumed) as seen on device d: x itself, or a TRANSFER of it. A LAZY
 * transfer from d that only the caller holds is undone instead of stacked. */
lx_node *lx_node_to_device(lx_node *x, lx_device d) {
    if (!x || x->device == (uint8_t)d) return x;
    /* refs first: once the caller holds the only reference no evaluation can be running or
     * detaching x, so its recipe may be read (the acquire orders the reads after theirs) */
    if (atomic_load_explicit(&x->refs, memory_order_acquire) == 1 &&
        lx_node_state_of(x) == LX_NODE_LAZY && x->prim == LX_PRIM_TRANSFER &&
        x->inputs[0]->device == (uint8_t)d) {
        lx_node *src = x->inputs[0];
        lx_node_retain(src);
        lx_node_release(x);
        return src;
    }
    lx_node *t = lx_node_new("transfer", LX_PRIM_TRANSFER, (lx_dtype)x->dtype, x->shape, x->ndim,
                             &x, 1, NULL, 0);
    if (t) t->device = (uint8_t)d;
    return t;
}

lx_node *lx_node_upload(const char *op, lx_node *x, lx_device d) {
    if (!x || x->device == (uint8_t)d || lx_node_state_of(x) != LX_NODE_READY) return x;
    const lx_device_impl *dev = lx_device_get(d);
    if (!dev) {
        lx_node_release(x);
        lx_set_error(LX_E_DEVICE, "%s: device %d is absent", op, (int)d);
        return NULL;
    }
    lx_node *t = lx_node_to_device(x, d);
    if (t && lx_eval_nodes(&t, 1) != LX_OK) {
        lx_node_release(t);
        return NULL;
    }
    return t;
}

/* lx_prim_fallback: ops/fallback.c. */

/* n (LAZY, on a device that does not compute it; reference consumed) rebuilt from its
 * fallback, or on the CPU between transfers. */
static lx_node *place_elsewhere(lx_node *n) {
    lx_device home = (lx_device)n->device;
    lx_node *fb = lx_prim_fallback(n);
    if (fb || lx_error() != LX_OK) {
        lx_node_release(n);
        return fb;
    }
    lx_node *ins[LX_NODE_INLINE_INPUTS], **in = ins;
    if (n->n_inputs > LX_NODE_INLINE_INPUTS && !(in = malloc(sizeof *in * n->n_inputs))) {
        lx_node_release(n);
        lx_set_error(LX_E_OOM, "%s: out of host memory for a graph node", n->op);
        return NULL;
    }
    int k = n->n_inputs;
    for (int i = 0; i < k; i++) {
        lx_node_retain(n->inputs[i]);
        in[i] = n->inputs[i];
    }
    lx_node *c = lx_node_new(n->op, n->prim, (lx_dtype)n->dtype, n->shape, n->ndim, in, k,
                             n->params, n->params_size);
    if (in != ins) free(in);
    lx_node_release(n);
    if (!c) return NULL;
    bool ok = true;
    for (int i = 0; i < c->n_inputs; i++)
        ok = ok && (c->inputs[i] = lx_node_to_device(c->inputs[i], LX_CPU)) != NULL;
    if (!ok) { /* a failed transfer released its input: drop the holes, then c */
        for (int i = 0; i < c->n_inputs; i++)
            if (!c->inputs[i]) {
                c->inputs[i] = c->inputs[c->n_inputs - 1];
                c->n_inputs--;
                i--;
            }
        lx_node_release(c);
        return NULL;
    }
    c->device = LX_CPU;
    return lx_node_to_device(c, home);
}

lx_node *lx_build(const char *op, int prim, lx_dtype dtype, const int *shape, int ndim,
                  lx_node *const *inputs, int n_inputs, const void *params, size_t params_size) {
    int64_t size;
    if (!lx_shape_check(op, shape, ndim, dtype, &size)) {
        for (int i = 0; i < n_inputs; i++) lx_node_release(inputs[i]);
        return NULL;
    }
#ifndef NDEBUG
    /* The node must follow its primitive's rule (graph/prim_info.h), the one statement of
     * each primitive's semantics that shapeless compile and fallbacks rely on. An internal
     * invariant, checked in debug builds (the sanitizer suite): in release builds it doubled
     * the cost of building a node (bench_core's 500-op graph: 94 -> 181 ns per op). */
    if (lx_prim_check(op, prim, dtype, shape, ndim, inputs, n_inputs, params, params_size) != LX_OK) {
        for (int i = 0; i < n_inputs; i++) lx_node_release(inputs[i]);
        return NULL;
    }
#endif
    bool view = lx_prim_is_view(prim);
    lx_device d = view && n_inputs ? (lx_device)inputs[0]->device : lx_default_device();
    lx_node *n = lx_node_new(op, prim, dtype, shape, ndim, inputs, n_inputs, params, params_size);
    if (!n) return NULL;
    n->device = (uint8_t)d;
    /* the CPU with every input there (everything, when no other device runs): nothing to
     * place, and no call for it; it is most of a graph's nodes */
    bool home = d == LX_CPU;
    for (int i = 0; home && i < n_inputs; i++) home = inputs[i]->device == LX_CPU;
    return home ? n : lx_node_place(n);
}

lx_node *lx_node_place(lx_node *n) {
    lx_device d = (lx_device)n->device;
    bool view = lx_prim_is_view(n->prim);
    bool ok = true;
    for (int i = 0; i < n->n_inputs; i++)
        if (n->inputs[i]->device != (uint8_t)d) {
            lx_node *t = lx_node_to_device(n->inputs[i], d);
            if (!t) { /* the input's reference went with the failed transfer */
                n->inputs[i] = n->inputs[--n->n_inputs];
                i--;
                ok = false;
                continue;
            }
            n->inputs[i] = t;
        }
    if (!ok) {
        lx_node_release(n);
        return NULL;
    }
    if (view || d == LX_CPU) return n;
    const lx_device_impl *dev = lx_device_get(d);
    if (dev && lx_device_supports(dev, n)) return n;
    return place_elsewhere(n);
}

lx_array lx_build_array(const char *op, int prim, lx_dtype dtype, const int *shape, int ndim,
                        lx_node *const *inputs, int n_inputs, const void *params,
                        size_t params_size) {
    return lx_wrap(lx_build(op, prim, dtype, shape, ndim, inputs, n_inputs, params, params_size));
}

int lx_norm_axis(const char *op, int axis, int ndim) {
    if (axis < -ndim || axis >= ndim) {
        lx_set_error(LX_E_ARG, "%s: axis %d is out of range for an array of %d dimensions", op,
                     axis, ndim);
        return -1;
    }
    return axis < 0 ? axis + ndim : axis;
}

const char *lx_shape_str(const int32_t *shape, int ndim, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len + 14 < n; i++)
        len += (size_t)snprintf(buf + len, n - len, i ? ", %d" : "%d", shape[i]);
    snprintf(buf + len, n - len, "]");
    return buf;
}

bool lx_broadcast_shape(const char *op, const int *a, int na, const int *b, int nb, int *out,
                        int *nout) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int da = i - (n - na) >= 0 ? a[i - (n - na)] : 1;
        int db = i - (n - nb) >= 0 ? b[i - (n - nb)] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            lx_set_error(LX_E_SHAPE, "%s: shapes %s and %s cannot be broadcast together", op,
                         lx_shape_str(a, na, sa, sizeof sa), lx_shape_str(b, nb, sb, sizeof sb));
            return false;
        }
        out[i] = da == 1 ? db : da;
    }
    *nout = n;
    return true;
}

lx_node *lx_node_broadcast(const char *op, lx_node *x, const int *shape, int ndim) {
    if (!x) return NULL;
    if (x->ndim == ndim && (ndim == 0 || memcmp(x->shape, shape, sizeof(int) * (size_t)ndim) == 0))
        return x; /* a scalar's shape may be NULL */
    bool ok = ndim >= x->ndim;
    for (int i = 0; ok && i < x->ndim; i++) {
        int d = x->shape[x->ndim - 1 - i];
        ok = d == 1 || d == shape[ndim - 1 - i];
    }
    if (!ok) {
        char sa[96], sb[96];
        lx_set_error(LX_E_SHAPE, "%s: cannot broadcast shape %s to %s", op,
                     lx_shape_str(x->shape, x->ndim, sa, sizeof sa),
                     lx_shape_str(shape, ndim, sb, sizeof sb));
        lx_node_release(x);
        return NULL;
    }
    return lx_build(op, LX_PRIM_BROADCAST, (lx_dtype)x->dtype, shape, ndim, &x, 1, NULL, 0);
}

lx_node *lx_node_astype(const char *op, lx_node *x, lx_dtype dtype) {
    if (!x) return NULL;
    if (x->dtype == dtype) return x;
    return lx_build(op, LX_PRIM_COPY, dtype, x->shape, x->ndim, &x, 1, NULL, 0);
}

lx_node *lx_node_reshape(const char *op, lx_node *x, const int *shape, int ndim) {
    if (!x) return NULL;
    if (x->ndim == ndim && (ndim == 0 || memcmp(x->shape, shape, sizeof(int) * (size_t)ndim) == 0))
        return x; /* a scalar's shape may be NULL */
    return lx_build(op, LX_PRIM_RESHAPE, (lx_dtype)x->dtype, shape, ndim, &x, 1, NULL, 0);
}

lx_node *lx_node_permute(const char *op, lx_node *x, const int *perm) {
    if (!x) return NULL;
    bool identity = true;
    int shape[LX_MAX_NDIM];
    lx_permute_params p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < x->ndim; i++) {
        p.perm[i] = perm[i];
        shape[i] = x->shape[perm[i]];
        if (perm[i] != i) identity = false;
    }
    if (identity) return x;
    return lx_build(op, LX_PRIM_PERMUTE, (lx_dtype)x->dtype, shape, x->ndim, &x, 1, &p, sizeof p);
}

lx_node *lx_node_scalar(const char *op, double value, lx_dtype dtype) {
    lx_full_params p = {value};
    return lx_build(op, LX_PRIM_FULL, dtype, NULL, 0, NULL, 0, &p, sizeof p);
}

bool lx_broadcast_pair(const char *op, lx_node **a, lx_node **b, int dtype) {
    int shape[LX_MAX_NDIM], n;
    if (!lx_broadcast_shape(op, (*a)->shape, (*a)->ndim, (*b)->shape, (*b)->ndim, shape, &n)) {
        lx_node_release(*a);
        lx_node_release(*b);
        *a = *b = NULL;
        return false;
    }
    if (dtype >= 0) {
        *a = lx_node_astype(op, *a, (lx_dtype)dtype);
        *b = lx_node_astype(op, *b, (lx_dtype)dtype);
    }
    *a = lx_node_broadcast(op, *a, shape, n);
    *b = lx_node_broadcast(op, *b, shape, n);
    if (!*a || !*b) {
        if (*a) lx_node_release(*a);
        if (*b) lx_node_release(*b);
        *a = *b = NULL;
        return false;
    }
    return true;
}
