/*
 * test_cuda_fused_gen.c -- the CUDA module's FUSED kernels without a GPU: the generator
 * (src/backend/cuda/fused_cuda.c) and the NVRTC layer with its disk cache (fused_nvrtc.c),
 * built into this program (tests/CMakeLists.txt; only where the CUDA module is built). NVRTC
 * is what the module loads, through the module's own loader (dlopen); without it the test is
 * skipped (77) with the reason.
 *
 *   programs  fused programs built here, instruction by instruction: every unary and binary op
 *             of graph/elementwise_ops.h in every dtype (as the CPU interpreter accepts them),
 *             casts between every pair of dtypes, CONSTs of every dtype (NaN, infinities, -0,
 *             out-of-range values), WHERE in every dtype, float16/bfloat16 chains, 8 outputs of
 *             different dtypes, LX_FUSED_MAX_IN inputs, LX_FUSED_MAX_INSTR instructions with
 *             registers reused, dead instructions; each input contiguous, scalar or strided in
 *             turn (lxf_check must accept every one).
 *   compiled  programs that lx_compile itself produced (FUSED nodes found in the graphs of
 *             compiled closures: SwiGLU, GELU, softcapping, where/clip/compare with three
 *             outputs, casts to every dtype, integer and bool ops, broadcasts, random_normal's
 *             conversion chain, 23 inputs, a long chain), each with two input layouts.
 *   nvrtc     the source of every program above compiled by NVRTC for sm_80 and sm_90 (many
 *             kernels per NVRTC program, so the run stays short; a failing batch is compiled
 *             again kernel by kernel to name the program): no error, an empty log (no warning
 *             at all), a cubin (ELF) holding each kernel; a compute capability NVRTC does not
 *             know (9.1) gets compute_90 PTX; a malformed source fails with LX_E_DEVICE and
 *             NVRTC's message.
 *   key       the kernel key ignores the shape and output offsets and the kinds of inputs that
 *             are never read, and tells programs, kinds and dtypes apart.
 *   cache     lxf_image_get in a fresh LX_JIT_CACHE: the first lookup compiles and stores, the
 *             second reads the same bytes back, a second process compiles nothing; a corrupted,
 *             truncated, group-writable, foreign-owned (when run as root), mislabelled or
 *             symlinked file is refused (or not followed) and replaced by a good one.
 *
 *   host      (mode host, its own CTest entry) every program above, and every FUSED node of the
 *             compiled closures, with real inputs laid out as its kinds say (contiguous, 0-d,
 *             transposed, broadcast row, stepped slice): its kernel, built for the host by the
 *             C++ compiler (the CUDA qualifiers defined away), run with lxf_plan's arguments,
 *             and also with every input read through the strided path, gives the same bits as
 *             the CPU's interpreter (generic variant) on the same node (test_host says more).
 *
 * Modes (argv[1]): all (default: programs, compiled, cache), programs, compiled, cache, host;
 * dump (print the generated source of two programs); "child" is the cache test's second
 * process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>

#include <dlfcn.h>

#include "backend/cpu/jit.h"
#include "backend/cpu/select.h"
#include "backend/cuda/fused_cuda.h"
#include "core/dtype.h"
#include "core/handle.h"
#include "core/node.h"
#include "graph/elementwise_ops.h"
#include "graph/prims.h"
#include "test_graph.h"
#include "test_util.h"

/* ---- the core API the layers report through ---- */

static char g_msg[1024];
static lx_status g_st;

static lx_status t_set_error(lx_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    g_st = st;
    return st;
}
static const char *t_getenv(const char *name) {
    return name && strncmp(name, "LX_", 3) == 0 ? getenv(name) : NULL;
}
static const lx_core_api t_core = {
    .version = LX_DEVICE_API_VERSION,
    .size = sizeof(lx_core_api),
    .set_error = t_set_error,
    .getenv = t_getenv,
};

/* ---- building programs ---- */

typedef struct {
    _Alignas(8) unsigned char bytes[sizeof(lx_fused_header) +
                                    LX_FUSED_MAX_INSTR * sizeof(lx_fused_instr)];
    uint8_t regt[256]; /* each register's dtype */
    bool reuse;        /* results overwrite their first operand's register where they can */
} prog;

static lx_fused_header *H(prog *p) { return (lx_fused_header *)(void *)p->bytes; }
static lx_fused_instr *C(prog *p) { return (lx_fused_instr *)(void *)(H(p) + 1); }
static size_t P_size(prog *p) { return lx_fused_params_size(H(p)->n_instr); }

static void p_init(prog *p, int n_in) {
    memset(p, 0, sizeof *p);
    lx_fused_header *h = H(p);
    h->version = LX_FUSED_VERSION;
    h->n_in = (uint16_t)n_in;
    h->ndim = 2;
    h->shape[0] = 3;
    h->shape[1] = 5;
}

static int p_emit(prog *p, int op, int dtype, int adtype, int a, int b, int c, int sub,
                  double imm) {
    lx_fused_header *h = H(p);
    if (h->n_instr >= LX_FUSED_MAX_INSTR) {
        fprintf(stderr, "program too long\n");
        abort();
    }
    lx_fused_instr *ins = &C(p)[h->n_instr++];
    memset(ins, 0, sizeof *ins);
    ins->op = (uint8_t)op;
    ins->dtype = (uint8_t)dtype;
    ins->adtype = (uint8_t)adtype;
    ins->a = (uint8_t)a;
    ins->b = (uint8_t)b;
    ins->c = (uint8_t)c;
    ins->sub = sub;
    ins->imm = imm;
    if (op == LX_FOP_STORE) return -1;
    int dst = (p->reuse && (op == LX_FOP_UNARY || op == LX_FOP_BINARY || op == LX_FOP_CAST))
                  ? a
                  : h->n_regs++;
    ins->dst = (uint8_t)dst;
    p->regt[dst] = (uint8_t)dtype;
    return dst;
}
static int p_load(prog *p, int k, int t) { return p_emit(p, LX_FOP_LOAD, t, 0, k, 0, 0, 0, 0); }
static int p_const(prog *p, int t, double v) {
    return p_emit(p, LX_FOP_CONST, t, 0, 0, 0, 0, 0, v);
}
static int p_unary(prog *p, int op, int r) {
    int t = p->regt[r];
    return p_emit(p, LX_FOP_UNARY, lx_unary_op_is_pred(op) ? LX_BOOL : t, t, r, 0, 0, op, 0);
}
static int p_binary(prog *p, int op, int r, int s) {
    int t = p->regt[r];
    return p_emit(p, LX_FOP_BINARY, lx_binary_op_is_pred(op) ? LX_BOOL : t, t, r, s, 0, op, 0);
}
static int p_where(prog *p, int c, int r, int s) {
    return p_emit(p, LX_FOP_WHERE, p->regt[r], 0, c, r, s, 0, 0);
}
static int p_cast(prog *p, int r, int to) {
    return p_emit(p, LX_FOP_CAST, to, p->regt[r], r, 0, 0, 0, 0);
}
/* Stores register r as the next output (offsets as compile lays them out). */
static void p_store(prog *p, int r) {
    lx_fused_header *h = H(p);
    int j = h->n_out++;
    h->out_dtype[j] = p->regt[r];
    p_emit(p, LX_FOP_STORE, p->regt[r], 0, r, j, 0, 0, 0);
    int64_t size = (int64_t)h->shape[0] * h->shape[1], off = 0;
    for (int i = 0; i < h->n_out; i++) {
        off = lx_fused_align(off);
        h->out_offset[i] = h->n_out > 1 ? off : 0;
        off += size * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[i]);
    }
}

