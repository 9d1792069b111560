/* bf16.c — bf16 storage and the bf16-operand linear layer on the CPU: the
 * twins of the CUDA backend's (kernels/cuda/blas.cu, elementwise.cu), so
 * that mixed-precision training has a CPU reference the GPU is compared
 * with. Each product multiplies the same bf16 operands as the tensor cores
 * do (widening bf16 to fp32 is exact) and accumulates in fp32, in another
 * order. Plain loops over widened rows, threaded over output rows: a
 * reference for tests and small models, not faster than fp32 here. */
#include <string.h>

#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

/* bf16 bits of f, rounded to nearest even; NaN stays a quiet NaN (as the
 * device's f32_to_bf16 in kernels/cuda/common.cuh). */
static inline uint16_t round_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static inline float widen(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

void f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) dst[i] = round_bf16(src[i]);
}

void bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) dst[i] = widen(src[i]);
}

/* sum_c a[c]·b[c] of widened bf16 rows, fp32, 8 lanes then the tail */
static float dot_bf16(const uint16_t *a, const uint16_t *b, int n) {
  float acc[8] = {0};
  int c = 0;
  for (; c + 8 <= n; c += 8)
    for (int k = 0; k < 8; k++) acc[k] += widen(a[c + k]) * widen(b[c + k]);
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; c < n; c++) s += widen(a[c]) * widen(b[c]);
  return s;
}

void matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *W, const float *b, int N,
                         int C, int OC) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++)
      out[(size_t)n * OC + o] = (b ? b[o] : 0.0f) + dot_bf16(inp + (size_t)n * C, W + (size_t)o * C, C);
}

void matmul_backward_bf16(float *dinp, float *dW, float *db, const uint16_t *dout, const float *dout_f32,
                          const uint16_t *inp, const uint16_t *W, int N, int C, int OC) {
  kernels_sync_threads();
  if (dinp) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
      float *d = dinp + (size_t)n * C;
      for (int o = 0; o < OC; o++) {
        const float g = widen(dout[(size_t)n * OC + o]);
        const uint16_t *w = W + (size_t)o * C;
        for (int c = 0; c < C; c++) d[c] += g * widen(w[c]);
      }
    }
  }
  if (dW) {
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
      float *d = dW + (size_t)o * C;
      for (int n = 0; n < N; n++) {
        const float g = widen(dout[(size_t)n * OC + o]);
        const uint16_t *x = inp + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g * widen(x[c]);
      }
    }
  }
  if (db && dout_f32) {
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
      float s = 0.0f;
      for (int n = 0; n < N; n++) s += dout_f32[(size_t)n * OC + o];
      db[o] += s;
    }
  }
}

void matmul_gelu_forward_bf16(float *out, float *pre, const uint16_t *inp, const uint16_t *W, const float *b,
                              int N, int C, int OC) {
  matmul_forward_bf16(pre, inp, W, b, N, C, OC);
  gelu_forward(out, pre, (size_t)N * OC);
}
