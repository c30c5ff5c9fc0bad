/*
 * tokenizer.c -- the tokenizer's core: the vocabulary and its text map, merge ranks, the BPE
 * model (lowest rank first through a heap, as Hugging Face and llama.cpp) and the
 * SentencePiece model (highest score first, llama.cpp's llm_tokenizer_spm), added-token
 * matching, the encode pipeline with a cache of piece results, and the public queries.
 */
#include "models/tokenizer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

lx_status tok_oom(const lx_tokenizer *t) {
    return lx_set_error(LX_E_OOM, "lx_tokenizer_load: %s: out of host memory", t ? t->file : "?");
}

/* ---- vocabulary ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

lx_tokenizer *tok_new(const char *file) {
    lx_tokenizer *t = calloc(1, sizeof *t);
    if (t) t->file = strdup(file ? file : "?");
    if (!t || !t->file) {
        free(t);
        lx_set_error(LX_E_OOM, "lx_tokenizer_load: out of host memory");
        return NULL;
    }
    t->unk_id = t->bos = t->eos = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    return t;
}

static bool grow_vocab(lx_tokenizer *t, int n) {
    if (n <= t->n_vocab) return true;
    if (n > t->vocab_cap) {
        int cap = t->vocab_cap > n / 2 ? t->vocab_cap * 2 : n;
        if (cap < n || cap > (1 << 27)) cap = n;
        char **tx = realloc(t->text, sizeof *tx * (size_t)cap);
        if (tx) t->text = tx;
        uint32_t *ln = tx ? realloc(t->len, sizeof *ln * (size_t)cap) : NULL;
        if (ln) t->len = ln;
        float *sc = ln ? realloc(t->score, sizeof *sc * (size_t)cap) : NULL;
        if (sc) t->score = sc;
        uint8_t *at = sc ? realloc(t->attr, (size_t)cap) : NULL;
        if (at) t->attr = at;
        if (!at) { tok_oom(t); return false; }
        t->vocab_cap = cap;
    }
    for (int i = t->n_vocab; i < n; i++) {
        t->text[i] = NULL;
        t->len[i] = 0;
        t->score[i] = 0;
        t->attr[i] = 0;
    }
    t->n_vocab = n;
    return true;
}

static bool map_put(lx_tokenizer *t, const char *s, uint32_t n, int32_t id, bool replace);

bool tok_set_piece(lx_tokenizer *t, int32_t id, const char *s, size_t n, uint8_t attr) {
    if (id < 0 || id >= (1 << 26)) {
        lx_set_error(LX_E_FORMAT, "lx_tokenizer_load: %s: token id %d is out of range", t->file,
                     (int)id);
        return false;
    }
    if (n > UINT32_MAX / 2) {
        lx_set_error(LX_E_FORMAT, "lx_tokenizer_load: %s: token %d is too long", t->file, (int)id);
        return false;
    }
    if (!grow_vocab(t, id + 1)) return false;
    char *c = malloc(n + 1);
    if (!c) { tok_oom(t); return false; }
    memcpy(c, s, n);
    c[n] = 0;
    if (t->text[id]) {
        /* an added token over a model piece: the piece stays findable by its text */
        if (t->map) {
            char **ex = realloc(t->extra, sizeof *ex * (size_t)(t->n_extra + 1));
            if (!ex) { free(c); tok_oom(t); return false; }
            t->extra = ex;
            t->extra[t->n_extra++] = t->text[id];
        } else free(t->text[id]);
    }
    t->text[id] = c;
    t->len[id] = (uint32_t)n;
    t->attr[id] = attr;
    if (t->map && !map_put(t, c, (uint32_t)n, id, true)) return false;
    return true;
}

static bool map_grow(lx_tokenizer *t, uint32_t want) {
    uint32_t cap = 64;
    while (cap < want * 2) cap *= 2;
    if (cap <= t->map_cap) return true;
    void *old = t->map;
    uint32_t ocap = t->map_cap;
    t->map = calloc(cap, sizeof *t->map);
    if (!t->map) { t->map = old; tok_oom(t); return false; }
    t->map_cap = cap;
    t->map_n = 0;
    for (int pass = 0; old && pass < 1; pass++) {
        struct { const char *s; uint32_t len; int32_t id; } *o = old;
        for (uint32_t i = 0; i < ocap; i++)
            if (o[i].s) map_put(t, o[i].s, o[i].len, o[i].id, false);
    }
    free(old);
    return true;
}

