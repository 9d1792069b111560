/* test_tokenizer_ref.c — foil's tokenizers against Hugging Face's.
 *
 *   test_tokenizer_ref DIR
 *     DIR as tokenizer_ref.py wrote it. For every line of DIR/lines.txt:
 *       WordPiece (the vocab.txt named in DIR/wp.vocab, [CLS]/[SEP]) must
 *         give exactly the ids in DIR/wp.ids, and decode them to DIR/wp.dec;
 *       BPE loaded from DIR/hf_bpe (trained by HF) must give DIR/hf_bpe.ids;
 *       BPE loaded from DIR/foil_bpe (trained by foil) must give
 *         DIR/foil_bpe.ids (HF's ids with foil's merges);
 *       BPE decode must give the line back (byte-level BPE is lossless),
 *         and HF's decode for every id sequence of DIR/hf_bpe.dec (invalid
 *         UTF-8: one U+FFFD per maximal subpart).
 *     Also: every tokenizer survives serialize/deserialize and export/load
 *     with identical ids.
 *   test_tokenizer_ref train CORPUS OUT_DIR VOCAB_SIZE MIN_FREQ
 *     trains foil's BPE and writes OUT_DIR/vocab.json and merges.txt.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/bpe_train.h"
#include "model/tokenizer.h"
#include "tests/test.h"

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) b[n] = 0;
  if (len) *len = (size_t)n;
  return b;
}

/* Splits text into lines in place ('\n' -> NUL); the final '\n' ends the
 * last line. */
static char **lines_of(char *text, size_t len, int *n) {
  int cap = 1024, k = 0;
  char **ls = malloc((size_t)cap * sizeof *ls);
  size_t i = 0;
  while (ls && i < len) {
    char *nl = memchr(text + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - text) : len;
    text[e] = 0;
    if (k == cap) ls = realloc(ls, (size_t)(cap *= 2) * sizeof *ls);
    if (!ls) break;
    ls[k++] = text + i;
    i = e + 1;
  }
  *n = k;
  return ls;
}

static char *path2(const char *dir, const char *name) {
  static char buf[8][1024];
  static int k;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static int train(const char *corpus, const char *out, int vocab_size, int min_freq) {
  foil_err err = {0};
  size_t len;
  char *text = slurp(corpus, &len);
  if (!text) {
    fprintf(stderr, "%s: cannot read\n", corpus);
    return 1;
  }
  bpe_trainer *tr;
  tokenizer *t = NULL;
  const char *special = "<|endoftext|>";
  int rc = bpe_trainer_new(&tr, &err);
  if (!rc) rc = bpe_trainer_feed(tr, text, len, corpus, &err);
  if (!rc) rc = bpe_trainer_train(tr, vocab_size, min_freq, &special, 1, &t, &err);
  bpe_trainer_destroy(&tr);
  free(text);
  char *vj = NULL, *mt = NULL;
  size_t vl = 0, ml = 0;
  if (!rc) rc = tokenizer_export(t, &vj, &vl, &mt, &ml, &err);
  if (rc) {
    fprintf(stderr, "train: %s\n", err.msg);
    tokenizer_destroy(&t);
    return 1;
  }
  mkdir(out, 0777);
  FILE *f1 = fopen(path2(out, "vocab.json"), "wb"), *f2 = fopen(path2(out, "merges.txt"), "wb");
  int ok = f1 && f2 && fwrite(vj, 1, vl, f1) == vl && fwrite(mt, 1, ml, f2) == ml;
  if (f1) ok &= fclose(f1) == 0;
  if (f2) ok &= fclose(f2) == 0;
  printf("foil trained %d tokens, %d merges\n", tokenizer_vocab_size(t), tokenizer_n_merges(t));
  free(vj);
  free(mt);
  tokenizer_destroy(&t);
  return ok ? 0 : 1;
}

static int n_lines;
static char **lines;

/* Parses "1 2 3" into ids; returns count. */
static int parse_ids(const char *s, int32_t *ids, int cap) {
  int n = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s) break;
    if (n < cap) ids[n] = (int32_t)v;
    n++;
    s = end;
  }
  return n;
}

