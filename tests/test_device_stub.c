/*
 * test_device_stub.c -- lx on a second device: the stub device module (tests/stub_device,
 * liblx-stub.so) serving LX_GPU, loaded through LX_DEVICE_MODULES as CTest sets it.
 *
 * The stub's memory is host RAM that it declares not host-visible (poisoned when fresh, every
 * block in a registry), its kernels run later on its own worker thread, and it computes only
 * COPY, FULL and float32 UNARY/BINARY/MATMUL (a subset of the ops): everything else must reach
 * it through a primitive's fallback or a run on the CPU with transfers around it. So this test
 * checks that lx honours placement: data uploaded and read back through copies, events waited
 * for before reads and before buffers are released, unsupported primitives and dtypes routed
 * elsewhere, memory accounted on the device, and the fixture models giving the reference's
 * greedy ids and logits with the GPU as the default device.
 *
 * Modes (argv[1]; devices are initialised once per process, so each loader case is its own
 * CTest entry of this program):
 *   (none) / all    the loader finds the stub, then placement, async, memory and the models
 *   placement       the same without the models
 *   absent WHY      the GPU is absent and lx_backend_info says WHY (a substring)
 *   entry           the module alone: its entry point through dlopen, called with a core API
 *                   of this test's own, its memory, copies, events and kernels on hand-made
 *                   nodes, and the violations it must catch (LX_STUB_MODULE names the file)
 * The stub's own counters (stub_device.h) are read through dlopen(RTLD_NOLOAD) of the module
 * lx loaded.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/select.h"
#include "backend/device.h"
#include "core/handle.h"
#include "models/kv_cache.h"
#include "core/dtype.h"
#include "graph/prims.h"
#include "lx.h"
#include "stub_device/stub_device.h"
#include "test_util.h"

static lx_stub_get_stats_fn g_stats;
static lx_stub_kernel_count_fn g_count;

static lx_stub_stats stub_stats(void) {
    lx_stub_stats s;
    memset(&s, 0, sizeof s);
    if (g_stats) g_stats(&s);
    return s;
}

static uint64_t stub_count(int prim) { return g_count ? g_count(prim) : 0; }

/* The module lx loaded (LX_DEVICE_MODULES names its file). */
static bool find_stub_module(void) {
    const char *path = getenv("LX_DEVICE_MODULES");
    if (!path) return false;
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!h) return false;
    *(void **)&g_stats = dlsym(h, LX_STUB_GET_STATS);
    *(void **)&g_count = dlsym(h, LX_STUB_KERNEL_COUNT);
    return g_stats && g_count;
}

/* Fails the test with the stub's violations, if any appeared since `before`. */
static void check_no_violations(const char *where, uint64_t before) {
    lx_stub_stats s = stub_stats();
    CHECK_MSG(s.violations == before, "%s: the stub caught %llu contract violation(s); the "
              "first: %s; the last: %s", where, (unsigned long long)(s.violations - before),
              s.first_violation, s.last_violation);
}

/* ---- values ------------------------------------------------------------------------------ */

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

static float g_x[4 * 5 * 6], g_y[4 * 5 * 6], g_w[6 * 7], g_small[16];
static int32_t g_i[4 * 5];

static void init_data(void) {
    t_seed(1234);
    for (int i = 0; i < 120; i++) g_x[i] = (float)t_uniform(-2, 2);
    for (int i = 0; i < 120; i++) g_y[i] = (float)t_uniform(-2, 2);
    for (int i = 0; i < 42; i++) g_w[i] = (float)t_uniform(-1, 1);
    for (int i = 0; i < 16; i++) g_small[i] = (float)(i - 7) * 0.25f;
    for (int i = 0; i < 20; i++) g_i[i] = t_int(-1000, 1000);
}

static lx_array X3(void) { return lx_array_f32(g_x, (int[]){4, 5, 6}, 3); }
static lx_array Y3(void) { return lx_array_f32(g_y, (int[]){4, 5, 6}, 3); }
static lx_array X2(void) { return lx_array_f32(g_x, (int[]){4, 5}, 2); }
static lx_array W2(void) { return lx_array_f32(g_w, (int[]){6, 7}, 2); }

/* Builds fn's array on the CPU and on the stub (default device LX_GPU) and compares them:
 * bit for bit when rtol and atol are 0; rtol < 0 means |stub - cpu| <= -rtol * max |cpu|. */
static void both(const char *name, lx_array (*fn)(void), double rtol, double atol) {
    lx_clear_error();
    CHECK_OK(lx_set_default_device(LX_CPU));
    lx_array c = fn();
    lx_status st = lx_eval(c);
    CHECK_MSG(st == LX_OK, "%s on the CPU: %s", name, lx_error_message());
    lx_clear_error();
    size_t n = lx_nbytes(c);
    lx_dtype dt = lx_dtype_of(c);
    unsigned char *want = malloc(n ? n : 1), *got = malloc(n ? n : 1);
    memset(want, 0, n ? n : 1);
    CHECK_OK(lx_read(c, want, n));
    int shape_c[LX_MAX_NDIM], nd_c = lx_shape(c, shape_c);

    CHECK_OK(lx_set_default_device(LX_GPU));
    lx_array g = fn();
    CHECK_MSG(lx_device_of(g) == LX_GPU, "%s: built with the GPU as default, the array is on "
              "device %d", name, (int)lx_device_of(g));
    st = lx_eval(g);
    CHECK_MSG(st == LX_OK, "%s on the stub: lx_eval: %s", name, lx_error_message());
    lx_clear_error();
    int shape_g[LX_MAX_NDIM], nd_g = lx_shape(g, shape_g);
    bool same_shape = nd_c == nd_g && nd_c >= 0 &&
                      memcmp(shape_c, shape_g, sizeof(int) * (size_t)nd_c) == 0 &&
                      lx_dtype_of(g) == dt && lx_nbytes(g) == n;
    CHECK_MSG(same_shape, "%s: shape or dtype differ between CPU and stub", name);
    if (st == LX_OK && same_shape) {
        memset(got, 0, n ? n : 1);
        lx_status rs = lx_read(g, got, n);
        CHECK_MSG(rs == LX_OK, "%s on the stub: lx_read: %s", name, lx_error_message());
        lx_clear_error();
        size_t count = n / lx_dtype_size(dt), bad = 0;
        if (rtol < 0) { /* normalized: |stub - cpu| <= -rtol * max |cpu| */
            double mx = 0;
            for (size_t i = 0; i < count; i++) mx = fmax(mx, fabs(elem(dt, want, i)));
            atol = -rtol * mx;
            rtol = 0;
        }
        for (size_t i = 0; i < count; i++) {
            double a = elem(dt, got, i), b = elem(dt, want, i);
            bool ok = (rtol == 0 && atol == 0)
                          ? memcmp(got + i * lx_dtype_size(dt), want + i * lx_dtype_size(dt),
                                   lx_dtype_size(dt)) == 0
                          : t_close(a, b, rtol, atol);
            if (!ok && bad++ < 3)
                fprintf(stderr, "  %s[%zu] (%s): stub %.9g, cpu %.9g\n", name, i,
                        lx_dtype_name(dt), a, b);
        }
        CHECK_MSG(bad == 0, "%s: %zu of %zu elements differ from the CPU's%s", name, bad, count,
                  rtol == 0 && atol == 0 ? " (bit for bit)" : "");
    }
    free(want);
    free(got);
    lx_free(c); /* lx_eval kept them */
    lx_free(g);
    lx_set_default_device(LX_GPU);
    lx_sweep();
}

/* ---- the cases ----------------------------------------------------------------------------- */

