/* ckpt.c — training checkpoints in HDF5 (see ckpt.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "storage/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/tokenizer_h5.h"

/* ---- config as attributes ------------------------------------------------------- */

static const struct {
  const char *key;
  size_t off;
  int is_float;
} cfg_fields[] = {
#define I(f) {#f, offsetof(encoder_config, f), 0}
#define F(f) {#f, offsetof(encoder_config, f), 1}
    I(n_layers), I(d_model), I(n_heads), I(d_ff), I(vocab), I(max_len),
    I(proj_dim), I(pre_ln), I(pooling), F(dropout), F(ln_eps),
#undef I
#undef F
};
enum { NCFG = sizeof cfg_fields / sizeof cfg_fields[0] };

static const struct {
  const char *key;
  size_t off;
  int is_float;
} dcfg_fields[] = {
#define I(f) {#f, offsetof(decoder_config, f), 0}
#define F(f) {#f, offsetof(decoder_config, f), 1}
    I(n_layers), I(d_model), I(n_heads), I(d_ff), I(vocab), I(max_len), F(dropout), F(ln_eps),
#undef I
#undef F
};
enum { NDCFG = sizeof dcfg_fields / sizeof dcfg_fields[0] };

static double dcfg_get(const decoder_config *c, int i) {
  const char *p = (const char *)c + dcfg_fields[i].off;
  return dcfg_fields[i].is_float ? *(const float *)p : *(const int *)p;
}

static void dcfg_set(decoder_config *c, int i, double v) {
  char *p = (char *)c + dcfg_fields[i].off;
  if (dcfg_fields[i].is_float) *(float *)p = (float)v;
  else *(int *)p = (int)v;
}

/* A config attribute must fit its field: an int field an integer in int's
 * range, a float field finite in float's (a damaged file otherwise makes
 * the conversion undefined). */
static int cfg_value_ok(h5io *f, const char *key, int is_float, double v, foil_err *err) {
  int ok = is_float ? isfinite(v) && fabs(v) <= FLT_MAX : v >= INT_MIN && v <= INT_MAX && (double)(int)v == v;
  if (ok) return FOIL_OK;
  return foil_err_set(err, FOIL_EINVAL, "%s: model attribute %s = %g is not %s (damaged file)", h5io_path(f), key, v,
                      is_float ? "a finite float" : "an int");
}

static double cfg_get(const encoder_config *c, int i) {
  const char *p = (const char *)c + cfg_fields[i].off;
  return cfg_fields[i].is_float ? *(const float *)p : *(const int *)p;
}

static void cfg_set(encoder_config *c, int i, double v) {
  char *p = (char *)c + cfg_fields[i].off;
  if (cfg_fields[i].is_float) *(float *)p = (float)v;
  else *(int *)p = (int)v;
}

/* ---- tensors -------------------------------------------------------------------------- */

/* The views of the model a state holds. */
static const encoder_tensor *views_of(const ckpt_state *s, int *n) {
  if (s->dec) {
    *n = DEC_NTENSORS;
    return s->dec->tensors;
  }
  *n = ENC_NTENSORS;
  return encoder_tensors(s->enc);
}

static int write_tensors(h5io *f, const char *group, const encoder_tensor *t, int nt, const float *buf,
                         foil_err *err) {
  char name[256];
  for (int i = 0; i < nt; i++) {
    if (!t[i].size) continue;
    uint64_t dims[3] = {(uint64_t)t[i].shape[0], (uint64_t)t[i].shape[1], (uint64_t)t[i].shape[2]};
    snprintf(name, sizeof name, "%s/%s", group, t[i].name);
    int rc = h5io_write_f32(f, name, buf + t[i].offset, t[i].ndim, dims, err);
    if (rc) return rc;
  }
  return FOIL_OK;
}

