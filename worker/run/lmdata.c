/* lmdata.c — packed rows of an lm dataset (see lmdata.h). */
#include "worker/run/lmdata.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "storage/h5io.h"
#include "storage/lmcorpus.h"

struct lmdata {
  lmdata_config c;
  int32_t *stream;
  int64_t n_tokens, n_windows, n_docs, steps_per_epoch;
  uint64_t fingerprint;
  int64_t *perm;     /* the windows of epoch perm_epoch, in visiting order */
  int64_t perm_epoch; /* -1: none drawn yet */
};

/* Appends the tokens of document i and the end-of-text token; a document
 * of more than doc_max tokens (max_doc_tokens, at most 2^30: one encode
 * call's int count) is refused, as no growth of the buffer could hold it. */
static int append_doc(lmdata *d, int64_t *cap, const tokenizer *tok, const char *text, size_t i, int32_t eot,
                      foil_err *err) {
  size_t len = strlen(text);
  const int doc_max = d->c.max_doc_tokens > 0 && d->c.max_doc_tokens < LMDATA_DOC_TOKENS_MAX
                          ? d->c.max_doc_tokens : LMDATA_DOC_TOKENS_MAX;
  for (;;) {
    int64_t room = *cap - d->n_tokens - 1; /* keep one for end-of-text */
    int full = 0;
    if (room > 0) {
      int max = room > doc_max ? doc_max : (int)room;
      int rc = tokenizer_encode(tok, text, len, 0, d->stream + d->n_tokens, max, &full, err);
      if (rc) return rc;
      if (full <= max) {
        d->n_tokens += full;
        d->stream[d->n_tokens++] = eot;
        return FOIL_OK;
      }
      if (full > doc_max)
        return foil_err_set(err, FOIL_EINVAL, "%s: %s document %zu has more than %d tokens (%zu bytes): split it "
                            "into smaller documents", d->c.path, d->c.split, i, doc_max, len);
    }
    int64_t want = *cap * 2 > d->n_tokens + full + 1 + 1024 ? *cap * 2 : d->n_tokens + full + 1 + 1024;
    int32_t *g = realloc(d->stream, (size_t)want * sizeof(int32_t));
    if (!g) return foil_err_set(err, FOIL_ENOMEM, "out of memory for %lld tokens", (long long)want);
    d->stream = g;
    *cap = want;
  }
}

int lmdata_open(lmdata **out, const lmdata_config *c, const tokenizer *tok, foil_err *err) {
  *out = NULL;
  if (c->seq_len < 1 || c->batch_size < 1 || c->world < 1 || c->rank < 0 || c->rank >= c->world)
    return foil_err_set(err, FOIL_EINVAL, "lm data: bad sizes (T %d, B %d, rank %d of %d)", c->seq_len,
                        c->batch_size, c->rank, c->world);
  lmdata *d = calloc(1, sizeof *d);
  if (!d) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  d->c = *c;
  d->perm_epoch = -1;
  char **docs = NULL;
  size_t nd = 0;
  int rc = lmcorpus_read_split(c->path, c->split, &docs, &nd, err);
  int64_t cap = 0;
  const int32_t eot = tokenizer_pad_id(tok);
  for (size_t i = 0; !rc && i < nd; i++) rc = append_doc(d, &cap, tok, docs[i], i, eot, err);
  h5io_free_strings(docs, nd);
  d->n_docs = (int64_t)nd;
  if (!rc) {
    const int64_t T = c->seq_len, G = (int64_t)c->world * c->batch_size;
    d->n_windows = d->n_tokens > 1 ? (d->n_tokens - 1) / T : 0;
    d->steps_per_epoch = d->n_windows / G;
    if (d->n_windows < 1)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: the %s split has %lld tokens, not one window of %lld", c->path,
                        c->split, (long long)d->n_tokens, (long long)T + 1);
  }
  if (!rc) { /* FNV-1a over T and the stream */
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)c->seq_len;
    for (int64_t i = 0; i < d->n_tokens; i++) h = (h ^ (uint32_t)d->stream[i]) * 1099511628211ULL;
    d->fingerprint = h & 0x7fffffffffffffffULL; /* stored as int64 */
  }
  if (rc) {
    lmdata_destroy(&d);
    return rc;
  }
  *out = d;
  return FOIL_OK;
}

void lmdata_destroy(lmdata **dp) {
  if (!dp || !*dp) return;
  free((*dp)->stream);
  free((*dp)->perm);
  free(*dp);
  *dp = NULL;
}

int64_t lmdata_tokens(const lmdata *d) { return d->n_tokens; }
int64_t lmdata_windows(const lmdata *d) { return d->n_windows; }
int64_t lmdata_docs(const lmdata *d) { return d->n_docs; }
int64_t lmdata_steps_per_epoch(const lmdata *d) { return d->steps_per_epoch; }
uint64_t lmdata_fingerprint(const lmdata *d) { return d->fingerprint; }

void lmdata_window(const lmdata *d, int64_t k, int32_t *ids, int32_t *targets) {
  const int T = d->c.seq_len;
  const int32_t *w = d->stream + k * T;
  memcpy(ids, w, sizeof(int32_t) * (size_t)T);
  memcpy(targets, w + 1, sizeof(int32_t) * (size_t)T);
}

/* The permutation of epoch e: Fisher–Yates with draws from (seed, e). */
static int draw_perm(lmdata *d, int64_t e, foil_err *err) {
  if (d->perm_epoch == e) return FOIL_OK;
  const int64_t N = d->n_windows;
  if (!d->perm && !(d->perm = malloc(sizeof(int64_t) * (size_t)N)))
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for %lld windows", (long long)N);
  for (int64_t i = 0; i < N; i++) d->perm[i] = i;
  for (int64_t i = N - 1; i > 0; i--) {
    uint64_t r = ((uint64_t)rng_u32(d->c.seed, 0x6c6d0000u + (uint64_t)e, (uint64_t)i) << 32) |
                 rng_u32(d->c.seed, 0x6c6d8000u + (uint64_t)e, (uint64_t)i);
    int64_t j = (int64_t)(r % (uint64_t)(i + 1)), t = d->perm[i];
    d->perm[i] = d->perm[j];
    d->perm[j] = t;
  }
  d->perm_epoch = e;
  return FOIL_OK;
}

int lmdata_batch(lmdata *d, int64_t step, int32_t *ids, int32_t *targets, int64_t *epoch, foil_err *err) {
  const int B = d->c.batch_size, T = d->c.seq_len;
  const int64_t G = (int64_t)d->c.world * B;
  /* fewer windows than a global batch: each step wraps around one permutation */
  const int64_t spe = d->steps_per_epoch > 0 ? d->steps_per_epoch : 1;
  const int64_t e = step / spe, k = step % spe;
  int rc = draw_perm(d, e, err);
  if (rc) return rc;
  for (int b = 0; b < B; b++) {
    int64_t slot = (k * G + (int64_t)d->c.rank * B + b) % d->n_windows;
    lmdata_window(d, d->perm[slot], ids + (size_t)b * T, targets + (size_t)b * T);
  }
  if (epoch) *epoch = e;
  return FOIL_OK;
}
