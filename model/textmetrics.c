/* textmetrics.c — rep-n, diversity, length, coherence, perplexity
 * (model/textmetrics.h). */
#include "model/textmetrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Length in bytes of the whitespace character at s (Python's str.isspace
 * set, in UTF-8), or 0. */
static int ws_len(const unsigned char *s) {
  unsigned char c = s[0];
  if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) return 1;
  if (c == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
  if (c == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3; /* U+1680 */
  if (c == 0xe2 && s[1] == 0x80 &&
      ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
    return 3; /* U+2000-200A, U+2028, U+2029, U+202F */
  if (c == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3; /* U+205F */
  if (c == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
  return 0;
}

typedef struct {
  const char *p;
  size_t n;
} span;

/* Splits text into spans; returns the count, filling at most cap (NULL: count
 * only). */
static size_t split(const char *text, span *out, size_t cap) {
  const unsigned char *s = (const unsigned char *)text;
  size_t k = 0;
  while (*s) {
    int w;
    while (*s && (w = ws_len(s)) > 0) s += w;
    if (!*s) break;
    const unsigned char *start = s;
    while (*s && ws_len(s) == 0) s++;
    if (out && k < cap) out[k] = (span){(const char *)start, (size_t)(s - start)};
    k++;
  }
  return k;
}

size_t tm_length(const char *text) { return split(text, NULL, 0); }

static int span_cmp(const span *a, const span *b) {
  size_t m = a->n < b->n ? a->n : b->n;
  int c = memcmp(a->p, b->p, m);
  if (c) return c;
  return (a->n > b->n) - (a->n < b->n);
}

/* An n-gram window: n tokens from first (carried in each element so that
 * qsort needs no global state). */
typedef struct {
  const span *first;
  int n;
} window;

static int win_cmp(const void *x, const void *y) {
  const window *a = x, *b = y;
  for (int t = 0; t < a->n; t++) {
    int c = span_cmp(&a->first[t], &b->first[t]);
    if (c) return c;
  }
  return 0;
}

int tm_count(tm_counts *c, const char *text, foil_err *err) {
  size_t k = split(text, NULL, 0);
  c->docs++;
  c->tokens += (int64_t)k;
  if (k < 3) return 0; /* k <= n for every n >= 2: no n-gram (SimCTG's count) */
  span *toks = malloc(k * sizeof *toks);
  window *win = malloc(k * sizeof *win);
  if (!toks || !win) {
    free(toks);
    free(win);
    return foil_err_set(err, FOIL_ENOMEM, "textmetrics: out of memory for %zu tokens", k);
  }
  split(text, toks, k);
  for (int i = 0; i < TM_NREP; i++) {
    int n = 2 + i;
    if (k <= (size_t)n) continue;
    size_t m = k - (size_t)n; /* windows starting at 0 .. k-n-1 (the quirk) */
    for (size_t j = 0; j < m; j++) win[j] = (window){toks + j, n};
    qsort(win, m, sizeof *win, win_cmp);
    size_t uniq = 1;
    for (size_t j = 1; j < m; j++)
      if (win_cmp(&win[j - 1], &win[j]) != 0) uniq++;
    c->unique[i] += (int64_t)uniq;
    c->total[i] += (int64_t)m;
  }
  free(toks);
  free(win);
  return 0;
}

double tm_rep(const tm_counts *c, int n) {
  if (n < 2 || n > 1 + TM_NREP) return NAN;
  int i = n - 2;
  if (c->total[i] == 0) return 0;
  return 1.0 - (double)c->unique[i] / (double)c->total[i];
}

double tm_diversity(const tm_counts *c) {
  double d = 1;
  for (int n = 2; n <= 1 + TM_NREP; n++) d *= 1 - tm_rep(c, n);
  return d;
}

double tm_coherence(const float *a, const float *b, size_t n, int dim) {
  if (n == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    const float *x = a + i * (size_t)dim, *y = b + i * (size_t)dim;
    double xy = 0, xx = 0, yy = 0;
    for (int j = 0; j < dim; j++) {
      xy += (double)x[j] * y[j];
      xx += (double)x[j] * x[j];
      yy += (double)y[j] * y[j];
    }
    if (xx > 0 && yy > 0) sum += xy / (sqrt(xx) * sqrt(yy));
  }
  return sum / (double)n;
}

double tm_perplexity(double nll_sum, int64_t tokens) {
  if (tokens <= 0) return NAN;
  return exp(nll_sum / (double)tokens);
}
