/* test_encoder.c — the encoder, loss and optimizer as one training step:
 *   - finite differences through the whole model WITH dropout on (the
 *     PyTorch reference test covers dropout off): the masks are a function of
 *     (seed, call), so the loss is a deterministic function of the weights;
 *   - same seed => identical bits after several AdamW steps, dropout on;
 *     another seed => different bits; and the bits do not depend on the
 *     thread count;
 *   - activations are allocated once per shape, not per step;
 *   - bad configs and inputs are refused with a message;
 *   - gradients announced once each, already final (encoder_on_grads_ready);
 *   - row maps (model/rowmap.h): 2 ranks' halves of a batch, dropout on,
 *     give 1 rank's embeddings and gradients, also in GradCache slices;
 *   - host copies of parameters and gradients; bf16 precision on and off
 *     (PyTorch proves its numbers: reference.encoder's post_bf16); a CUDA
 *     encoder, optimizer, loss or queue refused with its reason where no
 *     CUDA backend is up.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/encoder.h"
#include "model/loss.h"
#include "model/moco.h"
#include "model/optim.h"
#include "tests/test.h"
#include "tests/unit/ready_log.h"

enum { B = 3, NNEG = 2, R = 2 * B + NNEG, T = 7 };

static void small_config(encoder_config *c, int pre_ln) {
  encoder_config_default(c);
  c->n_layers = 2, c->d_model = 16, c->n_heads = 2, c->d_ff = 24, c->vocab = 40;
  c->max_len = 8, c->proj_dim = 8, c->pre_ln = pre_ln, c->dropout = 0.2f;
}

static void batch(int32_t *ids, uint8_t *mask, uint64_t seed) {
  for (int r = 0; r < R; r++) {
    int len = 2 + (int)(rng_u32(seed, 1, (uint64_t)r) % (T - 1));
    for (int t = 0; t < T; t++) {
      ids[r * T + t] = (int32_t)(rng_u32(seed, 2, (uint64_t)(r * T + t)) % 40);
      mask[r * T + t] = t < len;
    }
  }
}

/* loss at the current weights; fills demb when not NULL */
static double step_loss(encoder *enc, loss *ls, const int32_t *ids, const uint8_t *mask,
                        float *demb) {
  const float *emb;
  loss_result res;
  float scratch[R * 16];
  foil_err err;
  if (encoder_forward(enc, &emb, ids, mask, R, T, 1, 42, 5, &err)) return NAN;
  const loss_opts opts = {.temperature = 0.1f, .symmetric = 1};
  if (loss_infonce(ls, &res, demb ? demb : scratch, emb, B, NNEG, encoder_out_dim(enc), &opts, NULL,
                   &err))
    return NAN;
  return res.value;
}

