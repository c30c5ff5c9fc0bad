/*
 * chat.c -- lx_chat_apply: a conversation through the model's own chat template.
 *
 * The context is what transformers' apply_chat_template passes: messages, add_generation_prompt,
 * bos_token and eos_token (the tokenizer's texts for them).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "core/error.h"
#include "models/jinja.h"
#include "models/model.h"

static bool add_token_text(cJSON *ctx, const char *key, const lx_tokenizer *t, int32_t id) {
    const char *s = id >= 0 ? lx_token_piece(t, id) : NULL;
    return cJSON_AddStringToObject(ctx, key, s ? s : "") != NULL;
}

char *lx_chat_apply(const lx_model *m, const lx_chat_message *msgs, int n,
                    bool add_generation_prompt) {
    if (!m || (!msgs && n > 0) || n < 0) {
        lx_set_error(LX_E_ARG, "lx_chat_apply: %s", !m ? "model is NULL" : "bad messages");
        return NULL;
    }
    if (!m->chat_template) {
        lx_set_error(LX_E_UNSUPPORTED, "%s: the model has no chat template", m->path);
        return NULL;
    }
    cJSON *ctx = cJSON_CreateObject();
    cJSON *list = ctx ? cJSON_AddArrayToObject(ctx, "messages") : NULL;
    bool ok = list != NULL;
    for (int i = 0; ok && i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            cJSON_Delete(ctx);
            lx_set_error(LX_E_ARG, "lx_chat_apply: message %d has no role or content", i);
            return NULL;
        }
        cJSON *msg = cJSON_CreateObject();
        ok = msg && cJSON_AddStringToObject(msg, "role", msgs[i].role) &&
             cJSON_AddStringToObject(msg, "content", msgs[i].content);
        if (msg && !cJSON_AddItemToArray(list, msg)) {
            cJSON_Delete(msg);
            ok = false;
        }
    }
    ok = ok && cJSON_AddBoolToObject(ctx, "add_generation_prompt", add_generation_prompt) &&
         add_token_text(ctx, "bos_token", m->tok, lx_tokenizer_bos(m->tok)) &&
         add_token_text(ctx, "eos_token", m->tok, lx_tokenizer_eos(m->tok));
    if (!ok) {
        cJSON_Delete(ctx);
        lx_set_error(LX_E_OOM, "lx_chat_apply: out of memory");
        return NULL;
    }
    char *text = lx_jinja_render(m->chat_template, ctx);
    cJSON_Delete(ctx);
    return text;
}
