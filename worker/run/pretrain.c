/* pretrain.c — the pretrain job (see pretrain.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "worker/run/pretrain.h"
#include "common/fileio.h"
#include "common/log.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "model/bm25.h"
#include "model/encoder.h"
#include "model/irmetrics.h"
#include "model/loss.h"
#include "model/moco.h"
#include "model/optim.h"
#include "model/tokenizer.h"
#include "storage/ckpt.h"
#include "storage/dataset.h"
#include "storage/h5io.h"
#include "storage/hfmodel.h"
#include "storage/negbank.h"
#include "storage/tokenizer_h5.h"
#include "worker/run/encode.h"
#include "worker/run/lmtrain.h"
#include "worker/run/loader.h"
#include "worker/run/jobdir.h"
#include "worker/run/progress.h"
#include "worker/run/spec.h"

/* ---- the job's state ---------------------------------------------------------------- */

typedef struct {
  const pretrain_args *a;
  comm *c;
  int rank, world;
  spec s;
  char *spec_json;
  tokenizer *tok;
  encoder *enc, *key_enc;
  optim *opt;
  loss *ls;
  moco_queue *queue;
  loader *ld;
  float *emb, *demb, *unit, *norms, *gathered; /* device memory on GPU ranks */
  /* GPU ranks (spec device "cuda"): enc, key_enc, opt, ls, queue and the
   * buffers above live on this rank's GPU; the host copies below carry
   * them to and from checkpoints (and init), and bring rows back for the
   * health statistics and evaluation's all-gather. */
  int gpu;
  encoder *host_enc, *host_key;
  optim *host_opt;
  float *host_queue, *host_unit;
  /* learnable temperature: log(1/T), its AdamW moments, step (scalars[4]) */
  float temp_state[4];
  FILE *log, *metrics;
  int64_t init_step;   /* init_from: the step of the checkpoint started from */
  hf_model *hf;        /* init_from's /hf group (an imported model), carried into every checkpoint */
  progress *prog; /* rank 0: updates to the worker (no-op outside a cluster) */
  char job_dir[4096], ckpt_dir[4200];
  int bm25_done; /* rank 0: the BM25 baseline is computed once per job (bm25_from_metrics) */
  double bm25_mrr10;
  /* data.negatives_bank: the bank in use, the same on every rank */
  char bank_path[4400];
  int bank_version;      /* 0: none yet */
  int64_t bank_step;     /* step of the checkpoint that encoded its index */
  int bank_stride;       /* its negatives per pair */
  char *bank_blob;       /* [P] int32 counts, then P·stride NUL-terminated texts */
  char **bank_texts;     /* [P·stride] into the blob */
  int bank_refused;      /* rank 0: a version already refused (logged once) */
  char bank_index[129];  /* rank 0: the index the bank in use was mined from */
  int bank_missing_said; /* rank 0: "no bank yet" logged */
  uint64_t split_fp;     /* rank 0: negbank_fingerprint of the training split */
  int64_t resumed_bank;  /* -1: not resumed; else the bank version the checkpoint recorded */
  /* the last checkpoint written, sticky in every later progress message */
  char last_ckpt[PATH_MAX];
  int64_t last_ckpt_step;
} job;

/* One log line on rank 0: the job's log and, unless quiet, stderr. */
#define logf_(j, level, ...) \
  do { \
    if ((j)->rank == 0) log_tee((j)->log, !(j)->a->quiet, level, "pretrain", __VA_ARGS__); \
  } while (0)

/* ---- buffers of GPU ranks --------------------------------------------------------------- */

/* the job's buffers: device memory on GPU ranks (model/devmem.h) */
static int backend_of(const job *j) { return j->gpu ? DEVMEM_CUDA : DEVMEM_CPU; }
static float *job_alloc(const job *j, size_t n) { return devmem_alloc(backend_of(j), n * sizeof(float)); }
static void job_release(const job *j, float *p) { devmem_free(backend_of(j), p); }
static void job_copy(const job *j, float *dst, const float *src, size_t n) {
  devmem_copy(backend_of(j), dst, src, n * sizeof(float));
}
static int job_put(const job *j, float *dst, const float *host, size_t n, foil_err *err) {
  return devmem_put(backend_of(j), dst, host, n * sizeof(float), err);
}
static int job_get(const job *j, float *host, const float *src, size_t n, foil_err *err) {
  return devmem_get(backend_of(j), host, src, n * sizeof(float), err);
}

/* GPU ranks: the training state to its host copies (before a checkpoint)
 * and back (after a resume). */
static int state_to_host(job *j, foil_err *err) {
  int rc = encoder_get_params(j->enc, encoder_params(j->host_enc), err);
  if (!rc) rc = optim_copy_state(j->host_opt, j->opt, err);
  if (!rc && j->key_enc) rc = encoder_get_params(j->key_enc, encoder_params(j->host_key), err);
  if (!rc && j->queue) rc = job_get(j, j->host_queue, j->queue->keys, (size_t)(j->queue->K * j->queue->D), err);
  return rc;
}
static int state_to_device(job *j, foil_err *err) {
  int rc = encoder_set_params(j->enc, encoder_params(j->host_enc), err);
  if (!rc) rc = optim_copy_state(j->opt, j->host_opt, err);
  if (!rc && j->key_enc) rc = encoder_set_params(j->key_enc, encoder_params(j->host_key), err);
  if (!rc && j->queue) rc = job_put(j, j->queue->keys, j->host_queue, (size_t)(j->queue->K * j->queue->D), err);
  return rc;
}

/* The objects a checkpoint is written from and read into: the live ones
 * on CPU ranks, their host copies on GPU ranks (state_to_host before a
 * save, state_to_device after a load), so both write the same file. */
static void ckpt_objects(job *j, ckpt_state *st) {
  st->enc = j->gpu ? j->host_enc : j->enc;
  st->opt = j->gpu ? j->host_opt : j->opt;
  st->key_enc = j->gpu ? j->host_key : j->key_enc;
  if (j->queue) {
    st->queue = j->gpu ? j->host_queue : j->queue->keys;
    st->queue_k = j->queue->K, st->queue_d = j->queue->D;
  }
}

static float current_temperature(const job *j) {
  if (!j->s.learnable_temperature) return j->s.temperature;
  return 1.0f / expf(j->temp_state[0]);
}

/* Appends the sticky checkpoint fields ("checkpoint", "checkpoint_step") to
 * a progress JSON object being built in buf (which ends with '}'). */
static void progress_add_checkpoint(const job *j, char *buf, size_t n) {
  size_t len = strlen(buf);
  if (!j->last_ckpt_step || len < 2 || buf[len - 1] != '}' || len + 64 >= n) return;
  char esc[2 * PATH_MAX + 1], *o = esc;
  for (const char *p = j->last_ckpt; *p && o < esc + sizeof esc - 3; p++) {
    if (*p == '"' || *p == '\\') *o++ = '\\';
    if ((unsigned char)*p >= 0x20) *o++ = *p;
  }
  *o = 0;
  snprintf(buf + len - 1, n - (len - 1), ",\"checkpoint\":\"%s\",\"checkpoint_step\":%lld}", esc,
           (long long)j->last_ckpt_step);
}

/* ---- checkpoints --------------------------------------------------------------------- */

