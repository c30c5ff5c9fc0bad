/*
 * cuda_device.c -- liblx-cuda.so: lx's CUDA device module (backend/device.h), serving LX_GPU on
 * NVIDIA GPUs through the CUDA runtime and cuBLAS.
 *
 * - Entry (lx_device_module_init): checks the interface version, counts the devices
 *   (cudaGetDeviceCount; no driver, an old driver or no device give 0 devices with the CUDA
 *   message, the driver and runtime versions as the reason lx info prints) and offers one table
 *   per device of compute capability 8.0 or later (the module carries sm_80 and sm_90 code and
 *   compute_90 PTX), scored 100 - ordinal. A device's stream and cuBLAS handle are made on its
 *   first use (the registry registers only the best device).
 * - Memory: cudaMalloc / cudaFree (lx's caching allocator keeps blocks on top); copies are
 *   queued on the device's stream, after the work queued so far, and waited for
 *   (cudaStreamSynchronize) before they return, as device.h requires; import_host is an upload
 *   (cudaMalloc + copy; release_import frees it); memory_info is cudaMemGetInfo.
 * - Asynchronous: one stream per device (the kctx's stream is not used); kernels are queued
 *   and return; events are cudaEvents without timing, recorded on the stream, kept in a pool.
 *   Every CUDA or cuBLAS failure becomes LX_E_DEVICE with the CUDA message (core->set_error),
 *   never an abort.
 * - Kernels (ew.cu, nn.cu, qmm.cu; MATMUL here through cuBLAS): what supports() accepts, per
 *   primitive, is listed at cuda_supports. The rest reaches lx's fallbacks or the CPU.
 * - FUSED (compiled closures' elementwise groups): each program becomes a kernel generated at
 *   run time (fused_cuda.c), compiled by NVRTC for the device's architecture and cached on
 *   disk (fused_nvrtc.c), loaded and launched through the driver API (fused_launch.c). Where
 *   NVRTC or the driver's entry points are missing, supports() refuses FUSED and lx info
 *   says why in the device's description.
 *
 * Not linked against liblx: lx is reached only through the lx_core_api handed to the entry
 * and the static inline functions of values.h / elementwise_ops.h (nothing of node.h that
 * calls into liblx: element sizes are computed here).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/fused_cuda.h"
#include "backend/device.h"
#include "graph/elementwise_ops.h"
#include "graph/fused.h"
#include "graph/prims.h"
#include "graph/prims_index.h"
#include "graph/prims_nn.h"
#include "graph/prims_quant.h"

#define MAX_DEVICES 8
#define EVENT_POOL 256

static const lx_core_api *core;

struct lx_event {
    cudaEvent_t ev;
};

typedef struct {
    int ordinal;
    int arch; /* compute capability, major * 10 + minor */
    pthread_mutex_t lock; /* init, events, cuBLAS (a handle is not thread-safe) */
    _Atomic int ready;
    int failed;
    cudaStream_t stream;
    cublasHandle_t blas;
    cudaEvent_t pool[EVENT_POOL];
    int n_pool;
    char description[512];
    lx_device_impl impl;
} cuda_dev;

static cuda_dev devs[MAX_DEVICES];
static lx_kernel_fn kernels[LX_PRIM_COUNT];
/* kernel calls per primitive, for the tests (lx_cuda_kernel_count) */
static _Atomic uint64_t calls[LX_PRIM_COUNT];

/* How many nodes of primitive `prim` the module's kernels were given (the tests reach it with
 * dlsym on the module lx loaded). */
LX_API uint64_t lx_cuda_kernel_count(int prim);
LX_API uint64_t lx_cuda_kernel_count(int prim) {
    return prim >= 0 && prim < LX_PRIM_COUNT ? atomic_load(&calls[prim]) : 0;
}

/* ---- errors ---------------------------------------------------------------------------------- */

static lx_status cu_fail(cudaError_t e, const char *what) {
    return core->set_error(LX_E_DEVICE, "cuda %s: %s (%s)", what, cudaGetErrorString(e),
                           cudaGetErrorName(e));
}
static lx_status kern_fail(int e, const lx_node *out) {
    return core->set_error(LX_E_DEVICE, "cuda %s (%s): kernel launch: %s",
                           core->prim_name(out->prim), out->op ? out->op : "?",
                           cudaGetErrorString((cudaError_t)e));
}

static const char *blas_msg(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "error";
    }
}

static cuda_dev *D(const lx_device_impl *d) { return (cuda_dev *)d->state; }

/* Makes the device current on this thread and, on first use, its stream and cuBLAS handle. */
static lx_status ensure(const lx_device_impl *d) {
    cuda_dev *c = D(d);
    cudaError_t e = cudaSetDevice(c->ordinal);
    if (e != cudaSuccess) return cu_fail(e, "cudaSetDevice");
    if (atomic_load_explicit(&c->ready, memory_order_acquire)) return LX_OK;
    pthread_mutex_lock(&c->lock);
    lx_status st = LX_OK;
    if (!atomic_load(&c->ready)) {
        if (c->failed) {
            st = core->set_error(LX_E_DEVICE, "cuda: device %d could not be initialised",
                                 c->ordinal);
        } else if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
            c->failed = 1;
            st = cu_fail(e, "cudaStreamCreate");
        } else {
            cublasStatus_t bs = cublasCreate(&c->blas);
            if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(c->blas, c->stream);
            if (bs == CUBLAS_STATUS_SUCCESS)
                bs = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH); /* no TF32 */
            if (bs != CUBLAS_STATUS_SUCCESS) {
                c->failed = 1;
                st = core->set_error(LX_E_DEVICE, "cuda: cublasCreate: %s", blas_msg(bs));
            } else {
                atomic_store_explicit(&c->ready, 1, memory_order_release);
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

static lx_status sync_stream(cuda_dev *c, const char *what) {
    cudaError_t e = cudaStreamSynchronize(c->stream);
    return e == cudaSuccess ? LX_OK : cu_fail(e, what);
}

/* ---- memory ---------------------------------------------------------------------------------- */

static void *cu_alloc(const lx_device_impl *d, size_t nbytes) {
    if (ensure(d) != LX_OK) return NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, nbytes ? nbytes : 256);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is not sticky: clear it */
        return NULL;
    }
    return p;
}

static void cu_free(const lx_device_impl *d, void *ptr, size_t nbytes) {
    (void)nbytes;
    if (!ptr || ensure(d) != LX_OK) return;
    (void)cudaFree(ptr);
}

static lx_status cu_copy_kind(const lx_device_impl *d, void *dst, const void *src, size_t n,
                              enum cudaMemcpyKind kind, const char *what) {
    if (n == 0) return LX_OK;
    lx_status st = ensure(d);
    if (st != LX_OK) return st;
    cuda_dev *c = D(d);
    cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, c->stream);
    if (e != cudaSuccess) return cu_fail(e, what);
    return sync_stream(c, what);
}

static lx_status cu_copy_to_host(const lx_device_impl *d, void *host_dst, const void *src,
                                 size_t n) {
    return cu_copy_kind(d, host_dst, src, n, cudaMemcpyDeviceToHost, "copy to host");
}
static lx_status cu_copy_from_host(const lx_device_impl *d, void *dst, const void *host_src,
                                   size_t n) {
    return cu_copy_kind(d, dst, host_src, n, cudaMemcpyHostToDevice, "copy from host");
}
static lx_status cu_copy(const lx_device_impl *d, void *dst, const void *src, size_t n) {
    return cu_copy_kind(d, dst, src, n, cudaMemcpyDeviceToDevice, "device copy");
}

static lx_status cu_memset(const lx_device_impl *d, void *dst, int value, size_t n) {
    if (n == 0) return LX_OK;
    lx_status st = ensure(d);
    if (st != LX_OK) return st;
    cuda_dev *c = D(d);
    cudaError_t e = cudaMemsetAsync(dst, value, n, c->stream);
    if (e != cudaSuccess) return cu_fail(e, "memset");
    return sync_stream(c, "memset");
}

