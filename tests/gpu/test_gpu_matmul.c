/* test_gpu_matmul.c — the linear layer through cuBLAS against the CPU's
 * sgemm: fp32 forward/backward, the bf16-operand GEMMs (fp32 accumulate),
 * and the GEMM + bias + GELU fused forward.
 *
 * Tolerances: fp32 (no TF32) differs from OpenBLAS only in summation order:
 * rtol 1e-5 plus atol 2e-5·sqrt(K) for a K-term sum of O(1) products. bf16:
 * both sides multiply the same bf16-rounded operands (each product exact in
 * fp32) and accumulate in fp32, so the same bound applies against the CPU
 * on rounded operands; against the unrounded fp32 result the error is
 * bf16's (2^-8 relative per operand), checked loosely (atol 0.02·sqrt(K)). */
#include "tests/gpu/gpu_test.h"

enum { N = 77, C = 128, OC = 96 };

static float tol_k(int k) { return 2e-5f * sqrtf((float)k); }

static void test_fp32(void) {
  float *x = randv((size_t)N * C, 1), *W = randv((size_t)OC * C, 1), *b = randv(OC, 1);
  float *y = malloc(sizeof(float) * N * OC);
  matmul_forward(y, x, W, b, N, C, OC);
  float *dx = dev_from(x, sizeof(float) * N * C), *dW = dev_from(W, sizeof(float) * OC * C);
  float *db = dev_from(b, sizeof(float) * OC), *dy = dev_from(NULL, sizeof(float) * N * OC);
  cuda_matmul_forward(dy, dx, dW, db, N, C, OC);
  float *hy = host_from(dy, sizeof(float) * N * OC);
  close_enough("matmul_forward fp32", hy, y, (size_t)N * OC, tol_k(C), 1e-5f);
  cuda_matmul_forward(dy, dx, dW, NULL, N, C, OC); /* no bias */
  matmul_forward(y, x, W, NULL, N, C, OC);
  float *hy0 = host_from(dy, sizeof(float) * N * OC);
  close_enough("matmul_forward fp32, no bias", hy0, y, (size_t)N * OC, tol_k(C), 1e-5f);
  /* backward accumulates into nonzero gradients */
  float *go = randv((size_t)N * OC, 1), *gx = randv((size_t)N * C, 1), *gW = randv((size_t)OC * C, 1), *gb = randv(OC, 1);
  float *dgo = dev_from(go, sizeof(float) * N * OC), *dgx = dev_from(gx, sizeof(float) * N * C);
  float *dgW = dev_from(gW, sizeof(float) * OC * C), *dgb = dev_from(gb, sizeof(float) * OC);
  matmul_backward(gx, gW, gb, go, x, W, N, C, OC);
  cuda_matmul_backward(dgx, dgW, dgb, dgo, dx, dW, N, C, OC);
  float *hx = host_from(dgx, sizeof(float) * N * C), *hW = host_from(dgW, sizeof(float) * OC * C), *hb = host_from(dgb, sizeof(float) * OC);
  close_enough("matmul_backward dinp", hx, gx, (size_t)N * C, tol_k(OC), 1e-5f);
  close_enough("matmul_backward dW", hW, gW, (size_t)OC * C, tol_k(N), 1e-5f);
  close_enough("matmul_backward db", hb, gb, OC, tol_k(N), 1e-5f);
  /* NULL gradients are skipped */
  cuda_matmul_backward(NULL, NULL, dgb, dgo, dx, dW, N, C, OC);
  matmul_backward(NULL, NULL, gb, go, x, W, N, C, OC);
  float *hb2 = host_from(dgb, sizeof(float) * OC);
  close_enough("matmul_backward db only", hb2, gb, OC, tol_k(N), 1e-5f);
  /* GEMM + bias + GELU */
  float *pre = malloc(sizeof(float) * N * OC), *act = malloc(sizeof(float) * N * OC);
  matmul_forward(pre, x, W, b, N, C, OC);
  gelu_forward(act, pre, (size_t)N * OC);
  float *dpre = dev_from(NULL, sizeof(float) * N * OC);
  cuda_matmul_gelu_forward(dy, dpre, dx, dW, db, N, C, OC);
  float *hp = host_from(dpre, sizeof(float) * N * OC), *ha = host_from(dy, sizeof(float) * N * OC);
  close_enough("matmul_gelu_forward pre", hp, pre, (size_t)N * OC, tol_k(C), 1e-5f);
  close_enough("matmul_gelu_forward out", ha, act, (size_t)N * OC, tol_k(C), 1e-5f);
  cuda_free(dx); cuda_free(dW); cuda_free(db); cuda_free(dy); cuda_free(dgo); cuda_free(dgx);
  cuda_free(dgW); cuda_free(dgb); cuda_free(dpre);
  free(x); free(W); free(b); free(y); free(hy); free(hy0); free(go); free(gx); free(gW); free(gb);
  free(hx); free(hW); free(hb); free(hb2); free(pre); free(act); free(hp); free(ha);
}

static uint16_t *to_bf16(const float *x, size_t n, float *rounded) {
  uint16_t *h = malloc(n * sizeof(uint16_t) + 1);
  for (size_t i = 0; i < n; i++) {
    h[i] = bf16_of(x[i]);
    rounded[i] = f32_of_bf16(h[i]);
  }
  return h;
}

