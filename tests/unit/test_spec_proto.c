/* test_spec_proto.c — a spec survives JSON -> spec -> foil.v1.PretrainSpec
 * bytes -> spec unchanged; a message with fields left out takes the JSON
 * defaults; bad values are refused naming the key; malformed bytes are
 * refused. Every numeric key survives the trip at its documented minimum
 * and maximum (floats included: 0.99 travels as 0.99f), and so do device
 * and precision. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "foil/v1/pretrain.pb-c.h"
#include "tests/test.h"
#include "worker/run/spec_proto.h"

static int streq(const char *a, const char *b) { return !a == !b && (!a || !strcmp(a, b)); }

/* Every field of the spec. */
static int same(const spec *a, const spec *b) {
  return !memcmp(&a->model, &b->model, sizeof a->model) && !memcmp(&a->dmodel, &b->dmodel, sizeof a->dmodel) &&
         a->model_kind == b->model_kind && a->seed == b->seed && streq(a->name, b->name) &&
         streq(a->tokenizer, b->tokenizer) && streq(a->init_from, b->init_from) && a->seq_len == b->seq_len &&
         streq(a->dataset, b->dataset) && streq(a->benchmark, b->benchmark) &&
         a->simctg_margin == b->simctg_margin && a->eval_tokens == b->eval_tokens &&
         a->loss == b->loss && a->temperature == b->temperature &&
         a->learnable_temperature == b->learnable_temperature && a->symmetric == b->symmetric &&
         a->hard_negatives == b->hard_negatives && a->queue_size == b->queue_size &&
         a->momentum == b->momentum && a->momentum_schedule == b->momentum_schedule &&
         a->batch_per_rank == b->batch_per_rank && a->micro_batch == b->micro_batch &&
         a->steps == b->steps && a->lr == b->lr && a->beta1 == b->beta1 && a->beta2 == b->beta2 &&
         a->eps == b->eps && a->weight_decay == b->weight_decay &&
         a->max_grad_norm == b->max_grad_norm && a->warmup_steps == b->warmup_steps &&
         a->schedule == b->schedule && a->checkpoint_every_steps == b->checkpoint_every_steps &&
         a->checkpoint_keep_last == b->checkpoint_keep_last &&
         a->checkpoint_keep_every_steps == b->checkpoint_keep_every_steps &&
         a->eval_every_steps == b->eval_every_steps && a->eval_at_start == b->eval_at_start &&
         a->log_every_steps == b->log_every_steps &&
         a->threads == b->threads && a->device == b->device && a->precision == b->precision &&
         a->negatives_check_every == b->negatives_check_every && a->pad_max_len == b->pad_max_len &&
         streq(a->negatives_bank, b->negatives_bank) && streq(a->refresh_json, b->refresh_json) &&
         a->refresh_every_steps == b->refresh_every_steps;
}

/* JSON -> spec -> message -> spec: both parses succeed and the specs are
 * equal; what as the case's name. Returns 0 when all held. */
static int roundtrip(const char *json, const char *what) {
  spec a, b;
  foil_err err = {0};
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = spec_parse(&a, json, &err);
  CHECKF(rc == 0, "%s: the JSON spec is refused: %s", what, err.msg);
  if (rc) return 1;
  CHECK(spec_proto_pack(&a, &buf, &len, &err) == 0);
  rc = spec_proto_unpack(&b, buf, len, &err);
  CHECKF(rc == 0, "%s: the message is refused: %s", what, err.msg);
  int changed = 0;
  if (!rc) {
    changed = !same(&a, &b);
    CHECKF(!changed, "%s: the spec changed on its way through the message", what);
    spec_free(&b);
  }
  spec_free(&a);
  free(buf);
  return rc || changed;
}