static void test_fd_with_dropout(int pre_ln) {
  encoder_config cfg;
  small_config(&cfg, pre_ln);
  encoder *enc;
  loss *ls;
  foil_err err;
  CHECK(encoder_new(&enc, &cfg, &err) == 0 && loss_new(&ls, &err) == 0);
  encoder_init(enc, 3);
  /* larger weights than BERT's 0.02 so every path carries signal */
  float *p = encoder_params(enc);
  const encoder_tensor *t = encoder_tensors(enc);
  for (int i = 0; i < ENC_NTENSORS; i++)
    for (size_t k = 0; k < t[i].size; k++)
      p[t[i].offset + k] += 0.2f * (rng_uniform(9, (uint64_t)i, k) - 0.5f);
  int32_t ids[R * T];
  uint8_t mask[R * T];
  batch(ids, mask, 11);
  float demb[R * 8];
  encoder_zero_grads(enc);
  step_loss(enc, ls, ids, mask, demb);
  CHECK(encoder_backward(enc, demb, &err) == 0);
  const float *g = encoder_grads(enc);
  /* a few entries of every tensor, central differences in float */
  int bad = 0, checked = 0;
  double worst = 0;
  for (int i = 0; i < ENC_NTENSORS; i++) {
    for (int s = 0; s < 4 && t[i].size; s++) {
      size_t k = t[i].offset + rng_u32(17, (uint64_t)i, (uint64_t)s) % t[i].size;
      if (i == ENC_WTE) k = t[i].offset + (size_t)ids[s] * cfg.d_model + (size_t)s; /* a used row */
      float old = p[k], h = 1e-2f;
      p[k] = old + h;
      double lp = step_loss(enc, ls, ids, mask, NULL);
      p[k] = old - h;
      double lm = step_loss(enc, ls, ids, mask, NULL);
      p[k] = old;
      double num = (lp - lm) / (2.0 * h), an = g[k];
      double err_ = fabs(num - an) / fmax(1e-2, fmax(fabs(num), fabs(an)));
      worst = fmax(worst, err_);
      bad += err_ > 2e-2;
      checked++;
    }
  }
  CHECKF(bad == 0, "%s: %d of %d gradient entries off (worst rel %.3g)", pre_ln ? "pre-LN" : "post-LN",
         bad, checked, worst);
  loss_destroy(&ls);
  encoder_destroy(&enc);
}

static void test_fd_post_ln(void) { test_fd_with_dropout(0); }
static void test_fd_pre_ln(void) { test_fd_with_dropout(1); }

/* Trains a few steps; returns the final parameters (caller frees). */
static float *train(uint64_t seed, int threads, size_t *n) {
  kernels_set_threads(threads);
  encoder_config cfg;
  small_config(&cfg, 0);
  encoder *enc;
  loss *ls;
  optim *opt;
  optim_config oc;
  optim_config_default(&oc);
  oc.max_grad_norm = 1.0f;
  foil_err err;
  encoder_new(&enc, &cfg, &err);
  loss_new(&ls, &err);
  optim_new(&opt, encoder_num_params(enc), &oc, &err);
  encoder_init(enc, seed);
  int32_t ids[R * T];
  uint8_t mask[R * T];
  float demb[R * 8];
  for (int s = 0; s < 5; s++) {
    batch(ids, mask, 100 + (uint64_t)s);
    const float *emb;
    loss_result res;
    encoder_zero_grads(enc);
    encoder_forward(enc, &emb, ids, mask, R, T, 1, seed, (uint64_t)s, &err);
    const loss_opts opts = {.temperature = 0.05f, .symmetric = 1};
    loss_infonce(ls, &res, demb, emb, B, NNEG, 8, &opts, NULL, &err);
    encoder_backward(enc, demb, &err);
    optim_step(opt, enc, 1e-3f);
  }
  *n = encoder_num_params(enc);
  float *out = malloc(*n * sizeof(float));
  memcpy(out, encoder_params(enc), *n * sizeof(float));
  optim_destroy(&opt);
  loss_destroy(&ls);
  encoder_destroy(&enc);
  return out;
}

static void test_determinism(void) {
  size_t n;
  float *a = train(7, 2, &n), *b = train(7, 2, &n), *c = train(8, 2, &n), *d = train(7, 1, &n);
  CHECKF(memcmp(a, b, n * sizeof(float)) == 0, "same seed, two runs: different bits");
  CHECKF(memcmp(a, c, n * sizeof(float)) != 0, "different seeds gave the same bits");
  CHECKF(memcmp(a, d, n * sizeof(float)) == 0, "1 and 2 threads gave different bits");
  free(a);
  free(b);
  free(c);
  free(d);
  kernels_set_threads(2);
}

