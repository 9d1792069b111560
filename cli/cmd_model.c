/* cmd_model.c — `foil model`: pretrained BERT encoders in and out, and
 * texts to embeddings with any foil encoder checkpoint.
 *
 *   foil model import DIR --out CKPT.h5
 *   foil model export CKPT.h5 DIR
 *   foil model encode CKPT.h5 [TEXT...] [--file F] [--out OUT.npy] [--batch N] [--max-len N]
 *
 * import reads a sentence-transformers / Hugging Face folder (config.json,
 * model.safetensors, vocab.txt, modules.json, 1_Pooling/config.json) into a
 * foil checkpoint at step 0 with its tokenizer; export writes a new folder
 * (absent or empty, published atomically) that sentence-transformers'
 * SentenceTransformer(DIR) loads (storage/hfmodel.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileio.h"
#include "model/encoder.h"
#include "storage/hfmodel.h"
#include "worker/run/encode.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil model import DIR --out CKPT.h5\n"
          "       foil model export CKPT.h5 DIR\n"
          "       foil model encode CKPT.h5 [TEXT...] [--file F] [--out OUT.npy] [--batch N] [--max-len N]\n"
          "                         [-- TEXT...]\n"
          "\n"
          "import  reads a BERT model folder as sentence-transformers saves it (config.json,\n"
          "        model.safetensors, vocab.txt, modules.json, 1_Pooling/config.json) and\n"
          "        writes a foil checkpoint at step 0 with its WordPiece tokenizer.\n"
          "        BERT's token-type embedding row 0 is folded into the position embeddings;\n"
          "        the original token-type matrix and the pooler are kept aside under /hf.\n"
          "export  writes DIR as a sentence-transformers model: config.json,\n"
          "        model.safetensors, vocab.txt, tokenizer and pooling configs, and\n"
          "        2_Normalize when the model normalizes its embeddings. DIR must not exist\n"
          "        or be empty; it appears whole (built beside it, then renamed) or not at all.\n"
          "encode  embeds the TEXT arguments (after `--` even those that start with '-'),\n"
          "        or the lines of F (- for standard input), with\n"
          "        an encoder checkpoint and its tokenizer, as sentence-transformers' encode:\n"
          "        sorted by length into batches of N (default 32), truncated as the imported\n"
          "        model's max_seq_length (else its positions) or to --max-len tokens, unit-norm rows. --out writes a NumPy .npy\n"
          "        file (float32 [texts, dim], atomically); without it, one line per text of\n"
          "        space-separated values.\n");
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

/* NumPy's .npy v1.0 for a C-order float32 [n, d] matrix: magic, header
 * length, a dict padded with spaces to a multiple of 64 bytes, the data. */
static int write_npy(const char *path, const float *x, size_t n, size_t d, foil_err *err) {
  char dict[128];
  int hl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", n, d);
  size_t pre = 10, total = pre + (size_t)hl + 1;
  total = (total + 63) / 64 * 64;
  size_t body = n * d * sizeof(float);
  unsigned char *buf = malloc(total + body);
  if (!buf) return foil_err_set(err, FOIL_ENOMEM, "out of memory for %zu embeddings", n);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)((total - pre) & 0xff), buf[9] = (unsigned char)((total - pre) >> 8);
  memset(buf + pre, ' ', total - pre);
  memcpy(buf + pre, dict, (size_t)hl);
  buf[total - 1] = '\n';
  memcpy(buf + total, x, body); /* little-endian hosts only, as everything foil writes */
  int rc = foil_write_file_atomic(path, buf, total + body, err);
  free(buf);
  return rc;
}

