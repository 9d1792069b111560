/* bpe_train.c — see bpe_train.h. */
#define _POSIX_C_SOURCE 200809L
#include "model/bpe_train.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/bpe.h"
#include "model/tok_map.h"
#include "model/tok_unicode.h"

enum { ARENA_BLOCK = 1 << 20 };

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  char data[];
} arena_block;

struct bpe_trainer {
  tok_strmap words; /* piece bytes (in the arena) -> word index */
  arena_block *arena;
  const char **wptr; /* word bytes */
  uint32_t *wlen;
  uint64_t *wcount;
  size_t nwords, capwords;
  long line; /* lines fed so far from `source` */
  char source[256];
};

static const char *arena_copy(bpe_trainer *tr, const char *s, size_t n) {
  arena_block *b = tr->arena;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    arena_block *nb = malloc(sizeof *nb + cap);
    if (!nb) return NULL;
    nb->next = b;
    nb->used = 0;
    nb->cap = cap;
    tr->arena = b = nb;
  }
  char *p = b->data + b->used;
  memcpy(p, s, n);
  b->used += n;
  return p;
}

int bpe_trainer_new(bpe_trainer **out, foil_err *err) {
  bpe_trainer *tr = calloc(1, sizeof *tr);
  if (!tr || tok_strmap_init(&tr->words, 1024) < 0) {
    free(tr);
    *out = NULL;
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for the BPE trainer");
  }
  *out = tr;
  return FOIL_OK;
}

void bpe_trainer_destroy(bpe_trainer **trp) {
  bpe_trainer *tr = trp ? *trp : NULL;
  if (!tr) return;
  tok_strmap_free(&tr->words);
  while (tr->arena) {
    arena_block *n = tr->arena->next;
    free(tr->arena);
    tr->arena = n;
  }
  free(tr->wptr);
  free(tr->wlen);
  free(tr->wcount);
  free(tr);
  *trp = NULL;
}

static int add_word(bpe_trainer *tr, const char *s, size_t n) {
  int32_t id = tok_strmap_get(&tr->words, s, n);
  if (id >= 0) {
    tr->wcount[id]++;
    return 0;
  }
  if (tr->nwords == tr->capwords) {
    size_t cap = tr->capwords ? tr->capwords * 2 : 1024;
    const char **p = realloc(tr->wptr, cap * sizeof *p);
    if (!p) return -1;
    tr->wptr = p;
    uint32_t *l = realloc(tr->wlen, cap * sizeof *l);
    if (!l) return -1;
    tr->wlen = l;
    uint64_t *c = realloc(tr->wcount, cap * sizeof *c);
    if (!c) return -1;
    tr->wcount = c;
    tr->capwords = cap;
  }
  if (tr->nwords >= INT32_MAX) return -1;
  const char *k = arena_copy(tr, s, n);
  if (!k || tok_strmap_put(&tr->words, k, n, (int32_t)tr->nwords, NULL) < 0) return -1;
  tr->wptr[tr->nwords] = k;
  tr->wlen[tr->nwords] = (uint32_t)n;
  tr->wcount[tr->nwords] = 1;
  tr->nwords++;
  return 0;
}

int bpe_trainer_feed(bpe_trainer *tr, const char *text, size_t len, const char *source,
                     foil_err *err) {
  if (!source) source = "(text)";
  if (strncmp(tr->source, source, sizeof tr->source - 1)) {
    snprintf(tr->source, sizeof tr->source, "%s", source);
    tr->line = 0;
  }
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(text + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - text) + 1 : len;
    tr->line++;
    size_t bad = tok_utf8_check(text + i, e - i);
    if (bad < e - i)
      return foil_err_set(err, FOIL_EINVAL, "%s:%ld: invalid UTF-8 at byte offset %zu of the line", source,
                          tr->line, bad);
    const uint8_t *u = (const uint8_t *)text + i;
    size_t n = e - i, p = 0;
    while (p < n) {
      size_t q = bpe_pretok_next(u, n, p);
      if (add_word(tr, (const char *)u + p, q - p) < 0)
        return foil_err_set(err, FOIL_ENOMEM, "out of memory counting words");
      p = q;
    }
    i = e;
  }
  return FOIL_OK;
}

