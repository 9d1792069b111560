/* safetensors.c — the safetensors format by hand (see safetensors.h). */
#define _POSIX_C_SOURCE 200809L
#include "storage/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

static const struct {
  const char *name;
  size_t size;
} dtypes[ST_NDTYPES] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_I16] = {"I16", 2},   [ST_U16] = {"U16", 2},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4},   [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},   [ST_I64] = {"I64", 8},   [ST_U64] = {"U64", 8},
    [ST_F64] = {"F64", 8},
};

const char *st_dtype_name(st_dtype d) { return (unsigned)d < ST_NDTYPES ? dtypes[d].name : "?"; }
size_t st_dtype_size(st_dtype d) { return (unsigned)d < ST_NDTYPES ? dtypes[d].size : 0; }

struct st_file {
  char *path;
  char *buf; /* the whole file */
  size_t len;
  int n;
  st_tensor *t;
  char **names;
  const st_tensor **by_name; /* the tensors sorted by name: st_find's binary search */
  int n_meta;
  char **meta; /* key, value, key, value ... */
};

void st_close(st_file **pf) {
  st_file *f = pf ? *pf : NULL;
  if (!f) return;
  for (int i = 0; i < f->n; i++) free(f->names[i]);
  for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
  free(f->names);
  free(f->by_name);
  free(f->meta);
  free(f->t);
  free(f->buf);
  free(f->path);
  free(f);
  *pf = NULL;
}

const char *st_path(const st_file *f) { return f->path; }
int st_count(const st_file *f) { return f->n; }
const st_tensor *st_at(const st_file *f, int i) { return i >= 0 && i < f->n ? &f->t[i] : NULL; }

/* Binary search of by_name: O(log n) strcmp. */
const st_tensor *st_find(const st_file *f, const char *name) {
  int lo = 0, hi = f->n;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(f->by_name[mid]->name, name);
    if (!c) return f->by_name[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
  for (int i = 0; i < f->n_meta; i++)
    if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
  return NULL;
}

/* A JSON number that is a non-negative integer below 2^53 (exact in a double). */
static int as_count(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return 0;
  *out = (uint64_t)d;
  return 1;
}

typedef struct {
  size_t begin, end;
  int idx;
} span;

static int cmp_span(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int parse_tensor(st_file *f, const cJSON *e, st_tensor *t, span *s, size_t data_len,
                        foil_err *err) {
  const char *p = f->path, *nm = e->string;
  if (!cJSON_IsObject(e))
    return foil_err_set(err, FOIL_EINVAL, "%s: header entry \"%s\" is not an object", p, nm);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of))
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: tensor \"%s\" needs \"dtype\" (string), \"shape\" and \"data_offsets\" (arrays)",
                        p, nm);
  int d = 0;
  while (d < ST_NDTYPES && strcmp(dtypes[d].name, dt->valuestring)) d++;
  if (d == ST_NDTYPES)
    return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\" has unknown dtype \"%s\"", p, nm,
                        dt->valuestring);
  t->dtype = (st_dtype)d;
  int nd = cJSON_GetArraySize(sh);
  if (nd > ST_MAX_DIMS)
    return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\" has %d dimensions (at most %d)", p, nm, nd,
                        ST_MAX_DIMS);
  t->ndim = nd;
  uint64_t nelem = 1;
  for (int i = 0; i < nd; i++) {
    uint64_t v;
    if (!as_count(cJSON_GetArrayItem(sh, i), &v))
      return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", p,
                          nm, i);
    t->shape[i] = (int64_t)v;
    if (v && nelem > UINT64_MAX / 8 / v)
      return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\": shape overflows", p, nm);
    nelem *= v;
  }
  uint64_t b, en;
  if (cJSON_GetArraySize(of) != 2 || !as_count(cJSON_GetArrayItem(of, 0), &b) ||
      !as_count(cJSON_GetArrayItem(of, 1), &en) || b > en)
    return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\": data_offsets must be [begin, end] with begin <= end",
                        p, nm);
  if (en > data_len)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: tensor \"%s\" ends at byte %llu of the data, which has only %zu (truncated file?)",
                        p, nm, (unsigned long long)en, data_len);
  uint64_t want = nelem * dtypes[d].size;
  if (en - b != want)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: tensor \"%s\": shape and dtype %s need %llu bytes, data_offsets span %llu", p,
                        nm, dtypes[d].name, (unsigned long long)want, (unsigned long long)(en - b));
  t->nelem = (size_t)nelem;
  t->nbytes = (size_t)want;
  s->begin = (size_t)b;
  s->end = (size_t)en;
  return FOIL_OK;
}

