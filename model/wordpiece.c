/* wordpiece.c — see wordpiece.h. */
#include "model/wordpiece.h"

#include <stdlib.h>
#include <string.h>

#include "model/tok_map.h"
#include "model/tok_unicode.h"

enum { WP_MAX_CHARS = 100, WP_NSPECIAL = 5 };
enum { SP_PAD, SP_UNK, SP_CLS, SP_SEP, SP_MASK };
static const char *const special_names[WP_NSPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                        "[MASK]"};

/* ASCII character classes after clean-up and lower-casing. */
enum { C_DROP, C_SPACE, C_PUNCT, C_WORD };

struct wordpiece {
  const char *const *vocab;
  int n;
  tok_strmap map; /* token bytes (continuations with their "##") -> id */
  size_t max_token_bytes;
  int32_t special[WP_NSPECIAL]; /* -1 when absent */
  uint8_t ascii_class[128];
  char ascii_lower[128];
};

int wordpiece_new(wordpiece **out, const char *const *vocab, int n, foil_err *err) {
  *out = NULL;
  wordpiece *w = calloc(1, sizeof *w);
  if (!w || tok_strmap_init(&w->map, (size_t)n) < 0) {
    free(w);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for a WordPiece vocabulary of %d", n);
  }
  w->vocab = vocab;
  w->n = n;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(vocab[i]);
    int32_t old;
    int r = tok_strmap_put(&w->map, vocab[i], len, i, &old);
    if (r < 0) {
      wordpiece_free(w);
      return foil_err_set(err, FOIL_ENOMEM, "out of memory for a WordPiece vocabulary of %d", n);
    }
    if (r == 1) {
      wordpiece_free(w);
      return foil_err_set(err, FOIL_EINVAL, "token '%s' appears twice (ids %d and %d)", vocab[i],
                          (int)old, i);
    }
    if (len > w->max_token_bytes) w->max_token_bytes = len;
  }
  for (int s = 0; s < WP_NSPECIAL; s++)
    w->special[s] = tok_strmap_get(&w->map, special_names[s], strlen(special_names[s]));
  if (w->special[SP_UNK] < 0) {
    wordpiece_free(w);
    return foil_err_set(err, FOIL_EINVAL, "the WordPiece vocabulary has no [UNK] token");
  }
  for (int c = 0; c < 128; c++) {
    w->ascii_lower[c] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    w->ascii_class[c] = tok_is_bert_drop(c)    ? C_DROP
                        : tok_is_space(c)      ? C_SPACE
                        : tok_is_bert_punct(c) ? C_PUNCT
                                               : C_WORD;
  }
  *out = w;
  return FOIL_OK;
}

void wordpiece_free(wordpiece *w) {
  if (!w) return;
  tok_strmap_free(&w->map);
  free(w);
}

int32_t wordpiece_pad_id(const wordpiece *w) {
  return w->special[SP_PAD] >= 0 ? w->special[SP_PAD] : 0;
}

/* Output: ids go to out[0..cap) while counting all of them. */
typedef struct {
  int32_t *ids;
  int cap;
  int n;
} wp_out;

static inline void emit(wp_out *o, int32_t id) {
  if (o->n < o->cap) o->ids[o->n] = id;
  o->n++;
}

/* The word is buf[2 .. 2+len): two bytes of slack in front let a
 * continuation lookup write "##" over already consumed bytes. */
static void emit_word(const wordpiece *w, char *buf, size_t len, int nchars, wp_out *o) {
  if (len == 0) return;
  if (nchars > WP_MAX_CHARS) {
    emit(o, w->special[SP_UNK]);
    return;
  }
  char *word = buf + 2;
  int mark = o->n;
  size_t start = 0;
  while (start < len) {
    size_t end = len - start > w->max_token_bytes ? start + w->max_token_bytes : len;
    int32_t id = -1;
    char *key = start ? word + start - 2 : word;
    if (start) {
      key[0] = '#';
      key[1] = '#';
    }
    while (end > start) {
      while (end < len && ((uint8_t)word[end] & 0xC0) == 0x80) end--; /* char boundary */
      if (end <= start) break;
      id = tok_strmap_get(&w->map, key, end - start + (start ? 2 : 0));
      if (id >= 0) break;
      end--;
    }
    if (id < 0) {
      o->n = mark;
      emit(o, w->special[SP_UNK]);
      return;
    }
    emit(o, id);
    start = end;
  }
}

/* Matches a special token at text[i] (text[i] == '['); its index or -1. */
static int match_special(const wordpiece *w, const char *text, size_t len, size_t i,
                         size_t *mlen) {
  for (int s = 0; s < WP_NSPECIAL; s++) {
    if (w->special[s] < 0) continue;
    size_t k = strlen(special_names[s]);
    if (k <= len - i && !memcmp(text + i, special_names[s], k)) {
      *mlen = k;
      return s;
    }
  }
  return -1;
}

