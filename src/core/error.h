/*
 * error.h -- the per-thread sticky error of lx (DESIGN §2).
 *
 * The first failure since lx_clear_error() is kept; later ones are dropped so the message
 * names the root cause. Messages say what failed and where: "lx_add: argument b: ...".
 */
#ifndef LX_CORE_ERROR_H
#define LX_CORE_ERROR_H

#include "lx.h"

/* Records (status, message) as this thread's error unless one is already recorded.
 * Returns status so callers can `return lx_set_error(...)`. */
lx_status lx_set_error(lx_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Like lx_set_error but replaces nothing and formats nothing when an error is already set;
 * cheap to call on hot paths. */
#define LX_FAIL(status, ...) lx_set_error((status), __VA_ARGS__)

#endif
