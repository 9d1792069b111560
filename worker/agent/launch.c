/* launch.c — see launch.h. */
#define _POSIX_C_SOURCE 200809L
#include "worker/agent/launch.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a growable NULL-terminated string vector */
typedef struct {
  char **v;
  size_t n, cap;
  int oom;
} strv;

static void sv_push(strv *s, const char *x) {
  if (s->oom) return;
  if (s->n + 2 > s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 32;
    char **v = realloc(s->v, cap * sizeof *v);
    if (!v) {
      s->oom = 1;
      return;
    }
    s->v = v, s->cap = cap;
  }
  char *d = strdup(x);
  if (!d) {
    s->oom = 1;
    return;
  }
  s->v[s->n++] = d;
  s->v[s->n] = NULL;
}

static int sv_finish(strv *s, char ***out, foil_err *err) {
  if (!s->oom && !s->v && !(s->v = calloc(1, sizeof *s->v))) s->oom = 1;  /* an empty vector */
  if (s->oom) {
    launch_strv_free(&s->v);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory building a command line");
  }
  *out = s->v;
  return FOIL_OK;
}

void launch_strv_free(char ***vp) {
  char **v = *vp;
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
  *vp = NULL;
}

uint32_t launch_ranks(const launch_opts *o) {
  uint32_t r = 0;
  for (size_t i = 0; i < o->nplacement; i++) r += o->placement[i]->ranks;
  return r ? r : 1;
}

int launch_hosts(const launch_opts *o, int counts, char *out, size_t n, foil_err *err) {
  size_t np = o->nplacement, used = 0;
  out[0] = 0;
  if (!np) {
    int w = counts ? snprintf(out, n, "%s:1", o->self_host) : snprintf(out, n, "%s", o->self_host);
    return w < 0 || (size_t)w >= n ? foil_err_set(err, FOIL_EINVAL, "host name too long") : FOIL_OK;
  }
  for (size_t i = 0; i < np; i++) {
    const char *h = o->placement[i]->host;
    if (!h || !*h) h = o->placement[i]->worker;
    int seen = 0;
    for (size_t k = 0; k < i && !seen; k++) {
      const char *hk = o->placement[k]->host;
      if (!hk || !*hk) hk = o->placement[k]->worker;
      seen = !strcmp(hk, h);
    }
    if (seen) continue;
    uint32_t r = 0;
    for (size_t k = i; k < np; k++) {
      const char *hk = o->placement[k]->host;
      if (!hk || !*hk) hk = o->placement[k]->worker;
      if (!strcmp(hk, h)) r += o->placement[k]->ranks;
    }
    int w = counts ? snprintf(out + used, n - used, "%s%s:%u", used ? "," : "", h, r)
                   : snprintf(out + used, n - used, "%s%s", used ? "," : "", h);
    if (w < 0 || (size_t)w >= n - used)
      return foil_err_set(err, FOIL_EINVAL, "the host list of %zu placements is too long", np);
    used += (size_t)w;
  }
  return FOIL_OK;
}

static const char *const exported[] = {"FOIL_PROGRESS", "FOIL_PROGRESS_KEY", "FOIL_ATTEMPT_TOKEN", "FOIL_JOB_DIR",
                                       "FOIL_JOB_ID", "FOIL_ROOT", "FOIL_ATTEMPT", "FOIL_RESTART_COUNT", NULL};

/* kind "serve": foil-serve itself, one process, its flags from the spec */
static int serve_argv(const launch_opts *o, char ***out, foil_err *err) {
  cJSON *js = cJSON_Parse(o->spec_json ? o->spec_json : "");
  const cJSON *ix = cJSON_GetObjectItemCaseSensitive(js, "index");
  if (!cJSON_IsString(ix) || !ix->valuestring[0]) {
    cJSON_Delete(js);
    return foil_err_set(err, FOIL_EINVAL, "a serve job needs \"index\" in its spec");
  }
  strv s = {0};
  char path[4096], buf[4096];
  const char *run = o->foil_run && *o->foil_run ? o->foil_run : "foil-run", *slash = strrchr(run, '/');
  if (slash) snprintf(path, sizeof path, "%.*s/foil-serve", (int)(slash - run), run);
  else snprintf(path, sizeof path, "foil-serve");
  sv_push(&s, path);
  sv_push(&s, "--index");
  sv_push(&s, ix->valuestring);
  sv_push(&s, "--root");
  sv_push(&s, o->root);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(js, "bind");
  if (cJSON_IsString(v)) sv_push(&s, "--bind"), sv_push(&s, v->valuestring);
  v = cJSON_GetObjectItemCaseSensitive(js, "shards");
  if (cJSON_IsString(v)) sv_push(&s, "--shards"), sv_push(&s, v->valuestring);
  if (cJSON_IsArray(v)) {
    size_t used = 0;
    buf[0] = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, v) if (used < sizeof buf) used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%d",
                                                                             used ? "," : "", (int)x->valuedouble);
    sv_push(&s, "--shards"), sv_push(&s, buf);
  }
  if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(js, "watch"))) sv_push(&s, "--no-watch");
  if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(js, "text"))) sv_push(&s, "--no-text");
  v = cJSON_GetObjectItemCaseSensitive(js, "version");
  if (cJSON_IsNumber(v)) {
    snprintf(buf, sizeof buf, "%d", (int)v->valuedouble);
    sv_push(&s, "--version"), sv_push(&s, buf);
  }
  v = cJSON_GetObjectItemCaseSensitive(js, "device");  /* foil-serve refuses what it does not know */
  if (cJSON_IsString(v)) sv_push(&s, "--device"), sv_push(&s, v->valuestring);
  cJSON_Delete(js);
  return sv_finish(&s, out, err);
}

