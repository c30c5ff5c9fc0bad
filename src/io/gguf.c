/*
 * gguf.c -- reading GGUF (v2 and v3) files: llama.cpp's format.
 *
 * Layout: "GGUF", version u32, tensor count u64, KV count u64; the KVs (key string, value type
 * u32, value: numbers, bool, string = u64 length + bytes, array = element type u32 + count u64 +
 * elements, arrays of arrays allowed); the tensor infos (name, n_dims u32, dims u64 innermost
 * first, ggml type u32, offset u64 from the data start); the data start at the next multiple of
 * general.alignment (default 32).
 *
 * Metadata: every scalar KV is readable with lx_weights_metadata as text (numbers formatted:
 * integers in decimal, floats as the shortest %g text that reads back as the same value, bools
 * "true"/"false"); arrays
 * through lx_weights_metadata_array_len/_item (each item as text; nested arrays as "[a, b]").
 *
 * Tensors: dims are reversed into lx's row-major shape. F32, F16, BF16, F64, I8..I64 become
 * plain arrays (zero-copy views of the file when aligned). Q4_0, Q4_1 and Q8_0 are converted
 * block by block into MLX's affine format with group size 32, the way MLX's GGUF loader does:
 *   "<name>"          uint32 [..., K*bits/32]  packed values, value j of a word at bits j*bits
 *   "<prefix>.scales" float16 [..., K/32]
 *   "<prefix>.biases" float16 [..., K/32]
 * where <prefix> is <name> without a trailing ".weight" (MLX's naming: "blk.0.attn_q.weight"
 * gives "blk.0.attn_q.scales"), and w = scale * q + bias:
 *   Q4_0: q = nibble (0..15), scale = d, bias = -8 d
 *   Q4_1: q = nibble, scale = d, bias = m
 *   Q8_0: q = int8 with its sign bit flipped (v + 128), scale = d, bias = -128 d
 * Scales and biases are float16 as in MLX (d and m are float16 in the file, and -8d, -128d are
 * exact in float16) unless a bias would overflow float16, in which case that tensor's scales and
 * biases are float32. lx_weights_metadata(w, "<name>.quantization") says "affine:32:4" or
 * "affine:32:8" for each converted tensor.
 * Other ggml types are refused with LX_E_UNSUPPORTED naming the type and the tensor.
 *
 * Hostile input: counts are bounded by what the remaining bytes could hold, strings and arrays
 * by the bytes left and by caps, nesting by a depth cap, every tensor range is checked against
 * the file and against the others (no overlap), and nothing is built before all of it passed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "core/dtype.h"
#include "core/handle.h"
#include "core/node.h"
#include "io/io.h"

enum {
    GV_U8 = 0, GV_I8, GV_U16, GV_I16, GV_U32, GV_I32, GV_F32, GV_BOOL, GV_STRING, GV_ARRAY,
    GV_U64, GV_I64, GV_F64, GV_COUNT
};
static const uint8_t gv_size[GV_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8};
/* gv_size of STRING/ARRAY is the least bytes one can take (length / type + count) */

#define GGUF_MAX_TENSORS ((uint64_t)1 << 24)
#define GGUF_MAX_KV ((uint64_t)1 << 24)
#define GGUF_MAX_NAME ((uint64_t)1 << 16)
#define GGUF_MAX_ARRAY ((uint64_t)1 << 26)
#define GGUF_MAX_DEPTH 4
#define GGUF_MAX_HEADER_BYTES ((size_t)512 << 20)  /* KVs + tensor infos */
#define GGUF_MAX_META_TEXT ((size_t)256 << 20)     /* formatted metadata, all of it */
#define GGUF_DEFAULT_ALIGNMENT 32

/* ggml tensor types: name, elements per block, bytes per block, lx dtype for plain ones
 * (-1 none), quantized bits for the converted ones (0 none). blck 0: removed type. */
typedef struct {
    const char *name;
    uint32_t blck, bytes;
    int lx;
    int qbits;
} gg_type;

