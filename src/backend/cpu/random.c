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
    int64_t blocks; /* tasks per key: blocks of 256 word pairs (one when there are none) */
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

/* For p in [p0, p1): both words of threefry(key, (p, p + mid)), word p of the key's share
 * (first) and word p + mid (second), so each evaluation serves two words. A straight loop over
 * p, so it vectorizes (8 lanes with AVX2). */
static void word_pairs(uint32_t k0, uint32_t k1, int64_t p0, int64_t p1, uint32_t mid,
                       uint32_t *first, uint32_t *second) {
    for (int64_t p = p0; p < p1; p++) {
        uint32_t x0 = (uint32_t)p, x1 = (uint32_t)p + mid;
        lx_threefry2x32(k0, k1, &x0, &x1);
        first[p - p0] = x0;
        second[p - p0] = x1;
    }
}

/* Words [w, w + n) of key k's share as little-endian bytes, cut at the share's end. */
static void put_words(const bitsctx *c, int64_t k, int64_t w, const uint32_t *v, int64_t n) {
    int64_t room = c->bytes_per_key - 4 * w, nb = 4 * n < room ? 4 * n : room;
    if (nb <= 0) return;
    unsigned char *dst = c->out + k * c->bytes_per_key + 4 * w;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, v, (size_t)nb);
#else
    for (int64_t q = 0; q < nb; q++) dst[q] = (unsigned char)(v[q / 4] >> (8 * (q % 4)));
#endif
}

static void bits_fn(void *ctx, int64_t b, int64_t e) {
    const bitsctx *c = ctx;
    /* tasks are (key, block of 256 pairs); the first block of a key also makes the middle
     * word of an odd count */
    const int64_t mid = c->half + c->odd;
    for (int64_t t = b; t < e; t++) {
        int64_t k = t / c->blocks, p0 = (t % c->blocks) * 256;
        int64_t p1 = p0 + 256 < c->half ? p0 + 256 : c->half;
        uint32_t k0 = key_word(c->key, 2 * k), k1 = key_word(c->key, 2 * k + 1);
        if (p0 < p1) {
            uint32_t first[256], second[256];
            word_pairs(k0, k1, p0, p1, (uint32_t)mid, first, second);
            put_words(c, k, p0, first, p1 - p0);
            put_words(c, k, p0 + mid, second, p1 - p0);
        }
        if (c->odd && p0 == 0) {
            uint32_t x0 = (uint32_t)c->half, x1 = 0;
            lx_threefry2x32(k0, k1, &x0, &x1);
            put_words(c, k, c->half, &x0, 1);
        }
    }
}

lx_status LX_CPU_KERNEL(RANDOM_BITS)(lx_kctx *kctx, lx_node *out) {
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
    c.blocks = c.half > 0 ? (c.half + 255) / 256 : 1;
    lx_parallel_for(c.n_keys * c.blocks, 16, bits_fn, &c);
    return LX_OK;
}
