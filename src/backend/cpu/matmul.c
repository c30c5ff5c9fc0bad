/*
 * matmul.c -- MATMUL (a @ b, and addmm's alpha * a @ b + beta * c) on the CPU.
 *
 * Inputs arrive broadcast to the output's batch dims (zero strides allowed). Batch dims of
 * size 1 are dropped and, when b is shared by every batch and a's batch rows are evenly
 * spaced (a contiguous [B, M, K] times a weight), the batch is folded into M: one GEMM.
 *
 *  - float32 / float64: cblas_sgemm / cblas_dgemm straight on the inputs' memory, with the
 *    transposed-operand flag when a matrix is stored column-major (a transposed view), and a
 *    row-major copy only when a matrix has neither layout (broadcast or oddly strided). A
 *    product with one row or one column is cblas_sgemv / cblas_dgemv instead, and 2-8 rows of
 *    float32 against W^T a kernel of lx's that reads W once (skinny_gemm). BLAS runs one
 *    thread per call (backend/cpu/blas.c): batches run in parallel on the lx pool when they are
 *    small (below 2^18 multiply-adds each) or at least as many as the threads; otherwise one by
 *    one, each product split across the pool by lx_blas_gemm.
 *  - float16 / bfloat16: up to 8 rows of a (decode) with b's rows or columns contiguous: the
 *    weight is read once, a chunk at a time converted to float32 and used at once (dot products
 *    or axpy, lx's threads over N; a single row against W^T converts in registers, four weight
 *    rows at a time; against a large row-major W the threads split K instead, with partial
 *    sums); otherwise panels of a and b converted to float32, sgemm,
 *    converted back. Both accumulate in float32 and round once: |error| <= K * 2^-24 *
 *    sum|a||b| + 1/2 ulp of the output.
 *  - integers and bool: a plain loop accumulating in 64 bits (wrapping), narrowed at the end;
 *    bool results are "any a & b".
 * With c (addmm) the output is first filled with c, then BLAS's beta (or the epilogue) adds it.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/rowconv.h"

/* Products below this many multiply-adds are not worth splitting across threads (OpenBLAS's
 * own threshold for threading a GEMM, and blas.c's); batches or panels of them run in
 * parallel instead. */
#define SMALL_GEMM (1 << 18)

typedef struct {
    lx_dtype t; /* the output's, a's and c's dtype */
    size_t esz;
    /* b's: t, except in MATMUL's mixed form, a half b under float32 (x @ W with W stored in
     * half: W is converted as it is read, never into a float32 copy) */
    lx_dtype tb;
    size_t bsz;
    int64_t M, N, K;
    /* batch dims after dropping size 1, with a's, b's and out's strides */
    int nb;
    int64_t bshape[LX_MAX_NDIM], bsa[LX_MAX_NDIM], bsb[LX_MAX_NDIM];
    int64_t n_batch;
    const char *a, *b;  /* element 0 */
    char *out;
    int64_t a_rs, a_cs; /* a: M rows, K cols */
    int64_t b_rs, b_cs; /* b: K rows, N cols */
    float alpha, beta;
    bool with_c;        /* out holds c on entry */
    /* panels (half path) */
    int64_t mb, nbk, m_panels, n_panels;
    const float *af;     /* a already converted ([n_batch][M][K]), or NULL */
    lx_kctx *kctx;
    /* per-task scratch, NULL where none is needed: float32/64, the copies of a and b that BLAS
     * cannot read in place; half panels; integer rows */
    lx_task_scratch *ts;
    _Atomic bool failed; /* set by any worker that ran out of memory */
} mmctx;

static void batch_offsets(const mmctx *c, int64_t bi, int64_t *oa, int64_t *ob) {
    int64_t a = 0, b = 0;
    for (int d = c->nb - 1; d >= 0; d--) {
        int64_t k = bi % c->bshape[d];
        bi /= c->bshape[d];
        a += k * c->bsa[d];
        b += k * c->bsb[d];
    }
    *oa = a;
    *ob = b;
}

/* A BLAS description of an R x C matrix with row stride rs and column stride cs. */
static bool blas_layout(int64_t R, int64_t C, int64_t rs, int64_t cs, bool *trans, int64_t *ld) {
    int64_t r1 = R > 1 ? R : 1, c1 = C > 1 ? C : 1;
    if ((cs == 1 || C == 1) && (R == 1 || rs >= c1)) {
        *trans = false;
        *ld = R == 1 ? c1 : rs;
    } else if ((rs == 1 || R == 1) && (C == 1 || cs >= r1)) {
        *trans = true;
        *ld = C == 1 ? r1 : cs;
    } else {
        return false;
    }
    return *ld <= INT_MAX;
}

/* Copies an R x C strided matrix of element size esz to row-major dst. */
static void gather_matrix(char *dst, const char *src, int64_t R, int64_t C, int64_t rs, int64_t cs,
                          size_t esz) {
    for (int64_t i = 0; i < R; i++) {
        const char *row = src + i * rs * (int64_t)esz;
        char *d = dst + i * C * (int64_t)esz;
        if (cs == 1) {
            memcpy(d, row, (size_t)C * esz);
        } else if (esz == 4) {
            for (int64_t j = 0; j < C; j++) ((float *)d)[j] = ((const float *)row)[j * cs];
        } else {
            for (int64_t j = 0; j < C; j++) ((double *)d)[j] = ((const double *)row)[j * cs];
        }
    }
}

/* ---- float32 / float64 through BLAS ------------------------------------------------------- */

/* A product with one row (M == 1: decoding, x @ W) or one column (N == 1) as a BLAS GEMV.
 * OpenBLAS's GEMM packs the whole of b even for a single row of a (0.3.21 has no forwarding),
 * which ran x[1,4096] @ W^T[4096,4096] at a quarter of the GEMV's speed. A, B and their
 * layouts as blas_batch found them; the vector is read in place at its stride. */