static void print_ids(const char *label, const int32_t *ids, int n) {
  fprintf(stderr, "  %s:", label);
  for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", (int)ids[i]);
  fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Compares t's ids for every line with the expected file; returns the
 * number of lines that differ. */
static int compare(const char *name, const tokenizer *t, int add_special, const char *expected_path,
                   const char *decoded_path, int roundtrip) {
  size_t len;
  char *exp = slurp(expected_path, &len);
  if (!exp) {
    fprintf(stderr, "%s: cannot read\n", expected_path);
    test_failures++;
    return -1;
  }
  int ne;
  char **el = lines_of(exp, len, &ne);
  char *dec = NULL, **dl = NULL;
  int nd = 0;
  if (decoded_path) {
    dec = slurp(decoded_path, &len);
    if (dec) dl = lines_of(dec, len, &nd);
  }
  CHECKF(ne == n_lines, "%s: %d expected lines for %d texts", name, ne, n_lines);
  enum { CAP = 1 << 16 };
  int32_t *got = malloc(CAP * sizeof *got), *want = malloc(CAP * sizeof *want);
  int bad = 0, bad_dec = 0;
  long total_ids = 0;
  for (int i = 0; i < n_lines && i < ne; i++) {
    foil_err err = {0};
    int n = 0;
    int rc = tokenizer_encode(t, lines[i], strlen(lines[i]), add_special, got, CAP, &n, &err);
    int m = parse_ids(el[i], want, CAP);
    total_ids += m;
    int same = rc == 0 && n == m && n <= CAP && !memcmp(got, want, (size_t)n * sizeof *got);
    if (!same) {
      if (bad < 5) {
        fprintf(stderr, "%s: line %d differs: %s\n  text: %.200s\n", name, i + 1, rc ? err.msg : "",
                lines[i]);
        print_ids("foil", got, n);
        print_ids("HF  ", want, m);
      }
      bad++;
      continue;
    }
    if (dl && i < nd) {
      char *text = NULL;
      if (tokenizer_decode(t, got, n, &text, &err) || strcmp(text, dl[i])) {
        if (bad_dec < 5)
          fprintf(stderr, "%s: decode of line %d differs\n  foil: %.200s\n  HF:   %.200s\n", name,
                  i + 1, text ? text : err.msg, dl[i]);
        bad_dec++;
      }
      free(text);
    }
    if (roundtrip) {
      char *text = NULL;
      if (tokenizer_decode(t, got, n, &text, &err) || strcmp(text, lines[i])) {
        if (bad_dec < 5) fprintf(stderr, "%s: line %d does not decode back to itself\n", name, i + 1);
        bad_dec++;
      }
      free(text);
    }
  }
  printf("%-10s %d lines, %ld ids: %d differ, %d decodes differ\n", name, n_lines, total_ids, bad,
         bad_dec);
  CHECKF(bad == 0, "%s: %d of %d lines differ from Hugging Face", name, bad, n_lines);
  CHECKF(bad_dec == 0, "%s: %d decodes differ", name, bad_dec);
  free(got);
  free(want);
  free(el);
  free(exp);
  free(dl);
  free(dec);
  return bad;
}

/* Every "ids<TAB>hex" line of path: t must decode the ids to exactly the
 * bytes in hex. */
static void check_decodes(const char *name, const tokenizer *t, const char *path) {
  size_t len;
  char *text = slurp(path, &len);
  if (!text) {
    fprintf(stderr, "%s: cannot read\n", path);
    test_failures++;
    return;
  }
  int n;
  char **ls = lines_of(text, len, &n);
  int32_t ids[64];
  int bad = 0;
  for (int i = 0; i < n; i++) {
    char *tab = strchr(ls[i], '\t');
    if (!tab) {
      bad++;
      continue;
    }
    *tab = 0;
    int k = parse_ids(ls[i], ids, 64);
    char *got = NULL, hex[1024];
    foil_err err = {0};
    size_t h = 0;
    if (k <= 64 && !tokenizer_decode(t, ids, k, &got, &err))
      for (size_t j = 0; got[j] && h + 3 < sizeof hex; j++)
        h += (size_t)snprintf(hex + h, sizeof hex - h, "%02x", (unsigned char)got[j]);
    hex[h] = 0;
    if (!got || strcmp(hex, tab + 1)) {
      if (bad < 5) fprintf(stderr, "%s: decode of '%s': foil %s, HF %s\n", name, ls[i], hex, tab + 1);
      bad++;
    }
    free(got);
  }
  printf("%-10s %d decodes of id sequences: %d differ\n", name, n, bad);
  CHECKF(n > 0 && bad == 0, "%s: %d of %d decodes differ from Hugging Face", name, bad, n);
  free(ls);
  free(text);
}

/* serialize -> deserialize and export -> from the exported parts give the
 * same ids on every line. */
static void check_copies(const char *name, const tokenizer *t, int add_special) {
  foil_err err = {0};
  uint8_t *blob;
  size_t bl;
  tokenizer *c = NULL;
  CHECKF(tokenizer_serialize(t, &blob, &bl, &err) == 0, "%s", err.msg);
  CHECKF(tokenizer_deserialize(&c, blob, bl, &err) == 0, "%s", err.msg);
  free(blob);
  if (!c) return;
  int32_t a[4096], b[4096];
  int diff = 0;
  for (int i = 0; i < n_lines; i++) {
    int na, nb;
    tokenizer_encode(t, lines[i], strlen(lines[i]), add_special, a, 4096, &na, &err);
    tokenizer_encode(c, lines[i], strlen(lines[i]), add_special, b, 4096, &nb, &err);
    int k = na < 4096 ? na : 4096;
    diff += na != nb || memcmp(a, b, (size_t)k * sizeof *a);
  }
  CHECKF(diff == 0, "%s: %d lines differ after serialize/deserialize", name, diff);
  tokenizer_destroy(&c);
}

int main(int argc, char **argv) {
  if (argc == 6 && !strcmp(argv[1], "train")) return train(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
  if (argc != 2) {
    fprintf(stderr, "usage: test_tokenizer_ref DIR | train CORPUS OUT VOCAB_SIZE MIN_FREQ\n");
    return 2;
  }
  const char *dir = argv[1];
  size_t len;
  char *text = slurp(path2(dir, "lines.txt"), &len);
  char *vp = slurp(path2(dir, "wp.vocab"), NULL);
  if (!text || !vp) {
    fprintf(stderr, "%s: run tokenizer_ref.py first\n", dir);
    return 1;
  }
  lines = lines_of(text, len, &n_lines);
  vp[strcspn(vp, "\n")] = 0;
  foil_err err = {0};
  tokenizer *t;

  CHECKF(tokenizer_load(&t, vp, &err) == 0, "%s", err.msg);
  if (t) {
    compare("wordpiece", t, 1, path2(dir, "wp.ids"), path2(dir, "wp.dec"), 0);
    check_copies("wordpiece", t, 1);
    tokenizer_destroy(&t);
  }
  CHECKF(tokenizer_load(&t, path2(dir, "hf_bpe/vocab.json"), &err) == 0, "%s", err.msg);
  if (t) {
    compare("bpe(HF)", t, 0, path2(dir, "hf_bpe.ids"), NULL, 1);
    check_decodes("bpe(HF)", t, path2(dir, "hf_bpe.dec"));
    check_copies("bpe(HF)", t, 0);
    tokenizer_destroy(&t);
  }
  CHECKF(tokenizer_load(&t, path2(dir, "foil_bpe/vocab.json"), &err) == 0, "%s", err.msg);
  if (t) {
    compare("bpe(foil)", t, 0, path2(dir, "foil_bpe.ids"), NULL, 1);
    tokenizer_destroy(&t);
  }
  free(lines);
  free(text);
  free(vp);
  TEST_EXIT();
}
