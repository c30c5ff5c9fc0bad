/*
 * test_linalg.c -- lx_matmul and lx_addmm against float64 references computed here.
 *
 * Operands of 1-4 dims (1-D operands promoted as MLX does), broadcast batch dims, every float
 * dtype and several integer ones, laid out contiguous, with the last two dims transposed (the
 * BLAS transposed-operand path), fully permuted, strided (lx_slice step 2), broadcast (zero
 * strides) or reversed (negative strides: the copy path); the batch-into-M fold (a [B, L, K] @ b [K, N]); sizes from 1 to a
 * few hundred (OpenBLAS threads); one row or one column (BLAS GEMV, also on a recycled buffer
 * of NaN); a few rows against W^T (the skinny kernel); K = 0 and empty results; addmm with broadcast c and
 * alpha/beta; the error cases.
 *
 * Tolerances, per output with S = sum_k |a_ik b_kj| (inputs rounded to their dtype first):
 *   float32 and half inputs: |err| <= 2 K 2^-24 S (float32 accumulation) plus the output's
 *   rounding, 2 u(t) |want| with u = 2^-24 / 2^-11 / 2^-8 for float32 / float16 / bfloat16;
 *   float64: 2 K 2^-53 S; integers and bool: exact (values small enough not to wrap).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "test_util.h"
#include "test_layout.h"

static double rand_val(lx_dtype t) {
    if (t == LX_BOOL) return (double)(t_next() & 1);
    if (is_float(t)) return round_to(t_uniform(-2, 2), t);
    if (t >= LX_INT8 && t <= LX_INT64) return t_int(-5, 5);
    return t_int(0, 5);
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int ashape[LX_MAX_NDIM], bshape[LX_MAX_NDIM], cshape[LX_MAX_NDIM];
    int na, nb, nc;
} mm_shapes;

/* Reference: a @ b (+ c) with MLX's 1-D promotion and batch broadcasting. Writes the result's
 * shape; out/tol get row-major values. Returns the number of outputs. */
static size_t ref_matmul(const double *a, const double *b, const double *c, const mm_shapes *s,
                         double alpha, double beta, lx_dtype t, int *rshape, int *nr,
                         double **out, double **tol) {
    int A[LX_MAX_NDIM], B[LX_MAX_NDIM], na = s->na, nb = s->nb;
    memcpy(A, s->ashape, sizeof A);
    memcpy(B, s->bshape, sizeof B);
    if (na == 1) { A[1] = A[0]; A[0] = 1; na = 2; }
    if (nb == 1) { B[1] = 1; nb = 2; }
    int M = A[na - 2], K = A[na - 1], N = B[nb - 1];
    int nbat = (na > nb ? na : nb) - 2, batch[LX_MAX_NDIM];
    for (int i = 0; i < nbat; i++) {
        int da = i - (nbat - (na - 2)) >= 0 ? A[i - (nbat - (na - 2))] : 1;
        int db = i - (nbat - (nb - 2)) >= 0 ? B[i - (nbat - (nb - 2))] : 1;
        batch[i] = da == 1 ? db : da;
    }
    *nr = 0;
    for (int i = 0; i < nbat; i++) rshape[(*nr)++] = batch[i];
    if (s->na != 1) rshape[(*nr)++] = M;
    if (s->nb != 1) rshape[(*nr)++] = N;
    size_t nbatch = shape_size(batch, nbat), nout = nbatch * (size_t)M * (size_t)N;
    *out = malloc((nout + 1) * sizeof(double));
    *tol = malloc((nout + 1) * sizeof(double));
    int bi[LX_MAX_NDIM], ia[LX_MAX_NDIM], ib[LX_MAX_NDIM];
    for (size_t q = 0; q < nbatch; q++) {
        unravel(q, batch, nbat, bi);
        for (int i = 0; i < na - 2; i++) ia[i] = A[i] == 1 ? 0 : bi[i + nbat - (na - 2)];
        for (int i = 0; i < nb - 2; i++) ib[i] = B[i] == 1 ? 0 : bi[i + nbat - (nb - 2)];
        size_t aoff = ravel(ia, A, na - 2) * (size_t)M * K, boff = ravel(ib, B, nb - 2) * (size_t)K * N;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double acc = 0, S = 0;
                for (int k = 0; k < K; k++) {
                    double p = a[aoff + (size_t)m * K + k] * b[boff + (size_t)k * N + n];
                    acc += p;
                    S += fabs(p);
                }
                size_t o = (q * M + m) * (size_t)N + n;
                double w = alpha * acc;
                if (c) w += beta * c[o];
                if (t == LX_BOOL) w = acc != 0;
                else if (!is_float(t)) { /* integers wrap in their dtype */
                    uint64_t bits = (uint64_t)(int64_t)w;
                    switch (t) {
                    case LX_INT8: w = (int8_t)(uint8_t)bits; break;
                    case LX_UINT8: w = (uint8_t)bits; break;
                    case LX_INT16: w = (int16_t)(uint16_t)bits; break;
                    case LX_INT32: w = (int32_t)(uint32_t)bits; break;
                    default: break;
                    }
                }
                (*out)[o] = w;
                double acc_u = t == LX_FLOAT64 ? 1.1102230246251565e-16 : 5.960464477539063e-08;
                (*tol)[o] = is_float(t) ? 2.0 * (K + 2) * acc_u * fabs(alpha) * S + 2 * unit_round(t) * fabs(w) +
                                              (c ? 4 * acc_u * fabs(beta * c[o]) : 0)
                                        : 0;
            }
    }
    return nout;
}

