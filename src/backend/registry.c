/*
 * registry.c -- finds the devices: the CPU in the best instruction-set variant this processor
 * and OS support (cpu/select.c), then device modules (shared objects named liblx-*.so) next
 * to liblx, each asked through its entry point for its devices and their scores. The best
 * usable GPU-kind device serves LX_GPU. Every step that fails (no module, a module that does
 * not load, the wrong interface version, no driver, no device) is recorded for lx info and
 * leaves the CPU in charge.
 *
 * Where modules are looked for: LX_DEVICE_MODULES, a ':'-separated list of module files or
 * folders, when set ("none": load nothing); else the folder of the object that holds liblx
 * (the shared library, or the program it is linked into).
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/cpu/select.h"
#include "backend/device.h"
#include "core/error.h"

#define MAX_MODULES 8
#define MAX_MODULE_DEVICES 8

static const lx_device_impl *devices[2];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static _Atomic int default_device = LX_CPU;

/* What lx info tells about the search: one line per module tried, and the GPU's state. */
static char search_log[2048];
static size_t search_len;
static void *module_handles[MAX_MODULES];
static int n_modules;

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...) {
    if (search_len >= sizeof search_log - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(search_log + search_len, sizeof search_log - search_len, fmt, ap);
    va_end(ap);
    if (n > 0) search_len += (size_t)n < sizeof search_log - search_len ? (size_t)n
                                                                         : sizeof search_log - 1 - search_len;
}

/* ---- what modules may call -------------------------------------------------------------- */

static lx_status core_set_error_v(lx_status st, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return lx_set_error(st, "%s", msg);
}

static lx_status core_set_error(lx_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lx_status r = core_set_error_v(st, fmt, ap);
    va_end(ap);
    return r;
}

static const char *core_getenv(const char *name) {
    return name && strncmp(name, "LX_", 3) == 0 ? getenv(name) : NULL;
}

static const lx_core_api core_api = {
    .version = LX_DEVICE_API_VERSION,
    .size = sizeof(lx_core_api),
    .set_error = core_set_error,
    .set_error_v = core_set_error_v,
    .scratch = lx_kernel_scratch,
    .prim_name = lx_prim_name,
    .getenv = core_getenv,
};

const lx_core_api *lx_core_api_get(void) { return &core_api; }

/* ---- registration ------------------------------------------------------------------------ */

static void *dev_alloc(void *ctx, size_t n) {
    const lx_device_impl *d = ctx;
    return d->alloc(d, n);
}
static void dev_free(void *ctx, void *p, size_t n) {
    const lx_device_impl *d = ctx;
    d->free(d, p, n);
}

static void register_device(const lx_device_impl *d) {
    size_t free_b = 0, total = 0;
    if (!d->memory_info || d->memory_info(d, &free_b, &total) != LX_OK) total = 0;
    lx_device_memory mem = {.ctx = (void *)d, .alloc = dev_alloc, .free = dev_free, .total = total};
    devices[d->kind] = d;
    lx_allocator_register(d->kind, &mem);
}

/* Whether a module's device table is complete enough to run on (COPY and memory are
 * required; events come all or none). Says why not. */
static bool device_usable(const lx_device_impl *d, char *why, size_t n) {
    if (d->api_version != LX_DEVICE_API_VERSION || d->size != sizeof(lx_device_impl)) {
        snprintf(why, n, "built for device interface %u (lx has %u)", d->api_version,
                 LX_DEVICE_API_VERSION);
        return false;
    }
    if (d->node_size != sizeof(lx_node) || d->buffer_size != sizeof(lx_buffer) ||
        d->prim_count != LX_PRIM_COUNT) {
        snprintf(why, n, "built with other graph headers (node %u, buffer %u bytes, %u "
                 "primitives; lx has %zu, %zu, %d)", d->node_size, d->buffer_size,
                 d->prim_count, sizeof(lx_node), sizeof(lx_buffer), (int)LX_PRIM_COUNT);
        return false;
    }
    if (d->kind != LX_GPU) {
        snprintf(why, n, "serves device %d; modules may only serve the GPU", (int)d->kind);
        return false;
    }
    if (!d->kernels || !d->kernels[LX_PRIM_COPY] || !d->alloc || !d->free || !d->copy_to_host ||
        !d->copy_from_host || !d->copy || !d->memset || !d->import_host || !d->release_import) {
        snprintf(why, n, "its table lacks COPY or a memory function");
        return false;
    }
    bool ev = d->event_record || d->event_wait || d->event_query || d->event_free;
    if (ev && !(d->event_record && d->event_wait && d->event_query && d->event_free &&
                d->synchronize)) {
        snprintf(why, n, "its events are incomplete");
        return false;
    }
    if (d->score <= 0) {
        snprintf(why, n, "it scores itself unusable");
        return false;
    }
    return true;
}

static const lx_device_impl *best_gpu;

static void try_module(const char *path) {
    if (n_modules >= MAX_MODULES) return;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        log_line("; module %s: %s", path, dlerror());
        return;
    }
    lx_device_module_init_fn init;
    *(void **)&init = dlsym(h, LX_DEVICE_MODULE_ENTRY);
    if (!init) {
        log_line("; module %s: no %s", path, LX_DEVICE_MODULE_ENTRY);
        dlclose(h);
        return;
    }
    const lx_device_impl *devs[MAX_MODULE_DEVICES] = {0};
    char why[256] = "";
    int n = init(LX_DEVICE_API_VERSION, &core_api, devs, MAX_MODULE_DEVICES, why, sizeof why);
    if (n <= 0) {
        log_line("; module %s: no device (%s)", path, why[0] ? why : "it did not say why");
        dlclose(h);
        return;
    }
    int kept = 0;
    for (int i = 0; i < n && i < MAX_MODULE_DEVICES; i++) {
        const lx_device_impl *d = devs[i];
        if (!d) continue;
        if (!device_usable(d, why, sizeof why)) {
            log_line("; module %s: device %s refused: %s", path, d->name ? d->name : "?", why);
            continue;
        }
        log_line("; module %s: %s (%s), score %d", path, d->name, d->description, d->score);
        if (!best_gpu || d->score > best_gpu->score) best_gpu = d;
        kept++;
    }
    /* A module stays loaded once it offered a usable device: its tables must outlive lx. */
    if (kept) module_handles[n_modules++] = h;
    else dlclose(h);
}

