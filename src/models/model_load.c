/*
 * model_load.c -- lx_model_load: a Hugging Face folder or a GGUF file into an lx_model.
 *
 * The weights are found by name (Hugging Face's `model.layers.N.self_attn.q_proj.weight` or
 * GGUF's `blk.N.attn_q.weight`), each checked against the configuration's shape before use:
 * plain [out, in] in float32/float16/bfloat16, or MLX's affine format (`.weight` uint32 with
 * `.scales` and `.biases`), which GGUF Q4_0/Q4_1/Q8_0 tensors are converted to by the loader
 * and which MLX-community checkpoints carry, their group size and bits from config.json's
 * `quantization` (per-module overrides included).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "io/io.h"
#include "models/jinja.h"
#include "models/model.h"
#include "models/model_util.h"

typedef struct {
    const lx_weights *w;
    const char *origin;
    bool gguf;
    const cJSON *quant; /* config.json "quantization" (HF folders), or NULL */
} loader;

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static bool has(const loader *ld, const char *name) { return io_weights_find(ld->w, name) >= 0; }

static lx_array get(const loader *ld, const char *name) {
    if (!has(ld, name)) {
        lx_set_error(LX_E_FORMAT, "%s: the weight '%s' is missing", ld->origin, name);
        return LX_NULL_ARRAY;
    }
    return lx_weights_get(ld->w, name);
}

static bool is_float(lx_dtype t) { return t == LX_FLOAT32 || t == LX_FLOAT16 || t == LX_BFLOAT16; }

static lx_status shape_error(const loader *ld, const char *name, lx_array a, const char *want) {
    int shape[LX_MAX_NDIM];
    int nd = lx_shape(a, shape);
    char got[96] = "";
    size_t off = 0;
    for (int i = 0; i < nd && off < sizeof got - 16; i++)
        off += (size_t)snprintf(got + off, sizeof got - off, "%s%d", i ? ", " : "", shape[i]);
    return lx_set_error(LX_E_FORMAT, "%s: the weight '%s' has shape [%s] and dtype %s; %s "
                        "expected", ld->origin, name, got, lx_dtype_name(lx_dtype_of(a)), want);
}

/* A 1-D float weight of n entries (norms, biases). */
static lx_status vec(const loader *ld, const char *name, int n, lx_array *out) {
    lx_array a = get(ld, name);
    if (lx_is_null(a)) return lx_error();
    if (lx_ndim(a) != 1 || lx_dim(a, 0) != n || !is_float(lx_dtype_of(a))) {
        char want[64];
        snprintf(want, sizeof want, "a float vector of %d", n);
        return shape_error(ld, name, a, want);
    }
    *out = a;
    return LX_OK;
}

/* Group size and bits of a quantized module: GGUF's per-tensor metadata, or config.json's
 * quantization block with its per-module entries. */
static lx_status quant_params(const loader *ld, const char *module, const char *wname, int *group,
                              int *bits) {
    if (ld->gguf) {
        char key[600];
        snprintf(key, sizeof key, "%s.quantization", wname);
        const char *q = lx_weights_metadata(ld->w, key);
        if (!q || sscanf(q, "affine:%d:%d", group, bits) != 2)
            return lx_set_error(LX_E_FORMAT, "%s: the weight '%s' is uint32 but has no affine "
                                "quantization", ld->origin, wname);
        return LX_OK;
    }
    if (!ld->quant)
        return lx_set_error(LX_E_FORMAT, "%s: the weight '%s' is quantized (it has scales) but "
                            "config.json has no quantization block", ld->origin, wname);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(ld->quant, "group_size");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(ld->quant, "bits");
    const cJSON *over = cJSON_GetObjectItemCaseSensitive(ld->quant, module);
    if (cJSON_IsObject(over)) {
        const cJSON *og = cJSON_GetObjectItemCaseSensitive(over, "group_size");
        const cJSON *ob = cJSON_GetObjectItemCaseSensitive(over, "bits");
        if (cJSON_IsNumber(og)) g = og;
        if (cJSON_IsNumber(ob)) b = ob;
    }
    if (!cJSON_IsNumber(g) || !cJSON_IsNumber(b))
        return lx_set_error(LX_E_FORMAT, "%s: config.json's quantization has no group_size and "
                            "bits for '%s'", ld->origin, module);
    *group = (int)g->valuedouble;
    *bits = (int)b->valuedouble;
    return LX_OK;
}