static const gg_type gg_types[] = {
    [0] = {"F32", 1, 4, LX_FLOAT32, 0},      [1] = {"F16", 1, 2, LX_FLOAT16, 0},
    [2] = {"Q4_0", 32, 18, -1, 4},           [3] = {"Q4_1", 32, 20, -1, 4},
    [4] = {"Q4_2", 0, 0, -1, 0},             [5] = {"Q4_3", 0, 0, -1, 0},
    [6] = {"Q5_0", 32, 22, -1, 0},           [7] = {"Q5_1", 32, 24, -1, 0},
    [8] = {"Q8_0", 32, 34, -1, 8},           [9] = {"Q8_1", 32, 40, -1, 0},
    [10] = {"Q2_K", 256, 84, -1, 0},         [11] = {"Q3_K", 256, 110, -1, 0},
    [12] = {"Q4_K", 256, 144, -1, 0},        [13] = {"Q5_K", 256, 176, -1, 0},
    [14] = {"Q6_K", 256, 210, -1, 0},        [15] = {"Q8_K", 256, 292, -1, 0},
    [16] = {"IQ2_XXS", 256, 66, -1, 0},      [17] = {"IQ2_XS", 256, 74, -1, 0},
    [18] = {"IQ3_XXS", 256, 98, -1, 0},      [19] = {"IQ1_S", 256, 50, -1, 0},
    [20] = {"IQ4_NL", 32, 18, -1, 0},        [21] = {"IQ3_S", 256, 110, -1, 0},
    [22] = {"IQ2_S", 256, 82, -1, 0},        [23] = {"IQ4_XS", 256, 136, -1, 0},
    [24] = {"I8", 1, 1, LX_INT8, 0},         [25] = {"I16", 1, 2, LX_INT16, 0},
    [26] = {"I32", 1, 4, LX_INT32, 0},       [27] = {"I64", 1, 8, LX_INT64, 0},
    [28] = {"F64", 1, 8, LX_FLOAT64, 0},     [29] = {"IQ1_M", 256, 56, -1, 0},
    [30] = {"BF16", 1, 2, LX_BFLOAT16, 0},   [31] = {"Q4_0_4_4", 0, 0, -1, 0},
    [32] = {"Q4_0_4_8", 0, 0, -1, 0},        [33] = {"Q4_0_8_8", 0, 0, -1, 0},
    [34] = {"TQ1_0", 256, 54, -1, 0},        [35] = {"TQ2_0", 256, 66, -1, 0},
    [36] = {"IQ4_NL_4_4", 0, 0, -1, 0},      [37] = {"IQ4_NL_4_8", 0, 0, -1, 0},
    [38] = {"IQ4_NL_8_8", 0, 0, -1, 0},      [39] = {"MXFP4", 32, 17, -1, 0},
    [40] = {"NVFP4", 64, 36, -1, 0},         [41] = {"Q1_0", 128, 18, -1, 0},
};
#define GG_NTYPES (sizeof gg_types / sizeof gg_types[0])

/* ---- growable text --------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    size_t *budget; /* bytes of formatted metadata left for the whole file */
    bool oom, over;
} gtext;

static bool gt_put(gtext *t, const void *s, size_t n) {
    if (t->oom || t->over) return false;
    if (n > *t->budget) { t->over = true; return false; }
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->n + n + 1) cap *= 2;
        char *q = realloc(t->p, cap);
        if (!q) { t->oom = true; return false; }
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = '\0';
    *t->budget -= n;
    return true;
}
static bool gt_str(gtext *t, const char *s) { return gt_put(t, s, strlen(s)); }

/* ---- the parser ------------------------------------------------------------------------ */

typedef struct {
    const char *file;
    io_cursor c;
    size_t meta_budget;
    uint32_t alignment;
} gparse;

typedef struct {
    char *name;
    uint32_t ndim;
    int64_t ne[LX_MAX_NDIM];   /* innermost first, as in the file */
    uint32_t type;
    uint64_t offset, nbytes;
} gtensor;

static bool gfail(gparse *g, const char *detail) {
    lx_set_error(LX_E_FORMAT, "lx_load: %s: %s", g->file, detail);
    return false;
}

static bool truncated(gparse *g, const char *what) {
    lx_set_error(LX_E_FORMAT, "lx_load: %s: the file ends inside %s (offset %zu of %zu bytes)",
                 g->file, what, g->c.pos, g->c.size);
    return false;
}

/* A GGUF string: u64 length + bytes, at most `cap` bytes. */
static bool read_str(gparse *g, uint64_t cap, const uint8_t **s, uint64_t *len, const char *what) {
    if (!io_cur_u64(&g->c, len)) return truncated(g, what);
    if (*len > cap || *len > g->c.size - g->c.pos) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: %s of %llu bytes runs past the end of the file or "
                     "the cap", g->file, what, (unsigned long long)*len);
        return false;
    }
    io_cur_bytes(&g->c, (size_t)*len, s);
    return true;
}

