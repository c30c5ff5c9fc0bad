/*
 * ew.cu -- the CUDA module's elementwise and data-movement kernels: COPY (moves and
 * conversions between every dtype pair), FULL, ARANGE, UNARY, BINARY, WHERE and TAKE.
 *
 * One thread per output element (grid-stride), the output row-contiguous, every input read at
 * the offsets of its strides (zero for broadcast dims) after the host has merged the dims that
 * all operands walk contiguously (lxc_iter). UNARY/BINARY compute with the per-element
 * definitions of graph/elementwise_ops.h (the CPU's: one definition of every op), in the value
 * class of the dtype (float16/bfloat16 in float), and narrow with values.h's conversions. This
 * file is compiled with --fmad=false, as the CPU's elementwise files are with
 * -ffp-contract=off: the multiply-adds the formulas spell out (LX_EW_FMAF) are the GPU's fma,
 * as in the CPU variants with FMA, and nothing else is contracted. The libm calls the
 * definitions make (powf, atan2f, tanf, fmodf, the float64 functions) are CUDA's, within a
 * few ulp of glibc's but not always the same bits.
 */
#include "backend/cuda/cuda_common.cuh"

/* ---- moves: dst (op 0) <- src (op 1) ---- */

template <typename T>
__global__ void k_move(T *dst, const T *src, lxc_iter it, int64_t n) {
    LXC_GRID_LOOP(i, n) {
        int64_t off[2];
        lxc_offsets<2>(it, i, off);
        dst[off[0]] = src[off[1]];
    }
}

extern "C" int lxc_move(lxc_stream s, void *dst, const void *src, int es, const lxc_iter *it,
                        int64_t n) {
    if (n <= 0) return 0;
    unsigned b = lxc_blocks(n, LXC_THREADS);
    switch (es) {
    case 1: k_move<uint8_t><<<b, LXC_THREADS, 0, s>>>((uint8_t *)dst, (const uint8_t *)src, *it, n); break;
    case 2: k_move<uint16_t><<<b, LXC_THREADS, 0, s>>>((uint16_t *)dst, (const uint16_t *)src, *it, n); break;
    case 4: k_move<uint32_t><<<b, LXC_THREADS, 0, s>>>((uint32_t *)dst, (const uint32_t *)src, *it, n); break;
    default: k_move<uint64_t><<<b, LXC_THREADS, 0, s>>>((uint64_t *)dst, (const uint64_t *)src, *it, n); break;
    }
    return lxc_launch_error();
}

/* ---- conversions ---- */

__global__ void k_convert(char *out, int ot, const char *in, int it_, lxc_iter it, int64_t n) {
    int cls = lx_dtype_class((lx_dtype)it_);
    int ies = lxc_dsize(it_), oes = lxc_dsize(ot);
    LXC_GRID_LOOP(i, n) {
        int64_t off[2];
        lxc_offsets<2>(it, i, off);
        lxc_store(ot, cls, out + i * oes, lxc_load(it_, in + off[1] * ies));
    }
}

extern "C" int lxc_convert(lxc_stream s, void *out, int ot, const void *in, int it_,
                           const lxc_iter *it, int64_t n) {
    if (n <= 0) return 0;
    k_convert<<<lxc_blocks(n, LXC_THREADS), LXC_THREADS, 0, s>>>((char *)out, ot, (const char *)in,
                                                                 it_, *it, n);
    return lxc_launch_error();
}

/* ---- FULL, ARANGE ---- */

template <typename T>
__global__ void k_fill(T *out, T v, int64_t n) {
    LXC_GRID_LOOP(i, n) out[i] = v;
}

extern "C" int lxc_fill(lxc_stream s, void *out, int es, uint64_t bits, int64_t n) {
    if (n <= 0) return 0;
    unsigned b = lxc_blocks(n, LXC_THREADS);
    switch (es) {
    case 1: k_fill<uint8_t><<<b, LXC_THREADS, 0, s>>>((uint8_t *)out, (uint8_t)bits, n); break;
    case 2: k_fill<uint16_t><<<b, LXC_THREADS, 0, s>>>((uint16_t *)out, (uint16_t)bits, n); break;
    case 4: k_fill<uint32_t><<<b, LXC_THREADS, 0, s>>>((uint32_t *)out, (uint32_t)bits, n); break;
    default: k_fill<uint64_t><<<b, LXC_THREADS, 0, s>>>((uint64_t *)out, bits, n); break;
    }
    return lxc_launch_error();
}

__global__ void k_arange(char *out, int ot, double start, double step, int64_t n) {
    int oes = lxc_dsize(ot);
    LXC_GRID_LOOP(i, n) {
        lxc_val v;
        v.d = LX_EW_FMA((double)i, step, start);
        lxc_store(ot, LX_CLASS_D, out + i * oes, v);
    }
}

