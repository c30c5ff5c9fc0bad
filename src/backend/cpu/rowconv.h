/*
 * rowconv.h -- helpers shared by the row-wise CPU kernels (reductions, softmax, norms, matmul):
 * converting a strided run of any dtype to float32 (and back) and the blocked float32 sum whose
 * error bound the reductions document. (Their expf is elementwise_ops.h's lx_ew_exp_f.)
 *
 * Everything is static inline: this header is compiled into every ISA variant, and on the
 * x86-64-v3/v4 variants (F16C) float16 runs convert eight values per instruction.
 */
#ifndef LX_BACKEND_CPU_ROWCONV_H
#define LX_BACKEND_CPU_ROWCONV_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "graph/elementwise_ops.h" /* lx_ew_exp_f */
#include "core/dtype.h"

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define LX_ROW_F16C 1
#endif

/* Block length of the float32 sums: LX_ROW_LANES independent lanes each add at most
 * LX_ROW_BLOCK / LX_ROW_LANES values, the lanes are added pairwise and the block sums are added
 * in float64. The float32 error of a whole sum is therefore at most
 *     (LX_ROW_BLOCK / LX_ROW_LANES + log2(LX_ROW_LANES) + 1) * 2^-24 * sum |x_i|  =  37 u sum|x|
 * (plus n * 2^-53 sum|x| from the float64 additions and the final rounding), whatever n is. */
#define LX_ROW_LANES 16
#define LX_ROW_BLOCK 512

/* A value of any dtype as double (integers exactly up to 2^53). */
static inline double lx_row_get_f64(const void *p, lx_dtype t, int64_t i) {
    switch (t) {
    case LX_BOOL: return ((const bool *)p)[i] ? 1.0 : 0.0;
    case LX_UINT8: return ((const uint8_t *)p)[i];
    case LX_UINT16: return ((const uint16_t *)p)[i];
    case LX_UINT32: return ((const uint32_t *)p)[i];
    case LX_UINT64: return (double)((const uint64_t *)p)[i];
    case LX_INT8: return ((const int8_t *)p)[i];
    case LX_INT16: return ((const int16_t *)p)[i];
    case LX_INT32: return ((const int32_t *)p)[i];
    case LX_INT64: return (double)((const int64_t *)p)[i];
    case LX_FLOAT16: return lx_f16_to_f32(((const uint16_t *)p)[i]);
    case LX_BFLOAT16: return lx_bf16_to_f32(((const uint16_t *)p)[i]);
    case LX_FLOAT32: return ((const float *)p)[i];
    case LX_FLOAT64: return ((const double *)p)[i];
    default: return 0.0;
    }
}

/* Stores v (a double) as dtype t; integers saturate (NaN -> 0), as astype does. */
static inline void lx_row_put_f64(void *p, lx_dtype t, int64_t i, double v) {
    switch (t) {
    case LX_BOOL: ((bool *)p)[i] = v != 0.0; break;
    case LX_UINT8: ((uint8_t *)p)[i] = (uint8_t)lx_clamp_f64(v, 0, 255); break;
    case LX_UINT16: ((uint16_t *)p)[i] = (uint16_t)lx_clamp_f64(v, 0, 65535); break;
    case LX_UINT32: ((uint32_t *)p)[i] = (uint32_t)lx_clamp_f64(v, 0, 4294967295.0); break;
    case LX_UINT64:
        ((uint64_t *)p)[i] = (uint64_t)lx_clamp_f64(v, 0, 18446744073709549568.0);
        break;
    case LX_INT8: ((int8_t *)p)[i] = (int8_t)lx_clamp_f64(v, -128, 127); break;
    case LX_INT16: ((int16_t *)p)[i] = (int16_t)lx_clamp_f64(v, -32768, 32767); break;
    case LX_INT32:
        ((int32_t *)p)[i] = (int32_t)lx_clamp_f64(v, -2147483648.0, 2147483647.0);
        break;
    case LX_INT64:
        ((int64_t *)p)[i] =
            (int64_t)lx_clamp_f64(v, -9223372036854775808.0, 9223372036854774784.0);
        break;
    case LX_FLOAT16: ((uint16_t *)p)[i] = lx_f32_to_f16((float)v); break;
    case LX_BFLOAT16: ((uint16_t *)p)[i] = lx_f32_to_bf16((float)v); break;
    case LX_FLOAT32: ((float *)p)[i] = (float)v; break;
    case LX_FLOAT64: ((double *)p)[i] = v; break;
    default: break;
    }
}

