/* cmd_keys.c — `foil keys`: CURVE key pairs for a secure cluster
 * (common/auth.h has the certificate format).
 *
 *   foil keys gen NAME [--role ROLE] [--dir DIR]
 *     writes DIR/NAME.key (public: goes into servers' allow-lists) and
 *     DIR/NAME.key_secret (mode 0600: stays with its owner)
 *   foil keys show FILE
 *     prints a certificate's name, role and public key (never a secret)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/auth.h"

static int usage(FILE *f) {
  fprintf(f,
          "usage: foil keys gen NAME [--role ROLE] [--dir DIR]\n"
          "       foil keys show FILE\n"
          "  gen writes DIR/NAME.key (public certificate: copy it into the allow-list directory of\n"
          "  each server NAME may use) and DIR/NAME.key_secret (mode 0600: the key pair NAME uses)\n"
          "  --role ROLE  admin, submitter, reader or worker (default reader); servers' own keys\n"
          "               may have any role (it is not used)\n"
          "  --dir DIR    where to write (default $FOIL_KEYS, else ./foil-keys)\n"
          "  (also --role=ROLE, --dir=DIR)\n");
  return f == stdout ? 0 : FOIL_EINVAL;
}

int cmd_keys(int argc, char **argv) {
  foil_err err = {0};
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) return usage(argc < 2 ? stderr : stdout);
  if (!strcmp(argv[1], "show")) {
    if (argc != 3) return usage(stderr);
    auth_cert c;
    if (auth_cert_load(argv[2], 0, &c, &err)) return cli_fail("keys", &err);
    printf("name = %s\nrole = %s\npublic-key = %s\n", c.name, auth_role_name(c.role), c.pub);
    memset(&c, 0, sizeof c);
    return FOIL_OK;
  }
  if (strcmp(argv[1], "gen")) {
    fprintf(stderr, "foil keys: unknown action '%s'\n", argv[1]);
    return usage(stderr);
  }
  const char *name = NULL, *dir = getenv("FOIL_KEYS"), *role = "reader";
  if (!dir || !*dir) dir = "./foil-keys";
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if ((!strcmp(a, "--role") || !strcmp(a, "--dir")) && i + 1 < argc) {
      if (a[2] == 'r') role = argv[++i];
      else dir = argv[++i];
    } else if (!strncmp(a, "--role=", 7)) {
      role = a + 7;
    } else if (!strncmp(a, "--dir=", 6)) {
      dir = a + 6;
    } else if (a[0] != '-' && !name) {
      name = a;
    } else {
      fprintf(stderr, "foil keys: unexpected argument '%s'\n", a);
      return usage(stderr);
    }
  }
  if (!name) return usage(stderr);
  int r = auth_role_parse(role);
  if (!r) {
    foil_err_set(&err, FOIL_EINVAL, "role \"%s\" is not admin, submitter, reader or worker", role);
    return cli_fail("keys", &err);
  }
  if (auth_keys_gen(dir, name, r, &err)) return cli_fail("keys", &err);
  printf("%s/%s.key\n%s/%s.key_secret\n", dir, name, dir, name);
  return FOIL_OK;
}
