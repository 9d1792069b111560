/* bench_gpu.c — speed of the CUDA backend on one GPU (bench/gpu.sh runs it
 * on a device machine and keeps the JSON lines).
 *
 *   bench_gpu gemm                         bf16 and fp32 GEMM TFLOP/s (BERT-base MLP shapes)
 *   bench_gpu train small|minilm|bert [STEPS]
 *       tokens/s and MFU of an encoder training step built from the cuda_
 *       kernels: embedding, L post-LN layers (bf16 GEMMs with fp32
 *       accumulate, fp32 master weights, attention, GELU, layernorm,
 *       dropout 0.1), mean pooling, L2 norm, symmetric InfoNCE over the
 *       batch, AdamW on fp32 masters writing bf16 working weights.
 *   bench_gpu model small|minilm|bert [STEPS] [fp32|bf16]
 *       the same configs through foil's own training path on a GPU rank:
 *       model/encoder.h's encoder on DEVMEM_CUDA (fp32 GEMMs without TF32, or
 *       ENC_BF16's tensor-core GEMMs; dropout 0.1, mean pooling), the
 *       InfoNCE loss object (symmetric, in-batch negatives) and AdamW with
 *       clipping — what `foil-run pretrain` with "device": "cuda" (and
 *       "precision") runs per step, minus the comm.
 *   bench_gpu search N D NQ K [REPS]   exact top-k QPS over N×D fp32 rows, and
 *       the fraction of the HBM bound (one read of the rows per batch)
 *   bench_gpu decode [ROWS] [LEN] [STEPS]  decoder steps/s and tokens/s of a
 *       GPT-2-small-size decoder (12 layers, d 768) with a KV cache, from
 *       the cuda_ kernels alone
 *   bench_gpu lm demo|gpt2 [STEPS] [BATCH] [SEQ] [fp32|bf16]
 *       foil's decoder (model/decoder.h on DEVMEM_CUDA) trained as `foil-run
 *       pretrain` with a decoder spec and "device": "cuda" does per step
 *       (causal LM, dropout 0.1, AdamW with clipping, minus the comm):
 *       tokens/s and MFU (fp32 GEMMs without TF32, or ENC_BF16's)
 *   bench_gpu generate demo|gpt2 greedy|cs|dola [BATCH] [NEW]
 *       generate.h's method on a CUDA decoder, as decode-eval's "device":
 *       "cuda" runs it: 32-token prompts, time to the first token, time
 *       per token after it (a decoding step of the batch) and tokens/s
 *   bench_gpu serve N D NQ K [REPS]   foil-serve's search on the GPU
 *       (model/vsearch_dev.h: queries up, top-k down) over N×D float32 rows
 *
 * Model FLOPs count the GEMMs and attention products (forward 2·params·
 * tokens + 4·T·C·L per token; training 3× forward), as in the usual MFU
 * definition, against PEAK_BF16 (dense bf16 tensor-core peak, H200/H100 SXM
 * ≈ 990 TFLOP/s) and HBM_GBS (H200: 4800 GB/s); both are overridable by the
 * environment (FOIL_PEAK_TFLOPS, FOIL_HBM_GBS) for other GPUs.
 * Prints one JSON line per measurement. Exit 77 when no GPU is visible.
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"
#include "model/encoder.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/loss.h"
#include "model/optim.h"
#include "model/vsearch_dev.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static double env_or(const char *name, double dflt) {
  const char *v = getenv(name);
  return v && *v ? atof(v) : dflt;
}

/* device allocations, zeroed; never freed: the process ends after one measurement */
static void *dalloc(size_t bytes) {
  void *p = NULL;
  foil_err err = {0};
  if (cuda_malloc(&p, bytes, &err)) {
    fprintf(stderr, "bench_gpu: %s\n", err.msg);
    exit(1);
  }
  if (cuda_memset0(p, bytes, &err)) {
    fprintf(stderr, "bench_gpu: %s\n", err.msg);
    exit(1);
  }
  return p;
}
static void dfill(float *d, size_t n, float amp, uint64_t seed) {
  float *h = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) h[i] = amp * (rng_uniform(seed, 1, i) * 2.0f - 1.0f);
  cuda_upload(d, h, n * sizeof(float), NULL);
  free(h);
}
static void sync_or_die(void) {
  foil_err err = {0};
  if (cuda_sync(&err)) {
    fprintf(stderr, "bench_gpu: %s\n", err.msg);
    exit(1);
  }
}

/* ---- gemm -------------------------------------------------------------------- */

