/*
 * test_random.c -- threefry keys and the random distributions.
 *
 *  - keys: lx_random_key(seed) = [seed >> 32, seed & 0xffffffff]; split(key(0)) equals JAX's
 *    documented split(PRNGKey(0)) (MLX and JAX share the threefry2x32 layout), split and
 *    split_n agree, bits of every width share one byte stream, the bits do not depend on the
 *    thread count, the same key gives the same values and different keys different ones;
 *  - distributions (fixed seeds, n large): uniform in [low, high) and never high, even where
 *    rounding would reach it; sample means and variances within 6 standard errors of the
 *    truth for uniform, normal, gumbel, bernoulli; truncated normal within its bounds;
 *    randint covers [low, high) and nothing else; categorical frequencies against softmax
 *    probabilities with a chi-square bound (df = 5, threshold 35: p < 2e-6);
 *  - the global key stream (null keys): advances on each use, lx_random_seed replays it;
 *  - errors: wrong key dtype or shape, bit widths, dtypes, bounds, axes.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "test_util.h"

static void read_u32(lx_array a, uint32_t *out, size_t n) {
    CHECK(lx_size(a) == n && lx_dtype_of(a) == LX_UINT32);
    CHECK_OK(lx_read(a, out, n * sizeof(uint32_t)));
}

static void test_keys(void) {
    uint32_t k[2];
    read_u32(lx_random_key(0x0123456789abcdefull), k, 2);
    CHECK(k[0] == 0x01234567u && k[1] == 0x89abcdefu);
    lx_array key = lx_random_key(0);
    CHECK(lx_ndim(key) == 1 && lx_dim(key, 0) == 2);
    /* JAX: random.split(PRNGKey(0)) = [[4146024105, 967050713], [2718843009, 1272950319]] */
    lx_array k1, k2;
    CHECK_OK(lx_random_split(key, &k1, &k2));
    uint32_t a[2], b[2], s[4];
    read_u32(k1, a, 2);
    read_u32(k2, b, 2);
    CHECK_MSG(a[0] == 4146024105u && a[1] == 967050713u, "split(key(0))[0] = %u %u", a[0], a[1]);
    CHECK_MSG(b[0] == 2718843009u && b[1] == 1272950319u, "split(key(0))[1] = %u %u", b[0], b[1]);
    lx_array sn = lx_random_split_n(key, 2);
    CHECK(lx_ndim(sn) == 2 && lx_dim(sn, 0) == 2 && lx_dim(sn, 1) == 2);
    read_u32(sn, s, 4);
    CHECK(s[0] == a[0] && s[1] == a[1] && s[2] == b[0] && s[3] == b[1]);
    lx_array s5 = lx_random_split_n(key, 5);
    CHECK(lx_dim(s5, 0) == 5 && lx_dim(s5, 1) == 2);
    /* split of a lazy key works like split of its value */
    lx_array k11, k12;
    CHECK_OK(lx_random_split(k1, &k11, &k12));
    lx_array k1v = lx_array_new(a, (int[]){2}, 1, LX_UINT32), c1, c2;
    CHECK_OK(lx_random_split(k1v, &c1, &c2));
    uint32_t x[2], y[2];
    read_u32(k12, x, 2);
    read_u32(c2, y, 2);
    CHECK(x[0] == y[0] && x[1] == y[1]);
}