/* ---- checks on the header's bytes ---------------------------------------------------- */

/* 1 when s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), as Rust's str::from_utf8, which
 * safetensors applies to the header. Cost: one pass. */
static int utf8_valid(const uint8_t *s, size_t n, size_t *bad) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t k;
    uint8_t lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) k = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      k = 2;
      if (c == 0xe0) lo = 0xa0;      /* overlong */
      else if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
      k = 3;
      if (c == 0xf0) lo = 0x90;      /* overlong */
      else if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
      *bad = i;
      return 0;
    }
    if (n - i <= k || s[i + 1] < lo || s[i + 1] > hi) {
      *bad = i;
      return 0;
    }
    for (size_t j = 2; j <= k; j++)
      if ((s[i + j] & 0xc0) != 0x80) {
        *bad = i;
        return 0;
      }
    i += k + 1;
  }
  return 1;
}

/* What cJSON lets through but safetensors' parser (serde_json) refuses,
 * checked on the raw text of a header cJSON has parsed (h[0..n), so it is
 * well-formed JSON): a raw control character inside a string, a \u0000
 * escape (a NUL would cut the name short in C: "ab\u0000cd" read as "ab"),
 * and a shape or data_offsets entry that is not written as an unsigned
 * integer (4e0, 1.0, -0, 01: serde refuses them for u64). Tracks the key
 * at depth 1 (the tensor) and 2 (shape, data_offsets) to name them.
 * Cost: one pass. */
static int check_raw(const char *path, const char *h, size_t n, foil_err *err) {
  int depth = 0, elem = 0;
  const char *str = NULL, *k1 = "", *k2 = "";
  size_t str_n = 0, k1_n = 0, k2_n = 0;
  for (size_t i = 0; i < n; i++) {
    char c = h[i];
    if (c == '"') {
      size_t j = i + 1;
      for (; j < n && h[j] != '"'; j++) {
        if ((uint8_t)h[j] < 0x20)
          return foil_err_set(err, FOIL_EINVAL, "%s: a control character (0x%02x) inside a header string", path,
                              (uint8_t)h[j]);
        if (h[j] == '\\') {
          if (j + 5 < n && h[j + 1] == 'u' && !memcmp(h + j + 2, "0000", 4))
            return foil_err_set(err, FOIL_EINVAL,
                                "%s: a header string holds \\u0000 (a NUL; foil's names are C strings)", path);
          j++; /* the escaped character; \uXXXX's hex digits are plain */
        }
      }
      str = h + i + 1;
      str_n = j - i - 1;
      i = j;
    } else if (c == ':') {
      if (depth == 1) k1 = str, k1_n = str_n;
      else if (depth == 2) k2 = str, k2_n = str_n;
    } else if (c == '{' || c == '[') {
      depth++;
      elem = 0;
    } else if (c == '}' || c == ']') {
      depth--;
    } else if (c == ',') {
      elem++;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i;
      while (j < n && strchr("+-.0123456789eE", h[j]) && h[j]) j++;
      int counted = depth == 3 && !(k1_n == 12 && !memcmp(k1, "__metadata__", 12)) &&
                    ((k2_n == 5 && !memcmp(k2, "shape", 5)) || (k2_n == 12 && !memcmp(k2, "data_offsets", 12)));
      int plain = h[i] >= '0' && h[i] <= '9' && !(h[i] == '0' && j - i > 1);
      for (size_t q = i; plain && q < j; q++) plain = h[q] >= '0' && h[q] <= '9';
      if (counted && !plain)
        return foil_err_set(err, FOIL_EINVAL,
                            "%s: tensor \"%.*s\": %.*s[%d] is %.*s, not a non-negative integer written in digits",
                            path, (int)(k1_n > 200 ? 200 : k1_n), k1, (int)k2_n, k2, elem,
                            (int)(j - i > 40 ? 40 : j - i), h + i);
      i = j - 1;
    }
  }
  return FOIL_OK;
}