static lx_status cu_import_host(const lx_device_impl *d, const void *host, size_t n,
                                void **dev_ptr) {
    if (!dev_ptr) return core->set_error(LX_E_DEVICE, "cuda import_host: dev_ptr is NULL");
    void *p = cu_alloc(d, n);
    if (!p)
        return core->set_error(LX_E_OOM, "cuda import_host: out of device memory (%zu bytes)", n);
    lx_status st = n ? cu_copy_from_host(d, p, host, n) : LX_OK;
    if (st != LX_OK) {
        cu_free(d, p, n);
        return st;
    }
    *dev_ptr = p;
    return LX_OK;
}

static void cu_release_import(const lx_device_impl *d, void *dev_ptr, size_t n) {
    cu_free(d, dev_ptr, n);
}

static lx_status cu_memory_info(const lx_device_impl *d, size_t *free_bytes, size_t *total) {
    lx_status st = ensure(d);
    if (st != LX_OK) return st;
    cudaError_t e = cudaMemGetInfo(free_bytes, total);
    return e == cudaSuccess ? LX_OK : cu_fail(e, "cudaMemGetInfo");
}

/* ---- events ---------------------------------------------------------------------------------- */

static lx_event *cu_event_record(const lx_device_impl *d, void *stream) {
    (void)stream; /* the device's own stream */
    if (ensure(d) != LX_OK) return NULL;
    cuda_dev *c = D(d);
    lx_event *ev = malloc(sizeof *ev);
    if (!ev) return NULL;
    pthread_mutex_lock(&c->lock);
    bool pooled = c->n_pool > 0;
    if (pooled) ev->ev = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->lock);
    cudaError_t e = pooled ? cudaSuccess : cudaEventCreateWithFlags(&ev->ev, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(ev->ev, c->stream);
    if (e != cudaSuccess) {
        cu_fail(e, "event record");
        free(ev);
        return NULL;
    }
    return ev;
}

static lx_status cu_event_wait(const lx_device_impl *d, lx_event *ev) {
    lx_status st = ensure(d);
    if (st != LX_OK) return st;
    cudaError_t e = cudaEventSynchronize(ev->ev);
    return e == cudaSuccess ? LX_OK : cu_fail(e, "event wait");
}

static bool cu_event_query(const lx_device_impl *d, lx_event *ev) {
    if (ensure(d) != LX_OK) return true;
    cudaError_t e = cudaEventQuery(ev->ev);
    if (e == cudaErrorNotReady) return false;
    /* success, or an error that the next wait or synchronize reports */
    return true;
}

static void cu_event_free(const lx_device_impl *d, lx_event *ev) {
    if (!ev) return;
    cuda_dev *c = D(d);
    pthread_mutex_lock(&c->lock);
    bool kept = c->n_pool < EVENT_POOL;
    if (kept) c->pool[c->n_pool++] = ev->ev;
    pthread_mutex_unlock(&c->lock);
    if (!kept && ensure(d) == LX_OK) (void)cudaEventDestroy(ev->ev);
    free(ev);
}

static lx_status cu_synchronize(const lx_device_impl *d) {
    lx_status st = ensure(d);
    if (st != LX_OK) return st;
    return sync_stream(D(d), "synchronize");
}

static void cu_shutdown(const lx_device_impl *d) {
    cuda_dev *c = D(d);
    if (!atomic_load(&c->ready) || cudaSetDevice(c->ordinal) != cudaSuccess) return;
    (void)cudaStreamSynchronize(c->stream);
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->n_pool; i++) (void)cudaEventDestroy(c->pool[i]);
    c->n_pool = 0;
    cublasDestroy(c->blas);
    (void)cudaStreamDestroy(c->stream);
    atomic_store(&c->ready, 0);
    pthread_mutex_unlock(&c->lock);
}

/* ---- node helpers ------------------------------------------------------------------------------ */

static int dsize(int t) {
    switch (t) {
#define X(E, T, S) case E: return (int)sizeof(LX_ST_##S);
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: return 0;
    }
}

static bool is_float(int t) {
    return t == LX_FLOAT16 || t == LX_BFLOAT16 || t == LX_FLOAT32 || t == LX_FLOAT64;
}
static bool is_half_or_f32(int t) { return t == LX_FLOAT16 || t == LX_BFLOAT16 || t == LX_FLOAT32; }
static bool is_int(int t) { return t >= LX_UINT8 && t <= LX_INT64; }

/* device address of a READY node's element 0 */
static char *dptr(const lx_node *n) {
    return (char *)n->buf->ptr + n->offset * (int64_t)dsize(n->dtype);
}

/* in's strides over nd dims right-aligned (broadcast and size-1 dims: 0) */
static void aligned(const lx_node *in, int nd, int64_t *st) {
    int lead = nd - in->ndim;
    for (int d = 0; d < nd; d++) {
        int k = d - lead;
        st[d] = (k < 0 || in->shape[k] == 1) ? 0 : in->strides[k];
    }
}

static bool broadcasts(const lx_node *in, const lx_node *out) {
    if (in->ndim > out->ndim) return false;
    int lead = out->ndim - in->ndim;
    for (int d = 0; d < in->ndim; d++)
        if (in->shape[d] != out->shape[lead + d] && in->shape[d] != 1) return false;
    return true;
}

static void row_strides(const int32_t *shape, int nd, int64_t *st) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        st[d] = s;
        s *= shape[d];
    }
}

/* An iteration over shape[nd] with nops operands (strides set by the caller), then merged. */
static void iter_init(lxc_iter *it, const int32_t *shape, int nd, int nops) {
    memset(it, 0, sizeof *it);
    it->nd = nd;
    it->nops = nops;
    for (int d = 0; d < nd; d++) it->shape[d] = shape[d];
}

/* Drops size-1 dims and merges neighbours that every operand walks as one. */
static void iter_coalesce(lxc_iter *it) {
    int n = 0;
    for (int d = 0; d < it->nd; d++) {
        if (it->shape[d] == 1) continue;
        if (n > 0) {
            bool merge = true;
            for (int k = 0; k < it->nops; k++)
                if (it->st[k][n - 1] != it->st[k][d] * it->shape[d]) merge = false;
            if (merge) {
                it->shape[n - 1] *= it->shape[d];
                for (int k = 0; k < it->nops; k++) it->st[k][n - 1] = it->st[k][d];
                continue;
            }
        }
        it->shape[n] = it->shape[d];
        for (int k = 0; k < it->nops; k++) it->st[k][n] = it->st[k][d];
        n++;
    }
    if (n == 0) {
        it->shape[0] = 1;
        for (int k = 0; k < it->nops; k++) it->st[k][0] = 0;
        n = 1;
    }
    it->nd = n;
}

/* Merges (shape, st) pairs of one operand the same way; returns the new count. */
static int dims_coalesce(int nd, int64_t *shape, int64_t *st) {
    int n = 0;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 1) continue;
        if (n > 0 && st[n - 1] == st[d] * shape[d]) {
            shape[n - 1] *= shape[d];
            st[n - 1] = st[d];
            continue;
        }
        shape[n] = shape[d];
        st[n] = st[d];
        n++;
    }
    return n;
}

static cudaStream_t S(lx_kctx *ctx) { return D(ctx->dev)->stream; }

#define BEGIN(ctx, out)                                                                    \
    do {                                                                                   \
        atomic_fetch_add_explicit(&calls[(out)->prim], 1, memory_order_relaxed);           \
        lx_status st_ = ensure((ctx)->dev);                                                \
        if (st_ != LX_OK) return st_;                                                      \
        if ((out)->size == 0) return LX_OK;                                                \
    } while (0)
