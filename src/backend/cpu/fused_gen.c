/*
 * fused_gen.c -- native code for fused programs (graph/fused.h): the C source of one
 * function per program, compiled through jit.c, and the table of programs seen so far.
 *
 * The generated function computes n consecutive elements:
 *     void lx_fused_kernel(int64_t n, const void *const *in, void *const *out)
 * in[k] points at input k's first element of the range (contiguous), or at its one value when
 * the key says it is a scalar (stride 0); out[j] at output j's first element. The caller
 * gathers strided inputs into contiguous tiles first, so one function serves every layout.
 *
 * Shape of the code: blocks of LX_JIT_BLOCK elements, on small arrays that stay in L1 (one per
 * register and value class). Consecutive cheap instructions of one class share a loop over the
 * block, so their intermediates stay in registers and the compiler vectorises the chain; an
 * expensive instruction (erf, exp, a libm call...) has a loop of its own, for an expensive
 * unary op the loop function the unfused kernel runs (with its vector forms), because a chain
 * of dependent expensive ops on a single vector is bound by latency, and a libm call would
 * keep the rest of a shared loop scalar. Measured on GELU x10 (AVX2): one loop per instruction
 * 0.61 ns an element and GELU, shared loops 0.46, everything in one loop 0.53. float16 results
 * are rounded by a pass over the block after their loop (the F16C conversions where there
 * are), bfloat16 ones in place. The per-element math is elementwise_ops.h's per-element
 * functions with a constant op, the same definitions the interpreter (fused.c) and the
 * separate kernels run, and every narrowing is the interpreter's, so the results are the same
 * bits.
 *
 * Table: programs are keyed by their bytes, the input kinds and the variant. In the default
 * mode a program is compiled once it has streamed 2^19 elements (a compile costs ~0.1-0.3 s,
 * worth it only for work that repeats: a [1000, 1024] program compiles on its first call, one
 * on [1, 4096] after 128 calls); calls on fewer than 1024 elements never look it up.
 * A program made hot by one large call compiles in that call; one made hot by repetition
 * (many small calls) compiles on a background thread while its calls keep interpreting.
 * While a program compiles, its other calls interpret. A failed compile is remembered.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend/cpu/fused_native.h"
#include "graph/elementwise_ops.h"
#include "backend/cpu/jit.h"
#include "graph/codegen.h"

#define LX_JIT_BLOCK 128
#define HOT_ELEMENTS (1ll << 19)
#define MIN_ELEMENTS 1024

/* Writes the class value of a CONST of dtype t (imm converted as the FULL kernel does) as an
 * exact C expression. */
