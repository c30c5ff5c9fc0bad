/*
 * error.c -- per-thread sticky error state and status names.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

#define LX_ERROR_MESSAGE_MAX 512

static _Thread_local lx_status tl_status = LX_OK;
static _Thread_local char tl_message[LX_ERROR_MESSAGE_MAX];

lx_status lx_set_error(lx_status status, const char *fmt, ...) {
    if (status == LX_OK || tl_status != LX_OK) return status;
    tl_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_message, sizeof tl_message, fmt, ap);
    va_end(ap);
    return status;
}

lx_status lx_error(void) { return tl_status; }

const char *lx_error_message(void) { return tl_status == LX_OK ? "" : tl_message; }

void lx_clear_error(void) {
    tl_status = LX_OK;
    tl_message[0] = '\0';
}

const char *lx_status_string(lx_status s) {
    switch (s) {
    case LX_OK: return "LX_OK";
    case LX_E_ARG: return "LX_E_ARG";
    case LX_E_SHAPE: return "LX_E_SHAPE";
    case LX_E_DTYPE: return "LX_E_DTYPE";
    case LX_E_FREED: return "LX_E_FREED";
    case LX_E_OOM: return "LX_E_OOM";
    case LX_E_IO: return "LX_E_IO";
    case LX_E_FORMAT: return "LX_E_FORMAT";
    case LX_E_DEVICE: return "LX_E_DEVICE";
    case LX_E_UNSUPPORTED: return "LX_E_UNSUPPORTED";
    case LX_E_INTERNAL: return "LX_E_INTERNAL";
    }
    return "LX_E_UNKNOWN";
}
