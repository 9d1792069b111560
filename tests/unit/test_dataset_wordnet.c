/* test_dataset_wordnet.c — the WordNet data-line parser, the definition
 * rule, and `prepare wordnet` on a hand-written miniature WordNet. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/prepare.h"
#include "cli/prepare_util.h"
#include "storage/dataset.h"

#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"

static char dir[512];

static const char *path_in(const char *name) {
  static char buf[8][700];
  static int k = 0;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static void put(const char *path, const char *text) {
  foil_err err = {0};
  prep_write_file(path, text, strlen(text), &err);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static void test_parse_real_lines(void) {
  foil_err err = {0};
  wordnet_synset s;
  /* verbatim from /usr/share/wordnet/data.noun (wordnet-base 3.0) */
  char noun[] = "00002684 03 n 02 object 0 physical_object 0 039 @ 00001930 n 0000 + 00532607 v 0105 "
                "~ 00003553 n 0000 ~ 00027167 n 0000 ~ 03009633 n 0000 ~ 03149951 n 0000 ~ 03233423 n 0000 "
                "~ 03338648 n 0000 ~ 03532080 n 0000 ~ 03595179 n 0000 ~ 03610270 n 0000 ~ 03714721 n 0000 "
                "~ 03892891 n 0000 ~ 04012260 n 0000 ~ 04248010 n 0000 ~ 04345288 n 0000 ~ 04486445 n 0000 "
                "~ 07851054 n 0000 ~ 09238143 n 0000 ~ 09251689 n 0000 ~ 09267490 n 0000 ~ 09279458 n 0000 "
                "~ 09281777 n 0000 ~ 09283193 n 0000 ~ 09287968 n 0000 ~ 09295338 n 0000 ~ 09300905 n 0000 "
                "~ 09302031 n 0000 ~ 09308398 n 0000 ~ 09334396 n 0000 ~ 09335240 n 0000 ~ 09358550 n 0000 "
                "~ 09368224 n 0000 ~ 09407346 n 0000 ~ 09409203 n 0000 ~ 09432990 n 0000 ~ 09468237 n 0000 "
                "~ 09474162 n 0000 ~ 09477037 n 0000 | a tangible and visible entity; an entity that can "
                "cast a shadow; \"it was full of rackets, balls and other objects\"  \n";
  CHECKF(wordnet_parse_line(noun, &s, "data.noun", 33, &err) == 1, "%s", err.msg);
  CHECK(s.offset == 2684 && s.lex_filenum == 3 && s.ss_type == 'n' && s.w_cnt == 2 && s.p_cnt == 39);
  CHECK(!strcmp(s.words[0], "object") && !strcmp(s.words[1], "physical object"));
  CHECK(!strncmp(s.gloss, "a tangible", 10) && s.gloss[strlen(s.gloss) - 1] == '"');
  CHECKF(s.def_len == strlen("a tangible and visible entity; an entity that can cast a shadow"),
         "def_len %zu", s.def_len);
  /* a verb with frames (data.verb) */
  char verb[] = "00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 021 * 00005041 v 0000 "
                "* 00004227 v 0000 + 03110323 a 0301 + 00831191 n 0303 + 04080833 n 0301 + 04250850 n 0105 "
                "+ 00831191 n 0101 ^ 00004227 v 0103 ^ 00005041 v 0103 $ 00002325 v 0000 $ 00002573 v 0000 "
                "~ 00002573 v 0000 ~ 00002724 v 0000 ~ 00002942 v 0000 ~ 00003826 v 0000 ~ 00004032 v 0000 "
                "~ 00004227 v 0000 ~ 00005041 v 0000 ~ 00006697 v 0000 ~ 00007328 v 0000 ~ 00017031 v 0000 "
                "02 + 02 00 + 08 00 | draw air into, and expel out of, the lungs; \"I can breathe better "
                "when the air is clean\"; \"The patient is respiring\"  ";
  CHECKF(wordnet_parse_line(verb, &s, "data.verb", 30, &err) == 1, "%s", err.msg);
  CHECK(s.w_cnt == 4 && !strcmp(s.words[1], "take a breath") && !strcmp(s.words[3], "suspire"));
  CHECK(s.def_len == strlen("draw air into, and expel out of, the lungs"));
  /* an adjective satellite with a syntactic marker (data.adj) */
  char adj[] = "00019731 00 s 02 handy 0 ready_to_hand(p) 0 002 & 00019131 a 0000 + 04718999 n 0101 | "
               "easy to reach; \"found a handy spot for the can opener\"  ";
  CHECKF(wordnet_parse_line(adj, &s, "data.adj", 9, &err) == 1, "%s", err.msg);
  CHECK(s.ss_type == 's' && !strcmp(s.words[1], "ready to hand"));
  /* w_cnt is hexadecimal */
  char hex[] = "00000001 00 n 0a a 0 b 0 c 0 d 0 e 0 f 0 g 0 h 0 i 0 j 0 000 | ten words";
  CHECK(wordnet_parse_line(hex, &s, "x", 1, &err) == 1 && s.w_cnt == 10 && !strcmp(s.words[9], "j"));
  /* the licence header and empty lines are not synsets */
  char head[] = "  1 This software and database is being provided to you, the LICENSEE, by  ";
  char empty[] = "";
  CHECK(wordnet_parse_line(head, &s, "x", 1, &err) == 0);
  CHECK(wordnet_parse_line(empty, &s, "x", 2, &err) == 0);
}

