/* lmcorpus.c — the `lm` dataset (see lmcorpus.h). */
#define _POSIX_C_SOURCE 200809L
#include "storage/lmcorpus.h"
#include "common/fileio.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/h5io.h"
#include "storage/rdata.h"
#include "storage/rst.h"
#include "storage/sword.h"

enum { PROMPT_MIN_WORDS = 16, PROMPT_MAX_WORDS = 24, CONT_WORDS = 64, PROMPT_MAX_TOKENS = 32 };
enum { MIN_DOC_WORDS = 50 };

/* ---- small helpers ------------------------------------------------------------------- */

typedef struct {
  char *b;
  size_t n, cap;
} sbuf;

static int sb_put(sbuf *o, const char *s, size_t k) {
  if (o->n + k + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->n + k + 1) cap *= 2;
    char *nb = realloc(o->b, cap);
    if (!nb) return FOIL_ENOMEM;
    o->b = nb;
    o->cap = cap;
  }
  memcpy(o->b + o->n, s, k);
  o->n += k;
  o->b[o->n] = '\0';
  return FOIL_OK;
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ULL;
  return h;
}

int lmcorpus_split_of(const char *doc_id, uint64_t seed) {
  uint64_t r = mix64(fnv1a(doc_id) ^ mix64(seed)) % 1000;
  return r < 900 ? 0 : r < 950 ? 1 : 2;
}

int lmcorpus_token_estimate(const char *t, size_t n) {
  int est = 0;
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)t[i];
    if (isalpha(c)) {
      size_t j = i;
      while (j < n && isalpha((unsigned char)t[j])) j++;
      est += 1 + (int)((j - i) / 8);
      i = j;
    } else if (isdigit(c)) {
      size_t j = i;
      while (j < n && isdigit((unsigned char)t[j])) j++;
      est += 1 + (int)((j - i) / 3);
      i = j;
    } else if (c >= 0x80) {
      est += 2;
      i++;
      while (i < n && ((unsigned char)t[i] & 0xC0) == 0x80) i++;
    } else {
      if (!isspace(c)) est++;
      i++;
    }
  }
  return est;
}

char *lmcorpus_utf8_clean(const char *s, size_t n, size_t *outn) {
  char *o = malloc(3 * n + 1);
  if (!o) return NULL;
  size_t k = 0, i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    int ok = len > 0 && c != 0 && i + len <= n;
    for (size_t j = 1; ok && j < len; j++) ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
    if (ok && len > 1) { /* overlong forms, surrogates, > U+10FFFF */
      uint32_t cp = c & (0x7F >> len);
      for (size_t j = 1; j < len; j++) cp = cp << 6 | ((unsigned char)s[i + j] & 0x3F);
      ok = !((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
             cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000));
    }
    if (ok) {
      memcpy(o + k, s + i, len);
      k += len;
      i += len;
    } else {
      memcpy(o + k, "\xEF\xBF\xBD", 3);
      k += 3;
      i++;
    }
  }
  o[k] = '\0';
  if (outn) *outn = k;
  return o;
}

/* ---- documents ----------------------------------------------------------------------- */

typedef struct {
  char *id;     /* unique, stable: the split hash input */
  char *source; /* "<package>:<item>" */
  char *text;
  size_t len;
  int split;
  int origin;   /* 0 austen, 1 web, 2 python docs */
} doc_t;

typedef struct {
  doc_t *d;
  size_t n, cap;
} docs_t;

static size_t count_words(const char *s, size_t n) {
  size_t w = 0;
  int in = 0;
  for (size_t i = 0; i < n; i++) {
    int sp = isspace((unsigned char)s[i]);
    if (!sp && !in) w++;
    in = !sp;
  }
  return w;
}

/* Takes ownership of text (malloc'ed); trims, cleans UTF-8, keeps it when
 * long enough. */
