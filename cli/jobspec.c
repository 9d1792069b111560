/* jobspec.c — see jobspec.h. The spec file and the flags are read into one
 * plain struct (file first, flags over it), checked, then copied into a
 * JobSpec whose every string and array is malloc'd, so that protobuf-c's
 * own free_unpacked (system allocator) frees it. */
#define _POSIX_C_SOURCE 200809L
#include "cli/jobspec.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/signame.h"
#include "cli/timefmt.h"

enum {
  MAX_NAME = 128, MAX_KIND = 32, MAX_SPEC = 256 << 10, MAX_ARGV = 256, MAX_ARG = 4096, MAX_DEPS = 64,
  MAX_RANKS = 100000, MAX_GPUS = 64, MAX_NODES = 10000, MAX_FAILURES = 1000000,
  DEFAULT_WARN_BEFORE = 60,
};
#define MAX_PRIORITY 1000000
#define MAX_TIME_LIMIT 31536000 /* a year */
#define MAX_JOB_ID 9007199254740991L /* 2^53 - 1: exact in JSON */

typedef struct {
  char name[MAX_NAME + 1], kind[MAX_KIND + 1];
  long ranks, gpus, nodes, priority, time_limit, max_failures, warn_signal, warn_before;
  int max_failures_set, warn_before_set;
  const char *time_limit_from, *warn_signal_from, *warn_before_from; /* for messages */
  uint64_t after_ok[MAX_DEPS], after_any[MAX_DEPS];
  int n_after_ok, n_after_any;
  int argc;       /* kind "command" */
  char **argv;    /* borrowed from the cJSON tree or the command line */
  const char *workdir;  /* borrowed from the options */
} draft;

/* ---- reading the file ------------------------------------------------------------ */

/* An integral JSON number in lo..hi, else an error naming key. */
static int json_int(const cJSON *v, const char *label, const char *key, long lo, long hi,
                    long *out, foil_err *err) {
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
      v->valuedouble > hi) {
    char *got = cJSON_PrintUnformatted(v);
    int rc = foil_err_set(err, FOIL_EINVAL, "%s: %s must be an integer %ld..%ld, got %.40s", label,
                          key, lo, hi, got ? got : "?");
    free(got);
    return rc;
  }
  *out = (long)v->valuedouble;
  return FOIL_OK;
}

static int json_ids(const cJSON *v, const char *label, const char *key, uint64_t *ids, int *n,
                    foil_err *err) {
  if (!cJSON_IsArray(v))
    return foil_err_set(err, FOIL_EINVAL, "%s: %s must be an array of job ids, e.g. [7, 8]", label,
                        key);
  *n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, v) {
    long id = 0;
    if (*n == MAX_DEPS)
      return foil_err_set(err, FOIL_EINVAL, "%s: %s has more than %d job ids", label, key, MAX_DEPS);
    int rc = json_int(e, label, key, 1, MAX_JOB_ID, &id, err);
    if (rc) return rc;
    ids[(*n)++] = (uint64_t)id;
  }
  return FOIL_OK;
}

static int set_name(char *dst, const char *src, const char *where, foil_err *err) {
  size_t n = strlen(src);
  if (!n || n > MAX_NAME || strspn(src, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789._-") != n)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s must be 1..%d characters of A-Z a-z 0-9 . _ -, got \"%.60s\"", where,
                        MAX_NAME, src);
  memcpy(dst, src, n + 1);
  return FOIL_OK;
}

/* ---- duplicate keys ------------------------------------------------------------- */

static int by_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 1 when an object in v (v itself or one nested in it, at any depth)
 * holds a key twice; path (n bytes) then names it ("job.ranks"). cJSON
 * keeps both and its lookups find the first, while Python's json and jq
 * take the last: a spec edited by a script could run with a value its
 * author did not see. O(k log k) per object of k keys. */
static int dup_key(const cJSON *v, char *path, size_t n, size_t at) {
  if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return 0;
  int nk = 0;
  for (const cJSON *e = v->child; e; e = e->next) nk++;
  if (cJSON_IsObject(v) && nk > 1) {
    const char **keys = malloc((size_t)nk * sizeof *keys);
    if (keys) {
      int k = 0;
      for (const cJSON *e = v->child; e; e = e->next) keys[k++] = e->string ? e->string : "";
      qsort(keys, (size_t)nk, sizeof *keys, by_str);
      for (k = 1; k < nk; k++)
        if (!strcmp(keys[k - 1], keys[k])) {
          snprintf(path + at, n - at, "%s%.100s", at ? "." : "", keys[k]);
          free(keys);
          return 1;
        }
      free(keys);
    }
  }
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    int w = cJSON_IsObject(v) ? snprintf(path + at, n - at, "%s%.100s", at ? "." : "", e->string)
                              : snprintf(path + at, n - at, "[%d]", i);
    size_t next = w < 0 ? at : at + (size_t)w < n ? at + (size_t)w : n - 1;
    if (dup_key(e, path, n, next)) return 1;
    path[at] = 0;
  }
  return 0;
}

