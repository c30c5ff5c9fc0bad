/*
 * weights.c -- the lx_weights object (named arrays and metadata of a loaded file), lx_load's
 * dispatch (safetensors file, GGUF file, sharded directory or index), and shared helpers.
 *
 * A weights object owns one kept handle per array; lx_weights_free clears the keep marks, so
 * the arrays go at the next sweep of the loading thread (unless the caller kept them itself:
 * the handles are ordinary ones, and lx_keep on one of them survives the weights object).
 * Names and metadata keys are found through open-addressing hash indexes.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/handle.h"
#include "core/node.h"
#include "io/io.h"

/* ---- helpers ---------------------------------------------------------------------------- */

bool io_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
        else return false;
        if (len > n - i) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

bool io_shape_bytes(const int64_t *dims, int ndim, size_t elem, size_t *nbytes, int64_t *count) {
    /* the rule of lx_shape_check: the product with zeros counted as 1 (the span of the row
     * strides) times elem must fit, even when a zero dimension leaves no elements */
    uint64_t n = 1;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || dims[i] > INT32_MAX) return false;
        empty |= dims[i] == 0;
        if (__builtin_mul_overflow(n, (uint64_t)(dims[i] ? dims[i] : 1), &n)) return false;
    }
    if (n > (uint64_t)INT64_MAX) return false;
    uint64_t b;
    if (__builtin_mul_overflow(n, (uint64_t)elem, &b) || b > (uint64_t)SIZE_MAX / 2) return false;
    if (empty) n = b = 0;
    *nbytes = (size_t)b;
    if (count) *count = (int64_t)n;
    return true;
}

/* A per-process seed keeps a file from choosing names that all collide in the index (which
 * would make loading quadratic). */
static uint64_t hash_seed(void) {
    static _Atomic uint64_t seed;
    uint64_t v = atomic_load_explicit(&seed, memory_order_relaxed);
    if (v) return v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
        v = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&v ^ 0x9e3779b97f4a7c15ull;
    v |= 1;
    uint64_t expect = 0;
    atomic_compare_exchange_strong(&seed, &expect, v);
    return atomic_load(&seed);
}

