/* hfmodel.c — BERT model folders <-> foil checkpoints (see hfmodel.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "storage/hfmodel.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "kernels/kernels.h"
#include "storage/ckpt.h"
#include "storage/h5io.h"
#include "storage/safetensors.h"
#include "storage/tokenizer_h5.h"

void hf_model_destroy(hf_model **pm) {
  hf_model *m = pm ? *pm : NULL;
  if (!m) return;
  encoder_destroy(&m->enc);
  tokenizer_destroy(&m->tok);
  free(m->token_type);
  free(m->wpe_orig);
  free(m->pooler_w);
  free(m->pooler_b);
  free(m->wte_tail);
  free(m->config_json);
  free(m);
  *pm = NULL;
}

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* Reads dir/name as JSON; *out NULL and FOIL_OK when absent and optional. */
static int read_json(const char *dir, const char *name, int optional, cJSON **out, char **text,
                     foil_err *err) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  *out = NULL;
  if (optional && !file_exists(p)) return FOIL_OK;
  char *data;
  size_t len;
  int rc = foil_read_file(p, &data, &len, err);
  if (rc) return rc;
  *out = cJSON_ParseWithLength(data, len);
  if (!*out) {
    free(data);
    return foil_err_set(err, FOIL_EINVAL, "%s: not valid JSON", p);
  }
  if (text) *text = data;
  else free(data);
  return FOIL_OK;
}

static int json_int(const cJSON *o, const char *key, int dflt, int required, const char *path, int *out,
                    foil_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) {
    if (required) return foil_err_set(err, FOIL_EINVAL, "%s: \"%s\" is required", path, key);
    *out = dflt;
    return FOIL_OK;
  }
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
      v->valuedouble > 1e9)
    return foil_err_set(err, FOIL_EINVAL, "%s: \"%s\" must be a non-negative integer", path, key);
  *out = (int)v->valuedouble;
  return FOIL_OK;
}

static const char *json_str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An optional string option of config.json: *out NULL when absent; present
 * but not a string (null, a number) is refused, as transformers cannot
 * build such a model either. */
static int json_opt_str(const cJSON *o, const char *key, const char *path, const char **out, foil_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  *out = NULL;
  if (!v) return FOIL_OK;
  if (!cJSON_IsString(v)) return foil_err_set(err, FOIL_EINVAL, "%s: \"%s\" must be a string", path, key);
  *out = v->valuestring;
  return FOIL_OK;
}

/* A flag as Python's `if config.flag:` reads it: anything but absent,
 * false, null, 0 and "" is set. */
static int truthy(const cJSON *v) {
  if (!v || cJSON_IsFalse(v) || cJSON_IsNull(v)) return 0;
  if (cJSON_IsNumber(v)) return v->valuedouble != 0;
  if (cJSON_IsString(v)) return v->valuestring[0] != 0;
  if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
  return 1;
}

/* ---- config.json ------------------------------------------------------------------- */

static int parse_config(const char *dir, const cJSON *c, encoder_config *cfg, int *type_vocab,
                        foil_err *err) {
  char p[4096];
  snprintf(p, sizeof p, "%s/config.json", dir);
  const char *mt, *act, *pe;
  int rc;
  if ((rc = json_opt_str(c, "model_type", p, &mt, err)) || (rc = json_opt_str(c, "hidden_act", p, &act, err)) ||
      (rc = json_opt_str(c, "position_embedding_type", p, &pe, err)))
    return rc;
  if (!mt || strcmp(mt, "bert"))
    return foil_err_set(err, FOIL_EINVAL, "%s: model_type \"%s\" is not supported (foil imports \"bert\")", p,
                        mt ? mt : "(missing)");
  if (act && strcmp(act, "gelu"))
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: hidden_act \"%s\" is not supported (foil's encoder uses exact \"gelu\")", p, act);
  if (pe && strcmp(pe, "absolute"))
    return foil_err_set(err, FOIL_EINVAL, "%s: position_embedding_type \"%s\" is not supported (only \"absolute\")",
                        p, pe);
  /* transformers' BertModel turns causal (and grows cross-attention) with these */
  if (truthy(cJSON_GetObjectItemCaseSensitive(c, "is_decoder")))
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: is_decoder is true (causal attention); foil imports bidirectional BERT encoders", p);
  if (truthy(cJSON_GetObjectItemCaseSensitive(c, "add_cross_attention")))
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: add_cross_attention is true (an encoder-decoder's decoder); foil imports BERT encoders",
                        p);
  encoder_config_default(cfg);
  if ((rc = json_int(c, "hidden_size", 0, 1, p, &cfg->d_model, err)) ||
      (rc = json_int(c, "num_hidden_layers", 0, 1, p, &cfg->n_layers, err)) ||
      (rc = json_int(c, "num_attention_heads", 0, 1, p, &cfg->n_heads, err)) ||
      (rc = json_int(c, "intermediate_size", 0, 1, p, &cfg->d_ff, err)) ||
      (rc = json_int(c, "vocab_size", 0, 1, p, &cfg->vocab, err)) ||
      (rc = json_int(c, "max_position_embeddings", 512, 0, p, &cfg->max_len, err)) ||
      (rc = json_int(c, "type_vocab_size", 2, 0, p, type_vocab, err)))
    return rc;
  const cJSON *eps = cJSON_GetObjectItemCaseSensitive(c, "layer_norm_eps");
  if (eps && (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0) || eps->valuedouble > 1))
    return foil_err_set(err, FOIL_EINVAL, "%s: \"layer_norm_eps\" must be a number in (0, 1]", p);
  cfg->ln_eps = eps ? (float)eps->valuedouble : 1e-12f;
  const cJSON *dr = cJSON_GetObjectItemCaseSensitive(c, "hidden_dropout_prob");
  cfg->dropout = cJSON_IsNumber(dr) ? (float)dr->valuedouble : 0.1f;
  cfg->pre_ln = 0;
  cfg->proj_dim = 0;
  foil_err why = {0};
  if (encoder_config_check(cfg, &why))
    return foil_err_set(err, FOIL_EINVAL, "%s: %s", p, why.msg);
  if (*type_vocab < 1)
    return foil_err_set(err, FOIL_EINVAL, "%s: type_vocab_size must be at least 1", p);
  return FOIL_OK;
}

/* ---- modules.json, pooling, tokenizer options ----------------------------------------- */

