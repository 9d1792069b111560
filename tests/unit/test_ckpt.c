/* test_ckpt.c — checkpoints: round trip, exact resume, refusals, latest
 * and retention (a killed save's temporaries swept). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hdf5.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "kernels/kernels.h"
#include "model/encoder.h"
#include "model/loss.h"
#include "model/optim.h"
#include "storage/ckpt.h"
#include "storage/h5io.h"
#include "storage/tokenizer_h5.h"
#include "tests/test.h"
#include "tests/unit/dead_pid.h"

static char dir[512];
enum { B = 2, R = 2 * B, T = 5 };

static void cfg_small(encoder_config *c) {
  encoder_config_default(c);
  c->n_layers = 2, c->d_model = 8, c->n_heads = 2, c->d_ff = 16, c->vocab = 30;
  c->max_len = T, c->dropout = 0.1f;
}

/* One training step at step s (batch and dropout drawn from s). */
static void step(encoder *enc, optim *opt, loss *ls, uint64_t seed, int s) {
  int32_t ids[R * T];
  uint8_t mask[R * T];
  for (int i = 0; i < R * T; i++) {
    ids[i] = (int32_t)(rng_u32(3, (uint64_t)s, (uint64_t)i) % 30);
    mask[i] = (i % T) < 3 + (i / T) % 3;
  }
  const float *emb;
  float demb[R * 8];
  loss_result res;
  foil_err err;
  encoder_zero_grads(enc);
  encoder_forward(enc, &emb, ids, mask, R, T, 1, seed, (uint64_t)s, &err);
  const loss_opts opts = {.temperature = 0.1f, .symmetric = 1};
  loss_infonce(ls, &res, demb, emb, B, 0, 8, &opts, NULL, &err);
  encoder_backward(enc, demb, &err);
  optim_step(opt, enc, 1e-2f);
}

typedef struct {
  encoder *enc;
  optim *opt;
  loss *ls;
} trainer;

static void trainer_new(trainer *t) {
  encoder_config c;
  cfg_small(&c);
  optim_config oc;
  optim_config_default(&oc);
  foil_err err;
  encoder_new(&t->enc, &c, &err);
  optim_new(&t->opt, encoder_num_params(t->enc), &oc, &err);
  loss_new(&t->ls, &err);
  encoder_init(t->enc, 5);
}

static void trainer_free(trainer *t) {
  encoder_destroy(&t->enc);
  optim_destroy(&t->opt);
  loss_destroy(&t->ls);
}

static void test_resume_is_exact(void) {
  trainer a, b, c;
  trainer_new(&a);
  trainer_new(&b);
  trainer_new(&c);
  for (int s = 0; s < 6; s++) step(a.enc, a.opt, a.ls, 9, s); /* uninterrupted */
  for (int s = 0; s < 3; s++) step(b.enc, b.opt, b.ls, 9, s);
  float queue[6 * 8], q2[6 * 8];
  for (int i = 0; i < 48; i++) queue[i] = (float)i * 0.5f;
  int64_t cursor[3] = {1, 17, 99}, cur2[3] = {0};
  char path[600];
  snprintf(path, sizeof path, "%s/ckpt/step_3.h5", dir);
  ckpt_state s = {.step = 3, .spec_json = "{\"kind\":\"pretrain\"}", .enc = b.enc, .opt = b.opt,
                  .key_enc = b.enc, .queue = queue, .queue_k = 6, .queue_d = 8, .queue_ptr = 4,
                  .queue_fill = 6, .seed = 9, .call = 3, .cursor = cursor, .ncursor = 3,
                  .scalars = (float[2]){1.5f, -2.0f}, .nscalars = 2};
  foil_err err = {0};
  CHECKF(ckpt_save(path, &s, NULL, NULL, &err) == 0, "%s", err.msg);
  encoder_config cfg;
  CHECK(ckpt_read_config(path, &cfg, &err) == 0 && cfg.n_layers == 2 && cfg.d_ff == 16);
  float sc2[2] = {0};
  ckpt_state r = {.enc = c.enc, .opt = c.opt, .key_enc = NULL, .queue = q2, .queue_k = 6,
                  .queue_d = 8, .cursor = cur2, .ncursor = 3, .scalars = sc2, .nscalars = 2};
  CHECKF(ckpt_load(path, &r, &err) == 0, "%s", err.msg);
  CHECK(r.step == 3 && r.seed == 9 && r.call == 3 && r.queue_ptr == 4 && r.queue_fill == 6);
  CHECK(r.spec_json && !strcmp(r.spec_json, s.spec_json));
  free((char *)r.spec_json);
  CHECK(memcmp(q2, queue, sizeof queue) == 0 && memcmp(cur2, cursor, sizeof cursor) == 0);
  CHECK(sc2[0] == 1.5f && sc2[1] == -2.0f);
  size_t n = encoder_num_params(b.enc);
  CHECK(memcmp(encoder_params(c.enc), encoder_params(b.enc), n * sizeof(float)) == 0);
  CHECK(memcmp(c.opt->m, b.opt->m, n * sizeof(float)) == 0 && c.opt->t == b.opt->t);
  for (int st = 3; st < 6; st++) step(c.enc, c.opt, c.ls, r.seed, st); /* resumed */
  CHECKF(memcmp(encoder_params(c.enc), encoder_params(a.enc), n * sizeof(float)) == 0,
         "resumed run differs from the uninterrupted one");
  trainer_free(&a);
  trainer_free(&b);
  trainer_free(&c);
}

