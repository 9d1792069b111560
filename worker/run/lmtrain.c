/* lmtrain.c — the pretrain job of a decoder (see lmtrain.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "worker/run/lmtrain.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "kernels/kernels.h"
#include "model/decoder.h"
#include "model/devmem.h"
#include "model/optim.h"
#include "model/simctg.h"
#include "model/tokenizer.h"
#include "storage/ckpt.h"
#include "storage/h5io.h"
#include "storage/tokenizer_h5.h"
#include "worker/run/lmdata.h"
#include "worker/run/jobdir.h"
#include "worker/run/progress.h"
#include "worker/run/spec.h"

typedef struct {
  const pretrain_args *a;
  comm *c;
  int rank, world;
  spec s;
  char *spec_json;
  tokenizer *tok;
  decoder *dec;
  optim *opt;
  /* GPU ranks (spec device "cuda"): dec and opt live on this rank's GPU;
   * the host copies carry them to and from checkpoints */
  int gpu;
  decoder *host_dec;
  optim *host_opt;
  simctg *sc;            /* NULL when loss.simctg_margin is 0 */
  lmdata *train, *valid;
  int32_t *ids, *tgt;    /* [B,T] */
  float *dhidden;        /* [B,T,C] SimCTG's gradient */
  FILE *log, *metrics;
  progress *prog;
  char job_dir[4096], ckpt_dir[4200];
  char last_ckpt[PATH_MAX];
  int64_t last_ckpt_step;
} lmjob;

typedef struct {
  double mle, simctg; /* means over the global batch */
  float grad_norm;
  double data_s;      /* seconds taking the rows */
} lmstats;

/* One log line on rank 0: the job's log and, unless quiet, stderr. */
#define logf_(j, level, ...) \
  do { \
    if ((j)->rank == 0) log_tee((j)->log, !(j)->a->quiet, level, "pretrain", __VA_ARGS__); \
  } while (0)

/* Sends progress with the sticky checkpoint fields (pretrain.c's rule). */
static void send_progress(lmjob *j, int64_t step, const char *msg, const char *fields) {
  if (j->rank != 0) return;
  char mj[2 * PATH_MAX + 512], esc[2 * PATH_MAX + 1], *o = esc;
  for (const char *p = j->last_ckpt; *p && o < esc + sizeof esc - 3; p++) {
    if (*p == '"' || *p == '\\') *o++ = '\\';
    if ((unsigned char)*p >= 0x20) *o++ = *p;
  }
  *o = 0;
  if (j->last_ckpt_step)
    snprintf(mj, sizeof mj, "{\"step\":%lld%s%s,\"checkpoint\":\"%s\",\"checkpoint_step\":%lld}", (long long)step,
             fields[0] ? "," : "", fields, esc, (long long)j->last_ckpt_step);
  else
    snprintf(mj, sizeof mj, "{\"step\":%lld%s%s}", (long long)step, fields[0] ? "," : "", fields);
  progress_send(j->prog, (double)step, (double)j->s.steps, msg, mj);
}

/* The checkpoint's data cursor: {seed, fingerprint of the train split, step,
 * global batch W·B}. */
enum { LM_NCURSOR = 4 };

/* comm_all_ok (every rank learns whether every rank succeeded; one that
 * did not fail itself gets FOIL_EABORTED), first checking that every rank
 * has rank 0's n values (mine: this rank's; names: what each is, for the
 * message). Every rank makes the same calls whatever its rc: one broadcast
 * of rank 0's values (and whether it had them), one comm_all_ok. A rank
 * that differs fails with FOIL_EPRECOND naming the value; the others learn
 * that `what` failed on another rank. */
