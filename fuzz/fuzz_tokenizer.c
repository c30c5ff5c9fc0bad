/*
 * fuzz_tokenizer.c -- libFuzzer target for tokenizer.json: byte 0 is the length k of a text,
 * bytes 1..k the text (any bytes, invalid UTF-8 included), the rest a tokenizer.json. A file
 * that loads encodes the text (with and without special tokens, BOS/EOS), decodes the ids
 * in both skip modes, and streams them one at a time; a file that does not load must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"
#include "models/tokenizer.h"

static volatile unsigned fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t k = data[0];
    if (k > size - 1) k = size - 1;
    /* exact-size copies, so a read past either end is caught */
    char *text = malloc(k ? k : 1), *json = malloc(size - 1 - k ? size - 1 - k : 1);
    memcpy(text, data + 1, k);
    memcpy(json, data + 1 + k, size - 1 - k);
    lx_tokenizer *t = tok_from_json_text(json, size - 1 - k, "fuzz.json");
    if (!t && lx_error() == LX_OK) abort(); /* a failure must say why */
    if (t) {
        for (unsigned flags = 0; flags < 4; flags++) {
            int n = lx_tokenize(t, text, k, flags, NULL, 0);
            if (n < 0) abort(); /* encoding never fails on a loaded tokenizer */
            int32_t *ids = malloc(sizeof *ids * (size_t)(n ? n : 1));
            if (lx_tokenize(t, text, k, flags, ids, n) != n) abort();
            for (int skip = 0; skip < 2; skip++) {
                long len = lx_detokenize(t, ids, n, skip, NULL, 0);
                if (len < 0) abort();
                char *s = malloc((size_t)len + 1);
                if (lx_detokenize(t, ids, n, skip, s, (size_t)len + 1) != len) abort();
                /* the stream gives the same text */
                lx_detokenizer *d = lx_detokenizer_new(t, skip);
                size_t at = 0, l;
                for (int i = 0; i <= n; i++) {
                    const char *p = i < n ? lx_detokenizer_push(d, ids[i], &l)
                                          : lx_detokenizer_flush(d, &l);
                    if (!p || at + l > (size_t)len || memcmp(s + at, p, l) != 0) abort();
                    at += l;
                }
                if (at != (size_t)len) abort();
                lx_detokenizer_free(d);
                fuzz_sink += (unsigned)len;
                free(s);
            }
            for (int i = 0; i < n; i++) {
                const char *p = lx_token_piece(t, ids[i]);
                if (!p) abort();
                fuzz_sink += (unsigned)strlen(p) + lx_token_is_special(t, ids[i]);
            }
            free(ids);
        }
        lx_tokenizer_free(t);
    }
    lx_clear_error();
    free(text);
    free(json);
    return 0;
}