static void test_bf16(void) {
  float *x = randv((size_t)N * C, 1), *W = randv((size_t)OC * C, 1), *b = randv(OC, 1);
  float *xr = malloc(sizeof(float) * N * C), *Wr = malloc(sizeof(float) * OC * C);
  uint16_t *xh = to_bf16(x, (size_t)N * C, xr), *Wh = to_bf16(W, (size_t)OC * C, Wr);
  float *y = malloc(sizeof(float) * N * OC), *yfull = malloc(sizeof(float) * N * OC);
  matmul_forward(y, xr, Wr, b, N, C, OC);
  matmul_forward(yfull, x, W, b, N, C, OC);
  uint16_t *dxh = dev_from(xh, sizeof(uint16_t) * N * C), *dWh = dev_from(Wh, sizeof(uint16_t) * OC * C);
  float *db = dev_from(b, sizeof(float) * OC), *dy = dev_from(NULL, sizeof(float) * N * OC);
  cuda_matmul_forward_bf16(dy, dxh, dWh, db, N, C, OC);
  float *hy = host_from(dy, sizeof(float) * N * OC);
  close_enough("matmul_forward_bf16 vs CPU on rounded operands", hy, y, (size_t)N * OC, tol_k(C), 1e-5f);
  close_enough("matmul_forward_bf16 vs fp32 (bf16 error)", hy, yfull, (size_t)N * OC, 0.02f * sqrtf(C), 0);
  /* backward */
  float *go = randv((size_t)N * OC, 1), *gor = malloc(sizeof(float) * N * OC);
  uint16_t *goh = to_bf16(go, (size_t)N * OC, gor);
  float *gx = randv((size_t)N * C, 1), *gW = randv((size_t)OC * C, 1), *gb = randv(OC, 1);
  float *dgx = dev_from(gx, sizeof(float) * N * C), *dgW = dev_from(gW, sizeof(float) * OC * C), *dgb = dev_from(gb, sizeof(float) * OC);
  uint16_t *dgoh = dev_from(goh, sizeof(uint16_t) * N * OC);
  float *dgo = dev_from(go, sizeof(float) * N * OC);
  matmul_backward(gx, gW, NULL, gor, xr, Wr, N, C, OC);
  matmul_backward(NULL, NULL, gb, go, xr, Wr, N, C, OC); /* db from the fp32 dout */
  cuda_matmul_backward_bf16(dgx, dgW, dgb, dgoh, dgo, dxh, dWh, N, C, OC);
  float *hx = host_from(dgx, sizeof(float) * N * C), *hW = host_from(dgW, sizeof(float) * OC * C), *hb = host_from(dgb, sizeof(float) * OC);
  close_enough("matmul_backward_bf16 dinp", hx, gx, (size_t)N * C, tol_k(OC), 1e-5f);
  close_enough("matmul_backward_bf16 dW", hW, gW, (size_t)OC * C, tol_k(N), 1e-5f);
  close_enough("matmul_backward_bf16 db", hb, gb, OC, tol_k(N), 1e-5f);
  /* bf16 GEMM + bias + GELU */
  float *pre = malloc(sizeof(float) * N * OC), *act = malloc(sizeof(float) * N * OC);
  matmul_forward(pre, xr, Wr, b, N, C, OC);
  gelu_forward(act, pre, (size_t)N * OC);
  float *dpre = dev_from(NULL, sizeof(float) * N * OC);
  cuda_matmul_gelu_forward_bf16(dy, dpre, dxh, dWh, db, N, C, OC);
  float *hp = host_from(dpre, sizeof(float) * N * OC), *ha = host_from(dy, sizeof(float) * N * OC);
  close_enough("matmul_gelu_forward_bf16 pre", hp, pre, (size_t)N * OC, tol_k(C), 1e-5f);
  close_enough("matmul_gelu_forward_bf16 out", ha, act, (size_t)N * OC, tol_k(C), 1e-5f);
  cuda_free(dpre);
  free(pre); free(act); free(hp); free(ha);
  cuda_free(dxh); cuda_free(dWh); cuda_free(db); cuda_free(dy); cuda_free(dgx); cuda_free(dgW);
  cuda_free(dgb); cuda_free(dgoh); cuda_free(dgo);
  free(x); free(W); free(b); free(xr); free(Wr); free(xh); free(Wh); free(y); free(yfull); free(hy);
  free(go); free(gor); free(goh); free(gx); free(gW); free(gb); free(hx); free(hW); free(hb);
}

/* The same call twice gives the same bits (cuBLAS is deterministic for a
 * fixed GPU, stream and sizes; foil's kernels have no atomics). */
static void test_determinism(void) {
  float *x = randv((size_t)N * C, 1), *W = randv((size_t)OC * C, 1);
  float *dx = dev_from(x, sizeof(float) * N * C), *dW = dev_from(W, sizeof(float) * OC * C);
  float *dy = dev_from(NULL, sizeof(float) * N * OC), *dg1 = dev_from(NULL, sizeof(float) * OC * C), *dg2 = dev_from(NULL, sizeof(float) * OC * C);
  cuda_matmul_forward(dy, dx, dW, NULL, N, C, OC);
  cuda_matmul_backward(NULL, dg1, NULL, dy, dx, dW, N, C, OC);
  cuda_matmul_backward(NULL, dg2, NULL, dy, dx, dW, N, C, OC);
  float *a = host_from(dg1, sizeof(float) * OC * C), *b = host_from(dg2, sizeof(float) * OC * C);
  CHECK(memcmp(a, b, sizeof(float) * OC * C) == 0);
  cuda_free(dx); cuda_free(dW); cuda_free(dy); cuda_free(dg1); cuda_free(dg2);
  free(x); free(W); free(a); free(b);
}

int main(void) {
  gpu_require();
  RUN(test_fp32);
  RUN(test_bf16);
  RUN(test_determinism);
  cuda_shutdown();
  TEST_EXIT();
}
