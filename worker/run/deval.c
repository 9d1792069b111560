/* deval.c — the decode-eval job (see deval.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "worker/run/deval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "kernels/kernels.h"
#include "model/decode.h"
#include "model/decoder.h"
#include "model/devmem.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "storage/ckpt.h"
#include "storage/h5io.h"
#include "storage/lmcorpus.h"
#include "worker/run/jspec.h"
#include "worker/run/jobdir.h"
#include "worker/run/jsonl.h"
#include "worker/run/progress.h"
#include "worker/run/textscore.h"

/* ---- the spec ------------------------------------------------------------------------ */

static const char *const METHOD_NAMES[] = {"greedy", "beam", "sample", "contrastive_search",
                                           "contrastive_decoding", "cad", "adacad", "dola",
                                           "combine", NULL};

void deval_spec_free(deval_spec *s) {
  free(s->name), free(s->model), free(s->amateur), free(s->dataset), free(s->file);
  for (int i = 0; i < s->n_methods; i++) free(s->methods[i].name);
  free(s->encoder), free(s->scorer);
  memset(s, 0, sizeof *s);
}

static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (!n || n > 128) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
          *s == '_' || *s == '-'))
      return 0;
  return 1;
}

static int samples(const deval_method *m) { return m->o.do_sample; }

/* methods[i].KEY: the number (or boolean) at key of the method object o,
 * its error path "methods[i].KEY" (p is "methods[i]"). */
static double method_number(jspec *c, const cJSON *o, const char *p, const char *key, double def, double lo,
                            double hi, int integer) {
  char k[200];
  snprintf(k, sizeof k, "%s.%s", p, key);
  return jspec_number(c, o, key, k, def, lo, hi, integer, 0);
}

/* method_number in (0, hi]: the generators refuse 0 (a spec is checked
 * before any method runs, so a late refusal loses no finished work). */
static double method_positive(jspec *c, const cJSON *o, const char *p, const char *key, double def, double hi) {
  double v = method_number(c, o, p, key, def, 0, hi, 0);
  if (!c->rc && !(v > 0)) jspec_fail(c, "%s.%s must be in (0, %g] (got %g)", p, key, hi, v);
  return v;
}

static int method_bool(jspec *c, const cJSON *o, const char *p, const char *key, int def) {
  char k[200];
  snprintf(k, sizeof k, "%s.%s", p, key);
  return jspec_boolean(c, o, key, k, def);
}

/* The sampling/processor keys of greedy, sample, cad, adacad, dola, combine. */
static void parse_processors(jspec *c, const cJSON *o, const char *p, deval_method *m, int def_sample, float def_rep,
                             int sampling_keys) {
  m->o.repetition_penalty = (float)method_number(c, o, p, "repetition_penalty", def_rep, 1e-3, 100, 0);
  m->o.do_sample = def_sample;
  if (!sampling_keys) return;
  if (def_sample == 0) m->o.do_sample = method_bool(c, o, p, "do_sample", 0);
  m->o.temperature = (float)method_number(c, o, p, "temperature", 1, 1e-4, 100, 0);
  m->o.top_k = (int)method_number(c, o, p, "top_k", 0, 0, 1 << 24, 1);
  m->o.top_p = (float)method_number(c, o, p, "top_p", 1, 1e-6, 1, 0);
}

/* Every key's range is what its generator accepts (generate.h), so a spec
 * that parses never fails in generate_* on its options; what depends on the
 * models is deval_check_models', at setup, also before any method runs. */
