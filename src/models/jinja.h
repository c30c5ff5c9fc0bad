/*
 * jinja.h -- a Jinja subset for Hugging Face chat templates (the models layer's internal API).
 *
 * Semantics follow Python's jinja2 as transformers' apply_chat_template sets it up: trim_blocks
 * and lstrip_blocks on, the loop-controls extension ({% break %}, {% continue %}), the globals
 * raise_exception / strftime_now, and HF's tojson (json.dumps with ensure_ascii=False). The
 * context is a cJSON object (messages, add_generation_prompt, bos_token, tools, ...).
 */
#ifndef LX_MODELS_JINJA_H
#define LX_MODELS_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct lx_jinja lx_jinja;

/* Parses a template; NULL and LX_E_FORMAT "origin:line:col: ..." (what was expected) on a
 * syntax error, LX_E_OOM when memory runs out. origin names the source in messages (may be
 * NULL). */
lx_jinja *lx_jinja_parse(const char *src, size_t len, const char *origin);

/* Renders over the context (a JSON object; NULL is an empty one). Returns a malloc'd
 * NUL-terminated string, or NULL with the error set: raise_exception("msg") gives LX_E_ARG
 * "chat template: msg"; a runtime error (a type error, an undefined value used, a limit on
 * size, depth or steps) gives LX_E_FORMAT naming origin:line:col. */
char *lx_jinja_render(const lx_jinja *t, const cJSON *context);

/* As lx_jinja_render, with strftime_now() formatting the given time (Unix seconds, as UTC)
 * instead of the local clock: tests pin the date with it. */
char *lx_jinja_render_at(const lx_jinja *t, const cJSON *context, int64_t now_utc);

void lx_jinja_free(lx_jinja *t);

#endif
