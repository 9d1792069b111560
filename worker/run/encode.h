/* encode.h — texts to unit-norm embeddings with an encoder and a tokenizer
 * (evaluation now; embedding refresh later).
 *
 * Texts are tokenized (with special tokens), truncated to max_len, and
 * encoded in chunks of `batch` sequences, each padded to its longest row,
 * without dropout; rows come out L2-normalized. Order is preserved.
 * Cost: one inference forward per chunk; memory: the encoder's activations
 * for one chunk plus the output [n, D] the caller owns.
 */
#ifndef FOIL_WORKER_RUN_ENCODE_H
#define FOIL_WORKER_RUN_ENCODE_H

#include <stddef.h>

#include "common/err.h"
#include "model/encoder.h"
#include "model/tokenizer.h"

/* out: [n, encoder_out_dim] floats. */
int encode_texts(encoder *enc, const tokenizer *tok, char *const *texts, size_t n, int max_len,
                 int batch, float *out, foil_err *err);

#endif
