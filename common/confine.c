/* confine.c — see confine.h. */
#define _DEFAULT_SOURCE
#include "common/confine.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"

int confine_name_ok(const char *name) {
  size_t n = strlen(name);
  if (n < 1 || n > CONFINE_MAX_NAME || !strcmp(name, ".") || !strcmp(name, "..")) return 0;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
          *p == '_' || *p == '-'))
      return 0;
  return 1;
}

int confine_name(const char *key, const char *name, foil_err *err) {
  if (confine_name_ok(name)) return FOIL_OK;
  return foil_err_set(err, FOIL_EINVAL,
                      "%s \"%.200s\" must be a plain name: 1 to %d of letters, digits, '.', '_', '-' (not \".\" "
                      "or \"..\"): things of the data root are named, not given as paths",
                      key, name, CONFINE_MAX_NAME);
}

/* One pass: realpath of the deepest existing prefix of `in`, then the rest
 * lexically ("." dropped, ".." pops). 0, or -1 when it does not fit. */
static int resolve_once(const char *in, char *out) {
  char pre[CONFINE_PATH_MAX];
  if (strlen(in) >= sizeof pre) return -1;
  strcpy(pre, in);
  size_t cut = strlen(pre);
  char res[PATH_MAX];
  for (;;) {
    if (realpath(cut ? pre : "/", res)) break;
    /* strip the last component (the tail is what follows pre[cut]) */
    while (cut > 0 && pre[cut - 1] == '/') cut--;
    while (cut > 0 && pre[cut - 1] != '/') cut--;
    pre[cut] = 0;
    if (!cut) {
      if (!realpath("/", res)) return -1;
      break;
    }
  }
  if (strlen(res) >= CONFINE_PATH_MAX) return -1;
  strcpy(out, res);
  const char *t = in + cut;
  while (*t) {
    while (*t == '/') t++;
    const char *e = t;
    while (*e && *e != '/') e++;
    size_t len = (size_t)(e - t);
    if (len == 0 || (len == 1 && t[0] == '.')) {
    } else if (len == 2 && t[0] == '.' && t[1] == '.') {
      char *slash = strrchr(out, '/');
      if (slash && slash != out) *slash = 0;
      else strcpy(out, "/");
    } else {
      size_t n = strlen(out);
      if (n + 1 + len >= CONFINE_PATH_MAX) return -1;
      if (n > 1) out[n++] = '/';
      memcpy(out + n, t, len);
      out[n + len] = 0;
    }
    t = e;
  }
  return 0;
}

/* Twice: after the first pass no ".." is left, so a name that came into
 * existence behind one (a symlink) is followed by the second. */
static int resolve(const char *path, const char *base, char *out) {
  char full[CONFINE_PATH_MAX], mid[CONFINE_PATH_MAX];
  int n = path[0] == '/' ? snprintf(full, sizeof full, "%s", path)
                         : snprintf(full, sizeof full, "%s/%s", base && *base ? base : ".", path);
  if (n < 0 || (size_t)n >= sizeof full) return -1;
  if (resolve_once(full, mid)) return -1;
  return resolve_once(mid, out);
}

static int add_dir(confine *c, const char *dir, foil_err *err) {
  if (c->n >= CONFINE_MAX_DIRS)
    return foil_err_set(err, FOIL_EINVAL, "at most %d allowed directories", CONFINE_MAX_DIRS - 1);
  char res[PATH_MAX];
  struct stat st;
  if (!realpath(dir, res) || stat(res, &st) || !S_ISDIR(st.st_mode))
    return foil_err_set(err, FOIL_ENOTFOUND, "%s is not an existing directory", dir);
  if (strlen(res) >= CONFINE_PATH_MAX) return foil_err_set(err, FOIL_EINVAL, "%s: path too long", dir);
  strcpy(c->dirs[c->n++], res);
  return FOIL_OK;
}

int confine_init(confine *c, const char *root, foil_err *err) {
  c->n = 0;
  int rc = add_dir(c, root, err);
  if (rc) return foil_err_set(err, rc, "data root: %s is not an existing directory", root);
  return FOIL_OK;
}

int confine_allow(confine *c, const char *dir, foil_err *err) { return add_dir(c, dir, err); }