static int read_tensors(h5io *f, const char *group, const encoder_tensor *t, int nt, float *buf,
                        foil_err *err) {
  char name[256];
  for (int i = 0; i < nt; i++) {
    if (!t[i].size) continue;
    snprintf(name, sizeof name, "%s/%s", group, t[i].name);
    int nd;
    uint64_t dims[8];
    int rc = h5io_shape(f, name, &nd, dims, err);
    if (rc) return rc;
    int same = nd == t[i].ndim;
    for (int k = 0; same && k < nd; k++) same = dims[k] == (uint64_t)t[i].shape[k];
    if (!same)
      return foil_err_set(err, FOIL_EINVAL, "%s: %s has shape [%llu,%llu,%llu], the model needs [%d,%d,%d]",
                          h5io_path(f), name, (unsigned long long)dims[0], (unsigned long long)dims[1],
                          (unsigned long long)dims[2], t[i].shape[0], t[i].shape[1], t[i].shape[2]);
    if ((rc = h5io_read_f32_into(f, name, buf + t[i].offset, t[i].size, err))) return rc;
  }
  return FOIL_OK;
}

/* ---- save ------------------------------------------------------------------------------- */

int ckpt_save(const char *path, const ckpt_state *s,
              int (*extra)(h5io *f, void *ctx, foil_err *err), void *ctx, foil_err *err) {
  if (!s->enc == !s->dec)
    return foil_err_set(err, FOIL_EINVAL, "%s: a checkpoint holds exactly one model (an encoder or a decoder)", path);
  if (s->dec && (s->key_enc || s->queue))
    return foil_err_set(err, FOIL_EINVAL, "%s: a decoder checkpoint has no momentum encoder or queue", path);
  foil_tmp_sweep_path(path); /* a killed save's leftover of this step: one readdir */
  h5io *f;
  int rc = h5io_create(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  int nt;
  const encoder_tensor *views = views_of(s, &nt);
  const float *params = s->dec ? s->dec->params : encoder_params(s->enc);
#define TRY(x) \
  if ((rc = (x))) goto fail
  TRY(h5io_attr_i64(f, "/", "step", s->step, err));
  TRY(h5io_attr_i64(f, "/", "seed", (int64_t)s->seed, err));
  TRY(h5io_attr_i64(f, "/", "call", (int64_t)s->call, err));
  if (s->spec_json) TRY(h5io_attr_str(f, "/", "spec", s->spec_json, err));
  TRY(write_tensors(f, "model", views, nt, params, err));
  /* only a decoder says its kind: an encoder's attributes stay as they were
   * before decoders existed (readers that take every attribute as a number) */
  if (s->dec) TRY(h5io_attr_str(f, "model", "kind", "decoder", err));
  if (s->dec) {
    for (int i = 0; i < NDCFG; i++) {
      double v = dcfg_get(&s->dec->cfg, i);
      if (dcfg_fields[i].is_float) {
        TRY(h5io_attr_f64(f, "model", dcfg_fields[i].key, v, err));
      } else {
        TRY(h5io_attr_i64(f, "model", dcfg_fields[i].key, (int64_t)v, err));
      }
    }
  } else {
    const encoder_config *c = encoder_cfg(s->enc);
    for (int i = 0; i < NCFG; i++) {
      if (cfg_fields[i].is_float) {
        TRY(h5io_attr_f64(f, "model", cfg_fields[i].key, cfg_get(c, i), err));
      } else {
        TRY(h5io_attr_i64(f, "model", cfg_fields[i].key, (int64_t)cfg_get(c, i), err));
      }
    }
  }
  if (s->opt) {
    const optim *o = s->opt;
    TRY(write_tensors(f, "optim/m", views, nt, o->m, err));
    TRY(write_tensors(f, "optim/v", views, nt, o->v, err));
    TRY(h5io_attr_i64(f, "optim", "t", o->t, err));
    TRY(h5io_attr_f64(f, "optim", "lr", o->cfg.lr, err));
    TRY(h5io_attr_f64(f, "optim", "beta1", o->cfg.beta1, err));
    TRY(h5io_attr_f64(f, "optim", "beta2", o->cfg.beta2, err));
    TRY(h5io_attr_f64(f, "optim", "eps", o->cfg.eps, err));
    TRY(h5io_attr_f64(f, "optim", "weight_decay", o->cfg.weight_decay, err));
    TRY(h5io_attr_f64(f, "optim", "max_grad_norm", o->cfg.max_grad_norm, err));
  }
  if (s->key_enc)
    TRY(write_tensors(f, "momentum", encoder_tensors(s->key_enc), ENC_NTENSORS, encoder_params(s->key_enc), err));
  if (s->queue) {
    uint64_t d[2] = {(uint64_t)s->queue_k, (uint64_t)s->queue_d};
    TRY(h5io_write_f32(f, "queue/keys", s->queue, 2, d, err));
    TRY(h5io_attr_i64(f, "queue", "ptr", s->queue_ptr, err));
    TRY(h5io_attr_i64(f, "queue", "fill", s->queue_fill, err));
  }
  if (s->cursor) {
    uint64_t d[1] = {(uint64_t)s->ncursor};
    TRY(h5io_write_i64(f, "loader/cursor", s->cursor, 1, d, err));
  }
  if (s->scalars) {
    uint64_t d[1] = {(uint64_t)s->nscalars};
    TRY(h5io_write_f32(f, "scalars", s->scalars, 1, d, err));
  }
  if (extra) TRY(extra(f, ctx, err));
#undef TRY
  return h5io_publish(&f, err);
fail:
  h5io_abandon(&f);
  return rc;
}

/* ---- load ---------------------------------------------------------------------------------- */

/* The kind attribute of /model; none (older files) is an encoder. */
static int read_kind(h5io *f, int *kind, foil_err *err) {
  char *k = NULL;
  *kind = CKPT_ENCODER;
  if (!h5io_exists(f, "model"))
    return foil_err_set(err, FOIL_EINVAL, "%s: not a complete checkpoint (no /model)", h5io_path(f));
  if (h5io_get_attr_str(f, "model", "kind", &k, NULL) != FOIL_OK) return FOIL_OK;
  int rc = FOIL_OK;
  if (!strcmp(k, "decoder")) *kind = CKPT_DECODER;
  else if (strcmp(k, "encoder"))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: unknown model kind \"%.60s\" (this foil reads \"encoder\" and "
                      "\"decoder\")", h5io_path(f), k);
  free(k);
  return rc;
}

