/* rdata.c — R serialize() streams and lazy-load databases (see rdata.h).
 *
 * The stream layout follows R's documented serialization format: a header
 * ("X\n", version, writer and minimal reader versions, and for version 3
 * the native encoding's name), then items. Every item starts with a 32-bit
 * big-endian flags word: bits 0-7 the type, bit 8 the OBJECT bit, bit 9
 * "has attributes", bit 10 "has tag", bits 12-27 the gp levels (for a
 * CHARSXP its encoding); a REFSXP keeps its 1-based index in bits 8-31
 * (0: the index follows as an int).
 */
#define _POSIX_C_SOURCE 200809L
#include "storage/rdata.h"
#include "common/fileio.h"

#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* special item codes */
enum {
  REFSXP = 255,
  NILVALUE_SXP = 254,
  GLOBALENV_SXP = 253,
  UNBOUNDVALUE_SXP = 252,
  MISSINGARG_SXP = 251,
  BASENAMESPACE_SXP = 250,
  NAMESPACESXP = 249,
  PACKAGESXP = 248,
  PERSISTSXP = 247,
  EMPTYENV_SXP = 242,
  BASEENV_SXP = 241,
  ATTRLANGSXP = 240,
  ATTRLISTSXP = 239,
  ALTREP_SXP = 238,
};

enum { LATIN1_MASK = 1 << 2 };

/* Largest decompressed stream accepted (guards against bombs); buffers
 * never grow past it. */
#define RDATA_MAX_STREAM ((size_t)1 << 31)
/* Most bytes the ALTREP forms of one stream may expand to (compact
 * sequences, deferred strings): a few bytes of state must not cost
 * gigabytes. 64M integers, 32M doubles or ~11M strings. */
#define RDATA_MAX_EXPAND ((uint64_t)1 << 28)
/* Most memory liblzma may use to decode one xz record: R's xz presets use
 * at most a 64 MiB dictionary; a damaged header may ask for 4 GiB. */
#define RDATA_XZ_MEMLIMIT ((uint64_t)256 << 20)

/* ---- arena ---------------------------------------------------------------------- */

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} chunk;

struct rdata_doc {
  chunk *head;
};

static void *arena_alloc(rdata_doc *d, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  if (!d->head || d->head->cap - d->head->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    chunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->cap = cap;
    c->used = 0;
    if (d->head && n > 65536) { /* big allocation: keep the current chunk in front */
      c->next = d->head->next;
      d->head->next = c;
      c->used = n;
      return c->data;
    }
    c->next = d->head;
    d->head = c;
  }
  void *p = d->head->data + d->head->used;
  d->head->used += n;
  return p;
}

void rdata_doc_free(rdata_doc **dp) {
  if (!dp || !*dp) return;
  chunk *c = (*dp)->head;
  while (c) {
    chunk *n = c->next;
    free(c);
    c = n;
  }
  free(*dp);
  *dp = NULL;
}

/* ---- reader ---------------------------------------------------------------------- */

typedef struct {
  const uint8_t *p;
  size_t len, pos;
  const char *what;
  foil_err *err;
  int failed;
  rdata_doc *doc;
  rdata_val **refs;
  size_t nrefs, caprefs;
  int depth;
  uint64_t expanded; /* bytes ALTREP forms expanded to so far */
} reader;

static int fail(reader *r, const char *fmt, const char *detail) {
  if (!r->failed) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, detail ? detail : "");
    foil_err_set(r->err, FOIL_EINVAL, "%s: serialized R data, offset %zu: %s", r->what, r->pos, msg);
    r->failed = 1;
  }
  return FOIL_EINVAL;
}

static int oom(reader *r) {
  if (!r->failed) {
    foil_err_set(r->err, FOIL_ENOMEM, "%s: out of memory reading R data", r->what);
    r->failed = 1;
  }
  return FOIL_ENOMEM;
}

static int rd_bytes(reader *r, size_t n, const uint8_t **out) {
  if (r->len - r->pos < n) return fail(r, "truncated (needed %s more bytes than the stream has)", "");
  *out = r->p + r->pos;
  r->pos += n;
  return FOIL_OK;
}