static void blas_gemv(const mmctx *c, const char *A, bool ta, int64_t lda, const char *B, bool tb,
                      int64_t ldb, float beta, char *C) {
    const char *mat, *vec;
    bool tr;
    int64_t rows, cols, ld, inc;
    if (c->M == 1) { /* y[N] = x[K] . B */
        vec = A;
        inc = ta ? lda : 1;
        mat = B;
        ld = ldb;
        tr = !tb; /* B stored as [N][K], or as [K][N] */
        rows = tb ? c->N : c->K;
        cols = tb ? c->K : c->N;
    } else { /* y[M] = A . b[K] */
        vec = B;
        inc = tb ? 1 : ldb;
        mat = A;
        ld = lda;
        tr = ta; /* A stored as [K][M], or as [M][K] */
        rows = ta ? c->K : c->M;
        cols = ta ? c->M : c->K;
    }
    int64_t n_out = c->M * c->N;
    /* BLAS need not read y when beta is 0, but OpenBLAS versions differ in whether they scale
     * it (0 * NaN): start from zeros */
    if (!c->with_c) memset(C, 0, (size_t)n_out * c->esz);
    lx_blas_gemv(c->t, tr, rows, cols, c->alpha, mat, ld, vec, inc, beta, C);
}

/* A few rows of a (2 <= M <= SKINNY_M: batched decoding, draft tokens) against W^T, float32:
 * W's rows are read once, four at a time, each kept in L2 while every row of a (in L1/L2)
 * takes its dot product with them: two rows of a by four of W per pass, eight vector
 * accumulators. OpenBLAS's GEMM packs all of b for these shapes (M = 4 against 4096 x 4096
 * took 9 ms, 5x the weight's read time). Vector extensions: AVX registers on v3/v4, pairs
 * of SSE registers on the baseline. */
#define SKINNY_M 8
#define SKINNY_MIN_WORK (1 << 22) /* below this many multiply-adds BLAS is fine */
typedef float mm_v8f __attribute__((vector_size(32)));

typedef struct {
    const float *A, *W;
    float *C;
    int64_t M, N, K, lda, ldw;
    float alpha, beta;
    bool with_c;
} skinnyctx;

/* (pointers, not vector values, cross function boundaries: a 32-byte vector argument changes
 * the ABI where AVX is off) */
static inline float mm_hsum8(const mm_v8f *p) {
    const float *v = (const float *)p;
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* out[m][r] = a[m] . w[r] for m < MB (1 or 2), r < 4, over K (a multiple of 8 first, then a
 * scalar tail) */
static inline __attribute__((always_inline)) void skinny_block(const float *const *a,
                                                              const float *const *w, const int MB,
                                                              int64_t K, float out[2][4]) {
    mm_v8f acc[2][4];
    memset(acc, 0, sizeof acc);
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        mm_v8f w0, w1, w2, w3;
        memcpy(&w0, w[0] + k, sizeof w0);
        memcpy(&w1, w[1] + k, sizeof w1);
        memcpy(&w2, w[2] + k, sizeof w2);
        memcpy(&w3, w[3] + k, sizeof w3);
        for (int m = 0; m < MB; m++) {
            mm_v8f x;
            memcpy(&x, a[m] + k, sizeof x);
            acc[m][0] += x * w0;
            acc[m][1] += x * w1;
            acc[m][2] += x * w2;
            acc[m][3] += x * w3;
        }
    }
    for (int m = 0; m < MB; m++)
        for (int r = 0; r < 4; r++) {
            float t = mm_hsum8(&acc[m][r]);
            for (int64_t i = k; i < K; i++) t += a[m][i] * w[r][i];
            out[m][r] = t;
        }
}

/* units: groups of 4 columns n (rows of W); the last group may repeat a row to make 4 */
static void skinny_fn(void *ctx, int64_t u0, int64_t u1) {
    const skinnyctx *c = ctx;
    for (int64_t u = u0; u < u1; u++) {
        int64_t n0 = u * 4;
        int nr = c->N - n0 < 4 ? (int)(c->N - n0) : 4;
        const float *w[4];
        for (int r = 0; r < 4; r++) w[r] = c->W + (n0 + (r < nr ? r : nr - 1)) * c->ldw;
        for (int64_t m0 = 0; m0 < c->M; m0 += 2) {
            int MB = c->M - m0 < 2 ? 1 : 2;
            const float *a[2] = {c->A + m0 * c->lda, c->A + (m0 + MB - 1) * c->lda};
            float out[2][4];
            if (MB == 2) skinny_block(a, w, 2, c->K, out); /* constant MB: registers */
            else skinny_block(a, w, 1, c->K, out);
            for (int m = 0; m < MB; m++)
                for (int r = 0; r < nr; r++) {
                    float *o = c->C + (m0 + m) * c->N + n0 + r;
                    *o = c->alpha * out[m][r] + (c->with_c ? c->beta * *o : 0.0f);
                }
        }
    }
}

/* The skinny kernel when it applies (float32, A's rows and W's rows contiguous). */
static bool skinny_gemm(const mmctx *c, const char *A, bool ta, int64_t lda, const char *B,
                        bool tb, int64_t ldb, char *C) {
    if (c->t != LX_FLOAT32 || c->M < 2 || c->M > SKINNY_M || ta || !tb ||
        (double)c->M * (double)c->N * (double)c->K < (double)SKINNY_MIN_WORK)
        return false;
    skinnyctx k = {(const float *)A, (const float *)B, (float *)C, c->M, c->N, c->K, lda, ldb,
                   c->alpha, c->beta, c->with_c};
    int64_t units = (c->N + 3) / 4;
    lx_parallel_for(units, 16, skinny_fn, &k);
    return true;
}

/* One GEMM of batch bi (out rows already hold c when with_c); scratch has room for copies of
 * a (M x K) and then b (K x N), for those of them that blas_layout cannot describe. */
