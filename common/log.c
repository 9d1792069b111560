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

void log_line(FILE *f, const char *level, const char *component, const char *fmt, ...) {
  if (!f) f = stderr;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char stamp[40];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(f, "%s.%03ldZ %s %s %s\n", stamp, ts.tv_nsec / 1000000, level, component, msg);
  fflush(f);
}