static void test_alloc_once_and_errors(void) {
  encoder_config cfg;
  small_config(&cfg, 1);
  encoder *enc;
  foil_err err = {0};
  CHECK(encoder_new(&enc, &cfg, &err) == 0);
  encoder_init(enc, 1);
  int32_t ids[R * T];
  uint8_t mask[R * T];
  batch(ids, mask, 5);
  const float *e1, *e2, *e3;
  CHECK(encoder_forward(enc, &e1, ids, mask, R, T, 1, 1, 0, &err) == 0);
  CHECK(encoder_forward(enc, &e2, ids, mask, R, T, 1, 1, 1, &err) == 0);
  CHECKF(e1 == e2, "second forward of the same shape reallocated");
  CHECK(encoder_forward(enc, &e3, ids, mask, R - 1, T - 1, 1, 1, 2, &err) == 0);
  CHECKF(e3 == e1, "a smaller shape reallocated");

  /* refused inputs */
  float demb[R * 8] = {0};
  CHECK(encoder_forward(enc, &e1, ids, mask, R, cfg.max_len + 1, 1, 1, 0, &err) == FOIL_EINVAL);
  CHECK(strstr(err.msg, "max_len") != NULL);
  ids[3] = 40;
  CHECK(encoder_forward(enc, &e1, ids, mask, R, T, 1, 1, 0, &err) == FOIL_EINVAL);
  CHECK(strstr(err.msg, "vocabulary") != NULL);
  ids[3] = 0;
  CHECK(encoder_forward(enc, &e1, ids, mask, R, T, 0, 1, 0, &err) == 0);
  CHECK(encoder_backward(enc, demb, &err) == FOIL_EPRECOND);
  encoder_destroy(&enc);
  CHECK(enc == NULL);

  /* refused configs, each naming its key */
  encoder_config c;
  small_config(&c, 0);
  c.n_heads = 3; /* does not divide 16 */
  CHECK(encoder_new(&enc, &c, &err) == FOIL_EINVAL && strstr(err.msg, "n_heads") && !enc);
  small_config(&c, 0);
  c.dropout = 1.0f;
  CHECK(encoder_new(&enc, &c, &err) == FOIL_EINVAL && strstr(err.msg, "dropout"));
  small_config(&c, 0);
  c.d_model = 0;
  CHECK(encoder_new(&enc, &c, &err) == FOIL_EINVAL && strstr(err.msg, "d_model"));
  small_config(&c, 0);
  c.vocab = -1;
  CHECK(encoder_new(&enc, &c, &err) == FOIL_EINVAL && strstr(err.msg, "vocab"));

  loss *ls;
  loss_result res;
  CHECK(loss_new(&ls, &err) == 0);
  const loss_opts zero_t = {.temperature = 0.0f};
  CHECK(loss_infonce(ls, &res, demb, demb, B, 0, 8, &zero_t, NULL, &err) == FOIL_EINVAL);
  CHECK(strstr(err.msg, "temperature") != NULL);
  /* symmetric DCL over one pair: the key -> query direction has no
   * negative (its denominator would be empty: NaN), refused by name */
  const loss_opts dcl1 = {.temperature = 0.05f, .symmetric = 1, .decoupled = 1};
  CHECK(loss_infonce(ls, &res, demb, demb, 1, 1, 8, &dcl1, NULL, &err) == FOIL_EINVAL &&
        strstr(err.msg, "symmetric DCL needs at least two pairs"));
  loss_destroy(&ls);
}

/* Backends without a GPU: the CPU's host copies are plain copies; a CUDA
 * encoder or optimizer is refused with a reason (no CUDA in this build, or
 * the CUDA backend not initialized); an unknown backend is refused. The
 * CUDA path itself is tests/gpu/test_gpu_encoder.c. */
