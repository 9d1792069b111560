/* tok_map.c — see tok_map.h. */
#include "model/tok_map.h"

#include <stdlib.h>
#include <string.h>

uint64_t tok_hash(const void *p, size_t len) {
  /* 64-bit multiply-xorshift over 8-byte words; good enough for token
   * strings and fast on short keys. */
  const uint8_t *s = p;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xff51afd7ed558ccdull);
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    s += 8;
    len -= 8;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < len; i++) w |= (uint64_t)s[i] << (8 * i);
  h = (h ^ w) * 0x94d049bb133111ebull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

static size_t cap_for(size_t expected) {
  size_t cap = 16;
  while (cap < expected * 2 + 2) cap *= 2;
  return cap;
}

/* ---- string map ---------------------------------------------------------- */

int tok_strmap_init(tok_strmap *m, size_t expected) {
  m->cap = cap_for(expected);
  m->n = 0;
  m->slots = calloc(m->cap, sizeof *m->slots);
  return m->slots ? 0 : -1;
}

void tok_strmap_free(tok_strmap *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->n = 0;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
  uint64_t h = tok_hash(key, len);
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const tok_strmap_slot *s = &m->slots[i];
    if (!s->key) return -1;
    if (s->hash == h && s->len == len && !memcmp(s->key, key, len)) return s->val;
  }
}

static void strmap_place(tok_strmap_slot *slots, size_t cap, const tok_strmap_slot *e) {
  size_t mask = cap - 1;
  size_t i = e->hash & mask;
  while (slots[i].key) i = (i + 1) & mask;
  slots[i] = *e;
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val, int32_t *old) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t ncap = m->cap * 2;
    tok_strmap_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++)
      if (m->slots[i].key) strmap_place(ns, ncap, &m->slots[i]);
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
  }
  uint64_t h = tok_hash(key, len);
  size_t mask = m->cap - 1;
  size_t i = h & mask;
  for (; m->slots[i].key; i = (i + 1) & mask) {
    tok_strmap_slot *s = &m->slots[i];
    if (s->hash == h && s->len == len && !memcmp(s->key, key, len)) {
      if (old) *old = s->val;
      return 1;
    }
  }
  m->slots[i] = (tok_strmap_slot){key, (uint32_t)len, val, h};
  m->n++;
  return 0;
}

/* ---- u64 map ------------------------------------------------------------- */

int tok_u64map_init(tok_u64map *m, size_t expected) {
  m->cap = cap_for(expected);
  m->n = 0;
  m->keys = malloc(m->cap * sizeof *m->keys);
  m->vals = malloc(m->cap * sizeof *m->vals);
  if (!m->keys || !m->vals) {
    tok_u64map_free(m);
    return -1;
  }
  memset(m->keys, 0xff, m->cap * sizeof *m->keys);
  return 0;
}

void tok_u64map_free(tok_u64map *m) {
  free(m->keys);
  free(m->vals);
  m->keys = m->vals = NULL;
  m->cap = m->n = 0;
}

int tok_u64map_get(const tok_u64map *m, uint64_t key, uint64_t *val) {
  size_t mask = m->cap - 1;
  for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
    if (m->keys[i] == key) {
      *val = m->vals[i];
      return 1;
    }
    if (m->keys[i] == UINT64_MAX) return 0;
  }
}

int tok_u64map_put(tok_u64map *m, uint64_t key, uint64_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t ncap = m->cap * 2;
    uint64_t *nk = malloc(ncap * sizeof *nk), *nv = malloc(ncap * sizeof *nv);
    if (!nk || !nv) {
      free(nk);
      free(nv);
      return -1;
    }
    memset(nk, 0xff, ncap * sizeof *nk);
    for (size_t i = 0; i < m->cap; i++) {
      if (m->keys[i] == UINT64_MAX) continue;
      size_t j = mix64(m->keys[i]) & (ncap - 1);
      while (nk[j] != UINT64_MAX) j = (j + 1) & (ncap - 1);
      nk[j] = m->keys[i];
      nv[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
  }
  size_t mask = m->cap - 1;
  size_t i = mix64(key) & mask;
  for (; m->keys[i] != UINT64_MAX; i = (i + 1) & mask)
    if (m->keys[i] == key) {
      m->vals[i] = val;
      return 1;
    }
  m->keys[i] = key;
  m->vals[i] = val;
  m->n++;
  return 0;
}
