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

#include <stdatomic.h>
#include <string.h>

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

/* ---- kernel scratch ----
 * Kernels take temporary memory with lx_kernel_scratch(kctx, nbytes) (backend/device.h): from
 * lx's caching allocator (so it is reused across calls and counted as lx memory), 64-byte
 * aligned, NULL with LX_E_OOM set on failure, released by eval after the kernel returns (never
 * freed by the kernel). Tasks of an lx_parallel_for that each need a buffer of the same size
 * share an lx_task_scratch: one block per task that can run at once, all taken up front in one
 * scratch call on the kernel's thread, handed out and back by the tasks without a lock. */
#define LX_TASK_SLOTS 256 /* parallel.c's most threads: no more tasks run at once */
typedef struct {
    lx_kctx *kctx;
    char *base;      /* n blocks of `stride` bytes */
    size_t nbytes, stride;
    int n;
    _Atomic(unsigned char) busy[LX_TASK_SLOTS];
} lx_task_scratch;

/* Takes the blocks of nbytes for the tasks of lx_parallel_for(n, grain, ...) (as many as can
 * run at once: parallel.c's rule) or of a direct call of the task function (n = 1). Returns
 * false with LX_E_OOM set if there is no memory. */
static inline bool lx_task_scratch_init(lx_task_scratch *ts, lx_kctx *kctx, size_t nbytes,
                                        int64_t n, int64_t grain) {
    int threads = lx_num_threads(), slots = 1;
    if (grain < 1) grain = 1;
    if (threads > 1 && n >= 2 * grain) slots = n / grain < threads ? (int)(n / grain) : threads;
    if (slots > LX_TASK_SLOTS) slots = LX_TASK_SLOTS;
    ts->kctx = kctx;
    ts->nbytes = nbytes;
    ts->stride = (nbytes + 63) / 64 * 64;
    ts->n = slots;
    for (int i = 0; i < slots; i++) atomic_init(&ts->busy[i], 0);
    ts->base = lx_kernel_scratch(kctx, ts->stride * (size_t)slots);
    return ts->base != NULL;
}

/* A block of ts->nbytes for the calling task, or NULL (LX_E_OOM set on this thread); hand it
 * back with lx_task_scratch_give(ts, *slot) before the task returns. (Should more tasks run at
 * once than lx_task_scratch_init expected, the extra ones take their own scratch.) */
static inline void *lx_task_scratch_take(lx_task_scratch *ts, int *slot) {
    for (int i = 0; i < ts->n; i++) {
        if (atomic_load_explicit(&ts->busy[i], memory_order_relaxed) ||
            atomic_exchange_explicit(&ts->busy[i], 1, memory_order_acquire))
            continue;
        *slot = i;
        return ts->base + (size_t)i * ts->stride;
    }
    *slot = -1;
    return lx_kernel_scratch(ts->kctx, ts->nbytes);
}

static inline void lx_task_scratch_give(lx_task_scratch *ts, int slot) {
    if (slot >= 0) atomic_store_explicit(&ts->busy[slot], 0, memory_order_release);
}

/* Scratch that only a faster path needs: NULL leaves no error behind (the kernel goes on
 * without it). */
static inline void *lx_kernel_scratch_try(lx_kctx *kctx, size_t nbytes) {
    bool had_error = lx_error() != LX_OK;
    void *p = lx_kernel_scratch(kctx, nbytes);
    if (!p && !had_error) lx_clear_error();
    return p;
}

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
