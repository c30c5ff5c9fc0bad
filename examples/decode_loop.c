/*
 * decode_loop.c -- the lx loop pattern on a toy "model": weights kept once, every step's
 * intermediates released automatically by the next eval, memory flat from step to step.
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
    lx_random_split(key, &k1, &k2);
    lx_array w_out = lx_mul_scalar(lx_random_normal(wshape, 2, LX_FLOAT32, k1), 0.05);
    lx_array embed = lx_random_normal(eshape, 2, LX_FLOAT32, k2);
    lx_keep(w_out, embed);                 /* weights: survive every eval */
    lx_eval(w_out, embed);

    int32_t first = 1;
    lx_array token = lx_array_i32(&first, (int[]){1}, 1);
    size_t base_mem = 0, base_tracked = 0;
    for (int step = 0; step < STEPS; step++) {
        lx_array x = lx_take(embed, token, 0);               /* [1, DIM] */
        x = lx_rms_norm(x, (lx_array){0}, 1e-5f);
        lx_array h = lx_silu(x);
        lx_array logits = lx_matmul(h, w_out);               /* [1, VOCAB] */
        lx_array probs = lx_softmax(logits, -1);
        token = lx_argmax(probs, -1, false);                 /* the next input */
        if (lx_eval(token) != LX_OK) {                       /* sweeps everything unkept */
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
