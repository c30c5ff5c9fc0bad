/*
 * model_config.c -- a Llama-family model's hyperparameters from a Hugging Face config.json
 * (transformers 4.x `rope_theta` / `rope_scaling` and 5.x `rope_parameters`) with its
 * generation_config.json, or from a GGUF file's `<arch>.*` metadata.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/model.h"
#include "models/model_util.h"

static void config_defaults(lx_model_config *c) {
    memset(c, 0, sizeof *c);
    c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_kind = LX_ROPE_DEFAULT;
    c->rope_factor = 1.0f;
    c->bos = -1;
    c->context_length = 4096;
}

static bool set_arch(lx_model_config *c, const char *name) {
    static const struct { const char *name; lx_arch arch; } known[] = {
        {"llama", LX_ARCH_LLAMA},   {"mistral", LX_ARCH_MISTRAL}, {"qwen2", LX_ARCH_QWEN2},
        {"qwen3", LX_ARCH_QWEN3},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i].name) == 0) {
            c->arch = known[i].arch;
            snprintf(c->arch_name, sizeof c->arch_name, "%s", name);
            c->qk_norm = c->arch == LX_ARCH_QWEN3;
            return true;
        }
    return false;
}

/* ---- config.json ----------------------------------------------------------------------- */

static bool json_int(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= INT_MIN && d <= INT_MAX) || d != floor(d)) return false;
    *out = (int)d;
    return true;
}

static bool json_float(const cJSON *o, const char *key, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return false;
    *out = (float)v->valuedouble;
    return true;
}

/* eos_token_id: an int or a list of ints; returns false if present but malformed. */
static bool json_eos(lx_model_config *c, const cJSON *o) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "eos_token_id");
    if (!v || cJSON_IsNull(v)) return true;
    int n = 0;
    int32_t ids[LX_MODEL_MAX_EOS];
    if (cJSON_IsNumber(v)) {
        ids[n++] = (int32_t)v->valuedouble;
    } else if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsNumber(e)) return false;
            if (n < LX_MODEL_MAX_EOS) ids[n++] = (int32_t)e->valuedouble;
        }
    } else {
        return false;
    }
    memcpy(c->eos, ids, sizeof(int32_t) * (size_t)n);
    c->n_eos = n;
    return true;
}

/* The rope block of either transformers style; `o` is rope_scaling or rope_parameters. */
static lx_status rope_from_json(lx_model_config *c, const cJSON *o, const char *file) {
    if (!o || cJSON_IsNull(o)) return LX_OK;
    if (!cJSON_IsObject(o))
        return lx_set_error(LX_E_FORMAT, "%s: rope_scaling / rope_parameters is not an object", file);
    json_float(o, "rope_theta", &c->rope_theta);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "rope_type");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(o, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "default";
    if (strcmp(type, "default") == 0) {
        c->rope_kind = LX_ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
        c->rope_kind = LX_ROPE_LINEAR;
        if (!json_float(o, "factor", &c->rope_factor) || !(c->rope_factor > 0))
            return lx_set_error(LX_E_FORMAT, "%s: linear rope scaling needs a positive factor", file);
    } else if (strcmp(type, "llama3") == 0) {
        c->rope_kind = LX_ROPE_LLAMA3;
        if (!json_float(o, "factor", &c->rope_factor) ||
            !json_float(o, "low_freq_factor", &c->rope_low_freq) ||
            !json_float(o, "high_freq_factor", &c->rope_high_freq) ||
            !json_int(o, "original_max_position_embeddings", &c->rope_original_ctx))
            return lx_set_error(LX_E_FORMAT, "%s: llama3 rope scaling needs factor, "
                                "low_freq_factor, high_freq_factor and "
                                "original_max_position_embeddings", file);
    } else {
        return lx_set_error(LX_E_UNSUPPORTED, "%s: rope type '%s' is not supported (default, "
                            "linear, llama3)", file, type);
    }
    return LX_OK;
}

