/* foil_run.c — foil-run, the job runtime: one MPI program, every rank runs
 * the job kind named on the command line.
 *
 *   mpirun -np N foil-run pretrain SPEC.json [--root DIR] [--job-dir DIR] [--stop-after STEPS] [--quiet]
 *   mpirun -np N foil-run refresh  SPEC.json [--root DIR] [--job-dir DIR] [--quiet]
 *   mpirun -np N foil-run decode-eval SPEC.json [--root DIR] [--job-dir DIR] [--quiet]
 *
 * Rank discovery comes from the launcher (mpirun, or srun inside a Slurm
 * allocation). The data root is --root, else $FOIL_ROOT, else ./foil-data.
 * Exit status as the CLI's (common/err.h foil_err_exit_code).
 *
 * Inside a cluster (a worker started it: $FOIL_JOB_ID is set) the spec's
 * names and files are checked again against the path confinement rule
 * (common/confine.h: the data root and the directories the coordinator
 * recorded in coordinator.json) before any file is opened.
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/confine.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "kernels/kernels.h"
#include "worker/run/comm.h"
#include "worker/run/deval.h"
#include "worker/run/pretrain.h"
#include "worker/run/refresh.h"
#ifdef FOIL_HAVE_CUDA
#include "kernels/cuda/kernels_cuda.h"
#endif

/* The second check of common/confine.h, where the files are opened. */
static int check_confined(const char *kind, const char *spec_path, const char *root, foil_err *err) {
  confine cf;
  char *text = NULL, cwd[CONFINE_PATH_MAX];
  size_t len = 0;
  int rc = confine_init(&cf, root, err);
  if (!rc) rc = confine_allow_recorded(&cf, root, err);
  if (!rc) rc = foil_read_file(spec_path, &text, &len, err);
  if (!rc && !getcwd(cwd, sizeof cwd)) rc = foil_err_set(err, FOIL_EINTERNAL, "the working directory is unknown");
  if (!rc) rc = confine_spec(&cf, kind, text, cwd, err);
  free(text);
  return rc;
}

static int usage(void) {
  fprintf(stderr,
          "usage: foil-run pretrain SPEC.json [--root DIR] [--job-dir DIR] [--stop-after STEPS] [--quiet]\n"
          "       foil-run refresh SPEC.json [--root DIR] [--job-dir DIR] [--quiet]\n"
          "       foil-run decode-eval SPEC.json [--root DIR] [--job-dir DIR] [--quiet]\n"
          "  (under mpirun -np N or srun for N ranks; specs: worker/run/spec.h, worker/run/refresh.h,\n"
          "   worker/run/deval.h)\n");
  return 2;
}

int main(int argc, char **argv) {
  foil_err err = {0};
  comm *c = NULL;
  if (comm_init(&c, &argc, &argv, &err)) {
    fprintf(stderr, "foil-run: %s\n", err.msg);
    return foil_err_exit_code(err.code);
  }
  /* the OpenBLAS this process loaded, once per node (into the job's log) */
  const char *blas_warn = kernels_backend_warning();
  if (blas_warn && comm_local_rank(c) == 0) log_line(NULL, "WARN", "foil-run", "%s", blas_warn);
  int pretrain = argc >= 3 && !strcmp(argv[1], "pretrain"), refresh = argc >= 3 && !strcmp(argv[1], "refresh");
  int deval = argc >= 3 && !strcmp(argv[1], "decode-eval");
  if (!pretrain && !refresh && !deval) {
    if (comm_rank(c) == 0) usage();
    comm_destroy(&c);
    return 2;
  }
  const char *env = getenv("FOIL_ROOT");
  pretrain_args a = {.spec_path = argv[2], .root = env && *env ? env : "./foil-data"};
  refresh_args r = {0};
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--root") && i + 1 < argc) a.root = argv[++i];
    else if (!strcmp(argv[i], "--job-dir") && i + 1 < argc) a.job_dir = argv[++i];
    else if (pretrain && !strcmp(argv[i], "--stop-after") && i + 1 < argc) a.stop_after = atoll(argv[++i]);
    /* tests only: rank 0 waits before publishing, so a kill can land between shards and publish */
    else if (refresh && !strcmp(argv[i], "--publish-delay") && i + 1 < argc) r.publish_delay_s = atof(argv[++i]);
    else if (!strcmp(argv[i], "--quiet")) a.quiet = 1;
    else {
      if (comm_rank(c) == 0) {
        fprintf(stderr, "foil-run: unknown option %s\n", argv[i]);
        usage();
      }
      comm_destroy(&c);
      return 2;
    }
  }
  int rc = FOIL_OK;
  if (getenv("FOIL_JOB_ID")) rc = check_confined(argv[1], a.spec_path, a.root, &err);
  if (rc) {
  } else if (pretrain) {
    rc = pretrain_run(&a, c, &err);
  } else if (deval) {
    deval_args d = {.spec_path = a.spec_path, .root = a.root, .job_dir = a.job_dir, .quiet = a.quiet};
    rc = deval_run(&d, c, &err);
  } else {
    r.spec_path = a.spec_path, r.root = a.root, r.job_dir = a.job_dir, r.quiet = a.quiet;
    rc = refresh_run(&r, c, &err);
  }
  if (rc) fprintf(stderr, "foil-run (rank %d): %s\n", comm_rank(c), err.msg);
  /* a rank that failed alone would leave the others in a collective for
   * good (and MPI_Finalize waits for them): the whole job ends, failed */
  if (rc && comm_world(c) > 1) comm_abort(c, foil_err_exit_code(rc));
  comm_destroy(&c);
#ifdef FOIL_HAVE_CUDA
  cuda_shutdown(); /* GPU ranks' backend, after NCCL's communicator (a no-op on CPU ranks) */
#endif
  return foil_err_exit_code(rc);
}
