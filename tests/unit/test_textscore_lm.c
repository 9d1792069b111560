/* test_textscore_lm.c — perplexity and MAUVE features from a scorer decoder
 * (worker/run/textscore.h), on a tiny random decoder and a BPE tokenizer
 * trained here:
 *  - textscore_nll (rows padded together in batches of 3) equals, row by
 *    row, the sum of −log softmax(logits)[target] computed here in double
 *    from an unpadded B = 1 forward over [EOT] prompt generation, for the
 *    generation's tokens only; truncation keeps the prompt's last L/2
 *    tokens and the generation's head; an empty generation scores nothing;
 *  - textscore_features equals the B = 1 last-layer state at the final
 *    token (empty text: the end-of-text token);
 *  - MAUVE of reference features against generation features runs;
 *  - textscore_run with the decoder saved as a checkpoint (with its
 *    tokenizer) gives exp(Σ nll / tokens) of the in-memory run and the same
 *    MAUVE; with run_rows, MAUVE per run (each against its own references)
 *    and the mean, each run's the value of its rows alone. The decoder itself is proven against PyTorch by
 *    reference.decoder. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/bpe_train.h"
#include "model/decoder.h"
#include "model/tokenizer.h"
#include "storage/ckpt.h"
#include "storage/tokenizer_h5.h"
#include "tests/test.h"
#include "worker/run/textscore.h"

static char *docs[] = {
    ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
     "must be in want of a wife."),
    "In the beginning God created the heavens and the earth.",
    "The Python tutorial: an informal introduction to Python. Numbers, strings and lists.",
};

static tokenizer *make_tok(void) {
  bpe_trainer *tr = NULL;
  tokenizer *t = NULL;
  foil_err err = {0};
  bpe_trainer_new(&tr, &err);
  for (int i = 0; i < 3; i++) bpe_trainer_feed(tr, docs[i], strlen(docs[i]), "docs", &err);
  const char *specials[] = {"<|endoftext|>"};
  CHECKF(bpe_trainer_train(tr, 300, 2, specials, 1, &t, &err) == 0, "%s", err.msg);
  bpe_trainer_destroy(&tr);
  return t;
}

static int put_tok(h5io *f, void *ctx, foil_err *err) {
  return tokenizer_h5_write(f, "tokenizer", ctx, err);
}

enum { N = 5, ML = 24 };
static char *prompts[N] = {"It is a truth", "", "The Python tutorial:",
                           ("In the beginning God created the heavens and the earth. It is a truth "
                            "universally acknowledged"),
                           "Numbers"};
static char *gens[N] = {" universally acknowledged, that a single man", " In the beginning", "",
                        (" that a single man in possession of a good fortune, must be in want of a "
                         "wife. The Python tutorial: an informal introduction"),
                        ", strings and lists."};

static int enc(const tokenizer *t, const char *s, int32_t *ids) {
  int n = 0;
  foil_err err = {0};
  tokenizer_encode(t, s, strlen(s), 0, ids, 256, &n, &err);
  return n;
}

/* the row as textscore_nll builds it; returns its length, *first the index
 * of the first generation token */
static int build(const tokenizer *t, int r, int32_t *row, int *first) {
  int32_t p[256], g[256];
  int np = enc(t, prompts[r], p), ng = enc(t, gens[r], g), kp = np, kg = ng;
  if (1 + kp + kg > ML) {
    if (kp > ML / 2) kp = ML / 2;
    if (1 + kp + kg > ML) kg = ML - 1 - kp;
  }
  int len = 0;
  row[len++] = tokenizer_pad_id(t);
  for (int i = np - kp; i < np; i++) row[len++] = p[i];
  *first = len;
  for (int i = 0; i < kg; i++) row[len++] = g[i];
  return len;
}

