/*
 * nn_util.h -- helpers of the nn kernels (layer_norm.c, rope.c, sdpa.c, conv.c): converting
 * strided runs of a floating dtype into a compute buffer and back, and strided addressing.
 *
 * The nn kernels compute in float32 for float16/bfloat16/float32 and in float64 for float64:
 * each kernel file holds one templated body instantiated for both compute types (CT), with
 * the helpers below named after the compute type (_f32 / _f64).
 *
 * Everything is static inline: this header is compiled into every ISA variant.
 */
#ifndef LX_BACKEND_CPU_NN_UTIL_H
#define LX_BACKEND_CPU_NN_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "core/node.h"

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define LX_NN_F16C 1
#endif

/* float16 bits -> float32 without branches (vectorisable): the exponent and mantissa bits
 * shifted into a float and scaled by 2^112 give normals and subnormals; Inf/NaN are patched. */
static inline float lx_nn_h2f(uint16_t h) {
    uint32_t em = (uint32_t)h & 0x7fffu;
    float f;
    uint32_t u = em << 13;
    memcpy(&f, &u, 4);
    f *= 0x1p112f;
    memcpy(&u, &f, 4);
    u = em >= 0x7c00u ? (0x7f800000u | (em << 13)) : u;
    u |= ((uint32_t)h & 0x8000u) << 16;
    memcpy(&f, &u, 4);
    return f;
}

/* dst[i] = src[i * stride] for i < n, converted from dtype t (a floating dtype or bool). */
#define LX_NN_DEFINE_CONVERT(CT, SFX)                                                          \
    static inline void lx_nn_load_##SFX(CT *dst, const void *src, lx_dtype t, int64_t stride, \
                                        int64_t n) {                                          \
        switch (t) {                                                                          \
        case LX_FLOAT16: {                                                                    \
            const uint16_t *p = (const uint16_t *)src;                                        \
            int64_t i = 0;                                                                    \
            if (stride == 1) {                                                                \
                LX_NN_F16C_LOAD_##SFX(dst, p, n, i)                                           \
                for (; i < n; i++) dst[i] = (CT)lx_nn_h2f(p[i]);                              \
            } else {                                                                          \
                for (; i < n; i++) dst[i] = (CT)lx_nn_h2f(p[i * stride]);                     \
            }                                                                                 \
            break;                                                                            \
        }                                                                                     \
        case LX_BFLOAT16: {                                                                   \
            const uint16_t *p = (const uint16_t *)src;                                        \
            if (stride == 1)                                                                  \
                for (int64_t i = 0; i < n; i++) dst[i] = (CT)lx_bf16_to_f32(p[i]);            \
            else                                                                              \
                for (int64_t i = 0; i < n; i++) dst[i] = (CT)lx_bf16_to_f32(p[i * stride]);   \
            break;                                                                            \
        }                                                                                     \
        case LX_FLOAT32: {                                                                    \
            const float *p = (const float *)src;                                              \
            if (stride == 1)                                                                  \
                for (int64_t i = 0; i < n; i++) dst[i] = (CT)p[i];                            \
            else                                                                              \
                for (int64_t i = 0; i < n; i++) dst[i] = (CT)p[i * stride];                   \
            break;                                                                            \
        }                                                                                     \
        case LX_FLOAT64: {                                                                    \
            const double *p = (const double *)src;                                            \
            for (int64_t i = 0; i < n; i++) dst[i] = (CT)p[i * stride];                       \
            break;                                                                            \
        }                                                                                     \
        case LX_BOOL: {                                                                       \
            const bool *p = (const bool *)src;                                                \
            for (int64_t i = 0; i < n; i++) dst[i] = p[i * stride] ? (CT)1 : (CT)0;           \
            break;                                                                            \
        }                                                                                     \
        default:                                                                              \
            for (int64_t i = 0; i < n; i++) dst[i] = (CT)0;                                   \
            break;                                                                            \
        }                                                                                     \
    }                                                                                         \
    /* dst[i] = src[i] for i < n, rounded to dtype t (contiguous destination). */             \
    static inline void lx_nn_store_##SFX(void *dst, lx_dtype t, const CT *src, int64_t n) {   \
        switch (t) {                                                                          \
        case LX_FLOAT16: {                                                                    \
            uint16_t *p = (uint16_t *)dst;                                                    \
            int64_t i = 0;                                                                    \
            LX_NN_F16C_STORE_##SFX(p, src, n, i)                                              \
            for (; i < n; i++) p[i] = lx_f32_to_f16((float)src[i]);                           \
            break;                                                                            \
        }                                                                                     \
        case LX_BFLOAT16: {                                                                   \
            uint16_t *p = (uint16_t *)dst;                                                    \
            for (int64_t i = 0; i < n; i++) p[i] = lx_f32_to_bf16((float)src[i]);             \
            break;                                                                            \
        }                                                                                     \
        case LX_FLOAT32: {                                                                    \
            float *p = (float *)dst;                                                          \
            for (int64_t i = 0; i < n; i++) p[i] = (float)src[i];                             \
            break;                                                                            \
        }                                                                                     \
        case LX_FLOAT64: {                                                                    \
            double *p = (double *)dst;                                                        \
            for (int64_t i = 0; i < n; i++) p[i] = (double)src[i];                            \
            break;                                                                            \
        }                                                                                     \
        default: break;                                                                       \
        }                                                                                     \
    }