/* A module's "path" (modules.json, p) must name a folder inside the model
 * folder dir: not absolute, no ".." component, and — where it exists — not
 * resolving (through symlinks) outside dir. Only the folder is resolved, not
 * the files in it: a Hugging Face cache snapshot links each file to a blob
 * outside the snapshot, and that is fine. */
static int check_module_path(const char *dir, const char *p, const char *path, foil_err *err) {
  if (path[0] == '/')
    return foil_err_set(err, FOIL_EINVAL, "%s: module path \"%s\" is absolute (it must be inside the model folder)",
                        p, path);
  for (const char *c = path; *c;) {
    size_t n = strcspn(c, "/");
    if (n == 2 && c[0] == '.' && c[1] == '.')
      return foil_err_set(err, FOIL_EINVAL,
                          "%s: module path \"%s\" contains \"..\" (it must be inside the model folder)", p, path);
    c += n;
    c += strspn(c, "/");
  }
  char full[4096];
  if (snprintf(full, sizeof full, "%s/%s", dir, path) >= (int)sizeof full)
    return foil_err_set(err, FOIL_EINVAL, "%s: module path \"%s\" is too long", p, path);
  char *real_dir = realpath(dir, NULL);
  if (!real_dir) return foil_err_set(err, FOIL_EINVAL, "%s: cannot resolve the model folder: %s", p, strerror(errno));
  char *real_mod = realpath(full, NULL);
  int rc = FOIL_OK;
  if (real_mod) { /* absent: nothing is read from it (or its read fails as usual) */
    size_t n = strlen(real_dir);
    if (n > 1 && real_dir[n - 1] == '/') n--;
    int inside = !strncmp(real_mod, real_dir, n) && (real_mod[n] == '\0' || real_mod[n] == '/' ||
                                                      (n == 1 && real_dir[0] == '/'));
    if (!inside)
      rc = foil_err_set(err, FOIL_EINVAL,
                        "%s: module path \"%s\" resolves to %s, outside the model folder %s", p, path, real_mod,
                        real_dir);
  }
  free(real_mod);
  free(real_dir);
  return rc;
}

/* modules.json (absent: a plain Hugging Face model, *have 0): checks each
 * module's type and path, and names the folders sentence-transformers
 * loads from: the Transformer's (config.json, the weights, the tokenizer
 * and sentence_bert_config.json; mdir, "dir" or "dir/<path>") and the
 * Pooling module's (pool, relative to dir; "" when there is none). */
static int parse_modules(const char *dir, int *have, char *mdir, size_t mdir_n, char *pool, size_t pool_n,
                         int *normalize, foil_err *err) {
  cJSON *mods = NULL;
  char p[4096];
  int rc = read_json(dir, "modules.json", 1, &mods, NULL, err);
  *have = mods != NULL;
  *normalize = 0;
  snprintf(mdir, mdir_n, "%s", dir);
  pool[0] = 0;
  if (rc || !mods) goto done; /* a plain Hugging Face model: mean pooling */
  snprintf(p, sizeof p, "%s/modules.json", dir);
  if (!cJSON_IsArray(mods)) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: expected a list of modules", p);
    goto done;
  }
  int have_tr = 0;
  for (const cJSON *m = mods->child; m; m = m->next) {
    const char *type = json_str(m, "type"), *path = json_str(m, "path");
    if (!type) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: a module without \"type\"", p);
      goto done;
    }
    if (path && (rc = check_module_path(dir, p, path, err))) goto done;
    if (!strcmp(type, "sentence_transformers.models.Transformer")) {
      if (have_tr++) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s: two Transformer modules (foil imports one encoder)", p);
        goto done;
      }
      /* sentence-transformers loads the model from DIR/<path> (the older
       * layout keeps it in 0_Transformer/) */
      if (path && path[strspn(path, "./")] &&
          snprintf(mdir, mdir_n, "%s/%s", dir, path) >= (int)mdir_n) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s: module path \"%s\" is too long", p, path);
        goto done;
      }
    } else if (!strcmp(type, "sentence_transformers.models.Pooling"))
      snprintf(pool, pool_n, "%s", path ? path : "1_Pooling");
    else if (!strcmp(type, "sentence_transformers.models.Normalize")) *normalize = 1;
    else {
      rc = foil_err_set(err, FOIL_EINVAL,
                        "%s: module \"%s\" is not supported (foil imports Transformer, Pooling, Normalize)", p,
                        type);
      goto done;
    }
  }
  if (!have_tr) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: no sentence_transformers.models.Transformer module", p);
    goto done;
  }
  if (pool[0] && (rc = check_module_path(dir, p, pool, err))) goto done; /* also the default 1_Pooling */
done:
  cJSON_Delete(mods);
  return rc;
}

/* The Pooling module's config.json (pool_dir relative to dir; "" for none:
 * mean pooling). */
static int parse_pooling(const char *dir, const char *pool_dir, encoder_config *cfg, foil_err *err) {
  cJSON *pool = NULL;
  char p[4096], rel[512];
  cfg->pooling = POOL_MEAN;
  if (!pool_dir[0]) return FOIL_OK;
  snprintf(rel, sizeof rel, "%s/config.json", pool_dir);
  int rc = read_json(dir, rel, 0, &pool, NULL, err);
  if (rc) return rc;
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  static const char *const other[] = {"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                      "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"};
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pool, other[i]))) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: %s is not supported (foil pools by mean or CLS token)", p, other[i]);
      goto done;
    }
  int mean = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pool, "pooling_mode_mean_tokens"));
  int cls = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pool, "pooling_mode_cls_token"));
  if (mean + cls != 1) {
    rc = foil_err_set(err, FOIL_EINVAL,
                      "%s: exactly one of pooling_mode_mean_tokens and pooling_mode_cls_token must be true", p);
    goto done;
  }
  cfg->pooling = mean ? POOL_MEAN : POOL_FIRST;
  int wd = 0;
  if ((rc = json_int(pool, "word_embedding_dimension", cfg->d_model, 0, p, &wd, err))) goto done;
  if (wd != cfg->d_model)
    rc = foil_err_set(err, FOIL_EINVAL, "%s: word_embedding_dimension %d, but hidden_size is %d", p, wd,
                      cfg->d_model);
done:
  cJSON_Delete(pool);
  return rc;
}

/* HF's "no limit" for model_max_length is int(1e30) (VERY_LARGE_INTEGER);
 * anything from 1e29 up counts as unset. */
