/* mine.c — the mining rule (see mine.h). */
#include "worker/run/mine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* candidates (query x rank) held at once per search: 4 Mi, 48 MiB */
#define MINE_CANDIDATES ((int64_t)1 << 22)
/* beyond this many candidates a query takes the deep path instead (the
 * top-k scan costs about k per row) */
#define MINE_DEEP 32

typedef struct {
  float score;
  int64_t id;
} cand;

static int better(const cand *a, const cand *b) { /* score descending, then lower id first */
  return a->score > b->score || (a->score == b->score && a->id < b->id);
}

/* score(q, row r of block x) as vs_search defines it, from the block's
 * float32 copy when it has one. */
static float score_row(const vs_block *x, int64_t r, const float *q, float *tmp) {
  const int d = x->d;
  const float *row = NULL;
  float s = 0;
  if (x->exact) row = x->exact + r * d;
  else if (x->dtype == VS_F32) row = (const float *)x->data + r * d;
  else if (x->dtype == VS_F16) vs_from_f16(tmp, (const uint16_t *)x->data + r * d, d), row = tmp;
  if (row) {
    for (int j = 0; j < d; j++) s += q[j] * row[j];
    return s;
  }
  const int8_t *v = (const int8_t *)x->data + r * d; /* int8 without a float32 copy */
  for (int j = 0; j < d; j++) s += q[j] * (float)v[j];
  return s * x->scales[r];
}

/* The deep path, for a query the candidate rounds did not satisfy: one
 * pass over the whole index, without ranking it all. Rows scoring above
 * the margin threshold can only fill the skip window (h of them that are
 * not the positive); below it, the best (skip_top - h)+ + top rows that are
 * not the positive, in ranking order, are the window's rest and the kept
 * ones. */
static int deep(const vs_block *blocks, int nblocks, const float *q, float s_pos, char *const *corpus,
                int64_t n_corpus, const char *pos_text, const mine_rule *r, cand *best, float *tmp, int64_t *out,
                int *found, foil_err *err) {
  const float thr = r->has_margin ? s_pos - r->margin : INFINITY;
  int64_t h = 0;
  int w = r->skip_top + r->top, nb = 0;
  /* pass 1: h (the positive's text is looked up only for rows that matter) */
  for (int b = 0; b < nblocks; b++)
    for (int64_t i = 0; i < blocks[b].n; i++) {
      int64_t id = blocks[b].ids[i];
      if (id < 0 || id >= n_corpus)
        return foil_err_set(err, FOIL_EINVAL, "mining: index row id %lld is outside the corpus (%lld rows)",
                            (long long)id, (long long)n_corpus);
      if (score_row(&blocks[b], i, q, tmp) > thr && strcmp(corpus[id], pos_text)) h++;
    }
  int skip_left = h >= r->skip_top ? 0 : r->skip_top - (int)h;
  w = skip_left + r->top;
  /* pass 2: the best w rows at or below the threshold, not the positive */
  for (int b = 0; b < nblocks; b++)
    for (int64_t i = 0; i < blocks[b].n; i++) {
      cand c = {score_row(&blocks[b], i, q, tmp), blocks[b].ids[i]};
      if (c.score > thr || (nb == w && !better(&c, &best[nb - 1])) || !strcmp(corpus[c.id], pos_text)) continue;
      int at = nb < w ? nb++ : w - 1;
      while (at > 0 && better(&c, &best[at - 1])) best[at] = best[at - 1], at--;
      best[at] = c;
    }
  int kept = 0;
  for (int k = skip_left; k < nb; k++) out[kept++] = best[k].id;
  for (int k = kept; k < r->top; k++) out[k] = -1;
  *found = kept;
  return FOIL_OK;
}

/* Walks one query's ranked candidates; returns 1 when its slots are
 * filled (or the ranking covers the whole index), 0 to search deeper. */
static int walk(const float *scores, const int64_t *ids, int k, int whole, float s_pos, char *const *corpus,
                int64_t n_corpus, const char *pos_text, const mine_rule *r, int64_t *out, int *found, foil_err *err,
                int *rc) {
  int skipped = 0, kept = 0;
  for (int c = 0; c < k && kept < r->top; c++) {
    int64_t id = ids[c];
    if (id < 0) break; /* the index ran out */
    if (id >= n_corpus) {
      *rc = foil_err_set(err, FOIL_EINVAL, "mining: index row id %lld is outside the corpus (%lld rows)",
                         (long long)id, (long long)n_corpus);
      return 1;
    }
    if (!strcmp(corpus[id], pos_text)) continue;
    if (skipped < r->skip_top) {
      skipped++;
      continue;
    }
    if (r->has_margin && scores[c] > s_pos - r->margin) continue;
    out[kept++] = id;
  }
  if (kept < r->top && !whole) return 0;
  for (int s = kept; s < r->top; s++) out[s] = -1;
  *found = kept;
  return 1;
}

