/* prepare_custom.c — `foil data prepare custom`: a user's own pairs,
 * corpus and BEIR-style benchmark, checked line by line and written in
 * foil's formats (docs/datasets.md, "custom"). */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/prepare.h"
#include "cli/prepare_util.h"
#include "storage/dataset.h"

/* ---- reading lines ---------------------------------------------------------------------- */

typedef struct {
  FILE *f;
  const char *path;
  char *buf;
  size_t cap;
  long lineno;
} line_reader;

static int lr_open(line_reader *r, const char *path, foil_err *err) {
  memset(r, 0, sizeof *r);
  r->path = path;
  r->f = fopen(path, "rb");
  if (!r->f)
    return foil_err_set(err, errno == ENOENT ? FOIL_ENOTFOUND : FOIL_EPERM, "cannot open %s: %s",
                        path, strerror(errno));
  return FOIL_OK;
}

static void lr_close(line_reader *r) {
  if (r->f) fclose(r->f);
  free(r->buf);
  memset(r, 0, sizeof *r);
}

/* Next non-blank line, without its line ending and (line 1) a UTF-8 BOM.
 * Returns 1, 0 at the end, or an error for invalid UTF-8. */
static int lr_next(line_reader *r, char **line, size_t *len, foil_err *err) {
  for (;;) {
    errno = 0;
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n < 0) {
      if (ferror(r->f)) return foil_err_set(err, FOIL_EPERM, "%s: read error: %s", r->path, strerror(errno));
      return 0;
    }
    r->lineno++;
    char *s = r->buf;
    size_t l = (size_t)n;
    while (l && (s[l - 1] == '\n' || s[l - 1] == '\r')) s[--l] = '\0';
    if (r->lineno == 1 && l >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) s += 3, l -= 3;
    size_t bad;
    if (!prep_utf8_valid(s, l, &bad))
      return foil_err_set(err, FOIL_EINVAL, "%s:%ld: invalid UTF-8 (byte 0x%02X at column %zu)",
                          r->path, r->lineno, (unsigned char)s[bad], bad + 1);
    if (memchr(s, '\0', l))
      return foil_err_set(err, FOIL_EINVAL, "%s:%ld: contains a NUL byte", r->path, r->lineno);
    size_t k = 0;
    while (k < l && (s[k] == ' ' || s[k] == '\t')) k++;
    if (k == l) continue; /* blank line */
    *line = s;
    *len = l;
    return 1;
  }
}

static int is_jsonl(const char *path, foil_err *err) {
  const char *dot = strrchr(path, '.');
  if (dot && (!strcmp(dot, ".jsonl") || !strcmp(dot, ".json"))) return 1;
  if (dot && (!strcmp(dot, ".tsv") || !strcmp(dot, ".txt"))) return 0;
  return foil_err_set(err, FOIL_EINVAL, "%s: unknown format: name the file .jsonl or .tsv", path);
}

/* Checks one text and copies it (malloc'ed) into *out. */
static int take_text(const line_reader *r, const char *what, const char *s, size_t n, char **out,
                     foil_err *err) {
  *out = NULL;
  if (n == 0) return foil_err_set(err, FOIL_EINVAL, "%s:%ld: empty %s", r->path, r->lineno, what);
  if (n > PREP_MAX_TEXT)
    return foil_err_set(err, FOIL_EINVAL, "%s:%ld: %s is %zu bytes, over the limit of 1 MiB (%zu bytes)",
                        r->path, r->lineno, what, n, PREP_MAX_TEXT);
  size_t bad;
  if (!prep_utf8_valid(s, n, &bad)) /* JSON \u escapes can still make lone surrogates */
    return foil_err_set(err, FOIL_EINVAL, "%s:%ld: %s is not valid UTF-8 (at byte %zu)", r->path,
                        r->lineno, what, bad);
  char *c = malloc(n + 1);
  if (!c) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  memcpy(c, s, n);
  c[n] = '\0';
  *out = c;
  return FOIL_OK;
}

