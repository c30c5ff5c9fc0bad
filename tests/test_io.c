/*
 * test_io.c -- safetensors, GGUF and npy: fixtures written by Hugging Face's library against an
 * independent parse, save/load round trips of every dtype, GGUF files built here byte by byte
 * (quantized blocks checked against a float64 dequantization of the same bytes), one test per
 * class of malformed file, and a mutation smoke test (random flips, truncations, splices).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/dtype.h"
#include "core/handle.h"
#include "core/node.h"
#include "io/io.h"
#include "test_util.h"

static char g_tmp[512];
static char g_fixtures[512];

/* ---- small helpers ---------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bbuf;

static void bb_put(bbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u8(bbuf *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u16(bbuf *b, uint16_t v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; bb_put(b, x, 2); }
static void bb_u32(bbuf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, x, 4);
}
static void bb_u64(bbuf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, x, 8);
}
static void bb_str(bbuf *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_pad(bbuf *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static char *tmp_path(const char *name) {
    static char buf[4][768];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 768, "%s/%s", g_tmp, name);
    return p;
}

static bool write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(d, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)sz + 1);
    *n = fread(p, 1, (size_t)sz, f);
    fclose(f);
    return p;
}

/* Loads bytes written to a file; returns the weights or NULL (error left set). */
static lx_weights *load_bytes(const char *name, const void *d, size_t n) {
    char *p = tmp_path(name);
    if (!write_file(p, d, n)) {
        fprintf(stderr, "cannot write %s\n", p);
        return NULL;
    }
    return lx_load(p);
}

/* Expects lx_load of the bytes to fail with `want`, with the file named in the message. */
static void expect_load_error(const char *what, const void *d, size_t n, lx_status want) {
    lx_weights *w = load_bytes("bad.bin", d, n);
    t_checks++;
    if (w || lx_error() != want) {
        t_failures++;
        fprintf(stderr, "%s: expected %s, got %s (%s)\n", what, lx_status_string(want),
                w ? "success" : lx_status_string(lx_error()), lx_error_message());
    } else if (!strstr(lx_error_message(), "bad.bin")) {
        t_failures++;
        fprintf(stderr, "%s: the message does not name the file: %s\n", what, lx_error_message());
    }
    lx_weights_free(w);
    lx_clear_error();
    lx_sweep();
}

static bool bytes_equal(lx_array a, const void *want, size_t n) {
    if (lx_nbytes(a) != n) return false;
    const void *p = lx_data(a);
    return p && (n == 0 || memcmp(p, want, n) == 0);
}

/* ---- safetensors fixtures ----------------------------------------------------------------- */

/* Compares every tensor of a file with an independent reading of its header and bytes. */
static void check_against_manual_parse(const char *path) {
    size_t n;
    uint8_t *file = read_file(path, &n);
    CHECK_MSG(file != NULL, "cannot read %s", path);
    if (!file) return;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)file[i] << (8 * i);
    char *json = strndup((char *)file + 8, hlen);
    cJSON *root = cJSON_Parse(json);
    CHECK(root != NULL);
    lx_weights *w = lx_load(path);
    CHECK_MSG(w != NULL, "%s: %s", path, lx_error_message());
    if (!w || !root) goto out;
    int count = 0;
    static const struct { const char *s; lx_dtype t; } dts[] = {
        {"F32", LX_FLOAT32}, {"BF16", LX_BFLOAT16}, {"F16", LX_FLOAT16}, {"I64", LX_INT64},
        {"I32", LX_INT32}, {"U8", LX_UINT8}, {"BOOL", LX_BOOL}};
    for (cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            for (cJSON *m = e->child; m; m = m->next) {
                const char *v = lx_weights_metadata(w, m->string);
                CHECK_MSG(v && strcmp(v, m->valuestring) == 0, "metadata %s", m->string);
            }
            continue;
        }
        count++;
        lx_array a = lx_weights_get(w, e->string);
        CHECK_MSG(!lx_is_null(a), "%s missing", e->string);
        if (lx_is_null(a)) { lx_clear_error(); continue; }
        const char *dt = cJSON_GetObjectItem(e, "dtype")->valuestring;
        lx_dtype want = LX_DTYPE_COUNT;
        for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++)
            if (strcmp(dts[k].s, dt) == 0) want = dts[k].t;
        CHECK_MSG(lx_dtype_of(a) == want, "%s dtype", e->string);
        cJSON *shape = cJSON_GetObjectItem(e, "shape");
        CHECK(lx_ndim(a) == cJSON_GetArraySize(shape));
        int d = 0;
        for (cJSON *s = shape->child; s; s = s->next, d++) CHECK(lx_dim(a, d) == s->valueint);
        cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
        size_t b = (size_t)off->child->valuedouble, en = (size_t)off->child->next->valuedouble;
        CHECK_MSG(bytes_equal(a, file + 8 + hlen + b, en - b), "%s bytes", e->string);
        /* zero-copy when aligned (safetensors pads the header to 8) */
        lx_node *node = lx_handle_peek(a);
        if (node) {
            bool aligned = ((8 + hlen + b) % lx_dtype_size(want)) == 0;
            if (aligned && !getenv("LX_NO_MMAP")) CHECK_MSG(node->buf->external, "%s not zero-copy", e->string);
            lx_node_release(node);
        }
    }
    CHECK(lx_weights_count(w) == count);
out:
    lx_weights_free(w);
    cJSON_Delete(root);
    free(json);
    free(file);
}

static void test_fixtures(void) {
    const char *models[] = {"tiny-llama-f32", "tiny-qwen3-bf16"};
    const char *files[] = {"model.safetensors", "reference.safetensors"};
    for (int m = 0; m < 2; m++)
        for (int f = 0; f < 2; f++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s/%s", g_fixtures, models[m], files[f]);
            check_against_manual_parse(p);
        }
    /* a directory loads its model.safetensors */
    char dir[1024], file[1100];
    snprintf(dir, sizeof dir, "%s/tiny-llama-f32", g_fixtures);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    lx_weights *a = lx_load(dir), *b = lx_load(file);
    CHECK(a && b && lx_weights_count(a) == lx_weights_count(b));
    lx_weights_free(a);
    lx_weights_free(b);
    /* the same through read(2) instead of mmap */
    setenv("LX_NO_MMAP", "1", 1);
    check_against_manual_parse(file);
    unsetenv("LX_NO_MMAP");
}

/* ---- round trips ------------------------------------------------------------------------ */

static void fill_random(void *p, size_t n, lx_dtype t) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)t_next();
    if (t == LX_BOOL)
        for (size_t i = 0; i < n; i++) b[i] &= 1;
}

