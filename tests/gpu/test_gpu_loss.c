/* test_gpu_loss.c — softmax cross-entropy and InfoNCE (in-batch + hard
 * negatives, a MoCo queue, DCL, learnable temperature) against the CPU.
 *
 * Tolerances (fp32): probabilities rtol 1e-5 atol 1e-7; per-row losses and
 * the mean loss rtol 1e-5 (row sums in double on both sides; the logits
 * differ by summation order of D-term dots); gradients rtol 1e-4 atol 1e-6;
 * dscale rtol 1e-4; the count of correct rows exactly (inputs are drawn so
 * no row has a near-tie for its maximum). */
#include "tests/gpu/gpu_test.h"

static void test_crossentropy(void) {
  enum { N = 37, V = 1003 };
  float *x = randv((size_t)N * V, 8);
  int32_t lab[N];
  for (int i = 0; i < N; i++) lab[i] = (i * 131) % V;
  float *loss = malloc(sizeof(float) * N), *p = malloc(sizeof(float) * N * V);
  crossentropy_forward(loss, p, x, lab, N, V);
  float *dx = dev_from(x, sizeof(float) * N * V), *dp = dev_from(NULL, sizeof(float) * N * V);
  float *dl = dev_from(NULL, sizeof(float) * N);
  int32_t *dlab = dev_from(lab, sizeof lab);
  cuda_crossentropy_forward(dl, dp, dx, dlab, N, V);
  float *hl = host_from(dl, sizeof(float) * N), *hp = host_from(dp, sizeof(float) * N * V);
  close_enough("crossentropy_forward losses", hl, loss, N, 1e-6f, 1e-5f);
  close_enough("crossentropy_forward probs", hp, p, (size_t)N * V, 1e-7f, 1e-5f);
  float *g = randv((size_t)N * V, 1);
  float *dg = dev_from(g, sizeof(float) * N * V);
  cuda_upload(dp, p, sizeof(float) * N * V, NULL);
  crossentropy_backward(g, p, lab, N, V, 0.25f);
  cuda_crossentropy_backward(dg, dp, dlab, N, V, 0.25f);
  float *hg = host_from(dg, sizeof(float) * N * V);
  close_enough("crossentropy_backward (FMA or not)", hg, g, (size_t)N * V, 1e-8f, 1e-6f);
  cuda_free(dx); cuda_free(dp); cuda_free(dl); cuda_free(dlab); cuda_free(dg);
  free(x); free(loss); free(p); free(hl); free(hp); free(g); free(hg);
}

static void run_infonce(int nx, int decoupled, int learn_scale, const char *name) {
  enum { NQ = 24, NK = 48, D = 64 };
  const int nt = NK + nx;
  float *q = randv((size_t)NQ * D, 1), *k = randv((size_t)NK * D, 1);
  float *kx = nx ? randv((size_t)nx * D, 1) : NULL;
  int32_t lab[NQ];
  for (int i = 0; i < NQ; i++) {
    lab[i] = 2 * i; /* the positive: make it likely the argmax, clearly */
    for (int d = 0; d < D; d++) k[(size_t)lab[i] * D + d] = q[(size_t)i * D + d] + 0.3f * k[(size_t)lab[i] * D + d];
  }
  for (int d = 0; d < D; d++) k[(size_t)lab[1] * D + d] = -q[(size_t)1 * D + d]; /* one wrong row */
  const float scale = 7.5f;
  float *p = malloc(sizeof(float) * NQ * nt);
  int right = -1, gright = -2;
  float loss = infonce_forward(p, &right, q, NQ, k, NK, kx, nx, D, lab, scale, decoupled);
  float *dq = dev_from(q, sizeof(float) * NQ * D), *dk = dev_from(k, sizeof(float) * NK * D);
  float *dkx = nx ? dev_from(kx, sizeof(float) * nx * D) : NULL;
  float *dp = dev_from(NULL, sizeof(float) * NQ * nt);
  int32_t *dlab = dev_from(lab, sizeof lab);
  float gloss = cuda_infonce_forward(dp, &gright, dq, NQ, dk, NK, dkx, nx, D, dlab, scale, decoupled);
  float *hp = host_from(dp, sizeof(float) * NQ * nt);
  char what[160];
  snprintf(what, sizeof what, "%s: loss", name);
  close_enough(what, &gloss, &loss, 1, 0, 1e-5f);
  CHECKF(gright == right, "%s: correct %d vs %d", name, gright, right);
  CHECKF(right < NQ, "%s: the wrong row is counted wrong", name);
  snprintf(what, sizeof what, "%s: probs", name);
  close_enough(what, hp, p, (size_t)NQ * nt, 1e-7f, 1e-5f);
  /* backward from the CPU's probs into nonzero gradients */
  float *gq = randv((size_t)NQ * D, 0.1f), *gk = randv((size_t)NK * D, 0.1f);
  float *dgq = dev_from(gq, sizeof(float) * NQ * D), *dgk = dev_from(gk, sizeof(float) * NK * D);
  cuda_upload(dp, p, sizeof(float) * NQ * nt, NULL);
  float ds = 0.5f, gds = 0.5f;
  infonce_backward(gq, gk, learn_scale ? &ds : NULL, p, q, NQ, k, NK, kx, nx, D, lab, scale, 0.8f);
  cuda_infonce_backward(dgq, dgk, learn_scale ? &gds : NULL, dp, dq, NQ, dk, NK, dkx, nx, D, dlab, scale, 0.8f);
  float *hq = host_from(dgq, sizeof(float) * NQ * D), *hk = host_from(dgk, sizeof(float) * NK * D);
  float *hg = host_from(dp, sizeof(float) * NQ * nt);
  snprintf(what, sizeof what, "%s: dlogits", name);
  close_enough(what, hg, p, (size_t)NQ * nt, 1e-7f, 1e-5f);
  snprintf(what, sizeof what, "%s: dq", name);
  close_enough(what, hq, gq, (size_t)NQ * D, 1e-6f, 1e-4f);
  snprintf(what, sizeof what, "%s: dk", name);
  close_enough(what, hk, gk, (size_t)NK * D, 1e-6f, 1e-4f);
  if (learn_scale) {
    snprintf(what, sizeof what, "%s: dscale", name);
    close_enough(what, &gds, &ds, 1, 1e-6f, 1e-4f);
    CHECKF(ds != 0.5f, "%s: dscale accumulated", name);
  }
  cuda_free(dq); cuda_free(dk); cuda_free(dkx); cuda_free(dp); cuda_free(dlab); cuda_free(dgq); cuda_free(dgk);
  free(q); free(k); free(kx); free(p); free(gq); free(gk); free(hp); free(hq); free(hk); free(hg);
}

static void test_infonce(void) { run_infonce(0, 0, 0, "in-batch"); }
static void test_infonce_queue(void) { run_infonce(40, 0, 0, "MoCo queue"); }
static void test_infonce_dcl(void) { run_infonce(40, 1, 0, "DCL + queue"); }
static void test_infonce_scale(void) { run_infonce(0, 0, 1, "learnable temperature"); }
static void test_infonce_scale_queue(void) { run_infonce(17, 0, 1, "learnable temperature + queue"); }

int main(void) {
  gpu_require();
  RUN(test_crossentropy);
  RUN(test_infonce);
  RUN(test_infonce_queue);
  RUN(test_infonce_dcl);
  RUN(test_infonce_scale);
  RUN(test_infonce_scale_queue);
  cuda_shutdown();
  TEST_EXIT();
}