static int agree_same(lmjob *j, int rc, const uint64_t *mine, const char *const *names, int n, const char *what,
                      foil_err *err) {
  uint64_t v[8] = {0}; /* v[0]: rank 0 failed; v[1..n]: its values */
  if (n > 7) n = 7;
  if (j->rank == 0) {
    v[0] = rc != 0;
    if (!rc) memcpy(v + 1, mine, sizeof(uint64_t) * (size_t)n);
  }
  int crc = comm_bcast(j->c, v, sizeof(uint64_t) * (size_t)(n + 1), 0, rc ? NULL : err);
  if (!rc) rc = crc;
  for (int i = 0; !rc && !v[0] && i < n; i++)
    if (v[1 + i] != mine[i])
      rc = foil_err_set(err, FOIL_EPRECOND, "rank %d: %s is %llu, rank 0's is %llu: every rank must read the same "
                        "spec, tokenizer and data (does a node see other copies of them?)", j->rank, names[i],
                        (unsigned long long)mine[i], (unsigned long long)v[1 + i]);
  return comm_all_ok(j->c, rc, what, err);
}

/* ---- JSON numbers ------------------------------------------------------------------------------- */

/* A JSON object's members, built up by jnum (one line of metrics, the
 * fields of a progress message). */
typedef struct {
  char s[1024];
  size_t len;
} jfields;

/* Appends "key":v to f (after a comma unless it is the first): v with fmt,
 * with "%.9g" when that would be longer than 24 characters (the %.6f of a
 * diverged loss, the perplexity exp(loss) of one, have hundreds of digits),
 * null when v is not finite (inf and nan are not JSON). Each member is at
 * most about 50 characters, so f holds all of any line written here; one
 * that would not fit is left out whole (the line stays valid JSON). */
static void jnum(jfields *f, const char *key, const char *fmt, double v) {
  char num[48];
  if (!isfinite(v)) snprintf(num, sizeof num, "null");
  else if (snprintf(num, sizeof num, fmt, v) > 24) snprintf(num, sizeof num, "%.9g", v);
  int w = snprintf(f->s + f->len, sizeof f->s - f->len, "%s\"%s\":%s", f->len ? "," : "", key, num);
  if (w > 0 && (size_t)w < sizeof f->s - f->len) f->len += (size_t)w;
  else f->s[f->len] = 0;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

/* GPU ranks: the decoder and the optimizer's moments to their host copies
 * (before a checkpoint) and back (after a resume). */
static int state_to_host(lmjob *j, foil_err *err) {
  int rc = decoder_get_params(j->dec, decoder_params(j->host_dec), err);
  return rc ? rc : optim_copy_state(j->host_opt, j->opt, err);
}
static int state_to_device(lmjob *j, foil_err *err) {
  int rc = decoder_set_params(j->dec, decoder_params(j->host_dec), err);
  return rc ? rc : optim_copy_state(j->opt, j->host_opt, err);
}

/* What a checkpoint is written from and read into: the live objects on
 * CPU ranks, their host copies on GPU ranks (the same file either way). */
static ckpt_decoder ckpt_dec(lmjob *j) { return ckpt_decoder_of(j->gpu ? j->host_dec : j->dec); }
static optim *ckpt_opt(lmjob *j) { return j->gpu ? j->host_opt : j->opt; }

static int save_tok(h5io *f, void *ctx, foil_err *err) {
  return tokenizer_h5_write(f, "tokenizer", ((lmjob *)ctx)->tok, err);
}

static int save_checkpoint(lmjob *j, int64_t step, foil_err *err) {
  int rc = FOIL_OK;
  if (j->rank == 0) {
    /* the rows of a step are a function of (seed, data, step, W·B): lmdata.h */
    int64_t cur[LM_NCURSOR] = {(int64_t)j->s.seed, (int64_t)lmdata_fingerprint(j->train), step,
                               (int64_t)j->world * j->s.batch_per_rank};
    ckpt_decoder cd = ckpt_dec(j);
    ckpt_state st = {.step = step, .spec_json = j->spec_json, .dec = &cd, .opt = ckpt_opt(j), .seed = j->s.seed,
                     .call = (uint64_t)step, .cursor = cur, .ncursor = LM_NCURSOR};
    char path[4400];
    snprintf(path, sizeof path, "%s/step_%lld.h5", j->ckpt_dir, (long long)step);
    rc = j->gpu ? state_to_host(j, err) : FOIL_OK;
    /* the metrics through this step (its evaluation included: the loop
     * evaluates before it checkpoints) are on disk before the checkpoint
     * that a resume continues from: jobdir_metrics_from then finds them
     * all. Cost: one fsync of a small file. */
    if (!rc && (fflush(j->metrics) != 0 || fsync(fileno(j->metrics)) != 0))
      logf_(j, "WARN", "the metrics of step %lld may not be on disk (fsync failed); the checkpoint goes on",
            (long long)step);
    if (!rc) rc = progress_fenced(j->job_dir, getenv("FOIL_ATTEMPT_TOKEN"), err);
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
      char msg[64];
      snprintf(msg, sizeof msg, "step %lld/%lld: checkpoint", (long long)step, (long long)j->s.steps);
      send_progress(j, step, msg, "");
    }
  }
  return comm_all_ok(j->c, rc, "writing a checkpoint", err);
}