static void test_backends(void) {
  encoder_config cfg;
  small_config(&cfg, 0);
  encoder *enc;
  foil_err err = {0};
  CHECK(encoder_new(&enc, &cfg, &err) == 0 && encoder_backend(enc) == DEVMEM_CPU);
  encoder_init(enc, 3);
  size_t n = encoder_num_params(enc);
  float *a = malloc(n * sizeof(float));
  CHECK(encoder_get_params(enc, a, &err) == 0 && memcmp(a, encoder_params(enc), n * sizeof(float)) == 0);
  for (size_t i = 0; i < n; i++) a[i] = (float)i * 1e-3f;
  CHECK(encoder_set_params(enc, a, &err) == 0 && encoder_params(enc)[n - 1] == a[n - 1]);
  encoder *twin = NULL; /* a clone: the same parameters in its own buffers */
  CHECK(encoder_clone_on(&twin, enc, DEVMEM_CPU, &err) == 0 && encoder_params(twin) != encoder_params(enc));
  CHECK(twin && memcmp(encoder_params(twin), encoder_params(enc), n * sizeof(float)) == 0);
  encoder_destroy(&twin);
  encoder_grads(enc)[0] = 5.0f;
  CHECK(encoder_get_grads(enc, a, &err) == 0 && a[0] == 5.0f);
  encoder_zero_grads(enc);
  CHECK(encoder_get_grads(enc, a, &err) == 0 && a[0] == 0.0f);
  /* precision: bf16 changes the embeddings a little, fp32 again restores
   * them bit for bit; an unknown precision is refused */
  int32_t ids[R * T];
  uint8_t mask[R * T];
  batch(ids, mask, 9);
  const int D = encoder_out_dim(enc);
  float e32[R * 8], e16[R * 8];
  const float *e;
  CHECK(encoder_precision(enc) == ENC_FP32);
  CHECK(encoder_forward(enc, &e, ids, mask, R, T, 1, 4, 2, &err) == 0);
  memcpy(e32, e, sizeof(float) * R * D);
  CHECK(encoder_set_precision(enc, ENC_BF16, &err) == 0 && encoder_precision(enc) == ENC_BF16);
  CHECK(encoder_forward(enc, &e, ids, mask, R, T, 1, 4, 2, &err) == 0);
  memcpy(e16, e, sizeof(float) * R * D);
  float dmax = 0, emax = 0;
  for (int i = 0; i < R * D; i++) dmax = fmaxf(dmax, fabsf(e16[i] - e32[i])), emax = fmaxf(emax, fabsf(e32[i]));
  CHECKF(dmax > 0 && dmax < 0.05f * emax, "bf16 embeddings differ from fp32 by %g (max |e| %g)", dmax, emax);
  float demb[R * 8];
  for (int i = 0; i < R * D; i++) demb[i] = 0.01f * (float)(i % 7 - 3);
  encoder_zero_grads(enc);
  CHECK(encoder_backward(enc, demb, &err) == 0);
  CHECK(encoder_set_precision(enc, ENC_FP32, &err) == 0);
  CHECK(encoder_forward(enc, &e, ids, mask, R, T, 1, 4, 2, &err) == 0);
  CHECK(memcmp(e, e32, sizeof(float) * R * D) == 0);
  CHECK(encoder_set_precision(enc, 3, &err) == FOIL_EINVAL && strstr(err.msg, "precision"));
  encoder_destroy(&enc);
  free(a);

  int rc = encoder_new_on(&enc, &cfg, DEVMEM_CUDA, &err);
  CHECKF((rc == FOIL_EUNAVAIL && strstr(err.msg, "without CUDA")) ||
             (rc == FOIL_EPRECOND && strstr(err.msg, "cuda_init")),
         "CUDA encoder without a backend: rc %d (%s)", rc, err.msg);
  CHECK(enc == NULL);
  CHECK(encoder_new_on(&enc, &cfg, 7, &err) == FOIL_EINVAL && strstr(err.msg, "backend") && !enc);
  optim *o;
  optim_config oc;
  optim_config_default(&oc);
  rc = optim_new_on(&o, 10, &oc, DEVMEM_CUDA, &err);
  CHECKF(rc == FOIL_EUNAVAIL || rc == FOIL_EPRECOND, "CUDA optimizer without a backend: rc %d", rc);
  CHECK(o == NULL);
  CHECK(optim_new_on(&o, 10, &oc, DEVMEM_CPU, &err) == 0 && o->backend == DEVMEM_CPU);
  optim_destroy(&o);
  loss *ls;
  rc = loss_new_on(&ls, DEVMEM_CUDA, &err);
  CHECKF((rc == FOIL_EUNAVAIL || rc == FOIL_EPRECOND) && !ls, "CUDA loss without a backend: rc %d", rc);
  CHECK(loss_new_on(&ls, 9, &err) == FOIL_EINVAL && !ls);
  moco_queue *q;
  rc = moco_queue_new_on(&q, 4, 8, DEVMEM_CUDA, &err);
  CHECKF((rc == FOIL_EUNAVAIL || rc == FOIL_EPRECOND) && !q, "CUDA queue without a backend: rc %d", rc);
  CHECK(moco_queue_new_on(&q, 4, 8, DEVMEM_CPU, &err) == 0 && q->backend == DEVMEM_CPU);
  moco_queue_destroy(&q);
}

