/*
 * model_util.h -- small file helpers of the models layer: paths, whole-file reads, JSON files.
 */
#ifndef LX_MODELS_MODEL_UTIL_H
#define LX_MODELS_MODEL_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "lx.h"

/* dir + "/" + name, malloc'd; NULL on OOM. */
char *lx_path_join(const char *dir, const char *name);
bool lx_file_exists(const char *path);
bool lx_dir_exists(const char *path);
/* The whole file, NUL-terminated, malloc'd; NULL and LX_E_IO naming the path on failure. */
char *lx_read_text_file(const char *path, size_t *len);
/* A JSON file parsed; NULL and *st set (LX_E_IO, or LX_E_FORMAT with the position) on failure. */
cJSON *lx_json_load(const char *path, lx_status *st);

#endif
