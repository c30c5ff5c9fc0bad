/*
 * generate.c -- text generation through lx's C API: load a model, render a chat prompt with the
 * model's own template, tokenize it, stream the answer as it is generated, then ask a follow-up
 * question in the same session (the conversation so far is found in the session's cache, so
 * only the new turn is computed).
 *
 *   ./build/generate MODEL [QUESTION]     MODEL: a .gguf file or a Hugging Face folder
 *
 * Ctrl-C stops the answer being generated (the statistics are still printed).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"

/* Polled by the generator between tokens. */
static volatile int stop;

static void on_sigint(int sig) {
    (void)sig;
    stop = 1;
}

/* The reply so far, for the next turn's conversation. */
typedef struct {
    char text[8192];
    size_t len;
} reply;

/* Called for each new token with the text that it completed (possibly none). */
static bool on_token(void *user, int32_t id, const char *text, size_t len) {
    (void)id;
    reply *r = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (len > sizeof r->text - 1 - r->len) len = sizeof r->text - 1 - r->len;
    memcpy(r->text + r->len, text, len);
    r->len += len;
    r->text[r->len] = '\0';
    return true; /* false would stop */
}

/* Renders the conversation, tokenizes it, generates the assistant's answer into *out. */
static int answer(lx_model *model, lx_session *session, const lx_chat_message *msgs, int n,
                  reply *out) {
    char *prompt = lx_chat_apply(model, msgs, n, true); /* true: open the assistant's turn */
    if (!prompt) return 1;
    /* the template writes the special tokens (<|im_start|>, BOS, ...) as text */
    const lx_tokenizer *tok = lx_model_tokenizer(model);
    int n_ids = lx_tokenize(tok, prompt, strlen(prompt), LX_TOKENIZE_PARSE_SPECIAL, NULL, 0);
    int32_t *ids = n_ids > 0 ? malloc(sizeof *ids * (size_t)n_ids) : NULL;
    if (!ids || lx_tokenize(tok, prompt, strlen(prompt), LX_TOKENIZE_PARSE_SPECIAL, ids, n_ids) < 0) {
        free(prompt);
        free(ids);
        return 1;
    }
    free(prompt);

    lx_gen_params p = lx_gen_params_default(); /* greedy, 256 new tokens, no filters */
    p.max_tokens = 200;
    p.temperature = 0.7f; /* sample, with min-p filtering */
    p.min_p = 0.05f;
    p.seed = 1;
    p.on_token = on_token;
    p.user = out;
    p.stop = &stop;
    out->len = 0;
    out->text[0] = '\0';
    stop = 0;
    lx_gen_stats st;
    lx_status status = lx_session_generate(session, ids, n_ids, &p, &st);
    free(ids);
    printf("\n");
    fflush(stdout);
    if (status != LX_OK) return 1;
    fprintf(stderr,
            "[%d prompt tokens (%d reused from the cache) at %.1f tok/s, %d generated at %.1f "
            "tok/s, first token after %.2f s%s; peak memory %.1f MiB, %zu tracked arrays]\n",
            st.prompt_tokens, st.reused_tokens, st.prefill_tok_s, st.generated_tokens,
            st.decode_tok_s, st.first_token_s,
            st.stopped_by_eos ? ", stopped at the end token" : st.stopped_by_user ? ", stopped" : "",
            (double)st.peak_memory_bytes / (1 << 20), st.tracked);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf|MODEL_DIR [QUESTION]\n", argv[0]);
        return 2;
    }
    const char *question = argc > 2 ? argv[2] : "What is the capital of France?";
    signal(SIGINT, on_sigint);

    lx_model *model = lx_model_load(argv[1]); /* weights mapped and kept until lx_model_free */
    if (!model) {
        fprintf(stderr, "%s\n", lx_error_message());
        return 1;
    }
    fprintf(stderr, "%s\n", lx_model_describe(model));
    lx_session *session = lx_session_new(model, 2048); /* its KV cache: 2048 positions at most */
    if (!session) {
        fprintf(stderr, "%s\n", lx_error_message());
        lx_model_free(model);
        return 1;
    }

    static reply first, second;
    /* {"system", "..."} may come first; without one, SmolLM2's template adds its own */
    lx_chat_message msgs[3] = {{"user", question}};
    printf("> %s\n", question);
    int rc = answer(model, session, msgs, 1, &first);
    if (!rc && !stop) {
        /* the second turn re-sends the whole conversation; its prefix is in the cache */
        msgs[1] = (lx_chat_message){"assistant", first.text};
        msgs[2] = (lx_chat_message){"user", "What language do people speak there?"};
        printf("> %s\n", msgs[2].content);
        rc = answer(model, session, msgs, 3, &second);
    }
    if (rc) fprintf(stderr, "%s\n", lx_error_message());
    lx_session_free(session);
    lx_model_free(model);
    return rc;
}