static uint32_t hash_str(const char *s) {
    uint64_t h = hash_seed();
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    h ^= h >> 33; /* murmur3's finaliser spreads the seed into every bit */
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (uint32_t)h;
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Rebuilds an index of n keys (key(i) gives key i) with room for `room` keys at most half
 * full. */
static bool index_rebuild(uint32_t **index, uint32_t *cap, int n, int room,
                          const char *(*key)(const void *, int), const void *ctx) {
    uint32_t c = 16;
    while (c < (uint32_t)room * 2u + 2u) c <<= 1;
    uint32_t *ix = calloc(c, sizeof *ix);
    if (!ix) return false;
    for (int i = 0; i < n; i++) {
        uint32_t h = hash_str(key(ctx, i)) & (c - 1);
        while (ix[h]) h = (h + 1) & (c - 1);
        ix[h] = (uint32_t)i + 1;
    }
    free(*index);
    *index = ix;
    *cap = c;
    return true;
}

static int index_find(const uint32_t *ix, uint32_t cap, const char *name,
                      const char *(*key)(const void *, int), const void *ctx) {
    if (!ix || !name) return -1;
    uint32_t h = hash_str(name) & (cap - 1);
    while (ix[h]) {
        int i = (int)ix[h] - 1;
        if (strcmp(key(ctx, i), name) == 0) return i;
        h = (h + 1) & (cap - 1);
    }
    return -1;
}

static void index_insert(uint32_t *ix, uint32_t cap, const char *name, int i) {
    uint32_t h = hash_str(name) & (cap - 1);
    while (ix[h]) h = (h + 1) & (cap - 1);
    ix[h] = (uint32_t)i + 1;
}

static const char *name_key(const void *w, int i) { return ((const lx_weights *)w)->names[i]; }
static const char *meta_key(const void *w, int i) { return ((const lx_weights *)w)->meta[i].key; }

/* ---- the weights object ----------------------------------------------------------------- */

lx_weights *io_weights_new(const char *path) {
    lx_weights *w = calloc(1, sizeof *w);
    if (w) w->path = dup_n(path ? path : "", strlen(path ? path : ""));
    if (!w || !w->path) {
        free(w);
        lx_set_error(LX_E_OOM, "lx_load: out of host memory");
        return NULL;
    }
    return w;
}

int io_weights_find(const lx_weights *w, const char *name) {
    return index_find(w->index, w->index_cap, name, name_key, w);
}

int io_meta_find(const lx_weights *w, const char *key) {
    return index_find(w->meta_index, w->meta_index_cap, key, meta_key, w);
}

static bool grow_arrays(lx_weights *w) {
    if (w->n < w->cap) return true;
    int cap = w->cap ? w->cap * 2 : 16;
    char **names = realloc(w->names, sizeof *names * (size_t)cap);
    if (!names) return false;
    w->names = names;
    lx_array *arrays = realloc(w->arrays, sizeof *arrays * (size_t)cap);
    if (!arrays) return false;
    w->arrays = arrays;
    w->cap = cap;
    return true;
}

/* Makes room for one more name in the index (rebuilding it at twice the size when half full). */
static bool reserve_index(uint32_t **ix, uint32_t *cap, int n, const char *(*key)(const void *, int),
                          const void *ctx) {
    if (*ix && (uint32_t)(n + 1) * 2u <= *cap) return true;
    return index_rebuild(ix, cap, n, 2 * n + 16, key, ctx);
}

static bool add_handle(lx_weights *w, const char *file, char *name, lx_array a) {
    (void)file;
    if (!grow_arrays(w) || !reserve_index(&w->index, &w->index_cap, w->n, name_key, w)) {
        free(name);
        lx_free(a);
        lx_set_error(LX_E_OOM, "lx_load: out of host memory");
        return false;
    }
    w->names[w->n] = name;
    w->arrays[w->n] = a;
    index_insert(w->index, w->index_cap, name, w->n);
    w->n++;
    return true;
}

bool io_weights_add(lx_weights *w, const char *file, const char *name, lx_node *node) {
    if (!(node = io_place(node))) return false;
    if (io_weights_find(w, name) >= 0) {
        lx_node_release(node);
        lx_set_error(LX_E_FORMAT, "lx_load: %s: duplicate tensor name '%.*s'", file, IO_Q(name));
        return false;
    }
    if (w->n >= (1 << 24)) {
        lx_node_release(node);
        lx_set_error(LX_E_FORMAT, "lx_load: %s: too many tensors", file);
        return false;
    }
    char *copy = dup_n(name, strlen(name));
    if (!copy) {
        lx_node_release(node);
        lx_set_error(LX_E_OOM, "lx_load: out of host memory");
        return false;
    }
    lx_array a = lx_handle_new(node);
    if (lx_is_null(a)) {
        free(copy);
        return false;
    }
    lx_handle_keep(a, "lx_load");
    return add_handle(w, file, copy, a);
}

static bool grow_meta(lx_weights *w) {
    if (w->n_meta < w->cap_meta) return true;
    int cap = w->cap_meta ? w->cap_meta * 2 : 16;
    io_meta *m = realloc(w->meta, sizeof *m * (size_t)cap);
    if (!m) return false;
    w->meta = m;
    w->cap_meta = cap;
    return true;
}

static bool meta_push(lx_weights *w, io_meta m) {
    if (!grow_meta(w) ||
        !reserve_index(&w->meta_index, &w->meta_index_cap, w->n_meta, meta_key, w)) {
        lx_set_error(LX_E_OOM, "lx_load: out of host memory");
        return false;
    }
    w->meta[w->n_meta] = m;
    index_insert(w->meta_index, w->meta_index_cap, m.key, w->n_meta);
    w->n_meta++;
    return true;
}

static void meta_clear(io_meta *m) {
    free(m->key);
    free(m->value);
    free(m->item_off);
    free(m->arena);
}

bool io_meta_add(lx_weights *w, const char *file, const char *key, const char *value, size_t vlen,
                 bool replace_ok) {
    if (io_meta_find(w, key) >= 0) {
        if (replace_ok) return true;
        lx_set_error(LX_E_FORMAT, "lx_load: %s: duplicate metadata key '%.*s'", file, IO_Q(key));
        return false;
    }
    io_meta m = {.key = dup_n(key, strlen(key)), .value = dup_n(value, vlen), .n_items = -1};
    if (!m.key || !m.value) {
        meta_clear(&m);
        lx_set_error(LX_E_OOM, "lx_load: out of host memory");
        return false;
    }
    if (!meta_push(w, m)) { meta_clear(&m); return false; }
    return true;
}

bool io_meta_add_array(lx_weights *w, const char *file, const char *key, char *arena, size_t *off,
                       int n) {
    io_meta m = {.key = NULL, .value = NULL, .n_items = n, .item_off = off, .arena = arena};
    if (io_meta_find(w, key) >= 0) {
        meta_clear(&m);
        lx_set_error(LX_E_FORMAT, "lx_load: %s: duplicate metadata key '%.*s'", file, IO_Q(key));
        return false;
    }
    m.key = dup_n(key, strlen(key));
    if (!m.key) {
        meta_clear(&m);
        lx_set_error(LX_E_OOM, "lx_load: out of host memory");
        return false;
    }
    if (!meta_push(w, m)) { meta_clear(&m); return false; }
    return true;
}

static void weights_destroy(lx_weights *w, bool free_arrays) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        if (free_arrays) lx_free(w->arrays[i]);
        free(w->names[i]);
    }
    for (int i = 0; i < w->n_meta; i++) meta_clear(&w->meta[i]);
    free(w->names);
    free(w->arrays);
    free(w->index);
    free(w->meta);
    free(w->meta_index);
    free(w->path);
    free(w);
}

