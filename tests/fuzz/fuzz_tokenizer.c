/* fuzz_tokenizer.c — the tokenizers on arbitrary bytes. The first input
 * byte picks: 0 WordPiece encode (with and without specials, a small and a
 * large id budget), 1 byte-level BPE encode, 2 tokenizer_deserialize of the
 * rest as a blob (a checkpoint's /tokenizer), then encode, decode and
 * re-serialize with what it gives, 3 decode of the rest as int32 ids with
 * both tokenizers. The two tokenizers are built once: a small uncased
 * WordPiece vocabulary and a BPE trained on a short text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/bpe_train.h"
#include "model/tokenizer.h"

static tokenizer *wp, *bpe;

static const char *const WP[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!",
                                 "un", "##aff", "##able", "cafe", "naive", "\xe4\xb8\xad", "\xe6\x96\x87",
                                 "a", "##a", "##b", ".", "i", "##stanbul", "x"};
static const char TRAIN[] =
    "Hello world! It's the 1st of May, and the cafe's naive owner said: \"don't\" 42 times.\n"
    "\xe4\xb8\xad\xe6\x96\x87 text, emoji \xf0\x9f\x98\x80 and tabs\tand  spaces   here.\n";

static void init(void) {
  if (wp) return;
  foil_err err = {0};
  if (tokenizer_from_strings(&wp, TOKENIZER_WORDPIECE, WP, (int)(sizeof WP / sizeof WP[0]), NULL, 0, &err))
    abort();
  bpe_trainer *tr = NULL;
  const char *sp = "<|endoftext|>";
  if (bpe_trainer_new(&tr, &err)) abort();
  for (int r = 0; r < 3; r++)
    if (bpe_trainer_feed(tr, TRAIN, sizeof TRAIN - 1, "train.txt", &err)) abort();
  if (bpe_trainer_train(tr, 300, 2, &sp, 1, &bpe, &err)) abort();
  bpe_trainer_destroy(&tr);
}

static void encode_decode(const tokenizer *t, const uint8_t *data, size_t size) {
  int32_t ids[600];
  foil_err err = {0};
  for (int special = 0; special < 2; special++)
    for (int budget = 8; budget <= 512; budget += 504) {
      int n = 0;
      if (tokenizer_encode(t, (const char *)data, size, special, ids, budget, &n, &err)) continue;
      if (n < 0) abort();
      char *text = NULL;
      int kept = n < budget ? n : budget;
      if (!tokenizer_decode(t, ids, kept, &text, &err)) free(text);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  init();
  int which = data[0] % 4;
  data++, size--;
  foil_err err = {0};
  if (which == 0) encode_decode(wp, data, size);
  if (which == 1) encode_decode(bpe, data, size);
  if (which == 2) {
    tokenizer *t = NULL;
    if (tokenizer_deserialize(&t, data, size, &err)) return 0;
    static const char probe[] = "Hello, world! unaffable cafe \xe4\xb8\xad 42";
    encode_decode(t, (const uint8_t *)probe, sizeof probe - 1);
    uint8_t *blob = NULL;
    size_t len = 0;
    if (!tokenizer_serialize(t, &blob, &len, &err)) free(blob);
    tokenizer_destroy(&t);
  }
  if (which == 3) {
    size_t n = size / 4;
    int32_t *ids = malloc(n ? n * 4 : 4);
    memcpy(ids, data, n * 4);
    char *text = NULL;
    if (!tokenizer_decode(wp, ids, (int)n, &text, &err)) free(text);
    text = NULL;
    if (!tokenizer_decode(bpe, ids, (int)n, &text, &err)) free(text);
    free(ids);
  }
  return 0;
}
