/*
 * test_fused_native.c -- fused programs run as native code (backend/cpu/fused_gen.c and
 * jit.c) against the interpreter (fused.c) and against the same ops uncompiled.
 *
 * The contract is bit-identity: the generated code calls the same per-element definitions as
 * the interpreter and the separate kernels, with the same narrowing after every op, and is
 * compiled without FP contraction; so all three runs must give the same bytes (memcmp, NaN
 * payloads included). Programs cover every unary and binary op in float32, float64, float16,
 * bfloat16 and integer dtypes, constants on either side, comparisons with where, casts
 * between dtypes, broadcast and strided (gathered) inputs, several outputs, sizes that leave
 * partial blocks and sizes split over threads. Inputs include NaN, +-Inf, +-0 and values out
 * of the functions' domains.
 *
 * Each distinct program is one compiler run (~0.1-0.3 s), so ops are grouped into programs
 * of up to 8 outputs. The test needs a C compiler (CI installs one); without it native code
 * never runs, which the counters show, and the test fails rather than pass vacuously.
 */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/cpu/fused_native.h"
#include "backend/cpu/jit.h"
#include "test_util.h"

/* lx_free for several arrays */
#define free_all(...) free_n((const lx_array[]){__VA_ARGS__}, (int)(sizeof((const lx_array[]){__VA_ARGS__}) / sizeof(lx_array)))
static void free_n(const lx_array *a, int n) {
    for (int i = 0; i < n; i++) lx_free(a[i]);
}

typedef lx_array (*unary_fn)(lx_array);
typedef lx_array (*binary_fn)(lx_array, lx_array);

static const unary_fn unary_ops[] = {
    lx_neg,   lx_abs,     lx_sign,    lx_square, lx_sqrt,    lx_rsqrt,       lx_reciprocal,
    lx_exp,   lx_expm1,   lx_log,     lx_log1p,  lx_log2,    lx_log10,       lx_sin,
    lx_cos,   lx_tan,     lx_tanh,    lx_erf,    lx_erfinv,  lx_sigmoid,     lx_silu,
    lx_relu,  lx_gelu,    lx_gelu_approx, lx_floor, lx_ceil, lx_round,       lx_logical_not,
    lx_isnan, lx_isinf,   lx_isfinite};
#define N_UNARY ((int)(sizeof unary_ops / sizeof *unary_ops))

static const binary_fn binary_ops[] = {
    lx_add,   lx_sub,       lx_mul,       lx_div,      lx_pow,        lx_maximum,
    lx_minimum, lx_floor_divide, lx_remainder, lx_arctan2, lx_equal,  lx_not_equal,
    lx_less,  lx_less_equal, lx_greater,  lx_greater_equal, lx_logical_and, lx_logical_or};
#define N_BINARY ((int)(sizeof binary_ops / sizeof *binary_ops))

/* What a traced function computes: ops [first, first + count) of one family, each on the
 * inputs after a multiply by 1.5 (so every output is a chain of at least two fused ops). */
typedef struct {
    int family; /* 0 unary, 1 binary arrays, 2 binary (x, const), 3 binary (const, x),
                   4 where/compare chain, 5 casts, 6 GELU x10 */
    int first, count;
    lx_dtype dtype; /* of constants and casts */
} program;

static lx_array pre(lx_array x) {
    return lx_mul(x, lx_scalar(1.5, lx_dtype_of(x)));
}

static const lx_dtype cast_to[] = {LX_BOOL,    LX_UINT8,  LX_INT16,   LX_INT32,
                                   LX_FLOAT16, LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};

