/* timefmt.h — times as the job commands print them.
 *
 *   timefmt_duration  elapsed/remaining time as Slurm prints it:
 *                     "0:07", "12:34", "1:02:03", "2-03:04:05"
 *   timefmt_clock     an epoch time in local time, "2026-11-28T16:05:01"
 *   timefmt_ago       "3s ago", "5m ago", "2h ago", "4d ago"
 *   timefmt_eta       seconds left from progress and a rate
 *
 * Each writes into the caller's buffer (32 bytes are always enough) and
 * returns it; times that are unset (0), negative or not finite print as
 * "-" (timefmt_clock also for epochs past year ~33,000: never a clock
 * time, e.g. a scheduler's "never" leaking out). No allocation.
 *
 *   timefmt_parse_duration  a duration as sbatch --time writes it, for
 *                     --time-limit
 */
#ifndef FOIL_CLI_TIMEFMT_H
#define FOIL_CLI_TIMEFMT_H

#include <stddef.h>

char *timefmt_duration(double seconds, char *buf, size_t n);
char *timefmt_clock(double epoch, char *buf, size_t n);
char *timefmt_ago(double now, double then, char *buf, size_t n);
/* Seconds until value reaches total at rate units per second; -1 when it
 * cannot be known (total or rate not positive, value past total gives 0). */
double timefmt_eta(double value, double total, double rate);

/* Parses a duration into seconds: a bare number is SECONDS (foil's
 * documented --time-limit unit; sbatch would read minutes), and sbatch's
 * forms MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS. Digits only (no sign,
 * blanks or fractions); every field after the first is below 60 (hours
 * after "D-" below 24). Returns 0 and *seconds, or -1 for anything else or
 * a value over max. */
int timefmt_parse_duration(const char *s, long max, long *seconds);

#endif
