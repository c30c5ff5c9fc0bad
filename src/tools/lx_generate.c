/*
 * lx_generate.c -- `lx generate`, `lx chat` and `lx tokenize` (DESIGN.md §3).
 *
 * Text streams to stdout as tokens arrive; diagnostics and --stats go to stderr. Ctrl-C stops
 * the generation cleanly (the stats are still printed); a second Ctrl-C ends the process.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lx.h"
#include "tools/lx_tool.h"

/* ---- Ctrl-C ----------------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop;
static volatile int g_stop_flag; /* what lx_gen_params.stop polls */

static void on_sigint(int sig) {
    (void)sig;
    if (g_stop) signal(SIGINT, SIG_DFL);
    g_stop = 1;
    g_stop_flag = 1;
}

static void install_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct {
    const char *model, *prompt, *prompt_ids, *system, *logits_out, *device;
    int n, top_k, seed_set, threads, ctx, repeat_last_n;
    float temp, top_p, min_p, repeat_penalty;
    uint64_t seed;
    bool chat, ignore_eos, print_ids, stats;
} gen_opts;

static int fail(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "lx: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_float(const char *s, float *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || v != v) return false;
    *out = (float)v;
    return true;
}

/* Returns 0 when parsed, else the exit status (1: bad argument, with a message). */
static int parse_gen_opts(int argc, char **argv, gen_opts *o, bool is_chat) {
    memset(o, 0, sizeof *o);
    o->n = 256;
    o->temp = 0.0f;
    o->top_p = 1.0f;
    o->repeat_penalty = 1.0f;
    o->repeat_last_n = 64;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
#define NEED_VALUE() \
    do { if (!v) return fail("%s needs a value%s", a, ""); i++; } while (0)
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VALUE(); o->model = v; }
        else if (!is_chat && (!strcmp(a, "-p") || !strcmp(a, "--prompt"))) { NEED_VALUE(); o->prompt = v; }
        else if (!is_chat && !strcmp(a, "--prompt-ids")) { NEED_VALUE(); o->prompt_ids = v; }
        else if (!strcmp(a, "-s") || !strcmp(a, "--system")) { NEED_VALUE(); o->system = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
            NEED_VALUE();
            if (!parse_int(v, 0, INT_MAX, &l)) return fail("%s: '%s' is not a count >= 0", a, v);
            o->n = (int)l;
        } else if (!strcmp(a, "--temp") || !strcmp(a, "--temperature")) {
            NEED_VALUE();
            if (!parse_float(v, &o->temp) || o->temp < 0) return fail("%s: '%s' is not a temperature >= 0", a, v);
        } else if (!strcmp(a, "--top-k")) {
            NEED_VALUE();
            if (!parse_int(v, 0, INT_MAX, &l)) return fail("%s: '%s' is not a count >= 0", a, v);
            o->top_k = (int)l;
        } else if (!strcmp(a, "--top-p")) {
            NEED_VALUE();
            if (!parse_float(v, &o->top_p) || !(o->top_p > 0 && o->top_p <= 1))
                return fail("%s: '%s' is not in (0, 1]", a, v);
        } else if (!strcmp(a, "--min-p")) {
            NEED_VALUE();
            if (!parse_float(v, &o->min_p) || !(o->min_p >= 0 && o->min_p <= 1))
                return fail("%s: '%s' is not in [0, 1]", a, v);
        } else if (!strcmp(a, "--repeat-penalty")) {
            NEED_VALUE();
            if (!parse_float(v, &o->repeat_penalty) || !(o->repeat_penalty > 0))
                return fail("%s: '%s' is not a positive number", a, v);
        } else if (!strcmp(a, "--repeat-last-n")) {
            NEED_VALUE();
            if (!parse_int(v, 0, 1 << 20, &l)) return fail("%s: '%s' is not a count >= 0", a, v);
            o->repeat_last_n = (int)l;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            if (!parse_u64(v, &o->seed)) return fail("%s: '%s' is not a seed (an integer >= 0)", a, v);
            o->seed_set = 1;
        } else if (!strcmp(a, "--device")) {
            NEED_VALUE();
            if (strcmp(v, "cpu") && strcmp(v, "gpu")) return fail("%s: '%s' is not cpu or gpu", a, v);
            o->device = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 1024, &l)) return fail("%s: '%s' is not a thread count", a, v);
            o->threads = (int)l;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            NEED_VALUE();
            if (!parse_int(v, 1, INT_MAX, &l)) return fail("%s: '%s' is not a context size", a, v);
            o->ctx = (int)l;
        } else if (!is_chat && !strcmp(a, "--logits-out")) { NEED_VALUE(); o->logits_out = v; }
        else if (!is_chat && !strcmp(a, "--chat")) o->chat = true;
        else if (!strcmp(a, "--ignore-eos")) o->ignore_eos = true;
        else if (!is_chat && !strcmp(a, "--print-ids")) o->print_ids = true;
        else if (!strcmp(a, "--stats")) o->stats = true;
        else return fail("%s: unknown option '%s' (lx --help)", argv[1], a);
