/*
 * compile_fuse.c -- fusion (compile.h's "Fuse"): maximal groups of elementwise values of one
 * shape, grown from the last value backwards, each replaced by one FUSED value whose params
 * are a graph/fused.h program (several outputs: a byte buffer plus PART views). Runs on the
 * simplified, live-marked graph; members get fmap, emission (compile_graph.c) follows it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/compile_int.h"
#include "graph/prim_info.h"
#include "graph/fused.h"
#include "graph/prims.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/ops.h"

#define MAX_GROUP_MEMBERS 160

/* ---- fusion groups -------------------------------------------------------------------------- */

/* Elementwise ops the table says fuse (graph/prim_info.h), well formed. */
static bool fusable(const lx_wval *w) {
    return w->kind == LX_WVAL_OP && lx_dtype_valid(w->dtype) &&
           lx_prim_node_fuses(w->prim, w->params, w->params_size, w->n_in);
}

static bool immediate_value(const lx_wgraph *g, int32_t s, double *val) {
    const lx_wval *w = &g->v[s];
    return lx_compile_full_scalar_value(w, val) || lx_compile_const_scalar_value(w, val);
}

typedef struct {
    int gid;
    int root;
    lx_ivec members;
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
static int new_sources(const lx_wgraph *g, const group_state *s, int v, int32_t *out) {
    const lx_wval *w = &g->v[v];
    int n = 0;
    for (int k = 0; k < w->n_in; k++) {
        int32_t u = lx_compile_strip_broadcast(g, w->in[k]);
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
static bool reaches_group(lx_wgraph *g, int c, int gid, int limit) {
    lx_ivec stack = {0};
    int gen = ++g->stamp_gen;
    bool found = false;
    if (!lx_ivec_push(&stack, c)) return true; /* out of memory: refuse the fusion */
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
            if (!lx_ivec_push(&stack, y)) {
                found = true;
                break;
            }
        }
    }
    free(stack.v);
    return found;
}

static bool has_outside_consumer(const lx_wgraph *g, int v, int gid) {
    if (g->is_out[v]) return true;
    for (int i = g->cons_off[v]; i < g->cons_off[v + 1]; i++)
        if (g->v[g->cons[i]].group != gid) return true;
    return false;
}

static void add_member(lx_wgraph *g, group_state *s, int v) {
    lx_wval *w = &g->v[v];
    w->group = s->gid;
    lx_ivec_push(&s->members, v); /* capacity reserved by the caller */
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
        const lx_wval *x = &g->v[u];
        if (x->group < 0 && fusable(x) && lx_compile_same_shape(x, w)) {
            g->stamp[u] = s->gid + 1;
            if (u < s->lowest) s->lowest = u;
        }
    }
}

