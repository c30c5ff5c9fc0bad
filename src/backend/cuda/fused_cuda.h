/*
 * fused_cuda.h -- the CUDA module's FUSED primitive: fused programs (graph/fused.h) as
 * generated CUDA kernels, compiled at run time with NVRTC.
 *
 * Three layers, each usable without the ones above it:
 *   fused_cuda.c    the generator: a program and its inputs' kinds -> the CUDA C source of one
 *                   kernel (plain C, no CUDA library).
 *   fused_nvrtc.c   NVRTC, loaded with dlopen on first use: source -> cubin for the device's
 *                   architecture (PTX where NVRTC does not know it), through an on-disk cache
 *                   (plain C; no CUDA runtime or driver).
 *   fused_launch.c  the driver API (cuModuleLoadData, cuModuleGetFunction, cuLaunchKernel,
 *                   reached through the CUDA runtime's cudaGetDriverEntryPointByVersion): a
 *                   thread-safe table of loaded kernels per device, and the launch.
 * cuda_device.c's FUSED kernel reads the node into an lxf_args (fused_args.h) and launches;
 * its supports() asks lxf_check and lxf_available. tests/test_cuda_fused_gen.c runs the first
 * two layers without a GPU.
 */
#ifndef LX_BACKEND_CUDA_FUSED_CUDA_H
#define LX_BACKEND_CUDA_FUSED_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/cuda/fused_args.h"
#include "backend/device.h"
#include "graph/fused.h"

/* How a kernel reads input k (the kinds are part of what a kernel is compiled for). */
enum { LXF_CONTIG = 0, LXF_SCALAR = 1, LXF_STRIDED = 2 };

#define LXF_KERNEL_NAME "lx_fused_kernel"
#define LXF_THREADS 256 /* threads per block (the kernels' __launch_bounds__) */
/* Bumped whenever the generated code changes for the same program (part of every key). */
#define LXF_GEN_VERSION 1u

/* ---- the generator (fused_cuda.c) ---- */

/* NULL if the program in params[params_size] is one the generator handles, else why (a
 * static string). in_dtypes[n_in] are the node's input dtypes (NULL: not checked). */
const char *lxf_check(const void *params, size_t params_size, const uint8_t *in_dtypes, int n_in);
/* NULL if FUSED node n fits its program (lxf_check with its inputs' dtypes; inputs that
 * broadcast to the logical shape; the node's dtype and size: the one output, or the byte
 * buffer holding every output at its out_offset), else why. Reads no buffer: supports() asks
 * it of LAZY nodes. */
const char *lxf_node_check(const lx_node *n);
/* The launch arguments of FUSED node n over its READY inputs (addresses buf->ptr + offset,
 * strides over the logical shape, broadcast dims 0, then size-1 dims dropped and neighbours
 * every input walks as one merged, as the CPU kernel collapses them) with its outputs at
 * out_base, and each input's kind (LXF_SCALAR: every stride 0; LXF_CONTIG: the row strides of
 * the collapsed shape, i.e. element i; else LXF_STRIDED) into kinds[n_in]: NULL, or why the
 * node does not fit (lxf_node_check). */
const char *lxf_plan(const lx_node *n, char *out_base, lxf_args *a, uint8_t *kinds);
/* The CUDA C source of the program's kernel for inputs of kinds[h->n_in], named `name`
 * (NULL: LXF_KERNEL_NAME; the tests compile many kernels in one program): a malloc'd,
 * NUL-terminated string (its length in *len), NULL if out of memory. The source depends only
 * on what lxf_key keeps of the program (not on its shape). The program must pass lxf_check. */
char *lxf_source(const lx_fused_header *h, const uint8_t *kinds, const char *name, size_t *len);
/* The bytes that identify a kernel: the program with its shape, rank and output offsets
 * cleared (the kernel takes those as arguments), then the kinds (inputs the program never
 * loads count as LXF_CONTIG), then the generator version. Writes min(size, cap) bytes into buf
 * (NULL: none) and returns the size. */