static void blas_batch(const mmctx *c, int64_t bi, char *scratch) {
    int64_t oa, ob;
    batch_offsets(c, bi, &oa, &ob);
    const char *A = c->a + oa * (int64_t)c->esz, *B = c->b + ob * (int64_t)c->esz;
    char *C = c->out + bi * c->M * c->N * (int64_t)c->esz;
    bool ta, tb;
    int64_t lda, ldb;
    if (!blas_layout(c->M, c->K, c->a_rs, c->a_cs, &ta, &lda)) {
        char *sa = scratch;
        scratch += (size_t)(c->M * c->K) * c->esz;
        gather_matrix(sa, A, c->M, c->K, c->a_rs, c->a_cs, c->esz);
        A = sa;
        ta = false;
        lda = c->K;
    }
    if (!blas_layout(c->K, c->N, c->b_rs, c->b_cs, &tb, &ldb)) {
        char *sb = scratch;
        gather_matrix(sb, B, c->K, c->N, c->b_rs, c->b_cs, c->esz);
        B = sb;
        tb = false;
        ldb = c->N;
    }
    float beta = c->with_c ? c->beta : 0.0f;
    /* one row or column: GEMV (not for K = 0, where GEMV would skip beta * c); 2-8 rows against
     * W^T: skinny_gemm; otherwise GEMM */
    bool done = (c->M == 1 || c->N == 1) && c->K > 0;
    if (done) blas_gemv(c, A, ta, lda, B, tb, ldb, beta, C);
    else done = skinny_gemm(c, A, ta, lda, B, tb, ldb, C);
    if (!done)
        lx_blas_gemm(c->t, ta, tb, c->M, c->N, c->K, c->alpha, A, lda, B, ldb, beta, C, c->N);
}

static void blas_batches_fn(void *ctx, int64_t b, int64_t e) {
    mmctx *c = ctx;
    int slot = -1;
    char *scratch = NULL;
    if (c->ts && !(scratch = lx_task_scratch_take(c->ts, &slot))) {
        c->failed = true;
        return;
    }
    for (int64_t bi = b; bi < e; bi++) blas_batch(c, bi, scratch);
    if (c->ts) lx_task_scratch_give(c->ts, slot);
}

/* ---- float16 / bfloat16: float32 panels ------------------------------------------------------ */

typedef struct {
    float *dst;
    const char *src;
    lx_dtype t;
    size_t esz;
    int64_t rows, cols, rs, cs, ld;
} convctx;

static void conv_rows_fn(void *ctx, int64_t b, int64_t e) {
    const convctx *v = ctx;
    for (int64_t i = b; i < e; i++)
        lx_row_load_f32(v->dst + i * v->ld, v->src + i * v->rs * (int64_t)v->esz, v->t, v->cs,
                        v->cols);
}

/* rows x cols of a strided matrix of dtype t into row-major floats (ld = cols), optionally on
 * the pool. */
static void convert_panel(float *dst, const char *src, lx_dtype t, int64_t rows, int64_t cols,
                          int64_t rs, int64_t cs, bool parallel) {
    convctx v = {dst, src, t, lx_dtype_size(t), rows, cols, rs, cs, cols};
    if (parallel) lx_parallel_for(rows, cols >= 4096 ? 1 : 4096 / (cols ? cols : 1), conv_rows_fn, &v);
    else conv_rows_fn(&v, 0, rows);
}

/* One (batch, m-panel, n-panel) tile: convert, sgemm, round into out (adding beta * c). */
static bool half_tile(mmctx *c, int64_t bi, int64_t pm, int64_t pn, float *scratch, bool parallel) {
    int64_t oa, ob;
    batch_offsets(c, bi, &oa, &ob);
    int64_t m0 = pm * c->mb, n0 = pn * c->nbk;
    int64_t mb = c->M - m0 < c->mb ? c->M - m0 : c->mb;
    int64_t nb = c->N - n0 < c->nbk ? c->N - n0 : c->nbk;
    int64_t K = c->K;
    float *Af = scratch, *Bf = Af + mb * K, *Cf = Bf + K * nb;
    const char *A = c->a + (oa + m0 * c->a_rs) * (int64_t)c->esz;
    const char *B = c->b + (ob + n0 * c->b_cs) * (int64_t)c->bsz;
    if (c->af) Af = (float *)c->af + (bi * c->M + m0) * K;
    else convert_panel(Af, A, c->t, mb, K, c->a_rs, c->a_cs, parallel);
    bool tb = c->b_rs == 1 && c->b_cs != 1; /* b^T rows are contiguous: convert them */
    if (tb) convert_panel(Bf, B, c->tb, nb, K, c->b_cs, c->b_rs, parallel);
    else convert_panel(Bf, B, c->tb, K, nb, c->b_rs, c->b_cs, parallel);
    lx_blas_gemm(LX_FLOAT32, false, tb, mb, nb, K, c->alpha, Af, K, Bf, tb ? K : nb, 0.0, Cf, nb);
    char *O = c->out + ((bi * c->M + m0) * c->N + n0) * (int64_t)c->esz;
    for (int64_t i = 0; i < mb; i++) {
        float *crow = Cf + i * nb;
        char *orow = O + i * c->N * (int64_t)c->esz;
        if (c->with_c) {
            float tmp[256];
            for (int64_t j0 = 0; j0 < nb; j0 += 256) {
                int64_t len = nb - j0 < 256 ? nb - j0 : 256;
                lx_row_load_f32(tmp, orow + j0 * (int64_t)c->esz, c->t, 1, len);
                for (int64_t j = 0; j < len; j++) crow[j0 + j] += c->beta * tmp[j];
            }
        }
        lx_row_store_f32(orow, c->t, 1, crow, nb);
    }
    return true;
}

