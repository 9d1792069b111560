/* sgen.c — see sgen.h. */
#define _POSIX_C_SOURCE 200809L
#include "worker/serve/sgen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "model/devmem.h"
#include "storage/ckpt.h"
#include "storage/hfmodel.h"
#include "worker/run/encode.h"

/* Frees an encoder, under devmem_lock when it is on the GPU (another
 * thread may be using the backend). */
static void encoder_lock_destroy(encoder **e) {
  const int dev = *e && encoder_backend(*e) != DEVMEM_CPU;
  if (dev) devmem_lock();
  encoder_destroy(e);
  if (dev) devmem_unlock();
}

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static int keys_build(sgen *g, foil_err *err) {
  int any = 0;
  for (int s = 0; s < g->iv->n_shards; s++) any |= g->iv->shards[s]->keys != NULL;
  if (!any || g->count == 0) return FOIL_OK;
  size_t cap = 16;
  while (cap < 2 * (size_t)g->count) cap *= 2;
  g->key_ids = malloc(cap * sizeof *g->key_ids);
  g->key_vals = calloc(cap, sizeof *g->key_vals);
  if (!g->key_ids || !g->key_vals) return foil_err_set(err, FOIL_ENOMEM, "no memory for the keys of %lld rows",
                                                       (long long)g->count);
  g->key_cap = cap;
  for (int s = 0; s < g->iv->n_shards; s++) {
    const index_shard *sh = g->iv->shards[s];
    if (!sh->keys) continue;
    for (int64_t r = 0; r < sh->n; r++) {
      size_t i = (size_t)mix((uint64_t)sh->ids[r]) & (cap - 1);
      while (g->key_vals[i] && g->key_ids[i] != sh->ids[r]) i = (i + 1) & (cap - 1);
      g->key_ids[i] = sh->ids[r];
      g->key_vals[i] = sh->keys[r] ? sh->keys[r] : "";
    }
  }
  return FOIL_OK;
}

const char *sgen_key(const sgen *g, int64_t id) {
  if (!g->key_cap) return NULL;
  size_t i = (size_t)mix((uint64_t)id) & (g->key_cap - 1);
  while (g->key_vals[i]) {
    if (g->key_ids[i] == id) return g->key_vals[i];
    i = (i + 1) & (g->key_cap - 1);
  }
  return NULL;
}

/* The encoder and tokenizer of the shards' checkpoint, if they match; on
 * the GPU when the rows are (the model hash is taken on the host first). */
static void text_load(sgen *g, const char *root, int device) {
  char path[2100];
  const char *ck = g->checkpoint;
  if (!ck[0]) {
    snprintf(g->no_text, sizeof g->no_text, "the index names no checkpoint");
    return;
  }
  snprintf(path, sizeof path, "%s", ck);
  if (ck[0] != '/' && access(path, R_OK)) snprintf(path, sizeof path, "%s/%s", root, ck);
  if (!g->model_hash[0]) {
    snprintf(g->no_text, sizeof g->no_text, "the shards carry no model_hash to check checkpoint %.1000s against", ck);
    return;
  }
  foil_err e = {0};
  int rc = ckpt_open_encoder(path, &g->enc, &g->tok, NULL, &e);
  if (!rc) g->enc_len = hf_encode_len(path, encoder_cfg(g->enc)->max_len);
  if (rc) {
    snprintf(g->no_text, sizeof g->no_text, "cannot load its checkpoint: %.440s", e.msg);
    goto fail;
  }
  char hash[65];
  index_model_hash_encoder(g->enc, hash);
  if (strcmp(hash, g->model_hash)) {
    snprintf(g->no_text, sizeof g->no_text,
             "checkpoint %.300s hashes to %s but the index was built with model %s (the checkpoint changed "
             "after the refresh; refresh the index again)",
             ck, hash, g->model_hash);
    goto fail;
  }
  if (encoder_out_dim(g->enc) != g->dim) {
    snprintf(g->no_text, sizeof g->no_text, "checkpoint %.300s encodes to dimension %d, the index has %d", ck,
             encoder_out_dim(g->enc), g->dim);
    goto fail;
  }
  if (device == DEVMEM_CUDA) {
    encoder *gpu = NULL;
    devmem_lock();
    rc = encoder_clone_on(&gpu, g->enc, DEVMEM_CUDA, &e);
    devmem_unlock();
    if (rc) {
      snprintf(g->no_text, sizeof g->no_text, "cannot move its encoder to the GPU: %.400s", e.msg);
      goto fail;
    }
    encoder_destroy(&g->enc);
    g->enc = gpu;
  }
  g->text_ok = 1;
  return;
fail:
  encoder_destroy(&g->enc);
  tokenizer_destroy(&g->tok);
}