static int save_tok(h5io *f, void *ctx, foil_err *err) {
  job *j = ctx;
  int rc = tokenizer_h5_write(f, "tokenizer", j->tok, err);
  /* an imported model's /hf: export then restores its config, token types,
   * pooler and max_seq_length (position embeddings are unfolded there) */
  if (!rc && j->hf) rc = hf_write_group(f, j->hf, j->s.model.d_model, j->s.model.max_len, err);
  /* the bank the steps so far trained with: a resume says whether it still matches */
  if (!rc && j->s.negatives_bank) rc = h5io_attr_str(f, "/", "negatives_bank", j->s.negatives_bank, err);
  if (!rc && j->s.negatives_bank) rc = h5io_attr_i64(f, "/", "negatives_bank_version", j->bank_version, err);
  return rc;
}

static int save_checkpoint(job *j, int64_t step, foil_err *err) {
  int rc = FOIL_OK;
  if (j->rank == 0 && j->gpu) rc = state_to_host(j, err);
  if (j->rank == 0 && !rc) {
    loader_cursor cur;
    loader_get_cursor(j->ld, &cur);
    int64_t cv[4] = {(int64_t)cur.seed, (int64_t)cur.fingerprint, cur.epoch, cur.step};
    ckpt_state st = {.step = step, .spec_json = j->spec_json, .seed = j->s.seed, .call = (uint64_t)step,
                     .cursor = cv, .ncursor = 4, .scalars = j->temp_state, .nscalars = 4};
    ckpt_objects(j, &st);
    if (j->queue) st.queue_ptr = j->queue->ptr, st.queue_fill = j->queue->fill;
    char path[4400];
    snprintf(path, sizeof path, "%s/step_%lld.h5", j->ckpt_dir, (long long)step);
    /* the metrics through this step (its evaluation included: the loop
     * evaluates before it checkpoints) are on disk before the checkpoint
     * that a resume continues from: jobdir_metrics_from then finds them
     * all. Cost: one fsync of a small file. */
    if (fflush(j->metrics) != 0 || fsync(fileno(j->metrics)) != 0)
      logf_(j, "WARN", "the metrics of step %lld may not be on disk (fsync failed); the checkpoint goes on",
            (long long)step);
    /* the fence: a replaced attempt must not write over its successor */
    rc = progress_fenced(j->job_dir, getenv("FOIL_ATTEMPT_TOKEN"), err);
    if (!rc) rc = ckpt_save(path, &st, save_tok, j, err);
    if (!rc) { /* the checkpoint is durable: a failed prune leaves old files behind, it does not undo the save */
      foil_err perr = {0};
      if (ckpt_prune(j->ckpt_dir, j->s.checkpoint_keep_last, j->s.checkpoint_keep_every_steps, step, &perr))
        logf_(j, "WARN", "checkpoint retention after step %lld: %s (training goes on)", (long long)step, perr.msg);
    }
    if (!rc) {
      logf_(j, "INFO", "checkpoint %s", path);
      if (!realpath(path, j->last_ckpt)) snprintf(j->last_ckpt, sizeof j->last_ckpt, "%.4000s", path);
      j->last_ckpt_step = step;
    }
  }
  /* everyone learns whether rank 0 succeeded */
  double bad = rc != 0;
  int crc = comm_allreduce_sum_f64(j->c, &bad, 1, err);
  if (crc) return crc;
  if (bad && !rc) return foil_err_set(err, FOIL_EINTERNAL, "rank 0 could not write a checkpoint");
  return rc;
}

/* Resumes from the newest usable checkpoint, the same file on every rank
 * (jobdir_resume_pick); *start gets its step (0 when there is none). */
static int try_resume(job *j, int64_t *start, foil_err *err) {
  *start = 0;
  char *path = NULL, *skipped = NULL, chosen[PATH_MAX];
  int rc = jobdir_resume_pick(j->c, j->ckpt_dir, chosen, &skipped, err);
  if (skipped) logf_(j, "WARN", "unusable checkpoints skipped: %s", skipped);
  free(skipped);
  if (rc || !chosen[0]) return rc; /* !chosen[0]: a fresh start */
  if (!(path = strdup(chosen))) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int64_t cv[4];
  ckpt_state st = {.cursor = cv, .ncursor = 4, .scalars = j->temp_state, .nscalars = 4};
  ckpt_objects(j, &st);
  rc = ckpt_load(path, &st, err);
  if (!rc && j->gpu) rc = state_to_device(j, err);
  free((char *)st.spec_json); /* NULL unless the load got that far */
  st.spec_json = NULL;
  if (!rc) {
    if (st.seed != j->s.seed) {
      rc = foil_err_set(err, FOIL_EPRECOND, "%s was written with seed %llu, the spec says %llu", path,
                        (unsigned long long)st.seed, (unsigned long long)j->s.seed);
    } else {
      loader_cursor cur = {(uint64_t)cv[0], (uint64_t)cv[1], cv[2], cv[3]};
      rc = loader_set_cursor(j->ld, &cur, err);
    }
  }
  if (!rc && j->queue) j->queue->ptr = st.queue_ptr, j->queue->fill = st.queue_fill;
  if (!rc) {
    *start = st.step;
    logf_(j, "INFO", "resumed from %s at step %lld", path, (long long)st.step);
    j->resumed_bank = 0;
    h5io *f = NULL;
    foil_err e3 = {0};
    if (j->s.negatives_bank && !h5io_open(&f, path, CKPT_FORMAT, &e3)) {
      int64_t v = 0;
      if (!h5io_get_attr_i64(f, "/", "negatives_bank_version", &v, &e3)) j->resumed_bank = v;
      h5io_close(&f);
    }
  }
  free(path);
  return rc;
}

/* ---- evaluation ------------------------------------------------------------------------- */

/* Token ids of a text without special tokens (BM25 terms). *n = count. */
static int terms_of(const tokenizer *tok, const char *s, int32_t **out, int *n, foil_err *err) {
  int cap = 64, full = 0, rc;
  *out = NULL;
  for (;;) {
    int32_t *ids = realloc(*out, sizeof(int32_t) * (size_t)cap);
    if (!ids) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    *out = ids;
    if ((rc = tokenizer_encode(tok, s, strlen(s), 0, ids, cap, &full, err))) return rc;
    if (full <= cap) break;
    cap = full;
  }
  *n = full;
  return FOIL_OK;
}

/* The lexical baseline on the same benchmark: BM25 (k1 0.9, b 0.4) over
 * the tokenizer's ids. Logged and written to metrics as "bm25". */
static int bm25_baseline(job *j, const dataset_bench *b, irmetrics_result *res, foil_err *err) {
  int rc = FOIL_OK;
  int nd = (int)b->n_corpus, nq = (int)b->n_queries;
  int32_t **docs = calloc((size_t)nd, sizeof(int32_t *));
  int *lens = calloc((size_t)nd, sizeof(int));
  float *scores = malloc(sizeof(float) * (size_t)nd), *ts = malloc(sizeof(float) * IRM_K);
  int64_t *ranked = malloc(sizeof(int64_t) * (size_t)nq * IRM_K);
  bm25 *x = NULL;
  if (!docs || !lens || !scores || !ts || !ranked) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (int d = 0; !rc && d < nd; d++) rc = terms_of(j->tok, b->corpus[d], &docs[d], &lens[d], err);
  if (!rc)
    rc = bm25_build(&x, (const int32_t *const *)docs, lens, nd, tokenizer_vocab_size(j->tok), 0.9f,
                    0.4f, err);
  for (int q = 0; !rc && q < nq; q++) {
    int32_t *terms = NULL;
    int n = 0;
    if ((rc = terms_of(j->tok, b->queries[q], &terms, &n, err))) break;
    bm25_score(x, terms, n, scores);
    free(terms);
    topk_init(ts, ranked + (size_t)q * IRM_K, 1, IRM_K);
    topk_merge(ts, ranked + (size_t)q * IRM_K, 1, IRM_K, scores, nd, (size_t)nd, 0);
    for (int k = 0; k < IRM_K; k++) /* documents without a matching term are not retrieved */
      if (ranked[(size_t)q * IRM_K + k] >= 0 && ts[k] <= 0.0f) ranked[(size_t)q * IRM_K + k] = -1;
  }
  if (!rc)
    rc = irmetrics_from_rankings(ranked, nq, IRM_K, b->qrels, b->qrels_score, b->n_qrels, res, err);
  bm25_destroy(&x);
  for (int d = 0; docs && d < nd; d++) free(docs[d]);
  free(docs);
  free(lens);
  free(scores);
  free(ts);
  free(ranked);
  return rc;
}

