/*
 * test_indexing.c -- indexing and layout ops against references computed here in float64:
 * concatenate, stack, split, split_equal, slice_update, take, take_along_axis,
 * put_along_axis, pad, tile, repeat, tril, triu.
 *
 * These ops only move elements, so every comparison is exact (tolerance 0): values are small
 * integers (quarters for floats) that every dtype holds exactly, and the reference is the same
 * value round-tripped through the dtype. Inputs come in several layouts (contiguous,
 * transposed, strided and reversed slices, broadcast) so the kernels see arbitrary strides;
 * shapes are random, with size-0 and size-1 dims and negative axes. The KV-cache test checks
 * that slice_update on a donated buffer writes in place (same address, no new memory).
 */
#include "core/dtype.h"
#include "core/node.h"
#include "test_util.h"

static const lx_dtype ALL_DTYPES[] = {LX_BOOL,  LX_UINT8, LX_UINT16, LX_UINT32,   LX_UINT64,
                                      LX_INT8,  LX_INT16, LX_INT32,  LX_INT64,    LX_FLOAT16,
                                      LX_BFLOAT16, LX_FLOAT32, LX_FLOAT64};
#define N_DTYPES ((int)(sizeof ALL_DTYPES / sizeof ALL_DTYPES[0]))
static const lx_dtype INDEX_DTYPES[] = {LX_UINT8, LX_UINT16, LX_UINT32, LX_UINT64,
                                        LX_INT8,  LX_INT16,  LX_INT32,  LX_INT64};
#define N_INDEX_DTYPES ((int)(sizeof INDEX_DTYPES / sizeof INDEX_DTYPES[0]))

/* ---- float64 reference tensors ---------------------------------------------------------- */

typedef struct {
    int ndim;
    int shape[LX_MAX_NDIM];
    double *v;
} ref_t;

static int64_t shape_size(const int *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

static ref_t ref_new(const int *shape, int ndim) {
    ref_t r;
    r.ndim = ndim;
    for (int i = 0; i < ndim; i++) r.shape[i] = shape[i];
    int64_t n = shape_size(shape, ndim);
    r.v = calloc((size_t)(n ? n : 1), sizeof(double));
    return r;
}

static int64_t ref_size(const ref_t *r) { return shape_size(r->shape, r->ndim); }

static void unravel(int64_t k, const int *shape, int ndim, int *c) {
    for (int i = ndim - 1; i >= 0; i--) {
        c[i] = shape[i] ? (int)(k % shape[i]) : 0;
        k = shape[i] ? k / shape[i] : 0;
    }
}

static int64_t ravel(const int *c, const int *shape, int ndim) {
    int64_t k = 0;
    for (int i = 0; i < ndim; i++) k = k * shape[i] + c[i];
    return k;
}

/* A value every dtype holds exactly, as the dtype stores it. */
static double rand_value(lx_dtype t) {
    double v;
    if (t == LX_BOOL) v = t_int(0, 1);
    else if (lx_dtype_is_float(t)) v = t_int(-200, 200) / 4.0;
    else if (lx_dtype_is_signed(t)) v = t_int(-100, 100);
    else v = t_int(0, 200);
    unsigned char b[8];
    lx_dtype_store(t, b, v);
    return lx_dtype_load(t, b);
}

static lx_array from_ref(const ref_t *r, lx_dtype t) {
    int64_t n = ref_size(r);
    size_t es = lx_dtype_size(t);
    unsigned char *buf = malloc((size_t)(n ? n : 1) * es);
    for (int64_t i = 0; i < n; i++) lx_dtype_store(t, buf + i * es, r->v[i]);
    lx_array a = lx_array_new(buf, r->shape, r->ndim, t);
    free(buf);
    return a;
}

static ref_t rand_ref(const int *shape, int ndim, lx_dtype t) {
    ref_t r = ref_new(shape, ndim);
    for (int64_t i = 0; i < ref_size(&r); i++) r.v[i] = rand_value(t);
    return r;
}

enum { L_CONTIG, L_TRANSPOSED, L_STRIDED, L_REVERSED, L_BROADCAST, L_COUNT };

/* An array holding `r` (dtype t) in the given layout; for L_BROADCAST the values of r are
 * first made equal along axis 0 (r is modified) so that a broadcast view can hold them. */
static lx_array make_input(ref_t *r, lx_dtype t, int layout) {
    int nd = r->ndim;
    if (nd == 0) layout = L_CONTIG;
    if (layout == L_CONTIG) return from_ref(r, t);
    int c[LX_MAX_NDIM] = {0}, bc[LX_MAX_NDIM] = {0};
    if (layout == L_TRANSPOSED) {
        int bshape[LX_MAX_NDIM] = {0};
        for (int i = 0; i < nd; i++) bshape[i] = r->shape[nd - 1 - i];
        ref_t b = ref_new(bshape, nd);
        for (int64_t k = 0; k < ref_size(r); k++) {
            unravel(k, r->shape, nd, c);
            for (int i = 0; i < nd; i++) bc[i] = c[nd - 1 - i];
            b.v[ravel(bc, bshape, nd)] = r->v[k];
        }
        lx_array base = from_ref(&b, t);
        free(b.v);
        return lx_transpose(base, NULL, 0);
    }
    if (layout == L_STRIDED || layout == L_REVERSED) {
        int bshape[LX_MAX_NDIM] = {0}, start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM];
        for (int i = 0; i < nd; i++) {
            if (layout == L_STRIDED) { /* base 2d+1 long, elements at 1, 3, 5, ... */
                bshape[i] = 2 * r->shape[i] + 1;
                start[i] = 1;
                stop[i] = 1 + 2 * r->shape[i];
                step[i] = 2;
            } else { /* base d+1 long, elements at d-1, d-2, ..., 0 (reversed) */
                bshape[i] = r->shape[i] + 1;
                start[i] = r->shape[i] ? r->shape[i] - 1 : 0; /* -1 would mean the last */
                stop[i] = r->shape[i] ? -bshape[i] - 1 : 0;
                step[i] = -1;
            }
        }
        ref_t b = rand_ref(bshape, nd, t);
        for (int64_t k = 0; k < ref_size(r); k++) {
            unravel(k, r->shape, nd, c);
            for (int i = 0; i < nd; i++)
                bc[i] = layout == L_STRIDED ? 1 + 2 * c[i] : r->shape[i] - 1 - c[i];
            b.v[ravel(bc, bshape, nd)] = r->v[k];
        }
        lx_array base = from_ref(&b, t);
        free(b.v);
        return lx_slice(base, start, stop, step, nd);
    }
    /* broadcast along axis 0 */
    int row_shape[LX_MAX_NDIM];
    memcpy(row_shape, r->shape, sizeof row_shape);
    row_shape[0] = 1;
    ref_t row = ref_new(row_shape, nd);
    for (int64_t k = 0; k < ref_size(r); k++) {
        unravel(k, r->shape, nd, c);
        int c0 = c[0];
        c[0] = 0;
        if (c0 == 0) row.v[ravel(c, row_shape, nd)] = r->v[k];
        else r->v[k] = row.v[ravel(c, row_shape, nd)];
    }
    lx_array base = from_ref(&row, t);
    free(row.v);
    return lx_broadcast_to(base, r->shape, nd);
}