lx_status lx_model_config_from_hf(lx_model_config *c, const char *dir) {
    config_defaults(c);
    char *file = lx_path_join(dir, "config.json");
    if (!file) return lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
    lx_status st = LX_OK;
    cJSON *j = lx_json_load(file, &st);
    if (!j) goto out;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (!cJSON_IsString(mt)) {
        st = lx_set_error(LX_E_FORMAT, "%s: no model_type", file);
        goto out;
    }
    if (!set_arch(c, mt->valuestring)) {
        st = lx_set_error(LX_E_UNSUPPORTED, "%s: architecture '%s' is not supported (llama, "
                          "mistral, qwen2, qwen3)", file, mt->valuestring);
        goto out;
    }
    if (!json_int(j, "num_hidden_layers", &c->n_layers) ||
        !json_int(j, "hidden_size", &c->hidden) ||
        !json_int(j, "num_attention_heads", &c->n_heads) ||
        !json_int(j, "intermediate_size", &c->ffn) || !json_int(j, "vocab_size", &c->vocab)) {
        st = lx_set_error(LX_E_FORMAT, "%s: num_hidden_layers, hidden_size, num_attention_heads, "
                          "intermediate_size and vocab_size must be integers", file);
        goto out;
    }
    if (!json_int(j, "num_key_value_heads", &c->n_kv_heads)) c->n_kv_heads = c->n_heads;
    if (!json_int(j, "head_dim", &c->head_dim))
        c->head_dim = c->n_heads > 0 ? c->hidden / c->n_heads : 0;
    json_int(j, "max_position_embeddings", &c->context_length);
    json_float(j, "rms_norm_eps", &c->rms_eps);
    json_float(j, "rope_theta", &c->rope_theta);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    c->tied = cJSON_IsTrue(tie);
    if ((st = rope_from_json(c, cJSON_GetObjectItemCaseSensitive(j, "rope_scaling"), file)) ||
        (st = rope_from_json(c, cJSON_GetObjectItemCaseSensitive(j, "rope_parameters"), file)))
        goto out;
    int bos;
    if (json_int(j, "bos_token_id", &bos)) c->bos = bos;
    if (!json_eos(c, j)) {
        st = lx_set_error(LX_E_FORMAT, "%s: eos_token_id is neither an integer nor a list of them",
                          file);
        goto out;
    }
    cJSON_Delete(j);
    j = NULL;
    /* generation_config.json, when present, says which tokens end a turn */
    free(file);
    file = lx_path_join(dir, "generation_config.json");
    if (!file) {
        st = lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
        goto out;
    }
    if (lx_file_exists(file)) {
        j = lx_json_load(file, &st);
        if (!j) goto out;
        if (json_int(j, "bos_token_id", &bos)) c->bos = bos;
        if (!json_eos(c, j)) {
            st = lx_set_error(LX_E_FORMAT, "%s: eos_token_id is neither an integer nor a list of "
                              "them", file);
            goto out;
        }
    }
    st = lx_model_config_check(c, dir);
out:
    cJSON_Delete(j);
    free(file);
    return st;
}

/* ---- GGUF metadata ------------------------------------------------------------------------ */

static bool meta_long(const lx_weights *w, const char *arch, const char *key, long *out) {
    char name[128];
    snprintf(name, sizeof name, "%s%s%s", arch ? arch : "", arch ? "." : "", key);
    const char *s = lx_weights_metadata(w, name);
    if (!s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static bool meta_int(const lx_weights *w, const char *arch, const char *key, int *out) {
    long v;
    if (!meta_long(w, arch, key, &v) || v < INT_MIN || v > INT_MAX) return false;
    *out = (int)v;
    return true;
}

static bool meta_float(const lx_weights *w, const char *arch, const char *key, float *out) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    const char *s = lx_weights_metadata(w, name);
    if (!s) return false;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) return false;
    *out = (float)v;
    return true;
}

