/*
 * test_compile.c -- compiled closures (src/eval/compile.c) and the FUSED kernel
 * (src/backend/cpu/fused.c).
 *
 * The oracle is the same function run uncompiled (lx_set_compile_enabled(false)): a compiled
 * call must give the same values (within 1e-6 relative; in practice the same bits, since the
 * fused kernel rounds to each op's dtype exactly as the separate kernels do) on random inputs,
 * for many graphs: the GELU chain, GPT-OSS's SwiGLU, top-k and top-p samplers, norms built from
 * primitives, multi-output groups, integer/bool/half-precision chains, broadcasting, a decode
 * step whose rope position is an input (lx_rope_at).
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

#include "graph/fused.h"
#include "graph/prims.h"
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

/* Division by constants that are powers of two in float32 (4294967295.0 rounds to 2^32) becomes
 * a multiplication in the fused program; by 3 it stays a division. Same values either way,
 * subnormal results included. */
static lx_status fn_div_consts(void *ctx, const lx_array *in, int n_in, lx_array *out,
                               int n_out) {
    /* each negated, so that every output is a fused chain */
    out[0] = lx_neg(lx_div_scalar(in[0], 4294967295.0));
    out[1] = lx_neg(lx_div_scalar(in[0], 0.125));
    out[2] = lx_neg(lx_div_scalar(in[0], 3.0));
    return LX_OK;
}

