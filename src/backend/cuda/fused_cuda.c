/*
 * fused_cuda.c -- the CUDA C source of one kernel per fused program (graph/fused.h) and input
 * kinds: the generator half of the CUDA module's FUSED primitive (fused_cuda.h). Plain C: it
 * needs no CUDA library, so the tests run it on machines without a GPU.
 *
 * The kernel is one thread per element of the logical shape, in a grid-stride loop:
 *
 *     extern "C" __global__ void lx_fused_kernel(const lxf_args a) {
 *         const float k2 = lx_f32_from_bits(0x3f000000u);          CONSTs, once
 *         const LX_ST_f16 s1 = ((const LX_ST_f16 *)a.in[1])[0];    scalar inputs, once
 *         for (int64_t i = ...; i < a.n; i += step) {
 *             o0 = offset of element i in input 0                  strided inputs only
 *             const float v0 = LX_LOAD_f32(((const LX_ST_f32 *)a.in[0])[o0]);
 *             const float v3 = LX_LOAD_f16(lx_cvt_f16_F(lx_ew_binary1_F(LX_BINARY_MUL, v0, k2)));
 *             ((LX_ST_f16 *)a.out[0])[i] = lx_cvt_f16_F(v3);
 *         }
 *     }
 *
 * Every instruction's result is a fresh local (v<i>, named by instruction: the program's
 * registers are reused by liveness, the locals need not be), so an instruction that overwrites
 * its own operand needs no care, and an instruction whose result nothing reads is left out.
 *
 * Bit-identity with the CPU's interpreter (cpu/fused.c) and the unfused kernels: the per-element
 * math is graph/elementwise_ops.h's (lx_ew_unary1_<C>, lx_ew_binary1_<C> and the predicates)
 * with the op a constant, the same definitions ew.cu compiles for the unfused UNARY/BINARY
 * kernels; a value result of a dtype that is not stored as its class (float16, bfloat16, the
 * narrow integers, bool) is narrowed and widened back, LX_LOAD_<s>(lx_cvt_<s>_<C>(v)), which is
 * what the interpreter's rounders and storing between separate kernels do; CONSTs are the
 * class value the interpreter fills (imm converted as FULL converts it) computed here on the
 * host and written as exact bits; CAST is LX_LOAD_<s>(lx_cvt_<s>_<C>(v)) (COPY's conversion),
 * STORE lx_cvt_<s>_<C>. fused_nvrtc.c compiles with --fmad=false, as ew.cu is built, so no
 * multiply and add of different ops are contracted; the formulas' own multiply-adds
 * (LX_EW_FMAF) are the GPU's fma in both.
 *
 * Inputs: LXF_CONTIG reads element i, LXF_SCALAR reads element 0 once before the loop,
 * LXF_STRIDED computes the offset from i's multi-index over the collapsed shape (int64; the
 * loop over dims has a constant trip count, so the arguments are read at constant offsets).
 * A kernel whose inputs are all contiguous or scalar has no index math at all. lxf_plan makes a
 * node's arguments and kinds: strides over the logical shape, collapsed as the CPU kernel
 * collapses them (size-1 dims dropped, dims every input walks as one merged), so a kernel's
 * kinds are those of the layout, and a program's kernel serves every shape with those kinds.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/fused_cuda.h"
#include "core/node.h"
#include "graph/codegen.h"
#include "graph/elementwise_ops.h"

static int cls_of(int t) { return lx_dtype_class((lx_dtype)t); }

/* ---- checking ---- */