/* stub kernels only: float32 UNARY/BINARY of its subset */
static lx_array f_supported_ew(void) {
    lx_array x = X3(), y = Y3();
    lx_array a = lx_add(lx_mul(x, y), lx_exp(x));
    a = lx_sub(a, lx_tanh(y));
    a = lx_maximum(a, lx_silu(x));
    a = lx_add(a, lx_sqrt(lx_abs(y)));
    a = lx_div(a, lx_add_scalar(lx_square(x), 1.0));
    a = lx_add(a, lx_rsqrt(lx_add_scalar(lx_abs(x), 0.5)));
    a = lx_mul(a, lx_sigmoid(lx_neg(y)));
    a = lx_add(a, lx_relu(lx_sin(x)));
    a = lx_sub(a, lx_cos(y));
    a = lx_add(a, lx_log(lx_add_scalar(lx_abs(x), 1.0)));
    a = lx_add(a, lx_pow(lx_add_scalar(lx_abs(y), 0.1), x));
    return lx_minimum(a, lx_reciprocal(lx_add_scalar(lx_abs(y), 0.25)));
}
/* unsupported ops (erf, gelu, floor, sign, remainder, comparisons, where) between supported */
static lx_array f_unsupported_ew(void) {
    lx_array x = X3(), y = Y3();
    lx_array a = lx_add(lx_erf(x), lx_silu(y));
    a = lx_mul(a, lx_floor(lx_mul_scalar(x, 3.0)));
    a = lx_add(a, lx_gelu(y));
    a = lx_sub(a, lx_sign(x));
    a = lx_add(a, lx_remainder(x, lx_add_scalar(lx_abs(y), 0.5)));
    return lx_where(lx_greater(a, y), a, lx_neg(a));
}
/* other dtypes: int32, float16, bfloat16, float64, bool */
static lx_array f_int32(void) {
    lx_array a = lx_array_i32(g_i, (int[]){4, 5}, 2);
    return lx_add(lx_mul(a, a), lx_scalar_i32(7));
}
static lx_array f_float16(void) {
    lx_array a = lx_astype(X3(), LX_FLOAT16), b = lx_astype(Y3(), LX_FLOAT16);
    return lx_add(lx_mul(a, b), lx_exp(a));
}
static lx_array f_bfloat16(void) {
    lx_array a = lx_astype(X3(), LX_BFLOAT16), b = lx_astype(Y3(), LX_BFLOAT16);
    return lx_sub(lx_mul(a, b), lx_tanh(b));
}
static lx_array f_float64(void) {
    lx_array a = lx_astype(X3(), LX_FLOAT64);
    return lx_astype(lx_add(lx_mul(a, a), lx_astype(Y3(), LX_FLOAT64)), LX_FLOAT32);
}
static lx_array f_promote(void) {
    lx_array a = lx_array_i32(g_i, (int[]){4, 5}, 2);
    return lx_mul(lx_add(a, X2()), lx_scalar_f32(0.5f));
}
/* COPY on the stub: every dtype conversion */
static lx_array f_astype_chain(void) {
    lx_array a = lx_mul_scalar(X3(), 40.0);
    static const lx_dtype chain[] = {LX_FLOAT16, LX_INT32, LX_UINT8, LX_INT8, LX_BFLOAT16,
                                     LX_FLOAT64, LX_INT64, LX_UINT16, LX_INT16, LX_UINT32,
                                     LX_UINT64, LX_FLOAT32};
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) a = lx_astype(a, chain[i]);
    return a;
}
static lx_array f_to_bool(void) {
    lx_array b = lx_astype(lx_floor(X3()), LX_BOOL);
    return lx_astype(b, LX_FLOAT32);
}
/* strided inputs: transposes, steps, broadcasts, a reshape that must copy */
static lx_array f_strided(void) {
    lx_array x = X3();
    lx_array t = lx_transpose(x, (int[]){2, 0, 1}, 3);                       /* [6, 4, 5] */
    lx_array s = lx_slice(Y3(), (int[]){0, 0, 0}, (int[]){4, 5, 6}, (int[]){1, 1, 1}, 3);
    s = lx_transpose(s, (int[]){2, 0, 1}, 3);
    lx_array a = lx_add(t, s);
    lx_array stepped = lx_slice(a, (int[]){1, 0, 0}, (int[]){6, 4, 5}, (int[]){2, 1, 2}, 3);
    lx_array b = lx_broadcast_to(lx_array_f32(g_small, (int[]){1, 1, 3}, 3), (int[]){3, 4, 3}, 3);
    lx_array c = lx_mul(stepped, b);
    return lx_reshape(lx_transpose(c, NULL, 0), (int[]){3, 12}, 2);
}
static lx_array f_contiguous(void) {
    return lx_contiguous(lx_transpose(lx_astype(X3(), LX_FLOAT16), NULL, 0));
}
/* creation: FULL on the stub, arange / eye / linspace where lx puts them */
static lx_array f_creation(void) {
    lx_array a = lx_full((int[]){4, 5}, 2, 1.5, LX_FLOAT32);
    a = lx_add(a, lx_ones((int[]){4, 5}, 2, LX_FLOAT32));
    a = lx_mul(a, lx_astype(lx_reshape(lx_arange(0, 20, 1, LX_INT32), (int[]){4, 5}, 2), LX_FLOAT32));
    a = lx_add(a, lx_eye(4, 5, 1, LX_FLOAT32));
    return lx_add(a, lx_broadcast_to(lx_linspace(-1, 1, 5, LX_FLOAT32), (int[]){4, 5}, 2));
}
static lx_array f_full_int(void) { return lx_full((int[]){3, 3}, 2, -3.0, LX_INT16); }
static lx_array f_zeros_f16(void) {
    return lx_add(lx_zeros((int[]){7}, 1, LX_FLOAT16), lx_ones((int[]){7}, 1, LX_FLOAT16));
}
/* MATMUL on the stub */
static lx_array f_matmul(void) { return lx_matmul(X3(), W2()); }
static lx_array f_matmul_t(void) {
    lx_array wt = lx_transpose(lx_array_f32(g_w, (int[]){7, 6}, 2), NULL, 0); /* [6, 7] view */
    lx_array yt = lx_transpose(lx_array_f32(g_y, (int[]){4, 6, 5}, 3), (int[]){0, 2, 1}, 3);
    return lx_matmul(yt, wt); /* [4, 5, 6] @ [6, 7], both strided */
}
static lx_array f_addmm(void) {
    lx_array c = lx_array_f32(g_small, (int[]){1, 7}, 2);
    lx_array a = lx_reshape(X3(), (int[]){20, 6}, 2);
    return lx_addmm(lx_broadcast_to(c, (int[]){20, 7}, 2), a, W2(), 0.5f, 2.0f);
}
static lx_array f_matmul_f16(void) {
    return lx_matmul(lx_astype(X3(), LX_FLOAT16), lx_astype(W2(), LX_FLOAT16));
}
/* the rest: fallbacks or the CPU */
static lx_array f_softmax(void) { return lx_softmax(X3(), -1); }
static lx_array f_rms_norm(void) {
    return lx_rms_norm(X3(), lx_array_f32(g_small, (int[]){6}, 1), 1e-5f);
}
static lx_array f_layer_norm(void) {
    lx_array w = lx_array_f32(g_small, (int[]){6}, 1);
    return lx_layer_norm(X3(), w, lx_array_f32(g_small + 6, (int[]){6}, 1), 1e-5f);
}
static lx_array f_rope(void) {
    lx_array x = lx_reshape(X3(), (int[]){1, 4, 5, 6}, 4);
    return lx_rope(x, 6, false, 10000.0f, 1.0f, 3);
}
static lx_array f_sdpa(void) {
    lx_array q = lx_reshape(X3(), (int[]){1, 4, 5, 6}, 4);
    lx_array k = lx_reshape(Y3(), (int[]){1, 4, 5, 6}, 4);
    return lx_sdpa(q, k, lx_mul_scalar(k, 0.5), 0.4f, true, LX_NULL_ARRAY);
}
static lx_array f_reduce(void) {
    lx_array x = X3();
    lx_array a = lx_add(lx_sum(x, 1, true), lx_mean(x, 2, true));
    return lx_add(a, lx_max(x, 0, true));
}
static lx_array f_argmax(void) { return lx_argmax(X3(), -1, false); }
static lx_array f_take(void) {
    int32_t idx[5] = {3, 0, 0, 2, 1};
    return lx_take(X3(), lx_array_i32(idx, (int[]){5}, 1), 0);
}
static lx_array f_slice_update(void) {
    lx_array upd = lx_ones((int[]){2, 5, 3}, 3, LX_FLOAT32);
    return lx_slice_update(X3(), upd, (int[]){1, 0, 2}, (int[]){3, 5, 5}, NULL, 3);
}
static lx_array f_concat(void) {
    lx_array parts[2] = {X3(), lx_exp(Y3())};
    return lx_concatenate(parts, 2, 1);
}
static lx_array f_cumsum(void) { return lx_cumsum(X3(), 2); }
static lx_array f_quantized(void) {
    lx_array w = lx_reshape(lx_concatenate((lx_array[]){X3(), Y3()}, 2, 0), (int[]){8, 30}, 2);
    w = lx_slice(w, (int[]){0, 0}, (int[]){8, 30}, NULL, 2);
    lx_array wide = lx_reshape(lx_tile(w, (int[]){1, 16}, 2), (int[]){8, 480}, 2);
    wide = lx_slice(wide, (int[]){0, 0}, (int[]){8, 448}, NULL, 2); /* 7 groups of 64 */
    lx_array wq, sc, bi;
    if (lx_quantize(lx_contiguous(wide), 64, 4, &wq, &sc, &bi) != LX_OK) return LX_NULL_ARRAY;
    lx_array x = lx_reshape(lx_tile(X2(), (int[]){1, 90}, 2), (int[]){4, 450}, 2);
    x = lx_slice(x, (int[]){0, 0}, (int[]){4, 448}, NULL, 2);
    return lx_quantized_matmul(x, wq, sc, bi, true, 64, 4);
}
static lx_array f_random(void) {
    return lx_random_uniform((int[]){3, 4}, 2, LX_FLOAT32, -1.0, 1.0, lx_random_key(7));
}
/* a chain mixing supported and unsupported primitives and dtypes */
static lx_array f_mixed_chain(void) {
    lx_array h = lx_matmul(X3(), W2());                  /* stub */
    h = lx_softmax(h, -1);                               /* fallback / CPU */
    h = lx_mul(h, lx_silu(h));                           /* stub */
    lx_array h16 = lx_astype(h, LX_FLOAT16);             /* stub COPY */
    h16 = lx_add(h16, h16);                              /* float16: CPU */
    h = lx_astype(h16, LX_FLOAT32);                      /* stub COPY */
    lx_array s = lx_sum(h, -1, true);                    /* CPU */
    h = lx_div(h, s);                                    /* stub, broadcast */
    h = lx_rms_norm(h, LX_NULL_ARRAY, 1e-6f);            /* fallback / CPU */
    h = lx_add(h, lx_erf(h));                            /* erf: CPU */
    return lx_exp(lx_transpose(h, (int[]){2, 0, 1}, 3)); /* stub, strided */
}

static lx_status compiled_fn(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    (void)ctx;
    (void)n_in;
    (void)n_out;
    lx_array a = lx_add(lx_mul(in[0], in[1]), lx_exp(in[0]));
    out[0] = lx_gelu(lx_sub(a, lx_tanh(in[1])));
    return LX_OK;
}
static lx_array f_compiled(void) {
    lx_closure *c = lx_compile(compiled_fn, NULL, 1, 0);
    if (!c) return LX_NULL_ARRAY;
    lx_array out = LX_NULL_ARRAY;
    lx_array in[2] = {X3(), Y3()};
    lx_call(c, in, 2, &out, 1);
    lx_closure_free(c);
    return out;
}