static const char *kind_name(int kind) { return kind == CKPT_DECODER ? "decoder" : "encoder"; }

/* Fails unless the file holds a model of kind want. */
static int want_kind(h5io *f, int want, foil_err *err) {
  int kind, rc = read_kind(f, &kind, err);
  if (rc) return rc;
  if (kind != want)
    return foil_err_set(err, FOIL_EINVAL, "%s holds a %s (model kind \"%s\"), not %s", h5io_path(f),
                        kind_name(kind), kind_name(kind),
                        want == CKPT_DECODER ? "a decoder" : "an encoder: open it as a decoder");
  return FOIL_OK;
}

static int read_dconfig(h5io *f, decoder_config *cfg, foil_err *err) {
  memset(cfg, 0, sizeof *cfg);
  int rc = want_kind(f, CKPT_DECODER, err);
  for (int i = 0; !rc && i < NDCFG; i++) {
    double v;
    if (!(rc = h5io_get_attr_f64(f, "model", dcfg_fields[i].key, &v, err)) &&
        !(rc = cfg_value_ok(f, dcfg_fields[i].key, dcfg_fields[i].is_float, v, err)))
      dcfg_set(cfg, i, v);
  }
  return rc;
}

static int read_config(h5io *f, encoder_config *cfg, foil_err *err) {
  encoder_config_default(cfg);
  int rc = want_kind(f, CKPT_ENCODER, err);
  if (rc) return rc;
  for (int i = 0; i < NCFG; i++) {
    double v;
    int rc = h5io_get_attr_f64(f, "model", cfg_fields[i].key, &v, err);
    if (!rc) rc = cfg_value_ok(f, cfg_fields[i].key, cfg_fields[i].is_float, v, err);
    if (rc) return rc;
    cfg_set(cfg, i, v);
  }
  return FOIL_OK;
}

