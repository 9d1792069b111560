/* test_decoder.c — the GPT-2-style decoder and its KV cache (model/decoder.h).
 *
 *   - attention_cache_forward equals the last row of causal attention_forward
 *     over prompt + token, for each of R candidates and a subset of rows;
 *   - prefill + k steps (committed) give the logits and hidden states of
 *     decoder_forward over the whole sequences (rel. err <= 1e-5), rows of
 *     different lengths in one batch;
 *   - R candidates in one step equal one-candidate steps; committing choices
 *     != 0 and continuing equals the forward over the chosen sequences;
 *     inactive rows are left untouched;
 *   - beam reorder; DoLa's per-layer logits (j = 0 by hand, j = L the
 *     logits, prefill and step agree); decoder_layer_logits equals the
 *     asked layers of that output (active rows only, states dropped by a
 *     multi-candidate step or a reorder);
 *   - gradients of every tensor against central finite differences (float
 *     forward, objective summed in double), with and without dhidden, with
 *     and without dropout; loss and nll with and without the logits;
 *   - same bits twice and on 1 vs 2 threads (forward and backward);
 *   - row maps: 2 ranks' halves of a batch, dropout on, give 1 rank's
 *     states, nll and gradients;
 *   - bad inputs are refused with FOIL_EINVAL and a message.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/decoder.h"
#include "model/devmem.h"
#include "tests/test.h"
#include "tests/unit/ready_log.h"

static uint64_t rs = 88172645463325252ull;
static double urand(void) { /* xorshift64, [0,1) */
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return (double)(rs >> 11) / 9007199254740992.0;
}
static float srand_f(float a) { return (float)((2.0 * urand() - 1.0) * a); }


static decoder *make(int L, int C, int NH, int F, int V, int max_len, float dropout) {
  decoder_config cfg;
  decoder_config_default(&cfg);
  cfg.n_layers = L;
  cfg.d_model = C;
  cfg.n_heads = NH;
  cfg.d_ff = F;
  cfg.vocab = V;
  cfg.max_len = max_len;
  cfg.dropout = dropout;
  decoder *d = NULL;
  foil_err err = {0};
  int rc = decoder_new(&d, &cfg, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) return NULL;
  /* weights large enough that attention and the LM head are far from uniform */
  const encoder_tensor *t = decoder_tensors(d);
  float *p = decoder_params(d);
  for (int i = 0; i < DEC_NTENSORS; i++) {
    int ln_w = i == DEC_LN1_W || i == DEC_LN2_W || i == DEC_LNF_W;
    for (size_t k = 0; k < t[i].size; k++)
      p[t[i].offset + k] = (ln_w ? 1.0f : 0.0f) + srand_f(t[i].decay ? 0.4f : 0.1f);
  }
  return d;
}

/* ---- the kernel ---------------------------------------------------------------- */

static void test_attention_cache_kernel(void) {
  const int rows = 3, C = 12, NH = 3, ML = 9, R = 3;
  const int lens[3] = {4, 0, 7};
  /* per row: the prompt's qkv at positions 0..len-1, then R candidate tokens */
  float *seq = malloc(sizeof(float) * rows * (ML + R) * 3 * C);
  for (int i = 0; i < rows * (ML + R) * 3 * C; i++) seq[i] = srand_f(1.5f);
  float *kc = calloc((size_t)rows * ML * C, sizeof(float)), *vc = calloc((size_t)rows * ML * C, sizeof(float));
  float *qkv = malloc(sizeof(float) * rows * R * 3 * C), *out = malloc(sizeof(float) * rows * R * C);
  float *scratch = malloc(sizeof(float) * rows * NH * (ML + 1));
  for (int r = 0; r < rows; r++) {
    const float *s = seq + (size_t)r * (ML + R) * 3 * C;
    for (int t = 0; t < lens[r]; t++) {
      memcpy(kc + ((size_t)r * ML + t) * C, s + (size_t)t * 3 * C + C, C * sizeof(float));
      memcpy(vc + ((size_t)r * ML + t) * C, s + (size_t)t * 3 * C + 2 * C, C * sizeof(float));
    }
  }
  /* groups: rows 2 and 0 (a subset, out of order) */
  const int grp[2] = {2, 0};
  for (int g = 0; g < 2; g++)
    for (int i = 0; i < R; i++)
      memcpy(qkv + ((size_t)g * R + i) * 3 * C,
             seq + ((size_t)grp[g] * (ML + R) + ML + i) * 3 * C, 3 * C * sizeof(float));
  attention_cache_forward(out, scratch, qkv, kc, vc, lens, grp, 2, R, ML, C, NH);
  /* reference: causal attention over prompt + candidate i */
  float full_qkv[(9 + 1) * 36], full_out[(9 + 1) * 12], att[3 * 10 * 10];
  uint8_t mask[10];
  memset(mask, 1, sizeof mask);
  double worst = 0;
  for (int g = 0; g < 2; g++)
    for (int i = 0; i < R; i++) {
      int r = grp[g], T = lens[r] + 1;
      const float *s = seq + (size_t)r * (ML + R) * 3 * C;
      memcpy(full_qkv, s, (size_t)lens[r] * 3 * C * sizeof(float));
      memcpy(full_qkv + (size_t)lens[r] * 3 * C, s + (size_t)(ML + i) * 3 * C, 3 * C * sizeof(float));
      attention_forward(full_out, att, NULL, full_qkv, mask, 1, T, C, NH, 1, 0.0f, 0, 0, 0);
      double e = test_rel_err(out + ((size_t)g * R + i) * C, full_out + (size_t)(T - 1) * C, C);
      if (e > worst) worst = e;
    }
  CHECKF(worst <= 1e-6, "cache attention vs causal attention: rel err %.3g", worst);
  /* same bits on 1 thread */
  float *out1 = malloc(sizeof(float) * rows * R * C);
  kernels_set_threads(1);
  attention_cache_forward(out1, scratch, qkv, kc, vc, lens, grp, 2, R, ML, C, NH);
  kernels_set_threads(2);
  CHECK(memcmp(out1, out, sizeof(float) * 2 * R * C) == 0);
  free(out1);
  /* an empty row attends to itself only: the output is its own value */
  const int lens0[1] = {0};
  attention_cache_forward(out, scratch, qkv, kc, vc, lens0, NULL, 1, 1, ML, C, NH);
  CHECK(test_rel_err(out, qkv + 2 * C, C) <= 1e-7);
  free(seq);
  free(kc);
  free(vc);
  free(qkv);
  free(out);
  free(scratch);
}

