/* tokenizer.c — see tokenizer.h. Loading, checks, (de)serialization and
 * export; the algorithms live in wordpiece.c and bpe.c. */
#define _POSIX_C_SOURCE 200809L
#include "model/tokenizer.h"
#include "common/fileio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/bpe.h"
#include "model/tok_map.h"
#include "model/tok_unicode.h"
#include "model/wordpiece.h"

struct tokenizer {
  int kind;
  int n_vocab, n_merges;
  char **vocab;  /* n_vocab pointers into strs */
  char **merges; /* n_merges "left right" pointers into strs */
  char *strs;    /* every string, NUL-terminated, one allocation */
  wordpiece *wp;
  bpe *bpe;
};

void tokenizer_destroy(tokenizer **tp) {
  tokenizer *t = tp ? *tp : NULL;
  if (!t) return;
  wordpiece_free(t->wp);
  bpe_free(t->bpe);
  free(t->vocab);
  free(t->merges);
  free(t->strs);
  free(t);
  *tp = NULL;
}

int tokenizer_kind(const tokenizer *t) { return t->kind; }
int tokenizer_vocab_size(const tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_pad_id(const tokenizer *t) {
  return t->kind == TOKENIZER_WORDPIECE ? wordpiece_pad_id(t->wp) : bpe_pad_id(t->bpe);
}
const char *tokenizer_token(const tokenizer *t, int32_t id) {
  return id >= 0 && id < t->n_vocab ? t->vocab[id] : NULL;
}
int tokenizer_n_merges(const tokenizer *t) { return t->n_merges; }
const char *tokenizer_merge(const tokenizer *t, int i) {
  return i >= 0 && i < t->n_merges ? t->merges[i] : NULL;
}

/* ---- building ------------------------------------------------------------- */

/* Where the parts came from, for messages: file names and line numbers of
 * each vocab entry / merge (NULL: name by id / merge number). */
typedef struct {
  const char *vocab_path, *merges_path;
  const long *merge_lines;
} origin;

static void where_merge(const origin *o, int i, char *buf, size_t cap) {
  if (o && o->merges_path && o->merge_lines)
    snprintf(buf, cap, "%s:%ld", o->merges_path, o->merge_lines[i]);
  else
    snprintf(buf, cap, "merge %d", i + 1);
}

static int build(tokenizer **out, int kind, const char *const *vocab, int nv,
                 const char *const *merges, int nm, const origin *org, foil_err *err) {
  *out = NULL;
  if (kind != TOKENIZER_WORDPIECE && kind != TOKENIZER_BPE)
    return foil_err_set(err, FOIL_EINVAL, "unknown tokenizer kind %d", kind);
  if (nv <= 0) return foil_err_set(err, FOIL_EINVAL, "the vocabulary is empty");
  if (kind == TOKENIZER_WORDPIECE && nm > 0)
    return foil_err_set(err, FOIL_EINVAL, "a WordPiece tokenizer has no merges");
  for (int i = 0; i < nv; i++) {
    size_t l = strlen(vocab[i]);
    if (l == 0) return foil_err_set(err, FOIL_EINVAL, "token id %d is empty", i);
    if (tok_utf8_check(vocab[i], l) != l)
      return foil_err_set(err, FOIL_EINVAL, "token id %d is not valid UTF-8", i);
  }
  tokenizer *t = calloc(1, sizeof *t);
  if (!t) return foil_err_set(err, FOIL_ENOMEM, "out of memory for a tokenizer");
  t->kind = kind;
  size_t total = 0;
  for (int i = 0; i < nv; i++) total += strlen(vocab[i]) + 1;
  for (int i = 0; i < nm; i++) total += strlen(merges[i]) + 1;
  t->strs = malloc(total ? total : 1);
  t->vocab = malloc((size_t)nv * sizeof *t->vocab);
  t->merges = malloc((size_t)(nm ? nm : 1) * sizeof *t->merges);
  int32_t(*pairs)[2] = malloc((size_t)(nm ? nm : 1) * sizeof *pairs);
  tok_strmap map = {0};
  int rc = FOIL_OK;
  if (!t->strs || !t->vocab || !t->merges || !pairs) {
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for a tokenizer of %d tokens", nv);
    goto done;
  }
  char *p = t->strs;
  for (int i = 0; i < nv; i++) {
    size_t l = strlen(vocab[i]) + 1;
    memcpy(p, vocab[i], l);
    t->vocab[i] = p;
    p += l;
  }
  for (int i = 0; i < nm; i++) {
    size_t l = strlen(merges[i]) + 1;
    memcpy(p, merges[i], l);
    t->merges[i] = p;
    p += l;
  }
  t->n_vocab = nv;
  t->n_merges = nm;
  if (kind == TOKENIZER_WORDPIECE) {
    rc = wordpiece_new(&t->wp, (const char *const *)t->vocab, nv, err);
    goto done;
  }
  if (tok_strmap_init(&map, (size_t)nv) < 0) {
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for a tokenizer of %d tokens", nv);
    goto done;
  }
  for (int i = 0; i < nv; i++) {
    int32_t old;
    int r = tok_strmap_put(&map, t->vocab[i], strlen(t->vocab[i]), i, &old);
    if (r < 0) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for a tokenizer of %d tokens", nv);
      goto done;
    }
    if (r == 1) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s%stoken '%s' has two ids (%d and %d)",
                        org && org->vocab_path ? org->vocab_path : "",
                        org && org->vocab_path ? ": " : "", t->vocab[i], (int)old, i);
      goto done;
    }
  }
  for (int i = 0; i < nm; i++) {
    char where[600];
    const char *m = t->merges[i];
    const char *sp = strchr(m, ' ');
    if (!sp || sp == m || !sp[1] || strchr(sp + 1, ' ')) {
      where_merge(org, i, where, sizeof where);
      rc = foil_err_set(err, FOIL_EINVAL, "%s: a merge is two tokens separated by one space, got '%s'",
                        where, m);
      goto done;
    }
    int32_t a = tok_strmap_get(&map, m, (size_t)(sp - m));
    int32_t b = tok_strmap_get(&map, sp + 1, strlen(sp + 1));
    if (a < 0 || b < 0) {
      where_merge(org, i, where, sizeof where);
      rc = foil_err_set(err, FOIL_EINVAL, "%s: token '%.*s' of merge '%s' is not in the vocabulary",
                        where, a < 0 ? (int)(sp - m) : (int)strlen(sp + 1), a < 0 ? m : sp + 1, m);
      goto done;
    }
    pairs[i][0] = a;
    pairs[i][1] = b;
  }
  rc = bpe_new(&t->bpe, (const char *const *)t->vocab, nv, (const int32_t(*)[2])pairs, nm, err);
  if (rc && org && org->merges_path && org->merge_lines) {
    /* name the file and line of a merge bpe_new refused */
    int k;
    if (sscanf(err ? err->msg : "", "merge %d", &k) == 1 && k >= 1 && k <= nm) {
      char rest[512];
      const char *colon = strchr(err->msg, ':');
      snprintf(rest, sizeof rest, "%s", colon ? colon : "");
      foil_err_set(err, rc, "%s:%ld%s", org->merges_path, org->merge_lines[k - 1], rest);
    }
  }