int sgen_load(const char *root, const char *name, int version, const int *which, int n_which, int want_text,
              int device, sgen **out, foil_err *err) {
  *out = NULL;
  sgen *g = calloc(1, sizeof *g);
  if (!g) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  int rc = index_version_open(root, name, version, which, n_which, &g->iv, err);
  if (rc) {
    free(g);
    return rc;
  }
  const index_meta *m = &g->iv->meta;
  snprintf(g->index, sizeof g->index, "%s", name);
  g->version = m->version ? m->version : version;
  g->dim = m->dim, g->dtype = m->dtype, g->normalized = m->normalized;
  snprintf(g->checkpoint, sizeof g->checkpoint, "%s", m->checkpoint);
  snprintf(g->model_hash, sizeof g->model_hash, "%s", m->model_hash);
  g->nshards = g->iv->n_shards;
  g->shards = calloc((size_t)(g->nshards ? g->nshards : 1), sizeof *g->shards);
  g->blocks = calloc((size_t)(g->nshards ? g->nshards : 1), sizeof *g->blocks);
  if (!g->shards || !g->blocks) {
    sgen_destroy(&g);
    return foil_err_set(err, FOIL_ENOMEM, "no memory");
  }
  for (int s = 0; s < g->nshards; s++) {
    const index_shard *sh = g->iv->shards[s];
    g->shards[s] = g->iv->shard_ids ? g->iv->shard_ids[s] : sh->meta.shard;
    if (sh->meta.dim != g->dim || sh->meta.dtype != g->dtype) {
      int d = sh->meta.dim;
      sgen_destroy(&g);
      return foil_err_set(err, FOIL_EINVAL, "index %s v%d: shard %d has dimension %d, not the version's", name,
                          version, s, d);
    }
    g->blocks[s] = (vs_block){.dtype = sh->meta.dtype, .n = sh->n, .d = g->dim, .data = sh->vectors,
                              .scales = sh->scales, .exact = sh->exact, .ids = sh->ids};
    g->count += sh->n;
  }
  rc = keys_build(g, err);
  if (!rc && device == DEVMEM_CUDA) rc = vs_dev_new(g->blocks, g->nshards, &g->dev, err);
  if (rc) {
    sgen_destroy(&g);
    return rc;
  }
  if (want_text) text_load(g, root, device);
  else snprintf(g->no_text, sizeof g->no_text, "text queries are off");
  *out = g;
  return FOIL_OK;
}

void sgen_destroy(sgen **gp) {
  sgen *g = *gp;
  if (!g) return;
  vs_dev_destroy(&g->dev);  /* before the rows it borrows */
  index_version_destroy(&g->iv);
  free(g->shards), free(g->blocks), free(g->key_ids), free(g->key_vals);
  encoder_lock_destroy(&g->enc);
  tokenizer_destroy(&g->tok);
  free(g);
  *gp = NULL;
}

int sgen_search(sgen *g, const float *q, int nq, int k, int64_t lo, int64_t hi, float *scores, int64_t *ids,
                foil_err *err) {
  if (!g->count) {  /* an empty version: nothing to find */
    for (size_t i = 0; i < (size_t)nq * (size_t)k; i++) scores[i] = -INFINITY, ids[i] = -1;
    return FOIL_OK;
  }
  if (g->dev) return vs_dev_search(g->dev, q, nq, k, lo, hi, scores, ids, err);
  return vs_search(g->blocks, g->nshards, q, nq, k, lo, hi, 0, scores, ids, err);
}

