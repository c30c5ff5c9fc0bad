/*
 * safetensors.c -- reading and writing Hugging Face safetensors files.
 *
 * Layout: an 8-byte little-endian header size N, N bytes of UTF-8 JSON (an object of
 * name -> {dtype, shape, data_offsets: [begin, end]} plus an optional "__metadata__" object of
 * string -> string), then the data region, which the tensors must tile exactly (as the
 * reference implementation requires). The header is parsed with cJSON after every structural
 * check; nothing is built until the whole header has been validated, so a bad file leaves no
 * arrays behind. Tensors aligned for their dtype become zero-copy views of the file image;
 * others are copied. BOOL bytes other than 0/1 are normalised (copied) so kernels only ever
 * see valid bools.
 *
 * Saving writes "<path>.tmp-XXXXXX" in the same directory, fsyncs it, renames it over the
 * final name and fsyncs the directory: a crash leaves the old file or the new one, never half
 * of one. Tensors are laid out by descending element size (then name) with the header padded
 * to a multiple of 8, so every tensor of a saved file is aligned for zero-copy loading.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend/device.h"
#include "core/dtype.h"
#include "core/handle.h"
#include "core/node.h"
#include "io/io.h"

#define ST_MAX_TENSORS (1 << 24)

typedef struct {
    const char *name;
    int lx;        /* lx dtype, or -1 for a dtype lx does not support */
    int bits;      /* element size in bits (for messages and sizes) */
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"BOOL", LX_BOOL, 8},       {"U8", LX_UINT8, 8},        {"I8", LX_INT8, 8},
    {"U16", LX_UINT16, 16},     {"I16", LX_INT16, 16},      {"U32", LX_UINT32, 32},
    {"I32", LX_INT32, 32},      {"U64", LX_UINT64, 64},     {"I64", LX_INT64, 64},
    {"F16", LX_FLOAT16, 16},    {"BF16", LX_BFLOAT16, 16},  {"F32", LX_FLOAT32, 32},
    {"F64", LX_FLOAT64, 64},
    /* defined by the format, not supported by lx */
    {"F8_E4M3", -1, 8},         {"F8_E5M2", -1, 8},         {"F8_E8M0", -1, 8},
    {"F4", -1, 4},              {"F6_E2M3", -1, 6},         {"F6_E3M2", -1, 6},
    {"C64", -1, 64},
};

static const st_dtype *st_dtype_find(const char *s) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) return &st_dtypes[i];
    return NULL;
}

static const char *st_dtype_name(lx_dtype t) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].lx == (int)t) return st_dtypes[i].name;
    return NULL;
}

typedef struct {
    const char *name;   /* points into the cJSON tree */
    const st_dtype *dt;
    int ndim;
    int32_t shape[LX_MAX_NDIM];
    uint64_t begin, end;
    int order;          /* position in the header */
} st_entry;

