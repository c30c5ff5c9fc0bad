/*
 * tokenizer_json.c -- Hugging Face tokenizer.json (and tokenizer_config.json beside it) into
 * the tokenizer's steps. BPE models only; components lx does not implement are refused with
 * LX_E_UNSUPPORTED naming them, malformed ones with LX_E_FORMAT naming the file and the field.
 */
#include "models/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/io.h"

typedef struct {
    lx_tokenizer *t;
    const char *file;
    bool had_post;
    int32_t *pre, *suf; /* post-processor ids being gathered */
    int npre, nsuf;
} jctx;

__attribute__((format(printf, 3, 4)))
static bool jfail(jctx *c, lx_status st, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lx_set_error(st, "lx_tokenizer_load: %s: %s", c->file, msg);
    return false;
}

static bool joom(jctx *c) { return jfail(c, LX_E_OOM, "out of host memory"); }

static const cJSON *jget(const cJSON *o, const char *k) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static bool jbool(const cJSON *o, const char *k, bool dflt) {
    const cJSON *v = jget(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* an integer-valued number in [lo, hi] */
static bool jint(const cJSON *v, double lo, double hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != (double)(int64_t)d) return false;
    *out = (int64_t)d;
    return true;
}

static char *dup_n(const char *s, size_t *n) {
    size_t l = strlen(s);
    char *p = malloc(l + 1);
    if (p) memcpy(p, s, l + 1);
    if (n) *n = l;
    return p;
}

/* {"String": s} or {"Regex": r} */
static bool jpattern(jctx *c, const cJSON *p, const char *what, char **lit, size_t *litlen,
                     pcre2_code **re) {
    const char *s = jstr(p, "String"), *r = jstr(p, "Regex");
    if (s) {
        *lit = dup_n(s, litlen);
        return *lit || joom(c);
    }
    if (r) {
        *re = tok_regex_compile(r, strlen(r), c->file, what);
        return *re != NULL;
    }
    return jfail(c, LX_E_FORMAT, "%s: pattern is neither {\"String\": ...} nor {\"Regex\": ...}", what);
}

/* ---- normalizers ------------------------------------------------------------------------------ */

static bool add_norm(jctx *c, tok_norm n) {
    lx_tokenizer *t = c->t;
    tok_norm *v = realloc(t->norm, sizeof *v * (size_t)(t->n_norm + 1));
    if (!v) {
        free(n.a);
        free(n.b);
        if (n.re) pcre2_code_free(n.re);
        return joom(c);
    }
    t->norm = v;
    t->norm[t->n_norm++] = n;
    return true;
}

static bool parse_normalizer(jctx *c, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return true;
    const char *type = jstr(o, "type");
    if (!type || depth > 8) return jfail(c, LX_E_FORMAT, "normalizer: no \"type\" (or nested too deep)");
    tok_norm n = {0};
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "normalizers"), *e;
        if (!cJSON_IsArray(list)) return jfail(c, LX_E_FORMAT, "normalizer Sequence: no \"normalizers\" list");
        cJSON_ArrayForEach(e, list) if (!parse_normalizer(c, e, depth + 1)) return false;
        return true;
    }
    if (!strcmp(type, "NFC")) n.kind = NORM_NFC;
    else if (!strcmp(type, "NFKC")) n.kind = NORM_NFKC;
    else if (!strcmp(type, "NFD")) n.kind = NORM_NFD;
    else if (!strcmp(type, "NFKD")) n.kind = NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) n.kind = NORM_LOWER;
    else if (!strcmp(type, "Strip")) {
        n.kind = NORM_STRIP;
        n.left = jbool(o, "strip_left", true);
        n.right = jbool(o, "strip_right", true);
    } else if (!strcmp(type, "Prepend")) {
        const char *p = jstr(o, "prepend");
        if (!p) return jfail(c, LX_E_FORMAT, "normalizer Prepend: no \"prepend\" string");
        n.kind = NORM_PREPEND;
        if (!(n.a = dup_n(p, &n.alen))) return joom(c);
    } else if (!strcmp(type, "Replace")) {
        const char *content = jstr(o, "content");
        if (!content) return jfail(c, LX_E_FORMAT, "normalizer Replace: no \"content\" string");
        n.kind = NORM_REPLACE;
        if (!jpattern(c, jget(o, "pattern"), "normalizer Replace", &n.a, &n.alen, &n.re)) return false;
        if (!(n.b = dup_n(content, &n.blen))) { free(n.a); if (n.re) pcre2_code_free(n.re); return joom(c); }
    } else {
        return jfail(c, LX_E_UNSUPPORTED, "normalizer '%s' is not supported", type);
    }
    return add_norm(c, n);
}

