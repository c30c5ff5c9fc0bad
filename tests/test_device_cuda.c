/*
 * test_device_cuda.c -- the CUDA device module (liblx-cuda.so, src/backend/cuda/) serving
 * LX_GPU, loaded through LX_DEVICE_MODULES as CTest sets it.
 *
 * Skipped (77, with the reason) when LX_DEVICE_MODULES does not name the module, when the
 * module is absent, or when lx finds no usable GPU through it (no driver, no device: lx info's
 * line says why) -- so on a machine without a GPU it checks only that lx says why and stays on
 * the CPU.
 *
 * With a GPU:
 *   ops      every primitive the module computes, built from the public ops on random inputs
 *            in float32, float16 and bfloat16 (and integer/bool where the op has them), with
 *            strided, transposed, broadcast and offset inputs, on the CPU and on the GPU, and
 *            compared element by element: |gpu - cpu| <= atol + rtol |cpu|, the tolerances per
 *            case below in units of the dtype's epsilon (float32 2^-23, float16 2^-10,
 *            bfloat16 2^-7), integer, bool, index and data-movement results bit for bit. Each
 *            case also checks that its primitive ran on the GPU (the module's kernel counter);
 *            the FUSED cases run compiled closures, whose groups the module compiles with NVRTC.
 *   models   the fixture models (LX_FIXTURES) end to end with the GPU as the default device:
 *            greedy ids identical to the reference, logits within 1e-3 of each row's largest.
 *   gguf     the real model (LX_TEST_GGUF) when present: the same greedy tokens on the GPU as
 *            on the CPU for a short prompt.
 * Modes (argv[1]): all (default), ops, models, gguf.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "graph/prims.h"
#include "lx.h"
#include "test_util.h"

typedef uint64_t (*count_fn)(int prim);
static count_fn g_count;

static uint64_t gpu_count(int prim) { return g_count ? g_count(prim) : 0; }

static double elem(lx_dtype t, const unsigned char *p, size_t i) {
    size_t es = lx_dtype_size(t);
    const unsigned char *q = p + i * es;
    switch (t) {
#define X(E, T, S)                                                                         \
    case E: {                                                                              \
        T v;                                                                               \
        memcpy(&v, q, sizeof v);                                                           \
        return LX_TO_F64_##S(v);                                                           \
    }
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: return NAN;
    }
}

static double eps_of(lx_dtype t) {
    switch (t) {
    case LX_FLOAT16: return 0x1p-10;
    case LX_BFLOAT16: return 0x1p-7;
    case LX_FLOAT64: return 0x1p-52;
    default: return 0x1p-23;
    }
}

/* ---- inputs ------------------------------------------------------------------------------- */

#define NDATA 65536
static float g_a[NDATA], g_b[NDATA], g_pos[NDATA];
static int32_t g_int[NDATA];
static lx_dtype g_dt = LX_FLOAT32; /* the float dtype of the current run of the cases */

static void init_data(void) {
    t_seed(4242);
    for (int i = 0; i < NDATA; i++) {
        g_a[i] = (float)t_uniform(-2, 2);
        g_b[i] = (float)t_uniform(-2, 2);
        g_pos[i] = (float)t_uniform(0.05, 3);
        g_int[i] = t_int(-1000, 1000);
    }
}

/* float arrays of the current dtype from the pools (offset o into them) */
static lx_array A(const int *shape, int nd, int o) {
    return lx_astype(lx_array_f32(g_a + o, shape, nd), g_dt);
}
static lx_array B(const int *shape, int nd, int o) {
    return lx_astype(lx_array_f32(g_b + o, shape, nd), g_dt);
}
static lx_array P(const int *shape, int nd, int o) {
    return lx_astype(lx_array_f32(g_pos + o, shape, nd), g_dt);
}
#define SH(...) (int[]){__VA_ARGS__}, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int))

/* a transposed view [6, 5, 4] of a [4, 5, 6] array and a stepped slice: strided inputs */
static lx_array strided(lx_array x) {
    lx_array t = lx_transpose(x, (int[]){2, 1, 0}, 3);
    return lx_slice(t, (int[]){1, 0, 0}, (int[]){6, 5, 4}, (int[]){2, 1, 1}, 3); /* [3, 5, 4] */
}

/* ---- CPU against GPU ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    lx_array (*fn)(void);
    int prim;      /* must have run on the GPU (-1: none checked) */
    double k_rel;  /* tolerance in eps of the output dtype: rtol = k_rel eps */
    double k_abs;  /* atol = k_abs eps + a32 */
    bool floats;   /* run per float dtype (else once) */
    double a32;    /* absolute allowance for float32 accumulation in another order */
} op_case;

