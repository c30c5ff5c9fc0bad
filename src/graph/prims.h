/*
 * prims.h -- the primitive table shared by the graph and every backend.
 *
 * Ops (src/ops) validate arguments and build nodes naming one primitive with its parameters;
 * backends implement each kernel primitive; nothing else crosses between them. The lists live
 * in the .def files so that each backend's table is generated from the same list.
 */
#ifndef LX_GRAPH_PRIMS_H
#define LX_GRAPH_PRIMS_H

#include <stdbool.h>
#include <stdint.h>

#include "graph/ew_ops.h" /* LX_UNARY_OPS, LX_BINARY_OPS */
#include "lx.h"

typedef enum {
    LX_PRIM_NONE = 0, /* a leaf with data, or a computed node */
#define LX_PRIM(name) LX_PRIM_##name,
#include "graph/prims_view.def"
    LX_PRIM_FIRST_KERNEL_,
    LX_PRIM_FIRST_KERNEL_M1_ = LX_PRIM_FIRST_KERNEL_ - 1,
#include "graph/prims_kernel.def"
#include "graph/prims_ops.def"
#undef LX_PRIM
    LX_PRIM_COUNT
} lx_prim;

static inline bool lx_prim_is_view(int p) { return p > LX_PRIM_NONE && p < LX_PRIM_FIRST_KERNEL_; }
const char *lx_prim_name(int p); /* graph/prim_info.c */

/* ---- view parameters ---- */
typedef struct { int32_t perm[LX_MAX_NDIM]; } lx_permute_params;
typedef struct { int32_t start[LX_MAX_NDIM]; int32_t step[LX_MAX_NDIM]; } lx_slice_params;
typedef struct { int64_t strides[LX_MAX_NDIM]; int64_t offset; } lx_as_strided_params;
typedef struct { int64_t byte_offset; } lx_part_params;

/* ---- kernel parameters ---- */
typedef struct { double value; } lx_full_params;
typedef struct { double start, step; } lx_arange_params;

/* UNARY / BINARY: op is an lx_unary_op / lx_binary_op (graph/ew_ops.h). */
typedef struct { int32_t op; } lx_unary_params;
typedef struct { int32_t op; } lx_binary_params;

typedef enum { LX_REDUCE_SUM, LX_REDUCE_PROD, LX_REDUCE_MAX, LX_REDUCE_MIN, LX_REDUCE_ALL,
               LX_REDUCE_ANY, LX_REDUCE_LOGSUMEXP } lx_reduce_op;
/* Reduces the listed axes (sorted, distinct) of the input; the node has the input's ndim with
 * those axes of size 1 (ops reshape for keepdims = false). The node's dtype may differ from
 * the input's: integers accumulate in 64 bits and wrap to the node's dtype (MLX's int32 sums),
 * float16/bfloat16/float32 accumulate in float32 blocks summed in float64, float64 in float64.
 * `scale` multiplies a SUM before it is stored (mean, var); 0 is read as 1. With `by_count`
 * the scale is 1 / (count - ddof), count the number of elements reduced into each output
 * (+inf when that is <= 0): a mean (ddof 0) or a variance's sum of squares. The kernel reads
 * only `scale`; by_count tells the shape rule (graph/prim_info.h) to recompute it for other
 * input shapes, where a plain sum keeps its scale. */
typedef struct {
    int32_t op;
    int32_t n_axes;
    int32_t axes[LX_MAX_NDIM];
    double scale;
    int32_t by_count;
    int32_t ddof;
} lx_reduce_params;

typedef enum { LX_ARG_MAX, LX_ARG_MIN } lx_arg_reduce_op;
/* The node has the input's ndim with `axis` of size 1; uint32 indices. */
typedef struct { int32_t op; int32_t axis; } lx_arg_reduce_params;

/* Softmax (or log-softmax) along `axis`; the node has the input's shape and dtype (a float). */
typedef struct { int32_t axis; bool log; } lx_softmax_params;
/* RMS_NORM over the last axis; x and w (1-D, optional) already have the node's dtype. */
typedef struct { float eps; } lx_norm_params;
/* MATMUL inputs: a [..., M, K], b [..., K, N] and optionally c [..., M, N], all of the node's
 * dtype and already broadcast to the node's batch dims (zero strides are fine). With params
 * the node is alpha * a @ b + beta * c (addmm); without (params_size 0) it is a @ b.
 * One exception to "the node's dtype": a float32 node may take b in float16 or bfloat16 (a
 * weight as stored; the result is a @ float32(b), the conversion being exact), so a decode
 * step reads the weight once instead of converting it into a float32 copy first. A backend
 * without that form gets it through the fallback (b converted, then one-dtype MATMUL). */
typedef struct { float alpha, beta; } lx_matmul_params;
static inline bool lx_matmul_mixed_ok(int a_dtype, int b_dtype) {
    return a_dtype == LX_FLOAT32 && (b_dtype == LX_BFLOAT16 || b_dtype == LX_FLOAT16);
}
/* Output: uint8/uint16/uint32 (width bytes); the node's shape is the key's leading dims
 * followed by the per-key shape. Bits follow MLX's threefry2x32 layout exactly. */
typedef struct { int32_t width; } lx_random_bits_params;

#endif
