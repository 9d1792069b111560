/* sgen.h — one loaded version of an index, as foil-serve answers from it:
 * the shards asked for (storage/index.h, each checked against the
 * manifest), their rows as vs_search blocks, the documents' keys by id,
 * and, when the shards' checkpoint can be loaded and its parameters hash to
 * the shards' model_hash, the encoder and tokenizer for text queries.
 *
 * A generation is immutable once loaded; foil-serve's loader thread builds
 * one beside the live one, sgen_check tests it, and the query loop swaps it
 * in between batches and destroys the old one. sgen_search and
 * sgen_encode may be called from one thread at a time (the encoder keeps
 * its activations).
 *
 * Ownership: sgen_load returns the caller's generation (sgen_destroy).
 * Cost: load reads every shard whole (one pass, plus one CRC pass) and the
 * checkpoint's parameters; memory: the shards' rows (plus their rescoring
 * copies), a key table of 2 slots per row when the shards have keys, and
 * the encoder; on a GPU (device DEVMEM_CUDA) also the rows as float32 in
 * device memory (vsearch_dev.h), and the encoder there instead of here.
 */
#ifndef FOIL_WORKER_SERVE_SGEN_H
#define FOIL_WORKER_SERVE_SGEN_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/encoder.h"
#include "model/tokenizer.h"
#include "model/vsearch.h"
#include "model/vsearch_dev.h"
#include "storage/index.h"

typedef struct {
  char index[129];
  int version;
  int dim;
  vs_dtype dtype;
  int normalized;
  int64_t count;            /* rows held */
  int nshards;
  int *shards;              /* shard numbers held, ascending */
  char checkpoint[1024];
  char model_hash[65];
  index_version *iv;
  vs_block *blocks;         /* one per shard */
  vs_dev *dev;              /* the rows on the GPU, searched there; NULL: on the CPU */
  /* keys by id: open addressing, NULL table when the shards have none */
  int64_t *key_ids;
  const char **key_vals;
  size_t key_cap;
  /* text: enc and tok when text_ok, else why not in no_text */
  int text_ok;
  char no_text[1400];
  encoder *enc;
  int enc_len;              /* tokens per query text (hf_encode_len) */
  tokenizer *tok;
} sgen;

/* Loads version `version` of index `name` (the shards in which[n_which],
 * NULL: all). want_text: also load the checkpoint for text queries (a
 * failure there is not an error: the generation answers vectors only and
 * says why in no_text). device: DEVMEM_CPU, or DEVMEM_CUDA to copy the
 * rows and the text encoder to the GPU (brought up by the caller) and
 * search and encode there; device work holds devmem_lock, so the loader
 * thread and the query loop may share the GPU. */
int sgen_load(const char *root, const char *name, int version, const int *which, int n_which,
              int want_text, int device, sgen **out, foil_err *err);
void sgen_destroy(sgen **g);

/* Tests a loaded generation: a sample of up to `samples` of its own rows,
 * searched with their stored vectors, must each find themselves (or a tie
 * of the same score) among the top hits; and text, when it can, must
 * encode to the index's dimension. FOIL_EINTERNAL naming the row that
 * failed. Cost: one batched search over every row. */
int sgen_check(sgen *g, int samples, foil_err *err);

/* Top-k (vsearch.h; vsearch_dev.h on the GPU) over the generation's rows. */
int sgen_search(sgen *g, const float *q, int nq, int k, int64_t lo, int64_t hi, float *scores,
                int64_t *ids, foil_err *err);

/* The document key of id, or NULL when the index has none for it. */
const char *sgen_key(const sgen *g, int64_t id);

/* Encodes texts to unit vectors (n×dim) with the generation's encoder;
 * FOIL_EPRECOND with no_text when it cannot. */
int sgen_encode(sgen *g, char *const *texts, size_t n, float *out, foil_err *err);

#endif