#define HF_NO_LIMIT 1e29

/* tokenizer_config.json (in the Transformer's folder mdir): refuses a cased
 * or accent-keeping tokenizer, and gives its model_max_length in *mml (0:
 * unset or absent). */
static int check_tokenizer_config(const char *mdir, int *mml, foil_err *err) {
  cJSON *tc = NULL;
  *mml = 0;
  int rc = read_json(mdir, "tokenizer_config.json", 1, &tc, NULL, err);
  if (rc || !tc) return rc;
  char p[4096];
  snprintf(p, sizeof p, "%s/tokenizer_config.json", mdir);
  const cJSON *ml = cJSON_GetObjectItemCaseSensitive(tc, "model_max_length");
  if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(tc, "do_lower_case")))
    rc = foil_err_set(err, FOIL_EINVAL,
                      "%s: do_lower_case is false; foil's WordPiece is uncased BERT's (lower-cases, strips accents)",
                      p);
  else if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(tc, "strip_accents")))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: strip_accents is false; foil's WordPiece strips accents", p);
  else if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(tc, "tokenize_chinese_chars")))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: tokenize_chinese_chars is false; foil's WordPiece splits them", p);
  else if (ml && !cJSON_IsNull(ml)) {
    /* not through json_int: HF writes its "no limit" as 1e30 */
    if (!cJSON_IsNumber(ml) || !(ml->valuedouble >= 1) || ml->valuedouble != floor(ml->valuedouble))
      rc = foil_err_set(err, FOIL_EINVAL, "%s: \"model_max_length\" must be a positive integer", p);
    else if (ml->valuedouble < HF_NO_LIMIT)
      *mml = ml->valuedouble > 1e9 ? 1000000000 : (int)ml->valuedouble;
  }
  cJSON_Delete(tc);
  return rc;
}

/* Where sentence-transformers 2.7 truncates (models/Transformer.py): the
 * max_seq_length of sentence_bert_config.json (in mdir, read when the
 * folder has modules.json), else min(max_position_embeddings, the
 * tokenizer's model_max_length). *out 0: the positions (no limit set). */
static int parse_max_seq(const char *mdir, int have_modules, int max_pos, int mml, int *out, foil_err *err) {
  cJSON *sb = NULL;
  *out = 0;
  int rc = have_modules ? read_json(mdir, "sentence_bert_config.json", 1, &sb, NULL, err) : FOIL_OK;
  if (rc) return rc;
  const cJSON *v = sb ? cJSON_GetObjectItemCaseSensitive(sb, "max_seq_length") : NULL;
  if (v && !cJSON_IsNull(v)) {
    char p[4096];
    snprintf(p, sizeof p, "%s/sentence_bert_config.json", mdir);
    rc = json_int(sb, "max_seq_length", 0, 0, p, out, err);
  } else if (mml > 0) {
    *out = mml < max_pos ? mml : max_pos;
  }
  cJSON_Delete(sb);
  return rc;
}

/* ---- tensors ---------------------------------------------------------------------------- */

/* Reads name (with the model's prefix) into out, checking the shape. */
static int get(const st_file *f, const char *prefix, const char *name, int d0, int d1, float *out,
               foil_err *err) {
  char full[512];
  snprintf(full, sizeof full, "%s%s", prefix, name);
  const st_tensor *t = st_find(f, full);
  if (!t) return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\" is missing", st_path(f), full);
  int ok = d1 ? (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1) : (t->ndim == 1 && t->shape[0] == d0);
  if (!ok) {
    char got[128] = "";
    for (int i = 0; i < t->ndim; i++) {
      size_t l = strlen(got);
      snprintf(got + l, sizeof got - l, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    }
    if (d1) return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\" has shape [%s], config.json implies [%d,%d]",
                                st_path(f), full, got, d0, d1);
    return foil_err_set(err, FOIL_EINVAL, "%s: tensor \"%s\" has shape [%s], config.json implies [%d]", st_path(f),
                        full, got, d0);
  }
  return st_read_f32(f, t, out, (size_t)d0 * (size_t)(d1 ? d1 : 1), err);
}

/* file_vocab: the rows of word_embeddings in the file (config.json's
 * vocab_size); the encoder takes the tokenizer's first c->vocab, the rest
 * go to m->wte_tail. */
