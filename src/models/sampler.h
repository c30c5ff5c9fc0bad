/*
 * sampler.h -- the next-token sampler of the generator (internal API of the models layer).
 *
 * Hugging Face's order: repetition penalty over the last repeat_last_n tokens, temperature
 * (0 = greedy argmax after the penalty), top-k, top-p, min-p, then a categorical draw with the
 * sampler's own random key. Each step is one replay of a compiled closure (no retrace, no
 * allocation growth) and needs no host sync: the new token enters the repetition window lazily.
 */
#ifndef LX_MODELS_SAMPLER_H
#define LX_MODELS_SAMPLER_H

#include <stdint.h>

#include "lx.h"

typedef struct lx_sampler lx_sampler;

/* temperature >= 0 (0 = greedy); top_k >= 0 (0 = off; >= vocab is off); top_p in (0, 1]
 * (1 = off); min_p in [0, 1] (0 = off); repeat_penalty > 0 (1 = off); repeat_last_n >= 0
 * (0 = off). */
typedef struct {
    float temperature;
    int top_k;
    float top_p;
    float min_p;
    float repeat_penalty;
    int repeat_last_n;
    uint64_t seed;
} lx_sampler_config;

/* NULL + error (LX_E_ARG) on bad values. */
lx_sampler *lx_sampler_new(const lx_sampler_config *c, int vocab);
/* Adds prompt/generated tokens to the repetition window (ids known on the host, each in
 * [0, vocab)). */
lx_status lx_sampler_accept_ids(lx_sampler *s, const int32_t *ids, int n);
/* logits: [1, vocab] or [vocab] float (f32/f16/bf16), lazy is fine. Returns the next token as a
 * lazy int32 [1] array (tracked, unkept) and advances the sampler's own state (random key,
 * repetition window -- which also takes this new token, lazily, with no host sync); state
 * arrays are kept by the sampler and the old ones lx_free'd, so a caller's
 * lx_async_eval(token) pattern keeps memory flat. Null array + error on failure (the state is
 * then unchanged). */
lx_array lx_sampler_next(lx_sampler *s, lx_array logits);
/* The current state arrays (up to 4; at most cap written) so the caller can pass them to the
 * same lx_async_eval; returns how many there are. */
int lx_sampler_state(const lx_sampler *s, lx_array *out, int cap);
/* Releases its closures and state. NULL is fine. */
void lx_sampler_free(lx_sampler *s);
/* Traces made by the sampler's closures so far (tests: stays 1 per logits dtype/shape). */
int lx_sampler_trace_count(const lx_sampler *s);

#endif
