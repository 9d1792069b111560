/* test_gpu_decoder.c — the decoder on DEVMEM_CUDA (model/decoder.h)
 * against the same decoder on the CPU, same weights and inputs: decode-eval
 * on GPU ranks.
 *
 * Checked: decoder_init's values on both backends (exact); a scoring
 * forward with targets and padding (loss, nll, hidden, logits); prefill
 * (logits, hidden, every layer's early exit) with prompts of different
 * lengths; steps with one candidate (per-layer logits, a subset through
 * decoder_layer_logits) and with three (contrastive search's shape) and
 * with an inactive row; commits and a beam reorder, then another step;
 * decoder_lm_head on host buffers; whole generations (greedy, contrastive
 * search, DoLa, beam search) must give the same tokens; training: with
 * dropout (the same Philox masks) the loss, every gradient (with an extra
 * dhidden, SimCTG's), and the parameters after three AdamW steps (within
 * Adam's per-step bound, as gpu.encoder; gradients per tensor within
 * 2e-4 of the tensor's largest). Tolerances: elementwise |gpu - cpu| <= 2e-5 + 2e-4·|cpu|
 * for logits, states and nll (fp32 GEMMs in another summation order, two
 * layers deep); the loss 1e-5 relative. The tokens of a generation must be
 * identical: on this random model the winning margins are far larger than
 * those differences (a near-tie could flip a token in principle; the seed
 * is fixed and the margins were checked large on the CPU run).
 *
 * Runs as gpu.decoder on a GPU and as unit.gpu_shim_decoder everywhere
 * against tests/gpu/cuda_shim.c, where the device results must equal the
 * CPU's bit for bit (same twins, same order) and every launcher must get
 * device buffers. */
#include "model/decoder.h"
#include "model/devmem.h"
#include "model/generate.h"
#include "model/optim.h"
#include "tests/gpu/gpu_test.h"

enum { L = 2, C = 32, NH = 4, V = 97, ML = 40, ROWS = 3, TP = 7 };
static float ATOL = 2e-5f, RTOL = 2e-4f; /* 0 against the shim: the same bits */

static decoder *cpu_dec, *gpu_dec;

static void make(void) {
  decoder_config cf;
  decoder_config_default(&cf);
  cf.n_layers = L, cf.d_model = C, cf.n_heads = NH, cf.vocab = V, cf.max_len = ML, cf.dropout = 0;
  foil_err e = {0};
  if (decoder_new(&cpu_dec, &cf, &e) || decoder_init(cpu_dec, 5, &e)) gpu_die("cpu decoder", &e);
  /* the LN weights and biases away from 1/0, so that every tensor matters */
  float *w = decoder_params(cpu_dec);
  const encoder_tensor *t = decoder_tensors(cpu_dec);
  for (int id = 0; id < DEC_NTENSORS; id++)
    if (!t[id].decay)
      for (size_t i = 0; i < t[id].size; i++) w[t[id].offset + i] += 0.1f * frand();
  if (decoder_clone_on(cpu_dec, DEVMEM_CUDA, &gpu_dec, &e)) gpu_die("clone to the device", &e);
}

static void test_init(void) {
  decoder *g = NULL;
  foil_err e = {0};
  CHECK(decoder_new_on(&g, decoder_cfg(cpu_dec), DEVMEM_CUDA, &e) == FOIL_OK);
  CHECK(decoder_backend(g) == DEVMEM_CUDA && decoder_grads(g) == NULL);
  CHECK(decoder_init(g, 9, &e) == FOIL_OK);
  decoder *c = NULL;
  CHECK(decoder_new(&c, decoder_cfg(cpu_dec), &e) == FOIL_OK && decoder_init(c, 9, &e) == FOIL_OK);
  size_t n = decoder_num_params(c);
  float *h = malloc(n * sizeof *h);
  CHECK(decoder_get_params(g, h, &e) == FOIL_OK);
  CHECK(memcmp(h, decoder_params(c), n * sizeof *h) == 0);
  free(h);
  decoder_destroy(&g);
  decoder_destroy(&c);
}

