/*
 * test_tokenizer.c -- the tokenizer against reference ids, exactly: the shared fixtures' cases
 * (tiny-llama-f32 and tiny-qwen3-bf16 share one byte-level BPE tokenizer.json), two Llama 2
 * style tokenizer.json files (legacy normalizer and Metaspace, byte fallback) checked against
 * the tokenizers library, a llama-type GGUF vocabulary checked against llama.cpp; decode round
 * trips, streaming = batch decode over every prefix, special tokens on and off, invalid UTF-8,
 * and malformed files giving LX_E_FORMAT with the file named.
 */
#include <sys/stat.h>

#include "tokenizer_cases.h"

static const char *fixtures(void) {
    const char *f = getenv("LX_FIXTURES");
    return f ? f : "../shared/fixtures";
}

static const char *repo_fixture(const char *name) {
    static char buf[4][1024];
    static int k;
    const char *r = getenv("LX_REPO");
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/tests/fixtures/%s", r ? r : ".", name);
    return b;
}

static const char *tmp_path(const char *name) {
    static char buf[4][1024];
    static int k;
    const char *d = getenv("LX_TEST_TMP");
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", d ? d : "/tmp", name);
    return b;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

static void test_shared_fixture_cases(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", fixtures());
    cJSON *j = tc_load_json(path);
    CHECK(j != NULL);
    if (!j) return;
    const char *models[] = {"tiny-llama-f32", "tiny-qwen3-bf16"};
    for (int m = 0; m < 2; m++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", fixtures(), models[m]);
        lx_tokenizer *t = lx_tokenizer_load(dir);
        CHECK_MSG(t != NULL, "%s: %s", dir, lx_error_message());
        if (!t) { lx_clear_error(); continue; }
        const cJSON *cases = cJSON_GetObjectItem(j, "cases");
        /* Hugging Face always parses special tokens: PARSE_SPECIAL */
        CHECK(tc_run_cases(t, cases, LX_TOKENIZE_PARSE_SPECIAL, models[m], true) == 0);
        /* byte-level BPE is lossless: decoding gives the text back */
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
            int n;
            int32_t *ids = tc_ids(cJSON_GetObjectItem(c, "ids"), &n);
            char *s = tc_decode(t, ids, n, false);
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            CHECK_MSG(s && strcmp(s, text) == 0, "round trip of \"%s\": \"%s\"", text, s ? s : "");
            free(s);
            free(ids);
        }
        CHECK(lx_tokenizer_vocab_size(t) == 512);
        lx_tokenizer_free(t);
    }
    cJSON_Delete(j);
}

static void test_tiny_hf(void) {
    cJSON *j = tc_load_json(repo_fixture("tiny_hf_cases.json"));
    CHECK(j != NULL);
    if (!j) return;
    const char *names[] = {"tiny_llama2_tokenizer.json", "tiny_metaspace_tokenizer.json"};
    for (int k = 0; k < 2; k++) {
        lx_tokenizer *t = lx_tokenizer_load(repo_fixture(names[k]));
        CHECK_MSG(t != NULL, "%s", lx_error_message());
        if (!t) { lx_clear_error(); continue; }
        const cJSON *e = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "tokenizers"), names[k]);
        CHECK(tc_run_cases(t, cJSON_GetObjectItem(e, "cases"), LX_TOKENIZE_PARSE_SPECIAL, names[k], true) == 0);
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(e, "decode")) {
            int n;
            int32_t *ids = tc_ids(cJSON_GetObjectItem(d, "ids"), &n);
            for (int skip = 0; skip < 2; skip++) {
                const char *want = cJSON_GetObjectItem(d, skip ? "decoded_skip" : "decoded")->valuestring;
                char *got = tc_decode(t, ids, n, skip);
                CHECK_MSG(got && strcmp(got, want) == 0, "%s decode-only (skip %d): \"%s\" want \"%s\"",
                          names[k], skip, got ? got : "", want);
                free(got);
                tc_check_stream(t, ids, n, skip, names[k]);
            }
            free(ids);
        }
        CHECK(lx_tokenizer_bos(t) == -1); /* no tokenizer_config.json beside these */
        CHECK(lx_token_is_special(t, 1) && !lx_token_is_special(t, lx_token_id(t, "<|user|>")));
        lx_tokenizer_free(t);
    }
    cJSON_Delete(j);
}

