/* test_launch.c — the head worker's command lines: --host merging, mpirun,
 * srun and direct launches, the environment, log descriptions. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"
#include "worker/agent/launch.h"

static Foil__V1__Placement P[4];
static Foil__V1__Placement *PP[4];

static void place(int i, const char *worker, const char *host, unsigned ranks) {
  foil__v1__placement__init(&P[i]);
  P[i].worker = (char *)worker, P[i].host = (char *)host, P[i].ranks = ranks;
  PP[i] = &P[i];
}

static char *joined(char **v) {
  static char buf[4096];
  buf[0] = 0;
  for (char **p = v; p && *p; p++) {
    if (p != v) strcat(buf, " ");
    strcat(buf, *p);
  }
  return buf;
}

static void test_hosts(void) {
  place(0, "w2", "nodeB", 2);
  place(1, "w1", "nodeA", 1);
  place(2, "w3", "nodeB", 3);
  place(3, "w4", "", 1); /* no host: the worker's name */
  launch_opts o = {.placement = PP, .nplacement = 4};
  char out[256];
  CHECK(launch_ranks(&o) == 7);
  CHECK(launch_hosts(&o, 1, out, sizeof out, NULL) == FOIL_OK);
  CHECKF(!strcmp(out, "nodeB:5,nodeA:1,w4:1"), "%s", out);
  CHECK(launch_hosts(&o, 0, out, sizeof out, NULL) == FOIL_OK);
  CHECKF(!strcmp(out, "nodeB,nodeA,w4"), "%s", out);
  char small[8];
  foil_err err = {0};
  CHECK(launch_hosts(&o, 1, small, sizeof small, &err) == FOIL_EINVAL);
  launch_opts none = {.self_host = "me"};
  CHECK(launch_ranks(&none) == 1);
  CHECK(launch_hosts(&none, 1, out, sizeof out, NULL) == FOIL_OK && !strcmp(out, "me:1"));
}

static void test_pretrain(void) {
  place(0, "a", "h1", 2);
  place(1, "b", "h2", 2);
  launch_opts o = {.kind = "pretrain", .placement = PP, .nplacement = 2, .spec_path = "/j/7/spec.json",
                   .root = "/r", .job_dir = "/j/7", .foil_run = "/bin/foil-run", .mpirun = "mpirun",
                   .mpirun_args = "  --oversubscribe --mca btl self,vader "};
  char **v = NULL;
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  const char *want =
      "mpirun -np 4 --host h1:2,h2:2 --bind-to none --oversubscribe --mca btl self,vader -x FOIL_PROGRESS -x FOIL_PROGRESS_KEY -x FOIL_ATTEMPT_TOKEN "
      "-x FOIL_JOB_DIR -x FOIL_JOB_ID -x FOIL_ROOT -x FOIL_ATTEMPT -x FOIL_RESTART_COUNT /bin/foil-run pretrain "
      "/j/7/spec.json --root /r --job-dir /j/7 --quiet";
  CHECKF(!strcmp(joined(v), want), "%s", joined(v));
  launch_strv_free(&v);
  CHECK(v == NULL);
  o.slurm = 1;
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(v), "srun --ntasks=4 --nodelist=h1,h2 --kill-on-bad-exit=1 /bin/foil-run pretrain "
                            "/j/7/spec.json --root /r --job-dir /j/7 --quiet"),
         "%s", joined(v));
  launch_strv_free(&v);
  /* refresh: the same line, its kind in place of pretrain's */
  o.kind = "refresh";
  CHECK(launch_is_foil_run("refresh") && launch_is_foil_run("pretrain") && !launch_is_foil_run("command"));
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(v), "srun --ntasks=4 --nodelist=h1,h2 --kill-on-bad-exit=1 /bin/foil-run refresh "
                            "/j/7/spec.json --root /r --job-dir /j/7 --quiet"),
         "%s", joined(v));
  launch_strv_free(&v);
  /* decode-eval: the same again */
  o.kind = "decode-eval";
  CHECK(launch_is_foil_run("decode-eval"));
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(v), "srun --ntasks=4 --nodelist=h1,h2 --kill-on-bad-exit=1 /bin/foil-run decode-eval "
                            "/j/7/spec.json --root /r --job-dir /j/7 --quiet"),
         "%s", joined(v));
  launch_strv_free(&v);
  o.kind = "refresh";
  o.slurm = 0;
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(strstr(joined(v), "-x FOIL_RESTART_COUNT /bin/foil-run refresh /j/7/spec.json --root /r --job-dir /j/7 --quiet"),
         "%s", joined(v));
  launch_strv_free(&v);
}

