/*
 * random.c -- random numbers with explicit threefry keys, as MLX (mlx/random.cpp).
 *
 * A key is a uint32 array of shape [2]; lx_random_key(seed) = [seed >> 32, seed & 0xffffffff].
 * RANDOM_BITS (backend/cpu/random.c) is MLX's threefry2x32 layout bit for bit, so the same
 * key gives the same bits, uniforms and normals as MLX, whatever the thread count.
 * The distributions are MLX's compositions of elementwise primitives:
 *   uniform   min(bits / 2^32, below_one(dtype)) in float32, cast, * (high - low) + low, and
 *             (lx's addition) capped at the largest value below high, so it never equals high;
 *   normal    sqrt(2) * erfinv(uniform(nextafter(-1, 0), 1)) (float32, then cast);
 *   truncated normal  sqrt(2) * erfinv(uniform(erf(lower / sqrt2), erf(upper / sqrt2))),
 *             clipped to [lower, upper] (JAX's method);
 *   randint   floor(uniform(low, high) in float32), cast, clipped to [low, high - 1];
 *   bernoulli bits < p * nextafter(2^32, inf) in float32;
 *   gumbel    -log(-log(uniform));
 *   categorical  argmax(logits + gumbel) along the axis (the Gumbel-max trick);
 *             categorical_n appends a sample axis of num_samples at the end (MLX's layout).
 * A null key takes the next key of the global stream: split(state) -> (state, key), under a
 * mutex; lx_random_seed resets the state to key(seed) (seed 0 at start).
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "backend/device.h"
#include "core/threefry.h"
#include "ops/compose.h"

/* ---- threefry on the host (the global key stream) ------------------------------------------ */

/* split(key) as RANDOM_BITS([2, 2]) computes it: first and second rows. */
static void host_split(const uint32_t k[2], uint32_t first[2], uint32_t second[2]) {
    uint32_t a0 = 0, a1 = 2, b0 = 1, b1 = 3;
    lx_threefry2x32(k[0], k[1], &a0, &a1);
    lx_threefry2x32(k[0], k[1], &b0, &b1);
    first[0] = a0;
    first[1] = b0;
    second[0] = a1;
    second[1] = b1;
}

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t g_state[2] = {0, 0};

void lx_random_seed(uint64_t seed) {
    pthread_mutex_lock(&g_lock);
    g_state[0] = (uint32_t)(seed >> 32);
    g_state[1] = (uint32_t)seed;
    pthread_mutex_unlock(&g_lock);
}

static void next_global_key(uint32_t out[2]) {
    pthread_mutex_lock(&g_lock);
    uint32_t first[2];
    host_split(g_state, first, out);
    g_state[0] = first[0];
    g_state[1] = first[1];
    pthread_mutex_unlock(&g_lock);
}

/* ---- keys ------------------------------------------------------------------------------------ */

static lx_node *key_const(const char *op, const uint32_t k[2]) {
    lx_devices_init(); /* registers the CPU's memory */
    lx_buffer *b = lx_buffer_alloc(LX_CPU, 2 * sizeof(uint32_t));
    if (!b) return NULL;
    memcpy(b->ptr, k, 2 * sizeof(uint32_t));
    return lx_node_new_ready(op, LX_UINT32, (const int[]){2}, 1, b);
}

lx_array lx_random_key(uint64_t seed) {
    uint32_t k[2] = {(uint32_t)(seed >> 32), (uint32_t)seed};
    return lx_wrap(key_const("lx_random_key", k));
}

/* The key to use: the argument (checked: uint32 [2]) or the next key of the global stream. */
static lx_node *key_node(const char *op, lx_array key) {
    if (lx_is_null(key)) {
        uint32_t k[2];
        next_global_key(k);
        return key_const(op, k);
    }
    lx_node *k = lx_arg(key, op, "key");
    if (!k) return NULL;
    if (k->dtype != LX_UINT32) {
        lx_set_error(LX_E_DTYPE, "%s: argument key: expected uint32, got %s", op,
                     lx_dtype_name((lx_dtype)k->dtype));
        lx_node_release(k);
        return NULL;
    }
    if (k->ndim != 1 || k->shape[0] != 2) {
        lx_set_error(LX_E_SHAPE, "%s: argument key: expected shape [2], got %s", op, LX_SHAPE_STR(k));
        lx_node_release(k);
        return NULL;
    }
    return k;
}