static bool map_put(lx_tokenizer *t, const char *s, uint32_t n, int32_t id, bool replace) {
    if ((t->map_n + 1) * 2 > t->map_cap && !map_grow(t, t->map_n + 1)) return false;
    uint32_t mask = t->map_cap - 1, i = (uint32_t)hash_bytes(s, n) & mask;
    while (t->map[i].s) {
        if (t->map[i].len == n && memcmp(t->map[i].s, s, n) == 0) {
            if (replace) { t->map[i].s = s; t->map[i].id = id; }
            return true;
        }
        i = (i + 1) & mask;
    }
    t->map[i].s = s;
    t->map[i].len = n;
    t->map[i].id = id;
    t->map_n++;
    return true;
}

int32_t tok_lookup(const lx_tokenizer *t, const char *s, size_t n) {
    if (!t->map_cap) return -1;
    uint32_t mask = t->map_cap - 1, i = (uint32_t)hash_bytes(s, n) & mask;
    while (t->map[i].s) {
        if (t->map[i].len == n && memcmp(t->map[i].s, s, n) == 0) return t->map[i].id;
        i = (i + 1) & mask;
    }
    return -1;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* <0xXX> -> XX, else -1 */
int tok_byte_of(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

bool tok_index(lx_tokenizer *t) {
    if (!map_grow(t, (uint32_t)t->n_vocab + 16)) return false;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->text[id]) continue;
        if (!map_put(t, t->text[id], t->len[id], id, false)) return false;
        int b = tok_byte_of(t->text[id], t->len[id]);
        if (b >= 0 && t->byte_id[b] < 0) t->byte_id[b] = id;
    }
    return true;
}

/* ---- merges --------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static const tok_merge *merge_find(const lx_tokenizer *t, int32_t a, int32_t b) {
    if (!t->merge_cap) return NULL;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t mask = t->merge_cap - 1, i = (uint32_t)mix64(key) & mask;
    while (t->merges[i].id >= 0) {
        if (t->merges[i].key == key) return &t->merges[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

static bool merge_put(lx_tokenizer *t, uint64_t key, int32_t rank, int32_t id) {
    if ((t->n_merges + 1) * 2 > t->merge_cap) {
        uint32_t cap = t->merge_cap ? t->merge_cap * 2 : 1024;
        tok_merge *m = malloc(sizeof *m * cap);
        if (!m) { tok_oom(t); return false; }
        for (uint32_t i = 0; i < cap; i++) m[i] = (tok_merge){0, -1, -1};
        tok_merge *old = t->merges;
        uint32_t ocap = t->merge_cap;
        t->merges = m;
        t->merge_cap = cap;
        t->n_merges = 0;
        for (uint32_t i = 0; i < ocap; i++)
            if (old[i].id >= 0) merge_put(t, old[i].key, old[i].rank, old[i].id);
        free(old);
    }
    uint32_t mask = t->merge_cap - 1, i = (uint32_t)mix64(key) & mask;
    while (t->merges[i].id >= 0) {
        if (t->merges[i].key == key) return true; /* the first rank stays */
        i = (i + 1) & mask;
    }
    t->merges[i] = (tok_merge){key, rank, id};
    t->n_merges++;
    return true;
}

int tok_add_merge(lx_tokenizer *t, int32_t rank, const char *a, size_t alen, const char *b,
                  size_t blen) {
    int32_t ia = tok_lookup(t, a, alen), ib = tok_lookup(t, b, blen);
    if (ia < 0 || ib < 0) return 0;
    char stackbuf[256];
    char *cat = alen + blen <= sizeof stackbuf ? stackbuf : malloc(alen + blen);
    if (!cat) { tok_oom(t); return -1; }
    memcpy(cat, a, alen);
    memcpy(cat + alen, b, blen);
    int32_t im = tok_lookup(t, cat, alen + blen);
    if (cat != stackbuf) free(cat);
    if (im < 0) return 0;
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    return merge_put(t, key, rank, im) ? 1 : -1;
}

