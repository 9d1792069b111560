/* test_textscore.c — the JSONL reader and the scoring entry point of
 * worker/run/textscore.h: rows read with their optional reference, every
 * malformed line refused with FILE:LINE and the key, nothing kept after an
 * error; the model-free metrics through textscore_run; a missing scorer
 * checkpoint refused by name (the scorer itself: test_textscore_lm.c).
 * Coherence with a real encoder checkpoint (MiniLM,
 * against sentence-transformers) is tests/reference/textmetrics_ref.py. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test.h"
#include "worker/run/textscore.h"

static char path[600];

static void write_file(const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static void test_read(void) {
  textscore_set s;
  foil_err err = {0};
  write_file("{\"prompt\": \"The cat\", \"generation\": \"the cat sat on the cat sat\", "
             "\"reference\": \"r\"}\n"
             "\n  \r\n"
             "{\"prompt\": \"A\", \"generation\": \"  a a a a\\n\", \"id\": 7}\n"
             "{\"generation\": \"x y\", \"prompt\": \"B\", \"reference\": null}");
  CHECKF(textscore_read_jsonl(path, &s, &err) == 0, "%s", err.msg);
  CHECK(s.n == 3 && s.n_ref == 1);
  CHECK(!strcmp(s.prompt[0], "The cat") && !strcmp(s.reference[0], "r"));
  CHECK(!strcmp(s.generation[1], "  a a a a\n") && s.reference[1] == NULL);
  CHECK(!strcmp(s.generation[2], "x y") && s.reference[2] == NULL);

  /* the hand case of test_textmetrics: rep-2 2/7, diversity 5/7, 13/3 tokens */
  textscore_opts o;
  textscore_opts_default(&o);
  textscore_result r;
  CHECKF(textscore_run(&s, &o, &r, &err) == 0, "%s", err.msg);
  CHECK(r.n == 3 && fabs(r.rep[0] - 2.0 / 7) < 1e-12 && r.rep[1] == 0 && r.rep[2] == 0);
  CHECK(fabs(r.diversity - 5.0 / 7) < 1e-12 && fabs(r.mean_length - 13.0 / 3) < 1e-12);
  CHECK(!r.has_coherence && !r.has_perplexity && !r.has_mauve);

  o.scorer_ckpt = "/nonexistent/scorer.h5"; /* refused, naming the file */
  CHECK(textscore_run(&s, &o, &r, &err) < 0);
  CHECKF(strstr(err.msg, "/nonexistent/scorer.h5") != NULL, "%s", err.msg);
  textscore_set_free(&s);
  CHECK(s.n == 0 && s.prompt == NULL);
}

static void bad(const char *text, const char *want) {
  textscore_set s;
  foil_err err = {0};
  write_file(text);
  int rc = textscore_read_jsonl(path, &s, &err);
  CHECKF(rc == FOIL_EINVAL, "rc %d for %s", rc, text);
  CHECKF(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg, want);
  CHECK(s.n == 0 && s.prompt == NULL);
}

static void test_bad_lines(void) {
  const char *ok = "{\"prompt\": \"a\", \"generation\": \"b\"}\n";
  char buf[512];
  snprintf(buf, sizeof buf, "%s%s{\"prompt\": \"a\"}\n", ok, ok);
  bad(buf, ":3: key \"generation\" is missing");
  snprintf(buf, sizeof buf, "%s{\"prompt\": 5, \"generation\": \"b\"}\n", ok);
  bad(buf, ":2: key \"prompt\" is not a string");
  snprintf(buf, sizeof buf, "%s{\"prompt\": \"a\", \"generation\": \"b\", \"reference\": [1]}\n", ok);
  bad(buf, ":2: key \"reference\" is not a string");
  bad("[1, 2]\n", ":1: not a JSON object");
  bad("{\"prompt\": \"a\", \"generation\": \"b\"} trailing\n", ":1: not a JSON object");
  bad("{\"prompt\": \"a\", \"generation\": \"b\"\n", ":1: not a JSON object");
  bad("\n\n", "no rows");
  foil_err err = {0};
  textscore_set s;
  CHECK(textscore_read_jsonl("/nonexistent/x.jsonl", &s, &err) == FOIL_ENOTFOUND);
}

static void test_mauve_wrapper(void) {
  /* two rows each, P = Q: MAUVE 1 with 2 buckets (max(2, round(0.2))) */
  float p[4] = {1, 0, 0, 1};
  textscore_result r;
  memset(&r, 0, sizeof r);
  mauve_config cfg;
  mauve_config_default(&cfg);
  foil_err err = {0};
  CHECKF(textscore_mauve(p, 2, p, 2, 2, &cfg, &r, &err) == 0, "%s", err.msg);
  CHECK(r.has_mauve && fabs(r.mauve - 1) < 1e-12 && r.mauve_buckets == 2);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(path, sizeof path, "%s/textscore-%ld.jsonl", t ? t : "/tmp", (long)getpid());
  RUN(test_read);
  RUN(test_bad_lines);
  RUN(test_mauve_wrapper);
  unlink(path);
  TEST_EXIT();
}