int mine_select(const vs_block *blocks, int nblocks, int64_t n_rows, char *const *corpus, int64_t n_corpus,
                const float *q, const float *pos, char *const *pos_texts, int n, const mine_rule *r,
                int64_t *rows, int *found, foil_err *err) {
  if (!r || r->top < 1 || r->skip_top < 0 || (r->has_margin && !pos) || n < 0 || nblocks < 1 || n_rows < 1)
    return foil_err_set(err, FOIL_EINVAL, "mining: a rule with top >= 1 and skip_top >= 0, an index with rows and "
                        "(for a margin) the positives' vectors are required");
  if (n == 0) return FOIL_OK;
  const int d = blocks[0].d;
  int *pending = malloc(sizeof(int) * (size_t)n), *fnd = malloc(sizeof(int) * (size_t)n);
  float *qq = malloc(sizeof(float) * (size_t)n * d), *spos = malloc(sizeof(float) * (size_t)n);
  /* the rounds rank a block with a float32 copy by that copy, as the deep
   * path scores it: vs_search's own rescoring looks only at the best 4k
   * rows by the stored (float16/int8) rows, so a row whose exact score is
   * in the window could be missing from a round's ranking */
  vs_block *view = malloc(sizeof(vs_block) * (size_t)nblocks);
  int rc = !pending || !fnd || !qq || !spos || !view ? foil_err_set(err, FOIL_ENOMEM, "mining: out of memory") : FOIL_OK;
  for (int b = 0; !rc && b < nblocks; b++) {
    view[b] = blocks[b];
    if (blocks[b].exact) view[b].dtype = VS_F32, view[b].data = blocks[b].exact, view[b].scales = NULL,
                         view[b].exact = NULL;
  }
  int np = n;
  for (int i = 0; !rc && i < n; i++) {
    pending[i] = i;
    double s = 0;
    for (int j = 0; pos && j < d; j++) s += (double)q[(size_t)i * d + j] * pos[(size_t)i * d + j];
    spos[i] = (float)s;
  }
  int64_t k = (int64_t)r->skip_top + r->top + 9;
  float *sc = NULL;
  int64_t *ids = NULL;
  size_t cap = 0;
  /* rounds of vs_search while k is small beside the index */
  while (!rc && np > 0 && k <= MINE_DEEP) {
    if (k > n_rows) k = n_rows;
    int whole = k >= n_rows;
    /* queries in chunks of at most MINE_CANDIDATES candidates in all */
    int chunk = (int)(MINE_CANDIDATES / k > 0 ? (MINE_CANDIDATES / k < np ? MINE_CANDIDATES / k : np) : 1);
    size_t need = (size_t)chunk * (size_t)k;
    if (need > cap) {
      float *s2 = realloc(sc, sizeof(float) * need);
      if (s2) sc = s2;
      int64_t *i2 = s2 ? realloc(ids, sizeof(int64_t) * need) : NULL;
      if (i2) ids = i2;
      if (!s2 || !i2) {
        rc = foil_err_set(err, FOIL_ENOMEM, "mining: out of memory for %d x %lld candidates", chunk, (long long)k);
        break;
      }
      cap = need;
    }
    int left = 0;
    for (int t0 = 0; !rc && t0 < np; t0 += chunk) {
      int nc = np - t0 < chunk ? np - t0 : chunk;
      for (int t = 0; t < nc; t++)
        memcpy(qq + (size_t)t * d, q + (size_t)pending[t0 + t] * d, sizeof(float) * (size_t)d);
      if ((rc = vs_search(view, nblocks, qq, nc, (int)k, 0, -1, 0, sc, ids, err))) break;
      for (int t = 0; !rc && t < nc; t++) {
        int i = pending[t0 + t];
        if (!walk(sc + (size_t)t * k, ids + (size_t)t * k, (int)k, whole, spos[i], corpus, n_corpus, pos_texts[i],
                  r, rows + (size_t)i * r->top, &fnd[i], err, &rc))
          pending[left++] = i; /* left <= t0 + t: never overwrites a pending entry not yet read */
      }
    }
    np = left;
    k *= 2;
  }
  /* the deep path for the queries left */
  if (!rc && np > 0) {
    cand *best = malloc(sizeof(cand) * ((size_t)r->skip_top + (size_t)r->top));
    float *tmp = malloc(sizeof(float) * (size_t)d);
    if (!best || !tmp) rc = foil_err_set(err, FOIL_ENOMEM, "mining: out of memory");
    for (int t = 0; !rc && t < np; t++) {
      int i = pending[t];
      rc = deep(blocks, nblocks, q + (size_t)i * d, spos[i], corpus, n_corpus, pos_texts[i], r, best, tmp,
                rows + (size_t)i * r->top, &fnd[i], err);
    }
    free(best), free(tmp);
  }
  if (!rc && found) memcpy(found, fnd, sizeof(int) * (size_t)n);
  free(sc), free(ids), free(pending), free(fnd), free(qq), free(spos), free(view);
  return rc;
}