static cJSON *parse_object(const line_reader *r, const char *s, size_t n, foil_err *err) {
  cJSON *j = cJSON_ParseWithLength(s, n);
  if (!j || !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    foil_err_set(err, FOIL_EINVAL, "%s:%ld: not a JSON object", r->path, r->lineno);
    return NULL;
  }
  return j;
}

static int json_text(const line_reader *r, const cJSON *obj, const char *key, int required,
                     char **out, foil_err *err) {
  *out = NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) {
    if (!required) return FOIL_OK;
    return foil_err_set(err, FOIL_EINVAL, "%s:%ld: missing \"%s\"", r->path, r->lineno, key);
  }
  if (!cJSON_IsString(v))
    return foil_err_set(err, FOIL_EINVAL, "%s:%ld: \"%s\" is not a string", r->path, r->lineno, key);
  if (!required && !v->valuestring[0]) return FOIL_OK; /* an empty optional field (BEIR's titles) */
  return take_text(r, key, v->valuestring, strlen(v->valuestring), out, err);
}

/* ---- pairs -------------------------------------------------------------------------------- */

void custom_pairs_free(custom_pairs *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->query[i]);
    free(p->positive[i]);
  }
  for (size_t i = 0; i < p->n_neg; i++) free(p->neg[i]);
  free(p->query);
  free(p->positive);
  free(p->neg);
  free(p->neg_off);
  memset(p, 0, sizeof *p);
}

static int grow_ptrs(void *pv, size_t need, size_t *cap, size_t elem, foil_err *err) {
  void **p = pv;
  if (need <= *cap) return FOIL_OK;
  size_t c = *cap ? *cap * 2 : 256;
  while (c < need) c *= 2;
  void *n = realloc(*p, c * elem);
  if (!n) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  *p = n;
  *cap = c;
  return FOIL_OK;
}

int custom_read_pairs(const char *path, custom_pairs *out, foil_err *err) {
  memset(out, 0, sizeof *out);
  int json = is_jsonl(path, err);
  if (json < 0) return json;
  line_reader r;
  int rc = lr_open(&r, path, err);
  if (rc) return rc;
  size_t cap = 0, capq = 0, capp = 0, capo = 0;
  rc = grow_ptrs(&out->neg_off, 1, &capo, sizeof *out->neg_off, err);
  if (!rc) out->neg_off[0] = 0;
  char *line;
  size_t len;
  int got;
  while (!rc && (got = lr_next(&r, &line, &len, err)) != 0) {
    if (got < 0) {
      rc = got;
      break;
    }
    char *q = NULL, *p = NULL;
    size_t n0 = out->n_neg;
    if (json) {
      cJSON *j = parse_object(&r, line, len, err);
      if (!j) {
        rc = FOIL_EINVAL;
        break;
      }
      rc = json_text(&r, j, "query", 1, &q, err);
      if (!rc) rc = json_text(&r, j, "positive", 1, &p, err);
      const cJSON *negs = cJSON_GetObjectItemCaseSensitive(j, "negatives");
      if (!rc && negs && !cJSON_IsNull(negs) && !cJSON_IsArray(negs))
        rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: \"negatives\" is not a list of strings", path,
                          r.lineno);
      const cJSON *it;
      if (!rc && negs && cJSON_IsArray(negs))
        cJSON_ArrayForEach(it, negs) {
          if (rc) break;
          if (!cJSON_IsString(it)) {
            rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: \"negatives\" holds a non-string", path, r.lineno);
            break;
          }
          rc = grow_ptrs(&out->neg, out->n_neg + 1, &cap, sizeof *out->neg, err);
          if (!rc) rc = take_text(&r, "negative", it->valuestring, strlen(it->valuestring),
                                  &out->neg[out->n_neg], err);
          if (!rc) out->n_neg++;
        }
      cJSON_Delete(j);
    } else {
      char *tab = memchr(line, '\t', len);
      if (!tab) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: no tab: expected query<TAB>positive[<TAB>negative...]",
                          path, r.lineno);
        break;
      }
      rc = take_text(&r, "query", line, (size_t)(tab - line), &q, err);
      char *f = tab + 1, *end = line + len;
      for (int field = 1; !rc && f <= end; field++) {
        char *t = memchr(f, '\t', (size_t)(end - f));
        size_t fl = t ? (size_t)(t - f) : (size_t)(end - f);
        if (field == 1) {
          rc = take_text(&r, "positive", f, fl, &p, err);
        } else {
          rc = grow_ptrs(&out->neg, out->n_neg + 1, &cap, sizeof *out->neg, err);
          if (!rc) rc = take_text(&r, "negative", f, fl, &out->neg[out->n_neg], err);
          if (!rc) out->n_neg++;
        }
        if (!t) break;
        f = t + 1;
      }
    }
    if (!rc) rc = grow_ptrs(&out->query, out->n + 1, &capq, sizeof *out->query, err);
    if (!rc) rc = grow_ptrs(&out->positive, out->n + 1, &capp, sizeof *out->positive, err);
    if (!rc) rc = grow_ptrs(&out->neg_off, out->n + 2, &capo, sizeof *out->neg_off, err);
    if (rc) {
      free(q);
      free(p);
      for (size_t k = n0; k < out->n_neg; k++) free(out->neg[k]);
      out->n_neg = n0;
      break;
    }
    out->query[out->n] = q;
    out->positive[out->n] = p;
    out->neg_off[++out->n] = out->n_neg;
  }
  if (!rc && out->n == 0) rc = foil_err_set(err, FOIL_EINVAL, "%s: empty: no pairs in the file", path);
  lr_close(&r);
  if (rc) custom_pairs_free(out);
  return rc;
}