static void test_placement_ops(void) {
    uint64_t v0 = stub_stats().violations;
    uint64_t bin0 = stub_count(LX_PRIM_BINARY), mm0 = stub_count(LX_PRIM_MATMUL);
    both("supported elementwise", f_supported_ew, 0, 0);
    CHECK_MSG(stub_count(LX_PRIM_BINARY) > bin0, "no BINARY kernel reached the stub");
    both("unsupported elementwise", f_unsupported_ew, 0, 0);
    both("int32", f_int32, 0, 0);
    both("float16", f_float16, 0, 0);
    both("bfloat16", f_bfloat16, 0, 0);
    both("float64", f_float64, 0, 0);
    both("int32 + float32", f_promote, 0, 0);
    both("astype chain", f_astype_chain, 0, 0);
    both("astype bool", f_to_bool, 0, 0);
    both("strided", f_strided, 0, 0);
    both("contiguous", f_contiguous, 0, 0);
    both("creation", f_creation, 0, 0);
    both("full int16", f_full_int, 0, 0);
    both("zeros float16", f_zeros_f16, 0, 0);
    both("matmul", f_matmul, 1e-5, 1e-6);
    CHECK_MSG(stub_count(LX_PRIM_MATMUL) > mm0, "no MATMUL kernel reached the stub");
    both("matmul transposed", f_matmul_t, 1e-5, 1e-6);
    both("addmm", f_addmm, 1e-5, 1e-6);
    both("matmul float16", f_matmul_f16, 2e-3, 2e-3);
    both("softmax", f_softmax, 1e-6, 1e-7);
    both("rms_norm", f_rms_norm, 1e-6, 1e-6);
    both("layer_norm", f_layer_norm, 1e-5, 1e-6);
    both("rope", f_rope, 1e-6, 1e-6);
    both("sdpa", f_sdpa, 1e-5, 1e-6);
    both("reduce", f_reduce, 1e-6, 1e-6);
    both("argmax", f_argmax, 0, 0);
    both("take", f_take, 0, 0);
    both("slice_update", f_slice_update, 0, 0);
    both("concatenate", f_concat, 0, 0);
    both("cumsum", f_cumsum, 1e-6, 1e-6);
    /* the CPU's quantized kernel and the fallback (dequantize, then the stub's matmul) add the
     * 448 products in different orders: float32 rounding of a long sum with cancellation,
     * bounded relative to the largest output (as the cross-backend harness does) */
    both("quantized_matmul", f_quantized, -1e-5, 0);
    both("random_uniform", f_random, 0, 0);
    both("mixed chain", f_mixed_chain, 1e-5, 1e-6);
    both("compiled (FUSED)", f_compiled, 1e-6, 1e-6);
    check_no_violations("placement", v0);
    CHECK_OK(lx_set_default_device(LX_GPU));
}

/* The read API on stub arrays: lx_read, lx_data (also of a strided view), lx_item_*. */
static void test_reads(void) {
    uint64_t v0 = stub_stats().violations;
    lx_array a = X3();
    CHECK(lx_device_of(a) == LX_GPU);
    float back[120];
    CHECK_OK(lx_read(a, back, sizeof back));
    CHECK_MSG(memcmp(back, g_x, sizeof back) == 0, "lx_read of an uploaded array differs");
    const float *p = lx_data(a);
    CHECK_MSG(p && memcmp(p, g_x, sizeof back) == 0, "lx_data of an uploaded array differs");
    lx_array t = lx_transpose(a, NULL, 0); /* [6, 5, 4] view */
    const float *q = lx_data(t);
    bool ok = q != NULL;
    for (int i = 0; ok && i < 6; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 4; k++)
                if (q[(i * 5 + j) * 4 + k] != g_x[(k * 5 + j) * 6 + i]) ok = false;
    CHECK_MSG(ok, "lx_data of a transposed stub array is not its row-major copy");
    lx_array s = lx_sum(lx_mul(a, a), -1, false);
    s = lx_sum(s, -1, false);
    s = lx_sum(s, -1, false);
    double want = 0;
    for (int i = 0; i < 120; i++) want += (double)g_x[i] * g_x[i];
    float got = lx_item_f32(s);
    CHECK_MSG(t_close(got, want, 1e-5, 0), "lx_item_f32: %g, want %g (%s)", (double)got, want,
              lx_error_message());
    CHECK(t_close(lx_item_f64(s), want, 1e-5, 0));
    lx_array i = lx_add(lx_scalar_i32(40), lx_scalar_i32(2));
    CHECK_MSG(lx_item_i32(i) == 42, "lx_item_i32 of a stub scalar: %d", lx_item_i32(i));
    lx_array e = lx_exp(lx_scalar_f32(1.0f));
    CHECK(lx_device_of(e) == LX_GPU);
    CHECK(t_close(lx_item_f32(e), exp(1.0), 1e-6, 0));
    /* a fresh array read at once, and one read twice */
    lx_array f = lx_full((int[]){1000}, 1, 2.5, LX_FLOAT32);
    const float *fp = lx_data(f);
    bool all = fp != NULL;
    for (int k = 0; all && k < 1000; k++) all = fp[k] == 2.5f;
    CHECK_MSG(all, "lx_data of FULL on the stub is not 2.5 everywhere (poison: %s)",
              fp && isnan(fp[0]) ? "yes" : "no");
    CHECK(lx_data(f) == fp);
    /* an array from the CPU used by a stub op: a transfer */
    lx_set_default_device(LX_CPU);
    lx_array cpu = lx_array_f32(g_y, (int[]){4, 5, 6}, 3);
    CHECK(lx_device_of(cpu) == LX_CPU);
    lx_set_default_device(LX_GPU);
    lx_array sum = lx_add(cpu, a);
    CHECK(lx_device_of(sum) == LX_GPU);
    const float *sp = lx_data(sum);
    ok = sp != NULL;
    for (int k = 0; ok && k < 120; k++) ok = sp[k] == g_x[k] + g_y[k];
    CHECK_MSG(ok, "CPU array + stub array differs (%s)", lx_error_message());
    lx_clear_error();
    check_no_violations("reads", v0);
}

/* Async evaluation: chained async evals, reads that wait, inputs freed while their
 * consumers are queued (with the cache cleared, so freed blocks go back to the device at
 * once: the stub catches one freed before its kernel ran). */
static void test_async(void) {
    uint64_t v0 = stub_stats().violations;
    float v[4] = {1, 2, 3, 4};
    lx_array a = lx_array_f32(v, (int[]){4}, 1);
    lx_array b = lx_mul(a, a);
    CHECK_OK(lx_async_eval(b));
    lx_array c = lx_add(b, b);
    CHECK_OK(lx_async_eval(c));
    const float *cp = lx_data(c);
    CHECK_MSG(cp && cp[3] == 32.0f, "async chain: c[3] = %g", cp ? (double)cp[3] : NAN);
    const float *bp = lx_data(b);
    CHECK(bp && bp[2] == 9.0f);
    CHECK_OK(lx_synchronize());
    lx_free(b);
    lx_free(c);
    lx_sweep();

    /* a long async chain whose intermediates are released as it runs */
    lx_array x = lx_zeros((int[]){256}, 1, LX_FLOAT32);
    lx_keep(x);
    for (int i = 0; i < 300; i++) {
        lx_array big = lx_full((int[]){64, 256}, 2, 1.0 / 64, LX_FLOAT32);
        lx_array next = lx_add(x, lx_sum(big, 0, false)); /* sum: off the stub */
        next = lx_add_scalar(next, 1.0);
        lx_free(x);
        x = next;
        lx_keep(x);
        CHECK_OK(lx_async_eval(x));
        if (i % 50 == 0) lx_clear_cache();
    }
    const float *xp = lx_data(x);
    CHECK_MSG(xp && fabsf(xp[7] - 600.0f) < 1e-3f, "async loop: %g, want 600",
              xp ? (double)xp[7] : NAN);
    lx_free(x);

    /* inputs freed and the cache cleared while their consumers may still be queued */
    for (int round = 0; round < 20; round++) {
        lx_array in = lx_array_f32(g_x, (int[]){120}, 1);
        lx_array out = lx_exp(lx_mul(in, in));
        for (int k = 0; k < 10; k++) out = lx_add(lx_mul_scalar(out, 0.5), in);
        lx_keep(out);
        CHECK_OK(lx_async_eval(out));
        lx_sweep(); /* `in` is released: only the graph holds its buffer */
        lx_clear_cache();
        float r[120];
        CHECK_OK(lx_read(out, r, sizeof r));
        double ref = exp((double)g_x[5] * g_x[5]);
        for (int k = 0; k < 10; k++) ref = ref * 0.5 + g_x[5];
        CHECK_MSG(t_close(r[5], ref, 1e-5, 1e-6), "round %d: %g, want %g", round, (double)r[5], ref);
        lx_free(out);
        lx_sweep();
        if (t_failures) break;
    }
    CHECK_OK(lx_synchronize());
    check_no_violations("async", v0);
}