/* The dtypes the program loads input k as (for lxf_check), from its LOADs. */
static void p_in_dtypes(prog *p, uint8_t *dts) {
    memset(dts, LX_FLOAT32, LX_FUSED_MAX_IN);
    for (int i = 0; i < H(p)->n_instr; i++)
        if (C(p)[i].op == LX_FOP_LOAD) dts[C(p)[i].a] = C(p)[i].dtype;
}

/* ---- kernels to compile: batches of generated sources ---- */

#define BATCH_MAX 100
typedef struct {
    char *src[BATCH_MAX];
    size_t len[BATCH_MAX];
    char what[BATCH_MAX][256];
    int n;
} batch;

static batch g_batch;
static int g_kernels, g_programs, g_nvrtc_runs;
static const int g_archs[] = {80, 90};

/* Compiles one source for arch; the failure message names what it is. */
static bool compile_one(const char *src, size_t len, int arch, const char *what, int n_names,
                        int first) {
    lxf_image img;
    char *log = NULL;
    g_st = LX_OK;
    lx_status st = lxf_nvrtc_compile(src, len, arch, &img, &log);
    g_nvrtc_runs++;
    bool ok = st == LX_OK && log && log[0] == '\0' && img.cubin && img.size > 4 &&
              memcmp(img.data, "\177ELF", 4) == 0;
    CHECK_MSG(ok, "sm_%d: %s: %s%s\n--- NVRTC log ---\n%s", arch, what,
              st == LX_OK ? "" : "failed: ", st == LX_OK ? (img.cubin ? "log not empty" : "no cubin") : g_msg,
              log ? log : "(none)");
    for (int i = 0; ok && i < n_names; i++) {
        char name[64];
        snprintf(name, sizeof name, "lxk_%d", first + i);
        bool found = memmem(img.data, img.size, name, strlen(name) + 1) != NULL;
        CHECK_MSG(found, "sm_%d: %s: the cubin has no kernel %s", arch, what, name);
        ok = ok && found;
    }
    lxf_image_free(&img);
    free(log);
    return ok;
}

static int g_first_name; /* the number of the batch's first kernel */

static void batch_flush(void) {
    batch *b = &g_batch;
    if (b->n == 0) return;
    size_t total = 1;
    for (int i = 0; i < b->n; i++) total += b->len[i] + 1;
    char *all = malloc(total), *q = all;
    for (int i = 0; i < b->n; i++) {
        memcpy(q, b->src[i], b->len[i]);
        q += b->len[i];
        *q++ = '\n';
    }
    *q = '\0';
    double t0 = t_now_s();
    for (size_t a = 0; a < sizeof g_archs / sizeof *g_archs; a++) {
        char what[64];
        snprintf(what, sizeof what, "a batch of %d kernels", b->n);
        if (!compile_one(all, (size_t)(q - all), g_archs[a], what, b->n, g_first_name)) {
            /* which one: each alone */
            for (int i = 0; i < b->n; i++)
                compile_one(b->src[i], b->len[i], g_archs[a], b->what[i], 1, g_first_name + i);
        }
    }
    free(all);
    printf("  %2d kernels (%s ...): %.1f s\n", b->n, b->what[0], t_now_s() - t0);
    for (int i = 0; i < b->n; i++) free(b->src[i]);
    g_first_name += b->n;
    b->n = 0;
}

/* Checks the program and queues its kernel for kinds. */
static void add_kernel(const lx_fused_header *h, size_t size, const uint8_t *in_dtypes,
                       const uint8_t *kinds, const char *what) {
    const char *why = lxf_check(h, size, in_dtypes, h->n_in);
    CHECK_MSG(why == NULL, "%s: lxf_check refuses it: %s", what, why ? why : "");
    if (why) return;
    if (g_batch.n == BATCH_MAX) batch_flush();
    batch *b = &g_batch;
    char name[64];
    snprintf(name, sizeof name, "lxk_%d", g_first_name + b->n);
    size_t len = 0;
    char *src = lxf_source(h, kinds, name, &len);
    CHECK_MSG(src && len == strlen(src), "%s: no source", what);
    if (!src) return;
    b->src[b->n] = src;
    b->len[b->n] = len;
    snprintf(b->what[b->n], sizeof b->what[b->n], "%s", what);
    b->n++;
    g_kernels++;
}

/* Input kinds by pattern: 0 all contiguous, 1 all strided, 2 each kind in turn (input k:
 * k % 3), 3 a scalar first, then strided and contiguous in turn. */
static void pattern_kinds(int pattern, uint8_t *kinds) {
    for (int k = 0; k < LX_FUSED_MAX_IN; k++)
        kinds[k] = pattern == 0 ? LXF_CONTIG
                 : pattern == 1 ? LXF_STRIDED
                 : pattern == 2 ? (uint8_t)(k % 3)
                                : (uint8_t)(k == 0 ? LXF_SCALAR : (k % 2 ? LXF_STRIDED : LXF_CONTIG));
}

static bool g_host; /* programs go to the host run (test_host), not to NVRTC */
static void host_add_program(prog *p, const uint8_t *kinds, const char *what);

/* Queues the program with its inputs' kinds (pattern_kinds): for NVRTC, or for the host run,
 * whose inputs are laid out as the kinds say. */
