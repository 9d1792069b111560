/* prepare_code.c — `foil data prepare code`: (docstring -> function) pairs
 * from the Python 3.11 standard library as Debian installs it, split by
 * module, with held-out benchmarks (docs/datasets.md, "code").
 *
 * The Python scanner here is deliberately small: it splits a file into
 * logical lines the way Python's tokenizer does (strings of every quoting,
 * comments, brackets, backslash continuations), then reads functions off
 * those lines by indentation. It does not parse expressions. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/prepare.h"
#include "cli/prepare_util.h"
#include "storage/dataset.h"

/* ---- logical lines ------------------------------------------------------------------- */

enum { LL_BLANK = 0, LL_COMMENT = 1, LL_CODE = 2 };

typedef struct {
  size_t start, end;  /* first byte of the first physical line .. past the last newline */
  size_t code;        /* first non-blank byte */
  size_t indent;      /* columns (tabs to multiples of 8) */
  size_t line;        /* 1-based physical line of start */
  size_t colon;       /* first ':' outside brackets and strings, or SIZE_MAX */
  int kind, after_colon; /* after_colon: code follows that colon on this logical line */
} lline;

typedef struct {
  lline *v;
  size_t n, cap;
  unsigned char *in_str; /* per physical line (1-based): starts inside a string */
  size_t nphys;
} lines;

static int is_id(int c) { return isalnum(c) || c == '_' || c >= 0x80; }

/* Skips a string literal whose opening quote is at src[i]; returns the
 * index after it (tolerant: an unterminated one-line string ends at the
 * newline, a triple-quoted one at EOF). Marks physical lines it spans. */
static size_t skip_string(const char *src, size_t len, size_t i, size_t *line, unsigned char *in_str) {
  char q = src[i];
  int triple = i + 2 < len && src[i + 1] == q && src[i + 2] == q;
  i += triple ? 3 : 1;
  while (i < len) {
    char c = src[i];
    if (c == '\\' && i + 1 < len) {
      if (src[i + 1] == '\n') {
        (*line)++;
        if (in_str) in_str[*line] = 1;
      }
      i += 2;
      continue;
    }
    if (c == '\n') {
      if (!triple) return i;
      (*line)++;
      if (in_str) in_str[*line] = 1;
      i++;
      continue;
    }
    if (c == q) {
      if (!triple) return i + 1;
      if (i + 2 < len && src[i + 1] == q && src[i + 2] == q) return i + 3;
    }
    i++;
  }
  return len;
}

/* Length of a string prefix (r, u, b, f and pairs) at src[i] that is
 * directly followed by a quote; 0 when there is none. */
static size_t string_prefix(const char *src, size_t len, size_t i) {
  size_t k = 0;
  while (k < 2 && i + k < len && strchr("rRuUbBfF", src[i + k]) && src[i + k]) k++;
  return k && i + k < len && (src[i + k] == '"' || src[i + k] == '\'') ? k : 0;
}

