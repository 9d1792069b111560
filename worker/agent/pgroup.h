/* pgroup.h — a child program in its own process group, and stopping it
 * the way Slurm stops a job step: SIGTERM to the whole group, SIGKILL after
 * a grace period.
 *
 *   pgroup *g; pgroup_spawn(&g, argv, envp, cwd, log_fd, &err);
 *   pgroup_stop(g, 10, log_mono());           later, each tick:
 *   pgroup_tick(g, log_mono());  if (pgroup_done(g)) ... pgroup_status(g, &code, &sig)
 *   pgroup_destroy(&g);
 *
 * The child: setpgid(0, 0), cwd, stdout and stderr onto out_fd, execvp
 * with envp. An exec that fails (no such program, not executable) is
 * reported by pgroup_spawn itself (through a close-on-exec pipe), with the
 * child already reaped: the caller never sees a half-started group.
 *
 * Done means: the leader has been reaped and no process of the group is
 * left. When the leader ends by itself and leaves members behind, they are
 * sent SIGTERM (then SIGKILL after the grace period), as a job step's
 * leftovers are. Members that stay visible after SIGKILL (zombies whose
 * parent does not reap them) stop counting 2 s later.
 *
 * Reaping: pgroup_tick calls waitpid(leader, WNOHANG). A caller that reaps
 * with waitpid(-1) itself hands a leader's status over with pgroup_reaped.
 * Not thread-safe; no allocation after spawn.
 */
#ifndef FOIL_WORKER_AGENT_PGROUP_H
#define FOIL_WORKER_AGENT_PGROUP_H

#include <sys/types.h>

#include "common/err.h"

typedef struct pgroup pgroup;

/* Forks and execs argv[0] (PATH searched) in a new process group. out_fd
 * (>= 0) becomes the child's stdout and stderr; cwd may be NULL. envp NULL:
 * the current environment. FOIL_ENOTFOUND / FOIL_EPERM "cannot run PROG:
 * reason" when exec fails, FOIL_EINTERNAL when fork does. */
int pgroup_spawn(pgroup **out, char *const argv[], char *const envp[], const char *cwd, int out_fd,
                 foil_err *err);
/* Kills what is left of the group (SIGKILL) without waiting, reaps the
 * leader if it can, frees. */
void pgroup_destroy(pgroup **g);

pid_t pgroup_id(const pgroup *g);          /* the leader's pid = the group id */

/* Sends sig to the whole group (nothing once it is done). */
void pgroup_signal(pgroup *g, int sig);

/* SIGTERM to the group now, SIGKILL at now + grace_s (monotonic seconds)
 * if anything is left. A second stop only shortens the grace. */
void pgroup_stop(pgroup *g, double grace_s, double now);

/* Reaps the leader if it ended, escalates a stop whose grace is over,
 * notes when the group is gone. Returns pgroup_done(g). */
int pgroup_tick(pgroup *g, double now);

/* The leader's wait status, when the caller reaped it. */
void pgroup_reaped(pgroup *g, int status);

int pgroup_done(const pgroup *g);
/* 1 once SIGKILL has been sent. */
int pgroup_killed(const pgroup *g);
/* The leader's exit: *exit_code (0..255, or 128+signal when signalled) and
 * *signal (0 when it exited). Valid once the leader is reaped. */
void pgroup_status(const pgroup *g, int *exit_code, int *signal);

#endif
