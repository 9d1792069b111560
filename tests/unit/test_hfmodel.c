/* test_hfmodel.c — storage/hfmodel on a tiny hand-built BERT folder:
 * tensors land where encoder.h says (q/k/v stacked, token type 0 folded
 * into positions), checkpoint -> export restores every tensor bit for bit,
 * and broken folders are refused with the file and what is wrong. Also
 * the truncation length as sentence-transformers 2.7 picks it, the
 * Transformer module's path, a padded vocabulary, what export's
 * config.json says, and export's refusal of a non-empty folder and its
 * all-or-nothing publish. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "kernels/kernels.h"
#include "storage/ckpt.h"
#include "storage/hfmodel.h"
#include "storage/safetensors.h"
#include "tests/test.h"
#include "tests/unit/dead_pid.h"

enum { L = 1, D = 8, FF = 16, P = 16, TV = 2 };
static const char *VOCAB[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", "."};
enum { V = 10 };
static char root[512];

static void put(const char *dir, const char *name, const char *text) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
}

static const char *CONFIG = "{\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":8,"
                            "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":16,"
                            "\"vocab_size\":10,\"max_position_embeddings\":16,\"type_vocab_size\":2,"
                            "\"layer_norm_eps\":1e-12}";

static float vals[20000];
static int file_vocab = V; /* rows of word_embeddings make_model writes */

/* Writes a complete folder; skip names one tensor to leave out, bad_shape
 * one to write with a wrong shape. */
static void make_model(const char *dir, const char *skip, const char *bad_shape) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s/1_Pooling'", dir, dir);
  if (system(cmd) != 0) return;
  put(dir, "config.json", CONFIG);
  char vocab[256] = "";
  for (int i = 0; i < V; i++) {
    strcat(vocab, VOCAB[i]);
    strcat(vocab, "\n");
  }
  put(dir, "vocab.txt", vocab);
  put(dir, "modules.json",
      "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
      "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
      "{\"idx\":2,\"name\":\"2\",\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}]");
  put(dir, "1_Pooling/config.json",
      "{\"word_embedding_dimension\":8,\"pooling_mode_cls_token\":false,\"pooling_mode_mean_tokens\":true}");
  put(dir, "tokenizer_config.json", "{\"do_lower_case\":true}");
  static const struct {
    const char *name;
    int s0, s1;
  } ts[] = {
      {"embeddings.word_embeddings.weight", 0 /* file_vocab */, D}, {"embeddings.position_embeddings.weight", P, D},
      {"embeddings.token_type_embeddings.weight", TV, D}, {"embeddings.LayerNorm.weight", D, 0},
      {"embeddings.LayerNorm.bias", D, 0},
      {"encoder.layer.0.attention.self.query.weight", D, D}, {"encoder.layer.0.attention.self.query.bias", D, 0},
      {"encoder.layer.0.attention.self.key.weight", D, D}, {"encoder.layer.0.attention.self.key.bias", D, 0},
      {"encoder.layer.0.attention.self.value.weight", D, D}, {"encoder.layer.0.attention.self.value.bias", D, 0},
      {"encoder.layer.0.attention.output.dense.weight", D, D}, {"encoder.layer.0.attention.output.dense.bias", D, 0},
      {"encoder.layer.0.attention.output.LayerNorm.weight", D, 0},
      {"encoder.layer.0.attention.output.LayerNorm.bias", D, 0},
      {"encoder.layer.0.intermediate.dense.weight", FF, D}, {"encoder.layer.0.intermediate.dense.bias", FF, 0},
      {"encoder.layer.0.output.dense.weight", D, FF}, {"encoder.layer.0.output.dense.bias", D, 0},
      {"encoder.layer.0.output.LayerNorm.weight", D, 0}, {"encoder.layer.0.output.LayerNorm.bias", D, 0},
      {"pooler.dense.weight", D, D}, {"pooler.dense.bias", D, 0},
  };
  enum { NT = sizeof ts / sizeof ts[0] };
  st_entry e[NT + 1];
  int n = 0;
  size_t off = 0;
  for (int i = 0; i < NT; i++) {
    if (skip && !strcmp(skip, ts[i].name)) continue;
    int s0 = (ts[i].s0 ? ts[i].s0 : file_vocab) - (bad_shape && !strcmp(bad_shape, ts[i].name));
    e[n] = (st_entry){.name = ts[i].name, .dtype = ST_F32, .ndim = ts[i].s1 ? 2 : 1,
                      .shape = {s0, ts[i].s1}, .data = vals + off};
    off += (size_t)s0 * (ts[i].s1 ? ts[i].s1 : 1);
    n++;
  }
  static int64_t pos[P];
  for (int i = 0; i < P; i++) pos[i] = i;
  e[n++] = (st_entry){.name = "embeddings.position_ids", .dtype = ST_I64, .ndim = 2, .shape = {1, P}, .data = pos};
  char p[1200];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  foil_err err = {0};
  CHECKF(st_write(p, e, n, NULL, 0, &err) == FOIL_OK, "%s", err.msg);
}

