/*
 * model_forward.c -- the Llama-family forward pass as a lazy graph.
 *
 * x = embed(ids); per layer: h = x + o(attn(rope(q(n)), rope(k(n)), v(n))) with
 * n = rms_norm(x), then x = h + down(silu(gate(m)) * up(m)) with m = rms_norm(h); logits =
 * head(rms_norm(x)). Activations [1, L, hidden] in the model's activation dtype; attention
 * [1, H, L, D] with grouped key/value heads read from the cache. During decode only the last
 * position goes through the final norm and the head (a [vocab, hidden] product is the largest
 * of the step).
 */
#include <math.h>

#include "core/error.h"
#include "models/kv_cache.h"
#include "models/model.h"

static lx_array linear(const lx_linear *l, lx_array x) {
    lx_array y = l->bits ? lx_quantized_matmul(x, l->w, l->scales, l->biases, true, l->group,
                                               l->bits)
                         : lx_matmul(x, lx_transpose(l->w, NULL, 0));
    return lx_is_null(l->bias) ? y : lx_add(y, l->bias);
}

/* Rows ids of the embedding table, [L, hidden] in dtype. */
static lx_array embed_rows(const lx_linear *e, lx_array ids, lx_dtype dtype) {
    if (!e->bits) return lx_astype(lx_take(e->w, ids, 0), dtype);
    /* scales and biases in float32: scale * q + bias rounded to a half type would lose bits
     * that a float32 product keeps (GGUF Q8_0: 8-bit q times an 11-bit scale) */
    lx_array q = lx_take(e->w, ids, 0);
    lx_array s = lx_astype(lx_take(e->scales, ids, 0), LX_FLOAT32);
    lx_array b = lx_astype(lx_take(e->biases, ids, 0), LX_FLOAT32);
    return lx_astype(lx_dequantize(q, s, b, e->group, e->bits), dtype);
}

/* [1, L, H*D] -> [1, H, L, D] */
static lx_array heads(lx_array x, int L, int H, int D) {
    lx_array r = lx_reshape(x, (int[]){1, L, H, D}, 4);
    return lx_transpose(r, (int[]){0, 2, 1, 3}, 4);
}

static lx_array rope(const lx_model *m, lx_array x, int offset) {
    const lx_model_config *c = &m->cfg;
    float scale = c->rope_kind == LX_ROPE_LINEAR ? 1.0f / c->rope_factor : 1.0f;
    if (!lx_is_null(m->rope_freqs))
        return lx_rope_freqs(x, c->head_dim, c->rope_traditional, m->rope_freqs, scale, offset);
    return lx_rope(x, c->head_dim, c->rope_traditional, c->rope_theta, scale, offset);
}

static lx_array attention(const lx_model *m, const lx_layer *ly, int li, lx_array n, int L,
                          lx_kv_cache *cache, lx_status *st) {
    const lx_model_config *c = &m->cfg;
    int D = c->head_dim;
    lx_array q = lx_reshape(linear(&ly->q, n), (int[]){1, L, c->n_heads, D}, 4);
    lx_array k = lx_reshape(linear(&ly->k, n), (int[]){1, L, c->n_kv_heads, D}, 4);
    lx_array v = linear(&ly->v, n);
    if (c->qk_norm) {
        q = lx_rms_norm(q, ly->q_norm, c->rms_eps);
        k = lx_rms_norm(k, ly->k_norm, c->rms_eps);
    }
    q = lx_transpose(q, (int[]){0, 2, 1, 3}, 4);
    k = lx_transpose(k, (int[]){0, 2, 1, 3}, 4);
    v = heads(v, L, c->n_kv_heads, D);
    q = rope(m, q, cache->len);
    k = rope(m, k, cache->len);
    lx_array keys, values;
    *st = lx_kv_cache_update(cache, li, k, v, &keys, &values);
    if (*st) return LX_NULL_ARRAY;
    lx_array o = lx_sdpa(q, keys, values, 1.0f / sqrtf((float)D), L > 1, LX_NULL_ARRAY);
    o = lx_transpose(o, (int[]){0, 2, 1, 3}, 4);
    o = lx_reshape(o, (int[]){1, L, c->n_heads * D}, 3);
    return linear(&ly->o, o);
}

static lx_array mlp(const lx_layer *ly, lx_array n) {
    lx_array g = linear(&ly->gate, n);
    lx_array u = linear(&ly->up, n);
    return linear(&ly->down, lx_mul(lx_silu(g), u));
}

lx_array lx_model_forward(const lx_model *m, lx_array ids, lx_kv_cache *cache, bool all_rows) {
    const lx_model_config *c = &m->cfg;
    int L = (int)lx_size(ids);
    if (L <= 0 || lx_ndim(ids) != 1) {
        lx_set_error(LX_E_ARG, "forward: ids must be a non-empty 1-D array");
        return LX_NULL_ARRAY;
    }
    lx_array x = lx_reshape(embed_rows(&m->embed, ids, m->act), (int[]){1, L, c->hidden}, 3);
    for (int i = 0; i < c->n_layers; i++) {
        const lx_layer *ly = &m->layers[i];
        lx_status st = LX_OK;
        lx_array a = attention(m, ly, i, lx_rms_norm(x, ly->attn_norm, c->rms_eps), L, cache, &st);
        if (st) return LX_NULL_ARRAY;
        lx_array h = lx_add(x, a);
        x = lx_add(h, mlp(ly, lx_rms_norm(h, ly->ffn_norm, c->rms_eps)));
    }
    int rows = all_rows ? L : 1;
    if (!all_rows && L > 1)
        x = lx_slice(x, (int[]){0, L - 1, 0}, (int[]){1, L, c->hidden}, NULL, 3);
    x = lx_rms_norm(x, m->final_norm, c->rms_eps);
    lx_array logits = linear(&m->head, x);
    return lx_astype(lx_reshape(logits, (int[]){rows, m->head.out}, 2), LX_FLOAT32);
}