static bool try_add(lx_wgraph *g, group_state *s, int q) {
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

/* ---- fused programs ------------------------------------------------------------------------- */

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
static lx_status build_group(lx_wgraph *g, group_state *s, bool *fused) {
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
    const lx_wval *root = &g->v[s->root];
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
    if (!ok) st = lx_compile_oom("for the trace");
    for (int i = 0; ok && i < nm; i++) {
        int v = mem[i];
        const lx_wval *w = &g->v[v];
        int32_t opr[3] = {-1, -1, -1};
        for (int k = 0; k < w->n_in && ok; k++) {
            int32_t u = w->in[k];
            if (g->v[u].group == s->gid) { /* a member: its register */
                for (int m = 0; m < i; m++)
                    if (mem[m] == u) opr[k] = vreg[m];
                continue;
            }
            int32_t src = lx_compile_strip_broadcast(g, u);
            double val;
            if (immediate_value(g, src, &val)) {
                const lx_wval *c = &g->v[src];
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
                if (r < 0) { ok = false; st = lx_compile_oom("for the trace"); break; }
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
                double c = lx_compile_value_in((lx_dtype)ci->dtype, ci->imm);
                int ex;
                if (isfinite(c) && c != 0.0 && fabs(frexp(c, &ex)) == 0.5 &&
                    lx_compile_exact_in((lx_dtype)ci->dtype, 1.0 / c)) {
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
        if (vreg[i] < 0) { ok = false; st = lx_compile_oom("for the trace"); break; }
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
        if (vprog_emit(&p, &si, vreg[outv[j]], -1, -1) < 0) { ok = false; st = lx_compile_oom(""); }
    }
    if (ok && (p.n > LX_FUSED_MAX_INSTR || n_outv == 0)) ok = false;
    /* shape rule for shapeless replay: the inputs' broadcast must give the group's shape */
    if (ok && g->shapeless) {
        int32_t bs[LX_MAX_NDIM] = {0};
        int bn = min_ndim;
        for (int d = 0; d < bn; d++) bs[d] = 1;
        for (int e = 0; e < n_ext && ok; e++) {
            const lx_wval *x = &g->v[ext[e]];
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
            return lx_compile_oom("for the trace");
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
        return lx_compile_oom("for the trace");
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
    int fv = h ? lx_compile_graph_add(g) : -1;
    if (fv < 0) {
        free(h);
        free(vreg);
        free(p.code);
        return lx_compile_oom("for the trace");
    }
    root = &g->v[s->root]; /* lx_compile_graph_add may have moved the values */
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
    lx_wval *f = &g->v[fv];
    f->kind = LX_WVAL_OP;
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
        return lx_compile_oom("for the trace");
    }
    memcpy(f->in, ext, sizeof(int32_t) * (size_t)n_ext);
    f->n_in = n_ext;
    if (n_outv == 1) {
        f->dtype = h->out_dtype[0];
        lx_compile_set_shape(f, root->shape, root->ndim);
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
        lx_compile_set_shape(f, bshape, 2);
        for (int j = 0; j < n_outv; j++) {
            int pv = lx_compile_graph_add(g);
            lx_part_params *pp = calloc(1, sizeof *pp);
            int32_t *pin = malloc(sizeof(int32_t));
            if (pv < 0 || !pp || !pin) {
                free(pp);
                free(pin);
                free(vreg);
                free(p.code);
                return lx_compile_oom("for the trace");
            }
            const lx_wval *m = &g->v[mem[outv[j]]];
            lx_wval *pw = &g->v[pv];
            pw->kind = LX_WVAL_OP;
            pw->prim = LX_PRIM_PART;
            pw->dtype = m->dtype;
            pw->device = m->device;
            lx_compile_set_shape(pw, m->shape, m->ndim);
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

lx_status lx_compile_graph_fuse(lx_wgraph *g) {
    int n = g->n;
    lx_status st = LX_OK;
    if (n <= 0) return LX_OK;
    g->cons_off = calloc((size_t)n + 1, sizeof(int32_t));
    g->is_out = calloc((size_t)n + 1, sizeof(bool));
    g->stamp = calloc((size_t)n + 1, sizeof(int32_t));
    g->stamp2 = calloc((size_t)n + 1, sizeof(int32_t));
    if (!g->cons_off || !g->is_out || !g->stamp || !g->stamp2)
        return lx_compile_oom("for the trace");
    for (int v = 0; v < n; v++) {
        const lx_wval *w = &g->v[v];
        if (!w->live || w->rep != v || w->kind != LX_WVAL_OP) continue;
        for (int k = 0; k < w->n_in; k++) g->cons_off[w->in[k] + 1]++;
    }
    for (int v = 0; v < n; v++) g->cons_off[v + 1] += g->cons_off[v];
    g->cons = malloc(sizeof(int32_t) * (size_t)(g->cons_off[n] ? g->cons_off[n] : 1));
    int32_t *fill = calloc((size_t)n, sizeof(int32_t));
    if (!g->cons || !fill) {
        free(fill);
        return lx_compile_oom("for the trace");
    }
    for (int v = 0; v < n; v++) {
        const lx_wval *w = &g->v[v];
        if (!w->live || w->rep != v || w->kind != LX_WVAL_OP) continue;
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
    if (!s.members.v) return lx_compile_oom("for the trace");
    for (int r = n - 1; r >= 0 && st == LX_OK; r--) {
        lx_wval *w = &g->v[r];
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
                if (g->v[w->in[k]].prim == LX_PRIM_BROADCAST && g->v[w->in[k]].kind == LX_WVAL_OP)
                    want = true;
        bool fused = false;
        if (want) st = build_group(g, &s, &fused);
        if (!fused)
            for (size_t i = 0; i < s.members.n; i++) g->v[s.members.v[i]].group = -1;
    }
    free(s.members.v);
    return st;
}