static void test_roundtrip(void) {
  char dir[700], ck[700], ex[700];
  snprintf(dir, sizeof dir, "%s/tiny", root);
  snprintf(ck, sizeof ck, "%s/tiny.h5", root);
  snprintf(ex, sizeof ex, "%s/tiny_export", root);
  make_model(dir, NULL, NULL);
  foil_err err = {0};
  hf_model *m = NULL;
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK, "%s", err.msg);
  if (!m) return;
  const encoder_config *c = encoder_cfg(m->enc);
  CHECK(c->n_layers == L && c->d_model == D && c->n_heads == 2 && c->d_ff == FF && c->vocab == V &&
        c->max_len == P && c->pooling == POOL_MEAN && c->ln_eps == 1e-12f && !c->pre_ln);
  CHECK(m->normalize == 1 && m->type_vocab == TV && m->pooler_w && m->has_position_ids);
  /* where the tensors went */
  st_file *f = NULL;
  char sp[800];
  snprintf(sp, sizeof sp, "%s/model.safetensors", dir);
  CHECKF(st_open(&f, sp, &err) == FOIL_OK, "%s", err.msg);
  const encoder_tensor *T = encoder_tensors(m->enc);
  const float *par = encoder_params(m->enc);
  float buf[P * D], tt[TV * D];
  st_read_f32(f, st_find(f, "encoder.layer.0.attention.self.key.weight"), buf, D * D, &err);
  CHECK(!memcmp(par + T[ENC_QKV_W].offset + D * D, buf, sizeof(float) * D * D));
  st_read_f32(f, st_find(f, "encoder.layer.0.attention.self.value.bias"), buf, D, &err);
  CHECK(!memcmp(par + T[ENC_QKV_B].offset + 2 * D, buf, sizeof(float) * D));
  st_read_f32(f, st_find(f, "embeddings.position_embeddings.weight"), buf, P * D, &err);
  st_read_f32(f, st_find(f, "embeddings.token_type_embeddings.weight"), tt, TV * D, &err);
  int folded = 1;
  for (int i = 0; i < P * D; i++) folded &= par[T[ENC_WPE].offset + i] == buf[i] + tt[i % D];
  CHECK(folded);
  /* checkpoint and export; the encoding length is max_seq_length when below the positions */
  CHECK(hf_encode_len(ck, P) == P); /* no file yet: the positions */
  m->max_seq_length = P - 1;
  CHECKF(hf_save_ckpt(m, ck, &err) == FOIL_OK, "%s", err.msg);
  CHECK(hf_encode_len(ck, P) == P - 1 && hf_encode_len(ck, P - 3) == P - 3);
  hf_model_destroy(&m);
  CHECKF(hf_load_ckpt(ck, &m, &err) == FOIL_OK, "%s", err.msg);
  if (m) CHECK(m->max_seq_length == P - 1);
  if (m) CHECKF(hf_export(m, ex, &err) == FOIL_OK, "%s", err.msg);
  st_file *g = NULL;
  snprintf(sp, sizeof sp, "%s/model.safetensors", ex);
  CHECKF(st_open(&g, sp, &err) == FOIL_OK, "%s", err.msg);
  if (f && g) {
    CHECK(st_count(f) == st_count(g));
    for (int i = 0; i < st_count(f); i++) {
      const st_tensor *a = st_at(f, i), *b = st_find(g, a->name);
      CHECKF(b && a->dtype == b->dtype && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes),
             "exported %s differs", a->name);
    }
  }
  const char *files[] = {"config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                         "modules.json", "1_Pooling/config.json", "2_Normalize", "sentence_bert_config.json",
                         "config_sentence_transformers.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(sp, sizeof sp, "%s/%s", ex, files[i]);
    CHECKF(access(sp, F_OK) == 0, "export lacks %s", files[i]);
  }
  /* a trained wpe (changed) is unfolded: wpe - token_type[0] */
  if (m) {
    T = encoder_tensors(m->enc); /* the reloaded model's views */
    float *w = encoder_params(m->enc) + T[ENC_WPE].offset;
    w[3] += 1.0f;
    strcat(ex, "2/"); /* a trailing slash: the folder itself, not a temporary inside it */
    CHECKF(hf_export(m, ex, &err) == FOIL_OK, "%s", err.msg);
    snprintf(sp, sizeof sp, "%smodel.safetensors", ex);
    st_close(&g);
    CHECK(st_open(&g, sp, &err) == FOIL_OK);
    float got[P * D];
    if (g) st_read_f32(g, st_find(g, "embeddings.position_embeddings.weight"), got, P * D, &err);
    CHECK(g && got[3] == w[3] - tt[3] && got[4] == w[4] - tt[4]);
  }
  st_close(&f);
  st_close(&g);
  hf_model_destroy(&m);
}

