/* test_tokenizer.c — WordPiece and byte-level BPE edge cases, training,
 * (de)serialization, HDF5 embedding and malformed inputs. (Exactness
 * against Hugging Face on real text: tests/reference/test_tokenizer_ref.c.) */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/bpe.h"
#include "model/bpe_train.h"
#include "model/tokenizer.h"
#include "storage/tokenizer_h5.h"
#include "tests/test.h"

static char dir[512];

static const char *path_in(const char *name) {
  static char buf[4][700];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static void write_text(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(text, 1, len, f);
  fclose(f);
}

/* ids of text as a string "1 2 3" (static buffer) */
static const char *enc(const tokenizer *t, const char *text, int special) {
  static char out[4096];
  int32_t ids[512];
  int n = 0;
  foil_err err = {0};
  if (tokenizer_encode(t, text, strlen(text), special, ids, 512, &n, &err)) {
    snprintf(out, sizeof out, "error: %s", err.msg);
    return out;
  }
  size_t at = 0;
  out[0] = 0;
  for (int i = 0; i < n && i < 512; i++)
    at += (size_t)snprintf(out + at, sizeof out - at, i ? " %d" : "%d", (int)ids[i]);
  return out;
}

#define CHECK_ENC(t, text, special, want)                                         \
  do {                                                                           \
    const char *got_ = enc(t, text, special);                                    \
    CHECKF(!strcmp(got_, want), "'%s' -> '%s', want '%s'", text, got_, want);  \
  } while (0)

/* ids: 0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK] 5 hello 6 world 7 , 8 !
 * 9 un 10 ##aff 11 ##able 12 cafe 13 naive 14 中 15 文 16 a 17 ##a
 * 18 ##b 19 . 20 i 21 ##stanbul 22 x */
static const char *WP_VOCAB =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n,\n!\nun\n##aff\n##able\ncafe\nnaive\n"
    "\xe4\xb8\xad\n\xe6\x96\x87\na\n##a\n##b\n.\ni\n##stanbul\nx\n";

static tokenizer *wp_tok(void) {
  write_text(path_in("vocab.txt"), WP_VOCAB, strlen(WP_VOCAB));
  tokenizer *t = NULL;
  foil_err err = {0};
  CHECKF(tokenizer_load(&t, path_in("vocab.txt"), &err) == 0, "%s", err.msg);
  return t;
}

static void test_wordpiece(void) {
  tokenizer *t = wp_tok();
  if (!t) return;
  CHECK(tokenizer_kind(t) == TOKENIZER_WORDPIECE && tokenizer_vocab_size(t) == 23);
  CHECK(tokenizer_pad_id(t) == 0);
  CHECK_ENC(t, "Hello, world!", 1, "2 5 7 6 8 3");
  CHECK_ENC(t, "Hello, world!", 0, "5 7 6 8");
  CHECK_ENC(t, "unaffable", 1, "2 9 10 11 3");
  CHECK_ENC(t, "unaffablex", 1, "2 1 3");                /* no split: the whole word is [UNK] */
  CHECK_ENC(t, "", 1, "2 3");                            /* empty */
  CHECK_ENC(t, "", 0, "");
  CHECK_ENC(t, " \t\n\r\xe3\x80\x80 ", 1, "2 3");        /* only white space (incl. U+3000) */
  CHECK_ENC(t, "Caf\xc3\xa9 NA\xc3\x8fVE", 1, "2 12 13 3"); /* accents stripped, lower-cased */
  CHECK_ENC(t, "Cafe\xcc\x81", 1, "2 12 3");                /* combining acute dropped */
  CHECK_ENC(t, "\xc4\xb0stanbul", 1, "2 20 21 3");          /* U+0130 -> i */
  CHECK_ENC(t, "x\xe4\xb8\xad\xe6\x96\x87x", 1, "2 22 14 15 22 3"); /* CJK split out */
  CHECK_ENC(t, "\xe4\xb8\x80", 1, "2 1 3");                 /* CJK not in vocab */
  CHECK_ENC(t, "\xf0\x9f\x98\x80 hello", 1, "2 1 5 3");     /* emoji: [UNK] */
  CHECK_ENC(t, "hel\xe2\x80\x8blo\x01", 1, "2 5 3");        /* ZWSP (Cf) and controls dropped */
  CHECK_ENC(t, "x[CLS]x [MASK]", 1, "2 22 2 22 4 3");       /* specials in the text */
  CHECK_ENC(t, "x.x", 1, "2 22 19 22 3");
  /* 100 characters split, 101 is [UNK] */
  char word[200];
  memset(word, 'a', 100);
  word[100] = 0;
  const char *got = enc(t, word, 0);
  CHECKF(!strncmp(got, "16 17 17", 8) && strlen(got) == 2 + 99 * 3, "%s", got);
  memset(word, 'a', 101);
  word[101] = 0;
  CHECK_ENC(t, word, 1, "2 1 3");
  CHECK_ENC(t, "ab", 1, "2 16 18 3");
  tokenizer_destroy(&t);
  CHECK(t == NULL);
}

/* Characters whose class changed after Unicode 8 follow HF's older
 * tables (tok_unicode_hf.h), not utf8proc's; tests/reference checks all. */
static void test_wordpiece_hf_classes(void) {
  tokenizer *t = wp_tok();
  if (!t) return;
  CHECK_ENC(t, "a\xe0\xa2\x98" "b", 1, "2 1 3");     /* U+0898: Mn since 14, kept */
  CHECK_ENC(t, "a\xe2\xb9\x9d" "b", 1, "2 1 3");     /* U+2E5D: Pd since 14, no split */
  CHECK_ENC(t, "a\xe0\xa2\x90" "b", 1, "2 1 3");     /* U+0890: Cf since 14, kept */
  CHECK_ENC(t, "a\xe1\x9c\xb4" "b", 1, "2 16 18 3"); /* U+1734: Mn in 8 (Mc now), stripped */
  CHECK_ENC(t, "a\xe1\x99\xad" "b", 1, "2 16 1 1 3"); /* U+166D: Po in 8 (So now), split */
  tokenizer_destroy(&t);
}

static void test_truncation(void) {
  tokenizer *t = wp_tok();
  if (!t) return;
  int32_t ids[8];
  int n = 0;
  foil_err err = {0};
  const char *text = "hello world hello world hello";
  CHECK(tokenizer_encode(t, text, strlen(text), 1, ids, 4, &n, &err) == 0);
  CHECK(n == 7 && ids[0] == 2 && ids[1] == 5 && ids[2] == 6 && ids[3] == 3);
  CHECK(tokenizer_encode(t, text, strlen(text), 1, ids, 2, &n, &err) == 0);
  CHECK(n == 7 && ids[0] == 2 && ids[1] == 3);
  CHECK(tokenizer_encode(t, text, strlen(text), 0, ids, 3, &n, &err) == 0);
  CHECK(n == 5 && ids[0] == 5 && ids[2] == 5);
  CHECK(tokenizer_encode(t, text, strlen(text), 1, NULL, 0, &n, &err) == 0 && n == 7); /* count only */
  /* truncation inside a word that turns into [UNK] */
  CHECK(tokenizer_encode(t, "hello unaffablex", 16, 1, ids, 4, &n, &err) == 0);
  CHECK(n == 4 && ids[0] == 2 && ids[1] == 5 && ids[2] == 1 && ids[3] == 3);
  tokenizer_destroy(&t);
}

static void test_invalid_utf8(void) {
  tokenizer *t = wp_tok();
  if (!t) return;
  int32_t ids[16];
  int n;
  foil_err err = {0};
  const char *bad[] = {("ab\xff" "cd"), "ab\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK(tokenizer_encode(t, bad[i], strlen(bad[i]), 1, ids, 16, &n, &err) == FOIL_EINVAL);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
  }
  CHECK(tokenizer_encode(t, "ab\xff" "cd", 5, 1, ids, 16, &n, &err) == FOIL_EINVAL &&
        strstr(err.msg, "offset 2"));
  /* NUL is text too (dropped by clean-up) */
  CHECK(tokenizer_encode(t, "hel\0lo", 6, 1, ids, 16, &n, &err) == 0 && n == 3 && ids[1] == 5);
  tokenizer_destroy(&t);
}

static void test_decode(void) {
  tokenizer *t = wp_tok();
  if (!t) return;
  int32_t ids[] = {2, 5, 7, 6, 8, 9, 10, 11, 19, 3, 0};
  char *s = NULL;
  foil_err err = {0};
  CHECK(tokenizer_decode(t, ids, 11, &s, &err) == 0 && s && !strcmp(s, "hello, world! unaffable."));
  free(s);
  int32_t bad[] = {5, 23};
  CHECK(tokenizer_decode(t, bad, 2, &s, &err) == FOIL_EINVAL && s == NULL && strstr(err.msg, "23"));
  CHECK(tokenizer_decode(t, ids, 0, &s, &err) == 0 && !strcmp(s, ""));
  free(s);
  tokenizer_destroy(&t);
}

static void test_pretok(void) {
  const char *cases[][12] = {
      {"I'm  here\n\nok  ", "I", "'m", " ", " here", "\n", "\n", "ok", "  ", NULL},
      {"x  \ty3.5z's 'RE ''", "x", "  ", "\t", "y", "3", ".", "5", "z", "'s", NULL},
      {"a\xe3\x80\x80" "b  ", "a", "\xe3\x80\x80", "b", "  ", NULL},
      {" caf\xc3\xa9 \xd9\xa1\xd9\xa2!?", " caf\xc3\xa9", " \xd9\xa1\xd9\xa2", "!?", NULL},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    const char *s = cases[c][0];
    size_t len = strlen(s), i = 0;
    int k = 1;
    while (i < len && cases[c][k]) {
      size_t e = bpe_pretok_next((const uint8_t *)s, len, i);
      CHECKF(e - i == strlen(cases[c][k]) && !memcmp(s + i, cases[c][k], e - i),
             "case %zu piece %d: got '%.*s' want '%s'", c, k, (int)(e - i), s + i, cases[c][k]);
      i = e;
      k++;
    }
  }
}

static const char *TRAIN_TEXT =
    "low lower lowest low low lower newer newest wider wide\n"
    "the lowest newer wide low, low; low! caf\xc3\xa9 caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe6\x97\xa5\xe6\x9c\xac\n";

static tokenizer *trained(int vocab_size) {
  bpe_trainer *tr = NULL;
  tokenizer *t = NULL;
  foil_err err = {0};
  const char *sp = "<|endoftext|>";
  CHECKF(bpe_trainer_new(&tr, &err) == 0, "%s", err.msg);
  for (int r = 0; r < 3; r++)
    CHECKF(bpe_trainer_feed(tr, TRAIN_TEXT, strlen(TRAIN_TEXT), "train.txt", &err) == 0, "%s", err.msg);
  CHECKF(bpe_trainer_train(tr, vocab_size, 2, &sp, 1, &t, &err) == 0, "%s", err.msg);
  bpe_trainer_destroy(&tr);
  CHECK(tr == NULL);
  return t;
}

static void test_bpe_train_encode(void) {
  tokenizer *t = trained(300);
  if (!t) return;
  CHECK(tokenizer_kind(t) == TOKENIZER_BPE && tokenizer_vocab_size(t) <= 300);
  CHECK(tokenizer_vocab_size(t) == 257 + tokenizer_n_merges(t));
  CHECK(tokenizer_pad_id(t) == 0 && !strcmp(tokenizer_token(t, 0), "<|endoftext|>"));
  CHECK(!strcmp(tokenizer_token(t, 1), "!")); /* byte alphabet in code point order */
  /* most frequent pair first: "l o" / "o w" / "Ġ l" ... counts tie-break by ids */
  const char *m0 = tokenizer_merge(t, 0);
  CHECKF(m0 && strchr(m0, ' '), "%s", m0 ? m0 : "(none)");
  /* frequent words become single tokens */
  int32_t ids[64];
  int n = 0;
  foil_err err = {0};
  CHECK(tokenizer_encode(t, " lowest", 7, 0, ids, 64, &n, &err) == 0 && n == 1);
  CHECK(tokenizer_encode(t, "", 0, 0, ids, 64, &n, &err) == 0 && n == 0);
  /* round trips: emoji, CJK, controls, bytes the training never saw */
  const char *texts[] = {"lowest newer \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd!", "",
                         "   ", "\t\n\x01\x7f \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e caf\xc3\xa9",
                         "x's 'LL we'd"};
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    size_t len = strlen(texts[i]);
    int32_t big[256];
    char *back = NULL;
    CHECK(tokenizer_encode(t, texts[i], len, 0, big, 256, &n, &err) == 0 && n <= 256);
    CHECK(tokenizer_decode(t, big, n, &back, &err) == 0 && back && !strcmp(back, texts[i]));
    free(back);
  }
  /* decoding half of a multi-byte character gives U+FFFD, not bad UTF-8 */
  CHECK(tokenizer_encode(t, "\xe2\x82\xac", 3, 0, ids, 64, &n, &err) == 0);
  char *half = NULL;
  if (n >= 2) {
    CHECK(tokenizer_decode(t, ids, 1, &half, &err) == 0 && half && !strcmp(half, "\xef\xbf\xbd"));
    free(half);
  }
  /* invalid UTF-8 in training text names file and line */
  bpe_trainer *tr = NULL;
  bpe_trainer_new(&tr, &err);
  CHECK(bpe_trainer_feed(tr, "ok\nfine\nbad \xff\n", 13, "x.txt", &err) == FOIL_EINVAL &&
        strstr(err.msg, "x.txt:3"));
  tokenizer *none = NULL;
  CHECK(bpe_trainer_train(tr, 100, 2, NULL, 0, &none, &err) == FOIL_EINVAL && !none); /* < 256 */
  bpe_trainer_destroy(&tr);
  tokenizer_destroy(&t);
}

