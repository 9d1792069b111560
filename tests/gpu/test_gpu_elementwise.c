/* test_gpu_elementwise.c — the one-pass CUDA kernels against their CPU
 * twins on the same inputs: embedding, layernorm, GELU, residual, scale,
 * dropout (same mask bits), pooling, L2 normalization, bf16 conversion.
 *
 * Tolerances (fp32): element-wise maps agree to a few ulps (rtol 1e-6,
 * atol 1e-7; GELU uses erfcf/expf of CUDA's libdevice vs the CPU's
 * polynomials: rtol 2e-6, atol 1e-6). Row reductions (layernorm, L2,
 * pooling) sum in a different order: rtol 1e-5, atol 1e-6. Column sums over
 * many rows (dw, db): rtol 1e-5, atol 1e-5. Embedding backward sums tokens in
 * the CPU's order: exact. Dropout forward: the kept set is the same bits,
 * exact. An accumulate of a product (dropout and pooling backward) may be
 * one FMA on one side and two roundings on the other: rtol 1e-6. */
#include "tests/gpu/gpu_test.h"

enum { B = 3, T = 17, C = 96, V = 50 };

static void test_embed(void) {
  int32_t ids[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 7) % 11; /* repeated ids */
  float *wte = randv((size_t)V * C, 1), *wpe = randv((size_t)T * C, 1);
  float *out = malloc(sizeof(float) * B * T * C);
  embed_forward(out, ids, wte, wpe, B, T, C);
  int32_t *dids = dev_from(ids, sizeof ids);
  float *dwte = dev_from(wte, sizeof(float) * V * C), *dwpe = dev_from(wpe, sizeof(float) * T * C);
  float *dout = dev_from(NULL, sizeof(float) * B * T * C);
  cuda_embed_forward(dout, dids, dwte, dwpe, B, T, C);
  float *g = host_from(dout, sizeof(float) * B * T * C);
  close_enough("embed_forward", g, out, (size_t)B * T * C, 0, 0);
  /* backward: accumulate into nonzero gradients */
  float *go = randv((size_t)B * T * C, 1), *gte = randv((size_t)V * C, 1), *gpe = randv((size_t)T * C, 1);
  float *dgo = dev_from(go, sizeof(float) * B * T * C);
  float *dgte = dev_from(gte, sizeof(float) * V * C), *dgpe = dev_from(gpe, sizeof(float) * T * C);
  embed_backward(gte, gpe, go, ids, B, T, C);
  cuda_embed_backward(dgte, dgpe, dgo, dids, B, T, C);
  float *h1 = host_from(dgte, sizeof(float) * V * C), *h2 = host_from(dgpe, sizeof(float) * T * C);
  close_enough("embed_backward dwte (same order: exact)", h1, gte, (size_t)V * C, 0, 0);
  close_enough("embed_backward dwpe (same order: exact)", h2, gpe, (size_t)T * C, 0, 0);
  cuda_free(dids); cuda_free(dwte); cuda_free(dwpe); cuda_free(dout); cuda_free(dgo);
  cuda_free(dgte); cuda_free(dgpe);
  free(wte); free(wpe); free(out); free(g); free(go); free(gte); free(gpe); free(h1); free(h2);
}

static void test_layernorm(void) {
  const int N = B * T;
  float *x = randv((size_t)N * C, 3), *w = randv(C, 1), *b = randv(C, 1);
  for (int i = 0; i < N * C; i++) x[i] += 0.5f; /* a mean away from 0 */
  float *y = malloc(sizeof(float) * N * C), *mean = malloc(sizeof(float) * N), *rstd = malloc(sizeof(float) * N);
  layernorm_forward(y, mean, rstd, x, w, b, N, C, 1e-5f);
  float *dx = dev_from(x, sizeof(float) * N * C), *dw = dev_from(w, sizeof(float) * C), *db = dev_from(b, sizeof(float) * C);
  float *dy = dev_from(NULL, sizeof(float) * N * C), *dm = dev_from(NULL, sizeof(float) * N), *dr = dev_from(NULL, sizeof(float) * N);
  cuda_layernorm_forward(dy, dm, dr, dx, dw, db, N, C, 1e-5f);
  float *gy = host_from(dy, sizeof(float) * N * C), *gm = host_from(dm, sizeof(float) * N), *gr = host_from(dr, sizeof(float) * N);
  close_enough("layernorm_forward out", gy, y, (size_t)N * C, 1e-6f, 1e-5f);
  close_enough("layernorm_forward mean", gm, mean, N, 1e-7f, 1e-6f);
  close_enough("layernorm_forward rstd", gr, rstd, N, 0, 1e-6f);
  /* backward: the CPU's mean/rstd fed to both */
  float *go = randv((size_t)N * C, 1), *gx = randv((size_t)N * C, 0.1f), *gw = randv(C, 0.1f), *gb = randv(C, 0.1f);
  float *dgo = dev_from(go, sizeof(float) * N * C), *dgx = dev_from(gx, sizeof(float) * N * C);
  float *dgw = dev_from(gw, sizeof(float) * C), *dgb = dev_from(gb, sizeof(float) * C);
  cuda_upload(dm, mean, sizeof(float) * N, NULL);
  cuda_upload(dr, rstd, sizeof(float) * N, NULL);
  layernorm_backward(gx, gw, gb, go, x, w, mean, rstd, N, C);
  cuda_layernorm_backward(dgx, dgw, dgb, dgo, dx, dw, dm, dr, N, C);
  float *hx = host_from(dgx, sizeof(float) * N * C), *hw = host_from(dgw, sizeof(float) * C), *hb = host_from(dgb, sizeof(float) * C);
  close_enough("layernorm_backward dinp", hx, gx, (size_t)N * C, 1e-5f, 1e-5f);
  close_enough("layernorm_backward dw", hw, gw, C, 1e-5f, 1e-5f);
  close_enough("layernorm_backward db", hb, gb, C, 1e-5f, 1e-5f);
  cuda_free(dx); cuda_free(dw); cuda_free(db); cuda_free(dy); cuda_free(dm); cuda_free(dr);
  cuda_free(dgo); cuda_free(dgx); cuda_free(dgw); cuda_free(dgb);
  free(x); free(w); free(b); free(y); free(mean); free(rstd); free(gy); free(gm); free(gr);
  free(go); free(gx); free(gw); free(gb); free(hx); free(hw); free(hb);
}