/* Imports dir and expects code with every `want` in the message. */
static void refused(const char *dir, int code, const char *want1, const char *want2) {
  hf_model *m = NULL;
  foil_err err = {0};
  int rc = hf_import(dir, &m, &err);
  CHECKF(rc == code && !m, "%s: rc %d (want %d): %s", dir, rc, code, err.msg);
  CHECKF(strstr(err.msg, want1) != NULL, "message lacks '%s': %s", want1, err.msg);
  CHECKF(!want2 || strstr(err.msg, want2) != NULL, "message lacks '%s': %s", want2, err.msg);
  hf_model_destroy(&m);
}

static void test_refusals(void) {
  char dir[700], p[2000];
  snprintf(dir, sizeof dir, "%s/bad", root);
  refused(dir, FOIL_ENOTFOUND, "no such model folder", NULL);
  make_model(dir, NULL, NULL);
  snprintf(p, sizeof p, "rm '%s/config.json'", dir);
  CHECK(system(p) == 0);
  refused(dir, FOIL_ENOTFOUND, "config.json", NULL);
  make_model(dir, NULL, NULL);
  put(dir, "config.json", "{\"model_type\":\"roberta\"}");
  refused(dir, FOIL_EINVAL, "roberta", "config.json");
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_act\":\"relu\"}");
  refused(dir, FOIL_EINVAL, "relu", NULL);
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_size\":8}");
  refused(dir, FOIL_EINVAL, "num_hidden_layers", "required");
  /* a causal BERT (transformers masks the future) or a cross-attending one */
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_size\":8,\"is_decoder\":true}");
  refused(dir, FOIL_EINVAL, "is_decoder", "config.json");
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_size\":8,\"add_cross_attention\":true}");
  refused(dir, FOIL_EINVAL, "add_cross_attention", "config.json");
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_size\":8,\"is_decoder\":1}"); /* Python: truthy */
  refused(dir, FOIL_EINVAL, "is_decoder", "config.json");
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_size\":8,\"is_decoder\":false,\"add_cross_attention\":0}");
  refused(dir, FOIL_EINVAL, "num_hidden_layers", "required"); /* past both flags */
  /* options present but not strings (transformers cannot build these) */
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_act\":null}");
  refused(dir, FOIL_EINVAL, "\"hidden_act\" must be a string", "config.json");
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_act\":3}");
  refused(dir, FOIL_EINVAL, "\"hidden_act\" must be a string", NULL);
  put(dir, "config.json", "{\"model_type\":[\"bert\"]}");
  refused(dir, FOIL_EINVAL, "\"model_type\" must be a string", NULL);
  put(dir, "config.json", "{\"model_type\":\"bert\",\"position_embedding_type\":null}");
  refused(dir, FOIL_EINVAL, "\"position_embedding_type\" must be a string", NULL);
  make_model(dir, NULL, NULL);
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":8,"
                          "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":16,"
                          "\"vocab_size\":10,\"max_position_embeddings\":16,\"layer_norm_eps\":\"1e-12\"}");
  refused(dir, FOIL_EINVAL, "layer_norm_eps", "config.json");
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_size\":8}");
  put(dir, "config.json", "{\"model_type\":\"bert\",");
  refused(dir, FOIL_EINVAL, "not valid JSON", NULL);
  make_model(dir, NULL, NULL);
  put(dir, "1_Pooling/config.json", "{\"pooling_mode_max_tokens\":true}");
  refused(dir, FOIL_EINVAL, "pooling_mode_max_tokens", "1_Pooling/config.json");
  make_model(dir, NULL, NULL);
  put(dir, "1_Pooling/config.json", "{\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":false}");
  hf_model *m = NULL;
  foil_err err = {0};
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK && m && encoder_cfg(m->enc)->pooling == POOL_FIRST, "%s", err.msg);
  hf_model_destroy(&m);
  put(dir, "modules.json", "[{\"type\":\"sentence_transformers.models.Transformer\"},"
                           "{\"type\":\"sentence_transformers.models.Dense\"}]");
  refused(dir, FOIL_EINVAL, "sentence_transformers.models.Dense", "modules.json");
  make_model(dir, NULL, NULL);
  put(dir, "tokenizer_config.json", "{\"do_lower_case\":false}");
  refused(dir, FOIL_EINVAL, "do_lower_case", NULL);
  make_model(dir, NULL, NULL);
  snprintf(p, sizeof p, "mv '%s/model.safetensors' '%s/pytorch_model.bin'", dir, dir);
  CHECK(system(p) == 0);
  refused(dir, FOIL_EINVAL, "pytorch_model.bin", "convert");
  snprintf(p, sizeof p, "rm '%s/pytorch_model.bin'", dir);
  CHECK(system(p) == 0);
  refused(dir, FOIL_ENOTFOUND, "model.safetensors", NULL);
  make_model(dir, "encoder.layer.0.attention.self.key.bias", NULL);
  refused(dir, FOIL_EINVAL, "encoder.layer.0.attention.self.key.bias", "missing");
  make_model(dir, NULL, "encoder.layer.0.intermediate.dense.weight");
  refused(dir, FOIL_EINVAL, "intermediate.dense.weight\" has shape [15,8]", "[16,8]");
  /* a config.json far larger than the weights (found by fuzz_foreign: the
   * encoder of 65536 x 1024 layers was allocated before the file was read) */
  make_model(dir, NULL, NULL);
  snprintf(p, sizeof p, "rm '%s/modules.json'", dir); /* no pooling config to disagree first */
  CHECK(system(p) == 0);
  put(dir, "config.json",
      "{\"model_type\":\"bert\",\"hidden_size\":65536,\"num_hidden_layers\":1024,\"num_attention_heads\":1,"
      "\"intermediate_size\":1048576,\"vocab_size\":10}");
  refused(dir, FOIL_EINVAL, "model.safetensors", "config.json describes");
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_size\":8,\"num_hidden_layers\":1,"
                          "\"num_attention_heads\":2,\"intermediate_size\":16,\"vocab_size\":10,"
                          "\"type_vocab_size\":1000000}");
  refused(dir, FOIL_EINVAL, "config.json describes", "holds only");
  make_model(dir, NULL, NULL);
  snprintf(p, sizeof p, "rm '%s/vocab.txt'", dir);
  CHECK(system(p) == 0);
  refused(dir, FOIL_ENOTFOUND, "vocab.txt", NULL);
}

