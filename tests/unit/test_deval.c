/* test_deval.c — the decode-eval spec (worker/run/deval.h): every key's
 * default (generate.h's for the methods), the example parses, bad specs
 * are refused naming the key, every spec that parses runs in its generator
 * (boundary values on tiny models), and the checks against the models:
 * the prompt caps (the amateur's max_len cuts only contrastive decoding
 * without ignore_prefix) and the model-dependent parameters. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/decode.h"
#include "tests/test.h"
#include "worker/run/deval.h"

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

#define BASE "\"model\":\"m.h5\",\"prompts\":{\"dataset\":\"lm\"}"

static void test_defaults(void) {
  deval_spec s;
  foil_err err = {0};
  const char *min = "{" BASE ",\"methods\":[{\"method\":\"greedy\"},{\"method\":\"beam\"},{\"method\":\"sample\"},"
                    "{\"method\":\"contrastive_search\"},{\"method\":\"contrastive_decoding\"},{\"method\":\"cad\"},"
                    "{\"method\":\"adacad\"},{\"method\":\"dola\"},{\"method\":\"combine\",\"weights\":[2,-1]}],"
                    "\"amateur\":\"a.h5\"}";
  int rc = deval_spec_parse(&s, min, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(!strcmp(s.name, "decode-eval") && !strcmp(s.model, "m.h5") && !strcmp(s.amateur, "a.h5"));
  CHECK(!strcmp(s.dataset, "lm") && !s.file && s.n_prompts == -1 && s.query_words == 8);
  CHECK(s.max_new_tokens == 64 && s.eos == 1 && s.batch == 8 && s.threads == 0);
  CHECK(s.n_seeds == 1 && s.seeds[0] == 0);
  CHECK(!s.encoder && !s.scorer && s.scorer_model == 1 && s.metrics_max_len == 0);
  CHECK(s.n_methods == 9);
  generate_opts o;
  generate_opts_default(&o);
  generate_beam_cfg b;
  generate_beam_default(&b);
  generate_cs_cfg cs;
  generate_cs_default(&cs);
  generate_cd_cfg cd;
  generate_cd_default(&cd);
  generate_dola_cfg dl;
  generate_dola_default(&dl);
  const deval_method *m = s.methods;
  CHECK(!strcmp(m[0].name, "greedy") && m[0].method == DEVAL_GREEDY && !m[0].o.do_sample &&
        m[0].o.repetition_penalty == 1.0f);
  CHECK(m[1].method == DEVAL_BEAM && m[1].beam.num_beams == b.num_beams && m[1].beam.length_penalty == b.length_penalty &&
        m[1].beam.early_stopping == b.early_stopping);
  CHECK(m[2].method == DEVAL_SAMPLE && m[2].o.do_sample == 1 && m[2].o.temperature == o.temperature &&
        m[2].o.top_k == o.top_k && m[2].o.top_p == o.top_p);
  CHECK(m[3].cs.top_k == cs.top_k && m[3].cs.alpha == cs.alpha && !m[3].o.do_sample);
  CHECK(m[4].cd.alpha == cd.alpha && m[4].cd.beta == cd.beta && m[4].cd.tau_ama == cd.tau_ama &&
        m[4].cd.num_beams == cd.num_beams && m[4].cd.length_penalty == cd.length_penalty &&
        m[4].cd.early_stopping == cd.early_stopping && m[4].cd.ignore_prefix == cd.ignore_prefix);
  float w[2];
  generate_cad_weights(0.5f, w);
  CHECK(m[5].weights[0] == w[0] && m[5].weights[1] == w[1] && !m[5].o.do_sample);
  CHECK(m[6].alpha_floor == 0 && !m[6].o.do_sample);
  CHECK(m[7].dola.layers_kind == dl.layers_kind && m[7].dola.relative_top == dl.relative_top &&
        fabsf(m[7].o.repetition_penalty - 1.2f) < 1e-7f);
  CHECK(m[8].weights[0] == 2.0f && m[8].weights[1] == -1.0f);
  deval_spec_free(&s);

  /* explicit values land where they belong */
  const char *full =
      "{\"kind\":\"decode-eval\",\"name\":\"x-1\",\"model\":\"m\",\"prompts\":{\"file\":\"p.jsonl\",\"n_prompts\":5,"
      "\"query_words\":3},\"methods\":[{\"name\":\"s\",\"method\":\"sample\",\"temperature\":0.7,\"top_k\":40,"
      "\"top_p\":0.9,\"repetition_penalty\":1.1},{\"method\":\"dola\",\"layers\":[0,2]},{\"method\":\"cad\",\"alpha\":1,"
      "\"do_sample\":true}],\"max_new_tokens\":16,\"eos\":false,\"seeds\":[3,4],\"batch\":2,\"threads\":1,"
      "\"metrics\":{\"encoder\":\"e\",\"scorer\":\"sc\",\"max_len\":32},\"job\":{\"ranks\":2}}";
  rc = deval_spec_parse(&s, full, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(!strcmp(s.file, "p.jsonl") && s.n_prompts == 5 && s.query_words == 3 && !s.dataset);
  CHECK(s.methods[0].o.temperature == 0.7f && s.methods[0].o.top_k == 40 && s.methods[0].o.top_p == 0.9f &&
        s.methods[0].o.repetition_penalty == 1.1f);
  CHECK(s.methods[1].dola.layers_kind == DOLA_LIST && s.methods[1].dola.n_layers == 2 &&
        s.methods[1].dola.layers[1] == 2);
  CHECK(s.methods[2].o.do_sample == 1 && s.methods[2].weights[0] == 2.0f && s.methods[2].weights[1] == -1.0f);
  CHECK(s.max_new_tokens == 16 && !s.eos && s.n_seeds == 2 && s.seeds[1] == 4 && s.batch == 2 && s.threads == 1);
  CHECK(!strcmp(s.encoder, "e") && !strcmp(s.scorer, "sc") && !s.scorer_model && s.metrics_max_len == 32);
  deval_spec_free(&s);
  rc = deval_spec_parse(&s, "{" BASE ",\"methods\":[{\"method\":\"greedy\"}],\"metrics\":{\"scorer\":false}}", &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK(!s.scorer && !s.scorer_model);
    deval_spec_free(&s);
  }
}

