/*
 * test_prim_info.c -- the primitive table (graph/prim_info.h) and the fallbacks
 * (ops/fallback.h).
 *
 * Rules: every primitive has an entry; the graphs that the public ops build for a spread of
 * arguments cover every primitive a user can reach, and every node of them follows its rule
 * (lx_build checks this as it builds; the walk checks it again from the finished graph);
 * shape-dependent params (a mean's scale, top-k, random bits) follow other input shapes; bad
 * inputs are refused.
 *
 * Fallbacks: for random inputs of several shapes and dtypes, the fallback graph's result
 * against the CPU kernel's. Errors are measured relative to the largest |value| of the
 * reference's row (last axis), as attention and matrix products are: float32 within 1e-5 (the
 * fallbacks sum in another order than the kernels; float32's 6e-8 rounding, grown by the
 * row lengths used here, stays well below it), float16 within 2e-3 and bfloat16 within 1e-2
 * (about two units of their last place: both sides round once to the output dtype from
 * float32 values that agree to float32 rounding). Index results (argmax, gathers) and exact
 * integer arithmetic (dequantized codes, integer scans) must be equal.
 *
 * The model check: the Llama-family forward pass (tiny fixture) and the sampler use only core
 * primitives, views and primitives with a fallback.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/handle.h"
#include "core/node.h"
#include "graph/fused.h"
#include "graph/prim_info.h"
#include "graph/prims_index.h"
#include "graph/prims_nn.h"
#include "graph/prims_quant.h"
#include "graph/prims_scan.h"
#include "models/kv_cache.h"
#include "models/model.h"
#include "models/sampler.h"
#include "ops/fallback.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static lx_array rnd(const int *shape, int ndim, lx_dtype t, double lo, double hi) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = (float)t_uniform(lo, hi);
    lx_array a = lx_array_f32(v, shape, ndim);
    free(v);
    return lx_astype(a, t);
}

static lx_array ints(const int32_t *v, const int *shape, int ndim, lx_dtype t) {
    return lx_astype(lx_array_i32(v, shape, ndim), t);
}

/* A visited set of nodes for walks over DAGs (open addressing; cleared per walk). */
#define VISIT_CAP (1 << 16)
static const lx_node *g_visit[VISIT_CAP];
static void visit_clear(void) { memset(g_visit, 0, sizeof g_visit); }
/* true the first time n is seen */
static bool visit(const lx_node *n) {
    size_t h = ((uintptr_t)n >> 4) * 0x9e3779b97f4a7c15ull % VISIT_CAP;
    for (size_t k = 0; k < VISIT_CAP; k++, h = (h + 1) % VISIT_CAP) {
        if (g_visit[h] == n) return false;
        if (!g_visit[h]) {
            g_visit[h] = n;
            return true;
        }
    }
    return false;
}

static lx_node *find_rec(lx_node *n, int prim) {
    if (!n || lx_node_state_of(n) != LX_NODE_LAZY || !visit(n)) return NULL;
    if (n->prim == prim) return n;
    for (int i = 0; i < n->n_inputs; i++) {
        lx_node *r = find_rec(n->inputs[i], prim);
        if (r) return r;
    }
    return NULL;
}
/* The first LAZY node of prim reachable from n (borrowed), or NULL. */
static lx_node *find_prim_node(lx_node *n, int prim, int depth) {
    (void)depth;
    visit_clear();
    return find_rec(n, prim);
}

/* A's values as float64 (NULL on failure; caller frees). */
static double *values(lx_array a, size_t *n) {
    lx_array d = lx_astype(a, LX_FLOAT64);
    *n = lx_size(d);
    double *v = malloc(sizeof(double) * (*n ? *n : 1));
    if (lx_read(d, v, sizeof(double) * *n) != LX_OK) {
        free(v);
        return NULL;
    }
    return v;
}

static double tol_for(lx_dtype t) {
    return t == LX_BFLOAT16 ? 1e-2 : t == LX_FLOAT16 ? 2e-3 : t == LX_FLOAT64 ? 1e-12 : 1e-5;
}

/* Largest |got - want| over the largest |want| of its row (rows = the last axis); NaN where
 * want is NaN must be NaN. */
static double row_error(const double *got, const double *want, size_t n, int row) {
    double worst = 0;
    if (row <= 0) row = 1;
    for (size_t r = 0; r < n; r += (size_t)row) {
        double mx = 0;
        for (size_t i = r; i < r + (size_t)row && i < n; i++)
            if (isfinite(want[i]) && fabs(want[i]) > mx) mx = fabs(want[i]);
        if (mx == 0) mx = 1;
        for (size_t i = r; i < r + (size_t)row && i < n; i++) {
            double e;
            if (isnan(want[i]) || isinf(want[i])) e = (got[i] == want[i] || (isnan(got[i]) && isnan(want[i]))) ? 0 : INFINITY;
            else e = fabs(got[i] - want[i]) / mx;
            if (!(e <= worst)) worst = e;
        }
    }
    return worst;
}

static int g_fallback_cases[LX_PRIM_COUNT];

