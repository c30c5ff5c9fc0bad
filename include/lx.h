/*
 * lx.h -- lazy n-dimensional arrays for ML inference, with automatic memory management.
 *
 * The only public header of lx. Every array is a value handle (lx_array) tracked by the
 * calling thread when it is created. lx_eval(outs...) keeps its outputs, releases every
 * tracked array of this thread that nobody kept, and computes the outputs. lx_keep marks
 * weights and caches that must survive; lx_free clears the mark so the array goes at the
 * next eval. A decode loop therefore needs no manual frees and its memory stays flat.
 *
 * Errors: no function aborts on bad input. Each thread has a sticky error (the first
 * failure since lx_clear_error()); an op given a bad argument returns the null array and
 * records the error, so a chain of ops can be checked once, at eval.
 */
#ifndef LX_H
#define LX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LX_VERSION_MAJOR 0
#define LX_VERSION_MINOR 1
#define LX_VERSION_PATCH 0
#define LX_VERSION_STRING "0.1.0"

#if defined(_WIN32)
#define LX_API
#else
#define LX_API __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------------------------------- */
/* Handles, dtypes, status                                                                    */

/* A generation-checked handle; id == 0 is the null array. Copying the struct copies the handle,
 * not the array. */
typedef struct { uint64_t id; } lx_array;
#define LX_NULL_ARRAY ((lx_array){0})
static inline bool lx_is_null(lx_array a) { return a.id == 0; }

typedef enum {
    LX_BOOL = 0,
    LX_UINT8,
    LX_UINT16,
    LX_UINT32,
    LX_UINT64,
    LX_INT8,
    LX_INT16,
    LX_INT32,
    LX_INT64,
    LX_FLOAT16,
    LX_BFLOAT16,
    LX_FLOAT32,
    LX_FLOAT64,
    LX_DTYPE_COUNT
} lx_dtype;

typedef enum {
    LX_OK = 0,
    LX_E_ARG,         /* a bad argument: null pointer, out-of-range axis, bad parameter */
    LX_E_SHAPE,       /* shapes that do not fit together, or sizes that overflow */
    LX_E_DTYPE,       /* a dtype the op does not accept */
    LX_E_FREED,       /* a handle that was released (or never valid) */
    LX_E_OOM,         /* the memory limit or the system ran out */
    LX_E_IO,          /* a file could not be opened, read or written */
    LX_E_FORMAT,      /* a file is malformed */
    LX_E_DEVICE,      /* a device (GPU) failed or is absent */
    LX_E_UNSUPPORTED, /* valid but not supported by lx (yet) */
    LX_E_INTERNAL     /* a bug in lx */
} lx_status;

typedef enum { LX_CPU = 0, LX_GPU = 1 } lx_device;

#define LX_MAX_NDIM 8

/* ---------------------------------------------------------------------------------------- */
/* Errors (per thread, sticky)                                                                */

LX_API lx_status lx_error(void);
LX_API const char *lx_error_message(void);
LX_API void lx_clear_error(void);
LX_API const char *lx_status_string(lx_status s);

/* ---------------------------------------------------------------------------------------- */
/* Dtype helpers                                                                              */

LX_API size_t lx_dtype_size(lx_dtype t);
LX_API const char *lx_dtype_name(lx_dtype t);
LX_API lx_dtype lx_promote_types(lx_dtype a, lx_dtype b);
LX_API bool lx_dtype_is_float(lx_dtype t);
LX_API bool lx_dtype_is_signed(lx_dtype t);

/* ---------------------------------------------------------------------------------------- */
/* Creation (data is copied)                                                                  */

LX_API lx_array lx_array_new(const void *data, const int *shape, int ndim, lx_dtype dtype);
LX_API lx_array lx_array_f32(const float *data, const int *shape, int ndim);
LX_API lx_array lx_array_i32(const int32_t *data, const int *shape, int ndim);
LX_API lx_array lx_scalar(double value, lx_dtype dtype);
LX_API lx_array lx_scalar_f32(float value);
LX_API lx_array lx_scalar_i32(int32_t value);
LX_API lx_array lx_zeros(const int *shape, int ndim, lx_dtype dtype);
LX_API lx_array lx_ones(const int *shape, int ndim, lx_dtype dtype);
LX_API lx_array lx_full(const int *shape, int ndim, double value, lx_dtype dtype);
LX_API lx_array lx_zeros_like(lx_array a);
LX_API lx_array lx_ones_like(lx_array a);
LX_API lx_array lx_arange(double start, double stop, double step, lx_dtype dtype);
LX_API lx_array lx_linspace(double start, double stop, int num, lx_dtype dtype);
/* n x m with ones on and below diagonal k (m <= 0 means m = n) */
LX_API lx_array lx_tri(int n, int m, int k, lx_dtype dtype);
LX_API lx_array lx_eye(int n, int m, int k, lx_dtype dtype);