static int reports = 0;

/* c: NULL for matmul, else the broadcast c values (over the full [batch, M, N] result). */
static bool check_result(lx_array r, const int *rshape, int nr, const double *want,
                         const double *tol, size_t nout, lx_dtype t, const char *what) {
    bool ok = !lx_is_null(r) && lx_dtype_of(r) == t && lx_ndim(r) == nr;
    for (int d = 0; ok && d < nr; d++) ok = lx_dim(r, d) == rshape[d];
    double *got = malloc((nout + 1) * sizeof(double));
    ok = ok && read_doubles(r, got, nout);
    for (size_t o = 0; ok && o < nout; o++)
        if (!(fabs(got[o] - want[o]) <= tol[o])) {
            if (reports++ < 8)
                fprintf(stderr, "  %s %s: out[%zu] got %.9g want %.9g (tol %.3g)\n", what,
                        lx_dtype_name(t), o, got[o], want[o], tol[o]);
            ok = false;
        }
    if (!ok && reports++ < 8) {
        fprintf(stderr, "  %s %s failed (%s)\n", what, lx_dtype_name(t), lx_error_message());
    }
    lx_clear_error();
    free(got);
    return ok;
}

static const lx_dtype MM_DT[] = {LX_FLOAT32, LX_FLOAT64, LX_FLOAT16, LX_BFLOAT16, LX_INT32,
                                 LX_INT8, LX_UINT8, LX_INT64, LX_BOOL};
#define N_MM_DT ((int)(sizeof MM_DT / sizeof MM_DT[0]))