static void test_div_by_constants(void) {
    t_seed(9);
    enum { N = 4096 };
    float d[N];
    const float specials[] = {0.0f, -0.0f, 1e-45f, -3e-39f, 1.17549435e-38f, 3e-29f, 5.4e-29f,
                              1.0f, -7.5f, 3.4e38f, -3.4e38f, INFINITY, -INFINITY, NAN};
    const int ns = (int)(sizeof specials / sizeof *specials);
    for (int i = 0; i < N; i++) {
        /* every magnitude: random bits, then the specials */
        uint32_t u = (uint32_t)(t_uniform(0, 4294967295.0));
        memcpy(&d[i], &u, sizeof u);
        if (d[i] != d[i]) d[i] = 1.5f;
        if (i < ns) d[i] = specials[i];
    }
    lx_array x = lx_array_f32(d, (const int[]){N}, 1);
    lx_closure *c = lx_compile(fn_div_consts, NULL, 3, 0);
    CHECK(c != NULL);
    compare_call("x / constants", c, &x, 1, 3, 0.0);
    lx_array y[3];
    CHECK_OK(lx_call(c, &x, 1, y, 3));
    int muls = 0, divs = 0;
    lx_node *hold[3];
    const lx_fused_header *h[3];
    for (int j = 0; j < 3; j++) { /* one program for the three, or one each */
        h[j] = program_of(y[j], &hold[j]);
        CHECK_MSG(h[j] != NULL, "output %d is not fused", j);
        if (h[j] && (j == 0 || h[j] != h[j - 1])) {
            muls += count_instr(h[j], LX_FOP_BINARY, LX_BINARY_MUL);
            divs += count_instr(h[j], LX_FOP_BINARY, LX_BINARY_DIV);
        }
    }
    for (int j = 0; j < 3; j++)
        if (hold[j]) lx_node_release(hold[j]);
    CHECK_MSG(muls == 2 && divs == 1, "%d multiplications, %d divisions", muls, divs);
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


/* ---- samplers ---- */

typedef struct {
    int k;
    float temp, top_p;
} sampler_cfg;

/* top-k: keep the k largest logits, draw from them; outputs the token and the next key */
static lx_status fn_topk(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    const sampler_cfg *cfg = ctx;
    lx_array k1, k2;
    lx_status st = lx_random_split(in[1], &k1, &k2);
    if (st != LX_OK) return st;
    lx_array x = lx_div_scalar(in[0], cfg->temp);
    lx_array kth = lx_min(lx_topk(x, cfg->k, -1), -1, true);
    lx_array masked = lx_where(lx_less(x, kth), lx_scalar_f32(-INFINITY), x);
    out[0] = lx_random_categorical(masked, -1, k2);
    out[1] = k1;
    return LX_OK;
}

/* top-p as mlx-lm: sort ascending, keep the tail whose mass exceeds 1 - p, draw from it */
static lx_status fn_topp(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    const sampler_cfg *cfg = ctx;
    lx_array k1, k2;
    lx_status st = lx_random_split(in[1], &k1, &k2);
    if (st != LX_OK) return st;
    lx_array probs = lx_softmax(lx_mul_scalar(in[0], 1.0 / cfg->temp), -1);
    lx_array idx = lx_argsort(probs, -1);
    lx_array sp = lx_take_along_axis(probs, idx, -1);
    lx_array cp = lx_cumsum(sp, -1);
    lx_array top = lx_where(lx_greater(cp, lx_scalar_f32(1.0f - cfg->top_p)), sp,
                            lx_scalar_f32(0.0f));
    lx_array s = lx_random_categorical(lx_log(top), -1, k2);       /* [B] */
    lx_array s2 = lx_expand_dims(s, (const int[]){-1}, 1);          /* [B, 1] */
    out[0] = lx_squeeze(lx_take_along_axis(idx, s2, -1), (const int[]){-1}, 1);
    out[1] = k1;
    return LX_OK;
}

static void run_sampler(const char *what, lx_fn fn, sampler_cfg *cfg, int vocab) {
    lx_closure *c = lx_compile(fn, cfg, 2, 0);
    lx_array logits = rand_f32((const int[]){2, vocab}, 2, -3, 3);
    lx_keep(logits);
    lx_array key_c = lx_random_key(7), key_u = lx_random_key(7);
    int distinct = 0;
    uint32_t first = 0;
    for (int step = 0; step < 12; step++) {
        lx_array oc[2], ou[2];
        CHECK_OK(lx_call(c, (const lx_array[]){logits, key_c}, 2, oc, 2));
        bool prev = lx_set_compile_enabled(false);
        CHECK_OK(lx_call(c, (const lx_array[]){logits, key_u}, 2, ou, 2));
        lx_set_compile_enabled(prev);
        CHECK_OK(lx_eval(oc[0], oc[1], ou[0], ou[1]));
        char name[64];
        snprintf(name, sizeof name, "%s step %d token", what, step);
        check_same(name, oc[0], ou[0], 0.0);
        snprintf(name, sizeof name, "%s step %d key", what, step);
        check_same(name, oc[1], ou[1], 0.0);
        uint32_t tok[2];
        lx_array t32 = lx_astype(oc[0], LX_UINT32);
        CHECK_OK(lx_read(t32, tok, sizeof tok));
        if (step == 0) first = tok[0];
        else if (tok[0] != first) distinct++;
        CHECK(tok[0] < (uint32_t)vocab && tok[1] < (uint32_t)vocab);
        lx_free(key_c);
        lx_free(key_u);
        key_c = oc[1]; /* kept by the eval */
        key_u = ou[1];
        lx_free(oc[0]);
        lx_free(ou[0]);
    }
    CHECK_MSG(distinct > 0, "%s: the key does not advance: the same token every step", what);
    CHECK(lx_closure_trace_count(c) == 1);
    lx_free(logits);
    lx_free(key_c);
    lx_free(key_u);
    lx_closure_free(c);
}

static void test_samplers(void) {
    t_seed(5);
    sampler_cfg k = {.k = 40, .temp = 0.8f};
    run_sampler("top-k", fn_topk, &k, 1000);
    sampler_cfg p = {.temp = 1.0f, .top_p = 0.9f};
    run_sampler("top-p", fn_topp, &p, 1000);
}

/* ---- multi-output groups, dtypes, broadcasting, simplification ---- */

/* one chain with three outputs: s and e are intermediates the caller also gets */
static lx_status fn_multi(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array s = lx_add(in[0], in[1]);
    lx_array e = lx_mul(lx_exp(s), in[2]);
    out[0] = s;
    out[1] = e;
    out[2] = lx_astype(lx_sigmoid(e), LX_FLOAT16);
    return LX_OK;
}

/* an intermediate also consumed outside the group (by a reduction) becomes an extra output */
static lx_status fn_extra_out(void *ctx, const lx_array *in, int n_in, lx_array *out,
                              int n_out) {
    lx_array y = lx_mul_scalar(in[0], 2.0);
    out[0] = lx_add_scalar(lx_exp(y), 1.0);
    out[1] = lx_sum(y, -1, false);
    return LX_OK;
}

/* an intermediate whose outside consumer leads back into the group must not join it */
static lx_status fn_no_cycle(void *ctx, const lx_array *in, int n_in, lx_array *out,
                             int n_out) {
    lx_array y = lx_mul_scalar(in[0], 2.0);
    lx_array s = lx_sum(y, -1, true);
    out[0] = lx_add_scalar(lx_sub(y, s), 1.0);
    return LX_OK;
}

static lx_status fn_dtypes(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array c = lx_add_scalar(lx_mul(in[0], in[1]), 3);            /* int32, wraps */
    lx_array m = lx_greater(c, lx_scalar_i32(0));                   /* bool */
    lx_array f = lx_where(m, lx_mul_scalar(lx_astype(c, LX_FLOAT32), 0.5),
                          lx_scalar_f32(-1.0f));                     /* float32 */
    lx_array h = lx_add_scalar(lx_astype(f, LX_FLOAT16), 1.0);      /* float16 */
    lx_array u = lx_astype(lx_abs(c), LX_UINT8);                    /* wraps to uint8 */
    out[0] = h;
    out[1] = lx_logical_and(m, lx_logical_not(lx_isnan(f)));
    out[2] = c;
    out[3] = lx_add(u, lx_astype(m, LX_UINT8));
    return LX_OK;
}

static lx_status fn_bcast(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array t = lx_mul(in[0], in[1]);                 /* [4,1,6] * [5,1] -> [4,5,6] */
    out[0] = lx_add(lx_tanh(t), in[0]);
    return LX_OK;
}

static lx_status fn_cse(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array a = lx_mul_scalar(in[0], 2.0), b = lx_mul_scalar(in[0], 2.0);
    lx_array c = lx_add(lx_reshape(a, (const int[]){21}, 1), lx_contiguous(b));
    out[0] = lx_add(c, lx_mul(lx_scalar_f32(2.0f), lx_scalar_f32(1.0f)));
    return LX_OK;
}

static lx_status fn_identity(void *ctx, const lx_array *in, int n_in, lx_array *out,
                             int n_out) {
    out[0] = in[0];
    out[1] = lx_scalar_f32(3.0f);
    out[2] = lx_astype(in[0], lx_dtype_of(in[0])); /* the same node again */
    return LX_OK;
}

static void test_multi_output(void) {
    t_seed(6);
    lx_closure *c = lx_compile(fn_multi, NULL, 3, 0);
    lx_array in[3] = {rand_f32((const int[]){8, 33}, 2, -2, 2),
                      rand_f32((const int[]){8, 33}, 2, -2, 2),
                      rand_f32((const int[]){33}, 1, -2, 2)};
    compare_call("multi", c, in, 3, 3, 1e-6);
    lx_array o[3];
    CHECK_OK(lx_call(c, in, 3, o, 3));
    for (int j = 0; j < 3; j++)
        CHECK_MSG(part_parent_prim(o[j]) == LX_PRIM_FUSED, "output %d is %s", j,
                  lx_prim_name(prim_of(o[j])));
    lx_node *n0 = lx_handle_peek(o[0]), *n2 = lx_handle_peek(o[2]);
    CHECK(n0 && n2 && n0->inputs[0] == n2->inputs[0]); /* one fused node for the three */
    lx_node_release(n0);
    lx_node_release(n2);
    /* evaluating only one output computes the group once; the others come from it */
    CHECK_OK(lx_eval(o[1]));
    CHECK(lx_is_evaluated(o[0]) || !lx_is_evaluated(o[0])); /* either is fine */
    lx_closure_free(c);

    c = lx_compile(fn_extra_out, NULL, 2, 0);
    lx_array x = rand_f32((const int[]){6, 50}, 2, -1, 1);
    compare_call("extra output", c, &x, 1, 2, 1e-6);
    CHECK_OK(lx_call(c, &x, 1, o, 2));
    CHECK_MSG(part_parent_prim(o[0]) == LX_PRIM_FUSED, "extra: out 0 is %s",
              lx_prim_name(prim_of(o[0])));
    lx_closure_free(c);

    c = lx_compile(fn_no_cycle, NULL, 1, 0);
    compare_call("no cycle", c, &x, 1, 1, 1e-6);
    lx_closure_free(c);
}

static void test_dtypes_and_broadcast(void) {
    t_seed(7);
    int32_t a[60], b[60];
    for (int i = 0; i < 60; i++) {
        a[i] = (int32_t)(t_next() % 200001) - 100000;
        b[i] = (int32_t)(t_next() % 200001) - 100000;
    }
    lx_array in[2] = {lx_array_i32(a, (const int[]){6, 10}, 2),
                      lx_array_i32(b, (const int[]){10}, 1)};
    lx_closure *c = lx_compile(fn_dtypes, NULL, 4, 0);
    compare_call("dtypes", c, in, 2, 4, 0.0);
    lx_closure_free(c);

    c = lx_compile(fn_bcast, NULL, 1, 0);
    lx_array bx[2] = {rand_f32((const int[]){4, 1, 6}, 3, -2, 2),
                      rand_f32((const int[]){5, 1}, 2, -2, 2)};
    compare_call("broadcast", c, bx, 2, 1, 1e-6);
    lx_array y;
    CHECK_OK(lx_call(c, bx, 2, &y, 1));
    lx_node *hold;
    const lx_fused_header *h = program_of(y, &hold);
    CHECK(h && h->n_in == 2 && h->ndim == 3);
    if (hold) lx_node_release(hold);
    /* strided inputs: a transposed and a reversed view */
    lx_array t = lx_transpose(rand_f32((const int[]){6, 5, 4}, 3, -2, 2), NULL, 0);
    lx_array r = lx_slice(rand_f32((const int[]){5, 1}, 2, -2, 2), (const int[]){4, 0},
                          (const int[]){-6, 1}, (const int[]){-1, 1}, 2);
    compare_call("broadcast strided", c, (const lx_array[]){t, r}, 2, 1, 1e-6);
    lx_closure_free(c);

    c = lx_compile(fn_cse, NULL, 1, 0);
    lx_array x = rand_f32((const int[]){21}, 1, -2, 2);
    compare_call("cse", c, &x, 1, 1, 1e-6);
    CHECK_OK(lx_call(c, &x, 1, &y, 1));
    h = program_of(y, &hold);
    CHECK(h != NULL);
    if (h) {
        CHECK(count_instr(h, LX_FOP_BINARY, LX_BINARY_MUL) == 1);
        CHECK(count_instr(h, LX_FOP_CONST, -1) == 1); /* 2.0 merged with the product's 2 */
    }
    if (hold) lx_node_release(hold);
    lx_closure_free(c);

    c = lx_compile(fn_identity, NULL, 3, 0);
    size_t before = lx_tracked_count();
    lx_array o[3];
    CHECK_OK(lx_call(c, &x, 1, o, 3));
    CHECK(lx_tracked_count() == before + 3);
    CHECK(lx_item_f32(o[1]) == 3.0f);
    check_same("identity", o[0], x, 0.0);
    check_same("identity astype", o[2], x, 0.0);
    lx_closure_free(c);
    /* the outputs outlive the closure */
    check_same("identity after free", o[0], x, 0.0);
    CHECK(lx_item_f32(o[1]) == 3.0f);
}

/* ---- memory ---- */

static lx_status fn_many(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array x = in[0];
    lx_array table = lx_array_f32((const float[]){1, 2, 3, 4}, (const int[]){4}, 1);
    lx_array y = lx_mul(x, lx_reshape(table, (const int[]){4}, 1));
    for (int i = 0; i < 8; i++) y = lx_add(lx_sin(y), x);
    out[0] = y;
    out[1] = lx_sum(y, -1, false);
    out[2] = lx_softmax(y, -1);
    return LX_OK;
}

static void test_tracked_count(void) {
    t_seed(8);
    lx_closure *c = lx_compile(fn_many, NULL, 3, 0);
    lx_array x = rand_f32((const int[]){3, 4}, 2, -1, 1);
    for (int call = 0; call < 3; call++) {
        size_t before = lx_tracked_count();
        lx_array o[3];
        CHECK_OK(lx_call(c, &x, 1, o, 3));
        CHECK_MSG(lx_tracked_count() == before + 3, "call %d: tracked %zu -> %zu", call, before,
                  lx_tracked_count());
    }
    compare_call("many", c, &x, 1, 3, 1e-6);
    CHECK(lx_closure_trace_count(c) == 1);
    lx_closure_free(c);
}

static void test_memory_flat(void) {
    t_seed(9);
    lx_closure *c = lx_compile(fn_many, NULL, 3, 0);
    lx_array x = rand_f32((const int[]){64, 4}, 2, -1, 1);
    lx_keep(x);
    size_t base_mem = 0, base_nodes = 0, base_tracked = 0;
    for (int i = 0; i < 1003; i++) {
        if (i == 3) {
            lx_sweep();
            base_mem = lx_active_memory();
            base_nodes = lx_node_live_count();
            base_tracked = lx_tracked_count();
        }
        lx_array o[3];
        lx_status st = lx_call(c, &x, 1, o, 3);
        if (st == LX_OK) st = lx_eval(o[0], o[1], o[2]);
        if (st != LX_OK) {
            CHECK_OK(st);
            break;
        }
        for (int j = 0; j < 3; j++) lx_free(o[j]);
    }
    lx_sweep();
    CHECK_MSG(lx_active_memory() == base_mem, "active memory %zu -> %zu", base_mem,
              lx_active_memory());
    CHECK_MSG(lx_node_live_count() == base_nodes, "live nodes %zu -> %zu", base_nodes,
              lx_node_live_count());
    CHECK(lx_tracked_count() == base_tracked);
    CHECK(lx_closure_trace_count(c) == 1);
    lx_free(x);
    lx_closure_free(c);
    lx_sweep();
}

typedef struct {
    int n;
} big_ctx;

/* makes a large constant inside the function: it belongs to the trace */
static lx_status fn_big_const(void *ctx, const lx_array *in, int n_in, lx_array *out,
                              int n_out) {
    const big_ctx *b = ctx;
    float *d = malloc(sizeof(float) * (size_t)b->n);
    for (int i = 0; i < b->n; i++) d[i] = (float)i;
    lx_array tab = lx_array_f32(d, &b->n, 1);
    free(d);
    out[0] = lx_add(lx_sum(in[0], -1, true), lx_sum(tab, 0, false));
    return LX_OK;
}

static void test_closure_free_memory(void) {
    t_seed(10);
    lx_sweep();
    size_t base_mem = lx_active_memory(), base_nodes = lx_node_live_count();
    big_ctx b = {1 << 18};
    lx_closure *c = lx_compile(fn_big_const, &b, 1, 0);
    for (int shape = 1; shape <= 3; shape++) { /* three traces, each with its table */
        lx_array x = rand_f32((const int[]){shape, 5}, 2, -1, 1);
        lx_array y;
        CHECK_OK(lx_call(c, &x, 1, &y, 1));
        CHECK_OK(lx_eval(y));
        lx_free(y);
    }
    lx_sweep();
    CHECK(lx_closure_trace_count(c) == 3);
    CHECK_MSG(lx_active_memory() >= base_mem + 3 * sizeof(float) * (size_t)b.n,
              "the traces should hold their tables: %zu -> %zu", base_mem, lx_active_memory());
    lx_closure_free(c);
    CHECK_MSG(lx_active_memory() == base_mem, "active memory %zu -> %zu after free", base_mem,
              lx_active_memory());
    CHECK_MSG(lx_node_live_count() == base_nodes, "live nodes %zu -> %zu after free",
              base_nodes, lx_node_live_count());
}

/* ---- the cache ---- */

static void test_retrace_and_lru(void) {
    t_seed(11);
    int prev = lx_set_compile_cache_limit(2);
    lx_closure *c = lx_compile(fn_gelu, NULL, 1, 0);
    lx_array a = rand_f32((const int[]){3}, 1, -1, 1);
    lx_array b = rand_f32((const int[]){4}, 1, -1, 1);
    lx_array d = rand_f32((const int[]){2, 2}, 2, -1, 1);
    lx_array y;
    int expect[][2] = {{0, 1}, {0, 1}, {1, 2}, {2, 3}, {2, 3}, {1, 3}, {0, 4}, {2, 5}};
    lx_array ins[3] = {a, b, d};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        CHECK_OK(lx_call(c, &ins[expect[i][0]], 1, &y, 1));
        CHECK_MSG(lx_closure_trace_count(c) == expect[i][1], "step %zu: %d traces, want %d", i,
                  lx_closure_trace_count(c), expect[i][1]);
    }
    /* a dtype change is a new signature too */
    lx_array a64 = lx_astype(a, LX_FLOAT64);
    CHECK_OK(lx_call(c, &a64, 1, &y, 1));
    CHECK(lx_closure_trace_count(c) == 6);
    /* limit 0: nothing is kept, every call traces */
    lx_set_compile_cache_limit(0);
    CHECK_OK(lx_call(c, &a, 1, &y, 1));
    CHECK_OK(lx_call(c, &a, 1, &y, 1));
    CHECK(lx_closure_trace_count(c) == 8);
    check_same("limit 0", y, gelu_prims(a), 0.0);
    CHECK(lx_set_compile_cache_limit(prev) == 0);
    lx_set_compile_cache_limit(-1);
    CHECK_ERROR(LX_E_ARG);
    lx_closure_free(c);
}