static void test_bits(void) {
    lx_array key = lx_random_key(42);
    lx_keep(key);
    /* one byte stream: 8 bytes as [2] x uint32, [4] x uint16 and [8] x uint8 */
    uint8_t b4[8], b2[8], b1[8];
    lx_array r4 = lx_random_bits((int[]){2}, 1, 4, key);
    lx_array r2 = lx_random_bits((int[]){4}, 1, 2, key);
    lx_array r1 = lx_random_bits((int[]){8}, 1, 1, key);
    CHECK(lx_dtype_of(r4) == LX_UINT32 && lx_dtype_of(r2) == LX_UINT16 && lx_dtype_of(r1) == LX_UINT8);
    CHECK_OK(lx_read(r4, b4, 8));
    CHECK_OK(lx_read(r2, b2, 8));
    CHECK_OK(lx_read(r1, b1, 8));
    CHECK(memcmp(b4, b2, 8) == 0 && memcmp(b4, b1, 8) == 0);
    /* odd sizes and partial words: the first bytes of [3] x uint8 come from a 1-word layout */
    uint8_t o3[3];
    CHECK_OK(lx_read(lx_random_bits((int[]){3}, 1, 1, key), o3, 3));
    uint32_t w1;
    read_u32(lx_random_bits((int[]){1}, 1, 4, key), &w1, 1);
    CHECK(o3[0] == (w1 & 0xff) && o3[1] == ((w1 >> 8) & 0xff) && o3[2] == ((w1 >> 16) & 0xff));
    /* the same key gives the same bits, another key others; shapes of any rank */
    int n = 1 << 20;
    uint32_t *p = malloc((size_t)n * 4), *q = malloc((size_t)n * 4);
    read_u32(lx_random_bits((int[]){1024, 1024}, 2, 4, key), p, (size_t)n);
    read_u32(lx_random_bits((int[]){n}, 1, 4, key), q, (size_t)n);
    CHECK(memcmp(p, q, (size_t)n * 4) == 0);
    read_u32(lx_random_bits((int[]){n}, 1, 4, lx_random_key(43)), q, (size_t)n);
    size_t same = 0;
    for (int i = 0; i < n; i++) same += p[i] == q[i];
    CHECK(same < 10);
    /* bit balance: each of the 32 bits is set about half the time */
    for (int bit = 0; bit < 32; bit++) {
        size_t ones = 0;
        for (int i = 0; i < n; i++) ones += (p[i] >> bit) & 1;
        CHECK_MSG(fabs((double)ones - n / 2.0) < 6 * sqrt(n / 4.0), "bit %d set %zu times", bit, ones);
    }
    /* independent of the thread count */
    int old = lx_set_num_threads(1);
    read_u32(lx_random_bits((int[]){n}, 1, 4, key), q, (size_t)n);
    lx_set_num_threads(old > 1 ? old : 4);
    uint32_t *r = malloc((size_t)n * 4);
    read_u32(lx_random_bits((int[]){n}, 1, 4, key), r, (size_t)n);
    lx_set_num_threads(old);
    CHECK(memcmp(p, q, (size_t)n * 4) == 0 && memcmp(p, r, (size_t)n * 4) == 0);
    free(p);
    free(q);
    free(r);
    /* empty shapes and scalars */
    lx_array e = lx_random_bits((int[]){0, 3}, 2, 4, key);
    CHECK(lx_size(e) == 0);
    CHECK_OK(lx_eval(e));
    lx_array sc = lx_random_bits(NULL, 0, 4, key);
    CHECK(lx_ndim(sc) == 0 && lx_size(sc) == 1);
    lx_free(key);
}

static void moments(const double *x, size_t n, double *mean, double *var) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *var = s2 / (double)(n - 1);
}

static bool read_f64(lx_array a, double *out, size_t n) {
    lx_dtype t = lx_dtype_of(a);
    size_t es = lx_dtype_size(t);
    unsigned char *buf = malloc(n * es + 1);
    lx_status st = lx_size(a) == n ? lx_read(a, buf, n * es) : LX_E_SHAPE;
    for (size_t i = 0; st == LX_OK && i < n; i++) out[i] = lx_dtype_load(t, buf + i * es);
    free(buf);
    return st == LX_OK;
}

static const lx_dtype FDT[4] = {LX_FLOAT32, LX_FLOAT16, LX_BFLOAT16, LX_FLOAT64};

