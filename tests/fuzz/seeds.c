/* seeds.c — writes the seed corpora of the fuzz targets into DIR/<target>/
 * (tests/fuzz/make_corpus.sh runs it into tests/fuzz/corpus). Each seed is a
 * valid input of its target (the first byte picks the path where the target
 * has several), so the fuzzer starts from inputs that reach deep.
 *
 *   fuzz_seeds DIR
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
#include "storage/tokenizer_h5.h"
#include "worker/run/spec.h"
#include "worker/run/spec_proto.h"

static const char *out_dir;
static foil_err err;

static void die(const char *what) {
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

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  out_dir = argv[1];
  char tmp[] = "/tmp/foil-fuzz-seeds-XXXXXX";
  if (!mkdtemp(tmp)) return 1;
  control_seeds();
  worker_seeds();
  serve_seeds();
  spec_seeds();
  token_and_h5_seeds(tmp);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  return system(cmd) ? 1 : 0;
}
