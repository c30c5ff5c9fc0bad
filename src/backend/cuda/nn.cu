/*
 * nn.cu -- the CUDA module's row kernels: REDUCE, ARG_REDUCE, SOFTMAX, RMS_NORM, ROPE, SDPA.
 *
 * One thread block per output row (REDUCE: per output element), threads striding over the
 * row, block-wide reductions through shared memory. Accumulation follows the CPU kernels'
 * precision or better: float sums (float16/bfloat16/float32 inputs) accumulate in float64 per
 * thread and between threads, integers in 64 bits with wrap-around; softmax and rms_norm
 * compute in float32 (float64 for float64) with the CPU's exp (lx_ew_exp_f) and the CPU's
 * rounding steps; rope's angles and their cosines/sines are float64 as on the CPU; sdpa is
 * float32 with an online softmax over chunks of keys.
 */
#include <math.h>

#include <type_traits>

#include "backend/cuda/cuda_common.cuh"
#include "graph/prims.h"

/* ---- REDUCE ---- */

enum { KIND_F, KIND_I, KIND_U };

struct f_add { template <typename T> __device__ T operator()(T a, T b) const { return a + b; } };
struct f_mul { template <typename T> __device__ T operator()(T a, T b) const { return a * b; } };
struct f_and { __device__ uint64_t operator()(uint64_t a, uint64_t b) const { return a & b; } };
struct f_or { __device__ uint64_t operator()(uint64_t a, uint64_t b) const { return a | b; } };
/* max/min with NaN propagation (doubles) */
struct f_maxn {
    __device__ double operator()(double a, double b) const {
        return a != a ? a : (b != b ? b : (a > b ? a : b));
    }
};
struct f_minn {
    __device__ double operator()(double a, double b) const {
        return a != a ? a : (b != b ? b : (a < b ? a : b));
    }
};
template <typename T> struct f_max { __device__ T operator()(T a, T b) const { return a > b ? a : b; } };
template <typename T> struct f_min { __device__ T operator()(T a, T b) const { return a < b ? a : b; } };

/* Float kinds: every element as double. */
__global__ void k_reduce_f(char *out, lxc_reduce_args a) {
    __shared__ double sh[32];
    int es = lxc_dsize(a.in_dtype), oes = lxc_dsize(a.out_dtype);
    for (int64_t o = blockIdx.x; o < a.n_out; o += gridDim.x) {
        const char *base = (const char *)a.in + lxc_offset_of(o, a.nk, a.kshape, a.kst) * es;
        double r;
        if (a.op == LX_REDUCE_MAX || a.op == LX_REDUCE_MIN || a.op == LX_REDUCE_LOGSUMEXP) {
            bool mx = a.op != LX_REDUCE_MIN;
            double acc = mx ? -INFINITY : INFINITY;
            for (int64_t j = threadIdx.x; j < a.n_red; j += blockDim.x) {
                double v = lxc_loadd(a.in_dtype, base + lxc_offset_of(j, a.nr, a.rshape, a.rst) * es);
                acc = mx ? f_maxn()(acc, v) : f_minn()(acc, v);
            }
            r = mx ? lxc_block_reduce(acc, f_maxn(), sh, (double)-INFINITY)
                   : lxc_block_reduce(acc, f_minn(), sh, (double)INFINITY);
            if (a.op == LX_REDUCE_LOGSUMEXP && r == r && !isinf(r)) {
                double m = r, sum = 0;
                for (int64_t j = threadIdx.x; j < a.n_red; j += blockDim.x)
                    sum += exp(lxc_loadd(a.in_dtype, base + lxc_offset_of(j, a.nr, a.rshape, a.rst) * es) - m);
                sum = lxc_block_reduce(sum, f_add(), sh, 0.0);
                r = m + log(sum);
            }
        } else if (a.op == LX_REDUCE_ALL || a.op == LX_REDUCE_ANY) {
            bool all = a.op == LX_REDUCE_ALL;
            uint64_t acc = all ? 1 : 0;
            for (int64_t j = threadIdx.x; j < a.n_red; j += blockDim.x) {
                double v = lxc_loadd(a.in_dtype, base + lxc_offset_of(j, a.nr, a.rshape, a.rst) * es);
                uint64_t t = v != 0; /* NaN is true */
                acc = all ? (acc & t) : (acc | t);
            }
            acc = all ? lxc_block_reduce(acc, f_and(), (uint64_t *)(void *)sh, (uint64_t)1)
                      : lxc_block_reduce(acc, f_or(), (uint64_t *)(void *)sh, (uint64_t)0);
            r = (double)acc;
        } else {
            bool prod = a.op == LX_REDUCE_PROD;
            double acc = prod ? 1.0 : 0.0;
            for (int64_t j = threadIdx.x; j < a.n_red; j += blockDim.x) {
                double v = lxc_loadd(a.in_dtype, base + lxc_offset_of(j, a.nr, a.rshape, a.rst) * es);
                acc = prod ? acc * v : acc + v;
            }
            r = prod ? lxc_block_reduce(acc, f_mul(), sh, 1.0) : lxc_block_reduce(acc, f_add(), sh, 0.0);
            if (!prod) r *= a.scale;
        }
        if (threadIdx.x == 0) {
            lxc_val v;
            v.d = r;
            lxc_store(a.out_dtype, LX_CLASS_D, out + o * oes, v);
        }
    }
}