const char *lxf_check(const void *params, size_t params_size, const uint8_t *in_dtypes, int n_in) {
    const lx_fused_header *h = params;
    if (!h || params_size < sizeof *h || h->version != LX_FUSED_VERSION) return "header";
    if (h->n_instr > LX_FUSED_MAX_INSTR || params_size != lx_fused_params_size(h->n_instr))
        return "size";
    if (h->n_in > LX_FUSED_MAX_IN || (in_dtypes && h->n_in != n_in) || h->n_out < 1 ||
        h->n_out > LX_FUSED_MAX_OUT || h->n_regs > 255 || h->ndim > LX_MAX_NDIM)
        return "counts";
    for (int j = 0; j < h->n_out; j++)
        if (!lx_dtype_valid(h->out_dtype[j])) return "output dtype";
    const lx_fused_instr *code = lx_fused_code(h);
    uint8_t regt[256];
    bool defined[256] = {false};
    bool stored[LX_FUSED_MAX_OUT] = {false};
    for (int i = 0; i < h->n_instr; i++) {
        const lx_fused_instr *ins = &code[i];
        if (!lx_dtype_valid(ins->dtype)) return "dtype";
        /* operands: defined registers of the program */
#define DEF(r) ((r) < h->n_regs && defined[r])
        switch (ins->op) {
        case LX_FOP_LOAD:
            if (ins->a >= h->n_in || (in_dtypes && in_dtypes[ins->a] != ins->dtype)) return "load";
            break;
        case LX_FOP_CONST: break;
        case LX_FOP_UNARY:
            if (ins->sub < 0 || ins->sub >= LX_UNARY_COUNT || !DEF(ins->a) ||
                regt[ins->a] != ins->adtype ||
                ins->dtype != (lx_unary_op_is_pred(ins->sub) ? LX_BOOL : ins->adtype))
                return "unary";
            break;
        case LX_FOP_BINARY:
            if (ins->sub < 0 || ins->sub >= LX_BINARY_COUNT || !DEF(ins->a) || !DEF(ins->b) ||
                regt[ins->a] != ins->adtype || regt[ins->b] != ins->adtype ||
                ins->dtype != (lx_binary_op_is_pred(ins->sub) ? LX_BOOL : ins->adtype))
                return "binary";
            break;
        case LX_FOP_WHERE:
            if (!DEF(ins->a) || !DEF(ins->b) || !DEF(ins->c) || regt[ins->a] != LX_BOOL ||
                regt[ins->b] != ins->dtype || regt[ins->c] != ins->dtype)
                return "where";
            break;
        case LX_FOP_CAST:
            if (!lx_dtype_valid(ins->adtype) || !DEF(ins->a) || regt[ins->a] != ins->adtype)
                return "cast";
            break;
        case LX_FOP_STORE:
            if (!DEF(ins->a) || ins->b >= h->n_out || regt[ins->a] != ins->dtype ||
                h->out_dtype[ins->b] != ins->dtype)
                return "store";
            stored[ins->b] = true;
            continue;
        default:
            return "opcode";
        }
#undef DEF
        if (ins->dst >= h->n_regs) return "register";
        regt[ins->dst] = ins->dtype;
        defined[ins->dst] = true;
    }
    for (int j = 0; j < h->n_out; j++)
        if (!stored[j]) return "an output is never stored";
    return NULL;
}

/* ---- nodes and launch arguments ---- */

static int64_t dsize(int t) {
    switch (t) {
#define X(E, T, S) case E: return (int64_t)sizeof(LX_ST_##S);
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: return 0;
    }
}

/* Input x's element strides over the logical shape (right-aligned; broadcast dims 0; NULL: only
 * checked), or false if it does not broadcast to it. */
static bool input_strides(const lx_node *x, const lx_fused_header *h, int64_t *st) {
    int lead = h->ndim - x->ndim;
    if (lead < 0) return false;
    for (int d = 0; d < h->ndim; d++) {
        int j = d - lead;
        if (j >= 0 && x->shape[j] != h->shape[d] && x->shape[j] != 1) return false;
        if (st) st[d] = (j < 0 || x->shape[j] != h->shape[d]) ? 0 : x->strides[j];
    }
    return true;
}