/* The fallback of the first `prim` node under `out` against the CPU kernel's result for it. */
static void check_fallback(const char *what, lx_array out, int prim, double tol) {
    lx_node *n = find_prim_node(lx_handle_peek(out), prim, 0);
    CHECK_MSG(n != NULL, "%s: no %s node", what, lx_prim_name(prim));
    if (!n) return;
    g_fallback_cases[prim]++;
    lx_node_retain(n);
    lx_array ref = lx_handle_new(n);
    lx_node *fb = lx_prim_fallback(n);
    CHECK_MSG(fb != NULL, "%s: fallback failed: %s", what, lx_error_message());
    if (!fb) {
        lx_clear_error();
        return;
    }
    CHECK(fb->dtype == n->dtype && fb->ndim == n->ndim);
    CHECK(find_prim_node(fb, prim, 0) == NULL); /* built of other primitives */
    lx_array got = lx_handle_new(fb);
    size_t nr = 0, ng = 0;
    double *vr = values(ref, &nr), *vg = values(got, &ng);
    CHECK_MSG(vr && vg && nr == ng, "%s: eval failed: %s", what, lx_error_message());
    if (vr && vg && nr == ng) {
        int row = n->ndim ? n->shape[n->ndim - 1] : 1;
        double e = row_error(vg, vr, nr, row);
        CHECK_MSG(e <= tol, "%s: %s fallback error %.3g > %.3g", what, lx_prim_name(prim), e, tol);
        if (getenv("LX_TEST_VERBOSE"))
            printf("  %-40s %-18s %.3g\n", what, lx_prim_name(prim), e);
    }
    lx_clear_error();
    free(vr);
    free(vg);
}

/* ---- the table ---------------------------------------------------------------------------- */

static void test_table(void) {
    for (int p = 0; p < LX_PRIM_COUNT; p++) {
        const lx_prim_info *pi = lx_prim_info_get(p);
        CHECK_MSG(pi && pi->rule && pi->name, "primitive %d has no entry", p);
        if (!pi) continue;
        CHECK(strcmp(pi->name, lx_prim_name(p)) == 0);
        CHECK(pi->view == lx_prim_is_view(p));
        bool ew = p == LX_PRIM_UNARY || p == LX_PRIM_BINARY || p == LX_PRIM_WHERE || p == LX_PRIM_COPY;
        CHECK_MSG(pi->fuses == ew, "%s fuses %d", pi->name, pi->fuses);
        int want = ew || p == LX_PRIM_FUSED ? LX_DONATE_ALL
                   : p == LX_PRIM_SLICE_UPDATE || p == LX_PRIM_PUT_ALONG ? 1 : 0;
        CHECK_MSG(pi->donate == want, "%s donates %d", pi->name, pi->donate);
    }
    CHECK(lx_prim_info_get(-1) == NULL && lx_prim_info_get(LX_PRIM_COUNT) == NULL);
    CHECK(strcmp(lx_prim_name(LX_PRIM_SDPA), "SDPA") == 0 && strcmp(lx_prim_name(9999), "?") == 0);
    /* the small core has no fallback; the model's other primitives have */
    int core[] = {LX_PRIM_COPY, LX_PRIM_FULL, LX_PRIM_ARANGE, LX_PRIM_UNARY, LX_PRIM_BINARY,
                  LX_PRIM_WHERE, LX_PRIM_REDUCE, LX_PRIM_MATMUL, LX_PRIM_TAKE,
                  LX_PRIM_SLICE_UPDATE, LX_PRIM_CONCATENATE, LX_PRIM_RANDOM_BITS, LX_PRIM_SORT};
    for (size_t i = 0; i < sizeof core / sizeof *core; i++) CHECK(!lx_prim_has_fallback(core[i]));
    int fb[] = {LX_PRIM_RMS_NORM, LX_PRIM_LAYER_NORM, LX_PRIM_SOFTMAX, LX_PRIM_ROPE,
                LX_PRIM_SDPA, LX_PRIM_QUANTIZED_MATMUL, LX_PRIM_DEQUANTIZE, LX_PRIM_GATHER_MM,
                LX_PRIM_ARG_REDUCE, LX_PRIM_FUSED, LX_PRIM_TAKE_ALONG, LX_PRIM_PUT_ALONG,
                LX_PRIM_SCAN};
    for (size_t i = 0; i < sizeof fb / sizeof *fb; i++) CHECK(lx_prim_has_fallback(fb[i]));
}

/* ---- rules against the ops ------------------------------------------------------------------ */

static bool g_seen[LX_PRIM_COUNT];

/* Every LAZY node under n follows its rule (and counts as seen). */
static void walk_check(lx_node *n, int depth) {
    if (!n || depth > 200 || lx_node_state_of(n) != LX_NODE_LAZY || !visit(n)) return;
    g_seen[n->prim] = true;
    lx_status st = lx_prim_check("walk", n->prim, n->dtype, n->shape, n->ndim, n->inputs,
                                 n->n_inputs, n->params, n->params_size);
    CHECK_MSG(st == LX_OK, "%s node from %s: %s", lx_prim_name(n->prim), n->op, lx_error_message());
    lx_clear_error();
    for (int i = 0; i < n->n_inputs; i++) walk_check(n->inputs[i], depth + 1);
}
static void walk(lx_array a) {
    CHECK_MSG(!lx_is_null(a), "op failed: %s", lx_error_message());
    lx_clear_error();
    visit_clear();
    if (!lx_is_null(a)) walk_check(lx_handle_peek(a), 0);
}