/* Integer kinds (and bool): 64-bit accumulation with wrap-around. */
template <bool SIGNED>
__global__ void k_reduce_int(char *out, lxc_reduce_args a) {
    typedef typename std::conditional<SIGNED, int64_t, uint64_t>::type T;
    __shared__ T sh[32];
    int es = lxc_dsize(a.in_dtype), oes = lxc_dsize(a.out_dtype);
    int ocls = lx_dtype_class((lx_dtype)a.out_dtype);
    for (int64_t o = blockIdx.x; o < a.n_out; o += gridDim.x) {
        const char *base = (const char *)a.in + lxc_offset_of(o, a.nk, a.kshape, a.kst) * es;
        T acc;
        int op = a.op;
        switch (op) {
        case LX_REDUCE_PROD: case LX_REDUCE_ALL: acc = 1; break;
        case LX_REDUCE_MAX: acc = SIGNED ? (T)INT64_MIN : (T)0; break;
        case LX_REDUCE_MIN: acc = SIGNED ? (T)INT64_MAX : (T)UINT64_MAX; break;
        default: acc = 0; break;
        }
        for (int64_t j = threadIdx.x; j < a.n_red; j += blockDim.x) {
            lxc_val v = lxc_load(a.in_dtype, base + lxc_offset_of(j, a.nr, a.rshape, a.rst) * es);
            T x = SIGNED ? (T)v.i : (T)v.u;
            switch (op) {
            case LX_REDUCE_SUM: acc = (T)((uint64_t)acc + (uint64_t)x); break;
            case LX_REDUCE_PROD: acc = (T)((uint64_t)acc * (uint64_t)x); break;
            case LX_REDUCE_MAX: acc = x > acc ? x : acc; break;
            case LX_REDUCE_MIN: acc = x < acc ? x : acc; break;
            case LX_REDUCE_ALL: acc = acc && x != 0; break;
            default: acc = acc || x != 0; break; /* ANY */
            }
        }
        T r;
        switch (op) {
        case LX_REDUCE_SUM: r = (T)lxc_block_reduce((uint64_t)acc, f_add(), (uint64_t *)(void *)sh, (uint64_t)0); break;
        case LX_REDUCE_PROD: r = (T)lxc_block_reduce((uint64_t)acc, f_mul(), (uint64_t *)(void *)sh, (uint64_t)1); break;
        case LX_REDUCE_MAX: r = lxc_block_reduce(acc, f_max<T>(), sh, SIGNED ? (T)INT64_MIN : (T)0); break;
        case LX_REDUCE_MIN: r = lxc_block_reduce(acc, f_min<T>(), sh, SIGNED ? (T)INT64_MAX : (T)UINT64_MAX); break;
        case LX_REDUCE_ALL: r = (T)lxc_block_reduce((uint64_t)acc, f_and(), (uint64_t *)(void *)sh, (uint64_t)1); break;
        default: r = (T)lxc_block_reduce((uint64_t)acc, f_or(), (uint64_t *)(void *)sh, (uint64_t)0); break;
        }
        if (threadIdx.x == 0) {
            lxc_val v;
            if (ocls == LX_CLASS_F || ocls == LX_CLASS_D) {
                v.d = SIGNED ? (double)(int64_t)r : (double)(uint64_t)r;
                if (op == LX_REDUCE_SUM) v.d *= a.scale;
                lxc_store(a.out_dtype, LX_CLASS_D, out + o * oes, v);
            } else {
                v.u = (uint64_t)r;
                lxc_store(a.out_dtype, SIGNED ? LX_CLASS_I : LX_CLASS_U, out + o * oes, v);
            }
        }
    }
}

