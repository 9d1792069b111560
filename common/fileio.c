/* fileio.c — whole-file reads, atomic writes (see fileio.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "common/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int foil_read_file(const char *path, char **data, size_t *len, foil_err *err) {
  *data = NULL;
  if (len) *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return foil_err_set(err, e == ENOENT ? FOIL_ENOTFOUND : e == EACCES ? FOIL_EPERM : FOIL_EINVAL,
                        "%s: %s", path, strerror(e));
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break; /* end of file or an error: ferror tells */
    char *nb = realloc(buf, cap * 2 + 1);
    if (!nb) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = nb;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  if (!buf) return foil_err_set(err, FOIL_ENOMEM, "out of memory reading %s", path);
  if (bad) {
    free(buf);
    return foil_err_set(err, FOIL_EINVAL, "%s: read error", path);
  }
  buf[n] = '\0';
  *data = buf;
  if (len) *len = n;
  return FOIL_OK;
}

int foil_split_lines(char *text, size_t len, char ***lines, size_t *n, foil_err *err) {
  size_t cap = 1;
  for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
  *n = 0;
  if (!(*lines = malloc(sizeof(char *) * cap))) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (char *p = text; p < text + len;) {
    char *e = memchr(p, '\n', (size_t)(text + len - p));
    if (!e) e = text + len; /* foil_read_file's buffer has its NUL there */
    *e = 0;
    (*lines)[(*n)++] = p;
    p = e + 1;
  }
  return FOIL_OK;
}

static int io_code(int e) { return e == EACCES || e == EPERM || e == EROFS ? FOIL_EPERM : FOIL_EINVAL; }

int foil_write_file_atomic(const char *path, const void *data, size_t len, foil_err *err) {
  return foil_write_file_atomic_mode(path, data, len, 0644, err);
}

/* 64 bits for a temporary name: the kernel's random bytes; if those are
 * unavailable, the clock, pid and a per-process counter mixed (splitmix64),
 * still unique within this process. */
static uint64_t tmp_bits(void) {
  static uint64_t counter;
  uint64_t n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED), r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r ^ n;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t z = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32 ^ n;
  z += 0x9e3779b97f4a7c15u;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

void foil_host(char host[64]) {
  memset(host, 0, 64);
  if (gethostname(host, 63) != 0 || !host[0]) snprintf(host, 64, "nohost");
  host[63] = 0;
  for (char *h = host; *h; h++) /* keep the name one plain path component */
    if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') || *h == '.' ||
          *h == '_' || *h == '-'))
      *h = '_';
}

int foil_tmp_name(const char *path, char *out, size_t n, foil_err *err) {
  char host[64];
  foil_host(host);
  int w = snprintf(out, n, "%s.tmp-%s-%ld-%016llx", path, host, (long)getpid(), (unsigned long long)tmp_bits());
  if (w < 0 || (size_t)w >= n) return foil_err_set(err, FOIL_EINVAL, "path too long: %s", path);
  return FOIL_OK;
}

int foil_fsync_dir(const char *dir, foil_err *err) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return foil_err_set(err, FOIL_EINTERNAL, "cannot open directory %s to make it durable: %s", dir,
                        strerror(errno));
  int e = fsync(fd) ? errno : 0;
  close(fd);
  if (e && e != EINVAL) /* EINVAL: this filesystem cannot sync a directory at all */
    return foil_err_set(err, FOIL_EINTERNAL, "fsync of directory %s failed, its new entries may not be durable: %s",
                        dir, strerror(e));
  return FOIL_OK;
}

int foil_fsync_parent(const char *path, foil_err *err) {
  char dir[4096];
  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
    return foil_err_set(err, FOIL_EINVAL, "path too long: %s", path);
  return foil_fsync_dir(dirname(dir), err);
}

int foil_write_file_atomic_mode(const char *path, const void *data, size_t len, unsigned mode, foil_err *err) {
  char tmp[4096];
  int fd = -1;
  /* a name no other writer (another host, process or thread) uses: O_EXCL
   * never meets an existing file but by a 2^-64 chance, and then retries */
  for (int tries = 0; fd < 0 && tries < 4; tries++) {
    int rc = foil_tmp_name(path, tmp, sizeof tmp, err);
    if (rc) return rc;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return foil_err_set(err, io_code(errno), "cannot write %s: %s", tmp, strerror(errno));
  const char *p = data;
  size_t left = len;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    p += w, left -= (size_t)w;
  }
  int e = left ? errno : 0;
  if (!e && fsync(fd)) e = errno;
  if (close(fd) && !e) e = errno;
  if (!e && rename(tmp, path)) e = errno;
  if (e) {
    unlink(tmp);
    return foil_err_set(err, io_code(e), "cannot write %s: %s", path, strerror(e));
  }
  /* the rename is durable only once the directory is: until then the caller must not report it written */
  return foil_fsync_parent(path, err);
}