size_t lxf_key(unsigned char *buf, size_t cap, const lx_fused_header *h, size_t params_size,
               const uint8_t *kinds);

/* The headers the generated source includes, as NVRTC is handed them (lx_cuda_headers.c, made
 * at build time from the source tree by embed_headers.cmake): lx's own headers under their
 * include names, and the C library headers they include as small stand-ins (nvrtc_libc.h). */
extern const int lxf_header_count;
extern const char *const lxf_header_names[];
extern const char *const lxf_header_texts[];

/* ---- NVRTC and the disk cache (fused_nvrtc.c) ---- */

/* The lx_core_api errors go through and settings are read from (set before any call). */
void lxf_set_core(const lx_core_api *core);
const lx_core_api *lxf_core(void);
/* Loads NVRTC (once, thread-safe): true when it is usable; else false with why. */
bool lxf_nvrtc_load(char *why, size_t why_size);
/* NVRTC's version as major * 1000 + minor * 10, 0 when not loaded. */
int lxf_nvrtc_version(void);

typedef struct {
    void *data;  /* cubin, or NUL-terminated PTX */
    size_t size;
    bool cubin;
} lxf_image;
void lxf_image_free(lxf_image *img);

/* Compiles source for compute capability `arch` (major * 10 + minor: 80, 90): a cubin for
 * sm_<arch> when NVRTC supports it, else PTX for the newest compute_<x> it supports below.
 * Returns LX_OK, or LX_E_DEVICE with NVRTC's log in the message (core->set_error). *log (if
 * log is not NULL) gets NVRTC's log either way (malloc'd, maybe empty): the tests require it
 * to be free of warnings. */
lx_status lxf_nvrtc_compile(const char *source, size_t len, int arch, lxf_image *img,
                            char **log);
/* The image of a program's kernel for `arch`: from the disk cache, else compiled (and stored
 * there). LX_E_DEVICE with the reason on failure. */
lx_status lxf_image_get(const lx_fused_header *h, size_t params_size, const uint8_t *kinds,
                        int arch, lxf_image *img);

/* The disk cache's directory as chosen ("" when there is none: images are then compiled every
 * time a process needs them), choosing it on first use. */
const char *lxf_cache_dir(void);
/* The cache file an image of source for arch is stored in (the path into buf); false if
 * there is no cache directory. */
bool lxf_cache_path(const char *source, size_t len, int arch, char *buf, size_t cap);

typedef struct {
    uint64_t compiled;     /* NVRTC compiles that succeeded */
    uint64_t failed;       /* compiles that failed */
    uint64_t disk_hits;    /* images read from the disk cache */
    uint64_t disk_refused; /* cache files present but refused (not ours, writable by others,
                            * malformed, for another key, corrupted) */
    uint64_t disk_written; /* images stored */
} lxf_stats;
lxf_stats lxf_stats_get(void);

/* ---- kernels on a device (fused_launch.c) ---- */

/* Finds the driver entry points (once): false with why when they are missing. */
bool lxf_driver_load(char *why, size_t why_size);
/* Whether FUSED nodes may go to the CUDA device: NVRTC and the driver entry points are there
 * and LX_CUDA_FUSED is not "0"/"off"; why says what is missing. */
bool lxf_available(char *why, size_t why_size);
/* Queues the program's kernel for kinds on `stream` of device `ordinal` (compute capability
 * arch), whose context must be current, compiling and loading it on first use. A failed
 * compile or load is remembered (lxf_failed then says so, and supports() refuses the
 * program). LX_E_DEVICE with the NVRTC log or the CUDA message on failure. */
lx_status lxf_launch(int ordinal, int arch, const lx_fused_header *h, size_t params_size,
                     const uint8_t *kinds, const lxf_args *args, void *stream);
/* Whether a kernel of this program (any kinds) failed to compile or load on device ordinal. */
bool lxf_failed(int ordinal, const lx_fused_header *h, size_t params_size);

#endif