/* shapeless: elementwise, reductions, softmax, rms_norm, matmul and squeezes */
static lx_status fn_shapeless(void *ctx, const lx_array *in, int n_in, lx_array *out,
                              int n_out) {
    lx_array x = in[0], w = in[1];
    lx_array y = lx_add_scalar(lx_mul_scalar(x, 2.0), 1.0);
    out[0] = lx_softmax(y, -1);
    out[1] = lx_mean(x, -1, false);                 /* REDUCE + squeeze RESHAPE */
    lx_array ms = lx_mean(lx_square(x), -1, true);
    out[2] = lx_mul(x, lx_rsqrt(lx_add_scalar(ms, 1e-6)));
    out[3] = lx_matmul(lx_gelu(x), w);
    out[4] = lx_add(lx_rms_norm(x, LX_NULL_ARRAY, 1e-5f), lx_var(x, -1, true, 1));
    return LX_OK;
}

/* a batched input against a constant weight (from ctx): the weight's batch broadcast
 * follows the input's batch */
static lx_status fn_shapeless_mm(void *ctx, const lx_array *in, int n_in, lx_array *out,
                                 int n_out) {
    const lx_array *w = ctx;
    out[0] = lx_silu(lx_matmul(in[0], *w));
    return LX_OK;
}

static lx_status fn_literal_reshape(void *ctx, const lx_array *in, int n_in, lx_array *out,
                                    int n_out) {
    int n = lx_dim(in[0], 0) * lx_dim(in[0], 1);
    out[0] = lx_reshape(lx_exp(in[0]), &n, 1);
    return LX_OK;
}

