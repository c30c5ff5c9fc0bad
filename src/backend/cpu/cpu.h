/*
 * cpu.h -- shared declarations of the CPU backend's kernels.
 *
 * Every kernel file is compiled once per instruction-set variant with LX_CPU_VARIANT set
 * (generic, v2, v3, v4); LX_CPU_KERNEL(NAME) gives the variant's symbol for primitive NAME,
 * so variants link side by side. Helpers that are not per-variant (the thread pool) live in
 * files compiled once.
 */
#ifndef LX_BACKEND_CPU_CPU_H
#define LX_BACKEND_CPU_CPU_H

#include "backend/device.h"
#include "core/dtype.h"
#include "core/error.h"

#ifndef LX_CPU_VARIANT
#define LX_CPU_VARIANT generic
#endif
#define LX_CPU_CAT2_(a, b) a##_##b
#define LX_CPU_CAT_(a, b) LX_CPU_CAT2_(a, b)
#define LX_CPU_KERNEL(name) LX_CPU_CAT_(lx_cpu_##name, LX_CPU_VARIANT)
#define LX_CPU_TABLE LX_CPU_CAT_(lx_cpu_table, LX_CPU_VARIANT)

#define LX_PRIM(name) lx_status LX_CPU_KERNEL(name)(lx_kctx * kctx, lx_node * out);
#include "backend/cpu/kernels.def"
#undef LX_PRIM

/* Runs fn over [0, n) split into chunks of at least `grain` items on the kernel thread pool
 * (backend/cpu/parallel.c, not per variant). Safe to call from several threads at once. */
typedef void (*lx_range_fn)(void *ctx, int64_t begin, int64_t end);
void lx_parallel_for(int64_t n, int64_t grain, lx_range_fn fn, void *ctx);

/* BLAS on lx's pool (backend/cpu/blas.c; OpenBLAS itself runs one thread), row-major, float32
 * or float64 by t; dimensions at most INT_MAX (the callers check).
 * gemm: C[M,N] = alpha op(A) op(B) + beta C, op(A) [M,K] (A stored [K][M] when ta), op(B)
 * [K,N] (B stored [N][K] when tb). gemv: y = alpha op(A) x + beta y with A stored [rows][cols],
 * y of cols elements when trans, else rows; y contiguous. */
void lx_blas_gemm(lx_dtype t, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                  const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                  int64_t ldc);
void lx_blas_gemv(lx_dtype t, bool trans, int64_t rows, int64_t cols, double alpha, const void *A,
                  int64_t lda, const void *x, int64_t incx, double beta, void *y);

#endif