#define LAUNCHED(err, out) ((err) ? kern_fail((err), (out)) : LX_OK)

/* ---- COPY, FULL, ARANGE ---------------------------------------------------------------------------- */

/* dst row-contiguous over in's shape <- in (any strides), converting */
static int copy_node(cudaStream_t s, char *dst, int dt, const lx_node *in) {
    lxc_iter it;
    iter_init(&it, in->shape, in->ndim, 2);
    row_strides(in->shape, in->ndim, it.st[0]);
    for (int d = 0; d < in->ndim; d++) it.st[1][d] = in->shape[d] == 1 ? 0 : in->strides[d];
    iter_coalesce(&it);
    if (dt == in->dtype) return lxc_move(s, dst, dptr(in), dsize(dt), &it, in->size);
    return lxc_convert(s, dst, dt, dptr(in), in->dtype, &it, in->size);
}

static lx_status k_copy(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    return LAUNCHED(copy_node(S(ctx), dptr(out), out->dtype, out->inputs[0]), out);
}

static lx_status k_full(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    double v = ((const lx_full_params *)out->params)->value;
    uint64_t bits = 0;
    switch (out->dtype) {
#define X(E, T, S)                                                                         \
    case E: {                                                                              \
        LX_ST_##S y = lx_cvt_##S##_D(v);                                                   \
        memcpy(&bits, &y, sizeof y);                                                       \
        break;                                                                             \
    }
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: break;
    }
    return LAUNCHED(lxc_fill(S(ctx), dptr(out), dsize(out->dtype), bits, out->size), out);
}

static lx_status k_arange(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_arange_params *p = out->params;
    return LAUNCHED(lxc_arange(S(ctx), dptr(out), out->dtype, p->start, p->step, out->size), out);
}

/* ---- UNARY, BINARY, WHERE ------------------------------------------------------------------------ */

static void ew_iter(lxc_iter *it, const lx_node *out) {
    iter_init(it, out->shape, out->ndim, 1 + out->n_inputs);
    row_strides(out->shape, out->ndim, it->st[0]);
    for (int i = 0; i < out->n_inputs; i++) aligned(out->inputs[i], out->ndim, it->st[1 + i]);
    iter_coalesce(it);
}

static lx_status k_unary(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    int op = ((const lx_unary_params *)out->params)->op;
    lxc_iter it;
    ew_iter(&it, out);
    const lx_node *x = out->inputs[0];
    return LAUNCHED(lxc_unary(S(ctx), dptr(out), dptr(x), x->dtype, op, lx_unary_op_is_pred(op),
                              &it, out->size), out);
}

static lx_status k_binary(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    int op = ((const lx_binary_params *)out->params)->op;
    lxc_iter it;
    ew_iter(&it, out);
    const lx_node *a = out->inputs[0], *b = out->inputs[1];
    return LAUNCHED(lxc_binary(S(ctx), dptr(out), dptr(a), dptr(b), a->dtype, op,
                               lx_binary_op_is_pred(op), &it, out->size), out);
}

static lx_status k_where(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    lxc_iter it;
    ew_iter(&it, out);
    return LAUNCHED(lxc_where(S(ctx), dptr(out), dptr(out->inputs[0]), dptr(out->inputs[1]),
                              dptr(out->inputs[2]), dsize(out->dtype), &it, out->size), out);
}

/* ---- FUSED: a generated kernel per program (fused_cuda.h) ------------------------------------ */

static lx_status k_fused(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    cuda_dev *c = D(ctx->dev);
    lxf_args a;
    uint8_t kinds[LX_FUSED_MAX_IN];
    const char *why = lxf_plan(out, dptr(out), &a, kinds);
    if (why)
        return core->set_error(LX_E_INTERNAL, "cuda FUSED (%s): malformed fused program (%s)",
                               out->op ? out->op : "?", why);
    return lxf_launch(c->ordinal, c->arch, out->params, out->params_size, kinds, &a, S(ctx));
}

/* ---- MATMUL (cuBLAS) ------------------------------------------------------------------------------- */

/* How cuBLAS reads a logical row-major R x C matrix with strides (sr, sc): 1 as "row-major"
 * (op N in the transposed product) with leading dimension *ld, 2 as column-major (op T), 0 when
 * it must be copied first. */
static int mat_layout(int64_t R, int64_t C, int64_t sr, int64_t sc, int64_t *ld) {
    if (C == 1) sc = 1;
    if (R == 1) sr = C > 1 ? C : 1;
    if (sc == 1 && sr >= C && sr > 0) {
        *ld = sr;
        return 1;
    }
    if (sr == 1 && sc >= R && sc > 0) {
        *ld = sc;
        return 2;
    }
    return 0;
}

static bool blas_types(int dt, cudaDataType_t *t, cublasComputeType_t *ct) {
    switch (dt) {
    case LX_FLOAT32: *t = CUDA_R_32F; *ct = CUBLAS_COMPUTE_32F; return true;
    case LX_FLOAT16: *t = CUDA_R_16F; *ct = CUBLAS_COMPUTE_32F; return true;
    case LX_BFLOAT16: *t = CUDA_R_16BF; *ct = CUBLAS_COMPUTE_32F; return true;
    case LX_FLOAT64: *t = CUDA_R_64F; *ct = CUBLAS_COMPUTE_64F; return true;
    default: return false;
    }
}

/* One operand of a product as cuBLAS reads it. */
typedef struct {
    const char *p;
    int layout;
    int64_t ld;
    int64_t bst[LX_MAX_NDIM]; /* batch strides (elements) */
} mm_operand;

/* C [batch.., M, N] (row-contiguous) = alpha A @ B + beta C, batched over nb dims of bshape. */
static lx_status gemm(lx_kctx *ctx, const lx_node *out, int dt, int64_t M, int64_t N, int64_t K,
                      const mm_operand *A, const mm_operand *B, char *Cp, int nb,
                      const int64_t *bshape, double alpha, double beta) {
    cuda_dev *c = D(ctx->dev);
    cudaDataType_t t;
    cublasComputeType_t ct;
    if (!blas_types(dt, &t, &ct))
        return core->set_error(LX_E_DEVICE, "cuda MATMUL (%s): no cuBLAS type", out->op);
    /* batch dims: merged where A, B and C all allow */
    lxc_iter it;
    memset(&it, 0, sizeof it);
    it.nd = nb;
    it.nops = 3;
    int64_t cs = M * N;
    for (int d = nb - 1; d >= 0; d--) {
        it.shape[d] = bshape[d];
        it.st[0][d] = cs;
        cs *= bshape[d];
        it.st[1][d] = A->bst[d];
        it.st[2][d] = B->bst[d];
    }
    iter_coalesce(&it);
    int inner = it.nd - 1;
    int64_t count = it.shape[inner], outer = 1;
    for (int d = 0; d < inner; d++) outer *= it.shape[d];
    float af = (float)alpha, bf = (float)beta;
    const void *pa = dt == LX_FLOAT64 ? (const void *)&alpha : (const void *)&af;
    const void *pb = dt == LX_FLOAT64 ? (const void *)&beta : (const void *)&bf;
    int es = dsize(dt);
    cublasOperation_t opA = A->layout == 1 ? CUBLAS_OP_N : CUBLAS_OP_T;
    cublasOperation_t opB = B->layout == 1 ? CUBLAS_OP_N : CUBLAS_OP_T;
    cublasStatus_t bs = CUBLAS_STATUS_SUCCESS;
    pthread_mutex_lock(&c->lock);
    for (int64_t o = 0; o < outer && bs == CUBLAS_STATUS_SUCCESS; o++) {
        int64_t offa = 0, offb = 0, offc = 0, r = o;
        for (int d = inner - 1; d >= 0; d--) {
            int64_t i = r % it.shape[d];
            r /= it.shape[d];
            offc += i * it.st[0][d];
            offa += i * it.st[1][d];
            offb += i * it.st[2][d];
        }
        /* row-major C = A B is column-major C^T = B^T A^T */
        bs = cublasGemmStridedBatchedEx(
            c->blas, opB, opA, (int)N, (int)M, (int)K, pa, B->p + offb * es, t, (int)B->ld,
            (long long)it.st[2][inner], A->p + offa * es, t, (int)A->ld, (long long)it.st[1][inner],
            pb, Cp + offc * es, t, (int)N, (long long)it.st[0][inner], (int)count, ct,
            CUBLAS_GEMM_DEFAULT);
    }
    pthread_mutex_unlock(&c->lock);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return core->set_error(LX_E_DEVICE, "cuda MATMUL (%s): cublasGemmStridedBatchedEx: %s",
                               out->op ? out->op : "?", blas_msg(bs));
    int e = (int)cudaGetLastError();
    return e ? kern_fail(e, out) : LX_OK;
}