#undef NEED_VALUE
    }
    if (!o->model) return fail("%s: -m MODEL is required (a model folder or a .gguf file)%s", argv[1], "");
    if (!is_chat && !o->prompt == !o->prompt_ids)
        return fail("generate: give one of -p TEXT and --prompt-ids 1,2,3%s%s", "", "");
    if (o->prompt_ids && o->chat) return fail("generate: --chat needs -p TEXT, not --prompt-ids%s%s", "", "");
    if (!o->seed_set) o->seed = (uint64_t)time(NULL);
    return 0;
}

/* "1,2,3" (commas and/or spaces) into ids; returns the count, or -1 with a message. */
static int parse_ids(const char *s, int32_t **out) {
    size_t cap = 64;
    int n = 0;
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    if (!ids) return -1;
    const char *p = s;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "lx: --prompt-ids: '%.20s' is not a token id\n", p);
            free(ids);
            return -1;
        }
        if ((size_t)n == cap) {
            cap *= 2;
            int32_t *q = realloc(ids, sizeof(int32_t) * cap);
            if (!q) {
                free(ids);
                return -1;
            }
            ids = q;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) {
        fprintf(stderr, "lx: --prompt-ids: no ids given\n");
        free(ids);
        return -1;
    }
    *out = ids;
    return n;
}

/* Tokenizes text; returns the count and *out (malloc'd), or -1 with the error set. */
static int tokenize_all(const lx_tokenizer *t, const char *text, size_t len, unsigned flags,
                        int32_t **out) {
    int n = lx_tokenize(t, text, len, flags, NULL, 0);
    if (n < 0) return -1;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!ids) return -1;
    int m = lx_tokenize(t, text, len, flags, ids, n);
    if (m != n) {
        free(ids);
        return -1;
    }
    *out = ids;
    return n;
}

/* ---- streaming callbacks -------------------------------------------------------------------- */

typedef struct {
    bool print_ids;
    int printed;
    float *logits; /* --logits-out rows */
    size_t rows, cap_rows;
    int vocab;
    bool oom;
    tool_text reply; /* lx chat: the assistant's text */
} stream_state;

static bool on_token(void *user, int32_t id, const char *text, size_t len) {
    stream_state *s = user;
    if (s->print_ids) {
        if (id >= 0) printf("%s%d", s->printed++ ? " " : "", id);
    } else if (len) {
        fwrite(text, 1, len, stdout);
        tool_text_put(&s->reply, text, len);
    }
    fflush(stdout);
    return true;
}

static void on_logits(void *user, const float *rows, int n_rows, int vocab) {
    stream_state *s = user;
    if (s->oom) return;
    s->vocab = vocab;
    if (s->rows + (size_t)n_rows > s->cap_rows) {
        size_t cap = s->cap_rows ? s->cap_rows : 64;
        while (cap < s->rows + (size_t)n_rows) cap *= 2;
        float *q = realloc(s->logits, sizeof(float) * cap * (size_t)vocab);
        if (!q) {
            s->oom = true;
            return;
        }
        s->logits = q;
        s->cap_rows = cap;
    }
    memcpy(s->logits + s->rows * (size_t)vocab, rows, sizeof(float) * (size_t)n_rows * (size_t)vocab);
    s->rows += (size_t)n_rows;
}

static void print_stats(const lx_gen_stats *st, double load_s) {
    const char *stop = st->stopped_by_eos ? "eos" : st->stopped_by_user ? "user" : "length";
    fprintf(stderr,
            "{\"prompt_tokens\":%d,\"generated_tokens\":%d,\"load_s\":%.4f,"
            "\"prefill_tok_s\":%.2f,\"decode_tok_s\":%.2f,\"peak_memory_bytes\":%zu,"
            "\"active_memory_bytes\":%zu,\"tracked\":%zu,\"reused_tokens\":%d,"
            "\"first_token_s\":%.4f,\"decode_s\":%.4f,\"stop\":\"%s\",\"threads\":%d}\n",
            st->prompt_tokens, st->generated_tokens, load_s, st->prefill_tok_s, st->decode_tok_s,
            st->peak_memory_bytes, st->active_memory_bytes, st->tracked, st->reused_tokens,
            st->first_token_s, st->decode_s, stop, lx_num_threads());
}

