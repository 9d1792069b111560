/* encode.h — texts to unit-norm embeddings with an encoder and a tokenizer
 * (evaluation now; embedding refresh later).
 *
 * Texts are tokenized (with special tokens) and truncated to max_len, all
 * of them first; then sorted by token count (ties in input order) and
 * encoded in chunks of `batch` sequences of similar lengths, each padded to
 * its longest row (as sentence-transformers' encode sorts by length: far
 * less padding than chunks in input order), without dropout; rows come out
 * L2-normalized, in the input order. A row's bits are a function of the
 * whole call's texts (the chunk it lands in), not of the thread count.
 * Cost: one inference forward per chunk; memory: the token ids of all n
 * texts, the encoder's activations for one chunk, plus the output [n, D]
 * the caller owns.
 */
#ifndef FOIL_WORKER_RUN_ENCODE_H
#define FOIL_WORKER_RUN_ENCODE_H

#include <stddef.h>

#include "common/err.h"
#include "model/encoder.h"
#include "model/tokenizer.h"

/* out: [n, encoder_out_dim] floats. batch or max_len below 1 is FOIL_EINVAL. */
int encode_texts(encoder *enc, const tokenizer *tok, char *const *texts, size_t n, int max_len,
                 int batch, float *out, foil_err *err);

#endif
