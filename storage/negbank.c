/* negbank.c — hard-negative banks (see negbank.h). */
#define _POSIX_C_SOURCE 200809L
#include "storage/negbank.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "storage/h5io.h"

int negbank_name_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n < 1 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return strcmp(s, ".") && strcmp(s, "..");
}

int negbank_path(const char *root, const char *name, char *out, size_t n, foil_err *err) {
  if (!negbank_name_ok(name))
    return foil_err_set(err, FOIL_EINVAL, "negatives bank name \"%.200s\" must be 1 to 128 characters of "
                        "[A-Za-z0-9._-]", name ? name : "");
  int w = snprintf(out, n, "%s/negatives/%s.h5", root, name);
  return w < 0 || (size_t)w >= n ? foil_err_set(err, FOIL_EINVAL, "negatives bank path too long under %s", root)
                                 : FOIL_OK;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

uint64_t negbank_fingerprint(const dataset_pairs *p) {
  uint64_t h = 0xcbf29ce484222325ull, n = p->n;
  h = fnv(h, &n, sizeof n);
  for (size_t i = 0; i < p->n; i++) {
    const char *t[2] = {p->query[i], p->positive[i]};
    for (int k = 0; k < 2; k++) {
      uint64_t len = strlen(t[k]);
      h = fnv(fnv(h, &len, sizeof len), t[k], len);
    }
  }
  return h;
}

int negbank_write(const char *path, const negbank *b, foil_err *err) {
  const negbank_meta *m = &b->meta;
  if (m->n_pairs < 0 || m->m < 1 || !b->rows || !b->texts)
    return foil_err_set(err, FOIL_EINVAL, "negbank_write %s: %lld pairs of %d negatives: need m >= 1 and the "
                        "rows and texts", path, (long long)m->n_pairs, m->m);
  size_t total = (size_t)m->n_pairs * (size_t)m->m;
  foil_tmp_sweep_path(path); /* a killed writer's leftover of this bank: one readdir */
  h5io *f = NULL;
  int rc = h5io_create(&f, path, NEGBANK_FORMAT, err);
  if (rc) return rc;
  uint64_t dims[2] = {(uint64_t)m->n_pairs, (uint64_t)m->m};
  char fp[17];
  snprintf(fp, sizeof fp, "%016" PRIx64, m->fingerprint);
  double created = m->created > 0 ? m->created : (double)time(NULL);
  if (!rc) rc = h5io_write_i64(f, "rows", b->rows, 2, dims, err);
  if (!rc) rc = h5io_write_strings(f, "texts", (const char *const *)b->texts, total, err);
  if (!rc) rc = h5io_attr_str(f, "/", "index", m->index, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "version", m->version, err);
  if (!rc) rc = h5io_attr_str(f, "/", "checkpoint", m->checkpoint, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "step", m->step, err);
  if (!rc) rc = h5io_attr_str(f, "/", "dataset", m->dataset, err);
  if (!rc) rc = h5io_attr_str(f, "/", "split", m->split, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "n_pairs", m->n_pairs, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "m", m->m, err);
  if (!rc) rc = h5io_attr_str(f, "/", "fingerprint", fp, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "skip_top", m->skip_top, err);
  if (!rc) rc = h5io_attr_f64(f, "/", "margin", m->margin, err);
  if (!rc) rc = h5io_attr_f64(f, "/", "created", created, err);
  if (rc) {
    h5io_abandon(&f);
    return rc;
  }
  return h5io_publish(&f, err);
}

int negbank_cmp(const negbank_meta *cand, const char *index, int version) {
  if (version <= 0 || !index || strcmp(cand->index, index)) return 1;
  return cand->version > version ? 1 : cand->version == version ? 0 : -1;
}

int negbank_write_newer(const char *path, const negbank *b, int *kept, foil_err *err) {
  if (kept) *kept = 0;
  char lock[4400];
  int w = snprintf(lock, sizeof lock, "%s.lock", path);
  if (w < 0 || (size_t)w >= sizeof lock) return foil_err_set(err, FOIL_EINVAL, "negatives bank path too long: %s", path);
  int fd = -1, rc = foil_mkdirs_parent(path, err);
  if (!rc) rc = foil_lock(lock, &fd, err);
  if (rc) return rc;
  negbank_meta have;
  foil_err e = {0};
  if (!negbank_read_meta(path, &have, &e) && negbank_cmp(&b->meta, have.index, have.version) < 0) {
    if (kept) *kept = have.version;  /* a newer bank is there: it stays */
  } else {
    rc = negbank_write(path, b, err);
  }
  foil_unlock(&fd);
  return rc;
}

/* A string attribute into a fixed buffer. */
static int attr_str(h5io *f, const char *key, char *out, size_t n, foil_err *err) {
  char *v = NULL;
  int rc = h5io_get_attr_str(f, "/", key, &v, err);
  if (!rc && strlen(v) >= n) rc = foil_err_set(err, FOIL_EINVAL, "%s: attribute %s is too long", h5io_path(f), key);
  if (!rc) memcpy(out, v, strlen(v) + 1);
  free(v);
  return rc;
}

static int read_meta(h5io *f, negbank_meta *m, foil_err *err) {
  memset(m, 0, sizeof *m);
  int64_t version = 0, mm = 0, skip = 0;
  char fp[32];
  int rc = attr_str(f, "index", m->index, sizeof m->index, err);
  if (!rc) rc = h5io_get_attr_i64(f, "/", "version", &version, err);
  if (!rc) rc = attr_str(f, "checkpoint", m->checkpoint, sizeof m->checkpoint, err);
  if (!rc) rc = h5io_get_attr_i64(f, "/", "step", &m->step, err);
  if (!rc) rc = attr_str(f, "dataset", m->dataset, sizeof m->dataset, err);
  if (!rc) rc = attr_str(f, "split", m->split, sizeof m->split, err);
  if (!rc) rc = h5io_get_attr_i64(f, "/", "n_pairs", &m->n_pairs, err);
  if (!rc) rc = h5io_get_attr_i64(f, "/", "m", &mm, err);
  if (!rc) rc = attr_str(f, "fingerprint", fp, sizeof fp, err);
  if (!rc) rc = h5io_get_attr_i64(f, "/", "skip_top", &skip, err);
  if (!rc) rc = h5io_get_attr_f64(f, "/", "margin", &m->margin, err);
  if (!rc) rc = h5io_get_attr_f64(f, "/", "created", &m->created, err);
  if (rc) return rc;
  char *end = NULL;
  m->fingerprint = strtoull(fp, &end, 16);
  if (strlen(fp) != 16 || *end)
    return foil_err_set(err, FOIL_EINVAL, "%s: fingerprint \"%s\" is not 16 hex digits", h5io_path(f), fp);
  if (version < 1 || version > INT32_MAX || mm < 1 || mm > 1 << 20 || m->n_pairs < 0 || skip < 0 || skip > INT32_MAX)
    return foil_err_set(err, FOIL_EINVAL, "%s: version %lld, m %lld, n_pairs %lld, skip_top %lld out of range",
                        h5io_path(f), (long long)version, (long long)mm, (long long)m->n_pairs, (long long)skip);
  m->version = (int)version, m->m = (int)mm, m->skip_top = (int)skip;
  return FOIL_OK;
}

int negbank_read_meta(const char *path, negbank_meta *m, foil_err *err) {
  h5io *f = NULL;
  int rc = h5io_open(&f, path, NEGBANK_FORMAT, err);
  if (!rc) rc = read_meta(f, m, err);
  h5io_close(&f);
  return rc;
}

void negbank_free(negbank *b) {
  if (!b) return;
  size_t total = (size_t)b->meta.n_pairs * (size_t)(b->meta.m > 0 ? b->meta.m : 0);
  free(b->rows);
  if (b->texts) h5io_free_strings(b->texts, total);
  memset(b, 0, sizeof *b);
}

int negbank_read(const char *path, negbank *b, foil_err *err) {
  memset(b, 0, sizeof *b);
  h5io *f = NULL;
  int rc = h5io_open(&f, path, NEGBANK_FORMAT, err);
  if (!rc) rc = read_meta(f, &b->meta, err);
  size_t total = (size_t)b->meta.n_pairs * (size_t)b->meta.m, nr = 0, nt = 0;
  int ndim = 0;
  uint64_t dims[8];
  if (!rc) rc = h5io_shape(f, "rows", &ndim, dims, err);
  if (!rc && (ndim != 2 || dims[0] != (uint64_t)b->meta.n_pairs || dims[1] != (uint64_t)b->meta.m))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: /rows is not [%lld, %d] as n_pairs and m say", path,
                      (long long)b->meta.n_pairs, b->meta.m);
  if (!rc) rc = h5io_read_i64(f, "rows", &b->rows, &nr, err);
  if (!rc) rc = h5io_read_strings(f, "texts", &b->texts, &nt, err);
  if (!rc && nt != total) {
    h5io_free_strings(b->texts, nt);
    b->texts = NULL;
    rc = foil_err_set(err, FOIL_EINVAL, "%s: /texts has %zu entries, /rows %zu", path, nt, total);
  }
  for (size_t i = 0; !rc && i < total; i++)
    if (b->rows[i] < -1 || (b->rows[i] == -1 && b->texts[i][0]))
      rc = foil_err_set(err, FOIL_EINVAL, "%s: entry %zu (pair %zu): row %lld%s", path, i, i / (size_t)b->meta.m,
                        (long long)b->rows[i], b->rows[i] < -1 ? " is below -1" : " (none) has a text");
  h5io_close(&f);
  if (rc) negbank_free(b);
  return rc;
}

int negbank_check(const negbank_meta *b, const char *path, const char *split, int64_t n_pairs,
                  uint64_t fingerprint, int m, foil_err *err) {
  if (strcmp(b->split, split) || b->n_pairs != n_pairs || b->fingerprint != fingerprint)
    return foil_err_set(err, FOIL_EPRECOND, "%s was mined for split %s of %s (%lld pairs, fingerprint %016" PRIx64
                        "), not for this data (split %s, %lld pairs, fingerprint %016" PRIx64 "): mine it again "
                        "from this dataset", path, b->split, b->dataset, (long long)b->n_pairs, b->fingerprint,
                        split, (long long)n_pairs, fingerprint);
  if (b->m < m)
    return foil_err_set(err, FOIL_EPRECOND, "%s holds %d negatives per pair, %d are wanted (loss.hard_negatives): "
                        "mine with \"top\" >= %d", path, b->m, m, m);
  return FOIL_OK;
}
