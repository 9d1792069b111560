/* gpu_test.h — what the GPU tests share: skip when no device is visible,
 * copies between host and device that end the test on failure, random
 * inputs, and a tolerance check that reports the worst element.
 *
 * Tolerances are |gpu - cpu| <= atol + rtol·|cpu| per element, chosen per
 * tensor and precision in each test and written beside the check. */
#ifndef FOIL_TESTS_GPU_TEST_H
#define FOIL_TESTS_GPU_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"
#include "model/encoder.h" /* encoder_tensor: the views of both models' flat buffers */
#include "tests/test.h"

#define GPU_SKIP_CODE 77

/* Exits with the skip code when no device is visible; else initializes
 * the backend on device 0. */
static inline void gpu_require(void) {
  foil_err err = {0};
  if (cuda_device_count(&err) <= 0) {
    printf("SKIP: no CUDA device visible (%s)\n", err.msg[0] ? err.msg : "no device");
    exit(GPU_SKIP_CODE);
  }
  if (cuda_init(0, &err) != FOIL_OK) {
    fprintf(stderr, "cuda_init failed: %s\n", err.msg);
    exit(1);
  }
  printf("backend: %s\n", cuda_backend());
}

static inline void gpu_die(const char *what, const foil_err *err) {
  fprintf(stderr, "%s: %s\n", what, err->msg);
  exit(1);
}

/* A device copy of host memory (bytes). */
static inline void *dev_from(const void *host, size_t bytes) {
  foil_err err = {0};
  void *d = NULL;
  if (cuda_malloc(&d, bytes, &err) != FOIL_OK) gpu_die("cuda_malloc", &err);
  if (host && cuda_upload(d, host, bytes, &err) != FOIL_OK) gpu_die("upload", &err);
  if (!host && cuda_memset0(d, bytes, &err) != FOIL_OK) gpu_die("memset", &err);
  return d;
}
/* A malloc'd host copy of device memory, after checking the stream. */
static inline void *host_from(const void *dev, size_t bytes) {
  foil_err err = {0};
  if (cuda_sync(&err) != FOIL_OK) gpu_die("kernel", &err);
  void *h = malloc(bytes ? bytes : 1);
  if (!h || cuda_download(h, dev, bytes, &err) != FOIL_OK) gpu_die("download", &err);
  return h;
}
static inline void dev_to(void *host, const void *dev, size_t bytes) {
  foil_err err = {0};
  if (cuda_sync(&err) != FOIL_OK) gpu_die("kernel", &err);
  if (cuda_download(host, dev, bytes, &err) != FOIL_OK) gpu_die("download", &err);
}

static uint64_t gpu_rng_state = 0x9E3779B97F4A7C15ull;
static inline float frand(void) { /* uniform in [-1, 1) */
  gpu_rng_state = gpu_rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((gpu_rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static inline float *randv(size_t n, float amp) {
  float *x = malloc(n * sizeof(float) + 1);
  for (size_t i = 0; i < n; i++) x[i] = amp * frand();
  return x;
}
static inline float *copyv(const float *x, size_t n) {
  float *y = malloc(n * sizeof(float) + 1);
  memcpy(y, x, n * sizeof(float));
  return y;
}

/* Checks every element; prints the worst one. Returns 1 when all are within. */
static inline int close_enough(const char *what, const float *gpu, const float *cpu, size_t n,
                        float atol, float rtol) {
  size_t worst = 0, bad = 0;
  double wexcess = -1.0;
  for (size_t i = 0; i < n; i++) {
    double diff = fabs((double)gpu[i] - cpu[i]), lim = atol + rtol * fabs((double)cpu[i]);
    int ok = diff <= lim || (isnan(gpu[i]) && isnan(cpu[i])) ||
             (isinf(cpu[i]) && gpu[i] == cpu[i]);
    if (!ok) bad++;
    if (diff - lim > wexcess) {
      wexcess = diff - lim;
      worst = i;
    }
  }
  test_checks++;
  if (bad) {
    test_failures++;
    fprintf(stderr, "%s: %zu of %zu elements out of tolerance (atol %g rtol %g); worst [%zu] gpu %.9g cpu %.9g\n",
            what, bad, n, atol, rtol, worst, gpu[worst], cpu[worst]);
    return 0;
  }
  return 1;
}

/* Every gradient tensor (views t[0..nt) of flat host buffers), each within
 * tol of its largest CPU value plus tol relative. */
static inline void grads_tensors_close(const char *what, const float *gpu, const float *cpu,
                                       const encoder_tensor *t, int nt, float tol) {
  for (int i = 0; i < nt; i++) {
    if (!t[i].size) continue;
    float mx = 0;
    for (size_t j = 0; j < t[i].size; j++) mx = fmaxf(mx, fabsf(cpu[t[i].offset + j]));
    char name[96];
    snprintf(name, sizeof name, "%s: grad %s", what, t[i].name);
    close_enough(name, gpu + t[i].offset, cpu + t[i].offset, t[i].size, tol * mx + 1e-12f, tol);
  }
}

/* bf16 rounding on the host (nearest even), as the device's conversion. */
static inline uint16_t bf16_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static inline float f32_of_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#endif
