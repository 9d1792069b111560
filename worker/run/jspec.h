/* jspec.h — checked readers for foil-run's JSON job specs (pretrain,
 * refresh): each names the key by its dotted path in its message, and the
 * first error wins (later reads run on but keep it), so a parser reads
 * every key and reports once:
 *
 *   jspec c = {err, 0};
 *   int batch = (int)jspec_number(&c, root, "batch", "batch", 128, 1, 1 << 20, 1, 0);
 *   ...
 *   if (c.rc) ... err holds "batch is out of range (got 0, allowed 1..1048576)"
 *
 * Errors are FOIL_EINVAL. Strings come back malloc'ed (caller frees), or
 * NULL when absent without a default. Cost: a lookup per key.
 */
#ifndef FOIL_WORKER_RUN_JSPEC_H
#define FOIL_WORKER_RUN_JSPEC_H

#include <cjson/cJSON.h>

#include "common/err.h"

typedef struct {
  foil_err *err;
  int rc;
} jspec;

/* Records an error (the first only). */
void jspec_fail(jspec *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Refuses keys of obj not in allowed (NULL-terminated); path prefixes them.
 * Also refuses a key given twice in obj or in any object or array below it
 * ("duplicate key optimizer.lr ..."): cJSON keeps the first, Python and jq
 * the last. */
void jspec_only_keys(jspec *c, const cJSON *obj, const char *path, const char *const *allowed);
/* parent[key] when it is an object; NULL when absent (or not an object: an error). */
const cJSON *jspec_object(jspec *c, const cJSON *parent, const char *key, const char *path);
/* A number in [lo, hi] (integer: whole), def when absent unless required.
 * A range error shows whole numbers in full and others as the shortest
 * decimal that reads back the same ("allowed 1..1048576", "0..0.99"). */
double jspec_number(jspec *c, const cJSON *obj, const char *key, const char *path, double def, double lo,
                    double hi, int integer, int required);
int jspec_boolean(jspec *c, const cJSON *obj, const char *key, const char *path, int def);
char *jspec_string(jspec *c, const cJSON *obj, const char *key, const char *path, const char *def,
                   int required);
/* One of names (NULL-terminated); returns its index, def when absent.
 * Refused: `schedule has the unknown value "cosin" (one of constant, cosine, linear)`. */
int jspec_choice(jspec *c, const cJSON *obj, const char *key, const char *path, int def,
                 const char *const *names);

#endif