static void compare(const op_case *c) {
    char name[128];
    snprintf(name, sizeof name, "%s%s%s", c->name, c->floats ? " " : "",
             c->floats ? lx_dtype_name(g_dt) : "");
    lx_clear_error();
    CHECK_OK(lx_set_default_device(LX_CPU));
    lx_array cpu = c->fn();
    lx_status st = lx_eval(cpu);
    CHECK_MSG(st == LX_OK, "%s on the CPU: %s", name, lx_error_message());
    lx_clear_error();
    size_t n = lx_nbytes(cpu);
    lx_dtype dt = lx_dtype_of(cpu);
    unsigned char *want = calloc(1, n ? n : 1), *got = calloc(1, n ? n : 1);
    CHECK_OK(lx_read(cpu, want, n));
    int sc[LX_MAX_NDIM], ndc = lx_shape(cpu, sc);

    CHECK_OK(lx_set_default_device(LX_GPU));
    uint64_t before = c->prim >= 0 ? gpu_count(c->prim) : 0;
    lx_array gpu = c->fn();
    CHECK_MSG(lx_device_of(gpu) == LX_GPU, "%s: built with the GPU as default, the array is on "
              "device %d", name, (int)lx_device_of(gpu));
    st = lx_eval(gpu);
    CHECK_MSG(st == LX_OK, "%s on the GPU: %s", name, lx_error_message());
    lx_clear_error();
    int sg[LX_MAX_NDIM], ndg = lx_shape(gpu, sg);
    bool same = ndc == ndg && ndc >= 0 && memcmp(sc, sg, sizeof(int) * (size_t)ndc) == 0 &&
                lx_dtype_of(gpu) == dt && lx_nbytes(gpu) == n;
    CHECK_MSG(same, "%s: shape or dtype differ between CPU and GPU", name);
    if (c->prim >= 0)
        CHECK_MSG(gpu_count(c->prim) > before, "%s: no %s kernel ran on the GPU", name,
                  lx_prim_name(c->prim));
    if (st == LX_OK && same) {
        CHECK_OK(lx_read(gpu, got, n));
        size_t es = lx_dtype_size(dt), count = es ? n / es : 0, bad = 0;
        bool exact = !lx_dtype_is_float(dt) || (c->k_rel == 0 && c->k_abs == 0);
        double rtol = c->k_rel * eps_of(dt), atol = c->k_abs * eps_of(dt) + c->a32, worst = 0;
        for (size_t i = 0; i < count; i++) {
            double a = elem(dt, got, i), b = elem(dt, want, i);
            bool ok;
            if (exact) {
                ok = memcmp(got + i * es, want + i * es, es) == 0 || (isnan(a) && isnan(b));
            } else {
                ok = (isnan(a) && isnan(b)) || a == b || fabs(a - b) <= atol + rtol * fabs(b);
                double e = fabs(a - b) / (atol + rtol * fabs(b) + 1e-300);
                if (isfinite(e) && e > worst) worst = e;
            }
            if (!ok && bad++ < 4)
                fprintf(stderr, "  %s[%zu] (%s): gpu %.9g, cpu %.9g\n", name, i, lx_dtype_name(dt),
                        a, b);
        }
        printf("  %-28s %-8s %6zu elements: %s (largest error %.2f of the bound)\n", name,
               lx_dtype_name(dt), count, bad ? "FAIL" : "ok", exact ? 0.0 : worst);
        CHECK_MSG(bad == 0, "%s: %zu of %zu elements differ from the CPU's%s", name, bad, count,
                  exact ? " (bit for bit)" : "");
    }
    free(want);
    free(got);
    lx_free(cpu);
    lx_free(gpu);
    lx_sweep();
}

/* ---- the cases -------------------------------------------------------------------------- */

static lx_array f_unary_a(void) {
    lx_array x = strided(A(SH(4, 5, 6), 0)), p = strided(P(SH(4, 5, 6), 7));
    lx_array r = lx_add(lx_exp(x), lx_log(p));
    r = lx_add(r, lx_tanh(x));
    r = lx_add(r, lx_sigmoid(x));
    r = lx_add(r, lx_silu(x));
    r = lx_add(r, lx_sqrt(p));
    return lx_add(r, lx_rsqrt(p));
}
static lx_array f_unary_b(void) {
    lx_array x = strided(A(SH(4, 5, 6), 3));
    lx_array r = lx_add(lx_gelu(x), lx_erf(x));
    r = lx_add(r, lx_sin(x));
    r = lx_add(r, lx_cos(x));
    r = lx_add(r, lx_square(x));
    r = lx_sub(r, lx_abs(x));
    return lx_add(r, lx_neg(lx_floor(lx_mul_scalar(x, 3.0))));
}
static lx_array f_unary_one(lx_array (*op)(lx_array), int o) {
    return op(strided(A(SH(4, 5, 6), o)));
}
static lx_array f_exp(void) { return f_unary_one(lx_exp, 11); }
static lx_array f_tanh(void) { return f_unary_one(lx_tanh, 12); }
static lx_array f_erf(void) { return f_unary_one(lx_erf, 13); }
static lx_array f_silu(void) { return f_unary_one(lx_silu, 14); }
static lx_array f_gelu(void) { return f_unary_one(lx_gelu, 15); }
static lx_array f_isnan(void) { return lx_isnan(lx_log(A(SH(7, 9), 16))); } /* NaN below 0 */
static lx_array f_binary(void) {
    lx_array x = A(SH(3, 5, 4), 0);
    lx_array row = B(SH(1, 1, 4), 100), col = P(SH(3, 1, 1), 200);
    lx_array r = lx_add(lx_mul(x, row), col);
    r = lx_sub(r, lx_div(x, col));
    r = lx_maximum(r, lx_minimum(x, row));
    return lx_add(r, lx_pow(col, x));
}
static lx_array f_binary_strided(void) {
    return lx_mul(strided(A(SH(4, 5, 6), 0)), strided(B(SH(4, 5, 6), 1)));
}
static lx_array f_compare_where(void) {
    lx_array x = strided(A(SH(4, 5, 6), 0)), y = B(SH(1, 5, 4), 9);
    lx_array c = lx_logical_and(lx_greater(x, y), lx_less_equal(x, lx_abs(y)));
    return lx_where(c, x, lx_neg(y));
}
static lx_array f_remainder(void) {
    lx_array x = A(SH(5, 7), 0), y = P(SH(5, 7), 50);
    return lx_add(lx_remainder(x, y), lx_floor_divide(x, y));
}
static lx_array f_int_ops(void) {
    lx_array a = lx_array_i32(g_int, (int[]){8, 9}, 2), b = lx_array_i32(g_int + 100, (int[]){1, 9}, 2);
    lx_array r = lx_add(lx_mul(a, b), lx_floor_divide(a, lx_add_scalar(lx_abs(b), 1.0)));
    r = lx_sub(r, lx_remainder(a, lx_add_scalar(lx_abs(b), 1.0)));
    return lx_maximum(r, lx_neg(a));
}
/* compiled closures: their elementwise groups become FUSED nodes, which the module runs as
 * kernels generated for the program and compiled by NVRTC (src/backend/cuda/fused_cuda.h) */
