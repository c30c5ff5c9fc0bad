/*
 * decode_loop.c -- the lx loop pattern on a toy "model": weights kept once, the token and the
 * random key carried from step to step, every step's intermediates released automatically by
 * the next eval, memory flat from step to step.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lx.h"

#define DIM 256
#define VOCAB 512
#define STEPS 2000

int main(void) {
    int wshape[2] = {DIM, VOCAB}, eshape[2] = {VOCAB, DIM};
    lx_array key = lx_random_key(42);
    lx_array k1, k2;
    lx_random_split(key, &key, &k1);
    lx_random_split(key, &key, &k2);
    lx_array w_out = lx_mul_scalar(lx_random_normal(wshape, 2, LX_FLOAT32, k1), 0.05);
    lx_array embed = lx_random_normal(eshape, 2, LX_FLOAT32, k2);
    lx_keep(w_out, embed);                 /* weights: survive every eval */
    lx_eval(w_out, embed, key);

    int32_t first = 1;
    lx_array token = lx_array_i32(&first, (int[]){1}, 1);
    lx_keep(token);
    size_t base_mem = 0, base_tracked = 0;
    for (int step = 0; step < STEPS; step++) {
        lx_array x = lx_take(embed, token, 0);               /* [1, DIM] */
        x = lx_rms_norm(x, (lx_array){0}, 1e-5f);
        lx_array h = lx_silu(x);
        lx_array logits = lx_matmul(h, w_out);               /* [1, VOCAB] */
        lx_array next_key, sub;
        lx_random_split(key, &next_key, &sub);
        lx_array old_token = token, old_key = key;
        token = lx_random_categorical(logits, -1, sub);      /* sample the next input */
        key = next_key;
        lx_free(old_token);                                  /* released at the next eval */
        lx_free(old_key);
        if (lx_eval(token, key) != LX_OK) {                  /* keeps them, sweeps the rest */
            fprintf(stderr, "eval failed: %s\n", lx_error_message());
            return 1;
        }
        if (step == 10) {
            base_mem = lx_active_memory();
            base_tracked = lx_tracked_count();
        }
        if (step % 500 == 0 || step == STEPS - 1)
            printf("step %4d  token %4d  tracked %zu  active %zu bytes\n", step,
                   lx_item_i32(token), lx_tracked_count(), lx_active_memory());
    }
    int flat = lx_active_memory() == base_mem && lx_tracked_count() == base_tracked;
    printf("memory %s after %d steps\n", flat ? "flat" : "NOT flat", STEPS);
    return flat ? 0 : 1;
}