static void test_shapeless(void) {
    t_seed(12);
    lx_closure *c = lx_compile(fn_shapeless, NULL, 5, LX_COMPILE_SHAPELESS);
    int shapes[][2] = {{3, 16}, {5, 16}, {1, 7}, {9, 33}};
    for (int i = 0; i < 4; i++) {
        lx_array in[2] = {rand_f32(shapes[i], 2, -2, 2),
                          rand_f32((const int[]){shapes[i][1], 8}, 2, -1, 1)};
        char name[64];
        snprintf(name, sizeof name, "shapeless [%d, %d]", shapes[i][0], shapes[i][1]);
        compare_call(name, c, in, 2, 5, 1e-6);
    }
    CHECK_MSG(lx_closure_trace_count(c) == 1, "%d traces", lx_closure_trace_count(c));
    /* another rank is another trace */
    lx_array x3 = rand_f32((const int[]){2, 3, 16}, 3, -2, 2);
    lx_array w = rand_f32((const int[]){16, 8}, 2, -1, 1);
    compare_call("shapeless rank 3", c, (const lx_array[]){x3, w}, 2, 5, 1e-6);
    CHECK(lx_closure_trace_count(c) == 2);
    /* incompatible shapes fail cleanly */
    lx_array bad = rand_f32((const int[]){3, 5}, 2, -1, 1);
    lx_array o[5];
    size_t before = lx_tracked_count();
    CHECK(lx_call(c, (const lx_array[]){bad, w}, 2, o, 5) == LX_E_SHAPE);
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_tracked_count() == before);
    lx_closure_free(c);

    lx_array wc = rand_f32((const int[]){16, 8}, 2, -1, 1);
    lx_keep(wc);
    c = lx_compile(fn_shapeless_mm, &wc, 1, LX_COMPILE_SHAPELESS);
    int bshapes[][3] = {{2, 3, 16}, {4, 1, 16}, {1, 5, 16}};
    for (int i = 0; i < 3; i++) {
        lx_array xb = rand_f32(bshapes[i], 3, -1, 1);
        compare_call("shapeless batched matmul", c, &xb, 1, 1, 1e-6);
    }
    CHECK(lx_closure_trace_count(c) == 1);
    lx_closure_free(c);
    lx_free(wc);

    c = lx_compile(fn_literal_reshape, NULL, 1, LX_COMPILE_SHAPELESS);
    before = lx_tracked_count();
    CHECK(lx_call(c, &bad, 1, o, 1) == LX_E_UNSUPPORTED);
    CHECK_MSG(strstr(lx_error_message(), "RESHAPE") != NULL, "message: %s", lx_error_message());
    CHECK_ERROR(LX_E_UNSUPPORTED);
    CHECK(lx_tracked_count() == before);
    lx_closure_free(c);
    /* without the flag the same function compiles per shape */
    c = lx_compile(fn_literal_reshape, NULL, 1, 0);
    compare_call("literal reshape", c, &bad, 1, 1, 0.0);
    lx_closure_free(c);
}