/* modules.json with a Transformer and a Pooling module at path (NULL: no "path" key) */
static void pool_at(const char *dir, const char *path) {
  char j[1500];
  snprintf(j, sizeof j,
           "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
           "{%s%s%s\"type\":\"sentence_transformers.models.Pooling\"}]",
           path ? "\"path\":\"" : "", path ? path : "", path ? "\"," : "");
  put(dir, "modules.json", j);
}

/* Imports dir and expects success with CLS pooling (only `outside` and the
 * aliases of 1_Pooling below say CLS; make_model's 1_Pooling says mean). */
static void accepted(const char *dir, int want_pooling) {
  hf_model *m = NULL;
  foil_err err = {0};
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK && m, "%s: %s", dir, err.msg);
  if (m) CHECKF(encoder_cfg(m->enc)->pooling == want_pooling, "%s: pooling %d", dir, encoder_cfg(m->enc)->pooling);
  hf_model_destroy(&m);
}

/* A Pooling module's "path" must stay inside the model folder: "..", an
 * absolute path or a symlink out would read another folder's config.json. */
static void test_module_paths(void) {
  char dir[700], out[700], p[4096], abs_out[1000];
  snprintf(dir, sizeof dir, "%s/paths", root);
  snprintf(out, sizeof out, "%s/outside", root);
  make_model(dir, NULL, NULL);
  snprintf(p, sizeof p, "rm -rf '%s' && mkdir -p '%s'", out, out);
  CHECK(system(p) == 0);
  /* a valid pooling config: imported from outside, it would be used */
  put(out, "config.json", "{\"word_embedding_dimension\":8,\"pooling_mode_cls_token\":true,"
                          "\"pooling_mode_mean_tokens\":false}");
  pool_at(dir, "../outside");
  refused(dir, FOIL_EINVAL, "modules.json", "\"../outside\"");
  pool_at(dir, "1_Pooling/../../outside");
  refused(dir, FOIL_EINVAL, "modules.json", "\"1_Pooling/../../outside\"");
  pool_at(dir, "..");
  refused(dir, FOIL_EINVAL, "modules.json", "\"..\"");
  snprintf(abs_out, sizeof abs_out, "\"%s\"", out);
  pool_at(dir, out);
  refused(dir, FOIL_EINVAL, "modules.json", abs_out);
  snprintf(p, sizeof p, "%s/1_Out", dir);
  CHECK(symlink("../outside", p) == 0);
  pool_at(dir, "1_Out");
  refused(dir, FOIL_EINVAL, "modules.json", "\"1_Out\"");
  snprintf(p, sizeof p, "%s/1_AbsOut", dir);
  CHECK(symlink(out, p) == 0);
  pool_at(dir, "1_AbsOut/");
  refused(dir, FOIL_EINVAL, "modules.json", "\"1_AbsOut/\"");
  /* no "path": the default 1_Pooling, here a symlink out */
  snprintf(p, sizeof p, "rm -rf '%s/1_Pooling' && ln -s ../outside '%s/1_Pooling'", dir, dir);
  CHECK(system(p) == 0);
  pool_at(dir, NULL);
  refused(dir, FOIL_EINVAL, "modules.json", "\"1_Pooling\"");
  /* a path outside that is only another module's: refused too */
  make_model(dir, NULL, NULL);
  put(dir, "modules.json",
      "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
      "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
      "{\"path\":\"../x\",\"type\":\"sentence_transformers.models.Normalize\"}]");
  refused(dir, FOIL_EINVAL, "modules.json", "\"../x\"");
  /* inside is fine: odd spellings, a symlink within, the folder itself
   * reached through a symlink, and a Hugging Face cache layout (the
   * folder is real, its config.json a link to a blob outside) */
  make_model(dir, NULL, NULL);
  pool_at(dir, "./1_Pooling/");
  accepted(dir, POOL_MEAN);
  snprintf(p, sizeof p, "mkdir '%s/..pool' && cp '%s/config.json' '%s/..pool/'", dir, out, dir);
  CHECK(system(p) == 0);
  pool_at(dir, "..pool");
  accepted(dir, POOL_FIRST);
  snprintf(p, sizeof p, "%s/1_Alias", dir);
  CHECK(symlink("..pool", p) == 0);
  pool_at(dir, "1_Alias");
  accepted(dir, POOL_FIRST);
  snprintf(p, sizeof p, "rm -f '%s/1_Pooling/config.json' && ln -s '%s/config.json' '%s/1_Pooling/config.json'", dir,
           out, dir);
  CHECK(system(p) == 0);
  pool_at(dir, "1_Pooling");
  accepted(dir, POOL_FIRST);
  char via[800];
  snprintf(via, sizeof via, "%s/via", root);
  CHECK(symlink("paths", via) == 0);
  accepted(via, POOL_FIRST);
}