static void test_export_load(void) {
  tokenizer *t = trained(280);
  if (!t) return;
  char *vj, *mt;
  size_t vl, ml;
  foil_err err = {0};
  CHECK(tokenizer_export(t, &vj, &vl, &mt, &ml, &err) == 0);
  CHECK(vj[0] == '{' && strstr(vj, "\"\\\"\":") && !strncmp(mt, "#version: 0.2\n", 14));
  write_text(path_in("vocab.json"), vj, vl);
  write_text(path_in("merges.txt"), mt, ml);
  free(vj);
  free(mt);
  tokenizer *u = NULL;
  CHECKF(tokenizer_load(&u, path_in("vocab.json"), &err) == 0, "%s", err.msg);
  if (u) {
    char a[4096];
    snprintf(a, sizeof a, "%s", enc(t, TRAIN_TEXT, 0));
    CHECK(!strcmp(a, enc(u, TRAIN_TEXT, 0)));
    CHECK(tokenizer_n_merges(u) == tokenizer_n_merges(t));
  }
  tokenizer_destroy(&u);
  tokenizer_destroy(&t);
}

static void check_blob(const tokenizer *t, const char *text, int special) {
  uint8_t *blob = NULL;
  size_t len = 0;
  foil_err err = {0};
  tokenizer *c = NULL;
  CHECK(tokenizer_serialize(t, &blob, &len, &err) == 0 && blob && len > 20);
  CHECKF(tokenizer_deserialize(&c, blob, len, &err) == 0, "%s", err.msg);
  if (c) {
    char a[4096];
    snprintf(a, sizeof a, "%s", enc(t, text, special));
    CHECK(!strcmp(a, enc(c, text, special)));
    CHECK(tokenizer_kind(c) == tokenizer_kind(t) && tokenizer_vocab_size(c) == tokenizer_vocab_size(t));
  }
  tokenizer_destroy(&c);
  /* every truncation and a flipped magic are refused cleanly */
  int refused = 0;
  for (size_t l = 0; l < len; l++) {
    refused += tokenizer_deserialize(&c, blob, l, &err) != 0 && c == NULL;
    tokenizer_destroy(&c);
  }
  CHECK(refused == (int)len);
  blob[0] ^= 1;
  CHECK(tokenizer_deserialize(&c, blob, len, &err) == FOIL_EINVAL && c == NULL);
  free(blob);
}

