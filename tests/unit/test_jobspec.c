/* test_jobspec.c — `foil submit`'s spec file + flags -> foil.v1.JobSpec:
 * the "job" keys, flags over the file, the kind "command", and refusals
 * that name the key or flag. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>

#include "cli/jobspec.h"
#include "common/fileio.h"
#include "tests/test.h"
#include "worker/run/spec.h"

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
                     "\"time_limit_s\":600}}";
  jobspec_opts o = {.name = "b", .ranks = "2", .priority = "5", .after = "10,11",
                    .signal = "TERM", .max_failures = "0", .gpus_per_rank = "2", .nodes = "1"};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build(text, &o, &err);
  CHECKF(s, "%s", err.msg);
  if (!s) return;
  CHECK(!strcmp(s->name, "b") && s->resources->ranks == 2 && s->priority == 5);
  CHECK(s->resources->gpus_per_rank == 2 && s->resources->nodes == 1);
  CHECK(s->time_limit_s == 600); /* not overridden: the file's */
  CHECK(s->n_dependencies == 2 && s->dependencies[0]->job_id == 10 &&
        s->dependencies[1]->job_id == 11);
  CHECK(s->warn_signal == SIGTERM && s->warn_before_s == 60); /* sbatch's default */
  CHECK(s->max_failures == 0 && s->max_failures_set);
  jobspec_free(s);

  jobspec_opts o2 = {.signal = "sigusr2@120", .after_any = "3", .time_limit = "190"};
  s = build(text, &o2, &err);
  CHECKF(s, "%s", err.msg);
  if (!s) return;
  CHECK(s->warn_signal == SIGUSR2 && s->warn_before_s == 120 && s->time_limit_s == 190);
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
      {"{\"kind\":\"pretrain\",\"argv\":[\"x\"]}", {0}, "\"argv\" is for jobs of kind \"command\""},
      {"{\"argv\":[\"x\"]}", {0}, "add \"kind\": \"command\""},
      {"{}", {.ranks = "-1"}, "--ranks must be an integer 1..100000, got '-1'"},
      {"{}", {.ranks = "2x"}, "--ranks must be an integer"},
      {"{}", {.after = "3,,4"}, "--after takes job ids (1..9007199254740991) separated by commas"},
      {"{}", {.after = "-3"}, "--after takes job ids"},
      {"{}", {.signal = "NOPE@10"}, "--signal SIG[@SECONDS]: signal 'NOPE'"},
      {"{}", {.signal = "USR1@x"}, "SECONDS must be an integer"},
      {"{}", {.time_limit = "-5"}, "--time-limit must be SECONDS or as sbatch --time MM:SS"},
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

/* --time-limit: a bare number is seconds (foil's documented unit), and
 * sbatch's --time forms are taken too (#22) */