const char *lxf_node_check(const lx_node *n) {
    if (n->n_inputs > LX_FUSED_MAX_IN) return "counts";
    uint8_t dts[LX_FUSED_MAX_IN];
    for (int k = 0; k < n->n_inputs; k++) dts[k] = n->inputs[k]->dtype;
    const char *why = lxf_check(n->params, n->params_size, dts, n->n_inputs);
    if (why) return why;
    const lx_fused_header *h = n->params;
    int64_t size = 1;
    for (int d = 0; d < h->ndim; d++) size *= h->shape[d];
    if (h->n_out == 1) {
        if (n->dtype != h->out_dtype[0] || n->size != size) return "output shape";
    } else {
        int64_t need = 0;
        for (int j = 0; j < h->n_out; j++) {
            if (h->out_offset[j] != lx_fused_align(need)) return "offsets";
            need = h->out_offset[j] + size * dsize(h->out_dtype[j]);
        }
        if (n->size * dsize(n->dtype) < need) return "output bytes";
    }
    for (int k = 0; k < n->n_inputs; k++)
        if (!input_strides(n->inputs[k], h, NULL)) return "input shape";
    return NULL;
}

const char *lxf_plan(const lx_node *n, char *out_base, lxf_args *a, uint8_t *kinds) {
    const char *why = lxf_node_check(n);
    if (why) return why;
    const lx_fused_header *h = n->params;
    memset(a, 0, sizeof *a);
    a->n = 1;
    for (int d = 0; d < h->ndim; d++) a->n *= h->shape[d];
    for (int j = 0; j < h->n_out; j++) a->out[j] = out_base + h->out_offset[j];
    int64_t st0[LX_FUSED_MAX_IN][LX_MAX_NDIM];
    for (int k = 0; k < h->n_in; k++) {
        const lx_node *x = n->inputs[k];
        input_strides(x, h, st0[k]);
        a->in[k] = x->buf ? (const char *)x->buf->ptr + x->offset * dsize(x->dtype) : NULL;
    }
    int nd = 0;
    for (int d = 0; d < h->ndim; d++) {
        if (h->shape[d] == 1) continue;
        bool merge = nd > 0;
        for (int k = 0; k < h->n_in && merge; k++)
            merge = a->st[k][nd - 1] == st0[k][d] * h->shape[d];
        if (merge) {
            a->shape[nd - 1] *= h->shape[d];
            for (int k = 0; k < h->n_in; k++) a->st[k][nd - 1] = st0[k][d];
            continue;
        }
        a->shape[nd] = h->shape[d];
        for (int k = 0; k < h->n_in; k++) a->st[k][nd] = st0[k][d];
        nd++;
    }
    if (nd == 0) a->shape[nd++] = 1;
    a->nd = nd;
    int64_t row[LX_MAX_NDIM], s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        row[d] = s;
        s *= a->shape[d];
    }
    for (int k = 0; k < h->n_in; k++) {
        bool zero = true, contig = true;
        for (int d = 0; d < nd; d++) {
            zero = zero && a->st[k][d] == 0;
            contig = contig && (a->st[k][d] == row[d] || a->shape[d] == 1);
        }
        kinds[k] = zero ? LXF_SCALAR : (contig ? LXF_CONTIG : LXF_STRIDED);
    }
    return NULL;
}

/* ---- the key ---- */