static void test_uniform(void) {
    size_t n = 200000;
    double *x = malloc(n * sizeof(double));
    for (int ti = 0; ti < 4; ti++) {
        lx_dtype t = FDT[ti];
        double lo = -1.5, hi = 2.5;
        lx_array u = lx_random_uniform((int[]){400, 500}, 2, t, lo, hi, lx_random_key(7));
        CHECK(lx_dtype_of(u) == t && lx_ndim(u) == 2);
        CHECK(read_f64(u, x, n));
        double mn = 1e9, mx = -1e9, mean, var;
        for (size_t i = 0; i < n; i++) {
            mn = fmin(mn, x[i]);
            mx = fmax(mx, x[i]);
        }
        moments(x, n, &mean, &var);
        double w = hi - lo;
        CHECK_MSG(mn >= lo && mx < hi, "uniform %s range [%g, %g]", lx_dtype_name(t), mn, mx);
        CHECK_MSG(mn < lo + 0.01 && mx > hi - 0.02, "uniform %s covers [%g, %g]", lx_dtype_name(t), mn, mx);
        double sd_mean = w / sqrt(12.0 * (double)n);
        CHECK_MSG(fabs(mean - (lo + hi) / 2) < 6 * sd_mean + (t == LX_BFLOAT16 ? 4e-3 : 2e-4),
                  "uniform %s mean %g", lx_dtype_name(t), mean);
        CHECK_MSG(fabs(var - w * w / 12) < 0.01 * w * w / 12 + (t == LX_BFLOAT16 ? 1e-3 : 0),
                  "uniform %s var %g", lx_dtype_name(t), var);
        /* never high, even where low + range * u rounds up to it */
        lx_array v = lx_random_uniform((int[]){(int)n}, 1, t, 0.1, 1.0, lx_random_key(8));
        CHECK(read_f64(v, x, n));
        double top = -1;
        for (size_t i = 0; i < n; i++) top = fmax(top, x[i]);
        CHECK_MSG(top < 1.0, "uniform %s in [0.1, 1) reached %.9g", lx_dtype_name(t), top);
        lx_sweep();
    }
    /* same key, same values; the default range is MLX's */
    float a[4], b[4];
    CHECK_OK(lx_read(lx_random_uniform((int[]){4}, 1, LX_FLOAT32, 0, 1, lx_random_key(3)), a, sizeof a));
    CHECK_OK(lx_read(lx_random_uniform((int[]){4}, 1, LX_FLOAT32, 0, 1, lx_random_key(3)), b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* uniform from bits exactly: u = min(float(bits) / 2^32, 1 - 2^-24) */
    uint32_t bits[4];
    read_u32(lx_random_bits((int[]){4}, 1, 4, lx_random_key(3)), bits, 4);
    for (int i = 0; i < 4; i++) {
        float want = fminf((float)bits[i] / 4294967296.0f, nextafterf(1.0f, 0.0f));
        CHECK_MSG(a[i] == want, "uniform[%d] %.9g from bits %u (want %.9g)", i, (double)a[i], bits[i], (double)want);
    }
    free(x);
}

static void test_normal(void) {
    size_t n = 400000;
    double *x = malloc(n * sizeof(double));
    for (int ti = 0; ti < 4; ti++) {
        lx_dtype t = FDT[ti];
        lx_array z = lx_random_normal((int[]){(int)n}, 1, t, lx_random_key(11));
        CHECK(lx_dtype_of(z) == t);
        CHECK(read_f64(z, x, n));
        double mean, var, m3 = 0, m4 = 0;
        moments(x, n, &mean, &var);
        bool finite = true;
        for (size_t i = 0; i < n; i++) {
            finite = finite && isfinite(x[i]);
            double d = x[i] - mean;
            m3 += d * d * d;
            m4 += d * d * d * d;
        }
        m3 /= (double)n;
        m4 /= (double)n;
        CHECK_MSG(finite, "normal %s produced a non-finite value", lx_dtype_name(t));
        double se = 1 / sqrt((double)n);
        CHECK_MSG(fabs(mean) < 6 * se, "normal %s mean %g", lx_dtype_name(t), mean);
        CHECK_MSG(fabs(var - 1) < 6 * sqrt(2.0) * se + (t == LX_BFLOAT16 ? 4e-3 : 0),
                  "normal %s var %g", lx_dtype_name(t), var);
        CHECK_MSG(fabs(m3) < 6 * sqrt(15.0) * se, "normal %s skew %g", lx_dtype_name(t), m3);
        CHECK_MSG(fabs(m4 - 3) < 6 * sqrt(96.0) * se + 0.02, "normal %s kurtosis %g", lx_dtype_name(t), m4);
        /* tail frequency: P(|z| > 2) = 0.0455 */
        size_t tail = 0;
        for (size_t i = 0; i < n; i++) tail += fabs(x[i]) > 2;
        double p = 0.04550026;
        CHECK_MSG(fabs((double)tail / n - p) < 6 * sqrt(p * (1 - p) / n) + (t == LX_BFLOAT16 ? 3e-3 : 0),
                  "normal %s tail %g", lx_dtype_name(t), (double)tail / n);
        lx_sweep();
    }
    /* truncated normal stays in its bounds and is not degenerate */
    lx_array tn = lx_random_truncated_normal((int[]){(int)n}, 1, LX_FLOAT32, -0.5, 1.0, lx_random_key(12));
    CHECK(read_f64(tn, x, n));
    double lo = 10, hi = -10, mean, var;
    for (size_t i = 0; i < n; i++) {
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    moments(x, n, &mean, &var);
    CHECK_MSG(lo >= -0.5 && hi <= 1.0 && lo < -0.49 && hi > 0.99, "truncated normal range [%g, %g]", lo, hi);
    /* mean of N(0,1) truncated to [-0.5, 1]: (phi(-0.5) - phi(1)) / (Phi(1) - Phi(-0.5)) */
    double phi_a = exp(-0.125) / sqrt(2 * M_PI), phi_b = exp(-0.5) / sqrt(2 * M_PI);
    double Z = 0.5 * (erf(1 / sqrt(2.0)) - erf(-0.5 / sqrt(2.0)));
    CHECK_MSG(fabs(mean - (phi_a - phi_b) / Z) < 6 * sqrt(var / n), "truncated normal mean %g", mean);
    free(x);
}

static void test_discrete(void) {
    size_t n = 300000;
    double *x = malloc(n * sizeof(double));
    /* randint: every value of [low, high) and nothing else, uniformly */
    lx_array r = lx_random_randint((int[]){(int)n}, 1, LX_INT32, -3, 7, lx_random_key(21));
    CHECK(lx_dtype_of(r) == LX_INT32);
    CHECK(read_f64(r, x, n));
    size_t counts[10] = {0};
    bool in_range = true;
    for (size_t i = 0; i < n; i++) {
        if (x[i] < -3 || x[i] > 6 || x[i] != floor(x[i])) in_range = false;
        else counts[(int)x[i] + 3]++;
    }
    CHECK(in_range);
    double chi = 0, e = n / 10.0;
    for (int i = 0; i < 10; i++) chi += (counts[i] - e) * (counts[i] - e) / e;
    CHECK_MSG(chi < 45, "randint chi-square %g (df 9)", chi);
    lx_array r8 = lx_random_randint((int[]){100}, 1, LX_UINT8, 250, 256, lx_random_key(22));
    CHECK(lx_dtype_of(r8) == LX_UINT8);
    CHECK(read_f64(r8, x, 100));
    for (int i = 0; i < 100; i++) CHECK(x[i] >= 250 && x[i] <= 255);
    /* bernoulli */
    lx_array b = lx_random_bernoulli((int[]){(int)n}, 1, 0.3, lx_random_key(23));
    CHECK(lx_dtype_of(b) == LX_BOOL);
    CHECK(read_f64(b, x, n));
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    CHECK_MSG(fabs(s / n - 0.3) < 6 * sqrt(0.21 / n), "bernoulli(0.3) frequency %g", s / n);
    CHECK(read_f64(lx_random_bernoulli((int[]){1000}, 1, 0.0, lx_random_key(24)), x, 1000));
    s = 0;
    for (int i = 0; i < 1000; i++) s += x[i];
    CHECK(s == 0);
    CHECK(read_f64(lx_random_bernoulli((int[]){1000}, 1, 1.0, lx_random_key(24)), x, 1000));
    s = 0;
    for (int i = 0; i < 1000; i++) s += x[i];
    CHECK(s == 1000);
    /* gumbel: mean = Euler's gamma, variance = pi^2 / 6 */
    lx_array g = lx_random_gumbel((int[]){(int)n}, 1, LX_FLOAT32, lx_random_key(25));
    CHECK(read_f64(g, x, n));
    double mean, var;
    moments(x, n, &mean, &var);
    double gv = M_PI * M_PI / 6;
    CHECK_MSG(fabs(mean - 0.5772156649) < 6 * sqrt(gv / n), "gumbel mean %g", mean);
    CHECK_MSG(fabs(var - gv) < 0.03 * gv, "gumbel var %g", var);
    free(x);
}

static void test_categorical(void) {
    float logits[6] = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f, -3.0f};
    double p[6], z = 0;
    for (int i = 0; i < 6; i++) z += exp(logits[i]);
    for (int i = 0; i < 6; i++) p[i] = exp(logits[i]) / z;
    int S = 60000;
    /* S rows of the same logits, sampled along the last axis */
    lx_array row = lx_array_f32(logits, (int[]){1, 6}, 2);
    lx_array rows = lx_broadcast_to(row, (int[]){S, 6}, 2);
    lx_array c = lx_random_categorical(rows, -1, lx_random_key(31));
    CHECK(lx_dtype_of(c) == LX_UINT32 && lx_ndim(c) == 1 && lx_dim(c, 0) == S);
    uint32_t *v = malloc((size_t)S * 4);
    read_u32(c, v, (size_t)S);
    size_t counts[6] = {0};
    bool ok = true;
    for (int i = 0; i < S; i++) {
        if (v[i] >= 6) ok = false;
        else counts[v[i]]++;
    }
    CHECK(ok);
    double chi = 0;
    for (int i = 0; i < 6; i++) chi += (counts[i] - S * p[i]) * (counts[i] - S * p[i]) / (S * p[i]);
    CHECK_MSG(chi < 35, "categorical chi-square %g (df 5)", chi);
    /* categorical_n: num_samples from one row, appended as the last axis (MLX) */
    lx_array cn = lx_random_categorical_n(row, 1, S, lx_random_key(32));
    CHECK(lx_ndim(cn) == 2 && lx_dim(cn, 0) == 1 && lx_dim(cn, 1) == S);
    read_u32(cn, v, (size_t)S);
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < S; i++) counts[v[i] < 6 ? v[i] : 0]++;
    chi = 0;
    for (int i = 0; i < 6; i++) chi += (counts[i] - S * p[i]) * (counts[i] - S * p[i]) / (S * p[i]);
    CHECK_MSG(chi < 35, "categorical_n chi-square %g (df 5)", chi);
    /* along axis 0 of a [6, 3] array: one sample per column; -inf logits never drawn */
    float l2[18];
    for (int i = 0; i < 18; i++) l2[i] = (i / 3 == 4) ? 0.0f : -INFINITY;
    lx_array c0 = lx_random_categorical(lx_array_f32(l2, (int[]){6, 3}, 2), 0, lx_random_key(33));
    uint32_t s3[3];
    CHECK(lx_ndim(c0) == 1 && lx_dim(c0, 0) == 3);
    read_u32(c0, s3, 3);
    CHECK(s3[0] == 4 && s3[1] == 4 && s3[2] == 4);
    lx_array c0n = lx_random_categorical_n(lx_array_f32(l2, (int[]){6, 3}, 2), 0, 5, lx_random_key(34));
    CHECK(lx_ndim(c0n) == 2 && lx_dim(c0n, 0) == 3 && lx_dim(c0n, 1) == 5);
    /* float16 logits */
    uint16_t lh[6];
    for (int i = 0; i < 6; i++) lh[i] = lx_f32_to_f16(logits[i]);
    lx_array ch = lx_random_categorical(lx_array_new(lh, (int[]){6}, 1, LX_FLOAT16), 0, lx_random_key(35));
    CHECK(lx_ndim(ch) == 0 && lx_item_i32(ch) < 6);
    free(v);
}

static void test_global_stream(void) {
    float a[3], b[3], c[3];
    lx_random_seed(5);
    CHECK_OK(lx_read(lx_random_uniform((int[]){3}, 1, LX_FLOAT32, 0, 1, LX_NULL_ARRAY), a, sizeof a));
    CHECK_OK(lx_read(lx_random_uniform((int[]){3}, 1, LX_FLOAT32, 0, 1, LX_NULL_ARRAY), b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) != 0);
    lx_random_seed(5);
    CHECK_OK(lx_read(lx_random_uniform((int[]){3}, 1, LX_FLOAT32, 0, 1, LX_NULL_ARRAY), c, sizeof c));
    CHECK(memcmp(a, c, sizeof a) == 0);
    /* the stream is MLX's KeySequence: the first key is split(key(seed))[1] */
    lx_array k1, k2;
    CHECK_OK(lx_random_split(lx_random_key(5), &k1, &k2));
    CHECK_OK(lx_read(lx_random_uniform((int[]){3}, 1, LX_FLOAT32, 0, 1, k2), c, sizeof c));
    CHECK(memcmp(a, c, sizeof a) == 0);
    lx_array n = lx_random_normal((int[]){2, 2}, 2, LX_FLOAT32, LX_NULL_ARRAY);
    CHECK(!lx_is_null(n));
    CHECK_OK(lx_eval(n));
}

static void test_random_errors(void) {
    lx_array key = lx_random_key(1);
    lx_keep(key);
    CHECK(lx_is_null(lx_random_bits((int[]){2}, 1, 3, key)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_random_bits((int[]){2}, 1, 4, lx_zeros((int[]){2}, 1, LX_INT32))));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_random_bits((int[]){2}, 1, 4, lx_zeros((int[]){3}, 1, LX_UINT32))));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_random_bits((int[]){-1}, 1, 4, key)));
    CHECK(lx_error() != LX_OK);
    lx_clear_error();
    CHECK(lx_is_null(lx_random_uniform((int[]){2}, 1, LX_INT32, 0, 1, key)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_random_uniform((int[]){2}, 1, LX_FLOAT32, 2, 1, key)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_random_normal((int[]){2}, 1, LX_UINT8, key)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_random_randint((int[]){2}, 1, LX_FLOAT32, 0, 5, key)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_random_randint((int[]){2}, 1, LX_INT32, 5, 5, key)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_random_truncated_normal((int[]){2}, 1, LX_FLOAT32, 1, -1, key)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_random_categorical(lx_zeros((int[]){2, 3}, 2, LX_FLOAT32), 2, key)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_random_categorical_n(lx_zeros((int[]){2, 3}, 2, LX_FLOAT32), 1, -1, key)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_random_split_n(key, -2)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_random_split(key, NULL, NULL) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    lx_free(key);
}

int main(void) {
    RUN_TEST(test_keys);
    RUN_TEST(test_bits);
    RUN_TEST(test_uniform);
    RUN_TEST(test_normal);
    RUN_TEST(test_discrete);
    RUN_TEST(test_categorical);
    RUN_TEST(test_global_stream);
    RUN_TEST(test_random_errors);
    return test_finish();
}