/* ---- added tokens ---------------------------------------------------------------------------- */

bool tok_add_added(lx_tokenizer *t, const tok_added *a) {
    if (a->len == 0) return true; /* an empty added token can never match */
    tok_added *v = realloc(t->added, sizeof *v * (size_t)(t->n_added + 1));
    if (!v) { tok_oom(t); return false; }
    t->added = v;
    t->added[t->n_added++] = *a;
    if (a->normalized) t->any_normalized_added = true;
    return true;
}

static int cmp_added(const void *x, const void *y) {
    const tok_added *a = x, *b = y;
    uint8_t ca = (uint8_t)a->s[0], cb = (uint8_t)b->s[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

bool tok_finish(lx_tokenizer *t) {
    /* added tokens point at their vocabulary text */
    for (int i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (a->id < 0 || a->id >= t->n_vocab || !t->text[a->id]) {
            lx_set_error(LX_E_FORMAT, "lx_tokenizer_load: %s: added token id %d has no text",
                         t->file, (int)a->id);
            return false;
        }
        a->s = t->text[a->id];
        a->len = t->len[a->id];
    }
    if (t->n_added) qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);
    int k = 0;
    for (int c = 0; c <= 256; c++) {
        while (k < t->n_added && (uint8_t)t->added[k].s[0] < c) k++;
        t->added_first[c] = c == 256 ? t->n_added : k;
    }
    return true;
}

/* ---- the piece cache ------------------------------------------------------------------------ */

#define CACHE_SLOTS 16384u
#define CACHE_MAX_KEY 64u

struct tok_cache {
    pthread_mutex_t mu;
    uint32_t n;
    struct { char *key; uint32_t klen; uint32_t n; int32_t *ids; } slot[CACHE_SLOTS];
};

static tok_cache *cache_new(void) {
    tok_cache *c = calloc(1, sizeof *c);
    if (c && pthread_mutex_init(&c->mu, NULL) != 0) { free(c); c = NULL; }
    return c;
}

static void cache_clear_locked(tok_cache *c) {
    for (uint32_t i = 0; i < CACHE_SLOTS; i++) {
        free(c->slot[i].key);
        c->slot[i].key = NULL;
    }
    c->n = 0;
}

static void cache_free(tok_cache *c) {
    if (!c) return;
    cache_clear_locked(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

typedef struct {
    int32_t *v;
    size_t n, cap;
    bool oom;
} ids_vec;

static bool ids_push(ids_vec *v, int32_t id) {
    if (v->oom) return false;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->v, sizeof *p * cap);
        if (!p) { v->oom = true; return false; }
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return true;
}

/* Appends the cached ids of piece s to out; false when absent. */
static bool cache_get(tok_cache *c, const char *s, size_t n, ids_vec *out) {
    if (!c || n > CACHE_MAX_KEY) return false;
    uint32_t mask = CACHE_SLOTS - 1, i = (uint32_t)hash_bytes(s, n) & mask;
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    for (uint32_t probe = 0; probe < 8 && c->slot[i].key; probe++, i = (i + 1) & mask) {
        if (c->slot[i].klen == n && memcmp(c->slot[i].key, s, n) == 0) {
            for (uint32_t k = 0; k < c->slot[i].n; k++) ids_push(out, c->slot[i].ids[k]);
            hit = true;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

static void cache_put(tok_cache *c, const char *s, size_t n, const int32_t *ids, size_t nids) {
    if (!c || n > CACHE_MAX_KEY || nids > n + 8) return;
    /* key and ids in one allocation */
    char *mem = malloc(n + 1 + sizeof(int32_t) * (nids + 1));
    if (!mem) return;
    memcpy(mem, s, n);
    int32_t *cids = (int32_t *)(void *)(mem + ((n + 4) & ~(size_t)3));
    if ((char *)(cids + nids) > mem + n + 1 + sizeof(int32_t) * (nids + 1)) { free(mem); return; }
    memcpy(cids, ids, sizeof *ids * nids);
    uint32_t mask = CACHE_SLOTS - 1, i = (uint32_t)hash_bytes(s, n) & mask;
    pthread_mutex_lock(&c->mu);
    if (c->n >= CACHE_SLOTS / 2) cache_clear_locked(c); /* simple bound: start over */
    uint32_t probe = 0;
    while (c->slot[i].key && probe < 8) {
        if (c->slot[i].klen == n && memcmp(c->slot[i].key, s, n) == 0) break;
        i = (i + 1) & mask;
        probe++;
    }
    if (probe < 8 && !c->slot[i].key) {
        c->slot[i].key = mem;
        c->slot[i].klen = (uint32_t)n;
        c->slot[i].n = (uint32_t)nids;
        c->slot[i].ids = cids;
        c->n++;
        mem = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(mem);
}

/* ---- BPE ------------------------------------------------------------------------------------- */

typedef struct {
    int32_t rank, left, right, a, b;
} bigram;

typedef struct {
    int32_t *id, *prev, *next;
    uint32_t *start, *n; /* SPM: byte spans */
    int cap;
    bigram *heap;
    int hn, hcap;
    bool oom;
} work;

static bool work_reserve(work *w, size_t n) {
    if (n > INT_MAX / 4) { w->oom = true; return false; }
    if ((int)n <= w->cap) return true;
    int cap = (int)n + 16;
    int32_t *a = realloc(w->id, sizeof *a * (size_t)cap);
    if (a) w->id = a;
    int32_t *b = a ? realloc(w->prev, sizeof *b * (size_t)cap) : NULL;
    if (b) w->prev = b;
    int32_t *c = b ? realloc(w->next, sizeof *c * (size_t)cap) : NULL;
    if (c) w->next = c;
    uint32_t *d = c ? realloc(w->start, sizeof *d * (size_t)cap) : NULL;
    if (d) w->start = d;
    uint32_t *e = d ? realloc(w->n, sizeof *e * (size_t)cap) : NULL;
    if (e) w->n = e;
    if (!e) { w->oom = true; return false; }
    w->cap = cap;
    return true;
}

static void work_free(work *w) {
    free(w->id);
    free(w->prev);
    free(w->next);
    free(w->start);
    free(w->n);
    free(w->heap);
}

/* Min-heap on (rank, left) for BPE; SPM stores -score bits order through `spm_less`. */
typedef bool (*less_fn)(const bigram *x, const bigram *y);

static bool bpe_less(const bigram *x, const bigram *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static void heap_push(work *w, bigram g, less_fn less) {
    if (w->oom) return;
    if (w->hn == w->hcap) {
        int cap = w->hcap ? w->hcap * 2 : 64;
        bigram *h = realloc(w->heap, sizeof *h * (size_t)cap);
        if (!h) { w->oom = true; return; }
        w->heap = h;
        w->hcap = cap;
    }
    int i = w->hn++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!less(&g, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = g;
}

static bigram heap_pop(work *w, less_fn less) {
    bigram top = w->heap[0], last = w->heap[--w->hn];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const bigram *best = &last;
        if (l < w->hn && less(&w->heap[l], best)) { m = l; best = &w->heap[l]; }
        if (r < w->hn && less(&w->heap[r], best)) { m = r; }
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->hn) w->heap[i] = last;
    return top;
}

static void bpe_try(const lx_tokenizer *t, work *w, int left, int right) {
    if (left < 0 || right < 0) return;
    const tok_merge *m = merge_find(t, w->id[left], w->id[right]);
    if (m) heap_push(w, (bigram){m->rank, left, right, w->id[left], w->id[right]}, bpe_less);
}

/* Encodes one pre-token with BPE merges into out. */
static bool bpe_piece(const lx_tokenizer *t, const char *s, size_t n, ids_vec *out, work *w) {
    if (t->ignore_merges) {
        int32_t id = tok_lookup(t, s, n);
        if (id >= 0) return ids_push(out, id);
    }
    if (!work_reserve(w, n + 1)) return false;
    int ns = 0;
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        size_t l = (size_t)tok_utf8_len(u[i]);
        if (l > n - i) l = n - i;
        int32_t id = tok_lookup(t, s + i, l);
        if (id >= 0) {
            w->id[ns++] = id;
        } else {
            bool done = false;
            if (t->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < l; k++) all = all && t->byte_id[u[i + k]] >= 0;
                if (all) {
                    if (!work_reserve(w, (size_t)ns + l + n)) return false;
                    for (size_t k = 0; k < l; k++) w->id[ns++] = t->byte_id[u[i + k]];
                    done = true;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (!(t->fuse_unk && ns > 0 && w->id[ns - 1] == t->unk_id)) w->id[ns++] = t->unk_id;
            }
            /* no unk token: the character is dropped, as Hugging Face does */
        }
        i += l;
    }
    for (int i = 0; i < ns; i++) {
        w->prev[i] = i - 1;
        w->next[i] = i + 1 < ns ? i + 1 : -1;
    }
    w->hn = 0;
    for (int i = 0; i + 1 < ns; i++) bpe_try(t, w, i, i + 1);
    while (w->hn > 0 && !w->oom) {
        bigram g = heap_pop(w, bpe_less);
        int l = g.left, r = g.right;
        if (w->id[l] < 0 || w->id[r] < 0 || w->next[l] != r || w->id[l] != g.a || w->id[r] != g.b)
            continue; /* stale */
        const tok_merge *m = merge_find(t, g.a, g.b);
        w->id[l] = m->id;
        w->id[r] = -1;
        w->next[l] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = l;
        bpe_try(t, w, w->prev[l], l);
        bpe_try(t, w, l, w->next[l]);
    }
    if (w->oom) return false;
    for (int i = 0; i >= 0 && ns > 0; i = w->next[i])
        if (!ids_push(out, w->id[i])) return false;
    return true;
}

/* ---- SentencePiece (GGUF "llama") ------------------------------------------------------------ */

/* highest score first, then leftmost: the heap orders by `rank` holding the score's bits */
static bool spm_less(const bigram *x, const bigram *y) {
    float fx, fy;
    memcpy(&fx, &x->rank, sizeof fx);
    memcpy(&fy, &y->rank, sizeof fy);
    return fx > fy || (fx == fy && x->left < y->left);
}

static void spm_try(const lx_tokenizer *t, const char *s, work *w, int left, int right) {
    if (left < 0 || right < 0) return;
    uint32_t size = w->n[left] + w->n[right];
    int32_t id = tok_lookup(t, s + w->start[left], size);
    if (id < 0) return;
    bigram g = {0, left, right, (int32_t)size, id};
    memcpy(&g.rank, &t->score[id], sizeof g.rank);
    heap_push(w, g, spm_less);
}

static bool spm_piece(const lx_tokenizer *t, const char *s, size_t n, ids_vec *out, work *w) {
    if (n > UINT32_MAX / 2) { w->oom = true; return false; }
    if (!work_reserve(w, n + 1)) return false;
    int ns = 0;
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        size_t l = (size_t)tok_utf8_len(u[i]);
        if (l > n - i) l = n - i;
        w->start[ns] = (uint32_t)i;
        w->n[ns] = (uint32_t)l;
        w->prev[ns] = ns - 1;
        w->next[ns] = i + l < n ? ns + 1 : -1;
        ns++;
        i += l;
    }
    w->hn = 0;
    for (int i = 1; i < ns; i++) spm_try(t, s, w, i - 1, i);
    while (w->hn > 0 && !w->oom) {
        bigram g = heap_pop(w, spm_less);
        int l = g.left, r = g.right;
        if (w->n[l] == 0 || w->n[r] == 0 || w->n[l] + w->n[r] != (uint32_t)g.a) continue;
        w->n[l] += w->n[r];
        w->n[r] = 0;
        w->next[l] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = l;
        spm_try(t, s, w, w->prev[l], l);
        spm_try(t, s, w, l, w->next[l]);
    }
    if (w->oom) return false;
    for (int i = 0; i >= 0 && ns > 0; i = w->next[i]) {
        int32_t id = tok_lookup(t, s + w->start[i], w->n[i]);
        if (id >= 0) {
            if (!ids_push(out, id)) return false;
            continue;
        }
        for (uint32_t k = 0; k < w->n[i]; k++) {
            int32_t b = t->byte_id[u[w->start[i] + k]];
            if (b < 0) b = t->unk_id;
            if (b >= 0 && !ids_push(out, b)) return false;
        }
    }
    return true;
}

/* ---- added-token splitting ------------------------------------------------------------------- */

typedef struct {
    size_t s, n;      /* text span (token: unused) */
    int32_t id;       /* -1 for text */
} segment;

typedef struct {
    segment *v;
    int n, cap;
    bool oom;
} segs;

static void segs_push(segs *g, size_t s, size_t n, int32_t id) {
    if (g->oom) return;
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 16;
        segment *v = realloc(g->v, sizeof *v * (size_t)cap);
        if (!v) { g->oom = true; return; }
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = (segment){s, n, id};
}

static bool is_word_cp(uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 32) >= 'a' && (cp | 32) <= 'z') || cp == '_';
    return !tok_is_ws(cp); /* non-ASCII: treat letters and marks alike (rare in added tokens) */
}

/* cp of the character ending at s[e) (e > 0) */
static uint32_t cp_before(const char *s, size_t e) {
    size_t k = e - 1;
    while (k > 0 && ((uint8_t)s[k] & 0xc0) == 0x80) k--;
    return tok_utf8_get((const uint8_t *)s + k, (int)(e - k));
}

/* Cuts s[0..n) at the added tokens eligible in this pass (normalized or not); leftmost match,
 * longest first, with lstrip / rstrip eating the whitespace around it. */
static bool split_added(const lx_tokenizer *t, const char *s, size_t n, bool normalized_pass,
                        bool parse_special, segs *out) {
    size_t text_start = 0, i = 0;
    const uint8_t *u = (const uint8_t *)s;
    while (i < n) {
        int lo = t->added_first[u[i]], hi = t->added_first[u[i] + 1];
        const tok_added *hit = NULL;
        for (int k = lo; k < hi; k++) {
            const tok_added *a = &t->added[k];
            if (a->len > n - i) continue;
            if (a->special && !parse_special) continue;
            if (!t->gguf && a->normalized != normalized_pass) continue;
            if (memcmp(s + i, a->s, a->len) != 0) continue;
            if (a->single_word) {
                if (i > 0 && is_word_cp(cp_before(s, i))) continue;
                size_t e = i + a->len;
                if (e < n && is_word_cp(tok_utf8_get(u + e, tok_utf8_len(u[e])))) continue;
            }
            hit = a;
            break;
        }
        if (!hit) {
            i += (size_t)tok_utf8_len(u[i]);
            continue;
        }
        size_t ms = i, me = i + hit->len;
        if (hit->lstrip)
            while (ms > text_start) {
                size_t k = ms - 1;
                while (k > text_start && (u[k] & 0xc0) == 0x80) k--;
                if (!tok_is_ws(tok_utf8_get(u + k, (int)(ms - k)))) break;
                ms = k;
            }
        if (hit->rstrip)
            while (me < n) {
                int l = tok_utf8_len(u[me]);
                if ((size_t)l > n - me || !tok_is_ws(tok_utf8_get(u + me, l))) break;
                me += (size_t)l;
            }
        if (ms > text_start) segs_push(out, text_start, ms - text_start, -1);
        segs_push(out, 0, 0, hit->id);
        text_start = i = me;
    }
    if (n > text_start) segs_push(out, text_start, n - text_start, -1);
    return !out->oom;
}

/* ---- encoding -------------------------------------------------------------------------------- */

typedef struct {
    tok_scratch sc;
    tok_buf norm;
    tok_strs pieces;
    work w;
    ids_vec tmp;
} enc_ctx;

static bool model_piece(const lx_tokenizer *t, const char *s, size_t n, ids_vec *out,
                        enc_ctx *c) {
    if (t->spm) return spm_piece(t, s, n, out, &c->w);
    size_t before = out->n;
    if (cache_get(t->cache, s, n, out)) return !out->oom;
    if (!bpe_piece(t, s, n, out, &c->w)) return false;
    if (out->n > before) cache_put(t->cache, s, n, out->v + before, out->n - before);
    return true;
}

static bool encode_text(const lx_tokenizer *t, const char *s, size_t n, bool first, bool after_special,
                        ids_vec *out, enc_ctx *c) {
    if (t->spm && t->gguf) {
        /* llama.cpp: a space before the first text and after each special token, spaces as ▁ */
        tok_buf *b = &c->norm;
        b->n = 0;
        if (t->spm_space_prefix && after_special) tok_buf_put(b, "\xe2\x96\x81", 3);
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') tok_buf_put(b, "\xe2\x96\x81", 3);
            else tok_buf_putc(b, s[i]);
        }
        if (b->oom) return false;
        return spm_piece(t, b->p ? b->p : "", b->n, out, &c->w);
    }
    if (!tok_normalize(t, s, n, &c->norm, &c->sc)) return false;
    const char *ns = c->norm.p ? c->norm.p : "";
    size_t nn = c->norm.n;
    segs sub = {0};
    if (t->any_normalized_added) {
        if (!split_added(t, ns, nn, true, true, &sub)) { free(sub.v); return false; }
    } else segs_push(&sub, 0, nn, -1);
    /* the normalized text is reused by pre-tokenizers' scratch; keep a copy */
    char *copy = NULL;
    if (sub.n) {
        copy = malloc(nn + 1);
        if (!copy) { free(sub.v); return false; }
        memcpy(copy, ns, nn);
    }
    bool ok = !sub.oom;
    for (int k = 0; ok && k < sub.n; k++) {
        if (sub.v[k].id >= 0) { ok = ids_push(out, sub.v[k].id); continue; }
        ok = tok_pretokenize(t, copy + sub.v[k].s, sub.v[k].n, first && sub.v[k].s == 0,
                             &c->pieces, &c->sc);
        for (int p = 0; ok && p < c->pieces.n; p++)
            ok = model_piece(t, c->pieces.buf.p + c->pieces.off[p], c->pieces.len[p], out, c);
    }
    free(copy);
    free(sub.v);
    return ok;
}

int lx_tokenize(const lx_tokenizer *t, const char *text, size_t len, unsigned flags,
                int32_t *ids, int cap) {
    if (!t || (!text && len) || cap < 0 || (cap > 0 && !ids)) {
        lx_set_error(LX_E_ARG, "lx_tokenize: %s", !t ? "tokenizer is NULL"
                     : (!text && len) ? "text is NULL" : "ids is NULL or cap is negative");
        return -1;
    }
    if (!text) text = "";
    bool oom = false;
    size_t n = len;
    char *clean = tok_utf8_sanitize(text, len, &n, &oom);
    if (oom) { lx_set_error(LX_E_OOM, "lx_tokenize: out of host memory"); return -1; }
    const char *s = clean ? clean : text;
    enc_ctx c = {0};
    ids_vec out = {0};
    bool ok = true;
    c.sc.md = pcre2_match_data_create(1, NULL);
    if (!c.sc.md) ok = false;
    if (ok && (flags & LX_TOKENIZE_ADD_SPECIAL))
        for (int i = 0; i < t->n_prefix; i++) ids_push(&out, t->prefix[i]);
    segs g = {0};
    if (ok) ok = split_added(t, s, n, false, (flags & LX_TOKENIZE_PARSE_SPECIAL) != 0, &g);
    bool after_special = true;
    for (int k = 0; ok && k < g.n; k++) {
        if (g.v[k].id >= 0) {
            ok = ids_push(&out, g.v[k].id);
            after_special = true;
            continue;
        }
        ok = encode_text(t, s + g.v[k].s, g.v[k].n, g.v[k].s == 0, after_special, &out, &c);
        after_special = false;
    }
    if (ok && (flags & LX_TOKENIZE_ADD_SPECIAL))
        for (int i = 0; i < t->n_suffix; i++) ids_push(&out, t->suffix[i]);
    ok = ok && !out.oom && !c.w.oom && !c.sc.a.oom && !c.sc.b.oom && !c.pieces.oom;
    int result = -1;
    if (!ok) {
        if (lx_error() == LX_OK) lx_set_error(LX_E_OOM, "lx_tokenize: out of host memory");
    } else if (out.n > INT_MAX) {
        lx_set_error(LX_E_ARG, "lx_tokenize: the text has more than INT_MAX tokens");
    } else {
        result = (int)out.n;
        size_t k = out.n < (size_t)cap ? out.n : (size_t)cap;
        if (k) memcpy(ids, out.v, sizeof *ids * k);
    }
    free(g.v);
    free(out.v);
    free(clean);
    pcre2_match_data_free(c.sc.md);
    tok_strs_free(&c.sc.a);
    tok_strs_free(&c.sc.b);
    free(c.sc.tmp.p);
    free(c.norm.p);
    tok_strs_free(&c.pieces);
    work_free(&c.w);
    free(c.tmp.v);
    return result;
}

/* ---- loading and queries ---------------------------------------------------------------------- */

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (k && p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool looks_gguf(const char *path) {
    size_t n = strlen(path);
    if (n >= 5 && strcmp(path + n - 5, ".gguf") == 0) return true;
    FILE *f = fopen(path, "rb");
    char m[4] = {0};
    bool g = f && fread(m, 1, 4, f) == 4 && memcmp(m, "GGUF", 4) == 0;
    if (f) fclose(f);
    return g;
}

lx_tokenizer *lx_tokenizer_load(const char *path) {
    if (!path) {
        lx_set_error(LX_E_ARG, "lx_tokenizer_load: path is NULL");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        lx_set_error(LX_E_IO, "lx_tokenizer_load: %s: no such file or folder", path);
        return NULL;
    }
    lx_tokenizer *t = NULL;
    if (S_ISDIR(st.st_mode)) {
        char *json = join(path, "tokenizer.json"), *cfg = join(path, "tokenizer_config.json");
        if (!json || !cfg) lx_set_error(LX_E_OOM, "lx_tokenizer_load: out of host memory");
        else if (!is_file(json))
            lx_set_error(LX_E_IO, "lx_tokenizer_load: %s: the folder has no tokenizer.json", path);
        else t = tok_load_json(json, is_file(cfg) ? cfg : NULL);
        free(json);
        free(cfg);
        return t;
    }
    if (looks_gguf(path)) return tok_load_gguf(path);
    /* a tokenizer.json: its tokenizer_config.json, if any, lies beside it */
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup("./");
    char *cfg = dir ? join(dir, "tokenizer_config.json") : NULL;
    free(dir);
    if (!cfg) {
        lx_set_error(LX_E_OOM, "lx_tokenizer_load: out of host memory");
        return NULL;
    }
    t = tok_load_json(path, is_file(cfg) ? cfg : NULL);
    free(cfg);
    return t;
}

void tok_free_steps(lx_tokenizer *t) {
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
        if (t->norm[i].re) pcre2_code_free(t->norm[i].re);
    }
    free(t->norm);
    t->norm = NULL;
    t->n_norm = 0;
    for (int i = 0; i < t->n_pre; i++) {
        if (t->pre[i].re) pcre2_code_free(t->pre[i].re);
        free(t->pre[i].lit);
        free(t->pre[i].repl);
    }
    free(t->pre);
    t->pre = NULL;
    t->n_pre = 0;
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
    }
    free(t->dec);
    t->dec = NULL;
    t->n_dec = 0;
}

void lx_tokenizer_free(lx_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) free(t->text[i]);
    for (int i = 0; i < t->n_extra; i++) free(t->extra[i]);
    free(t->extra);
    free(t->text);
    free(t->len);
    free(t->score);
    free(t->attr);
    free(t->map);
    free(t->merges);
    free(t->added);
    free(t->prefix);
    free(t->suffix);
    tok_free_steps(t);
    cache_free(t->cache);
    free(t->file);
    free(t);
}

bool tok_enable_cache(lx_tokenizer *t) {
    if (t->spm) return true;
    t->cache = cache_new();
    if (!t->cache) { tok_oom(t); return false; }
    return true;
}

int lx_tokenizer_vocab_size(const lx_tokenizer *t) { return t ? t->n_vocab : 0; }

const char *lx_token_piece(const lx_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->text[id];
}

int32_t lx_token_id(const lx_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    return tok_lookup(t, piece, strlen(piece));
}

bool lx_token_is_special(const lx_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return false;
    return (t->attr[id] & TOK_SPECIAL) != 0;
}

int32_t lx_tokenizer_bos(const lx_tokenizer *t) { return t ? t->bos : -1; }
int32_t lx_tokenizer_eos(const lx_tokenizer *t) { return t ? t->eos : -1; }