/* 1 when path's cursor has the 3 entries of a checkpoint written before
 * the cursor held the global batch. */
static int cursor_without_batch(const char *path) {
  h5io *f = NULL;
  foil_err e = {0};
  int ndim = 0;
  uint64_t dims[8] = {0};
  int old = h5io_open(&f, path, CKPT_FORMAT, &e) == FOIL_OK &&
            h5io_shape(f, "loader/cursor", &ndim, dims, &e) == FOIL_OK && ndim == 1 && dims[0] == 3;
  h5io_close(&f);
  return old;
}

/* Resumes from the newest usable checkpoint of the job, the same file on
 * every rank (jobdir_resume_pick); *start gets its step (0: a fresh start).
 * A checkpoint of another seed, other data or another global batch W·B
 * (its steps would take other rows: lmdata.h) is refused, as is one whose
 * step is outside 0..steps. */
static int try_resume(lmjob *j, int64_t *start, foil_err *err) {
  *start = 0;
  char *path = NULL, *skipped = NULL, chosen[PATH_MAX];
  int rc = jobdir_resume_pick(j->c, j->ckpt_dir, chosen, &skipped, err);
  if (skipped) logf_(j, "WARN", "unusable checkpoints skipped: %s", skipped);
  free(skipped);
  if (rc || !chosen[0]) return rc; /* !chosen[0]: a fresh start */
  if (!(path = strdup(chosen))) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int64_t cur[LM_NCURSOR];
  ckpt_decoder cd = ckpt_dec(j);
  ckpt_state st = {.dec = &cd, .opt = ckpt_opt(j), .cursor = cur, .ncursor = LM_NCURSOR};
  rc = ckpt_load(path, &st, err);
  if (rc && cursor_without_batch(path))
    rc = foil_err_set(err, FOIL_EPRECOND, "%s was written by an older foil whose data cursor does not record the "
                      "global batch (ranks x batch_per_rank), so resuming cannot be checked to continue that run's "
                      "data order: run the job again in a new job directory", path);
  if (!rc && j->gpu) rc = state_to_device(j, err);
  free((char *)st.spec_json);
  st.spec_json = NULL;
  const int64_t G = (int64_t)j->world * j->s.batch_per_rank;
  if (!rc) {
    if (st.seed != j->s.seed || (uint64_t)cur[0] != j->s.seed)
      rc = foil_err_set(err, FOIL_EPRECOND, "%s was written with seed %llu, the spec says %llu", path,
                        (unsigned long long)st.seed, (unsigned long long)j->s.seed);
    else if ((uint64_t)cur[1] != lmdata_fingerprint(j->train))
      rc = foil_err_set(err, FOIL_EPRECOND, "%s was trained on other data (the tokenized train split or the "
                        "sequence length changed): resuming would not continue that run", path);
    else if (cur[3] != G)
      rc = foil_err_set(err, FOIL_EPRECOND, "%s was trained with a global batch of %lld rows, this run has %d "
                        "rank(s) x batch_per_rank %d = %lld: its steps would take other rows, and resuming would "
                        "not continue that run (run it with ranks x batch_per_rank = %lld)", path,
                        (long long)cur[3], j->world, j->s.batch_per_rank, (long long)G, (long long)cur[3]);
    else if (cur[2] != st.step)
      rc = foil_err_set(err, FOIL_EPRECOND, "%s: its data cursor (step %lld) disagrees with its step %lld", path,
                        (long long)cur[2], (long long)st.step);
    else if (st.step < 0 || st.step > j->s.steps)
      rc = foil_err_set(err, FOIL_EPRECOND, "%s is at step %lld, outside this job's 0..%lld steps", path,
                        (long long)st.step, (long long)j->s.steps);
  }
  if (!rc) {
    *start = st.step;
    logf_(j, "INFO", "resumed from %s at step %lld", path, (long long)st.step);
  }
  free(path);
  return rc;
}