/* ---- a spec without "kind" -------------------------------------------------------- */

/* The top-level keys of each kind's spec, as its own checker takes them
 * (worker/run/spec.c, refresh.c, deval.c; worker/agent/launch.c for serve).
 * Used only for a file without "kind", to tell whether it is a pretrain
 * spec (the default) or which kind it looks like; a file that names its
 * kind is not checked here (foil-run does, when the job starts). */
static const char *const pretrain_keys[] = {
    "kind", "name", "seed", "model", "data", "loss", "batch_per_rank", "micro_batch", "steps",
    "optimizer", "checkpoint", "eval", "log_every_steps", "threads", "device", "precision",
    "refresh", "job", "init_from", NULL};
static const char *const refresh_keys[] = {
    "kind", "name", "checkpoint", "corpus", "dtype", "normalize", "batch", "keep_versions",
    "threads", "device", "precision", "mine", "job", NULL};
static const char *const deval_keys[] = {
    "kind", "name", "model", "amateur", "prompts", "methods", "max_new_tokens", "eos", "seeds",
    "batch", "threads", "device", "metrics", "job", NULL};
static const char *const serve_keys[] = {"kind", "name", "index", "bind", "shards", "version",
                                         "watch", "text", "device", "job", NULL};
static const char *const command_keys[] = {"kind", "name", "argv", "job", NULL};
static const struct {
  const char *kind;
  const char *const *keys;
} kind_keys[] = {{"pretrain", pretrain_keys}, {"refresh", refresh_keys},
                 {"decode-eval", deval_keys}, {"serve", serve_keys},
                 {"command", command_keys}};
enum { NKINDS = sizeof kind_keys / sizeof kind_keys[0] };

static int has_key(const char *const *keys, const char *k) {
  for (; *keys; keys++)
    if (!strcmp(*keys, k)) return 1;
  return 0;
}

/* A file without "kind" is a pretrain spec when every top-level key is one
 * of pretrain's; otherwise it is refused, naming the first key that is not
 * pretrain's and the kinds whose specs take all of the file's keys. */
static int infer_kind(const cJSON *root, const char *label, foil_err *err) {
  const cJSON *odd = NULL;
  for (const cJSON *e = root->child; e && !odd; e = e->next)
    if (!has_key(pretrain_keys, e->string)) odd = e;
  if (!odd) return FOIL_OK;
  char fits[128] = "";
  size_t at = 0;
  int nfit = 0;
  const char *one = NULL;
  for (int k = 1; k < NKINDS; k++) {
    int all = 1;
    for (const cJSON *e = root->child; e && all; e = e->next) all = has_key(kind_keys[k].keys, e->string);
    if (!all) continue;
    one = kind_keys[k].kind;
    int w = snprintf(fits + at, sizeof fits - at, "%s%s", nfit ? " or " : "", one);
    if (w > 0 && at + (size_t)w < sizeof fits) at += (size_t)w;
    nfit++;
  }
  if (nfit == 1)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s has no \"kind\", so it would be a pretrain spec, and \"%.60s\" is not a "
                        "pretrain key; it looks like a %s spec: add \"kind\": \"%s\"",
                        label, odd->string, one, one);
  if (nfit > 1)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s has no \"kind\", so it would be a pretrain spec, and \"%.60s\" is not a "
                        "pretrain key; it looks like a %s spec: add \"kind\"",
                        label, odd->string, fits);
  return foil_err_set(err, FOIL_EINVAL,
                      "%s has no \"kind\", so it would be a pretrain spec, and \"%.60s\" is not a "
                      "pretrain key (nor are its keys all those of another kind): fix the key, or "
                      "add \"kind\" (pretrain, refresh, decode-eval, serve or command)",
                      label, odd->string);
}

