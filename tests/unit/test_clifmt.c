/* test_clifmt.c — what the job commands print and return: signal names,
 * durations and ETAs, job states and their exit statuses, the progress
 * line of `foil watch`, replies as JSON. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <signal.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/follow.h"
#include "cli/jobstate.h"
#include "cli/pbjson.h"
#include "cli/signame.h"
#include "cli/timefmt.h"
#include "tests/test.h"

static void test_signals(void) {
  int s = 0;
  foil_err err = {0};
  CHECK(signame_parse("USR1", &s, &err) == 0 && s == SIGUSR1);
  CHECK(signame_parse("sigterm", &s, &err) == 0 && s == SIGTERM);
  CHECK(signame_parse("SIGKILL", &s, &err) == 0 && s == SIGKILL);
  CHECK(signame_parse("int", &s, &err) == 0 && s == SIGINT);
  CHECK(signame_parse("10", &s, &err) == 0 && s == 10);
  CHECK(signame_parse("0", &s, &err) == FOIL_EINVAL);
  CHECK(signame_parse("65", &s, &err) == FOIL_EINVAL);
  CHECK(signame_parse("9x", &s, &err) == FOIL_EINVAL);
  CHECK(signame_parse("", &s, &err) == FOIL_EINVAL);
  CHECK(signame_parse("SIG", &s, &err) == FOIL_EINVAL);
  CHECK(signame_parse("BOGUS", &s, &err) == FOIL_EINVAL && strstr(err.msg, "'BOGUS'"));
  CHECK(!strcmp(signame_name(SIGUSR2), "USR2") && !strcmp(signame_name(SIGTERM), "TERM"));
  CHECK(signame_name(63) == NULL);
}

static void test_times(void) {
  char b[32];
  CHECK(!strcmp(timefmt_duration(0, b, sizeof b), "0:00"));
  CHECK(!strcmp(timefmt_duration(7.9, b, sizeof b), "0:07"));
  CHECK(!strcmp(timefmt_duration(754, b, sizeof b), "12:34"));
  CHECK(!strcmp(timefmt_duration(3723, b, sizeof b), "1:02:03"));
  CHECK(!strcmp(timefmt_duration(2 * 86400 + 3 * 3600 + 4 * 60 + 5, b, sizeof b), "2-03:04:05"));
  CHECK(!strcmp(timefmt_duration(-1, b, sizeof b), "-"));
  CHECK(!strcmp(timefmt_duration(NAN, b, sizeof b), "-"));
  CHECK(!strcmp(timefmt_clock(0, b, sizeof b), "-"));
  /* checked before the conversion to time_t, which is undefined for these
   * (UBSan's float-cast-overflow in the sanitizer build) */
  CHECK(!strcmp(timefmt_clock(INFINITY, b, sizeof b), "-"));
  CHECK(!strcmp(timefmt_clock(NAN, b, sizeof b), "-"));
  CHECK(!strcmp(timefmt_clock(1e300, b, sizeof b), "-"));
  CHECK(!strcmp(timefmt_clock(1e19, b, sizeof b), "-"));
  CHECK(!strcmp(timefmt_clock(-1e300, b, sizeof b), "-"));
  CHECK(strlen(timefmt_clock(1764345901, b, sizeof b)) == 19 && b[4] == '-' && b[10] == 'T');
  CHECK(!strcmp(timefmt_ago(1000, 997.5, b, sizeof b), "2s ago"));
  CHECK(!strcmp(timefmt_ago(1000, 1001, b, sizeof b), "0s ago"));
  CHECK(!strcmp(timefmt_ago(10000, 10000 - 300, b, sizeof b), "5m ago"));
  CHECK(!strcmp(timefmt_ago(100000, 100000 - 7300, b, sizeof b), "2h ago"));
  CHECK(!strcmp(timefmt_ago(1000, 0, b, sizeof b), "-"));
  CHECK(timefmt_eta(450, 1000, 10) == 55);
  CHECK(timefmt_eta(1000, 1000, 0) == 0);
  CHECK(timefmt_eta(450, 1000, 0) == -1);
  CHECK(timefmt_eta(450, 0, 10) == -1);
  CHECK(timefmt_eta(NAN, 1000, 10) == -1);
}