static void put_const(sbuf *b, lx_dtype t, double imm) {
    switch (t) {
#define X(E, T, S)                                                                          \
    case E: {                                                                               \
        LX_ICAT_(LX_CT_, LX_CLS_##S) v = LX_LOAD_##S(lx_cvt_##S##_D(imm));                  \
        uint64_t bits = 0;                                                                  \
        memcpy(&bits, &v, sizeof v);                                                        \
        int cls = lx_dtype_class(E);                                                        \
        if (cls == LX_CLASS_F) sb_put(b, "lx_f32_from_bits(0x%08xu)", (unsigned)bits);      \
        else sb_put(b, "lx_jit_%s(0x%016llxull)", class_name[cls], (unsigned long long)bits); \
        break;                                                                              \
    }
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: sb_put(b, "0"); break;
    }
}

/* The C name of register r holding class cls, indexed at l. */
#define REG "r%d%s[l]"

/* An operand: a constant's scalar or a register's element. */
static void put_operand(sbuf *b, const bool *is_const, int r, int cls) {
    if (is_const[r]) sb_put(b, "k%d", r);
    else sb_put(b, REG, r, class_name[cls]);
}

/* The dtype input k is loaded as, or -1 when no instruction reads it. */
static int input_dtype(const lx_fused_header *h, int k) {
    const lx_fused_instr *code = lx_fused_code(h);
    for (int i = 0; i < h->n_instr; i++)
        if (code[i].op == LX_FOP_LOAD && code[i].a == k) return code[i].dtype;
    return -1;
}

/* A UNARY or BINARY value result of dtype t rounded by a pass over the block after its loop
 * (float16 in class F: lx_round_f16_n, the hardware conversions where there are), rather than
 * per element inside the loop. */
static bool rounds_after(const lx_fused_instr *ins) {
    return (ins->op == LX_FOP_UNARY || ins->op == LX_FOP_BINARY) && ins->dtype == LX_FLOAT16 &&
           !(ins->op == LX_FOP_UNARY ? lx_unary_op_is_pred(ins->sub)
                                     : lx_binary_op_is_pred(ins->sub));
}

/* Opens the narrowing of a class-cls value to dtype t (as the interpreter's rounders), returning
 * what closes it: nothing for dtypes stored as their class and float16 rounded after the loop,
 * the round trip in float for bfloat16, a store-and-load conversion otherwise. */
static const char *put_narrow(sbuf *b, lx_dtype t, int cls) {
    if (lx_dtype_is_direct(t) || (t == LX_FLOAT16 && cls == LX_CLASS_F)) return "";
    if (t == LX_BFLOAT16 && cls == LX_CLASS_F) {
        sb_put(b, "lx_round_bf16_F(");
        return ")";
    }
    sb_put(b, "LX_LOAD_%s(lx_cvt_%s_%s(", dtype_sfx[t], dtype_sfx[t], class_name[cls]);
    return "))";
}

/* The statement of one instruction for element l of the block (no loop around it). */
static bool put_statement(sbuf *b, const lx_fused_instr *ins, const bool *is_const,
                          const uint8_t *kinds) {
    const lx_dtype t = (lx_dtype)ins->dtype;
    const int cls = lx_dtype_class(t);
    const char *ds = dtype_sfx[t];
    switch (ins->op) {
    case LX_FOP_LOAD:
        sb_put(b, REG " = LX_LOAD_%s(((const LX_ST_%s *)in[%d])[%s]);\n", ins->dst,
               class_name[cls], ds, ds, ins->a, kinds[ins->a] ? "0" : "i0 + l");
        return true;
    case LX_FOP_UNARY: {
        int ac = lx_dtype_class((lx_dtype)ins->adtype);
        bool pred = lx_unary_op_is_pred(ins->sub);
        sb_put(b, REG " = ", ins->dst, class_name[cls]);
        if (pred) {
            sb_put(b, "(uint64_t)lx_ew_unary_pred1_%s(%s, ", class_name[ac],
                   unary_name[ins->sub]);
            put_operand(b, is_const, ins->a, ac);
            sb_put(b, ");\n");
            return true;
        }
        const char *close = put_narrow(b, t, cls);
        sb_put(b, "lx_ew_unary1_%s(%s, ", class_name[ac], unary_name[ins->sub]);
        put_operand(b, is_const, ins->a, ac);
        sb_put(b, ")%s;\n", close);
        return true;
    }
    case LX_FOP_BINARY: {
        int ac = lx_dtype_class((lx_dtype)ins->adtype);
        bool pred = lx_binary_op_is_pred(ins->sub);
        const char *close = "";
        sb_put(b, REG " = ", ins->dst, class_name[cls]);
        if (pred) sb_put(b, "(uint64_t)lx_ew_binary_pred1_%s(%s, ", class_name[ac],
                         binary_name[ins->sub]);
        else {
            close = put_narrow(b, t, cls);
            sb_put(b, "lx_ew_binary1_%s(%s, ", class_name[ac], binary_name[ins->sub]);
        }
        put_operand(b, is_const, ins->a, ac);
        sb_put(b, ", ");
        put_operand(b, is_const, ins->b, ac);
        sb_put(b, ")%s;\n", close);
        return true;
    }
    case LX_FOP_WHERE:
        sb_put(b, REG " = ", ins->dst, class_name[cls]);
        put_operand(b, is_const, ins->a, LX_CLASS_U);
        sb_put(b, " ? ");
        put_operand(b, is_const, ins->b, cls);
        sb_put(b, " : ");
        put_operand(b, is_const, ins->c, cls);
        sb_put(b, ";\n");
        return true;
    case LX_FOP_CAST: {
        int ac = lx_dtype_class((lx_dtype)ins->adtype);
        /* An integer of at most 32 bits into float32/float64: the same value through a 32-bit
         * integer, which AVX2 converts in vector form (from 64 bits it has no instruction, and
         * the loop stays scalar: random bits into uniform floats ran at ~2 ns an element). */
        bool narrow = (ac == LX_CLASS_U || ac == LX_CLASS_I) &&
                      lx_dtype_size((lx_dtype)ins->adtype) <= 4 &&
                      (ins->dtype == LX_FLOAT32 || ins->dtype == LX_FLOAT64);
        sb_put(b, REG " = LX_LOAD_%s(lx_cvt_%s_%s%s(", ins->dst, class_name[cls], ds, ds,
               class_name[ac], narrow ? "32" : "");
        if (narrow) sb_put(b, ac == LX_CLASS_U ? "(uint32_t)" : "(int32_t)");
        put_operand(b, is_const, ins->a, ac);
        sb_put(b, "));\n");
        return true;
    }
    case LX_FOP_STORE:
        sb_put(b, "((LX_ST_%s *)out[%d])[i0 + l] = lx_cvt_%s_%s(", ds, ins->b, ds,
               class_name[cls]);
        put_operand(b, is_const, ins->a, cls);
        sb_put(b, ");\n");
        return true;
    default:
        return false;
    }
}

/* The value classes an instruction reads and writes are all cls (so it can share a loop with
 * others of its class: a loop that mixes 32- and 64-bit lanes vectorizes poorly or not at
 * all). */
static bool uniform_class(const lx_fused_instr *ins, int cls) {
    switch (ins->op) {
    case LX_FOP_LOAD: case LX_FOP_STORE: return true;
    case LX_FOP_UNARY:
        return !lx_unary_op_is_pred(ins->sub) && lx_dtype_class((lx_dtype)ins->adtype) == cls;
    case LX_FOP_BINARY:
        return !lx_binary_op_is_pred(ins->sub) && lx_dtype_class((lx_dtype)ins->adtype) == cls;
    default: return false; /* WHERE reads a U mask, CAST changes class */
    }
}

/* An instruction that costs many cycles an element: it gets a loop of its own, as a chain of
 * dependent expensive ops on one vector would be bound by latency (and a libm call in a loop
 * would keep the loop's other statements from vectorizing). */
static bool expensive(const lx_fused_instr *ins) {
    if (ins->op == LX_FOP_UNARY) return lx_ew_unary_is_expensive(ins->sub);
    if (ins->op == LX_FOP_BINARY)
        return lx_ew_binary_is_expensive(ins->sub, lx_dtype_class((lx_dtype)ins->adtype));
    return false;
}

static bool generate(sbuf *b, const lx_fused_header *h, const uint8_t *kinds) {
    const lx_fused_instr *code = lx_fused_code(h);
    bool is_const[256] = {false};
    bool used[256][4];
    memset(used, 0, sizeof used);
    sb_put(b, "%s\n", lx_jit_preamble);
    sb_put(b, "static inline int64_t lx_jit_I(uint64_t u) { int64_t v; memcpy(&v, &u, 8); "
              "return v; }\n"
              "static inline uint64_t lx_jit_U(uint64_t u) { return u; }\n"
              "static inline double lx_jit_D(uint64_t u) { double v; memcpy(&v, &u, 8); "
              "return v; }\n"
              "#define LX_JIT_BLOCK %d\n\n",
           LX_JIT_BLOCK);
    /* the block function: LX_JIT_BLOCK elements from i0 (a constant trip count everywhere:
     * the last, partial block goes through padded copies) */
    sb_put(b, "static inline __attribute__((always_inline)) void lx_jit_block(int64_t i0, "
              "const void *const *in, void *const *out) {\n"
              "    const int m = LX_JIT_BLOCK;\n");
    for (int i = 0; i < h->n_instr; i++) {
        const lx_fused_instr *ins = &code[i];
        if (ins->op == LX_FOP_CONST) {
            int cls = lx_dtype_class((lx_dtype)ins->dtype);
            sb_put(b, "    const %s k%d = ", class_type[cls], ins->dst);
            put_const(b, (lx_dtype)ins->dtype, ins->imm);
            sb_put(b, ";\n");
            is_const[ins->dst] = true;
        } else if (ins->op != LX_FOP_STORE) {
            used[ins->dst][lx_dtype_class((lx_dtype)ins->dtype)] = true;
        }
    }
    for (int r = 0; r < h->n_regs; r++)
        for (int c = 0; c < 4; c++)
            if (used[r][c]) sb_put(b, "    %s r%d%s[LX_JIT_BLOCK];\n", class_type[c], r, class_name[c]);
    /* Loops over the block: consecutive cheap instructions of one value class share a loop, so
     * their intermediates stay in registers (a loop per instruction would store and reload
     * each); an expensive one has its own, an expensive unary op of a register through the
     * loop function the unfused kernel runs (elementwise_ops.h, vector forms included). */
    int open = -1; /* the class of the loop being written, or -1 */
    for (int i = 0; i < h->n_instr; i++) {
        const lx_fused_instr *ins = &code[i];
        if (ins->op == LX_FOP_CONST) continue;
        const lx_dtype t = (lx_dtype)ins->dtype;
        const int cls = lx_dtype_class(t);
        const bool alone = expensive(ins) || !uniform_class(ins, cls) || rounds_after(ins);
        if (open >= 0 && (alone || open != cls)) {
            sb_put(b, "    }\n");
            open = -1;
        }
        if (alone && ins->op == LX_FOP_UNARY && !is_const[ins->a] &&
            !lx_unary_op_is_pred(ins->sub)) {
            sb_put(b, "    lx_ew_unary_%s(%s, r%d%s, r%d%s, m);\n", class_name[cls],
                   unary_name[ins->sub], ins->a, class_name[cls], ins->dst, class_name[cls]);
            if (rounds_after(ins)) {
                sb_put(b, "    lx_round_f16_n(r%dF, m);\n", ins->dst);
            } else if (!lx_dtype_is_direct(t)) { /* narrowed as the interpreter's rounders */
                sb_put(b, "    for (int l = 0; l < m; l++) " REG " = ", ins->dst, class_name[cls]);
                const char *close = put_narrow(b, t, cls);
                sb_put(b, REG "%s;\n", ins->dst, class_name[cls], close);
            }
            continue;
        }
        if (alone) {
            sb_put(b, "    for (int l = 0; l < m; l++) ");
        } else {
            if (open < 0) sb_put(b, "    for (int l = 0; l < m; l++) {\n");
            open = cls;
            sb_put(b, "        ");
        }
        if (!put_statement(b, ins, is_const, kinds)) return false;
        if (rounds_after(ins)) sb_put(b, "    lx_round_f16_n(r%dF, m);\n", ins->dst);
    }
    if (open >= 0) sb_put(b, "    }\n");
    sb_put(b, "}\n\n");
    /* The kernel: every block through one call site, so the (always inlined) block function is
     * compiled once (a separate call for the tail doubled the code and ~25% of the compile
     * time); the last, partial block goes through zero-padded buffers. */
    sb_put(b, "__attribute__((visibility(\"default\"))) void lx_fused_kernel(int64_t n, "
              "const void *const *in, void *const *out) {\n"
              "    const void *tin[%d];\n    void *tout[%d];\n",
           h->n_in ? h->n_in : 1, h->n_out);
    for (int k = 0; k < h->n_in; k++) {
        int t = input_dtype(h, k);
        if (!kinds[k] && t >= 0) sb_put(b, "    LX_ST_%s tin%d[LX_JIT_BLOCK];\n", dtype_sfx[t], k);
    }
    for (int j = 0; j < h->n_out; j++)
        sb_put(b, "    LX_ST_%s tout%d[LX_JIT_BLOCK];\n", dtype_sfx[h->out_dtype[j]], j);
    sb_put(b, "    for (int64_t i0 = 0; i0 < n; i0 += LX_JIT_BLOCK) {\n"
              "        const size_t rest = (size_t)(n - i0);\n"
              "        const void *const *bin = in;\n"
              "        void *const *bout = out;\n"
              "        int64_t base = i0;\n"
              "        if (rest < LX_JIT_BLOCK) {\n");
    for (int k = 0; k < h->n_in; k++) {
        int t = input_dtype(h, k);
        if (kinds[k] || t < 0) { /* a scalar, or never read */
            sb_put(b, "            tin[%d] = in[%d];\n", k, k);
            continue;
        }
        sb_put(b, "            memset(tin%d, 0, sizeof tin%d);\n"
                  "            memcpy(tin%d, (const LX_ST_%s *)in[%d] + i0, rest * sizeof *tin%d);\n"
                  "            tin[%d] = tin%d;\n",
               k, k, k, dtype_sfx[t], k, k, k, k);
    }
    for (int j = 0; j < h->n_out; j++) sb_put(b, "            tout[%d] = tout%d;\n", j, j);
    sb_put(b, "            bin = tin;\n            bout = tout;\n            base = 0;\n"
              "        }\n"
              "        lx_jit_block(base, bin, bout);\n"
              "        if (rest < LX_JIT_BLOCK) {\n");
    for (int j = 0; j < h->n_out; j++)
        sb_put(b, "            memcpy((LX_ST_%s *)out[%d] + i0, tout%d, rest * sizeof *tout%d);\n",
               dtype_sfx[h->out_dtype[j]], j, j, j);
    sb_put(b, "        }\n    }\n");
    sb_put(b, "}\n");
    return !b->failed;
}

/* ---- the table ---- */

static int64_t g_native_runs;
int64_t lx_fused_native_runs(void) { return __atomic_load_n(&g_native_runs, __ATOMIC_RELAXED); }
void lx_fused_native_count_run(void) { __atomic_fetch_add(&g_native_runs, 1, __ATOMIC_RELAXED); }

typedef enum { ST_COUNTING, ST_COMPILING, ST_READY, ST_FAILED } entry_state;

typedef struct entry {
    struct entry *next;
    struct entry *queued; /* next in the background queue */
    uint64_t hash;
    size_t key_len, params_size;
    unsigned char *key; /* program bytes, then the kinds, then the variant name */
    entry_state state;
    int64_t streamed;
    lx_fused_native_fn fn;
} entry;

#define N_BUCKETS 256
static entry *g_buckets[N_BUCKETS];
static pthread_mutex_t g_table_lock = PTHREAD_MUTEX_INITIALIZER;

/* Programs that became hot by repetition (many calls on small arrays: a decode loop) compile
 * on a background thread while their calls keep interpreting, instead of stalling the call
 * that crossed the threshold for the compiler's 0.1-1 s. One worker, started on first need;
 * under g_table_lock: the queue (FIFO), whether the worker runs, whether it is compiling. */
static entry *g_queue_head, *g_queue_tail;
static bool g_worker_running, g_worker_busy, g_exiting;
static pthread_cond_t g_work = PTHREAD_COND_INITIALIZER; /* a job queued, or exiting */
static pthread_cond_t g_idle = PTHREAD_COND_INITIALIZER; /* a compile finished */
static int64_t g_background_compiles;

/* Generates and compiles an entry's program, then publishes the result. Called without the
 * table lock; the entry's key is immutable once in the table. */
static void compile_entry(entry *e) {
    const lx_fused_header *h = (const lx_fused_header *)(const void *)e->key;
    const uint8_t *kinds = e->key + e->params_size;
    const char *variant = (const char *)(e->key + e->params_size + h->n_in);
    sbuf src = {0};
    bool ok = generate(&src, h, kinds);
    void *sym = ok ? lx_jit_compile(src.p, src.len, "lx_fused_kernel", variant) : NULL;
    free(src.p);
    pthread_mutex_lock(&g_table_lock);
    e->state = sym ? ST_READY : ST_FAILED;
    memcpy(&e->fn, &sym, sizeof sym); /* object pointer to function pointer (POSIX dlsym) */
    pthread_mutex_unlock(&g_table_lock);
}

static void *worker_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_table_lock);
    for (;;) {
        while (!g_queue_head && !g_exiting) pthread_cond_wait(&g_work, &g_table_lock);
        if (g_exiting) break;
        entry *e = g_queue_head;
        g_queue_head = e->queued;
        if (!g_queue_head) g_queue_tail = NULL;
        e->queued = NULL;
        g_worker_busy = true;
        pthread_mutex_unlock(&g_table_lock);
        compile_entry(e);
        pthread_mutex_lock(&g_table_lock);
        g_background_compiles++;
        g_worker_busy = false;
        pthread_cond_broadcast(&g_idle);
    }
    g_worker_running = false;
    pthread_mutex_unlock(&g_table_lock);
    return NULL;
}