static void test_refusals_latest_prune(void) {
  trainer a;
  trainer_new(&a);
  foil_err err = {0};
  char cdir[600], path[700];
  snprintf(cdir, sizeof cdir, "%s/ck2", dir);
  for (int st = 100; st <= 600; st += 100) {
    snprintf(path, sizeof path, "%s/step_%d.h5", cdir, st);
    ckpt_state s = {.step = st, .enc = a.enc, .opt = a.opt};
    CHECK(ckpt_save(path, &s, NULL, NULL, &err) == 0);
  }
  /* a truncated checkpoint (cut in half: its integrity header refuses it),
   * a newer foreign file with no integrity header and a stray temporary
   * are skipped */
  snprintf(path, sizeof path, "%s/step_700.h5", cdir);
  ckpt_state s7 = {.step = 700, .enc = a.enc, .opt = a.opt};
  CHECK(ckpt_save(path, &s7, NULL, NULL, &err) == 0);
  struct stat st7;
  CHECK(stat(path, &st7) == 0 && truncate(path, st7.st_size / 2) == 0);
  snprintf(path, sizeof path, "%s/step_750.h5", cdir);
  FILE *fp = fopen(path, "wb");
  fwrite("\x89HDF\r\n\x1a\n", 1, 8, fp);
  fclose(fp);
  snprintf(path, sizeof path, "%s/step_800.h5.tmp-1", cdir);
  fp = fopen(path, "wb");
  fclose(fp);
  char *latest = NULL, *skipped = NULL;
  CHECKF(ckpt_latest(cdir, &latest, &skipped, &err) == 0, "%s", err.msg);
  CHECKF(latest && strstr(latest, "step_600.h5"), "latest = %s", latest ? latest : "(none)");
  CHECKF(skipped && strstr(skipped, "step_700.h5: damaged or truncated (checksum mismatch") &&
             strstr(skipped, "step_750.h5: not written by foil"),
         "skipped = %s", skipped ? skipped : "(none)");
  free(latest);
  free(skipped);
  /* a model that differs is refused, naming the difference */
  encoder_config other;
  cfg_small(&other);
  other.d_ff = 24;
  encoder *e2;
  encoder_new(&e2, &other, &err);
  snprintf(path, sizeof path, "%s/step_600.h5", cdir);
  ckpt_state r = {.enc = e2};
  CHECK(ckpt_load(path, &r, &err) == FOIL_EINVAL && strstr(err.msg, "d_ff 16"));
  encoder_destroy(&e2);
  /* the truncated and the foreign file are refused by load too */
  snprintf(path, sizeof path, "%s/step_700.h5", cdir);
  r.enc = a.enc;
  CHECK(ckpt_load(path, &r, &err) == FOIL_EINVAL && strstr(err.msg, "checksum mismatch"));
  snprintf(path, sizeof path, "%s/step_750.h5", cdir);
  CHECK(ckpt_load(path, &r, &err) == FOIL_EINVAL && strstr(err.msg, "no integrity header"));
  /* retention after saving step 600: keep the last 2 and every 300th; the
   * damaged step 700 and the foreign 750 above it are neither counted (they
   * would push 500 out) nor removed */
  CHECK(ckpt_prune(cdir, 2, 300, 600, &err) == 0);
  struct stat st;
  const int kept[] = {300, 500, 600, 700, 750}, gone[] = {100, 200, 400};
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "%s/step_%d.h5", cdir, kept[i]);
    CHECKF(stat(path, &st) == 0, "step %d should be kept", kept[i]);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/step_%d.h5", cdir, gone[i]);
    CHECKF(stat(path, &st) != 0, "step %d should be pruned", gone[i]);
  }
  CHECK(ckpt_latest("/nonexistent-dir", &latest, NULL, &err) == FOIL_ENOTFOUND);
  snprintf(path, sizeof path, "%s/empty", dir); /* an empty directory: nothing to resume */
  mkdir(path, 0755);
  CHECK(ckpt_latest(path, &latest, NULL, &err) == FOIL_ENOTFOUND && latest == NULL);
  /* a directory that cannot be listed is not "no checkpoint" (a resume
   * would start over from step 0): a regular file where it should be (as
   * root, permission bits would not stop opendir) */
  snprintf(path, sizeof path, "%s/ck-notadir", dir);
  FILE *nf = fopen(path, "w");
  if (nf) fclose(nf);
  int lrc = ckpt_latest(path, &latest, NULL, &err);
  CHECKF(lrc != 0 && lrc != FOIL_ENOTFOUND && latest == NULL && strstr(err.msg, "cannot list the checkpoints") &&
         strstr(err.msg, "ck-notadir"), "%d %s", lrc, err.msg);
  CHECK(ckpt_prune(path, 2, 0, 1, &err) != 0);
  unlink(path);
  trainer_free(&a);
}

