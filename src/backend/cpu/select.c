/*
 * select.c -- scores the CPU variants by cpuid and xgetbv and picks the best usable one.
 * Compiled without ISA flags: it must run on any x86-64.
 */
#include "backend/cpu/select.h"

#include <stdlib.h>
#include <string.h>

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

static void *cpu_alloc(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }
static void cpu_free(void *p, size_t n) { (void)n; free(p); }

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

const lx_backend *lx_cpu_backend_select(void) {
    static lx_backend be;
    cpu_features f = detect();
    variant v[] = {
        {"generic", "x86-64 baseline (SSE2)", lx_cpu_table_generic, 1},
        {"v2", "x86-64-v2 (SSE4.2)", VARIANT_TABLE(v2), f.sse42 ? 2 : 0},
        {"v3", "x86-64-v3 (AVX2, FMA, F16C)", VARIANT_TABLE(v3),
         (f.avx2 && f.fma && f.f16c && f.bmi2) ? 3 : 0},
        {"v4", "x86-64-v4 (AVX-512 F/BW/DQ/VL)", VARIANT_TABLE(v4), f.avx512 ? 4 : 0},
    };
    int n = (int)(sizeof v / sizeof v[0]);
    const char *force = getenv("LX_CPU_VARIANT");
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (!v[i].table || v[i].score == 0) continue;
        if (force && *force) {
            if (strcmp(force, v[i].name) == 0) best = i;
            continue;
        }
        if (best < 0 || v[i].score > v[best].score) best = i;
    }
    if (best < 0) /* a forced variant that is absent or unusable: fall back to the best */
        for (int i = 0; i < n; i++)
            if (v[i].table && v[i].score && (best < 0 || v[i].score > v[best].score)) best = i;
    if (best < 0) best = 0; /* the baseline is always present and usable */
    be.name = "cpu";
    be.variant = v[best].description;
    be.device = LX_CPU;
    be.kernels = v[best].table;
    be.memory.alloc = cpu_alloc;
    be.memory.free = cpu_free;
    be.synchronize = NULL;
    return &be;
}