/* ---- training ------------------------------------------------------------ */

typedef struct {
  int32_t a, b;
  int64_t count;
  uint32_t *occ; /* words that may contain the pair (duplicates possible) */
  uint32_t nocc, capocc;
  uint32_t pushed; /* merge step that last pushed a heap entry for it */
} pair_t;

typedef struct {
  int64_t count;
  int32_t a, b;
} heap_e;

typedef struct {
  tok_u64map index; /* (a << 32 | b) -> pair index */
  pair_t *p;
  size_t n, cap;
  heap_e *h;
  size_t hn, hcap;
} pairs_t;

static inline uint64_t pkey(int32_t a, int32_t b) {
  return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* heap order: larger count first; equal counts: smaller (a, b) first */
static inline int above(const heap_e *x, const heap_e *y) {
  if (x->count != y->count) return x->count > y->count;
  if (x->a != y->a) return x->a < y->a;
  return x->b < y->b;
}

static int heap_push(pairs_t *ps, heap_e e) {
  if (ps->hn == ps->hcap) {
    size_t cap = ps->hcap ? ps->hcap * 2 : 4096;
    heap_e *h = realloc(ps->h, cap * sizeof *h);
    if (!h) return -1;
    ps->h = h;
    ps->hcap = cap;
  }
  size_t i = ps->hn++;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (!above(&e, &ps->h[up])) break;
    ps->h[i] = ps->h[up];
    i = up;
  }
  ps->h[i] = e;
  return 0;
}

static heap_e heap_pop(pairs_t *ps) {
  heap_e top = ps->h[0];
  heap_e last = ps->h[--ps->hn];
  size_t i = 0, n = ps->hn;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, best = i;
    const heap_e *bv = &last;
    if (l < n && above(&ps->h[l], bv)) best = l, bv = &ps->h[l];
    if (r < n && above(&ps->h[r], bv)) best = r;
    if (best == i) break;
    ps->h[i] = ps->h[best];
    i = best;
  }
  if (n) ps->h[i] = last;
  return top;
}

/* The pair's index (created with count 0 when new), or -1 (no memory). */
static long pair_get(pairs_t *ps, int32_t a, int32_t b) {
  uint64_t v;
  if (tok_u64map_get(&ps->index, pkey(a, b), &v)) return (long)v;
  if (ps->n == ps->cap) {
    size_t cap = ps->cap ? ps->cap * 2 : 4096;
    pair_t *p = realloc(ps->p, cap * sizeof *p);
    if (!p) return -1;
    ps->p = p;
    ps->cap = cap;
  }
  if (tok_u64map_put(&ps->index, pkey(a, b), ps->n) < 0) return -1;
  ps->p[ps->n] = (pair_t){a, b, 0, NULL, 0, 0, 0};
  return (long)ps->n++;
}

static int pair_add(pairs_t *ps, int32_t a, int32_t b, int64_t delta, uint32_t word) {
  long k = pair_get(ps, a, b);
  if (k < 0) return -1;
  pair_t *p = &ps->p[k];
  p->count += delta;
  if (delta > 0 && (p->nocc == 0 || p->occ[p->nocc - 1] != word)) {
    if (p->nocc == p->capocc) {
      uint32_t cap = p->capocc ? p->capocc * 2 : 4;
      uint32_t *o = realloc(p->occ, cap * sizeof *o);
      if (!o) return -1;
      p->occ = o;
      p->capocc = cap;
    }
    p->occ[p->nocc++] = word;
  }
  return 0;
}

static void pairs_free(pairs_t *ps) {
  for (size_t i = 0; i < ps->n; i++) free(ps->p[i].occ);
  free(ps->p);
  free(ps->h);
  tok_u64map_free(&ps->index);
}

