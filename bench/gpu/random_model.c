/*
 * random_model.c -- Llama-family model folders with random weights, written through lx's public
 * API, for benchmarks on machines that cannot download a checkpoint (the lent GPU machine).
 *
 *   random_model [--preset NAME] [dims...] [--std S] [--seed N] --out DIR:FORMAT [--out ...]
 *
 * Each --out writes one Hugging Face-style folder that `lx generate -m DIR` and (for float
 * formats) transformers' LlamaForCausalLM.from_pretrained load: config.json, model.safetensors
 * and a synthetic tokenizer.json (lx's model loader needs one; see write_tokenizer). Every
 * output of one run holds the same weights: each tensor is drawn once, normal(0, std) in
 * float32 (its own key: seed + tensor index, so the values do not depend on which outputs are
 * asked for), rounded to --base (bfloat16 by default), and written as FORMAT:
 *
 *   bf16, f16, f32     the base weights cast to that dtype
 *   qBgG[eE][sDT]      MLX's affine quantization (lx_quantize of the base weights) of every
 *                      linear layer and the embedding: B bits, group G; eE gives the embedding
 *                      (the tied head) E bits instead; sDT the scales/biases dtype (f16, bf16,
 *                      f32; default bf16, as mlx-community's checkpoints). config.json gets the
 *                      "quantization" block lx reads, with a per-module entry for eE.
 *                      q4g64 is mlx-community's 4-bit layout; q4g32e8sf16 is the layout lx makes
 *                      of a llama.cpp Q4_1 GGUF (Q4_1 layers, Q8_0 tied embedding).
 *
 * Norm weights are ones in the base dtype. One JSON line per output goes to stdout: the
 * parameter count, the file size and decode_bytes, the bytes of weights lx streams per decoded
 * token (every layer matrix, the head, the norms and one embedding row, as lx holds them: a
 * quantized layer's scales and biases as float32, which lx converts them to at load), for the
 * bandwidth roofline. Weights are normal(0, 0.02) by default (Llama's initializer range), so
 * activations stay O(1) and greedy decoding stays finite.
 *
 * Presets: tiny (CPU smoke tests), smollm2-135m (SmolLM2-135M's shape), llama-3.2-1b (hidden
 * 2048, 16 layers, 32 heads, 8 KV heads, head_dim 64, ffn 8192, vocab 128256, rope theta
 * 500000 with llama3 scaling, tied). Dimension flags after --preset override it.
 */
#define _POSIX_C_SOURCE 200809L /* strdup, strndup, clock_gettime */

#include <lx.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    int hidden, layers, heads, kv_heads, head_dim, ffn, vocab, ctx, bos, eos;
    double rope_theta, rms_eps;
    int llama3_rope; /* Llama 3.1/3.2 rope scaling: factor 32, low 1, high 4, original 8192 */
    int tied;
} config;

typedef struct {
    const char *dir;
    char spec[32];
    lx_dtype float_dtype; /* float formats */
    int bits, group, embed_bits;
    lx_dtype sdtype; /* quantized formats: scales and biases */
} output;

#define MAX_OUT 8

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("random_model: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int preset(const char *name, config *c) {
    if (!strcmp(name, "tiny")) {
        *c = (config){.hidden = 256, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 64,
                      .ffn = 512, .vocab = 1024, .ctx = 16384, .rope_theta = 500000,
                      .llama3_rope = 1, .tied = 1};
    } else if (!strcmp(name, "smollm2-135m")) {
        *c = (config){.hidden = 576, .layers = 30, .heads = 9, .kv_heads = 3, .head_dim = 64,
                      .ffn = 1536, .vocab = 49152, .ctx = 8192, .rope_theta = 100000, .tied = 1};
    } else if (!strcmp(name, "llama-3.2-1b")) {
        *c = (config){.hidden = 2048, .layers = 16, .heads = 32, .kv_heads = 8, .head_dim = 64,
                      .ffn = 8192, .vocab = 128256, .ctx = 131072, .rope_theta = 500000,
                      .llama3_rope = 1, .tied = 1};
    } else {
        return fail("unknown preset '%s' (tiny, smollm2-135m, llama-3.2-1b)", name);
    }
    c->rms_eps = 1e-5;
    /* the synthetic tokenizer's two special tokens are the last ids */
    c->bos = c->vocab - 2;
    c->eos = c->vocab - 1;
    return 0;
}

