/* cmd_tokenizer.c — `foil tokenizer`: encode, decode, train BPE merges.
 *
 *   foil tokenizer encode --vocab FILE [--no-special] [--max N] TEXT...
 *   foil tokenizer encode --vocab FILE [--no-special] [--max N] --file F
 *   foil tokenizer decode --vocab FILE ID...
 *   foil tokenizer train --vocab-size N --out DIR [--min-frequency K]
 *                        [--special TOKEN]... [--lm LM.H5] FILE...
 *
 * --vocab: a vocab.txt selects WordPiece (uncased BERT, [CLS]/[SEP] added
 * unless --no-special); a vocab.json selects byte-level BPE with merges.txt
 * from the same directory.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/fileio.h"
#include "model/bpe_train.h"
#include "model/tokenizer.h"
#include "storage/h5io.h"
#include "storage/lmcorpus.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil tokenizer encode --vocab FILE [--no-special] [--max N] TEXT...\n"
          "       foil tokenizer encode --vocab FILE [--no-special] [--max N] --file TEXTFILE\n"
          "       foil tokenizer decode --vocab FILE ID...\n"
          "       foil tokenizer train --vocab-size N --out DIR [--min-frequency K]\n"
          "                            [--special TOKEN]... [--lm LM.H5] [FILE...]\n"
          "\n"
          "encode  prints the token ids of TEXT (its words joined by spaces), separated by\n"
          "        spaces; with --file, one line of ids per line of TEXTFILE.\n"
          "        --vocab vocab.txt: WordPiece as uncased BERT, wrapped in [CLS] ... [SEP]\n"
          "        unless --no-special; --vocab vocab.json: byte-level BPE as GPT-2, with\n"
          "        merges.txt from the same directory. --max N truncates to N ids (WordPiece\n"
          "        with specials keeps [CLS] and [SEP]: N >= 2). Options may come anywhere\n"
          "        before `--`; words after it are text even when they start with '-'.\n"
          "decode  prints the text of the ids.\n"
          "train   learns byte-level BPE merges from the text files (GPT-2 pre-tokenization)\n"
          "        until the vocabulary has N tokens and writes DIR/vocab.json and\n"
          "        DIR/merges.txt as Hugging Face's tokenizers reads them. Special tokens\n"
          "        come first (default: <|endoftext|>); --min-frequency (default 2) stops\n"
          "        at pairs seen fewer times. --lm learns from the train documents of an\n"
          "        lm dataset (ROOT/datasets/lm/lm.h5 of `foil data prepare lm`), the\n"
          "        tokenizer a decoder job on it uses (model.tokenizer DIR/vocab.json).\n"
          "        Both files are replaced atomically, merges.txt first.\n"
          "Every option also takes the form --opt=VALUE.\n");
}

static int fail(foil_err *e) { return cli_fail("tokenizer", e); }

/* A whole number lo..hi, digits only, else an error naming the flag. */
static int int_opt(const char *cmd, const char *flag, const char *v, long lo, long hi, int *out, foil_err *err) {
  char *end = NULL;
  errno = 0;
  long x = v[0] >= '0' && v[0] <= '9' ? strtol(v, &end, 10) : 0;
  if (!end || *end || errno || x < lo || x > hi)
    return foil_err_set(err, FOIL_EINVAL, "%s: %s must be a whole number %ld..%ld, got '%s'", cmd, flag, lo, hi, v);
  *out = (int)x;
  return FOIL_OK;
}

static int print_ids(tokenizer *t, const char *text, size_t len, int special, int max,
                     const char *where, foil_err *err) {
  int cap = max > 0 ? max : (int)(len + 4 < 1 << 20 ? len + 4 : 1 << 20), n = 0;
  int32_t *ids = malloc((size_t)cap * sizeof *ids);
  if (!ids) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int rc = tokenizer_encode(t, text, len, special, ids, cap, &n, err);
  if (!rc && n > cap && max <= 0) { /* the buffer was a guess: grow and redo */
    free(ids);
    cap = n;
    if (!(ids = malloc((size_t)cap * sizeof *ids))) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    rc = tokenizer_encode(t, text, len, special, ids, cap, &n, err);
  }
  if (rc) {
    if (where) {
      char m[512];
      snprintf(m, sizeof m, "%s", err->msg);
      foil_err_set(err, rc, "%s: %s", where, m);
    }
    free(ids);
    return rc;
  }
  int k = n < cap ? n : cap;
  for (int i = 0; i < k; i++) printf(i ? " %d" : "%d", (int)ids[i]);
  putchar('\n');
  free(ids);
  return FOIL_OK;
}

