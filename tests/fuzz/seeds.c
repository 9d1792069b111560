/* seeds.c — writes the seed corpora of the fuzz targets into DIR/<target>/
 * (tests/fuzz/make_corpus.sh runs it into tests/fuzz/corpus). Each seed is a
 * valid input of its target (the first byte picks the path where the target
 * has several), so the fuzzer starts from inputs that reach deep.
 *
 *   fuzz_seeds DIR [TARGET...]   (the named targets only; default all)
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bzlib.h>
#include <lzma.h>
#include <zlib.h>

#include "common/fileio.h"
#include "foil/v1/control.pb-c.h"
#include "foil/v1/search.pb-c.h"
#include "foil/v1/worker.pb-c.h"
#include "model/bpe_train.h"
#include "model/encoder.h"
#include "model/optim.h"
#include "model/tokenizer.h"
#include "storage/ckpt.h"
#include "storage/h5io.h"
#include "storage/index.h"
#include "storage/negbank.h"
#include "storage/safetensors.h"
#include "storage/tokenizer_h5.h"
#include "worker/run/spec.h"
#include "worker/run/spec_proto.h"

static const char *out_dir;
static foil_err err;

static _Noreturn void die(const char *what) {
  fprintf(stderr, "fuzz_seeds: %s: %s\n", what, err.msg);
  exit(1);
}

/* DIR/target/name = prefix byte (if >= 0) + data */
static void put(const char *target, const char *name, int prefix, const void *data, size_t len) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", out_dir, target);
  if (foil_mkdirs(p, &err)) die(p);
  snprintf(p, sizeof p, "%s/%s/%s", out_dir, target, name);
  uint8_t *buf = malloc(len + 1);
  size_t n = 0;
  if (prefix >= 0) buf[n++] = (uint8_t)prefix;
  memcpy(buf + n, data, len);
  if (foil_write_file_atomic(p, buf, n + len, &err)) die(p);
  free(buf);
}

