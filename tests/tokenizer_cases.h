/*
 * tokenizer_cases.h -- what the tokenizer tests share: reading a JSON fixture, comparing
 * lx_tokenize with reference ids exactly, lx_detokenize with reference text, and the
 * streaming detokenizer with the batch decode over every prefix of an id list.
 */
#ifndef LX_TEST_TOKENIZER_CASES_H
#define LX_TEST_TOKENIZER_CASES_H

#include <cjson/cJSON.h>

#include "test_util.h"

static char *tc_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)sz + 1);
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) { free(p); p = NULL; }
    fclose(f);
    if (p) p[sz] = 0;
    if (n) *n = (size_t)sz;
    return p;
}

static cJSON *tc_load_json(const char *path) {
    char *s = tc_read_file(path, NULL);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    if (!j) fprintf(stderr, "cannot read fixture %s\n", path);
    return j;
}

static void tc_print_ids(const char *what, const int32_t *ids, int n) {
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n");
}

/* lx_tokenize(text, flags) == want (a JSON array of ids); returns whether equal */
static bool tc_check_ids(const lx_tokenizer *t, const char *text, unsigned flags, const cJSON *want,
                         const char *label) {
    int nw = cJSON_GetArraySize(want);
    int32_t *w = malloc(sizeof *w * (size_t)(nw + 1));
    for (int i = 0; i < nw; i++) w[i] = (int32_t)cJSON_GetArrayItem(want, i)->valuedouble;
    int n = lx_tokenize(t, text, strlen(text), flags, NULL, 0);
    int32_t *got = malloc(sizeof *got * (size_t)(n > 0 ? n : 1));
    int n2 = n >= 0 ? lx_tokenize(t, text, strlen(text), flags, got, n) : -1;
    bool ok = n >= 0 && n2 == n && n == nw && (n == 0 || memcmp(got, w, sizeof *w * (size_t)n) == 0);
    CHECK_MSG(ok, "%s: text \"%s\" flags %u", label, text, flags);
    if (!ok) {
        tc_print_ids("want", w, nw);
        tc_print_ids("got", got, n);
        if (n < 0) fprintf(stderr, "  error: %s\n", lx_error_message());
        lx_clear_error();
    }
    free(w);
    free(got);
    return ok;
}

static char *tc_decode(const lx_tokenizer *t, const int32_t *ids, int n, bool skip) {
    long len = lx_detokenize(t, ids, n, skip, NULL, 0);
    if (len < 0) return NULL;
    char *s = malloc((size_t)len + 1);
    long len2 = lx_detokenize(t, ids, n, skip, s, (size_t)len + 1);
    if (len2 != len) { free(s); return NULL; }
    return s;
}

static bool tc_valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        int l = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3
              : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        if (!l || i + (size_t)l > n) return false;
        for (int k = 1; k < l; k++)
            if ((u[i + k] & 0xc0) != 0x80) return false;
        if (l == 3 && ((c == 0xe0 && u[i + 1] < 0xa0) || (c == 0xed && u[i + 1] > 0x9f))) return false;
        if (l == 4 && ((c == 0xf0 && u[i + 1] < 0x90) || (c == 0xf4 && u[i + 1] > 0x8f))) return false;
        i += (size_t)l;
    }
    return true;
}

/* For every prefix of ids: the pushes' pieces (each whole UTF-8) then the flush equal the batch
 * decode of that prefix. */
static void tc_check_stream(const lx_tokenizer *t, const int32_t *ids, int n, bool skip,
                            const char *label) {
    for (int k = 0; k <= n; k++) {
        char *want = tc_decode(t, ids, k, skip);
        CHECK(want != NULL);
        lx_detokenizer *d = lx_detokenizer_new(t, skip);
        size_t cap = 64, len = 0;
        char *got = malloc(cap);
        bool pieces_ok = true;
        for (int i = 0; i <= k; i++) {
            size_t l = 0;
            const char *p = i < k ? lx_detokenizer_push(d, ids[i], &l) : lx_detokenizer_flush(d, &l);
            if (!p) { pieces_ok = false; break; }
            if (!tc_valid_utf8(p, l)) pieces_ok = false;
            while (len + l + 1 > cap) got = realloc(got, cap *= 2);
            memcpy(got + len, p, l);
            len += l;
        }
        got[len] = 0;
        lx_detokenizer_free(d);
        bool ok = pieces_ok && want && strlen(want) == len && memcmp(want, got, len) == 0;
        CHECK_MSG(ok, "%s: stream of %d ids: \"%s\" vs batch \"%s\"", label, k, got, want ? want : "(null)");
        free(want);
        free(got);
        if (!ok) break;
    }
}

/* ids of a JSON array into a new buffer */
static int32_t *tc_ids(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int32_t *v = malloc(sizeof *v * (size_t)(*n + 1));
    for (int i = 0; i < *n; i++) v[i] = (int32_t)cJSON_GetArrayItem(a, i)->valuedouble;
    return v;
}

/* One fixture's cases: fields "ids" (flags `base`), "ids_nospecial" (flags 0),
 * "ids_add_special" (ADD_SPECIAL | base), "decoded" (decode of ids, specials kept),
 * "decoded_skip" (skipped); streaming checked on ids. Returns how many cases failed. */
static int tc_run_cases(const lx_tokenizer *t, const cJSON *cases, unsigned base, const char *label,
                        bool stream) {
    int bad = 0, i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        bool ok = tc_check_ids(t, text, base, cJSON_GetObjectItem(c, "ids"), label);
        const cJSON *f;
        if ((f = cJSON_GetObjectItem(c, "ids_nospecial"))) ok &= tc_check_ids(t, text, 0, f, label);
        if ((f = cJSON_GetObjectItem(c, "ids_add_special")))
            ok &= tc_check_ids(t, text, base | LX_TOKENIZE_ADD_SPECIAL, f, label);
        int n;
        int32_t *ids = tc_ids(cJSON_GetObjectItem(c, "ids"), &n);
        for (int skip = 0; skip < 2; skip++) {
            const cJSON *want = cJSON_GetObjectItem(c, skip ? "decoded_skip" : "decoded");
            if (!want) continue;
            char *got = tc_decode(t, ids, n, skip);
            bool same = got && strcmp(got, want->valuestring) == 0;
            CHECK_MSG(same, "%s: decode (skip %d) of \"%s\": got \"%s\" want \"%s\"", label, skip,
                      text, got ? got : "(null)", want->valuestring);
            ok &= same;
            free(got);
        }
        if (stream) tc_check_stream(t, ids, n, false, label);
        free(ids);
        bad += !ok;
        i++;
    }
    printf("  %s: %d cases, %d differ\n", label, i, bad);
    return bad;
}

#endif
