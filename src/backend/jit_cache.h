/*
 * jit_cache.h -- what the run-time code generators of both backends share for their on-disk
 * caches (the CPU JIT, backend/cpu/jit.c; the CUDA module's NVRTC images,
 * backend/cuda/fused_nvrtc.c): the key hash and the checks of a cache directory. Header-only:
 * a device module cannot link lx's internals, but it may compile the same source.
 */
#ifndef LX_BACKEND_JIT_CACHE_H
#define LX_BACKEND_JIT_CACHE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* A 64-bit hash of n bytes, 8 at a time (FNV-1a's multiply with a final mix): the cache keys.
 * Not cryptographic: keys are always compared in full after a hash match. */
static inline uint64_t lx_jit_hash(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    return h ^ (h >> 32);
}
#define LX_JIT_HASH_SEED 0xcbf29ce484222325ull

/* A directory we may trust: ours, a directory, not writable by group or others. */
static inline bool lx_jit_dir_ok(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* mkdir -p with mode 0700 for the components it creates. */
static inline bool lx_jit_make_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return false;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return false;
        buf[i] = c;
    }
    return true;
}

#endif