static void put_msg(const char *target, const char *name, int prefix, const ProtobufCMessage *m) {
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  protobuf_c_message_pack(m, buf);
  put(target, name, prefix, buf, len);
  free(buf);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fuzz_seeds: cannot read %s\n", path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (fread(b, 1, (size_t)n, f) != (size_t)n) exit(1);
  b[n] = 0;
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* ---- control API and worker protocol ------------------------------------------ */

static void control_seeds(void) {
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.request_id = 7;
  /* submit: a command job and a pretrain job */
  Foil__V1__Resources res = FOIL__V1__RESOURCES__INIT;
  res.ranks = 1;
  Foil__V1__JobSpec s = FOIL__V1__JOB_SPEC__INIT;
  char *argv[] = {"sh", "-c", "echo hi; sleep 1"};
  s.kind = "command", s.name = "hello", s.argv = argv, s.n_argv = 3, s.resources = &res, s.spec_json = "{}";
  Foil__V1__Dependency dep = FOIL__V1__DEPENDENCY__INIT, *deps[] = {&dep};
  dep.job_id = 1, dep.type = FOIL__V1__DEPENDENCY_TYPE__AFTER_OK;
  s.dependencies = deps, s.n_dependencies = 1;
  Foil__V1__SubmitRequest sr = FOIL__V1__SUBMIT_REQUEST__INIT;
  sr.spec = &s, sr.submission_id = "0123456789abcdef0123456789abcdef";
  q.body_case = FOIL__V1__REQUEST__BODY_SUBMIT, q.submit = &sr;
  put_msg("coord_api", "submit-command", -1, &q.base);
  put_msg("envelope", "request-submit", 0, &q.base);
  Foil__V1__JobSpec p = FOIL__V1__JOB_SPEC__INIT;
  p.kind = "pretrain", p.name = "tiny", p.resources = &res,
  p.spec_json = "{\"data\": {\"dataset\": \"d\"}, \"model\": {\"tokenizer\": \"vocab.txt\"}, \"steps\": 2}";
  sr.spec = &p, sr.submission_id = "";
  put_msg("coord_api", "submit-pretrain", -1, &q.base);
  Foil__V1__JobSpec v = FOIL__V1__JOB_SPEC__INIT;
  v.kind = "serve", v.name = "srv", v.spec_json = "{\"index\": \"wordnet\", \"bind\": \"tcp://127.0.0.1:0\"}";
  sr.spec = &v;
  put_msg("coord_api", "submit-serve", -1, &q.base);
  Foil__V1__GetJobRequest g = FOIL__V1__GET_JOB_REQUEST__INIT;
  g.job_id = 1;
  q.body_case = FOIL__V1__REQUEST__BODY_GET, q.get = &g;
  put_msg("coord_api", "get", -1, &q.base);
  Foil__V1__ListJobsRequest l = FOIL__V1__LIST_JOBS_REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_LIST, q.list = &l;
  put_msg("coord_api", "list", -1, &q.base);
  put_msg("envelope", "request-list", 0, &q.base);
  Foil__V1__CancelRequest c = FOIL__V1__CANCEL_REQUEST__INIT;
  c.job_id = 2;
  q.body_case = FOIL__V1__REQUEST__BODY_CANCEL, q.cancel = &c;
  put_msg("coord_api", "cancel", -1, &q.base);
  Foil__V1__LogsRequest lg = FOIL__V1__LOGS_REQUEST__INIT;
  lg.job_id = 1;
  q.body_case = FOIL__V1__REQUEST__BODY_LOGS, q.logs = &lg;
  put_msg("coord_api", "logs", -1, &q.base);
  Foil__V1__WorkersRequest w = FOIL__V1__WORKERS_REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_WORKERS, q.workers = &w;
  put_msg("coord_api", "workers", -1, &q.base);
  Foil__V1__DrainRequest d = FOIL__V1__DRAIN_REQUEST__INIT;
  d.worker = "fuzz-worker";
  q.body_case = FOIL__V1__REQUEST__BODY_DRAIN, q.drain = &d;
  put_msg("coord_api", "drain", -1, &q.base);

  /* a reply, as the CLI decodes it */
  Foil__V1__Job job = FOIL__V1__JOB__INIT;
  job.id = 3, job.spec = &p, job.state = FOIL__V1__JOB_STATE__JOB_RUNNING;
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  r.request_id = 7, r.body_case = FOIL__V1__REPLY__BODY_JOB, r.job = &job;
  put_msg("envelope", "reply-job", 1, &r.base);
}

static void worker_seeds(void) {
  Foil__V1__WorkerMessage m = FOIL__V1__WORKER_MESSAGE__INIT;
  m.request_id = 3;
  Foil__V1__Register reg = FOIL__V1__REGISTER__INIT;
  Foil__V1__AttemptRef ref = FOIL__V1__ATTEMPT_REF__INIT, *refs[] = {&ref};
  ref.job_id = 1, ref.token = 1;
  reg.name = "fuzz-worker", reg.host = "localhost", reg.slots = 4, reg.version = "0.1.0";
  reg.running = refs, reg.n_running = 1;
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, m.register_ = &reg;
  put_msg("worker_proto", "register", -1, &m.base);
  put_msg("envelope", "worker-register", 2, &m.base);
  Foil__V1__Heartbeat hb = FOIL__V1__HEARTBEAT__INIT;
  hb.running = refs, hb.n_running = 1;
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, m.heartbeat = &hb;
  put_msg("worker_proto", "heartbeat", -1, &m.base);
  Foil__V1__Started st = FOIL__V1__STARTED__INIT;
  st.job_id = 1, st.token = 1, st.resume_from = "jobs/1/ckpt/step_2.h5";
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_STARTED, m.started = &st;
  put_msg("worker_proto", "started", -1, &m.base);
  Foil__V1__Progress pg = FOIL__V1__PROGRESS__INIT;
  pg.value = 1, pg.total = 2, pg.message = "step 1/2", pg.metrics_json = "{\"loss\": 1.5, \"checkpoint_step\": 1}";
  Foil__V1__ProgressReport pr = FOIL__V1__PROGRESS_REPORT__INIT;
  pr.job_id = 1, pr.token = 1, pr.progress = &pg;
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_PROGRESS, m.progress = &pr;
  put_msg("worker_proto", "progress", -1, &m.base);
  Foil__V1__Finished fin = FOIL__V1__FINISHED__INIT;
  fin.job_id = 2, fin.token = 2, fin.exit_code = 0;
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_FINISHED, m.finished = &fin;
  put_msg("worker_proto", "finished", -1, &m.base);
  put_msg("envelope", "worker-finished", 2, &m.base);
  Foil__V1__Finished gfin = FOIL__V1__FINISHED__INIT, *gfins[] = {&gfin};
  gfin.job_id = 1, gfin.token = 1, gfin.state = FOIL__V1__JOB_STATE__JOB_NODE_FAIL, gfin.message = "worker stopped";
  Foil__V1__Goodbye bye = FOIL__V1__GOODBYE__INIT;
  bye.finished = gfins, bye.n_finished = 1;
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_GOODBYE, m.goodbye = &bye;
  put_msg("worker_proto", "goodbye", -1, &m.base);
}

static void serve_seeds(void) {
  Foil__V1__ServeRequest q = FOIL__V1__SERVE_REQUEST__INIT;
  q.request_id = 5;
  float v1[4] = {0.5f, 0.5f, 0.5f, 0.5f}, v2[4] = {1, 0, 0, 0};
  Foil__V1__SearchQuery a = FOIL__V1__SEARCH_QUERY__INIT, b = FOIL__V1__SEARCH_QUERY__INIT, t = FOIL__V1__SEARCH_QUERY__INIT;
  a.vector = v1, a.n_vector = 4;
  b.vector = v2, b.n_vector = 4;
  t.text = "hello";
  Foil__V1__SearchQuery *qs[] = {&a, &b};
  Foil__V1__SearchRequest s = FOIL__V1__SEARCH_REQUEST__INIT;
  s.queries = qs, s.n_queries = 2, s.k = 5;
  q.body_case = FOIL__V1__SERVE_REQUEST__BODY_SEARCH, q.search = &s;
  put_msg("serve", "search-2", -1, &q.base);
  put_msg("envelope", "serve-search", 4, &q.base);
  s.id_range = 1, s.id_min = 104, s.id_max = 115, s.k = 3;
  put_msg("serve", "search-range", -1, &q.base);
  Foil__V1__SearchQuery *qt[] = {&t};
  s.queries = qt, s.n_queries = 1, s.id_range = 0;
  put_msg("serve", "search-text", -1, &q.base);
  Foil__V1__ServeStatusRequest st = FOIL__V1__SERVE_STATUS_REQUEST__INIT;
  q.body_case = FOIL__V1__SERVE_REQUEST__BODY_STATUS, q.status = &st;
  put_msg("serve", "status", -1, &q.base);
  Foil__V1__ReloadRequest rl = FOIL__V1__RELOAD_REQUEST__INIT;
  rl.version = 1;
  q.body_case = FOIL__V1__SERVE_REQUEST__BODY_RELOAD, q.reload = &rl;
  put_msg("serve", "reload", -1, &q.base);
  int64_t ids[2] = {101, 107};
  float sc[2] = {0.9f, 0.5f};
  char *keys[] = {"doc-1", "doc-7"};
  Foil__V1__SearchHits h = FOIL__V1__SEARCH_HITS__INIT, *hs[] = {&h};
  h.ids = ids, h.n_ids = 2, h.scores = sc, h.n_scores = 2, h.keys = keys, h.n_keys = 2;
  Foil__V1__SearchReply sr = FOIL__V1__SEARCH_REPLY__INIT;
  sr.results = hs, sr.n_results = 1, sr.version = 1;
  Foil__V1__ServeReply r = FOIL__V1__SERVE_REPLY__INIT;
  r.request_id = 5, r.body_case = FOIL__V1__SERVE_REPLY__BODY_SEARCH, r.search = &sr;
  put_msg("envelope", "serve-reply", 5, &r.base);
}

/* ---- specs ------------------------------------------------------------------------ */

static void spec_seeds(void) {
  static const struct { const char *file; int which; } ex[] = {
      {"job-command.json", 0},         {"pretrain-wordnet-tiny.json", 0}, {"pretrain-wordnet-tiny.json", 1},
      {"pretrain-code-loop.json", 1},  {"refresh-wordnet.json", 2},       {"refresh-code-mine.json", 2},
      {"serve-wordnet.json", 3},       {"serve-wordnet.json", 0},
  };
  for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
    char p[1024], name[128];
    snprintf(p, sizeof p, "%s/examples/%s", FOIL_SOURCE_DIR, ex[i].file);
    size_t len;
    char *text = slurp(p, &len);
    snprintf(name, sizeof name, "%d-%s", ex[i].which, ex[i].file);
    put("spec", name, ex[i].which, text, len);
    if (ex[i].which == 1) {  /* the same spec as foil-run's message */
      spec s;
      uint8_t *buf;
      size_t n;
      if (spec_parse(&s, text, &err) || spec_proto_pack(&s, &buf, &n, &err)) die(p);
      snprintf(name, sizeof name, "pretrain-%s", ex[i].file);
      put("envelope", name, 6, buf, n);
      free(buf);
      spec_free(&s);
    }
    free(text);
  }
}

