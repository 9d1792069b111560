/* bench_search.c — foil's side of the search benchmark (bench/search.py
 * writes the vectors, runs this and faiss on them, and prints ratios).
 *
 *   bench_search bw THREADS
 *       read bandwidth: a streaming sum over 1 GiB of floats (far beyond
 *       the caches), best of 5 passes; prints {"gbps": ...}
 *   bench_search run DIR N D THREADS f32|f16|i8 RESCORE NBATCH NSINGLE K
 *       vs_search over DIR/xb.<dtype> (N×D; i8 with DIR/xb.scale; ids
 *       0..N-1; RESCORE > 0 gives f16/i8 the exact copy DIR/xb.f32): one
 *       batch of the first NBATCH queries of DIR/xq.f32 (best of 2 runs,
 *       queries/s), then NSINGLE queries one at a time (median and p99 ms).
 *       Writes the batch's ids to DIR/foil_<dtype>_<RESCORE>.i64.
 * Prints one line of JSON.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "model/vsearch.h"
#include "readbw.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *read_all(const char *dir, const char *name, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  void *p = malloc(bytes ? bytes : 1);
  if (!f || !p || fread(p, 1, bytes, f) != bytes) {
    fprintf(stderr, "bench_search: cannot read %zu bytes of %s\n", bytes, path);
    exit(1);
  }
  fclose(f);
  return p;
}

static int bench_bw(void) {
  const size_t n = (size_t)1 << 28; /* 1 GiB of floats */
  float *buf = malloc(n * sizeof(float));
  if (!buf) return 1;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) buf[i] = 1.0f;
  double check;
  const double gbps = readbw_gbps(buf, n, &check);
  printf("{\"mode\":\"bw\",\"threads\":%d,\"gbps\":%.3f,\"check\":%.0f}\n", kernels_get_threads(), gbps,
         check / 5);
  free(buf);
  return 0;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "bw")) {
    kernels_set_threads(atoi(argv[2]));
    return bench_bw();
  }
  if (argc < 11 || strcmp(argv[1], "run")) {
    fprintf(stderr, "usage: %s bw THREADS | run DIR N D THREADS f32|f16|i8 RESCORE NBATCH NSINGLE K\n",
            argv[0]);
    return 2;
  }
  const char *dir = argv[2], *dt = argv[6];
  int64_t n = atoll(argv[3]);
  int d = atoi(argv[4]), threads = kernels_set_threads(atoi(argv[5])), rescore = atoi(argv[7]);
  int nb = atoi(argv[8]), ns = atoi(argv[9]), k = atoi(argv[10]);
  int nq = nb > ns ? nb : ns;
  size_t nd = (size_t)n * d;
  vs_block blk = {VS_F32, n, d, NULL, NULL, NULL, NULL};
  if (!strcmp(dt, "f32")) {
    blk.data = read_all(dir, "xb.f32", nd * 4);
  } else if (!strcmp(dt, "f16")) {
    blk.dtype = VS_F16, blk.data = read_all(dir, "xb.f16", nd * 2);
  } else if (!strcmp(dt, "i8")) {
    blk.dtype = VS_I8, blk.data = read_all(dir, "xb.i8", nd);
    blk.scales = read_all(dir, "xb.scale", (size_t)n * 4);
  } else {
    fprintf(stderr, "unknown dtype %s\n", dt);
    return 2;
  }
  if (rescore > 0 && blk.dtype != VS_F32) blk.exact = read_all(dir, "xb.f32", nd * 4);
  int64_t *ids = malloc(sizeof(int64_t) * (size_t)n);
  for (int64_t i = 0; i < n; i++) ids[i] = i;
  blk.ids = ids;
  float *q = read_all(dir, "xq.f32", (size_t)nq * d * 4);
  float *os = malloc(sizeof(float) * (size_t)nq * k);
  int64_t *oi = malloc(sizeof(int64_t) * (size_t)nq * k);
  foil_err err;

  double best = 1e30;
  for (int rep = 0; rep < 2 && nb > 0; rep++) {
    double t0 = now();
    if (vs_search(&blk, 1, q, nb, k, 1, 0, rescore, os, oi, &err)) {
      fprintf(stderr, "vs_search: %s\n", err.msg);
      return 1;
    }
    double t = now() - t0;
    if (t < best) best = t;
  }
  if (nb > 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s/foil_%s_%d.i64", dir, dt, rescore);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(oi, sizeof(int64_t), (size_t)nb * k, f) != (size_t)nb * k) return 1;
    fclose(f);
  }
  double *lat = malloc(sizeof(double) * (size_t)(ns ? ns : 1));
  vs_search(&blk, 1, q, 1, k, 1, 0, rescore, os, oi, &err); /* warm */
  for (int i = 0; i < ns; i++) {
    double t0 = now();
    vs_search(&blk, 1, q + (size_t)i * d, 1, k, 1, 0, rescore, os, oi, &err);
    lat[i] = (now() - t0) * 1e3;
  }
  qsort(lat, (size_t)ns, sizeof(double), cmp_d);
  double med = ns ? lat[ns / 2] : 0, p99 = ns ? lat[(int)(0.99 * (ns - 1) + 0.5)] : 0;
  printf("{\"side\":\"foil\",\"dtype\":\"%s\",\"rescore\":%d,\"threads\":%d,\"qps\":%.2f,"
         "\"median_ms\":%.3f,\"p99_ms\":%.3f,\"bytes\":%zu}\n",
         dt, rescore, threads, nb > 0 ? nb / best : 0.0, med, p99,
         nd * (blk.dtype == VS_F32 ? 4 : blk.dtype == VS_F16 ? 2 : 1) +
             (blk.dtype == VS_I8 ? (size_t)n * 4 : 0));
  free((void *)blk.data);
  free((void *)blk.scales);
  free((void *)blk.exact);
  free(ids);
  free(q);
  free(os);
  free(oi);
  free(lat);
  return 0;
}