/* F16C: eight float16 <-> float32 per instruction (x86-64-v3 and v4 variants). */
#ifdef LX_NN_F16C
#define LX_NN_F16C_LOAD_f32(dst, p, n, i)                                                     \
    for (; i + 8 <= n; i += 8)                                                               \
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + i))));
#define LX_NN_F16C_STORE_f32(p, src, n, i)                                                    \
    for (; i + 8 <= n; i += 8)                                                               \
        _mm_storeu_si128((__m128i *)(p + i),                                                 \
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#else
#define LX_NN_F16C_LOAD_f32(dst, p, n, i)
#define LX_NN_F16C_STORE_f32(p, src, n, i)
#endif
#define LX_NN_F16C_LOAD_f64(dst, p, n, i)
#define LX_NN_F16C_STORE_f64(p, src, n, i)

LX_NN_DEFINE_CONVERT(float, f32)
LX_NN_DEFINE_CONVERT(double, f64)

static inline double lx_nn_exp(double x) { return exp(x); }

/* GCC/Clang vector extensions for the hot loops (AVX registers on v3/v4, SSE registers on the
 * baseline); plain loops elsewhere. */
#if defined(__GNUC__)
#define LX_NN_VEC 1
#if defined(__AVX512F__)
#define LX_NN_VBYTES 64
#elif defined(__AVX__)
#define LX_NN_VBYTES 32
#else
#define LX_NN_VBYTES 16
#endif
typedef float lx_nn_vf32 __attribute__((vector_size(LX_NN_VBYTES)));
typedef double lx_nn_vf64 __attribute__((vector_size(LX_NN_VBYTES)));
typedef int32_t lx_nn_vi32 __attribute__((vector_size(LX_NN_VBYTES)));
typedef int64_t lx_nn_vi64 __attribute__((vector_size(LX_NN_VBYTES)));
typedef uint32_t lx_nn_vu32 __attribute__((vector_size(LX_NN_VBYTES)));

#endif

/* Element offset (from the node's first element) of the row-major index `index` over the
 * first nd dims of n. */
static inline int64_t lx_nn_offset(const lx_node *n, int nd, int64_t index) {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0 && index; d--) {
        int64_t dim = n->shape[d];
        off += (index % dim) * n->strides[d];
        index /= dim;
    }
    return off;
}

static inline const char *lx_nn_elem(const lx_node *n, int64_t offset) {
    return (const char *)lx_node_ptr(n) + offset * (int64_t)lx_dtype_size((lx_dtype)n->dtype);
}

/* The compute type of a dtype: float64 computes in double, everything else in float. */
static inline bool lx_nn_is_f64(lx_dtype t) { return t == LX_FLOAT64; }

#define LX_NN_OOM(op) lx_set_error(LX_E_OOM, "%s: out of host memory for scratch buffers", (op))

#endif
