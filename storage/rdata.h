/* rdata.h — reading R's serialized objects and lazy-load databases in C,
 * without R.
 *
 * Two layers:
 *   rdata_unserialize: one serialize() stream, XDR format ("X\n", versions
 *     2 and 3), optionally gzip- or zlib-wrapped (as saveRDS and the .rdx
 *     index write it), into a tree of rdata_val.
 *   rdata_db: R's lazy-load database, the pair <base>.rdx + <base>.rdb that
 *     an installed package keeps its data sets in (data/Rdata.rdx|rdb). The
 *     .rdx is a serialized named list: `variables` (name -> int[2] offset,
 *     length into the .rdb), `references`, `compressed` (TRUE: zlib; 2:
 *     bzip2; 3: xz). Each .rdb record is a 4-byte big-endian uncompressed
 *     length, then (compressed 2 or 3) a type byte 'Z' zlib, '2' bzip2,
 *     'X' xz, '0' stored, then the compressed serialize() stream.
 *
 * Supported types: NULL, symbols, pairlists (LISTSXP, LANGSXP, closures
 * and promises as generic pairlists), environments, CHARSXP (NA; UTF-8,
 * ASCII and native treated as UTF-8, latin1 converted to UTF-8, bytes kept),
 * logical, integer, double, complex, character, list, expression, raw, S4
 * objects, builtins, references (REFSXP), namespace/package/persist names,
 * and the ALTREP forms R writes for data: compact_intseq, compact_realseq,
 * wrap_* and deferred_string (kept as its unconverted payload).
 * Attributes are kept on every value. Byte code, external pointers and weak
 * references are refused with INVALID_ARGUMENT.
 *
 * Bad input never crashes: truncated or corrupt streams, impossible lengths
 * (checked against the bytes left before allocating), unknown types,
 * dangling references and nesting deeper than RDATA_MAX_DEPTH come back as
 * INVALID_ARGUMENT with a message naming the input (file/object) and the
 * byte offset in the decompressed stream. Nor does it cost memory out of
 * proportion: the ALTREP forms of one stream expand to at most 256 MiB,
 * a .rdb record's buffer grows with what really decompresses (not with the
 * length its header claims), and an xz record may use at most 256 MiB to
 * decode.
 *
 * Ownership: a parse returns an rdata_doc, an arena that owns every value,
 * string and array of the tree (shared references point into the same
 * arena); rdata_doc_free releases it all at once. Values are read-only.
 * Cost: linear in the stream size; memory about the decompressed size plus
 * one pointer per string.
 */
#ifndef FOIL_STORAGE_RDATA_H
#define FOIL_STORAGE_RDATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* R's SEXPTYPE numbers, as written in the stream. */
enum {
  RDATA_NILSXP = 0,
  RDATA_SYMSXP = 1,
  RDATA_LISTSXP = 2,
  RDATA_CLOSXP = 3,
  RDATA_ENVSXP = 4,
  RDATA_PROMSXP = 5,
  RDATA_LANGSXP = 6,
  RDATA_SPECIALSXP = 7,
  RDATA_BUILTINSXP = 8,
  RDATA_CHARSXP = 9,
  RDATA_LGLSXP = 10,
  RDATA_INTSXP = 13,
  RDATA_REALSXP = 14,
  RDATA_CPLXSXP = 15,
  RDATA_STRSXP = 16,
  RDATA_DOTSXP = 17,
  RDATA_VECSXP = 19,
  RDATA_EXPRSXP = 20,
  RDATA_RAWSXP = 24,
  RDATA_S4SXP = 25,
  /* values standing for R's special objects (global env, missing arg, ...) */
  RDATA_SPECIAL_VALUE = 200,
};

enum { RDATA_MAX_DEPTH = 256 };

/* R's NA_integer_ (and NA for logicals). */
#define RDATA_NA_INT INT32_MIN

typedef struct rdata_val rdata_val;
struct rdata_val {
  int type;            /* RDATA_* above */
  int is_object;       /* R's OBJECT bit (has a class) */
  uint64_t n;          /* element count (vectors, pairlists; 1 for symbols/CHARSXP) */
  /* STRSXP: n UTF-8 strings, NULL for NA. SYMSXP, CHARSXP, builtins,
   * namespace/package names: str[0]. */
  const char **str;
  const int32_t *ints;   /* LGLSXP, INTSXP (RDATA_NA_INT = NA) */
  const double *reals;   /* REALSXP (n), CPLXSXP (2n: re, im) */
  const uint8_t *raw;    /* RAWSXP */
  rdata_val **elt;       /* VECSXP, EXPRSXP, pairlist values; ENVSXP: enclos, frame, hashtab */
  const char **tag;      /* pairlists: the tag of each element (NULL if none) */
  rdata_val *attr;       /* attributes as a pairlist, or NULL */
};

typedef struct rdata_doc rdata_doc;

/* Parses a serialize() stream of len bytes (plain XDR, or gzip/zlib
 * wrapped). `what` names the input in error messages ("Rdata.rdx").
 * On success *doc owns the tree and *root is its top value (NULL for R's
 * NULL). On failure *doc is NULL. */
int rdata_unserialize(const void *buf, size_t len, const char *what, rdata_doc **doc,
                      const rdata_val **root, foil_err *err);
void rdata_doc_free(rdata_doc **doc);

/* The attribute `name` of v, or NULL. */
const rdata_val *rdata_attr(const rdata_val *v, const char *name);
/* The element of a list (VECSXP by its "names" attribute, or a pairlist by
 * its tags) called `name`, or NULL. */
const rdata_val *rdata_get(const rdata_val *list, const char *name);
/* 1 if v has class `cls` (its "class" attribute contains it). */
int rdata_inherits(const rdata_val *v, const char *cls);

/* ---- lazy-load databases ------------------------------------------------------ */

typedef struct rdata_db rdata_db;

/* Opens <base>.rdx (read and parsed now) and <base>.rdb (read on demand).
 * base is e.g. "/usr/lib/R/site-library/janeaustenr/data/Rdata". */
int rdata_db_open(rdata_db **out, const char *base, foil_err *err);
void rdata_db_close(rdata_db **db);
/* The variables the database holds, in its order. */
size_t rdata_db_count(const rdata_db *db);
const char *rdata_db_name(const rdata_db *db, size_t i);
/* Reads, decompresses and parses one variable. Errors name the .rdb file,
 * the variable and the record's offset. *doc as for rdata_unserialize. */
int rdata_db_load(rdata_db *db, const char *name, rdata_doc **doc, const rdata_val **val,
                  foil_err *err);

#endif
