/* test_jsonl.c — worker/run/jsonl.h: every object line reaches the
 * callback with its line number, blank lines are skipped, a final line
 * without a newline counts; a line that is not one JSON object (an array,
 * trailing text, a cut object, a NUL byte) stops the walk naming FILE:LINE
 * and the caller's hint; JSONL_STOP ends early without reading further
 * lines; a callback's error is returned as is; a missing file is
 * FOIL_ENOTFOUND. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"
#include "worker/run/jsonl.h"

static char path[600];

static void write_bytes(const char *text, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(text, 1, n, f);
  fclose(f);
}

typedef struct {
  int n, lines[8], sum, stop_after, fail_at;
} seen;

static int visit(void *ctx, const cJSON *o, const char *p, int line, foil_err *err) {
  seen *s = ctx;
  if (line == s->fail_at) return foil_err_set(err, FOIL_EINVAL, "%s:%d: no good", p, line);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "v");
  if (s->n < 8) s->lines[s->n] = line;
  s->n++;
  s->sum += cJSON_IsNumber(v) ? v->valueint : 0;
  return s->stop_after && s->n >= s->stop_after ? JSONL_STOP : FOIL_OK;
}

static void test_walk(void) {
  const char *text = "{\"v\": 1}\n\n  \t\r\n{\"v\": 2, \"w\": [1]}\r\n{\"v\": 4}";
  write_bytes(text, strlen(text));
  seen s = {0};
  foil_err err = {0};
  CHECKF(jsonl_each(path, "hint", visit, &s, &err) == FOIL_OK, "%s", err.msg);
  CHECK(s.n == 3 && s.sum == 7 && s.lines[0] == 1 && s.lines[1] == 4 && s.lines[2] == 5);

  write_bytes("", 0);
  seen e = {0};
  CHECK(jsonl_each(path, "hint", visit, &e, &err) == FOIL_OK && e.n == 0);

  /* stop after two: the broken third line is never parsed */
  const char *stop = "{\"v\": 1}\n{\"v\": 2}\n{broken\n";
  write_bytes(stop, strlen(stop));
  seen t = {.stop_after = 2};
  CHECKF(jsonl_each(path, "hint", visit, &t, &err) == FOIL_OK && t.n == 2, "%s", err.msg);

  /* the callback's error, as is */
  seen f = {.fail_at = 2};
  CHECK(jsonl_each(path, "hint", visit, &f, &err) == FOIL_EINVAL && strstr(err.msg, ":2: no good") && f.n == 1);
}

static void bad(const char *text, size_t n, const char *says) {
  write_bytes(text, n);
  seen s = {0};
  foil_err err = {0};
  int rc = jsonl_each(path, "one {\"v\"} per line", visit, &s, &err);
  CHECKF(rc == FOIL_EINVAL && strstr(err.msg, says), "%s: rc %d, %s", says, rc, err.msg);
}

static void test_bad(void) {
  bad("{\"v\": 1}\n[1, 2]\n", 16, ":2: not a JSON object (one {\"v\"} per line)");
  bad("{\"v\": 1} trailing\n", 18, ":1: not a JSON object");
  bad("{\"v\": 1}\n\n{\"v\": \n", 17, ":3: not a JSON object");
  bad("\"text\"\n", 7, ":1: not a JSON object");
  bad("{\"v\": 1}\n{\"v\": 2}\0{\"v\": 3}\n", 27, ":2: a NUL byte");
  seen s = {0};
  foil_err err = {0};
  char none[640];
  snprintf(none, sizeof none, "%s.none", path);
  CHECK(jsonl_each(none, "h", visit, &s, &err) == FOIL_ENOTFOUND && strstr(err.msg, ".none"));
}

int main(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(path, sizeof path, "%s/jsonl_test.jsonl", tmp ? tmp : "/tmp");
  RUN(test_walk);
  RUN(test_bad);
  remove(path);
  TEST_EXIT();
}
