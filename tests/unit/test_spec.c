/* test_spec.c — the pretrain spec: defaults, every documented example
 * parses, and bad specs are refused naming the key. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"
#include "worker/run/refresh.h"
#include "worker/run/spec.h"

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
  s[n] = 0;
  fclose(f);
  return s;
}

static void test_example_and_defaults(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/examples/pretrain-wordnet-tiny.json", FOIL_SOURCE_DIR);
  char *json = slurp(path);
  CHECKF(json != NULL, "cannot read %s", path);
  if (!json) return;
  spec s;
  foil_err err = {0};
  int rc = spec_parse(&s, json, &err);
  CHECKF(rc == 0, "%s", err.msg);
  free(json);
  if (rc) return;
  CHECK(s.model.n_layers == 2 && s.model.d_model == 64 && s.steps == 100);
  CHECK(s.loss == LOSS_INFONCE && s.symmetric == 1 && fabsf(s.temperature - 0.05f) < 1e-7f);
  CHECK(!strcmp(s.dataset, "wordnet") && !strcmp(s.benchmark, "test"));
  CHECK(s.checkpoint_every_steps == 50 && s.eval_every_steps == 100 && s.eval_at_start == 0);
  spec_free(&s);

  const char *min = "{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"steps\":10}";
  if (spec_parse(&s, min, &err)) {
    CHECKF(0, "%s", err.msg);
    return;
  }
  CHECK(s.seed == 1 && s.batch_per_rank == 32 && s.model.d_ff == 1024 && s.schedule == SCHED_COSINE);
  CHECK(s.checkpoint_every_steps == 10 && s.checkpoint_keep_last == 2 && s.device == 0);
  spec_free(&s);
  const char *on_gpu = "{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"steps\":10,"
                       "\"device\":\"cuda\",\"precision\":\"bf16\"}";
  rc = spec_parse(&s, on_gpu, &err);
  CHECKF(rc == 0 && s.device == 1 && s.precision == 1, "device cuda, bf16: %s", err.msg);
  if (!rc) spec_free(&s);
  /* the GPU example parses as GPU ranks in bf16 */
  snprintf(path, sizeof path, "%s/examples/pretrain-wordnet-gpu.json", FOIL_SOURCE_DIR);
  if ((json = slurp(path))) {
    rc = spec_parse(&s, json, &err);
    CHECKF(rc == 0 && s.device == 1 && s.precision == 1 && s.model.d_model == 384, "%s: %s", path, err.msg);
    if (!rc) spec_free(&s);
    free(json);
  } else {
    CHECKF(0, "cannot read %s", path);
  }

  /* "job" is the scheduler's (cli/jobspec.h): accepted, ignored */
  const char *with_job = "{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},"
                         "\"steps\":10,\"job\":{\"ranks\":2,\"after_ok\":[3]}}";
  rc = spec_parse(&s, with_job, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) spec_free(&s);
}

static void test_refusals(void) {
  struct {
    const char *json, *expect;
  } bad[] = {
      {"[1,2]", "not a JSON object"},
      {"{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"}}", "steps is required"},
      {"{\"data\":{\"dataset\":\"d\"},\"steps\":1}", "model.tokenizer is required"},
      {"{\"model\":{\"tokenizer\":\"v\",\"layers\":2},\"data\":{\"dataset\":\"d\"},\"steps\":1}",
       "unknown key model.layers"},
      {"{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":1,\"optimizer\":{\"lr\":-1}}",
       "optimizer.lr is out of range"},
      {"{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":1.5}",
       "steps must be a whole number"},
      {"{\"model\":{\"tokenizer\":\"v\",\"pooling\":\"max\"},\"data\":{\"dataset\":\"d\"},\"steps\":1}",
       "model.pooling has the unknown value \"max\" (one of mean, first)"},
      {"{\"model\":{\"tokenizer\":\"v\",\"d_model\":10,\"n_heads\":3},\"data\":{\"dataset\":\"d\"},\"steps\":1}",
       "model.n_heads must divide"},
      {"{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":1,\"loss\":{\"symmetric\":1}}",
       "loss.symmetric must be true or false"},
      {"{\"kind\":\"refresh\",\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":1}",
       "kind must be \"pretrain\""},
      {"{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":4,\"batch_per_rank\":6,"
       "\"micro_batch\":4}",
       "micro_batch must divide"},
      {"{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":1,\"device\":\"gpu\"}",
       "device has the unknown value \"gpu\" (one of cpu, cuda)"},
      {"{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":1,"
       "\"loss\":{\"kind\":\"causal_lm\"},\"precision\":\"bf16\"}",
       "precision \"bf16\" needs device \"cuda\""},
      {"{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":1,\"precision\":\"bf16\"}",
       "precision \"bf16\" needs device \"cuda\""},
      {"{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":1,\"precision\":\"fp16\"}",
       "precision has the unknown value \"fp16\" (one of fp32, bf16)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    spec s;
    foil_err err = {0};
    int rc = spec_parse(&s, bad[i].json, &err);
    CHECKF(rc == FOIL_EINVAL && strstr(err.msg, bad[i].expect), "case %zu: rc %d, message '%s'", i,
           rc, err.msg);
  }
}