done:
  tok_strmap_free(&map);
  free(pairs);
  if (rc) {
    tokenizer_destroy(&t);
    return rc;
  }
  *out = t;
  return FOIL_OK;
}

int tokenizer_from_strings(tokenizer **out, int kind, const char *const *vocab, int n_vocab,
                           const char *const *merges, int n_merges, foil_err *err) {
  return build(out, kind, vocab, n_vocab, merges, n_merges, NULL, err);
}

/* ---- files ---------------------------------------------------------------- */


/* Splits data (modified: line ends become NUL) into lines; a final line
 * without '\n' counts, an empty remainder after the last '\n' does not.
 * Trailing '\r' is removed. *lines is malloc'ed. */
static int split_lines(char *data, size_t len, char ***lines, int *n) {
  int cap = 1024, k = 0;
  char **ls = malloc((size_t)cap * sizeof *ls);
  if (!ls) return -1;
  size_t i = 0;
  while (i < len) {
    char *nl = memchr(data + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - data) : len;
    data[e] = 0;
    if (e > i && data[e - 1] == '\r') data[e - 1] = 0;
    if (k == cap) {
      char **nls = realloc(ls, (size_t)cap * 2 * sizeof *ls);
      if (!nls) {
        free(ls);
        return -1;
      }
      ls = nls;
      cap *= 2;
    }
    ls[k++] = data + i;
    i = e + 1;
  }
  *lines = ls;
  *n = k;
  return 0;
}

