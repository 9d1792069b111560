/* readbw.h — the read bandwidth a benchmark compares against: a streaming
 * sum over n floats (sized far beyond the caches), split over the kernel
 * threads, best of 5 passes. bench_search's bound and bench_decode's floor
 * use it; the caller owns buf (filled: the sum is returned in *check so
 * the passes cannot be dropped). Cost: 5 reads of buf. */
#ifndef FOIL_BENCH_READBW_H
#define FOIL_BENCH_READBW_H

#include <stddef.h>
#include <time.h>

static double readbw_gbps(const float *buf, size_t n, double *check) {
  double best = 1e30;
  *check = 0;
  for (int pass = 0; pass < 5; pass++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    float sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
    for (size_t b = 0; b < n / 4096; b++) {
      float acc[16] = {0};
      const float *p = buf + b * 4096;
      for (int i = 0; i < 4096; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += p[i + l];
      for (int l = 0; l < 16; l++) sum += acc[l];
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double t = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    *check += sum;
    if (t < best) best = t;
  }
  return (double)(n / 4096 * 4096) * sizeof(float) / best / 1e9;
}

#endif