/* ---- pre-tokenizers --------------------------------------------------------------------------- */

static const char k_gpt2_re[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static bool add_pre(jctx *c, tok_pre p) {
    lx_tokenizer *t = c->t;
    tok_pre *v = realloc(t->pre, sizeof *v * (size_t)(t->n_pre + 1));
    if (!v) {
        if (p.re) pcre2_code_free(p.re);
        free(p.lit);
        free(p.repl);
        return joom(c);
    }
    t->pre = v;
    t->pre[t->n_pre++] = p;
    return true;
}

static bool parse_behavior(jctx *c, const cJSON *o, tok_split *b, tok_split dflt) {
    const char *s = jstr(o, "behavior");
    if (!s) { *b = dflt; return true; }
    if (!strcmp(s, "Isolated")) *b = SPLIT_ISOLATED;
    else if (!strcmp(s, "Removed")) *b = SPLIT_REMOVED;
    else if (!strcmp(s, "MergedWithPrevious")) *b = SPLIT_PREV;
    else if (!strcmp(s, "MergedWithNext")) *b = SPLIT_NEXT;
    else if (!strcmp(s, "Contiguous")) *b = SPLIT_CONTIGUOUS;
    else return jfail(c, LX_E_FORMAT, "pre_tokenizer: unknown split behavior '%s'", s);
    return true;
}

/* Metaspace's prepend_scheme (or the older add_prefix_space flag) */
static tok_prepend parse_prepend(const cJSON *o) {
    const char *s = jstr(o, "prepend_scheme");
    if (s) return !strcmp(s, "first") ? PREPEND_FIRST : !strcmp(s, "never") ? PREPEND_NEVER : PREPEND_ALWAYS;
    return jbool(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
}

static bool parse_pre(jctx *c, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return true;
    const char *type = jstr(o, "type");
    if (!type || depth > 8) return jfail(c, LX_E_FORMAT, "pre_tokenizer: no \"type\" (or nested too deep)");
    tok_pre p = {0};
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "pretokenizers"), *e;
        if (!cJSON_IsArray(list)) return jfail(c, LX_E_FORMAT, "pre_tokenizer Sequence: no \"pretokenizers\" list");
        cJSON_ArrayForEach(e, list) if (!parse_pre(c, e, depth + 1)) return false;
        return true;
    }
    if (!strcmp(type, "Split")) {
        p.kind = PRE_SPLIT;
        if (!parse_behavior(c, o, &p.behavior, SPLIT_ISOLATED)) return false;
        p.invert = jbool(o, "invert", false);
        if (!jpattern(c, jget(o, "pattern"), "pre_tokenizer Split", &p.lit, &p.litlen, &p.re)) return false;
    } else if (!strcmp(type, "ByteLevel")) {
        p.kind = PRE_BYTELEVEL;
        p.add_prefix_space = jbool(o, "add_prefix_space", true);
        if (jbool(o, "use_regex", true)) {
            p.re = tok_regex_compile(k_gpt2_re, sizeof k_gpt2_re - 1, c->file, "ByteLevel");
            if (!p.re) return false;
        }
    } else if (!strcmp(type, "Digits")) {
        p.kind = PRE_DIGITS;
        p.behavior = jbool(o, "individual_digits", false) ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
        p.re = tok_regex_compile("\\p{N}", 5, c->file, "Digits");
        if (!p.re) return false;
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(o, "replacement");
        p.kind = PRE_METASPACE;
        if (!(p.repl = dup_n(r ? r : "\xe2\x96\x81", &p.repllen))) return joom(c);
        if (!p.repllen) { free(p.repl); return jfail(c, LX_E_FORMAT, "pre_tokenizer Metaspace: empty replacement"); }
        p.prepend = parse_prepend(o);
        p.split = jbool(o, "split", true);
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p.kind = PRE_WHITESPACE_SPLIT;
        p.behavior = SPLIT_REMOVED;
        if (!(p.re = tok_regex_compile("\\s+", 3, c->file, "WhitespaceSplit"))) return false;
    } else if (!strcmp(type, "Whitespace")) {
        p.kind = PRE_WHITESPACE_SPLIT;
        p.behavior = SPLIT_REMOVED;
        p.invert = true;
        if (!(p.re = tok_regex_compile("\\w+|[^\\w\\s]+", 13, c->file, "Whitespace"))) return false;
    } else if (!strcmp(type, "Punctuation")) {
        static const char pr[] = "[\\p{P}!-/:-@\\[-`{-~]";
        p.kind = PRE_PUNCT;
        if (!parse_behavior(c, o, &p.behavior, SPLIT_ISOLATED)) return false;
        if (!(p.re = tok_regex_compile(pr, sizeof pr - 1, c->file, "Punctuation"))) return false;
    } else {
        return jfail(c, LX_E_UNSUPPORTED, "pre_tokenizer '%s' is not supported", type);
    }
    return add_pre(c, p);
}

