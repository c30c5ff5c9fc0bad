/*
 * lx.c -- the lx command: `lx info`, `lx generate`, `lx chat`, `lx tokenize` (DESIGN.md §3).
 */
#include <stdio.h>
#include <string.h>

#include "lx.h"
#include "tools/lx_tool.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: lx <command> [options]\n"
            "  lx info        backends, devices, chosen kernel variants, threads, memory limits\n"
            "  lx generate -m DIR|FILE.gguf (-p TEXT | --prompt-ids 1,2,3) [options]\n"
            "      -n N                new tokens (default 256)\n"
            "      --temp T            temperature (default 0: greedy)\n"
            "      --top-k K  --top-p P  --min-p P  --repeat-penalty R  --repeat-last-n N\n"
            "      --seed S            random seed (default: the clock)\n"
            "      --chat              wrap the prompt in the model's chat template\n"
            "      -s, --system TEXT   the system message (with --chat)\n"
            "      --ignore-eos        generate exactly N tokens\n"
            "      --print-ids         print the generated ids, not text\n"
            "      --logits-out FILE   safetensors \"logits\" [positions, vocab], float32\n"
            "      --stats             one JSON line of statistics on stderr\n"
            "      -c, --ctx N         context size (default: the model's)\n"
            "      -t, --threads N     CPU threads   --device cpu|gpu\n"
            "  lx chat -m DIR|FILE.gguf [-s TEXT] [sampling options]   multi-turn chat\n"
            "  lx tokenize -m DIR|FILE.gguf|tokenizer.json [TEXT]      ids of TEXT (or stdin)\n");
}

static int cmd_info(void) {
    printf("lx %s\n", LX_VERSION_STRING);
    /* the info is "; "-separated: the CPU, the GPU, then each module tried and why */
    const char *info = lx_backend_info();
    printf("backends:\n");
    for (const char *p = info; *p;) {
        const char *e = strstr(p, "; ");
        int len = e ? (int)(e - p) : (int)strlen(p);
        printf("  %.*s\n", len, p);
        p = e ? e + 2 : p + len;
    }
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
        return 1;
    }
    if (strcmp(argv[1], "info") == 0) return cmd_info();
    if (strcmp(argv[1], "generate") == 0) return lx_cmd_generate(argc, argv);
    if (strcmp(argv[1], "chat") == 0) return lx_cmd_chat(argc, argv);
    if (strcmp(argv[1], "tokenize") == 0) return lx_cmd_tokenize(argc, argv);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "lx: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