static void write_eval(job *j, int64_t step, const char *who, const irmetrics_result *res) {
  fprintf(j->metrics,
          "{\"step\":%lld,\"eval\":\"%s\",\"model\":\"%s\",\"mrr@10\":%.6f,\"ndcg@10\":%.6f,"
          "\"map@100\":%.6f,\"recall@1\":%.6f,\"recall@10\":%.6f,\"recall@100\":%.6f,"
          "\"accuracy@1\":%.6f,\"accuracy@10\":%.6f,\"queries\":%d}\n",
          (long long)step, j->s.benchmark, who, irmetrics_get(res, "mrr@10"),
          irmetrics_get(res, "ndcg@10"), irmetrics_get(res, "map@100"),
          irmetrics_get(res, "recall@1"), irmetrics_get(res, "recall@10"),
          irmetrics_get(res, "recall@100"), irmetrics_get(res, "accuracy@1"),
          irmetrics_get(res, "accuracy@10"), res->n_queries);
  fflush(j->metrics);
}

static void log_eval(job *j, int64_t step, const char *who, const irmetrics_result *res, size_t ndocs,
                     double secs) {
  logf_(j, "INFO", "eval step %lld %s on %s: MRR@10 %.4f NDCG@10 %.4f R@1 %.4f R@10 %.4f R@100 %.4f "
        "(%d queries, %zu docs, %.1f s)", (long long)step, who, j->s.benchmark,
        irmetrics_get(res, "mrr@10"), irmetrics_get(res, "ndcg@10"), irmetrics_get(res, "recall@1"),
        irmetrics_get(res, "recall@10"), irmetrics_get(res, "recall@100"), res->n_queries, ndocs, secs);
}

/* Encodes texts[0..n) across the ranks for evaluation: in rounds of up to
 * world x EVAL_CHUNK texts, each split evenly into per = ceil(round / world)
 * consecutive texts per rank (only the last ranks run short), encoded and
 * all-gathered, so rank 0 gets every row in input order; sink (rank 0
 * only) takes each round's rows. All ranks call it with the same n.
 * Cost per round: one encode of per texts on each rank and a gather of
 * world x per x D floats; memory: two buffers of that size at most. A
 * row's bits depend on the world size (the chunk it is encoded in), not on
 * the thread count. */
enum { EVAL_CHUNK = 4096 };
typedef int (*eval_sink)(void *ctx, const float *rows, size_t n, foil_err *err);

static int encode_split(job *j, char *const *texts, size_t n, eval_sink sink, void *ctx, foil_err *err) {
  const size_t D = (size_t)encoder_out_dim(j->enc), W = (size_t)j->world;
  float *mine = calloc((size_t)EVAL_CHUNK * D, sizeof(float));
  float *all = malloc(sizeof(float) * (size_t)EVAL_CHUNK * D * W);
  int rc = !mine || !all ? foil_err_set(err, FOIL_ENOMEM, "out of memory for evaluation") : FOIL_OK;
  rc = comm_all_ok(j->c, rc, "evaluation", err);
  for (size_t base = 0; !rc && base < n;) {
    size_t round = n - base < EVAL_CHUNK * W ? n - base : EVAL_CHUNK * W;
    size_t per = (round + W - 1) / W, lo = (size_t)j->rank * per;
    size_t cnt = lo >= round ? 0 : (round - lo < per ? round - lo : per);
    if (cnt) rc = encode_texts(j->enc, j->tok, texts + base + lo, cnt, j->s.seq_len, 256, mine, err);
    if ((rc = comm_all_ok(j->c, rc, "evaluation encoding", err))) break;
    if ((rc = comm_allgather_host(j->c, mine, per * D, all, err))) break;
    if (j->rank == 0) rc = sink(ctx, all, round, err); /* rank r's rows start at r·per: contiguous */
    if ((rc = comm_all_ok(j->c, rc, "evaluation", err))) break;
    base += round;
  }
  free(mine);
  free(all);
  return rc;
}

typedef struct {
  float *q;
  size_t at;
  int D;
} eval_rows;

static int keep_rows(void *ctx, const float *rows, size_t n, foil_err *err) {
  (void)err;
  eval_rows *r = ctx;
  memcpy(r->q + r->at * (size_t)r->D, rows, sizeof(float) * n * (size_t)r->D);
  r->at += n;
  return FOIL_OK;
}

static int add_rows(void *ctx, const float *rows, size_t n, foil_err *err) {
  return irmetrics_add(ctx, rows, (int)n, err);
}

/* Retrieval metrics of the model now on the spec's benchmark (and BM25's,
 * once per run), rank 0 writing them; every rank reads the benchmark and
 * encodes its share (encode_split). */
static int evaluate(job *j, int64_t step, foil_err *err) {
  if (!j->s.benchmark || !j->s.benchmark[0]) return FOIL_OK;
  char path[4200];
  snprintf(path, sizeof path, "%s/datasets/%s/benchmarks/%s.h5", j->a->root, j->s.dataset, j->s.benchmark);
  dataset_bench b;
  int rc = dataset_bench_read(path, &b, err);
  if (rc) {
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg); /* not in place: source and target would overlap */
    foil_err_set(err, rc, "evaluation: %.400s", why);
  }
  const int have = rc == FOIL_OK; /* this rank's copy, to free if another rank failed */
  if ((rc = comm_all_ok(j->c, rc, "evaluation", err))) {
    if (have) dataset_bench_free(&b);
    return rc;
  }
  const int D = encoder_out_dim(j->enc);
  eval_rows qr = {.q = j->rank == 0 ? malloc(sizeof(float) * b.n_queries * (size_t)D) : NULL, .D = D};
  irmetrics *ir = NULL;
  double t0 = log_mono();
  rc = j->rank == 0 && !qr.q ? foil_err_set(err, FOIL_ENOMEM, "out of memory for evaluation") : FOIL_OK;
  if ((rc = comm_all_ok(j->c, rc, "evaluation", err))) goto done;
  if ((rc = encode_split(j, b.queries, b.n_queries, keep_rows, &qr, err))) goto done;
  if (j->rank == 0) rc = irmetrics_new(&ir, qr.q, (int)b.n_queries, D, 0, err);
  if ((rc = comm_all_ok(j->c, rc, "evaluation", err))) goto done;
  if ((rc = encode_split(j, b.corpus, b.n_corpus, add_rows, ir, err))) goto done;
  if (j->rank == 0) {
    irmetrics_result res;
    rc = irmetrics_compute(ir, b.qrels, b.qrels_score, b.n_qrels, &res, err);
    if (!rc) {
      log_eval(j, step, "foil", &res, b.n_corpus, log_mono() - t0);
      write_eval(j, step, "foil", &res);
      char msg[128], mj[2 * PATH_MAX + 512];
      snprintf(msg, sizeof msg, "eval step %lld/%lld: MRR@10 %.4f", (long long)step, (long long)j->s.steps,
               irmetrics_get(&res, "mrr@10"));
      snprintf(mj, sizeof mj, "{\"step\":%lld,\"mrr@10\":%.6f,\"ndcg@10\":%.6f,\"recall@10\":%.6f}",
               (long long)step, irmetrics_get(&res, "mrr@10"), irmetrics_get(&res, "ndcg@10"),
               irmetrics_get(&res, "recall@10"));
      progress_add_checkpoint(j, mj, sizeof mj);
      progress_send(j->prog, (double)step, (double)j->s.steps, msg, mj);
    }
    if (!rc && !j->bm25_done) {
      irmetrics_result br;
      t0 = log_mono();
      rc = bm25_baseline(j, &b, &br, err);
      if (!rc) {
        log_eval(j, step, "bm25", &br, b.n_corpus, log_mono() - t0);
        write_eval(j, step, "bm25", &br);
        j->bm25_done = 1;
        j->bm25_mrr10 = irmetrics_get(&br, "mrr@10");
      }
    }
    if (!rc && j->bm25_done)
      logf_(j, "INFO", "MRR@10 foil %.4f vs BM25 %.4f: %.2fx", irmetrics_get(&res, "mrr@10"),
            j->bm25_mrr10, j->bm25_mrr10 > 0 ? irmetrics_get(&res, "mrr@10") / j->bm25_mrr10 : 0.0);
  }
  rc = comm_all_ok(j->c, rc, "evaluation", err);