/* encoder_on_grads_ready: every parameter's gradient announced exactly
 * once per backward, and already final when announced (ready_log.h), for
 * post-LN with a head and pre-LN; an error from the callback stops it. */
static void test_grads_ready(void) {
  for (int pre_ln = 0; pre_ln < 2; pre_ln++) {
    encoder_config cfg;
    small_config(&cfg, pre_ln);
    encoder *enc;
    foil_err err = {0};
    CHECK(encoder_new(&enc, &cfg, &err) == 0);
    encoder_init(enc, 8);
    int32_t ids[R * T];
    uint8_t mask[R * T];
    batch(ids, mask, 3);
    const float *e;
    float demb[R * 8];
    for (int i = 0; i < R * 8; i++) demb[i] = 0.02f * (float)(i % 5 - 2);
    ready_log log = {.base = encoder_grads(enc), .fail_at = -1};
    encoder_on_grads_ready(enc, log_ready, &log);
    encoder_zero_grads(enc);
    CHECK(encoder_forward(enc, &e, ids, mask, R, T, 1, 2, 1, &err) == 0);
    CHECK(encoder_backward(enc, demb, &err) == 0);
    int once, final;
    ready_log_check(&log, encoder_grads(enc), encoder_num_params(enc), &once, &final);
    CHECKF(once, "pre_ln %d: every gradient announced exactly once (%d calls)", pre_ln, log.calls);
    CHECKF(final, "pre_ln %d: announced gradients were already final", pre_ln);
    /* 12 per layer + 6: post-LN proj w,b and wte, wpe, emb_ln w,b; pre-LN proj w,b, lnf w,b and wte, wpe */
    CHECK(log.calls == 12 * cfg.n_layers + 6);
    /* a failing callback stops the backward with its error */
    ready_log stop = {.base = encoder_grads(enc), .fail_at = 3};
    encoder_on_grads_ready(enc, log_ready, &stop);
    CHECK(encoder_backward(enc, demb, &err) == FOIL_EABORTED && strstr(err.msg, "stop at call 3"));
    for (int c = 0; c < 3; c++) free(stop.snap[c]);
    encoder_on_grads_ready(enc, NULL, NULL);
    CHECK(encoder_backward(enc, demb, &err) == 0);
    encoder_destroy(&enc);
  }
}

/* GradCache: encoding a batch in slices with encoder_forward_rows (dropout
 * on), computing the loss on all embeddings, then re-encoding each slice and
 * back-propagating its part of d loss/d emb gives the one-shot batch's
 * embeddings, loss and gradients (to float rounding of the smaller GEMMs). */