static int load_wordpiece(tokenizer **out, const char *path, foil_err *err) {
  char *data;
  size_t len;
  int rc = foil_read_file(path, &data, &len, err);
  if (rc) return rc;
  char **lines = NULL;
  int n = 0;
  if (memchr(data, 0, len)) {
    size_t at = (size_t)((char *)memchr(data, 0, len) - data);
    long line = 1;
    for (size_t i = 0; i < at; i++) line += data[i] == '\n';
    free(data);
    return foil_err_set(err, FOIL_EINVAL, "%s:%ld: NUL byte in a vocabulary line", path, line);
  }
  if (split_lines(data, len, &lines, &n) < 0) {
    free(data);
    return foil_err_set(err, FOIL_ENOMEM, "%s: out of memory", path);
  }
  for (int i = 0; i < n && !rc; i++) {
    char *s = lines[i];
    size_t l = strlen(s);
    while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r')) s[--l] = 0;
    size_t bad = tok_utf8_check(s, l);
    if (bad < l)
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%d: invalid UTF-8 at byte %zu", path, i + 1, bad + 1);
    else if (l == 0)
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%d: empty line (one token per line expected)", path,
                        i + 1);
    else
      for (size_t j = 0; j < l && !rc; j++)
        if ((unsigned char)s[j] <= ' ')
          rc = foil_err_set(err, FOIL_EINVAL,
                            "%s:%d: white space or control character inside token '%s'", path,
                            i + 1, s);
  }
  if (!rc && n == 0) rc = foil_err_set(err, FOIL_EINVAL, "%s: no tokens", path);
  if (!rc) {
    origin o = {path, NULL, NULL};
    rc = build(out, TOKENIZER_WORDPIECE, (const char *const *)lines, n, NULL, 0, &o, err);
    if (rc && err && strstr(err->msg, "appears twice")) {
      int a, b;
      if (sscanf(strstr(err->msg, "(ids"), "(ids %d and %d)", &a, &b) == 2)
        foil_err_set(err, rc, "%s:%d: token '%s' appears twice (first at line %d)", path, b + 1,
                     lines[b], a + 1);
    } else if (rc && err && !strstr(err->msg, path)) {
      char m[512];
      snprintf(m, sizeof m, "%s", err->msg);
      foil_err_set(err, rc, "%s: %s", path, m);
    }
  }
  free(lines);
  free(data);
  return rc;
}

/* Line (1-based) of byte offset at in data. */
static long line_of(const char *data, size_t at) {
  long line = 1;
  for (size_t i = 0; i < at; i++) line += data[i] == '\n';
  return line;
}

static int load_bpe(tokenizer **out, const char *vpath, foil_err *err) {
  char *vdata = NULL, *mdata = NULL, *mpath = NULL;
  size_t vlen, mlen;
  cJSON *json = NULL;
  char **vocab = NULL, **lines = NULL;
  long *mlines = NULL;
  int rc = foil_read_file(vpath, &vdata, &vlen, err);
  if (rc) return rc;
  /* merges.txt beside vocab.json */
  const char *slash = strrchr(vpath, '/');
  size_t dlen = slash ? (size_t)(slash - vpath) + 1 : 0;
  mpath = malloc(dlen + sizeof "merges.txt");
  if (!mpath) {
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    goto done;
  }
  memcpy(mpath, vpath, dlen);
  memcpy(mpath + dlen, "merges.txt", sizeof "merges.txt");
  if ((rc = foil_read_file(mpath, &mdata, &mlen, err))) goto done;

  size_t bad = tok_utf8_check(vdata, vlen);
  if (bad < vlen) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: invalid UTF-8", vpath, line_of(vdata, bad));
    goto done;
  }
  json = cJSON_ParseWithLength(vdata, vlen);
  if (!json || !cJSON_IsObject(json)) {
    const char *e = cJSON_GetErrorPtr();
    long line = (json || !e || e < vdata || e > vdata + vlen) ? 1 : line_of(vdata, (size_t)(e - vdata));
    rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: not a JSON object of token -> id", vpath, line);
    goto done;
  }
  int nv = cJSON_GetArraySize(json);
  vocab = calloc((size_t)(nv ? nv : 1), sizeof *vocab);
  if (!vocab) {
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    goto done;
  }
  for (cJSON *it = json->child; it; it = it->next) {
    double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (d < 0 || d >= nv || d != (double)(int)d) {
      rc = foil_err_set(err, FOIL_EINVAL,
                        "%s: token '%s' has id %s; ids must be the integers 0..%d, each once",
                        vpath, it->string, cJSON_IsNumber(it) ? "out of range" : "that is not a number",
                        nv - 1);
      goto done;
    }
    int id = (int)d;
    if (vocab[id]) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: id %d is given to both '%s' and '%s'", vpath, id,
                        vocab[id], it->string);
      goto done;
    }
    vocab[id] = it->string;
  }
  int nl = 0;
  bad = tok_utf8_check(mdata, mlen);
  if (bad < mlen) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s:%ld: invalid UTF-8", mpath, line_of(mdata, bad));
    goto done;
  }
  if (split_lines(mdata, mlen, &lines, &nl) < 0 || !(mlines = malloc((size_t)(nl ? nl : 1) * sizeof *mlines))) {
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    goto done;
  }
  int nm = 0;
  for (int i = 0; i < nl; i++) {
    if (!strncmp(lines[i], "#version", 8)) continue;
    lines[nm] = lines[i];
    mlines[nm++] = i + 1;
  }
  origin o = {vpath, mpath, mlines};
  rc = build(out, TOKENIZER_BPE, (const char *const *)vocab, nv, (const char *const *)lines, nm, &o,
             err);