static int read_job(draft *d, const cJSON *job, const char *label, foil_err *err) {
  static const char *const keys[] = {"ranks", "gpus_per_rank", "nodes", "priority", "time_limit_s",
                                     "max_failures", "after_ok", "after_any", "warn_signal",
                                     "warn_before_s", NULL};
  if (!cJSON_IsObject(job))
    return foil_err_set(err, FOIL_EINVAL, "%s: \"job\" must be an object, e.g. {\"ranks\": 2}",
                        label);
  const cJSON *it;
  cJSON_ArrayForEach(it, job) {
    int ok = 0;
    for (const char *const *k = keys; *k && !ok; k++) ok = !strcmp(*k, it->string);
    if (!ok)
      return foil_err_set(err, FOIL_EINVAL,
                          "%s: job.%s is not a job key (known: ranks, gpus_per_rank, nodes, "
                          "priority, time_limit_s, max_failures, after_ok, after_any, "
                          "warn_signal, warn_before_s)",
                          label, it->string);
  }
  int rc = FOIL_OK;
  const cJSON *v;
#define INT_KEY(key, lo, hi, field)                                               \
  if (!rc && (v = cJSON_GetObjectItemCaseSensitive(job, key)))                    \
    rc = json_int(v, label, "job." key, lo, hi, &d->field, err);
  INT_KEY("ranks", 1, MAX_RANKS, ranks)
  INT_KEY("gpus_per_rank", 0, MAX_GPUS, gpus)
  INT_KEY("nodes", 0, MAX_NODES, nodes)
  INT_KEY("priority", -MAX_PRIORITY, MAX_PRIORITY, priority)
  INT_KEY("time_limit_s", 0, MAX_TIME_LIMIT, time_limit)
  INT_KEY("max_failures", -1, MAX_FAILURES, max_failures)
  INT_KEY("warn_before_s", 0, MAX_TIME_LIMIT, warn_before)
#undef INT_KEY
  if (rc) return rc;
  d->max_failures_set = cJSON_HasObjectItem(job, "max_failures");
  d->warn_before_set = cJSON_HasObjectItem(job, "warn_before_s");
  if (d->warn_before_set) d->warn_before_from = "job.warn_before_s";
  if (cJSON_HasObjectItem(job, "time_limit_s")) d->time_limit_from = "job.time_limit_s";
  if ((v = cJSON_GetObjectItemCaseSensitive(job, "after_ok")) &&
      (rc = json_ids(v, label, "job.after_ok", d->after_ok, &d->n_after_ok, err)))
    return rc;
  if ((v = cJSON_GetObjectItemCaseSensitive(job, "after_any")) &&
      (rc = json_ids(v, label, "job.after_any", d->after_any, &d->n_after_any, err)))
    return rc;
  if ((v = cJSON_GetObjectItemCaseSensitive(job, "warn_signal"))) {
    int sig = 0;
    foil_err e2 = {0};
    if (cJSON_IsString(v)) rc = signame_parse(v->valuestring, &sig, &e2);
    else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= 1 &&
             v->valuedouble <= 64)
      sig = (int)v->valuedouble;
    else rc = foil_err_set(&e2, FOIL_EINVAL, "a signal name or number 1..64");
    if (rc) return foil_err_set(err, FOIL_EINVAL, "%s: job.warn_signal: %s", label, e2.msg);
    d->warn_signal = sig;
    d->warn_signal_from = "job.warn_signal";
  }
  return FOIL_OK;
}

static int read_file(draft *d, cJSON *root, const char *label, foil_err *err) {
  char path[512] = "";
  if (dup_key(root, path, sizeof path, 0))
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: the key \"%s\" appears twice (JSON readers differ on which one counts: "
                        "give it once)",
                        label, path);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "kind");
  if (!v) {
    int rc = infer_kind(root, label, err);
    if (rc) return rc;
  } else {
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > MAX_KIND)
      return foil_err_set(err, FOIL_EINVAL,
                          "%s: \"kind\" must be a job kind such as \"pretrain\" or \"command\"",
                          label);
    snprintf(d->kind, sizeof d->kind, "%s", v->valuestring);
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "name"))) {
    char where[600];
    snprintf(where, sizeof where, "%s: \"name\"", label);
    if (!cJSON_IsString(v)) return foil_err_set(err, FOIL_EINVAL, "%s must be a string", where);
    int rc = set_name(d->name, v->valuestring, where, err);
    if (rc) return rc;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "argv"))) {
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || n < 1)
      return foil_err_set(err, FOIL_EINVAL,
                          "%s: \"argv\" must be a non-empty array of strings (program first)",
                          label);
    d->argv = calloc((size_t)n + 1, sizeof *d->argv);
    if (!d->argv) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    const cJSON *e;
    d->argc = 0;
    cJSON_ArrayForEach(e, v) {
      if (!cJSON_IsString(e))
        return foil_err_set(err, FOIL_EINVAL, "%s: argv[%d] must be a string", label, d->argc);
      d->argv[d->argc++] = e->valuestring;
    }
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "job"))) return read_job(d, v, label, err);
  return FOIL_OK;
}

