/* test_gpu_optim.c — sumsq, AdamW (fp32, and fp32 master + bf16 working
 * copy), EMA against the CPU.
 *
 * Tolerances: sumsq rtol 1e-6 (float sums inside 4096-element blocks in a
 * different order, blocks in double). AdamW and EMA are element-wise with
 * the same operation order and the same host-computed scalars: rtol 1e-6
 * atol 1e-8 over 3 steps (sqrtf and division are correctly rounded on both;
 * only FMA contraction may differ). bf16 copy: equal to rounding the
 * device's own fp32 master (exact). */
#include "tests/gpu/gpu_test.h"

static void test_sumsq(void) {
  const size_t n = 1000003;
  float *g = randv(n, 1);
  float *dg = dev_from(g, sizeof(float) * n);
  double c = sumsq(g, n), d = cuda_sumsq(dg, n);
  CHECKF(fabs(c - d) <= 1e-6 * c, "sumsq gpu %.12g cpu %.12g", d, c);
  CHECK(cuda_sumsq(dg, 0) == 0.0);
  cuda_free(dg);
  free(g);
}

static void test_adamw(void) {
  const size_t n = 300007;
  float *p = randv(n, 1), *m = randv(n, 0.01f), *v = randv(n, 0.01f);
  for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
  float *dp = dev_from(p, sizeof(float) * n), *dm = dev_from(m, sizeof(float) * n), *dv = dev_from(v, sizeof(float) * n);
  float *dp2 = dev_from(p, sizeof(float) * n), *dm2 = dev_from(m, sizeof(float) * n), *dv2 = dev_from(v, sizeof(float) * n);
  uint16_t *dpb = dev_from(NULL, sizeof(uint16_t) * n);
  for (int t = 1; t <= 3; t++) {
    float *g = randv(n, 0.1f);
    float *dg = dev_from(g, sizeof(float) * n);
    adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
    cuda_adamw_update(dp, dg, dm, dv, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
    cuda_adamw_update_bf16(dp2, dpb, dg, dm2, dv2, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
    cuda_free(dg);
    free(g);
  }
  float *hp = host_from(dp, sizeof(float) * n), *hm = host_from(dm, sizeof(float) * n), *hv = host_from(dv, sizeof(float) * n);
  close_enough("adamw p", hp, p, n, 1e-8f, 1e-6f);
  close_enough("adamw m", hm, m, n, 1e-8f, 1e-6f);
  close_enough("adamw v", hv, v, n, 1e-10f, 1e-6f);
  float *hp2 = host_from(dp2, sizeof(float) * n);
  uint16_t *hb = host_from(dpb, sizeof(uint16_t) * n);
  close_enough("adamw_bf16 master = adamw", hp2, hp, n, 0, 0);
  int same = 1;
  for (size_t i = 0; i < n; i++) same &= hb[i] == bf16_of(hp2[i]);
  CHECKF(same, "bf16 working copy is the rounded master");
  cuda_free(dp); cuda_free(dm); cuda_free(dv); cuda_free(dp2); cuda_free(dm2); cuda_free(dv2); cuda_free(dpb);
  free(p); free(m); free(v); free(hp); free(hm); free(hv); free(hp2); free(hb);
}

static void test_ema(void) {
  const size_t n = 50001;
  float *a = randv(n, 1), *b = randv(n, 1);
  float *da = dev_from(a, sizeof(float) * n), *db = dev_from(b, sizeof(float) * n);
  ema_update(a, b, n, 0.995f);
  cuda_ema_update(da, db, n, 0.995f);
  float *h = host_from(da, sizeof(float) * n);
  close_enough("ema_update", h, a, n, 1e-8f, 1e-6f);
  cuda_free(da); cuda_free(db);
  free(a); free(b); free(h);
}

int main(void) {
  gpu_require();
  RUN(test_sumsq);
  RUN(test_adamw);
  RUN(test_ema);
  cuda_shutdown();
  TEST_EXIT();
}
