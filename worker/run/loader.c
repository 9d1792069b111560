/* loader.c — epoch plans, sharding and tokenization of training pairs
 * (loader.h). */
#include "worker/run/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "storage/dataset.h"

struct loader {
  loader_config cfg; /* path/split pointers are not kept */
  char split[16];
  const tokenizer *tok;
  dataset_pairs data;
  int64_t G;         /* global batch: world·B */
  int npp;           /* negatives per pair */
  size_t n_used;     /* pairs with enough negatives */
  int64_t *used;     /* [n_used] their split rows */
  uint32_t *qid;     /* [n] text id of each query */
  uint32_t *pid;     /* [n] of each positive */
  uint32_t *nid;     /* [n·npp] of the first npp negatives (rows with fewer: unset) */
  size_t n_texts;    /* distinct texts */
  uint64_t fingerprint;
  /* cursor */
  int64_t epoch, step;
  /* plan of epoch plan_epoch: plan[s·G .. s·G+G) is global batch s */
  int64_t plan_epoch; /* -1: none */
  int64_t plan_steps;
  int64_t *plan;      /* [n_used] */
  int64_t *perm;      /* [n_used] the epoch's permutation */
  int64_t *dq;        /* [n_used] deferred pairs, in arrival order */
  int64_t *cur;       /* [G] the global batch being packed */
  uint64_t *stamp;    /* [n_texts] the last batch (1-based) that took the text */
  /* bank negatives (loader_set_bank): borrowed */
  char *const *bank_texts;
  const int32_t *bank_count;
  int bank_stride, bank_m;
  /* batch buffers */
  int rows;           /* capacity: 2B + B·max(neg_per_pair, bank_negatives) */
  int32_t *ids;       /* [rows, max_len] */
  uint8_t *mask;
  int64_t *pairs;     /* [B] */
};

/* ---- text ids and fingerprint ------------------------------------------------ */

