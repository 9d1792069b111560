/* test_fileio.c — common/fileio.h's foil_split_lines: lines split in
 * place, a final line without a newline counts, nothing follows the last
 * newline, empty lines and '\r' are kept, an empty text has no lines. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "tests/test.h"

/* splits text and checks the lines against want[0..nwant) */
static void expect(const char *text, const char *const *want, size_t nwant) {
  char *buf = strdup(text);
  char **lines = NULL;
  size_t n = 99;
  foil_err err = {0};
  CHECK(foil_split_lines(buf, strlen(buf), &lines, &n, &err) == FOIL_OK);
  CHECKF(n == nwant, "'%s': %zu lines, want %zu", text, n, nwant);
  for (size_t i = 0; i < n && i < nwant; i++)
    CHECKF(!strcmp(lines[i], want[i]), "'%s' line %zu: '%s', want '%s'", text, i, lines[i], want[i]);
  free(lines);
  free(buf);
}

static void test_split_lines(void) {
  const char *const two[] = {"a b", "c"};
  expect("a b\nc\n", two, 2);
  expect("a b\nc", two, 2); /* no final newline */
  const char *const blanks[] = {"", "x\r", ""};
  expect("\nx\r\n\n", blanks, 3);
  expect("", NULL, 0);
  const char *const one[] = {""};
  expect("\n", one, 1);
}

int main(void) {
  RUN(test_split_lines);
  TEST_EXIT();
}
