/*
 * fuzz_jinja.c -- libFuzzer target for the chat-template interpreter: the input bytes are a
 * template, parsed and (when it parses) rendered over a fixed context that has what chat
 * templates read (messages with tool calls, tools, tokens, flags). Any failure must say why;
 * AddressSanitizer / UBSan catch the rest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lx.h"
#include "models/jinja.h"

static const char CONTEXT[] =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are helpful.\"},"
    "{\"role\": \"user\", \"content\": \"Hi <think>x</think> {{ }} \\u00e9\"},"
    "{\"role\": \"assistant\", \"content\": \"\", \"reasoning_content\": \"hmm\", \"tool_calls\": ["
    "{\"id\": \"abcdefghi\", \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [true, null, 2.5]}}}]},"
    "{\"role\": \"tool\", \"tool_call_id\": \"abcdefghi\", \"content\": \"42\"}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\", \"parameters\": {\"type\": \"object\"}}}],"
    "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"n\": 3, \"s\": \" text \"}";

static cJSON *context;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!context) context = cJSON_Parse(CONTEXT);
    /* an exact-size heap copy, so a read past the end is seen */
    char *src = malloc(size ? size : 1);
    if (!src) return 0;
    if (size) memcpy(src, data, size);
    lx_clear_error();
    lx_jinja *t = lx_jinja_parse(src, size, "fuzz.jinja");
    if (!t && lx_error() == LX_OK) abort(); /* a failure must say why */
    if (t) {
        char *out = lx_jinja_render_at(t, context, 1721952000);
        if (!out && lx_error() == LX_OK) abort();
        free(out);
        lx_jinja_free(t);
    }
    lx_clear_error();
    free(src);
    return 0;
}