static void test_lm(void) {
  tokenizer *tok = make_tok();
  if (!tok) return;
  decoder_config c;
  decoder_config_default(&c);
  c.n_layers = 2, c.d_model = 16, c.n_heads = 2, c.vocab = tokenizer_vocab_size(tok);
  c.max_len = 40, c.dropout = 0;
  foil_err err = {0};
  CHECKF(decoder_config_check(&c, &err) == 0, "%s", err.msg);
  decoder *d = NULL;
  CHECKF(decoder_new(&d, &c, &err) == 0, "%s", err.msg);
  if (!d) return;
  CHECK(decoder_init(d, 11, NULL) == FOIL_OK);

  double sum = 0;
  int64_t cnt = 0;
  CHECKF(textscore_nll(d, tok, prompts, gens, N, ML, 3, &sum, &cnt, &err) == 0, "%s", err.msg);
  double want = 0;
  int64_t want_cnt = 0;
  for (int r = 0; r < N; r++) {
    int32_t row[64];
    int first, len = build(tok, r, row, &first);
    CHECK(len <= ML);
    float loss;
    const float *logits = NULL;
    CHECK(decoder_forward(d, row, NULL, NULL, 1, len, 0, 0, 0, &loss, NULL, &logits, NULL, &err) == 0);
    for (int t = first - 1; t + 1 < len; t++) {
      const float *z = logits + (size_t)t * c.vocab;
      double mx = z[0], se = 0;
      for (int v = 1; v < c.vocab; v++) mx = fmax(mx, z[v]);
      for (int v = 0; v < c.vocab; v++) se += exp(z[v] - mx);
      want += -(z[row[t + 1]] - mx - log(se));
      want_cnt++;
    }
  }
  CHECKF(cnt == want_cnt, "%lld tokens, want %lld", (long long)cnt, (long long)want_cnt);
  CHECKF(fabs(sum - want) <= 1e-5 * fabs(want), "nll sum %.9g, want %.9g", sum, want);
  /* row 3 is truncated: prompt kept at 12 tokens, generation cut at ML */
  int32_t row[64];
  int first;
  CHECK(build(tok, 3, row, &first) == ML && first == 1 + ML / 2);

  /* features */
  float feat[N * 16];
  CHECKF(textscore_features(d, tok, gens, N, ML, 2, feat, &err) == 0, "%s", err.msg);
  double worst = 0;
  for (int r = 0; r < N; r++) {
    int32_t ids[256];
    int n = enc(tok, gens[r], ids);
    if (n > ML) n = ML;
    if (n == 0) ids[0] = tokenizer_pad_id(tok), n = 1;
    float loss;
    const float *h = NULL;
    CHECK(decoder_forward(d, ids, NULL, NULL, 1, n, 0, 0, 0, &loss, &h, NULL, NULL, &err) == 0);
    for (int j = 0; j < 16; j++) worst = fmax(worst, fabs(h[(size_t)(n - 1) * 16 + j] - feat[r * 16 + j]));
  }
  CHECKF(worst <= 1e-5, "features differ by %g", worst);

  /* MAUVE of the references' features against the generations' */
  float pf[3 * 16], qf[N * 16]; /* batches of 3, as textscore_run below */
  CHECK(textscore_features(d, tok, docs, 3, ML, 3, pf, &err) == 0);
  CHECK(textscore_features(d, tok, gens, N, ML, 3, qf, &err) == 0);
  textscore_result mres;
  memset(&mres, 0, sizeof mres);
  mauve_config mc;
  mauve_config_default(&mc);
  CHECKF(textscore_mauve(pf, 3, qf, N, 16, &mc, &mres, &err) == 0, "%s", err.msg);
  CHECK(mres.has_mauve && mres.mauve > 0 && mres.mauve <= 1 + 1e-12 && mres.mauve_n_p == 3);

  /* the same through a decoder checkpoint with its tokenizer: rows 0, 2, 4
   * carry references docs[0], docs[1], docs[2]; textscore_run's perplexity
   * is exp(sum / cnt) of the in-memory run and its MAUVE the one above */
  const char *tmp = getenv("FOIL_TEST_TMP");
  char path[600];
  snprintf(path, sizeof path, "%s/textscore-lm-%ld.h5", tmp ? tmp : "/tmp", (long)getpid());
  ckpt_decoder v = ckpt_decoder_of(d);
  ckpt_state st = {.dec = &v};
  CHECKF(ckpt_save(path, &st, put_tok, tok, &err) == 0, "%s", err.msg);
  textscore_set set = {0};
  for (int r = 0; r < N; r++)
    CHECK(textscore_add(&set, prompts[r], gens[r], r % 2 ? NULL : docs[r / 2], &err) == 0);
  textscore_opts o;
  textscore_opts_default(&o);
  o.scorer_ckpt = path;
  o.max_len = ML;
  o.batch = 3;
  textscore_result res;
  CHECKF(textscore_run(&set, &o, &res, &err) == 0, "%s", err.msg);
  CHECK(res.has_perplexity && res.ppl_tokens == want_cnt);
  CHECKF(fabs(res.perplexity - exp(sum / (double)cnt)) <= 1e-12 * res.perplexity, "%.17g vs %.17g",
         res.perplexity, exp(sum / (double)cnt));
  CHECKF(res.has_mauve && res.mauve_n_p == 3 && res.mauve_n_q == N && res.mauve == mres.mauve,
         "%.17g vs %.17g", res.mauve, mres.mauve);

  /* run_rows (decode-eval's seeds, review B3): two runs of N rows over the
   * same prompts and references, MAUVE per run against its own 3
   * references, then the mean; each run's value is textscore_run on that
   * run's rows alone. Pooled (run_rows 0), P would hold each reference twice. */
  textscore_set two = {0}, second = {0};
  for (int g = 0; g < 2; g++)
    for (int r = 0; r < N; r++) {
      const char *gen = gens[g ? (r + 2) % N : r], *ref = r % 2 ? NULL : docs[r / 2];
      CHECK(textscore_add(&two, prompts[r], gen, ref, &err) == 0);
      if (g) CHECK(textscore_add(&second, prompts[r], gen, ref, &err) == 0);
    }
  textscore_result r2, rb, pooled;
  CHECKF(textscore_run(&second, &o, &rb, &err) == 0, "%s", err.msg);
  CHECKF(textscore_run(&two, &o, &pooled, &err) == 0, "%s", err.msg);
  CHECK(pooled.mauve_runs == 1 && pooled.mauve_n_p == 6 && pooled.mauve_n_q == 2 * N && pooled.mauve_std == 0);
  o.run_rows = N;
  CHECKF(textscore_run(&two, &o, &r2, &err) == 0, "%s", err.msg);
  const double mean = 0.5 * (res.mauve + rb.mauve);
  CHECKF(r2.has_mauve && r2.mauve_runs == 2 && r2.mauve_n_p == 3 && r2.mauve_n_q == N &&
             fabs(r2.mauve_run[0] - res.mauve) <= 1e-9 && fabs(r2.mauve_run[1] - rb.mauve) <= 1e-9 &&
             fabs(r2.mauve - mean) <= 1e-9,
         "per run %.9g %.9g (alone %.9g %.9g), mean %.9g (want %.9g), pooled %.9g", r2.mauve_run[0],
         r2.mauve_run[1], res.mauve, rb.mauve, r2.mauve, mean, pooled.mauve);
  CHECKF(fabs(r2.mauve_star - 0.5 * (res.mauve_star + rb.mauve_star)) <= 1e-9 &&
             fabs(r2.frontier_integral - 0.5 * (res.frontier_integral + rb.frontier_integral)) <= 1e-9,
         "mauve_star %.9g, frontier %.9g", r2.mauve_star, r2.frontier_integral);
  CHECKF(fabs(r2.mauve_std - fabs(res.mauve - rb.mauve) / sqrt(2.0)) <= 1e-9, "std %.9g", r2.mauve_std);
  CHECK(r2.has_perplexity && r2.perplexity == pooled.perplexity && r2.rep[0] == pooled.rep[0]); /* all rows */
  o.run_rows = 3; /* 10 rows are not runs of 3 */
  CHECK(textscore_run(&two, &o, &r2, &err) == FOIL_EINVAL && strstr(err.msg, "run_rows"));
  o.run_rows = 0;
  textscore_set_free(&two);
  textscore_set_free(&second);

  /* an encoder-free scorer path that is not a decoder checkpoint: refused */
  o.scorer_ckpt = "/nonexistent/scorer.h5";
  CHECK(textscore_run(&set, &o, &res, &err) != 0);
  textscore_set_free(&set);
  unlink(path);
  decoder_destroy(&d);
  tokenizer_destroy(&tok);
}

int main(void) {
  RUN(test_lm);
  TEST_EXIT();
}