/* keep_last 1 and a damaged newest file (a restart from step 0 after it
 * was refused): each checkpoint written is kept until the next replaces it
 * (the damaged one neither counts nor goes); a file that cannot be removed
 * is an error naming it, the others are still removed; one already gone is
 * not an error. */
static void test_prune_keeps_newest(void) {
  trainer a;
  trainer_new(&a);
  foil_err err = {0};
  char cdir[600], path[700];
  struct stat st;
  snprintf(cdir, sizeof cdir, "%s/ck-prune", dir);
  snprintf(path, sizeof path, "%s/step_800.h5", cdir);
  ckpt_state s8 = {.step = 800, .enc = a.enc};
  CHECK(ckpt_save(path, &s8, NULL, NULL, &err) == 0);
  CHECK(stat(path, &st) == 0 && truncate(path, st.st_size - 100) == 0);
  char *latest = NULL;
  CHECK(ckpt_latest(cdir, &latest, NULL, &err) == FOIL_ENOTFOUND); /* the run restarts at 0 */
  for (int step = 100; step <= 300; step += 100) {
    snprintf(path, sizeof path, "%s/step_%d.h5", cdir, step);
    ckpt_state s = {.step = step, .enc = a.enc};
    CHECK(ckpt_save(path, &s, NULL, NULL, &err) == 0);
    CHECKF(ckpt_prune(cdir, 1, 0, step, &err) == 0, "%s", err.msg);
    CHECKF(stat(path, &st) == 0, "step %d was pruned right after it was written", step);
    snprintf(path, sizeof path, "%s/step_%d.h5", cdir, step - 100);
    CHECKF(step == 100 || stat(path, &st) != 0, "step %d was kept", step - 100);
    CHECK(ckpt_latest(cdir, &latest, NULL, &err) == 0 && latest && strstr(latest, "step_") &&
          atoi(strstr(latest, "step_") + 5) == step);
    free(latest);
    latest = NULL;
  }
  snprintf(path, sizeof path, "%s/step_800.h5", cdir);
  CHECK(stat(path, &st) == 0);
  /* an entry unlink refuses (a directory with that name) */
  snprintf(path, sizeof path, "%s/step_50.h5", cdir);
  CHECK(mkdir(path, 0755) == 0);
  snprintf(path, sizeof path, "%s/step_50.h5/x", cdir);
  FILE *fp = fopen(path, "w");
  if (fp) fclose(fp);
  /* killed saves' temporaries (S5): this host's with its pid gone are
   * swept by the next save of that step and by prune (any step); a live
   * process's stays */
  char host[64], t400[900], t900[900], tlive[900];
  foil_host(host);
  long c = test_dead_pid();
  snprintf(t400, sizeof t400, "%s/step_400.h5.tmp-%s-%ld-0123456789abcdef", cdir, host, (long)c);
  snprintf(t900, sizeof t900, "%s/step_900.h5.tmp-%s-%ld-0123456789abcdef", cdir, host, (long)c);
  snprintf(tlive, sizeof tlive, "%s/step_900.h5.tmp-%s-%ld-0123456789abcdef", cdir, host, (long)getpid());
  const char *tmps[3] = {t400, t900, tlive};
  for (int i = 0; i < 3; i++) {
    FILE *tf = fopen(tmps[i], "w");
    CHECK(tf && fputs("half a checkpoint", tf) >= 0);
    if (tf) fclose(tf);
  }
  snprintf(path, sizeof path, "%s/step_400.h5", cdir);
  ckpt_state s4 = {.step = 400, .enc = a.enc};
  CHECK(ckpt_save(path, &s4, NULL, NULL, &err) == 0);
  CHECKF(stat(t400, &st) != 0, "ckpt_save left a killed save's %s", t400);
  CHECKF(ckpt_prune(cdir, 1, 0, 400, &err) == FOIL_EINTERNAL && strstr(err.msg, "step_50.h5"), "%s", err.msg);
  CHECKF(stat(t900, &st) != 0, "ckpt_prune left a killed save's %s", t900);
  CHECK(stat(tlive, &st) == 0);
  unlink(tlive);
  snprintf(path, sizeof path, "%s/step_300.h5", cdir);
  CHECK(stat(path, &st) != 0); /* removed all the same */
  snprintf(path, sizeof path, "%s/step_400.h5", cdir);
  CHECK(stat(path, &st) == 0);
  trainer_free(&a);
}