/* ---- decoders --------------------------------------------------------------------------------- */

static bool add_dec(jctx *c, tok_dec d) {
    lx_tokenizer *t = c->t;
    tok_dec *v = realloc(t->dec, sizeof *v * (size_t)(t->n_dec + 1));
    if (!v) { free(d.a); free(d.b); return joom(c); }
    t->dec = v;
    t->dec[t->n_dec++] = d;
    return true;
}

static bool fused_yet(const lx_tokenizer *t) {
    for (int i = 0; i < t->n_dec; i++)
        if (t->dec[i].kind == DEC_BYTELEVEL || t->dec[i].kind == DEC_FUSE) return true;
    return false;
}

static bool parse_decoder(jctx *c, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return true;
    const char *type = jstr(o, "type");
    if (!type || depth > 8) return jfail(c, LX_E_FORMAT, "decoder: no \"type\" (or nested too deep)");
    tok_dec d = {0};
    bool post = fused_yet(c->t);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "decoders"), *e;
        if (!cJSON_IsArray(list)) return jfail(c, LX_E_FORMAT, "decoder Sequence: no \"decoders\" list");
        cJSON_ArrayForEach(e, list) if (!parse_decoder(c, e, depth + 1)) return false;
        return true;
    }
    if (!strcmp(type, "ByteLevel")) d.kind = DEC_BYTELEVEL;
    else if (!strcmp(type, "Fuse")) d.kind = DEC_FUSE;
    else if (!strcmp(type, "ByteFallback")) {
        if (post) return true; /* on fused text it would see no tokens */
        d.kind = DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(o, "replacement");
        d.kind = DEC_METASPACE;
        if (!(d.a = dup_n(r ? r : "\xe2\x96\x81", &d.alen))) return joom(c);
        d.strip_first = parse_prepend(o) != PREPEND_NEVER;
        if (post) {
            /* on the joined text: its ▁ become spaces (first-token dropping not modelled) */
            d.kind = DEC_REPLACE;
            if (!(d.b = dup_n(" ", &d.blen))) { free(d.a); return joom(c); }
        }
    } else if (!strcmp(type, "Strip")) {
        const char *content = jstr(o, "content");
        int64_t start = 0, stop = 0;
        if (!content || !jint(jget(o, "start"), 0, 1 << 20, &start) ||
            !jint(jget(o, "stop"), 0, 1 << 20, &stop))
            return jfail(c, LX_E_FORMAT, "decoder Strip: needs \"content\", \"start\" and \"stop\"");
        d.kind = DEC_STRIP;
        d.start = (int)start;
        d.stop = (int)stop;
        if (!(d.a = dup_n(content, &d.alen))) return joom(c);
        if (post && d.alen != 1) {
            free(d.a);
            return jfail(c, LX_E_UNSUPPORTED, "decoder Strip after Fuse with a multi-byte content");
        }
    } else if (!strcmp(type, "Replace")) {
        const char *content = jstr(o, "content"), *s = jstr(jget(o, "pattern"), "String");
        if (!content) return jfail(c, LX_E_FORMAT, "decoder Replace: no \"content\" string");
        if (!s) return jfail(c, LX_E_UNSUPPORTED, "decoder Replace with a regex pattern");
        d.kind = DEC_REPLACE;
        if (!(d.a = dup_n(s, &d.alen))) return joom(c);
        if (!(d.b = dup_n(content, &d.blen))) { free(d.a); return joom(c); }
    } else {
        return jfail(c, LX_E_UNSUPPORTED, "decoder '%s' is not supported", type);
    }
    return add_dec(c, d);
}