static int split_lines(const char *src, size_t len, lines *L, foil_err *err) {
  size_t nl = 1;
  for (size_t i = 0; i < len; i++) nl += src[i] == '\n';
  L->nphys = nl;
  L->in_str = calloc(nl + 2, 1);
  if (!L->in_str) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  size_t i = 0, line = 1;
  while (i < len) {
    lline ll = {.start = i, .line = line, .colon = (size_t)-1};
    size_t col = 0;
    while (i < len && (src[i] == ' ' || src[i] == '\t' || src[i] == '\f')) {
      col = src[i] == '\t' ? (col / 8 + 1) * 8 : src[i] == ' ' ? col + 1 : 0;
      i++;
    }
    ll.indent = col;
    ll.code = i;
    if (i >= len || src[i] == '\n' || src[i] == '\r') {
      ll.kind = LL_BLANK;
      while (i < len && src[i] != '\n') i++;
    } else if (src[i] == '#') {
      ll.kind = LL_COMMENT;
      while (i < len && src[i] != '\n') i++;
    } else {
      ll.kind = LL_CODE;
      int depth = 0;
      while (i < len) {
        char c = src[i];
        if (c == '\n') {
          if (depth == 0) break;
          line++;
          i++;
          continue;
        }
        if (c == '#') {
          while (i < len && src[i] != '\n') i++;
          continue;
        }
        if (c == '\\' && i + 1 < len && (src[i + 1] == '\n' || src[i + 1] == '\r')) {
          if (src[i + 1] == '\r' && i + 2 < len && src[i + 2] == '\n') i++;
          line++;
          i += 2;
          continue;
        }
        if (ll.colon != (size_t)-1 && c != ' ' && c != '\t' && c != '\r') ll.after_colon = 1;
        size_t pre = is_id((unsigned char)c) && (i == 0 || !is_id((unsigned char)src[i - 1]))
                         ? string_prefix(src, len, i) : 0;
        if (c == '"' || c == '\'' || pre) {
          i = skip_string(src, len, i + pre, &line, L->in_str);
          continue;
        }
        if (is_id((unsigned char)c)) {
          while (i < len && is_id((unsigned char)src[i])) i++;
          continue;
        }
        if (c == '(' || c == '[' || c == '{') depth++;
        else if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
        else if (c == ':' && depth == 0 && ll.colon == (size_t)-1) ll.colon = i;
        i++;
      }
    }
    if (i < len) { /* at the newline */
      i++;
      line++;
    }
    ll.end = i;
    if (L->n == L->cap) {
      size_t c = L->cap ? L->cap * 2 : 256;
      lline *nv = realloc(L->v, c * sizeof *nv);
      if (!nv) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
      L->v = nv;
      L->cap = c;
    }
    L->v[L->n++] = ll;
  }
  return FOIL_OK;
}

/* ---- functions ---------------------------------------------------------------------- */

static int word_at(const char *src, size_t len, size_t i, const char *w) {
  size_t n = strlen(w);
  return i + n < len && !memcmp(src + i, w, n) && (src[i + n] == ' ' || src[i + n] == '\t');
}

/* Offset of the name after def (and async def) at the code start, or 0. */
static size_t def_name_at(const char *src, size_t len, size_t i) {
  if (word_at(src, len, i, "async")) {
    i += 5;
    while (i < len && (src[i] == ' ' || src[i] == '\t')) i++;
  }
  if (!word_at(src, len, i, "def")) return 0;
  i += 3;
  while (i < len && (src[i] == ' ' || src[i] == '\t')) i++;
  return i < len && is_id((unsigned char)src[i]) && !isdigit((unsigned char)src[i]) ? i : 0;
}

/* The docstring literal starting at src[i] (the statement's first byte):
 * its contents between the quotes, unescaping \\ \' \" and dropping
 * backslash-newline in non-raw strings. NULL when the statement is not a
 * lone string literal (b/f strings are not docstrings). */
static char *docstring_at(const char *src, size_t len, size_t i, size_t stmt_end, int *oom) {
  size_t k = 0;
  int raw = 0;
  while (k < 2 && i + k < len && strchr("rRuU", src[i + k])) raw |= src[i + k] == 'r' || src[i + k] == 'R', k++;
  if (i + k >= len || (src[i + k] != '"' && src[i + k] != '\'')) return NULL;
  size_t q0 = i + k, line = 0;
  size_t after = skip_string(src, len, q0, &line, NULL);
  char q = src[q0];
  int triple = q0 + 2 < len && src[q0 + 1] == q && src[q0 + 2] == q;
  size_t qn = triple ? 3 : 1;
  if (after < q0 + 2 * qn || src[after - 1] != q) return NULL; /* unterminated */
  for (size_t j = after; j < stmt_end; j++) { /* only blanks or a comment may follow */
    if (src[j] == '#' ) break;
    if (src[j] != ' ' && src[j] != '\t' && src[j] != '\r' && src[j] != '\n') return NULL;
  }
  size_t b = q0 + qn, e = after - qn;
  char *out = malloc(e - b + 1);
  if (!out) {
    *oom = 1;
    return NULL;
  }
  size_t o = 0;
  for (size_t j = b; j < e; j++) {
    if (!raw && src[j] == '\\' && j + 1 < e) {
      char n = src[j + 1];
      if (n == '\n') { j++; continue; }
      if (n == '\\' || n == '\'' || n == '"') { out[o++] = n; j++; continue; }
    }
    if (src[j] != '\r') out[o++] = src[j];
  }
  out[o] = '\0';
  return out;
}