static void test_safetensors_roundtrip(void) {
    const char *names[LX_DTYPE_COUNT + 2];
    lx_array arrays[LX_DTYPE_COUNT + 2];
    void *data[LX_DTYPE_COUNT + 2];
    char namebuf[LX_DTYPE_COUNT + 2][32];
    int n = 0;
    for (int t = 0; t < LX_DTYPE_COUNT; t++) {
        int shape[3] = {2, 3, t + 1};
        size_t nb = 6 * (size_t)(t + 1) * lx_dtype_size((lx_dtype)t);
        data[n] = malloc(nb);
        fill_random(data[n], nb, (lx_dtype)t);
        arrays[n] = lx_array_new(data[n], shape, 3, (lx_dtype)t);
        snprintf(namebuf[n], 32, "t.%s", lx_dtype_name((lx_dtype)t));
        names[n] = namebuf[n];
        n++;
    }
    float s = 3.5f;
    data[n] = malloc(4);
    memcpy(data[n], &s, 4);
    arrays[n] = lx_scalar_f32(s);
    names[n] = "scalar \xc3\xa9"; /* UTF-8 name */
    n++;
    data[n] = NULL;
    arrays[n] = lx_array_new(NULL, (int[]){0, 4}, 2, LX_FLOAT32);
    names[n] = "empty";
    n++;
    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(lx_save_safetensors(path, names, arrays, n));
    lx_weights *w = lx_load(path);
    CHECK_MSG(w != NULL, "%s", lx_error_message());
    if (w) {
        CHECK(lx_weights_count(w) == n);
        CHECK(lx_weights_metadata(w, "format") && strcmp(lx_weights_metadata(w, "format"), "pt") == 0);
        for (int i = 0; i < n; i++) {
            lx_array a = lx_weights_get(w, names[i]);
            CHECK_MSG(!lx_is_null(a), "%s", names[i]);
            if (lx_is_null(a)) continue;
            CHECK(lx_dtype_of(a) == lx_dtype_of(arrays[i]));
            CHECK(lx_ndim(a) == lx_ndim(arrays[i]));
            for (int d = 0; d < lx_ndim(a); d++) CHECK(lx_dim(a, d) == lx_dim(arrays[i], d));
            CHECK_MSG(bytes_equal(a, data[i], lx_nbytes(arrays[i])), "%s values", names[i]);
            /* the saver aligns every tensor: all zero-copy */
            lx_node *node = lx_handle_peek(a);
            if (node && lx_nbytes(a)) CHECK_MSG(node->buf->external, "%s not zero-copy", names[i]);
            if (node) lx_node_release(node);
        }
        lx_weights_free(w);
    }
    /* no temporary file is left behind */
    DIR *d = opendir(g_tmp);
    struct dirent *e;
    int tmps = 0;
    while (d && (e = readdir(d))) tmps += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    CHECK(tmps == 0);
    /* saving over an existing file replaces it */
    CHECK_OK(lx_save_safetensors(path, names, arrays, 1));
    w = lx_load(path);
    CHECK(w && lx_weights_count(w) == 1);
    lx_weights_free(w);
    /* bad arguments */
    const char *dup[2] = {"x", "x"};
    lx_array two[2] = {arrays[0], arrays[1]};
    CHECK(lx_save_safetensors(path, dup, two, 2) == LX_E_ARG);
    lx_clear_error();
    const char *meta[1] = {"__metadata__"};
    CHECK(lx_save_safetensors(path, meta, two, 1) == LX_E_ARG);
    lx_clear_error();
    const char *badutf[1] = {"\xff"};
    CHECK(lx_save_safetensors(path, badutf, two, 1) == LX_E_ARG);
    lx_clear_error();
    lx_array nul[1] = {LX_NULL_ARRAY};
    CHECK(lx_save_safetensors(path, names, nul, 1) != LX_OK);
    lx_clear_error();
    CHECK(lx_save_safetensors("/nonexistent-dir/x.safetensors", names, arrays, 1) == LX_E_IO);
    lx_clear_error();
    for (int i = 0; i < n; i++) free(data[i]);
}

static void test_npy_roundtrip(void) {
    for (int t = 0; t < LX_DTYPE_COUNT; t++) {
        int shape[2] = {3, t + 2};
        size_t nb = 3 * (size_t)(t + 2) * lx_dtype_size((lx_dtype)t);
        void *d = malloc(nb);
        fill_random(d, nb, (lx_dtype)t);
        lx_array a = lx_array_new(d, shape, 2, (lx_dtype)t);
        const char *path = tmp_path("rt.npy");
        lx_status st = lx_save_npy(path, a);
        if (t == LX_BFLOAT16) {
            CHECK(st == LX_E_UNSUPPORTED);
            lx_clear_error();
        } else {
            CHECK_OK(st);
            lx_array b = lx_load_npy(path);
            CHECK_MSG(!lx_is_null(b), "%s: %s", lx_dtype_name((lx_dtype)t), lx_error_message());
            if (!lx_is_null(b)) {
                CHECK(lx_dtype_of(b) == (lx_dtype)t && lx_ndim(b) == 2 && lx_dim(b, 0) == 3 &&
                      lx_dim(b, 1) == t + 2);
                CHECK_MSG(bytes_equal(b, d, nb), "%s values", lx_dtype_name((lx_dtype)t));
            }
            lx_clear_error();
        }
        free(d);
    }
    /* 0-d and 1-d and empty */
    lx_array s = lx_scalar_f32(2.25f);
    CHECK_OK(lx_save_npy(tmp_path("s.npy"), s));
    lx_array s2 = lx_load_npy(tmp_path("s.npy"));
    CHECK(!lx_is_null(s2) && lx_ndim(s2) == 0 && lx_item_f32(s2) == 2.25f);
    int32_t want[5] = {0, 1, 2, 3, 4};
    lx_array v = lx_array_i32(want, (int[]){5}, 1);
    CHECK_OK(lx_save_npy(tmp_path("v.npy"), v));
    lx_array v2 = lx_load_npy(tmp_path("v.npy"));
    CHECK(!lx_is_null(v2) && lx_ndim(v2) == 1 && bytes_equal(v2, want, sizeof want));
    size_t n;
    uint8_t *f = read_file(tmp_path("v.npy"), &n);
    CHECK(f && n == 128 + 20 && strstr((char *)f + 10, "'shape': (5,)"));
    free(f);
    lx_array e = lx_array_new(NULL, (int[]){2, 0}, 2, LX_FLOAT32);
    CHECK_OK(lx_save_npy(tmp_path("e.npy"), e));
    lx_array e2 = lx_load_npy(tmp_path("e.npy"));
    CHECK(!lx_is_null(e2) && lx_size(e2) == 0 && lx_dim(e2, 0) == 2);
    lx_clear_error();
}

/* ---- malformed safetensors ---------------------------------------------------------------- */

/* A safetensors file from a header and a data region. */
static uint8_t *st_file(const char *header, size_t data_len, size_t *n) {
    size_t h = strlen(header);
    *n = 8 + h + data_len;
    uint8_t *p = calloc(1, *n);
    put64(p, h);
    memcpy(p + 8, header, h);
    for (size_t i = 0; i < data_len; i++) p[8 + h + i] = (uint8_t)i;
    return p;
}

static void st_case(const char *what, const char *header, size_t data_len, lx_status want) {
    size_t n;
    uint8_t *p = st_file(header, data_len, &n);
    expect_load_error(what, p, n, want);
    free(p);
}

