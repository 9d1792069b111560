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
  /* checked before the conversion: a NaN, an infinity or a value past
   * time_t's range converted to time_t is undefined behaviour */
  if (unset(epoch) || epoch == 0 || epoch > 1e12) {
    snprintf(buf, n, "-");
    return buf;
  }
  time_t t = (time_t)epoch;
  if (!localtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm)) snprintf(buf, n, "-");
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

/* Digits at *p up to a non-digit, as a number (at most 12 digits); -1 if
 * there are none. */
static long digits(const char **p) {
  long v = 0;
  int k = 0;
  for (; **p >= '0' && **p <= '9'; (*p)++, k++) {
    if (k == 12) return -1;
    v = v * 10 + (**p - '0');
  }
  return k ? v : -1;
}

int timefmt_parse_duration(const char *s, long max, long *seconds) {
  const char *p = s;
  long f[4];
  int nf = 0, day = 0;
  if (!s || !*s) return -1;
  f[nf++] = digits(&p);
  if (f[0] < 0) return -1;
  if (*p == '-') {  /* D-HH[:MM[:SS]] */
    day = 1;
    p++;
    if ((f[nf++] = digits(&p)) < 0) return -1;
  }
  while (*p == ':' && nf < 4) {
    p++;
    if ((f[nf++] = digits(&p)) < 0) return -1;
  }
  if (*p) return -1;
  long v;
  if (day) {  /* D, H[, M[, S]] */
    if (f[1] > 23 || (nf > 2 && f[2] > 59) || (nf > 3 && f[3] > 59)) return -1;
    v = f[0] * 86400 + f[1] * 3600 + (nf > 2 ? f[2] * 60 : 0) + (nf > 3 ? f[3] : 0);
  } else if (nf == 1) {  /* SECONDS */
    v = f[0];
  } else if (nf == 2) {  /* MM:SS */
    if (f[1] > 59) return -1;
    v = f[0] * 60 + f[1];
  } else if (nf == 3) {  /* HH:MM:SS */
    if (f[1] > 59 || f[2] > 59) return -1;
    v = f[0] * 3600 + f[1] * 60 + f[2];
  } else {
    return -1;
  }
  if (v > max) return -1;
  *seconds = v;
  return 0;
}
