/* test_fileio.c — common/fileio.h: foil_split_lines (lines split in
 * place, a final line without a newline counts, nothing follows the last
 * newline, empty lines and '\r' are kept, an empty text has no lines);
 * foil_write_file_atomic's temporary names and directory fsync; foil_mkdirs;
 * foil_tmp_sweep (killed writers' temporaries go, live writers' stay) and
 * foil_lock (a second holder waits). */
#define _GNU_SOURCE /* syscall */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "tests/test.h"
#include "tests/unit/dead_pid.h"

#include "tests/unit/fsync_fault.h"

static char dir[512];

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

static int count_prefix(const char *d, const char *prefix) {
  DIR *dp = opendir(d);
  int k = 0;
  struct dirent *e;
  while (dp && (e = readdir(dp))) k += !strncmp(e->d_name, prefix, strlen(prefix));
  if (dp) closedir(dp);
  return k;
}

static int read_is(const char *p, const char *want) {
  char *data = NULL;
  size_t n = 0;
  int ok = foil_read_file(p, &data, &n, NULL) == 0 && n == strlen(want) && !memcmp(data, want, n);
  free(data);
  return ok;
}

/* Temporary names are unique per host, process and call: a file carrying
 * the name this pid's writer used before (another host's writer with the
 * same pid) is neither removed nor renamed over the target. */
static void test_tmp_names(void) {
  foil_err err = {0};
  char a[700], b[700], p[600], other[700];
  snprintf(p, sizeof p, "%s/CURRENT", dir);
  CHECK(foil_tmp_name(p, a, sizeof a, &err) == 0 && foil_tmp_name(p, b, sizeof b, &err) == 0);
  CHECKF(strcmp(a, b) != 0, "two temporary names are the same: %s", a);
  char pid[32];
  snprintf(pid, sizeof pid, "-%ld-", (long)getpid());
  CHECKF(!strncmp(a, p, strlen(p)) && !strncmp(a + strlen(p), ".tmp-", 5) && strstr(a, pid) &&
             !strchr(a + strlen(dir) + 1, '/'), "%s", a);
  CHECK(foil_tmp_name(p, a, strlen(p) + 8, &err) == FOIL_EINVAL);
  snprintf(other, sizeof other, "%s.tmp.%ld", p, (long)getpid());
  FILE *fp = fopen(other, "w");
  CHECK(fp && fputs("v9\n", fp) >= 0);
  if (fp) fclose(fp);
  CHECKF(foil_write_file_atomic(p, "v7\n", 3, &err) == 0, "%s", err.msg);
  CHECK(read_is(p, "v7\n"));
  CHECKF(read_is(other, "v9\n"), "another writer's temporary %s was removed or changed", other);
  CHECK(count_prefix(dir, "CURRENT.tmp-") == 0);
  /* a secret's mode holds for the new name too */
  snprintf(p, sizeof p, "%s/secret", dir);
  CHECKF(foil_write_file_atomic_mode(p, "k", 1, 0600, &err) == 0, "%s", err.msg);
  struct stat st;
  CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
}

/* The directory fsync after the rename: its failure is an error naming
 * the directory (the new file is in place but not durable), EINVAL (no
 * directory fsync on this filesystem) is not; foil_mkdirs fsyncs the parent
 * of each directory it creates, and reports its failure. */
static void test_dir_fsync(void) {
  foil_err err = {0};
  char p[600], d[600];
  snprintf(p, sizeof p, "%s/CURRENT", dir);
  dir_fsyncs = 0;
  CHECKF(foil_write_file_atomic(p, "v1\n", 3, &err) == 0 && dir_fsyncs == 1, "%s", err.msg);
  dir_fsync_errno = EIO;
  int rc = foil_write_file_atomic(p, "v2\n", 3, &err);
  dir_fsync_errno = 0;
  CHECKF(rc == FOIL_EINTERNAL && strstr(err.msg, dir) && strstr(err.msg, "directory") &&
             strstr(err.msg, strerror(EIO)), "rc %d: %s", rc, err.msg);
  CHECK(read_is(p, "v2\n") && count_prefix(dir, "CURRENT.tmp-") == 0);
  dir_fsync_errno = EINVAL;
  rc = foil_write_file_atomic(p, "v3\n", 3, &err);
  dir_fsync_errno = 0;
  CHECKF(rc == 0 && read_is(p, "v3\n"), "rc %d: %s", rc, err.msg);
  /* mkdir -p: one parent fsync per directory created, none for existing ones */
  snprintf(d, sizeof d, "%s/a/b/c", dir);
  dir_fsyncs = 0;
  CHECKF(foil_mkdirs(d, &err) == 0 && dir_fsyncs == 3, "%d fsyncs: %s", dir_fsyncs, err.msg);
  dir_fsyncs = 0;
  CHECK(foil_mkdirs(d, &err) == 0 && dir_fsyncs == 0);
  snprintf(d, sizeof d, "%s/a/new", dir);
  dir_fsync_errno = EIO;
  rc = foil_mkdirs(d, &err);
  dir_fsync_errno = 0;
  CHECKF(rc == FOIL_EINTERNAL && strstr(err.msg, "/a") && strstr(err.msg, "directory"), "rc %d: %s", rc, err.msg);
  CHECK(foil_fsync_dir("/nonexistent-foil-dir", &err) == FOIL_EINTERNAL && strstr(err.msg, "/nonexistent-foil-dir"));
}