/* ---- post-processor --------------------------------------------------------------------------- */

static bool push_id(jctx *c, bool suffix, int32_t id) {
    int32_t **v = suffix ? &c->suf : &c->pre;
    int *n = suffix ? &c->nsuf : &c->npre;
    if (*n > 4096) return jfail(c, LX_E_FORMAT, "post_processor: too many special tokens");
    int32_t *p = realloc(*v, sizeof *p * (size_t)(*n + 1));
    if (!p) return joom(c);
    p[(*n)++] = id;
    *v = p;
    return true;
}

static bool check_id(jctx *c, int64_t id, const char *what) {
    if (id < 0 || id >= c->t->n_vocab || !c->t->text[id])
        return jfail(c, LX_E_FORMAT, "post_processor: %s id %lld is not in the vocabulary", what,
                     (long long)id);
    return true;
}

static bool parse_post(jctx *c, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return true;
    const char *type = jstr(o, "type");
    if (!type || depth > 8) return jfail(c, LX_E_FORMAT, "post_processor: no \"type\" (or nested too deep)");
    c->had_post = true;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "processors"), *e;
        if (!cJSON_IsArray(list)) return jfail(c, LX_E_FORMAT, "post_processor Sequence: no \"processors\" list");
        cJSON_ArrayForEach(e, list) if (!parse_post(c, e, depth + 1)) return false;
        return true;
    }
    if (!strcmp(type, "ByteLevel")) return true; /* offsets only */
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = jget(o, "single"), *specials = jget(o, "special_tokens"), *e;
        if (!cJSON_IsArray(single)) return jfail(c, LX_E_FORMAT, "post_processor TemplateProcessing: no \"single\" list");
        bool after = false;
        cJSON_ArrayForEach(e, single) {
            if (jget(e, "Sequence")) { after = true; continue; }
            const char *name = jstr(jget(e, "SpecialToken"), "id");
            if (!name) return jfail(c, LX_E_FORMAT, "post_processor TemplateProcessing: an item is neither Sequence nor SpecialToken");
            const cJSON *ids = jget(jget(specials, name), "ids"), *x;
            if (!cJSON_IsArray(ids)) return jfail(c, LX_E_FORMAT, "post_processor TemplateProcessing: special token '%s' has no \"ids\"", name);
            cJSON_ArrayForEach(x, ids) {
                int64_t id;
                if (!jint(x, 0, 1 << 26, &id)) return jfail(c, LX_E_FORMAT, "post_processor TemplateProcessing: bad id for '%s'", name);
                if (!check_id(c, id, name) || !push_id(c, after, (int32_t)id)) return false;
            }
        }
        return true;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = jget(o, "cls"), *sep = jget(o, "sep");
        int64_t a, b;
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || !jint(cJSON_GetArrayItem(cls, 1), 0, 1 << 26, &a) ||
            !jint(cJSON_GetArrayItem(sep, 1), 0, 1 << 26, &b))
            return jfail(c, LX_E_FORMAT, "post_processor %s: needs \"cls\" and \"sep\" as [text, id]", type);
        return check_id(c, a, "cls") && check_id(c, b, "sep") && push_id(c, false, (int32_t)a) &&
               push_id(c, true, (int32_t)b);
    }
    return jfail(c, LX_E_UNSUPPORTED, "post_processor '%s' is not supported", type);
}

/* ---- model ------------------------------------------------------------------------------------ */