/* A name or key: valid UTF-8 without NUL; returns a copy. */
static char *read_name(gparse *g, const char *what) {
    const uint8_t *s;
    uint64_t len;
    if (!read_str(g, GGUF_MAX_NAME, &s, &len, what)) return NULL;
    if (memchr(s, 0, (size_t)len) || !io_utf8_valid(s, (size_t)len)) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: a %s is not valid UTF-8 (or holds a NUL byte)",
                     g->file, what);
        return NULL;
    }
    char *p = malloc((size_t)len + 1);
    if (!p) { lx_set_error(LX_E_OOM, "lx_load: %s: out of host memory", g->file); return NULL; }
    memcpy(p, s, (size_t)len);
    p[len] = '\0';
    return p;
}

/* Formats one value of type `type` at the cursor into t (arrays as "[a, b]"). */
static bool format_value(gparse *g, uint32_t type, int depth, gtext *t, const char *key);

static bool format_array_items(gparse *g, int depth, gtext *t, const char *key, bool as_list,
                               size_t **offs, int *n_out) {
    uint32_t et;
    uint64_t n;
    if (!io_cur_u32(&g->c, &et) || !io_cur_u64(&g->c, &n)) return truncated(g, "an array header");
    if (et >= GV_COUNT) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: metadata '%.*s': unknown array element type %u",
                     g->file, IO_Q(key), et);
        return false;
    }
    if (et == GV_ARRAY && depth + 1 >= GGUF_MAX_DEPTH) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: metadata '%.*s': arrays nested deeper than %d",
                     g->file, IO_Q(key), GGUF_MAX_DEPTH);
        return false;
    }
    if (n > GGUF_MAX_ARRAY || n > (g->c.size - g->c.pos) / gv_size[et]) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: metadata '%.*s': array of %llu entries does not "
                     "fit in the file", g->file, IO_Q(key), (unsigned long long)n);
        return false;
    }
    if (offs) {
        /* the item offsets count against the metadata budget too */
        if (n * sizeof **offs > *t->budget) { t->over = true; goto text_fail; }
        *t->budget -= n * sizeof **offs;
        *offs = malloc(sizeof **offs * (size_t)(n ? n : 1));
        if (!*offs) { lx_set_error(LX_E_OOM, "lx_load: %s: out of host memory", g->file); return false; }
        *n_out = (int)n;
    }
    if (as_list && !gt_str(t, "[")) goto text_fail;
    for (uint64_t i = 0; i < n; i++) {
        if (as_list && i && !gt_str(t, ", ")) goto text_fail;
        if (offs) (*offs)[i] = t->n;
        if (!format_value(g, et, depth + 1, t, key)) return false;
        if (offs && !gt_put(t, "", 1)) goto text_fail; /* the item's NUL */
    }
    if (as_list && !gt_str(t, "]")) goto text_fail;
    return true;
text_fail:
    if (t->oom) lx_set_error(LX_E_OOM, "lx_load: %s: out of host memory", g->file);
    else lx_set_error(LX_E_FORMAT, "lx_load: %s: metadata is larger than the %zu-byte cap", g->file,
                      GGUF_MAX_META_TEXT);
    return false;
}