static int add_doc(docs_t *D, const char *id, const char *source, char *text, size_t len, int origin,
                   foil_err *err) {
  size_t a = 0, b = len;
  while (a < b && isspace((unsigned char)text[a])) a++;
  while (b > a && isspace((unsigned char)text[b - 1])) b--;
  if (count_words(text + a, b - a) < MIN_DOC_WORDS) {
    free(text);
    return FOIL_OK;
  }
  size_t cl;
  char *clean = lmcorpus_utf8_clean(text + a, b - a, &cl);
  free(text);
  if (D->n == D->cap) {
    size_t cap = D->cap ? 2 * D->cap : 256;
    doc_t *nd = realloc(D->d, cap * sizeof *nd);
    if (!nd) {
      free(clean);
      return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    }
    D->d = nd;
    D->cap = cap;
  }
  doc_t *d = &D->d[D->n];
  d->id = dupstr(id);
  d->source = dupstr(source);
  d->text = clean;
  d->len = cl;
  d->origin = origin;
  d->split = 0;
  D->n++;
  if (!d->id || !d->source || !clean) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  return FOIL_OK;
}

static void docs_free(docs_t *D) {
  for (size_t i = 0; i < D->n; i++) {
    free(D->d[i].id);
    free(D->d[i].source);
    free(D->d[i].text);
  }
  free(D->d);
  memset(D, 0, sizeof *D);
}

/* ---- Jane Austen ------------------------------------------------------------------------ */

static int is_chapter_heading(const char *l) {
  if (strncmp(l, "CHAPTER ", 8) && strncmp(l, "Chapter ", 8)) return 0;
  const char *p = l + 8;
  if (!*p) return 0;
  for (; *p; p++)
    if (!strchr("IVXLCivxlc0123456789.", *p)) return 0;
  return 1;
}

static int is_dropped_line(const char *l) {
  return !strncmp(l, "VOLUME ", 7) || !strcmp(l, "THE END") || !strcmp(l, "FINIS") ||
         !strcmp(l, "Finis");
}

