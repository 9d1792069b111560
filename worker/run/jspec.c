/* jspec.c — checked readers for JSON job specs (see jspec.h). */
#define _POSIX_C_SOURCE 200809L
#include "worker/run/jspec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records the first error only: later checks run on but do not overwrite. */
void jspec_fail(jspec *c, const char *fmt, ...) {
  if (c->rc) return;
  va_list ap;
  va_start(ap, fmt);
  c->rc = FOIL_EINVAL;
  if (c->err) {
    c->err->code = FOIL_EINVAL;
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
  }
  va_end(ap);
}

/* Refuses keys of obj not in allowed (NULL-terminated). */
void jspec_only_keys(jspec *c, const cJSON *obj, const char *path, const char *const *allowed) {
  if (!obj) return;
  for (const cJSON *it = obj->child; it; it = it->next) {
    int ok = 0;
    for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, it->string);
    if (!ok) {
      char full[256];
      snprintf(full, sizeof full, "%s%s%s", path, path[0] ? "." : "", it->string);
      jspec_fail(c, "unknown key %s", full);
      return;
    }
  }
}

const cJSON *jspec_object(jspec *c, const cJSON *parent, const char *key, const char *path) {
  const cJSON *o = parent ? cJSON_GetObjectItemCaseSensitive(parent, key) : NULL;
  if (o && !cJSON_IsObject(o)) jspec_fail(c, "%s must be an object", path);
  return o && cJSON_IsObject(o) ? o : NULL;
}

double jspec_number(jspec *c, const cJSON *obj, const char *key, const char *path, double def,
                     double lo, double hi, int integer, int required) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v) {
    if (required) jspec_fail(c, "%s is required", path);
    return def;
  }
  if (!cJSON_IsNumber(v)) {
    jspec_fail(c, "%s must be a number", path);
    return def;
  }
  double x = v->valuedouble;
  if (integer && x != floor(x)) {
    jspec_fail(c, "%s must be a whole number", path);
    return def;
  }
  if (!(x >= lo && x <= hi)) {
    jspec_fail(c, "%s is out of range (got %g, allowed %g..%g)", path, x, lo, hi);
    return def;
  }
  return x;
}

int jspec_boolean(jspec *c, const cJSON *obj, const char *key, const char *path, int def) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v) return def;
  if (!cJSON_IsBool(v)) {
    jspec_fail(c, "%s must be true or false", path);
    return def;
  }
  return cJSON_IsTrue(v);
}

char *jspec_string(jspec *c, const cJSON *obj, const char *key, const char *path, const char *def,
                    int required) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v) {
    if (required) jspec_fail(c, "%s is required", path);
    return def ? strdup(def) : NULL;
  }
  if (!cJSON_IsString(v)) {
    jspec_fail(c, "%s must be a string", path);
    return def ? strdup(def) : NULL;
  }
  return strdup(v->valuestring);
}

/* One of names (NULL-terminated); returns its index. */
int jspec_choice(jspec *c, const cJSON *obj, const char *key, const char *path, int def,
                  const char *const *names) {
  char *s = jspec_string(c, obj, key, path, NULL, 0);
  if (!s) return def;
  int found = -1;
  for (int i = 0; names[i]; i++)
    if (!strcmp(names[i], s)) found = i;
  if (found < 0) {
    char opts[160] = " (one of";
    for (int i = 0; names[i]; i++) {
      size_t l = strlen(opts);
      snprintf(opts + l, sizeof opts - l, " %s", names[i]);
    }
    strncat(opts, ")", sizeof opts - strlen(opts) - 1);
    jspec_fail(c, "%s has an unknown value%s", path, opts);
  }
  free(s);
  return found < 0 ? def : found;
}
