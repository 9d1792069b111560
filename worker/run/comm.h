/* comm.h — the collective operations foil-run's ranks use, over MPI.
 *
 * One comm per process. comm_init starts MPI when nobody has (under mpirun
 * or srun, MPI finds rank and world size through the launcher's PMI/PMIx;
 * a process started alone is rank 0 of 1). The node-local rank, which picks
 * a GPU later, comes from splitting the world by shared memory, and is
 * cross-checked against OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID or
 * PMI_LOCAL_RANK when the launcher sets one.
 *
 * Every collective is called by all ranks in the same order (MPI's rule).
 * Results are deterministic for a given world size: MPI reduces in a fixed
 * order for a fixed message size and communicator.
 * Only the calling (main) thread talks to MPI (MPI_THREAD_FUNNELED).
 * Ownership: comm_destroy(&c) finalizes MPI if comm_init initialized it.
 *
 * GPU ranks (built with FOIL_CUDA and NCCL): comm_use_gpu binds the rank
 * to GPU comm_local_rank (one process per GPU; cuda_init of
 * kernels/cuda/kernels_cuda.h, device local_rank % visible devices) and
 * creates an NCCL communicator over the world from a unique id that rank 0
 * makes and MPI broadcasts. From then on the float data collectives
 * (comm_allreduce_mean, comm_allgather, comm_reduce_scatter_sum, and the
 * loss_comm built on them) take DEVICE buffers and run on NCCL on the CUDA
 * backend's stream; each returns when its result is in place. bcast,
 * barrier and the f64 allreduce stay on MPI with host buffers. NCCL's
 * results are deterministic for a fixed world size and message size.
 * comm_destroy frees the NCCL communicator; the CUDA backend stays up for
 * the caller to cuda_shutdown.
 */
#ifndef FOIL_WORKER_RUN_COMM_H
#define FOIL_WORKER_RUN_COMM_H

#include <stddef.h>

#include "common/err.h"
#include "model/loss.h"

typedef struct comm comm;

int comm_init(comm **out, int *argc, char ***argv, foil_err *err);
void comm_destroy(comm **c);
/* Ends every rank of the job with exit status code (MPI_Abort on the
 * world) and does not return. For foil-run's main only, when this rank
 * failed: a rank that fails alone leaves the others waiting in their next
 * collective, and its own MPI_Finalize would wait for them, so without it
 * the job hangs until its time limit instead of failing. */
void comm_abort(comm *c, int code);

int comm_rank(const comm *c);
int comm_world(const comm *c);
int comm_local_rank(const comm *c);
int comm_local_size(const comm *c);
/* Kernel threads for this rank: want when it is > 0, else the node's
 * online CPUs shared among the node's ranks (at least 1). */
int comm_rank_threads(const comm *c, int want);
/* Seconds this rank has spent inside the data collectives (allreduce of
 * floats, allgather, reduce-scatter), waiting for slower ranks included. */
double comm_busy_seconds(const comm *c);

/* buf[n] = mean over ranks of buf[n] (in place). 2·n floats moved per rank. */
int comm_allreduce_mean(comm *c, float *buf, size_t n, foil_err *err);
/* sum over ranks, in place, doubles (metrics, counters) */
int comm_allreduce_sum_f64(comm *c, double *buf, size_t n, foil_err *err);
/* Every rank learns whether any failed: rc is this rank's result; returns
 * FOIL_OK only when all succeeded; a rank that did not fail itself gets
 * FOIL_EABORTED "`what` failed on another rank". One all-reduce of a double. */
int comm_all_ok(comm *c, int rc, const char *what, foil_err *err);
/* recv[world·n] = every rank's send[n], in rank order. */
int comm_allgather(comm *c, const float *send, size_t n, float *recv, foil_err *err);
/* The same two on HOST buffers whatever the ranks: on GPU ranks (NCCL
 * takes device memory) staged through a device buffer of the comm's,
 * grown as needed, else passed to the above. For the few host values a
 * GPU rank reduces (a scalar's gradient, evaluation's rows). */
int comm_allreduce_mean_host(comm *c, float *buf, size_t n, foil_err *err);
int comm_allgather_host(comm *c, const float *send, size_t n, float *recv, foil_err *err);
/* recv[n] = sum over ranks of their send[rank·n .. rank·n + n). */
int comm_reduce_scatter_sum(comm *c, const float *send, size_t n, float *recv, foil_err *err);
/* bytes from root to everyone */
int comm_bcast(comm *c, void *buf, size_t bytes, int root, foil_err *err);
int comm_barrier(comm *c, foil_err *err);

/* Switches the data collectives to NCCL on device buffers (see above).
 * FOIL_EPRECOND when foil was built without CUDA/NCCL; FOIL_EUNAVAIL when
 * no GPU is visible. Collective: every rank calls it. */
int comm_use_gpu(comm *c, foil_err *err);
/* 1 after comm_use_gpu succeeded. */
int comm_is_gpu(const comm *c);
/* A job's "device": "cuda": with `collectives` comm_use_gpu (training:
 * NCCL too), else only this rank's GPU brought up for compute (node-local
 * rank % the visible devices; refresh, decode-eval). The error names the
 * spec's choice: `device "cuda": rank 1: <why>`; FOIL_EUNAVAIL in a build
 * without CUDA. */
int comm_job_gpu(comm *c, int collectives, foil_err *err);
/* The rank's compute device, for logs: the CUDA backend's line ("cuda
 * (device 0 of 1: ...)") after comm_job_gpu or comm_use_gpu, the CPU
 * kernels' else. */
const char *comm_device(const comm *c);

/* Gradient buckets overlapped with the backward pass. On GPU ranks,
 * comm_bucket_allreduce_mean queues an NCCL mean all-reduce of buf (device)
 * on a side stream that starts once the CUDA backend's stream has reached
 * this call (so the bucket's gradients are complete) and returns at once:
 * the backward of earlier layers keeps running while the bucket travels.
 * comm_bucket_finish makes later work on the backend's stream (the
 * optimizer) wait for every bucket queued since the last finish, without
 * blocking the host. Buckets must not be touched in between. Every rank
 * queues the same buckets in the same order. On CPU ranks the bucket call
 * is comm_allreduce_mean and finish does nothing. */
int comm_bucket_allreduce_mean(comm *c, float *buf, size_t n, foil_err *err);
int comm_bucket_finish(comm *c, foil_err *err);

/* The collectives model/loss.h needs for cross-rank negatives, bound to c. */
loss_comm comm_loss_comm(comm *c);

#endif
