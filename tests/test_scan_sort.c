/*
 * test_scan_sort.c -- lx_cumsum/cumprod/cummax/cummin and lx_sort/argsort/partition/
 * argpartition/topk against references computed here (float64 for floats, exact 64-bit
 * modular arithmetic for integers).
 *
 * Inputs: random shapes of 1-4 dims, every axis given both as a positive and a negative
 * number, every dtype, contiguous or non-contiguous (a transpose view, a strided slice with
 * negative steps, a broadcast with zero strides), NaN/Inf/-0 and many ties; zero-size arrays
 * and size-1 axes; large inputs that run on several threads.
 *
 * Tolerances (u = unit roundoff: 2^-24 float32, 2^-53 float64):
 *   cumsum:  float32 (and float16/bfloat16, which accumulate in float32) sum sequentially, so
 *            by the recursive-summation bound |got_i - s_i| <= i*u*sum_{k<=i}|x_k|; half
 *            outputs add one rounding to the output type, u_h*|s_i| (u_h = 2^-11 float16,
 *            2^-8 bfloat16) plus 2^-25 absolute for float16 subnormals.
 *   cumprod: i*u*|p_i| + the same output rounding, checked while the running product stays
 *            in the accumulator's normal range (float16 outputs past 65520 must be Inf).
 *   cummax/cummin, sort, partition, topk: exact (they only move values); integers: exact, with
 *            two's-complement wrap for sums/products that overflow the dtype (MLX semantics).
 * Orderings: argsort must equal the stable reference argsort exactly (NaN last, ties by
 * index); partitions are checked by their property (everything before kth <= a[kth] <=
 * everything after, a permutation of the input) and, since lx documents it, position kth
 * must hold what the stable sort puts there; topk must equal the last k of the sorted row.
 */
#include <float.h>
#include <stdbool.h>

#include "core/dtype.h" /* white-box: dtype conversions to build inputs */
#include "test_util.h"

static const lx_dtype all_dtypes[] = {LX_BOOL,  LX_UINT8, LX_UINT16,  LX_UINT32,   LX_UINT64,
                                      LX_INT8,  LX_INT16, LX_INT32,   LX_INT64,    LX_FLOAT16,
                                      LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};
#define N_DTYPES ((int)(sizeof all_dtypes / sizeof all_dtypes[0]))

static bool is_flt(lx_dtype t) { return lx_dtype_is_float(t); }
static int bits_of(lx_dtype t) { return (int)lx_dtype_size(t) * 8; }

/* ---- raw element access ------------------------------------------------------------------ */

/* An integer element as int64 (uint64 as its bit pattern). */
static int64_t load_i(lx_dtype t, const void *p) {
    switch (t) {
    case LX_BOOL: return *(const uint8_t *)p != 0;
    case LX_UINT8: return *(const uint8_t *)p;
    case LX_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case LX_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case LX_UINT64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case LX_INT8: return *(const int8_t *)p;
    case LX_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case LX_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case LX_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    default: return 0;
    }
}

static void store_i(lx_dtype t, void *p, int64_t v) {
    switch (t) {
    case LX_BOOL: *(uint8_t *)p = v != 0; break;
    case LX_UINT8: case LX_INT8: *(uint8_t *)p = (uint8_t)v; break;
    case LX_UINT16: case LX_INT16: { uint16_t w = (uint16_t)v; memcpy(p, &w, 2); break; }
    case LX_UINT32: case LX_INT32: { uint32_t w = (uint32_t)v; memcpy(p, &w, 4); break; }
    default: { uint64_t w = (uint64_t)v; memcpy(p, &w, 8); break; }
    }
}

/* Any element as a double (exact for every value the tests use). */
static double load_d(lx_dtype t, const void *p) {
    if (is_flt(t)) return lx_dtype_load(t, p);
    if (t == LX_UINT64) return (double)(uint64_t)load_i(t, p);
    return (double)load_i(t, p);
}

/* v modulo 2^bits, as the signed or unsigned value of dtype t (64-bit: the bit pattern). */
static int64_t wrap_to(lx_dtype t, uint64_t v) {
    int b = bits_of(t);
    if (b >= 64) return (int64_t)v;
    uint64_t m = v & ((1ull << b) - 1);
    if (lx_dtype_is_signed(t) && m >= (1ull << (b - 1))) return (int64_t)m - (int64_t)(1ull << b);
    return (int64_t)m;
}

/* ---- inputs ---------------------------------------------------------------------------- */

typedef struct {
    lx_dtype dt;
    int ndim;
    int shape[LX_MAX_NDIM];
    size_t size;
    unsigned char *bytes; /* logical row-major elements */
    lx_array a;           /* kept; maybe a non-contiguous view */
    const char *how;
} input;

static size_t shape_size(const int *shape, int ndim) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

/* One random value of dtype t into p: floats are multiples of 0.25 in [-3, 3] (exact in every
 * float type, many ties) with some NaN, +-Inf and -0; integers small with some extremes. */
static void random_value(lx_dtype t, void *p, bool specials) {
    if (is_flt(t)) {
        double v = t_int(-12, 12) * 0.25;
        if (specials) {
            int r = t_int(0, 99);
            if (r < 5) v = NAN;
            else if (r < 7) v = INFINITY;
            else if (r < 9) v = -INFINITY;
            else if (r < 12) v = -0.0;
        }
        lx_dtype_store(t, p, v);
        return;
    }
    int64_t v;
    if (t == LX_BOOL) v = t_int(0, 1);
    else if (lx_dtype_is_signed(t)) v = t_int(-50, 50);
    else v = t_int(0, 100);
    if (specials && t != LX_BOOL && t_int(0, 99) < 3) { /* extremes of the dtype (or 2^40) */
        bool hi = t_int(0, 1);
        int b = bits_of(t) >= 64 ? 41 : bits_of(t);
        if (lx_dtype_is_signed(t)) v = hi ? (int64_t)((1ull << (b - 1)) - 1) : -(int64_t)(1ull << (b - 1));
        else v = hi ? (int64_t)((1ull << b) - 1) : 0;
    }
    store_i(t, p, v);
}

