/*
 * test_quantized.c -- MLX affine quantization: quantize, dequantize, quantized_matmul,
 * gather_qmm, gather_mm, against references written here.
 *
 * - Packing is checked bit for bit against a reference packer (one bit at a time into a
 *   little-endian stream) and against hand-made words derived on paper from MLX's rule.
 * - Quantization is checked bit for bit (wq, scales, biases) against a transcription of MLX's
 *   CPU rule (mlx/backend/cpu/quantized.cpp) in float32, on random groups and on edge groups
 *   (all zero, constant, all negative, exact ties). Hand-derived scale/bias values are checked
 *   too (e.g. 0..15 with 4 bits gives scale -1, bias 15: MLX makes the larger-magnitude end
 *   exact, so scales can be negative).
 * - Dequantization is bit-exact with MLX's (q*scale rounded to the dtype, then + bias).
 * - Error bound: an element whose unrounded level lies inside [-0.5, 2^bits - 0.5] is within
 *   |scale|/2 of its dequantized value (plus the dtype's rounding of scale and bias); an element
 *   clipped at the far end is within (max - min)/(2^bits - 1). MLX's rule does not give
 *   |scale|/2 everywhere: moving the edge onto the grid can shrink the range the levels span.
 * - quantized_matmul / gather_qmm / gather_mm against float64 matmuls of the dequantized
 *   weights (as stored, in float64). Tolerance: 4*K*eps32*sum|x*w| + 1e-6 (float32 accumulation
 *   of K products), plus |ref|*eps of the output dtype for float16/bfloat16 outputs. Shapes
 *   cover both kernels (fused small-M, dequantized panels + sgemm), transpose both ways, batch
 *   broadcasting (x and w batched, x 2-D against a batched w, x 1-D), strided x, sliced w,
 *   integer x, float16/bfloat16, and gather indices of several dtypes (lhs, rhs or both).
 * - Errors: bad group size or bits (LX_E_ARG), shapes (LX_E_SHAPE), dtypes (LX_E_DTYPE),
 *   released handles (LX_E_FREED), and out-of-range gather indices (LX_E_ARG at evaluation).
 */
#include <math.h>

#include "core/dtype.h"
#include "test_util.h"

static const lx_dtype FLOATS[] = {LX_FLOAT32, LX_FLOAT16, LX_BFLOAT16};
static const int BITS[] = {2, 3, 4, 5, 6, 8};
static const int GROUPS[] = {32, 64, 128};

/* ---- dtype helpers ------------------------------------------------------------------------- */

static float round_to(lx_dtype t, float v) {
    if (t == LX_FLOAT16) return lx_f16_to_f32(lx_f32_to_f16(v));
    if (t == LX_BFLOAT16) return lx_bf16_to_f32(lx_f32_to_bf16(v));
    return v;
}

static double unit_roundoff(lx_dtype t) {
    return t == LX_FLOAT16 ? ldexp(1, -11) : t == LX_BFLOAT16 ? ldexp(1, -8) : ldexp(1, -24);
}

/* An array of dtype t from float values; vals are rounded in place to what the array holds. */
static lx_array make_arr(lx_dtype t, float *vals, const int *shape, int ndim) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    if (t == LX_FLOAT32) return lx_array_new(vals, shape, ndim, t);
    uint16_t *h = malloc(sizeof(uint16_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        h[i] = t == LX_FLOAT16 ? lx_f32_to_f16(vals[i]) : lx_f32_to_bf16(vals[i]);
        vals[i] = round_to(t, vals[i]);
    }
    lx_array a = lx_array_new(h, shape, ndim, t);
    free(h);
    return a;
}

/* Reads a float array of any of the three dtypes as floats. */
static bool read_f(lx_array a, float *out, int64_t n) {
    lx_dtype t = lx_dtype_of(a);
    if ((int64_t)lx_size(a) != n) return false;
    if (t == LX_FLOAT32) return lx_read(a, out, (size_t)n * 4) == LX_OK;
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
    bool ok = lx_read(a, h, (size_t)n * 2) == LX_OK;
    for (int64_t i = 0; ok && i < n; i++)
        out[i] = t == LX_FLOAT16 ? lx_f16_to_f32(h[i]) : lx_bf16_to_f32(h[i]);
    free(h);
    return ok;
}

static float *rand_floats(int64_t n, double lo, double hi) {
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = (float)t_uniform(lo, hi);
    return v;
}

/* ---- references ---------------------------------------------------------------------------- */

/* One bit at a time into a little-endian stream: value j at bit j*bits. */
static void ref_pack(const uint32_t *q, int64_t n, int bits, uint32_t *words) {
    memset(words, 0, sizeof(uint32_t) * (size_t)(n * bits / 32));
    for (int64_t j = 0; j < n; j++)
        for (int b = 0; b < bits; b++)
            if ((q[j] >> b) & 1u) {
                int64_t pos = j * bits + b;
                words[pos / 32] |= 1u << (pos % 32);
            }
}

static uint32_t ref_unpack(const uint32_t *words, int64_t j, int bits) {
    uint32_t v = 0;
    for (int b = 0; b < bits; b++) {
        int64_t pos = j * bits + b;
        v |= ((words[pos / 32] >> (pos % 32)) & 1u) << b;
    }
    return v;
}

/* MLX's CPU rule for one group, in float32 (mlx/backend/cpu/quantized.cpp, quantize()). */
static void ref_quantize_group(const float *w, int gs, int bits, uint32_t *q, float *scale,
                               float *bias) {
    float n_bins = (float)((1 << bits) - 1);
    float eps = 1e-7f;
    float w_min = INFINITY, w_max = -INFINITY;
    for (int j = 0; j < gs; j++) {
        w_max = fmaxf(w_max, w[j]);
        w_min = fminf(w_min, w[j]);
    }
    bool mask = fabsf(w_min) > fabsf(w_max);
    float s = fmaxf((w_max - w_min) / n_bins, eps);
    s = mask ? s : -s;
    float edge = mask ? w_min : w_max;
    float q0 = rintf(edge / s);
    float b = 0;
    if (q0 != 0) {
        s = edge / q0;
        b = edge;
    }
    for (int j = 0; j < gs; j++) {
        float v = rintf((w[j] - b) / s);
        v = fminf(fmaxf(v, 0.0f), n_bins);
        q[j] = (uint32_t)v;
    }
    *scale = s;
    *bias = b;
}

