/*
 * fused.h -- the FUSED primitive's parameters: a small device-independent program that computes
 * a group of elementwise nodes (UNARY, BINARY, WHERE, COPY-as-astype) of one output shape in a
 * single pass. Compile (eval/compile.c) writes it; every backend runs it: the CPU backend
 * interprets it over tiles held in L1 (cpu/fused.c); a CUDA backend can turn it into the source
 * of one generated kernel (one thread per element, one local variable per register).
 *
 * Layout of the params bytes: an lx_fused_header, then n_instr lx_fused_instr. Every field is
 * plain data (no pointers), zero-padded, so equal programs compare equal with memcmp.
 *
 * Semantics. The program runs once for every element position p of the logical shape
 * (header.ndim, header.shape), in instruction order, on registers that each hold one value of a
 * known dtype. Input k is the node's input k, broadcast right-aligned to the logical shape
 * (a missing or size-1 dimension repeats, as numpy): LOAD reads its element at p.
 *   LOAD   dst <- input[a] at p                       dtype = the input's dtype
 *   CONST  dst <- imm converted to dtype               (as the FULL kernel converts its value)
 *   UNARY  dst <- unary op `sub` of register a          a has dtype adtype; dtype is the result
 *   BINARY dst <- binary op `sub` of registers a, b     both of dtype adtype
 *   WHERE  dst <- a ? b : c                             a bool; b, c and dst of dtype
 *   CAST   dst <- register a (dtype adtype) converted to dtype (as the COPY kernel converts)
 *   STORE  output[b] at p <- register a                 dtype = the output's dtype
 * Every result is exactly the value the unfused node would have stored: an instruction of a
 * float16/bfloat16 (or narrow integer) dtype rounds (wraps) its result to that dtype, so a
 * chain of fused ops gives the same bits as the chain of separate kernels.
 * Registers are reused (allocated by liveness), except that a CONST's register is never
 * written by another instruction, so a backend may compute CONSTs once per launch. An
 * instruction may write one of its own operand registers. All STOREs come after every other
 * instruction, so an output may share its buffer with a same-shaped input (donation).
 *
 * Outputs. With n_out == 1 the node is the output itself (the logical shape and
 * out_dtype[0]). With n_out > 1 the node is a uint8 byte buffer of the outputs' total size and
 * output j lives at byte out_offset[j] (64-byte aligned), row-contiguous with the logical shape
 * and out_dtype[j]; PART views (lx_part_params) hand the outputs out.
 *
 * Shape rule (shapeless compile): the logical shape is the broadcast of the inputs' shapes and
 * of min_ndim ones (the rank that constants contributed).
 */
#ifndef LX_GRAPH_FUSED_H
#define LX_GRAPH_FUSED_H

#include <stdint.h>

#include "lx.h"

#define LX_FUSED_VERSION 1u
#define LX_FUSED_MAX_IN 23     /* inputs (MLX: fewer than 24 arrays) */
#define LX_FUSED_MAX_OUT 8
#define LX_FUSED_MAX_INSTR 250 /* registers are uint8 */

typedef enum {
    LX_FOP_LOAD = 0,
    LX_FOP_CONST,
    LX_FOP_UNARY,
    LX_FOP_BINARY,
    LX_FOP_WHERE,
    LX_FOP_CAST,
    LX_FOP_STORE,
    LX_FOP_COUNT
} lx_fused_op;

typedef struct {
    uint8_t op;     /* lx_fused_op */
    uint8_t dtype;  /* lx_dtype of the result (STORE: of the output) */
    uint8_t adtype; /* lx_dtype of operand a (UNARY, BINARY, CAST) */
    uint8_t dst;    /* result register */
    uint8_t a, b, c; /* operand registers; LOAD: a = input index; STORE: a = register,
                        b = output index */
    uint8_t pad0;
    int32_t sub;    /* lx_unary_op (UNARY) or lx_binary_op (BINARY) */
    int32_t pad1;
    double imm;     /* CONST: the value */
} lx_fused_instr;

typedef struct {
    uint32_t version; /* LX_FUSED_VERSION */
    uint16_t n_in;    /* node inputs (LOAD a < n_in) */
    uint16_t n_out;   /* 1 .. LX_FUSED_MAX_OUT */
    uint16_t n_instr;
    uint16_t n_regs;  /* registers used (indices < n_regs) */
    uint8_t ndim;     /* logical shape */
    uint8_t min_ndim; /* shapeless rule: rank contributed by constants */
    uint8_t pad[6];
    int32_t shape[LX_MAX_NDIM];
    uint8_t out_dtype[LX_FUSED_MAX_OUT];
    int64_t out_offset[LX_FUSED_MAX_OUT]; /* bytes; all 0 when n_out == 1 */
} lx_fused_header;

static inline const lx_fused_instr *lx_fused_code(const lx_fused_header *h) {
    return (const lx_fused_instr *)(const void *)(h + 1);
}
static inline uint32_t lx_fused_params_size(int n_instr) {
    return (uint32_t)(sizeof(lx_fused_header) + (size_t)n_instr * sizeof(lx_fused_instr));
}
/* Byte offset of the next output after one of `bytes` bytes at `off`: 64-byte aligned. */
static inline int64_t lx_fused_align(int64_t off) { return (off + 63) & ~(int64_t)63; }

#endif