/* Makes the logical array `in` (shape, bytes filled) as an lx array: mode 0 contiguous,
 * 1 transpose view, 2 strided slice view (negative steps too), 3 broadcast view (the bytes are
 * made constant along the broadcast dims first). */
static void make_array(input *in, int mode) {
    lx_dtype t = in->dt;
    size_t es = lx_dtype_size(t);
    int nd = in->ndim;
    int *S = in->shape;
    if (in->size == 0 && mode == 3) mode = 0;
    if (mode == 0) {
        in->a = lx_array_new(in->bytes, S, nd, t);
        in->how = "contiguous";
    } else if (mode == 1) {
        int axes[LX_MAX_NDIM], B[LX_MAX_NDIM];
        for (int i = 0; i < nd; i++) axes[i] = i;
        for (int i = nd - 1; i > 0; i--) {
            int j = t_int(0, i), tmp = axes[i];
            axes[i] = axes[j];
            axes[j] = tmp;
        }
        for (int i = 0; i < nd; i++) B[axes[i]] = S[i];
        unsigned char *base = malloc(in->size * es + 1);
        int idx[LX_MAX_NDIM] = {0};
        for (size_t e = 0; e < in->size; e++) {
            size_t bo = 0; /* base offset of view index idx: base index j[axes[i]] = idx[i] */
            int j[LX_MAX_NDIM];
            for (int i = 0; i < nd; i++) j[axes[i]] = idx[i];
            for (int i = 0; i < nd; i++) bo = bo * (size_t)B[i] + (size_t)j[i];
            memcpy(base + bo * es, in->bytes + e * es, es);
            for (int i = nd - 1; i >= 0; i--) {
                if (++idx[i] < S[i]) break;
                idx[i] = 0;
            }
        }
        lx_array b = lx_array_new(base, B, nd, t);
        in->a = lx_transpose(b, axes, nd);
        free(base);
        in->how = "transposed";
    } else if (mode == 2) {
        int B[LX_MAX_NDIM], start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM],
            first[LX_MAX_NDIM];
        for (int i = 0; i < nd; i++) {
            int st = t_int(1, 3) * (t_int(0, 2) == 0 ? -1 : 1);
            int as = st < 0 ? -st : st;
            int off = t_int(0, as - 1);
            B[i] = S[i] == 0 ? t_int(0, 3) : off + (S[i] - 1) * as + 1 + t_int(0, 2);
            step[i] = st;
            if (st > 0) {
                start[i] = off;
                stop[i] = off + S[i] * as;
                first[i] = off;
            } else {
                start[i] = off + (S[i] - 1) * as;
                stop[i] = -(B[i] + 1); /* past the beginning */
                first[i] = start[i];
            }
            if (S[i] == 0) { start[i] = 0; stop[i] = 0; step[i] = 1; first[i] = 0; }
        }
        size_t bsize = shape_size(B, nd);
        unsigned char *base = malloc(bsize * es + 1);
        for (size_t e = 0; e < bsize; e++) random_value(t, base + e * es, true); /* junk */
        int idx[LX_MAX_NDIM] = {0};
        for (size_t e = 0; e < in->size; e++) {
            size_t bo = 0;
            for (int i = 0; i < nd; i++) bo = bo * (size_t)B[i] + (size_t)(first[i] + idx[i] * step[i]);
            memcpy(base + bo * es, in->bytes + e * es, es);
            for (int i = nd - 1; i >= 0; i--) {
                if (++idx[i] < S[i]) break;
                idx[i] = 0;
            }
        }
        lx_array b = lx_array_new(base, B, nd, t);
        in->a = lx_slice(b, start, stop, step, nd);
        free(base);
        in->how = "sliced";
        for (int i = 0; i < nd; i++) CHECK(lx_dim(in->a, i) == S[i]);
    } else {
        int B[LX_MAX_NDIM];
        bool any = false;
        for (int i = 0; i < nd; i++) {
            B[i] = (S[i] > 1 && t_int(0, 1)) ? 1 : S[i];
            any |= B[i] != S[i];
        }
        (void)any; /* no dim to broadcast: lx_broadcast_to is then the identity */
        size_t bsize = shape_size(B, nd);
        unsigned char *base = malloc(bsize * es + 1);
        memset(base, 0, bsize * es + 1);
        int idx[LX_MAX_NDIM] = {0};
        for (size_t e = 0; e < in->size; e++) { /* logical[idx] = base[idx clamped to B] */
            size_t bo = 0;
            for (int i = 0; i < nd; i++) bo = bo * (size_t)B[i] + (size_t)(B[i] == 1 ? 0 : idx[i]);
            bool fresh = true;
            for (int i = 0; i < nd; i++) fresh &= B[i] != 1 || idx[i] == 0;
            if (fresh) memcpy(base + bo * es, in->bytes + e * es, es);
            else memcpy(in->bytes + e * es, base + bo * es, es);
            for (int i = nd - 1; i >= 0; i--) {
                if (++idx[i] < S[i]) break;
                idx[i] = 0;
            }
        }
        lx_array b = lx_array_new(base, B, nd, t);
        in->a = lx_broadcast_to(b, S, nd);
        free(base);
        in->how = "broadcast";
    }
    lx_keep(in->a);
}

static void input_free(input *in) {
    lx_free(in->a);
    free(in->bytes);
    in->bytes = NULL;
}

/* ---- references ------------------------------------------------------------------------ */

typedef struct { double v; int64_t i; } vi;

/* NaN last, ties by index: the order of a stable sort. */
static int vi_cmp(const void *pa, const void *pb) {
    const vi *a = pa, *b = pb;
    bool na = isnan(a->v), nb = isnan(b->v);
    if (na != nb) return na ? 1 : -1;
    if (!na && a->v < b->v) return -1;
    if (!na && a->v > b->v) return 1;
    return (a->i > b->i) - (a->i < b->i);
}

