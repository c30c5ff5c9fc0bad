/*
 * values.h -- the value classes of the CPU kernels and the conversions between them and the
 * dtypes.
 *
 * Kernels compute in one of four classes: U (uint64_t: bool and unsigned integers),
 * I (int64_t: signed integers), F (float: float16, bfloat16, float32) and D (double:
 * float64). LX_LOAD_<s>(v) widens a stored value to its class; lx_cvt_<s>_<C>(v) converts a
 * class-C value to dtype <s>:
 *   - integer -> integer wraps modulo 2^bits (as numpy's astype);
 *   - float -> integer truncates toward zero after clamping to the destination's range; NaN
 *     gives 0 (the rule of lx_clamp_f64), so no conversion is undefined behaviour;
 *   - anything -> bool is (value != 0), so NaN is true; bools are stored as bytes 0 or 1 and
 *     read as (byte != 0), so a stray byte value is never undefined behaviour either;
 *   - -> float16 / bfloat16 rounds to nearest even exactly once: values that are not exact in
 *     float32 (from float64 or large 64-bit integers) are first rounded to float32 with round-
 *     to-odd, which makes the final rounding correct; NaN and Inf are kept.
 * LX_EW_FMA / LX_EW_FMAF spell out multiply-adds so that results do not depend on the
 * compiler's FP-contraction setting (see there).
 *
 * Self-contained: besides system headers it includes only core/dtype.h (itself only system
 * headers and lx.h), and calls nothing but static inline functions and libm, because the CPU
 * JIT compiles it (through elementwise_ops.h) into standalone code linked against libm alone.
 * Every helper is static inline (always inlined: LX_INLINE_ALWAYS): this header is also
 * compiled into each CPU variant.
 *
 * Compiled as CUDA (__CUDACC__: the CUDA module, backend/cuda/), every helper is also a
 * __device__ function (LX_HD), and in device code (__CUDA_ARCH__) LX_EW_FMA / LX_EW_FMAF are
 * the GPU's fused multiply-add, as in the CPU variants with FMA. Nothing changes for C.
 */
#ifndef LX_GRAPH_VALUES_H
#define LX_GRAPH_VALUES_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"

/* Plain static inline helpers that CUDA device code also calls (LX_INLINE_ALWAYS is already
 * __host__ __device__ there). */
#if defined(__CUDACC__)
#define LX_HD __host__ __device__
#else
#define LX_HD
#endif

/* ------------------------------------------------------------------------------------------ */
/* Value classes                                                                              */

#define LX_CLS_bool U
#define LX_CLS_u8 U
#define LX_CLS_u16 U
#define LX_CLS_u32 U
#define LX_CLS_u64 U
#define LX_CLS_i8 I
#define LX_CLS_i16 I
#define LX_CLS_i32 I
#define LX_CLS_i64 I
#define LX_CLS_f16 F
#define LX_CLS_bf16 F
#define LX_CLS_f32 F
#define LX_CLS_f64 D

#define LX_CT_U uint64_t
#define LX_CT_I int64_t
#define LX_CT_F float
#define LX_CT_D double

/* The C type a dtype is stored as (bool is read and written as a byte). */
#define LX_ST_bool uint8_t
#define LX_ST_u8 uint8_t
#define LX_ST_u16 uint16_t
#define LX_ST_u32 uint32_t
#define LX_ST_u64 uint64_t
#define LX_ST_i8 int8_t
#define LX_ST_i16 int16_t
#define LX_ST_i32 int32_t
#define LX_ST_i64 int64_t
#define LX_ST_f16 lx_f16
#define LX_ST_bf16 lx_bf16
#define LX_ST_f32 float
#define LX_ST_f64 double

/* 1 when the stored type is its class type, so kernels may compute in place in memory. */
#define LX_DIRECT_bool 0
#define LX_DIRECT_u8 0
#define LX_DIRECT_u16 0
#define LX_DIRECT_u32 0
#define LX_DIRECT_u64 1
#define LX_DIRECT_i8 0
#define LX_DIRECT_i16 0
#define LX_DIRECT_i32 0
#define LX_DIRECT_i64 1
#define LX_DIRECT_f16 0
#define LX_DIRECT_bf16 0
#define LX_DIRECT_f32 1
#define LX_DIRECT_f64 1
/* LX_DIRECT_<s> at run time: a value of dtype t is stored as its class value, so results need
 * no narrowing and contiguous data can be used in place. */