static void bench_gemm(double peak) {
  const int N = 8192, C = 768, OC = 3072;
  uint16_t *xb = dalloc((size_t)N * C * 2), *wb = dalloc((size_t)OC * C * 2);
  float *x = dalloc((size_t)N * C * 4), *w = dalloc((size_t)OC * C * 4), *y = dalloc((size_t)N * OC * 4);
  dfill(x, (size_t)N * C, 1, 1);
  dfill(w, (size_t)OC * C, 1, 2);
  cuda_f32_to_bf16(xb, x, (size_t)N * C);
  cuda_f32_to_bf16(wb, w, (size_t)OC * C);
  for (int prec = 0; prec < 2; prec++) {
    int reps = prec ? 5 : 50;
    for (int i = 0; i < 3; i++)
      prec ? cuda_matmul_forward(y, x, w, NULL, N, C, OC) : cuda_matmul_forward_bf16(y, xb, wb, NULL, N, C, OC);
    sync_or_die();
    double t0 = now();
    for (int i = 0; i < reps; i++)
      prec ? cuda_matmul_forward(y, x, w, NULL, N, C, OC) : cuda_matmul_forward_bf16(y, xb, wb, NULL, N, C, OC);
    sync_or_die();
    double dt = (now() - t0) / reps, tf = 2.0 * N * C * OC / dt / 1e12;
    printf("{\"bench\":\"gemm\",\"precision\":\"%s\",\"shape\":[%d,%d,%d],\"ms\":%.4f,\"tflops\":%.1f,\"of_peak_bf16\":%.3f}\n",
           prec ? "fp32" : "bf16", N, C, OC, dt * 1e3, tf, tf * 1e12 / peak);
  }
}

/* ---- encoder training step --------------------------------------------------------- */

typedef struct {
  const char *name;
  int V, C, NH, F, L, T, B; /* B sequences per step (pairs·2) */
} enc_cfg;

static const enc_cfg CFGS[] = {
    {"small", 8192, 256, 4, 1024, 4, 32, 128},
    {"minilm", 30522, 384, 12, 1536, 6, 64, 128},
    {"bert", 30522, 768, 12, 3072, 12, 128, 256},
};

typedef struct { /* one layer: fp32 masters, bf16 working copies, grads, moments */
  float *w[4], *b[4], *ln_w[2], *ln_b[2];
  uint16_t *wb[4];
  float *gw[4], *gb[4], *gln_w[2], *gln_b[2];
} layer;

typedef struct { /* one layer's saved activations */
  float *x, *qkv, *att, *a, *r1, *h1, *pre, *g, *r2, *m1, *s1, *m2, *s2;
  uint16_t *xb, *ab, *h1b, *gbf;
} acts;