/* At exit: the compile in flight finishes (at most one compiler run), so that it does not
 * leave its temporary files in the cache directory; queued programs are dropped. */
static void worker_stop_at_exit(void) {
    pthread_mutex_lock(&g_table_lock);
    g_exiting = true;
    pthread_cond_broadcast(&g_work);
    while (g_worker_busy) pthread_cond_wait(&g_idle, &g_table_lock);
    pthread_mutex_unlock(&g_table_lock);
}

/* fork: the child has no worker; what was queued or compiling in the parent counts again from
 * zero there (the table's lock is held across the fork, so the child sees it consistent). */
static void fork_prepare(void) { pthread_mutex_lock(&g_table_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&g_table_lock); }
static void fork_child(void) {
    for (int b = 0; b < N_BUCKETS; b++)
        for (entry *e = g_buckets[b]; e; e = e->next)
            if (e->state == ST_COMPILING) {
                e->state = ST_COUNTING;
                e->streamed = 0;
                e->queued = NULL;
            }
    g_queue_head = g_queue_tail = NULL;
    g_worker_running = g_worker_busy = false;
    pthread_mutex_unlock(&g_table_lock);
}
static pthread_once_t g_worker_once = PTHREAD_ONCE_INIT;
static bool g_worker_hooks; /* atexit and atfork registered */
static void register_worker_hooks(void) {
    g_worker_hooks = atexit(worker_stop_at_exit) == 0 &&
                     pthread_atfork(fork_prepare, fork_parent, fork_child) == 0;
}

