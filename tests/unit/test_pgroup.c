/* test_pgroup.c — a job's process group with real programs: exit status,
 * exec failure, stop with SIGTERM honoured, SIGTERM ignored (SIGKILL after
 * the grace), leftovers of a leader that exited. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/test.h"
#include "worker/agent/pgroup.h"

/* ticks until done or timeout_s; returns seconds taken (or -1) */
static double run_until_done(pgroup *g, double timeout_s) {
  double t0 = log_mono();
  while (log_mono() - t0 < timeout_s) {
    if (pgroup_tick(g, log_mono())) return log_mono() - t0;
    usleep(20000);
  }
  return -1;
}

static void test_exit_status(void) {
  char *ok[] = {"sh", "-c", "exit 0", NULL}, *bad[] = {"sh", "-c", "exit 3", NULL};
  pgroup *g = NULL;
  int code = -1, sig = -1;
  CHECK(pgroup_spawn(&g, ok, NULL, NULL, -1, NULL) == FOIL_OK);
  CHECK(run_until_done(g, 5) >= 0);
  pgroup_status(g, &code, &sig);
  CHECK(code == 0 && sig == 0);
  pgroup_destroy(&g);
  CHECK(g == NULL);
  CHECK(pgroup_spawn(&g, bad, NULL, NULL, -1, NULL) == FOIL_OK);
  CHECK(run_until_done(g, 5) >= 0);
  pgroup_status(g, &code, &sig);
  CHECK(code == 3 && sig == 0);
  pgroup_destroy(&g);
}

static void test_exec_failure(void) {
  char *argv[] = {"/nonexistent/program", NULL};
  pgroup *g = NULL;
  foil_err err = {0};
  CHECK(pgroup_spawn(&g, argv, NULL, NULL, -1, &err) == FOIL_ENOTFOUND);
  CHECKF(strstr(err.msg, "cannot run /nonexistent/program") != NULL, "%s", err.msg);
  CHECK(g == NULL);
  char *sh[] = {"sh", "-c", "true", NULL};
  CHECK(pgroup_spawn(&g, sh, NULL, "/nonexistent/dir", -1, &err) == FOIL_ENOTFOUND);
  CHECKF(strstr(err.msg, "/nonexistent/dir") != NULL, "%s", err.msg);
}

static void test_output_env_cwd(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  char path[1024];
  snprintf(path, sizeof path, "%s/pgroup_out", tmp ? tmp : "/tmp");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  char *argv[] = {"sh", "-c", "echo \"$FOO $(pwd)\"; echo err >&2", NULL};
  char *envp[] = {"FOO=bar", "PATH=/usr/bin:/bin", NULL};
  pgroup *g = NULL;
  CHECK(pgroup_spawn(&g, argv, envp, "/", fd, NULL) == FOIL_OK);
  close(fd);
  CHECK(run_until_done(g, 5) >= 0);
  pgroup_destroy(&g);
  char buf[256] = {0};
  FILE *f = fopen(path, "r");
  CHECK(f && fread(buf, 1, sizeof buf - 1, f) > 0);
  if (f) fclose(f);
  CHECKF(!strcmp(buf, "bar /\nerr\n"), "%s", buf);
}

static void test_stop_term(void) {
  char *argv[] = {"sleep", "30", NULL};
  pgroup *g = NULL;
  CHECK(pgroup_spawn(&g, argv, NULL, NULL, -1, NULL) == FOIL_OK);
  pgroup_stop(g, 5, log_mono());
  double t = run_until_done(g, 5);
  CHECK(t >= 0 && t < 2);
  int code, sig;
  pgroup_status(g, &code, &sig);
  CHECK(sig == SIGTERM && code == 128 + SIGTERM);
  CHECK(!pgroup_killed(g));
  pgroup_destroy(&g);
}

static void test_stop_kill_after_grace(void) {
  /* the shell and its sleep both ignore SIGTERM */
  char *argv[] = {"sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30", NULL};
  pgroup *g = NULL;
  CHECK(pgroup_spawn(&g, argv, NULL, NULL, -1, NULL) == FOIL_OK);
  usleep(200000);
  pid_t pg = pgroup_id(g);
  pgroup_stop(g, 0.7, log_mono());
  double t = run_until_done(g, 6);
  CHECKF(t >= 0.6 && t < 3, "took %.2f s", t);
  CHECK(pgroup_killed(g));
  int code, sig;
  pgroup_status(g, &code, &sig);
  CHECK(sig == SIGKILL);
  usleep(100000);
  CHECK(kill(-pg, 0) != 0); /* the whole group is gone */
  pgroup_destroy(&g);
}

static void test_leftovers(void) {
  /* the leader exits at once, leaving a member that sleeps */
  char *argv[] = {"sh", "-c", "sleep 30 & exit 4", NULL};
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  pgroup *g = NULL;
  CHECK(pgroup_spawn(&g, argv, NULL, NULL, -1, NULL) == FOIL_OK);
  pid_t pg = pgroup_id(g);
  double t0 = log_mono();
  int done = 0;
  while (!done && log_mono() - t0 < 8) {
    /* as the agent does: a subreaper that reaps every child and hands the
     * leader's status over */
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
      if (pid == pg) pgroup_reaped(g, st);
    done = pgroup_tick(g, log_mono());
    usleep(20000);
  }
  CHECK(done);
  int code, sig;
  pgroup_status(g, &code, &sig);
  CHECK(code == 4 && sig == 0);
  CHECK(kill(-pg, 0) != 0);
  pgroup_destroy(&g);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_exit_status);
  RUN(test_exec_failure);
  RUN(test_output_env_cwd);
  RUN(test_stop_term);
  RUN(test_stop_kill_after_grace);
  RUN(test_leftovers);
  TEST_EXIT();
}