/* ---------------------------------------------------------------------------------------- */
/* Data and metadata                                                                          */

/* Row-major copy of the array into dst (nbytes must equal lx_nbytes); evaluates and waits. */
LX_API lx_status lx_read(lx_array a, void *dst, size_t nbytes);
/* Host pointer to row-major data (evaluates and waits); valid while the handle is. */
LX_API const void *lx_data(lx_array a);
LX_API float lx_item_f32(lx_array a);
LX_API int32_t lx_item_i32(lx_array a);
LX_API double lx_item_f64(lx_array a);
LX_API int lx_ndim(lx_array a);
LX_API int lx_dim(lx_array a, int axis);
/* Copies the shape into out (at least lx_ndim entries); returns ndim, or -1 on error. */
LX_API int lx_shape(lx_array a, int *out);
LX_API size_t lx_size(lx_array a);
LX_API size_t lx_nbytes(lx_array a);
LX_API lx_dtype lx_dtype_of(lx_array a);
LX_API lx_device lx_device_of(lx_array a);
/* True once the array's value is computed (no graph left behind it). */
LX_API bool lx_is_evaluated(lx_array a);

/* ---------------------------------------------------------------------------------------- */
/* Memory model                                                                               */

#define LX_COUNT_ARRAYS_(...) ((int)(sizeof((const lx_array[]){__VA_ARGS__}) / sizeof(lx_array)))

/* Keeps outs, releases this thread's unkept tracked arrays, computes outs and waits. */
LX_API lx_status lx_eval_n(const lx_array *outs, int n);
/* Same as lx_eval_n but returns once the work is scheduled. */
LX_API lx_status lx_async_eval_n(const lx_array *outs, int n);
/* Marks arrays to survive sweeps (a flag, not a count). */
LX_API void lx_keep_n(const lx_array *arrays, int n);
#define lx_eval(...) lx_eval_n((const lx_array[]){__VA_ARGS__}, LX_COUNT_ARRAYS_(__VA_ARGS__))
#define lx_async_eval(...) \
    lx_async_eval_n((const lx_array[]){__VA_ARGS__}, LX_COUNT_ARRAYS_(__VA_ARGS__))
#define lx_keep(...) lx_keep_n((const lx_array[]){__VA_ARGS__}, LX_COUNT_ARRAYS_(__VA_ARGS__))
/* Clears the keep mark; the array is released at the next eval or sweep of its thread. */
LX_API void lx_free(lx_array a);
/* Releases every tracked array of this thread that is not kept. */
LX_API void lx_sweep(void);
LX_API bool lx_valid(lx_array a);
LX_API bool lx_kept(lx_array a);
/* Waits for all scheduled work (no sweep); returns the first error of this thread's work. */
LX_API lx_status lx_synchronize(void);
/* Live tracked handles of this thread. */
LX_API size_t lx_tracked_count(void);
LX_API void lx_debug_arrays(FILE *out, int top_n);

/* ---------------------------------------------------------------------------------------- */
/* Memory accounting (default device)                                                        */

LX_API size_t lx_active_memory(void);
LX_API size_t lx_peak_memory(void);
LX_API void lx_reset_peak_memory(void);
LX_API size_t lx_cache_memory(void);
/* The setters return the previous limit; the getters read it without changing anything. */
LX_API size_t lx_set_cache_limit(size_t bytes);
LX_API size_t lx_set_memory_limit(size_t bytes);
LX_API size_t lx_cache_limit(void);
LX_API size_t lx_memory_limit(void);
LX_API void lx_clear_cache(void);

/* ---------------------------------------------------------------------------------------- */
/* Devices and threads                                                                        */

LX_API bool lx_gpu_available(void);
LX_API lx_status lx_set_default_device(lx_device d);
LX_API lx_device lx_default_device(void);
LX_API const char *lx_backend_info(void);
/* Threads used by CPU kernels (0 = one per core). Returns the previous setting. */
LX_API int lx_set_num_threads(int n);
LX_API int lx_num_threads(void);

/* ---------------------------------------------------------------------------------------- */
/* Compile                                                                                    */