/* The linear layer `module` (e.g. "model.layers.0.self_attn.q_proj" or "blk.0.attn_q"):
 * `.weight` [out, in], quantized with `.scales`/`.biases`, optional `.bias`. */
static lx_status linear(const loader *ld, const char *module, int out, int in, bool bias_ok,
                        lx_linear *l) {
    char wname[512], sname[512], bname[512], biasname[512];
    snprintf(wname, sizeof wname, "%s.weight", module);
    snprintf(sname, sizeof sname, "%s.scales", module);
    snprintf(bname, sizeof bname, "%s.biases", module);
    snprintf(biasname, sizeof biasname, "%s.bias", module);
    memset(l, 0, sizeof *l);
    l->out = out;
    l->in = in;
    lx_array w = get(ld, wname);
    if (lx_is_null(w)) return lx_error();
    if (lx_dtype_of(w) == LX_UINT32 && has(ld, sname)) {
        int group, bits;
        lx_status st = quant_params(ld, module, wname, &group, &bits);
        if (st) return st;
        if (group <= 0 || bits <= 0 || bits > 8 || in % group || ((int64_t)in * bits) % 32)
            return lx_set_error(LX_E_FORMAT, "%s: '%s': group size %d and bits %d do not fit %d "
                                "inputs", ld->origin, wname, group, bits, in);
        lx_array s = get(ld, sname), b = get(ld, bname);
        if (lx_is_null(s) || lx_is_null(b)) return lx_error();
        if (lx_ndim(w) != 2 || lx_dim(w, 0) != out || lx_dim(w, 1) != in / 32 * bits) {
            char want[96];
            snprintf(want, sizeof want, "uint32 [%d, %d] (%d-bit)", out, in / 32 * bits, bits);
            return shape_error(ld, wname, w, want);
        }
        char want[96];
        snprintf(want, sizeof want, "float [%d, %d]", out, in / group);
        if (lx_ndim(s) != 2 || lx_dim(s, 0) != out || lx_dim(s, 1) != in / group ||
            !is_float(lx_dtype_of(s)))
            return shape_error(ld, sname, s, want);
        if (lx_ndim(b) != 2 || lx_dim(b, 0) != out || lx_dim(b, 1) != in / group ||
            !is_float(lx_dtype_of(b)))
            return shape_error(ld, bname, b, want);
        l->w = w;
        l->scales = s;
        l->biases = b;
        l->group = group;
        l->bits = bits;
    } else {
        if (lx_ndim(w) != 2 || lx_dim(w, 0) != out || lx_dim(w, 1) != in ||
            !is_float(lx_dtype_of(w))) {
            char want[64];
            snprintf(want, sizeof want, "float [%d, %d]", out, in);
            return shape_error(ld, wname, w, want);
        }
        l->w = w;
    }
    if (has(ld, biasname)) {
        if (!bias_ok)
            return lx_set_error(LX_E_UNSUPPORTED, "%s: '%s': this architecture has no bias there",
                                ld->origin, biasname);
        lx_status st = vec(ld, biasname, out, &l->bias);
        if (st) return st;
    }
    return LX_OK;
}

/* Names of one layer's tensors in either naming scheme. */
typedef struct {
    const char *attn_norm, *ffn_norm, *q_norm, *k_norm, *q, *k, *v, *o, *gate, *up, *down;
} layer_names;