static void test_states(void) {
  CHECK(jobstate_exit_code(FOIL__V1__JOB_STATE__JOB_COMPLETED) == 0);
  CHECK(jobstate_exit_code(FOIL__V1__JOB_STATE__JOB_FAILED) == 20);
  CHECK(jobstate_exit_code(FOIL__V1__JOB_STATE__JOB_CANCELLED) == 21);
  CHECK(jobstate_exit_code(FOIL__V1__JOB_STATE__JOB_TIMEOUT) == 22);
  CHECK(jobstate_exit_code(FOIL__V1__JOB_STATE__JOB_NODE_FAIL) == 23);
  int notfinal[] = {FOIL__V1__JOB_STATE__JOB_PENDING, FOIL__V1__JOB_STATE__JOB_RUNNING,
                    FOIL__V1__JOB_STATE__JOB_COMPLETING, FOIL__V1__JOB_STATE__JOB_REQUEUED};
  for (size_t i = 0; i < sizeof notfinal / sizeof notfinal[0]; i++)
    CHECK(jobstate_exit_code(notfinal[i]) == -1 && !jobstate_is_final(notfinal[i]));
  /* a state this CLI does not know (a newer coordinator's) is final, exit
   * 11: `foil watch` and `submit --wait` must not poll it forever */
  int unknown[] = {FOIL__V1__JOB_STATE__JOB_STATE_UNSPECIFIED, 10, 99};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
    CHECK(jobstate_is_final(unknown[i]) && jobstate_exit_code(unknown[i]) == 11);
  Foil__V1__Job odd = FOIL__V1__JOB__INIT;
  odd.id = 3;
  odd.state = 10;
  char fb[256];
  follow_final(&odd, fb, sizeof fb);
  CHECKF(strstr(fb, "job 3 UNKNOWN") && strstr(fb, "state 10"), "%s", fb);
  CHECK(jobstate_is_final(FOIL__V1__JOB_STATE__JOB_NODE_FAIL));
  CHECK(!strcmp(jobstate_name(FOIL__V1__JOB_STATE__JOB_NODE_FAIL), "NODE_FAIL"));
  CHECK(!strcmp(jobstate_name(42), "UNKNOWN"));
  CHECK(jobstate_parse("running") == FOIL__V1__JOB_STATE__JOB_RUNNING);
  CHECK(jobstate_parse("JOB_PENDING") == FOIL__V1__JOB_STATE__JOB_PENDING);
  CHECK(jobstate_parse("node_fail") == FOIL__V1__JOB_STATE__JOB_NODE_FAIL);
  CHECK(jobstate_parse("done") == 0);
  /* squeue's short codes */
  static const struct {
    const char *code;
    int state;
  } codes[] = {{"PD", FOIL__V1__JOB_STATE__JOB_PENDING},    {"R", FOIL__V1__JOB_STATE__JOB_RUNNING},
               {"CG", FOIL__V1__JOB_STATE__JOB_COMPLETING}, {"CD", FOIL__V1__JOB_STATE__JOB_COMPLETED},
               {"F", FOIL__V1__JOB_STATE__JOB_FAILED},      {"CA", FOIL__V1__JOB_STATE__JOB_CANCELLED},
               {"TO", FOIL__V1__JOB_STATE__JOB_TIMEOUT},    {"NF", FOIL__V1__JOB_STATE__JOB_NODE_FAIL},
               {"rq", FOIL__V1__JOB_STATE__JOB_REQUEUED},   {"pd", FOIL__V1__JOB_STATE__JOB_PENDING}};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    CHECKF(jobstate_parse(codes[i].code) == codes[i].state, "%s", codes[i].code);
  CHECK(jobstate_parse("P") == 0 && jobstate_parse("") == 0);
  /* --state lists: a repeated flag adds (it used to replace), duplicates once */
  int st[16], n = 0;
  foil_err err = {0};
  CHECK(jobstate_parse_list("--state", "RUNNING", st, &n, 16, &err) == 0 && n == 1);
  CHECK(jobstate_parse_list("--state", "PD,running", st, &n, 16, &err) == 0 && n == 2);
  CHECK(st[0] == FOIL__V1__JOB_STATE__JOB_RUNNING && st[1] == FOIL__V1__JOB_STATE__JOB_PENDING);
  CHECK(jobstate_parse_list("--state", "CD,F", st, &n, 16, &err) == 0 && n == 4);
  CHECK(jobstate_parse_list("--state", "nope", st, &n, 16, &err) == FOIL_EINVAL &&
        strstr(err.msg, "--state: 'nope' is not a job state") && n == 4);
  CHECK(jobstate_parse_list("--state", ",", st, &n, 16, &err) == FOIL_EINVAL &&
        strstr(err.msg, "--state needs a state name"));
  /* ELAPSED: the current attempt's; "-" while waiting, even with the start
   * of a failed attempt behind a REQUEUED job (it used to keep counting) */
  CHECK(jobstate_elapsed(FOIL__V1__JOB_STATE__JOB_REQUEUED, 100, 0, 200) < 0);
  CHECK(jobstate_elapsed(FOIL__V1__JOB_STATE__JOB_PENDING, 0, 0, 200) < 0);
  CHECK(jobstate_elapsed(FOIL__V1__JOB_STATE__JOB_RUNNING, 150, 0, 200) == 50);
  CHECK(jobstate_elapsed(FOIL__V1__JOB_STATE__JOB_COMPLETED, 150, 180, 200) == 30);
  CHECK(jobstate_elapsed(FOIL__V1__JOB_STATE__JOB_CANCELLED, 0, 180, 200) < 0);
  /* the job statuses stay clear of the error statuses (0..12) */
  CHECK(JOBSTATE_EXIT_FAILED > 12);
}