static lx_status fn_program(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    const program *p = ctx;
    lx_array x = pre(in[0]), y = n_in > 1 ? in[1] : x;
    lx_array k = lx_scalar(0.75, lx_dtype_of(in[0]));
    for (int j = 0; j < p->count; j++) {
        int op = p->first + j;
        switch (p->family) {
        case 0: out[j] = unary_ops[op](x); break;
        case 1: out[j] = binary_ops[op](x, y); break;
        case 2: out[j] = binary_ops[op](x, k); break;
        case 3: out[j] = binary_ops[op](k, x); break;
        case 4: {
            lx_array c = j % 2 ? lx_less(x, y) : lx_isnan(lx_sub(x, y));
            out[j] = lx_where(c, lx_add(x, y), lx_neg(y));
            break;
        }
        case 5: out[j] = lx_add(lx_astype(x, cast_to[j]), lx_astype(y, cast_to[j])); break;
        default: {
            lx_array g = in[0];
            for (int i = 0; i < 10; i++) {
                lx_array t = lx_erf(lx_div(g, lx_scalar(1.4142135623730951, lx_dtype_of(g))));
                g = lx_div(lx_mul(g, lx_add(t, lx_scalar(1.0, lx_dtype_of(g)))),
                           lx_scalar(2.0, lx_dtype_of(g)));
            }
            out[j] = g;
        }
        }
    }
    return LX_OK;
}

/* Random values with specials mixed in, in dtype t. */
static lx_array make_input(const int *shape, int ndim, lx_dtype t, unsigned seed) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    double *d = malloc(n * sizeof *d);
    t_seed(seed);
    static const double specials[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1e30, -1e-30, 1.0,
                                      -1.0, 0.5, 3.9, -7.0};
    for (size_t i = 0; i < n; i++) {
        if (t_next() % 8 == 0) d[i] = specials[t_next() % (sizeof specials / sizeof *specials)];
        else d[i] = t_uniform(-6, 6);
        if (t != LX_FLOAT32 && t != LX_FLOAT64 && t != LX_FLOAT16 && t != LX_BFLOAT16)
            d[i] = isfinite(d[i]) ? floor(d[i] * 7) : 3; /* integers: no NaN/Inf to convert */
    }
    lx_array a = lx_astype(lx_array_new(d, shape, ndim, LX_FLOAT64), t);
    free(d);
    lx_keep(a); /* the tests free their inputs */
    return a;
}

static bool same_bytes(lx_array a, lx_array b) {
    if (lx_eval(a, b) != LX_OK) return false;
    lx_array ca = lx_contiguous(a), cb = lx_contiguous(b);
    if (lx_eval(ca, cb) != LX_OK) return false;
    size_t na = lx_nbytes(ca), nb = lx_nbytes(cb);
    return lx_dtype_of(a) == lx_dtype_of(b) && na == nb &&
           (na == 0 || memcmp(lx_data(ca), lx_data(cb), na) == 0);
}

/* Calls c on in, keeps and evaluates the outputs. */
static void call_kept(lx_closure *c, const lx_array *in, int n_in, lx_array *out, int n_out) {
    for (int j = 0; j < n_out; j++) out[j] = LX_NULL_ARRAY;
    CHECK_OK(lx_call(c, in, n_in, out, n_out));
    for (int j = 0; j < n_out; j++) lx_keep(out[j]);
    CHECK_OK(lx_eval_n(out, n_out));
}

/* Runs program p on inputs (kept by the caller) three ways and compares the bytes of every
 * output. The mode matters when kernels run, so each way is evaluated before the next. */
static void run_three_ways(const char *what, const program *p, const lx_array *in, int n_in) {
    lx_closure *c = lx_compile(fn_program, (void *)p, p->count, 0);
    lx_array unc[8], interp[8], native[8];
    bool prev = lx_set_compile_enabled(false);
    call_kept(c, in, n_in, unc, p->count);
    lx_set_compile_enabled(true);
    lx_jit_set_mode(LX_JIT_OFF);
    call_kept(c, in, n_in, interp, p->count);
    lx_jit_set_mode(LX_JIT_ALWAYS);
    int64_t runs = lx_fused_native_runs();
    call_kept(c, in, n_in, native, p->count);
    CHECK_MSG(lx_fused_native_runs() > runs, "%s: no fused kernel ran as native code", what);
    lx_set_compile_enabled(prev);
    for (int j = 0; j < p->count; j++) {
        CHECK_MSG(same_bytes(native[j], interp[j]), "%s output %d: native != interpreter", what,
                  j);
        CHECK_MSG(same_bytes(native[j], unc[j]), "%s output %d: native != uncompiled", what, j);
    }
    for (int j = 0; j < p->count; j++) free_all(unc[j], interp[j], native[j]);
    lx_closure_free(c);
    lx_sweep();
}