static int lx_fail(const char *what) {
    fprintf(stderr, "lx: %s: %s\n", what, lx_error_message());
    return 1;
}

static lx_model *open_model(const gen_opts *o, double *load_s) {
    if (o->threads) lx_set_num_threads(o->threads);
    if (o->device && !strcmp(o->device, "gpu") && lx_set_default_device(LX_GPU) != LX_OK) {
        fprintf(stderr, "lx: --device gpu: %s\n", lx_error_message());
        return NULL;
    }
    double t0 = now_s();
    lx_model *m = lx_model_load(o->model);
    *load_s = now_s() - t0;
    if (!m) fprintf(stderr, "lx: %s\n", lx_error_message()); /* the message names the path */
    return m;
}

static lx_gen_params gen_params(const gen_opts *o, stream_state *ss) {
    lx_gen_params p = lx_gen_params_default();
    p.max_tokens = o->n;
    p.temperature = o->temp;
    p.top_k = o->top_k;
    p.top_p = o->top_p;
    p.min_p = o->min_p;
    p.repeat_penalty = o->repeat_penalty;
    p.repeat_last_n = o->repeat_last_n;
    p.seed = o->seed;
    p.ignore_eos = o->ignore_eos;
    p.on_token = on_token;
    p.on_logits = o->logits_out ? on_logits : NULL;
    p.user = ss;
    p.stop = &g_stop_flag;
    return p;
}

static int save_logits(const char *path, const stream_state *ss) {
    if (ss->oom) {
        fprintf(stderr, "lx: --logits-out: out of memory collecting the logits\n");
        return 1;
    }
    if (ss->rows > INT_MAX) return fail("--logits-out: too many rows%s%s", "", "");
    lx_array a = lx_array_f32(ss->logits, (int[]){(int)ss->rows, ss->vocab}, 2);
    const char *names[1] = {"logits"};
    lx_status st = lx_save_safetensors(path, names, &a, 1);
    if (st) return lx_fail(path);
    return 0;
}

int lx_cmd_generate(int argc, char **argv) {
    gen_opts o;
    int rc = parse_gen_opts(argc, argv, &o, false);
    if (rc) return rc;
    double load_s;
    lx_model *m = open_model(&o, &load_s);
    if (!m) return 1;
    const lx_tokenizer *tok = lx_model_tokenizer(m);
    int32_t *ids = NULL;
    int n = -1;
    char *text = NULL;
    if (o.prompt_ids) {
        n = parse_ids(o.prompt_ids, &ids);
    } else if (o.chat) {
        lx_chat_message msgs[2];
        int k = 0;
        if (o.system) msgs[k++] = (lx_chat_message){"system", o.system};
        msgs[k++] = (lx_chat_message){"user", o.prompt};
        text = lx_chat_apply(m, msgs, k, true);
        if (!text) {
            lx_fail(o.model);
            lx_model_free(m);
            return 1;
        }
        n = tokenize_all(tok, text, strlen(text), LX_TOKENIZE_PARSE_SPECIAL, &ids);
    } else {
        n = tokenize_all(tok, o.prompt, strlen(o.prompt),
                         LX_TOKENIZE_ADD_SPECIAL | LX_TOKENIZE_PARSE_SPECIAL, &ids);
    }
    free(text);
    if (n < 0) {
        if (lx_error()) lx_fail("the prompt");
        lx_model_free(m);
        return 1;
    }
    lx_session *s = lx_session_new(m, o.ctx);
    if (!s) {
        free(ids);
        lx_model_free(m);
        return lx_fail("session");
    }
    install_sigint();
    stream_state ss = {.print_ids = o.print_ids};
    lx_gen_params p = gen_params(&o, &ss);
    lx_gen_stats st;
    lx_status status = lx_session_generate(s, ids, n, &p, &st);
    if (o.print_ids || !status) fputc('\n', stdout);
    fflush(stdout);
    rc = 0;
    if (status) rc = lx_fail(o.model);
    else if (o.logits_out) rc = save_logits(o.logits_out, &ss);
    if (o.stats) print_stats(&st, load_s);
    free(ss.logits);
    free(ss.reply.p);
    free(ids);
    lx_session_free(s);
    lx_model_free(m);
    return rc;
}

/* ---- lx chat ------------------------------------------------------------------------------- */

typedef struct {
    lx_chat_message *msgs;
    char **owned;
    int n, cap;
} conversation;