static void bench_train(const enc_cfg *c, int steps, double peak) {
  const int C = c->C, F = c->F, L = c->L, T = c->T, B = c->B, NH = c->NH, N = B * T;
  const int out_of[4] = {3 * C, C, F, C}, in_of[4] = {C, C, C, F};
  /* parameters: one flat fp32 master buffer (+ grads, m, v) so AdamW is one launch */
  size_t np = (size_t)c->V * C + (size_t)T * C;
  for (int k = 0; k < 4; k++) np += (size_t)L * ((size_t)out_of[k] * in_of[k] + out_of[k]);
  np += (size_t)L * 4 * C;
  float *P = dalloc(np * 4), *G = dalloc(np * 4), *M = dalloc(np * 4), *Vv = dalloc(np * 4);
  uint16_t *Pb = dalloc(np * 2);
  dfill(P, np, 0.02f, 7);
  size_t off = 0;
#define TAKE(n) (off += (n), off - (n))
  size_t o_wte = TAKE((size_t)c->V * C), o_wpe = TAKE((size_t)T * C);
  layer *ly = calloc(L, sizeof *ly);
  for (int l = 0; l < L; l++) {
    for (int k = 0; k < 4; k++) {
      size_t ow = TAKE((size_t)out_of[k] * in_of[k]), ob = TAKE(out_of[k]);
      ly[l].w[k] = P + ow, ly[l].gw[k] = G + ow, ly[l].wb[k] = Pb + ow;
      ly[l].b[k] = P + ob, ly[l].gb[k] = G + ob;
    }
    for (int k = 0; k < 2; k++) {
      size_t ow = TAKE(C), ob = TAKE(C);
      ly[l].ln_w[k] = P + ow, ly[l].gln_w[k] = G + ow;
      ly[l].ln_b[k] = P + ob, ly[l].gln_b[k] = G + ob;
    }
  }
  cuda_f32_to_bf16(Pb, P, np);
  /* activations */
  acts *ac = calloc(L + 1, sizeof *ac);
  for (int l = 0; l <= L; l++) ac[l].x = dalloc((size_t)N * C * 4);
  for (int l = 0; l < L; l++) {
    acts *a = &ac[l];
    a->qkv = dalloc((size_t)N * 3 * C * 4), a->att = dalloc((size_t)B * NH * T * T * 4);
    a->a = dalloc((size_t)N * C * 4), a->r1 = dalloc((size_t)N * C * 4), a->h1 = dalloc((size_t)N * C * 4);
    a->pre = dalloc((size_t)N * F * 4), a->g = dalloc((size_t)N * F * 4), a->r2 = dalloc((size_t)N * C * 4);
    a->m1 = dalloc((size_t)N * 4), a->s1 = dalloc((size_t)N * 4), a->m2 = dalloc((size_t)N * 4), a->s2 = dalloc((size_t)N * 4);
    a->xb = dalloc((size_t)N * C * 2), a->ab = dalloc((size_t)N * C * 2), a->h1b = dalloc((size_t)N * C * 2);
    a->gbf = dalloc((size_t)N * F * 2);
  }
  /* scratch for the backward */
  float *scr = dalloc((size_t)B * NH * T * T * 4), *tmp = dalloc((size_t)N * C * 4);
  float *dx = dalloc((size_t)N * C * 4), *dr = dalloc((size_t)N * C * 4), *dh = dalloc((size_t)N * C * 4);
  float *dqkv = dalloc((size_t)N * 3 * C * 4), *dpre = dalloc((size_t)N * F * 4), *dg = dalloc((size_t)N * F * 4);
  uint16_t *db16 = dalloc((size_t)N * F * 2);
  float *pooled = dalloc((size_t)B * C * 4), *emb = dalloc((size_t)B * C * 4), *nrm = dalloc((size_t)B * 4);
  float *demb = dalloc((size_t)B * C * 4), *dpool = dalloc((size_t)B * C * 4), *probs = dalloc((size_t)B * B * 4);
  int32_t *ids_h = malloc(sizeof(int32_t) * N), *lab_h = malloc(sizeof(int32_t) * B);
  uint8_t *mask_h = malloc(N);
  for (int i = 0; i < N; i++) ids_h[i] = (int32_t)(rng_u32(3, 99, i) % (uint32_t)c->V), mask_h[i] = 1;
  const int pairs = B / 2;
  for (int i = 0; i < pairs; i++) lab_h[i] = i;
  int32_t *ids = dalloc(sizeof(int32_t) * N), *lab = dalloc(sizeof(int32_t) * B);
  uint8_t *mask = dalloc(N);
  cuda_upload(ids, ids_h, sizeof(int32_t) * N, NULL);
  cuda_upload(lab, lab_h, sizeof(int32_t) * B, NULL);
  cuda_upload(mask, mask_h, N, NULL);
  const float pd = 0.1f;
  double t_total = 0.0;
  float loss = 0.0f;
  for (int step = 0; step < steps + 2; step++) { /* 2 warm-up steps */
    sync_or_die();
    double t0 = now();
    uint64_t seed = 1234 + step;
    cuda_memset0(G, np * 4, NULL);
    cuda_embed_forward(ac[0].x, ids, P + o_wte, P + o_wpe, B, T, C);
    for (int l = 0; l < L; l++) {
      acts *a = &ac[l];
      layer *w = &ly[l];
      cuda_f32_to_bf16(a->xb, a->x, (size_t)N * C);
      cuda_matmul_forward_bf16(a->qkv, a->xb, w->wb[0], w->b[0], N, C, 3 * C);
      cuda_attention_forward(a->a, a->att, NULL, a->qkv, mask, B, T, C, NH, 0, pd, seed, 4 * l, 0);
      cuda_f32_to_bf16(a->ab, a->a, (size_t)N * C);
      cuda_matmul_forward_bf16(tmp, a->ab, w->wb[1], w->b[1], N, C, C);
      cuda_dropout_forward(tmp, tmp, (size_t)N * C, pd, seed, 4 * l + 1, 0);
      cuda_residual_forward(a->r1, a->x, tmp, (size_t)N * C);
      cuda_layernorm_forward(a->h1, a->m1, a->s1, a->r1, w->ln_w[0], w->ln_b[0], N, C, 1e-12f);
      cuda_f32_to_bf16(a->h1b, a->h1, (size_t)N * C);
      cuda_matmul_gelu_forward_bf16(a->g, a->pre, a->h1b, w->wb[2], w->b[2], N, C, F);
      cuda_f32_to_bf16(a->gbf, a->g, (size_t)N * F);
      cuda_matmul_forward_bf16(tmp, a->gbf, w->wb[3], w->b[3], N, F, C);
      cuda_dropout_forward(tmp, tmp, (size_t)N * C, pd, seed, 4 * l + 2, 0);
      cuda_residual_forward(a->r2, a->h1, tmp, (size_t)N * C);
      cuda_layernorm_forward(ac[l + 1].x, a->m2, a->s2, a->r2, w->ln_w[1], w->ln_b[1], N, C, 1e-12f);
    }
    cuda_pool_forward(pooled, ac[L].x, mask, B, T, C, POOL_MEAN);
    cuda_l2norm_forward(emb, nrm, pooled, B, C);
    /* queries are rows [0,pairs), positives rows [pairs, B): symmetric InfoNCE */
    cuda_memset0(demb, (size_t)B * C * 4, NULL);
    loss = cuda_infonce_forward(probs, NULL, emb, pairs, emb + (size_t)pairs * C, pairs, NULL, 0, C, lab, 20.0f, 0);
    cuda_infonce_backward(demb, demb + (size_t)pairs * C, NULL, probs, emb, pairs, emb + (size_t)pairs * C, pairs, NULL, 0, C, lab, 20.0f, 0.5f);
    loss += cuda_infonce_forward(probs, NULL, emb + (size_t)pairs * C, pairs, emb, pairs, NULL, 0, C, lab, 20.0f, 0);
    cuda_infonce_backward(demb + (size_t)pairs * C, demb, NULL, probs, emb + (size_t)pairs * C, pairs, emb, pairs, NULL, 0, C, lab, 20.0f, 0.5f);
    cuda_memset0(dpool, (size_t)B * C * 4, NULL);
    cuda_l2norm_backward(dpool, demb, emb, nrm, B, C);
    cuda_memset0(dx, (size_t)N * C * 4, NULL);
    cuda_pool_backward(dx, dpool, mask, B, T, C, POOL_MEAN);
    for (int l = L - 1; l >= 0; l--) {
      acts *a = &ac[l];
      layer *w = &ly[l];
      /* dx: gradient w.r.t. this layer's output */
      cuda_memset0(dr, (size_t)N * C * 4, NULL);
      cuda_layernorm_backward(dr, w->gln_w[1], w->gln_b[1], dx, a->r2, w->ln_w[1], a->m2, a->s2, N, C);
      cuda_memset0(tmp, (size_t)N * C * 4, NULL);
      cuda_dropout_backward(tmp, dr, (size_t)N * C, pd, seed, 4 * l + 2, 0);
      cuda_f32_to_bf16(db16, tmp, (size_t)N * C);
      cuda_memset0(dg, (size_t)N * F * 4, NULL);
      cuda_matmul_backward_bf16(dg, w->gw[3], w->gb[3], db16, tmp, a->gbf, w->wb[3], N, F, C);
      cuda_memset0(dpre, (size_t)N * F * 4, NULL);
      cuda_gelu_backward(dpre, a->pre, a->g, dg, (size_t)N * F);
      cuda_f32_to_bf16(db16, dpre, (size_t)N * F);
      /* dh = dr (residual) + MLP input gradient */
      cuda_memset0(dh, (size_t)N * C * 4, NULL);
      cuda_add_inplace(dh, dr, (size_t)N * C);
      cuda_matmul_backward_bf16(dh, w->gw[2], w->gb[2], db16, dpre, a->h1b, w->wb[2], N, C, F);
      cuda_memset0(dr, (size_t)N * C * 4, NULL);
      cuda_layernorm_backward(dr, w->gln_w[0], w->gln_b[0], dh, a->r1, w->ln_w[0], a->m1, a->s1, N, C);
      /* dx_in = dr (residual) + attention branch */
      cuda_memset0(tmp, (size_t)N * C * 4, NULL);
      cuda_dropout_backward(tmp, dr, (size_t)N * C, pd, seed, 4 * l + 1, 0);
      cuda_f32_to_bf16(db16, tmp, (size_t)N * C);
      cuda_memset0(dh, (size_t)N * C * 4, NULL);
      cuda_matmul_backward_bf16(dh, w->gw[1], w->gb[1], db16, tmp, a->ab, w->wb[1], N, C, C);
      cuda_memset0(dqkv, (size_t)N * 3 * C * 4, NULL);
      cuda_attention_backward(dqkv, scr, dh, a->qkv, a->att, B, T, C, NH, pd, seed, 4 * l, 0);
      cuda_f32_to_bf16(db16, dqkv, (size_t)N * 3 * C);
      cuda_memset0(dx, (size_t)N * C * 4, NULL);
      cuda_add_inplace(dx, dr, (size_t)N * C);
      cuda_matmul_backward_bf16(dx, w->gw[0], w->gb[0], db16, dqkv, a->xb, w->wb[0], N, C, 3 * C);
    }
    cuda_embed_backward(G + o_wte, G + o_wpe, dx, ids, B, T, C);
    cuda_adamw_update_bf16(P, Pb, G, M, Vv, np, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, step + 1);
    sync_or_die();
    if (step >= 2) t_total += now() - t0;
  }
  double dt = t_total / steps, tok = (double)N / dt;
  double params = 0;
  for (int k = 0; k < 4; k++) params += (double)out_of[k] * in_of[k];
  double flops_tok = 3.0 * (2.0 * params * L + 4.0 * T * C * L); /* fwd + 2× for bwd */
  double mfu = tok * flops_tok / peak;
  printf("{\"bench\":\"train\",\"config\":\"%s\",\"layers\":%d,\"d\":%d,\"seq\":%d,\"batch\":%d,"
         "\"step_ms\":%.3f,\"tokens_per_s\":%.0f,\"model_tflops\":%.1f,\"mfu\":%.4f,\"loss\":%.4f}\n",
         c->name, L, C, T, B, dt * 1e3, tok, tok * flops_tok / 1e12, mfu, loss);
  free(ly);
  free(ac);
  free(ids_h);
  free(lab_h);
  free(mask_h);
}