static void test_definition_rule(void) {
  CHECK(wordnet_definition_len("a thing; \"an example\"") == 7);
  CHECK(wordnet_definition_len("only a definition") == 17);
  CHECK(wordnet_definition_len("\"just an example\"") == 0);
  CHECK(wordnet_definition_len("act of assembling: \"mobilization of the troops\"") == 17);
  /* quotes inside the definition stay */
  const char *g = "progress (especially in the phrase \"make strides\"); \"he made strides\"";
  CHECK(wordnet_definition_len(g) == strlen("progress (especially in the phrase \"make strides\")"));
  CHECK(wordnet_definition_len("trailing;  ") == 8);
}

static void test_parse_errors(void) {
  foil_err err = {0};
  wordnet_synset s;
  char a[] = "0000174 03 n 01 entity 0 000 | x";
  CHECK(wordnet_parse_line(a, &s, "data.noun", 5, &err) == FOIL_EINVAL &&
        strstr(err.msg, "data.noun:5:") && strstr(err.msg, "offset"));
  char b[] = "00001740 03 q 01 entity 0 000 | x";
  CHECK(wordnet_parse_line(b, &s, "data.noun", 6, &err) == FOIL_EINVAL && strstr(err.msg, "ss_type"));
  char c[] = "00001740 03 n 02 entity 0 000 | x"; /* says 2 words, has 1 */
  CHECK(wordnet_parse_line(c, &s, "data.noun", 7, &err) == FOIL_EINVAL && strstr(err.msg, "data.noun:7:"));
  char d[] = "00001740 03 n 01 entity 0 001 @ 00001930 n | x"; /* pointer cut short */
  CHECK(wordnet_parse_line(d, &s, "data.noun", 8, &err) == FOIL_EINVAL && strstr(err.msg, "pointer 1 of 1"));
  char e[] = "00001740 03 n 01 entity 0 000 no gloss bar";
  CHECK(wordnet_parse_line(e, &s, "data.noun", 9, &err) == FOIL_EINVAL && strstr(err.msg, "'|'"));
  char f[] = "00001740 29 v 01 breathe 0 000 01 + 02 | missing frame number";
  CHECK(wordnet_parse_line(f, &s, "data.verb", 10, &err) == FOIL_EINVAL && strstr(err.msg, "verb frame"));
}

