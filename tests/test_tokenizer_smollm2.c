/*
 * test_tokenizer_smollm2.c -- the real model's vocabulary (SmolLM2-135M-Instruct GGUF, gpt2 /
 * smollm pre-tokenizer) against llama.cpp's ids and detokenized text for the cases in
 * tests/fixtures/smollm2_tokenizer_cases.json (scripts/make_tokenizer_cases.py), exactly:
 * specials parsed, as text, with BOS/EOS; streaming = batch decode; and the encode speed on a
 * large text. Skipped (77) when LX_TEST_GGUF is absent.
 */
#include <time.h>

#include "tokenizer_cases.h"

int main(void) {
    const char *path = t_real_model();
    if (!path) return 77;
    char fx[1024];
    const char *repo = getenv("LX_REPO");
    snprintf(fx, sizeof fx, "%s/tests/fixtures/smollm2_tokenizer_cases.json", repo ? repo : ".");
    cJSON *j = tc_load_json(fx);
    CHECK(j != NULL);
    double t0 = t_now_s();
    lx_tokenizer *t = lx_tokenizer_load(path);
    double t_load = t_now_s() - t0;
    CHECK_MSG(t != NULL, "%s", lx_error_message());
    if (!t || !j) return test_finish();
    printf("  loaded the vocabulary in %.1f ms (metadata only)\n", 1e3 * t_load);
    CHECK(lx_tokenizer_vocab_size(t) == 49152);
    CHECK(lx_tokenizer_bos(t) == 1 && lx_tokenizer_eos(t) == 2);
    CHECK(lx_token_is_special(t, 1) && lx_token_id(t, "<|im_start|>") == 1);
    CHECK(tc_run_cases(t, cJSON_GetObjectItem(j, "cases"), LX_TOKENIZE_PARSE_SPECIAL, "smollm2", true) == 0);

    /* skip_special drops the chat markers */
    const char *chat = "<|im_start|>user\nHi there<|im_end|>\n";
    int32_t ids[64];
    int n = lx_tokenize(t, chat, strlen(chat), LX_TOKENIZE_PARSE_SPECIAL, ids, 64);
    char *s = tc_decode(t, ids, n, true);
    CHECK(s && strcmp(s, "user\nHi there\n") == 0);
    free(s);

    /* speed: every case text repeated to about 4 MB, encoded cold (cache cleared by reload) */
    size_t cap = 1 << 22, len = 0;
    char *big = malloc(cap + 4096);
    const cJSON *c;
    while (len < cap) {
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
            const char *x = cJSON_GetObjectItem(c, "text")->valuestring;
            size_t l = strlen(x);
            if (len + l + 1 > cap + 4096) break;
            memcpy(big + len, x, l);
            len += l;
            big[len++] = ' ';
        }
    }
    lx_tokenizer_free(t);
    t = lx_tokenizer_load(path);
    CHECK(t != NULL);
    if (t) {
        t0 = t_now_s();
        int total = lx_tokenize(t, big, len, LX_TOKENIZE_PARSE_SPECIAL, NULL, 0);
        double dt = t_now_s() - t0;
        CHECK(total > 0);
        printf("  encode: %.2f MB in %.3f s: %.1f MB/s, %.2f M tokens/s (%d tokens)\n",
               (double)len / 1e6, dt, (double)len / 1e6 / dt, total / 1e6 / dt, total);
        int32_t *all = malloc(sizeof *all * (size_t)(total > 0 ? total : 1));
        lx_tokenize(t, big, len, LX_TOKENIZE_PARSE_SPECIAL, all, total);
        t0 = t_now_s();
        long dl = lx_detokenize(t, all, total, false, NULL, 0);
        dt = t_now_s() - t0;
        printf("  decode: %.2f M tokens/s\n", total / 1e6 / dt);
        CHECK(dl == (long)len); /* byte-level BPE gives the text back */
        free(all);
    }
    free(big);
    lx_tokenizer_free(t);
    cJSON_Delete(j);
    return test_finish();
}