/* ---- tokenizers and HDF5 files ------------------------------------------------------ */

static const char *const WP[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!",
                                 "un", "##aff", "##able", "cafe", "naive", "\xe4\xb8\xad", "\xe6\x96\x87",
                                 "a", "##a", "##b", ".", "i", "##stanbul", "x"};

static int put_tokenizer(h5io *f, void *ctx, foil_err *e) { return tokenizer_h5_write(f, "tokenizer", ctx, e); }

/* An h5 seed for both paths of fuzz_h5: "<name>" the whole file as written
 * (raw: the integrity gate), "<name>-signed" without its 512-byte user
 * block, which the target puts back with a valid header (foil's checks
 * after the gate). */
static void h5_seeds(const char *name, int reader, const char *path, int raw) {
  size_t len;
  char *b = slurp(path, &len);
  if (len <= H5IO_HEADER_BYTES) die(path);
  if (raw) put("h5", name, reader, b, len);
  char signed_name[64];
  snprintf(signed_name, sizeof signed_name, "%s-signed", name);
  put("h5", signed_name, reader + 3, b + H5IO_HEADER_BYTES, len - H5IO_HEADER_BYTES);
  free(b);
}

static void token_and_h5_seeds(const char *tmp) {
  tokenizer *wp = NULL, *bpe = NULL;
  if (tokenizer_from_strings(&wp, TOKENIZER_WORDPIECE, WP, (int)(sizeof WP / sizeof WP[0]), NULL, 0, &err))
    die("wordpiece");
  static const char *texts[] = {"Hello, world! unaffable cafe", "na\xc3\xafve Caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87",
                                "it's  42\ttimes\n\xf0\x9f\x98\x80", "\xff\xfe bad utf-8"};
  for (int i = 0; i < 4; i++) {
    char name[32];
    snprintf(name, sizeof name, "wp-%d", i);
    put("tokenizer", name, 0, texts[i], strlen(texts[i]));
    snprintf(name, sizeof name, "bpe-%d", i);
    put("tokenizer", name, 1, texts[i], strlen(texts[i]));
  }
  bpe_trainer *tr = NULL;
  const char *sp = "<|endoftext|>";
  if (bpe_trainer_new(&tr, &err) || bpe_trainer_feed(tr, texts[0], strlen(texts[0]), "t", &err) ||
      bpe_trainer_feed(tr, texts[2], strlen(texts[2]), "t", &err) ||
      bpe_trainer_train(tr, 262, 1, &sp, 1, &bpe, &err))
    die("bpe");
  bpe_trainer_destroy(&tr);
  uint8_t *blob;
  size_t n;
  if (tokenizer_serialize(wp, &blob, &n, &err)) die("serialize");
  put("tokenizer", "blob-wp", 2, blob, n);
  free(blob);
  if (tokenizer_serialize(bpe, &blob, &n, &err)) die("serialize");
  put("tokenizer", "blob-bpe", 2, blob, n);
  free(blob);
  int32_t ids[] = {2, 5, 7, 6, 8, 3, 9, 10, 11, -1, 100000};
  put("tokenizer", "ids", 3, ids, sizeof ids);

  /* a checkpoint of a tiny encoder, with optimizer, queue, cursor, tokenizer */
  encoder_config cfg;
  encoder_config_default(&cfg);
  cfg.n_layers = 1, cfg.d_model = 4, cfg.n_heads = 1, cfg.d_ff = 8, cfg.vocab = 23, cfg.max_len = 8;
  encoder *enc = NULL;
  optim *opt = NULL;
  optim_config oc;
  optim_config_default(&oc);
  if (encoder_new(&enc, &cfg, &err) || optim_new(&opt, encoder_num_params(enc), &oc, &err)) die("encoder");
  encoder_init(enc, 1);
  float queue[2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0}, scalars[1] = {0.05f};
  int64_t cursor[2] = {3, 1};
  ckpt_state s = {.step = 2, .spec_json = "{\"steps\": 2}", .enc = enc, .opt = opt, .queue = queue, .queue_k = 2,
                  .queue_d = 4, .queue_ptr = 1, .queue_fill = 2, .seed = 1, .cursor = cursor, .ncursor = 2,
                  .scalars = scalars, .nscalars = 1};
  char p[1024];
  snprintf(p, sizeof p, "%s/step_2.h5", tmp);
  if (ckpt_save(p, &s, put_tokenizer, wp, &err)) die("ckpt");
  h5_seeds("ckpt", 0, p, 0);
  ckpt_state bare = {.step = 1, .enc = enc};
  if (ckpt_save(p, &bare, NULL, NULL, &err)) die("ckpt");
  h5_seeds("ckpt-bare", 0, p, 1);
  optim_destroy(&opt);
  encoder_destroy(&enc);

  /* an embedding shard (float16, with keys) */
  int version = 0;
  if (index_version_begin(tmp, "seed", &version, &err)) die("index");
  float x[3 * 4] = {1, 0, 0, 0, 0, 0.6f, 0.8f, 0, 0.5f, 0.5f, 0.5f, 0.5f};
  int64_t rid[3] = {0, 1, 2};
  char *keys[] = {"a", "b", "c"};
  index_meta m = {.version = version, .shard = 0, .n_shards = 1, .dim = 4, .dtype = VS_F16, .normalized = 1,
                  .step = 2};
  snprintf(m.name, sizeof m.name, "seed");
  snprintf(m.checkpoint, sizeof m.checkpoint, "jobs/1/ckpt/step_2.h5");
  snprintf(m.model_hash, sizeof m.model_hash, "0badcafe");
  if (index_shard_write(tmp, &m, rid, keys, x, 3, &err)) die("shard");
  snprintf(p, sizeof p, "%s/indexes/seed/v%d/shard_0.h5", tmp, version);
  h5_seeds("shard-f16", 1, p, 1);

  /* a negatives bank: 2 pairs, 2 negatives each */
  negbank b = {0};
  snprintf(b.meta.index, sizeof b.meta.index, "seed");
  snprintf(b.meta.dataset, sizeof b.meta.dataset, "d");
  snprintf(b.meta.split, sizeof b.meta.split, "train");
  b.meta.version = 1, b.meta.n_pairs = 2, b.meta.m = 2, b.meta.margin = 0.1, b.meta.created = 1;
  int64_t rows[4] = {0, 2, 1, -1};
  char *nt[4] = {"x", "y", "z", ""};
  b.rows = rows, b.texts = nt;
  snprintf(p, sizeof p, "%s/bank.h5", tmp);
  if (negbank_write(p, &b, &err)) die("negbank");
  h5_seeds("negbank", 2, p, 1);
  tokenizer_destroy(&wp);
  tokenizer_destroy(&bpe);
}