static int blank_line(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isspace((unsigned char)s[i])) return 0;
  return 1;
}

/* The first paragraph of a docstring, dedented (inspect.cleandoc's rule:
 * the first line loses its leading blanks, the others their common
 * indentation), lines right-trimmed and joined with '\n'. */
static char *first_paragraph(const char *doc) {
  size_t n = strlen(doc), minind = (size_t)-1;
  /* common indentation of the lines after the first */
  const char *p = strchr(doc, '\n');
  while (p) {
    const char *s = p + 1, *e = strchr(s, '\n');
    size_t ln = e ? (size_t)(e - s) : strlen(s), ind = 0;
    while (ind < ln && (s[ind] == ' ' || s[ind] == '\t')) ind++;
    if (ind < ln && ind < minind) minind = ind;
    p = e;
  }
  if (minind == (size_t)-1) minind = 0;
  char *out = malloc(n + 1);
  if (!out) return NULL;
  size_t o = 0;
  int started = 0, first = 1;
  const char *s = doc;
  while (s) {
    const char *e = strchr(s, '\n');
    size_t ln = e ? (size_t)(e - s) : strlen(s);
    const char *t = s;
    if (first) {
      while (ln && (*t == ' ' || *t == '\t')) t++, ln--;
    } else {
      size_t cut = 0;
      while (cut < minind && cut < ln && (t[cut] == ' ' || t[cut] == '\t')) cut++;
      t += cut;
      ln -= cut;
    }
    first = 0;
    while (ln && isspace((unsigned char)t[ln - 1])) ln--;
    if (blank_line(t, ln)) {
      if (started) break;
    } else {
      if (started) out[o++] = '\n';
      memcpy(out + o, t, ln);
      o += ln;
      started = 1;
    }
    s = e ? e + 1 : NULL;
  }
  out[o] = '\0';
  return out;
}

/* The text of [start, end) without [cut0, cut1), each physical line that
 * does not start inside a string losing up to `indent` leading blanks;
 * the final newline is dropped. */
static char *function_source(const char *src, size_t start, size_t end, size_t cut0, size_t cut1,
                             size_t line, size_t indent, const unsigned char *in_str) {
  char *out = malloc(end - start + 1);
  if (!out) return NULL;
  size_t o = 0, i = start;
  while (i < end) {
    size_t e = i;
    while (e < end && src[e] != '\n') e++;
    size_t next = e < end ? e + 1 : e;
    if (!(i >= cut0 && i < cut1)) {
      size_t j = i;
      if (!in_str[line]) {
        size_t col = 0;
        while (j < e && col < indent && (src[j] == ' ' || src[j] == '\t')) {
          col = src[j] == '\t' ? (col / 8 + 1) * 8 : col + 1;
          j++;
        }
      }
      memcpy(out + o, src + j, next - j);
      o += next - j;
    }
    line++;
    i = next;
  }
  while (o && (out[o - 1] == '\n' || out[o - 1] == '\r')) o--;
  out[o] = '\0';
  return out;
}

void pyscan_free(pyscan_func *f, size_t n) {
  if (!f) return;
  for (size_t i = 0; i < n; i++) {
    free(f[i].name);
    free(f[i].doc);
    free(f[i].source);
  }
  free(f);
}

