/*
 * cuda_kernels.h -- what the CUDA module's C side (cuda_device.c: the device table, memory,
 * events, supports() and the kernel wrappers that read lx's nodes) and its CUDA side (*.cu:
 * the kernels and their launchers) share: plain structs and C functions, no lx node (core/
 * node.h uses C11 _Atomic, which C++ does not have).
 *
 * Every launcher queues its kernels on `stream` and returns the CUDA error of the launch
 * (0 when fine; cudaGetLastError after the launch). Arguments are copied into the launch, so
 * the caller's structs may go away once a launcher returns (the node may be detached before
 * the work runs). Strides are in elements; pointers are device addresses of element 0.
 */
#ifndef LX_BACKEND_CUDA_KERNELS_H
#define LX_BACKEND_CUDA_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "lx.h" /* LX_MAX_NDIM, lx_dtype */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *lxc_stream; /* cudaStream_t */

/* An iteration over nd dims (row-major order) with the element strides of up to four
 * operands; lxc_iter_coalesce merges dims that every operand walks contiguously. */
#define LXC_MAX_OPS 4
typedef struct {
    int nd, nops;
    int64_t shape[LX_MAX_NDIM];
    int64_t st[LXC_MAX_OPS][LX_MAX_NDIM];
} lxc_iter;

/* ---- elementwise and data movement (ew.cu) ---- */

/* dst (op 0) <- src (op 1) over the iteration, elements of es bytes (1, 2, 4, 8). */
int lxc_move(lxc_stream s, void *dst, const void *src, int es, const lxc_iter *it, int64_t n);
/* COPY with a conversion: out row-contiguous (op 0 unused), in (op 1) of dtype it. */
int lxc_convert(lxc_stream s, void *out, int ot, const void *in, int it_, const lxc_iter *it,
                int64_t n);
/* n elements of es bytes, each the bytes of `bits`. */
int lxc_fill(lxc_stream s, void *out, int es, uint64_t bits, int64_t n);
/* out[i] = start + i * step (one multiply-add in double), stored as dtype ot. */
int lxc_arange(lxc_stream s, void *out, int ot, double start, double step, int64_t n);
/* UNARY: in (op 1) of dtype dt; out row-contiguous: dt, or bool for the predicates. */
int lxc_unary(lxc_stream s, void *out, const void *in, int dt, int op, bool pred,
              const lxc_iter *it, int64_t n);
/* BINARY: a (op 1), b (op 2) of dtype dt; out dt or bool. */
int lxc_binary(lxc_stream s, void *out, const void *a, const void *b, int dt, int op, bool pred,
               const lxc_iter *it, int64_t n);
/* WHERE: cond (op 1, bool), a (op 2), b (op 3) of es bytes. */
int lxc_where(lxc_stream s, void *out, const void *c, const void *a, const void *b, int es,
              const lxc_iter *it, int64_t n);

/* TAKE: out = a[:axis] x idx x a[axis+1:], row-contiguous. */
typedef struct {
    const void *a;
    int es;
    int a_nd, axis;
    int64_t a_shape[LX_MAX_NDIM], a_st[LX_MAX_NDIM];
    const void *idx;
    int idx_dtype, idx_nd;
    int64_t idx_shape[LX_MAX_NDIM], idx_st[LX_MAX_NDIM], n_idx;
} lxc_take_args;
int lxc_take(lxc_stream s, void *out, const lxc_take_args *a, int64_t n);

/* ---- reductions and nn (nn.cu) ---- */

/* REDUCE: one output per kept index (row-major over kept dims), the reduced dims in red. */
typedef struct {
    const void *in;
    int in_dtype, out_dtype, op; /* lx_reduce_op */
    double scale;                /* SUM: multiplies the result (1: none) */
    int nk, nr;
    int64_t kshape[LX_MAX_NDIM], kst[LX_MAX_NDIM];
    int64_t rshape[LX_MAX_NDIM], rst[LX_MAX_NDIM];
    int64_t n_out, n_red;
} lxc_reduce_args;
int lxc_reduce(lxc_stream s, void *out, const lxc_reduce_args *a);