static void test_roundtrip(void) {
  const char *json =
      "{\"name\":\"rt\",\"seed\":42,\"model\":{\"n_layers\":3,\"d_model\":48,\"n_heads\":3,"
      "\"d_ff\":96,\"max_len\":40,\"proj_dim\":16,\"norm\":\"pre\",\"pooling\":\"first\","
      "\"dropout\":0.0,\"ln_eps\":1e-12,\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"code\","
      "\"benchmark\":\"all\"},\"loss\":{\"kind\":\"moco\",\"temperature\":0.07,"
      "\"learnable_temperature\":true,\"queue_size\":65536,\"momentum\":0.995,"
      "\"momentum_schedule\":\"cosine\"},\"batch_per_rank\":24,\"micro_batch\":8,\"steps\":1000,"
      "\"optimizer\":{\"lr\":0.0003,\"weight_decay\":0.0,\"warmup_steps\":100,\"schedule\":\"linear\"},"
      "\"checkpoint\":{\"every_steps\":250,\"keep_last\":3,\"keep_every_steps\":500},"
      "\"eval\":{\"every_steps\":500,\"at_start\":true},\"log_every_steps\":5,\"threads\":2}";
  /* the loop's keys travel too */
  const char *loop =
      "{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"code\",\"negatives_bank\":\"neg\","
      "\"negatives_check_every\":7,\"padding\":\"max_len\"},\"loss\":{\"hard_negatives\":2},\"steps\":100,\"checkpoint\":{\"every_steps\":10},"
      "\"refresh\":{\"every_steps\":20,\"index\":\"code\",\"corpus\":{\"dataset\":\"code\"},\"mine\":"
      "{\"dataset\":\"code\",\"top\":2}}}";
  spec la, lb;
  foil_err lerr = {0};
  uint8_t *lbuf = NULL;
  size_t llen = 0;
  CHECKF(spec_parse(&la, loop, &lerr) == 0, "%s", lerr.msg);
  CHECK(spec_proto_pack(&la, &lbuf, &llen, &lerr) == 0);
  CHECKF(spec_proto_unpack(&lb, lbuf, llen, &lerr) == 0, "%s", lerr.msg);
  CHECK(same(&la, &lb) && lb.negatives_check_every == 7 && lb.refresh_every_steps == 20 && lb.pad_max_len == 1);
  spec_free(&la);
  spec_free(&lb);
  /* init_from travels, and the architecture it fixes does not */
  const char *init = "{\"steps\":10,\"init_from\":\"m.h5\",\"model\":{\"max_len\":48},\"data\":{\"dataset\":\"code\"}}";
  CHECKF(spec_parse(&la, init, &lerr) == 0, "%s", lerr.msg);
  free(lbuf);
  lbuf = NULL;
  CHECK(spec_proto_pack(&la, &lbuf, &llen, &lerr) == 0);
  CHECKF(spec_proto_unpack(&lb, lbuf, llen, &lerr) == 0, "%s", lerr.msg);
  CHECK(lb.init_from && !strcmp(lb.init_from, "m.h5") && lb.seq_len == 48);
  spec_free(&la);
  spec_free(&lb);
  free(lbuf);
  spec a, b;
  foil_err err = {0};
  if (spec_parse(&a, json, &err)) {
    CHECKF(0, "%s", err.msg);
    return;
  }
  uint8_t *buf;
  size_t len;
  CHECK(spec_proto_pack(&a, &buf, &len, &err) == 0 && len > 0);
  CHECKF(spec_proto_unpack(&b, buf, len, &err) == 0, "%s", err.msg);
  CHECKF(same(&a, &b), "the spec changed on its way through the message");
  CHECK(b.model.dropout == 0.0f && b.model.pre_ln == 1 && b.loss == LOSS_MOCO);
  spec_free(&b);
  /* malformed bytes: every truncation of the message is refused or parses;
   * none crashes. A clearly broken message names the type. */
  for (size_t cut = 0; cut < len; cut++) {
    if (spec_proto_unpack(&b, buf, cut, &err) == 0) spec_free(&b);
  }
  uint8_t junk[5] = {0x0a, 0x7f, 0x01, 0x02, 0x03}; /* a string field claiming 127 bytes */
  CHECK(spec_proto_unpack(&b, junk, sizeof junk, &err) == FOIL_EINVAL &&
        strstr(err.msg, "PretrainSpec"));
  free(buf);
  spec_free(&a);
}