static int row_threads(int64_t len) {
    if (len >= 256) return 256;
    int t = (int)((len + 31) / 32) * 32;
    return t < 32 ? 32 : t;
}

static unsigned row_blocks(int64_t rows) {
    return (unsigned)(rows > (1 << 30) ? (1 << 30) : (rows > 0 ? rows : 1));
}

extern "C" int lxc_reduce(lxc_stream s, void *out, const lxc_reduce_args *a) {
    if (a->n_out <= 0) return 0;
    int t = row_threads(a->n_red);
    unsigned b = row_blocks(a->n_out);
    int cls = lx_dtype_class((lx_dtype)a->in_dtype);
    if (cls == LX_CLASS_F || cls == LX_CLASS_D) k_reduce_f<<<b, t, 0, s>>>((char *)out, *a);
    else if (cls == LX_CLASS_I) k_reduce_int<true><<<b, t, 0, s>>>((char *)out, *a);
    else k_reduce_int<false><<<b, t, 0, s>>>((char *)out, *a);
    return lxc_launch_error();
}

/* ---- ARG_REDUCE: first index of the extreme; a NaN is the extreme (the first NaN wins) ---- */

struct argv_ {
    double v;
    int64_t iv;
    uint64_t uv;
    int64_t idx;
};

template <int KIND>
__device__ __forceinline__ bool arg_better(const argv_ &x, const argv_ &best, bool mx) {
    /* x beats best (x at a later index unless idx says otherwise) */
    if (best.idx < 0) return true;
    if (x.idx < 0) return false;
    bool before = x.idx < best.idx;
    if (KIND == KIND_F) {
        bool xn = x.v != x.v, bn = best.v != best.v;
        if (bn) return xn && before;
        if (xn) return true;
        if (x.v == best.v) return before;
        return mx ? x.v > best.v : x.v < best.v;
    } else if (KIND == KIND_I) {
        if (x.iv == best.iv) return before;
        return mx ? x.iv > best.iv : x.iv < best.iv;
    } else {
        if (x.uv == best.uv) return before;
        return mx ? x.uv > best.uv : x.uv < best.uv;
    }
}