static int rd_int(reader *r, int32_t *v) {
  const uint8_t *b = NULL;
  if (rd_bytes(r, 4, &b)) return FOIL_EINVAL;
  *v = (int32_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
  return FOIL_OK;
}

static double be_double(const uint8_t *b) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = u << 8 | b[i];
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

/* A vector length (int, or -1 then two ints for long vectors) whose n
 * elements of at least `elem` bytes each fit in what is left. */
static int rd_length(reader *r, size_t elem, uint64_t *n) {
  int32_t a;
  if (rd_int(r, &a)) return FOIL_EINVAL;
  uint64_t len;
  if (a == -1) {
    int32_t hi, lo;
    if (rd_int(r, &hi) || rd_int(r, &lo)) return FOIL_EINVAL;
    if (hi < 0) return fail(r, "negative long vector length%s", "");
    len = (uint64_t)(uint32_t)hi << 32 | (uint32_t)lo;
  } else if (a < 0) {
    return fail(r, "negative vector length%s", "");
  } else {
    len = (uint64_t)a;
  }
  if (elem && len > (r->len - r->pos) / elem)
    return fail(r, "vector length larger than the bytes left (truncated or corrupt)%s", "");
  *n = len;
  return FOIL_OK;
}

static rdata_val *new_val(reader *r, int type) {
  rdata_val *v = arena_alloc(r->doc, sizeof *v);
  if (!v) return NULL;
  memset(v, 0, sizeof *v);
  v->type = type;
  return v;
}

static int add_ref(reader *r, rdata_val *v) {
  if (r->nrefs == r->caprefs) {
    size_t cap = r->caprefs ? 2 * r->caprefs : 64;
    rdata_val **n = realloc(r->refs, cap * sizeof *n);
    if (!n) return oom(r);
    r->refs = n;
    r->caprefs = cap;
  }
  r->refs[r->nrefs++] = v;
  return FOIL_OK;
}

/* Copies n bytes into the arena as a NUL-terminated UTF-8 string,
 * converting from latin1 when asked. */
static const char *arena_str(reader *r, const uint8_t *b, size_t n, int latin1) {
  size_t extra = 0;
  if (latin1)
    for (size_t i = 0; i < n; i++) extra += b[i] >= 0x80;
  char *s = arena_alloc(r->doc, n + extra + 1);
  if (!s) return NULL;
  if (!extra) {
    memcpy(s, b, n);
    s[n] = '\0';
    return s;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (b[i] < 0x80) {
      s[k++] = (char)b[i];
    } else {
      s[k++] = (char)(0xC0 | b[i] >> 6);
      s[k++] = (char)(0x80 | (b[i] & 0x3F));
    }
  }
  s[k] = '\0';
  return s;
}

static int read_item(reader *r, rdata_val **out);

/* A CHARSXP body after its flags: length (-1 = NA) and bytes. */
static int read_charsxp_body(reader *r, int32_t flags, const char **s) {
  int32_t n;
  if (rd_int(r, &n)) return FOIL_EINVAL;
  if (n == -1) {
    *s = NULL;
  } else {
    if (n < 0) return fail(r, "negative string length%s", "");
    const uint8_t *b = NULL;
    if (rd_bytes(r, (size_t)n, &b)) return FOIL_EINVAL;
    if (!(*s = arena_str(r, b, (size_t)n, (flags >> 12) & LATIN1_MASK))) return oom(r);
  }
  if (flags & (1 << 9)) { /* attributes on a CHARSXP: R never writes them; skip */
    rdata_val *a;
    if (read_item(r, &a)) return FOIL_EINVAL;
  }
  return FOIL_OK;
}

/* An element of a STRSXP: a CHARSXP item, read inline. */
static int read_string_elt(reader *r, const char **s) {
  int32_t flags;
  if (rd_int(r, &flags)) return FOIL_EINVAL;
  if ((flags & 0xFF) != RDATA_CHARSXP) {
    r->pos -= 4;
    return fail(r, "a character vector element is not a string (CHARSXP)%s", "");
  }
  return read_charsxp_body(r, flags, s);
}

/* R's InStringVec: an int (0) then a length then CHARSXPs; used for
 * namespace, package and persistent names. */
static int read_string_vec(reader *r, int type, rdata_val **out) {
  int32_t zero;
  if (rd_int(r, &zero)) return FOIL_EINVAL;
  if (zero != 0) return fail(r, "names vector does not start with 0%s", "");
  uint64_t n;
  if (rd_length(r, 8, &n)) return FOIL_EINVAL;
  rdata_val *v = new_val(r, type);
  if (!v) return oom(r);
  v->n = n;
  v->str = arena_alloc(r->doc, (n + 1) * sizeof *v->str);
  if (!v->str) return oom(r);
  for (uint64_t i = 0; i < n; i++)
    if (read_string_elt(r, &v->str[i])) return FOIL_EINVAL;
  *out = v;
  return FOIL_OK;
}

static int is_pairlist_type(int t) {
  return t == RDATA_LISTSXP || t == RDATA_LANGSXP || t == RDATA_CLOSXP || t == RDATA_PROMSXP ||
         t == RDATA_DOTSXP || t == ATTRLANGSXP || t == ATTRLISTSXP;
}

/* Doubles the pairlist cell arrays (values and tags together). On failure
 * the old arrays stay valid for the caller to free. */
static int grow_cells(reader *r, rdata_val ***vals, const char ***tags, size_t *cap) {
  size_t nc = *cap * 2;
  rdata_val **nv = realloc(*vals, nc * sizeof **vals);
  if (!nv) return oom(r);
  *vals = nv;
  const char **nt = realloc(*tags, nc * sizeof **tags);
  if (!nt) return oom(r);
  *tags = nt;
  *cap = nc;
  return FOIL_OK;
}

/* A pairlist whose first cell's flags are already read. Cells are read in
 * a loop (not recursion) so long pairlists cannot exhaust the stack. */
static int read_pairlist(reader *r, int32_t flags, rdata_val **out) {
  int type = flags & 0xFF;
  int hasattr = (flags >> 9) & 1;
  if (type == ATTRLANGSXP || type == ATTRLISTSXP) {
    hasattr = 1;
    type = type == ATTRLANGSXP ? RDATA_LANGSXP : RDATA_LISTSXP;
  }
  rdata_val *v = new_val(r, type);
  if (!v) return oom(r);
  v->is_object = (flags >> 8) & 1;
  size_t cap = 8, n = 0;
  rdata_val **vals = malloc(cap * sizeof *vals);
  const char **tags = malloc(cap * sizeof *tags);
  int rc = vals && tags ? FOIL_OK : oom(r);
  int first = 1;
  while (!rc) {
    int hastag = (flags >> 10) & 1;
    rdata_val *a = NULL, *t = NULL, *car = NULL;
    if (hasattr && (rc = read_item(r, &a))) break;
    if (first) v->attr = a;
    if (hastag && (rc = read_item(r, &t))) break;
    if ((rc = read_item(r, &car))) break;
    if (n == cap && (rc = grow_cells(r, &vals, &tags, &cap))) break;
    vals[n] = car;
    tags[n] = t && (t->type == RDATA_SYMSXP || t->type == RDATA_CHARSXP) ? t->str[0] : NULL;
    n++;
    first = 0;
    /* the cdr: another cell continues the loop; NULL ends it */
    if ((rc = rd_int(r, &flags))) break;
    int ct = flags & 0xFF;
    if (ct == NILVALUE_SXP) break;
    if (is_pairlist_type(ct)) {
      hasattr = (flags >> 9) & 1 || ct == ATTRLANGSXP || ct == ATTRLISTSXP;
      continue;
    }
    /* an improper list (or a closure body): keep the cdr as a last element */
    r->pos -= 4;
    rdata_val *cdr;
    if ((rc = read_item(r, &cdr))) break;
    hasattr = 0;
    flags = 0; /* no tag */
    if (n == cap && (rc = grow_cells(r, &vals, &tags, &cap))) break;
    vals[n] = cdr;
    tags[n] = NULL;
    n++;
    break;
  }
  if (!rc) {
    v->n = n;
    v->elt = arena_alloc(r->doc, (n + 1) * sizeof *v->elt);
    v->tag = arena_alloc(r->doc, (n + 1) * sizeof *v->tag);
    if (!v->elt || !v->tag) {
      rc = oom(r);
    } else {
      memcpy(v->elt, vals, n * sizeof *vals);
      memcpy(v->tag, tags, n * sizeof *tags);
      *out = v;
    }
  }
  free(vals);
  free(tags);
  return rc;
}

static const char *special_name(int t) {
  switch (t) {
    case GLOBALENV_SXP: return "R_GlobalEnv";
    case UNBOUNDVALUE_SXP: return "R_UnboundValue";
    case MISSINGARG_SXP: return "R_MissingArg";
    case BASENAMESPACE_SXP: return "R_BaseNamespace";
    case EMPTYENV_SXP: return "R_EmptyEnv";
    case BASEENV_SXP: return "R_BaseEnv";
    default: return NULL;
  }
}

/* Counts n elements of `per` bytes against the stream's expansion budget. */
static int expand(reader *r, const char *cls, uint64_t n, uint64_t per) {
  if (n > (RDATA_MAX_EXPAND - r->expanded) / per)
    return fail(r, "ALTREP %s: expands past 256 MiB in one stream (corrupt or hostile)", cls);
  r->expanded += n * per;
  return FOIL_OK;
}

/* Turns an ALTREP item (class info, state, attributes) into a plain value. */
static int read_altrep(reader *r, rdata_val **out) {
  rdata_val *info, *state, *attr;
  if (read_item(r, &info) || read_item(r, &state) || read_item(r, &attr)) return FOIL_EINVAL;
  const char *cls = info && info->n >= 1 && info->elt && info->elt[0] &&
                            info->elt[0]->type == RDATA_SYMSXP
                        ? info->elt[0]->str[0]
                        : NULL;
  if (!cls) return fail(r, "ALTREP object without a class name%s", "");
  rdata_val *v = NULL;
  if (!strcmp(cls, "compact_intseq") || !strcmp(cls, "compact_realseq")) {
    int ints = cls[8] == 'i';
    if (!state || state->type != RDATA_REALSXP || state->n != 3)
      return fail(r, "ALTREP %s: state is not (length, start, step)", cls);
    double n = state->reals[0], n1 = state->reals[1], inc = state->reals[2];
    if (!(n >= 0 && n <= (double)RDATA_MAX_EXPAND) || (ints && inc != 1 && inc != -1))
      return fail(r, "ALTREP %s: implausible sequence", cls);
    if (expand(r, cls, (uint64_t)n, ints ? 4 : 8)) return FOIL_EINVAL;
    if (!(v = new_val(r, ints ? RDATA_INTSXP : RDATA_REALSXP))) return oom(r);
    v->n = (uint64_t)n;
    if (ints) {
      /* written so that a NaN start fails too (converting it is undefined) */
      if (!(fabs(n1) <= 2147483647.0) || !(fabs(n1 + inc * n) <= 2147483648.0))
        return fail(r, "ALTREP %s: sequence leaves the integer range", cls);
      int32_t *a = arena_alloc(r->doc, (v->n + 1) * sizeof *a);
      if (!a) return oom(r);
      for (uint64_t i = 0; i < v->n; i++) a[i] = (int32_t)(n1 + inc * (double)i);
      v->ints = a;
    } else {
      double *a = arena_alloc(r->doc, (v->n + 1) * sizeof *a);
      if (!a) return oom(r);
      for (uint64_t i = 0; i < v->n; i++) a[i] = n1 + inc * (double)i;
      v->reals = a;
    }
  } else if (!strncmp(cls, "wrap_", 5)) {
    /* state: (wrapped vector, metadata) as a pairlist or list */
    if (!state || state->n < 1 || !state->elt)
      return fail(r, "ALTREP %s: state does not hold the wrapped vector", cls);
    rdata_val *x = state->elt[0];
    if (!x) return fail(r, "ALTREP %s: wrapped vector is NULL", cls);
    if (!(v = new_val(r, x->type))) return oom(r);
    *v = *x; /* shallow copy: the arrays stay shared in the arena */
  } else if (!strcmp(cls, "deferred_string")) {
    /* state: (numeric vector, scalar info); strings as R's as.character */
    rdata_val *x = state && state->n >= 1 && state->elt ? state->elt[0] : NULL;
    if (!x || (x->type != RDATA_INTSXP && x->type != RDATA_REALSXP))
      return fail(r, "ALTREP %s: state is not a numeric vector", cls);
    if (expand(r, cls, x->n, sizeof *v->str + 16)) return FOIL_EINVAL; /* a pointer and a string each */
    if (!(v = new_val(r, RDATA_STRSXP))) return oom(r);
    v->n = x->n;
    v->str = arena_alloc(r->doc, (x->n + 1) * sizeof *v->str);
    if (!v->str) return oom(r);
    for (uint64_t i = 0; i < x->n; i++) {
      char buf[64];
      if (x->type == RDATA_INTSXP) {
        if (x->ints[i] == RDATA_NA_INT) {
          v->str[i] = NULL;
          continue;
        }
        snprintf(buf, sizeof buf, "%d", x->ints[i]);
      } else {
        if (isnan(x->reals[i])) {
          v->str[i] = NULL;
          continue;
        }
        snprintf(buf, sizeof buf, "%.15g", x->reals[i]);
      }
      if (!(v->str[i] = arena_str(r, (const uint8_t *)buf, strlen(buf), 0))) return oom(r);
    }
  } else {
    return fail(r, "unsupported ALTREP class %s", cls);
  }
  v->attr = attr;
  *out = v;
  return FOIL_OK;
}

static int read_item_inner(reader *r, rdata_val **out) {
  *out = NULL;
  size_t start = r->pos;
  int32_t flags;
  if (rd_int(r, &flags)) return FOIL_EINVAL;
  int type = flags & 0xFF;
  int hasattr = (flags >> 9) & 1;
  rdata_val *v = NULL;
  const char *sp = special_name(type);
  if (sp) {
    if (!(v = new_val(r, RDATA_SPECIAL_VALUE))) return oom(r);
    v->n = 1;
    if (!(v->str = arena_alloc(r->doc, sizeof *v->str))) return oom(r);
    v->str[0] = sp;
    *out = v;
    return FOIL_OK;
  }
  switch (type) {
    case NILVALUE_SXP: return FOIL_OK;
    case REFSXP: {
      int32_t idx = (int32_t)((uint32_t)flags >> 8);
      if (idx == 0 && rd_int(r, &idx)) return FOIL_EINVAL;
      if (idx < 1 || (size_t)idx > r->nrefs) {
        r->pos = start;
        return fail(r, "reference to an object not read yet (corrupt stream)%s", "");
      }
      *out = r->refs[idx - 1];
      return FOIL_OK;
    }
    case PERSISTSXP:
    case NAMESPACESXP:
    case PACKAGESXP:
      if (read_string_vec(r, RDATA_SPECIAL_VALUE, &v)) return FOIL_EINVAL;
      if (add_ref(r, v)) return FOIL_ENOMEM;
      *out = v;
      return FOIL_OK;
    case RDATA_SYMSXP: {
      rdata_val *name;
      if (read_item(r, &name)) return FOIL_EINVAL;
      if (!name || name->type != RDATA_CHARSXP || !name->str[0])
        return fail(r, "a symbol's name is not a string%s", "");
      if (!(v = new_val(r, RDATA_SYMSXP))) return oom(r);
      v->n = 1;
      v->str = name->str;
      if (add_ref(r, v)) return FOIL_ENOMEM;
      *out = v;
      return FOIL_OK;
    }
    case RDATA_ENVSXP: {
      int32_t locked;
      if (rd_int(r, &locked)) return FOIL_EINVAL;
      if (!(v = new_val(r, RDATA_ENVSXP))) return oom(r);
      if (add_ref(r, v)) return FOIL_ENOMEM;
      v->n = 3;
      if (!(v->elt = arena_alloc(r->doc, 3 * sizeof *v->elt))) return oom(r);
      for (int i = 0; i < 3; i++)
        if (read_item(r, &v->elt[i])) return FOIL_EINVAL;
      if (read_item(r, &v->attr)) return FOIL_EINVAL;
      *out = v;
      return FOIL_OK;
    }
    case RDATA_LISTSXP:
    case RDATA_LANGSXP:
    case RDATA_CLOSXP:
    case RDATA_PROMSXP:
    case RDATA_DOTSXP:
    case ATTRLANGSXP:
    case ATTRLISTSXP:
      return read_pairlist(r, flags, out);
    case ALTREP_SXP:
      return read_altrep(r, out);
    case RDATA_SPECIALSXP:
    case RDATA_BUILTINSXP: {
      int32_t n;
      const uint8_t *b = NULL;
      if (rd_int(r, &n)) return FOIL_EINVAL;
      if (n < 0) return fail(r, "negative builtin name length%s", "");
      if (rd_bytes(r, (size_t)n, &b)) return FOIL_EINVAL;
      if (!(v = new_val(r, type))) return oom(r);
      v->n = 1;
      if (!(v->str = arena_alloc(r->doc, sizeof *v->str))) return oom(r);
      if (!(v->str[0] = arena_str(r, b, (size_t)n, 0))) return oom(r);
      break;
    }
    case RDATA_CHARSXP: {
      if (!(v = new_val(r, RDATA_CHARSXP))) return oom(r);
      v->n = 1;
      if (!(v->str = arena_alloc(r->doc, sizeof *v->str))) return oom(r);
      if (read_charsxp_body(r, flags, &v->str[0])) return FOIL_EINVAL;
      *out = v;
      return FOIL_OK;
    }
    case RDATA_LGLSXP:
    case RDATA_INTSXP: {
      uint64_t n;
      const uint8_t *b = NULL;
      if (rd_length(r, 4, &n) || rd_bytes(r, n * 4, &b)) return FOIL_EINVAL;
      if (!(v = new_val(r, type))) return oom(r);
      int32_t *a = arena_alloc(r->doc, (n + 1) * 4);
      if (!a) return oom(r);
      for (uint64_t i = 0; i < n; i++, b += 4)
        a[i] = (int32_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
      v->n = n;
      v->ints = a;
      break;
    }
    case RDATA_REALSXP:
    case RDATA_CPLXSXP: {
      uint64_t n;
      const uint8_t *b = NULL;
      size_t per = type == RDATA_REALSXP ? 1 : 2;
      if (rd_length(r, 8 * per, &n) || rd_bytes(r, n * 8 * per, &b)) return FOIL_EINVAL;
      if (!(v = new_val(r, type))) return oom(r);
      double *a = arena_alloc(r->doc, (n * per + 1) * 8);
      if (!a) return oom(r);
      for (uint64_t i = 0; i < n * per; i++) a[i] = be_double(b + 8 * i);
      v->n = n;
      v->reals = a;
      break;
    }
    case RDATA_STRSXP: {
      uint64_t n;
      if (rd_length(r, 8, &n)) return FOIL_EINVAL;
      if (!(v = new_val(r, type))) return oom(r);
      v->n = n;
      if (!(v->str = arena_alloc(r->doc, (n + 1) * sizeof *v->str))) return oom(r);
      for (uint64_t i = 0; i < n; i++)
        if (read_string_elt(r, &v->str[i])) return FOIL_EINVAL;
      break;
    }
    case RDATA_VECSXP:
    case RDATA_EXPRSXP: {
      uint64_t n;
      if (rd_length(r, 4, &n)) return FOIL_EINVAL;
      if (!(v = new_val(r, type))) return oom(r);
      v->n = n;
      if (!(v->elt = arena_alloc(r->doc, (n + 1) * sizeof *v->elt))) return oom(r);
      for (uint64_t i = 0; i < n; i++)
        if (read_item(r, &v->elt[i])) return FOIL_EINVAL;
      break;
    }
    case RDATA_RAWSXP: {
      uint64_t n;
      const uint8_t *b = NULL;
      if (rd_length(r, 1, &n) || rd_bytes(r, n, &b)) return FOIL_EINVAL;
      if (!(v = new_val(r, type))) return oom(r);
      uint8_t *a = arena_alloc(r->doc, n + 1);
      if (!a) return oom(r);
      memcpy(a, b, n);
      v->n = n;
      v->raw = a;
      break;
    }
    case RDATA_S4SXP:
      if (!(v = new_val(r, type))) return oom(r);
      break;
    default: {
      char t[32];
      snprintf(t, sizeof t, "%d", type);
      r->pos = start;
      return fail(r, "unsupported or invalid R object type %s (corrupt stream?)", t);
    }
  }
  v->is_object = (flags >> 8) & 1;
  if (hasattr && read_item(r, &v->attr)) return FOIL_EINVAL;
  *out = v;
  return FOIL_OK;
}

static int read_item(reader *r, rdata_val **out) {
  if (r->depth >= RDATA_MAX_DEPTH) return fail(r, "objects nested too deeply (corrupt stream?)%s", "");
  r->depth++;
  int rc = read_item_inner(r, out);
  r->depth--;
  return rc;
}

/* ---- decompression ------------------------------------------------------------- */

/* Inflates a gzip or zlib stream of unknown output size. */
static int inflate_all(const uint8_t *in, size_t n, uint8_t **out, size_t *outn, const char *what,
                       foil_err *err) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 15 + 32) != Z_OK) return foil_err_set(err, FOIL_ENOMEM, "zlib init failed");
  size_t cap = n < RDATA_MAX_STREAM / 8 ? n * 4 + 1024 : RDATA_MAX_STREAM, len = 0;
  uint8_t *buf = malloc(cap);
  int rc = buf ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "out of memory");
  z.next_in = (Bytef *)in;
  size_t in_left = n;
  while (!rc) {
    if (len == cap) {
      if (cap >= RDATA_MAX_STREAM) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s: decompresses to 2 GiB or more", what);
        break;
      }
      size_t ncap = cap > RDATA_MAX_STREAM / 2 ? RDATA_MAX_STREAM : cap * 2;
      uint8_t *nb = realloc(buf, ncap);
      if (!nb) {
        rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        break;
      }
      buf = nb;
      cap = ncap;
    }
    uInt chunk_in = in_left > 0x40000000 ? 0x40000000 : (uInt)in_left;
    z.avail_in = chunk_in;
    z.next_out = buf + len;
    size_t room = cap - len;
    z.avail_out = room > 0x40000000 ? 0x40000000 : (uInt)room;
    uInt before_out = z.avail_out;
    int zr = inflate(&z, Z_NO_FLUSH);
    in_left -= chunk_in - z.avail_in;
    len += before_out - z.avail_out;
    if (zr == Z_STREAM_END) break;
    if (zr == Z_BUF_ERROR && in_left == 0 && z.avail_out > 0) zr = Z_DATA_ERROR;
    if (zr != Z_OK && zr != Z_BUF_ERROR) {
      rc = foil_err_set(err, FOIL_EINVAL,
                        "%s: compressed data is %s at compressed byte %zu", what,
                        in_left == 0 ? "truncated" : "corrupt", n - in_left);
      break;
    }
  }
  inflateEnd(&z);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *outn = len;
  return FOIL_OK;
}