static void add_program(prog *p, int pattern, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_program(prog *p, int pattern, const char *fmt, ...) {
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    uint8_t kinds[LX_FUSED_MAX_IN], dts[LX_FUSED_MAX_IN];
    pattern_kinds(pattern, kinds);
    g_programs++;
    if (g_host) {
        host_add_program(p, kinds, what);
        return;
    }
    p_in_dtypes(p, dts);
    add_kernel(H(p), P_size(p), dts, kinds, what);
}

/* ---- programs built here ---- */

static const char *dname(int t) { return lx_dtype_name((lx_dtype)t); }
static const char *const unary_names[] = {
#define X(n) #n,
    LX_UNARY_OPS(X)
#undef X
};
static const char *const binary_names[] = {
#define X(n) #n,
    LX_BINARY_OPS(X)
#undef X
};

/* Every program built here, through add_program. */
static void build_programs(void) {
    prog p;
    int pat = 0;
    /* every unary op in every dtype */
    for (int op = 0; op < LX_UNARY_COUNT; op++)
        for (int t = 0; t < LX_DTYPE_COUNT; t++) {
            p_init(&p, 1);
            p_store(&p, p_unary(&p, op, p_load(&p, 0, t)));
            add_program(&p, pat++ % 3, "unary %s %s", unary_names[op], dname(t));
        }
    /* every binary op in every dtype; odd ones with a constant operand, on either side */
    for (int op = 0; op < LX_BINARY_COUNT; op++)
        for (int t = 0; t < LX_DTYPE_COUNT; t++) {
            p_init(&p, 2);
            int a = p_load(&p, 0, t);
            int b = (t % 2) ? p_const(&p, t, t % 4 == 1 ? 3.0 : -2.5) : p_load(&p, 1, t);
            p_store(&p, (t % 4 == 3) ? p_binary(&p, op, b, a) : p_binary(&p, op, a, b));
            add_program(&p, pat++ % 4, "binary %s %s", binary_names[op], dname(t));
        }
    /* casts between every pair */
    for (int from = 0; from < LX_DTYPE_COUNT; from++)
        for (int to = 0; to < LX_DTYPE_COUNT; to++) {
            p_init(&p, 1);
            p_store(&p, p_cast(&p, p_load(&p, 0, from), to));
            add_program(&p, pat++ % 3, "cast %s -> %s", dname(from), dname(to));
        }
    /* CONSTs of every dtype, with the values whose conversion matters */
    const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 1e300, -1e300, 65504.0, 65520.0,
                               3.0e38, 1.0 / 3.0, 4294967296.0, -9.3e18, 1.8446744073709552e19};
    for (int t = 0; t < LX_DTYPE_COUNT; t++) {
        p_init(&p, 1);
        int x = p_load(&p, 0, t);
        for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
            x = p_binary(&p, i % 2 ? LX_BINARY_MAXIMUM : LX_BINARY_ADD, x,
                         p_const(&p, t, specials[i]));
        p_store(&p, x);
        p_store(&p, p_const(&p, t, specials[t % 13])); /* an output that is a constant */
        add_program(&p, pat++ % 3, "constants %s", dname(t));
    }
    /* WHERE in every dtype, the condition computed or loaded */
    for (int t = 0; t < LX_DTYPE_COUNT; t++) {
        p_init(&p, 3);
        int c = t % 2 ? p_load(&p, 0, LX_BOOL)
                      : p_binary(&p, LX_BINARY_LESS, p_load(&p, 1, t), p_load(&p, 2, t));
        p_store(&p, p_where(&p, c, p_load(&p, 1, t), p_load(&p, 2, t)));
        add_program(&p, pat++ % 4, "where %s", dname(t));
    }
    /* float16 / bfloat16 chains: every instruction rounds */
    const int chain[] = {LX_UNARY_EXP, LX_UNARY_LOG1P, LX_UNARY_SQRT, LX_UNARY_TANH,
                         LX_UNARY_GELU, LX_UNARY_SIN, LX_UNARY_ERF, LX_UNARY_SIGMOID,
                         LX_UNARY_SQUARE, LX_UNARY_RSQRT, LX_UNARY_EXPM1, LX_UNARY_SILU};
    const int halves[] = {LX_FLOAT16, LX_BFLOAT16};
    for (int h = 0; h < 2; h++)
        for (int reuse = 0; reuse < 2; reuse++) {
            p_init(&p, 2);
            p.reuse = reuse;
            int t = halves[h];
            int x = p_load(&p, 0, t), y = p_load(&p, 1, t);
            for (int r = 0; r < 2; r++)
                for (size_t i = 0; i < sizeof chain / sizeof *chain; i++) {
                    x = p_unary(&p, chain[i], x);
                    x = p_binary(&p, (int)(i % 4), x, y); /* add, sub, mul, div */
                }
            p_store(&p, x);
            p_store(&p, p_cast(&p, x, LX_FLOAT32));
            add_program(&p, pat++ % 4, "%s chain%s", dname(t), reuse ? " (registers reused)" : "");
        }
    /* eight outputs of different dtypes, predicates among them */
    for (int v = 0; v < 2; v++) {
        p_init(&p, 2);
        int x = p_load(&p, 0, LX_FLOAT32), y = p_load(&p, 1, v ? LX_BFLOAT16 : LX_FLOAT16);
        int xy = p_binary(&p, LX_BINARY_MUL, p_cast(&p, y, LX_FLOAT32), x);
        p_store(&p, xy);
        p_store(&p, p_cast(&p, xy, LX_FLOAT16));
        p_store(&p, p_cast(&p, xy, LX_BFLOAT16));
        p_store(&p, p_cast(&p, xy, LX_INT8));
        p_store(&p, p_cast(&p, xy, LX_UINT64));
        p_store(&p, p_binary(&p, LX_BINARY_GREATER, x, xy));
        p_store(&p, p_unary(&p, LX_UNARY_ISNAN, xy));
        p_store(&p, p_cast(&p, xy, LX_FLOAT64));
        add_program(&p, v ? 2 : 3, "eight outputs (%s)", v ? "bfloat16" : "float16");
    }
    /* LX_FUSED_MAX_IN inputs of mixed dtypes, summed in float32 */
    for (int v = 0; v < 4; v++) {
        p_init(&p, LX_FUSED_MAX_IN);
        int acc = p_cast(&p, p_load(&p, 0, (v + 0) % LX_DTYPE_COUNT), LX_FLOAT32);
        for (int k = 1; k < LX_FUSED_MAX_IN; k++)
            acc = p_binary(&p, LX_BINARY_ADD, acc,
                           p_cast(&p, p_load(&p, k, (v + k) % LX_DTYPE_COUNT), LX_FLOAT32));
        p_store(&p, acc);
        add_program(&p, v, "%d inputs (kinds pattern %d)", LX_FUSED_MAX_IN, v);
    }
    /* LX_FUSED_MAX_INSTR instructions, registers reused; and dead code */
    for (int reuse = 0; reuse < 2; reuse++) {
        p_init(&p, 2);
        p.reuse = reuse;
        int x = p_load(&p, 0, LX_FLOAT32), y = p_load(&p, 1, LX_FLOAT32);
        int k = p_const(&p, LX_FLOAT32, 0.75);
        while (H(&p)->n_instr < LX_FUSED_MAX_INSTR - 1) { /* mostly cheap ops */
            int i = H(&p)->n_instr;
            x = i % 3 == 0 ? p_binary(&p, LX_BINARY_MUL, x, k)
              : i % 3 == 1 ? p_binary(&p, LX_BINARY_ADD, x, y)
              : i % 15 == 2 ? p_unary(&p, LX_UNARY_TANH, x)
                            : p_binary(&p, LX_BINARY_MAXIMUM, x, y);
        }
        p_store(&p, x);
        CHECK(H(&p)->n_instr == LX_FUSED_MAX_INSTR);
        add_program(&p, reuse ? 1 : 2, "%d instructions%s", LX_FUSED_MAX_INSTR,
                    reuse ? " (registers reused)" : "");
    }
    p_init(&p, 3);
    int x = p_load(&p, 0, LX_FLOAT32);
    p_unary(&p, LX_UNARY_EXP, p_load(&p, 1, LX_INT32)); /* dead: never stored */
    p_const(&p, LX_FLOAT64, 2.0);                       /* dead constant */
    p_store(&p, p_unary(&p, LX_UNARY_NEG, x));
    add_program(&p, 1, "dead instructions");
    /* no inputs at all: a constant output */
    p_init(&p, 0);
    p_store(&p, p_unary(&p, LX_UNARY_EXP, p_const(&p, LX_FLOAT64, 1.0)));
    add_program(&p, 0, "no inputs");
}

static void test_programs(void) {
    build_programs();
    batch_flush();
    /* malformed programs are refused */
    prog p;
    p_init(&p, 1);
    int r = p_load(&p, 0, LX_FLOAT32);
    p_store(&p, r);
    uint8_t dts[LX_FUSED_MAX_IN] = {LX_FLOAT16};
    CHECK(lxf_check(H(&p), P_size(&p), dts, 1) != NULL);      /* input dtype */
    CHECK(lxf_check(H(&p), P_size(&p) - 1, NULL, 0) != NULL); /* size */
    C(&p)[1].b = 3;
    CHECK(lxf_check(H(&p), P_size(&p), NULL, 0) != NULL);     /* output index */
    C(&p)[1].b = 0;
    C(&p)[0].op = 99;
    CHECK(lxf_check(H(&p), P_size(&p), NULL, 0) != NULL);     /* opcode */
}

/* ---- the key ---- */