static void test_unary_all_dtypes(void) {
    const lx_dtype types[] = {LX_FLOAT32, LX_FLOAT64, LX_FLOAT16, LX_BFLOAT16, LX_INT32};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        lx_array x = make_input((const int[]){3, 173}, 2, types[ti], 11 + (unsigned)ti);
        for (int first = 0; first < N_UNARY; first += 8) {
            program p = {0, first, N_UNARY - first < 8 ? N_UNARY - first : 8, types[ti]};
            char what[64];
            snprintf(what, sizeof what, "unary %s [%d..%d)", lx_dtype_name(types[ti]), first,
                     first + p.count);
            run_three_ways(what, &p, &x, 1);
        }
        lx_free(x);
    }
}

static void test_binary_all_dtypes(void) {
    const lx_dtype types[] = {LX_FLOAT32, LX_FLOAT64, LX_BFLOAT16, LX_INT32, LX_UINT8};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        lx_array in[2] = {make_input((const int[]){517}, 1, types[ti], 21 + (unsigned)ti),
                          make_input((const int[]){517}, 1, types[ti], 31 + (unsigned)ti)};
        for (int family = 1; family <= 3; family++) {
            for (int first = 0; first < N_BINARY; first += 8) {
                program p = {family, first, N_BINARY - first < 8 ? N_BINARY - first : 8,
                             types[ti]};
                char what[64];
                snprintf(what, sizeof what, "binary/%d %s [%d..%d)", family,
                         lx_dtype_name(types[ti]), first, first + p.count);
                run_three_ways(what, &p, in, 2);
            }
        }
        free_all(in[0], in[1]);
    }
}

static void test_where_casts_broadcast_strided(void) {
    /* broadcast: [4, 1, 66] against [5, 1]; then a transposed and a reversed input, which the
     * native path gathers into tiles */
    lx_array a = make_input((const int[]){4, 1, 66}, 3, LX_FLOAT32, 41);
    lx_array b = make_input((const int[]){5, 1}, 2, LX_FLOAT32, 42);
    program pw = {4, 0, 4, LX_FLOAT32};
    run_three_ways("where broadcast", &pw, (const lx_array[]){a, b}, 2);
    program pc = {5, 0, 8, LX_FLOAT32};
    run_three_ways("casts broadcast", &pc, (const lx_array[]){a, b}, 2);
    lx_array t0 = make_input((const int[]){66, 5, 4}, 3, LX_FLOAT32, 43);
    lx_array r0 = make_input((const int[]){5, 1}, 2, LX_FLOAT32, 44);
    lx_array t = lx_transpose(t0, NULL, 0);
    lx_array r = lx_slice(r0, (const int[]){4, 0}, (const int[]){-6, 1}, (const int[]){-1, 1}, 2);
    lx_keep(t, r);
    run_three_ways("where strided", &pw, (const lx_array[]){t, r}, 2);
    run_three_ways("casts strided", &pc, (const lx_array[]){t, r}, 2);
    lx_array h = make_input((const int[]){300}, 1, LX_FLOAT16, 45);
    program ph = {5, 0, 8, LX_FLOAT16};
    run_three_ways("casts float16", &ph, (const lx_array[]){h, h}, 2);
    free_all(a, b, t0, r0, t, r, h);
}

/* Large enough to be split over threads, with a partial last block. */
static void test_gelu10_large(void) {
    lx_array x = make_input((const int[]){301, 1031}, 2, LX_FLOAT32, 51);
    program p = {6, 0, 1, LX_FLOAT32};
    run_three_ways("gelu x10 [301, 1031]", &p, &x, 1);
    lx_array y = make_input((const int[]){1000}, 1, LX_BFLOAT16, 52);
    program pb = {6, 0, 1, LX_BFLOAT16};
    run_three_ways("gelu x10 bfloat16", &pb, &y, 1);
    free_all(x, y);
}

/* The default mode compiles only what streams enough elements; a broken compiler falls back
 * to the interpreter with the same results and no error. */
