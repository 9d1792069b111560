/* wordpiece.h — BERT's WordPiece (internal to model/; users go through
 * tokenizer.h).
 *
 * Basic tokenization as Hugging Face's BertNormalizer + BertPreTokenizer
 * with lowercase and strip_accents on (uncased BERT): the special tokens
 * ([PAD] [UNK] [CLS] [SEP] [MASK], when in the vocabulary) are matched in
 * the raw text first; then control characters, NUL and U+FFFD are dropped,
 * white space splits words, CJK ideographs become words of their own, each
 * character is NFD-decomposed with nonspacing marks dropped and
 * lower-cased, and punctuation becomes one-character words. Each word is
 * split greedily longest-match-first with "##" continuations; a word over
 * 100 characters, or one that cannot be split, becomes [UNK].
 *
 * Ownership: the object keeps pointers to the vocabulary strings passed to
 * wordpiece_new, which must outlive it. Read-only after creation.
 */
#ifndef FOIL_MODEL_WORDPIECE_H
#define FOIL_MODEL_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct wordpiece wordpiece;

/* vocab[i] is the token with id i (n strings, NUL-terminated, distinct).
 * [UNK] must be present. */
int wordpiece_new(wordpiece **out, const char *const *vocab, int n, foil_err *err);
void wordpiece_free(wordpiece *w);

int32_t wordpiece_pad_id(const wordpiece *w);
/* As tokenizer_encode (text already checked to be valid UTF-8). */
int wordpiece_encode(const wordpiece *w, const char *text, size_t len, int add_special,
                     int32_t *ids, int max, int *n, foil_err *err);
int wordpiece_decode(const wordpiece *w, const int32_t *ids, int n, char **text, foil_err *err);

#endif