/* `foil status` shows a command as it can be pasted back into a shell */
static void test_shell_quote(void) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"sh", "sh"},
      {"exit 3", "'exit 3'"},
      {"", "''"},
      {"it's", "'it'\\''s'"},
      {"a;b", "'a;b'"},
      {"$HOME", "'$HOME'"},
      {"/usr/bin/python3.11", "/usr/bin/python3.11"},
      {"--opt=a,b:c@d%e+f", "--opt=a,b:c@d%e+f"},
      {"*.txt", "'*.txt'"},
      {"two\nlines", "'two\nlines'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_shell_quote(f, cases[i].in);
    fclose(f);
    CHECKF(!strcmp(buf, cases[i].out), "%s -> %s, want %s", cases[i].in, buf, cases[i].out);
    free(buf);
  }
}

static void test_render(void) {
  Foil__V1__Job job = FOIL__V1__JOB__INIT;
  Foil__V1__Progress p = FOIL__V1__PROGRESS__INIT;
  job.id = 7;
  job.state = FOIL__V1__JOB_STATE__JOB_RUNNING;
  job.progress = &p;
  p.value = 450;
  p.total = 1000;
  p.metrics_json = "{\"lr\":0.001,\"loss\":0.43125,\"pairs_per_s\":845.2}";
  char b[512];
  follow_render(&job, 10, 0, b, sizeof b);
  CHECKF(!strcmp(b, "job 7 RUNNING 450/1000 45% loss 0.4313 pairs_per_s 845 eta 0:55"), "%s", b);
  follow_render(&job, 10, 10, b, sizeof b);
  CHECKF(!strcmp(b, "job 7 RUNNING [####......] 450/1000 45% loss 0.4313 845 pairs/s ETA 0:55"),
         "%s", b);
  p.metrics_json = "{\"tokens_per_s\":12}";
  follow_render(&job, 0, 0, b, sizeof b);
  CHECKF(!strcmp(b, "job 7 RUNNING 450/1000 45% tokens_per_s 12"), "%s", b);
  job.state = FOIL__V1__JOB_STATE__JOB_PENDING;
  job.reason = "Dependency";
  p.value = p.total = 0;
  p.metrics_json = "";
  follow_render(&job, 0, 0, b, sizeof b);
  CHECKF(!strcmp(b, "job 7 PENDING (Dependency)"), "%s", b);
  job.state = FOIL__V1__JOB_STATE__JOB_FAILED;
  job.reason = "";
  job.exit_code = 3;
  follow_final(&job, b, sizeof b);
  CHECKF(!strcmp(b, "job 7 FAILED exit 3"), "%s", b);
}

static void test_json(void) {
  Foil__V1__Job job = FOIL__V1__JOB__INIT;
  Foil__V1__JobSpec spec = FOIL__V1__JOB_SPEC__INIT;
  Foil__V1__Attempt a = FOIL__V1__ATTEMPT__INIT, *as[] = {&a};
  char *argv[] = {"echo", "hi"};
  job.id = 12;
  job.state = FOIL__V1__JOB_STATE__JOB_COMPLETED;
  job.spec = &spec;
  spec.name = "n";
  spec.argv = argv;
  spec.n_argv = 2;
  job.attempts = as;
  job.n_attempts = 1;
  a.token = 1ull << 40;
  a.start_time = 1.5;
  cJSON *j = pbjson_from_message(&job.base);
  CHECK(j != NULL);
  if (!j) return;
  CHECK(cJSON_GetObjectItem(j, "id")->valuedouble == 12);
  CHECK(!strcmp(cJSON_GetObjectItem(j, "state")->valuestring, "JOB_COMPLETED"));
  const cJSON *s = cJSON_GetObjectItem(j, "spec");
  CHECK(s && !strcmp(cJSON_GetObjectItem(s, "name")->valuestring, "n"));
  CHECK(s && cJSON_GetArraySize(cJSON_GetObjectItem(s, "argv")) == 2);
  CHECK(s && !cJSON_GetObjectItem(s, "resources")); /* unset submessage left out */
  const cJSON *at = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "attempts"), 0);
  CHECK(at && cJSON_GetObjectItem(at, "token")->valuedouble == (double)(1ull << 40));
  CHECK(at && cJSON_GetObjectItem(at, "start_time")->valuedouble == 1.5);
  CHECK(!cJSON_GetObjectItem(j, "progress"));
  cJSON_Delete(j);

  /* oneof: only the member that is set; bytes as base64 */
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  Foil__V1__LogsReply l = FOIL__V1__LOGS_REPLY__INIT;
  r.body_case = FOIL__V1__REPLY__BODY_LOGS;
  r.logs = &l;
  l.data.data = (uint8_t *)"hello";
  l.data.len = 5;
  j = pbjson_from_message(&r.base);
  CHECK(j && cJSON_GetObjectItem(j, "logs") && !cJSON_GetObjectItem(j, "job") &&
        !cJSON_GetObjectItem(j, "error"));
  const cJSON *d = j ? cJSON_GetObjectItem(cJSON_GetObjectItem(j, "logs"), "data") : NULL;
  CHECK(d && !strcmp(d->valuestring, "aGVsbG8="));
  cJSON_Delete(j);
}

int main(void) {
  RUN(test_signals);
  RUN(test_times);
  RUN(test_states);
  RUN(test_shell_quote);
  RUN(test_render);
  RUN(test_json);
  TEST_EXIT();
}
