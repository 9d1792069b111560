/* bpe.c — see bpe.h. */
#include "model/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "model/tok_map.h"
#include "model/tok_unicode.h"

struct bpe {
  const char *const *vocab;
  int n;
  tok_u64map merges;    /* (a << 32 | b) -> (rank << 32 | merged id) */
  int32_t byte_id[256]; /* id of each byte's single-character token, -1 if none */
  char **bytes;         /* raw bytes of each token (decode) */
  uint32_t *nbytes;
  int32_t pad;          /* id of "<|endoftext|>", -1 if none */
  size_t nbytes_sp;     /* its length in the text (13) */
};

/* Pure functions (no shared tables, so no initialization race): the
 * printable bytes stand for themselves, the other 68 take U+0100.. in byte
 * order. Called at load time only. */
static int printable_byte(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

int32_t bpe_byte_to_cp(uint8_t b) {
  if (printable_byte(b)) return b;
  int32_t k = 0;
  for (int c = 0; c < b; c++) k += !printable_byte(c);
  return 256 + k;
}

int bpe_cp_to_byte(int32_t cp) {
  if (cp < 0 || cp > 323) return -1;
  if (cp < 256) return printable_byte(cp) ? cp : -1;
  int32_t k = 256;
  for (int b = 0; b < 256; b++)
    if (!printable_byte(b) && k++ == cp) return b;
  return -1;
}

/* ---- pre-tokenization ---------------------------------------------------- */

enum { K_SPACE = 1, K_LETTER = 2, K_NUMBER = 4, K_OTHER = 8 };

static int kind_at(const uint8_t *s, size_t len, size_t i, int *k) {
  int32_t cp = 0;
  uint8_t c = s[i];
  int n = 1;
  if (c < 0x80) {
    cp = c;
  } else {
    n = tok_utf8_next(s, len, i, &cp);
    if (!n) n = 1;
  }
  *k = tok_is_space(cp) ? K_SPACE : tok_is_letter(cp) ? K_LETTER : tok_is_number(cp) ? K_NUMBER : K_OTHER;
  return n;
}

/* End of the run of characters of kind mask starting at i (i itself may
 * be anything; returns i when s[i] is not of that kind). */
static size_t run_of(const uint8_t *s, size_t len, size_t i, int mask) {
  while (i < len) {
    int k;
    int n = kind_at(s, len, i, &k);
    if (!(k & mask)) break;
    i += (size_t)n;
  }
  return i;
}

size_t bpe_pretok_next(const uint8_t *s, size_t len, size_t i) {
  /* 's 't 're 've 'm 'll 'd */
  if (s[i] == '\'' && i + 1 < len) {
    uint8_t a = s[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 < len) {
      uint8_t b = s[i + 2];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
  }
  /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space, then a
   * run of one kind */
  size_t j = (s[i] == ' ' && i + 1 < len) ? i + 1 : i;
  int k;
  kind_at(s, len, j, &k);
  if (k != K_SPACE) return run_of(s, len, j, k);
  /* '\s+(?!\S)' then '\s+' */
  size_t e = run_of(s, len, i, K_SPACE);
  if (e == len) return e;
  /* followed by a non-space: leave the last white space character for the
   * next piece when the run has two or more characters */
  size_t last = i, p = i;
  int nch = 0;
  while (p < e) {
    last = p;
    int kk;
    p += (size_t)kind_at(s, len, p, &kk);
    nch++;
  }
  return nch >= 2 ? last : e;
}

/* ---- the model ----------------------------------------------------------- */

int bpe_new(bpe **out, const char *const *vocab, int n, const int32_t (*merges)[2], int n_merges,
            foil_err *err) {
  *out = NULL;
  bpe *b = calloc(1, sizeof *b);
  tok_strmap map = {0};
  if (!b) return foil_err_set(err, FOIL_ENOMEM, "out of memory for a BPE model");
  b->vocab = vocab;
  b->n = n;
  int rc = FOIL_OK;
  b->bytes = calloc((size_t)n + 1, sizeof *b->bytes);
  b->nbytes = calloc((size_t)n + 1, sizeof *b->nbytes);
  if (!b->bytes || !b->nbytes || tok_u64map_init(&b->merges, (size_t)n_merges) < 0 ||
      tok_strmap_init(&map, (size_t)n) < 0) {
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for a BPE model of %d tokens", n);
    goto done;
  }
  for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
  b->pad = -1;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(vocab[i]);
    int32_t old;
    int r = tok_strmap_put(&map, vocab[i], len, i, &old);
    if (r < 0) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for a BPE model of %d tokens", n);
      goto done;
    }
    if (r == 1) {
      rc = foil_err_set(err, FOIL_EINVAL, "token '%s' appears twice (ids %d and %d)", vocab[i],
                        (int)old, i);
      goto done;
    }
    if (!strcmp(vocab[i], "<|endoftext|>")) {
      b->pad = i;
      b->nbytes_sp = len;
    }
    /* raw bytes: each character of the token through the byte alphabet */
    b->bytes[i] = malloc(len + 1);
    if (!b->bytes[i]) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for a BPE model of %d tokens", n);
      goto done;
    }
    const uint8_t *u = (const uint8_t *)vocab[i];
    size_t at = 0, p = 0;
    int nch = 0, single = -1;
    while (p < len) {
      int32_t cp;
      int k = tok_utf8_next(u, len, p, &cp);
      if (!k) {
        rc = foil_err_set(err, FOIL_EINVAL, "token id %d is not valid UTF-8", i);
        goto done;
      }
      int by = bpe_cp_to_byte(cp);
      if (by >= 0) {
        b->bytes[i][at++] = (char)by;
      } else { /* not a byte-level character: keep it as it is */
        memcpy(b->bytes[i] + at, vocab[i] + p, (size_t)k);
        at += (size_t)k;
      }
      single = by;
      p += (size_t)k;
      nch++;
    }
    b->nbytes[i] = (uint32_t)at;
    if (nch == 1 && single >= 0 && b->byte_id[single] < 0) b->byte_id[single] = i;
  }
  for (int r = 0; r < n_merges; r++) {
    int32_t a = merges[r][0], c = merges[r][1];
    if (a < 0 || a >= n || c < 0 || c >= n) {
      rc = foil_err_set(err, FOIL_EINVAL, "merge %d refers to an id outside the vocabulary", r + 1);
      goto done;
    }
    size_t la = strlen(vocab[a]), lc = strlen(vocab[c]);
    char small[256];
    char *cat = la + lc < sizeof small ? small : malloc(la + lc + 1);
    if (!cat) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for merges");
      goto done;
    }
    memcpy(cat, vocab[a], la);
    memcpy(cat + la, vocab[c], lc);
    int32_t m = tok_strmap_get(&map, cat, la + lc);
    if (cat != small) free(cat);
    if (m < 0) {
      rc = foil_err_set(err, FOIL_EINVAL, "merge %d ('%s %s'): the merged token is not in the vocabulary",
                        r + 1, vocab[a], vocab[c]);
      goto done;
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)c;
    /* a repeated merge takes its last rank, as HF's merge map (later
     * entries overwrite) */
    if (tok_u64map_put(&b->merges, key, ((uint64_t)(uint32_t)r << 32) | (uint32_t)m) < 0) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for merges");
      goto done;
    }
  }
