/*
 * test_graph.h -- the lazy graph behind arrays, for tests that look at the nodes an op built
 * (test_backend_ops: which primitives ran; test_cuda_fused_gen: the FUSED programs compile
 * made). Uses lx's internals (core/node.h).
 */
#ifndef LX_TEST_GRAPH_H
#define LX_TEST_GRAPH_H

#include <stdbool.h>

#include "core/handle.h"
#include "core/node.h"

/* Calls visit(node, user) once for each LAZY node of the graphs behind outs, depth first from
 * the outputs (a node before its inputs); a computed node ends its path. At most 8192 nodes. */
static inline void t_walk_lazy(const lx_array *outs, int n, void (*visit)(lx_node *, void *),
                               void *user) {
    enum { CAP = 8192 };
    static lx_node *seen[CAP], *stack[CAP];
    int n_seen = 0, top = 0;
    for (int i = 0; i < n; i++) {
        lx_node *nd = lx_handle_peek(outs[i]);
        if (!nd) continue;
        stack[top++] = nd;
        lx_node_release(nd); /* the handle keeps it alive while we look */
    }
    while (top > 0) {
        lx_node *nd = stack[--top];
        bool dup = false;
        for (int i = 0; i < n_seen && !dup; i++) dup = seen[i] == nd;
        if (dup || n_seen == CAP) continue;
        seen[n_seen++] = nd;
        if (lx_node_state_of(nd) != LX_NODE_LAZY) continue;
        visit(nd, user);
        for (int k = 0; k < nd->n_inputs && top < CAP; k++) stack[top++] = nd->inputs[k];
    }
}

#endif