/* Exact comparison of an array with a reference (shape, dtype and values). */
static int check_ref(const char *what, lx_array a, const ref_t *want, lx_dtype t) {
    t_checks++;
    int shape[LX_MAX_NDIM];
    int nd = lx_shape(a, shape);
    if (lx_error() != LX_OK || nd != want->ndim ||
        memcmp(shape, want->shape, sizeof(int) * (size_t)nd) != 0 || lx_dtype_of(a) != t) {
        t_failures++;
        fprintf(stderr, "%s: bad result: ndim %d (want %d), dtype %s (want %s), error %s\n",
                what, nd, want->ndim, lx_dtype_name(lx_dtype_of(a)), lx_dtype_name(t),
                lx_error_message());
        if (nd == want->ndim)
            for (int i = 0; i < nd; i++)
                fprintf(stderr, "  dim %d: %d want %d\n", i, shape[i], want->shape[i]);
        lx_clear_error();
        return 0;
    }
    int64_t n = ref_size(want);
    size_t es = lx_dtype_size(t);
    unsigned char *buf = malloc((size_t)(n ? n : 1) * es);
    lx_status st = lx_read(a, buf, (size_t)n * es);
    int bad = 0;
    if (st != LX_OK) {
        fprintf(stderr, "%s: lx_read failed: %s\n", what, lx_error_message());
        lx_clear_error();
        bad = 1;
    }
    for (int64_t i = 0; st == LX_OK && i < n; i++) {
        double got = lx_dtype_load(t, buf + i * es);
        if (got != want->v[i]) {
            if (bad < 5) fprintf(stderr, "  %s[%lld]: got %g want %g\n", what, (long long)i, got, want->v[i]);
            bad++;
        }
    }
    free(buf);
    if (bad) {
        t_failures++;
        fprintf(stderr, "%s (%s): %d of %lld values differ\n", what, lx_dtype_name(t), bad,
                (long long)n);
    }
    return bad == 0;
}

static void rand_shape(int *shape, int ndim, int lo, int hi) {
    for (int i = 0; i < ndim; i++) shape[i] = t_int(lo, hi);
}

/* A random axis of ndim dims, negative half of the time. */
static int rand_axis(int ndim, int *norm) {
    int ax = t_int(0, ndim - 1);
    *norm = ax;
    return t_int(0, 1) ? ax - ndim : ax;
}

/* ---- concatenate, stack ----------------------------------------------------------------- */

static void test_concatenate(void) {
    t_seed(11);
    for (int iter = 0; iter < 120; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        int nd = t_int(1, 4), ax;
        int axis = rand_axis(nd, &ax);
        int n = t_int(1, 4);
        int shape[LX_MAX_NDIM];
        rand_shape(shape, nd, 1, 4);
        if (iter % 10 == 3) shape[(ax + 1) % nd] = 0; /* empty result */
        ref_t parts[4];
        lx_array arr[4];
        int oshape[LX_MAX_NDIM];
        memcpy(oshape, shape, sizeof oshape);
        oshape[ax] = 0;
        for (int i = 0; i < n; i++) {
            int s[LX_MAX_NDIM];
            memcpy(s, shape, sizeof s);
            s[ax] = t_int(0, 3); /* size-0 pieces too */
            oshape[ax] += s[ax];
            parts[i] = rand_ref(s, nd, t);
            arr[i] = make_input(&parts[i], t, t_int(0, L_COUNT - 1));
        }
        ref_t want = ref_new(oshape, nd);
        int c[LX_MAX_NDIM];
        for (int64_t k = 0; k < ref_size(&want); k++) {
            unravel(k, oshape, nd, c);
            int i = 0, at = c[ax];
            while (at >= parts[i].shape[ax]) at -= parts[i++].shape[ax];
            c[ax] = at;
            want.v[k] = parts[i].v[ravel(c, parts[i].shape, nd)];
        }
        lx_array r = lx_concatenate(arr, n, axis);
        check_ref("concatenate", r, &want, t);
        for (int i = 0; i < n; i++) free(parts[i].v);
        free(want.v);
        lx_sweep();
    }
    /* many inputs (heap input list) */
    lx_array many[40];
    ref_t want = ref_new((int[]){40, 3}, 2);
    for (int i = 0; i < 40; i++) {
        ref_t p = rand_ref((int[]){1, 3}, 2, LX_INT32);
        memcpy(want.v + 3 * i, p.v, 3 * sizeof(double));
        many[i] = from_ref(&p, LX_INT32);
        free(p.v);
    }
    check_ref("concatenate 40", lx_concatenate(many, 40, 0), &want, LX_INT32);
    free(want.v);
}

static void test_concatenate_promotes(void) {
    int32_t a[2] = {1, -2};
    float b[3] = {0.5f, 1.5f, -3.25f};
    lx_array r = lx_concatenate((lx_array[]){lx_array_i32(a, (int[]){2}, 1),
                                             lx_array_f32(b, (int[]){3}, 1)},
                                2, 0);
    ref_t want = ref_new((int[]){5}, 1);
    double w[5] = {1, -2, 0.5, 1.5, -3.25};
    memcpy(want.v, w, sizeof w);
    check_ref("concatenate int32+float32", r, &want, LX_FLOAT32);
    free(want.v);
    /* bool + uint8 -> uint8 */
    bool bb[2] = {true, false};
    uint8_t u[1] = {200};
    r = lx_concatenate((lx_array[]){lx_array_new(bb, (int[]){2}, 1, LX_BOOL),
                                    lx_array_new(u, (int[]){1}, 1, LX_UINT8)},
                       2, -1);
    want = ref_new((int[]){3}, 1);
    want.v[0] = 1;
    want.v[1] = 0;
    want.v[2] = 200;
    check_ref("concatenate bool+uint8", r, &want, LX_UINT8);
    free(want.v);
}