/* The shortest %g text that reads back as the same number ("0.1", "1e-05"). */
static void format_f32(char *buf, size_t n, float v) {
    for (int prec = 6; prec < 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
    snprintf(buf, n, "%.9g", (double)v);
}
static void format_f64(char *buf, size_t n, double v) {
    for (int prec = 15; prec < 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
    snprintf(buf, n, "%.17g", v);
}

static bool format_value(gparse *g, uint32_t type, int depth, gtext *t, const char *key) {
    char num[64];
    const uint8_t *p;
    if (type >= GV_COUNT) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: metadata '%.*s' has unknown value type %u", g->file,
                     IO_Q(key), type);
        return false;
    }
    if (type == GV_ARRAY) return format_array_items(g, depth, t, key, true, NULL, NULL);
    if (type == GV_STRING) {
        uint64_t len;
        if (!read_str(g, IO_MAX_HEADER, &p, &len, "a metadata string")) return false;
        if (!gt_put(t, p, (size_t)len)) goto text_fail;
        return true;
    }
    if (!io_cur_bytes(&g->c, gv_size[type], &p)) return truncated(g, "a metadata value");
    switch (type) {
    case GV_U8: snprintf(num, sizeof num, "%u", (unsigned)p[0]); break;
    case GV_I8: snprintf(num, sizeof num, "%d", (int)(int8_t)p[0]); break;
    case GV_U16: snprintf(num, sizeof num, "%u", (unsigned)io_rd16(p)); break;
    case GV_I16: snprintf(num, sizeof num, "%d", (int)(int16_t)io_rd16(p)); break;
    case GV_U32: snprintf(num, sizeof num, "%lu", (unsigned long)io_rd32(p)); break;
    case GV_I32: snprintf(num, sizeof num, "%ld", (long)(int32_t)io_rd32(p)); break;
    case GV_U64: snprintf(num, sizeof num, "%llu", (unsigned long long)io_rd64(p)); break;
    case GV_I64: snprintf(num, sizeof num, "%lld", (long long)(int64_t)io_rd64(p)); break;
    case GV_F32: format_f32(num, sizeof num, lx_f32_from_bits(io_rd32(p))); break;
    case GV_F64: {
        uint64_t u = io_rd64(p);
        double d;
        memcpy(&d, &u, 8);
        format_f64(num, sizeof num, d);
        break;
    }
    case GV_BOOL: snprintf(num, sizeof num, "%s", p[0] ? "true" : "false"); break;
    default: num[0] = '\0';
    }
    if (!gt_str(t, num)) goto text_fail;
    return true;
text_fail:
    if (t->oom) lx_set_error(LX_E_OOM, "lx_load: %s: out of host memory", g->file);
    else lx_set_error(LX_E_FORMAT, "lx_load: %s: metadata is larger than the %zu-byte cap", g->file,
                      GGUF_MAX_META_TEXT);
    return false;
}

/* One KV into w. */
static bool read_kv(gparse *g, lx_weights *w) {
    char *key = read_name(g, "metadata key");
    if (!key) return false;
    uint32_t type;
    bool ok = false;
    gtext t = {.budget = &g->meta_budget};
    if (!io_cur_u32(&g->c, &type)) { truncated(g, "a metadata value type"); goto out; }
    if (type >= GV_COUNT) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: metadata '%.*s' has unknown value type %u", g->file,
                     IO_Q(key), type);
        goto out;
    }
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a;
        if (type != GV_U32) {
            lx_set_error(LX_E_FORMAT, "lx_load: %s: general.alignment is not a uint32", g->file);
            goto out;
        }
        if (g->c.size - g->c.pos < 4) { truncated(g, "general.alignment"); goto out; }
        a = io_rd32(g->c.base + g->c.pos);
        if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 30)) {
            lx_set_error(LX_E_FORMAT, "lx_load: %s: general.alignment %u is not a power of two "
                         "(up to 2^30)", g->file, a);
            goto out;
        }
        g->alignment = a;
    }
    if (type == GV_ARRAY) {
        size_t *offs = NULL;
        int n = 0;
        if (!format_array_items(g, 0, &t, key, false, &offs, &n)) { free(offs); goto out; }
        if (!t.p) t.p = calloc(1, 1);
        if (!t.p) { free(offs); lx_set_error(LX_E_OOM, "lx_load: out of host memory"); goto out; }
        ok = io_meta_add_array(w, g->file, key, t.p, offs, n);
        t.p = NULL;
        goto out;
    }
    if (!format_value(g, type, 0, &t, key)) goto out;
    ok = io_meta_add(w, g->file, key, t.p ? t.p : "", t.n, false);
out:
    free(t.p);
    free(key);
    return ok;
}

static bool read_tensor_info(gparse *g, gtensor *ti) {
    ti->name = read_name(g, "tensor name");
    if (!ti->name) return false;
    if (!io_cur_u32(&g->c, &ti->ndim)) return truncated(g, "a tensor info");
    if (ti->ndim > LX_MAX_NDIM) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' has %u dimensions (lx allows %d)",
                     g->file, IO_Q(ti->name), ti->ndim, LX_MAX_NDIM);
        return false;
    }
    for (uint32_t d = 0; d < ti->ndim; d++) {
        uint64_t v;
        if (!io_cur_u64(&g->c, &v)) return truncated(g, "a tensor info");
        if (v > INT32_MAX) {
            lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s': dimension %u is %llu (at most "
                         "2^31 - 1)", g->file, IO_Q(ti->name), d, (unsigned long long)v);
            return false;
        }
        ti->ne[d] = (int64_t)v;
    }
    if (!io_cur_u32(&g->c, &ti->type) || !io_cur_u64(&g->c, &ti->offset))
        return truncated(g, "a tensor info");
    if (ti->type >= GG_NTYPES || !gg_types[ti->type].name) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' has unknown ggml type %u", g->file,
                     IO_Q(ti->name), ti->type);
        return false;
    }
    return true;
}