/* lx_active_memory (of the default device, the stub) returns to its baseline. */
static void test_memory_baseline(void) {
    CHECK_OK(lx_synchronize());
    lx_clear_cache();
    size_t before = lx_active_memory();
    lx_stub_stats s0 = stub_stats();
    lx_array a = lx_zeros((int[]){1000, 3}, 2, LX_FLOAT32);
    CHECK_OK(lx_eval(a));
    CHECK_MSG(lx_active_memory() == before + 12000, "active %zu, want %zu", lx_active_memory(),
              before + 12000);
    CHECK(stub_stats().live_bytes >= s0.live_bytes + 12000);
    lx_free(a);
    lx_sweep();
    CHECK_OK(lx_synchronize());
    CHECK_MSG(lx_active_memory() == before, "active %zu after the free, want %zu",
              lx_active_memory(), before);
    CHECK(lx_cache_memory() >= 12000);
    lx_clear_cache();
    CHECK(lx_cache_memory() == 0);
    CHECK_MSG(stub_stats().live_bytes == s0.live_bytes, "the stub holds %llu bytes, %llu before",
              (unsigned long long)stub_stats().live_bytes, (unsigned long long)s0.live_bytes);
    /* a computation with intermediates leaves nothing behind */
    lx_array r = lx_sum(lx_mul(lx_matmul(X3(), W2()), lx_scalar_f32(2.0f)), -1, false);
    CHECK_OK(lx_eval(r));
    lx_free(r);
    lx_sweep();
    CHECK_OK(lx_synchronize());
    CHECK_MSG(lx_active_memory() == before, "active %zu after a computation, want %zu",
              lx_active_memory(), before);
}

/* The memory limit on the stub (test_memory.c's out-of-memory case), the device itself
 * refusing an allocation (beyond its 1 GiB), and eviction from the cache under a tight limit
 * while async work is queued (a block lx evicts must not be one a queued kernel still uses). */
static void test_stub_oom_and_eviction(void) {
    uint64_t v0 = stub_stats().violations;
    CHECK_OK(lx_synchronize());
    lx_clear_cache();
    size_t old = lx_set_memory_limit(lx_active_memory() + (1 << 20));
    lx_array big = lx_ones((int[]){1024, 1024}, 2, LX_FLOAT32); /* 4 MiB */
    lx_array small = lx_ones((int[]){16}, 1, LX_FLOAT32);
    lx_keep(big, small);
    lx_status st = lx_eval(big);
    CHECK_MSG(st == LX_E_OOM && strstr(lx_error_message(), "memory limit"), "over the limit: %s",
              lx_error_message());
    lx_clear_error();
    CHECK(lx_valid(big) && !lx_is_evaluated(big));
    CHECK_OK(lx_eval(small));
    lx_set_memory_limit(old);
    CHECK_OK(lx_eval(big));
    const float *bp = lx_data(big);
    CHECK(bp && bp[1024 * 1024 - 1] == 1.0f);
    lx_free(big);
    lx_free(small);
    lx_sweep();

    /* the device is out (its capacity is 1 GiB) while lx's limit would allow it */
    old = lx_set_memory_limit((size_t)8 << 30);
    lx_array huge = lx_zeros((int[]){384, 1024, 1024}, 3, LX_FLOAT32); /* 1.5 GiB */
    lx_keep(huge);
    st = lx_eval(huge);
    CHECK_MSG(st == LX_E_OOM, "an allocation the device refuses: %s (%s)", lx_status_string(st),
              lx_error_message());
    lx_clear_error();
    lx_free(huge);
    lx_sweep();
    lx_set_memory_limit(old);

    /* eviction: blocks of seven size classes under a 3 MiB limit, async, with the worker behind */
    CHECK_OK(lx_synchronize());
    lx_clear_cache();
    old = lx_set_memory_limit(lx_active_memory() + (3 << 20));
    lx_array x = lx_zeros((int[]){1024}, 1, LX_FLOAT32);
    lx_keep(x);
    for (int i = 0; i < 210 && lx_error() == LX_OK; i++) {
        int n = 16384 * (1 + i % 7); /* 64 KiB .. 448 KiB */
        lx_array t = lx_mul_scalar(lx_full((int[]){n}, 1, (double)i, LX_FLOAT32), 2.0);
        lx_array y = lx_slice(t, (int[]){n - 1024}, (int[]){n}, NULL, 1);
        lx_array next = lx_add(x, y);
        lx_free(x);
        x = next;
        lx_keep(x);
        lx_status es = lx_async_eval(x);
        if (es != LX_OK) CHECK_OK(es);
    }
    const float *xp = lx_data(x);
    CHECK_MSG(xp && xp[1000] == 2.0f * 209 * 210 / 2, "eviction loop: %g, want %g",
              xp ? (double)xp[1000] : NAN, 2.0 * 209 * 210 / 2);
    lx_free(x);
    lx_sweep();
    CHECK_OK(lx_synchronize());
    lx_set_memory_limit(old);
    check_no_violations("memory limit and eviction", v0);
}

/* Two threads run loops on the stub at once (test_memory.c's two-thread case). */
typedef struct {
    int id, failures;
    float result;
} thread_arg;

static void *thread_loop(void *p) {
    thread_arg *t = p;
    float v[4] = {1, 1, 1, 1};
    lx_array acc = lx_array_f32(v, (int[]){4}, 1);
    lx_keep(acc);
    for (int i = 0; i < 1000; i++) {
        lx_array tmp = lx_add_scalar(acc, 1.0);
        lx_array next = lx_sub_scalar(tmp, 1.0 - (t->id + 1) * 0.001);
        lx_free(acc);
        acc = next;
        if ((i % 3 ? lx_async_eval(acc) : lx_eval(acc)) != LX_OK) t->failures++;
        if (lx_device_of(acc) != LX_GPU) t->failures++;
    }
    const float *r = lx_data(acc);
    t->result = r ? r[0] : NAN;
    if (lx_tracked_count() != 1) t->failures++;
    lx_free(acc);
    lx_sweep();
    lx_synchronize();
    return NULL;
}

static void test_threads(void) {
    uint64_t v0 = stub_stats().violations;
    pthread_t th[2];
    thread_arg args[2] = {{0, 0, 0}, {1, 0, 0}};
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thread_loop, &args[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_MSG(args[i].failures == 0, "thread %d: %d failures", i, args[i].failures);
        CHECK_MSG(fabsf(args[i].result - (1.0f + 1000 * (i + 1) * 0.001f)) < 1e-2f,
                  "thread %d: %g", i, (double)args[i].result);
    }
    check_no_violations("threads", v0);
}