/* ---- flags ------------------------------------------------------------------------ */

/* Digits, with a '-' before them only where negative values are allowed:
 * strtol alone would also take leading blanks and a '+'. */
static int plain_number(const char *s, int neg_ok) {
  if (neg_ok && s[0] == '-') s++;
  return s[0] >= '0' && s[0] <= '9';
}

static int flag_int(const char *flag, const char *s, long lo, long hi, long *out, foil_err *err) {
  char *end = (char *)s;
  errno = 0;
  long v = plain_number(s, lo < 0) ? strtol(s, &end, 10) : 0;
  if (end == s || *end || errno || v < lo || v > hi)
    return foil_err_set(err, FOIL_EINVAL, "%s must be an integer %ld..%ld, got '%s'", flag, lo, hi,
                        s);
  *out = v;
  return FOIL_OK;
}

static int flag_ids(const char *flag, const char *s, uint64_t *ids, int *n, foil_err *err) {
  *n = 0;
  for (const char *p = s;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char tok[32];
    char *end;
    errno = 0;
    unsigned long long v = 0;
    if (len && len < sizeof tok) {
      memcpy(tok, p, len);
      tok[len] = 0;
      v = strtoull(tok, &end, 10);
    }
    if (!len || len >= sizeof tok || !(tok[0] >= '0' && tok[0] <= '9') || *end || errno ||
        v == 0 || v > (unsigned long long)MAX_JOB_ID)
      return foil_err_set(err, FOIL_EINVAL,
                          "%s takes job ids (1..%ld) separated by commas, got '%s'", flag,
                          MAX_JOB_ID, s);
    if (*n == MAX_DEPS)
      return foil_err_set(err, FOIL_EINVAL, "%s: more than %d job ids", flag, MAX_DEPS);
    ids[(*n)++] = v;
    if (!comma) break;
    p = comma + 1;
  }
  return FOIL_OK;
}

static int apply_flags(draft *d, const jobspec_opts *o, foil_err *err) {
  d->workdir = o->workdir;
  int rc = FOIL_OK;
  if (o->name) rc = set_name(d->name, o->name, "--name", err);
  if (!rc && o->ranks) rc = flag_int("--ranks", o->ranks, 1, MAX_RANKS, &d->ranks, err);
  if (!rc && o->gpus_per_rank)
    rc = flag_int("--gpus-per-rank", o->gpus_per_rank, 0, MAX_GPUS, &d->gpus, err);
  if (!rc && o->nodes) rc = flag_int("--nodes", o->nodes, 0, MAX_NODES, &d->nodes, err);
  if (!rc && o->priority)
    rc = flag_int("--priority", o->priority, -MAX_PRIORITY, MAX_PRIORITY, &d->priority, err);
  if (!rc && o->time_limit) {
    if (timefmt_parse_duration(o->time_limit, MAX_TIME_LIMIT, &d->time_limit))
      return foil_err_set(err, FOIL_EINVAL,
                          "--time-limit must be SECONDS or as sbatch --time MM:SS, HH:MM:SS, D-HH, "
                          "D-HH:MM, D-HH:MM:SS, at most 365-00:00:00, got '%.60s'",
                          o->time_limit);
    d->time_limit_from = "--time-limit";
  }
  if (!rc && o->max_failures) {
    rc = flag_int("--max-failures", o->max_failures, -1, MAX_FAILURES, &d->max_failures, err);
    d->max_failures_set = 1;
  }
  if (!rc && o->after) rc = flag_ids("--after", o->after, d->after_ok, &d->n_after_ok, err);
  if (!rc && o->after_any)
    rc = flag_ids("--after-any", o->after_any, d->after_any, &d->n_after_any, err);
  if (!rc && o->signal) {
    char sig[64];
    const char *at = strchr(o->signal, '@');
    size_t len = at ? (size_t)(at - o->signal) : strlen(o->signal);
    int s = 0;
    foil_err e2 = {0};
    if (len >= sizeof sig) len = sizeof sig - 1;
    memcpy(sig, o->signal, len);
    sig[len] = 0;
    if (signame_parse(sig, &s, &e2))
      return foil_err_set(err, FOIL_EINVAL, "--signal SIG[@SECONDS]: %s", e2.msg);
    d->warn_signal = s;
    d->warn_signal_from = "--signal";
    if (at) {
      rc = flag_int("--signal SIG@SECONDS: SECONDS", at + 1, 0, MAX_TIME_LIMIT, &d->warn_before,
                    err);
      d->warn_before_set = 1;
      d->warn_before_from = "--signal SIG@SECONDS";
    }
  }
  if (!rc && o->argc > 0) {
    d->argc = o->argc;
    d->argv = o->argv;
  }
  return rc;
}