static bool matmul_case(lx_dtype t, int amode, int bmode, int maxdim, bool addmm) {
    mm_shapes s;
    memset(&s, 0, sizeof s);
    s.na = t_int(1, 4);
    s.nb = t_int(1, 4);
    int M = t_int(1, maxdim), K = t_int(1, maxdim), N = t_int(1, maxdim);
    int nbat = (s.na > s.nb ? s.na : s.nb) - 2;
    int batch[LX_MAX_NDIM];
    for (int i = 0; i < nbat; i++) batch[i] = t_int(1, 3);
    for (int i = 0; i < s.na - 2; i++) s.ashape[i] = (t_next() % 3 == 0) ? 1 : batch[i + nbat - (s.na - 2)];
    for (int i = 0; i < s.nb - 2; i++) s.bshape[i] = (t_next() % 3 == 0) ? 1 : batch[i + nbat - (s.nb - 2)];
    if (s.na == 1) s.ashape[0] = K;
    else { s.ashape[s.na - 2] = M; s.ashape[s.na - 1] = K; }
    if (s.nb == 1) s.bshape[0] = K;
    else { s.bshape[s.nb - 2] = K; s.bshape[s.nb - 1] = N; }
    size_t an = shape_size(s.ashape, s.na), bn = shape_size(s.bshape, s.nb);
    double *av = malloc((an + 1) * sizeof(double)), *bv = malloc((bn + 1) * sizeof(double));
    for (size_t i = 0; i < an; i++) av[i] = rand_val(t);
    for (size_t i = 0; i < bn; i++) bv[i] = rand_val(t);
    lx_array a = make_array(av, s.ashape, s.na, t, amode);
    lx_array b = make_array(bv, s.bshape, s.nb, t, bmode);
    int rshape[LX_MAX_NDIM], nr;
    double *want, *tol, *cfull = NULL;
    double alpha = 1, beta = 0;
    lx_array r;
    size_t nout;
    if (!addmm) {
        nout = ref_matmul(av, bv, NULL, &s, 1, 0, t, rshape, &nr, &want, &tol);
        r = lx_matmul(a, b);
    } else {
        /* c broadcastable to the result: drop leading dims and set some to 1 */
        free(ref_matmul(av, bv, NULL, &s, 1, 0, t, rshape, &nr, &want, &tol) ? want : NULL);
        free(tol);
        int nc = t_int(0, nr), cs[LX_MAX_NDIM];
        for (int i = 0; i < nc; i++) cs[i] = (t_next() & 1) ? 1 : rshape[nr - nc + i];
        size_t cn = shape_size(cs, nc);
        double *cv = malloc((cn + 1) * sizeof(double));
        for (size_t i = 0; i < cn; i++) cv[i] = rand_val(t);
        /* c over the full result (broadcast), in [batch, M, N] order = result order */
        size_t full = shape_size(rshape, nr);
        cfull = malloc((full + 1) * sizeof(double));
        int idx[LX_MAX_NDIM], ci[LX_MAX_NDIM];
        for (size_t o = 0; o < full; o++) {
            unravel(o, rshape, nr, idx);
            for (int i = 0; i < nc; i++) ci[i] = cs[i] == 1 ? 0 : idx[nr - nc + i];
            cfull[o] = cv[ravel(ci, cs, nc)];
        }
        lx_array c = make_array(cv, cs, nc, t, nc >= 2 ? amode % 2 : 0);
        alpha = is_float(t) ? 0.5 : 1;
        beta = is_float(t) ? -1.5 : 1;
        s.nc = nc;
        nout = ref_matmul(av, bv, cfull, &s, alpha, beta, t, rshape, &nr, &want, &tol);
        r = lx_addmm(c, a, b, (float)alpha, (float)beta);
        free(cv);
    }
    char what[96];
    snprintf(what, sizeof what, "%s a %dD %s b %dD %s (M%d K%d N%d)", addmm ? "addmm" : "matmul", s.na,
             MODE_NAME[amode], s.nb, MODE_NAME[bmode], M, K, N);
    bool ok = check_result(r, rshape, nr, want, tol, nout, t, what);
    free(want);
    free(tol);
    free(cfull);
    free(av);
    free(bv);
    lx_sweep();
    return ok;
}

static void test_matmul_random(void) {
    t_seed(2024);
    for (int ti = 0; ti < N_MM_DT; ti++) {
        int bad = 0, total = 0;
        for (int rep = 0; rep < 60; rep++) {
            int am = rep % 6, bm = (rep / 6) % 6;
            if (!matmul_case(MM_DT[ti], am, bm, rep >= 48 ? 70 : 9, false)) bad++;
            total++;
        }
        CHECK_MSG(bad == 0, "matmul %s: %d of %d cases failed", lx_dtype_name(MM_DT[ti]), bad, total);
    }
}

static void test_addmm_random(void) {
    t_seed(77);
    for (int ti = 0; ti < 4; ti++) {
        int bad = 0;
        for (int rep = 0; rep < 20; rep++)
            if (!matmul_case(MM_DT[ti], rep % 5, (rep / 5) % 5, rep >= 15 ? 40 : 8, true)) bad++;
        CHECK_MSG(bad == 0, "addmm %s: %d of 20 cases failed", lx_dtype_name(MM_DT[ti]), bad);
    }
    /* integers through addmm */
    int32_t av[4] = {1, 2, 3, 4}, bv[4] = {1, 0, 0, 1}, cv[2] = {10, 20};
    lx_array r = lx_addmm(lx_array_i32(cv, (int[]){2}, 1), lx_array_i32(av, (int[]){2, 2}, 2),
                          lx_array_i32(bv, (int[]){2, 2}, 2), 2.0f, 1.0f);
    int32_t out[4];
    CHECK_OK(lx_read(r, out, sizeof out));
    CHECK(out[0] == 12 && out[1] == 24 && out[2] == 16 && out[3] == 28);
}

