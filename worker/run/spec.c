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

/* ---- checked readers; each names the key by its dotted path ------------------ */

typedef struct {
  foil_err *err;
  int rc;
} ctx;

/* Records the first error only: later checks run on but do not overwrite. */
__attribute__((format(printf, 2, 3))) static void fail(ctx *c, const char *fmt, ...) {
  if (c->rc) return;
  va_list ap;
  va_start(ap, fmt);
  c->rc = FOIL_EINVAL;
  if (c->err) {
    c->err->code = FOIL_EINVAL;
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
  }
  va_end(ap);
}

/* Refuses keys of obj not in allowed (NULL-terminated). */
static void only_keys(ctx *c, const cJSON *obj, const char *path, const char *const *allowed) {
  if (!obj) return;
  for (const cJSON *it = obj->child; it; it = it->next) {
    int ok = 0;
    for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, it->string);
    if (!ok) {
      char full[256];
      snprintf(full, sizeof full, "%s%s%s", path, path[0] ? "." : "", it->string);
      fail(c, "unknown key %s", full);
      return;
    }
  }
}

static const cJSON *object(ctx *c, const cJSON *parent, const char *key, const char *path) {
  const cJSON *o = parent ? cJSON_GetObjectItemCaseSensitive(parent, key) : NULL;
  if (o && !cJSON_IsObject(o)) fail(c, "%s must be an object", path);
  return o && cJSON_IsObject(o) ? o : NULL;
}

static double number(ctx *c, const cJSON *obj, const char *key, const char *path, double def,
                     double lo, double hi, int integer, int required) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v) {
    if (required) fail(c, "%s is required", path);
    return def;
  }
  if (!cJSON_IsNumber(v)) {
    fail(c, "%s must be a number", path);
    return def;
  }
  double x = v->valuedouble;
  if (integer && x != floor(x)) {
    fail(c, "%s must be a whole number", path);
    return def;
  }
  if (!(x >= lo && x <= hi)) {
    fail(c, "%s is out of range (got %g, allowed %g..%g)", path, x, lo, hi);
    return def;
  }
  return x;
}

static int boolean(ctx *c, const cJSON *obj, const char *key, const char *path, int def) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v) return def;
  if (!cJSON_IsBool(v)) {
    fail(c, "%s must be true or false", path);
    return def;
  }
  return cJSON_IsTrue(v);
}

static char *string(ctx *c, const cJSON *obj, const char *key, const char *path, const char *def,
                    int required) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v) {
    if (required) fail(c, "%s is required", path);
    return def ? strdup(def) : NULL;
  }
  if (!cJSON_IsString(v)) {
    fail(c, "%s must be a string", path);
    return def ? strdup(def) : NULL;
  }
  return strdup(v->valuestring);
}

/* One of names (NULL-terminated); returns its index. */
static int choice(ctx *c, const cJSON *obj, const char *key, const char *path, int def,
                  const char *const *names) {
  char *s = string(c, obj, key, path, NULL, 0);
  if (!s) return def;
  int found = -1;
  for (int i = 0; names[i]; i++)
    if (!strcmp(names[i], s)) found = i;
  if (found < 0) {
    char opts[160] = " (one of";
    for (int i = 0; names[i]; i++) {
      size_t l = strlen(opts);
      snprintf(opts + l, sizeof opts - l, " %s", names[i]);
    }
    strncat(opts, ")", sizeof opts - strlen(opts) - 1);
    fail(c, "%s has an unknown value%s", path, opts);
  }
  free(s);
  return found < 0 ? def : found;
}

/* ---- the spec ----------------------------------------------------------------------- */