static bool same_value(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }
/* a <= b in the order "NaN is largest" */
static bool le_nan(double a, double b) { return isnan(b) || (!isnan(a) && a <= b); }

static double out_roundoff(lx_dtype t) {
    return t == LX_FLOAT16 ? 0x1p-11 : t == LX_BFLOAT16 ? 0x1p-8 : 0.0;
}
static double acc_roundoff(lx_dtype t) { return t == LX_FLOAT64 ? 0x1p-53 : 0x1p-24; }

enum { OP_CUMSUM, OP_CUMPROD, OP_CUMMAX, OP_CUMMIN, OP_SORT, OP_ARGSORT, OP_PARTITION,
       OP_ARGPARTITION, OP_TOPK, OP_COUNT };
static const char *op_names[OP_COUNT] = {"cumsum", "cumprod", "cummax", "cummin", "sort",
                                         "argsort", "partition", "argpartition", "topk"};

static lx_dtype expected_dtype(int op, lx_dtype t) {
    if (op == OP_CUMSUM && t == LX_BOOL) return LX_INT32;
    if (op == OP_ARGSORT || op == OP_ARGPARTITION) return LX_UINT32;
    return t;
}

/* Checks one op's output (row-major bytes `got`, shape = input's with `k` along the axis for
 * topk) against references; returns the number of bad rows. */
static int check_op(const input *in, int op, int axis, int kth, int k, const unsigned char *got,
                    const char *ctx) {
    lx_dtype t = in->dt, ot = expected_dtype(op, t);
    size_t es = lx_dtype_size(t), oes = lx_dtype_size(ot);
    int64_t n = in->shape[axis], outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= in->shape[i];
    for (int i = axis + 1; i < in->ndim; i++) inner *= in->shape[i];
    int64_t on = op == OP_TOPK ? k : n;
    int bad_rows = 0;
    vi *row = malloc(sizeof(vi) * (size_t)(n + 1));
    vi *sorted = malloc(sizeof(vi) * (size_t)(n + 1));
    double *gv = malloc(sizeof(double) * (size_t)(n + 1));
    int64_t *gi = malloc(sizeof(int64_t) * (size_t)(n + 1));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            bool bad = false;
            char why[160] = "";
            for (int64_t i = 0; i < n; i++) {
                row[i].v = load_d(t, in->bytes + ((o * n + i) * inner + j) * es);
                row[i].i = i;
            }
            for (int64_t i = 0; i < on; i++) {
                const unsigned char *p = got + ((o * on + i) * inner + j) * oes;
                gv[i] = load_d(ot, p);
                gi[i] = is_flt(ot) ? 0 : load_i(ot, p);
            }
            memcpy(sorted, row, sizeof(vi) * (size_t)n);
            qsort(sorted, (size_t)n, sizeof(vi), vi_cmp);
            if (op <= OP_CUMMIN) {
                if (!is_flt(t)) { /* exact modular reference */
                    uint64_t acc = 0;
                    int64_t m = 0;
                    for (int64_t i = 0; i < n && !bad; i++) {
                        int64_t x = load_i(t, in->bytes + ((o * n + i) * inner + j) * es);
                        int64_t want;
                        if (op == OP_CUMSUM) {
                            acc = i ? acc + (uint64_t)x : (uint64_t)x;
                            want = wrap_to(ot, acc);
                        } else if (op == OP_CUMPROD) {
                            acc = i ? acc * (uint64_t)x : (uint64_t)x;
                            want = t == LX_BOOL ? acc != 0 : wrap_to(ot, acc);
                        } else {
                            /* (every uint64 test value fits in int64) */
                            if (i == 0) m = x;
                            else if (op == OP_CUMMAX) m = x > m ? x : m;
                            else m = x < m ? x : m;
                            want = m;
                        }
                        if (gi[i] != want) {
                            bad = true;
                            snprintf(why, sizeof why, "i=%lld got %lld want %lld", (long long)i,
                                     (long long)gi[i], (long long)want);
                        }
                    }
                } else {
                    double acc = 0, sabs = 0;
                    for (int64_t i = 0; i < n && !bad; i++) {
                        double x = row[i].v;
                        double tol;
                        if (op == OP_CUMSUM) {
                            acc = i ? acc + x : x;
                            sabs += fabs(x);
                            tol = (double)(i + 1) * acc_roundoff(t) * sabs;
                        } else if (op == OP_CUMPROD) {
                            acc = i ? acc * x : x;
                            tol = (double)(i + 1) * acc_roundoff(t) * fabs(acc);
                            /* past the accumulator's normal range the relative bound no
                             * longer holds: the rest of the row is not checked */
                            double lo = t == LX_FLOAT64 ? DBL_MIN : FLT_MIN;
                            double hi = t == LX_FLOAT64 ? DBL_MAX : FLT_MAX;
                            if (isfinite(acc) && acc != 0 && (fabs(acc) < lo || fabs(acc) > hi))
                                break;
                        } else {
                            if (i == 0 || isnan(x) || isnan(acc)) acc = i == 0 ? x : NAN;
                            else if (op == OP_CUMMAX) acc = x > acc ? x : acc;
                            else acc = x < acc ? x : acc;
                            tol = 0;
                        }
                        if (op <= OP_CUMPROD) {
                            tol += out_roundoff(t) * fabs(acc) + (t == LX_FLOAT16 ? 0x1p-25 : 0);
                        }
                        bool ok = isnan(acc) ? isnan(gv[i])
                                  : isinf(acc) ? gv[i] == acc
                                               : fabs(gv[i] - acc) <= tol;
                        /* float16 products past its range round to Inf */
                        if (!ok && t == LX_FLOAT16 && isinf(gv[i]) && signbit(gv[i]) == signbit(acc))
                            ok = fabs(acc) + tol >= 65520.0;
                        if (!ok) {
                            bad = true;
                            snprintf(why, sizeof why, "i=%lld got %.9g want %.9g tol %.3g",
                                     (long long)i, gv[i], acc, tol);
                        }
                    }
                }
            } else if (op == OP_SORT || op == OP_TOPK) {
                for (int64_t i = 0; i < on && !bad; i++) {
                    double want = sorted[n - on + i].v;
                    if (!same_value(gv[i], want)) {
                        bad = true;
                        snprintf(why, sizeof why, "i=%lld got %.9g want %.9g", (long long)i,
                                 gv[i], want);
                    }
                }
            } else if (op == OP_ARGSORT) {
                for (int64_t i = 0; i < n && !bad; i++)
                    if (gi[i] != sorted[i].i) {
                        bad = true;
                        snprintf(why, sizeof why, "i=%lld got index %lld want %lld",
                                 (long long)i, (long long)gi[i], (long long)sorted[i].i);
                    }
            } else { /* partition, argpartition */
                double *vals = malloc(sizeof(double) * (size_t)(n + 1));
                if (op == OP_ARGPARTITION) {
                    char *seen = calloc((size_t)n + 1, 1);
                    for (int64_t i = 0; i < n && !bad; i++) {
                        if (gi[i] < 0 || gi[i] >= n || seen[gi[i]]) {
                            bad = true;
                            snprintf(why, sizeof why, "not a permutation at %lld", (long long)i);
                        } else {
                            seen[gi[i]] = 1;
                            vals[i] = row[gi[i]].v;
                        }
                    }
                    if (!bad && gi[kth] != sorted[kth].i) {
                        bad = true;
                        snprintf(why, sizeof why, "index at kth %d is %lld, stable sort has %lld",
                                 kth, (long long)gi[kth], (long long)sorted[kth].i);
                    }
                    free(seen);
                } else {
                    memcpy(vals, gv, sizeof(double) * (size_t)n);
                    vi *tmp = malloc(sizeof(vi) * (size_t)(n + 1));
                    for (int64_t i = 0; i < n; i++) tmp[i] = (vi){vals[i], 0};
                    qsort(tmp, (size_t)n, sizeof(vi), vi_cmp);
                    for (int64_t i = 0; i < n && !bad; i++)
                        if (!same_value(tmp[i].v, sorted[i].v)) {
                            bad = true;
                            snprintf(why, sizeof why, "not a permutation of the row");
                        }
                    free(tmp);
                }
                if (!bad && !same_value(vals[kth], sorted[kth].v)) {
                    bad = true;
                    snprintf(why, sizeof why, "value at kth %d is %g, want %g", kth, vals[kth],
                             sorted[kth].v);
                }
                for (int64_t i = 0; i < n && !bad; i++) {
                    bool ok = i < kth ? le_nan(vals[i], vals[kth])
                              : i > kth ? le_nan(vals[kth], vals[i]) : true;
                    if (!ok) {
                        bad = true;
                        snprintf(why, sizeof why, "position %lld (%g) is on the wrong side of "
                                 "kth %d (%g)", (long long)i, vals[i], kth, vals[kth]);
                    }
                }
                free(vals);
            }
            if (bad) {
                if (bad_rows < 3)
                    fprintf(stderr, "  %s: %s row (o=%lld, j=%lld): %s\n", ctx, op_names[op],
                            (long long)o, (long long)j, why);
                bad_rows++;
            }
        }
    free(row);
    free(sorted);
    free(gv);
    free(gi);
    return bad_rows;
}