/* n elements of dtype t at src (element stride `stride`, may be 0 or negative) -> dst. */
static inline void lx_row_load_f32(float *dst, const void *src, lx_dtype t, int64_t stride,
                                   int64_t n) {
    int64_t i = 0;
    switch (t) {
    case LX_FLOAT32: {
        const float *s = src;
        if (stride == 1) memcpy(dst, s, (size_t)n * sizeof(float));
        else for (i = 0; i < n; i++) dst[i] = s[i * stride];
        return;
    }
    case LX_FLOAT16: {
        const uint16_t *s = src;
        if (stride == 1) {
#ifdef LX_ROW_F16C
            for (; i + 8 <= n; i += 8)
                _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
#endif
            for (; i < n; i++) dst[i] = lx_f16_to_f32(s[i]);
        } else {
            for (; i < n; i++) dst[i] = lx_f16_to_f32(s[i * stride]);
        }
        return;
    }
    case LX_BFLOAT16: {
        const uint16_t *s = src;
        if (stride == 1) {
            for (; i < n; i++) {
                uint32_t u = (uint32_t)s[i] << 16;
                memcpy(dst + i, &u, 4);
            }
        } else {
            for (; i < n; i++) dst[i] = lx_bf16_to_f32(s[i * stride]);
        }
        return;
    }
    default:
        for (; i < n; i++) dst[i] = (float)lx_row_get_f64(src, t, i * stride);
        return;
    }
}