/* An operand [.., R, C] of out's batch: read in place, or copied row-contiguous into scratch
 * (batch dims as the operand broadcasts them). */
static lx_status mm_prepare(lx_kctx *ctx, const lx_node *out, const lx_node *x, int64_t R,
                            int64_t C, mm_operand *m) {
    int nd = out->ndim;
    int64_t st[LX_MAX_NDIM];
    aligned(x, nd, st);
    int64_t sr = x->shape[x->ndim - 2] == 1 ? 0 : x->strides[x->ndim - 2];
    int64_t sc = x->shape[x->ndim - 1] == 1 ? 0 : x->strides[x->ndim - 1];
    for (int d = 0; d < nd - 2; d++) m->bst[d] = st[d];
    m->p = dptr(x);
    m->layout = mat_layout(R, C, sr, sc, &m->ld);
    if (m->layout) return LX_OK;
    /* copy: [x's own batch dims broadcast to out's .., R, C], row-contiguous */
    int64_t batch = 1;
    for (int d = 0; d < nd - 2; d++) batch *= out->shape[d];
    size_t nbytes = (size_t)(batch * R * C) * (size_t)dsize(x->dtype);
    char *p = core->scratch(ctx, nbytes ? nbytes : 1);
    if (!p) return LX_E_OOM;
    lxc_iter it;
    iter_init(&it, out->shape, nd, 2);
    it.shape[nd - 2] = R;
    it.shape[nd - 1] = C;
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        it.st[0][d] = s;
        s *= it.shape[d];
    }
    memcpy(it.st[1], st, sizeof st);
    it.st[1][nd - 2] = sr;
    it.st[1][nd - 1] = sc;
    iter_coalesce(&it);
    int e = lxc_move(S(ctx), p, dptr(x), dsize(x->dtype), &it, batch * R * C);
    if (e) return kern_fail(e, out);
    m->p = p;
    m->layout = 1;
    m->ld = C;
    s = R * C;
    for (int d = nd - 3; d >= 0; d--) {
        m->bst[d] = s;
        s *= out->shape[d];
    }
    return LX_OK;
}

static lx_status k_matmul(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_node *a = out->inputs[0], *b = out->inputs[1];
    const lx_node *cin = out->n_inputs > 2 ? out->inputs[2] : NULL;
    const lx_matmul_params *p = out->params_size >= sizeof(lx_matmul_params) ? out->params : NULL;
    int nd = out->ndim;
    int64_t M = out->shape[nd - 2], N = out->shape[nd - 1], K = a->shape[a->ndim - 1];
    double alpha = p ? p->alpha : 1.0, beta = 0.0;
    if (cin) {
        /* out <- c broadcast, then beta * out */
        lxc_iter it;
        iter_init(&it, out->shape, nd, 2);
        row_strides(out->shape, nd, it.st[0]);
        aligned(cin, nd, it.st[1]);
        iter_coalesce(&it);
        int e = lxc_move(S(ctx), dptr(out), dptr(cin), dsize(out->dtype), &it, out->size);
        if (e) return kern_fail(e, out);
        beta = p ? p->beta : 1.0;
    }
    if (b->dtype != out->dtype) { /* the mixed form (supports(): few rows, no batch) */
        lxc_gemv_args g;
        memset(&g, 0, sizeof g);
        g.a = (const float *)(const void *)dptr(a);
        g.b = dptr(b);
        g.bt = b->dtype;
        g.M = M;
        g.N = N;
        g.K = K;
        g.a_rs = a->strides[a->ndim - 2];
        g.a_cs = a->strides[a->ndim - 1];
        g.b_rs = b->strides[b->ndim - 2];
        g.b_cs = b->strides[b->ndim - 1];
        g.alpha = (float)alpha;
        g.beta = (float)beta;
        g.with_c = cin != NULL;
        g.vec = g.b_rs == 1 && g.a_cs == 1 && K % 8 == 0 && (uintptr_t)g.b % 16 == 0 &&
                (g.b_cs * 2) % 16 == 0 && (uintptr_t)g.a % 16 == 0 &&
                (M == 1 || (g.a_rs * 4) % 16 == 0);
        int e = lxc_gemv_mixed(S(ctx), (float *)(void *)dptr(out), &g);
        return e ? kern_fail(e, out) : LX_OK;
    }
    mm_operand A, B;
    lx_status st = mm_prepare(ctx, out, a, M, K, &A);
    if (st == LX_OK) st = mm_prepare(ctx, out, b, K, N, &B);
    if (st != LX_OK) return st;
    int64_t bshape[LX_MAX_NDIM];
    for (int d = 0; d < nd - 2; d++) bshape[d] = out->shape[d];
    return gemm(ctx, out, out->dtype, M, N, K, &A, &B, dptr(out), nd - 2, bshape, alpha, beta);
}

/* ---- REDUCE, ARG_REDUCE, SOFTMAX, RMS_NORM --------------------------------------------------------- */

static lx_status k_reduce(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_reduce_params *p = out->params;
    const lx_node *in = out->inputs[0];
    lxc_reduce_args a;
    memset(&a, 0, sizeof a);
    a.in = dptr(in);
    a.in_dtype = in->dtype;
    a.out_dtype = out->dtype;
    a.op = p->op;
    a.scale = p->scale == 0 ? 1.0 : p->scale;
    bool red[LX_MAX_NDIM] = {false};
    for (int i = 0; i < p->n_axes; i++) red[p->axes[i]] = true;
    for (int d = 0; d < in->ndim; d++) {
        if (red[d]) {
            a.rshape[a.nr] = in->shape[d];
            a.rst[a.nr++] = in->strides[d];
        } else {
            a.kshape[a.nk] = in->shape[d];
            a.kst[a.nk++] = in->strides[d];
        }
    }
    a.nk = dims_coalesce(a.nk, a.kshape, a.kst);
    a.nr = dims_coalesce(a.nr, a.rshape, a.rst);
    a.n_out = out->size;
    a.n_red = 1;
    for (int d = 0; d < a.nr; d++) a.n_red *= a.rshape[d];
    if (in->size == 0) a.n_red = 0;
    return LAUNCHED(lxc_reduce(S(ctx), dptr(out), &a), out);
}

/* rows of `in` along `axis`; the output's strides (row-contiguous out) alongside */
static void make_rows(lxc_rows *r, const lx_node *in, const lx_node *out, int axis) {
    memset(r, 0, sizeof *r);
    r->in = dptr(in);
    r->dtype = in->dtype;
    int64_t ost[LX_MAX_NDIM];
    row_strides(out->shape, out->ndim, ost);
    r->rows = 1;
    for (int d = 0; d < in->ndim; d++) {
        if (d == axis) continue;
        r->shape[r->nd] = in->shape[d];
        r->st[r->nd] = in->strides[d];
        r->ost[r->nd++] = ost[d];
        r->rows *= in->shape[d];
    }
    r->len = in->shape[axis];
    r->stride = in->strides[axis];
    r->ostride = ost[axis];
}