/* ---- failures ---- */

static lx_status fn_fail_status(void *ctx, const lx_array *in, int n_in, lx_array *out,
                                int n_out) {
    lx_array t = lx_exp(in[0]);
    (void)t;
    return LX_E_UNSUPPORTED;
}

static lx_status fn_fail_op(void *ctx, const lx_array *in, int n_in, lx_array *out,
                            int n_out) {
    lx_array t = lx_exp(in[0]);
    out[0] = lx_add(t, lx_zeros((const int[]){7, 3}, 2, LX_FLOAT32)); /* shapes clash */
    return LX_OK;
}

static lx_status fn_null_out(void *ctx, const lx_array *in, int n_in, lx_array *out,
                             int n_out) {
    out[0] = lx_exp(in[0]);
    return LX_OK; /* out[1] left null */
}

static lx_status fn_evaluates(void *ctx, const lx_array *in, int n_in, lx_array *out,
                              int n_out) {
    lx_array t = lx_exp(in[0]);
    lx_status st = lx_eval(t); /* not allowed while tracing: t depends on the input */
    if (st != LX_OK) return st;
    out[0] = t;
    return LX_OK;
}

static void test_failures(void) {
    t_seed(13);
    lx_array x = rand_f32((const int[]){4, 5}, 2, -1, 1);
    lx_keep(x);
    lx_sweep();
    size_t tracked = lx_tracked_count(), nodes = lx_node_live_count();
    size_t mem = lx_active_memory();
    struct { lx_fn fn; int n_out; lx_status want; } cases[] = {
        {fn_fail_status, 1, LX_E_UNSUPPORTED},
        {fn_fail_op, 1, LX_E_SHAPE},
        {fn_null_out, 2, LX_E_ARG},
        {fn_evaluates, 1, LX_E_ARG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lx_closure *c = lx_compile(cases[i].fn, NULL, cases[i].n_out, 0);
        lx_array o[2] = {{12345}, {12345}};
        lx_status st = lx_call(c, &x, 1, o, cases[i].n_out);
        CHECK_MSG(st == cases[i].want, "case %zu: %s (%s)", i, lx_status_string(st),
                  lx_error_message());
        CHECK(lx_error() == cases[i].want);
        CHECK(strlen(lx_error_message()) > 0);
        lx_clear_error();
        for (int j = 0; j < cases[i].n_out; j++) CHECK(lx_is_null(o[j]));
        CHECK(lx_closure_trace_count(c) == 0);
        CHECK_MSG(lx_tracked_count() == tracked, "case %zu: tracked %zu -> %zu", i, tracked,
                  lx_tracked_count());
        lx_closure_free(c);
        CHECK_MSG(lx_node_live_count() == nodes, "case %zu: live nodes %zu -> %zu", i, nodes,
                  lx_node_live_count());
        CHECK(lx_active_memory() == mem);
    }
    /* bad calls */
    lx_closure *c = lx_compile(fn_gelu, NULL, 1, 0);
    lx_array o[2];
    CHECK(lx_call(c, &x, 1, o, 2) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_call(NULL, &x, 1, o, 1) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    lx_array freed = lx_exp(x);
    lx_sweep(); /* releases it */
    CHECK(lx_call(c, &freed, 1, o, 1) == LX_E_FREED);
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_compile(NULL, NULL, 1, 0) == NULL);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_compile(fn_gelu, NULL, 0, 0) == NULL);
    CHECK_ERROR(LX_E_ARG);
    /* an earlier sticky error is kept, and does not stop a trace */
    {
        lx_reshape(x, (const int[]){7}, 1); /* sets LX_E_SHAPE */
        CHECK(lx_error() == LX_E_SHAPE);
        CHECK_OK(lx_call(c, &x, 1, o, 1));
        CHECK(lx_error() == LX_E_SHAPE);
        lx_clear_error();
        check_same("after an earlier error", o[0], gelu_prims(x), 0.0);
    }
    lx_closure_free(c);
    lx_closure_free(NULL);
    lx_free(x);
}