template <int KIND>
__global__ void k_arg_reduce(uint32_t *out, lxc_rows r, int op) {
    __shared__ argv_ sh[32];
    bool mx = op == 0;
    int es = lxc_dsize(r.dtype);
    for (int64_t row = blockIdx.x; row < r.rows; row += gridDim.x) {
        const char *base = (const char *)r.in + lxc_offset_of(row, r.nd, r.shape, r.st) * es;
        argv_ best;
        best.idx = -1;
        best.v = 0;
        best.iv = 0;
        best.uv = 0;
        for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x) {
            argv_ x;
            const char *p = base + j * r.stride * es;
            x.idx = j;
            x.v = 0;
            x.iv = 0;
            x.uv = 0;
            if (KIND == KIND_F) x.v = lxc_loadd(r.dtype, p);
            else if (KIND == KIND_I) x.iv = lxc_load(r.dtype, p).i;
            else x.uv = lxc_load(r.dtype, p).u;
            if (arg_better<KIND>(x, best, mx)) best = x;
        }
        /* warp, then block */
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
        for (int o = 16; o > 0; o >>= 1) {
            argv_ y;
            y.v = __shfl_xor_sync(0xffffffffu, best.v, o);
            y.iv = __shfl_xor_sync(0xffffffffu, best.iv, o);
            y.uv = __shfl_xor_sync(0xffffffffu, best.uv, o);
            y.idx = __shfl_xor_sync(0xffffffffu, best.idx, o);
            if (arg_better<KIND>(y, best, mx)) best = y;
        }
        __syncthreads();
        if (lane == 0) sh[warp] = best;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < nw; w++)
                if (arg_better<KIND>(sh[w], best, mx)) best = sh[w];
            out[row] = (uint32_t)(best.idx < 0 ? 0 : best.idx);
        }
    }
}

extern "C" int lxc_arg_reduce(lxc_stream s, uint32_t *out, const lxc_rows *r, int op) {
    if (r->rows <= 0) return 0;
    int t = row_threads(r->len);
    unsigned b = row_blocks(r->rows);
    int cls = lx_dtype_class((lx_dtype)r->dtype);
    if (cls == LX_CLASS_F || cls == LX_CLASS_D) k_arg_reduce<KIND_F><<<b, t, 0, s>>>(out, *r, op);
    else if (cls == LX_CLASS_I) k_arg_reduce<KIND_I><<<b, t, 0, s>>>(out, *r, op);
    else k_arg_reduce<KIND_U><<<b, t, 0, s>>>(out, *r, op);
    return lxc_launch_error();
}

/* ---- SOFTMAX ---- */

struct f_maxf_nan {
    __device__ float operator()(float a, float b) const {
        return a != a ? a : (b != b ? b : (a > b ? a : b));
    }
};

__global__ void k_softmax_f(char *out, lxc_rows r, bool log_out) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    int es = lxc_dsize(r.dtype);
    for (int64_t row = blockIdx.x; row < r.rows; row += gridDim.x) {
        const char *base = (const char *)r.in + lxc_offset_of(row, r.nd, r.shape, r.st) * es;
        char *y = out + lxc_offset_of(row, r.nd, r.shape, r.ost) * es;
        float m = -INFINITY;
        for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x)
            m = f_maxf_nan()(m, lxc_loadf(r.dtype, base + j * r.stride * es));
        m = lxc_block_reduce(m, f_maxf_nan(), shf, -INFINITY);
        double sum = 0;
        for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x)
            sum += (double)lx_ew_exp_f(lxc_loadf(r.dtype, base + j * r.stride * es) - m);
        sum = lxc_block_reduce(sum, f_add(), shd, 0.0);
        if (log_out) {
            float ls = (float)log(sum);
            for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x)
                lxc_storef(r.dtype, y + j * r.ostride * es,
                           (lxc_loadf(r.dtype, base + j * r.stride * es) - m) - ls);
        } else {
            float inv = (float)(1.0 / sum);
            for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x)
                lxc_storef(r.dtype, y + j * r.ostride * es,
                           lx_ew_exp_f(lxc_loadf(r.dtype, base + j * r.stride * es) - m) * inv);
        }
    }
}

__global__ void k_softmax_d(double *out, lxc_rows r, bool log_out) {
    __shared__ double sh[32];
    for (int64_t row = blockIdx.x; row < r.rows; row += gridDim.x) {
        const double *x = (const double *)r.in + lxc_offset_of(row, r.nd, r.shape, r.st);
        double *y = out + lxc_offset_of(row, r.nd, r.shape, r.ost);
        double m = -INFINITY;
        for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x) m = f_maxn()(m, x[j * r.stride]);
        m = lxc_block_reduce(m, f_maxn(), sh, (double)-INFINITY);
        double sum = 0;
        for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x) sum += exp(x[j * r.stride] - m);
        sum = lxc_block_reduce(sum, f_add(), sh, 0.0);
        double ls = log(sum), inv = 1.0 / sum;
        for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x)
            y[j * r.ostride] = log_out ? (x[j * r.stride] - m) - ls : exp(x[j * r.stride] - m) * inv;
    }
}