/* A miniature WordNet: 6 nouns (one shares its definition), 1 verb, 1 adj, 1 adv. */
static void write_mini(const char *wn) {
  char p[1024];
  snprintf(p, sizeof p, "%s/data.noun", wn);
  put(p, "  1 This software and database is being provided to you, the LICENSEE, by  \n"
         "00000010 03 n 02 cat 0 true_cat 0 000 | feline mammal usually having thick soft fur; \"cats purr\"  \n"
         "00000020 03 n 01 dog 0 001 @ 00000010 n 0000 | a member of the genus Canis  \n"
         "00000030 03 n 01 Earth 0 000 | the planet we live on  \n"
         "00000040 03 n 02 earth 0 ground 0 000 | the loose soft material that makes up the surface  \n"
         "00000050 03 n 01 soil 0 000 | the loose soft material that makes up the surface  \n"
         "00000060 03 n 01 entity 0 000 | that which exists  \n");
  snprintf(p, sizeof p, "%s/data.verb", wn);
  put(p, "00000010 29 v 02 breathe 0 respire 0 000 01 + 02 00 | draw air into the lungs  \n");
  snprintf(p, sizeof p, "%s/data.adj", wn);
  put(p, "00000010 00 s 02 handy 0 ready_to_hand(p) 0 000 | easy to reach  \n");
  snprintf(p, sizeof p, "%s/data.adv", wn);
  put(p, "00000010 02 r 01 a_cappella 0 000 | without musical accompaniment  \n");
  snprintf(p, sizeof p, "%s/copyright", wn);
  put(p, "WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.\n");
}

static int in_groups(const dataset_pairs *p, int64_t g) {
  for (size_t i = 0; i < p->n; i++)
    if (p->group[i] == g) return 1;
  return 0;
}

static void test_prepare_mini(void) {
  foil_err err = {0};
  char wn[700], root[700], root2[700];
  snprintf(wn, sizeof wn, "%s", path_in("wn"));
  snprintf(root, sizeof root, "%s", path_in("root"));
  snprintf(root2, sizeof root2, "%s", path_in("root2"));
  write_mini(wn);
  char lic[800];
  snprintf(lic, sizeof lic, "%s/copyright", wn);
  wordnet_opts o = {wn, lic, 2, 1, NULL};
  CHECKF(prepare_wordnet_with(root, 7, &o, &err) == 0, "%s", err.msg);
  dataset_pairs tr, dv, te;
  CHECKF(dataset_pairs_read(path_in("root/datasets/wordnet/pairs.h5"), "train", &tr, &err) == 0, "%s", err.msg);
  CHECK(dataset_pairs_read(path_in("root/datasets/wordnet/pairs.h5"), "dev", &dv, &err) == 0);
  CHECK(dataset_pairs_read(path_in("root/datasets/wordnet/pairs.h5"), "test", &te, &err) == 0);
  /* held-out groups never in train; the shared definition is never held out */
  int64_t held = 0;
  for (size_t i = 0; i < te.n; i++) {
    CHECK(!in_groups(&tr, te.group[i]));
    CHECK(strcmp(te.query[i], "the loose soft material that makes up the surface"));
    held = te.group[i];
  }
  for (size_t i = 0; i < dv.n; i++) CHECK(!in_groups(&tr, dv.group[i]) && !in_groups(&te, dv.group[i]));
  CHECK(held != 0);
  /* pairs: every synset gives def->lemma per lemma and lemma->lemma per ordered pair:
   * nouns 2+2, 1, 1, 2+2, 1, 1; verb 2+2; adj 2+2; adv 1 = 21 */
  CHECKF(tr.n + dv.n + te.n == 21, "%zu pairs", tr.n + dv.n + te.n);
  int found_def = 0, found_syn = 0;
  for (size_t i = 0; i < tr.n + dv.n + te.n; i++) {
    const dataset_pairs *p = i < tr.n ? &tr : i < tr.n + dv.n ? &dv : &te;
    size_t k = i < tr.n ? i : i < tr.n + dv.n ? i - tr.n : i - tr.n - dv.n;
    found_def |= !strcmp(p->query[k], "feline mammal usually having thick soft fur") && !strcmp(p->positive[k], "true cat");
    found_syn |= !strcmp(p->query[k], "ready to hand") && !strcmp(p->positive[k], "handy");
  }
  CHECK(found_def && found_syn);
  dataset_bench b;
  CHECKF(dataset_bench_read(path_in("root/datasets/wordnet/benchmarks/test.h5"), &b, &err) == 0, "%s", err.msg);
  CHECK(b.n_queries == 2 && b.n_corpus == 13); /* Earth and earth are distinct lemmas */
  for (size_t i = 1; i < b.n_corpus; i++) CHECK(strcmp(b.corpus[i - 1], b.corpus[i]) < 0);
  for (size_t q = 0; q < b.n_queries; q++) {
    int rel = 0;
    for (size_t k = 0; k < b.n_qrels; k++) rel += b.qrels[2 * k] == (int64_t)q;
    CHECK(rel >= 1);
  }
  dataset_bench_free(&b);
  CHECK(dataset_bench_read(path_in("root/datasets/wordnet/benchmarks/dev.h5"), &b, &err) == 0 && b.n_queries == 1);
  dataset_bench_free(&b);
  CHECK(exists(path_in("root/datasets/wordnet/LICENSE")));

  /* same seed: same split; some other seed: another one */
  CHECKF(prepare_wordnet_with(root2, 7, &o, &err) == 0, "%s", err.msg);
  dataset_pairs te2;
  CHECK(dataset_pairs_read(path_in("root2/datasets/wordnet/pairs.h5"), "test", &te2, &err) == 0);
  CHECK(te2.n == te.n);
  for (size_t i = 0; i < te.n && i < te2.n; i++) CHECK(te2.group[i] == te.group[i] && !strcmp(te2.query[i], te.query[i]));
  dataset_pairs_free(&te2);
  int differs = 0;
  for (uint64_t seed = 8; seed < 20 && !differs; seed++) {
    CHECK(prepare_wordnet_with(root2, seed, &o, &err) == 0);
    CHECK(dataset_pairs_read(path_in("root2/datasets/wordnet/pairs.h5"), "test", &te2, &err) == 0);
    differs = te2.n != te.n || (te2.n && te2.group[0] != te.group[0]) ||
              (te2.n > 1 && te2.group[te2.n - 1] != te.group[te.n - 1]);
    dataset_pairs_free(&te2);
  }
  CHECK(differs);
  dataset_pairs_free(&tr);
  dataset_pairs_free(&dv);
  dataset_pairs_free(&te);
}