static void test_defaults_and_refusals(void) {
  Foil__V1__PretrainModel m = FOIL__V1__PRETRAIN_MODEL__INIT;
  m.tokenizer = "v.txt";
  Foil__V1__PretrainData d = FOIL__V1__PRETRAIN_DATA__INIT;
  d.dataset = "wordnet";
  Foil__V1__PretrainSpec p = FOIL__V1__PRETRAIN_SPEC__INIT;
  p.model = &m;
  p.data = &d;
  p.has_steps = 1, p.steps = 10;
  uint8_t buf[256];
  size_t len = foil__v1__pretrain_spec__pack(&p, buf);
  spec s;
  foil_err err = {0};
  CHECKF(spec_proto_unpack(&s, buf, len, &err) == 0, "%s", err.msg);
  if (!err.code) { /* the JSON defaults */
    CHECK(s.model.n_layers == 4 && s.model.d_model == 256 && s.batch_per_rank == 32);
    CHECK(s.model.dropout > 0.09f && s.lr > 0.0f && !strcmp(s.benchmark, "test"));
    spec_free(&s);
  }
  Foil__V1__PretrainOptimizer o = FOIL__V1__PRETRAIN_OPTIMIZER__INIT;
  o.has_lr = 1, o.lr = -1.0f;
  p.optimizer = &o;
  len = foil__v1__pretrain_spec__pack(&p, buf);
  CHECK(spec_proto_unpack(&s, buf, len, &err) == FOIL_EINVAL && strstr(err.msg, "optimizer.lr"));
  p.optimizer = NULL;
  /* a sender that sets the float fields itself (a Python client's 0.99 is
   * 0.99f on the wire): a bound is in range, a value past it is named as given */
  m.has_dropout = 1, m.dropout = 0.99f;
  Foil__V1__PretrainLoss l = FOIL__V1__PRETRAIN_LOSS__INIT;
  l.has_temperature = 1, l.temperature = 1e-4f;
  p.loss = &l;
  len = foil__v1__pretrain_spec__pack(&p, buf);
  int rc = spec_proto_unpack(&s, buf, len, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK(s.model.dropout == 0.99f && s.temperature == 1e-4f);
    spec_free(&s);
  }
  m.dropout = 0.995f;
  len = foil__v1__pretrain_spec__pack(&p, buf);
  CHECK(spec_proto_unpack(&s, buf, len, &err) == FOIL_EINVAL);
  CHECKF(!strcmp(err.msg, "model.dropout is out of range (got 0.995, allowed 0..0.99)"), "%s", err.msg);
  m.has_dropout = 0;
  p.loss = NULL;
  p.has_steps = 0;
  len = foil__v1__pretrain_spec__pack(&p, buf);
  CHECK(spec_proto_unpack(&s, buf, len, &err) == FOIL_EINVAL && strstr(err.msg, "steps is required"));
}

/* A decoder spec (model.kind "decoder", SimCTG, eval.tokens) travels with
 * its own keys only, and parses back to the same spec. */