static lx_array run_op(int op, lx_array a, int axis, int kth, int k) {
    switch (op) {
    case OP_CUMSUM: return lx_cumsum(a, axis);
    case OP_CUMPROD: return lx_cumprod(a, axis);
    case OP_CUMMAX: return lx_cummax(a, axis);
    case OP_CUMMIN: return lx_cummin(a, axis);
    case OP_SORT: return lx_sort(a, axis);
    case OP_ARGSORT: return lx_argsort(a, axis);
    case OP_PARTITION: return lx_partition(a, kth, axis);
    case OP_ARGPARTITION: return lx_argpartition(a, kth, axis);
    default: return lx_topk(a, k, axis);
    }
}

/* Runs every op on every axis of `in` (axis given as +ax or ax - ndim) and checks them. */
static void check_all_ops(input *in) {
    for (int ax = 0; ax < in->ndim; ax++) {
        int given = t_int(0, 1) ? ax : ax - in->ndim;
        int n = in->shape[ax];
        for (int op = 0; op < OP_COUNT; op++) {
            if ((op == OP_PARTITION || op == OP_ARGPARTITION) && n == 0) continue;
            int kth = n ? t_int(0, n - 1) : 0;
            int kth_given = (n && t_int(0, 1)) ? kth - n : kth; /* negative kth as MLX */
            int k = t_int(0, n);
            lx_array r = run_op(op, in->a, given, kth_given, k);
            char ctx[200];
            snprintf(ctx, sizeof ctx, "%s %s %s shape [%d,%d,%d,%d](nd %d) axis %d kth %d k %d",
                     op_names[op], lx_dtype_name(in->dt), in->how, in->shape[0],
                     in->ndim > 1 ? in->shape[1] : -1, in->ndim > 2 ? in->shape[2] : -1,
                     in->ndim > 3 ? in->shape[3] : -1, in->ndim, given, kth_given, k);
            if (lx_is_null(r)) {
                CHECK_MSG(false, "%s: null result: %s", ctx, lx_error_message());
                lx_clear_error();
                continue;
            }
            lx_dtype ot = expected_dtype(op, in->dt);
            CHECK_MSG(lx_dtype_of(r) == ot, "%s: dtype %s, want %s", ctx,
                      lx_dtype_name(lx_dtype_of(r)), lx_dtype_name(ot));
            CHECK_MSG(lx_ndim(r) == in->ndim, "%s: ndim", ctx);
            for (int i = 0; i < in->ndim; i++)
                CHECK_MSG(lx_dim(r, i) == (i == ax && op == OP_TOPK ? k : in->shape[i]),
                          "%s: dim %d is %d", ctx, i, lx_dim(r, i));
            size_t nb = lx_nbytes(r);
            unsigned char *got = malloc(nb + 1);
            lx_status st = lx_read(r, got, nb);
            CHECK_MSG(st == LX_OK, "%s: read: %s", ctx, lx_error_message());
            if (st == LX_OK) {
                int bad = check_op(in, op, ax, kth, k, got, ctx);
                CHECK_MSG(bad == 0, "%s: %d bad rows", ctx, bad);
            }
            lx_clear_error();
            free(got);
            lx_free(r);
        }
    }
}

