/* test_encode.c — encode_texts: a text's embedding does not depend on the
 * batch it is encoded in (padding is masked), rows are unit-norm, order is
 * kept; a text longer than max_len is truncated, not refused; a batch or
 * max_len below 1 is refused. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/encoder.h"
#include "model/tokenizer.h"
#include "tests/test.h"
#include "worker/run/encode.h"

static void test_batch_independence(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  char vocab[600];
  snprintf(vocab, sizeof vocab, "%s/encode-vocab-%ld.txt", t ? t : "/tmp", (long)getpid());
  FILE *f = fopen(vocab, "w");
  const char *words[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat",
                         "on", "mat", "a", "dog", "##s", "run", "fast", "."};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++) fprintf(f, "%s\n", words[i]);
  fclose(f);
  tokenizer *tok;
  foil_err err = {0};
  CHECKF(tokenizer_load(&tok, vocab, &err) == 0, "%s", err.msg);
  if (!tok) return;
  encoder_config c;
  encoder_config_default(&c);
  c.n_layers = 2, c.d_model = 16, c.n_heads = 2, c.d_ff = 32, c.max_len = 12;
  c.vocab = tokenizer_vocab_size(tok);
  encoder *enc;
  CHECK(encoder_new(&enc, &c, &err) == 0);
  encoder_init(enc, 3);
  char *texts[4] = {"the cat sat on the mat .", "dogs run", "a",
                    ("the cat sat on the mat . a dog "
                     "runs fast . the cat sat on the mat")};
  float all[4 * 16], one[16];
  CHECKF(encode_texts(enc, tok, texts, 4, c.max_len, 3, all, &err) == 0, "%s", err.msg);
  for (int i = 0; i < 4; i++) {
    CHECK(encode_texts(enc, tok, &texts[i], 1, c.max_len, 1, one, &err) == 0);
    double diff = 0, norm = 0;
    for (int d = 0; d < 16; d++) diff = fmax(diff, fabs(one[d] - all[i * 16 + d])), norm += one[d] * one[d];
    CHECKF(diff <= 1e-6, "text %d: batch vs alone differ by %.3g", i, diff);
    CHECKF(fabs(norm - 1.0) <= 1e-5, "text %d: norm² %.7f", i, norm);
  }
  char *bad[1] = {"caf\xc3"}; /* truncated UTF-8 */
  CHECK(encode_texts(enc, tok, bad, 1, c.max_len, 1, one, &err) != 0);
  /* sizes below 1 are refused (a batch of 0 would never advance) */
  CHECKF(encode_texts(enc, tok, texts, 4, c.max_len, 0, all, &err) == FOIL_EINVAL && strstr(err.msg, "batch 0"),
         "%s", err.msg);
  CHECK(encode_texts(enc, tok, texts, 4, c.max_len, -1, all, &err) == FOIL_EINVAL);
  CHECKF(encode_texts(enc, tok, texts, 4, 0, 3, all, &err) == FOIL_EINVAL && strstr(err.msg, "max_len 0"), "%s",
         err.msg);
  encoder_destroy(&enc);
  tokenizer_destroy(&tok);
  unlink(vocab);
}

int main(void) {
  RUN(test_batch_independence);
  TEST_EXIT();
}