done:
  irmetrics_destroy(&ir);
  free(qr.q);
  dataset_bench_free(&b);
  return rc;
}

/* Rank 0, on a resume: the BM25 baseline on this benchmark that an earlier
 * attempt wrote among the metrics kept (jobdir_metrics_from), so the run
 * neither computes nor logs it again at its next evaluation: a resumed
 * job's metrics have it once, as an uninterrupted run's do. Nothing found
 * (or the file unreadable): it is computed at the next evaluation, as on a
 * fresh start. Cost: one read of the metrics file. */
static void bm25_from_metrics(job *j) {
  if (j->rank != 0 || !j->s.benchmark || !j->s.benchmark[0]) return;
  char path[4200], key[512], *text = NULL;
  foil_err e = {0};
  snprintf(path, sizeof path, "%s/metrics", j->job_dir);
  /* write_eval's line: "eval", "model", then "mrr@10" */
  if (snprintf(key, sizeof key, "\"eval\":\"%s\",\"model\":\"bm25\",\"mrr@10\":", j->s.benchmark) >= (int)sizeof key)
    return;
  if (foil_read_file(path, &text, NULL, &e)) return;
  const char *at = strstr(text, key);
  if (at) {
    j->bm25_mrr10 = strtod(at + strlen(key), NULL);
    j->bm25_done = 1;
  }
  free(text);
}

/* ---- the negatives bank ------------------------------------------------------------------ */

/* Rank 0: reads the bank file when it holds a version other than the one
 * in use and it fits this data; *blob gets the serialized bank (counts,
 * then texts) for every rank. 0 with *blob NULL: nothing new. */
static int bank_read_new(job *j, negbank_meta *bm, char **blob, size_t *len) {
  *blob = NULL, *len = 0;
  foil_err e = {0};
  int rc = negbank_read_meta(j->bank_path, bm, &e);
  if (rc == FOIL_ENOTFOUND || (rc && access(j->bank_path, F_OK) != 0)) {
    if (!j->bank_missing_said && !j->bank_version)
      logf_(j, "INFO", "no negatives bank yet (%s): in-batch negatives only until a refresh mines one",
            j->bank_path);
    j->bank_missing_said = 1;
    return FOIL_OK;
  }
  if (rc || bm->version == j->bank_refused) {
    if (rc) logf_(j, "WARN", "negatives bank not read, keeping v%d: %s", j->bank_version, e.msg);
    return FOIL_OK;
  }
  /* only a newer one: a bank of an older version of the index (an older refresh's mining that ended
   * last) is never taken after a newer one, which would send the staleness backwards */
  int order = negbank_cmp(bm, j->bank_index, j->bank_version);
  if (order <= 0) {
    if (order < 0) {
      logf_(j, "WARN", "negatives bank %s holds %s v%d, older than v%d in use: not taken", j->bank_path, bm->index,
            bm->version, j->bank_version);
      j->bank_refused = bm->version;
    }
    return FOIL_OK;
  }
  const dataset_pairs *dp = loader_pairs(j->ld);
  negbank b;
  rc = negbank_read(j->bank_path, &b, &e);
  if (!rc) rc = negbank_check(&b.meta, j->bank_path, "train", (int64_t)dp->n, j->split_fp, j->s.hard_negatives, &e);
  if (rc) {
    logf_(j, "WARN", "negatives bank v%d refused, keeping %s%d: %s", bm->version, j->bank_version ? "v" : "none ",
          j->bank_version, e.msg);
    j->bank_refused = bm->version;
    negbank_free(&b);
    return FOIL_OK;
  }
  *bm = b.meta;
  size_t P = (size_t)b.meta.n_pairs, m = (size_t)b.meta.m;
  *len = sizeof(int32_t) * P;
  for (size_t i = 0; i < P * m; i++) *len += strlen(b.texts[i]) + 1;
  char *out = malloc(*len + 1);
  if (out) {
    int32_t *count = (int32_t *)out;
    char *t = out + sizeof(int32_t) * P;
    for (size_t i = 0; i < P; i++) {
      count[i] = 0;
      while ((size_t)count[i] < m && b.rows[i * m + (size_t)count[i]] >= 0) count[i]++;
    }
    for (size_t i = 0; i < P * m; i++) {
      size_t l = strlen(b.texts[i]) + 1;
      memcpy(t, b.texts[i], l);
      t += l;
    }
  } else {
    logf_(j, "WARN", "no memory for negatives bank v%d (%zu bytes): keeping the one in use", bm->version, *len);
  }
  negbank_free(&b);
  *blob = out;
  return FOIL_OK;
}

/* Every rank, between steps: rank 0 looks at the bank file; a newer usable
 * version is broadcast and every rank hands it to its loader before the
 * next step. */
