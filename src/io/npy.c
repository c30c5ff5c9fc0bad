/*
 * npy.c -- numpy's .npy files: lx_load_npy and lx_save_npy.
 *
 * Layout: "\x93NUMPY", major and minor version bytes, the header length (u16 for version 1,
 * u32 for versions 2 and 3), then the header: a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and a
 * newline; then the data. The header is read by a small parser of exactly that literal
 * subset (strings, True/False, tuples of integers, lists for structured dtypes, which are
 * refused), with the keys numpy requires and no others.
 *
 * Accepted: little-endian (or byte-order free) b1, u1, i1, u2, i2, u4, i4, u8, i8, f2, f4, f8,
 * in C order (Fortran order is accepted only where it is the same layout: at most one
 * dimension larger than 1). Big-endian data, Fortran layouts, and other dtypes (complex,
 * strings, objects, structured) are refused with LX_E_UNSUPPORTED. The data must be exactly
 * the size the shape says. Loaded arrays view the file image without a copy when aligned.
 *
 * Saving writes version 1.0 (version 2.0 if the header would not fit). bfloat16 has no npy
 * type code: lx_save_npy refuses it with LX_E_UNSUPPORTED rather than silently changing the
 * dtype (convert with lx_astype(a, LX_FLOAT32) first).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "core/dtype.h"
#include "core/handle.h"
#include "core/node.h"
#include "io/io.h"

#define NPY_MAX_HEADER ((size_t)1 << 20)

typedef struct {
    const char *code; /* kind + size */
    lx_dtype dtype;
} npy_code;

static const npy_code npy_codes[] = {
    {"b1", LX_BOOL},    {"u1", LX_UINT8},   {"i1", LX_INT8},    {"u2", LX_UINT16},
    {"i2", LX_INT16},   {"u4", LX_UINT32},  {"i4", LX_INT32},   {"u8", LX_UINT64},
    {"i8", LX_INT64},   {"f2", LX_FLOAT16}, {"f4", LX_FLOAT32}, {"f8", LX_FLOAT64},
};

/* ---- the header's dict literal ---------------------------------------------------------- */

typedef struct {
    const char *file;
    const char *s;
    size_t n, pos;
    /* results */
    char descr[64];
    bool descr_is_list, has_descr, has_fortran, has_shape, fortran;
    int ndim;
    int64_t shape[LX_MAX_NDIM];
} npy_parse;

static void skip_ws(npy_parse *p) {
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                             p->s[p->pos] == '\r'))
        p->pos++;
}

static bool bad(npy_parse *p, const char *what) {
    lx_set_error(LX_E_FORMAT, "lx_load_npy: %s: malformed header: %s (at byte %zu)", p->file, what,
                 p->pos);
    return false;
}

/* A quoted string without escapes; copies up to cap-1 bytes into out (if given). */
static bool parse_str(npy_parse *p, char *out, size_t cap, size_t *len) {
    if (p->pos >= p->n || (p->s[p->pos] != '\'' && p->s[p->pos] != '"'))
        return bad(p, "expected a string");
    char q = p->s[p->pos++];
    size_t start = p->pos;
    while (p->pos < p->n && p->s[p->pos] != q) {
        if (p->s[p->pos] == '\\') return bad(p, "escapes in strings are not supported");
        p->pos++;
    }
    if (p->pos >= p->n) return bad(p, "unterminated string");
    size_t k = p->pos - start;
    p->pos++;
    if (len) *len = k;
    if (out) {
        if (k >= cap) return bad(p, "string too long");
        memcpy(out, p->s + start, k);
        out[k] = '\0';
    }
    return true;
}

static bool match_word(npy_parse *p, const char *w) {
    size_t k = strlen(w);
    if (p->n - p->pos >= k && memcmp(p->s + p->pos, w, k) == 0) {
        p->pos += k;
        return true;
    }
    return false;
}

/* A non-negative integer (Python 2 files may add an 'L'). */
static bool parse_int(npy_parse *p, int64_t *v) {
    if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return bad(p, "expected a non-negative integer");
    int64_t x = 0;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, p->s[p->pos] - '0', &x))
            return bad(p, "integer overflows");
        p->pos++;
    }
    if (p->pos < p->n && p->s[p->pos] == 'L') p->pos++;
    *v = x;
    return true;
}