static int map_weights(const st_file *f, hf_model *m, int file_vocab, foil_err *err) {
  const encoder_config *c = encoder_cfg(m->enc);
  const encoder_tensor *T = encoder_tensors(m->enc);
  float *P = encoder_params(m->enc);
  const int d = c->d_model, ff = c->d_ff, L = c->n_layers;
  const char *pre = st_find(f, "bert.embeddings.word_embeddings.weight") ? "bert." : "";
  char n[256];
  int rc;
#define G(name, d0, d1, dst) \
  if ((rc = get(f, pre, name, d0, d1, dst, err))) return rc
  if (file_vocab > c->vocab) {
    float *all = malloc((size_t)file_vocab * d * sizeof(float));
    m->wte_tail_rows = file_vocab - c->vocab;
    if (!all || !(m->wte_tail = malloc((size_t)m->wte_tail_rows * d * sizeof(float)))) {
      free(all);
      return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    }
    if ((rc = get(f, pre, "embeddings.word_embeddings.weight", file_vocab, d, all, err))) {
      free(all);
      return rc;
    }
    memcpy(P + T[ENC_WTE].offset, all, (size_t)c->vocab * d * sizeof(float));
    memcpy(m->wte_tail, all + (size_t)c->vocab * d, (size_t)m->wte_tail_rows * d * sizeof(float));
    free(all);
  } else {
    G("embeddings.word_embeddings.weight", c->vocab, d, P + T[ENC_WTE].offset);
  }
  if (!(m->wpe_orig = malloc((size_t)c->max_len * d * sizeof(float))) ||
      !(m->token_type = malloc((size_t)m->type_vocab * d * sizeof(float))))
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  G("embeddings.position_embeddings.weight", c->max_len, d, m->wpe_orig);
  G("embeddings.token_type_embeddings.weight", m->type_vocab, d, m->token_type);
  float *wpe = P + T[ENC_WPE].offset;
  for (size_t i = 0; i < (size_t)c->max_len; i++)
    for (int j = 0; j < d; j++) wpe[i * d + j] = m->wpe_orig[i * d + j] + m->token_type[j];
  G("embeddings.LayerNorm.weight", d, 0, P + T[ENC_EMB_LN_W].offset);
  G("embeddings.LayerNorm.bias", d, 0, P + T[ENC_EMB_LN_B].offset);
  for (int l = 0; l < L; l++) {
    size_t dd = (size_t)d * d;
#define LAYER(suffix, d0, d1, dst)                                   \
  do {                                                               \
    snprintf(n, sizeof n, "encoder.layer.%d.%s", l, suffix);         \
    G(n, d0, d1, dst);                                               \
  } while (0)
    float *qkv_w = P + T[ENC_QKV_W].offset + (size_t)l * 3 * dd, *qkv_b = P + T[ENC_QKV_B].offset + (size_t)l * 3 * d;
    LAYER("attention.self.query.weight", d, d, qkv_w);
    LAYER("attention.self.key.weight", d, d, qkv_w + dd);
    LAYER("attention.self.value.weight", d, d, qkv_w + 2 * dd);
    LAYER("attention.self.query.bias", d, 0, qkv_b);
    LAYER("attention.self.key.bias", d, 0, qkv_b + d);
    LAYER("attention.self.value.bias", d, 0, qkv_b + 2 * d);
    LAYER("attention.output.dense.weight", d, d, P + T[ENC_ATTO_W].offset + (size_t)l * dd);
    LAYER("attention.output.dense.bias", d, 0, P + T[ENC_ATTO_B].offset + (size_t)l * d);
    LAYER("attention.output.LayerNorm.weight", d, 0, P + T[ENC_LN1_W].offset + (size_t)l * d);
    LAYER("attention.output.LayerNorm.bias", d, 0, P + T[ENC_LN1_B].offset + (size_t)l * d);
    LAYER("intermediate.dense.weight", ff, d, P + T[ENC_FC1_W].offset + (size_t)l * ff * d);
    LAYER("intermediate.dense.bias", ff, 0, P + T[ENC_FC1_B].offset + (size_t)l * ff);
    LAYER("output.dense.weight", d, ff, P + T[ENC_FC2_W].offset + (size_t)l * d * ff);
    LAYER("output.dense.bias", d, 0, P + T[ENC_FC2_B].offset + (size_t)l * d);
    LAYER("output.LayerNorm.weight", d, 0, P + T[ENC_LN2_W].offset + (size_t)l * d);
    LAYER("output.LayerNorm.bias", d, 0, P + T[ENC_LN2_B].offset + (size_t)l * d);
#undef LAYER
  }
  snprintf(n, sizeof n, "%spooler.dense.weight", pre);
  if (st_find(f, n)) {
    if (!(m->pooler_w = malloc((size_t)d * d * sizeof(float))) || !(m->pooler_b = malloc((size_t)d * sizeof(float))))
      return foil_err_set(err, FOIL_ENOMEM, "out of memory");
    G("pooler.dense.weight", d, d, m->pooler_w);
    G("pooler.dense.bias", d, 0, m->pooler_b);
  }
#undef G
  snprintf(n, sizeof n, "%sembeddings.position_ids", pre);
  m->has_position_ids = st_find(f, n) != NULL;
  /* Anything else (a masked-LM head, ...) is not part of the encoder. */
  return FOIL_OK;
}

/* Every weight config.json implies is a tensor of the file (map_weights
 * reads each by name, with its exact shape), so the file must hold at
 * least that many float elements. Checked before the encoder is allocated:
 * a damaged config.json (65536 wide, 1024 layers) with a small file is
 * refused without asking for terabytes. */
static int check_weight_count(const st_file *f, const encoder_config *c, int type_vocab, foil_err *err) {
  uint64_t d = (uint64_t)c->d_model, ff = (uint64_t)c->d_ff;
  uint64_t need = ((uint64_t)c->vocab + (uint64_t)c->max_len + (uint64_t)type_vocab + 2) * d +
                  (uint64_t)c->n_layers * (4 * d * d + 2 * d * ff + 9 * d + ff);
  uint64_t have = 0;
  for (int i = 0; i < st_count(f); i++) {
    const st_tensor *t = st_at(f, i);
    if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) have += t->nelem;
  }
  if (need > have)
    return foil_err_set(err, FOIL_EINVAL,
                        "%s: config.json describes %llu weights, but the file holds only %llu floats "
                        "(a config.json of another model, or a truncated file?)",
                        st_path(f), (unsigned long long)need, (unsigned long long)have);
  return FOIL_OK;
}

int hf_import(const char *dir, hf_model **out, foil_err *err) {
  *out = NULL;
  char p[4096], mdir[3584], pool[512]; /* mdir leaves room for a file name in p */
  hf_model *m = calloc(1, sizeof *m);
  cJSON *cfgj = NULL;
  st_file *st = NULL;
  encoder_config cfg;
  int have_modules = 0, mml = 0;
  if (!m) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int rc;
  if (!file_exists(dir)) {
    rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: no such model folder", dir);
    goto fail;
  }
  if ((rc = parse_modules(dir, &have_modules, mdir, sizeof mdir, pool, sizeof pool, &m->normalize, err))) goto fail;
  snprintf(p, sizeof p, "%s/config.json", mdir);
  if (!file_exists(p)) {
    rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: missing (a Hugging Face model folder has config.json)", p);
    goto fail;
  }
  if ((rc = read_json(mdir, "config.json", 0, &cfgj, &m->config_json, err))) goto fail;
  if ((rc = parse_config(mdir, cfgj, &cfg, &m->type_vocab, err))) goto fail;
  if ((rc = parse_pooling(dir, pool, &cfg, err))) goto fail;
  if ((rc = check_tokenizer_config(mdir, &mml, err))) goto fail;
  if ((rc = parse_max_seq(mdir, have_modules, cfg.max_len, mml, &m->max_seq_length, err))) goto fail;
  snprintf(p, sizeof p, "%s/vocab.txt", mdir);
  if (!file_exists(p)) {
    rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: missing (foil imports WordPiece models with a vocab.txt)", p);
    goto fail;
  }
  if ((rc = tokenizer_load(&m->tok, p, err))) goto fail;
  const int file_vocab = cfg.vocab;
  if (tokenizer_vocab_size(m->tok) > file_vocab) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: %d tokens, but config.json's vocab_size is %d", p,
                      tokenizer_vocab_size(m->tok), file_vocab);
    goto fail;
  }
  snprintf(p, sizeof p, "%s/model.safetensors", mdir);
  if (!file_exists(p)) {
    char bin[4096];
    snprintf(bin, sizeof bin, "%s/pytorch_model.bin", mdir);
    if (file_exists(bin))
      rc = foil_err_set(err, FOIL_EINVAL,
                        "%s: foil reads safetensors only; convert it first, e.g. in Python: "
                        "safetensors.torch.save_file(torch.load('pytorch_model.bin'), 'model.safetensors')",
                        bin);
    else
      rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: missing (the model's weights)", p);
    goto fail;
  }
  if ((rc = st_open(&st, p, err))) goto fail;
  if ((rc = check_weight_count(st, &cfg, m->type_vocab, err))) goto fail;
  /* A padded embedding matrix (vocab_size above vocab.txt's lines): the
   * tokenizer never emits the extra rows' ids, so the encoder gets one row
   * per token, as every foil job expects (tokenizer size == vocab), and
   * the rest is kept under /hf for export. */
  cfg.vocab = tokenizer_vocab_size(m->tok);
  if ((rc = encoder_new(&m->enc, &cfg, err))) goto fail;
  if ((rc = map_weights(st, m, file_vocab, err))) goto fail;
  st_close(&st);
  cJSON_Delete(cfgj);
  *out = m;
  return FOIL_OK;
fail:
  st_close(&st);
  cJSON_Delete(cfgj);
  hf_model_destroy(&m);
  return rc;
}

