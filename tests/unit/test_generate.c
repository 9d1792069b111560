/* test_generate.c — model/generate.h's repetition-penalty history
 * (generate_opts.penalty_skip, review B2: decode-eval's prompts start with
 * the end-of-text token, which is also the run's EOS):
 *   - for every method that applies the penalty (greedy, sampling,
 *     contrastive search, beam search, DoLa, CAD), a prompt [E, t...]
 *     where penalising E changes the first pick: with penalty_skip 1 the
 *     pick is the argmax of the step's scores penalised over t... only;
 *     without (NULL, or 0) over E, t..., Hugging Face's processor on the
 *     same ids; in one batch, prompt by prompt;
 *   - whole greedy generations with penalty_skip 1 equal a combination
 *     whose scores come from [E, t...] and whose penalty history is
 *     variant 0 = t... alone (weights (0, 1)): the skip holds at every
 *     step, EOS = E included;
 *   - a skip beyond the prompt leaves out the whole prompt; a negative one
 *     is FOIL_EINVAL.
 * The scores of a step are recomputed here from the decoder's cache API
 * and model/decode.h, as generate.c builds them. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/decode.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "tests/test.h"

enum { V = 16, L = 4, LEN = 5, PEN_X10 = 20 };
static decoder *D;

enum { K_GREEDY, K_SAMPLE, K_CS, K_BEAM, K_DOLA, K_CAD, K_COUNT };
static const char *kname[K_COUNT] = {"greedy", "sample", "contrastive search", "beam", "dola", "cad"};

/* CAD's second variant: the prompt's last 2 tokens, after the same lead id. */
static void cad_variants(const int32_t *pr, int32_t ids[2 * LEN], int lens[2]) {
  memcpy(ids, pr, LEN * sizeof *ids);
  memset(ids + LEN, 0, LEN * sizeof *ids);
  ids[LEN] = pr[0], ids[LEN + 1] = pr[LEN - 2], ids[LEN + 2] = pr[LEN - 1];
  lens[0] = LEN, lens[1] = 3;
}

/* The first step's scores of method k on prompt pr [LEN], before the
 * repetition penalty: logits (greedy, sampling, CS), log-probabilities
 * (beam), DoLa's contrast, CAD's combination (1.5, -0.5). */
static void scores(int k, const int32_t *pr, float *x) {
  foil_err err = {0};
  decoder_cache *c = NULL;
  float z[2 * V];
  int rows = k == K_CAD ? 2 : 1, lens[2] = {LEN, LEN};
  int32_t ids[2 * LEN];
  memcpy(ids, pr, LEN * sizeof *ids);
  if (k == K_CAD) cad_variants(pr, ids, lens);
  CHECKF(decoder_cache_new(&c, D, rows, LEN + 1, 1, &err) == 0, "%s", err.msg);
  if (k == K_DOLA) {
    int lay[8], which[9];
    int nc = decode_dola_layers(L, DOLA_HIGH, NULL, 0, lay, 8, &err);
    memcpy(which, lay, (size_t)nc * sizeof *which);
    which[nc] = L;
    float lg[9 * V];
    CHECK(decoder_prefill(D, c, ids, lens, LEN, NULL, NULL, NULL, &err) == 0);
    CHECK(decoder_layer_logits(D, c, which, nc + 1, lg, &err) == 0);
    int sel = nc == 1 ? 0 : decode_dola_select(lg, V, lg + (size_t)nc * V, nc, V, NULL);
    decode_dola_contrast(x, lg + (size_t)nc * V, lg + (size_t)sel * V, V, 0.1f, 1);
  } else {
    CHECK(decoder_prefill(D, c, ids, lens, LEN, z, NULL, NULL, &err) == 0);
    if (k == K_BEAM) decode_log_softmax(x, z, V);
    else if (k == K_CAD) {
      float w[2];
      generate_cad_weights(0.5f, w);
      decode_combine(x, z, w, 2, V);
    } else memcpy(x, z, V * sizeof *x);
  }
  decoder_cache_destroy(&c);
}

