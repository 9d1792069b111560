/* confine.h — what a job may name: the path confinement rule, checked where
 * a job enters (the coordinator's submit) and again where its files are
 * opened (foil-run inside a cluster).
 *
 * The rule (README "Path confinement"):
 *  - Things of the data root are named by plain names — datasets, indexes,
 *    negatives banks, benchmarks, job names: 1 to 128 characters of
 *    [A-Za-z0-9._-], not "." or "..". So no name has a '/' and none walks up.
 *  - Files given as paths (model.tokenizer, init_from, a refresh's
 *    checkpoint and corpus.file, a decode-eval's model, amateur,
 *    prompts.file, metrics.encoder and metrics.scorer, the job's workdir)
 *    must resolve — symbolic links followed, as realpath(3) does — inside
 *    the data root or inside a directory the coordinator's operator
 *    allowed (foil-coordinator --allow-dir DIR, repeatable). A path whose
 *    last parts do not exist yet resolves through its deepest existing
 *    directory, the rest taken lexically. Relative paths are taken from the
 *    job's working directory.
 * Names that break the rule are FOIL_EINVAL (INVALID_ARGUMENT); paths that
 * resolve outside are FOIL_EPERM (PERMISSION_DENIED). Messages name the
 * spec key and the path.
 *
 * What it does not stop: a file swapped for a symlink between the check
 * and the open (the second check, in foil-run, narrows that window to the
 * job's own start); and kind "command" runs a program of the submitter's
 * choosing, which can read what the worker's user can (its workdir is
 * confined, its argv is not interpreted).
 *
 * Ownership: a confine is a plain value (no heap). Cost: one realpath(3)
 * per checked path.
 */
#ifndef FOIL_COMMON_CONFINE_H
#define FOIL_COMMON_CONFINE_H

#include <stddef.h>

#include "common/err.h"

#define CONFINE_MAX_DIRS 16
#define CONFINE_PATH_MAX 4096
#define CONFINE_MAX_NAME 128

typedef struct {
  char dirs[CONFINE_MAX_DIRS][CONFINE_PATH_MAX]; /* resolved; dirs[0] is the data root */
  int n;
} confine;

/* Starts the allow-list with the data root (which must exist). */
int confine_init(confine *c, const char *root, foil_err *err);
/* Adds an allowed directory (must exist and be a directory). */
int confine_allow(confine *c, const char *dir, foil_err *err);
/* Adds the directories the coordinator allowed, as it recorded them in
 * <root>/coordinator.json ("allow_dirs"); none when the file or key is
 * absent. Ones that no longer exist are skipped. */
int confine_allow_recorded(confine *c, const char *root, foil_err *err);

/* 1 when name is a plain name (see above). */
int confine_name_ok(const char *name);
/* FOIL_EINVAL naming key unless name is a plain name. */
int confine_name(const char *key, const char *name, foil_err *err);

/* Resolves path (relative: from base, an absolute directory) into out
 * (CONFINE_PATH_MAX bytes, may be NULL) and checks it lies inside an
 * allowed directory: FOIL_EPERM naming key and path when not. */
int confine_path(const confine *c, const char *key, const char *path, const char *base, char *out,
                 foil_err *err);

/* Checks every name and path key a job spec of this kind holds (pretrain,
 * refresh, serve, decode-eval; other kinds have none) — keys absent or of
 * another type are left to the spec's own parser. workdir: the job's working directory
 * (absolute), relative paths are taken from it. */
int confine_spec(const confine *c, const char *kind, const char *spec_json, const char *workdir,
                 foil_err *err);

#endif