/* ---- nesting, the switch, threads ---- */

static lx_closure *g_inner;

static lx_status fn_outer(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    lx_array t;
    lx_status st = lx_call(g_inner, in, 1, &t, 1);
    if (st != LX_OK) return st;
    out[0] = lx_add(lx_mul_scalar(t, 2.0), in[0]);
    return LX_OK;
}

static void test_nested(void) {
    t_seed(14);
    g_inner = lx_compile(fn_gelu, NULL, 1, 0);
    lx_closure *outer = lx_compile(fn_outer, NULL, 1, 0);
    lx_array x = rand_f32((const int[]){5, 9}, 2, -3, 3);
    compare_call("nested", outer, &x, 1, 1, 1e-6);
    CHECK(lx_closure_trace_count(g_inner) == 0); /* inlined into the outer trace */
    CHECK(lx_closure_trace_count(outer) == 1);
    lx_array y;
    CHECK_OK(lx_call(outer, &x, 1, &y, 1));
    CHECK(prim_of(y) == LX_PRIM_FUSED); /* the inner gelu fused with the outer ops */
    /* the inner closure still works on its own */
    compare_call("inner alone", g_inner, &x, 1, 1, 1e-6);
    CHECK(lx_closure_trace_count(g_inner) == 1);
    lx_closure_free(outer);
    lx_closure_free(g_inner);
}