static void parse_method(jspec *c, const cJSON *o, int i, deval_method *m) {
  char p[64], k[200];
  snprintf(p, sizeof p, "methods[%d]", i);
  if (!cJSON_IsObject(o)) {
    jspec_fail(c, "%s must be an object {\"method\": ..., parameters}", p);
    return;
  }
  generate_opts_default(&m->o);
  snprintf(k, sizeof k, "%s.method", p);
  const cJSON *mv = cJSON_GetObjectItemCaseSensitive(o, "method");
  if (!mv && !c->rc) {
    jspec_fail(c, "%s is required (greedy, beam, sample, contrastive_search, contrastive_decoding, cad, adacad, "
               "dola, combine)", k);
    return;
  }
  m->method = jspec_choice(c, o, "method", k, 0, METHOD_NAMES);
  if (c->rc) return;
  snprintf(k, sizeof k, "%s.name", p);
  m->name = jspec_string(c, o, "name", k, METHOD_NAMES[m->method], 0);
  if (!c->rc && (!m->name[0] || strlen(m->name) > 64))
    jspec_fail(c, "%s must be 1 to 64 characters (got \"%.80s\")", k, m->name);
  static const char *const k_greedy[] = {"name", "method", "repetition_penalty", NULL};
  static const char *const k_sample[] = {"name", "method", "repetition_penalty", "temperature", "top_k", "top_p",
                                         NULL};
  static const char *const k_beam[] = {"name", "method", "num_beams", "length_penalty", "early_stopping",
                                       "repetition_penalty", NULL};
  static const char *const k_cs[] = {"name", "method", "top_k", "alpha", "repetition_penalty", NULL};
  static const char *const k_cd[] = {"name", "method", "alpha", "beta", "tau_ama", "num_beams", "length_penalty",
                                     "early_stopping", "ignore_prefix", NULL};
  static const char *const k_cad[] = {"name", "method", "repetition_penalty", "do_sample", "temperature", "top_k",
                                      "top_p", "alpha", NULL};
  static const char *const k_adacad[] = {"name", "method", "repetition_penalty", "do_sample", "temperature",
                                         "top_k", "top_p", "alpha_floor", NULL};
  static const char *const k_dola[] = {"name", "method", "repetition_penalty", "do_sample", "temperature", "top_k",
                                       "top_p", "layers", "relative_top", NULL};
  static const char *const k_combine[] = {"name", "method", "repetition_penalty", "do_sample", "temperature",
                                          "top_k", "top_p", "weights", NULL};
  static const char *const *const keys[DEVAL_N] = {k_greedy, k_beam, k_sample, k_cs, k_cd, k_cad, k_adacad, k_dola,
                                               k_combine};
  jspec_only_keys(c, o, p, keys[m->method]);
  switch (m->method) {
  case DEVAL_GREEDY: parse_processors(c, o, p, m, 0, 1, 0); break;
  case DEVAL_SAMPLE: parse_processors(c, o, p, m, 1, 1, 1); break;
  case DEVAL_BEAM:
    generate_beam_default(&m->beam);
    m->beam.num_beams = (int)method_number(c, o, p, "num_beams", m->beam.num_beams, 1, 64, 1);
    m->beam.length_penalty = (float)method_number(c, o, p, "length_penalty", m->beam.length_penalty, -10, 10, 0);
    m->beam.early_stopping = method_bool(c, o, p, "early_stopping", m->beam.early_stopping);
    parse_processors(c, o, p, m, 0, 1, 0);
    break;
  case DEVAL_CS:
    generate_cs_default(&m->cs);
    m->cs.top_k = (int)method_number(c, o, p, "top_k", m->cs.top_k, 1, 64, 1);
    m->cs.alpha = (float)method_number(c, o, p, "alpha", m->cs.alpha, 0, 1, 0);
    parse_processors(c, o, p, m, 0, 1, 0);
    break;
  case DEVAL_CD:
    generate_cd_default(&m->cd);
    m->cd.alpha = (float)method_positive(c, o, p, "alpha", m->cd.alpha, 1); /* generate_cd: 0 < alpha <= 1 */
    m->cd.beta = (float)method_number(c, o, p, "beta", m->cd.beta, 0, 100, 0);
    m->cd.tau_ama = (float)method_number(c, o, p, "tau_ama", m->cd.tau_ama, 1e-4, 100, 0);
    m->cd.num_beams = (int)method_number(c, o, p, "num_beams", m->cd.num_beams, 1, 64, 1);
    m->cd.length_penalty = (float)method_number(c, o, p, "length_penalty", m->cd.length_penalty, -10, 10, 0);
    m->cd.early_stopping = method_bool(c, o, p, "early_stopping", m->cd.early_stopping);
    m->cd.ignore_prefix = method_bool(c, o, p, "ignore_prefix", m->cd.ignore_prefix);
    break;
  case DEVAL_CAD: {
    float a = (float)method_number(c, o, p, "alpha", 0.5, 0, 100, 0);
    generate_cad_weights(a, m->weights);
    parse_processors(c, o, p, m, 0, 1, 1);
    break;
  }
  case DEVAL_ADACAD:
    m->alpha_floor = (float)method_number(c, o, p, "alpha_floor", 0, 0, 1, 0);
    parse_processors(c, o, p, m, 0, 1, 1);
    break;
  case DEVAL_DOLA: {
    generate_dola_default(&m->dola);
    snprintf(k, sizeof k, "%s.layers", p);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "layers");
    if (cJSON_IsArray(l)) {
      int n = cJSON_GetArraySize(l);
      if (n < 1 || n > DEVAL_MAX_DOLA) jspec_fail(c, "%s must list 1 to %d layers (got %d)", k, DEVAL_MAX_DOLA, n);
      for (int t = 0; !c->rc && t < n; t++) {
        const cJSON *e = cJSON_GetArrayItem(l, t);
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 4096 ||
            e->valuedouble != floor(e->valuedouble))
          jspec_fail(c, "%s[%d] must be a layer index >= 0", k, t);
        else m->dola_list[t] = (int)e->valuedouble;
      }
      m->dola.layers_kind = DOLA_LIST, m->dola.layers = m->dola_list, m->dola.n_layers = n;
    } else if (l && !cJSON_IsString(l)) {
      jspec_fail(c, "%s must be \"high\", \"low\" or a list of layer indices", k);
    } else if (l) {
      static const char *const kinds[] = {"low", "high", NULL};
      m->dola.layers_kind = jspec_choice(c, o, "layers", k, DOLA_HIGH, kinds);
    }
    m->dola.relative_top = (float)method_positive(c, o, p, "relative_top", m->dola.relative_top, 1);
    parse_processors(c, o, p, m, 0, 1.2f, 1);
    break;
  }
  case DEVAL_COMBINE: {
    snprintf(k, sizeof k, "%s.weights", p);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "weights");
    if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(w, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(w, 1)))
      jspec_fail(c, "%s is required: [w_context, w_plain], two numbers (the prompt with its context, without)", k);
    else
      m->weights[0] = (float)cJSON_GetArrayItem(w, 0)->valuedouble,
      m->weights[1] = (float)cJSON_GetArrayItem(w, 1)->valuedouble;
    parse_processors(c, o, p, m, 0, 1, 1);
    break;
  }
  }
}

