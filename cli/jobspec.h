/* jobspec.h — what `foil submit` sends: a foil.v1.JobSpec built from a spec
 * file and the command line.
 *
 * From the spec file (a JSON object): "kind", "name", "argv" (kind
 * "command": an array of strings) and the optional object "job", the
 * scheduler's part, which foil-run ignores. Without "kind" the file is a
 * pretrain spec when every top-level key is one pretrain takes; otherwise
 * it is refused, naming the first other key and the kind whose keys the
 * file has ("add \"kind\": \"refresh\""), never sent as a pretrain job
 * that fails when it starts. A key that appears twice in any object is
 * refused (cJSON would take the first, Python's json and jq the last). The
 * rest of the kind's own spec is not checked here (its checkers live in
 * foil-run, which links the kernels this command does not) but by foil-run
 * when the job starts.
 *
 *
 *   "job": { "ranks": 2,            MPI ranks in all (default 1)
 *            "gpus_per_rank": 0,    0: CPU ranks
 *            "nodes": 0,            0: as few workers as fit; N: exactly N
 *            "priority": 0,         higher runs first
 *            "time_limit_s": 3600,  0: no limit
 *            "max_failures": 3,     node failures requeued before NODE_FAIL; -1: no limit
 *            "after_ok": [7, 8],    start once these COMPLETED
 *            "after_any": [9],      start once these are final, however they ended
 *            "warn_signal": "USR1", sent warn_before_s before the time limit
 *            "warn_before_s": 60 }  (default 60 when warn_signal is given)
 *
 * A warning signal needs a time limit longer than warn_before_s, and
 * warn_before_s needs a warning signal; both are refused otherwise.
 * --time-limit takes SECONDS (a bare number: foil's unit, where sbatch
 * reads minutes) or sbatch's MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
 * (timefmt_parse_duration). Numbers given by flag are digits only (no
 * blanks, no '+'); job ids are 1..2^53-1 in the file and in flags alike.
 *
 * The file goes verbatim into spec_json. Flags override the file key by
 * key (--after replaces "after_ok", --after-any replaces "after_any").
 * Without a file, argv after `--` makes a job of kind "command".
 *
 * Errors are FOIL_EINVAL with a message naming the file and key
 * ("spec.json: job.ranks must be an integer 1..100000, got -2") or the
 * flag ("--ranks ...").
 */
#ifndef FOIL_CLI_JOBSPEC_H
#define FOIL_CLI_JOBSPEC_H

#include "common/err.h"
#include "foil/v1/control.pb-c.h"

/* Command-line values as typed; NULL: not given. */
typedef struct {
  const char *name, *ranks, *gpus_per_rank, *nodes, *priority, *time_limit, *max_failures;
  const char *after;     /* "ID[,ID..]": after_ok */
  const char *after_any; /* "ID[,ID..]" */
  const char *signal;    /* "SIG[@SECONDS]", as sbatch --signal */
  const char *workdir;   /* where the job runs: absolute (NULL: none) */
  int argc;              /* argv after `--`: kind "command" */
  char **argv;
} jobspec_opts;

/* Builds *out from the spec text (NULL: no file; label names it in
 * messages) and o. On FOIL_OK *out is the caller's, freed with
 * jobspec_free; on error *out is NULL. */
int jobspec_build(Foil__V1__JobSpec **out, const char *spec_text, const char *label,
                  const jobspec_opts *o, foil_err *err);
void jobspec_free(Foil__V1__JobSpec *s);

/* Fills buf (at least 33 bytes) with a random submission id: 32 hex
 * digits from the system's random source. */
int jobspec_submission_id(char *buf, size_t n, foil_err *err);

#endif