/* The MoCo queue's ptr and fill and the optimizer's step count are checked
 * on load: out of range they would make the next push loop forever (ptr ==
 * K), copy out of bounds (ptr > K or < 0) or hand the loss rows that do not
 * exist (fill > K). */
static void test_load_checks_ranges(void) {
  trainer a, b;
  trainer_new(&a);
  trainer_new(&b);
  foil_err err = {0};
  float queue[6 * 8] = {0}, q2[6 * 8];
  char path[700];
  snprintf(path, sizeof path, "%s/ck-ranges/q.h5", dir);
  static const struct { int64_t ptr, fill; int ok; } cases[] = {
      {4, 6, 1}, {0, 6, 1}, {5, 6, 1}, {0, 0, 1}, {3, 3, 1}, {6, 6, 0}, {7, 6, 0},
      {-1, 6, 0}, {0, 7, 0}, {0, -1, 0}, {2, 3, 0}, {INT64_MAX, 6, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    ckpt_state s = {.step = 1, .enc = a.enc, .queue = queue, .queue_k = 6, .queue_d = 8,
                    .queue_ptr = cases[i].ptr, .queue_fill = cases[i].fill};
    CHECK(ckpt_save(path, &s, NULL, NULL, &err) == 0);
    ckpt_state r = {.enc = b.enc, .queue = q2, .queue_k = 6, .queue_d = 8, .queue_ptr = -7, .queue_fill = -7};
    int rc = ckpt_load(path, &r, &err);
    free((char *)r.spec_json);
    if (cases[i].ok)
      CHECKF(rc == 0 && r.queue_ptr == cases[i].ptr && r.queue_fill == cases[i].fill, "ptr %lld fill %lld: %s",
             (long long)cases[i].ptr, (long long)cases[i].fill, err.msg);
    else
      CHECKF(rc == FOIL_EINVAL && strstr(err.msg, "queue ptr") && r.queue_ptr == -7 && r.queue_fill == -7,
             "ptr %lld fill %lld: rc %d, %s", (long long)cases[i].ptr, (long long)cases[i].fill, rc, err.msg);
  }
  static const int64_t ts[] = {-1, (int64_t)INT_MAX + 1};
  for (size_t i = 0; i < 2; i++) {
    int keep = a.opt->t;
    ckpt_state s = {.step = 1, .enc = a.enc, .opt = a.opt};
    CHECK(ckpt_save(path, &s, NULL, NULL, &err) == 0);
    /* t as another writer could have put it: edit, and sign as foil would */
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), sp = H5Screate(H5S_SCALAR);
    CHECK(f >= 0 && H5Adelete_by_name(f, "optim", "t", H5P_DEFAULT) >= 0);
    hid_t at = f < 0 ? -1 : H5Acreate_by_name(f, "optim", "t", H5T_NATIVE_INT64, sp, H5P_DEFAULT, H5P_DEFAULT,
                                              H5P_DEFAULT);
    CHECK(at >= 0 && H5Awrite(at, H5T_NATIVE_INT64, &ts[i]) >= 0);
    if (at >= 0) H5Aclose(at);
    H5Sclose(sp);
    if (f >= 0) H5Fclose(f);
    CHECKF(h5io_sign(path, &err) == 0, "%s", err.msg);
    b.opt->t = 5;
    ckpt_state r = {.enc = b.enc, .opt = b.opt};
    int rc = ckpt_load(path, &r, &err);
    free((char *)r.spec_json);
    CHECKF(rc == FOIL_EINVAL && strstr(err.msg, "optim") && b.opt->t == 5, "t = %lld: rc %d, %s", (long long)ts[i],
           rc, err.msg);
    a.opt->t = keep;
  }
  trainer_free(&a);
  trainer_free(&b);
}