/* Quantizes rows x K with the reference; q [rows*K], scales/biases [rows*K/gs] rounded to t. */
static void ref_quantize(const float *w, int64_t n, int gs, int bits, lx_dtype t, uint32_t *q,
                         float *scales, float *biases, float *scales_f32) {
    for (int64_t g = 0; g < n / gs; g++) {
        float s, b;
        ref_quantize_group(w + g * gs, gs, bits, q + g * gs, &s, &b);
        scales[g] = round_to(t, s);
        biases[g] = round_to(t, b);
        if (scales_f32) scales_f32[g] = s;
    }
}

/* MLX's dequantization: q*scale rounded to the dtype, then + bias rounded to the dtype. */
static float ref_deq(lx_dtype t, uint32_t q, float s, float b) {
    float p = round_to(t, (float)q * s);
    return round_to(t, p + b);
}

/* ---- quantize: packing ---------------------------------------------------------------------- */

static bool quantize_read(lx_array w, int gs, int bits, int64_t n, uint32_t *words, float *s,
                          float *b) {
    lx_array wq, sc, bi;
    lx_status st = lx_quantize(w, gs, bits, &wq, &sc, &bi);
    if (st != LX_OK) return false;
    bool ok = lx_dtype_of(wq) == LX_UINT32 && lx_dtype_of(sc) == lx_dtype_of(w) &&
              lx_dtype_of(bi) == lx_dtype_of(w);
    ok = ok && lx_read(wq, words, (size_t)(n * bits / 8)) == LX_OK;
    ok = ok && read_f(sc, s, n / gs) && read_f(bi, b, n / gs);
    return ok;
}

static void test_hand_made_words(void) {
    /* 0..15 twice, 4 bits: mask false (|0| < |15|), scale -(15/15) = -1, edge 15, q0 = -15,
     * scale = 15/-15 = -1, bias 15, q = 15 - w: nibbles F,E,D,...,0 */
    float w[32];
    for (int j = 0; j < 32; j++) w[j] = (float)(j % 16);
    int shape[2] = {1, 32};
    uint32_t words[8];
    float s, b;
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 4, 32, words, &s, &b));
    CHECK(words[0] == 0x89ABCDEFu && words[1] == 0x01234567u);
    CHECK(words[2] == 0x89ABCDEFu && words[3] == 0x01234567u);
    CHECK(s == -1.0f && b == 15.0f);

    /* the mirror image: the negative end is larger, scale +1, bias -15, same words */
    for (int j = 0; j < 32; j++) w[j] = -(float)(j % 16);
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 4, 32, words, &s, &b));
    CHECK(words[0] == 0x89ABCDEFu && words[1] == 0x01234567u);
    CHECK(s == 1.0f && b == -15.0f);

    /* ties round to even (rint, not round): (8.5 - 15) / -1 = 6.5 gives level 6 */
    for (int j = 0; j < 32; j++) w[j] = (float)(j % 16);
    w[5] = 8.5f;
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 4, 32, words, &s, &b));
    CHECK(words[0] == 0x896BCDEFu && words[1] == 0x01234567u && s == -1.0f && b == 15.0f);

    /* a tie in q0: max 1, min -0.2, 2 bits: scale -(1.2/3) = -0.4f, 1/-0.4f = -2.5 exactly,
     * rint gives -2, so scale = 1/-2 = -0.5, bias 1; levels 0 (for 1) and 2 (for -0.2, 0) */
    for (int j = 0; j < 32; j++) w[j] = 0.0f;
    w[0] = 1.0f;
    w[1] = -0.2f;
    CHECK(1.0f / -((1.0f - -0.2f) / 3.0f) == -2.5f);
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 2, 32, words, &s, &b));
    CHECK(words[0] == 0xAAAAAAA8u && words[1] == 0xAAAAAAAAu && s == -0.5f && b == 1.0f);

    /* 2 bits, 0,1,2,3 repeated: scale -1, bias 3, q = 3,2,1,0 -> byte 0b00011011 */
    for (int j = 0; j < 32; j++) w[j] = (float)(j % 4);
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 2, 32, words, &s, &b));
    CHECK(words[0] == 0x1B1B1B1Bu && words[1] == 0x1B1B1B1Bu);
    CHECK(s == -1.0f && b == 3.0f);

    /* 8 bits, 0,1,2,3 repeated: scale 3/-255, bias 3, q = 255, 170, 85, 0 */
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 8, 32, words, &s, &b));
    for (int i = 0; i < 8; i++) CHECK(words[i] == 0x0055AAFFu);
    CHECK(s == 3.0f / -255.0f && b == 3.0f);

    /* 3 bits, 0..7 repeated: scale -1, bias 7, q = 7..0; 8 values fill 3 bytes
     * 0x053977 (little-endian 77 39 05), so the stream runs across word boundaries */
    for (int j = 0; j < 32; j++) w[j] = (float)(j % 8);
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 3, 32, words, &s, &b));
    CHECK(words[0] == 0x77053977u && words[1] == 0x39770539u && words[2] == 0x05397705u);
    CHECK(s == -1.0f && b == 7.0f);

    /* an all-zero group: scale = -eps (the positive end "wins" the tie), bias 0, q 0 */
    for (int j = 0; j < 32; j++) w[j] = 0.0f;
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 4, 32, words, &s, &b));
    CHECK(words[0] == 0 && words[1] == 0 && words[2] == 0 && words[3] == 0);
    CHECK(s == -1e-7f && b == 0.0f);

    /* a constant group of 2: scale -eps -> q0 = rint(2/-1e-7) != 0, scale = 2/q0, bias 2 */
    for (int j = 0; j < 32; j++) w[j] = 2.0f;
    CHECK(quantize_read(lx_array_f32(w, shape, 2), 32, 4, 32, words, &s, &b));
    CHECK(words[0] == 0 && b == 2.0f && s == 2.0f / rintf(2.0f / -1e-7f));

    /* dequantize hand-made words: word 0x76543210 with scale 0.5 and bias -1 gives
     * -1 + 0.5*j for j = 0..7 */
    uint32_t hw[4] = {0x76543210u, 0xFEDCBA98u, 0x76543210u, 0xFEDCBA98u};
    int qshape[2] = {1, 4}, sshape[2] = {1, 1};
    float hs = 0.5f, hb = -1.0f, out[32];
    lx_array d = lx_dequantize(lx_array_new(hw, qshape, 2, LX_UINT32), lx_array_f32(&hs, sshape, 2),
                               lx_array_f32(&hb, sshape, 2), 32, 4);
    CHECK(read_f(d, out, 32));
    bool exact = true;
    for (int j = 0; j < 32; j++) exact &= out[j] == -1.0f + 0.5f * (float)(j % 16);
    CHECK(exact);
}