/* dir/name parsed as JSON (NULL when absent or bad); the caller deletes it. */
static cJSON *json_at(const char *dir, const char *name) {
  char p[1200], *text = NULL;
  size_t n = 0;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (foil_read_file(p, &text, &n, NULL)) return NULL;
  cJSON *j = cJSON_Parse(text);
  free(text);
  return j;
}

static double json_num(const char *dir, const char *name, const char *key) {
  cJSON *j = json_at(dir, name);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
  cJSON_Delete(j);
  return d;
}

/* Imports dir and returns max_seq_length (-1: refused). */
static int imported_max_seq(const char *dir) {
  hf_model *m = NULL;
  foil_err err = {0};
  int rc = hf_import(dir, &m, &err), v = rc ? -1 : m->max_seq_length;
  CHECKF(rc == FOIL_OK, "%s: %s", dir, err.msg);
  hf_model_destroy(&m);
  return v;
}

/* Review finding 1: without max_seq_length, sentence-transformers 2.7
 * truncates at min(max_position_embeddings, tokenizer model_max_length),
 * HF's "no limit" (1e30) counting as unset; export writes what import
 * used, so the exported folder truncates there too. */
static void test_max_seq(void) {
  char dir[700], ck[700], ex[700];
  snprintf(dir, sizeof dir, "%s/maxseq", root);
  snprintf(ck, sizeof ck, "%s/maxseq.h5", root);
  snprintf(ex, sizeof ex, "%s/maxseq_export", root);
  make_model(dir, NULL, NULL);
  put(dir, "tokenizer_config.json", "{\"do_lower_case\":true,\"model_max_length\":12}");
  CHECK(imported_max_seq(dir) == 12);
  put(dir, "tokenizer_config.json", "{\"do_lower_case\":true,\"model_max_length\":100}");
  CHECK(imported_max_seq(dir) == P); /* min with the positions */
  put(dir, "tokenizer_config.json", "{\"model_max_length\":1000000000000000019884624838656}");
  CHECK(imported_max_seq(dir) == 0); /* unset: the positions */
  put(dir, "tokenizer_config.json", "{\"model_max_length\":\"12\"}");
  refused(dir, FOIL_EINVAL, "model_max_length", "tokenizer_config.json");
  put(dir, "tokenizer_config.json", "{\"model_max_length\":12}");
  put(dir, "sentence_bert_config.json", "{\"max_seq_length\":10}");
  CHECK(imported_max_seq(dir) == 10); /* sentence_bert_config.json first */
  put(dir, "sentence_bert_config.json", "{\"max_seq_length\":null}");
  CHECK(imported_max_seq(dir) == 12); /* null is None: the tokenizer's */
  char p[1500];
  snprintf(p, sizeof p, "rm '%s/modules.json' '%s/sentence_bert_config.json'", dir, dir);
  CHECK(system(p) == 0);
  CHECK(imported_max_seq(dir) == 12); /* a plain Hugging Face folder */
  hf_model *m = NULL;
  foil_err err = {0};
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK, "%s", err.msg);
  if (m) CHECKF(hf_save_ckpt(m, ck, &err) == FOIL_OK, "%s", err.msg);
  hf_model_destroy(&m);
  CHECK(hf_encode_len(ck, P) == 12);
  CHECKF(hf_load_ckpt(ck, &m, &err) == FOIL_OK, "%s", err.msg);
  if (m) CHECKF(hf_export(m, ex, &err) == FOIL_OK, "%s", err.msg);
  hf_model_destroy(&m);
  CHECK(json_num(ex, "sentence_bert_config.json", "max_seq_length") == 12);
  CHECK(json_num(ex, "tokenizer_config.json", "model_max_length") == 12);
}