/* ---- checkpoint ------------------------------------------------------------------------ */

int hf_write_group(h5io *f, const hf_model *m, int d_model, int max_len, foil_err *err) {
  int rc;
  uint64_t d = (uint64_t)d_model;
  if (m->token_type) {
    uint64_t dims[2] = {(uint64_t)m->type_vocab, d};
    if ((rc = h5io_write_f32(f, "hf/token_type_embeddings", m->token_type, 2, dims, err))) return rc;
  }
  if (m->wpe_orig) {
    uint64_t dims[2] = {(uint64_t)max_len, d};
    if ((rc = h5io_write_f32(f, "hf/position_embeddings", m->wpe_orig, 2, dims, err))) return rc;
  }
  if (m->wte_tail) {
    uint64_t dims[2] = {(uint64_t)m->wte_tail_rows, d};
    if ((rc = h5io_write_f32(f, "hf/word_embeddings_tail", m->wte_tail, 2, dims, err))) return rc;
  }
  if (m->pooler_w) {
    uint64_t dw[2] = {d, d}, db[1] = {d};
    if ((rc = h5io_write_f32(f, "hf/pooler_w", m->pooler_w, 2, dw, err)) ||
        (rc = h5io_write_f32(f, "hf/pooler_b", m->pooler_b, 1, db, err)))
      return rc;
  }
  if (!h5io_exists(f, "hf")) { /* attributes need the group */
    float z = 0;
    uint64_t one[1] = {1};
    if ((rc = h5io_write_f32(f, "hf/unused", &z, 1, one, err))) return rc;
  }
  if ((rc = h5io_attr_i64(f, "hf", "normalize", m->normalize, err)) ||
      (rc = h5io_attr_i64(f, "hf", "max_seq_length", m->max_seq_length, err)) ||
      (rc = h5io_attr_i64(f, "hf", "has_position_ids", m->has_position_ids, err)))
    return rc;
  if (m->config_json && (rc = h5io_attr_str(f, "hf", "config_json", m->config_json, err))) return rc;
  return FOIL_OK;
}

static int write_extra(h5io *f, void *ctx, foil_err *err) {
  const hf_model *m = ctx;
  const encoder_config *c = encoder_cfg(m->enc);
  int rc = tokenizer_h5_write(f, "tokenizer", m->tok, err);
  return rc ? rc : hf_write_group(f, m, c->d_model, c->max_len, err);
}

int hf_save_ckpt(const hf_model *m, const char *path, foil_err *err) {
  ckpt_state s = {0};
  s.step = 0;
  s.enc = m->enc;
  return ckpt_save(path, &s, write_extra, (void *)m, err);
}

static int read_opt_f32(h5io *f, const char *name, size_t want, float **out, foil_err *err) {
  *out = NULL;
  if (!h5io_exists(f, name)) return FOIL_OK;
  size_t n = 0;
  int rc = h5io_read_f32(f, name, out, &n, err);
  if (rc) return rc;
  if (want && n != want) {
    free(*out);
    *out = NULL;
    return foil_err_set(err, FOIL_EINVAL, "%s: %s has %zu values, the model needs %zu", h5io_path(f), name, n, want);
  }
  return FOIL_OK;
}

int hf_read_group(const char *path, hf_model *m, int d_model, int max_len, int *found, foil_err *err) {
  h5io *f = NULL;
  int rc = h5io_open(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  m->normalize = 1; /* foil trains on cosine similarities */
  const int has = h5io_exists(f, "hf");
  if (found) *found = has;
  if (has) {
    int64_t v;
    size_t d = (size_t)d_model;
    if ((rc = h5io_get_attr_i64(f, "hf", "normalize", &v, err))) goto done;
    m->normalize = (int)v;
    if ((rc = h5io_get_attr_i64(f, "hf", "max_seq_length", &v, err))) goto done;
    m->max_seq_length = (int)v;
    if ((rc = h5io_get_attr_i64(f, "hf", "has_position_ids", &v, err))) goto done;
    m->has_position_ids = (int)v;
    h5io_get_attr_str(f, "hf", "config_json", &m->config_json, NULL);
    if ((rc = read_opt_f32(f, "hf/token_type_embeddings", 0, &m->token_type, err))) goto done;
    if (m->token_type) {
      int nd;
      uint64_t dims[8];
      if ((rc = h5io_shape(f, "hf/token_type_embeddings", &nd, dims, err))) goto done;
      if (nd != 2 || dims[1] != d || dims[0] < 1) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s: hf/token_type_embeddings is not [n, %zu]", path, d);
        goto done;
      }
      m->type_vocab = (int)dims[0];
    }
    if ((rc = read_opt_f32(f, "hf/word_embeddings_tail", 0, &m->wte_tail, err))) goto done;
    if (m->wte_tail) {
      int nd;
      uint64_t dims[8];
      if ((rc = h5io_shape(f, "hf/word_embeddings_tail", &nd, dims, err))) goto done;
      if (nd != 2 || dims[1] != d || dims[0] < 1 || dims[0] > 1000000000) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s: hf/word_embeddings_tail is not [n, %zu]", path, d);
        goto done;
      }
      m->wte_tail_rows = (int)dims[0];
    }
    if ((rc = read_opt_f32(f, "hf/position_embeddings", (size_t)max_len * d, &m->wpe_orig, err)) ||
        (rc = read_opt_f32(f, "hf/pooler_w", d * d, &m->pooler_w, err)) ||
        (rc = read_opt_f32(f, "hf/pooler_b", d, &m->pooler_b, err)))
      goto done;
    if (!m->pooler_w != !m->pooler_b)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: hf/pooler_w and hf/pooler_b come together", path);
  }