done:
  cJSON_Delete(json);
  free(vocab);
  free(lines);
  free(mlines);
  free(vdata);
  free(mdata);
  free(mpath);
  return rc;
}

int tokenizer_load(tokenizer **out, const char *path, foil_err *err) {
  *out = NULL;
  size_t l = strlen(path);
  if (l >= 5 && !strcmp(path + l - 5, ".json")) return load_bpe(out, path, err);
  return load_wordpiece(out, path, err);
}

/* ---- encode / decode ------------------------------------------------------- */

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special,
                     int32_t *ids, int max, int *n, foil_err *err) {
  *n = 0;
  if (max > 0 && !ids) return foil_err_set(err, FOIL_EINVAL, "no buffer for %d ids", max);
  size_t bad = tok_utf8_check(text, len);
  if (bad < len)
    return foil_err_set(err, FOIL_EINVAL, "invalid UTF-8 at byte offset %zu of the text", bad);
  if (t->kind == TOKENIZER_WORDPIECE)
    return wordpiece_encode(t->wp, text, len, add_special, ids, max, n, err);
  return bpe_encode(t->bpe, text, len, ids, max, n, err);
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, int n, char **text, foil_err *err) {
  *text = NULL;
  if (n < 0 || (n > 0 && !ids)) return foil_err_set(err, FOIL_EINVAL, "no ids to decode");
  if (t->kind == TOKENIZER_WORDPIECE) return wordpiece_decode(t->wp, ids, n, text, err);
  return bpe_decode(t->bpe, ids, n, text, err);
}

/* ---- serialization ---------------------------------------------------------- */
/* Blob: "FOILTOK1", then little-endian u32 kind, n_vocab, n_merges, then
 * every vocab string and every merge string as u32 length + bytes. */

static const char MAGIC[8] = {'F', 'O', 'I', 'L', 'T', 'O', 'K', '1'};

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int tokenizer_serialize(const tokenizer *t, uint8_t **blob, size_t *len, foil_err *err) {
  size_t total = 8 + 12;
  for (int i = 0; i < t->n_vocab; i++) total += 4 + strlen(t->vocab[i]);
  for (int i = 0; i < t->n_merges; i++) total += 4 + strlen(t->merges[i]);
  uint8_t *b = malloc(total);
  if (!b) return foil_err_set(err, FOIL_ENOMEM, "out of memory for a %zu-byte tokenizer blob", total);
  memcpy(b, MAGIC, 8);
  put_u32(b + 8, (uint32_t)t->kind);
  put_u32(b + 12, (uint32_t)t->n_vocab);
  put_u32(b + 16, (uint32_t)t->n_merges);
  uint8_t *p = b + 20;
  for (int k = 0; k < t->n_vocab + t->n_merges; k++) {
    const char *s = k < t->n_vocab ? t->vocab[k] : t->merges[k - t->n_vocab];
    size_t l = strlen(s);
    put_u32(p, (uint32_t)l);
    memcpy(p + 4, s, l);
    p += 4 + l;
  }
  *blob = b;
  *len = total;
  return FOIL_OK;
}