static void test_example(void) {
  const char *names[] = {"decode-eval-lm.json", "decode-eval-lm-gpu.json"};
  for (int i = 0; i < 2; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/%s", FOIL_SOURCE_DIR, names[i]);
    char *json = slurp(path);
    CHECKF(json != NULL, "cannot read %s", path);
    if (!json) return;
    foil_err err = {0};
    deval_spec s;
    CHECKF(deval_spec_parse(&s, json, &err) == 0, "%s: %s", path, err.msg);
    CHECK(s.device == i); /* DEVMEM_CPU, DEVMEM_CUDA */
    deval_spec_free(&s);
    free(json);
  }
}

/* Each bad spec is refused with FOIL_EINVAL and a message holding `key`. */
static void refused(const char *json, const char *key) {
  foil_err err = {0};
  int rc = deval_spec_check(json, &err);
  CHECKF(rc == FOIL_EINVAL && strstr(err.msg, key), "%s -> rc %d \"%s\" (wanted the key %s)", json, rc, err.msg, key);
}

static void test_refusals(void) {
  const char *g = ",\"methods\":[{\"method\":\"greedy\"}]";
  refused("[1]", "JSON object");
  refused("{\"device\":\"tpu\"," BASE ",\"methods\":[{\"method\":\"greedy\"}]}", "device");
  refused("{\"kind\":\"refresh\"," BASE "}", "kind");
  refused("{\"name\":\"a/b\"," BASE "}", "name");
  refused("{\"prompts\":{\"dataset\":\"lm\"},\"methods\":[{\"method\":\"greedy\"}]}", "model");
  refused("{\"model\":\"m\",\"methods\":[{\"method\":\"greedy\"}]}", "prompts");
  refused("{\"model\":\"m\",\"prompts\":{\"dataset\":\"lm\",\"file\":\"f\"},\"methods\":[{\"method\":\"greedy\"}]}",
          "prompts");
  refused("{\"model\":\"m\",\"prompts\":{\"dataset\":\"lm\",\"n_prompts\":0},\"methods\":[{\"method\":\"greedy\"}]}",
          "prompts.n_prompts");
  refused("{\"model\":\"m\",\"prompts\":{\"dataset\":\"lm\",\"query_words\":0},\"methods\":[{\"method\":\"greedy\"}]}",
          "prompts.query_words");
  refused("{\"model\":\"m\",\"prompts\":{\"dataset\":\"lm\",\"split\":\"x\"},\"methods\":[{\"method\":\"greedy\"}]}",
          "prompts.split");
  refused("{" BASE "}", "methods");
  refused("{" BASE ",\"methods\":[]}", "methods");
  refused("{" BASE ",\"methods\":[{\"name\":\"x\"}]}", "methods[0].method");
  refused("{" BASE ",\"methods\":[{\"method\":\"nucleus\"}]}", "methods[0].method");
  refused("{" BASE ",\"methods\":[{\"method\":\"greedy\",\"top_k\":5}]}", "methods[0].top_k");
  refused("{" BASE ",\"methods\":[{\"method\":\"greedy\"},{\"method\":\"greedy\"}]}", "methods[1].name");
  refused("{" BASE ",\"methods\":[{\"method\":\"sample\",\"top_p\":1.5}]}", "methods[0].top_p");
  refused("{" BASE ",\"methods\":[{\"method\":\"sample\",\"temperature\":0}]}", "methods[0].temperature");
  refused("{" BASE ",\"methods\":[{\"method\":\"sample\",\"do_sample\":false}]}", "methods[0].do_sample");
  refused("{" BASE ",\"methods\":[{\"method\":\"beam\",\"num_beams\":0}]}", "methods[0].num_beams");
  refused("{" BASE ",\"methods\":[{\"method\":\"contrastive_search\",\"alpha\":2}]}", "methods[0].alpha");
  refused("{" BASE ",\"methods\":[{\"method\":\"contrastive_search\",\"top_k\":0}]}", "methods[0].top_k");
  refused("{" BASE ",\"amateur\":\"a\",\"methods\":[{\"method\":\"contrastive_decoding\",\"tau_ama\":0}]}",
          "methods[0].tau_ama");
  refused("{" BASE ",\"methods\":[{\"method\":\"contrastive_decoding\"}]}", "amateur");
  refused("{" BASE ",\"amateur\":\"a\"" ",\"methods\":[{\"method\":\"greedy\"}]}", "amateur");
  refused("{" BASE ",\"amateur\":\"a\",\"methods\":[{\"method\":\"contrastive_decoding\",\"alpha\":0}]}",
          "methods[0].alpha");
  refused("{" BASE ",\"methods\":[{\"method\":\"dola\",\"relative_top\":0}]}", "methods[0].relative_top");
  refused("{" BASE ",\"methods\":[{\"method\":\"greedy\"},{\"method\":\"dola\",\"relative_top\":0}]}",
          "methods[1].relative_top");
  refused("{" BASE ",\"methods\":[{\"method\":\"cad\",\"alpha\":-1}]}", "methods[0].alpha");
  refused("{" BASE ",\"methods\":[{\"method\":\"adacad\",\"alpha_floor\":2}]}", "methods[0].alpha_floor");
  refused("{" BASE ",\"methods\":[{\"method\":\"dola\",\"layers\":\"middle\"}]}", "methods[0].layers");
  refused("{" BASE ",\"methods\":[{\"method\":\"dola\",\"layers\":[]}]}", "methods[0].layers");
  refused("{" BASE ",\"methods\":[{\"method\":\"dola\",\"layers\":[-1]}]}", "methods[0].layers[0]");
  refused("{" BASE ",\"methods\":[{\"method\":\"combine\"}]}", "methods[0].weights");
  refused("{" BASE ",\"methods\":[{\"method\":\"combine\",\"weights\":[1]}]}", "methods[0].weights");
  refused("{" BASE ",\"methods\":[3]}", "methods[0]");
  char buf[512];
  snprintf(buf, sizeof buf, "{" BASE "%s,\"max_new_tokens\":0}", g);
  refused(buf, "max_new_tokens");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"eos\":1}", g);
  refused(buf, "eos");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"seeds\":[]}", g);
  refused(buf, "seeds");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"seeds\":[1.5]}", g);
  refused(buf, "seeds[0]");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"batch\":0}", g);
  refused(buf, "batch");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"threads\":-1}", g);
  refused(buf, "threads");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"metrics\":{\"scorer\":\"\"}}", g);
  refused(buf, "metrics.scorer");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"metrics\":{\"encoder\":\"\"}}", g);
  refused(buf, "metrics.encoder");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"metrics\":{\"mauve\":1}}", g);
  refused(buf, "metrics.mauve");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"metrics\":{\"max_len\":-1}}", g);
  refused(buf, "metrics.max_len");
  snprintf(buf, sizeof buf, "{" BASE "%s,\"steps\":3}", g);
  refused(buf, "steps");
}

