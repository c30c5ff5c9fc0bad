/*
 * dtype.h -- dtype table, MLX type promotion and half-precision conversions.
 *
 * LX_FOR_EACH_DTYPE(X) is the one list every dtype-generic kernel expands, so a kernel is
 * written once and instantiated per dtype: X(LX_ENUM, c_type, short_name).
 * float16/bfloat16 are stored as uint16_t bit patterns and computed in float32.
 */
#ifndef LX_CORE_DTYPE_H
#define LX_CORE_DTYPE_H

#include <stdint.h>
#include <string.h>

#include "lx.h"

typedef uint16_t lx_f16; /* IEEE binary16 bits */
typedef uint16_t lx_bf16; /* bfloat16 bits */

#define LX_FOR_EACH_DTYPE(X)         \
    X(LX_BOOL, bool, bool)           \
    X(LX_UINT8, uint8_t, u8)         \
    X(LX_UINT16, uint16_t, u16)      \
    X(LX_UINT32, uint32_t, u32)      \
    X(LX_UINT64, uint64_t, u64)      \
    X(LX_INT8, int8_t, i8)           \
    X(LX_INT16, int16_t, i16)        \
    X(LX_INT32, int32_t, i32)        \
    X(LX_INT64, int64_t, i64)        \
    X(LX_FLOAT16, lx_f16, f16)       \
    X(LX_BFLOAT16, lx_bf16, bf16)    \
    X(LX_FLOAT32, float, f32)        \
    X(LX_FLOAT64, double, f64)

/* Value helpers that kernels call per element: always inlined, since a call left in a loop
 * keeps it from vectorizing (GCC stops inlining plain static inline functions in the JIT's
 * large generated functions). */
#if defined(__CUDACC__)
/* CUDA (the device module, backend/cuda/): the same helpers on the host and in kernels */
#define LX_INLINE_ALWAYS static inline __host__ __device__ __attribute__((always_inline))
#elif defined(__GNUC__)
#define LX_INLINE_ALWAYS static inline __attribute__((always_inline))
#else
#define LX_INLINE_ALWAYS static inline
#endif

static inline bool lx_dtype_valid(int t) { return t >= 0 && t < LX_DTYPE_COUNT; }
static inline bool lx_dtype_is_half(lx_dtype t) { return t == LX_FLOAT16 || t == LX_BFLOAT16; }
static inline bool lx_dtype_is_integer(lx_dtype t) { return t >= LX_UINT8 && t <= LX_INT64; }

LX_INLINE_ALWAYS float lx_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
LX_INLINE_ALWAYS uint32_t lx_bits_from_f32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

LX_INLINE_ALWAYS float lx_bf16_to_f32(lx_bf16 h) { return lx_f32_from_bits((uint32_t)h << 16); }

/* The conversions below are branch-free (bit masks in place of ifs) so that loops over them
 * vectorize: every CPU kernel and the JIT's code convert float16/bfloat16 through them. */
LX_INLINE_ALWAYS uint32_t lx_mask_u32(int c) { return 0u - (uint32_t)(c != 0); }

/* Round to nearest even; NaN stays NaN (quiet), Inf stays Inf. */
LX_INLINE_ALWAYS lx_bf16 lx_f32_to_bf16(float f) {
    uint32_t u = lx_bits_from_f32(f);
    uint32_t nan = lx_mask_u32((u & 0x7fffffffu) > 0x7f800000u);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (lx_bf16)((((u >> 16) | 0x40u) & nan) | (rounded & ~nan));
}

/* Exact. A subnormal's value is its mantissa times 2^-24, which float arithmetic gives exactly
 * (the mantissa has 10 bits). */
LX_INLINE_ALWAYS float lx_f16_to_f32(lx_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t normal = sign | ((exp + 112u) << 23) | (man << 13);
    uint32_t special = sign | 0x7f800000u | (man << 13); /* Inf, NaN */
    uint32_t small = sign | lx_bits_from_f32((float)man * 0x1p-24f);
    uint32_t is_special = lx_mask_u32(exp == 0x1fu), is_small = lx_mask_u32(exp == 0u);
    return lx_f32_from_bits((special & is_special) | (small & is_small) |
                            (normal & ~(is_special | is_small)));
}

/* Round to nearest even; overflow goes to Inf, NaN stays NaN (quiet, payload truncated).
 * Results in float16's subnormal range come from |f| + 0.5 in float: its ulp there is 2^-24,
 * float16's subnormal spacing, so the addition rounds |f| to that grid, ties to even, and the
 * count of 2^-24 steps is the float16 bit pattern (1024 becomes the smallest normal). */
LX_INLINE_ALWAYS lx_f16 lx_f32_to_f16(float f) {
    uint32_t u = lx_bits_from_f32(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    uint32_t nan = sign | 0x7e00u | ((a >> 13) & 0x3ffu);
    uint32_t inf = sign | 0x7c00u;
    uint32_t small = sign | (lx_bits_from_f32(lx_f32_from_bits(a) + 0.5f) - 0x3f000000u);
    uint32_t normal = sign | ((a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13);
    uint32_t is_nan = lx_mask_u32(a > 0x7f800000u);
    uint32_t is_inf = lx_mask_u32(a >= 0x477ff000u) & ~is_nan; /* rounds to >= 65520 */
    uint32_t is_small = lx_mask_u32(a < 0x38800000u);
    return (lx_f16)((nan & is_nan) | (inf & is_inf) | (small & is_small) |
                    (normal & ~(is_nan | is_inf | is_small)));
}

/* Value conversions used by generic kernels: every dtype goes through double or float. */
#define LX_TO_F64_bool(v) ((double)(v))
#define LX_TO_F64_u8(v) ((double)(v))
#define LX_TO_F64_u16(v) ((double)(v))
#define LX_TO_F64_u32(v) ((double)(v))
#define LX_TO_F64_u64(v) ((double)(v))
#define LX_TO_F64_i8(v) ((double)(v))
#define LX_TO_F64_i16(v) ((double)(v))
#define LX_TO_F64_i32(v) ((double)(v))
#define LX_TO_F64_i64(v) ((double)(v))
#define LX_TO_F64_f16(v) ((double)lx_f16_to_f32(v))
#define LX_TO_F64_bf16(v) ((double)lx_bf16_to_f32(v))
#define LX_TO_F64_f32(v) ((double)(v))
#define LX_TO_F64_f64(v) (v)

/* Saturating-free C conversion from double for the integer types is UB when out of range;
 * lx_f64_to_<int> clamp first (NaN -> 0) so every conversion is defined. */
double lx_clamp_f64(double v, double lo, double hi);
/* One element of dtype at p as a double. */
double lx_dtype_load(lx_dtype t, const void *p);
/* Stores v as one element of dtype at p (rounded to nearest even for floats; clamped for
 * integers, NaN -> 0; bool: v != 0). */
void lx_dtype_store(lx_dtype t, void *p, double v);

#endif