static void test_schedules(void) {
  spec s;
  foil_err err = {0};
  const char *j = "{\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":110,"
                  "\"optimizer\":{\"lr\":0.01,\"warmup_steps\":10},"
                  "\"loss\":{\"kind\":\"moco\",\"momentum\":0.99,\"momentum_schedule\":\"cosine\"}}";
  if (spec_parse(&s, j, &err)) {
    CHECKF(0, "%s", err.msg);
    return;
  }
  CHECK(fabsf(spec_lr_at(&s, 0) - 0.001f) < 1e-7f);     /* warmup: (0+1)/10 of lr */
  CHECK(fabsf(spec_lr_at(&s, 9) - 0.01f) < 1e-7f);      /* end of warmup */
  CHECK(fabsf(spec_lr_at(&s, 60) - 0.005f) < 1e-6f);    /* half-way down the cosine */
  CHECK(spec_lr_at(&s, 110) < 1e-9f);
  CHECK(fabsf(spec_momentum_at(&s, 0) - 0.99f) < 1e-7f);
  CHECK(fabsf(spec_momentum_at(&s, 110) - 1.0f) < 1e-7f);
  spec_free(&s);
}

/* The loop's keys: data.negatives_bank and the coordinator's refresh object. */
static void test_loop_keys(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/examples/pretrain-code-loop.json", FOIL_SOURCE_DIR);
  FILE *f = fopen(path, "rb");
  char buf[8192] = {0};
  CHECK(f && fread(buf, 1, sizeof buf - 1, f) > 0);
  if (f) fclose(f);
  spec s;
  foil_err err = {0};
  CHECKF(spec_parse(&s, buf, &err) == 0, "%s", err.msg);
  CHECK(s.negatives_bank && !strcmp(s.negatives_bank, "code-neg") && s.negatives_check_every == 10);
  CHECK(s.refresh_every_steps == 200 && s.refresh_json && strstr(s.refresh_json, "\"mine\""));
  CHECK(s.pad_max_len == 0); /* data.padding: "longest" unless asked */
  spec_free(&s);
  const char *base = "{\"model\":{\"tokenizer\":\"v\"},\"steps\":40,\"checkpoint\":{\"every_steps\":10},";
  struct {
    const char *rest, *expect;
  } bad[] = {
      {"\"data\":{\"dataset\":\"d\",\"negatives_bank\":\"b\"}}", "needs loss.hard_negatives >= 1"},
      {"\"data\":{\"dataset\":\"d\",\"negatives_bank\":\"a/b\"},\"loss\":{\"hard_negatives\":1}}",
       "data.negatives_bank"},
      {"\"data\":{\"dataset\":\"d\"},\"refresh\":{\"index\":\"i\",\"corpus\":{\"file\":\"c\"}}}",
       "refresh.every_steps is required"},
      {"\"data\":{\"dataset\":\"d\"},\"refresh\":{\"every_steps\":15,\"index\":\"i\",\"corpus\":{\"file\":\"c\"}}}",
       "multiple of checkpoint.every_steps"},
      {"\"data\":{\"dataset\":\"d\"},\"refresh\":{\"every_steps\":20,\"index\":\"i\"}}", "refresh: corpus is required"},
      {"\"data\":{\"dataset\":\"d\"},\"refresh\":{\"every_steps\":20,\"index\":\"i\",\"corpus\":{\"file\":\"c\"},"
       "\"mine\":{\"dataset\":\"d\"}}}", "mine.top is required"},
      {"\"data\":{\"dataset\":\"d\"},\"refresh\":{\"every_steps\":20,\"index\":\"i\",\"corpus\":{\"file\":\"c\"},"
       "\"wat\":1}}", "refresh.wat"},
      {"\"data\":{\"dataset\":\"d\",\"padding\":\"none\"}}", "data.padding"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char json[1024];
    snprintf(json, sizeof json, "%s%s", base, bad[i].rest);
    int rc = spec_parse(&s, json, &err);
    CHECKF(rc == FOIL_EINVAL && strstr(err.msg, bad[i].expect), "case %zu: rc %d, message '%s'", i, rc, err.msg);
  }
}

/* init_from: the architecture and tokenizer come from the checkpoint */
static void test_init_from(void) {
  spec s;
  foil_err err = {0};
  const char *ok = "{\"steps\":10,\"init_from\":\"m.h5\",\"model\":{\"max_len\":48,\"dropout\":0.0},"
                   "\"data\":{\"dataset\":\"d\"}}";
  CHECKF(spec_parse(&s, ok, &err) == 0, "%s", err.msg);
  CHECK(s.init_from && !strcmp(s.init_from, "m.h5") && !s.tokenizer && s.seq_len == 48);
  spec_free(&s);
  const char *no_len = "{\"steps\":10,\"init_from\":\"m.h5\",\"data\":{\"dataset\":\"d\"}}";
  CHECKF(spec_parse(&s, no_len, &err) == 0, "%s", err.msg);
  CHECK(s.seq_len == 0);  /* the checkpoint's positions, at most 128, at setup */
  spec_free(&s);
  const char *sized = "{\"steps\":10,\"init_from\":\"m.h5\",\"model\":{\"d_model\":64},\"data\":{\"dataset\":\"d\"}}";
  CHECK(spec_parse(&s, sized, &err) == FOIL_EINVAL && strstr(err.msg, "model.d_model comes from init_from"));
  const char *none = "{\"model\":{\"max_len\":48},\"data\":{\"dataset\":\"d\"}}";
  CHECK(spec_parse(&s, none, &err) == FOIL_EINVAL && strstr(err.msg, "model.tokenizer is required"));
}

/* model.kind "decoder": its keys and defaults, the examples, and the
 * encoder-only keys refused by name (encoder specs are unchanged). */
static void test_decoder(void) {
  spec s;
  foil_err err = {0};
  const char *min = "{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\"},"
                    "\"steps\":10}";
  int rc = spec_parse(&s, min, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK(s.model_kind == MODEL_DECODER && s.loss == LOSS_CAUSAL_LM && s.simctg_margin == 0.0f);
    CHECK(s.dmodel.n_layers == 4 && s.dmodel.d_model == 256 && s.dmodel.d_ff == 1024 && s.dmodel.max_len == 64);
    CHECK(s.seq_len == 64 && s.benchmark == NULL && s.eval_tokens == 65536 && s.batch_per_rank == 32);
    spec_free(&s);
  }
  for (int i = 0; i < 2; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/%s", FOIL_SOURCE_DIR,
             i ? "pretrain-lm-amateur.json" : "pretrain-lm-decoder.json");
    char *json = slurp(path);
    CHECKF(json != NULL, "cannot read %s", path);
    if (!json) continue;
    rc = spec_parse(&s, json, &err);
    CHECKF(rc == 0, "%s: %s", path, err.msg);
    free(json);
    if (rc) continue;
    CHECK(s.model_kind == MODEL_DECODER && !strcmp(s.dataset, "lm"));
    CHECK(i ? s.simctg_margin == 0.0f : s.simctg_margin == 0.5f);
    spec_free(&s);
  }
  /* the encoder's default is unchanged, and kind "encoder" may be said */
  rc = spec_parse(&s, "{\"model\":{\"kind\":\"encoder\",\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},"
                      "\"steps\":10}", &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK(s.model_kind == MODEL_ENCODER && s.loss == LOSS_INFONCE && !strcmp(s.benchmark, "test"));
    spec_free(&s);
  }
  static const struct {
    const char *json, *says;
  } bad[] = {
      {"{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\",\"pooling\":\"mean\"},\"data\":{\"dataset\":\"lm\"},"
       "\"steps\":10}", "model.pooling"},
      {"{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\",\"benchmark\":\"t\"},"
       "\"steps\":10}", "data.benchmark"},
      {"{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\"},"
       "\"loss\":{\"kind\":\"infonce\"},\"steps\":10}", "causal_lm"},
      {"{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\"},"
       "\"loss\":{\"temperature\":0.1},\"steps\":10}", "loss.temperature"},
      {"{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\"},"
       "\"loss\":{\"simctg_margin\":3},\"steps\":10}", "loss.simctg_margin"},
      {"{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\"},"
       "\"micro_batch\":4,\"steps\":10}", "micro_batch"},
      {"{\"model\":{\"kind\":\"decoder\"},\"data\":{\"dataset\":\"lm\"},\"steps\":10}", "model.tokenizer"},
      {"{\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v.json\",\"d_model\":30,\"n_heads\":4},"
       "\"data\":{\"dataset\":\"lm\"},\"steps\":10}", "n_heads"},
      {"{\"model\":{\"kind\":\"gpt\",\"tokenizer\":\"v.json\"},\"data\":{\"dataset\":\"lm\"},\"steps\":10}",
       "model.kind"},
      {"{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"loss\":{\"kind\":\"causal_lm\"},"
       "\"steps\":10}", "decoder"},
      {"{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"eval\":{\"tokens\":5},"
       "\"steps\":10}", "eval.tokens"},
      {"{\"model\":{\"tokenizer\":\"v.txt\"},\"data\":{\"dataset\":\"d\"},\"eval\":{\"at_start\":1},"
       "\"steps\":10}", "eval.at_start"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rc = spec_parse(&s, bad[i].json, &err);
    CHECKF(rc == FOIL_EINVAL && strstr(err.msg, bad[i].says), "case %zu: rc %d, message: %s", i, rc, err.msg);
    if (!rc) spec_free(&s);
  }
}

/* Range errors show numbers as given (integers in full, reals in the
 * shortest decimal that reads back the same), and a bad choice echoes the
 * value. */
static void test_messages(void) {
  static const struct {
    const char *rest, *says;
  } cases[] = {
      {"\"steps\":10,\"batch_per_rank\":2000000",
       "batch_per_rank is out of range (got 2000000, allowed 1..1048576)"},
      {"\"steps\":12345678901234", "steps is out of range (got 12345678901234, allowed 1..1000000000000)"},
      {"\"steps\":1e300", "steps is out of range (got 1e+300, allowed 1..1000000000000)"},
      {"\"steps\":10,\"model\":{\"tokenizer\":\"v\",\"dropout\":0.995}",
       "model.dropout is out of range (got 0.995, allowed 0..0.99)"},
      {"\"steps\":10,\"model\":{\"tokenizer\":\"v\",\"dropout\":0.99000000001}",
       "model.dropout is out of range (got 0.99000000001, allowed 0..0.99)"},
      {"\"steps\":10,\"loss\":{\"temperature\":0.00005}",
       "loss.temperature is out of range (got 5e-05, allowed 0.0001..100)"},
      {"\"steps\":10,\"model\":{\"tokenizer\":\"v\",\"ln_eps\":0}",
       "model.ln_eps is out of range (got 0, allowed 1e-30..0.5)"},
      {"\"steps\":10,\"optimizer\":{\"beta2\":1}", "optimizer.beta2 is out of range (got 1, allowed 0..0.999999)"},
      {"\"steps\":10,\"seed\":-1", "seed is out of range (got -1, allowed 0..9007199254740991)"},
      {"\"steps\":10,\"optimizer\":{\"schedule\":\"cosin\"}",
       "optimizer.schedule has the unknown value \"cosin\" (one of constant, cosine, linear)"},
      {"\"steps\":10,\"loss\":{\"kind\":\"say \\\"hi\\\"\\n\"}",
       "loss.kind has the unknown value \"say \\\"hi\\\"\\x0a\" (one of infonce, dcl, simcse, moco, causal_lm)"},
      {"\"steps\":10,\"data\":{\"dataset\":\"d\",\"padding\":"
       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
       "data.padding has the unknown value "
       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" (one of longest, max_len)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char json[1024];
    /* the first of two "model"/"data" objects would be a duplicate: the case's own comes alone */
    snprintf(json, sizeof json, "{%s%s%s}", cases[i].rest,
             strstr(cases[i].rest, "\"model\"") ? "" : ",\"model\":{\"tokenizer\":\"v\"}",
             strstr(cases[i].rest, "\"data\"") ? "" : ",\"data\":{\"dataset\":\"d\"}");
    spec s;
    foil_err err = {0};
    int rc = spec_parse(&s, json, &err);
    CHECKF(rc == FOIL_EINVAL && !strcmp(err.msg, cases[i].says), "case %zu: rc %d, message '%s'", i, rc, err.msg);
    if (!rc) spec_free(&s);
  }
}

/* A key given twice is refused, by its path, wherever it is: cJSON would
 * keep the first value, Python's json and jq the last. */
static void test_duplicate_keys(void) {
  static const struct {
    const char *json, *key;
  } cases[] = {
      {"{\"steps\":10,\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"steps\":20}", "steps"},
      {"{\"steps\":10,\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},"
       "\"optimizer\":{\"lr\":0.1,\"warmup_steps\":0,\"lr\":0.2}}", "optimizer.lr"},
      {"{\"steps\":10,\"model\":{\"tokenizer\":\"v\"},\"model\":{\"tokenizer\":\"w\"},\"data\":{\"dataset\":\"d\"}}",
       "model"},
      {"{\"steps\":10,\"model\":{\"kind\":\"decoder\",\"tokenizer\":\"v\",\"d_model\":64,\"d_model\":32},"
       "\"data\":{\"dataset\":\"d\"}}", "model.d_model"},
      /* "job" is the scheduler's, but its keys are no less ambiguous */
      {"{\"steps\":10,\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},"
       "\"job\":{\"ranks\":2,\"ranks\":4}}", "job.ranks"},
      {"{\"steps\":10,\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},"
       "\"job\":{\"x\":[1,{\"a\":1,\"b\":2,\"a\":3}]}}", "job.x[1].a"},
      {"{\"steps\":40,\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},\"checkpoint\":{\"every_steps\":10},"
       "\"refresh\":{\"every_steps\":20,\"index\":\"i\",\"corpus\":{\"file\":\"c\",\"file\":\"e\"}}}",
       "refresh.corpus.file"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    spec s;
    foil_err err = {0};
    char want[128];
    snprintf(want, sizeof want, "duplicate key %s (", cases[i].key);
    int rc = spec_parse(&s, cases[i].json, &err);
    CHECKF(rc == FOIL_EINVAL && strstr(err.msg, want) == err.msg, "case %zu: rc %d, message '%s'", i, rc, err.msg);
    if (!rc) spec_free(&s);
  }
  /* keys differing in case are two keys (and "Steps" is not one of ours) */
  spec s;
  foil_err err = {0};
  int rc = spec_parse(&s, "{\"steps\":10,\"Steps\":20,\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"}}",
                      &err);
  CHECKF(rc == FOIL_EINVAL && strstr(err.msg, "unknown key Steps"), "rc %d, message '%s'", rc, err.msg);
  if (!rc) spec_free(&s);
  /* the same readers check the refresh spec */
  rc = refresh_spec_check("{\"kind\":\"refresh\",\"name\":\"i\",\"name\":\"j\",\"checkpoint\":\"c.h5\","
                          "\"corpus\":{\"file\":\"c\"}}", &err);
  CHECKF(rc == FOIL_EINVAL && strstr(err.msg, "duplicate key name ("), "rc %d, message '%s'", rc, err.msg);
  /* a large object of distinct keys passes */
  char *big = malloc(200000);
  CHECK(big != NULL);
  if (!big) return;
  size_t o = (size_t)snprintf(big, 200000, "{\"steps\":10,\"model\":{\"tokenizer\":\"v\"},\"data\":{\"dataset\":\"d\"},"
                                           "\"job\":{");
  for (int k = 0; k < 10000; k++) o += (size_t)snprintf(big + o, 200000 - o, "%s\"k%d\":%d", k ? "," : "", k, k);
  snprintf(big + o, 200000 - o, "}}");
  rc = spec_parse(&s, big, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) spec_free(&s);
  free(big);
}

int main(void) {
  RUN(test_init_from);
  RUN(test_example_and_defaults);
  RUN(test_loop_keys);
  RUN(test_refusals);
  RUN(test_schedules);
  RUN(test_decoder);
  RUN(test_messages);
  RUN(test_duplicate_keys);
  TEST_EXIT();
}