static void test_prepare_errors(void) {
  foil_err err = {0};
  char wn[700], root[700], wn2[700], wn3[700];
  snprintf(wn, sizeof wn, "%s", path_in("wn"));
  snprintf(root, sizeof root, "%s", path_in("root3"));
  snprintf(wn2, sizeof wn2, "%s", path_in("wn2"));
  snprintf(wn3, sizeof wn3, "%s", path_in("wn3"));
  char lic[800];
  snprintf(lic, sizeof lic, "%s/copyright", wn);
  /* too few eligible synsets */
  wordnet_opts o = {wn, lic, 5, 3, NULL};
  CHECK(prepare_wordnet_with(root, 1, &o, &err) == FOIL_EPRECOND && strstr(err.msg, "5 test + 3 dev"));
  CHECK(!exists(path_in("root3/datasets/wordnet/pairs.h5")));
  /* a missing licence fails before anything is written */
  char nope[800];
  snprintf(nope, sizeof nope, "%s/nope", wn);
  wordnet_opts o2 = {wn, nope, 2, 1, NULL};
  CHECK(prepare_wordnet_with(root, 1, &o2, &err) == FOIL_ENOTFOUND && strstr(err.msg, "nope"));
  CHECK(!exists(path_in("root3/datasets/wordnet/pairs.h5")));
  /* a broken line names file and line */
  put(path_in("wn2/data.noun"), "00000010 03 n 01 cat 0 000 | a cat\n00000020 03 n 01 dog 0 |\n");
  wordnet_opts o3 = {wn2, lic, 0, 0, NULL};
  CHECK(prepare_wordnet_with(root, 1, &o3, &err) == FOIL_EINVAL && strstr(err.msg, "wn2/data.noun:2:"));
  /* a missing file says which package to install */
  put(path_in("wn3/data.noun"), "00000010 03 n 01 cat 0 000 | a cat\n");
  wordnet_opts o4 = {wn3, lic, 0, 0, NULL};
  CHECK(prepare_wordnet_with(root, 1, &o4, &err) == FOIL_ENOTFOUND && strstr(err.msg, "wordnet-base"));
  CHECK(!exists(path_in("root3/datasets/wordnet/pairs.h5")));
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/dataset-wordnet-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_parse_real_lines);
  RUN(test_definition_rule);
  RUN(test_parse_errors);
  RUN(test_prepare_mini);
  RUN(test_prepare_errors);
  TEST_EXIT();
}