/* Random groups plus edge groups; every bits/group/dtype: wq, scales and biases bit-exact. */
static void fill_groups(float *w, int64_t n, int gs) {
    for (int64_t g = 0; g < n / gs; g++) {
        float *p = w + g * gs;
        int kind = (int)(g % 8);
        double lo = -1.0, hi = 1.0;
        if (kind == 1) lo = 0.2;  /* all positive */
        if (kind == 2) hi = -0.3; /* all negative */
        if (kind == 3) { /* negative end larger */
            lo = -3;
            hi = 0.5;
        }
        if (kind == 4) { /* positive end larger */
            lo = -0.5;
            hi = 3;
        }
        for (int j = 0; j < gs; j++) p[j] = (float)t_uniform(lo, hi);
        if (kind == 5)
            for (int j = 0; j < gs; j++) p[j] = 0.25f; /* constant */
        if (kind == 6)
            for (int j = 0; j < gs; j++) p[j] = 0.0f; /* zero */
        if (kind == 7) { /* equal magnitude ends: the positive end wins */
            p[0] = -1.0f;
            p[1] = 1.0f;
        }
    }
}

static void test_quantize_bit_exact(void) {
    t_seed(11);
    for (int ti = 0; ti < 3; ti++)
        for (int bi = 0; bi < 6; bi++)
            for (int gi = 0; gi < 3; gi++) {
                lx_dtype t = FLOATS[ti];
                int bits = BITS[bi], gs = GROUPS[gi];
                int shape[3] = {2, 3, 2 * gs};
                int64_t n = 12 * gs;
                float *w = malloc(sizeof(float) * (size_t)n);
                fill_groups(w, n, gs);
                lx_array wa = make_arr(t, w, shape, 3); /* w now holds the rounded values */
                uint32_t *q = malloc(sizeof(uint32_t) * (size_t)n);
                uint32_t *words = malloc(sizeof(uint32_t) * (size_t)n),
                         *got = malloc(4 * (size_t)n);
                float *s = malloc(sizeof(float) * (size_t)(n / gs)),
                      *b = malloc(sizeof(float) * (size_t)(n / gs));
                float *gsv = malloc(sizeof(float) * (size_t)(n / gs)),
                      *gbv = malloc(sizeof(float) * (size_t)(n / gs));
                ref_quantize(w, n, gs, bits, t, q, s, b, NULL);
                ref_pack(q, n, bits, words);

                lx_array wq, sc, bs;
                CHECK_OK(lx_quantize(wa, gs, bits, &wq, &sc, &bs));
                int qs[3], ss[3];
                CHECK(lx_shape(wq, qs) == 3 && qs[0] == 2 && qs[1] == 3 &&
                      qs[2] == 2 * gs * bits / 32);
                CHECK(lx_shape(sc, ss) == 3 && ss[2] == 2 && lx_shape(bs, ss) == 3 && ss[2] == 2);
                CHECK_OK(lx_read(wq, got, (size_t)(n * bits / 8)));
                CHECK(read_f(sc, gsv, n / gs) && read_f(bs, gbv, n / gs));
                CHECK_MSG(memcmp(got, words, (size_t)(n * bits / 8)) == 0,
                          "packed words differ: %s bits %d gs %d", lx_dtype_name(t), bits, gs);
                bool same = true;
                for (int64_t g = 0; g < n / gs; g++)
                    same &= memcmp(&gsv[g], &s[g], 4) == 0 && memcmp(&gbv[g], &b[g], 4) == 0;
                CHECK_MSG(same, "scales/biases differ: %s bits %d gs %d", lx_dtype_name(t), bits,
                          gs);
                /* the reference unpacker reads the same levels back */
                bool levels = true;
                for (int64_t j = 0; j < n; j++) levels &= ref_unpack(got, j, bits) == q[j];
                CHECK(levels);
                free(w);
                free(q);
                free(words);
                free(got);
                free(s);
                free(b);
                free(gsv);
                free(gbv);
                lx_sweep();
            }
}

/* ---- dequantize --------------------------------------------------------------------------- */

static void test_dequantize(void) {
    t_seed(12);
    for (int ti = 0; ti < 3; ti++)
        for (int bi = 0; bi < 6; bi++)
            for (int gi = 0; gi < 3; gi++) {
                lx_dtype t = FLOATS[ti];
                int bits = BITS[bi], gs = GROUPS[gi];
                int shape[2] = {5, 3 * gs};
                int64_t n = 15 * gs, ng = n / gs;
                float *w = malloc(sizeof(float) * (size_t)n);
                fill_groups(w, n, gs);
                lx_array wa = make_arr(t, w, shape, 2);
                uint32_t *q = malloc(sizeof(uint32_t) * (size_t)n);
                float *s = malloc(sizeof(float) * (size_t)ng),
                      *b = malloc(sizeof(float) * (size_t)ng);
                float *s32 = malloc(sizeof(float) * (size_t)ng);
                ref_quantize(w, n, gs, bits, t, q, s, b, s32);
                lx_array wq, sc, bs;
                CHECK_OK(lx_quantize(wa, gs, bits, &wq, &sc, &bs));
                lx_array d = lx_dequantize(wq, sc, bs, gs, bits);
                float *got = malloc(sizeof(float) * (size_t)n);
                CHECK(lx_dtype_of(d) == t && lx_dim(d, 1) == 3 * gs);
                CHECK(read_f(d, got, n));
                double u = unit_roundoff(t), n_bins = (double)((1 << bits) - 1);
                int bad_exact = 0, bad_bound = 0;
                for (int64_t j = 0; j < n; j++) {
                    int64_t g = j / gs;
                    float want = ref_deq(t, q[j], s[g], b[g]);
                    if (memcmp(&want, &got[j], 4) != 0 && bad_exact++ < 3)
                        fprintf(stderr, "  deq[%lld] %s bits %d gs %d: got %.9g want %.9g\n",
                                (long long)j, lx_dtype_name(t), bits, gs, got[j], want);
                    /* error bound against the original value */
                    double sd = fabs((double)s32[g]), lvl = ((double)w[j] - b[g]) / (double)s32[g];
                    double wmin = INFINITY, wmax = -INFINITY;
                    for (int k = 0; k < gs; k++) {
                        wmin = fmin(wmin, w[g * gs + k]);
                        wmax = fmax(wmax, w[g * gs + k]);
                    }
                    double slack = n_bins * fabs(s[g] - (double)s32[g]) +
                                   2 * u * (fabs(b[g]) + fabs(got[j])) + 1e-6 * fabs(w[j]) + 1e-30;
                    double bound =
                        (lvl >= -0.5 && lvl <= n_bins + 0.5) ? sd / 2 : (wmax - wmin) / n_bins;
                    if (fabs((double)w[j] - got[j]) > bound * (1 + 1e-5) + slack && bad_bound++ < 3)
                        fprintf(
                            stderr, "  bound[%lld] %s bits %d gs %d: w %.9g deq %.9g bound %g\n",
                            (long long)j, lx_dtype_name(t), bits, gs, w[j], got[j], bound + slack);
                }
                CHECK_MSG(bad_exact == 0, "%d dequantized values differ from MLX's", bad_exact);
                CHECK_MSG(bad_bound == 0, "%d values outside the error bound", bad_bound);
                free(w);
                free(q);
                free(s);
                free(b);
                free(s32);
                free(got);
                lx_sweep();
            }
}

