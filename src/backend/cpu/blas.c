/*
 * blas.c -- BLAS products (GEMM, GEMV) run on lx's thread pool, one thread of BLAS each.
 *
 * One pool for everything: with OpenBLAS threading its own products, lx_set_num_threads and
 * LX_NUM_THREADS did not govern matmuls (OpenBLAS took every core), kernels that call BLAS
 * from pool tasks (quantized panels, batched products) ran two pools on the same cores, and
 * large batched products ran their batches one at a time. So lx sets OpenBLAS to one thread
 * (when lx is loaded; process-wide, as the README says) and splits each large
 * product into as many parts as lx has threads, along the larger of the output's dimensions.
 * A call made from inside a pool task runs whole on that thread (lx_parallel_for does not
 * nest). Speed against OpenBLAS's own threading in BENCHMARKS.md.
 */
#include <cblas.h>

#include "backend/cpu/cpu.h"

/* Below this many multiply-adds a product runs on the calling thread (OpenBLAS's own threshold
 * for threading a GEMM is 2^18). */
#define BLAS_SPLIT_MIN (1 << 18)
/* Parts are at least this many rows or columns wide. */
#define BLAS_PART_MIN 64

/* OpenBLAS's server threads, created when OpenBLAS loads, spin on sched_yield for ~0.1 s
 * (2^28 cycles) after the load and after every threaded call before they sleep: measured 0.11 s
 * of CPU during the first 0.3 s of an idle process and 0.09 s after one 400^3 sgemm, time taken
 * from lx's threads on the same cores. One thread, and the servers shut down, as soon as lx is
 * loaded (its constructor runs after those of the libraries it links); weak references so that
 * another BLAS without these OpenBLAS calls still links and merely keeps its own threads. */
extern void openblas_set_num_threads(int) __attribute__((weak));
extern int blas_thread_shutdown_(void) __attribute__((weak));