static int32_t tok(void) { return (int32_t)((frand() + 1.0f) * 0.5f * (V - 1)); }

static void test_forward(void) {
  const int B = 2, T = 9;
  int32_t ids[B * T], tg[B * T];
  uint8_t mask[B * T];
  for (int i = 0; i < B * T; i++) {
    ids[i] = tok();
    mask[i] = !(i >= T && i % T >= 6); /* row 1: 6 real tokens */
    tg[i] = (i % T < T - 1 && mask[i]) ? tok() : -1;
  }
  float lc = 0, lg = 0;
  const float *hc, *hg, *gc, *gg, *nc, *ng;
  foil_err e = {0};
  CHECK(decoder_forward(cpu_dec, ids, tg, mask, B, T, 0, 0, 0, &lc, &hc, &gc, &nc, &e) == FOIL_OK);
  CHECK(decoder_forward(gpu_dec, ids, tg, mask, B, T, 0, 0, 0, &lg, &hg, &gg, &ng, &e) == FOIL_OK);
  CHECKF(fabsf(lg - lc) <= 1e-5f * fabsf(lc), "loss gpu %.9g cpu %.9g", lg, lc);
  close_enough("forward hidden", hg, hc, (size_t)B * T * C, ATOL, RTOL);
  close_enough("forward logits", gg, gc, (size_t)B * T * V, ATOL, RTOL);
  close_enough("forward nll", ng, nc, (size_t)B * T, ATOL, RTOL);
  /* no targets: the nll are zeros and the loss 0 */
  CHECK(decoder_forward(gpu_dec, ids, NULL, mask, B, T, 0, 0, 0, &lg, NULL, NULL, &ng, &e) == FOIL_OK);
  CHECK(lg == 0 && ng[0] == 0 && ng[B * T - 1] == 0);
  /* a backward needs a training forward */
  CHECK(decoder_backward(gpu_dec, 1.0f, NULL, &e) == FOIL_EPRECOND);
}

/* Every gradient tensor (gpu_test.h's grads_tensors_close), the device's fetched first. */
static void grads_close(const char *what, decoder *c, decoder *g, float tol) {
  float *gg = host_from(decoder_grads(g), decoder_num_params(c) * sizeof(float));
  grads_tensors_close(what, gg, decoder_grads(c), decoder_tensors(c), DEC_NTENSORS, tol);
  free(gg);
}

/* Training on the device: dropout (the CPU's Philox masks), the loss, every
 * gradient with SimCTG's extra dhidden, three AdamW steps. */