static void test_key(void) {
    prog p, q;
    p_init(&p, 3);
    int a = p_load(&p, 0, LX_FLOAT32), b = p_load(&p, 1, LX_FLOAT32);
    p_store(&p, p_binary(&p, LX_BINARY_ADD, a, b));
    p_store(&p, p_unary(&p, LX_UNARY_EXP, a));
    memcpy(&q, &p, sizeof p);
    /* another shape (and so other output offsets): the same key and source */
    H(&q)->ndim = 3;
    H(&q)->shape[0] = 100;
    H(&q)->shape[2] = 7;
    H(&q)->out_offset[1] = 4096;
    const uint8_t k1[3] = {LXF_CONTIG, LXF_STRIDED, LXF_SCALAR};
    const uint8_t k2[3] = {LXF_CONTIG, LXF_STRIDED, LXF_CONTIG}; /* input 2 is never read */
    const uint8_t k3[3] = {LXF_SCALAR, LXF_STRIDED, LXF_SCALAR};
    unsigned char kp[8192], kq[8192];
    size_t np = lxf_key(kp, sizeof kp, H(&p), P_size(&p), k1);
    size_t nq = lxf_key(kq, sizeof kq, H(&q), P_size(&q), k2);
    CHECK(np == lxf_key(NULL, 0, H(&p), P_size(&p), k1) && np <= sizeof kp);
    CHECK(np == nq && memcmp(kp, kq, np) == 0);
    char *sp = lxf_source(H(&p), k1, NULL, NULL), *sq = lxf_source(H(&q), k2, NULL, NULL);
    CHECK(sp && sq && strcmp(sp, sq) == 0);
    CHECK(sp && strstr(sp, LXF_KERNEL_NAME "(const lxf_args a)"));
    free(sp);
    free(sq);
    nq = lxf_key(kq, sizeof kq, H(&p), P_size(&p), k3); /* a read input's kind differs */
    CHECK(np != nq || memcmp(kp, kq, np) != 0);
    C(&q)[0].dtype = C(&q)[2].adtype = C(&q)[2].dtype = LX_FLOAT64; /* another dtype */
    nq = lxf_key(kq, sizeof kq, H(&q), P_size(&q), k1);
    CHECK(np != nq || memcmp(kp, kq, np) != 0);
    /* a short buffer gets the prefix and the full size */
    unsigned char small[16];
    CHECK(lxf_key(small, sizeof small, H(&p), P_size(&p), k1) == np &&
          memcmp(small, kp, sizeof small) == 0);
}

/* ---- programs from lx_compile ---- */

static lx_array cl_swiglu(const lx_array *in) { return lx_mul(lx_silu(in[0]), in[1]); }
static lx_array cl_gelu(const lx_array *in) {
    return lx_add(lx_mul_scalar(lx_gelu(in[0]), 0.5), in[0]);
}
static lx_array cl_softcap(const lx_array *in) {
    return lx_mul_scalar(lx_tanh(lx_div_scalar(in[0], 30.0)), 30.0);
}
static lx_array cl_approx(const lx_array *in) {
    return lx_sub(lx_gelu_approx(in[0]), lx_erf(lx_mul(in[0], in[1])));
}
static lx_array cl_int(const lx_array *in) {
    lx_array a = lx_add_scalar(lx_mul_scalar(in[0], 3.0), 7.0);
    return lx_maximum(lx_remainder(a, lx_add_scalar(lx_abs(in[1]), 1.0)),
                      lx_floor_divide(in[0], lx_add_scalar(lx_square(in[1]), 1.0)));
}
static lx_array cl_logic(const lx_array *in) {
    return lx_logical_or(lx_logical_and(lx_greater(in[0], in[1]), lx_isfinite(in[0])),
                         lx_logical_not(lx_less_equal(in[1], lx_scalar(0.5, LX_FLOAT32))));
}
static lx_array cl_bcast(const lx_array *in) { /* [4, 1, 8] op [8] op scalar */
    return lx_div(lx_sub(in[0], in[1]), lx_add_scalar(lx_exp(in[1]), 1.0));
}

typedef lx_array (*one_fn)(const lx_array *in);
typedef struct {
    const char *name;
    int n_in, n_out;
    one_fn one;                          /* one output: this */
    void (*many)(const lx_array *in, lx_array *out); /* several */
} closure_case;

static void cl_select3(const lx_array *in, lx_array *out) {
    out[0] = lx_where(lx_less(in[0], in[1]), lx_exp(in[0]), lx_neg(in[1]));
    out[1] = lx_clip(lx_mul(in[0], in[1]), in[1], LX_NULL_ARRAY);
    out[2] = lx_where(lx_isnan(in[0]), in[1], lx_silu(in[0]));
}
static void cl_casts_a(const lx_array *in, lx_array *out) {
    lx_array x = lx_add(in[0], in[0]);
    for (int j = 0; j < 7; j++) out[j] = lx_astype(x, (lx_dtype)j);
}
static void cl_casts_b(const lx_array *in, lx_array *out) {
    lx_array x = lx_mul_scalar(in[0], -1.5);
    for (int j = 0; j < 6; j++) out[j] = lx_astype(x, (lx_dtype)(7 + j));
}
static void cl_random(const lx_array *in, lx_array *out) {
    (void)in;
    out[0] = lx_random_normal((const int[]){4, 33}, 2, LX_FLOAT32, lx_random_key(7));
    out[1] = lx_random_normal((const int[]){5, 7}, 2, LX_BFLOAT16, lx_random_key(8));
}
static void cl_many(const lx_array *in, lx_array *out) {
    lx_array acc = in[0];
    for (int k = 1; k < LX_FUSED_MAX_IN; k++)
        acc = k % 2 ? lx_add(acc, lx_mul(in[k], in[k - 1])) : lx_sub(acc, in[k]);
    out[0] = acc;
}
static void cl_long(const lx_array *in, lx_array *out) {
    lx_array x = in[0];
    for (int i = 0; i < 24; i++)
        x = i % 2 ? lx_tanh(lx_add(x, in[1])) : lx_mul_scalar(lx_sin(x), 1.25);
    out[0] = x;
}

static const closure_case *g_case;
static lx_status closure_fn(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    (void)ctx;
    (void)n_in;
    if (g_case->one) out[0] = g_case->one(in);
    else g_case->many(in, out);
    for (int j = 0; j < n_out; j++)
        if (lx_is_null(out[j])) return lx_error() ? lx_error() : LX_E_INTERNAL;
    return LX_OK;
}

/* Input k of a case: [4, 1, 8] (cl_bcast: then [8]), else [4, 8]; of dtype t; some inputs
 * transposed views (so the graph has strided reads), values small and positive enough for
 * every op. */
static lx_array make_input(const closure_case *c, int k, lx_dtype t) {
    float v[64];
    for (int i = 0; i < 64; i++) v[i] = 0.25f + 0.05f * (float)((i * 7 + k * 3) % 19);
    lx_array a;
    if (c->one == cl_bcast) a = k == 0 ? lx_array_f32(v, (const int[]){4, 1, 8}, 3)
                                       : lx_array_f32(v, (const int[]){8}, 1);
    else if (k % 3 == 2) a = lx_transpose(lx_array_f32(v, (const int[]){8, 4}, 2), NULL, 0);
    else a = lx_array_f32(v, (const int[]){4, 8}, 2);
    return t == LX_FLOAT32 ? a : lx_astype(a, t);
}

static void host_add_node(lx_node *f, const char *what);

/* The FUSED nodes of the graphs of outs, queued with two input layouts (all contiguous; each
 * kind in turn). */
enum { HOST_CAP = 4096 };
typedef struct {
    const char *what;
    int found, n_host;
    lx_node *host[HOST_CAP];
} fused_walk;

