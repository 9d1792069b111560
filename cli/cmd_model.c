/* cmd_model.c — `foil model`: pretrained BERT encoders in and out.
 *
 *   foil model import DIR --out CKPT.h5
 *   foil model export CKPT.h5 DIR
 *
 * import reads a sentence-transformers / Hugging Face folder (config.json,
 * model.safetensors, vocab.txt, modules.json, 1_Pooling/config.json) into a
 * foil checkpoint at step 0 with its tokenizer; export writes a folder that
 * sentence-transformers' SentenceTransformer(DIR) loads (storage/hfmodel.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "model/encoder.h"
#include "storage/hfmodel.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil model import DIR --out CKPT.h5\n"
          "       foil model export CKPT.h5 DIR\n"
          "\n"
          "import  reads a BERT model folder as sentence-transformers saves it (config.json,\n"
          "        model.safetensors, vocab.txt, modules.json, 1_Pooling/config.json) and\n"
          "        writes a foil checkpoint at step 0 with its WordPiece tokenizer.\n"
          "        BERT's token-type embedding row 0 is folded into the position embeddings;\n"
          "        the original token-type matrix and the pooler are kept aside under /hf.\n"
          "export  writes DIR as a sentence-transformers model: config.json,\n"
          "        model.safetensors, vocab.txt, tokenizer and pooling configs, and\n"
          "        2_Normalize when the model normalizes its embeddings.\n");
}

static int fail(foil_err *e) { return cli_fail("model", e); }

static int cmd_import(int argc, char **argv) {
  const char *dir = NULL, *out = NULL;
  foil_err err = {0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!strncmp(argv[i], "--", 2)) {
      foil_err_set(&err, FOIL_EINVAL, "import: unknown option '%s' (see --help)", argv[i]);
      return fail(&err);
    } else if (!dir) dir = argv[i];
    else {
      foil_err_set(&err, FOIL_EINVAL, "import: one model folder only ('%s' is extra)", argv[i]);
      return fail(&err);
    }
  }
  if (!dir || !out) {
    foil_err_set(&err, FOIL_EINVAL, "import: DIR and --out CKPT.h5 are required");
    return fail(&err);
  }
  hf_model *m = NULL;
  int rc = hf_import(dir, &m, &err);
  if (!rc) rc = hf_save_ckpt(m, out, &err);
  if (!rc) {
    const encoder_config *c = encoder_cfg(m->enc);
    fprintf(stderr,
            "foil model: %s -> %s: %d layers, d_model %d, %d heads, vocab %d, %s pooling%s, %zu parameters\n",
            dir, out, c->n_layers, c->d_model, c->n_heads, c->vocab, c->pooling ? "CLS" : "mean",
            m->normalize ? " + normalize" : "", encoder_num_params(m->enc));
  }
  hf_model_destroy(&m);
  return rc ? fail(&err) : FOIL_OK;
}

static int cmd_export(int argc, char **argv) {
  foil_err err = {0};
  if (argc != 3 || !strncmp(argv[1], "--", 2) || !strncmp(argv[2], "--", 2)) {
    foil_err_set(&err, FOIL_EINVAL, "export: CKPT.h5 DIR are required (see --help)");
    return fail(&err);
  }
  hf_model *m = NULL;
  int rc = hf_load_ckpt(argv[1], &m, &err);
  if (!rc) rc = hf_export(m, argv[2], &err);
  if (!rc) fprintf(stderr, "foil model: %s -> %s\n", argv[1], argv[2]);
  hf_model_destroy(&m);
  return rc ? fail(&err) : FOIL_OK;
}

int cmd_model(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? FOIL_EINVAL : FOIL_OK;
  }
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return FOIL_OK;
    }
  if (!strcmp(argv[1], "import")) return cmd_import(argc - 1, argv + 1);
  if (!strcmp(argv[1], "export")) return cmd_export(argc - 1, argv + 1);
  foil_err err;
  foil_err_set(&err, FOIL_EINVAL, "unknown subcommand '%s' (import, export; see --help)", argv[1]);
  return fail(&err);
}
