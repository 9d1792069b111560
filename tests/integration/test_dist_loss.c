/* test_dist_loss.c — N ranks × batch B equal 1 rank × batch N·B.
 *
 * Run under mpirun with N = 2 or 3. Every rank builds the same encoder and
 * the same global batch (N·B pairs, N·n_neg hard negatives). Reference: the
 * whole batch on one rank, no communication (computed on every rank).
 * Distributed: each rank encodes its own B pairs and negatives; the loss
 * all-gathers the normalized rows and routes the gradients back; the
 * parameter gradients are averaged over ranks. Dropout is off: its masks are
 * indexed by a row's position in its rank's batch, which differs between the
 * two layouts (the rest of the computation is per sequence).
 * Tolerances: loss 1e-5 relative; each gradient tensor 1e-4 relative
 * (‖a−b‖₂/‖b‖₂); parameters after 3 AdamW steps 1e-4 relative.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/encoder.h"
#include "model/loss.h"
#include "model/optim.h"
#include "tests/test.h"
#include "worker/run/comm.h"

enum { B = 3, NNEG = 2, T = 6 };


/* Global batch row r (0 ≤ r < W·(2B+NNEG)) in the single-rank layout
 * [q_all; p_all; neg_all]; ids and lengths depend only on the row. */
static void row_tokens(int32_t *ids, uint8_t *mask, int grow) {
  int len = 2 + (int)(rng_u32(5, 1, (uint64_t)grow) % (T - 1));
  for (int t = 0; t < T; t++) {
    ids[t] = (int32_t)(rng_u32(5, 2, (uint64_t)grow * T + (uint64_t)t) % 50);
    mask[t] = t < len;
  }
}

int main(int argc, char **argv) {
  foil_err err = {0};
  comm *c;
  if (comm_init(&c, &argc, &argv, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  kernels_set_threads(1);
  int W = comm_world(c), rank = comm_rank(c);
  encoder_config cfg;
  encoder_config_default(&cfg);
  cfg.n_layers = 2, cfg.d_model = 16, cfg.n_heads = 2, cfg.d_ff = 32, cfg.vocab = 50;
  cfg.max_len = T, cfg.proj_dim = 8, cfg.dropout = 0.0f;
  const int D = 8, Rg = W * (2 * B + NNEG), Rl = 2 * B + NNEG;

  encoder *ref = NULL, *dist = NULL;
  loss *lr = NULL, *ld = NULL;
  optim *oref = NULL, *odist = NULL;
  optim_config oc;
  optim_config_default(&oc);
  oc.max_grad_norm = 1.0f;
  CHECK(encoder_new(&ref, &cfg, &err) == 0 && encoder_new(&dist, &cfg, &err) == 0);
  CHECK(loss_new(&lr, &err) == 0 && loss_new(&ld, &err) == 0);
  CHECK(optim_new(&oref, encoder_num_params(ref), &oc, &err) == 0);
  CHECK(optim_new(&odist, encoder_num_params(dist), &oc, &err) == 0);
  encoder_init(ref, 11);
  encoder_init(dist, 11);
  size_t np = encoder_num_params(ref);

  int32_t *gids = malloc(sizeof(int32_t) * Rg * T), *lids = malloc(sizeof(int32_t) * Rl * T);
  uint8_t *gmask = malloc((size_t)Rg * T), *lmask = malloc((size_t)Rl * T);
  float *gdemb = malloc(sizeof(float) * Rg * D), *ldemb = malloc(sizeof(float) * Rl * D);
  for (int r = 0; r < Rg; r++) row_tokens(gids + r * T, gmask + r * T, r);
  /* this rank's rows: its queries, positives and negatives */
  for (int i = 0; i < Rl; i++) {
    int grow = i < B ? rank * B + i
                     : i < 2 * B ? W * B + rank * B + (i - B) : 2 * W * B + rank * NNEG + (i - 2 * B);
    memcpy(lids + i * T, gids + grow * T, sizeof(int32_t) * T);
    memcpy(lmask + i * T, gmask + grow * T, T);
  }
  loss_comm lcomm = comm_loss_comm(c);
  const loss_opts lo = {.temperature = 0.07f, .symmetric = 1};
  double worst_loss = 0, worst_grad = 0;
  for (int step = 0; step < 3; step++) {
    const float *emb;
    loss_result rref, rdist;
    encoder_zero_grads(ref);
    encoder_zero_grads(dist);
    CHECK(encoder_forward(ref, &emb, gids, gmask, Rg, T, 1, 1, (uint64_t)step, &err) == 0);
    CHECK(loss_infonce(lr, &rref, gdemb, emb, W * B, W * NNEG, D, &lo, NULL, &err) == 0);
    CHECK(encoder_backward(ref, gdemb, &err) == 0);
    CHECK(encoder_forward(dist, &emb, lids, lmask, Rl, T, 1, 1, (uint64_t)step, &err) == 0);
    CHECK(loss_infonce(ld, &rdist, ldemb, emb, B, NNEG, D, &lo, &lcomm, &err) == 0);
    CHECK(encoder_backward(dist, ldemb, &err) == 0);
    CHECK(comm_allreduce_mean(c, encoder_grads(dist), np, &err) == 0);
    double el = fabs(rdist.value - rref.value) / fabs(rref.value);
    worst_loss = fmax(worst_loss, el);
    CHECKF(el <= 1e-5, "step %d: loss %.8f (W=%d) vs %.8f (1 rank)", step, rdist.value, W, rref.value);
    CHECKF(fabs(rdist.accuracy - rref.accuracy) < 1e-6, "accuracy %.4f vs %.4f", rdist.accuracy,
           rref.accuracy);
    const encoder_tensor *t = encoder_tensors(ref);
    for (int i = 0; i < ENC_NTENSORS; i++) {
      if (!t[i].size) continue;
      double e = test_rel_err(encoder_grads(dist) + t[i].offset, encoder_grads(ref) + t[i].offset, t[i].size);
      worst_grad = fmax(worst_grad, e);
      CHECKF(e <= 1e-4, "step %d: gradient of %s rel %.3g", step, t[i].name, e);
    }
    optim_step(oref, ref, 1e-3f);
    optim_step(odist, dist, 1e-3f);
  }
  double ep = test_rel_err(encoder_params(dist), encoder_params(ref), np);
  CHECKF(ep <= 1e-4, "parameters after 3 steps rel %.3g", ep);
  if (rank == 0)
    printf("world %d: loss rel %.2e, worst gradient rel %.2e, params after 3 steps rel %.2e\n", W,
           worst_loss, worst_grad, ep);
  /* every rank must pass */
  double fails = test_failures;
  comm_allreduce_sum_f64(c, &fails, 1, &err);
  free(gids); free(lids); free(gmask); free(lmask); free(gdemb); free(ldemb);
  optim_destroy(&oref); optim_destroy(&odist);
  loss_destroy(&lr); loss_destroy(&ld);
  encoder_destroy(&ref); encoder_destroy(&dist);
  comm_destroy(&c);
  if (rank == 0) printf("%d checks, %d failed (all ranks: %.0f failed)\n", test_checks, test_failures, fails);
  return fails > 0;
}
