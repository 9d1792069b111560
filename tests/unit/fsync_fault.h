/* fsync_fault.h — fsync interposed for one test program (include it in one
 * file of that program: foil's fileio and h5io then call this fsync): a
 * directory's fsync fails with dir_fsync_errno when that is set, as an I/O
 * error on the directory would; dir_fsyncs counts directory fsyncs;
 * everything else is the real call. */
#ifndef FOIL_TESTS_FSYNC_FAULT_H
#define FOIL_TESTS_FSYNC_FAULT_H

#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int dir_fsync_errno, dir_fsyncs;

int fsync(int fd) {
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    dir_fsyncs++;
    if (dir_fsync_errno) {
      errno = dir_fsync_errno;
      return -1;
    }
  }
  return (int)syscall(SYS_fsync, fd);
}

#endif
