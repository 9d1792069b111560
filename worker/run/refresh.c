/* refresh.c — the refresh job (see refresh.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "worker/run/refresh.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "kernels/kernels.h"
#include "model/encoder.h"
#include "model/tokenizer.h"
#include "storage/ckpt.h"
#include "storage/dataset.h"
#include "storage/h5io.h"
#include "storage/hfmodel.h"
#include "storage/index.h"
#include "storage/negbank.h"
#include "storage/tokenizer_h5.h"
#include "worker/run/encode.h"
#include "worker/run/jspec.h"
#include "worker/run/mine.h"
#include "worker/run/jobdir.h"
#include "worker/run/jsonl.h"
#include "worker/run/progress.h"

/* Prefixes err's message (copied first: foil_err_set must not read what it writes). */
static int reword(foil_err *err, int rc, const char *fmt, const char *arg) {
  char was[sizeof err->msg], pre[300];
  snprintf(was, sizeof was, "%s", err ? err->msg : "");
  snprintf(pre, sizeof pre, fmt, arg);
  return foil_err_set(err, rc, "%s%.400s", pre, was);
}

/* ---- the spec ------------------------------------------------------------------------ */

typedef struct {
  char *name, *checkpoint;
  char *dataset, *benchmark; /* corpus.dataset / corpus.benchmark, or NULL */
  char *file;                /* corpus.file, or NULL */
  vs_dtype dtype;
  int batch, keep_versions, threads;
  int device;    /* DEVMEM_CPU or DEVMEM_CUDA */
  int precision; /* ENC_FP32 or ENC_BF16 */
  /* mine: hard negatives for a dataset's split from the new version */
  int mine;
  char *mine_dataset, *mine_split, *mine_bank;
  mine_rule rule;
} refresh_spec;

static void spec_free_(refresh_spec *s) {
  free(s->name);
  free(s->checkpoint);
  free(s->dataset);
  free(s->benchmark);
  free(s->file);
  free(s->mine_dataset);
  free(s->mine_split);
  free(s->mine_bank);
  memset(s, 0, sizeof *s);
}