typedef struct {
  const char *name;
  int idx;
} named;

static int cmp_named(const void *a, const void *b) {
  return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

/* Sorts x[0..n) by name and returns the first name that appears twice, or
 * NULL. Cost: O(n log n) strcmp. */
static const char *sort_find_dup(named *x, int n) {
  qsort(x, (size_t)n, sizeof *x, cmp_named);
  for (int i = 1; i < n; i++)
    if (!strcmp(x[i - 1].name, x[i].name)) return x[i].name;
  return NULL;
}

static int parse(st_file *f, foil_err *err) {
  const char *p = f->path;
  if (f->len < 8)
    return foil_err_set(err, FOIL_EINVAL, "%s: %zu bytes, too short for a safetensors file (truncated?)", p,
                        f->len);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | (uint8_t)f->buf[i];
  if (hl < 2 || hl > ST_MAX_HEADER)
    return foil_err_set(err, FOIL_EINVAL, "%s: header length %llu is outside [2, %u] (not safetensors?)", p,
                        (unsigned long long)hl, ST_MAX_HEADER);
  if (hl > f->len - 8)
    return foil_err_set(err, FOIL_EINVAL, "%s: header length %llu exceeds the file's %zu bytes (truncated?)",
                        p, (unsigned long long)hl, f->len - 8);
  const char *h = f->buf + 8;
  size_t bad = 0;
  if (!utf8_valid((const uint8_t *)h, (size_t)hl, &bad))
    return foil_err_set(err, FOIL_EINVAL, "%s: the header is not valid UTF-8 (byte %zu of it)", p, bad);
  if (h[0] != '{')
    return foil_err_set(err, FOIL_EINVAL, "%s: the header does not start with '{'", p);
  const char *endp = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)hl, &endp, 0);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return foil_err_set(err, FOIL_EINVAL, "%s: the header is not a JSON object", p);
  }
  for (const char *q = endp; q < h + hl; q++) /* only padding may follow */
    if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t') {
      cJSON_Delete(root);
      return foil_err_set(err, FOIL_EINVAL, "%s: bytes after the header's JSON object", p);
    }
  int rc = check_raw(p, h, (size_t)(endp - h), err);
  if (rc) {
    cJSON_Delete(root);
    return rc;
  }
  size_t data_len = f->len - 8 - (size_t)hl;
  const uint8_t *data = (const uint8_t *)h + hl;
  int cap = cJSON_GetArraySize(root);
  const char *dup;
  f->t = calloc((size_t)cap + 1, sizeof *f->t);
  f->names = calloc((size_t)cap + 1, sizeof *f->names);
  f->by_name = calloc((size_t)cap + 1, sizeof *f->by_name);
  span *sp = calloc((size_t)cap + 1, sizeof *sp);
  named *nm = calloc((size_t)cap + 1, sizeof *nm);
  int *pos = calloc((size_t)cap + 1, sizeof *pos);
  if (!f->t || !f->names || !f->by_name || !sp || !nm || !pos) {
    rc = foil_err_set(err, FOIL_ENOMEM, "%s: out of memory", p);
    goto done;
  }
  for (const cJSON *e = root->child; e; e = e->next) {
    if (!strcmp(e->string, "__metadata__")) {
      if (f->meta || !cJSON_IsObject(e)) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s: __metadata__ must be one object of strings", p);
        goto done;
      }
      int nm = cJSON_GetArraySize(e);
      f->meta = calloc(2 * (size_t)nm + 1, sizeof *f->meta);
      if (!f->meta) {
        rc = foil_err_set(err, FOIL_ENOMEM, "%s: out of memory", p);
        goto done;
      }
      for (const cJSON *m = e->child; m; m = m->next) {
        if (!cJSON_IsString(m)) {
          rc = foil_err_set(err, FOIL_EINVAL, "%s: __metadata__ value \"%s\" is not a string", p, m->string);
          goto done;
        }
        f->meta[2 * f->n_meta] = strdup(m->string);
        f->meta[2 * f->n_meta + 1] = strdup(m->valuestring);
        if (!f->meta[2 * f->n_meta] || !f->meta[2 * f->n_meta + 1]) {
          f->n_meta++; /* freed by st_close */
          rc = foil_err_set(err, FOIL_ENOMEM, "%s: out of memory", p);
          goto done;
        }
        f->n_meta++;
      }
      continue;
    }
    st_tensor *t = &f->t[f->n];
    if ((rc = parse_tensor(f, e, t, &sp[f->n], data_len, err))) goto done;
    if (!(f->names[f->n] = strdup(e->string))) {
      rc = foil_err_set(err, FOIL_ENOMEM, "%s: out of memory", p);
      goto done;
    }
    t->name = f->names[f->n];
    t->data = data + sp[f->n].begin;
    sp[f->n].idx = f->n;
    nm[f->n] = (named){.name = t->name, .idx = f->n};
    f->n++;
  }
  /* Names once each (the reference keeps one entry per name): sorted, so
   * O(n log n) for a header of millions of tiny tensors. */
  if ((dup = sort_find_dup(nm, f->n))) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\" appears twice in the header", p, dup);
    goto done;
  }
  if (f->meta) { /* __metadata__'s keys too (cJSON keeps every copy, st_metadata would see the first) */
    named *mk = calloc((size_t)f->n_meta + 1, sizeof *mk);
    if (!mk) {
      rc = foil_err_set(err, FOIL_ENOMEM, "%s: out of memory", p);
      goto done;
    }
    for (int i = 0; i < f->n_meta; i++) mk[i] = (named){.name = f->meta[2 * i], .idx = i};
    dup = sort_find_dup(mk, f->n_meta);
    if (dup) rc = foil_err_set(err, FOIL_EINVAL, "%s: __metadata__ key \"%s\" appears twice", p, dup);
    free(mk);
    if (rc) goto done;
  }
  /* Spans, in offset order, must tile the data exactly. */
  qsort(sp, (size_t)f->n, sizeof *sp, cmp_span);
  size_t at = 0;
  for (int i = 0; i < f->n; i++) {
    if (sp[i].begin != at) {
      rc = foil_err_set(err, FOIL_EINVAL,
                        sp[i].begin < at ? "%s: tensor \"%s\" overlaps the one before it (begins at %zu, before %zu)"
                                         : "%s: tensor \"%s\" leaves a hole in the data (begins at %zu, not %zu)",
                        p, f->names[sp[i].idx], sp[i].begin, at);
      goto done;
    }
    at = sp[i].end;
  }
  if (at != data_len) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: %zu bytes of data after the last tensor", p, data_len - at);
    goto done;
  }
  { /* keep the tensors in file order */
    st_tensor *t = malloc(((size_t)f->n + 1) * sizeof *t);
    if (!t) {
      rc = foil_err_set(err, FOIL_ENOMEM, "%s: out of memory", p);
      goto done;
    }
    for (int i = 0; i < f->n; i++) {
      t[i] = f->t[sp[i].idx];
      pos[sp[i].idx] = i;
    }
    free(f->t);
    f->t = t;
    for (int i = 0; i < f->n; i++) f->by_name[i] = &f->t[pos[nm[i].idx]];
  }