static bool is_module_name(const char *name) {
    size_t n = strlen(name);
    return n > 9 && strncmp(name, "liblx-", 6) == 0 && strcmp(name + n - 3, ".so") == 0;
}

static void search_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        log_line("; modules: cannot read %s", dir);
        return;
    }
    char *names[32];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 32)
        if (is_module_name(e->d_name) && (names[n] = strdup(e->d_name))) n++;
    closedir(d);
    if (n == 0) log_line("; modules: none in %s", dir);
    /* a stable order, so equal scores pick the same module every run */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        try_module(path);
        free(names[i]);
    }
}

static void search_entry(const char *p) {
    struct stat st;
    if (stat(p, &st) != 0) log_line("; modules: %s does not exist", p);
    else if (S_ISDIR(st.st_mode)) search_folder(p);
    else try_module(p);
}

static void find_modules(void) {
    const char *env = getenv("LX_DEVICE_MODULES");
    if (env && strcmp(env, "none") == 0) {
        log_line("; modules: not loaded (LX_DEVICE_MODULES=none)");
        return;
    }
    if (env && *env) {
        char *copy = strdup(env);
        if (!copy) return;
        char *save = NULL;
        for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) search_entry(p);
        free(copy);
        return;
    }
    Dl_info info;
    if (!dladdr((void *)&lx_devices_init, &info) || !info.dli_fname) {
        log_line("; modules: cannot tell where liblx is");
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", info.dli_fname);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    search_folder(dir);
}

static void init_devices(void) {
    /* failures here are logged, not the caller's error: keep the thread's error as it was */
    bool had_error = lx_error() != LX_OK;
    register_device(lx_cpu_device_select());
    find_modules();
    if (best_gpu) register_device(best_gpu);
    if (!had_error) lx_clear_error();
}

void lx_devices_init(void) { pthread_once(&init_once, init_devices); }

const lx_device_impl *lx_device_get(lx_device d) {
    lx_devices_init();
    return (unsigned)d <= LX_GPU ? devices[d] : NULL;
}

bool lx_device_supports(const lx_device_impl *dev, const lx_node *n) {
    if (n->prim >= LX_PRIM_COUNT || !dev->kernels[n->prim]) return false;
    return dev->supports ? dev->supports(dev, n) : true;
}

/* ---- the public device calls ------------------------------------------------------------- */

bool lx_gpu_available(void) { return lx_device_get(LX_GPU) != NULL; }

lx_status lx_set_default_device(lx_device d) {
    if (d != LX_CPU && d != LX_GPU)
        return lx_set_error(LX_E_ARG, "lx_set_default_device: unknown device %d", (int)d);
    if (!lx_device_get(d))
        return lx_set_error(LX_E_DEVICE, "lx_set_default_device: no usable GPU (%s)",
                            lx_backend_info());
    atomic_store(&default_device, (int)d);
    return LX_OK;
}

lx_device lx_default_device(void) { return (lx_device)atomic_load(&default_device); }

static char info[2560];

static void build_info(void) {
    const lx_device_impl *cpu = lx_device_get(LX_CPU);
    const lx_device_impl *gpu = lx_device_get(LX_GPU);
    if (gpu)
        snprintf(info, sizeof info, "cpu: %s (%s), %d threads; gpu: %s (%s)%s", cpu->name,
                 cpu->description, lx_num_threads(), gpu->name, gpu->description, search_log);
    else
        snprintf(info, sizeof info, "cpu: %s (%s), %d threads; gpu: none%s", cpu->name,
                 cpu->description, lx_num_threads(), search_log);
}

const char *lx_backend_info(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, build_info);
    return info;
}

/* lx_prim_name: graph/prim_info.c, from the primitive table. */
