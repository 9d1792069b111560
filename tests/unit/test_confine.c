/* test_confine.c — the path confinement rule (common/confine.h): plain
 * names, paths that resolve inside the data root or an allowed directory,
 * and refusals of `..`, absolute paths outside and symlink escapes. */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/confine.h"
#include "common/fileio.h"
#include "tests/test.h"

static char base[512], root[600], outside[600], allowed[600];

static void setup(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(base, sizeof base, "%s/confine-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  foil_err err = {0};
  if (tmp && *tmp) foil_mkdirs(tmp, &err);
  if (!mkdtemp(base)) abort();
  snprintf(root, sizeof root, "%s/root", base);
  snprintf(outside, sizeof outside, "%s/outside", base);
  snprintf(allowed, sizeof allowed, "%s/allowed", base);
  char p[800];
  snprintf(p, sizeof p, "%s/datasets/d", root);
  foil_mkdirs(p, &err);
  foil_mkdirs(outside, &err);
  foil_mkdirs(allowed, &err);
  snprintf(p, sizeof p, "%s/vocab.txt", root);
  foil_write_file_atomic(p, "x\n", 2, &err);
  snprintf(p, sizeof p, "%s/secret.txt", outside);
  foil_write_file_atomic(p, "s\n", 2, &err);
  snprintf(p, sizeof p, "%s/vocab.txt", allowed);
  foil_write_file_atomic(p, "x\n", 2, &err);
  /* root/escape -> outside (a directory); root/leak.txt -> outside/secret.txt;
   * root/inner -> root/datasets (a link that stays inside) */
  char t[800];
  snprintf(p, sizeof p, "%s/escape", root);
  if (symlink(outside, p)) abort();
  snprintf(p, sizeof p, "%s/leak.txt", root);
  snprintf(t, sizeof t, "%s/secret.txt", outside);
  if (symlink(t, p)) abort();
  snprintf(p, sizeof p, "%s/inner", root);
  if (symlink("datasets", p)) abort();
}

static void test_names(void) {
  CHECK(confine_name_ok("wordnet") && confine_name_ok("a.b_c-9") && confine_name_ok("..x") &&
        confine_name_ok(".hidden"));
  CHECK(!confine_name_ok("") && !confine_name_ok(".") && !confine_name_ok(".."));
  CHECK(!confine_name_ok("a/b") && !confine_name_ok("../x") && !confine_name_ok("/etc") &&
        !confine_name_ok("a b") && !confine_name_ok("a\\b"));
  char big[200];
  memset(big, 'a', sizeof big - 1), big[sizeof big - 1] = 0;
  CHECK(!confine_name_ok(big));
  big[CONFINE_MAX_NAME] = 0;
  CHECK(confine_name_ok(big));
  foil_err err = {0};
  CHECK(confine_name("spec data.dataset", "../x", &err) == FOIL_EINVAL && strstr(err.msg, "spec data.dataset") &&
        strstr(err.msg, "\"../x\""));
}

static void test_paths(void) {
  confine c;
  foil_err err = {0};
  char out[CONFINE_PATH_MAX], p[CONFINE_PATH_MAX + 64], want[CONFINE_PATH_MAX];
  CHECKF(confine_init(&c, root, &err) == 0, "%s", err.msg);
  if (!realpath(root, want)) abort();
  /* inside: absolute, relative to a base, through an inner link, not yet existing */
  snprintf(p, sizeof p, "%s/vocab.txt", root);
  CHECKF(confine_path(&c, "k", p, NULL, out, &err) == 0, "%s", err.msg);
  CHECK(confine_path(&c, "k", "vocab.txt", root, NULL, &err) == 0);
  CHECK(confine_path(&c, "k", "datasets/../vocab.txt", root, NULL, &err) == 0);
  CHECK(confine_path(&c, "k", "inner/d", root, out, &err) == 0);
  snprintf(p, sizeof p, "%s/datasets/d", want);
  CHECKF(!strcmp(out, p), "%s != %s", out, p);
  CHECK(confine_path(&c, "k", "jobs/7/ckpt/step_1.h5", root, NULL, &err) == 0); /* does not exist yet */
  CHECK(confine_path(&c, "k", "../../vocab.txt", "jobs/0", NULL, &err) != 0);    /* base relative: from cwd */
  snprintf(p, sizeof p, "%s/jobs/0", root);
  CHECK(confine_path(&c, "k", "../../vocab.txt", p, NULL, &err) == 0); /* jobs/0/../.. is the root */
  /* refused: .., absolute outside, symlink escapes (file and directory),
   * a not-yet-existing path behind an escaping link */
  CHECK(confine_path(&c, "model.tokenizer", "../outside/secret.txt", root, NULL, &err) == FOIL_EPERM &&
        strstr(err.msg, "model.tokenizer") && strstr(err.msg, "../outside/secret.txt") && strstr(err.msg, "outside"));
  snprintf(p, sizeof p, "%s/secret.txt", outside);
  CHECK(confine_path(&c, "k", p, NULL, NULL, &err) == FOIL_EPERM);
  CHECK(confine_path(&c, "k", "/etc/passwd", NULL, NULL, &err) == FOIL_EPERM);
  CHECK(confine_path(&c, "k", "leak.txt", root, NULL, &err) == FOIL_EPERM);
  CHECK(confine_path(&c, "k", "escape/secret.txt", root, NULL, &err) == FOIL_EPERM);
  CHECK(confine_path(&c, "k", "escape/new/file", root, NULL, &err) == FOIL_EPERM);
  CHECK(confine_path(&c, "k", "nothere/../escape/secret.txt", root, NULL, &err) == FOIL_EPERM);
  snprintf(p, sizeof p, "%s/../outside", root);
  CHECK(confine_path(&c, "k", p, NULL, NULL, &err) == FOIL_EPERM);
  CHECK(confine_path(&c, "k", "/", NULL, NULL, &err) == FOIL_EPERM);
  /* a sibling whose name starts with the root's is not inside it */
  snprintf(p, sizeof p, "%s-evil/x", root);
  CHECK(confine_path(&c, "k", p, NULL, NULL, &err) == FOIL_EPERM);
  /* an allowed directory */
  snprintf(p, sizeof p, "%s/vocab.txt", allowed);
  CHECK(confine_path(&c, "k", p, NULL, NULL, &err) == FOIL_EPERM);
  CHECKF(confine_allow(&c, allowed, &err) == 0, "%s", err.msg);
  CHECK(confine_path(&c, "k", p, NULL, NULL, &err) == 0);
  CHECK(confine_path(&c, "k", "leak.txt", root, NULL, &err) == FOIL_EPERM);
  CHECK(confine_allow(&c, "/nonexistent/dir", &err) == FOIL_ENOTFOUND);
}

static void test_specs(void) {
  confine c;
  foil_err err = {0};
  CHECK(confine_init(&c, root, &err) == 0);
  char spec[2048];
  CHECK(confine_spec(&c, "pretrain", "{\"data\": {\"dataset\": \"d\"}, \"model\": {\"tokenizer\": \"vocab.txt\"}}",
                     root, &err) == 0);
  CHECK(confine_spec(&c, "pretrain", "{\"data\": {\"dataset\": \"../d\"}}", root, &err) == FOIL_EINVAL &&
        strstr(err.msg, "data.dataset"));
  CHECK(confine_spec(&c, "pretrain", "{\"data\": {\"negatives_bank\": \"..\"}}", root, &err) == FOIL_EINVAL);
  CHECK(confine_spec(&c, "pretrain", "{\"model\": {\"tokenizer\": \"/etc/passwd\"}}", root, &err) == FOIL_EPERM &&
        strstr(err.msg, "model.tokenizer") && strstr(err.msg, "/etc/passwd"));
  CHECK(confine_spec(&c, "pretrain", "{\"init_from\": \"leak.txt\"}", root, &err) == FOIL_EPERM);
  CHECK(confine_spec(&c, "pretrain", "{\"refresh\": {\"corpus\": {\"file\": \"escape/x.jsonl\"}}}", root, &err) ==
        FOIL_EPERM);
  CHECK(confine_spec(&c, "pretrain", "{\"refresh\": {\"index\": \"a/b\"}}", root, &err) == FOIL_EINVAL);
  CHECK(confine_spec(&c, "refresh", "{\"name\": \"code\", \"checkpoint\": \"jobs/1\"}", root, &err) == 0);
  CHECK(confine_spec(&c, "refresh", "{\"name\": \"code\", \"checkpoint\": \"../../x\"}", root, &err) == FOIL_EPERM);
  CHECK(confine_spec(&c, "refresh", "{\"mine\": {\"bank\": \"../b\"}}", root, &err) == FOIL_EINVAL);
  CHECK(confine_spec(&c, "serve", "{\"index\": \"..\"}", root, &err) == FOIL_EINVAL);
  CHECK(confine_spec(&c, "command", "{\"anything\": \"../..\"}", root, &err) == 0);
  /* decode-eval: its checkpoints and files are paths, its name and dataset names */
  CHECKF(confine_spec(&c, "decode-eval",
                      "{\"name\": \"lm\", \"model\": \"jobs/1\", \"prompts\": {\"dataset\": \"lm\"}, "
                      "\"metrics\": {\"scorer\": true}}", root, &err) == 0, "%s", err.msg);
  CHECK(confine_spec(&c, "decode-eval", "{\"model\": \"/etc/passwd\"}", root, &err) == FOIL_EPERM &&
        strstr(err.msg, "spec model"));
  CHECK(confine_spec(&c, "decode-eval", "{\"model\": \"jobs/1\", \"amateur\": \"leak.txt\"}", root, &err) ==
            FOIL_EPERM && strstr(err.msg, "amateur"));
  CHECK(confine_spec(&c, "decode-eval", "{\"prompts\": {\"file\": \"escape/secret.txt\"}}", root, &err) == FOIL_EPERM &&
        strstr(err.msg, "prompts.file"));
  CHECK(confine_spec(&c, "decode-eval", "{\"metrics\": {\"encoder\": \"../../x.h5\"}}", root, &err) == FOIL_EPERM &&
        strstr(err.msg, "metrics.encoder"));
  CHECK(confine_spec(&c, "decode-eval", "{\"metrics\": {\"scorer\": \"/etc/shadow\"}}", root, &err) == FOIL_EPERM &&
        strstr(err.msg, "metrics.scorer"));
  CHECK(confine_spec(&c, "decode-eval", "{\"prompts\": {\"dataset\": \"../d\"}}", root, &err) == FOIL_EINVAL &&
        strstr(err.msg, "prompts.dataset"));
  CHECK(confine_spec(&c, "decode-eval", "{\"name\": \"a/b\"}", root, &err) == FOIL_EINVAL);
  /* not JSON, or keys of another type: left to the spec's own parser */
  CHECK(confine_spec(&c, "pretrain", "not json", root, &err) == 0);
  CHECK(confine_spec(&c, "pretrain", "{\"data\": {\"dataset\": 7}, \"model\": 3}", root, &err) == 0);
  /* what the coordinator records, foil-run reads back */
  snprintf(spec, sizeof spec, "{\"control\": \"x\", \"allow_dirs\": [\"%s\", \"/nonexistent/gone\"]}", allowed);
  char p[800];
  snprintf(p, sizeof p, "%s/coordinator.json", root);
  CHECK(foil_write_file_atomic(p, spec, strlen(spec), &err) == 0);
  CHECK(confine_allow_recorded(&c, root, &err) == 0 && c.n == 2);
  snprintf(p, sizeof p, "%s/vocab.txt", allowed);
  CHECK(confine_path(&c, "k", p, NULL, NULL, &err) == 0);
}

int main(void) {
  setup();
  RUN(test_names);
  RUN(test_paths);
  RUN(test_specs);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd)) return 1;
  TEST_EXIT();
}
