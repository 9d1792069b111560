/* spec.c — the pretrain job spec (see spec.h). */
#define _POSIX_C_SOURCE 200809L
#include "worker/run/spec.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "storage/negbank.h"
#include "worker/run/jspec.h"
#include "worker/run/refresh.h"

/* ---- the spec ----------------------------------------------------------------------- */

/* The "refresh" object: its own keys here, the rest checked as the refresh
 * spec the coordinator builds from it (refresh.h), with a stand-in
 * checkpoint. Kept as JSON text for the coordinator. */
static void parse_refresh(jspec *c, spec *s, const cJSON *r) {
  if (!r || c->rc) return;
  if (!cJSON_IsObject(r)) {
    jspec_fail(c, "refresh must be an object");
    return;
  }
  static const char *const keys[] = {"every_steps", "index", "corpus", "dtype", "keep_versions", "mine",
                                     "ranks", "batch", "threads", NULL};
  jspec_only_keys(c, r, "refresh", keys);
  s->refresh_every_steps = (int64_t)jspec_number(c, r, "every_steps", "refresh.every_steps", 0, 1, 1e12, 1, 1);
  char *index = jspec_string(c, r, "index", "refresh.index", NULL, 1);
  jspec_number(c, r, "ranks", "refresh.ranks", 1, 1, 4096, 1, 0);
  if (!c->rc && s->refresh_every_steps % s->checkpoint_every_steps)
    jspec_fail(c, "refresh.every_steps (%lld) must be a multiple of checkpoint.every_steps (%lld): a refresh "
               "encodes with the checkpoint of that step", (long long)s->refresh_every_steps,
               (long long)s->checkpoint_every_steps);
  if (!c->rc) {
    cJSON *rs = cJSON_CreateObject();
    cJSON_AddStringToObject(rs, "kind", "refresh");
    cJSON_AddStringToObject(rs, "name", index);
    cJSON_AddStringToObject(rs, "checkpoint", "(the checkpoint)");
    for (const cJSON *x = r->child; x; x = x->next)
      if (strcmp(x->string, "every_steps") && strcmp(x->string, "index") && strcmp(x->string, "ranks"))
        cJSON_AddItemToObject(rs, x->string, cJSON_Duplicate(x, 1));
    char *text = cJSON_PrintUnformatted(rs);
    foil_err e2 = {0};
    if (!text) jspec_fail(c, "out of memory");
    else if (refresh_spec_check(text, &e2)) jspec_fail(c, "refresh: %.900s", e2.msg);
    free(text);
    cJSON_Delete(rs);
  }
  free(index);
  if (!c->rc && !(s->refresh_json = cJSON_PrintUnformatted(r))) jspec_fail(c, "out of memory");
}

/* jspec_only_keys for a decoder job: the message says why a key that an
 * encoder job would take is refused. */
static void only_keys_dec(jspec *c, const cJSON *obj, const char *path, const char *const *allowed) {
  if (!obj || c->rc) return;
  for (const cJSON *it = obj->child; it; it = it->next) {
    int ok = 0;
    for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, it->string);
    if (!ok) {
      jspec_fail(c, "unknown key %s.%.100s for a decoder (model.kind \"decoder\")", path, it->string);
      return;
    }
  }
}

/* model.* of a decoder (model.kind "decoder"). */
static void parse_decoder(jspec *c, spec *s, const cJSON *root, const cJSON *m) {
  static const char *const keys[] = {"kind", "n_layers", "d_model", "n_heads", "d_ff", "max_len",
                                     "dropout", "ln_eps", "tokenizer", NULL};
  only_keys_dec(c, m, "model", keys);
  decoder_config *dm = &s->dmodel;
  memset(dm, 0, sizeof *dm);
  dm->n_layers = (int)jspec_number(c, m, "n_layers", "model.n_layers", 4, 1, 1024, 1, 0);
  dm->d_model = (int)jspec_number(c, m, "d_model", "model.d_model", 256, 1, 65536, 1, 0);
  dm->n_heads = (int)jspec_number(c, m, "n_heads", "model.n_heads", 4, 1, 1024, 1, 0);
  dm->d_ff = (int)jspec_number(c, m, "d_ff", "model.d_ff", 4 * dm->d_model, 1, 1 << 20, 1, 0);
  dm->max_len = (int)jspec_number(c, m, "max_len", "model.max_len", 64, 2, 65536, 1, 0);
  dm->dropout = (float)jspec_number(c, m, "dropout", "model.dropout", 0.1, 0, 0.99, 0, 0);
  dm->ln_eps = (float)jspec_number(c, m, "ln_eps", "model.ln_eps", 1e-5, 1e-30, 0.5, 0, 0);
  s->tokenizer = jspec_string(c, m, "tokenizer", "model.tokenizer", NULL, 1);
  s->seq_len = dm->max_len;
  if (!c->rc && dm->d_model % dm->n_heads) jspec_fail(c, "model.n_heads must divide model.d_model");
  (void)root;
}