/* ---- foil's encoder training step on the GPU ----------------------------------------- */

static void die_err(const char *what, const foil_err *err) {
  fprintf(stderr, "bench_gpu: %s: %s\n", what, err->msg);
  exit(1);
}

static void bench_model(const enc_cfg *c, int steps, int bf16, double peak) {
  encoder_config cfg;
  encoder_config_default(&cfg);
  cfg.n_layers = c->L, cfg.d_model = c->C, cfg.n_heads = c->NH, cfg.d_ff = c->F;
  cfg.vocab = c->V, cfg.max_len = c->T, cfg.ln_eps = 1e-12f;
  foil_err err = {0};
  encoder *e = NULL;
  optim *o = NULL;
  loss *l = NULL;
  if (encoder_new_on(&e, &cfg, DEVMEM_CUDA, &err)) die_err("encoder", &err);
  encoder_init(e, 1);
  if (bf16 && encoder_set_precision(e, ENC_BF16, &err)) die_err("precision", &err);
  optim_config oc;
  optim_config_default(&oc);
  oc.max_grad_norm = 1.0f;
  if (optim_new_on(&o, encoder_num_params(e), &oc, DEVMEM_CUDA, &err)) die_err("optimizer", &err);
  if (loss_new_on(&l, DEVMEM_CUDA, &err)) die_err("loss", &err);
  const int B = c->B, T = c->T, P = B / 2, D = c->C;
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T);
  uint8_t *mask = malloc((size_t)B * T);
  for (size_t i = 0; i < (size_t)B * T; i++) ids[i] = (int32_t)(rng_u32(5, 1, i) % (uint32_t)c->V), mask[i] = 1;
  float *demb = dalloc((size_t)B * D * 4);
  const loss_opts lo = {.temperature = 0.05f, .symmetric = 1};
  loss_result res = {0};
  double t_total = 0.0;
  for (int step = 0; step < steps + 2; step++) { /* 2 warm-up steps */
    sync_or_die();
    double t0 = now();
    const float *emb;
    encoder_zero_grads(e);
    if (encoder_forward(e, &emb, ids, mask, B, T, 1, 7, (uint64_t)step, &err)) die_err("forward", &err);
    if (loss_infonce(l, &res, demb, emb, P, 0, D, &lo, NULL, &err)) die_err("loss", &err);
    if (encoder_backward(e, demb, &err)) die_err("backward", &err);
    optim_step(o, e, 1e-4f);
    sync_or_die();
    if (step >= 2) t_total += now() - t0;
  }
  double dt = t_total / steps, tok = (double)B * T / dt, flops = 3.0 * encoder_forward_flops(&cfg, B, T);
  printf("{\"bench\":\"model_train\",\"config\":\"%s\",\"precision\":\"%s\",\"layers\":%d,\"d\":%d,"
         "\"seq\":%d,\"batch\":%d,\"step_ms\":%.3f,\"tokens_per_s\":%.0f,\"model_tflops\":%.1f,\"mfu\":%.4f,"
         "\"loss\":%.4f}\n", c->name, bf16 ? "bf16" : "fp32", c->L, c->C, T, B, dt * 1e3, tok, flops / dt / 1e12, flops / dt / peak,
         res.value);
  loss_destroy(&l);
  optim_destroy(&o);
  encoder_destroy(&e);
  free(ids);
  free(mask);
}

