/*
 * test_half_convert.c -- the float16 and bfloat16 conversions of core/dtype.h (branch-free, so
 * that the kernels' and the JIT's loops over them vectorize) against references computed in
 * double from the formats' definitions, and the in-float roundings of graph/values.h
 * against a store and reload (the same bits; the full 2^32 sweep of lx_round_bf16_F found none
 * different, with and without -march=x86-64-v3): every float16 value, and every 97th float32 bit
 * pattern plus the rounding boundaries (ties, overflow threshold, subnormal edges), both signs.
 */
#include "graph/values.h"
#include "core/dtype.h"
#include "test_util.h"

/* float16 bits -> value, from the definition */
static double ref_f16_value(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* value of f rounded to float16, ties to even (NaN excluded): Inf from 65520 up */
static double ref_f16_round(float f) {
    double a = fabs((double)f);
    double r;
    if (a >= 65520.0) r = INFINITY;
    else {
        int e;
        frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
        int q = e - 11 < -24 ? -24 : e - 11; /* spacing 2^q: 11 significant bits, subnormal floor */
        r = ldexp(rint(ldexp(a, -q)), q);    /* rint: the default mode, nearest even */
    }
    return signbit(f) ? -r : r;
}

/* value of f rounded to bfloat16, ties to even (NaN excluded) */
static double ref_bf16_round(float f) {
    double a = fabs((double)f);
    if (a == 0 || isinf(a)) return f;
    int e;
    frexp(a, &e);
    int q = e - 8 < -133 ? -133 : e - 8; /* 8 significant bits; float32's subnormal floor */
    double r = ldexp(rint(ldexp(a, -q)), q);
    if (r > 3.3895313892515355e38) r = INFINITY; /* past the largest bfloat16, rounded up */
    return signbit(f) ? -r : r;
}

static void test_f16_to_f32_every_value(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lx_f16_to_f32((lx_f16)h);
        int e = (h >> 10) & 0x1f, m = h & 0x3ff;
        if (e == 0x1f && m) {
            /* NaN: the payload shifted up, sign kept */
            uint32_t want = ((h & 0x8000u) << 16) | 0x7f800000u | ((uint32_t)m << 13);
            bad += lx_bits_from_f32(f) != want;
            continue;
        }
        double want = e == 0x1f ? ((h & 0x8000) ? -INFINITY : INFINITY) : ref_f16_value((uint16_t)h);
        if ((double)f != want || !signbit(f) != !(h & 0x8000)) {
            if (bad < 5) printf("float16 %04x -> %.9g, want %.9g\n", (unsigned)h, (double)f, want);
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d float16 values convert wrongly", bad);
}

static int check_f32(float f) {
    int bad = 0;
    /* the kernels' and the JIT's in-float roundings (graph/values.h): the same bits as a
     * store and reload, NaN included */
    bad += lx_bits_from_f32(lx_round_f16_F(f)) != lx_bits_from_f32(lx_f16_to_f32(lx_f32_to_f16(f)));
    bad += lx_bits_from_f32(lx_round_bf16_F(f)) !=
           lx_bits_from_f32(lx_bf16_to_f32(lx_f32_to_bf16(f)));
    if (isnan(f)) {
        lx_f16 h = lx_f32_to_f16(f);
        lx_bf16 b = lx_f32_to_bf16(f);
        bad += !((h & 0x7e00u) == 0x7e00u && (h >> 15) == (lx_bits_from_f32(f) >> 31));
        bad += !((b & 0x7fc0u) == 0x7fc0u && (b >> 15) == (lx_bits_from_f32(f) >> 31));
        return bad;
    }
    float h = lx_f16_to_f32(lx_f32_to_f16(f));
    double want = ref_f16_round(f);
    bad += (double)h != want || signbit(h) != signbit(f);
    float b = lx_bf16_to_f32(lx_f32_to_bf16(f));
    want = ref_bf16_round(f);
    bad += (double)b != want || signbit(b) != signbit(f);
    return bad;
}

static void test_f32_to_half_sampled(void) {
    int bad = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 97) bad += check_f32(lx_f32_from_bits((uint32_t)u));
    CHECK_MSG(bad == 0, "%d sampled float32 values round wrongly", bad);
}

static void test_f32_to_half_boundaries(void) {
    int bad = 0;
    /* around every float16 value and every midpoint between neighbours (ties), both signs */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double v = ref_f16_value((uint16_t)h), next = ref_f16_value((uint16_t)(h + 1));
        float pts[] = {(float)v, (float)((v + next) / 2)};
        for (int k = 0; k < 2; k++)
            for (int d = -2; d <= 2; d++) {
                uint32_t b = lx_bits_from_f32(pts[k]) + (uint32_t)d;
                bad += check_f32(lx_f32_from_bits(b));
                bad += check_f32(lx_f32_from_bits(b | 0x80000000u));
            }
    }
    /* bfloat16 ties: low half exactly 0x8000, with even and odd upper halves */
    for (uint32_t hi = 0; hi < 0x7f80; hi += 3) {
        uint32_t b = (hi << 16) | 0x8000u;
        bad += check_f32(lx_f32_from_bits(b)) + check_f32(lx_f32_from_bits(b - 1)) +
               check_f32(lx_f32_from_bits(b + 1));
    }
    CHECK_MSG(bad == 0, "%d boundary values round wrongly", bad);
}

int main(void) {
    RUN_TEST(test_f16_to_f32_every_value);
    RUN_TEST(test_f32_to_half_boundaries);
    RUN_TEST(test_f32_to_half_sampled);
    return test_finish();
}
