/*
 * dtype.c -- dtype sizes, names and MLX's type promotion table.
 */
#include "core/dtype.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

size_t lx_dtype_size(lx_dtype t) {
    switch (t) {
    case LX_BOOL: case LX_UINT8: case LX_INT8: return 1;
    case LX_UINT16: case LX_INT16: case LX_FLOAT16: case LX_BFLOAT16: return 2;
    case LX_UINT32: case LX_INT32: case LX_FLOAT32: return 4;
    case LX_UINT64: case LX_INT64: case LX_FLOAT64: return 8;
    default: return 0;
    }
}

const char *lx_dtype_name(lx_dtype t) {
    static const char *names[LX_DTYPE_COUNT] = {
        "bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
        "int32", "int64", "float16", "bfloat16", "float32", "float64"};
    return lx_dtype_valid((int)t) ? names[t] : "invalid";
}

bool lx_dtype_is_float(lx_dtype t) {
    return t == LX_FLOAT16 || t == LX_BFLOAT16 || t == LX_FLOAT32 || t == LX_FLOAT64;
}

bool lx_dtype_is_signed(lx_dtype t) {
    return (t >= LX_INT8 && t <= LX_INT64) || lx_dtype_is_float(t);
}

/* MLX's table (mlx/dtype.cpp), rows and columns in lx_dtype order. */
#define b LX_BOOL
#define u8 LX_UINT8
#define u16 LX_UINT16
#define u32 LX_UINT32
#define u64 LX_UINT64
#define i8 LX_INT8
#define i16 LX_INT16
#define i32 LX_INT32
#define i64 LX_INT64
#define f16 LX_FLOAT16
#define bf LX_BFLOAT16
#define f32 LX_FLOAT32
#define f64 LX_FLOAT64
static const unsigned char promotion[LX_DTYPE_COUNT][LX_DTYPE_COUNT] = {
    /*        b    u8   u16  u32  u64  i8   i16  i32  i64  f16  bf   f32  f64 */
    /* b  */ {b,   u8,  u16, u32, u64, i8,  i16, i32, i64, f16, bf,  f32, f64},
    /* u8 */ {u8,  u8,  u16, u32, u64, i16, i16, i32, i64, f16, bf,  f32, f64},
    /* u16*/ {u16, u16, u16, u32, u64, i32, i32, i32, i64, f16, bf,  f32, f64},
    /* u32*/ {u32, u32, u32, u32, u64, i64, i64, i64, i64, f16, bf,  f32, f64},
    /* u64*/ {u64, u64, u64, u64, u64, f32, f32, f32, f32, f16, bf,  f32, f64},
    /* i8 */ {i8,  i16, i32, i64, f32, i8,  i16, i32, i64, f16, bf,  f32, f64},
    /* i16*/ {i16, i16, i32, i64, f32, i16, i16, i32, i64, f16, bf,  f32, f64},
    /* i32*/ {i32, i32, i32, i64, f32, i32, i32, i32, i64, f16, bf,  f32, f64},
    /* i64*/ {i64, i64, i64, i64, f32, i64, i64, i64, i64, f16, bf,  f32, f64},
    /* f16*/ {f16, f16, f16, f16, f16, f16, f16, f16, f16, f16, f32, f32, f64},
    /* bf */ {bf,  bf,  bf,  bf,  bf,  bf,  bf,  bf,  bf,  f32, bf,  f32, f64},
    /* f32*/ {f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f64},
    /* f64*/ {f64, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64},
};
#undef b
#undef u8
#undef u16
#undef u32
#undef u64
#undef i8
#undef i16
#undef i32
#undef i64
#undef f16
#undef bf
#undef f32
#undef f64

lx_dtype lx_promote_types(lx_dtype a, lx_dtype b) {
    if (!lx_dtype_valid((int)a) || !lx_dtype_valid((int)b)) return LX_FLOAT32;
    return (lx_dtype)promotion[a][b];
}

double lx_clamp_f64(double v, double lo, double hi) {
    if (isnan(v)) return 0.0;
    return v < lo ? lo : (v > hi ? hi : v);
}

double lx_dtype_load(lx_dtype t, const void *p) {
    switch (t) {
#define X(E, T, S) \
    case E: { T v; memcpy(&v, p, sizeof v); return LX_TO_F64_##S(v); }
        LX_FOR_EACH_DTYPE(X)
#undef X
    default: return 0.0;
    }
}

void lx_dtype_store(lx_dtype t, void *p, double v) {
    switch (t) {
    case LX_BOOL: { bool b = v != 0.0; memcpy(p, &b, 1); break; }
#define INT_CASE(E, T, LO, HI) \
    case E: { T x = (T)lx_clamp_f64(v, (double)(LO), (double)(HI)); memcpy(p, &x, sizeof x); break; }
    INT_CASE(LX_UINT8, uint8_t, 0, UINT8_MAX)
    INT_CASE(LX_UINT16, uint16_t, 0, UINT16_MAX)
    INT_CASE(LX_UINT32, uint32_t, 0, UINT32_MAX)
    INT_CASE(LX_INT8, int8_t, INT8_MIN, INT8_MAX)
    INT_CASE(LX_INT16, int16_t, INT16_MIN, INT16_MAX)
    INT_CASE(LX_INT32, int32_t, INT32_MIN, INT32_MAX)
#undef INT_CASE
    /* 64-bit limits are not exactly representable in double: clamp below 2^63 / 2^64 */
    case LX_UINT64: { uint64_t x = (uint64_t)lx_clamp_f64(v, 0.0, 18446744073709549568.0); memcpy(p, &x, 8); break; }
    case LX_INT64: { int64_t x = (int64_t)lx_clamp_f64(v, -9223372036854775808.0, 9223372036854774784.0); memcpy(p, &x, 8); break; }
    case LX_FLOAT16: { lx_f16 h = lx_f32_to_f16((float)v); memcpy(p, &h, 2); break; }
    case LX_BFLOAT16: { lx_bf16 h = lx_f32_to_bf16((float)v); memcpy(p, &h, 2); break; }
    case LX_FLOAT32: { float f = (float)v; memcpy(p, &f, 4); break; }
    case LX_FLOAT64: memcpy(p, &v, 8); break;
    default: break;
    }
}
