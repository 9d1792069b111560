/* test_gpu_encoder.c — the encoder, the optimizer and the MoCo update on a
 * CUDA backend (model/encoder.h DEVMEM_CUDA) against the same objects on the
 * CPU, from the same parameters and inputs.
 *
 *   - forward (training, dropout 0.1, padded rows; and inference) and the
 *     backward's gradients of every tensor, post-LN with a projection head
 *     and mean pooling, pre-LN with first-token pooling; in fp32 and in
 *     mixed precision (ENC_BF16: the tensor cores against the CPU's bf16
 *     reference, tests/reference's post_bf16 case proving that one);
 *   - a GPU forward+backward run twice gives the same bits;
 *   - a batch encoded in two slices (forward_rows, GradCache) equals the
 *     one-shot batch;
 *   - three training steps (InfoNCE over L2-normalized embeddings, AdamW
 *     with clipping) and a MoCo momentum update land on the same parameters;
 *   - the loss object (model/loss.h: symmetric or not, DCL, hard negatives,
 *     a MoCo queue) gives the same loss, accuracy, d/dscale and gradient,
 *     and a queue on the device holds the same keys after a wrap.
 *
 * Tolerances, per tensor (bf16: 10x looser, see test_forward_backward):
 * embeddings atol 1e-4 rtol 1e-3 (fp32 throughout;
 * cuBLAS sums the GEMMs in another order than OpenBLAS, ~1e-6 relative per
 * layer); gradients atol 1e-3·max|g| of the tensor, rtol 1e-3 (a wrong
 * argument to any kernel moves whole rows by O(max|g|)). Parameters after
 * AdamW: every element within 3 steps × lr × 1.01 + 1e-6 (Adam moves an
 * element by about lr per step whatever its gradient's size, so a gradient
 * that is rounding noise on both sides may move it either way), and all
 * but 0.1% within atol 1e-6 rtol 1e-4. Losses rtol 1e-4. The loss object:
 * value and dscale rtol 1e-5 / 1e-4, gradient atol 1e-5·max + rtol 1e-4;
 * queue keys exact (copies). */
#include "model/encoder.h"
#include "model/loss.h"
#include "model/moco.h"
#include "model/optim.h"
#include "tests/gpu/gpu_test.h"

enum { B = 6, T = 12 };

static void make_batch(int32_t *ids, uint8_t *mask, int vocab) {
  for (int b = 0; b < B; b++) {
    int len = T - b; /* rows 1.. padded */
    for (int t = 0; t < T; t++) {
      ids[b * T + t] = t < len ? (int32_t)((b * 131 + t * 17 + 3) % vocab) : 0;
      mask[b * T + t] = t < len;
    }
  }
}

static encoder_config small_cfg(int pre_ln) {
  encoder_config c;
  encoder_config_default(&c);
  c.n_layers = 2;
  c.d_model = 64;
  c.n_heads = 4;
  c.d_ff = 128;
  c.vocab = 97;
  c.max_len = 16;
  c.pre_ln = pre_ln;
  c.proj_dim = pre_ln ? 0 : 32;
  c.pooling = pre_ln ? POOL_FIRST : POOL_MEAN;
  c.dropout = 0.1f;
  return c;
}

/* a CPU encoder initialized from seed, and a CUDA one with its parameters */
static void pair_new(encoder **cpu, encoder **gpu, const encoder_config *c, uint64_t seed) {
  foil_err err = {0};
  if (encoder_new(cpu, c, &err)) gpu_die("encoder_new", &err);
  if (encoder_new_on(gpu, c, DEVMEM_CUDA, &err)) gpu_die("encoder_new_on(CUDA)", &err);
  CHECK(encoder_backend(*gpu) == DEVMEM_CUDA && encoder_backend(*cpu) == DEVMEM_CPU);
  encoder_init(*cpu, seed);
  encoder_init(*gpu, seed); /* the same draws, uploaded */
  size_t n = encoder_num_params(*cpu);
  float *a = malloc(n * sizeof(float));
  if (encoder_get_params(*gpu, a, &err)) gpu_die("encoder_get_params", &err);
  close_enough("encoder_init on CUDA = on the CPU", a, encoder_params(*cpu), n, 0, 0);
  free(a);
}

/* each tensor's gradient within atol tol·max|g| + rtol tol */
static void grads_close(const char *what, encoder *cpu, encoder *gpu, float tol) {
  foil_err err = {0};
  size_t n = encoder_num_params(cpu);
  float *g = malloc(n * sizeof(float));
  if (encoder_get_grads(gpu, g, &err)) gpu_die("encoder_get_grads", &err);
  grads_tensors_close(what, g, encoder_grads(cpu), encoder_tensors(cpu), ENC_NTENSORS, tol);
  free(g);
}

