/* test_spec_proto.c — a spec survives JSON -> spec -> foil.v1.PretrainSpec
 * bytes -> spec unchanged; a message with fields left out takes the JSON
 * defaults; bad values are refused naming the key; malformed bytes are
 * refused. */
#include <stdlib.h>
#include <string.h>

#include "foil/v1/pretrain.pb-c.h"
#include "tests/test.h"
#include "worker/run/spec_proto.h"

static int same(const spec *a, const spec *b) {
  return !memcmp(&a->model, &b->model, sizeof a->model) && a->seed == b->seed &&
         !strcmp(a->name, b->name) && !strcmp(a->tokenizer, b->tokenizer) &&
         !strcmp(a->dataset, b->dataset) && !strcmp(a->benchmark, b->benchmark) &&
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
         a->threads == b->threads && a->negatives_check_every == b->negatives_check_every &&
         a->pad_max_len == b->pad_max_len &&
         !a->negatives_bank == !b->negatives_bank && (!a->negatives_bank || !strcmp(a->negatives_bank, b->negatives_bank)) &&
         !a->refresh_json == !b->refresh_json && (!a->refresh_json || !strcmp(a->refresh_json, b->refresh_json)) &&
         a->refresh_every_steps == b->refresh_every_steps;
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

int main(void) {
  RUN(test_roundtrip);
  RUN(test_defaults_and_refusals);
  RUN(test_decoder_roundtrip);
  TEST_EXIT();
}