static void test_tiny_spm_gguf(void) {
    cJSON *j = tc_load_json(repo_fixture("tiny_spm_cases.json"));
    lx_tokenizer *t = lx_tokenizer_load(repo_fixture("tiny_spm.gguf"));
    CHECK_MSG(t != NULL, "%s", lx_error_message());
    if (t && j) {
        CHECK(tc_run_cases(t, cJSON_GetObjectItem(j, "cases"), LX_TOKENIZE_PARSE_SPECIAL, "tiny_spm.gguf", true) == 0);
        CHECK(lx_tokenizer_bos(t) == 1 && lx_tokenizer_eos(t) == 2);
        CHECK(lx_token_is_special(t, 1) && !lx_token_is_special(t, 100));
        CHECK(strcmp(lx_token_piece(t, 3 + 0x41), "<0x41>") == 0);
    }
    lx_clear_error();
    lx_tokenizer_free(t);
    cJSON_Delete(j);
}

static lx_tokenizer *load_qwen(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tiny-qwen3-bf16", fixtures());
    lx_tokenizer *t = lx_tokenizer_load(dir);
    CHECK_MSG(t != NULL, "%s", lx_error_message());
    return t;
}

static void test_special_tokens(void) {
    lx_tokenizer *t = load_qwen();
    if (!t) return;
    const char *text = "<|im_start|>user\nhi<|im_end|>";
    int32_t on[64], off[64];
    int non = lx_tokenize(t, text, strlen(text), LX_TOKENIZE_PARSE_SPECIAL, on, 64);
    int noff = lx_tokenize(t, text, strlen(text), 0, off, 64);
    CHECK(non == 7 && on[0] == 1 && on[6] == 2);
    CHECK(noff > non);
    for (int i = 0; i < noff; i++) CHECK(off[i] != 1 && off[i] != 2);
    /* as text, the markers come back from the decode */
    char *s = tc_decode(t, off, noff, false);
    CHECK(s && strcmp(s, text) == 0);
    free(s);
    /* skip_special drops the parsed ones */
    s = tc_decode(t, on, non, true);
    CHECK(s && strcmp(s, "user\nhi") == 0);
    free(s);
    CHECK(lx_token_id(t, "<|im_end|>") == 2 && lx_token_is_special(t, 2) && !lx_token_is_special(t, 100));
    CHECK(strcmp(lx_token_piece(t, 0), "<|endoftext|>") == 0);
    CHECK(lx_token_piece(t, 512) == NULL && lx_token_piece(t, -1) == NULL && lx_token_id(t, "nope!!") == -1);
    /* ADD_SPECIAL without a post-processor or config adds nothing */
    CHECK(lx_tokenize(t, "hi", 2, LX_TOKENIZE_ADD_SPECIAL, NULL, 0) == lx_tokenize(t, "hi", 2, 0, NULL, 0));
    lx_tokenizer_free(t);
}