/* RANDOM_BITS of `shape` from key (consumed). */
static lx_node *bits_node(const char *op, const int *shape, int ndim, int width, lx_node *key) {
    if (!key) return NULL;
    lx_dtype t = width == 1 ? LX_UINT8 : width == 2 ? LX_UINT16 : width == 4 ? LX_UINT32 : LX_BOOL;
    if (t == LX_BOOL) {
        lx_set_error(LX_E_ARG, "%s: bit width must be 1, 2 or 4 bytes (got %d)", op, width);
        lx_node_release(key);
        return NULL;
    }
    lx_random_bits_params p;
    memset(&p, 0, sizeof p);
    p.width = width;
    return lx_build(op, LX_PRIM_RANDOM_BITS, t, shape, ndim, &key, 1, &p, sizeof p);
}

static bool shape_ok(const char *op, const int *shape, int ndim) {
    int64_t size;
    return lx_shape_check(op, shape, ndim, LX_FLOAT32, &size);
}

lx_array lx_random_bits(const int *shape, int ndim, int width_bytes, lx_array key) {
    const char *op = "lx_random_bits";
    if (!shape_ok(op, shape, ndim)) return LX_NULL_ARRAY;
    if (width_bytes != 1 && width_bytes != 2 && width_bytes != 4) {
        lx_set_error(LX_E_ARG, "%s: bit width must be 1, 2 or 4 bytes (got %d)", op, width_bytes);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(bits_node(op, shape, ndim, width_bytes, key_node(op, key)));
}

lx_array lx_random_split_n(lx_array key, int n) {
    const char *op = "lx_random_split_n";
    if (n < 0) {
        lx_set_error(LX_E_ARG, "%s: n must be >= 0 (got %d)", op, n);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(bits_node(op, (const int[]){n, 2}, 2, 4, key_node(op, key)));
}

static lx_node *row_of(const char *op, lx_node *pair, int row) {
    if (!pair) return NULL;
    lx_slice_params p;
    memset(&p, 0, sizeof p);
    p.start[0] = row;
    p.step[0] = 1;
    p.step[1] = 1;
    lx_node *s = lx_build(op, LX_PRIM_SLICE, LX_UINT32, (const int[]){1, 2}, 2, &pair, 1, &p, sizeof p);
    return lx_node_reshape(op, s, (const int[]){2}, 1);
}

lx_status lx_random_split(lx_array key, lx_array *k1, lx_array *k2) {
    const char *op = "lx_random_split";
    if (k1) *k1 = LX_NULL_ARRAY;
    if (k2) *k2 = LX_NULL_ARRAY;
    if (!k1 || !k2) return lx_set_error(LX_E_ARG, "%s: k1 or k2 is NULL", op);
    lx_node *bits = bits_node(op, (const int[]){2, 2}, 2, 4, key_node(op, key));
    if (!bits) return lx_error();
    lx_node *first = row_of(op, lx_cmp_dup(bits), 0);
    lx_node *second = row_of(op, bits, 1);
    if (!first || !second) {
        if (first) lx_node_release(first);
        if (second) lx_node_release(second);
        return lx_error();
    }
    *k1 = lx_wrap(first);
    *k2 = lx_wrap(second);
    return lx_is_null(*k1) || lx_is_null(*k2) ? lx_error() : LX_OK;
}

/* ---- scalar helpers ------------------------------------------------------------------------- */

/* v rounded to dtype t (a float dtype), as a double. */
static double round_to(double v, lx_dtype t) {
    switch (t) {
    case LX_FLOAT16: return lx_f16_to_f32(lx_f32_to_f16((float)v));
    case LX_BFLOAT16: return lx_bf16_to_f32(lx_f32_to_bf16((float)v));
    case LX_FLOAT32: return (float)v;
    default: return v;
    }
}

/* The largest value of dtype t below v (v finite and of dtype t). */
static double below(double v, lx_dtype t) {
    if (t == LX_FLOAT16 || t == LX_BFLOAT16) {
        uint16_t h = t == LX_FLOAT16 ? lx_f32_to_f16((float)v) : lx_f32_to_bf16((float)v);
        if (v > 0) h = (uint16_t)(h - 1);      /* positive: next smaller magnitude */
        else if (v == 0) h = 0x8001;           /* the negative value closest to zero */
        else h = (uint16_t)(h + 1);            /* negative: next larger magnitude */
        return t == LX_FLOAT16 ? lx_f16_to_f32(h) : lx_bf16_to_f32(h);
    }
    if (t == LX_FLOAT32) return nextafterf((float)v, -INFINITY);
    return nextafter(v, -INFINITY);
}

/* ---- distributions ---------------------------------------------------------------------------- */

/* uniform(low, high) of shape in dtype t (a float dtype); key consumed. */
static lx_node *uniform_node(const char *op, const int *shape, int ndim, lx_dtype t, double low,
                             double high, lx_node *key) {
    lx_node *u = bits_node(op, shape, ndim, 4, key);
    u = lx_node_astype(op, u, LX_FLOAT32);
    u = lx_cmp_binary_s(op, LX_BINARY_DIV, u, 4294967295.0); /* float32: 2^32 */
    double upper = t == LX_FLOAT16 ? 1.0 - 1.0 / 2048.0
                 : t == LX_BFLOAT16 ? 1.0 - 1.0 / 256.0
                 : (double)nextafterf(1.0f, 0.0f);
    u = lx_cmp_binary_s(op, LX_BINARY_MINIMUM, u, upper);
    u = lx_node_astype(op, u, t);
    double lo = round_to(low, t), hi = round_to(high, t);
    double range = round_to(hi - lo, t);
    u = lx_cmp_binary_s(op, LX_BINARY_MUL, u, range);
    u = lx_cmp_binary_s(op, LX_BINARY_ADD, u, lo);
    if (hi > lo && isfinite(hi)) u = lx_cmp_binary_s(op, LX_BINARY_MINIMUM, u, below(hi, t));
    return u;
}

static bool float_dtype(const char *op, lx_dtype t) {
    if (lx_dtype_valid((int)t) && lx_dtype_is_float(t)) return true;
    lx_set_error(LX_E_DTYPE, "%s: dtype must be a float type (got %s)", op, lx_dtype_name(t));
    return false;
}

lx_array lx_random_uniform(const int *shape, int ndim, lx_dtype dtype, double low, double high,
                           lx_array key) {
    const char *op = "lx_random_uniform";
    if (!shape_ok(op, shape, ndim) || !float_dtype(op, dtype)) return LX_NULL_ARRAY;
    if (!(low <= high) || !isfinite(low) || !isfinite(high)) {
        lx_set_error(LX_E_ARG, "%s: need finite low <= high (got %g, %g)", op, low, high);
        return LX_NULL_ARRAY;
    }
    return lx_wrap(uniform_node(op, shape, ndim, dtype, low, high, key_node(op, key)));
}

static lx_node *normal_node(const char *op, const int *shape, int ndim, lx_dtype t, lx_node *key) {
    lx_node *u = uniform_node(op, shape, ndim, LX_FLOAT32, (double)nextafterf(-1.0f, 0.0f), 1.0, key);
    u = lx_cmp_unary(op, LX_UNARY_ERFINV, u);
    u = lx_node_astype(op, u, t);
    return lx_cmp_binary_s(op, LX_BINARY_MUL, u, sqrt(2.0));
}

lx_array lx_random_normal(const int *shape, int ndim, lx_dtype dtype, lx_array key) {
    const char *op = "lx_random_normal";
    if (!shape_ok(op, shape, ndim) || !float_dtype(op, dtype)) return LX_NULL_ARRAY;
    return lx_wrap(normal_node(op, shape, ndim, dtype, key_node(op, key)));
}

lx_array lx_random_truncated_normal(const int *shape, int ndim, lx_dtype dtype, double lower,
                                    double upper, lx_array key) {
    const char *op = "lx_random_truncated_normal";
    if (!shape_ok(op, shape, ndim) || !float_dtype(op, dtype)) return LX_NULL_ARRAY;
    if (!(lower < upper)) {
        lx_set_error(LX_E_ARG, "%s: need lower < upper (got %g, %g)", op, lower, upper);
        return LX_NULL_ARRAY;
    }
    double s2 = round_to(sqrt(2.0), dtype);
    double lo = round_to(lower, dtype), up = round_to(upper, dtype);
    double a = round_to(erf(round_to(lo / s2, dtype)), dtype);
    double b = round_to(erf(round_to(up / s2, dtype)), dtype);
    lx_node *u = uniform_node(op, shape, ndim, dtype, a, b, key_node(op, key));
    u = lx_cmp_unary(op, LX_UNARY_ERFINV, u);
    u = lx_cmp_binary_s(op, LX_BINARY_MUL, u, s2);
    u = lx_cmp_binary_s(op, LX_BINARY_MINIMUM, u, up);
    u = lx_cmp_binary_s(op, LX_BINARY_MAXIMUM, u, lo);
    return lx_wrap(u);
}

lx_array lx_random_randint(const int *shape, int ndim, lx_dtype dtype, int64_t low, int64_t high,
                           lx_array key) {
    const char *op = "lx_random_randint";
    if (!shape_ok(op, shape, ndim)) return LX_NULL_ARRAY;
    if (!lx_dtype_valid((int)dtype) || lx_dtype_is_float(dtype)) {
        lx_set_error(LX_E_DTYPE, "%s: dtype must be an integer type or bool (got %s)", op,
                     lx_dtype_name(dtype));
        return LX_NULL_ARRAY;
    }
    if (high <= low) {
        lx_set_error(LX_E_ARG, "%s: need low < high (got %lld, %lld)", op, (long long)low,
                     (long long)high);
        return LX_NULL_ARRAY;
    }
    lx_node *u = uniform_node(op, shape, ndim, LX_FLOAT32, (double)(float)low, (double)(float)high,
                              key_node(op, key));
    u = lx_cmp_unary(op, LX_UNARY_FLOOR, u);
    u = lx_node_astype(op, u, dtype);
    u = lx_cmp_binary_s(op, LX_BINARY_MINIMUM, u, (double)(high - 1));
    u = lx_cmp_binary_s(op, LX_BINARY_MAXIMUM, u, (double)low);
    return lx_wrap(u);
}

lx_array lx_random_bernoulli(const int *shape, int ndim, double p, lx_array key) {
    const char *op = "lx_random_bernoulli";
    if (!shape_ok(op, shape, ndim)) return LX_NULL_ARRAY;
    lx_node *bits = bits_node(op, shape, ndim, 4, key_node(op, key));
    float thr = (float)p * 4294967808.0f; /* nextafter(float(2^32), inf) */
    lx_node *t = bits ? lx_node_scalar(op, (double)thr, LX_FLOAT32) : NULL;
    return lx_wrap(lx_cmp_binary(op, LX_BINARY_LESS, bits, t));
}

static lx_node *gumbel_node(const char *op, const int *shape, int ndim, lx_dtype t, lx_node *key) {
    lx_node *u = uniform_node(op, shape, ndim, t, 0.0, 1.0, key);
    u = lx_cmp_unary(op, LX_UNARY_LOG, u);
    u = lx_cmp_unary(op, LX_UNARY_NEG, u);
    u = lx_cmp_unary(op, LX_UNARY_LOG, u);
    return lx_cmp_unary(op, LX_UNARY_NEG, u);
}

lx_array lx_random_gumbel(const int *shape, int ndim, lx_dtype dtype, lx_array key) {
    const char *op = "lx_random_gumbel";
    if (!shape_ok(op, shape, ndim) || !float_dtype(op, dtype)) return LX_NULL_ARRAY;
    return lx_wrap(gumbel_node(op, shape, ndim, dtype, key_node(op, key)));
}

/* argmax(logits + gumbel) along axis; logits (consumed) reshaped to lshape, gumbel of gshape. */
static lx_array categorical_common(const char *op, lx_array logits, int axis, int num_samples,
                                   bool with_n, lx_array key) {
    lx_node *x = lx_arg(logits, op, "logits");
    if (!x) return LX_NULL_ARRAY;
    int ax = lx_norm_axis(op, axis, x->ndim);
    lx_status st = LX_OK;
    if (ax >= 0 && x->shape[ax] == 0)
        st = lx_set_error(LX_E_SHAPE, "%s: the axis of logits %s is empty", op, LX_SHAPE_STR(x));
    if (ax >= 0 && st == LX_OK && with_n && num_samples < 0)
        st = lx_set_error(LX_E_ARG, "%s: num_samples must be >= 0 (got %d)", op, num_samples);
    if (ax >= 0 && st == LX_OK && with_n && x->ndim + 1 > LX_MAX_NDIM)
        st = lx_set_error(LX_E_SHAPE, "%s: logits have too many dims for a sample axis", op);
    if (ax < 0 || st != LX_OK) {
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int nd = x->ndim, gshape[LX_MAX_NDIM], oshape[LX_MAX_NDIM], no = 0;
    for (int i = 0; i < nd; i++) {
        gshape[i] = x->shape[i];
        if (i != ax) oshape[no++] = x->shape[i];
    }
    if (with_n) {
        int lshape[LX_MAX_NDIM];
        for (int i = 0; i < nd; i++) lshape[i] = x->shape[i];
        lshape[nd] = 1;
        x = lx_node_reshape(op, x, lshape, nd + 1);
        gshape[nd] = num_samples;
        oshape[no++] = num_samples;
        nd++;
        if (!x) return LX_NULL_ARRAY;
    }
    lx_node *g = gumbel_node(op, gshape, nd, LX_FLOAT32, key_node(op, key));
    lx_node *s = lx_cmp_binary(op, LX_BINARY_ADD, g, x);
    if (!s) return LX_NULL_ARRAY;
    lx_arg_reduce_params p;
    memset(&p, 0, sizeof p);
    p.op = LX_ARG_MAX;
    p.axis = ax;
    lx_node *r = lx_build_derived(op, LX_PRIM_ARG_REDUCE, LX_UINT32, &s, 1, &p, sizeof p);
    return lx_wrap(lx_node_reshape(op, r, oshape, no));
}

lx_array lx_random_categorical(lx_array logits, int axis, lx_array key) {
    return categorical_common("lx_random_categorical", logits, axis, 0, false, key);
}

lx_array lx_random_categorical_n(lx_array logits, int axis, int num_samples, lx_array key) {
    return categorical_common("lx_random_categorical_n", logits, axis, num_samples, true, key);
}