static int spec_parse_(refresh_spec *s, const char *json, foil_err *err) {
  memset(s, 0, sizeof *s);
  cJSON *root = cJSON_Parse(json);
  if (!root || !cJSON_IsObject(root)) {
    const char *at = cJSON_GetErrorPtr();
    cJSON_Delete(root);
    return foil_err_set(err, FOIL_EINVAL, "the spec is not a JSON object%s%.40s", at ? " near: " : "", at ? at : "");
  }
  jspec c = {err, 0};
  static const char *const top[] = {"kind", "name", "checkpoint", "corpus", "dtype", "normalize", "batch",
                                    "keep_versions", "threads", "device", "precision", "mine", "job", NULL};
  jspec_only_keys(&c, root, "", top);
  char *kind = jspec_string(&c, root, "kind", "kind", "refresh", 0);
  if (kind && strcmp(kind, "refresh")) jspec_fail(&c, "kind must be \"refresh\" for this job (got \"%s\")", kind);
  free(kind);
  s->name = jspec_string(&c, root, "name", "name", NULL, 1);
  s->checkpoint = jspec_string(&c, root, "checkpoint", "checkpoint", NULL, 1);
  if (!c.rc && !s->checkpoint[0]) jspec_fail(&c, "checkpoint must not be empty");
  const cJSON *co = jspec_object(&c, root, "corpus", "corpus");
  if (!co && !c.rc) jspec_fail(&c, "corpus is required: {\"dataset\": NAME, \"benchmark\": \"test\"} or {\"file\": PATH}");
  static const char *const ckeys[] = {"dataset", "benchmark", "file", NULL};
  jspec_only_keys(&c, co, "corpus", ckeys);
  s->dataset = jspec_string(&c, co, "dataset", "corpus.dataset", NULL, 0);
  s->benchmark = jspec_string(&c, co, "benchmark", "corpus.benchmark", NULL, 0);
  s->file = jspec_string(&c, co, "file", "corpus.file", NULL, 0);
  if (!c.rc && co && !!s->dataset == !!s->file)
    jspec_fail(&c, "corpus needs exactly one of \"dataset\" (with \"benchmark\") or \"file\"");
  if (!c.rc && s->file && s->benchmark) jspec_fail(&c, "corpus.benchmark goes with corpus.dataset, not corpus.file");
  if (!c.rc && s->dataset && !s->benchmark && !(s->benchmark = strdup("test")))
    jspec_fail(&c, "out of memory");
  static const char *const dtypes[] = {"float32", "float16", "int8", NULL};
  s->dtype = (vs_dtype)jspec_choice(&c, root, "dtype", "dtype", VS_F32, dtypes);
  if (!jspec_boolean(&c, root, "normalize", "normalize", 1) && !c.rc)
    jspec_fail(&c, "normalize: false is not supported: the encoder is trained on cosine similarity and foil-serve "
                   "scores by inner product, so index rows are stored unit-norm");
  s->batch = (int)jspec_number(&c, root, "batch", "batch", 128, 1, 65536, 1, 0);
  s->keep_versions = (int)jspec_number(&c, root, "keep_versions", "keep_versions", 3, 1, 1000000, 1, 0);
  s->threads = (int)jspec_number(&c, root, "threads", "threads", 0, 0, 4096, 1, 0);
  static const char *const devices[] = {"cpu", "cuda", NULL}; /* DEVMEM_CPU, DEVMEM_CUDA */
  s->device = jspec_choice(&c, root, "device", "device", DEVMEM_CPU, devices);
  static const char *const precisions[] = {"fp32", "bf16", NULL}; /* ENC_FP32, ENC_BF16 */
  s->precision = jspec_choice(&c, root, "precision", "precision", ENC_FP32, precisions);
  if (!c.rc && s->precision == ENC_BF16 && s->device != DEVMEM_CUDA)
    jspec_fail(&c, "precision \"bf16\" needs device \"cuda\" (the tensor cores; on CPU ranks bf16 is a slow "
               "reference path)");
  const cJSON *mo = jspec_object(&c, root, "mine", "mine");
  if (mo) {
    static const char *const mkeys[] = {"dataset", "split", "top", "skip_top", "margin", "bank", NULL};
    jspec_only_keys(&c, mo, "mine", mkeys);
    s->mine = 1;
    s->mine_dataset = jspec_string(&c, mo, "dataset", "mine.dataset", NULL, 1);
    s->mine_split = jspec_string(&c, mo, "split", "mine.split", "train", 0);
    if (!c.rc && strcmp(s->mine_split, "train") && strcmp(s->mine_split, "dev") && strcmp(s->mine_split, "test"))
      jspec_fail(&c, "mine.split must be \"train\", \"dev\" or \"test\" (got \"%s\")", s->mine_split);
    s->rule.top = (int)jspec_number(&c, mo, "top", "mine.top", 0, 1, 1024, 1, 1);
    s->rule.skip_top = (int)jspec_number(&c, mo, "skip_top", "mine.skip_top", 0, 0, 1 << 20, 1, 0);
    s->rule.has_margin = cJSON_GetObjectItemCaseSensitive(mo, "margin") != NULL;
    s->rule.margin = (float)jspec_number(&c, mo, "margin", "mine.margin", 0, -2, 2, 0, 0);
    s->mine_bank = jspec_string(&c, mo, "bank", "mine.bank", s->name ? s->name : "", 0);
    if (!c.rc && !negbank_name_ok(s->mine_bank))
      jspec_fail(&c, "mine.bank \"%.200s\" (the bank's name) may hold only 1 to 128 letters, digits, '.', '_' and '-'",
                 s->mine_bank);
  }
  jspec_object(&c, root, "job", "job");
  cJSON_Delete(root);
  if (!c.rc) {
    char dir[512];
    c.rc = index_dir(".", s->name, dir, sizeof dir, err) == FOIL_EINVAL ? FOIL_EINVAL : FOIL_OK;
    if (c.rc) foil_err_set(err, FOIL_EINVAL, "name \"%.200s\" (the index name) may hold only 1 to 128 letters, "
                           "digits, '.', '_' and '-'", s->name);
  }
  if (c.rc) spec_free_(s);
  return c.rc;
}

/* ---- the job ------------------------------------------------------------------------- */

typedef struct {
  const refresh_args *a;
  comm *c;
  int rank, world;
  refresh_spec s;
  char *spec_json;
  char ckpt[PATH_MAX];  /* absolute */
  int64_t step;
  encoder *enc;
  tokenizer *tok;
  char **ids, **texts;  /* the corpus: one h5io_read_strings block each, or (jsonl) a string per malloc */
  int jsonl;             /* 1: ids and texts are the JSONL reader's, freed string by string */
  size_t n;
  char hash[65];
  int enc_len;          /* tokens per text: hf_encode_len (an imported model's max_seq_length) */
  dataset_pairs pairs;  /* mine: the split whose pairs get negatives */
  FILE *log, *metrics;
  progress *prog;
  char job_dir[4096];
} job;