static int cmd_encode(int argc, char **argv) {
  const char *vocab = NULL, *file = NULL, *v;
  int special = 1, max = 0, nwords = 0, rc = FOIL_OK;
  foil_err err = {0};
  /* options anywhere until `--`; the other words are the text, in order */
  char **words = calloc((size_t)argc + 1, sizeof *words);
  if (!words) {
    foil_err_set(&err, FOIL_ENOMEM, "out of memory");
    return fail(&err);
  }
  for (int i = 1; i < argc && !rc; i++) {
    if (!strcmp(argv[i], "--")) {
      while (++i < argc) words[nwords++] = argv[i];
      break;
    }
    if ((v = cli_opt_value(argc, argv, &i, "--vocab", &rc, &err))) vocab = v;
    else if (!rc && (v = cli_opt_value(argc, argv, &i, "--file", &rc, &err))) file = v;
    else if (!rc && (v = cli_opt_value(argc, argv, &i, "--max", &rc, &err)))
      rc = int_opt("encode", "--max", v, 1, 1 << 20, &max, &err);
    else if (!rc && !strcmp(argv[i], "--no-special")) special = 0;
    else if (!rc && argv[i][0] == '-' && argv[i][1])
      rc = foil_err_set(&err, FOIL_EINVAL,
                        "encode: unknown option '%s' (see --help; text that starts with '-' goes after `--`)",
                        argv[i]);
    else if (!rc) words[nwords++] = argv[i];
  }
  if (rc) {
    free(words);
    return fail(&err);
  }
  if (file && nwords) {
    free(words);
    foil_err_set(&err, FOIL_EINVAL, "encode: give TEXT or --file TEXTFILE, not both");
    return fail(&err);
  }
  if (!vocab) {
    free(words);
    foil_err_set(&err, FOIL_EINVAL, "encode: --vocab FILE is required");
    return fail(&err);
  }
  if (!file && !nwords) {
    free(words);
    foil_err_set(&err, FOIL_EINVAL, "encode: give TEXT or --file TEXTFILE");
    return fail(&err);
  }
  tokenizer *t = NULL;
  rc = tokenizer_load(&t, vocab, &err);
  if (!rc && max == 1 && special && tokenizer_kind(t) == TOKENIZER_WORDPIECE)
    rc = foil_err_set(&err, FOIL_EINVAL,
                      "encode: --max 1 leaves no room for [CLS] and [SEP] (kept when truncating): give "
                      "--max 2 or more, or --no-special");
  if (rc) {
    if (t) tokenizer_destroy(&t);
    free(words);
    return fail(&err);
  }
  if (file) {
    char *data = NULL;
    size_t len = 0;
    rc = foil_read_file(file, &data, &len, &err);
    long line = 0;
    for (size_t i = 0; !rc && i < len;) {
      char *nl = memchr(data + i, '\n', len - i);
      size_t e = nl ? (size_t)(nl - data) : len;
      char where[600];
      snprintf(where, sizeof where, "%s:%ld", file, ++line);
      rc = print_ids(t, data + i, e - i, special, max, where, &err);
      i = e + 1;
    }
    free(data);
  } else {
    size_t len = 0;
    for (int i = 0; i < nwords; i++) len += strlen(words[i]) + 1;
    char *text = malloc(len + 1);
    if (!text) {
      rc = foil_err_set(&err, FOIL_ENOMEM, "out of memory");
    } else {
      size_t at = 0;
      for (int i = 0; i < nwords; i++) {
        if (i) text[at++] = ' ';
        size_t l = strlen(words[i]);
        memcpy(text + at, words[i], l);
        at += l;
      }
      text[at] = 0;
      rc = print_ids(t, text, at, special, max, NULL, &err);
      free(text);
    }
  }
  tokenizer_destroy(&t);
  free(words);
  return rc ? fail(&err) : FOIL_OK;
}

static int cmd_decode(int argc, char **argv) {
  const char *vocab = NULL;
  foil_err err = {0};
  int32_t *ids = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *ids);
  int n = 0;
  if (!ids) {
    foil_err_set(&err, FOIL_ENOMEM, "out of memory");
    return fail(&err);
  }
  for (int i = 1; i < argc; i++) {
    int orc = FOIL_OK;
    const char *val = cli_opt_value(argc, argv, &i, "--vocab", &orc, &err);
    if (orc) {
      free(ids);
      return fail(&err);
    }
    if (val) {
      vocab = val;
      continue;
    }
    char *end;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (!*argv[i] || *end || errno || v < 0 || v > INT32_MAX) {
      free(ids);
      foil_err_set(&err, FOIL_EINVAL, "decode: '%s' is not a token id", argv[i]);
      return fail(&err);
    }
    ids[n++] = (int32_t)v;
  }
  if (!vocab) {
    free(ids);
    foil_err_set(&err, FOIL_EINVAL, "decode: --vocab FILE is required");
    return fail(&err);
  }
  tokenizer *t;
  int rc = tokenizer_load(&t, vocab, &err);
  char *text = NULL;
  if (!rc) rc = tokenizer_decode(t, ids, n, &text, &err);
  if (!rc) printf("%s\n", text);
  free(text);
  free(ids);
  tokenizer_destroy(&t);
  return rc ? fail(&err) : FOIL_OK;
}

/* Publishes DIR/NAME atomically (common/fileio.h): a reader, such as a job
 * loading the tokenizer, sees the old file or the new one, never a part. */