static uint64_t ld_hash(const char *s, size_t *len) { /* FNV-1a, then a final mix */
  uint64_t h = 0xcbf29ce484222325ull;
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 0;
  for (; p[n]; n++) h = (h ^ p[n]) * 0x100000001b3ull;
  *len = n;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static uint64_t ld_mix(uint64_t fp, uint64_t v) {
  fp ^= v + 0x9e3779b97f4a7c15ull + (fp << 6) + (fp >> 2);
  return fp;
}

typedef struct {
  const char **text; /* slot -> a representative text (NULL: empty) */
  uint64_t *hash;
  uint32_t *id;
  size_t cap;        /* power of two */
  size_t count;
} ld_table;

/* The id of text s (a new one if unseen); fp absorbs the text's hash. */
static uint32_t ld_intern(ld_table *t, const char *s, uint64_t *fp) {
  size_t len;
  uint64_t h = ld_hash(s, &len);
  *fp = ld_mix(*fp, h ^ len);
  size_t i = (size_t)h & (t->cap - 1);
  while (t->text[i]) {
    if (t->hash[i] == h && strcmp(t->text[i], s) == 0) return t->id[i];
    i = (i + 1) & (t->cap - 1);
  }
  t->text[i] = s;
  t->hash[i] = h;
  t->id[i] = (uint32_t)t->count;
  return (uint32_t)t->count++;
}

/* Interns every text the loader uses; fills qid/pid/nid, used, fingerprint. */
static int ld_index(loader *ld, foil_err *err) {
  size_t n = ld->data.n, m = (size_t)ld->npp;
  size_t total = 2 * n + n * m;
  ld_table t = {0};
  t.cap = 16;
  while (t.cap < 2 * total) t.cap <<= 1;
  t.text = calloc(t.cap, sizeof *t.text);
  t.hash = malloc(t.cap * sizeof *t.hash);
  t.id = malloc(t.cap * sizeof *t.id);
  ld->qid = malloc((n ? n : 1) * sizeof *ld->qid);
  ld->pid = malloc((n ? n : 1) * sizeof *ld->pid);
  ld->nid = malloc((n * m > 0 ? n * m : 1) * sizeof *ld->nid);
  ld->used = malloc((n ? n : 1) * sizeof *ld->used);
  int rc = FOIL_OK;
  if (!t.text || !t.hash || !t.id || !ld->qid || !ld->pid || !ld->nid || !ld->used) {
    rc = foil_err_set(err, FOIL_ENOMEM, "loader: out of memory indexing %zu pairs", n);
    goto out;
  }
  if (total >= UINT32_MAX) {
    rc = foil_err_set(err, FOIL_EINVAL, "loader: %zu texts is more than the loader indexes", total);
    goto out;
  }
  uint64_t fp = ld_mix(ld_mix(ld_mix(0x666f696c6c6f6164ull, n), (uint64_t)ld->G), m);
  ld->n_used = 0;
  for (size_t i = 0; i < n; i++) {
    ld->qid[i] = ld_intern(&t, ld->data.query[i], &fp);
    ld->pid[i] = ld_intern(&t, ld->data.positive[i], &fp);
    if (m) {
      int64_t o0 = ld->data.negatives_offsets[i], o1 = ld->data.negatives_offsets[i + 1];
      if ((size_t)(o1 - o0) < m) {
        fp = ld_mix(fp, 0x736b6970ull); /* "skip" */
        continue;
      }
      for (size_t k = 0; k < m; k++) ld->nid[i * m + k] = ld_intern(&t, ld->data.negatives[o0 + k], &fp);
    }
    ld->used[ld->n_used++] = (int64_t)i;
  }
  ld->n_texts = t.count;
  ld->fingerprint = fp;
out:
  free(t.text);
  free(t.hash);
  free(t.id);
  return rc;
}

/* ---- epoch plan ------------------------------------------------------------------ */

/* Fisher–Yates over plan[0..n) from Philox (seed, stream base + epoch). */
static void ld_shuffle(int64_t *a, size_t n, uint64_t seed, int64_t epoch) {
  uint64_t stream = LOADER_RNG_STREAM + (uint64_t)epoch;
  for (size_t i = n; i > 1; i--) {
    size_t k = i - 1;
    uint64_t u = ((uint64_t)rng_u32(seed, stream, 2 * (uint64_t)k) << 32) |
                 rng_u32(seed, stream, 2 * (uint64_t)k + 1);
    size_t j = (size_t)(u % (uint64_t)i);
    int64_t tmp = a[k];
    a[k] = a[j];
    a[j] = tmp;
  }
}

/* 1 if pair row r shares no text with batch `mark` so far. */
static int ld_fits(const loader *ld, int64_t r, uint64_t mark) {
  if (ld->stamp[ld->qid[r]] == mark || ld->stamp[ld->pid[r]] == mark) return 0;
  for (int k = 0; k < ld->npp; k++)
    if (ld->stamp[ld->nid[(size_t)r * ld->npp + k]] == mark) return 0;
  return 1;
}

static void ld_take(loader *ld, int64_t r, uint64_t mark) {
  ld->stamp[ld->qid[r]] = mark;
  ld->stamp[ld->pid[r]] = mark;
  for (int k = 0; k < ld->npp; k++) ld->stamp[ld->nid[(size_t)r * ld->npp + k]] = mark;
}

/* Plans epoch e: the permutation packed into whole global batches, with
 * duplicate deferral (loader.h). Pairs left over are dropped. */
static void ld_plan(loader *ld, int64_t e) {
  size_t n = ld->n_used, G = (size_t)ld->G;
  int64_t *perm = ld->perm, *dq = ld->dq, *cur = ld->cur;
  memcpy(perm, ld->used, n * sizeof *perm);
  ld_shuffle(perm, n, ld->cfg.seed, e);
  memset(ld->stamp, 0, ld->n_texts * sizeof *ld->stamp);
  size_t out = 0, p = 0, nd = 0;
  uint64_t mark = 0;
  for (;;) {
    mark++;
    size_t count = 0, keep = 0;
    /* deferred pairs first, in arrival order; the rest stay queued */
    for (size_t i = 0; i < nd; i++) {
      int64_t r = dq[i];
      if (count < G && ld_fits(ld, r, mark)) {
        ld_take(ld, r, mark);
        cur[count++] = r;
      } else {
        dq[keep++] = r;
      }
    }
    nd = keep;
    /* then new pairs from the permutation */
    while (count < G && p < n) {
      int64_t r = perm[p++];
      if (ld_fits(ld, r, mark)) {
        ld_take(ld, r, mark);
        cur[count++] = r;
      } else {
        dq[nd++] = r;
      }
    }
    if (count < G) break; /* the last partial batch is dropped */
    memcpy(ld->plan + out, cur, G * sizeof *cur);
    out += G;
  }
  ld->plan_epoch = e;
  ld->plan_steps = (int64_t)(out / G);
}

/* Makes the plan match the cursor, moving to the next epoch when the
 * current one is done. */
static int ld_sync(loader *ld, foil_err *err) {
  for (;;) {
    if (ld->plan_epoch != ld->epoch) ld_plan(ld, ld->epoch);
    if (ld->step < ld->plan_steps) return FOIL_OK;
    if (ld->plan_steps == 0)
      return foil_err_set(err, FOIL_EPRECOND,
                          "loader: epoch %lld of %s has no whole global batch of %lld pairs "
                          "without repeated texts",
                          (long long)ld->epoch, ld->split, (long long)ld->G);
    ld->epoch++;
    ld->step = 0;
  }
}

/* ---- public ---------------------------------------------------------------------- */

void loader_destroy(loader **ldp) {
  if (!ldp || !*ldp) return;
  loader *ld = *ldp;
  dataset_pairs_free(&ld->data);
  free(ld->used);
  free(ld->qid);
  free(ld->pid);
  free(ld->nid);
  free(ld->plan);
  free(ld->perm);
  free(ld->dq);
  free(ld->cur);
  free(ld->stamp);
  free(ld->ids);
  free(ld->mask);
  free(ld->pairs);
  free(ld);
  *ldp = NULL;
}

int loader_open(loader **out, const loader_config *cfg, const tokenizer *tok, foil_err *err) {
  *out = NULL;
  if (!cfg || !tok || !cfg->path)
    return foil_err_set(err, FOIL_EINVAL, "loader: a config with a path and a tokenizer are required");
  const char *split = cfg->split ? cfg->split : "train";
  if (cfg->batch_size < 1 || cfg->world < 1 || cfg->rank < 0 || cfg->rank >= cfg->world)
    return foil_err_set(err, FOIL_EINVAL, "loader: batch_size %d, rank %d of world %d: need batch_size >= 1 and 0 <= rank < world",
                        cfg->batch_size, cfg->rank, cfg->world);
  if (cfg->bank_negatives && cfg->neg_per_pair)
    return foil_err_set(err, FOIL_EINVAL, "loader: negatives come from the file (neg_per_pair %d) or from a bank "
                        "(bank_negatives %d), not both", cfg->neg_per_pair, cfg->bank_negatives);
  if (cfg->max_len < 1 || cfg->neg_per_pair < 0 || cfg->bank_negatives < 0)
    return foil_err_set(err, FOIL_EINVAL, "loader: max_len %d and neg_per_pair %d: need max_len >= 1 and neg_per_pair >= 0",
                        cfg->max_len, cfg->neg_per_pair);
  int64_t rows = (2 + (int64_t)cfg->neg_per_pair + cfg->bank_negatives) * cfg->batch_size;
  if (rows > INT32_MAX / cfg->max_len)
    return foil_err_set(err, FOIL_EINVAL, "loader: a batch of %lld rows x %d tokens is too large",
                        (long long)rows, cfg->max_len);
  loader *ld = calloc(1, sizeof *ld);
  if (!ld) return foil_err_set(err, FOIL_ENOMEM, "loader: out of memory");
  ld->cfg = *cfg;
  ld->cfg.path = NULL;
  ld->cfg.split = NULL;
  snprintf(ld->split, sizeof ld->split, "%s", split);
  ld->tok = tok;
  ld->G = (int64_t)cfg->world * cfg->batch_size;
  ld->npp = cfg->neg_per_pair;
  ld->plan_epoch = -1;
  ld->rows = (int)rows;
  int rc = dataset_pairs_read(cfg->path, split, &ld->data, err);
  if (rc) goto fail;
  if (ld->npp > 0 && !ld->data.negatives_offsets) {
    rc = foil_err_set(err, FOIL_EINVAL, "loader: %s has no negatives in split %s, but neg_per_pair is %d",
                      cfg->path, split, ld->npp);
    goto fail;
  }
  rc = ld_index(ld, err);
  if (rc) goto fail;
  if ((int64_t)ld->n_used < ld->G) {
    rc = foil_err_set(err, FOIL_EINVAL,
                      "loader: split %s of %s has %zu usable pairs (%zu skipped for fewer than %d negatives), "
                      "fewer than one global batch of %lld",
                      split, cfg->path, ld->n_used, ld->data.n - ld->n_used, ld->npp, (long long)ld->G);
    goto fail;
  }
  size_t n = ld->n_used;
  ld->plan = malloc(n * sizeof *ld->plan);
  ld->perm = malloc(n * sizeof *ld->perm);
  ld->dq = malloc(n * sizeof *ld->dq);
  ld->cur = malloc((size_t)ld->G * sizeof *ld->cur);
  ld->stamp = calloc(ld->n_texts ? ld->n_texts : 1, sizeof *ld->stamp);
  ld->ids = malloc((size_t)rows * cfg->max_len * sizeof *ld->ids);
  ld->mask = malloc((size_t)rows * cfg->max_len * sizeof *ld->mask);
  ld->pairs = malloc((size_t)cfg->batch_size * sizeof *ld->pairs);
  if (!ld->plan || !ld->perm || !ld->dq || !ld->cur || !ld->stamp || !ld->ids || !ld->mask || !ld->pairs) {
    rc = foil_err_set(err, FOIL_ENOMEM, "loader: out of memory for %zu pairs", n);
    goto fail;
  }
  *out = ld;
  return FOIL_OK;
fail:
  loader_destroy(&ld);
  return rc;
}

/* Encodes one text into row r (ids/mask of width max_len); returns the
 * real length, or a negative error. */
static int ld_encode(loader *ld, int r, const char *text, int64_t pair, const char *what,
                     int *truncated, foil_err *err) {
  int T = ld->cfg.max_len, n = 0;
  int32_t *ids = ld->ids + (size_t)r * T;
  uint8_t *mask = ld->mask + (size_t)r * T;
  int rc = tokenizer_encode(ld->tok, text, strlen(text), 1, ids, T, &n, err);
  if (rc) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
    return foil_err_set(err, rc, "loader: %s of row %lld of split %s: %s", what, (long long)pair,
                        ld->split, msg);
  }
  int len = n < T ? n : T;
  if (n > T) (*truncated)++;
  int32_t pad = tokenizer_pad_id(ld->tok);
  for (int t = len; t < T; t++) ids[t] = pad;
  memset(mask, 1, (size_t)len);
  memset(mask + len, 0, (size_t)(T - len));
  return len;
}