static lx_status k_arg_reduce(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_arg_reduce_params *p = out->params;
    lxc_rows r;
    make_rows(&r, out->inputs[0], out->inputs[0], p->axis);
    return LAUNCHED(lxc_arg_reduce(S(ctx), (uint32_t *)(void *)dptr(out), &r, p->op), out);
}

static lx_status k_softmax(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_softmax_params *p = out->params;
    lxc_rows r;
    make_rows(&r, out->inputs[0], out, p->axis);
    return LAUNCHED(lxc_softmax(S(ctx), dptr(out), &r, p->log), out);
}

static lx_status k_rms_norm(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_norm_params *p = out->params;
    const lx_node *x = out->inputs[0], *w = out->n_inputs > 1 ? out->inputs[1] : NULL;
    lxc_rows r;
    make_rows(&r, x, out, x->ndim - 1);
    return LAUNCHED(lxc_rms_norm(S(ctx), dptr(out), &r, w ? dptr(w) : NULL,
                                 w ? (w->shape[0] == 1 ? 0 : w->strides[0]) : 0, p->eps),
                    out);
}

/* ---- ROPE, SDPA ------------------------------------------------------------------------------------ */

static lx_status k_rope(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_rope_params *p = out->params;
    const lx_node *x = out->inputs[0];
    lxc_rope_args a;
    memset(&a, 0, sizeof a);
    a.x = dptr(x);
    a.dtype = x->dtype;
    a.nd = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        a.shape[d] = x->shape[d];
        a.st[d] = x->strides[d];
    }
    a.dims = p->dims;
    a.traditional = p->traditional;
    a.base = p->base;
    a.scale = p->scale;
    a.offset = p->offset;
    int next = 1;
    if (p->has_freqs) {
        const lx_node *f = out->inputs[next++];
        a.freqs = (const float *)(const void *)dptr(f);
        a.freqs_stride = f->strides[0];
    }
    if (p->has_offset) {
        const lx_node *o = out->inputs[next++];
        a.offset_ptr = dptr(o);
        a.offset_dtype = o->dtype;
    }
    return LAUNCHED(lxc_rope(S(ctx), dptr(out), &a, out->size), out);
}

static lx_status k_sdpa(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_sdpa_params *p = out->params;
    const lx_node *q = out->inputs[0], *k = out->inputs[1], *v = out->inputs[2];
    lxc_sdpa_args a;
    memset(&a, 0, sizeof a);
    a.q = dptr(q);
    a.k = dptr(k);
    a.v = dptr(v);
    a.dtype = q->dtype;
    a.B = q->shape[0];
    a.Hq = q->shape[1];
    a.Lq = q->shape[2];
    a.D = q->shape[3];
    a.Hkv = k->shape[1];
    a.Lk = k->shape[2];
    a.Dv = v->shape[3];
    aligned(q, 4, a.qs);
    aligned(k, 4, a.ks);
    aligned(v, 4, a.vs);
    a.scale = p->scale;
    a.causal = p->causal;
    int next = 3;
    if (p->has_mask) {
        const lx_node *m = out->inputs[next++];
        a.mask = dptr(m);
        a.mask_dtype = m->dtype;
        aligned(m, 4, a.ms);
    }
    if (p->has_sinks) {
        const lx_node *s = out->inputs[next++];
        a.sinks = dptr(s);
        a.sinks_stride = s->shape[0] == 1 ? 0 : s->strides[0];
    }
    return LAUNCHED(lxc_sdpa(S(ctx), dptr(out), &a), out);
}

/* ---- TAKE, SLICE_UPDATE, CONCATENATE --------------------------------------------------------------- */

static lx_status k_take(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_take_params *p = out->params;
    const lx_node *an = out->inputs[0], *idx = out->inputs[1];
    lxc_take_args a;
    memset(&a, 0, sizeof a);
    a.a = dptr(an);
    a.es = dsize(an->dtype);
    a.a_nd = an->ndim;
    a.axis = p->axis;
    for (int d = 0; d < an->ndim; d++) {
        a.a_shape[d] = an->shape[d];
        a.a_st[d] = an->strides[d];
    }
    a.idx = dptr(idx);
    a.idx_dtype = idx->dtype;
    a.idx_nd = idx->ndim;
    for (int d = 0; d < idx->ndim; d++) {
        a.idx_shape[d] = idx->shape[d];
        a.idx_st[d] = idx->strides[d];
    }
    a.n_idx = idx->size;
    return LAUNCHED(lxc_take(S(ctx), dptr(out), &a, out->size), out);
}

/* out region (at dst, with dst strides) <- in, same dtype */
static int move_into(cudaStream_t s, char *dst, const int64_t *dst_st, const lx_node *in) {
    lxc_iter it;
    iter_init(&it, in->shape, in->ndim, 2);
    for (int d = 0; d < in->ndim; d++) {
        it.st[0][d] = dst_st[d];
        it.st[1][d] = in->shape[d] == 1 ? 0 : in->strides[d];
    }
    iter_coalesce(&it);
    return lxc_move(s, dst, dptr(in), dsize(in->dtype), &it, in->size);
}

static lx_status k_slice_update(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_slice_params *p = out->params;
    const lx_node *a = out->inputs[0], *upd = out->inputs[1];
    int64_t ost[LX_MAX_NDIM], ust[LX_MAX_NDIM];
    row_strides(out->shape, out->ndim, ost);
    char *o = dptr(out);
    int es = dsize(out->dtype);
    if (o != dptr(a) && a->size > 0) { /* else in place: only the update is written */
        int e = move_into(S(ctx), o, ost, a);
        if (e) return kern_fail(e, out);
    }
    if (upd->size == 0) return LX_OK;
    int64_t off = 0;
    for (int d = 0; d < out->ndim; d++) {
        off += (int64_t)p->start[d] * ost[d];
        ust[d] = ost[d] * p->step[d];
    }
    return LAUNCHED(move_into(S(ctx), o + off * es, ust, upd), out);
}

static lx_status k_concatenate(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_concat_params *p = out->params;
    int64_t ost[LX_MAX_NDIM];
    row_strides(out->shape, out->ndim, ost);
    char *o = dptr(out);
    int es = dsize(out->dtype);
    int64_t at = 0;
    for (int k = 0; k < out->n_inputs; k++) {
        const lx_node *in = out->inputs[k];
        if (in->size > 0) {
            int e = move_into(S(ctx), o + at * ost[p->axis] * es, ost, in);
            if (e) return kern_fail(e, out);
        }
        at += in->shape[p->axis];
    }
    return LX_OK;
}

/* ---- QUANTIZED_MATMUL ------------------------------------------------------------------------------ */

#define QMM_GEMV_ROWS 8 /* up to this many rows the fused kernel; beyond, dequantize + cuBLAS */