static void test_decoder_roundtrip(void) {
  const char *json =
      "{\"name\":\"lm\",\"seed\":9,\"model\":{\"kind\":\"decoder\",\"n_layers\":3,\"d_model\":48,"
      "\"n_heads\":3,\"d_ff\":100,\"max_len\":96,\"dropout\":0.05,\"tokenizer\":\"bpe/vocab.json\"},"
      "\"data\":{\"dataset\":\"lm\"},\"loss\":{\"kind\":\"causal_lm\",\"simctg_margin\":0.5},"
      "\"batch_per_rank\":12,\"steps\":300,\"optimizer\":{\"lr\":0.0006,\"warmup_steps\":10},"
      "\"checkpoint\":{\"every_steps\":100},\"eval\":{\"every_steps\":150,\"tokens\":4096},\"threads\":1}";
  spec a, b;
  foil_err err = {0};
  uint8_t *buf = NULL;
  size_t len = 0;
  CHECKF(spec_parse(&a, json, &err) == 0, "%s", err.msg);
  CHECK(spec_proto_pack(&a, &buf, &len, &err) == 0);
  int rc = spec_proto_unpack(&b, buf, len, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK(b.model_kind == MODEL_DECODER && !memcmp(&a.dmodel, &b.dmodel, sizeof a.dmodel));
    CHECK(b.loss == LOSS_CAUSAL_LM && b.simctg_margin == 0.5f && b.eval_tokens == 4096 && b.seq_len == 96);
    CHECK(b.batch_per_rank == 12 && b.steps == 300 && b.lr == a.lr && b.eval_every_steps == 150 && b.seed == 9);
    CHECK(!strcmp(b.tokenizer, "bpe/vocab.json") && !strcmp(b.dataset, "lm") && b.benchmark == NULL);
    spec_free(&b);
  }
  spec_free(&a);
  free(buf);
}