int ckpt_read_config(const char *path, encoder_config *cfg, foil_err *err) {
  h5io *f;
  int rc = h5io_open(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  rc = read_config(f, cfg, err);
  h5io_close(&f);
  return rc;
}

int ckpt_read_kind(const char *path, int *kind, foil_err *err) {
  h5io *f;
  int rc = h5io_open(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  rc = read_kind(f, kind, err);
  h5io_close(&f);
  return rc;
}

int ckpt_read_decoder_config(const char *path, decoder_config *cfg, foil_err *err) {
  h5io *f;
  int rc = h5io_open(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  rc = read_dconfig(f, cfg, err);
  h5io_close(&f);
  return rc;
}

/* The model's config in the file against the one loaded into: "" when the
 * same (dropout may differ: it may change on resume), else what differs. */
static int config_differs(h5io *f, const ckpt_state *s, char *diff, size_t n, foil_err *err) {
  diff[0] = 0;
  int rc;
  if (s->dec) {
    decoder_config have;
    if ((rc = read_dconfig(f, &have, err))) return rc;
    for (int i = 0; i < NDCFG; i++) {
      if (!strcmp(dcfg_fields[i].key, "dropout")) continue;
      double a = dcfg_get(&have, i), b = dcfg_get(&s->dec->cfg, i);
      size_t len = strlen(diff);
      if (a != b)
        snprintf(diff + len, n - len, "%s%s %g (model has %g)", len ? ", " : "", dcfg_fields[i].key, a, b);
    }
    return FOIL_OK;
  }
  encoder_config have;
  const encoder_config *want = encoder_cfg(s->enc);
  if ((rc = read_config(f, &have, err))) return rc;
  for (int i = 0; i < NCFG; i++) {
    if (!strcmp(cfg_fields[i].key, "dropout")) continue;
    double a = cfg_get(&have, i), b = cfg_get(want, i);
    size_t len = strlen(diff);
    if (a != b) snprintf(diff + len, n - len, "%s%s %g (model has %g)", len ? ", " : "", cfg_fields[i].key, a, b);
  }
  return FOIL_OK;
}

int ckpt_load(const char *path, ckpt_state *s, foil_err *err) {
  if (!s->enc == !s->dec)
    return foil_err_set(err, FOIL_EINVAL, "%s: load into exactly one model (an encoder or a decoder)", path);
  s->spec_json = NULL; /* an output: a failure below must not free what the caller left there */
  h5io *f;
  int rc = h5io_open(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  char *spec = NULL;
  int64_t v;
  int nt;
  const encoder_tensor *views = views_of(s, &nt);
  float *params = s->dec ? s->dec->params : encoder_params(s->enc);
#define TRY(x) \
  if ((rc = (x))) goto done
  {
    char diff[400];
    TRY(config_differs(f, s, diff, sizeof diff, err));
    if (diff[0]) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: the checkpoint's model differs: %s", path, diff);
      goto done;
    }
  }
  TRY(h5io_get_attr_i64(f, "/", "step", &s->step, err));
  TRY(h5io_get_attr_i64(f, "/", "seed", &v, err));
  s->seed = (uint64_t)v;
  TRY(h5io_get_attr_i64(f, "/", "call", &v, err));
  s->call = (uint64_t)v;
  if (h5io_get_attr_str(f, "/", "spec", &spec, NULL) == FOIL_OK) s->spec_json = spec;
  spec = NULL;
  TRY(read_tensors(f, "model", views, nt, params, err));
  if (s->opt) {
    TRY(read_tensors(f, "optim/m", views, nt, s->opt->m, err));
    TRY(read_tensors(f, "optim/v", views, nt, s->opt->v, err));
    TRY(h5io_get_attr_i64(f, "optim", "t", &v, err));
    if (v < 0 || v > INT_MAX) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: optim step count t = %lld is out of range [0, %d] (damaged or edited "
                        "file)", path, (long long)v, INT_MAX);
      goto done;
    }
    s->opt->t = (int)v;
  }
  if (s->key_enc)
    TRY(read_tensors(f, "momentum", encoder_tensors(s->key_enc), ENC_NTENSORS, encoder_params(s->key_enc), err));
  if (s->queue) {
    int nd;
    uint64_t d[8];
    TRY(h5io_shape(f, "queue/keys", &nd, d, err));
    if (nd != 2 || d[0] != (uint64_t)s->queue_k || d[1] != (uint64_t)s->queue_d) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: queue is [%llu,%llu], the job needs [%lld,%lld]", path,
                        (unsigned long long)d[0], (unsigned long long)d[1], (long long)s->queue_k,
                        (long long)s->queue_d);
      goto done;
    }
    TRY(h5io_read_f32_into(f, "queue/keys", s->queue, (size_t)(s->queue_k * s->queue_d), err));
    int64_t ptr, fill;
    TRY(h5io_get_attr_i64(f, "queue", "ptr", &ptr, err));
    TRY(h5io_get_attr_i64(f, "queue", "fill", &fill, err));
    /* the ring's invariant (model/moco.c): the write position is inside
     * the queue, and equals the fill until the queue is full; anything else
     * would make the next push loop forever or copy out of bounds */
    if (ptr < 0 || ptr >= s->queue_k || fill < 0 || fill > s->queue_k || (fill < s->queue_k && ptr != fill)) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: queue ptr %lld, fill %lld do not fit a queue of %lld keys (0 <= ptr "
                        "< K, 0 <= fill <= K, ptr == fill until full; damaged or edited file)", path, (long long)ptr,
                        (long long)fill, (long long)s->queue_k);
      goto done;
    }
    s->queue_ptr = ptr, s->queue_fill = fill;
  }
  if (s->cursor) {
    int64_t *cur = NULL;
    size_t n = 0;
    TRY(h5io_read_i64(f, "loader/cursor", &cur, &n, err));
    if ((int)n != s->ncursor) {
      free(cur);
      rc = foil_err_set(err, FOIL_EINVAL, "%s: loader cursor has %zu entries, expected %d", path, n,
                        s->ncursor);
      goto done;
    }
    memcpy(s->cursor, cur, n * sizeof(int64_t));
    free(cur);
  }
  if (s->scalars) TRY(h5io_read_f32_into(f, "scalars", s->scalars, (size_t)s->nscalars, err));
