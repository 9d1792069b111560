/* pgroup.c — see pgroup.h. */
#define _GNU_SOURCE
#include "worker/agent/pgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct pgroup {
  pid_t pid;
  int reaped, status;     /* leader */
  int done;
  int stopping;           /* SIGTERM sent by a stop or leftover cleanup */
  int killed;             /* SIGKILL sent */
  double kill_at;         /* monotonic; when stopping */
  double gone_by;         /* after SIGKILL: stop waiting for unreaped members */
  double grace;           /* for leftovers after the leader ends */
};

int pgroup_spawn(pgroup **out, char *const argv[], char *const envp[], const char *cwd, int out_fd,
                 foil_err *err) {
  *out = NULL;
  if (!argv || !argv[0] || !argv[0][0]) return foil_err_set(err, FOIL_EINVAL, "nothing to run (empty command)");
  pgroup *g = calloc(1, sizeof *g);
  if (!g) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  g->grace = 5;
  int p[2];
  if (pipe2(p, O_CLOEXEC)) {
    free(g);
    return foil_err_set(err, FOIL_EINTERNAL, "pipe: %s", strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]), close(p[1]);
    free(g);
    return foil_err_set(err, FOIL_EINTERNAL, "fork: %s", strerror(e));
  }
  if (pid == 0) {
    /* the child: only async-signal-safe calls from here to exec */
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL), signal(SIGINT, SIG_DFL), signal(SIGPIPE, SIG_DFL), signal(SIGCHLD, SIG_DFL);
    int stage = 0, e = 0;
    if (out_fd >= 0) {
      int nul = open("/dev/null", O_RDONLY);
      if (nul >= 0 && nul != 0) dup2(nul, 0), close(nul);
      if (dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) e = errno, stage = 1;
    }
    if (!stage && cwd && chdir(cwd)) e = errno, stage = 2;
    if (!stage) {
      if (envp) execvpe(argv[0], argv, envp);
      else execvp(argv[0], argv);
      e = errno, stage = 3;
    }
    int msg[2] = {stage, e};
    ssize_t w = write(p[1], msg, sizeof msg);
    (void)w;
    _exit(127);
  }
  close(p[1]);
  setpgid(pid, pid); /* also here, so the group exists before we signal it */
  int msg[2];
  ssize_t r;
  do r = read(p[0], msg, sizeof msg);
  while (r < 0 && errno == EINTR);
  close(p[0]);
  if (r == (ssize_t)sizeof msg) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    free(g);
    const char *what = msg[0] == 1 ? "cannot redirect its output" : msg[0] == 2 ? "cannot enter" : "cannot run";
    int code = msg[1] == ENOENT ? FOIL_ENOTFOUND : msg[1] == EACCES ? FOIL_EPERM : FOIL_EINTERNAL;
    if (msg[0] == 2)
      return foil_err_set(err, code, "%s %s: %s", what, cwd, strerror(msg[1]));
    return foil_err_set(err, code, "%s %s: %s", what, argv[0], strerror(msg[1]));
  }
  g->pid = pid;
  *out = g;
  return FOIL_OK;
}

pid_t pgroup_id(const pgroup *g) { return g->pid; }
int pgroup_done(const pgroup *g) { return g->done; }
int pgroup_killed(const pgroup *g) { return g->killed; }

void pgroup_signal(pgroup *g, int sig) {
  if (!g->done && g->pid > 0) kill(-g->pid, sig);
}

void pgroup_stop(pgroup *g, double grace_s, double now) {
  if (g->done) return;
  double at = now + (grace_s > 0 ? grace_s : 0);
  if (!g->stopping || at < g->kill_at) g->kill_at = at;
  if (!g->stopping) kill(-g->pid, SIGTERM);
  g->stopping = 1;
}

void pgroup_reaped(pgroup *g, int status) {
  if (g->reaped) return;
  g->reaped = 1;
  g->status = status;
}

static int group_alive(const pgroup *g) { return kill(-g->pid, 0) == 0 || errno == EPERM; }

int pgroup_tick(pgroup *g, double now) {
  if (g->done) return 1;
  if (!g->reaped) {
    int st;
    pid_t r = waitpid(g->pid, &st, WNOHANG);
    if (r == g->pid) pgroup_reaped(g, st);
    else if (r < 0 && errno == ECHILD) pgroup_reaped(g, 0);  /* reaped elsewhere without telling us */
  }
  if (g->stopping && !g->killed && now >= g->kill_at && (!g->reaped || group_alive(g))) {
    kill(-g->pid, SIGKILL);
    g->killed = 1;
    g->gone_by = now + 2;
  }
  if (!g->reaped) return 0;
  if (!group_alive(g) || (g->killed && now >= g->gone_by)) {
    g->done = 1;
    return 1;
  }
  /* the leader ended and left members behind: stop them */
  if (!g->stopping) pgroup_stop(g, g->grace, now);
  return 0;
}

void pgroup_status(const pgroup *g, int *exit_code, int *signal) {
  int st = g->status;
  if (WIFEXITED(st)) *exit_code = WEXITSTATUS(st), *signal = 0;
  else if (WIFSIGNALED(st)) *signal = WTERMSIG(st), *exit_code = 128 + *signal;
  else *exit_code = 0, *signal = 0;
}

void pgroup_destroy(pgroup **gp) {
  pgroup *g = *gp;
  if (!g) return;
  if (!g->done && g->pid > 0) {
    kill(-g->pid, SIGKILL);
    if (!g->reaped) {
      int st;
      waitpid(g->pid, &st, 0);
    }
  }
  free(g);
  *gp = NULL;
}