static size_t half_tile_bytes(const mmctx *c) {
    return (size_t)(c->mb * c->K + c->K * c->nbk + c->mb * c->nbk) * sizeof(float);
}

static void half_tiles_fn(void *ctx, int64_t b, int64_t e) {
    mmctx *c = ctx;
    int slot;
    float *scratch = lx_task_scratch_take(c->ts, &slot);
    if (!scratch) {
        c->failed = true;
        return;
    }
    int64_t per_batch = c->m_panels * c->n_panels;
    for (int64_t t = b; t < e; t++) {
        int64_t bi = t / per_batch, r = t % per_batch;
        half_tile(c, bi, r / c->n_panels, r % c->n_panels, scratch, false);
    }
    lx_task_scratch_give(c->ts, slot);
}

/* Small M (decode: a few rows times a weight) with b's rows or columns contiguous: the weight
 * is read once, converted a chunk at a time into float32 and used straight away (dot products
 * against W's rows for b = W^T, or axpy over b's rows), instead of panels through sgemm. The
 * accumulation is float32 as in sgemm. */
#define GEMV_M 8
#define GEMV_NB 64
#define GEMV_KB 512
#define GEMV_LANES 32

/* r[0..nb), float32 results of part of an output row: times alpha, plus beta times the c the
 * row holds when with_c, rounded into the row. scratch holds nb floats. */
static void half_row_out(const mmctx *c, char *orow, float *r, int64_t nb, float *scratch) {
    for (int64_t j = 0; j < nb; j++) r[j] *= c->alpha;
    if (c->with_c) {
        lx_row_load_f32(scratch, orow, c->t, 1, nb);
        for (int64_t j = 0; j < nb; j++) r[j] += c->beta * scratch[j];
    }
    lx_row_store_f32(orow, c->t, 1, r, nb);
}

/* out[r] = sum_k a[k] * w[r][k] for r < R <= GEMV_ROWS rows of n float16 or bfloat16 values,
 * converted in registers: one row of a streams the weight rows GEMV_ROWS at a time, sharing
 * the loads of a, with GEMV_ROWS * 2 independent FMA chains and no staging buffer (converting
 * 512 values into L1 and then taking one dot product at a time left the memory idle). */
#define GEMV_ROWS 4
static inline float gemv_half1(const uint16_t *w, int64_t k, lx_dtype t) {
    return t == LX_BFLOAT16 ? lx_bf16_to_f32(w[k]) : lx_f16_to_f32(w[k]);
}
static void gemv_rows_half(float *out, const float *a, const uint16_t *const *w, int R, int64_t n,
                           lx_dtype t) {
    float ln[GEMV_ROWS][16];
    memset(ln, 0, sizeof ln);
    int64_t k = 0;
#if defined(__AVX2__) && defined(__FMA__) && defined(LX_ROW_F16C)
    /* 16 values of row r from k: two vectors of 8 floats */
#define GEMV_CVT_(p) (t == LX_BFLOAT16                                                          \
                          ? _mm256_castsi256_ps(_mm256_slli_epi32(                                \
                                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16)) \
                          : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p))))
    if (R == GEMV_ROWS) {
        __m256 s[GEMV_ROWS][2];
        for (int r = 0; r < GEMV_ROWS; r++) s[r][0] = s[r][1] = _mm256_setzero_ps();
        for (; k + 16 <= n; k += 16) {
            __m256 a0 = _mm256_loadu_ps(a + k), a1 = _mm256_loadu_ps(a + k + 8);
            for (int r = 0; r < GEMV_ROWS; r++) {
                s[r][0] = _mm256_fmadd_ps(a0, GEMV_CVT_(w[r] + k), s[r][0]);
                s[r][1] = _mm256_fmadd_ps(a1, GEMV_CVT_(w[r] + k + 8), s[r][1]);
            }
        }
        for (int r = 0; r < GEMV_ROWS; r++) {
            _mm256_storeu_ps(ln[r], s[r][0]);
            _mm256_storeu_ps(ln[r] + 8, s[r][1]);
        }
    }
#undef GEMV_CVT_
#else
    if (R == GEMV_ROWS)
        for (; k + 16 <= n; k += 16)
            for (int r = 0; r < GEMV_ROWS; r++)
                for (int l = 0; l < 16; l++) ln[r][l] += a[k + l] * gemv_half1(w[r], k + l, t);
#endif
    for (int r = 0; r < R; r++) {
        for (int64_t i = k; i < n; i++) ln[r][(i - k) & 15] += a[i] * gemv_half1(w[r], i, t);
        for (int h = 8; h > 0; h /= 2)
            for (int l = 0; l < h; l++) ln[r][l] += ln[r][l + h];
        out[r] = ln[r][0];
    }
}

typedef struct {
    mmctx *c;
    const float *af;     /* a converted: [n_batch][M][K] */
    int64_t n_chunks;    /* per batch */
} gemvctx;

