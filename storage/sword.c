/* sword.c — SWORD zText modules and OSIS-to-prose (see sword.h). */
#define _POSIX_C_SOURCE 200809L
#include "storage/sword.h"
#include "common/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

typedef struct {
  int present;
  char *bzs_path, *bzv_path, *bzz_path;
  uint8_t *bzs, *bzv;    /* whole index files */
  size_t nblocks, nverses;
  uint64_t bzz_size;
  FILE *bzz;
  int64_t cached;        /* block number in buf, -1 none */
  uint8_t *buf;
  size_t buflen;
} tstore;

struct sword_mod {
  tstore t[2];
};

static uint32_t le32(const uint8_t *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static char *join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, name);
  return p;
}

static int slurp(const char *path, uint8_t **buf, size_t *n, foil_err *err) {
  char *data = NULL;
  int rc = foil_read_file(path, &data, n, err);
  *buf = (uint8_t *)data;
  return rc;
}

static void testament_free(tstore *t) {
  free(t->bzs_path);
  free(t->bzv_path);
  free(t->bzz_path);
  free(t->bzs);
  free(t->bzv);
  free(t->buf);
  if (t->bzz) fclose(t->bzz);
  memset(t, 0, sizeof *t);
}

static int testament_open(tstore *t, const char *dir, const char *prefix, foil_err *err) {
  char name[16];
  memset(t, 0, sizeof *t);
  t->cached = -1;
  snprintf(name, sizeof name, "%s.bzs", prefix);
  t->bzs_path = join(dir, name);
  snprintf(name, sizeof name, "%s.bzv", prefix);
  t->bzv_path = join(dir, name);
  snprintf(name, sizeof name, "%s.bzz", prefix);
  t->bzz_path = join(dir, name);
  if (!t->bzs_path || !t->bzv_path || !t->bzz_path) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  struct stat st;
  int have = (stat(t->bzs_path, &st) == 0) + (stat(t->bzv_path, &st) == 0) +
             (stat(t->bzz_path, &st) == 0);
  if (have == 0) return FOIL_OK; /* testament absent */
  size_t ns, nv;
  int rc = slurp(t->bzs_path, &t->bzs, &ns, err);
  if (!rc) rc = slurp(t->bzv_path, &t->bzv, &nv, err);
  if (rc) return rc;
  if (ns % 12)
    return foil_err_set(err, FOIL_EINVAL, "%s: size %zu is not a whole number of 12-byte block "
                        "records (truncated at offset %zu?)", t->bzs_path, ns, ns - ns % 12);
  if (nv % 10)
    return foil_err_set(err, FOIL_EINVAL, "%s: size %zu is not a whole number of 10-byte verse "
                        "records (truncated at offset %zu?)", t->bzv_path, nv, nv - nv % 10);
  t->nblocks = ns / 12;
  t->nverses = nv / 10;
  if (!(t->bzz = fopen(t->bzz_path, "rb")))
    return foil_err_set(err, FOIL_ENOTFOUND, "%s: %s", t->bzz_path, strerror(errno));
  if (fstat(fileno(t->bzz), &st) != 0) return foil_err_set(err, FOIL_EINVAL, "%s: cannot stat", t->bzz_path);
  t->bzz_size = (uint64_t)st.st_size;
  for (size_t b = 0; b < t->nblocks; b++) {
    const uint8_t *r = t->bzs + 12 * b;
    uint64_t off = le32(r), csz = le32(r + 4);
    if (off + csz > t->bzz_size)
      return foil_err_set(err, FOIL_EINVAL, "%s: block %zu (record at offset %zu) lies at bytes "
                          "%llu..%llu, past the end of %s (%llu bytes): truncated?",
                          t->bzs_path, b, 12 * b, (unsigned long long)off,
                          (unsigned long long)(off + csz), t->bzz_path,
                          (unsigned long long)t->bzz_size);
  }
  t->present = 1;
  return FOIL_OK;
}

int sword_open(sword_mod **out, const char *dir, foil_err *err) {
  *out = NULL;
  sword_mod *m = calloc(1, sizeof *m);
  if (!m) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int rc = testament_open(&m->t[0], dir, "ot", err);
  if (!rc) rc = testament_open(&m->t[1], dir, "nt", err);
  if (!rc && !m->t[0].present && !m->t[1].present)
    rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: no zText module here (no ot.bz* or nt.bz* files)", dir);
  if (rc) {
    sword_close(&m);
    return rc;
  }
  *out = m;
  return FOIL_OK;
}