static void test_command(void) {
  char *argv[] = {"sh", "-c", "echo hi"};
  place(0, "a", "h1", 1);
  launch_opts o = {.kind = "command", .argv = argv, .argc = 3, .placement = PP, .nplacement = 1};
  char **v = NULL;
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(v), "sh -c echo hi"), "%s", joined(v)); /* one rank: run directly */
  launch_strv_free(&v);
  place(0, "a", "h1", 2);
  place(1, "b", "h1", 2);
  o.nplacement = 2;
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(!strncmp(joined(v), "mpirun -np 4 --host h1:4 --bind-to none -x FOIL_PROGRESS", 55), "%s", joined(v));
  CHECK(!strcmp(v[0], "mpirun"));
  int n = 0;
  while (v[n]) n++;
  CHECK(n >= 3 && !strcmp(v[n - 3], "sh") && !strcmp(v[n - 1], "echo hi"));
  launch_strv_free(&v);
  /* a binding the worker was given replaces the default (unbound) */
  o.mpirun_args = "--bind-to core";
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(!strncmp(joined(v), "mpirun -np 4 --host h1:4 --bind-to core -x", 42), "%s", joined(v));
  launch_strv_free(&v);
  o.mpirun_args = NULL;
  /* refusals */
  foil_err err = {0};
  launch_opts bad = {.kind = "finetune"};
  CHECK(launch_argv(&bad, &v, &err) == FOIL_EINVAL && strstr(err.msg, "finetune"));
  launch_opts empty = {.kind = "command"};
  CHECK(launch_argv(&empty, &v, &err) == FOIL_EINVAL && strstr(err.msg, "argv"));
}

static void test_serve(void) {
  place(0, "a", "h1", 1);
  launch_opts o = {.kind = "serve", .placement = PP, .nplacement = 1, .root = "/r", .foil_run = "/bin/foil-run",
                   .spec_json = "{\"index\": \"wiki\", \"bind\": \"tcp://*:7431\", \"shards\": [0, 2]}"};
  char **v = NULL;
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(v), "/bin/foil-serve --index wiki --root /r --bind tcp://*:7431 --shards 0,2"), "%s",
         joined(v));
  launch_strv_free(&v);
  o.spec_json = "{\"index\": \"wiki\", \"shards\": \"1\", \"version\": 3, \"watch\": false, \"device\": \"cuda\"}",
  o.foil_run = "foil-run";
  CHECK(launch_argv(&o, &v, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(v), "foil-serve --index wiki --root /r --shards 1 --no-watch --version 3 --device cuda"), "%s",
         joined(v));
  launch_strv_free(&v);
  foil_err err = {0};
  o.spec_json = "{\"name\": \"wiki\"}";
  CHECK(launch_argv(&o, &v, &err) == FOIL_EINVAL && strstr(err.msg, "index"));
}

static void test_env(void) {
  char *env[] = {"PATH=/bin", "FOIL_JOB_ID=old", "FOIL_JOB_IDX=keep", "HOME=/h", NULL};
  char *set[] = {"FOIL_JOB_ID=9", "FOIL_PROGRESS=tcp://127.0.0.1:5", NULL};
  char **out = NULL;
  CHECK(launch_env(env, set, "command", &out, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(out), "PATH=/bin FOIL_JOB_IDX=keep HOME=/h FOIL_JOB_ID=9 FOIL_PROGRESS=tcp://127.0.0.1:5"),
         "%s", joined(out));
  launch_strv_free(&out);
  CHECK(launch_env(NULL, NULL, "command", &out, NULL) == FOIL_OK && out && !out[0]);
  launch_strv_free(&out);
  /* the worker's key pair never reaches a job; a serve job keeps what its
   * foil-serve listens with, no other kind does */
  char *keys[] = {"FOIL_KEY=/etc/foil/keys/n1.key_secret", "FOIL_KEYS=/etc/foil/keys", "FOIL_KEYSX=keep",
                  "FOIL_SERVER_KEY=/etc/foil/keys/coord.key", "FOIL_CURVE_KEY=/k/s.key_secret",
                  "FOIL_ALLOW_KEYS=/k/allow", NULL};
  CHECK(launch_env(keys, NULL, "command", &out, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(out), "FOIL_KEYSX=keep FOIL_SERVER_KEY=/etc/foil/keys/coord.key"), "%s", joined(out));
  launch_strv_free(&out);
  CHECK(launch_env(keys, NULL, "pretrain", &out, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(out), "FOIL_KEYSX=keep FOIL_SERVER_KEY=/etc/foil/keys/coord.key"), "%s", joined(out));
  launch_strv_free(&out);
  CHECK(launch_env(keys, NULL, "serve", &out, NULL) == FOIL_OK);
  CHECKF(!strcmp(joined(out), "FOIL_KEYSX=keep FOIL_SERVER_KEY=/etc/foil/keys/coord.key "
                              "FOIL_CURVE_KEY=/k/s.key_secret FOIL_ALLOW_KEYS=/k/allow"), "%s", joined(out));
  launch_strv_free(&out);
}

static void test_describe(void) {
  char *argv[] = {"sh", "-c", "echo hi", "", NULL};
  char out[64];
  launch_describe(argv, out, sizeof out);
  CHECKF(!strcmp(out, "sh -c 'echo hi' ''"), "%s", out);
  char tiny[6];
  launch_describe(argv, tiny, sizeof tiny);
  CHECK(strlen(tiny) < sizeof tiny);
}

int main(void) {
  RUN(test_hosts);
  RUN(test_pretrain);
  RUN(test_command);
  RUN(test_serve);
  RUN(test_env);
  RUN(test_describe);
  TEST_EXIT();
}
