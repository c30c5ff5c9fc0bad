/*
 * model_util.c -- paths, whole-file reads and JSON files for the models layer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "models/model_util.h"

char *lx_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t n = a;
    if (n > 0 && p[n - 1] != '/') p[n++] = '/';
    memcpy(p + n, name, b + 1);
    return p;
}

bool lx_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool lx_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

#define LX_MAX_TEXT_FILE ((size_t)1 << 30)

char *lx_read_text_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        lx_set_error(LX_E_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 65536 + 1;
            if (ncap > LX_MAX_TEXT_FILE + 1) ncap = LX_MAX_TEXT_FILE + 1;
            if (ncap <= n + 1) {
                lx_set_error(LX_E_FORMAT, "%s: larger than %zu bytes", path, LX_MAX_TEXT_FILE);
                goto fail;
            }
            char *q = realloc(buf, ncap);
            if (!q) {
                lx_set_error(LX_E_OOM, "%s: out of memory reading the file", path);
                goto fail;
            }
            buf = q;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        lx_set_error(LX_E_IO, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

cJSON *lx_json_load(const char *path, lx_status *st) {
    size_t n;
    char *text = lx_read_text_file(path, &n);
    if (!text) {
        *st = lx_error();
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, &end, false);
    if (!j || !cJSON_IsObject(j)) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        if (j) *st = lx_set_error(LX_E_FORMAT, "%s: not a JSON object", path);
        else *st = lx_set_error(LX_E_FORMAT, "%s: malformed JSON near byte %zu", path, at);
        cJSON_Delete(j);
        j = NULL;
    }
    free(text);
    return j;
}