static void test_time_limit(void) {
  static const struct {
    const char *in;
    long want; /* -1: refused */
  } cases[] = {
      {"90", 90},           {"0", 0},              {"1:00:00", 3600},   {"05:30", 330},
      {"90:00", 5400},      {"2-0", 172800},       {"1-12", 129600},    {"1-02:03", 93780},
      {"1-02:03:04", 93784}, {"365-00:00:00", 31536000}, {"31536000", 31536000},
      {"365-00:00:01", -1}, {"31536001", -1},      {"1:60", -1},        {"1:00:60", -1},
      {"1-24", -1},         {"1:2:3:4", -1},       {"-5", -1},          {"+5", -1},
      {" 5", -1},           {"5 ", -1},            {"1.5", -1},         {"", -1},
      {"1-", -1},           {":30", -1},           {"1:", -1},          {"1-2-3", -1},
      {"2h", -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    jobspec_opts o = {.time_limit = cases[i].in};
    foil_err err = {0};
    Foil__V1__JobSpec *s = NULL;
    int rc = jobspec_build(&s, "{}", "spec.json", &o, &err);
    if (cases[i].want < 0) {
      CHECKF(rc == FOIL_EINVAL && strstr(err.msg, "--time-limit") && strstr(err.msg, cases[i].in),
             "'%s' accepted (%s)", cases[i].in, err.msg);
    } else {
      CHECKF(rc == 0 && s && s->time_limit_s == (uint32_t)cases[i].want, "'%s': %s", cases[i].in,
             err.msg);
    }
    jobspec_free(s);
  }
}

/* The warning signal's options that used to be dropped or accepted without
 * effect (#14): warn_before_s without a signal, a signal without a time
 * limit, and the implicit 60 s against a shorter limit, whose message now
 * names what the user gave. */
static void test_warning_signal(void) {
  struct {
    const char *text;
    jobspec_opts o;
    const char *expect;
  } bad[] = {
      {"{\"job\":{\"warn_before_s\":30}}", {0}, "job.warn_before_s is when to send job.warn_signal"},
      {"{}", {.signal = "USR1@10"}, "--signal is sent before the time limit, and the job has none"},
      {"{\"job\":{\"warn_signal\":\"USR1\"}}", {0}, "job.warn_signal is sent before the time limit"},
      {"{}", {.signal = "USR1", .time_limit = "30"},
       "--signal without SECONDS means 60 s before the time limit, and the limit (--time-limit) is 30 s: "
       "use SIG@N with N < 30"},
      {"{}", {.signal = "USR1@30", .time_limit = "30"}, "sent 30 s before the time limit"},
      {"{\"job\":{\"time_limit_s\":600,\"warn_signal\":\"USR1\"}}", {.time_limit = "0"},
       "job.warn_signal is sent before the time limit, and the job has none"},
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
  /* what is fine: a signal with a limit above its lead, from either side */
  jobspec_opts ok1 = {.signal = "USR1@10", .time_limit = "0:30"};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build("{}", &ok1, &err);
  CHECKF(s && s->warn_before_s == 10 && s->time_limit_s == 30, "%s", err.msg);
  jobspec_free(s);
  jobspec_opts ok2 = {.time_limit = "2:00"};
  s = build("{\"job\":{\"warn_signal\":\"USR1\"}}", &ok2, &err);
  CHECKF(s && s->warn_before_s == 60 && s->time_limit_s == 120, "%s", err.msg);
  jobspec_free(s);
}

/* A spec file without "kind" (#6): a pretrain spec when its keys are
 * pretrain's, else refused naming the kind it looks like. */
static void test_no_kind(void) {
  struct {
    const char *text;
    const char *expect; /* NULL: accepted as pretrain */
  } cases[] = {
      {"{\"steps\":5,\"model\":{},\"data\":{\"dataset\":\"d\"},\"job\":{\"ranks\":2}}", NULL},
      /* a refresh spec as worker/run/refresh.h documents it (no kind) */
      {"{\"name\":\"wordnet\",\"checkpoint\":\"jobs/1\",\"corpus\":{\"dataset\":\"wordnet\"},"
       "\"dtype\":\"float16\"}",
       "\"corpus\" is not a pretrain key; it looks like a refresh spec: add \"kind\": \"refresh\""},
      {"{\"model\":\"jobs/3\",\"prompts\":{\"dataset\":\"lm\"},\"methods\":[{\"method\":\"greedy\"}]}",
       "add \"kind\": \"decode-eval\""},
      {"{\"index\":\"wordnet\",\"bind\":\"tcp://127.0.0.1:7430\"}", "add \"kind\": \"serve\""},
      /* keys two kinds share */
      {"{\"batch\":64,\"threads\":2}", "it looks like a refresh or decode-eval spec: add \"kind\""},
      /* a misspelt pretrain key is named, not taken for another kind */
      {"{\"steps\":5,\"batch_size\":32}",
       "\"batch_size\" is not a pretrain key (nor are its keys all those of another kind)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    jobspec_opts o = {0};
    foil_err err = {0};
    Foil__V1__JobSpec *s = NULL;
    int rc = jobspec_build(&s, cases[i].text, "spec.json", &o, &err);
    if (!cases[i].expect) {
      CHECKF(rc == 0 && s && !strcmp(s->kind, "pretrain"), "case %zu: %s", i, err.msg);
    } else {
      CHECKF(rc == FOIL_EINVAL && !s, "case %zu accepted", i);
      CHECKF(strstr(err.msg, cases[i].expect) && strstr(err.msg, "spec.json has no \"kind\""),
             "case %zu: got \"%s\", want \"%s\"", i, err.msg, cases[i].expect);
    }
    jobspec_free(s);
  }
  /* a file that names its kind is sent as it is (foil-run checks the rest) */
  jobspec_opts o = {0};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build("{\"kind\":\"refresh\",\"name\":\"w\",\"corpus\":{\"dataset\":\"w\"}}", &o, &err);
  CHECKF(s && !strcmp(s->kind, "refresh") && !strcmp(s->name, "w"), "%s", err.msg);
  jobspec_free(s);
}

/* Every example spec minus its "kind" is either accepted as pretrain (when
 * it is one) or refused naming its own kind: the CLI's key lists agree with
 * the specs the checkers take. */
static void test_examples_kind(void) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/examples", FOIL_SOURCE_DIR);
  DIR *d = opendir(dir);
  CHECKF(d, "%s", dir);
  int seen = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".json")) continue;
    seen++;
    const char *name = e->d_name;
    char path[2048], *text = NULL;
    size_t len = 0;
    foil_err err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECKF(foil_read_file(path, &text, &len, &err) == 0, "%s", err.msg);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "kind");
    CHECKF(cJSON_IsString(k), "%s has a kind", name);
    char kind[64];
    snprintf(kind, sizeof kind, "%s", cJSON_IsString(k) ? k->valuestring : "?");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "kind");
    char *bare = root ? cJSON_PrintUnformatted(root) : NULL;
    Foil__V1__JobSpec *s = NULL;
    jobspec_opts o = {0};
    int rc = bare ? jobspec_build(&s, bare, name, &o, &err) : -1;
    if (!strcmp(kind, "pretrain")) {
      CHECKF(rc == 0 && s && !strcmp(s->kind, "pretrain"), "%s: %s", name, err.msg);
    } else {
      char want[96];
      snprintf(want, sizeof want, "add \"kind\": \"%s\"", kind);
      CHECKF(rc == FOIL_EINVAL && strstr(err.msg, want), "%s: got \"%s\", want \"%s\"", name,
             err.msg, want);
    }
    jobspec_free(s);
    free(bare);
    cJSON_Delete(root);
    free(text);
  }
  if (d) closedir(d);
  CHECK(seen >= 9);
}