/* ---- building the message -------------------------------------------------------- */

static char *dup_or_empty(const char *s) {
  return s && *s ? strdup(s) : (char *)protobuf_c_empty_string;
}

static int build(const draft *d, const char *spec_text, Foil__V1__JobSpec **out, foil_err *err) {
  Foil__V1__JobSpec *s = malloc(sizeof *s);
  Foil__V1__Resources *r = malloc(sizeof *r);
  if (!s || !r) {
    free(s);
    free(r);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  foil__v1__job_spec__init(s);
  foil__v1__resources__init(r);
  s->resources = r;
  r->ranks = (uint32_t)d->ranks;
  r->gpus_per_rank = (uint32_t)d->gpus;
  r->nodes = (uint32_t)d->nodes;
  s->priority = (int32_t)d->priority;
  s->time_limit_s = (uint32_t)d->time_limit;
  s->max_failures = (int32_t)d->max_failures;
  s->max_failures_set = d->max_failures_set;
  s->warn_signal = (int32_t)d->warn_signal;
  s->warn_before_s = d->warn_signal ? (uint32_t)(d->warn_before_set ? d->warn_before
                                                                    : DEFAULT_WARN_BEFORE)
                                    : 0;
  int ok = 1;
  s->name = dup_or_empty(d->name);
  s->kind = dup_or_empty(d->kind);
  s->spec_json = dup_or_empty(spec_text);
  s->workdir = dup_or_empty(d->workdir);
  ok = s->name && s->kind && s->spec_json && s->workdir;
  if (ok && d->argc > 0) {
    s->argv = calloc((size_t)d->argc, sizeof *s->argv);
    ok = s->argv != NULL;
    for (int i = 0; ok && i < d->argc; i++) {
      s->argv[i] = strdup(d->argv[i]);
      ok = s->argv[i] != NULL;
      s->n_argv = (size_t)i + 1;
    }
  }
  int ndeps = d->n_after_ok + d->n_after_any;
  if (ok && ndeps) {
    s->dependencies = calloc((size_t)ndeps, sizeof *s->dependencies);
    ok = s->dependencies != NULL;
    for (int i = 0; ok && i < ndeps; i++) {
      Foil__V1__Dependency *dep = malloc(sizeof *dep);
      if (!(ok = dep != NULL)) break;
      foil__v1__dependency__init(dep);
      int any = i >= d->n_after_ok;
      dep->type = any ? FOIL__V1__DEPENDENCY_TYPE__AFTER_ANY : FOIL__V1__DEPENDENCY_TYPE__AFTER_OK;
      dep->job_id = any ? d->after_any[i - d->n_after_ok] : d->after_ok[i];
      s->dependencies[i] = dep;
      s->n_dependencies = (size_t)i + 1;
    }
  }
  if (!ok) {
    jobspec_free(s);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  *out = s;
  return FOIL_OK;
}

/* Checks what only the whole draft can tell. */
static int check(draft *d, const char *spec_text, const char *label, foil_err *err) {
  if (!strcmp(d->kind, "command") && d->argc < 1)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: a job of kind \"command\" needs a program: \"argv\" in the spec "
                        "file or `-- PROGRAM ARGS...`",
                        label);
  if (strcmp(d->kind, "command") && d->argc > 0)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: \"argv\" is for jobs of kind \"command\", not \"%s\"", label, d->kind);
  if (d->argc > MAX_ARGV)
    return foil_err_set(err, FOIL_EINVAL, "%s: %d program arguments, at most %d", label, d->argc,
                        MAX_ARGV);
  for (int i = 0; i < d->argc; i++)
    if (strlen(d->argv[i]) > MAX_ARG || (i == 0 && !d->argv[0][0]))
      return foil_err_set(err, FOIL_EINVAL, "%s: argv[%d] must be 1..%d bytes", label, i, MAX_ARG);
  if (spec_text && strlen(spec_text) > MAX_SPEC)
    return foil_err_set(err, FOIL_EINVAL, "%s: the spec file is over %d KiB", label, MAX_SPEC >> 10);
  if (d->warn_before_set && !d->warn_signal)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: %s is when to send job.warn_signal, and there is none: add "
                        "\"warn_signal\" (e.g. \"USR1\") or --signal SIG@SECONDS",
                        label, d->warn_before_from);
  if (d->warn_signal && !d->time_limit)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: %s is sent before the time limit, and the job has none: give "
                        "--time-limit or job.time_limit_s",
                        label, d->warn_signal_from);
  if (d->warn_signal && !d->warn_before_set && d->time_limit <= DEFAULT_WARN_BEFORE)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: %s without SECONDS means %d s before the time limit, and the limit "
                        "(%s) is %ld s: use SIG@N with N < %ld, or warn_before_s",
                        label, d->warn_signal_from, DEFAULT_WARN_BEFORE, d->time_limit_from,
                        d->time_limit, d->time_limit);
  if (d->warn_signal && d->warn_before >= d->time_limit && d->warn_before_set)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: the warning signal is sent %ld s before the time limit (%s), which "
                        "must be less than the limit itself, %ld s (%s)",
                        label, d->warn_before, d->warn_before_from, d->time_limit,
                        d->time_limit_from);
  if (d->n_after_ok + d->n_after_any > MAX_DEPS)
    return foil_err_set(err, FOIL_EINVAL, "%s: more than %d dependencies", label, MAX_DEPS);
  if (!d->name[0]) { /* default: the program's base name, else the kind */
    const char *base = d->argc ? strrchr(d->argv[0], '/') : NULL;
    base = d->argc ? (base ? base + 1 : d->argv[0]) : d->kind;
    size_t k = 0;
    for (; base[k] && k < MAX_NAME; k++)
      d->name[k] = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-",
                          base[k]) ? base[k] : '_';
    d->name[k] = 0;
    if (!k) snprintf(d->name, sizeof d->name, "%s", d->kind);
  }
  return FOIL_OK;
}