extern "C" int lxc_arange(lxc_stream s, void *out, int ot, double start, double step, int64_t n) {
    if (n <= 0) return 0;
    k_arange<<<lxc_blocks(n, LXC_THREADS), LXC_THREADS, 0, s>>>((char *)out, ot, start, step, n);
    return lxc_launch_error();
}

/* ---- UNARY, BINARY: per value class ---- */

/* class C's value of a dtype of that class, and back */
template <int C> struct cls_t;
template <> struct cls_t<LX_CLASS_U> {
    typedef uint64_t T;
    static __device__ __forceinline__ T get(lxc_val v) { return v.u; }
    static __device__ __forceinline__ lxc_val put(T x) { lxc_val v; v.u = x; return v; }
    static __device__ __forceinline__ T un(int op, T x) { return lx_ew_unary1_U(op, x); }
    static __device__ __forceinline__ int unp(int op, T x) { return lx_ew_unary_pred1_U(op, x); }
    static __device__ __forceinline__ T bin(int op, T x, T y) { return lx_ew_binary1_U(op, x, y); }
    static __device__ __forceinline__ int binp(int op, T x, T y) { return lx_ew_binary_pred1_U(op, x, y); }
};
template <> struct cls_t<LX_CLASS_I> {
    typedef int64_t T;
    static __device__ __forceinline__ T get(lxc_val v) { return v.i; }
    static __device__ __forceinline__ lxc_val put(T x) { lxc_val v; v.i = x; return v; }
    static __device__ __forceinline__ T un(int op, T x) { return lx_ew_unary1_I(op, x); }
    static __device__ __forceinline__ int unp(int op, T x) { return lx_ew_unary_pred1_I(op, x); }
    static __device__ __forceinline__ T bin(int op, T x, T y) { return lx_ew_binary1_I(op, x, y); }
    static __device__ __forceinline__ int binp(int op, T x, T y) { return lx_ew_binary_pred1_I(op, x, y); }
};
template <> struct cls_t<LX_CLASS_F> {
    typedef float T;
    static __device__ __forceinline__ T get(lxc_val v) { return v.f; }
    static __device__ __forceinline__ lxc_val put(T x) { lxc_val v; v.f = x; return v; }
    static __device__ __forceinline__ T un(int op, T x) { return lx_ew_unary1_F(op, x); }
    static __device__ __forceinline__ int unp(int op, T x) { return lx_ew_unary_pred1_F(op, x); }
    static __device__ __forceinline__ T bin(int op, T x, T y) { return lx_ew_binary1_F(op, x, y); }
    static __device__ __forceinline__ int binp(int op, T x, T y) { return lx_ew_binary_pred1_F(op, x, y); }
};
template <> struct cls_t<LX_CLASS_D> {
    typedef double T;
    static __device__ __forceinline__ T get(lxc_val v) { return v.d; }
    static __device__ __forceinline__ lxc_val put(T x) { lxc_val v; v.d = x; return v; }
    static __device__ __forceinline__ T un(int op, T x) { return lx_ew_unary1_D(op, x); }
    static __device__ __forceinline__ int unp(int op, T x) { return lx_ew_unary_pred1_D(op, x); }
    static __device__ __forceinline__ T bin(int op, T x, T y) { return lx_ew_binary1_D(op, x, y); }
    static __device__ __forceinline__ int binp(int op, T x, T y) { return lx_ew_binary_pred1_D(op, x, y); }
};

template <int C, bool PRED>
__global__ void k_unary(char *out, const char *in, int dt, int op, lxc_iter it, int64_t n) {
    typedef cls_t<C> K;
    int es = lxc_dsize(dt);
    LXC_GRID_LOOP(i, n) {
        int64_t off[2];
        lxc_offsets<2>(it, i, off);
        typename K::T x = K::get(lxc_load(dt, in + off[1] * es));
        if (PRED) out[i] = (char)K::unp(op, x);
        else lxc_store(dt, C, out + i * es, K::put(K::un(op, x)));
    }
}

template <int C, bool PRED>
__global__ void k_binary(char *out, const char *a, const char *b, int dt, int op, lxc_iter it,
                         int64_t n) {
    typedef cls_t<C> K;
    int es = lxc_dsize(dt);
    LXC_GRID_LOOP(i, n) {
        int64_t off[3];
        lxc_offsets<3>(it, i, off);
        typename K::T x = K::get(lxc_load(dt, a + off[1] * es));
        typename K::T y = K::get(lxc_load(dt, b + off[2] * es));
        if (PRED) out[i] = (char)K::binp(op, x, y);
        else lxc_store(dt, C, out + i * es, K::put(K::bin(op, x, y)));
    }
}