/* Size and alignment checks of one tensor; false with the error set. */
static bool check_tensor(gparse *g, gtensor *ti, uint64_t data_start, size_t file_size) {
    const gg_type *tt = &gg_types[ti->type];
    if (ti->offset % g->alignment != 0) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s': offset %llu is not a multiple of "
                     "the alignment %u", g->file, IO_Q(ti->name), (unsigned long long)ti->offset,
                     g->alignment);
        return false;
    }
    if (tt->blck == 0) { ti->nbytes = 0; return true; } /* removed type: refused later */
    int64_t count = 1;
    size_t elems;
    if (!io_shape_bytes(ti->ne, (int)ti->ndim, 1, &elems, &count)) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s': the shape's size overflows", g->file,
                     IO_Q(ti->name));
        return false;
    }
    int64_t ne0 = ti->ndim ? ti->ne[0] : 1;
    if (ne0 % tt->blck != 0) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' of type %s: the innermost dimension "
                     "%lld is not a multiple of the block size %u", g->file, IO_Q(ti->name),
                     tt->name, (long long)ne0, tt->blck);
        return false;
    }
    uint64_t nb, end;
    if (__builtin_mul_overflow((uint64_t)count / tt->blck, (uint64_t)tt->bytes, &nb) ||
        __builtin_add_overflow(data_start, ti->offset, &end) ||
        __builtin_add_overflow(end, nb, &end) || end > file_size) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' (offset %llu, %llu bytes) runs past "
                     "the end of the file (%zu bytes)", g->file, IO_Q(ti->name),
                     (unsigned long long)ti->offset, (unsigned long long)nb, file_size);
        return false;
    }
    ti->nbytes = nb;
    return true;
}

