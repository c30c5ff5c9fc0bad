/*
 * model.h -- the Llama-family decoder of the models layer: its configuration, its weights and
 * its forward pass. Built only on the public API (lx.h) and the sticky error (core/error.h).
 *
 * One struct covers Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3 and SmolLM2: they differ in rope
 * (base, scaling, pair layout), biases on q/k/v (Qwen2), RMS norms on q and k (Qwen3), and
 * whether the output head is tied to the embedding.
 */
#ifndef LX_MODELS_MODEL_H
#define LX_MODELS_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "lx.h"

#define LX_MODEL_MAX_EOS 8

typedef enum { LX_ARCH_LLAMA, LX_ARCH_MISTRAL, LX_ARCH_QWEN2, LX_ARCH_QWEN3 } lx_arch;
typedef enum { LX_ROPE_DEFAULT, LX_ROPE_LINEAR, LX_ROPE_LLAMA3 } lx_rope_kind;

typedef struct {
    lx_arch arch;
    char arch_name[32];
    int n_layers, hidden, n_heads, n_kv_heads, head_dim, ffn, vocab;
    int context_length;
    float rms_eps;
    float rope_theta;
    lx_rope_kind rope_kind;
    float rope_factor;                  /* linear and llama3 */
    float rope_low_freq, rope_high_freq; /* llama3 */
    int rope_original_ctx;              /* llama3 */
    bool rope_traditional;              /* adjacent pairs: GGUF llama files (permuted q/k) */
    bool qkv_bias, qk_norm, tied;
    int32_t bos;                        /* -1 none */
    int32_t eos[LX_MODEL_MAX_EOS];
    int n_eos;
} lx_model_config;

/* A linear layer y = x W^T (+ b): W plain [out, in], or MLX affine-quantized (wq uint32,
 * scales, biases; group size and bits). */
typedef struct {
    lx_array w, scales, biases, bias;
    int group, bits; /* bits 0: plain */
    int out, in;
} lx_linear;

typedef struct {
    lx_array attn_norm, ffn_norm, q_norm, k_norm; /* q_norm/k_norm: Qwen3 */
    lx_linear q, k, v, o, gate, up, down;
} lx_layer;

struct lx_model {
    lx_model_config cfg;
    lx_weights *weights;      /* owns and keeps every weight array */
    lx_array rope_freqs;      /* llama3 / custom frequencies, or null */
    lx_dtype act;             /* activation (and KV cache) dtype */
    lx_dtype rope_round;      /* rope frequencies rounded to this type (float32: not) */
    lx_linear embed;          /* [vocab, hidden]; quantized embeddings are dequantized by row */
    lx_linear head;           /* the output head (embed when tied) */
    lx_array final_norm;
    lx_layer *layers;
    lx_array *owned;          /* arrays the model made from its weights (kept; freed with it) */
    int n_owned, cap_owned;
    lx_tokenizer *tok;
    struct lx_jinja *chat_template; /* NULL: the model has none */
    char *path;
    char describe[256];
};

/* ---- model_config.c ------------------------------------------------------------------- */
/* From a Hugging Face folder: config.json (+ generation_config.json). */
lx_status lx_model_config_from_hf(lx_model_config *c, const char *dir);
/* From a GGUF file's metadata. */
lx_status lx_model_config_from_gguf(lx_model_config *c, const lx_weights *w, const char *file);
/* Checks sizes against each other and bounds; names `origin` in messages. */
lx_status lx_model_config_check(const lx_model_config *c, const char *origin);

/* ---- model_forward.c ------------------------------------------------------------------ */
typedef struct lx_kv_cache lx_kv_cache;
/* Logits for ids [L] (int32) fed at positions [pos, pos + L) of the cache, which takes their
 * keys and values. all_rows: logits of every position [L, vocab], else of the last [1, vocab].
 * float32 logits. A null array and the error set on failure. */
lx_array lx_model_forward(const lx_model *m, lx_array ids, lx_kv_cache *cache, bool all_rows);

#endif