/* The edge (larger-magnitude end) is exact after a float32 round trip. */
static void test_edge_exact(void) {
    t_seed(13);
    int gs = 64, bits = 4, shape[2] = {16, gs};
    float *w = rand_floats(16 * gs, -2, 1.5);
    lx_array wq, sc, bs;
    CHECK_OK(lx_quantize(lx_array_f32(w, shape, 2), gs, bits, &wq, &sc, &bs));
    float d[16 * 64];
    CHECK(read_f(lx_dequantize(wq, sc, bs, gs, bits), d, 16 * gs));
    bool ok = true;
    for (int g = 0; g < 16; g++) {
        float mn = INFINITY, mx = -INFINITY;
        for (int j = 0; j < gs; j++) {
            mn = fminf(mn, w[g * gs + j]);
            mx = fmaxf(mx, w[g * gs + j]);
        }
        float edge = fabsf(mn) > fabsf(mx) ? mn : mx;
        bool found = false;
        for (int j = 0; j < gs; j++) found |= w[g * gs + j] == edge && d[g * gs + j] == edge;
        ok &= found;
    }
    CHECK(ok);
    free(w);
}

/* Lazy multi-output: evaluating one output leaves the others computable; they share one
 * buffer at 64-byte-aligned offsets. */
static void test_multi_output(void) {
    int shape[2] = {4, 128};
    float *w = rand_floats(512, -1, 1);
    lx_array wq, sc, bs;
    CHECK_OK(lx_quantize(lx_array_f32(w, shape, 2), 64, 4, &wq, &sc, &bs));
    float s1[8], s2[8];
    CHECK(read_f(sc, s1, 8)); /* computes the shared node */
    const char *pq = lx_data(wq), *ps = lx_data(sc), *pb = lx_data(bs);
    CHECK(pq && ps && pb);
    CHECK((ps - pq) % 64 == 0 && (pb - pq) % 64 == 0 && ps - pq >= 4 * 128 / 2);
    lx_keep(sc);
    lx_free(wq);
    lx_free(bs);
    lx_sweep();
    CHECK(read_f(sc, s2, 8) && memcmp(s1, s2, sizeof s1) == 0);
    lx_free(sc);
    free(w);
}

/* ---- quantized matmul ----------------------------------------------------------------------- */

typedef struct {
    int bits, gs;
    lx_dtype t;
    int batch, rows, cols; /* w (unquantized) [batch, rows, cols], quantized along cols */
    lx_array wq, sc, bs;
    double *deq; /* float64 dequantized w */
} qw_t;

static qw_t make_qw(lx_dtype t, int bits, int gs, int batch, int rows, int cols) {
    qw_t r = {bits, gs, t, batch, rows, cols, {0}, {0}, {0}, NULL};
    int64_t n = (int64_t)(batch ? batch : 1) * rows * cols;
    float *w = rand_floats(n, -1, 1);
    int shape[3] = {batch, rows, cols};
    lx_array wa = batch ? make_arr(t, w, shape, 3) : make_arr(t, w, shape + 1, 2);
    CHECK_OK(lx_quantize(wa, gs, bits, &r.wq, &r.sc, &r.bs));
    uint32_t *words = malloc(sizeof(uint32_t) * (size_t)(n * bits / 32));
    float *s = malloc(sizeof(float) * (size_t)(n / gs)),
          *b = malloc(sizeof(float) * (size_t)(n / gs));
    CHECK_OK(lx_read(r.wq, words, (size_t)(n * bits / 8)));
    CHECK(read_f(r.sc, s, n / gs) && read_f(r.bs, b, n / gs));
    r.deq = malloc(sizeof(double) * (size_t)n);
    for (int64_t j = 0; j < n; j++)
        r.deq[j] = (double)s[j / gs] * ref_unpack(words, j, bits) + (double)b[j / gs];
    lx_keep(r.wq, r.sc, r.bs);
    free(w);
    free(words);
    free(s);
    free(b);
    return r;
}

static void free_qw(qw_t *r) {
    lx_free(r->wq);
    lx_free(r->sc);
    lx_free(r->bs);
    free(r->deq);
}

/* out[o] (M x N) = x matrix xm (M x K) times w matrix wm; w stored [N, K] when transpose. */
static void ref_mm(const float *x, const double *w, bool transpose, int M, int N, int K,
                   double *out, double *mag) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = 0, a = 0;
            for (int k = 0; k < K; k++) {
                double wv = transpose ? w[(int64_t)n * K + k] : w[(int64_t)k * N + n];
                acc += (double)x[(int64_t)m * K + k] * wv;
                a += fabs((double)x[(int64_t)m * K + k] * wv);
            }
            out[m * N + n] = acc;
            mag[m * N + n] = a;
        }
}

static bool compare(const char *what, lx_array got_a, const double *want, const double *mag,
                    int64_t n, int K, lx_dtype t) {
    float *got = malloc(sizeof(float) * (size_t)(n ? n : 1));
    bool ok = lx_dtype_of(got_a) == t && read_f(got_a, got, n);
    int bad = 0;
    double u = t == LX_FLOAT32 ? 0 : unit_roundoff(t);
    for (int64_t i = 0; ok && i < n; i++) {
        double tol = 4.0 * K * ldexp(1, -24) * mag[i] + 1e-6 + u * fabs(want[i]) * 1.01;
        if (!(fabs(got[i] - want[i]) <= tol)) {
            if (bad < 4)
                fprintf(stderr, "  %s[%lld]: got %.9g want %.9g (tol %g)\n", what, (long long)i,
                        got[i], want[i], tol);
            bad++;
        }
    }
    free(got);
    CHECK_MSG(ok && bad == 0, "%s: %d values outside tolerance", what, bad);
    return ok && bad == 0;
}

