/*
 * random.c -- RANDOM_BITS on the CPU: threefry2x32 (20 rounds) with MLX's exact layout.
 *
 * For each key (the input's leading dims; the last dim is the pair), the key's share of the
 * output is B bytes = W words of 32 bits (the last one possibly partial). With H = W / 2 and
 * odd = W % 2, word j is
 *     j <  H:            threefry(key, (j, j + H + odd)).first
 *     j >= H + odd:      threefry(key, (j - H - odd, j)).second
 *     j == H (odd W):    threefry(key, (H, 0)).first
 * and the bytes are the words' little-endian bytes, truncated to B. Every word depends only on
 * (key, j), so the result is the same whatever the thread count.
 */
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/threefry.h"


typedef struct {
    const lx_node *key;
    unsigned char *out;
    int64_t bytes_per_key, words, half;
    int odd;
    int64_t n_keys;
} bitsctx;

static uint32_t key_word(const lx_node *key, int64_t i) {
    /* element i of the key array in row-major order */
    int64_t off = 0;
    for (int d = key->ndim - 1; d >= 0; d--) {
        off += (i % key->shape[d]) * key->strides[d];
        i /= key->shape[d];
    }
    return ((const uint32_t *)lx_node_ptr(key))[off];
}

/* v[j - j0] for j in [j0, j1): the first word of threefry(key, (j, j + off)), or the second of
 * threefry(key, (j - off, j)). Straight loops over j, so they vectorize (8 lanes with AVX2). */
static void words_first(uint32_t k0, uint32_t k1, int64_t j0, int64_t j1, uint32_t off,
                        uint32_t *v) {
    for (int64_t j = j0; j < j1; j++) {
        uint32_t x0 = (uint32_t)j, x1 = (uint32_t)j + off;
        lx_threefry2x32(k0, k1, &x0, &x1);
        v[j - j0] = x0;
    }
}
static void words_second(uint32_t k0, uint32_t k1, int64_t j0, int64_t j1, uint32_t off,
                         uint32_t *v) {
    for (int64_t j = j0; j < j1; j++) {
        uint32_t x0 = (uint32_t)j - off, x1 = (uint32_t)j;
        lx_threefry2x32(k0, k1, &x0, &x1);
        v[j - j0] = x1;
    }
}

static void bits_fn(void *ctx, int64_t b, int64_t e) {
    const bitsctx *c = ctx;
    /* tasks are (key, block of 256 words) */
    int64_t blocks = (c->words + 255) / 256;
    const int64_t mid = c->half + c->odd; /* words from here are second halves */
    for (int64_t t = b; t < e; t++) {
        int64_t k = t / blocks, w0 = (t % blocks) * 256;
        int64_t w1 = w0 + 256 < c->words ? w0 + 256 : c->words;
        uint32_t k0 = key_word(c->key, 2 * k), k1 = key_word(c->key, 2 * k + 1);
        uint32_t v[256];
        int64_t a = w0 < c->half ? w0 : c->half, a1 = w1 < c->half ? w1 : c->half;
        if (a < a1) words_first(k0, k1, a, a1, (uint32_t)mid, v + (a - w0));
        if (c->odd && w0 <= c->half && c->half < w1) { /* the middle word of an odd count */
            uint32_t x0 = (uint32_t)c->half, x1 = 0;
            lx_threefry2x32(k0, k1, &x0, &x1);
            v[c->half - w0] = x0;
        }
        int64_t s0 = w0 > mid ? w0 : mid;
        if (s0 < w1) words_second(k0, k1, s0, w1, (uint32_t)mid, v + (s0 - w0));
        /* little-endian bytes of the words, the last one possibly cut */
        unsigned char *dst = c->out + k * c->bytes_per_key + 4 * w0;
        int64_t nb = c->bytes_per_key - 4 * w0 < 4 * (w1 - w0) ? c->bytes_per_key - 4 * w0
                                                                 : 4 * (w1 - w0);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(dst, v, (size_t)nb);
#else
        for (int64_t q = 0; q < nb; q++) dst[q] = (unsigned char)(v[q / 4] >> (8 * (q % 4)));
#endif
    }
}

lx_status LX_CPU_KERNEL(RANDOM_BITS)(lx_node *out) {
    const lx_node *key = out->inputs[0];
    if (key->dtype != LX_UINT32 || key->ndim < 1 || key->shape[key->ndim - 1] != 2)
        return lx_set_error(LX_E_INTERNAL, "%s: random key must be uint32 [..., 2]", out->op);
    if (out->size == 0) return LX_OK;
    bitsctx c;
    memset(&c, 0, sizeof c);
    c.key = key;
    c.out = lx_node_ptr(out);
    c.n_keys = key->size / 2;
    if (c.n_keys == 0) return LX_OK;
    c.bytes_per_key = (int64_t)lx_node_nbytes(out) / c.n_keys;
    c.words = (c.bytes_per_key + 3) / 4;
    c.half = c.words / 2;
    c.odd = (int)(c.words % 2);
    int64_t tasks = c.n_keys * ((c.words + 255) / 256);
    lx_parallel_for(tasks, 16, bits_fn, &c);
    return LX_OK;
}