static void test_gelu_residual(void) {
  const size_t n = 100003;
  float *x = randv(n, 6), *y = malloc(sizeof(float) * n), *go = randv(n, 1), *gx = randv(n, 1);
  x[0] = 0.0f; /* the x == 0 branch of the backward */
  gelu_forward(y, x, n);
  float *dx = dev_from(x, sizeof(float) * n), *dy = dev_from(NULL, sizeof(float) * n);
  float *dgo = dev_from(go, sizeof(float) * n), *dgx = dev_from(gx, sizeof(float) * n);
  cuda_gelu_forward(dy, dx, n);
  float *hy = host_from(dy, sizeof(float) * n);
  close_enough("gelu_forward", hy, y, n, 1e-6f, 2e-6f);
  /* the backward reads the forward's out: give both the CPU's */
  cuda_upload(dy, y, sizeof(float) * n, NULL);
  gelu_backward(gx, x, y, go, n);
  cuda_gelu_backward(dgx, dx, dy, dgo, n);
  float *hx = host_from(dgx, sizeof(float) * n);
  close_enough("gelu_backward", hx, gx, n, 1e-6f, 2e-6f);
  /* residual, add, scale: exact */
  residual_forward(y, x, go, n);
  cuda_residual_forward(dy, dx, dgo, n);
  float *hr = host_from(dy, sizeof(float) * n);
  close_enough("residual_forward", hr, y, n, 0, 0);
  add_inplace(y, x, n);
  cuda_add_inplace(dy, dx, n);
  scale_inplace(y, n, 0.37f);
  cuda_scale_inplace(dy, n, 0.37f);
  float *ha = host_from(dy, sizeof(float) * n);
  close_enough("add_inplace + scale_inplace", ha, y, n, 0, 0);
  cuda_free(dx); cuda_free(dy); cuda_free(dgo); cuda_free(dgx);
  free(x); free(y); free(go); free(gx); free(hy); free(hx); free(hr); free(ha);
}

static void test_dropout(void) {
  const size_t n = 70001;
  const uint64_t seed = 0x1234567890abcdefull, stream = 7, offset = 12345;
  float *x = randv(n, 1), *y = malloc(sizeof(float) * n), *gx = randv(n, 1);
  dropout_forward(y, x, n, 0.3f, seed, stream, offset);
  float *dx = dev_from(x, sizeof(float) * n), *dy = dev_from(NULL, sizeof(float) * n);
  cuda_dropout_forward(dy, dx, n, 0.3f, seed, stream, offset);
  float *hy = host_from(dy, sizeof(float) * n);
  close_enough("dropout_forward (same mask bits: exact)", hy, y, n, 0, 0);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) kept += hy[i] != 0.0f;
  CHECKF(fabs((double)kept / n - 0.7) < 0.01, "kept fraction %g", (double)kept / n);
  /* in place, and the backward with the same mask */
  cuda_dropout_forward(dx, dx, n, 0.3f, seed, stream, offset);
  float *hin = host_from(dx, sizeof(float) * n);
  close_enough("dropout_forward in place", hin, y, n, 0, 0);
  float *dgx = dev_from(gx, sizeof(float) * n);
  cuda_upload(dx, x, sizeof(float) * n, NULL);
  dropout_backward(gx, x, n, 0.3f, seed, stream, offset);
  cuda_dropout_backward(dgx, dx, n, 0.3f, seed, stream, offset);
  float *hg = host_from(dgx, sizeof(float) * n);
  close_enough("dropout_backward (FMA or not)", hg, gx, n, 1e-8f, 1e-6f);
  /* p = 0 copies */
  cuda_dropout_forward(dy, dx, n, 0.0f, seed, stream, offset);
  float *h0 = host_from(dy, sizeof(float) * n);
  close_enough("dropout p=0 copies", h0, x, n, 0, 0);
  cuda_free(dx); cuda_free(dy); cuda_free(dgx);
  free(x); free(y); free(gx); free(hy); free(hin); free(hg); free(h0);
}