size_t lxf_key(unsigned char *buf, size_t cap, const lx_fused_header *h, size_t params_size,
               const uint8_t *kinds) {
    size_t n = params_size + h->n_in + 4;
    if (!buf) return n;
    unsigned char tmp[LX_FUSED_MAX_IN + 4];
    lx_fused_header nh = *h;
    nh.ndim = 0;
    nh.min_ndim = 0;
    memset(nh.shape, 0, sizeof nh.shape);
    memset(nh.out_offset, 0, sizeof nh.out_offset);
    /* kinds of the inputs the program loads (the others are never read) */
    bool loaded[LX_FUSED_MAX_IN] = {false};
    const lx_fused_instr *code = lx_fused_code(h);
    for (int i = 0; i < h->n_instr; i++)
        if (code[i].op == LX_FOP_LOAD && code[i].a < LX_FUSED_MAX_IN) loaded[code[i].a] = true;
    for (int k = 0; k < h->n_in && k < LX_FUSED_MAX_IN; k++)
        tmp[k] = loaded[k] ? kinds[k] : (uint8_t)LXF_CONTIG;
    uint32_t gv = LXF_GEN_VERSION;
    memcpy(tmp + h->n_in, &gv, 4);
    /* header, instructions, kinds + version: copied up to cap */
    size_t at = 0;
#define PUT(src, len)                                                                       \
    do {                                                                                    \
        size_t l_ = (len);                                                                  \
        if (at < cap) memcpy(buf + at, (src), at + l_ <= cap ? l_ : cap - at);              \
        at += l_;                                                                           \
    } while (0)
    PUT(&nh, sizeof nh);
    PUT(code, params_size - sizeof nh);
    PUT(tmp, (size_t)h->n_in + 4);
#undef PUT
    return at;
}

/* ---- the source ---- */

/* The class value of a CONST of dtype t (imm converted as the FULL kernel does, then loaded
 * into its class: the interpreter's fill_const) as an exact expression. */
