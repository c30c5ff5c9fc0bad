/*
 * fused_native.h -- native code for fused programs (fused_gen.c): the interpreter in fused.c
 * asks for a program's compiled function and runs it when there is one.
 */
#ifndef LX_BACKEND_CPU_FUSED_NATIVE_H
#define LX_BACKEND_CPU_FUSED_NATIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/fused.h"

/* n elements; in[k]: input k's first element (contiguous) or its only value (kinds[k] == 1);
 * out[j]: output j's first element. */
typedef void (*lx_fused_native_fn)(int64_t n, const void *const *in, void *const *out);

/* The compiled function of program h (params_size bytes, already checked) for input kinds
 * kinds[0 .. n_in) (0 contiguous, 1 scalar) and the CPU variant `variant`, or NULL: not (yet)
 * worth compiling, compiling elsewhere right now, compiling failed, or LX_JIT=0. `elements`
 * is the size of the call, counted towards the compile threshold. May compile (jit.h): in
 * this call when `elements` alone reaches the threshold (or under LX_JIT=always), else on a
 * background thread, returning NULL meanwhile. */
lx_fused_native_fn lx_fused_native(const lx_fused_header *h, size_t params_size,
                                   const uint8_t *kinds, const char *variant, int64_t elements);

/* Fused kernel runs that went through native code since start (white-box tests). */
int64_t lx_fused_native_runs(void);
void lx_fused_native_count_run(void);

/* Background compiles finished since start, and a wait (up to `seconds`) until none is queued
 * or running; true if none is (tests, and benchmarks that want native code before timing). */
int64_t lx_fused_native_background_compiles(void);
bool lx_fused_native_wait_idle(double seconds);

#endif