bool io_weights_merge(lx_weights *dst, lx_weights *src, const char *file) {
    bool ok = true;
    int i = 0;
    for (; i < src->n && ok; i++) {
        if (io_weights_find(dst, src->names[i]) >= 0) {
            lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' appears in more than one shard",
                         file, IO_Q(src->names[i]));
            ok = false;
            break;
        }
        ok = add_handle(dst, file, src->names[i], src->arrays[i]);
        src->names[i] = NULL;
    }
    /* what was not moved is freed with src */
    for (int k = i; k < src->n; k++) {
        lx_free(src->arrays[k]);
        free(src->names[k]);
    }
    src->n = 0;
    for (int k = 0; k < src->n_meta; k++) {
        io_meta *m = &src->meta[k];
        if (ok && io_meta_find(dst, m->key) < 0) {
            if (meta_push(dst, *m)) { memset(m, 0, sizeof *m); continue; }
            ok = false;
        }
        meta_clear(m);
    }
    src->n_meta = 0;
    weights_destroy(src, true);
    return ok;
}

/* ---- public API ------------------------------------------------------------------------- */

lx_array lx_weights_get(const lx_weights *w, const char *name) {
    if (!w || !name) {
        lx_set_error(LX_E_ARG, "lx_weights_get: %s is NULL", w ? "name" : "weights");
        return LX_NULL_ARRAY;
    }
    int i = io_weights_find(w, name);
    if (i < 0) {
        lx_set_error(LX_E_ARG, "lx_weights_get: no array named '%.*s' in %s", IO_Q(name), w->path);
        return LX_NULL_ARRAY;
    }
    return w->arrays[i];
}

int lx_weights_count(const lx_weights *w) {
    if (!w) {
        lx_set_error(LX_E_ARG, "lx_weights_count: weights is NULL");
        return 0;
    }
    return w->n;
}

const char *lx_weights_name(const lx_weights *w, int i) {
    if (!w) {
        lx_set_error(LX_E_ARG, "lx_weights_name: weights is NULL");
        return NULL;
    }
    if (i < 0 || i >= w->n) {
        lx_set_error(LX_E_ARG, "lx_weights_name: index %d is out of range for %d arrays", i, w->n);
        return NULL;
    }
    return w->names[i];
}