static int parse_dtype(const char *s, lx_dtype *t) {
    if (!strcmp(s, "bf16")) *t = LX_BFLOAT16;
    else if (!strcmp(s, "f16")) *t = LX_FLOAT16;
    else if (!strcmp(s, "f32")) *t = LX_FLOAT32;
    else return 1;
    return 0;
}

static const char *st_dtype(lx_dtype t) {
    return t == LX_BFLOAT16 ? "bfloat16" : t == LX_FLOAT16 ? "float16" : "float32";
}

static size_t dsize(lx_dtype t) { return t == LX_FLOAT32 || t == LX_UINT32 ? 4 : 2; }

/* "DIR:FORMAT" */
static int parse_output(const char *arg, output *o) {
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || !colon[1]) return fail("--out wants DIR:FORMAT, got '%s'", arg);
    memset(o, 0, sizeof *o);
    o->dir = strndup(arg, (size_t)(colon - arg));
    snprintf(o->spec, sizeof o->spec, "%s", colon + 1);
    const char *f = colon + 1;
    if (!parse_dtype(f, &o->float_dtype)) return 0;
    char sd[8] = "bf16";
    int n = 0;
    if (sscanf(f, "q%dg%d%n", &o->bits, &o->group, &n) != 2)
        return fail("format '%s': bf16, f16, f32 or qBgG[eE][sDT] (e.g. q4g64)", f);
    o->embed_bits = o->bits;
    f += n;
    if (*f == 'e') {
        int m = 0;
        if (sscanf(f, "e%d%n", &o->embed_bits, &m) != 1) return fail("format: bad 'e' part");
        f += m;
    }
    if (*f == 's') {
        snprintf(sd, sizeof sd, "%s", f + 1);
        f += strlen(f);
    }
    if (*f || parse_dtype(sd, &o->sdtype)) return fail("format '%s': bad suffix", o->spec);
    int ok_bits[] = {2, 3, 4, 5, 6, 8};
    int good = 0, good_e = 0;
    for (int i = 0; i < 6; i++) {
        good |= o->bits == ok_bits[i];
        good_e |= o->embed_bits == ok_bits[i];
    }
    if (!good || !good_e || (o->group != 32 && o->group != 64 && o->group != 128))
        return fail("format '%s': bits 2-6 or 8, group 32, 64 or 128", o->spec);
    return 0;
}

/* ---- the weights ---------------------------------------------------------------------- */

typedef struct {
    char name[96];
    int rows, cols; /* cols = 0: a vector */
    int is_embed;
    lx_array base;  /* in the base dtype, kept */
} tensor;

typedef struct {
    tensor *t;
    int n, cap;
} tensor_list;

static int add_tensor(tensor_list *l, const char *name, int rows, int cols, int is_embed) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        tensor *t = realloc(l->t, sizeof *t * (size_t)cap);
        if (!t) return fail("out of memory");
        l->t = t;
        l->cap = cap;
    }
    tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->is_embed = is_embed;
    return 0;
}

static int list_tensors(const config *c, tensor_list *l) {
    int q = c->heads * c->head_dim, kv = c->kv_heads * c->head_dim;
    char n[96];
    int st = add_tensor(l, "model.embed_tokens", c->vocab, c->hidden, 1);
    for (int i = 0; i < c->layers && !st; i++) {
        struct { const char *part; int rows, cols; } parts[] = {
            {"self_attn.q_proj", q, c->hidden},     {"self_attn.k_proj", kv, c->hidden},
            {"self_attn.v_proj", kv, c->hidden},    {"self_attn.o_proj", c->hidden, q},
            {"mlp.gate_proj", c->ffn, c->hidden},   {"mlp.up_proj", c->ffn, c->hidden},
            {"mlp.down_proj", c->hidden, c->ffn},   {"input_layernorm", c->hidden, 0},
            {"post_attention_layernorm", c->hidden, 0}};
        for (size_t k = 0; k < sizeof parts / sizeof parts[0] && !st; k++) {
            snprintf(n, sizeof n, "model.layers.%d.%s", i, parts[k].part);
            st = add_tensor(l, n, parts[k].rows, parts[k].cols, 0);
        }
    }
    if (!st) st = add_tensor(l, "model.norm", c->hidden, 0, 0);
    if (!st && !c->tied) st = add_tensor(l, "lm_head", c->vocab, c->hidden, 1);
    return st;
}

