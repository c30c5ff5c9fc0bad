/*
 * io.h -- what the file readers share: file images (mapped or read), the weights object they
 * fill, strict little-endian cursors, UTF-8 checks and the error helpers.
 *
 * The idea: a file is opened once into an `io_image` (a read-only mmap, or a heap copy when
 * LX_NO_MMAP=1 or for in-memory parsing), refcounted. Arrays whose bytes can be used as they
 * are become READY nodes over lx_buffer_wrap buffers pointing into the image; each such buffer
 * holds a reference, so the image is unmapped when the last array using it is released and
 * the loader is done with it. Everything read from a file goes through bounds-checked helpers:
 * no offset, length or count is used before it is checked against the image size, with
 * overflow checks (__builtin_*_overflow).
 *
 * Parsers take (image, display name) so the fuzz targets can run them on memory.
 */
#ifndef LX_IO_IO_H
#define LX_IO_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buffer.h"
#include "core/node.h"
#include "core/error.h"
#include "lx.h"

/* ---- file images ---------------------------------------------------------------------- */

typedef struct io_image {
    _Atomic uint32_t refs;
    bool mapped;        /* munmap on release (else free) */
    const uint8_t *data;
    size_t size;
    size_t map_size;    /* bytes mapped (>= size is not assumed) */
} io_image;

/* Opens and maps (or reads, with LX_NO_MMAP=1) a regular file. NULL + LX_E_IO naming `op`
 * and the path on failure. An empty file gives an image of size 0. */
io_image *io_image_open(const char *op, const char *path);
/* A heap copy of n bytes (used by the fuzz targets and tests). */
io_image *io_image_from_memory(const void *data, size_t n);
void io_image_retain(io_image *im);
void io_image_release(io_image *im);

/* A CPU buffer for bytes [off, off + n) of the image: zero-copy (wrapping the image, which it
 * then keeps alive) when `zero_copy` is true, else a copy in allocator memory. The caller has
 * checked the range. NULL with the error set on OOM. */
lx_buffer *io_image_buffer(io_image *im, size_t off, size_t n, bool zero_copy);
/* A loaded (READY, host) node placed on the default device (reference consumed): itself on
 * the CPU; on a device that reads host memory a zero-copy import of a mapped range; else an
 * upload into the device's allocator memory. NULL with the error set. */
lx_node *io_place(lx_node *n);

/* ---- the weights object ---------------------------------------------------------------- */

typedef struct io_meta {
    char *key;
    char *value;         /* scalar value as text; NULL for arrays */
    int n_items;         /* arrays: number of items (-1 for scalars) */
    size_t *item_off;    /* arrays: offsets of the items' NUL-terminated text in `arena` */
    char *arena;
} io_meta;

struct lx_weights {
    char *path;
    int n, cap;
    char **names;
    lx_array *arrays;
    uint32_t *index;     /* open addressing: slot -> i + 1 (0 empty); capacity index_cap */
    uint32_t index_cap;
    int n_meta, cap_meta;
    io_meta *meta;
    uint32_t *meta_index;
    uint32_t meta_index_cap;
};

lx_weights *io_weights_new(const char *path);
/* Index of `name` or -1. */
int io_weights_find(const lx_weights *w, const char *name);
int io_meta_find(const lx_weights *w, const char *key);
/* Adds a node under `name` (copied). The node reference is transferred; the handle is made
 * and kept. A duplicate name is LX_E_FORMAT naming `file`. False with the error set. */
bool io_weights_add(lx_weights *w, const char *file, const char *name, lx_node *node);
/* Adds a scalar metadata entry (key and value copied, `vlen` bytes of value). A duplicate key
 * is LX_E_FORMAT unless `replace_ok`, in which case the first value is kept. */
bool io_meta_add(lx_weights *w, const char *file, const char *key, const char *value, size_t vlen,
                 bool replace_ok);
/* Adds an array entry: n items whose texts are concatenated NUL-terminated in arena (taken
 * over), item i at off[i] (taken over). */