static void visit_fused(lx_node *nd, void *user) {
    fused_walk *fw = user;
    if (nd->prim != LX_PRIM_FUSED) return;
    if (g_host) {
        if (fw->n_host < HOST_CAP) {
            lx_node_retain(nd);
            fw->host[fw->n_host++] = nd;
        }
        return;
    }
    uint8_t dts[LX_FUSED_MAX_IN];
    for (int k = 0; k < nd->n_inputs && k < LX_FUSED_MAX_IN; k++) dts[k] = nd->inputs[k]->dtype;
    const lx_fused_header *h = nd->params;
    for (int pattern = 0; pattern < 3; pattern += 2) { /* contiguous; mixed */
        uint8_t kinds[LX_FUSED_MAX_IN];
        for (int k = 0; k < LX_FUSED_MAX_IN; k++)
            kinds[k] = pattern == 0 ? LXF_CONTIG : pattern == 1 ? LXF_STRIDED : (uint8_t)(k % 3);
        char w[256];
        snprintf(w, sizeof w, "compiled %s, FUSED node %d (%d inputs, %d outputs, %d "
                 "instructions), kinds pattern %d", fw->what, fw->found, h->n_in, h->n_out,
                 h->n_instr, pattern);
        CHECK_MSG(nd->n_inputs == h->n_in, "%s: inputs", w);
        add_kernel(h, nd->params_size, dts, kinds, w);
    }
    fw->found++;
    g_programs++;
}

static int add_fused_nodes(const lx_array *outs, int n, const char *what) {
    static fused_walk fw;
    fw.what = what;
    fw.found = fw.n_host = 0;
    t_walk_lazy(outs, n, visit_fused, &fw);
    int found = fw.found, n_host = fw.n_host;
    lx_node **host = fw.host;
    /* the host run evaluates (and so sweeps): only once the walk is done, outputs kept */
    if (n_host) lx_keep_n(outs, n);
    for (int i = n_host - 1; i >= 0; i--) { /* inputs (found later) first */
        char w[256];
        snprintf(w, sizeof w, "compiled %s, FUSED node %d", what, found++);
        CHECK_MSG(lx_node_state_of(host[i]) == LX_NODE_LAZY, "%s: evaluated already", w);
        if (lx_node_state_of(host[i]) == LX_NODE_LAZY) host_add_node(host[i], w);
        lx_node_release(host[i]);
        g_programs++;
    }
    return found;
}

static void test_compiled(void) {
    static const closure_case cases[] = {
        {"swiglu", 2, 1, cl_swiglu, NULL},     {"gelu", 1, 1, cl_gelu, NULL},
        {"softcap", 1, 1, cl_softcap, NULL},   {"gelu_approx - erf", 2, 1, cl_approx, NULL},
        {"int ops", 2, 1, cl_int, NULL},       {"logic", 2, 1, cl_logic, NULL},
        {"broadcast", 2, 1, cl_bcast, NULL},   {"where/clip/compare", 2, 3, NULL, cl_select3},
        {"casts 0-6", 1, 7, NULL, cl_casts_a}, {"casts 7-12", 1, 6, NULL, cl_casts_b},
        {"random_normal", 0, 2, NULL, cl_random},
        {"23 inputs", LX_FUSED_MAX_IN, 1, NULL, cl_many},
        {"long chain", 2, 1, NULL, cl_long},
    };
    const lx_dtype dts[] = {LX_FLOAT32, LX_FLOAT16, LX_BFLOAT16, LX_INT32, LX_UINT8};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const closure_case *c = &cases[ci];
        g_case = c;
        for (size_t di = 0; di < sizeof dts / sizeof *dts; di++) {
            lx_dtype t = dts[di];
            bool ints = c->one == cl_int;
            if (ints != (t == LX_INT32 || t == LX_UINT8)) continue;
            if ((c->one == cl_logic || c->many == cl_casts_a || c->many == cl_casts_b ||
                 c->many == cl_random || c->many == cl_many) && t != LX_FLOAT32)
                continue; /* dtype-independent cases: once */
            lx_closure *cl = lx_compile(closure_fn, NULL, c->n_out, 0);
            CHECK(cl != NULL);
            if (!cl) continue;
            lx_array in[LX_FUSED_MAX_IN], out[8];
            for (int k = 0; k < c->n_in; k++) in[k] = make_input(c, k, t);
            CHECK_OK(lx_call(cl, in, c->n_in, out, c->n_out));
            char what[96];
            snprintf(what, sizeof what, "%s (%s)", c->name, dname(t));
            int found = add_fused_nodes(out, c->n_out, what);
            CHECK_MSG(found > 0, "%s: compile made no FUSED node", what);
            /* and the closure computes (on the CPU) */
            CHECK_OK(lx_eval_n(out, c->n_out));
            lx_closure_free(cl);
            lx_sweep();
        }
    }
    if (!g_host) batch_flush();
}


/* ---- the generated kernels run on the host, against the CPU's interpreter ----
 *
 * The generated source is C++ whose only CUDA parts are the kernel's qualifiers and the grid
 * variables, so with those defined away (a grid of one thread: the grid-stride loop visits
 * every element) a host C++ compiler builds it against the same headers. Run on the inputs of
 * a FUSED node that the CPU then computes with its interpreter (fused.c, generic variant, so
 * both sides use the same multiply-add rounding and the same libm), every output must have the
 * same bits: this checks, without a GPU, that a kernel computes what the program means
 * (narrowing, casts, constants, WHERE, predicates, several outputs) and that lxf_plan's
 * addresses, strides and kinds read the inputs right. NaNs compare equal whatever their
 * payload (GPUs make the canonical NaN, the CPU propagates payloads). What this cannot check
 * is the device's own math library (CUDA's expf, powf, ... behind elementwise_ops.h's libm
 * calls) and the launch: those need a GPU. */

typedef struct {
    char what[256];
    unsigned char *params;
    size_t params_size;
    int n_var;                      /* 1, or 2 with every input read as strided */
    lxf_args args[2];
    uint8_t kinds[2][LX_FUSED_MAX_IN];
    unsigned char *got[2], *want;   /* outputs at the program's out_offset */
    size_t nbytes;
    lx_array keep[LX_FUSED_MAX_IN]; /* the inputs (kept: the args point into them) */
    int n_keep;
} host_rec;

#define HOST_MAX 1200
static host_rec *g_recs;
static int g_n_recs;

/* Values of dtype t that exercise conversions and special cases. */
static void fill_values(lx_dtype t, void *dst, int n, int seed) {
    static const double floats[] = {0.5, -1.25, 3.0, -0.0, 7.5, 1e-3, -100.25, 65504.0, 2.75,
                                    -3.5, 0.1, 1e30, -2.0, INFINITY, NAN, -INFINITY, 70000.0};
    const int nf = (int)(sizeof floats / sizeof *floats);
    for (int i = 0; i < n; i++) {
        double v;
        if (lx_dtype_is_float(t)) v = floats[(i * 7 + seed * 3) % nf];
        else v = (double)((i * 37 + seed * 11) % 300) - (lx_dtype_is_signed(t) ? 150 : 0);
        lx_dtype_store(t, (char *)dst + (size_t)i * lx_dtype_size(t), v);
    }
}

/* An input of the program's logical shape [3, 5] laid out as `kind` says: contiguous; a 0-d
 * array (every stride 0); or, by k, a transposed view, a broadcast row, a stepped slice. */
static lx_array host_input(lx_dtype t, int kind, int k) {
    unsigned char data[64 * 8];
    fill_values(t, data, 64, k);
    if (kind == LXF_SCALAR) return lx_array_new(data, NULL, 0, t);
    if (kind == LXF_CONTIG) return lx_array_new(data, (const int[]){3, 5}, 2, t);
    switch (k % 3) {
    case 0: return lx_transpose(lx_array_new(data, (const int[]){5, 3}, 2, t), NULL, 0);
    case 1: return lx_array_new(data, (const int[]){5}, 1, t);
    default:
        return lx_slice(lx_array_new(data, (const int[]){3, 11}, 2, t), (const int[]){0, 1},
                        (const int[]){3, 11}, (const int[]){1, 2}, 2);
    }
}