/* Review finding 4: sentence-transformers reads the model from the
 * Transformer module's path (older folders: 0_Transformer/). */
static void test_transformer_path(void) {
  char dir[700], p[3000];
  snprintf(dir, sizeof dir, "%s/trpath", root);
  make_model(dir, NULL, NULL);
  snprintf(p, sizeof p,
           "cd '%s' && mkdir 0_Transformer && mv config.json model.safetensors vocab.txt tokenizer_config.json "
           "0_Transformer/",
           dir);
  CHECK(system(p) == 0);
  put(dir, "modules.json",
      "[{\"idx\":0,\"name\":\"0\",\"path\":\"0_Transformer\",\"type\":\"sentence_transformers.models.Transformer\"},"
      "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]");
  snprintf(p, sizeof p, "%s/0_Transformer", dir);
  put(p, "sentence_bert_config.json", "{\"max_seq_length\":9}");
  put(dir, "sentence_bert_config.json", "{\"max_seq_length\":5}"); /* not the module's: ignored */
  hf_model *m = NULL;
  foil_err err = {0};
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK && m, "%s", err.msg);
  if (m) CHECK(m->max_seq_length == 9 && encoder_cfg(m->enc)->d_model == D && !m->normalize);
  hf_model_destroy(&m);
  /* a root config.json of another model is not the one read */
  put(dir, "config.json", "{\"model_type\":\"roberta\"}");
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK && m, "%s", err.msg);
  hf_model_destroy(&m);
  /* the module's folder lacking config.json: named */
  snprintf(p, sizeof p, "rm '%s/0_Transformer/config.json'", dir);
  CHECK(system(p) == 0);
  refused(dir, FOIL_ENOTFOUND, "0_Transformer/config.json", "missing");
}