int bpe_trainer_train(bpe_trainer *tr, int vocab_size, int min_frequency,
                      const char *const *specials, int n_specials, tokenizer **out,
                      foil_err *err) {
  *out = NULL;
  if (n_specials < 0 || vocab_size < n_specials + 256)
    return foil_err_set(err, FOIL_EINVAL,
                        "vocabulary size %d leaves no room for %d special tokens and the 256 byte tokens",
                        vocab_size, n_specials);
  int rc = FOIL_OK;
  /* vocabulary: strings (malloc'ed), and a map for duplicate checks */
  char **vocab = calloc((size_t)vocab_size, sizeof *vocab);
  char **merges = calloc((size_t)vocab_size + 1, sizeof *merges);
  int nv = 0, nm = 0;
  tok_strmap vmap = {0};
  pairs_t ps = {0};
  int32_t **sym = NULL;
  uint32_t *slen = NULL, *stamp = NULL;
  int32_t byte_id[256];
  if (!vocab || !merges || tok_strmap_init(&vmap, (size_t)vocab_size) < 0 ||
      tok_u64map_init(&ps.index, 1 << 16) < 0)
    goto nomem;
  for (int s = 0; s < n_specials; s++) {
    size_t l = strlen(specials[s]);
    if (tok_strmap_get(&vmap, specials[s], l) >= 0) continue;
    if (!(vocab[nv] = strdup(specials[s])) || tok_strmap_put(&vmap, vocab[nv], l, nv, NULL) < 0)
      goto nomem;
    nv++;
  }
  /* the 256 byte characters, in code point order */
  for (int32_t cp = 0; cp < 324; cp++) {
    int b = bpe_cp_to_byte(cp);
    if (b < 0) continue;
    char buf[5];
    int l = tok_utf8_put(cp, buf);
    buf[l] = 0;
    int32_t have = tok_strmap_get(&vmap, buf, (size_t)l);
    if (have >= 0) {
      byte_id[b] = have;
      continue;
    }
    if (!(vocab[nv] = strdup(buf)) || tok_strmap_put(&vmap, vocab[nv], (size_t)l, nv, NULL) < 0)
      goto nomem;
    byte_id[b] = nv++;
  }
  /* words as symbol sequences, and the initial pair counts */
  size_t nw = tr->nwords;
  sym = calloc(nw ? nw : 1, sizeof *sym);
  slen = calloc(nw ? nw : 1, sizeof *slen);
  stamp = calloc(nw ? nw : 1, sizeof *stamp);
  if (!sym || !slen || !stamp) goto nomem;
  for (size_t w = 0; w < nw; w++) {
    uint32_t l = tr->wlen[w];
    if (!(sym[w] = malloc((l ? l : 1) * sizeof **sym))) goto nomem;
    for (uint32_t i = 0; i < l; i++) sym[w][i] = byte_id[(uint8_t)tr->wptr[w][i]];
    slen[w] = l;
    for (uint32_t i = 0; i + 1 < l; i++)
      if (pair_add(&ps, sym[w][i], sym[w][i + 1], (int64_t)tr->wcount[w], (uint32_t)w) < 0)
        goto nomem;
  }
  for (size_t k = 0; k < ps.n; k++)
    if (ps.p[k].count > 0 && heap_push(&ps, (heap_e){ps.p[k].count, ps.p[k].a, ps.p[k].b}) < 0)
      goto nomem;

  uint32_t iter = 0;
  int32_t *touched = NULL;
  size_t ntouched = 0, captouched = 0;
  while (ps.hn > 0 && nv < vocab_size) {
    heap_e top = heap_pop(&ps);
    long k = pair_get(&ps, top.a, top.b);
    if (k < 0) goto nomem_t;
    if (top.count != ps.p[k].count) {
      if (ps.p[k].count > 0) {
        top.count = ps.p[k].count;
        if (heap_push(&ps, top) < 0) goto nomem_t;
      }
      continue;
    }
    if (top.count < 1 || top.count < min_frequency) break;
    if (nm >= vocab_size) break; /* only repeated merges of existing tokens are left */
    /* the new token */
    size_t la = strlen(vocab[top.a]), lb = strlen(vocab[top.b]);
    char *tok = malloc(la + lb + 1);
    char *mline = malloc(la + lb + 2);
    if (!tok || !mline) {
      free(tok);
      free(mline);
      goto nomem_t;
    }
    memcpy(tok, vocab[top.a], la);
    memcpy(tok + la, vocab[top.b], lb + 1);
    snprintf(mline, la + lb + 2, "%s %s", vocab[top.a], vocab[top.b]);
    merges[nm++] = mline;
    int32_t m = tok_strmap_get(&vmap, tok, la + lb);
    if (m >= 0) {
      free(tok);
    } else {
      vocab[nv] = tok;
      if (tok_strmap_put(&vmap, tok, la + lb, nv, NULL) < 0) goto nomem_t;
      m = nv++;
    }
    /* merge it in every word that may hold it */
    iter++;
    int32_t a = top.a, b = top.b;
    uint32_t nocc = ps.p[k].nocc;
    uint32_t *occ = ps.p[k].occ;
    ps.p[k].occ = NULL;
    ps.p[k].nocc = ps.p[k].capocc = 0;
    ntouched = 0;
    for (uint32_t o = 0; o < nocc; o++) {
      uint32_t w = occ[o];
      if (stamp[w] == iter) continue;
      stamp[w] = iter;
      int64_t c = (int64_t)tr->wcount[w];
      int32_t *s = sym[w];
      uint32_t L = slen[w];
      for (uint32_t i = 0; i < L; i++) {
        if (!(s[i] == a && i + 1 < L && s[i + 1] == b)) continue;
        if (i > 0) {
          if (pair_add(&ps, s[i - 1], a, -c, w) < 0 || pair_add(&ps, s[i - 1], m, c, w) < 0) {
            free(occ);
            goto nomem_t;
          }
        }
        s[i] = m;
        memmove(s + i + 1, s + i + 2, (L - i - 2) * sizeof *s);
        L--;
        if (i + 1 < L) {
          if (pair_add(&ps, b, s[i + 1], -c, w) < 0 || pair_add(&ps, m, s[i + 1], c, w) < 0) {
            free(occ);
            goto nomem_t;
          }
        }
        /* pairs that grew get a fresh heap entry below */
        if (ntouched + 2 > captouched) {
          size_t cap = captouched ? captouched * 2 : 256;
          int32_t *t = realloc(touched, cap * 2 * sizeof *t);
          if (!t) {
            free(occ);
            goto nomem_t;
          }
          touched = t;
          captouched = cap;
        }
        if (i > 0) {
          touched[2 * ntouched] = s[i - 1];
          touched[2 * ntouched + 1] = m;
          ntouched++;
        }
        if (i + 1 < L) {
          touched[2 * ntouched] = m;
          touched[2 * ntouched + 1] = s[i + 1];
          ntouched++;
        }
      }
      slen[w] = L;
    }
    free(occ);
    ps.p[k].count = 0;
    for (size_t t = 0; t < ntouched; t++) {
      long q = pair_get(&ps, touched[2 * t], touched[2 * t + 1]);
      if (q < 0) goto nomem_t;
      /* one fresh entry per pair and merge step is enough */
      if (ps.p[q].count > 0 && ps.p[q].pushed != iter) {
        ps.p[q].pushed = iter;
        if (heap_push(&ps, (heap_e){ps.p[q].count, ps.p[q].a, ps.p[q].b}) < 0) goto nomem_t;
      }
    }
  }
  free(touched);
  goto build;
nomem_t:
  free(touched);
nomem:
  rc = foil_err_set(err, FOIL_ENOMEM, "out of memory training BPE");
build:
  if (!rc)
    rc = tokenizer_from_strings(out, TOKENIZER_BPE, (const char *const *)vocab, nv,
                                (const char *const *)merges, nm, err);
  for (int i = 0; i < vocab_size; i++) free(vocab[i]);
  for (int i = 0; i <= vocab_size; i++) free(merges ? merges[i] : NULL);
  free(vocab);
  free(merges);
  tok_strmap_free(&vmap);
  if (sym)
    for (size_t w = 0; w < tr->nwords; w++) free(sym[w]);
  free(sym);
  free(slen);
  free(stamp);
  pairs_free(&ps);
  return rc;
}