const char *lx_weights_metadata(const lx_weights *w, const char *key) {
    if (!w || !key) return NULL;
    int i = io_meta_find(w, key);
    return i < 0 ? NULL : w->meta[i].value;
}

int lx_weights_metadata_array_len(const lx_weights *w, const char *key) {
    if (!w || !key) return -1;
    int i = io_meta_find(w, key);
    return i < 0 ? -1 : w->meta[i].n_items;
}

const char *lx_weights_metadata_array_item(const lx_weights *w, const char *key, int item) {
    if (!w || !key) return NULL;
    int i = io_meta_find(w, key);
    if (i < 0 || item < 0 || item >= w->meta[i].n_items) return NULL;
    return w->meta[i].arena + w->meta[i].item_off[item];
}

void lx_weights_free(lx_weights *w) { weights_destroy(w, true); }

/* ---- lx_load ---------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* One file: GGUF by its magic, else safetensors. */
static lx_weights *load_file(const char *path) {
    io_image *im = io_image_open("lx_load", path);
    if (!im) return NULL;
    lx_weights *w = NULL;
    if (im->size >= 4 && memcmp(im->data, "GGUF", 4) == 0) {
        w = io_gguf_parse(im, path);
    } else if (im->size >= 6 && memcmp(im->data, "\x93NUMPY", 6) == 0) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s is an npy file: load it with lx_load_npy", path);
    } else {
        w = io_safetensors_parse(im, path);
    }
    io_image_release(im);
    return w;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory: its index, its model.safetensors, or all its *.safetensors files. */
static lx_weights *load_dir(const char *dir) {
    char *p = join_path(dir, "model.safetensors.index.json");
    if (!p) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); return NULL; }
    if (is_file(p)) {
        lx_weights *w = io_load_index(p);
        free(p);
        return w;
    }
    free(p);
    p = join_path(dir, "model.safetensors");
    if (!p) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); return NULL; }
    if (is_file(p)) {
        lx_weights *w = load_file(p);
        free(p);
        return w;
    }
    free(p);
    DIR *d = opendir(dir);
    if (!d) {
        lx_set_error(LX_E_IO, "lx_load: cannot open directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    char **files = NULL;
    size_t n = 0, cap = 0;
    bool oom = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".safetensors")) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            char **f = realloc(files, nc * sizeof *f);
            if (!f) { oom = true; break; }
            files = f;
            cap = nc;
        }
        files[n] = join_path(dir, e->d_name);
        if (!files[n]) { oom = true; break; }
        n++;
    }
    closedir(d);
    lx_weights *w = NULL;
    if (oom) {
        lx_set_error(LX_E_OOM, "lx_load: out of host memory");
    } else if (n == 0) {
        lx_set_error(LX_E_IO,
                     "lx_load: %s has no model.safetensors.index.json, model.safetensors or "
                     "*.safetensors file", dir);
    } else {
        qsort(files, n, sizeof *files, cmp_str);
        w = io_weights_new(dir);
        for (size_t i = 0; i < n && w; i++) {
            if (!is_file(files[i])) continue;
            lx_weights *s = load_file(files[i]);
            if (!s || !io_weights_merge(w, s, files[i])) {
                lx_weights_free(w);
                w = NULL;
            }
        }
    }
    for (size_t i = 0; i < n; i++) free(files[i]);
    free(files);
    return w;
}

lx_weights *lx_load(const char *path) {
    if (!path) {
        lx_set_error(LX_E_ARG, "lx_load: path is NULL");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        lx_set_error(LX_E_IO, "lx_load: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) return load_dir(path);
    if (ends_with(path, ".json")) return io_load_index(path);
    return load_file(path);
}

/* ---- sharded models: model.safetensors.index.json -------------------------------------- */

/* A metadata value from JSON: strings as they are, numbers formatted, others as JSON text. */
static bool add_json_meta(lx_weights *w, const char *file, const char *key, const cJSON *v) {
    char num[64];
    if (cJSON_IsString(v)) return io_meta_add(w, file, key, v->valuestring, strlen(v->valuestring), true);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 9.007199254740992e15)
            snprintf(num, sizeof num, "%lld", (long long)d);
        else
            snprintf(num, sizeof num, "%.17g", d);
        return io_meta_add(w, file, key, num, strlen(num), true);
    }
    if (cJSON_IsBool(v)) {
        const char *s = cJSON_IsTrue(v) ? "true" : "false";
        return io_meta_add(w, file, key, s, strlen(s), true);
    }
    char *txt = cJSON_PrintUnformatted(v);
    if (!txt) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); return false; }
    bool ok = io_meta_add(w, file, key, txt, strlen(txt), true);
    cJSON_free(txt);
    return ok;
}