static void test_stack(void) {
    t_seed(12);
    for (int iter = 0; iter < 60; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        int nd = t_int(0, 3), ax;
        int axis = rand_axis(nd + 1, &ax);
        int n = t_int(1, 4);
        int shape[LX_MAX_NDIM];
        rand_shape(shape, nd, 0, 3);
        ref_t parts[4];
        lx_array arr[4];
        for (int i = 0; i < n; i++) {
            parts[i] = rand_ref(shape, nd, t);
            arr[i] = make_input(&parts[i], t, t_int(0, L_COUNT - 1));
        }
        int oshape[LX_MAX_NDIM];
        for (int d = 0, k = 0; d <= nd; d++) oshape[d] = d == ax ? n : shape[k++];
        ref_t want = ref_new(oshape, nd + 1);
        int c[LX_MAX_NDIM], pc[LX_MAX_NDIM];
        for (int64_t k = 0; k < ref_size(&want); k++) {
            unravel(k, oshape, nd + 1, c);
            for (int d = 0, j = 0; d <= nd; d++)
                if (d != ax) pc[j++] = c[d];
            want.v[k] = parts[c[ax]].v[ravel(pc, shape, nd)];
        }
        check_ref("stack", lx_stack(arr, n, axis), &want, t);
        for (int i = 0; i < n; i++) free(parts[i].v);
        free(want.v);
        lx_sweep();
    }
}

/* ---- split ------------------------------------------------------------------------------- */

/* Reference of a[start:stop] along axis with Python slice rules (step 1). */
static ref_t ref_axis_slice(const ref_t *a, int ax, int start, int stop) {
    int d = a->shape[ax];
    if (start < 0) start += d;
    if (stop < 0) stop += d;
    start = start < 0 ? 0 : (start > d ? d : start);
    stop = stop < 0 ? 0 : (stop > d ? d : stop);
    int s[LX_MAX_NDIM];
    memcpy(s, a->shape, sizeof s);
    s[ax] = stop > start ? stop - start : 0;
    ref_t r = ref_new(s, a->ndim);
    int c[LX_MAX_NDIM];
    for (int64_t k = 0; k < ref_size(&r); k++) {
        unravel(k, s, a->ndim, c);
        c[ax] += start;
        r.v[k] = a->v[ravel(c, a->shape, a->ndim)];
    }
    return r;
}

