/*
 * fuzz_common.h -- what the libFuzzer targets share: run a parser on the input bytes (as an
 * exact-size heap image, so AddressSanitizer sees any read past the end), then read every
 * byte of every array and every metadata string it produced, release it all and sweep.
 */
#ifndef LX_FUZZ_COMMON_H
#define LX_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/handle.h"
#include "core/node.h"
#include "io/io.h"

static volatile unsigned fuzz_sink;

static void fuzz_touch_node(lx_array a) {
    lx_node *n = lx_handle_peek(a);
    if (!n) return;
    const uint8_t *p = lx_node_ptr(n);
    size_t nb = lx_node_nbytes(n);
    unsigned s = 0;
    for (size_t i = 0; i < nb; i++) s += p[i];
    fuzz_sink += s;
    lx_node_release(n);
}

static void fuzz_touch_weights(lx_weights *w) {
    for (int i = 0; i < lx_weights_count(w); i++) {
        const char *name = lx_weights_name(w, i);
        fuzz_sink += (unsigned)strlen(name);
        fuzz_touch_node(lx_weights_get(w, name));
    }
    for (int i = 0; i < w->n_meta; i++) {
        const char *key = w->meta[i].key;
        const char *v = lx_weights_metadata(w, key);
        if (v) fuzz_sink += (unsigned)strlen(v);
        int n = lx_weights_metadata_array_len(w, key);
        for (int k = 0; k < n; k++) fuzz_sink += (unsigned)strlen(lx_weights_metadata_array_item(w, key, k));
    }
}

/* kind: 0 safetensors, 1 GGUF, 2 npy */
static int fuzz_one(const uint8_t *data, size_t size, int kind) {
    io_image *im = io_image_from_memory(data, size);
    if (!im) { lx_clear_error(); return 0; }
    if (kind == 2) {
        lx_array a = io_npy_parse(im, "fuzz.npy");
        if (lx_is_null(a) && lx_error() == LX_OK) abort(); /* a failure must say why */
        if (!lx_is_null(a)) fuzz_touch_node(a);
    } else {
        lx_weights *w = kind == 0 ? io_safetensors_parse(im, "fuzz.safetensors")
                                  : io_gguf_parse(im, "fuzz.gguf");
        if (!w && lx_error() == LX_OK) abort();
        if (w) fuzz_touch_weights(w);
        lx_weights_free(w);
    }
    io_image_release(im);
    lx_clear_error();
    lx_sweep();
    return 0;
}

#endif
