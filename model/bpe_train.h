/* bpe_train.h — learning byte-level BPE merges from text, as Hugging
 * Face's BpeTrainer does for a ByteLevel pre-tokenizer.
 *
 * Text is fed in chunks; each line (ending included, as HF reads files) is
 * cut by GPT-2's pre-tokenization pattern and the pieces are counted. The
 * vocabulary then starts with the special tokens, then the 256 byte-level
 * characters in code point order; merges are added one at a time: the
 * adjacent pair with the highest count over all words (ties: the smaller
 * (left id, right id)), until the vocabulary has vocab_size tokens or the
 * best count falls below min_frequency.
 *
 * Ownership: bpe_trainer_new returns an object freed with
 * bpe_trainer_destroy(&tr). Memory: the distinct words and their symbols
 * (about 3x the bytes of the distinct pieces) plus one entry per distinct
 * pair. Cost: feeding is linear in the text; each merge touches only the
 * words that contain its pair.
 */
#ifndef FOIL_MODEL_BPE_TRAIN_H
#define FOIL_MODEL_BPE_TRAIN_H

#include <stddef.h>

#include "common/err.h"
#include "model/tokenizer.h"

typedef struct bpe_trainer bpe_trainer;

int bpe_trainer_new(bpe_trainer **out, foil_err *err);
void bpe_trainer_destroy(bpe_trainer **tr);

/* Feeds len bytes of text. source names it in errors ("file.txt"); lines
 * are counted across calls with the same source so errors name the line.
 * Invalid UTF-8 is an error naming source, line and byte offset in line.
 * A chunk should end at a line end (a line split across calls is counted
 * as two lines, as two separate texts would be). */
int bpe_trainer_feed(bpe_trainer *tr, const char *text, size_t len, const char *source,
                     foil_err *err);

/* Learns merges and builds a BPE tokenizer (tokenizer_destroy frees it).
 * specials: tokens placed first in the vocabulary (e.g. "<|endoftext|>");
 * vocab_size must leave room for them and the 256 byte tokens. */
int bpe_trainer_train(bpe_trainer *tr, int vocab_size, int min_frequency,
                      const char *const *specials, int n_specials, tokenizer **out,
                      foil_err *err);

#endif
