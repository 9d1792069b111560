/* encode.c — texts to embeddings (see encode.h). */
#include "worker/run/encode.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

int encode_texts(encoder *enc, const tokenizer *tok, char *const *texts, size_t n, int max_len,
                 int batch, float *out, foil_err *err) {
  const int D = encoder_out_dim(enc);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)batch * max_len);
  int32_t *row = malloc(sizeof(int32_t) * (size_t)max_len);
  uint8_t *mask = malloc((size_t)batch * max_len);
  float *norms = malloc(sizeof(float) * (size_t)batch);
  int *lens = malloc(sizeof(int) * (size_t)batch);
  int rc = FOIL_OK;
  if (!ids || !row || !mask || !norms || !lens) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (size_t c0 = 0; !rc && c0 < n; c0 += (size_t)batch) {
    int b = (int)(n - c0 < (size_t)batch ? n - c0 : (size_t)batch), T = 1;
    for (int i = 0; i < b && !rc; i++) { /* tokenize; T = the chunk's longest row */
      int full = 0;
      const char *s = texts[c0 + (size_t)i];
      rc = tokenizer_encode(tok, s, strlen(s), 1, ids + (size_t)i * max_len, max_len, &full, err);
      lens[i] = full < max_len ? full : max_len;
      if (lens[i] < 1) lens[i] = 1, ids[(size_t)i * max_len] = tokenizer_pad_id(tok);
      if (lens[i] > T) T = lens[i];
    }
    if (rc) break;
    /* repack [b, max_len] -> [b, T] with padding and mask */
    const int32_t pad = tokenizer_pad_id(tok);
    for (int i = 0; i < b; i++) {
      memcpy(row, ids + (size_t)i * max_len, sizeof(int32_t) * (size_t)lens[i]);
      for (int t = 0; t < T; t++) {
        ids[(size_t)i * T + t] = t < lens[i] ? row[t] : pad;
        mask[(size_t)i * T + t] = t < lens[i];
      }
    }
    const float *emb;
    rc = encoder_forward(enc, &emb, ids, mask, b, T, 0, 0, 0, err);
    if (!rc) l2norm_forward(out + c0 * (size_t)D, norms, emb, b, D);
  }
  free(ids);
  free(row);
  free(mask);
  free(norms);
  free(lens);
  return rc;
}
