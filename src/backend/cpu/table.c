/*
 * table.c -- the CPU backend's primitive table for one instruction-set variant.
 */
#include "backend/cpu/cpu.h"

const lx_kernel_fn LX_CPU_TABLE[LX_PRIM_COUNT] = {
#define LX_PRIM(name) [LX_PRIM_##name] = LX_CPU_KERNEL(name),
#include "backend/cpu/kernels.def"
#undef LX_PRIM
};