static int write_file(const char *dir, const char *name, const char *data, size_t len, foil_err *err) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
    return foil_err_set(err, FOIL_EINVAL, "--out %.200s: the path is too long", dir);
  return foil_write_file_atomic(path, data, len, err);
}

static int cmd_train(int argc, char **argv) {
  foil_err err = {0};
  int vocab_size = 0, min_freq = 2, nspec = 0, nfiles = 0;
  const char *out = NULL, *lm = NULL;
  const char **specials = calloc((size_t)argc + 1, sizeof *specials);
  const char **files = calloc((size_t)argc + 1, sizeof *files);
  int rc = FOIL_OK;
  if (!specials || !files) {
    rc = foil_err_set(&err, FOIL_ENOMEM, "out of memory");
    goto done;
  }
  for (int i = 1, dashdash = 0; i < argc && !rc; i++) {
    const char *v;
    if (dashdash) files[nfiles++] = argv[i];
    else if (!strcmp(argv[i], "--")) dashdash = 1;
    else if ((v = cli_opt_value(argc, argv, &i, "--vocab-size", &rc, &err)))
      rc = int_opt("train", "--vocab-size", v, 1, 1 << 24, &vocab_size, &err);
    else if (!rc && (v = cli_opt_value(argc, argv, &i, "--out", &rc, &err))) out = v;
    else if (!rc && (v = cli_opt_value(argc, argv, &i, "--min-frequency", &rc, &err)))
      rc = int_opt("train", "--min-frequency", v, 1, INT_MAX, &min_freq, &err);
    else if (!rc && (v = cli_opt_value(argc, argv, &i, "--special", &rc, &err))) specials[nspec++] = v;
    else if (!rc && (v = cli_opt_value(argc, argv, &i, "--lm", &rc, &err))) lm = v;
    else if (!rc && argv[i][0] == '-' && argv[i][1])
      rc = foil_err_set(&err, FOIL_EINVAL, "train: unknown option '%s' (see --help; a FILE that starts with '-' goes after `--`)", argv[i]);
    else if (!rc) files[nfiles++] = argv[i];
  }
  if (rc) goto done;
  if (!nspec) specials[nspec++] = "<|endoftext|>";
  if (vocab_size <= 0 || !out || (!nfiles && !lm)) {
    rc = foil_err_set(&err, FOIL_EINVAL, "train: --vocab-size N, --out DIR and at least one FILE (or --lm) are required");
    goto done;
  }
  bpe_trainer *tr = NULL;
  tokenizer *t = NULL;
  if ((rc = bpe_trainer_new(&tr, &err))) goto done;
  if (lm) { /* each document fed whole: its lines are counted as a file's */
    char **docs = NULL;
    size_t nd = 0;
    rc = lmcorpus_read_split(lm, "train", &docs, &nd, &err);
    for (size_t i = 0; i < nd && !rc; i++) rc = bpe_trainer_feed(tr, docs[i], strlen(docs[i]), lm, &err);
    h5io_free_strings(docs, nd);
  }
  for (int i = 0; i < nfiles && !rc; i++) {
    char *data = NULL;
    size_t len;
    if ((rc = foil_read_file(files[i], &data, &len, &err))) break;
    rc = bpe_trainer_feed(tr, data, len, files[i], &err);
    free(data);
  }
  if (!rc) rc = bpe_trainer_train(tr, vocab_size, min_freq, specials, nspec, &t, &err);
  bpe_trainer_destroy(&tr);
  char *vj = NULL, *mt = NULL;
  size_t vl = 0, ml = 0;
  if (!rc) rc = tokenizer_export(t, &vj, &vl, &mt, &ml, &err);
  if (!rc) rc = foil_mkdirs(out, &err); /* parents too: --out foil-data/tokenizers/lm-bpe */
  /* merges.txt first: vocab.json is what a reader (demo-lm.sh, a job's
   * model.tokenizer) looks for, so it appears only once its merges are in place */
  if (!rc) rc = write_file(out, "merges.txt", mt, ml, &err);
  if (!rc) rc = write_file(out, "vocab.json", vj, vl, &err);
  if (!rc)
    fprintf(stderr, "foil tokenizer: %d tokens, %d merges -> %s/vocab.json, %s/merges.txt\n",
            tokenizer_vocab_size(t), tokenizer_n_merges(t), out, out);
  free(vj);
  free(mt);
  tokenizer_destroy(&t);
done:
  free(specials);
  free(files);
  return rc ? fail(&err) : FOIL_OK;
}

int cmd_tokenizer(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? FOIL_EINVAL : FOIL_OK;
  }
  for (int i = 2; i < argc && strcmp(argv[i], "--"); i++) /* after `--`: text */
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return FOIL_OK;
    }
  if (!strcmp(argv[1], "encode")) return cmd_encode(argc - 1, argv + 1);
  if (!strcmp(argv[1], "decode")) return cmd_decode(argc - 1, argv + 1);
  if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
  foil_err err;
  foil_err_set(&err, FOIL_EINVAL, "unknown subcommand '%s' (encode, decode, train; see --help)", argv[1]);
  return fail(&err);
}
