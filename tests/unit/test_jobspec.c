/* test_jobspec.c — `foil submit`'s spec file + flags -> foil.v1.JobSpec:
 * the "job" keys, flags over the file, the kind "command", and refusals
 * that name the key or flag. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>

#include "cli/jobspec.h"
#include "tests/test.h"

static Foil__V1__JobSpec *build(const char *text, const jobspec_opts *o, foil_err *err) {
  Foil__V1__JobSpec *s = NULL;
  int rc = jobspec_build(&s, text, "spec.json", o, err);
  CHECK((rc == 0) == (s != NULL));
  return s;
}

static void test_file_job_keys(void) {
  const char *text =
      "{\"kind\":\"pretrain\",\"name\":\"tiny-1\",\"steps\":5,"
      "\"job\":{\"ranks\":4,\"gpus_per_rank\":1,\"nodes\":2,\"priority\":-3,\"time_limit_s\":600,"
      "\"max_failures\":-1,\"after_ok\":[7,8],\"after_any\":[9],\"warn_signal\":\"USR1\","
      "\"warn_before_s\":30}}";
  jobspec_opts o = {0};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build(text, &o, &err);
  CHECKF(s, "%s", err.msg);
  if (!s) return;
  CHECK(!strcmp(s->kind, "pretrain") && !strcmp(s->name, "tiny-1"));
  CHECK(!strcmp(s->spec_json, text)); /* verbatim */
  CHECK(s->resources && s->resources->ranks == 4 && s->resources->gpus_per_rank == 1 &&
        s->resources->nodes == 2);
  CHECK(s->priority == -3 && s->time_limit_s == 600);
  CHECK(s->max_failures == -1 && s->max_failures_set);
  CHECK(s->n_dependencies == 3);
  if (s->n_dependencies == 3) {
    CHECK(s->dependencies[0]->type == FOIL__V1__DEPENDENCY_TYPE__AFTER_OK &&
          s->dependencies[0]->job_id == 7);
    CHECK(s->dependencies[1]->type == FOIL__V1__DEPENDENCY_TYPE__AFTER_OK &&
          s->dependencies[1]->job_id == 8);
    CHECK(s->dependencies[2]->type == FOIL__V1__DEPENDENCY_TYPE__AFTER_ANY &&
          s->dependencies[2]->job_id == 9);
  }
  CHECK(s->warn_signal == SIGUSR1 && s->warn_before_s == 30);
  CHECK(s->n_argv == 0);
  jobspec_free(s);
}

static void test_defaults(void) {
  jobspec_opts o = {0};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build("{\"steps\":5}", &o, &err);
  CHECKF(s, "%s", err.msg);
  if (!s) return;
  CHECK(!strcmp(s->kind, "pretrain") && !strcmp(s->name, "pretrain"));
  CHECK(s->resources->ranks == 1 && s->resources->gpus_per_rank == 0 && s->resources->nodes == 0);
  CHECK(s->priority == 0 && s->time_limit_s == 0 && s->n_dependencies == 0);
  CHECK(!s->max_failures_set && s->warn_signal == 0 && s->warn_before_s == 0);
  jobspec_free(s);
}

static void test_flags_override(void) {
  const char *text = "{\"name\":\"a\",\"job\":{\"ranks\":4,\"priority\":1,\"after_ok\":[7],"
                     "\"time_limit_s\":60}}";
  jobspec_opts o = {.name = "b", .ranks = "2", .priority = "5", .after = "10,11",
                    .signal = "TERM", .max_failures = "0", .gpus_per_rank = "2", .nodes = "1"};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build(text, &o, &err);
  CHECKF(s, "%s", err.msg);
  if (!s) return;
  CHECK(!strcmp(s->name, "b") && s->resources->ranks == 2 && s->priority == 5);
  CHECK(s->resources->gpus_per_rank == 2 && s->resources->nodes == 1);
  CHECK(s->time_limit_s == 60); /* not overridden: the file's */
  CHECK(s->n_dependencies == 2 && s->dependencies[0]->job_id == 10 &&
        s->dependencies[1]->job_id == 11);
  CHECK(s->warn_signal == SIGTERM && s->warn_before_s == 60); /* sbatch's default */
  CHECK(s->max_failures == 0 && s->max_failures_set);
  jobspec_free(s);

  jobspec_opts o2 = {.signal = "sigusr2@120", .after_any = "3", .time_limit = "90"};
  s = build(text, &o2, &err);
  CHECKF(s, "%s", err.msg);
  if (!s) return;
  CHECK(s->warn_signal == SIGUSR2 && s->warn_before_s == 120 && s->time_limit_s == 90);
  /* after_ok from the file, after_any from the flag */
  CHECK(s->n_dependencies == 2 && s->dependencies[0]->job_id == 7 &&
        s->dependencies[1]->type == FOIL__V1__DEPENDENCY_TYPE__AFTER_ANY);
  jobspec_free(s);
}

