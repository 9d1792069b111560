/* prepare_wordnet.c — `foil data prepare wordnet`: definition -> lemma and
 * synonym pairs from Princeton WordNet 3.0 (Debian's wordnet-base), a
 * held-out split by synset, and reverse-dictionary benchmarks
 * (docs/datasets.md, "wordnet"). */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/prepare.h"
#include "cli/prepare_util.h"
#include "storage/dataset.h"

/* ---- parsing one data line ------------------------------------------------------------- */

/* Next space-separated token; NUL-terminates it in place. */
static char *token(char **cur) {
  char *p = *cur;
  while (*p == ' ') p++;
  if (!*p) {
    *cur = p;
    return NULL;
  }
  char *t = p;
  while (*p && *p != ' ') p++;
  if (*p) *p++ = '\0';
  *cur = p;
  return t;
}

static int all_in(const char *t, const char *set, size_t len) {
  if (strlen(t) != len) return 0;
  for (size_t i = 0; i < len; i++)
    if (!strchr(set, t[i])) return 0;
  return 1;
}

#define DIGITS "0123456789"
#define HEX "0123456789abcdefABCDEF"

size_t wordnet_definition_len(const char *gloss) {
  size_t n = strlen(gloss), cut = n;
  for (size_t i = 0; i < n; i++) {
    if (gloss[i] != '"') continue;
    size_t j = i;
    while (j > 0 && gloss[j - 1] == ' ') j--;
    if (j == 0 || gloss[j - 1] == ';' || gloss[j - 1] == ':') {
      cut = j;
      break;
    }
  }
  while (cut > 0 && (gloss[cut - 1] == ' ' || gloss[cut - 1] == ';' || gloss[cut - 1] == ':')) cut--;
  return cut;
}

int wordnet_parse_line(char *line, wordnet_synset *s, const char *file, long lineno, foil_err *err) {
  size_t len = strlen(line);
  while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
  if (len == 0 || (line[0] == ' ' && line[1] == ' ')) return 0;
  memset(s, 0, sizeof *s);
  char *cur = line, *t;
#define BAD(...) foil_err_set(err, FOIL_EINVAL, "%s:%ld: " __VA_ARGS__)
  if (!(t = token(&cur)) || !all_in(t, DIGITS, 8))
    return BAD("expected an 8-digit synset offset", file, lineno);
  s->offset = (uint32_t)strtoul(t, NULL, 10);
  if (!(t = token(&cur)) || !all_in(t, DIGITS, 2))
    return BAD("expected a 2-digit lex_filenum", file, lineno);
  s->lex_filenum = atoi(t);
  if (!(t = token(&cur)) || strlen(t) != 1 || !strchr("nvasr", t[0]))
    return BAD("expected ss_type n, v, a, s or r", file, lineno);
  s->ss_type = t[0];
  if (!(t = token(&cur)) || !all_in(t, HEX, 2) || !(s->w_cnt = (int)strtol(t, NULL, 16)))
    return BAD("expected w_cnt as 2 hexadecimal digits (not 00)", file, lineno);
  for (int i = 0; i < s->w_cnt; i++) {
    char *w = token(&cur), *lex = w ? token(&cur) : NULL;
    if (!w || !lex || !all_in(lex, HEX, 1))
      return BAD("word %d of %d: expected a word and a 1-digit hexadecimal lex_id", file, lineno,
                 i + 1, s->w_cnt);
    size_t wl = strlen(w);
    if (s->ss_type == 'a' || s->ss_type == 's') { /* syntactic marker of adjectives */
      static const char *const marks[] = {"(a)", "(p)", "(ip)"};
      for (int m = 0; m < 3; m++) {
        size_t ml = strlen(marks[m]);
        if (wl > ml && !strcmp(w + wl - ml, marks[m])) {
          w[wl -= ml] = '\0';
          break;
        }
      }
    }
    for (char *p = w; *p; p++)
      if (*p == '_') *p = ' ';
    s->words[i] = w;
  }
  if (!(t = token(&cur)) || !all_in(t, DIGITS, 3))
    return BAD("expected a 3-digit pointer count", file, lineno);
  s->p_cnt = atoi(t);
  for (int i = 0; i < s->p_cnt; i++) {
    char *sym = token(&cur), *off = sym ? token(&cur) : NULL, *pos = off ? token(&cur) : NULL,
         *st = pos ? token(&cur) : NULL;
    if (!st || !all_in(off, DIGITS, 8) || strlen(pos) != 1 || !strchr("nvasr", pos[0]) ||
        !all_in(st, HEX, 4))
      return BAD("pointer %d of %d: expected symbol, 8-digit offset, pos and 4 hexadecimal "
                 "digits", file, lineno, i + 1, s->p_cnt);
  }
  if (s->ss_type == 'v') { /* verb frames: f_cnt, then "+ f_num w_num" each */
    char *fc = token(&cur);
    if (!fc || !all_in(fc, DIGITS, 2)) return BAD("expected a 2-digit verb frame count", file, lineno);
    int f_cnt = atoi(fc);
    for (int i = 0; i < f_cnt; i++) {
      char *plus = token(&cur), *fn = plus ? token(&cur) : NULL, *wn = fn ? token(&cur) : NULL;
      if (!wn || strcmp(plus, "+") || !all_in(fn, DIGITS, 2) || !all_in(wn, HEX, 2))
        return BAD("verb frame %d of %d: expected '+ f_num w_num'", file, lineno, i + 1, f_cnt);
    }
  }
  while (*cur == ' ') cur++;
  if (*cur != '|') return BAD("expected '|' before the gloss", file, lineno);
  cur++;
  while (*cur == ' ') cur++;
  size_t gl = strlen(cur);
  while (gl && cur[gl - 1] == ' ') cur[--gl] = '\0';
  s->gloss = cur;
  s->def_len = wordnet_definition_len(cur);
  return 1;
#undef BAD
}

