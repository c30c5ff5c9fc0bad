/*
 * handle.h -- generation-checked handles and per-thread trackers (DESIGN §1).
 *
 * A handle id is (generation << 32) | (slot index + 1). A slot holds one reference to its node,
 * a keep flag and the tracker (thread) that owns it. Releasing a slot bumps its generation, so
 * every stale copy of the handle is detected (LX_E_FREED) instead of dereferenced.
 *
 * New handles go to the calling thread's tracker, or, while a compiled closure is being traced,
 * to the closure's handle list (lx_handle_sink).
 */
#ifndef LX_CORE_HANDLE_H
#define LX_CORE_HANDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/node.h"
#include "lx.h"

/* A handle for node (its reference transferred), tracked by this thread (or the active sink).
 * On failure releases the node and returns the null array with the error set. */
lx_array lx_handle_new(lx_node *node);

/* The node of a handle with a new reference, or NULL. On failure sets the thread error:
 * "<op>: argument <arg>: null array" / "...: released array". */
lx_node *lx_handle_get(lx_array a, const char *op, const char *arg);
/* The same for element `index` of an argument array named `arg` ("<arg>[<index>]" in the
 * message), formatted only on failure: lx_call and eval look up every input this way. */
lx_node *lx_handle_get_nth(lx_array a, const char *op, const char *arg, int index);
/* Same without touching the error state. */
lx_node *lx_handle_peek(lx_array a);

/* A list of handle slots: a tracker's, or a compiled closure's while it traces. */
typedef struct lx_handle_list {
    uint32_t *slots;
    size_t n, cap;
} lx_handle_list;

/* Redirects new handles of this thread to `list` (NULL restores the tracker); returns the
 * previous sink. Used by compile: arrays made while tracing belong to the closure. */
lx_handle_list *lx_handle_sink(lx_handle_list *list);
/* Releases every handle in the list (kept or not) and empties it. */
void lx_handle_list_release_all(lx_handle_list *list);
void lx_handle_list_free(lx_handle_list *list);

/* Records the creation site for the next handle made by this thread (LX_DEBUG builds). */
void lx_debug_site_(const char *file, int line);

/* Marks the handle kept; returns false (and sets the error) if it is not valid. */
bool lx_handle_keep(lx_array a, const char *op);

#endif
