/*
 * test_model_smollm2_memory.c -- a long greedy run of the real model (SmolLM2-135M-Instruct
 * GGUF, env LX_TEST_GGUF; skipped (77) when absent): 1000 new tokens (ignore_eos) after a
 * 20-token prompt in a session of context 1100. After every step past the first few the
 * tracked-handle count is the same, and the active memory (read after lx_synchronize() inside
 * on_token, so the step in flight has finished) changes only when the KV cache grows by a
 * step: LX_KV_STEP (256) positions of float32 K and V for every layer,
 * 2 * layers * kv_heads * 256 * head_dim * 4 bytes (30 * 3 * 64 here: 11796480 bytes), as many
 * times as the capacity runs out (at positions 256, 512, 768: three times).
 *
 * Under AddressSanitizer it runs 300 tokens instead (one KV step), and says so. Measured on a
 * shared 2-core machine, generic kernels (LX_CPU_VARIANTS=OFF): release 1000 tokens 142-173 s,
 * ASan 300 tokens 58 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lx.h"
#include "models/kv_cache.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifdef ASAN_BUILD
#define N_TOKENS 300
#else
#define N_TOKENS 1000
#endif
#define WARMUP 4 /* steps before the count must be flat (first trace, sampler state) */

/* SmolLM2-135M */
#define N_LAYERS 30
#define N_KV_HEADS 3
#define HEAD_DIM 64

typedef struct {
    int32_t ids[N_TOKENS + 8];
    size_t tracked[N_TOKENS + 8], active[N_TOKENS + 8];
    int n;
} collect;

static bool on_token(void *u, int32_t id, const char *text, size_t len) {
    (void)text;
    (void)len;
    collect *c = u;
    if (id >= 0 && c->n < N_TOKENS + 8) {
        lx_synchronize(); /* the step in flight finishes: its memory is then what it keeps */
        c->tracked[c->n] = lx_tracked_count();
        c->active[c->n] = lx_active_memory();
        c->ids[c->n++] = id;
    }
    return true;
}

int main(void) {
    const char *path = t_real_model();
    if (!path) return 77;
#ifdef ASAN_BUILD
    printf("  AddressSanitizer build: %d tokens instead of 1000\n", N_TOKENS);
#endif
    lx_model *m = lx_model_load(path);
    CHECK_MSG(m != NULL, "%s: %s", path, lx_error_message());
    if (!m) return test_finish();
    printf("  %s\n", lx_model_describe(m));
    const char *text = "The history of the printing press begins in the fifteenth century, when";
    int32_t prompt[64];
    int n_prompt = lx_tokenize(lx_model_tokenizer(m), text, strlen(text), 0, prompt, 64);
    CHECK_MSG(n_prompt >= 12 && n_prompt <= 24, "prompt of %d tokens", n_prompt);
    if (n_prompt < 12 || n_prompt > 24) {
        lx_model_free(m);
        return test_finish();
    }
    lx_session *s = lx_session_new(m, 1100);
    collect *c = calloc(1, sizeof *c);
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = N_TOKENS;
    p.ignore_eos = true;
    p.on_token = on_token;
    p.user = c;
    lx_gen_stats st;
    double t0 = t_now_s();
    CHECK_OK(lx_session_generate(s, prompt, n_prompt, &p, &st));
    double dt = t_now_s() - t0;
    CHECK_MSG(c->n == N_TOKENS && st.generated_tokens == N_TOKENS, "%d tokens", c->n);
    printf("  %d prompt + %d tokens in %.1f s (decode %.1f tok/s); tracked %zu, active %zu "
           "bytes at the end\n", n_prompt, c->n, dt, st.decode_tok_s, c->tracked[c->n - 1],
           c->active[c->n - 1]);

    size_t kv_step = (size_t)2 * N_LAYERS * N_KV_HEADS * LX_KV_STEP * HEAD_DIM * 4;
    int growths = 0, expected = 0;
    for (int i = WARMUP + 1; i < c->n; i++) {
        CHECK_MSG(c->tracked[i] == c->tracked[WARMUP], "tracked %zu after step %d, %zu after "
                  "step %d", c->tracked[i], i, c->tracked[WARMUP], WARMUP);
        /* step i wrote position n_prompt + i - 1 and the step in flight (i + 1) reserved
         * position n_prompt + i; a step of capacity is added when that is a multiple of 256 */
        if (c->active[i] != c->active[i - 1]) {
            growths++;
            CHECK_MSG(c->active[i] - c->active[i - 1] == kv_step,
                      "step %d: active memory %zu -> %zu (%+lld; a KV step is %zu)", i,
                      c->active[i - 1], c->active[i],
                      (long long)c->active[i] - (long long)c->active[i - 1], kv_step);
        }
    }
    for (int pos = LX_KV_STEP; pos < n_prompt + N_TOKENS - 1; pos += LX_KV_STEP) expected++;
    CHECK_MSG(growths == expected, "active memory changed %d times, the KV cache grew %d times",
              growths, expected);
    size_t total = c->active[c->n - 1] - c->active[WARMUP];
    printf("  active memory grew %d times (%zu bytes, KV step %zu bytes); tracked count flat "
           "at %zu\n", growths, total, kv_step, c->tracked[WARMUP]);
    free(c);
    lx_session_free(s);
    lx_model_free(m);
    lx_sweep();
    return test_finish();
}
