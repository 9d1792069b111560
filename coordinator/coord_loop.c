/* coord_loop.c — the trainer <-> index loop: refresh jobs submitted after
 * the checkpoints of pretrain jobs that ask for them (coord_loop.h). */
#define _POSIX_C_SOURCE 200809L
#include "coordinator/coord_loop.h"

#include <cjson/cJSON.h>
#include <math.h>
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

void coord_loop_progress(coord *c, cjob *j) {
  if (strcmp(j->spec->kind, "pretrain") || !j->p_metrics || !strstr(j->p_metrics, "\"checkpoint_step\"")) return;
  char path[4096];
  int64_t step = 0;
  if (!coord_loop_checkpoint(j->p_metrics, path, sizeof path, &step) || step <= j->loop_step) return;
  j->loop_step = step;
  coord_loop_spec ls;
  foil_err err = {0};
  int rc = coord_loop_build(j->spec->spec_json, j->spec->name, j->id, path, step, &ls, &err);
  if (rc == FOIL_ENOTFOUND) return;
  if (rc) {
    coord_log(c, "WARN", "job %llu: checkpoint step %lld: no refresh: %s", (unsigned long long)j->id,
              (long long)step, err.msg);
    return;
  }
  if (!ls.due) return;
  Foil__V1__JobSpec spec = FOIL__V1__JOB_SPEC__INIT;
  Foil__V1__Resources res = FOIL__V1__RESOURCES__INIT;
  res.ranks = ls.ranks;
  spec.kind = "refresh", spec.name = ls.name, spec.spec_json = ls.spec_json, spec.resources = &res;
  spec.workdir = j->spec->workdir, spec.priority = j->spec->priority;
  uint64_t id = 0;
  int existing = 0;
  rc = coord_submit(c, &spec, ls.submission_id, j->submitter, &id, &existing, &err);
  if (rc)
    coord_log(c, "ERROR", "job %llu: the refresh for checkpoint step %lld was not submitted: %s",
              (unsigned long long)j->id, (long long)step, err.msg);
  else if (!existing)
    coord_persist_job(c, j, NULL, "loop: checkpoint step %lld -> refresh job %llu (%s, %u rank(s), %s)",
                      (long long)step, (unsigned long long)id, ls.name, ls.ranks, ls.submission_id);
  coord_loop_spec_free(&ls);
}
