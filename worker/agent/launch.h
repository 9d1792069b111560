/* launch.h — what a head worker runs for an attempt: the launcher command
 * line (mpirun, srun inside a Slurm allocation, or the program itself), its
 * --host list and its environment. Pure functions of their inputs (tested
 * in tests/unit/test_launch.c); nothing here forks.
 *
 * foil-run's kinds ("pretrain", "refresh", "decode-eval"; KIND below):
 *   mpirun -np R --host h1:r1,h2:r2 [mpirun-args] -x FOIL_PROGRESS
 *     -x FOIL_ATTEMPT_TOKEN -x FOIL_JOB_DIR -x FOIL_JOB_ID -x FOIL_ROOT
 *     -x FOIL_ATTEMPT -x FOIL_RESTART_COUNT
 *     FOIL_RUN KIND JOB_DIR/spec.json --root ROOT --job-dir JOB_DIR --quiet
 * command (kind "command"): argv itself when R is 1, else the same mpirun
 * line with argv in place of foil-run's.
 * serve (kind "serve"): one process, no launcher:
 *   FOIL_SERVE --index INDEX --root ROOT [--bind EP] [--shards LIST]
 *              [--no-watch] [--no-text] [--version K]
 * from the spec_json keys "index" (required), "bind", "shards" ("0,2" or
 * [0, 2]), "watch": false, "text": false and "version"; FOIL_SERVE is
 * foil-serve beside foil_run.
 * Slurm: srun --ntasks=R --nodelist=h1,h2 --kill-on-bad-exit=1 instead of
 * mpirun (srun passes the whole environment).
 *
 * R is the sum of the placement's ranks. Placements that share a host are
 * merged into one host:n, in the order hosts first appear, so the head's
 * host (placement[0]) comes first and rank 0 runs beside the head worker.
 * mpirun_args is split at blanks (no quoting).
 *
 * Ownership: launch_argv and launch_env return malloc'ed NULL-terminated
 * arrays of malloc'ed strings; free them with launch_strv_free.
 */
#ifndef FOIL_WORKER_AGENT_LAUNCH_H
#define FOIL_WORKER_AGENT_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "foil/v1/worker.pb-c.h"

typedef struct {
  const char *kind;                    /* "pretrain" | "refresh" | "decode-eval" | "command" | "serve" */
  char *const *argv;                   /* command: program and arguments */
  size_t argc;
  Foil__V1__Placement *const *placement; /* head first; none means 1 rank here */
  size_t nplacement;
  const char *self_host;               /* used when there is no placement */
  const char *spec_path;               /* foil-run kinds: JOB_DIR/spec.json */
  const char *spec_json;               /* serve: the spec's JSON */
  const char *root, *job_dir;
  const char *foil_run;                /* path of foil-run */
  const char *mpirun;                  /* "mpirun" or a path */
  const char *mpirun_args;             /* extra mpirun flags, may be NULL */
  int slurm;                           /* 1: srun instead of mpirun */
} launch_opts;

/* 1 for the kinds foil-run runs from a spec file (pretrain, refresh, decode-eval). */
int launch_is_foil_run(const char *kind);

/* Ranks in all: the sum of the placement's ranks (1 when there is none). */
uint32_t launch_ranks(const launch_opts *o);

/* The --host value into out: "h1:r1,h2:r2" with counts, "h1,h2" without
 * (srun's --nodelist). FOIL_EINVAL when it does not fit in n. */
int launch_hosts(const launch_opts *o, int counts, char *out, size_t n, foil_err *err);

/* The command line (see above). FOIL_EINVAL for an unknown kind, an
 * empty command argv or a serve spec without "index". */
int launch_argv(const launch_opts *o, char ***out, foil_err *err);

/* environ with each "KEY=VALUE" of set put in (replacing KEY's old value),
 * less the worker's credentials: $FOIL_KEY and $FOIL_KEYS (its own key
 * pair: a job holding it could register as this node from anywhere) and,
 * for every kind but "serve", $FOIL_CURVE_KEY and $FOIL_ALLOW_KEYS (what a
 * serve job's foil-serve listens with). $FOIL_SERVER_KEY (public) stays. */
int launch_env(char *const *environ_in, char *const *set, const char *kind, char ***out, foil_err *err);

/* argv joined by blanks, words with blanks or quotes in single quotes, into
 * out (truncated to n). For log lines. */
void launch_describe(char *const *argv, char *out, size_t n);

void launch_strv_free(char ***v);

#endif