#undef TRY
done:
  if (rc) {
    free((char *)s->spec_json);
    s->spec_json = NULL;
  }
  h5io_close(&f);
  return rc;
}

/* The tokenizer stored with a model of `vocab` tokens: FOIL_ENOTFOUND when
 * the file has none, FOIL_EINVAL when its vocabulary is not the model's. */
static int read_tokenizer(const char *path, int vocab, tokenizer **t, foil_err *err) {
  h5io *f = NULL;
  int rc = h5io_open(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  if (!h5io_exists(f, "tokenizer")) rc = foil_err_set(err, FOIL_ENOTFOUND, "%s holds no /tokenizer group", path);
  else rc = tokenizer_h5_read(f, "tokenizer", t, err);
  h5io_close(&f);
  if (!rc && tokenizer_vocab_size(*t) != vocab)
    rc = foil_err_set(err, FOIL_EINVAL, "%s: its tokenizer has %d tokens, its model %d", path,
                      tokenizer_vocab_size(*t), vocab);
  return rc;
}

int ckpt_open_decoder(const char *path, decoder **dec, tokenizer **tok, int64_t *step, foil_err *err) {
  *dec = NULL;
  if (tok) *tok = NULL;
  decoder_config cfg;
  decoder *d = NULL;
  tokenizer *t = NULL;
  int rc = ckpt_read_decoder_config(path, &cfg, err);
  if (!rc) rc = decoder_new(&d, &cfg, err);
  ckpt_decoder view;
  ckpt_state st = {0};
  if (!rc) {
    view = ckpt_decoder_of(d);
    st.dec = &view;
    rc = ckpt_load(path, &st, err);
    free((char *)st.spec_json);
  }
  if (!rc && tok) rc = read_tokenizer(path, cfg.vocab, &t, err);
  if (rc) {
    decoder_destroy(&d);
    tokenizer_destroy(&t);
    return rc;
  }
  *dec = d;
  if (tok) *tok = t;
  if (step) *step = st.step;
  return FOIL_OK;
}

int ckpt_open_encoder(const char *path, encoder **enc, tokenizer **tok, int64_t *step, foil_err *err) {
  *enc = NULL, *tok = NULL;
  encoder_config cfg;
  encoder *e = NULL;
  tokenizer *t = NULL;
  ckpt_state st = {0};
  int rc = ckpt_read_config(path, &cfg, err);
  if (!rc) rc = encoder_new(&e, &cfg, err);
  if (!rc) {
    st.enc = e;
    rc = ckpt_load(path, &st, err);
    free((char *)st.spec_json);
  }
  if (!rc) rc = read_tokenizer(path, cfg.vocab, &t, err);
  if (rc) {
    encoder_destroy(&e);
    tokenizer_destroy(&t);
    return rc;
  }
  *enc = e, *tok = t;
  if (step) *step = st.step;
  return FOIL_OK;
}

/* ---- directory: latest and retention -------------------------------------------------------- */

typedef struct {
  int64_t step;
  char *name;
} entry;

static int cmp_desc(const void *a, const void *b) {
  int64_t x = ((const entry *)a)->step, y = ((const entry *)b)->step;
  return x < y ? 1 : x > y ? -1 : 0;
}

static void free_entries(entry *e, size_t n) {
  for (size_t i = 0; i < n; i++) free(e[i].name);
  free(e);
}

/* step_<n>.h5 files of dir, newest first. */
static int list_steps(const char *dir, entry **out, size_t *n, foil_err *err) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) { /* only a directory that is not there is "no checkpoint"; one that cannot be read is an error */
    int oe = errno;
    if (oe == ENOENT) return foil_err_set(err, FOIL_ENOTFOUND, "no checkpoint directory %s", dir);
    return foil_err_set(err, oe == ENOMEM ? FOIL_ENOMEM : oe == EACCES || oe == EPERM ? FOIL_EPERM : FOIL_EUNAVAIL,
                        "cannot list the checkpoints in %s: %s", dir, strerror(oe));
  }
  size_t cap = 0;
  struct dirent *e;
  for (;;) {
    errno = 0;
    if (!(e = readdir(d))) {
      int rerr = errno; /* 0: the end of the directory */
      if (!rerr) break;
      closedir(d);
      free_entries(*out, *n);
      *out = NULL;
      *n = 0;
      return foil_err_set(err, FOIL_EUNAVAIL, "cannot list the checkpoints in %s: %s", dir, strerror(rerr));
    }
    long long step;
    char tail[8];
    if (sscanf(e->d_name, "step_%lld.h%2s", &step, tail) != 2 || strcmp(tail, "5")) continue;
    char want[64];
    snprintf(want, sizeof want, "step_%lld.h5", step);
    if (strcmp(want, e->d_name)) continue; /* temporaries and other names */
    char *name = NULL;
    if (*n == cap) {
      entry *g = realloc(*out, (cap ? 2 * cap : 16) * sizeof(entry));
      if (g) *out = g, cap = cap ? 2 * cap : 16;
    }
    if (*n == cap || !(name = strdup(e->d_name))) { /* a shortened list would mislead prune and resume */
      closedir(d);
      for (size_t i = 0; i < *n; i++) free((*out)[i].name);
      free(*out);
      *out = NULL;
      *n = 0;
      return foil_err_set(err, FOIL_ENOMEM, "out of memory listing the checkpoints of %s", dir);
    }
    (*out)[*n].step = step;
    (*out)[(*n)++].name = name;
  }
  closedir(d);
  if (*n > 1) qsort(*out, *n, sizeof(entry), cmp_desc);
  return FOIL_OK;
}