static void test_command(void) {
  char *argv[] = {"/bin/sh", "-c", "echo hi", NULL};
  jobspec_opts o = {.argc = 3, .argv = argv, .ranks = "2"};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build(NULL, &o, &err);
  CHECKF(s, "%s", err.msg);
  if (!s) return;
  CHECK(!strcmp(s->kind, "command") && !strcmp(s->name, "sh") && s->spec_json[0] == 0);
  CHECK(s->n_argv == 3 && !strcmp(s->argv[0], "/bin/sh") && !strcmp(s->argv[2], "echo hi"));
  CHECK(s->resources->ranks == 2);
  jobspec_free(s);

  /* a file of kind "command" carries argv itself */
  jobspec_opts none = {0};
  s = build("{\"kind\":\"command\",\"argv\":[\"true\"],\"job\":{\"priority\":2}}", &none, &err);
  CHECKF(s, "%s", err.msg);
  if (!s) return;
  CHECK(!strcmp(s->kind, "command") && s->n_argv == 1 && !strcmp(s->argv[0], "true") &&
        !strcmp(s->name, "true") && s->priority == 2);
  jobspec_free(s);
}

static void test_refusals(void) {
  char *argv[] = {"true", NULL};
  struct {
    const char *text;
    jobspec_opts o;
    const char *expect;
  } bad[] = {
      {"{\"steps\":", {0}, "spec.json is not a JSON object"},
      {"[1]", {0}, "not a JSON object"},
      {"{\"job\":{\"rank\":2}}", {0}, "job.rank is not a job key"},
      {"{\"job\":{\"ranks\":-2}}", {0}, "job.ranks must be an integer 1..100000, got -2"},
      {"{\"job\":{\"ranks\":1.5}}", {0}, "job.ranks must be an integer"},
      {"{\"job\":{\"ranks\":\"2\"}}", {0}, "job.ranks must be an integer"},
      {"{\"job\":{\"max_failures\":-2}}", {0}, "job.max_failures must be an integer -1.."},
      {"{\"job\":[1]}", {0}, "\"job\" must be an object"},
      {"{\"job\":{\"after_ok\":7}}", {0}, "job.after_ok must be an array"},
      {"{\"job\":{\"after_ok\":[0]}}", {0}, "job.after_ok must be an integer 1.."},
      {"{\"job\":{\"warn_signal\":\"USR9\"}}", {0}, "job.warn_signal: signal 'USR9'"},
      {"{\"name\":\"has space\"}", {0}, "\"name\" must be 1..128 characters"},
      {"{\"kind\":7}", {0}, "\"kind\" must be a job kind"},
      {"{\"kind\":\"command\"}", {0}, "needs a program"},
      {"{\"argv\":[\"x\"]}", {0}, "\"argv\" is for jobs of kind \"command\""},
      {"{}", {.ranks = "-1"}, "--ranks must be an integer 1..100000, got '-1'"},
      {"{}", {.ranks = "2x"}, "--ranks must be an integer"},
      {"{}", {.after = "3,,4"}, "--after takes job ids separated by commas"},
      {"{}", {.after = "-3"}, "--after takes job ids"},
      {"{}", {.signal = "NOPE@10"}, "--signal SIG[@SECONDS]: signal 'NOPE'"},
      {"{}", {.signal = "USR1@x"}, "SECONDS must be an integer"},
      {"{}", {.time_limit = "-5"}, "--time-limit must be an integer 0.."},
      {"{}", {.name = "a/b"}, "--name must be"},
      {"{}", {.argc = 1, .argv = argv}, "not both"},
      {NULL, {0}, "give a spec file"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    foil_err err = {0};
    Foil__V1__JobSpec *s = NULL;
    int rc = jobspec_build(&s, bad[i].text, "spec.json", &bad[i].o, &err);
    CHECKF(rc == FOIL_EINVAL && !s, "case %zu accepted", i);
    CHECKF(strstr(err.msg, bad[i].expect), "case %zu: got \"%s\", want \"%s\"", i, err.msg,
           bad[i].expect);
    jobspec_free(s);
  }
}

static void test_submission_id(void) {
  char a[64], b[64];
  foil_err err = {0};
  CHECK(jobspec_submission_id(a, sizeof a, &err) == 0 && jobspec_submission_id(b, sizeof b, &err) == 0);
  CHECK(strlen(a) == 32 && strspn(a, "0123456789abcdef") == 32 && strcmp(a, b));
}

int main(void) {
  RUN(test_file_job_keys);
  RUN(test_defaults);
  RUN(test_flags_override);
  RUN(test_command);
  RUN(test_refusals);
  RUN(test_submission_id);
  TEST_EXIT();
}