done:
  h5io_close(&f);
  return rc;
}

static int encode_len(int64_t max_seq_length, int max_len) {
  return max_seq_length > 0 && max_seq_length < max_len ? (int)max_seq_length : max_len;
}

int hf_encode_len(const char *path, int max_len) {
  h5io *f = NULL;
  int64_t v = 0;
  if (h5io_open(&f, path, CKPT_FORMAT, NULL)) return max_len;
  if (h5io_exists(f, "hf") && h5io_get_attr_i64(f, "hf", "max_seq_length", &v, NULL)) v = 0;
  h5io_close(&f);
  return encode_len(v, max_len);
}

int hf_model_encode_len(const hf_model *m) { return encode_len(m->max_seq_length, encoder_cfg(m->enc)->max_len); }

int hf_load_ckpt(const char *path, hf_model **out, foil_err *err) {
  *out = NULL;
  hf_model *m = calloc(1, sizeof *m);
  if (!m) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int rc = ckpt_open_encoder(path, &m->enc, &m->tok, NULL, err);
  if (!rc) rc = hf_read_group(path, m, encoder_cfg(m->enc)->d_model, encoder_cfg(m->enc)->max_len, NULL, err);
  if (rc) {
    hf_model_destroy(&m);
    return rc;
  }
  *out = m;
  return FOIL_OK;
}

/* ---- export ----------------------------------------------------------------------------- */

static int put_text(const char *dir, const char *name, const char *text, foil_err *err) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return foil_write_file_atomic(p, text, strlen(text), err);
}