int sgen_encode(sgen *g, char *const *texts, size_t n, float *out, foil_err *err) {
  if (!g->text_ok) return foil_err_set(err, FOIL_EPRECOND, "%s", g->no_text);
  const int dev = encoder_backend(g->enc) != DEVMEM_CPU;
  if (dev) devmem_lock();
  int rc = encode_texts(g->enc, g->tok, texts, n, g->enc_len, 32, out, err);
  if (dev) devmem_unlock();
  return rc;
}

int sgen_check(sgen *g, int samples, foil_err *err) {
  if (!g->count || samples <= 0) return FOIL_OK;
  if (samples > g->count) samples = (int)g->count;
  const int K = 10;
  int k = g->count < K ? (int)g->count : K;
  size_t d = (size_t)g->dim;
  float *q = calloc((size_t)samples * d, sizeof *q), *sc = malloc((size_t)samples * K * sizeof *sc);
  int64_t *id = malloc((size_t)samples * K * sizeof *id), *want = malloc((size_t)samples * sizeof *want);
  int rc = FOIL_OK;
  if (!q || !sc || !id || !want) {
    rc = foil_err_set(err, FOIL_ENOMEM, "no memory to check version %d", g->version);
    goto done;
  }
  /* rows spread evenly over all rows of all shards */
  for (int i = 0; i < samples; i++) {
    int64_t at = (int64_t)((double)i * (double)g->count / samples), b = 0;
    while (at >= g->blocks[b].n) at -= g->blocks[b++].n;
    vs_rows_f32(&g->blocks[b], at, 1, q + (size_t)i * d);
    want[i] = g->blocks[b].ids[at];
  }
  if (g->normalized) {
    /* unit rows: a row's own vector scores highest on itself */
    rc = sgen_search(g, q, samples, k, 1, 0, sc, id, err);
    for (int i = 0; !rc && i < samples; i++) {
      const float *s = sc + (size_t)i * k;
      const int64_t *h = id + (size_t)i * k;
      float self = 0;
      for (size_t j = 0; j < d; j++) self += q[(size_t)i * d + j] * q[(size_t)i * d + j];
      int found = 0;
      for (int j = 0; j < k; j++) found |= h[j] == want[i];
      float tol = 1e-3f * (fabsf(self) > 1 ? fabsf(self) : 1);
      if (!found && !(s[k - 1] >= self - tol))  /* else: k ties or better crowd it out */
        rc = foil_err_set(err, FOIL_EINTERNAL,
                          "index %s v%d fails its check: row id %lld searched with its own vector is not "
                          "among the top %d (best: id %lld, score %g; its own score %g)",
                          g->index, g->version, (long long)want[i], k, (long long)h[0], s[0], self);
    }
  } else {
    /* any rows: filtered to its own id, a row is found with its own score */
    for (int i = 0; !rc && i < samples; i++) {
      rc = sgen_search(g, q + (size_t)i * d, 1, 1, want[i], want[i], sc, id, err);
      if (!rc && id[0] != want[i])
        rc = foil_err_set(err, FOIL_EINTERNAL, "index %s v%d fails its check: a search for row id %lld alone "
                          "finds id %lld", g->index, g->version, (long long)want[i], (long long)id[0]);
    }
  }
  if (!rc && g->text_ok) {
    char *probe[1] = {(char *)"foil serve check"};
    rc = sgen_encode(g, probe, 1, q, err);
    if (rc) {
      /* not fatal for vectors: text is off for this version */
      snprintf(g->no_text, sizeof g->no_text, "encoding a test text failed: %.400s", err ? err->msg : "");
      g->text_ok = 0;
      encoder_lock_destroy(&g->enc);
      tokenizer_destroy(&g->tok);
      rc = FOIL_OK;
    }
  }
done:
  free(q), free(sc), free(id), free(want);
  return rc;
}
