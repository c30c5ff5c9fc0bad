/*
 * registry.c -- finds the backends: the CPU backend in the best instruction-set variant this
 * processor and OS support (cpu/select.c), and the CUDA module when it can be loaded.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/select.h"
#include "core/error.h"

static const lx_backend *backends[2];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static lx_device default_device = LX_CPU;

static const char *prim_names[LX_PRIM_COUNT] = {
    [LX_PRIM_NONE] = "NONE",
#define LX_PRIM(name) [LX_PRIM_##name] = #name,
#include "backend/prims_view.def"
#include "backend/prims_kernel.def"
#include "backend/prims_ops.def"
#undef LX_PRIM
};

const char *lx_prim_name(int p) {
    return p >= 0 && p < LX_PRIM_COUNT && prim_names[p] ? prim_names[p] : "?";
}

static void init_backends(void) {
    backends[LX_CPU] = lx_cpu_backend_select();
    lx_allocator_register(LX_CPU, &backends[LX_CPU]->memory);
}

void lx_backends_init(void) { pthread_once(&init_once, init_backends); }

const lx_backend *lx_backend_for(lx_device d) {
    lx_backends_init();
    return (d == LX_CPU || d == LX_GPU) ? backends[d] : NULL;
}

bool lx_gpu_available(void) { return lx_backend_for(LX_GPU) != NULL; }

lx_status lx_set_default_device(lx_device d) {
    if (d != LX_CPU && d != LX_GPU)
        return lx_set_error(LX_E_ARG, "lx_set_default_device: unknown device %d", (int)d);
    if (!lx_backend_for(d))
        return lx_set_error(LX_E_DEVICE, "lx_set_default_device: no usable GPU (no CUDA device "
                            "or driver, or the CUDA module is not installed)");
    default_device = d;
    return LX_OK;
}

lx_device lx_default_device(void) { return default_device; }

static char info[512];

static void build_info(void) {
    const lx_backend *cpu = lx_backend_for(LX_CPU);
    const lx_backend *gpu = lx_backend_for(LX_GPU);
    snprintf(info, sizeof info, "cpu: %s (%s), %d threads; gpu: %s", cpu->name, cpu->variant,
             lx_num_threads(), gpu ? gpu->variant : "none");
}

const char *lx_backend_info(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, build_info);
    return info;
}