int pyscan_functions(const char *src, size_t len, pyscan_func **out, size_t *n, foil_err *err) {
  *out = NULL;
  *n = 0;
  lines L = {0};
  int rc = split_lines(src, len, &L, err);
  pyscan_func *fs = NULL;
  size_t nf = 0, cap = 0;
  for (size_t k = 0; !rc && k < L.n; k++) {
    lline *d = &L.v[k];
    if (d->kind != LL_CODE) continue;
    size_t nm = def_name_at(src, len, d->code);
    if (!nm) continue;
    pyscan_func f = {.def_line = d->line, .indent = d->indent};
    size_t ne = nm;
    while (ne < len && is_id((unsigned char)src[ne])) ne++;
    /* decorators: the code lines right above with the same indentation */
    size_t first = k;
    while (first > 0 && L.v[first - 1].kind == LL_CODE && L.v[first - 1].indent == d->indent &&
           src[L.v[first - 1].code] == '@')
      first--;
    f.start = L.v[first].start;
    size_t last = k, body0 = 0;
    if (!d->after_colon) { /* a block: lines indented deeper than the def */
      for (size_t j = k + 1; j < L.n; j++) {
        if (L.v[j].kind != LL_CODE) continue;
        if (L.v[j].indent <= d->indent) break;
        if (!body0) body0 = j;
        last = j;
      }
      if (!body0) continue; /* no body (end of file): not a function we can use */
    }
    f.end = L.v[last].end;
    if (body0) {
      int oom = 0;
      char *raw = docstring_at(src, len, L.v[body0].code, L.v[body0].end, &oom);
      if (oom) {
        rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        break;
      }
      if (raw) {
        f.doc = first_paragraph(raw);
        free(raw);
        if (!f.doc) {
          rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
          break;
        }
        f.doc_start = L.v[body0].start;
        f.doc_end = L.v[body0].end;
        for (size_t j = body0 + 1; j < last && L.v[j].kind == LL_BLANK; j++) f.doc_end = L.v[j].end;
        f.body_only_doc = last == body0;
      }
    }
    f.name = malloc(ne - nm + 1);
    f.source = function_source(src, f.start, f.end, f.doc_start, f.doc_end, L.v[first].line,
                               d->indent, L.in_str);
    if (f.name) {
      memcpy(f.name, src + nm, ne - nm);
      f.name[ne - nm] = '\0';
    }
    if (nf == cap) {
      cap = cap ? cap * 2 : 16;
      pyscan_func *nfs = realloc(fs, cap * sizeof *nfs);
      if (!nfs) {
        free(f.name), free(f.doc), free(f.source);
        rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        break;
      }
      fs = nfs;
    }
    fs[nf++] = f;
    if (!f.name || !f.source) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  free(L.v);
  free(L.in_str);
  if (rc) {
    pyscan_free(fs, nf);
    return rc;
  }
  *out = fs;
  *n = nf;
  return FOIL_OK;
}

/* ---- the standard library ------------------------------------------------------------- */

/* Directories never entered: tests, IDLE, third-party and build files. */
static int skip_dir(const char *name) {
  static const char *const skip[] = {"test", "tests", "idlelib", "site-packages", "dist-packages",
                                     "__pycache__", "lib-dynload", "turtledemo", NULL};
  for (int i = 0; skip[i]; i++)
    if (!strcmp(name, skip[i])) return 1;
  return name[0] == '.' || !strncmp(name, "config-", 7);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the .py files under base/rel (relative paths, malloc'ed) to out. */
static int walk(const char *base, const char *rel, prep_strv *out, foil_err *err) {
  char *dir = rel[0] ? prep_asprintf("%s/%s", base, rel) : prep_asprintf("%s", base);
  if (!dir) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  DIR *d = opendir(dir);
  if (!d) {
    int rc = foil_err_set(err, rel[0] ? FOIL_EPERM : FOIL_ENOTFOUND,
                          "cannot read %s%s", dir,
                          rel[0] ? "" : ": install Debian's libpython3.11-stdlib");
    free(dir);
    return rc;
  }
  prep_strv names = {0};
  int rc = FOIL_OK;
  struct dirent *e;
  while (!rc && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *full = prep_asprintf("%s/%s", dir, e->d_name);
    char *r = rel[0] ? prep_asprintf("%s/%s", rel, e->d_name) : prep_asprintf("%s", e->d_name);
    struct stat st;
    if (!full || !r) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    else if (lstat(full, &st) != 0) rc = foil_err_set(err, FOIL_EPERM, "cannot stat %s", full);
    else if (S_ISDIR(st.st_mode)) {
      if (!skip_dir(e->d_name)) {
        rc = prep_strv_push(&names, r, err); /* marked below by a trailing '/' */
        if (!rc) { /* names owns r now: replaced by its marked copy */
          char *m = prep_asprintf("%s/", r);
          free(r);
          names.v[names.n - 1] = m;
          if (!m) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
          r = NULL;
        }
      }
    } else if (S_ISREG(st.st_mode)) {
      size_t l = strlen(e->d_name);
      if (l > 3 && !strcmp(e->d_name + l - 3, ".py")) {
        rc = prep_strv_push(&names, r, err);
        if (!rc) r = NULL;
      }
    }
    free(r);
    free(full);
  }
  closedir(d);
  free(dir);
  if (!rc && names.n) qsort(names.v, names.n, sizeof *names.v, cmp_str);
  for (size_t i = 0; i < names.n; i++) {
    if (rc || !names.v[i]) { /* after an error only freed (an entry NULL where its copy failed) */
      free(names.v[i]);
      continue;
    }
    size_t l = strlen(names.v[i]);
    if (names.v[i][l - 1] == '/') {
      names.v[i][l - 1] = '\0';
      rc = walk(base, names.v[i], out, err);
      free(names.v[i]);
    } else if (!rc) {
      rc = prep_strv_push(out, names.v[i], err);
      if (rc) free(names.v[i]);
    } else {
      free(names.v[i]);
    }
  }
  prep_strv_free(&names);
  return rc;
}

static size_t count_words(const char *s) {
  size_t n = 0;
  int in = 0;
  for (; *s; s++) {
    int sp = isspace((unsigned char)*s);
    if (!sp && !in) n++;
    in = !sp;
  }
  return n;
}

/* Whitespace runs collapsed to one space, ends trimmed: the key that
 * deduplicates functions differing only in layout. */
static char *normalize(prep_pool *pool, const char *s, size_t *len) {
  size_t n = strlen(s), o = 0;
  char *tmp = malloc(n + 1);
  if (!tmp) return NULL;
  int sp = 0;
  for (size_t i = 0; i < n; i++) {
    if (isspace((unsigned char)s[i])) {
      sp = 1;
      continue;
    }
    if (sp && o) tmp[o++] = ' ';
    sp = 0;
    tmp[o++] = s[i];
  }
  char *r = prep_pool_dup(pool, tmp, o);
  free(tmp);
  *len = o;
  return r;
}

typedef struct {
  char *doc, *source, *id; /* pooled */
  int64_t group;
  int split;
} code_fn;

int prepare_code_with(const char *root, uint64_t seed, const code_opts *o, foil_err *err) {
  const char *name = o->name ? o->name : "code";
  prep_strv files = {0};
  prep_pool pool = {0};
  prep_map by_src = {0}, by_doc = {0};
  code_fn *fns = NULL;
  size_t nfn = 0, capfn = 0, n_scanned = 0, n_nodoc = 0, n_short = 0, n_dup = 0, n_badutf8 = 0,
         n_long = 0, n_modules[3] = {0, 0, 0};
  char *license = NULL, *lic_out = NULL, *paths[3] = {NULL, NULL, NULL}, *license_path = NULL;
  h5io *out[3] = {NULL, NULL, NULL};
  int rc = walk(o->libdir, "", &files, err);
  size_t lic_n;
  if (!rc) rc = prep_read_file(o->license, &license, &lic_n, err);

  for (size_t fi = 0; !rc && fi < files.n; fi++) {
    char *path = prep_asprintf("%s/%s", o->libdir, files.v[fi]), *src = NULL;
    if (!path) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      break;
    }
    size_t len;
    rc = prep_read_file(path, &src, &len, err);
    free(path);
    if (rc) break;
    if (!prep_utf8_valid(src, len, NULL)) {
      n_badutf8++;
      free(src);
      continue;
    }
    /* module: path without .py, '/' -> '.', package/__init__ -> package */
    char *mod = prep_asprintf("%s", files.v[fi]);
    if (!mod) {
      free(src);
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      break;
    }
    size_t ml = strlen(mod) - 3;
    mod[ml] = '\0';
    if (ml >= 9 && !strcmp(mod + ml - 9, "/__init__")) mod[ml - 9] = '\0';
    for (char *p = mod; *p; p++)
      if (*p == '/') *p = '.';
    int64_t group = prep_group_key(mod, strlen(mod));
    double u = prep_unit(seed, prep_hash(mod, strlen(mod)));
    int split = u < 0.8 ? 0 : u < 0.9 ? 1 : 2;
    n_modules[split]++;
    pyscan_func *fs;
    size_t nf;
    rc = pyscan_functions(src, len, &fs, &nf, err);
    for (size_t k = 0; !rc && k < nf; k++) {
      pyscan_func *f = &fs[k];
      n_scanned++;
      if (!f->doc || f->body_only_doc) {
        n_nodoc++;
        continue;
      }
      if (count_words(f->doc) < 3) {
        n_short++;
        continue;
      }
      if (strlen(f->doc) > PREP_MAX_TEXT || strlen(f->source) > PREP_MAX_TEXT) {
        n_long++;
        continue;
      }
      size_t sl, dl;
      char *ns = normalize(&pool, f->source, &sl), *nd = normalize(&pool, f->doc, &dl);
      if (!ns || !nd) {
        rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        break;
      }
      if (prep_map_get(&by_src, ns, sl) >= 0 || prep_map_get(&by_doc, nd, dl) >= 0) {
        n_dup++;
        continue;
      }
      rc = prep_map_put(&by_src, ns, sl, (int64_t)nfn, NULL, err);
      if (!rc) rc = prep_map_put(&by_doc, nd, dl, (int64_t)nfn, NULL, err);
      if (!rc && nfn == capfn) {
        capfn = capfn ? capfn * 2 : 4096;
        code_fn *n2 = realloc(fns, capfn * sizeof *n2);
        if (!n2) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        else fns = n2;
      }
      if (rc) break;
      char idbuf[1024];
      snprintf(idbuf, sizeof idbuf, "%s:%s:%zu", mod, f->name, f->def_line);
      code_fn c = {prep_pool_dup(&pool, f->doc, strlen(f->doc)),
                   prep_pool_dup(&pool, f->source, strlen(f->source)),
                   prep_pool_dup(&pool, idbuf, strlen(idbuf)), group, split};
      if (!c.doc || !c.source || !c.id) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      else fns[nfn++] = c;
    }
    pyscan_free(fs, nf);
    free(mod);
    free(src);
  }

  /* columns */
  prep_strv q[3] = {{0}}, p[3] = {{0}}, ids[3] = {{0}}, all_src = {0}, all_ids = {0};
  prep_i64v g[3] = {{0}}, qr_held = {0}, qr_all = {0};
  for (size_t i = 0; !rc && i < nfn; i++) {
    code_fn *c = &fns[i];
    int s = c->split;
    if (s == 2) {
      rc = prep_i64v_push(&qr_held, (int64_t)q[2].n, err);
      if (!rc) rc = prep_i64v_push(&qr_held, (int64_t)q[2].n, err);
      if (!rc) rc = prep_i64v_push(&qr_all, (int64_t)q[2].n, err);
      if (!rc) rc = prep_i64v_push(&qr_all, (int64_t)all_src.n, err);
    }
    if (!rc) rc = prep_strv_push(&q[s], c->doc, err);
    if (!rc) rc = prep_strv_push(&p[s], c->source, err);
    if (!rc) rc = prep_strv_push(&ids[s], c->id, err);
    if (!rc) rc = prep_i64v_push(&g[s], c->group, err);
    if (!rc) rc = prep_strv_push(&all_src, c->source, err);
    if (!rc) rc = prep_strv_push(&all_ids, c->id, err);
  }
  dataset_pairs sp[3];
  for (int s = 0; s < 3; s++)
    sp[s] = (dataset_pairs){.n = q[s].n, .query = q[s].v, .positive = p[s].v, .group = g[s].v};
  const dataset_pairs *spp[3] = {&sp[0], &sp[1], &sp[2]};
  dataset_bench held = {.n_queries = q[2].n, .n_corpus = q[2].n, .n_qrels = qr_held.n / 2,
                        .queries = q[2].v, .query_ids = ids[2].v, .corpus = p[2].v,
                        .corpus_ids = ids[2].v, .qrels = qr_held.v};
  dataset_bench all = {.n_queries = q[2].n, .n_corpus = all_src.n, .n_qrels = qr_all.n / 2,
                       .queries = q[2].v, .query_ids = ids[2].v, .corpus = all_src.v,
                       .corpus_ids = all_ids.v, .qrels = qr_all.v};
  dataset_meta meta = {"Python 3.11 standard library (Debian libpython3.11-stdlib, libpython3.11-minimal)",
                       prep_created_by("foil data prepare code"), seed};
  if (!rc && q[2].n == 0)
    rc = foil_err_set(err, FOIL_EPRECOND, "%s: no documented functions fell into the test split",
                      o->libdir);
  if (!rc) {
    paths[0] = prep_asprintf("%s/datasets/%s/pairs.h5", root, name);
    paths[1] = prep_asprintf("%s/datasets/%s/benchmarks/heldout.h5", root, name);
    paths[2] = prep_asprintf("%s/datasets/%s/benchmarks/all.h5", root, name);
    license_path = prep_asprintf("%s/datasets/%s/LICENSE", root, name);
    lic_out = prep_asprintf("The Python 3.11 standard library, as packaged by Debian (libpython3.11-stdlib),\n"
                            "from which the files in this directory were derived by `foil data prepare\n"
                            "code`. Its licence (%s) follows.\n\n%s", o->license, license);
    if (!paths[0] || !paths[1] || !paths[2] || !license_path || !lic_out)
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  if (!rc) rc = dataset_pairs_create(&out[0], paths[0], spp, 0, &meta, err);
  if (!rc) rc = dataset_bench_create(&out[1], paths[1], &held, &meta, err);
  if (!rc) rc = dataset_bench_create(&out[2], paths[2], &all, &meta, err);
  if (!rc) rc = prep_write_file(license_path, lic_out, strlen(lic_out), err);
  for (int k = 0; k < 3 && !rc; k++) rc = h5io_publish(&out[k], err);
  for (int k = 0; k < 3; k++) h5io_abandon(&out[k]);
  if (!rc)
    printf("code: %zu files, %zu functions scanned; %zu without docstring or body, %zu with a "
           "docstring under 3 words,\n  %zu duplicates, %zu too long, %zu files not UTF-8 skipped\n"
           "  pairs.h5: train %zu, dev %zu, test %zu pairs (modules %zu/%zu/%zu)\n"
           "  benchmarks/heldout.h5: %zu queries, %zu docs; benchmarks/all.h5: %zu queries, %zu docs\n"
           "  -> %s/datasets/%s\n",
           files.n, n_scanned, n_nodoc, n_short, n_dup, n_long, n_badutf8, q[0].n, q[1].n, q[2].n,
           n_modules[0], n_modules[1], n_modules[2], held.n_queries, held.n_corpus, all.n_queries,
           all.n_corpus, root, name);

  for (int s = 0; s < 3; s++) {
    prep_strv_free(&q[s]);
    prep_strv_free(&p[s]);
    prep_strv_free(&ids[s]);
    prep_i64v_free(&g[s]);
    free(paths[s]);
  }
  prep_strv_free(&all_src);
  prep_strv_free(&all_ids);
  prep_i64v_free(&qr_held);
  prep_i64v_free(&qr_all);
  for (size_t i = 0; i < files.n; i++) free(files.v[i]);
  prep_strv_free(&files);
  prep_map_free(&by_src);
  prep_map_free(&by_doc);
  prep_pool_free(&pool);
  free(fns);
  free(license);
  free(lic_out);
  free(license_path);
  return rc;
}

int prepare_code(const char *root, uint64_t seed, foil_err *err) {
  code_opts o = {"/usr/lib/python3.11", "/usr/lib/python3.11/LICENSE.txt", NULL};
  return prepare_code_with(root, seed, &o, err);
}