static void gemv_fn(void *ctx, int64_t b, int64_t e) {
    const gemvctx *g = ctx;
    mmctx *c = g->c;
    int64_t M = c->M, N = c->N, K = c->K;
    _Alignas(64) float wb[GEMV_KB];
    _Alignas(64) float acc[GEMV_M][GEMV_NB];
    for (int64_t t = b; t < e; t++) {
        int64_t bi = t / g->n_chunks, n0 = (t % g->n_chunks) * GEMV_NB;
        int64_t nb = N - n0 < GEMV_NB ? N - n0 : GEMV_NB;
        int64_t oa, ob;
        batch_offsets(c, bi, &oa, &ob);
        const float *A = g->af + bi * M * K;
        memset(acc, 0, sizeof acc);
        if (c->b_rs == 1 && M == 1) { /* one row of a, W's rows contiguous */
            for (int64_t j = 0; j < nb; j += GEMV_ROWS) {
                int R = nb - j < GEMV_ROWS ? (int)(nb - j) : GEMV_ROWS;
                const uint16_t *rows[GEMV_ROWS];
                for (int r = 0; r < R; r++)
                    rows[r] = (const uint16_t *)(c->b + (ob + (n0 + j + r) * c->b_cs) * (int64_t)c->bsz);
                gemv_rows_half(acc[0] + j, A, rows, R, K, c->tb);
            }
        } else if (c->b_rs == 1) { /* column n of b is a contiguous run of K (a row of W) */
            for (int64_t j = 0; j < nb; j++) {
                const char *col = c->b + (ob + (n0 + j) * c->b_cs) * (int64_t)c->bsz;
                /* GEMV_LANES partial sums per row of a: several independent FMA chains (one
                 * chain of 8 lanes was latency-bound) */
                float lanes[GEMV_M][GEMV_LANES];
                memset(lanes, 0, sizeof lanes);
                for (int64_t k0 = 0; k0 < K; k0 += GEMV_KB) {
                    int64_t kb = K - k0 < GEMV_KB ? K - k0 : GEMV_KB;
                    lx_row_load_f32(wb, col + k0 * (int64_t)c->bsz, c->tb, 1, kb);
                    for (int64_t m = 0; m < M; m++) {
                        const float *ar = A + m * K + k0;
                        float *ln = lanes[m];
                        int64_t k = 0;
                        for (; k + GEMV_LANES <= kb; k += GEMV_LANES)
                            for (int l = 0; l < GEMV_LANES; l++) ln[l] += ar[k + l] * wb[k + l];
                        for (int l = 0; k + l < kb; l++) ln[l] += ar[k + l] * wb[k + l];
                    }
                }
                for (int64_t m = 0; m < M; m++) {
                    float *ln = lanes[m];
                    for (int w = GEMV_LANES / 2; w > 0; w /= 2)
                        for (int l = 0; l < w; l++) ln[l] += ln[l + w];
                    acc[m][j] = ln[0];
                }
            }
        } else { /* b's rows are contiguous (b_cs == 1): acc[m] += a[m, k] * b[k, n0:n0+nb] */
            for (int64_t k = 0; k < K; k++) {
                lx_row_load_f32(wb, c->b + (ob + k * c->b_rs + n0) * (int64_t)c->bsz, c->tb, 1, nb);
                for (int64_t m = 0; m < M; m++) {
                    float av = A[m * K + k];
                    for (int64_t j = 0; j < nb; j++) acc[m][j] += av * wb[j];
                }
            }
        }
        for (int64_t m = 0; m < M; m++)
            half_row_out(c, c->out + ((bi * M + m) * N + n0) * (int64_t)c->esz, acc[m], nb, wb);
    }
}

typedef struct {
    mmctx *c;
    float *af;
} aconvctx;

static void aconv_fn(void *ctx, int64_t b, int64_t e) {
    const aconvctx *v = ctx;
    mmctx *c = v->c;
    for (int64_t r = b; r < e; r++) { /* row r = (batch, m) */
        int64_t bi = r / c->M, m = r % c->M, oa, ob;
        batch_offsets(c, bi, &oa, &ob);
        lx_row_load_f32(v->af + r * c->K, c->a + (oa + m * c->a_rs) * (int64_t)c->esz, c->t,
                        c->a_cs, c->K);
    }
}

/* The axpy form (b's rows contiguous along N: x @ W with W stored [K, N]) for a large b: the
 * threads split K, each streaming whole rows of b into float32 partial sums [M][N] of its own
 * (output-column units read 64 values of each row at a row's stride and ran at 9 GB/s), then
 * the parts are added, scaled and stored by column blocks. */
#define GEMVK_MIN (1 << 20) /* b elements from which K is split */
#define GEMVK_NB 512

typedef struct {
    mmctx *c;
    const float *af; /* a converted: [n_batch][M][K] */
    int parts;
    float *partial;  /* [n_batch][parts][M][N] */
} gemvkctx;

static void gemvk_fn(void *ctx, int64_t u0, int64_t u1) {
    const gemvkctx *g = ctx;
    const mmctx *c = g->c;
    const int64_t M = c->M, N = c->N, K = c->K;
    _Alignas(64) float wb[GEMVK_NB];
    for (int64_t u = u0; u < u1; u++) {
        int64_t bi = u / g->parts, p = u % g->parts;
        int64_t k0 = K * p / g->parts, k1 = K * (p + 1) / g->parts, oa, ob;
        batch_offsets(c, bi, &oa, &ob);
        const float *A = g->af + bi * M * K;
        float *acc = g->partial + u * M * N;
        memset(acc, 0, sizeof(float) * (size_t)(M * N));
        int64_t k = k0;
        /* one row of a: four rows of b per pass over acc, converted in registers (the staging
         * buffer and a pass over acc for every row of b cost 2-3x) */
        bool quad = M == 1 && c->tb == LX_BFLOAT16;
#if defined(LX_ROW_F16C) && defined(__FMA__)
        quad = quad || (M == 1 && c->tb == LX_FLOAT16);
#endif
        for (; quad && k + 4 <= k1; k += 4) {
            const uint16_t *w[4];
            for (int i = 0; i < 4; i++)
                w[i] = (const uint16_t *)(const void *)(c->b + (ob + (k + i) * c->b_rs) *
                                                                   (int64_t)c->bsz);
            if (c->tb == LX_BFLOAT16) {
                float a0 = A[k], a1 = A[k + 1], a2 = A[k + 2], a3 = A[k + 3];
                for (int64_t j = 0; j < N; j++)
                    acc[j] += (a0 * lx_bf16_to_f32(w[0][j]) + a1 * lx_bf16_to_f32(w[1][j])) +
                              (a2 * lx_bf16_to_f32(w[2][j]) + a3 * lx_bf16_to_f32(w[3][j]));
                continue;
            }
#if defined(LX_ROW_F16C) && defined(__FMA__)
            __m256 a[4]; /* float16: the hardware conversion */
            for (int i = 0; i < 4; i++) a[i] = _mm256_set1_ps(A[k + i]);
            int64_t j = 0;
            for (; j + 8 <= N; j += 8) {
                __m256 s = _mm256_loadu_ps(acc + j);
                for (int i = 0; i < 4; i++)
                    s = _mm256_fmadd_ps(
                        a[i], _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w[i] + j))), s);
                _mm256_storeu_ps(acc + j, s);
            }
            for (; j < N; j++)
                for (int i = 0; i < 4; i++) acc[j] += A[k + i] * lx_f16_to_f32(w[i][j]);