/* Every spec the parser accepts runs in its generator: the boundary values
 * of each method's keys, parsed, checked against tiny models
 * (deval_check_models) and generated for 2 tokens as deval's gen_batch
 * calls generate_* (a refusal there after earlier methods' work is what
 * the parse-time ranges prevent). */
static int gen(decoder *d, decoder *ama, const deval_method *m, foil_err *err) {
  const int32_t ids[2 * 6] = {1, 2, 3, 4, 5, 6, 2, 3, 0, 0, 0, 0};
  const int lens1[1] = {6}, lens2[2] = {6, 2};
  int32_t out[2];
  int out_len[1];
  generate_opts o = m->o;
  o.max_new_tokens = 2, o.eos_id = 0, o.seed = 1, o.first_row = 0;
  switch (m->method) {
  case DEVAL_GREEDY:
  case DEVAL_SAMPLE: return generate_plain(d, ids, lens1, 1, 6, &o, out, out_len, err);
  case DEVAL_BEAM: return generate_beam(d, ids, lens1, 1, 6, &m->beam, &o, out, out_len, err);
  case DEVAL_CS: return generate_cs(d, ids, lens1, 1, 6, &m->cs, &o, out, out_len, err);
  case DEVAL_CD: return generate_cd(d, ama, ids, lens1, 1, 6, &m->cd, &o, out, out_len, err);
  case DEVAL_DOLA: return generate_dola(d, ids, lens1, 1, 6, &m->dola, &o, out, out_len, err);
  default: {
    generate_combine_cfg cc = {.n_variants = 2, .weights = m->weights, .adaptive = m->method == DEVAL_ADACAD,
                               .alpha_floor = m->alpha_floor};
    return generate_combine(d, ids, lens2, 1, 6, &cc, &o, out, out_len, NULL, err);
  }
  }
}