static void random_input(input *in, lx_dtype t, int ndim, const int *shape, bool specials) {
    in->dt = t;
    in->ndim = ndim;
    memcpy(in->shape, shape, sizeof(int) * (size_t)ndim);
    in->size = shape_size(shape, ndim);
    size_t es = lx_dtype_size(t);
    in->bytes = malloc(in->size * es + 1);
    for (size_t e = 0; e < in->size; e++) random_value(t, in->bytes + e * es, specials);
}

/* ---- tests ------------------------------------------------------------------------------ */

/* LX_TEST_SEED=n changes the random tests' seed (to fuzz); the default is fixed. */
static uint64_t seed_or(uint64_t dflt) {
    const char *e = getenv("LX_TEST_SEED");
    return e && *e ? strtoull(e, NULL, 0) * 0x9e3779b97f4a7c15ull + dflt : dflt;
}

static void test_random(void) {
    t_seed(seed_or(0x5ca115027ull));
    for (int iter = 0; iter < 260; iter++) {
        lx_dtype t = all_dtypes[iter % N_DTYPES];
        int nd = t_int(1, 4), shape[LX_MAX_NDIM];
        for (int i = 0; i < nd; i++) shape[i] = t_int(1, nd <= 2 ? 9 : 5);
        if (t_int(0, 4) == 0) shape[t_int(0, nd - 1)] = t_int(10, 40); /* one longer axis */
        input in;
        random_input(&in, t, nd, shape, t_int(0, 2) != 0);
        make_array(&in, iter / N_DTYPES % 4);
        check_all_ops(&in);
        input_free(&in);
        lx_sweep();
    }
}

/* Rows long enough for the radix sort (RADIX_MIN), every dtype, every layout. */
static void test_medium_rows(void) {
    t_seed(seed_or(99));
    for (int d = 0; d < N_DTYPES; d++) {
        input in;
        int shape[2] = {t_int(1, 3), t_int(512, 1500)};
        if (d % 2) shape[0] = shape[1], shape[1] = t_int(1, 3);
        random_input(&in, all_dtypes[d], 2, shape, true);
        make_array(&in, d % 4);
        check_all_ops(&in);
        input_free(&in);
        lx_sweep();
    }
}

static void test_zero_size_and_size1(void) {
    t_seed(7);
    const int shapes[][3] = {{0, 0, 0}, {3, 0, 0}, {0, 4, 0}, {2, 0, 3}, {1, 1, 1}, {1, 5, 1}};
    const int nds[] = {1, 2, 2, 3, 3, 3};
    for (int s = 0; s < 6; s++)
        for (int d = 0; d < N_DTYPES; d += 3) {
            input in;
            random_input(&in, all_dtypes[d], nds[s], shapes[s], true);
            make_array(&in, s % 3);
            check_all_ops(&in);
            input_free(&in);
        }
    /* topk with k = 0 of a non-empty axis, partition of an empty axis is an error */
    lx_array a = lx_zeros((int[]){3, 4}, 2, LX_FLOAT32);
    lx_array t0 = lx_topk(a, 0, 1);
    CHECK(lx_dim(t0, 0) == 3 && lx_dim(t0, 1) == 0);
    CHECK_OK(lx_eval(t0));
    lx_array e = lx_zeros((int[]){3, 0}, 2, LX_FLOAT32);
    CHECK(lx_is_null(lx_partition(e, 0, 1)));
    CHECK_ERROR(LX_E_ARG);
    lx_free(t0);
}

static void test_nan_and_ties(void) {
    const float nan = NAN, inf = INFINITY;
    float x[] = {3, nan, 1, -inf, nan, 2, inf, -0.0f, 0.0f, 1};
    lx_array a = lx_array_f32(x, (int[]){10}, 1);
    lx_array s = lx_sort(a, 0), i = lx_argsort(a, -1), k = lx_topk(a, 4, 0);
    lx_array cmx = lx_cummax(a, 0), cmn = lx_cummin(a, 0);
    CHECK_OK(lx_eval(s, i, k, cmx, cmn));
    float sv[10], kv[4], mx[10], mn[10];
    uint32_t iv[10];
    CHECK_OK(lx_read(s, sv, sizeof sv));
    CHECK_OK(lx_read(i, iv, sizeof iv));
    CHECK_OK(lx_read(k, kv, sizeof kv));
    CHECK_OK(lx_read(cmx, mx, sizeof mx));
    CHECK_OK(lx_read(cmn, mn, sizeof mn));
    const uint32_t want_i[10] = {3, 7, 8, 2, 9, 5, 0, 6, 1, 4}; /* stable, NaN last */
    for (int j = 0; j < 10; j++) CHECK_MSG(iv[j] == want_i[j], "argsort[%d] = %u", j, iv[j]);
    const float want_s[8] = {-inf, -0.0f, 0.0f, 1, 1, 2, 3, inf};
    for (int j = 0; j < 8; j++) CHECK_MSG(sv[j] == want_s[j], "sort[%d] = %g", j, sv[j]);
    CHECK(signbit(sv[1]) && !signbit(sv[2])); /* -0 and 0 keep their order (stable) */
    CHECK(isnan(sv[8]) && isnan(sv[9]));
    CHECK(kv[0] == 3 && kv[1] == inf && isnan(kv[2]) && isnan(kv[3])); /* ascending, NaN largest */
    CHECK(mx[0] == 3 && isnan(mx[1]) && isnan(mx[9])); /* NaN propagates */
    CHECK(mn[0] == 3 && isnan(mn[1]) && isnan(mn[9]));
    lx_free(s), lx_free(i), lx_free(k), lx_free(cmx), lx_free(cmn);
}