int deval_spec_parse(deval_spec *s, const char *json, foil_err *err) {
  memset(s, 0, sizeof *s);
  cJSON *root = cJSON_Parse(json);
  if (!root || !cJSON_IsObject(root)) {
    const char *at = cJSON_GetErrorPtr();
    cJSON_Delete(root);
    return foil_err_set(err, FOIL_EINVAL, "the spec is not a JSON object%s%.40s", at ? " near: " : "", at ? at : "");
  }
  jspec c = {err, 0};
  static const char *const top[] = {"kind", "name", "model", "amateur", "prompts", "methods", "max_new_tokens",
                                    "eos", "seeds", "batch", "threads", "device", "metrics", "job", NULL};
  jspec_only_keys(&c, root, "", top);
  char *kind = jspec_string(&c, root, "kind", "kind", "decode-eval", 0);
  if (kind && strcmp(kind, "decode-eval"))
    jspec_fail(&c, "kind must be \"decode-eval\" for this job (got \"%s\")", kind);
  free(kind);
  s->name = jspec_string(&c, root, "name", "name", "decode-eval", 0);
  if (!c.rc && !name_ok(s->name))
    jspec_fail(&c, "name \"%.200s\" may hold only 1 to 128 letters, digits, '.', '_' and '-'", s->name);
  s->model = jspec_string(&c, root, "model", "model", NULL, 1);
  if (!c.rc && !s->model[0]) jspec_fail(&c, "model must not be empty (a decoder checkpoint or a job directory)");
  s->amateur = jspec_string(&c, root, "amateur", "amateur", NULL, 0);
  if (!c.rc && s->amateur && !s->amateur[0]) jspec_fail(&c, "amateur must not be empty");

  const cJSON *po = jspec_object(&c, root, "prompts", "prompts");
  if (!po && !c.rc) jspec_fail(&c, "prompts is required: {\"dataset\": NAME} (an lm dataset) or {\"file\": PATH}");
  static const char *const pkeys[] = {"dataset", "file", "n_prompts", "query_words", NULL};
  jspec_only_keys(&c, po, "prompts", pkeys);
  s->dataset = jspec_string(&c, po, "dataset", "prompts.dataset", NULL, 0);
  s->file = jspec_string(&c, po, "file", "prompts.file", NULL, 0);
  if (!c.rc && po && !!s->dataset == !!s->file)
    jspec_fail(&c, "prompts needs exactly one of \"dataset\" or \"file\"");
  if (!c.rc && s->dataset && !name_ok(s->dataset))
    jspec_fail(&c, "prompts.dataset \"%.200s\" may hold only letters, digits, '.', '_' and '-'", s->dataset);
  s->n_prompts = (long)jspec_number(&c, po, "n_prompts", "prompts.n_prompts", -1, 1, 1e9, 1, 0);
  s->query_words = (int)jspec_number(&c, po, "query_words", "prompts.query_words", 8, 1, 64, 1, 0);

  const cJSON *ml = cJSON_GetObjectItemCaseSensitive(root, "methods");
  if (!c.rc && !ml) jspec_fail(&c, "methods is required: a list of {\"method\": ..., parameters}");
  if (!c.rc && (!cJSON_IsArray(ml) || cJSON_GetArraySize(ml) < 1 || cJSON_GetArraySize(ml) > DEVAL_MAX_METHODS))
    jspec_fail(&c, "methods must be a list of 1 to %d objects", DEVAL_MAX_METHODS);
  int need_amateur = 0;
  for (int i = 0; !c.rc && i < cJSON_GetArraySize(ml); i++) {
    deval_method *m = &s->methods[i];
    parse_method(&c, cJSON_GetArrayItem(ml, i), i, m);
    if (m->name) s->n_methods = i + 1;
    if (c.rc) break;
    need_amateur |= m->method == DEVAL_CD;
    for (int j = 0; j < i; j++)
      if (!strcmp(s->methods[j].name, m->name))
        jspec_fail(&c, "methods[%d].name \"%s\" is used twice (methods[%d]); give each a unique name", i, m->name, j);
  }
  if (!c.rc && need_amateur && !s->amateur)
    jspec_fail(&c, "amateur is required by contrastive_decoding (a smaller decoder checkpoint or job directory)");
  if (!c.rc && !need_amateur && s->amateur)
    jspec_fail(&c, "amateur is used only by contrastive_decoding, and no method is contrastive_decoding");

  s->max_new_tokens = (int)jspec_number(&c, root, "max_new_tokens", "max_new_tokens", 64, 1, 4096, 1, 0);
  s->eos = jspec_boolean(&c, root, "eos", "eos", 1);
  const cJSON *sl = cJSON_GetObjectItemCaseSensitive(root, "seeds");
  if (!sl) {
    s->n_seeds = 1, s->seeds[0] = 0;
  } else if (!c.rc &&
             (!cJSON_IsArray(sl) || cJSON_GetArraySize(sl) < 1 || cJSON_GetArraySize(sl) > DEVAL_MAX_SEEDS)) {
    jspec_fail(&c, "seeds must be a list of 1 to %d integers >= 0", DEVAL_MAX_SEEDS);
  } else {
    for (int i = 0; !c.rc && i < cJSON_GetArraySize(sl); i++) {
      const cJSON *e = cJSON_GetArrayItem(sl, i);
      if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 9007199254740991.0 ||
          e->valuedouble != floor(e->valuedouble))
        jspec_fail(&c, "seeds[%d] must be an integer >= 0", i);
      else s->seeds[s->n_seeds++] = (uint64_t)e->valuedouble;
    }
  }
  s->batch = (int)jspec_number(&c, root, "batch", "batch", 8, 1, 4096, 1, 0);
  s->threads = (int)jspec_number(&c, root, "threads", "threads", 0, 0, 4096, 1, 0);
  static const char *const devices[] = {"cpu", "cuda", NULL}; /* DEVMEM_CPU, DEVMEM_CUDA */
  s->device = jspec_choice(&c, root, "device", "device", DEVMEM_CPU, devices);

  s->scorer_model = 1;
  const cJSON *mo = jspec_object(&c, root, "metrics", "metrics");
  if (mo) {
    static const char *const mkeys[] = {"encoder", "scorer", "max_len", NULL};
    jspec_only_keys(&c, mo, "metrics", mkeys);
    s->encoder = jspec_string(&c, mo, "encoder", "metrics.encoder", NULL, 0);
    if (!c.rc && s->encoder && !s->encoder[0]) jspec_fail(&c, "metrics.encoder must not be empty");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(mo, "scorer");
    if (cJSON_IsBool(sc)) {
      s->scorer_model = cJSON_IsTrue(sc);
    } else if (sc) {
      s->scorer_model = 0;
      s->scorer = jspec_string(&c, mo, "scorer", "metrics.scorer", NULL, 0);
      if (!c.rc && !s->scorer[0]) jspec_fail(&c, "metrics.scorer must not be empty");
    }
    s->metrics_max_len = (int)jspec_number(&c, mo, "max_len", "metrics.max_len", 0, 0, 1 << 20, 1, 0);
  }
  jspec_object(&c, root, "job", "job");
  cJSON_Delete(root);
  if (c.rc) deval_spec_free(s);
  return c.rc;
}

int deval_spec_check(const char *json, foil_err *err) {
  deval_spec s;
  int rc = deval_spec_parse(&s, json, err);
  if (!rc) deval_spec_free(&s);
  return rc;
}

int deval_check_models(const deval_spec *s, const decoder_config *model, const decoder_config *amateur, int eos_id,
                       int *cap, int *cd_cap, foil_err *err) {
  const int M = s->max_new_tokens;
  *cap = *cd_cap = model->max_len - M;
  if (*cap < 2)
    return foil_err_set(err, FOIL_EINVAL, "max_new_tokens %d leaves no room for a prompt in the model's max_len %d",
                        M, model->max_len);
  if (eos_id >= model->vocab)
    return foil_err_set(err, FOIL_EINVAL, "eos: the end-of-text id %d is outside the model's vocabulary of %d", eos_id,
                        model->vocab);
  for (int i = 0; i < s->n_methods; i++) {
    const deval_method *m = &s->methods[i];
    if (m->method == DEVAL_CS && m->cs.top_k > model->vocab)
      return foil_err_set(err, FOIL_EINVAL, "methods[%d].top_k %d exceeds the model's vocabulary of %d", i, m->cs.top_k,
                          model->vocab);
    if (m->method == DEVAL_DOLA) {
      int lay[DEVAL_MAX_DOLA];
      foil_err e = {0};
      if (decode_dola_layers(model->n_layers, m->dola.layers_kind, m->dola.layers, m->dola.n_layers, lay,
                             DEVAL_MAX_DOLA, &e) < 0)
        return foil_err_set(err, FOIL_EINVAL, "methods[%d].layers for a model of %d layers: %.300s", i,
                            model->n_layers, e.msg);
    }
    if (m->method != DEVAL_CD) continue;
    if (!amateur) return foil_err_set(err, FOIL_EINVAL, "methods[%d]: contrastive_decoding needs an amateur", i);
    if (m->cd.ignore_prefix) {
      /* the amateur sees the last prompt token only, at position 0 */
      if (1 + M > amateur->max_len)
        return foil_err_set(err, FOIL_EINVAL, "methods[%d] (contrastive_decoding): the amateur's max_len %d is below "
                            "1 + max_new_tokens = %d", i, amateur->max_len, 1 + M);
    } else {
      /* the amateur sees the whole prompt: this method's prompts are cut to fit it */
      int ac = amateur->max_len - M;
      if (ac < 2)
        return foil_err_set(err, FOIL_EINVAL, "methods[%d] (contrastive_decoding, ignore_prefix false): max_new_tokens "
                            "%d leaves no room for a prompt in the amateur's max_len %d", i, M, amateur->max_len);
      if (ac < *cd_cap) *cd_cap = ac;
    }
  }
  return FOIL_OK;
}