/* ---- search -------------------------------------------------------------------------- */

static void bench_search(long n, int d, int nq, int K, int reps, double hbm) {
  float *x = dalloc((size_t)n * d * 4), *q = dalloc((size_t)nq * d * 4);
  float *ts = dalloc((size_t)nq * K * 4);
  int64_t *ti = dalloc((size_t)nq * K * 8);
  float *scr = dalloc(cuda_scan_topk_scratch(nq) * 4);
  /* random rows for the first block, copies scaled by 1 + i/1024 for the
   * others: distinct scores without drawing n·d numbers on the host */
  const long blk = n < 65536 ? n : 65536;
  dfill(x, (size_t)blk * d, 1, 40);
  for (long r0 = blk, i = 1; r0 < n; r0 += blk, i++) {
    long m = n - r0 < blk ? n - r0 : blk;
    cuda_copy(x + (size_t)r0 * d, x, (size_t)m * d * 4, NULL);
    cuda_scale_inplace(x + (size_t)r0 * d, (size_t)m * d, 1.0f + (float)i / 1024.0f);
  }
  dfill(q, (size_t)nq * d, 1, 41);
  double best = 1e30;
  for (int r = 0; r < reps + 1; r++) {
    sync_or_die();
    double t0 = now();
    cuda_topk_init(ts, ti, nq, K);
    cuda_scan_topk(ts, ti, nq, K, q, d, x, (int)n, NULL, 0, 1, 0, scr);
    sync_or_die();
    double dt = now() - t0;
    if (r > 0 && dt < best) best = dt;
  }
  double bytes = (double)n * d * 4, bound = bytes / (hbm * 1e9);
  printf("{\"bench\":\"search\",\"rows\":%ld,\"dim\":%d,\"queries\":%d,\"k\":%d,\"batch_ms\":%.3f,"
         "\"qps\":%.0f,\"gbs\":%.0f,\"bound_ms\":%.3f,\"of_bound\":%.3f}\n",
         n, d, nq, K, best * 1e3, nq / best, bytes / best / 1e9, bound * 1e3, bound / best);
}

/* ---- foil-serve's search path ------------------------------------------------------------- */