/* An exact non-negative integer no larger than 2^53 (what a double holds exactly). */
static bool json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}
static int cmp_by_offset(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}
static int cmp_by_order(const void *a, const void *b) {
    return ((const st_entry *)a)->order - ((const st_entry *)b)->order;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of "__metadata__" are unique (sorted, so a huge header stays O(n log n)). */
static bool metadata_keys_unique(const cJSON *meta, const char *file) {
    size_t n = 0;
    for (const cJSON *m = meta->child; m; m = m->next) n++;
    const char **keys = malloc(sizeof *keys * (n ? n : 1));
    if (!keys) {
        lx_set_error(LX_E_OOM, "lx_load: %s: out of host memory", file);
        return false;
    }
    n = 0;
    for (const cJSON *m = meta->child; m; m = m->next) keys[n++] = m->string;
    qsort(keys, n, sizeof *keys, cmp_cstr);
    bool ok = true;
    for (size_t i = 1; i < n && ok; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            lx_set_error(LX_E_FORMAT, "lx_load: %s: duplicate \"__metadata__\" key '%.*s'", file,
                         IO_Q(keys[i]));
            ok = false;
        }
    free(keys);
    return ok;
}

#define ST_FAIL(...)                                          \
    do {                                                      \
        lx_set_error(LX_E_FORMAT, "lx_load: " __VA_ARGS__);  \
        goto fail;                                            \
    } while (0)

/* One tensor entry of the header; false with the error set. */
static bool parse_entry(const cJSON *e, const char *file, uint64_t data_size, st_entry *out) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' is not a JSON object", file, IO_Q(name));
        return false;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of)) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' lacks a string \"dtype\", an array "
                     "\"shape\" or an array \"data_offsets\"", file, IO_Q(name));
        return false;
    }
    out->name = name;
    out->dt = st_dtype_find(dt->valuestring);
    if (!out->dt) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' has unknown dtype '%.*s'", file,
                     IO_Q(name), IO_Q(dt->valuestring));
        return false;
    }
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > LX_MAX_NDIM) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' has %d dimensions (lx allows %d)",
                     file, IO_Q(name), ndim, LX_MAX_NDIM);
        return false;
    }
    out->ndim = ndim;
    int64_t dims[LX_MAX_NDIM];
    int k = 0;
    for (const cJSON *d = sh->child; d; d = d->next, k++) {
        uint64_t v;
        if (!json_uint(d, &v) || v > INT32_MAX) {
            lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s': shape entry %d is not an "
                         "integer in [0, 2^31)", file, IO_Q(name), k);
            return false;
        }
        dims[k] = (int64_t)v;
        out->shape[k] = (int32_t)v;
    }
    if (cJSON_GetArraySize(of) != 2 || !json_uint(of->child, &out->begin) ||
        !json_uint(of->child->next, &out->end)) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s': data_offsets is not a pair of "
                     "non-negative integers", file, IO_Q(name));
        return false;
    }
    if (out->begin > out->end || out->end > data_size) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s': data_offsets [%llu, %llu] are "
                     "outside the data region of %llu bytes", file, IO_Q(name),
                     (unsigned long long)out->begin, (unsigned long long)out->end,
                     (unsigned long long)data_size);
        return false;
    }
    /* sizes in bits, so sub-byte dtypes are checked too */
    size_t nbits;
    if (!io_shape_bytes(dims, ndim, (size_t)out->dt->bits, &nbits, NULL)) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s': the shape's size overflows", file,
                     IO_Q(name));
        return false;
    }
    uint64_t have = out->end - out->begin;
    if (nbits % 8 != 0 || nbits / 8 != have) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s': data_offsets hold %llu bytes but "
                     "its shape of %s needs %zu%s", file, IO_Q(name), (unsigned long long)have,
                     out->dt->name, nbits / 8, nbits % 8 ? " and a fraction" : "");
        return false;
    }
    return true;
}

/* The bytes of one tensor as a buffer: zero-copy when aligned and usable as they are. */
static lx_buffer *entry_buffer(io_image *im, size_t off, size_t n, lx_dtype t) {
    size_t es = lx_dtype_size(t);
    bool aligned = ((uintptr_t)(im->data + off) % es) == 0;
    if (t == LX_BOOL) {
        bool clean = true;
        for (size_t i = 0; i < n && clean; i++) clean = im->data[off + i] <= 1;
        if (!clean) {
            lx_devices_init(); /* registers the CPU's memory */
            lx_buffer *b = lx_buffer_alloc(LX_CPU, n);
            if (!b) return NULL;
            uint8_t *p = b->ptr;
            for (size_t i = 0; i < n; i++) p[i] = im->data[off + i] != 0;
            return b;
        }
        return io_image_buffer(im, off, n, true);
    }
    if (io_host_le() || es == 1) return io_image_buffer(im, off, n, aligned);
    /* big-endian host: copy and swap */
    lx_buffer *b = io_image_buffer(im, off, n, false);
    if (!b) return NULL;
    uint8_t *p = b->ptr;
    for (size_t i = 0; i + es <= n; i += es)
        for (size_t a = 0, z = es - 1; a < z; a++, z--) {
            uint8_t tmp = p[i + a];
            p[i + a] = p[i + z];
            p[i + z] = tmp;
        }
    return b;
}