int jobspec_build(Foil__V1__JobSpec **out, const char *spec_text, const char *label,
                  const jobspec_opts *o, foil_err *err) {
  *out = NULL;
  draft d = {.ranks = 1, .max_failures = 3};
  snprintf(d.kind, sizeof d.kind, "%s", spec_text ? "pretrain" : "command");
  if (!label) label = spec_text ? "the spec file" : "the command line";
  if (spec_text && o->argc > 0)
    return foil_err_set(err, FOIL_EINVAL,
                        "give a spec file or `-- PROGRAM ARGS...`, not both");
  if (!spec_text && o->argc < 1)
    return foil_err_set(err, FOIL_EINVAL, "give a spec file (SPEC.json) or `-- PROGRAM ARGS...`");
  cJSON *root = NULL;
  char **file_argv = NULL;
  int rc = FOIL_OK;
  if (spec_text) {
    root = cJSON_Parse(spec_text);
    if (!root || !cJSON_IsObject(root)) {
      const char *at = root ? NULL : cJSON_GetErrorPtr();
      rc = foil_err_set(err, FOIL_EINVAL, "%s is not a JSON object%s%.40s", label,
                        at ? "; the error is near: " : "", at ? at : "");
    } else {
      rc = read_file(&d, root, label, err);
      file_argv = d.argv; /* freed below, whoever wins */
    }
  }
  if (!rc) rc = apply_flags(&d, o, err);
  if (!rc) rc = check(&d, spec_text, label, err);
  if (!rc) rc = build(&d, spec_text, out, err);
  free(file_argv);
  cJSON_Delete(root);
  return rc;
}

void jobspec_free(Foil__V1__JobSpec *s) {
  if (s) foil__v1__job_spec__free_unpacked(s, NULL);
}

int jobspec_submission_id(char *buf, size_t n, foil_err *err) {
  unsigned char raw[16];
  FILE *f = fopen("/dev/urandom", "rb");
  size_t got = f ? fread(raw, 1, sizeof raw, f) : 0;
  if (f) fclose(f);
  if (got != sizeof raw || n < 2 * sizeof raw + 1)
    return foil_err_set(err, FOIL_EINTERNAL, "cannot read /dev/urandom for a submission id");
  for (size_t i = 0; i < sizeof raw; i++) snprintf(buf + 2 * i, 3, "%02x", raw[i]);
  return FOIL_OK;
}