done:
  tok_strmap_free(&map);
  if (rc) {
    bpe_free(b);
    return rc;
  }
  *out = b;
  return FOIL_OK;
}

void bpe_free(bpe *b) {
  if (!b) return;
  tok_u64map_free(&b->merges);
  if (b->bytes)
    for (int i = 0; i < b->n; i++) free(b->bytes[i]);
  free(b->bytes);
  free(b->nbytes);
  free(b);
}

int32_t bpe_pad_id(const bpe *b) { return b->pad >= 0 ? b->pad : 0; }

enum { NO_RANK = 0x7fffffff };

static inline uint32_t rank_of(const bpe *b, int32_t a, int32_t c, int32_t *merged) {
  uint64_t v;
  if (!tok_u64map_get(&b->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)c, &v)) return NO_RANK;
  *merged = (int32_t)(uint32_t)v;
  return (uint32_t)(v >> 32);
}

/* A candidate merge: key = rank << 32 | position of its left symbol (the
 * heap pops the lowest rank first, leftmost among equal ranks), with the two
 * ids it joins and the id they make. */
typedef struct {
  uint64_t key;
  int32_t left, right, merged;
} bpe_cand;

static void heap_push(bpe_cand *h, int *nh, bpe_cand v) {
  int i = (*nh)++;
  while (i > 0 && h[(i - 1) / 2].key > v.key) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = v;
}

static bpe_cand heap_pop(bpe_cand *h, int *nh) {
  bpe_cand top = h[0], v = h[--*nh];
  int i = 0, n = *nh;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && h[c + 1].key < h[c].key) c++;
    if (h[c].key >= v.key) break;
    h[i] = h[c];
    i = c;
  }
  if (n) h[i] = v;
  return top;
}