static const layer_names hf_names = {
    "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_norm.weight",
    "self_attn.k_norm.weight", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
static const layer_names gguf_names = {
    "attn_norm.weight", "ffn_norm.weight", "attn_q_norm.weight", "attn_k_norm.weight", "attn_q",
    "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

static lx_status load_layer(const loader *ld, const lx_model_config *c, int i, lx_layer *ly) {
    const layer_names *nm = ld->gguf ? &gguf_names : &hf_names;
    char prefix[64], name[512];
    snprintf(prefix, sizeof prefix, ld->gguf ? "blk.%d." : "model.layers.%d.", i);
#define NAME(part) (snprintf(name, sizeof name, "%s%s", prefix, (part)), name)
    int qdim = c->n_heads * c->head_dim, kvdim = c->n_kv_heads * c->head_dim;
    bool bias = c->arch == LX_ARCH_QWEN2 || c->arch == LX_ARCH_LLAMA || c->arch == LX_ARCH_MISTRAL;
    lx_status st;
    if ((st = vec(ld, NAME(nm->attn_norm), c->hidden, &ly->attn_norm)) ||
        (st = vec(ld, NAME(nm->ffn_norm), c->hidden, &ly->ffn_norm)) ||
        (st = linear(ld, NAME(nm->q), qdim, c->hidden, bias, &ly->q)) ||
        (st = linear(ld, NAME(nm->k), kvdim, c->hidden, bias, &ly->k)) ||
        (st = linear(ld, NAME(nm->v), kvdim, c->hidden, bias, &ly->v)) ||
        (st = linear(ld, NAME(nm->o), c->hidden, qdim, false, &ly->o)) ||
        (st = linear(ld, NAME(nm->gate), c->ffn, c->hidden, false, &ly->gate)) ||
        (st = linear(ld, NAME(nm->up), c->ffn, c->hidden, false, &ly->up)) ||
        (st = linear(ld, NAME(nm->down), c->hidden, c->ffn, false, &ly->down)))
        return st;
    if (c->qk_norm &&
        ((st = vec(ld, NAME(nm->q_norm), c->head_dim, &ly->q_norm)) ||
         (st = vec(ld, NAME(nm->k_norm), c->head_dim, &ly->k_norm))))
        return st;
#undef NAME
    return LX_OK;
}

/* v rounded to a half type's nearest (ties to even), as a cast to it would. */
static float round_to(lx_dtype t, float v) {
    if (t == LX_FLOAT16) return lx_f16_to_f32(lx_f32_to_f16(v));
    if (t == LX_BFLOAT16) return lx_bf16_to_f32(lx_f32_to_bf16(v));
    return v;
}

/* llama3 frequency scaling (Meta's smooth interpolation between the low- and high-frequency
 * bands), or a GGUF file's rope_freqs factors; as lx_rope_freqs wants them: the period
 * base^(2i/d) of pair i, stretched where scaled. */
static lx_status rope_freqs(lx_model *m, const loader *ld) {
    const lx_model_config *c = &m->cfg;
    int half = c->head_dim / 2;
    bool file_factors = ld->gguf && has(ld, "rope_freqs.weight");
    if (c->rope_kind != LX_ROPE_LLAMA3 && !file_factors && m->rope_round == LX_FLOAT32)
        return LX_OK;
    float *f = malloc(sizeof(float) * (size_t)half);
    if (!f) return lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
    const float *factors = NULL;
    lx_array fa = LX_NULL_ARRAY;
    if (file_factors) {
        fa = lx_astype(get(ld, "rope_freqs.weight"), LX_FLOAT32);
        if (lx_is_null(fa) || lx_size(fa) != (size_t)half) {
            free(f);
            return lx_set_error(LX_E_FORMAT, "%s: rope_freqs.weight must have %d entries",
                                ld->origin, half);
        }
        factors = lx_data(fa);
        if (!factors) {
            free(f);
            return lx_error();
        }
    }
    for (int i = 0; i < half; i++) {
        double inv = pow((double)c->rope_theta, -2.0 * i / c->head_dim);
        if (factors) {
            inv /= factors[i];
        } else {
            double wavelen = 2 * M_PI / inv;
            double lo = c->rope_original_ctx / c->rope_low_freq;
            double hi = c->rope_original_ctx / c->rope_high_freq;
            if (wavelen > lo) {
                inv /= c->rope_factor;
            } else if (wavelen >= hi) {
                double smooth = (c->rope_original_ctx / wavelen - c->rope_low_freq) /
                                (c->rope_high_freq - c->rope_low_freq);
                inv = (1 - smooth) * inv / c->rope_factor + smooth * inv;
            }
        }
        inv = round_to(m->rope_round, (float)inv);
        f[i] = (float)(1.0 / inv);
    }
    m->rope_freqs = lx_array_f32(f, (int[]){half}, 1);
    free(f);
    if (lx_is_null(m->rope_freqs)) return lx_error();
    lx_keep(m->rope_freqs);
    return lx_eval(m->rope_freqs);
}

/* Quantized layers' scales and biases in the activation dtype, converted once: the product
 * takes them in its own dtype and would otherwise convert them on every call (8.4M values a
 * token for SmolLM2-135M, ~10% of a decode step). */
static bool own(lx_model *m, lx_array a) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        lx_array *o = realloc(m->owned, sizeof *o * (size_t)cap);
        if (!o) return false;
        m->owned = o;
        m->cap_owned = cap;
    }
    lx_keep(a);
    m->owned[m->n_owned++] = a;
    return true;
}

