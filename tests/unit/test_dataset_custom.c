/* test_dataset_custom.c — `prepare custom`: JSONL/TSV pairs, corpus,
 * BEIR queries and qrels, and every kind of bad input with its message. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/prepare.h"
#include "cli/prepare_util.h"
#include "storage/dataset.h"

#include <unistd.h>

#include "tests/test.h"

static char dir[512];

static const char *put(const char *rel, const char *text, size_t n) {
  static char buf[8][1024];
  static int k = 0;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, rel);
  foil_err err = {0};
  prep_write_file(buf[k], text, n ? n : strlen(text), &err);
  return buf[k];
}

static void test_pairs_jsonl_tsv(void) {
  foil_err err = {0};
  custom_pairs p;
  const char *j = put("p.jsonl",
                      "\xEF\xBB\xBF{\"query\": \"what is a cat\", \"positive\": \"a small feline\"}\n"
                      "\n"
                      "{\"query\": \"caf\\u00e9\", \"positive\": \"coffee\", \"negatives\": [\"tea\", \"milk\"]}\r\n"
                      "{\"query\": \"q3\", \"positive\": \"p3\", \"negatives\": []}", 0);
  CHECKF(custom_read_pairs(j, &p, &err) == 0, "%s", err.msg);
  CHECK(p.n == 3 && p.n_neg == 2);
  if (p.n == 3) {
    CHECK(!strcmp(p.query[0], "what is a cat") && !strcmp(p.query[1], "café"));
    CHECK(p.neg_off[1] == 0 && p.neg_off[2] == 2 && p.neg_off[3] == 2 && !strcmp(p.neg[1], "milk"));
  }
  custom_pairs_free(&p);
  const char *t = put("p.tsv", "q1\tp1\nq2\tp2\tn1\tn2\n", 0);
  CHECKF(custom_read_pairs(t, &p, &err) == 0, "%s", err.msg);
  CHECK(p.n == 2 && p.n_neg == 2 && !strcmp(p.positive[1], "p2") && !strcmp(p.neg[1], "n2"));
  custom_pairs_free(&p);
}

/* Reading `text` as `rel` fails with code and a message holding `want`. */
static void bad_pairs(const char *rel, const char *text, size_t n, int code, const char *want) {
  foil_err err = {0};
  custom_pairs p;
  const char *path = put(rel, text, n);
  int rc = custom_read_pairs(path, &p, &err);
  CHECKF(rc == code && strstr(err.msg, want), "%s: rc %d, message '%s', wanted '%s'", rel, rc, err.msg, want);
  CHECK(p.n == 0 && p.query == NULL);
}

static void test_bad_pairs(void) {
  bad_pairs("empty.tsv", "", 0, FOIL_EINVAL, "empty.tsv: empty");
  bad_pairs("blank.jsonl", "\n  \n", 0, FOIL_EINVAL, "blank.jsonl: empty");
  bad_pairs("notab.tsv", "q1\tp1\nno tab here\n", 0, FOIL_EINVAL, "notab.tsv:2: no tab");
  bad_pairs("utf8.tsv", "q1\tp1\nq\xff\tp\n", 0, FOIL_EINVAL, "utf8.tsv:2: invalid UTF-8 (byte 0xFF at column 2)");
  bad_pairs("overlong.tsv", "q\xc0\xaf\tp\n", 0, FOIL_EINVAL, "overlong.tsv:1: invalid UTF-8");
  bad_pairs("surrogate.jsonl", "{\"query\": \"\\ud800\", \"positive\": \"x\"}\n", 0, FOIL_EINVAL, "surrogate.jsonl:1:");
  bad_pairs("json.jsonl", "{\"query\": \"a\", \"positive\": \"b\"}\n{\"query\": \n", 0, FOIL_EINVAL, "json.jsonl:2: not a JSON object");
  bad_pairs("arr.jsonl", "[1, 2]\n", 0, FOIL_EINVAL, "arr.jsonl:1: not a JSON object");
  bad_pairs("missing.jsonl", "{\"query\": \"a\"}\n", 0, FOIL_EINVAL, "missing.jsonl:1: missing \"positive\"");
  bad_pairs("type.jsonl", "{\"query\": 3, \"positive\": \"b\"}\n", 0, FOIL_EINVAL, "type.jsonl:1: \"query\" is not a string");
  bad_pairs("negs.jsonl", "{\"query\": \"a\", \"positive\": \"b\", \"negatives\": [\"c\", 4]}\n", 0, FOIL_EINVAL,
            "negs.jsonl:1: \"negatives\" holds a non-string");
  bad_pairs("emptyq.tsv", "\tp\n", 0, FOIL_EINVAL, "emptyq.tsv:1: empty query");
  bad_pairs("nul.tsv", "q\0x\tp\n", 7, FOIL_EINVAL, "nul.tsv:1: contains a NUL byte");
  bad_pairs("p.csv", "a,b\n", 0, FOIL_EINVAL, "unknown format");
  /* a text over 1 MiB */
  size_t big = PREP_MAX_TEXT + 10;
  char *s = malloc(big + 8);
  memcpy(s, "q\t", 2);
  memset(s + 2, 'x', big);
  memcpy(s + 2 + big, "\n", 1);
  bad_pairs("big.tsv", s, big + 3, FOIL_EINVAL, "big.tsv:1: positive is 1048586 bytes, over the limit of 1 MiB");
  free(s);
  foil_err err = {0};
  custom_pairs p;
  char nofile[700];
  snprintf(nofile, sizeof nofile, "%s/none.tsv", dir);
  CHECK(custom_read_pairs(nofile, &p, &err) == FOIL_ENOTFOUND && strstr(err.msg, "none.tsv"));
}

