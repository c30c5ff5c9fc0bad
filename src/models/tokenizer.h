/*
 * tokenizer.h -- the tokenizer's internal shape, shared by its files:
 *   tokenizer.c        vocabulary, merges, the BPE and SentencePiece models, added-token
 *                      matching, encoding and the public queries
 *   tokenizer_text.c   UTF-8 and byte-level helpers, regexes (PCRE2), normalizers and
 *                      pre-tokenizers
 *   tokenizer_decode.c decoders, lx_detokenize and the streaming detokenizer
 *   tokenizer_json.c   tokenizer.json (+ tokenizer_config.json)
 *   tokenizer_gguf.c   GGUF tokenizer.ggml.* metadata
 *
 * One pipeline serves both sources: a text is cut at added tokens, each remaining segment is
 * normalized, pre-tokenized into pieces and each piece encoded by the model (BPE by merge
 * rank, or SentencePiece by score). GGUF vocabularies are expressed as the same steps
 * (regex splits + byte-level for "gpt2", space escaping + SPM for "llama"), with the few
 * places where llama.cpp behaves differently from Hugging Face flagged in `gguf`.
 */
#ifndef LX_MODELS_TOKENIZER_H
#define LX_MODELS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "lx.h"

/* token attributes */
enum {
    TOK_SPECIAL = 1u,  /* control/special: left out by skip_special, parsed only on request */
    TOK_ADDED = 2u,    /* matched in the text before the model runs (added / user-defined) */
    TOK_BYTE = 4u,     /* a byte token <0xXX> */
    TOK_UNUSED = 8u,   /* GGUF unused / undefined type: decodes to nothing */
    TOK_UNKNOWN = 16u, /* GGUF unknown type */
};

/* ---- growable byte buffer and list of strings (tokenizer_text.c) -------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} tok_buf;

bool tok_buf_put(tok_buf *b, const void *s, size_t n);
bool tok_buf_putc(tok_buf *b, char c);

/* strings held back to back in one buffer: string i is buf.p[off[i] .. off[i] + len[i]) */
typedef struct {
    tok_buf buf;
    size_t *off, *len;
    int n, cap;
    bool oom;
} tok_strs;

bool tok_strs_push(tok_strs *s, const char *p, size_t n);
void tok_strs_clear(tok_strs *s);
void tok_strs_free(tok_strs *s);

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if it is not one. */
int tok_utf8_seq(const uint8_t *s, size_t n);
/* Length of the character at s (from its lead byte; input known valid). */
static inline int tok_utf8_len(uint8_t c) {
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}
int tok_utf8_put(char out[4], uint32_t cp);
uint32_t tok_utf8_get(const uint8_t *s, int len);
/* Copies s with every invalid sequence replaced by U+FFFD (maximal subparts, as Rust's
 * from_utf8_lossy and WHATWG). NULL when s is valid (no copy needed) or on OOM (*oom). */
char *tok_utf8_sanitize(const char *s, size_t n, size_t *out_n, bool *oom);

/* Streaming UTF-8 repair: bytes in, valid text out; an incomplete tail is held back. */
typedef struct {
    uint8_t pend[4];
    int npend, need;
} tok_utf8_stream;
bool tok_utf8_stream_put(tok_utf8_stream *u, const uint8_t *s, size_t n, tok_buf *out);
bool tok_utf8_stream_end(tok_utf8_stream *u, tok_buf *out); /* tail as U+FFFD */

/* The GPT-2 byte-level alphabet: bytes that are printable Latin-1 stand for themselves, the
 * other 68 for U+0100.. in byte order. tok_cp_byte is the inverse, -1 outside the alphabet. */
static inline uint32_t tok_byte_cp(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    return b <= 32 ? 256u + b : b <= 160 ? 289u + (b - 127u) : 323u;
}
static inline int tok_cp_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)cp - 256;
    if (cp >= 289 && cp <= 322) return (int)cp - 289 + 127;
    return cp == 323 ? 173 : -1;
}
/* Rust's char::is_whitespace (the White_Space property). */
bool tok_is_ws(uint32_t cp);

/* ---- regexes ------------------------------------------------------------------------------ */

/* Compiles a Hugging Face (Oniguruma) / llama.cpp pattern with PCRE2 (UTF, UCP, JIT when
 * available); \s also matches U+0085 as Oniguruma's does. NULL + LX_E_FORMAT naming file and
 * what. */
pcre2_code *tok_regex_compile(const char *pat, size_t len, const char *file, const char *what);
/* First match at or after start: 1 (sets *ms, *me), 0 none, -1 with the error set. Empty
 * matches are skipped. */
int tok_regex_find(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                   size_t start, size_t *ms, size_t *me);

/* ---- normalizers and pre-tokenizers -------------------------------------------------------- */

typedef enum { NORM_NFC, NORM_NFKC, NORM_NFD, NORM_NFKD, NORM_LOWER, NORM_STRIP, NORM_PREPEND,
               NORM_REPLACE } tok_norm_kind;
typedef struct {
    tok_norm_kind kind;
    bool left, right;      /* Strip */
    char *a, *b;           /* Prepend: a; Replace: a -> b (a literal unless re) */
    size_t alen, blen;
    pcre2_code *re;
} tok_norm;

typedef enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_DIGITS, PRE_METASPACE, PRE_WHITESPACE_SPLIT,
               PRE_PUNCT } tok_pre_kind;