/* ---- the job ------------------------------------------------------------------------- */

typedef struct {
  int32_t *ids[2]; /* variant 0 (whole prompt), variant 1 (query only): [EOT] tok(text), cut to cap */
  int len[2];
  int eot[2];      /* 1: ids[v][0] is the synthetic EOT (the variant was not cut) */
} prompt_toks;

typedef struct {
  const deval_args *a;
  comm *c;
  int rank, world;
  deval_spec s;
  char *spec_json;
  char model_path[PATH_MAX], amateur_path[PATH_MAX], encoder_path[PATH_MAX], scorer_path[PATH_MAX];
  int64_t step;
  decoder *dec, *ama;
  tokenizer *tok;
  size_t n;                 /* prompts */
  char **prompt, **query, **reference; /* variant-0 text, variant-1 text, reference (NULL: none) */
  prompt_toks *pt;
  int T;                    /* longest tokenized variant */
  size_t cut;               /* prompts whose tokens were cut */
  int cd_cap;               /* prompt tokens of contrastive_decoding without ignore_prefix */
  size_t cd_cut;            /* prompts cut further for it (0 when no such method) */
  FILE *log, *metrics;
  progress *prog;
  char job_dir[4096];
} job;

/* One log line on rank 0: the job's log and, unless quiet, stderr. */
#define logf_(j, level, ...) \
  do { \
    if ((j)->rank == 0) log_tee((j)->log, !(j)->a->quiet, level, "decode-eval", __VA_ARGS__); \
  } while (0)

/* A checkpoint file, or a job directory's newest usable one (refresh's rule), as an absolute path. */
static int resolve_ckpt(job *j, const char *key, const char *p, char out[PATH_MAX], foil_err *err) {
  char *skipped = NULL;
  int rc = ckpt_resolve(key, p, out, &skipped, err);
  if (skipped) logf_(j, "WARN", "%s: unusable checkpoints skipped: %s", key, skipped);
  free(skipped);
  return rc;
}

static int add_prompt(job *j, size_t *cap, const char *v0, const char *v1, const char *ref, foil_err *err) {
  if (j->n == *cap) {
    size_t nc = *cap ? 2 * *cap : 256;
    char **a = realloc(j->prompt, sizeof(char *) * nc);
    if (a) j->prompt = a;
    char **b = a ? realloc(j->query, sizeof(char *) * nc) : NULL;
    if (b) j->query = b;
    char **r = b ? realloc(j->reference, sizeof(char *) * nc) : NULL;
    if (r) j->reference = r;
    if (!r) return foil_err_set(err, FOIL_ENOMEM, "out of memory for the prompts");
    *cap = nc;
  }
  j->prompt[j->n] = strdup(v0);
  j->query[j->n] = strdup(v1);
  j->reference[j->n] = ref ? strdup(ref) : NULL;
  if (!j->prompt[j->n] || !j->query[j->n] || (ref && !j->reference[j->n])) {
    free(j->prompt[j->n]), free(j->query[j->n]), free(j->reference[j->n]);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for the prompts");
  }
  j->n++;
  return FOIL_OK;
}

/* The query of an lm prompt: from the start of its last q whitespace-separated words. */
static const char *lm_query(const char *p, int q) {
  const char *e = p + strlen(p);
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) e--;
  int words = 0;
  const char *s = e;
  while (s > p) {
    const char *w = s;
    while (w > p && !(w[-1] == ' ' || w[-1] == '\t' || w[-1] == '\n' || w[-1] == '\r')) w--;
    words++;
    s = w;
    if (words == q) return w;
    while (s > p && (s[-1] == ' ' || s[-1] == '\t' || s[-1] == '\n' || s[-1] == '\r')) s--;
  }
  return p;
}

typedef struct {
  job *j;
  size_t *cap, limit;
} prompt_walk;

/* A prompts file's row: "prompt" (non-empty), optional "context" (the
 * whole prompt is context + " " + prompt, the query the prompt alone) and
 * "reference". */
static int add_jsonl_prompt(void *ctx, const cJSON *o, const char *path, int line, foil_err *err) {
  prompt_walk *w = ctx;
  const cJSON *pv = cJSON_GetObjectItemCaseSensitive(o, "prompt"),
              *cv = cJSON_GetObjectItemCaseSensitive(o, "context"),
              *rv = cJSON_GetObjectItemCaseSensitive(o, "reference");
  if (!cJSON_IsString(pv) || !pv->valuestring[0])
    return foil_err_set(err, FOIL_EINVAL, "%s:%d: \"prompt\" must be a non-empty string", path, line);
  if (cv && !cJSON_IsString(cv) && !cJSON_IsNull(cv))
    return foil_err_set(err, FOIL_EINVAL, "%s:%d: \"context\" must be a string", path, line);
  if (rv && !cJSON_IsString(rv) && !cJSON_IsNull(rv))
    return foil_err_set(err, FOIL_EINVAL, "%s:%d: \"reference\" must be a string", path, line);
  const char *c = cJSON_IsString(cv) && cv->valuestring[0] ? cv->valuestring : NULL;
  char *whole = NULL;
  if (c) {
    size_t a = strlen(c), b = strlen(pv->valuestring);
    if (!(whole = malloc(a + b + 2))) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    memcpy(whole, c, a), whole[a] = ' ', memcpy(whole + a + 1, pv->valuestring, b + 1);
  }
  int rc = add_prompt(w->j, w->cap, whole ? whole : pv->valuestring, pv->valuestring,
                      cJSON_IsString(rv) ? rv->valuestring : NULL, err);
  free(whole);
  return !rc && w->j->n >= w->limit ? JSONL_STOP : rc; /* prompts.n: the lines after are not read */
}

static int load_prompts(job *j, foil_err *err) {
  const deval_spec *s = &j->s;
  size_t cap = 0, limit = s->n_prompts > 0 ? (size_t)s->n_prompts : (size_t)-1;
  int rc = FOIL_OK;
  if (s->dataset) {
    char path[4400];
    snprintf(path, sizeof path, "%s/datasets/%s/lm.h5", j->a->root, s->dataset);
    if (access(path, R_OK) != 0)
      return foil_err_set(err, FOIL_ENOTFOUND, "prompts: dataset '%s' is not prepared under %s (no %s): prepare it "
                          "with `foil data prepare lm` or check prompts.dataset and --root", s->dataset, j->a->root,
                          path);
    h5io *f = NULL;
    char **pr = NULL, **co = NULL;
    size_t np = 0, nc = 0;
    if ((rc = h5io_open(&f, path, LMCORPUS_FORMAT, err))) return rc;
    rc = h5io_read_strings(f, "prompts/prompt", &pr, &np, err);
    if (!rc) rc = h5io_read_strings(f, "prompts/continuation", &co, &nc, err);
    h5io_close(&f);
    if (!rc && np != nc)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: %zu prompts but %zu continuations", path, np, nc);
    for (size_t i = 0; !rc && i < np && i < limit; i++)
      rc = add_prompt(j, &cap, pr[i], lm_query(pr[i], s->query_words), co[i], err);
    h5io_free_strings(pr, np);
    h5io_free_strings(co, nc);
  } else {
    prompt_walk w = {j, &cap, limit};
    rc = jsonl_each(s->file, "one {\"prompt\", \"context\", \"reference\"} object per line", add_jsonl_prompt,
                    &w, err);
  }
  if (!rc && !j->n)
    rc = foil_err_set(err, FOIL_EINVAL, "prompts: %s holds no prompts", s->dataset ? s->dataset : s->file);
  return rc;
}