/* ---- evaluation -------------------------------------------------------------------------------- */

static int evaluate(lmjob *j, int64_t step, foil_err *err) {
  const int B = j->s.batch_per_rank, T = j->s.seq_len;
  int64_t n = lmdata_windows(j->valid);
  if (j->s.eval_tokens > 0 && (j->s.eval_tokens + T - 1) / T < n) n = (j->s.eval_tokens + T - 1) / T;
  double t0 = log_mono(), sums[2] = {0, 0}; /* nll sum, tokens */
  int rc = FOIL_OK;
  for (int64_t k0 = j->rank; !rc && k0 < n; k0 += (int64_t)B * j->world) {
    int rows = 0;
    for (int64_t k = k0; k < n && rows < B; k += j->world, rows++)
      lmdata_window(j->valid, k, j->ids + (size_t)rows * T, j->tgt + (size_t)rows * T);
    float loss;
    rc = decoder_forward(j->dec, j->ids, j->tgt, NULL, rows, T, 0, j->s.seed, 0, &loss, NULL, NULL, NULL, err);
    sums[0] += (double)loss * rows * T;
    sums[1] += (double)rows * T;
  }
  /* every rank reduces once, failed or not: comm_all_ok's rule (a rank that
   * did not fail itself gets FOIL_EABORTED) fused into the sums' reduction */
  double bad = rc != 0, all[3] = {sums[0], sums[1], bad};
  int crc = comm_allreduce_sum_f64(j->c, all, 3, rc ? NULL : err);
  if (rc) return rc;
  if (crc) return crc;
  if (all[2] > 0) return foil_err_set(err, FOIL_EABORTED, "evaluation failed on another rank");
  double vl = all[1] > 0 ? all[0] / all[1] : 0, ppl = exp(vl);
  logf_(j, "INFO", "eval step %lld on valid: loss %.4f perplexity %.6g (%.0f tokens, %.1f s)", (long long)step,
        vl, ppl, all[1], log_mono() - t0);
  if (j->rank == 0) {
    jfields f = {.len = 0};
    jnum(&f, "val_loss", "%.6f", vl);
    jnum(&f, "val_ppl", "%.6g", ppl);
    fprintf(j->metrics, "{\"step\":%lld,\"eval\":\"valid\",%s,\"tokens\":%.0f}\n", (long long)step, f.s, all[1]);
    fflush(j->metrics);
    char msg[128];
    snprintf(msg, sizeof msg, "eval step %lld/%lld: valid perplexity %.6g", (long long)step, (long long)j->s.steps,
             ppl);
    send_progress(j, step, msg, f.s);
  }
  return FOIL_OK;
}

/* ---- one step ------------------------------------------------------------------------------------- */

/* decoder_on_grads_ready's callback on GPU ranks: one NCCL bucket */
static int bucket_ready(void *ctx, float *g, size_t n, foil_err *err) {
  return comm_bucket_allreduce_mean(((lmjob *)ctx)->c, g, n, err);
}