/* One log line on rank 0: the job's log and, unless quiet, stderr. */
#define logf_(j, level, ...) \
  do { \
    if ((j)->rank == 0) log_tee((j)->log, !(j)->a->quiet, level, "refresh", __VA_ARGS__); \
  } while (0)

/* The checkpoint file the spec names: a file, or a job directory's newest usable one. */
static int resolve_checkpoint(job *j, foil_err *err) {
  char *skipped = NULL;
  int rc = ckpt_resolve("checkpoint", j->s.checkpoint, j->ckpt, &skipped, err);
  if (skipped) logf_(j, "WARN", "unusable checkpoints skipped: %s", skipped);
  free(skipped);
  if (!rc && strlen(j->ckpt) >= sizeof ((index_meta *)0)->checkpoint)
    rc = foil_err_set(err, FOIL_EINVAL, "checkpoint path %.200s... is longer than an index shard records (1023 bytes)",
                      j->ckpt);
  return rc;
}

/* The model.tokenizer path of the spec a checkpoint records. */
static int tokenizer_from_spec(job *j, const char *spec_json, foil_err *err) {
  cJSON *root = spec_json ? cJSON_Parse(spec_json) : NULL;
  const cJSON *m = root ? cJSON_GetObjectItemCaseSensitive(root, "model") : NULL;
  const cJSON *t = m ? cJSON_GetObjectItemCaseSensitive(m, "tokenizer") : NULL;
  int rc;
  if (!cJSON_IsString(t))
    rc = foil_err_set(err, FOIL_EPRECOND, "%s holds no tokenizer (no /tokenizer group, and its spec names no "
                      "model.tokenizer)", j->ckpt);
  else if ((rc = tokenizer_load(&j->tok, t->valuestring, err)))
    reword(err, rc, "the tokenizer of %.200s (model.tokenizer in its spec): ", j->ckpt);
  cJSON_Delete(root);
  return rc;
}

static int load_model(job *j, foil_err *err) {
  encoder_config cfg;
  int rc = ckpt_read_config(j->ckpt, &cfg, err);
  if (!rc) rc = encoder_new(&j->enc, &cfg, err);
  ckpt_state st = {.enc = j->enc};
  if (!rc) rc = ckpt_load(j->ckpt, &st, err);
  if (rc) return rc;
  j->step = st.step;
  h5io *f = NULL;
  if (!(rc = h5io_open(&f, j->ckpt, CKPT_FORMAT, err))) {
    rc = tokenizer_h5_read(f, "tokenizer", &j->tok, err);
    h5io_close(&f);
    if (rc == FOIL_ENOTFOUND) rc = tokenizer_from_spec(j, st.spec_json, err);
  }
  free((char *)st.spec_json);
  if (!rc && tokenizer_vocab_size(j->tok) != cfg.vocab)
    rc = foil_err_set(err, FOIL_EPRECOND, "%s: the tokenizer has %d tokens, the model's vocabulary %d", j->ckpt,
                      tokenizer_vocab_size(j->tok), cfg.vocab);
  if (!rc) index_model_hash_encoder(j->enc, j->hash);
  if (!rc) j->enc_len = hf_encode_len(j->ckpt, cfg.max_len);
  return rc;
}

/* device "cuda": the encoder moves to this rank's GPU (node-local rank %
 * visible devices: one per rank where the worker set CUDA_VISIBLE_DEVICES).
 * The checkpoint was read into a CPU encoder, whose parameters the model
 * hash was computed from; they are uploaded and the CPU copy freed. */
static int to_device(job *j, foil_err *err) {
  int rc = comm_job_gpu(j->c, 0, err);
  if (rc) return rc;
  encoder *g = NULL;
  if ((rc = encoder_clone_on(&g, j->enc, DEVMEM_CUDA, err))) return rc;
  encoder_destroy(&j->enc);
  j->enc = g;
  if (j->s.precision == ENC_BF16 && (rc = encoder_set_precision(j->enc, ENC_BF16, err))) return rc;
  logf_(j, "INFO", "rank 0 encodes on %s%s", comm_device(j->c), j->s.precision == ENC_BF16 ? ", bf16 GEMMs" : "");
  return FOIL_OK;
}

typedef struct {
  job *j;
  size_t cap;
} corpus_walk;