typedef enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_PREV, SPLIT_NEXT, SPLIT_CONTIGUOUS } tok_split;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } tok_prepend;
typedef struct {
    tok_pre_kind kind;
    pcre2_code *re;        /* Split (regex), ByteLevel's use_regex, Digits */
    char *lit;             /* Split with a String pattern */
    size_t litlen;
    tok_split behavior;
    bool invert;
    bool add_prefix_space; /* ByteLevel */
    char *repl;            /* Metaspace replacement (UTF-8) */
    size_t repllen;
    tok_prepend prepend;
    bool split;            /* Metaspace */
} tok_pre;

typedef struct {
    pcre2_match_data *md;
    tok_strs a, b;         /* scratch for the pre-tokenizer steps */
    tok_buf tmp;
} tok_scratch;

/* Normalizes s into out (replacing its contents). False with the error set. */
bool tok_normalize(const lx_tokenizer *t, const char *s, size_t n, tok_buf *out, tok_scratch *sc);
/* Pre-tokenizes s into pieces (out cleared first); first: the segment starts the text. */
bool tok_pretokenize(const lx_tokenizer *t, const char *s, size_t n, bool first, tok_strs *out,
                     tok_scratch *sc);

/* ---- decoders ----------------------------------------------------------------------------- */

typedef enum { DEC_REPLACE, DEC_STRIP, DEC_METASPACE, DEC_BYTELEVEL, DEC_BYTEFALLBACK, DEC_FUSE }
    tok_dec_kind;
typedef struct {
    tok_dec_kind kind;
    char *a, *b;           /* Replace a -> b; Strip / Metaspace: a is the content */
    size_t alen, blen;
    int start, stop;       /* Strip */
    bool strip_first;      /* Metaspace: prepend scheme is not never */
} tok_dec;

/* ---- the tokenizer ------------------------------------------------------------------------ */

typedef struct {
    int32_t id;
    uint32_t len;
    const char *s;
    bool special, lstrip, rstrip, normalized, single_word;
} tok_added;

typedef struct {
    uint64_t key;          /* left << 32 | right; 0 with id -1 = empty */
    int32_t rank, id;
} tok_merge;

typedef struct tok_cache tok_cache;

struct lx_tokenizer {
    char *file;            /* for messages */
    bool spm;              /* SentencePiece model (merge by score) instead of BPE ranks */
    bool gguf;             /* llama.cpp rules for decoding and special-token spacing */

    /* vocabulary: id -> text (NULL for holes); text -> id through an open-addressed map */
    int n_vocab, vocab_cap;
    char **text;
    uint32_t *len;
    float *score;
    uint8_t *attr;
    int32_t byte_id[256];  /* id of <0xXX>, -1 if absent */
    struct { const char *s; uint32_t len; int32_t id; } *map;
    uint32_t map_cap, map_n;
    char **extra;          /* model pieces an added token's text replaced (still in the map) */
    int n_extra;

    tok_merge *merges;     /* open addressing, capacity merge_cap (power of two) */
    uint32_t merge_cap, n_merges;

    tok_added *added;      /* sorted by first byte then longest first */
    int n_added;
    int added_first[257];  /* added[added_first[c] .. added_first[c+1]) start with byte c */
    bool any_normalized_added;

    /* model options */
    int32_t unk_id;
    bool byte_fallback, ignore_merges, fuse_unk;
    bool spm_space_prefix; /* GGUF llama: ' ' before the text and after each special token */

    tok_norm *norm;
    int n_norm;
    tok_pre *pre;
    int n_pre;
    tok_dec *dec;
    int n_dec;
    bool dec_none;         /* no decoder: tokens joined by spaces (as Hugging Face) */

    /* ADD_SPECIAL: ids before and after the text */
    int32_t *prefix, *suffix;
    int n_prefix, n_suffix;
    int32_t bos, eos;
    bool had_post;         /* tokenizer.json has a post-processor (else the config's flags) */

    tok_cache *cache;
};

/* building (tokenizer.c) */
lx_tokenizer *tok_new(const char *file);
/* Sets id's text (copied). Grows the vocabulary as needed; false + error on OOM / bad id. */
bool tok_set_piece(lx_tokenizer *t, int32_t id, const char *s, size_t n, uint8_t attr);
/* After all pieces: builds the text map (first id wins for duplicate texts) and byte ids. */
bool tok_index(lx_tokenizer *t);
int32_t tok_lookup(const lx_tokenizer *t, const char *s, size_t n);
/* Adds merge (a, b) with rank: 1 added (or a duplicate, whose first rank stays), 0 when a, b
 * or a+b is not in the vocabulary, -1 on OOM (error set). */
int tok_add_merge(lx_tokenizer *t, int32_t rank, const char *a, size_t alen, const char *b,
                  size_t blen);
/* <0xXX> -> XX, else -1 */
int tok_byte_of(const char *s, size_t n);
bool tok_add_added(lx_tokenizer *t, const tok_added *a);
/* Sorts the added tokens and builds their first-byte index. */
bool tok_finish(lx_tokenizer *t);
/* Turns on the cache of BPE piece results (after loading). */
bool tok_enable_cache(lx_tokenizer *t);
void tok_free_steps(lx_tokenizer *t);
lx_status tok_oom(const lx_tokenizer *t);

/* sources */
lx_tokenizer *tok_load_json(const char *json_path, const char *config_path);
lx_tokenizer *tok_from_json_text(const char *data, size_t n, const char *file);
lx_tokenizer *tok_load_gguf(const char *path);
/* From a GGUF's already loaded metadata (the model loader's weights object). */
lx_tokenizer *tok_from_gguf_weights(const lx_weights *w, const char *file);


#endif