static int bank_check(job *j, int64_t step, foil_err *err) {
  negbank_meta bm;
  memset(&bm, 0, sizeof bm);
  char *blob = NULL;
  size_t len = 0;
  if (j->rank == 0) bank_read_new(j, &bm, &blob, &len);
  int64_t hdr[4] = {blob != NULL, bm.version, bm.step, (int64_t)len};
  int rc = comm_bcast(j->c, hdr, sizeof hdr, 0, err);
  if (rc || !hdr[0]) {
    free(blob);
    return rc;
  }
  if (j->rank != 0 && !(blob = malloc((size_t)hdr[3] + 1)))
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for a negatives bank of %lld bytes", (long long)hdr[3]);
  if ((rc = comm_bcast(j->c, blob, (size_t)hdr[3], 0, err))) {
    free(blob);
    return rc;
  }
  const dataset_pairs *dp = loader_pairs(j->ld);
  size_t P = dp->n, m = (size_t)j->s.hard_negatives;
  /* the stride: texts per row, from the blob's size (rank 0 checked m <= stride) */
  char **texts = NULL;
  size_t nt = 0, cap = 0;
  for (char *t = blob + sizeof(int32_t) * P; t < blob + hdr[3]; t += strlen(t) + 1) {
    if (nt == cap) {
      cap = cap ? 2 * cap : P * m + 1;
      char **x = realloc(texts, sizeof(char *) * cap);
      if (!x) {
        free(texts), free(blob);
        return foil_err_set(err, FOIL_ENOMEM, "out of memory");
      }
      texts = x;
    }
    texts[nt++] = t;
  }
  int stride = P ? (int)(nt / P) : 0;
  if (!P || nt != P * (size_t)stride || stride < (int)m) {
    free(texts), free(blob);
    return foil_err_set(err, FOIL_EINTERNAL, "negatives bank v%lld arrived with %zu texts for %zu pairs",
                        (long long)hdr[1], nt, P);
  }
  if ((rc = loader_set_bank(j->ld, texts, (const int32_t *)(void *)blob, stride, err))) {
    free(texts), free(blob);
    return rc;
  }
  free(j->bank_texts), free(j->bank_blob);
  j->bank_texts = texts, j->bank_blob = blob;
  j->bank_stride = stride;
  j->bank_version = (int)hdr[1], j->bank_step = hdr[2];
  if (j->rank == 0) snprintf(j->bank_index, sizeof j->bank_index, "%s", bm.index);
  size_t short_pairs = 0;
  for (size_t i = 0; i < P; i++) short_pairs += ((const int32_t *)(void *)blob)[i] < (int32_t)m;
  logf_(j, "INFO", "negatives bank %s v%d picked up before step %lld: index %s v%d from the checkpoint of step "
        "%lld (staleness %lld steps), %d negatives per pair used of %d, %zu pair(s) with fewer", j->s.negatives_bank,
        j->bank_version, (long long)step + 1, bm.index, bm.version, (long long)j->bank_step,
        (long long)(step - j->bank_step), (int)m, stride, short_pairs);
  return FOIL_OK;
}

/* ---- one training step --------------------------------------------------------------------- */

/* Mean over dimensions of the per-dimension std of n unit rows [n, D]:
 * ~1/sqrt(D) for healthy embeddings, -> 0 when they collapse. */
static double mean_dim_std(const float *u, int n, int D) {
  double acc = 0;
  for (int d = 0; d < D; d++) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += u[(size_t)i * D + d], s2 += (double)u[(size_t)i * D + d] * u[(size_t)i * D + d];
    double m = s / n, v = s2 / n - m * m;
    acc += sqrt(v > 0 ? v : 0);
  }
  return acc / D;
}

typedef struct {
  loss_result lr;
  float grad_norm, q_std, k_std;
} step_stats;

/* Encodes rows [0, rows) of ids/mask (length T) with the query encoder in
 * slices of `chunk` rows, training mode, dropout drawn as for the whole
 * batch (encoder_forward_rows); embeddings go to out [rows, D]. */
static int encode_chunks(job *j, const int32_t *ids, const uint8_t *mask, int rows, int T, int chunk,
                         int64_t step, float *out, foil_err *err) {
  const int D = encoder_out_dim(j->enc);
  for (int r0 = 0; r0 < rows; r0 += chunk) {
    int n = rows - r0 < chunk ? rows - r0 : chunk;
    const float *emb;
    int rc = encoder_forward_rows(j->enc, &emb, ids + (size_t)r0 * T, mask + (size_t)r0 * T, n, T, 1,
                                  j->s.seed, (uint64_t)step, (uint64_t)r0, err);
    if (rc) return rc;
    job_copy(j, out + (size_t)r0 * D, emb, (size_t)n * D);
  }
  return FOIL_OK;
}

/* encoder_on_grads_ready's callback on GPU ranks: one NCCL bucket */
static int bucket_ready(void *ctx, float *g, size_t n, foil_err *err) {
  job *j = ctx;
  return comm_bucket_allreduce_mean(j->c, g, n, err);
}

static int train_step(job *j, int64_t step, const loader_batch *bt, step_stats *st, foil_err *err) {
  const spec *s = &j->s;
  const int B = bt->B, D = encoder_out_dim(j->enc), T = bt->T;
  int nneg = bt->n_neg, rc = FOIL_OK;
  loss_comm lc = comm_loss_comm(j->c);
  int nq = 0;
  const float *qkeys = j->queue ? moco_queue_keys(j->queue, &nq) : NULL;
  loss_opts lo = {.temperature = current_temperature(j), .symmetric = s->symmetric,
                  .decoupled = s->loss == LOSS_DCL, .queue = qkeys, .queue_n = nq};
  /* The rows that go through the query encoder (with gradient):
   *   infonce, dcl: queries, positives, negatives (bt's rows);
   *   simcse: the queries twice — the views differ only by their dropout
   *           masks (rows B..2B-1 draw other mask elements);
   *   moco:   the queries; positives and negatives go through the momentum
   *           encoder without gradient. */
  const int32_t *qids = bt->ids;
  const uint8_t *qmask = bt->mask;
  int qrows = bt->rows;
  int32_t *ids2 = NULL;
  uint8_t *m2 = NULL;
  if (s->loss == LOSS_SIMCSE) {
    nneg = 0;
    qrows = 2 * B;
    ids2 = malloc(sizeof(int32_t) * 2 * (size_t)B * T);
    m2 = malloc(2 * (size_t)B * T);
    if (!ids2 || !m2) {
      free(ids2);
      free(m2);
      return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    }
    for (int v = 0; v < 2; v++) {
      memcpy(ids2 + (size_t)v * B * T, bt->ids, sizeof(int32_t) * (size_t)B * T);
      memcpy(m2 + (size_t)v * B * T, bt->mask, (size_t)B * T);
    }
    qids = ids2;
    qmask = m2;
  } else if (s->loss == LOSS_MOCO) {
    qrows = B;
  }
  /* GradCache: micro_batch pairs' worth of rows per slice */
  const int chunk = s->micro_batch ? s->micro_batch * (qrows / B) : qrows;
  encoder_zero_grads(j->enc);
  rc = encode_chunks(j, qids, qmask, qrows, T, chunk, step, j->emb, err);
  if (!rc && s->loss == LOSS_MOCO) {
    const float *emb;
    rc = encoder_forward(j->key_enc, &emb, bt->ids + (size_t)B * T, bt->mask + (size_t)B * T,
                         B + nneg, T, 0, 0, 0, err);
    if (!rc) job_copy(j, j->emb + (size_t)B * D, emb, (size_t)(B + nneg) * D);
  }
  if (!rc) rc = loss_infonce(j->ls, &st->lr, j->demb, j->emb, B, nneg, D, &lo, &lc, err);
  /* backward through the query encoder: at once, or slice by slice after
   * encoding each slice again (the same dropout masks). GPU ranks (more
   * than one) all-reduce each run of gradients in an NCCL bucket as soon
   * as the last backward has made it final, while the rest of that
   * backward runs; CPU ranks all-reduce everything once afterwards. */
  const int overlap = j->gpu && j->world > 1;
  if (!rc && chunk >= qrows) {
    if (overlap) encoder_on_grads_ready(j->enc, bucket_ready, j);
    rc = encoder_backward(j->enc, j->demb, err);
  }
  for (int r0 = 0; !rc && chunk < qrows && r0 < qrows; r0 += chunk) {
    int n = qrows - r0 < chunk ? qrows - r0 : chunk;
    const float *emb;
    rc = encoder_forward_rows(j->enc, &emb, qids + (size_t)r0 * T, qmask + (size_t)r0 * T, n, T, 1,
                              s->seed, (uint64_t)step, (uint64_t)r0, err);
    if (overlap && r0 + n >= qrows) encoder_on_grads_ready(j->enc, bucket_ready, j);
    if (!rc) rc = encoder_backward(j->enc, j->demb + (size_t)r0 * D, err);
  }
  encoder_on_grads_ready(j->enc, NULL, NULL);
  free(ids2);
  free(m2);
  if (!rc && overlap) rc = comm_bucket_finish(j->c, err); /* the optimizer waits for the buckets */
  if (rc) return rc;
  if (!overlap && (rc = comm_allreduce_mean(j->c, encoder_grads(j->enc), encoder_num_params(j->enc), err)))
    return rc;
  st->grad_norm = optim_step(j->opt, j->enc, spec_lr_at(s, step));
  if (s->learnable_temperature) {
    /* d loss / d log(scale) = dscale · scale, averaged over ranks; its own
     * AdamW (no decay); log(scale) clamped to ln 100 as CLIP does */
    float scale = expf(j->temp_state[0]), g = st->lr.dscale * scale;
    if ((rc = comm_allreduce_mean_host(j->c, &g, 1, err))) return rc;
    j->temp_state[3] += 1.0f;
    adamw_update(&j->temp_state[0], &g, &j->temp_state[1], &j->temp_state[2], 1,
                 spec_lr_at(s, step), s->beta1, s->beta2, s->eps, 0.0f, (int)j->temp_state[3]);
    if (j->temp_state[0] > logf(100.0f)) j->temp_state[0] = logf(100.0f);
  }
  /* health: per-dimension spread of the (local) unit queries and keys */
  const float *u = j->unit;
  DEVMEM_KERN(backend_of(j), l2norm_forward, j->unit, j->norms, j->emb, 2 * B, D);
  if (j->gpu) { /* the statistics are computed on the host */
    if ((rc = job_get(j, j->host_unit, j->unit, 2 * (size_t)B * D, err))) return rc;
    u = j->host_unit;
  }
  st->q_std = (float)mean_dim_std(u, B, D);
  st->k_std = (float)mean_dim_std(u + (size_t)B * D, B, D);
  if (j->queue) {
    moco_momentum_update(j->key_enc, j->enc, spec_momentum_at(s, step));
    /* enqueue this step's keys of all ranks, in rank order: identical
     * queues everywhere */
    if ((rc = comm_allgather(j->c, j->unit + (size_t)B * D, (size_t)B * D, j->gathered, err)))
      return rc;
    moco_queue_push(j->queue, j->gathered, (int64_t)j->world * B);
  }
  return FOIL_OK;
}