/* The pretrain key list that decides "no kind means pretrain" holds only
 * keys spec_parse takes: none of them is refused as unknown. */
static void test_pretrain_keys_known(void) {
  static const char *const keys[] = {"kind", "name", "seed", "model", "data", "loss",
                                     "batch_per_rank", "micro_batch", "steps", "optimizer",
                                     "checkpoint", "eval", "log_every_steps", "threads", "device",
                                     "precision", "refresh", "job", "init_from"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char text[128];
    snprintf(text, sizeof text, "{\"%s\": null}", keys[i]);
    jobspec_opts o = {0};
    foil_err err = {0};
    Foil__V1__JobSpec *s = NULL;
    jobspec_build(&s, text, "spec.json", &o, &err);
    CHECKF(!strstr(err.msg, "is not a pretrain key"), "%s: %s", keys[i], err.msg);
    jobspec_free(s);
    spec sp;
    err.msg[0] = 0;
    if (!spec_parse(&sp, text, &err)) spec_free(&sp);
    CHECKF(!strstr(err.msg, "unknown key"), "spec_parse refuses %s: %s", keys[i], err.msg);
  }
}

/* Duplicate keys are refused, at any depth (#33): cJSON takes the first,
 * Python's json and jq the last. */
static void test_duplicate_keys(void) {
  struct {
    const char *text;
    const char *expect;
  } bad[] = {
      {"{\"kind\":\"command\",\"argv\":[\"true\"],\"job\":{\"ranks\":1,\"ranks\":4}}", "\"job.ranks\" appears twice"},
      {"{\"steps\":10,\"steps\":20}", "\"steps\" appears twice"},
      {"{\"kind\":\"pretrain\",\"kind\":\"command\",\"argv\":[\"x\"]}", "\"kind\" appears twice"},
      {"{\"model\":{\"d_model\":8,\"n_heads\":2,\"d_model\":16}}", "\"model.d_model\" appears twice"},
      {"{\"kind\":\"decode-eval\",\"methods\":[{\"method\":\"greedy\"},{\"top_k\":1,\"top_k\":2}]}",
       "\"methods[1].top_k\" appears twice"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jobspec_opts o = {0};
    foil_err err = {0};
    Foil__V1__JobSpec *s = NULL;
    int rc = jobspec_build(&s, bad[i].text, "spec.json", &o, &err);
    CHECKF(rc == FOIL_EINVAL && !s, "case %zu accepted", i);
    CHECKF(strstr(err.msg, bad[i].expect), "case %zu: got \"%s\", want \"%s\"", i, err.msg,
           bad[i].expect);
    jobspec_free(s);
  }
  /* the same key in two objects is not a duplicate */
  jobspec_opts o = {0};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build("{\"name\":\"a\",\"model\":{\"name\":1},\"job\":{\"ranks\":1}}", &o, &err);
  CHECKF(s, "%s", err.msg);
  jobspec_free(s);
}

/* Numbers by flag: digits only, and job ids within the file form's bound
 * (#27). */
static void test_flag_numbers(void) {
  struct {
    jobspec_opts o;
    const char *expect;
  } bad[] = {
      {{.ranks = " 2"}, "--ranks must be an integer 1..100000, got ' 2'"},
      {{.ranks = "+2"}, "--ranks must be an integer"},
      {{.priority = " -3"}, "--priority must be an integer"},
      {{.after = "9007199254740992"}, "--after takes job ids (1..9007199254740991)"},
      {{.after = "18446744073709551615"}, "--after takes job ids"},
      {{.after = " 7"}, "--after takes job ids"},
      {{.after_any = "+7"}, "--after-any takes job ids"},
      {{.after = "7, 8"}, "--after takes job ids"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    foil_err err = {0};
    Foil__V1__JobSpec *s = NULL;
    int rc = jobspec_build(&s, "{}", "spec.json", &bad[i].o, &err);
    CHECKF(rc == FOIL_EINVAL && !s, "case %zu accepted", i);
    CHECKF(strstr(err.msg, bad[i].expect), "case %zu: got \"%s\", want \"%s\"", i, err.msg,
           bad[i].expect);
    jobspec_free(s);
  }
  jobspec_opts o = {.after = "9007199254740991", .priority = "-3"};
  foil_err err = {0};
  Foil__V1__JobSpec *s = build("{}", &o, &err);
  CHECKF(s && s->n_dependencies == 1 && s->dependencies[0]->job_id == 9007199254740991ULL &&
         s->priority == -3, "%s", err.msg);
  jobspec_free(s);
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
  RUN(test_time_limit);
  RUN(test_warning_signal);
  RUN(test_no_kind);
  RUN(test_examples_kind);
  RUN(test_pretrain_keys_known);
  RUN(test_duplicate_keys);
  RUN(test_flag_numbers);
  RUN(test_submission_id);
  TEST_EXIT();
}