static int austen_book(docs_t *D, const char *var, const rdata_val *v, foil_err *err) {
  sbuf t = {0};
  int chapter = 0, rc = FOIL_OK, para_open = 0;
  char id[256], src[256];
  for (uint64_t i = 0; i <= v->n && !rc; i++) {
    const char *l = i < v->n && v->str[i] ? v->str[i] : "";
    while (*l == ' ' || *l == '\t') l++;
    int end = i == v->n, heading = !end && is_chapter_heading(l);
    if (end || heading) {
      if (chapter == 0) snprintf(id, sizeof id, "janeaustenr/%s/front", var);
      else snprintf(id, sizeof id, "janeaustenr/%s/chapter-%03d", var, chapter);
      snprintf(src, sizeof src, "r-cran-janeaustenr:%s %s", var,
               chapter ? id + strlen("janeaustenr/") + strlen(var) + 1 : "front matter");
      rc = add_doc(D, id, src, t.b ? t.b : dupstr(""), t.n, 0, err);
      memset(&t, 0, sizeof t);
      chapter++;
      para_open = 0;
      continue;
    }
    if (!*l || is_dropped_line(l)) {
      para_open = 0;
      continue;
    }
    if (t.n) rc = sb_put(&t, para_open ? " " : "\n\n", para_open ? 1 : 2);
    /* drop the underscores that mark italics in the Gutenberg texts */
    for (const char *p = l; *p && !rc; p++)
      if (*p != '_') rc = sb_put(&t, p, 1);
    para_open = 1;
    if (rc) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  free(t.b);
  return rc;
}

static int load_austen(docs_t *D, const char *base, foil_err *err) {
  rdata_db *db;
  int rc = rdata_db_open(&db, base, err);
  if (rc) return rc;
  for (size_t i = 0; i < rdata_db_count(db) && !rc; i++) {
    const char *var = rdata_db_name(db, i);
    rdata_doc *doc;
    const rdata_val *v;
    rc = rdata_db_load(db, var, &doc, &v, err);
    if (rc) break;
    if (v && v->type == RDATA_STRSXP)
      rc = austen_book(D, var, v, err);
    else
      rc = foil_err_set(err, FOIL_EINVAL, "%s.rdb: variable '%s' is not a character vector (a novel)",
                        base, var);
    rdata_doc_free(&doc);
  }
  rdata_db_close(&db);
  return rc;
}

/* ---- World English Bible ------------------------------------------------------------- */

/* The first <div ... type="book" osisID="X"> tag in markup[0..n): its offset
 * (or n when none) and the id X in name. */
static size_t find_book_div(const char *x, size_t n, char *name, size_t cap) {
  for (size_t q = 0; q + 5 <= n; q++) {
    if (memcmp(x + q, "<div ", 5)) continue;
    size_t e = q;
    while (e < n && x[e] != '>') e++;
    int book = 0, end = 0;
    const char *id = NULL;
    for (size_t k = q; k + 12 <= e; k++) {
      if (!memcmp(x + k, "type=\"book\"", 11)) book = 1;
      if (!memcmp(x + k, " eID=", 5)) end = 1; /* a book's end milestone */
      if (!memcmp(x + k, "osisID=\"", 8)) id = x + k + 8;
    }
    if (book && !end && id) {
      size_t k = 0;
      while (id + k < x + e && k + 1 < cap && isalnum((unsigned char)id[k])) k++;
      memcpy(name, id, k);
      name[k] = '\0';
      return q;
    }
  }
  return n;
}

/* One document per book, in versification order: a book starts at its
 * <div type="book"> (books may span several blocks and blocks need not
 * follow the verse index); text before the first book (the translators'
 * preface) is a document of its own. */
static int load_web(docs_t *D, const char *conf, foil_err *err) {
  char *dir;
  int rc = sword_conf_datapath(conf, &dir, err);
  if (rc) return rc;
  sword_mod *m;
  rc = sword_open(&m, dir, err);
  free(dir);
  if (rc) return rc;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  char name[64] = "front";
  for (int t = 0; t < 2 && !rc; t++) {
    size_t n = sword_count(m, t);
    for (size_t i = 0; i < n && !rc; i++) {
      const char *x;
      size_t xl;
      uint32_t block;
      if ((rc = sword_verse(m, t, i, &x, &xl, &block, err))) break;
      char next[64];
      size_t at = find_book_div(x, xl, next, sizeof next);
      if (at < xl) {
        rc = sword_osis_text(x, at, &buf, &len, &cap, err);
        if (rc) break;
        char id[128], src[160];
        snprintf(id, sizeof id, "sword-web/%s", name);
        snprintf(src, sizeof src, "sword-text-web:engWEB2015eb %s", name);
        rc = add_doc(D, id, src, buf ? buf : dupstr(""), len, 1, err);
        buf = NULL;
        len = cap = 0;
        snprintf(name, sizeof name, "%s", next);
        x += at;
        xl -= at;
      }
      if (!rc) rc = sword_osis_text(x, xl, &buf, &len, &cap, err);
    }
  }
  if (!rc) {
    char id[128], src[160];
    snprintf(id, sizeof id, "sword-web/%s", name);
    snprintf(src, sizeof src, "sword-text-web:engWEB2015eb %s", name);
    rc = add_doc(D, id, src, buf ? buf : dupstr(""), len, 1, err);
    buf = NULL;
  }
  free(buf);
  sword_close(&m);
  return rc;
}

/* ---- Python documentation ------------------------------------------------------------ */

typedef struct {
  char **p;
  size_t n, cap;
} paths_t;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(const char *dir, paths_t *P, int depth, foil_err *err) {
  if (depth > 16) return FOIL_OK;
  DIR *d = opendir(dir);
  if (!d) return foil_err_set(err, FOIL_ENOTFOUND, "%s: %s", dir, strerror(errno));
  struct dirent *e;
  int rc = FOIL_OK;
  while (!rc && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    size_t n = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(n);
    if (!p) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      break;
    }
    snprintf(p, n, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(p, &st) != 0) {
      free(p);
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      rc = walk(p, P, depth + 1, err);
      free(p);
    } else if (n > 9 && !strcmp(p + strlen(p) - 8, ".rst.txt")) {
      if (P->n == P->cap) {
        size_t cap = P->cap ? 2 * P->cap : 256;
        char **np = realloc(P->p, cap * sizeof *np);
        if (!np) {
          free(p);
          rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
          break;
        }
        P->p = np;
        P->cap = cap;
      }
      P->p[P->n++] = p;
    } else {
      free(p);
    }
  }
  closedir(d);
  return rc;
}