/* A corpus line {"id": "...", "text": "..."} into j->ids / j->texts. */
static int add_doc(void *ctx, const cJSON *o, const char *path, int line, foil_err *err) {
  corpus_walk *w = ctx;
  job *j = w->j;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id"), *text = cJSON_GetObjectItemCaseSensitive(o, "text");
  if (!cJSON_IsString(id) || !id->valuestring[0])
    return foil_err_set(err, FOIL_EINVAL, "%s:%d: \"id\" must be a non-empty string", path, line);
  if (!cJSON_IsString(text)) return foil_err_set(err, FOIL_EINVAL, "%s:%d: \"text\" must be a string", path, line);
  if (j->n == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 1024;
    char **a = realloc(j->ids, sizeof(char *) * w->cap), **b = a ? realloc(j->texts, sizeof(char *) * w->cap) : NULL;
    if (a) j->ids = a;
    if (b) j->texts = b;
    if (!a || !b) return foil_err_set(err, FOIL_ENOMEM, "out of memory reading %s", path);
  }
  j->ids[j->n] = strdup(id->valuestring);
  j->texts[j->n] = strdup(text->valuestring);
  if (!j->ids[j->n] || !j->texts[j->n]) {
    free(j->ids[j->n]), free(j->texts[j->n]);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory reading %s", path);
  }
  j->n++;
  return FOIL_OK;
}

static int load_jsonl(job *j, const char *path, foil_err *err) {
  corpus_walk w = {j, 0};
  return jsonl_each(path, "one {\"id\", \"text\"} object per line", add_doc, &w, err);
}

static int load_corpus(job *j, foil_err *err) {
  int rc;
  char path[4400];
  if (j->s.file) {
    snprintf(path, sizeof path, "%s", j->s.file);
    j->jsonl = 1;
    rc = load_jsonl(j, path, err);
  } else {
    snprintf(path, sizeof path, "%s/datasets/%s/benchmarks/%s.h5", j->a->root, j->s.dataset, j->s.benchmark);
    if (access(path, R_OK) != 0)
      return foil_err_set(err, FOIL_ENOTFOUND, "corpus: benchmark '%s' of dataset '%s' is not prepared under %s (no "
                          "%s): prepare it with `foil data prepare` or check corpus and --root",
                          j->s.benchmark, j->s.dataset, j->a->root, path);
    dataset_bench b;
    if ((rc = dataset_bench_read(path, &b, err))) return rc;
    /* keep the corpus, free the rest */
    j->ids = b.corpus_ids, j->texts = b.corpus, j->n = b.n_corpus;
    b.corpus_ids = b.corpus = NULL;
    b.n_corpus = 0;
    dataset_bench_free(&b);
  }
  if (!rc && !j->n) rc = foil_err_set(err, FOIL_EINVAL, "corpus %s holds no documents", path);
  return rc;
}

static int setup(job *j, foil_err *err) {
  const refresh_args *a = j->a;
  int rc;
  if ((rc = foil_read_file(a->spec_path, &j->spec_json, NULL, err))) return rc;
  if ((rc = spec_parse_(&j->s, j->spec_json, err))) {
    reword(err, rc, "%.200s: ", a->spec_path);
    return rc;
  }
  kernels_set_threads(comm_rank_threads(j->c, j->s.threads));
  if (a->job_dir) snprintf(j->job_dir, sizeof j->job_dir, "%s", a->job_dir);
  else snprintf(j->job_dir, sizeof j->job_dir, "%s/jobs/refresh-%s", a->root, j->s.name);
  if (j->rank == 0 && (rc = jobdir_open(j->job_dir, NULL, &j->log, &j->metrics, &j->prog, err))) return rc;
  return FOIL_OK;
}

/* Every rank: rank 0 resolves the checkpoint (a job directory's newest
 * usable file can change while a trainer writes and prunes) and
 * broadcasts the absolute path; every rank loads that one file. rc is
 * this rank's result so far; one all-reduce and a PATH_MAX broadcast. */
static int share_checkpoint(job *j, int rc, foil_err *err) {
  if (!rc && j->rank == 0) rc = resolve_checkpoint(j, err);
  rc = comm_all_ok(j->c, rc, "loading the spec or resolving the checkpoint", err);
  if (!rc) rc = comm_bcast(j->c, j->ckpt, sizeof j->ckpt, 0, err);
  j->ckpt[sizeof j->ckpt - 1] = 0;
  return rc;
}