LX_INLINE_ALWAYS bool lx_dtype_is_direct(lx_dtype t) {
    switch (t) {
#define LX_DIRECT_CASE_(E, T, S) case E: return LX_DIRECT_##S;
        LX_FOR_EACH_DTYPE(LX_DIRECT_CASE_)
#undef LX_DIRECT_CASE_
    default: return false;
    }
}

#define LX_LOAD_bool(v) ((uint64_t)((v) != 0))
#define LX_LOAD_u8(v) ((uint64_t)(v))
#define LX_LOAD_u16(v) ((uint64_t)(v))
#define LX_LOAD_u32(v) ((uint64_t)(v))
#define LX_LOAD_u64(v) ((uint64_t)(v))
#define LX_LOAD_i8(v) ((int64_t)(v))
#define LX_LOAD_i16(v) ((int64_t)(v))
#define LX_LOAD_i32(v) ((int64_t)(v))
#define LX_LOAD_i64(v) ((int64_t)(v))
#define LX_LOAD_f16(v) lx_f16_to_f32(v)
#define LX_LOAD_bf16(v) lx_bf16_to_f32(v)
#define LX_LOAD_f32(v) (v)
#define LX_LOAD_f64(v) (v)

#define LX_ICAT2_(a, b) a##b
#define LX_ICAT_(a, b) LX_ICAT2_(a, b)
#define LX_ICAT3_(a, b, c) LX_ICAT_(LX_ICAT_(a, b), c)

/* ---- rounding helpers for float16 / bfloat16 destinations ---- */

/* float64 -> float32 rounding to odd: truncate toward zero, set the last bit if inexact. */
LX_INLINE_ALWAYS float lx_f64_to_f32_odd(double d) {
    float f = (float)d;
    if ((double)f == d || d != d) return f;
    if (fabs(d) > 3.4028234663852886e38) /* beyond FLT_MAX: still beyond any half range */
        return d > 0 ? 3.4028234663852886e38f : -3.4028234663852886e38f;
    uint32_t u = lx_bits_from_f32(f);
    if (fabs((double)f) > fabs(d)) u -= 1; /* rounded away from zero: step back */
    return lx_f32_from_bits(u | 1u);
}

/* uint64 -> float32 rounding to odd (exact below 2^24). */
LX_INLINE_ALWAYS float lx_u64_to_f32_odd(uint64_t m) {
    if (m < (1u << 24)) return (float)m;
#if defined(__CUDA_ARCH__)
    int len = 64 - __clzll((long long)m);
#else
    int len = 64 - __builtin_clzll(m);
#endif
    int sh = len - 24;
    uint64_t top = m >> sh;
    if (m & ((1ull << sh) - 1u)) top |= 1u;
    return ldexpf((float)top, sh);
}

LX_INLINE_ALWAYS float lx_i64_to_f32_odd(int64_t v) {
    uint64_t m = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
    float f = lx_u64_to_f32_odd(m);
    return v < 0 ? -f : f;
}

/* ---- conversions from each class to each dtype ---- */

/* lx_clamp_f64's rule (NaN -> 0, then clamp), inline: the library's copy is not linked into
 * generated code. */
LX_INLINE_ALWAYS double lx_cvt_clamp_(double v, double lo, double hi) {
    if (isnan(v)) return 0.0;
    return v < lo ? lo : (v > hi ? hi : v);
}

#define LX_DEF_CVT_INT_(S, T, LO, HI)                                                      \
    LX_HD static inline T lx_cvt_##S##_U(uint64_t v) { return (T)v; }                      \
    LX_HD static inline T lx_cvt_##S##_I(int64_t v) { return (T)v; }                       \
    LX_HD static inline T lx_cvt_##S##_D(double v) { return (T)lx_cvt_clamp_(v, LO, HI); }  \
    LX_HD static inline T lx_cvt_##S##_F(float v) { return (T)lx_cvt_clamp_((double)v, LO, HI); }

