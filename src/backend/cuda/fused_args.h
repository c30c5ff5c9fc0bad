/*
 * fused_args.h -- the one argument of a generated FUSED kernel (fused_cuda.c writes the
 * kernels, cuda_device.c fills this struct per launch). Plain C with fixed-size fields: the
 * host compiles it, and NVRTC compiles the same text (embedded at build time with the other
 * headers the kernels include), so both sides agree on the layout by construction.
 *
 * The kernel runs over n elements of the logical shape in row-major order (element i of every
 * output is at out[j] + i). Input k is read according to the kind it was compiled for
 * (LXF_CONTIG: at in[k] + i; LXF_SCALAR: in[k][0]; LXF_STRIDED: at in[k] + the dot product of
 * i's multi-index over shape[0 .. nd) with st[k]). Strides are in elements, shape is the
 * logical shape with size-1 dims dropped and dims every input walks as one merged.
 */
#ifndef LX_BACKEND_CUDA_FUSED_ARGS_H
#define LX_BACKEND_CUDA_FUSED_ARGS_H

#include <stdint.h>
#include <string.h>

#include "graph/fused.h"

typedef struct {
    int64_t n;                                /* elements of the logical shape */
    int32_t nd;                               /* dims of shape (1 .. LX_MAX_NDIM) */
    int32_t pad;
    int64_t shape[LX_MAX_NDIM];               /* collapsed logical shape */
    const void *in[LX_FUSED_MAX_IN];          /* element 0 of each input */
    void *out[LX_FUSED_MAX_OUT];              /* element 0 of each output */
    int64_t st[LX_FUSED_MAX_IN][LX_MAX_NDIM]; /* element strides over shape (strided inputs) */
} lxf_args;

/* The layout both sides must see: 8-byte fields and pointers, no padding (checked by the host
 * compiler and, in every generated kernel, by NVRTC). */
#define LXF_ARGS_BYTES                                                                        \
    (16 + 8 * (LX_MAX_NDIM + LX_FUSED_MAX_IN + LX_FUSED_MAX_OUT + LX_FUSED_MAX_IN * LX_MAX_NDIM))
#if defined(__cplusplus)
static_assert(sizeof(lxf_args) == LXF_ARGS_BYTES, "lxf_args: host and device layouts differ");
#else
_Static_assert(sizeof(lxf_args) == LXF_ARGS_BYTES, "lxf_args: host and device layouts differ");
#endif

/* A float64 from its bits (the generated code writes CONSTs as exact bits). */
#if defined(__CUDACC__)
static __device__ __forceinline__ double lxf_f64_from_bits(uint64_t u) {
#else /* the host (tests/test_cuda_fused_gen.c runs generated kernels on the CPU) */
static inline double lxf_f64_from_bits(uint64_t u) {
#endif
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

#endif