static void test_gradcache(void) {
  encoder_config cfg;
  small_config(&cfg, 0);
  encoder *enc = NULL;
  loss *ls = NULL;
  foil_err err = {0};
  CHECK(encoder_new(&enc, &cfg, &err) == 0 && loss_new(&ls, &err) == 0);
  if (!enc || !ls) {
    encoder_destroy(&enc);
    loss_destroy(&ls);
    return;
  }
  encoder_init(enc, 21);
  int32_t ids[R * T];
  uint8_t mask[R * T];
  batch(ids, mask, 31);
  const int D = encoder_out_dim(enc);
  const loss_opts lo = {.temperature = 0.1f, .symmetric = 1};
  size_t np = encoder_num_params(enc);
  float one[R * 8], demb[R * 8], sliced[R * 8], *g1 = malloc(np * sizeof(float));
  const float *emb;
  loss_result r1, r2;
  encoder_zero_grads(enc);
  CHECK(encoder_forward(enc, &emb, ids, mask, R, T, 1, 77, 4, &err) == 0);
  memcpy(one, emb, sizeof(float) * R * D);
  CHECK(loss_infonce(ls, &r1, demb, one, B, NNEG, D, &lo, NULL, &err) == 0);
  CHECK(encoder_backward(enc, demb, &err) == 0);
  memcpy(g1, encoder_grads(enc), np * sizeof(float));
  /* slices of 3, 2 and 3 rows */
  const int cut[4] = {0, 3, 5, R};
  for (int s = 0; s < 3; s++) {
    CHECK(encoder_forward_rows(enc, &emb, ids + cut[s] * T, mask + cut[s] * T, cut[s + 1] - cut[s], T,
                               1, 77, 4, (uint64_t)cut[s], &err) == 0);
    memcpy(sliced + cut[s] * D, emb, sizeof(float) * (size_t)(cut[s + 1] - cut[s]) * D);
  }
  double de = 0;
  for (int i = 0; i < R * D; i++) de = fmax(de, fabs(sliced[i] - one[i]));
  CHECKF(de <= 1e-5, "sliced embeddings differ from the one-shot batch by %.3g", de);
  CHECK(loss_infonce(ls, &r2, demb, sliced, B, NNEG, D, &lo, NULL, &err) == 0);
  CHECKF(fabsf(r1.value - r2.value) <= 1e-5f * fabsf(r1.value), "loss %.7f vs %.7f", r2.value, r1.value);
  encoder_zero_grads(enc);
  for (int s = 0; s < 3; s++) {
    CHECK(encoder_forward_rows(enc, &emb, ids + cut[s] * T, mask + cut[s] * T, cut[s + 1] - cut[s], T,
                               1, 77, 4, (uint64_t)cut[s], &err) == 0);
    CHECK(encoder_backward(enc, demb + cut[s] * D, &err) == 0);
  }
  const double rg = test_rel_err(encoder_grads(enc), g1, np);
  CHECKF(rg <= 1e-5, "GradCache gradients rel %.3g from the one-shot batch", rg);
  free(g1);
  loss_destroy(&ls);
  encoder_destroy(&enc);
}

/* rowmap_runs: a rank's rows cut at its blocks, each run placed in the
 * global batch; bad maps refused. */
