/* follow.h — following a job until it is final: what `foil watch` and
 * `foil submit --wait` print.
 *
 * On a terminal, one line redrawn in place:
 *   job 7 RUNNING [#########...........] 450/1000 45% loss 0.4312 845 pairs/s ETA 0:41
 * Elsewhere (a file, a pipe), one plain line per change of state or progress:
 *   job 7 RUNNING 450/1000 45% loss 0.4312 pairs_per_s 845 eta 0:41
 * and when the job is final, a last line with its state, exit code and reason.
 *
 * The job is asked for with Watch requests every interval; a request that
 * gets no reply is asked again (3 times in all) before giving up with
 * FOIL_EUNAVAIL. No global state.
 */
#ifndef FOIL_CLI_FOLLOW_H
#define FOIL_CLI_FOLLOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/client.h"
#include "common/err.h"

/* Follows job id, printing to out (a terminal gets the redrawn line), until
 * it is final; *final_state is then its foil.v1.JobState. */
int follow_job(client *c, uint64_t id, FILE *out, double interval_s, int *final_state,
               foil_err *err);

/* The progress line for job (no newline) into buf. rate: progress units per
 * second (for the ETA; <= 0 unknown). bar_width > 0 draws a bar of that
 * many cells (terminal form), 0 gives the plain form. Returns buf. */
char *follow_render(const Foil__V1__Job *job, double rate, int bar_width, char *buf, size_t n);

/* The last line for a final job: "job 7 FAILED exit 1 (reason)". A state
 * this CLI does not know counts as final (cli/jobstate.h) and says so. */
char *follow_final(const Foil__V1__Job *job, char *buf, size_t n);

#endif