/* Pushes the merge of the live symbol at p with its successor, if any. */
static void push_pair(const bpe *b, const int32_t *sym, const int32_t *next, int p, bpe_cand *h,
                      int *nh) {
  if (next[p] < 0) return;
  bpe_cand c = {0, sym[p], sym[next[p]], -1};
  uint32_t r = rank_of(b, c.left, c.right, &c.merged);
  if (r == NO_RANK) return;
  c.key = ((uint64_t)r << 32) | (uint32_t)p;
  heap_push(h, nh, c);
}

/* merge_piece for a short piece (m <= SHORT): rescans the pair ranks after
 * each merge, O(m^2) but with no heap to keep; the usual word is a few
 * bytes, where this is the faster. Same result as the heap. */
enum { SHORT = 32 };

static int merge_short(const bpe *b, int32_t *sym, int m) {
  uint32_t rank[SHORT];
  int32_t into[SHORT];
  for (int i = 0; i + 1 < m; i++) rank[i] = rank_of(b, sym[i], sym[i + 1], &into[i]);
  while (m > 1) {
    uint32_t best = NO_RANK;
    int at = -1;
    for (int i = 0; i + 1 < m; i++)
      if (rank[i] < best) {
        best = rank[i];
        at = i;
      }
    if (at < 0) break;
    sym[at] = into[at];
    int tail = m - at - 2; /* pairs after the merged one */
    memmove(sym + at + 1, sym + at + 2, (size_t)tail * sizeof *sym);
    memmove(rank + at + 1, rank + at + 2, (size_t)(tail > 0 ? tail : 0) * sizeof *rank);
    memmove(into + at + 1, into + at + 2, (size_t)(tail > 0 ? tail : 0) * sizeof *into);
    m--;
    if (at > 0) rank[at - 1] = rank_of(b, sym[at - 1], sym[at], &into[at - 1]);
    if (at + 1 < m) rank[at] = rank_of(b, sym[at], sym[at + 1], &into[at]);
  }
  return m;
}

/* Merges one piece's m symbols (sym[0..m)), lowest rank first and leftmost
 * among equal ranks, as Hugging Face's Word::merge_all: the symbols form a
 * linked list (next/prev, a merged-away symbol is -1), candidate pairs sit
 * in a heap, and a candidate whose pair has since changed is skipped when
 * popped (a merge only makes longer tokens, so the pair at p is unchanged
 * exactly when both ids are). Compacts the result into sym[0..k) and
 * returns k. Pieces of up to SHORT symbols go to merge_short instead. Scratch: next, prev of m entries, heap of 3m (m - 1 pairs at
 * first, at most 2 new per merge). Cost O(m log m). */
static int merge_piece(const bpe *b, int32_t *sym, int32_t *next, int32_t *prev, bpe_cand *heap,
                       int m) {
  if (m <= SHORT) return merge_short(b, sym, m);
  int nh = 0;
  for (int i = 0; i < m; i++) {
    next[i] = i + 1 < m ? i + 1 : -1;
    prev[i] = i - 1;
  }
  for (int i = 0; i + 1 < m; i++) push_pair(b, sym, next, i, heap, &nh);
  while (nh) {
    bpe_cand top = heap_pop(heap, &nh);
    int p = (int)(uint32_t)top.key;
    int q = next[p];
    if (sym[p] != top.left || q < 0 || sym[q] != top.right) continue; /* stale */
    sym[p] = top.merged;
    sym[q] = -1;
    next[p] = next[q];
    if (next[q] >= 0) prev[next[q]] = p;
    if (prev[p] >= 0) push_pair(b, sym, next, prev[p], heap, &nh);
    push_pair(b, sym, next, p, heap, &nh);
  }
  int k = 0;
  for (int p = m ? 0 : -1; p >= 0; p = next[p]) sym[k++] = sym[p];
  return k;
}

/* Encodes text[i, e) (no special tokens in it) piece by piece; appends to
 * ids/count. Scratch as merge_piece's, grown to the longest piece. */
typedef struct {
  int32_t *sym, *next, *prev;
  bpe_cand *heap;
  size_t cap;
  int owned; /* the arrays are malloc'ed (else the caller's stack) */
} bpe_scratch;