static bool parse_model(jctx *c, const cJSON *m) {
    lx_tokenizer *t = c->t;
    if (!cJSON_IsObject(m)) return jfail(c, LX_E_FORMAT, "no \"model\" object");
    const char *type = jstr(m, "type");
    if (type && strcmp(type, "BPE") != 0)
        return jfail(c, LX_E_UNSUPPORTED, "model type '%s' is not supported (BPE is)", type);
    const cJSON *vocab = jget(m, "vocab"), *merges = jget(m, "merges"), *e;
    if (!cJSON_IsObject(vocab)) return jfail(c, LX_E_FORMAT, "model: no \"vocab\" object");
    if (!cJSON_IsArray(merges)) return jfail(c, LX_E_FORMAT, "model: no \"merges\" list");
    const char *pfx = jstr(m, "continuing_subword_prefix"), *sfx = jstr(m, "end_of_word_suffix");
    if ((pfx && *pfx) || (sfx && *sfx))
        return jfail(c, LX_E_UNSUPPORTED, "BPE continuing_subword_prefix / end_of_word_suffix");
    cJSON_ArrayForEach(e, vocab) {
        int64_t id;
        if (!e->string || !jint(e, 0, (1 << 26) - 1, &id))
            return jfail(c, LX_E_FORMAT, "model vocab: entry '%.80s' has no valid id", e->string ? e->string : "?");
        if (id < t->n_vocab && t->text[id])
            return jfail(c, LX_E_FORMAT, "model vocab: id %lld is given to both '%.80s' and '%.80s'",
                         (long long)id, t->text[id], e->string);
        if (!tok_set_piece(t, (int32_t)id, e->string, strlen(e->string), 0)) return false;
    }
    if (!tok_index(t)) return false;
    int rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1])
                return jfail(c, LX_E_FORMAT, "model merges[%d] '%.80s' is not two tokens separated by one space", rank, s);
            a = s;
            al = (size_t)(sp - s);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            al = strlen(a);
            bl = strlen(b);
        } else {
            return jfail(c, LX_E_FORMAT, "model merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", rank);
        }
        int r = tok_add_merge(t, rank, a, al, b, bl);
        if (r < 0) return false;
        if (r == 0)
            return jfail(c, LX_E_FORMAT, "model merges[%d] ('%.60s' '%.60s'): a token or their merge is not in the vocabulary",
                         rank, a, b);
        rank++;
    }
    t->byte_fallback = jbool(m, "byte_fallback", false);
    t->ignore_merges = jbool(m, "ignore_merges", false);
    t->fuse_unk = jbool(m, "fuse_unk", false);
    const char *unk = jstr(m, "unk_token");
    if (unk) {
        t->unk_id = tok_lookup(t, unk, strlen(unk));
        if (t->unk_id < 0) return jfail(c, LX_E_FORMAT, "model: unk_token '%.80s' is not in the vocabulary", unk);
    }
    return true;
}

static bool parse_added(jctx *c, const cJSON *list) {
    lx_tokenizer *t = c->t;
    const cJSON *e;
    if (!list || cJSON_IsNull(list)) return true;
    if (!cJSON_IsArray(list)) return jfail(c, LX_E_FORMAT, "\"added_tokens\" is not a list");
    int i = 0;
    cJSON_ArrayForEach(e, list) {
        int64_t id;
        const char *content = jstr(e, "content");
        if (!content || !jint(jget(e, "id"), 0, (1 << 26) - 1, &id))
            return jfail(c, LX_E_FORMAT, "added_tokens[%d]: needs \"id\" and \"content\"", i);
        tok_added a = {.id = (int32_t)id, .special = jbool(e, "special", false),
                       .lstrip = jbool(e, "lstrip", false), .rstrip = jbool(e, "rstrip", false),
                       .normalized = jbool(e, "normalized", false),
                       .single_word = jbool(e, "single_word", false), .len = (uint32_t)strlen(content)};
        /* one id, one text: a later entry with the id of an earlier one would rewrite the
         * text the earlier one matches by (fuzz_tokenizer: an empty rewrite ran out of memory) */
        for (int k = 0; k < t->n_added; k++)
            if (t->added[k].id == a.id)
                return jfail(c, LX_E_FORMAT, "added_tokens[%d]: id %d is given twice", i,
                             (int)a.id);
        uint8_t attr = (uint8_t)(TOK_ADDED | (a.special ? TOK_SPECIAL : 0));
        if (!tok_set_piece(t, a.id, content, strlen(content), attr) || !tok_add_added(t, &a)) return false;
        i++;
    }
    return true;
}

static void jctx_free(jctx *c) {
    free(c->pre);
    free(c->suf);
}