static void test_safetensors_malformed(void) {
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
    size_t n;
    uint8_t *p = st_file(ok, 11, &n);
    lx_weights *w = load_bytes("good.safetensors", p, n);
    CHECK_MSG(w && lx_weights_count(w) == 2, "%s", lx_error_message());
    lx_weights_free(w);
    /* truncated anywhere */
    for (size_t k = 0; k < n; k++) expect_load_error("truncated", p, k, LX_E_FORMAT);
    /* header size past the file, and above the cap */
    put64(p, n);
    expect_load_error("header size past the end", p, n, LX_E_FORMAT);
    put64(p, (uint64_t)200 << 20);
    expect_load_error("header size above the cap", p, n, LX_E_FORMAT);
    put64(p, UINT64_MAX);
    expect_load_error("header size 2^64-1", p, n, LX_E_FORMAT);
    free(p);
    /* an empty file */
    expect_load_error("empty file", "", 0, LX_E_FORMAT);

    st_case("not JSON", "{\"a\":", 0, LX_E_FORMAT);
    st_case("not an object", "[1, 2, 3]   ", 0, LX_E_FORMAT);
    st_case("garbage after JSON", "{} x", 0, LX_E_FORMAT);
    st_case("invalid UTF-8 name",
            "{\"\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, LX_E_FORMAT);
    st_case("overlong UTF-8",
            "{\"\xc0\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, LX_E_FORMAT);
    st_case("offsets out of range", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
            2, LX_E_FORMAT);
    st_case("offsets reversed", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,0]}}", 2,
            LX_E_FORMAT);
    st_case("offsets huge",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551615,"
            "18446744073709551616]}}", 1, LX_E_FORMAT);
    st_case("offsets negative", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}",
            1, LX_E_FORMAT);
    st_case("offsets fractional", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0.5,1]}}",
            1, LX_E_FORMAT);
    st_case("overlap", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
            "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, LX_E_FORMAT);
    st_case("gap", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
            "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}", 6, LX_E_FORMAT);
    st_case("not starting at 0", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
            4, LX_E_FORMAT);
    st_case("trailing data", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 5,
            LX_E_FORMAT);
    st_case("size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
            LX_E_FORMAT);
    st_case("unknown dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
            LX_E_FORMAT);
    st_case("F8 unsupported", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}",
            4, LX_E_UNSUPPORTED);
    st_case("C64 unsupported", "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
            LX_E_UNSUPPORTED);
    st_case("duplicate names", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
            "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, LX_E_FORMAT);
    st_case("names equal after a NUL escape",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
            "\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, LX_E_FORMAT);
    st_case("too many dims",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
            LX_E_FORMAT);
    st_case("negative dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
            LX_E_FORMAT);
    st_case("dim too large", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296],\"data_offsets\":[0,0]}}",
            0, LX_E_FORMAT);
    st_case("shape overflows",
            "{\"a\":{\"dtype\":\"F64\",\"shape\":[2147483647,2147483647,2147483647,2147483647],"
            "\"data_offsets\":[0,8]}}", 8, LX_E_FORMAT);
    st_case("dim not a number", "{\"a\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}",
            1, LX_E_FORMAT);
    st_case("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, LX_E_FORMAT);
    st_case("tensor not an object", "{\"a\":3}", 0, LX_E_FORMAT);
    st_case("metadata not an object", "{\"__metadata__\":3}", 0, LX_E_FORMAT);
    st_case("metadata value not a string", "{\"__metadata__\":{\"k\":3}}", 0, LX_E_FORMAT);
    st_case("metadata key twice", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, LX_E_FORMAT);
    st_case("metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, LX_E_FORMAT);
    /* a NUL byte inside the header (st_file measures with strlen: patch it in) */
    p = st_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}  ", 1, &n);
    p[n - 3] = 0;
    expect_load_error("NUL in header", p, n, LX_E_FORMAT);
    free(p);
    /* deep nesting must not exhaust the stack */
    char deep[20010];
    deep[0] = '{';
    memcpy(deep + 1, "\"a\":", 4);
    for (int i = 0; i < 10000; i++) deep[5 + i] = '[';
    deep[10005] = '}';
    deep[10006] = '\0';
    st_case("deep nesting", deep, 0, LX_E_FORMAT);

    /* valid edge cases: empty header, zero-size tensor, padded header, unaligned copy */
    p = st_file("{}", 0, &n);
    w = load_bytes("empty.safetensors", p, n);
    CHECK(w && lx_weights_count(w) == 0);
    lx_weights_free(w);
    free(p);
    p = st_file("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                "\"b\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}   ", 3, &n);
    p[n - 1] = 7; /* a bool byte that is not 0/1: normalised to 1 */
    w = load_bytes("edge.safetensors", p, n);
    CHECK_MSG(w && lx_weights_count(w) == 2, "%s", lx_error_message());
    if (w) {
        CHECK(lx_size(lx_weights_get(w, "z")) == 0);
        const uint8_t *bv = lx_data(lx_weights_get(w, "b"));
        CHECK(bv && bv[0] == 0 && bv[1] == 1 && bv[2] == 1);
    }
    lx_weights_free(w);
    free(p);
    /* a header of odd length: F32 data at an unaligned address is copied */
    p = st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &n);
    CHECK((8 + strlen("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}")) % 4 != 0);
    w = load_bytes("unaligned.safetensors", p, n);
    if (w) {
        lx_array a = lx_weights_get(w, "a");
        CHECK(bytes_equal(a, p + n - 4, 4));
        lx_node *node = lx_handle_peek(a);
        CHECK(node && !node->buf->external);
        if (node) lx_node_release(node);
    } else {
        CHECK_MSG(false, "%s", lx_error_message());
    }
    lx_weights_free(w);
    free(p);
    lx_clear_error();
}

/* ---- GGUF built here --------------------------------------------------------------------- */

enum { GV_U8 = 0, GV_I8, GV_U16, GV_I16, GV_U32, GV_I32, GV_F32, GV_BOOL, GV_STRING, GV_ARRAY,
       GV_U64, GV_I64, GV_F64 };

typedef struct {
    const char *name;
    int ndim;
    uint64_t ne[4];
    uint32_t type;
    size_t nbytes;
    uint8_t *data;
} gt;

typedef struct {
    size_t version, n_tensors, n_kv, kv_k1, kv_k2, align_val;
    size_t t_name[8], t_ndim[8], t_ne0[8], t_type[8], t_off[8];
    size_t data_start;
    size_t data_off[8];
} gpos;

static uint16_t f16(float x) { return lx_f32_to_f16(x); }

/* Random quantized blocks of a type: d small and positive or negative. */
static void random_blocks(uint32_t type, uint8_t *p, size_t blocks) {
    size_t bs = type == 2 ? 18 : type == 3 ? 20 : 34;
    for (size_t b = 0; b < blocks; b++) {
        uint8_t *q = p + b * bs;
        for (size_t i = 0; i < bs; i++) q[i] = (uint8_t)t_next();
        uint16_t d = f16((float)t_uniform(-0.1, 0.1));
        q[0] = (uint8_t)d;
        q[1] = (uint8_t)(d >> 8);
        if (type == 3) {
            uint16_t m = f16((float)t_uniform(-1, 1));
            q[2] = (uint8_t)m;
            q[3] = (uint8_t)(m >> 8);
        }
    }
}

static uint8_t *gguf_build(const gt *ts, int nt, uint32_t align, bool with_align_kv, size_t *n,
                           gpos *pos) {
    bbuf b = {0};
    memset(pos, 0, sizeof *pos);
    bb_put(&b, "GGUF", 4);
    pos->version = b.n;
    bb_u32(&b, 3);
    pos->n_tensors = b.n;
    bb_u64(&b, (uint64_t)nt);
    pos->n_kv = b.n;
    bb_u64(&b, with_align_kv ? 12 : 11);
    bb_str(&b, "general.architecture"); bb_u32(&b, GV_STRING); bb_str(&b, "llama");
    if (with_align_kv) {
        bb_str(&b, "general.alignment"); bb_u32(&b, GV_U32);
        pos->align_val = b.n;
        bb_u32(&b, align);
    }
    pos->kv_k1 = b.n;
    bb_str(&b, "test.k1"); bb_u32(&b, GV_F32); float f = 0.5f; uint32_t fu; memcpy(&fu, &f, 4); bb_u32(&b, fu);
    pos->kv_k2 = b.n;
    bb_str(&b, "test.k2"); bb_u32(&b, GV_BOOL); bb_u8(&b, 1);
    bb_str(&b, "test.i64"); bb_u32(&b, GV_I64); bb_u64(&b, (uint64_t)-5);
    bb_str(&b, "test.u64"); bb_u32(&b, GV_U64); bb_u64(&b, UINT64_MAX);
    bb_str(&b, "test.f64"); bb_u32(&b, GV_F64); double dd = 0.1; uint64_t du; memcpy(&du, &dd, 8); bb_u64(&b, du);
    bb_str(&b, "test.i8"); bb_u32(&b, GV_I8); bb_u8(&b, 0xfe);
    bb_str(&b, "test.u16"); bb_u32(&b, GV_U16); bb_u16(&b, 65535);
    bb_str(&b, "tokenizer.ggml.tokens"); bb_u32(&b, GV_ARRAY); bb_u32(&b, GV_STRING); bb_u64(&b, 3);
    bb_str(&b, "a"); bb_str(&b, "bb"); bb_str(&b, "c\xc3\xa9");
    bb_str(&b, "test.ints"); bb_u32(&b, GV_ARRAY); bb_u32(&b, GV_I32); bb_u64(&b, 3);
    bb_u32(&b, 1); bb_u32(&b, (uint32_t)-2); bb_u32(&b, 3);
    bb_str(&b, "test.nested"); bb_u32(&b, GV_ARRAY); bb_u32(&b, GV_ARRAY); bb_u64(&b, 2);
    bb_u32(&b, GV_U8); bb_u64(&b, 2); bb_u8(&b, 1); bb_u8(&b, 2);
    bb_u32(&b, GV_STRING); bb_u64(&b, 1); bb_str(&b, "x");
    size_t off = 0;
    size_t offs[8];
    for (int i = 0; i < nt; i++) {
        pos->t_name[i] = b.n;
        bb_str(&b, ts[i].name);
        pos->t_ndim[i] = b.n;
        bb_u32(&b, (uint32_t)ts[i].ndim);
        pos->t_ne0[i] = b.n;
        for (int d = 0; d < ts[i].ndim; d++) bb_u64(&b, ts[i].ne[d]);
        pos->t_type[i] = b.n;
        bb_u32(&b, ts[i].type);
        pos->t_off[i] = b.n;
        bb_u64(&b, off);
        offs[i] = off;
        off += ts[i].nbytes;
        off = (off + align - 1) / align * align;
    }
    bb_pad(&b, align);
    pos->data_start = b.n;
    for (int i = 0; i < nt; i++) {
        while (b.n < pos->data_start + offs[i]) bb_u8(&b, 0);
        pos->data_off[i] = b.n;
        bb_put(&b, ts[i].data, ts[i].nbytes);
    }
    *n = b.n;
    return b.p;
}