/* ---- foreign formats (fuzz_foreign) --------------------------------------------------
 * Each seed is the first byte that picks the reader (fuzz_foreign.c), then
 * its input; files of a folder are pieces (4-byte little-endian length,
 * then the bytes) after a mask byte naming which are present. */

typedef struct {
  uint8_t *b;
  size_t n, cap;
} blob;

static void blob_put(blob *o, const void *data, size_t n) {
  if (o->n + n > o->cap) {
    while (o->n + n > o->cap) o->cap = o->cap ? 2 * o->cap : 4096;
    if (!(o->b = realloc(o->b, o->cap))) die("out of memory");
  }
  if (n) memcpy(o->b + o->n, data, n);
  o->n += n;
}

static void blob_piece(blob *o, const void *data, size_t n) {
  uint8_t l[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
  blob_put(o, l, 4);
  blob_put(o, data, n);
}

static void blob_str(blob *o, const char *s) { blob_put(o, s, strlen(s)); }

/* R's XDR serialize() format, by hand */
static void r_int(blob *o, int32_t v) {
  uint8_t b[4] = {(uint8_t)((uint32_t)v >> 24), (uint8_t)((uint32_t)v >> 16), (uint8_t)((uint32_t)v >> 8),
                  (uint8_t)v};
  blob_put(o, b, 4);
}

static void r_real(blob *o, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(u >> (56 - 8 * i));
  blob_put(o, b, 8);
}

static void r_header(blob *o, int version) {
  blob_str(o, "X\n");
  r_int(o, version);
  r_int(o, 0x040201);
  r_int(o, 0x030500);
  if (version == 3) {
    r_int(o, 5);
    blob_str(o, "UTF-8");
  }
}

/* CHARSXP: levels 8 UTF-8, 4 latin1, 64 ASCII; NULL: NA */
static void r_char(blob *o, const char *s, int levels) {
  r_int(o, 9 | levels << 12);
  if (!s) {
    r_int(o, -1);
    return;
  }
  r_int(o, (int32_t)strlen(s));
  blob_str(o, s);
}

static void r_sym(blob *o, const char *s) {
  r_int(o, 1);
  r_char(o, s, 64);
}

static void r_strs(blob *o, int n, const char *const *s) {
  r_int(o, 16);
  r_int(o, n);
  for (int i = 0; i < n; i++) r_char(o, s[i], 64);
}

/* an attribute pairlist of one `names` (or `class`) entry, ended */
static void r_attr1(blob *o, const char *tag, int n, const char *const *s) {
  r_int(o, 2 | 1 << 10);
  r_sym(o, tag);
  r_strs(o, n, s);
  r_int(o, 254);
}

/* list(x = c(1L, 2L, NA), y = c("a", NA, latin1 "cafe")) with names and a
 * second attribute referring back to the "names" symbol */
static void r_list(blob *o) {
  r_int(o, 19 | 1 << 9);
  r_int(o, 2);
  r_int(o, 13);
  r_int(o, 3);
  r_int(o, 1);
  r_int(o, 2);
  r_int(o, INT32_MIN);
  r_int(o, 16);
  r_int(o, 3);
  r_char(o, "a", 64);
  r_char(o, NULL, 0);
  r_char(o, "caf\xe9", 4);
  r_int(o, 2 | 1 << 10);
  r_sym(o, "names"); /* ref 1 */
  r_strs(o, 2, (const char *const[]){"x", "y"});
  r_int(o, 2 | 1 << 10);
  r_sym(o, "comment"); /* ref 2 */
  r_int(o, 255 | 1 << 8);
  r_int(o, 254);
}

/* ALTREP: class info pairlist (class, package, type), state, attributes */
static void r_altrep_info(blob *o, const char *cls, int type) {
  r_int(o, 238);
  r_int(o, 2);
  r_sym(o, cls);
  r_int(o, 2);
  r_sym(o, "base");
  r_int(o, 2);
  r_int(o, 13);
  r_int(o, 1);
  r_int(o, type);
  r_int(o, 254);
}

/* a data frame (tibble-like classes) whose columns and row names use every
 * ALTREP form foil knows, a closure, an environment referring to itself,
 * and the other vector types */
static void r_zoo(blob *o) {
  r_int(o, 19 | 1 << 8 | 1 << 9);
  r_int(o, 9);
  /* 1: compact_intseq 1:5 */
  r_altrep_info(o, "compact_intseq", 13);
  r_int(o, 14), r_int(o, 3), r_real(o, 5), r_real(o, 1), r_real(o, 1);
  r_int(o, 254);
  /* 2: compact_realseq 0.5, 1.5, 2.5 */
  r_altrep_info(o, "compact_realseq", 14);
  r_int(o, 14), r_int(o, 3), r_real(o, 3), r_real(o, 0.5), r_real(o, 1);
  r_int(o, 254);
  /* 3: wrap_string around c("p", "q") with metadata */
  r_altrep_info(o, "wrap_string", 16);
  r_int(o, 2);
  r_strs(o, 2, (const char *const[]){"p", "q"});
  r_int(o, 2);
  r_int(o, 13), r_int(o, 2), r_int(o, 0), r_int(o, 0);
  r_int(o, 254);
  r_int(o, 254);
  /* 4: deferred_string of c(7L, NA) */
  r_altrep_info(o, "deferred_string", 16);
  r_int(o, 2);
  r_int(o, 13), r_int(o, 2), r_int(o, 7), r_int(o, INT32_MIN);
  r_int(o, 2);
  r_int(o, 13), r_int(o, 1), r_int(o, 1);
  r_int(o, 254);
  r_int(o, 254);
  /* 5: function(a = 1) a + 1, environment: the global one */
  r_int(o, 3 | 1 << 10);
  r_int(o, 253);
  r_int(o, 2 | 1 << 10);
  r_sym(o, "a");
  r_int(o, 14), r_int(o, 1), r_real(o, 1);
  r_int(o, 254);
  r_int(o, 6);
  r_sym(o, "+");
  r_int(o, 2);
  r_int(o, 255 | 9 << 8); /* the symbol `a`, ref 9 */
  r_int(o, 2);
  r_int(o, 14), r_int(o, 1), r_real(o, 1);
  r_int(o, 254);
  /* 6: an environment whose frame holds itself */
  r_int(o, 4);
  r_int(o, 0);
  r_int(o, 242);                        /* enclosure: the empty env */
  r_int(o, 2 | 1 << 10);                /* frame: self = <this env> */
  r_sym(o, "self");
  r_int(o, 255 | 11 << 8);              /* ref 11: this environment */
  r_int(o, 254);
  r_int(o, 254);                        /* no hash table */
  r_int(o, 254);                        /* no attributes */
  /* 7: complex, raw, logical in a list with a namespace and a builtin */
  r_int(o, 19);
  r_int(o, 5);
  r_int(o, 15), r_int(o, 1), r_real(o, 1), r_real(o, -1);
  r_int(o, 24), r_int(o, 3);
  blob_put(o, "\x00\x7f\xff", 3);
  r_int(o, 10), r_int(o, 2), r_int(o, 1), r_int(o, INT32_MIN);
  r_int(o, 249), r_int(o, 0), r_int(o, 2);
  r_char(o, "stats", 64);
  r_char(o, "4.2.2", 64);
  r_int(o, 8), r_int(o, 3);
  blob_str(o, "sum");
  /* 8: an S4 object, 9: an expression */
  r_int(o, 25);
  r_int(o, 20), r_int(o, 1);
  r_sym(o, "z");
  /* attributes: names, class, row.names (compact c(NA, -5L)) */
  r_int(o, 2 | 1 << 10);
  r_sym(o, "names");
  r_strs(o, 9, (const char *const[]){"i", "r", "s", "d", "f", "e", "l", "s4", "ex"});
  r_int(o, 2 | 1 << 10);
  r_sym(o, "class");
  r_strs(o, 3, (const char *const[]){"tbl_df", "tbl", "data.frame"});
  r_int(o, 2 | 1 << 10);
  r_sym(o, "row.names");
  r_int(o, 13), r_int(o, 2), r_int(o, INT32_MIN), r_int(o, -5);
  r_int(o, 254);
}

static size_t zpack(const blob *in, uint8_t *out, size_t cap, int gzip) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 9, Z_DEFLATED, gzip ? 31 : 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) die("zlib");
  z.next_in = in->b;
  z.avail_in = (uInt)in->n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) die("zlib");
  size_t n = cap - z.avail_out;
  deflateEnd(&z);
  return n;
}

