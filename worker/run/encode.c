/* encode.c — texts to embeddings (see encode.h). */
#include "worker/run/encode.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

typedef struct {
  int len;     /* tokens, 1..max_len */
  size_t idx;  /* position in the caller's texts */
  size_t off;  /* first token in the ragged id buffer */
} row_t;

/* shorter rows first; equal lengths in input order (a total order: the
 * chunks, so the bits, are a function of the texts alone) */
static int by_len(const void *a, const void *b) {
  const row_t *x = a, *y = b;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int encode_texts(encoder *enc, const tokenizer *tok, char *const *texts, size_t n, int max_len,
                 int batch, float *out, foil_err *err) {
  if (batch < 1 || max_len < 1) /* a chunk loop that never advances, buffers of no rows */
    return foil_err_set(err, FOIL_EINVAL, "encode: batch %d and max_len %d must be at least 1", batch, max_len);
  const int D = encoder_out_dim(enc);
  const int32_t pad = tokenizer_pad_id(tok);
  row_t *rows = malloc(sizeof(row_t) * (n ? n : 1));
  int32_t *all = NULL, *ids = malloc(sizeof(int32_t) * (size_t)batch * max_len);
  uint8_t *mask = malloc((size_t)batch * max_len);
  float *norms = malloc(sizeof(float) * (size_t)batch), *tmp = malloc(sizeof(float) * (size_t)batch * D);
  /* a CUDA encoder's embeddings come to the host before normalization */
  const int on_gpu = encoder_backend(enc) == DEVMEM_CUDA;
  float *raw = on_gpu ? malloc(sizeof(float) * (size_t)batch * D) : NULL;
  size_t used = 0, cap = 0;
  int rc = FOIL_OK;
  if (!rows || !ids || !mask || !norms || !tmp || (on_gpu && !raw))
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  /* tokenize everything once into a ragged buffer */
  for (size_t i = 0; !rc && i < n; i++) {
    if (cap - used < (size_t)max_len) {
      size_t nc = cap ? 2 * cap : (size_t)max_len * 64;
      int32_t *p = realloc(all, sizeof(int32_t) * nc);
      if (!p) {
        rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        break;
      }
      all = p, cap = nc;
    }
    int full = 0;
    const char *s = texts[i];
    rc = tokenizer_encode(tok, s, strlen(s), 1, all + used, max_len, &full, err);
    int len = full < max_len ? full : max_len;
    if (len < 1) len = 1, all[used] = pad;
    rows[i] = (row_t){.len = len, .idx = i, .off = used};
    used += (size_t)len;
  }
  if (!rc) qsort(rows, n, sizeof(row_t), by_len);
  /* chunks of similar lengths: little padding, as sentence-transformers' encode */
  for (size_t c0 = 0; !rc && c0 < n; c0 += (size_t)batch) {
    int b = (int)(n - c0 < (size_t)batch ? n - c0 : (size_t)batch), T = 1;
    for (int i = 0; i < b; i++)
      if (rows[c0 + i].len > T) T = rows[c0 + i].len;
    for (int i = 0; i < b; i++) {
      const row_t *r = &rows[c0 + i];
      for (int t = 0; t < T; t++) {
        ids[(size_t)i * T + t] = t < r->len ? all[r->off + t] : pad;
        mask[(size_t)i * T + t] = t < r->len;
      }
    }
    const float *emb;
    rc = encoder_forward(enc, &emb, ids, mask, b, T, 0, 0, 0, err);
    if (!rc && on_gpu && !(rc = encoder_copy_out(enc, raw, emb, (size_t)b * D, err))) emb = raw;
    if (rc) break;
    l2norm_forward(tmp, norms, emb, b, D);
    for (int i = 0; i < b; i++) memcpy(out + rows[c0 + i].idx * (size_t)D, tmp + (size_t)i * D, sizeof(float) * D);
  }
  free(rows);
  free(all);
  free(ids);
  free(mask);
  free(norms);
  free(tmp);
  free(raw);
  return rc;
}
