/* timefmt.c — see timefmt.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/timefmt.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static int unset(double x) { return !isfinite(x) || x < 0; }

char *timefmt_duration(double seconds, char *buf, size_t n) {
  if (unset(seconds) || seconds > 1e9) {
    snprintf(buf, n, "-");
    return buf;
  }
  long s = (long)seconds, d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
  s %= 60;
  if (d) snprintf(buf, n, "%ld-%02ld:%02ld:%02ld", d, h, m, s);
  else if (h) snprintf(buf, n, "%ld:%02ld:%02ld", h, m, s);
  else snprintf(buf, n, "%ld:%02ld", m, s);
  return buf;
}

char *timefmt_clock(double epoch, char *buf, size_t n) {
  struct tm tm;
  time_t t = (time_t)epoch;
  if (unset(epoch) || epoch == 0 || !localtime_r(&t, &tm) ||
      !strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm))
    snprintf(buf, n, "-");
  return buf;
}

char *timefmt_ago(double now, double then, char *buf, size_t n) {
  double d = now - then;
  if (unset(then) || then == 0 || !isfinite(d)) snprintf(buf, n, "-");
  else if (d < 0) snprintf(buf, n, "0s ago"); /* clocks a little apart */
  else if (d < 60) snprintf(buf, n, "%.0fs ago", floor(d));
  else if (d < 3600) snprintf(buf, n, "%.0fm ago", floor(d / 60));
  else if (d < 86400) snprintf(buf, n, "%.0fh ago", floor(d / 3600));
  else snprintf(buf, n, "%.0fd ago", floor(d / 86400));
  return buf;
}

double timefmt_eta(double value, double total, double rate) {
  if (!isfinite(value) || !isfinite(total) || !isfinite(rate) || total <= 0) return -1;
  if (value >= total) return 0;
  if (rate <= 0) return -1;
  return (total - value) / rate;
}
