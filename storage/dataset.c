/* dataset.c — typed dataset files over h5io (see dataset.h). */
#include "storage/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const dataset_splits[3] = {"train", "dev", "test"};

#define STRS(p) ((const char *const *)(p))

static int write_meta(h5io *f, const dataset_meta *m, foil_err *err) {
  int rc = h5io_attr_str(f, "/", "source", m && m->source ? m->source : "", err);
  if (!rc) rc = h5io_attr_str(f, "/", "created_by", m && m->created_by ? m->created_by : "", err);
  if (!rc) rc = h5io_attr_i64(f, "/", "seed", m ? (int64_t)m->seed : 0, err);
  return rc;
}

static int write_split(h5io *f, const char *split, const dataset_pairs *p, int with_neg,
                       foil_err *err) {
  static const dataset_pairs empty = {0};
  if (!p) p = &empty;
  char name[64];
  uint64_t dn[1] = {p->n};
  int rc;
  snprintf(name, sizeof name, "%s/query", split);
  if ((rc = h5io_write_strings(f, name, STRS(p->query), p->n, err))) return rc;
  snprintf(name, sizeof name, "%s/positive", split);
  if ((rc = h5io_write_strings(f, name, STRS(p->positive), p->n, err))) return rc;
  snprintf(name, sizeof name, "%s/group", split);
  int64_t zero = 0;
  if ((rc = h5io_write_i64(f, name, p->n ? p->group : &zero, 1, dn, err))) return rc;
  if (with_neg) {
    int64_t *off = p->negatives_offsets;
    int64_t *zeros = NULL;
    if (!off) {
      zeros = calloc(p->n + 1, sizeof *zeros);
      if (!zeros) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
      off = zeros;
    }
    size_t nneg = p->negatives_offsets ? p->n_negatives : 0;
    snprintf(name, sizeof name, "%s/negatives", split);
    rc = h5io_write_strings(f, name, STRS(p->negatives), nneg, err);
    uint64_t d1[1] = {p->n + 1};
    snprintf(name, sizeof name, "%s/negatives_offsets", split);
    if (!rc) rc = h5io_write_i64(f, name, off, 1, d1, err);
    free(zeros);
    if (rc) return rc;
  }
  return h5io_attr_i64(f, split, "count", (int64_t)p->n, err);
}

int dataset_pairs_create(h5io **out, const char *path, const dataset_pairs *const splits[3],
                         int with_negatives, const dataset_meta *meta, foil_err *err) {
  *out = NULL;
  h5io *f;
  int rc = h5io_create(&f, path, DATASET_PAIRS_FORMAT, err);
  if (rc) return rc;
  rc = write_meta(f, meta, err);
  for (int s = 0; s < 3 && !rc; s++)
    rc = write_split(f, dataset_splits[s], splits[s], with_negatives, err);
  if (rc) {
    h5io_abandon(&f);
    return rc;
  }
  *out = f;
  return FOIL_OK;
}

int dataset_bench_create(h5io **out, const char *path, const dataset_bench *b,
                         const dataset_meta *meta, foil_err *err) {
  *out = NULL;
  for (size_t k = 0; k < b->n_qrels; k++)
    if (b->qrels[2 * k] < 0 || (size_t)b->qrels[2 * k] >= b->n_queries || b->qrels[2 * k + 1] < 0 ||
        (size_t)b->qrels[2 * k + 1] >= b->n_corpus)
      return foil_err_set(err, FOIL_EINTERNAL, "%s: qrel %zu out of range", path, k);
  h5io *f;
  int rc = h5io_create(&f, path, DATASET_BENCH_FORMAT, err);
  if (rc) return rc;
  rc = write_meta(f, meta, err);
  if (!rc) rc = h5io_write_strings(f, "queries", STRS(b->queries), b->n_queries, err);
  if (!rc) rc = h5io_write_strings(f, "query_ids", STRS(b->query_ids), b->n_queries, err);
  if (!rc) rc = h5io_write_strings(f, "corpus", STRS(b->corpus), b->n_corpus, err);
  if (!rc) rc = h5io_write_strings(f, "corpus_ids", STRS(b->corpus_ids), b->n_corpus, err);
  uint64_t d2[2] = {b->n_qrels, 2}, d1[1] = {b->n_qrels};
  int64_t z64[2] = {0, 0};
  int32_t z32 = 0;
  if (!rc) rc = h5io_write_i64(f, "qrels", b->n_qrels ? b->qrels : z64, 2, d2, err);
  if (!rc && b->qrels_score)
    rc = h5io_write_i32(f, "qrels_score", b->n_qrels ? b->qrels_score : &z32, 1, d1, err);
  if (rc) {
    h5io_abandon(&f);
    return rc;
  }
  *out = f;
  return FOIL_OK;
}