/* A shard file name from an index must be a plain file name in the index's directory. */
static bool shard_name_ok(const char *s) {
    return s[0] && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

lx_weights *io_load_index(const char *index_path) {
    io_image *im = io_image_open("lx_load", index_path);
    if (!im) return NULL;
    lx_weights *w = NULL;
    cJSON *root = NULL;
    char *text = NULL, *dir = NULL;
    char **shards = NULL;
    size_t n_shards = 0;
    if (im->size > IO_MAX_HEADER) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: index of %zu bytes is larger than the %zu-byte cap",
                     index_path, im->size, IO_MAX_HEADER);
        goto done;
    }
    if (!io_utf8_valid(im->data, im->size) || memchr(im->data, 0, im->size)) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: index is not valid UTF-8 text", index_path);
        goto done;
    }
    text = malloc(im->size + 8);
    if (!text) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); goto done; }
    memcpy(text, im->data, im->size);
    memset(text + im->size, 0, 8);
    root = cJSON_ParseWithLength(text, im->size);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(root) || !cJSON_IsObject(map)) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: not a safetensors index (a JSON object with a "
                     "\"weight_map\" object)", index_path);
        goto done;
    }
    /* the shard files, each once, sorted */
    size_t n_entries = 0;
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            lx_set_error(LX_E_FORMAT, "lx_load: %s: weight_map entry '%.*s' does not name a file "
                         "in the index's directory", index_path, IO_Q(e->string ? e->string : ""));
            goto done;
        }
        n_entries++;
    }
    shards = calloc(n_entries ? n_entries : 1, sizeof *shards);
    if (!shards) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); goto done; }
    for (const cJSON *e = map->child; e; e = e->next) shards[n_shards++] = e->valuestring;
    qsort(shards, n_shards, sizeof *shards, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n_shards; i++)
        if (u == 0 || strcmp(shards[u - 1], shards[i]) != 0) shards[u++] = shards[i];
    n_shards = u;

    const char *slash = strrchr(index_path, '/');
    dir = slash ? strndup(index_path, (size_t)(slash - index_path + 1)) : strdup("./");
    w = io_weights_new(index_path);
    if (!dir || !w) {
        if (!dir) lx_set_error(LX_E_OOM, "lx_load: out of host memory");
        goto fail;
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (cJSON_IsObject(meta)) {
        for (const cJSON *e = meta->child; e; e = e->next)
            if (e->string && !add_json_meta(w, index_path, e->string, e)) goto fail;
    }
    for (size_t s = 0; s < n_shards; s++) {
        char *path = join_path(dir, shards[s]);
        if (!path) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); goto fail; }
        lx_weights *sw = load_file(path);
        if (!sw) { free(path); goto fail; }
        for (const cJSON *e = map->child; e; e = e->next) {
            if (strcmp(e->valuestring, shards[s]) != 0) continue;
            if (!e->string || io_weights_find(sw, e->string) < 0) {
                lx_set_error(LX_E_FORMAT, "lx_load: %s: the index puts tensor '%.*s' in %s, which "
                             "does not have it", index_path, IO_Q(e->string ? e->string : ""), path);
                weights_destroy(sw, true);
                free(path);
                goto fail;
            }
        }
        bool ok = io_weights_merge(w, sw, path);
        free(path);
        if (!ok) goto fail;
    }
    goto done;
fail:
    lx_weights_free(w);
    w = NULL;
done:
    free(shards);
    free(dir);
    cJSON_Delete(root);
    free(text);
    io_image_release(im);
    return w;
}