int ckpt_latest(const char *dir, char **out, char **skipped, foil_err *err) {
  *out = NULL;
  if (skipped) *skipped = NULL;
  entry *es;
  size_t n;
  int rc = list_steps(dir, &es, &n, err);
  if (rc) return rc;
  size_t slen = 0;
  for (size_t i = 0; i < n && !*out; i++) {
    size_t len = strlen(dir) + strlen(es[i].name) + 2;
    char *p = malloc(len);
    if (!p) {
      rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
      break;
    }
    snprintf(p, len, "%s/%s", dir, es[i].name);
    h5io *f;
    foil_err why = {0};
    encoder_config cfg;
    decoder_config dcfg;
    int kind;
    if (h5io_open(&f, p, CKPT_FORMAT, &why) == FOIL_OK) {
      int ok = read_kind(f, &kind, &why) == FOIL_OK &&
               (kind == CKPT_DECODER ? read_dconfig(f, &dcfg, &why) : read_config(f, &cfg, &why)) == FOIL_OK &&
               h5io_exists(f, "model/wte");
      h5io_close(&f);
      if (ok) {
        *out = p;
        break;
      }
      if (!why.msg[0]) snprintf(why.msg, sizeof why.msg, "%s: incomplete checkpoint", p);
    }
    if (skipped) { /* collect the reasons, one per line */
      size_t add = strlen(why.msg) + 2;
      char *g = realloc(*skipped, slen + add);
      if (g) {
        *skipped = g;
        snprintf(g + slen, add, "%s\n", why.msg);
        slen += add - 1;
      }
    }
    free(p);
  }
  free_entries(es, n);
  if (rc) return rc;
  return *out ? FOIL_OK : foil_err_set(err, FOIL_ENOTFOUND, "no usable checkpoint in %s", dir);
}