static int load_python_docs(docs_t *D, const char *dir, foil_err *err) {
  paths_t P = {0};
  int rc = walk(dir, &P, 0, err);
  if (!rc && P.n == 0) rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: no .rst.txt files", dir);
  if (!rc) qsort(P.p, P.n, sizeof *P.p, cmp_str);
  size_t dl = strlen(dir);
  for (size_t i = 0; i < P.n && !rc; i++) {
    char *src = NULL, *out = NULL;
    size_t n, on;
    rc = foil_read_file(P.p[i], &src, &n, err);
    if (!rc) rc = rst_to_prose(src, n, &out, &on, err);
    free(src);
    if (rc) break;
    const char *rel = P.p[i] + dl + (P.p[i][dl] == '/');
    char id[1024], source[1100];
    snprintf(id, sizeof id, "python3.11-doc/%.*s", (int)(strlen(rel) - 4), rel);
    snprintf(source, sizeof source, "python3.11-doc:%.*s", (int)(strlen(rel) - 4), rel);
    rc = add_doc(D, id, source, out, on, 2, err);
  }
  for (size_t i = 0; i < P.n; i++) free(P.p[i]);
  free(P.p);
  return rc;
}

/* ---- prompts ------------------------------------------------------------------------- */

typedef struct {
  size_t doc;   /* index into D */
  size_t word;  /* first word of the prompt */
  size_t len;   /* prompt words */
} prompt_t;

typedef struct {
  size_t *start, *end; /* byte spans of the words */
  size_t n;
} words_t;

static int split_words(const char *s, size_t n, words_t *w) {
  size_t cap = count_words(s, n) + 1;
  w->start = malloc(cap * sizeof *w->start);
  w->end = malloc(cap * sizeof *w->end);
  w->n = 0;
  if (!w->start || !w->end) return FOIL_ENOMEM;
  size_t i = 0;
  while (i < n) {
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (i >= n) break;
    w->start[w->n] = i;
    while (i < n && !isspace((unsigned char)s[i])) i++;
    w->end[w->n++] = i;
  }
  return FOIL_OK;
}

/* word k starts a sentence: first of the document, after a paragraph
 * break, or after a word ending in . ! ? (closing quotes allowed) */
static int sentence_start(const char *s, const words_t *w, size_t k) {
  if (k == 0) return 1;
  unsigned char c0 = (unsigned char)s[w->start[k]];
  if (!(isupper(c0) || c0 == '"' || c0 == 0xE2)) return 0;
  for (size_t i = w->end[k - 1]; i < w->start[k]; i++)
    if (s[i] == '\n') return 1;
  size_t e = w->end[k - 1];
  const char *p = s + w->start[k - 1];
  while (e > w->start[k - 1]) {
    char c = s[e - 1];
    if (c == '"' || c == '\'' || c == ')') {
      e--;
    } else if (e - w->start[k - 1] >= 3 && (unsigned char)s[e - 3] == 0xE2 &&
               (unsigned char)s[e - 2] == 0x80 &&
               ((unsigned char)s[e - 1] == 0x9D || (unsigned char)s[e - 1] == 0x99)) {
      e -= 3;
    } else {
      break;
    }
  }
  /* "Mr." "Mrs." "Dr." "St.": a short capitalized word with a period ends no sentence */
  if (e > w->start[k - 1] && s[e - 1] == '.' && e - w->start[k - 1] <= 4 && isupper((unsigned char)*p))
    return 0;
  return e > w->start[k - 1] && strchr(".!?", s[e - 1]) != NULL;
}

