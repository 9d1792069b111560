/* log.h — one log line per event, as every foil daemon writes them:
 *
 *   2026-11-28T16:05:01.123Z INFO coordinator job 7 RUNNING on w1
 *
 * timestamp (UTC, ms), level, component, message; the text a person reads
 * is the text kept. Writes to f (stderr if NULL) and flushes. No allocation.
 */
#ifndef FOIL_COMMON_LOG_H
#define FOIL_COMMON_LOG_H

#include <stdio.h>

void log_line(FILE *f, const char *level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Seconds since the epoch (wall clock) and a monotonic clock, as doubles. */
double log_now(void);
double log_mono(void);

#endif