__attribute__((constructor)) static void blas_one_thread(void) {
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

/* [0, dim) cut into `parts` pieces, boundaries on multiples of 16 except the end */
static int64_t part_edge(int64_t dim, int64_t parts, int64_t p) {
    if (p >= parts) return dim;
    int64_t e = dim * p / parts;
    return e - e % 16;
}

static int64_t parts_for(int64_t dim, double work) {
    if (work < (double)BLAS_SPLIT_MIN) return 1;
    int64_t parts = lx_num_threads();
    if (parts > dim / BLAS_PART_MIN) parts = dim / BLAS_PART_MIN;
    return parts < 1 ? 1 : parts;
}

typedef struct {
    lx_dtype t;
    bool ta, tb, split_n;
    int64_t M, N, K, parts;
    double alpha, beta;
    const char *A, *B;
    char *C;
    int64_t lda, ldb, ldc;
    size_t esz;
} gemm_job;

static void gemm_call(const gemm_job *j, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    /* element offsets of the part's corner in A (rows m0..), B (columns n0..) and C */
    int64_t oa = j->ta ? m0 : m0 * j->lda, ob = j->tb ? n0 * j->ldb : n0;
    const char *A = j->A + oa * (int64_t)j->esz, *B = j->B + ob * (int64_t)j->esz;
    char *C = j->C + (m0 * j->ldc + n0) * (int64_t)j->esz;
    enum CBLAS_TRANSPOSE ta = j->ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = j->tb ? CblasTrans : CblasNoTrans;
    if (j->t == LX_FLOAT64)
        cblas_dgemm(CblasRowMajor, ta, tb, (blasint)(m1 - m0), (blasint)(n1 - n0), (blasint)j->K,
                    j->alpha, (const double *)(const void *)A, (blasint)j->lda,
                    (const double *)(const void *)B, (blasint)j->ldb, j->beta,
                    (double *)(void *)C, (blasint)j->ldc);
    else
        cblas_sgemm(CblasRowMajor, ta, tb, (blasint)(m1 - m0), (blasint)(n1 - n0), (blasint)j->K,
                    (float)j->alpha, (const float *)(const void *)A, (blasint)j->lda,
                    (const float *)(const void *)B, (blasint)j->ldb, (float)j->beta,
                    (float *)(void *)C, (blasint)j->ldc);
}

static void gemm_parts(void *ctx, int64_t b, int64_t e) {
    const gemm_job *j = ctx;
    for (int64_t p = b; p < e; p++) {
        if (j->split_n)
            gemm_call(j, 0, j->M, part_edge(j->N, j->parts, p), part_edge(j->N, j->parts, p + 1));
        else
            gemm_call(j, part_edge(j->M, j->parts, p), part_edge(j->M, j->parts, p + 1), 0, j->N);
    }
}

void lx_blas_gemm(lx_dtype t, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                  const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                  int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    gemm_job j = {t, ta, tb, N >= M, M, N, K, 1, alpha, beta, A, B, C, lda, ldb, ldc,
                  t == LX_FLOAT64 ? sizeof(double) : sizeof(float)};
    j.parts = parts_for(j.split_n ? N : M, (double)M * (double)N * (double)K);
    if (j.parts == 1) gemm_call(&j, 0, M, 0, N);
    else lx_parallel_for(j.parts, 1, gemm_parts, &j);
}

typedef struct {
    lx_dtype t;
    bool trans;
    int64_t rows, cols, parts;
    double alpha, beta;
    const char *A, *x;
    char *y;
    int64_t lda, incx;
    size_t esz;
} gemv_job;

/* outputs o0..o1: rows of A (no transpose) or its columns (transpose) */
static void gemv_call(const gemv_job *j, int64_t o0, int64_t o1) {
    const char *A = j->A + (j->trans ? o0 : o0 * j->lda) * (int64_t)j->esz;
    char *y = j->y + o0 * (int64_t)j->esz;
    blasint r = (blasint)(j->trans ? j->rows : o1 - o0), c = (blasint)(j->trans ? o1 - o0 : j->cols);
    enum CBLAS_TRANSPOSE tr = j->trans ? CblasTrans : CblasNoTrans;
    if (j->t == LX_FLOAT64)
        cblas_dgemv(CblasRowMajor, tr, r, c, j->alpha, (const double *)(const void *)A,
                    (blasint)j->lda, (const double *)(const void *)j->x, (blasint)j->incx,
                    j->beta, (double *)(void *)y, 1);
    else
        cblas_sgemv(CblasRowMajor, tr, r, c, (float)j->alpha, (const float *)(const void *)A,
                    (blasint)j->lda, (const float *)(const void *)j->x, (blasint)j->incx,
                    (float)j->beta, (float *)(void *)y, 1);
}

static void gemv_parts(void *ctx, int64_t b, int64_t e) {
    const gemv_job *j = ctx;
    int64_t n_out = j->trans ? j->cols : j->rows;
    for (int64_t p = b; p < e; p++)
        gemv_call(j, part_edge(n_out, j->parts, p), part_edge(n_out, j->parts, p + 1));
}

void lx_blas_gemv(lx_dtype t, bool trans, int64_t rows, int64_t cols, double alpha, const void *A,
                  int64_t lda, const void *x, int64_t incx, double beta, void *y) {
    if (rows <= 0 || cols <= 0) return;
    gemv_job j = {t, trans, rows, cols, 1, alpha, beta, A, x, y, lda, incx,
                  t == LX_FLOAT64 ? sizeof(double) : sizeof(float)};
    /* a GEMV is bound by reading A: split it from 2^17 elements (512 KiB of float32) */
    j.parts = parts_for(trans ? cols : rows, (double)rows * (double)cols * 2.0);
    if (j.parts == 1) gemv_call(&j, 0, trans ? cols : rows);
    else lx_parallel_for(j.parts, 1, gemv_parts, &j);
}