extern "C" int lxc_softmax(lxc_stream s, void *out, const lxc_rows *r, bool log_out) {
    if (r->rows <= 0 || r->len <= 0) return 0;
    int t = row_threads(r->len);
    unsigned b = row_blocks(r->rows);
    if (r->dtype == LX_FLOAT64) k_softmax_d<<<b, t, 0, s>>>((double *)out, *r, log_out);
    else k_softmax_f<<<b, t, 0, s>>>((char *)out, *r, log_out);
    return lxc_launch_error();
}

/* ---- RMS_NORM: y = x * rsqrt(mean(x^2) + eps) [rounded to the dtype] * w ---- */

__global__ void k_rms_norm(char *out, lxc_rows r, const char *w, int64_t ws, float eps) {
    __shared__ double sh[32];
    int es = lxc_dsize(r.dtype);
    bool f64 = r.dtype == LX_FLOAT64;
    for (int64_t row = blockIdx.x; row < r.rows; row += gridDim.x) {
        const char *base = (const char *)r.in + lxc_offset_of(row, r.nd, r.shape, r.st) * es;
        char *y = out + row * r.len * es;
        double ss = 0;
        for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x) {
            double v = lxc_loadd(r.dtype, base + j * r.stride * es);
            ss += v * v;
        }
        ss = lxc_block_reduce(ss, f_add(), sh, 0.0);
        double invd = 1.0 / sqrt(ss / (double)r.len + (double)eps);
        if (f64) {
            for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x) {
                double v = *(const double *)(base + j * r.stride * es) * invd;
                if (w) v *= *(const double *)(w + j * ws * es);
                *(double *)(y + j * es) = v;
            }
            continue;
        }
        float inv = (float)invd;
        for (int64_t j = threadIdx.x; j < r.len; j += blockDim.x) {
            float v = lxc_loadf(r.dtype, base + j * r.stride * es) * inv;
            if (w) v = lxc_roundf(r.dtype, v) * lxc_loadf(r.dtype, w + j * ws * es);
            lxc_storef(r.dtype, y + j * es, v);
        }
    }
}

extern "C" int lxc_rms_norm(lxc_stream s, void *out, const lxc_rows *r, const void *w, int64_t ws,
                            float eps) {
    if (r->rows <= 0 || r->len <= 0) return 0;
    k_rms_norm<<<row_blocks(r->rows), row_threads(r->len), 0, s>>>((char *)out, *r,
                                                                     (const char *)w, ws, eps);
    return lxc_launch_error();
}

/* ---- ROPE: one thread per output element ---- */

template <typename CT>
__global__ void k_rope(char *out, lxc_rope_args a, int64_t n) {
    int es = lxc_dsize(a.dtype);
    int64_t D = a.shape[a.nd - 1], L = a.shape[a.nd - 2];
    int64_t half = a.dims / 2;
    double offset = (double)a.offset;
    if (a.offset_ptr) offset = (double)lxc_load_index(a.offset_dtype, (const char *)a.offset_ptr);
    const char *x = (const char *)a.x;
    int64_t xs = a.st[a.nd - 1];
    LXC_GRID_LOOP(e, n) {
        int64_t j = e % D, row = e / D;
        const char *xr = x + lxc_offset_of(row, a.nd - 1, a.shape, a.st) * es;
        CT v;
        if (j >= 2 * half) {
            v = (CT)lxc_loadd(a.dtype, xr + j * xs * es);
        } else {
            int64_t i, ja, jb;
            bool second;
            if (a.traditional) {
                i = j / 2;
                ja = 2 * i;
                jb = 2 * i + 1;
                second = j & 1;
            } else {
                i = j < half ? j : j - half;
                ja = i;
                jb = i + half;
                second = j >= half;
            }
            double inv = a.freqs ? 1.0 / (double)a.freqs[i * a.freqs_stride]
                                 : exp(-(double)i * log((double)a.base) / (double)half);
            double pos = (offset + (double)(row % L)) * (double)a.scale;
            double ang = pos * inv;
            CT c = (CT)cos(ang), s = (CT)sin(ang);
            CT xa = (CT)lxc_loadd(a.dtype, xr + ja * xs * es);
            CT xb = (CT)lxc_loadd(a.dtype, xr + jb * xs * es);
            v = second ? xa * s + xb * c : xa * c - xb * s;
        }
        lxc_stored(a.dtype, out + e * es, (double)v);
    }
}

