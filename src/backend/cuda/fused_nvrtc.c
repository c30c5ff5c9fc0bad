/*
 * fused_nvrtc.c -- generated FUSED kernels (fused_cuda.c) compiled by NVRTC, with an on-disk
 * cache of the results (fused_cuda.h).
 *
 * NVRTC is loaded with dlopen on first use (the soname of the toolkit the module was built
 * with, libnvrtc.so.<major>, then libnvrtc.so), not linked: the module must load on machines
 * that have the CUDA runtime but no NVRTC (runtime-only containers), where FUSED nodes then
 * take the CPU route (supports() says no) and lx info keeps working. NVRTC's own builtins
 * library is NVRTC's business.
 *
 * Compile: the source plus the embedded headers (lx_cuda_headers.c) for compute capability
 * `arch`: a cubin for sm_<arch> when NVRTC knows the architecture (no JIT at load time), else
 * PTX for the newest compute_<x> below it, which the driver compiles. Options: C++17,
 * -default-device (lx's headers have plain `static inline` helpers, which NVRTC would
 * otherwise refuse as host functions), --fmad=false and IEEE division, square root and
 * denormals, exactly what ew.cu's unfused kernels are built with (nvcc --fmad=false and its
 * defaults), so the fused kernels compute the same bits. Warning 1097 (an unknown attribute)
 * is silenced: lx.h marks its API functions visibility("default"), which means nothing in
 * device code and which NVRTC's front end does not know; every other warning stays in the log
 * (tests/test_cuda_fused_gen.c fails on any).
 *
 * Disk cache: the directory policy of the CPU JIT (cpu/jit.c): LX_JIT_CACHE, else
 * ~/.cache/lx/jit (the home directory from the password database: a module reads no
 * environment but the LX_* settings lx lends it); created 0700, used only if it is a directory
 * owned by the effective user and not writable by group or others; none otherwise (images are
 * then compiled once per process). One file per image, cuda-sm<arch>-<hash>.bin, the hash of
 * everything the image depends on: the generated source, the embedded headers' text, the
 * options, NVRTC's version, the architecture, lx's version. A file holds a header (magic, a
 * second independent hash of that key, the image kind, size and the hash of the image) and
 * the image; it is used only if it is a regular file owned by the effective user, not writable
 * by group or others, and every field checks out; otherwise it is refused (counted) and the
 * image compiled and stored again. Stores are atomic: a temporary file renamed over the name,
 * so a concurrent process sees a whole file or none.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <nvrtc.h>

#include "backend/cuda/fused_cuda.h"
#include "backend/jit_cache.h"

#ifndef LX_NVRTC_SONAME
#define LX_NVRTC_SONAME "libnvrtc.so"
#endif

static const lx_core_api *g_core;

void lxf_set_core(const lx_core_api *core) { g_core = core; }
const lx_core_api *lxf_core(void) { return g_core; }

static const char *setting(const char *name) {
    return g_core && g_core->getenv ? g_core->getenv(name) : NULL;
}

static lx_status fail(lx_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lx_status fail(lx_status st, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return g_core && g_core->set_error ? g_core->set_error(st, "%s", msg) : st;
}

static int verbose(void) {
    const char *v = setting("LX_JIT_VERBOSE");
    return v && *v ? atoi(v) : 0;
}

/* ---- hashing (backend/jit_cache.h's, the CPU JIT's: a seed per use) ---- */

#define SEED_NAME LX_JIT_HASH_SEED
#define SEED_CHECK 0x9e3779b97f4a7c15ull
#define SEED_DATA 0x2545f4914f6cdd1dull

/* ---- NVRTC ---- */

typedef struct {
    nvrtcResult (*create)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                          const char *const *);
    nvrtcResult (*compile)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*destroy)(nvrtcProgram *);
    nvrtcResult (*log_size)(nvrtcProgram, size_t *);
    nvrtcResult (*log)(nvrtcProgram, char *);
    nvrtcResult (*cubin_size)(nvrtcProgram, size_t *);
    nvrtcResult (*cubin)(nvrtcProgram, char *);
    nvrtcResult (*ptx_size)(nvrtcProgram, size_t *);
    nvrtcResult (*ptx)(nvrtcProgram, char *);
    const char *(*error_string)(nvrtcResult);
    nvrtcResult (*version)(int *, int *);
    nvrtcResult (*n_archs)(int *);
    nvrtcResult (*archs)(int *);
} nvrtc_api;