/* Skips any value (for structured descr lists); depth-capped. */
static bool skip_value(npy_parse *p, int depth) {
    if (depth > 16) return bad(p, "nested too deeply");
    skip_ws(p);
    if (p->pos >= p->n) return bad(p, "unexpected end");
    char c = p->s[p->pos];
    if (c == '\'' || c == '"') return parse_str(p, NULL, 0, NULL);
    if (c == '(' || c == '[') {
        char close = c == '(' ? ')' : ']';
        p->pos++;
        for (;;) {
            skip_ws(p);
            if (p->pos < p->n && p->s[p->pos] == close) { p->pos++; return true; }
            if (!skip_value(p, depth + 1)) return false;
            skip_ws(p);
            if (p->pos < p->n && p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->pos < p->n && p->s[p->pos] == close) { p->pos++; return true; }
            return bad(p, "expected ',' or a closing bracket");
        }
    }
    if (match_word(p, "True") || match_word(p, "False") || match_word(p, "None")) return true;
    int64_t v;
    if (c == '-') p->pos++;
    return parse_int(p, &v);
}

static bool parse_shape(npy_parse *p) {
    if (p->pos >= p->n || p->s[p->pos] != '(') return bad(p, "'shape' is not a tuple");
    p->pos++;
    p->ndim = 0;
    for (;;) {
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ')') { p->pos++; return true; }
        int64_t v;
        if (!parse_int(p, &v)) return false;
        if (p->ndim >= LX_MAX_NDIM) {
            lx_set_error(LX_E_FORMAT, "lx_load_npy: %s: the shape has more than %d dimensions",
                         p->file, LX_MAX_NDIM);
            return false;
        }
        if (v > INT32_MAX) {
            lx_set_error(LX_E_FORMAT, "lx_load_npy: %s: dimension %lld is larger than 2^31 - 1",
                         p->file, (long long)v);
            return false;
        }
        p->shape[p->ndim++] = v;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->n && p->s[p->pos] == ')') { p->pos++; return true; }
        return bad(p, "expected ',' or ')' in 'shape'");
    }
}

static bool parse_dict(npy_parse *p) {
    skip_ws(p);
    if (p->pos >= p->n || p->s[p->pos] != '{') return bad(p, "the header is not a dict");
    p->pos++;
    for (;;) {
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == '}') { p->pos++; break; }
        char key[32];
        if (!parse_str(p, key, sizeof key, NULL)) return false;
        skip_ws(p);
        if (p->pos >= p->n || p->s[p->pos] != ':') return bad(p, "expected ':'");
        p->pos++;
        skip_ws(p);
        if (strcmp(key, "descr") == 0) {
            if (p->has_descr) return bad(p, "'descr' appears twice");
            p->has_descr = true;
            if (p->pos < p->n && p->s[p->pos] == '[') {
                p->descr_is_list = true;
                if (!skip_value(p, 0)) return false;
            } else {
                size_t len;
                if (!parse_str(p, NULL, 0, &len)) return false;
                size_t k = len < sizeof p->descr ? len : sizeof p->descr - 1;
                memcpy(p->descr, p->s + p->pos - 1 - len, k);
                p->descr[k] = '\0';
                if (len >= sizeof p->descr) p->descr[0] = '?'; /* too long: unknown */
            }
        } else if (strcmp(key, "fortran_order") == 0) {
            if (p->has_fortran) return bad(p, "'fortran_order' appears twice");
            p->has_fortran = true;
            if (match_word(p, "True")) p->fortran = true;
            else if (match_word(p, "False")) p->fortran = false;
            else return bad(p, "'fortran_order' is not True or False");
        } else if (strcmp(key, "shape") == 0) {
            if (p->has_shape) return bad(p, "'shape' appears twice");
            p->has_shape = true;
            if (!parse_shape(p)) return false;
        } else {
            return bad(p, "unexpected key (numpy allows descr, fortran_order and shape)");
        }
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->n && p->s[p->pos] == '}') { p->pos++; break; }
        return bad(p, "expected ',' or '}'");
    }
    skip_ws(p);
    if (p->pos != p->n) return bad(p, "data after the dict");
    if (!p->has_descr || !p->has_fortran || !p->has_shape)
        return bad(p, "'descr', 'fortran_order' or 'shape' is missing");
    return true;
}

