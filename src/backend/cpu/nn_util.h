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

/* dst[i] = src[i * stride] for i < n, converted from dtype t (a floating dtype or bool). */
#define LX_NN_DEFINE_CONVERT(CT, SFX)                                                          \
    static inline void lx_nn_load_##SFX(CT *dst, const void *src, lx_dtype t, int64_t stride, \
                                        int64_t n) {                                          \
        switch (t) {                                                                          \
        case LX_FLOAT16: {                                                                    \
            const uint16_t *p = (const uint16_t *)src;                                        \
            for (int64_t i = 0; i < n; i++) dst[i] = (CT)lx_f16_to_f32(p[i * stride]);        \
            break;                                                                            \
        }                                                                                     \
        case LX_BFLOAT16: {                                                                   \
            const uint16_t *p = (const uint16_t *)src;                                        \
            for (int64_t i = 0; i < n; i++) dst[i] = (CT)lx_bf16_to_f32(p[i * stride]);       \
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
            for (int64_t i = 0; i < n; i++) p[i] = lx_f32_to_f16((float)src[i]);              \
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

LX_NN_DEFINE_CONVERT(float, f32)
LX_NN_DEFINE_CONVERT(double, f64)

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