#endif
        }
        for (; k < k1; k++) {
            const char *row = c->b + (ob + k * c->b_rs) * (int64_t)c->bsz;
            for (int64_t n0 = 0; n0 < N; n0 += GEMVK_NB) {
                int64_t nb = N - n0 < GEMVK_NB ? N - n0 : GEMVK_NB;
                lx_row_load_f32(wb, row + n0 * (int64_t)c->bsz, c->tb, 1, nb);
                for (int64_t m = 0; m < M; m++) {
                    float av = A[m * K + k], *r = acc + m * N + n0;
                    for (int64_t j = 0; j < nb; j++) r[j] += av * wb[j];
                }
            }
        }
    }
}

/* units: (batch, row m, block of GEMVK_NB columns) */
static void gemvk_reduce(void *ctx, int64_t u0, int64_t u1) {
    const gemvkctx *g = ctx;
    const mmctx *c = g->c;
    const int64_t M = c->M, N = c->N, nblk = (N + GEMVK_NB - 1) / GEMVK_NB;
    _Alignas(64) float r[GEMVK_NB], cv[GEMVK_NB];
    for (int64_t u = u0; u < u1; u++) {
        int64_t bm = u / nblk, n0 = (u % nblk) * GEMVK_NB, bi = bm / M, m = bm % M;
        int64_t nb = N - n0 < GEMVK_NB ? N - n0 : GEMVK_NB;
        memset(r, 0, sizeof r);
        for (int p = 0; p < g->parts; p++) {
            const float *part = g->partial + ((bi * g->parts + p) * M + m) * N + n0;
            for (int64_t j = 0; j < nb; j++) r[j] += part[j];
        }
        half_row_out(c, c->out + ((bi * M + m) * N + n0) * (int64_t)c->esz, r, nb, cv);
    }
}

/* The K-split axpy form when it applies (and memory allows); false otherwise. */
static bool half_gemv_ksplit(mmctx *c, const float *af) {
    if (c->b_cs != 1 || c->b_rs == 1 || (double)c->K * (double)c->N < (double)GEMVK_MIN)
        return false;
    int threads = lx_num_threads();
    int64_t parts = c->n_batch >= threads ? 1 : (2 * threads + c->n_batch - 1) / c->n_batch;
    if (parts > c->K / 8) parts = c->K / 8 > 0 ? c->K / 8 : 1;
    gemvkctx g = {c, af, (int)parts, NULL};
    g.partial = lx_kernel_scratch_try(c->kctx,
                                      sizeof(float) * (size_t)(c->n_batch * parts * c->M * c->N));
    if (!g.partial) return false;
    lx_parallel_for(c->n_batch * parts, 1, gemvk_fn, &g);
    int64_t nblk = (c->N + GEMVK_NB - 1) / GEMVK_NB;
    lx_parallel_for(c->n_batch * c->M * nblk, 4, gemvk_reduce, &g);
    return true;
}

/* The small-M path when it applies; false to use panels. */
static bool half_gemv(mmctx *c, lx_status *st, const char *op) {
    if (c->M > GEMV_M || (c->b_rs != 1 && c->b_cs != 1) || c->N < 2 ||
        (double)c->n_batch * (double)c->M * (double)c->K > (double)(1 << 22))
        return false;
    float *af = lx_kernel_scratch(c->kctx, (size_t)(c->n_batch * c->M * c->K) * sizeof(float));
    if (!af) {
        *st = lx_set_error(LX_E_OOM, "%s: out of host memory for matmul", op);
        return true;
    }
    aconvctx v = {c, af};
    lx_parallel_for(c->n_batch * c->M, 1, aconv_fn, &v);
    if (half_gemv_ksplit(c, af)) {
        *st = LX_OK;
        return true;
    }
    gemvctx g = {c, af, (c->N + GEMV_NB - 1) / GEMV_NB};
    int64_t work = GEMV_NB * c->K * c->M;
    lx_parallel_for(c->n_batch * g.n_chunks, work >= 32768 ? 1 : 32768 / work, gemv_fn, &g);
    *st = LX_OK;
    return true;
}