static pthread_once_t g_nvrtc_once = PTHREAD_ONCE_INIT;
static nvrtc_api g_nv;
static bool g_nv_ok;
static char g_nv_why[256];
static int g_nv_version;
static int g_archs[64], g_n_archs;

static void nvrtc_open(void) {
    const char *names[] = {LX_NVRTC_SONAME, "libnvrtc.so"};
    void *dl = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !dl; i++)
        dl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(g_nv_why, sizeof g_nv_why, "NVRTC is not available (%s: %s)", LX_NVRTC_SONAME,
                 dlerror());
        return;
    }
    struct {
        void **slot;
        const char *name;
    } syms[] = {
        {(void **)&g_nv.create, "nvrtcCreateProgram"},
        {(void **)&g_nv.compile, "nvrtcCompileProgram"},
        {(void **)&g_nv.destroy, "nvrtcDestroyProgram"},
        {(void **)&g_nv.log_size, "nvrtcGetProgramLogSize"},
        {(void **)&g_nv.log, "nvrtcGetProgramLog"},
        {(void **)&g_nv.cubin_size, "nvrtcGetCUBINSize"},
        {(void **)&g_nv.cubin, "nvrtcGetCUBIN"},
        {(void **)&g_nv.ptx_size, "nvrtcGetPTXSize"},
        {(void **)&g_nv.ptx, "nvrtcGetPTX"},
        {(void **)&g_nv.error_string, "nvrtcGetErrorString"},
        {(void **)&g_nv.version, "nvrtcVersion"},
        {(void **)&g_nv.n_archs, "nvrtcGetNumSupportedArchs"},
        {(void **)&g_nv.archs, "nvrtcGetSupportedArchs"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *f = dlsym(dl, syms[i].name);
        if (!f) {
            snprintf(g_nv_why, sizeof g_nv_why, "NVRTC (%s) lacks %s", LX_NVRTC_SONAME,
                     syms[i].name);
            return; /* left loaded: unloading a library that may have started threads is
                     * riskier than the memory */
        }
        memcpy(syms[i].slot, &f, sizeof f); /* object to function pointer (POSIX dlsym) */
    }
    int major = 0, minor = 0, n = 0;
    if (g_nv.version(&major, &minor) != NVRTC_SUCCESS || g_nv.n_archs(&n) != NVRTC_SUCCESS ||
        n <= 0 || n > (int)(sizeof g_archs / sizeof *g_archs) ||
        g_nv.archs(g_archs) != NVRTC_SUCCESS) {
        snprintf(g_nv_why, sizeof g_nv_why, "NVRTC (%s) does not report its version and "
                 "architectures", LX_NVRTC_SONAME);
        return;
    }
    g_n_archs = n;
    g_nv_version = major * 1000 + minor * 10;
    g_nv_ok = true;
}

bool lxf_nvrtc_load(char *why, size_t why_size) {
    pthread_once(&g_nvrtc_once, nvrtc_open);
    if (!g_nv_ok && why && why_size) snprintf(why, why_size, "%s", g_nv_why);
    return g_nv_ok;
}

int lxf_nvrtc_version(void) { return lxf_nvrtc_load(NULL, 0) ? g_nv_version : 0; }

void lxf_image_free(lxf_image *img) {
    if (!img) return;
    free(img->data);
    img->data = NULL;
    img->size = 0;
}

/* The options for arch: target (cubin for sm_<arch> if NVRTC has it, else PTX for the newest
 * compute_<x> at or below it) first. */