static bool conv_add(conversation *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        lx_chat_message *m = realloc(c->msgs, sizeof *m * (size_t)cap);
        if (!m) return false;
        c->msgs = m;
        char **o = realloc(c->owned, sizeof *o * (size_t)cap);
        if (!o) return false;
        c->owned = o;
        c->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy) return false;
    c->owned[c->n] = copy;
    c->msgs[c->n++] = (lx_chat_message){role, copy};
    return true;
}

static void conv_free(conversation *c) {
    for (int i = 0; i < c->n; i++) free(c->owned[i]);
    free(c->owned);
    free(c->msgs);
}

int lx_cmd_chat(int argc, char **argv) {
    gen_opts o;
    int rc = parse_gen_opts(argc, argv, &o, true);
    if (rc) return rc;
    double load_s;
    lx_model *m = open_model(&o, &load_s);
    if (!m) return 1;
    lx_session *s = lx_session_new(m, o.ctx);
    if (!s) {
        lx_model_free(m);
        return lx_fail("session");
    }
    bool tty = isatty(STDIN_FILENO);
    if (tty)
        fprintf(stderr, "lx chat: %s\nType a message; an empty line or Ctrl-D ends, Ctrl-C stops "
                "an answer, /reset forgets the conversation.\n", lx_model_describe(m));
    conversation conv = {0};
    if (o.system && !conv_add(&conv, "system", o.system)) rc = 1;
    install_sigint();
    char *line = NULL;
    size_t line_cap = 0;
    while (!rc) {
        if (tty) fprintf(stderr, "> ");
        g_stop = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) {
            if (tty) break;
            continue;
        }
        if (!strcmp(line, "/reset")) {
            conv_free(&conv);
            memset(&conv, 0, sizeof conv);
            if (o.system && !conv_add(&conv, "system", o.system)) rc = 1;
            lx_session_reset(s);
            continue;
        }
        if (!conv_add(&conv, "user", line)) { rc = 1; break; }
        char *text = lx_chat_apply(m, conv.msgs, conv.n, true);
        if (!text) { rc = lx_fail(o.model); break; }
        int32_t *ids = NULL;
        int n = tokenize_all(lx_model_tokenizer(m), text, strlen(text), LX_TOKENIZE_PARSE_SPECIAL,
                             &ids);
        free(text);
        if (n < 0) { rc = lx_fail("the conversation"); break; }
        stream_state ss = {0};
        g_stop_flag = 0;
        lx_gen_params p = gen_params(&o, &ss);
        lx_gen_stats st;
        lx_status status = lx_session_generate(s, ids, n, &p, &st);
        free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        if (status) {
            rc = lx_fail(o.model);
            free(ss.reply.p);
            break;
        }
        if (o.stats) print_stats(&st, load_s);
        if (!conv_add(&conv, "assistant", ss.reply.p ? ss.reply.p : "")) rc = 1;
        free(ss.reply.p);
    }
    free(line);
    conv_free(&conv);
    lx_session_free(s);
    lx_model_free(m);
    return rc;
}

/* ---- lx tokenize ----------------------------------------------------------------------------- */

int lx_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    unsigned flags = LX_TOKENIZE_ADD_SPECIAL | LX_TOKENIZE_PARSE_SPECIAL;
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--no-add-special")) flags &= ~LX_TOKENIZE_ADD_SPECIAL;
        else if (!strcmp(argv[i], "--no-parse-special")) flags &= ~LX_TOKENIZE_PARSE_SPECIAL;
        else if (argv[i][0] == '-' && argv[i][1] && !text) return fail("tokenize: unknown option '%s'%s", argv[i], "");
        else if (!text) text = argv[i];
        else return fail("tokenize: one TEXT only (or the text on stdin)%s%s", "", "");
    }
    if (!model) return fail("tokenize: -m MODEL is required (a model folder, tokenizer.json or .gguf)%s%s", "", "");
    tool_text in = {0};
    if (!text) {
        char buf[65536];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, stdin)) > 0) tool_text_put(&in, buf, got);
        if (in.oom) return fail("tokenize: out of memory reading stdin%s%s", "", "");
    }
    const char *src = text ? text : (in.p ? in.p : "");
    size_t len = text ? strlen(text) : in.n;
    lx_tokenizer *t = lx_tokenizer_load(model);
    if (!t) {
        free(in.p);
        return lx_fail(model);
    }
    int32_t *ids = NULL;
    int n = tokenize_all(t, src, len, flags, &ids);
    int rc = 0;
    if (n < 0) {
        rc = lx_fail("tokenize");
    } else {
        for (int i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        putchar('\n');
    }
    free(ids);
    free(in.p);
    lx_tokenizer_free(t);
    return rc;
}
