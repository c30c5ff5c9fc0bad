/*
 * cuda_common.cuh -- device helpers of the CUDA module's kernels: loading any dtype into its
 * value class and storing a class value as any dtype (graph/values.h's conversions, the same
 * rules as the CPU's), offsets of an lxc_iter position, launch sizes.
 */
#ifndef LX_BACKEND_CUDA_COMMON_CUH
#define LX_BACKEND_CUDA_COMMON_CUH

#include <cuda_runtime.h>

#include "backend/cuda/cuda_kernels.h"
#include "graph/elementwise_ops.h"

#define LXC_THREADS 256

union lxc_val {
    uint64_t u;
    int64_t i;
    float f;
    double d;
};

/* One element of dtype t at p, in its class (values.h: LX_LOAD_<s>). */
__device__ __forceinline__ lxc_val lxc_load(int t, const char *p) {
    lxc_val v;
    v.u = 0;
    switch (t) {
#define X(E, T, S)                                                                         \
    case E: {                                                                              \
        LX_ST_##S x = *(const LX_ST_##S *)p;                                               \
        lxc_set_##S(v, LX_LOAD_##S(x));                                                    \
        break;                                                                             \
    }
#define lxc_set_bool(v, x) (v).u = (x)
#define lxc_set_u8(v, x) (v).u = (x)
#define lxc_set_u16(v, x) (v).u = (x)
#define lxc_set_u32(v, x) (v).u = (x)
#define lxc_set_u64(v, x) (v).u = (x)
#define lxc_set_i8(v, x) (v).i = (x)
#define lxc_set_i16(v, x) (v).i = (x)
#define lxc_set_i32(v, x) (v).i = (x)
#define lxc_set_i64(v, x) (v).i = (x)
#define lxc_set_f16(v, x) (v).f = (x)
#define lxc_set_bf16(v, x) (v).f = (x)
#define lxc_set_f32(v, x) (v).f = (x)
#define lxc_set_f64(v, x) (v).d = (x)
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: break;
    }
    return v;
}

/* Stores v, of value class cls, as dtype t at p (values.h: lx_cvt_<s>_<C>). */
__device__ __forceinline__ void lxc_store(int t, int cls, char *p, lxc_val v) {
    switch (t) {
#define X(E, T, S)                                                                         \
    case E: {                                                                              \
        LX_ST_##S y;                                                                       \
        switch (cls) {                                                                     \
        case LX_CLASS_U: y = lx_cvt_##S##_U(v.u); break;                                   \
        case LX_CLASS_I: y = lx_cvt_##S##_I(v.i); break;                                   \
        case LX_CLASS_F: y = lx_cvt_##S##_F(v.f); break;                                   \
        default: y = lx_cvt_##S##_D(v.d); break;                                           \
        }                                                                                  \
        *(LX_ST_##S *)p = y;                                                               \
        break;                                                                             \
    }
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: break;
    }
}

__host__ __device__ __forceinline__ int lxc_dsize(int t) {
    switch (t) {
    case LX_BOOL: case LX_UINT8: case LX_INT8: return 1;
    case LX_UINT16: case LX_INT16: case LX_FLOAT16: case LX_BFLOAT16: return 2;
    case LX_UINT32: case LX_INT32: case LX_FLOAT32: return 4;
    default: return 8;
    }
}

/* A float-class dtype (float16, bfloat16, float32) as float. */
__device__ __forceinline__ float lxc_loadf(int t, const char *p) {
    switch (t) {
    case LX_FLOAT16: return lx_f16_to_f32(*(const uint16_t *)p);
    case LX_BFLOAT16: return lx_bf16_to_f32(*(const uint16_t *)p);
    case LX_FLOAT64: return (float)*(const double *)p;
    default: return *(const float *)p;
    }
}
__device__ __forceinline__ void lxc_storef(int t, char *p, float v) {
    switch (t) {
    case LX_FLOAT16: *(uint16_t *)p = lx_f32_to_f16(v); break;
    case LX_BFLOAT16: *(uint16_t *)p = lx_f32_to_bf16(v); break;
    case LX_FLOAT64: *(double *)p = (double)v; break;
    default: *(float *)p = v; break;
    }
}
/* rounds v to dtype t and back (float16 / bfloat16), as storing and reloading does */
__device__ __forceinline__ float lxc_roundf(int t, float v) {
    if (t == LX_FLOAT16) return lx_f16_to_f32(lx_f32_to_f16(v));
    if (t == LX_BFLOAT16) return lx_bf16_to_f32(lx_f32_to_bf16(v));
    return v;
}
__device__ __forceinline__ double lxc_loadd(int t, const char *p) {
    return t == LX_FLOAT64 ? *(const double *)p : (double)lxc_loadf(t, p);
}
__device__ __forceinline__ void lxc_stored(int t, char *p, double v) {
    if (t == LX_FLOAT64) *(double *)p = v;
    else lxc_storef(t, p, (float)v);
}

/* An integer index element as int64. */
__device__ __forceinline__ int64_t lxc_load_index(int t, const char *p) {
    lxc_val v = lxc_load(t, p);
    return (t == LX_UINT64 || t == LX_UINT32 || t == LX_UINT16 || t == LX_UINT8 || t == LX_BOOL)
               ? (int64_t)v.u
               : v.i;
}

/* Offsets of operands k = 1 .. nops-1 at row-major position i of the iteration. */
template <int NOPS>
__device__ __forceinline__ void lxc_offsets(const lxc_iter &it, int64_t i, int64_t *off) {
#pragma unroll
    for (int k = 0; k < NOPS; k++) off[k] = 0;
    if (it.nd == 1) {
#pragma unroll
        for (int k = 0; k < NOPS; k++) off[k] = i * it.st[k][0];
        return;
    }
    for (int d = it.nd - 1; d >= 0; d--) {
        int64_t c = i % it.shape[d];
        i /= it.shape[d];
#pragma unroll
        for (int k = 0; k < NOPS; k++) off[k] += c * it.st[k][d];
    }
}

/* Offset of index r over (nd, shape, st), row-major. */
__device__ __forceinline__ int64_t lxc_offset_of(int64_t r, int nd, const int64_t *shape,
                                                 const int64_t *st) {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; d--) {
        off += (r % shape[d]) * st[d];
        r /= shape[d];
    }
    return off;
}

static inline unsigned lxc_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b > (1 << 20)) b = 1 << 20; /* grid-stride loops do the rest */
    return (unsigned)(b > 0 ? b : 1);
}

#define LXC_GRID_LOOP(i, n)                                                                \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);              \
         i += (int64_t)gridDim.x * blockDim.x)

/* Block-wide reductions (blockDim.x a multiple of 32, at most 1024): every thread gets the
 * result. `sh` holds 32 values of T; ident is f's identity. */
template <typename T, typename F>
__device__ __forceinline__ T lxc_block_reduce(T v, F f, T *sh, T ident) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = f(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads(); /* sh may be in use by a previous reduction */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : ident;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = f(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

static inline int lxc_launch_error(void) { return (int)cudaGetLastError(); }

#endif