static void test_config_beside(void) {
    /* a folder with tokenizer.json and a tokenizer_config.json naming bos/eos */
    char src[1024];
    snprintf(src, sizeof src, "%s/tiny-qwen3-bf16/tokenizer.json", fixtures());
    size_t n;
    char *json = tc_read_file(src, &n);
    CHECK(json != NULL);
    if (!json) return;
    const char *dir = tmp_path("tok_folder");
    mkdir(dir, 0755);
    char p[1200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    write_file(p, json, n);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    const char *cfg = "{\"bos_token\": {\"content\": \"<|im_start|>\"}, \"eos_token\": \"<|im_end|>\","
                      " \"add_bos_token\": true, \"add_eos_token\": true}";
    write_file(p, cfg, strlen(cfg));
    lx_tokenizer *t = lx_tokenizer_load(dir);
    CHECK_MSG(t != NULL, "%s", lx_error_message());
    if (t) {
        CHECK(lx_tokenizer_bos(t) == 1 && lx_tokenizer_eos(t) == 2);
        int32_t ids[16];
        int k = lx_tokenize(t, "a", 1, LX_TOKENIZE_ADD_SPECIAL, ids, 16);
        CHECK(k == 3 && ids[0] == 1 && ids[2] == 2);
        lx_tokenizer_free(t);
    }
    /* a tokenizer.json path finds the config beside it too */
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    t = lx_tokenizer_load(p);
    CHECK(t && lx_tokenizer_bos(t) == 1);
    lx_tokenizer_free(t);
    free(json);
}

static void test_invalid_utf8_and_api(void) {
    lx_tokenizer *t = load_qwen();
    if (!t) return;
    /* invalid UTF-8 is replaced by U+FFFD before encoding, never an error */
    const char bad[] = "ok \xff\xfe x\xe6\x97 y\xed\xa0\x80 \xc0\xaf z\xf0\x9f";
    int32_t ids[256];
    int n = lx_tokenize(t, bad, sizeof bad - 1, 0, ids, 256);
    CHECK(n > 0);
    char *s = tc_decode(t, ids, n > 0 ? n : 0, false);
    CHECK(s && tc_valid_utf8(s, strlen(s)) && strstr(s, "\xef\xbf\xbd") && strncmp(s, "ok ", 3) == 0);
    free(s);
    const char fffd[] = "ok \xef\xbf\xbd\xef\xbf\xbd x\xef\xbf\xbd y\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                        "\xef\xbf\xbd\xef\xbf\xbd z\xef\xbf\xbd";
    int32_t ids2[256];
    int n2 = lx_tokenize(t, fffd, sizeof fffd - 1, 0, ids2, 256);
    CHECK(n2 == n && memcmp(ids, ids2, sizeof *ids * (size_t)(n > 0 ? n : 0)) == 0);
    /* NUL bytes are text too */
    CHECK(lx_tokenize(t, "a\0b", 3, 0, NULL, 0) >= 3);
    /* a short buffer: the count is still the whole */
    int32_t one[1];
    const char *text = "The quick brown fox";
    int all = lx_tokenize(t, text, strlen(text), 0, NULL, 0);
    CHECK(lx_tokenize(t, text, strlen(text), 0, one, 1) == all && all > 1);
    /* decode into a short buffer: snprintf-style */
    int32_t hi[8];
    int nh = lx_tokenize(t, "hello world", 11, 0, hi, 8);
    char small[6];
    CHECK(lx_detokenize(t, hi, nh, false, small, sizeof small) == 11 && strcmp(small, "hello") == 0);
    /* a stream split inside a character: nothing half emitted, flush shows U+FFFD */
    int32_t e[8];
    int ne = lx_tokenize(t, "\xe6\x97\xa5", 3, 0, e, 8);
    CHECK(ne == 3); /* three byte tokens in this tiny vocabulary */
    lx_detokenizer *d = lx_detokenizer_new(t, false);
    size_t l = 99;
    const char *p = lx_detokenizer_push(d, e[0], &l);
    CHECK(p && l == 0);
    p = lx_detokenizer_flush(d, &l);
    CHECK(p && l == 3 && memcmp(p, "\xef\xbf\xbd", 3) == 0);
    for (int i = 0; i < ne; i++) p = lx_detokenizer_push(d, e[i], &l);
    CHECK(p && l == 3 && memcmp(p, "\xe6\x97\xa5", 3) == 0);
    /* errors */
    CHECK(lx_detokenizer_push(d, 512, &l) == NULL);
    CHECK_ERROR(LX_E_ARG);
    lx_detokenizer_free(d);
    int32_t badid = 99999;
    CHECK(lx_detokenize(t, &badid, 1, false, NULL, 0) == -1);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_tokenize(t, NULL, 3, 0, NULL, 0) == -1);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_tokenize(NULL, "a", 1, 0, NULL, 0) == -1);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_tokenize(t, "", 0, 0, NULL, 0) == 0);
    CHECK(lx_detokenize(t, NULL, 0, false, NULL, 0) == 0);
    lx_tokenizer_free(t);
    lx_tokenizer_free(NULL);
    CHECK(lx_tokenizer_load(NULL) == NULL);
    CHECK_ERROR(LX_E_ARG);
    CHECK(lx_tokenizer_load(tmp_path("no/such/tokenizer.json")) == NULL);
    CHECK_ERROR(LX_E_IO);
}

