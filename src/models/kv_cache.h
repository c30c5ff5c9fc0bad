/*
 * kv_cache.h -- the keys and values of every layer, preallocated in steps and written in place.
 *
 * Per layer, K and V are kept arrays [1, Hkv, capacity, D]. A forward pass writes its new
 * positions with lx_slice_update, whose input the eval donates (the old array is freed before
 * the eval and nothing else holds it), so a decode step writes its one position and copies
 * nothing; attention reads the view [0, len + L). Capacity grows in steps of
 * LX_KV_STEP positions (one copy per step, amortized), never beyond the session's maximum.
 */
#ifndef LX_MODELS_KV_CACHE_H
#define LX_MODELS_KV_CACHE_H

#include "lx.h"

#define LX_KV_STEP 256

struct lx_kv_cache {
    int n_layers, n_kv_heads, head_dim;
    lx_dtype dtype;
    int len;          /* positions holding keys and values */
    int capacity;     /* positions allocated */
    int max_capacity; /* the session's context */
    lx_array *k, *v;  /* kept; null until the first reserve */
};
typedef struct lx_kv_cache lx_kv_cache;

lx_kv_cache *lx_kv_cache_new(int n_layers, int n_kv_heads, int head_dim, lx_dtype dtype,
                             int max_capacity);
void lx_kv_cache_free(lx_kv_cache *c);
/* Makes room for n more positions (grows by whole steps). LX_E_ARG past max_capacity. */
lx_status lx_kv_cache_reserve(lx_kv_cache *c, int n);
/* Writes k, v [1, Hkv, L, D] at [len, len + L) of layer i (replacing the kept arrays) and
 * returns the views [0, len + L) for attention. len does not move (lx_kv_cache_advance). */
lx_status lx_kv_cache_update(lx_kv_cache *c, int layer, lx_array k, lx_array v, lx_array *keys,
                             lx_array *values);
void lx_kv_cache_advance(lx_kv_cache *c, int n);
/* Forgets positions from len on (their slots are overwritten later). */
void lx_kv_cache_truncate(lx_kv_cache *c, int len);
/* The cache's arrays, for an eval: 2 * n_layers of them. */
int lx_kv_cache_arrays(const lx_kv_cache *c, lx_array *out, int cap);
size_t lx_kv_cache_nbytes(const lx_kv_cache *c);
/* The cache of a session (session.c), for tests that watch it. */
struct lx_session;
const lx_kv_cache *lx_session_kv(const struct lx_session *s);

#endif