static void test_forward_backward(int pre_ln, int bf16) {
  foil_err err = {0};
  encoder_config c = small_cfg(pre_ln);
  encoder *cpu, *gpu;
  pair_new(&cpu, &gpu, &c, 5 + pre_ln);
  if (bf16 && (encoder_set_precision(cpu, ENC_BF16, &err) || encoder_set_precision(gpu, ENC_BF16, &err)))
    gpu_die("encoder_set_precision", &err);
  /* bf16: both sides round their own fp32 activations and gradients, which
   * differ in the last bits (summation order), so an element now and then
   * rounds one bf16 step (2^-8) apart: 10x looser */
  const float tol_e = bf16 ? 1e-3f : 1e-4f, rtol_e = bf16 ? 1e-2f : 1e-3f, tol_g = bf16 ? 1e-2f : 1e-3f;
  int32_t ids[B * T];
  uint8_t mask[B * T];
  make_batch(ids, mask, c.vocab);
  const int D = encoder_out_dim(cpu);
  const char *what = bf16 ? (pre_ln ? "pre-LN bf16" : "post-LN bf16") : (pre_ln ? "pre-LN" : "post-LN");

  for (int train = 0; train <= 1; train++) {
    const float *ec, *eg;
    if (encoder_forward(cpu, &ec, ids, mask, B, T, train, 11, 3, &err)) gpu_die("cpu forward", &err);
    if (encoder_forward(gpu, &eg, ids, mask, B, T, train, 11, 3, &err)) gpu_die("gpu forward", &err);
    float *h = host_from(eg, sizeof(float) * B * D);
    char name[64];
    snprintf(name, sizeof name, "%s: embeddings (train %d)", what, train);
    close_enough(name, h, ec, (size_t)B * D, tol_e, rtol_e);
    free(h);
  }

  /* backward of the training forward above (the last one) */
  float *demb = randv((size_t)B * D, 0.5f);
  float *ddemb = dev_from(demb, sizeof(float) * B * D);
  encoder_zero_grads(cpu);
  encoder_zero_grads(gpu);
  if (encoder_backward(cpu, demb, &err)) gpu_die("cpu backward", &err);
  if (encoder_backward(gpu, ddemb, &err)) gpu_die("gpu backward", &err);
  grads_close(what, cpu, gpu, tol_g);

  /* the same again on the GPU: the same bits */
  size_t n = encoder_num_params(cpu);
  float *g1 = malloc(n * sizeof(float)), *g2 = malloc(n * sizeof(float));
  encoder_get_grads(gpu, g1, &err);
  const float *eg;
  encoder_zero_grads(gpu);
  if (encoder_forward(gpu, &eg, ids, mask, B, T, 1, 11, 3, &err) || encoder_backward(gpu, ddemb, &err))
    gpu_die("gpu rerun", &err);
  encoder_get_grads(gpu, g2, &err);
  CHECKF(memcmp(g1, g2, n * sizeof(float)) == 0, "%s: a second GPU forward+backward gives the same bits", what);

  /* two slices of 3 rows (GradCache) equal the one-shot embeddings */
  float whole[B * 64], part[B * 64];
  if (encoder_forward(gpu, &eg, ids, mask, B, T, 1, 11, 3, &err)) gpu_die("gpu forward", &err);
  dev_to(whole, eg, sizeof(float) * B * D);
  for (int s = 0; s < 2; s++) {
    if (encoder_forward_rows(gpu, &eg, ids + s * 3 * T, mask + s * 3 * T, 3, T, 1, 11, 3, (uint64_t)s * 3, &err))
      gpu_die("gpu forward_rows", &err);
    dev_to(part + s * 3 * D, eg, sizeof(float) * 3 * D);
  }
  close_enough("forward_rows slices = the whole batch (GPU)", part, whole, (size_t)B * D, 1e-5f, 1e-4f);

  free(g1);
  free(g2);
  free(demb);
  cuda_free(ddemb);
  encoder_destroy(&cpu);
  encoder_destroy(&gpu);
}

/* One InfoNCE training step on either backend: rows [0,3) are queries,
 * [3,6) their positives; returns the loss. */