static int cmp_prompt(const void *a, const void *b) {
  const prompt_t *x = a, *y = b;
  if (x->doc != y->doc) return x->doc < y->doc ? -1 : 1;
  return x->word < y->word ? -1 : x->word > y->word;
}

static int choose_prompts(const docs_t *D, uint64_t seed, size_t want, prompt_t **out, size_t *nout,
                          words_t *W, foil_err *err) {
  *out = NULL;
  *nout = 0;
  /* candidates: (doc, word) sentence starts in test documents */
  size_t cap = 1024, nc = 0;
  prompt_t *cand = malloc(cap * sizeof *cand);
  if (!cand) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (size_t d = 0; d < D->n; d++) {
    if (D->d[d].split != 2) continue;
    if (split_words(D->d[d].text, D->d[d].len, &W[d])) {
      free(cand);
      return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k + PROMPT_MAX_WORDS + CONT_WORDS <= W[d].n; k++) {
      if (!sentence_start(D->d[d].text, &W[d], k)) continue;
      if (nc == cap) {
        cap *= 2;
        prompt_t *nc2 = realloc(cand, cap * sizeof *cand);
        if (!nc2) {
          free(cand);
          return foil_err_set(err, FOIL_ENOMEM, "out of memory");
        }
        cand = nc2;
      }
      cand[nc++] = (prompt_t){d, k, 0};
    }
  }
  /* a seeded Fisher-Yates shuffle, then greedy non-overlapping picks */
  uint64_t state = mix64(seed ^ 0x6C6D2D70726F6D70ULL);
  for (size_t i = nc; i > 1; i--) {
    state = mix64(state);
    size_t j = (size_t)(state % i);
    prompt_t t = cand[i - 1];
    cand[i - 1] = cand[j];
    cand[j] = t;
  }
  prompt_t *pick = malloc((want + 1) * sizeof *pick);
  if (!pick) {
    free(cand);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  size_t np = 0;
  for (size_t i = 0; i < nc && np < want; i++) {
    prompt_t c = cand[i];
    state = mix64(state);
    c.len = PROMPT_MIN_WORDS + (size_t)(state % (PROMPT_MAX_WORDS - PROMPT_MIN_WORDS + 1));
    size_t a = c.word, b = c.word + c.len + CONT_WORDS;
    int clash = 0;
    for (size_t j = 0; j < np && !clash; j++)
      if (pick[j].doc == c.doc && a < pick[j].word + pick[j].len + CONT_WORDS && pick[j].word < b)
        clash = 1;
    if (clash) continue;
    const words_t *w = &W[c.doc];
    const char *s = D->d[c.doc].text;
    if (lmcorpus_token_estimate(s + w->start[a], w->end[a + c.len - 1] - w->start[a]) > PROMPT_MAX_TOKENS)
      continue;
    pick[np++] = c;
  }
  free(cand);
  if (np < want) {
    free(pick);
    return foil_err_set(err, FOIL_EPRECOND,
                        "the test split holds room for only %zu of the %zu prompts (too little text)",
                        np, want);
  }
  qsort(pick, np, sizeof *pick, cmp_prompt);
  *out = pick;
  *nout = np;
  return FOIL_OK;
}

/* ---- LICENSE --------------------------------------------------------------------------- */

/* Appends the lines of a file up to (not including) the first line that
 * starts with `stop` (NULL: all). */
static int quote_file(sbuf *o, const char *path, const char *stop, foil_err *err) {
  char *b;
  size_t n;
  int rc = foil_read_file(path, &b, &n, err);
  if (rc) return rc;
  size_t end = n;
  if (stop) {
    size_t sl = strlen(stop);
    for (size_t i = 0; i + sl <= n; i++)
      if ((i == 0 || b[i - 1] == '\n') && !strncmp(b + i, stop, sl)) {
        end = i;
        break;
      }
  }
  char hdr[1200];
  snprintf(hdr, sizeof hdr, "---- from %s%s ----\n\n", path, end < n ? " (excerpt)" : "");
  rc = sb_put(o, hdr, strlen(hdr)) || sb_put(o, b, end) || sb_put(o, "\n", 1) ? FOIL_ENOMEM : 0;
  free(b);
  return rc ? foil_err_set(err, FOIL_ENOMEM, "out of memory") : FOIL_OK;
}

static int write_license(const char *path, const lmcorpus_opts *o, foil_err *err) {
  sbuf t = {0};
  const char *head =
      "The foil `lm` dataset (lm.h5) is derived from these installed Debian packages:\n\n"
      "- r-cran-janeaustenr: the six novels of Jane Austen (1775-1817), public domain\n"
      "  (the texts come from Project Gutenberg; the R package that ships them is MIT-licensed,\n"
      "  notice below).\n"
      "- sword-text-web: the World English Bible (engWEB2015eb), public domain; \"World English\n"
      "  Bible\" is a trademark of eBible.org: changed text must not be called the World English\n"
      "  Bible. foil's copy removes footnotes, headings and Strong's numbers, so it is a derived\n"
      "  text of the World English Bible, not the World English Bible itself.\n"
      "- python3.11-doc: prose extracted from the reStructuredText sources of the Python 3.11\n"
      "  documentation, Copyright (c) 2001-2023 Python Software Foundation, distributed under\n"
      "  the PSF License Agreement (version 2, quoted below).\n\n"
      "r-cran-tidytext was examined and not used: it holds word lists, not running prose.\n\n";
  int rc = sb_put(&t, head, strlen(head)) ? foil_err_set(err, FOIL_ENOMEM, "out of memory") : 0;
  if (!rc && o->copyright_austen) rc = quote_file(&t, o->copyright_austen, NULL, err);
  if (!rc && o->copyright_web) rc = quote_file(&t, o->copyright_web, NULL, err);
  if (!rc && o->copyright_python) rc = quote_file(&t, o->copyright_python, "BEOPEN.COM LICENSE", err);
  if (!rc) {
    FILE *f = fopen(path, "wb");
    if (!f) {
      rc = foil_err_set(err, FOIL_EPERM, "cannot create %s: %s", path, strerror(errno));
    } else {
      int bad = fwrite(t.b, 1, t.n, f) != t.n;
      bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
      bad |= fclose(f) != 0;
      if (bad) {
        unlink(path);
        rc = foil_err_set(err, FOIL_EPERM, "writing %s failed", path);
      }
    }
  }
  free(t.b);
  return rc;
}

/* ---- the dataset ------------------------------------------------------------------------- */

static const char *split_name[3] = {"train", "valid", "test"};

static int write_h5(const char *path, uint64_t seed, const lmcorpus_opts *o, const docs_t *D,
                    const prompt_t *P, size_t np, const words_t *W, h5io **fp, foil_err *err) {
  int rc = h5io_create(fp, path, LMCORPUS_FORMAT, err);
  if (rc) return rc;
  h5io *f = *fp;
  const char **text = malloc((D->n + 1) * sizeof *text);
  const char **source = malloc((D->n + 1) * sizeof *source);
  char **pr = calloc(np + 1, sizeof *pr), **co = calloc(np + 1, sizeof *co);
  if (!text || !source || !pr || !co) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  uint64_t total = 0;
  for (int s = 0; s < 3 && !rc; s++) {
    size_t k = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < D->n; i++)
      if (D->d[i].split == s) {
        text[k] = D->d[i].text;
        source[k++] = D->d[i].source;
        bytes += D->d[i].len;
      }
    total += bytes;
    char name[32];
    snprintf(name, sizeof name, "%s/text", split_name[s]);
    rc = h5io_write_strings(f, name, text, k, err);
    snprintf(name, sizeof name, "%s/source", split_name[s]);
    if (!rc) rc = h5io_write_strings(f, name, source, k, err);
    if (!rc) rc = h5io_attr_i64(f, split_name[s], "count", (int64_t)k, err);
    if (!rc) rc = h5io_attr_i64(f, split_name[s], "bytes", (int64_t)bytes, err);
  }
  for (size_t i = 0; i < np && !rc; i++) {
    const doc_t *d = &D->d[P[i].doc];
    const words_t *w = &W[P[i].doc];
    size_t a = w->start[P[i].word], b = w->end[P[i].word + P[i].len - 1];
    size_t c = w->end[P[i].word + P[i].len + CONT_WORDS - 1];
    pr[i] = malloc(b - a + 1);
    co[i] = malloc(c - b + 1);
    if (!pr[i] || !co[i]) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      break;
    }
    memcpy(pr[i], d->text + a, b - a);
    pr[i][b - a] = '\0';
    memcpy(co[i], d->text + b, c - b);
    co[i][c - b] = '\0';
  }
  if (!rc) rc = h5io_write_strings(f, "prompts/prompt", (const char *const *)pr, np, err);
  if (!rc) rc = h5io_write_strings(f, "prompts/continuation", (const char *const *)co, np, err);
  if (!rc) rc = h5io_attr_i64(f, "prompts", "count", (int64_t)np, err);
  if (!rc) rc = h5io_attr_i64(f, "prompts", "prompt_words_min", PROMPT_MIN_WORDS, err);
  if (!rc) rc = h5io_attr_i64(f, "prompts", "prompt_words_max", PROMPT_MAX_WORDS, err);
  if (!rc) rc = h5io_attr_i64(f, "prompts", "continuation_words", CONT_WORDS, err);
  if (!rc) rc = h5io_attr_i64(f, "prompts", "prompt_tokens_max", PROMPT_MAX_TOKENS, err);
  if (!rc)
    rc = h5io_attr_str(f, "/", "source",
                       "r-cran-janeaustenr (6 novels, by chapter), sword-text-web engWEB2015eb "
                       "(World English Bible, by book), python3.11-doc reST sources (by file)",
                       err);
  if (!rc) rc = h5io_attr_str(f, "/", "created_by", o->created_by ? o->created_by : "foil data prepare lm", err);
  if (!rc) rc = h5io_attr_i64(f, "/", "seed", (int64_t)seed, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "bytes", (int64_t)total, err);
  free(text);
  free(source);
  for (size_t i = 0; i < np; i++) {
    if (pr) free(pr[i]);
    if (co) free(co[i]);
  }
  free(pr);
  free(co);
  return rc;
}