int launch_is_foil_run(const char *kind) {
  return kind && (!strcmp(kind, "pretrain") || !strcmp(kind, "refresh") || !strcmp(kind, "decode-eval"));
}

int launch_argv(const launch_opts *o, char ***out, foil_err *err) {
  *out = NULL;
  if (o->kind && !strcmp(o->kind, "serve")) return serve_argv(o, out, err);
  int foil_run = launch_is_foil_run(o->kind);
  int command = o->kind && !strcmp(o->kind, "command");
  if (!foil_run && !command)
    return foil_err_set(err, FOIL_EINVAL, "job kind '%s' cannot be run by this worker (pretrain, refresh, decode-eval, command, serve)",
                        o->kind ? o->kind : "");
  if (command && (!o->argc || !o->argv[0] || !o->argv[0][0]))
    return foil_err_set(err, FOIL_EINVAL, "a command job needs argv (the program and its arguments)");
  uint32_t R = launch_ranks(o);
  strv s = {0};
  char buf[8192];
  if (command && R == 1 && o->nplacement <= 1) {
    for (size_t i = 0; i < o->argc; i++) sv_push(&s, o->argv[i]);
    return sv_finish(&s, out, err);
  }
  int rc;
  if (o->slurm) {
    sv_push(&s, "srun");
    snprintf(buf, sizeof buf, "--ntasks=%u", R);
    sv_push(&s, buf);
    char hosts[4096];
    if ((rc = launch_hosts(o, 0, hosts, sizeof hosts, err))) return launch_strv_free(&s.v), rc;
    snprintf(buf, sizeof buf, "--nodelist=%s", hosts);
    sv_push(&s, buf);
    sv_push(&s, "--kill-on-bad-exit=1");
  } else {
    sv_push(&s, o->mpirun && *o->mpirun ? o->mpirun : "mpirun");
    sv_push(&s, "-np");
    snprintf(buf, sizeof buf, "%u", R);
    sv_push(&s, buf);
    sv_push(&s, "--host");
    if ((rc = launch_hosts(o, 1, buf, sizeof buf, err))) return launch_strv_free(&s.v), rc;
    sv_push(&s, buf);
    /* mpirun binds each rank to one core by default; a foil rank runs
     * several OpenMP/OpenBLAS threads, so unbound unless told otherwise */
    if (!o->mpirun_args || !strstr(o->mpirun_args, "--bind-to")) {
      sv_push(&s, "--bind-to");
      sv_push(&s, "none");
    }
    if (o->mpirun_args) {
      const char *p = o->mpirun_args;
      while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        size_t len = strcspn(p, " \t");
        if (!len) break;
        if (len >= sizeof buf) len = sizeof buf - 1;
        memcpy(buf, p, len);
        buf[len] = 0;
        sv_push(&s, buf);
        p += len;
      }
    }
    for (const char *const *e = exported; *e; e++) {
      sv_push(&s, "-x");
      sv_push(&s, *e);
    }
  }
  if (foil_run) {
    sv_push(&s, o->foil_run && *o->foil_run ? o->foil_run : "foil-run");
    sv_push(&s, o->kind);
    sv_push(&s, o->spec_path);
    sv_push(&s, "--root");
    sv_push(&s, o->root);
    sv_push(&s, "--job-dir");
    sv_push(&s, o->job_dir);
    sv_push(&s, "--quiet");
  } else {
    for (size_t i = 0; i < o->argc; i++) sv_push(&s, o->argv[i]);
  }
  return sv_finish(&s, out, err);
}

/* 1 when "KEY=..." e names KEY (n bytes before its '='). */
static int env_is(const char *e, size_t n, const char *key) { return strlen(key) == n && !strncmp(e, key, n); }

int launch_env(char *const *environ_in, char *const *set, const char *kind, char ***out, foil_err *err) {
  *out = NULL;
  strv s = {0};
  int serve = kind && !strcmp(kind, "serve");
  for (char *const *e = environ_in; e && *e; e++) {
    size_t klen = strcspn(*e, "=");
    int replaced = 0;
    for (char *const *k = set; k && *k && !replaced; k++)
      replaced = !strncmp(*k, *e, klen) && (*k)[klen] == '=';
    /* the worker's own credentials stay with it */
    if (env_is(*e, klen, "FOIL_KEY") || env_is(*e, klen, "FOIL_KEYS")) continue;
    if (!serve && (env_is(*e, klen, "FOIL_CURVE_KEY") || env_is(*e, klen, "FOIL_ALLOW_KEYS"))) continue;
    if (!replaced) sv_push(&s, *e);
  }
  for (char *const *k = set; k && *k; k++) sv_push(&s, *k);
  return sv_finish(&s, out, err);
}

void launch_describe(char *const *argv, char *out, size_t n) {
  size_t used = 0;
  if (!n) return;
  out[0] = 0;
  for (char *const *a = argv; a && *a && used + 1 < n; a++) {
    int quote = !**a || strpbrk(*a, " \t\"'$\\") != NULL;
    int w = snprintf(out + used, n - used, "%s%s%s%s", used ? " " : "", quote ? "'" : "", *a, quote ? "'" : "");
    if (w < 0) break;
    used += (size_t)w;
    if (used >= n) {
      used = n - 1;
      break;
    }
  }
}