typedef struct {
    gt t[6];
    int n;
} gset;

static void gset_init(gset *s) {
    static uint8_t a_data[12 * 4], h_data[5 * 2], bf_data[4 * 2];
    static uint8_t q4[2 * 8 * 18], q8[3 * 34], q41[1 * 20];
    static bool done;
    if (!done) {
        for (int i = 0; i < 12; i++) { float v = (float)i * 0.25f - 1; memcpy(a_data + 4 * i, &v, 4); }
        for (int i = 0; i < 5; i++) { uint16_t h = f16((float)i); memcpy(h_data + 2 * i, &h, 2); }
        for (int i = 0; i < 4; i++) { uint16_t h = lx_f32_to_bf16((float)i + 0.5f); memcpy(bf_data + 2 * i, &h, 2); }
        random_blocks(2, q4, 16);
        random_blocks(8, q8, 3);
        random_blocks(3, q41, 1);
        done = true;
    }
    s->n = 6;
    s->t[0] = (gt){"a.weight", 2, {3, 4}, 0, sizeof a_data, a_data};
    s->t[1] = (gt){"b.weight", 2, {256, 2}, 2, sizeof q4, q4};
    s->t[2] = (gt){"h", 1, {5}, 1, sizeof h_data, h_data};
    s->t[3] = (gt){"q8.weight", 2, {32, 3}, 8, sizeof q8, q8};
    s->t[4] = (gt){"q41", 1, {32}, 3, sizeof q41, q41};
    s->t[5] = (gt){"bf", 2, {2, 2}, 30, sizeof bf_data, bf_data};
}

/* Dequantizes a converted tensor from lx's arrays in float64. */
static double *lx_dequant(lx_weights *w, const char *name, const char *prefix, int bits, size_t *n) {
    char sn[64], bn[64];
    snprintf(sn, sizeof sn, "%s.scales", prefix);
    snprintf(bn, sizeof bn, "%s.biases", prefix);
    lx_array wq = lx_weights_get(w, name), s = lx_weights_get(w, sn), b = lx_weights_get(w, bn);
    if (lx_is_null(wq) || lx_is_null(s) || lx_is_null(b)) return NULL;
    size_t groups = lx_size(s);
    *n = groups * 32;
    double *out = malloc(sizeof *out * *n);
    const uint32_t *q = lx_data(wq);
    for (size_t g = 0; g < groups; g++) {
        double sc, bi;
        if (lx_dtype_of(s) == LX_FLOAT16) {
            sc = lx_f16_to_f32(((const uint16_t *)lx_data(s))[g]);
            bi = lx_f16_to_f32(((const uint16_t *)lx_data(b))[g]);
        } else {
            sc = ((const float *)lx_data(s))[g];
            bi = ((const float *)lx_data(b))[g];
        }
        for (int j = 0; j < 32; j++) {
            size_t e = g * 32 + (size_t)j;
            uint32_t word = q[e * (size_t)bits / 32];
            uint32_t v = (word >> ((e % (32 / (size_t)bits)) * (size_t)bits)) & ((1u << bits) - 1);
            out[e] = sc * v + bi;
        }
    }
    return out;
}

/* The same from the GGUF blocks directly. */
static double *ref_dequant(uint32_t type, const uint8_t *p, size_t blocks) {
    double *out = malloc(sizeof *out * blocks * 32);
    size_t bs = type == 2 ? 18 : type == 3 ? 20 : 34;
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *q = p + b * bs;
        double d = lx_f16_to_f32((uint16_t)(q[0] | (q[1] << 8)));
        for (int j = 0; j < 32; j++) {
            double v;
            if (type == 8) v = d * (int8_t)q[2 + j];
            else if (type == 2) v = d * ((j < 16 ? (q[2 + j] & 15) : (q[2 + j - 16] >> 4)) - 8);
            else {
                double m = lx_f16_to_f32((uint16_t)(q[2] | (q[3] << 8)));
                v = d * (j < 16 ? (q[4 + j] & 15) : (q[4 + j - 16] >> 4)) + m;
            }
            out[b * 32 + (size_t)j] = v;
        }
    }
    return out;
}

static void check_quant(lx_weights *w, const char *name, const char *prefix, uint32_t type,
                        const uint8_t *blocks, size_t nblocks, int bits) {
    size_t n = 0;
    double *got = lx_dequant(w, name, prefix, bits, &n);
    CHECK_MSG(got && n == nblocks * 32, "%s: %s", name, lx_error_message());
    if (!got) { lx_clear_error(); return; }
    double *want = ref_dequant(type, blocks, nblocks);
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]);
    CHECK_MSG(bad == 0, "%s: %d of %zu values differ", name, bad, n);
    free(got);
    free(want);
}