/* ids must be unique: the split is a function of the id */
static int check_unique(const docs_t *D, foil_err *err) {
  char **ids = malloc((D->n + 1) * sizeof *ids);
  if (!ids) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (size_t i = 0; i < D->n; i++) ids[i] = D->d[i].id;
  qsort(ids, D->n, sizeof *ids, cmp_str);
  int rc = FOIL_OK;
  for (size_t i = 1; i < D->n && !rc; i++)
    if (!strcmp(ids[i], ids[i - 1])) rc = foil_err_set(err, FOIL_EINTERNAL, "duplicate document id %s", ids[i]);
  free(ids);
  return rc;
}

int lmcorpus_build(const char *root, uint64_t seed, const lmcorpus_opts *o, lmcorpus_stats *stats,
                   foil_err *err) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const char *name = o->name ? o->name : "lm";
  size_t want = o->n_prompts ? o->n_prompts : 500;
  docs_t D = {0};
  int rc = FOIL_OK;
  if (o->janeaustenr) rc = load_austen(&D, o->janeaustenr, err);
  if (!rc && o->sword_conf) rc = load_web(&D, o->sword_conf, err);
  if (!rc && o->rst_dir) rc = load_python_docs(&D, o->rst_dir, err);
  lmcorpus_stats st;
  memset(&st, 0, sizeof st);
  uint64_t total = 0;
  for (size_t i = 0; !rc && i < D.n; i++) {
    D.d[i].split = lmcorpus_split_of(D.d[i].id, seed);
    st.docs[D.d[i].split]++;
    st.bytes[D.d[i].split] += D.d[i].len;
    st.bytes_by_source[D.d[i].origin] += D.d[i].len;
    total += D.d[i].len;
  }
  if (!rc) rc = check_unique(&D, err);
  if (!rc && D.n == 0) rc = foil_err_set(err, FOIL_EPRECOND, "no documents: every source was skipped or empty");
  if (!rc && total < o->min_bytes)
    rc = foil_err_set(err, FOIL_EPRECOND, "the corpus has %llu bytes, fewer than the %llu required",
                      (unsigned long long)total, (unsigned long long)o->min_bytes);
  if (!rc && (!st.docs[0] || !st.docs[1] || !st.docs[2]))
    rc = foil_err_set(err, FOIL_EPRECOND, "a split is empty (train %zu, valid %zu, test %zu documents)",
                      st.docs[0], st.docs[1], st.docs[2]);
  words_t *W = calloc(D.n + 1, sizeof *W);
  if (!W && !rc) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  prompt_t *P = NULL;
  size_t np = 0;
  if (!rc) rc = choose_prompts(&D, seed, want, &P, &np, W, err);
  /* write both files under temporary names, then publish */
  size_t rl = strlen(root) + strlen(name) + 64;
  char *h5path = malloc(rl), *lic = malloc(rl), *lictmp = malloc(rl + 160); /* + foil_tmp_name's suffix */
  if ((!h5path || !lic || !lictmp) && !rc) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  if (lictmp) lictmp[0] = 0; /* named below; an earlier failure unlinks nothing */
  h5io *f = NULL;
  if (!rc) {
    snprintf(h5path, rl, "%s/datasets/%s/lm.h5", root, name);
    snprintf(lic, rl, "%s/datasets/%s/LICENSE", root, name);
    rc = foil_tmp_name(lic, lictmp, rl + 160, err); /* unique across hosts and processes */
    if (!rc) rc = write_h5(h5path, seed, o, &D, P, np, W, &f, err);
  }
  if (!rc) rc = write_license(lictmp, o, err);
  if (!rc) {
    rc = h5io_publish(&f, err);
    if (!rc && rename(lictmp, lic) != 0)
      rc = foil_err_set(err, FOIL_EPERM, "rename %s -> %s: %s", lictmp, lic, strerror(errno));
    /* h5io_publish synced the directory before this rename: once more, or LICENSE may not survive a crash */
    if (!rc) rc = foil_fsync_parent(lic, err);
  }
  if (rc) {
    h5io_abandon(&f);
    if (lictmp && lictmp[0]) unlink(lictmp);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  st.prompts = np;
  st.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  if (!rc && !o->quiet)
    printf("lm: %zu documents (train %zu, valid %zu, test %zu), %.2f MB of text (Austen %.2f, "
           "WEB %.2f, Python docs %.2f), %zu prompts, %.1f s -> %s\n",
           D.n, st.docs[0], st.docs[1], st.docs[2], (double)total / 1e6,
           (double)st.bytes_by_source[0] / 1e6, (double)st.bytes_by_source[1] / 1e6,
           (double)st.bytes_by_source[2] / 1e6, np, st.seconds, h5path);
  if (stats) *stats = st;
  if (W)
    for (size_t i = 0; i < D.n; i++) {
      free(W[i].start);
      free(W[i].end);
    }
  free(W);
  free(P);
  free(h5path);
  free(lic);
  free(lictmp);
  docs_free(&D);
  return rc;
}

int lmcorpus_read_split(const char *path, const char *split, char ***texts, size_t *n, foil_err *err) {
  *texts = NULL;
  *n = 0;
  if (strcmp(split, "train") && strcmp(split, "valid") && strcmp(split, "test"))
    return foil_err_set(err, FOIL_EINVAL, "lm split \"%.40s\": the splits are train, valid and test", split);
  h5io *f;
  int rc = h5io_open(&f, path, LMCORPUS_FORMAT, err);
  if (rc) return rc;
  char name[64];
  snprintf(name, sizeof name, "%s/text", split);
  if (!h5io_exists(f, name)) rc = foil_err_set(err, FOIL_EINVAL, "%s has no %s (not an lm dataset?)", path, name);
  else rc = h5io_read_strings(f, name, texts, n, err);
  h5io_close(&f);
  return rc;
}