static int cmp_offset(const void *a, const void *b) {
    const gtensor *x = *(gtensor *const *)a, *y = *(gtensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}
static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names a converted tensor adds: scales and biases per MLX's naming. */
static char *derived_name(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    if (n >= 7 && strcmp(name + n - 7, ".weight") == 0) n -= 7;
    char *p = malloc(n + k + 2);
    if (!p) return NULL;
    memcpy(p, name, n);
    p[n] = '.';
    memcpy(p + n + 1, suffix, k + 1);
    return p;
}

/* ---- conversion of quantized blocks ----------------------------------------------------- */

typedef struct {
    uint32_t type;
    const uint8_t *src;
    uint64_t blocks;
    uint32_t *wq;
    void *scales, *biases;
    bool f32;
} qconv;

static void qconv_run(const qconv *q) {
    const gg_type *tt = &gg_types[q->type];
    for (uint64_t b = 0; b < q->blocks; b++) {
        const uint8_t *blk = q->src + b * tt->bytes;
        uint16_t d16 = io_rd16(blk);
        float d = lx_f16_to_f32(d16), bias;
        uint16_t bias16;
        if (q->type == 2) {            /* Q4_0 */
            bias = -8.0f * d;
            bias16 = lx_f32_to_f16(bias);
        } else if (q->type == 3) {     /* Q4_1 */
            bias16 = io_rd16(blk + 2);
            bias = lx_f16_to_f32(bias16);
        } else {                       /* Q8_0 */
            bias = -128.0f * d;
            bias16 = lx_f32_to_f16(bias);
        }
        if (q->f32) {
            ((float *)q->scales)[b] = d;
            ((float *)q->biases)[b] = bias;
        } else {
            ((uint16_t *)q->scales)[b] = d16;
            ((uint16_t *)q->biases)[b] = bias16;
        }
        if (q->type == 8) {
            const uint8_t *qs = blk + 2;
            uint32_t *out = q->wq + b * 8;
            for (int w = 0; w < 8; w++)
                out[w] = (uint32_t)(qs[4 * w] ^ 0x80) | ((uint32_t)(qs[4 * w + 1] ^ 0x80) << 8) |
                         ((uint32_t)(qs[4 * w + 2] ^ 0x80) << 16) |
                         ((uint32_t)(qs[4 * w + 3] ^ 0x80) << 24);
        } else {
            const uint8_t *qs = blk + (q->type == 3 ? 4 : 2);
            uint32_t *out = q->wq + b * 4;
            /* element j < 16 is the low nibble of qs[j], element j + 16 its high nibble */
            for (int w = 0; w < 4; w++) {
                uint32_t word = 0;
                for (int k = 0; k < 8; k++) {
                    int j = 8 * w + k;
                    uint32_t v = j < 16 ? (qs[j] & 0x0fu) : (uint32_t)(qs[j - 16] >> 4);
                    word |= v << (4 * k);
                }
                out[w] = word;
            }
        }
    }
}

/* True if every bias of the tensor fits float16 (else scales and biases go float32). */
static bool biases_fit_f16(uint32_t type, const uint8_t *src, uint64_t blocks) {
    if (type == 3) return true;
    const gg_type *tt = &gg_types[type];
    float mul = type == 2 ? -8.0f : -128.0f;
    for (uint64_t b = 0; b < blocks; b++) {
        float d = lx_f16_to_f32(io_rd16(src + b * tt->bytes));
        if (isfinite(d) && !isfinite(lx_f16_to_f32(lx_f32_to_f16(mul * d)))) return false;
    }
    return true;
}

static bool add_quantized(lx_weights *w, const char *file, io_image *im, uint64_t data_start,
                          const gtensor *ti) {
    const gg_type *tt = &gg_types[ti->type];
    int ndim = (int)ti->ndim;
    int shape[LX_MAX_NDIM] = {0};
    for (int d = 0; d < ndim; d++) shape[d] = (int)ti->ne[ndim - 1 - d];
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) count *= ti->ne[d];
    uint64_t blocks = (uint64_t)count / 32;
    int wshape[LX_MAX_NDIM], sshape[LX_MAX_NDIM];
    memcpy(wshape, shape, sizeof shape);
    memcpy(sshape, shape, sizeof shape);
    if (ndim) {
        wshape[ndim - 1] = shape[ndim - 1] / 32 * tt->qbits;
        sshape[ndim - 1] = shape[ndim - 1] / 32;
    }
    const uint8_t *src = im->data + data_start + ti->offset;
    qconv q = {.type = ti->type, .src = src, .blocks = blocks};
    q.f32 = !biases_fit_f16(ti->type, src, blocks);
    size_t ss = q.f32 ? 4 : 2;
    lx_devices_init(); /* registers the CPU's memory */
    lx_buffer *bw = lx_buffer_alloc(LX_CPU, (size_t)blocks * (size_t)tt->qbits * 4);
    lx_buffer *bs = bw ? lx_buffer_alloc(LX_CPU, (size_t)blocks * ss) : NULL;
    lx_buffer *bb = bs ? lx_buffer_alloc(LX_CPU, (size_t)blocks * ss) : NULL;
    if (!bb) {
        if (bw) lx_buffer_release(bw);
        if (bs) lx_buffer_release(bs);
        return false;
    }
    q.wq = bw->ptr;
    q.scales = bs->ptr;
    q.biases = bb->ptr;
    qconv_run(&q);
    lx_dtype sd = q.f32 ? LX_FLOAT32 : LX_FLOAT16;
    char *sn = derived_name(ti->name, "scales"), *bn = derived_name(ti->name, "biases");
    bool ok = sn && bn;
    if (!ok) lx_set_error(LX_E_OOM, "lx_load: out of host memory");
    lx_node *nw = lx_node_new_ready("lx_load", LX_UINT32, wshape, ndim, bw);
    lx_node *ns = lx_node_new_ready("lx_load", sd, sshape, ndim, bs);
    lx_node *nb = lx_node_new_ready("lx_load", sd, sshape, ndim, bb);
    ok = ok && nw && ns && nb;
    if (ok) {
        ok = io_weights_add(w, file, ti->name, nw);
        nw = NULL;
        ok = ok && io_weights_add(w, file, sn, ns);
        ns = NULL;
        ok = ok && io_weights_add(w, file, bn, nb);
        nb = NULL;
    }
    if (nw) lx_node_release(nw);
    if (ns) lx_node_release(ns);
    if (nb) lx_node_release(nb);
    free(sn);
    free(bn);
    return ok;
}