static void test_pool_l2(void) {
  uint8_t mask[B * T];
  for (int i = 0; i < B * T; i++) mask[i] = (i % T) < (T - 4 * (i / T)); /* lengths 17, 13, 9 */
  mask[2 * T + 0] = 0; /* a hole */
  float *x = randv((size_t)B * T * C, 1);
  uint8_t *dmask = dev_from(mask, sizeof mask);
  float *dx = dev_from(x, sizeof(float) * B * T * C);
  for (int mode = 0; mode < 2; mode++) {
    float p[B * C], *dp = dev_from(NULL, sizeof p);
    pool_forward(p, x, mask, B, T, C, mode);
    cuda_pool_forward(dp, dx, dmask, B, T, C, mode);
    float *hp = host_from(dp, sizeof p);
    close_enough(mode ? "pool_forward first" : "pool_forward mean", hp, p, B * C, 1e-6f, 1e-5f);
    float *go = randv((size_t)B * C, 1), *gx = randv((size_t)B * T * C, 1);
    float *dgo = dev_from(go, sizeof(float) * B * C), *dgx = dev_from(gx, sizeof(float) * B * T * C);
    pool_backward(gx, go, mask, B, T, C, mode);
    cuda_pool_backward(dgx, dgo, dmask, B, T, C, mode);
    float *hg = host_from(dgx, sizeof(float) * B * T * C);
    close_enough(mode ? "pool_backward first" : "pool_backward mean", hg, gx, (size_t)B * T * C, 1e-8f, 1e-6f);
    cuda_free(dp); cuda_free(dgo); cuda_free(dgx);
    free(hp); free(go); free(gx); free(hg);
  }
  /* L2 normalization, one zero row (clamped norm) */
  const int N = B * T;
  for (int c = 0; c < C; c++) x[5 * C + c] = 0.0f;
  cuda_upload(dx, x, sizeof(float) * N * C, NULL);
  float *y = malloc(sizeof(float) * N * C), *nr = malloc(sizeof(float) * N);
  float *dy = dev_from(NULL, sizeof(float) * N * C), *dn = dev_from(NULL, sizeof(float) * N);
  l2norm_forward(y, nr, x, N, C);
  cuda_l2norm_forward(dy, dn, dx, N, C);
  float *hy = host_from(dy, sizeof(float) * N * C), *hn = host_from(dn, sizeof(float) * N);
  close_enough("l2norm_forward out", hy, y, (size_t)N * C, 1e-7f, 1e-6f);
  close_enough("l2norm_forward norm", hn, nr, N, 0, 1e-6f);
  float *go = randv((size_t)N * C, 1), *gx = randv((size_t)N * C, 1);
  float *dgo = dev_from(go, sizeof(float) * N * C), *dgx = dev_from(gx, sizeof(float) * N * C);
  cuda_upload(dy, y, sizeof(float) * N * C, NULL);
  cuda_upload(dn, nr, sizeof(float) * N, NULL);
  l2norm_backward(gx, go, y, nr, N, C);
  cuda_l2norm_backward(dgx, dgo, dy, dn, N, C);
  float *hg = host_from(dgx, sizeof(float) * N * C);
  close_enough("l2norm_backward", hg, gx, (size_t)N * C, 1e-6f, 1e-5f);
  cuda_free(dmask); cuda_free(dx); cuda_free(dy); cuda_free(dn); cuda_free(dgo); cuda_free(dgx);
  free(x); free(y); free(nr); free(hy); free(hn); free(go); free(gx); free(hg);
}

static void test_bf16(void) {
  const size_t n = 4099;
  float *x = randv(n, 100);
  x[0] = 1.00390625f;  /* 1 + 2^-8: a tie, rounds to even (1.0) */
  x[1] = 1.01171875f;  /* 1 + 3·2^-8: a tie, rounds up */
  float *dx = dev_from(x, sizeof(float) * n), *dback = dev_from(NULL, sizeof(float) * n);
  uint16_t *dh = dev_from(NULL, sizeof(uint16_t) * n);
  cuda_f32_to_bf16(dh, dx, n);
  cuda_bf16_to_f32(dback, dh, n);
  uint16_t *hh = host_from(dh, sizeof(uint16_t) * n);
  float *hb = host_from(dback, sizeof(float) * n);
  int same = 1;
  for (size_t i = 0; i < n; i++) same &= hh[i] == bf16_of(x[i]) && hb[i] == f32_of_bf16(hh[i]);
  CHECKF(same, "bf16 bits differ from round-to-nearest-even");
  CHECK(hb[0] == 1.0f && hb[1] == 1.015625f);
  cuda_free(dx); cuda_free(dback); cuda_free(dh);
  free(x); free(hh); free(hb);
}

int main(void) {
  gpu_require();
  RUN(test_embed);
  RUN(test_layernorm);
  RUN(test_gelu_residual);
  RUN(test_dropout);
  RUN(test_pool_l2);
  RUN(test_bf16);
  cuda_shutdown();
  TEST_EXIT();
}