/* ---- building the dataset ------------------------------------------------------------------ */

typedef struct {
  int64_t group;    /* file index * 10^8 + offset: unique over WordNet */
  char id[16];      /* "00001740-n" */
  char *definition; /* pooled; "" when the gloss has only examples */
  int64_t def_id;
  size_t lem_at, n_lem; /* into lemma id list */
  int split;        /* 0 train, 1 dev, 2 test */
} synset;

typedef struct {
  prep_pool pool;
  synset *syn;
  size_t n_syn, cap_syn;
  prep_i64v syn_lemmas; /* lemma ids, per synset */
  prep_map lemma_map, def_map;
  prep_strv lemmas;     /* lemma id -> text */
  prep_strv defs;       /* def id -> text */
  prep_i64v def_count;
} wn;

static void wn_free(wn *w) {
  prep_pool_free(&w->pool);
  free(w->syn);
  prep_i64v_free(&w->syn_lemmas);
  prep_map_free(&w->lemma_map);
  prep_map_free(&w->def_map);
  prep_strv_free(&w->lemmas);
  prep_strv_free(&w->defs);
  prep_i64v_free(&w->def_count);
}

static int intern(prep_pool *pool, prep_map *m, prep_strv *texts, const char *s, size_t len,
                  int64_t *id, foil_err *err) {
  int64_t got = prep_map_get(m, s, len);
  if (got >= 0) {
    *id = got;
    return FOIL_OK;
  }
  char *c = prep_pool_dup(pool, s, len);
  if (!c) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  *id = (int64_t)texts->n;
  int rc = prep_strv_push(texts, c, err);
  if (!rc) rc = prep_map_put(m, c, len, *id, NULL, err);
  return rc;
}