/* [EOT] tok(text), keeping the last cap tokens. */
static int tokenize(job *j, const char *text, int cap, int32_t **out, int *len, int *was_cut, foil_err *err) {
  size_t tl = strlen(text);
  int n = 0, max = (int)tl + 2;
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)(max + 1));
  if (!ids) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  ids[0] = tokenizer_pad_id(j->tok);
  int rc = tokenizer_encode(j->tok, text, tl, 0, ids + 1, max, &n, err);
  if (rc) {
    free(ids);
    return rc;
  }
  n += 1;
  *was_cut = n > cap;
  if (n > cap) memmove(ids, ids + (n - cap), sizeof(int32_t) * (size_t)cap), n = cap;
  *out = ids, *len = n;
  return FOIL_OK;
}

/* device "cuda": the model (and amateur) move to this rank's GPU after
 * loading on the host, as refresh moves its encoder. */
static int to_device(job *j, foil_err *err) {
  int rc = comm_job_gpu(j->c, 0, err);
  if (rc) return rc;
  decoder *g = NULL;
  if ((rc = decoder_clone_on(j->dec, DEVMEM_CUDA, &g, err))) return rc;
  decoder_destroy(&j->dec);
  j->dec = g;
  if (j->ama) {
    if ((rc = decoder_clone_on(j->ama, DEVMEM_CUDA, &g, err))) return rc;
    decoder_destroy(&j->ama);
    j->ama = g;
  }
  logf_(j, "INFO", "rank 0 generates on %s", comm_device(j->c));
  return FOIL_OK;
}

static int setup(job *j, foil_err *err) {
  const deval_args *a = j->a;
  int rc;
  if ((rc = foil_read_file(a->spec_path, &j->spec_json, NULL, err))) return rc;
  if ((rc = deval_spec_parse(&j->s, j->spec_json, err))) {
    char was[sizeof err->msg];
    snprintf(was, sizeof was, "%s", err->msg);
    return foil_err_set(err, rc, "%.200s: %.600s", a->spec_path, was);
  }
  const deval_spec *s = &j->s;
  kernels_set_threads(comm_rank_threads(j->c, s->threads));
  if (a->job_dir) snprintf(j->job_dir, sizeof j->job_dir, "%s", a->job_dir);
  else snprintf(j->job_dir, sizeof j->job_dir, "%s/jobs/decode-eval-%s", a->root, s->name);
  if (j->rank == 0 && (rc = jobdir_open(j->job_dir, NULL, &j->log, &j->metrics, &j->prog, err))) return rc;
  if ((rc = resolve_ckpt(j, "model", s->model, j->model_path, err))) return rc;
  if (s->amateur && (rc = resolve_ckpt(j, "amateur", s->amateur, j->amateur_path, err))) return rc;
  if (s->encoder && (rc = resolve_ckpt(j, "metrics.encoder", s->encoder, j->encoder_path, err))) return rc;
  if (s->scorer && (rc = resolve_ckpt(j, "metrics.scorer", s->scorer, j->scorer_path, err))) return rc;
  if (s->scorer_model) snprintf(j->scorer_path, sizeof j->scorer_path, "%s", j->model_path);
  if ((rc = ckpt_open_decoder(j->model_path, &j->dec, &j->tok, &j->step, err))) return rc;
  if (s->amateur) {
    if ((rc = ckpt_open_decoder(j->amateur_path, &j->ama, NULL, NULL, err))) return rc;
    if (decoder_cfg(j->ama)->vocab != decoder_cfg(j->dec)->vocab)
      return foil_err_set(err, FOIL_EINVAL, "amateur %s has a vocabulary of %d, the model %d: contrastive decoding "
                          "needs the same tokenizer", j->amateur_path, decoder_cfg(j->ama)->vocab,
                          decoder_cfg(j->dec)->vocab);
  }
  /* every method against the models and the prompt caps, before any runs */
  int cap;
  if ((rc = deval_check_models(s, decoder_cfg(j->dec), j->ama ? decoder_cfg(j->ama) : NULL,
                               s->eos ? (int)tokenizer_pad_id(j->tok) : -1, &cap, &j->cd_cap, err)))
    return rc;
  if (s->device == DEVMEM_CUDA && (rc = to_device(j, err))) return rc;
  if ((rc = load_prompts(j, err))) return rc;
  if (!(j->pt = calloc(j->n, sizeof *j->pt))) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < j->n; i++) {
    int c0 = 0, c1 = 0;
    rc = tokenize(j, j->prompt[i], cap, &j->pt[i].ids[0], &j->pt[i].len[0], &c0, err);
    if (!rc) rc = tokenize(j, j->query[i], cap, &j->pt[i].ids[1], &j->pt[i].len[1], &c1, err);
    if (rc) {
      char was[sizeof err->msg];
      snprintf(was, sizeof was, "%s", err->msg);
      return foil_err_set(err, rc, "prompt %zu: %.600s", i, was);
    }
    j->pt[i].eot[0] = !c0, j->pt[i].eot[1] = !c1;
    j->cut += c0 || c1;
    j->cd_cut += j->cd_cap < cap && j->pt[i].len[0] > j->cd_cap;
    for (int v = 0; v < 2; v++)
      if (j->pt[i].len[v] > j->T) j->T = j->pt[i].len[v];
  }
  return rc;
}

static void job_free(job *j) {
  deval_spec_free(&j->s);
  free(j->spec_json);
  decoder_destroy(&j->dec);
  decoder_destroy(&j->ama);
  tokenizer_destroy(&j->tok);
  for (size_t i = 0; i < j->n; i++) {
    free(j->prompt[i]), free(j->query[i]), free(j->reference[i]);
    if (j->pt) free(j->pt[i].ids[0]), free(j->pt[i].ids[1]);
  }
  free(j->prompt), free(j->query), free(j->reference), free(j->pt);
  if (j->log) fclose(j->log);
  if (j->metrics) fclose(j->metrics);
  progress_destroy(&j->prog);
}