/* ---- id -> text records ------------------------------------------------------------------ */

void custom_records_free(custom_records *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->id[i]);
    free(r->text[i]);
  }
  free(r->id);
  free(r->text);
  memset(r, 0, sizeof *r);
}

int custom_read_records(const char *path, const char *what, custom_records *out, foil_err *err) {
  memset(out, 0, sizeof *out);
  int json = is_jsonl(path, err);
  if (json < 0) return json;
  line_reader r;
  int rc = lr_open(&r, path, err);
  if (rc) return rc;
  prep_map seen = {0};
  prep_i64v first_line = {0};
  size_t capi = 0, capt = 0;
  char *line;
  size_t len;
  int got;
  while (!rc && (got = lr_next(&r, &line, &len, err)) != 0) {
    if (got < 0) {
      rc = got;
      break;
    }
    char *id = NULL, *text = NULL, *title = NULL;
    if (json) {
      cJSON *j = parse_object(&r, line, len, err);
      if (!j) {
        rc = FOIL_EINVAL;
        break;
      }
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "_id");
      const char *key = "_id";
      if (!v) v = cJSON_GetObjectItemCaseSensitive(j, "id"), key = "id";
      char num[64];
      if (!v) rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: missing \"_id\" (or \"id\")", path, r.lineno);
      else if (cJSON_IsString(v)) rc = take_text(&r, key, v->valuestring, strlen(v->valuestring), &id, err);
      else if (cJSON_IsNumber(v) && fabs(v->valuedouble) < 9007199254740992.0 /* 2^53 */ &&
               v->valuedouble == (double)(long long)v->valuedouble) {
        /* cJSON keeps numbers as doubles: an integer id is exact up to 2^53
         * only (beyond, distinct ids would collapse into one) */
        snprintf(num, sizeof num, "%lld", (long long)v->valuedouble);
        rc = take_text(&r, key, num, strlen(num), &id, err);
      } else if (cJSON_IsNumber(v) && !(fabs(v->valuedouble) < 9007199254740992.0))
        rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: \"%s\" is a number from 2^53 on, which JSON readers cannot "
                          "keep exact: write it as a string", path, r.lineno, key);
      else rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: \"%s\" is not a string or integer", path, r.lineno, key);
      if (!rc) rc = json_text(&r, j, "text", 1, &text, err);
      if (!rc) rc = json_text(&r, j, "title", 0, &title, err);
      cJSON_Delete(j);
    } else {
      char *tab = memchr(line, '\t', len);
      if (!tab) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: no tab: expected id<TAB>text[<TAB>title]", path, r.lineno);
        break;
      }
      size_t il = (size_t)(tab - line);
      if (r.lineno == 1 && ((il == 3 && !memcmp(line, "_id", 3)) || (il == 2 && !memcmp(line, "id", 2))))
        continue; /* header line */
      char *f = tab + 1, *t2 = memchr(f, '\t', (size_t)(line + len - f));
      rc = take_text(&r, "id", line, il, &id, err);
      if (!rc) rc = take_text(&r, "text", f, t2 ? (size_t)(t2 - f) : (size_t)(line + len - f), &text, err);
      if (!rc && t2 && line + len > t2 + 1)
        rc = take_text(&r, "title", t2 + 1, (size_t)(line + len - t2 - 1), &title, err);
    }
    if (!rc && title && title[0]) { /* "title text", as sentence-transformers joins BEIR docs */
      char *joined = prep_asprintf("%s %s", title, text);
      if (!joined) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      else if (strlen(joined) > PREP_MAX_TEXT) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: title and text are %zu bytes, over the limit of "
                          "1 MiB (%zu bytes)", path, r.lineno, strlen(joined), PREP_MAX_TEXT);
        free(joined);
      } else {
        free(text);
        text = joined;
      }
    }
    free(title);
    int64_t old = -1;
    if (!rc) rc = grow_ptrs(&out->id, out->n + 1, &capi, sizeof *out->id, err);
    if (!rc) rc = grow_ptrs(&out->text, out->n + 1, &capt, sizeof *out->text, err);
    if (!rc) rc = prep_map_put(&seen, id, strlen(id), (int64_t)out->n, &old, err);
    if (!rc && old >= 0)
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: duplicate %s id '%s' (first on line %lld)", path,
                        r.lineno, what, id, (long long)first_line.v[old]);
    if (!rc) rc = prep_i64v_push(&first_line, r.lineno, err);
    if (rc) {
      free(id);
      free(text);
      break;
    }
    out->id[out->n] = id;
    out->text[out->n++] = text;
  }
  if (!rc && out->n == 0) rc = foil_err_set(err, FOIL_EINVAL, "%s: empty: no %s records in the file", path, what);
  lr_close(&r);
  prep_map_free(&seen);
  prep_i64v_free(&first_line);
  if (rc) custom_records_free(out);
  return rc;
}