/* fn is traced once per input signature (each input's dtype and shape; dtype and ndim with
 * LX_COMPILE_SHAPELESS) and the trace is replayed on later calls. Only the arrays in `in` vary
 * between calls: everything else fn passes to an op -- integer and float arguments (lx_rope's
 * offset, lx_slice's bounds, a scalar's value), arrays made inside fn, ctx's contents -- is a
 * constant of the trace, taken from the first call. A value that changes per call (a decode
 * position, a temperature) must be an input array: lx_rope_at takes the offset as one. */
typedef lx_status (*lx_fn)(void *ctx, const lx_array *in, int n_in, lx_array *out, int n_out);
typedef struct lx_closure lx_closure;
#define LX_COMPILE_SHAPELESS 1u
LX_API lx_closure *lx_compile(lx_fn fn, void *ctx, int n_out, unsigned flags);
LX_API lx_status lx_call(lx_closure *c, const lx_array *in, int n_in, lx_array *out, int n_out);
LX_API void lx_closure_free(lx_closure *c);
/* Globally turn compilation off (calls then run fn directly). Returns the previous setting.
 * The environment variable LX_DISABLE_COMPILE=1 sets it off at start. */
LX_API bool lx_set_compile_enabled(bool enabled);
/* Maximum traces kept per closure (least recently used out). Returns the previous bound. */
LX_API int lx_set_compile_cache_limit(int traces);
/* Number of traces made so far by this closure (first traces and retraces). */
LX_API int lx_closure_trace_count(const lx_closure *c);

/* ---------------------------------------------------------------------------------------- */
/* Elementwise ops (broadcasting, MLX type promotion)                                        */

LX_API lx_array lx_add(lx_array a, lx_array b);
LX_API lx_array lx_sub(lx_array a, lx_array b);
LX_API lx_array lx_mul(lx_array a, lx_array b);
LX_API lx_array lx_div(lx_array a, lx_array b);
LX_API lx_array lx_pow(lx_array a, lx_array b);
LX_API lx_array lx_maximum(lx_array a, lx_array b);
LX_API lx_array lx_minimum(lx_array a, lx_array b);
LX_API lx_array lx_floor_divide(lx_array a, lx_array b);
LX_API lx_array lx_remainder(lx_array a, lx_array b);
LX_API lx_array lx_arctan2(lx_array a, lx_array b);
LX_API lx_array lx_equal(lx_array a, lx_array b);
LX_API lx_array lx_not_equal(lx_array a, lx_array b);
LX_API lx_array lx_less(lx_array a, lx_array b);
LX_API lx_array lx_less_equal(lx_array a, lx_array b);
LX_API lx_array lx_greater(lx_array a, lx_array b);
LX_API lx_array lx_greater_equal(lx_array a, lx_array b);
LX_API lx_array lx_logical_and(lx_array a, lx_array b);
LX_API lx_array lx_logical_or(lx_array a, lx_array b);
/* scalar forms keep a's dtype */
LX_API lx_array lx_add_scalar(lx_array a, double s);
LX_API lx_array lx_sub_scalar(lx_array a, double s);
LX_API lx_array lx_mul_scalar(lx_array a, double s);
LX_API lx_array lx_div_scalar(lx_array a, double s);
LX_API lx_array lx_pow_scalar(lx_array a, double s);

LX_API lx_array lx_neg(lx_array a);
LX_API lx_array lx_abs(lx_array a);
LX_API lx_array lx_sign(lx_array a);
LX_API lx_array lx_square(lx_array a);
LX_API lx_array lx_sqrt(lx_array a);
LX_API lx_array lx_rsqrt(lx_array a);
LX_API lx_array lx_reciprocal(lx_array a);
LX_API lx_array lx_exp(lx_array a);
LX_API lx_array lx_expm1(lx_array a);
LX_API lx_array lx_log(lx_array a);
LX_API lx_array lx_log1p(lx_array a);
LX_API lx_array lx_log2(lx_array a);
LX_API lx_array lx_log10(lx_array a);
LX_API lx_array lx_sin(lx_array a);
LX_API lx_array lx_cos(lx_array a);
LX_API lx_array lx_tan(lx_array a);
LX_API lx_array lx_tanh(lx_array a);
LX_API lx_array lx_erf(lx_array a);
LX_API lx_array lx_erfinv(lx_array a);
LX_API lx_array lx_sigmoid(lx_array a);
LX_API lx_array lx_silu(lx_array a);
LX_API lx_array lx_relu(lx_array a);
LX_API lx_array lx_gelu(lx_array a);
LX_API lx_array lx_gelu_approx(lx_array a);
LX_API lx_array lx_floor(lx_array a);
LX_API lx_array lx_ceil(lx_array a);
LX_API lx_array lx_round(lx_array a);
LX_API lx_array lx_logical_not(lx_array a);
LX_API lx_array lx_isnan(lx_array a);
LX_API lx_array lx_isinf(lx_array a);
LX_API lx_array lx_isfinite(lx_array a);

