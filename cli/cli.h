/* cli.h — what the `foil` subcommands share.
 *
 * Each subcommand is one function `int cmd_<name>(int argc, char **argv)`
 * in cli/cmd_<name>.c, listed in the table in cli/foil.c. argv[0] is the
 * subcommand's name. It returns a foil error code (common/err.h), which main
 * maps to the documented exit status, or a positive number that is the exit
 * status itself (a followed job's status, cli/jobstate.h). Messages go to stderr as
 * "foil <cmd>: <message>"; results go to stdout.
 */
#ifndef FOIL_CLI_CLI_H
#define FOIL_CLI_CLI_H

#include <stdio.h>

#include "common/err.h"

int cmd_data(int argc, char **argv);       /* in foil-data */
int cmd_tokenizer(int argc, char **argv);  /* in foil-data */
int cmd_model(int argc, char **argv);      /* in foil-data */
int cmd_model_exec(int argc, char **argv); /* `foil model`: runs foil-data */
int cmd_data_exec(int argc, char **argv);  /* `foil data`: runs foil-data */
int cmd_tokenizer_exec(int argc, char **argv);
int cmd_textmetrics(int argc, char **argv);      /* in foil-data */
int cmd_textmetrics_exec(int argc, char **argv); /* `foil textmetrics`: runs foil-data */
/* Replaces the process with `program` from the foil executable's
 * directory, passing argv[1..] (keep_cmd: argv[0] too, as the program's
 * subcommand); returns only on failure, as cli_fail does. */
int cli_exec_beside(const char *cmd, const char *program, int argc, char **argv, int keep_cmd);
int cmd_submit(int argc, char **argv);
int cmd_jobs(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_workers(int argc, char **argv);
int cmd_drain(int argc, char **argv);
int cmd_coordinator(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_keys(int argc, char **argv);

/* The data root: the value of --root DIR / --root=DIR if argv has one (the
 * option is removed from argv, *argc updated), else $FOIL_ROOT, else
 * "./foil-data". Returned pointer is static or points into argv. */
const char *cli_data_root(int *argc, char **argv);

/* "--opt VALUE" or "--opt=VALUE" at argv[*i]: the value (*i moved past
 * it; a pointer into argv), or NULL when argv[*i] is not opt. A missing
 * value sets *rc (and err) to FOIL_EINVAL and returns NULL. */
const char *cli_opt_value(int argc, char **argv, int *i, const char *opt, int *rc, foil_err *err);

/* Prints "foil <cmd>: <err->msg>" to stderr and returns err->code. */
int cli_fail(const char *cmd, const foil_err *err);

/* Writes arg to out as one POSIX shell word: as it is when it is non-empty
 * and only [A-Za-z0-9@%+=:,./_-], else in single quotes (a ' inside as
 * '\''), so a command shown by `foil status` pastes back into a shell. */
void cli_shell_quote(FILE *out, const char *arg);

#endif