static lx_status fused_swiglu(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    (void)ctx, (void)n_in, (void)n_out;
    out[0] = lx_add(lx_mul(lx_silu(in[0]), in[1]), lx_mul_scalar(lx_tanh(in[0]), 0.5));
    return lx_is_null(out[0]) ? lx_error() : LX_OK;
}
static lx_status fused_select(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    (void)ctx, (void)n_in, (void)n_out;
    out[0] = lx_where(lx_greater(in[0], in[1]), lx_exp(in[0]), lx_neg(in[1]));
    out[1] = lx_astype(lx_less(in[0], in[1]), LX_INT32); /* a second output (PART views) */
    return lx_is_null(out[0]) || lx_is_null(out[1]) ? lx_error() : LX_OK;
}
static lx_status call_compiled(lx_fn fn, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_closure *cl = lx_compile(fn, NULL, n_out, 0);
    lx_status st = cl ? lx_call(cl, in, n_in, out, n_out) : lx_error();
    lx_closure_free(cl); /* the call's nodes are its own */
    return st;
}
static lx_array f_fused(void) { /* a strided input and a broadcast one */
    lx_array in[2] = {strided(A(SH(4, 5, 6), 0)), B(SH(1, 5, 4), 9)}, out[1];
    return call_compiled(fused_swiglu, in, 2, out, 1) == LX_OK ? out[0] : LX_NULL_ARRAY;
}
static lx_array f_fused_outputs(void) {
    lx_array in[2] = {A(SH(3, 5, 4), 0), strided(B(SH(4, 5, 6), 1))}, out[2];
    if (call_compiled(fused_select, in, 2, out, 2) != LX_OK) return LX_NULL_ARRAY;
    return lx_add(out[0], lx_astype(out[1], g_dt));
}
static lx_array f_astype_chain(void) {
    lx_array a = lx_mul_scalar(lx_array_f32(g_a, (int[]){4, 5, 6}, 3), 40.0);
    static const lx_dtype chain[] = {LX_FLOAT16, LX_INT32, LX_UINT8, LX_INT8, LX_BFLOAT16,
                                     LX_FLOAT64, LX_INT64, LX_UINT16, LX_INT16, LX_UINT32,
                                     LX_UINT64, LX_BOOL, LX_FLOAT32};
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) a = lx_astype(a, chain[i]);
    return a;
}
static lx_array f_astype_strided(void) { /* float -> half and int, transposed */
    lx_array x = lx_mul_scalar(strided(lx_array_f32(g_a, (int[]){4, 5, 6}, 3)), 100.0);
    lx_array h = lx_astype(x, LX_FLOAT16), b = lx_astype(x, LX_BFLOAT16), i = lx_astype(x, LX_INT16);
    return lx_add(lx_add(lx_astype(h, LX_FLOAT32), lx_astype(b, LX_FLOAT32)), lx_astype(i, LX_FLOAT32));
}
static lx_array f_contiguous(void) { return lx_contiguous(strided(A(SH(4, 5, 6), 0))); }
static lx_array f_full(void) {
    return lx_add(lx_full(SH(4, 5), 1.5, g_dt), lx_ones(SH(4, 5), g_dt));
}
static lx_array f_full_int(void) { return lx_full(SH(3, 7), -3.0, LX_INT16); }
static lx_array f_arange(void) {
    return lx_add(lx_astype(lx_arange(0, 40, 1, LX_INT32), LX_FLOAT32), lx_arange(-2.5, 7.5, 0.25, LX_FLOAT32));
}
static lx_array f_arange_int(void) { return lx_arange(-7, 300, 3, LX_INT64); }
static lx_array f_matmul(void) {
    return lx_matmul(A(SH(3, 17, 33), 0), B(SH(33, 19), 500)); /* [3, 17, 33] @ [33, 19] */
}
static lx_array f_matmul_t(void) { /* both operands transposed views */
    lx_array a = lx_transpose(A(SH(2, 33, 17), 0), (int[]){0, 2, 1}, 3); /* [2, 17, 33] */
    lx_array b = lx_transpose(B(SH(19, 33), 100), NULL, 0);             /* [33, 19] */
    return lx_matmul(a, b);
}
static lx_array f_matmul_bcast(void) { /* [2, 1, 9, 16] @ [1, 3, 16, 5] */
    return lx_matmul(A(SH(2, 1, 9, 16), 0), B(SH(1, 3, 16, 5), 300));
}
static lx_array f_matmul_strided(void) { /* a stepped slice: no layout cuBLAS reads */
    lx_array a = lx_slice(A(SH(10, 64), 0), (int[]){0, 0}, (int[]){10, 64}, (int[]){1, 2}, 2);
    return lx_matmul(a, B(SH(32, 24), 700));
}
static lx_array f_matvec(void) { return lx_matmul(A(SH(1, 96), 0), B(SH(96, 80), 1000)); }
static lx_array f_addmm(void) {
    return lx_addmm(B(SH(1, 7), 50), A(SH(20, 6), 0), B(SH(6, 7), 200), 0.5f, 2.0f);
}
static lx_array f_sum(void) {
    lx_array x = strided(A(SH(4, 5, 6), 0));
    return lx_add(lx_sum(x, 1, true), lx_mean(x, 2, true));
}
static lx_array f_sum_big(void) { return lx_sum(A(SH(3, 2000), 0), -1, false); }
static lx_array f_max_min(void) {
    lx_array x = strided(A(SH(4, 5, 6), 0));
    return lx_sub(lx_max(x, 0, true), lx_min(x, 2, true));
}
static lx_array f_prod_lse(void) {
    lx_array x = A(SH(6, 7), 0);
    return lx_add(lx_prod(lx_mul_scalar(x, 0.5), 1, false), lx_logsumexp(x, 1, false));
}
static lx_array f_all_any(void) {
    lx_array c = lx_greater(A(SH(6, 7), 0), lx_scalar_f32(-1.5f));
    return lx_logical_or(lx_all(c, 1, false), lx_any(lx_logical_not(c), 1, false));
}
static lx_array f_int_sum(void) {
    lx_array a = lx_array_i32(g_int, (int[]){9, 11}, 2);
    return lx_add(lx_sum(a, 0, false), lx_max(a, 0, false));
}
static lx_array f_argmax(void) {
    lx_array x = strided(A(SH(4, 5, 6), 0));
    return lx_add(lx_argmax(x, -1, false), lx_argmin(x, 0, false));
}
static lx_array f_argmax_int(void) {
    return lx_argmax(lx_array_i32(g_int, (int[]){7, 300}, 2), 1, false);
}
static lx_array f_softmax(void) { return lx_softmax(strided(A(SH(4, 5, 6), 0)), -1); }
static lx_array f_softmax_axis(void) { return lx_softmax(lx_mul_scalar(A(SH(4, 300, 3), 0), 4.0), 1); }
static lx_array f_log_softmax(void) { return lx_log_softmax(A(SH(5, 77), 0), -1); }
static lx_array f_rms_norm(void) {
    return lx_rms_norm(strided(A(SH(4, 5, 6), 0)), B(SH(4), 40), 1e-5f);
}
static lx_array f_rms_norm_nw(void) { return lx_rms_norm(A(SH(3, 576), 0), LX_NULL_ARRAY, 1e-6f); }
static lx_array f_rope(void) {
    lx_array x = lx_transpose(A(SH(2, 7, 3, 16), 0), (int[]){0, 2, 1, 3}, 4); /* [2, 3, 7, 16] */
    return lx_rope(x, 16, false, 10000.0f, 1.0f, 5);
}
static lx_array f_rope_trad(void) {
    return lx_rope(A(SH(1, 2, 9, 12), 0), 8, true, 500.0f, 0.5f, 1000);
}
static lx_array f_rope_at(void) {
    int32_t off = 37;
    return lx_rope_at(A(SH(1, 4, 1, 64), 0), 64, false, 100000.0f, 1.0f,
                      lx_array_i32(&off, (int[]){1}, 1));
}
static lx_array f_sdpa_causal(void) { /* GQA 4 / 2, prefill */
    lx_array q = A(SH(1, 4, 9, 16), 0), k = B(SH(1, 2, 9, 16), 700), v = A(SH(1, 2, 9, 16), 1500);
    return lx_sdpa(q, k, v, 0.25f, true, LX_NULL_ARRAY);
}
static lx_array f_sdpa_decode(void) { /* one query over 300 keys (3 chunks), transposed k */
    lx_array q = A(SH(2, 4, 1, 32), 0);
    lx_array k = lx_transpose(B(SH(2, 300, 2, 32), 0), (int[]){0, 2, 1, 3}, 4);
    lx_array v = lx_transpose(A(SH(2, 300, 2, 32), 100), (int[]){0, 2, 1, 3}, 4);
    return lx_sdpa(q, k, v, 0.17f, false, LX_NULL_ARRAY);
}
static lx_array f_sdpa_mask(void) {
    lx_array q = A(SH(1, 2, 5, 8), 0), k = B(SH(1, 2, 11, 8), 80), v = A(SH(1, 2, 11, 8), 300);
    lx_array mb = lx_greater(lx_array_f32(g_b + 900, (int[]){1, 1, 5, 11}, 4), lx_scalar_f32(-1.0f));
    lx_array mf = lx_mul_scalar(B(SH(1, 2, 5, 11), 1200), 2.0);
    return lx_add(lx_sdpa(q, k, v, 0.3f, false, mb), lx_sdpa(q, k, v, 0.3f, true, mf));
}
static lx_array f_take(void) {
    int32_t idx[6] = {3, 0, -1, 2, 1, 3};
    lx_array i = lx_array_i32(idx, (int[]){2, 3}, 2);
    return lx_add(lx_take(strided(A(SH(4, 5, 6), 0)), i, 2), lx_scalar_f32(0.0f));
}
static lx_array f_take_rows(void) { /* an embedding lookup */
    int32_t idx[5] = {7, 0, 99, 7, 42};
    return lx_take(A(SH(100, 24), 0), lx_array_i32(idx, (int[]){1, 5}, 2), 0);
}
static lx_array f_slice_update(void) {
    lx_array upd = strided(B(SH(4, 5, 6), 0)); /* [3, 5, 4] */
    return lx_slice_update(A(SH(5, 5, 9), 0), upd, (int[]){1, 0, 1}, (int[]){4, 5, 9},
                           (int[]){1, 1, 2}, 3);
}
static lx_array f_concat(void) {
    lx_array parts[3] = {A(SH(4, 2, 6), 0), strided(B(SH(4, 5, 6), 0)), P(SH(4, 1, 6), 0)};
    parts[1] = lx_transpose(parts[1], (int[]){2, 1, 0}, 3); /* [4, 5, 3] */
    parts[1] = lx_pad(parts[1], (int[]){0, 0, 0}, (int[]){0, 0, 3}, 3, 0.0); /* [4, 5, 6] */
    return lx_concatenate(parts, 3, 1);
}
static lx_array qmm(int rows, int K, int N, int gs, int bits) {
    lx_array w = lx_astype(lx_array_f32(g_a, (int[]){N, K}, 2), g_dt);
    lx_array wq, sc, bi;
    if (lx_quantize(w, gs, bits, &wq, &sc, &bi) != LX_OK) return LX_NULL_ARRAY;
    lx_array x = lx_astype(lx_array_f32(g_b, (int[]){rows, K}, 2), g_dt);
    return lx_quantized_matmul(x, wq, sc, bi, true, gs, bits);
}
static lx_array f_qmm_gemv4(void) { return qmm(1, 256, 40, 64, 4); }
static lx_array f_qmm_gemv8(void) { return qmm(3, 128, 33, 32, 8); }
static lx_array f_qmm_gemm4(void) { return qmm(20, 256, 48, 128, 4); }
static lx_array f_qmm_gemm8(void) { return qmm(17, 192, 24, 64, 8); }
static lx_array f_chain(void) { /* a model-like chain: norm, matmul, rope, softmax, silu */
    lx_array x = A(SH(1, 6, 32), 0);
    lx_array h = lx_rms_norm(x, P(SH(32), 0), 1e-5f);
    h = lx_matmul(h, B(SH(32, 64), 100));
    h = lx_reshape(h, (int[]){1, 6, 4, 16}, 4);
    h = lx_transpose(h, (int[]){0, 2, 1, 3}, 4);
    h = lx_rope(h, 16, false, 10000.0f, 1.0f, 0);
    h = lx_softmax(h, -1);
    return lx_mul(lx_silu(h), h);
}

