/* test_gpu_attention.c — attention forward/backward (masked, causal and
 * bidirectional, with and without dropout) and the KV-cache step against
 * the CPU kernels on the same inputs.
 *
 * Tolerances (fp32): att probabilities rtol 1e-5 atol 1e-6 (expf vs the
 * CPU's vexp, different summation order); out and dqkv rtol 1e-4 atol
 * 1e-5 (sums over T keys of products of O(1) values). With dropout both
 * sides drop the same elements (the same Philox bits), so the same bounds
 * hold. The cache step: rtol 1e-5, atol 1e-6. */
#include "tests/gpu/gpu_test.h"

enum { B = 2, T = 19, NH = 3, HS = 16, C = NH * HS };

static void run_case(int causal, float p_drop, const char *name) {
  const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
  uint8_t mask[B * T];
  for (int i = 0; i < B * T; i++) mask[i] = !(i / T == 1 && i % T >= T - 6); /* row 1 padded */
  mask[3] = 0;                                                                /* a hole in row 0 */
  mask[T + 0] = 0; /* row 1's first key hidden: causal query 0 sees none */
  float *qkv = randv(nqkv, 2), *out = malloc(sizeof(float) * nout), *att = malloc(sizeof(float) * natt);
  float *scratch = malloc(sizeof(float) * natt);
  const uint64_t seed = 99, stream = 3, offset = 1000;
  attention_forward(out, att, scratch, qkv, mask, B, T, C, NH, causal, p_drop, seed, stream, offset);
  float *dqkv = dev_from(qkv, sizeof(float) * nqkv), *dout = dev_from(NULL, sizeof(float) * nout);
  float *datt = dev_from(NULL, sizeof(float) * natt), *dscr = dev_from(NULL, sizeof(float) * natt);
  uint8_t *dmask = dev_from(mask, sizeof mask);
  cuda_attention_forward(dout, datt, dscr, dqkv, dmask, B, T, C, NH, causal, p_drop, seed, stream, offset);
  float *ho = host_from(dout, sizeof(float) * nout), *ha = host_from(datt, sizeof(float) * natt);
  char what[128];
  snprintf(what, sizeof what, "%s: att", name);
  close_enough(what, ha, att, natt, 1e-6f, 1e-5f);
  snprintf(what, sizeof what, "%s: out", name);
  close_enough(what, ho, out, nout, 1e-5f, 1e-4f);
  /* backward from the CPU's att, accumulating into a nonzero dqkv */
  float *go = randv(nout, 1), *gq = randv(nqkv, 1);
  float *dgo = dev_from(go, sizeof(float) * nout), *dgq = dev_from(gq, sizeof(float) * nqkv);
  cuda_upload(datt, att, sizeof(float) * natt, NULL);
  attention_backward(gq, scratch, go, qkv, att, B, T, C, NH, p_drop, seed, stream, offset);
  cuda_attention_backward(dgq, dscr, dgo, dqkv, datt, B, T, C, NH, p_drop, seed, stream, offset);
  float *hg = host_from(dgq, sizeof(float) * nqkv);
  snprintf(what, sizeof what, "%s: dqkv", name);
  close_enough(what, hg, gq, nqkv, 1e-5f, 1e-4f);
  cuda_free(dgq);
  cuda_free(dqkv); cuda_free(dout); cuda_free(datt); cuda_free(dscr); cuda_free(dmask); cuda_free(dgo);
  free(qkv); free(out); free(att); free(scratch); free(ho); free(ha); free(go); free(gq); free(hg);
}

static void test_bidirectional(void) { run_case(0, 0.0f, "bidirectional"); }
static void test_causal(void) { run_case(1, 0.0f, "causal"); }
static void test_dropout(void) { run_case(0, 0.2f, "bidirectional, dropout 0.2"); }
static void test_causal_dropout(void) { run_case(1, 0.1f, "causal, dropout 0.1"); }

