/* comm.c — collectives over MPI (see comm.h). */
#include "worker/run/comm.h"

#include "kernels/kernels.h"
#include "model/devmem.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FOIL_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif
#ifdef FOIL_HAVE_CUDA
#include "kernels/cuda/kernels_cuda.h"
#endif

struct comm {
  MPI_Comm world, local;
  int rank, size, local_rank, local_size;
  int we_initialized;
  double busy; /* seconds spent inside collectives */
  int gpu;     /* data collectives on NCCL, device buffers */
  int dev;     /* this rank's GPU is up for compute (comm_job_gpu) */
  float *stage;       /* GPU ranks: device staging for the _host collectives */
  size_t stage_cap;
#ifdef FOIL_HAVE_NCCL
  ncclComm_t nccl;
  cudaStream_t side;       /* gradient buckets: NCCL beside the compute stream */
  cudaEvent_t ready, done; /* compute -> side, side -> compute */
  int pending;             /* buckets started since the last finish */
#endif
};

static int mpi_fail(int rc, const char *what, foil_err *err) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return foil_err_set(err, FOIL_EUNAVAIL, "MPI %s failed: %.*s", what, len, msg);
}

/* Node-local rank the launcher announces, or -1. */
static int launcher_local_rank(void) {
  const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "PMI_LOCAL_RANK",
                        "MPI_LOCALRANKID"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return atoi(v);
  }
  return -1;
}

int comm_init(comm **out, int *argc, char ***argv, foil_err *err) {
  *out = NULL;
  comm *c = calloc(1, sizeof *c);
  if (!c) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int inited = 0, rc;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided;
    rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
      free(c);
      return foil_err_set(err, FOIL_EUNAVAIL, "MPI_Init failed (is the launcher's PMI reachable?)");
    }
    c->we_initialized = 1;
  }
  /* errors come back as codes, not aborts */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_dup(MPI_COMM_WORLD, &c->world);
  MPI_Comm_rank(c->world, &c->rank);
  MPI_Comm_size(c->world, &c->size);
  MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &c->local);
  MPI_Comm_rank(c->local, &c->local_rank);
  MPI_Comm_size(c->local, &c->local_size);
  /* The launcher placed the process and knows its node-local rank; the
   * shared-memory split is the fallback when it says nothing. */
  int announced = launcher_local_rank();
  if (announced >= 0) c->local_rank = announced;
  *out = c;
  return FOIL_OK;
}

void comm_destroy(comm **cp) {
  if (!cp || !*cp) return;
  comm *c = *cp;
#ifdef FOIL_HAVE_NCCL
  if (c->gpu) {
    if (c->pending) cudaStreamSynchronize(c->side);
    ncclCommDestroy(c->nccl);
    cudaEventDestroy(c->ready);
    cudaEventDestroy(c->done);
    cudaStreamDestroy(c->side);
  }
#endif
  devmem_free(DEVMEM_CUDA, c->stage);
  MPI_Comm_free(&c->local);
  MPI_Comm_free(&c->world);
  if (c->we_initialized) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
  }
  free(c);
  *cp = NULL;
}

void comm_abort(comm *c, int code) {
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(c->world, code ? code : 1);
  abort(); /* MPI_Abort does not return */
}

int comm_rank(const comm *c) { return c->rank; }
double comm_busy_seconds(const comm *c) { return c->busy; }
int comm_world(const comm *c) { return c->size; }
int comm_local_rank(const comm *c) { return c->local_rank; }
int comm_local_size(const comm *c) { return c->local_size; }

int comm_rank_threads(const comm *c, int want) {
  if (want > 0) return want;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  long t = cores / (c->local_size > 0 ? c->local_size : 1);
  return t < 1 ? 1 : t > INT_MAX ? INT_MAX : (int)t;
}

int comm_is_gpu(const comm *c) { return c->gpu; }

const char *comm_device(const comm *c) {
#ifdef FOIL_HAVE_CUDA
  if (c->gpu || c->dev) return cuda_backend();
#endif
  (void)c;
  return kernels_backend();
}

/* The staging buffer, at least n floats (device memory). */
static float *stage(comm *c, size_t n, foil_err *err) {
  if (n <= c->stage_cap) return c->stage;
  devmem_free(DEVMEM_CUDA, c->stage);
  c->stage = devmem_alloc(DEVMEM_CUDA, n * sizeof(float));
  c->stage_cap = c->stage ? n : 0;
  if (!c->stage) foil_err_set(err, FOIL_ENOMEM, "out of device memory to stage %zu floats", n);
  return c->stage;
}