static void test_dtypes_and_wrap(void) {
    /* MLX: cumsum of bool is int32; cumprod of bool is bool; int8 keeps int8 and wraps */
    bool b[6] = {1, 0, 1, 1, 0, 1};
    lx_array ab = lx_array_new(b, (int[]){6}, 1, LX_BOOL);
    lx_array cs = lx_cumsum(ab, 0), cp = lx_cumprod(ab, 0);
    CHECK(lx_dtype_of(cs) == LX_INT32 && lx_dtype_of(cp) == LX_BOOL);
    int8_t q[4] = {100, 100, -128, 127};
    lx_array aq = lx_array_new(q, (int[]){4}, 1, LX_INT8);
    lx_array qs = lx_cumsum(aq, 0), qp = lx_cumprod(aq, 0);
    CHECK(lx_dtype_of(qs) == LX_INT8);
    CHECK(lx_dtype_of(lx_argsort(aq, 0)) == LX_UINT32 && lx_dtype_of(lx_topk(aq, 2, 0)) == LX_INT8);
    CHECK_OK(lx_eval(cs, cp, qs, qp));
    int32_t csv[6];
    bool cpv[6];
    int8_t qsv[4], qpv[4];
    CHECK_OK(lx_read(cs, csv, sizeof csv));
    CHECK_OK(lx_read(cp, cpv, sizeof cpv));
    CHECK_OK(lx_read(qs, qsv, sizeof qsv));
    CHECK_OK(lx_read(qp, qpv, sizeof qpv));
    const int32_t want_cs[6] = {1, 1, 2, 3, 3, 4};
    for (int j = 0; j < 6; j++) CHECK(csv[j] == want_cs[j] && cpv[j] == (j == 0));
    /* 100, 200 -> -56, -56 - 128 = -184 -> 72, 72 + 127 = 199 -> -57 */
    CHECK(qsv[0] == 100 && qsv[1] == -56 && qsv[2] == 72 && qsv[3] == -57);
    /* 100, 10000 -> 16, 16 * -128 = -2048 -> 0, 0 */
    CHECK(qpv[0] == 100 && qpv[1] == 16 && qpv[2] == 0 && qpv[3] == 0);
    lx_free(cs), lx_free(cp), lx_free(qs), lx_free(qp);
}