static bool add_plain(lx_weights *w, const char *file, io_image *im, uint64_t data_start,
                      const gtensor *ti) {
    lx_dtype dt = (lx_dtype)gg_types[ti->type].lx;
    int ndim = (int)ti->ndim;
    int shape[LX_MAX_NDIM] = {0};
    for (int d = 0; d < ndim; d++) shape[d] = (int)ti->ne[ndim - 1 - d];
    size_t off = (size_t)(data_start + ti->offset), es = lx_dtype_size(dt);
    bool zc = ((uintptr_t)(im->data + off) % es) == 0 && (io_host_le() || es == 1);
    lx_buffer *b = io_image_buffer(im, off, (size_t)ti->nbytes, zc);
    if (!b) return false;
    if (!io_host_le() && es > 1) {
        uint8_t *p = b->ptr;
        for (size_t i = 0; i + es <= ti->nbytes; i += es)
            for (size_t a = 0, z = es - 1; a < z; a++, z--) {
                uint8_t t = p[i + a];
                p[i + a] = p[i + z];
                p[i + z] = t;
            }
    }
    lx_node *n = lx_node_new_ready("lx_load", dt, shape, ndim, b);
    return n && io_weights_add(w, file, ti->name, n);
}

/* with_tensors false: the header and metadata only (a tokenizer needs no weights, and quantized
 * tensors would otherwise be converted, reading the whole file) */