/* Review finding 9: vocab_size above vocab.txt's lines (a padded matrix)
 * imports with one row per token (so the checkpoint opens as every foil
 * job opens it: tokenizer size == vocab), and export restores the rows. */
static void test_padded_vocab(void) {
  char dir[700], ck[700], ex[700], sp[800];
  snprintf(dir, sizeof dir, "%s/padded", root);
  snprintf(ck, sizeof ck, "%s/padded.h5", root);
  snprintf(ex, sizeof ex, "%s/padded_export", root);
  file_vocab = V + 2;
  make_model(dir, NULL, NULL);
  file_vocab = V;
  put(dir, "config.json", "{\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":8,"
                          "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":16,"
                          "\"vocab_size\":12,\"max_position_embeddings\":16,\"type_vocab_size\":2}");
  hf_model *m = NULL;
  foil_err err = {0};
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK && m, "%s", err.msg);
  if (!m) return;
  CHECK(encoder_cfg(m->enc)->vocab == V && tokenizer_vocab_size(m->tok) == V && m->wte_tail_rows == 2);
  CHECKF(hf_save_ckpt(m, ck, &err) == FOIL_OK, "%s", err.msg);
  hf_model_destroy(&m);
  /* what init_from, refresh and serving read */
  encoder_config cfg;
  CHECKF(ckpt_read_config(ck, &cfg, &err) == FOIL_OK && cfg.vocab == V, "%s", err.msg);
  CHECKF(hf_load_ckpt(ck, &m, &err) == FOIL_OK && m, "%s", err.msg);
  if (!m) return;
  CHECK(m->wte_tail_rows == 2);
  CHECKF(hf_export(m, ex, &err) == FOIL_OK, "%s", err.msg);
  hf_model_destroy(&m);
  CHECK(json_num(ex, "config.json", "vocab_size") == V + 2);
  st_file *a = NULL, *b = NULL;
  snprintf(sp, sizeof sp, "%s/model.safetensors", dir);
  CHECK(st_open(&a, sp, &err) == FOIL_OK);
  snprintf(sp, sizeof sp, "%s/model.safetensors", ex);
  CHECK(st_open(&b, sp, &err) == FOIL_OK);
  const st_tensor *x = a ? st_find(a, "embeddings.word_embeddings.weight") : NULL;
  const st_tensor *y = b ? st_find(b, "embeddings.word_embeddings.weight") : NULL;
  CHECK(x && y && y->shape[0] == V + 2 && x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes));
  st_close(&a);
  st_close(&b);
}

/* Review finding 8: export's config.json describes the bare float32
 * encoder it writes, not the original's head or dtype. */
static void test_export_config(void) {
  char dir[700], ex[700];
  snprintf(dir, sizeof dir, "%s/mlm", root);
  snprintf(ex, sizeof ex, "%s/mlm_export", root);
  make_model(dir, NULL, NULL);
  put(dir, "config.json", "{\"architectures\":[\"BertForMaskedLM\"],\"torch_dtype\":\"float16\","
                          "\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":8,"
                          "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":16,"
                          "\"vocab_size\":10,\"max_position_embeddings\":16,\"type_vocab_size\":2}");
  hf_model *m = NULL;
  foil_err err = {0};
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK && m, "%s", err.msg);
  if (m) CHECKF(hf_export(m, ex, &err) == FOIL_OK, "%s", err.msg);
  hf_model_destroy(&m);
  cJSON *j = json_at(ex, "config.json");
  const cJSON *ar = cJSON_GetObjectItemCaseSensitive(j, "architectures");
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "torch_dtype");
  CHECK(cJSON_GetArraySize(ar) == 1 && cJSON_IsString(ar->child) && !strcmp(ar->child->valuestring, "BertModel"));
  CHECK(cJSON_IsString(dt) && !strcmp(dt->valuestring, "float32"));
  cJSON_Delete(j);
}

/* entries of dir whose names start with prefix */
static int count_entries(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return 0;
  for (struct dirent *e; (e = readdir(d));)
    n += !strncmp(e->d_name, prefix, strlen(prefix));
  closedir(d);
  return n;
}

