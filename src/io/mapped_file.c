/*
 * mapped_file.c -- refcounted file images: a read-only private mapping of the whole file, or a
 * heap copy (LX_NO_MMAP=1, or images made from memory), plus the buffers that point into them.
 *
 * Zero-copy arrays wrap bytes of the image in an external lx_buffer whose release hook drops a
 * reference to the image; the image goes away with its last user. A mapping can still fault if
 * another process truncates the file while it is mapped (SIGBUS): that is outside what a
 * reader can check, and LX_NO_MMAP=1 avoids it at the cost of reading the whole file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/device.h"
#include "io/io.h"

static bool no_mmap(void) {
    const char *e = getenv("LX_NO_MMAP");
    return e && e[0] && strcmp(e, "0") != 0;
}

/* Reads the whole file into heap memory with pread (short reads and EINTR handled). */
static uint8_t *read_all(int fd, size_t size, int *err) {
    uint8_t *p = malloc(size ? size : 1);
    if (!p) { *err = ENOMEM; return NULL; }
    size_t done = 0;
    while (done < size) {
        size_t want = size - done;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        ssize_t r = pread(fd, p + done, want, (off_t)done);
        if (r < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            free(p);
            return NULL;
        }
        if (r == 0) { *err = EIO; free(p); return NULL; } /* shrank while reading */
        done += (size_t)r;
    }
    return p;
}

io_image *io_image_open(const char *op, const char *path) {
    if (!path) {
        lx_set_error(LX_E_ARG, "%s: path is NULL", op);
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lx_set_error(LX_E_IO, "%s: cannot open %s: %s", op, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        lx_set_error(LX_E_IO, "%s: cannot stat %s: %s", op, path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        lx_set_error(LX_E_IO, "%s: %s is not a regular file", op, path);
        close(fd);
        return NULL;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        lx_set_error(LX_E_IO, "%s: %s: file size %lld is out of range", op, path,
                     (long long)st.st_size);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    io_image *im = calloc(1, sizeof *im);
    if (!im) {
        close(fd);
        lx_set_error(LX_E_OOM, "%s: %s: out of host memory", op, path);
        return NULL;
    }
    atomic_store_explicit(&im->refs, 1, memory_order_relaxed);
    im->size = size;
    if (size == 0) {
        im->data = (const uint8_t *)"";
        close(fd);
        return im;
    }
    if (!no_mmap()) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            im->mapped = true;
            im->data = p;
            im->map_size = size;
            close(fd);
            return im;
        }
        /* fall back to reading (e.g. a file system without mmap) */
    }
    int err = 0;
    uint8_t *buf = read_all(fd, size, &err);
    close(fd);
    if (!buf) {
        free(im);
        if (err == ENOMEM)
            lx_set_error(LX_E_OOM, "%s: %s: out of host memory reading %zu bytes", op, path, size);
        else
            lx_set_error(LX_E_IO, "%s: cannot read %s: %s", op, path, strerror(err));
        return NULL;
    }
    im->data = buf;
    return im;
}

io_image *io_image_from_memory(const void *data, size_t n) {
    io_image *im = calloc(1, sizeof *im);
    uint8_t *p = malloc(n ? n : 1);
    if (!im || !p) {
        free(im);
        free(p);
        lx_set_error(LX_E_OOM, "io: out of host memory");
        return NULL;
    }
    if (n) memcpy(p, data, n);
    else { free(p); p = (uint8_t *)""; }
    atomic_store_explicit(&im->refs, 1, memory_order_relaxed);
    im->data = p;
    im->size = n;
    return im;
}

void io_image_retain(io_image *im) { atomic_fetch_add_explicit(&im->refs, 1, memory_order_relaxed); }

void io_image_release(io_image *im) {
    if (!im) return;
    if (atomic_fetch_sub_explicit(&im->refs, 1, memory_order_acq_rel) != 1) return;
    if (im->mapped) munmap((void *)im->data, im->map_size);
    else if (im->size) free((void *)im->data); /* size 0 images point at a static "" */
    free(im);
}

static void image_release_hook(void *owner) { io_image_release(owner); }

lx_buffer *io_image_buffer(io_image *im, size_t off, size_t n, bool zero_copy) {
    if (zero_copy || n == 0) { /* an empty array reads nothing: no copy needed */
        io_image_retain(im);
        lx_devices_init(); /* registers the CPU's memory */
        lx_buffer *b = lx_buffer_wrap(LX_CPU, (void *)(im->data + off), n, image_release_hook, im);
        if (!b) io_image_release(im);
        return b;
    }
    lx_devices_init(); /* registers the CPU's memory */
    lx_buffer *b = lx_buffer_alloc(LX_CPU, n);
    if (b && n) memcpy(b->ptr, im->data + off, n);
    return b;
}

typedef struct {
    const lx_device_impl *dev;
    void *ptr;
    size_t n;
    lx_buffer *host; /* the host buffer the import reads (a mapped file's range) */
} import_owner;

static void import_release_hook(void *owner) {
    import_owner *o = owner;
    o->dev->release_import(o->dev, o->ptr, o->n);
    lx_buffer_release(o->host);
    free(o);
}

lx_node *io_place(lx_node *n) {
    lx_device d = lx_default_device();
    if (!n || d == LX_CPU || n->device == (uint8_t)d) return n;
    const lx_device_impl *dev = lx_device_get(d);
    size_t nbytes = lx_node_nbytes(n);
    lx_buffer *src = n->buf, *b = NULL;
    const char *host = (const char *)src->ptr + n->offset * (int64_t)lx_dtype_size((lx_dtype)n->dtype);
    if (!dev) {
        lx_set_error(LX_E_DEVICE, "lx_load: the default device is absent");
    } else if (dev->host_visible && src->external) {
        import_owner *o = malloc(sizeof *o);
        void *p = NULL;
        if (!o) {
            lx_set_error(LX_E_OOM, "lx_load: out of host memory");
        } else if (dev->import_host(dev, host, nbytes, &p) == LX_OK) {
            *o = (import_owner){dev, p, nbytes, src};
            lx_buffer_retain(src);
            b = lx_buffer_wrap(d, p, nbytes, import_release_hook, o);
            if (!b) import_release_hook(o);
        } else {
            free(o);
            if (lx_error() == LX_OK) lx_set_error(LX_E_DEVICE, "lx_load: %s refused an import", dev->name);
        }
    } else if ((b = lx_buffer_alloc(d, nbytes)) && nbytes &&
               dev->copy_from_host(dev, b->ptr, host, nbytes) != LX_OK) {
        if (lx_error() == LX_OK)
            lx_set_error(LX_E_DEVICE, "lx_load: uploading %zu bytes to %s failed", nbytes, dev->name);
        lx_buffer_release(b);
        b = NULL;
    }
    lx_node *r = b ? lx_node_new_ready(n->op, (lx_dtype)n->dtype, n->shape, n->ndim, b) : NULL;
    lx_node_release(n);
    return r;
}
