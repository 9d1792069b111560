/* ckpt.c — training checkpoints in HDF5 (see ckpt.h). */
#define _POSIX_C_SOURCE 200809L
#include "storage/ckpt.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int write_tensors(h5io *f, const char *group, const encoder *enc, const float *buf,
                         foil_err *err) {
  const encoder_tensor *t = encoder_tensors(enc);
  char name[256];
  for (int i = 0; i < ENC_NTENSORS; i++) {
    if (!t[i].size) continue;
    uint64_t dims[3] = {(uint64_t)t[i].shape[0], (uint64_t)t[i].shape[1], (uint64_t)t[i].shape[2]};
    snprintf(name, sizeof name, "%s/%s", group, t[i].name);
    int rc = h5io_write_f32(f, name, buf + t[i].offset, t[i].ndim, dims, err);
    if (rc) return rc;
  }
  return FOIL_OK;
}

static int read_tensors(h5io *f, const char *group, const encoder *enc, float *buf,
                        foil_err *err) {
  const encoder_tensor *t = encoder_tensors(enc);
  char name[256];
  for (int i = 0; i < ENC_NTENSORS; i++) {
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
  h5io *f;
  int rc = h5io_create(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  const encoder_config *c = encoder_cfg(s->enc);
#define TRY(x) \
  if ((rc = (x))) goto fail
  TRY(h5io_attr_i64(f, "/", "step", s->step, err));
  TRY(h5io_attr_i64(f, "/", "seed", (int64_t)s->seed, err));
  TRY(h5io_attr_i64(f, "/", "call", (int64_t)s->call, err));
  if (s->spec_json) TRY(h5io_attr_str(f, "/", "spec", s->spec_json, err));
  TRY(write_tensors(f, "model", s->enc, encoder_params(s->enc), err));
  for (int i = 0; i < NCFG; i++) {
    if (cfg_fields[i].is_float) {
      TRY(h5io_attr_f64(f, "model", cfg_fields[i].key, cfg_get(c, i), err));
    } else {
      TRY(h5io_attr_i64(f, "model", cfg_fields[i].key, (int64_t)cfg_get(c, i), err));
    }
  }
  if (s->opt) {
    const optim *o = s->opt;
    TRY(write_tensors(f, "optim/m", s->enc, o->m, err));
    TRY(write_tensors(f, "optim/v", s->enc, o->v, err));
    TRY(h5io_attr_i64(f, "optim", "t", o->t, err));
    TRY(h5io_attr_f64(f, "optim", "lr", o->cfg.lr, err));
    TRY(h5io_attr_f64(f, "optim", "beta1", o->cfg.beta1, err));
    TRY(h5io_attr_f64(f, "optim", "beta2", o->cfg.beta2, err));
    TRY(h5io_attr_f64(f, "optim", "eps", o->cfg.eps, err));
    TRY(h5io_attr_f64(f, "optim", "weight_decay", o->cfg.weight_decay, err));
    TRY(h5io_attr_f64(f, "optim", "max_grad_norm", o->cfg.max_grad_norm, err));
  }
  if (s->key_enc) TRY(write_tensors(f, "momentum", s->key_enc, encoder_params(s->key_enc), err));
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

static int read_config(h5io *f, encoder_config *cfg, foil_err *err) {
  encoder_config_default(cfg);
  for (int i = 0; i < NCFG; i++) {
    double v;
    int rc = h5io_get_attr_f64(f, "model", cfg_fields[i].key, &v, err);
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

int ckpt_load(const char *path, ckpt_state *s, foil_err *err) {
  h5io *f;
  int rc = h5io_open(&f, path, CKPT_FORMAT, err);
  if (rc) return rc;
  encoder_config have;
  const encoder_config *want = encoder_cfg(s->enc);
  char *spec = NULL;
  int64_t v;
#define TRY(x) \
  if ((rc = (x))) goto done
  TRY(read_config(f, &have, err));
  {
    char diff[400] = "";
    for (int i = 0; i < NCFG; i++) {
      if (!strcmp(cfg_fields[i].key, "dropout")) continue; /* may change on resume */
      double a = cfg_get(&have, i), b = cfg_get(want, i);
      if (a != b) {
        size_t len = strlen(diff);
        snprintf(diff + len, sizeof diff - len, "%s%s %g (model has %g)", len ? ", " : "",
                 cfg_fields[i].key, a, b);
      }
    }
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
  s->spec_json = NULL;
  if (h5io_get_attr_str(f, "/", "spec", &spec, NULL) == FOIL_OK) s->spec_json = spec;
  spec = NULL;
  TRY(read_tensors(f, "model", s->enc, encoder_params(s->enc), err));
  if (s->opt) {
    TRY(read_tensors(f, "optim/m", s->enc, s->opt->m, err));
    TRY(read_tensors(f, "optim/v", s->enc, s->opt->v, err));
    TRY(h5io_get_attr_i64(f, "optim", "t", &v, err));
    s->opt->t = (int)v;
  }
  if (s->key_enc) TRY(read_tensors(f, "momentum", s->key_enc, encoder_params(s->key_enc), err));
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
    TRY(h5io_get_attr_i64(f, "queue", "ptr", &s->queue_ptr, err));
    TRY(h5io_get_attr_i64(f, "queue", "fill", &s->queue_fill, err));
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

/* ---- directory: latest and retention -------------------------------------------------------- */

typedef struct {
  int64_t step;
  char *name;
} entry;

static int cmp_desc(const void *a, const void *b) {
  int64_t x = ((const entry *)a)->step, y = ((const entry *)b)->step;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* step_<n>.h5 files of dir, newest first. */
static int list_steps(const char *dir, entry **out, size_t *n, foil_err *err) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return foil_err_set(err, FOIL_ENOTFOUND, "no checkpoint directory %s", dir);
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    long long step;
    char tail[8];
    if (sscanf(e->d_name, "step_%lld.h%2s", &step, tail) != 2 || strcmp(tail, "5")) continue;
    char want[64];
    snprintf(want, sizeof want, "step_%lld.h5", step);
    if (strcmp(want, e->d_name)) continue; /* temporaries and other names */
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      entry *g = realloc(*out, cap * sizeof(entry));
      if (!g) break;
      *out = g;
    }
    (*out)[*n].step = step;
    (*out)[(*n)++].name = strdup(e->d_name);
  }
  closedir(d);
  if (*n > 1) qsort(*out, *n, sizeof(entry), cmp_desc);
  return FOIL_OK;
}

static void free_entries(entry *e, size_t n) {
  for (size_t i = 0; i < n; i++) free(e[i].name);
  free(e);
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
    snprintf(p, len, "%s/%s", dir, es[i].name);
    h5io *f;
    foil_err why = {0};
    encoder_config cfg;
    if (h5io_open(&f, p, CKPT_FORMAT, &why) == FOIL_OK) {
      int ok = read_config(f, &cfg, &why) == FOIL_OK && h5io_exists(f, "model/wte");
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
  return *out ? FOIL_OK : foil_err_set(err, FOIL_ENOTFOUND, "no usable checkpoint in %s", dir);
}

int ckpt_prune(const char *dir, int keep_last, int64_t keep_every, foil_err *err) {
  entry *es;
  size_t n;
  int rc = list_steps(dir, &es, &n, err);
  if (rc) return rc;
  for (size_t i = (size_t)(keep_last > 0 ? keep_last : 0); i < n; i++) {
    if (keep_every > 0 && es[i].step % keep_every == 0) continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, es[i].name);
    if (unlink(p) != 0 && !rc) rc = foil_err_set(err, FOIL_EINTERNAL, "cannot remove %s", p);
  }
  free_entries(es, n);
  return rc;
}
