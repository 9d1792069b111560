/* test_jobdir.c — worker/run/jobdir.h: jobdir_metrics_from, the metrics of
 * a job as they stood at the checkpoint a run starts from. Kept: whole
 * lines of steps < from, and of step from when from > 0 (numerically:
 * step 10 is after step 2); dropped: later steps, everything on a fresh
 * start, torn lines (no closing brace, no newline), lines that do not
 * start with "step". A file with nothing to drop is left alone (the same
 * inode, the same handle); one with something to drop is replaced and the
 * handle reopened on the new file for appending. A missing file is an
 * error that leaves the handle alone. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "tests/test.h"
#include "worker/run/jobdir.h"

static char dir[512];

/* dir/metrics holds text; *f gets an append handle on it */
static void setup(const char *text, FILE **f) {
  char p[600];
  snprintf(p, sizeof p, "%s/metrics", dir);
  FILE *w = fopen(p, "w");
  fputs(text, w);
  fclose(w);
  *f = fopen(p, "a");
}

static char *contents(void) {
  char p[600], *t = NULL;
  foil_err e = {0};
  snprintf(p, sizeof p, "%s/metrics", dir);
  if (foil_read_file(p, &t, NULL, &e)) return strdup("(unreadable)");
  return t;
}

static ino_t inode(void) {
  char p[600];
  struct stat st;
  snprintf(p, sizeof p, "%s/metrics", dir);
  return stat(p, &st) == 0 ? st.st_ino : 0;
}

/* trims text from `from` and checks what is left and the count dropped */
static void expect(const char *text, int64_t from, const char *want, size_t want_dropped) {
  FILE *f = NULL;
  setup(text, &f);
  FILE *before = f;
  ino_t ino = inode();
  size_t dropped = 99;
  foil_err err = {0};
  int rc = jobdir_metrics_from(dir, from, &f, &dropped, &err);
  CHECKF(rc == FOIL_OK, "from %lld: %s", (long long)from, err.msg);
  CHECKF(dropped == want_dropped, "from %lld: %zu dropped, want %zu", (long long)from, dropped, want_dropped);
  char *got = contents();
  CHECKF(!strcmp(got, want), "from %lld: left\n%s\nwant\n%s", (long long)from, got, want);
  free(got);
  if (!want_dropped) CHECKF(f == before && inode() == ino, "from %lld: nothing dropped, yet the file was replaced",
                            (long long)from);
  else CHECKF(inode() != ino, "from %lld: the file was rewritten in place, not replaced", (long long)from);
  /* the handle appends to the file now there */
  CHECK(f != NULL);
  if (f) {
    fputs("{\"step\":99}\n", f);
    fflush(f);
    got = contents();
    size_t n = strlen(got), w = strlen(want);
    CHECKF(n == w + 12 && !strncmp(got, want, w) && !strcmp(got + w, "{\"step\":99}\n"),
           "from %lld: an append after the trim gave\n%s", (long long)from, got);
    free(got);
    fclose(f);
  }
}

static void test_trim(void) {
  const char *run = "{\"step\":1,\"loss\":3}\n"
                    "{\"step\":2,\"loss\":2}\n"
                    "{\"step\":2,\"eval\":\"dev\",\"model\":\"foil\"}\n"
                    "{\"step\":3,\"loss\":1}\n"
                    "{\"step\":10,\"loss\":1}\n"
                    "{\"step\":4,\"loss\":3.1";
  const char *upto2 = "{\"step\":1,\"loss\":3}\n"
                      "{\"step\":2,\"loss\":2}\n"
                      "{\"step\":2,\"eval\":\"dev\",\"model\":\"foil\"}\n";
  expect(run, 2, upto2, 3);                  /* steps 3 and 10, and the torn line */
  expect(upto2, 2, upto2, 0);                /* nothing after the checkpoint: left alone */
  expect(run, 0, "", 6);                     /* a fresh start: nothing kept */
  expect("", 0, "", 0);                      /* an empty file stays */
  expect("{\"step\":0,\"eval\":\"dev\"}\n", 0, "", 1); /* eval.at_start's step 0 is logged again */
  expect("{\"step\":1}\n{\"step\":2}", 5, "{\"step\":1}\n", 1); /* a last line without its newline */
  expect("{\"step\":1}\n{\"steps\":1}\n{\"step\":x}\n\n{\"loss\":1,\"step\":1}\n", 5, "{\"step\":1}\n", 4);
  expect("{\"step\":1}\n{\"step\":20}\n", 2, "{\"step\":1}\n", 1); /* 20 > 2, whatever its first digit */
}

static void test_missing(void) {
  char p[600];
  snprintf(p, sizeof p, "%s/metrics", dir);
  unlink(p);
  FILE *f = stdout; /* any handle: it must be left as it is */
  foil_err err = {0};
  size_t dropped = 99;
  CHECK(jobdir_metrics_from(dir, 3, &f, &dropped, &err) == FOIL_ENOTFOUND);
  CHECK(f == stdout && dropped == 0);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/jobdir-%ld", t ? t : "/tmp", (long)getpid());
  foil_err err = {0};
  if (foil_mkdirs(dir, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  RUN(test_trim);
  RUN(test_missing);
  char p[600];
  snprintf(p, sizeof p, "%s/metrics", dir);
  unlink(p);
  rmdir(dir);
  TEST_EXIT();
}
