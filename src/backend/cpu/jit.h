/*
 * jit.h -- native code for generated C source: the CPU backend compiles the C that
 * fused_gen.c writes for a fused program with the system C compiler into a shared object,
 * loads it with dlopen and calls it (the way MLX's CPU backend runs compiled graphs).
 *
 * Every step may fail (no compiler, read-only disk, a compiler error): the caller then keeps
 * interpreting the program, which gives the same bits. Nothing here sets lx's error.
 *
 * Environment:
 *   LX_JIT=0        never compile (interpret every fused program)
 *   LX_JIT=always   compile every fused program the first time it runs (tests)
 *   (default)       compile a program once it has streamed 2^19 elements, so small or
 *                   one-off programs never pay for a compiler run (~0.1-0.3 s)
 *   LX_JIT_CC       the compiler (default "cc"; run without a shell, one word)
 *   LX_JIT_CACHE    directory of compiled objects, kept across processes (default
 *                   $XDG_CACHE_HOME/lx/jit or ~/.cache/lx/jit); it must be ours and not
 *                   writable by others, or a private temporary directory is used instead
 *   LX_JIT_VERBOSE=1  report compiler failures and cache problems on stderr (and keep the
 *                   failing source); =2 also keeps the source of every compiled object
 */
#ifndef LX_BACKEND_CPU_JIT_H
#define LX_BACKEND_CPU_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/jit_cache.h" /* lx_jit_hash */

typedef enum { LX_JIT_OFF = 0, LX_JIT_HOT, LX_JIT_ALWAYS } lx_jit_mode;

/* The mode from LX_JIT (read once), or the last lx_jit_set_mode. */
lx_jit_mode lx_jit_mode_get(void);
/* Overrides the mode for the process (white-box tests compare native code with the
 * interpreter in one run). */
void lx_jit_set_mode(lx_jit_mode mode);

/* Counters since start: objects compiled, loaded from the disk cache, failed compiles. */
typedef struct {
    int64_t compiled, loaded, failed;
} lx_jit_stats;
lx_jit_stats lx_jit_stats_get(void);

/* The shared, header-only C preamble of every generated source (the per-element math of
 * elementwise_ops.h and what it needs), embedded at build time. */
extern const char lx_jit_preamble[];

/* Compiles `source` (a whole C translation unit) for the instruction-set variant `variant`
 * ("generic", "v2", "v3", "v4": the -march of the kernels it must match) and returns the
 * address of its function `symbol`, or NULL. Objects are cached on disk by a hash of the
 * source, the flags and the compiler; the caller caches the pointer. Thread-safe; calls are
 * serialised (one compiler run at a time). */
void *lx_jit_compile(const char *source, size_t len, const char *symbol, const char *variant);

#endif