lx_tokenizer *tok_from_json_text(const char *data, size_t n, const char *file) {
    jctx c = {.file = file};
    /* JSON is UTF-8 (RFC 8259); the strings taken from it (added tokens, normalizer contents,
     * replacements) reach the regexes, which match with PCRE2_NO_UTF_CHECK: a file that is not
     * UTF-8 is refused here, once, rather than matched out of bounds later */
    if (data && !io_utf8_valid((const uint8_t *)data, n)) {
        lx_set_error(LX_E_FORMAT, "lx_tokenizer_load: %s: not valid UTF-8", file);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(data, n);
    if (!root) {
        const char *at = data ? cJSON_GetErrorPtr() : NULL;
        long off = at && at >= data && at <= data + n ? (long)(at - data) : -1;
        lx_set_error(LX_E_FORMAT, "lx_tokenizer_load: %s: not valid JSON (near byte %ld of %zu)", file, off, n);
        return NULL;
    }
    c.t = tok_new(file);
    bool ok = c.t != NULL;
    if (ok && !cJSON_IsObject(root)) ok = jfail(&c, LX_E_FORMAT, "the top level is not a JSON object");
    ok = ok && parse_model(&c, jget(root, "model"));
    ok = ok && parse_added(&c, jget(root, "added_tokens"));
    ok = ok && parse_normalizer(&c, jget(root, "normalizer"), 0);
    ok = ok && parse_pre(&c, jget(root, "pre_tokenizer"), 0);
    ok = ok && parse_decoder(&c, jget(root, "decoder"), 0);
    if (ok && (!jget(root, "decoder") || cJSON_IsNull(jget(root, "decoder")))) c.t->dec_none = true;
    ok = ok && parse_post(&c, jget(root, "post_processor"), 0);
    ok = ok && tok_finish(c.t) && tok_enable_cache(c.t);
    cJSON_Delete(root);
    if (ok) {
        c.t->prefix = c.pre;
        c.t->n_prefix = c.npre;
        c.t->suffix = c.suf;
        c.t->n_suffix = c.nsuf;
        c.pre = c.suf = NULL;
        c.t->had_post = c.had_post;
    }
    jctx_free(&c);
    if (!ok) {
        lx_tokenizer_free(c.t);
        return NULL;
    }
    return c.t;
}

/* bos_token / eos_token: a string or an AddedToken object with "content" */
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = jget(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return jstr(v, "content");
}

static bool apply_config(lx_tokenizer *t, const char *path) {
    io_image *im = io_image_open("lx_tokenizer_load", path);
    if (!im) return false;
    cJSON *cfg = io_utf8_valid(im->data, im->size)
                     ? cJSON_ParseWithLength((const char *)im->data, im->size)
                     : NULL;
    io_image_release(im);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        lx_set_error(LX_E_FORMAT, "lx_tokenizer_load: %s: not a JSON object", path);
        return false;
    }
    const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
    if (bos) t->bos = tok_lookup(t, bos, strlen(bos));
    if (eos) t->eos = tok_lookup(t, eos, strlen(eos));
    bool ok = true;
    if (!t->had_post) {
        /* without a post-processor, the config's flags say what ADD_SPECIAL adds */
        if (jbool(cfg, "add_bos_token", false) && t->bos >= 0) {
            free(t->prefix);
            t->prefix = malloc(sizeof *t->prefix);
            ok = t->prefix != NULL;
            if (ok) { t->prefix[0] = t->bos; t->n_prefix = 1; }
        }
        if (ok && jbool(cfg, "add_eos_token", false) && t->eos >= 0) {
            free(t->suffix);
            t->suffix = malloc(sizeof *t->suffix);
            ok = t->suffix != NULL;
            if (ok) { t->suffix[0] = t->eos; t->n_suffix = 1; }
        }
        if (!ok) tok_oom(t);
    }
    cJSON_Delete(cfg);
    return ok;
}

lx_tokenizer *tok_load_json(const char *json_path, const char *config_path) {
    io_image *im = io_image_open("lx_tokenizer_load", json_path);
    if (!im) return NULL;
    lx_tokenizer *t = tok_from_json_text((const char *)im->data, im->size, json_path);
    io_image_release(im);
    if (t && config_path && !apply_config(t, config_path)) {
        lx_tokenizer_free(t);
        return NULL;
    }
    return t;
}