int rdata_unserialize(const void *vbuf, size_t len, const char *what, rdata_doc **docp,
                      const rdata_val **root, foil_err *err) {
  *docp = NULL;
  *root = NULL;
  const uint8_t *buf = vbuf;
  uint8_t *plain = NULL;
  if (len >= 2 && ((buf[0] == 0x1f && buf[1] == 0x8b) ||
                   ((buf[0] & 0x0F) == 8 && ((unsigned)buf[0] << 8 | buf[1]) % 31 == 0))) {
    size_t n = 0;
    int rc = inflate_all(buf, len, &plain, &n, what, err);
    if (rc) return rc;
    buf = plain;
    len = n;
  }
  reader r = {.p = buf, .len = len, .what = what, .err = err};
  int rc = FOIL_OK;
  if (len < 2 || buf[0] != 'X' || buf[1] != '\n') {
    rc = foil_err_set(err, FOIL_EINVAL,
                      "%s: not R serialized data in XDR format (expected \"X\\n\" at offset 0%s)",
                      what, len >= 2 && (buf[0] == 'A' || buf[0] == 'B') && buf[1] == '\n'
                                ? "; ASCII and native binary formats are not supported"
                                : "");
    free(plain);
    return rc;
  }
  r.pos = 2;
  int32_t version, writer, minreader;
  if (rd_int(&r, &version) || rd_int(&r, &writer) || rd_int(&r, &minreader)) {
    free(plain);
    return FOIL_EINVAL;
  }
  (void)writer;
  (void)minreader;
  if (version != 2 && version != 3) {
    r.pos -= 12;
    char v[16];
    snprintf(v, sizeof v, "%d", (int)version);
    fail(&r, "unsupported serialization version %s (2 and 3 are)", v);
    free(plain);
    return FOIL_EINVAL;
  }
  if (version == 3) {
    int32_t nelen;
    const uint8_t *b = NULL;
    if (rd_int(&r, &nelen) || nelen < 0 || rd_bytes(&r, (size_t)nelen, &b)) {
      fail(&r, "bad native-encoding header%s", "");
      free(plain);
      return FOIL_EINVAL;
    }
  }
  rdata_doc *doc = calloc(1, sizeof *doc);
  if (!doc) {
    free(plain);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  r.doc = doc;
  rdata_val *v = NULL;
  rc = read_item(&r, &v);
  if (!rc && r.pos != r.len) fail(&r, "unexpected bytes after the object%s", ""), rc = FOIL_EINVAL;
  free(r.refs);
  free(plain);
  if (rc) {
    rdata_doc_free(&doc);
    return rc;
  }
  *docp = doc;
  *root = v;
  return FOIL_OK;
}

/* ---- lookup ---------------------------------------------------------------------- */

const rdata_val *rdata_attr(const rdata_val *v, const char *name) {
  if (!v || !v->attr || !v->attr->tag) return NULL;
  for (uint64_t i = 0; i < v->attr->n; i++)
    if (v->attr->tag[i] && !strcmp(v->attr->tag[i], name)) return v->attr->elt[i];
  return NULL;
}

const rdata_val *rdata_get(const rdata_val *list, const char *name) {
  if (!list || !list->elt) return NULL;
  if (list->tag) {
    for (uint64_t i = 0; i < list->n; i++)
      if (list->tag[i] && !strcmp(list->tag[i], name)) return list->elt[i];
    return NULL;
  }
  const rdata_val *names = rdata_attr(list, "names");
  if (!names || names->type != RDATA_STRSXP) return NULL;
  for (uint64_t i = 0; i < names->n && i < list->n; i++)
    if (names->str[i] && !strcmp(names->str[i], name)) return list->elt[i];
  return NULL;
}

int rdata_inherits(const rdata_val *v, const char *cls) {
  const rdata_val *c = rdata_attr(v, "class");
  if (!c || c->type != RDATA_STRSXP) return 0;
  for (uint64_t i = 0; i < c->n; i++)
    if (c->str[i] && !strcmp(c->str[i], cls)) return 1;
  return 0;
}

/* ---- lazy-load databases ------------------------------------------------------ */

struct rdata_db {
  char *rdb;            /* path of the .rdb */
  uint64_t rdb_size;
  int compressed;       /* 0 stored, 1 zlib, 2 bzip2, 3 xz */
  rdata_doc *index;     /* the parsed .rdx */
  size_t n;
  const char **names;   /* into index */
  int64_t *off, *len;
};

static int read_file(const char *path, uint8_t **buf, size_t *n, foil_err *err) {
  char *data = NULL;
  int rc = foil_read_file(path, &data, n, err);
  *buf = (uint8_t *)data;
  return rc;
}

void rdata_db_close(rdata_db **dbp) {
  if (!dbp || !*dbp) return;
  rdata_db *db = *dbp;
  free(db->rdb);
  rdata_doc_free(&db->index);
  free(db->names);
  free(db->off);
  free(db->len);
  free(db);
  *dbp = NULL;
}

int rdata_db_open(rdata_db **out, const char *base, foil_err *err) {
  *out = NULL;
  size_t bl = strlen(base);
  char *rdx = malloc(bl + 5);
  rdata_db *db = calloc(1, sizeof *db);
  if (db) db->rdb = malloc(bl + 5);
  if (!rdx || !db || !db->rdb) {
    free(rdx);
    rdata_db_close(&db);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  snprintf(rdx, bl + 5, "%s.rdx", base);
  snprintf(db->rdb, bl + 5, "%s.rdb", base);
  uint8_t *buf = NULL;
  size_t n = 0;
  const rdata_val *root = NULL;
  int rc = read_file(rdx, &buf, &n, err);
  if (!rc) rc = rdata_unserialize(buf, n, rdx, &db->index, &root, err);
  free(buf);
  struct stat st;
  if (!rc) {
    if (stat(db->rdb, &st) != 0)
      rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: %s", db->rdb, strerror(errno));
    else
      db->rdb_size = (uint64_t)st.st_size;
  }
  const rdata_val *vars = rc ? NULL : rdata_get(root, "variables");
  const rdata_val *comp = rc ? NULL : rdata_get(root, "compressed");
  if (!rc && (!vars || (vars->type != RDATA_VECSXP && vars->type != RDATA_LISTSXP)))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: not a lazy-load index (no `variables` list)", rdx);
  if (!rc) {
    if (!comp)
      db->compressed = 1;
    else if ((comp->type == RDATA_LGLSXP || comp->type == RDATA_INTSXP) && comp->n == 1)
      db->compressed = comp->ints[0];
    else if (comp->type == RDATA_REALSXP && comp->n == 1)
      /* compared before converting: a NaN or huge double has no int */
      db->compressed = comp->reals[0] >= 0 && comp->reals[0] <= 3 ? (int)comp->reals[0] : -1;
    else
      db->compressed = -1;
    if (db->compressed < 0 || db->compressed > 3)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: unknown `compressed` value", rdx);
  }
  const rdata_val *names = rc ? NULL : rdata_attr(vars, "names");
  if (!rc) {
    db->n = (size_t)vars->n;
    db->names = calloc(db->n + 1, sizeof *db->names);
    db->off = calloc(db->n + 1, sizeof *db->off);
    db->len = calloc(db->n + 1, sizeof *db->len);
    if (!db->names || !db->off || !db->len) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  for (size_t i = 0; !rc && i < db->n; i++) {
    const char *nm = vars->tag ? vars->tag[i]
                     : names && names->type == RDATA_STRSXP && i < names->n ? names->str[i]
                                                                           : NULL;
    const rdata_val *e = vars->elt[i];
    int64_t o = -1, l = -1;
    if (e && e->n == 2 && e->type == RDATA_INTSXP) {
      o = e->ints[0];
      l = e->ints[1];
    } else if (e && e->n == 2 && e->type == RDATA_REALSXP) {
      /* whole numbers below 2^53 only (a NaN or 1e300 has no int64_t) */
      double a = e->reals[0], b = e->reals[1];
      if (a >= 0 && a <= 9007199254740992.0 && a == floor(a) && b >= 0 && b <= 9007199254740992.0 &&
          b == floor(b))
        o = (int64_t)a, l = (int64_t)b;
    }
    if (!nm || o < 0 || l < 4)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: variable %zu has no name or a bad (offset, length)", rdx, i);
    else if ((uint64_t)o + (uint64_t)l > db->rdb_size)
      rc = foil_err_set(err, FOIL_EINVAL,
                        "%s: variable '%s' at byte %lld, length %lld, runs past the end of %s "
                        "(%llu bytes): truncated?",
                        rdx, nm, (long long)o, (long long)l, db->rdb, (unsigned long long)db->rdb_size);
    db->names[i] = nm;
    db->off[i] = o;
    db->len[i] = l;
  }
  free(rdx);
  if (rc) {
    rdata_db_close(&db);
    return rc;
  }
  *out = db;
  return FOIL_OK;
}

size_t rdata_db_count(const rdata_db *db) { return db->n; }
const char *rdata_db_name(const rdata_db *db, size_t i) { return i < db->n ? db->names[i] : NULL; }

/* ---- .rdb records ------------------------------------------------------------------ */

/* Decompresses a record's body (kind 'Z' zlib, '2' bzip2, 'X' xz, '0'
 * stored) that its header says is `want` bytes. The output buffer starts
 * near the input's size and doubles as the decoder really produces bytes,
 * up to want + 1 (one more shows a stream longer than its header says), so
 * a header that lies costs nothing. *produced: the bytes decoded, *ended:
 * whether the stream ended (the caller checks both). FOIL_OK also for a
 * corrupt stream; errors only for memory, and for an xz stream asking for
 * more than RDATA_XZ_MEMLIMIT. */
static int decode_record(char kind, const uint8_t *in, size_t n, size_t want, uint8_t **out, size_t *produced,
                         int *ended, const char *what, foil_err *err) {
  *out = NULL;
  *produced = 0;
  *ended = kind == '0';
  if (kind == '0') {
    if (n != want) {
      *produced = n;
      return FOIL_OK;
    }
    if (!(*out = malloc(n + 1))) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    memcpy(*out, in, n);
    *produced = n;
    return FOIL_OK;
  }
  size_t cap = n < want / 4 ? 4 * n + 65536 : want + 1;
  if (cap > want + 1) cap = want + 1;
  size_t len = 0, used = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  z_stream z;
  bz_stream bz;
  lzma_stream xz = LZMA_STREAM_INIT;
  memset(&z, 0, sizeof z);
  memset(&bz, 0, sizeof bz);
  int init = kind == 'Z'   ? inflateInit(&z) == Z_OK
             : kind == '2' ? BZ2_bzDecompressInit(&bz, 0, 0) == BZ_OK
                           : lzma_stream_decoder(&xz, RDATA_XZ_MEMLIMIT, 0) == LZMA_OK;
  int rc = init ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "%s: cannot start the decompressor", what);
  const size_t step = (size_t)1 << 30; /* the decoders count in 32 bits */
  while (!rc) {
    if (len == cap) {
      if (cap > want) break; /* more than the header says: corrupt */
      size_t ncap = cap > (want + 1) / 2 ? want + 1 : 2 * cap;
      uint8_t *nb = realloc(buf, ncap);
      if (!nb) {
        rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        break;
      }
      buf = nb;
      cap = ncap;
    }
    size_t ai = n - used < step ? n - used : step, ao = cap - len < step ? cap - len : step;
    size_t ai_left = ai, ao_left = ao;
    int end = 0, bad = 0;
    if (kind == 'Z') {
      z.next_in = (Bytef *)(in + used), z.avail_in = (uInt)ai;
      z.next_out = buf + len, z.avail_out = (uInt)ao;
      int zr = inflate(&z, Z_NO_FLUSH);
      ai_left = z.avail_in, ao_left = z.avail_out;
      end = zr == Z_STREAM_END;
      bad = zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR;
    } else if (kind == '2') {
      bz.next_in = (char *)(in + used), bz.avail_in = (unsigned)ai;
      bz.next_out = (char *)(buf + len), bz.avail_out = (unsigned)ao;
      int br = BZ2_bzDecompress(&bz);
      ai_left = bz.avail_in, ao_left = bz.avail_out;
      end = br == BZ_STREAM_END;
      bad = br != BZ_OK && br != BZ_STREAM_END;
    } else {
      xz.next_in = in + used, xz.avail_in = ai;
      xz.next_out = buf + len, xz.avail_out = ao;
      lzma_ret lr = lzma_code(&xz, used + ai == n ? LZMA_FINISH : LZMA_RUN);
      ai_left = xz.avail_in, ao_left = xz.avail_out;
      end = lr == LZMA_STREAM_END;
      bad = lr != LZMA_OK && lr != LZMA_STREAM_END;
      if (lr == LZMA_MEMLIMIT_ERROR)
        rc = foil_err_set(err, FOIL_EINVAL,
                          "%s: the xz stream needs %llu MiB to decompress, more than the %llu MiB foil allows "
                          "(corrupt header?)",
                          what, (unsigned long long)(lzma_memusage(&xz) >> 20),
                          (unsigned long long)(RDATA_XZ_MEMLIMIT >> 20));
    }
    used += ai - ai_left;
    len += ao - ao_left;
    *ended = end;
    /* ended, broken, or stuck: the input is used up and the output has room */
    if (end || bad || (ai == ai_left && ao == ao_left && len < cap)) break;
  }
  if (kind == 'Z') inflateEnd(&z);
  else if (kind == '2') BZ2_bzDecompressEnd(&bz);
  else lzma_end(&xz);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *produced = len;
  return FOIL_OK;
}

int rdata_db_load(rdata_db *db, const char *name, rdata_doc **doc, const rdata_val **val,
                  foil_err *err) {
  *doc = NULL;
  *val = NULL;
  size_t i = 0;
  while (i < db->n && strcmp(db->names[i], name)) i++;
  if (i == db->n) return foil_err_set(err, FOIL_ENOTFOUND, "%s: no variable '%s'", db->rdb, name);
  long long off = (long long)db->off[i], len = (long long)db->len[i];
  char what[1024];
  snprintf(what, sizeof what, "%s: variable '%s' (record at byte %lld)", db->rdb, name, off);
  FILE *f = fopen(db->rdb, "rb");
  if (!f) return foil_err_set(err, FOIL_ENOTFOUND, "%s: %s", db->rdb, strerror(errno));
  uint8_t *rec = malloc((size_t)len);
  size_t got = 0;
  if (rec && fseek(f, (long)off, SEEK_SET) == 0) got = fread(rec, 1, (size_t)len, f);
  fclose(f);
  if (!rec) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  if (got != (size_t)len) {
    free(rec);
    return foil_err_set(err, FOIL_EINVAL, "%s: record of %lld bytes is cut short at %zu (truncated file)",
                        what, len, got);
  }
  uint8_t *plain = NULL;
  int rc = FOIL_OK;
  if (db->compressed == 0) {
    rc = rdata_unserialize(rec, (size_t)len, what, doc, val, err);
    free(rec);
    return rc;
  }
  uint64_t want = (uint64_t)rec[0] << 24 | (uint64_t)rec[1] << 16 | (uint64_t)rec[2] << 8 | rec[3];
  const uint8_t *body = rec + 4;
  size_t blen = (size_t)len - 4;
  char kind = 'Z';
  if (db->compressed >= 2) {
    if (blen < 1) rc = foil_err_set(err, FOIL_EINVAL, "%s: record has no compression byte", what);
    kind = blen ? (char)body[0] : '?';
    if (blen) body++, blen--;
  }
  if (!rc && want >= RDATA_MAX_STREAM)
    rc = foil_err_set(err, FOIL_EINVAL, "%s: implausible uncompressed length %llu", what,
                      (unsigned long long)want);
  if (!rc && kind != 'Z' && kind != '2' && kind != 'X' && kind != '0')
    rc = foil_err_set(err, FOIL_EINVAL, "%s: unknown compression type byte 0x%02x", what,
                      (unsigned)(uint8_t)kind);
  size_t produced = 0;
  int ended = 0;
  if (!rc) rc = decode_record(kind, body, blen, (size_t)want, &plain, &produced, &ended, what, err);
  if (!rc && (!ended || produced != want))
    rc = foil_err_set(err, FOIL_EINVAL,
                      "%s: compressed record is corrupt or truncated (%lld bytes; header says %llu "
                      "bytes uncompressed)",
                      what, len, (unsigned long long)want);
  free(rec);
  if (!rc) rc = rdata_unserialize(plain, (size_t)want, what, doc, val, err);
  free(plain);
  return rc;
}