static lx_status half_matmul(mmctx *c, const char *op) {
    int64_t M = c->M, N = c->N, K = c->K;
    lx_status gst;
    if (half_gemv(c, &gst, op)) return gst;
    bool big = M >= 64 && (double)M * (double)N * (double)K >= (double)(1 << 24);
    if (big) {
        c->mb = M < 512 ? M : 512;
        int64_t nbk = (1 << 22) / (K ? K : 1);
        if (nbk < 256) nbk = 256;
        c->nbk = N < nbk ? N : nbk;
    } else {
        c->mb = M < 64 ? M : 64;
        int64_t nbk = SMALL_GEMM / (c->mb * (K ? K : 1));
        nbk = nbk < 16 ? 16 : (nbk / 16) * 16;
        c->nbk = N < nbk ? N : nbk;
    }
    c->m_panels = (M + c->mb - 1) / c->mb;
    c->n_panels = (N + c->nbk - 1) / c->nbk;
    int64_t tiles = c->n_batch * c->m_panels * c->n_panels;
    if (!big) {
        /* convert a once when it is small, rather than once per tile */
        float *af = NULL;
        if (c->n_panels > 1 && (double)c->n_batch * (double)M * (double)K <= (double)(1 << 22) &&
            (af = lx_kernel_scratch_try(c->kctx, (size_t)(c->n_batch * M * K) * sizeof(float)))) {
            aconvctx v = {c, af};
            lx_parallel_for(c->n_batch * M, 1, aconv_fn, &v);
            c->af = af;
        }
        lx_task_scratch ts;
        if (!lx_task_scratch_init(&ts, c->kctx, half_tile_bytes(c), tiles, 1))
            return lx_set_error(LX_E_OOM, "%s: out of host memory for matmul panels", op);
        c->ts = &ts;
        lx_parallel_for(tiles, 1, half_tiles_fn, c);
        c->ts = NULL;
        c->af = NULL;
    } else {
        float *scratch = lx_kernel_scratch(c->kctx, half_tile_bytes(c));
        if (!scratch) return lx_set_error(LX_E_OOM, "%s: out of host memory for matmul panels", op);
        int64_t per_batch = c->m_panels * c->n_panels;
        for (int64_t t = 0; t < tiles; t++)
            half_tile(c, t / per_batch, (t % per_batch) / c->n_panels, t % c->n_panels, scratch, true);
    }
    if (c->failed) return lx_set_error(LX_E_OOM, "%s: out of host memory for matmul panels", op);
    return LX_OK;
}

/* ---- integers and bool ------------------------------------------------------------------------ */

static uint64_t int_at(const char *p, lx_dtype t, int64_t i) {
    switch (t) {
    case LX_BOOL: return ((const bool *)p)[i];
    case LX_UINT8: return ((const uint8_t *)p)[i];
    case LX_UINT16: return ((const uint16_t *)p)[i];
    case LX_UINT32: return ((const uint32_t *)p)[i];
    case LX_UINT64: return ((const uint64_t *)p)[i];
    case LX_INT8: return (uint64_t)(int64_t)((const int8_t *)p)[i];
    case LX_INT16: return (uint64_t)(int64_t)((const int16_t *)p)[i];
    case LX_INT32: return (uint64_t)(int64_t)((const int32_t *)p)[i];
    default: return (uint64_t)((const int64_t *)p)[i];
    }
}

static void int_rows_fn(void *ctx, int64_t b, int64_t e) {
    mmctx *c = ctx;
    int slot;
    uint64_t *acc = lx_task_scratch_take(c->ts, &slot);
    if (!acc) {
        c->failed = true;
        return;
    }
    bool plain = !c->with_c && c->alpha == 1.0f;
    for (int64_t r = b; r < e; r++) {
        int64_t bi = r / c->M, m = r % c->M, oa, ob;
        batch_offsets(c, bi, &oa, &ob);
        memset(acc, 0, (size_t)c->N * sizeof(uint64_t));
        for (int64_t k = 0; k < c->K; k++) {
            uint64_t av = int_at(c->a, c->t, oa + m * c->a_rs + k * c->a_cs);
            if (!av) continue;
            int64_t bo = ob + k * c->b_rs;
            for (int64_t n = 0; n < c->N; n++) acc[n] += av * int_at(c->b, c->t, bo + n * c->b_cs);
        }
        char *orow = c->out + r * c->N * (int64_t)c->esz;
        for (int64_t n = 0; n < c->N; n++) {
            if (plain || c->t == LX_BOOL) {
                uint64_t v = acc[n];
                if (c->t == LX_BOOL && !plain) {
                    double d = c->alpha * (double)(v != 0) + (c->with_c ? c->beta * (double)((bool *)orow)[n] : 0.0);
                    ((bool *)orow)[n] = d != 0.0;
                    continue;
                }
                switch (c->esz) {
                case 1: { uint8_t x = (uint8_t)v; if (c->t == LX_BOOL) x = v != 0; memcpy(orow + n, &x, 1); break; }
                case 2: { uint16_t x = (uint16_t)v; memcpy(orow + 2 * n, &x, 2); break; }
                case 4: { uint32_t x = (uint32_t)v; memcpy(orow + 4 * n, &x, 4); break; }
                default: memcpy(orow + 8 * n, &v, 8); break;
                }
            } else {
                double v = lx_dtype_is_signed(c->t) ? (double)(int64_t)acc[n] : (double)acc[n];
                double d = c->alpha * v;
                if (c->with_c) d += c->beta * lx_row_get_f64(orow, c->t, n);
                lx_row_put_f64(orow, c->t, n, d);
            }
        }
    }
    lx_task_scratch_give(c->ts, slot);
}

/* ---- c (addmm): broadcast copy into the output --------------------------------------------- */

static void copy_c(const lx_node *cn, lx_node *out) {
    size_t esz = lx_dtype_size((lx_dtype)out->dtype);
    int nd = out->ndim;
    int64_t inner = out->shape[nd - 1], is = cn->strides[nd - 1];
    int64_t rows = out->size / (inner ? inner : 1);
    const char *src = lx_node_ptr(cn);
    char *dst = lx_node_ptr(out);
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            off += (rem % out->shape[d]) * cn->strides[d];
            rem /= out->shape[d];
        }
        const char *s = src + off * (int64_t)esz;
        char *o = dst + r * inner * (int64_t)esz;
        if (is == 1) memcpy(o, s, (size_t)inner * esz);
        else
            for (int64_t j = 0; j < inner; j++) memcpy(o + j * (int64_t)esz, s + j * is * (int64_t)esz, esz);
    }
}

/* ---- MATMUL ---------------------------------------------------------------------------------- */