/* Records FUSED node f (its inputs READY, references of the caller's) with the CPU's result. */
static void host_record(lx_node *f, const char *what, lx_array *keep, int n_keep, bool strided) {
    if (g_n_recs == HOST_MAX) {
        CHECK_MSG(false, "more than %d host programs", HOST_MAX);
        for (int k = 0; k < n_keep; k++) lx_free(keep[k]);
        lx_node_release(f);
        return;
    }
    host_rec *r = &g_recs[g_n_recs];
    memset(r, 0, sizeof *r);
    snprintf(r->what, sizeof r->what, "%s", what);
    r->params_size = f->params_size;
    r->params = malloc(f->params_size);
    memcpy(r->params, f->params, f->params_size);
    r->nbytes = (size_t)f->size * lx_dtype_size((lx_dtype)f->dtype);
    for (int v = 0; v < 2; v++) r->got[v] = calloc(1, r->nbytes + 64);
    const char *why = lxf_plan(f, (char *)r->got[0], &r->args[0], r->kinds[0]);
    CHECK_MSG(why == NULL, "%s: lxf_plan: %s", what, why ? why : "");
    memcpy(r->keep, keep, sizeof *keep * (size_t)n_keep);
    r->n_keep = n_keep;
    if (!why) {
        /* the strided path must read every layout right, contiguous and scalars too */
        const lx_fused_header *h = f->params;
        r->n_var = strided ? 2 : 1;
        r->args[1] = r->args[0];
        for (int j = 0; j < h->n_out; j++)
            r->args[1].out[j] = (char *)r->got[1] + h->out_offset[j];
        memset(r->kinds[1], LXF_STRIDED, sizeof r->kinds[1]);
    }
    /* the CPU's result */
    lx_array hf = lx_handle_new(f); /* f's reference */
    lx_status st = lx_eval(hf);
    CHECK_MSG(st == LX_OK, "%s: the CPU's FUSED kernel: %s", what, lx_error_message());
    lx_clear_error();
    r->want = malloc(r->nbytes + 1);
    const void *d = st == LX_OK ? lx_data(hf) : NULL;
    if (d) memcpy(r->want, d, r->nbytes);
    else r->n_var = 0;
    lx_free(hf);
    if (!why) g_n_recs++;
    else {
        for (int k = 0; k < n_keep; k++) lx_free(keep[k]);
        free(r->params);
        free(r->want);
        for (int v = 0; v < 2; v++) free(r->got[v]);
    }
}

static void host_add_program(prog *p, const uint8_t *kinds, const char *what) {
    const lx_fused_header *h = H(p);
    uint8_t dts[LX_FUSED_MAX_IN];
    p_in_dtypes(p, dts);
    lx_array in[LX_FUSED_MAX_IN];
    lx_node *nodes[LX_FUSED_MAX_IN];
    for (int k = 0; k < h->n_in; k++) in[k] = host_input((lx_dtype)dts[k], kinds[k], k);
    if (h->n_in) CHECK_OK(lx_eval_n(in, h->n_in)); /* kept */
    for (int k = 0; k < h->n_in; k++) nodes[k] = lx_handle_get(in[k], "host", "in");
    int64_t total = 15 * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[0]);
    if (h->n_out > 1) {
        total = 0;
        for (int j = 0; j < h->n_out; j++)
            total = lx_fused_align(total) + 15 * (int64_t)lx_dtype_size((lx_dtype)h->out_dtype[j]);
    }
    int shape1 = (int)total;
    lx_node *f = h->n_out == 1
                     ? lx_node_new("test_cuda_fused_gen", LX_PRIM_FUSED, (lx_dtype)h->out_dtype[0],
                                   h->shape, h->ndim, nodes, h->n_in, h, P_size(p))
                     : lx_node_new("test_cuda_fused_gen", LX_PRIM_FUSED, LX_UINT8, &shape1, 1,
                                   nodes, h->n_in, h, P_size(p));
    CHECK_MSG(f != NULL, "%s: lx_node_new: %s", what, lx_error_message());
    if (!f) return;
    host_record(f, what, in, h->n_in, g_programs % 5 == 0);
}

/* A FUSED node of a compiled closure's graph (a reference of the caller's). */
static void host_add_node(lx_node *f, const char *what) {
    lx_array in[LX_FUSED_MAX_IN];
    for (int k = 0; k < f->n_inputs; k++) {
        lx_node_retain(f->inputs[k]);
        in[k] = lx_handle_new(f->inputs[k]);
    }
    if (f->n_inputs) CHECK_OK(lx_eval_n(in, f->n_inputs));
    lx_node_retain(f);
    host_record(f, what, in, f->n_inputs, true);
}

/* Whether two output regions hold the same values: bytes, NaNs of any payload equal. */
static bool same_values(lx_dtype t, const unsigned char *a, const unsigned char *b, int64_t n,
                        int64_t *bad) {
    size_t es = lx_dtype_size(t);
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *x = a + (size_t)i * es, *y = b + (size_t)i * es;
        if (memcmp(x, y, es) == 0) continue;
        if (lx_dtype_is_float(t) && isnan(lx_dtype_load(t, x)) && isnan(lx_dtype_load(t, y)))
            continue;
        *bad = i;
        return false;
    }
    return true;
}

typedef void (*host_kernel)(lxf_args a);