extern "C" int lxc_unary(lxc_stream s, void *out, const void *in, int dt, int op, bool pred,
                         const lxc_iter *it, int64_t n) {
    if (n <= 0) return 0;
    unsigned b = lxc_blocks(n, LXC_THREADS);
    char *o = (char *)out;
    const char *x = (const char *)in;
    switch (lx_dtype_class((lx_dtype)dt)) {
#define CASE(C)                                                                            \
    case C:                                                                                \
        if (pred) k_unary<C, true><<<b, LXC_THREADS, 0, s>>>(o, x, dt, op, *it, n);        \
        else k_unary<C, false><<<b, LXC_THREADS, 0, s>>>(o, x, dt, op, *it, n);            \
        break;
        CASE(LX_CLASS_U)
        CASE(LX_CLASS_I)
        CASE(LX_CLASS_F)
        CASE(LX_CLASS_D)
#undef CASE
    }
    return lxc_launch_error();
}

extern "C" int lxc_binary(lxc_stream s, void *out, const void *a, const void *b_, int dt, int op,
                          bool pred, const lxc_iter *it, int64_t n) {
    if (n <= 0) return 0;
    unsigned b = lxc_blocks(n, LXC_THREADS);
    char *o = (char *)out;
    const char *x = (const char *)a, *y = (const char *)b_;
    switch (lx_dtype_class((lx_dtype)dt)) {
#define CASE(C)                                                                            \
    case C:                                                                                \
        if (pred) k_binary<C, true><<<b, LXC_THREADS, 0, s>>>(o, x, y, dt, op, *it, n);    \
        else k_binary<C, false><<<b, LXC_THREADS, 0, s>>>(o, x, y, dt, op, *it, n);        \
        break;
        CASE(LX_CLASS_U)
        CASE(LX_CLASS_I)
        CASE(LX_CLASS_F)
        CASE(LX_CLASS_D)
#undef CASE
    }
    return lxc_launch_error();
}

/* ---- WHERE ---- */

template <typename T>
__global__ void k_where(T *out, const uint8_t *c, const T *a, const T *b, lxc_iter it, int64_t n) {
    LXC_GRID_LOOP(i, n) {
        int64_t off[4];
        lxc_offsets<4>(it, i, off);
        out[i] = c[off[1]] != 0 ? a[off[2]] : b[off[3]];
    }
}

extern "C" int lxc_where(lxc_stream s, void *out, const void *c, const void *a, const void *b_,
                         int es, const lxc_iter *it, int64_t n) {
    if (n <= 0) return 0;
    unsigned b = lxc_blocks(n, LXC_THREADS);
    const uint8_t *cc = (const uint8_t *)c;
    switch (es) {
#define CASE(ES, T)                                                                        \
    case ES:                                                                               \
        k_where<T><<<b, LXC_THREADS, 0, s>>>((T *)out, cc, (const T *)a, (const T *)b_, *it, n); \
        break;
        CASE(1, uint8_t)
        CASE(2, uint16_t)
        CASE(4, uint32_t)
        CASE(8, uint64_t)
#undef CASE
    }
    return lxc_launch_error();
}

/* ---- TAKE: out = a[:axis] x idx x a[axis+1:] ---- */

template <typename T>
__global__ void k_take(T *out, lxc_take_args a, int64_t inner, int64_t n) {
    int64_t d = a.a_shape[a.axis];
    int ies = lxc_dsize(a.idx_dtype);
    LXC_GRID_LOOP(i, n) {
        int64_t in_i = i % inner, t = i / inner;
        int64_t j = t % a.n_idx, o = t / a.n_idx;
        int64_t off = lxc_offset_of(in_i, a.a_nd - a.axis - 1, a.a_shape + a.axis + 1,
                                    a.a_st + a.axis + 1);
        off += lxc_offset_of(o, a.axis, a.a_shape, a.a_st);
        int64_t ix = lxc_load_index(a.idx_dtype, (const char *)a.idx +
                                                     lxc_offset_of(j, a.idx_nd, a.idx_shape, a.idx_st) * ies);
        if (ix < 0) ix += d;
        ix = ix < 0 ? 0 : (ix >= d ? d - 1 : ix);
        out[i] = ((const T *)a.a)[off + ix * a.a_st[a.axis]];
    }
}

extern "C" int lxc_take(lxc_stream s, void *out, const lxc_take_args *a, int64_t n) {
    if (n <= 0) return 0;
    int64_t inner = 1;
    for (int d = a->axis + 1; d < a->a_nd; d++) inner *= a->a_shape[d];
    if (inner <= 0 || a->n_idx <= 0) return 0;
    unsigned b = lxc_blocks(n, LXC_THREADS);
    switch (a->es) {
    case 1: k_take<uint8_t><<<b, LXC_THREADS, 0, s>>>((uint8_t *)out, *a, inner, n); break;
    case 2: k_take<uint16_t><<<b, LXC_THREADS, 0, s>>>((uint16_t *)out, *a, inner, n); break;
    case 4: k_take<uint32_t><<<b, LXC_THREADS, 0, s>>>((uint32_t *)out, *a, inner, n); break;
    default: k_take<uint64_t><<<b, LXC_THREADS, 0, s>>>((uint64_t *)out, *a, inner, n); break;
    }
    return lxc_launch_error();
}

extern "C" const char *lxc_error_string(int err) { return cudaGetErrorString((cudaError_t)err); }