static lx_status to_act(lx_model *m, lx_linear *l, lx_array *made, int *n_made) {
    if (!l->bits || lx_dtype_of(l->scales) == m->act) return LX_OK;
    l->scales = lx_astype(l->scales, m->act);
    l->biases = lx_astype(l->biases, m->act);
    if (lx_is_null(l->scales) || lx_is_null(l->biases)) return lx_error();
    if (!own(m, l->scales) || !own(m, l->biases))
        return lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
    made[(*n_made)++] = l->scales;
    made[(*n_made)++] = l->biases;
    return LX_OK;
}

static lx_status scales_to_act(lx_model *m) {
    int n = 0;
    lx_array made[16];
    lx_status st = LX_OK;
    bool tied = m->head.w.id == m->embed.w.id;
    if ((st = to_act(m, &m->embed, made, &n))) return st;
    if (tied) m->head = m->embed;
    else if ((st = to_act(m, &m->head, made, &n))) return st;
    if (n && (st = lx_eval_n(made, n))) return st;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        lx_layer *ly = &m->layers[i];
        lx_linear *ls[7] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->gate, &ly->up, &ly->down};
        n = 0;
        for (int k = 0; k < 7; k++)
            if ((st = to_act(m, ls[k], made, &n))) return st;
        if (n && (st = lx_eval_n(made, n))) return st;
    }
    return LX_OK;
}

static lx_status load_tensors(lx_model *m, const loader *ld) {
    lx_model_config *c = &m->cfg;
    lx_status st;
    const char *embed = ld->gguf ? "token_embd" : "model.embed_tokens";
    const char *head = ld->gguf ? "output" : "lm_head";
    const char *norm = ld->gguf ? "output_norm.weight" : "model.norm.weight";
    if ((st = linear(ld, embed, c->vocab, c->hidden, false, &m->embed))) return st;
    char hname[64];
    snprintf(hname, sizeof hname, "%s.weight", head);
    if (has(ld, hname)) {
        c->tied = false;
        if ((st = linear(ld, head, c->vocab, c->hidden, false, &m->head))) return st;
    } else {
        c->tied = true; /* no head of its own: the embedding is the head */
        m->head = m->embed;
    }
    if ((st = vec(ld, norm, c->hidden, &m->final_norm))) return st;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
    for (int i = 0; i < c->n_layers; i++)
        if ((st = load_layer(ld, c, i, &m->layers[i]))) return st;
    /* Activations are float32 whatever the weights: on the CPU half types are computed in
     * float32 anyway, and the references (transformers on the fixtures, float32 over the
     * dequantized GGUF) are float32 computations. A half checkpoint's rope frequencies are
     * rounded to its dtype: transformers keeps them in a buffer that the cast of the model to
     * that dtype rounds (the bfloat16 fixture agrees to 2e-6 with it, 3e-3 without). */
    m->act = LX_FLOAT32;
    if ((st = scales_to_act(m))) return st;
    lx_dtype wt = m->layers[0].q.bits ? LX_FLOAT32 : lx_dtype_of(m->layers[0].q.w);
    m->rope_round = !ld->gguf && (wt == LX_FLOAT16 || wt == LX_BFLOAT16) ? wt : LX_FLOAT32;
    return rope_freqs(m, ld);
}

