/* cmd_data.c — `foil data`: prepare datasets under the data root
 * (docs/datasets.md). The sources live in cli/prepare_*.c (prepare.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/prepare.h"
#include "cli/prepare_util.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil data prepare <source> [--root DIR] [--seed N] [options]\n"
          "\n"
          "Writes <root>/datasets/<name>/ (HDF5; see docs/datasets.md) from installed files,\n"
          "deterministically for a seed (default 0). The data root is --root, else $FOIL_ROOT,\n"
          "else ./foil-data.\n"
          "\n"
          "sources:\n"
          "  wordnet   definition -> lemma and synonym pairs from WordNet 3.0 (Debian wordnet-base);\n"
          "            2000 test / 1000 dev synsets held out; benchmarks/test.h5, dev.h5\n"
          "  code      docstring -> function pairs from the Python 3.11 standard library\n"
          "            (libpython3.11-stdlib), split 80/10/10 by module; benchmarks/heldout.h5, all.h5\n"
          "  lm        documents and prompts for the decoder (lm.h5)\n"
          "  custom    your own data:\n"
          "              --name NAME --pairs FILE.jsonl|FILE.tsv\n"
          "              [--corpus FILE.jsonl|.tsv] [--queries FILE.jsonl|.tsv --qrels FILE.tsv]\n"
          "              [--benchmark NAME (default test)] [--dev-fraction F] [--test-fraction F]\n"
          "            pairs JSONL rows {\"query\", \"positive\", \"negatives\": [...]} or TSV lines\n"
          "            query<TAB>positive[<TAB>negative...]; corpus {\"_id\", \"text\", \"title\"} or\n"
          "            id<TAB>text; BEIR queries.jsonl and qrels TSV (query-id corpus-id score).\n"
          "            Texts over 1 MiB, invalid UTF-8, duplicate ids and unknown qrels ids are errors.\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t *v, foil_err *err) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  if (!*s || *end || errno || s[0] == '-' || x > (unsigned long long)INT64_MAX)
    return foil_err_set(err, FOIL_EINVAL, "%s '%s': give a whole number from 0 to 2^63-1", opt, s);
  *v = x;
  return FOIL_OK;
}

static int parse_frac(const char *opt, const char *s, double *v, foil_err *err) {
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  if (!*s || *end || errno || !(x >= 0 && x <= 1))
    return foil_err_set(err, FOIL_EINVAL, "%s '%s': give a fraction from 0 to 1", opt, s);
  *v = x;
  return FOIL_OK;
}

/* The options that take a value. */
static const char *const valued[] = {"--seed",    "--name",      "--pairs",        "--corpus",
                                     "--queries", "--qrels",     "--benchmark",    "--dev-fraction",
                                     "--test-fraction", NULL};

/* 1 when argv[i] is one of valued[] written "--opt VALUE" (its value is
 * then argv[i+1], not a source). */
static int takes_next(const char *a) {
  for (const char *const *k = valued; *k; k++)
    if (!strcmp(a, *k)) return 1;
  return 0;
}

static int prepare(int argc, char **argv, foil_err *err) {
  /* argv[0] = "prepare"; --root first (it may come anywhere, and so may the
   * source: the first word that is neither an option nor an option's value) */
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return FOIL_OK;
    }
  const char *root = cli_data_root(&argc, argv);
  int at = 0;
  for (int i = 1; i < argc && !at; i++) {
    if (argv[i][0] != '-') at = i;
    else if (takes_next(argv[i])) i++;
  }
  if (!at) {
    usage(stderr);
    return foil_err_set(err, FOIL_EINVAL, "name a source: wordnet, code, lm or custom");
  }
  const char *source = argv[at];
  uint64_t seed = 0;
  prepare_custom_opts co = {0};
  int is_custom = !strcmp(source, "custom");
  for (int i = 1; i < argc; i++) {
    int rc = FOIL_OK;
    const char *v;
    if (i == at) continue;
    if ((v = cli_opt_value(argc, argv, &i, "--seed", &rc, err))) {
      rc = parse_u64("--seed", v, &seed, err);
    } else if (!rc && is_custom && (v = cli_opt_value(argc, argv, &i, "--name", &rc, err))) {
      co.name = v;
    } else if (!rc && is_custom && (v = cli_opt_value(argc, argv, &i, "--pairs", &rc, err))) {
      co.pairs = v;
    } else if (!rc && is_custom && (v = cli_opt_value(argc, argv, &i, "--corpus", &rc, err))) {
      co.corpus = v;
    } else if (!rc && is_custom && (v = cli_opt_value(argc, argv, &i, "--queries", &rc, err))) {
      co.queries = v;
    } else if (!rc && is_custom && (v = cli_opt_value(argc, argv, &i, "--qrels", &rc, err))) {
      co.qrels = v;
    } else if (!rc && is_custom && (v = cli_opt_value(argc, argv, &i, "--benchmark", &rc, err))) {
      co.benchmark = v;
    } else if (!rc && is_custom && (v = cli_opt_value(argc, argv, &i, "--dev-fraction", &rc, err))) {
      rc = parse_frac("--dev-fraction", v, &co.dev_fraction, err);
    } else if (!rc && is_custom && (v = cli_opt_value(argc, argv, &i, "--test-fraction", &rc, err))) {
      rc = parse_frac("--test-fraction", v, &co.test_fraction, err);
    } else if (!rc) {
      rc = foil_err_set(err, FOIL_EINVAL, "unknown option '%s' for 'prepare %s' (see foil data prepare --help)",
                        argv[i], source);
    }
    if (rc) return rc;
  }
  if (!strcmp(source, "wordnet")) return prepare_wordnet(root, seed, err);
  if (!strcmp(source, "code")) return prepare_code(root, seed, err);
  if (!strcmp(source, "lm")) return prepare_lm(root, seed, err);
  if (is_custom) {
    if (!co.name) return foil_err_set(err, FOIL_EINVAL, "custom needs --name NAME");
    return prepare_custom(root, seed, &co, err);
  }
  return foil_err_set(err, FOIL_EINVAL, "unknown source '%s': wordnet, code, lm or custom", source);
}

int cmd_data(int argc, char **argv) {
  foil_err err = {0};
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? FOIL_EINVAL : FOIL_OK;
  }
  /* the command line, recorded in every file as created_by: an HDF5
   * attribute marked UTF-8, so bytes that are not UTF-8 (a path's) become
   * '?' and a line cut to fit ends on a character boundary */
  char line[1024];
  size_t o = (size_t)snprintf(line, sizeof line, "foil");
  for (int i = 0; i < argc && o < sizeof line; i++)
    o += (size_t)snprintf(line + o, sizeof line - o, " %s", argv[i]);
  foil_utf8_cut(line);
  foil_utf8_scrub(line);
  prep_set_created_by(line);
  int rc;
  if (!strcmp(argv[1], "prepare")) rc = prepare(argc - 1, argv + 1, &err);
  else rc = foil_err_set(&err, FOIL_EINVAL, "unknown subcommand '%s' (try: foil data prepare --help)", argv[1]);
  return rc ? cli_fail("data", &err) : FOIL_OK;
}