/* Creates dir/name (empty), its mtime age_s seconds ago. */
static void touch_aged(const char *name, double age_s) {
  char p[1200];
  snprintf(p, sizeof p, "%.500s/%.600s", dir, name);
  FILE *f = fopen(p, "w");
  CHECK(f != NULL);
  if (f) fclose(f);
  struct timeval tv[2];
  gettimeofday(&tv[0], NULL);
  tv[0].tv_sec -= (time_t)age_s;
  tv[1] = tv[0];
  CHECK(utimes(p, tv) == 0);
}

static int exists(const char *name) {
  char p[1200];
  snprintf(p, sizeof p, "%.500s/%.600s", dir, name);
  return access(p, F_OK) == 0;
}


/* The sweep removes the temporaries of writers that are gone (this host,
 * pid gone; any host after FOIL_STALE_S) and nothing else: a live pid's,
 * another host's young one, other prefixes, names that are no temporary. */
static void test_tmp_sweep(void) {
  char host[64], n[9][600];
  foil_host(host);
  long dead = test_dead_pid(), me = (long)getpid();
  const char *hex = "0123456789abcdef";
  snprintf(n[0], sizeof n[0], "step_5.h5.tmp-%s-%ld-%s", host, dead, hex);      /* gone: removed */
  snprintf(n[1], sizeof n[1], "step_6.h5.tmp-%s-%ld-%s", host, me, hex);        /* live: kept */
  snprintf(n[2], sizeof n[2], "step_7.h5.tmp-other-node-%ld-%s", dead, hex);    /* young, elsewhere: kept */
  snprintf(n[3], sizeof n[3], "step_8.h5.tmp-other-node-%ld-%s", me, hex);      /* 25 h old: removed */
  snprintf(n[4], sizeof n[4], "neg.h5.tmp-%s-%ld-%s", host, dead, hex);         /* another prefix: kept */
  snprintf(n[5], sizeof n[5], "step_9.h5");                                     /* no temporary: kept */
  snprintf(n[6], sizeof n[6], "step_9.h5.tmp-%s-%ld-nothex", host, dead);       /* not foil's: kept */
  snprintf(n[7], sizeof n[7], "step_4.h5.tmp-%s-%ld-%s", host, me, hex);        /* live but 25 h old: removed */
  snprintf(n[8], sizeof n[8], "step_3.h5.tmp-%s-x%ld-%s", host, dead, hex);     /* no pid: kept while young */
  for (int i = 0; i < 9; i++) touch_aged(n[i], i == 3 || i == 7 ? 25 * 3600 : 0);
  CHECK(foil_writer_may_live(host, me, 0) && !foil_writer_may_live(host, dead, 0));
  long zombie = test_zombie_pid(); /* killed and unreaped: its pid exists, the writer is gone */
  CHECKF(!foil_writer_may_live(host, zombie, 0), "a zombie writer (pid %ld) may live", zombie);
  test_reap(zombie);
  CHECK(foil_writer_may_live("other-node", dead, 3600) && !foil_writer_may_live("other-node", me, FOIL_STALE_S));
  int removed = foil_tmp_sweep(dir, "step_");
  CHECKF(removed == 3, "removed %d", removed);
  const int want[9] = {0, 1, 1, 0, 1, 1, 1, 0, 1};
  for (int i = 0; i < 9; i++) CHECKF(exists(n[i]) == want[i], "%s %s", n[i], want[i] ? "was removed" : "is still there");
  /* one file's temporaries: foil_tmp_sweep_path */
  touch_aged(n[0], 0);
  snprintf(n[2], sizeof n[2], "%s/step_5.h5", dir);
  CHECK(foil_tmp_sweep_path(n[2]) == 1 && !exists(n[0]) && exists(n[1]));
  CHECK(foil_tmp_sweep("/nonexistent-foil-dir", "x") == 0);
  /* a folder built to be renamed into place (a model export): removed with
   * what is in it when its writer is gone, kept while it lives */
  char gone[200], live[200], sh[4000];
  snprintf(gone, sizeof gone, "model.tmp-%s-%ld-%s", host, test_dead_pid(), hex);
  snprintf(live, sizeof live, "model.tmp-%s-%ld-%s", host, me, hex);
  snprintf(sh, sizeof sh, "cd '%s' && mkdir -p '%s/sub' '%s' && touch '%s/sub/f' '%s/g'", dir, gone, live, gone, gone);
  CHECK(system(sh) == 0);
  CHECK(foil_tmp_sweep(dir, "model") == 1 && !exists(gone) && exists(live));
}

/* foil_lock excludes: a child asking for a lock this process holds waits
 * until it is released. */
static void test_lock(void) {
  char p[600];
  snprintf(p, sizeof p, "%s/.lock", dir);
  foil_err err = {0};
  int fd = -1;
  CHECKF(foil_lock(p, &fd, &err) == 0 && fd >= 0, "%s", err.msg);
  pid_t c = fork();
  if (c == 0) {
    close(fd); /* the inherited descriptor shares this process's lock */
    int fd2 = -1;
    foil_err e2 = {0};
    _exit(foil_lock(p, &fd2, &e2) == 0 && fd2 >= 0 ? 0 : 1);
  }
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);
  int st = 0;
  CHECKF(waitpid(c, &st, WNOHANG) == 0, "the second locker did not wait");
  foil_unlock(&fd);
  CHECK(fd == -1);
  CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/fileio-%ld", t ? t : "/tmp", (long)getpid());
  foil_err err = {0};
  if (foil_mkdirs(dir, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  RUN(test_split_lines);
  RUN(test_tmp_names);
  RUN(test_dir_fsync);
  RUN(test_tmp_sweep);
  RUN(test_lock);
  TEST_EXIT();
}