static void test_host(void) {
    g_recs = calloc(HOST_MAX, sizeof *g_recs);
    g_host = true;
    lx_jit_set_mode(LX_JIT_OFF);          /* the interpreter, */
    CHECK(lx_cpu_use_variant("generic")); /* without FMA, as the host build below */
    build_programs();
    test_compiled();
    /* one C++ file with every kernel */
    const char *repo = getenv("LX_REPO"), *tmp = getenv("LX_TEST_TMP");
    const char *cxx = getenv("LX_TEST_CXX");
    if (!cxx || !*cxx) cxx = "c++";
    char src_path[4096], so_path[4096], cmd[16384];
    snprintf(src_path, sizeof src_path, "%s/cuda-fused-host-%ld.cpp", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    snprintf(so_path, sizeof so_path, "%s/cuda-fused-host-%ld.so", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    FILE *f = fopen(src_path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("/* tests/test_cuda_fused_gen.c: generated FUSED kernels built for the host */\n"
          "#define __global__\n#define __device__\n#define __forceinline__ inline\n"
          "#define __launch_bounds__(n)\n"
          "static const struct { unsigned x; } blockIdx = {0}, threadIdx = {0}, blockDim = {1},"
          " gridDim = {1};\n", f);
    int n_kernels = 0;
    for (int i = 0; i < g_n_recs; i++)
        for (int v = 0; v < g_recs[i].n_var; v++) {
            char name[64];
            snprintf(name, sizeof name, "lxh_%d_%d", i, v);
            char *src = lxf_source((const lx_fused_header *)(void *)g_recs[i].params,
                                   g_recs[i].kinds[v], name, NULL);
            if (src) fputs(src, f);
            free(src);
            n_kernels++;
        }
    fclose(f);
    double t0 = t_now_s();
    snprintf(cmd, sizeof cmd, "%s -std=c++17 -O1 -ffp-contract=off -fno-math-errno "
             "-fno-trapping-math -fPIC -shared -Wno-unknown-pragmas -D_GNU_SOURCE -I'%s/include' "
             "-I'%s/src' -o '%s' '%s'", cxx, repo, repo, so_path, src_path);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "the host compiler failed: %s", cmd);
    printf("  %d host programs, %d kernels, built in %.1f s\n", g_n_recs, n_kernels,
           t_now_s() - t0);
    void *dl = rc == 0 ? dlopen(so_path, RTLD_NOW | RTLD_LOCAL) : NULL;
    CHECK_MSG(rc != 0 || dl, "dlopen: %s", dlerror());
    int n_bad = 0;
    for (int i = 0; dl && i < g_n_recs; i++) {
        host_rec *r = &g_recs[i];
        const lx_fused_header *h = (const lx_fused_header *)(void *)r->params;
        int64_t n = 1;
        for (int d = 0; d < h->ndim; d++) n *= h->shape[d];
        for (int v = 0; v < r->n_var; v++) {
            char name[64];
            snprintf(name, sizeof name, "lxh_%d_%d", i, v);
            void *sym = dlsym(dl, name);
            CHECK_MSG(sym != NULL, "%s: no %s", r->what, name);
            if (!sym) continue;
            host_kernel fn;
            memcpy(&fn, &sym, sizeof fn);
            fn(r->args[v]);
            for (int j = 0; j < h->n_out; j++) {
                int64_t bad = -1;
                lx_dtype t = (lx_dtype)h->out_dtype[j];
                bool ok = same_values(t, r->got[v] + h->out_offset[j], r->want + h->out_offset[j],
                                      n, &bad);
                if (!ok && n_bad++ < 20) {
                    size_t es = lx_dtype_size(t);
                    uint64_t gb = 0, wb = 0;
                    memcpy(&gb, r->got[v] + h->out_offset[j] + (size_t)bad * es, es);
                    memcpy(&wb, r->want + h->out_offset[j] + (size_t)bad * es, es);
                    fprintf(stderr, "%s%s: output %d (%s) element %lld: kernel %.9g (0x%llx), CPU "
                            "%.9g (0x%llx)\n", r->what, v ? " (read as strided)" : "", j,
                            dname(t), (long long)bad,
                            lx_dtype_load(t, r->got[v] + h->out_offset[j] + (size_t)bad * es),
                            (unsigned long long)gb,
                            lx_dtype_load(t, r->want + h->out_offset[j] + (size_t)bad * es),
                            (unsigned long long)wb);
                }
                t_checks++;
                if (!ok) t_failures++;
            }
        }
    }
    if (n_bad) fprintf(stderr, "%d outputs differ from the CPU's\n", n_bad);
    if (dl) dlclose(dl);
    unlink(so_path);
    if (t_failures == 0) unlink(src_path);
    else fprintf(stderr, "kept %s\n", src_path);
    for (int i = 0; i < g_n_recs; i++) {
        host_rec *r = &g_recs[i];
        for (int k = 0; k < r->n_keep; k++) lx_free(r->keep[k]);
        free(r->params);
        free(r->want);
        for (int v = 0; v < 2; v++) free(r->got[v]);
    }
    free(g_recs);
    g_host = false;
}

/* ---- NVRTC's failures and the PTX fallback ---- */

static void test_nvrtc_paths(void) {
    prog p;
    p_init(&p, 1);
    p_store(&p, p_unary(&p, LX_UNARY_GELU, p_load(&p, 0, LX_BFLOAT16)));
    const uint8_t kinds[1] = {LXF_STRIDED};
    size_t len;
    char *src = lxf_source(H(&p), kinds, NULL, &len);
    CHECK(src != NULL);
    if (!src) return;
    /* a compute capability NVRTC does not list (9.1): PTX for compute_90, for the driver */
    lxf_image img;
    char *log = NULL;
    CHECK_OK(lxf_nvrtc_compile(src, len, 91, &img, &log));
    CHECK(!img.cubin && img.size > 0 && ((const char *)img.data)[img.size - 1] == '\0');
    CHECK(img.data && strstr(img.data, ".target sm_90") && strstr(img.data, ".entry " LXF_KERNEL_NAME));
    CHECK(log && log[0] == '\0');
    lxf_image_free(&img);
    free(log);
    /* a warning reaches the log (so the empty logs the other checks require mean no warning) */
    const char *warn = "extern \"C\" __global__ void k(float *x) { int unused; x[0] = 1; }\n";
    CHECK_OK(lxf_nvrtc_compile(warn, strlen(warn), 80, &img, &log));
    CHECK_MSG(log && strstr(log, "warning"), "log: %s", log ? log : "(none)");
    lxf_image_free(&img);
    free(log);
    /* a broken source: LX_E_DEVICE with NVRTC's message, no image */
    const char *bad = "#include \"graph/elementwise_ops.h\"\n"
                      "extern \"C\" __global__ void k(float *x) { x[0] = lx_no_such_function(1); }\n";
    g_st = LX_OK;
    lx_status st = lxf_nvrtc_compile(bad, strlen(bad), 80, &img, &log);
    CHECK(st == LX_E_DEVICE && g_st == LX_E_DEVICE && img.data == NULL);
    CHECK_MSG(strstr(g_msg, "NVRTC") && strstr(g_msg, "lx_no_such_function"), "%s", g_msg);
    CHECK(log && strstr(log, "error"));
    free(log);
    /* an architecture below anything NVRTC has */
    g_st = LX_OK;
    CHECK(lxf_nvrtc_compile(src, len, 30, &img, NULL) == LX_E_DEVICE && g_st == LX_E_DEVICE);
    free(src);
}

/* ---- the disk cache ---- */

/* A few programs whose images the cache test stores and the child reads. */
#define N_CACHED 3
static void cached_program(prog *p, int i, uint8_t *kinds) {
    p_init(p, 2);
    int x = p_load(p, 0, i == 2 ? LX_FLOAT16 : LX_FLOAT32), y = p_load(p, 1, i == 2 ? LX_FLOAT16 : LX_FLOAT32);
    p_store(p, i == 0 ? p_binary(p, LX_BINARY_MUL, p_unary(p, LX_UNARY_SILU, x), y)
                      : p_binary(p, LX_BINARY_ADD, p_unary(p, LX_UNARY_EXP, x), y));
    kinds[0] = i == 1 ? LXF_STRIDED : LXF_CONTIG;
    kinds[1] = i == 1 ? LXF_SCALAR : LXF_CONTIG;
}

static lxf_stats delta(lxf_stats a, lxf_stats b) {
    return (lxf_stats){b.compiled - a.compiled, b.failed - a.failed, b.disk_hits - a.disk_hits,
                       b.disk_refused - a.disk_refused, b.disk_written - a.disk_written};
}

/* lxf_image_get of cached program i for sm_80: the image, and what it did. */
static lxf_stats get_image(int i, lxf_image *img) {
    prog p;
    uint8_t kinds[2];
    cached_program(&p, i, kinds);
    lxf_stats s0 = lxf_stats_get();
    g_st = LX_OK;
    lx_status st = lxf_image_get(H(&p), P_size(&p), kinds, 80, img);
    CHECK_MSG(st == LX_OK, "lxf_image_get: %s", g_msg);
    return delta(s0, lxf_stats_get());
}

static bool cache_file(int i, char *path, size_t cap) {
    prog p;
    uint8_t kinds[2];
    cached_program(&p, i, kinds);
    size_t len;
    char *src = lxf_source(H(&p), kinds, NULL, &len);
    bool ok = src && lxf_cache_path(src, len, 80, path, cap);
    free(src);
    return ok;
}

static bool same_image(const lxf_image *a, const lxf_image *b) {
    return a->size == b->size && a->cubin == b->cubin && memcmp(a->data, b->data, a->size) == 0;
}

/* Replaces the file with a damaged copy (how: 0 flip an image byte, 1 truncate, 2 another
 * key's header check, 3 garbage). */
static void damage(const char *path, int how) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    static unsigned char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(n > 64 && n < sizeof buf);
    if (how == 0) buf[n - 100] ^= 0x20;
    if (how == 1) n -= 10;
    if (how == 2) buf[9] ^= 1; /* inside the key check */
    if (how == 3) memset(buf, 'x', 48);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(buf, 1, n, f) == n);
    fclose(f);
}