static lx_weights *gguf_parse(io_image *im, const char *file, bool with_tensors) {
    gparse g = {.file = file, .meta_budget = GGUF_MAX_META_TEXT,
                .alignment = GGUF_DEFAULT_ALIGNMENT};
    g.c = (io_cursor){.base = im->data, .size = im->size, .pos = 0, .ok = true};
    if (g.c.size > GGUF_MAX_HEADER_BYTES) g.c.size = GGUF_MAX_HEADER_BYTES; /* header cap */
    lx_weights *w = NULL;
    gtensor *ts = NULL;
    gtensor **by_off = NULL;
    char **names = NULL;
    uint64_t n_tensors = 0, n_kv = 0, n_names = 0;
    uint32_t magic, version;
    if (!io_cur_u32(&g.c, &magic) || magic != 0x46554747u) {
        gfail(&g, "not a GGUF file (no GGUF magic)");
        goto fail;
    }
    if (!io_cur_u32(&g.c, &version)) { truncated(&g, "the header"); goto fail; }
    if (version != 2 && version != 3) {
        if ((version & 0xffffu) == 0)
            lx_set_error(LX_E_UNSUPPORTED, "lx_load: %s: big-endian GGUF files are not supported", file);
        else if (version == 1 || version < 64)
            lx_set_error(LX_E_UNSUPPORTED, "lx_load: %s: GGUF version %u is not supported (2 and 3 "
                         "are)", file, version);
        else
            lx_set_error(LX_E_FORMAT, "lx_load: %s: bad GGUF version %u", file, version);
        goto fail;
    }
    if (!io_cur_u64(&g.c, &n_tensors) || !io_cur_u64(&g.c, &n_kv)) {
        truncated(&g, "the header");
        goto fail;
    }
    size_t left = g.c.size - g.c.pos;
    if (n_kv > GGUF_MAX_KV || n_kv > left / 13) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: metadata count %llu is more than the file could "
                     "hold", file, (unsigned long long)n_kv);
        goto fail;
    }
    if (n_tensors > GGUF_MAX_TENSORS || n_tensors > left / 24) {
        lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor count %llu is more than the file could "
                     "hold", file, (unsigned long long)n_tensors);
        goto fail;
    }
    w = io_weights_new(file);
    if (!w) goto fail;
    for (uint64_t i = 0; i < n_kv; i++)
        if (!read_kv(&g, w)) goto fail;
    if (!with_tensors) goto done;
    ts = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *ts);
    by_off = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *by_off);
    names = calloc((size_t)(n_tensors ? n_tensors : 1) * 3, sizeof *names);
    if (!ts || !by_off || !names) {
        lx_set_error(LX_E_OOM, "lx_load: %s: out of host memory", file);
        goto fail;
    }
    for (uint64_t i = 0; i < n_tensors; i++)
        if (!read_tensor_info(&g, &ts[i])) goto fail;
    uint64_t data_start = g.c.pos;
    if (data_start % g.alignment) data_start += g.alignment - data_start % g.alignment;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (!check_tensor(&g, &ts[i], data_start, im->size)) goto fail;
        by_off[i] = &ts[i];
    }
    /* no two tensors share bytes */
    qsort(by_off, (size_t)n_tensors, sizeof *by_off, cmp_offset);
    {
        uint64_t max_end = 0;
        const gtensor *owner = NULL;
        for (uint64_t i = 0; i < n_tensors; i++) {
            const gtensor *b = by_off[i];
            if (owner && b->offset < max_end) {
                lx_set_error(LX_E_FORMAT, "lx_load: %s: tensor '%.*s' overlaps tensor '%.*s'", file,
                             IO_Q(b->name), IO_Q(owner->name));
                goto fail;
            }
            if (b->offset + b->nbytes > max_end || !owner) {
                max_end = b->offset + b->nbytes;
                owner = b;
            }
        }
    }
    /* unique names, counting the scales/biases names that conversion adds */
    for (uint64_t i = 0; i < n_tensors; i++) {
        names[n_names++] = ts[i].name;
        if (gg_types[ts[i].type].qbits) {
            char *s = derived_name(ts[i].name, "scales"), *b = derived_name(ts[i].name, "biases");
            if (s) names[n_names++] = s;
            if (b) names[n_names++] = b;
            if (!s || !b) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); goto fail; }
        }
    }
    {
        char **sorted = malloc(sizeof *sorted * (size_t)(n_names ? n_names : 1));
        if (!sorted) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); goto fail; }
        memcpy(sorted, names, sizeof *sorted * (size_t)n_names);
        qsort(sorted, (size_t)n_names, sizeof *sorted, cmp_cstr);
        for (uint64_t i = 1; i < n_names; i++)
            if (strcmp(sorted[i - 1], sorted[i]) == 0) {
                lx_set_error(LX_E_FORMAT, "lx_load: %s: duplicate tensor name '%.*s'%s", file,
                             IO_Q(sorted[i]), " (quantized tensors also add <prefix>.scales and "
                             "<prefix>.biases)");
                free(sorted);
                goto fail;
            }
        free(sorted);
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        const gg_type *tt = &gg_types[ts[i].type];
        if (tt->lx < 0 && !tt->qbits) {
            lx_set_error(LX_E_UNSUPPORTED, "lx_load: %s: tensor '%.*s' has ggml type %s, which lx "
                         "does not support (supported: F32, F16, BF16, F64, I8-I64, Q4_0, Q4_1, "
                         "Q8_0)", file, IO_Q(ts[i].name), tt->name);
            goto fail;
        }
        if (tt->qbits) {
            size_t kl = strlen(ts[i].name) + sizeof ".quantization";
            char *key = malloc(kl);
            if (!key) { lx_set_error(LX_E_OOM, "lx_load: out of host memory"); goto fail; }
            snprintf(key, kl, "%s.quantization", ts[i].name);
            const char *v = tt->qbits == 4 ? "affine:32:4" : "affine:32:8";
            bool ok = io_meta_add(w, file, key, v, strlen(v), false);
            free(key);
            if (!ok) goto fail;
        }
    }
    /* valid: build */
    for (uint64_t i = 0; i < n_tensors; i++) {
        bool ok = gg_types[ts[i].type].qbits ? add_quantized(w, file, im, data_start, &ts[i])
                                            : add_plain(w, file, im, data_start, &ts[i]);
        if (!ok) goto fail;
    }
    goto done;
fail:
    lx_weights_free(w);
    w = NULL;
done:
    if (names) {
        /* the derived names are the entries that are not some ts[i].name */
        uint64_t ti = 0;
        for (uint64_t i = 0; i < n_names; i++) {
            if (ts && ti < n_tensors && names[i] == ts[ti].name) { ti++; continue; }
            free(names[i]);
        }
    }
    if (ts)
        for (uint64_t i = 0; i < n_tensors; i++) free(ts[i].name);
    free(ts);
    free(by_off);
    free(names);
    return w;
}

lx_weights *io_gguf_parse(io_image *im, const char *file) { return gguf_parse(im, file, true); }

lx_weights *io_gguf_parse_metadata(io_image *im, const char *file) {
    return gguf_parse(im, file, false);
}
