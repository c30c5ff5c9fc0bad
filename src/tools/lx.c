/*
 * lx.c -- the lx command: `lx info` (and, as they land, generate and tokenize).
 */
#include <stdio.h>
#include <string.h>

#include "lx.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: lx <command> [options]\n"
            "  lx info        backends, devices, chosen kernel variants, threads, memory limits\n");
}

static int cmd_info(void) {
    printf("lx %s\n", LX_VERSION_STRING);
    printf("backends: %s\n", lx_backend_info());
    printf("gpu: %s\n", lx_gpu_available() ? "available" : "not available");
    printf("default device: %s\n", lx_default_device() == LX_GPU ? "gpu" : "cpu");
    printf("threads: %d\n", lx_num_threads());
    printf("memory limit: %.1f MiB\n", (double)lx_memory_limit() / (1 << 20));
    printf("cache limit: %.1f MiB\n", (double)lx_cache_limit() / (1 << 20));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "info") == 0) return cmd_info();
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "lx: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