static void test_serialize(void) {
  tokenizer *t = wp_tok();
  if (t) check_blob(t, "Hello, world! unaffable caf\xc3\xa9", 1);
  tokenizer_destroy(&t);
  t = trained(300);
  if (t) check_blob(t, TRAIN_TEXT, 0);
  tokenizer_destroy(&t);
}

static void test_h5(void) {
  tokenizer *w = wp_tok(), *b = trained(300);
  if (!w || !b) goto out;
  foil_err err = {0};
  h5io *f = NULL;
  const char *p = path_in("tok.h5");
  CHECKF(h5io_create(&f, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  CHECKF(tokenizer_h5_write(f, "tokenizer", w, &err) == 0, "%s", err.msg);
  CHECKF(tokenizer_h5_write(f, "other/tokenizer", b, &err) == 0, "%s", err.msg);
  CHECKF(h5io_publish(&f, &err) == 0, "%s", err.msg);
  CHECKF(h5io_open(&f, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  if (!f) goto out;
  char **strs;
  size_t n;
  CHECK(h5io_read_strings(f, "tokenizer/vocab", &strs, &n, &err) == 0 && n == 23 &&
        !strcmp(strs[5], "hello"));
  h5io_free_strings(strs, n);
  char *kind = NULL;
  CHECK(h5io_get_attr_str(f, "other/tokenizer", "kind", &kind, &err) == 0 && !strcmp(kind, "bpe"));
  free(kind);
  tokenizer *w2 = NULL, *b2 = NULL, *none = NULL;
  CHECKF(tokenizer_h5_read(f, "tokenizer", &w2, &err) == 0, "%s", err.msg);
  CHECKF(tokenizer_h5_read(f, "other/tokenizer", &b2, &err) == 0, "%s", err.msg);
  CHECK(tokenizer_h5_read(f, "nothing", &none, &err) == FOIL_ENOTFOUND && none == NULL);
  if (w2) {
    char a[4096];
    snprintf(a, sizeof a, "%s", enc(w, "Hello, world!", 1));
    CHECK(!strcmp(a, enc(w2, "Hello, world!", 1)));
  }
  if (b2) {
    char a[4096];
    snprintf(a, sizeof a, "%s", enc(b, TRAIN_TEXT, 0));
    CHECK(!strcmp(a, enc(b2, TRAIN_TEXT, 0)));
  }
  tokenizer_destroy(&w2);
  tokenizer_destroy(&b2);
  h5io_close(&f);
out:
  tokenizer_destroy(&w);
  tokenizer_destroy(&b);
}

/* A file's load must fail with code and a message holding want. */
static void expect_load_error(const char *file, const char *content, int code, const char *want) {
  if (content) write_text(path_in(file), content, strlen(content));
  tokenizer *t = NULL;
  foil_err err = {0};
  int rc = tokenizer_load(&t, path_in(file), &err);
  CHECKF(rc == code && t == NULL && strstr(err.msg, want), "%s: rc %d msg '%s', want '%s'", file, rc,
         err.msg, want);
  tokenizer_destroy(&t);
}

static void test_malformed(void) {
  expect_load_error("missing.txt", NULL, FOIL_ENOTFOUND, "missing.txt");
  expect_load_error("v1.txt", "[UNK]\na\n\nb\n", FOIL_EINVAL, "v1.txt:3: empty line");
  expect_load_error("v2.txt", "[UNK]\na\xff\n", FOIL_EINVAL, "v2.txt:2: invalid UTF-8");
  expect_load_error("v3.txt", "[UNK]\na\nb\na\n", FOIL_EINVAL, "v3.txt:4: token 'a' appears twice");
  expect_load_error("v4.txt", "a\nb\n", FOIL_EINVAL, "no [UNK]");
  expect_load_error("v5.txt", "[UNK]\na b\n", FOIL_EINVAL, "v5.txt:2");
  expect_load_error("v6.txt", "", FOIL_EINVAL, "no tokens");
  /* BPE: vocab.json + merges.txt in a directory of their own */
  const char *sub = path_in("bpe1");
  char cmd[900];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", sub);
  CHECK(system(cmd) == 0);
  write_text(path_in("bpe1/vocab.json"), "{\"a\":0,\"b\":1,\"ab\":2}", 21);
  expect_load_error("bpe1/vocab.json", NULL, FOIL_ENOTFOUND, "merges.txt");
  write_text(path_in("bpe1/merges.txt"), "#version: 0.2\na b\nab c\n", 23);
  expect_load_error("bpe1/vocab.json", NULL, FOIL_EINVAL, "merges.txt:3: token 'c'");
  write_text(path_in("bpe1/merges.txt"), "#version: 0.2\na b\nab\n", 21);
  expect_load_error("bpe1/vocab.json", NULL, FOIL_EINVAL, "merges.txt:3");
  write_text(path_in("bpe1/merges.txt"), "b a\n", 4);
  expect_load_error("bpe1/vocab.json", NULL, FOIL_EINVAL, "merges.txt:1");
  expect_load_error("bpe1/vocab.json", "{\"a\":0,\"b\":1,", FOIL_EINVAL, "vocab.json:1");
  expect_load_error("bpe1/vocab.json", "{\n\"a\":0,\n\"b\":3\n}", FOIL_EINVAL, "'b'");
  expect_load_error("bpe1/vocab.json", "{\"a\":0,\"b\":\"x\"}", FOIL_EINVAL, "'b'");
  expect_load_error("bpe1/vocab.json", "[1,2]", FOIL_EINVAL, "vocab.json");
  write_text(path_in("bpe1/merges.txt"), "a b\n", 4);
  expect_load_error("bpe1/vocab.json", "{\"a\":0,\"b\":1,\"a\":2}", FOIL_EINVAL, "'a'");
  /* and one that loads: merges.txt with CRLF line ends */
  write_text(path_in("bpe1/merges.txt"), "#version: 0.2\r\na b\r\n", 20);
  write_text(path_in("bpe1/vocab.json"), "{\"a\":0,\"b\":1,\"ab\":2}", 21);
  tokenizer *t = NULL;
  foil_err err = {0};
  CHECKF(tokenizer_load(&t, path_in("bpe1/vocab.json"), &err) == 0, "%s", err.msg);
  if (t) CHECK_ENC(t, "abab", 0, "2 2");
  tokenizer_destroy(&t);
  /* from_strings checks */
  const char *v[] = {"a", "b"}, *m[] = {"a b"};
  CHECK(tokenizer_from_strings(&t, TOKENIZER_BPE, v, 2, m, 1, &err) == FOIL_EINVAL && !t &&
        strstr(err.msg, "merge 1"));
  CHECK(tokenizer_from_strings(&t, 7, v, 2, NULL, 0, &err) == FOIL_EINVAL && !t);
  CHECK(tokenizer_from_strings(&t, TOKENIZER_WORDPIECE, v, 0, NULL, 0, &err) == FOIL_EINVAL && !t);
}

/* ---- byte-level BPE against Hugging Face's rules ------------------------- */

/* A BPE over the 256 byte tokens (id b = byte b), then "<|endoftext|>"
 * (id 256), then the merged tokens of merges[0..nm) ("left right" over
 * a/b text) in order of first appearance. Returns NULL on failure. */
static tokenizer *byte_bpe(const char *const *merges, int nm) {
  char *vocab[256 + 1 + 64];
  char bytes[256][4];
  int nv = 0;
  for (int b = 0; b < 256; b++) {
    int32_t cp = bpe_byte_to_cp((uint8_t)b);
    char *o = bytes[b];
    if (cp < 0x80) {
      o[0] = (char)cp;
      o[1] = 0;
    } else {
      o[0] = (char)(0xC0 | (cp >> 6));
      o[1] = (char)(0x80 | (cp & 0x3F));
      o[2] = 0;
    }
    vocab[nv++] = o;
  }
  vocab[nv++] = "<|endoftext|>";
  char merged[64][32];
  for (int i = 0; i < nm && nv < (int)(sizeof vocab / sizeof *vocab); i++) {
    const char *sp = strchr(merges[i], ' ');
    snprintf(merged[i], sizeof merged[i], "%.*s%s", (int)(sp - merges[i]), merges[i], sp + 1);
    int dup = 0;
    for (int j = 257; j < nv; j++) dup |= !strcmp(vocab[j], merged[i]);
    if (!dup) vocab[nv++] = merged[i];
  }
  tokenizer *t = NULL;
  foil_err err = {0};
  CHECKF(tokenizer_from_strings(&t, TOKENIZER_BPE, (const char *const *)vocab, nv, merges, nm,
                                &err) == 0,
         "%s", err.msg);
  return t;
}

/* Decoding bytes that are not UTF-8: one U+FFFD per maximal subpart, as
 * Rust's String::from_utf8_lossy (HF's ByteLevel decoder). Expected values
 * from Python's bytes.decode("utf-8", "replace"), which follows the same rule. */
static void test_bpe_decode_invalid(void) {
  tokenizer *t = byte_bpe(NULL, 0);
  if (!t) return;
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"x\xf0\x9f\x98", "x\xef\xbf\xbd"}, /* a 4-byte character cut after 3 */
      {"x\xf0\x9f", "x\xef\xbf\xbd"},
      {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
      {"\xe0\x80", "\xef\xbf\xbd\xef\xbf\xbd"}, /* E0 needs A0..BF next */
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
      {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xf4\x8f\x80", "\xef\xbf\xbd"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xe1\x80" "A\x80\xbf", "\xef\xbf\xbd" "A\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xf1\x80\x80\xe1", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    int32_t ids[16];
    int n = 0;
    for (const char *p = cases[c].in; *p; p++) ids[n++] = (uint8_t)*p;
    char *s = NULL;
    foil_err err = {0};
    CHECKF(tokenizer_decode(t, ids, n, &s, &err) == 0 && s && !strcmp(s, cases[c].want),
           "case %zu: decoded to '%s'", c, s ? s : err.msg);
    free(s);
  }
  tokenizer_destroy(&t);
}

/* A merge listed twice takes its last rank (HF's merge map overwrites). */
static void test_bpe_duplicate_merge(void) {
  const char *v[] = {"a", "b", "c", "ab", "bc"}, *m[] = {"a b", "b c", "a b"};
  tokenizer *t = NULL;
  foil_err err = {0};
  CHECKF(tokenizer_from_strings(&t, TOKENIZER_BPE, v, 5, m, 3, &err) == 0, "%s", err.msg);
  if (t) CHECK_ENC(t, "abc", 0, "0 4"); /* HF: ['a', 'bc'] */
  tokenizer_destroy(&t);
}

/* The end-of-text token is split out of the raw text before
 * pre-tokenization, as HF's added special tokens are. */
static void test_bpe_special_in_text(void) {
  const char *m[] = {"a b", "c d"};
  tokenizer *t = byte_bpe(m, 2);
  if (!t) return;
  CHECK_ENC(t, "ab<|endoftext|>cd", 0, "257 256 258");
  CHECK_ENC(t, "<|endoftext|><|endoftext|>", 0, "256 256");
  CHECK_ENC(t, "<|endoftext|", 0, "60 124 101 110 100 111 102 116 101 120 116 124");
  CHECK_ENC(t, " <|endoftext|> a", 0, "32 256 32 97");
  /* truncation counts it like any id */
  int32_t ids[2];
  int n = 0;
  foil_err err = {0};
  CHECK(tokenizer_encode(t, "ab<|endoftext|>cd", 17, 0, ids, 2, &n, &err) == 0 && n == 3 &&
        ids[0] == 257 && ids[1] == 256);
  tokenizer_destroy(&t);
}

/* Merging long words (a heap over linked symbols) gives what the naive
 * rule gives: repeatedly merge the lowest-ranked adjacent pair, leftmost
 * among equals. The naive rule here works on strings, looking merges up
 * by linear scan, last rank winning. */
static int naive_bpe(const char *const *merges, int nm, const char *w, char (*sym)[32]) {
  int k = 0;
  for (; w[k]; k++) {
    sym[k][0] = w[k];
    sym[k][1] = 0;
  }
  for (;;) {
    int best = -1, at = -1;
    for (int i = 0; i + 1 < k; i++) {
      char pair[80];
      snprintf(pair, sizeof pair, "%s %s", sym[i], sym[i + 1]);
      int r = -1;
      for (int j = 0; j < nm; j++)
        if (!strcmp(merges[j], pair)) r = j;
      if (r >= 0 && (best < 0 || r < best)) best = r, at = i;
    }
    if (at < 0) return k;
    size_t la = strlen(sym[at]), lb = strlen(sym[at + 1]);
    if (la + lb >= sizeof *sym) return -1;
    memmove(sym[at] + la, sym[at + 1], lb + 1);
    memmove(sym + at + 1, sym + at + 2, (size_t)(k - at - 2) * sizeof *sym);
    k--;
  }
}

static void test_bpe_long_word(void) {
  const char *m[] = {"a a", "b a", "aa a", "a b", "ab a", "aa aa", "b b", "ba b", "aaa aa",
                     "aa b", "bb a", "a a", "ab ab", "aab a", "aaaa aaaa", "bb bb"};
  int nm = (int)(sizeof m / sizeof *m);
  tokenizer *t = byte_bpe(m, nm);
  if (!t) return;
  enum { LEN = 1500 };
  char *w = malloc(LEN + 1);
  char(*sym)[32] = malloc(LEN * sizeof *sym);
  int32_t *ids = malloc(LEN * sizeof *ids);
  uint32_t x = 12345;
  /* trials 0-5: long words (the heap); 6 and up: 1 to 40 letters (short
   * words take a simpler loop below 33 symbols) */
  for (int trial = 0; trial < 6 + 80 && w && sym && ids; trial++) {
    /* runs of one letter, random text, and the alternating worst cases */
    for (int i = 0; i < LEN; i++) {
      x = x * 1103515245u + 12345u;
      w[i] = trial == 0 ? 'a' : trial == 1 ? (i % 2 ? 'b' : 'a') : trial == 2 ? (i % 3 ? 'a' : 'b')
             : (x >> 16) % (trial % 4 + 2) ? 'a' : 'b';
    }
    int len = trial == 5 ? 301 : trial > 5 ? (trial - 6) % 40 + 1 : LEN;
    w[len] = 0;
    int k = naive_bpe(m, nm, w, sym);
    int n = 0;
    foil_err err = {0};
    CHECKF(tokenizer_encode(t, w, (size_t)len, 0, ids, LEN, &n, &err) == 0, "%s", err.msg);
    int same = n == k;
    for (int i = 0; same && i < n; i++) same = !strcmp(tokenizer_token(t, ids[i]), sym[i]);
    CHECKF(same, "trial %d: %d ids, naive %d symbols", trial, n, k);
  }
  free(w);
  free(sym);
  free(ids);
  tokenizer_destroy(&t);
}

int main(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/tokenizer-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  if (system(cmd) != 0) return 1;
  RUN(test_wordpiece);
  RUN(test_wordpiece_hf_classes);
  RUN(test_truncation);
  RUN(test_invalid_utf8);
  RUN(test_decode);
  RUN(test_pretok);
  RUN(test_bpe_train_encode);
  RUN(test_export_load);
  RUN(test_serialize);
  RUN(test_h5);
  RUN(test_malformed);
  RUN(test_bpe_decode_invalid);
  RUN(test_bpe_duplicate_merge);
  RUN(test_bpe_special_in_text);
  RUN(test_bpe_long_word);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  (void)!system(cmd);
  TEST_EXIT();
}
