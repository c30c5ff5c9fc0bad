/*
 * bench_io.c -- time to load a ~500 MB safetensors file and touch every tensor, mapped
 * (zero-copy, the default) vs read into fresh buffers (LX_NO_MMAP=1), with the resident memory
 * each way. Usage: bench_io [dir] [mapped|read]; without a mode it writes the file once and runs
 * itself in a child process per mode so each starts with a clean address space.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lx.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) v = atol(line + 6);
    if (f) fclose(f);
    return v;
}

enum { N_TENSORS = 64, ROWS = 2048, COLS = 1024 }; /* 64 x 8 MiB = 512 MiB */

static int write_file(const char *path) {
    lx_array arrays[N_TENSORS];
    char names[N_TENSORS][32];
    const char *name_ptrs[N_TENSORS];
    lx_array key = lx_random_key(1);
    for (int i = 0; i < N_TENSORS; i++) {
        snprintf(names[i], sizeof names[i], "layer.%d.weight", i);
        name_ptrs[i] = names[i];
        arrays[i] = lx_random_uniform((int[]){ROWS, COLS}, 2, LX_FLOAT32, -1, 1, key);
    }
    lx_status st = lx_save_safetensors(path, name_ptrs, arrays, N_TENSORS);
    if (st != LX_OK) fprintf(stderr, "save failed: %s\n", lx_error_message());
    lx_sweep();
    return st == LX_OK ? 0 : 1;
}

static int load_and_touch(const char *path, const char *mode) {
    long rss0 = rss_kib();
    double t0 = now();
    lx_weights *w = lx_load(path);
    if (!w) {
        fprintf(stderr, "load failed: %s\n", lx_error_message());
        return 1;
    }
    double t1 = now();
    double sum = 0;
    for (int i = 0; i < lx_weights_count(w); i++) {
        lx_array a = lx_weights_get(w, lx_weights_name(w, i));
        const float *p = lx_data(a);
        size_t n = lx_size(a);
        for (size_t j = 0; j < n; j += 1024) sum += p[j]; /* one float per 4 KiB page */
    }
    double t2 = now();
    printf("%-7s load %7.1f ms, touch %7.1f ms, total %7.1f ms, resident +%ld MiB (checksum %.3f)\n",
           mode, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t2 - t0) * 1e3, (rss_kib() - rss0) / 1024,
           sum);
    lx_weights_free(w);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[1024];
    snprintf(path, sizeof path, "%s/lx_bench_io.safetensors", dir);
    if (argc > 2) {
        if (strcmp(argv[2], "read") == 0) setenv("LX_NO_MMAP", "1", 1);
        return load_and_touch(path, argv[2]);
    }
    if (write_file(path)) return 1;
    char cmd[2048];
    for (int rep = 0; rep < 2; rep++)
        for (int m = 0; m < 2; m++) {
            snprintf(cmd, sizeof cmd, "'%s' '%s' %s", argv[0], dir, m ? "read" : "mapped");
            if (system(cmd) != 0) return 1;
        }
    unlink(path);
    return 0;
}