int dataset_corpus_create(h5io **out, const char *path, char *const *ids, char *const *text,
                          size_t n, const dataset_meta *meta, foil_err *err) {
  *out = NULL;
  h5io *f;
  int rc = h5io_create(&f, path, DATASET_CORPUS_FORMAT, err);
  if (rc) return rc;
  rc = write_meta(f, meta, err);
  if (!rc) rc = h5io_write_strings(f, "ids", STRS(ids), n, err);
  if (!rc) rc = h5io_write_strings(f, "text", STRS(text), n, err);
  if (rc) {
    h5io_abandon(&f);
    return rc;
  }
  *out = f;
  return FOIL_OK;
}

/* ---- reading ---------------------------------------------------------------------- */

static int read_strs(h5io *f, const char *name, char ***s, size_t *n, foil_err *err) {
  return h5io_read_strings(f, name, s, n, err);
}

void dataset_pairs_free(dataset_pairs *p) {
  h5io_free_strings(p->query, p->query ? p->n : 0);
  h5io_free_strings(p->positive, p->positive ? p->n : 0);
  h5io_free_strings(p->negatives, p->negatives ? p->n_negatives : 0);
  free(p->group);
  free(p->negatives_offsets);
  memset(p, 0, sizeof *p);
}

int dataset_pairs_read(const char *path, const char *split, dataset_pairs *out, foil_err *err) {
  memset(out, 0, sizeof *out);
  if (strcmp(split, "train") && strcmp(split, "dev") && strcmp(split, "test"))
    return foil_err_set(err, FOIL_EINVAL, "unknown split '%s' (train, dev or test)", split);
  h5io *f;
  int rc = h5io_open(&f, path, DATASET_PAIRS_FORMAT, err);
  if (rc) return rc;
  char name[64];
  size_t nq = 0, np = 0, ng = 0, no = 0;
  snprintf(name, sizeof name, "%s/query", split);
  rc = read_strs(f, name, &out->query, &nq, err);
  snprintf(name, sizeof name, "%s/positive", split);
  if (!rc) rc = read_strs(f, name, &out->positive, &np, err);
  snprintf(name, sizeof name, "%s/group", split);
  if (!rc) rc = h5io_read_i64(f, name, &out->group, &ng, err);
  out->n = nq;
  if (!rc && (np != nq || ng != nq))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: %s has %zu queries, %zu positives, %zu groups",
                      path, split, nq, np, ng);
  snprintf(name, sizeof name, "%s/negatives_offsets", split);
  if (!rc && h5io_exists(f, name)) {
    rc = h5io_read_i64(f, name, &out->negatives_offsets, &no, err);
    snprintf(name, sizeof name, "%s/negatives", split);
    if (!rc) rc = read_strs(f, name, &out->negatives, &out->n_negatives, err);
    if (!rc && no != nq + 1)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: %s/negatives_offsets has %zu entries, expected %zu",
                        path, split, no, nq + 1);
    for (size_t i = 0; !rc && i < nq; i++)
      if (out->negatives_offsets[0] != 0 || out->negatives_offsets[i] > out->negatives_offsets[i + 1] ||
          (uint64_t)out->negatives_offsets[i + 1] > out->n_negatives)
        rc = foil_err_set(err, FOIL_EINVAL, "%s: %s/negatives_offsets is not a valid offset table (row %zu)",
                          path, split, i);
  }
  h5io_close(&f);
  if (rc) {
    /* the arrays may have different lengths: free each with its own count */
    h5io_free_strings(out->query, nq);
    h5io_free_strings(out->positive, np);
    h5io_free_strings(out->negatives, out->n_negatives);
    free(out->group);
    free(out->negatives_offsets);
    memset(out, 0, sizeof *out);
  }
  return rc;
}

