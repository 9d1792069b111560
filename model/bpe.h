/* bpe.h — GPT-2's byte-level BPE (internal to model/; users go through
 * tokenizer.h).
 *
 * Text is cut by GPT-2's pre-tokenization pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (matched by hand, bpe_pretok_next); each piece's bytes start as the
 * byte-level alphabet's tokens and merges apply lowest rank first (leftmost
 * among equal ranks), as Hugging Face's BPE model does (a heap over the
 * piece's symbols: O(m log m) for a piece of m bytes). Before that, the
 * vocabulary's "<|endoftext|>" is split out of the raw text wherever it
 * occurs and gives its own id, as HF's added special tokens do.
 *
 * Ownership: keeps pointers to the vocabulary strings given to bpe_new,
 * which must outlive it. Read-only after creation.
 */
#ifndef FOIL_MODEL_BPE_H
#define FOIL_MODEL_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct bpe bpe;

/* The byte-level alphabet: byte b is written as code point bpe_byte_to_cp(b). */
int32_t bpe_byte_to_cp(uint8_t b);
/* Inverse: the byte of code point cp, or -1 when cp is not in the alphabet. */
int bpe_cp_to_byte(int32_t cp);

/* End (exclusive) of the pre-token that starts at s[i] (i < len; s valid
 * UTF-8). Pieces cover the text without gaps. */
size_t bpe_pretok_next(const uint8_t *s, size_t len, size_t i);

/* vocab[i]: token with id i (n distinct strings). merges[r]: the pair of
 * rank r as two ids (a, b); the merged token a+b must be in the vocabulary
 * (its id is looked up). A pair listed twice takes its last rank, as HF.
 * Errors name the merge. */
int bpe_new(bpe **out, const char *const *vocab, int n, const int32_t (*merges)[2], int n_merges,
            foil_err *err);
void bpe_free(bpe *b);

int32_t bpe_pad_id(const bpe *b);
int bpe_encode(const bpe *b, const char *text, size_t len, int32_t *ids, int max, int *n,
               foil_err *err);
/* Bytes of the ids' tokens; invalid UTF-8 in the result becomes one U+FFFD
 * per maximal invalid subpart (foil_utf8_bad), as HF's ByteLevel decoder
 * (Rust's String::from_utf8_lossy). */
int bpe_decode(const bpe *b, const int32_t *ids, int n, char **text, foil_err *err);

#endif