static void test_parsed_specs_generate(void) {
  decoder_config mc, ac;
  decoder_config_default(&mc);
  mc.n_layers = 4, mc.d_model = 8, mc.n_heads = 2, mc.vocab = 16, mc.max_len = 16, mc.dropout = 0;
  ac = mc;
  ac.n_layers = 1, ac.max_len = 10;
  decoder *d = NULL, *a = NULL;
  foil_err err = {0};
  CHECK(decoder_config_check(&mc, &err) == 0 && decoder_config_check(&ac, &err) == 0);
  CHECKF(decoder_new(&d, &mc, &err) == 0 && decoder_init(d, 1, &err) == 0, "%s", err.msg);
  CHECKF(decoder_new(&a, &ac, &err) == 0 && decoder_init(a, 2, &err) == 0, "%s", err.msg);
  if (!d || !a) return;
  static const char *const methods[] = {
      "{\"method\":\"greedy\",\"repetition_penalty\":0.001}",
      "{\"method\":\"greedy\",\"repetition_penalty\":100}",
      "{\"method\":\"sample\",\"temperature\":0.0001,\"top_k\":16777216,\"top_p\":0.000001}",
      "{\"method\":\"sample\",\"temperature\":100,\"top_k\":1,\"top_p\":1}",
      "{\"method\":\"beam\",\"num_beams\":1,\"length_penalty\":-10,\"early_stopping\":true}",
      "{\"method\":\"beam\",\"num_beams\":64,\"length_penalty\":10,\"repetition_penalty\":100}",
      "{\"method\":\"contrastive_search\",\"top_k\":1,\"alpha\":0}",
      "{\"method\":\"contrastive_search\",\"top_k\":16,\"alpha\":1,\"repetition_penalty\":0.001}",
      "{\"method\":\"contrastive_decoding\",\"alpha\":0.000001,\"beta\":0,\"tau_ama\":0.0001,\"num_beams\":1}",
      ("{\"method\":\"contrastive_decoding\",\"alpha\":1,\"beta\":100,\"tau_ama\":100,\"num_beams\":64,"
       "\"length_penalty\":-10,\"early_stopping\":true,\"ignore_prefix\":false}"),
      "{\"method\":\"cad\",\"alpha\":0,\"do_sample\":true,\"temperature\":0.0001}",
      "{\"method\":\"cad\",\"alpha\":100,\"top_k\":1,\"top_p\":0.000001}",
      "{\"method\":\"adacad\",\"alpha_floor\":1,\"do_sample\":true}",
      "{\"method\":\"dola\",\"relative_top\":0.000001,\"layers\":\"low\"}",
      "{\"method\":\"dola\",\"relative_top\":1,\"layers\":[0,2,4095],\"do_sample\":true,\"top_p\":0.5}",
      "{\"method\":\"combine\",\"weights\":[-100,1e6],\"repetition_penalty\":100}",
  };
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
    char json[1024];
    snprintf(json, sizeof json, "{" BASE "%s,\"methods\":[%s]}", strstr(methods[i], "contrastive_decoding") ?
             ",\"amateur\":\"a\"" : "", methods[i]);
    deval_spec s;
    int rc = deval_spec_parse(&s, json, &err);
    CHECKF(rc == 0, "%s: %s", methods[i], err.msg);
    if (rc) continue;
    s.max_new_tokens = 2;
    int cap, cd_cap;
    rc = deval_check_models(&s, &mc, s.amateur ? &ac : NULL, 0, &cap, &cd_cap, &err);
    const int whole = s.methods[0].method == DEVAL_CD && !s.methods[0].cd.ignore_prefix; /* amateur max_len 10 - 2 */
    CHECKF(rc == 0 && cap == 14 && cd_cap == (whole ? 8 : 14), "%s: check %d cap %d/%d %s", methods[i], rc, cap,
           cd_cap, err.msg);
    rc = gen(d, a, &s.methods[0], &err);
    CHECKF(rc == 0, "%s: the generator refuses what the spec accepted: %s", methods[i], err.msg);
    deval_spec_free(&s);
  }
  decoder_destroy(&d);
  decoder_destroy(&a);
}