/* The views of a decoder as decoder.h lays them out (names, shapes, buffer
 * order), for a decoder of config c; *n gets the parameter count. */
static void dec_views(const decoder_config *c, encoder_tensor v[DEC_NTENSORS], size_t *n) {
  const int L = c->n_layers, C = c->d_model, F = c->d_ff, V = c->vocab, P = c->max_len;
  const struct { const char *name; int nd, s0, s1, s2, decay; } k[DEC_NTENSORS] = {
      {"wte", 2, V, C, 0, 1},       {"wpe", 2, P, C, 0, 1},       {"ln1_w", 2, L, C, 0, 0},
      {"ln1_b", 2, L, C, 0, 0},     {"qkv_w", 3, L, 3 * C, C, 1}, {"qkv_b", 2, L, 3 * C, 0, 0},
      {"atto_w", 3, L, C, C, 1},    {"atto_b", 2, L, C, 0, 0},    {"ln2_w", 2, L, C, 0, 0},
      {"ln2_b", 2, L, C, 0, 0},     {"fc1_w", 3, L, F, C, 1},     {"fc1_b", 2, L, F, 0, 0},
      {"fc2_w", 3, L, C, F, 1},     {"fc2_b", 2, L, C, 0, 0},     {"lnf_w", 1, C, 0, 0, 0},
      {"lnf_b", 1, C, 0, 0, 0}};
  size_t off = 0;
  for (int i = 0; i < DEC_NTENSORS; i++) {
    v[i] = (encoder_tensor){k[i].name, k[i].nd, {k[i].s0, k[i].s1, k[i].s2}, off, 0, k[i].decay};
    v[i].size = (size_t)k[i].s0 * (k[i].nd > 1 ? k[i].s1 : 1) * (k[i].nd > 2 ? k[i].s2 : 1);
    off += v[i].size;
  }
  *n = off;
}

/* A decoder checkpoint: kind and config readable without the model,
 * parameters, moments, cursor, RNG and step round-trip bit for bit, the
 * optimizer steps on its views; loading across kinds or into another
 * config is refused by name; ckpt_latest finds it. Encoder checkpoints
 * written before the kind attribute existed still load. */