/* descr -> dtype; false with LX_E_UNSUPPORTED (a real numpy type lx lacks, or big-endian) or
 * LX_E_FORMAT (not a dtype string). */
static bool descr_dtype(npy_parse *p, lx_dtype *out) {
    if (p->descr_is_list) {
        lx_set_error(LX_E_UNSUPPORTED, "lx_load_npy: %s: structured dtypes are not supported",
                     p->file);
        return false;
    }
    const char *d = p->descr;
    char order = '|';
    if (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=') order = *d++;
    bool looks = d[0] && ((d[0] >= 'a' && d[0] <= 'z') || (d[0] >= 'A' && d[0] <= 'Z'));
    for (const char *c = d + 1; looks && *c; c++)
        looks = (*c >= '0' && *c <= '9') || *c == '[' || *c == ']' || (*c >= 'a' && *c <= 'z');
    for (size_t i = 0; i < sizeof npy_codes / sizeof npy_codes[0]; i++) {
        if (strcmp(d, npy_codes[i].code) != 0) continue;
        size_t es = lx_dtype_size(npy_codes[i].dtype);
        bool big = order == '>' || (order == '=' && !io_host_le());
        if (es > 1 && big) {
            lx_set_error(LX_E_UNSUPPORTED, "lx_load_npy: %s: big-endian data ('%s') is not "
                         "supported", p->file, p->descr);
            return false;
        }
        *out = npy_codes[i].dtype;
        return true;
    }
    lx_set_error(looks ? LX_E_UNSUPPORTED : LX_E_FORMAT, "lx_load_npy: %s: %s dtype '%.40s'",
                 p->file, looks ? "unsupported" : "malformed", p->descr);
    return false;
}

lx_array io_npy_parse(io_image *im, const char *file) {
    const uint8_t *b = im->data;
    size_t size = im->size;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
        lx_set_error(LX_E_FORMAT, "lx_load_npy: %s: not an npy file (no \\x93NUMPY magic)", file);
        return LX_NULL_ARRAY;
    }
    uint8_t major = b[6];
    size_t hstart, hlen;
    if (major == 1) {
        hlen = io_rd16(b + 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) {
            lx_set_error(LX_E_FORMAT, "lx_load_npy: %s: the file ends inside the header", file);
            return LX_NULL_ARRAY;
        }
        hlen = io_rd32(b + 8);
        hstart = 12;
    } else {
        lx_set_error(LX_E_UNSUPPORTED, "lx_load_npy: %s: npy version %u.%u is not supported", file,
                     major, b[7]);
        return LX_NULL_ARRAY;
    }
    if (hlen > NPY_MAX_HEADER || hlen > size - hstart) {
        lx_set_error(LX_E_FORMAT, "lx_load_npy: %s: header length %zu runs past the end of the file "
                     "or the %zu-byte cap", file, hlen, NPY_MAX_HEADER);
        return LX_NULL_ARRAY;
    }
    npy_parse p = {.file = file, .s = (const char *)b + hstart, .n = hlen};
    if (!parse_dict(&p)) return LX_NULL_ARRAY;
    lx_dtype dt;
    if (!descr_dtype(&p, &dt)) return LX_NULL_ARRAY;
    size_t nbytes;
    int64_t count;
    if (!io_shape_bytes(p.shape, p.ndim, lx_dtype_size(dt), &nbytes, &count)) {
        lx_set_error(LX_E_FORMAT, "lx_load_npy: %s: the shape's size overflows", file);
        return LX_NULL_ARRAY;
    }
    if (p.fortran) {
        int big = 0;
        for (int i = 0; i < p.ndim; i++) big += p.shape[i] > 1;
        if (big > 1) {
            lx_set_error(LX_E_UNSUPPORTED, "lx_load_npy: %s: Fortran-order arrays are not "
                         "supported (save with np.ascontiguousarray)", file);
            return LX_NULL_ARRAY;
        }
    }
    size_t off = hstart + hlen;
    if (size - off != nbytes) {
        lx_set_error(LX_E_FORMAT, "lx_load_npy: %s: the data is %zu bytes but the shape and dtype "
                     "need %zu", file, size - off, nbytes);
        return LX_NULL_ARRAY;
    }
    size_t es = lx_dtype_size(dt);
    lx_buffer *buf;
    if (dt == LX_BOOL) {
        bool clean = true;
        for (size_t i = 0; i < nbytes && clean; i++) clean = b[off + i] <= 1;
        if (clean) {
            buf = io_image_buffer(im, off, nbytes, true);
        } else {
            lx_devices_init(); /* registers the CPU's memory */
            buf = lx_buffer_alloc(LX_CPU, nbytes);
            if (buf)
                for (size_t i = 0; i < nbytes; i++) ((uint8_t *)buf->ptr)[i] = b[off + i] != 0;
        }
    } else {
        bool zc = ((uintptr_t)(b + off) % es) == 0;
        buf = io_image_buffer(im, off, nbytes, zc);
    }
    if (!buf) return LX_NULL_ARRAY;
    int shape[LX_MAX_NDIM] = {0};
    for (int i = 0; i < p.ndim; i++) shape[i] = (int)p.shape[i];
    lx_node *n = io_place(lx_node_new_ready("lx_load_npy", dt, shape, p.ndim, buf));
    return n ? lx_handle_new(n) : LX_NULL_ARRAY;
}