lx_weights *io_safetensors_parse(io_image *im, const char *file) {
    const uint8_t *data = im->data;
    size_t size = im->size;
    char *text = NULL;
    cJSON *root = NULL;
    st_entry *ents = NULL;
    lx_weights *w = NULL;
    const cJSON *meta = NULL;

    if (size < 8) ST_FAIL("%s: %zu bytes is too short for a safetensors file", file, size);
    uint64_t hlen = io_rd64(data);
    if (hlen > IO_MAX_HEADER)
        ST_FAIL("%s: header size %llu is larger than the %zu-byte cap", file,
                (unsigned long long)hlen, IO_MAX_HEADER);
    if (hlen > size - 8)
        ST_FAIL("%s: header size %llu runs past the end of the file (%zu bytes)", file,
                (unsigned long long)hlen, size);
    if (hlen < 2 || data[8] != '{')
        ST_FAIL("%s: not a safetensors file (the header is not a JSON object)", file);
    const uint8_t *h = data + 8;
    if (memchr(h, 0, hlen) || !io_utf8_valid(h, hlen))
        ST_FAIL("%s: the header is not valid UTF-8 text", file);
    text = malloc(hlen + 8);
    if (!text) {
        lx_set_error(LX_E_OOM, "lx_load: %s: out of host memory for the header", file);
        goto fail;
    }
    memcpy(text, h, hlen);
    memset(text + hlen, 0, 8); /* padding: no parser over-read can leave the block */
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, hlen, &end, 0);
    if (!cJSON_IsObject(root)) ST_FAIL("%s: the header is not a valid JSON object", file);
    for (const char *p = end; p && p < text + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            ST_FAIL("%s: the header has data after its JSON object", file);

    uint64_t data_start = 8 + hlen, data_size = size - data_start;
    size_t n = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) ST_FAIL("%s: the header has an entry without a name", file);
        if (strcmp(e->string, "__metadata__") == 0) {
            if (meta) ST_FAIL("%s: the header has two \"__metadata__\" entries", file);
            if (!cJSON_IsObject(e)) ST_FAIL("%s: \"__metadata__\" is not a JSON object", file);
            for (const cJSON *m = e->child; m; m = m->next)
                if (!m->string || !cJSON_IsString(m))
                    ST_FAIL("%s: \"__metadata__\" entry '%.*s' is not a string", file,
                            IO_Q(m->string ? m->string : ""));
            meta = e;
            continue;
        }
        n++;
    }
    if (n > ST_MAX_TENSORS) ST_FAIL("%s: %zu tensors is more than lx accepts", file, n);
    ents = calloc(n ? n : 1, sizeof *ents);
    if (!ents) {
        lx_set_error(LX_E_OOM, "lx_load: %s: out of host memory", file);
        goto fail;
    }
    size_t k = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (e == meta) continue;
        if (!parse_entry(e, file, data_size, &ents[k])) goto fail;
        ents[k].order = (int)k;
        k++;
    }
    /* unique names (cJSON keeps duplicate keys; a NUL escape can make two names equal) */
    qsort(ents, n, sizeof *ents, cmp_by_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(ents[i - 1].name, ents[i].name) == 0)
            ST_FAIL("%s: duplicate tensor name '%.*s'", file, IO_Q(ents[i].name));
    if (meta && !metadata_keys_unique(meta, file)) goto fail;
    /* the tensors tile the data region: no gap, no overlap, nothing after */
    qsort(ents, n, sizeof *ents, cmp_by_offset);
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (ents[i].begin != pos) {
            if (ents[i].begin < pos)
                ST_FAIL("%s: tensor '%.*s' (bytes %llu..%llu) overlaps tensor '%.*s'", file,
                        IO_Q(ents[i].name), (unsigned long long)ents[i].begin,
                        (unsigned long long)ents[i].end, IO_Q(ents[i - 1].name));
            ST_FAIL("%s: the data region has a gap at bytes %llu..%llu (before tensor '%.*s')",
                    file, (unsigned long long)pos, (unsigned long long)ents[i].begin,
                    IO_Q(ents[i].name));
        }
        pos = ents[i].end;
    }
    if (pos != data_size)
        ST_FAIL("%s: the tensors cover %llu bytes of the %llu-byte data region", file,
                (unsigned long long)pos, (unsigned long long)data_size);
    qsort(ents, n, sizeof *ents, cmp_by_order);
    for (size_t i = 0; i < n; i++)
        if (ents[i].dt->lx < 0) {
            lx_set_error(LX_E_UNSUPPORTED, "lx_load: %s: tensor '%.*s' has dtype %s, which lx "
                         "does not support", file, IO_Q(ents[i].name), ents[i].dt->name);
            goto fail;
        }

    /* valid: build */
    w = io_weights_new(file);
    if (!w) goto fail;
    if (meta)
        for (const cJSON *m = meta->child; m; m = m->next)
            if (!io_meta_add(w, file, m->string, m->valuestring, strlen(m->valuestring), false))
                goto fail;
    for (size_t i = 0; i < n; i++) {
        st_entry *t = &ents[i];
        lx_dtype dt = (lx_dtype)t->dt->lx;
        lx_buffer *b = entry_buffer(im, (size_t)(data_start + t->begin), (size_t)(t->end - t->begin), dt);
        if (!b) goto fail;
        lx_node *node = lx_node_new_ready("lx_load", dt, t->shape, t->ndim, b);
        if (!node || !io_weights_add(w, file, t->name, node)) goto fail;
    }
    free(ents);
    cJSON_Delete(root);
    free(text);
    return w;