/* Queues e (ST_COMPILING) for the worker, starting it if needed; false if there is no worker
 * (the caller then compiles e itself). Called with g_table_lock held. */
static bool enqueue_locked(entry *e) {
    if (g_exiting || !g_worker_hooks) return false;
    if (!g_worker_running) {
        pthread_attr_t attr;
        pthread_t t;
        if (pthread_attr_init(&attr) != 0) return false;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        bool started = pthread_create(&t, &attr, worker_main, NULL) == 0;
        pthread_attr_destroy(&attr);
        if (!started) return false;
        g_worker_running = true;
    }
    e->queued = NULL;
    if (g_queue_tail) g_queue_tail->queued = e;
    else g_queue_head = e;
    g_queue_tail = e;
    pthread_cond_signal(&g_work);
    return true;
}

int64_t lx_fused_native_background_compiles(void) {
    pthread_mutex_lock(&g_table_lock);
    int64_t n = g_background_compiles;
    pthread_mutex_unlock(&g_table_lock);
    return n;
}

bool lx_fused_native_wait_idle(double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = until.tv_nsec + (int64_t)(seconds * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&g_table_lock);
    int rc = 0;
    while ((g_queue_head || g_worker_busy) && rc == 0)
        rc = pthread_cond_timedwait(&g_idle, &g_table_lock, &until);
    bool idle = !g_queue_head && !g_worker_busy;
    pthread_mutex_unlock(&g_table_lock);
    return idle;
}

