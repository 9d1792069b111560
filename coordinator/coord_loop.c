/* coord_loop.c — the trainer <-> index loop: refresh jobs submitted after
 * the checkpoints of pretrain jobs that ask for them (coord_loop.h). */
#define _POSIX_C_SOURCE 200809L
#include "coordinator/coord_loop.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coord_int.h"

void coord_loop_spec_free(coord_loop_spec *s) {
  free(s->spec_json);
  memset(s, 0, sizeof *s);
}

static int whole(const cJSON *x, double lo, double hi) {
  return cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble) && x->valuedouble >= lo &&
         x->valuedouble <= hi;
}

int coord_loop_build(const char *pretrain_json, const char *job_name, uint64_t job_id, const char *checkpoint,
                     int64_t step, coord_loop_spec *out, foil_err *err) {
  memset(out, 0, sizeof *out);
  cJSON *root = pretrain_json ? cJSON_Parse(pretrain_json) : NULL;
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "refresh");
  int rc = FOIL_OK;
  if (!r) {
    rc = FOIL_ENOTFOUND;
    goto out;
  }
  const cJSON *every = cJSON_GetObjectItemCaseSensitive(r, "every_steps");
  const cJSON *index = cJSON_GetObjectItemCaseSensitive(r, "index");
  const cJSON *ranks = cJSON_GetObjectItemCaseSensitive(r, "ranks");
  if (!cJSON_IsObject(r) || !whole(every, 1, 1e12) || !cJSON_IsString(index) || !index->valuestring[0] ||
      (ranks && !whole(ranks, 1, 4096))) {
    rc = foil_err_set(err, FOIL_EINVAL, "the spec's refresh object needs every_steps (an integer >= 1), index (a "
                      "name) and, if given, ranks (1..4096)");
    goto out;
  }
  out->every_steps = (int64_t)every->valuedouble;
  out->ranks = ranks ? (uint32_t)ranks->valuedouble : 1;
  out->due = step > 0 && step % out->every_steps == 0;
  if (!out->due) goto out;
  snprintf(out->name, sizeof out->name, "%.120s-refresh", job_name && job_name[0] ? job_name : "pretrain");
  snprintf(out->submission_id, sizeof out->submission_id, "refresh-%llu-%lld", (unsigned long long)job_id,
           (long long)step);
  cJSON *s = cJSON_CreateObject(), *job = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "kind", "refresh");
  cJSON_AddStringToObject(s, "name", index->valuestring);
  cJSON_AddStringToObject(s, "checkpoint", checkpoint);
  for (const cJSON *x = r->child; x; x = x->next)
    if (strcmp(x->string, "every_steps") && strcmp(x->string, "index") && strcmp(x->string, "ranks") &&
        strcmp(x->string, "kind") && strcmp(x->string, "name") && strcmp(x->string, "checkpoint") &&
        strcmp(x->string, "job"))
      cJSON_AddItemToObject(s, x->string, cJSON_Duplicate(x, 1));
  cJSON_AddNumberToObject(job, "ranks", out->ranks);
  cJSON_AddItemToObject(s, "job", job);
  out->spec_json = cJSON_PrintUnformatted(s);
  cJSON_Delete(s);
  if (!out->spec_json) rc = foil_err_set(err, FOIL_ENOMEM, "no memory for a refresh spec");
out:
  cJSON_Delete(root);
  if (rc) coord_loop_spec_free(out);
  return rc;
}

int coord_loop_checkpoint(const char *metrics_json, char *out, size_t n, int64_t *step) {
  cJSON *m = metrics_json && metrics_json[0] ? cJSON_Parse(metrics_json) : NULL;
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "checkpoint");
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, "checkpoint_step");
  int ok = cJSON_IsString(p) && p->valuestring[0] && strlen(p->valuestring) < n && whole(s, 1, 9e15);
  if (ok) {
    snprintf(out, n, "%s", p->valuestring);
    *step = (int64_t)s->valuedouble;
  }
  cJSON_Delete(m);
  return ok;
}

int coord_loop_is_ours(const coord_loop_job *x, const coord_loop_spec *ls, const char *submitter,
                       const char *checkpoint) {
  if (!x->kind || strcmp(x->kind, "refresh") || !x->name || strcmp(x->name, ls->name) ||
      strcmp(x->submitter ? x->submitter : "", submitter ? submitter : ""))
    return 0;
  cJSON *have = x->spec_json ? cJSON_Parse(x->spec_json) : NULL, *want = cJSON_Parse(ls->spec_json);
  const cJSON *hc = cJSON_GetObjectItemCaseSensitive(have, "checkpoint"),
              *hn = cJSON_GetObjectItemCaseSensitive(have, "name"),
              *wn = cJSON_GetObjectItemCaseSensitive(want, "name");
  int ours = cJSON_IsString(hc) && !strcmp(hc->valuestring, checkpoint) && cJSON_IsString(hn) &&
             cJSON_IsString(wn) && !strcmp(hn->valuestring, wn->valuestring);
  cJSON_Delete(have), cJSON_Delete(want);
  return ours;
}