/* The prompt caps (review A2): the model's max_len cuts every method's
 * prompts; the amateur's only contrastive decoding's, and only without
 * ignore_prefix (with it the amateur needs 1 + max_new_tokens positions).
 * And the checks that need the models, each naming its key. */
static void models_case(const char *methods, const decoder_config *mc, const decoder_config *ac, int eos, int want_rc,
                        const char *key, int want_cap, int want_cd) {
  char json[1024];
  snprintf(json, sizeof json, "{" BASE "%s,\"max_new_tokens\":64,\"methods\":[%s]}", ac ? ",\"amateur\":\"a\"" : "",
           methods);
  deval_spec s;
  foil_err err = {0};
  int rc = deval_spec_parse(&s, json, &err);
  CHECKF(rc == 0, "%s: %s", json, err.msg);
  if (rc) return;
  int cap = -1, cd = -1;
  rc = deval_check_models(&s, mc, ac, eos, &cap, &cd, &err);
  if (want_rc)
    CHECKF(rc == want_rc && strstr(err.msg, key), "%s -> rc %d \"%s\" (wanted the key %s)", methods, rc, err.msg, key);
  else
    CHECKF(rc == 0 && cap == want_cap && cd == want_cd, "%s -> rc %d cap %d cd_cap %d (wanted %d %d) %s", methods, rc,
           cap, cd, want_cap, want_cd, err.msg);
  deval_spec_free(&s);
}

