/* test_ckpt.c — checkpoints: round trip, exact resume, refusals, latest
 * and retention. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "model/encoder.h"
#include "model/loss.h"
#include "model/optim.h"
#include "storage/ckpt.h"
#include "tests/test.h"

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
  /* a truncated newest checkpoint and a stray temporary are skipped */
  snprintf(path, sizeof path, "%s/step_700.h5", cdir);
  FILE *fp = fopen(path, "wb");
  fwrite("\x89HDF\r\n\x1a\n", 1, 8, fp);
  fclose(fp);
  snprintf(path, sizeof path, "%s/step_800.h5.tmp-1", cdir);
  fp = fopen(path, "wb");
  fclose(fp);
  char *latest = NULL, *skipped = NULL;
  CHECKF(ckpt_latest(cdir, &latest, &skipped, &err) == 0, "%s", err.msg);
  CHECKF(latest && strstr(latest, "step_600.h5"), "latest = %s", latest ? latest : "(none)");
  CHECKF(skipped && strstr(skipped, "step_700.h5"), "skipped = %s", skipped ? skipped : "(none)");
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
  /* the foreign file is refused by load too */
  snprintf(path, sizeof path, "%s/step_700.h5", cdir);
  r.enc = a.enc;
  CHECK(ckpt_load(path, &r, &err) == FOIL_EINVAL);
  /* retention: keep the last 2 and every 300th */
  CHECK(ckpt_prune(cdir, 2, 300, &err) == 0);
  struct stat st;
  const int kept[] = {300, 600, 700}, gone[] = {100, 200, 400};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/step_%d.h5", cdir, kept[i]);
    CHECKF(stat(path, &st) == 0, "step %d should be kept", kept[i]);
    snprintf(path, sizeof path, "%s/step_%d.h5", cdir, gone[i]);
    CHECKF(stat(path, &st) != 0, "step %d should be pruned", gone[i]);
  }
  CHECK(ckpt_latest("/nonexistent-dir", &latest, NULL, &err) == FOIL_ENOTFOUND);
  snprintf(path, sizeof path, "%s/empty", dir); /* an empty directory: nothing to resume */
  mkdir(path, 0755);
  CHECK(ckpt_latest(path, &latest, NULL, &err) == FOIL_ENOTFOUND && latest == NULL);
  trainer_free(&a);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/ckpt-%ld", t ? t : "/tmp", (long)getpid());
  kernels_set_threads(2);
  RUN(test_resume_is_exact);
  RUN(test_refusals_latest_prune);
  TEST_EXIT();
}