static void test_gguf_valid(void) {
    gset s;
    gset_init(&s);
    size_t n;
    gpos pos;
    uint8_t *p = gguf_build(s.t, s.n, 32, true, &n, &pos);
    lx_weights *w = load_bytes("good.gguf", p, n);
    CHECK_MSG(w != NULL, "%s", lx_error_message());
    if (!w) { free(p); return; }
    CHECK(lx_weights_count(w) == 6 + 3 * 2);
    const char *v;
    CHECK((v = lx_weights_metadata(w, "general.architecture")) && strcmp(v, "llama") == 0);
    CHECK((v = lx_weights_metadata(w, "general.alignment")) && strcmp(v, "32") == 0);
    CHECK((v = lx_weights_metadata(w, "test.k1")) && strcmp(v, "0.5") == 0);
    CHECK((v = lx_weights_metadata(w, "test.k2")) && strcmp(v, "true") == 0);
    CHECK((v = lx_weights_metadata(w, "test.i64")) && strcmp(v, "-5") == 0);
    CHECK((v = lx_weights_metadata(w, "test.u64")) && strcmp(v, "18446744073709551615") == 0);
    CHECK((v = lx_weights_metadata(w, "test.f64")) && strcmp(v, "0.1") == 0);
    CHECK((v = lx_weights_metadata(w, "test.i8")) && strcmp(v, "-2") == 0);
    CHECK((v = lx_weights_metadata(w, "test.u16")) && strcmp(v, "65535") == 0);
    CHECK(lx_weights_metadata(w, "tokenizer.ggml.tokens") == NULL);
    CHECK(lx_weights_metadata_array_len(w, "tokenizer.ggml.tokens") == 3);
    CHECK(lx_weights_metadata_array_len(w, "general.architecture") == -1);
    CHECK(lx_weights_metadata_array_len(w, "nope") == -1);
    CHECK((v = lx_weights_metadata_array_item(w, "tokenizer.ggml.tokens", 2)) && strcmp(v, "c\xc3\xa9") == 0);
    CHECK((v = lx_weights_metadata_array_item(w, "tokenizer.ggml.tokens", 0)) && strcmp(v, "a") == 0);
    CHECK(lx_weights_metadata_array_item(w, "tokenizer.ggml.tokens", 3) == NULL);
    CHECK(lx_weights_metadata_array_item(w, "tokenizer.ggml.tokens", -1) == NULL);
    CHECK((v = lx_weights_metadata_array_item(w, "test.ints", 1)) && strcmp(v, "-2") == 0);
    CHECK((v = lx_weights_metadata_array_item(w, "test.nested", 0)) && strcmp(v, "[1, 2]") == 0);
    CHECK((v = lx_weights_metadata_array_item(w, "test.nested", 1)) && strcmp(v, "[x]") == 0);
    CHECK((v = lx_weights_metadata(w, "b.weight.quantization")) && strcmp(v, "affine:32:4") == 0);
    CHECK((v = lx_weights_metadata(w, "q8.weight.quantization")) && strcmp(v, "affine:32:8") == 0);
    CHECK((v = lx_weights_metadata(w, "q41.quantization")) && strcmp(v, "affine:32:4") == 0);
    /* plain tensors: reversed shapes, same bytes, zero-copy */
    lx_array a = lx_weights_get(w, "a.weight");
    CHECK(lx_dtype_of(a) == LX_FLOAT32 && lx_ndim(a) == 2 && lx_dim(a, 0) == 4 && lx_dim(a, 1) == 3);
    CHECK(bytes_equal(a, s.t[0].data, s.t[0].nbytes));
    lx_node *node = lx_handle_peek(a);
    CHECK(node && node->buf->external);
    if (node) lx_node_release(node);
    lx_array h = lx_weights_get(w, "h");
    CHECK(lx_dtype_of(h) == LX_FLOAT16 && lx_ndim(h) == 1 && bytes_equal(h, s.t[2].data, s.t[2].nbytes));
    lx_array bf = lx_weights_get(w, "bf");
    CHECK(lx_dtype_of(bf) == LX_BFLOAT16 && bytes_equal(bf, s.t[5].data, s.t[5].nbytes));
    /* quantized: shapes and values */
    lx_array q = lx_weights_get(w, "b.weight"), qs = lx_weights_get(w, "b.scales");
    CHECK(lx_dtype_of(q) == LX_UINT32 && lx_dim(q, 0) == 2 && lx_dim(q, 1) == 256 / 8);
    CHECK(lx_dtype_of(qs) == LX_FLOAT16 && lx_dim(qs, 0) == 2 && lx_dim(qs, 1) == 8);
    check_quant(w, "b.weight", "b", 2, s.t[1].data, 16, 4);
    lx_array q8 = lx_weights_get(w, "q8.weight");
    CHECK(lx_dtype_of(q8) == LX_UINT32 && lx_dim(q8, 0) == 3 && lx_dim(q8, 1) == 8);
    check_quant(w, "q8.weight", "q8", 8, s.t[3].data, 3, 8);
    check_quant(w, "q41", "q41", 3, s.t[4].data, 1, 4);
    lx_weights_free(w);
    free(p);

    /* default alignment (no general.alignment) and a large one */
    p = gguf_build(s.t, s.n, 32, false, &n, &pos);
    w = load_bytes("noalign.gguf", p, n);
    CHECK_MSG(w && lx_weights_count(w) == 12, "%s", lx_error_message());
    lx_weights_free(w);
    free(p);
    p = gguf_build(s.t, s.n, 256, true, &n, &pos);
    w = load_bytes("align256.gguf", p, n);
    CHECK_MSG(w && lx_weights_count(w) == 12, "%s", lx_error_message());
    lx_weights_free(w);
    free(p);
    /* alignment 1: unaligned F32 data is copied */
    gt odd[2] = {{"u8", 1, {3}, 24, 3, (uint8_t *)"abc"}, s.t[0]};
    p = gguf_build(odd, 2, 1, true, &n, &pos);
    w = load_bytes("align1.gguf", p, n);
    CHECK_MSG(w != NULL, "%s", lx_error_message());
    if (w) CHECK(bytes_equal(lx_weights_get(w, "a.weight"), s.t[0].data, s.t[0].nbytes));
    lx_weights_free(w);
    free(p);
    /* version 2 is accepted */
    p = gguf_build(s.t, s.n, 32, true, &n, &pos);
    put32(p + pos.version, 2);
    w = load_bytes("v2.gguf", p, n);
    CHECK_MSG(w != NULL, "%s", lx_error_message());
    lx_weights_free(w);
    free(p);
    /* Q8_0 with a scale whose bias overflows float16: scales/biases become float32 */
    static uint8_t big[34];
    random_blocks(8, big, 1);
    uint16_t d = f16(1000.0f);
    big[0] = (uint8_t)d;
    big[1] = (uint8_t)(d >> 8);
    gt bt[1] = {{"big.weight", 1, {32}, 8, 34, big}};
    p = gguf_build(bt, 1, 32, true, &n, &pos);
    w = load_bytes("big.gguf", p, n);
    CHECK_MSG(w != NULL, "%s", lx_error_message());
    if (w) {
        CHECK(lx_dtype_of(lx_weights_get(w, "big.scales")) == LX_FLOAT32);
        check_quant(w, "big.weight", "big", 8, big, 1, 8);
    }
    lx_weights_free(w);
    free(p);
    lx_clear_error();
}

static void gcase(const char *what, void (*patch)(uint8_t *, gpos *, size_t *), lx_status want) {
    gset s;
    gset_init(&s);
    size_t n;
    gpos pos;
    uint8_t *p = gguf_build(s.t, s.n, 32, true, &n, &pos);
    patch(p, &pos, &n);
    expect_load_error(what, p, n, want);
    free(p);
}

#define PATCH(fn, body) static void fn(uint8_t *p, gpos *pos, size_t *n) { (void)p; (void)pos; (void)n; body; }
PATCH(p_magic, p[0] = 'X')
PATCH(p_v1, put32(p + pos->version, 1))
PATCH(p_v9, put32(p + pos->version, 9))
PATCH(p_vbig, put32(p + pos->version, 0x03000000))
PATCH(p_vgarbage, put32(p + pos->version, 0x7fffffff))
PATCH(p_ntensors, put64(p + pos->n_tensors, (uint64_t)1 << 40))
PATCH(p_ntensors_more, put64(p + pos->n_tensors, 7))
PATCH(p_nkv, put64(p + pos->n_kv, UINT64_MAX))
PATCH(p_nkv_more, put64(p + pos->n_kv, 13))
PATCH(p_keylen, put64(p + pos->kv_k1, (uint64_t)1 << 63))
PATCH(p_keylen2, put64(p + pos->kv_k1, 1000000))
PATCH(p_vtype, put32(p + pos->kv_k1 + 8 + 7, 99))
PATCH(p_dupkey, p[pos->kv_k2 + 8 + 6] = '1')
PATCH(p_align3, put32(p + pos->align_val, 3))
PATCH(p_align0, put32(p + pos->align_val, 0))
PATCH(p_aligntype, put32(p + pos->align_val - 4, GV_I32))
PATCH(p_ndim, put32(p + pos->t_ndim[0], 9))
PATCH(p_dimbig, put64(p + pos->t_ne0[0], (uint64_t)1 << 40))
PATCH(p_dimbig2, put64(p + pos->t_ne0[0], (uint64_t)1 << 31))
PATCH(p_q4k, put32(p + pos->t_type[1], 12))
PATCH(p_typeunknown, put32(p + pos->t_type[0], 200))
PATCH(p_typeremoved, put32(p + pos->t_type[0], 4))
PATCH(p_offunaligned, put64(p + pos->t_off[1], 1))
PATCH(p_offhuge, put64(p + pos->t_off[1], UINT64_MAX - 31))
PATCH(p_offpast, put64(p + pos->t_off[5], 4096))
PATCH(p_overlap, put64(p + pos->t_off[1], 0))
PATCH(p_dupname, p[pos->t_name[1] + 8] = 'a')
PATCH(p_utf8, p[pos->t_name[1] + 8] = 0xff)
PATCH(p_nul, p[pos->t_name[1] + 8] = 0)
PATCH(p_namelen, put64(p + pos->t_name[0], UINT64_MAX))
PATCH(p_ne0, put64(p + pos->t_ne0[1], 255))
PATCH(p_trunc_data, *n -= 1)