int spec_parse(spec *s, const char *json, foil_err *err) {
  memset(s, 0, sizeof *s);
  jspec c = {err, 0};
  cJSON *root = cJSON_Parse(json);
  if (!root || !cJSON_IsObject(root)) {
    const char *at = cJSON_GetErrorPtr();
    foil_err_set(err, FOIL_EINVAL, "the spec is not a JSON object%s%.40s", at ? " near: " : "",
                 at ? at : "");
    cJSON_Delete(root);
    return FOIL_EINVAL;
  }
  static const char *const top[] = {"kind", "name", "seed", "model", "data", "loss",
                                    "batch_per_rank", "micro_batch", "steps", "optimizer",
                                    "checkpoint", "eval", "log_every_steps", "threads",
                                    "device", "precision", "refresh", "job", "init_from", NULL};
  jspec_only_keys(&c, root, "", top);
  char *kind = jspec_string(&c, root, "kind", "kind", "pretrain", 0);
  if (kind && strcmp(kind, "pretrain")) jspec_fail(&c, "kind must be \"pretrain\" for this job");
  free(kind);
  s->name = jspec_string(&c, root, "name", "name", "pretrain", 0);
  s->seed = (uint64_t)jspec_number(&c, root, "seed", "seed", 1, 0, 9007199254740991.0, 1, 0);

  const cJSON *m = jspec_object(&c, root, "model", "model");
  static const char *const kinds[] = {"encoder", "decoder", NULL};
  s->model_kind = jspec_choice(&c, m, "kind", "model.kind", MODEL_ENCODER, kinds);
  const int dec = s->model_kind == MODEL_DECODER;
  if (dec) {
    parse_decoder(&c, s, root, m);
  } else {
    static const char *const mkeys[] = {"n_layers", "d_model", "n_heads", "d_ff", "max_len",
                                        "proj_dim", "norm", "pooling", "dropout", "ln_eps",
                                        "tokenizer", "kind", NULL};
    jspec_only_keys(&c, m, "model", mkeys);
    encoder_config_default(&s->model);
    s->model.n_layers = (int)jspec_number(&c, m, "n_layers", "model.n_layers", 4, 1, 1024, 1, 0);
    s->model.d_model = (int)jspec_number(&c, m, "d_model", "model.d_model", 256, 1, 65536, 1, 0);
    s->model.n_heads = (int)jspec_number(&c, m, "n_heads", "model.n_heads", 4, 1, 1024, 1, 0);
    s->model.d_ff = (int)jspec_number(&c, m, "d_ff", "model.d_ff", 4 * s->model.d_model, 1, 1 << 20, 1, 0);
    s->model.max_len = (int)jspec_number(&c, m, "max_len", "model.max_len", 64, 2, 65536, 1, 0);
    s->model.proj_dim = (int)jspec_number(&c, m, "proj_dim", "model.proj_dim", 0, 0, 65536, 1, 0);
    static const char *const norms[] = {"post", "pre", NULL};
    s->model.pre_ln = jspec_choice(&c, m, "norm", "model.norm", 0, norms);
    static const char *const pools[] = {"mean", "first", NULL};
    s->model.pooling = jspec_choice(&c, m, "pooling", "model.pooling", POOL_MEAN, pools);
    s->model.dropout = (float)jspec_number(&c, m, "dropout", "model.dropout", 0.1, 0, 0.99, 0, 0);
    s->model.ln_eps = (float)jspec_number(&c, m, "ln_eps", "model.ln_eps", 1e-5, 1e-30, 0.5, 0, 0);
    s->init_from = jspec_string(&c, root, "init_from", "init_from", NULL, 0);
    s->tokenizer = jspec_string(&c, m, "tokenizer", "model.tokenizer", NULL, !s->init_from);
    s->seq_len = s->model.max_len;
    if (s->init_from) {
      /* the architecture is the checkpoint's: its keys may not be given here */
      static const char *const fixed[] = {"n_layers", "d_model", "n_heads", "d_ff", "proj_dim",
                                          "norm", "pooling", "ln_eps", NULL};
      for (const char *const *k = fixed; *k; k++)
        if (m && cJSON_GetObjectItemCaseSensitive(m, *k))
          jspec_fail(&c, "model.%s comes from init_from (%s); remove it", *k, s->init_from);
      if (!m || !cJSON_GetObjectItemCaseSensitive(m, "max_len")) s->seq_len = 0; /* set from the checkpoint */
    }
    if (!c.rc && s->model.d_model % s->model.n_heads)
      jspec_fail(&c, "model.n_heads must divide model.d_model");
  }

  const cJSON *d = jspec_object(&c, root, "data", "data");
  static const char *const dkeys[] = {"dataset", "benchmark", "negatives_bank", "negatives_check_every",
                                      "padding", NULL};
  static const char *const dkeys_dec[] = {"dataset", NULL};
  if (dec) only_keys_dec(&c, d, "data", dkeys_dec);
  else jspec_only_keys(&c, d, "data", dkeys);
  s->dataset = jspec_string(&c, d, "dataset", "data.dataset", NULL, 1);
  s->benchmark = jspec_string(&c, d, "benchmark", "data.benchmark", dec ? NULL : "test", 0);
  s->negatives_bank = jspec_string(&c, d, "negatives_bank", "data.negatives_bank", NULL, 0);
  static const char *const pads[] = {"longest", "max_len", NULL};
  s->pad_max_len = jspec_choice(&c, d, "padding", "data.padding", 0, pads);

  const cJSON *l = jspec_object(&c, root, "loss", "loss");
  static const char *const lkeys[] = {"kind", "temperature", "learnable_temperature", "symmetric",
                                      "hard_negatives", "queue_size", "momentum",
                                      "momentum_schedule", NULL};
  static const char *const lkeys_dec[] = {"kind", "simctg_margin", NULL};
  if (dec) only_keys_dec(&c, l, "loss", lkeys_dec);
  else jspec_only_keys(&c, l, "loss", lkeys);
  static const char *const losses[] = {"infonce", "dcl", "simcse", "moco", "causal_lm", NULL};
  s->loss = jspec_choice(&c, l, "kind", "loss.kind", dec ? LOSS_CAUSAL_LM : LOSS_INFONCE, losses);
  if (!c.rc && dec != (s->loss == LOSS_CAUSAL_LM))
    jspec_fail(&c, dec ? "loss.kind of a decoder is \"causal_lm\" (with loss.simctg_margin for SimCTG)"
                       : "loss.kind \"causal_lm\" trains a decoder: set model.kind \"decoder\"");
  s->simctg_margin = (float)jspec_number(&c, l, "simctg_margin", "loss.simctg_margin", 0, 0, 2, 0, 0);
  s->temperature = (float)jspec_number(&c, l, "temperature", "loss.temperature", 0.05, 1e-4, 100, 0, 0);
  s->learnable_temperature = jspec_boolean(&c, l, "learnable_temperature", "loss.learnable_temperature", 0);
  s->symmetric = jspec_boolean(&c, l, "symmetric", "loss.symmetric", 0);
  s->hard_negatives = (int)jspec_number(&c, l, "hard_negatives", "loss.hard_negatives", 0, 0, 64, 1, 0);
  s->queue_size = (int64_t)jspec_number(&c, l, "queue_size", "loss.queue_size", 4096, 1, 1 << 24, 1, 0);
  s->momentum = (float)jspec_number(&c, l, "momentum", "loss.momentum", 0.999, 0, 1, 0, 0);
  static const char *const msched[] = {"constant", "cosine", NULL};
  s->momentum_schedule = jspec_choice(&c, l, "momentum_schedule", "loss.momentum_schedule", 0, msched);

  s->batch_per_rank = (int)jspec_number(&c, root, "batch_per_rank", "batch_per_rank", 32, 1, 1 << 20, 1, 0);
  s->micro_batch = (int)jspec_number(&c, root, "micro_batch", "micro_batch", 0, 0, 1 << 20, 1, 0);
  s->steps = (int64_t)jspec_number(&c, root, "steps", "steps", 0, 1, 1e12, 1, 1);

  const cJSON *o = jspec_object(&c, root, "optimizer", "optimizer");
  static const char *const okeys[] = {"lr", "beta1", "beta2", "eps", "weight_decay",
                                      "max_grad_norm", "warmup_steps", "schedule", NULL};
  jspec_only_keys(&c, o, "optimizer", okeys);
  s->lr = (float)jspec_number(&c, o, "lr", "optimizer.lr", 1e-4, 0, 10, 0, 0);
  s->beta1 = (float)jspec_number(&c, o, "beta1", "optimizer.beta1", 0.9, 0, 0.999999, 0, 0);
  s->beta2 = (float)jspec_number(&c, o, "beta2", "optimizer.beta2", 0.999, 0, 0.999999, 0, 0);
  s->eps = (float)jspec_number(&c, o, "eps", "optimizer.eps", 1e-8, 0, 1, 0, 0);
  s->weight_decay = (float)jspec_number(&c, o, "weight_decay", "optimizer.weight_decay", 0.01, 0, 10, 0, 0);
  s->max_grad_norm = (float)jspec_number(&c, o, "max_grad_norm", "optimizer.max_grad_norm", 1.0, 0, 1e6, 0, 0);
  s->warmup_steps = (int64_t)jspec_number(&c, o, "warmup_steps", "optimizer.warmup_steps", 0, 0, 1e12, 1, 0);
  static const char *const sched[] = {"constant", "cosine", "linear", NULL};
  s->schedule = jspec_choice(&c, o, "schedule", "optimizer.schedule", SCHED_COSINE, sched);

  const cJSON *k = jspec_object(&c, root, "checkpoint", "checkpoint");
  static const char *const kkeys[] = {"every_steps", "keep_last", "keep_every_steps", NULL};
  jspec_only_keys(&c, k, "checkpoint", kkeys);
  s->checkpoint_every_steps = (int64_t)jspec_number(&c, k, "every_steps", "checkpoint.every_steps",
                                              (double)s->steps, 1, 1e12, 1, 0);
  s->checkpoint_keep_last = (int)jspec_number(&c, k, "keep_last", "checkpoint.keep_last", 2, 1, 1e6, 1, 0);
  s->checkpoint_keep_every_steps = (int64_t)jspec_number(&c, k, "keep_every_steps",
                                                   "checkpoint.keep_every_steps", 0, 0, 1e12, 1, 0);
  const cJSON *e = jspec_object(&c, root, "eval", "eval");
  static const char *const ekeys[] = {"every_steps", "at_start", NULL};
  static const char *const ekeys_dec[] = {"every_steps", "at_start", "tokens", NULL};
  if (dec) only_keys_dec(&c, e, "eval", ekeys_dec);
  else jspec_only_keys(&c, e, "eval", ekeys);
  s->eval_tokens = (int64_t)jspec_number(&c, e, "tokens", "eval.tokens", 65536, 0, 1e12, 1, 0);
  s->eval_every_steps = (int64_t)jspec_number(&c, e, "every_steps", "eval.every_steps", (double)s->steps,
                                        1, 1e12, 1, 0);
  s->eval_at_start = jspec_boolean(&c, e, "at_start", "eval.at_start", 0);
  s->log_every_steps = (int64_t)jspec_number(&c, root, "log_every_steps", "log_every_steps", 10, 1, 1e12, 1, 0);
  s->threads = (int)jspec_number(&c, root, "threads", "threads", 0, 0, 4096, 1, 0);
  static const char *const devices[] = {"cpu", "cuda", NULL}; /* DEVMEM_CPU, DEVMEM_CUDA */
  s->device = jspec_choice(&c, root, "device", "device", 0, devices);
  static const char *const precisions[] = {"fp32", "bf16", NULL}; /* ENC_FP32, ENC_BF16 */
  s->precision = jspec_choice(&c, root, "precision", "precision", 0, precisions);
  if (!c.rc && s->precision && !s->device)
    jspec_fail(&c, "precision \"bf16\" needs device \"cuda\" (the tensor cores; on CPU ranks bf16 is a slow "
               "reference path)");
  s->negatives_check_every = (int64_t)jspec_number(&c, d, "negatives_check_every", "data.negatives_check_every",
                                                   (double)s->log_every_steps, 1, 1e12, 1, 0);
  if (!c.rc && s->negatives_bank) {
    if (!negbank_name_ok(s->negatives_bank))
      jspec_fail(&c, "data.negatives_bank \"%.200s\" may hold only 1 to 128 letters, digits, '.', '_' and '-'",
                 s->negatives_bank);
    else if (s->hard_negatives < 1 || s->loss == LOSS_SIMCSE)
      jspec_fail(&c, "data.negatives_bank needs loss.hard_negatives >= 1 (negatives per pair taken from the bank) "
                     "and a loss that uses them (infonce, dcl, moco)");
  }
  if (!c.rc && dec) { /* the encoder's machinery that a decoder job has not */
    static const char *const enc_only[] = {"micro_batch", "refresh", "init_from", NULL};
    for (const char *const *k = enc_only; *k; k++)
      if (cJSON_GetObjectItemCaseSensitive(root, *k))
        jspec_fail(&c, "%s is for encoders; a decoder job (model.kind \"decoder\") has no %s", *k, *k);
  }
  parse_refresh(&c, s, cJSON_GetObjectItemCaseSensitive(root, "refresh"));
  if (!c.rc && s->micro_batch && s->batch_per_rank % s->micro_batch)
    jspec_fail(&c, "micro_batch must divide batch_per_rank");
  if (!c.rc && s->warmup_steps > s->steps)
    jspec_fail(&c, "optimizer.warmup_steps must not exceed steps");
  cJSON_Delete(root);
  if (!c.rc && !dec) { /* the vocabulary size comes from the tokenizer when the job starts */
    encoder_config probe = s->model;
    probe.vocab = 1;
    if (encoder_config_check(&probe, err)) c.rc = FOIL_EINVAL;
  }
  if (c.rc) spec_free(s);
  return c.rc;
}