lx_status lx_model_config_from_gguf(lx_model_config *c, const lx_weights *w, const char *file) {
    config_defaults(c);
    const char *arch = lx_weights_metadata(w, "general.architecture");
    if (!arch) return lx_set_error(LX_E_FORMAT, "%s: no general.architecture", file);
    if (!set_arch(c, arch))
        return lx_set_error(LX_E_UNSUPPORTED, "%s: architecture '%s' is not supported (llama, "
                            "qwen2, qwen3)", file, arch);
    /* llama.cpp's converter permutes llama's q/k rows so that rope rotates adjacent pairs;
     * qwen2/qwen3 files keep Hugging Face's half-split layout */
    c->rope_traditional = c->arch == LX_ARCH_LLAMA;
    if (!meta_int(w, arch, "block_count", &c->n_layers) ||
        !meta_int(w, arch, "embedding_length", &c->hidden) ||
        !meta_int(w, arch, "attention.head_count", &c->n_heads) ||
        !meta_int(w, arch, "feed_forward_length", &c->ffn))
        return lx_set_error(LX_E_FORMAT, "%s: %s.block_count, embedding_length, "
                            "attention.head_count and feed_forward_length must be integers", file,
                            arch);
    if (!meta_int(w, arch, "attention.head_count_kv", &c->n_kv_heads)) c->n_kv_heads = c->n_heads;
    if (!meta_int(w, arch, "attention.key_length", &c->head_dim))
        c->head_dim = c->n_heads > 0 ? c->hidden / c->n_heads : 0;
    meta_int(w, arch, "context_length", &c->context_length);
    meta_float(w, arch, "attention.layer_norm_rms_epsilon", &c->rms_eps);
    meta_float(w, arch, "rope.freq_base", &c->rope_theta);
    if (!meta_int(w, arch, "vocab_size", &c->vocab)) {
        int n = lx_weights_metadata_array_len(w, "tokenizer.ggml.tokens");
        if (n <= 0) return lx_set_error(LX_E_FORMAT, "%s: no vocab_size and no tokenizer.ggml.tokens", file);
        c->vocab = n;
    }
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *scaling = lx_weights_metadata(w, key);
    if (scaling && strcmp(scaling, "none") != 0) {
        if (strcmp(scaling, "linear") != 0)
            return lx_set_error(LX_E_UNSUPPORTED, "%s: rope scaling '%s' is not supported (none, "
                                "linear)", file, scaling);
        c->rope_kind = LX_ROPE_LINEAR;
        if (!meta_float(w, arch, "rope.scaling.factor", &c->rope_factor) || !(c->rope_factor > 0))
            return lx_set_error(LX_E_FORMAT, "%s: linear rope scaling needs a positive factor", file);
    }
    int id;
    if (meta_int(w, NULL, "tokenizer.ggml.bos_token_id", &id)) c->bos = id;
    /* the end-of-generation set: eos, and the end-of-turn / end-of-message tokens when named */
    static const char *const eog_keys[] = {"tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.eot_token_id",
                                           "tokenizer.ggml.eom_token_id"};
    for (size_t i = 0; i < sizeof eog_keys / sizeof eog_keys[0]; i++) {
        if (!meta_int(w, NULL, eog_keys[i], &id)) continue;
        bool dup = false;
        for (int k = 0; k < c->n_eos; k++) dup |= c->eos[k] == id;
        if (!dup && c->n_eos < LX_MODEL_MAX_EOS) c->eos[c->n_eos++] = id;
    }
    return lx_model_config_check(c, file);
}

lx_status lx_model_config_check(const lx_model_config *c, const char *origin) {
    if (c->n_layers <= 0 || c->n_layers > 1024 || c->hidden <= 0 || c->hidden > (1 << 20) ||
        c->n_heads <= 0 || c->n_heads > 4096 || c->n_kv_heads <= 0 ||
        c->n_heads % c->n_kv_heads != 0 || c->head_dim <= 0 || c->head_dim > 4096 ||
        c->head_dim % 2 != 0 || c->ffn <= 0 || c->ffn > (1 << 24) || c->vocab <= 0 ||
        c->vocab > (1 << 24))
        return lx_set_error(LX_E_FORMAT, "%s: implausible sizes: %d layers, hidden %d, %d heads "
                            "(%d key/value heads) of %d, ffn %d, vocab %d", origin, c->n_layers,
                            c->hidden, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn, c->vocab);
    if ((int64_t)c->n_heads * c->head_dim > (1 << 22))
        return lx_set_error(LX_E_FORMAT, "%s: %d heads of %d is too large", origin, c->n_heads,
                            c->head_dim);
    if (c->context_length <= 0) return lx_set_error(LX_E_FORMAT, "%s: context length %d", origin,
                                                    c->context_length);
    if (!(c->rms_eps > 0) || !(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return lx_set_error(LX_E_FORMAT, "%s: rms_norm_eps %g and rope_theta %g must be positive",
                            origin, c->rms_eps, c->rope_theta);
    if (c->rope_kind == LX_ROPE_LLAMA3 &&
        (!(c->rope_factor > 0) || !(c->rope_high_freq > c->rope_low_freq) ||
         !(c->rope_low_freq > 0) || c->rope_original_ctx <= 0))
        return lx_set_error(LX_E_FORMAT, "%s: llama3 rope scaling: factor %g, low_freq_factor %g, "
                            "high_freq_factor %g, original context %d", origin, c->rope_factor,
                            c->rope_low_freq, c->rope_high_freq, c->rope_original_ctx);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos[i] < 0 || c->eos[i] >= c->vocab)
            return lx_set_error(LX_E_FORMAT, "%s: end token id %d is outside the vocabulary (%d)",
                                origin, c->eos[i], c->vocab);
    return LX_OK;
}