/* tolerances: rtol = k_rel eps, atol = k_abs eps + a32 (eps of the output dtype) */
static const op_case cases[] = {
    /* elementwise: the CPU's per-element definitions (the GPU's fma where the CPU variant may
     * round twice: a few ulp per op); CUDA's libm in pow and fmod; chains add terms of either
     * sign, so the absolute allowance is that of the terms (up to ~8) */
    {"unary exp/log/tanh/..", f_unary_a, LX_PRIM_UNARY, 8, 64, true, 0},
    {"unary gelu/erf/sin/..", f_unary_b, LX_PRIM_UNARY, 8, 64, true, 0},
    {"exp", f_exp, LX_PRIM_UNARY, 4, 4, true, 0},
    {"tanh", f_tanh, LX_PRIM_UNARY, 4, 4, true, 0},
    {"erf", f_erf, LX_PRIM_UNARY, 8, 8, true, 0},
    {"silu", f_silu, LX_PRIM_UNARY, 4, 4, true, 0},
    {"gelu", f_gelu, LX_PRIM_UNARY, 8, 8, true, 0},
    {"isnan", f_isnan, LX_PRIM_UNARY, 0, 0, true, 0},
    {"binary broadcast", f_binary, LX_PRIM_BINARY, 8, 64, true, 0},
    {"binary strided", f_binary_strided, LX_PRIM_BINARY, 0, 0, true, 0},
    {"compare + where", f_compare_where, LX_PRIM_WHERE, 0, 0, true, 0},
    {"remainder floor_divide", f_remainder, LX_PRIM_BINARY, 4, 4, true, 0},
    {"int32 arithmetic", f_int_ops, LX_PRIM_BINARY, 0, 0, false, 0},
    /* the same definitions in one generated kernel per program (compiled closures) */
    {"fused silu*y + tanh/2", f_fused, LX_PRIM_FUSED, 8, 64, true, 0},
    {"fused where + 2 outputs", f_fused_outputs, LX_PRIM_FUSED, 4, 4, true, 0},
    /* data movement and conversions: bit for bit */
    {"astype chain", f_astype_chain, LX_PRIM_COPY, 0, 0, false, 0},
    {"astype strided", f_astype_strided, LX_PRIM_COPY, 0, 0, false, 0},
    {"contiguous", f_contiguous, LX_PRIM_COPY, 0, 0, true, 0},
    {"full", f_full, LX_PRIM_FULL, 0, 0, true, 0},
    {"full int16", f_full_int, LX_PRIM_FULL, 0, 0, false, 0},
    {"arange", f_arange, LX_PRIM_ARANGE, 0, 0, false, 0},
    {"arange int64", f_arange_int, LX_PRIM_ARANGE, 0, 0, false, 0},
    /* products of K = 16..96 terms summed in another order in float32 (cuBLAS without TF32;
     * halves accumulate in float32 and round once, as the CPU: a rounding flip, 1 ulp) */
    {"matmul batched", f_matmul, LX_PRIM_MATMUL, 4, 4, true, 2e-4},
    {"matmul transposed", f_matmul_t, LX_PRIM_MATMUL, 4, 4, true, 2e-4},
    {"matmul broadcast batch", f_matmul_bcast, LX_PRIM_MATMUL, 4, 4, true, 2e-4},
    {"matmul strided", f_matmul_strided, LX_PRIM_MATMUL, 4, 4, true, 2e-4},
    {"matvec", f_matvec, LX_PRIM_MATMUL, 4, 4, true, 2e-4},
    {"addmm", f_addmm, LX_PRIM_MATMUL, 4, 4, true, 2e-4},
    /* reductions: float64 accumulation on the GPU, float32 blocks on the CPU (their error:
     * up to 37 2^-24 sum|x|) */
    {"sum mean strided", f_sum, LX_PRIM_REDUCE, 4, 4, true, 1e-5},
    {"sum 2000", f_sum_big, LX_PRIM_REDUCE, 4, 4, true, 5e-3},
    {"max min", f_max_min, LX_PRIM_REDUCE, 0, 0, true, 0},
    {"prod logsumexp", f_prod_lse, LX_PRIM_REDUCE, 8, 8, true, 1e-5},
    {"all any", f_all_any, LX_PRIM_REDUCE, 0, 0, true, 0},
    {"int32 sum max", f_int_sum, LX_PRIM_REDUCE, 0, 0, false, 0},
    {"argmax argmin", f_argmax, LX_PRIM_ARG_REDUCE, 0, 0, true, 0},
    {"argmax int32", f_argmax_int, LX_PRIM_ARG_REDUCE, 0, 0, false, 0},
    /* rows: float32 compute with the CPU's exp, sums in another order */
    {"softmax strided", f_softmax, LX_PRIM_SOFTMAX, 8, 8, true, 1e-6},
    {"softmax axis 1", f_softmax_axis, LX_PRIM_SOFTMAX, 8, 8, true, 1e-6},
    {"log_softmax", f_log_softmax, LX_PRIM_SOFTMAX, 8, 8, true, 1e-5},
    {"rms_norm strided", f_rms_norm, LX_PRIM_RMS_NORM, 8, 8, true, 0},
    {"rms_norm no weight", f_rms_norm_nw, LX_PRIM_RMS_NORM, 8, 8, true, 0},
    /* rope: float64 angles on both; a cos - b sin may be one fma or two roundings */
    {"rope", f_rope, LX_PRIM_ROPE, 8, 32, true, 0},
    {"rope traditional", f_rope_trad, LX_PRIM_ROPE, 8, 32, true, 0},
    {"rope offset array", f_rope_at, LX_PRIM_ROPE, 8, 32, true, 0},
    /* attention: float32, an online softmax over other blocks of keys than the CPU's */
    {"sdpa causal gqa", f_sdpa_causal, LX_PRIM_SDPA, 16, 16, true, 1e-5},
    {"sdpa decode 300 keys", f_sdpa_decode, LX_PRIM_SDPA, 16, 16, true, 1e-5},
    {"sdpa masks", f_sdpa_mask, LX_PRIM_SDPA, 16, 16, true, 1e-5},
    {"take", f_take, LX_PRIM_TAKE, 0, 0, true, 0},
    {"take rows", f_take_rows, LX_PRIM_TAKE, 0, 0, true, 0},
    {"slice_update", f_slice_update, LX_PRIM_SLICE_UPDATE, 0, 0, true, 0},
    {"concatenate", f_concat, LX_PRIM_CONCATENATE, 0, 0, true, 0},
    /* quantized: float32 accumulation of K = 128..256 products in another order; for halves
     * the GPU's few-row kernel does not round scale * q to the dtype as the CPU (MLX) does */
    {"qmm gemv 4-bit g64", f_qmm_gemv4, LX_PRIM_QUANTIZED_MATMUL, 8, 32, true, 5e-4},
    {"qmm gemv 8-bit g32", f_qmm_gemv8, LX_PRIM_QUANTIZED_MATMUL, 8, 32, true, 5e-4},
    {"qmm gemm 4-bit g128", f_qmm_gemm4, LX_PRIM_QUANTIZED_MATMUL, 8, 32, true, 5e-4},
    {"qmm gemm 8-bit g64", f_qmm_gemm8, LX_PRIM_QUANTIZED_MATMUL, 8, 32, true, 5e-4},
    {"model-like chain", f_chain, LX_PRIM_ROPE, 64, 64, true, 1e-4},
};