void spec_free(spec *s) {
  free(s->name);
  free(s->tokenizer);
  free(s->init_from);
  s->init_from = NULL;
  free(s->dataset);
  free(s->benchmark);
  free(s->negatives_bank);
  free(s->refresh_json);
  s->name = s->tokenizer = s->dataset = s->benchmark = s->negatives_bank = s->refresh_json = NULL;
}

float spec_lr_at(const spec *s, int64_t step) {
  if (s->warmup_steps > 0 && step < s->warmup_steps)
    return s->lr * (float)(step + 1) / (float)s->warmup_steps;
  double span = (double)(s->steps - s->warmup_steps);
  double frac = span > 0 ? (double)(step - s->warmup_steps) / span : 0.0;
  if (frac < 0) frac = 0;
  if (frac > 1) frac = 1;
  switch (s->schedule) {
    case SCHED_COSINE: return (float)(s->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * frac)));
    case SCHED_LINEAR: return (float)(s->lr * (1.0 - frac));
    default: return s->lr;
  }
}

float spec_momentum_at(const spec *s, int64_t step) {
  if (s->momentum_schedule == 0) return s->momentum;
  /* as BYOL/MoCo v3: 1 - (1 - m0)·(cos(π·t/T) + 1)/2 */
  double frac = s->steps > 0 ? (double)step / (double)s->steps : 1.0;
  return (float)(1.0 - (1.0 - s->momentum) * (cos(3.14159265358979323846 * frac) + 1.0) / 2.0);
}
