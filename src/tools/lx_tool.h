/*
 * lx_tool.h -- what the lx command's files share: the subcommands and a growable text.
 */
#ifndef LX_TOOLS_LX_TOOL_H
#define LX_TOOLS_LX_TOOL_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} tool_text;

/* Appends n bytes (kept NUL-terminated); sets oom and drops the bytes when memory runs out. */
static inline void tool_text_put(tool_text *t, const char *s, size_t n) {
    if (t->oom) return;
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->n + n + 1) cap *= 2;
        char *q = realloc(t->p, cap);
        if (!q) {
            t->oom = true;
            return;
        }
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = '\0';
}

int lx_cmd_generate(int argc, char **argv);
int lx_cmd_chat(int argc, char **argv);
int lx_cmd_tokenize(int argc, char **argv);

#endif