LX_API lx_array lx_where(lx_array cond, lx_array a, lx_array b);
/* lo / hi may be null (no bound) */
LX_API lx_array lx_clip(lx_array a, lx_array lo, lx_array hi);
LX_API lx_array lx_isclose(lx_array a, lx_array b, double rtol, double atol, bool equal_nan);
LX_API lx_array lx_allclose(lx_array a, lx_array b, double rtol, double atol, bool equal_nan);
LX_API lx_array lx_array_equal(lx_array a, lx_array b, bool equal_nan);
LX_API lx_array lx_astype(lx_array a, lx_dtype dtype);

/* ---------------------------------------------------------------------------------------- */
/* Reductions, scans, ordering                                                                */

LX_API lx_array lx_sum(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_mean(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_max(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_min(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_prod(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_logsumexp(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_var(lx_array a, int axis, bool keepdims, int ddof);
LX_API lx_array lx_std(lx_array a, int axis, bool keepdims, int ddof);
LX_API lx_array lx_all(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_any(lx_array a, int axis, bool keepdims);
/* Over several axes; axes == NULL with n == 0 reduces over all axes. */
LX_API lx_array lx_sum_axes(lx_array a, const int *axes, int n, bool keepdims);
LX_API lx_array lx_mean_axes(lx_array a, const int *axes, int n, bool keepdims);
LX_API lx_array lx_max_axes(lx_array a, const int *axes, int n, bool keepdims);
LX_API lx_array lx_min_axes(lx_array a, const int *axes, int n, bool keepdims);
LX_API lx_array lx_prod_axes(lx_array a, const int *axes, int n, bool keepdims);
LX_API lx_array lx_logsumexp_axes(lx_array a, const int *axes, int n, bool keepdims);
LX_API lx_array lx_var_axes(lx_array a, const int *axes, int n, bool keepdims, int ddof);
LX_API lx_array lx_std_axes(lx_array a, const int *axes, int n, bool keepdims, int ddof);
LX_API lx_array lx_all_axes(lx_array a, const int *axes, int n, bool keepdims);
LX_API lx_array lx_any_axes(lx_array a, const int *axes, int n, bool keepdims);
/* uint32 indices, as MLX; first occurrence wins */
LX_API lx_array lx_argmax(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_argmin(lx_array a, int axis, bool keepdims);
LX_API lx_array lx_cumsum(lx_array a, int axis); /* inclusive */
LX_API lx_array lx_cumprod(lx_array a, int axis);
LX_API lx_array lx_cummax(lx_array a, int axis);
LX_API lx_array lx_cummin(lx_array a, int axis);
LX_API lx_array lx_sort(lx_array a, int axis);
LX_API lx_array lx_argsort(lx_array a, int axis);
LX_API lx_array lx_partition(lx_array a, int kth, int axis);
LX_API lx_array lx_argpartition(lx_array a, int kth, int axis);
/* The k largest along axis (MLX: unordered) */
LX_API lx_array lx_topk(lx_array a, int k, int axis);

/* ---------------------------------------------------------------------------------------- */
/* Shape and indexing (views where possible)                                                  */

LX_API lx_array lx_reshape(lx_array a, const int *shape, int ndim);
LX_API lx_array lx_transpose(lx_array a, const int *axes, int n); /* n = 0 reverses */
LX_API lx_array lx_swapaxes(lx_array a, int axis1, int axis2);
LX_API lx_array lx_moveaxis(lx_array a, int source, int destination);
LX_API lx_array lx_expand_dims(lx_array a, const int *axes, int n);
LX_API lx_array lx_squeeze(lx_array a, const int *axes, int n); /* n = 0: every size-1 axis */
LX_API lx_array lx_flatten(lx_array a, int start_axis, int end_axis);
LX_API lx_array lx_broadcast_to(lx_array a, const int *shape, int ndim);
LX_API lx_array lx_contiguous(lx_array a);
/* strides in elements; offset in elements from a's first element */
LX_API lx_array lx_as_strided(lx_array a, const int *shape, const int64_t *strides, int ndim,
                              size_t offset);
LX_API lx_array lx_slice(lx_array a, const int *start, const int *stop, const int *strides,
                         int ndim);
LX_API lx_array lx_slice_update(lx_array a, lx_array update, const int *start, const int *stop,
                                const int *strides, int ndim);
LX_API lx_array lx_concatenate(const lx_array *arrays, int n, int axis);
LX_API lx_array lx_stack(const lx_array *arrays, int n, int axis);
/* Splits at the given indices along axis into n_indices + 1 arrays written to out. */
LX_API lx_status lx_split(lx_array a, const int *indices, int n_indices, int axis, lx_array *out);
/* Splits into `parts` equal arrays along axis, written to out. */
LX_API lx_status lx_split_equal(lx_array a, int parts, int axis, lx_array *out);
LX_API lx_array lx_tile(lx_array a, const int *reps, int n);
LX_API lx_array lx_repeat(lx_array a, int repeats, int axis);
/* Constant padding; low/high have one entry per axis of a. */
LX_API lx_array lx_pad(lx_array a, const int *low, const int *high, int n, double value);
/* indices: any integer dtype; negative ones count from the end; out-of-range indices are
 * clamped (take, take_along_axis) or their writes dropped (put_along_axis). */
LX_API lx_array lx_take(lx_array a, lx_array indices, int axis);
LX_API lx_array lx_take_along_axis(lx_array a, lx_array indices, int axis);
LX_API lx_array lx_put_along_axis(lx_array a, lx_array indices, lx_array values, int axis);
LX_API lx_array lx_tril(lx_array a, int k);
LX_API lx_array lx_triu(lx_array a, int k);

/* ---------------------------------------------------------------------------------------- */
/* Linear algebra and neural-network ops                                                      */

LX_API lx_array lx_matmul(lx_array a, lx_array b);
/* c*beta + (a@b)*alpha */
LX_API lx_array lx_addmm(lx_array c, lx_array a, lx_array b, float alpha, float beta);
LX_API lx_array lx_softmax(lx_array a, int axis);
LX_API lx_array lx_log_softmax(lx_array a, int axis);
/* w may be null (no weight) */
LX_API lx_array lx_rms_norm(lx_array x, lx_array w, float eps);
/* w and b may be null */
LX_API lx_array lx_layer_norm(lx_array x, lx_array w, lx_array b, float eps);
/* Channels last; group g holds the consecutive channels [g*C/G, (g+1)*C/G) (PyTorch's grouping,
 * MLX's GroupNorm(pytorch_compatible=True), which diffusion checkpoints expect). */
LX_API lx_array lx_group_norm(lx_array x, int groups, lx_array w, lx_array b, float eps);
LX_API lx_array lx_rope(lx_array x, int dims, bool traditional, float base, float scale,
                        int offset);
/* Custom inverse frequencies: freqs has dims/2 entries (the angle of pair i at position p is
 * p * scale / freqs[i], as MLX's fast.rope with freqs). */
LX_API lx_array lx_rope_freqs(lx_array x, int dims, bool traditional, lx_array freqs, float scale,
                              int offset);
/* As lx_rope / lx_rope_freqs with the position offset an array (an integer scalar or shape
 * [1]), as MLX's fast.rope takes it: inside a compiled closure the offset is then an input, not
 * a constant of the trace. */
LX_API lx_array lx_rope_at(lx_array x, int dims, bool traditional, float base, float scale,
                           lx_array offset);
LX_API lx_array lx_rope_freqs_at(lx_array x, int dims, bool traditional, lx_array freqs,
                                 float scale, lx_array offset);
/* q [B, Hq, Lq, D], k/v [B, Hkv, Lk, D]; mask null, bool (true = attend) or additive. */
LX_API lx_array lx_sdpa(lx_array q, lx_array k, lx_array v, float scale, bool causal,
                        lx_array mask);
/* As lx_sdpa, with one learned sink logit per query head (sinks [Hq]). */
LX_API lx_array lx_sdpa_sinks(lx_array q, lx_array k, lx_array v, float scale, bool causal,
                              lx_array mask, lx_array sinks);
/* Channels last, as MLX: x [N, L, Cin], w [Cout, K, Cin/groups]. */
LX_API lx_array lx_conv1d(lx_array x, lx_array w, int stride, int padding, int dilation,
                          int groups);
/* x [N, H, W, Cin], w [Cout, KH, KW, Cin/groups]; stride/padding/dilation have 2 entries. */
LX_API lx_array lx_conv2d(lx_array x, lx_array w, const int *stride, const int *padding,
                          const int *dilation, int groups);
/* x [N, L, Cin], w [Cout, K, Cin/groups] */
LX_API lx_array lx_conv_transpose1d(lx_array x, lx_array w, int stride, int padding, int dilation,
                                    int output_padding, int groups);
/* Nearest-neighbour upsampling of a channels-last [N, H, W, C] array. */
LX_API lx_array lx_upsample_nearest(lx_array x, int scale_h, int scale_w);

/* ---------------------------------------------------------------------------------------- */
/* Affine quantization (MLX format)                                                          */

LX_API lx_status lx_quantize(lx_array w, int group_size, int bits, lx_array *wq, lx_array *scales,
                             lx_array *biases);
LX_API lx_array lx_dequantize(lx_array wq, lx_array scales, lx_array biases, int group_size,
                              int bits);
LX_API lx_array lx_quantized_matmul(lx_array x, lx_array wq, lx_array scales, lx_array biases,
                                    bool transpose, int group_size, int bits);
/* Mixture of experts: a[lhs_indices] @ b[rhs_indices] (indices may be null = identity). */
LX_API lx_array lx_gather_mm(lx_array a, lx_array b, lx_array lhs_indices, lx_array rhs_indices);
LX_API lx_array lx_gather_qmm(lx_array x, lx_array wq, lx_array scales, lx_array biases,
                              lx_array lhs_indices, lx_array rhs_indices, bool transpose,
                              int group_size, int bits);

/* ---------------------------------------------------------------------------------------- */
/* Random numbers (threefry keys, as MLX). A null key uses the global key stream, which
 * lx_random_seed resets. */

LX_API lx_array lx_random_key(uint64_t seed);
LX_API lx_status lx_random_split(lx_array key, lx_array *k1, lx_array *k2);
/* n keys, shape [n, 2] */
LX_API lx_array lx_random_split_n(lx_array key, int n);
LX_API void lx_random_seed(uint64_t seed);
LX_API lx_array lx_random_bits(const int *shape, int ndim, int width_bytes, lx_array key);
LX_API lx_array lx_random_uniform(const int *shape, int ndim, lx_dtype dtype, double low,
                                  double high, lx_array key);
LX_API lx_array lx_random_normal(const int *shape, int ndim, lx_dtype dtype, lx_array key);
LX_API lx_array lx_random_truncated_normal(const int *shape, int ndim, lx_dtype dtype,
                                           double lower, double upper, lx_array key);
LX_API lx_array lx_random_randint(const int *shape, int ndim, lx_dtype dtype, int64_t low,
                                  int64_t high, lx_array key);
LX_API lx_array lx_random_bernoulli(const int *shape, int ndim, double p, lx_array key);
LX_API lx_array lx_random_gumbel(const int *shape, int ndim, lx_dtype dtype, lx_array key);
/* One sample per row (the axis is removed). */
LX_API lx_array lx_random_categorical(lx_array logits, int axis, lx_array key);
/* num_samples samples per row, as MLX: the output is logits' shape without `axis`, followed
 * by a last axis of size num_samples. */
LX_API lx_array lx_random_categorical_n(lx_array logits, int axis, int num_samples,
                                        lx_array key);

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */

typedef struct lx_weights lx_weights;
LX_API lx_weights *lx_load(const char *path);
LX_API lx_array lx_weights_get(const lx_weights *w, const char *name);
LX_API int lx_weights_count(const lx_weights *w);
LX_API const char *lx_weights_name(const lx_weights *w, int i);
LX_API const char *lx_weights_metadata(const lx_weights *w, const char *key);
/* GGUF array metadata (e.g. tokenizer.ggml.tokens): number of entries, or -1 if absent or not
 * an array; entry i as a string (numbers are formatted), NULL if out of range. */
LX_API int lx_weights_metadata_array_len(const lx_weights *w, const char *key);
LX_API const char *lx_weights_metadata_array_item(const lx_weights *w, const char *key, int i);
LX_API void lx_weights_free(lx_weights *w);
LX_API lx_status lx_save_safetensors(const char *path, const char *const *names,
                                     const lx_array *arrays, int n);
LX_API lx_array lx_load_npy(const char *path);
LX_API lx_status lx_save_npy(const char *path, lx_array a);

/* ---------------------------------------------------------------------------------------- */
/* Tokenizers (the models layer): tokenizer.json (BPE with its normalizers, pre-tokenizers and
 * decoders, added and special tokens) and GGUF vocabularies (gpt2-type BPE, llama-type
 * SentencePiece). Functions returning a pointer return NULL and set the error on failure. */

typedef struct lx_tokenizer lx_tokenizer;
/* A tokenizer.json, a model folder (its tokenizer.json and tokenizer_config.json), or a .gguf
 * file (its tokenizer.ggml.* metadata). */
LX_API lx_tokenizer *lx_tokenizer_load(const char *path);
LX_API void lx_tokenizer_free(lx_tokenizer *t);
LX_API int lx_tokenizer_vocab_size(const lx_tokenizer *t);
#define LX_TOKENIZE_ADD_SPECIAL 1u   /* BOS/EOS as the tokenizer's post-processor (or GGUF
                                        add_bos_token / add_eos_token) adds them */
#define LX_TOKENIZE_PARSE_SPECIAL 2u /* special tokens written in the text become their ids */
/* Encodes len bytes of text. Writes at most cap ids (ids may be NULL when cap is 0) and returns
 * how many the text has: call again with a larger buffer when that is more than cap. -1 and
 * the error set on failure (e.g. invalid UTF-8 is replaced, never an error; NULL text is). */
LX_API int lx_tokenize(const lx_tokenizer *t, const char *text, size_t len, unsigned flags,
                       int32_t *ids, int cap);
/* Decodes ids into out (NUL-terminated, at most cap bytes with the NUL; out may be NULL when
 * cap is 0); returns the length of the whole text (snprintf-style) or -1 on error (an id out
 * of range). skip_special leaves special tokens out. */
LX_API long lx_detokenize(const lx_tokenizer *t, const int32_t *ids, int n, bool skip_special,
                          char *out, size_t cap);
/* The vocabulary's string for id (as stored: byte-level or SentencePiece form), NULL if out of
 * range; the id of a vocabulary string or added token, -1 if absent. */
LX_API const char *lx_token_piece(const lx_tokenizer *t, int32_t id);
LX_API int32_t lx_token_id(const lx_tokenizer *t, const char *piece);
LX_API bool lx_token_is_special(const lx_tokenizer *t, int32_t id);
/* BOS / EOS ids the tokenizer knows of (tokenizer_config.json or GGUF metadata), -1 if none. */
LX_API int32_t lx_tokenizer_bos(const lx_tokenizer *t);
LX_API int32_t lx_tokenizer_eos(const lx_tokenizer *t);

/* Incremental detokenization for streaming: push one id at a time, get the text that became
 * complete, never half a UTF-8 character. The text equals lx_detokenize of all ids pushed. */
typedef struct lx_detokenizer lx_detokenizer;
LX_API lx_detokenizer *lx_detokenizer_new(const lx_tokenizer *t, bool skip_special);
/* New complete text after adding id (valid until the next call; *len bytes, may be 0). NULL
 * and the error set for an id out of range. */
LX_API const char *lx_detokenizer_push(lx_detokenizer *d, int32_t id, size_t *len);
/* What is left (incomplete bytes as U+FFFD); the stream then starts anew. */
LX_API const char *lx_detokenizer_flush(lx_detokenizer *d, size_t *len);
LX_API void lx_detokenizer_free(lx_detokenizer *d);

/* ---------------------------------------------------------------------------------------- */
/* Models and text generation (the models layer): Llama-family decoders (Llama 2/3.x,
 * Mistral, Qwen2/2.5, Qwen3, SmolLM2) from a Hugging Face folder or a GGUF file.            */

typedef struct lx_model lx_model;
/* A folder with config.json, model.safetensors (or an index of shards) and tokenizer.json, or a
 * .gguf file. Weights stay mapped and kept until lx_model_free. */
LX_API lx_model *lx_model_load(const char *path);
LX_API void lx_model_free(lx_model *m);
LX_API const lx_tokenizer *lx_model_tokenizer(const lx_model *m);
/* One line: architecture, layers, sizes, weight dtypes. */
LX_API const char *lx_model_describe(const lx_model *m);
LX_API int lx_model_vocab_size(const lx_model *m);
LX_API int lx_model_context_length(const lx_model *m);
/* The end-of-sequence ids (generation_config.json, config.json or GGUF metadata); returns how
 * many there are, writing at most cap. */
LX_API int lx_model_eos_ids(const lx_model *m, int32_t *ids, int cap);

typedef struct {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} lx_chat_message;
/* Renders the model's own chat template (a Jinja subset) over the messages. Returns a string to
 * free() with free(), or NULL and the error set (no template, or the template raised). */
LX_API char *lx_chat_apply(const lx_model *m, const lx_chat_message *msgs, int n,
                           bool add_generation_prompt);

typedef struct {
    int max_tokens;       /* new tokens to generate (default 256) */
    float temperature;    /* 0 = greedy (the default, here and in lx generate) */
    int top_k;            /* 0 = off */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off */
    float repeat_penalty; /* 1 = off; over the last repeat_last_n tokens, as llama.cpp */
    int repeat_last_n;    /* default 64 */
    uint64_t seed;
    bool ignore_eos;      /* generate exactly max_tokens */
    int prefill_chunk;    /* prompt tokens per forward pass (default 512) */
    /* Called for each new token with its text so far complete (see lx_detokenizer); return
     * false to stop. May be NULL. */
    bool (*on_token)(void *user, int32_t id, const char *text, size_t len);
    /* When set, every position's logits are computed and handed over, float32 [n_rows, vocab]:
     * the prompt's rows (those not reused from the cache) then one row per new token. */
    void (*on_logits)(void *user, const float *rows, int n_rows, int vocab);
    void *user;
    /* Polled between tokens: non-zero stops (a signal handler may set it). May be NULL. */
    const volatile int *stop;
} lx_gen_params;
LX_API lx_gen_params lx_gen_params_default(void);

typedef struct {
    int prompt_tokens;     /* prompt tokens of this call */
    int reused_tokens;     /* of them, found in the session's cache (not recomputed) */
    int generated_tokens;  /* new tokens, a stopping end token included */
    bool stopped_by_eos;
    bool stopped_by_user;  /* on_token returned false or *stop was set */
    double prefill_s, decode_s, first_token_s;
    double prefill_tok_s, decode_tok_s;
    size_t peak_memory_bytes, active_memory_bytes, tracked;
} lx_gen_stats;

/* A generation context: the model's KV cache and the tokens it holds. */
typedef struct lx_session lx_session;
/* max_context 0: the model's context length. */
LX_API lx_session *lx_session_new(lx_model *m, int max_context);
LX_API void lx_session_free(lx_session *s);
/* Drops the cached context. */
LX_API void lx_session_reset(lx_session *s);
/* The tokens the session holds (prompt and generated); *ids valid until the next call. */
LX_API int lx_session_tokens(const lx_session *s, const int32_t **ids);
/* Generates after the prompt (the whole context: its longest prefix already in the session's
 * cache is reused, the rest prefilled). A prompt longer than the context is LX_E_ARG. */
LX_API lx_status lx_session_generate(lx_session *s, const int32_t *prompt, int n_prompt,
                                     const lx_gen_params *p, lx_gen_stats *stats);

/* ---------------------------------------------------------------------------------------- */
/* Debug builds record where each array was made (file:line) for lx_debug_arrays.            */

LX_API void lx_debug_site_(const char *file, int line);
#ifdef LX_DEBUG
#define LX_AT_(call) (lx_debug_site_(__FILE__, __LINE__), call)
#define lx_array_new(...) LX_AT_(lx_array_new(__VA_ARGS__))
#define lx_array_f32(...) LX_AT_(lx_array_f32(__VA_ARGS__))
#define lx_array_i32(...) LX_AT_(lx_array_i32(__VA_ARGS__))
#define lx_zeros(...) LX_AT_(lx_zeros(__VA_ARGS__))
#define lx_ones(...) LX_AT_(lx_ones(__VA_ARGS__))
#define lx_full(...) LX_AT_(lx_full(__VA_ARGS__))
#define lx_add(...) LX_AT_(lx_add(__VA_ARGS__))
#define lx_sub(...) LX_AT_(lx_sub(__VA_ARGS__))
#define lx_mul(...) LX_AT_(lx_mul(__VA_ARGS__))
#define lx_div(...) LX_AT_(lx_div(__VA_ARGS__))
#define lx_matmul(...) LX_AT_(lx_matmul(__VA_ARGS__))
#define lx_reshape(...) LX_AT_(lx_reshape(__VA_ARGS__))
#define lx_transpose(...) LX_AT_(lx_transpose(__VA_ARGS__))
#define lx_slice(...) LX_AT_(lx_slice(__VA_ARGS__))
#define lx_concatenate(...) LX_AT_(lx_concatenate(__VA_ARGS__))
#define lx_astype(...) LX_AT_(lx_astype(__VA_ARGS__))
#define lx_softmax(...) LX_AT_(lx_softmax(__VA_ARGS__))
#define lx_sum(...) LX_AT_(lx_sum(__VA_ARGS__))
#define lx_take(...) LX_AT_(lx_take(__VA_ARGS__))
#endif

#ifdef __cplusplus
}
#endif
#endif /* LX_H */