/* Larger products (OpenBLAS threading, the half panels' "big" path, the fold). */
static void test_matmul_large(void) {
    t_seed(31337);
    struct { int a[3], na, b[3], nb, amode, bmode; } cases[] = {
        {{256, 300}, 2, {300, 200}, 2, 0, 0},
        {{256, 300}, 2, {300, 200}, 2, 1, 1},         /* both transposed: Trans/Trans */
        {{3, 70, 128}, 3, {128, 96}, 2, 0, 1},        /* fold batch into M, b^T */
        {{3, 70, 128}, 3, {128, 96}, 2, 1, 0},        /* a transposed: no fold */
        {{1, 4096}, 2, {4096, 300}, 2, 0, 1},         /* a decode-like row times W^T (GEMV) */
        {{1, 512}, 2, {512, 300}, 2, 1, 0},           /* GEMV: a row read at a stride, times W */
        {{1, 1000}, 2, {1000, 299}, 2, 0, 1},         /* W^T rows in fours, K and N with tails */
        {{1, 512}, 2, {512, 300}, 2, 3, 3},           /* GEMV on strided views (copies) */
        {{300, 512}, 2, {512, 1}, 2, 0, 0},           /* one column: GEMV on a */
        {{300, 512}, 2, {512, 1}, 2, 1, 1},           /* one column, a transposed, b a row view */
        {{4, 1, 512}, 3, {512, 200}, 2, 0, 1},        /* a batch of rows folds into M = 4 */
        {{5, 1024}, 2, {1024, 1030}, 2, 0, 1},        /* skinny: 5 rows against W^T, N % 4 = 2 */
        {{8, 1000}, 2, {1000, 600}, 2, 0, 1},         /* skinny: 8 rows, K % 8 = 0, tails */
        {{3, 2048}, 2, {2048, 600}, 2, 0, 0},         /* half rows @ W [K, N]: K split */
        {{1, 2050}, 2, {2050, 520}, 2, 1, 0},         /* the same, one row; K and N with tails */
        {{3, 1, 256}, 3, {3, 256, 64}, 3, 0, 1},      /* batched GEMVs */
        {{300, 64}, 2, {2, 64, 90}, 3, 0, 0},         /* a shared, b batched */
        {{8, 16, 16}, 3, {8, 16, 16}, 3, 0, 0},       /* many small products (parallel) */
        {{2, 200, 100}, 3, {2, 100, 150}, 3, 3, 4},   /* strided and broadcast: copies */
    };
    lx_dtype dts[4] = {LX_FLOAT32, LX_FLOAT16, LX_BFLOAT16, LX_FLOAT64};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int ti = 0; ti < 4; ti++) {
            lx_dtype t = dts[ti];
            mm_shapes s;
            memset(&s, 0, sizeof s);
            s.na = cases[c].na;
            s.nb = cases[c].nb;
            memcpy(s.ashape, cases[c].a, sizeof cases[c].a);
            memcpy(s.bshape, cases[c].b, sizeof cases[c].b);
            size_t an = shape_size(s.ashape, s.na), bn = shape_size(s.bshape, s.nb);
            double *av = malloc(an * sizeof(double)), *bv = malloc(bn * sizeof(double));
            for (size_t i = 0; i < an; i++) av[i] = rand_val(t);
            for (size_t i = 0; i < bn; i++) bv[i] = rand_val(t);
            lx_array a = make_array(av, s.ashape, s.na, t, cases[c].amode);
            lx_array b = make_array(bv, s.bshape, s.nb, t, cases[c].bmode);
            int rshape[LX_MAX_NDIM], nr;
            double *want, *tol;
            size_t nout = ref_matmul(av, bv, NULL, &s, 1, 0, t, rshape, &nr, &want, &tol);
            char what[64];
            snprintf(what, sizeof what, "large case %zu", c);
            CHECK_MSG(check_result(lx_matmul(a, b), rshape, nr, want, tol, nout, t, what),
                      "large matmul case %zu %s", c, lx_dtype_name(t));
            free(want);
            free(tol);
            free(av);
            free(bv);
            lx_sweep();
        }
}