/* A malformed file must give LX_E_FORMAT naming it. */
static void expect_format(const char *name, const void *data, size_t n, const char *needle) {
    const char *path = tmp_path(name);
    write_file(path, data, n);
    lx_tokenizer *t = lx_tokenizer_load(path);
    CHECK_MSG(t == NULL, "%s loaded", name);
    lx_tokenizer_free(t);
    const char *msg = lx_error_message();
    CHECK_MSG(lx_error() == LX_E_FORMAT && strstr(msg, name) && (!needle || strstr(msg, needle)),
              "%s: %s: %s", name, lx_status_string(lx_error()), msg);
    lx_clear_error();
}

/* minimal GGUF writer: string and string-array metadata, no tensors */
typedef struct { unsigned char b[8192]; size_t n; } gbuf;
static void g_put(gbuf *g, const void *p, size_t n) { memcpy(g->b + g->n, p, n); g->n += n; }
static void g_u32(gbuf *g, uint32_t v) { g_put(g, &v, 4); }
static void g_u64(gbuf *g, uint64_t v) { g_put(g, &v, 8); }
static void g_str(gbuf *g, const char *s) { g_u64(g, strlen(s)); g_put(g, s, strlen(s)); }
static void g_kv_str(gbuf *g, const char *k, const char *v) { g_str(g, k); g_u32(g, 8); g_str(g, v); }
static void g_kv_strs(gbuf *g, const char *k, const char *const *v, int n) {
    g_str(g, k);
    g_u32(g, 9);
    g_u32(g, 8);
    g_u64(g, (uint64_t)n);
    for (int i = 0; i < n; i++) g_str(g, v[i]);
}
static void g_head(gbuf *g, int n_kv) {
    g->n = 0;
    g_put(g, "GGUF", 4);
    g_u32(g, 3);
    g_u64(g, 0);
    g_u64(g, (uint64_t)n_kv);
}