static void test_modes_and_fallback(void) {
    lx_jit_stats before = lx_jit_stats_get();
    CHECK(before.compiled + before.loaded > 0); /* the tests above did compile */
    CHECK(lx_jit_stats_get().failed == 0);
    program p = {0, 0, 8, LX_FLOAT32};
    lx_array small = make_input((const int[]){100}, 1, LX_FLOAT32, 61);
    lx_closure *c = lx_compile(fn_program, &p, p.count, 0);
    lx_jit_set_mode(LX_JIT_HOT);
    int64_t runs = lx_fused_native_runs();
    lx_array o[8];
    for (int i = 0; i < 20; i++) {
        CHECK_OK(lx_call(c, &small, 1, o, 8));
        CHECK_OK(lx_eval_n(o, 8));
    }
    CHECK(lx_fused_native_runs() == runs); /* 100 elements: never worth a compiler run */
    lx_closure_free(c);

    /* no compiler (the name is part of the cache key, so no cached object is found either):
     * the interpreter runs, with the same bytes; native code stays off for the process, so
     * this comes last */
    setenv("LX_JIT_CC", "/nonexistent/lx-test-cc", 1);
    lx_jit_set_mode(LX_JIT_ALWAYS);
    program q = {0, 16, 8, LX_FLOAT64};
    lx_array xd = make_input((const int[]){77}, 1, LX_FLOAT64, 62);
    c = lx_compile(fn_program, &q, q.count, 0);
    runs = lx_fused_native_runs();
    int64_t failed = lx_jit_stats_get().failed;
    lx_array got[8], want[8];
    call_kept(c, &xd, 1, got, 8);
    CHECK(lx_fused_native_runs() == runs);
    CHECK(lx_jit_stats_get().failed == failed + 1);
    bool prev = lx_set_compile_enabled(false);
    call_kept(c, &xd, 1, want, 8);
    lx_set_compile_enabled(prev);
    for (int j = 0; j < 8; j++) {
        CHECK(same_bytes(got[j], want[j]));
        free_all(got[j], want[j]);
    }
    lx_closure_free(c);
    free_all(small, xd);
    unsetenv("LX_JIT_CC");
}

/* A cache directory others may write into is not trusted: nothing is stored or loaded there
 * (a private temporary directory is used), and native code still runs. In a child process,
 * since the directory is chosen once per process. */
static const char *g_self;

static void test_untrusted_cache_dir(void) {
    const char *tmp = getenv("LX_TEST_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/jit-open-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    CHECK(mkdir(dir, 0700) == 0 && chmod(dir, 0777) == 0);
    int rc = t_run_self(g_self, "--untrusted-child",
                        (const char *const[]){"LX_JIT_CACHE", dir, "LX_JIT", "always", NULL});
    CHECK_MSG(rc == 0, "child exit %d", rc);
    CHECK(rmdir(dir) == 0); /* still empty */
}

/* LX_JIT=0 in the environment: a program well past the compile threshold stays interpreted. */
static void test_env_off(void) {
    int rc = t_run_self(g_self, "--off-child", (const char *const[]){"LX_JIT", "0", NULL});
    CHECK_MSG(rc == 0, "child exit %d", rc);
}

static int off_child(void) {
    if (lx_jit_mode_get() != LX_JIT_OFF) return 1;
    program p = {0, 0, 2, LX_FLOAT32};
    lx_array x = make_input((const int[]){1 << 20}, 1, LX_FLOAT32, 72);
    lx_closure *c = lx_compile(fn_program, &p, p.count, 0);
    for (int i = 0; i < 2; i++) {
        lx_array o[2];
        if (lx_call(c, &x, 1, o, 2) != LX_OK || lx_eval_n(o, 2) != LX_OK) return 2;
    }
    if (lx_fused_native_runs() != 0 || lx_jit_stats_get().compiled != 0) return 3;
    lx_closure_free(c);
    return 0;
}

static int untrusted_child(void) {
    program p = {0, 0, 2, LX_FLOAT32};
    lx_array x = make_input((const int[]){2000}, 1, LX_FLOAT32, 71);
    lx_closure *c = lx_compile(fn_program, &p, p.count, 0);
    lx_array o[2];
    if (lx_call(c, &x, 1, o, 2) != LX_OK || lx_eval_n(o, 2) != LX_OK) return 1;
    if (lx_fused_native_runs() != 1) return 2;
    lx_closure_free(c);
    return 0;
}

/* A program made hot by repetition (4096 elements a call: the 128th call reaches 2^19)
 * compiles on the background thread: its calls keep interpreting with the same bytes while the
 * compiler runs, and native code takes over once it is built. The "compiler" is a script that
 * waits for a gate file before running cc, so the test knows the compile is still pending
 * without timing anything. In a child, with its own cache directory and compiler. */
static void test_background_compile(void) {
    const char *tmp = getenv("LX_TEST_TMP");
    char dir[512], script[600];
    snprintf(dir, sizeof dir, "%s/jit-bg-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(script, sizeof script, "%s/cc.sh", dir);
    CHECK(mkdir(dir, 0700) == 0);
    FILE *f = fopen(script, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "#!/bin/sh\nwhile [ ! -e '%s/gate' ]; do sleep 0.02; done\nexec cc \"$@\"\n", dir);
    fclose(f);
    CHECK(chmod(script, 0700) == 0);
    int rc = t_run_self(g_self, "--background-child",
                        (const char *const[]){"LX_JIT_CACHE", dir, "LX_JIT_CC", script, NULL});
    CHECK_MSG(rc == 0, "child exit %d", rc);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char path[1100];
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
                unlink(path);
            }
        closedir(d);
    }
    CHECK(rmdir(dir) == 0);
}