extern "C" int lxc_rope(lxc_stream s, void *out, const lxc_rope_args *a, int64_t n) {
    if (n <= 0) return 0;
    unsigned b = lxc_blocks(n, LXC_THREADS);
    if (a->dtype == LX_FLOAT64) k_rope<double><<<b, LXC_THREADS, 0, s>>>((char *)out, *a, n);
    else k_rope<float><<<b, LXC_THREADS, 0, s>>>((char *)out, *a, n);
    return lxc_launch_error();
}

/* ---- SDPA: one block per (batch, query head, query) ----
 * Keys in chunks of SDPA_CHUNK: scores by warps (one key per warp at a time, lanes over D)
 * into shared memory, then the online softmax update of (m, l) and of the accumulator, whose
 * Dv entries the threads share (SDPA_DV_PER each). The exp is the CPU's (lx_ew_exp_f, weights
 * below FLT_MIN set to zero as in cpu/sdpa.c). */

#define SDPA_THREADS 128
#define SDPA_CHUNK 128
#define SDPA_MAX_D 512
#define SDPA_DV_PER (SDPA_MAX_D / SDPA_THREADS)

__device__ __forceinline__ float sdpa_exp(float x) {
    float e = lx_ew_exp_f(x);
    return x < -87.336544f ? 0.0f : e;
}