/* argmax of x penalised over hist [n] (x is kept). */
static int penalised_argmax(const float *x, const int32_t *hist, int n) {
  float y[V];
  uint8_t seen[V] = {0};
  memcpy(y, x, sizeof y);
  decode_repetition_penalty(y, V, hist, n, PEN_X10 / 10.0f, seen);
  return decode_argmax(y, V);
}

/* Method k's first token on prompts ids [P, LEN] with skip (NULL: none). */
static int first_tokens(int k, const int32_t *ids, int P, const int *skip, int32_t *tok, foil_err *err) {
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = 1;
  o.repetition_penalty = PEN_X10 / 10.0f;
  o.penalty_skip = skip;
  int lens[4] = {LEN, LEN, LEN, LEN}, out_len[4];
  switch (k) {
  case K_GREEDY: return generate_plain(D, ids, lens, P, LEN, &o, tok, out_len, err);
  case K_SAMPLE:
    o.do_sample = 1, o.top_k = 1, o.seed = 5; /* top-k 1: the draw is the argmax */
    return generate_plain(D, ids, lens, P, LEN, &o, tok, out_len, err);
  case K_CS: {
    generate_cs_cfg c = {.top_k = 3, .alpha = 0}; /* α 0: the most probable candidate */
    return generate_cs(D, ids, lens, P, LEN, &c, &o, tok, out_len, err);
  }
  case K_BEAM: {
    generate_beam_cfg c;
    generate_beam_default(&c);
    c.num_beams = 2;
    return generate_beam(D, ids, lens, P, LEN, &c, &o, tok, out_len, err);
  }
  case K_DOLA: {
    generate_dola_cfg c;
    generate_dola_default(&c);
    return generate_dola(D, ids, lens, P, LEN, &c, &o, tok, out_len, err);
  }
  default: {
    int32_t cids[4 * 2 * LEN];
    int clens[4 * 2];
    for (int p = 0; p < P; p++) cad_variants(ids + (size_t)p * LEN, cids + (size_t)p * 2 * LEN, clens + 2 * p);
    float w[2];
    generate_cad_weights(0.5f, w);
    generate_combine_cfg c = {.n_variants = 2, .weights = w};
    return generate_combine(D, cids, clens, P, LEN, &c, &o, tok, out_len, NULL, err);
  }
  }
}

/* A prompt [E, t1..t4] (E not among t) whose first pick changes when E is
 * penalised: found by a deterministic scan. */
static int find_case(int k, int32_t pr[LEN], int *want, int *hf) {
  uint64_t st = 12345;
  for (int e = 0; e < V; e++)
    for (int trial = 0; trial < 40; trial++) {
      pr[0] = e;
      for (int i = 1; i < LEN; i++) {
        do {
          st = st * 6364136223846793005ULL + 1442695040888963407ULL;
          pr[i] = (int32_t)((st >> 33) % V);
        } while (pr[i] == e);
      }
      float x[V];
      scores(k, pr, x);
      *want = penalised_argmax(x, pr + 1, LEN - 1);
      *hf = penalised_argmax(x, pr, LEN);
      if (*want != *hf) return 1;
    }
  return 0;
}