static int background_child(void) {
    program p = {0, 0, 2, LX_FLOAT32};
    lx_array x = make_input((const int[]){4096}, 1, LX_FLOAT32, 81);
    lx_closure *c = lx_compile(fn_program, &p, p.count, 0);
    lx_array want[2], got[2];
    bool prev = lx_set_compile_enabled(false);
    if (lx_call(c, &x, 1, want, 2) != LX_OK) return 1;
    lx_keep(want[0], want[1]);
    if (lx_eval_n(want, 2) != LX_OK) return 1;
    lx_set_compile_enabled(prev);
    for (int i = 0; i < 128 + 16; i++) { /* past the threshold: compiling, still interpreted */
        if (lx_call(c, &x, 1, got, 2) != LX_OK || lx_eval_n(got, 2) != LX_OK) return 2;
        if (!same_bytes(got[0], want[0]) || !same_bytes(got[1], want[1])) return 3;
        lx_free(got[0]);
        lx_free(got[1]);
    }
    if (lx_fused_native_runs() != 0 || lx_fused_native_background_compiles() != 0) return 4;
    char gate[600];
    snprintf(gate, sizeof gate, "%s/gate", getenv("LX_JIT_CACHE"));
    FILE *f = fopen(gate, "w");
    if (!f) return 5;
    fclose(f);
    if (!lx_fused_native_wait_idle(300.0)) return 6;
    if (lx_fused_native_background_compiles() != 1 || lx_jit_stats_get().compiled != 1) return 7;
    if (lx_call(c, &x, 1, got, 2) != LX_OK || lx_eval_n(got, 2) != LX_OK) return 8;
    if (lx_fused_native_runs() != 1) return 9;
    if (!same_bytes(got[0], want[0]) || !same_bytes(got[1], want[1])) return 10;
    lx_closure_free(c);
    return 0;
}

int main(int argc, char **argv) {
    g_self = argv[0];
    if (argc > 1 && strcmp(argv[1], "--background-child") == 0) return background_child();
    if (argc > 1 && strcmp(argv[1], "--untrusted-child") == 0) return untrusted_child();
    if (argc > 1 && strcmp(argv[1], "--off-child") == 0) return off_child();
    RUN_TEST(test_untrusted_cache_dir);
    RUN_TEST(test_env_off);
    RUN_TEST(test_background_compile);
    RUN_TEST(test_unary_all_dtypes);
    RUN_TEST(test_binary_all_dtypes);
    RUN_TEST(test_where_casts_broadcast_strided);
    RUN_TEST(test_gelu10_large);
    RUN_TEST(test_modes_and_fallback);
    lx_jit_stats s = lx_jit_stats_get();
    printf("jit: %lld compiled, %lld loaded from the cache, %lld failed; %lld native runs\n",
           (long long)s.compiled, (long long)s.loaded, (long long)s.failed,
           (long long)lx_fused_native_runs());
    return test_finish();
}