lx_array lx_load_npy(const char *path) {
    io_image *im = io_image_open("lx_load_npy", path);
    if (!im) return LX_NULL_ARRAY;
    lx_array a = io_npy_parse(im, path);
    io_image_release(im);
    return a;
}

/* ---- saving ----------------------------------------------------------------------------- */

static const char *npy_descr(lx_dtype t) {
    switch (t) {
    case LX_BOOL: return "|b1";
    case LX_UINT8: return "|u1";
    case LX_INT8: return "|i1";
    case LX_UINT16: return "<u2";
    case LX_INT16: return "<i2";
    case LX_UINT32: return "<u4";
    case LX_INT32: return "<i4";
    case LX_UINT64: return "<u8";
    case LX_INT64: return "<i8";
    case LX_FLOAT16: return "<f2";
    case LX_FLOAT32: return "<f4";
    case LX_FLOAT64: return "<f8";
    default: return NULL;
    }
}

lx_status lx_save_npy(const char *path, lx_array a) {
    const char *op = "lx_save_npy";
    if (!path) return lx_set_error(LX_E_ARG, "%s: path is NULL", op);
    lx_node *node = lx_handle_get(a, op, "a");
    if (!node) return lx_error();
    lx_dtype dt = (lx_dtype)node->dtype;
    int ndim = node->ndim;
    int32_t shape[LX_MAX_NDIM];
    memcpy(shape, node->shape, sizeof shape);
    size_t nbytes = lx_node_nbytes(node);
    lx_node_release(node);
    const char *descr = npy_descr(dt);
    if (!descr)
        return lx_set_error(LX_E_UNSUPPORTED, "%s: npy has no code for %s (convert it with "
                            "lx_astype(a, LX_FLOAT32) first)", op, lx_dtype_name(dt));
    if (!io_host_le() && lx_dtype_size(dt) > 1)
        return lx_set_error(LX_E_UNSUPPORTED, "%s: saving on a big-endian host is not supported", op);
    char dict[256];
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++)
        k += snprintf(dict + k, sizeof dict - (size_t)k, "%d%s", shape[i],
                      ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    k += snprintf(dict + k, sizeof dict - (size_t)k, "), }");
    /* magic(6) + version(2) + len(2) + dict + spaces + '\n', a multiple of 64 */
    size_t total = 10 + (size_t)k + 1;
    total = (total + 63) / 64 * 64;
    size_t hlen = total - 10;
    uint8_t head[512];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (uint8_t)(hlen & 0xff);
    head[9] = (uint8_t)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)k);
    memset(head + 10 + k, ' ', hlen - (size_t)k - 1);
    head[total - 1] = '\n';
    const void *data = NULL;
    if (nbytes) {
        data = lx_data(a);
        if (!data) return lx_error() ? lx_error() : lx_set_error(LX_E_INTERNAL, "%s: no data", op);
    }
    char *tmp = NULL;
    int fd = io_tmp_open(op, path, &tmp);
    if (fd < 0) return lx_error();
    lx_status st = LX_OK;
    if (!io_write_all(fd, head, total) || (nbytes && !io_write_all(fd, data, nbytes)))
        st = lx_set_error(LX_E_IO, "%s: cannot write %s: %s", op, tmp, strerror(errno));
    return io_tmp_finish(op, fd, tmp, path, st);
}