static void test_rules_cover_ops(void) {
    memset(g_seen, 0, sizeof g_seen);
    t_seed(11);
    int s234[] = {2, 3, 4}, s34[] = {3, 4}, s4[] = {4};
    lx_array x = rnd(s234, 3, LX_FLOAT32, -2, 2), y = rnd(s34, 2, LX_FLOAT32, -2, 2);
    lx_array w4 = rnd(s4, 1, LX_FLOAT32, 0.5, 2);
    walk(lx_add(x, y));
    walk(lx_less(x, y));
    walk(lx_exp(lx_astype(x, LX_FLOAT16)));
    walk(lx_isnan(x));
    walk(lx_where(lx_greater(x, y), x, lx_scalar_f32(0)));
    walk(lx_mean(x, 1, false));
    walk(lx_var(x, -1, true, 1));
    walk(lx_sum(lx_astype(x, LX_INT8), 0, false));
    walk(lx_argmax(x, 2, false));
    walk(lx_softmax(x, 1));
    walk(lx_log_softmax(x, -1));
    walk(lx_matmul(x, lx_transpose(y, NULL, 0)));
    walk(lx_addmm(lx_scalar_f32(1), y, lx_transpose(y, NULL, 0), 0.5f, 2.0f));
    walk(lx_rms_norm(x, w4, 1e-5f));
    walk(lx_layer_norm(x, w4, w4, 1e-5f));
    walk(lx_group_norm(x, 2, w4, w4, 1e-5f));
    walk(lx_random_normal(s34, 2, LX_FLOAT32, lx_random_key(3)));
    walk(lx_random_bits(s34, 2, 1, lx_random_key(4)));
    walk(lx_arange(0, 10, 3, LX_INT32));
    walk(lx_full(s34, 2, 2.5, LX_BFLOAT16));
    walk(lx_tri(4, 5, 1, LX_FLOAT32));
    int32_t iv[] = {2, 0, -1};
    lx_array idx = lx_array_i32(iv, (int[]){3}, 1);
    walk(lx_take(x, idx, 2));
    int32_t av[] = {0, 3, 1, 2, 2, 1, 0, 0};
    lx_array aidx = ints(av, (int[]){1, 2, 4}, 3, LX_INT64);
    walk(lx_take_along_axis(x, aidx, 1));
    walk(lx_slice(x, (int[]){0, 1, 0}, (int[]){2, 3, 4}, (int[]){1, 1, 2}, 3));
    walk(lx_put_along_axis(x, lx_broadcast_to(lx_reshape(idx, (int[]){1, 1, 3}, 3), (int[]){2, 3, 3}, 3),
                           lx_scalar_f32(7), 2));
    walk(lx_slice_update(x, lx_ones((int[]){2, 1, 2}, 3, LX_FLOAT32), (int[]){0, 1, 0},
                         (int[]){2, 2, 4}, (int[]){1, 1, 2}, 3));
    walk(lx_concatenate((lx_array[]){x, x}, 2, 1));
    walk(lx_pad(x, (int[]){1, 0, 0}, (int[]){0, 2, 1}, 3, 0.0));
    walk(lx_tile(y, (int[]){2, 1}, 2));
    walk(lx_triu(y, 0));
    walk(lx_cumsum(lx_astype(x, LX_BOOL), 1));
    walk(lx_cummax(x, 2));
    walk(lx_sort(x, 1));
    walk(lx_argsort(x, 1));
    walk(lx_topk(x, 2, -1));
    walk(lx_argpartition(x, 1, -1));
    walk(lx_rope(lx_reshape(x, (int[]){1, 2, 3, 4}, 4), 4, false, 10000.0f, 1.0f, 3));
    walk(lx_rope_at(lx_reshape(x, (int[]){1, 2, 3, 4}, 4), 2, true, 500.0f, 0.5f, lx_scalar_i32(5)));
    lx_array q = rnd((int[]){1, 4, 3, 8}, 4, LX_FLOAT32, -1, 1);
    lx_array k = rnd((int[]){1, 2, 5, 8}, 4, LX_FLOAT32, -1, 1);
    walk(lx_sdpa_sinks(q, k, k, 0.3f, true, lx_ones((int[]){3, 5}, 2, LX_BOOL),
                       rnd((int[]){4}, 1, LX_FLOAT32, -1, 1)));
    walk(lx_conv2d(rnd((int[]){1, 5, 5, 2}, 4, LX_FLOAT32, -1, 1),
                   rnd((int[]){3, 2, 2, 2}, 4, LX_FLOAT32, -1, 1), (int[]){1, 1}, (int[]){0, 0},
                   (int[]){1, 1}, 1));
    lx_array wq, ws, wb;
    lx_array wf = rnd((int[]){16, 64}, 2, LX_FLOAT32, -1, 1);
    CHECK_OK(lx_quantize(wf, 32, 4, &wq, &ws, &wb));
    walk(wq);
    walk(lx_dequantize(wq, ws, wb, 32, 4));
    walk(lx_quantized_matmul(rnd((int[]){2, 3, 64}, 3, LX_FLOAT32, -1, 1), wq, ws, wb, true, 32, 4));
    walk(lx_gather_mm(rnd((int[]){3, 2, 4}, 3, LX_FLOAT32, -1, 1), rnd((int[]){5, 4, 6}, 3, LX_FLOAT32, -1, 1),
                      lx_array_i32((int32_t[]){0, 2}, (int[]){2}, 1), lx_array_i32((int32_t[]){4, 1}, (int[]){2}, 1)));
    walk(lx_as_strided(y, (int[]){2, 2}, (int64_t[]){4, 1}, 2, 1));
    walk(lx_contiguous(lx_transpose(y, NULL, 0)));
    /* every primitive an op can build was built (NONE, PLACEHOLDER, FUSED and TRANSFER come
     * from compile and placement: the fused and compile tests have them) */
    for (int p = 1; p < LX_PRIM_COUNT; p++) {
        if (p == LX_PRIM_PLACEHOLDER || p == LX_PRIM_FUSED || p == LX_PRIM_TRANSFER) continue;
        CHECK_MSG(g_seen[p], "no op case built %s", lx_prim_name(p));
    }
}