static void bench_serve(long n, int d, int nq, int K, int reps, double hbm) {
  foil_err err = {0};
  float *x = malloc((size_t)n * d * sizeof(float)), *q = malloc((size_t)nq * d * sizeof(float));
  int64_t *ids = malloc((size_t)n * sizeof(int64_t)), *oi = malloc((size_t)nq * K * sizeof(int64_t));
  float *os = malloc((size_t)nq * K * sizeof(float));
  if (!x || !q || !ids || !oi || !os) {
    fprintf(stderr, "bench_gpu: out of host memory for %ld rows\n", n);
    exit(1);
  }
  for (size_t i = 0; i < (size_t)n * d; i++) x[i] = rng_uniform(80, 1, i) * 2.0f - 1.0f;
  for (size_t i = 0; i < (size_t)nq * d; i++) q[i] = rng_uniform(81, 1, i) * 2.0f - 1.0f;
  for (long i = 0; i < n; i++) ids[i] = i;
  vs_block b = {.dtype = VS_F32, .n = n, .d = d, .data = x, .ids = ids};
  vs_dev *dv = NULL;
  double t0 = now();
  if (vs_dev_new(&b, 1, &dv, &err)) die_err("vs_dev_new", &err);
  double up = now() - t0, best = 1e30;
  for (int r = 0; r < reps + 1; r++) {
    t0 = now();
    if (vs_dev_search(dv, q, nq, K, 1, 0, os, oi, &err)) die_err("vs_dev_search", &err);
    double dt = now() - t0;
    if (r > 0 && dt < best) best = dt;
  }
  double bytes = (double)n * d * 4, bound = bytes / (hbm * 1e9) * ((nq + 255) / 256);
  printf("{\"bench\":\"serve_search\",\"rows\":%ld,\"dim\":%d,\"queries\":%d,\"k\":%d,\"upload_s\":%.2f,"
         "\"batch_ms\":%.3f,\"qps\":%.0f,\"bound_ms\":%.3f,\"of_bound\":%.3f}\n",
         n, d, nq, K, up, best * 1e3, nq / best, bound * 1e3, bound / best);
  vs_dev_destroy(&dv);
  free(x), free(q), free(ids), free(oi), free(os);
}

/* ---- foil's decoder: training step and generation ---------------------------------------- */

/* "demo": examples/pretrain-lm-decoder.json's shape; "gpt2": GPT-2 small's */
static decoder *lm_new(const char *name, float dropout) {
  decoder_config c;
  decoder_config_default(&c);
  if (!strcmp(name, "gpt2")) c.n_layers = 12, c.d_model = 768, c.n_heads = 12, c.vocab = 50257, c.max_len = 1024;
  else c.n_layers = 4, c.d_model = 256, c.n_heads = 4, c.vocab = 8000, c.max_len = 128;
  c.dropout = dropout;
  foil_err err = {0};
  decoder *h = NULL, *d = NULL;
  if (decoder_new(&h, &c, &err) || decoder_init(h, 1, &err) || decoder_clone_on(h, DEVMEM_CUDA, &d, &err))
    die_err("decoder", &err);
  decoder_destroy(&h);
  return d;
}

static void bench_lm(const char *name, int steps, int B, int T, int bf16, double peak) {
  decoder *d = lm_new(name, 0.1f);
  const decoder_config *c = decoder_cfg(d);
  if (T > c->max_len) T = c->max_len;
  foil_err err = {0};
  if (bf16 && decoder_set_precision(d, ENC_BF16, &err)) die_err("precision", &err);
  optim_config oc;
  optim_config_default(&oc);
  oc.max_grad_norm = 1.0f;
  optim *o = NULL;
  if (optim_new_on(&o, decoder_num_params(d), &oc, DEVMEM_CUDA, &err)) die_err("optimizer", &err);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T), *tg = malloc(sizeof(int32_t) * (size_t)B * T);
  for (size_t i = 0; i < (size_t)B * T; i++) ids[i] = (int32_t)(rng_u32(6, 1, i) % (uint32_t)c->vocab);
  for (size_t i = 0; i < (size_t)B * T; i++) tg[i] = (i + 1) % (size_t)T ? ids[i + 1] : -1;
  double t_total = 0.0;
  float loss = 0;
  for (int step = 0; step < steps + 2; step++) { /* 2 warm-up steps */
    sync_or_die();
    double t0 = now();
    decoder_zero_grads(d);
    if (decoder_forward(d, ids, tg, NULL, B, T, 1, 7, (uint64_t)step, &loss, NULL, NULL, NULL, &err))
      die_err("forward", &err);
    if (decoder_backward(d, 1.0f, NULL, &err)) die_err("backward", &err);
    optim_step_tensors(o, decoder_params(d), decoder_grads(d), decoder_tensors(d), DEC_NTENSORS, 1e-4f);
    sync_or_die();
    if (step >= 2) t_total += now() - t0;
  }
  double dt = t_total / steps, flops = 3.0 * decoder_forward_flops(c, B, T);
  printf("{\"bench\":\"lm_train\",\"config\":\"%s\",\"precision\":\"%s\",\"layers\":%d,\"d\":%d,\"seq\":%d,"
         "\"batch\":%d,\"step_ms\":%.3f,\"tokens_per_s\":%.0f,\"model_tflops\":%.1f,\"mfu\":%.4f,\"loss\":%.4f}\n",
         name, bf16 ? "bf16" : "fp32", c->n_layers, c->d_model, T, B, dt * 1e3, (double)B * T / dt, flops / dt / 1e12,
         flops / dt / peak, loss);
  optim_destroy(&o);
  decoder_destroy(&d);
  free(ids), free(tg);
}

