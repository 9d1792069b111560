/* prepare_lm.c — `foil data prepare lm`: the lm dataset from the installed
 * Debian packages (the work is storage/lmcorpus.c, so tests can call it). */
#include <stdint.h>

#include "cli/prepare.h"
#include "storage/lmcorpus.h"

int prepare_lm(const char *root, uint64_t seed, foil_err *err) {
  lmcorpus_opts o = {
      .name = "lm",
      .janeaustenr = "/usr/lib/R/site-library/janeaustenr/data/Rdata",
      .sword_conf = "/usr/share/sword/mods.d/engWEB2015eb.conf",
      .rst_dir = "/usr/share/doc/python3.11/html/_sources",
      .copyright_austen = "/usr/share/doc/r-cran-janeaustenr/copyright",
      .copyright_web = "/usr/share/doc/sword-text-web/copyright",
      .copyright_python = "/usr/share/doc/python3.11-doc/copyright",
      .n_prompts = 500,
      .min_bytes = 10u * 1000u * 1000u,
      .created_by = "foil data prepare lm",
  };
  return lmcorpus_build(root, seed, &o, NULL, err);
}