/* a lazy-load database: the .rdx (gzip'd: list(variables, references,
 * compressed)) as a piece, then the .rdb records (each: 4-byte big-endian
 * length, type byte when compressed >= 2, the stream) */
static void rdata_db_seed(const char *name, int compressed) {
  blob rdb = {0}, recs[2] = {{0}, {0}};
  r_header(&recs[0], 3);
  r_list(&recs[0]);
  r_header(&recs[1], 2);
  r_zoo(&recs[1]);
  int32_t off[2], len[2];
  static uint8_t z[1 << 16];
  for (int i = 0; i < 2; i++) {
    off[i] = (int32_t)rdb.n;
    uint8_t hdr[4] = {(uint8_t)(recs[i].n >> 24), (uint8_t)(recs[i].n >> 16), (uint8_t)(recs[i].n >> 8),
                      (uint8_t)recs[i].n};
    blob_put(&rdb, hdr, 4);
    size_t zn = 0;
    if (compressed == 1) {
      uLongf zl = sizeof z;
      if (compress2(z, &zl, recs[i].b, recs[i].n, 9) != Z_OK) die("zlib");
      zn = zl;
    } else if (compressed == 2) {
      if (i == 0) { /* bzip2 */
        unsigned int bl = sizeof z - 1;
        z[0] = '2';
        if (BZ2_bzBuffToBuffCompress((char *)z + 1, &bl, (char *)recs[i].b, (unsigned)recs[i].n, 1, 0, 0) != BZ_OK)
          die("bzip2");
        zn = bl + 1;
      } else { /* stored */
        z[0] = '0';
        memcpy(z + 1, recs[i].b, recs[i].n);
        zn = recs[i].n + 1;
      }
    } else { /* xz */
      size_t pos = 1;
      z[0] = 'X';
      if (lzma_easy_buffer_encode(1, LZMA_CHECK_CRC32, NULL, recs[i].b, recs[i].n, z, &pos, sizeof z) != LZMA_OK)
        die("xz");
      zn = pos;
    }
    blob_put(&rdb, z, zn);
    len[i] = (int32_t)(rdb.n - (size_t)off[i]);
    free(recs[i].b);
  }
  blob x = {0};
  r_header(&x, 3);
  r_int(&x, 19 | 1 << 9);
  r_int(&x, 3);
  r_int(&x, 19 | 1 << 9); /* variables: list(obj = c(off, len), zoo = ...) */
  r_int(&x, 2);
  for (int i = 0; i < 2; i++) r_int(&x, 13), r_int(&x, 2), r_int(&x, off[i]), r_int(&x, len[i]);
  r_attr1(&x, "names", 2, (const char *const[]){"obj", "zoo"});
  r_int(&x, 19); /* references: list() */
  r_int(&x, 0);
  if (compressed == 1) r_int(&x, 10), r_int(&x, 1), r_int(&x, 1); /* TRUE */
  else r_int(&x, 13), r_int(&x, 1), r_int(&x, compressed);
  r_attr1(&x, "names", 3, (const char *const[]){"variables", "references", "compressed"});
  size_t gn = zpack(&x, z, sizeof z, 1);
  blob in = {0};
  blob_piece(&in, z, gn);
  blob_put(&in, rdb.b, rdb.n);
  put("foreign", name, 2, in.b, in.n);
  free(in.b);
  free(x.b);
  free(rdb.b);
}