static const char *weight_kind(const lx_model *m) {
    const lx_linear *l = &m->layers[0].q;
    static _Thread_local char buf[32];
    if (l->bits) snprintf(buf, sizeof buf, "%d-bit (group %d)", l->bits, l->group);
    else snprintf(buf, sizeof buf, "%s", lx_dtype_name(lx_dtype_of(l->w)));
    return buf;
}

/* tokenizer_config.json's chat_template: a string, or a list of {name, template} (the
 * "default" one); newer folders keep it in chat_template.jinja. NULL without one. */
static char *hf_chat_template(const char *dir, lx_status *st) {
    *st = LX_OK;
    char *path = lx_path_join(dir, "chat_template.jinja");
    if (!path) {
        *st = lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
        return NULL;
    }
    if (lx_file_exists(path)) {
        char *t = lx_read_text_file(path, NULL);
        if (!t) *st = lx_error();
        free(path);
        return t;
    }
    free(path);
    path = lx_path_join(dir, "tokenizer_config.json");
    if (!path) {
        *st = lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
        return NULL;
    }
    char *out = NULL;
    if (lx_file_exists(path)) {
        cJSON *j = lx_json_load(path, st);
        if (j) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
            if (cJSON_IsArray(t)) {
                const cJSON *e, *pick = NULL;
                cJSON_ArrayForEach(e, t) {
                    const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
                    if (!pick || (cJSON_IsString(n) && strcmp(n->valuestring, "default") == 0))
                        pick = e;
                }
                t = pick ? cJSON_GetObjectItemCaseSensitive(pick, "template") : NULL;
            }
            if (cJSON_IsString(t)) {
                out = strdup(t->valuestring);
                if (!out) *st = lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
            }
            cJSON_Delete(j);
        }
    }
    free(path);
    return out;
}

static lx_status load_chat_template(lx_model *m, const char *text, const char *origin) {
    if (!text) return LX_OK;
    m->chat_template = lx_jinja_parse(text, strlen(text), origin);
    return m->chat_template ? LX_OK : lx_error();
}

static lx_status load_hf(lx_model *m, const char *dir) {
    lx_status st = lx_model_config_from_hf(&m->cfg, dir);
    if (st) return st;
    char *cfg_path = lx_path_join(dir, "config.json");
    if (!cfg_path) return lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
    cJSON *cfg = lx_json_load(cfg_path, &st);
    free(cfg_path);
    if (!cfg) return st;
    const cJSON *quant = cJSON_GetObjectItemCaseSensitive(cfg, "quantization");
    if (!cJSON_IsObject(quant)) quant = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    char *wpath = lx_path_join(dir, "model.safetensors");
    char *ipath = lx_path_join(dir, "model.safetensors.index.json");
    if (!wpath || !ipath) {
        st = lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
        goto out;
    }
    if (!lx_file_exists(wpath) && !lx_file_exists(ipath)) {
        st = lx_set_error(LX_E_IO, "%s: no model.safetensors and no model.safetensors.index.json",
                          dir);
        goto out;
    }
    m->weights = lx_load(lx_file_exists(wpath) ? wpath : ipath);
    if (!m->weights) {
        st = lx_error();
        goto out;
    }
    loader ld = {m->weights, dir, false, cJSON_IsObject(quant) ? quant : NULL};
    if ((st = load_tensors(m, &ld))) goto out;
    m->tok = lx_tokenizer_load(dir);
    if (!m->tok) {
        st = lx_error();
        goto out;
    }
    char *tmpl = hf_chat_template(dir, &st);
    if (st) goto out;
    st = load_chat_template(m, tmpl, dir);
    free(tmpl);
out:
    free(wpath);
    free(ipath);
    cJSON_Delete(cfg);
    return st;
}