#define N_OPTS 9
static bool make_options(int arch, char *target, size_t cap, const char **opts, bool *cubin) {
    int best = -1;
    for (int i = 0; i < g_n_archs; i++) {
        if (g_archs[i] == arch) {
            best = arch;
            break;
        }
        if (g_archs[i] < arch && g_archs[i] > best) best = g_archs[i];
    }
    if (best < 0) return false;
    *cubin = best == arch;
    snprintf(target, cap, "--gpu-architecture=%s_%d", *cubin ? "sm" : "compute", best);
    opts[0] = target;
    opts[1] = "--std=c++17";
    opts[2] = "-default-device";
    opts[3] = "--fmad=false";
    opts[4] = "--ftz=false";
    opts[5] = "--prec-div=true";
    opts[6] = "--prec-sqrt=true";
    opts[7] = "--diag-suppress=1097";
    opts[8] = "-DLX_FUSED_NVRTC=1";
    return true;
}

/* The first lines of an NVRTC log from its first error, for a one-line message. */
static void log_excerpt(const char *log, char *buf, size_t cap) {
    const char *e = log ? strstr(log, "error") : NULL;
    if (!e) e = log ? log : "";
    while (e > log && e[-1] != '\n') e--;
    size_t n = 0;
    for (; e[n] && n + 1 < cap; n++) buf[n] = e[n] == '\n' ? ' ' : e[n];
    buf[n] = '\0';
}

lx_status lxf_nvrtc_compile(const char *source, size_t len, int arch, lxf_image *img,
                            char **log_out) {
    (void)len;
    img->data = NULL;
    img->size = 0;
    img->cubin = false;
    if (log_out) *log_out = NULL;
    char why[256];
    if (!lxf_nvrtc_load(why, sizeof why)) return fail(LX_E_DEVICE, "cuda FUSED: %s", why);
    char target[64];
    const char *opts[N_OPTS];
    bool cubin = false;
    if (!make_options(arch, target, sizeof target, opts, &cubin))
        return fail(LX_E_DEVICE, "cuda FUSED: NVRTC %d.%d knows no architecture at or below "
                    "compute capability %d.%d", g_nv_version / 1000, g_nv_version % 1000 / 10,
                    arch / 10, arch % 10);
    nvrtcProgram prog;
    nvrtcResult r = g_nv.create(&prog, source, "lx_fused.cu", lxf_header_count,
                                lxf_header_texts, lxf_header_names);
    if (r != NVRTC_SUCCESS)
        return fail(LX_E_DEVICE, "cuda FUSED: nvrtcCreateProgram: %s", g_nv.error_string(r));
    r = g_nv.compile(prog, N_OPTS, opts);
    size_t log_n = 0;
    char *log = NULL;
    if (g_nv.log_size(prog, &log_n) == NVRTC_SUCCESS && log_n > 0 && (log = malloc(log_n + 1))) {
        if (g_nv.log(prog, log) != NVRTC_SUCCESS) log[0] = '\0';
        log[log_n] = '\0';
    }
    lx_status st = LX_OK;
    if (r != NVRTC_SUCCESS) {
        char ex[400];
        log_excerpt(log, ex, sizeof ex);
        if (verbose()) fprintf(stderr, "lx cuda: NVRTC failed on:\n%s\n--- log ---\n%s\n",
                               source, log ? log : "");
        st = fail(LX_E_DEVICE, "cuda FUSED: NVRTC (%s): %s: %s", target, g_nv.error_string(r), ex);
    } else {
        size_t n = 0;
        nvrtcResult rs = cubin ? g_nv.cubin_size(prog, &n) : g_nv.ptx_size(prog, &n);
        void *data = rs == NVRTC_SUCCESS && n > 0 ? malloc(n) : NULL;
        if (data) rs = cubin ? g_nv.cubin(prog, data) : g_nv.ptx(prog, data);
        if (!data || rs != NVRTC_SUCCESS) {
            free(data);
            st = data ? fail(LX_E_DEVICE, "cuda FUSED: NVRTC: %s", g_nv.error_string(rs))
                      : fail(LX_E_OOM, "cuda FUSED: out of memory for a compiled kernel");
        } else {
            img->data = data;
            img->size = n;
            img->cubin = cubin;
        }
    }
    g_nv.destroy(&prog);
    if (log_out) *log_out = log ? log : calloc(1, 1);
    else free(log);
    return st;
}

/* ---- the disk cache ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* stats, the directory */
static lxf_stats g_stats;
static char g_dir[4096];
static bool g_dir_chosen;
static uint64_t g_tmp_counter;

