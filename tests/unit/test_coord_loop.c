/* test_coord_loop.c — the coordinator's refresh-spec builder for the
 * trainer <-> index loop, and reading the sticky checkpoint fields of a
 * progress message. The built spec passes foil-run's refresh check. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coord_loop.h"
#include "tests/test.h"
#include "worker/run/refresh.h"

static const char *SPEC =
    "{\"kind\":\"pretrain\",\"name\":\"code-loop\",\"steps\":60,"
    "\"refresh\":{\"every_steps\":20,\"index\":\"code\",\"ranks\":2,"
    "\"corpus\":{\"dataset\":\"code\",\"benchmark\":\"all\"},\"dtype\":\"float16\",\"keep_versions\":2,"
    "\"mine\":{\"dataset\":\"code\",\"top\":2,\"skip_top\":3,\"margin\":0.05}}}";

static void test_build(void) {
  coord_loop_spec s;
  foil_err err = {0};
  CHECKF(coord_loop_build(SPEC, "code-loop", 7, "/r/jobs/7/ckpt/step_40.h5", 40, &s, &err) == 0, "%s", err.msg);
  CHECK(s.due && s.every_steps == 20 && s.ranks == 2);
  CHECK(!strcmp(s.name, "code-loop-refresh") && !strcmp(s.submission_id, "refresh-7-40"));
  cJSON *r = cJSON_Parse(s.spec_json);
  CHECK(r != NULL);
  CHECK(!strcmp(cJSON_GetObjectItem(r, "kind")->valuestring, "refresh"));
  CHECK(!strcmp(cJSON_GetObjectItem(r, "name")->valuestring, "code"));
  CHECK(!strcmp(cJSON_GetObjectItem(r, "checkpoint")->valuestring, "/r/jobs/7/ckpt/step_40.h5"));
  CHECK(!strcmp(cJSON_GetObjectItem(r, "dtype")->valuestring, "float16"));
  CHECK(cJSON_GetObjectItem(r, "keep_versions")->valuedouble == 2);
  CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "job"), "ranks")->valuedouble == 2);
  const cJSON *m = cJSON_GetObjectItem(r, "mine");
  CHECK(m && cJSON_GetObjectItem(m, "top")->valuedouble == 2 && cJSON_GetObjectItem(m, "skip_top")->valuedouble == 3);
  CHECK(!cJSON_GetObjectItem(r, "every_steps") && !cJSON_GetObjectItem(r, "index") && !cJSON_GetObjectItem(r, "ranks"));
  cJSON_Delete(r);
  /* what foil-run refresh will read */
  CHECKF(refresh_spec_check(s.spec_json, &err) == 0, "%s: %s", s.spec_json, err.msg);
  coord_loop_spec_free(&s);
  CHECK(s.spec_json == NULL);
  /* not a multiple: not due, no spec */
  CHECK(coord_loop_build(SPEC, "code-loop", 7, "/c.h5", 30, &s, &err) == 0 && !s.due && !s.spec_json);
  coord_loop_spec_free(&s);
  /* defaults: ranks 1, a name for an unnamed job */
  const char *minimal = "{\"refresh\":{\"every_steps\":5,\"index\":\"x\",\"corpus\":{\"file\":\"c.jsonl\"}}}";
  CHECK(coord_loop_build(minimal, "", 3, "/c.h5", 10, &s, &err) == 0 && s.due && s.ranks == 1);
  CHECK(!strcmp(s.name, "pretrain-refresh") && !strcmp(s.submission_id, "refresh-3-10"));
  CHECKF(refresh_spec_check(s.spec_json, &err) == 0, "%s", err.msg);
  coord_loop_spec_free(&s);
  /* a long job name stays within the 128-byte limit */
  char longname[200];
  memset(longname, 'a', 150), longname[150] = 0;
  CHECK(coord_loop_build(minimal, longname, 3, "/c.h5", 10, &s, &err) == 0 && strlen(s.name) <= 128);
  coord_loop_spec_free(&s);
}