static void test_switch(void) {
    t_seed(15);
    lx_closure *c = lx_compile(fn_many, NULL, 3, 0);
    lx_array x = rand_f32((const int[]){7, 4}, 2, -1, 1);
    CHECK(lx_set_compile_enabled(false) == true);
    size_t before = lx_tracked_count();
    lx_array a[3], b[3];
    CHECK_OK(lx_call(c, &x, 1, a, 3));
    CHECK(lx_tracked_count() > before + 3); /* direct: the intermediates are tracked too */
    CHECK(lx_closure_trace_count(c) == 0);
    CHECK(lx_set_compile_enabled(true) == false);
    CHECK_OK(lx_call(c, &x, 1, b, 3));
    for (int j = 0; j < 3; j++) check_same("disabled == enabled", b[j], a[j], 0.0);
    lx_closure_free(c);
}

static const char *g_self;

static void test_env_switch(void) {
    int rc = t_run_self(g_self, "--env-child",
                        (const char *const[]){"LX_DISABLE_COMPILE", "1", NULL});
    CHECK_MSG(rc == 0, "child exit %d", rc);
}

static int env_child(void) {
    lx_closure *c = lx_compile(fn_gelu, NULL, 1, 0);
    lx_array x = lx_array_f32((const float[]){0.5f, -1.0f}, (const int[]){2}, 1), y;
    if (lx_call(c, &x, 1, &y, 1) != LX_OK) return 1;
    if (lx_closure_trace_count(c) != 0) return 2; /* ran directly */
    if (lx_set_compile_enabled(true) != false) return 4;
    lx_closure_free(c);
    return 0;
}

#include <pthread.h>

typedef struct {
    lx_closure *c;
    lx_array x;
    lx_array out;
    int ok;
} thread_arg;

/* Replays from several threads at once (the cache is shared; each thread's outputs go to its
 * own tracker). Evaluation is left to the main thread: concurrent evaluation is eval.c's. */
static void *thread_main(void *p) {
    thread_arg *a = p;
    a->ok = 1;
    for (int i = 0; i < 300 && a->ok; i++) {
        lx_array o[3];
        size_t before = lx_tracked_count();
        lx_status st = lx_call(a->c, &a->x, 1, o, 3);
        size_t after = lx_tracked_count();
        if (st != LX_OK || after != before + 3) {
            fprintf(stderr, "thread: %s (%s), tracked %zu -> %zu\n", lx_status_string(st),
                    lx_error_message(), before, after);
            a->ok = 0;
        }
        if (i == 299) {
            lx_keep(o[0]);
            a->out = o[0];
        }
        lx_sweep();
    }
    return NULL;
}