/* x [xb.., M, K] with a 2-D w; M spans the fused small-M kernels (M <= 8 without transpose,
 * M <= 48 with: 2 x 24 rows) and the dequantized-panel + sgemm path. */
static void test_qmm_2d(void) {
    t_seed(21);
    const int Ms[] = {1, 3, 8, 9, 24, 25, 40};
    for (int ti = 0; ti < 3; ti++)
        for (int bi = 0; bi < 6; bi++)
            for (int tr = 0; tr < 2; tr++) {
                lx_dtype t = FLOATS[ti];
                int bits = BITS[bi], gs = GROUPS[(bi + ti + tr) % 3];
                int K = tr ? 2 * gs : 96, N = tr ? 23 : 2 * gs; /* odd N: a lone last column */
                if (!tr) K = 40;
                /* transpose: w [N, K] quantized along K; else w [K, N] quantized along N */
                qw_t w = tr ? make_qw(t, bits, gs, 0, N, K) : make_qw(t, bits, gs, 0, K, N);
                for (int mi = 0; mi < 7; mi++) {
                    int M = Ms[mi];
                    int xs[3] = {2, M, K};
                    int64_t nx = 2LL * M * K;
                    float *x = rand_floats(nx, -1, 1);
                    lx_array xa = make_arr(t, x, xs, 3);
                    lx_array out = lx_quantized_matmul(xa, w.wq, w.sc, w.bs, tr, gs, bits);
                    int os[3];
                    CHECK(lx_shape(out, os) == 3 && os[0] == 2 && os[1] == M && os[2] == N);
                    double *want = malloc(sizeof(double) * 2 * M * N),
                           *mag = malloc(sizeof(double) * 2 * M * N);
                    for (int b = 0; b < 2; b++)
                        ref_mm(x + (int64_t)b * M * K, w.deq, tr, M, N, K, want + b * M * N,
                               mag + b * M * N);
                    char what[96];
                    snprintf(what, sizeof what, "qmm %s bits %d gs %d tr %d M %d", lx_dtype_name(t),
                             bits, gs, tr, M);
                    compare(what, out, want, mag, 2LL * M * N, K, t);
                    free(x);
                    free(want);
                    free(mag);
                }
                free_qw(&w);
                lx_sweep();
            }
}

/* Batched w: x and w batch dims broadcast; x 1-D; x int32 promotes. */
static void test_qmm_batched(void) {
    t_seed(22);
    for (int tr = 0; tr < 2; tr++)
        for (int big = 0; big < 2; big++) {
            int bits = 4, gs = 32, K = 64, N = 64, M = big ? 52 : 2;
            qw_t w = tr ? make_qw(LX_FLOAT32, bits, gs, 3, N, K)
                        : make_qw(LX_FLOAT32, bits, gs, 3, K, N);
            /* x [2, 1, M, K] against w [3, .., ..] -> [2, 3, M, N] */
            int xs[4] = {2, 1, M, K};
            float *x = rand_floats(2LL * M * K, -1, 1);
            lx_array out =
                lx_quantized_matmul(lx_array_f32(x, xs, 4), w.wq, w.sc, w.bs, tr, gs, bits);
            int os[4];
            CHECK(lx_shape(out, os) == 4 && os[0] == 2 && os[1] == 3 && os[2] == M && os[3] == N);
            int64_t per = (int64_t)M * N;
            double *want = malloc(sizeof(double) * 6 * per),
                   *mag = malloc(sizeof(double) * 6 * per);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++)
                    ref_mm(x + (int64_t)i * M * K, w.deq + (int64_t)j * K * N, tr, M, N, K,
                           want + (i * 3 + j) * per, mag + (i * 3 + j) * per);
            compare("qmm batched", out, want, mag, 6 * per, K, LX_FLOAT32);

            /* x [M, K] (no batch) against w [3, ..] -> [3, M, N] */
            out = lx_quantized_matmul(lx_array_f32(x, xs + 2, 2), w.wq, w.sc, w.bs, tr, gs, bits);
            CHECK(lx_shape(out, os) == 3 && os[0] == 3);
            for (int j = 0; j < 3; j++)
                ref_mm(x, w.deq + (int64_t)j * K * N, tr, M, N, K, want + j * per, mag + j * per);
            compare("qmm x 2-D, w batched", out, want, mag, 3 * per, K, LX_FLOAT32);

            /* x [K] -> [3, N] */
            out = lx_quantized_matmul(lx_array_f32(x, &K, 1), w.wq, w.sc, w.bs, tr, gs, bits);
            CHECK(lx_shape(out, os) == 2 && os[0] == 3 && os[1] == N);
            for (int j = 0; j < 3; j++)
                ref_mm(x, w.deq + (int64_t)j * K * N, tr, 1, N, K, want + j * N, mag + j * N);
            compare("qmm x 1-D", out, want, mag, 3 * N, K, LX_FLOAT32);
            free(x);
            free(want);
            free(mag);
            free_qw(&w);
            lx_sweep();
        }

    /* x 1-D with a 2-D w; x int32 promotes to the scales' dtype */
    qw_t w = make_qw(LX_FLOAT32, 8, 64, 0, 16, 128);
    int32_t xi[128];
    float xf[128];
    for (int k = 0; k < 128; k++) xf[k] = (float)(xi[k] = t_int(-3, 3));
    int K = 128;
    lx_array out = lx_quantized_matmul(lx_array_i32(xi, &K, 1), w.wq, w.sc, w.bs, true, 64, 8);
    double want[16], mag[16];
    ref_mm(xf, w.deq, true, 1, 16, 128, want, mag);
    CHECK(lx_ndim(out) == 1 && lx_dim(out, 0) == 16);
    compare("qmm int32 x", out, want, mag, 16, 128, LX_FLOAT32);
    /* a transposed (non-contiguous) x is made contiguous first */
    int xs2[2] = {128, 3};
    float *xt = rand_floats(384, -1, 1), xr[384];
    for (int m = 0; m < 3; m++)
        for (int k = 0; k < 128; k++) xr[m * 128 + k] = xt[k * 3 + m];
    out = lx_quantized_matmul(lx_transpose(lx_array_f32(xt, xs2, 2), NULL, 0), w.wq, w.sc, w.bs,
                              true, 64, 8);
    double want3[48], mag3[48];
    ref_mm(xr, w.deq, true, 3, 16, 128, want3, mag3);
    compare("qmm strided x", out, want3, mag3, 48, 128, LX_FLOAT32);
    free(xt);
    free_qw(&w);

    /* views of the quantized triple (a slice of experts: offsets into the buffers) */
    for (int tr = 0; tr < 2; tr++) {
        int Kq = 64, Nq = 32;
        qw_t e = tr ? make_qw(LX_FLOAT16, 4, 32, 3, Nq, Kq) : make_qw(LX_FLOAT16, 4, 32, 3, Kq, Nq);
        int r0 = tr ? Nq : Kq, c0 = tr ? Kq : Nq;
        lx_array v[3], src[3] = {e.wq, e.sc, e.bs};
        for (int i = 0; i < 3; i++) {
            int start[3] = {1, 0, 0}, stop[3] = {3, r0, lx_dim(src[i], 2)};
            v[i] = lx_slice(src[i], start, stop, NULL, 3);
        }
        int xs3[3] = {2, 1, Kq};
        float *x3 = rand_floats(2 * Kq, -1, 1);
        lx_array o3 =
            lx_quantized_matmul(make_arr(LX_FLOAT16, x3, xs3, 3), v[0], v[1], v[2], tr, 32, 4);
        double want4[64], mag4[64];
        for (int i = 0; i < 2; i++)
            ref_mm(x3 + i * Kq, e.deq + (int64_t)(i + 1) * r0 * c0, tr, 1, Nq, Kq, want4 + i * Nq,
                   mag4 + i * Nq);
        compare("qmm sliced experts", o3, want4, mag4, 2 * Nq, Kq, LX_FLOAT16);
        free(x3);
        free_qw(&e);
    }
}