/* Two runs of the backward give the same bits. */
static void test_determinism(void) {
  const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
  uint8_t mask[B * T];
  memset(mask, 1, sizeof mask);
  float *qkv = randv(nqkv, 2), *go = randv(nout, 1);
  float *dqkv = dev_from(qkv, sizeof(float) * nqkv), *dout = dev_from(NULL, sizeof(float) * nout);
  float *datt = dev_from(NULL, sizeof(float) * natt), *dscr = dev_from(NULL, sizeof(float) * natt);
  float *dgo = dev_from(go, sizeof(float) * nout);
  float *g1 = dev_from(NULL, sizeof(float) * nqkv), *g2 = dev_from(NULL, sizeof(float) * nqkv);
  uint8_t *dmask = dev_from(mask, sizeof mask);
  cuda_attention_forward(dout, datt, dscr, dqkv, dmask, B, T, C, NH, 0, 0.1f, 5, 6, 7);
  cuda_attention_backward(g1, dscr, dgo, dqkv, datt, B, T, C, NH, 0.1f, 5, 6, 7);
  cuda_attention_backward(g2, dscr, dgo, dqkv, datt, B, T, C, NH, 0.1f, 5, 6, 7);
  float *a = host_from(g1, sizeof(float) * nqkv), *b = host_from(g2, sizeof(float) * nqkv);
  CHECK(memcmp(a, b, sizeof(float) * nqkv) == 0);
  cuda_free(dqkv); cuda_free(dout); cuda_free(datt); cuda_free(dscr); cuda_free(dgo);
  cuda_free(g1); cuda_free(g2); cuda_free(dmask);
  free(qkv); free(go); free(a); free(b);
}

static void test_cache(void) {
  enum { ROWS = 4, MAXLEN = 23, NG = 3, R = 2 };
  int len[ROWS] = {0, 5, 22, 11}, rows_idx[NG] = {2, 0, 3};
  float *kc = randv((size_t)ROWS * MAXLEN * C, 1), *vc = randv((size_t)ROWS * MAXLEN * C, 1);
  float *qkv = randv((size_t)NG * R * 3 * C, 2);
  float *out = malloc(sizeof(float) * NG * R * C), *scr = malloc(sizeof(float) * NG * NH * (MAXLEN + 1));
  attention_cache_forward(out, scr, qkv, kc, vc, len, rows_idx, NG, R, MAXLEN, C, NH);
  float *dkc = dev_from(kc, sizeof(float) * ROWS * MAXLEN * C), *dvc = dev_from(vc, sizeof(float) * ROWS * MAXLEN * C);
  float *dqkv = dev_from(qkv, sizeof(float) * NG * R * 3 * C), *dout = dev_from(NULL, sizeof(float) * NG * R * C);
  float *dscr = dev_from(NULL, sizeof(float) * NG * NH * (MAXLEN + 1));
  int *dlen = dev_from(len, sizeof len), *didx = dev_from(rows_idx, sizeof rows_idx);
  cuda_attention_cache_forward(dout, dscr, dqkv, dkc, dvc, dlen, didx, NG, R, MAXLEN, C, NH);
  float *ho = host_from(dout, sizeof(float) * NG * R * C);
  close_enough("attention_cache_forward (rows_idx)", ho, out, (size_t)NG * R * C, 1e-6f, 1e-5f);
  /* rows_idx NULL: group g is row g */
  attention_cache_forward(out, scr, qkv, kc, vc, len, NULL, NG, R, MAXLEN, C, NH);
  cuda_attention_cache_forward(dout, dscr, dqkv, dkc, dvc, dlen, NULL, NG, R, MAXLEN, C, NH);
  float *ho2 = host_from(dout, sizeof(float) * NG * R * C);
  close_enough("attention_cache_forward (no rows_idx)", ho2, out, (size_t)NG * R * C, 1e-6f, 1e-5f);
  cuda_free(dkc); cuda_free(dvc); cuda_free(dqkv); cuda_free(dout); cuda_free(dscr); cuda_free(dlen); cuda_free(didx);
  free(kc); free(vc); free(qkv); free(out); free(scr); free(ho); free(ho2);
}

int main(void) {
  gpu_require();
  RUN(test_bidirectional);
  RUN(test_causal);
  RUN(test_dropout);
  RUN(test_causal_dropout);
  RUN(test_determinism);
  RUN(test_cache);
  cuda_shutdown();
  TEST_EXIT();
}