static void test_gguf_malformed(void) {
    gcase("bad magic", p_magic, LX_E_FORMAT);
    gcase("version 1", p_v1, LX_E_UNSUPPORTED);
    gcase("version 9", p_v9, LX_E_UNSUPPORTED);
    gcase("big-endian", p_vbig, LX_E_UNSUPPORTED);
    gcase("garbage version", p_vgarbage, LX_E_FORMAT);
    gcase("tensor count huge", p_ntensors, LX_E_FORMAT);
    gcase("tensor count too big by one", p_ntensors_more, LX_E_FORMAT);
    gcase("kv count huge", p_nkv, LX_E_FORMAT);
    gcase("kv count too big by one", p_nkv_more, LX_E_FORMAT);
    gcase("key length huge", p_keylen, LX_E_FORMAT);
    gcase("key length past the end", p_keylen2, LX_E_FORMAT);
    gcase("unknown value type", p_vtype, LX_E_FORMAT);
    gcase("duplicate key", p_dupkey, LX_E_FORMAT);
    gcase("alignment 3", p_align3, LX_E_FORMAT);
    gcase("alignment 0", p_align0, LX_E_FORMAT);
    gcase("alignment not u32", p_aligntype, LX_E_FORMAT);
    gcase("9 dims", p_ndim, LX_E_FORMAT);
    gcase("dim 2^40", p_dimbig, LX_E_FORMAT);
    gcase("dim 2^31", p_dimbig2, LX_E_FORMAT);
    gcase("Q4_K", p_q4k, LX_E_UNSUPPORTED);
    gcase("unknown type", p_typeunknown, LX_E_FORMAT);
    gcase("removed type", p_typeremoved, LX_E_UNSUPPORTED);
    gcase("unaligned offset", p_offunaligned, LX_E_FORMAT);
    gcase("huge offset", p_offhuge, LX_E_FORMAT);
    gcase("offset past the end", p_offpast, LX_E_FORMAT);
    gcase("overlapping tensors", p_overlap, LX_E_FORMAT);
    gcase("duplicate tensor names", p_dupname, LX_E_FORMAT);
    gcase("invalid UTF-8 name", p_utf8, LX_E_FORMAT);
    gcase("NUL in name", p_nul, LX_E_FORMAT);
    gcase("name length huge", p_namelen, LX_E_FORMAT);
    gcase("Q4_0 row not a multiple of 32", p_ne0, LX_E_FORMAT);
    gcase("data truncated by one byte", p_trunc_data, LX_E_FORMAT);
    /* every truncation of a valid file */
    gset s;
    gset_init(&s);
    size_t n;
    gpos pos;
    uint8_t *p = gguf_build(s.t, s.n, 32, true, &n, &pos);
    for (size_t k = 0; k < n; k += (k < pos.data_start ? 1 : 7)) {
        io_image *im = io_image_from_memory(p, k);
        lx_weights *w = io_gguf_parse(im, "trunc.gguf");
        CHECK_MSG(w == NULL && lx_error() == LX_E_FORMAT, "truncated at %zu: %s", k,
                  w ? "loaded" : lx_status_string(lx_error()));
        lx_weights_free(w);
        lx_clear_error();
        io_image_release(im);
    }
    free(p);
    /* a generated name that collides with a tensor: "x.weight" (Q4_0) + "x.scales" */
    static uint8_t q4[18], f[4];
    random_blocks(2, q4, 1);
    gt c[2] = {{"x.weight", 1, {32}, 2, 18, q4}, {"x.scales", 1, {1}, 0, 4, f}};
    p = gguf_build(c, 2, 32, true, &n, &pos);
    expect_load_error("generated name collides", p, n, LX_E_FORMAT);
    free(p);
    /* nesting deeper than the cap */
    bbuf b = {0};
    bb_put(&b, "GGUF", 4); bb_u32(&b, 3); bb_u64(&b, 0); bb_u64(&b, 1);
    bb_str(&b, "deep"); bb_u32(&b, GV_ARRAY);
    for (int i = 0; i < 10; i++) { bb_u32(&b, GV_ARRAY); bb_u64(&b, 1); }
    bb_u32(&b, GV_U8); bb_u64(&b, 1); bb_u8(&b, 1);
    expect_load_error("nesting", b.p, b.n, LX_E_FORMAT);
    /* a huge array count */
    b.n = 0;
    bb_put(&b, "GGUF", 4); bb_u32(&b, 3); bb_u64(&b, 0); bb_u64(&b, 1);
    bb_str(&b, "arr"); bb_u32(&b, GV_ARRAY); bb_u32(&b, GV_U64); bb_u64(&b, (uint64_t)1 << 61);
    expect_load_error("array count", b.p, b.n, LX_E_FORMAT);
    /* an array element type out of range */
    b.n = 0;
    bb_put(&b, "GGUF", 4); bb_u32(&b, 3); bb_u64(&b, 0); bb_u64(&b, 1);
    bb_str(&b, "arr"); bb_u32(&b, GV_ARRAY); bb_u32(&b, 13); bb_u64(&b, 0);
    expect_load_error("array element type", b.p, b.n, LX_E_FORMAT);
    /* a file with no tensors and no KVs is valid */
    b.n = 0;
    bb_put(&b, "GGUF", 4); bb_u32(&b, 3); bb_u64(&b, 0); bb_u64(&b, 0);
    lx_weights *w = load_bytes("empty.gguf", b.p, b.n);
    CHECK_MSG(w && lx_weights_count(w) == 0, "%s", lx_error_message());
    lx_weights_free(w);
    free(b.p);
    lx_clear_error();
}

/* ---- npy ------------------------------------------------------------------------------- */

static uint8_t *npy_file(int major, const char *dict, size_t data_len, size_t *n) {
    size_t d = strlen(dict), hs = major == 1 ? 10 : 12;
    *n = hs + d + data_len;
    uint8_t *p = calloc(1, *n);
    memcpy(p, "\x93NUMPY", 6);
    p[6] = (uint8_t)major;
    p[7] = 0;
    if (major == 1) { p[8] = (uint8_t)d; p[9] = (uint8_t)(d >> 8); }
    else put32(p + 8, (uint32_t)d);
    memcpy(p + hs, dict, d);
    return p;
}

static void npy_case(const char *what, int major, const char *dict, size_t data_len, lx_status want) {
    size_t n;
    uint8_t *p = npy_file(major, dict, data_len, &n);
    const char *path = tmp_path("bad.npy");
    write_file(path, p, n);
    lx_array a = lx_load_npy(path);
    t_checks++;
    if (want == LX_OK ? lx_is_null(a) : (!lx_is_null(a) || lx_error() != want)) {
        t_failures++;
        fprintf(stderr, "npy %s: expected %s, got %s (%s)\n", what, lx_status_string(want),
                lx_is_null(a) ? lx_status_string(lx_error()) : "success", lx_error_message());
    }
    lx_clear_error();
    free(p);
}