/* Every rank: the checkpoint (j->ckpt), the device, the corpus, mining's pairs. */
static int load_inputs(job *j, foil_err *err) {
  const refresh_args *a = j->a;
  int rc;
  if ((rc = load_model(j, err))) return rc;
  if (j->s.device == DEVMEM_CUDA && (rc = to_device(j, err))) return rc;
  if ((rc = load_corpus(j, err))) return rc;
  if (j->s.mine) { /* bad mining input is refused before anything is written */
    char path[4400];
    snprintf(path, sizeof path, "%s/datasets/%s/pairs.h5", a->root, j->s.mine_dataset);
    if (access(path, R_OK) != 0)
      return foil_err_set(err, FOIL_ENOTFOUND, "mine.dataset '%s' is not prepared under %s (no %s): prepare it with "
                          "`foil data prepare` or check mine.dataset and --root", j->s.mine_dataset, a->root, path);
    if ((rc = dataset_pairs_read(path, j->s.mine_split, &j->pairs, err))) return rc;
    if (!j->pairs.n)
      return foil_err_set(err, FOIL_EINVAL, "mine: split %s of %s has no pairs", j->s.mine_split, path);
  }
  return FOIL_OK;
}

static void job_free(job *j) {
  encoder_destroy(&j->enc);

  tokenizer_destroy(&j->tok);
  for (size_t i = 0; j->jsonl && i < j->n; i++) free(j->ids[i]), free(j->texts[i]);
  if (j->jsonl) free(j->ids), free(j->texts);
  else h5io_free_strings(j->ids, j->n), h5io_free_strings(j->texts, j->n);
  free(j->spec_json);
  dataset_pairs_free(&j->pairs);
  spec_free_(&j->s);
  if (j->log) fclose(j->log);
  if (j->metrics) fclose(j->metrics);
  progress_destroy(&j->prog);
}

/* Batches of one encode_texts call: it sorts a window's texts by token
 * count, so each batch of `batch` holds texts of similar length (little
 * padding, as sentence-transformers' encode). 256: within a few percent
 * of sorting the whole corpus (bench/refresh.py); 32 left 20% */
#define REFRESH_SORT_BATCHES 256

/* Encodes this rank's rows [lo, hi) into out, sending progress on rank 0. */
static int encode_share(job *j, size_t lo, size_t hi, float *out, foil_err *err) {
  const int D = encoder_out_dim(j->enc), B = j->s.batch;
  const int max_len = j->enc_len;
  const size_t W = (size_t)B * REFRESH_SORT_BATCHES;
  double t_sent = log_mono();
  /* windows end at multiples of W in corpus rows, so every row is encoded
   * in the same window, so the same batch (same padding, same shapes),
   * whatever the world size: 1 rank and R ranks give the same bits */
  for (size_t r0 = lo, n; r0 < hi; r0 += n) {
    size_t end = (r0 / W + 1) * W;
    n = (end < hi ? end : hi) - r0;
    int rc = encode_texts(j->enc, j->tok, j->texts + r0, n, max_len, B, out + (r0 - lo) * (size_t)D, err);
    if (rc) return rc;
    double t = log_mono();
    if (j->rank == 0 && (t - t_sent > 1.0 || r0 + n == hi)) {
      /* rank 0's share done, scaled to the whole corpus (shares differ by one row at most) */
      double done = (double)(r0 + n - lo) / (double)(hi - lo) * (double)j->n;
      char msg[96];
      snprintf(msg, sizeof msg, "encoded %.0f/%zu", done, j->n);
      progress_send(j->prog, done, (double)j->n, msg, NULL);
      t_sent = t;
    }
  }
  return FOIL_OK;
}

/* ---- mining ---------------------------------------------------------------------------- */

/* Hard negatives for the pairs of mine.dataset's split from the version
 * just published (mine.h's rule); rank r mines pairs [r·P/R, (r+1)·P/R),
 * rank 0 gathers them and publishes the bank. */