static lx_status k_qmm(lx_kctx *ctx, lx_node *out) {
    BEGIN(ctx, out);
    const lx_quant_params *p = out->params;
    const lx_node *x = out->inputs[0], *w = out->inputs[1], *sc = out->inputs[2],
                  *bi = out->inputs[3];
    int nd = out->ndim;
    lxc_qmm_args a;
    memset(&a, 0, sizeof a);
    a.x = dptr(x);
    a.dtype = out->dtype;
    a.N = out->shape[nd - 1];
    a.K = x->shape[x->ndim - 1];
    a.bits = p->bits;
    a.gs = p->group_size;
    a.w = (const uint32_t *)(const void *)dptr(w);
    a.w_row = w->strides[w->ndim - 2];
    a.scales = dptr(sc);
    a.biases = dptr(bi);
    a.sg_row = sc->strides[sc->ndim - 2];
    int64_t xst[LX_MAX_NDIM];
    aligned(x, nd, xst);
    a.nd = nd - 1;
    for (int d = 0; d < nd - 1; d++) {
        a.rshape[d] = out->shape[d];
        a.xst[d] = xst[d];
    }
    a.xk = x->shape[x->ndim - 1] == 1 ? 0 : x->strides[x->ndim - 1];
    a.rows = out->size / a.N;
    if (a.K == 0) return LAUNCHED(lxc_fill(S(ctx), dptr(out), dsize(out->dtype), 0, out->size), out);
    /* many rows of x that form one matrix: dequantize w and multiply with cuBLAS */
    int64_t rsh[LX_MAX_NDIM], rst[LX_MAX_NDIM];
    memcpy(rsh, a.rshape, sizeof rsh);
    memcpy(rst, a.xst, sizeof rst);
    int rn = dims_coalesce(a.nd, rsh, rst);
    if (a.rows > QMM_GEMV_ROWS && rn == 1 && rst[0] >= a.K && (a.xk == 1 || a.K == 1)) {
        int es = dsize(out->dtype);
        char *wd = core->scratch(ctx, (size_t)(a.N * a.K) * (size_t)es);
        if (!wd) return LX_E_OOM;
        int e = lxc_dequant(S(ctx), wd, &a);
        if (e) return kern_fail(e, out);
        mm_operand A, B;
        memset(&A, 0, sizeof A);
        memset(&B, 0, sizeof B);
        A.p = a.x;
        A.layout = 1;
        A.ld = rst[0];
        B.p = wd; /* wd [N, K] read as B = wd^T [K, N]: column-major, ld K */
        B.layout = 2;
        B.ld = a.K;
        return gemm(ctx, out, out->dtype, a.rows, a.N, a.K, &A, &B, dptr(out), 0, NULL, 1.0, 0.0);
    }
    return LAUNCHED(lxc_qmm(S(ctx), dptr(out), &a), out);
}

/* ---- what the device computes --------------------------------------------------------------------- */

static bool inputs_ok(const lx_node *n, int min, int max) {
    if (n->n_inputs < min || n->n_inputs > max || !n->inputs) return false;
    for (int i = 0; i < n->n_inputs; i++)
        if (!n->inputs[i] || !lx_dtype_valid(n->inputs[i]->dtype)) return false;
    return true;
}
#define PARAMS(n, T) ((n)->params && (n)->params_size >= sizeof(T) ? (const T *)(n)->params : NULL)

/* Row-major (last stride 1) rows of a [.., R, C] node: what QUANTIZED_MATMUL's w, scales and
 * biases are (prims_quant.def), with every batch dim of size 1. */
static bool plain_matrix(const lx_node *m) {
    if (m->ndim < 2) return false;
    for (int d = 0; d < m->ndim - 2; d++)
        if (m->shape[d] != 1) return false;
    return m->strides[m->ndim - 1] == 1 || m->shape[m->ndim - 1] == 1;
}

/*
 * COPY: every dtype pair, any strides, reshaping copies (same element count).
 * FULL, ARANGE: every dtype.
 * UNARY, BINARY: every op and dtype (float16/bfloat16 in float32, as the CPU), broadcast inputs.
 * WHERE: any dtype; bool condition.
 * MATMUL: float32 (float32 compute, no TF32), float16 and bfloat16 (float32 accumulation),
 *   float64; batched with broadcast batch dims; addmm (alpha, beta, c); K > 0. The mixed form
 *   (float32 a, half b) for at most LXC_GEMV_MAX_M rows and no batch (gemv.cu).
 * REDUCE: every op and dtype (LOGSUMEXP: floats). ARG_REDUCE: every dtype.
 * SOFTMAX: float dtypes, any axis. RMS_NORM: float dtypes, optional w.
 * ROPE: float dtypes, freqs and offset inputs. SDPA: float32/float16/bfloat16 q/k/v with
 *   D, Dv <= 512, GQA, causal, bool or float masks (4-D), sinks.
 * TAKE, SLICE_UPDATE, CONCATENATE: every dtype, any strides.
 * QUANTIZED_MATMUL: transpose = true, no index arrays, bits 2/4/8, group size 32/64/128,
 *   float32/float16/bfloat16, w/scales/biases 2-D (leading dims of size 1) with unit last stride.
 * FUSED: every well-formed program (lxf_check: every op, dtype, cast, WHERE, up to
 *   LX_FUSED_MAX_IN inputs, LX_FUSED_MAX_OUT outputs), inputs broadcasting to its shape, while
 *   NVRTC and the driver entry points are there (LX_CUDA_FUSED=off refuses all) and no kernel
 *   of the program failed to compile or load on this device before.
 */
static bool fused_supported(const lx_device_impl *dev, const lx_node *n) {
    return lxf_available(NULL, 0) && inputs_ok(n, 0, LX_FUSED_MAX_IN) && !lxf_node_check(n) &&
           !lxf_failed(D(dev)->ordinal, n->params, n->params_size);
}