void dataset_bench_free(dataset_bench *b) {
  h5io_free_strings(b->queries, b->queries ? b->n_queries : 0);
  h5io_free_strings(b->query_ids, b->query_ids ? b->n_queries : 0);
  h5io_free_strings(b->corpus, b->corpus ? b->n_corpus : 0);
  h5io_free_strings(b->corpus_ids, b->corpus_ids ? b->n_corpus : 0);
  free(b->qrels);
  free(b->qrels_score);
  memset(b, 0, sizeof *b);
}

int dataset_bench_read(const char *path, dataset_bench *out, foil_err *err) {
  memset(out, 0, sizeof *out);
  h5io *f;
  int rc = h5io_open(&f, path, DATASET_BENCH_FORMAT, err);
  if (rc) return rc;
  size_t nq = 0, nqi = 0, nc = 0, nci = 0, nr = 0, ns = 0;
  rc = read_strs(f, "queries", &out->queries, &nq, err);
  if (!rc) rc = read_strs(f, "query_ids", &out->query_ids, &nqi, err);
  if (!rc) rc = read_strs(f, "corpus", &out->corpus, &nc, err);
  if (!rc) rc = read_strs(f, "corpus_ids", &out->corpus_ids, &nci, err);
  if (!rc) rc = h5io_read_i64(f, "qrels", &out->qrels, &nr, err);
  if (!rc && h5io_exists(f, "qrels_score")) rc = h5io_read_i32(f, "qrels_score", &out->qrels_score, &ns, err);
  h5io_close(&f);
  if (!rc && (nq != nqi || nc != nci || nr % 2 || (out->qrels_score && ns * 2 != nr)))
    rc = foil_err_set(err, FOIL_EINVAL,
                      "%s: inconsistent lengths (%zu queries, %zu query ids, %zu docs, %zu doc ids, "
                      "%zu qrels values, %zu scores)", path, nq, nqi, nc, nci, nr, ns);
  for (size_t k = 0; !rc && k < nr / 2; k++)
    if (out->qrels[2 * k] < 0 || (size_t)out->qrels[2 * k] >= nq || out->qrels[2 * k + 1] < 0 ||
        (size_t)out->qrels[2 * k + 1] >= nc)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: qrels row %zu (%lld, %lld) is out of range", path, k,
                        (long long)out->qrels[2 * k], (long long)out->qrels[2 * k + 1]);
  if (rc) {
    h5io_free_strings(out->queries, nq);
    h5io_free_strings(out->query_ids, nqi);
    h5io_free_strings(out->corpus, nc);
    h5io_free_strings(out->corpus_ids, nci);
    free(out->qrels);
    free(out->qrels_score);
    memset(out, 0, sizeof *out);
    return rc;
  }
  out->n_queries = nq;
  out->n_corpus = nc;
  out->n_qrels = nr / 2;
  return FOIL_OK;
}

int dataset_corpus_read(const char *path, char ***ids, char ***text, size_t *n, foil_err *err) {
  *ids = *text = NULL;
  *n = 0;
  h5io *f;
  int rc = h5io_open(&f, path, DATASET_CORPUS_FORMAT, err);
  if (rc) return rc;
  size_t ni = 0, nt = 0;
  rc = read_strs(f, "ids", ids, &ni, err);
  if (!rc) rc = read_strs(f, "text", text, &nt, err);
  h5io_close(&f);
  if (!rc && ni != nt) rc = foil_err_set(err, FOIL_EINVAL, "%s: %zu ids but %zu texts", path, ni, nt);
  if (rc) {
    h5io_free_strings(*ids, ni);
    h5io_free_strings(*text, nt);
    *ids = *text = NULL;
    return rc;
  }
  *n = ni;
  return FOIL_OK;
}