static lx_prim_meta meta(lx_dtype t, const int32_t *s, int n) {
    lx_prim_meta m = {.dtype = t, .ndim = n};
    if (n > 0) memcpy(m.shape, s, sizeof(int32_t) * (size_t)n); /* a scalar's s is NULL */
    return m;
}

/* What shapeless replay needs: the rule's answer for inputs of another shape. */
static void test_rules_follow_shapes(void) {
    t_seed(12);
    lx_array x = rnd((int[]){4, 3}, 2, LX_FLOAT32, -1, 1);
    /* a mean's scale follows the reduced count; a sum's stays */
    lx_array mean = lx_mean(x, 1, true), var = lx_var(x, 1, true, 1), sum = lx_sum(x, 1, true);
    lx_node *nm = lx_handle_peek(mean), *nv = lx_handle_peek(var), *ns = lx_handle_peek(sum);
    CHECK(nm->prim == LX_PRIM_REDUCE && nv->prim == LX_PRIM_REDUCE && ns->prim == LX_PRIM_REDUCE);
    lx_prim_meta in = meta(LX_FLOAT32, (int32_t[]){4, 6}, 2), out = meta(LX_FLOAT32, NULL, 0);
    lx_reduce_params p;
    memcpy(&p, nm->params, sizeof p);
    CHECK(p.by_count == 1 && p.ddof == 0 && p.scale == 1.0 / 3);
    CHECK_OK(lx_prim_info_get(LX_PRIM_REDUCE)->rule("t", &in, 1, &p, sizeof p, &p, &out));
    CHECK(p.scale == 1.0 / 6 && out.ndim == 2 && out.shape[0] == 4 && out.shape[1] == 1);
    memcpy(&p, nv->params, sizeof p);
    CHECK(p.by_count == 1 && p.ddof == 1 && p.scale == 1.0 / 2);
    CHECK_OK(lx_prim_info_get(LX_PRIM_REDUCE)->rule("t", &in, 1, &p, sizeof p, &p, &out));
    CHECK(p.scale == 1.0 / 5);
    /* a reduction over an axis of size 1: a mean and a sum look alike only by their scale */
    lx_prim_meta one = meta(LX_FLOAT32, (int32_t[]){4, 1}, 2);
    memcpy(&p, ns->params, sizeof p);
    CHECK(p.by_count == 0);
    CHECK_OK(lx_prim_info_get(LX_PRIM_REDUCE)->rule("t", &one, 1, &p, sizeof p, &p, &out));
    CHECK(p.scale == 1.0);
    /* top-k keeps k; random bits keep their per-key dims after the key's leading dims */
    lx_array tk = lx_topk(x, 2, 1);
    lx_node *nt = lx_handle_peek(tk);
    lx_prim_meta big = meta(LX_FLOAT32, (int32_t[]){7, 9}, 2);
    out = meta(LX_FLOAT32, NULL, 0);
    CHECK_OK(lx_prim_info_get(LX_PRIM_SORT)->rule("t", &big, 1, nt->params, nt->params_size, NULL, &out));
    CHECK(out.ndim == 2 && out.shape[0] == 7 && out.shape[1] == 2);
    lx_random_bits_params rb = {4};
    lx_prim_meta key = meta(LX_UINT32, (int32_t[]){5, 2}, 2);
    out = meta(LX_UINT8, (int32_t[]){3, 6}, 2);
    CHECK_OK(lx_prim_info_get(LX_PRIM_RANDOM_BITS)->rule("t", &key, 1, &rb, sizeof rb, NULL, &out));
    CHECK(out.dtype == LX_UINT32 && out.shape[0] == 5 && out.shape[1] == 6);
    /* bad inputs are refused with the primitive named */
    lx_binary_params bp = {LX_BINARY_ADD};
    lx_prim_meta ab[2] = {meta(LX_FLOAT32, (int32_t[]){3, 4}, 2), meta(LX_FLOAT32, (int32_t[]){5}, 1)};
    CHECK(lx_prim_info_get(LX_PRIM_BINARY)->rule("t", ab, 2, &bp, sizeof bp, NULL, &out) == LX_E_SHAPE);
    CHECK(strstr(lx_error_message(), "BINARY") != NULL);
    lx_clear_error();
    ab[1] = meta(LX_FLOAT16, (int32_t[]){4}, 1);
    CHECK(lx_prim_info_get(LX_PRIM_BINARY)->rule("t", ab, 2, &bp, sizeof bp, NULL, &out) == LX_E_DTYPE);
    lx_clear_error();
    lx_prim_meta mm[2] = {meta(LX_FLOAT32, (int32_t[]){2, 3, 4}, 3), meta(LX_FLOAT32, (int32_t[]){5, 6}, 2)};
    CHECK(lx_prim_info_get(LX_PRIM_MATMUL)->rule("t", mm, 2, NULL, 0, NULL, &out) == LX_E_SHAPE);
    lx_clear_error();
    mm[1] = meta(LX_FLOAT32, (int32_t[]){7, 1, 4, 6}, 4);
    CHECK_OK(lx_prim_info_get(LX_PRIM_MATMUL)->rule("t", mm, 2, NULL, 0, NULL, &out));
    CHECK(out.ndim == 4 && out.shape[0] == 7 && out.shape[1] == 2 && out.shape[2] == 3 && out.shape[3] == 6);
    /* a node that does not follow its rule is refused at build */
    lx_node *bad = lx_node_new("t", LX_PRIM_UNARY, LX_FLOAT32, (int[]){3}, 1, NULL, 0, NULL, 0);
    CHECK(bad != NULL);
    if (bad) {
        lx_status st = lx_prim_check("t", LX_PRIM_UNARY, LX_FLOAT32, bad->shape, 1, NULL, 0, NULL, 0);
        CHECK(st == LX_E_INTERNAL);
        lx_clear_error();
        lx_node_release(bad);
    }
}