static void test_cache(const char *self) {
    const char *dir = lxf_cache_dir();
    CHECK_MSG(dir[0] != '\0', "no cache directory (LX_JIT_CACHE=%s)", getenv("LX_JIT_CACHE"));
    if (!dir[0]) return;
    CHECK(strcmp(dir, getenv("LX_JIT_CACHE")) == 0);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0077) == 0);
    lxf_image first[N_CACHED], again;
    /* first lookups compile and store; second ones read the same bytes */
    for (int i = 0; i < N_CACHED; i++) {
        lxf_stats d = get_image(i, &first[i]);
        CHECK_MSG(d.compiled == 1 && d.disk_written == 1 && d.disk_hits == 0, "program %d: "
                  "compiled %llu, written %llu, hits %llu", i, (unsigned long long)d.compiled,
                  (unsigned long long)d.disk_written, (unsigned long long)d.disk_hits);
        char path[4300];
        CHECK(cache_file(i, path, sizeof path) && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
              (st.st_mode & 0077) == 0);
        d = get_image(i, &again);
        CHECK(d.compiled == 0 && d.disk_hits == 1 && d.disk_refused == 0);
        CHECK(same_image(&first[i], &again));
        lxf_image_free(&again);
    }
    /* a second process: every image from the disk, nothing compiled */
    const char *env[] = {"LX_JIT_CACHE", dir, NULL};
    CHECK_MSG(t_run_self(self, "child", env) == 0, "the second process recompiled or failed");
    /* damaged files are refused, recompiled and replaced */
    char path[4300];
    CHECK(cache_file(0, path, sizeof path));
    for (int how = 0; how < 4; how++) {
        damage(path, how);
        lxf_stats d = get_image(0, &again);
        CHECK_MSG(d.disk_refused == 1 && d.compiled == 1 && d.disk_written == 1,
                  "damage %d: refused %llu, compiled %llu", how,
                  (unsigned long long)d.disk_refused, (unsigned long long)d.compiled);
        CHECK(same_image(&first[0], &again));
        lxf_image_free(&again);
        d = get_image(0, &again); /* the replacement is good */
        CHECK(d.disk_hits == 1 && d.compiled == 0);
        lxf_image_free(&again);
    }
    /* writable by the group: refused */
    CHECK(chmod(path, 0664) == 0);
    lxf_stats d = get_image(0, &again);
    CHECK(d.disk_refused == 1 && d.compiled == 1);
    lxf_image_free(&again);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0077) == 0); /* replaced by a 0600 file */
    /* owned by someone else (only root can make one): refused */
    if (geteuid() == 0) {
        CHECK(chown(path, 4242, 4242) == 0);
        d = get_image(0, &again);
        CHECK(d.disk_refused == 1 && d.compiled == 1);
        lxf_image_free(&again);
        CHECK(stat(path, &st) == 0 && st.st_uid == 0);
    } else {
        printf("  (not root: the foreign-owned file case is not run)\n");
    }
    /* a symlink in its place is not followed: its target stays as it was */
    char target[4400];
    snprintf(target, sizeof target, "%s.target", path);
    FILE *f = fopen(target, "wb");
    CHECK(f && fputs("not an image", f) >= 0);
    if (f) fclose(f);
    CHECK(unlink(path) == 0 && symlink(target, path) == 0);
    d = get_image(0, &again);
    CHECK(d.compiled == 1 && d.disk_hits == 0);
    lxf_image_free(&again);
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode)); /* the link was replaced */
    CHECK(stat(target, &st) == 0 && st.st_size == 12);
    unlink(target);
    /* no temporary files left behind */
    char cmd[4600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.tmp$' > /dev/null", dir);
    CHECK(system(cmd) != 0);
    for (int i = 0; i < N_CACHED; i++) lxf_image_free(&first[i]);
}

/* The second process of test_cache: every cached program from the disk. */
static int child_main(void) {
    lxf_set_core(&t_core);
    if (!lxf_nvrtc_load(NULL, 0)) return 2;
    int bad = 0;
    for (int i = 0; i < N_CACHED; i++) {
        lxf_image img;
        lxf_stats d = get_image(i, &img);
        if (d.compiled != 0 || d.disk_hits != 1 || !img.cubin) bad++;
        lxf_image_free(&img);
    }
    return bad || t_failures ? 1 : 0;
}

/* Prints the sources of a few programs (to read what the generator writes). */
static int dump_main(void) {
    prog p;
    p_init(&p, 3);
    int x = p_load(&p, 0, LX_BFLOAT16), y = p_load(&p, 1, LX_BFLOAT16);
    int c = p_load(&p, 2, LX_BOOL);
    int s = p_binary(&p, LX_BINARY_MUL, p_unary(&p, LX_UNARY_SILU, x), y);
    p_store(&p, p_where(&p, c, s, p_const(&p, LX_BFLOAT16, -0.0)));
    p_store(&p, p_cast(&p, s, LX_INT64));
    const uint8_t k1[3] = {LXF_CONTIG, LXF_SCALAR, LXF_STRIDED};
    char *src = lxf_source(H(&p), k1, NULL, NULL);
    printf("%s\n", src ? src : "(none)");
    free(src);
    p_init(&p, 1);
    p_store(&p, p_binary(&p, LX_BINARY_ADD, p_load(&p, 0, LX_FLOAT64), p_const(&p, LX_FLOAT64, 0.1)));
    src = lxf_source(H(&p), k1, NULL, NULL);
    printf("%s", src ? src : "(none)");
    free(src);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    if (strcmp(mode, "child") == 0) return child_main();
    if (strcmp(mode, "dump") == 0) return dump_main();
    lxf_set_core(&t_core);
    char why[256];
    if (!lxf_nvrtc_load(why, sizeof why)) {
        printf("skipped: %s\n", why);
        return 77;
    }
    int v = lxf_nvrtc_version();
    printf("NVRTC %d.%d\n", v / 1000, v % 1000 / 10);
    /* the cache test's own directory (set before the layer first reads it) */
    const char *tmp = getenv("LX_TEST_TMP");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/cuda-fused-cache-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    setenv("LX_JIT_CACHE", dir, 1);
    bool all = strcmp(mode, "all") == 0;
    double t0 = t_now_s();
    if (all || strcmp(mode, "programs") == 0) {
        RUN_TEST(test_key);
        RUN_TEST(test_programs);
        RUN_TEST(test_nvrtc_paths);
    }
    if (all || strcmp(mode, "compiled") == 0) RUN_TEST(test_compiled);
    if (strcmp(mode, "host") == 0) {
        if (!getenv("LX_REPO")) {
            printf("skipped: LX_REPO (the source tree, for the headers) is not set\n");
            return 77;
        }
        const char *cxx = getenv("LX_TEST_CXX");
        char probe[512];
        snprintf(probe, sizeof probe, "%s --version > /dev/null 2>&1", cxx && *cxx ? cxx : "c++");
        if (system(probe) != 0) {
            printf("skipped: no host C++ compiler (%s; LX_TEST_CXX names one)\n",
                   cxx && *cxx ? cxx : "c++");
            return 77;
        }
        RUN_TEST(test_host);
    }
    if (all || strcmp(mode, "cache") == 0) {
        test_cache(argv[0]);
        printf("%-48s %s\n", "test_cache", t_failures ? "FAILED" : "ok");
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    printf("%d programs, %d kernels, %d NVRTC runs (sm_80 and sm_90), %.1f s\n", g_programs,
           g_kernels, g_nvrtc_runs, t_now_s() - t0);
    return test_finish();
}