static bool cuda_supports(const lx_device_impl *dev, const lx_node *n) {
    if (!lx_dtype_valid(n->dtype)) return false;
    switch (n->prim) {
    case LX_PRIM_COPY:
        return inputs_ok(n, 1, 1) && n->inputs[0]->size == n->size;
    case LX_PRIM_FULL:
        return n->n_inputs == 0 && PARAMS(n, lx_full_params);
    case LX_PRIM_ARANGE:
        return n->n_inputs == 0 && PARAMS(n, lx_arange_params);
    case LX_PRIM_UNARY: {
        const lx_unary_params *p = PARAMS(n, lx_unary_params);
        if (!p || !inputs_ok(n, 1, 1) || p->op < 0 || p->op >= LX_UNARY_COUNT) return false;
        int want = lx_unary_op_is_pred(p->op) ? LX_BOOL : n->inputs[0]->dtype;
        return n->dtype == want && broadcasts(n->inputs[0], n);
    }
    case LX_PRIM_BINARY: {
        const lx_binary_params *p = PARAMS(n, lx_binary_params);
        if (!p || !inputs_ok(n, 2, 2) || p->op < 0 || p->op >= LX_BINARY_COUNT) return false;
        const lx_node *a = n->inputs[0], *b = n->inputs[1];
        int want = lx_binary_op_is_pred(p->op) ? LX_BOOL : a->dtype;
        return a->dtype == b->dtype && n->dtype == want && broadcasts(a, n) && broadcasts(b, n);
    }
    case LX_PRIM_WHERE:
        return inputs_ok(n, 3, 3) && n->inputs[0]->dtype == LX_BOOL &&
               n->inputs[1]->dtype == n->dtype && n->inputs[2]->dtype == n->dtype &&
               broadcasts(n->inputs[0], n) && broadcasts(n->inputs[1], n) &&
               broadcasts(n->inputs[2], n);
    case LX_PRIM_MATMUL: {
        cudaDataType_t t;
        cublasComputeType_t ct;
        if (!blas_types(n->dtype, &t, &ct) || n->ndim < 2) return false;
        bool scaled = PARAMS(n, lx_matmul_params) != NULL;
        if (!inputs_ok(n, 2, scaled ? 3 : 2)) return false;
        /* the mixed form (a float32 a times a half b) for a decode step's few rows without
         * batch (gemv.cu); other mixed products take MATMUL's fallback (b converted) */
        bool mixed = n->inputs[1]->dtype != n->dtype;
        if (mixed) {
            if (!lx_matmul_mixed_ok(n->inputs[0]->dtype, n->inputs[1]->dtype) ||
                n->shape[n->ndim - 2] > LXC_GEMV_MAX_M)
                return false;
            for (int d = 0; d < n->ndim - 2; d++)
                if (n->shape[d] != 1) return false;
        }
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i]->dtype != n->dtype && !(mixed && i == 1)) return false;
        const lx_node *a = n->inputs[0], *b = n->inputs[1];
        int nd = n->ndim;
        if (a->ndim < 2 || b->ndim < 2 || a->ndim > nd || b->ndim > nd) return false;
        int32_t M = n->shape[nd - 2], N = n->shape[nd - 1], K = a->shape[a->ndim - 1];
        if (K <= 0 || a->shape[a->ndim - 2] != M || b->shape[b->ndim - 2] != K ||
            b->shape[b->ndim - 1] != N)
            return false;
        for (int d = 0; d < a->ndim - 2; d++)
            if (a->shape[d] != n->shape[nd - a->ndim + d] && a->shape[d] != 1) return false;
        for (int d = 0; d < b->ndim - 2; d++)
            if (b->shape[d] != n->shape[nd - b->ndim + d] && b->shape[d] != 1) return false;
        return n->n_inputs == 2 || broadcasts(n->inputs[2], n);
    }
    case LX_PRIM_REDUCE: {
        const lx_reduce_params *p = PARAMS(n, lx_reduce_params);
        if (!p || !inputs_ok(n, 1, 1) || p->op < LX_REDUCE_SUM || p->op > LX_REDUCE_LOGSUMEXP)
            return false;
        const lx_node *in = n->inputs[0];
        if (in->ndim != n->ndim || p->n_axes < 0 || p->n_axes > in->ndim) return false;
        for (int i = 0; i < p->n_axes; i++)
            if (p->axes[i] < 0 || p->axes[i] >= in->ndim) return false;
        if (p->op == LX_REDUCE_LOGSUMEXP && !is_float(in->dtype)) return false;
        return true;
    }
    case LX_PRIM_ARG_REDUCE: {
        const lx_arg_reduce_params *p = PARAMS(n, lx_arg_reduce_params);
        return p && inputs_ok(n, 1, 1) && n->dtype == LX_UINT32 && p->axis >= 0 &&
               p->axis < n->inputs[0]->ndim && (p->op == LX_ARG_MAX || p->op == LX_ARG_MIN) &&
               n->inputs[0]->shape[p->axis] > 0;
    }
    case LX_PRIM_SOFTMAX: {
        const lx_softmax_params *p = PARAMS(n, lx_softmax_params);
        return p && inputs_ok(n, 1, 1) && is_float(n->dtype) && n->inputs[0]->dtype == n->dtype &&
               n->inputs[0]->ndim == n->ndim && p->axis >= 0 && p->axis < n->ndim;
    }
    case LX_PRIM_RMS_NORM: {
        const lx_norm_params *p = PARAMS(n, lx_norm_params);
        if (!p || !inputs_ok(n, 1, 2) || !is_float(n->dtype) || n->ndim < 1) return false;
        const lx_node *x = n->inputs[0];
        if (x->dtype != n->dtype || x->ndim != n->ndim) return false;
        if (n->n_inputs == 2) {
            const lx_node *w = n->inputs[1];
            if (w->dtype != n->dtype || w->ndim != 1 ||
                (w->shape[0] != x->shape[x->ndim - 1] && w->shape[0] != 1))
                return false;
        }
        return true;
    }
    case LX_PRIM_ROPE: {
        const lx_rope_params *p = PARAMS(n, lx_rope_params);
        if (!p || !is_float(n->dtype) || n->ndim < 2) return false;
        int want = 1 + (p->has_freqs != 0) + (p->has_offset != 0);
        if (!inputs_ok(n, want, want) || n->inputs[0]->dtype != n->dtype ||
            n->inputs[0]->ndim != n->ndim)
            return false;
        if (p->dims < 0 || p->dims > n->shape[n->ndim - 1]) return false;
        int next = 1;
        if (p->has_freqs) {
            const lx_node *f = n->inputs[next++];
            if (f->dtype != LX_FLOAT32 || f->ndim != 1 || f->shape[0] < p->dims / 2) return false;
        }
        if (p->has_offset) {
            const lx_node *o = n->inputs[next++];
            if (!is_int(o->dtype) || o->size != 1) return false;
        }
        return true;
    }
    case LX_PRIM_SDPA: {
        const lx_sdpa_params *p = PARAMS(n, lx_sdpa_params);
        if (!p || !is_half_or_f32(n->dtype) || n->ndim != 4) return false;
        int want = 3 + (p->has_mask != 0) + (p->has_sinks != 0);
        if (!inputs_ok(n, want, want)) return false;
        const lx_node *q = n->inputs[0], *k = n->inputs[1], *v = n->inputs[2];
        for (int i = 0; i < 3; i++)
            if (n->inputs[i]->dtype != n->dtype || n->inputs[i]->ndim != 4) return false;
        if (k->shape[1] <= 0 || q->shape[1] % k->shape[1] != 0) return false;
        if (q->shape[3] > 512 || v->shape[3] > 512 || k->shape[3] != q->shape[3]) return false;
        if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] || v->shape[1] != k->shape[1] ||
            v->shape[2] != k->shape[2])
            return false;
        int next = 3;
        if (p->has_mask) {
            const lx_node *m = n->inputs[next++];
            if (m->ndim != 4 || !(m->dtype == LX_BOOL || is_half_or_f32(m->dtype))) return false;
            int64_t want4[4] = {q->shape[0], q->shape[1], q->shape[2], k->shape[2]};
            for (int d = 0; d < 4; d++)
                if (m->shape[d] != want4[d] && m->shape[d] != 1) return false;
        }
        if (p->has_sinks) {
            const lx_node *s = n->inputs[next++];
            if (s->dtype != n->dtype || s->ndim != 1 ||
                (s->shape[0] != q->shape[1] && s->shape[0] != 1))
                return false;
        }
        return true;
    }
    case LX_PRIM_TAKE: {
        const lx_take_params *p = PARAMS(n, lx_take_params);
        if (!p || !inputs_ok(n, 2, 2)) return false;
        const lx_node *a = n->inputs[0], *idx = n->inputs[1];
        return a->dtype == n->dtype && is_int(idx->dtype) && p->axis >= 0 && p->axis < a->ndim &&
               a->shape[p->axis] > 0 && n->ndim == a->ndim - 1 + idx->ndim;
    }
    case LX_PRIM_SLICE_UPDATE: {
        const lx_slice_params *p = PARAMS(n, lx_slice_params);
        if (!p || !inputs_ok(n, 2, 2)) return false;
        const lx_node *a = n->inputs[0], *u = n->inputs[1];
        return a->dtype == n->dtype && u->dtype == n->dtype && a->ndim == n->ndim &&
               u->ndim == n->ndim;
    }
    case LX_PRIM_CONCATENATE: {
        const lx_concat_params *p = PARAMS(n, lx_concat_params);
        if (!p || !inputs_ok(n, 1, 65535) || p->axis < 0 || p->axis >= n->ndim) return false;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i]->dtype != n->dtype || n->inputs[i]->ndim != n->ndim) return false;
        return true;
    }
    case LX_PRIM_QUANTIZED_MATMUL: {
        const lx_quant_params *p = PARAMS(n, lx_quant_params);
        if (!p || p->flags != 0 || !p->transpose || !inputs_ok(n, 4, 4)) return false;
        if (!(p->bits == 2 || p->bits == 4 || p->bits == 8) || !lx_quant_group_ok(p->group_size))
            return false;
        if (!is_half_or_f32(n->dtype) || n->ndim < 2) return false;
        const lx_node *x = n->inputs[0], *w = n->inputs[1], *s = n->inputs[2], *b = n->inputs[3];
        if (x->dtype != n->dtype || s->dtype != n->dtype || b->dtype != n->dtype ||
            w->dtype != LX_UINT32 || x->ndim > n->ndim || x->ndim < 2)
            return false;
        if (!plain_matrix(w) || !plain_matrix(s) || !plain_matrix(b)) return false;
        int64_t K = x->shape[x->ndim - 1], N = n->shape[n->ndim - 1];
        if (K % p->group_size != 0 || w->shape[w->ndim - 2] != N ||
            (int64_t)w->shape[w->ndim - 1] * 32 / p->bits != K || s->shape[s->ndim - 2] != N ||
            s->shape[s->ndim - 1] != K / p->group_size || b->shape[b->ndim - 2] != N ||
            b->shape[b->ndim - 1] != K / p->group_size)
            return false;
        if (s->strides[s->ndim - 2] != b->strides[b->ndim - 2]) return false;
        if (x->shape[x->ndim - 2] != n->shape[n->ndim - 2]) return false;
        for (int d = 0; d < x->ndim - 2; d++)
            if (x->shape[d] != n->shape[n->ndim - x->ndim + d] && x->shape[d] != 1) return false;
        return true;
    }
    case LX_PRIM_FUSED:
        return fused_supported(dev, n);
    default:
        return false;
    }
}