static void test_ops(void) {
    static const lx_dtype floats[] = {LX_FLOAT32, LX_FLOAT16, LX_BFLOAT16};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int nd = cases[i].floats ? 3 : 1;
        for (int d = 0; d < nd; d++) {
            g_dt = floats[d];
            compare(&cases[i]);
        }
    }
    g_dt = LX_FLOAT32;
    CHECK_OK(lx_synchronize());
}

/* ---- the fixture models (as tests/test_model.c, the GPU the default device) --------------- */




static void run_fixture(const char *name, double tol) {
    const char *dir = t_fixture(name);
    char path[1200];
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    CHECK_OK(lx_set_default_device(LX_CPU));
    lx_weights *rw = lx_load(path);
    if (!rw) {
        printf("  %s: no reference (%s): skipped\n", name, lx_error_message());
        lx_clear_error();
        return;
    }
    lx_array pa = lx_astype(lx_weights_get(rw, "prompt_ids"), LX_INT32);
    lx_array oa = lx_astype(lx_weights_get(rw, "output_ids"), LX_INT32);
    lx_array la = lx_weights_get(rw, "logits");
    lx_keep(pa, oa);
    const int32_t *prompt = lx_data(pa), *output = lx_data(oa);
    const float *logits = lx_data(la);
    int n_prompt = (int)lx_size(pa), n_output = (int)lx_size(oa);
    int rows = lx_dim(la, 0), vocab = lx_dim(la, 1);
    CHECK(prompt && output && logits);
    CHECK_OK(lx_set_default_device(LX_GPU));
    uint64_t mm0 = gpu_count(LX_PRIM_MATMUL) + gpu_count(LX_PRIM_QUANTIZED_MATMUL);
    uint64_t sd0 = gpu_count(LX_PRIM_SDPA);
    lx_model *m = prompt && output && logits ? lx_model_load(dir) : NULL;
    CHECK_MSG(m != NULL, "%s on the GPU: lx_model_load: %s", name, lx_error_message());
    lx_clear_error();
    if (m) {
        int chunks[2] = {512, 7};
        for (int c = 0; c < 2; c++) {
            lx_session *s = lx_session_new(m, 0);
            t_gen_collect got = {0};
            lx_gen_params p = lx_gen_params_default();
            p.max_tokens = n_output;
            p.ignore_eos = true;
            p.prefill_chunk = chunks[c];
            p.on_token = t_on_token;
            p.on_logits = t_on_logits;
            p.user = &got;
            lx_gen_stats st;
            double t0 = t_now_s();
            lx_status gs = lx_session_generate(s, prompt, n_prompt, &p, &st);
            double t1 = t_now_s();
            CHECK_MSG(gs == LX_OK, "%s (chunk %d) on the GPU: lx_session_generate: %s", name,
                      chunks[c], lx_error_message());
            lx_clear_error();
            CHECK_MSG(got.n == n_output, "%s: %d tokens, %d expected", name, got.n, n_output);
            int first_diff = -1;
            for (int i = 0; i < got.n && i < n_output; i++)
                if (got.ids[i] != output[i] && first_diff < 0) first_diff = i;
            CHECK_MSG(first_diff < 0, "%s (chunk %d) on the GPU: greedy token %d is %d, the "
                      "reference gives %d", name, chunks[c], first_diff,
                      first_diff >= 0 ? got.ids[first_diff] : 0,
                      first_diff >= 0 ? output[first_diff] : 0);
            CHECK_MSG(got.n_rows == (size_t)rows, "%s: %zu logits rows, %d expected", name,
                      got.n_rows, rows);
            double worst = 0;
            int worst_row = -1;
            for (int r = 0; r < rows && (size_t)r < got.n_rows; r++) {
                double e = t_row_rel_err(got.rows + (size_t)r * vocab, logits + (size_t)r * vocab,
                                       vocab);
                if (isnan(e) || e > worst) {
                    worst = e;
                    worst_row = r;
                }
                if (isnan(worst)) break;
            }
            printf("  %s chunk %d on the GPU: %d/%d greedy ids as the reference, largest logits "
                   "error %.3g (row %d), bound %.3g, %.1f ms\n", name, chunks[c],
                   first_diff < 0 ? got.n : first_diff, n_output, worst, worst_row, tol,
                   (t1 - t0) * 1e3);
            CHECK_MSG(!isnan(worst) && worst <= tol, "%s on the GPU: logits row %d differs by "
                      "%.3g of its largest value (bound %.3g)", name, worst_row, worst, tol);
            free(got.rows);
            lx_session_free(s);
        }
        CHECK_MSG(gpu_count(LX_PRIM_MATMUL) + gpu_count(LX_PRIM_QUANTIZED_MATMUL) > mm0,
                  "%s: no product of the model ran on the GPU", name);
        CHECK_MSG(gpu_count(LX_PRIM_SDPA) > sd0, "%s: no attention ran on the GPU", name);
        lx_model_free(m);
    }
    lx_free(pa);
    lx_free(oa);
    lx_weights_free(rw);
    lx_sweep();
    CHECK_OK(lx_synchronize());
}

