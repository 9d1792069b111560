/* lm_build.c — builds the lm dataset (storage/lmcorpus.h) from the installed
 * Debian packages into a given data root, as `foil data prepare lm` does;
 * the reference test runs it twice and checks the files with h5py.
 * usage: lm_build ROOT SEED */
#include <stdio.h>
#include <stdlib.h>

#include "storage/lmcorpus.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: lm_build ROOT SEED\n");
    return 2;
  }
  lmcorpus_opts o = {
      .janeaustenr = "/usr/lib/R/site-library/janeaustenr/data/Rdata",
      .sword_conf = "/usr/share/sword/mods.d/engWEB2015eb.conf",
      .rst_dir = "/usr/share/doc/python3.11/html/_sources",
      .copyright_austen = "/usr/share/doc/r-cran-janeaustenr/copyright",
      .copyright_web = "/usr/share/doc/sword-text-web/copyright",
      .copyright_python = "/usr/share/doc/python3.11-doc/copyright",
      .n_prompts = 500,
      .min_bytes = 10u * 1000u * 1000u,
      .created_by = "lm_build (tests/reference)",
  };
  foil_err err = {0};
  lmcorpus_stats st;
  int rc = lmcorpus_build(argv[1], strtoull(argv[2], NULL, 10), &o, &st, &err);
  if (rc) {
    fprintf(stderr, "lm_build: %s\n", err.msg);
    return 1;
  }
  return 0;
}
