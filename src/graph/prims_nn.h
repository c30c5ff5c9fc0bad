/*
 * prims_nn.h -- parameters of the nn primitives (prims_nn.def): layer/group norm, rope,
 * scaled dot-product attention and convolution. Ops zero the structs (memset) before filling
 * them so compile can compare parameters bytewise; flags are int32 to leave no padding.
 */
#ifndef LX_GRAPH_PRIMS_NN_H
#define LX_GRAPH_PRIMS_NN_H

#include <stdint.h>

/* LAYER_NORM: normalises the last axis; w and b (when present) are [D] of the node's dtype. */
typedef struct {
    float eps;
    int32_t has_w, has_b;
} lx_layer_norm_params;

/* GROUP_NORM: x [N, ..., C] row-contiguous; for each n and group g the statistics run over
 * every position and the C/groups consecutive channels g*C/groups ... (PyTorch's grouping,
 * MLX's GroupNorm with pytorch_compatible=True); w, b [C]. */
typedef struct {
    float eps;
    int32_t groups;
    int32_t has_w, has_b;
} lx_group_norm_params;

/* ROPE: positions along axis -2 (offset + index); the first `dims` features of the last axis
 * are rotated. Angle of pair i at position p: scale * p * inv_freq_i, with inv_freq_i =
 * base^(-2i/dims), or 1/freqs[i] when has_freqs (input 1). When has_offset the offset is the
 * last input (one element of an integer dtype; `offset` is then 0), so a compiled trace takes
 * it as an input instead of baking it in. */
typedef struct {
    int32_t dims;
    int32_t traditional;
    int32_t has_freqs;
    int32_t offset;
    float base;
    float scale;
    int32_t has_offset;
} lx_rope_params;

/* SDPA: q [B,Hq,Lq,D], k [B,Hkv,Lk,D], v [B,Hkv,Lk,Dv] of the node's dtype; mask (bool or a
 * float dtype) broadcast to [B,Hq,Lq,Lk]; sinks [Hq] of the node's dtype. Causal: query i sees keys
 * j <= i + Lk - Lq. A row that sees no key (and has no sink) is zero. */
typedef struct {
    float scale;
    int32_t causal;
    int32_t has_mask;
    int32_t has_sinks;
} lx_sdpa_params;

/* CONV: channels-last convolution over nsp (1 or 2) spatial dims, MLX's conv_general: the
 * input is dilated by idil (zeros between elements), padded by pad_lo/pad_hi, correlated with
 * the kernel dilated by kdil (flipped when flip) at stride. */
typedef struct {
    int32_t nsp;
    int32_t groups;
    int32_t flip;
    int32_t stride[2];
    int32_t pad_lo[2];
    int32_t pad_hi[2];
    int32_t kdil[2];
    int32_t idil[2];
} lx_conv_params;

#endif