static void test_tiny_llama(void) { run_fixture("tiny-llama-f32", 1e-3); }
static void test_tiny_qwen3(void) { run_fixture("tiny-qwen3-bf16", 1e-3); }

/* ---- the real model: the CPU's greedy tokens on the GPU ----------------------------------- */

static int greedy(lx_device dev, const char *path, const int32_t *prompt, int n_prompt,
                  int32_t *out, int max, double *ms) {
    CHECK_OK(lx_set_default_device(dev));
    lx_model *m = lx_model_load(path);
    CHECK_MSG(m != NULL, "%s on device %d: %s", path, (int)dev, lx_error_message());
    if (!m) return 0;
    lx_session *s = lx_session_new(m, 0);
    t_gen_collect got = {0};
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = max;
    p.ignore_eos = true;
    p.on_token = t_on_token;
    p.user = &got;
    lx_gen_stats st;
    double t0 = t_now_s();
    lx_status gs = lx_session_generate(s, prompt, n_prompt, &p, &st);
    *ms = (t_now_s() - t0) * 1e3;
    CHECK_MSG(gs == LX_OK, "generate on device %d: %s", (int)dev, lx_error_message());
    memcpy(out, got.ids, sizeof(int32_t) * (size_t)got.n);
    lx_session_free(s);
    lx_model_free(m);
    lx_sweep();
    return got.n;
}

