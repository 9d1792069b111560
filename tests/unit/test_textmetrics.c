/* test_textmetrics.c — rep-n, diversity, length, coherence, perplexity
 * (model/textmetrics.h) on cases worked out by hand in the comments. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>

#include "model/textmetrics.h"
#include "tests/test.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-12; }

static void test_rep_hand(void) {
  /* doc 1: "the cat sat on the cat sat", k = 7 tokens.
   *   2-grams counted (SimCTG: starts 0..k-n-1 = 0..4, the final "cat sat"
   *   at start 5 is NOT counted): the cat | cat sat | sat on | on the |
   *   the cat -> 5 total, 4 unique
   *   3-grams starts 0..3: the cat sat | cat sat on | sat on the | on the
   *   cat -> 4 total, 4 unique
   *   4-grams starts 0..2 -> 3 total, 3 unique
   * doc 2: "  a a a a\n", k = 4: 2-grams starts 0..1: "a a" twice -> 2
   *   total, 1 unique; 3-grams start 0 -> 1, 1; 4-grams none (k <= n)
   * doc 3: "x y", k = 2: no n-gram at all.
   * Sums: n=2 unique 5 / total 7 -> rep-2 = 1 - 5/7 = 2/7
   *       n=3 5 / 5 -> 0;  n=4 3 / 3 -> 0
   * diversity = (1 - 2/7)(1)(1) = 5/7; tokens 7 + 4 + 2 = 13 over 3 docs. */
  tm_counts c = {0};
  foil_err err = {0};
  CHECK(tm_count(&c, "the cat sat on the cat sat", &err) == 0);
  CHECK(tm_count(&c, "  a a a a\n", &err) == 0);
  CHECK(tm_count(&c, "x y", &err) == 0);
  CHECK(c.unique[0] == 5 && c.total[0] == 7);
  CHECK(c.unique[1] == 5 && c.total[1] == 5);
  CHECK(c.unique[2] == 3 && c.total[2] == 3);
  CHECK(c.tokens == 13 && c.docs == 3);
  CHECKF(near(tm_rep(&c, 2), 2.0 / 7), "%.17g", tm_rep(&c, 2));
  CHECK(near(tm_rep(&c, 3), 0) && near(tm_rep(&c, 4), 0));
  CHECKF(near(tm_diversity(&c), 5.0 / 7), "%.17g", tm_diversity(&c));
  CHECK(isnan(tm_rep(&c, 1)) && isnan(tm_rep(&c, 5)));
}

static void test_rep_per_document(void) {
  /* The same 4 tokens in two documents: no n-gram repeats INSIDE either,
   * so rep-n is 0 (n-grams are counted per document, then summed):
   * n=2: 2 + 2 unique of 2 + 2; n=3: 1 + 1 of 1 + 1; n=4: none. */
  tm_counts c = {0};
  CHECK(tm_count(&c, "a b c d", NULL) == 0);
  CHECK(tm_count(&c, "a b c d", NULL) == 0);
  CHECK(c.unique[0] == 4 && c.total[0] == 4 && c.unique[1] == 2 && c.total[1] == 2);
  CHECK(c.total[2] == 0);
  CHECK(near(tm_rep(&c, 2), 0) && near(tm_rep(&c, 4), 0) && near(tm_diversity(&c), 1));

  /* "a a a a a a" (k 6): 2-grams 4 total, 1 unique -> 3/4; 3-grams 3, 1 ->
   * 2/3; 4-grams 2, 1 -> 1/2; diversity (1/4)(1/3)(1/2) = 1/24. */
  tm_counts r = {0};
  CHECK(tm_count(&r, "a a a a a a", NULL) == 0);
  CHECK(near(tm_rep(&r, 2), 0.75) && near(tm_rep(&r, 3), 2.0 / 3) && near(tm_rep(&r, 4), 0.5));
  CHECK(near(tm_diversity(&r), 1.0 / 24));

  /* n-grams compare whole tokens: "ab c" vs "a bc" are different 2-grams
   * (a naive concatenation would call them equal). "ab c a bc x": 2-grams
   * starts 0..2: ab c | c a | a bc -> 3 unique of 3. */
  tm_counts t = {0};
  CHECK(tm_count(&t, "ab c a bc x", NULL) == 0);
  CHECK(t.unique[0] == 3 && t.total[0] == 3);

  /* nothing to count: rep 0, diversity 1 (SimCTG would divide by zero) */
  tm_counts e = {0};
  CHECK(tm_count(&e, "", NULL) == 0);
  CHECK(near(tm_rep(&e, 2), 0) && near(tm_diversity(&e), 1) && e.docs == 1 && e.tokens == 0);
}

static void test_length(void) {
  /* Python's str.split(): ASCII whitespace runs, \x1c..\x1f, NBSP (c2 a0),
   * U+3000 (e3 80 80), U+2009 (e2 80 89) split; U+200B (e2 80 8b, zero
   * width space) and é (c3 a9) do not. */
  CHECK(tm_length("") == 0);
  CHECK(tm_length(" \t\n ") == 0);
  CHECK(tm_length("one") == 1);
  CHECK(tm_length("  one  two\r\nthree\v\f") == 3);
  CHECK(tm_length("a\x1f" "b") == 2);
  CHECK(tm_length("a\xc2\xa0" "b\xe3\x80\x80" "c\xe2\x80\x89" "d") == 4);
  CHECK(tm_length("a\xe2\x80\x8b" "b caf\xc3\xa9") == 2);
}

static void test_coherence_perplexity(void) {
  /* rows: cos([1,0],[0,1]) = 0; cos([3,4],[6,8]) = 1; a zero row -> 0;
   * cos([1,1],[1,0]) = 1/sqrt(2). Mean over 4 = (0 + 1 + 0 + 0.70710678)/4. */
  float a[] = {1, 0, 3, 4, 0, 0, 1, 1};
  float b[] = {0, 1, 6, 8, 1, 2, 1, 0};
  CHECKF(near(tm_coherence(a, b, 4, 2), (1 + 1 / sqrt(2.0)) / 4), "%.17g",
         tm_coherence(a, b, 4, 2));
  CHECK(tm_coherence(a, b, 0, 2) == 0);
  /* three tokens of nll ln 2 each: ppl = exp(3 ln 2 / 3) = 2. Token-weighted
   * over documents: one of 1 token (nll ln 2) and one of 3 tokens (nll sum
   * ln 8): exp((ln 2 + ln 8) / 4) = exp(ln 2) = 2 (the mean of the two
   * documents' own perplexities, (2 + 2) / 2, happens to agree here). */
  CHECK(near(tm_perplexity(3 * log(2.0), 3), 2));
  CHECK(near(tm_perplexity(log(2.0) + log(8.0), 4), 2));
  CHECK(isnan(tm_perplexity(1, 0)));
}

int main(void) {
  RUN(test_rep_hand);
  RUN(test_rep_per_document);
  RUN(test_length);
  RUN(test_coherence_perplexity);
  TEST_EXIT();
}