__attribute__((format(printf, 3, 4))) static void say(const coord_loop_ops *ops, const char *level, const char *fmt,
                                                      ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (level) ops->log(ops->ctx, level, msg);
  else ops->event(ops->ctx, msg);
}

void coord_loop_on_progress(const coord_loop_ops *ops, uint64_t job_id, const char *job_name, const char *submitter,
                            const char *pretrain_json, const char *metrics_json, int64_t *loop_step) {
  char path[4096];
  int64_t step = 0;
  if (!coord_loop_checkpoint(metrics_json, path, sizeof path, &step) || step <= *loop_step) return;
  coord_loop_spec ls;
  foil_err err = {0};
  int rc = coord_loop_build(pretrain_json, job_name, job_id, path, step, &ls, &err);
  if (rc || !ls.due) {  /* settled: nothing to submit, or nothing that could be */
    *loop_step = step;
    if (rc && rc != FOIL_ENOTFOUND)
      say(ops, "WARN", "job %llu: checkpoint step %lld: no refresh: %s", (unsigned long long)job_id, (long long)step,
          err.msg);
    return;
  }
  uint64_t id = 0;
  int existing = 0;
  rc = ops->submit(ops->ctx, &ls, &id, &existing, &err);
  if (rc) {  /* not settled: the next progress message (it repeats the checkpoint) tries again */
    say(ops, "ERROR", "job %llu: the refresh for checkpoint step %lld was not submitted (tried again at the next "
        "progress): %s", (unsigned long long)job_id, (long long)step, err.msg);
  } else if (!existing) {
    *loop_step = step;
    say(ops, NULL, "loop: checkpoint step %lld -> refresh job %llu (%s, %u rank(s), %s)", (long long)step,
        (unsigned long long)id, ls.name, ls.ranks, ls.submission_id);
  } else {
    *loop_step = step;
    coord_loop_job x = ops->job(ops->ctx, id);
    if (!coord_loop_is_ours(&x, &ls, submitter, path))  /* someone else's job holds the id: no refresh */
      say(ops, "WARN", "job %llu: the refresh for checkpoint step %lld was not submitted: its submission id %s is "
          "taken by job %llu (%s \"%s\"%s%s), not this loop's refresh of %s", (unsigned long long)job_id,
          (long long)step, ls.submission_id, (unsigned long long)id, x.kind ? x.kind : "unknown",
          x.name ? x.name : "", x.submitter && x.submitter[0] ? ", by " : "", x.submitter ? x.submitter : "", path);
  }
  coord_loop_spec_free(&ls);
}

/* ---- the coordinator's ops ------------------------------------------------------------------- */

typedef struct {
  coord *c;
  cjob *j;
  cjob *tmp;  /* op_job's job read from the store (evicted), freed after the progress is handled */
} loop_ctx;

static int op_submit(void *ctx, const coord_loop_spec *ls, uint64_t *id, int *existing, foil_err *err) {
  loop_ctx *x = ctx;
  Foil__V1__JobSpec spec = FOIL__V1__JOB_SPEC__INIT;
  Foil__V1__Resources res = FOIL__V1__RESOURCES__INIT;
  res.ranks = ls->ranks;
  spec.kind = "refresh", spec.name = (char *)ls->name, spec.spec_json = ls->spec_json, spec.resources = &res;
  spec.workdir = x->j->spec->workdir, spec.priority = x->j->spec->priority;
  return coord_submit(x->c, &spec, ls->submission_id, x->j->submitter, id, existing, err);
}

static coord_loop_job op_job(void *ctx, uint64_t id) {
  loop_ctx *x = ctx;
  cjob *o = NULL;
  foil_err err = {0};
  coord_job_free(x->tmp);
  x->tmp = NULL;
  if (coord_job_get(x->c, id, 1, &o, &x->tmp, &err))
    coord_log(x->c, "WARN", "job %llu: not read from the job store: %s", (unsigned long long)id, err.msg);
  coord_loop_job out = {0};
  if (o && o->spec)
    out = (coord_loop_job){.kind = o->spec->kind, .name = o->spec->name, .submitter = o->submitter,
                           .spec_json = o->spec->spec_json};
  return out;
}

static void op_log(void *ctx, const char *level, const char *msg) {
  coord_log(((loop_ctx *)ctx)->c, level, "%s", msg);
}

static void op_event(void *ctx, const char *msg) {
  loop_ctx *x = ctx;
  coord_persist_job(x->c, x->j, NULL, "%s", msg);
}

void coord_loop_progress(coord *c, cjob *j) {
  if (strcmp(j->spec->kind, "pretrain") || !j->p_metrics || !strstr(j->p_metrics, "\"checkpoint_step\"")) return;
  loop_ctx x = {c, j, NULL};
  coord_loop_ops ops = {.ctx = &x, .submit = op_submit, .job = op_job, .log = op_log, .event = op_event};
  coord_loop_on_progress(&ops, j->id, j->spec->name, j->submitter, j->spec->spec_json, j->p_metrics, &j->loop_step);
  coord_job_free(x.tmp);
}