static void rdata_seeds(void) {
  static uint8_t z[1 << 16];
  for (int version = 2; version <= 3; version++) {
    blob o = {0};
    r_header(&o, version);
    r_list(&o);
    char name[32];
    snprintf(name, sizeof name, "rds-list-v%d", version);
    put("foreign", name, 1, o.b, o.n);
    if (version == 3) {
      put("foreign", "rds-list-gzip", 1, z, zpack(&o, z, sizeof z, 1));
      put("foreign", "rds-list-zlib", 1, z, zpack(&o, z, sizeof z, 0));
    }
    free(o.b);
  }
  blob o = {0};
  r_header(&o, 3);
  r_zoo(&o);
  put("foreign", "rds-altrep-env-closure", 1, o.b, o.n);
  free(o.b);
  rdata_db_seed("rdb-zlib", 1);
  rdata_db_seed("rdb-bzip2-stored", 2);
  rdata_db_seed("rdb-xz", 3);
}

static void safetensors_seeds(const char *tmp) {
  float a[6] = {1.5f, -2.25f, 3e-8f, 0.f, -0.f, 1e30f}, s = 7.f;
  uint8_t h[8] = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00}; /* F16 1, -2, 65504, 2^-24 */
  uint8_t bf[4] = {0x80, 0x3f, 0x60, 0xc0};                          /* BF16 1, -3.5 */
  int64_t ids[3] = {0, 1, 1LL << 40};
  st_entry e[] = {
      {.name = "layer.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = a},
      {.name = "half", .dtype = ST_F16, .ndim = 1, .shape = {4}, .data = h},
      {.name = "brain", .dtype = ST_BF16, .ndim = 2, .shape = {1, 2}, .data = bf},
      {.name = "ids", .dtype = ST_I64, .ndim = 2, .shape = {1, 3}, .data = ids},
      {.name = "scalar", .dtype = ST_F32, .ndim = 0, .data = &s},
      {.name = "empty", .dtype = ST_U8, .ndim = 2, .shape = {0, 4}, .data = ""},
  };
  const char *meta[] = {"format", "pt", "note", "\"quoted\"\n"};
  char p[1024];
  snprintf(p, sizeof p, "%s/seed.safetensors", tmp);
  if (st_write(p, e, (int)(sizeof e / sizeof e[0]), meta, 2, &err)) die(p);
  size_t len;
  char *b = slurp(p, &len);
  put("foreign", "st-mixed", 0, b, len);
  free(b);
  static const uint8_t empty[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  put("foreign", "st-empty", 0, empty, sizeof empty);
}

/* a zText module: per testament blocks of verses, as test_sword.c writes */
static void sword_testament(blob *o, const char *const *verses, int nblocks, int per_block) {
  blob bzs = {0}, bzv = {0}, bzz = {0};
  uint8_t zero[10] = {0};
  blob_put(&bzv, zero, 10); /* entry 0: empty */
  for (int b = 0; b < nblocks; b++) {
    char block[512] = "";
    for (int v = 0; v < per_block; v++) {
      const char *t = verses[b * per_block + v];
      uint32_t off = (uint32_t)strlen(block), sz = (uint32_t)strlen(t), blk = (uint32_t)b;
      strcat(block, t);
      uint8_t r[10];
      for (int i = 0; i < 4; i++) r[i] = (uint8_t)(blk >> (8 * i)), r[4 + i] = (uint8_t)(off >> (8 * i));
      r[8] = (uint8_t)sz, r[9] = (uint8_t)(sz >> 8);
      blob_put(&bzv, r, 10);
    }
    uint8_t z[1024];
    uLongf zl = sizeof z;
    if (compress(z, &zl, (const Bytef *)block, strlen(block)) != Z_OK) die("zlib");
    uint32_t rec[3] = {(uint32_t)bzz.n, (uint32_t)zl, (uint32_t)strlen(block)};
    for (int k = 0; k < 3; k++) {
      uint8_t le[4] = {(uint8_t)rec[k], (uint8_t)(rec[k] >> 8), (uint8_t)(rec[k] >> 16), (uint8_t)(rec[k] >> 24)};
      blob_put(&bzs, le, 4);
    }
    blob_put(&bzz, z, zl);
  }
  blob_piece(o, bzs.b, bzs.n);
  blob_piece(o, bzv.b, bzv.n);
  blob_piece(o, bzz.b, bzz.n);
  free(bzs.b), free(bzv.b), free(bzz.b);
}

static const char *const OSIS[] = {
    "<w lemma=\"strong:H0430\">God</w><note placement=\"foot\"><reference type=\"annotateRef\">1:1 "
    "</reference>The Hebrew word</note><w lemma=\"strong:H1254\">created</w> it.",
    "Christ,<note placement=\"foot\">Messiah</note><w>the</w> son",
    "<title type=\"psalm\">A Psalm.</title><l level=\"1\" sID=\"a\"/>Line one<l eID=\"a\"/>"
    "<l level=\"1\" sID=\"b\"/>line two<l eID=\"b\"/>",
    "end.<div sID=\"x\" type=\"x-p\"/>Next<lb type=\"x-p\"/>",
    "<q who=\"Jesus\">Follow me</q> &lt;ok&gt; &#x263A; &#65; &amp;&quot;&apos;",
    "a<div type=\"x-milestone\" subType=\"x-preverse\" sID=\"pv1\"/>b<chapter/><lg><l>x</l></lg>",
    "<speaker>Him</speaker><list><item>one</item></list> broken <w",
    "",
};

static void sword_seeds(void) {
  blob o = {0};
  uint8_t mask = 0x7F;
  blob_put(&o, &mask, 1);
  sword_testament(&o, OSIS, 2, 3);
  sword_testament(&o, OSIS + 6, 1, 2);
  const char *conf = "[Fuzz]\nDataPath=./modules/texts/ztext/fuzz/\nModDrv=zText\nCompressType=ZIP\nBlockType=BOOK\n";
  blob_piece(&o, conf, strlen(conf));
  put("foreign", "sword-ot-nt-conf", 3, o.b, o.n);
  o.n = 0;
  mask = 0x07;
  blob_put(&o, &mask, 1);
  sword_testament(&o, OSIS + 2, 2, 2);
  put("foreign", "sword-ot", 3, o.b, o.n);
  free(o.b);
  for (size_t i = 0; i + 1 < sizeof OSIS / sizeof OSIS[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "osis-%zu", i);
    put("foreign", name, 5, OSIS[i], strlen(OSIS[i]));
  }
}

static void rst_seeds(void) {
  static const char *const rst[] = {
      "Title\n=====\n\nFirst para\ncontinues here.\n\n*****\nOver\n*****\n\n----------\n\nSecond.\n"
      "Some examples::\n\n   x = 1\n   y = 2\n\nAfter.\n\nCode follows ::\n\n   x = 1\n\n::\n\n   y\n\nDone.\n",
      "Use ``len(x)`` and :func:`sorted` or :meth:`~dict.items` and :class:`the list <list>`.\n\n"
      "See :pep:`8`, *emphasis*, **strong**, `a link <https://x.org>`_ and 2 * 3 * 4.\n\n"
      "A footnote [#]_ here, escaped \\*star\\* and :class:`int`\\ s, `<https://y.org>`_.\n",
      ".. code-block:: python\n\n   print(1)\n\n.. index:: single: x\n\nText.\n\n"
      ".. note::\n\n   Body of the note.\n\n.. warning:: Inline warning\n   continues.\n\n"
      ".. versionadded:: 3.2\n   The *x* parameter.\n\n.. deprecated-removed:: 3.4 3.6\n   Gone.\n\n"
      ".. function:: f(a, b)\n               g(c)\n   :noindex:\n\n   Return the sum.\n\n"
      ".. c:function:: int PyF(void)\n\n   C prose.\n\n.. topic:: A title\n\n   Topic text.\n",
      ".. _label:\n\n..\n   a comment\n   block\n\n.. |x| replace:: y\n\n.. [#] A footnote.\n\n__ http://x\n\nKept.\n\n"
      "* one item\n  continued\n* two\n\n1. first\n2) second\n#. third\n(a) alpha\n\n"
      ":Author: me\n:Date: now\n\n>>> 1 + 1\n2\n\nProse.\n\n| line one\n| line two\n",
      "+-----+-----+\n| a   | b   |\n+=====+=====+\n| 1   | 2   |\n+-----+-----+\n\nAfter grid.\n\n"
      "=====  =====\nA      B\n=====  =====\nx      y\n\nz      w\n=====  =====\n\nAfter simple.\n\n"
      "term\n   The definition text.\n\nNext.\n\n.. toctree::\n   :maxdepth: 2\n\n   a\n   b\n\n"
      "\tTabbed\r\n\t  quote\r\n",
  };
  for (size_t i = 0; i < sizeof rst / sizeof rst[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "rst-%zu", i);
    put("foreign", name, 4, rst[i], strlen(rst[i]));
  }
}

/* a tiny BERT folder (test_hfmodel.c's shapes): hidden 8, 1 layer, ffn
 * 16, vocab 10, 16 positions, 2 token types */
static void hf_seeds(const char *tmp) {
  enum { D = 8, FF = 16, V = 10, P = 16, TV = 2 };
  static const struct {
    const char *name;
    int s0, s1;
  } ts[] = {
      {"embeddings.word_embeddings.weight", V, D}, {"embeddings.position_embeddings.weight", P, D},
      {"embeddings.token_type_embeddings.weight", TV, D}, {"embeddings.LayerNorm.weight", D, 0},
      {"embeddings.LayerNorm.bias", D, 0},
      {"encoder.layer.0.attention.self.query.weight", D, D}, {"encoder.layer.0.attention.self.query.bias", D, 0},
      {"encoder.layer.0.attention.self.key.weight", D, D}, {"encoder.layer.0.attention.self.key.bias", D, 0},
      {"encoder.layer.0.attention.self.value.weight", D, D}, {"encoder.layer.0.attention.self.value.bias", D, 0},
      {"encoder.layer.0.attention.output.dense.weight", D, D}, {"encoder.layer.0.attention.output.dense.bias", D, 0},
      {"encoder.layer.0.attention.output.LayerNorm.weight", D, 0},
      {"encoder.layer.0.attention.output.LayerNorm.bias", D, 0},
      {"encoder.layer.0.intermediate.dense.weight", FF, D}, {"encoder.layer.0.intermediate.dense.bias", FF, 0},
      {"encoder.layer.0.output.dense.weight", D, FF}, {"encoder.layer.0.output.dense.bias", D, 0},
      {"encoder.layer.0.output.LayerNorm.weight", D, 0}, {"encoder.layer.0.output.LayerNorm.bias", D, 0},
      {"pooler.dense.weight", D, D}, {"pooler.dense.bias", D, 0},
  };
  enum { NT = sizeof ts / sizeof ts[0] };
  static uint16_t vals[4096]; /* BF16 weights: small, exact */
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) vals[i] = (uint16_t)(0x3c00 + (i * 37) % 256);
  for (int with_prefix = 0; with_prefix < 2; with_prefix++) {
    st_entry e[NT + 1];
    char names[NT][96];
    size_t off = 0;
    for (int i = 0; i < NT; i++) {
      snprintf(names[i], sizeof names[i], "%s%s", with_prefix ? "bert." : "", ts[i].name);
      e[i] = (st_entry){.name = names[i], .dtype = with_prefix ? ST_F16 : ST_BF16, .ndim = ts[i].s1 ? 2 : 1,
                        .shape = {ts[i].s0, ts[i].s1}, .data = vals + off};
      off += (size_t)ts[i].s0 * (ts[i].s1 ? ts[i].s1 : 1);
    }
    int64_t pos[P];
    for (int i = 0; i < P; i++) pos[i] = i;
    e[NT] = (st_entry){.name = with_prefix ? "bert.embeddings.position_ids" : "embeddings.position_ids",
                       .dtype = ST_I64, .ndim = 2, .shape = {1, P}, .data = pos};
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    if (st_write(p, e, NT + 1, NULL, 0, &err)) die(p);
    size_t st_len;
    char *st = slurp(p, &st_len);
    blob o = {0};
    uint8_t mask = with_prefix ? 0x07 : 0x7F;
    blob_put(&o, &mask, 1);
    const char *config = "{\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":8,"
                         "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":16,"
                         "\"vocab_size\":10,\"max_position_embeddings\":16,\"type_vocab_size\":2,"
                         "\"layer_norm_eps\":1e-12,\"position_embedding_type\":\"absolute\"}";
    blob_piece(&o, config, strlen(config));
    const char *vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\n##s\n.\n";
    blob_piece(&o, vocab, strlen(vocab));
    blob_piece(&o, st, st_len);
    if (!with_prefix) {
      const char *mods =
          "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
          "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
          "{\"idx\":2,\"name\":\"2\",\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}]";
      blob_piece(&o, mods, strlen(mods));
      const char *pool =
          "{\"word_embedding_dimension\":8,\"pooling_mode_cls_token\":false,\"pooling_mode_mean_tokens\":true}";
      blob_piece(&o, pool, strlen(pool));
      const char *tc = "{\"do_lower_case\":true,\"strip_accents\":null}";
      blob_piece(&o, tc, strlen(tc));
      const char *sb = "{\"max_seq_length\":12,\"do_lower_case\":false}";
      blob_piece(&o, sb, strlen(sb));
    }
    put("foreign", with_prefix ? "hf-bert-prefix-f16" : "hf-sentence-transformers", 6, o.b, o.n);
    free(o.b);
    free(st);
  }
}

static void foreign_seeds(const char *tmp) {
  safetensors_seeds(tmp);
  rdata_seeds();
  sword_seeds();
  rst_seeds();
  hf_seeds(tmp);
}

static int wanted(int argc, char **argv, const char *target) {
  if (argc <= 2) return 1;
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], target)) return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: fuzz_seeds DIR [TARGET...]\n");
    return 2;
  }
  out_dir = argv[1];
  char tmp[] = "/tmp/foil-fuzz-seeds-XXXXXX";
  if (!mkdtemp(tmp)) return 1;
  /* envelope, coord_api, worker_proto, serve and spec seeds come together
   * (they share messages): asking for any of them writes all five */
  static const char *const msgs[] = {"envelope", "coord_api", "worker_proto", "serve", "spec"};
  int any_msg = 0;
  for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) any_msg |= wanted(argc, argv, msgs[i]);
  if (any_msg) {
    control_seeds();
    worker_seeds();
    serve_seeds();
    spec_seeds();
  }
  if (wanted(argc, argv, "tokenizer") || wanted(argc, argv, "h5")) token_and_h5_seeds(tmp);
  if (wanted(argc, argv, "foreign")) foreign_seeds(tmp);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  return system(cmd) ? 1 : 0;
}
