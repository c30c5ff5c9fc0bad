/*
 * ew_ops.h -- the op lists of the elementwise primitives UNARY and BINARY (the `op` of
 * lx_unary_params / lx_binary_params, graph/prims.h).
 *
 * Apart from prims.h so that C code generated at run time (the CPU JIT, which includes
 * graph/elementwise_ops.h into a standalone file) sees the op numbers without the rest
 * of the library's headers: this file includes nothing but <stdint.h> and <stdbool.h>.
 *
 * Each list is the value ops followed by the predicates (bool output), so that a kernel can
 * expand either part on its own; the enums number the whole list in order.
 */
#ifndef LX_GRAPH_EW_OPS_H
#define LX_GRAPH_EW_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* Unary ops whose output has the input's dtype, then those with a bool output. */
#define LX_UNARY_VALUE_OPS(X) \
    X(NEG) X(ABS) X(SIGN) X(SQUARE) X(SQRT) X(RSQRT) X(RECIPROCAL) X(EXP) X(EXPM1) X(LOG) \
    X(LOG1P) X(LOG2) X(LOG10) X(SIN) X(COS) X(TAN) X(TANH) X(ERF) X(ERFINV) X(SIGMOID)   \
    X(SILU) X(RELU) X(GELU) X(GELU_APPROX) X(FLOOR) X(CEIL) X(ROUND)
#define LX_UNARY_PRED_OPS(X) X(LOGICAL_NOT) X(ISNAN) X(ISINF) X(ISFINITE)
#define LX_UNARY_OPS(X) LX_UNARY_VALUE_OPS(X) LX_UNARY_PRED_OPS(X)
typedef enum {
#define X(n) LX_UNARY_##n,
    LX_UNARY_OPS(X)
#undef X
    LX_UNARY_COUNT
} lx_unary_op;

/* Binary ops whose output has the inputs' dtype, then those with a bool output. */
#define LX_BINARY_VALUE_OPS(X) \
    X(ADD) X(SUB) X(MUL) X(DIV) X(POW) X(MAXIMUM) X(MINIMUM) X(FLOOR_DIVIDE) X(REMAINDER) \
    X(ARCTAN2)
#define LX_BINARY_PRED_OPS(X) \
    X(EQUAL) X(NOT_EQUAL) X(LESS) X(LESS_EQUAL) X(GREATER) X(GREATER_EQUAL) X(LOGICAL_AND) \
    X(LOGICAL_OR)
#define LX_BINARY_OPS(X) LX_BINARY_VALUE_OPS(X) LX_BINARY_PRED_OPS(X)
typedef enum {
#define X(n) LX_BINARY_##n,
    LX_BINARY_OPS(X)
#undef X
    LX_BINARY_COUNT
} lx_binary_op;

/* Whether an op's output is bool: the predicates close each list. The one statement of it,
 * read by the rules (graph/prim_info.c), the ops and the kernels (also CUDA device code). */
#if defined(__CUDACC__)
#define LX_EW_OPS_FN static inline __host__ __device__
#else
#define LX_EW_OPS_FN static inline
#endif
LX_EW_OPS_FN bool lx_unary_op_is_pred(int op) {
    return op >= LX_UNARY_LOGICAL_NOT && op < LX_UNARY_COUNT;
}
LX_EW_OPS_FN bool lx_binary_op_is_pred(int op) {
    return op >= LX_BINARY_EQUAL && op < LX_BINARY_COUNT;
}

#endif
