/*
 * fuzz_gguf_vocab.c -- libFuzzer target: a GGUF file's tokenizer.ggml.* vocabulary (gpt2 BPE or
 * llama SentencePiece) built from arbitrary bytes, then a fixed text encoded under every flag
 * set, decoded both ways and streamed. A refusal must set an error.
 */
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "models/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    io_image *im = io_image_from_memory(data, size);
    if (!im) {
        lx_clear_error();
        return 0;
    }
    lx_weights *w = io_gguf_parse_metadata(im, "fuzz.gguf");
    if (!w && lx_error() == LX_OK) abort();
    lx_tokenizer *t = w ? tok_from_gguf_weights(w, "fuzz.gguf") : NULL;
    if (w && !t && lx_error() == LX_OK) abort();
    if (t) {
        static const char text[] = "Hello  wörld 123 <|im_start|>user\n\xe4\xb8\x89 <s>\xf0\x9f\x98\x80 \t x";
        int32_t ids[256];
        for (unsigned f = 0; f < 4; f++) {
            int n = lx_tokenize(t, text, sizeof text - 1, f, ids, 256);
            if (n < 0) {
                if (lx_error() == LX_OK) abort();
                continue;
            }
            if (n > 256) n = 256;
            char out[1024];
            for (int skip = 0; skip < 2; skip++) lx_detokenize(t, ids, n, skip, out, sizeof out);
            lx_detokenizer *d = lx_detokenizer_new(t, false);
            for (int i = 0; d && i < n; i++) {
                size_t len;
                lx_detokenizer_push(d, ids[i], &len);
            }
            lx_detokenizer_free(d);
        }
        lx_tokenizer_free(t);
    }
    lx_weights_free(w);
    io_image_release(im);
    lx_clear_error();
    lx_sweep();
    return 0;
}