/* The bank negative for slot k of batch pair i (split row r): the pair's
 * own when it has any (repeated when it has fewer than the slots), else
 * those of the next pair of this rank's batch that has some; NULL when no
 * pair of the batch has any. *filled counts slots not the pair's own k-th. */
static const char *ld_bank_text(const loader *ld, int i, int k, int *filled) {
  int B = ld->cfg.batch_size;
  for (int t = 0; t < B; t++) {
    int64_t r = ld->pairs[(i + t) % B];
    int have = ld->bank_count[r] < ld->bank_m ? ld->bank_count[r] : ld->bank_m;
    if (have <= 0) continue;
    if (t || k >= have) (*filled)++;
    return ld->bank_texts[(size_t)r * ld->bank_stride + (size_t)(k % have)];
  }
  return NULL;
}

int loader_next(loader *ld, loader_batch *b, foil_err *err) {
  int rc = ld_sync(ld, err);
  if (rc) return rc;
  int B = ld->cfg.batch_size, m = ld->npp, T = ld->cfg.max_len;
  const int64_t *global = ld->plan + ld->step * ld->G;
  memcpy(ld->pairs, global + (int64_t)ld->cfg.rank * B, (size_t)B * sizeof *ld->pairs);
  int bm = ld->bank_texts ? ld->bank_m : 0, filled = 0;
  if (bm) { /* a batch whose pairs have no bank negatives at all trains without */
    if (!ld_bank_text(ld, 0, 0, &filled)) bm = 0;
    filled = 0;
  }
  const int rows = 2 * B + B * (m + bm);
  int truncated = 0, longest = 0;
  for (int i = 0; i < B; i++) {
    int64_t r = ld->pairs[i];
    int len = ld_encode(ld, i, ld->data.query[r], r, "query", &truncated, err);
    if (len < 0) return len;
    if (len > longest) longest = len;
    len = ld_encode(ld, B + i, ld->data.positive[r], r, "positive", &truncated, err);
    if (len < 0) return len;
    if (len > longest) longest = len;
    for (int k = 0; k < m; k++) {
      const char *neg = ld->data.negatives[ld->data.negatives_offsets[r] + k];
      len = ld_encode(ld, 2 * B + i * m + k, neg, r, "negative", &truncated, err);
      if (len < 0) return len;
      if (len > longest) longest = len;
    }
    for (int k = 0; k < bm; k++) {
      const char *neg = ld_bank_text(ld, i, k, &filled);
      len = ld_encode(ld, 2 * B + i * bm + k, neg, r, "bank negative", &truncated, err);
      if (len < 0) return len;
      if (len > longest) longest = len;
    }
  }
  int Tb = T;
  if (ld->cfg.pad_to_longest) {
    Tb = longest > 0 ? longest : 1;
    /* compact rows of stride T to stride Tb (Tb <= T: forward copies) */
    for (int r = 1; r < rows; r++) {
      memmove(ld->ids + (size_t)r * Tb, ld->ids + (size_t)r * T, (size_t)Tb * sizeof *ld->ids);
      memmove(ld->mask + (size_t)r * Tb, ld->mask + (size_t)r * T, (size_t)Tb);
    }
  }
  b->B = B;
  b->n_neg = B * (m + bm);
  b->rows = rows;
  b->bank_filled = filled;
  b->T = Tb;
  b->ids = ld->ids;
  b->mask = ld->mask;
  b->pairs = ld->pairs;
  b->epoch = ld->epoch;
  b->step = ld->step;
  b->truncated = truncated;
  ld->step++;
  return FOIL_OK;
}