static void test_refusals(void) {
  coord_loop_spec s;
  foil_err err = {0};
  CHECK(coord_loop_build("{\"kind\":\"pretrain\"}", "a", 1, "/c.h5", 20, &s, &err) == FOIL_ENOTFOUND);
  CHECK(coord_loop_build("not json", "a", 1, "/c.h5", 20, &s, &err) == FOIL_ENOTFOUND);
  const char *bad[] = {
      "{\"refresh\":{\"index\":\"x\"}}",                              /* no every_steps */
      "{\"refresh\":{\"every_steps\":0,\"index\":\"x\"}}",            /* < 1 */
      "{\"refresh\":{\"every_steps\":2.5,\"index\":\"x\"}}",          /* not whole */
      "{\"refresh\":{\"every_steps\":2}}",                            /* no index */
      "{\"refresh\":{\"every_steps\":2,\"index\":\"x\",\"ranks\":0}}",/* ranks */
      "{\"refresh\":[1]}",                                            /* not an object */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECKF(coord_loop_build(bad[i], "a", 1, "/c.h5", 20, &s, &err) == FOIL_EINVAL, "%s", bad[i]);
}

static void test_checkpoint_fields(void) {
  char path[64];
  int64_t step = 0;
  CHECK(coord_loop_checkpoint("{\"step\":45,\"loss\":0.5,\"checkpoint\":\"/r/c/step_40.h5\",\"checkpoint_step\":40}",
                              path, sizeof path, &step) == 1);
  CHECK(step == 40 && !strcmp(path, "/r/c/step_40.h5"));
  CHECK(coord_loop_checkpoint("{\"step\":45}", path, sizeof path, &step) == 0);
  CHECK(coord_loop_checkpoint("", path, sizeof path, &step) == 0);
  CHECK(coord_loop_checkpoint(NULL, path, sizeof path, &step) == 0);
  CHECK(coord_loop_checkpoint("{\"checkpoint\":\"/x\",\"checkpoint_step\":\"40\"}", path, sizeof path, &step) == 0);
  char tiny[4];
  CHECK(coord_loop_checkpoint("{\"checkpoint\":\"/long/path\",\"checkpoint_step\":4}", tiny, sizeof tiny, &step) == 0);
}

/* ---- coord_loop_on_progress against a fake coordinator ------------------------------------------ */

static struct {
  int submits, fail_next;       /* submits asked; the next one fails */
  int existing;                 /* the next submit finds its id taken by job 99 */
  coord_loop_job other;         /* job 99 */
  char last_log[2048], last_level[16], last_event[2048];
  int logs, events;
} fk;

static int fk_submit(void *ctx, const coord_loop_spec *ls, uint64_t *id, int *existing, foil_err *err) {
  (void)ctx, (void)ls;
  fk.submits++;
  if (fk.fail_next) {
    fk.fail_next = 0;
    return foil_err_set(err, FOIL_EINTERNAL, "the job was not recorded: database is locked");
  }
  *existing = fk.existing, *id = fk.existing ? 99 : 100 + (uint64_t)fk.submits;
  return FOIL_OK;
}
static coord_loop_job fk_job(void *ctx, uint64_t id) {
  (void)ctx;
  return id == 99 ? fk.other : (coord_loop_job){0};
}
static void fk_log(void *ctx, const char *level, const char *msg) {
  (void)ctx;
  fk.logs++;
  snprintf(fk.last_level, sizeof fk.last_level, "%s", level);
  snprintf(fk.last_log, sizeof fk.last_log, "%s", msg);
}
static void fk_event(void *ctx, const char *msg) {
  (void)ctx;
  fk.events++;
  snprintf(fk.last_event, sizeof fk.last_event, "%s", msg);
}

static const char *M40 = "{\"step\":41,\"checkpoint\":\"/r/jobs/7/ckpt/step_40.h5\",\"checkpoint_step\":40}";

/* review-serve nit 8: a failed submit is tried again at the next progress
 * message, not lost (it was the step's only chance) */
static void test_progress_retry(void) {
  coord_loop_ops ops = {.submit = fk_submit, .job = fk_job, .log = fk_log, .event = fk_event};
  memset(&fk, 0, sizeof fk);
  int64_t loop_step = 20;
  fk.fail_next = 1;
  coord_loop_on_progress(&ops, 7, "code-loop", "alice", SPEC, M40, &loop_step);
  CHECK(fk.submits == 1 && fk.events == 0);
  CHECKF(!strcmp(fk.last_level, "ERROR") && strstr(fk.last_log, "step 40 was not submitted"), "%s", fk.last_log);
  CHECKF(loop_step == 20, "a failed submit advanced the loop to step %lld: that refresh is never retried",
         (long long)loop_step);
  coord_loop_on_progress(&ops, 7, "code-loop", "alice", SPEC, M40, &loop_step);  /* the next progress */
  CHECKF(fk.submits == 2 && fk.events == 1 && loop_step == 40, "submits %d, events %d, loop step %lld", fk.submits,
         fk.events, (long long)loop_step);
  CHECKF(strstr(fk.last_event, "refresh job 102") && strstr(fk.last_event, "refresh-7-40"), "%s", fk.last_event);
  coord_loop_on_progress(&ops, 7, "code-loop", "alice", SPEC, M40, &loop_step);  /* once settled: never again */
  CHECK(fk.submits == 2 && fk.events == 1);
  /* a step that is not due settles without a submit */
  coord_loop_on_progress(&ops, 7, "code-loop", "alice", SPEC,
                         "{\"checkpoint\":\"/r/jobs/7/ckpt/step_50.h5\",\"checkpoint_step\":50}", &loop_step);
  CHECK(fk.submits == 2 && loop_step == 50);
}

/* review-security 5: the loop's submission id taken by another job is said, not silently skipped */
static void test_progress_squatted(void) {
  coord_loop_ops ops = {.submit = fk_submit, .job = fk_job, .log = fk_log, .event = fk_event};
  memset(&fk, 0, sizeof fk);
  int64_t loop_step = 0;
  /* a repeat of the loop's own submission (a restarted coordinator): silent */
  coord_loop_spec ls;
  foil_err err = {0};
  CHECK(coord_loop_build(SPEC, "code-loop", 7, "/r/jobs/7/ckpt/step_40.h5", 40, &ls, &err) == 0);
  fk.existing = 1;
  fk.other = (coord_loop_job){.kind = "refresh", .name = "code-loop-refresh", .submitter = "alice",
                              .spec_json = ls.spec_json};
  coord_loop_on_progress(&ops, 7, "code-loop", "alice", SPEC, M40, &loop_step);
  CHECKF(fk.submits == 1 && fk.logs == 0 && fk.events == 0 && loop_step == 40, "logs %d: %s", fk.logs, fk.last_log);
  CHECK(coord_loop_is_ours(&fk.other, &ls, "alice", "/r/jobs/7/ckpt/step_40.h5"));
  /* another job holds the id: a WARN naming it and the id */
  const char *other_kinds[][3] = {{"command", "code-loop-refresh", "alice"},   /* not a refresh */
                                  {"refresh", "code-loop-refresh", "mallory"}, /* another submitter's */
                                  {"refresh", "squat", "alice"}};              /* another name */
  for (size_t i = 0; i < 3; i++) {
    memset(&fk, 0, sizeof fk);
    fk.existing = 1;
    fk.other = (coord_loop_job){.kind = other_kinds[i][0], .name = other_kinds[i][1], .submitter = other_kinds[i][2],
                                .spec_json = ls.spec_json};
    loop_step = 0;
    coord_loop_on_progress(&ops, 7, "code-loop", "alice", SPEC, M40, &loop_step);
    CHECKF(fk.logs == 1 && !strcmp(fk.last_level, "WARN") && strstr(fk.last_log, "refresh-7-40") &&
           strstr(fk.last_log, "job 99"), "case %zu: %d logs: %s %s", i, fk.logs, fk.last_level, fk.last_log);
    CHECK(loop_step == 40 && fk.events == 0);  /* settled: asking again would find the same job */
  }
  /* a refresh of the same name and submitter, but of another checkpoint */
  coord_loop_job x = {.kind = "refresh", .name = "code-loop-refresh", .submitter = "alice",
                      .spec_json = "{\"kind\":\"refresh\",\"name\":\"code\",\"checkpoint\":\"/elsewhere.h5\"}"};
  CHECK(!coord_loop_is_ours(&x, &ls, "alice", "/r/jobs/7/ckpt/step_40.h5"));
  x.spec_json = NULL;
  CHECK(!coord_loop_is_ours(&x, &ls, "alice", "/r/jobs/7/ckpt/step_40.h5"));
  coord_loop_spec_free(&ls);
}

int main(void) {
  RUN(test_build);
  RUN(test_refusals);
  RUN(test_checkpoint_fields);
  RUN(test_progress_retry);
  RUN(test_progress_squatted);
  TEST_EXIT();
}