int ckpt_prune(const char *dir, int keep_last, int64_t keep_every, int64_t newest, foil_err *err) {
  foil_tmp_sweep(dir, "step_"); /* killed saves' leftovers of any step (list_steps skips them) */
  entry *es;
  size_t n;
  int rc = list_steps(dir, &es, &n, err);
  if (rc) return rc;
  /* es is newest first: skip the files above the step just saved (not
   * counted, not removed), then keep the newest keep_last (newest itself
   * first among them, and always) */
  size_t first = 0;
  while (first < n && es[first].step > newest) first++;
  size_t keep = keep_last > 0 ? (size_t)keep_last : 1;
  for (size_t i = first; i < n; i++) {
    if (i - first < keep || es[i].step == newest) continue;
    if (keep_every > 0 && es[i].step % keep_every == 0) continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, es[i].name);
    if (unlink(p) != 0 && errno != ENOENT && !rc) /* ENOENT: already gone (another attempt's prune) */
      rc = foil_err_set(err, FOIL_EINTERNAL, "cannot remove %s: %s", p, strerror(errno));
  }
  free_entries(es, n);
  return rc;
}

int ckpt_resolve(const char *key, const char *path, char out[PATH_MAX], char **skipped, foil_err *err) {
  *skipped = NULL;
  struct stat st;
  if (stat(path, &st) != 0)
    return foil_err_set(err, FOIL_ENOTFOUND, "%s %s: %s (a checkpoint .h5 file or a job directory)", key, path,
                        strerror(errno));
  char *found = NULL;
  const char *p = path;
  if (S_ISDIR(st.st_mode)) {
    char sub[PATH_MAX + 8];
    snprintf(sub, sizeof sub, "%s/ckpt", path);
    const char *dir = stat(sub, &st) == 0 && S_ISDIR(st.st_mode) ? sub : path;
    foil_err e2 = {0};
    if (ckpt_latest(dir, &found, skipped, &e2)) {
      free(found);
      return foil_err_set(err, FOIL_ENOTFOUND, "%s %s: no usable checkpoint in %s (%.300s)", key, path, dir, e2.msg);
    }
    p = found;
  }
  int rc = FOIL_OK;
  if (!realpath(p, out)) rc = foil_err_set(err, FOIL_ENOTFOUND, "%s %s: %s", key, p, strerror(errno));
  free(found);
  return rc;
}