static void test_threads(void) {
    t_seed(16);
    lx_closure *c = lx_compile(fn_many, NULL, 3, 0);
    lx_array x = rand_f32((const int[]){16, 4}, 2, -1, 1);
    lx_keep(x);
    /* the reference first: the switch is global, so it must not flip while threads run */
    lx_array want[3];
    bool prev = lx_set_compile_enabled(false);
    CHECK_OK(lx_call(c, &x, 1, want, 3));
    lx_set_compile_enabled(prev);
    thread_arg args[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        args[i] = (thread_arg){c, x, LX_NULL_ARRAY, 0};
        pthread_create(&th[i], NULL, thread_main, &args[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(args[i].ok, "thread %d failed", i);
        /* a kept array of an exited thread lives on (an orphan) until freed */
        check_same("thread output", args[i].out, want[0], 0.0);
        lx_free(args[i].out);
    }
    CHECK(lx_closure_trace_count(c) == 1);
    lx_closure_free(c);
    lx_free(x);
}

/* ---- a decode step: rope at an array position ---- */

/* One attention step of a single token at position in[3] (an int32 scalar): q and k rotated
 * with lx_rope_at, k written into a [1, H, 256, D] cache copy at the position, scores against
 * the cache with keys after the position masked, softmax, times v. The position is an input,
 * so every call must see its own (lx_rope with an int offset would replay the first call's). */
static lx_status fn_decode_step(void *ctx, const lx_array *in, int n_in, lx_array *out,
                                int n_out) {
    lx_array x = in[0], kc = in[1], vc = in[2], pos = in[3];
    int D = lx_dim(x, 3), L = lx_dim(kc, 2);
    lx_array q = lx_rope_at(x, D, false, 10000.0f, 1.0f, pos);
    lx_array k = lx_rope_at(lx_mul_scalar(x, 0.5), D, false, 10000.0f, 1.0f, pos);
    lx_array j = lx_reshape(lx_arange(0, L, 1, LX_INT32), (const int[]){1, 1, L, 1}, 4);
    lx_array at = lx_equal(j, pos);                               /* [1, 1, L, 1] */
    lx_array keys = lx_where(at, k, kc);                          /* k at row pos */
    lx_array sc = lx_mul_scalar(lx_matmul(q, lx_swapaxes(keys, 2, 3)), 1.0 / sqrt((double)D));
    lx_array seen = lx_less_equal(lx_reshape(j, (const int[]){1, 1, 1, L}, 4), pos);
    sc = lx_where(seen, sc, lx_scalar_f32(-INFINITY));
    out[0] = lx_add(lx_matmul(lx_softmax(sc, -1), vc), q);       /* [1, H, 1, D] */
    out[1] = k;
    return LX_OK;
}

static lx_status fn_rope_shapeless(void *ctx, const lx_array *in, int n_in, lx_array *out,
                                   int n_out) {
    out[0] = lx_mul_scalar(lx_rope_at(in[0], 12, true, 500000.0f, 1.0f, in[1]), 2.0);
    return LX_OK;
}

static bool bytes_equal(lx_array a, lx_array b) {
    size_t n = lx_nbytes(a);
    if (n == 0 || n != lx_nbytes(b) || !same_shape(a, b)) return false;
    char *pa = malloc(n), *pb = malloc(n);
    bool ok = pa && pb && lx_read(a, pa, n) == LX_OK && lx_read(b, pb, n) == LX_OK &&
              memcmp(pa, pb, n) == 0;
    free(pa);
    free(pb);
    return ok;
}

static void test_decode_rope_position(void) {
    t_seed(17);
    const int H = 4, D = 64, L = 256;
    lx_array x = rand_f32((const int[]){1, H, 1, D}, 4, -1, 1);
    lx_array kc = rand_f32((const int[]){1, H, L, D}, 4, -1, 1);
    lx_array vc = rand_f32((const int[]){1, H, L, D}, 4, -1, 1);
    lx_keep(x, kc, vc);
    lx_closure *c = lx_compile(fn_decode_step, NULL, 2, 0);
    int bad = 0;
    lx_array prev_out = LX_NULL_ARRAY;
    for (int p = 0; p <= 200; p++) {
        lx_array in[4] = {x, kc, vc, lx_scalar_i32(p)};
        lx_array got[2], want[2];
        CHECK_OK(lx_call(c, in, 4, got, 2));
        bool was = lx_set_compile_enabled(false);
        CHECK_OK(lx_call(c, in, 4, want, 2));
        lx_set_compile_enabled(was);
        if (!bytes_equal(got[0], want[0]) || !bytes_equal(got[1], want[1])) {
            if (bad++ < 5) fprintf(stderr, "  decode step at position %d: compiled differs\n", p);
        }
        /* not vacuous: consecutive positions give different outputs */
        if (p > 0) CHECK(!bytes_equal(got[1], prev_out));
        if (!lx_is_null(prev_out)) lx_free(prev_out);
        prev_out = got[1];
        lx_keep(prev_out);
        lx_sweep();
    }
    CHECK_MSG(bad == 0, "%d of 201 positions differ compiled vs uncompiled", bad);
    CHECK_MSG(lx_closure_trace_count(c) == 1, "trace count %d", lx_closure_trace_count(c));
    lx_free(prev_out);
    lx_closure_free(c);
    lx_free(x), lx_free(kc), lx_free(vc);

    /* shapeless: prompt chunks of several lengths at several positions, one trace */
    c = lx_compile(fn_rope_shapeless, NULL, 1, LX_COMPILE_SHAPELESS);
    bad = 0;
    for (int i = 0; i < 12; i++) {
        lx_array in[2] = {rand_f32((const int[]){1, 2, 1 + i % 5, 16}, 4, -1, 1),
                          lx_scalar_i32(37 * i)};
        lx_array got, want;
        CHECK_OK(lx_call(c, in, 2, &got, 1));
        bool was = lx_set_compile_enabled(false);
        CHECK_OK(lx_call(c, in, 2, &want, 1));
        lx_set_compile_enabled(was);
        if (!bytes_equal(got, want)) bad++;
        lx_sweep();
    }
    CHECK_MSG(bad == 0, "%d of 12 shapeless rope calls differ", bad);
    CHECK_MSG(lx_closure_trace_count(c) == 1, "shapeless trace count %d",
              lx_closure_trace_count(c));
    lx_closure_free(c);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--env-child") == 0) return env_child();
    g_self = argv[0];
    RUN_TEST(test_gelu_chain);
    RUN_TEST(test_div_by_constants);
    RUN_TEST(test_gelu10);
    RUN_TEST(test_swiglu);
    RUN_TEST(test_norms);
    RUN_TEST(test_samplers);
    RUN_TEST(test_multi_output);
    RUN_TEST(test_dtypes_and_broadcast);
    RUN_TEST(test_tracked_count);
    RUN_TEST(test_memory_flat);
    RUN_TEST(test_closure_free_memory);
    RUN_TEST(test_retrace_and_lru);
    RUN_TEST(test_shapeless);
    RUN_TEST(test_failures);
    RUN_TEST(test_nested);
    RUN_TEST(test_switch);
    RUN_TEST(test_env_switch);
    RUN_TEST(test_threads);
    RUN_TEST(test_decode_rope_position);
    return test_finish();
}