/* One generate call over prompts [lo, hi) with method m and seed. */
static int gen_batch(job *j, const deval_method *m, uint64_t seed, size_t lo, size_t hi, int32_t *out, int *out_len,
                     foil_err *err) {
  const int P = (int)(hi - lo), M = j->s.max_new_tokens;
  const int two = m->method == DEVAL_CAD || m->method == DEVAL_ADACAD || m->method == DEVAL_COMBINE;
  const int rows = two ? 2 * P : P;
  /* contrastive decoding without ignore_prefix: its amateur sees the whole
   * prompt, so both models get the last cd_cap tokens (deval_check_models) */
  const int keep = m->method == DEVAL_CD && !m->cd.ignore_prefix ? j->cd_cap : INT_MAX;
  int T = 1; /* the batch's longest row: generate sizes its caches by the rows' lengths */
  for (size_t p = lo; p < hi; p++)
    for (int v = 0; v < (two ? 2 : 1); v++) {
      int len = j->pt[p].len[v] < keep ? j->pt[p].len[v] : keep;
      if (len > T) T = len;
    }
  int32_t *ids = calloc((size_t)rows * (size_t)T, sizeof(int32_t));
  int *lens = malloc(sizeof(int) * (size_t)rows), *skip = malloc(sizeof(int) * (size_t)P);
  if (!ids || !lens || !skip) {
    free(ids), free(lens), free(skip);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for a batch");
  }
  for (int p = 0; p < P; p++)
    for (int v = 0; v < (two ? 2 : 1); v++) {
      const prompt_toks *pt = &j->pt[lo + (size_t)p];
      int r = two ? 2 * p + v : p, len = pt->len[v] < keep ? pt->len[v] : keep;
      memcpy(ids + (size_t)r * (size_t)T, pt->ids[v] + (pt->len[v] - len), sizeof(int32_t) * (size_t)len);
      lens[r] = len;
      /* the repetition penalty's history (variant 0's) leaves out the
       * synthetic leading EOT, the run's EOS (review B2); a cut prompt has none */
      if (v == 0) skip[p] = pt->eot[0] && len == pt->len[0];
    }
  generate_opts o = m->o;
  o.penalty_skip = skip;
  o.max_new_tokens = M;
  o.eos_id = j->s.eos ? tokenizer_pad_id(j->tok) : -1;
  o.seed = seed;
  o.first_row = (uint64_t)lo;
  int rc;
  switch (m->method) {
  case DEVAL_GREEDY:
  case DEVAL_SAMPLE: rc = generate_plain(j->dec, ids, lens, P, T, &o, out, out_len, err); break;
  case DEVAL_BEAM: rc = generate_beam(j->dec, ids, lens, P, T, &m->beam, &o, out, out_len, err); break;
  case DEVAL_CS: rc = generate_cs(j->dec, ids, lens, P, T, &m->cs, &o, out, out_len, err); break;
  case DEVAL_CD: rc = generate_cd(j->dec, j->ama, ids, lens, P, T, &m->cd, &o, out, out_len, err); break;
  case DEVAL_DOLA: rc = generate_dola(j->dec, ids, lens, P, T, &m->dola, &o, out, out_len, err); break;
  default: {
    generate_combine_cfg cc = {.n_variants = 2, .weights = m->weights, .adaptive = m->method == DEVAL_ADACAD,
                               .alpha_floor = m->alpha_floor};
    rc = generate_combine(j->dec, ids, lens, P, T, &cc, &o, out, out_len, NULL, err);
  }
  }
  free(ids), free(lens), free(skip);
  return rc;
}

typedef struct {
  int method;      /* index into spec.methods */
  int has_seed;
  uint64_t seed;
  char **gen;      /* [n] decoded generations (rank 0) */
  int *ntok;       /* [n] generated tokens (EOT included) */
  int32_t *ids;    /* [n, max_new_tokens]: row p's ntok[p] generated ids (rank 0) */
  double secs, steps, tokens; /* summed over ranks */
} run_out;

/* Generates one run on every rank (batches r, r+R, ...) and gathers it to rank 0. */
static int do_run(job *j, run_out *ro, foil_err *err) {
  const deval_method *m = &j->s.methods[ro->method];
  const size_t n = j->n, M = (size_t)j->s.max_new_tokens, B = (size_t)j->s.batch, W = M + 1;
  double *all = calloc(n * W + 3, sizeof(double));
  int32_t *out = malloc(sizeof(int32_t) * B * M);
  int *out_len = malloc(sizeof(int) * B);
  int rc = !all || !out || !out_len ? foil_err_set(err, FOIL_ENOMEM, "out of memory for %zu generations", n) : 0;
  double *tm = all + n * W;
  for (size_t b = (size_t)j->rank; !rc && b * B < n; b += (size_t)j->world) {
    size_t lo = b * B, hi = lo + B < n ? lo + B : n;
    double t0 = log_mono();
    rc = gen_batch(j, m, ro->seed, lo, hi, out, out_len, err);
    double dt = log_mono() - t0;
    int longest = 0;
    for (size_t p = lo; !rc && p < hi; p++) {
      int L = out_len[p - lo];
      all[p * W] = L;
      for (int t = 0; t < L; t++) all[p * W + 1 + (size_t)t] = out[(p - lo) * M + (size_t)t];
      if (L > longest) longest = L;
      tm[2] += L;
    }
    tm[0] += dt, tm[1] += longest;
  }
  rc = comm_all_ok(j->c, rc, "generating", err);
  if (!rc) rc = comm_allreduce_sum_f64(j->c, all, n * W + 3, err);
  if (!rc) ro->secs = tm[0], ro->steps = tm[1], ro->tokens = tm[2];
  if (!rc && j->rank == 0) {
    ro->gen = calloc(n, sizeof(char *));
    ro->ntok = calloc(n, sizeof(int));
    ro->ids = malloc(sizeof(int32_t) * n * M);
    if (!ro->gen || !ro->ntok || !ro->ids) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    const int32_t eot = tokenizer_pad_id(j->tok);
    for (size_t p = 0; !rc && p < n; p++) {
      int L = (int)all[p * W];
      for (int t = 0; t < L; t++) out[t] = (int32_t)all[p * W + 1 + (size_t)t]; /* B >= 1 so out holds M */
      ro->ntok[p] = L;
      memcpy(ro->ids + p * M, out, sizeof(int32_t) * (size_t)L);
      int keep = L;
      if (j->s.eos && keep > 0 && out[keep - 1] == eot) keep--;
      char *text = NULL;
      rc = tokenizer_decode(j->tok, out, keep, &text, err);
      if (!rc) {
        size_t cl = 0;
        ro->gen[p] = lmcorpus_utf8_clean(text, strlen(text), &cl);
        if (!ro->gen[p]) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      }
      free(text);
    }
  }
  free(all), free(out), free(out_len);
  return rc;
}

static void run_free(run_out *r, size_t n) {
  if (r->gen)
    for (size_t i = 0; i < n; i++) free(r->gen[i]);
  free(r->gen), free(r->ntok), free(r->ids);
  r->gen = NULL, r->ntok = NULL, r->ids = NULL;
}

