/* spec_proto.c — spec <-> foil.v1.PretrainSpec (see spec_proto.h). */
#include "worker/run/spec_proto.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "foil/v1/pretrain.pb-c.h"

static const char *const LOSS_NAMES[] = {"infonce", "dcl", "simcse", "moco", "causal_lm"};
static const char *const SCHED_NAMES[] = {"constant", "cosine", "linear"};
static const char *const MSCHED_NAMES[] = {"constant", "cosine"};
static const char *const PAD_NAMES[] = {"longest", "max_len"};
static const char *const DEVICE_NAMES[] = {"cpu", "cuda"};
static const char *const PRECISION_NAMES[] = {"fp32", "bf16"};

#define SET(msg, field, value) ((msg).has_##field = 1, (msg).field = (value))

int spec_proto_pack(const spec *s, uint8_t **buf, size_t *len, foil_err *err) {
  Foil__V1__PretrainModel m = FOIL__V1__PRETRAIN_MODEL__INIT;
  const int dec = s->model_kind == MODEL_DECODER;
  m.kind = dec ? "decoder" : "encoder";
  if (dec) { /* a decoder's keys only: spec_parse refuses the encoder's */
    SET(m, n_layers, s->dmodel.n_layers);
    SET(m, d_model, s->dmodel.d_model);
    SET(m, n_heads, s->dmodel.n_heads);
    SET(m, d_ff, s->dmodel.d_ff);
    SET(m, max_len, s->dmodel.max_len);
    SET(m, ln_eps, s->dmodel.ln_eps);
  } else if (!s->init_from) {  /* with init_from the architecture is the checkpoint's */
    SET(m, n_layers, s->model.n_layers);
    SET(m, d_model, s->model.d_model);
    SET(m, n_heads, s->model.n_heads);
    SET(m, d_ff, s->model.d_ff);
    SET(m, max_len, s->model.max_len);
    SET(m, proj_dim, s->model.proj_dim);
    m.norm = s->model.pre_ln ? "pre" : "post";
    m.pooling = s->model.pooling ? "first" : "mean";
    SET(m, ln_eps, s->model.ln_eps);
  } else if (s->seq_len) {
    SET(m, max_len, s->seq_len);
  }
  SET(m, dropout, dec ? s->dmodel.dropout : s->model.dropout);
  m.tokenizer = s->tokenizer;
  Foil__V1__PretrainData d = FOIL__V1__PRETRAIN_DATA__INIT;
  d.dataset = s->dataset;
  Foil__V1__PretrainLoss l = FOIL__V1__PRETRAIN_LOSS__INIT;
  l.kind = (char *)LOSS_NAMES[s->loss];
  if (dec) {
    SET(l, simctg_margin, s->simctg_margin);
  } else {
    d.benchmark = s->benchmark;
    d.negatives_bank = s->negatives_bank;
    SET(d, negatives_check_every, s->negatives_check_every);
    d.padding = (char *)PAD_NAMES[s->pad_max_len];
    SET(l, temperature, s->temperature);
    SET(l, learnable_temperature, s->learnable_temperature);
    SET(l, symmetric, s->symmetric);
    SET(l, hard_negatives, s->hard_negatives);
    SET(l, queue_size, s->queue_size);
    SET(l, momentum, s->momentum);
    l.momentum_schedule = (char *)MSCHED_NAMES[s->momentum_schedule];
  }
  Foil__V1__PretrainOptimizer o = FOIL__V1__PRETRAIN_OPTIMIZER__INIT;
  SET(o, lr, s->lr);
  SET(o, beta1, s->beta1);
  SET(o, beta2, s->beta2);
  SET(o, eps, s->eps);
  SET(o, weight_decay, s->weight_decay);
  SET(o, max_grad_norm, s->max_grad_norm);
  SET(o, warmup_steps, s->warmup_steps);
  o.schedule = (char *)SCHED_NAMES[s->schedule];
  Foil__V1__PretrainCheckpoint k = FOIL__V1__PRETRAIN_CHECKPOINT__INIT;
  SET(k, every_steps, s->checkpoint_every_steps);
  SET(k, keep_last, s->checkpoint_keep_last);
  SET(k, keep_every_steps, s->checkpoint_keep_every_steps);
  Foil__V1__PretrainSpec p = FOIL__V1__PRETRAIN_SPEC__INIT;
  p.name = s->name;
  SET(p, seed, s->seed);
  p.model = &m;
  p.data = &d;
  p.init_from = s->init_from;
  p.loss = &l;
  SET(p, batch_per_rank, s->batch_per_rank);
  if (!dec) SET(p, micro_batch, s->micro_batch);
  SET(p, steps, s->steps);
  p.optimizer = &o;
  p.checkpoint = &k;
  SET(p, eval_every_steps, s->eval_every_steps);
  if (dec) SET(p, eval_tokens, s->eval_tokens);
  SET(p, eval_at_start, s->eval_at_start);
  SET(p, log_every_steps, s->log_every_steps);
  SET(p, threads, s->threads);
  p.refresh_json = s->refresh_json;
  p.device = (char *)DEVICE_NAMES[s->device ? 1 : 0];
  p.precision = (char *)PRECISION_NAMES[s->precision ? 1 : 0];
  *len = foil__v1__pretrain_spec__get_packed_size(&p);
  *buf = malloc(*len ? *len : 1);
  if (!*buf) return foil_err_set(err, FOIL_ENOMEM, "out of memory packing a spec");
  foil__v1__pretrain_spec__pack(&p, *buf);
  return FOIL_OK;
}