static void test_skip_leading_id(void) {
  for (int k = 0; k < K_COUNT; k++) {
    int32_t pr[LEN];
    int want, hf;
    int found = find_case(k, pr, &want, &hf);
    CHECKF(found, "%s: no prompt where penalising its first id changes the pick", kname[k]);
    if (!found) continue;
    /* a batch: the same prompt with skip 1, 0, 1, and a skip beyond its length */
    int32_t ids[4 * LEN], tok[4] = {-1, -1, -1, -1};
    for (int p = 0; p < 4; p++) memcpy(ids + p * LEN, pr, sizeof pr);
    const int skip[4] = {1, 0, 1, 99};
    float x[V];
    scores(k, pr, x);
    const int none = decode_argmax(x, V); /* the whole prompt left out */
    foil_err err = {0};
    int rc = first_tokens(k, ids, 4, skip, tok, &err);
    CHECKF(rc == 0, "%s: %s", kname[k], err.msg);
    CHECKF(tok[0] == want && tok[2] == want, "%s: with the lead id left out: %d %d (want %d; %d penalising it)",
           kname[k], tok[0], tok[2], want, hf);
    CHECKF(tok[1] == hf, "%s: skip 0 (HF's history): %d (want %d)", kname[k], tok[1], hf);
    CHECKF(tok[3] == none, "%s: skip past the prompt: %d (want %d)", kname[k], tok[3], none);
    /* NULL is HF's processor over the whole input */
    rc = first_tokens(k, ids, 1, NULL, tok, &err);
    CHECKF(rc == 0 && tok[0] == hf, "%s: no penalty_skip: %d (want %d) %s", kname[k], tok[0], hf, err.msg);
    const int neg[1] = {-1};
    CHECKF(first_tokens(k, ids, 1, neg, tok, &err) == FOIL_EINVAL && strstr(err.msg, "penalty_skip"),
           "%s: a negative skip is refused (%s)", kname[k], err.msg);
  }
}

/* Whole greedy generations: [E, t...] with skip 1 (EOS = E) equal CAD's
 * driver with weights (0, 1) on variants (t..., [E, t...]): the scores of
 * [E, t...], the penalty over t... + the generated tokens. */
static void test_greedy_whole_generation(void) {
  enum { N = 8 };
  int32_t pr[LEN];
  int want, hf;
  if (!find_case(K_GREEDY, pr, &want, &hf)) return; /* reported by test_skip_leading_id */
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  o.repetition_penalty = PEN_X10 / 10.0f;
  o.eos_id = pr[0];
  const int one[1] = {1}, lens[1] = {LEN};
  o.penalty_skip = one;
  int32_t out[N], out2[N], out3[N];
  int ol, ol2, ol3;
  foil_err err = {0};
  CHECKF(generate_plain(D, pr, lens, 1, LEN, &o, out, &ol, &err) == 0, "%s", err.msg);
  int32_t cids[2 * LEN] = {0};
  memcpy(cids, pr + 1, (LEN - 1) * sizeof *cids);
  memcpy(cids + LEN, pr, LEN * sizeof *cids);
  const int clens[2] = {LEN - 1, LEN};
  const float w[2] = {0, 1};
  generate_combine_cfg c = {.n_variants = 2, .weights = w};
  o.penalty_skip = NULL;
  CHECKF(generate_combine(D, cids, clens, 1, LEN, &c, &o, out2, &ol2, NULL, &err) == 0, "%s", err.msg);
  CHECKF(ol == ol2 && !memcmp(out, out2, (size_t)ol * sizeof *out), "greedy with skip 1 (%d tokens, first %d) "
         "differs from the penalty over t... alone (%d tokens, first %d)", ol, out[0], ol2, out2[0]);
  CHECK(out[0] == want);
  CHECKF(generate_plain(D, pr, lens, 1, LEN, &o, out3, &ol3, &err) == 0, "%s", err.msg);
  CHECKF(out3[0] == hf && out3[0] != out[0], "without the skip the first token is HF's %d (got %d)", hf, out3[0]);
}

int main(void) {
  decoder_config cfg;
  decoder_config_default(&cfg);
  cfg.n_layers = L, cfg.d_model = 16, cfg.n_heads = 2, cfg.vocab = V, cfg.max_len = 24, cfg.dropout = 0;
  foil_err err = {0};
  if (decoder_config_check(&cfg, &err) || decoder_new(&D, &cfg, &err) || decoder_init(D, 7, &err)) {
    fprintf(stderr, "decoder: %s\n", err.msg);
    return 1;
  }
  RUN(test_skip_leading_id);
  RUN(test_greedy_whole_generation);
  decoder_destroy(&D);
  TEST_EXIT();
}
