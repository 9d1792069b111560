/* test_clicmd.c — `foil` subcommands run in-process, as main runs them
 * (cmd_<name>(argc, argv)), their stdout and stderr captured: `data
 * prepare`'s arguments, `tokenizer encode/train`'s options and files,
 * `model encode`'s `--`, `keys gen`'s --opt=VALUE, and `search` against a
 * stand-in foil-serve (a ROUTER thread answering SearchRequests): which
 * server it asks, vectors it reads, and queries over one request's limit;
 * `jobs` and `workers` against a stand-in coordinator: ELAPSED, the last
 * hour and LAST-HEARTBEAT by the coordinator's clock. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/prepare_util.h"
#include "common/auth.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/wire.h"
#include "foil/v1/control.pb-c.h"
#include "foil/v1/search.pb-c.h"
#include "tests/test.h"

static char dir[512];

static const char *path_in(const char *name) {
  static char buf[8][700];
  static int k;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static char *slurp(const char *path) {
  char *data = NULL;
  size_t len = 0;
  if (foil_read_file(path, &data, &len, NULL)) return strdup("");
  return data;
}

/* Runs fn(argc, argv) (argv NULL-terminated) with stdout and stderr going
 * to files; *out and *errout get what it wrote (caller frees). */
static int run(int (*fn)(int, char **), char **args, char **out, char **errout) {
  int argc = 0;
  while (args[argc]) argc++;
  /* a copy: commands take options out of their argv (cli_data_root) */
  char *argv[64];
  for (int i = 0; i <= argc && i < 64; i++) argv[i] = args[i];
  fflush(stdout);
  fflush(stderr);
  int so = dup(1), se = dup(2);
  int fo = open(path_in("stdout"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int fe = open(path_in("stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fo, 1);
  dup2(fe, 2);
  int rc = fn(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(so, 1);
  dup2(se, 2);
  close(so), close(se), close(fo), close(fe);
  char *o = slurp(path_in("stdout")), *e = slurp(path_in("stderr"));
  if (out) *out = o;
  else free(o);
  if (errout) *errout = e;
  else free(e);
  return rc;
}

/* ---- foil data prepare ------------------------------------------------------------------ */

static void test_data_args(void) {
  char *o, *e;
  /* --root and no source: refused (argv[1] was the NULL terminator: SIGSEGV) */
  char *a1[] = {"data", "prepare", "--root", dir, NULL};
  int rc = run(cmd_data, a1, &o, &e);
  CHECKF(rc == FOIL_EINVAL && strstr(e, "name a source"), "rc %d: %s", rc, e);
  free(o), free(e);
  char root_eq[700];
  snprintf(root_eq, sizeof root_eq, "--root=%s", dir);
  char *a2[] = {"data", "prepare", root_eq, NULL};
  rc = run(cmd_data, a2, &o, &e);
  CHECKF(rc == FOIL_EINVAL && strstr(e, "name a source"), "rc %d: %s", rc, e);
  free(o), free(e);
  /* the source after options: the first word that is no option's value */
  char *a3[] = {"data", "prepare", "--seed", "3", "nosuch", "--root", dir, NULL};
  rc = run(cmd_data, a3, &o, &e);
  CHECKF(rc == FOIL_EINVAL && strstr(e, "unknown source 'nosuch'"), "rc %d: %s", rc, e);
  free(o), free(e);
  char *a4[] = {"data", "prepare", "--seed=x", "nosuch", NULL};
  rc = run(cmd_data, a4, &o, &e);
  CHECKF(rc == FOIL_EINVAL && strstr(e, "--seed 'x'"), "rc %d: %s", rc, e);
  free(o), free(e);
  /* created_by, an attribute marked UTF-8: bytes that are not UTF-8 are
   * replaced, and a line cut to 1023 bytes ends on a character boundary */
  char bad[] = "/donn\xe9" "es/\xff\xfe.jsonl";
  char longarg[1200];
  size_t at = 0;
  memcpy(longarg, "x", 1), at = 1; /* odd: the cut would fall inside an "é" */
  while (at + 2 < sizeof longarg) longarg[at++] = '\xc3', longarg[at++] = '\xa9';
  longarg[at] = 0;
  char *a5[] = {"data", "prepare", "nosuch", "--pairs", bad, longarg, NULL};
  rc = run(cmd_data, a5, &o, &e);
  CHECK(rc == FOIL_EINVAL);
  char copy[2048];
  snprintf(copy, sizeof copy, "%s", prep_created_by(""));
  CHECKF(strlen(copy) > 900 && strlen(copy) < 1024, "%zu", strlen(copy));
  CHECKF(foil_utf8_scrub(copy) == 0, "created_by is not UTF-8: %.80s", prep_created_by(""));
  CHECK(strstr(copy, "/donn?es/??.jsonl"));
  free(o), free(e);
}

/* ---- foil tokenizer ------------------------------------------------------------------- */

/* ids: 0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK] 5 hello 6 world */
static void test_tokenizer_encode(void) {
  write_text(path_in("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n");
  char vocab[700];
  snprintf(vocab, sizeof vocab, "%s", path_in("vocab.txt"));
  char vocab_eq[720];
  snprintf(vocab_eq, sizeof vocab_eq, "--vocab=%s", vocab);
  static struct {
    const char *args[8];
    int rc;
    const char *out; /* stdout, or a part of stderr when rc != 0 */
  } cases[] = {
      /* a flag after the text is a flag, not text */
      {{"--vocab", "V", "hello world", "--max", "3"}, 0, "2 5 3\n"},
      {{"hello", "world", "--vocab", "V"}, 0, "2 5 6 3\n"},
      {{"=V", "hello"}, 0, "2 5 3\n"},
      {{"--vocab", "V", "--no-special", "--max", "1", "hello", "world"}, 0, "5\n"},
      /* after `--`, words are text: "-h" is not a request for help */
      {{"--vocab", "V", "--", "-h", "--max"}, 0, "2 1 1 1 1 1 3\n"},
      {{"--vocab", "V", "--max", "abc", "hello"}, FOIL_EINVAL, "--max must be a whole number 1..1048576, got 'abc'"},
      {{"--vocab", "V", "--max", "-3", "hello"}, FOIL_EINVAL, "--max must be a whole number"},
      {{"--vocab", "V", "--max", "3x", "hello"}, FOIL_EINVAL, "--max must be a whole number"},
      {{"--vocab", "V", "--max", "0", "hello"}, FOIL_EINVAL, "--max must be a whole number"},
      /* [CLS] + first max-2 tokens + [SEP]: no room with --max 1 */
      {{"--vocab", "V", "--max", "1", "hello"}, FOIL_EINVAL, "--max 1 leaves no room for [CLS] and [SEP]"},
      {{"--vocab", "V", "--bogus", "hello"}, FOIL_EINVAL, "unknown option '--bogus'"},
      {{"--vocab", "V", "-x", "hello"}, FOIL_EINVAL, "unknown option '-x'"},
      {{"--vocab", "V", "--max"}, FOIL_EINVAL, "--max needs a value"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *argv[16] = {"tokenizer", "encode"};
    int n = 2;
    for (int k = 0; k < 8 && cases[i].args[k]; k++) {
      const char *a = cases[i].args[k];
      argv[n++] = !strcmp(a, "V") ? vocab : !strcmp(a, "=V") ? vocab_eq : (char *)a;
    }
    argv[n] = NULL;
    char *o, *e;
    int rc = run(cmd_tokenizer, argv, &o, &e);
    if (!cases[i].rc)
      CHECKF(rc == 0 && !strcmp(o, cases[i].out), "case %zu: rc %d, out '%s', err '%s'", i, rc, o, e);
    else
      CHECKF(rc == cases[i].rc && strstr(e, cases[i].out), "case %zu: rc %d, err '%s'", i, rc, e);
    free(o), free(e);
  }
}

static void test_tokenizer_train(void) {
  write_text(path_in("corpus.txt"), "the cat sat on the mat\nthe cat ate the rat\nthat cat is fat\n");
  char out[700];
  snprintf(out, sizeof out, "%s", path_in("bpe"));
  mkdir(out, 0755);
  /* a reader (a job loading the tokenizer) has the old files open */
  char vj[800], mt[800];
  snprintf(vj, sizeof vj, "%s/vocab.json", out);
  snprintf(mt, sizeof mt, "%s/merges.txt", out);
  write_text(vj, "OLD VOCAB");
  write_text(mt, "OLD MERGES");
  int fv = open(vj, O_RDONLY), fm = open(mt, O_RDONLY);
  char corpus[700];
  snprintf(corpus, sizeof corpus, "%s", path_in("corpus.txt"));
  char *argv[] = {"tokenizer", "train", "--vocab-size", "270", "--out", out, corpus, NULL};
  char *o, *e;
  int rc = run(cmd_tokenizer, argv, &o, &e);
  CHECKF(rc == 0, "%s", e);
  free(o), free(e);
  /* replaced, not rewritten in place: the reader still sees the old files whole */
  char buf[64] = "";
  ssize_t n = pread(fv, buf, sizeof buf - 1, 0);
  CHECKF(n == 9 && !strncmp(buf, "OLD VOCAB", 9), "the open vocab.json now reads '%.*s'", (int)(n > 0 ? n : 0), buf);
  n = pread(fm, buf, sizeof buf - 1, 0);
  CHECKF(n == 10 && !strncmp(buf, "OLD MERGES", 10), "the open merges.txt now reads '%.*s'", (int)(n > 0 ? n : 0),
         buf);
  close(fv), close(fm);
  char *v = slurp(vj), *m = slurp(mt);
  CHECK(v[0] == '{' && !strncmp(m, "#version", 8));
  free(v), free(m);
  /* numbers are checked, not atoi'ed */
  char *bad[][9] = {
      {"tokenizer", "train", "--vocab-size", "8000x", "--out", out, corpus, NULL},
      {"tokenizer", "train", "--vocab-size", "300", "--min-frequency", "-1", "--out", out, NULL},
      {"tokenizer", "train", "--vocab-size=abc", "--out", out, corpus, NULL},
  };
  const char *want[] = {"--vocab-size must be a whole number 1..16777216, got '8000x'",
                        "--min-frequency must be a whole number", "--vocab-size must be a whole number"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rc = run(cmd_tokenizer, bad[i], &o, &e);
    CHECKF(rc == FOIL_EINVAL && strstr(e, want[i]), "case %zu: rc %d: %s", i, rc, e);
    free(o), free(e);
  }
}

/* `model encode ... -- -h`: after `--`, "-h" is a text, not a request for
 * help (the help used to win, with exit 0) */
static void test_model_dashdash(void) {
  char *argv[] = {"model", "encode", (char *)path_in("none.h5"), "--", "-h", NULL};
  char *o, *e;
  int rc = run(cmd_model, argv, &o, &e);
  CHECKF(rc != 0 && !strstr(o, "usage"), "rc %d, out '%.100s'", rc, o);
  CHECKF(strstr(e, "none.h5"), "%s", e);
  free(o), free(e);
}

/* ---- foil keys ---------------------------------------------------------------------------- */

static void test_keys_opt_eq(void) {
  char d[720];
  snprintf(d, sizeof d, "--dir=%s", path_in("keys"));
  char *argv[] = {"keys", "gen", "alice", "--role=admin", d, NULL};
  char *o, *e;
  int rc = run(cmd_keys, argv, &o, &e);
  CHECKF(rc == 0, "%s", e);
  free(o), free(e);
  auth_cert c;
  foil_err err = {0};
  CHECKF(auth_cert_load(path_in("keys/alice.key"), 0, &c, &err) == 0 && c.role == AUTH_ADMIN, "%s", err.msg);
}

/* ---- foil search against a stand-in foil-serve ---------------------------------------------- */

typedef struct {
  void *ctx, *sock;
  char ep[256];
  const char *index;
  int mix;                 /* answer each request from another version */
  int requests;
  size_t queries, max_per_request;
  float first;             /* the first number of the first query seen */
  volatile int stop;
  pthread_t th;
} fake_serve;

static void *fake_main(void *arg) {
  fake_serve *f = arg;
  while (!f->stop) {
    zmq_pollitem_t it = {.socket = f->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 50) <= 0) continue;
    wire_msg m;
    if (wire_recv(f->sock, &m, 1, 64u << 20, 0, NULL)) {
      wire_msg_close(&m);
      continue;
    }
    Foil__V1__ServeRequest *q =
        foil__v1__serve_request__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    if (q && q->body_case == FOIL__V1__SERVE_REQUEST__BODY_SEARCH) {
      const Foil__V1__SearchRequest *sr = q->search;
      size_t n = sr->n_queries;
      if (!f->requests && n && sr->queries[0]->n_vector) f->first = sr->queries[0]->vector[0];
      if (n > f->max_per_request) f->max_per_request = n;
      Foil__V1__SearchHits *hits = calloc(n ? n : 1, sizeof *hits), **hp = calloc(n ? n : 1, sizeof *hp);
      int64_t *ids = calloc(n ? n : 1, sizeof *ids);
      float *scores = calloc(n ? n : 1, sizeof *scores);
      for (size_t i = 0; i < n; i++) {
        foil__v1__search_hits__init(&hits[i]);
        ids[i] = (int64_t)(f->queries + i); /* the query's place in the whole search */
        scores[i] = sr->queries[i]->n_vector ? sr->queries[i]->vector[0] : 0;
        hits[i].ids = &ids[i], hits[i].n_ids = 1;
        hits[i].scores = &scores[i], hits[i].n_scores = 1;
        hp[i] = &hits[i];
      }
      Foil__V1__SearchReply s = FOIL__V1__SEARCH_REPLY__INIT;
      s.results = hp, s.n_results = n, s.index = (char *)f->index;
      s.version = 7 + (uint32_t)(f->mix ? f->requests : 0);
      s.server_ms = 1;
      Foil__V1__ServeReply r = FOIL__V1__SERVE_REPLY__INIT;
      r.request_id = q->request_id, r.body_case = FOIL__V1__SERVE_REPLY__BODY_SEARCH, r.search = &s;
      wire_reply(f->sock, &m, &r.base, NULL);
      f->requests++;
      f->queries += n;
      free(hits), free(hp), free(ids), free(scores);
    }
    if (q) foil__v1__serve_request__free_unpacked(q, NULL);
    wire_msg_close(&m);
  }
  return NULL;
}

static void fake_start(fake_serve *f, const char *index) {
  memset(f, 0, sizeof *f);
  f->index = index;
  f->ctx = zmq_ctx_new();
  f->sock = zmq_socket(f->ctx, ZMQ_ROUTER);
  int zero = 0;
  zmq_setsockopt(f->sock, ZMQ_LINGER, &zero, sizeof zero);
  CHECK(zmq_bind(f->sock, "tcp://127.0.0.1:*") == 0);
  size_t len = sizeof f->ep;
  zmq_getsockopt(f->sock, ZMQ_LAST_ENDPOINT, f->ep, &len);
  pthread_create(&f->th, NULL, fake_main, f);
}

static void fake_reset(fake_serve *f) { f->requests = 0, f->queries = 0, f->max_per_request = 0, f->first = 0; }

static void fake_stop(fake_serve *f) {
  f->stop = 1;
  pthread_join(f->th, NULL);
  zmq_close(f->sock);
  zmq_ctx_term(f->ctx);
}

static void test_search(void) {
  unsetenv("FOIL_KEY"), unsetenv("FOIL_KEYS"), unsetenv("FOIL_SERVER_KEY"), unsetenv("FOIL_SERVE");
  unsetenv("FOIL_TIMEOUT");
  fake_serve a, b;
  fake_start(&a, "wiki");
  fake_start(&b, "other");
  char root[700], p[800], json[512];
  snprintf(root, sizeof root, "%s", path_in("root"));
  snprintf(p, sizeof p, "%s/indexes/wiki", root);
  foil_mkdirs(p, NULL);
  snprintf(p, sizeof p, "%s/indexes/wiki/serve.json", root);
  snprintf(json, sizeof json, "{\"endpoint\": \"%s\", \"pid\": 1}", a.ep);
  write_text(p, json);
  char vf[700];
  snprintf(vf, sizeof vf, "%s", path_in("v.txt"));
  write_text(vf, "0.25 0.5\n");
  char *o, *e;

  /* --index beats $FOIL_SERVE (another index's server) */
  setenv("FOIL_SERVE", b.ep, 1);
  char *a1[] = {"search", "--index", "wiki", "--root", root, "--vector-file", vf, NULL};
  int rc = run(cmd_search, a1, &o, &e);
  CHECKF(rc == 0 && a.requests == 1 && b.requests == 0, "rc %d (%s), wiki %d, other %d", rc, e, a.requests,
         b.requests);
  CHECKF(strstr(o, "index wiki version 7"), "%s", o);
  free(o), free(e);
  /* with no --index, $FOIL_SERVE still names the server */
  fake_reset(&a), fake_reset(&b);
  char *a2[] = {"search", "--root", root, "--vector-file", vf, NULL};
  rc = run(cmd_search, a2, &o, &e);
  CHECKF(rc == 0 && b.requests == 1 && a.requests == 0, "rc %d (%s)", rc, e);
  free(o), free(e);
  unsetenv("FOIL_SERVE");
  /* a server that answers for another index than --index: refused */
  char *a3[] = {"search", "--index", "wiki", "--server", b.ep, "--root", root, "--vector-file", vf, NULL};
  rc = run(cmd_search, a3, &o, &e);
  CHECKF(rc == FOIL_EINVAL && strstr(e, "answers for index other, not wiki"), "rc %d: %s", rc, e);
  free(o), free(e);

  /* a subnormal (np.savetxt writes them) is a number: strtof's ERANGE on
   * underflow used to refuse it; overflow is still refused */
  write_text(vf, "1e-40 0.5\n");
  fake_reset(&a);
  rc = run(cmd_search, a1, &o, &e);
  CHECKF(rc == 0 && a.requests == 1 && a.first >= 0 && a.first < 1e-39f, "rc %d (%s), first %g", rc, e,
         (double)a.first);
  free(o), free(e);
  write_text(vf, "1e39 0.5\n");
  rc = run(cmd_search, a1, &o, &e);
  CHECKF(rc == FOIL_EINVAL && strstr(e, "vector 1: '1e39 0.5' is out of float32's range"), "rc %d: %s", rc, e);
  free(o), free(e);

  /* 2500 queries: three requests of at most 1024 (foil-serve's limit),
   * merged in order */
  FILE *f = fopen(vf, "w");
  for (int i = 0; i < 2500; i++) fprintf(f, "%d 1\n", i);
  fclose(f);
  fake_reset(&a);
  rc = run(cmd_search, a1, &o, &e);
  CHECKF(rc == 0, "rc %d: %s", rc, e);
  CHECKF(a.requests == 3 && a.queries == 2500 && a.max_per_request == 1024, "%d requests, %zu queries, at most %zu",
         a.requests, a.queries, a.max_per_request);
  CHECK(strstr(o, "index wiki version 7 (3.0 ms in the server)"));
  CHECK(strstr(o, "\nquery 2500\n") && strstr(o, "query 1025\nRANK"));
  /* query 1025's hit is the server's 1025th query (id 1024, score 1024) */
  const char *q = strstr(o, "query 1025\n");
  const char *row = q ? strchr(strchr(q, '\n') + 1, '\n') : NULL;
  long id = -1;
  double score = -1;
  CHECKF(row && sscanf(row, " 1 %ld - %lf", &id, &score) == 2 && id == 1024 && score == 1024, "%.200s",
         q ? q : o);
  free(o), free(e);
  fake_reset(&a);
  char *a6[] = {"search", "--index", "wiki", "--root", root, "--vector-file", vf, "--json", NULL};
  rc = run(cmd_search, a6, &o, &e);
  cJSON *j = cJSON_Parse(o);
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "results");
  CHECKF(rc == 0 && cJSON_GetArraySize(res) == 2500, "rc %d: %s", rc, e);
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(res, 2499), "ids");
  CHECKF(ids && cJSON_GetArraySize(ids) == 1, "%.200s", o);
  cJSON_Delete(j);
  free(o), free(e);
  /* the index swapped between two requests: never a mixed answer */
  fake_reset(&a);
  a.mix = 1;
  rc = run(cmd_search, a6, &o, &e);
  CHECKF(rc == FOIL_EABORTED && strstr(e, "queries 1..1024 were answered by wiki version 7") &&
             strstr(e, "queries 1025..2048 by wiki version 8") && strstr(e, "run the search again") && !o[0],
         "rc %d: %s", rc, e);
  free(o), free(e);
  a.mix = 0;

  /* --opt=VALUE forms, as the job commands take them */
  write_text(vf, "0.25 0.5\n");
  fake_reset(&a);
  char srv_eq[300];
  snprintf(srv_eq, sizeof srv_eq, "--server=%s", a.ep);
  char *a8[] = {"search", "--index=wiki", srv_eq, "--timeout=10", "-k=3", "--root", root, "--vector-file=-", NULL};
  int fd = open(vf, O_RDONLY), si = dup(0);
  dup2(fd, 0);
  rc = run(cmd_search, a8, &o, &e);
  dup2(si, 0);
  close(fd), close(si);
  CHECKF(rc == 0 && a.requests == 1, "rc %d: %s", rc, e);
  free(o), free(e);
  /* $FOIL_TIMEOUT is read, and checked */
  setenv("FOIL_TIMEOUT", "abc", 1);
  rc = run(cmd_search, a1, &o, &e);
  CHECKF(rc == FOIL_EINVAL && strstr(e, "$FOIL_TIMEOUT must be seconds") && strstr(e, "abc"), "rc %d: %s", rc, e);
  free(o), free(e);
  unsetenv("FOIL_TIMEOUT");
  /* --key=FILE is the key (a missing one is named), not "unexpected" */
  char key_eq[720], skey_eq[720];
  snprintf(key_eq, sizeof key_eq, "--key=%s", path_in("nokey.key_secret"));
  snprintf(skey_eq, sizeof skey_eq, "--server-key=%s", path_in("noserver.key"));
  char *a7[] = {"search", "--index", "wiki", "--root", root, "--vector-file", vf, key_eq, skey_eq, NULL};
  rc = run(cmd_search, a7, &o, &e);
  CHECKF(rc != 0 && strstr(e, "nokey.key_secret") && !strstr(e, "unexpected"), "rc %d: %s", rc, e);
  free(o), free(e);
  fake_stop(&a);
  fake_stop(&b);
}

/* ---- foil jobs against a stand-in coordinator ------------------------------------------------ */

/* Answers ListJobs with the jobs in the states asked for (all: none asked)
 * and the JobList's now (0: left out, as an older coordinator does), and
 * Workers with its workers (none unless set) and the same now. */
typedef struct {
  void *ctx, *sock;
  char ep[256];
  Foil__V1__Job **jobs; /* borrowed, newest first as the coordinator sends them */
  size_t n_jobs;
  Foil__V1__WorkerInfo **workers; /* borrowed */
  size_t n_workers;
  double now;
  volatile int stop;
  pthread_t th;
} fake_coord;

static void *coord_main(void *arg) {
  fake_coord *f = arg;
  while (!f->stop) {
    zmq_pollitem_t it = {.socket = f->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 50) <= 0) continue;
    wire_msg m;
    if (wire_recv(f->sock, &m, 1, 64u << 20, 0, NULL)) {
      wire_msg_close(&m);
      continue;
    }
    Foil__V1__Request *q = foil__v1__request__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
    Foil__V1__JobList jl = FOIL__V1__JOB_LIST__INIT;
    Foil__V1__WorkerList wl = FOIL__V1__WORKER_LIST__INIT;
    Foil__V1__Job *pick[16];
    if (q && q->body_case == FOIL__V1__REQUEST__BODY_LIST) {
      for (size_t i = 0; i < f->n_jobs && jl.n_jobs < 16; i++) {
        int want = q->list->n_states == 0;
        for (size_t k = 0; k < q->list->n_states && !want; k++) want = (int)q->list->states[k] == (int)f->jobs[i]->state;
        if (want) pick[jl.n_jobs++] = f->jobs[i];
      }
      jl.jobs = pick, jl.now = f->now;
      r.body_case = FOIL__V1__REPLY__BODY_JOBS, r.jobs = &jl;
    } else {
      wl.workers = f->workers, wl.n_workers = f->n_workers, wl.now = f->now;
      r.body_case = FOIL__V1__REPLY__BODY_WORKERS, r.workers = &wl;
    }
    if (q) {
      r.request_id = q->request_id;
      wire_reply(f->sock, &m, &r.base, NULL);
      foil__v1__request__free_unpacked(q, NULL);
    }
    wire_msg_close(&m);
  }
  return NULL;
}

/* Starts f's thread on a fresh ROUTER bound to loopback (f->ep), with no
 * keys in the environment; coord_stop joins it and closes the socket. */
static void coord_start(fake_coord *f) {
  unsetenv("FOIL_KEY"), unsetenv("FOIL_KEYS"), unsetenv("FOIL_SERVER_KEY"), unsetenv("FOIL_TIMEOUT");
  unsetenv("FOIL_COORDINATOR");
  memset(f, 0, sizeof *f);
  f->ctx = zmq_ctx_new();
  f->sock = zmq_socket(f->ctx, ZMQ_ROUTER);
  int zero = 0;
  zmq_setsockopt(f->sock, ZMQ_LINGER, &zero, sizeof zero);
  CHECK(zmq_bind(f->sock, "tcp://127.0.0.1:*") == 0);
  size_t len = sizeof f->ep;
  zmq_getsockopt(f->sock, ZMQ_LAST_ENDPOINT, f->ep, &len);
  pthread_create(&f->th, NULL, coord_main, f);
}

static void coord_stop(fake_coord *f) {
  f->stop = 1;
  pthread_join(f->th, NULL);
  zmq_close(f->sock);
  zmq_ctx_term(f->ctx);
}

/* The line of `foil jobs` or `foil workers` output whose first column is
 * `first` (the caller's buf), "" if none. */
static const char *row_of(const char *out, const char *first, char *buf, size_t n) {
  char key[80];
  snprintf(key, sizeof key, "\n%s ", first);
  const char *at = strstr(out, key);
  buf[0] = 0;
  if (at) snprintf(buf, n, "%.*s", (int)strcspn(at + 1, "\n"), at + 1);
  return buf;
}

/* `fn args --json` prints the coordinator's clock `now` and n entries
 * under `key`. */
static void json_has_now(int (*fn)(int, char **), char **args, const char *key, int n, double now) {
  char *o, *e;
  int rc = run(fn, args, &o, &e);
  cJSON *js = cJSON_Parse(o);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(js, "now");
  CHECKF(rc == 0 && cJSON_IsNumber(t) && t->valuedouble == now, "rc %d: %s %s", rc, o, e);
  CHECKF(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(js, key)) == n, "%s", o);
  cJSON_Delete(js);
  free(o), free(e);
}

static void test_jobs_clock(void) {
  fake_coord f;
  coord_start(&f);

  /* a coordinator whose clock reads 2001 (T + 1000), whatever this host's
   * says: job 1 running since T, job 2 ended 100 s ago after 30 s, job 3
   * ended two hours ago */
  const double T = 1e9;
  Foil__V1__Job j1 = FOIL__V1__JOB__INIT, j2 = FOIL__V1__JOB__INIT, j3 = FOIL__V1__JOB__INIT;
  j1.id = 1, j1.state = FOIL__V1__JOB_STATE__JOB_RUNNING, j1.start_time = T;
  j2.id = 2, j2.state = FOIL__V1__JOB_STATE__JOB_COMPLETED, j2.start_time = T + 870, j2.end_time = T + 900;
  j3.id = 3, j3.state = FOIL__V1__JOB_STATE__JOB_COMPLETED, j3.start_time = T - 9000, j3.end_time = T - 6200;
  Foil__V1__Job *jobs[] = {&j3, &j2, &j1};
  f.jobs = jobs, f.n_jobs = 3, f.now = T + 1000;
  char root[700];
  snprintf(root, sizeof root, "%s", path_in("jobsroot"));
  char *a1[] = {"jobs", "--coordinator", f.ep, "--root", root, NULL};
  char *o, *e;
  int rc = run(cmd_jobs, a1, &o, &e);
  CHECKF(rc == 0, "rc %d: %s", rc, e);
  char row[256];
  /* ELAPSED by the local clock would be some 25 years, and job 2 would
   * have ended long before the last hour */
  CHECKF(strstr(row_of(o, "1", row, sizeof row), " 16:40 "), "%s", o);
  CHECKF(strstr(row_of(o, "2", row, sizeof row), " 0:30 "), "job 2 ended 100 s ago by the coordinator's clock: %s", o);
  CHECKF(!strstr(o, "\n3 "), "job 3 ended two hours ago: %s", o);
  free(o), free(e);
  /* --json passes the coordinator's now on */
  char *a2[] = {"jobs", "--coordinator", f.ep, "--root", root, "--json", NULL};
  json_has_now(cmd_jobs, a2, "jobs", 2, T + 1000);

  /* an older coordinator (no now): the local clock, as before */
  j1.start_time = log_now() - 1000;
  f.now = 0;
  rc = run(cmd_jobs, a1, &o, &e);
  CHECKF(rc == 0, "rc %d: %s", rc, e);
  row_of(o, "1", row, sizeof row);
  CHECKF(strstr(row, " 16:40 ") || strstr(row, " 16:41 "), "%s", o);
  CHECKF(!row_of(o, "2", row, sizeof row)[0] && !row_of(o, "3", row, sizeof row)[0], "jobs 2 and 3 ended in 2001: %s", o);
  free(o), free(e);
  coord_stop(&f);
}

static void test_workers_clock(void) {
  fake_coord f;
  coord_start(&f);
  /* a coordinator whose clock reads 2001 (T + 1000), whatever this host's
   * says: w1 heard 5 s ago, w2 two hours ago */
  const double T = 1e9;
  Foil__V1__WorkerInfo w1 = FOIL__V1__WORKER_INFO__INIT, w2 = FOIL__V1__WORKER_INFO__INIT;
  w1.name = "w1", w1.host = "node1", w1.state = FOIL__V1__WORKER_STATE__WORKER_IDLE, w1.slots = 2;
  w1.last_heartbeat = T + 995, w1.registered_time = T;
  w2.name = "w2", w2.host = "node2", w2.state = FOIL__V1__WORKER_STATE__WORKER_DOWN, w2.slots = 2;
  w2.last_heartbeat = T - 6200, w2.registered_time = T - 9000;
  Foil__V1__WorkerInfo *ws[] = {&w1, &w2};
  f.workers = ws, f.n_workers = 2, f.now = T + 1000;
  char *a1[] = {"workers", "--coordinator", f.ep, NULL};
  char *o, *e;
  int rc = run(cmd_workers, a1, &o, &e);
  CHECKF(rc == 0, "rc %d: %s", rc, e);
  char row[256];
  /* by the local clock both would read some 25 years ago ("9000d ago") */
  CHECKF(strstr(row_of(o, "w1", row, sizeof row), " 5s ago "), "w1 heard 5 s ago by the coordinator's clock: %s",
         o);
  CHECKF(strstr(row_of(o, "w2", row, sizeof row), " 2h ago "), "w2 heard two hours ago: %s", o);
  free(o), free(e);
  /* --json passes the coordinator's now on */
  char *a2[] = {"workers", "--coordinator", f.ep, "--json", NULL};
  json_has_now(cmd_workers, a2, "workers", 2, T + 1000);

  /* an older coordinator (no now): the local clock, as before */
  w1.last_heartbeat = log_now() - 3;
  f.now = 0;
  rc = run(cmd_workers, a1, &o, &e);
  CHECKF(rc == 0, "rc %d: %s", rc, e);
  row_of(o, "w1", row, sizeof row);
  CHECKF(strstr(row, " 3s ago ") || strstr(row, " 4s ago "), "%s", o);
  CHECKF(strstr(row_of(o, "w2", row, sizeof row), "d ago "), "w2 heard in 2001: %s", o);
  free(o), free(e);
  coord_stop(&f);
}

int main(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/clicmd-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) return 1;
  if (mkdir(dir, 0700)) return 1;
  RUN(test_data_args);
  RUN(test_tokenizer_encode);
  RUN(test_tokenizer_train);
  RUN(test_model_dashdash);
  RUN(test_keys_opt_eq);
  RUN(test_search);
  RUN(test_jobs_clock);
  RUN(test_workers_clock);
  if (system(cmd)) return 1;
  TEST_EXIT();
}