/* Text of generations.jsonl. */
static int write_generations(job *j, run_out *runs, int nr, foil_err *err) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  int rc = buf ? 0 : foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (int r = 0; !rc && r < nr; r++)
    for (size_t p = 0; !rc && p < j->n; p++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "method", j->s.methods[runs[r].method].name);
      if (runs[r].has_seed) cJSON_AddNumberToObject(o, "seed", (double)runs[r].seed);
      else cJSON_AddNullToObject(o, "seed");
      cJSON_AddNumberToObject(o, "prompt_index", (double)p);
      cJSON_AddStringToObject(o, "prompt", j->prompt[p]);
      cJSON_AddStringToObject(o, "generation", runs[r].gen[p]);
      if (j->reference[p]) cJSON_AddStringToObject(o, "reference", j->reference[p]);
      else cJSON_AddNullToObject(o, "reference");
      cJSON_AddNumberToObject(o, "tokens", runs[r].ntok[p]);
      cJSON *ids = cJSON_AddArrayToObject(o, "token_ids");
      const int32_t *g = runs[r].ids + p * (size_t)j->s.max_new_tokens;
      for (int t = 0; ids && t < runs[r].ntok[p]; t++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(g[t]));
      char *t = cJSON_PrintUnformatted(o);
      cJSON_Delete(o);
      if (!t) {
        rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        break;
      }
      size_t tl = strlen(t);
      if (len + tl + 2 > cap) {
        while (len + tl + 2 > cap) cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        else buf = nb;
      }
      if (!rc) memcpy(buf + len, t, tl), buf[len + tl] = '\n', len += tl + 1;
      free(t);
    }
  char path[4200];
  snprintf(path, sizeof path, "%s/generations.jsonl", j->job_dir);
  if (!rc) rc = foil_write_file_atomic(path, buf, len, err);
  free(buf);
  return rc;
}

/* The textscore keys, as `foil textmetrics --json` prints them. */
static void add_textscore(cJSON *o, const textscore_result *r) {
  cJSON_AddNumberToObject(o, "rows", (double)r->n);
  cJSON_AddNumberToObject(o, "rep_2", r->rep[0]);
  cJSON_AddNumberToObject(o, "rep_3", r->rep[1]);
  cJSON_AddNumberToObject(o, "rep_4", r->rep[2]);
  cJSON_AddNumberToObject(o, "diversity", r->diversity);
  cJSON_AddNumberToObject(o, "mean_length", r->mean_length);
  if (r->has_coherence) cJSON_AddNumberToObject(o, "coherence", r->coherence);
  if (r->has_perplexity) {
    cJSON_AddNumberToObject(o, "perplexity", r->perplexity);
    cJSON_AddNumberToObject(o, "perplexity_tokens", (double)r->ppl_tokens);
  }
  if (r->has_mauve) {
    cJSON_AddNumberToObject(o, "mauve", r->mauve);
    cJSON_AddNumberToObject(o, "mauve_star", r->mauve_star);
    cJSON_AddNumberToObject(o, "frontier_integral", r->frontier_integral);
    cJSON_AddNumberToObject(o, "mauve_buckets", r->mauve_buckets);
  }
}

_Static_assert(DEVAL_MAX_SEEDS <= TEXTSCORE_MAX_RUNS, "MAUVE is scored per seed: one textscore run each");

/* Scores every method on rank 0, writes metrics.json, the table, the metrics lines and progress. */
static int score_and_report(job *j, run_out *runs, int nr, foil_err *err) {
  const deval_spec *s = &j->s;
  textscore_opts to;
  textscore_opts_default(&to);
  to.encoder_ckpt = s->encoder ? j->encoder_path : NULL;
  to.scorer_ckpt = j->scorer_path[0] ? j->scorer_path : NULL;
  to.max_len = s->metrics_max_len;
  to.run_rows = j->n; /* MAUVE per run (seed), each against the n references once; then the mean */
  cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray(), *prog = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "model", j->model_path);
  cJSON_AddNumberToObject(root, "step", (double)j->step);
  if (s->amateur) cJSON_AddStringToObject(root, "amateur", j->amateur_path);
  cJSON_AddNumberToObject(root, "prompts", (double)j->n);
  cJSON_AddNumberToObject(root, "max_new_tokens", s->max_new_tokens);
  cJSON_AddNumberToObject(root, "batch", s->batch);
  cJSON_AddNumberToObject(root, "ranks", j->world);
  cJSON_AddItemToObject(root, "methods", arr);
  double greedy_tps = 0;
  for (int r = 0; r < nr; r++)
    if (s->methods[runs[r].method].method == DEVAL_GREEDY && runs[r].secs > 0 && !greedy_tps)
      greedy_tps = runs[r].tokens / runs[r].secs;
  int rc = FOIL_OK;
  char line[600];
  logf_(j, "INFO", "%-22s %5s %7s %7s %7s %9s %7s %9s %10s %7s %9s %8s", "method", "rows", "rep-2", "rep-3",
        "rep-4", "diversity", "length", "coherence", "perplexity", "MAUVE", "tokens/s", "ms/step");
  for (int mi = 0; !rc && mi < s->n_methods; mi++) {
    const deval_method *m = &s->methods[mi];
    textscore_set set = {0};
    double secs = 0, steps = 0, tokens = 0;
    int nruns = 0;
    for (int r = 0; !rc && r < nr; r++) {
      if (runs[r].method != mi) continue;
      nruns++;
      secs += runs[r].secs, steps += runs[r].steps, tokens += runs[r].tokens;
      for (size_t p = 0; !rc && p < j->n; p++)
        rc = textscore_add(&set, j->prompt[p], runs[r].gen[p], j->reference[p], err);
    }
    textscore_result tr;
    if (!rc) rc = textscore_run(&set, &to, &tr, err);
    textscore_set_free(&set);
    if (rc) {
      char was[sizeof err->msg];
      snprintf(was, sizeof was, "%s", err->msg);
      rc = foil_err_set(err, rc, "scoring method %s: %.600s", m->name, was);
      break;
    }
    double tps = secs > 0 ? tokens / secs : 0, ms = steps > 0 ? 1000 * secs / steps : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "method", METHOD_NAMES[m->method]);
    cJSON_AddNumberToObject(o, "runs", nruns);
    add_textscore(o, &tr);
    if (tr.has_mauve && m->o.do_sample) { /* the runs in seed order */
      cJSON *ps = cJSON_AddArrayToObject(o, "mauve_per_seed");
      for (int r = 0, g = 0; ps && r < nr && g < tr.mauve_runs; r++) {
        if (runs[r].method != mi) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "seed", (double)runs[r].seed);
        cJSON_AddNumberToObject(e, "mauve", tr.mauve_run[g++]);
        cJSON_AddItemToArray(ps, e);
      }
      if (tr.mauve_runs > 1) cJSON_AddNumberToObject(o, "mauve_std", tr.mauve_std);
    }
    cJSON_AddNumberToObject(o, "tokens", tokens);
    cJSON_AddNumberToObject(o, "tokens_per_s", tps);
    cJSON_AddNumberToObject(o, "per_token_ms", ms);
    if (greedy_tps > 0) cJSON_AddNumberToObject(o, "tokens_per_s_vs_greedy", tps / greedy_tps);
    cJSON_AddItemToArray(arr, o);
    /* the metrics line (JSON lines, as the other jobs) */
    char *t = cJSON_PrintUnformatted(o);
    if (t) fprintf(j->metrics, "%s\n", t), fflush(j->metrics);
    free(t);
    /* the progress metrics: the table's key numbers */
    cJSON *k = cJSON_CreateObject();
    cJSON_AddNumberToObject(k, "rep_4", round(tr.rep[2] * 1e4) / 1e4);
    cJSON_AddNumberToObject(k, "diversity", round(tr.diversity * 1e4) / 1e4);
    if (tr.has_coherence) cJSON_AddNumberToObject(k, "coherence", round(tr.coherence * 1e4) / 1e4);
    if (tr.has_perplexity) cJSON_AddNumberToObject(k, "perplexity", round(tr.perplexity * 1e3) / 1e3);
    if (tr.has_mauve) cJSON_AddNumberToObject(k, "mauve", round(tr.mauve * 1e4) / 1e4);
    cJSON_AddNumberToObject(k, "tokens_per_s", round(tps * 10) / 10);
    cJSON_AddItemToObject(prog, m->name, k);
    char coh[16] = "-", ppl[16] = "-", mv[16] = "-";
    if (tr.has_coherence) snprintf(coh, sizeof coh, "%.4f", tr.coherence);
    if (tr.has_perplexity) snprintf(ppl, sizeof ppl, "%.3f", tr.perplexity);
    if (tr.has_mauve) snprintf(mv, sizeof mv, "%.4f", tr.mauve);
    snprintf(line, sizeof line, "%-22.22s %5zu %7.2f %7.2f %7.2f %9.2f %7.2f %9s %10s %7s %9.1f %8.2f", m->name, tr.n,
             100 * tr.rep[0], 100 * tr.rep[1], 100 * tr.rep[2], 100 * tr.diversity, tr.mean_length, coh, ppl, mv, tps,
             ms);
    logf_(j, "INFO", "%s", line);
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/metrics.json", j->job_dir);
  char *txt = rc ? NULL : cJSON_Print(root);
  if (!rc && !txt) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  if (!rc) {
    size_t tl = strlen(txt);
    char *t2 = realloc(txt, tl + 2);
    if (t2) txt = t2, txt[tl] = '\n', txt[tl + 1] = 0;
    rc = foil_write_file_atomic(path, txt, strlen(txt), err);
  }
  free(txt);
  if (!rc) {
    char *pj = cJSON_PrintUnformatted(prog);
    char msg[512];
    snprintf(msg, sizeof msg, "%d method(s) on %zu prompts: %.400s/metrics.json", s->n_methods, j->n, j->job_dir);
    progress_send(j->prog, nr + 1, nr + 1, msg, pj);
    free(pj);
  }
  cJSON_Delete(root);
  cJSON_Delete(prog);
  return rc;
}