done:
  free(sp);
  free(nm);
  free(pos);
  cJSON_Delete(root);
  return rc;
}

int st_open(st_file **out, const char *path, foil_err *err) {
  *out = NULL;
  st_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    free(f);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  int rc = foil_read_file(path, &f->buf, &f->len, err);
  if (!rc) rc = parse(f, err);
  if (rc) {
    st_close(&f);
    return rc;
  }
  *out = f;
  return FOIL_OK;
}

static float half_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
  if (e == 0) {
    if (!m) bits = sign;
    else { /* subnormal: normalize */
      int k = -1;
      do {
        k++;
        m <<= 1;
      } while (!(m & 1024));
      bits = sign | (uint32_t)(127 - 15 - k) << 23 | (m & 1023) << 13;
    }
  } else if (e == 31) bits = sign | 0x7f800000u | m << 13;
  else bits = sign | (e + 127 - 15) << 23 | m << 13;
  float v;
  memcpy(&v, &bits, 4);
  return v;
}

int st_read_f32(const st_file *f, const st_tensor *t, float *out, size_t n, foil_err *err) {
  if (n != t->nelem)
    return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\" has %zu elements, %zu expected", f->path, t->name,
                        t->nelem, n);
  const uint8_t *d = t->data;
  switch (t->dtype) {
    case ST_F32:
      for (size_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 |
                     (uint32_t)d[4 * i + 3] << 24;
        memcpy(&out[i], &b, 4);
      }
      return FOIL_OK;
    case ST_F16:
      for (size_t i = 0; i < n; i++) out[i] = half_to_f32((uint16_t)(d[2 * i] | d[2 * i + 1] << 8));
      return FOIL_OK;
    case ST_BF16:
      for (size_t i = 0; i < n; i++) {
        uint32_t b = ((uint32_t)d[2 * i] | (uint32_t)d[2 * i + 1] << 8) << 16;
        memcpy(&out[i], &b, 4);
      }
      return FOIL_OK;
    default:
      return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\" is %s; only F32, F16 and BF16 read as floats",
                          f->path, t->name, dtypes[t->dtype].name);
  }
}