__global__ void __launch_bounds__(SDPA_THREADS) k_sdpa(char *out, lxc_sdpa_args a) {
    __shared__ float qs[SDPA_MAX_D];
    __shared__ float sc[SDPA_CHUNK];
    __shared__ float shf[32];
    int es = lxc_dsize(a.dtype), mes = a.mask ? lxc_dsize(a.mask_dtype) : 0;
    int64_t G = a.Hq / a.Hkv;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = SDPA_THREADS / 32;
    for (int64_t rowi = blockIdx.x; rowi < a.B * a.Hq * a.Lq; rowi += gridDim.x) {
        int64_t i = rowi % a.Lq, t = rowi / a.Lq, hq = t % a.Hq, b = t / a.Hq, hkv = hq / G;
        const char *q = (const char *)a.q + (b * a.qs[0] + hq * a.qs[1] + i * a.qs[2]) * es;
        const char *kb = (const char *)a.k + (b * a.ks[0] + hkv * a.ks[1]) * es;
        const char *vb = (const char *)a.v + (b * a.vs[0] + hkv * a.vs[1]) * es;
        const char *mrow = a.mask ? (const char *)a.mask + (b * a.ms[0] + hq * a.ms[1] + i * a.ms[2]) * mes
                                  : NULL;
        __syncthreads(); /* the previous row's readers of qs and sc */
        for (int64_t d = threadIdx.x; d < a.D; d += SDPA_THREADS)
            qs[d] = lxc_loadf(a.dtype, q + d * a.qs[3] * es) * a.scale;
        int64_t je = a.Lk;
        if (a.causal) {
            je = i + a.Lk - a.Lq + 1;
            je = je < 0 ? 0 : (je > a.Lk ? a.Lk : je);
        }
        float m = -INFINITY, l = 0;
        float acc[SDPA_DV_PER];
#pragma unroll
        for (int k = 0; k < SDPA_DV_PER; k++) acc[k] = 0;
        bool nan_row = false;
        __syncthreads();
        for (int64_t j0 = 0; j0 < je; j0 += SDPA_CHUNK) {
            int64_t jn = je - j0 < SDPA_CHUNK ? je - j0 : SDPA_CHUNK;
            for (int64_t jj = warp; jj < jn; jj += nw) {
                const char *kr = kb + (j0 + jj) * a.ks[2] * es;
                float dot = 0;
                for (int64_t d = lane; d < a.D; d += 32) dot += qs[d] * lxc_loadf(a.dtype, kr + d * a.ks[3] * es);
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
                if (lane == 0) {
                    if (mrow) {
                        const char *mp = mrow + (j0 + jj) * a.ms[3] * mes;
                        if (a.mask_dtype == LX_BOOL) dot = *(const uint8_t *)mp ? dot : -INFINITY;
                        else dot += lxc_loadf(a.mask_dtype, mp);
                    }
                    sc[jj] = dot;
                }
            }
            __syncthreads();
            float cm = -INFINITY;
            for (int64_t jj = threadIdx.x; jj < jn; jj += SDPA_THREADS) cm = f_maxf_nan()(cm, sc[jj]);
            cm = lxc_block_reduce(cm, f_maxf_nan(), shf, -INFINITY);
            if (cm != cm) nan_row = true;
            if (cm == -INFINITY || nan_row) {
                __syncthreads();
                continue; /* nothing visible in this chunk */
            }
            float mn = cm > m ? cm : m;
            float alpha = sdpa_exp(m - mn); /* m = -inf: 0 */
            float psum = 0;
            for (int64_t jj = threadIdx.x; jj < jn; jj += SDPA_THREADS) {
                float p = sdpa_exp(sc[jj] - mn);
                sc[jj] = p; /* the weights, for the accumulators below */
                psum += p;
            }
            psum = lxc_block_reduce(psum, f_add(), shf, 0.0f); /* (synchronizes: sc is ready) */
            l = l * alpha + psum;
#pragma unroll
            for (int k = 0; k < SDPA_DV_PER; k++) {
                int64_t d = threadIdx.x + (int64_t)k * SDPA_THREADS;
                if (d >= a.Dv) break;
                float s = acc[k] * alpha;
                for (int64_t jj = 0; jj < jn; jj++)
                    s += sc[jj] * lxc_loadf(a.dtype, vb + ((j0 + jj) * a.vs[2] + d * a.vs[3]) * es);
                acc[k] = s;
            }
            m = mn;
            __syncthreads();
        }
        /* the sink joins the denominator */
        float scale_acc = 1.0f;
        if (a.sinks && !nan_row) {
            float sink = lxc_loadf(a.dtype, (const char *)a.sinks + hq * a.sinks_stride * es);
            float M = sink > m ? sink : m;
            float r = sdpa_exp(m - M);
            l = l * r + sdpa_exp(sink - M);
            scale_acc = r;
        }
        char *y = out + rowi * a.Dv * es;
#pragma unroll
        for (int k = 0; k < SDPA_DV_PER; k++) {
            int64_t d = threadIdx.x + (int64_t)k * SDPA_THREADS;
            if (d >= a.Dv) break;
            float v = nan_row ? NAN : (l > 0 ? acc[k] * scale_acc / l : 0.0f);
            lxc_storef(a.dtype, y + d * es, v);
        }
    }
}

extern "C" int lxc_sdpa(lxc_stream s, void *out, const lxc_sdpa_args *a) {
    int64_t rows = a->B * a->Hq * a->Lq;
    if (rows <= 0 || a->Dv <= 0) return 0;
    k_sdpa<<<row_blocks(rows), SDPA_THREADS, 0, s>>>((char *)out, *a);
    return lxc_launch_error();
}