static int train_step(lmjob *j, int64_t step, lmstats *st, int64_t *epoch, foil_err *err) {
  const spec *s = &j->s;
  const int B = s->batch_per_rank, T = s->seq_len, C = s->dmodel.d_model;
  double t0 = log_mono();
  int rc = lmdata_batch(j->train, step, j->ids, j->tgt, epoch, err);
  st->data_s = log_mono() - t0;
  if (rc) return rc;
  decoder_zero_grads(j->dec);
  float mle = 0, cl = 0;
  const float *hidden = NULL;
  rc = decoder_forward(j->dec, j->ids, j->tgt, NULL, B, T, 1, s->seed, (uint64_t)step, &mle,
                       j->sc ? &hidden : NULL, NULL, NULL, err);
  /* every row is full: this rank's pairs B·T(T−1) are 1/W of the global
   * batch's, as its tokens are, so local means average to global ones */
  if (!rc && j->sc) rc = simctg_loss(j->sc, hidden, NULL, B, T, C, s->simctg_margin, 0, &cl, j->dhidden, err);
  /* GPU ranks (more than one) all-reduce each run of gradients in an NCCL
   * bucket as soon as the backward has made it final, while the rest of
   * the backward runs; CPU ranks all-reduce everything once afterwards */
  const int overlap = j->gpu && j->world > 1;
  if (overlap) decoder_on_grads_ready(j->dec, bucket_ready, j);
  if (!rc) rc = decoder_backward(j->dec, 1.0f, j->sc ? j->dhidden : NULL, err);
  decoder_on_grads_ready(j->dec, NULL, NULL);
  if (!rc && overlap) rc = comm_bucket_finish(j->c, err); /* the optimizer waits for the buckets */
  if (rc) return rc;
  const size_t np = decoder_num_params(j->dec);
  if (!overlap && (rc = comm_allreduce_mean(j->c, decoder_grads(j->dec), np, err))) return rc;
  /* Before the update: the global batch's losses and whether its averaged
   * gradient's norm (optim's, from the same sum of squares) is finite, one
   * reduction, so every rank decides alike. A step that blew up (a finite
   * loss can have an infinite gradient: clipping's max/inf then makes it
   * NaN) ends the job with the parameters and AdamW's moments as the last
   * step left them, before any checkpoint or evaluation could use them.
   * Cost: one more read of the gradients (optim_step_tensors sums them
   * again for its clipping). */
  double ss = DEVMEM_KERN(j->gpu ? DEVMEM_CUDA : DEVMEM_CPU, sumsq, decoder_grads(j->dec), np);
  double v[3] = {mle, cl, !isfinite((float)sqrt(ss))};
  if ((rc = comm_allreduce_sum_f64(j->c, v, 3, err))) return rc;
  st->mle = v[0] / j->world;
  st->simctg = v[1] / j->world;
  if (!isfinite(st->mle) || !isfinite(st->simctg))
    return foil_err_set(err, FOIL_EABORTED, "the loss is not finite at step %lld (the update was not applied)",
                        (long long)step + 1);
  if (v[2] > 0)
    return foil_err_set(err, FOIL_EABORTED, "the gradient norm is not finite at step %lld (loss %.6g; the update "
                        "was not applied): lower optimizer.lr or set optimizer.max_grad_norm", (long long)step + 1,
                        st->mle + st->simctg);
  st->grad_norm = optim_step_tensors(j->opt, decoder_params(j->dec), decoder_grads(j->dec), decoder_tensors(j->dec),
                                     DEC_NTENSORS, spec_lr_at(s, step));
  return FOIL_OK;
}

/* ---- the job ---------------------------------------------------------------------------------------- */

static void job_free(lmjob *j) {
  lmdata_destroy(&j->train);
  lmdata_destroy(&j->valid);
  simctg_destroy(&j->sc);
  optim_destroy(&j->opt);
  decoder_destroy(&j->dec);
  optim_destroy(&j->host_opt);
  decoder_destroy(&j->host_dec);
  tokenizer_destroy(&j->tok);
  free(j->ids);
  free(j->tgt);
  free(j->dhidden);
  free(j->spec_json);
  spec_free(&j->s);
  if (j->log) fclose(j->log);
  if (j->metrics) fclose(j->metrics);
  progress_destroy(&j->prog);
}

/* FNV-1a of a string (the spec's text: every rank must have read the same). */
static uint64_t hash_text(const char *t) {
  uint64_t h = 1469598103934665603ULL;
  for (; *t; t++) h = (h ^ (unsigned char)*t) * 1099511628211ULL;
  return h;
}

