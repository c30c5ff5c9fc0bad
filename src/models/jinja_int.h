/*
 * jinja_int.h -- what the Jinja interpreter's files share: the arena, tokens, the syntax tree,
 * values and the render context. jinja_lex.c makes tokens, jinja_parse.c the tree,
 * jinja_value.c the values (conversion, printing, comparison), jinja_builtins.c the filters,
 * tests, methods and globals, jinja_eval.c runs the tree.
 */
#ifndef LX_MODELS_JINJA_INT_H
#define LX_MODELS_JINJA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "models/jinja.h"

/* ---- bounds: a template or context past these is refused with an error, never a crash ---- */
#define JJ_MAX_PARSE_DEPTH 200          /* nested expressions / blocks in the source */
#define JJ_MAX_EVAL_DEPTH 200           /* nested macro calls and expression evaluation */
#define JJ_MAX_STEPS 2000000L           /* loop iterations and macro calls in one render */
#define JJ_MAX_RANGE 1000000L           /* items range() may produce */
#define JJ_MAX_STRING ((size_t)64 << 20) /* bytes of one string or of the output */
#define JJ_MAX_ARENA ((size_t)512 << 20) /* bytes one render may allocate */

/* ---- arena: everything of a parse or a render is freed at once ---- */
typedef struct jj_block jj_block;
typedef struct {
    jj_block *head;
    size_t total, limit;
} jj_arena;

void *jj_alloc(jj_arena *a, size_t n); /* zeroed; NULL when out of memory or past the limit */
char *jj_strdup(jj_arena *a, const char *s, size_t n); /* NUL-terminated copy */
void jj_arena_free(jj_arena *a);

/* A growable byte buffer (malloc'd, not in the arena: the output can grow large). */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;  /* an append failed or passed JJ_MAX_STRING */
    bool too_long; /* it passed JJ_MAX_STRING (else memory ran out) */
} jj_buf;
bool jj_buf_add(jj_buf *b, const char *s, size_t n);
static inline bool jj_buf_adds(jj_buf *b, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return jj_buf_add(b, s, n);
}
void jj_buf_free(jj_buf *b);

/* ---- tokens ---- */
typedef enum {
    JT_EOF, JT_TEXT, JT_BLOCK_BEGIN, JT_BLOCK_END, JT_VAR_BEGIN, JT_VAR_END,
    JT_NAME, JT_STRING, JT_INT, JT_FLOAT, JT_OP
} jj_tok_type;

typedef enum {
    JO_ADD = 1, JO_SUB, JO_MUL, JO_DIV, JO_FLOORDIV, JO_MOD, JO_POW, JO_TILDE,
    JO_EQ, JO_NE, JO_LT, JO_LE, JO_GT, JO_GE, JO_ASSIGN,
    JO_LPAREN, JO_RPAREN, JO_LBRACKET, JO_RBRACKET, JO_LBRACE, JO_RBRACE,
    JO_COMMA, JO_DOT, JO_COLON, JO_PIPE,
    /* compare-only operators made by the parser */
    JO_IN, JO_NOTIN
} jj_op;

typedef struct {
    jj_tok_type type;
    jj_op op;
    const char *s; /* JT_TEXT: a slice of the source; JT_NAME / JT_STRING: arena text */
    size_t len;
    int64_t i;
    double f;
    int line, col;
} jj_tok;

typedef struct {
    jj_tok *v;
    size_t n, cap;
} jj_toks;

/* Normalizes line breaks as jinja2 does (every splitlines() break becomes \n, one trailing
 * break dropped) and tokenizes with trim_blocks / lstrip_blocks; false with the error set. */
bool jj_lex(jj_arena *a, const char *src, size_t len, const char *origin, jj_toks *out);

/* ---- syntax tree ---- */
typedef struct jv jv;
typedef struct jj_node jj_node;

typedef enum {
    /* statements */
    JN_BODY, JN_TEXT, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SET_BLOCK, JN_MACRO, JN_CALL_BLOCK,
    JN_FILTER_BLOCK, JN_BREAK, JN_CONTINUE,
    /* expressions */
    JN_CONST, JN_NAME, JN_GETATTR, JN_GETITEM, JN_SLICE, JN_CALL, JN_FILTER, JN_TEST,
    JN_BINOP, JN_NEG, JN_POS, JN_NOT, JN_AND, JN_OR, JN_COND, JN_LIST, JN_TUPLE, JN_DICT,
    JN_COMPARE, JN_CONCAT
} jj_kind;

struct jj_node {
    jj_kind kind;
    int line, col;
    jj_op op;
    const char *name;   /* JN_NAME, JN_GETATTR, JN_FILTER, JN_TEST, JN_MACRO, JN_SET (ns attr) */
    jj_node *a, *b, *c, *d; /* children; meaning per kind, see jinja_parse.c */
    jj_node **list;     /* body statements, call / list items, compare operands, dict keys */
    int n;
    jj_node **list2;    /* else body, kwarg values, dict values */
    int n2;
    const char **names; /* kwarg names, macro parameter names */
    jj_op *ops;         /* JN_COMPARE operators */
    jv *value;          /* JN_CONST */
    bool flag;          /* JN_TEST: negated ("is not"); JN_FOR: recursive */
};

struct lx_jinja {
    jj_arena arena;
    jj_node *root;
    const char *origin;
};

jj_node *jj_parse_tokens(jj_arena *a, const jj_toks *toks, const char *origin);

/* ---- values ---- */
typedef enum {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_LOOP,
    JV_FUNC, JV_MACRO
} jv_type;

typedef struct jj_loop jj_loop;

