/* foil.c — the `foil` command: dispatch to subcommands (cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} commands[] = {
    {"submit", cmd_submit, "submit a job (a spec file, or -- PROGRAM ARGS...)"},
    {"jobs", cmd_jobs, "list jobs (pending, running, recently ended)"},
    {"status", cmd_status, "show one job and its attempts"},
    {"watch", cmd_watch, "follow a job's progress until it ends"},
    {"logs", cmd_logs, "print a job's log (--follow to keep reading)"},
    {"cancel", cmd_cancel, "cancel a job, or send it a signal"},
    {"workers", cmd_workers, "list the workers"},
    {"search", cmd_search, "top-k search against foil-serve (by text or vectors)"},
    {"keys", cmd_keys, "CURVE key pairs for a secure cluster (gen, show)"},
    {"drain", cmd_drain, "stop giving jobs to a worker (--undo to resume)"},
    {"coordinator", cmd_coordinator, "run foil-coordinator (--help for its options)"},
    {"worker", cmd_worker, "run foil-worker (--help for its options)"},
    {"data", cmd_data_exec, "prepare datasets under the data root (wordnet, code, lm, custom)"},
    {"tokenizer", cmd_tokenizer_exec, "encode text, train BPE merges, export tokenizers"},
    {"model", cmd_model_exec, "import a pretrained BERT / sentence-transformers model, export one"},
    {"textmetrics", cmd_textmetrics_exec, "score generations (JSONL): rep-n, diversity, coherence, perplexity, MAUVE"},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *out) {
  fprintf(out, "usage: foil <command> [options]\n\ncommands:\n");
  for (int i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
  fprintf(out, "\nfoil <command> --help for a command's options.\n"
               "\nExit status (README \"Exit statuses\"; common/err.h):\n"
               "  0 ok                      7 failed precondition (e.g. the job already ended)\n"
               "  1 other error             8 aborted\n"
               "  2 invalid argument        9 deadline exceeded\n"
               "  3 not found              10 unavailable (the coordinator or server does not answer)\n"
               "  4 already exists         11 internal (also: a job state this foil does not know)\n"
               "  5 permission denied      12 unauthenticated (a key refused)\n"
               "  6 resource exhausted\n"
               "a followed job (watch, submit --wait): 20 failed, 21 cancelled, 22 timeout,\n"
               "23 node failure.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (int i = 0; i < NCOMMANDS; i++)
    if (!strcmp(argv[1], commands[i].name)) {
      int rc = commands[i].run(argc - 1, argv + 1);
      return rc > 0 ? rc : foil_err_exit_code(rc); /* > 0: a job's status (cli.h) */
    }
  fprintf(stderr, "foil: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