/* Every collective here (the comm_all_oks, comm_job_gpu's) is reached by
 * every rank in the same order, whatever failed where: each rank-local step
 * runs only while rc is 0, and the comm_all_oks come before any branch on
 * the spec. (A rank that returned early would wait in lmtrain_run's
 * agree_same while the others wait in another collective, for good:
 * foil_run's MPI_Abort never runs.) Returns this rank's rc; lmtrain_run
 * then agrees once more (agree_same). */
static int job_setup(lmjob *j, foil_err *err) {
  const pretrain_args *a = j->a;
  spec *s = &j->s;
  int rc = foil_read_file(a->spec_path, &j->spec_json, NULL, err);
  if (!rc) rc = spec_parse(s, j->spec_json, err);
  if (!rc) {
    kernels_set_threads(comm_rank_threads(j->c, s->threads));
    if (a->job_dir) snprintf(j->job_dir, sizeof j->job_dir, "%s", a->job_dir);
    else snprintf(j->job_dir, sizeof j->job_dir, "%s/jobs/%s", a->root, s->name);
    snprintf(j->ckpt_dir, sizeof j->ckpt_dir, "%s/ckpt", j->job_dir);
    if (j->rank == 0) rc = jobdir_open(j->job_dir, "ckpt", &j->log, &j->metrics, &j->prog, err);
  }
  /* from here on every rank has the same spec (so takes the same branches) */
  uint64_t spec_hash = rc ? 0 : hash_text(j->spec_json);
  static const char *const spec_names[] = {"the hash of the spec it read"};
  if ((rc = agree_same(j, rc, &spec_hash, spec_names, 1, "reading the spec or opening the job directory", err)))
    return rc;
  rc = tokenizer_load(&j->tok, s->tokenizer, err);
  if (!rc && tokenizer_kind(j->tok) != TOKENIZER_BPE)
    rc = foil_err_set(err, FOIL_EINVAL, "model.tokenizer %s is WordPiece; a decoder needs a byte-level BPE "
                      "vocab.json (make one with `foil tokenizer train --lm ROOT/datasets/%s/lm.h5 ...`)",
                      s->tokenizer, s->dataset);
  if (!rc) {
    s->dmodel.vocab = tokenizer_vocab_size(j->tok);
    rc = decoder_config_check(&s->dmodel, err);
  }
  if (!rc) rc = decoder_new(&j->dec, &s->dmodel, err);
  if (!rc) rc = decoder_init(j->dec, s->seed, err);
  /* GPU ranks: NCCL over this rank's GPU, then the decoder (initialized on
   * the host as on CPU ranks: the same starting weights) moves there; the
   * host one stays as the checkpoints' copy */
  if (s->device) {
    if ((rc = comm_all_ok(j->c, rc, "loading the tokenizer and building the decoder", err))) return rc;
    if ((rc = comm_job_gpu(j->c, 1, err))) return rc;
    j->gpu = 1;
    j->host_dec = j->dec, j->dec = NULL;
    if ((rc = decoder_clone_on(j->host_dec, DEVMEM_CUDA, &j->dec, err))) return rc;
    if (s->precision && (rc = decoder_set_precision(j->dec, ENC_BF16, err))) return rc;
  }
  if (rc) return rc; /* no collective until lmtrain_run's agree_same */
  optim_config oc = {s->lr, s->beta1, s->beta2, s->eps, s->weight_decay, s->max_grad_norm};
  const size_t np = decoder_num_params(j->dec);
  if ((rc = optim_new_on(&j->opt, np, &oc, j->gpu ? DEVMEM_CUDA : DEVMEM_CPU, err))) return rc;
  if (j->gpu && (rc = optim_new(&j->host_opt, np, &oc, err))) return rc;
  if (s->simctg_margin > 0 && (rc = simctg_new(&j->sc, err))) return rc;
  /* dropout masks by global row (model/rowmap.h): rank r's rows are rows
   * r·B .. r·B+B-1 of the step's global batch (lmdata.h) */
  rowmap rm = {.rank = j->rank, .world = j->world, .nblocks = 1, .size = {s->batch_per_rank}};
  if ((rc = decoder_set_rows(j->dec, &rm, err))) return rc;
  char lm[4200];
  snprintf(lm, sizeof lm, "%s/datasets/%s/lm.h5", a->root, s->dataset);
  if (access(lm, R_OK) != 0)
    return foil_err_set(err, FOIL_ENOTFOUND, "dataset '%s' is not an lm dataset prepared under %s (no %s): prepare it "
                        "with `foil data prepare lm` or check data.dataset and --root", s->dataset, a->root, lm);
  const int B = s->batch_per_rank, T = s->seq_len;
  lmdata_config lc = {.path = lm, .split = "train", .seq_len = T, .batch_size = B, .rank = j->rank,
                      .world = j->world, .seed = s->seed};
  double t0 = log_mono();
  if ((rc = lmdata_open(&j->train, &lc, j->tok, err))) return rc;
  lc.split = "valid";
  if ((rc = lmdata_open(&j->valid, &lc, j->tok, err))) return rc;
  logf_(j, "INFO", "data %s: train %lld documents, %lld tokens, %lld windows of %d (%lld steps an epoch); valid "
        "%lld tokens (%.1f s to tokenize)", s->dataset, (long long)lmdata_docs(j->train),
        (long long)lmdata_tokens(j->train), (long long)lmdata_windows(j->train), T,
        (long long)lmdata_steps_per_epoch(j->train), (long long)lmdata_tokens(j->valid), log_mono() - t0);
  if (lmdata_steps_per_epoch(j->train) < 1)
    logf_(j, "WARN", "the train split has %lld windows, fewer than one global batch of %d rows: steps reuse them",
          (long long)lmdata_windows(j->train), B * j->world);
  j->ids = malloc(sizeof(int32_t) * (size_t)B * T);
  j->tgt = malloc(sizeof(int32_t) * (size_t)B * T);
  if (j->sc) j->dhidden = malloc(sizeof(float) * (size_t)B * T * s->dmodel.d_model);
  if (!j->ids || !j->tgt || (j->sc && !j->dhidden))
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for a batch of %d rows", B);
  return FOIL_OK;
}