static void test_rowmap(void) {
  foil_err err;
  rowmap_run run[ROWMAP_MAX_BLOCKS];
  const rowmap m = {.rank = 1, .world = 2, .nblocks = 3, .size = {2, 2, 2}};
  CHECK(rowmap_check(&m, &err) == 0);
  /* rank 1's rows 1..4: query 1 (global 3), positives 0-1 (6, 7), negative 0 (10) */
  CHECK(rowmap_runs(&m, 1, 4, run) == 3);
  CHECK(run[0].at == 0 && run[0].n == 1 && run[0].g == 3);
  CHECK(run[1].at == 1 && run[1].n == 2 && run[1].g == 6);
  CHECK(run[2].at == 3 && run[2].n == 1 && run[2].g == 10);
  CHECK(rowmap_runs(&m, 5, 2, run) == -1); /* past the last block */
  const rowmap e = {.rank = 0, .world = 1, .nblocks = 2, .size = {0, 3}}; /* an empty block is skipped */
  CHECK(rowmap_runs(&e, 0, 3, run) == 1 && run[0].g == 0 && run[0].n == 3);
  const rowmap id = {.rank = 0, .world = 1};
  CHECK(rowmap_runs(&id, 1000, 5, run) == 1 && run[0].g == 1000);
  /* mask elements: 2 ranks padded to different lengths (7 and 4 tokens of
   * 3 elements, max_len 8) take disjoint ranges, block by block */
  uint64_t lo[2][3], hi[2][3];
  for (int r = 0; r < 2; r++) {
    const rowmap mr = {.rank = r, .world = 2, .nblocks = 3, .size = {2, 2, 2}};
    const uint64_t row = (r ? 4 : 7) * 3, max_row = 8 * 3;
    CHECK(rowmap_runs(&mr, 0, 6, run) == 3);
    for (int b = 0; b < 3; b++)
      lo[r][b] = rowmap_offset(&run[b], row, max_row), hi[r][b] = lo[r][b] + (uint64_t)run[b].n * row;
  }
  int overlap = 0;
  for (int b = 0; b < 3; b++)
    for (int c = 0; c < 3; c++) overlap += lo[0][b] < hi[1][c] && lo[1][c] < hi[0][b];
  CHECKF(overlap == 0, "%d pairs of segments of the two ranks share mask elements", overlap);
  /* padded to max_len, row g's elements start at g·max_row */
  CHECK(rowmap_runs(&m, 1, 4, run) == 3 && rowmap_offset(&run[1], 24, 24) == 6 * 24 &&
        rowmap_offset(&run[2], 24, 24) == 10 * 24);
  const rowmap bad[] = {{.rank = 0, .world = 0},
                        {.rank = 2, .world = 2, .nblocks = 1, .size = {1}},
                        {.rank = 0, .world = 2},
                        {.rank = 0, .world = 1, .nblocks = ROWMAP_MAX_BLOCKS + 1},
                        {.rank = 0, .world = 1, .nblocks = 1, .size = {-1}}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECKF(rowmap_check(&bad[i], &err) == FOIL_EINVAL, "bad map %zu accepted", i);
}

/* Data parallel with dropout on: 2 ranks of (2 queries, 2 positives, 2
 * negatives), each with its row map, draw the masks of 1 rank holding the
 * whole global batch: the same embeddings (to float rounding of smaller
 * GEMMs), and their gradients sum to the one rank's, rows padded to
 * max_len (rowmap.h: the masks depend on the padded length). Without a
 * map, rank 1 would repeat rank 0's masks. */
static void test_ranks_rowmap(void) {
  enum { W = 2, BR = 2, RR = 3 * BR, G = W * RR };
  encoder_config cfg;
  small_config(&cfg, 0);
  cfg.max_len = T;
  encoder *enc;
  foil_err err;
  CHECK(encoder_new(&enc, &cfg, &err) == 0);
  encoder_init(enc, 23);
  const int D = encoder_out_dim(enc);
  /* the global batch [4 queries, 4 positives, 4 negatives] */
  int32_t ids[G * T];
  uint8_t mask[G * T];
  for (int r = 0; r < G; r++)
    for (int t = 0; t < T; t++) {
      ids[r * T + t] = (int32_t)(rng_u32(9, 2, (uint64_t)(r * T + t)) % 40);
      mask[r * T + t] = t < 3 + r % 4;
    }
  float demb[G * 8], one[G * 8], got[G * 8];
  for (int i = 0; i < G * D; i++) demb[i] = (float)((int)(rng_u32(9, 3, (uint64_t)i) % 200) - 100) / 100.0f;
  size_t np = encoder_num_params(enc);
  float *g1 = malloc(np * sizeof(float));
  const float *emb;
  encoder_zero_grads(enc);
  CHECK(encoder_forward(enc, &emb, ids, mask, G, T, 1, 77, 4, &err) == 0);
  memcpy(one, emb, sizeof(float) * G * D);
  CHECK(encoder_backward(enc, demb, &err) == 0);
  memcpy(g1, encoder_grads(enc), np * sizeof(float));
  /* rank r's local row i of block b is global row b·W·BR + r·BR + i */
  encoder_zero_grads(enc);
  double de = 0, dflat = 0;
  for (int r = 0; r < W; r++) {
    int32_t lid[RR * T];
    uint8_t lm[RR * T];
    float ld[RR * 8];
    int gi[RR];
    for (int k = 0; k < RR; k++) {
      gi[k] = (k / BR) * W * BR + r * BR + k % BR;
      memcpy(lid + k * T, ids + gi[k] * T, sizeof(int32_t) * T);
      memcpy(lm + k * T, mask + gi[k] * T, T);
      memcpy(ld + k * D, demb + gi[k] * D, sizeof(float) * D);
    }
    /* without a map every rank draws rank 0's masks */
    CHECK(encoder_set_rows(enc, NULL, &err) == 0);
    CHECK(encoder_forward(enc, &emb, lid, lm, RR, T, 1, 77, 4, &err) == 0);
    for (int k = 0; k < RR; k++)
      for (int c = 0; c < D; c++) dflat = fmax(dflat, fabs(emb[k * D + c] - one[gi[k] * D + c]));
    const rowmap m = {.rank = r, .world = W, .nblocks = 3, .size = {BR, BR, BR}};
    CHECK(encoder_set_rows(enc, &m, &err) == 0);
    /* in GradCache slices of 4 and 2 rows, across the block boundaries */
    for (int r0 = 0; r0 < RR; r0 += 4) {
      int n = RR - r0 < 4 ? RR - r0 : 4;
      CHECK(encoder_forward_rows(enc, &emb, lid + r0 * T, lm + r0 * T, n, T, 1, 77, 4, (uint64_t)r0, &err) == 0);
      for (int k = 0; k < n; k++) memcpy(got + gi[r0 + k] * D, emb + k * D, sizeof(float) * D);
      CHECK(encoder_backward(enc, ld + r0 * D, &err) == 0);
    }
    /* rows past the map: refused in training, free in inference */
    CHECK(encoder_forward_rows(enc, &emb, lid, lm, 2, T, 1, 77, 4, RR - 1, &err) == FOIL_EINVAL &&
          strstr(err.msg, "row map"));
    CHECK(encoder_forward_rows(enc, &emb, lid, lm, 2, T, 0, 77, 4, RR - 1, &err) == 0);
  }
  for (int i = 0; i < G * D; i++) de = fmax(de, fabs(got[i] - one[i]));
  CHECKF(de <= 1e-5, "2 ranks' embeddings differ from 1 rank's by %.3g", de);
  CHECKF(dflat > 1e-2, "without a row map the ranks' embeddings should differ (%.3g)", dflat);
  const double rg = test_rel_err(encoder_grads(enc), g1, np);
  CHECKF(rg <= 1e-5, "2 ranks' gradients rel %.3g from 1 rank's", rg);
  const rowmap bad = {.rank = 0, .world = 2};
  CHECK(encoder_set_rows(enc, &bad, &err) == FOIL_EINVAL);
  free(g1);
  encoder_destroy(&enc);
}

int main(void) {
  kernels_set_threads(2);
  RUN(test_rowmap);
  RUN(test_ranks_rowmap);
  RUN(test_gradcache);
  RUN(test_fd_post_ln);
  RUN(test_fd_pre_ln);
  RUN(test_determinism);
  RUN(test_alloc_once_and_errors);
  RUN(test_backends);
  RUN(test_grads_ready);
  TEST_EXIT();
}