static int mine_bank(job *j, int version, foil_err *err) {
  const refresh_spec *s = &j->s;
  const int m = s->rule.top, max_len = j->enc_len;
  const size_t P = j->pairs.n, lo = (size_t)j->rank * P / (size_t)j->world,
               hi = (size_t)(j->rank + 1) * P / (size_t)j->world, n = hi - lo;
  double t0 = log_mono();
  index_version *iv = NULL;
  vs_block *blocks = NULL;
  const int D = encoder_out_dim(j->enc);
  float *q = malloc(sizeof(float) * (n * (size_t)D + 1));
  float *pos = s->rule.has_margin ? malloc(sizeof(float) * (n * (size_t)D + 1)) : NULL;
  int64_t *rows = malloc(sizeof(int64_t) * (n * (size_t)m + 1));
  double *all = calloc(P * (size_t)m + 1, sizeof(double));
  int rc = !q || !rows || !all || (s->rule.has_margin && !pos)
               ? foil_err_set(err, FOIL_ENOMEM, "mining: out of memory for %zu pairs", P) : FOIL_OK;
  /* every rank searches the whole version: all shards */
  if (!rc) rc = index_version_open(j->a->root, s->name, version, NULL, 0, &iv, err);
  if (!rc && !(blocks = calloc((size_t)iv->n_shards, sizeof *blocks)))
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (int b = 0; !rc && b < iv->n_shards; b++) {
    const index_shard *sh = iv->shards[b];
    blocks[b] = (vs_block){.dtype = sh->meta.dtype, .n = sh->n, .d = sh->meta.dim, .data = sh->vectors,
                           .scales = sh->scales, .exact = sh->exact, .ids = sh->ids};
  }
  if (!rc) rc = encode_texts(j->enc, j->tok, j->pairs.query + lo, n, max_len, s->batch, q, err);
  if (!rc && pos) rc = encode_texts(j->enc, j->tok, j->pairs.positive + lo, n, max_len, s->batch, pos, err);
  if (!rc && n)
    rc = mine_select(blocks, iv->n_shards, iv->meta.count, j->texts, (int64_t)j->n, q, pos, j->pairs.positive + lo,
                     (int)n, &s->rule, rows, NULL, err);
  /* gather: every rank adds row + 1 into its own share of a zeroed [P, m] */
  for (size_t i = 0; !rc && i < n * (size_t)m; i++) all[lo * (size_t)m + i] = (double)(rows[i] + 1);
  rc = comm_all_ok(j->c, rc, "mining", err);
  if (!rc) rc = comm_allreduce_sum_f64(j->c, all, P * (size_t)m, err);
  if (!rc && j->rank == 0) {
    negbank b = {0};
    b.rows = malloc(sizeof(int64_t) * (P * (size_t)m + 1));
    b.texts = malloc(sizeof(char *) * (P * (size_t)m + 1));
    if (!b.rows || !b.texts) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for the bank");
    size_t short_pairs = 0;
    for (size_t i = 0; !rc && i < P; i++) {
      int kept = 0;
      for (int k = 0; k < m; k++) {
        int64_t r = (int64_t)all[i * (size_t)m + (size_t)k] - 1;
        b.rows[i * (size_t)m + (size_t)k] = r;
        b.texts[i * (size_t)m + (size_t)k] = r >= 0 ? j->texts[r] : "";
        kept += r >= 0;
      }
      short_pairs += kept < m;
    }
    negbank_meta *bm = &b.meta;
    snprintf(bm->index, sizeof bm->index, "%s", s->name);
    bm->version = version;
    _Static_assert(sizeof bm->checkpoint == sizeof ((index_meta *)0)->checkpoint,
                   "resolve_checkpoint's length check must cover the bank's field too");
    snprintf(bm->checkpoint, sizeof bm->checkpoint, "%.1023s", j->ckpt);  /* fits: resolve_checkpoint checked */
    bm->step = j->step;
    snprintf(bm->dataset, sizeof bm->dataset, "%s", s->mine_dataset);
    snprintf(bm->split, sizeof bm->split, "%s", s->mine_split);
    bm->n_pairs = (int64_t)P, bm->m = m;
    bm->fingerprint = negbank_fingerprint(&j->pairs);
    bm->skip_top = s->rule.skip_top;
    bm->margin = s->rule.has_margin ? (double)s->rule.margin : NAN;
    char path[4400];
    if (!rc) rc = negbank_path(j->a->root, s->mine_bank, path, sizeof path, err);
    if (!rc) rc = progress_fenced(j->job_dir, getenv("FOIL_ATTEMPT_TOKEN"), err);
    int kept = 0;  /* a bank of a newer version there (a later refresh's mining ended first): it stays */
    if (!rc) rc = negbank_write_newer(path, &b, &kept, err);
    if (!rc && kept) {
      logf_(j, "WARN", "%s not replaced: it holds negatives mined from %s v%d, newer than v%d (a refresh of a later "
            "checkpoint mined first); the trainer keeps it", path, s->name, kept, version);
      fprintf(j->metrics, "{\"bank\":\"%s\",\"version\":%d,\"kept\":%d}\n", s->mine_bank, version, kept);
      fflush(j->metrics);
    } else if (!rc) {
      double secs = log_mono() - t0;
      logf_(j, "INFO", "mined %s from %s v%d: %zu pairs of %s %s x %d negatives (skip_top %d, margin %s), %zu "
            "pair(s) with fewer (rows -1), %.2f s", path, s->name, version, P, s->mine_dataset, s->mine_split, m,
            s->rule.skip_top, s->rule.has_margin ? "on" : "none", short_pairs, secs);
      fprintf(j->metrics, "{\"bank\":\"%s\",\"version\":%d,\"pairs\":%zu,\"m\":%d,\"short_pairs\":%zu,"
              "\"seconds\":%.3f}\n", s->mine_bank, version, P, m, short_pairs, secs);
      fflush(j->metrics);
      char msg[300];
      snprintf(msg, sizeof msg, "mined bank %s from %s v%d (%zu pairs)", s->mine_bank, s->name, version, P);
      progress_send(j->prog, (double)j->n, (double)j->n, msg, NULL);
    }
    free(b.rows);
    free(b.texts); /* the texts are the corpus's */
  }
  rc = comm_all_ok(j->c, rc, "writing the negatives bank", err);
  free(blocks);
  index_version_destroy(&iv);
  free(q), free(pos), free(rows), free(all);
  return rc;
}