int confine_allow_recorded(confine *c, const char *root, foil_err *err) {
  char p[CONFINE_PATH_MAX + 32], *text = NULL;
  size_t len = 0;
  snprintf(p, sizeof p, "%s/coordinator.json", root);
  foil_err e = {0};
  if (foil_read_file(p, &text, &len, &e)) return FOIL_OK;
  cJSON *j = cJSON_Parse(text);
  free(text);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "allow_dirs"), *x;
  int rc = FOIL_OK;
  cJSON_ArrayForEach(x, a) {
    if (!cJSON_IsString(x)) continue;
    foil_err skip = {0};
    int r = add_dir(c, x->valuestring, &skip);
    if (r == FOIL_EINVAL) {
      rc = foil_err_set(err, r, "%s: allow_dirs: %s", p, skip.msg);
      break;
    }
  }
  cJSON_Delete(j);
  return rc;
}

int confine_path(const confine *c, const char *key, const char *path, const char *base, char *out,
                 foil_err *err) {
  char res[CONFINE_PATH_MAX];
  if (resolve(path, base, res))
    return foil_err_set(err, FOIL_EINVAL, "%s \"%.200s\" is too long a path", key, path);
  for (int i = 0; i < c->n; i++) {
    size_t n = strlen(c->dirs[i]);
    if (!strcmp(c->dirs[i], "/") || (!strncmp(res, c->dirs[i], n) && (res[n] == 0 || res[n] == '/'))) {
      if (out) strcpy(out, res);
      return FOIL_OK;
    }
  }
  return foil_err_set(err, FOIL_EPERM,
                      "%s \"%.200s\" resolves to %.300s, outside the data root %.300s%s: jobs may read files only "
                      "there (the coordinator's operator can allow more with --allow-dir)",
                      key, path, res, c->dirs[0], c->n > 1 ? " and the allowed directories" : "");
}

/* ---- job specs -------------------------------------------------------------------- */

typedef struct {
  const char *key;  /* dotted */
  int is_path;
} spec_key;

static const spec_key PRETRAIN_KEYS[] = {
    {"name", 0},           {"data.dataset", 0},           {"data.benchmark", 0},
    {"data.negatives_bank", 0}, {"refresh.index", 0},     {"refresh.corpus.dataset", 0},
    {"refresh.corpus.benchmark", 0}, {"refresh.mine.dataset", 0}, {"refresh.mine.bank", 0},
    {"model.tokenizer", 1}, {"init_from", 1},             {"refresh.corpus.file", 1},
    {NULL, 0}};
static const spec_key REFRESH_KEYS[] = {
    {"name", 0}, {"corpus.dataset", 0}, {"corpus.benchmark", 0}, {"mine.dataset", 0}, {"mine.bank", 0},
    {"checkpoint", 1}, {"corpus.file", 1}, {NULL, 0}};
static const spec_key SERVE_KEYS[] = {{"index", 0}, {NULL, 0}};
static const spec_key DEVAL_KEYS[] = {
    {"name", 0}, {"prompts.dataset", 0}, {"model", 1}, {"amateur", 1}, {"prompts.file", 1},
    {"metrics.encoder", 1}, {"metrics.scorer", 1}, {NULL, 0}};

/* obj[a][b]... for the dotted key; NULL when any part is absent. */
static const cJSON *lookup(const cJSON *obj, const char *dotted) {
  char part[64];
  const char *p = dotted;
  while (obj && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n >= sizeof part) return NULL;
    memcpy(part, p, n);
    part[n] = 0;
    obj = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, part) : NULL;
    p += n + (dot ? 1 : 0);
  }
  return obj;
}

int confine_spec(const confine *c, const char *kind, const char *spec_json, const char *workdir,
                 foil_err *err) {
  const spec_key *keys = !strcmp(kind, "pretrain") ? PRETRAIN_KEYS
                         : !strcmp(kind, "refresh") ? REFRESH_KEYS
                         : !strcmp(kind, "serve")   ? SERVE_KEYS
                         : !strcmp(kind, "decode-eval") ? DEVAL_KEYS
                                                    : NULL;
  if (!keys || !spec_json) return FOIL_OK;
  cJSON *j = cJSON_Parse(spec_json);
  int rc = FOIL_OK;
  for (const spec_key *k = keys; !rc && k->key; k++) {
    const cJSON *v = lookup(j, k->key);
    if (!cJSON_IsString(v) || !v->valuestring[0]) continue;
    char key[96];
    snprintf(key, sizeof key, "spec %s", k->key);
    rc = k->is_path ? confine_path(c, key, v->valuestring, workdir, NULL, err)
                    : confine_name(key, v->valuestring, err);
  }
  cJSON_Delete(j);
  return rc;
}