/* Sets root's number at a dotted path, making the objects on the way. */
static void set_num(cJSON *root, const char *path, double v) {
  char part[64];
  const char *p = path, *dot;
  cJSON *o = root;
  while ((dot = strchr(p, '.'))) {
    snprintf(part, sizeof part, "%.*s", (int)(dot - p), p);
    cJSON *next = cJSON_GetObjectItemCaseSensitive(o, part);
    if (!next) next = cJSON_AddObjectToObject(o, part);
    o = next;
    p = dot + 1;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(o, p);
  cJSON_AddNumberToObject(o, p, v);
}

/* Each numeric key at its documented minimum and maximum (spec.c's ranges,
 * refresh's own keys included), alone or with the keys it needs (d_model
 * divisible by n_heads, micro_batch dividing batch_per_rank, warmup_steps
 * within steps). Float keys at a bound that a float cannot hold (0.99, 1e-4,
 * 0.999999, 1e-30) are the ones that failed: 0.99f is 0.99000001. */
static void test_bounds(void) {
  static const char *const base[] = {
      "{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"steps\":100}",
      "{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\"},\"steps\":100}",
      "{\"init_from\":\"m.h5\",\"data\":{\"dataset\":\"d\"},\"steps\":100}",
      "{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"steps\":1000000000000,"
      "\"refresh\":{\"every_steps\":1,\"index\":\"i\",\"corpus\":{\"dataset\":\"d\"}},"
      "\"checkpoint\":{\"every_steps\":1}}",
  };
  enum { ENC, DEC, INIT, LOOP };
  static const struct {
    int base;
    const char *key;
    double v;
    const char *key2; /* a key it needs, or NULL */
    double v2;
  } cases[] = {
      {ENC, "seed", 0, NULL, 0},
      {ENC, "seed", 9007199254740991.0, NULL, 0},
      {ENC, "model.n_layers", 1, NULL, 0},
      {ENC, "model.n_layers", 1024, NULL, 0},
      {ENC, "model.d_model", 1, "model.n_heads", 1},
      {ENC, "model.d_model", 65536, NULL, 0},
      {ENC, "model.n_heads", 1, NULL, 0},
      {ENC, "model.n_heads", 1024, "model.d_model", 1024},
      {ENC, "model.d_ff", 1, NULL, 0},
      {ENC, "model.d_ff", 1 << 20, NULL, 0},
      {ENC, "model.max_len", 2, NULL, 0},
      {ENC, "model.max_len", 65536, NULL, 0},
      {ENC, "model.proj_dim", 0, NULL, 0},
      {ENC, "model.proj_dim", 65536, NULL, 0},
      {ENC, "model.dropout", 0, NULL, 0},
      {ENC, "model.dropout", 0.99, NULL, 0},
      {ENC, "model.ln_eps", 1e-30, NULL, 0},
      {ENC, "model.ln_eps", 0.5, NULL, 0},
      {ENC, "data.negatives_check_every", 1, NULL, 0},
      {ENC, "data.negatives_check_every", 1e12, NULL, 0},
      {ENC, "loss.temperature", 1e-4, NULL, 0},
      {ENC, "loss.temperature", 100, NULL, 0},
      {ENC, "loss.hard_negatives", 0, NULL, 0},
      {ENC, "loss.hard_negatives", 64, NULL, 0},
      {ENC, "loss.queue_size", 1, NULL, 0},
      {ENC, "loss.queue_size", 1 << 24, NULL, 0},
      {ENC, "loss.momentum", 0, NULL, 0},
      {ENC, "loss.momentum", 1, NULL, 0},
      {ENC, "batch_per_rank", 1, NULL, 0},
      {ENC, "batch_per_rank", 1 << 20, NULL, 0},
      {ENC, "micro_batch", 0, NULL, 0},
      {ENC, "micro_batch", 1 << 20, "batch_per_rank", 1 << 20},
      {ENC, "steps", 1, NULL, 0},
      {ENC, "steps", 1e12, NULL, 0},
      {ENC, "optimizer.lr", 0, NULL, 0},
      {ENC, "optimizer.lr", 10, NULL, 0},
      {ENC, "optimizer.beta1", 0, NULL, 0},
      {ENC, "optimizer.beta1", 0.999999, NULL, 0},
      {ENC, "optimizer.beta2", 0, NULL, 0},
      {ENC, "optimizer.beta2", 0.999999, NULL, 0},
      {ENC, "optimizer.eps", 0, NULL, 0},
      {ENC, "optimizer.eps", 1, NULL, 0},
      {ENC, "optimizer.weight_decay", 0, NULL, 0},
      {ENC, "optimizer.weight_decay", 10, NULL, 0},
      {ENC, "optimizer.max_grad_norm", 0, NULL, 0},
      {ENC, "optimizer.max_grad_norm", 1e6, NULL, 0},
      {ENC, "optimizer.warmup_steps", 0, NULL, 0},
      {ENC, "optimizer.warmup_steps", 1e12, "steps", 1e12},
      {ENC, "checkpoint.every_steps", 1, NULL, 0},
      {ENC, "checkpoint.every_steps", 1e12, NULL, 0},
      {ENC, "checkpoint.keep_last", 1, NULL, 0},
      {ENC, "checkpoint.keep_last", 1e6, NULL, 0},
      {ENC, "checkpoint.keep_every_steps", 0, NULL, 0},
      {ENC, "checkpoint.keep_every_steps", 1e12, NULL, 0},
      {ENC, "eval.every_steps", 1, NULL, 0},
      {ENC, "eval.every_steps", 1e12, NULL, 0},
      {ENC, "log_every_steps", 1, NULL, 0},
      {ENC, "log_every_steps", 1e12, NULL, 0},
      {ENC, "threads", 0, NULL, 0},
      {ENC, "threads", 4096, NULL, 0},
      {DEC, "model.n_layers", 1, NULL, 0},
      {DEC, "model.n_layers", 1024, NULL, 0},
      {DEC, "model.d_model", 1, "model.n_heads", 1},
      {DEC, "model.d_model", 65536, NULL, 0},
      {DEC, "model.n_heads", 1, NULL, 0},
      {DEC, "model.n_heads", 1024, "model.d_model", 1024},
      {DEC, "model.d_ff", 1, NULL, 0},
      {DEC, "model.d_ff", 1 << 20, NULL, 0},
      {DEC, "model.max_len", 2, NULL, 0},
      {DEC, "model.max_len", 65536, NULL, 0},
      {DEC, "model.dropout", 0, NULL, 0},
      {DEC, "model.dropout", 0.99, NULL, 0},
      {DEC, "model.ln_eps", 1e-30, NULL, 0},
      {DEC, "model.ln_eps", 0.5, NULL, 0},
      {DEC, "loss.simctg_margin", 0, NULL, 0},
      {DEC, "loss.simctg_margin", 2, NULL, 0},
      {DEC, "eval.tokens", 0, NULL, 0},
      {DEC, "eval.tokens", 1e12, NULL, 0},
      {INIT, "model.max_len", 2, NULL, 0},
      {INIT, "model.max_len", 65536, NULL, 0},
      {INIT, "model.dropout", 0, NULL, 0},
      {INIT, "model.dropout", 0.99, NULL, 0},
      {LOOP, "refresh.every_steps", 1, NULL, 0},
      {LOOP, "refresh.every_steps", 1e12, "checkpoint.every_steps", 1e12},
      {LOOP, "refresh.ranks", 1, NULL, 0},
      {LOOP, "refresh.ranks", 4096, NULL, 0},
  };
  int failed = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cJSON *root = cJSON_Parse(base[cases[i].base]);
    set_num(root, cases[i].key, cases[i].v);
    if (cases[i].key2) set_num(root, cases[i].key2, cases[i].v2);
    char *json = cJSON_PrintUnformatted(root);
    char what[600];
    snprintf(what, sizeof what, "case %zu (%s)", i, json);
    failed += roundtrip(json, what);
    free(json);
    cJSON_Delete(root);
  }
  CHECKF(failed == 0, "%d of %zu bounds did not survive the trip", failed, sizeof cases / sizeof cases[0]);
}

