/*
 * jinja_render.c -- renders a chat template over a JSON context with lx's Jinja interpreter:
 *   jinja_render TEMPLATE_FILE CONTEXT_JSON_FILE
 * prints the rendering (exit 0) or "error: <status>: <message>" on stderr (exit 1). With
 * LX_JINJA_NOW set (Unix seconds), strftime_now() formats that time as UTC, so tests can pin
 * the date. tests/py/test_chat_template.py compares its output with Python's jinja2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx.h"
#include "models/jinja.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    while (p) {
        size_t r = fread(p + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (n + 1 == cap) {
            char *q = realloc(p, cap * 2);
            if (!q) { free(p); p = NULL; break; }
            p = q;
            cap *= 2;
        }
    }
    fclose(f);
    if (p) p[n] = '\0';
    *len = n;
    return p;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TEMPLATE_FILE CONTEXT_JSON_FILE\n", argv[0]);
        return 2;
    }
    size_t tl, cl;
    char *tsrc = slurp(argv[1], &tl), *csrc = slurp(argv[2], &cl);
    if (!tsrc || !csrc) {
        fprintf(stderr, "error: cannot read %s\n", !tsrc ? argv[1] : argv[2]);
        return 1;
    }
    cJSON *ctx = cJSON_ParseWithLength(csrc, cl);
    if (!ctx) {
        fprintf(stderr, "error: %s is not JSON\n", argv[2]);
        return 1;
    }
    int rc = 1;
    lx_jinja *t = lx_jinja_parse(tsrc, tl, argv[1]);
    if (t) {
        const char *now = getenv("LX_JINJA_NOW");
        char *out = now ? lx_jinja_render_at(t, ctx, strtoll(now, NULL, 10)) : lx_jinja_render(t, ctx);
        if (out) {
            fwrite(out, 1, strlen(out), stdout);
            free(out);
            rc = 0;
        }
    }
    if (rc) fprintf(stderr, "error: %s: %s\n", lx_status_string(lx_error()), lx_error_message());
    lx_jinja_free(t);
    cJSON_Delete(ctx);
    free(tsrc);
    free(csrc);
    return rc;
}
