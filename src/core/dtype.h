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

static inline bool lx_dtype_valid(int t) { return t >= 0 && t < LX_DTYPE_COUNT; }
static inline bool lx_dtype_is_half(lx_dtype t) { return t == LX_FLOAT16 || t == LX_BFLOAT16; }
static inline bool lx_dtype_is_integer(lx_dtype t) { return t >= LX_UINT8 && t <= LX_INT64; }

static inline float lx_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t lx_bits_from_f32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float lx_bf16_to_f32(lx_bf16 h) { return lx_f32_from_bits((uint32_t)h << 16); }

/* Round to nearest even; NaN stays NaN (quiet), Inf stays Inf. */
static inline lx_bf16 lx_f32_to_bf16(float f) {
    uint32_t u = lx_bits_from_f32(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (lx_bf16)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (lx_bf16)(u >> 16);
}

static inline float lx_f16_to_f32(lx_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do { e++; man <<= 1; } while ((man & 0x400u) == 0);
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    return lx_f32_from_bits(u);
}

/* Round to nearest even; overflow goes to Inf, NaN stays NaN. */
static inline lx_f16 lx_f32_to_f16(float f) {
    uint32_t u = lx_bits_from_f32(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (lx_f16)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (lx_f16)(sign | 0x7c00u); /* rounds to >= 65520: Inf */
    if (a < 0x38800000u) { /* result is subnormal or zero */
        if (a < 0x33000000u) return (lx_f16)sign; /* below half the smallest subnormal */
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (lx_f16)(sign | r);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    r -= 0x38000000u; /* rebias exponent 127 -> 15 */
    return (lx_f16)(sign | (r >> 13));
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
