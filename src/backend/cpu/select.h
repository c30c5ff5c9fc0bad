/*
 * select.h -- choosing the CPU kernel variant at start.
 *
 * The CPU kernels (every file compiled with LX_CPU_VARIANT defined) are built once per
 * instruction-set level; each build defines its own table lx_cpu_table_<variant>. The selector
 * (compiled without ISA flags) scores the variants by what cpuid and the OS (xgetbv) support
 * and returns the best usable one. LX_CPU_VARIANT=<name> in the environment forces a variant.
 */
#ifndef LX_BACKEND_CPU_SELECT_H
#define LX_BACKEND_CPU_SELECT_H

#include "backend/device.h"

/* The CPU device in its best usable variant (or LX_CPU_VARIANT's). */
const lx_device_impl *lx_cpu_device_select(void);
/* The kernel table of a variant by name ("generic", "v2", "v3", "v4"), or NULL when it is not
 * built or this processor cannot run it: for the cross-backend tests. */
const lx_kernel_fn *lx_cpu_variant_table(const char *name);
/* Makes the CPU device run variant `name` from now on (tests: no evaluation may be running).
 * Returns false, changing nothing, when the variant is absent or unusable. */
bool lx_cpu_use_variant(const char *name);

#endif