int deval_run(const deval_args *a, comm *c, foil_err *err) {
  job j = {.a = a, .c = c, .rank = comm_rank(c), .world = comm_world(c)};
  int rc = setup(&j, err);
  rc = comm_all_ok(j.c, rc, "loading the spec, checkpoints or prompts", err);
  const deval_spec *s = &j.s;
  int nr = 0;
  run_out *runs = NULL;
  if (!rc) {
    for (int i = 0; i < s->n_methods; i++) nr += samples(&s->methods[i]) ? s->n_seeds : 1;
    if (!(runs = calloc((size_t)nr, sizeof *runs))) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    int r = 0;
    for (int i = 0; !rc && i < s->n_methods; i++)
      for (int k = 0; k < (samples(&s->methods[i]) ? s->n_seeds : 1); k++, r++)
        runs[r] = (run_out){.method = i, .has_seed = samples(&s->methods[i]),
                            .seed = samples(&s->methods[i]) ? s->seeds[k] : 0};
    const decoder_config *dc = decoder_cfg(j.dec);
    logf_(&j, "INFO", "decode-eval %s: model %s (step %lld, %d layers, d_model %d)%s%s, %zu prompts (%zu cut to fit), "
          "%d method(s), %d run(s), max_new_tokens %d, batch %d, %d rank(s)", s->name, j.model_path,
          (long long)j.step, dc->n_layers, dc->d_model, s->amateur ? ", amateur " : "", s->amateur ? j.amateur_path : "",
          j.n, j.cut, s->n_methods, nr, s->max_new_tokens, s->batch, j.world);
    if (j.cd_cut)
      logf_(&j, "INFO", "contrastive_decoding without ignore_prefix: %zu prompt(s) keep their last %d tokens (the "
            "amateur's max_len %d - max_new_tokens); the other methods see them whole", j.cd_cut, j.cd_cap,
            decoder_cfg(j.ama)->max_len);
  }
  for (int r = 0; !rc && r < nr; r++) {
    rc = do_run(&j, &runs[r], err);
    if (!rc) {
      const deval_method *m = &s->methods[runs[r].method];
      char seed[40] = "";
      if (runs[r].has_seed) snprintf(seed, sizeof seed, " seed %llu", (unsigned long long)runs[r].seed);
      logf_(&j, "INFO", "%s%s: %.0f tokens in %.2f s (%.1f tokens/s, %.2f ms per step)", m->name, seed,
            runs[r].tokens, runs[r].secs, runs[r].secs > 0 ? runs[r].tokens / runs[r].secs : 0.0,
            runs[r].steps > 0 ? 1000 * runs[r].secs / runs[r].steps : 0.0);
      char msg[200];
      snprintf(msg, sizeof msg, "generated %s%s (%d/%d)", m->name, seed, r + 1, nr);
      if (j.rank == 0) progress_send(j.prog, r + 1, nr + 1, msg, NULL);
    }
  }
  if (!rc && j.rank == 0) {
    rc = progress_fenced(j.job_dir, getenv("FOIL_ATTEMPT_TOKEN"), err);
    if (!rc) rc = write_generations(&j, runs, nr, err);
    if (!rc) rc = score_and_report(&j, runs, nr, err);
    if (!rc) logf_(&j, "INFO", "wrote %s/generations.jsonl and %s/metrics.json", j.job_dir, j.job_dir);
  }
  rc = comm_all_ok(j.c, rc, "writing the results", err);
  if (rc) logf_(&j, "ERROR", "%s", err ? err->msg : "failed");
  for (int r = 0; r < nr; r++) run_free(&runs[r], j.n);
  free(runs);
  job_free(&j);
  return rc;
}