int lmtrain_run(const pretrain_args *a, comm *c, foil_err *err) {
  lmjob j = {.a = a, .c = c, .rank = comm_rank(c), .world = comm_world(c)};
  int rc = job_setup(&j, err);
  /* every rank, failed or not (job_setup's last collective was common to
   * all): the ranks must have tokenized the same data with the same
   * tokenizer, or the gradient all-reduce would mix models of different
   * sizes and the ranks would train on inconsistent windows (a resume
   * checks the checkpoint against each rank's data; a fresh start checks
   * here) */
  uint64_t same[4] = {0};
  if (!rc) {
    same[0] = lmdata_fingerprint(j.train);
    same[1] = (uint64_t)lmdata_windows(j.train);
    same[2] = lmdata_fingerprint(j.valid);
    same[3] = decoder_num_params(j.dec);
  }
  static const char *const same_names[] = {"the fingerprint of the tokenized train split",
                                           "the number of train windows",
                                           "the fingerprint of the tokenized valid split",
                                           "the number of decoder parameters (the tokenizer's vocabulary)"};
  rc = agree_same(&j, rc, same, same_names, 4, "setting up the job", err);
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
  char margin[48] = " (SimCTG off)";
  if (!rc && j.sc) snprintf(margin, sizeof margin, " + SimCTG margin %.2f", j.s.simctg_margin);
  if (!rc)
    logf_(&j, "INFO", "job %s: decoder %d layers d %d, %zu parameters; %d rank(s) x %d rows of %d tokens, "
          "%lld steps from step %lld; loss causal_lm%s; %s%s", j.s.name, j.s.dmodel.n_layers,
          j.s.dmodel.d_model, decoder_num_params(j.dec), j.world, j.s.batch_per_rank, j.s.seq_len,
          (long long)j.s.steps, (long long)step, margin, comm_device(j.c), j.s.precision ? ", bf16 GEMMs" : "");
  /* the time split of the steps since the last log line: t_data taking
   * the rows, t_step the rest of the steps (of which t_comm inside
   * collectives, the rest compute); tokens_per_s is over t_step + t_data,
   * the steps alone: evaluations, checkpoints and logging between them are
   * not training throughput */
  double t_data = 0, t_step = 0, t_comm = 0;
  int64_t ran = 0, tokens_since = 0;
  if (!rc && j.s.eval_at_start && step == 0) rc = evaluate(&j, 0, err); /* the starting weights */
  while (!rc && step < j.s.steps) {
    lmstats st = {0};
    int64_t epoch = 0;
    double t0 = log_mono(), comm0 = comm_busy_seconds(c);
    if ((rc = train_step(&j, step, &st, &epoch, err))) break;
    t_step += log_mono() - t0 - st.data_s;
    t_comm += comm_busy_seconds(c) - comm0;
    t_data += st.data_s;
    step++;
    ran++;
    tokens_since += (int64_t)j.world * j.s.batch_per_rank * j.s.seq_len;
    if (step % j.s.log_every_steps == 0 || step == j.s.steps) {
      double rate = t_step + t_data > 0 ? tokens_since / (t_step + t_data) : 0;
      float lr = spec_lr_at(&j.s, step - 1);
      logf_(&j, "INFO", "step %lld loss %.4f mle %.4f (ppl %.6g) simctg %.4f lr %.3g grad %.3f %.0f tokens/s",
            (long long)step, st.mle + st.simctg, st.mle, exp(st.mle), st.simctg, lr, st.grad_norm, rate);
      if (j.rank == 0) {
        jfields m = {.len = 0}, p = {.len = 0};
        jnum(&m, "loss", "%.6f", st.mle + st.simctg);
        jnum(&m, "mle", "%.6f", st.mle);
        jnum(&m, "ppl", "%.6g", exp(st.mle));
        jnum(&m, "simctg", "%.6f", st.simctg);
        jnum(&m, "lr", "%.6g", lr);
        jnum(&m, "grad_norm", "%.6f", st.grad_norm);
        jnum(&m, "tokens_per_s", "%.1f", rate);
        jnum(&m, "epoch", "%.0f", (double)epoch);
        /* GPU ranks with more than one rank (the overlap path) all-reduce
         * the gradients in NCCL buckets on a side stream the host does not
         * wait for, so comm_busy_seconds does not see them: time_comm_s is
         * then about 0 and time_compute_s includes the NCCL time that did
         * not overlap the backward */
        jnum(&m, "time_compute_s", "%.4f", t_step - t_comm);
        jnum(&m, "time_comm_s", "%.4f", t_comm);
        jnum(&m, "time_data_s", "%.4f", t_data);
        fprintf(j.metrics, "{\"step\":%lld,%s}\n", (long long)step, m.s);
        fflush(j.metrics);
        jnum(&p, "loss", "%.6f", st.mle + st.simctg);
        jnum(&p, "mle", "%.6f", st.mle);
        jnum(&p, "simctg", "%.6f", st.simctg);
        jnum(&p, "tokens_per_s", "%.1f", rate);
        jnum(&p, "lr", "%.6g", lr);
        char msg[64];
        snprintf(msg, sizeof msg, "step %lld/%lld", (long long)step, (long long)j.s.steps);
        send_progress(&j, step, msg, p.s);
      }
      tokens_since = 0;
      t_data = t_step = t_comm = 0;
    }
    /* the evaluation before the checkpoint of the same step: a checkpoint
     * is then written once everything of its step is (jobdir_metrics_from),
     * and a run killed between the two evaluates that step again when it
     * resumes from the previous checkpoint (the other order skipped it: a
     * resume at the last step only logged "done") */
    if (step % j.s.eval_every_steps == 0 || step == j.s.steps)
      if ((rc = evaluate(&j, step, err))) break;
    if (step % j.s.checkpoint_every_steps == 0 || step == j.s.steps)
      if ((rc = save_checkpoint(&j, step, err))) break;
    if (a->stop_after > 0 && ran >= a->stop_after) break;
  }
  if (rc) logf_(&j, "ERROR", "%s", err ? err->msg : "failed");
  else if (step >= j.s.steps) logf_(&j, "INFO", "done: %lld steps", (long long)step);
  job_free(&j);
  return rc;
}