/* quantize of a strided view equals quantize of its contiguous copy */
static void test_quantize_strided(void) {
    t_seed(14);
    int shape[2] = {64, 3};
    float *w = rand_floats(192, -1, 1), wt[192];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 64; j++) wt[i * 64 + j] = w[j * 3 + i];
    lx_array a, b, c, a2, b2, c2;
    CHECK_OK(lx_quantize(lx_transpose(lx_array_f32(w, shape, 2), NULL, 0), 32, 4, &a, &b, &c));
    CHECK_OK(lx_quantize(lx_array_f32(wt, (int[]){3, 64}, 2), 32, 4, &a2, &b2, &c2));
    uint32_t q1[24], q2[24];
    float s1[6], s2[6];
    CHECK_OK(lx_read(a, q1, sizeof q1));
    CHECK_OK(lx_read(a2, q2, sizeof q2));
    CHECK(memcmp(q1, q2, sizeof q1) == 0);
    CHECK(read_f(b, s1, 6) && read_f(b2, s2, 6) && memcmp(s1, s2, sizeof s1) == 0);
    CHECK(read_f(c, s1, 6) && read_f(c2, s2, 6) && memcmp(s1, s2, sizeof s1) == 0);
    free(w);
}

/* A decode-sized GEMV and a prefill-sized GEMM: larger shapes through both paths. */
static void test_qmm_large(void) {
    t_seed(23);
    int K = 1024, N = 768;
    qw_t w = make_qw(LX_BFLOAT16, 4, 64, 0, N, K);
    const int Ms[] = {1, 64};
    for (int i = 0; i < 2; i++) {
        int M = Ms[i], xs[2] = {M, K};
        float *x = rand_floats((int64_t)M * K, -1, 1);
        lx_array out =
            lx_quantized_matmul(make_arr(LX_BFLOAT16, x, xs, 2), w.wq, w.sc, w.bs, true, 64, 4);
        double *want = malloc(sizeof(double) * M * N), *mag = malloc(sizeof(double) * M * N);
        ref_mm(x, w.deq, true, M, N, K, want, mag);
        compare("qmm large bf16", out, want, mag, (int64_t)M * N, K, LX_BFLOAT16);
        free(x);
        free(want);
        free(mag);
    }
    free_qw(&w);
}

/* ---- gather_qmm / gather_mm ----------------------------------------------------------------- */

static void test_gather_qmm(void) {
    t_seed(31);
    for (int tr = 0; tr < 2; tr++)
        for (int ti = 0; ti < 3; ti++) {
            lx_dtype t = FLOATS[ti];
            int E = 4, K = 64, N = 64, gs = 32, bits = ti == 1 ? 8 : 4;
            qw_t w = tr ? make_qw(t, bits, gs, E, N, K) : make_qw(t, bits, gs, E, K, N);
            int64_t wm = (int64_t)K * N;
            /* MoE decode: x [5, 1, 1, K], rhs [5, 2] -> out [5, 2, 1, N] */
            int xs[4] = {5, 1, 1, K};
            float *x = rand_floats(5LL * K, -1, 1);
            lx_array xa = make_arr(t, x, xs, 4);
            int32_t ri[10];
            for (int i = 0; i < 10; i++) ri[i] = t_int(0, E - 1);
            int is[2] = {5, 2};
            lx_array out = lx_gather_qmm(xa, w.wq, w.sc, w.bs, LX_NULL_ARRAY,
                                         lx_array_i32(ri, is, 2), tr, gs, bits);
            int os[4];
            CHECK(lx_shape(out, os) == 4 && os[0] == 5 && os[1] == 2 && os[2] == 1 && os[3] == N);
            double want[10 * 64], mag[10 * 64];
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 2; j++)
                    ref_mm(x + i * K, w.deq + ri[i * 2 + j] * wm, tr, 1, N, K,
                           want + (i * 2 + j) * N, mag + (i * 2 + j) * N);
            compare("gather_qmm rhs", out, want, mag, 10LL * N, K, t);

            /* both indices, M = 50 (sgemm path): x [3, 50, K], lhs/rhs [4] (uint32 / int64) */
            int M = 50, xs2[3] = {3, M, K};
            float *x2 = rand_floats(3LL * M * K, -1, 1);
            lx_array xa2 = make_arr(t, x2, xs2, 3);
            uint32_t li[4] = {2, 0, 1, 2};
            int64_t rj[4] = {3, 3, 0, 1};
            int n4 = 4;
            out = lx_gather_qmm(xa2, w.wq, w.sc, w.bs, lx_array_new(li, &n4, 1, LX_UINT32),
                                lx_array_new(rj, &n4, 1, LX_INT64), tr, gs, bits);
            CHECK(lx_shape(out, os) == 3 && os[0] == 4 && os[1] == M && os[2] == N);
            double *want2 = malloc(sizeof(double) * 4 * M * N),
                   *mag2 = malloc(sizeof(double) * 4 * M * N);
            for (int i = 0; i < 4; i++)
                ref_mm(x2 + (int64_t)li[i] * M * K, w.deq + rj[i] * wm, tr, M, N, K,
                       want2 + (int64_t)i * M * N, mag2 + (int64_t)i * M * N);
            compare("gather_qmm both", out, want2, mag2, 4LL * M * N, K, t);

            /* lhs only: x [3, 2, K] picked by lhs [2, 1], w [E, ..] broadcast -> [2, E, 2, N] */
            uint32_t l2[2] = {2, 0};
            int ls[2] = {2, 1};
            out = lx_gather_qmm(xa2, w.wq, w.sc, w.bs, lx_array_new(l2, ls, 2, LX_UINT32),
                                LX_NULL_ARRAY, tr, gs, bits);
            int os4[4];
            CHECK(lx_shape(out, os4) == 4 && os4[0] == 2 && os4[1] == E && os4[2] == M &&
                  os4[3] == N);
            double *want3 = malloc(sizeof(double) * 2 * E * M * N),
                   *mag3 = malloc(sizeof(double) * 2 * E * M * N);
            for (int i = 0; i < 2; i++)
                for (int e = 0; e < E; e++)
                    ref_mm(x2 + (int64_t)l2[i] * M * K, w.deq + e * wm, tr, M, N, K,
                           want3 + ((int64_t)i * E + e) * M * N,
                           mag3 + ((int64_t)i * E + e) * M * N);
            compare("gather_qmm lhs", out, want3, mag3, 2LL * E * M * N, K, t);

            free(x);
            free(x2);
            free(want2);
            free(mag2);
            free(want3);
            free(mag3);
            free_qw(&w);
            lx_sweep();
        }

    /* an index out of range is reported at evaluation, never read */
    qw_t w = make_qw(LX_FLOAT32, 4, 32, 2, 32, 32);
    float x[32] = {0};
    int xs[3] = {1, 1, 32}, one = 1;
    int32_t bad = 2;
    lx_array out = lx_gather_qmm(lx_array_f32(x, xs, 3), w.wq, w.sc, w.bs, LX_NULL_ARRAY,
                                 lx_array_i32(&bad, &one, 1), true, 32, 4);
    CHECK(!lx_is_null(out));
    float o[32];
    CHECK(lx_read(out, o, sizeof o) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    bad = -1;
    out = lx_gather_qmm(lx_array_f32(x, xs, 3), w.wq, w.sc, w.bs, LX_NULL_ARRAY,
                        lx_array_i32(&bad, &one, 1), true, 32, 4);
    CHECK(lx_read(out, o, sizeof o) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    free_qw(&w);
}

static void ref_gmm(const float *a, const float *b, int M, int N, int K, double *out, double *mag) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = 0, s = 0;
            for (int k = 0; k < K; k++) {
                acc += (double)a[m * K + k] * b[k * N + n];
                s += fabs((double)a[m * K + k] * b[k * N + n]);
            }
            out[m * N + n] = acc;
            mag[m * N + n] = s;
        }
}