void loader_get_cursor(const loader *ld, loader_cursor *c) {
  c->seed = ld->cfg.seed;
  c->fingerprint = ld->fingerprint;
  c->epoch = ld->epoch;
  c->step = ld->step;
}

int loader_set_cursor(loader *ld, const loader_cursor *c, foil_err *err) {
  if (c->seed != ld->cfg.seed || c->fingerprint != ld->fingerprint)
    return foil_err_set(err, FOIL_EPRECOND,
                        "loader: the cursor was saved with another seed, dataset, split, global batch "
                        "or negatives setting (seed %llu vs %llu, fingerprint %016llx vs %016llx)",
                        (unsigned long long)c->seed, (unsigned long long)ld->cfg.seed,
                        (unsigned long long)c->fingerprint, (unsigned long long)ld->fingerprint);
  if (c->epoch < 0 || c->step < 0)
    return foil_err_set(err, FOIL_EINVAL, "loader: cursor at epoch %lld step %lld",
                        (long long)c->epoch, (long long)c->step);
  ld->epoch = c->epoch;
  ld->step = c->step;
  return FOIL_OK;
}

int loader_epoch_steps(loader *ld, int64_t *steps, foil_err *err) {
  int rc = ld_sync(ld, err);
  if (rc) return rc;
  *steps = ld->plan_steps;
  return FOIL_OK;
}

int loader_set_bank(loader *ld, char *const *texts, const int32_t *count, int stride, foil_err *err) {
  if (!texts) {
    ld->bank_texts = NULL, ld->bank_count = NULL, ld->bank_stride = ld->bank_m = 0;
    return FOIL_OK;
  }
  if (!ld->cfg.bank_negatives || !count || stride < ld->cfg.bank_negatives)
    return foil_err_set(err, FOIL_EINVAL, "loader: a bank of %d negatives per pair for %d wanted (bank_negatives)",
                        stride, ld->cfg.bank_negatives);
  ld->bank_texts = texts, ld->bank_count = count;
  ld->bank_stride = stride, ld->bank_m = ld->cfg.bank_negatives;
  return FOIL_OK;
}

size_t loader_num_pairs(const loader *ld) { return ld->data.n; }

const dataset_pairs *loader_pairs(const loader *ld) { return &ld->data; }
size_t loader_skipped_pairs(const loader *ld) { return ld->data.n - ld->n_used; }
