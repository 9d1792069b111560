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

int main(void) {
  RUN(test_build);
  RUN(test_refusals);
  RUN(test_checkpoint_fields);
  TEST_EXIT();
}