/* device and precision travel: a GPU job stays a GPU job in bf16. */
static void test_device(void) {
  static const char *const gpu[] = {
      "{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"steps\":10,\"device\":\"cuda\","
      "\"precision\":\"bf16\"}",
      "{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"steps\":10,\"device\":\"cuda\"}",
      "{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\"},\"steps\":10,"
      "\"device\":\"cuda\",\"precision\":\"bf16\"}",
  };
  for (int i = 0; i < 3; i++) {
    spec a, b;
    foil_err err = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = spec_parse(&a, gpu[i], &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) continue;
    CHECK(spec_proto_pack(&a, &buf, &len, &err) == 0);
    rc = spec_proto_unpack(&b, buf, len, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
      CHECKF(b.device == 1 && b.precision == (i != 1), "case %d: device %d precision %d", i, b.device, b.precision);
      CHECK(same(&a, &b));
      spec_free(&b);
    }
    spec_free(&a);
    free(buf);
  }
  /* a message that does not say is a CPU job in fp32; a bad name is named */
  Foil__V1__PretrainModel m = FOIL__V1__PRETRAIN_MODEL__INIT;
  m.tokenizer = "v.txt";
  Foil__V1__PretrainData d = FOIL__V1__PRETRAIN_DATA__INIT;
  d.dataset = "d";
  Foil__V1__PretrainSpec p = FOIL__V1__PRETRAIN_SPEC__INIT;
  p.model = &m, p.data = &d, p.has_steps = 1, p.steps = 10;
  uint8_t buf[256];
  size_t len = foil__v1__pretrain_spec__pack(&p, buf);
  spec s;
  foil_err err = {0};
  int rc = spec_proto_unpack(&s, buf, len, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK(s.device == 0 && s.precision == 0);
    spec_free(&s);
  }
  p.device = "tpu";
  len = foil__v1__pretrain_spec__pack(&p, buf);
  CHECK(spec_proto_unpack(&s, buf, len, &err) == FOIL_EINVAL &&
        strstr(err.msg, "device has the unknown value \"tpu\""));
  p.device = NULL, p.precision = "bf16";
  len = foil__v1__pretrain_spec__pack(&p, buf);
  CHECK(spec_proto_unpack(&s, buf, len, &err) == FOIL_EINVAL && strstr(err.msg, "needs device \"cuda\""));
}

int main(void) {
  RUN(test_roundtrip);
  RUN(test_defaults_and_refusals);
  RUN(test_decoder_roundtrip);
  RUN(test_bounds);
  RUN(test_device);
  TEST_EXIT();
}
