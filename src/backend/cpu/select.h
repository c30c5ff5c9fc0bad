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

#include "backend/backend.h"

const lx_backend *lx_cpu_backend_select(void);

#endif
