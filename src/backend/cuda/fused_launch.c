/*
 * fused_launch.c -- generated FUSED kernels on a device: the driver API calls that load an
 * image (fused_nvrtc.c) as a module and launch its kernel, and the table of loaded kernels
 * (fused_cuda.h).
 *
 * Driver entry points come through the CUDA runtime (cudaGetDriverEntryPointByVersion), which
 * the module links already and which has loaded the driver itself: the module is not linked
 * against libcuda (a machine without the driver must still load it, and lx info say why) and
 * opens no second copy of it by name. The modules are loaded into the device's primary
 * context, the one the runtime makes current on the calling thread (cudaSetDevice in the
 * device's ensure()), so the stream the runtime created serves cuLaunchKernel as is.
 *
 * Table: one entry per (device, architecture, lxf_key bytes: the program without its shape,
 * the input kinds, the generator version), in buckets under one lock; an entry is made by the
 * first thread that needs it, which compiles (or reads the disk cache) and loads without the
 * lock while later threads wanting the same entry wait for it. A failure is remembered, both
 * in the entry and per (device, program) so that supports() can refuse the program and its
 * later nodes take the CPU route. Modules are never unloaded: a function stays valid for the
 * life of the process.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "backend/cuda/fused_cuda.h"

typedef CUresult (*load_fn)(CUmodule *, const void *);
typedef CUresult (*get_fn)(CUfunction *, CUmodule, const char *);
typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void **, void **);
typedef CUresult (*err_fn)(CUresult, const char **);

static struct {
    load_fn load;
    get_fn get;
    launch_fn launch;
    err_fn err_string, err_name;
} drv;

static pthread_once_t g_drv_once = PTHREAD_ONCE_INIT;
static bool g_drv_ok;
static char g_drv_why[256];

static void driver_open(void) {
    struct {
        void **slot;
        const char *name;
    } syms[] = {
        {(void **)&drv.load, "cuModuleLoadData"},
        {(void **)&drv.get, "cuModuleGetFunction"},
        {(void **)&drv.launch, "cuLaunchKernel"},
        {(void **)&drv.err_string, "cuGetErrorString"},
        {(void **)&drv.err_name, "cuGetErrorName"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *f = NULL;
        enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        /* 12000: these symbols' signatures as of CUDA 12 (unchanged since long before) */
        cudaError_t e = cudaGetDriverEntryPointByVersion(syms[i].name, &f, 12000,
                                                         cudaEnableDefault, &q);
        if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !f) {
            snprintf(g_drv_why, sizeof g_drv_why, "the CUDA driver does not provide %s (%s)",
                     syms[i].name, e != cudaSuccess ? cudaGetErrorString(e) : "not found");
            (void)cudaGetLastError();
            return;
        }
        memcpy(syms[i].slot, &f, sizeof f); /* object to function pointer */
    }
    g_drv_ok = true;
}

bool lxf_driver_load(char *why, size_t why_size) {
    pthread_once(&g_drv_once, driver_open);
    if (!g_drv_ok && why && why_size) snprintf(why, why_size, "%s", g_drv_why);
    return g_drv_ok;
}

/* ---- availability ---- */

static pthread_once_t g_avail_once = PTHREAD_ONCE_INIT;
static bool g_avail;
static char g_avail_why[256];
static void check_available(void) {
    const lx_core_api *c = lxf_core();
    const char *off = c && c->getenv ? c->getenv("LX_CUDA_FUSED") : NULL;
    if (off && (strcmp(off, "0") == 0 || strcmp(off, "off") == 0)) {
        snprintf(g_avail_why, sizeof g_avail_why, "fused kernels off (LX_CUDA_FUSED=%s)", off);
        return;
    }
    char why[256];
    if (!lxf_nvrtc_load(why, sizeof why) || !lxf_driver_load(why, sizeof why)) {
        snprintf(g_avail_why, sizeof g_avail_why, "%s", why);
        return;
    }
    g_avail = true;
}

/* ---- the table ---- */

typedef enum { K_BUILDING, K_READY, K_FAILED } kstate;

typedef struct kentry {
    struct kentry *next;
    uint64_t hash;
    size_t key_len;
    unsigned char *key; /* ordinal, arch, lxf_key bytes */
    kstate state;
    CUfunction fn;
} kentry;

/* A (device, program) whose kernel failed: supports() refuses the program from then on. */
typedef struct bad_prog {
    struct bad_prog *next;
    uint64_t hash;
    size_t key_len;
    unsigned char *key; /* ordinal, lxf_key bytes with every kind LXF_CONTIG */
} bad_prog;

#define N_BUCKETS 256
static kentry *g_buckets[N_BUCKETS];
static bad_prog *g_bad;
static int g_n_bad; /* read without the lock as a hint (0: nothing failed yet) */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_built = PTHREAD_COND_INITIALIZER;