static int put_json(const char *dir, const char *name, cJSON *j, foil_err *err) {
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  if (!s) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  size_t l = strlen(s);
  char *t = realloc(s, l + 2);
  if (!t) {
    free(s);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  t[l] = '\n';
  t[l + 1] = 0;
  int rc = put_text(dir, name, t, err);
  free(t);
  return rc;
}

static void set_num(cJSON *o, const char *k, double v) {
  cJSON_DeleteItemFromObjectCaseSensitive(o, k);
  char s[32]; /* float32 values to 7 digits: 1e-12, not 9.99999996e-13 */
  snprintf(s, sizeof s, "%.7g", v);
  cJSON_AddNumberToObject(o, k, strtod(s, NULL));
}
static void set_str(cJSON *o, const char *k, const char *v) {
  cJSON_DeleteItemFromObjectCaseSensitive(o, k);
  cJSON_AddStringToObject(o, k, v);
}

static int export_config(const hf_model *m, const char *dir, int type_vocab, foil_err *err) {
  const encoder_config *c = encoder_cfg(m->enc);
  cJSON *j = m->config_json ? cJSON_Parse(m->config_json) : NULL;
  if (!j) {
    j = cJSON_CreateObject();
    set_num(j, "attention_probs_dropout_prob", c->dropout);
    set_num(j, "initializer_range", 0.02);
    set_num(j, "pad_token_id", tokenizer_pad_id(m->tok));
    set_str(j, "position_embedding_type", "absolute");
  }
  /* what is written: the bare encoder (no task head) in float32, whatever
   * the original was (BertForMaskedLM, float16, ...) */
  cJSON_DeleteItemFromObjectCaseSensitive(j, "architectures");
  cJSON *a = cJSON_AddArrayToObject(j, "architectures");
  cJSON_AddItemToArray(a, cJSON_CreateString("BertModel"));
  set_str(j, "torch_dtype", "float32");
  set_str(j, "model_type", "bert");
  set_str(j, "hidden_act", "gelu");
  set_num(j, "hidden_size", c->d_model);
  set_num(j, "num_hidden_layers", c->n_layers);
  set_num(j, "num_attention_heads", c->n_heads);
  set_num(j, "intermediate_size", c->d_ff);
  set_num(j, "vocab_size", c->vocab + m->wte_tail_rows);
  set_num(j, "max_position_embeddings", c->max_len);
  set_num(j, "type_vocab_size", type_vocab);
  set_num(j, "hidden_dropout_prob", c->dropout);
  set_num(j, "layer_norm_eps", c->ln_eps);
  return put_json(dir, "config.json", j, err);
}

static int export_weights(const hf_model *m, const char *dir, int type_vocab, foil_err *err) {
  const encoder_config *c = encoder_cfg(m->enc);
  const encoder_tensor *T = encoder_tensors(m->enc);
  const float *P = encoder_params((encoder *)m->enc);
  const int d = c->d_model, ff = c->d_ff, L = c->n_layers, V = c->vocab, ML = c->max_len;
  const size_t dd = (size_t)d * d;
  int cap = 16 * L + 12, n = 0, rc = FOIL_OK;
  st_entry *e = calloc((size_t)cap, sizeof *e);
  char(*names)[96] = calloc((size_t)cap, sizeof *names);
  float *wpe = malloc((size_t)ML * d * sizeof(float));
  float *tt = calloc((size_t)type_vocab * d, sizeof(float));
  int64_t *pos = malloc((size_t)ML * sizeof(int64_t));
  const int VT = V + (m->wte_tail ? m->wte_tail_rows : 0); /* a padded matrix gets its kept rows back */
  float *wte = m->wte_tail ? malloc((size_t)VT * d * sizeof(float)) : NULL;
  if (!e || !names || !wpe || !tt || !pos || (m->wte_tail && !wte)) {
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    goto done;
  }
  if (m->token_type) memcpy(tt, m->token_type, (size_t)type_vocab * d * sizeof(float));
  /* Unfold: the encoder's wpe is position + token_type[0]. When it still is
   * exactly the folded original, the original is exported unchanged. */
  const float *fw = P + T[ENC_WPE].offset;
  int same = m->wpe_orig != NULL;
  for (size_t i = 0; same && i < (size_t)ML * d; i++) same = fw[i] == m->wpe_orig[i] + tt[i % d];
  for (size_t i = 0; i < (size_t)ML * d; i++) wpe[i] = same ? m->wpe_orig[i] : fw[i] - tt[i % d];
  for (int i = 0; i < ML; i++) pos[i] = i;
  if (wte) {
    memcpy(wte, P + T[ENC_WTE].offset, (size_t)V * d * sizeof(float));
    memcpy(wte + (size_t)V * d, m->wte_tail, (size_t)m->wte_tail_rows * d * sizeof(float));
  }
#define ADD(nm, dt, nd, s0, s1, ptr)                             \
  do {                                                           \
    snprintf(names[n], sizeof names[n], "%s", nm);               \
    e[n] = (st_entry){.name = names[n], .dtype = dt, .ndim = nd, \
                      .shape = {s0, s1}, .data = ptr};           \
    n++;                                                         \
  } while (0)
  ADD("embeddings.word_embeddings.weight", ST_F32, 2, VT, d, wte ? wte : P + T[ENC_WTE].offset);
  ADD("embeddings.position_embeddings.weight", ST_F32, 2, ML, d, wpe);
  ADD("embeddings.token_type_embeddings.weight", ST_F32, 2, type_vocab, d, tt);
  ADD("embeddings.LayerNorm.weight", ST_F32, 1, d, 0, P + T[ENC_EMB_LN_W].offset);
  ADD("embeddings.LayerNorm.bias", ST_F32, 1, d, 0, P + T[ENC_EMB_LN_B].offset);
  if (m->has_position_ids) ADD("embeddings.position_ids", ST_I64, 2, 1, ML, pos);
  for (int l = 0; l < L; l++) {
    char nm[96];
    const float *qkv_w = P + T[ENC_QKV_W].offset + (size_t)l * 3 * dd, *qkv_b = P + T[ENC_QKV_B].offset + (size_t)l * 3 * d;
#define LAYER(suffix, nd, s0, s1, ptr)                                \
  do {                                                                \
    snprintf(nm, sizeof nm, "encoder.layer.%d.%s", l, suffix);        \
    ADD(nm, ST_F32, nd, s0, s1, ptr);                                 \
  } while (0)
    LAYER("attention.self.query.weight", 2, d, d, qkv_w);
    LAYER("attention.self.key.weight", 2, d, d, qkv_w + dd);
    LAYER("attention.self.value.weight", 2, d, d, qkv_w + 2 * dd);
    LAYER("attention.self.query.bias", 1, d, 0, qkv_b);
    LAYER("attention.self.key.bias", 1, d, 0, qkv_b + d);
    LAYER("attention.self.value.bias", 1, d, 0, qkv_b + 2 * d);
    LAYER("attention.output.dense.weight", 2, d, d, P + T[ENC_ATTO_W].offset + (size_t)l * dd);
    LAYER("attention.output.dense.bias", 1, d, 0, P + T[ENC_ATTO_B].offset + (size_t)l * d);
    LAYER("attention.output.LayerNorm.weight", 1, d, 0, P + T[ENC_LN1_W].offset + (size_t)l * d);
    LAYER("attention.output.LayerNorm.bias", 1, d, 0, P + T[ENC_LN1_B].offset + (size_t)l * d);
    LAYER("intermediate.dense.weight", 2, ff, d, P + T[ENC_FC1_W].offset + (size_t)l * ff * d);
    LAYER("intermediate.dense.bias", 1, ff, 0, P + T[ENC_FC1_B].offset + (size_t)l * ff);
    LAYER("output.dense.weight", 2, d, ff, P + T[ENC_FC2_W].offset + (size_t)l * d * ff);
    LAYER("output.dense.bias", 1, d, 0, P + T[ENC_FC2_B].offset + (size_t)l * d);
    LAYER("output.LayerNorm.weight", 1, d, 0, P + T[ENC_LN2_W].offset + (size_t)l * d);
    LAYER("output.LayerNorm.bias", 1, d, 0, P + T[ENC_LN2_B].offset + (size_t)l * d);
#undef LAYER
  }
  if (m->pooler_w) {
    ADD("pooler.dense.weight", ST_F32, 2, d, d, m->pooler_w);
    ADD("pooler.dense.bias", ST_F32, 1, d, 0, m->pooler_b);
  }
#undef ADD
  {
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt"};
    rc = st_write(p, e, n, meta, 1, err);
  }
done:
  free(e);
  free(names);
  free(wpe);
  free(tt);
  free(pos);
  free(wte);
  return rc;
}

/* Writes every file of the folder into dir (an empty folder). */
static int export_into(const hf_model *m, const char *dir, foil_err *err) {
  const encoder_config *c = encoder_cfg(m->enc);
  int type_vocab = m->token_type ? m->type_vocab : 2;
  char sub[4096];
  int rc;
  if ((rc = export_config(m, dir, type_vocab, err)) || (rc = export_weights(m, dir, type_vocab, err))) return rc;
  /* tokenizer */
  char *vocab = NULL, *merges = NULL;
  size_t vl = 0, ml = 0;
  if ((rc = tokenizer_export(m->tok, &vocab, &vl, &merges, &ml, err))) return rc;
  snprintf(sub, sizeof sub, "%s/vocab.txt", dir);
  rc = foil_write_file_atomic(sub, vocab, vl, err);
  free(vocab);
  free(merges);
  if (rc) return rc;
  int max_seq = m->max_seq_length > 0 ? m->max_seq_length : c->max_len;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddBoolToObject(j, "do_lower_case", 1);
  cJSON_AddBoolToObject(j, "do_basic_tokenize", 1);
  cJSON_AddBoolToObject(j, "tokenize_chinese_chars", 1);
  cJSON_AddNullToObject(j, "strip_accents");
  cJSON_AddStringToObject(j, "unk_token", "[UNK]");
  cJSON_AddStringToObject(j, "sep_token", "[SEP]");
  cJSON_AddStringToObject(j, "pad_token", "[PAD]");
  cJSON_AddStringToObject(j, "cls_token", "[CLS]");
  cJSON_AddStringToObject(j, "mask_token", "[MASK]");
  cJSON_AddStringToObject(j, "tokenizer_class", "BertTokenizer");
  cJSON_AddNumberToObject(j, "model_max_length", max_seq);
  if ((rc = put_json(dir, "tokenizer_config.json", j, err))) return rc;
  j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "unk_token", "[UNK]");
  cJSON_AddStringToObject(j, "sep_token", "[SEP]");
  cJSON_AddStringToObject(j, "pad_token", "[PAD]");
  cJSON_AddStringToObject(j, "cls_token", "[CLS]");
  cJSON_AddStringToObject(j, "mask_token", "[MASK]");
  if ((rc = put_json(dir, "special_tokens_map.json", j, err))) return rc;
  /* sentence-transformers */
  j = cJSON_CreateArray();
  static const char *const types[] = {"sentence_transformers.models.Transformer",
                                      "sentence_transformers.models.Pooling",
                                      "sentence_transformers.models.Normalize"};
  static const char *const paths[] = {"", "1_Pooling", "2_Normalize"};
  for (int i = 0; i < 2 + (m->normalize != 0); i++) {
    cJSON *o = cJSON_CreateObject();
    char idx[12]; /* any int: "-2147483648" and its NUL */
    snprintf(idx, sizeof idx, "%d", i);
    cJSON_AddNumberToObject(o, "idx", i);
    cJSON_AddStringToObject(o, "name", idx);
    cJSON_AddStringToObject(o, "path", paths[i]);
    cJSON_AddStringToObject(o, "type", types[i]);
    cJSON_AddItemToArray(j, o);
  }
  if ((rc = put_json(dir, "modules.json", j, err))) return rc;
  snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
  if ((rc = foil_mkdirs(sub, err))) return rc;
  j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "word_embedding_dimension", c->d_model);
  cJSON_AddBoolToObject(j, "pooling_mode_cls_token", c->pooling == POOL_FIRST);
  cJSON_AddBoolToObject(j, "pooling_mode_mean_tokens", c->pooling == POOL_MEAN);
  cJSON_AddBoolToObject(j, "pooling_mode_max_tokens", 0);
  cJSON_AddBoolToObject(j, "pooling_mode_mean_sqrt_len_tokens", 0);
  if ((rc = put_json(sub, "config.json", j, err))) return rc;
  if (m->normalize) {
    snprintf(sub, sizeof sub, "%s/2_Normalize", dir);
    if ((rc = foil_mkdirs(sub, err))) return rc;
  }
  j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "max_seq_length", max_seq);
  cJSON_AddBoolToObject(j, "do_lower_case", 0); /* the tokenizer lower-cases itself */
  if ((rc = put_json(dir, "sentence_bert_config.json", j, err))) return rc;
  j = cJSON_CreateObject();
  cJSON *v = cJSON_AddObjectToObject(j, "__version__");
  cJSON_AddStringToObject(v, "sentence_transformers", "2.7.0");
  cJSON_AddStringToObject(v, "foil", "0.1.0");
  cJSON_AddObjectToObject(j, "prompts");
  cJSON_AddNullToObject(j, "default_prompt_name");
  return put_json(dir, "config_sentence_transformers.json", j, err);
}