/* qrels TSV: query-id, corpus-id, score (BEIR header line optional). Rows
 * with score <= 0 are not relevant and are dropped. */
static int read_qrels(const char *path, const char *qpath, const char *cpath,
                      const custom_records *queries, const custom_records *corpus, prep_i64v *pairs,
                      prep_i64v *scores, foil_err *err) {
  prep_map qm = {0}, cm = {0}, seen = {0};
  prep_pool pool = {0};
  line_reader r;
  int rc = lr_open(&r, path, err);
  for (size_t i = 0; !rc && i < queries->n; i++)
    rc = prep_map_put(&qm, queries->id[i], strlen(queries->id[i]), (int64_t)i, NULL, err);
  for (size_t i = 0; !rc && i < corpus->n; i++)
    rc = prep_map_put(&cm, corpus->id[i], strlen(corpus->id[i]), (int64_t)i, NULL, err);
  char *line;
  size_t len;
  int got, rows = 0;
  while (!rc && (got = lr_next(&r, &line, &len, err)) != 0) {
    if (got < 0) {
      rc = got;
      break;
    }
    char *f[3] = {line, NULL, NULL};
    size_t fl[3];
    char *end = line + len, *t = memchr(line, '\t', len);
    int nf = 1;
    while (t && nf < 4) {
      if (nf < 3) f[nf] = t + 1;
      nf++;
      t = memchr(t + 1, '\t', (size_t)(end - t - 1));
    }
    if (nf != 3) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: expected query-id<TAB>corpus-id<TAB>score (%d field%s)",
                        path, r.lineno, nf, nf == 1 ? "" : "s");
      break;
    }
    fl[0] = (size_t)(f[1] - 1 - f[0]);
    fl[1] = (size_t)(f[2] - 1 - f[1]);
    fl[2] = (size_t)(end - f[2]);
    if (r.lineno == 1 && ((fl[0] == 8 && !memcmp(f[0], "query-id", 8)) ||
                          (fl[0] == 8 && !memcmp(f[0], "query_id", 8))))
      continue; /* BEIR's header */
    char sbuf[32];
    if (fl[2] == 0 || fl[2] >= sizeof sbuf) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: score is not an integer", path, r.lineno);
      break;
    }
    memcpy(sbuf, f[2], fl[2]);
    sbuf[fl[2]] = '\0';
    char *se;
    errno = 0;
    long score = strtol(sbuf, &se, 10);
    if (*se || errno || score > INT32_MAX || score < INT32_MIN) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: score '%s' is not an integer", path, r.lineno, sbuf);
      break;
    }
    int64_t qi = prep_map_get(&qm, f[0], fl[0]), ci = prep_map_get(&cm, f[1], fl[1]);
    if (qi < 0) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: unknown query id '%.*s' (not in %s)", path, r.lineno,
                        (int)(fl[0] > 200 ? 200 : fl[0]), f[0], qpath);
      break;
    }
    if (ci < 0) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: unknown corpus id '%.*s' (not in %s)", path, r.lineno,
                        (int)(fl[1] > 200 ? 200 : fl[1]), f[1], cpath);
      break;
    }
    char key[48];
    int kl = snprintf(key, sizeof key, "%lld:%lld", (long long)qi, (long long)ci);
    char *k = prep_pool_dup(&pool, key, (size_t)kl);
    int64_t old = -1;
    if (!k) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    if (!rc) rc = prep_map_put(&seen, k, (size_t)kl, r.lineno, &old, err);
    if (!rc && old >= 0)
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: duplicate qrel for query '%s' and document '%s' "
                        "(first on line %lld)", path, r.lineno, queries->id[qi], corpus->id[ci], (long long)old);
    rows++;
    if (rc || score <= 0) continue;
    rc = prep_i64v_push(pairs, qi, err);
    if (!rc) rc = prep_i64v_push(pairs, ci, err);
    if (!rc) rc = prep_i64v_push(scores, score, err);
  }
  if (!rc && rows == 0) rc = foil_err_set(err, FOIL_EINVAL, "%s: empty: no qrels in the file", path);
  lr_close(&r);
  prep_map_free(&qm);
  prep_map_free(&cm);
  prep_map_free(&seen);
  prep_pool_free(&pool);
  return rc;
}