static void test_check_models(void) {
  decoder_config mc = {.n_layers = 12, .d_model = 64, .n_heads = 4, .vocab = 50, .max_len = 1024};
  decoder_config ac = mc;
  ac.n_layers = 2, ac.max_len = 128;
  const char *g = "{\"method\":\"greedy\"},{\"method\":\"beam\"}";
  /* the review's case: expert 1024, amateur 128, 64 new tokens: greedy and
   * beam keep 960 prompt tokens (they were cut to 64); CD with ignore_prefix too */
  char m[512];
  snprintf(m, sizeof m, "%s,{\"method\":\"contrastive_decoding\"}", g);
  models_case(m, &mc, &ac, 3, 0, NULL, 960, 960);
  models_case(g, &mc, NULL, 3, 0, NULL, 960, 960);
  /* without ignore_prefix: that method's prompts fit the amateur (64), the others' not */
  snprintf(m, sizeof m, "%s,{\"method\":\"contrastive_decoding\",\"ignore_prefix\":false}", g);
  models_case(m, &mc, &ac, 3, 0, NULL, 960, 64);
  /* an amateur shorter than the model's prompts never shortens them: max_len 65 holds 1 + 64 */
  decoder_config a65 = ac;
  a65.max_len = 65;
  models_case("{\"method\":\"contrastive_decoding\"}", &mc, &a65, 3, 0, NULL, 960, 960);
  models_case("{\"method\":\"contrastive_decoding\",\"ignore_prefix\":false}", &mc, &a65, 3, FOIL_EINVAL,
              "methods[0]", 0, 0);
  a65.max_len = 64;
  models_case("{\"method\":\"greedy\"},{\"method\":\"contrastive_decoding\"}", &mc, &a65, 3, FOIL_EINVAL,
              "methods[1]", 0, 0);
  /* the model's own limits */
  decoder_config small = mc;
  small.max_len = 65;
  models_case(g, &small, NULL, 3, FOIL_EINVAL, "max_new_tokens", 0, 0);
  models_case(g, &mc, NULL, 50, FOIL_EINVAL, "eos", 0, 0);
  models_case(g, &mc, NULL, -1, 0, NULL, 960, 960);
  models_case("{\"method\":\"contrastive_search\",\"top_k\":51}", &mc, NULL, 3, FOIL_EINVAL, "methods[0].top_k", 0, 0);
  models_case("{\"method\":\"contrastive_search\",\"top_k\":50}", &mc, NULL, 3, 0, NULL, 960, 960);
  models_case("{\"method\":\"dola\",\"layers\":[12,40]}", &mc, NULL, 3, FOIL_EINVAL, "methods[0].layers", 0, 0);
  models_case("{\"method\":\"dola\",\"layers\":[11,40]}", &mc, NULL, 3, 0, NULL, 960, 960);
  models_case("{\"method\":\"dola\",\"layers\":\"low\"}", &mc, NULL, 3, 0, NULL, 960, 960);
  decoder_config l3 = mc; /* HF's "low" of 3 layers: range(2, 1, 2), empty */
  l3.n_layers = 3;
  models_case("{\"method\":\"dola\",\"layers\":\"low\"}", &l3, NULL, 3, FOIL_EINVAL, "methods[0].layers", 0, 0);
}

int main(void) {
  RUN(test_defaults);
  RUN(test_example);
  RUN(test_refusals);
  RUN(test_parsed_specs_generate);
  RUN(test_check_models);
  TEST_EXIT();
}