int refresh_spec_check(const char *json, foil_err *err) {
  refresh_spec s;
  int rc = spec_parse_(&s, json, err);
  if (!rc) spec_free_(&s);
  return rc;
}

int refresh_run(const refresh_args *a, comm *c, foil_err *err) {
  job j = {.a = a, .c = c, .rank = comm_rank(c), .world = comm_world(c)};
  int rc = share_checkpoint(&j, setup(&j, err), err);
  if (!rc) rc = load_inputs(&j, err);
  rc = comm_all_ok(j.c, rc, "loading the spec, checkpoint or corpus", err);
  int version = 0, published = 0, hold = -1; /* hold: rank 0's flock on v<k>/.writing */
  index_pub pub = {0};
  if (!rc) {
    logf_(&j, "INFO", "index %s: %zu documents on %d rank(s), checkpoint %s (step %lld, model %s), %s, dim %d",
          j.s.name, j.n, j.world, j.ckpt, (long long)j.step, j.hash, j.s.dtype == VS_F32 ? "float32"
          : j.s.dtype == VS_F16 ? "float16" : "int8", encoder_out_dim(j.enc));
    if (j.rank == 0) rc = index_version_begin_held(a->root, j.s.name, &version, &hold, err);
    rc = comm_all_ok(j.c, rc, "starting a version", err);
  }
  if (!rc) rc = comm_bcast(c, &version, sizeof version, 0, err);
  const size_t lo = (size_t)j.rank * j.n / (size_t)j.world, hi = (size_t)(j.rank + 1) * j.n / (size_t)j.world;
  const int D = j.enc ? encoder_out_dim(j.enc) : 0;
  double secs = 0;
  if (!rc) {
    logf_(&j, "INFO", "version v%d: encoding", version);
    float *vec = malloc(sizeof(float) * ((hi - lo) * (size_t)D + 1));
    int64_t *ids = malloc(sizeof(int64_t) * (hi - lo + 1));
    if (!vec || !ids) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for %zu rows of %d floats", hi - lo, D);
    double t0 = log_mono();
    if (!rc) rc = encode_share(&j, lo, hi, vec, err);
    secs = log_mono() - t0;
    for (size_t i = lo; !rc && i < hi; i++) ids[i - lo] = (int64_t)i;
    index_meta m = {.version = version, .shard = j.rank, .n_shards = j.world, .dim = D, .dtype = j.s.dtype,
                    .normalized = 1, .step = j.step};
    snprintf(m.name, sizeof m.name, "%s", j.s.name);
    snprintf(m.checkpoint, sizeof m.checkpoint, "%.1023s", j.ckpt);
    snprintf(m.model_hash, sizeof m.model_hash, "%s", j.hash);
    if (!rc) rc = index_shard_write(a->root, &m, ids, j.ids + lo, vec, (int64_t)(hi - lo), err);
    free(vec);
    free(ids);
    rc = comm_all_ok(j.c, rc, "encoding or writing a shard", err);
  }
  /* per-rank throughput, gathered to rank 0 for the metrics */
  if (!rc) {
    double *per = calloc(2 * (size_t)j.world, sizeof(double));
    if (!per) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    if (!rc) {
      per[2 * j.rank] = (double)(hi - lo), per[2 * j.rank + 1] = secs;
      rc = comm_allreduce_sum_f64(c, per, 2 * (size_t)j.world, err);
    }
    double slowest = 0;
    for (int r = 0; !rc && j.rank == 0 && r < j.world; r++) {
      double rows = per[2 * r], s = per[2 * r + 1];
      fprintf(j.metrics, "{\"index\":\"%s\",\"version\":%d,\"rank\":%d,\"rows\":%.0f,\"seconds\":%.4f,"
              "\"sentences_per_s\":%.2f}\n", j.s.name, version, r, rows, s, s > 0 ? rows / s : 0.0);
      logf_(&j, "INFO", "rank %d: %.0f rows in %.2f s, %.1f sentences/s", r, rows, s, s > 0 ? rows / s : 0.0);
      if (s > slowest) slowest = s;
    }
    if (!rc && j.rank == 0) fflush(j.metrics);
    free(per);
    if (!rc && j.rank == 0) {
      if (a->publish_delay_s > 0) {
        struct timespec ts = {(time_t)a->publish_delay_s,
                              (long)((a->publish_delay_s - (double)(time_t)a->publish_delay_s) * 1e9)};
        nanosleep(&ts, NULL);
      }
      /* the fence: a replaced attempt must not publish over its successor */
      rc = progress_fenced(j.job_dir, getenv("FOIL_ATTEMPT_TOKEN"), err);
      double t0 = log_mono();
      if (!rc) rc = index_publish_ex(a->root, j.s.name, version, j.world, j.s.keep_versions, &pub, err);
      if (!rc && !pub.switched) {
        /* a refresh of a later checkpoint of the same run published first */
        logf_(&j, "WARN", "%s v%d is complete but not made live: its checkpoint step %lld is lower than the live "
              "v%d's step %lld (a refresh of a later checkpoint published first); CURRENT stays on v%d, no negatives "
              "bank is mined", j.s.name, version, (long long)pub.step, pub.live, (long long)pub.live_step, pub.live);
        fprintf(j.metrics, "{\"index\":\"%s\",\"version\":%d,\"published\":false,\"live\":%d,\"step\":%lld,"
                "\"live_step\":%lld}\n", j.s.name, version, pub.live, (long long)pub.step, (long long)pub.live_step);
        fflush(j.metrics);
        char msg[200];
        snprintf(msg, sizeof msg, "%s v%d not made live: step %lld < live v%d's step %lld", j.s.name, version,
                 (long long)pub.step, pub.live, (long long)pub.live_step);
        progress_send(j.prog, (double)j.n, (double)j.n, msg, NULL);
      } else if (!rc) {
        double rate = slowest > 0 ? (double)j.n / slowest : 0.0;
        logf_(&j, "INFO", "published %s v%d: %zu rows in %d shard(s), %.1f sentences/s, publish %.2f s",
              j.s.name, version, j.n, j.world, rate, log_mono() - t0);
        fprintf(j.metrics, "{\"index\":\"%s\",\"version\":%d,\"published\":true,\"rows\":%zu,\"shards\":%d,"
                "\"dtype\":\"%s\",\"step\":%lld,\"model_hash\":\"%s\",\"sentences_per_s\":%.2f}\n",
                j.s.name, version, j.n, j.world, j.s.dtype == VS_F32 ? "float32" : j.s.dtype == VS_F16 ? "float16"
                : "int8", (long long)j.step, j.hash, rate);
        fflush(j.metrics);
        char msg[160], mj[160];
        snprintf(msg, sizeof msg, "published %s v%d (%zu rows)", j.s.name, version, j.n);
        snprintf(mj, sizeof mj, "{\"version\":%d,\"rows\":%zu,\"sentences_per_s\":%.2f}", version, j.n, rate);
        progress_send(j.prog, (double)j.n, (double)j.n, msg, mj);
      }
    }
    index_version_release(&hold); /* published (or given up): v<k> is no longer being written */
    rc = comm_all_ok(j.c, rc, "publishing", err);
    int live = pub.switched; /* every rank learns whether v<k> went live: mining is collective */
    if (!rc) rc = comm_bcast(c, &live, sizeof live, 0, err);
    published = !rc && live;
  }
  index_version_release(&hold);
  /* a bank is mined only from the version made live: one mined from an older checkpoint's would replace a newer bank */
  if (!rc && j.s.mine && published) rc = mine_bank(&j, version, err);
  if (rc) logf_(&j, "ERROR", "%s (%s)", err ? err->msg : "failed", published ? "the version was published; no new "
                "negatives bank" : "nothing made live");
  job_free(&j);
  return rc;
}