/* ---- the command ------------------------------------------------------------------------------ */

static int valid_name(const char *s) {
  if (!s || !*s || s[0] == '.' || strlen(s) > 128) return 0;
  for (; *s; s++)
    if (!(((*s | 32) >= 'a' && (*s | 32) <= 'z') || (*s >= '0' && *s <= '9') || strchr("._-", *s)))
      return 0;
  return 1;
}

int prepare_custom(const char *root, uint64_t seed, const prepare_custom_opts *o, foil_err *err) {
  if (!valid_name(o->name))
    return foil_err_set(err, FOIL_EINVAL, "--name '%s': give a dataset name of letters, digits, '.', '_' "
                        "and '-' (not starting with '.')", o->name ? o->name : "");
  if (!o->pairs) return foil_err_set(err, FOIL_EINVAL, "--pairs FILE.jsonl|FILE.tsv is required");
  if (!(o->dev_fraction >= 0 && o->dev_fraction <= 1 && o->test_fraction >= 0 && o->test_fraction <= 1 &&
        o->dev_fraction + o->test_fraction <= 1))
    return foil_err_set(err, FOIL_EINVAL, "--dev-fraction and --test-fraction must lie in [0, 1] and sum to at most 1");
  if (!o->queries != !o->qrels)
    return foil_err_set(err, FOIL_EINVAL, "--queries and --qrels go together");
  if (o->queries && !o->corpus)
    return foil_err_set(err, FOIL_EINVAL, "--queries and --qrels need --corpus (the documents qrels name)");
  const char *bname = o->benchmark ? o->benchmark : "test";
  if (!valid_name(bname)) return foil_err_set(err, FOIL_EINVAL, "--benchmark '%s' is not a valid name", bname);

  custom_pairs cp;
  custom_records corpus = {0}, queries = {0};
  prep_i64v qrels = {0}, scores = {0}, groups[3] = {{0}}, offs[3] = {{0}};
  prep_strv q[3] = {{0}}, p[3] = {{0}}, neg[3] = {{0}};
  h5io *out[3] = {NULL, NULL, NULL};
  char *paths[3] = {NULL, NULL, NULL};
  prep_strv bq = {0}, bqid = {0};
  int rc = custom_read_pairs(o->pairs, &cp, err);
  if (rc) return rc;
  if (o->corpus) rc = custom_read_records(o->corpus, "corpus", &corpus, err);
  if (!rc && o->queries) rc = custom_read_records(o->queries, "query", &queries, err);
  prep_i64v raw_pairs = {0}, raw_scores = {0};
  if (!rc && o->qrels)
    rc = read_qrels(o->qrels, o->queries, o->corpus, &queries, &corpus, &raw_pairs, &raw_scores, err);

  /* benchmark: the queries with at least one relevant document, in file order */
  int64_t *qrow = NULL;
  if (!rc && o->qrels) {
    if (!(qrow = malloc((queries.n + 1) * sizeof *qrow))) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < queries.n; i++) qrow[i] = -1;
    for (size_t k = 0; !rc && k < raw_scores.n; k++) qrow[raw_pairs.v[2 * k]] = 0;
    for (size_t i = 0; !rc && i < queries.n; i++) {
      if (qrow[i] < 0) continue;
      qrow[i] = (int64_t)bq.n;
      rc = prep_strv_push(&bq, queries.text[i], err);
      if (!rc) rc = prep_strv_push(&bqid, queries.id[i], err);
    }
    for (size_t k = 0; !rc && k < raw_scores.n; k++) {
      rc = prep_i64v_push(&qrels, qrow[raw_pairs.v[2 * k]], err);
      if (!rc) rc = prep_i64v_push(&qrels, raw_pairs.v[2 * k + 1], err);
      if (!rc) rc = prep_i64v_push(&scores, raw_scores.v[k], err);
    }
    if (!rc && bq.n == 0)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: no qrel has a score above 0: the benchmark would be empty", o->qrels);
  }

  /* split the pairs by a seeded hash of the query text */
  for (int s = 0; s < 3 && !rc; s++) rc = prep_i64v_push(&offs[s], 0, err);
  for (size_t i = 0; !rc && i < cp.n; i++) {
    size_t ql = strlen(cp.query[i]);
    double u = prep_unit(seed, prep_hash(cp.query[i], ql));
    int s = u < o->test_fraction ? 2 : u < o->test_fraction + o->dev_fraction ? 1 : 0;
    rc = prep_strv_push(&q[s], cp.query[i], err);
    if (!rc) rc = prep_strv_push(&p[s], cp.positive[i], err);
    if (!rc) rc = prep_i64v_push(&groups[s], prep_group_key(cp.query[i], ql), err);
    for (size_t k = cp.neg_off[i]; !rc && k < cp.neg_off[i + 1]; k++) rc = prep_strv_push(&neg[s], cp.neg[k], err);
    if (!rc) rc = prep_i64v_push(&offs[s], (int64_t)neg[s].n, err);
  }
  dataset_pairs sp[3];
  for (int s = 0; s < 3; s++)
    sp[s] = (dataset_pairs){.n = q[s].n, .query = q[s].v, .positive = p[s].v, .group = groups[s].v,
                            .n_negatives = neg[s].n, .negatives = neg[s].v, .negatives_offsets = offs[s].v};
  const dataset_pairs *spp[3] = {&sp[0], &sp[1], &sp[2]};
  char *source = prep_asprintf("user files: pairs %s%s%s%s%s%s%s", o->pairs, o->corpus ? ", corpus " : "",
                               o->corpus ? o->corpus : "", o->queries ? ", queries " : "",
                               o->queries ? o->queries : "", o->qrels ? ", qrels " : "", o->qrels ? o->qrels : "");
  dataset_meta meta = {source, prep_created_by("foil data prepare custom"), seed};
  if (!rc) {
    paths[0] = prep_asprintf("%s/datasets/%s/pairs.h5", root, o->name);
    paths[1] = prep_asprintf("%s/datasets/%s/corpus.h5", root, o->name);
    paths[2] = prep_asprintf("%s/datasets/%s/benchmarks/%s.h5", root, o->name, bname);
    if (!paths[0] || !paths[1] || !paths[2] || !source) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  if (!rc) rc = dataset_pairs_create(&out[0], paths[0], spp, cp.n_neg > 0, &meta, err);
  if (!rc && o->corpus) rc = dataset_corpus_create(&out[1], paths[1], corpus.id, corpus.text, corpus.n, &meta, err);
  if (!rc && o->qrels) {
    dataset_bench b = {.n_queries = bq.n, .n_corpus = corpus.n, .n_qrels = scores.n, .queries = bq.v,
                       .query_ids = bqid.v, .corpus = corpus.text, .corpus_ids = corpus.id,
                       .qrels = qrels.v, .qrels_score = (int32_t *)NULL};
    int32_t *sc = malloc((scores.n + 1) * sizeof *sc);
    if (!sc) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    for (size_t k = 0; !rc && k < scores.n; k++) sc[k] = (int32_t)scores.v[k];
    b.qrels_score = sc;
    if (!rc) rc = dataset_bench_create(&out[2], paths[2], &b, &meta, err);
    free(sc);
  }
  for (int k = 0; k < 3 && !rc; k++)
    if (out[k]) rc = h5io_publish(&out[k], err);
  for (int k = 0; k < 3; k++) h5io_abandon(&out[k]);
  if (!rc) {
    printf("custom '%s': %zu pairs (train %zu, dev %zu, test %zu), %zu hard negatives\n", o->name, cp.n,
           q[0].n, q[1].n, q[2].n, cp.n_neg);
    if (o->corpus) printf("  corpus.h5: %zu documents\n", corpus.n);
    if (o->qrels)
      printf("  benchmarks/%s.h5: %zu queries (of %zu) with %zu relevant (query, document) pairs\n", bname,
             bq.n, queries.n, scores.n);
    printf("  -> %s/datasets/%s\n", root, o->name);
  }
  free(source);
  free(qrow);
  for (int s = 0; s < 3; s++) {
    free(paths[s]);
    prep_strv_free(&q[s]);
    prep_strv_free(&p[s]);
    prep_strv_free(&neg[s]);
    prep_i64v_free(&groups[s]);
    prep_i64v_free(&offs[s]);
  }
  prep_strv_free(&bq);
  prep_strv_free(&bqid);
  prep_i64v_free(&qrels);
  prep_i64v_free(&scores);
  prep_i64v_free(&raw_pairs);
  prep_i64v_free(&raw_scores);
  custom_records_free(&corpus);
  custom_records_free(&queries);
  custom_pairs_free(&cp);
  return rc;
}