lxf_stats lxf_stats_get(void) {
    pthread_mutex_lock(&g_lock);
    lxf_stats s = g_stats;
    pthread_mutex_unlock(&g_lock);
    return s;
}

#define COUNT(field)                                                                        \
    do {                                                                                    \
        pthread_mutex_lock(&g_lock);                                                        \
        g_stats.field++;                                                                    \
        pthread_mutex_unlock(&g_lock);                                                      \
    } while (0)


static void choose_dir_locked(void) {
    if (g_dir_chosen) return;
    g_dir_chosen = true;
    g_dir[0] = '\0';
    char want[4096];
    int w = -1;
    const char *env = setting("LX_JIT_CACHE");
    if (env && *env) {
        w = snprintf(want, sizeof want, "%s", env);
    } else {
        struct passwd pw, *res = NULL;
        char pbuf[4096];
        if (getpwuid_r(geteuid(), &pw, pbuf, sizeof pbuf, &res) == 0 && res && res->pw_dir &&
            res->pw_dir[0] == '/')
            w = snprintf(want, sizeof want, "%s/.cache/lx/jit", res->pw_dir);
    }
    if (w > 0 && (size_t)w < sizeof want - 128 && lx_jit_make_dirs(want) && lx_jit_dir_ok(want))
        memcpy(g_dir, want, (size_t)w + 1);
    else if (w > 0 && verbose())
        fprintf(stderr, "lx cuda: cache directory %s is not usable (missing, not ours or "
                "writable by others): fused kernels are compiled in every process\n", want);
}

const char *lxf_cache_dir(void) {
    pthread_mutex_lock(&g_lock);
    choose_dir_locked();
    pthread_mutex_unlock(&g_lock);
    return g_dir; /* written once, under the lock, before anyone reads it */
}

/* The hash of the embedded headers (once). */
static pthread_once_t g_hdr_once = PTHREAD_ONCE_INIT;
static uint64_t g_hdr_hash;
static void hash_headers(void) {
    uint64_t h = SEED_NAME;
    for (int i = 0; i < lxf_header_count; i++) {
        h = lx_jit_hash(lxf_header_names[i], strlen(lxf_header_names[i]) + 1, h);
        h = lx_jit_hash(lxf_header_texts[i], strlen(lxf_header_texts[i]) + 1, h);
    }
    g_hdr_hash = h;
}

/* The two hashes of what an image of source for arch depends on. */
static void image_key(const char *source, size_t len, int arch, uint64_t *name, uint64_t *check) {
    pthread_once(&g_hdr_once, hash_headers);
    char target[64];
    const char *opts[N_OPTS];
    bool cubin = false;
    int n_opts = make_options(arch, target, sizeof target, opts, &cubin) ? N_OPTS : 0;
    const uint64_t seeds[2] = {SEED_NAME, SEED_CHECK};
    uint64_t out[2];
    for (int s = 0; s < 2; s++) {
        uint64_t h = lx_jit_hash(source, len, seeds[s]);
        h = lx_jit_hash(&g_hdr_hash, sizeof g_hdr_hash, h);
        for (int i = 0; i < n_opts; i++) h = lx_jit_hash(opts[i], strlen(opts[i]) + 1, h);
        int32_t fixed[3] = {g_nv_version, arch, (int32_t)LXF_GEN_VERSION};
        h = lx_jit_hash(fixed, sizeof fixed, h);
        h = lx_jit_hash(LX_VERSION_STRING, sizeof LX_VERSION_STRING, h);
        out[s] = h;
    }
    *name = out[0];
    *check = out[1];
}

bool lxf_cache_path(const char *source, size_t len, int arch, char *buf, size_t cap) {
    const char *dir = lxf_cache_dir();
    if (!dir[0] || !lxf_nvrtc_load(NULL, 0)) return false;
    uint64_t name, check;
    image_key(source, len, arch, &name, &check);
    int w = snprintf(buf, cap, "%s/cuda-sm%d-%016llx.bin", dir, arch, (unsigned long long)name);
    return w > 0 && (size_t)w < cap;
}