static void put_const(sbuf *b, lx_dtype t, double imm) {
    switch (t) {
#define X(E, T, S)                                                                          \
    case E: {                                                                               \
        LX_ICAT_(LX_CT_, LX_CLS_##S) v = LX_LOAD_##S(lx_cvt_##S##_D(imm));                  \
        uint64_t bits = 0;                                                                  \
        memcpy(&bits, &v, sizeof v);                                                        \
        switch (cls_of(E)) {                                                                \
        case LX_CLASS_F: sb_put(b, "lx_f32_from_bits(0x%08xu)", (unsigned)bits); break;     \
        case LX_CLASS_D: sb_put(b, "lxf_f64_from_bits(0x%016llxull)", (unsigned long long)bits); break; \
        case LX_CLASS_I: sb_put(b, "(int64_t)0x%016llxull", (unsigned long long)bits); break; \
        default: sb_put(b, "(uint64_t)0x%016llxull", (unsigned long long)bits); break;      \
        }                                                                                   \
        break;                                                                              \
    }
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: sb_put(b, "0"); break;
    }
}

/* Opens the narrowing of a class value to dtype t (nothing for dtypes stored as their class),
 * returning what closes it. */
static const char *put_narrow(sbuf *b, lx_dtype t) {
    if (lx_dtype_is_direct(t)) return "";
    sb_put(b, "LX_LOAD_%s(lx_cvt_%s_%s(", dtype_sfx[t], dtype_sfx[t], class_name[cls_of(t)]);
    return "))";
}

typedef struct {
    const lx_fused_header *h;
    const lx_fused_instr *code;
    int src[LX_FUSED_MAX_INSTR][3]; /* the instruction whose result each operand is */
    bool used[LX_FUSED_MAX_INSTR];  /* the result is read (or the instruction is a STORE) */
} prog;

/* The name of instruction i's result (a CONST is k<i>, hoisted; the rest v<i>). */
static void put_val(sbuf *b, const prog *p, int i) {
    sb_put(b, "%c%d", p->code[i].op == LX_FOP_CONST ? 'k' : 'v', i);
}

/* Resolves operands to the instructions that wrote them, and marks what is used (backwards
 * from the STOREs, so the whole chain of an unused result is dropped). */
static void analyse(prog *p) {
    const lx_fused_header *h = p->h;
    int writer[256];
    for (int r = 0; r < 256; r++) writer[r] = -1;
    for (int i = 0; i < h->n_instr; i++) {
        const lx_fused_instr *ins = &p->code[i];
        int nops = 0;
        switch (ins->op) {
        case LX_FOP_UNARY: case LX_FOP_CAST: case LX_FOP_STORE: nops = 1; break;
        case LX_FOP_BINARY: nops = 2; break;
        case LX_FOP_WHERE: nops = 3; break;
        default: break;
        }
        const uint8_t ops[3] = {ins->a, ins->b, ins->c};
        for (int k = 0; k < 3; k++) p->src[i][k] = k < nops ? writer[ops[k]] : -1;
        p->used[i] = ins->op == LX_FOP_STORE;
        if (ins->op != LX_FOP_STORE) writer[ins->dst] = i;
    }
    for (int i = h->n_instr - 1; i >= 0; i--)
        if (p->used[i])
            for (int k = 0; k < 3; k++)
                if (p->src[i][k] >= 0) p->used[p->src[i][k]] = true;
}

/* The expression of a used, non-CONST instruction i (of the per-element loop). */
static void put_instr(sbuf *b, const prog *p, int i, const uint8_t *kinds) {
    const lx_fused_instr *ins = &p->code[i];
    const lx_dtype t = (lx_dtype)ins->dtype;
    const int cls = cls_of(t);
    const char *ds = dtype_sfx[t];
    if (ins->op == LX_FOP_STORE) {
        sb_put(b, "        ((LX_ST_%s *)a.out[%d])[i] = lx_cvt_%s_%s(", ds, ins->b, ds,
               class_name[cls]);
        put_val(b, p, p->src[i][0]);
        sb_put(b, ");\n");
        return;
    }
    sb_put(b, "        const %s v%d = ", class_type[cls], i);
    switch (ins->op) {
    case LX_FOP_LOAD:
        if (kinds[ins->a] == LXF_SCALAR) sb_put(b, "LX_LOAD_%s(s%d);\n", ds, ins->a);
        else if (kinds[ins->a] == LXF_STRIDED)
            sb_put(b, "LX_LOAD_%s(((const LX_ST_%s *)a.in[%d])[o%d]);\n", ds, ds, ins->a, ins->a);
        else
            sb_put(b, "LX_LOAD_%s(((const LX_ST_%s *)a.in[%d])[i]);\n", ds, ds, ins->a);
        return;
    case LX_FOP_UNARY: {
        const char *ac = class_name[cls_of(ins->adtype)];
        if (lx_unary_op_is_pred(ins->sub)) {
            sb_put(b, "(uint64_t)lx_ew_unary_pred1_%s(%s, ", ac, unary_name[ins->sub]);
            put_val(b, p, p->src[i][0]);
            sb_put(b, ");\n");
            return;
        }
        const char *close = put_narrow(b, t);
        sb_put(b, "lx_ew_unary1_%s(%s, ", ac, unary_name[ins->sub]);
        put_val(b, p, p->src[i][0]);
        sb_put(b, ")%s;\n", close);
        return;
    }
    case LX_FOP_BINARY: {
        const char *ac = class_name[cls_of(ins->adtype)];
        const char *close = "";
        if (lx_binary_op_is_pred(ins->sub)) {
            sb_put(b, "(uint64_t)lx_ew_binary_pred1_%s(%s, ", ac, binary_name[ins->sub]);
        } else {
            close = put_narrow(b, t);
            sb_put(b, "lx_ew_binary1_%s(%s, ", ac, binary_name[ins->sub]);
        }
        put_val(b, p, p->src[i][0]);
        sb_put(b, ", ");
        put_val(b, p, p->src[i][1]);
        sb_put(b, ")%s;\n", close);
        return;
    }
    case LX_FOP_WHERE:
        put_val(b, p, p->src[i][0]);
        sb_put(b, " ? ");
        put_val(b, p, p->src[i][1]);
        sb_put(b, " : ");
        put_val(b, p, p->src[i][2]);
        sb_put(b, ";\n");
        return;
    case LX_FOP_CAST:
        sb_put(b, "LX_LOAD_%s(lx_cvt_%s_%s(", ds, ds, class_name[cls_of(ins->adtype)]);
        put_val(b, p, p->src[i][0]);
        sb_put(b, "));\n");
        return;
    default:
        sb_put(b, "0;\n");
        return;
    }
}

char *lxf_source(const lx_fused_header *h, const uint8_t *kinds, const char *name, size_t *len) {
    prog p;
    p.h = h;
    p.code = lx_fused_code(h);
    analyse(&p);
    /* what the loop needs: the inputs read, per kind; whether a float64 constant appears */
    bool in_used[LX_FUSED_MAX_IN] = {false};
    int in_dtype[LX_FUSED_MAX_IN];
    bool any_strided = false;
    for (int i = 0; i < h->n_instr; i++) {
        const lx_fused_instr *ins = &p.code[i];
        if (!p.used[i]) continue;
        if (ins->op == LX_FOP_LOAD) {
            in_used[ins->a] = true;
            in_dtype[ins->a] = ins->dtype;
            any_strided = any_strided || kinds[ins->a] == LXF_STRIDED;
        }
    }
    sbuf b = {0};
    sb_put(&b, "/* generated by lx (backend/cuda/fused_cuda.c, version %u): %d inputs, %d "
               "outputs, %d instructions; input kinds",
           LXF_GEN_VERSION, h->n_in, h->n_out, h->n_instr);
    for (int k = 0; k < h->n_in; k++)
        sb_put(&b, " %s", !in_used[k] ? "-" : kinds[k] == LXF_SCALAR ? "scalar"
                                              : kinds[k] == LXF_STRIDED ? "strided" : "contiguous");
    sb_put(&b, " */\n#include \"graph/elementwise_ops.h\"\n#include \"backend/cuda/fused_args.h\"\n\n");
    sb_put(&b, "extern \"C\" __global__ void __launch_bounds__(%d) %s(const lxf_args a) {\n",
           LXF_THREADS, name ? name : LXF_KERNEL_NAME);
    for (int i = 0; i < h->n_instr; i++) {
        const lx_fused_instr *ins = &p.code[i];
        if (ins->op != LX_FOP_CONST || !p.used[i]) continue;
        sb_put(&b, "    const %s k%d = ", class_type[cls_of(ins->dtype)], i);
        put_const(&b, (lx_dtype)ins->dtype, ins->imm);
        sb_put(&b, ";\n");
    }
    for (int k = 0; k < h->n_in; k++)
        if (in_used[k] && kinds[k] == LXF_SCALAR)
            sb_put(&b, "    const LX_ST_%s s%d = ((const LX_ST_%s *)a.in[%d])[0];\n",
                   dtype_sfx[in_dtype[k]], k, dtype_sfx[in_dtype[k]], k);
    sb_put(&b, "    const int64_t step = (int64_t)gridDim.x * blockDim.x;\n"
               "    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; "
               "i += step) {\n");
    if (any_strided) {
        /* offsets of the strided inputs: i's multi-index over the collapsed shape, the dims
         * walked with a constant trip count so every argument is read at a fixed offset */
        sb_put(&b, "        int64_t r = i");
        for (int k = 0; k < h->n_in; k++)
            if (in_used[k] && kinds[k] == LXF_STRIDED) sb_put(&b, ", o%d = 0", k);
        sb_put(&b, ";\n#pragma unroll\n"
                   "        for (int d = LX_MAX_NDIM - 1; d > 0; d--) {\n"
                   "            if (d >= a.nd) continue;\n"
                   "            const int64_t c = r %% a.shape[d];\n"
                   "            r /= a.shape[d];\n");
        for (int k = 0; k < h->n_in; k++)
            if (in_used[k] && kinds[k] == LXF_STRIDED)
                sb_put(&b, "            o%d += c * a.st[%d][d];\n", k, k);
        sb_put(&b, "        }\n");
        for (int k = 0; k < h->n_in; k++)
            if (in_used[k] && kinds[k] == LXF_STRIDED)
                sb_put(&b, "        o%d += r * a.st[%d][0];\n", k, k);
    }
    for (int i = 0; i < h->n_instr; i++)
        if (p.used[i] && p.code[i].op != LX_FOP_CONST) put_instr(&b, &p, i, kinds);
    sb_put(&b, "    }\n}\n");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.len;
    return b.p;
}