static float train_step(encoder *e, optim *o, const int32_t *ids, const uint8_t *mask, int step,
                        int cuda, float *z, float *nrm, float *probs, float *dz, float *demb,
                        const int32_t *labels) {
  foil_err err = {0};
  const int D = encoder_out_dim(e), P = B / 2;
  const float *emb;
  encoder_zero_grads(e);
  if (encoder_forward(e, &emb, ids, mask, B, T, 1, 21, (uint64_t)step, &err)) gpu_die("forward", &err);
  float loss;
  if (cuda) {
    cuda_l2norm_forward(z, nrm, emb, B, D);
    cuda_memset0(dz, sizeof(float) * B * D, NULL);
    cuda_memset0(demb, sizeof(float) * B * D, NULL);
    loss = cuda_infonce_forward(probs, NULL, z, P, z + P * D, P, NULL, 0, D, labels, 20.0f, 0);
    cuda_infonce_backward(dz, dz + P * D, NULL, probs, z, P, z + P * D, P, NULL, 0, D, labels, 20.0f, 1.0f);
    cuda_l2norm_backward(demb, dz, z, nrm, B, D);
  } else {
    l2norm_forward(z, nrm, emb, B, D);
    memset(dz, 0, sizeof(float) * B * D);
    memset(demb, 0, sizeof(float) * B * D);
    loss = infonce_forward(probs, NULL, z, P, z + P * D, P, NULL, 0, D, labels, 20.0f, 0);
    infonce_backward(dz, dz + P * D, NULL, probs, z, P, z + P * D, P, NULL, 0, D, labels, 20.0f, 1.0f);
    l2norm_backward(demb, dz, z, nrm, B, D);
  }
  if (encoder_backward(e, demb, &err)) gpu_die("backward", &err);
  optim_step(o, e, 1e-3f);
  return loss;
}

static void test_training(void) {
  foil_err err = {0};
  encoder_config c = small_cfg(0);
  encoder *cpu, *gpu, *kc, *kg;
  pair_new(&cpu, &gpu, &c, 9);
  pair_new(&kc, &kg, &c, 9);
  optim_config oc;
  optim_config_default(&oc);
  oc.max_grad_norm = 1.0f;
  optim *oc_cpu, *oc_gpu;
  size_t n = encoder_num_params(cpu);
  if (optim_new(&oc_cpu, n, &oc, &err) || optim_new_on(&oc_gpu, n, &oc, DEVMEM_CUDA, &err)) gpu_die("optim_new", &err);
  int32_t ids[B * T], labels[B / 2];
  uint8_t mask[B * T];
  make_batch(ids, mask, c.vocab);
  for (int i = 0; i < B / 2; i++) labels[i] = i;
  float z[B * 64], nrm[B], probs[B * B], dz[B * 64], demb[B * 64];
  float *dz_g = dev_from(NULL, sizeof z), *dnrm = dev_from(NULL, sizeof nrm), *dprobs = dev_from(NULL, sizeof probs);
  float *ddz = dev_from(NULL, sizeof dz), *ddemb = dev_from(NULL, sizeof demb);
  int32_t *dlab = dev_from(labels, sizeof labels);
  for (int step = 0; step < 3; step++) {
    float lc = train_step(cpu, oc_cpu, ids, mask, step, 0, z, nrm, probs, dz, demb, labels);
    float lg = train_step(gpu, oc_gpu, ids, mask, step, 1, dz_g, dnrm, dprobs, ddz, ddemb, dlab);
    CHECKF(fabsf(lc - lg) <= 1e-4f * fabsf(lc), "step %d loss gpu %.7g cpu %.7g", step, lg, lc);
  }
  float *p = malloc(n * sizeof(float));
  if (encoder_get_params(gpu, p, &err)) gpu_die("encoder_get_params", &err);
  const float *pc = encoder_params(cpu);
  size_t loose = 0;
  for (size_t i = 0; i < n; i++) loose += fabsf(p[i] - pc[i]) > 1e-6f + 1e-4f * fabsf(pc[i]);
  close_enough("params after 3 AdamW steps (Adam's per-step bound)", p, pc, n, 3 * 1e-3f * 1.01f + 1e-6f, 0);
  CHECKF(loose <= n / 1000, "params after 3 steps: %zu of %zu beyond atol 1e-6 rtol 1e-4", loose, n);
  CHECK(oc_gpu->t == 3 && oc_gpu->backend == DEVMEM_CUDA);

  /* MoCo: key = 0.99·key + 0.01·query on both */
  moco_momentum_update(kc, cpu, 0.99f);
  moco_momentum_update(kg, gpu, 0.99f);
  float *k = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
  encoder_get_params(kg, k, &err);
  /* from the GPU's own query parameters, so only the EMA is compared */
  float *k0 = malloc(n * sizeof(float));
  encoder_get_params(kc, k0, &err); /* CPU key after its update */
  for (size_t i = 0; i < n; i++) ref[i] = (k0[i] - 0.01f * pc[i]) + 0.01f * p[i];
  close_enough("moco_momentum_update on CUDA", k, ref, n, 1e-6f, 1e-5f);

  free(p);
  free(k);
  free(k0);
  free(ref);
  cuda_free(dz_g); cuda_free(dnrm); cuda_free(dprobs); cuda_free(ddz); cuda_free(ddemb); cuda_free(dlab);
  optim_destroy(&oc_cpu);
  optim_destroy(&oc_gpu);
  encoder_destroy(&cpu);
  encoder_destroy(&gpu);
  encoder_destroy(&kc);
  encoder_destroy(&kg);
}