void sword_close(sword_mod **mp) {
  if (!mp || !*mp) return;
  testament_free(&(*mp)->t[0]);
  testament_free(&(*mp)->t[1]);
  free(*mp);
  *mp = NULL;
}

size_t sword_count(const sword_mod *m, int testament) {
  return testament == 0 || testament == 1 ? m->t[testament].nverses : 0;
}

/* zlib's deflate codes at most 258 bytes in 2 bits: no stream inflates to
 * more than 1032 times its own size */
#define ZLIB_MAX_RATIO 1032

static int load_block(tstore *t, uint32_t b, foil_err *err) {
  if (t->cached == (int64_t)b) return FOIL_OK;
  const uint8_t *r = t->bzs + 12 * (size_t)b;
  uint64_t off = le32(r), csz = le32(r + 4), usz = le32(r + 8);
  /* the recorded size is checked before it is allocated: a damaged index
   * must not cost gigabytes */
  if (usz > csz * ZLIB_MAX_RATIO)
    return foil_err_set(err, FOIL_EINVAL, "%s: block %u (record at offset %zu) says %llu bytes inflate to %llu, "
                        "more than zlib can (corrupt index)", t->bzs_path, b, 12 * (size_t)b,
                        (unsigned long long)csz, (unsigned long long)usz);
  uint8_t *in = malloc(csz + 1);
  if (!in) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  size_t got = 0;
  if (fseek(t->bzz, (long)off, SEEK_SET) == 0) got = fread(in, 1, csz, t->bzz);
  if (got != csz) {
    free(in);
    return foil_err_set(err, FOIL_EINVAL, "%s: block %u at offset %llu: short read (truncated file)",
                        t->bzz_path, b, (unsigned long long)off);
  }
  free(t->buf);
  t->buf = malloc(usz + 1);
  t->cached = -1;
  if (!t->buf) {
    free(in);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  uLongf dl = (uLongf)usz;
  int zr = uncompress(t->buf, &dl, in, (uLong)csz);
  free(in);
  if (zr != Z_OK || dl != usz)
    return foil_err_set(err, FOIL_EINVAL, "%s: block %u at offset %llu (%llu bytes) does not inflate "
                        "to its recorded %llu bytes (corrupt or truncated)",
                        t->bzz_path, b, (unsigned long long)off, (unsigned long long)csz,
                        (unsigned long long)usz);
  t->buflen = usz;
  t->cached = b;
  return FOIL_OK;
}

int sword_verse(sword_mod *m, int testament, size_t i, const char **text, size_t *len,
                uint32_t *block, foil_err *err) {
  *text = "";
  *len = 0;
  if (testament != 0 && testament != 1)
    return foil_err_set(err, FOIL_EINVAL, "testament must be SWORD_OT or SWORD_NT");
  tstore *t = &m->t[testament];
  if (i >= t->nverses)
    return foil_err_set(err, FOIL_EINVAL, "verse entry %zu is past the %zu entries of %s", i,
                        t->nverses, t->bzv_path ? t->bzv_path : "this module");
  const uint8_t *r = t->bzv + 10 * i;
  uint32_t b = le32(r), off = le32(r + 4);
  uint16_t sz = (uint16_t)(r[8] | r[9] << 8);
  if (block) *block = b;
  if (sz == 0) return FOIL_OK;
  if (b >= t->nblocks)
    return foil_err_set(err, FOIL_EINVAL, "%s: entry %zu (offset %zu) names block %u, but %s has %zu",
                        t->bzv_path, i, 10 * i, b, t->bzs_path, t->nblocks);
  int rc = load_block(t, b, err);
  if (rc) return rc;
  if ((uint64_t)off + sz > t->buflen)
    return foil_err_set(err, FOIL_EINVAL, "%s: entry %zu (offset %zu) lies at %u..%u, outside block "
                        "%u (%zu bytes)", t->bzv_path, i, 10 * i, off, off + sz, b, t->buflen);
  *text = (const char *)t->buf + off;
  *len = sz;
  return FOIL_OK;
}

/* ---- conf ------------------------------------------------------------------------ */

static void trim(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
}

int sword_conf_datapath(const char *conf, char **datapath, foil_err *err) {
  *datapath = NULL;
  FILE *f = fopen(conf, "r");
  if (!f) return foil_err_set(err, FOIL_ENOTFOUND, "%s: %s", conf, strerror(errno));
  char line[4096], dp[4100] = "", drv[64] = "", comp[64] = "";
  while (fgets(line, sizeof line, f)) {
    trim(line);
    if (!strncmp(line, "DataPath=", 9)) snprintf(dp, sizeof dp, "%.4000s", line + 9);
    else if (!strncmp(line, "ModDrv=", 7)) snprintf(drv, sizeof drv, "%.63s", line + 7);
    else if (!strncmp(line, "CompressType=", 13)) snprintf(comp, sizeof comp, "%.63s", line + 13);
  }
  fclose(f);
  if (!dp[0]) return foil_err_set(err, FOIL_EINVAL, "%s: no DataPath= line", conf);
  if (strcmp(drv, "zText"))
    return foil_err_set(err, FOIL_EINVAL, "%s: ModDrv is '%s'; only zText modules are supported", conf, drv);
  if (comp[0] && strcmp(comp, "ZIP"))
    return foil_err_set(err, FOIL_EINVAL, "%s: CompressType is '%s'; only ZIP is supported", conf, comp);
  /* the library root is the directory above mods.d */
  char root[4096];
  snprintf(root, sizeof root, "%s", conf);
  for (int up = 0; up < 2; up++) {
    char *slash = strrchr(root, '/');
    if (slash) *slash = '\0';
    else snprintf(root, sizeof root, ".");
  }
  const char *rel = dp;
  if (rel[0] == '.' && rel[1] == '/') rel += 2;
  size_t n = strlen(root) + strlen(rel) + 2;
  char *p = malloc(n);
  if (!p) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  if (rel[0] == '/') snprintf(p, n, "%s", rel);
  else snprintf(p, n, "%s/%s", root, rel);
  size_t pl = strlen(p);
  while (pl > 1 && p[pl - 1] == '/') p[--pl] = '\0';
  *datapath = p;
  return FOIL_OK;
}

/* ---- OSIS to prose ------------------------------------------------------------------ */

typedef struct {
  char **buf;
  size_t *len, *cap;
  int soft_space; /* a dropped element separated words */
} out_t;

static int reserve(out_t *o, size_t extra) {
  if (*o->len + extra + 1 <= *o->cap && *o->buf) return FOIL_OK;
  size_t cap = *o->cap ? *o->cap : 4096;
  while (cap < *o->len + extra + 1) cap *= 2;
  char *n = realloc(*o->buf, cap);
  if (!n) return FOIL_ENOMEM;
  *o->buf = n;
  *o->cap = cap;
  return FOIL_OK;
}

/* level 1: space, 2: line break, 3: paragraph break */
static int emit_break(out_t *o, int level) {
  if (reserve(o, 2)) return FOIL_ENOMEM;
  char *b = *o->buf;
  size_t n = *o->len;
  if (level == 1) {
    if (n && b[n - 1] != ' ' && b[n - 1] != '\n') b[n++] = ' ';
  } else {
    while (n && b[n - 1] == ' ') n--;
    if (n) {
      int nl = 0;
      while (nl < 2 && nl < (int)n && b[n - 1 - nl] == '\n') nl++;
      int want = level == 2 ? 1 : 2;
      for (; nl < want; nl++) b[n++] = '\n';
    }
  }
  b[n] = '\0';
  *o->len = n;
  o->soft_space = 0;
  return FOIL_OK;
}

static int emit_bytes(out_t *o, const char *s, size_t k) {
  if (o->soft_space) {
    o->soft_space = 0;
    /* no space before closing punctuation or a closing quote (U+2019, U+201D) */
    int closer = strchr(",.;:!?)]'", s[0]) != NULL ||
                 (k >= 3 && (uint8_t)s[0] == 0xE2 && (uint8_t)s[1] == 0x80 &&
                  ((uint8_t)s[2] == 0x99 || (uint8_t)s[2] == 0x9D));
    if (!closer && emit_break(o, 1)) return FOIL_ENOMEM;
  }
  if (reserve(o, k)) return FOIL_ENOMEM;
  memcpy(*o->buf + *o->len, s, k);
  *o->len += k;
  (*o->buf)[*o->len] = '\0';
  return FOIL_OK;
}

/* value of attribute `key` inside a tag's text [a, e) */
static int tag_attr(const char *a, const char *e, const char *key, const char **v, size_t *vn) {
  size_t kl = strlen(key);
  for (const char *p = a; p + kl + 2 <= e; p++) {
    if ((p == a || p[-1] == ' ') && !strncmp(p, key, kl) && p[kl] == '=' && p[kl + 1] == '"') {
      const char *s = p + kl + 2, *q = s;
      while (q < e && *q != '"') q++;
      *v = s;
      *vn = (size_t)(q - s);
      return 1;
    }
  }
  return 0;
}

static int attr_is(const char *a, const char *e, const char *key, const char *val) {
  const char *v;
  size_t n;
  return tag_attr(a, e, key, &v, &n) && n == strlen(val) && !strncmp(v, val, n);
}

static int name_is(const char *s, size_t n, const char *name) {
  return n == strlen(name) && !strncmp(s, name, n);
}

int sword_osis_text(const char *s, size_t n, char **buf, size_t *len, size_t *cap, foil_err *err) {
  out_t o = {buf, len, cap, *len > 0}; /* verses appended are separated by a space */
  if (reserve(&o, 1)) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  (*buf)[*len] = '\0';
  int skip = 0; /* depth inside a dropped element */
  size_t i = 0;
  while (i < n) {
    char c = s[i];
    if (c == '<') {
      const char *e = memchr(s + i, '>', n - i);
      if (!e) break; /* an unterminated tag ends the text */
      const char *t = s + i + 1;
      int closing = *t == '/';
      if (closing) t++;
      const char *ne = t;
      while (ne < e && *ne != ' ' && *ne != '/' && *ne != '>') ne++;
      size_t nl = (size_t)(ne - t);
      int selfclose = e > s + i && e[-1] == '/';
      i = (size_t)(e - s) + 1;
      if (skip) {
        if (closing) skip--;
        else if (!selfclose) skip++;
        continue;
      }
      if (closing) continue;
      if (name_is(t, nl, "note") || name_is(t, nl, "title") || name_is(t, nl, "speaker")) {
        if (!selfclose) skip = 1;
        o.soft_space = 1;
        continue;
      }
      int rc = FOIL_OK;
      if (name_is(t, nl, "chapter") || name_is(t, nl, "lg") || name_is(t, nl, "list"))
        rc = emit_break(&o, 3);
      else if (name_is(t, nl, "div"))
        rc = attr_is(ne, e, "type", "x-milestone") ? FOIL_OK : emit_break(&o, 3);
      else if (name_is(t, nl, "lb"))
        rc = emit_break(&o, attr_is(ne, e, "type", "x-p") ? 3 : 2);
      else if (name_is(t, nl, "l") || name_is(t, nl, "item"))
        rc = emit_break(&o, 2);
      if (rc) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
      continue;
    }
    if (skip) {
      i++;
      continue;
    }
    int rc = FOIL_OK;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      rc = emit_break(&o, 1);
      i++;
    } else if (c == '&') {
      const char *semi = memchr(s + i, ';', n - i < 12 ? n - i : 12);
      char u[8];
      size_t k = 0;
      if (semi) {
        const char *ent = s + i + 1;
        size_t el = (size_t)(semi - ent);
        unsigned long cp = 0;
        if (name_is(ent, el, "amp")) u[k++] = '&';
        else if (name_is(ent, el, "lt")) u[k++] = '<';
        else if (name_is(ent, el, "gt")) u[k++] = '>';
        else if (name_is(ent, el, "quot")) u[k++] = '"';
        else if (name_is(ent, el, "apos")) u[k++] = '\'';
        else if (el > 1 && ent[0] == '#') {
          char tmp[12];
          memcpy(tmp, ent + 1, el - 1);
          tmp[el - 1] = '\0';
          char *end;
          cp = tmp[0] == 'x' ? strtoul(tmp + 1, &end, 16) : strtoul(tmp, &end, 10);
          if (*end || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) cp = 0xFFFD;
          if (cp < 0x80) u[k++] = (char)cp;
          else if (cp < 0x800) u[k++] = (char)(0xC0 | cp >> 6), u[k++] = (char)(0x80 | (cp & 0x3F));
          else if (cp < 0x10000)
            u[k++] = (char)(0xE0 | cp >> 12), u[k++] = (char)(0x80 | ((cp >> 6) & 0x3F)),
            u[k++] = (char)(0x80 | (cp & 0x3F));
          else
            u[k++] = (char)(0xF0 | cp >> 18), u[k++] = (char)(0x80 | ((cp >> 12) & 0x3F)),
            u[k++] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[k++] = (char)(0x80 | (cp & 0x3F));
        }
      }
      if (k) {
        rc = emit_bytes(&o, u, k);
        i = (size_t)(semi - s) + 1;
      } else {
        rc = emit_bytes(&o, "&", 1);
        i++;
      }
    } else {
      size_t j = i;
      while (j < n && s[j] != '<' && s[j] != '&' && s[j] != ' ' && s[j] != '\t' && s[j] != '\n' &&
             s[j] != '\r')
        j++;
      rc = emit_bytes(&o, s + i, j - i);
      i = j;
    }
    if (rc) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  return FOIL_OK;
}
