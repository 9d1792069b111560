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

static int cmp_key(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses a key given twice in v or in any object below it; path[0..len) is
 * v's path. cJSON keeps the first of two equal keys where Python's json and
 * jq keep the last, so a spec with one would run with a value its author may
 * not have seen. Sorting the names keeps a huge object O(n log n). */
static void no_duplicates(jspec *c, const cJSON *v, char *path, size_t len, size_t cap) {
  if (c->rc || !(cJSON_IsObject(v) || cJSON_IsArray(v))) return;
  size_t n = 0;
  for (const cJSON *it = v->child; it; it = it->next) n++;
  if (cJSON_IsObject(v) && n > 1) {
    const char **names = malloc(n * sizeof *names);
    if (!names) {
      jspec_fail(c, "out of memory checking the spec's keys");
      return;
    }
    size_t i = 0;
    for (const cJSON *it = v->child; it; it = it->next) names[i++] = it->string ? it->string : "";
    qsort(names, n, sizeof *names, cmp_key);
    for (i = 1; i < n; i++)
      if (!strcmp(names[i - 1], names[i])) {
        jspec_fail(c, "duplicate key %.*s%s%s%.200s (give each key once: JSON readers differ on which value "
                   "they keep)", (int)len, path, len + 1 >= cap ? "..." : "", len ? "." : "", names[i]);
        break;
      }
    free(names);
  }
  size_t i = 0;
  for (const cJSON *it = v->child; it && !c->rc; it = it->next, i++) {
    if (!(cJSON_IsObject(it) || cJSON_IsArray(it))) continue;
    int w = cJSON_IsObject(v) ? snprintf(path + len, cap - len, "%s%s", len ? "." : "", it->string ? it->string : "")
                              : snprintf(path + len, cap - len, "[%zu]", i);
    size_t l = w < 0 ? len : len + (size_t)w;
    no_duplicates(c, it, path, l < cap ? l : cap - 1, cap);
    path[len] = 0;
  }
}

/* Refuses keys of obj not in allowed (NULL-terminated), and a key given
 * twice in obj or below it. */
void jspec_only_keys(jspec *c, const cJSON *obj, const char *path, const char *const *allowed) {
  if (!obj) return;
  char where[256];
  snprintf(where, sizeof where, "%s", path);
  no_duplicates(c, obj, where, strlen(where), sizeof where);
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

/* x as a message shows it: a whole number in full (1048576, not 1.04858e+06),
 * anything else as the shortest decimal that reads back as x (0.99, 1e-30). */
static const char *num_text(char *buf, size_t cap, double x) {
  if (x == floor(x) && fabs(x) < 1e17) {
    snprintf(buf, cap, "%.0f", x);
    return buf;
  }
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, cap, "%.*g", p, x);
    if (strtod(buf, NULL) == x) break;
  }
  return buf;
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
    char got[40], from[40], to[40];
    jspec_fail(c, "%s is out of range (got %s, allowed %s..%s)", path, num_text(got, sizeof got, x),
               num_text(from, sizeof from, lo), num_text(to, sizeof to, hi));
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

/* s as a message quotes it: about 60 bytes (never half a UTF-8 character),
 * quotes, backslashes and control bytes escaped. */
static void quoted(char *out, size_t cap, const char *s) {
  size_t o = 0, i = 0;
  out[o++] = '"';
  for (; s[i] && o + 8 < cap; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (i >= 60 && (ch & 0xc0) != 0x80) break;
    if (ch == '"' || ch == '\\') {
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else if (ch < 0x20 || ch == 0x7f) {
      o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
    } else {
      out[o++] = (char)ch;
    }
  }
  if (s[i]) o += (size_t)snprintf(out + o, cap - o, "...");
  snprintf(out + o, cap - o, "\"");
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
    char opts[256] = "";
    for (int i = 0; names[i]; i++) {
      size_t l = strlen(opts);
      snprintf(opts + l, sizeof opts - l, "%s%s", i ? ", " : "", names[i]);
    }
    char given[300];
    quoted(given, sizeof given, s);
    jspec_fail(c, "%s has the unknown value %s (one of %s)", path, given, opts);
  }
  free(s);
  return found < 0 ? def : found;
}
