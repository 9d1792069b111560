/* cli.c — what the subcommands share (cli.h). In the library, not in
 * foil.c, so tests and every command module link it. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cli_data_root(int *argc, char **argv) {
  const char *root = NULL;
  for (int i = 1; i < *argc; i++) {
    int take = 0;
    if (!strcmp(argv[i], "--root") && i + 1 < *argc) {
      root = argv[i + 1];
      take = 2;
    } else if (!strncmp(argv[i], "--root=", 7)) {
      root = argv[i] + 7;
      take = 1;
    }
    if (take) {
      memmove(&argv[i], &argv[i + take], (size_t)(*argc - i - take + 1) * sizeof(char *));
      *argc -= take;
      i--;
    }
  }
  if (root) return root;
  const char *env = getenv("FOIL_ROOT");
  return env && *env ? env : "./foil-data";
}

const char *cli_opt_value(int argc, char **argv, int *i, const char *opt, int *rc, foil_err *err) {
  size_t n = strlen(opt);
  if (!strncmp(argv[*i], opt, n) && argv[*i][n] == '=') return argv[*i] + n + 1;
  if (strcmp(argv[*i], opt)) return NULL;
  if (*i + 1 >= argc) {
    *rc = foil_err_set(err, FOIL_EINVAL, "%s needs a value (see --help)", opt);
    return NULL;
  }
  return argv[++*i];
}

int cli_fail(const char *cmd, const foil_err *err) {
  fprintf(stderr, "foil %s: %s\n", cmd, err->msg[0] ? err->msg : foil_err_name(err->code));
  return err->code;
}

void cli_shell_quote(FILE *out, const char *arg) {
  static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./_-";
  size_t n = strlen(arg);
  if (n && strspn(arg, safe) == n) {
    fputs(arg, out);
    return;
  }
  fputc('\'', out);
  for (const char *p = arg; *p; p++)
    if (*p == '\'') fputs("'\\''", out);
    else fputc(*p, out);
  fputc('\'', out);
}