/* A float field as the shortest decimal that names the same float, as
 * spec_parse reads it back ((float) of a double): 0.99f (0.99000001) is
 * 0.99, so a value packed from a documented bound is not out of range. */
static double float_decimal(float f) {
  if (!isfinite(f)) return (double)f; /* refused by spec_parse ("must be a number") */
  char buf[32];
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, (double)f);
    double d = strtod(buf, NULL);
    if ((float)d == f) return d;
  }
  return (double)f;
}

/* JSON keys for the fields the sender set. */
#define NUM(obj, msg, field) \
  if ((msg)->has_##field) cJSON_AddNumberToObject(obj, #field, (double)(msg)->field)
#define REAL(obj, msg, field) \
  if ((msg)->has_##field) cJSON_AddNumberToObject(obj, #field, float_decimal((msg)->field))
#define BOOL(obj, msg, field) \
  if ((msg)->has_##field) cJSON_AddBoolToObject(obj, #field, (msg)->field)
#define STR(obj, msg, field) \
  if ((msg)->field) cJSON_AddStringToObject(obj, #field, (msg)->field)

int spec_proto_unpack(spec *s, const uint8_t *buf, size_t len, foil_err *err) {
  memset(s, 0, sizeof *s);
  Foil__V1__PretrainSpec *p = foil__v1__pretrain_spec__unpack(NULL, len, buf);
  if (!p) return foil_err_set(err, FOIL_EINVAL, "malformed foil.v1.PretrainSpec message (%zu bytes)", len);
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "kind", "pretrain");
  STR(root, p, name);
  NUM(root, p, seed);
  if (p->model) {
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    NUM(m, p->model, n_layers);
    NUM(m, p->model, d_model);
    NUM(m, p->model, n_heads);
    NUM(m, p->model, d_ff);
    NUM(m, p->model, max_len);
    NUM(m, p->model, proj_dim);
    STR(m, p->model, norm);
    STR(m, p->model, pooling);
    REAL(m, p->model, dropout);
    REAL(m, p->model, ln_eps);
    STR(m, p->model, tokenizer);
    STR(m, p->model, kind);
  }
  if (p->data) {
    cJSON *d = cJSON_AddObjectToObject(root, "data");
    STR(d, p->data, dataset);
    STR(d, p->data, benchmark);
    STR(d, p->data, negatives_bank);
    NUM(d, p->data, negatives_check_every);
    STR(d, p->data, padding);
  }
  if (p->loss) {
    cJSON *l = cJSON_AddObjectToObject(root, "loss");
    STR(l, p->loss, kind);
    REAL(l, p->loss, temperature);
    BOOL(l, p->loss, learnable_temperature);
    BOOL(l, p->loss, symmetric);
    NUM(l, p->loss, hard_negatives);
    NUM(l, p->loss, queue_size);
    REAL(l, p->loss, momentum);
    STR(l, p->loss, momentum_schedule);
    REAL(l, p->loss, simctg_margin);
  }
  NUM(root, p, batch_per_rank);
  NUM(root, p, micro_batch);
  NUM(root, p, steps);
  if (p->optimizer) {
    cJSON *o = cJSON_AddObjectToObject(root, "optimizer");
    REAL(o, p->optimizer, lr);
    REAL(o, p->optimizer, beta1);
    REAL(o, p->optimizer, beta2);
    REAL(o, p->optimizer, eps);
    REAL(o, p->optimizer, weight_decay);
    REAL(o, p->optimizer, max_grad_norm);
    NUM(o, p->optimizer, warmup_steps);
    STR(o, p->optimizer, schedule);
  }
  if (p->checkpoint) {
    cJSON *k = cJSON_AddObjectToObject(root, "checkpoint");
    NUM(k, p->checkpoint, every_steps);
    NUM(k, p->checkpoint, keep_last);
    NUM(k, p->checkpoint, keep_every_steps);
  }
  if (p->has_eval_every_steps || p->has_eval_tokens || p->has_eval_at_start) {
    cJSON *e = cJSON_AddObjectToObject(root, "eval");
    if (p->has_eval_every_steps) cJSON_AddNumberToObject(e, "every_steps", (double)p->eval_every_steps);
    if (p->has_eval_tokens) cJSON_AddNumberToObject(e, "tokens", (double)p->eval_tokens);
    if (p->has_eval_at_start) cJSON_AddBoolToObject(e, "at_start", p->eval_at_start);
  }
  NUM(root, p, log_every_steps);
  NUM(root, p, threads);
  STR(root, p, init_from);
  STR(root, p, device);
  STR(root, p, precision);
  if (p->refresh_json) {
    cJSON *r = cJSON_Parse(p->refresh_json);
    if (r) cJSON_AddItemToObject(root, "refresh", r);
    else cJSON_AddStringToObject(root, "refresh", p->refresh_json); /* refused by spec_parse, named */
  }
  foil__v1__pretrain_spec__free_unpacked(p, NULL);
  char *json = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!json) return foil_err_set(err, FOIL_ENOMEM, "out of memory converting a spec");
  int rc = spec_parse(s, json, err);
  free(json);
  return rc;
}