/* n floats -> dtype t at dst (element stride `stride`), rounding to nearest even. */
static inline void lx_row_store_f32(void *dst, lx_dtype t, int64_t stride, const float *src,
                                    int64_t n) {
    int64_t i = 0;
    switch (t) {
    case LX_FLOAT32: {
        float *d = dst;
        if (stride == 1) memcpy(d, src, (size_t)n * sizeof(float));
        else for (i = 0; i < n; i++) d[i * stride] = src[i];
        return;
    }
    case LX_FLOAT16: {
        uint16_t *d = dst;
        if (stride == 1) {
#ifdef LX_ROW_F16C
            for (; i + 8 <= n; i += 8)
                _mm_storeu_si128((__m128i *)(d + i),
                                 _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
            for (; i < n; i++) d[i] = lx_f32_to_f16(src[i]);
        } else {
            for (; i < n; i++) d[i * stride] = lx_f32_to_f16(src[i]);
        }
        return;
    }
    case LX_BFLOAT16: {
        uint16_t *d = dst;
        for (; i < n; i++) d[i * stride] = lx_f32_to_bf16(src[i]);
        return;
    }
    default:
        for (; i < n; i++) lx_row_put_f64(dst, t, i * stride, src[i]);
        return;
    }
}

/* Sum of n contiguous floats: LX_ROW_LANES lanes over blocks of LX_ROW_BLOCK, lanes added
 * pairwise, blocks added in double (error bound above). */
static inline double lx_row_sum_f32(const float *x, int64_t n) {
    double total = 0.0;
    for (int64_t b = 0; b < n; b += LX_ROW_BLOCK) {
        int64_t m = n - b < LX_ROW_BLOCK ? n - b : LX_ROW_BLOCK;
        const float *p = x + b;
        float acc[LX_ROW_LANES] = {0};
        int64_t j = 0;
        for (; j + LX_ROW_LANES <= m; j += LX_ROW_LANES)
            for (int k = 0; k < LX_ROW_LANES; k++) acc[k] += p[j + k];
        for (int k = 0; j + k < m; k++) acc[k] += p[j + k];
        for (int w = LX_ROW_LANES / 2; w > 0; w /= 2)
            for (int k = 0; k < w; k++) acc[k] += acc[k + w];
        total += acc[0];
    }
    return total;
}

/* Sum of squares of n contiguous floats, blocked as lx_row_sum_f32. */
static inline double lx_row_sumsq_f32(const float *x, int64_t n) {
    double total = 0.0;
    for (int64_t b = 0; b < n; b += LX_ROW_BLOCK) {
        int64_t m = n - b < LX_ROW_BLOCK ? n - b : LX_ROW_BLOCK;
        const float *p = x + b;
        float acc[LX_ROW_LANES] = {0};
        int64_t j = 0;
        for (; j + LX_ROW_LANES <= m; j += LX_ROW_LANES)
            for (int k = 0; k < LX_ROW_LANES; k++) acc[k] += p[j + k] * p[j + k];
        for (int k = 0; j + k < m; k++) acc[k] += p[j + k] * p[j + k];
        for (int w = LX_ROW_LANES / 2; w > 0; w /= 2)
            for (int k = 0; k < w; k++) acc[k] += acc[k + w];
        total += acc[0];
    }
    return total;
}

/* GCC/Clang vector extensions for the extrema: the compilers do not vectorize NaN-aware
 * select loops on their own. 8 floats per vector with AVX, else 4 (wider vectors without
 * AVX are split badly); only local variables, never parameters, so no vector ABI is
 * involved. */
#ifdef __AVX__
#define LX_ROW_VW 8
#else
#define LX_ROW_VW 4
#endif
typedef float lx_row_vf __attribute__((vector_size(4 * LX_ROW_VW)));
typedef int32_t lx_row_vi __attribute__((vector_size(4 * LX_ROW_VW)));

/* Maximum (is_min: minimum) of n >= 1 contiguous floats; NaN if any is NaN. */
static inline float lx_row_extremum_f32(const float *x, int64_t n, bool is_min) {
    enum { W = LX_ROW_VW };
    const float init = is_min ? INFINITY : -INFINITY;
    lx_row_vf a0, a1;
    lx_row_vi nan0, nan1;
    for (int k = 0; k < W; k++) {
        a0[k] = a1[k] = init;
        nan0[k] = nan1[k] = 0;
    }
    int64_t j = 0;
    for (; j + 2 * W <= n; j += 2 * W) {
        lx_row_vf v0, v1;
        memcpy(&v0, x + j, sizeof v0);
        memcpy(&v1, x + j + W, sizeof v1);
        lx_row_vi g0 = is_min ? v0 < a0 : v0 > a0, g1 = is_min ? v1 < a1 : v1 > a1;
        a0 = (lx_row_vf)(((lx_row_vi)v0 & g0) | ((lx_row_vi)a0 & ~g0));
        a1 = (lx_row_vf)(((lx_row_vi)v1 & g1) | ((lx_row_vi)a1 & ~g1));
        nan0 |= v0 != v0;
        nan1 |= v1 != v1;
    }
    float m = init;
    int any_nan = 0;
    for (int k = 0; k < W; k++) {
        m = is_min ? (a0[k] < m ? a0[k] : m) : (a0[k] > m ? a0[k] : m);
        m = is_min ? (a1[k] < m ? a1[k] : m) : (a1[k] > m ? a1[k] : m);
        any_nan |= nan0[k] | nan1[k];
    }
    for (int64_t r = n - j; r > 0; r--, j++) {
        float v = x[j];
        m = is_min ? (v < m ? v : m) : (v > m ? v : m);
        any_nan |= v != v;
    }
    return any_nan ? NAN : m;
}

static inline float lx_row_max_f32(const float *x, int64_t n) { return lx_row_extremum_f32(x, n, false); }
static inline float lx_row_min_f32(const float *x, int64_t n) { return lx_row_extremum_f32(x, n, true); }

#endif