static void test_npy_malformed(void) {
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
    size_t n;
    uint8_t *p = npy_file(1, good, 24, &n);
    write_file(tmp_path("good.npy"), p, n);
    lx_array a = lx_load_npy(tmp_path("good.npy"));
    CHECK_MSG(!lx_is_null(a) && lx_dim(a, 1) == 3, "%s", lx_error_message());
    for (size_t k = 0; k < n; k++) {
        write_file(tmp_path("t.npy"), p, k);
        CHECK(lx_is_null(lx_load_npy(tmp_path("t.npy"))) && lx_error() == LX_E_FORMAT);
        lx_clear_error();
    }
    free(p);
    npy_case("v2 good", 2, good, 24, LX_OK);
    npy_case("v3 good", 3, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}", 24, LX_OK);
    npy_case("py2 longs", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2L, 3L), }", 48, LX_OK);
    npy_case("version 4", 4, good, 24, LX_E_UNSUPPORTED);
    npy_case("not a dict", 1, "['descr']", 0, LX_E_FORMAT);
    npy_case("missing key", 1, "{'descr': '<f4', 'shape': (2, 3), }", 24, LX_E_FORMAT);
    npy_case("extra key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, LX_E_FORMAT);
    npy_case("key twice", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8, LX_E_FORMAT);
    npy_case("big-endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, LX_E_UNSUPPORTED);
    npy_case("complex", 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", 24, LX_E_UNSUPPORTED);
    npy_case("unicode", 1, "{'descr': '<U4', 'fortran_order': False, 'shape': (3,), }", 48, LX_E_UNSUPPORTED);
    npy_case("structured", 1, "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (3,), }", 24, LX_E_UNSUPPORTED);
    npy_case("malformed descr", 1, "{'descr': '<<', 'fortran_order': False, 'shape': (3,), }", 24, LX_E_FORMAT);
    npy_case("fortran 2-d", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, LX_E_UNSUPPORTED);
    npy_case("fortran 1-d is C order", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (6,), }", 24, LX_OK);
    npy_case("data too short", 1, good, 23, LX_E_FORMAT);
    npy_case("data too long", 1, good, 25, LX_E_FORMAT);
    npy_case("negative dim", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", 24, LX_E_FORMAT);
    npy_case("dim too large", 1, "{'descr': '<u1', 'fortran_order': False, 'shape': (4294967296,), }", 0, LX_E_FORMAT);
    npy_case("integer overflow", 1, "{'descr': '<u1', 'fortran_order': False, 'shape': (99999999999999999999999,), }", 0, LX_E_FORMAT);
    npy_case("size overflow", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647), }", 0, LX_E_FORMAT);
    npy_case("9 dims", 1, "{'descr': '<u1', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 1, LX_E_FORMAT);
    npy_case("unterminated", 1, "{'descr': '<f4", 0, LX_E_FORMAT);
    npy_case("garbage after dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", 8, LX_E_FORMAT);
    npy_case("fortran_order not bool", 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", 8, LX_E_FORMAT);
    p = npy_file(1, good, 24, &n);
    p[8] = 0xff;
    p[9] = 0xff;
    write_file(tmp_path("hl.npy"), p, n);
    CHECK(lx_is_null(lx_load_npy(tmp_path("hl.npy"))) && lx_error() == LX_E_FORMAT);
    lx_clear_error();
    free(p);
    CHECK(lx_is_null(lx_load_npy(tmp_path("does-not-exist.npy"))) && lx_error() == LX_E_IO);
    lx_clear_error();
    CHECK(lx_is_null(lx_load_npy(g_tmp)) && lx_error() == LX_E_IO);
    lx_clear_error();
}

/* ---- sharded models -------------------------------------------------------------------- */

static void test_sharded(void) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/sharded", g_tmp);
    mkdir(dir, 0755);
    float x[4] = {1, 2, 3, 4};
    int32_t y[2] = {7, 8};
    lx_array ax = lx_array_f32(x, (int[]){2, 2}, 2), ay = lx_array_i32(y, (int[]){2}, 1);
    char p1[800], p2[800], idx[800];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    const char *nx[1] = {"x"}, *ny[1] = {"y"};
    CHECK_OK(lx_save_safetensors(p1, nx, &ax, 1));
    CHECK_OK(lx_save_safetensors(p2, ny, &ay, 1));
    const char *index = "{\"metadata\": {\"total_size\": 24, \"note\": \"hi\"}, \"weight_map\": "
                        "{\"x\": \"model-00001-of-00002.safetensors\", "
                        "\"y\": \"model-00002-of-00002.safetensors\"}}";
    write_file(idx, index, strlen(index));
    lx_weights *w = lx_load(dir);
    CHECK_MSG(w && lx_weights_count(w) == 2, "%s", lx_error_message());
    if (w) {
        CHECK(bytes_equal(lx_weights_get(w, "x"), x, sizeof x));
        CHECK(bytes_equal(lx_weights_get(w, "y"), y, sizeof y));
        const char *v = lx_weights_metadata(w, "total_size");
        CHECK(v && strcmp(v, "24") == 0);
        v = lx_weights_metadata(w, "note");
        CHECK(v && strcmp(v, "hi") == 0);
    }
    lx_weights_free(w);
    w = lx_load(idx);
    CHECK(w && lx_weights_count(w) == 2);
    lx_weights_free(w);
    /* the index names a tensor its shard lacks */
    const char *bad = "{\"weight_map\": {\"x\": \"model-00001-of-00002.safetensors\", "
                      "\"z\": \"model-00001-of-00002.safetensors\"}}";
    write_file(idx, bad, strlen(bad));
    CHECK(lx_load(dir) == NULL && lx_error() == LX_E_FORMAT);
    lx_clear_error();
    /* a shard path that leaves the directory */
    bad = "{\"weight_map\": {\"x\": \"../model-00001-of-00002.safetensors\"}}";
    write_file(idx, bad, strlen(bad));
    CHECK(lx_load(dir) == NULL && lx_error() == LX_E_FORMAT);
    lx_clear_error();
    bad = "{\"weight_map\": {\"x\": \"/etc/passwd\"}}";
    write_file(idx, bad, strlen(bad));
    CHECK(lx_load(dir) == NULL && lx_error() == LX_E_FORMAT);
    lx_clear_error();
    /* a missing shard */
    bad = "{\"weight_map\": {\"x\": \"nope.safetensors\"}}";
    write_file(idx, bad, strlen(bad));
    CHECK(lx_load(dir) == NULL && lx_error() == LX_E_IO);
    lx_clear_error();
    /* not an index */
    write_file(idx, "[1]", 3);
    CHECK(lx_load(dir) == NULL && lx_error() == LX_E_FORMAT);
    lx_clear_error();
    /* the same tensor in two shards (listed once) */
    CHECK_OK(lx_save_safetensors(p2, nx, &ax, 1));
    const char *twice = "{\"weight_map\": {\"x\": \"model-00001-of-00002.safetensors\", "
                        "\"x2\": \"model-00002-of-00002.safetensors\"}}";
    write_file(idx, twice, strlen(twice));
    CHECK(lx_load(dir) == NULL && lx_error() == LX_E_FORMAT);
    lx_clear_error();
    /* without an index: every *.safetensors of the directory */
    unlink(idx);
    CHECK_OK(lx_save_safetensors(p2, ny, &ay, 1));
    w = lx_load(dir);
    CHECK_MSG(w && lx_weights_count(w) == 2, "%s", lx_error_message());
    lx_weights_free(w);
    lx_clear_error();
}

/* ---- lifetimes and API edges ------------------------------------------------------------ */

static void test_lifetime(void) {
    /* the image lives while an array uses it, and goes with the weights' arrays */
    size_t n;
    uint8_t *p = st_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, &n);
    io_image *im = io_image_from_memory(p, n);
    lx_weights *w = io_safetensors_parse(im, "mem");
    CHECK(w != NULL);
    CHECK(atomic_load(&im->refs) == 2);
    lx_array a = lx_weights_get(w, "a");
    CHECK(lx_kept(a));
    lx_sweep();
    CHECK(lx_valid(a)); /* kept by the weights */
    lx_weights_free(w);
    CHECK(lx_valid(a) && !lx_kept(a)); /* released at the next sweep, not before */
    lx_sweep();
    CHECK(!lx_valid(a));
    CHECK(atomic_load(&im->refs) == 1);
    /* an array kept by the caller outlives the weights object */
    w = io_safetensors_parse(im, "mem");
    a = lx_weights_get(w, "a");
    lx_array b = lx_reshape(a, (int[]){2, 4}, 2); /* a view of the mapped bytes */
    lx_weights_free(w);
    lx_keep(b);
    lx_sweep();
    CHECK(!lx_valid(a));
    const uint8_t *bv = lx_data(b);
    CHECK(bv && bv[3] == 3 && bv[7] == 7);
    lx_free(b);
    lx_sweep();
    CHECK(atomic_load(&im->refs) == 1);
    io_image_release(im);
    free(p);
    lx_clear_error();

    /* API edges */
    CHECK(lx_load(NULL) == NULL && lx_error() == LX_E_ARG);
    lx_clear_error();
    CHECK(lx_load("/nonexistent/file.safetensors") == NULL && lx_error() == LX_E_IO);
    CHECK(strstr(lx_error_message(), "/nonexistent/file.safetensors") != NULL);
    lx_clear_error();
    char empty_dir[700];
    snprintf(empty_dir, sizeof empty_dir, "%s/emptydir", g_tmp);
    mkdir(empty_dir, 0755);
    CHECK(lx_load(empty_dir) == NULL && lx_error() == LX_E_IO);
    lx_clear_error();
    p = npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4, &n);
    CHECK(load_bytes("x.npy", p, n) == NULL && lx_error() == LX_E_FORMAT);
    lx_clear_error();
    free(p);
    p = st_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, &n);
    w = load_bytes("api.safetensors", p, n);
    free(p);
    CHECK(w != NULL);
    if (!w) return;
    CHECK(lx_is_null(lx_weights_get(w, "nope")) && lx_error() == LX_E_ARG);
    CHECK(strstr(lx_error_message(), "nope") != NULL);
    lx_clear_error();
    CHECK(lx_is_null(lx_weights_get(w, NULL)) && lx_error() == LX_E_ARG);
    lx_clear_error();
    CHECK(lx_is_null(lx_weights_get(NULL, "a")) && lx_error() == LX_E_ARG);
    lx_clear_error();
    CHECK(lx_weights_name(w, 0) && strcmp(lx_weights_name(w, 0), "a") == 0);
    CHECK(lx_weights_name(w, 1) == NULL && lx_error() == LX_E_ARG);
    lx_clear_error();
    CHECK(lx_weights_count(NULL) == 0 && lx_error() == LX_E_ARG);
    lx_clear_error();
    CHECK(lx_weights_metadata(w, "nope") == NULL && lx_weights_metadata(NULL, "x") == NULL);
    CHECK(lx_weights_metadata_array_item(NULL, "x", 0) == NULL);
    lx_weights_free(w);
    lx_weights_free(NULL);
    CHECK(lx_save_npy(NULL, LX_NULL_ARRAY) == LX_E_ARG);
    lx_clear_error();
    CHECK(lx_save_npy(tmp_path("n.npy"), LX_NULL_ARRAY) != LX_OK);
    lx_clear_error();
}