static void test_split(void) {
    t_seed(13);
    for (int iter = 0; iter < 60; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        int nd = t_int(1, 3), ax;
        int axis = rand_axis(nd, &ax);
        int shape[LX_MAX_NDIM];
        rand_shape(shape, nd, 1, 5);
        shape[ax] = t_int(0, 8);
        ref_t a = rand_ref(shape, nd, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        int n_idx = t_int(0, 3), idx[3];
        for (int i = 0; i < n_idx; i++) { /* sorted, possibly negative or past the end */
            idx[i] = t_int(-shape[ax] - 1, shape[ax] + 1);
        }
        lx_array out[4];
        CHECK_OK(lx_split(x, idx, n_idx, axis, out));
        for (int i = 0; i <= n_idx; i++) {
            int start = i == 0 ? 0 : idx[i - 1];
            int stop = i < n_idx ? idx[i] : shape[ax];
            ref_t want = ref_axis_slice(&a, ax, start, stop);
            check_ref("split", out[i], &want, t);
            free(want.v);
        }
        int parts = t_int(1, 4);
        int sh2[LX_MAX_NDIM];
        memcpy(sh2, shape, sizeof sh2);
        sh2[ax] = parts * t_int(0, 3);
        ref_t b = rand_ref(sh2, nd, t);
        lx_array y = make_input(&b, t, t_int(0, L_COUNT - 1));
        CHECK_OK(lx_split_equal(y, parts, axis, out));
        int q = sh2[ax] / parts;
        for (int i = 0; i < parts; i++) {
            ref_t want = ref_axis_slice(&b, ax, i * q, (i + 1) * q);
            check_ref("split_equal", out[i], &want, t);
            free(want.v);
        }
        free(a.v);
        free(b.v);
        lx_sweep();
    }
}

/* ---- slice_update ---------------------------------------------------------------------- */

static void test_slice_update(void) {
    t_seed(14);
    for (int iter = 0; iter < 150; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        int nd = t_int(1, 4);
        int shape[LX_MAX_NDIM], start[LX_MAX_NDIM], stop[LX_MAX_NDIM], step[LX_MAX_NDIM];
        int sl[LX_MAX_NDIM], first[LX_MAX_NDIM];
        rand_shape(shape, nd, 0, 5);
        for (int i = 0; i < nd; i++) {
            int d = shape[i];
            step[i] = t_int(0, 3) == 0 ? -t_int(1, 2) : t_int(1, 3);
            start[i] = t_int(-d - 1, d + 1);
            stop[i] = t_int(-d - 1, d + 1);
            /* the reference slice length and first index, Python rules */
            int s = start[i], e = stop[i];
            if (step[i] > 0) {
                if (s < 0) s += d;
                if (e < 0) e += d;
                s = s < 0 ? 0 : (s > d ? d : s);
                e = e < 0 ? 0 : (e > d ? d : e);
                sl[i] = e > s ? (e - s + step[i] - 1) / step[i] : 0;
            } else {
                if (s < 0) s += d;
                if (e < 0) e += d;
                s = s < -1 ? -1 : (s > d - 1 ? d - 1 : s);
                e = e < -1 ? -1 : (e > d - 1 ? d - 1 : e);
                sl[i] = s > e ? (s - e - step[i] - 1) / -step[i] : 0;
            }
            first[i] = s;
        }
        ref_t a = rand_ref(shape, nd, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        /* the update: the slice's shape, or broadcast from fewer / size-1 dims */
        int ushape[LX_MAX_NDIM], und = nd;
        memcpy(ushape, sl, sizeof ushape);
        int mode = t_int(0, 2);
        if (mode == 1) ushape[t_int(0, nd - 1)] = 1;
        ref_t u;
        if (mode == 2 && nd > 1) { /* drop the leading dim */
            und = nd - 1;
            u = rand_ref(ushape + 1, und, t);
        } else {
            u = rand_ref(ushape, und, t);
        }
        lx_array up = make_input(&u, t, t_int(0, L_COUNT - 1));
        ref_t want = ref_new(shape, nd);
        memcpy(want.v, a.v, sizeof(double) * (size_t)ref_size(&a));
        int c[LX_MAX_NDIM], ac[LX_MAX_NDIM], uc[LX_MAX_NDIM];
        for (int64_t k = 0; k < shape_size(sl, nd); k++) {
            unravel(k, sl, nd, c);
            for (int i = 0; i < nd; i++) ac[i] = first[i] + c[i] * step[i];
            for (int i = 0; i < und; i++) {
                int ci = c[i + nd - und];
                uc[i] = u.shape[i] == 1 ? 0 : ci;
            }
            want.v[ravel(ac, shape, nd)] = u.v[ravel(uc, u.shape, und)];
        }
        lx_array r = lx_slice_update(x, up, start, stop, step, nd);
        check_ref("slice_update", r, &want, t);
        check_ref("slice_update leaves a", x, &a, t); /* a itself is unchanged */
        free(a.v);
        free(u.v);
        free(want.v);
        lx_sweep();
    }
    /* the update is converted to a's dtype; strides NULL means 1 */
    float f[2] = {1.75f, -2.0f};
    int32_t z[4] = {0, 0, 0, 0};
    lx_array r = lx_slice_update(lx_array_i32(z, (int[]){4}, 1), lx_array_f32(f, (int[]){2}, 1),
                                 (int[]){1}, (int[]){3}, NULL, 1);
    ref_t want = ref_new((int[]){4}, 1);
    want.v[1] = 1; /* float -> int truncates */
    want.v[2] = -2;
    check_ref("slice_update cast", r, &want, LX_INT32);
    free(want.v);
}

/* ---- take ------------------------------------------------------------------------------ */

/* Random indices in [-d - 2, d + 2) stored in dtype it (negatives only for signed dtypes);
 * *ref gets the clamped, wrapped index each one means. */
static lx_array rand_indices(const int *shape, int ndim, lx_dtype it, int d, bool oob,
                             int64_t **ref) {
    int64_t n = shape_size(shape, ndim);
    size_t es = lx_dtype_size(it);
    unsigned char *buf = malloc((size_t)(n ? n : 1) * es);
    *ref = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        int64_t lo = oob ? -d - 2 : -d, hi = oob ? d + 1 : d - 1;
        if (!lx_dtype_is_signed(it)) lo = 0;
        int64_t v = t_int((int)lo, (int)hi);
        lx_dtype_store(it, buf + i * es, (double)v);
        int64_t w = v < 0 ? v + d : v;
        (*ref)[i] = w < 0 ? 0 : (w >= d ? d - 1 : w);
    }
    lx_array a = lx_array_new(buf, shape, ndim, it);
    free(buf);
    return a;
}

static void test_take(void) {
    t_seed(15);
    for (int iter = 0; iter < 150; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        lx_dtype it = INDEX_DTYPES[iter % N_INDEX_DTYPES];
        int nd = t_int(1, 4), ax;
        int axis = rand_axis(nd, &ax);
        int shape[LX_MAX_NDIM];
        rand_shape(shape, nd, 1, 4);
        if (iter % 13 == 5) shape[(ax + 1) % nd] = (nd > 1) ? 0 : shape[0];
        int ind = t_int(0, 8 - nd < 3 ? 8 - nd : 3);
        int ishape[LX_MAX_NDIM];
        rand_shape(ishape, ind, 0, 4);
        ref_t a = rand_ref(shape, nd, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        int64_t *iref;
        lx_array ix = rand_indices(ishape, ind, it, shape[ax], true, &iref);
        if (t_int(0, 2) == 0 && ind >= 2) ix = lx_transpose(ix, NULL, 0); /* strided indices */
        int oshape[LX_MAX_NDIM], ond = 0;
        int tshape[LX_MAX_NDIM]; /* the index shape actually passed */
        int tnd = lx_shape(ix, tshape);
        for (int i = 0; i < ax; i++) oshape[ond++] = shape[i];
        for (int i = 0; i < tnd; i++) oshape[ond++] = tshape[i];
        for (int i = ax + 1; i < nd; i++) oshape[ond++] = shape[i];
        ref_t want = ref_new(oshape, ond);
        int c[LX_MAX_NDIM], ac[LX_MAX_NDIM], ic[LX_MAX_NDIM];
        /* build the reference through a host copy of the indices as passed */
        int64_t in_n = shape_size(tshape, tnd);
        int64_t *ipass = malloc(sizeof(int64_t) * (size_t)(in_n ? in_n : 1));
        {
            size_t es = lx_dtype_size(it);
            unsigned char *b = malloc((size_t)(in_n ? in_n : 1) * es);
            CHECK_OK(lx_read(ix, b, (size_t)in_n * es));
            for (int64_t i = 0; i < in_n; i++) {
                double v = lx_dtype_load(it, b + i * es);
                int64_t w = (int64_t)v, d = shape[ax];
                if (w < 0) w += d;
                ipass[i] = w < 0 ? 0 : (w >= d ? d - 1 : w);
            }
            free(b);
        }
        for (int64_t k = 0; k < ref_size(&want); k++) {
            unravel(k, oshape, ond, c);
            for (int i = 0; i < ax; i++) ac[i] = c[i];
            for (int i = ax + 1; i < nd; i++) ac[i] = c[i - 1 + tnd];
            for (int i = 0; i < tnd; i++) ic[i] = c[ax + i];
            ac[ax] = (int)ipass[ravel(ic, tshape, tnd)];
            want.v[k] = a.v[ravel(ac, shape, nd)];
        }
        check_ref("take", lx_take(x, ix, axis), &want, t);
        free(ipass);
        free(iref);
        free(a.v);
        free(want.v);
        lx_sweep();
    }
}

static void test_take_embedding(void) {
    /* embedding lookup: [vocab, dim] rows by token ids; a scalar index drops the axis */
    t_seed(16);
    ref_t emb = rand_ref((int[]){50, 16}, 2, LX_BFLOAT16);
    lx_array e = from_ref(&emb, LX_BFLOAT16);
    int32_t ids[6] = {3, 49, 0, -1, 7, 3};
    lx_array r = lx_take(e, lx_array_i32(ids, (int[]){2, 3}, 2), 0);
    ref_t want = ref_new((int[]){2, 3, 16}, 3);
    for (int i = 0; i < 6; i++) {
        int row = ids[i] < 0 ? ids[i] + 50 : ids[i];
        memcpy(want.v + 16 * i, emb.v + 16 * row, 16 * sizeof(double));
    }
    check_ref("take embedding", r, &want, LX_BFLOAT16);
    free(want.v);
    r = lx_take(e, lx_scalar_i32(2), 0);
    want = ref_new((int[]){16}, 1);
    memcpy(want.v, emb.v + 32, 16 * sizeof(double));
    check_ref("take scalar index", r, &want, LX_BFLOAT16);
    free(want.v);
    /* out of range clamps: 1000 -> 49, -1000 -> 0 */
    int64_t far[2] = {1000, -1000};
    r = lx_take(e, lx_array_new(far, (int[]){2}, 1, LX_INT64), 0);
    want = ref_new((int[]){2, 16}, 2);
    memcpy(want.v, emb.v + 16 * 49, 16 * sizeof(double));
    memcpy(want.v + 16, emb.v, 16 * sizeof(double));
    check_ref("take clamps", r, &want, LX_BFLOAT16);
    free(want.v);
    uint64_t huge[1] = {UINT64_MAX};
    r = lx_take(e, lx_array_new(huge, (int[]){1}, 1, LX_UINT64), 0);
    want = ref_new((int[]){1, 16}, 2);
    memcpy(want.v, emb.v + 16 * 49, 16 * sizeof(double));
    check_ref("take uint64 max clamps", r, &want, LX_BFLOAT16);
    free(want.v);
    free(emb.v);
}

/* ---- take_along_axis, put_along_axis ------------------------------------------------------ */

static void test_take_along(void) {
    t_seed(17);
    for (int iter = 0; iter < 150; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        lx_dtype it = INDEX_DTYPES[iter % N_INDEX_DTYPES];
        int nd = t_int(1, 4), ax;
        int axis = rand_axis(nd, &ax);
        int shape[LX_MAX_NDIM], ishape[LX_MAX_NDIM], B[LX_MAX_NDIM];
        rand_shape(shape, nd, 1, 4);
        for (int i = 0; i < nd; i++) {
            int m = t_int(0, 3); /* indices: same dim, 1, or a's dim is 1 and indices bigger */
            ishape[i] = m == 0 ? 1 : shape[i];
            if (m == 3 && i != ax) {
                shape[i] = 1;
                ishape[i] = t_int(1, 3);
            }
            if (i == ax) ishape[i] = t_int(0, 4);
            B[i] = i == ax ? ishape[i] : (shape[i] > ishape[i] ? shape[i] : ishape[i]);
        }
        ref_t a = rand_ref(shape, nd, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        int64_t *iref;
        lx_array ix = rand_indices(ishape, nd, it, shape[ax], true, &iref);
        ref_t want = ref_new(B, nd);
        int c[LX_MAX_NDIM], ac[LX_MAX_NDIM], ic[LX_MAX_NDIM];
        for (int64_t k = 0; k < ref_size(&want); k++) {
            unravel(k, B, nd, c);
            for (int i = 0; i < nd; i++) {
                ic[i] = ishape[i] == 1 ? 0 : c[i];
                ac[i] = shape[i] == 1 ? 0 : c[i];
            }
            ac[ax] = (int)iref[ravel(ic, ishape, nd)];
            want.v[k] = a.v[ravel(ac, shape, nd)];
        }
        check_ref("take_along_axis", lx_take_along_axis(x, ix, axis), &want, t);
        free(iref);
        free(a.v);
        free(want.v);
        lx_sweep();
    }
}

/* Long rows along the last axis take the 32-bit-index fast path, split into segments over
 * the threads; other dtypes and index types the general path. */
static void test_take_along_long_rows(void) {
    t_seed(23);
    const lx_dtype dts[] = {LX_FLOAT32, LX_FLOAT16, LX_FLOAT64, LX_INT8};
    const lx_dtype its[] = {LX_INT32, LX_UINT32, LX_INT64};
    for (int iter = 0; iter < 12; iter++) {
        lx_dtype t = dts[iter % 4], it = its[iter % 3];
        int shape[2] = {iter % 2 ? 1 : 2, 20000 + t_int(0, 30000)};
        ref_t a = rand_ref(shape, 2, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        int64_t *iref;
        lx_array ix = rand_indices(shape, 2, it, shape[1], true, &iref);
        ref_t want = ref_new(shape, 2);
        for (int64_t k = 0; k < ref_size(&want); k++) {
            int64_t r = k / shape[1];
            want.v[k] = a.v[r * shape[1] + iref[k]];
        }
        check_ref("take_along_axis (long rows)", lx_take_along_axis(x, ix, -1), &want, t);
        free(iref);
        free(a.v);
        free(want.v);
        lx_sweep();
    }
}

static void test_put_along(void) {
    t_seed(18);
    for (int iter = 0; iter < 150; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        lx_dtype it = INDEX_DTYPES[iter % N_INDEX_DTYPES];
        int nd = t_int(1, 4), ax;
        int axis = rand_axis(nd, &ax);
        int shape[LX_MAX_NDIM], ishape[LX_MAX_NDIM];
        rand_shape(shape, nd, 1, 4);
        for (int i = 0; i < nd; i++) ishape[i] = i == ax ? t_int(0, 3) : (t_int(0, 3) ? shape[i] : 1);
        int B[LX_MAX_NDIM];
        for (int i = 0; i < nd; i++) B[i] = i == ax ? ishape[i] : shape[i];
        ref_t a = rand_ref(shape, nd, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        /* indices distinct along the axis so that the result does not depend on write order;
         * some out of range (dropped) */
        int64_t n_idx = shape_size(ishape, nd);
        size_t ies = lx_dtype_size(it);
        unsigned char *ib = malloc((size_t)(n_idx ? n_idx : 1) * ies);
        int64_t *iv = malloc(sizeof(int64_t) * (size_t)(n_idx ? n_idx : 1));
        int c[LX_MAX_NDIM], ac[LX_MAX_NDIM], ic[LX_MAX_NDIM];
        int d = shape[ax];
        for (int64_t k = 0; k < n_idx; k++) {
            unravel(k, ishape, nd, c);
            int64_t v = c[ax]; /* distinct positions along the axis for one row */
            if (t_int(0, 4) == 0) v = d + t_int(0, 2); /* out of range: dropped */
            else if (lx_dtype_is_signed(it) && t_int(0, 1) && v < d) v -= d; /* negative form */
            lx_dtype_store(it, ib + k * ies, (double)v);
            iv[k] = v < 0 ? v + d : v;
        }
        lx_array ix = lx_array_new(ib, ishape, nd, it);
        /* values: B's shape, or size-1 on a random axis (broadcast) */
        int vshape[LX_MAX_NDIM];
        memcpy(vshape, B, sizeof vshape);
        if (t_int(0, 1)) vshape[t_int(0, nd - 1)] = 1;
        ref_t vals = rand_ref(vshape, nd, t);
        lx_array vx = make_input(&vals, t, t_int(0, L_COUNT - 1));
        ref_t want = ref_new(shape, nd);
        memcpy(want.v, a.v, sizeof(double) * (size_t)ref_size(&a));
        for (int64_t k = 0; k < shape_size(B, nd); k++) {
            unravel(k, B, nd, c);
            for (int i = 0; i < nd; i++) ic[i] = ishape[i] == 1 ? 0 : c[i];
            int64_t j = iv[ravel(ic, ishape, nd)];
            if (j < 0 || j >= d) continue;
            for (int i = 0; i < nd; i++) ac[i] = c[i];
            ac[ax] = (int)j;
            int vc[LX_MAX_NDIM];
            for (int i = 0; i < nd; i++) vc[i] = vshape[i] == 1 ? 0 : c[i];
            want.v[ravel(ac, shape, nd)] = vals.v[ravel(vc, vshape, nd)];
        }
        check_ref("put_along_axis", lx_put_along_axis(x, ix, vx, axis), &want, t);
        check_ref("put_along_axis leaves a", x, &a, t);
        free(ib);
        free(iv);
        free(a.v);
        free(vals.v);
        free(want.v);
        lx_sweep();
    }
    /* repeated indices: the last write in row-major order wins */
    float z[3] = {0, 0, 0}, v[3] = {1, 2, 3};
    int32_t same[3] = {1, 1, 1};
    lx_array r = lx_put_along_axis(lx_array_f32(z, (int[]){3}, 1),
                                   lx_array_i32(same, (int[]){3}, 1),
                                   lx_array_f32(v, (int[]){3}, 1), 0);
    ref_t want = ref_new((int[]){3}, 1);
    want.v[1] = 3;
    check_ref("put_along_axis repeated", r, &want, LX_FLOAT32);
    free(want.v);
}

/* ---- pad, tile, repeat ------------------------------------------------------------------- */

static void test_pad(void) {
    t_seed(19);
    for (int iter = 0; iter < 100; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        int nd = t_int(0, 4);
        int shape[LX_MAX_NDIM], lo[LX_MAX_NDIM], hi[LX_MAX_NDIM], os[LX_MAX_NDIM];
        rand_shape(shape, nd, 0, 4);
        for (int i = 0; i < nd; i++) {
            lo[i] = t_int(0, 2);
            hi[i] = t_int(0, 2);
            os[i] = shape[i] + lo[i] + hi[i];
        }
        double value = rand_value(t);
        ref_t a = rand_ref(shape, nd, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        ref_t want = ref_new(os, nd);
        int c[LX_MAX_NDIM];
        for (int64_t k = 0; k < ref_size(&want); k++) {
            unravel(k, os, nd, c);
            bool inside = true;
            for (int i = 0; i < nd; i++) {
                c[i] -= lo[i];
                inside = inside && c[i] >= 0 && c[i] < shape[i];
            }
            want.v[k] = inside ? a.v[ravel(c, shape, nd)] : value;
        }
        check_ref("pad", lx_pad(x, lo, hi, nd, value), &want, t);
        free(a.v);
        free(want.v);
        lx_sweep();
    }
}

static void test_tile_repeat(void) {
    t_seed(20);
    for (int iter = 0; iter < 100; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        int nd = t_int(0, 3), n = t_int(0, 4);
        int shape[LX_MAX_NDIM], reps[LX_MAX_NDIM];
        rand_shape(shape, nd, 0, 3);
        for (int i = 0; i < n; i++) reps[i] = t_int(0, 3);
        ref_t a = rand_ref(shape, nd, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        int od = nd > n ? nd : n, ins[LX_MAX_NDIM], os[LX_MAX_NDIM];
        for (int i = 0; i < od; i++) {
            int xi = i - (od - nd), ri = i - (od - n);
            ins[i] = xi >= 0 ? shape[xi] : 1;
            os[i] = ins[i] * (ri >= 0 ? reps[ri] : 1);
        }
        ref_t want = ref_new(os, od);
        int c[LX_MAX_NDIM];
        for (int64_t k = 0; k < ref_size(&want); k++) {
            unravel(k, os, od, c);
            for (int i = 0; i < od; i++) c[i] %= ins[i];
            want.v[k] = a.v[ravel(c + (od - nd), shape, nd)];
        }
        check_ref("tile", lx_tile(x, reps, n), &want, t);
        free(want.v);
        if (nd > 0) {
            int ax, axis = rand_axis(nd, &ax), rp = t_int(0, 3);
            memcpy(os, shape, sizeof os);
            os[ax] *= rp;
            want = ref_new(os, nd);
            for (int64_t k = 0; k < ref_size(&want); k++) {
                unravel(k, os, nd, c);
                c[ax] /= rp;
                want.v[k] = a.v[ravel(c, shape, nd)];
            }
            check_ref("repeat", lx_repeat(x, rp, axis), &want, t);
            free(want.v);
        }
        free(a.v);
        lx_sweep();
    }
}

/* ---- tril, triu ---------------------------------------------------------------------------- */

static void test_tril_triu(void) {
    t_seed(21);
    for (int iter = 0; iter < 80; iter++) {
        lx_dtype t = ALL_DTYPES[iter % N_DTYPES];
        int nd = t_int(2, 4);
        int shape[LX_MAX_NDIM];
        rand_shape(shape, nd, 0, 5);
        int k = t_int(-6, 6);
        ref_t a = rand_ref(shape, nd, t);
        lx_array x = make_input(&a, t, t_int(0, L_COUNT - 1));
        ref_t lower = ref_new(shape, nd), upper = ref_new(shape, nd);
        int c[LX_MAX_NDIM];
        for (int64_t j = 0; j < ref_size(&a); j++) {
            unravel(j, shape, nd, c);
            int diff = c[nd - 1] - c[nd - 2];
            lower.v[j] = diff <= k ? a.v[j] : 0;
            upper.v[j] = diff >= k ? a.v[j] : 0;
        }
        check_ref("tril", lx_tril(x, k), &lower, t);
        check_ref("triu", lx_triu(x, k), &upper, t);
        free(a.v);
        free(lower.v);
        free(upper.v);
        lx_sweep();
    }
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_errors(void) {
    float v[6] = {0, 1, 2, 3, 4, 5};
    lx_array a = lx_array_f32(v, (int[]){2, 3}, 2);
    lx_array b = lx_array_f32(v, (int[]){3, 2}, 2);
    lx_array s = lx_scalar_f32(1);
    int32_t iv[2] = {0, 1};
    lx_array idx = lx_array_i32(iv, (int[]){2}, 1);
    lx_array idx2 = lx_array_i32(iv, (int[]){1, 2}, 2);
    int32_t iv3[3] = {0, 1, 2};
    lx_array idx31 = lx_array_i32(iv3, (int[]){3, 1}, 2);
    lx_array fidx = lx_array_f32(v, (int[]){2}, 1);
    lx_array fidx2 = lx_array_f32(v, (int[]){1, 2}, 2);
    bool bv[2] = {true, false};
    lx_array bidx = lx_array_new(bv, (int[]){2}, 1, LX_BOOL);
    lx_array out[4];
    lx_keep(a, b, s, idx, idx2, idx31, fidx, fidx2, bidx);

    CHECK(lx_is_null(lx_concatenate((lx_array[]){a, b}, 2, 0)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_concatenate((lx_array[]){a, idx}, 2, 0)));
    CHECK_ERROR(LX_E_SHAPE); /* ndim differs */
    CHECK(lx_is_null(lx_concatenate((lx_array[]){a, a}, 2, 2)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_concatenate((lx_array[]){a, a}, 2, -3)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_concatenate((lx_array[]){s, s}, 2, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_concatenate(NULL, 0, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_concatenate((lx_array[]){a, LX_NULL_ARRAY}, 2, 0)));
    CHECK(lx_error() != LX_OK);
    lx_clear_error();

    CHECK(lx_is_null(lx_stack((lx_array[]){a, b}, 2, 0)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_stack((lx_array[]){a, a}, 2, 3)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(!lx_is_null(lx_stack((lx_array[]){a, a}, 2, -3)));
    CHECK(lx_error() == LX_OK);

    CHECK(lx_split(a, (int[]){1}, 1, 2, out) == LX_E_ARG);
    CHECK(lx_is_null(out[0]) && lx_is_null(out[1]));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_split_equal(a, 2, 1, out) == LX_E_SHAPE);
    CHECK(lx_is_null(out[0]) && lx_is_null(out[1]));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_split_equal(a, 0, 1, out) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);

    int st[2] = {0, 0}, sp[2] = {2, 2};
    CHECK(lx_is_null(lx_slice_update(a, b, st, sp, NULL, 2)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_slice_update(a, s, st, sp, NULL, 1)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_slice_update(a, s, st, sp, (int[]){1, 0}, 2)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(!lx_is_null(lx_slice_update(a, s, st, sp, NULL, 2))); /* a scalar broadcasts */
    CHECK(lx_error() == LX_OK);

    CHECK(lx_is_null(lx_take(a, fidx, 0)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_take(a, bidx, 0)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_take(a, idx, 2)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_take(s, idx, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_take(lx_zeros((int[]){0, 3}, 2, LX_FLOAT32), idx, 0)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_take(a, LX_NULL_ARRAY, 0)));
    CHECK_ERROR(LX_E_ARG);

    CHECK(lx_is_null(lx_take_along_axis(a, fidx2, 1)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_take_along_axis(a, idx, 1)));
    CHECK_ERROR(LX_E_SHAPE); /* ndim differs */
    CHECK(lx_is_null(lx_take_along_axis(a, idx31, 1)));
    CHECK_ERROR(LX_E_SHAPE); /* dim 0: 2 and 3 do not broadcast */
    CHECK(!lx_is_null(lx_take_along_axis(b, idx2, 1))); /* dim 0: 3 and 1 broadcast */
    CHECK(lx_error() == LX_OK);
    CHECK(lx_is_null(lx_take_along_axis(a, idx2, -3)));
    CHECK_ERROR(LX_E_ARG);

    CHECK(lx_is_null(lx_put_along_axis(a, fidx2, s, 1)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_put_along_axis(a, idx2, b, 1)));
    CHECK_ERROR(LX_E_SHAPE); /* values [3, 2] do not broadcast to [2, 2] */
    CHECK(lx_is_null(lx_put_along_axis(a, idx2, s, 2)));
    CHECK_ERROR(LX_E_ARG);

    CHECK(lx_is_null(lx_pad(a, (int[]){1}, (int[]){1}, 1, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_pad(a, (int[]){1, -1}, (int[]){1, 1}, 2, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_tile(a, (int[]){-1}, 1)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_tile(a, (int[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, 9)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_repeat(a, -1, 0)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_repeat(a, 2, 2)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_tril(idx, 0)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_triu(s, 0)));
    CHECK_ERROR(LX_E_SHAPE);

    /* a released handle */
    lx_array gone = lx_array_f32(v, (int[]){6}, 1);
    lx_sweep();
    CHECK(lx_is_null(lx_take(gone, idx, 0)));
    CHECK_ERROR(LX_E_FREED);
    CHECK(lx_is_null(lx_tril(gone, 0)));
    CHECK_ERROR(LX_E_FREED);

    lx_free(a);
    lx_free(b);
    lx_free(s);
    lx_free(idx);
    lx_free(idx2);
    lx_free(idx31);
    lx_free(fidx);
    lx_free(fidx2);
    lx_free(bidx);
}

/* ---- a KV cache written one token at a time -------------------------------------------------- */

static void test_kv_cache_in_place(void) {
    enum { B = 2, H = 3, L = 256, D = 32, STEPS = 12 };
    size_t n = (size_t)B * H * L * D;
    float *host = calloc(n, sizeof(float));
    lx_array cache = lx_array_f32(host, (int[]){B, H, L, D}, 4);
    CHECK_OK(lx_eval(cache));
    const void *addr = lx_data(cache);
    size_t base = lx_active_memory();
    float tok[B * H * D];
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < B * H * D; i++) tok[i] = (float)(step * 1000 + i);
        lx_array kv = lx_array_f32(tok, (int[]){B, H, 1, D}, 4);
        lx_array next = lx_slice_update(cache, kv, (int[]){0, 0, step, 0},
                                        (int[]){B, H, step + 1, D}, NULL, 4);
        lx_free(cache); /* the old cache is released at the eval: its buffer may be donated */
        cache = next;
        lx_reset_peak_memory();
        CHECK_OK(lx_eval(cache));
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int d = 0; d < D; d++)
                    host[(((size_t)b * H + h) * L + step) * D + d] =
                        (float)(step * 1000 + (b * H + h) * D + d);
        CHECK_MSG(lx_data(cache) == addr, "step %d: the cache moved (not written in place)", step);
        /* no second cache-sized buffer at any time: only the token (and allocator rounding) */
        CHECK_MSG(lx_peak_memory() < base + n * sizeof(float) / 2,
                  "step %d: peak memory %zu, %zu before", step, lx_peak_memory(), base);
    }
    const float *got = lx_data(cache);
    CHECK(got && memcmp(got, host, n * sizeof(float)) == 0);
    /* a cache that someone else still holds is copied, never written through */
    lx_array held = cache;
    lx_keep(held);
    for (int i = 0; i < B * H * D; i++) tok[i] = -1.0f;
    lx_array other = lx_slice_update(held, lx_array_f32(tok, (int[]){B, H, 1, D}, 4),
                                     (int[]){0, 0, 0, 0}, (int[]){B, H, 1, D}, NULL, 4);
    CHECK_OK(lx_eval(other));
    CHECK(lx_data(other) != lx_data(held));
    got = lx_data(held);
    CHECK(got && memcmp(got, host, n * sizeof(float)) == 0);
    got = lx_data(other);
    CHECK(got && got[0] == -1.0f && got[D - 1] == -1.0f && got[L * D] == -1.0f && got[D] == host[D]);
    lx_free(held);
    lx_free(other);
    free(host);
}

/* A view of the cache (someone reads a slice of it) must also block writing in place. */
static void test_in_place_blocked_by_view(void) {
    float v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    lx_array a = lx_array_f32(v, (int[]){8}, 1);
    lx_array view = lx_slice(a, (int[]){0}, (int[]){4}, NULL, 1);
    lx_keep(a);
    CHECK_OK(lx_eval(view));
    lx_array r = lx_slice_update(a, lx_scalar_f32(-1), (int[]){0}, (int[]){8}, NULL, 1);
    lx_free(a);
    CHECK_OK(lx_eval(r));
    const float *p = lx_data(view);
    CHECK(p && p[0] == 0 && p[3] == 3);
    p = lx_data(r);
    CHECK(p && p[0] == -1 && p[7] == -1);
    lx_free(view);
    lx_free(r);
}

/* Sizes large enough for the kernels' multi-threaded paths, non-contiguous inputs. */
static void test_large(void) {
    t_seed(22);
    lx_dtype t = LX_FLOAT32;
    int c[LX_MAX_NDIM];
    /* concatenate: a transposed [300, 1000] and a strided [200, 1000] along axis 0 */
    ref_t a = rand_ref((int[]){300, 1000}, 2, t), b = rand_ref((int[]){200, 1000}, 2, t);
    lx_array x = make_input(&a, t, L_TRANSPOSED), y = make_input(&b, t, L_STRIDED);
    ref_t want = ref_new((int[]){500, 1000}, 2);
    memcpy(want.v, a.v, sizeof(double) * 300000);
    memcpy(want.v + 300000, b.v, sizeof(double) * 200000);
    check_ref("large concatenate", lx_concatenate((lx_array[]){x, y}, 2, 0), &want, t);
    free(want.v);
    /* take rows of the transposed array */
    int32_t ids[700];
    for (int i = 0; i < 700; i++) ids[i] = t_int(-300, 299);
    want = ref_new((int[]){700, 1000}, 2);
    for (int i = 0; i < 700; i++) {
        int r = ids[i] < 0 ? ids[i] + 300 : ids[i];
        memcpy(want.v + 1000 * i, a.v + 1000 * r, sizeof(double) * 1000);
    }
    check_ref("large take", lx_take(x, lx_array_i32(ids, (int[]){700}, 1), 0), &want, t);
    free(want.v);
    /* slice_update of every other row and column of a [600, 1000] array */
    ref_t big = rand_ref((int[]){600, 1000}, 2, t), u = rand_ref((int[]){300, 500}, 2, t);
    lx_array z = make_input(&big, t, L_CONTIG), up = make_input(&u, t, L_TRANSPOSED);
    want = ref_new((int[]){600, 1000}, 2);
    memcpy(want.v, big.v, sizeof(double) * 600000);
    for (int i = 0; i < 300; i++)
        for (int j = 0; j < 500; j++) want.v[(2 * i + 1) * 1000 + 2 * j] = u.v[i * 500 + j];
    check_ref("large slice_update",
              lx_slice_update(z, up, (int[]){1, 0}, (int[]){600, 1000}, (int[]){2, 2}, 2), &want,
              t);
    free(want.v);
    /* pad, tile, tril of the transposed array */
    want = ref_new((int[]){303, 1004}, 2);
    for (int64_t k = 0; k < 303 * 1004; k++) {
        unravel(k, want.shape, 2, c);
        bool in = c[0] >= 1 && c[0] < 301 && c[1] >= 3 && c[1] < 1003;
        want.v[k] = in ? a.v[(c[0] - 1) * 1000 + c[1] - 3] : 0.5;
    }
    check_ref("large pad", lx_pad(x, (int[]){1, 3}, (int[]){2, 1}, 2, 0.5), &want, t);
    free(want.v);
    want = ref_new((int[]){600, 3000}, 2);
    for (int64_t k = 0; k < 600 * 3000; k++) {
        unravel(k, want.shape, 2, c);
        want.v[k] = a.v[(c[0] % 300) * 1000 + c[1] % 1000];
    }
    check_ref("large tile", lx_tile(x, (int[]){2, 3}, 2), &want, t);
    free(want.v);
    want = ref_new((int[]){300, 1000}, 2);
    for (int64_t k = 0; k < 300000; k++) {
        unravel(k, want.shape, 2, c);
        want.v[k] = c[1] - c[0] <= 5 ? a.v[k] : 0;
    }
    check_ref("large tril", lx_tril(x, 5), &want, t);
    free(want.v);
    free(a.v);
    free(b.v);
    free(big.v);
    free(u.v);
}

/* put_along_axis on a donated target scatters in place; the result is the same either way. */
static void test_put_along_in_place(void) {
    float v[12];
    for (int i = 0; i < 12; i++) v[i] = (float)i;
    lx_array a = lx_array_f32(v, (int[]){3, 4}, 2);
    CHECK_OK(lx_eval(a));
    const void *addr = lx_data(a);
    int32_t idx[3] = {3, -4, 1};
    float val[3] = {-1, -2, -3};
    lx_array r = lx_put_along_axis(a, lx_array_i32(idx, (int[]){3, 1}, 2),
                                   lx_array_f32(val, (int[]){3, 1}, 2), 1);
    lx_free(a);
    CHECK_OK(lx_async_eval(r));
    const float *p = lx_data(r);
    CHECK(p == addr);
    float want[12] = {0, 1, 2, -1, -2, 5, 6, 7, 8, -3, 10, 11};
    CHECK(p && memcmp(p, want, sizeof want) == 0);
    lx_free(r);
}

int main(void) {
    size_t live0 = lx_node_live_count();
    RUN_TEST(test_concatenate);
    RUN_TEST(test_concatenate_promotes);
    RUN_TEST(test_stack);
    RUN_TEST(test_split);
    RUN_TEST(test_slice_update);
    RUN_TEST(test_take);
    RUN_TEST(test_take_embedding);
    RUN_TEST(test_take_along);
    RUN_TEST(test_take_along_long_rows);
    RUN_TEST(test_put_along);
    RUN_TEST(test_pad);
    RUN_TEST(test_tile_repeat);
    RUN_TEST(test_tril_triu);
    RUN_TEST(test_errors);
    RUN_TEST(test_large);
    RUN_TEST(test_kv_cache_in_place);
    RUN_TEST(test_in_place_blocked_by_view);
    RUN_TEST(test_put_along_in_place);
    lx_synchronize();
    lx_sweep();
    /* every error path released what it held: no node outlives its handles */
    CHECK_MSG(lx_node_live_count() == live0, "%zu nodes alive, %zu at start",
              lx_node_live_count(), live0);
    return test_finish();
}
