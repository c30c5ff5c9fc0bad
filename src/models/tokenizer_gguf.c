/*
 * tokenizer_gguf.c -- a GGUF's tokenizer.ggml.* metadata into the tokenizer, following
 * llama.cpp's llama-vocab.cpp: model "gpt2" is byte-level BPE over merges, its text first cut
 * by the pre-tokenizer regexes llama.cpp picks for tokenizer.ggml.pre (each regex splits the
 * pieces of the one before, matches and gaps both kept); model "llama" is SentencePiece
 * merged by score with <0xXX> byte fallback and a space before the text. Token types give
 * the control (special), user-defined and byte tokens. Only the metadata is read.
 */
#include "models/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/io.h"

/* the regexes, in order, llama.cpp applies for each pre-tokenizer type */
static const char k_re_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char k_re_llama3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_re_qwen2[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_re_poro[] = " ?[^(\\s|.,!?…。，、।۔،)]+";

typedef struct {
    const char *names;    /* '|'-separated tokenizer.ggml.pre values */
    const char *re[4];
    bool ignore_merges, add_bos;
} pre_type;

static const pre_type k_pre[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", k_re_gpt2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3", {k_re_llama3}, true, true},
    {"dbrx|smaug-bpe|chatglm-bpe", {k_re_llama3}, false, false},
    {"smollm|starcoder|refact|command-r|codeshell|exaone|minerva-7b", {"\\p{N}", k_re_gpt2}, false, false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|"
     "roberta-bpe|mpt|olmo|jais", {k_re_gpt2}, false, false},
    {"qwen2|deepseek-r1-qwen|stablelm2|megrez", {k_re_qwen2}, false, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", k_re_gpt2, "[0-9][0-9][0-9]"}, false, false},
    {"poro-chat|bloom|gpt3-finnish", {k_re_poro}, false, false},
    {"viking", {k_re_poro, "\\p{N}"}, false, false},
};

static bool name_in(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static bool gfail(const char *file, lx_status st, const char *what) {
    lx_set_error(st, "lx_tokenizer_load: %s: %s", file, what);
    return false;
}

static bool meta_u32(const lx_weights *w, const char *key, int64_t *out) {
    const char *v = lx_weights_metadata(w, key);
    if (!v) return false;
    char *e;
    long long x = strtoll(v, &e, 10);
    if (e == v || *e || x < 0 || x > INT32_MAX) return false;
    *out = x;
    return true;
}

static bool meta_bool(const lx_weights *w, const char *key, bool *out) {
    const char *v = lx_weights_metadata(w, key);
    if (!v) return false;
    if (!strcmp(v, "true")) *out = true;
    else if (!strcmp(v, "false")) *out = false;
    else return false;
    return true;
}

/* llama.cpp marks these end-of-generation texts control tokens whatever their type says */
static bool eog_text(const char *s) {
    static const char *const k[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                    "<|endoftext|>", "<EOT>", "<|eom_id|>"};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        if (!strcmp(s, k[i])) return true;
    return false;
}

static bool add_pre_step(lx_tokenizer *t, tok_pre p) {
    tok_pre *v = realloc(t->pre, sizeof *v * (size_t)(t->n_pre + 1));
    if (!v) {
        if (p.re) pcre2_code_free(p.re);
        tok_oom(t);
        return false;
    }
    t->pre = v;
    t->pre[t->n_pre++] = p;
    return true;
}

lx_tokenizer *tok_from_gguf_weights(const lx_weights *w, const char *file) {
    const char *model = lx_weights_metadata(w, "tokenizer.ggml.model");
    if (!model) {
        gfail(file, LX_E_FORMAT, "no tokenizer.ggml.model (the file has no tokenizer)");
        return NULL;
    }
    bool spm = !strcmp(model, "llama");
    if (!spm && strcmp(model, "gpt2") != 0) {
        lx_set_error(LX_E_UNSUPPORTED, "lx_tokenizer_load: %s: tokenizer model '%.40s' is not "
                     "supported (gpt2 and llama are)", file, model);
        return NULL;
    }
    int n = lx_weights_metadata_array_len(w, "tokenizer.ggml.tokens");
    if (n <= 0) {
        gfail(file, LX_E_FORMAT, "tokenizer.ggml.tokens is missing, empty or not an array");
        return NULL;
    }
    if (n > (1 << 26)) {
        gfail(file, LX_E_FORMAT, "tokenizer.ggml.tokens has too many entries");
        return NULL;
    }
    int nt = lx_weights_metadata_array_len(w, "tokenizer.ggml.token_type");
    int ns = lx_weights_metadata_array_len(w, "tokenizer.ggml.scores");
    if ((nt >= 0 && nt != n) || (ns >= 0 && ns != n)) {
        gfail(file, LX_E_FORMAT, "tokenizer.ggml.token_type / scores do not have one entry per token");
        return NULL;
    }
    lx_tokenizer *t = tok_new(file);
    if (!t) return NULL;
    t->gguf = true;
    t->spm = spm;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        const char *s = lx_weights_metadata_array_item(w, "tokenizer.ggml.tokens", i);
        char empty[32];
        if (!s || !*s) {
            snprintf(empty, sizeof empty, "[EMPTY_%d]", i);
            s = empty;
        }
        uint8_t attr = 0;
        if (nt > 0) {
            const char *ty = lx_weights_metadata_array_item(w, "tokenizer.ggml.token_type", i);
            long v = ty ? strtol(ty, NULL, 10) : 1;
            switch (v) {
            case 1: attr = 0; break;
            case 2: attr = TOK_UNKNOWN | TOK_SPECIAL | TOK_ADDED; break;
            case 3: attr = TOK_SPECIAL | TOK_ADDED; break;
            case 4: attr = TOK_ADDED; break;
            case 6: attr = TOK_BYTE; break;
            default: attr = TOK_UNUSED; break; /* unused, undefined */
            }
        }
        if (eog_text(s) && !(attr & TOK_SPECIAL)) attr = TOK_SPECIAL | TOK_ADDED;
        ok = tok_set_piece(t, i, s, strlen(s), attr);
        if (ok && ns > 0) {
            const char *sc = lx_weights_metadata_array_item(w, "tokenizer.ggml.scores", i);
            char *e = NULL;
            float f = sc ? strtof(sc, &e) : 0.0f;
            if (!sc || e == sc || !isfinite(f)) ok = gfail(file, LX_E_FORMAT, "tokenizer.ggml.scores has a bad entry");
            else t->score[i] = f;
        }
    }
    ok = ok && tok_index(t);
    /* byte tokens decode only when typed as such; untyped vocabularies take <0xXX> texts */
    if (ok && nt <= 0 && spm)
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] >= 0) t->attr[t->byte_id[b]] |= TOK_BYTE;
    for (int i = 0; ok && i < n; i++)
        if (t->attr[i] & TOK_ADDED) {
            tok_added a = {.id = i, .special = (t->attr[i] & TOK_SPECIAL) != 0, .len = t->len[i]};
            ok = tok_add_added(t, &a);
        }
    const pre_type *pt = NULL;
    bool add_bos = spm, add_eos = false;
    if (ok && !spm) {
        int nm = lx_weights_metadata_array_len(w, "tokenizer.ggml.merges");
        if (nm < 0) ok = gfail(file, LX_E_FORMAT, "tokenizer.ggml.merges is missing (needed by a gpt2 tokenizer)");
        for (int i = 0; ok && i < nm; i++) {
            const char *m = lx_weights_metadata_array_item(w, "tokenizer.ggml.merges", i);
            const char *sp = m && m[0] ? strchr(m + 1, ' ') : NULL;
            if (!sp) continue; /* llama.cpp ranks it as an empty pair, which never matches */
            if (tok_add_merge(t, i, m, (size_t)(sp - m), sp + 1, strlen(sp + 1)) < 0) ok = false;
        }
        const char *pre = lx_weights_metadata(w, "tokenizer.ggml.pre");
        if (!pre) pre = "default";
        for (size_t k = 0; k < sizeof k_pre / sizeof *k_pre; k++)
            if (name_in(k_pre[k].names, pre)) pt = &k_pre[k];
        if (ok && !pt) {
            lx_set_error(LX_E_UNSUPPORTED, "lx_tokenizer_load: %s: pre-tokenizer type '%.60s' is "
                         "not supported", file, pre);
            ok = false;
        }
        for (int k = 0; ok && k < 4 && pt->re[k]; k++) {
            tok_pre p = {.kind = PRE_SPLIT, .behavior = SPLIT_ISOLATED};
            p.re = tok_regex_compile(pt->re[k], strlen(pt->re[k]), file, "tokenizer.ggml.pre");
            ok = p.re && add_pre_step(t, p);
        }
        if (ok) ok = add_pre_step(t, (tok_pre){.kind = PRE_BYTELEVEL});
        if (ok) {
            t->ignore_merges = pt->ignore_merges;
            add_bos = pt->add_bos;
        }
    }
    if (ok) {
        int64_t v;
        if (spm) {
            t->bos = n > 1 ? 1 : -1;
            t->eos = n > 2 ? 2 : -1;
            t->unk_id = 0;
            t->spm_space_prefix = true;
        }
        if (meta_u32(w, "tokenizer.ggml.bos_token_id", &v) && v < n) t->bos = (int32_t)v;
        if (meta_u32(w, "tokenizer.ggml.eos_token_id", &v) && v < n) t->eos = (int32_t)v;
        if (meta_u32(w, "tokenizer.ggml.unknown_token_id", &v) && v < n) t->unk_id = (int32_t)v;
        meta_bool(w, "tokenizer.ggml.add_bos_token", &add_bos);
        meta_bool(w, "tokenizer.ggml.add_eos_token", &add_eos);
        if (spm) meta_bool(w, "tokenizer.ggml.add_space_prefix", &t->spm_space_prefix);
        if (add_bos && t->bos >= 0) {
            t->prefix = malloc(sizeof *t->prefix);
            if (!t->prefix) ok = false;
            else { t->prefix[0] = t->bos; t->n_prefix = 1; }
        }
        if (ok && add_eos && t->eos >= 0) {
            t->suffix = malloc(sizeof *t->suffix);
            if (!t->suffix) ok = false;
            else { t->suffix[0] = t->eos; t->n_suffix = 1; }
        }
        if (!ok) tok_oom(t);
    }
    ok = ok && tok_finish(t) && tok_enable_cache(t);
    if (!ok) {
        lx_tokenizer_free(t);
        return NULL;
    }
    return t;
}

lx_tokenizer *tok_load_gguf(const char *path) {
    io_image *im = io_image_open("lx_tokenizer_load", path);
    if (!im) return NULL;
    lx_weights *w = io_gguf_parse_metadata(im, path);
    io_image_release(im);
    if (!w) return NULL;
    lx_tokenizer *t = tok_from_gguf_weights(w, path);
    lx_weights_free(w);
    return t;
}