static void test_gather_mm(void) {
    t_seed(41);
    for (int ti = 0; ti < 3; ti++)
        for (int big = 0; big < 2; big++) {
            lx_dtype t = FLOATS[ti];
            int M = big ? 64 : 3, K = big ? 80 : 5, N = big ? 72 : 7;
            int as[3] = {3, M, K}, bs[3] = {4, K, N};
            float *a = rand_floats(3LL * M * K, -1, 1), *b = rand_floats(4LL * K * N, -1, 1);
            lx_array aa = make_arr(t, a, as, 3), ba = make_arr(t, b, bs, 3);
            int32_t li[5] = {0, 2, 1, 1, 2}, ri[5] = {3, 0, 0, 2, 1};
            int n5 = 5;
            lx_array out = lx_gather_mm(aa, ba, lx_array_i32(li, &n5, 1), lx_array_i32(ri, &n5, 1));
            int os[3];
            CHECK(lx_shape(out, os) == 3 && os[0] == 5 && os[1] == M && os[2] == N);
            int64_t per = (int64_t)M * N;
            double *want = malloc(sizeof(double) * 5 * per),
                   *mag = malloc(sizeof(double) * 5 * per);
            for (int i = 0; i < 5; i++)
                ref_gmm(a + (int64_t)li[i] * M * K, b + (int64_t)ri[i] * K * N, M, N, K,
                        want + i * per, mag + i * per);
            compare("gather_mm", out, want, mag, 5 * per, K, t);

            /* rhs only: a [3, M, K] (batch 3) with rhs [3] */
            out = lx_gather_mm(aa, ba, LX_NULL_ARRAY, lx_array_i32(ri, (int[]){3}, 1));
            CHECK(lx_shape(out, os) == 3 && os[0] == 3);
            for (int i = 0; i < 3; i++)
                ref_gmm(a + (int64_t)i * M * K, b + (int64_t)ri[i] * K * N, M, N, K, want + i * per,
                        mag + i * per);
            compare("gather_mm rhs", out, want, mag, 3 * per, K, t);
            free(a);
            free(b);
            free(want);
            free(mag);
            lx_sweep();
        }
    /* a 1-D a: [K] picks as [1, K] and the M axis is squeezed */
    float a[4] = {1, 2, 3, 4}, b[2 * 4 * 3];
    for (int i = 0; i < 24; i++) b[i] = (float)(i % 7) - 3;
    int k4 = 4, bs[3] = {2, 4, 3}, one = 1;
    int32_t r = 1;
    lx_array out = lx_gather_mm(lx_array_f32(a, &k4, 1), lx_array_f32(b, bs, 3), LX_NULL_ARRAY,
                                lx_array_i32(&r, &one, 1));
    float o[3];
    CHECK(lx_ndim(out) == 2 && lx_dim(out, 0) == 1 && lx_dim(out, 1) == 3);
    CHECK(read_f(out, o, 3));
    for (int n = 0; n < 3; n++) {
        double want = 0;
        for (int k = 0; k < 4; k++) want += a[k] * b[12 + k * 3 + n];
        CHECK(o[n] == (float)want);
    }
    /* no indices: a plain matmul (MLX) */
    int as2[3] = {2, 3, 4};
    float a2[24];
    for (int i = 0; i < 24; i++) a2[i] = (float)(i % 5) - 2;
    out = lx_gather_mm(lx_array_f32(a2, as2, 3), lx_array_f32(b, bs, 3), LX_NULL_ARRAY,
                       LX_NULL_ARRAY);
    float o2[18];
    CHECK(lx_ndim(out) == 3 && read_f(out, o2, 18));
    bool mm_ok = true;
    for (int i = 0; i < 2; i++)
        for (int m = 0; m < 3; m++)
            for (int n = 0; n < 3; n++) {
                double want = 0;
                for (int k = 0; k < 4; k++) want += a2[i * 12 + m * 4 + k] * b[i * 12 + k * 3 + n];
                mm_ok &= o2[i * 9 + m * 3 + n] == (float)want;
            }
    CHECK(mm_ok);
    int32_t bad = 5;
    out = lx_gather_mm(lx_array_f32(a, &k4, 1), lx_array_f32(b, bs, 3), LX_NULL_ARRAY,
                       lx_array_i32(&bad, &one, 1));
    CHECK(lx_read(out, o, sizeof o) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
}

/* ---- errors --------------------------------------------------------------------------------- */

static void test_errors(void) {
    float w[2 * 96] = {0};
    int s96[2] = {2, 96}, s64[2] = {2, 64};
    lx_array wq, sc, bs;
    lx_array a96 = lx_array_f32(w, s96, 2), a64 = lx_array_f32(w, s64, 2);
    CHECK(lx_quantize(a96, 64, 4, &wq, &sc, &bs) == LX_E_SHAPE);
    CHECK(lx_is_null(wq) && lx_is_null(sc) && lx_is_null(bs));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_quantize(a64, 16, 4, &wq, &sc, &bs) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_quantize(a64, 64, 7, &wq, &sc, &bs) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_quantize(a64, 64, 1, &wq, &sc, &bs) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_quantize(a64, 64, 4, NULL, &sc, &bs) == LX_E_ARG);
    CHECK_ERROR(LX_E_ARG);
    int32_t wi[128] = {0};
    CHECK(lx_quantize(lx_array_i32(wi, s64, 2), 64, 4, &wq, &sc, &bs) == LX_E_DTYPE);
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_quantize(lx_array_f32(w, (int[]){64}, 1), 64, 4, &wq, &sc, &bs) == LX_E_SHAPE);
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_quantize(LX_NULL_ARRAY, 64, 4, &wq, &sc, &bs) != LX_OK);
    CHECK(lx_error() != LX_OK);
    lx_clear_error();

    CHECK_OK(lx_quantize(a64, 64, 4, &wq, &sc, &bs));
    /* dequantize */
    CHECK(lx_is_null(lx_dequantize(wq, sc, bs, 32, 4)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_dequantize(wq, sc, bs, 64, 9)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_dequantize(sc, sc, bs, 64, 4)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_dequantize(wq, wq, bs, 64, 4)));
    CHECK_ERROR(LX_E_DTYPE);
    CHECK(lx_is_null(lx_dequantize(wq, sc, lx_zeros((int[]){2, 2}, 2, LX_FLOAT32), 64, 4)));
    CHECK_ERROR(LX_E_SHAPE);
    /* quantized_matmul: K mismatch, x float64, bad bits, bad group */
    float x[48] = {0};
    int xs[2] = {1, 48};
    CHECK(lx_is_null(lx_quantized_matmul(lx_array_f32(x, xs, 2), wq, sc, bs, true, 64, 4)));
    CHECK_ERROR(LX_E_SHAPE);
    double xd[64] = {0};
    CHECK(lx_is_null(lx_quantized_matmul(lx_array_new(xd, (int[]){1, 64}, 2, LX_FLOAT64), wq, sc,
                                         bs, true, 64, 4)));
    CHECK_ERROR(LX_E_DTYPE);
    lx_array x64 = lx_zeros((int[]){1, 64}, 2, LX_FLOAT32);
    CHECK(lx_is_null(lx_quantized_matmul(x64, wq, sc, bs, true, 64, 3)));
    CHECK_ERROR(LX_E_SHAPE); /* 8 words * 32 / 3 is not a whole number of values */
    CHECK(lx_is_null(lx_quantized_matmul(x64, wq, sc, bs, true, 48, 4)));
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_is_null(lx_quantized_matmul(x64, wq, sc, bs, false, 64, 4))); /* K would be 2 */
    CHECK_ERROR(LX_E_SHAPE);
    /* gather: float indices, bad broadcast */
    float fi[2] = {0, 0};
    CHECK(lx_is_null(lx_gather_qmm(x64, wq, sc, bs, LX_NULL_ARRAY, lx_array_f32(fi, (int[]){2}, 1),
                                   true, 64, 4)));
    CHECK_ERROR(LX_E_DTYPE);
    int32_t i2[2] = {0, 0}, i3[3] = {0, 0, 0};
    CHECK(lx_is_null(lx_gather_qmm(x64, wq, sc, bs, lx_array_i32(i2, (int[]){2}, 1),
                                   lx_array_i32(i3, (int[]){3}, 1), true, 64, 4)));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_gather_mm(x64, x64, LX_NULL_ARRAY, lx_array_i32(i2, (int[]){2}, 1))));
    CHECK_ERROR(LX_E_SHAPE);
    CHECK(lx_is_null(lx_gather_mm(lx_array_i32(wi, s64, 2), lx_array_i32(wi, (int[]){64, 2}, 2),
                                  LX_NULL_ARRAY, lx_array_i32(i2, (int[]){2}, 1))));
    CHECK_ERROR(LX_E_DTYPE);
    /* NaN and Inf: the values are unspecified (as in MLX) but nothing is undefined behaviour
     * (this runs under UBSan) and finite groups are unaffected */
    float wn[64];
    for (int j = 0; j < 64; j++) wn[j] = (float)j;
    wn[3] = NAN;
    wn[40] = INFINITY;
    lx_array nq, ns, nb;
    CHECK_OK(lx_quantize(lx_array_f32(wn, (int[]){1, 64}, 2), 32, 4, &nq, &ns, &nb));
    uint32_t nw[8];
    float nsv[2];
    CHECK_OK(lx_read(nq, nw, sizeof nw));
    CHECK(read_f(ns, nsv, 2));
    /* a released handle */
    lx_array gone = lx_array_f32(w, s64, 2);
    lx_sweep();
    CHECK(lx_quantize(gone, 64, 4, &wq, &sc, &bs) == LX_E_FREED);
    CHECK_ERROR(LX_E_FREED);
}

int main(void) {
    RUN_TEST(test_hand_made_words);
    RUN_TEST(test_quantize_bit_exact);
    RUN_TEST(test_dequantize);
    RUN_TEST(test_edge_exact);
    RUN_TEST(test_quantize_strided);
    RUN_TEST(test_multi_output);
    RUN_TEST(test_qmm_2d);
    RUN_TEST(test_qmm_batched);
    RUN_TEST(test_qmm_large);
    RUN_TEST(test_gather_qmm);
    RUN_TEST(test_gather_mm);
    RUN_TEST(test_errors);
    return test_finish();
}