/* ---- fallbacks ------------------------------------------------------------------------------ */

static const lx_dtype k_floats[] = {LX_FLOAT32, LX_FLOAT16, LX_BFLOAT16};

static void test_fallback_norms_softmax(void) {
    t_seed(21);
    char what[96];
    for (int di = 0; di < 3; di++) {
        lx_dtype t = k_floats[di];
        double tol = tol_for(t);
        int shapes[3][3] = {{3, 7, 64}, {5, 1, 33}, {2, 2, 257}};
        for (int si = 0; si < 3; si++) {
            const int *s = shapes[si];
            lx_array x = rnd(s, 3, t, -3, 3);
            lx_array w = rnd(&s[2], 1, t, 0.5, 1.5), b = rnd(&s[2], 1, t, -1, 1);
            snprintf(what, sizeof what, "rms_norm %s [%d,%d,%d]", lx_dtype_name(t), s[0], s[1], s[2]);
            check_fallback(what, lx_rms_norm(x, w, 1e-5f), LX_PRIM_RMS_NORM, tol);
            check_fallback(what, lx_rms_norm(x, LX_NULL_ARRAY, 1e-3f), LX_PRIM_RMS_NORM, tol);
            snprintf(what, sizeof what, "layer_norm %s [%d,%d,%d]", lx_dtype_name(t), s[0], s[1], s[2]);
            check_fallback(what, lx_layer_norm(x, w, b, 1e-5f), LX_PRIM_LAYER_NORM, tol);
            check_fallback(what, lx_layer_norm(x, LX_NULL_ARRAY, b, 1e-5f), LX_PRIM_LAYER_NORM, tol);
            check_fallback(what, lx_layer_norm(x, w, LX_NULL_ARRAY, 1e-5f), LX_PRIM_LAYER_NORM, tol);
            check_fallback(what, lx_layer_norm(x, LX_NULL_ARRAY, LX_NULL_ARRAY, 1e-5f), LX_PRIM_LAYER_NORM, tol);
            for (int ax = 0; ax < 3; ax++) {
                snprintf(what, sizeof what, "softmax %s [%d,%d,%d] axis %d", lx_dtype_name(t), s[0], s[1], s[2], ax);
                lx_array big = lx_mul_scalar(x, 10.0); /* wide logits */
                check_fallback(what, lx_softmax(big, ax), LX_PRIM_SOFTMAX, tol);
                check_fallback(what, lx_log_softmax(big, ax), LX_PRIM_SOFTMAX, tol);
            }
            lx_sweep();
        }
    }
}

static void test_fallback_arg_reduce(void) {
    t_seed(22);
    float v[] = {1, 5, 5, -2, NAN, 3, 0, NAN, -7, -7, 2, 2};
    lx_array x = lx_array_f32(v, (int[]){3, 4}, 2);
    for (int ax = 0; ax < 2; ax++) {
        check_fallback("argmax with NaN", lx_argmax(x, ax, false), LX_PRIM_ARG_REDUCE, 0);
        check_fallback("argmin with NaN", lx_argmin(x, ax, true), LX_PRIM_ARG_REDUCE, 0);
    }
    int32_t iv[] = {3, 1, 3, 3, -4, 0, -4, 9, 9, 9, 1, 0};
    lx_array xi = lx_array_i32(iv, (int[]){2, 6}, 2);
    check_fallback("argmax int32 ties", lx_argmax(xi, 1, false), LX_PRIM_ARG_REDUCE, 0);
    check_fallback("argmin int32 ties", lx_argmin(xi, 0, false), LX_PRIM_ARG_REDUCE, 0);
    lx_array r = rnd((int[]){4, 5, 300}, 3, LX_BFLOAT16, -1, 1);
    check_fallback("argmax bf16", lx_argmax(r, -1, false), LX_PRIM_ARG_REDUCE, 0);
}

static void test_fallback_rope(void) {
    t_seed(23);
    char what[96];
    lx_array freqs = rnd((int[]){8}, 1, LX_FLOAT32, 1, 50);
    lx_keep(freqs); /* across the sweeps below */
    for (int di = 0; di < 3; di++) {
        lx_dtype t = k_floats[di];
        double tol = tol_for(t);
        lx_array x = rnd((int[]){2, 3, 17, 16}, 4, t, -2, 2);
        for (int trad = 0; trad < 2; trad++) {
            snprintf(what, sizeof what, "rope %s trad %d", lx_dtype_name(t), trad);
            check_fallback(what, lx_rope(x, 16, trad, 10000.0f, 1.0f, 0), LX_PRIM_ROPE, tol);
            check_fallback(what, lx_rope(x, 8, trad, 500000.0f, 0.25f, 70000), LX_PRIM_ROPE, tol);
            check_fallback(what, lx_rope_at(x, 12, trad, 10000.0f, 1.0f, lx_scalar_i32(41)), LX_PRIM_ROPE, tol);
            check_fallback(what, lx_rope_freqs(x, 16, trad, freqs, 1.0f, 9), LX_PRIM_ROPE, tol);
            check_fallback(what, lx_rope_freqs_at(x, 16, trad, freqs, 2.0f,
                                                  lx_astype(lx_scalar_i32(3), LX_INT64)),
                           LX_PRIM_ROPE, tol);
        }
        lx_sweep();
    }
    lx_free(freqs);
}