static void test_errors(void) {
    lx_array a = lx_zeros((int[]){2, 3}, 2, LX_FLOAT32);
    lx_keep(a);
    lx_array (*const scans[4])(lx_array, int) = {lx_cumsum, lx_cumprod, lx_cummax, lx_cummin};
    for (int i = 0; i < 4; i++) {
        CHECK(lx_is_null(scans[i](a, 2)));
        CHECK_ERROR(LX_E_ARG);
        CHECK(lx_is_null(scans[i](a, -3)));
        CHECK_ERROR(LX_E_ARG);
        CHECK(lx_is_null(scans[i](LX_NULL_ARRAY, 0)));
        CHECK(lx_error() != LX_OK);
        lx_clear_error();
    }
    CHECK(lx_is_null(lx_sort(a, 2)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_argsort(a, -3)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_partition(a, 3, 1)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_argpartition(a, -4, 1)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_argpartition(a, 2, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(!lx_is_null(lx_argpartition(a, -3, 1))); /* -3 + 3 = 0 is fine */
    CHECK(!lx_is_null(lx_partition(a, -1, 0)));
    CHECK(lx_is_null(lx_topk(a, 4, 1)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_topk(a, -1, 1)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_topk(a, 1, 5)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(!lx_is_null(lx_topk(a, 3, -1)));
    /* a 0-d array has no axis */
    lx_array s = lx_scalar_f32(1.0f);
    CHECK(lx_is_null(lx_cumsum(s, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_sort(s, -1)));
    CHECK_ERROR(LX_E_ARG);
    /* null and released arrays */
    CHECK(lx_is_null(lx_sort(LX_NULL_ARRAY, 0)));
    CHECK(lx_error() != LX_OK);
    lx_clear_error();
    lx_array gone = lx_zeros((int[]){4}, 1, LX_FLOAT32);
    lx_sweep(); /* releases the unkept `gone` */
    CHECK(lx_is_null(lx_topk(gone, 1, 0)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_cumsum(gone, 0)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_argpartition(gone, 0, 0)));
    CHECK_ERROR(LX_E_FREED);
    /* the error is sticky through a chain and reported at eval */
    lx_array chain = lx_cumsum(lx_sort(a, 7), 0);
    CHECK(lx_is_null(chain));
    CHECK(lx_eval(a) == LX_E_ARG);
    lx_clear_error();
    lx_free(a);
}

/* Lazy inputs and outputs used by further ops: no eval in between. */
static void test_chained(void) {
    float x[12] = {5, 1, 4, 2, 3, 0, 11, 7, 9, 8, 10, 6};
    lx_array a = lx_array_f32(x, (int[]){2, 6}, 2);
    lx_array r = lx_cumsum(lx_transpose(lx_sort(a, 1), NULL, 0), 0); /* [6, 2] */
    lx_array top = lx_topk(lx_cummax(a, -1), 2, -1);
    CHECK_OK(lx_eval(r, top));
    float rv[12], tv[4];
    CHECK_OK(lx_read(r, rv, sizeof rv));
    CHECK_OK(lx_read(top, tv, sizeof tv));
    const float want[12] = {0, 6, 1, 13, 3, 21, 6, 30, 10, 40, 15, 51};
    for (int i = 0; i < 12; i++) CHECK_MSG(rv[i] == want[i], "r[%d] = %g", i, rv[i]);
    CHECK(tv[0] == 5 && tv[1] == 5 && tv[2] == 11 && tv[3] == 11);
    lx_free(r), lx_free(top);
}

static double rnd_normalish(void) { return t_uniform(-1, 1) + t_uniform(-1, 1); }

/* Large arrays: the parallel paths, the error bound of a long float32 cumsum, and sort /
 * select on adversarial rows. */
static void test_large(void) {
    t_seed(seed_or(12345));
    int R = 37, C = 5003;
    size_t n = (size_t)R * C;
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)rnd_normalish();
    lx_array a = lx_array_f32(x, (int[]){R, C}, 2);
    lx_keep(a);
    lx_array c1 = lx_cumsum(a, 1), c0 = lx_cumsum(a, 0), s1 = lx_sort(a, 1), i0 = lx_argsort(a, 0);
    lx_array p1 = lx_argpartition(a, 1234, -1), t1 = lx_topk(a, 17, 1);
    CHECK_OK(lx_eval(c1, c0, s1, i0, p1, t1));
    input in = {.dt = LX_FLOAT32, .ndim = 2, .shape = {R, C}, .size = n,
                .bytes = (unsigned char *)x, .a = a, .how = "large"};
    struct { lx_array r; int op, axis, kth, k; } cases[] = {
        {c1, OP_CUMSUM, 1, 0, 0},      {c0, OP_CUMSUM, 0, 0, 0},       {s1, OP_SORT, 1, 0, 0},
        {i0, OP_ARGSORT, 0, 0, 0},     {p1, OP_ARGPARTITION, 1, 1234, 0}, {t1, OP_TOPK, 1, 0, 17}};
    for (int c = 0; c < 6; c++) {
        size_t nb = lx_nbytes(cases[c].r);
        unsigned char *got = malloc(nb);
        CHECK_OK(lx_read(cases[c].r, got, nb));
        CHECK_MSG(check_op(&in, cases[c].op, cases[c].axis, cases[c].kth, cases[c].k, got,
                           "large") == 0, "large case %d", c);
        free(got);
        lx_free(cases[c].r);
    }
    /* the error of one long float32 cumsum against its bound, and how close it comes */
    float *cv = malloc((size_t)C * sizeof(float));
    lx_array row = lx_cumsum(lx_slice(a, (int[]){5, 0}, (int[]){6, C}, NULL, 2), -1);
    CHECK_OK(lx_eval(row));
    CHECK_OK(lx_read(row, cv, (size_t)C * sizeof(float)));
    double acc = 0, sabs = 0, worst = 0;
    for (int i = 0; i < C; i++) {
        acc += x[5 * C + i];
        sabs += fabs(x[5 * C + i]);
        double bound = (i + 1) * 0x1p-24 * sabs;
        if (fabs(cv[i] - acc) / bound > worst) worst = fabs(cv[i] - acc) / bound;
    }
    CHECK_MSG(worst <= 1.0, "cumsum error %.3g of the bound", worst);
    printf("  float32 cumsum of %d values: worst error %.3g of n*eps*sum|x|\n", C, worst);
    free(cv);
    lx_free(row);
    lx_free(a);
    free(x);

    /* one long row in several patterns, every dtype width */
    const int L = 200003;
    const lx_dtype dts[] = {LX_FLOAT32, LX_INT64, LX_FLOAT64, LX_UINT8, LX_BFLOAT16};
    for (int d = 0; d < 5; d++)
        for (int pat = 0; pat < 6; pat++) {
            lx_dtype t = dts[d];
            input big;
            big.dt = t;
            big.ndim = 1;
            big.shape[0] = L;
            big.size = (size_t)L;
            size_t es = lx_dtype_size(t);
            big.bytes = malloc((size_t)L * es);
            for (int i = 0; i < L; i++) {
                double v = pat == 0 ? t_int(0, 1000000)      /* random */
                         : pat == 1 ? i                      /* sorted */
                         : pat == 2 ? L - i                  /* reversed */
                         : pat == 3 ? 7                      /* all equal */
                         : pat == 4 ? (i < L / 2 ? i : L - i) /* organ pipe */
                                    : (i % 3 ? 1 : -1) * (double)t_int(0, 1000000); /* signs */
                if (t == LX_UINT8) v = fmod(fabs(v), 200);
                if (is_flt(t)) lx_dtype_store(t, big.bytes + i * es, v);
                else store_i(t, big.bytes + i * es, (int64_t)v);
            }
            big.a = lx_array_new(big.bytes, big.shape, 1, t);
            big.how = "long row";
            int kth = t_int(0, L - 1);
            lx_array s = lx_argsort(big.a, 0), p = lx_partition(big.a, kth, 0),
                     k = lx_topk(big.a, 1000, 0);
            CHECK_OK(lx_eval(s, p, k));
            struct { lx_array r; int op; } bc[] = {{s, OP_ARGSORT}, {p, OP_PARTITION}, {k, OP_TOPK}};
            for (int c = 0; c < 3; c++) {
                size_t nb = lx_nbytes(bc[c].r);
                unsigned char *got = malloc(nb);
                CHECK_OK(lx_read(bc[c].r, got, nb));
                char ctx[64];
                snprintf(ctx, sizeof ctx, "long row %s pattern %d", lx_dtype_name(t), pat);
                CHECK_MSG(check_op(&big, bc[c].op, 0, kth, 1000, got, ctx) == 0, "%s", ctx);
                free(got);
                lx_free(bc[c].r);
            }
            free(big.bytes);
            lx_sweep();
        }
}

/* ---- long rows sorted on several threads ------------------------------------------------- */

/* The reference order of the parallel row sort: (value, index), NaN after everything (NaNs
 * equal), -0 equal to +0; int64 compared as integers. */
typedef struct {
    double d;
    int64_t i;
    int64_t idx;
    bool nan;
} pref;

static int pref_cmp(const void *pa, const void *pb) {
    const pref *a = pa, *b = pb;
    if (a->nan != b->nan) return a->nan ? 1 : -1;
    if (!a->nan) {
        if (a->d != b->d) return a->d < b->d ? -1 : 1;
        if (a->i != b->i) return a->i < b->i ? -1 : 1;
    }
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Values of pattern pat: 0 few distinct values (many equal keys), 1 NaN/-0/+0/Inf (int64:
 * its extremes) among random values, 2 clustered (float: softmax-like, int64: 2^40 + small),
 * 3 all equal, 4 random over the whole range. */
static double long_row_value(int pat, int64_t i) {
    switch (pat) {
    case 0: return t_int(-20, 20);
    case 1: {
        int r = t_int(0, 9);
        if (r == 0) return NAN;
        if (r == 1) return -0.0;
        if (r == 2) return 0.0;
        if (r == 3) return t_int(0, 1) ? INFINITY : -INFINITY;
        return t_uniform(-1e3, 1e3);
    }
    case 2: return exp(-8 * t_uniform(0, 1) * t_uniform(0, 1)) / 131072.0;
    case 3: return 3;
    default: return t_uniform(-1, 1) * pow(2, t_int(-60, 60)) + (double)(i % 2);
    }
}

static int64_t long_row_int(int pat) {
    switch (pat) {
    case 0: return t_int(-20, 20);
    case 1: {
        int r = t_int(0, 9);
        if (r < 4) return r == 0 ? INT64_MIN : r == 1 ? INT64_MAX : r == 2 ? 0 : -1;
        return t_int(-1000000, 1000000);
    }
    case 2: return ((int64_t)1 << 40) + t_int(0, 1000);
    case 3: return 3;
    default: return (int64_t)t_next();
    }
}

/* Sorts and argsorts of single long rows (and of two rows on four threads) around the
 * parallel radix sort's threshold, on 2, 3 and 4 threads (slices of equal and unequal
 * lengths), against a qsort of (value, index): exact indices, bit-exact values. */
static void test_parallel_rows(void) {
    t_seed(seed_or(4242));
    const lx_dtype dts[] = {LX_FLOAT32, LX_BFLOAT16, LX_INT64, LX_FLOAT64};
    const int sizes[] = {99999, 100000, 100003, 131072}; /* around RADIX_PAR_MIN */
    int failures = 0;
    for (int th = 2; th <= 4; th++) {
        lx_set_num_threads(th);
        for (int d = 0; d < 4; d++)
            for (int pat = 0; pat < 5; pat++) {
                lx_dtype t = dts[d];
                int z = (th + d + pat) % 4; /* every size for every dtype over the threads */
                int n = sizes[z], rows = (d + pat) % 3 == 0 ? th / 2 : 1;
                size_t es = lx_dtype_size(t), total = (size_t)rows * (size_t)n;
                unsigned char *x = malloc(total * es);
                pref *ref = malloc((size_t)n * sizeof *ref);
                for (size_t i = 0; i < total; i++) {
                    if (t == LX_INT64) store_i(t, x + i * es, long_row_int(pat));
                    else lx_dtype_store(t, x + i * es, long_row_value(pat, (int64_t)i));
                }
                lx_array a = lx_array_new(x, (int[]){rows, n}, 2, t);
                lx_array ia = lx_argsort(a, -1), sa = lx_sort(a, 1);
                CHECK_OK(lx_eval(ia, sa));
                uint32_t *gi = malloc(total * sizeof(uint32_t));
                unsigned char *gs = malloc(total * es);
                CHECK_OK(lx_read(ia, gi, total * sizeof(uint32_t)));
                CHECK_OK(lx_read(sa, gs, total * es));
                for (int r = 0; r < rows; r++) {
                    const unsigned char *row = x + (size_t)r * n * es;
                    for (int i = 0; i < n; i++) {
                        const unsigned char *e = row + (size_t)i * es;
                        ref[i].idx = i;
                        ref[i].i = t == LX_INT64 ? load_i(t, e) : 0;
                        ref[i].d = t == LX_INT64 ? 0 : lx_dtype_load(t, e);
                        ref[i].nan = isnan(ref[i].d);
                    }
                    qsort(ref, (size_t)n, sizeof *ref, pref_cmp);
                    int bad = -1;
                    for (int i = 0; i < n && bad < 0; i++) {
                        size_t o = (size_t)r * n + (size_t)i;
                        if (gi[o] != (uint32_t)ref[i].idx ||
                            memcmp(gs + o * es, row + (size_t)ref[i].idx * es, es) != 0)
                            bad = i;
                    }
                    if (bad >= 0 && failures++ < 5)
                        fprintf(stderr, "  %d threads, %s [%d, %d] pattern %d row %d: "
                                "position %d holds index %u, want %lld\n", th,
                                lx_dtype_name(t), rows, n, pat, r, bad,
                                gi[(size_t)r * n + (size_t)bad], (long long)ref[bad].idx);
                    CHECK(bad < 0);
                }
                free(gi), free(gs), free(ref), free(x);
                lx_free(ia), lx_free(sa), lx_free(a);
                lx_sweep();
            }
    }
    lx_set_num_threads(4);
}

int main(void) {
    lx_set_num_threads(4);
    RUN_TEST(test_nan_and_ties);
    RUN_TEST(test_dtypes_and_wrap);
    RUN_TEST(test_chained);
    RUN_TEST(test_errors);
    RUN_TEST(test_zero_size_and_size1);
    RUN_TEST(test_random);
    RUN_TEST(test_medium_rows);
    RUN_TEST(test_large);
    RUN_TEST(test_parallel_rows);
    return test_finish();
}