/* Review finding 3: export refuses a folder holding anything (another
 * model's tokenizer.json would win over the new vocab.txt), accepts an
 * empty one, and publishes all or nothing: a write failing half-way
 * leaves neither the folder nor its temporary. */
static void test_export_publish(void) {
  char dir[700], ck[700], out[700], p[1500];
  snprintf(dir, sizeof dir, "%s/pub", root);
  snprintf(ck, sizeof ck, "%s/pub.h5", root);
  make_model(dir, NULL, NULL);
  hf_model *m = NULL;
  foil_err err = {0};
  CHECKF(hf_import(dir, &m, &err) == FOIL_OK && m, "%s", err.msg);
  if (!m) return;
  /* a folder with a stale tokenizer.json: refused, left as it was */
  snprintf(out, sizeof out, "%s/pub_stale", root);
  snprintf(p, sizeof p, "mkdir -p '%s'", out);
  CHECK(system(p) == 0);
  put(out, "tokenizer.json", "{\"stale\":true}");
  CHECK(hf_export(m, out, &err) == FOIL_EEXIST && strstr(err.msg, "not empty") && strstr(err.msg, out));
  CHECK(count_entries(out, "") == 3); /* ".", "..", tokenizer.json */
  CHECK(count_entries(root, "pub_stale.tmp") == 0);
  snprintf(p, sizeof p, "%s/config.json", out);
  CHECK(access(p, F_OK) != 0);
  /* a file of that name: refused */
  snprintf(p, sizeof p, "%s/tokenizer.json", out);
  CHECK(hf_export(m, p, &err) == FOIL_EEXIST && strstr(err.msg, "not a folder"));
  /* an empty folder, and missing parents: fine */
  snprintf(out, sizeof out, "%s/pub_empty", root);
  snprintf(p, sizeof p, "mkdir -p '%s'", out);
  CHECK(system(p) == 0);
  CHECKF(hf_export(m, out, &err) == FOIL_OK, "%s", err.msg);
  snprintf(p, sizeof p, "%s/model.safetensors", out);
  CHECK(access(p, F_OK) == 0);
  snprintf(out, sizeof out, "%s/pub_new/a/b", root);
  CHECKF(hf_export(m, out, &err) == FOIL_OK, "%s", err.msg);
  /* the weights' write fails (a file size limit: EFBIG, as ENOSPC would):
   * config.json was written first, yet nothing is left */
  snprintf(out, sizeof out, "%s/pub_fail", root);
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 2048, .rlim_max = 2048};
    setrlimit(RLIMIT_FSIZE, &rl);
    foil_err e2 = {0};
    _exit(hf_export(m, out, &e2) == FOIL_OK ? 0 : 3);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 3);
  CHECKF(access(out, F_OK) != 0, "%s exists after a failed export", out);
  CHECK(count_entries(root, "pub_fail") == 0); /* nor its temporary */
  /* an export killed before its rename left its folder (a dead writer's
   * temporary, files and a subfolder in it): the next export removes it */
  char host[64];
  foil_host(host);
  snprintf(out, sizeof out, "%s/pub_killed", root);
  char tmp[800], sh[2600];
  snprintf(tmp, sizeof tmp, "%s.tmp-%s-%ld-0123456789abcdef", out, host, test_dead_pid());
  snprintf(sh, sizeof sh, "mkdir -p '%s/1_Pooling' && touch '%s/1_Pooling/config.json' '%s/model.safetensors'", tmp,
           tmp, tmp);
  CHECK(system(sh) == 0);
  CHECK(count_entries(root, "pub_killed.tmp") == 1);
  CHECKF(hf_export(m, out, &err) == FOIL_OK, "%s", err.msg);
  CHECKF(count_entries(root, "pub_killed.tmp") == 0, "%d dead exports' folders left",
         count_entries(root, "pub_killed.tmp"));
  hf_model_destroy(&m);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(root, sizeof root, "%s/hfmodel.%d", t ? t : "/tmp", (int)getpid());
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) vals[i] = (float)((i * 2654435761u) % 1000) / 997.f - 0.5f;
  RUN(test_roundtrip);
  RUN(test_refusals);
  RUN(test_module_paths);
  RUN(test_max_seq);
  RUN(test_transformer_path);
  RUN(test_padded_vocab);
  RUN(test_export_config);
  RUN(test_export_publish);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) return 1;
  TEST_EXIT();
}
