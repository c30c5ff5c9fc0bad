/*
 * nvrtc_libc.h -- what lx's headers take from the C library, for NVRTC, which has no system
 * headers: embedded (embed_headers.cmake) under each name they include (stdint.h, stdbool.h,
 * stddef.h, stdio.h, string.h, math.h), so the first include defines it all. NVRTC itself
 * declares size_t, memcpy and CUDA's device math functions (expf, isnan, ...); this adds the
 * fixed-width integers (as glibc defines them on LP64, so device code sees the same types as
 * ew.cu compiled by nvcc), FILE (lx.h declares a function that takes one) and the two math.h
 * constants the definitions use, with glibc's values (INFINITY, and NAN = the positive quiet
 * NaN 0x7fc00000 that GCC's __builtin_nanf("") is).
 */
#ifndef LX_NVRTC_LIBC_H
#define LX_NVRTC_LIBC_H

typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
typedef long intptr_t;
typedef unsigned long uintptr_t;

typedef struct _IO_FILE FILE;

#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fc00000)

#endif