fail:
    lx_weights_free(w);
    free(ents);
    cJSON_Delete(root);
    free(text);
    return NULL;
}

/* ---- saving ----------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    lx_array a;
    lx_dtype dtype;
    int ndim;
    int32_t shape[LX_MAX_NDIM];
    size_t nbytes;
} save_entry;

static int cmp_save(const void *x, const void *y) {
    const save_entry *a = x, *b = y;
    size_t sa = lx_dtype_size(a->dtype), sb = lx_dtype_size(b->dtype);
    if (sa != sb) return sa > sb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int cmp_name_ptr(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static char *build_header(const save_entry *e, int n, size_t *hlen) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = root ? cJSON_AddObjectToObject(root, "__metadata__") : NULL;
    bool ok = meta && cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < n && ok; i++) {
        cJSON *t = cJSON_AddObjectToObject(root, e[i].name);
        double dims[LX_MAX_NDIM];
        for (int d = 0; d < e[i].ndim; d++) dims[d] = e[i].shape[d];
        cJSON *shape = cJSON_CreateDoubleArray(dims, e[i].ndim);
        if (!shape && e[i].ndim == 0) shape = cJSON_CreateArray();
        double offs[2] = {(double)off, (double)(off + e[i].nbytes)};
        cJSON *offsets = cJSON_CreateDoubleArray(offs, 2);
        ok = t && shape && offsets && cJSON_AddStringToObject(t, "dtype", st_dtype_name(e[i].dtype));
        if (ok) {
            cJSON_AddItemToObject(t, "shape", shape);
            cJSON_AddItemToObject(t, "data_offsets", offsets);
        } else {
            cJSON_Delete(shape);
            cJSON_Delete(offsets);
        }
        off += e[i].nbytes;
    }
    char *txt = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!txt) return NULL;
    size_t len = strlen(txt);
    size_t padded = len + (8 - (8 + len) % 8) % 8;
    char *out = malloc(padded + 1);
    if (out) {
        memcpy(out, txt, len);
        memset(out + len, ' ', padded - len);
        out[padded] = '\0';
        *hlen = padded;
    }
    cJSON_free(txt);
    return out;
}

lx_status lx_save_safetensors(const char *path, const char *const *names, const lx_array *arrays,
                              int n) {
    const char *op = "lx_save_safetensors";
    if (!path) return lx_set_error(LX_E_ARG, "%s: path is NULL", op);
    if (n < 0) return lx_set_error(LX_E_ARG, "%s: n is %d", op, n);
    if (n > 0 && (!names || !arrays))
        return lx_set_error(LX_E_ARG, "%s: %s is NULL", op, names ? "arrays" : "names");
    save_entry *e = calloc((size_t)(n ? n : 1), sizeof *e);
    if (!e) return lx_set_error(LX_E_OOM, "%s: out of host memory", op);
    lx_status st = LX_OK;
    for (int i = 0; i < n && st == LX_OK; i++) {
        const char *nm = names[i];
        if (!nm || !io_utf8_valid((const uint8_t *)nm, strlen(nm)) || strcmp(nm, "__metadata__") == 0) {
            st = lx_set_error(LX_E_ARG, "%s: names[%d] is %s", op, i,
                              !nm ? "NULL" : (strcmp(nm, "__metadata__") == 0 ? "the reserved "
                              "name __metadata__" : "not valid UTF-8"));
            break;
        }
        lx_node *node = lx_handle_get_nth(arrays[i], op, "arrays", i);
        if (!node) { st = lx_error(); break; }
        e[i].name = nm;
        e[i].a = arrays[i];
        e[i].dtype = (lx_dtype)node->dtype;
        e[i].ndim = node->ndim;
        memcpy(e[i].shape, node->shape, sizeof e[i].shape);
        e[i].nbytes = lx_node_nbytes(node);
        lx_node_release(node);
    }
    if (st == LX_OK) {
        /* names are unique: sort a copy of the pointers and compare neighbours */
        const char **sorted = malloc(sizeof *sorted * (size_t)(n ? n : 1));
        if (!sorted) st = lx_set_error(LX_E_OOM, "%s: out of host memory", op);
        for (int i = 0; sorted && i < n; i++) sorted[i] = e[i].name;
        if (sorted) qsort(sorted, (size_t)n, sizeof *sorted, cmp_name_ptr);
        for (int i = 0; sorted && i + 1 < n; i++)
            if (strcmp(sorted[i], sorted[i + 1]) == 0) {
                st = lx_set_error(LX_E_ARG, "%s: the name '%.*s' is given twice", op,
                                  IO_Q(sorted[i]));
                break;
            }
        free(sorted);
        qsort(e, (size_t)n, sizeof *e, cmp_save);
    }
    size_t hlen = 0;
    char *header = NULL;
    if (st == LX_OK) {
        header = build_header(e, n, &hlen);
        if (!header) st = lx_set_error(LX_E_OOM, "%s: out of host memory for the header", op);
    }
    char *tmp = NULL;
    int fd = -1;
    if (st == LX_OK) {
        fd = io_tmp_open(op, path, &tmp);
        if (fd < 0) st = lx_error();
    }
    if (st == LX_OK) {
        uint8_t len8[8];
        for (int b = 0; b < 8; b++) len8[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
        if (!io_write_all(fd, len8, 8) || !io_write_all(fd, header, hlen))
            st = lx_set_error(LX_E_IO, "%s: cannot write %s: %s", op, tmp, strerror(errno));
    }
    for (int i = 0; i < n && st == LX_OK; i++) {
        if (e[i].nbytes == 0) continue;
        if (!io_host_le() && lx_dtype_size(e[i].dtype) > 1) {
            st = lx_set_error(LX_E_UNSUPPORTED, "%s: saving on a big-endian host is not supported",
                              op);
            break;
        }
        const void *p = lx_data(e[i].a);
        if (!p) {
            st = lx_error() ? lx_error() : lx_set_error(LX_E_INTERNAL, "%s: no data", op);
            break;
        }
        if (!io_write_all(fd, p, e[i].nbytes))
            st = lx_set_error(LX_E_IO, "%s: cannot write %s: %s", op, tmp, strerror(errno));
    }
    st = io_tmp_finish(op, fd, tmp, path, st);
    free(header);
    free(e);
    return st;
}