lx_status LX_CPU_KERNEL(MATMUL)(lx_kctx *kctx, lx_node *out) {
    const lx_node *a = out->inputs[0], *b = out->inputs[1];
    const lx_node *cn = out->n_inputs > 2 ? out->inputs[2] : NULL;
    int nd = out->ndim;
    bool mixed = b->dtype != out->dtype && lx_matmul_mixed_ok(a->dtype, b->dtype);
    if (nd < 2 || a->ndim != nd || b->ndim != nd || (cn && cn->ndim != nd) ||
        a->dtype != out->dtype || (b->dtype != out->dtype && !mixed) ||
        (cn && cn->dtype != out->dtype))
        return lx_set_error(LX_E_INTERNAL, "%s: matmul kernel given mismatched inputs", out->op);
    if (out->size == 0) return LX_OK;
    mmctx c;
    memset(&c, 0, sizeof c);
    c.kctx = kctx;
    c.t = (lx_dtype)out->dtype;
    c.tb = (lx_dtype)b->dtype;
    c.esz = lx_dtype_size(c.t);
    c.bsz = lx_dtype_size(c.tb);
    c.M = out->shape[nd - 2];
    c.N = out->shape[nd - 1];
    c.K = a->shape[nd - 1];
    c.alpha = 1.0f;
    if (out->params_size >= sizeof(lx_matmul_params)) {
        const lx_matmul_params *p = out->params;
        c.alpha = p->alpha;
        c.beta = p->beta;
    }
    c.with_c = cn && c.beta != 0.0f;
    if (c.with_c) copy_c(cn, out);

    if (c.K == 0) { /* a @ b is zero: out = beta * c */
        char *o = lx_node_ptr(out);
        for (int64_t i = 0; i < out->size; i++)
            lx_row_put_f64(o, c.t, i, c.with_c ? c.beta * lx_row_get_f64(o, c.t, i) : 0.0);
        return LX_OK;
    }

    c.a = lx_node_ptr(a);
    c.b = lx_node_ptr(b);
    c.out = lx_node_ptr(out);
    c.a_rs = a->strides[nd - 2];
    c.a_cs = a->strides[nd - 1];
    c.b_rs = b->strides[nd - 2];
    c.b_cs = b->strides[nd - 1];
    c.n_batch = 1;
    bool b_shared = true;
    for (int i = 0; i < nd - 2; i++) {
        int64_t d = out->shape[i];
        c.n_batch *= d;
        if (d == 1) continue;
        if (b->strides[i] != 0) b_shared = false;
        if (c.nb && c.bsa[c.nb - 1] == d * a->strides[i] && c.bsb[c.nb - 1] == d * b->strides[i]) {
            c.bshape[c.nb - 1] *= d;
            c.bsa[c.nb - 1] = a->strides[i];
            c.bsb[c.nb - 1] = b->strides[i];
        } else {
            c.bshape[c.nb] = d;
            c.bsa[c.nb] = a->strides[i];
            c.bsb[c.nb++] = b->strides[i];
        }
    }
    /* fold the batch into M when b is shared and a's (batch, M) rows are evenly spaced */
    if (c.nb && b_shared) {
        int64_t size = c.M, stride = c.a_rs;
        bool ok = true;
        for (int d = c.nb - 1; d >= 0 && ok; d--) {
            if (size == 1) stride = c.bsa[d];
            else ok = c.bsa[d] == size * stride;
            size *= c.bshape[d];
        }
        if (ok && size <= INT_MAX) {
            c.M = size;
            c.a_rs = stride;
            c.nb = 0;
            c.n_batch = 1;
        }
    }
    if (c.M > INT_MAX || c.N > INT_MAX || c.K > INT_MAX)
        return lx_set_error(LX_E_UNSUPPORTED, "%s: matmul dimensions beyond 2^31", out->op);

    if (mixed) return half_matmul(&c, out->op); /* float32 accumulation, b converted as read */
    switch (c.t) {
    case LX_FLOAT32:
    case LX_FLOAT64: {
        double per = (double)c.M * (double)c.N * (double)c.K;
        bool tr;
        int64_t ld;
        size_t gather = 0; /* bytes of the copies blas_batch makes (the same for every batch) */
        if (!blas_layout(c.M, c.K, c.a_rs, c.a_cs, &tr, &ld)) gather += (size_t)(c.M * c.K) * c.esz;
        if (!blas_layout(c.K, c.N, c.b_rs, c.b_cs, &tr, &ld)) gather += (size_t)(c.K * c.N) * c.esz;
        bool par = c.n_batch > 1 && (per < SMALL_GEMM || c.n_batch >= lx_num_threads());
        int64_t grain = (int64_t)(SMALL_GEMM / (per > 1 ? per : 1));
        grain = grain < 1 ? 1 : grain;
        lx_task_scratch ts;
        if (gather) {
            if (!lx_task_scratch_init(&ts, kctx, gather, par ? c.n_batch : 1, grain))
                return lx_set_error(LX_E_OOM, "%s: out of host memory for a matmul copy",
                                    out->op);
            c.ts = &ts;
        }
        if (par) {
            lx_parallel_for(c.n_batch, grain, blas_batches_fn, &c);
        } else {
            blas_batches_fn(&c, 0, c.n_batch);
        }
        if (c.failed) return lx_set_error(LX_E_OOM, "%s: out of host memory for a matmul copy", out->op);
        return LX_OK;
    }
    case LX_FLOAT16:
    case LX_BFLOAT16:
        return half_matmul(&c, out->op);
    default: {
        int64_t rows = c.n_batch * c.M;
        int64_t per = c.N * c.K;
        int64_t grain = per >= 16384 ? 1 : 16384 / (per ? per : 1);
        lx_task_scratch ts;
        if (!lx_task_scratch_init(&ts, kctx, (size_t)c.N * sizeof(uint64_t), rows, grain))
            return lx_set_error(LX_E_OOM, "%s: out of host memory", out->op);
        c.ts = &ts;
        lx_parallel_for(rows, grain, int_rows_fn, &c);
        if (c.failed) return lx_set_error(LX_E_OOM, "%s: out of host memory", out->op);
        return LX_OK;
    }
    }
}