static void test_bad_inputs(void) {
    char src[1024];
    snprintf(src, sizeof src, "%s/tiny-qwen3-bf16/tokenizer.json", fixtures());
    size_t n;
    char *json = tc_read_file(src, &n);
    CHECK(json != NULL);
    if (!json) return;
    expect_format("tok_truncated.json", json, n / 2, "not valid JSON");
    expect_format("tok_empty.json", "", 0, "not valid JSON");
    /* a byte that is not UTF-8 inside a string (fuzz_tokenizer's find: such strings reached
     * the regexes, which match without a UTF-8 check) */
    const char *notutf8 = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                          "\"added_tokens\": [{\"id\": 1, \"content\": \"<\x90x>\"}]}";
    expect_format("tok_not_utf8.json", notutf8, strlen(notutf8), "UTF-8");
    expect_format("tok_array.json", "[1, 2]", 6, "top level");
    expect_format("tok_nomodel.json", "{\"added_tokens\": []}", 20, "model");
    const char *novocab = "{\"model\": {\"type\": \"BPE\", \"merges\": []}}";
    expect_format("tok_novocab.json", novocab, strlen(novocab), "vocab");
    const char *badmerge = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}";
    expect_format("tok_badmerge.json", badmerge, strlen(badmerge), "merges[0]");
    const char *badmerge2 = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"ab\"]}}";
    expect_format("tok_badmerge2.json", badmerge2, strlen(badmerge2), "merges[0]");
    const char *badmerge3 = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", 3]]}}";
    expect_format("tok_badmerge3.json", badmerge3, strlen(badmerge3), "merges[0]");
    const char *badid = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4}, \"merges\": []}}";
    expect_format("tok_badid.json", badid, strlen(badid), "vocab");
    const char *dupid = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}";
    expect_format("tok_dupid.json", dupid, strlen(dupid), "id 0");
    const char *badre = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                        " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}}";
    expect_format("tok_badre.json", badre, strlen(badre), "regex");
    const char *badadded = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                           " \"added_tokens\": [{\"content\": \"x\"}]}";
    expect_format("tok_badadded.json", badadded, strlen(badadded), "added_tokens[0]");
    const char *badunk = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}}";
    expect_format("tok_badunk.json", badunk, strlen(badunk), "unk_token");
    /* unsupported, not malformed */
    const char *wp = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}";
    write_file(tmp_path("tok_wordpiece.json"), wp, strlen(wp));
    CHECK(lx_tokenizer_load(tmp_path("tok_wordpiece.json")) == NULL);
    CHECK_ERROR(LX_E_UNSUPPORTED);
    /* a malformed tokenizer_config.json beside a good tokenizer.json */
    const char *dir = tmp_path("tok_badcfg");
    mkdir(dir, 0755);
    char p[1200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    write_file(p, json, n);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    write_file(p, "{oops", 5);
    CHECK(lx_tokenizer_load(dir) == NULL);
    CHECK_MSG(lx_error() == LX_E_FORMAT && strstr(lx_error_message(), "tokenizer_config.json"), "%s", lx_error_message());
    lx_clear_error();
    free(json);

    /* GGUF vocabularies */
    gbuf g;
    g_head(&g, 1);
    g_kv_str(&g, "general.architecture", "llama");
    expect_format("tok_nomodel.gguf", g.b, g.n, "tokenizer.ggml.model");
    g_head(&g, 1);
    g_kv_str(&g, "tokenizer.ggml.model", "gpt2");
    expect_format("tok_notokens.gguf", g.b, g.n, "tokenizer.ggml.tokens");
    const char *toks[] = {"a", "b", "ab"};
    g_head(&g, 2);
    g_kv_str(&g, "tokenizer.ggml.model", "gpt2");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks, 3);
    expect_format("tok_nomerges.gguf", g.b, g.n, "merges");
    const char *types[] = {"1", "1"};
    g_head(&g, 3);
    g_kv_str(&g, "tokenizer.ggml.model", "llama");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks, 3);
    g_kv_strs(&g, "tokenizer.ggml.token_type", types, 2); /* wrong type and count */
    expect_format("tok_badtypes.gguf", g.b, g.n, NULL);
    expect_format("tok_trunc.gguf", g.b, g.n - 5, NULL);
    /* a good tiny gpt2 vocabulary loads and merges */
    const char *merges[] = {"a b"};
    g_head(&g, 4);
    g_kv_str(&g, "tokenizer.ggml.model", "gpt2");
    g_kv_str(&g, "tokenizer.ggml.pre", "gpt-2");
    g_kv_strs(&g, "tokenizer.ggml.tokens", toks, 3);
    g_kv_strs(&g, "tokenizer.ggml.merges", merges, 1);
    write_file(tmp_path("tok_tiny.gguf"), g.b, g.n);
    lx_tokenizer *t = lx_tokenizer_load(tmp_path("tok_tiny.gguf"));
    CHECK_MSG(t != NULL, "%s", lx_error_message());
    if (t) {
        int32_t ids[8];
        CHECK(lx_tokenize(t, "abab", 4, 0, ids, 8) == 2 && ids[0] == 2 && ids[1] == 2);
        CHECK(lx_tokenizer_bos(t) == -1 && lx_tokenizer_vocab_size(t) == 3);
    }
    lx_tokenizer_free(t);
    lx_clear_error();
}

int main(void) {
    RUN_TEST(test_shared_fixture_cases);
    RUN_TEST(test_tiny_hf);
    RUN_TEST(test_tiny_spm_gguf);
    RUN_TEST(test_special_tokens);
    RUN_TEST(test_config_beside);
    RUN_TEST(test_invalid_utf8_and_api);
    RUN_TEST(test_bad_inputs);
    return test_finish();
}
