/*
 * prims_scan.h -- parameters of the scan and ordering primitives (prims_scan.def).
 */
#ifndef LX_GRAPH_PRIMS_SCAN_H
#define LX_GRAPH_PRIMS_SCAN_H

#include <stdint.h>

/* SCAN: inclusive scan of the input along `axis`; the node has the input's shape.
 * Output dtype: int32 for SUM of bool, else the input's dtype. Integers wrap (two's
 * complement), float16/bfloat16 accumulate in float32, MAX/MIN propagate NaN. */
typedef enum { LX_SCAN_SUM, LX_SCAN_PROD, LX_SCAN_MAX, LX_SCAN_MIN } lx_scan_op;
typedef struct { int32_t op; int32_t axis; } lx_scan_params;

/* SORT: ordering along `axis` in the total order "value (NaN last, -0 == +0), then index",
 * i.e. the order of a stable sort.
 *   VALUES:      the node has the input's shape and dtype; the sorted values.
 *   INDICES:     uint32, the input's shape; a stable argsort.
 *   PARTITION:   the input's shape and dtype; position kth holds the element a stable sort
 *                puts there, elements before it are <= it and elements after it >= it.
 *   ARGPARTITION: as PARTITION, uint32 indices.
 *   TOPK:        the input's dtype, the axis of size k (the node's shape); the k largest in
 *                ascending order (= the last k of VALUES). */
typedef enum {
    LX_SORT_VALUES,
    LX_SORT_INDICES,
    LX_SORT_PARTITION,
    LX_SORT_ARGPARTITION,
    LX_SORT_TOPK
} lx_sort_mode;
/* kth: the partitions' kth; TOPK's k (the axis's size in the output). */
typedef struct { int32_t mode; int32_t axis; int32_t kth; } lx_sort_params;

#endif
