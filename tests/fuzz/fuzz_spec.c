/* fuzz_spec.c — the JSON job-spec parsers on arbitrary text. The first input
 * byte picks one: 0 `foil submit`'s (cli/jobspec.h jobspec_build), 1 the
 * pretrain spec (worker/run/spec.h spec_parse, which also checks its
 * "refresh" object), 2 the refresh spec (refresh_spec_check), 3 the serve
 * spec as the worker turns it into foil-serve's argv (launch_argv). The
 * rest is the spec text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/jobspec.h"
#include "worker/agent/launch.h"
#include "worker/run/refresh.h"
#include "worker/run/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int which = data[0] % 4;
  char *text = malloc(size);
  memcpy(text, data + 1, size - 1);
  text[size - 1] = 0;
  foil_err err = {0};
  if (which == 0) {
    Foil__V1__JobSpec *js = NULL;
    jobspec_opts o = {0};
    if (!jobspec_build(&js, text, "spec.json", &o, &err)) jobspec_free(js);
  } else if (which == 1) {
    spec s;
    if (!spec_parse(&s, text, &err)) spec_free(&s);
  } else if (which == 2) {
    refresh_spec_check(text, &err);
  } else {
    launch_opts o = {.kind = "serve", .spec_json = text, .root = "root", .job_dir = "root/jobs/1",
                     .foil_run = "bin/foil-run", .self_host = "localhost"};
    char **argv = NULL;
    if (!launch_argv(&o, &argv, &err)) launch_strv_free(&argv);
  }
  free(text);
  return 0;
}