/* ---- writing --------------------------------------------------------------------- */

typedef struct {
  char *s;
  size_t len, cap;
  int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *g = realloc(b->s, cap);
    if (!g) {
      b->oom = 1;
      return;
    }
    b->s = g;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_str(sbuf *b, const char *s) {
  put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(b, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(b, esc, 6);
    } else put(b, (const char *)s, 1);
  }
  put(b, "\"", 1);
}

int st_write(const char *path, const st_entry *e, int n, const char *const *meta_kv, int n_meta,
             foil_err *err) {
  sbuf h = {0};
  char num[64];
  size_t off = 0;
  puts_(&h, "{");
  if (n_meta > 0) {
    puts_(&h, "\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
      if (i) puts_(&h, ",");
      put_json_str(&h, meta_kv[2 * i]);
      puts_(&h, ":");
      put_json_str(&h, meta_kv[2 * i + 1]);
    }
    puts_(&h, "}");
  }
  for (int i = 0; i < n; i++) {
    if ((unsigned)e[i].dtype >= ST_NDTYPES || e[i].ndim < 0 || e[i].ndim > ST_MAX_DIMS) {
      free(h.s);
      return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\": bad dtype or rank", path, e[i].name);
    }
    size_t nb = dtypes[e[i].dtype].size;
    if (i || n_meta > 0) puts_(&h, ",");
    put_json_str(&h, e[i].name);
    puts_(&h, ":{\"dtype\":\"");
    puts_(&h, dtypes[e[i].dtype].name);
    puts_(&h, "\",\"shape\":[");
    for (int k = 0; k < e[i].ndim; k++) {
      snprintf(num, sizeof num, k ? ",%lld" : "%lld", (long long)e[i].shape[k]);
      puts_(&h, num);
      nb *= (size_t)e[i].shape[k];
    }
    snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
    puts_(&h, num);
    off += nb;
  }
  puts_(&h, "}");
  while (h.len % 8) puts_(&h, " ");
  if (h.oom) {
    free(h.s);
    return foil_err_set(err, FOIL_ENOMEM, "%s: out of memory", path);
  }
  size_t total = 8 + h.len + off;
  uint8_t *buf = malloc(total ? total : 1);
  if (!buf) {
    free(h.s);
    return foil_err_set(err, FOIL_ENOMEM, "%s: out of memory (%zu bytes)", path, total);
  }
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
  memcpy(buf + 8, h.s, h.len);
  free(h.s);
  size_t at = 8 + h.len;
  for (int i = 0; i < n; i++) {
    size_t sz = dtypes[e[i].dtype].size, nel = 1;
    for (int k = 0; k < e[i].ndim; k++) nel *= (size_t)e[i].shape[k];
    /* little-endian on disk: foil's hosts are little-endian; bytes copied */
    if (nel > 0) memcpy(buf + at, e[i].data, nel * sz);
    at += nel * sz;
  }
  int rc = foil_write_file_atomic(path, buf, total, err);
  free(buf);
  return rc;
}
