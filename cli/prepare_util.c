/* prepare_util.c — shared tools of `foil data prepare` (see prepare_util.h). */
#define _POSIX_C_SOURCE 200809L
#include "cli/prepare_util.h"
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- vectors ----------------------------------------------------------------- */
static int grow(void **v, size_t *cap, size_t need, size_t elem, foil_err *err) {
  if (need <= *cap) return FOIL_OK;
  size_t c = *cap ? *cap * 2 : 64;
  while (c < need) c *= 2;
  void *p = realloc(*v, c * elem);
  if (!p) return foil_err_set(err, FOIL_ENOMEM, "out of memory (%zu elements)", c);
  *v = p;
  *cap = c;
  return FOIL_OK;
}

int prep_strv_push(prep_strv *s, char *str, foil_err *err) {
  int rc = grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v, err);
  if (rc) return rc;
  s->v[s->n++] = str;
  return FOIL_OK;
}

void prep_strv_free(prep_strv *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

int prep_i64v_push(prep_i64v *s, int64_t x, foil_err *err) {
  int rc = grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v, err);
  if (rc) return rc;
  s->v[s->n++] = x;
  return FOIL_OK;
}

void prep_i64v_free(prep_i64v *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* ---- arena ----------------------------------------------------------------------- */
struct prep_chunk {
  prep_chunk *next;
  size_t used, cap;
  char data[];
};

char *prep_pool_dup(prep_pool *p, const char *s, size_t len) {
  prep_chunk *c = p->head;
  if (!c || c->cap - c->used < len + 1) {
    size_t cap = len + 1 > (1u << 20) ? len + 1 : (1u << 20);
    prep_chunk *n = malloc(sizeof *n + cap);
    if (!n) return NULL;
    n->next = p->head;
    n->used = 0;
    n->cap = cap;
    p->head = c = n;
  }
  char *d = c->data + c->used;
  if (len) memcpy(d, s, len);
  d[len] = '\0';
  c->used += len + 1;
  return d;
}

void prep_pool_free(prep_pool *p) {
  prep_chunk *c = p->head;
  while (c) {
    prep_chunk *n = c->next;
    free(c);
    c = n;
  }
  p->head = NULL;
}

/* ---- hashes ------------------------------------------------------------------------- */
uint64_t prep_hash(const void *data, size_t len) {
  const unsigned char *b = data;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t prep_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

int64_t prep_group_key(const char *s, size_t len) { return (int64_t)(prep_hash(s, len) >> 1); }

double prep_unit(uint64_t seed, uint64_t key) {
  uint64_t x = prep_mix(key ^ prep_mix(seed));
  return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- map --------------------------------------------------------------------------------- */
static size_t slot_of(const prep_map *m, const char *key, size_t len, int *found) {
  size_t mask = m->cap - 1, i = prep_mix(prep_hash(key, len)) & mask;
  for (;;) {
    if (!m->key[i]) {
      *found = 0;
      return i;
    }
    if (m->klen[i] == len && memcmp(m->key[i], key, len) == 0) {
      *found = 1;
      return i;
    }
    i = (i + 1) & mask;
  }
}

int64_t prep_map_get(const prep_map *m, const char *key, size_t len) {
  if (!m->cap) return -1;
  int found;
  size_t i = slot_of(m, key, len, &found);
  return found ? m->val[i] : -1;
}

static int map_rehash(prep_map *m, size_t cap, foil_err *err) {
  prep_map n = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(size_t)),
                calloc(cap, sizeof(int64_t)), cap, m->n};
  if (!n.key || !n.klen || !n.val) {
    free(n.key);
    free(n.klen);
    free(n.val);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory (hash map of %zu slots)", cap);
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->key[i]) continue;
    int found;
    size_t j = slot_of(&n, m->key[i], m->klen[i], &found);
    n.key[j] = m->key[i];
    n.klen[j] = m->klen[i];
    n.val[j] = m->val[i];
  }
  prep_map_free(m);
  *m = n;
  return FOIL_OK;
}

int prep_map_put(prep_map *m, const char *key, size_t len, int64_t val, int64_t *old,
                 foil_err *err) {
  if ((m->n + 1) * 2 > m->cap) {
    int rc = map_rehash(m, m->cap ? m->cap * 2 : 1024, err);
    if (rc) return rc;
  }
  int found;
  size_t i = slot_of(m, key, len, &found);
  if (old) *old = found ? m->val[i] : -1;
  if (found) return FOIL_OK;
  m->key[i] = key;
  m->klen[i] = len;
  m->val[i] = val;
  m->n++;
  return FOIL_OK;
}

void prep_map_free(prep_map *m) {
  free(m->key);
  free(m->klen);
  free(m->val);
  memset(m, 0, sizeof *m);
}

/* ---- UTF-8 ------------------------------------------------------------------------------- */
int prep_utf8_valid(const char *s, size_t n, size_t *bad) {
  for (size_t i = 0, k; i < n; i += k)
    if (!(k = foil_utf8_seq(s + i, n - i))) {
      if (bad) *bad = i;
      return 0;
    }
  return 1;
}

/* ---- files --------------------------------------------------------------------------------- */
int prep_read_file(const char *path, char **buf, size_t *n, foil_err *err) {
  return foil_read_file(path, buf, n, err);
}

int prep_mkdirs(const char *dir, foil_err *err) { return foil_mkdirs(dir, err); }

char *prep_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

int prep_write_file(const char *path, const char *data, size_t n, foil_err *err) {
  int rc = foil_mkdirs_parent(path, err);
  return rc ? rc : foil_write_file_atomic(path, data, n, err);
}

/* ---- provenance ------------------------------------------------------------------------------ */
static char created_by[1024];

void prep_set_created_by(const char *cmdline) {
  snprintf(created_by, sizeof created_by, "%s", cmdline ? cmdline : "");
}

const char *prep_created_by(const char *fallback) {
  return created_by[0] ? created_by : fallback;
}