static int cmd_encode(int argc, char **argv) {
  const char *ckpt = NULL, *file = NULL, *out = NULL;
  int batch = 32, max_len = 0;
  char **args = calloc((size_t)argc, sizeof(char *)), **lines = NULL, *text = NULL;
  size_t nargs = 0, n = 0, len = 0;
  foil_err err = {0};
  int rc = args ? FOIL_OK : foil_err_set(&err, FOIL_ENOMEM, "out of memory");
  for (int i = 1, dashdash = 0; !rc && i < argc; i++) {
    if (dashdash) { /* after `--`: positional, even a text that starts with '-' */
      if (!ckpt) ckpt = argv[i];
      else args[nargs++] = argv[i];
    } else if (!strcmp(argv[i], "--")) dashdash = 1;
    else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if ((!strcmp(argv[i], "--batch") || !strcmp(argv[i], "--max-len")) && i + 1 < argc) {
      char *end = NULL;
      long v = strtol(argv[i + 1], &end, 10);
      if (!*argv[i + 1] || *end || v < 1 || v > 1 << 20)
        rc = foil_err_set(&err, FOIL_EINVAL, "encode: %s wants a whole number from 1, got '%s'", argv[i],
                          argv[i + 1]);
      else if (!strcmp(argv[i], "--batch")) batch = (int)v;
      else max_len = (int)v;
      i++;
    } else if (!strncmp(argv[i], "--", 2))
      rc = foil_err_set(&err, FOIL_EINVAL, "encode: unknown option '%s' (see --help)", argv[i]);
    else if (!ckpt) ckpt = argv[i];
    else args[nargs++] = argv[i];
  }
  if (!rc && !ckpt) rc = foil_err_set(&err, FOIL_EINVAL, "encode: CKPT.h5 is required (see --help)");
  if (!rc && !file == !nargs)
    rc = foil_err_set(&err, FOIL_EINVAL, "encode: give the texts as arguments or --file F, one of the two");
  if (!rc && file) {
    rc = foil_read_file(!strcmp(file, "-") ? "/dev/stdin" : file, &text, &len, &err);
    if (!rc) rc = foil_split_lines(text, len, &lines, &n, &err);
    if (!rc && !n) rc = foil_err_set(&err, FOIL_EINVAL, "encode: %s holds no lines", file);
  } else if (!rc) {
    lines = args, n = nargs, args = NULL;
  }
  hf_model *m = NULL;
  if (!rc) rc = hf_load_ckpt(ckpt, &m, &err);
  float *emb = NULL;
  size_t D = 0;
  if (!rc) {
    /* an imported model truncates where sentence-transformers did */
    int ml = hf_model_encode_len(m);
    if (max_len && max_len < ml) ml = max_len;
    D = (size_t)encoder_out_dim(m->enc);
    emb = malloc(sizeof(float) * n * D);
    if (!emb) rc = foil_err_set(&err, FOIL_ENOMEM, "out of memory for %zu embeddings", n);
    else rc = encode_texts(m->enc, m->tok, lines, n, ml, batch, emb, &err);
  }
  if (!rc && out) {
    rc = write_npy(out, emb, n, D, &err);
    if (!rc) fprintf(stderr, "foil model: %zu texts -> %s (float32 [%zu, %zu])\n", n, out, n, D);
  } else if (!rc) {
    for (size_t i = 0; i < n; i++)
      for (size_t c = 0; c < D; c++) printf("%.9g%c", emb[i * D + c], c + 1 < D ? ' ' : '\n');
    if (fflush(stdout)) rc = foil_err_set(&err, FOIL_EUNAVAIL, "encode: writing to standard output failed");
  }
  free(emb);
  hf_model_destroy(&m);
  free(args); /* NULL when the texts were the arguments: lines is that array then */
  free(lines);
  free(text);
  return rc ? fail(&err) : FOIL_OK;
}

int cmd_model(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? FOIL_EINVAL : FOIL_OK;
  }
  for (int i = 2; i < argc && strcmp(argv[i], "--"); i++) /* after `--`: texts */
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return FOIL_OK;
    }
  if (!strcmp(argv[1], "import")) return cmd_import(argc - 1, argv + 1);
  if (!strcmp(argv[1], "export")) return cmd_export(argc - 1, argv + 1);
  if (!strcmp(argv[1], "encode")) return cmd_encode(argc - 1, argv + 1);
  foil_err err;
  foil_err_set(&err, FOIL_EINVAL, "unknown subcommand '%s' (import, export, encode; see --help)", argv[1]);
  return fail(&err);
}
