/* test_lmcorpus.c — lmcorpus_build's publish: lm.h5 and LICENSE appear,
 * and the LICENSE rename is made durable (its directory fsynced after it,
 * not only after lm.h5's). fsync and rename are interposed for this
 * program (foil's static libraries call these) to see their order. */
#define _GNU_SOURCE /* syscall */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/lmcorpus.h"
#include "tests/test.h"

static char dir[512], watch_dir[PATH_MAX];
/* license_renamed: LICENSE got its final name; synced_after: a directory
 * fsync of watch_dir came after that */
static int license_renamed, synced_after;

int rename(const char *from, const char *to) {
  int r = (int)syscall(SYS_renameat, AT_FDCWD, from, AT_FDCWD, to);
  size_t n = strlen(to);
  if (r == 0 && n >= 8 && !strcmp(to + n - 8, "/LICENSE")) license_renamed = 1, synced_after = 0;
  return r;
}

int fsync(int fd) {
  struct stat st;
  if (license_renamed && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n > 0) {
      target[n] = 0;
      if (!strcmp(target, watch_dir)) synced_after = 1;
    }
  }
  return (int)syscall(SYS_fsync, fd);
}

/* n small reST-free documents of plain sentences under dir/rst */
static void write_docs(const char *rst, int n) {
  foil_err err = {0};
  CHECK(foil_mkdirs(rst, &err) == 0);
  for (int i = 0; i < n; i++) {
    char p[1024];
    snprintf(p, sizeof p, "%s/doc%03d.rst.txt", rst, i);
    FILE *f = fopen(p, "w");
    if (!f) continue;
    for (int s = 0; s < 6; s++)
      fprintf(f, "Document %d says in sentence %d that the quick brown fox jumps over the lazy dog and then "
              "runs back home again across the wide green field. ", i, s);
    fputc('\n', f);
    fclose(f);
  }
}

static void test_license_durable(void) {
  char rst[600], root[600], ds[700];
  snprintf(rst, sizeof rst, "%s/rst", dir);
  snprintf(root, sizeof root, "%s/root", dir);
  write_docs(rst, 200);
  foil_err err = {0};
  snprintf(ds, sizeof ds, "%s/datasets/lmt", root);
  CHECK(foil_mkdirs(ds, &err) == 0);
  CHECK(realpath(ds, watch_dir) != NULL);
  lmcorpus_opts o = {.name = "lmt", .rst_dir = rst, .n_prompts = 5, .quiet = 1};
  int rc = lmcorpus_build(root, 7, &o, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  char p[800];
  snprintf(p, sizeof p, "%s/lm.h5", ds);
  CHECK(access(p, F_OK) == 0);
  snprintf(p, sizeof p, "%s/LICENSE", ds);
  CHECK(access(p, F_OK) == 0);
  CHECK(license_renamed);
  CHECKF(synced_after, "%s was not fsynced after LICENSE was renamed into it", watch_dir);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/lmcorpus-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_license_durable);
  TEST_EXIT();
}