LX_DEF_CVT_INT_(u8, uint8_t, 0.0, 255.0)
LX_DEF_CVT_INT_(u16, uint16_t, 0.0, 65535.0)
LX_DEF_CVT_INT_(u32, uint32_t, 0.0, 4294967295.0)
LX_DEF_CVT_INT_(u64, uint64_t, 0.0, 18446744073709549568.0) /* largest double < 2^64 */
LX_DEF_CVT_INT_(i8, int8_t, -128.0, 127.0)
LX_DEF_CVT_INT_(i16, int16_t, -32768.0, 32767.0)
LX_DEF_CVT_INT_(i32, int32_t, -2147483648.0, 2147483647.0)
LX_DEF_CVT_INT_(i64, int64_t, -9223372036854775808.0, 9223372036854774784.0) /* < 2^63 */
#undef LX_DEF_CVT_INT_

LX_INLINE_ALWAYS uint8_t lx_cvt_bool_U(uint64_t v) { return v != 0; }
LX_INLINE_ALWAYS uint8_t lx_cvt_bool_I(int64_t v) { return v != 0; }
LX_INLINE_ALWAYS uint8_t lx_cvt_bool_F(float v) { return v != 0; }
LX_INLINE_ALWAYS uint8_t lx_cvt_bool_D(double v) { return v != 0; }

LX_INLINE_ALWAYS lx_f16 lx_cvt_f16_U(uint64_t v) { return lx_f32_to_f16(lx_u64_to_f32_odd(v)); }
LX_INLINE_ALWAYS lx_f16 lx_cvt_f16_I(int64_t v) { return lx_f32_to_f16(lx_i64_to_f32_odd(v)); }
LX_INLINE_ALWAYS lx_f16 lx_cvt_f16_F(float v) { return lx_f32_to_f16(v); }
LX_INLINE_ALWAYS lx_f16 lx_cvt_f16_D(double v) { return lx_f32_to_f16(lx_f64_to_f32_odd(v)); }

LX_INLINE_ALWAYS lx_bf16 lx_cvt_bf16_U(uint64_t v) { return lx_f32_to_bf16(lx_u64_to_f32_odd(v)); }
LX_INLINE_ALWAYS lx_bf16 lx_cvt_bf16_I(int64_t v) { return lx_f32_to_bf16(lx_i64_to_f32_odd(v)); }
LX_INLINE_ALWAYS lx_bf16 lx_cvt_bf16_F(float v) { return lx_f32_to_bf16(v); }
LX_INLINE_ALWAYS lx_bf16 lx_cvt_bf16_D(double v) { return lx_f32_to_bf16(lx_f64_to_f32_odd(v)); }

LX_INLINE_ALWAYS float lx_cvt_f32_U(uint64_t v) { return (float)v; }
LX_INLINE_ALWAYS float lx_cvt_f32_I(int64_t v) { return (float)v; }
LX_INLINE_ALWAYS float lx_cvt_f32_F(float v) { return v; }
LX_INLINE_ALWAYS float lx_cvt_f32_D(double v) { return (float)v; }

/* From a U or I register whose dtype has at most 32 bits (its value fits): the generated code
 * converts those through 32-bit integers, which vectorize. */
LX_INLINE_ALWAYS float lx_cvt_f32_U32(uint32_t v) { return (float)v; }
LX_INLINE_ALWAYS float lx_cvt_f32_I32(int32_t v) { return (float)v; }
LX_INLINE_ALWAYS double lx_cvt_f64_U32(uint32_t v) { return (double)v; }
LX_INLINE_ALWAYS double lx_cvt_f64_I32(int32_t v) { return (double)v; }

LX_INLINE_ALWAYS double lx_cvt_f64_U(uint64_t v) { return (double)v; }
LX_INLINE_ALWAYS double lx_cvt_f64_I(int64_t v) { return (double)v; }
LX_INLINE_ALWAYS double lx_cvt_f64_F(float v) { return (double)v; }
LX_INLINE_ALWAYS double lx_cvt_f64_D(double v) { return v; }

/* A float narrowed to float16 / bfloat16 and widened back (what storing and reloading does),
 * without leaving float: the same bits as LX_LOAD_<s>(lx_cvt_<s>_F(v)), in fewer operations.
 * float16: the rounding of lx_f32_to_f16 (normal: add and clear the 13 low bits; subnormal:
 * round |v| to the 2^-24 grid with |v| + 0.5 - 0.5; from 65520 up: Inf; NaN: quiet, payload
 * cut to 10 bits). */