/* Draws every tensor once, in the base dtype. */
static int draw(tensor_list *l, lx_dtype base, double std, uint64_t seed) {
    for (int i = 0; i < l->n; i++) {
        tensor *t = &l->t[i];
        lx_array a;
        if (t->cols == 0) {
            a = lx_ones((int[]){t->rows}, 1, base);
        } else {
            lx_array key = lx_random_key(seed + (uint64_t)i);
            a = lx_random_normal((int[]){t->rows, t->cols}, 2, LX_FLOAT32, key);
            a = lx_astype(lx_mul_scalar(a, std), base);
        }
        if (lx_is_null(a) || lx_eval(a) != LX_OK)
            return fail("drawing %s: %s", t->name, lx_error_message());
        lx_keep(a);
        t->base = a;
    }
    return 0;
}

/* ---- files ----------------------------------------------------------------------------- */

static int mkdirs(const char *dir) {
    char *p = strdup(dir);
    if (!p) return fail("out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST) {
            int st = fail("mkdir %s: %s", p, strerror(errno));
            free(p);
            return st;
        }
        *s = '/';
    }
    int st = mkdir(p, 0755) && errno != EEXIST ? fail("mkdir %s: %s", p, strerror(errno)) : 0;
    free(p);
    return st;
}

static FILE *open_in(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) fail("%s: %s", path, strerror(errno));
    return f;
}

static int write_config(const config *c, const output *o) {
    FILE *f = open_in(o->dir, "config.json");
    if (!f) return 1;
    fprintf(f, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n");
    fprintf(f, "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
            "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %g,\n"
            "  \"rope_theta\": %.1f,\n", c->hidden, c->ffn, c->layers, c->heads, c->kv_heads,
            c->head_dim, c->vocab, c->ctx, c->rms_eps, c->rope_theta);
    if (c->llama3_rope)
        fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0, "
                "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                "\"original_max_position_embeddings\": 8192},\n");
    fprintf(f, "  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n"
            "  \"attention_bias\": false,\n  \"mlp_bias\": false,\n  \"initializer_range\": 0.02,\n"
            "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"use_cache\": true,\n",
            c->tied ? "true" : "false", c->bos, c->eos);
    lx_dtype td = o->bits ? LX_BFLOAT16 : o->float_dtype;
    fprintf(f, "  \"torch_dtype\": \"%s\"", st_dtype(td));
    if (o->bits) {
        fprintf(f, ",\n  \"quantization\": {\"group_size\": %d, \"bits\": %d", o->group, o->bits);
        if (o->embed_bits != o->bits)
            fprintf(f, ", \"model.embed_tokens\": {\"group_size\": %d, \"bits\": %d}", o->group,
                    o->embed_bits);
        if (o->embed_bits != o->bits && !c->tied)
            fprintf(f, ", \"lm_head\": {\"group_size\": %d, \"bits\": %d}", o->group, o->embed_bits);
        fprintf(f, "}");
    }
    fprintf(f, ",\n  \"lx_random_weights\": \"%s\"\n}\n", o->spec);
    return fclose(f) ? fail("config.json: %s", strerror(errno)) : 0;
}

/* GPT-2's byte-to-character table of byte-level BPE */
static void byte_chars(int *cp) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        cp[b] = printable ? b : 256 + n++;
    }
}

static void put_json_cp(FILE *f, int c) {
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x80) fputc(c, f);
    else if (c < 0x800) fprintf(f, "%c%c", 0xC0 | (c >> 6), 0x80 | (c & 63));
    else fprintf(f, "%c%c%c", 0xE0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
}

/* A byte-level BPE tokenizer.json without merges covering every id: ids 0-255 are the bytes
 * (so `-p TEXT` tokenizes, byte by byte), 256..vocab-3 are pieces "<tN>" (so every generated
 * id detokenizes: lx's detokenizer refuses an id without text), and the last two are the
 * special tokens bos and eos. Measurements use --prompt-ids; this only lets lx load the folder
 * and stream text. */
