/* tokenizer.h — text to token ids and back, one interface over two kinds:
 *
 *   WordPiece as BERT's (vocab.txt): basic tokenization (lower-casing and
 *     accent stripping as configured, punctuation and CJK splitting), then
 *     greedy longest-match with "##" continuations; [UNK] [CLS] [SEP] [PAD]
 *     [MASK]. With specials, text -> [CLS] ... [SEP].
 *   Byte-level BPE as GPT-2's (vocab.json + merges.txt): GPT-2's
 *     pre-tokenization pattern, byte-to-unicode mapping, ranked merges.
 *
 * Both match Hugging Face's `tokenizers` id for id (tests/reference).
 * A tokenizer is immutable after loading, so one object can serve many
 * threads. Ownership: the loader returns an object freed with
 * tokenizer_destroy(&t). Cost of encoding is linear in the text length
 * (times the longest word for WordPiece's greedy match; times the log of
 * the longest pre-token for BPE's merges). BPE splits "<|endoftext|>" out of
 * the text as its own id, as HF's added special tokens (no
 * split_special_tokens); WordPiece does the same for its five specials.
 */
#ifndef FOIL_MODEL_TOKENIZER_H
#define FOIL_MODEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct tokenizer tokenizer;

enum { TOKENIZER_WORDPIECE = 1, TOKENIZER_BPE = 2 };

/* Loads from a file: a vocab.txt selects WordPiece (lower-case and strip
 * accents, as uncased BERT); a vocab.json selects BPE with merges.txt read
 * from the same directory. Errors name the file and line. */
int tokenizer_load(tokenizer **out, const char *path, foil_err *err);
void tokenizer_destroy(tokenizer **t);

int tokenizer_kind(const tokenizer *t);
int tokenizer_vocab_size(const tokenizer *t);
/* Id used to pad batches (WordPiece [PAD]; BPE: its end-of-text token). */
int32_t tokenizer_pad_id(const tokenizer *t);

/* Encodes len bytes of UTF-8 text (invalid bytes are an error naming the
 * offset). add_special: WordPiece wraps in [CLS]/[SEP] (kept when
 * truncating: [CLS] + first max-2 tokens + [SEP]); BPE adds none.
 * Writes at most max ids to ids and returns, in *n, how many the full
 * encoding has (> max means it was truncated). */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special,
                     int32_t *ids, int max, int *n, foil_err *err);

/* Decodes ids to UTF-8 into a malloc'ed string (caller frees). WordPiece
 * joins "##" continuations and drops special tokens. */
int tokenizer_decode(const tokenizer *t, const int32_t *ids, int n, char **text, foil_err *err);

/* Serialization to one self-contained byte blob (for checkpoints), and back.
 * The blob is malloc'ed; caller frees. */
int tokenizer_serialize(const tokenizer *t, uint8_t **blob, size_t *len, foil_err *err);
int tokenizer_deserialize(tokenizer **out, const uint8_t *blob, size_t len, foil_err *err);

/* ---- beyond the basics: building, inspecting and exporting ---------------- */

/* Builds a tokenizer from its parts (all copied): vocab[i] is the token of
 * id i; merges (BPE only, else n_merges 0) are "left right" strings in
 * rank order. The same checks as loading apply. */
int tokenizer_from_strings(tokenizer **out, int kind, const char *const *vocab, int n_vocab,
                           const char *const *merges, int n_merges, foil_err *err);
/* The token of an id (NULL outside the vocabulary); owned by t. */
const char *tokenizer_token(const tokenizer *t, int32_t id);
/* BPE merges in rank order as "left right" (owned by t); 0 for WordPiece. */
int tokenizer_n_merges(const tokenizer *t);
const char *tokenizer_merge(const tokenizer *t, int i);
/* The files as Hugging Face writes them, as malloc'ed texts (caller frees):
 * WordPiece: vocab.txt (*merges_text NULL); BPE: vocab.json (one line, ids
 * in order) and merges.txt ("#version: 0.2" then one merge per line).
 * Writing them is the caller's business (model/ does no output I/O). */
int tokenizer_export(const tokenizer *t, char **vocab_text, size_t *vocab_len, char **merges_text,
                     size_t *merges_len, foil_err *err);

#endif