static void test_train(void) {
  foil_err e = {0};
  decoder_config cf = *decoder_cfg(cpu_dec);
  cf.dropout = 0.1f;
  decoder *c = NULL, *g = NULL;
  if (decoder_new(&c, &cf, &e) || decoder_set_params(c, decoder_params(cpu_dec), &e) ||
      decoder_clone_on(c, DEVMEM_CUDA, &g, &e))
    gpu_die("training pair", &e);
  CHECK(decoder_grads(g) == NULL); /* until the first training forward */
  optim_config oc;
  optim_config_default(&oc);
  oc.max_grad_norm = 1.0f;
  optim *oc_cpu = NULL, *oc_gpu = NULL;
  size_t n = decoder_num_params(c);
  if (optim_new(&oc_cpu, n, &oc, &e) || optim_new_on(&oc_gpu, n, &oc, DEVMEM_CUDA, &e)) gpu_die("optim_new", &e);
  const int B = 2, T = 8;
  int32_t ids[B * T], tg[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = tok(), tg[i] = i % T == T - 1 ? -1 : tok();
  float dh[B * T * C];
  for (int i = 0; i < B * T * C; i++) dh[i] = 0.01f * frand();
  for (int step = 0; step < 3; step++) {
    float lc = 0, lg = 0;
    decoder_zero_grads(c);
    decoder_zero_grads(g);
    CHECK(decoder_forward(c, ids, tg, NULL, B, T, 1, 77, (uint64_t)step, &lc, NULL, NULL, NULL, &e) == FOIL_OK);
    CHECK(decoder_forward(g, ids, tg, NULL, B, T, 1, 77, (uint64_t)step, &lg, NULL, NULL, NULL, &e) == FOIL_OK);
    CHECKF(fabsf(lg - lc) <= 1e-5f * fabsf(lc) + ATOL, "step %d: training loss gpu %.9g cpu %.9g", step, lg, lc);
    CHECK(decoder_backward(c, 1.0f, dh, &e) == FOIL_OK);
    int rc = decoder_backward(g, 1.0f, dh, &e);
    CHECKF(rc == FOIL_OK, "backward on the device: %s", e.msg);
    if (step == 0) grads_close("with dropout and dhidden", c, g, RTOL);
    optim_step_tensors(oc_cpu, decoder_params(c), decoder_grads(c), decoder_tensors(c), DEC_NTENSORS, 1e-3f);
    optim_step_tensors(oc_gpu, decoder_params(g), decoder_grads(g), decoder_tensors(g), DEC_NTENSORS, 1e-3f);
  }
  float *p = malloc(n * sizeof *p);
  if (decoder_get_params(g, p, &e)) gpu_die("decoder_get_params", &e);
  /* AdamW moves a parameter by at most lr per step: 3 steps' bound */
  close_enough("params after 3 AdamW steps", p, decoder_params(c), n, RTOL ? 3 * 1e-3f * 1.01f + 1e-6f : 0, 0);
  free(p);
  optim_destroy(&oc_cpu);
  optim_destroy(&oc_gpu);
  decoder_destroy(&c);
  decoder_destroy(&g);
}

/* Mixed precision on both backends (the CPU's bf16 path is the reference
 * loops of kernels/cpu/bf16.c, the device's the tensor cores on the same
 * rounded operands): the scoring forward, a training step's gradients and
 * a prefill + step through the cache. Tolerances on a GPU: those above
 * for the forward (the operands are the same bf16 values; sums differ in
 * order), gradients 2e-3 of each tensor's largest (an output gradient may
 * round to a neighbouring bf16 value on the two sides). */
static void test_bf16(void) {
  foil_err e = {0};
  decoder *c = NULL, *g = NULL;
  if (decoder_clone_on(cpu_dec, DEVMEM_CPU, &c, &e) || decoder_clone_on(cpu_dec, DEVMEM_CUDA, &g, &e) ||
      decoder_set_precision(c, ENC_BF16, &e) || decoder_set_precision(g, ENC_BF16, &e))
    gpu_die("bf16 pair", &e);
  CHECK(decoder_precision(g) == ENC_BF16 && decoder_set_precision(g, 7, &e) == FOIL_EINVAL);
  const int B = 2, T = 7;
  int32_t ids[B * T], tg[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = tok(), tg[i] = i % T == T - 1 ? -1 : tok();
  float lc = 0, lg = 0;
  const float *gc_log, *gg_log;
  CHECK(decoder_forward(c, ids, tg, NULL, B, T, 0, 0, 0, &lc, NULL, &gc_log, NULL, &e) == FOIL_OK);
  CHECK(decoder_forward(g, ids, tg, NULL, B, T, 0, 0, 0, &lg, NULL, &gg_log, NULL, &e) == FOIL_OK);
  close_enough("bf16 forward logits", gg_log, gc_log, (size_t)B * T * V, ATOL, RTOL);
  CHECKF(fabsf(lg - lc) <= 1e-5f * fabsf(lc) + ATOL, "bf16 loss gpu %.9g cpu %.9g", lg, lc);
  decoder_zero_grads(c);
  CHECK(decoder_forward(c, ids, tg, NULL, B, T, 1, 3, 1, &lc, NULL, NULL, NULL, &e) == FOIL_OK);
  CHECK(decoder_forward(g, ids, tg, NULL, B, T, 1, 3, 1, &lg, NULL, NULL, NULL, &e) == FOIL_OK);
  CHECK(decoder_backward(c, 1.0f, NULL, &e) == FOIL_OK && decoder_backward(g, 1.0f, NULL, &e) == FOIL_OK);
  grads_close("bf16", c, g, RTOL ? 2e-3f : 0);
  /* the cache path in bf16 */
  decoder_cache *cc = NULL, *cg = NULL;
  CHECK(decoder_cache_new(&cc, c, 1, ML, 1, &e) == FOIL_OK && decoder_cache_new(&cg, g, 1, ML, 1, &e) == FOIL_OK);
  int lens[1] = {T};
  float a[V], b[V];
  CHECK(decoder_prefill(c, cc, ids, lens, T, a, NULL, NULL, &e) == FOIL_OK);
  CHECK(decoder_prefill(g, cg, ids, lens, T, b, NULL, NULL, &e) == FOIL_OK);
  close_enough("bf16 prefill logits", b, a, V, ATOL, RTOL);
  int32_t next[1] = {tok()};
  CHECK(decoder_step(c, cc, next, 1, NULL, a, NULL, NULL, &e) == FOIL_OK);
  CHECK(decoder_step(g, cg, next, 1, NULL, b, NULL, NULL, &e) == FOIL_OK);
  close_enough("bf16 step logits", b, a, V, ATOL, RTOL);
  decoder_cache_destroy(&cc);
  decoder_cache_destroy(&cg);
  decoder_destroy(&c);
  decoder_destroy(&g);
}

typedef struct {
  float *logits, *hidden, *layers;
} outs;
static outs outs_new(size_t nl, size_t nh, size_t ny) {
  outs o = {calloc(nl, sizeof(float)), calloc(nh, sizeof(float)), calloc(ny, sizeof(float))};
  return o;
}
static void outs_free(outs *o) { free(o->logits), free(o->hidden), free(o->layers); }

static void test_cache(void) {
  foil_err e = {0};
  decoder_cache *cc = NULL, *gc = NULL;
  const int R3 = 3;
  CHECK(decoder_cache_new(&cc, cpu_dec, ROWS, ML, R3, &e) == FOIL_OK);
  CHECK(decoder_cache_new(&gc, gpu_dec, ROWS, ML, R3, &e) == FOIL_OK);
  decoder_cache *wrong = NULL; /* a CPU cache does not serve a device decoder */
  CHECK(decoder_cache_new(&wrong, cpu_dec, ROWS, ML, 1, &e) == FOIL_OK);
  int32_t prompt[ROWS * TP];
  for (int i = 0; i < ROWS * TP; i++) prompt[i] = tok();
  int lens[ROWS] = {TP, 3, 5};
  CHECK(decoder_prefill(gpu_dec, wrong, prompt, lens, TP, NULL, NULL, NULL, &e) == FOIL_EINVAL);
  decoder_cache_destroy(&wrong);
  size_t ny = (size_t)(L + 1) * ROWS * V;
  outs a = outs_new((size_t)ROWS * V, (size_t)ROWS * TP * C, ny), b = outs_new((size_t)ROWS * V, (size_t)ROWS * TP * C, ny);
  CHECK(decoder_prefill(cpu_dec, cc, prompt, lens, TP, a.logits, a.hidden, a.layers, &e) == FOIL_OK);
  CHECK(decoder_prefill(gpu_dec, gc, prompt, lens, TP, b.logits, b.hidden, b.layers, &e) == FOIL_OK);
  close_enough("prefill logits", b.logits, a.logits, (size_t)ROWS * V, ATOL, RTOL);
  close_enough("prefill hidden", b.hidden, a.hidden, (size_t)ROWS * TP * C, ATOL, RTOL);
  close_enough("prefill layers", b.layers, a.layers, ny, ATOL, RTOL);
  /* prefill logits alone (the device's own LM-head path) */
  CHECK(decoder_prefill(gpu_dec, gc, prompt, lens, TP, b.logits, NULL, NULL, &e) == FOIL_OK);
  close_enough("prefill logits alone", b.logits, a.logits, (size_t)ROWS * V, ATOL, RTOL);
  outs_free(&a), outs_free(&b);

  /* one candidate per row: logits, hidden, every layer */
  int32_t step1[ROWS];
  for (int r = 0; r < ROWS; r++) step1[r] = tok();
  a = outs_new((size_t)ROWS * V, (size_t)ROWS * C, ny), b = outs_new((size_t)ROWS * V, (size_t)ROWS * C, ny);
  CHECK(decoder_step(cpu_dec, cc, step1, 1, NULL, a.logits, a.hidden, a.layers, &e) == FOIL_OK);
  CHECK(decoder_step(gpu_dec, gc, step1, 1, NULL, b.logits, b.hidden, b.layers, &e) == FOIL_OK);
  close_enough("step logits", b.logits, a.logits, (size_t)ROWS * V, ATOL, RTOL);
  close_enough("step hidden", b.hidden, a.hidden, (size_t)ROWS * C, ATOL, RTOL);
  close_enough("step layers", b.layers, a.layers, ny, ATOL, RTOL);
  int which[2] = {1, L};
  CHECK(decoder_layer_logits(cpu_dec, cc, which, 2, a.layers, &e) == FOIL_OK);
  CHECK(decoder_layer_logits(gpu_dec, gc, which, 2, b.layers, &e) == FOIL_OK);
  close_enough("two layers' logits", b.layers, a.layers, (size_t)2 * ROWS * V, ATOL, RTOL);
  decoder_cache_commit(cc, NULL, NULL);
  decoder_cache_commit(gc, NULL, NULL);
  outs_free(&a), outs_free(&b);

  /* three candidates, row 1 inactive; commit different choices */
  int32_t step3[ROWS * R3];
  for (int i = 0; i < ROWS * R3; i++) step3[i] = tok();
  uint8_t active[ROWS] = {1, 0, 1};
  size_t nl = (size_t)ROWS * R3 * V, nh = (size_t)ROWS * R3 * C;
  a = outs_new(nl, nh, 1), b = outs_new(nl, nh, 1);
  CHECK(decoder_step(cpu_dec, cc, step3, R3, active, a.logits, a.hidden, NULL, &e) == FOIL_OK);
  CHECK(decoder_step(gpu_dec, gc, step3, R3, active, b.logits, b.hidden, NULL, &e) == FOIL_OK);
  close_enough("3 candidates: logits", b.logits, a.logits, nl, ATOL, RTOL);
  close_enough("3 candidates: hidden", b.hidden, a.hidden, nh, ATOL, RTOL);
  CHECK(decoder_layer_logits(gpu_dec, gc, which, 2, b.layers, &e) == FOIL_EPRECOND);
  int choice[ROWS] = {2, 0, 1};
  decoder_cache_commit(cc, choice, active);
  decoder_cache_commit(gc, choice, active);
  outs_free(&a), outs_free(&b);

  /* a beam reorder, then a step over every row */
  int src[ROWS] = {2, 2, 0};
  CHECK(decoder_cache_reorder(cc, src, &e) == FOIL_OK);
  CHECK(decoder_cache_reorder(gc, src, &e) == FOIL_OK);
  for (int r = 0; r < ROWS; r++) CHECK(decoder_cache_lens(gc)[r] == decoder_cache_lens(cc)[r]);
  a = outs_new((size_t)ROWS * V, (size_t)ROWS * C, 1), b = outs_new((size_t)ROWS * V, (size_t)ROWS * C, 1);
  CHECK(decoder_step(cpu_dec, cc, step1, 1, NULL, a.logits, a.hidden, NULL, &e) == FOIL_OK);
  CHECK(decoder_step(gpu_dec, gc, step1, 1, NULL, b.logits, b.hidden, NULL, &e) == FOIL_OK);
  close_enough("after reorder: logits", b.logits, a.logits, (size_t)ROWS * V, ATOL, RTOL);
  close_enough("after reorder: hidden", b.hidden, a.hidden, (size_t)ROWS * C, ATOL, RTOL);
  /* the LM head on host buffers */
  CHECK(decoder_lm_head(cpu_dec, a.logits, a.hidden, ROWS, &e) == FOIL_OK);
  CHECK(decoder_lm_head(gpu_dec, b.logits, a.hidden, ROWS, &e) == FOIL_OK);
  close_enough("decoder_lm_head", b.logits, a.logits, (size_t)ROWS * V, ATOL, RTOL);
  outs_free(&a), outs_free(&b);
  decoder_cache_destroy(&cc);
  decoder_cache_destroy(&gc);
}

typedef int (*gen_fn)(decoder *d, const int32_t *ids, const int *lens, int P, int T, const generate_opts *o,
                      int32_t *out, int *out_len, foil_err *err);
static int gen_greedy(decoder *d, const int32_t *ids, const int *lens, int P, int T, const generate_opts *o,
                      int32_t *out, int *out_len, foil_err *err) {
  return generate_plain(d, ids, lens, P, T, o, out, out_len, err);
}
static int gen_cs(decoder *d, const int32_t *ids, const int *lens, int P, int T, const generate_opts *o,
                  int32_t *out, int *out_len, foil_err *err) {
  generate_cs_cfg c;
  generate_cs_default(&c);
  return generate_cs(d, ids, lens, P, T, &c, o, out, out_len, err);
}
static int gen_dola(decoder *d, const int32_t *ids, const int *lens, int P, int T, const generate_opts *o,
                    int32_t *out, int *out_len, foil_err *err) {
  generate_dola_cfg c;
  generate_dola_default(&c);
  generate_opts oo = *o;
  oo.repetition_penalty = 1.2f;
  return generate_dola(d, ids, lens, P, T, &c, &oo, out, out_len, err);
}
static int gen_beam(decoder *d, const int32_t *ids, const int *lens, int P, int T, const generate_opts *o,
                    int32_t *out, int *out_len, foil_err *err) {
  generate_beam_cfg c;
  generate_beam_default(&c);
  return generate_beam(d, ids, lens, P, T, &c, o, out, out_len, err);
}

enum { P = 2, T = 6, N = 12 };
static void test_generate(void) {
  int32_t ids[P * T];
  for (int i = 0; i < P * T; i++) ids[i] = tok();
  int lens[P] = {T, 4};
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  const struct {
    const char *name;
    gen_fn fn;
  } m[] = {{"greedy", gen_greedy}, {"contrastive search", gen_cs}, {"DoLa", gen_dola}, {"beam search", gen_beam}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    int32_t oc[P * N], og[P * N];
    int lc[P], lg[P];
    foil_err e = {0};
    int rc = m[i].fn(cpu_dec, ids, lens, P, T, &o, oc, lc, &e);
    CHECKF(rc == FOIL_OK, "%s on the cpu: %s", m[i].name, e.msg);
    rc = m[i].fn(gpu_dec, ids, lens, P, T, &o, og, lg, &e);
    CHECKF(rc == FOIL_OK, "%s on the device: %s", m[i].name, e.msg);
    int same = 1;
    for (int p = 0; p < P; p++) {
      same &= lc[p] == lg[p];
      for (int t = 0; t < lc[p] && t < N; t++) same &= oc[p * N + t] == og[p * N + t];
    }
    CHECKF(same, "%s: the same tokens on both backends", m[i].name);
  }
}

int main(void) {
  gpu_require();
  if (strstr(cuda_backend(), "shim")) ATOL = RTOL = 0;
  make();
  RUN(test_init);
  RUN(test_forward);
  RUN(test_train);
  RUN(test_bf16);
  RUN(test_cache);
  RUN(test_generate);
  decoder_destroy(&cpu_dec);
  decoder_destroy(&gpu_dec);
  cuda_shutdown();
  TEST_EXIT();
}