/* ---- cache vs full forward ---------------------------------------------------- */

enum { TL = 2, TC = 16, TNH = 4, TF = 24, TV = 37, TML = 16 };

/* Full-sequence eval forward of rows x T (right-padded by lens) into copies. */
static void full_forward(decoder *d, const int32_t *ids, const int *lens, int rows, int T,
                         float *logits, float *hidden) {
  uint8_t *mask = malloc((size_t)rows * T);
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < T; t++) mask[r * T + t] = t < lens[r];
  const float *h = NULL, *lg = NULL;
  float loss;
  foil_err err = {0};
  int rc = decoder_forward(d, ids, NULL, mask, rows, T, 0, 0, 0, &loss, &h, &lg, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) {
    memcpy(logits, lg, sizeof(float) * rows * T * TV);
    memcpy(hidden, h, sizeof(float) * rows * T * TC);
  }
  free(mask);
}

static void test_prefill_steps_equal_forward(void) {
  decoder *d = make(TL, TC, TNH, TF, TV, TML, 0.1f);
  if (!d) return;
  const int rows = 3, K = 5, lens[3] = {5, 2, 8}, Tp = 8, T = Tp + K;
  int32_t ids[3 * 13];
  for (int i = 0; i < rows * T; i++) ids[i] = (int32_t)(urand() * TV);
  /* the full sequences: row r's prompt then its K generated tokens */
  int32_t full[3 * 13];
  int flen[3];
  for (int r = 0; r < rows; r++) {
    flen[r] = lens[r] + K;
    for (int t = 0; t < T; t++) full[r * T + t] = t < flen[r] ? ids[r * T + t] : 0;
  }
  float *ref_lg = malloc(sizeof(float) * rows * T * TV), *ref_h = malloc(sizeof(float) * rows * T * TC);
  full_forward(d, full, flen, rows, T, ref_lg, ref_h);

  decoder_cache *c = NULL;
  foil_err err = {0};
  int rc = decoder_cache_new(&c, d, rows, TML, 1, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) goto out;
  int32_t prompt[3 * 8];
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < Tp; t++) prompt[r * Tp + t] = ids[r * T + t];
  float lg[3 * TV], hp[3 * 8 * TC], hs[3 * TC];
  rc = decoder_prefill(d, c, prompt, lens, Tp, lg, hp, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  double worst_l = 0, worst_h = 0;
  for (int r = 0; r < rows; r++) {
    CHECK(decoder_cache_lens(c)[r] == lens[r]);
    double e = test_rel_err(lg + r * TV, ref_lg + ((size_t)r * T + lens[r] - 1) * TV, TV);
    worst_l = fmax(worst_l, e);
    for (int t = 0; t < Tp; t++) {
      if (t < lens[r]) {
        worst_h = fmax(worst_h, test_rel_err(hp + ((size_t)r * Tp + t) * TC, ref_h + ((size_t)r * T + t) * TC, TC));
      } else {
        int zero = 1;
        for (int k = 0; k < TC; k++) zero &= hp[((size_t)r * Tp + t) * TC + k] == 0.0f;
        CHECKF(zero, "prefill hidden of padding position %d of row %d is not zero", t, r);
      }
    }
  }
  for (int s = 0; s < K; s++) {
    int32_t tok[3];
    for (int r = 0; r < rows; r++) tok[r] = ids[r * T + lens[r] + s];
    rc = decoder_step(d, c, tok, 1, NULL, lg, hs, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    for (int r = 0; r < rows; r++) {
      size_t pos = (size_t)r * T + lens[r] + s;
      worst_l = fmax(worst_l, test_rel_err(lg + r * TV, ref_lg + pos * TV, TV));
      worst_h = fmax(worst_h, test_rel_err(hs + r * TC, ref_h + pos * TC, TC));
    }
    decoder_cache_commit(c, NULL, NULL);
    for (int r = 0; r < rows; r++) CHECK(decoder_cache_lens(c)[r] == lens[r] + s + 1);
  }
  CHECKF(worst_l <= 1e-5, "cache logits vs forward: rel err %.3g", worst_l);
  CHECKF(worst_h <= 1e-5, "cache hidden vs forward: rel err %.3g", worst_h);
  /* reset empties the rows */
  decoder_cache_reset(c);
  CHECK(decoder_cache_lens(c)[0] == 0 && decoder_cache_lens(c)[2] == 0);
out:
  free(ref_lg);
  free(ref_h);
  decoder_cache_destroy(&c);
  CHECK(c == NULL);
  decoder_destroy(&d);
  CHECK(d == NULL);
}

static void test_candidates_commit_active(void) {
  decoder *d = make(TL, TC, TNH, TF, TV, TML, 0.0f);
  if (!d) return;
  enum { ROWS = 3, R = 3, TP = 6, K2 = 2 };
  const int lens[ROWS] = {6, 3, 4};
  int32_t prompt[ROWS * TP];
  for (int i = 0; i < ROWS * TP; i++) prompt[i] = (int32_t)(urand() * TV);
  decoder_cache *c = NULL, *c1 = NULL;
  foil_err err = {0};
  int rc = decoder_cache_new(&c, d, ROWS, TML, R, &err);
  rc = rc ? rc : decoder_cache_new(&c1, d, ROWS, TML, 1, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) goto out;
  rc = decoder_prefill(d, c, prompt, lens, TP, NULL, NULL, NULL, &err);
  rc = rc ? rc : decoder_prefill(d, c1, prompt, lens, TP, NULL, NULL, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  int32_t cand[ROWS * R];
  for (int i = 0; i < ROWS * R; i++) cand[i] = (int32_t)(urand() * TV);
  float lg[ROWS * R * TV], hs[ROWS * R * TC], lg1[ROWS * TV], hs1[ROWS * TC];
  rc = decoder_step(d, c, cand, R, NULL, lg, hs, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  double worst = 0;
  for (int i = 0; i < R; i++) {
    int32_t one[ROWS];
    for (int r = 0; r < ROWS; r++) one[r] = cand[r * R + i];
    rc = decoder_step(d, c1, one, 1, NULL, lg1, hs1, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    for (int r = 0; r < ROWS; r++) {
      worst = fmax(worst, test_rel_err(lg + ((size_t)r * R + i) * TV, lg1 + r * TV, TV));
      worst = fmax(worst, test_rel_err(hs + ((size_t)r * R + i) * TC, hs1 + r * TC, TC));
    }
  }
  CHECKF(worst <= 1e-6, "R candidates vs one-candidate steps: rel err %.3g", worst);

  /* commit choices != 0, then K2 more steps; row 1 inactive in the last step */
  const int choice[ROWS] = {2, 1, 2};
  decoder_cache_commit(c, choice, NULL);
  int32_t seq[ROWS * (TP + 1 + K2)];
  int flen[ROWS];
  const int T = TP + 1 + K2;
  memset(seq, 0, sizeof seq);
  for (int r = 0; r < ROWS; r++) {
    for (int t = 0; t < lens[r]; t++) seq[r * T + t] = prompt[r * TP + t];
    seq[r * T + lens[r]] = cand[r * R + choice[r]];
    flen[r] = lens[r] + 1;
    CHECK(decoder_cache_lens(c)[r] == flen[r]);
  }
  float ref_lg[ROWS * (TP + 1 + K2) * TV], ref_h[ROWS * (TP + 1 + K2) * TC];
  for (int s = 0; s < K2; s++) {
    int32_t tok[ROWS * 2];
    uint8_t active[ROWS] = {1, (uint8_t)(s == 0), 1};
    for (int r = 0; r < ROWS * 2; r++) tok[r] = (int32_t)(urand() * TV);
    for (size_t i = 0; i < sizeof lg / sizeof lg[0]; i++) lg[i] = 12345.0f;
    rc = decoder_step(d, c, tok, 2, active, lg, hs, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!active[1]) CHECKF(lg[1 * 2 * TV] == 12345.0f && lg[1 * 2 * TV + 2 * TV - 1] == 12345.0f,
                           "an inactive row's logits were written");
    /* choose candidate 1 of each active row */
    const int ch[ROWS] = {1, 1, 1};
    for (int r = 0; r < ROWS; r++)
      if (active[r]) seq[r * T + flen[r]] = tok[r * 2 + 1];
    /* reference: the forward over the chosen sequences so far (+ this token) */
    int tlen[ROWS];
    for (int r = 0; r < ROWS; r++) tlen[r] = flen[r] + active[r];
    full_forward(d, seq, tlen, ROWS, T, ref_lg, ref_h);
    double e = 0;
    for (int r = 0; r < ROWS; r++)
      if (active[r])
        e = fmax(e, test_rel_err(lg + ((size_t)r * 2 + 1) * TV, ref_lg + ((size_t)r * T + tlen[r] - 1) * TV, TV));
    CHECKF(e <= 1e-5, "step %d after commit(choice != 0) vs forward: rel err %.3g", s, e);
    decoder_cache_commit(c, ch, active);
    for (int r = 0; r < ROWS; r++) {
      CHECK(decoder_cache_lens(c)[r] == tlen[r]);
      flen[r] = tlen[r];
    }
  }
out:
  decoder_cache_destroy(&c);
  decoder_cache_destroy(&c1);
  decoder_destroy(&d);
}

static void test_reorder(void) {
  decoder *d = make(TL, TC, TNH, TF, TV, TML, 0.0f);
  if (!d) return;
  enum { ROWS = 4, TP = 5 };
  const int lens[ROWS] = {5, 2, 4, 3};
  int32_t prompt[ROWS * TP];
  for (int i = 0; i < ROWS * TP; i++) prompt[i] = (int32_t)(urand() * TV);
  decoder_cache *c = NULL;
  foil_err err = {0};
  int rc = decoder_cache_new(&c, d, ROWS, TML, 1, &err);
  rc = rc ? rc : decoder_prefill(d, c, prompt, lens, TP, NULL, NULL, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) goto out;
  const int src[ROWS] = {2, 0, 0, 1}; /* row 1 <- 0 before row 0 is overwritten by 2 */
  rc = decoder_cache_reorder(c, src, &err);
  CHECKF(rc == 0, "%s", err.msg);
  int32_t seq[ROWS * (TP + 1)];
  int flen[ROWS];
  const int T = TP + 1;
  int32_t tok[ROWS];
  for (int r = 0; r < ROWS; r++) {
    CHECK(decoder_cache_lens(c)[r] == lens[src[r]]);
    flen[r] = lens[src[r]] + 1;
    tok[r] = (int32_t)(urand() * TV);
    for (int t = 0; t < T; t++)
      seq[r * T + t] = t < lens[src[r]] ? prompt[src[r] * TP + t] : (t == lens[src[r]] ? tok[r] : 0);
  }
  float lg[ROWS * TV], ref_lg[ROWS * (TP + 1) * TV], ref_h[ROWS * (TP + 1) * TC];
  rc = decoder_step(d, c, tok, 1, NULL, lg, NULL, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  full_forward(d, seq, flen, ROWS, T, ref_lg, ref_h);
  double e = 0;
  for (int r = 0; r < ROWS; r++)
    e = fmax(e, test_rel_err(lg + r * TV, ref_lg + ((size_t)r * T + flen[r] - 1) * TV, TV));
  CHECKF(e <= 1e-5, "step after reorder vs forward: rel err %.3g", e);
  const int bad[ROWS] = {0, 1, 4, 0};
  CHECK(decoder_cache_reorder(c, bad, &err) == FOIL_EINVAL && err.msg[0]);
out:
  decoder_cache_destroy(&c);
  decoder_destroy(&d);
}

static void test_dola_layers(void) {
  decoder *d = make(TL, TC, TNH, TF, TV, TML, 0.0f);
  if (!d) return;
  enum { ROWS = 2, TP = 6, NL = TL + 1 };
  const int lens[ROWS] = {6, 3}, lens_short[ROWS] = {5, 2};
  int32_t prompt[ROWS * TP];
  for (int i = 0; i < ROWS * TP; i++) prompt[i] = (int32_t)(urand() * TV);
  decoder_cache *c = NULL;
  foil_err err = {0};
  int rc = decoder_cache_new(&c, d, ROWS, TML, 2, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) return;
  float lay[NL * ROWS * TV], lg[ROWS * TV], lay2[NL * ROWS * TV], lg2[ROWS * TV];
  rc = decoder_prefill(d, c, prompt, lens, TP, lg, NULL, lay, &err);
  CHECKF(rc == 0, "%s", err.msg);
  CHECK(memcmp(lay + TL * ROWS * TV, lg, sizeof lg) == 0);
  /* j = 0: the embedding of the last token through the LM head */
  const encoder_tensor *t = decoder_tensors(d);
  const float *W = decoder_params(d);
  float e0[TC], l0[TV];
  for (int r = 0; r < ROWS; r++) {
    int last = lens[r] - 1, id = prompt[r * TP + last];
    for (int k = 0; k < TC; k++)
      e0[k] = W[t[DEC_WTE].offset + (size_t)id * TC + k] + W[t[DEC_WPE].offset + (size_t)last * TC + k];
    CHECK(decoder_lm_head(d, l0, e0, 1, NULL) == FOIL_OK);
    CHECKF(test_rel_err(lay + r * TV, l0, TV) <= 1e-6, "layer 0 logits of row %d", r);
  }
  /* prefill one shorter, then step the last prompt token: same per-layer logits */
  rc = decoder_prefill(d, c, prompt, lens_short, TP, NULL, NULL, NULL, &err);
  int32_t tok[ROWS] = {prompt[0 * TP + 5], prompt[1 * TP + 2]};
  rc = rc ? rc : decoder_step(d, c, tok, 1, NULL, lg2, NULL, lay2, &err);
  CHECKF(rc == 0, "%s", err.msg);
  CHECKF(test_rel_err(lay2, lay, sizeof lay / sizeof lay[0]) <= 1e-5, "step layers vs prefill layers: %.3g",
         test_rel_err(lay2, lay, sizeof lay / sizeof lay[0]));
  CHECK(memcmp(lay2 + TL * ROWS * TV, lg2, sizeof lg2) == 0);
  /* the same step with row 0 inactive: row 1 as before, row 0 untouched */
  float lay3[NL * ROWS * TV], lg3[ROWS * TV];
  for (size_t i = 0; i < sizeof lay3 / sizeof lay3[0]; i++) lay3[i] = -7.0f;
  uint8_t act[ROWS] = {0, 1};
  rc = decoder_step(d, c, tok, 1, act, lg3, NULL, lay3, &err);
  CHECKF(rc == 0, "%s", err.msg);
  for (int j = 0; j < NL; j++) {
    CHECK(lay3[(size_t)j * ROWS * TV] == -7.0f && lay3[((size_t)j * ROWS + 1) * TV - 1] == -7.0f);
    CHECKF(test_rel_err(lay3 + ((size_t)j * ROWS + 1) * TV, lay2 + ((size_t)j * ROWS + 1) * TV, TV) <= 1e-6,
           "layer %d of an active row next to an inactive one", j);
  }
  CHECK(test_rel_err(lg3 + TV, lg2 + TV, TV) <= 1e-6);
  /* layers need R == 1 */
  int32_t two[ROWS * 2] = {1, 2, 3, 4};
  CHECK(decoder_step(d, c, two, 2, NULL, NULL, NULL, lay2, &err) == FOIL_EINVAL && err.msg[0]);
  decoder_cache_destroy(&c);
  decoder_destroy(&d);
}

/* decoder_layer_logits: a subset (any order, repeats) of the `layers`
 * output, after a prefill, a step, a commit; only the step's active rows;
 * none after a multi-candidate step or a reorder. */
static void test_layer_logits(void) {
  decoder *d = make(TL, TC, TNH, TF, TV, TML, 0.0f);
  if (!d) return;
  enum { ROWS = 3, TP = 6, NL = TL + 1 };
  const int lens[ROWS] = {6, 3, 4};
  int32_t prompt[ROWS * TP];
  for (int i = 0; i < ROWS * TP; i++) prompt[i] = (int32_t)(urand() * TV);
  decoder_cache *c = NULL;
  foil_err err = {0};
  int rc = decoder_cache_new(&c, d, ROWS, TML, 2, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) return;
  float lay[NL * ROWS * TV], sub[2 * NL * ROWS * TV];
  const int which[] = {TL, 0, 1, TL, 1}, nw = 5;
  /* before any prefill: no states */
  CHECK(decoder_layer_logits(d, c, which, nw, sub, &err) == FOIL_EPRECOND && err.msg[0]);
  rc = decoder_prefill(d, c, prompt, lens, TP, NULL, NULL, lay, &err);
  CHECKF(rc == 0, "%s", err.msg);
  rc = decoder_layer_logits(d, c, which, nw, sub, &err);
  CHECKF(rc == 0, "%s", err.msg);
  for (int i = 0; i < nw; i++)
    CHECKF(test_rel_err(sub + (size_t)i * ROWS * TV, lay + (size_t)which[i] * ROWS * TV, ROWS * TV) <= 1e-6,
           "prefill: entry %d (layer %d)", i, which[i]);
  /* all L+1 and more: chunks of L+1 per product */
  int many[2 * NL];
  for (int i = 0; i < 2 * NL; i++) many[i] = (i * 3) % NL;
  rc = decoder_layer_logits(d, c, many, 2 * NL, sub, &err);
  CHECKF(rc == 0, "%s", err.msg);
  for (int i = 0; i < 2 * NL; i++)
    CHECKF(test_rel_err(sub + (size_t)i * ROWS * TV, lay + (size_t)many[i] * ROWS * TV, ROWS * TV) <= 1e-6,
           "repeated layers: entry %d", i);
  /* a step with row 1 inactive: rows 0 and 2 as the step's `layers`, row 1 untouched */
  int32_t tok[ROWS] = {5, 6, 7};
  uint8_t act[ROWS] = {1, 0, 1};
  rc = decoder_step(d, c, tok, 1, act, NULL, NULL, lay, &err);
  CHECKF(rc == 0, "%s", err.msg);
  decoder_cache_commit(c, NULL, act); /* commits keep the states */
  for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) sub[i] = -7.0f;
  rc = decoder_layer_logits(d, c, which, nw, sub, &err);
  CHECKF(rc == 0, "%s", err.msg);
  for (int i = 0; i < nw; i++)
    for (int r = 0; r < ROWS; r++) {
      const float *got = sub + ((size_t)i * ROWS + r) * TV;
      if (!act[r]) {
        CHECK(got[0] == -7.0f && got[TV - 1] == -7.0f);
        continue;
      }
      CHECKF(test_rel_err(got, lay + ((size_t)which[i] * ROWS + r) * TV, TV) <= 1e-6,
             "step: entry %d row %d", i, r);
    }
  /* bad layers */
  const int bad[2] = {0, TL + 1}, neg[1] = {-1};
  CHECK(decoder_layer_logits(d, c, bad, 2, sub, &err) == FOIL_EINVAL && err.msg[0]);
  CHECK(decoder_layer_logits(d, c, neg, 1, sub, &err) == FOIL_EINVAL && err.msg[0]);
  CHECK(decoder_layer_logits(d, c, which, 0, sub, &err) == FOIL_EINVAL && err.msg[0]);
  /* two candidates per row keep no states; neither does a reorder */
  int32_t two[ROWS * 2] = {1, 2, 3, 4, 5, 6};
  rc = decoder_step(d, c, two, 2, NULL, NULL, NULL, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  CHECK(decoder_layer_logits(d, c, which, nw, sub, &err) == FOIL_EPRECOND && err.msg[0]);
  rc = decoder_prefill(d, c, prompt, lens, TP, NULL, NULL, NULL, &err);
  CHECK(rc == 0 && decoder_layer_logits(d, c, which, 1, sub, &err) == 0);
  const int src[ROWS] = {1, 0, 2};
  CHECK(decoder_cache_reorder(c, src, &err) == 0);
  CHECK(decoder_layer_logits(d, c, which, nw, sub, &err) == FOIL_EPRECOND && err.msg[0]);
  decoder_cache_destroy(&c);
  decoder_destroy(&d);
}

/* ---- gradients ------------------------------------------------------------------- */

enum { GB = 2, GT = 5 };
static const uint8_t g_mask[GB * GT] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
static int32_t g_ids[GB * GT], g_tg[GB * GT];
static float g_dh[GB * GT * 8];

/* loss_weight·loss + <dh, hidden>, summed in double, train forward */
static double objective(decoder *d, float w, int use_dh) {
  float loss = 0;
  const float *h = NULL;
  foil_err err = {0};
  int rc = decoder_forward(d, g_ids, g_tg, g_mask, GB, GT, 1, 99, 3, &loss, &h, NULL, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  double s = (double)w * loss;
  if (use_dh)
    for (int i = 0; i < GB * GT * 8; i++) s += (double)g_dh[i] * h[i];
  return s;
}

static void fd_case(float dropout, int use_dh) {
  decoder *d = make(2, 8, 2, 12, 11, 6, dropout);
  if (!d) return;
  for (int i = 0; i < GB * GT; i++) {
    g_ids[i] = (int32_t)(urand() * 11);
    g_tg[i] = (int32_t)(urand() * 11);
  }
  g_tg[3] = -1;
  g_tg[8] = g_tg[9] = -1; /* padding positions ignored */
  for (int i = 0; i < GB * GT * 8; i++) g_dh[i] = srand_f(1.0f);
  const float w = 0.7f;
  foil_err err = {0};
  decoder_zero_grads(d);
  objective(d, w, use_dh);
  int rc = decoder_backward(d, w, use_dh ? g_dh : NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  const encoder_tensor *t = decoder_tensors(d);
  float *p = decoder_params(d), *g = decoder_grads(d);
  double worst = 0;
  const char *wname = "";
  for (int i = 0; i < DEC_NTENSORS; i++) {
    double gn = 0;
    for (size_t k = 0; k < t[i].size; k++) gn = fmax(gn, fabs(g[t[i].offset + k]));
    CHECKF(gn > 0, "tensor %s got no gradient", t[i].name);
    for (int s = 0; s < 6; s++) {
      size_t k = t[i].offset + (size_t)(urand() * t[i].size);
      float save = p[k], h = 3e-3f * fmaxf(1.0f, fabsf(save));
      p[k] = save + h;
      double fp = objective(d, w, use_dh);
      p[k] = save - h;
      double fm = objective(d, w, use_dh);
      p[k] = save;
      double num = (fp - fm) / (2.0 * h), an = g[k];
      double e = fabs(num - an) / fmax(2e-2, fmax(fabs(num), fabs(an)));
      if (e > worst) worst = e, wname = t[i].name;
    }
  }
  printf("  FD dropout %.2f dhidden %d: worst rel err %.2e (%s)\n", (double)dropout, use_dh, worst,
         wname);
  CHECKF(worst <= 2e-2, "dropout %.1f dhidden %d: worst FD rel err %.3g (%s)", (double)dropout,
         use_dh, worst, wname);
  decoder_destroy(&d);
}
static void test_grads_fd_loss(void) { fd_case(0.0f, 0); }
static void test_grads_fd_dhidden(void) { fd_case(0.0f, 1); }
static void test_grads_fd_dropout_dhidden(void) { fd_case(0.15f, 1); }

/* Exact backward of a pure <dh, hidden> objective: the loss weight 0 and a
 * loss-only backward add up to the combined one. */
static void test_backward_linear(void) {
  decoder *d = make(2, 8, 2, 12, 11, 6, 0.0f);
  if (!d) return;
  size_t n = decoder_num_params(d);
  float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
  foil_err err = {0};
  decoder_zero_grads(d);
  objective(d, 0.7f, 1);
  decoder_backward(d, 0.7f, g_dh, &err);
  memcpy(a, decoder_grads(d), n * sizeof(float));
  decoder_zero_grads(d);
  objective(d, 0.7f, 1);
  decoder_backward(d, 0.7f, NULL, &err);
  decoder_backward(d, 0.0f, g_dh, &err);
  memcpy(b, decoder_grads(d), n * sizeof(float));
  CHECKF(test_rel_err(b, a, n) <= 1e-5, "separate backwards vs combined: %.3g", test_rel_err(b, a, n));
  free(a);
  free(b);
  decoder_destroy(&d);
}

static void test_loss_nll_logits(void) {
  enum { B = 3, T = 70 }; /* more than one 64-row chunk of the LM head */
  decoder *d = make(TL, TC, TNH, TF, TV, 80, 0.0f);
  if (!d) return;
  int32_t *ids = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
  for (int i = 0; i < B * T; i++) {
    ids[i] = (int32_t)(urand() * TV);
    tg[i] = urand() < 0.2 ? -1 : (int32_t)(urand() * TV);
  }
  float loss1, loss2;
  const float *nll = NULL, *lg = NULL;
  foil_err err = {0};
  float *nll1 = malloc(sizeof(float) * B * T);
  int rc = decoder_forward(d, ids, tg, NULL, B, T, 0, 0, 0, &loss1, NULL, NULL, &nll, &err);
  CHECKF(rc == 0, "%s", err.msg);
  memcpy(nll1, nll, sizeof(float) * B * T);
  rc = decoder_forward(d, ids, tg, NULL, B, T, 0, 0, 0, &loss2, NULL, &lg, &nll, &err);
  CHECKF(rc == 0, "%s", err.msg);
  CHECK(loss1 == loss2 && memcmp(nll1, nll, sizeof(float) * B * T) == 0);
  double tot = 0, worst = 0;
  int cnt = 0;
  for (int i = 0; i < B * T; i++) {
    if (tg[i] < 0) {
      CHECK(nll[i] == 0.0f);
      continue;
    }
    const float *x = lg + (size_t)i * TV;
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < TV; v++) mx = fmax(mx, x[v]);
    for (int v = 0; v < TV; v++) s += exp(x[v] - mx);
    double ref = log(s) + mx - x[tg[i]];
    worst = fmax(worst, fabs(ref - nll[i]) / fmax(1e-3, fabs(ref)));
    tot += ref;
    cnt++;
  }
  CHECKF(worst <= 1e-5, "nll vs logsoftmax: %.3g", worst);
  CHECKF(fabs(tot / cnt - loss1) <= 1e-5 * fabs(tot / cnt), "loss %.7f vs %.7f", loss1, tot / cnt);
  /* no targets: loss 0 */
  rc = decoder_forward(d, ids, NULL, NULL, B, T, 0, 0, 0, &loss1, NULL, NULL, NULL, &err);
  CHECK(rc == 0 && loss1 == 0.0f);
  free(ids);
  free(tg);
  free(nll1);
  decoder_destroy(&d);
}

/* ---- determinism ------------------------------------------------------------------ */

static float *train_grads(int threads, float *loss_out, size_t *n) {
  kernels_set_threads(threads);
  rs = 12345;
  decoder *d = make(2, 32, 4, 64, 50, 16, 0.1f);
  enum { B = 3, T = 12 };
  int32_t ids[B * T], tg[B * T];
  uint8_t mask[B * T];
  float dh[B * T * 32];
  for (int i = 0; i < B * T; i++) {
    ids[i] = (int32_t)(urand() * 50);
    tg[i] = (int32_t)(urand() * 50);
    mask[i] = !(i / T == 2 && i % T >= 8);
  }
  for (int i = 0; i < B * T * 32; i++) dh[i] = srand_f(1.0f);
  foil_err err = {0};
  decoder_zero_grads(d);
  int rc = decoder_forward(d, ids, tg, mask, B, T, 1, 5, 2, loss_out, NULL, NULL, NULL, &err);
  rc = rc ? rc : decoder_backward(d, 1.0f, dh, &err);
  CHECKF(rc == 0, "%s", err.msg);
  *n = decoder_num_params(d);
  float *g = malloc(*n * sizeof(float));
  memcpy(g, decoder_grads(d), *n * sizeof(float));
  decoder_destroy(&d);
  return g;
}

/* decoder_on_grads_ready: every parameter's gradient announced exactly
 * once per backward and already final (ready_log.h); an error from the
 * callback stops the backward with it. */
static void test_grads_ready(void) {
  decoder *d = make(2, 8, 2, 12, 11, 6, 0.1f);
  if (!d) return;
  for (int i = 0; i < GB * GT; i++) g_ids[i] = i % 11, g_tg[i] = i % GT == GT - 1 ? -1 : (i * 3) % 11;
  for (int i = 0; i < GB * GT * 8; i++) g_dh[i] = 0.01f * (float)(i % 7 - 3);
  foil_err err = {0};
  ready_log log = {.base = decoder_grads(d), .fail_at = -1};
  decoder_on_grads_ready(d, log_ready, &log);
  decoder_zero_grads(d);
  objective(d, 1.0f, 1);
  CHECK(decoder_backward(d, 1.0f, g_dh, &err) == 0);
  int once, final;
  ready_log_check(&log, decoder_grads(d), decoder_num_params(d), &once, &final);
  CHECKF(once, "every gradient announced exactly once (%d calls)", log.calls);
  CHECKF(final, "announced gradients were already final");
  CHECK(log.calls == 12 * 2 + 4); /* 12 per layer, lnf w/b, wte, wpe */
  ready_log stop = {.base = decoder_grads(d), .fail_at = 3};
  decoder_on_grads_ready(d, log_ready, &stop);
  objective(d, 1.0f, 1);
  CHECK(decoder_backward(d, 1.0f, g_dh, &err) == FOIL_EABORTED && strstr(err.msg, "stop at call 3"));
  for (int c = 0; c < 3; c++) free(stop.snap[c]);
  decoder_on_grads_ready(d, NULL, NULL);
  decoder_destroy(&d);
}

static void test_determinism(void) {
  size_t n;
  float la, lb, lc;
  float *a = train_grads(2, &la, &n), *b = train_grads(2, &lb, &n), *c = train_grads(1, &lc, &n);
  CHECKF(la == lb && memcmp(a, b, n * sizeof(float)) == 0, "two runs gave different bits");
  CHECKF(la == lc && memcmp(a, c, n * sizeof(float)) == 0, "1 and 2 threads gave different bits");
  kernels_set_threads(2);
  free(a);
  free(b);
  free(c);
  /* init is a pure function of the seed */
  decoder *d1 = make(2, 8, 2, 0, 11, 6, 0.1f), *d2 = make(2, 8, 2, 0, 11, 6, 0.1f);
  CHECK(decoder_cfg(d1)->d_ff == 32);
  CHECK(decoder_init(d1, 7, NULL) == FOIL_OK);
  CHECK(decoder_init(d2, 7, NULL) == FOIL_OK);
  CHECK(memcmp(decoder_params(d1), decoder_params(d2), decoder_num_params(d1) * sizeof(float)) == 0);
  const encoder_tensor *t = decoder_tensors(d1);
  CHECK(decoder_params(d1)[t[DEC_LN1_W].offset] == 1.0f && decoder_params(d1)[t[DEC_QKV_B].offset] == 0.0f);
  decoder_destroy(&d1);
  decoder_destroy(&d2);
  /* FLOPs by hand: L 1, C 4, F 16, V 10, one row of 2 tokens:
   * per token 2·(3·16 + 16 + 2·64) + 4·2·4 = 416, ×2, + LM head 2·2·4·10 */
  decoder_config fc;
  decoder_config_default(&fc);
  fc.n_layers = 1;
  fc.d_model = 4;
  fc.d_ff = 16;
  fc.vocab = 10;
  CHECK(decoder_forward_flops(&fc, 1, 2) == 992.0);
}

/* Data parallel with dropout on: 2 ranks x 2 rows, each with its row map
 * (decoder_set_rows), draw the masks of 1 rank x 4 rows: the same states
 * and nll (to float rounding of smaller GEMMs), and the gradients of
 * <dhidden, hidden> sum to the one rank's. Without a map rank 1 would
 * repeat rank 0's masks. A training forward past the map is refused; an
 * inference one (prefill, scoring) is not. */
static void test_ranks_rowmap(void) {
  enum { W = 2, BR = 2, G = W * BR, T = 5, C = 8, V = 11 };
  decoder *d = make(2, C, 2, 16, V, T, 0.2f); /* rows of max_len: the masks depend on it too */
  if (!d) return;
  foil_err err = {0};
  int32_t ids[G * T], tg[G * T];
  float dh[G * T * C], h1[G * T * C], n1[G * T], h2[G * T * C], n2[G * T];
  for (int i = 0; i < G * T; i++) ids[i] = (int32_t)(urand() * V), tg[i] = (int32_t)(urand() * V);
  for (int i = 0; i < G * T * C; i++) dh[i] = srand_f(1.0f);
  const size_t np = decoder_num_params(d);
  float *g1 = malloc(np * sizeof(float));
  const float *hid, *nll;
  float loss;
  decoder_zero_grads(d);
  CHECK(decoder_forward(d, ids, tg, NULL, G, T, 1, 5, 3, &loss, &hid, NULL, &nll, &err) == 0);
  memcpy(h1, hid, sizeof h1);
  memcpy(n1, nll, sizeof n1);
  CHECK(decoder_backward(d, 0.0f, dh, &err) == 0);
  memcpy(g1, decoder_grads(d), np * sizeof(float));
  decoder_zero_grads(d);
  double flat = 0;
  for (int r = 0; r < W; r++) {
    const size_t o = (size_t)r * BR * T;
    CHECK(decoder_forward(d, ids + o, tg + o, NULL, BR, T, 1, 5, 3, &loss, &hid, NULL, NULL, &err) == 0);
    for (size_t i = 0; i < (size_t)BR * T * C; i++) flat = fmax(flat, fabs(hid[i] - h1[o * C + i]));
    const rowmap m = {.rank = r, .world = W, .nblocks = 1, .size = {BR}};
    CHECK(decoder_set_rows(d, &m, &err) == 0);
    CHECK(decoder_forward(d, ids + o, tg + o, NULL, BR, T, 1, 5, 3, &loss, &hid, NULL, &nll, &err) == 0);
    memcpy(h2 + o * C, hid, sizeof(float) * BR * T * C);
    memcpy(n2 + o, nll, sizeof(float) * BR * T);
    CHECK(decoder_backward(d, 0.0f, dh + o * C, &err) == 0);
    CHECK(decoder_forward(d, ids, tg, NULL, G, T, 1, 5, 3, &loss, NULL, NULL, NULL, &err) == FOIL_EINVAL &&
          strstr(err.msg, "row map"));
    CHECK(decoder_forward(d, ids, tg, NULL, G, T, 0, 5, 3, &loss, NULL, NULL, NULL, &err) == 0);
    CHECK(decoder_set_rows(d, NULL, &err) == 0);
  }
  CHECKF(test_rel_err(h2, h1, G * T * C) <= 1e-5, "2 ranks' states rel %.3g from 1 rank's", test_rel_err(h2, h1, G * T * C));
  CHECKF(test_rel_err(n2, n1, G * T) <= 1e-5, "2 ranks' nll rel %.3g from 1 rank's", test_rel_err(n2, n1, G * T));
  CHECKF(flat > 1e-2, "without a row map rank 1's states should differ (%.3g)", flat);
  CHECKF(test_rel_err(decoder_grads(d), g1, np) <= 1e-5, "2 ranks' gradients rel %.3g from 1 rank's",
         test_rel_err(decoder_grads(d), g1, np));
  const rowmap bad = {.rank = 1, .world = 1};
  CHECK(decoder_set_rows(d, &bad, &err) == FOIL_EINVAL);
  free(g1);
  decoder_destroy(&d);
}

/* ---- bad inputs ---------------------------------------------------------------------- */

/* Host buffers on 64-byte boundaries (the few-row linear layer's vector
 * loads), zeroed; a carve's pieces too, its sizing pass counting what the
 * handing-out pass takes. */
static void test_host_buffers_aligned(void) {
  static const size_t sizes[] = {1, 3, 100, 4097, 1 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    unsigned char *p = devmem_alloc(DEVMEM_CPU, sizes[k]);
    CHECKF(p && (uintptr_t)p % 64 == 0, "devmem_alloc(%zu) on a 64-byte boundary", sizes[k]);
    int zero = 1;
    for (size_t i = 0; p && i < sizes[k]; i++) zero &= p[i] == 0;
    CHECKF(zero, "devmem_alloc(%zu) zeroed", sizes[k]);
    devmem_free(DEVMEM_CPU, p);
  }
  devmem_carve sizing = {NULL, 0};
  const size_t n[] = {3, 16, 17, 1};
  for (int i = 0; i < 4; i++) CHECK(devmem_take(&sizing, n[i]) == NULL);
  CHECK(sizing.used == 16 + 16 + 32 + 16);
  float *base = devmem_alloc(DEVMEM_CPU, sizing.used * sizeof(float));
  devmem_carve cv = {base, 0};
  float *pieces[4];
  for (int i = 0; i < 4; i++) pieces[i] = devmem_take(&cv, n[i]);
  CHECK(pieces[0] == base && pieces[1] == base + 16 && pieces[2] == base + 32 && pieces[3] == base + 64);
  CHECK(cv.used == sizing.used);
  devmem_free(DEVMEM_CPU, base);
  decoder_config c;
  decoder_config_default(&c);
  c.vocab = 50, c.n_layers = 1, c.d_model = 8, c.n_heads = 2, c.d_ff = 16, c.max_len = 8;
  decoder *d = NULL;
  foil_err err = {0};
  CHECK(decoder_new(&d, &c, &err) == FOIL_OK);
  CHECK(d && (uintptr_t)decoder_params(d) % 64 == 0);
  decoder_destroy(&d);
}

/* The VmFlags of the mapping holding p in /proc/self/smaps ("" if none). */
static void vm_flags(const void *p, char *out, size_t cap) {
  out[0] = 0;
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return;
  char line[512];
  int inside = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    } else if (inside && !strncmp(line, "VmFlags:", 8)) {
      size_t n = strlen(line + 8);
      if (n >= cap) n = cap - 1;
      memcpy(out, line + 8, n);
      out[n] = 0;
      break;
    }
  }
  fclose(f);
}

/* devmem_alloc_whole: devmem_alloc's zeroed, aligned buffer, and where the
 * kernel has transparent huge pages, its whole 2 MB stretches advised for
 * them ("hg" in the mapping's VmFlags); a decoder's weights and an
 * optimizer's moments are allocated so. A buffer under 2 MB, with no whole
 * 2 MB stretch, is left alone. */
static void test_whole_buffers(void) {
  const size_t big = (size_t)8 << 20;
  unsigned char *p = devmem_alloc_whole(DEVMEM_CPU, big), *q = devmem_alloc_whole(DEVMEM_CPU, 1000);
  CHECK(p && (uintptr_t)p % 64 == 0 && q && (uintptr_t)q % 64 == 0);
  int zero = 1;
  for (size_t i = 0; p && i < big; i += 4093) zero &= p[i] == 0;
  CHECK(zero);
  FILE *thp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  char flags[256];
  vm_flags(p + big / 2, flags, sizeof flags);
  if (!thp || !flags[0]) {
    printf("  (%s: the advice is not checked)\n",
           !thp ? "no transparent huge pages in this kernel" : "no VmFlags in /proc/self/smaps");
  } else {
    CHECKF(strstr(flags, " hg"), "the middle of an 8 MB whole buffer advised for huge pages (VmFlags:%s)", flags);
    vm_flags(q, flags, sizeof flags);
    CHECKF(!strstr(flags, " hg"), "a 1000-byte whole buffer left alone (VmFlags:%s)", flags);
    decoder_config c;
    decoder_config_default(&c);
    c.vocab = 4096, c.n_layers = 1, c.d_model = 256, c.n_heads = 2, c.d_ff = 512, c.max_len = 8;
    decoder *d = NULL;
    foil_err err = {0};
    CHECK(decoder_new(&d, &c, &err) == FOIL_OK); /* 5 MB of weights */
    if (d) {
      vm_flags(decoder_params(d) + decoder_num_params(d) / 2, flags, sizeof flags);
      CHECKF(strstr(flags, " hg"), "a decoder's weights advised for huge pages (VmFlags:%s)", flags);
    }
    decoder_destroy(&d);
  }
  if (thp) fclose(thp);
  devmem_free(DEVMEM_CPU, p);
  devmem_free(DEVMEM_CPU, q);
}

static void test_bad_inputs(void) {
  decoder *d = make(TL, TC, TNH, TF, TV, 8, 0.0f);
  if (!d) return;
  foil_err err = {0};
  int32_t ids[2 * 10] = {0};
  float loss;
  err.msg[0] = 0;
  CHECK(decoder_forward(d, ids, NULL, NULL, 2, 9, 0, 0, 0, &loss, NULL, NULL, NULL, &err) ==
            FOIL_EINVAL && strstr(err.msg, "max_len"));
  ids[3] = TV;
  err.msg[0] = 0;
  CHECK(decoder_forward(d, ids, NULL, NULL, 2, 5, 0, 0, 0, &loss, NULL, NULL, NULL, &err) ==
            FOIL_EINVAL && strstr(err.msg, "vocabulary"));
  ids[3] = 0;
  int32_t tg[10] = {0};
  tg[4] = -2;
  err.msg[0] = 0;
  CHECK(decoder_forward(d, ids, tg, NULL, 2, 5, 0, 0, 0, &loss, NULL, NULL, NULL, &err) ==
            FOIL_EINVAL && err.msg[0]);
  err.msg[0] = 0;
  CHECK(decoder_backward(d, 1.0f, NULL, &err) == FOIL_EPRECOND && err.msg[0]);
  decoder_config bad = *decoder_cfg(d);
  bad.n_heads = 5;
  decoder *d2 = NULL;
  CHECK(decoder_new(&d2, &bad, &err) == FOIL_EINVAL && strstr(err.msg, "n_heads") && !d2);

  decoder_cache *c = NULL;
  CHECK(decoder_cache_new(&c, d, 2, 9, 1, &err) == FOIL_EINVAL && !c);
  int rc = decoder_cache_new(&c, d, 2, 4, 2, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) goto out;
  int lens[2] = {3, 5};
  err.msg[0] = 0;
  CHECK(decoder_prefill(d, c, ids, lens, 5, NULL, NULL, NULL, &err) == FOIL_EINVAL && err.msg[0]);
  lens[1] = 0;
  err.msg[0] = 0;
  CHECK(decoder_prefill(d, c, ids, lens, 3, NULL, NULL, NULL, &err) == FOIL_EINVAL && err.msg[0]);
  lens[1] = 3;
  ids[4] = -1;
  err.msg[0] = 0;
  CHECK(decoder_prefill(d, c, ids, lens, 3, NULL, NULL, NULL, &err) == FOIL_EINVAL && err.msg[0]);
  ids[4] = 1;
  CHECK(decoder_prefill(d, c, ids, lens, 3, NULL, NULL, NULL, &err) == 0);
  int32_t tok[4] = {1, 2, 3, 4};
  err.msg[0] = 0;
  CHECK(decoder_step(d, c, tok, 3, NULL, NULL, NULL, NULL, &err) == FOIL_EINVAL && err.msg[0]);
  tok[1] = TV + 3;
  err.msg[0] = 0;
  CHECK(decoder_step(d, c, tok, 2, NULL, NULL, NULL, NULL, &err) == FOIL_EINVAL && err.msg[0]);
  tok[1] = 2;
  CHECK(decoder_step(d, c, tok, 1, NULL, NULL, NULL, NULL, &err) == 0);
  decoder_cache_commit(c, NULL, NULL); /* both rows now at len 4 = max_len */
  CHECK(decoder_cache_lens(c)[0] == 4);
  err.msg[0] = 0;
  CHECK(decoder_step(d, c, tok, 1, NULL, NULL, NULL, NULL, &err) == FOIL_EINVAL &&
        strstr(err.msg, "full"));
  uint8_t act[2] = {0, 0};
  CHECK(decoder_step(d, c, tok, 1, act, NULL, NULL, NULL, &err) == 0); /* nothing active */
out:
  decoder_cache_destroy(&c);
  decoder_destroy(&d);
}

int main(void) {
  kernels_set_threads(2);
  RUN(test_attention_cache_kernel);
  RUN(test_prefill_steps_equal_forward);
  RUN(test_candidates_commit_active);
  RUN(test_reorder);
  RUN(test_dola_layers);
  RUN(test_layer_logits);
  RUN(test_grads_fd_loss);
  RUN(test_grads_fd_dhidden);
  RUN(test_grads_fd_dropout_dhidden);
  RUN(test_backward_linear);
  RUN(test_grads_ready);
  RUN(test_loss_nll_logits);
  RUN(test_determinism);
  RUN(test_ranks_rowmap);
  RUN(test_host_buffers_aligned);
  RUN(test_whole_buffers);
  RUN(test_bad_inputs);
  TEST_EXIT();
}