int spec_parse(spec *s, const char *json, foil_err *err) {
  memset(s, 0, sizeof *s);
  ctx c = {err, 0};
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
                                    "job", NULL};
  only_keys(&c, root, "", top);
  char *kind = string(&c, root, "kind", "kind", "pretrain", 0);
  if (kind && strcmp(kind, "pretrain")) fail(&c, "kind must be \"pretrain\" for this job");
  free(kind);
  s->name = string(&c, root, "name", "name", "pretrain", 0);
  s->seed = (uint64_t)number(&c, root, "seed", "seed", 1, 0, 9007199254740991.0, 1, 0);

  const cJSON *m = object(&c, root, "model", "model");
  static const char *const mkeys[] = {"n_layers", "d_model", "n_heads", "d_ff", "max_len",
                                      "proj_dim", "norm", "pooling", "dropout", "ln_eps",
                                      "tokenizer", NULL};
  only_keys(&c, m, "model", mkeys);
  encoder_config_default(&s->model);
  s->model.n_layers = (int)number(&c, m, "n_layers", "model.n_layers", 4, 1, 1024, 1, 0);
  s->model.d_model = (int)number(&c, m, "d_model", "model.d_model", 256, 1, 65536, 1, 0);
  s->model.n_heads = (int)number(&c, m, "n_heads", "model.n_heads", 4, 1, 1024, 1, 0);
  s->model.d_ff = (int)number(&c, m, "d_ff", "model.d_ff", 4 * s->model.d_model, 1, 1 << 20, 1, 0);
  s->model.max_len = (int)number(&c, m, "max_len", "model.max_len", 64, 2, 65536, 1, 0);
  s->model.proj_dim = (int)number(&c, m, "proj_dim", "model.proj_dim", 0, 0, 65536, 1, 0);
  static const char *const norms[] = {"post", "pre", NULL};
  s->model.pre_ln = choice(&c, m, "norm", "model.norm", 0, norms);
  static const char *const pools[] = {"mean", "first", NULL};
  s->model.pooling = choice(&c, m, "pooling", "model.pooling", POOL_MEAN, pools);
  s->model.dropout = (float)number(&c, m, "dropout", "model.dropout", 0.1, 0, 0.99, 0, 0);
  s->model.ln_eps = (float)number(&c, m, "ln_eps", "model.ln_eps", 1e-5, 1e-30, 0.5, 0, 0);
  s->tokenizer = string(&c, m, "tokenizer", "model.tokenizer", NULL, 1);
  if (!c.rc && s->model.d_model % s->model.n_heads)
    fail(&c, "model.n_heads must divide model.d_model");

  const cJSON *d = object(&c, root, "data", "data");
  static const char *const dkeys[] = {"dataset", "benchmark", NULL};
  only_keys(&c, d, "data", dkeys);
  s->dataset = string(&c, d, "dataset", "data.dataset", NULL, 1);
  s->benchmark = string(&c, d, "benchmark", "data.benchmark", "test", 0);

  const cJSON *l = object(&c, root, "loss", "loss");
  static const char *const lkeys[] = {"kind", "temperature", "learnable_temperature", "symmetric",
                                      "hard_negatives", "queue_size", "momentum",
                                      "momentum_schedule", NULL};
  only_keys(&c, l, "loss", lkeys);
  static const char *const losses[] = {"infonce", "dcl", "simcse", "moco", NULL};
  s->loss = choice(&c, l, "kind", "loss.kind", LOSS_INFONCE, losses);
  s->temperature = (float)number(&c, l, "temperature", "loss.temperature", 0.05, 1e-4, 100, 0, 0);
  s->learnable_temperature = boolean(&c, l, "learnable_temperature", "loss.learnable_temperature", 0);
  s->symmetric = boolean(&c, l, "symmetric", "loss.symmetric", 0);
  s->hard_negatives = (int)number(&c, l, "hard_negatives", "loss.hard_negatives", 0, 0, 64, 1, 0);
  s->queue_size = (int64_t)number(&c, l, "queue_size", "loss.queue_size", 4096, 1, 1 << 24, 1, 0);
  s->momentum = (float)number(&c, l, "momentum", "loss.momentum", 0.999, 0, 1, 0, 0);
  static const char *const msched[] = {"constant", "cosine", NULL};
  s->momentum_schedule = choice(&c, l, "momentum_schedule", "loss.momentum_schedule", 0, msched);

  s->batch_per_rank = (int)number(&c, root, "batch_per_rank", "batch_per_rank", 32, 1, 1 << 20, 1, 0);
  s->micro_batch = (int)number(&c, root, "micro_batch", "micro_batch", 0, 0, 1 << 20, 1, 0);
  s->steps = (int64_t)number(&c, root, "steps", "steps", 0, 1, 1e12, 1, 1);

  const cJSON *o = object(&c, root, "optimizer", "optimizer");
  static const char *const okeys[] = {"lr", "beta1", "beta2", "eps", "weight_decay",
                                      "max_grad_norm", "warmup_steps", "schedule", NULL};
  only_keys(&c, o, "optimizer", okeys);
  s->lr = (float)number(&c, o, "lr", "optimizer.lr", 1e-4, 0, 10, 0, 0);
  s->beta1 = (float)number(&c, o, "beta1", "optimizer.beta1", 0.9, 0, 0.999999, 0, 0);
  s->beta2 = (float)number(&c, o, "beta2", "optimizer.beta2", 0.999, 0, 0.999999, 0, 0);
  s->eps = (float)number(&c, o, "eps", "optimizer.eps", 1e-8, 0, 1, 0, 0);
  s->weight_decay = (float)number(&c, o, "weight_decay", "optimizer.weight_decay", 0.01, 0, 10, 0, 0);
  s->max_grad_norm = (float)number(&c, o, "max_grad_norm", "optimizer.max_grad_norm", 1.0, 0, 1e6, 0, 0);
  s->warmup_steps = (int64_t)number(&c, o, "warmup_steps", "optimizer.warmup_steps", 0, 0, 1e12, 1, 0);
  static const char *const sched[] = {"constant", "cosine", "linear", NULL};
  s->schedule = choice(&c, o, "schedule", "optimizer.schedule", SCHED_COSINE, sched);

  const cJSON *k = object(&c, root, "checkpoint", "checkpoint");
  static const char *const kkeys[] = {"every_steps", "keep_last", "keep_every_steps", NULL};
  only_keys(&c, k, "checkpoint", kkeys);
  s->checkpoint_every_steps = (int64_t)number(&c, k, "every_steps", "checkpoint.every_steps",
                                              (double)s->steps, 1, 1e12, 1, 0);
  s->checkpoint_keep_last = (int)number(&c, k, "keep_last", "checkpoint.keep_last", 2, 1, 1e6, 1, 0);
  s->checkpoint_keep_every_steps = (int64_t)number(&c, k, "keep_every_steps",
                                                   "checkpoint.keep_every_steps", 0, 0, 1e12, 1, 0);
  const cJSON *e = object(&c, root, "eval", "eval");
  static const char *const ekeys[] = {"every_steps", NULL};
  only_keys(&c, e, "eval", ekeys);
  s->eval_every_steps = (int64_t)number(&c, e, "every_steps", "eval.every_steps", (double)s->steps,
                                        1, 1e12, 1, 0);
  s->log_every_steps = (int64_t)number(&c, root, "log_every_steps", "log_every_steps", 10, 1, 1e12, 1, 0);
  s->threads = (int)number(&c, root, "threads", "threads", 0, 0, 4096, 1, 0);
  if (!c.rc && s->micro_batch && s->batch_per_rank % s->micro_batch)
    fail(&c, "micro_batch must divide batch_per_rank");
  if (!c.rc && s->warmup_steps > s->steps)
    fail(&c, "optimizer.warmup_steps must not exceed steps");
  cJSON_Delete(root);
  if (!c.rc) { /* the vocabulary size comes from the tokenizer when the job starts */
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
  free(s->dataset);
  free(s->benchmark);
  s->name = s->tokenizer = s->dataset = s->benchmark = NULL;
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