/* ---- the job ------------------------------------------------------------------------------- */

static void job_free(job *j) {
  loader_destroy(&j->ld);
  moco_queue_destroy(&j->queue);
  loss_destroy(&j->ls);
  optim_destroy(&j->opt);
  encoder_destroy(&j->key_enc);
  encoder_destroy(&j->enc);
  tokenizer_destroy(&j->tok);
  hf_model_destroy(&j->hf);
  job_release(j, j->emb);
  job_release(j, j->demb);
  job_release(j, j->unit);
  job_release(j, j->norms);
  job_release(j, j->gathered);
  encoder_destroy(&j->host_enc);
  encoder_destroy(&j->host_key);
  optim_destroy(&j->host_opt);
  free(j->host_queue);
  free(j->host_unit);
  free(j->spec_json);
  free(j->bank_texts);
  free(j->bank_blob);
  spec_free(&j->s);
  if (j->log) fclose(j->log);
  if (j->metrics) fclose(j->metrics);
  progress_destroy(&j->prog);
}

/* init_from: the model's config, weights and (unless the spec names one)
 * tokenizer from a checkpoint — `foil model import`'s, or another job's.
 * Only the parameters are taken: optimizer state, step and data position
 * start fresh. */
static int init_from(job *j, foil_err *err) {
  spec *s = &j->s;
  encoder_config cfg;
  int rc = ckpt_read_config(s->init_from, &cfg, err);
  if (rc) return rc;
  cfg.dropout = s->model.dropout;
  if (!s->seq_len) s->seq_len = cfg.max_len < 128 ? cfg.max_len : 128;
  if (s->seq_len > cfg.max_len)
    return foil_err_set(err, FOIL_EINVAL, "model.max_len %d is more than the %d positions of init_from %s",
                        s->seq_len, cfg.max_len, s->init_from);
  s->model = cfg;
  if (s->tokenizer) {
    rc = tokenizer_load(&j->tok, s->tokenizer, err);
  } else {
    h5io *f = NULL;
    rc = h5io_open(&f, s->init_from, CKPT_FORMAT, err);
    if (!rc) rc = tokenizer_h5_read(f, "tokenizer", &j->tok, err);
    h5io_close(&f);
    if (rc == FOIL_ENOTFOUND)
      return foil_err_set(err, FOIL_EINVAL, "init_from %s holds no tokenizer: name one in model.tokenizer",
                          s->init_from);
  }
  if (rc) return rc;
  if (tokenizer_vocab_size(j->tok) != cfg.vocab)
    return foil_err_set(err, FOIL_EINVAL, "the tokenizer has %d tokens, init_from %s's model %d",
                        tokenizer_vocab_size(j->tok), s->init_from, cfg.vocab);
  if ((rc = encoder_new(&j->enc, &s->model, err))) return rc;
  ckpt_state st = {.enc = j->enc};
  rc = ckpt_load(s->init_from, &st, err);
  free((char *)st.spec_json);
  if (!rc) j->init_step = st.step;
  int imported = 0; /* an imported model's /hf group rides along */
  if (!rc && !(j->hf = calloc(1, sizeof *j->hf))) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  if (!rc) rc = hf_read_group(s->init_from, j->hf, cfg.d_model, cfg.max_len, &imported, err);
  if (!imported) hf_model_destroy(&j->hf);
  return rc;
}