LX_INLINE_ALWAYS float lx_round_f16_F(float v) {
    uint32_t u = lx_bits_from_f32(v), sign = u & 0x80000000u, a = u & 0x7fffffffu;
    uint32_t normal = (a + 0xfffu + ((a >> 13) & 1u)) & 0xffffe000u;
    uint32_t small = lx_bits_from_f32((lx_f32_from_bits(a) + 0.5f) - 0.5f);
    uint32_t nan = 0x7fc00000u | (a & 0x007fe000u);
    uint32_t is_nan = lx_mask_u32(a > 0x7f800000u);
    uint32_t is_inf = lx_mask_u32(a >= 0x477ff000u) & ~is_nan;
    uint32_t is_small = lx_mask_u32(a < 0x38800000u);
    return lx_f32_from_bits(sign | (nan & is_nan) | (0x7f800000u & is_inf) | (small & is_small) |
                            (normal & ~(is_nan | is_inf | is_small)));
}
/* bfloat16: round to nearest even on the high 16 bits; NaN quiet, payload cut. The NaN case is
 * a float compare and one select before the shared mask (GCC makes a compare and a blend of
 * it): with the integer NaN test and and/andnot/or selects, GELU x10 in bfloat16 compiled ran
 * ~18% slower, the roundings being most of its work beside erf. */
LX_INLINE_ALWAYS float lx_round_bf16_F(float v) {
    uint32_t u = lx_bits_from_f32(v);
    uint32_t t = v != v ? u | 0x00400000u : u + 0x7fffu + ((u >> 16) & 1u);
    return lx_f32_from_bits(t & 0xffff0000u);
}

/* lx_round_f16_F over n floats in place; with F16C, eight at a time by the hardware
 * conversions, which round the same way (to nearest even, NaN quieted with its payload cut). */
#if defined(__F16C__) && defined(__AVX__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif
static inline void lx_round_f16_n(float *x, int64_t n) {
    int64_t nv = 0; /* the vector part's end, computed first: with the loop below written as
                       a continuation of the vector one, GCC 12 warned of an impossible
                       2^62-iteration tail in the JIT's constant-size calls */
#if defined(__F16C__) && defined(__AVX__) && !defined(__CUDACC__)
    nv = n - n % 8;
    for (int64_t i = 0; i < nv; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                                                _MM_FROUND_TO_NEAREST_INT)));
#endif
    for (int64_t i = nv; i < n; i++) x[i] = lx_round_f16_F(x[i]);
}

/* The value class of a dtype (0 U, 1 I, 2 F, 3 D). */
enum { LX_CLASS_U = 0, LX_CLASS_I, LX_CLASS_F, LX_CLASS_D };
LX_INLINE_ALWAYS int lx_dtype_class(lx_dtype t) {
    switch (t) {
    case LX_INT8: case LX_INT16: case LX_INT32: case LX_INT64: return LX_CLASS_I;
    case LX_FLOAT16: case LX_BFLOAT16: case LX_FLOAT32: return LX_CLASS_F;
    case LX_FLOAT64: return LX_CLASS_D;
    default: return LX_CLASS_U;
    }
}

/* Elements per chunk when a kernel widens values into a stack buffer. */
#define LX_CHUNK 256

/* ---- a*b + c with the same bits whatever the compiler's contraction setting ----
 * Rounded once (fused) where the variant has FMA, which is what -ffp-contract=fast made of the
 * plain expression in the v3/v4 builds, else rounded twice, which is what the generic and v2
 * builds computed. Formulas spell their multiply-adds this way, so the files compiled with
 * -ffp-contract=off (CMakeLists.txt) and the JIT's generated code (also compiled with it off)
 * give the bits they gave before. */
#if defined(__CUDA_ARCH__)
#define LX_EW_FMAF(a, b, c) __fmaf_rn(a, b, c)
#define LX_EW_FMA(a, b, c) __fma_rn(a, b, c)
#elif defined(__FMA__)
#define LX_EW_FMAF(a, b, c) __builtin_fmaf(a, b, c)
#define LX_EW_FMA(a, b, c) __builtin_fma(a, b, c)
#else
#define LX_EW_FMAF(a, b, c) ((a) * (b) + (c))
#define LX_EW_FMA(a, b, c) ((a) * (b) + (c))
#endif

#endif
