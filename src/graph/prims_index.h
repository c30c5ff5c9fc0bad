/*
 * prims_index.h -- parameters of the indexing and data-movement primitives
 * (graph/prims_index.def), and which of them may update an input in place.
 *
 * Run-time index rules, the same for every backend: a negative index i along an axis of size d
 * means i + d (as MLX); after that, gathers (TAKE, TAKE_ALONG) clamp the index to [0, d - 1],
 * so a bad index never reads outside the array, and PUT_ALONG skips writes whose index is
 * still outside [0, d).
 *
 * SLICE_UPDATE and PUT_ALONG may be given input 0's own buffer as their output (the eval
 * layer's donation, eval.c donatable_inputs): their kernels detect it (output address ==
 * input address) and then write only the updated elements, O(update) rather than O(array).
 */
#ifndef LX_GRAPH_PRIMS_INDEX_H
#define LX_GRAPH_PRIMS_INDEX_H

#include "graph/prims.h"

/* TAKE, TAKE_ALONG, PUT_ALONG: the axis of `a` that the indices select along. */
typedef struct { int32_t axis; } lx_take_params;
/* CONCATENATE: the axis; input i starts at coordinate sum of the earlier inputs' sizes. */
typedef struct { int32_t axis; } lx_concat_params;
/* PAD: input element c lands at c + low; everything else is `value` (stored in the dtype). */
typedef struct { int32_t low[LX_MAX_NDIM]; double value; } lx_pad_params;
/* TILE: output coordinate o of axis i reads input coordinate (o / div[i]) % in.shape[i]
 * (tile: div 1; repeat along an axis: div = repeats). */
typedef struct { int32_t div[LX_MAX_NDIM]; } lx_tile_params;
/* TRI_SELECT: over the last two axes, keeps element (r, c) where c - r <= k (upper = false,
 * tril) or c - r >= k (upper = true, triu); the rest is zero. */
typedef struct { int32_t k; int32_t upper; } lx_tri_params;

#endif