bool io_meta_add_array(lx_weights *w, const char *file, const char *key, char *arena,
                       size_t *off, int n);
/* Moves every array and metadata entry of src into dst (names must not clash), frees src. */
bool io_weights_merge(lx_weights *dst, lx_weights *src, const char *file);

/* ---- parsers (io/safetensors.c, io/gguf.c, io/npy.c) ----------------------------------- */

/* Parse an image into a new weights object; `file` names it in messages. NULL + error. */
lx_weights *io_safetensors_parse(io_image *im, const char *file);
lx_weights *io_gguf_parse(io_image *im, const char *file);
/* The GGUF header and metadata only: no tensors are read or added. */
lx_weights *io_gguf_parse_metadata(io_image *im, const char *file);
/* A tracked (unkept) array, or the null array + error. */
lx_array io_npy_parse(io_image *im, const char *file);

/* Loads a sharded model from model.safetensors.index.json (io/weights.c). */
lx_weights *io_load_index(const char *index_path);

/* ---- crash-safe writing (io/file_write.c) ---------------------------------------------- */

/* Creates "<path>.tmp-XXXXXX"; returns its fd (and its name in *tmp) or -1 + LX_E_IO. */
int io_tmp_open(const char *op, const char *path, char **tmp);
/* write(2) until done (EINTR and short writes handled); false with errno set. */
bool io_write_all(int fd, const void *p, size_t n);
/* If st is LX_OK: fsync, close, rename over path, fsync the directory; else close and unlink.
 * Frees tmp. Returns the final status (the error set for a failure of its own). */
lx_status io_tmp_finish(const char *op, int fd, char *tmp, const char *path, lx_status st);

/* ---- helpers --------------------------------------------------------------------------- */

/* True if s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool io_utf8_valid(const uint8_t *s, size_t n);
/* True if the host stores multi-byte numbers little-endian. */
static inline bool io_host_le(void) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return false;
#else
    return true;
#endif
}
static inline uint16_t io_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t io_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t io_rd64(const uint8_t *p) {
    return (uint64_t)io_rd32(p) | ((uint64_t)io_rd32(p + 4) << 32);
}

/* A bounds-checked reading position in an image. Every read fails (returns false) once the
 * cursor would pass the end; `ok` then stays false. */
typedef struct io_cursor {
    const uint8_t *base;
    size_t size, pos;
    bool ok;
} io_cursor;

static inline bool io_cur_need(io_cursor *c, size_t n) {
    if (!c->ok || n > c->size - c->pos) { c->ok = false; return false; }
    return true;
}
static inline bool io_cur_u32(io_cursor *c, uint32_t *v) {
    if (!io_cur_need(c, 4)) return false;
    *v = io_rd32(c->base + c->pos);
    c->pos += 4;
    return true;
}
static inline bool io_cur_u64(io_cursor *c, uint64_t *v) {
    if (!io_cur_need(c, 8)) return false;
    *v = io_rd64(c->base + c->pos);
    c->pos += 8;
    return true;
}
static inline bool io_cur_bytes(io_cursor *c, size_t n, const uint8_t **p) {
    if (!io_cur_need(c, n)) return false;
    *p = c->base + c->pos;
    c->pos += n;
    return true;
}

/* Shape bytes: product of dims times elem size with overflow checks, each dim in [0, INT32_MAX].
 * False if it overflows. */
bool io_shape_bytes(const int64_t *dims, int ndim, size_t elem, size_t *nbytes, int64_t *count);

/* Max length of a name quoted in a message (messages are capped at 512 bytes). */
#define IO_NAME_MAX_SHOWN 96
/* "%.*s" arguments for quoting an untrusted name in a message */
#define IO_Q(s) (int)IO_NAME_MAX_SHOWN, (s)

/* Cap on any single header (safetensors JSON, npy dict, GGUF metadata) the readers accept. */
#define IO_MAX_HEADER ((size_t)100 * 1024 * 1024)

#endif