static int job_setup(job *j, foil_err *err) {
  const pretrain_args *a = j->a;
  int rc;
  if ((rc = foil_read_file(a->spec_path, &j->spec_json, NULL, err))) return rc;
  if ((rc = spec_parse(&j->s, j->spec_json, err))) return rc;
  spec *s = &j->s;
  if (s->loss == LOSS_MOCO && s->symmetric)
    return foil_err_set(err, FOIL_EINVAL, "loss.symmetric is not defined for loss.kind moco");
  kernels_set_threads(comm_rank_threads(j->c, s->threads));
  if (a->job_dir) snprintf(j->job_dir, sizeof j->job_dir, "%s", a->job_dir);
  else snprintf(j->job_dir, sizeof j->job_dir, "%s/jobs/%s", a->root, s->name);
  snprintf(j->ckpt_dir, sizeof j->ckpt_dir, "%s/ckpt", j->job_dir);
  if (j->rank == 0 && (rc = jobdir_open(j->job_dir, "ckpt", &j->log, &j->metrics, &j->prog, err))) return rc;
  comm_barrier(j->c, err);
  if (s->init_from) {
    if ((rc = init_from(j, err))) return rc;
  } else {
    /* tokenizer: an absolute path, or relative to the working directory */
    if ((rc = tokenizer_load(&j->tok, s->tokenizer, err))) return rc;
    s->model.vocab = tokenizer_vocab_size(j->tok);
    if ((rc = encoder_new(&j->enc, &s->model, err))) return rc;
    encoder_init(j->enc, s->seed);
  }
  /* GPU ranks: NCCL over this rank's GPU, then the encoder (built and
   * initialized on the host above, as on CPU ranks: the same starting
   * weights) moves there; the host one stays as the checkpoints' copy */
  const int dev = s->device ? DEVMEM_CUDA : DEVMEM_CPU; /* backend_of(j) once j->gpu is set */
  if (s->device) {
    if ((rc = comm_job_gpu(j->c, 1, err))) return rc;
    j->gpu = 1;
    j->host_enc = j->enc, j->enc = NULL;
    if ((rc = encoder_clone_on(&j->enc, j->host_enc, DEVMEM_CUDA, err))) return rc;
    if (s->precision && (rc = encoder_set_precision(j->enc, ENC_BF16, err))) return rc;
  }
  optim_config oc = {s->lr, s->beta1, s->beta2, s->eps, s->weight_decay, s->max_grad_norm};
  const size_t np = encoder_num_params(j->enc);
  if ((rc = optim_new_on(&j->opt, np, &oc, dev, err))) return rc;
  if (j->gpu && (rc = optim_new(&j->host_opt, np, &oc, err))) return rc;
  if ((rc = loss_new_on(&j->ls, dev, err))) return rc;
  const int D = encoder_out_dim(j->enc), B = s->batch_per_rank;
  /* dropout masks by global row (model/rowmap.h), for the blocks of rows
   * train_step encodes with gradient: the queries; SimCSE's second view;
   * the positives and up to B·hard_negatives negatives */
  rowmap rm = {.rank = j->rank, .world = j->world, .nblocks = 1, .size = {B}};
  if (s->loss == LOSS_SIMCSE) rm.nblocks = 2, rm.size[1] = B;
  else if (s->loss != LOSS_MOCO) rm.nblocks = 3, rm.size[1] = B, rm.size[2] = (int64_t)B * s->hard_negatives;
  if ((rc = encoder_set_rows(j->enc, &rm, err))) return rc;
  if (s->loss == LOSS_MOCO) {
    /* the key encoder starts as a copy of the query encoder */
    const encoder *q0 = j->gpu ? j->host_enc : j->enc;
    if ((rc = encoder_clone_on(&j->key_enc, q0, dev, err))) return rc;
    if (s->precision && (rc = encoder_set_precision(j->key_enc, ENC_BF16, err))) return rc;
    if (j->gpu && (rc = encoder_clone_on(&j->host_key, q0, DEVMEM_CPU, err))) return rc;
    if ((rc = moco_queue_new_on(&j->queue, s->queue_size, D, dev, err))) return rc;
    if (j->gpu && !(j->host_queue = calloc((size_t)(s->queue_size * D), sizeof(float))))
      return foil_err_set(err, FOIL_ENOMEM, "out of memory for the queue's host copy");
  }
  j->temp_state[0] = logf(1.0f / s->temperature);
  char pairs[4200];
  snprintf(pairs, sizeof pairs, "%s/datasets/%s/pairs.h5", a->root, s->dataset);
  if (access(pairs, R_OK) != 0)
    return foil_err_set(err, FOIL_ENOTFOUND,
                        "dataset '%s' is not prepared under %s (no %s): prepare it with `foil data "
                        "prepare` (wordnet, code, or custom --name %s) or check data.dataset and --root",
                        s->dataset, a->root, pairs, s->dataset);
  if (s->benchmark && s->benchmark[0]) { /* found now, not after the first evaluation's steps */
    char bench[4200];
    snprintf(bench, sizeof bench, "%s/datasets/%s/benchmarks/%s.h5", a->root, s->dataset, s->benchmark);
    if (access(bench, R_OK) != 0)
      return foil_err_set(err, FOIL_ENOTFOUND, "data.benchmark '%s' of dataset '%s' is not there (no %s): "
                          "see `ls %s/datasets/%s/benchmarks`, or \"\" for no evaluation",
                          s->benchmark, s->dataset, bench, a->root, s->dataset);
  }
  /* with a bank, the negatives come from it, not from pairs.h5 */
  const int from_bank = s->negatives_bank != NULL;
  loader_config lc = {.path = pairs, .split = "train", .batch_size = B, .rank = j->rank,
                      .world = j->world, .max_len = s->seq_len,
                      .neg_per_pair = s->loss == LOSS_SIMCSE || from_bank ? 0 : s->hard_negatives,
                      .bank_negatives = from_bank ? s->hard_negatives : 0,
                      .pad_to_longest = !s->pad_max_len, .seed = s->seed};
  if ((rc = loader_open(&j->ld, &lc, j->tok, err))) return rc;
  if (from_bank) {
    if ((rc = negbank_path(a->root, s->negatives_bank, j->bank_path, sizeof j->bank_path, err))) return rc;
    if (j->rank == 0) j->split_fp = negbank_fingerprint(loader_pairs(j->ld));
  }
  size_t rows = 2 * (size_t)B + (size_t)B * s->hard_negatives;
  j->emb = job_alloc(j, rows * D);
  j->demb = job_alloc(j, rows * D);
  j->unit = job_alloc(j, rows * D);
  j->norms = job_alloc(j, rows);
  j->gathered = job_alloc(j, (size_t)j->world * B * D);
  if (!j->emb || !j->demb || !j->unit || !j->norms || !j->gathered)
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for a batch of %zu rows", devmem_where(backend_of(j)),
                        rows);
  if (j->gpu) {
    j->host_unit = malloc(sizeof(float) * 2 * (size_t)B * D);
    if (!j->host_unit) return foil_err_set(err, FOIL_ENOMEM, "out of memory for a GPU rank's buffers");
  }
  return FOIL_OK;
}

/* model.kind of the spec: a decoder's job is lmtrain.c's. A spec that does
 * not parse is left to job_setup, which reports it. */
static int is_decoder_job(const pretrain_args *a) {
  char *json = NULL;
  spec s;
  foil_err e = {0};
  int dec = 0;
  if (foil_read_file(a->spec_path, &json, NULL, &e) == FOIL_OK && spec_parse(&s, json, &e) == FOIL_OK) {
    dec = s.model_kind == MODEL_DECODER;
    spec_free(&s);
  }
  free(json);
  return dec;
}