static void bench_generate(const char *name, const char *method, int B, int N) {
  decoder *d = lm_new(name, 0.0f);
  const int T = 32, V = decoder_cfg(d)->vocab;
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T), *out = malloc(sizeof(int32_t) * (size_t)B * N);
  int *lens = malloc(sizeof(int) * (size_t)B), *out_len = malloc(sizeof(int) * (size_t)B);
  for (size_t i = 0; i < (size_t)B * T; i++) ids[i] = (int32_t)(rng_u32(8, 1, i) % (uint32_t)V);
  for (int b = 0; b < B; b++) lens[b] = T;
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  generate_cs_cfg cs;
  generate_cs_default(&cs);
  generate_dola_cfg dola;
  generate_dola_default(&dola);
  foil_err err = {0};
  /* calls of N tokens and of 1 alternate: one warm-up of each, then the
   * best of two; TTFT = the 1-token call, TPOT = the difference over the
   * other N - 1 tokens (as bench_decode.c on the CPU) */
  double best[2] = {1e30, 1e30};
  for (int r = 0; r < 3; r++)
    for (int k = 0; k < 2; k++) {
      o.max_new_tokens = k ? 1 : N;
      double t0 = now();
      int rc = !strcmp(method, "cs") ? generate_cs(d, ids, lens, B, T, &cs, &o, out, out_len, &err)
               : !strcmp(method, "dola") ? generate_dola(d, ids, lens, B, T, &dola, &o, out, out_len, &err)
                                         : generate_plain(d, ids, lens, B, T, &o, out, out_len, &err);
      if (rc) die_err(method, &err);
      double dt = now() - t0;
      if (r > 0 && dt < best[k]) best[k] = dt;
    }
  printf("{\"bench\":\"generate\",\"config\":\"%s\",\"method\":\"%s\",\"batch\":%d,\"new_tokens\":%d,"
         "\"ttft_ms\":%.3f,\"tpot_ms\":%.3f,\"tokens_per_s\":%.0f}\n", name, method, B, N, best[1] * 1e3,
         N > 1 ? (best[0] - best[1]) / (N - 1) * 1e3 : 0.0, (double)B * N / best[0]);
  decoder_destroy(&d);
  free(ids), free(out), free(lens), free(out_len);
}

/* ---- decode ------------------------------------------------------------------------------- */

static void bench_decode(int rows, int len, int steps) {
  const int L = 12, C = 768, NH = 12, F = 3072, V = 50257, maxl = len + steps + 1;
  float *kc = dalloc((size_t)L * rows * maxl * C * 4), *vc = dalloc((size_t)L * rows * maxl * C * 4);
  float *w[4], *lnw = dalloc(C * 4), *lnb = dalloc(C * 4), *wte = dalloc((size_t)V * C * 4);
  const int out_of[4] = {3 * C, C, F, C}, in_of[4] = {C, C, C, F};
  for (int k = 0; k < 4; k++) {
    w[k] = dalloc((size_t)L * out_of[k] * in_of[k] * 4);
    dfill(w[k], (size_t)L * out_of[k] * in_of[k], 0.02f, 60 + k);
  }
  dfill(wte, (size_t)V * C, 0.02f, 70);
  dfill(kc, (size_t)L * rows * maxl * C, 1, 71);
  dfill(vc, (size_t)L * rows * maxl * C, 1, 72);
  float *x = dalloc((size_t)rows * C * 4), *h = dalloc((size_t)rows * C * 4), *qkv = dalloc((size_t)rows * 3 * C * 4);
  float *a = dalloc((size_t)rows * C * 4), *f = dalloc((size_t)rows * F * 4), *pre = dalloc((size_t)rows * F * 4);
  float *mean = dalloc(rows * 4), *rstd = dalloc(rows * 4), *logits = dalloc((size_t)rows * V * 4);
  float *scr = dalloc((size_t)rows * NH * (maxl + 1) * 4);
  int *lens_h = malloc(sizeof(int) * rows), *lens = dalloc(sizeof(int) * rows);
  dfill(x, (size_t)rows * C, 1, 73);
  {
    float ones[768];
    for (int i = 0; i < C; i++) ones[i] = 1.0f;
    cuda_upload(lnw, ones, sizeof(float) * C, NULL);
  }
  double t_total = 0.0;
  for (int s = 0; s < steps + 2; s++) {
    for (int r = 0; r < rows; r++) lens_h[r] = len + s;
    cuda_upload(lens, lens_h, sizeof(int) * rows, NULL);
    sync_or_die();
    double t0 = now();
    for (int l = 0; l < L; l++) {
      cuda_layernorm_forward(h, mean, rstd, x, lnw, lnb, rows, C, 1e-5f);
      cuda_matmul_forward(qkv, h, w[0] + (size_t)l * 3 * C * C, NULL, rows, C, 3 * C);
      cuda_attention_cache_forward(a, scr, qkv, kc + (size_t)l * rows * maxl * C, vc + (size_t)l * rows * maxl * C,
                                   lens, NULL, rows, 1, maxl, C, NH);
      cuda_matmul_forward(h, a, w[1] + (size_t)l * C * C, NULL, rows, C, C);
      cuda_add_inplace(x, h, (size_t)rows * C);
      cuda_layernorm_forward(h, mean, rstd, x, lnw, lnb, rows, C, 1e-5f);
      cuda_matmul_gelu_forward(f, pre, h, w[2] + (size_t)l * F * C, NULL, rows, C, F);
      cuda_matmul_forward(h, f, w[3] + (size_t)l * C * F, NULL, rows, F, C);
      cuda_add_inplace(x, h, (size_t)rows * C);
    }
    cuda_layernorm_forward(h, mean, rstd, x, lnw, lnb, rows, C, 1e-5f);
    cuda_matmul_forward(logits, h, wte, NULL, rows, C, V);
    sync_or_die();
    if (s >= 2) t_total += now() - t0;
  }
  double dt = t_total / steps;
  printf("{\"bench\":\"decode\",\"layers\":%d,\"d\":%d,\"rows\":%d,\"cache_len\":%d,\"step_ms\":%.3f,"
         "\"tokens_per_s\":%.0f}\n", L, C, rows, len, dt * 1e3, rows / dt);
  free(lens_h);
}

