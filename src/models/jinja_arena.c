/*
 * jinja_arena.c -- the Jinja interpreter's memory: a bump arena (a parsed template's tree, a
 * render's values; freed at once, so values need no reference counts and cycles made through
 * namespaces cannot leak) and a growable byte buffer for output.
 */
#include <stdlib.h>
#include <string.h>

#include "models/jinja_int.h"

struct jj_block {
    jj_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define JJ_BLOCK_MIN ((size_t)64 << 10)

void *jj_alloc(jj_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    jj_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > JJ_BLOCK_MIN / 4 ? n : JJ_BLOCK_MIN;
        if (a->limit && (a->total + cap > a->limit || cap > a->limit)) return NULL;
        jj_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->used = 0;
        nb->cap = cap;
        a->total += cap;
        if (cap == n && b) {
            /* a large request gets its own block, kept behind the current one so the current
             * block's free space stays usable */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *jj_strdup(jj_arena *a, const char *s, size_t n) {
    if (n >= SIZE_MAX - 16) return NULL;
    char *p = jj_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void jj_arena_free(jj_arena *a) {
    jj_block *b = a->head;
    while (b) {
        jj_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

bool jj_buf_add(jj_buf *b, const char *s, size_t n) {
    if (b->oom) return false;
    if (n > JJ_MAX_STRING || b->n > JJ_MAX_STRING - n) {
        b->oom = b->too_long = true;
        return false;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

void jj_buf_free(jj_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