static uint64_t hash_key(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* malloc'd key: the ints, then lxf_key(h, kinds) (kinds NULL: all LXF_CONTIG) */
static unsigned char *make_key(const int *ints, int n_ints, const lx_fused_header *h,
                               size_t params_size, const uint8_t *kinds, size_t *len) {
    uint8_t zero[LX_FUSED_MAX_IN] = {0};
    if (!kinds) kinds = zero;
    size_t head = (size_t)n_ints * sizeof(int);
    size_t n = head + lxf_key(NULL, 0, h, params_size, kinds);
    unsigned char *k = malloc(n);
    if (!k) return NULL;
    memcpy(k, ints, head);
    lxf_key(k + head, n - head, h, params_size, kinds);
    *len = n;
    return k;
}

bool lxf_failed(int ordinal, const lx_fused_header *h, size_t params_size) {
    if (__atomic_load_n(&g_n_bad, __ATOMIC_ACQUIRE) == 0) return false;
    size_t len;
    unsigned char *key = make_key(&ordinal, 1, h, params_size, NULL, &len);
    if (!key) return true;
    uint64_t hash = hash_key(key, len);
    bool found = false;
    pthread_mutex_lock(&g_lock);
    for (bad_prog *b = g_bad; b && !found; b = b->next)
        found = b->hash == hash && b->key_len == len && memcmp(b->key, key, len) == 0;
    pthread_mutex_unlock(&g_lock);
    free(key);
    return found;
}

/* Records that (ordinal, program) failed. Called with g_lock held. */
static void mark_bad_locked(int ordinal, const lx_fused_header *h, size_t params_size) {
    size_t len;
    unsigned char *key = make_key(&ordinal, 1, h, params_size, NULL, &len);
    bad_prog *b = key ? malloc(sizeof *b) : NULL;
    if (!b) {
        free(key);
        return;
    }
    b->hash = hash_key(key, len);
    b->key = key;
    b->key_len = len;
    b->next = g_bad;
    g_bad = b;
    __atomic_store_n(&g_n_bad, g_n_bad + 1, __ATOMIC_RELEASE);
}

static lx_status cu_fail(CUresult r, const char *what) {
    const char *s = NULL, *n = NULL;
    if (drv.err_string) drv.err_string(r, &s);
    if (drv.err_name) drv.err_name(r, &n);
    return lxf_core()->set_error(LX_E_DEVICE, "cuda FUSED: %s: %s (%s)", what, s ? s : "error",
                             n ? n : "?");
}

/* Compiles (or reads) and loads a kernel: its function, or NULL with the error set. */
static CUfunction build(int arch, const lx_fused_header *h, size_t params_size,
                        const uint8_t *kinds) {
    lxf_image img;
    if (lxf_image_get(h, params_size, kinds, arch, &img) != LX_OK) return NULL;
    CUmodule mod = NULL;
    CUfunction fn = NULL;
    CUresult r = drv.load(&mod, img.data);
    lxf_image_free(&img);
    if (r != CUDA_SUCCESS) {
        cu_fail(r, "cuModuleLoadData");
        return NULL;
    }
    r = drv.get(&fn, mod, LXF_KERNEL_NAME);
    if (r != CUDA_SUCCESS) {
        cu_fail(r, "cuModuleGetFunction");
        return NULL;
    }
    return fn;
}

lx_status lxf_launch(int ordinal, int arch, const lx_fused_header *h, size_t params_size,
                     const uint8_t *kinds, const lxf_args *args, void *stream) {
    if (args->n <= 0) return LX_OK;
    int ints[2] = {ordinal, arch};
    size_t len;
    unsigned char *key = make_key(ints, 2, h, params_size, kinds, &len);
    if (!key) return lxf_core()->set_error(LX_E_OOM, "cuda FUSED: out of memory for a kernel key");
    uint64_t hash = hash_key(key, len);
    pthread_mutex_lock(&g_lock);
    kentry *e;
    for (e = g_buckets[hash % N_BUCKETS]; e; e = e->next)
        if (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0) break;
    bool mine = false;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&g_lock);
            free(key);
            return lxf_core()->set_error(LX_E_OOM, "cuda FUSED: out of memory for a kernel entry");
        }
        e->hash = hash;
        e->key = key;
        e->key_len = len;
        e->state = K_BUILDING;
        e->next = g_buckets[hash % N_BUCKETS];
        g_buckets[hash % N_BUCKETS] = e;
        key = NULL; /* the entry's now */
        mine = true;
    }
    free(key);
    if (mine) {
        pthread_mutex_unlock(&g_lock);
        CUfunction fn = build(arch, h, params_size, kinds); /* sets the error on failure */
        pthread_mutex_lock(&g_lock);
        e->fn = fn;
        e->state = fn ? K_READY : K_FAILED;
        if (!fn) mark_bad_locked(ordinal, h, params_size);
        pthread_cond_broadcast(&g_built);
        pthread_mutex_unlock(&g_lock);
        if (!fn) return LX_E_DEVICE;
    } else {
        while (e->state == K_BUILDING) pthread_cond_wait(&g_built, &g_lock);
        kstate s = e->state;
        pthread_mutex_unlock(&g_lock);
        if (s == K_FAILED)
            return lxf_core()->set_error(LX_E_DEVICE, "cuda FUSED: this program's kernel failed to "
                                     "compile or load on device %d before (LX_JIT_VERBOSE=1 "
                                     "prints NVRTC's log)", ordinal);
    }
    int64_t blocks = (args->n + LXF_THREADS - 1) / LXF_THREADS;
    if (blocks > (1 << 20)) blocks = 1 << 20; /* the kernels loop over the rest */
    void *params[1] = {(void *)args};        /* copied by the launch */
    CUresult r = drv.launch(e->fn, (unsigned)blocks, 1, 1, LXF_THREADS, 1, 1, 0,
                            (CUstream)stream, params, NULL);
    return r == CUDA_SUCCESS ? LX_OK : cu_fail(r, "cuLaunchKernel");
}

bool lxf_available(char *why, size_t why_size) {
    pthread_once(&g_avail_once, check_available);
    if (!g_avail && why && why_size) snprintf(why, why_size, "%s", g_avail_why);
    return g_avail;
}