static void test_gguf(void) {
    const char *path = getenv("LX_TEST_GGUF");
    if (!path || access(path, R_OK) != 0) {
        printf("  LX_TEST_GGUF (%s) is not there: the real model is skipped\n",
               path ? path : "unset");
        return;
    }
    CHECK_OK(lx_set_default_device(LX_CPU));
    lx_model *m = lx_model_load(path);
    CHECK_MSG(m != NULL, "%s: %s", path, lx_error_message());
    if (!m) return;
    const char *text = "The capital of France is Paris. The capital of Germany is";
    int32_t prompt[64];
    int n_prompt = lx_tokenize(lx_model_tokenizer(m), text, strlen(text), 0, prompt, 64);
    lx_model_free(m);
    CHECK(n_prompt > 0 && n_prompt <= 64);
    if (n_prompt <= 0 || n_prompt > 64) return;
    enum { NTOK = 24 };
    int32_t cpu[NTOK + 8], gpu[NTOK + 8];
    double ms_cpu = 0, ms_gpu = 0;
    int nc = greedy(LX_CPU, path, prompt, n_prompt, cpu, NTOK, &ms_cpu);
    int ng = greedy(LX_GPU, path, prompt, n_prompt, gpu, NTOK, &ms_gpu);
    int same = 0;
    while (same < nc && same < ng && cpu[same] == gpu[same]) same++;
    printf("  %s: %d prompt tokens, %d greedy tokens; the GPU's first %d equal the CPU's "
           "(CPU %.0f ms, GPU %.0f ms)\n", path, n_prompt, nc, same, ms_cpu, ms_gpu);
    CHECK_MSG(nc == NTOK && ng == NTOK && same == NTOK, "the GPU's greedy tokens differ from the "
              "CPU's at %d of %d", same, NTOK);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    const char *mod = getenv("LX_DEVICE_MODULES");
    if (!mod || !strstr(mod, "liblx-cuda")) {
        printf("LX_DEVICE_MODULES does not name liblx-cuda.so (CTest sets it when the module is "
               "built): skipped\n");
        return 77;
    }
    if (access(mod, R_OK) != 0) {
        printf("%s is absent (built only where nvcc is found): skipped\n", mod);
        return 77;
    }
    const char *info = lx_backend_info();
    printf("  %s\n", info);
    if (!lx_gpu_available()) {
        /* lx says why, and everything stays on the CPU */
        CHECK_MSG(strstr(info, "liblx-cuda") != NULL, "lx info does not mention the module: %s",
                  info);
        CHECK(lx_set_default_device(LX_GPU) == LX_E_DEVICE);
        lx_clear_error();
        lx_array a = lx_add(lx_array_f32(g_a, (int[]){4}, 1), lx_scalar_f32(1.0f));
        CHECK(lx_device_of(a) == LX_CPU && lx_data(a) != NULL);
        lx_sweep();
        if (t_failures) return test_finish();
        printf("no usable CUDA GPU (lx info above says why): skipped\n");
        return 77;
    }
    CHECK_MSG(strstr(info, "gpu: cuda") != NULL, "the GPU is not the CUDA module's: %s", info);
    void *h = dlopen(mod, RTLD_NOW | RTLD_NOLOAD);
    if (h) *(void **)&g_count = dlsym(h, "lx_cuda_kernel_count");
    CHECK_MSG(g_count != NULL, "lx_cuda_kernel_count is not reachable in %s", mod);
    init_data();
    if (!strcmp(mode, "all") || !strcmp(mode, "ops")) RUN_TEST(test_ops);
    if (!strcmp(mode, "all") || !strcmp(mode, "models")) {
        RUN_TEST(test_tiny_llama);
        RUN_TEST(test_tiny_qwen3);
    }
    if (!strcmp(mode, "all") || !strcmp(mode, "gguf")) RUN_TEST(test_gguf);
    lx_set_default_device(LX_CPU);
    lx_sweep();
    CHECK_OK(lx_synchronize());
    return test_finish();
}