int wordpiece_encode(const wordpiece *w, const char *text, size_t len, int add_special,
                     int32_t *ids, int max, int *n, foil_err *err) {
  (void)err;
  if (max < 0) max = 0;
  int special = add_special && w->special[SP_CLS] >= 0 && w->special[SP_SEP] >= 0;
  wp_out o = {ids, max, 0};
  if (special) {
    /* Room for [SEP] at the end: body tokens go to [1, max-1). */
    emit(&o, w->special[SP_CLS]);
    o.cap = max >= 2 ? max - 1 : max;
  }
  /* Word buffer: 2 bytes slack + the word. A word longer than
   * WP_MAX_CHARS characters is [UNK] whatever it holds, so past that only
   * its character count matters. */
  char buf[2 + 4 * 3 * (WP_MAX_CHARS + 1) + 16];
  const size_t wcap = sizeof buf - 2 - 4 * 3;
  size_t wlen = 0;
  int nchars = 0;
  const uint8_t *u = (const uint8_t *)text;
  size_t i = 0;
  while (i < len) {
    uint8_t c = u[i];
    if (c < 0x80) {
      if (c == '[') {
        size_t mlen;
        int s = match_special(w, text, len, i, &mlen);
        if (s >= 0) {
          emit_word(w, buf, wlen, nchars, &o);
          wlen = 0;
          nchars = 0;
          emit(&o, w->special[s]);
          i += mlen;
          continue;
        }
      }
      switch (w->ascii_class[c]) {
        case C_DROP: break;
        case C_SPACE:
          emit_word(w, buf, wlen, nchars, &o);
          wlen = 0;
          nchars = 0;
          break;
        case C_PUNCT:
          emit_word(w, buf, wlen, nchars, &o);
          wlen = 0;
          nchars = 0;
          buf[2] = (char)c;
          emit_word(w, buf, 1, 1, &o);
          break;
        default:
          if (wlen < wcap) buf[2 + wlen++] = w->ascii_lower[c];
          nchars++;
      }
      i++;
      continue;
    }
    int32_t cp = 0;
    int k = tok_utf8_next(u, len, i, &cp);
    if (!k) k = 1, cp = 0xFFFD; /* callers validate; never reached */
    i += (size_t)k;
    if (tok_is_bert_drop(cp)) continue;
    if (tok_is_space(cp)) {
      emit_word(w, buf, wlen, nchars, &o);
      wlen = 0;
      nchars = 0;
      continue;
    }
    int cjk = tok_is_cjk(cp);
    if (cjk) {
      emit_word(w, buf, wlen, nchars, &o);
      wlen = 0;
      nchars = 0;
    }
    int32_t parts[32];
    int np = tok_strip_lower(cp, parts, 32);
    for (int p = 0; p < np; p++) {
      int32_t q = parts[p];
      if (tok_is_space(q)) {
        emit_word(w, buf, wlen, nchars, &o);
        wlen = 0;
        nchars = 0;
      } else if (tok_is_bert_punct(q)) {
        emit_word(w, buf, wlen, nchars, &o);
        wlen = 0;
        nchars = 0;
        int b = tok_utf8_put(q, buf + 2);
        emit_word(w, buf, (size_t)b, 1, &o);
      } else {
        if (wlen < wcap) wlen += (size_t)tok_utf8_put(q, buf + 2 + wlen);
        nchars++;
      }
    }
    if (cjk) {
      emit_word(w, buf, wlen, nchars, &o);
      wlen = 0;
      nchars = 0;
    }
  }
  emit_word(w, buf, wlen, nchars, &o);
  if (special) {
    int body = o.n - 1;
    if (max >= 2) {
      int at = o.n < max - 1 ? o.n : max - 1;
      ids[at] = w->special[SP_SEP];
    }
    o.n = body + 2;
  }
  *n = o.n;
  return FOIL_OK;
}

int wordpiece_decode(const wordpiece *w, const int32_t *ids, int n, char **text, foil_err *err) {
  size_t cap = 1;
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= w->n)
      return foil_err_set(err, FOIL_EINVAL, "token id %d at position %d is outside the vocabulary [0,%d)",
                          (int)ids[i], i, w->n);
    cap += strlen(w->vocab[ids[i]]) + 1;
  }
  char *s = malloc(cap);
  if (!s) return foil_err_set(err, FOIL_ENOMEM, "out of memory decoding %d ids", n);
  size_t at = 0;
  int first = 1;
  for (int i = 0; i < n; i++) {
    int32_t id = ids[i];
    int is_special = 0;
    for (int k = 0; k < WP_NSPECIAL; k++) is_special |= w->special[k] == id;
    if (is_special) continue;
    const char *tok = w->vocab[id];
    size_t tl = strlen(tok);
    /* As Hugging Face's WordPiece decoder with cleanup: "##" joins, a
     * lone . , ! ? sticks to the previous token, others are space-separated. */
    if (!first) {
      if (tl >= 2 && tok[0] == '#' && tok[1] == '#') {
        tok += 2;
        tl -= 2;
      } else if (!(tl == 1 && (tok[0] == '.' || tok[0] == ',' || tok[0] == '!' || tok[0] == '?'))) {
        s[at++] = ' ';
      }
    }
    memcpy(s + at, tok, tl);
    at += tl;
    first = 0;
  }
  s[at] = 0;
  *text = s;
  return FOIL_OK;
}