/* ---- the entry point ------------------------------------------------------------------------------- */

static void version_text(char *buf, size_t n, int v) {
    if (v <= 0) snprintf(buf, n, "none");
    else snprintf(buf, n, "%d.%d", v / 1000, (v % 1000) / 10);
}

LX_API int lx_device_module_init(uint32_t api_version, const lx_core_api *api,
                                 const lx_device_impl **devices, int max_devices, char *why,
                                 size_t why_size);

LX_API int lx_device_module_init(uint32_t api_version, const lx_core_api *api,
                                 const lx_device_impl **devices, int max_devices, char *why,
                                 size_t why_size) {
    char dummy[1];
    if (!why || why_size == 0) {
        why = dummy;
        why_size = sizeof dummy;
    }
    why[0] = '\0';
    if (api_version != LX_DEVICE_API_VERSION) {
        snprintf(why, why_size, "the CUDA module was built for device interface %u, lx offers %u",
                 LX_DEVICE_API_VERSION, api_version);
        return 0;
    }
    if (!api || api->version != LX_DEVICE_API_VERSION || api->size < sizeof(lx_core_api) ||
        !api->set_error || !api->prim_name || !api->scratch) {
        snprintf(why, why_size, "the CUDA module needs lx_core_api version %u (size %zu)",
                 LX_DEVICE_API_VERSION, sizeof(lx_core_api));
        return 0;
    }
    if (!devices || max_devices < 1) {
        snprintf(why, why_size, "no room for a device (max_devices %d)", max_devices);
        return 0;
    }
    core = api;
    lxf_set_core(api);
    int drv = 0, rt = 0;
    (void)cudaDriverGetVersion(&drv);
    (void)cudaRuntimeGetVersion(&rt);
    char drv_s[32], rt_s[32];
    version_text(drv_s, sizeof drv_s, drv);
    version_text(rt_s, sizeof rt_s, rt);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        /* (no "; " in it: lx info splits its lines there) */
        snprintf(why, why_size, "no CUDA device: cudaGetDeviceCount: %s (%s), CUDA driver %s%s, "
                 "runtime %s", e == cudaSuccess ? "0 devices" : cudaGetErrorString(e),
                 e == cudaSuccess ? "cudaSuccess" : cudaGetErrorName(e), drv_s,
                 drv <= 0 ? " (no NVIDIA driver is loaded)" : "", rt_s);
        (void)cudaGetLastError();
        return 0;
    }
    for (int p = 0; p < LX_PRIM_COUNT; p++) kernels[p] = NULL;
    kernels[LX_PRIM_COPY] = k_copy;
    kernels[LX_PRIM_FULL] = k_full;
    kernels[LX_PRIM_ARANGE] = k_arange;
    kernels[LX_PRIM_UNARY] = k_unary;
    kernels[LX_PRIM_BINARY] = k_binary;
    kernels[LX_PRIM_WHERE] = k_where;
    kernels[LX_PRIM_MATMUL] = k_matmul;
    kernels[LX_PRIM_REDUCE] = k_reduce;
    kernels[LX_PRIM_ARG_REDUCE] = k_arg_reduce;
    kernels[LX_PRIM_SOFTMAX] = k_softmax;
    kernels[LX_PRIM_RMS_NORM] = k_rms_norm;
    kernels[LX_PRIM_ROPE] = k_rope;
    kernels[LX_PRIM_SDPA] = k_sdpa;
    kernels[LX_PRIM_TAKE] = k_take;
    kernels[LX_PRIM_SLICE_UPDATE] = k_slice_update;
    kernels[LX_PRIM_CONCATENATE] = k_concatenate;
    kernels[LX_PRIM_QUANTIZED_MATMUL] = k_qmm;
    kernels[LX_PRIM_FUSED] = k_fused;

    int n = 0;
    char skipped[256] = "";
    int blas_v = 0;
    /* FUSED: NVRTC and the driver entry points, said in each device's description (no "; ") */
    char fused_s[256], fused_why[200];
    if (lxf_available(fused_why, sizeof fused_why)) {
        int v = lxf_nvrtc_version();
        snprintf(fused_s, sizeof fused_s, "FUSED kernels generated and compiled by NVRTC %d.%d",
                 v / 1000, v % 1000 / 10);
    } else {
        snprintf(fused_s, sizeof fused_s, "FUSED on the CPU (%s)", fused_why);
    }
    for (char *q = fused_s; *q; q++)
        if (*q == ';') *q = ',';
    for (int i = 0; i < count && n < max_devices && n < MAX_DEVICES; i++) {
        struct cudaDeviceProp prop;
        if ((e = cudaGetDeviceProperties(&prop, i)) != cudaSuccess) {
            snprintf(skipped, sizeof skipped, "device %d: cudaGetDeviceProperties: %s", i,
                     cudaGetErrorString(e));
            continue;
        }
        if (prop.major < 8) {
            snprintf(skipped, sizeof skipped, "device %d (%.96s) has compute capability %d.%d, the "
                     "module needs 8.0 or later", i, prop.name, prop.major, prop.minor);
            continue;
        }
        if (!blas_v) (void)cublasGetProperty(MAJOR_VERSION, &blas_v);
        int blas_minor = 0;
        (void)cublasGetProperty(MINOR_VERSION, &blas_minor);
        cuda_dev *c = &devs[n];
        memset(c, 0, sizeof *c);
        pthread_mutex_init(&c->lock, NULL);
        c->ordinal = i;
        c->arch = prop.major * 10 + prop.minor;
        snprintf(c->description, sizeof c->description,
                 "CUDA device %d: %.128s, compute capability %d.%d, %.1f GiB, %d SMs, CUDA driver %s, "
                 "runtime %s, cuBLAS %d.%d, %.200s", i, prop.name, prop.major, prop.minor,
                 (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), prop.multiProcessorCount,
                 drv_s, rt_s, blas_v, blas_minor, fused_s);
        c->impl = (lx_device_impl){
            LX_DEVICE_LAYOUT,
            .name = "cuda",
            .description = c->description,
            .kind = LX_GPU,
            .score = 100 - i,
            .state = c,
            .kernels = kernels,
            .supports = cuda_supports,
            .host_visible = false,
            .alloc = cu_alloc,
            .free = cu_free,
            .copy_to_host = cu_copy_to_host,
            .copy_from_host = cu_copy_from_host,
            .copy = cu_copy,
            .memset = cu_memset,
            .import_host = cu_import_host,
            .release_import = cu_release_import,
            .memory_info = cu_memory_info,
            .event_record = cu_event_record,
            .event_wait = cu_event_wait,
            .event_query = cu_event_query,
            .event_free = cu_event_free,
            .synchronize = cu_synchronize,
            .shutdown = cu_shutdown,
        };
        devices[n++] = &c->impl;
    }
    if (n == 0)
        snprintf(why, why_size, "no usable CUDA device (%.256s), CUDA driver %s, runtime %s",
                 skipped[0] ? skipped : "none found", drv_s, rt_s);
    return n;
}