#define MAGIC "LXCUFUS1"
typedef struct {
    char magic[8];
    uint64_t check; /* the key's second hash */
    uint32_t cubin; /* 1 cubin, 0 PTX */
    uint32_t pad;
    uint64_t size;  /* bytes of image that follow */
    uint64_t data;  /* their hash */
} file_header;
#define MAX_IMAGE (256u << 20)

/* Reads an image from path: true if the file is acceptable (see the top of the file). */
static bool cache_read(const char *path, uint64_t check, lxf_image *img) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false; /* absent: not refused */
    bool ok = false;
    struct stat st;
    file_header fh;
    void *data = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        (st.st_mode & (S_IWGRP | S_IWOTH)) == 0 && st.st_size >= (off_t)sizeof fh &&
        read(fd, &fh, sizeof fh) == (ssize_t)sizeof fh && memcmp(fh.magic, MAGIC, 8) == 0 &&
        fh.check == check && fh.cubin <= 1 && fh.size > 0 && fh.size <= MAX_IMAGE &&
        (uint64_t)st.st_size == sizeof fh + fh.size && (data = malloc(fh.size))) {
        size_t done = 0;
        while (done < fh.size) {
            ssize_t k = read(fd, (char *)data + done, fh.size - done);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            done += (size_t)k;
        }
        ok = done == fh.size && lx_jit_hash(data, fh.size, SEED_DATA) == fh.data &&
             (fh.cubin || ((const char *)data)[fh.size - 1] == '\0');
    }
    close(fd);
    if (!ok) {
        free(data);
        COUNT(disk_refused);
        if (verbose()) fprintf(stderr, "lx cuda: refusing cache file %s\n", path);
        return false;
    }
    img->data = data;
    img->size = fh.size;
    img->cubin = fh.cubin != 0;
    COUNT(disk_hits);
    return true;
}

static bool write_all(int fd, const void *p, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(fd, (const char *)p + done, n - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        done += (size_t)k;
    }
    return true;
}

/* Stores img at path through a temporary file renamed over it. */
static void cache_write(const char *path, uint64_t check, const lxf_image *img) {
    char tmp[4300];
    pthread_mutex_lock(&g_lock);
    uint64_t serial = ++g_tmp_counter;
    pthread_mutex_unlock(&g_lock);
    int w = snprintf(tmp, sizeof tmp, "%s.%ld.%llu.tmp", path, (long)getpid(),
                     (unsigned long long)serial);
    if (w <= 0 || (size_t)w >= sizeof tmp) return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    file_header fh;
    memset(&fh, 0, sizeof fh);
    memcpy(fh.magic, MAGIC, 8);
    fh.check = check;
    fh.cubin = img->cubin ? 1u : 0u;
    fh.size = img->size;
    fh.data = lx_jit_hash(img->data, img->size, SEED_DATA);
    bool ok = write_all(fd, &fh, sizeof fh) && write_all(fd, img->data, img->size);
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) == 0) {
        COUNT(disk_written);
        return;
    }
    unlink(tmp);
}

lx_status lxf_image_get(const lx_fused_header *h, size_t params_size, const uint8_t *kinds,
                        int arch, lxf_image *img) {
    img->data = NULL;
    img->size = 0;
    const char *why = lxf_check(h, params_size, NULL, 0);
    if (why) return fail(LX_E_INTERNAL, "cuda FUSED: malformed fused program (%s)", why);
    char nwhy[256];
    if (!lxf_nvrtc_load(nwhy, sizeof nwhy)) return fail(LX_E_DEVICE, "cuda FUSED: %s", nwhy);
    size_t len = 0;
    char *src = lxf_source(h, kinds, NULL, &len);
    if (!src) return fail(LX_E_OOM, "cuda FUSED: out of memory for a kernel's source");
    char path[4300];
    uint64_t name, check;
    image_key(src, len, arch, &name, &check);
    bool cached = lxf_cache_path(src, len, arch, path, sizeof path);
    if (cached && cache_read(path, check, img)) {
        free(src);
        return LX_OK;
    }
    lx_status st = lxf_nvrtc_compile(src, len, arch, img, NULL);
    free(src);
    if (st != LX_OK) {
        COUNT(failed);
        return st;
    }
    COUNT(compiled);
    if (cached) cache_write(path, check, img);
    return LX_OK;
}
