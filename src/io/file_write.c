/*
 * file_write.c -- crash-safe file writing shared by the savers: the data goes to a temporary
 * file beside the target ("<path>.tmp-XXXXXX"), which is fsynced and renamed over the final
 * name, and the directory is fsynced, so a crash leaves the old file or the whole new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"

int io_tmp_open(const char *op, const char *path, char **tmp_out) {
    *tmp_out = NULL;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        lx_set_error(LX_E_OOM, "%s: out of host memory", op);
        return -1;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        lx_set_error(LX_E_IO, "%s: cannot create %s: %s", op, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    *tmp_out = tmp;
    return fd;
}

bool io_write_all(int fd, const void *p, size_t n) {
    const uint8_t *c = p;
    while (n) {
        ssize_t r = write(fd, c, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (r == 0) {
            errno = EIO;
            return false;
        }
        c += r;
        n -= (size_t)r;
    }
    return true;
}

/* fsync of the directory holding path, so the rename itself is durable (best effort). */
static void sync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

lx_status io_tmp_finish(const char *op, int fd, char *tmp, const char *path, lx_status st) {
    if (fd < 0) {
        free(tmp);
        return st;
    }
    if (st == LX_OK) (void)fchmod(fd, 0644); /* mkstemp made it 0600 */
    if (st == LX_OK && fsync(fd) != 0)
        st = lx_set_error(LX_E_IO, "%s: cannot sync %s: %s", op, tmp, strerror(errno));
    if (close(fd) != 0 && st == LX_OK)
        st = lx_set_error(LX_E_IO, "%s: cannot close %s: %s", op, tmp, strerror(errno));
    if (st == LX_OK && rename(tmp, path) != 0)
        st = lx_set_error(LX_E_IO, "%s: cannot rename %s to %s: %s", op, tmp, path,
                          strerror(errno));
    if (st == LX_OK) sync_dir_of(path);
    else unlink(tmp);
    free(tmp);
    return st;
}
