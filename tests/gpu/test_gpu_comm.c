/* test_gpu_comm.c — foil-run's collectives on NCCL (worker/run/comm.h,
 * comm_use_gpu) against the same collectives on MPI with host buffers.
 *
 * Runs alone (rank 0 of 1) or under mpirun with one GPU per rank (NCCL
 * refuses two ranks on one GPU). Every rank fills its buffers from its
 * rank number, runs allreduce_mean, allgather and reduce_scatter_sum once
 * over MPI on host copies and once over NCCL on device copies, and the
 * results must agree: allgather exactly (a copy), the reductions to fp32
 * rounding of a different summation order (rtol 1e-6, atol 1e-7); gradient
 * buckets (comm_bucket_allreduce_mean on the side stream) against both. */
#include "tests/gpu/gpu_test.h"
#include "worker/run/comm.h"

int main(int argc, char **argv) {
  foil_err err = {0};
  if (cuda_device_count(&err) <= 0) {
    printf("SKIP: no CUDA device visible (%s)\n", err.msg[0] ? err.msg : "no device");
    return GPU_SKIP_CODE;
  }
  comm *c = NULL;
  if (comm_init(&c, &argc, &argv, &err)) {
    fprintf(stderr, "comm_init: %s\n", err.msg);
    return 1;
  }
  const int rank = comm_rank(c), world = comm_world(c);
  const size_t n = 1000 + 3; /* per rank */
  float *a = malloc(sizeof(float) * n * world), *g = malloc(sizeof(float) * n * world);
  float *rs = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n * world; i++) a[i] = (float)rank + 0.001f * (float)(i % 977) - 0.37f;
  /* the MPI answers, on host copies */
  float *mean = copyv(a, n);
  CHECK(comm_allreduce_mean(c, mean, n, &err) == FOIL_OK);
  CHECK(comm_allgather(c, a, n, g, &err) == FOIL_OK);
  CHECK(comm_reduce_scatter_sum(c, a, n, rs, &err) == FOIL_OK);
  /* the NCCL answers, on device copies */
  int rc = comm_use_gpu(c, &err);
  CHECKF(rc == FOIL_OK, "comm_use_gpu: %s", err.msg);
  if (rc == FOIL_OK) {
    CHECK(comm_is_gpu(c));
    printf("rank %d of %d on %s\n", rank, world, cuda_backend());
    float *dmean = dev_from(a, sizeof(float) * n), *da = dev_from(a, sizeof(float) * n * world);
    float *dg = dev_from(NULL, sizeof(float) * n * world), *drs = dev_from(NULL, sizeof(float) * n);
    CHECK(comm_allreduce_mean(c, dmean, n, &err) == FOIL_OK);
    CHECK(comm_allgather(c, da, n, dg, &err) == FOIL_OK);
    CHECK(comm_reduce_scatter_sum(c, da, n, drs, &err) == FOIL_OK);
    float *hm = host_from(dmean, sizeof(float) * n), *hg = host_from(dg, sizeof(float) * n * world);
    float *hr = host_from(drs, sizeof(float) * n);
    close_enough("allreduce_mean NCCL vs MPI", hm, mean, n, 1e-7f, 1e-6f);
    close_enough("allgather NCCL vs MPI", hg, g, n * world, 0, 0);
    close_enough("reduce_scatter_sum NCCL vs MPI", hr, rs, n, 1e-7f, 1e-6f);
    /* gradient buckets on the side stream, then the compute stream waits:
     * the bucket starts after the kernel queued before it (x2), and a
     * kernel queued after comm_bucket_finish (x0.5) sees the reduced values.
     * Powers of two commute exactly with the sums. */
    const size_t m = n - n / 2;
    float *b1 = dev_from(a, sizeof(float) * n), *b2 = dev_from(a + n / 2, sizeof(float) * m);
    float *dw2 = dev_from(a + n / 2, sizeof(float) * m);
    cuda_scale_inplace(b1, n, 2.0f);
    CHECK(comm_bucket_allreduce_mean(c, b1, n, &err) == FOIL_OK);
    CHECK(comm_bucket_allreduce_mean(c, b2, m, &err) == FOIL_OK);
    CHECK(comm_bucket_finish(c, &err) == FOIL_OK);
    cuda_scale_inplace(b1, n, 0.5f);
    CHECK(comm_allreduce_mean(c, dw2, m, &err) == FOIL_OK); /* the blocking path */
    float *h1 = host_from(b1, sizeof(float) * n), *h2 = host_from(b2, sizeof(float) * m);
    float *hw2 = host_from(dw2, sizeof(float) * m);
    close_enough("bucket (x2 before, x0.5 after) vs MPI mean", h1, mean, n, 1e-7f, 1e-6f);
    close_enough("bucket vs blocking NCCL allreduce", h2, hw2, m, 0, 0);
    cuda_free(b1); cuda_free(b2); cuda_free(dw2);
    free(h1); free(h2); free(hw2);
    /* bcast and barrier stay on MPI */
    int token = rank == 0 ? 42 : 0;
    CHECK(comm_bcast(c, &token, sizeof token, 0, &err) == FOIL_OK && token == 42);
    CHECK(comm_barrier(c, &err) == FOIL_OK);
    cuda_free(dmean); cuda_free(da); cuda_free(dg); cuda_free(drs);
    free(hm); free(hg); free(hr);
  }
  free(a); free(g); free(rs); free(mean);
  comm_destroy(&c);
  cuda_shutdown();
  TEST_EXIT();
}
