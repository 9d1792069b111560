/* tok_map.h — the two hash maps the tokenizers use (open addressing,
 * linear probing, power-of-two capacity, grows at 1/2 load).
 *
 *   tok_strmap: byte string -> int32. Keys are NOT copied: the caller keeps
 *     the key bytes alive and unchanged while the map lives (tokenizers point
 *     into their own vocabulary storage).
 *   tok_u64map: uint64 -> uint64 (merge pairs -> rank and id, pair counts).
 *     The key UINT64_MAX is reserved.
 *
 * Lookups are O(1) expected and never allocate; put may grow (realloc).
 * A map that is only read is safe to share between threads.
 */
#ifndef FOIL_MODEL_TOK_MAP_H
#define FOIL_MODEL_TOK_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *key;
  uint32_t len;
  int32_t val;
  uint64_t hash;
} tok_strmap_slot;

typedef struct {
  tok_strmap_slot *slots; /* key == NULL: empty */
  size_t cap, n;
} tok_strmap;

typedef struct {
  uint64_t *keys; /* UINT64_MAX: empty */
  uint64_t *vals;
  size_t cap, n;
} tok_u64map;

uint64_t tok_hash(const void *p, size_t len);

/* 0 or -1 (out of memory). expected: number of keys planned (0 is fine). */
int tok_strmap_init(tok_strmap *m, size_t expected);
void tok_strmap_free(tok_strmap *m);
/* The value of key, or -1 when absent. */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len);
/* Inserts key -> val: 0 inserted, 1 already present (*old gets its value,
 * the map is unchanged), -1 out of memory. old may be NULL. */
int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val, int32_t *old);

int tok_u64map_init(tok_u64map *m, size_t expected);
void tok_u64map_free(tok_u64map *m);
/* 1 and *val when present, else 0. */
int tok_u64map_get(const tok_u64map *m, uint64_t key, uint64_t *val);
/* Inserts or overwrites: 0 inserted, 1 overwritten, -1 out of memory. */
int tok_u64map_put(tok_u64map *m, uint64_t key, uint64_t val);

#endif