int comm_allreduce_mean_host(comm *c, float *buf, size_t n, foil_err *err) {
  if (!c->gpu) return comm_allreduce_mean(c, buf, n, err);
  float *d = stage(c, n, err);
  if (!d) return FOIL_ENOMEM;
  int rc = devmem_put(DEVMEM_CUDA, d, buf, n * sizeof(float), err);
  if (!rc) rc = comm_allreduce_mean(c, d, n, err);
  if (!rc) rc = devmem_get(DEVMEM_CUDA, buf, d, n * sizeof(float), err);
  return rc;
}

int comm_allgather_host(comm *c, const float *send, size_t n, float *recv, foil_err *err) {
  if (!c->gpu) return comm_allgather(c, send, n, recv, err);
  const size_t all = n * (size_t)c->size;
  float *d = stage(c, n + all, err);
  if (!d) return FOIL_ENOMEM;
  int rc = devmem_put(DEVMEM_CUDA, d, send, n * sizeof(float), err);
  if (!rc) rc = comm_allgather(c, d, n, d + n, err);
  if (!rc) rc = devmem_get(DEVMEM_CUDA, recv, d + n, all * sizeof(float), err);
  return rc;
}

int comm_job_gpu(comm *c, int collectives, foil_err *err) {
  foil_err e = {0};
  int rc;
  if (collectives) {
    rc = comm_use_gpu(c, &e);
  } else {
#ifdef FOIL_HAVE_CUDA
    rc = cuda_init(c->local_rank, &e);
    if (rc) {
      char why[sizeof e.msg];
      snprintf(why, sizeof why, "%s", e.msg);
      foil_err_set(&e, rc, "rank %d: %.400s", c->rank, why);
    }
#else
    rc = foil_err_set(&e, FOIL_EUNAVAIL, "this foil-run was built without CUDA (FOIL_CUDA=OFF or no nvcc at build "
                      "time)");
#endif
  }
  if (!rc) {
    c->dev = 1;
    return FOIL_OK;
  }
  return foil_err_set(err, rc, "device \"cuda\": %.450s", e.msg);
}

#ifdef FOIL_HAVE_NCCL
static int nccl_fail(ncclResult_t r, const char *what, foil_err *err) {
  return foil_err_set(err, r == ncclSystemError || r == ncclRemoteError ? FOIL_EUNAVAIL : FOIL_EINTERNAL,
                      "NCCL %s failed: %s", what, ncclGetErrorString(r));
}

int comm_use_gpu(comm *c, foil_err *err) {
  if (c->gpu) return FOIL_OK;
  /* Every rank reaches the broadcast below, even one without a GPU, so a
   * missing device fails the job instead of hanging the others. */
  foil_err local = {0};
  int rc = cuda_init(c->local_rank, &local);
  int ok = rc == FOIL_OK, all_ok = 0;
  int mrc = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, c->world);
  if (mrc != MPI_SUCCESS) return mpi_fail(mrc, "allreduce", err);
  if (!ok) return foil_err_set(err, rc, "rank %d: %s", c->rank, local.msg);
  if (!all_ok) return foil_err_set(err, FOIL_EUNAVAIL, "another rank has no usable GPU");
  struct {
    int ok;
    ncclUniqueId id;
  } msg;
  memset(&msg, 0, sizeof msg);
  if (c->rank == 0) msg.ok = ncclGetUniqueId(&msg.id) == ncclSuccess;
  rc = comm_bcast(c, &msg, sizeof msg, 0, err);
  if (rc) return rc;
  if (!msg.ok) return foil_err_set(err, FOIL_EUNAVAIL, "rank 0 could not create an NCCL unique id");
  ncclResult_t r = ncclCommInitRank(&c->nccl, c->size, msg.id, c->rank);
  if (r != ncclSuccess) return nccl_fail(r, "communicator creation", err);
  cudaError_t e = cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming);
  if (e != cudaSuccess) {
    ncclCommDestroy(c->nccl);
    return foil_err_set(err, FOIL_EINTERNAL, "CUDA stream/event creation failed: %s",
                        cudaGetErrorString(e));
  }
  c->gpu = 1;
  return FOIL_OK;
}