int foil_mkdirs(const char *path, foil_err *err) {
  char buf[4096];
  if (!*path) return foil_err_set(err, FOIL_EINVAL, "empty directory path");
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return foil_err_set(err, FOIL_EINVAL, "path too long: %s", path);
  for (char *p = buf + 1;; p++) {
    int end = *p == 0;
    if (*p == '/' || end) {
      *p = 0;
      if (mkdir(buf, 0755) == 0) {
        int rc = foil_fsync_parent(buf, err); /* the new entry survives a crash */
        if (rc) return rc;
      } else if (errno != EEXIST) {
        return foil_err_set(err, io_code(errno), "cannot create %s: %s", buf, strerror(errno));
      }
      if (end) break;
      *p = '/';
    }
  }
  return FOIL_OK;
}

int foil_mkdirs_parent(const char *path, foil_err *err) {
  if (!*path) return foil_err_set(err, FOIL_EINVAL, "empty file name");
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path) return FOIL_OK;
  char dir[4096];
  if ((size_t)(slash - path) >= sizeof dir) return foil_err_set(err, FOIL_EINVAL, "path too long: %s", path);
  memcpy(dir, path, (size_t)(slash - path));
  dir[slash - path] = 0;
  return foil_mkdirs(dir, err);
}

/* ---- killed writers' leftovers ----------------------------------------------------- */

int foil_writer_may_live(const char *host, long pid, double age_s) {
  if (age_s >= FOIL_STALE_S) return 0;
  if (!host || pid <= 0) return 1;
  char me[64];
  foil_host(me);
  if (strcmp(host, me)) return 1; /* another host's pid says nothing here */
  if (kill((pid_t)pid, 0) != 0 && errno != EPERM) return 0;
  /* A killed writer that nobody reaps (its parent mpirun killed too, in a
   * container whose pid 1 reaps no orphans) stays a zombie: its pid
   * exists, but it writes nothing and holds no lock. Linux's
   * /proc/<pid>/stat says so: state Z (or X) after the ")" of the name. */
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 1; /* no /proc: the pid's existence decides */
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *rp = strrchr(buf, ')');
  return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* Parses the suffix foil_tmp_name appends, "<host>-<pid>-<16 hex>", the
 * part of name after its last ".tmp-" that parses; 1 and host/pid when it
 * does. */
static int tmp_suffix(const char *name, char host[64], long *pid) {
  size_t n = strlen(name);
  if (n < 17 + 2) return 0;
  const char *hex = name + n - 16;
  for (const char *p = hex; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  if (hex[-1] != '-') return 0;
  const char *pe = hex - 1, *pb = pe; /* the pid: digits before "-<hex>" */
  while (pb > name && pb[-1] >= '0' && pb[-1] <= '9') pb--;
  if (pb == pe || pb == name || pb[-1] != '-' || pe - pb > 18) return 0;
  char num[20];
  memcpy(num, pb, (size_t)(pe - pb));
  num[pe - pb] = 0;
  *pid = strtol(num, NULL, 10);
  const char *he = pb - 1, *hb = NULL; /* host: after the last ".tmp-" before he */
  for (const char *p = name; p + 5 <= he; p++)
    if (!memcmp(p, ".tmp-", 5)) hb = p + 5;
  if (!hb || he <= hb || he - hb > 63) return 0;
  memcpy(host, hb, (size_t)(he - hb));
  host[he - hb] = 0;
  return 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

void foil_remove_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

int foil_tmp_sweep(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  size_t pl = strlen(prefix);
  int removed = 0;
  time_t now = time(NULL);
  struct dirent *e;
  char p[4608], host[64];
  while ((e = readdir(d))) {
    long pid = 0;
    if (strncmp(e->d_name, prefix, pl) || !tmp_suffix(e->d_name, host, &pid))
      continue;
    struct stat st;
    if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p || lstat(p, &st) ||
        !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
      continue;
    if (foil_writer_may_live(host, pid, difftime(now, st.st_mtime))) continue;
    if (S_ISDIR(st.st_mode)) { /* a folder built to be renamed into place (a model export) */
      foil_remove_tree(p);
      removed += access(p, F_OK) != 0;
    } else {
      removed += unlink(p) == 0;
    }
  }
  closedir(d);
  return removed;
}

int foil_tmp_sweep_path(const char *path) {
  char dir[4096], prefix[512];
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dl = slash ? (size_t)(slash - path) : 0;
  if (dl >= sizeof dir || snprintf(prefix, sizeof prefix, "%s.tmp-", base) >= (int)sizeof prefix) return 0;
  if (slash == path) dl = 1; /* "/x": the root directory */
  memcpy(dir, slash ? path : ".", slash ? dl : 1);
  dir[slash ? dl : 1] = 0;
  return foil_tmp_sweep(dir, prefix);
}

int foil_lock(const char *path, int *fd, foil_err *err) {
  *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (*fd < 0) return foil_err_set(err, io_code(errno), "cannot open lock file %s: %s", path, strerror(errno));
  int r;
  while ((r = flock(*fd, LOCK_EX)) != 0 && errno == EINTR) {
  }
  if (r == 0) return FOIL_OK;
  int e = errno;
  close(*fd);
  *fd = -1;
  if (e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS) return FOIL_OK; /* no locks here: nothing held */
  return foil_err_set(err, FOIL_EPERM, "cannot lock %s: %s", path, strerror(e));
}

void foil_unlock(int *fd) {
  if (*fd >= 0) close(*fd); /* closing the only descriptor releases the flock */
  *fd = -1;
}