/* Rows along one axis (ARG_REDUCE, SOFTMAX, RMS_NORM): row r's offset from its index over
 * the other dims (shape/st, row-major), len elements at stride `stride`; in the output (SOFTMAX)
 * at offset (shape/ost) with stride ostride. */
typedef struct {
    const void *in;
    int dtype;
    int nd;
    int64_t shape[LX_MAX_NDIM], st[LX_MAX_NDIM], ost[LX_MAX_NDIM];
    int64_t rows, len, stride, ostride;
} lxc_rows;
/* uint32 index of the first maximum (op 0) / minimum (1) of each row; NaN is the extreme. */
int lxc_arg_reduce(lxc_stream s, uint32_t *out, const lxc_rows *r, int op);
/* out rows row-contiguous (len apart), the input's dtype. */
int lxc_softmax(lxc_stream s, void *out, const lxc_rows *r, bool log);
int lxc_rms_norm(lxc_stream s, void *out, const lxc_rows *r, const void *w, int64_t ws,
                 float eps);

typedef struct {
    const void *x;
    int dtype;
    int nd;                       /* x's ndim (>= 2): [..., L, D] */
    int64_t shape[LX_MAX_NDIM], st[LX_MAX_NDIM];
    int dims, traditional;
    float base, scale;
    const float *freqs;           /* NULL: base^(-2i/dims) */
    int64_t freqs_stride;
    const void *offset_ptr;       /* NULL: `offset` */
    int offset_dtype;
    int64_t offset;
} lxc_rope_args;
int lxc_rope(lxc_stream s, void *out, const lxc_rope_args *a, int64_t n);

typedef struct {
    const void *q, *k, *v, *mask, *sinks;
    int dtype, mask_dtype;
    int64_t B, Hq, Hkv, Lq, Lk, D, Dv;
    int64_t qs[4], ks[4], vs[4], ms[4], sinks_stride;
    float scale;
    int causal;
} lxc_sdpa_args;
int lxc_sdpa(lxc_stream s, void *out, const lxc_sdpa_args *a);

/* ---- quantized (qmm.cu) ---- */

/* QUANTIZED_MATMUL with transpose: out [rows, N] = x [rows, K] @ dequant(w [N, K])^T; x row r
 * at offset xrow(r) over x's dims (xshape/xst over the out's leading dims, then M), element
 * stride xk; w row-contiguous [N, K*bits/32] uint32, scales/biases [N, K/gs] (stride sg). */
typedef struct {
    const void *x;
    int dtype;
    int nd;                        /* dims of the row index (out's leading dims and M) */
    int64_t rshape[LX_MAX_NDIM], xst[LX_MAX_NDIM];
    int64_t xk;
    const uint32_t *w;
    const void *scales, *biases;
    int64_t w_row, sg_row;         /* words per w row; elements per scales/biases row */
    int bits, gs;
    int64_t rows, N, K;
} lxc_qmm_args;
int lxc_qmm(lxc_stream s, void *out, const lxc_qmm_args *a);
/* dequant(w) [N, K] into wd (row-contiguous, dtype a->dtype) */
int lxc_dequant(lxc_stream s, void *wd, const lxc_qmm_args *a);

/* ---- MATMUL's mixed form (gemv.cu) ---- */

/* out [M, N] (row-contiguous float32) = alpha a @ b (+ beta out when with_c), a float32
 * [M, K] with strides (a_rs, a_cs), b [K, N] of dtype bt (float16 / bfloat16) with strides
 * (b_rs, b_cs); M <= LXC_GEMV_MAX_M. vec: b_rs == 1, a_cs == 1, K % 8 == 0, b's columns and
 * a's rows 16-byte aligned (8 weights a load). */
#define LXC_GEMV_MAX_M 8
typedef struct {
    const float *a;
    const void *b;
    int bt;
    bool vec, with_c;
    int64_t M, N, K, a_rs, a_cs, b_rs, b_cs;
    float alpha, beta;
} lxc_gemv_args;
int lxc_gemv_mixed(lxc_stream s, float *out, const lxc_gemv_args *g);

/* the CUDA message of an error code */
const char *lxc_error_string(int err);

#ifdef __cplusplus
}
#endif

#endif