static int encode_span(const bpe *b, const uint8_t *u, size_t i, size_t end, bpe_scratch *sc,
                       int32_t *ids, int max, int *count, foil_err *err) {
  while (i < end) {
    size_t e = bpe_pretok_next(u, end, i);
    size_t m = e - i;
    if (m > sc->cap) {
      if (sc->owned) {
        free(sc->sym);
        free(sc->next);
        free(sc->prev);
        free(sc->heap);
      }
      sc->owned = 1;
      sc->cap = 0;
      sc->sym = malloc(m * sizeof *sc->sym);
      sc->next = malloc(m * sizeof *sc->next);
      sc->prev = malloc(m * sizeof *sc->prev);
      sc->heap = m <= SIZE_MAX / (3 * sizeof *sc->heap) ? malloc(3 * m * sizeof *sc->heap) : NULL;
      if (!sc->sym || !sc->next || !sc->prev || !sc->heap || m > INT32_MAX)
        return foil_err_set(err, FOIL_ENOMEM, "out of memory for a %zu-byte word", m);
      sc->cap = m;
    }
    int k = 0;
    for (size_t p = i; p < e; p++) {
      int32_t id = b->byte_id[u[p]];
      if (id >= 0) sc->sym[k++] = id; /* a byte with no token is dropped, as HF without unk */
    }
    k = merge_piece(b, sc->sym, sc->next, sc->prev, sc->heap, k);
    for (int q = 0; q < k; q++) {
      if (*count < max) ids[*count] = sc->sym[q];
      (*count)++;
    }
    i = e;
  }
  return FOIL_OK;
}

/* The next occurrence of the end-of-text token in u[i, len): its offset, or
 * len. Cost O(len - i). */
static size_t find_special(const bpe *b, const uint8_t *u, size_t i, size_t len) {
  if (b->pad < 0) return len;
  const char *sp = b->vocab[b->pad];
  size_t k = b->nbytes_sp;
  while (i + k <= len) {
    const uint8_t *c = memchr(u + i, (uint8_t)sp[0], len - k + 1 - i);
    if (!c) break;
    i = (size_t)(c - u);
    if (!memcmp(u + i, sp, k)) return i;
    i++;
  }
  return len;
}

int bpe_encode(const bpe *b, const char *text, size_t len, int32_t *ids, int max, int *n,
               foil_err *err) {
  const uint8_t *u = (const uint8_t *)text;
  enum { STACK = 256 };
  int32_t sym_s[STACK], next_s[STACK], prev_s[STACK];
  bpe_cand heap_s[3 * STACK];
  bpe_scratch sc = {sym_s, next_s, prev_s, heap_s, STACK, 0};
  int count = 0, rc = FOIL_OK;
  if (max < 0) max = 0;
  size_t i = 0;
  while (i < len && !rc) {
    /* The end-of-text token is split out of the raw text first, as HF's
     * added special tokens are; the text around it is encoded alone. */
    size_t s = find_special(b, u, i, len);
    rc = encode_span(b, u, i, s, &sc, ids, max, &count, err);
    if (s < len && !rc) {
      if (count < max) ids[count] = b->pad;
      count++;
      s += b->nbytes_sp;
    }
    i = s;
  }
  if (sc.owned) {
    free(sc.sym);
    free(sc.next);
    free(sc.prev);
    free(sc.heap);
  }
  if (rc) return rc;
  *n = count;
  return FOIL_OK;
}

int bpe_decode(const bpe *b, const int32_t *ids, int n, char **text, foil_err *err) {
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= b->n)
      return foil_err_set(err, FOIL_EINVAL, "token id %d at position %d is outside the vocabulary [0,%d)",
                          (int)ids[i], i, b->n);
    total += b->nbytes[ids[i]];
  }
  char *raw = malloc(total + 1);
  char *s = malloc(total * 3 + 1); /* every byte may become U+FFFD */
  if (!raw || !s) {
    free(raw);
    free(s);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory decoding %d ids", n);
  }
  size_t at = 0;
  for (int i = 0; i < n; i++) {
    memcpy(raw + at, b->bytes[ids[i]], b->nbytes[ids[i]]);
    at += b->nbytes[ids[i]];
  }
  /* One U+FFFD per maximal invalid subpart, as HF's ByteLevel decoder
   * (Rust's String::from_utf8_lossy). */
  size_t o = 0, p = 0;
  while (p < at) {
    size_t k = foil_utf8_seq(raw + p, at - p);
    if (k) {
      memcpy(s + o, raw + p, k);
      o += k;
      p += k;
    } else {
      o += (size_t)tok_utf8_put(0xFFFD, s + o);
      p += foil_utf8_bad(raw + p, at - p);
    }
  }
  s[o] = 0;
  free(raw);
  *text = s;
  return FOIL_OK;
}