static void test_loss_and_queue(void) {
  foil_err err = {0};
  enum { LB = 4, NNEG = 3, LD = 16, K = 5, ROWS = 2 * LB + NNEG };
  /* queues: 3 unit keys, then 4 more (wraps K = 5) */
  moco_queue *qc, *qg;
  if (moco_queue_new(&qc, K, LD, &err) || moco_queue_new_on(&qg, K, LD, DEVMEM_CUDA, &err)) gpu_die("queue", &err);
  for (int round = 0; round < 2; round++) {
    int n = round ? 4 : 3;
    float *raw = randv((size_t)n * LD, 1), *keys = malloc(sizeof(float) * n * LD), norms[4];
    l2norm_forward(keys, norms, raw, n, LD);
    free(raw);
    float *dk = dev_from(keys, sizeof(float) * n * LD);
    moco_queue_push(qc, keys, n);
    moco_queue_push(qg, dk, n);
    cuda_free(dk);
    free(keys);
  }
  CHECK(qg->ptr == qc->ptr && qg->fill == qc->fill && qg->backend == DEVMEM_CUDA);
  float *hk = host_from(qg->keys, sizeof(float) * K * LD);
  close_enough("queue keys on the device after a wrap", hk, qc->keys, (size_t)K * LD, 0, 0);
  free(hk);

  loss *lc, *lg;
  if (loss_new(&lc, &err) || loss_new_on(&lg, DEVMEM_CUDA, &err)) gpu_die("loss_new", &err);
  float *emb = randv((size_t)ROWS * LD, 1), *demb = malloc(sizeof(float) * ROWS * LD);
  float *demb_g = malloc(sizeof(float) * ROWS * LD);
  float *demb_d = dev_from(NULL, sizeof(float) * ROWS * LD), *emb_d = dev_from(emb, sizeof(float) * ROWS * LD);
  for (int variant = 0; variant < 3; variant++) {
    int nq = 0;
    loss_opts oc = {.temperature = 0.05f, .symmetric = variant == 0, .decoupled = variant == 1};
    loss_opts og = oc;
    if (variant == 2) { /* the queue as extra negatives */
      oc.queue = moco_queue_keys(qc, &nq), oc.queue_n = nq;
      og.queue = moco_queue_keys(qg, &nq), og.queue_n = nq;
    }
    loss_result rc_, rg;
    if (loss_infonce(lc, &rc_, demb, emb, LB, NNEG, LD, &oc, NULL, &err)) gpu_die("cpu loss", &err);
    if (loss_infonce(lg, &rg, demb_d, emb_d, LB, NNEG, LD, &og, NULL, &err)) gpu_die("gpu loss", &err);
    dev_to(demb_g, demb_d, sizeof(float) * ROWS * LD);
    CHECKF(fabsf(rg.value - rc_.value) <= 1e-5f * fabsf(rc_.value), "loss variant %d: gpu %.8g cpu %.8g",
           variant, rg.value, rc_.value);
    CHECKF(rg.accuracy == rc_.accuracy, "accuracy variant %d: gpu %g cpu %g", variant, rg.accuracy, rc_.accuracy);
    CHECKF(fabsf(rg.dscale - rc_.dscale) <= 1e-4f * fabsf(rc_.dscale) + 1e-7f, "dscale variant %d: gpu %.8g cpu %.8g",
           variant, rg.dscale, rc_.dscale);
    float mx = 0;
    for (int i = 0; i < ROWS * LD; i++) mx = fmaxf(mx, fabsf(demb[i]));
    close_enough("loss gradient", demb_g, demb, (size_t)ROWS * LD, 1e-5f * mx, 1e-4f);
  }
  free(emb);
  free(demb);
  free(demb_g);
  cuda_free(demb_d);
  cuda_free(emb_d);
  loss_destroy(&lc);
  loss_destroy(&lg);
  moco_queue_destroy(&qc);
  moco_queue_destroy(&qg);
}

static void test_forward_post_ln(void) { test_forward_backward(0, 0); }
static void test_forward_pre_ln(void) { test_forward_backward(1, 0); }
static void test_forward_bf16(void) {
  test_forward_backward(0, 1);
  test_forward_backward(1, 1);
}

int main(void) {
  gpu_require();
  RUN(test_forward_post_ln);
  RUN(test_forward_pre_ln);
  RUN(test_forward_bf16);
  RUN(test_training);
  RUN(test_loss_and_queue);
  cuda_shutdown();
  TEST_EXIT();
}
