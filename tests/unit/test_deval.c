/* test_deval.c — the decode-eval spec (worker/run/deval.h): every key's
 * default (generate.h's for the methods), the example parses, and bad
 * specs are refused naming the key. */
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

int main(void) {
  RUN(test_defaults);
  RUN(test_example);
  RUN(test_refusals);
  TEST_EXIT();
}