int comm_bucket_allreduce_mean(comm *c, float *buf, size_t n, foil_err *err) {
  if (!c->gpu) return comm_allreduce_mean(c, buf, n, err);
  /* the side stream starts this bucket once the compute stream has made it */
  cudaStream_t compute = (cudaStream_t)cuda_stream();
  cudaError_t e = cudaEventRecord(c->ready, compute);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(c->side, c->ready, 0);
  if (e != cudaSuccess)
    return foil_err_set(err, FOIL_EINTERNAL, "CUDA event failed: %s", cudaGetErrorString(e));
  ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclAvg, c->nccl, c->side);
  if (r != ncclSuccess) return nccl_fail(r, "bucket allreduce", err);
  c->pending++;
  return FOIL_OK;
}

int comm_bucket_finish(comm *c, foil_err *err) {
  if (!c->gpu || !c->pending) return FOIL_OK;
  /* later compute-stream work waits for every bucket; the host does not */
  cudaError_t e = cudaEventRecord(c->done, c->side);
  if (e == cudaSuccess) e = cudaStreamWaitEvent((cudaStream_t)cuda_stream(), c->done, 0);
  c->pending = 0;
  if (e != cudaSuccess)
    return foil_err_set(err, FOIL_EINTERNAL, "CUDA event failed: %s", cudaGetErrorString(e));
  ncclResult_t async = ncclSuccess;
  ncclCommGetAsyncError(c->nccl, &async);
  return async == ncclSuccess ? FOIL_OK : nccl_fail(async, "bucket allreduce", err);
}

/* Issues nothing more: waits for the stream, then asks NCCL whether the
 * communicator saw an asynchronous error. */
static int nccl_finish(comm *c, double t0, const char *what, foil_err *err) {
  int rc = cuda_sync(err);
  ncclResult_t async = ncclSuccess;
  ncclCommGetAsyncError(c->nccl, &async);
  c->busy += MPI_Wtime() - t0;
  if (rc) return rc;
  return async == ncclSuccess ? FOIL_OK : nccl_fail(async, what, err);
}

static int nccl_allreduce_mean(comm *c, float *buf, size_t n, foil_err *err) {
  double t0 = MPI_Wtime();
  ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclAvg, c->nccl, (cudaStream_t)cuda_stream());
  if (r != ncclSuccess) return nccl_fail(r, "allreduce", err);
  return nccl_finish(c, t0, "allreduce", err);
}
static int nccl_allgather(comm *c, const float *send, size_t n, float *recv, foil_err *err) {
  double t0 = MPI_Wtime();
  ncclResult_t r = ncclAllGather(send, recv, n, ncclFloat, c->nccl, (cudaStream_t)cuda_stream());
  if (r != ncclSuccess) return nccl_fail(r, "allgather", err);
  return nccl_finish(c, t0, "allgather", err);
}
static int nccl_reduce_scatter(comm *c, const float *send, size_t n, float *recv, foil_err *err) {
  double t0 = MPI_Wtime();
  ncclResult_t r = ncclReduceScatter(send, recv, n, ncclFloat, ncclSum, c->nccl,
                                     (cudaStream_t)cuda_stream());
  if (r != ncclSuccess) return nccl_fail(r, "reduce-scatter", err);
  return nccl_finish(c, t0, "reduce-scatter", err);
}
#else
int comm_bucket_allreduce_mean(comm *c, float *buf, size_t n, foil_err *err) {
  return comm_allreduce_mean(c, buf, n, err);
}
int comm_bucket_finish(comm *c, foil_err *err) {
  (void)c;
  (void)err;
  return FOIL_OK;
}
#ifdef FOIL_CUDA_SHIM
/* Tests only (foil-run-shim, tests/gpu/cuda_shim.c): the "device" is host
 * memory, so MPI carries the GPU ranks' buffers; everything else of a GPU
 * rank runs as on a GPU. */
int comm_use_gpu(comm *c, foil_err *err) {
  int rc = cuda_init(c->local_rank, err);
  if (!rc) c->gpu = 1;
  return rc;
}
#else
int comm_use_gpu(comm *c, foil_err *err) {
  (void)c;
  return foil_err_set(err, FOIL_EPRECOND,
                      "this foil-run was built without the CUDA/NCCL backend (FOIL_CUDA=OFF or no "
                      "nvcc/NCCL at build time): GPU ranks are not available");
}
#endif
#endif