/* tests/test_memory.c's decode loop on the stub: memory and tracked count stay flat. */
static void test_flat_loop(void) {
    uint64_t v0 = stub_stats().violations;
    enum { D = 32, STEPS = 3000 };
    float wv[D * D];
    for (int i = 0; i < D * D; i++) wv[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    lx_array w = lx_array_f32(wv, (int[]){D, D}, 2);
    lx_array state = lx_zeros((int[]){1, D}, 2, LX_FLOAT32);
    lx_keep(w, state);
    CHECK_OK(lx_eval(w, state));
    size_t mem_base = 0, tracked_base = 0;
    uint64_t blocks_base = 0;
    for (int step = 0; step < STEPS; step++) {
        lx_array x = lx_add_scalar(state, 1.0);
        lx_array h = lx_matmul(x, w);
        h = lx_tanh(h);
        lx_array old = state;
        state = lx_add(lx_mul_scalar(h, 0.5), lx_mul_scalar(old, 0.5));
        lx_keep(state);
        lx_free(old);
        lx_status st = (step % 2) ? lx_async_eval(state) : lx_eval(state);
        if (st != LX_OK) {
            CHECK_OK(st);
            break;
        }
        if (step == 100) {
            CHECK_OK(lx_synchronize());
            mem_base = lx_active_memory();
            tracked_base = lx_tracked_count();
            blocks_base = stub_stats().live_blocks;
        }
    }
    CHECK_OK(lx_synchronize());
    CHECK_MSG(lx_active_memory() == mem_base, "active %zu vs %zu", lx_active_memory(), mem_base);
    CHECK_MSG(lx_tracked_count() == tracked_base, "tracked %zu vs %zu", lx_tracked_count(),
              tracked_base);
    CHECK_MSG(stub_stats().live_blocks <= blocks_base + 4, "stub blocks %llu vs %llu at step 100",
              (unsigned long long)stub_stats().live_blocks, (unsigned long long)blocks_base);
    float row[D];
    CHECK_OK(lx_read(state, row, sizeof row));
    CHECK(isfinite(row[0]));
    lx_free(w);
    lx_free(state);
    lx_sweep();
    check_no_violations("flat loop", v0);
}

/* ---- the fixture models (as tests/test_model.c, with the default device the stub) -------- */




static void run_fixture(const char *name, double tol) {
    uint64_t v0 = stub_stats().violations;
    const char *dir = t_fixture(name);
    char path[1200];
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    /* the reference on the CPU: its values do not depend on the stub */
    CHECK_OK(lx_set_default_device(LX_CPU));
    lx_weights *rw = lx_load(path);
    CHECK_MSG(rw != NULL, "%s: reference: %s", name, lx_error_message());
    if (!rw) {
        lx_clear_error();
        lx_set_default_device(LX_GPU);
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
    if (!prompt || !output || !logits) return;

    lx_stub_stats s0 = stub_stats();
    uint64_t mm0 = stub_count(LX_PRIM_MATMUL);
    lx_model *m = lx_model_load(dir);
    CHECK_MSG(m != NULL, "%s on the stub: lx_model_load: %s", name, lx_error_message());
    lx_clear_error();
    if (m) {
        lx_stub_stats s1 = stub_stats();
        CHECK_MSG(s1.imports + s1.copies_from_host > s0.imports + s0.copies_from_host,
                  "%s: loading put no weights on the stub (imports %llu, uploads %llu)", name,
                  (unsigned long long)(s1.imports - s0.imports),
                  (unsigned long long)(s1.copies_from_host - s0.copies_from_host));
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
            lx_status gs = lx_session_generate(s, prompt, n_prompt, &p, &st);
            CHECK_MSG(gs == LX_OK, "%s (chunk %d) on the stub: lx_session_generate: %s", name,
                      chunks[c], lx_error_message());
            lx_clear_error();
            CHECK_MSG(got.n == n_output, "%s: %d tokens, %d expected", name, got.n, n_output);
            int first_diff = -1;
            for (int i = 0; i < got.n && i < n_output; i++)
                if (got.ids[i] != output[i] && first_diff < 0) first_diff = i;
            CHECK_MSG(first_diff < 0, "%s (chunk %d) on the stub: greedy token %d is %d, the "
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
                if (isnan(worst)) break;
                if (isnan(e) || e > worst) {
                    worst = e;
                    worst_row = r;
                }
            }
            printf("  %s chunk %d on the stub: largest logits error %.3g (row %d), bound %.3g\n",
                   name, chunks[c], worst, worst_row, tol);
            CHECK_MSG(!isnan(worst) && worst <= tol, "%s on the stub: logits row %d differs by %.3g of its "
                      "largest value (bound %.3g)", name, worst_row, worst, tol);
            free(got.rows);
            lx_session_free(s);
        }
        CHECK_MSG(stub_count(LX_PRIM_MATMUL) > mm0, "%s: no MATMUL of the model ran on the stub",
                  name);
        lx_model_free(m);
    }
    lx_free(pa);
    lx_free(oa);
    lx_weights_free(rw);
    lx_sweep();
    CHECK_OK(lx_synchronize());
    check_no_violations(name, v0);
}

/* Decode on the stub keeps memory flat and writes the KV cache in place: each step's
 * slice_update of the cache runs over the donated cache buffer (the stub counts the ones that
 * had to copy), queued behind the kernels still reading the cache. The callback only reads
 * counters: holding a reference to the cache, even briefly, would rightly stop donation. */
typedef struct {
    int n;
    size_t tracked[320];
    size_t synced[2]; /* active memory after lx_synchronize at steps 100 and 290 */
} kv_watch;

static bool on_token_kv(void *u, int32_t id, const char *text, size_t len) {
    (void)text;
    (void)len;
    kv_watch *w = u;
    if (id < 0 || w->n >= 320) return true;
    w->tracked[w->n] = lx_tracked_count();
    if (w->n == 100 || w->n == 290) {
        /* everything queued has run and every completion is drained: what is left is what
         * the loop holds (the cache, this token, the next step's outputs) */
        if (lx_synchronize() != LX_OK) return false;
        w->synced[w->n == 290] = lx_active_memory();
    }
    w->n++;
    return true;
}

static void test_kv_in_place(void) {
    lx_model *m = lx_model_load(t_fixture("tiny-llama-f32"));
    CHECK_MSG(m != NULL, "lx_model_load: %s", lx_error_message());
    if (!m) return;
    int32_t prompt[4] = {54, 489, 223, 83};
    lx_session *s = lx_session_new(m, 1024);
    kv_watch *w = calloc(1, sizeof *w);
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = 300;
    p.ignore_eos = true;
    p.on_token = on_token_kv;
    p.user = w;
    lx_gen_stats st;
    lx_stub_stats s0 = stub_stats();
    CHECK_OK(lx_session_generate(s, prompt, 4, &p, &st));
    CHECK_OK(lx_synchronize());
    lx_stub_stats s1 = stub_stats();
    CHECK(w->n == 300);
    for (int i = 11; i < w->n; i++)
        CHECK_MSG(w->tracked[i] == w->tracked[10], "tracked %zu at step %d, %zu at step 10",
                  w->tracked[i], i, w->tracked[10]);
    /* 4 layers x (k, v) per position: 8 updates a step, ~2400 in all; a copy only where the
     * cache grows (position 256: 8 copies) */
    uint64_t in_place = s1.slice_updates_in_place - s0.slice_updates_in_place;
    uint64_t copied = s1.slice_updates_copied - s0.slice_updates_copied;
    printf("  KV slice_updates on the stub: %llu in place, %llu copied\n",
           (unsigned long long)in_place, (unsigned long long)copied);
    CHECK_MSG(in_place >= 8 * 290, "only %llu KV updates ran in place", (unsigned long long)in_place);
    CHECK_MSG(copied <= 16, "%llu KV updates copied the cache (8 expected, at the growth)",
              (unsigned long long)copied);
    /* Active memory on an asynchronous device includes what the steps in flight hold, so a
     * value sampled at the token callback depends on timing, and so does each step's peak
     * (how many queued kernels still hold their scratch). After lx_synchronize it does not:
     * between steps 100 and 290 it grows by the one KV growth (position 256) and nothing more
     * (anything left behind per step would add ~190 times its size). */
    size_t kv_step = (size_t)4 * 2 * 2 * 32 * 4 * 256;
    printf("  active memory on the stub: %zu after a synchronize at step 100, %zu at 290\n",
           w->synced[0], w->synced[1]);
    CHECK_MSG(w->synced[0] > 0 && w->synced[1] == w->synced[0] + kv_step, "active memory on the "
              "stub grew: %zu after a synchronize at step 100, %zu at step 290 (a KV step is %zu)",
              w->synced[0], w->synced[1], kv_step);
    free(w);
    lx_session_free(s);
    lx_model_free(m);
    lx_sweep();
}

static void test_tiny_llama(void) { run_fixture("tiny-llama-f32", 1e-4); }
static void test_tiny_qwen3(void) { run_fixture("tiny-qwen3-bf16", 1e-4); }

/* After everything is freed and the cache cleared, the stub holds no block and no event. */
static void test_nothing_left(void) {
    lx_sweep();
    CHECK_OK(lx_synchronize());
    lx_clear_cache();
    lx_stub_stats s = stub_stats();
    printf("  stub: %llu kernels queued (%llu run, %llu refused), %llu uploads, %llu downloads, "
           "%llu device copies, %llu imports, %llu events, %llu violations\n",
           (unsigned long long)s.kernels_queued, (unsigned long long)s.kernels_run,
           (unsigned long long)s.kernels_refused, (unsigned long long)s.copies_from_host,
           (unsigned long long)s.copies_to_host, (unsigned long long)s.copies,
           (unsigned long long)s.imports, (unsigned long long)s.events_recorded,
           (unsigned long long)s.violations);
    CHECK_MSG(s.kernels_run == s.kernels_queued, "%llu kernels queued, %llu run",
              (unsigned long long)s.kernels_queued, (unsigned long long)s.kernels_run);
    CHECK_MSG(s.kernels_refused == 0, "the stub refused %llu kernel calls (lx gave it nodes it "
              "does not support or host pointers)", (unsigned long long)s.kernels_refused);
    CHECK_MSG(s.live_blocks == 0 && s.live_imports == 0, "the stub still holds %llu blocks "
              "(%llu bytes, %llu imports) with every array freed and the cache cleared",
              (unsigned long long)s.live_blocks, (unsigned long long)s.live_bytes,
              (unsigned long long)s.live_imports);
    CHECK_MSG(s.live_events == 0, "%llu stub events were never freed",
              (unsigned long long)s.live_events);
    CHECK_MSG(s.events_recorded > 0, "lx recorded no event on an asynchronous device");
    CHECK_MSG(s.violations == 0, "the stub caught %llu violations; the first: %s",
              (unsigned long long)s.violations, s.first_violation);
}

/* ---- the loader ---------------------------------------------------------------------------- */

static void test_loader(void) {
    const char *info = lx_backend_info();
    printf("  %s\n", info);
    CHECK(lx_gpu_available());
    CHECK_MSG(strstr(info, "gpu: stub") != NULL, "lx_backend_info does not name the stub: %s", info);
    CHECK_MSG(strstr(info, "score 5") != NULL, "lx_backend_info does not give its score: %s", info);
    CHECK_MSG(strstr(info, "tests/stub_device") != NULL, "no description: %s", info);
    CHECK(lx_default_device() == LX_CPU); /* the GPU serves when asked */
    CHECK_OK(lx_set_default_device(LX_GPU));
    CHECK(lx_default_device() == LX_GPU);
    CHECK_MSG(find_stub_module(), "the stub's counters are not reachable (dlopen RTLD_NOLOAD of "
              "%s: %s)", getenv("LX_DEVICE_MODULES"), dlerror());
}

/* absent WHY: no GPU, and the info says why; the CPU carries on. */
static int run_absent(const char *why) {
    const char *info = lx_backend_info();
    printf("  %s\n", info);
    CHECK(!lx_gpu_available());
    CHECK_MSG(strstr(info, "gpu: none") != NULL, "info: %s", info);
    CHECK_MSG(why && strstr(info, why) != NULL, "lx_backend_info does not say '%s': %s",
              why ? why : "", info);
    CHECK(lx_set_default_device(LX_GPU) == LX_E_DEVICE);
    CHECK(strstr(lx_error_message(), "no usable GPU") != NULL);
    lx_clear_error();
    CHECK(lx_default_device() == LX_CPU);
    lx_array a = lx_add(X3(), Y3());
    const float *p = lx_data(a);
    CHECK(p && p[17] == g_x[17] + g_y[17]);
    lx_sweep();
    return test_finish();
}

/* ---- entry: the module alone, through its entry point ------------------------------------ */

static char e_msg[512];
static lx_status e_status;
static const char *e_env_delay = "0";
static const char *e_env_fail = NULL;

static lx_status e_set_error_v(lx_status st, const char *fmt, va_list ap) {
    vsnprintf(e_msg, sizeof e_msg, fmt, ap);
    e_status = st;
    return st;
}
static lx_status e_set_error(lx_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    e_set_error_v(st, fmt, ap);
    va_end(ap);
    return st;
}
static const char *e_prim_name(int p) {
    switch (p) {
    case LX_PRIM_COPY: return "COPY";
    case LX_PRIM_BINARY: return "BINARY";
    case LX_PRIM_MATMUL: return "MATMUL";
    default: return "PRIM";
    }
}
static const char *e_getenv(const char *name) {
    if (strcmp(name, "LX_STUB_DELAY_US") == 0) return e_env_delay;
    if (strcmp(name, "LX_STUB_FAIL") == 0) return e_env_fail;
    return NULL;
}
/* Kernel scratch as lx gives it: device memory, freed once the work has run (e_scratch_free
 * after a synchronize). */
static void *e_scratch_p[64];
static size_t e_scratch_n[64];
static int e_n_scratch;
static void *e_scratch(lx_kctx *ctx, size_t n) {
    if (e_n_scratch == 64) return NULL;
    void *p = ctx->dev->alloc(ctx->dev, n);
    if (p) {
        e_scratch_p[e_n_scratch] = p;
        e_scratch_n[e_n_scratch++] = n;
    }
    return p;
}
static void e_scratch_free(const lx_device_impl *d) {
    d->synchronize(d);
    for (int i = 0; i < e_n_scratch; i++) d->free(d, e_scratch_p[i], e_scratch_n[i]);
    e_n_scratch = 0;
}
static const lx_core_api e_core = {
    .version = LX_DEVICE_API_VERSION,
    .size = sizeof(lx_core_api),
    .set_error = e_set_error,
    .set_error_v = e_set_error_v,
    .scratch = e_scratch,
    .prim_name = e_prim_name,
    .getenv = e_getenv,
};

static void e_clear(void) {
    e_msg[0] = '\0';
    e_status = LX_OK;
}

/* A READY node over device memory. */
static void e_node(lx_node *n, lx_buffer *b, void *ptr, lx_dtype t, const int *shape, int nd) {
    memset(n, 0, sizeof *n);
    memset(b, 0, sizeof *b);
    b->ptr = ptr;
    b->device = LX_GPU;
    n->buf = b;
    n->dtype = (uint8_t)t;
    n->ndim = (uint8_t)nd;
    n->device = LX_GPU;
    n->size = 1;
    for (int d = nd - 1; d >= 0; d--) {
        n->shape[d] = shape[d];
        n->strides[d] = n->size;
        n->size *= shape[d];
    }
    atomic_store(&n->state, LX_NODE_READY);
    n->op = "test";
    n->inputs = n->inline_inputs;
}


/* Uploads host bytes into a fresh stub block. */
static void *e_upload(const lx_device_impl *d, const void *host, size_t n) {
    void *p = d->alloc(d, n ? n : 1);
    if (p && n && d->copy_from_host(d, p, host, n) != LX_OK) {
        d->free(d, p, n ? n : 1);
        return NULL;
    }
    return p;
}

/* Runs out (whose buf is set by the caller) on the stub and reads its nbytes back. */
static bool e_run(const lx_device_impl *d, lx_node *out, void *host_out, size_t nbytes) {
    lx_kctx ctx = {.dev = d};
    e_clear();
    if (d->kernels[out->prim](&ctx, out) != LX_OK) {
        fprintf(stderr, "  stub kernel: %s\n", e_msg);
        return false;
    }
    return d->copy_to_host(d, host_out, out->buf->ptr, nbytes) == LX_OK;
}

/* The stub's kernels against the CPU's (lx's own ops on the CPU), bit for bit: COPY for every
 * dtype pair and a transposed input, UNARY and BINARY float32 for the stub's ops (with a
 * broadcast operand), MATMUL within float32 rounding. */
static void e_conformance(const lx_device_impl *d) {
    static const double vals[] = {0.0, -0.0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3.75, 127, 128,
                                  255, 256, -129, -32769, 65504, 65520, 70000, 1e10, -1e10,
                                  3.4e38, -3.4e38, 1e-8, 1e-40, 1e300, INFINITY, -INFINITY, NAN,
                                  1e19, -9.3e18, 4294967296.0, 0.1, 1.0 / 3, 2147483648.0,
                                  -2147483649.0, 0.99999, 6.5e4, 1e-5, 123456789.123};
    enum { NV = sizeof vals / sizeof vals[0] };
    lx_array base = lx_array_new(vals, (int[]){NV}, 1, LX_FLOAT64);
    lx_keep(base);
    int pairs_bad = 0;
    for (int st = 0; st < LX_DTYPE_COUNT; st++) {
        lx_array src = lx_astype(base, (lx_dtype)st);
        lx_keep(src);
        size_t sn = lx_nbytes(src);
        unsigned char sb[NV * 8];
        CHECK_OK(lx_read(src, sb, sn));
        void *dsrc = e_upload(d, sb, sn);
        for (int dt = 0; dt < LX_DTYPE_COUNT; dt++) {
            lx_array want_a = lx_astype(src, (lx_dtype)dt);
            unsigned char want[NV * 8], got[NV * 8];
            size_t dn = lx_nbytes(want_a);
            CHECK_OK(lx_read(want_a, want, dn));
            void *ddst = d->alloc(d, dn);
            lx_node in, out;
            lx_buffer bi, bo;
            e_node(&in, &bi, dsrc, (lx_dtype)st, (int[]){NV}, 1);
            e_node(&out, &bo, ddst, (lx_dtype)dt, (int[]){NV}, 1);
            out.prim = LX_PRIM_COPY;
            out.n_inputs = 1;
            out.inputs[0] = &in;
            bool ok = e_run(d, &out, got, dn) && memcmp(got, want, dn) == 0;
            if (!ok && pairs_bad++ < 5) {
                for (int i = 0; i < NV; i++)
                    if (memcmp(got + i * lx_dtype_size((lx_dtype)dt),
                               want + i * lx_dtype_size((lx_dtype)dt), lx_dtype_size((lx_dtype)dt))) {
                        fprintf(stderr, "  COPY %s -> %s: element %d (%g): stub %g, cpu %g\n",
                                lx_dtype_name((lx_dtype)st), lx_dtype_name((lx_dtype)dt), i,
                                vals[i], elem((lx_dtype)dt, got, (size_t)i),
                                elem((lx_dtype)dt, want, (size_t)i));
                        break;
                    }
            }
            d->free(d, ddst, dn);
        }
        d->free(d, dsrc, sn ? sn : 1);
        lx_free(src);
        lx_sweep();
    }
    CHECK_MSG(pairs_bad == 0, "%d dtype pairs of COPY differ from the CPU's astype", pairs_bad);

    /* a transposed float32 [5, 8] -> bfloat16 row-major */
    float m[40];
    for (int i = 0; i < 40; i++) m[i] = (float)vals[i % NV] * 0.37f;
    lx_array ma = lx_array_f32(m, (int[]){8, 5}, 2);
    lx_keep(ma);
    lx_array mt = lx_astype(lx_transpose(ma, NULL, 0), LX_BFLOAT16);
    uint16_t want16[40], got16[40];
    CHECK_OK(lx_read(mt, want16, sizeof want16));
    void *dm = e_upload(d, m, sizeof m), *dout = d->alloc(d, sizeof got16);
    lx_node in, out, in2;
    lx_buffer bi, bo, bi2;
    e_node(&in, &bi, dm, LX_FLOAT32, (int[]){5, 8}, 2);
    in.strides[0] = 1;
    in.strides[1] = 5;
    e_node(&out, &bo, dout, LX_BFLOAT16, (int[]){5, 8}, 2);
    out.prim = LX_PRIM_COPY;
    out.n_inputs = 1;
    out.inputs[0] = &in;
    CHECK(e_run(d, &out, got16, sizeof got16) && memcmp(got16, want16, sizeof got16) == 0);
    d->free(d, dout, sizeof got16);

    /* UNARY float32, the stub's ops, on the same values as float32 */
    float fv[NV], fw[NV], gotf[NV], wantf[NV];
    for (int i = 0; i < NV; i++) {
        fv[i] = (float)vals[i];
        fw[i] = (float)vals[(i * 7 + 3) % NV];
    }
    static const struct { int op; lx_array (*fn)(lx_array); } un[] = {
        {LX_UNARY_NEG, lx_neg}, {LX_UNARY_ABS, lx_abs}, {LX_UNARY_SQUARE, lx_square},
        {LX_UNARY_SQRT, lx_sqrt}, {LX_UNARY_RSQRT, lx_rsqrt},
        {LX_UNARY_RECIPROCAL, lx_reciprocal}, {LX_UNARY_EXP, lx_exp}, {LX_UNARY_LOG, lx_log},
        {LX_UNARY_SIN, lx_sin}, {LX_UNARY_COS, lx_cos}, {LX_UNARY_TANH, lx_tanh},
        {LX_UNARY_SIGMOID, lx_sigmoid}, {LX_UNARY_SILU, lx_silu}, {LX_UNARY_RELU, lx_relu}};
    void *dv = e_upload(d, fv, sizeof fv), *dw = e_upload(d, fw, sizeof fw);
    void *dy = d->alloc(d, sizeof gotf);
    lx_array av = lx_array_f32(fv, (int[]){NV}, 1), aw = lx_array_f32(fw, (int[]){NV}, 1);
    lx_keep(av, aw);
    for (size_t k = 0; k < sizeof un / sizeof un[0]; k++) {
        CHECK_OK(lx_read(un[k].fn(av), wantf, sizeof wantf));
        lx_unary_params up = {un[k].op};
        e_node(&in, &bi, dv, LX_FLOAT32, (int[]){NV}, 1);
        e_node(&out, &bo, dy, LX_FLOAT32, (int[]){NV}, 1);
        out.prim = LX_PRIM_UNARY;
        out.n_inputs = 1;
        out.inputs[0] = &in;
        out.params = &up;
        out.params_size = sizeof up;
        bool ok = e_run(d, &out, gotf, sizeof gotf) && memcmp(gotf, wantf, sizeof gotf) == 0;
        CHECK_MSG(ok, "UNARY op %d on the stub differs from the CPU's", un[k].op);
        lx_sweep();
    }
    static const struct { int op; lx_array (*fn)(lx_array, lx_array); } bin[] = {
        {LX_BINARY_ADD, lx_add}, {LX_BINARY_SUB, lx_sub}, {LX_BINARY_MUL, lx_mul},
        {LX_BINARY_DIV, lx_div}, {LX_BINARY_POW, lx_pow}, {LX_BINARY_MAXIMUM, lx_maximum},
        {LX_BINARY_MINIMUM, lx_minimum}};
    for (size_t k = 0; k < sizeof bin / sizeof bin[0]; k++) {
        for (int bc = 0; bc < 2; bc++) { /* bc: b is element 5 broadcast (stride 0) */
            lx_array bw = bc ? lx_broadcast_to(lx_slice(aw, (int[]){5}, (int[]){6}, NULL, 1),
                                               (int[]){NV}, 1)
                             : aw;
            CHECK_OK(lx_read(bin[k].fn(av, bw), wantf, sizeof wantf));
            lx_binary_params bp = {bin[k].op};
            e_node(&in, &bi, dv, LX_FLOAT32, (int[]){NV}, 1);
            e_node(&in2, &bi2, dw, LX_FLOAT32, (int[]){NV}, 1);
            if (bc) {
                in2.offset = 5;
                in2.strides[0] = 0;
            }
            e_node(&out, &bo, dy, LX_FLOAT32, (int[]){NV}, 1);
            out.prim = LX_PRIM_BINARY;
            out.n_inputs = 2;
            out.inputs[0] = &in;
            out.inputs[1] = &in2;
            out.params = &bp;
            out.params_size = sizeof bp;
            bool ok = e_run(d, &out, gotf, sizeof gotf) && memcmp(gotf, wantf, sizeof gotf) == 0;
            CHECK_MSG(ok, "BINARY op %d%s on the stub differs from the CPU's", bin[k].op,
                      bc ? " (broadcast b)" : "");
            lx_sweep();
        }
    }
    /* MATMUL [2, 5, 8] @ [8, 3] (b broadcast over the batch) */
    float b83[24], got_mm[30], want_mm[30];
    for (int i = 0; i < 24; i++) b83[i] = (float)(i % 7) * 0.25f - 0.6f;
    lx_array mm = lx_matmul(lx_reshape(ma, (int[]){1, 5, 8}, 3), lx_array_f32(b83, (int[]){8, 3}, 2));
    CHECK_OK(lx_read(mm, want_mm, 15 * sizeof(float)));
    void *db = e_upload(d, b83, sizeof b83), *dmm = d->alloc(d, sizeof got_mm);
    e_node(&in, &bi, dm, LX_FLOAT32, (int[]){2, 5, 8}, 3);
    in.strides[0] = 0; /* the same matrix twice */
    e_node(&in2, &bi2, db, LX_FLOAT32, (int[]){2, 8, 3}, 3);
    in2.strides[0] = 0;
    e_node(&out, &bo, dmm, LX_FLOAT32, (int[]){2, 5, 3}, 3);
    out.prim = LX_PRIM_MATMUL;
    out.n_inputs = 2;
    out.inputs[0] = &in;
    out.inputs[1] = &in2;
    bool ok = e_run(d, &out, got_mm, sizeof got_mm);
    for (int i = 0; ok && i < 30; i++) ok = t_close(got_mm[i], want_mm[i % 15], 1e-5, 1e-6);
    CHECK_MSG(ok, "MATMUL on the stub differs from the CPU's");
    e_scratch_free(d);
    d->free(d, dm, sizeof m);
    d->free(d, dv, sizeof fv);
    d->free(d, dw, sizeof fw);
    d->free(d, dy, sizeof gotf);
    d->free(d, db, sizeof b83);
    d->free(d, dmm, sizeof got_mm);
    lx_free(base);
    lx_free(ma);
    lx_free(av);
    lx_free(aw);
    lx_sweep();
}

static int run_entry(void) {
    const char *path = getenv("LX_STUB_MODULE");
    if (!path) {
        fprintf(stderr, "LX_STUB_MODULE is not set\n");
        return 77;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(h != NULL, "dlopen %s: %s", path, dlerror());
    if (!h) return test_finish();
    lx_device_module_init_fn init;
    *(void **)&init = dlsym(h, LX_DEVICE_MODULE_ENTRY);
    *(void **)&g_stats = dlsym(h, LX_STUB_GET_STATS);
    CHECK(init != NULL && g_stats != NULL);
    if (!init || !g_stats) return test_finish();

    const lx_device_impl *devs[4] = {0};
    char why[256];
    /* refusals, each with a reason */
    CHECK(init(LX_DEVICE_API_VERSION + 7, &e_core, devs, 4, why, sizeof why) == 0);
    CHECK_MSG(strstr(why, "interface") != NULL, "version refusal says: %s", why);
    CHECK(init(LX_DEVICE_API_VERSION, NULL, devs, 4, why, sizeof why) == 0 && why[0]);
    CHECK(init(LX_DEVICE_API_VERSION, &e_core, devs, 0, why, sizeof why) == 0 && why[0]);
    e_env_fail = "init";
    CHECK(init(LX_DEVICE_API_VERSION, &e_core, devs, 4, why, sizeof why) == 0);
    CHECK_MSG(strstr(why, "LX_STUB_FAIL=init") != NULL, "LX_STUB_FAIL refusal says: %s", why);
    e_env_fail = NULL;

    /* the kernels against the CPU's, without a delay */
    e_env_delay = "0";
    CHECK(init(LX_DEVICE_API_VERSION, &e_core, devs, 4, why, sizeof why) == 1);
    if (devs[0]) e_conformance(devs[0]);
    CHECK(stub_stats().violations == 0);

    /* the device again, with a worker delay of 200 ms, so queued work is still queued below */
    e_env_delay = "200000";
    CHECK(init(LX_DEVICE_API_VERSION, &e_core, devs, 4, why, sizeof why) == 1);
    const lx_device_impl *d = devs[0];
    CHECK(d && d->api_version == LX_DEVICE_API_VERSION && d->size == sizeof(lx_device_impl));
    if (!d) return test_finish();
    CHECK(strcmp(d->name, "stub") == 0 && d->kind == LX_GPU && d->score > 0 && !d->host_visible);
    CHECK(d->kernels[LX_PRIM_COPY] && d->kernels[LX_PRIM_FULL] && d->kernels[LX_PRIM_UNARY] &&
          d->kernels[LX_PRIM_BINARY] && d->kernels[LX_PRIM_MATMUL]);
    CHECK(!d->kernels[LX_PRIM_SOFTMAX] && !d->kernels[LX_PRIM_RMS_NORM] &&
          !d->kernels[LX_PRIM_REDUCE]);
    CHECK(d->event_record && d->event_wait && d->event_query && d->event_free && d->synchronize);
    size_t fb = 0, tb = 0;
    CHECK(d->memory_info(d, &fb, &tb) == LX_OK && tb == (size_t)1024 << 20 && fb == tb);

    /* memory: poisoned when fresh, copies both ways, memset, device copy, import */
    unsigned char host[256];
    void *m1 = d->alloc(d, 100);
    CHECK(m1 != NULL);
    CHECK(d->copy_to_host(d, host, m1, 100) == LX_OK);
    CHECK_MSG(host[0] == 0xA5 && host[1] == 0x7F && host[98] == 0xA5, "fresh memory is not "
              "poisoned: %02x %02x", host[0], host[1]);
    float pf;
    memcpy(&pf, host, 4);
    CHECK(isnan(pf));
    for (int i = 0; i < 100; i++) host[i] = (unsigned char)i;
    CHECK(d->copy_from_host(d, m1, host, 100) == LX_OK);
    void *m2 = d->alloc(d, 100);
    CHECK(d->copy(d, m2, m1, 100) == LX_OK);
    CHECK(d->memset(d, (char *)m2 + 10, 0xEE, 5) == LX_OK);
    memset(host, 0, sizeof host);
    CHECK(d->copy_to_host(d, host, m2, 100) == LX_OK);
    CHECK(host[9] == 9 && host[10] == 0xEE && host[14] == 0xEE && host[15] == 15 && host[99] == 99);
    void *imp = NULL;
    float hv[6] = {1, 2, 3, 4, 5, 6};
    CHECK(d->import_host(d, hv, sizeof hv, &imp) == LX_OK && imp && imp != (void *)hv);
    hv[0] = 100; /* an upload: later host writes do not reach the device */
    float back[6];
    CHECK(d->copy_to_host(d, back, imp, sizeof back) == LX_OK && back[0] == 1 && back[5] == 6);

    /* what it refuses: host pointers as device memory, device pointers as host memory */
    e_clear();
    CHECK(d->copy_to_host(d, host, hv, 8) == LX_E_DEVICE);
    CHECK_MSG(strstr(e_msg, "not inside a live stub block") != NULL, "message: %s", e_msg);
    e_clear();
    CHECK(d->copy_from_host(d, m1, m2, 8) == LX_E_DEVICE);
    CHECK_MSG(strstr(e_msg, "device pointer given as host memory") != NULL, "message: %s", e_msg);
    e_clear();
    CHECK(d->copy_to_host(d, host, (char *)m1 + 90, 20) == LX_E_DEVICE); /* past the end */

    /* events */
    lx_event *e0 = d->event_record(d, NULL);
    CHECK(e0 && d->event_query(d, e0));
    CHECK(d->event_wait(d, e0) == LX_OK);
    d->event_free(d, e0);

    /* kernels on hand-made nodes: BINARY add with a broadcast input */
    float av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30};
    void *da = d->alloc(d, sizeof av), *db = d->alloc(d, sizeof bv), *dc = d->alloc(d, 24);
    CHECK(d->copy_from_host(d, da, av, sizeof av) == LX_OK);
    CHECK(d->copy_from_host(d, db, bv, sizeof bv) == LX_OK);
    lx_node na, nb, nc;
    lx_buffer ba, bb, bc;
    e_node(&na, &ba, da, LX_FLOAT32, (int[]){2, 3}, 2);
    e_node(&nb, &bb, db, LX_FLOAT32, (int[]){3}, 1);
    e_node(&nc, &bc, dc, LX_FLOAT32, (int[]){2, 3}, 2);
    lx_binary_params bp = {LX_BINARY_ADD};
    nc.prim = LX_PRIM_BINARY;
    nc.n_inputs = 2;
    nc.inputs[0] = &na;
    nc.inputs[1] = &nb;
    nc.params = &bp;
    nc.params_size = sizeof bp;
    atomic_store(&nc.state, LX_NODE_SCHEDULED);
    CHECK(d->supports(d, &nc));
    lx_kctx ctx = {.dev = d};
    double t0 = t_now_s();
    CHECK(d->kernels[LX_PRIM_BINARY](&ctx, &nc) == LX_OK);
    CHECK_MSG(t_now_s() - t0 < 0.15, "the kernel did not return before its work ran");
    lx_event *e1 = d->event_record(d, NULL);
    CHECK(e1 && !d->event_query(d, e1)); /* still queued (200 ms) */
    memset(&na, 0, sizeof na);           /* the node may be detached: the work has a copy */
    memset(&nb, 0, sizeof nb);
    memset(&nc, 0, sizeof nc);
    CHECK(d->event_wait(d, e1) == LX_OK && d->event_query(d, e1));
    d->event_free(d, e1);
    float cv[6];
    CHECK(d->copy_to_host(d, cv, dc, sizeof cv) == LX_OK);
    CHECK_MSG(cv[0] == 11 && cv[2] == 33 && cv[3] == 14 && cv[5] == 36, "add: %g %g %g %g",
              (double)cv[0], (double)cv[2], (double)cv[3], (double)cv[5]);

    /* COPY float32 -> float16 of a transposed view; MATMUL; FULL */
    e_node(&na, &ba, da, LX_FLOAT32, (int[]){3, 2}, 2); /* da as [2, 3] transposed */
    na.strides[0] = 1;
    na.strides[1] = 3;
    void *dh = d->alloc(d, 12);
    e_node(&nc, &bc, dh, LX_FLOAT16, (int[]){3, 2}, 2);
    nc.prim = LX_PRIM_COPY;
    nc.n_inputs = 1;
    nc.inputs[0] = &na;
    CHECK(d->kernels[LX_PRIM_COPY](&ctx, &nc) == LX_OK);
    uint16_t hh[6];
    CHECK(d->copy_to_host(d, hh, dh, sizeof hh) == LX_OK); /* waits for the queue */
    CHECK(lx_f16_to_f32(hh[0]) == 1 && lx_f16_to_f32(hh[1]) == 4 && lx_f16_to_f32(hh[2]) == 2 &&
          lx_f16_to_f32(hh[5]) == 6);
    e_node(&na, &ba, da, LX_FLOAT32, (int[]){2, 3}, 2);
    e_node(&nb, &bb, imp, LX_FLOAT32, (int[]){3, 2}, 2); /* imported [[1,2],[3,4],[5,6]] */
    void *dm = d->alloc(d, 16);
    e_node(&nc, &bc, dm, LX_FLOAT32, (int[]){2, 2}, 2);
    nc.prim = LX_PRIM_MATMUL;
    nc.n_inputs = 2;
    nc.inputs[0] = &na;
    nc.inputs[1] = &nb;
    CHECK(d->kernels[LX_PRIM_MATMUL](&ctx, &nc) == LX_OK);
    CHECK(d->synchronize(d) == LX_OK);
    float mv[4];
    CHECK(d->copy_to_host(d, mv, dm, sizeof mv) == LX_OK);
    CHECK_MSG(mv[0] == 22 && mv[1] == 28 && mv[2] == 49 && mv[3] == 64, "matmul: %g %g %g %g",
              (double)mv[0], (double)mv[1], (double)mv[2], (double)mv[3]);
    lx_full_params fp = {-2.5};
    e_node(&nc, &bc, dm, LX_FLOAT32, (int[]){4}, 1);
    nc.prim = LX_PRIM_FULL;
    nc.params = &fp;
    nc.params_size = sizeof fp;
    CHECK(d->kernels[LX_PRIM_FULL](&ctx, &nc) == LX_OK);
    CHECK(d->copy_to_host(d, mv, dm, sizeof mv) == LX_OK && mv[0] == -2.5f && mv[3] == -2.5f);

    /* supports(): the rest is refused */
    lx_unary_params up = {LX_UNARY_ERF};
    e_node(&na, &ba, da, LX_FLOAT32, (int[]){6}, 1);
    e_node(&nc, &bc, dc, LX_FLOAT32, (int[]){6}, 1);
    nc.prim = LX_PRIM_UNARY;
    nc.n_inputs = 1;
    nc.inputs[0] = &na;
    nc.params = &up;
    nc.params_size = sizeof up;
    CHECK(!d->supports(d, &nc));
    up.op = LX_UNARY_EXP;
    CHECK(d->supports(d, &nc));
    na.dtype = LX_FLOAT16;
    CHECK(!d->supports(d, &nc)); /* float16 UNARY: not the stub's */
    e_clear();
    CHECK(d->kernels[LX_PRIM_UNARY](&ctx, &nc) == LX_E_DEVICE); /* handed one anyway */
    CHECK_MSG(strstr(e_msg, "supports() refuses") != NULL, "message: %s", e_msg);
    nc.prim = LX_PRIM_SOFTMAX;
    CHECK(!d->supports(d, &nc));

    /* a kernel handed a host pointer fails, naming the input */
    float hostv[6] = {0};
    e_node(&na, &ba, hostv, LX_FLOAT32, (int[]){6}, 1);
    na.buf->device = LX_CPU;
    nc.prim = LX_PRIM_UNARY;
    e_clear();
    CHECK(d->kernels[LX_PRIM_UNARY](&ctx, &nc) == LX_E_DEVICE);
    CHECK_MSG(strstr(e_msg, "input 0") && strstr(e_msg, "not stub device memory"), "message: %s",
              e_msg);

    /* lx releasing a block while a queued kernel reads it: caught, reported at the next sync */
    lx_stub_stats s0 = stub_stats();
    e_node(&na, &ba, da, LX_FLOAT32, (int[]){6}, 1);
    CHECK(d->kernels[LX_PRIM_UNARY](&ctx, &nc) == LX_OK);
    d->free(d, da, sizeof av); /* the kernel is still queued (200 ms) */
    lx_stub_stats s1 = stub_stats();
    CHECK_MSG(s1.violations == s0.violations + 1 && strstr(s1.last_violation, "queued kernel"),
              "freeing a block in use: %s", s1.last_violation);
    e_clear();
    CHECK(d->synchronize(d) == LX_E_DEVICE);
    CHECK(strstr(e_msg, "contract violation") != NULL);
    CHECK(d->synchronize(d) == LX_OK); /* reported once */
    /* and a free of something that is not a block */
    d->free(d, hostv, sizeof hostv);
    CHECK(stub_stats().violations == s0.violations + 2);
    CHECK(d->synchronize(d) == LX_E_DEVICE);

    e_scratch_free(d);
    d->free(d, m1, 100);
    d->free(d, m2, 100);
    d->free(d, db, sizeof bv);
    d->free(d, dc, 24);
    d->free(d, dh, 12);
    d->free(d, dm, 16);
    d->release_import(d, imp, sizeof hv);
    lx_stub_stats s2 = stub_stats();
    CHECK_MSG(s2.live_blocks == 0 && s2.live_bytes == 0 && s2.live_events == 0,
              "left: %llu blocks, %llu bytes, %llu events", (unsigned long long)s2.live_blocks,
              (unsigned long long)s2.live_bytes, (unsigned long long)s2.live_events);
    CHECK(s2.violations == s0.violations + 2);
    if (d->shutdown) d->shutdown(d);
    return test_finish();
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    init_data();
    /* The stub's kernels are built for the baseline ISA (no FMA contraction in values.h's
     * LX_EW_FMA, the baseline erf polynomial), and bit-identity holds within one CPU variant,
     * not across them (test_backend_ops bounds the differences between variants): compare
     * against the CPU's baseline variant. */
    if (!lx_cpu_use_variant("generic")) {
        printf("the CPU's generic variant is not usable: skipped\n");
        return 77;
    }
    if (strcmp(mode, "entry") == 0) return run_entry();
    if (strcmp(mode, "absent") == 0) return run_absent(argc > 2 ? argv[2] : NULL);
    if (!getenv("LX_DEVICE_MODULES")) {
        printf("LX_DEVICE_MODULES is not set (CTest sets it to liblx-stub.so): skipped\n");
        return 77;
    }
    RUN_TEST(test_loader);
    if (!lx_gpu_available()) return test_finish();
    RUN_TEST(test_reads);
    RUN_TEST(test_placement_ops);
    RUN_TEST(test_async);
    RUN_TEST(test_memory_baseline);
    RUN_TEST(test_flat_loop);
    RUN_TEST(test_stub_oom_and_eviction);
    RUN_TEST(test_threads);
    if (strcmp(mode, "all") == 0) {
        RUN_TEST(test_tiny_llama);
        RUN_TEST(test_tiny_qwen3);
        RUN_TEST(test_kv_in_place);
    }
    RUN_TEST(test_nothing_left);
    return test_finish();
}
