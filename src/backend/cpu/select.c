/*
 * select.c -- scores the CPU variants by cpuid and xgetbv and picks the best usable one.
 * Compiled without ISA flags: it must run on any x86-64.
 */
#include "backend/cpu/select.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define LX_X86 1
#endif

/* Each variant's kernel table. The baseline is always built; the others when the build has
 * LX_CPU_VARIANTS (x86-64), so a static link pulls in exactly the tables that exist. */
extern const lx_kernel_fn lx_cpu_table_generic[LX_PRIM_COUNT];
#ifdef LX_HAVE_CPU_VARIANTS
extern const lx_kernel_fn lx_cpu_table_v2[LX_PRIM_COUNT];
extern const lx_kernel_fn lx_cpu_table_v3[LX_PRIM_COUNT];
extern const lx_kernel_fn lx_cpu_table_v4[LX_PRIM_COUNT];
#define VARIANT_TABLE(v) lx_cpu_table_##v
#else
#define VARIANT_TABLE(v) NULL
#endif

typedef struct { bool sse42, avx2, fma, f16c, bmi2, avx512; } cpu_features;

static cpu_features detect(void) {
    cpu_features f = {0};
#ifdef LX_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    f.sse42 = (c >> 20) & 1;
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
    bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    unsigned long long xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((unsigned long long)hi << 32) | lo;
    }
    bool os_ymm = (xcr0 & 0x6) == 0x6;    /* the OS saves SSE and AVX state */
    bool os_zmm = (xcr0 & 0xe6) == 0xe6;  /* ... and the AVX-512 opmask and ZMM state */
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = avx && os_ymm && ((b >> 5) & 1);
        f.bmi2 = (b >> 8) & 1;
        bool avx512f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
        f.avx512 = f.avx2 && os_zmm && avx512f && dq && bw && vl;
    }
    f.fma = f.fma && os_ymm;
    f.f16c = f.f16c && os_ymm;
#endif
    return f;
}

typedef struct {
    const char *name, *description;
    const lx_kernel_fn *table;
    int score; /* 0 = unusable */
} variant;

static variant variants[4];
static int n_variants;
static pthread_once_t variants_once = PTHREAD_ONCE_INIT;

static void find_variants(void) {
    cpu_features f = detect();
    variant v[] = {
        {"generic", "x86-64 baseline (SSE2)", lx_cpu_table_generic, 1},
        {"v2", "x86-64-v2 (SSE4.2)", VARIANT_TABLE(v2), f.sse42 ? 2 : 0},
        {"v3", "x86-64-v3 (AVX2, FMA, F16C)", VARIANT_TABLE(v3),
         (f.avx2 && f.fma && f.f16c && f.bmi2) ? 3 : 0},
        {"v4", "x86-64-v4 (AVX-512 F/BW/DQ/VL)", VARIANT_TABLE(v4), f.avx512 ? 4 : 0},
    };
    n_variants = (int)(sizeof v / sizeof v[0]);
    memcpy(variants, v, sizeof v);
}

static const variant *find(const char *name) {
    pthread_once(&variants_once, find_variants);
    for (int i = 0; i < n_variants; i++)
        if (strcmp(name, variants[i].name) == 0 && variants[i].table && variants[i].score)
            return &variants[i];
    return NULL;
}

const lx_kernel_fn *lx_cpu_variant_table(const char *name) {
    const variant *v = find(name);
    return v ? v->table : NULL;
}

/* ---- the device's memory: host memory, 64-byte aligned ---- */

static void *cpu_alloc(const lx_device_impl *dev, size_t n) {
    (void)dev;
    return aligned_alloc(64, (n + 63) / 64 * 64);
}
static void cpu_free(const lx_device_impl *dev, void *p, size_t n) {
    (void)dev;
    (void)n;
    free(p);
}
static lx_status cpu_copy(const lx_device_impl *dev, void *dst, const void *src, size_t n) {
    (void)dev;
    if (n) memmove(dst, src, n);
    return LX_OK;
}
static lx_status cpu_memset(const lx_device_impl *dev, void *dst, int value, size_t n) {
    (void)dev;
    if (n) memset(dst, value, n);
    return LX_OK;
}
static lx_status cpu_import(const lx_device_impl *dev, const void *host, size_t n, void **out) {
    (void)dev;
    (void)n;
    *out = (void *)host; /* the CPU reads host memory where it is */
    return LX_OK;
}
static void cpu_release_import(const lx_device_impl *dev, void *p, size_t n) {
    (void)dev;
    (void)p;
    (void)n;
}
static lx_status cpu_memory_info(const lx_device_impl *dev, size_t *free_bytes, size_t *total) {
    (void)dev;
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES),
         page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return lx_set_error(LX_E_DEVICE, "cpu: the system does not report its memory size");
    *total = (size_t)pages * (size_t)page;
    *free_bytes = avail > 0 ? (size_t)avail * (size_t)page : 0;
    return LX_OK;
}

static lx_device_impl cpu_device;
static char cpu_description[96];

bool lx_cpu_use_variant(const char *name) {
    const variant *v = find(name);
    if (!v) return false;
    lx_devices_init(); /* the first selection must not overwrite this one */
    cpu_device.kernels = v->table;
    snprintf(cpu_description, sizeof cpu_description, "%s", v->description);
    return true;
}

const lx_device_impl *lx_cpu_device_select(void) {
    pthread_once(&variants_once, find_variants);
    const char *force = getenv("LX_CPU_VARIANT");
    int best = -1;
    for (int i = 0; i < n_variants; i++) {
        const variant *v = &variants[i];
        if (!v->table || v->score == 0) continue;
        if (force && *force) {
            if (strcmp(force, v->name) == 0) best = i;
            continue;
        }
        if (best < 0 || v->score > variants[best].score) best = i;
    }
    if (best < 0) /* a forced variant that is absent or unusable: fall back to the best */
        for (int i = 0; i < n_variants; i++)
            if (variants[i].table && variants[i].score &&
                (best < 0 || variants[i].score > variants[best].score))
                best = i;
    if (best < 0) best = 0; /* the baseline is always present and usable */
    snprintf(cpu_description, sizeof cpu_description, "%s", variants[best].description);
    cpu_device = (lx_device_impl){
        LX_DEVICE_LAYOUT,
        .name = "cpu",
        .description = cpu_description,
        .kind = LX_CPU,
        .score = variants[best].score,
        .kernels = variants[best].table,
        .host_visible = true,
        .alloc = cpu_alloc,
        .free = cpu_free,
        .copy_to_host = cpu_copy,
        .copy_from_host = cpu_copy,
        .copy = cpu_copy,
        .memset = cpu_memset,
        .import_host = cpu_import,
        .release_import = cpu_release_import,
        .memory_info = cpu_memory_info,
        /* synchronous: every kernel has finished when it returns, so no events */
    };
    return &cpu_device;
}