/* dir may receive the export: absent, or an empty folder (not a link).
 * Refusing a non-empty one keeps another model's files (a tokenizer.json
 * that transformers would prefer over the new vocab.txt, a
 * pytorch_model.bin) from mixing into the export. */
static int check_target(const char *dir, foil_err *err) {
  struct stat st;
  if (lstat(dir, &st) != 0) {
    if (errno == ENOENT) return FOIL_OK;
    return foil_err_set(err, FOIL_EPERM, "%s: %s", dir, strerror(errno));
  }
  if (!S_ISDIR(st.st_mode))
    return foil_err_set(err, FOIL_EEXIST, "%s exists and is not a folder; export writes a new folder", dir);
  DIR *d = opendir(dir);
  if (!d) return foil_err_set(err, FOIL_EPERM, "%s: %s", dir, strerror(errno));
  const struct dirent *e;
  int empty = 1;
  while (empty && (e = readdir(d)))
    empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
  closedir(d);
  if (!empty)
    return foil_err_set(err, FOIL_EEXIST,
                        "%s exists and is not empty; export writes a new folder (remove it, or name another)", dir);
  return FOIL_OK;
}

int hf_export(const hf_model *m, const char *dir_in, foil_err *err) {
  const encoder_config *c = encoder_cfg(m->enc);
  if (c->pre_ln)
    return foil_err_set(err, FOIL_EINVAL, "the model is pre-LN; BERT (and so the export) is post-LN");
  if (c->proj_dim)
    return foil_err_set(err, FOIL_EINVAL,
                        "the model has a projection head (proj_dim %d); export supports BERT + pooling only",
                        c->proj_dim);
  if (tokenizer_kind(m->tok) != TOKENIZER_WORDPIECE)
    return foil_err_set(err, FOIL_EINVAL, "the model's tokenizer is BPE; BERT export needs WordPiece");
  char dir[3400], tmp[3584]; /* tmp leaves room for the file names in it */
  size_t n = strlen(dir_in);
  while (n > 1 && dir_in[n - 1] == '/') n--; /* "out/": the temporary goes beside out, not in it */
  if (!n || n >= sizeof dir) return foil_err_set(err, FOIL_EINVAL, "export: bad folder name \"%s\"", dir_in);
  memcpy(dir, dir_in, n);
  dir[n] = 0;
  int rc;
  if ((rc = check_target(dir, err)) || (rc = foil_mkdirs_parent(dir, err)))
    return rc;
  foil_tmp_sweep_path(dir); /* an export killed before its rename left its folder */
  if ((rc = foil_tmp_name(dir, tmp, sizeof tmp, err))) return rc;
  if (mkdir(tmp, 0755) != 0) return foil_err_set(err, FOIL_EPERM, "%s: cannot create: %s", tmp, strerror(errno));
  /* every file is fsynced (and its folder) as it is written */
  rc = export_into(m, tmp, err);
  if (!rc && rename(tmp, dir) != 0) /* over an empty folder only: ENOTEMPTY if one filled meanwhile */
    rc = foil_err_set(err, errno == ENOTEMPTY || errno == EEXIST ? FOIL_EEXIST : FOIL_EPERM,
                      "%s: cannot publish the export there: %s", dir, strerror(errno));
  if (rc) {
    foil_remove_tree(tmp);
    return rc;
  }
  return foil_fsync_parent(dir, err);
}
