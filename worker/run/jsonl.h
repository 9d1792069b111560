/* jsonl.h — JSON Lines files: one JSON object per line (corpora for a
 * refresh, prompts for decode-eval, generations for text metrics).
 *
 * jsonl_each reads the whole file and calls fn on each line's object, with
 * its 1-based line number; blank lines (spaces, tabs, CR only) are skipped.
 * A line that is not exactly one JSON object (trailing text included) or
 * that holds a NUL byte stops the walk: FOIL_EINVAL "PATH:LINE: not a JSON
 * object (WHAT)", WHAT the caller's hint. fn returns FOIL_OK to go on,
 * JSONL_STOP to end the walk early (jsonl_each then returns FOIL_OK), or an
 * error, which jsonl_each returns as is. The object is freed when fn
 * returns: fn copies what it keeps.
 * Cost: the file in memory once, one cJSON tree per line at a time. */
#ifndef FOIL_WORKER_RUN_JSONL_H
#define FOIL_WORKER_RUN_JSONL_H

#include <cjson/cJSON.h>

#include "common/err.h"

enum { JSONL_STOP = 1 };

typedef int (*jsonl_fn)(void *ctx, const cJSON *obj, const char *path, int line, foil_err *err);

int jsonl_each(const char *path, const char *what, jsonl_fn fn, void *ctx, foil_err *err);

#endif
