/* test_hfmodel_ref.c — foil's encoder on an imported pretrained model
 * against sentence-transformers (hfmodel_ref.py writes DIR/ref.h5 and the
 * checkpoint DIR/model.h5 with `foil model import`).
 *
 * Loads the checkpoint (hf_load_ckpt), encodes every text with foil's
 * WordPiece tokenizer (truncated to the model's max_seq_length) and
 * encoder, normalizes as the model's Normalize module does, and checks
 * each embedding against sentence-transformers on the original folder and
 * on foil's exported one: max |diff| <= 1e-5 and cosine >= 0.99999.
 * Usage: test_hfmodel_ref DIR (exit 77: DIR/ref.h5 absent, i.e. skipped)
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/h5io.h"
#include "storage/hfmodel.h"
#include "tests/test.h"

static void compare(const char *what, const float *foil, const float *ref, size_t n, int D) {
  double worst = 0, min_cos = 1;
  for (size_t i = 0; i < n; i++) {
    double dot = 0, na = 0, nb = 0;
    for (int j = 0; j < D; j++) {
      double a = foil[i * D + j], b = ref[i * D + j], d = fabs(a - b);
      if (d > worst) worst = d;
      dot += a * b;
      na += a * a;
      nb += b * b;
    }
    double c = dot / (sqrt(na * nb) + 1e-30);
    if (c < min_cos) min_cos = c;
  }
  printf("%s: %zu embeddings, max |diff| %.3g, min cosine %.9f\n", what, n, worst, min_cos);
  CHECKF(worst <= 1e-5, "%s: max |diff| %.3g > 1e-5", what, worst);
  CHECKF(min_cos >= 0.99999, "%s: min cosine %.9f < 0.99999", what, min_cos);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_hfmodel_ref DIR\n");
    return 2;
  }
  char ref_path[4096], ckpt[4096];
  snprintf(ref_path, sizeof ref_path, "%s/ref.h5", argv[1]);
  snprintf(ckpt, sizeof ckpt, "%s/model.h5", argv[1]);
  if (access(ref_path, R_OK) != 0) {
    printf("SKIPPED: %s missing (the reference step needs .venv-st; bash deploy/setup.sh makes it)\n", ref_path);
    return 77;
  }
  foil_err err = {0};
  hf_model *m = NULL;
  h5io *f = NULL;
  char **texts = NULL;
  size_t n = 0, n1 = 0, n2 = 0;
  float *e_orig = NULL, *e_exp = NULL;
  CHECKF(hf_load_ckpt(ckpt, &m, &err) == FOIL_OK, "%s", err.msg);
  CHECKF(h5io_open(&f, ref_path, NULL, &err) == FOIL_OK, "%s", err.msg);
  if (!m || !f) TEST_EXIT();
  CHECKF(h5io_read_strings(f, "texts", &texts, &n, &err) == FOIL_OK, "%s", err.msg);
  CHECKF(h5io_read_f32(f, "emb_original", &e_orig, &n1, &err) == FOIL_OK, "%s", err.msg);
  CHECKF(h5io_read_f32(f, "emb_exported", &e_exp, &n2, &err) == FOIL_OK, "%s", err.msg);
  h5io_close(&f);
  const int D = encoder_out_dim(m->enc);
  CHECK(n > 0 && n1 == n * (size_t)D && n2 == n1);
  if (test_failures) TEST_EXIT();
  CHECK(m->normalize == 1 && m->max_seq_length == 256);
  const int T = m->max_seq_length > 0 ? m->max_seq_length : encoder_cfg(m->enc)->max_len;
  const int B = 16;
  float *out = calloc(n * (size_t)D, sizeof(float));
  int32_t *ids = malloc((size_t)B * T * sizeof(int32_t));
  int32_t *one = malloc((size_t)(T + 1) * sizeof(int32_t));
  uint8_t *mask = malloc((size_t)B * T);
  int truncated = 0;
  for (size_t b0 = 0; b0 < n; b0 += B) {
    int nb = (int)(n - b0 < (size_t)B ? n - b0 : (size_t)B), tmax = 1;
    for (int i = 0; i < nb; i++) {
      int len = 0;
      const char *s = texts[b0 + i];
      CHECKF(tokenizer_encode(m->tok, s, strlen(s), 1, one, T, &len, &err) == FOIL_OK, "%s", err.msg);
      if (len > T) {
        truncated++;
        len = T;
      }
      for (int t = 0; t < T; t++) {
        ids[i * T + t] = t < len ? one[t] : tokenizer_pad_id(m->tok);
        mask[i * T + t] = t < len;
      }
      if (len > tmax) tmax = len;
    }
    /* repack to the batch's longest length */
    for (int i = 0; i < nb; i++) {
      memmove(ids + (size_t)i * tmax, ids + (size_t)i * T, (size_t)tmax * sizeof(int32_t));
      memmove(mask + (size_t)i * tmax, mask + (size_t)i * T, (size_t)tmax);
    }
    const float *emb = NULL;
    int rc = encoder_forward(m->enc, &emb, ids, mask, nb, tmax, 0, 0, 0, &err);
    CHECKF(rc == FOIL_OK, "%s", err.msg);
    if (rc) break;
    for (int i = 0; i < nb; i++) {
      double s2 = 0;
      for (int j = 0; j < D; j++) s2 += (double)emb[i * D + j] * emb[i * D + j];
      double sc = m->normalize ? 1.0 / fmax(sqrt(s2), 1e-12) : 1.0;
      for (int j = 0; j < D; j++) out[(b0 + i) * D + j] = (float)(emb[i * D + j] * sc);
    }
  }
  CHECKF(truncated >= 4, "only %d texts past max_seq_length", truncated);
  compare("foil vs sentence-transformers (original)", out, e_orig, n, D);
  compare("foil vs sentence-transformers (foil's export)", out, e_exp, n, D);
  free(out);
  free(ids);
  free(one);
  free(mask);
  free(e_orig);
  free(e_exp);
  h5io_free_strings(texts, n);
  hf_model_destroy(&m);
  TEST_EXIT();
}
