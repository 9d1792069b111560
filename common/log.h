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

#include <stdarg.h>

void log_line(FILE *f, const char *level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vline(FILE *f, const char *level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* The same line to file (skipped when NULL) and, when to_stderr, to stderr:
 * a job runtime's rank 0 keeps its log and shows it unless --quiet. */
void log_tee(FILE *file, int to_stderr, const char *level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Seconds since the epoch (wall clock) and a monotonic clock, as doubles. */
double log_now(void);
double log_mono(void);

#endif