struct jv {
    jv_type t;
    bool tuple;    /* JV_LIST made as a tuple (prints with parentheses) */
    union {
        bool b;
        int64_t i;
        double f;
        struct { const char *p; size_t n; } s;
        struct { jv **v; size_t n, cap; } l;
        struct { jv **k, **v; size_t n, cap; } d; /* JV_DICT and JV_NS (insertion order) */
        struct { int id; jv *self; const char *name; } fn; /* builtin or bound method */
        struct { const jj_node *node; } m;
        jj_loop *loop;
        struct { const char *what; } undef; /* a name for messages */
    } u;
};

struct jj_loop {
    jv *items;      /* JV_LIST being iterated */
    size_t index0;
    int depth0;
};

extern jv jv_undef_v, jv_none_v, jv_true_v, jv_false_v;
#define JV_UNDEF_P (&jv_undef_v)
#define JV_NONE_P (&jv_none_v)
#define JV_BOOL_P(x) ((x) ? &jv_true_v : &jv_false_v)

typedef struct jj_ctx jj_ctx;

jv *jv_int(jj_ctx *c, int64_t i);
jv *jv_float(jj_ctx *c, double f);
jv *jv_str(jj_ctx *c, const char *s, size_t n); /* copies */
jv *jv_str_own(jj_ctx *c, const char *s, size_t n); /* s already in the render arena */
jv *jv_list(jj_ctx *c, size_t cap);
bool jv_list_push(jj_ctx *c, jv *l, jv *x);
jv *jv_dict(jj_ctx *c, jv_type t /* JV_DICT or JV_NS */);
bool jv_dict_set(jj_ctx *c, jv *d, jv *k, jv *v);
jv *jv_dict_get(const jv *d, const jv *k);      /* NULL if absent */
jv *jv_dict_gets(const jv *d, const char *k);   /* string key; NULL if absent */
jv *jv_undef(jj_ctx *c, const char *what);

jv *jv_from_cjson(jj_ctx *c, const cJSON *j, int depth);
bool jv_truthy(const jv *v);
bool jv_equal(const jv *a, const jv *b);
/* <0, 0, >0; false when the two cannot be ordered (Python's TypeError) */
bool jv_compare(const jv *a, const jv *b, int *out);
bool jv_is_number(const jv *v); /* bool, int, float */
double jv_num(const jv *v);
/* str(v) / repr(v) appended to b */
bool jv_to_str(jj_ctx *c, const jv *v, jj_buf *b);
bool jv_repr(jj_ctx *c, const jv *v, jj_buf *b);
jv *jv_stringify(jj_ctx *c, const jv *v); /* str(v) as a JV_STR (v itself for strings) */
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: none), sort_keys); false and the error
 * set for a value JSON cannot hold */
bool jv_tojson(jj_ctx *c, const jv *v, int indent, bool sort_keys, jj_buf *b, const jj_node *at);
const char *jv_type_name(const jv *v);
/* code points of a UTF-8 string (an invalid byte counts as one) and the byte offset of the
 * k-th one */
size_t jj_utf8_len(const char *s, size_t n);
size_t jj_utf8_offset(const char *s, size_t n, size_t k);
bool jj_is_space_at(const char *s, size_t n, size_t i, size_t *clen); /* Python isspace() */

/* ---- render context ---- */
typedef struct jj_frame jj_frame;
struct jj_frame {
    jj_frame *parent;
    const char **names;
    jv **vals;
    size_t n, cap;
};

struct jj_ctx {
    jj_arena arena;
    const lx_jinja *tmpl;
    jj_buf *out;
    jj_frame *root;
    const jj_node *cur; /* the node being run, for messages without one */
    int depth;
    long steps;
    bool have_now;
    int64_t now;
    bool failed;
};

/* Records a runtime error at node (LX_E_FORMAT "origin:line:col: msg"); returns NULL. */
void *jj_fail(jj_ctx *c, const jj_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *jj_oom(jj_ctx *c);
/* The error of a failed jj_buf: LX_E_OOM when memory ran out, the template's LX_E_FORMAT
 * "<what> longer than JJ_MAX_STRING bytes" when it passed the limit. NULL. */
void *jj_buf_fail(jj_ctx *c, const jj_buf *b, const jj_node *at, const char *what);

/* ---- builtins (jinja_builtins.c) ---- */
typedef struct {
    jv **pos;
    int npos;
    const char **kwn;
    jv **kwv;
    int nkw;
} jj_args;

/* an attribute that is a method of a str / dict / list / loop (bound to self), else NULL */
jv *jj_method(jj_ctx *c, jv *self, const char *name);
/* what filters and for loops walk: a list's items, a dict's keys, a string's characters;
 * `what` (a filter's name) prefixes the error, NULL for a loop (jinja_builtins.c) */
jv *jj_iterable(jj_ctx *c, jv *v, const char *what, const jj_node *at);
jv *jj_global(jj_ctx *c, const char *name); /* range, namespace, ...; NULL if none */
jv *jj_call_builtin(jj_ctx *c, const jv *fn, const jj_args *args, const jj_node *at);
jv *jj_filter(jj_ctx *c, const char *name, jv *x, const jj_args *args, const jj_node *at);
/* 1 true, 0 false, -1 error */
int jj_test(jj_ctx *c, const char *name, jv *x, const jj_args *args, const jj_node *at);
bool jj_have_filter(const char *name);
bool jj_have_test(const char *name);

/* ---- evaluation pieces the builtins reuse (jinja_eval.c) ---- */
jv *jj_getattr(jj_ctx *c, jv *obj, const char *name, const jj_node *at);
jv *jj_getitem(jj_ctx *c, jv *obj, jv *key, const jj_node *at);
jv *jj_call_macro(jj_ctx *c, const jv *m, const jj_args *args, const jj_node *at);

#endif