static void test_decoder_checkpoint(void) {
  decoder_config dc = {.n_layers = 2, .d_model = 8, .n_heads = 2, .d_ff = 16, .vocab = 30, .max_len = 6,
                       .dropout = 0.1f, .ln_eps = 1e-5f};
  encoder_tensor views[DEC_NTENSORS];
  size_t n;
  dec_views(&dc, views, &n);
  float *p = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float)), *p2 = calloc(n, sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = rng_uniform(1, 2, i) - 0.5f, g[i] = rng_uniform(1, 3, i) - 0.5f;
  optim_config oc;
  optim_config_default(&oc);
  oc.max_grad_norm = 1.0f;
  optim *o = NULL, *o2 = NULL;
  foil_err err = {0};
  optim_new(&o, n, &oc, &err);
  optim_new(&o2, n, &oc, &err);
  for (int k = 0; k < 3; k++) optim_step_tensors(o, p, g, views, DEC_NTENSORS, 1e-2f);
  CHECK(o->t == 3 && o->m[0] != 0.0f);
  ckpt_decoder cd = {dc, views, p}, cd2 = {dc, views, p2};
  int64_t cursor[4] = {7, 8, 1, 42}, cur2[4] = {0};
  char path[700], cdir[600];
  snprintf(cdir, sizeof cdir, "%s/dec", dir);
  snprintf(path, sizeof path, "%s/step_3.h5", cdir);
  ckpt_state s = {.step = 3, .spec_json = "{}", .dec = &cd, .opt = o, .seed = 5, .call = 3, .cursor = cursor,
                  .ncursor = 4};
  CHECKF(ckpt_save(path, &s, NULL, NULL, &err) == 0, "%s", err.msg);
  int kind = 0;
  CHECK(ckpt_read_kind(path, &kind, &err) == 0 && kind == CKPT_DECODER);
  decoder_config rc;
  CHECK(ckpt_read_decoder_config(path, &rc, &err) == 0);
  CHECK(rc.n_layers == 2 && rc.d_model == 8 && rc.n_heads == 2 && rc.d_ff == 16 && rc.vocab == 30 &&
        rc.max_len == 6 && rc.dropout == 0.1f && rc.ln_eps == 1e-5f);
  encoder_config ec;
  CHECKF(ckpt_read_config(path, &ec, &err) == FOIL_EINVAL && strstr(err.msg, "decoder"), "%s", err.msg);
  ckpt_state r = {.dec = &cd2, .opt = o2, .cursor = cur2, .ncursor = 4};
  CHECKF(ckpt_load(path, &r, &err) == 0, "%s", err.msg);
  free((char *)r.spec_json);
  CHECK(r.step == 3 && r.seed == 5 && r.call == 3 && memcmp(cur2, cursor, sizeof cursor) == 0);
  CHECK(memcmp(p, p2, n * sizeof(float)) == 0);
  CHECK(memcmp(o->m, o2->m, n * sizeof(float)) == 0 && memcmp(o->v, o2->v, n * sizeof(float)) == 0 && o2->t == 3);
  /* both go on identically */
  optim_step_tensors(o, p, g, views, DEC_NTENSORS, 1e-2f);
  optim_step_tensors(o2, p2, g, views, DEC_NTENSORS, 1e-2f);
  CHECK(memcmp(p, p2, n * sizeof(float)) == 0);
  /* into an encoder: refused, naming the kind */
  trainer a;
  trainer_new(&a);
  ckpt_state re = {.enc = a.enc};
  CHECKF(ckpt_load(path, &re, &err) == FOIL_EINVAL && strstr(err.msg, "decoder"), "%s", err.msg);
  /* another config: refused naming the key */
  decoder_config other = dc;
  other.d_ff = 24;
  encoder_tensor ov[DEC_NTENSORS];
  size_t on;
  dec_views(&other, ov, &on);
  float *p3 = calloc(on, sizeof(float));
  ckpt_decoder cd3 = {other, ov, p3};
  ckpt_state r3 = {.dec = &cd3};
  CHECKF(ckpt_load(path, &r3, &err) == FOIL_EINVAL && strstr(err.msg, "d_ff 16"), "%s", err.msg);
  /* a state with both models or none is refused */
  ckpt_state both = {.enc = a.enc, .dec = &cd};
  CHECK(ckpt_save(path, &both, NULL, NULL, &err) == FOIL_EINVAL);
  CHECK(ckpt_load(path, &both, &err) == FOIL_EINVAL);
  char *latest = NULL;
  CHECKF(ckpt_latest(cdir, &latest, NULL, &err) == 0 && latest && strstr(latest, "step_3.h5"), "%s", err.msg);
  free(latest);
  /* an encoder checkpoint: kind encoder, refused as a decoder */
  snprintf(path, sizeof path, "%s/enc.h5", cdir);
  ckpt_state se = {.step = 1, .enc = a.enc, .opt = a.opt};
  CHECK(ckpt_save(path, &se, NULL, NULL, &err) == 0);
  CHECK(ckpt_read_kind(path, &kind, &err) == 0 && kind == CKPT_ENCODER);
  CHECKF(ckpt_read_decoder_config(path, &rc, &err) == FOIL_EINVAL && strstr(err.msg, "encoder"), "%s", err.msg);
  r.opt = NULL, r.cursor = NULL;
  CHECKF(ckpt_load(path, &r, &err) == FOIL_EINVAL && strstr(err.msg, "encoder"), "%s", err.msg);
  /* an encoder's attributes are as before decoders existed: no kind */
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(f >= 0 && H5Aexists_by_name(f, "model", "kind", H5P_DEFAULT) == 0);
  /* kind "encoder" said explicitly is an encoder too; another kind is refused */
  hid_t sp = H5Screate(H5S_SCALAR), ty = H5Tcopy(H5T_C_S1);
  H5Tset_size(ty, 7);
  hid_t at = H5Acreate_by_name(f, "model", "kind", ty, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(at >= 0 && H5Awrite(at, ty, "encoder") >= 0);
  H5Aclose(at);
  H5Fclose(f);
  /* edited in place: sign it again, as if foil had written it so (an
   * unsigned edit is refused: the integrity header no longer matches) */
  CHECK(ckpt_read_kind(path, &kind, &err) == FOIL_EINVAL && strstr(err.msg, "checksum mismatch"));
  CHECKF(h5io_sign(path, &err) == 0, "%s", err.msg);
  CHECK(ckpt_read_kind(path, &kind, &err) == 0 && kind == CKPT_ENCODER);
  trainer b;
  trainer_new(&b);
  ckpt_state rb = {.enc = b.enc};
  CHECKF(ckpt_load(path, &rb, &err) == 0, "%s", err.msg);
  free((char *)rb.spec_json);
  CHECK(memcmp(encoder_params(a.enc), encoder_params(b.enc), encoder_num_params(a.enc) * sizeof(float)) == 0);
  f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  H5Adelete_by_name(f, "model", "kind", H5P_DEFAULT);
  H5Tset_size(ty, 3);
  at = H5Acreate_by_name(f, "model", "kind", ty, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(at, ty, "gpt");
  H5Aclose(at);
  H5Fclose(f);
  CHECKF(h5io_sign(path, &err) == 0, "%s", err.msg);
  H5Tclose(ty);
  H5Sclose(sp);
  CHECKF(ckpt_read_kind(path, &kind, &err) == FOIL_EINVAL && strstr(err.msg, "unknown model kind"), "%s", err.msg);
  trainer_free(&a);
  trainer_free(&b);
  optim_destroy(&o);
  optim_destroy(&o2);
  free(p);
  free(p2);
  free(p3);
  free(g);
}

static int save_tok(h5io *f, void *ctx, foil_err *err) { return tokenizer_h5_write(f, "tokenizer", ctx, err); }

/* A real decoder (model/decoder.c) through its checkpoint: the views
 * match decoder.h's documented layout, a trained step's parameters and
 * moments come back bit for bit into a fresh decoder, and a forward of the
 * loaded model gives the same loss. */
static void test_decoder_object(void) {
  decoder_config dc;
  decoder_config_default(&dc);
  dc.n_layers = 2, dc.d_model = 8, dc.n_heads = 2, dc.d_ff = 16, dc.vocab = 30, dc.max_len = 6, dc.dropout = 0.0f;
  foil_err err = {0};
  CHECKF(decoder_config_check(&dc, &err) == 0, "%s", err.msg);
  decoder *a = NULL, *b = NULL;
  CHECK(decoder_new(&a, &dc, &err) == 0 && decoder_new(&b, &dc, &err) == 0);
  if (!a || !b) return;
  encoder_tensor views[DEC_NTENSORS];
  size_t n;
  dec_views(&dc, views, &n);
  CHECK(n == decoder_num_params(a));
  for (int i = 0; i < DEC_NTENSORS; i++)
    CHECKF(!strcmp(views[i].name, decoder_tensors(a)[i].name) && views[i].offset == decoder_tensors(a)[i].offset &&
           views[i].size == decoder_tensors(a)[i].size, "tensor %d (%s)", i, views[i].name);
  CHECK(decoder_init(a, 4, NULL) == FOIL_OK);
  optim_config oc;
  optim_config_default(&oc);
  optim *oa = NULL, *ob = NULL;
  optim_new(&oa, n, &oc, &err);
  optim_new(&ob, n, &oc, &err);
  int32_t ids[2 * 6], tg[2 * 6];
  for (int i = 0; i < 12; i++) ids[i] = (int32_t)(rng_u32(8, 0, (uint64_t)i) % 30), tg[i] = (i + 1) % 30;
  float loss = 0, loss2 = 0;
  decoder_zero_grads(a);
  CHECK(decoder_forward(a, ids, tg, NULL, 2, 6, 1, 4, 0, &loss, NULL, NULL, NULL, &err) == 0);
  CHECK(decoder_backward(a, 1.0f, NULL, &err) == 0);
  optim_step_tensors(oa, decoder_params(a), decoder_grads(a), decoder_tensors(a), DEC_NTENSORS, 1e-2f);
  char path[700];
  snprintf(path, sizeof path, "%s/dec/object.h5", dir);
  ckpt_decoder ca = ckpt_decoder_of(a), cb = ckpt_decoder_of(b);
  ckpt_state s = {.step = 1, .dec = &ca, .opt = oa};
  CHECKF(ckpt_save(path, &s, NULL, NULL, &err) == 0, "%s", err.msg);
  decoder_config rc;
  CHECK(ckpt_read_decoder_config(path, &rc, &err) == 0 && !memcmp(&rc, decoder_cfg(a), sizeof rc));
  ckpt_state r = {.dec = &cb, .opt = ob};
  CHECKF(ckpt_load(path, &r, &err) == 0, "%s", err.msg);
  free((char *)r.spec_json);
  CHECK(!memcmp(decoder_params(a), decoder_params(b), n * sizeof(float)) && !memcmp(oa->v, ob->v, n * sizeof(float)));
  decoder_forward(a, ids, tg, NULL, 2, 6, 0, 4, 1, &loss, NULL, NULL, NULL, &err);
  decoder_forward(b, ids, tg, NULL, 2, 6, 0, 4, 1, &loss2, NULL, NULL, NULL, &err);
  CHECK(loss == loss2 && loss > 0);
  /* ckpt_open_decoder: decoder and tokenizer from one file */
  decoder *c = NULL;
  tokenizer *tok = NULL;
  int64_t step = -1;
  CHECK(ckpt_open_decoder(path, &c, &tok, &step, &err) == FOIL_ENOTFOUND && strstr(err.msg, "no /tokenizer group") &&
        c == NULL); /* saved without one */
  CHECK(ckpt_open_decoder(path, &c, NULL, &step, &err) == 0 && c && step == 1);
  if (c) CHECK(!memcmp(decoder_params(a), decoder_params(c), n * sizeof(float)));
  decoder_destroy(&c);
  const char *vocab[30];
  char names[30][8];
  for (int i = 0; i < 30; i++) snprintf(names[i], sizeof names[i], i ? "%c" : "<|e|>", 'a' + i - 1), vocab[i] = names[i];
  tokenizer *t30 = NULL;
  CHECKF(tokenizer_from_strings(&t30, TOKENIZER_BPE, vocab, 30, NULL, 0, &err) == 0, "%s", err.msg);
  CHECKF(ckpt_save(path, &s, save_tok, t30, &err) == 0, "%s", err.msg);
  CHECKF(ckpt_open_decoder(path, &c, &tok, NULL, &err) == 0 && c && tok, "%s", err.msg);
  if (tok) CHECK(tokenizer_vocab_size(tok) == 30 && !strcmp(tokenizer_token(tok, 3), "c"));
  decoder_destroy(&c);
  tokenizer_destroy(&tok);
  tokenizer_destroy(&t30);
  /* an encoder checkpoint is refused */
  snprintf(path, sizeof path, "%s/dec/enc.h5", dir);
  CHECK(ckpt_open_decoder(path, &c, &tok, NULL, &err) == FOIL_EINVAL && strstr(err.msg, "encoder") && !c && !tok);
  optim_destroy(&oa);
  optim_destroy(&ob);
  decoder_destroy(&a);
  decoder_destroy(&b);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/ckpt-%ld", t ? t : "/tmp", (long)getpid());
  kernels_set_threads(2);
  RUN(test_resume_is_exact);
  RUN(test_refusals_latest_prune);
  RUN(test_prune_keeps_newest);
  RUN(test_load_checks_ranges);
  RUN(test_decoder_checkpoint);
  RUN(test_decoder_object);
  TEST_EXIT();
}
