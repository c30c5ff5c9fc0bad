/*
 * kv_cache.c -- per-layer keys and values, grown in steps, updated in place (kv_cache.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/kv_cache.h"

lx_kv_cache *lx_kv_cache_new(int n_layers, int n_kv_heads, int head_dim, lx_dtype dtype,
                             int max_capacity) {
    if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0 || max_capacity <= 0) {
        lx_set_error(LX_E_ARG, "kv cache: %d layers, %d heads of %d, %d positions", n_layers,
                     n_kv_heads, head_dim, max_capacity);
        return NULL;
    }
    lx_kv_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->k = calloc((size_t)n_layers, sizeof *c->k);
        c->v = calloc((size_t)n_layers, sizeof *c->v);
    }
    if (!c || !c->k || !c->v) {
        if (c) {
            free(c->k);
            free(c->v);
        }
        free(c);
        lx_set_error(LX_E_OOM, "kv cache: out of memory");
        return NULL;
    }
    c->n_layers = n_layers;
    c->n_kv_heads = n_kv_heads;
    c->head_dim = head_dim;
    c->dtype = dtype;
    c->max_capacity = max_capacity;
    return c;
}

void lx_kv_cache_free(lx_kv_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n_layers; i++) {
        if (!lx_is_null(c->k[i])) lx_free(c->k[i]);
        if (!lx_is_null(c->v[i])) lx_free(c->v[i]);
    }
    free(c->k);
    free(c->v);
    free(c);
}

static lx_array grown(lx_array old, const int *shape, int add) {
    int zshape[4] = {shape[0], shape[1], add, shape[3]};
    lx_array z = lx_zeros(zshape, 4, lx_dtype_of(old));
    if (lx_is_null(old)) return z;
    lx_array parts[2] = {old, z};
    return lx_concatenate(parts, 2, 2);
}

lx_status lx_kv_cache_reserve(lx_kv_cache *c, int n) {
    if (n < 0 || c->len > c->max_capacity - n)
        return lx_set_error(LX_E_ARG, "the context is full: %d positions held, %d more asked, "
                            "%d at most", c->len, n, c->max_capacity);
    int need = c->len + n;
    if (need <= c->capacity) return LX_OK;
    int cap = (int)(((int64_t)need + LX_KV_STEP - 1) / LX_KV_STEP * LX_KV_STEP);
    if (cap > c->max_capacity) cap = c->max_capacity;
    int shape[4] = {1, c->n_kv_heads, c->capacity, c->head_dim};
    int add = cap - c->capacity;
    for (int i = 0; i < c->n_layers; i++) {
        lx_array k = lx_is_null(c->k[i]) ? lx_zeros((int[]){1, c->n_kv_heads, cap, c->head_dim},
                                                     4, c->dtype)
                                          : grown(c->k[i], shape, add);
        lx_array v = lx_is_null(c->v[i]) ? lx_zeros((int[]){1, c->n_kv_heads, cap, c->head_dim},
                                                     4, c->dtype)
                                          : grown(c->v[i], shape, add);
        /* materialise now: a zeros array is a broadcast scalar, which slice_update would copy
         * instead of writing in place */
        k = lx_contiguous(k);
        v = lx_contiguous(v);
        if (lx_is_null(k) || lx_is_null(v)) return lx_error();
        lx_keep(k, v);
        if (!lx_is_null(c->k[i])) lx_free(c->k[i]);
        if (!lx_is_null(c->v[i])) lx_free(c->v[i]);
        c->k[i] = k;
        c->v[i] = v;
    }
    c->capacity = cap;
    /* one eval for all layers: the copies run now, not inside the next forward pass */
    lx_array *all = malloc(sizeof(lx_array) * 2 * (size_t)c->n_layers);
    if (!all) return lx_set_error(LX_E_OOM, "kv cache: out of memory");
    int m = lx_kv_cache_arrays(c, all, 2 * c->n_layers);
    lx_status st = lx_eval_n(all, m);
    free(all);
    return st;
}

lx_status lx_kv_cache_update(lx_kv_cache *c, int layer, lx_array k, lx_array v, lx_array *keys,
                             lx_array *values) {
    int L = lx_dim(k, 2);
    if (layer < 0 || layer >= c->n_layers || L <= 0 || c->len + L > c->capacity)
        return lx_set_error(LX_E_INTERNAL, "kv cache: update of layer %d with %d positions at %d "
                            "(capacity %d)", layer, L, c->len, c->capacity);
    int start[4] = {0, 0, c->len, 0};
    int stop[4] = {1, c->n_kv_heads, c->len + L, c->head_dim};
    lx_array nk = lx_slice_update(c->k[layer], lx_astype(k, c->dtype), start, stop, NULL, 4);
    lx_array nv = lx_slice_update(c->v[layer], lx_astype(v, c->dtype), start, stop, NULL, 4);
    if (lx_is_null(nk) || lx_is_null(nv)) return lx_error();
    lx_keep(nk, nv);
    lx_free(c->k[layer]);
    lx_free(c->v[layer]);
    c->k[layer] = nk;
    c->v[layer] = nv;
    int vstart[4] = {0, 0, 0, 0};
    *keys = lx_slice(nk, vstart, stop, NULL, 4);
    *values = lx_slice(nv, vstart, stop, NULL, 4);
    return lx_is_null(*keys) || lx_is_null(*values) ? lx_error() : LX_OK;
}

void lx_kv_cache_advance(lx_kv_cache *c, int n) { c->len += n; }

void lx_kv_cache_truncate(lx_kv_cache *c, int len) {
    if (len >= 0 && len < c->len) c->len = len;
}

int lx_kv_cache_arrays(const lx_kv_cache *c, lx_array *out, int cap) {
    int n = 0;
    for (int i = 0; i < c->n_layers; i++) {
        if (!lx_is_null(c->k[i]) && n < cap) out[n++] = c->k[i];
        if (!lx_is_null(c->v[i]) && n < cap) out[n++] = c->v[i];
    }
    return n;
}

size_t lx_kv_cache_nbytes(const lx_kv_cache *c) {
    return (size_t)2 * (size_t)c->n_layers * (size_t)c->n_kv_heads * (size_t)c->capacity *
           (size_t)c->head_dim * lx_dtype_size(c->dtype);
}
