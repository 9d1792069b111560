/* log.c — see log.h. */
#define _POSIX_C_SOURCE 200809L
#include "common/log.h"

#include <stdarg.h>
#include <time.h>

double log_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double log_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void log_vline(FILE *f, const char *level, const char *component, const char *fmt, va_list ap) {
  if (!f) f = stderr;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char stamp[40];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  fprintf(f, "%s.%03ldZ %s %s %s\n", stamp, ts.tv_nsec / 1000000, level, component, msg);
  fflush(f);
}

void log_line(FILE *f, const char *level, const char *component, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vline(f, level, component, fmt, ap);
  va_end(ap);
}

void log_tee(FILE *file, int to_stderr, const char *level, const char *component, const char *fmt, ...) {
  va_list ap;
  if (file) {
    va_start(ap, fmt);
    log_vline(file, level, component, fmt, ap);
    va_end(ap);
  }
  if (to_stderr) {
    va_start(ap, fmt);
    log_vline(stderr, level, component, fmt, ap);
    va_end(ap);
  }
}