int main(int argc, char **argv) {
  foil_err err = {0};
  if (argc < 2) {
    fprintf(stderr, "usage: bench_gpu gemm | train small|minilm|bert [STEPS] | model small|minilm|bert [STEPS] "
                    "[fp32|bf16] | search N D NQ K [REPS] | serve N D NQ K [REPS] | "
                    "decode [ROWS] [LEN] [STEPS] | lm demo|gpt2 [STEPS] [BATCH] [SEQ] [fp32|bf16] | "
                    "generate demo|gpt2 greedy|cs|dola [BATCH] [NEW]\n");
    return 2;
  }
  if (cuda_device_count(&err) <= 0) {
    printf("SKIP: no CUDA device visible (%s)\n", err.msg);
    return 77;
  }
  if (cuda_init(0, &err)) {
    fprintf(stderr, "bench_gpu: %s\n", err.msg);
    return 1;
  }
  fprintf(stderr, "bench_gpu on %s\n", cuda_backend());
  double peak = env_or("FOIL_PEAK_TFLOPS", 990) * 1e12, hbm = env_or("FOIL_HBM_GBS", 4800);
  if (!strcmp(argv[1], "gemm")) {
    bench_gemm(peak);
  } else if ((!strcmp(argv[1], "train") || !strcmp(argv[1], "model")) && argc >= 3) {
    int steps = argc > 3 ? atoi(argv[3]) : 10;
    const enc_cfg *c = NULL;
    for (size_t i = 0; i < sizeof CFGS / sizeof CFGS[0]; i++)
      if (!strcmp(CFGS[i].name, argv[2])) c = &CFGS[i];
    if (!c) {
      fprintf(stderr, "bench_gpu: unknown config '%s' (small, minilm, bert)\n", argv[2]);
      return 2;
    }
    if (!strcmp(argv[1], "train")) bench_train(c, steps, peak);
    else bench_model(c, steps, argc > 4 && !strcmp(argv[4], "bf16"), peak);
  } else if (!strcmp(argv[1], "search") && argc >= 6) {
    bench_search(atol(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argc > 6 ? atoi(argv[6]) : 3, hbm);
  } else if (!strcmp(argv[1], "serve") && argc >= 6) {
    bench_serve(atol(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argc > 6 ? atoi(argv[6]) : 3, hbm);
  } else if (!strcmp(argv[1], "lm") && argc >= 3) {
    bench_lm(argv[2], argc > 3 ? atoi(argv[3]) : 10, argc > 4 ? atoi(argv[4]) : 8, argc > 5 ? atoi(argv[5]) : 1024,
             argc > 6 && !strcmp(argv[6], "bf16"), peak);
  } else if (!strcmp(argv[1], "generate") && argc >= 4) {
    bench_generate(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 8, argc > 5 ? atoi(argv[5]) : 64);
  } else if (!strcmp(argv[1], "decode")) {
    bench_decode(argc > 2 ? atoi(argv[2]) : 32, argc > 3 ? atoi(argv[3]) : 512, argc > 4 ? atoi(argv[4]) : 20);
  } else {
    fprintf(stderr, "bench_gpu: unknown mode '%s'\n", argv[1]);
    return 2;
  }
  if (cuda_sync(&err)) {
    fprintf(stderr, "bench_gpu: %s\n", err.msg);
    return 1;
  }
  cuda_shutdown(); /* frees the context's memory with the process */
  return 0;
}