int pretrain_run(const pretrain_args *a, comm *c, foil_err *err) {
  if (is_decoder_job(a)) return lmtrain_run(a, c, err);
  job j = {.a = a, .c = c, .rank = comm_rank(c), .world = comm_world(c), .resumed_bank = -1};
  int rc = job_setup(&j, err);
  int64_t step = 0;
  if (!rc) rc = comm_all_ok(j.c, try_resume(&j, &step, err), "resuming from the checkpoint", err);
  /* rank 0: the metrics as they stood at that checkpoint (jobdir_metrics_from) */
  size_t dropped = 0;
  if (!rc)
    rc = comm_all_ok(j.c, j.rank == 0 ? jobdir_metrics_from(j.job_dir, step, &j.metrics, &dropped, err) : FOIL_OK,
                     "trimming the metrics", err);
  if (!rc && dropped)
    logf_(&j, "INFO", "metrics: %zu line(s) after step %lld dropped (an earlier attempt's, logged again from here)",
          dropped, (long long)step);
  if (!rc && step > 0) bm25_from_metrics(&j);
  if (!rc && j.s.init_from && step == 0)
    logf_(&j, "INFO", "initialized from %s (its step %lld): %d layers, d %d, %d positions, sequences of %d tokens",
          j.s.init_from, (long long)j.init_step, j.s.model.n_layers, j.s.model.d_model, j.s.model.max_len,
          j.s.seq_len);
  if (!rc)
    logf_(&j, "INFO", "job %s: %d rank(s) x %d pairs, %lld steps from step %lld, %zu parameters, %s%s",
          j.s.name, j.world, j.s.batch_per_rank, (long long)j.s.steps, (long long)step,
          encoder_num_params(j.enc), comm_device(j.c), j.s.precision ? ", bf16 GEMMs" : "");
  /* the time split of the steps since the last log line: t_data taking
   * the batch, t_step the rest of the steps (of which t_comm inside
   * collectives, the rest compute); pairs_per_s is over t_step + t_data,
   * the steps alone: bank checks, evaluations, checkpoints and logging
   * between them are not training throughput */
  double t_data = 0, t_step = 0, t_comm = 0;
  int64_t ran = 0, pairs_since = 0;
  if (!rc && j.s.negatives_bank) { /* the bank as of the start, before the first step */
    rc = bank_check(&j, step, err);
    if (!rc && j.resumed_bank >= 0)
      logf_(&j, j.resumed_bank == j.bank_version ? "INFO" : "WARN", "resume: the checkpoint trained with negatives "
            "bank %s%lld, the bank now is %s%d: %s", j.resumed_bank ? "v" : "none ", (long long)j.resumed_bank,
            j.bank_version ? "v" : "none ", j.bank_version, j.resumed_bank == j.bank_version
            ? "it matches (exact resume)" : "it differs: the steps from here differ from an uninterrupted run's");
  }
  if (!rc && j.s.eval_at_start && step == 0) rc = evaluate(&j, 0, err); /* the starting weights */
  while (!rc && step < j.s.steps) {
    loader_batch bt;
    step_stats st;
    if (j.s.negatives_bank && step > 0 && step % j.s.negatives_check_every == 0 && ran > 0)
      if ((rc = bank_check(&j, step, err))) break;
    double t0 = log_mono();
    if ((rc = loader_next(j.ld, &bt, err))) break;
    if (j.s.negatives_bank) {
      /* every rank must bring the same number of negative rows: when some
       * rank's batch has no bank negatives at all, the step trains with
       * in-batch negatives only everywhere */
      double none = j.bank_version && bt.n_neg == 0;
      if ((rc = comm_allreduce_sum_f64(c, &none, 1, err))) break;
      if (none > 0 || !j.bank_version) bt.n_neg = 0, bt.rows = 2 * bt.B;
    }
    double t1 = log_mono(), comm0 = comm_busy_seconds(c);
    if ((rc = train_step(&j, step, &bt, &st, err))) break;
    t_data += t1 - t0;
    t_step += log_mono() - t1;
    t_comm += comm_busy_seconds(c) - comm0;
    step++;
    ran++;
    pairs_since += (int64_t)j.world * bt.B;
    if (!isfinite(st.lr.value)) {
      rc = foil_err_set(err, FOIL_EABORTED, "the loss is not finite at step %lld", (long long)step);
      break;
    }
    if (step % j.s.log_every_steps == 0 || step == j.s.steps) {
      double rate = t_step + t_data > 0 ? pairs_since / (t_step + t_data) : 0, t_comp = t_step - t_comm;
      int qn = 0;
      if (j.queue) moco_queue_keys(j.queue, &qn);
      char bank[160] = "";
      if (j.s.negatives_bank && j.bank_version)
        snprintf(bank, sizeof bank, " bank v%d staleness %lld", j.bank_version, (long long)(step - j.bank_step));
      else if (j.s.negatives_bank)
        snprintf(bank, sizeof bank, " bank none (in-batch negatives only)");
      logf_(&j, "INFO", "step %lld loss %.4f acc %.3f lr %.3g grad %.3f std q %.4f k %.4f T %.4f "
            "queue %d %.1f pairs/s%s", (long long)step, st.lr.value, st.lr.accuracy,
            spec_lr_at(&j.s, step - 1), st.grad_norm, st.q_std, st.k_std, current_temperature(&j), qn,
            rate, bank);
      if (j.rank == 0) {
        /* bank fields: the version in use (0: none yet) and its staleness */
        char bankj[128] = "";
        if (j.s.negatives_bank && j.bank_version)
          snprintf(bankj, sizeof bankj, ",\"bank_version\":%d,\"bank_staleness\":%lld,\"negatives\":%d",
                   j.bank_version, (long long)(step - j.bank_step), bt.n_neg);
        else if (j.s.negatives_bank)
          snprintf(bankj, sizeof bankj, ",\"bank_version\":0,\"negatives\":0");
        fprintf(j.metrics,
                "{\"step\":%lld,\"loss\":%.6f,\"accuracy\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,"
                "\"std_q\":%.6f,\"std_k\":%.6f,\"temperature\":%.6f,\"queue_fill\":%d,"
                "\"pairs_per_s\":%.2f,\"epoch\":%lld,\"time_compute_s\":%.4f,"
                "\"time_comm_s\":%.4f,\"time_data_s\":%.4f%s}\n",
                (long long)step, st.lr.value, st.lr.accuracy, spec_lr_at(&j.s, step - 1), st.grad_norm,
                st.q_std, st.k_std, current_temperature(&j), qn, rate, (long long)bt.epoch, t_comp,
                t_comm, t_data, bankj);
        fflush(j.metrics);
        char msg[64], mj[2 * PATH_MAX + 512];
        snprintf(msg, sizeof msg, "step %lld/%lld", (long long)step, (long long)j.s.steps);
        snprintf(mj, sizeof mj, "{\"step\":%lld,\"loss\":%.6f,\"accuracy\":%.6f,\"pairs_per_s\":%.2f,\"lr\":%.6g%s}",
                 (long long)step, st.lr.value, st.lr.accuracy, rate, spec_lr_at(&j.s, step - 1), bankj);
        progress_add_checkpoint(&j, mj, sizeof mj);
        progress_send(j.prog, (double)step, (double)j.s.steps, msg, mj);
      }
      pairs_since = 0;
      t_data = t_step = t_comm = 0;
    }
    /* the evaluation before the checkpoint of the same step: a checkpoint
     * is then written once everything of its step is (jobdir_metrics_from),
     * and a run killed between the two evaluates that step again when it
     * resumes from the previous checkpoint (the other order skipped it: a
     * resume at the last step only logged "done"). Evaluation changes no
     * state a checkpoint holds (an inference forward draws no dropout
     * masks; the loader, queue and optimizer are not touched), so the
     * order changes no trained bit. */
    if (step % j.s.eval_every_steps == 0 || step == j.s.steps)
      if ((rc = evaluate(&j, step, err))) break;
    if (step % j.s.checkpoint_every_steps == 0 || step == j.s.steps) {
      if ((rc = save_checkpoint(&j, step, err))) break;
      if (j.rank == 0) { /* the event at once (it stays in every later message too) */
        char msg[64], mj[2 * PATH_MAX + 128];
        snprintf(msg, sizeof msg, "step %lld/%lld: checkpoint", (long long)step, (long long)j.s.steps);
        snprintf(mj, sizeof mj, "{\"step\":%lld}", (long long)step);
        progress_add_checkpoint(&j, mj, sizeof mj);
        progress_send(j.prog, (double)step, (double)j.s.steps, msg, mj);
      }
    }
    if (a->stop_after > 0 && ran >= a->stop_after) break;
  }
  if (rc) logf_(&j, "ERROR", "%s", err ? err->msg : "failed");
  else if (step >= j.s.steps) logf_(&j, "INFO", "done: %lld steps", (long long)step);
  job_free(&j);
  return rc;
}