static void test_fallback_sdpa(void) {
    t_seed(24);
    char what[128];
    struct { int B, Hq, Hkv, Lq, Lk, D, Dv; } cases[] = {
        {2, 4, 2, 5, 9, 16, 8}, {1, 6, 6, 7, 7, 32, 32}, {1, 8, 2, 1, 40, 64, 64}, {2, 3, 1, 4, 4, 8, 12},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
        for (int di = 0; di < 3; di++) {
            lx_dtype t = k_floats[di];
            double tol = tol_for(t);
            int B = cases[ci].B, Hq = cases[ci].Hq, Hkv = cases[ci].Hkv, Lq = cases[ci].Lq,
                Lk = cases[ci].Lk;
            lx_array q = rnd((int[]){B, Hq, Lq, cases[ci].D}, 4, t, -1, 1);
            lx_array k = rnd((int[]){B, Hkv, Lk, cases[ci].D}, 4, t, -1, 1);
            lx_array v = rnd((int[]){B, Hkv, Lk, cases[ci].Dv}, 4, t, -1, 1);
            float sc = 1.0f / sqrtf((float)cases[ci].D) * 3.0f;
            /* a bool mask with a row that sees nothing, and an additive one */
            lx_array bm = lx_greater(rnd((int[]){Lq, Lk}, 2, LX_FLOAT32, 0, 1), lx_scalar_f32(0.3f));
            bm = lx_slice_update(bm, lx_zeros((int[]){1, Lk}, 2, LX_BOOL), (int[]){0, 0}, (int[]){1, Lk}, NULL, 2);
            lx_array fm = rnd((int[]){B, 1, Lq, Lk}, 4, t, -2, 2);
            lx_array sinks = rnd((int[]){Hq}, 1, t, -1, 1);
            for (int causal = 0; causal < 2; causal++) {
                snprintf(what, sizeof what, "sdpa %s case %zu causal %d", lx_dtype_name(t), ci, causal);
                check_fallback(what, lx_sdpa(q, k, v, sc, causal, LX_NULL_ARRAY), LX_PRIM_SDPA, tol);
                check_fallback(what, lx_sdpa(q, k, v, sc, causal, bm), LX_PRIM_SDPA, tol);
                check_fallback(what, lx_sdpa(q, k, v, sc, causal, fm), LX_PRIM_SDPA, tol);
                check_fallback(what, lx_sdpa_sinks(q, k, v, sc, causal, LX_NULL_ARRAY, sinks), LX_PRIM_SDPA, tol);
                check_fallback(what, lx_sdpa_sinks(q, k, v, sc, causal, bm, sinks), LX_PRIM_SDPA, tol);
            }
            lx_sweep();
        }
}

static void test_fallback_quantized(void) {
    t_seed(25);
    char what[128];
    int bits[] = {2, 3, 4, 5, 6, 8}, groups[] = {32, 64, 128};
    for (int bi = 0; bi < 6; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int di = 0; di < 3; di += 2) { /* float32 and bfloat16 scales */
                lx_dtype t = k_floats[di];
                int N = 24, K = 256;
                lx_array w = rnd((int[]){N, K}, 2, t, -1, 1);
                lx_array wq, s, b;
                CHECK_OK(lx_quantize(w, groups[gi], bits[bi], &wq, &s, &b));
                snprintf(what, sizeof what, "dequantize %s bits %d group %d", lx_dtype_name(t), bits[bi], groups[gi]);
                /* the codes are exact and scale * q + bias rounds once: float32 within 1e-6 */
                check_fallback(what, lx_dequantize(wq, s, b, groups[gi], bits[bi]), LX_PRIM_DEQUANTIZE,
                               t == LX_FLOAT32 ? 1e-6 : tol_for(t));
                lx_array x = rnd((int[]){3, 5, K}, 3, t, -1, 1);
                snprintf(what, sizeof what, "quantized_matmul %s bits %d group %d", lx_dtype_name(t), bits[bi], groups[gi]);
                check_fallback(what, lx_quantized_matmul(x, wq, s, b, true, groups[gi], bits[bi]),
                               LX_PRIM_QUANTIZED_MATMUL, tol_for(t));
                /* not transposed: w is [K, N'] quantized along N' */
                lx_array w2 = rnd((int[]){2, 64, 128}, 3, t, -1, 1);
                lx_array q2, s2, b2;
                CHECK_OK(lx_quantize(w2, groups[gi], bits[bi], &q2, &s2, &b2));
                lx_array x2 = rnd((int[]){2, 3, 64}, 3, t, -1, 1);
                check_fallback(what, lx_quantized_matmul(x2, q2, s2, b2, false, groups[gi], bits[bi]),
                               LX_PRIM_QUANTIZED_MATMUL, tol_for(t));
                /* gather_qmm: experts picked per row */
                lx_array xr = rnd((int[]){4, 1, 128}, 3, t, -1, 1);
                lx_array wq3 = rnd((int[]){3, 16, 128}, 3, t, -1, 1);
                lx_array q3, s3, b3;
                CHECK_OK(lx_quantize(wq3, groups[gi], bits[bi], &q3, &s3, &b3));
                lx_array ri = lx_array_i32((int32_t[]){2, 0, 2, 1}, (int[]){4}, 1);
                lx_array li = lx_array_i32((int32_t[]){3, 3, 0, 1}, (int[]){4}, 1);
                check_fallback(what, lx_gather_qmm(xr, q3, s3, b3, LX_NULL_ARRAY, ri, true, groups[gi], bits[bi]),
                               LX_PRIM_QUANTIZED_MATMUL, tol_for(t));
                check_fallback(what, lx_gather_qmm(xr, q3, s3, b3, li, ri, true, groups[gi], bits[bi]),
                               LX_PRIM_QUANTIZED_MATMUL, tol_for(t));
                lx_sweep();
            }
    for (int di = 0; di < 3; di++) {
        lx_dtype t = k_floats[di];
        lx_array a = rnd((int[]){4, 3, 8}, 3, t, -1, 1), bb = rnd((int[]){5, 8, 6}, 3, t, -1, 1);
        lx_array li = lx_array_i32((int32_t[]){0, 3, 3}, (int[]){3}, 1);
        lx_array ri = lx_array_i32((int32_t[]){4, 1, 0}, (int[]){3}, 1);
        snprintf(what, sizeof what, "gather_mm %s", lx_dtype_name(t));
        check_fallback(what, lx_gather_mm(a, bb, li, ri), LX_PRIM_GATHER_MM, tol_for(t));
        check_fallback(what, lx_gather_mm(rnd((int[]){3, 3, 8}, 3, t, -1, 1), bb, LX_NULL_ARRAY, ri),
                       LX_PRIM_GATHER_MM, tol_for(t));
    }
}

static void test_fallback_index_scan(void) {
    t_seed(26);
    lx_array a = rnd((int[]){4, 6, 5}, 3, LX_FLOAT32, -5, 5);
    int32_t iv[60];
    for (int i = 0; i < 60; i++) iv[i] = t_int(-8, 8); /* negative and out of range: clamped */
    lx_array idx = lx_array_i32(iv, (int[]){4, 3, 5}, 3);
    check_fallback("take_along axis 1", lx_take_along_axis(a, idx, 1), LX_PRIM_TAKE_ALONG, 0);
    check_fallback("take_along axis 2", lx_take_along_axis(a, lx_reshape(lx_slice(idx, (int[]){0, 0, 0}, (int[]){4, 3, 4}, NULL, 3), (int[]){4, 6, 2}, 3), 2),
                   LX_PRIM_TAKE_ALONG, 0);
    check_fallback("take_along broadcast", lx_take_along_axis(a, lx_astype(lx_slice(idx, (int[]){0, 0, 0}, (int[]){1, 3, 5}, NULL, 3), LX_UINT8), 1),
                   LX_PRIM_TAKE_ALONG, 0);
    /* put_along: distinct targets per row (as the sampler's penalty writes), then repeats */
    int32_t pv[] = {3, 0, 9, 1, 8, 2, -1, 4, 5, 7, 6, 2};
    lx_array pidx = lx_array_i32(pv, (int[]){4, 3}, 2);
    lx_array x = rnd((int[]){4, 10}, 2, LX_FLOAT32, -1, 1);
    check_fallback("put_along", lx_put_along_axis(x, pidx, rnd((int[]){4, 3}, 2, LX_FLOAT32, 5, 6), -1),
                   LX_PRIM_PUT_ALONG, 0);
    check_fallback("put_along axis 0", lx_put_along_axis(lx_transpose(x, NULL, 0), lx_transpose(pidx, NULL, 0),
                                                         lx_scalar_f32(9), 0),
                   LX_PRIM_PUT_ALONG, 0);
    int32_t rv[] = {2, 2, 2, 0, 11, -11};
    check_fallback("put_along repeats", lx_put_along_axis(rnd((int[]){2, 10}, 2, LX_FLOAT32, -1, 1), lx_array_i32(rv, (int[]){2, 3}, 2),
                                                          lx_array_f32((float[]){1, 2, 3, 4, 5, 6}, (int[]){2, 3}, 2), 1),
                   LX_PRIM_PUT_ALONG, 0);
    /* scans: float sums within the float32 tolerance, integer ones exact */
    int lens[] = {1, 5, 37, 300};
    for (int li = 0; li < 4; li++) {
        lx_array s = rnd((int[]){3, lens[li]}, 2, LX_FLOAT32, -1, 1);
        check_fallback("cumsum f32", lx_cumsum(s, 1), LX_PRIM_SCAN, 1e-5);
        check_fallback("cumsum f32 axis 0", lx_cumsum(s, 0), LX_PRIM_SCAN, 1e-5);
        check_fallback("cumsum bf16", lx_cumsum(lx_astype(s, LX_BFLOAT16), 1), LX_PRIM_SCAN, 1e-2);
        check_fallback("cumprod f32", lx_cumprod(lx_add_scalar(lx_mul_scalar(s, 0.1), 1.0), 1), LX_PRIM_SCAN, 1e-5);
        lx_array withnan = lx_where(lx_greater(s, lx_scalar_f32(0.9f)), lx_scalar_f32(NAN), s);
        check_fallback("cummax f32 NaN", lx_cummax(withnan, 1), LX_PRIM_SCAN, 0);
        check_fallback("cummin f32", lx_cummin(s, 1), LX_PRIM_SCAN, 0);
        lx_array si = lx_astype(lx_mul_scalar(s, 1000.0), LX_INT32);
        check_fallback("cumsum int32", lx_cumsum(si, 1), LX_PRIM_SCAN, 0);
        check_fallback("cumsum bool", lx_cumsum(lx_greater(s, lx_scalar_f32(0)), 1), LX_PRIM_SCAN, 0);
        check_fallback("cummax uint8", lx_cummax(lx_astype(lx_add_scalar(si, 1000), LX_UINT8), 1), LX_PRIM_SCAN, 0);
        lx_sweep();
    }
}

static lx_status fused_fn(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out) {
    (void)ctx;
    (void)n_in;
    (void)n_out;
    lx_array a = lx_exp(lx_mul_scalar(in[0], 0.5));
    lx_array c = lx_where(lx_greater(in[1], lx_scalar_f32(0)), a, lx_neg(in[1]));
    out[0] = lx_astype(lx_add(lx_mul(c, in[1]), lx_sigmoid(in[0])), LX_BFLOAT16);
    return LX_OK;
}

static void test_fallback_fused(void) {
    t_seed(27);
    lx_closure *cl = lx_compile(fused_fn, NULL, 1, 0);
    lx_array x = rnd((int[]){3, 40}, 2, LX_FLOAT32, -2, 2), y = rnd((int[]){40}, 1, LX_FLOAT32, -2, 2);
    lx_array out;
    CHECK_OK(lx_call(cl, (lx_array[]){x, y}, 2, &out, 1));
    /* the FUSED program expanded back into UNARY/BINARY/WHERE/COPY nodes gives its bits */
    check_fallback("fused exp/where/sigmoid", out, LX_PRIM_FUSED, 0);
    lx_closure_free(cl);
}

/* ---- the model's primitives ----------------------------------------------------------------- */

static void collect_rec(lx_node *n, bool *seen) {
    if (!n || lx_node_state_of(n) != LX_NODE_LAZY || !visit(n)) return;
    seen[n->prim] = true;
    for (int i = 0; i < n->n_inputs; i++) collect_rec(n->inputs[i], seen);
}
static void collect_prims(lx_node *n, bool *seen, int depth) {
    (void)depth;
    visit_clear();
    collect_rec(n, seen);
}

static void test_model_needs(void) {
    const char *root = getenv("LX_FIXTURES");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tiny-llama-f32", root ? root : "../shared/fixtures");
    lx_model *m = lx_model_load(dir);
    if (!m) {
        printf("  (no fixture %s: %s)\n", dir, lx_error_message());
        lx_clear_error();
        return;
    }
    bool prev = lx_set_compile_enabled(false); /* the sampler's primitives, not its fused form */
    bool seen[LX_PRIM_COUNT + 1];
    memset(seen, 0, sizeof seen);
    lx_kv_cache *kv = lx_kv_cache_new(m->cfg.n_layers, m->cfg.n_kv_heads, m->cfg.head_dim, m->act, 64);
    CHECK_OK(lx_kv_cache_reserve(kv, 4));
    lx_array ids = lx_array_i32((int32_t[]){1, 5, 9, 2}, (int[]){4}, 1);
    lx_array logits = lx_model_forward(m, ids, kv, false);
    CHECK(!lx_is_null(logits));
    collect_prims(lx_handle_peek(logits), seen, 0);
    lx_sampler_config sc = {.temperature = 0.8f, .top_k = 5, .top_p = 0.9f, .min_p = 0.05f,
                            .repeat_penalty = 1.1f, .repeat_last_n = 8, .seed = 1};
    lx_sampler *s = lx_sampler_new(&sc, m->cfg.vocab);
    CHECK_OK(lx_sampler_accept_ids(s, (int32_t[]){1, 5, 9, 2}, 4));
    lx_array tok = lx_sampler_next(s, logits);
    CHECK(!lx_is_null(tok));
    collect_prims(lx_handle_peek(tok), seen, 0);
    sc.temperature = 0;
    lx_sampler *g = lx_sampler_new(&sc, m->cfg.vocab);
    collect_prims(lx_handle_peek(lx_sampler_next(g, logits)), seen, 0);
    for (int p = 1; p < LX_PRIM_COUNT; p++) {
        if (!seen[p]) continue;
        bool core = p == LX_PRIM_COPY || p == LX_PRIM_FULL || p == LX_PRIM_ARANGE ||
                    p == LX_PRIM_UNARY || p == LX_PRIM_BINARY || p == LX_PRIM_WHERE ||
                    p == LX_PRIM_REDUCE || p == LX_PRIM_MATMUL || p == LX_PRIM_TAKE ||
                    p == LX_PRIM_SLICE_UPDATE || p == LX_PRIM_CONCATENATE ||
                    p == LX_PRIM_RANDOM_BITS || p == LX_PRIM_SORT || lx_prim_is_view(p);
        if (getenv("LX_TEST_VERBOSE")) printf("  model uses %s%s\n", lx_prim_name(p), core ? " (core)" : "");
        CHECK_MSG(core || lx_prim_has_fallback(p), "the model uses %s, which is not core and has "
                  "no fallback", lx_prim_name(p));
    }
    CHECK(seen[LX_PRIM_RMS_NORM] && seen[LX_PRIM_ROPE] && seen[LX_PRIM_SDPA]);
    CHECK_OK(lx_eval(tok));
    lx_sampler_free(s);
    lx_sampler_free(g);
    lx_kv_cache_free(kv);
    lx_set_compile_enabled(prev);
    lx_model_free(m);
}

int main(void) {
    RUN_TEST(test_table);
    RUN_TEST(test_rules_cover_ops);
    RUN_TEST(test_rules_follow_shapes);
    RUN_TEST(test_fallback_norms_softmax);
    RUN_TEST(test_fallback_arg_reduce);
    RUN_TEST(test_fallback_rope);
    RUN_TEST(test_fallback_sdpa);
    RUN_TEST(test_fallback_quantized);
    RUN_TEST(test_fallback_index_scan);
    RUN_TEST(test_fallback_fused);
    RUN_TEST(test_model_needs);
    return test_finish();
}