static int write_tokenizer(const config *c, const output *o) {
    if (c->vocab < 258) return fail("the synthetic tokenizer needs a vocabulary of 258 or more");
    FILE *f = open_in(o->dir, "tokenizer.json");
    if (!f) return 1;
    fprintf(f, "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": [\n"
            "{\"id\": %d, \"content\": \"<|begin_of_text|>\", \"single_word\": false, "
            "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true},\n"
            "{\"id\": %d, \"content\": \"<|end_of_text|>\", \"single_word\": false, "
            "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}],\n",
            c->bos, c->eos);
    fprintf(f, "\"normalizer\": null,\n\"pre_tokenizer\": {\"type\": \"ByteLevel\", "
            "\"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n"
            "\"post_processor\": null,\n\"decoder\": {\"type\": \"ByteLevel\", "
            "\"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
            "\"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
            "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, "
            "\"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false,\n\"vocab\": {");
    int cp[256];
    byte_chars(cp);
    for (int b = 0; b < 256; b++) {
        fputs(b ? ",\"" : "\"", f);
        put_json_cp(f, cp[b]);
        fprintf(f, "\":%d", b);
    }
    for (int id = 256; id < c->vocab - 2; id++) fprintf(f, ",\"<t%d>\":%d", id, id);
    fprintf(f, ",\"<|begin_of_text|>\":%d,\"<|end_of_text|>\":%d},\n\"merges\": []}}\n", c->bos,
            c->eos);
    return fclose(f) ? fail("tokenizer.json: %s", strerror(errno)) : 0;
}

/* ---- one output -------------------------------------------------------------------------- */

typedef struct {
    size_t params, file_bytes, decode_bytes;
} sizes;

static int write_output(const config *c, tensor_list *l, const output *o, sizes *sz) {
    int cap = 3 * l->n;
    const char **names = calloc((size_t)cap, sizeof *names);
    lx_array *arrays = calloc((size_t)cap, sizeof *arrays);
    char (*nbuf)[112] = calloc((size_t)cap, sizeof *nbuf);
    if (!names || !arrays || !nbuf) return fail("out of memory");
    int n = 0, st = 0;
    memset(sz, 0, sizeof *sz);
    for (int i = 0; i < l->n && !st; i++) {
        tensor *t = &l->t[i];
        size_t elems = (size_t)t->rows * (size_t)(t->cols ? t->cols : 1);
        sz->params += elems;
        /* what lx reads per decoded token: all of it, except a separate embedding table, of
         * which one row (a tied embedding is read whole as the head) */
        int rows_read = t->is_embed && !strcmp(t->name, "model.embed_tokens") && !c->tied ? 1
                                                                                          : t->rows;
        int bits = t->is_embed ? o->embed_bits : o->bits;
        if (t->cols == 0 || !o->bits) {
            lx_dtype dt = t->cols == 0 ? lx_dtype_of(t->base) : o->float_dtype;
            lx_array a = t->cols == 0 ? t->base : lx_astype(t->base, dt);
            snprintf(nbuf[n], sizeof nbuf[n], "%s.weight", t->name);
            names[n] = nbuf[n];
            arrays[n++] = a;
            sz->file_bytes += elems * dsize(dt);
            sz->decode_bytes += (size_t)rows_read * (size_t)(t->cols ? t->cols : 1) * dsize(dt);
            if (t->is_embed && c->tied && !strcmp(t->name, "model.embed_tokens"))
                sz->decode_bytes += (size_t)t->cols * dsize(dt); /* the row, besides the head */
            continue;
        }
        if (t->cols % o->group)
            { st = fail("%s: %d columns are not a multiple of group %d", t->name, t->cols, o->group); break; }
        lx_array wq, s, b;
        if (lx_quantize(lx_astype(t->base, LX_FLOAT32), o->group, bits, &wq, &s, &b) != LX_OK)
            { st = fail("quantizing %s: %s", t->name, lx_error_message()); break; }
        s = lx_astype(s, o->sdtype);
        b = lx_astype(b, o->sdtype);
        const char *suffix[3] = {"weight", "scales", "biases"};
        lx_array parts[3] = {wq, s, b};
        for (int k = 0; k < 3; k++) {
            snprintf(nbuf[n], sizeof nbuf[n], "%s.%s", t->name, suffix[k]);
            names[n] = nbuf[n];
            arrays[n++] = parts[k];
        }
        size_t groups = elems / (size_t)o->group;
        size_t packed = elems * (size_t)bits / 8;
        sz->file_bytes += packed + 2 * groups * dsize(o->sdtype);
        /* lx converts scales and biases to its float32 activations at load */
        size_t row = (size_t)t->cols * (size_t)bits / 8 + 2 * (size_t)(t->cols / o->group) * 4;
        sz->decode_bytes += (size_t)rows_read * row;
        if (t->is_embed && c->tied) sz->decode_bytes += row;
    }
    if (!st) {
        /* one at a time: lx_save_safetensors evaluates each array as it writes it */
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", o->dir);
        if (lx_save_safetensors(path, names, arrays, n) != LX_OK)
            st = fail("%s: %s", path, lx_error_message());
    }
    for (int i = 0; i < n; i++) lx_free(arrays[i]);
    for (int i = 0; i < l->n; i++) lx_keep(l->t[i].base); /* lx_free of a norm cleared it */
    lx_sweep();
    free(names);
    free(arrays);
    free(nbuf);
    if (!st) st = write_config(c, o);
    if (!st) st = write_tokenizer(c, o);
    return st;
}

static void usage(void) {
    fputs("usage: random_model [--preset tiny|smollm2-135m|llama-3.2-1b] [--hidden N] [--layers N]\n"
          "         [--heads N] [--kv-heads N] [--head-dim N] [--ffn N] [--vocab N] [--ctx N]\n"
          "         [--rope-theta F] [--llama3-rope 0|1] [--tied 0|1] [--base bf16|f16|f32]\n"
          "         [--std S] [--seed N] [--threads N] --out DIR:FORMAT [--out DIR:FORMAT ...]\n"
          "  FORMAT: bf16 | f16 | f32 | qBgG[eE][sDT]   (e.g. q4g64, q4g32e8sf16)\n", stderr);
}

int main(int argc, char **argv) {
    config c;
    preset("tiny", &c);
    output outs[MAX_OUT];
    int n_out = 0;
    double std = 0.02;
    uint64_t seed = 1234;
    lx_dtype base = LX_BFLOAT16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (i + 1 >= argc) { usage(); return fail("%s needs a value", a); }
        const char *v = argv[++i];
        int *ip = !strcmp(a, "--hidden") ? &c.hidden : !strcmp(a, "--layers") ? &c.layers
                : !strcmp(a, "--heads") ? &c.heads : !strcmp(a, "--kv-heads") ? &c.kv_heads
                : !strcmp(a, "--head-dim") ? &c.head_dim : !strcmp(a, "--ffn") ? &c.ffn
                : !strcmp(a, "--ctx") ? &c.ctx : !strcmp(a, "--tied") ? &c.tied
                : !strcmp(a, "--llama3-rope") ? &c.llama3_rope : NULL;
        if (ip) *ip = atoi(v);
        else if (!strcmp(a, "--preset")) { if (preset(v, &c)) return 1; }
        else if (!strcmp(a, "--vocab")) { c.vocab = atoi(v); c.bos = c.vocab - 2; c.eos = c.vocab - 1; }
        else if (!strcmp(a, "--rope-theta")) c.rope_theta = atof(v);
        else if (!strcmp(a, "--std")) std = atof(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads")) lx_set_num_threads(atoi(v));
        else if (!strcmp(a, "--base")) { if (parse_dtype(v, &base)) return fail("--base: bf16, f16 or f32"); }
        else if (!strcmp(a, "--out")) {
            if (n_out == MAX_OUT) return fail("at most %d outputs", MAX_OUT);
            if (parse_output(v, &outs[n_out++])) return 1;
        } else { usage(); return fail("unknown option %s", a); }
    }
    if (!n_out) { usage(); return fail("no --out DIR:FORMAT"); }
    if (c.hidden <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.head_dim <= 0 ||
        c.ffn <= 0 || c.vocab < 258 || c.heads % c.kv_heads)
        return fail("bad dimensions (vocab >= 258, heads a multiple of kv-heads)");
    tensor_list l = {0};
    if (list_tensors(&c, &l)) return 1;
    double t0 = now_s();
    if (draw(&l, base, std, seed)) return 1;
    double t_draw = now_s() - t0;
    for (int k = 0; k < n_out; k++) {
        double t1 = now_s();
        sizes sz;
        if (mkdirs(outs[k].dir) || write_output(&c, &l, &outs[k], &sz)) return 1;
        printf("{\"dir\":\"%s\",\"format\":\"%s\",\"params\":%zu,\"file_bytes\":%zu,"
               "\"decode_bytes\":%zu,\"hidden\":%d,\"layers\":%d,\"heads\":%d,\"kv_heads\":%d,"
               "\"head_dim\":%d,\"ffn\":%d,\"vocab\":%d,\"tied\":%s,\"std\":%g,\"seed\":%llu,"
               "\"draw_s\":%.2f,\"write_s\":%.2f,\"threads\":%d}\n", outs[k].dir, outs[k].spec,
               sz.params, sz.file_bytes, sz.decode_bytes, c.hidden, c.layers, c.heads,
               c.kv_heads, c.head_dim, c.ffn, c.vocab, c.tied ? "true" : "false", std,
               (unsigned long long)seed, k ? 0.0 : t_draw, now_s() - t1, lx_num_threads());
        fflush(stdout);
    }
    for (int i = 0; i < l.n; i++) lx_free(l.t[i].base);
    free(l.t);
    lx_sweep();
    return 0;
}
