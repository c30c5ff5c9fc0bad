/*
 * prims_quant.h -- parameters of the quantization primitives (graph/prims_quant.def).
 *
 * MLX's affine format: a row of K values is split into K/group_size groups; each group has a
 * scale and a bias (in the dtype of the unquantized array) and its values are stored as
 * `bits`-bit unsigned integers q, w ~ scale * q + bias. The row's q values form one
 * little-endian bit stream (value j at bit j*bits), stored as K*bits/32 uint32 words, so for
 * bits 2, 4, 8 value j of a word sits at bit j*bits of that word.
 */
#ifndef LX_GRAPH_PRIMS_QUANT_H
#define LX_GRAPH_PRIMS_QUANT_H

#include <stdbool.h>
#include <stdint.h>

/* QUANTIZE: the output node is uint8 [total bytes]; wq at byte 0, scales at scales_offset and
 * biases at biases_offset (64-byte aligned), each row-contiguous. */
typedef struct {
    int32_t group_size;
    int32_t bits;
    int64_t scales_offset;
    int64_t biases_offset;
} lx_quantize_params;

/* DEQUANTIZE, QUANTIZED_MATMUL, GATHER_QMM. transpose: w is [.., N, K] quantized along K and
 * the product is x @ w^T; otherwise w is [.., K, N] quantized along N and the product x @ w. */
typedef struct {
    int32_t group_size;
    int32_t bits;
    int32_t transpose;
    int32_t flags; /* LX_QMM_* */
} lx_quant_params;

/* QUANTIZED_MATMUL and GATHER_MM: which operands are picked by an index array (inputs after
 * the operands, lhs first, uint32 or any integer dtype, of the node's batch shape, possibly
 * broadcast). An indexed operand is [count, rows, cols]; one without an index has the node's
 * ndim and broadcasts its batch dims against the node's. */
#define LX_QMM_LHS_INDEXED 1
#define LX_QMM_RHS_INDEXED 2

static inline bool lx_quant_bits_ok(int bits) {
    return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
}
static inline bool lx_quant_group_ok(int group_size) {
    return group_size == 32 || group_size == 64 || group_size == 128;
}

#endif