/* MPI counts are int: split larger messages. */
#define CHUNK ((size_t)1 << 28)

int comm_allreduce_mean(comm *c, float *buf, size_t n, foil_err *err) {
#ifdef FOIL_HAVE_NCCL
  if (c->gpu) return nccl_allreduce_mean(c, buf, n, err);
#endif
  if (c->size == 1) return FOIL_OK;
  double t0 = MPI_Wtime();
  for (size_t off = 0; off < n; off += CHUNK) {
    int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, c->world);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "allreduce", err);
  }
  scale_inplace(buf, n, 1.0f / (float)c->size);
  c->busy += MPI_Wtime() - t0;
  return FOIL_OK;
}

int comm_allreduce_sum_f64(comm *c, double *buf, size_t n, foil_err *err) {
  if (c->size == 1) return FOIL_OK;
  if (n > INT_MAX) return foil_err_set(err, FOIL_EINVAL, "allreduce of %zu doubles is too large", n);
  int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, c->world);
  return rc == MPI_SUCCESS ? FOIL_OK : mpi_fail(rc, "allreduce", err);
}

int comm_allgather(comm *c, const float *send, size_t n, float *recv, foil_err *err) {
#ifdef FOIL_HAVE_NCCL
  if (c->gpu) return nccl_allgather(c, send, n, recv, err);
#endif
  if (n > INT_MAX) return foil_err_set(err, FOIL_EINVAL, "allgather of %zu floats is too large", n);
  double t0 = MPI_Wtime();
  int rc = MPI_Allgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, c->world);
  c->busy += MPI_Wtime() - t0;
  return rc == MPI_SUCCESS ? FOIL_OK : mpi_fail(rc, "allgather", err);
}

int comm_reduce_scatter_sum(comm *c, const float *send, size_t n, float *recv, foil_err *err) {
#ifdef FOIL_HAVE_NCCL
  if (c->gpu) return nccl_reduce_scatter(c, send, n, recv, err);
#endif
  if (n > INT_MAX) return foil_err_set(err, FOIL_EINVAL, "reduce-scatter of %zu floats is too large", n);
  double t0 = MPI_Wtime();
  int rc = MPI_Reduce_scatter_block(send, recv, (int)n, MPI_FLOAT, MPI_SUM, c->world);
  c->busy += MPI_Wtime() - t0;
  return rc == MPI_SUCCESS ? FOIL_OK : mpi_fail(rc, "reduce-scatter", err);
}

int comm_bcast(comm *c, void *buf, size_t bytes, int root, foil_err *err) {
  for (size_t off = 0; off < bytes; off += CHUNK) {
    int cnt = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
    int rc = MPI_Bcast((char *)buf + off, cnt, MPI_BYTE, root, c->world);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "broadcast", err);
  }
  return FOIL_OK;
}

int comm_barrier(comm *c, foil_err *err) {
  int rc = MPI_Barrier(c->world);
  return rc == MPI_SUCCESS ? FOIL_OK : mpi_fail(rc, "barrier", err);
}

/* loss_comm adapters */
static int lc_allgather(void *ctx, const float *send, size_t n, float *recv, foil_err *err) {
  return comm_allgather(ctx, send, n, recv, err);
}
static int lc_reduce_scatter(void *ctx, const float *send, size_t n, float *recv, foil_err *err) {
  return comm_reduce_scatter_sum(ctx, send, n, recv, err);
}
static int lc_allreduce_mean(void *ctx, float *buf, size_t n, foil_err *err) {
  return comm_allreduce_mean(ctx, buf, n, err);
}

loss_comm comm_loss_comm(comm *c) {
  loss_comm lc = {c, c->rank, c->size, lc_allgather, lc_reduce_scatter, lc_allreduce_mean};
  return lc;
}

int comm_all_ok(comm *c, int rc, const char *what, foil_err *err) {
  double bad = rc != 0;
  foil_err e2 = {0};
  if (comm_allreduce_sum_f64(c, &bad, 1, &e2)) return rc ? rc : foil_err_set(err, e2.code, "%s", e2.msg);
  if (bad > 0 && !rc) return foil_err_set(err, FOIL_EABORTED, "%s failed on another rank", what);
  return rc;
}