static void test_matmul_edges(void) {
    /* 1-D @ 1-D is a scalar dot product; 1-D operands drop their inserted dims */
    float x[3] = {1, 2, 3}, y[3] = {4, 5, 6};
    lx_array vx = lx_array_f32(x, (int[]){3}, 1), vy = lx_array_f32(y, (int[]){3}, 1);
    lx_array d = lx_matmul(vx, vy);
    CHECK(lx_ndim(d) == 0 && lx_item_f32(d) == 32.0f);
    float m[6] = {1, 0, 0, 1, 1, 1};
    lx_array mm = lx_array_f32(m, (int[]){3, 2}, 2);
    lx_array r = lx_matmul(vx, mm);
    float rv[2];
    CHECK(lx_ndim(r) == 1 && lx_dim(r, 0) == 2);
    CHECK_OK(lx_read(r, rv, sizeof rv));
    CHECK(rv[0] == 4 && rv[1] == 5);
    lx_array r2 = lx_matmul(lx_transpose(mm, NULL, 0), vx);
    CHECK(lx_ndim(r2) == 1 && lx_dim(r2, 0) == 2);
    CHECK_OK(lx_read(r2, rv, sizeof rv));
    CHECK(rv[0] == 4 && rv[1] == 5);
    /* K = 0: zeros (and beta * c for addmm); M or N = 0: empty */
    lx_array z = lx_matmul(lx_zeros((int[]){2, 0}, 2, LX_FLOAT32), lx_zeros((int[]){0, 3}, 2, LX_FLOAT32));
    float zv[6] = {1, 1, 1, 1, 1, 1};
    CHECK_OK(lx_read(z, zv, sizeof zv));
    CHECK(zv[0] == 0 && zv[5] == 0);
    lx_array zc = lx_addmm(lx_ones((int[]){3}, 1, LX_FLOAT32), lx_zeros((int[]){2, 0}, 2, LX_FLOAT32),
                           lx_zeros((int[]){0, 3}, 2, LX_FLOAT32), 1.0f, 2.0f);
    CHECK_OK(lx_read(zc, zv, sizeof zv));
    CHECK(zv[0] == 2 && zv[5] == 2);
    lx_array e = lx_matmul(lx_zeros((int[]){0, 4}, 2, LX_FLOAT32), lx_zeros((int[]){4, 3}, 2, LX_FLOAT32));
    CHECK(lx_dim(e, 0) == 0 && lx_dim(e, 1) == 3);
    CHECK_OK(lx_eval(e));
    /* a row (M = 1) or a column (N = 1) is a BLAS GEMV that starts from zeros: a recycled
     * buffer full of NaN does not leak into the result (BLAS may scale y by beta = 0) */
    for (int col = 0; col < 2; col++) {
        int os[2] = {col ? 300 : 1, col ? 1 : 300};
        lx_array junk = lx_mul_scalar(lx_ones(os, 2, LX_FLOAT32), NAN);
        CHECK_OK(lx_eval(junk));
        lx_free(junk);
        lx_sweep(); /* its buffer goes back to the cache */
        lx_array g = col ? lx_matmul(lx_ones((int[]){300, 512}, 2, LX_FLOAT32),
                                     lx_ones((int[]){512, 1}, 2, LX_FLOAT32))
                         : lx_matmul(lx_ones((int[]){1, 512}, 2, LX_FLOAT32),
                                     lx_ones((int[]){512, 300}, 2, LX_FLOAT32));
        float gv[300];
        CHECK_OK(lx_read(g, gv, sizeof gv));
        int off = 0;
        for (int i = 0; i < 300; i++) off += gv[i] != 512.0f;
        CHECK_MSG(off == 0, "GEMV (%s): %d of 300 results are not 512", col ? "column" : "row", off);
        lx_array h = lx_addmm(lx_ones((int[]){300}, 1, LX_FLOAT32), lx_ones((int[]){1, 512}, 2, LX_FLOAT32),
                              lx_ones((int[]){512, 300}, 2, LX_FLOAT32), 0.5f, -1.5f);
        CHECK_OK(lx_read(h, gv, sizeof gv));
        off = 0;
        for (int i = 0; i < 300; i++) off += gv[i] != 254.5f;
        CHECK_MSG(off == 0, "addmm GEMV: %d of 300 results are not 254.5", off);
        lx_sweep();
    }
    /* a few rows against W^T (the skinny kernel) with c: alpha * 1024 + beta * 1 */
    {
        lx_array h = lx_addmm(lx_ones((int[]){1030}, 1, LX_FLOAT32), lx_ones((int[]){3, 1024}, 2, LX_FLOAT32),
                              lx_transpose(lx_ones((int[]){1030, 1024}, 2, LX_FLOAT32), NULL, 0),
                              0.5f, -1.5f);
        float *hv = malloc(3 * 1030 * sizeof(float));
        CHECK_OK(lx_read(h, hv, 3 * 1030 * sizeof(float)));
        int off = 0;
        for (int i = 0; i < 3 * 1030; i++) off += hv[i] != 510.5f;
        CHECK_MSG(off == 0, "skinny addmm: %d of %d results are not 510.5", off, 3 * 1030);
        free(hv);
        lx_sweep();
    }
    /* float16 rows against W [K, N] with c (the K-split form): alpha * 2048 + beta * 1 */
    {
        lx_array h = lx_addmm(lx_ones((int[]){600}, 1, LX_FLOAT16), lx_ones((int[]){2, 2048}, 2, LX_FLOAT16),
                              lx_ones((int[]){2048, 600}, 2, LX_FLOAT16), 0.5f, -1.5f);
        float *hv = malloc(2 * 600 * sizeof(float));
        CHECK_OK(lx_read(lx_astype(h, LX_FLOAT32), hv, 2 * 600 * sizeof(float)));
        int off = 0;
        for (int i = 0; i < 2 * 600; i++) off += hv[i] != 1022.5f;
        CHECK_MSG(off == 0, "float16 K-split addmm: %d of %d results are not 1022.5", off, 1200);
        free(hv);
        lx_sweep();
    }
    /* dtype promotion: float16 @ float32 is float32; int32 @ float16 is float16 */
    CHECK(lx_dtype_of(lx_matmul(lx_ones((int[]){2, 2}, 2, LX_FLOAT16), lx_ones((int[]){2, 2}, 2, LX_FLOAT32))) == LX_FLOAT32);
    CHECK(lx_dtype_of(lx_matmul(lx_ones((int[]){2, 2}, 2, LX_INT32), lx_ones((int[]){2, 2}, 2, LX_FLOAT16))) == LX_FLOAT16);
    /* errors */
    lx_array a23 = lx_zeros((int[]){2, 3}, 2, LX_FLOAT32);
    lx_keep(a23);
    CHECK(lx_is_null(lx_matmul(a23, lx_zeros((int[]){2, 3}, 2, LX_FLOAT32))));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_matmul(a23, lx_scalar_f32(1))));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_matmul(lx_zeros((int[]){2, 2, 3}, 3, LX_FLOAT32), lx_zeros((int[]){3, 3, 4}, 3, LX_FLOAT32))));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_matmul(a23, lx_zeros((int[]){4}, 1, LX_FLOAT32))));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_addmm(lx_zeros((int[]){3, 3}, 2, LX_FLOAT32), a23, lx_zeros((int[]){3, 4}, 2, LX_FLOAT32), 1, 1)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_matmul(LX_NULL_ARRAY, a23)));
    CHECK_ERROR(LX_E_ARG);
    lx_matmul(a23, lx_zeros((int[]){5, 2}, 2, LX_FLOAT32));
    CHECK(strstr(lx_error_message(), "lx_matmul") && strstr(lx_error_message(), "[2, 3]") &&
          strstr(lx_error_message(), "[5, 2]"));
    lx_clear_error();
    lx_free(a23);
}