static lx_status load_gguf(lx_model *m, const char *file) {
    m->weights = lx_load(file);
    if (!m->weights) return lx_error();
    lx_status st = lx_model_config_from_gguf(&m->cfg, m->weights, file);
    if (st) return st;
    loader ld = {m->weights, file, true, NULL};
    if ((st = load_tensors(m, &ld))) return st;
    m->tok = lx_tokenizer_load(file);
    if (!m->tok) return lx_error();
    return load_chat_template(m, lx_weights_metadata(m->weights, "tokenizer.chat_template"),
                              file);
}

lx_model *lx_model_load(const char *path) {
    if (!path) {
        lx_set_error(LX_E_ARG, "lx_model_load: path is NULL");
        return NULL;
    }
    lx_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
        return NULL;
    }
    lx_status st;
    if (lx_dir_exists(path)) {
        char *cfg = lx_path_join(path, "config.json");
        bool ok = cfg && lx_file_exists(cfg);
        free(cfg);
        st = ok    ? load_hf(m, path)
             : cfg ? lx_set_error(LX_E_IO, "%s: a model folder needs config.json", path)
                   : lx_set_error(LX_E_OOM, "lx_model_load: out of memory");
    } else if (ends_with(path, ".gguf")) {
        st = lx_file_exists(path) ? load_gguf(m, path)
                                  : lx_set_error(LX_E_IO, "%s: no such file", path);
    } else {
        st = lx_set_error(LX_E_ARG, "%s: not a model folder (config.json, model.safetensors, "
                          "tokenizer.json) or a .gguf file", path);
    }
    if (!st && m->tok && m->cfg.n_eos == 0) {
        int32_t eos = lx_tokenizer_eos(m->tok);
        if (eos >= 0) m->cfg.eos[m->cfg.n_eos++] = eos;
    }
    if (st) {
        lx_model_free(m);
        return NULL;
    }
    const lx_model_config *c = &m->cfg;
    snprintf(m->describe, sizeof m->describe,
             "%s, %d layers, hidden %d, %d heads (%d kv) of %d, ffn %d, vocab %d, context %d, "
             "weights %s, activations %s%s", c->arch_name, c->n_layers, c->hidden, c->n_heads,
             c->n_kv_heads, c->head_dim, c->ffn, c->vocab, c->context_length, weight_kind(m),
             lx_dtype_name(m->act), c->tied ? ", tied head" : "");
    return m;
}

void lx_model_free(lx_model *m) {
    if (!m) return;
    if (!lx_is_null(m->rope_freqs)) lx_free(m->rope_freqs);
    for (int i = 0; i < m->n_owned; i++) lx_free(m->owned[i]);
    free(m->owned);
    lx_weights_free(m->weights);
    lx_tokenizer_free(m->tok);
    lx_jinja_free(m->chat_template);
    free(m->layers);
    free(m->path);
    free(m);
}

const lx_tokenizer *lx_model_tokenizer(const lx_model *m) { return m ? m->tok : NULL; }
const char *lx_model_describe(const lx_model *m) { return m ? m->describe : ""; }
int lx_model_vocab_size(const lx_model *m) { return m ? m->cfg.vocab : 0; }
int lx_model_context_length(const lx_model *m) { return m ? m->cfg.context_length : 0; }

int lx_model_eos_ids(const lx_model *m, int32_t *ids, int cap) {
    if (!m) return 0;
    for (int i = 0; i < m->cfg.n_eos && i < cap; i++) ids[i] = m->cfg.eos[i];
    return m->cfg.n_eos;
}