int tokenizer_deserialize(tokenizer **out, const uint8_t *blob, size_t len, foil_err *err) {
  *out = NULL;
  if (!blob || len < 20 || memcmp(blob, MAGIC, 8))
    return foil_err_set(err, FOIL_EINVAL, "not a foil tokenizer blob (bad magic or too short)");
  uint32_t kind = get_u32(blob + 8), nv = get_u32(blob + 12), nm = get_u32(blob + 16);
  if (nv > (len - 20) / 4 || nm > (len - 20) / 4 || (size_t)nv + nm > (len - 20) / 4)
    return foil_err_set(err, FOIL_EINVAL, "tokenizer blob truncated: %u tokens and %u merges in %zu bytes",
                        nv, nm, len);
  size_t n = (size_t)nv + nm;
  char **strs = calloc(n ? n : 1, sizeof *strs);
  if (!strs) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int rc = FOIL_OK;
  size_t at = 20;
  for (size_t k = 0; k < n; k++) {
    if (len - at < 4 || get_u32(blob + at) > len - at - 4) {
      rc = foil_err_set(err, FOIL_EINVAL, "tokenizer blob truncated at string %zu of %zu", k, n);
      break;
    }
    uint32_t l = get_u32(blob + at);
    if (memchr(blob + at + 4, 0, l)) {
      rc = foil_err_set(err, FOIL_EINVAL, "tokenizer blob: string %zu holds a NUL byte", k);
      break;
    }
    if (!(strs[k] = malloc((size_t)l + 1))) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      break;
    }
    memcpy(strs[k], blob + at + 4, l);
    strs[k][l] = 0;
    at += 4 + (size_t)l;
  }
  if (!rc && at != len)
    rc = foil_err_set(err, FOIL_EINVAL, "tokenizer blob: %zu trailing bytes", len - at);
  if (!rc)
    rc = build(out, (int)kind, (const char *const *)strs, (int)nv, (const char *const *)strs + nv,
               (int)nm, NULL, err);
  for (size_t k = 0; k < n; k++) free(strs[k]);
  free(strs);
  return rc;
}

/* ---- export ------------------------------------------------------------------ */

typedef struct {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *ns = realloc(b->s, cap);
    if (!ns) {
      b->oom = 1;
      return;
    }
    b->s = ns;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string as serde_json writes it: escapes " \ and control bytes. */
static void sb_json(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    char e[8];
    if (c == '"' || c == '\\') {
      e[0] = '\\';
      e[1] = (char)c;
      sb_put(b, e, 2);
    } else if (c < 0x20) {
      const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
      if (named) {
        sb_str(b, named);
      } else {
        snprintf(e, sizeof e, "\\u%04x", c);
        sb_str(b, e);
      }
    } else {
      sb_put(b, p, 1);
    }
  }
  sb_put(b, "\"", 1);
}

int tokenizer_export(const tokenizer *t, char **vocab_text, size_t *vocab_len, char **merges_text,
                     size_t *merges_len, foil_err *err) {
  *vocab_text = NULL;
  if (merges_text) *merges_text = NULL;
  sbuf v = {0}, m = {0};
  if (t->kind == TOKENIZER_WORDPIECE) {
    for (int i = 0; i < t->n_vocab; i++) {
      sb_str(&v, t->vocab[i]);
      sb_put(&v, "\n", 1);
    }
  } else {
    sb_put(&v, "{", 1);
    for (int i = 0; i < t->n_vocab; i++) {
      char num[24];
      if (i) sb_put(&v, ",", 1);
      sb_json(&v, t->vocab[i]);
      snprintf(num, sizeof num, ":%d", i);
      sb_str(&v, num);
    }
    sb_put(&v, "}", 1);
    sb_str(&m, "#version: 0.2\n");
    for (int i = 0; i < t->n_merges; i++) {
      sb_str(&m, t->merges[i]);
      sb_put(&m, "\n", 1);
    }
  }
  if (v.oom || m.oom) {
    free(v.s);
    free(m.s);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory exporting the tokenizer");
  }
  *vocab_text = v.s;
  if (vocab_len) *vocab_len = v.n;
  if (merges_text) {
    *merges_text = m.s;
    if (merges_len) *merges_len = m.n;
  } else {
    free(m.s);
  }
  return FOIL_OK;
}