/* A transposed float32 operand reaches BLAS without a copy: the evaluation allocates nothing
 * beyond the output. */
static void test_no_copy(void) {
    int M = 64, K = 96, N = 80;
    lx_array a = lx_ones((int[]){K, M}, 2, LX_FLOAT32);
    lx_array b = lx_ones((int[]){N, K}, 2, LX_FLOAT32);
    lx_keep(a, b);
    CHECK_OK(lx_eval(a, b));
    lx_array at = lx_transpose(a, NULL, 0), bt = lx_transpose(b, NULL, 0);
    lx_array r = lx_matmul(at, bt);
    lx_reset_peak_memory();
    size_t before = lx_active_memory();
    CHECK_OK(lx_eval(r));
    size_t peak = lx_peak_memory();
    CHECK_MSG(peak - before <= (size_t)M * N * 4 + 4096, "peak grew by %zu for a %d x %d output",
              peak - before, M, N);
    CHECK(lx_item_f32(lx_sum_axes(r, NULL, 0, false)) == (float)(M * N * K));
    lx_free(a);
    lx_free(b);
}

int main(void) {
    RUN_TEST(test_matmul_random);
    RUN_TEST(test_addmm_random);
    RUN_TEST(test_matmul_large);
    RUN_TEST(test_matmul_edges);
    RUN_TEST(test_no_copy);
    return test_finish();
}