/* The key bytes of (program, kinds, variant) into buf (NULL: just the size). */
static size_t make_key(unsigned char *buf, const lx_fused_header *h, size_t params_size,
                       const uint8_t *kinds, const char *variant) {
    size_t vl = strlen(variant) + 1, n = params_size + h->n_in + vl;
    if (buf) {
        memcpy(buf, h, params_size);
        memcpy(buf + params_size, kinds, h->n_in);
        memcpy(buf + params_size + h->n_in, variant, vl);
    }
    return n;
}

lx_fused_native_fn lx_fused_native(const lx_fused_header *h, size_t params_size,
                                   const uint8_t *kinds, const char *variant, int64_t elements) {
    lx_jit_mode mode = lx_jit_mode_get();
    if (mode == LX_JIT_OFF || (mode == LX_JIT_HOT && elements < MIN_ELEMENTS)) return NULL;
    unsigned char stack_key[4096];
    size_t key_len = make_key(NULL, h, params_size, kinds, variant);
    unsigned char *key = key_len <= sizeof stack_key ? stack_key : malloc(key_len);
    if (!key) return NULL;
    make_key(key, h, params_size, kinds, variant);
    uint64_t hash = lx_jit_hash(key, key_len, LX_JIT_HASH_SEED);

    lx_fused_native_fn fn = NULL;
    bool compile = false;
    entry *e;
    pthread_mutex_lock(&g_table_lock);
    for (e = g_buckets[hash % N_BUCKETS]; e; e = e->next)
        if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0) break;
    if (!e) {
        e = calloc(1, sizeof *e);
        unsigned char *copy = e ? malloc(key_len) : NULL;
        if (!copy) {
            free(e);
            e = NULL;
        } else {
            memcpy(copy, key, key_len);
            e->key = copy;
            e->key_len = key_len;
            e->params_size = params_size;
            e->hash = hash;
            e->state = ST_COUNTING;
            e->next = g_buckets[hash % N_BUCKETS];
            g_buckets[hash % N_BUCKETS] = e;
        }
    }
    if (e) {
        if (e->state == ST_READY) fn = e->fn;
        else if (e->state == ST_COUNTING) {
            e->streamed += elements;
            if (mode == LX_JIT_ALWAYS || e->streamed >= HOT_ELEMENTS) {
                e->state = ST_COMPILING;
                /* one call this large compiles now (its caller wants the speed at once, and
                 * benchmarks time after one warm-up call); a program hot by repetition
                 * compiles in the background; LX_JIT_ALWAYS compiles now, deterministically */
                compile = true;
                if (mode == LX_JIT_HOT && elements < HOT_ELEMENTS) {
                    pthread_once(&g_worker_once, register_worker_hooks);
                    compile = !enqueue_locked(e);
                }
            }
        }
    }
    pthread_mutex_unlock(&g_table_lock);
    if (key != stack_key) free(key);
    if (!compile) return fn;

    compile_entry(e);
    pthread_mutex_lock(&g_table_lock);
    fn = e->fn;
    pthread_mutex_unlock(&g_table_lock);
    return fn;
}