static void test_records(void) {
  foil_err err = {0};
  custom_records r;
  const char *c = put("c.jsonl",
                      "{\"_id\": \"d1\", \"title\": \"Cats\", \"text\": \"Cats purr.\"}\n"
                      "{\"id\": 7, \"text\": \"Numbers as ids.\"}\n"
                      "{\"_id\": \"d3\", \"title\": \"\", \"text\": \"No title.\"}\n", 0);
  CHECKF(custom_read_records(c, "corpus", &r, &err) == 0, "%s", err.msg);
  CHECK(r.n == 3 && !strcmp(r.text[0], "Cats Cats purr.") && !strcmp(r.id[1], "7") && !strcmp(r.text[2], "No title."));
  custom_records_free(&r);
  const char *t = put("c.tsv", "_id\ttext\nd1\tone\nd2\ttwo\n", 0);
  CHECK(custom_read_records(t, "corpus", &r, &err) == 0 && r.n == 2 && !strcmp(r.id[0], "d1"));
  custom_records_free(&r);
  const char *d = put("dup.tsv", "d1\tone\nd2\ttwo\nd1\tthree\n", 0);
  CHECK(custom_read_records(d, "corpus", &r, &err) == FOIL_EINVAL &&
        strstr(err.msg, "dup.tsv:3: duplicate corpus id 'd1' (first on line 1)"));
  const char *n = put("noid.jsonl", "{\"text\": \"x\"}\n", 0);
  CHECK(custom_read_records(n, "corpus", &r, &err) == FOIL_EINVAL && strstr(err.msg, "noid.jsonl:1: missing \"_id\""));
  const char *e = put("e.jsonl", "", 0);
  CHECK(custom_read_records(e, "query", &r, &err) == FOIL_EINVAL && strstr(err.msg, "e.jsonl: empty"));
  /* numeric ids are exact below 2^53 only: 2^53 + 1 and 2^53 would both read as ...992 */
  const char *big = put("big.jsonl", "{\"_id\": 9007199254740991, \"text\": \"ok\"}\n"
                                     "{\"_id\": 9007199254740993, \"text\": \"too big\"}\n", 0);
  CHECK(custom_read_records(big, "corpus", &r, &err) == FOIL_EINVAL &&
        strstr(err.msg, "big.jsonl:2: \"_id\" is a number from 2^53 on"));
  const char *huge = put("huge.jsonl", "{\"id\": 1e300, \"text\": \"x\"}\n", 0);
  CHECK(custom_read_records(huge, "corpus", &r, &err) == FOIL_EINVAL && strstr(err.msg, "huge.jsonl:1:"));
  const char *ok = put("ok.jsonl", "{\"_id\": -9007199254740991, \"text\": \"x\"}\n", 0);
  CHECKF(custom_read_records(ok, "corpus", &r, &err) == 0 && !strcmp(r.id[0], "-9007199254740991"), "%s", err.msg);
  custom_records_free(&r);
}

static int exists_in(const char *root, const char *rel) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  return access(p, F_OK) == 0;
}