static int read_pos_file(wn *w, const char *dir, const char *pos, int file_index, foil_err *err) {
  char *path = prep_asprintf("%s/data.%s", dir, pos), *buf = NULL;
  if (!path) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  size_t n;
  int rc = prep_read_file(path, &buf, &n, err);
  if (rc == FOIL_ENOTFOUND)
    foil_err_set(err, rc, "%s not found: install Debian's wordnet-base (apt-get install wordnet-base)",
                 path);
  size_t bad;
  if (!rc && !prep_utf8_valid(buf, n, &bad))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: invalid UTF-8 at byte %zu", path, bad);
  long lineno = 0;
  char *line = buf;
  wordnet_synset *s = rc ? NULL : malloc(sizeof *s);
  if (!rc && !s) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  while (!rc && line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    lineno++;
    int got = wordnet_parse_line(line, s, path, lineno, err);
    if (got < 0) rc = got;
    if (got == 1) {
      if (w->n_syn == w->cap_syn) {
        size_t c = w->cap_syn ? w->cap_syn * 2 : 1 << 16;
        synset *ns = realloc(w->syn, c * sizeof *ns);
        if (!ns) {
          rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
          break;
        }
        w->syn = ns;
        w->cap_syn = c;
      }
      synset *y = &w->syn[w->n_syn];
      memset(y, 0, sizeof *y);
      y->group = (int64_t)file_index * 100000000 + s->offset;
      snprintf(y->id, sizeof y->id, "%08u-%c", (unsigned)s->offset, s->ss_type);
      if (!rc) rc = intern(&w->pool, &w->def_map, &w->defs, s->gloss, s->def_len, &y->def_id, err);
      if (!rc && (size_t)y->def_id == w->def_count.n) rc = prep_i64v_push(&w->def_count, 0, err);
      if (!rc) {
        w->def_count.v[y->def_id]++;
        y->definition = w->defs.v[y->def_id];
        y->lem_at = w->syn_lemmas.n;
      }
      for (int i = 0; !rc && i < s->w_cnt; i++) {
        int64_t id = -1;
        rc = intern(&w->pool, &w->lemma_map, &w->lemmas, s->words[i], strlen(s->words[i]), &id, err);
        int dup = 0;
        for (size_t k = y->lem_at; !rc && k < w->syn_lemmas.n; k++) dup |= w->syn_lemmas.v[k] == id;
        if (!rc && !dup) rc = prep_i64v_push(&w->syn_lemmas, id, err);
      }
      if (!rc) {
        y->n_lem = w->syn_lemmas.n - y->lem_at;
        w->n_syn++;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  free(s);
  free(buf);
  free(path);
  return rc;
}

typedef struct {
  uint64_t key;
  size_t i;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

static const char *const *sort_strs_base;
static int cmp_by_str(const void *a, const void *b) {
  return strcmp(sort_strs_base[*(const int64_t *)a], sort_strs_base[*(const int64_t *)b]);
}

/* A growable set of pair columns for one split. */
typedef struct {
  prep_strv q, p;
  prep_i64v g;
} pair_cols;

static int add_pair(pair_cols *c, char *q, char *p, int64_t g, foil_err *err) {
  int rc = prep_strv_push(&c->q, q, err);
  if (!rc) rc = prep_strv_push(&c->p, p, err);
  if (!rc) rc = prep_i64v_push(&c->g, g, err);
  return rc;
}

static void pair_cols_free(pair_cols *c) {
  prep_strv_free(&c->q);
  prep_strv_free(&c->p);
  prep_i64v_free(&c->g);
}

int prepare_wordnet_with(const char *root, uint64_t seed, const wordnet_opts *o, foil_err *err) {
  static const char *const pos[4] = {"noun", "verb", "adj", "adv"};
  const char *name = o->name ? o->name : "wordnet";
  wn w = {0};
  pair_cols cols[3];
  memset(cols, 0, sizeof cols);
  keyed *order = NULL;
  int64_t *corpus_order = NULL, *corpus_row = NULL;
  h5io *files[3] = {NULL, NULL, NULL};
  char *paths[3] = {NULL, NULL, NULL}, *license_path = NULL, *license = NULL, *lic_out = NULL;
  dataset_bench bench[2];
  memset(bench, 0, sizeof bench);
  prep_i64v qrels[2] = {{0}};
  prep_strv bq[2] = {{0}}, bqid[2] = {{0}};
  int rc = FOIL_OK;

  for (int f = 0; f < 4 && !rc; f++) rc = read_pos_file(&w, o->dir, pos[f], f + 1, err);

  /* the licence, read now so a missing one fails before anything is written */
  size_t lic_n = 0;
  if (!rc) rc = prep_read_file(o->license, &license, &lic_n, err);

  /* held-out synsets: a non-empty definition of their own, ordered by a seeded hash of the group */
  size_t n_elig = 0;
  if (!rc && !(order = malloc((w.n_syn ? w.n_syn : 1) * sizeof *order)))
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < w.n_syn; i++) {
    synset *y = &w.syn[i];
    /* a definition that is also some lemma ("snow bunting") would meet itself as a
     * synonym query in train: not held out */
    if (y->definition[0] && w.def_count.v[y->def_id] == 1 && y->n_lem > 0 &&
        prep_map_get(&w.lemma_map, y->definition, strlen(y->definition)) < 0)
      order[n_elig++] = (keyed){prep_mix((uint64_t)y->group ^ prep_mix(seed)), i};
  }
  if (!rc && n_elig < (size_t)o->n_test + (size_t)o->n_dev)
    rc = foil_err_set(err, FOIL_EPRECOND,
                      "%s: only %zu synsets have a definition of their own (not shared, not a lemma); "
                      "%d test + %d dev needed",
                      o->dir, n_elig, o->n_test, o->n_dev);
  if (!rc) {
    qsort(order, n_elig, sizeof *order, cmp_keyed);
    for (size_t k = 0; k < (size_t)o->n_test + (size_t)o->n_dev; k++)
      w.syn[order[k].i].split = k < (size_t)o->n_test ? 2 : 1;
  }

  /* pairs: definition -> lemma, then lemma -> each other lemma of the synset */
  for (size_t i = 0; !rc && i < w.n_syn; i++) {
    synset *y = &w.syn[i];
    pair_cols *c = &cols[y->split];
    const int64_t *lem = w.syn_lemmas.v + y->lem_at;
    for (size_t a = 0; !rc && a < y->n_lem && y->definition[0]; a++)
      rc = add_pair(c, y->definition, w.lemmas.v[lem[a]], y->group, err);
    for (size_t a = 0; !rc && a < y->n_lem; a++)
      for (size_t b = 0; !rc && b < y->n_lem; b++)
        if (a != b) rc = add_pair(c, w.lemmas.v[lem[a]], w.lemmas.v[lem[b]], y->group, err);
  }

  /* corpus: every distinct lemma, sorted bytewise */
  size_t nl = w.lemmas.n;
  if (!rc && (!(corpus_order = malloc((nl + 1) * sizeof(int64_t))) ||
              !(corpus_row = malloc((nl + 1) * sizeof(int64_t)))))
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  char **corpus = NULL;
  if (!rc && !(corpus = malloc((nl + 1) * sizeof *corpus)))
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  if (!rc) {
    for (size_t i = 0; i < nl; i++) corpus_order[i] = (int64_t)i;
    sort_strs_base = (const char *const *)w.lemmas.v;
    qsort(corpus_order, nl, sizeof *corpus_order, cmp_by_str);
    for (size_t r = 0; r < nl; r++) {
      corpus_row[corpus_order[r]] = (int64_t)r;
      corpus[r] = w.lemmas.v[corpus_order[r]];
    }
  }

  /* benchmarks: test (split 2) and dev (split 1); queries in synset order */
  for (int b = 0; b < 2 && !rc; b++) {
    int split = b == 0 ? 2 : 1;
    for (size_t i = 0; !rc && i < w.n_syn; i++) {
      synset *y = &w.syn[i];
      if (y->split != split) continue;
      int64_t qrow = (int64_t)bq[b].n;
      rc = prep_strv_push(&bq[b], y->definition, err);
      if (!rc) rc = prep_strv_push(&bqid[b], y->id, err);
      for (size_t a = 0; !rc && a < y->n_lem; a++) {
        rc = prep_i64v_push(&qrels[b], qrow, err);
        if (!rc) rc = prep_i64v_push(&qrels[b], corpus_row[w.syn_lemmas.v[y->lem_at + a]], err);
      }
    }
    bench[b] = (dataset_bench){.n_queries = bq[b].n, .n_corpus = nl, .n_qrels = qrels[b].n / 2,
                               .queries = bq[b].v, .query_ids = bqid[b].v, .corpus = corpus,
                               .corpus_ids = corpus, .qrels = qrels[b].v};
  }

  /* write everything under temporary names, then publish */
  dataset_meta meta = {"WordNet 3.0 (Debian wordnet-base: data.noun, data.verb, data.adj, data.adv)",
                       prep_created_by("foil data prepare wordnet"), seed};
  if (!rc) {
    paths[0] = prep_asprintf("%s/datasets/%s/pairs.h5", root, name);
    paths[1] = prep_asprintf("%s/datasets/%s/benchmarks/test.h5", root, name);
    paths[2] = prep_asprintf("%s/datasets/%s/benchmarks/dev.h5", root, name);
    license_path = prep_asprintf("%s/datasets/%s/LICENSE", root, name);
    lic_out = prep_asprintf("WordNet 3.0, as packaged by Debian (wordnet-base), from which the files in\n"
                            "this directory were derived by `foil data prepare wordnet`. Its licence\n"
                            "(%s) follows.\n\n%s", o->license, license);
    if (!paths[0] || !paths[1] || !paths[2] || !license_path || !lic_out)
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  dataset_pairs sp[3];
  for (int s = 0; s < 3; s++)
    sp[s] = (dataset_pairs){.n = cols[s].q.n, .query = cols[s].q.v, .positive = cols[s].p.v,
                            .group = cols[s].g.v};
  const dataset_pairs *spp[3] = {&sp[0], &sp[1], &sp[2]};
  if (!rc) rc = dataset_pairs_create(&files[0], paths[0], spp, 0, &meta, err);
  if (!rc) rc = dataset_bench_create(&files[1], paths[1], &bench[0], &meta, err);
  if (!rc) rc = dataset_bench_create(&files[2], paths[2], &bench[1], &meta, err);
  if (!rc) rc = prep_write_file(license_path, lic_out, strlen(lic_out), err);
  for (int k = 0; k < 3 && !rc; k++) rc = h5io_publish(&files[k], err);
  for (int k = 0; k < 3; k++) h5io_abandon(&files[k]);

  if (!rc)
    printf("wordnet: %zu synsets, %zu distinct lemmas, %zu with a definition of their own (can be held out)\n"
           "  pairs.h5: train %zu, dev %zu, test %zu pairs\n"
           "  benchmarks/test.h5: %zu queries, %zu docs, %zu qrels; benchmarks/dev.h5: %zu queries, "
           "%zu qrels\n  -> %s/datasets/%s\n",
           w.n_syn, nl, n_elig, cols[0].q.n, cols[1].q.n, cols[2].q.n, bench[0].n_queries, nl,
           bench[0].n_qrels, bench[1].n_queries, bench[1].n_qrels, root, name);

  for (int b = 0; b < 2; b++) {
    prep_i64v_free(&qrels[b]);
    prep_strv_free(&bq[b]);
    prep_strv_free(&bqid[b]);
  }
  for (int s = 0; s < 3; s++) pair_cols_free(&cols[s]);
  for (int k = 0; k < 3; k++) free(paths[k]);
  free(license_path);
  free(license);
  free(lic_out);
  free(corpus);
  free(corpus_order);
  free(corpus_row);
  free(order);
  wn_free(&w);
  return rc;
}

int prepare_wordnet(const char *root, uint64_t seed, foil_err *err) {
  wordnet_opts o = {"/usr/share/wordnet", "/usr/share/doc/wordnet-base/copyright", 2000, 1000, NULL};
  return prepare_wordnet_with(root, seed, &o, err);
}