/* ---- mutation smoke --------------------------------------------------------------------- */

/* Reads every byte of every array and every metadata string of w. */
static unsigned touch_all(lx_weights *w) {
    unsigned sum = 0;
    for (int i = 0; i < lx_weights_count(w); i++) {
        lx_node *node = lx_handle_peek(lx_weights_get(w, lx_weights_name(w, i)));
        if (!node) continue;
        const uint8_t *b = lx_node_ptr(node);
        size_t nb = lx_node_nbytes(node);
        for (size_t k = 0; k < nb; k++) sum += b[k];
        lx_node_release(node);
    }
    for (int i = 0; i < w->n_meta; i++) {
        const char *v = w->meta[i].value;
        if (v) sum += (unsigned)strlen(v);
        for (int k = 0; k < w->meta[i].n_items; k++)
            sum += (unsigned)strlen(lx_weights_metadata_array_item(w, w->meta[i].key, k));
    }
    return sum;
}

static void mutate(uint8_t *d, size_t *n, size_t cap) {
    int kind = t_int(0, 5);
    if (*n == 0) return;
    switch (kind) {
    case 0: /* truncate */
        *n = (size_t)t_int(0, (int)*n - 1);
        break;
    case 1: case 2: { /* flip a few bytes */
        int k = t_int(1, 8);
        for (int i = 0; i < k; i++) d[t_next() % *n] = (uint8_t)t_next();
        break;
    }
    case 3: { /* an interesting value at a random place */
        static const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x80, 0x01, 0x20};
        size_t at = t_next() % *n;
        size_t len = (size_t)t_int(1, 8);
        for (size_t i = 0; i < len && at + i < *n; i++) d[at + i] = vals[t_next() % sizeof vals];
        break;
    }
    case 4: { /* duplicate a chunk (grows the file) */
        size_t at = t_next() % *n, len = (size_t)t_int(1, 64);
        if (at + len > *n) len = *n - at;
        if (*n + len > cap) break;
        memmove(d + at + len, d + at, *n - at);
        *n += len;
        break;
    }
    default: { /* bit flip */
        d[t_next() % *n] ^= (uint8_t)(1u << (t_next() % 8));
        break;
    }
    }
}

static void smoke(const char *what, const uint8_t *valid, size_t n, int kind, int iters) {
    size_t cap = n + 4096;
    uint8_t *d = malloc(cap);
    int ok = 0, failed = 0, inconsistent = 0;
    for (int it = 0; it < iters; it++) {
        memcpy(d, valid, n);
        size_t m = n;
        int rounds = t_int(1, 3);
        for (int r = 0; r < rounds; r++) mutate(d, &m, cap);
        io_image *im = io_image_from_memory(d, m);
        if (kind == 2) {
            lx_array a = io_npy_parse(im, "mut.npy");
            if (lx_is_null(a)) { failed++; inconsistent += lx_error() == LX_OK; }
            else {
                ok++;
                lx_node *node = lx_handle_peek(a);
                unsigned s = 0;
                for (size_t k = 0; node && k < lx_node_nbytes(node); k++) s += ((uint8_t *)lx_node_ptr(node))[k];
                if (node) lx_node_release(node);
                (void)s;
            }
        } else {
            lx_weights *w = kind == 0 ? io_safetensors_parse(im, "mut.safetensors")
                                      : io_gguf_parse(im, "mut.gguf");
            if (!w) { failed++; inconsistent += lx_error() == LX_OK; }
            else { ok++; (void)touch_all(w); }
            lx_weights_free(w);
        }
        io_image_release(im);
        lx_clear_error();
        lx_sweep();
    }
    printf("  mutation smoke %s: %d loaded, %d refused\n", what, ok, failed);
    CHECK(inconsistent == 0);
    free(d);
}

static void test_mutation_smoke(void) {
    int iters = getenv("LX_IO_SMOKE_ITERS") ? atoi(getenv("LX_IO_SMOKE_ITERS")) : 3000;
    t_seed(12345);
    size_t n;
    uint8_t *p = st_file("{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                         "\"b\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[16,19]},"
                         "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[19,27]}}", 27, &n);
    smoke("safetensors", p, n, 0, iters);
    free(p);
    gset s;
    gset_init(&s);
    gpos pos;
    p = gguf_build(s.t, s.n, 32, true, &n, &pos);
    smoke("gguf", p, n, 1, iters);
    free(p);
    p = npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24, &n);
    smoke("npy", p, n, 2, iters);
    free(p);
    lx_clear_error();
}

int main(void) {
    const char *fx = getenv("LX_FIXTURES");
    snprintf(g_fixtures, sizeof g_fixtures, "%s", fx ? fx : "../shared/fixtures");
    const char *base = getenv("LX_TEST_TMP");
    snprintf(g_tmp, sizeof g_tmp, "%s/lx_test_io_XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp %s: %s\n", g_tmp, strerror(errno));
        return 1;
    }
    RUN_TEST(test_fixtures);
    RUN_TEST(test_safetensors_roundtrip);
    RUN_TEST(test_npy_roundtrip);
    RUN_TEST(test_safetensors_malformed);
    RUN_TEST(test_gguf_valid);
    RUN_TEST(test_gguf_malformed);
    RUN_TEST(test_npy_malformed);
    RUN_TEST(test_sharded);
    RUN_TEST(test_lifetime);
    RUN_TEST(test_mutation_smoke);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_finish();
}