static void test_prepare(void) {
  foil_err err = {0};
  char root[700], pairs[1024], corpus[1024], queries[1024], qrels[1024];
  snprintf(root, sizeof root, "%s/root", dir);
  char many[8192];
  size_t o = 0;
  for (int i = 0; i < 100; i++) o += (size_t)snprintf(many + o, sizeof many - o, "query %d\tpositive %d\tneg %d\n", i, i, i);
  snprintf(pairs, sizeof pairs, "%s", put("many.tsv", many, 0));
  snprintf(corpus, sizeof corpus, "%s", put("corpus.tsv", "d1\tone\nd2\ttwo\nd3\tthree\n", 0));
  snprintf(queries, sizeof queries, "%s", put("queries.jsonl", "{\"_id\": \"q1\", \"text\": \"first\"}\n"
                                              "{\"_id\": \"q2\", \"text\": \"second\"}\n"
                                              "{\"_id\": \"q3\", \"text\": \"never judged\"}\n", 0));
  snprintf(qrels, sizeof qrels, "%s", put("qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t2\nq2\td2\t0\n", 0));
  prepare_custom_opts o1 = {.name = "mine", .pairs = pairs, .corpus = corpus, .queries = queries,
                            .qrels = qrels, .dev_fraction = 0.1, .test_fraction = 0.2};
  CHECKF(prepare_custom(root, 5, &o1, &err) == 0, "%s", err.msg);
  char p[1024];
  snprintf(p, sizeof p, "%s/datasets/mine/pairs.h5", root);
  dataset_pairs sp[3];
  size_t total = 0;
  for (int s = 0; s < 3; s++) {
    CHECK(dataset_pairs_read(p, dataset_splits[s], &sp[s], &err) == 0);
    total += sp[s].n;
    CHECK(sp[s].negatives_offsets && sp[s].n_negatives == sp[s].n);
  }
  CHECK(total == 100 && sp[0].n > 50 && sp[1].n > 0 && sp[2].n > 5);
  for (int s = 0; s < 3; s++) dataset_pairs_free(&sp[s]);
  dataset_bench b;
  snprintf(p, sizeof p, "%s/datasets/mine/benchmarks/test.h5", root);
  CHECKF(dataset_bench_read(p, &b, &err) == 0, "%s", err.msg);
  CHECK(b.n_queries == 2 && b.n_corpus == 3 && b.n_qrels == 2 && b.qrels_score);
  if (b.n_qrels == 2) CHECK(b.qrels[2] == 1 && b.qrels[3] == 2 && b.qrels_score[1] == 2);
  dataset_bench_free(&b);
  CHECK(exists_in(root, "datasets/mine/corpus.h5"));
  /* default: everything in train */
  prepare_custom_opts o2 = {.name = "plain", .pairs = pairs};
  CHECK(prepare_custom(root, 5, &o2, &err) == 0);
  snprintf(p, sizeof p, "%s/datasets/plain/pairs.h5", root);
  CHECK(dataset_pairs_read(p, "train", &sp[0], &err) == 0 && sp[0].n == 100);
  dataset_pairs_free(&sp[0]);
  CHECK(!exists_in(root, "datasets/plain/corpus.h5"));

  /* bad qrels: nothing of the dataset is written */
  const char *uq = put("uq.tsv", "q1\td1\t1\nq9\td1\t1\n", 0);
  prepare_custom_opts o3 = o1;
  o3.name = "broken";
  o3.qrels = uq;
  CHECK(prepare_custom(root, 5, &o3, &err) == FOIL_EINVAL && strstr(err.msg, "uq.tsv:2: unknown query id 'q9'"));
  const char *ud = put("ud.tsv", "q1\td7\t1\n", 0);
  o3.qrels = ud;
  CHECK(prepare_custom(root, 5, &o3, &err) == FOIL_EINVAL && strstr(err.msg, "ud.tsv:1: unknown corpus id 'd7'"));
  const char *two = put("two.tsv", "q1\td1\n", 0);
  o3.qrels = two;
  CHECK(prepare_custom(root, 5, &o3, &err) == FOIL_EINVAL && strstr(err.msg, "two.tsv:1: expected query-id"));
  const char *sc = put("sc.tsv", "q1\td1\thigh\n", 0);
  o3.qrels = sc;
  CHECK(prepare_custom(root, 5, &o3, &err) == FOIL_EINVAL && strstr(err.msg, "sc.tsv:1: score 'high'"));
  CHECK(!exists_in(root, "datasets/broken/pairs.h5") && !exists_in(root, "datasets/broken/corpus.h5"));
  /* options */
  prepare_custom_opts o4 = {.name = "../escape", .pairs = pairs};
  CHECK(prepare_custom(root, 5, &o4, &err) == FOIL_EINVAL && strstr(err.msg, "--name"));
  prepare_custom_opts o5 = {.name = "x", .pairs = pairs, .dev_fraction = 0.6, .test_fraction = 0.6};
  CHECK(prepare_custom(root, 5, &o5, &err) == FOIL_EINVAL && strstr(err.msg, "sum to at most 1"));
  prepare_custom_opts o6 = {.name = "x", .pairs = pairs, .queries = queries};
  CHECK(prepare_custom(root, 5, &o6, &err) == FOIL_EINVAL && strstr(err.msg, "go together"));
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/dataset-custom-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_pairs_jsonl_tsv);
  RUN(test_bad_pairs);
  RUN(test_records);
  RUN(test_prepare);
  TEST_EXIT();
}
