/* prepare_util.h — the small tools `foil data prepare` sources share
 * (prefix prep_): growable vectors, a string arena, a string -> index hash
 * map, stable hashes for splitting, UTF-8 checking, whole-file reading and
 * atomic writing of small text files.
 *
 * Ownership: every container owns its memory and is released by its
 * *_free function; a prep_map does NOT copy its keys (they must outlive the
 * map, typically in a prep_pool). Costs: push/put are amortized O(1),
 * prep_pool_dup copies len+1 bytes, prep_utf8_valid is linear.
 * Functions returning int return 0 or a foil error code (common/err.h).
 */
#ifndef FOIL_CLI_PREPARE_UTIL_H
#define FOIL_CLI_PREPARE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* ---- vectors ------------------------------------------------------------- */
typedef struct {
  char **v;
  size_t n, cap;
} prep_strv; /* array of borrowed string pointers */

typedef struct {
  int64_t *v;
  size_t n, cap;
} prep_i64v;

int prep_strv_push(prep_strv *s, char *str, foil_err *err);
void prep_strv_free(prep_strv *s);
int prep_i64v_push(prep_i64v *s, int64_t x, foil_err *err);
void prep_i64v_free(prep_i64v *s);

/* ---- string arena ---------------------------------------------------------- */
typedef struct prep_chunk prep_chunk;
typedef struct {
  prep_chunk *head;
} prep_pool;

/* Copies len bytes of s and a terminating NUL into the pool; NULL when out
 * of memory. The copy lives until prep_pool_free. */
char *prep_pool_dup(prep_pool *p, const char *s, size_t len);
void prep_pool_free(prep_pool *p);

/* ---- string -> int64 map (keys borrowed) ------------------------------------- */
typedef struct {
  const char **key;
  size_t *klen;
  int64_t *val;
  size_t cap, n;
} prep_map;

/* The value stored for key, or -1 when absent. */
int64_t prep_map_get(const prep_map *m, const char *key, size_t len);
/* Stores key -> val unless key is present; *old (if not NULL) gets the
 * existing value or -1 when the key was new. */
int prep_map_put(prep_map *m, const char *key, size_t len, int64_t val, int64_t *old,
                 foil_err *err);
void prep_map_free(prep_map *m);

/* ---- stable hashes ----------------------------------------------------------- */
/* FNV-1a 64 of the bytes: the same on every machine and every run. */
uint64_t prep_hash(const void *data, size_t len);
/* SplitMix64's finalizer: a bijective 64-bit mix. */
uint64_t prep_mix(uint64_t x);
/* A 63-bit non-negative group key of a text (prep_hash >> 1). */
int64_t prep_group_key(const char *s, size_t len);
/* A number in [0, 1) that depends only on (seed, key). */
double prep_unit(uint64_t seed, uint64_t key);

/* ---- text ---------------------------------------------------------------------- */
/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF);
 * else 0 and *bad (if not NULL) = offset of the first bad byte. */
int prep_utf8_valid(const char *s, size_t n, size_t *bad);

/* Reads a whole file into a malloc'ed, NUL-terminated buffer. */
int prep_read_file(const char *path, char **buf, size_t *n, foil_err *err);
/* Writes data to path atomically (temporary name, fsync, rename);
 * parent directories are created. */
int prep_write_file(const char *path, const char *data, size_t n, foil_err *err);
/* mkdir -p of dir. */
int prep_mkdirs(const char *dir, foil_err *err);
/* snprintf into a malloc'ed string (NULL when out of memory). */
char *prep_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- provenance ------------------------------------------------------------------ */
/* The command line recorded as the files' "created_by" attribute. cmd_data
 * sets it from argv; the string is copied (static storage, 1 KiB, cut). */
void prep_set_created_by(const char *cmdline);
const char *prep_created_by(const char *fallback);

#endif
