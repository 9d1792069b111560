/* test_decode_ref.c — model/decode.h's scoring rules against decode_ref.py
 * (PyTorch re-implementations of Hugging Face's logits processors and beam
 * scorer, SimCTG's ranking, AdaCAD's JSD, HF's DoLa, and the contrastive
 * decoding repo's beam candidates) on fixed random logits and states,
 * and on large-magnitude ones (DoLa's early exits, AdaCAD's peaked 50k
 * rows). Masks and chosen ids must be identical; values within 1e-5
 * relative (float32 kernels against float64 references), JSDs as their
 * documented bounds.
 * Usage: test_decode_ref FILE.h5
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/decode.h"
#include "tests/test.h"

static hid_t file;

/* Reads dataset grp/name as mem_type; n gets the element count. */
static void *rd(const char *grp, const char *name, hid_t mt, size_t elem, size_t *n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", grp, name);
  hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
  CHECKF(ds >= 0, "missing %s", path);
  if (ds < 0) exit(1);
  hid_t sp = H5Dget_space(ds);
  hssize_t cnt = H5Sget_simple_extent_npoints(sp);
  void *buf = calloc((size_t)cnt + 1, elem);
  H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  H5Sclose(sp);
  H5Dclose(ds);
  if (n) *n = (size_t)cnt;
  return buf;
}
static float *rdf(const char *g, const char *name, size_t *n) {
  return rd(g, name, H5T_NATIVE_FLOAT, sizeof(float), n);
}
static int32_t *rdi(const char *g, const char *name, size_t *n) {
  return rd(g, name, H5T_NATIVE_INT32, sizeof(int32_t), n);
}
static double attr(const char *grp, const char *name) {
  double v = NAN;
  hid_t g = H5Gopen2(file, grp, H5P_DEFAULT);
  hid_t a = H5Aopen(g, name, H5P_DEFAULT);
  if (a >= 0) {
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
  }
  H5Gclose(g);
  return v;
}

/* Same -inf pattern and finite values within tol (relative to max(1,|ref|)). */
static int same_masked(const float *a, const float *ref, size_t n, double tol) {
  for (size_t i = 0; i < n; i++) {
    if (isinf(ref[i]) || isinf(a[i])) {
      if (a[i] != ref[i]) return 0;
    } else if (fabs((double)a[i] - ref[i]) > tol * fmax(1.0, fabs(ref[i]))) {
      return 0;
    }
  }
  return 1;
}

static const int V = 50;

static void test_argmax(void) {
  size_t n;
  float *x = rdf("argmax", "x", &n);
  int32_t *ids = rdi("argmax", "ids", NULL), out[8];
  decode_argmax_rows(out, x, 8, V);
  for (int i = 0; i < 8; i++) CHECKF(out[i] == ids[i], "row %d: %d vs %d", i, out[i], ids[i]);
  free(x);
  free(ids);
}

static void test_filters(void) {
  char g[32];
  for (int c = 0; c < 6; c++) {
    snprintf(g, sizeof g, "topk%d", c);
    float *x = rdf(g, "x", NULL), *y = rdf(g, "y", NULL);
    decode_temperature(x, 1, V, (float)attr(g, "t"));
    CHECK(decode_top_k(x, 1, V, (int)attr(g, "k"), (int)attr(g, "min_keep"), NULL) == 0);
    CHECKF(same_masked(x, y, V, 1e-6), "%s differs", g);
    free(x);
    free(y);
  }
  for (int c = 0; c < 5; c++) {
    snprintf(g, sizeof g, "topp%d", c);
    float *x = rdf(g, "x", NULL), *y = rdf(g, "y", NULL);
    foil_err err;
    CHECK(decode_top_p(x, 4, V, (float)attr(g, "p"), (int)attr(g, "min_keep"), &err) == 0);
    CHECKF(same_masked(x, y, 4 * (size_t)V, 0), "%s differs", g);
    free(x);
    free(y);
  }
  float *x = rdf("rep", "x", NULL), *y = rdf("rep", "y", NULL);
  size_t n;
  int32_t *ids = rdi("rep", "ids", &n);
  uint8_t seen[64] = {0};
  decode_repetition_penalty(x, V, ids, (int)n, (float)attr("rep", "penalty"), seen);
  CHECK(same_masked(x, y, V, 1e-6));
  int clean = 1;
  for (int i = 0; i < 64; i++) clean &= seen[i] == 0;
  CHECK(clean);
  free(x);
  free(y);
  free(ids);
}

static int desc_f(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x < y) - (x > y);
}

/* top-k's selection against a full sort, on rows full of ties (and -inf):
 * exactly the values >= the k-th largest survive, unchanged. */
static void test_topk_ties(void) {
  float x[97], orig[97], s[97];
  int bad = 0;
  uint64_t st = 12345;
  for (int it = 0; it < 3000; it++) {
    int n = 1 + it % 97;
    st = st * 6364136223846793005ULL + 1442695040888963407ULL;
    int k = 1 + (int)((st >> 33) % (uint64_t)n);
    for (int i = 0; i < n; i++) {
      st = st * 6364136223846793005ULL + 1442695040888963407ULL;
      orig[i] = (float)((st >> 40) % (uint64_t)(1 + it % 7));
      if (it % 3 == 0 && i % 5 == 0) orig[i] = -INFINITY;
    }
    memcpy(x, orig, sizeof x);
    memcpy(s, orig, sizeof s);
    qsort(s, (size_t)n, sizeof *s, desc_f);
    CHECK(decode_top_k(x, 1, n, k, 1, NULL) == 0);
    for (int i = 0; i < n; i++) bad += x[i] != (orig[i] >= s[k - 1] ? orig[i] : -INFINITY);
  }
  CHECKF(bad == 0, "%d entries differ from a sort", bad);
}

static void test_sample(void) {
  float *x = rdf("sample", "x", NULL), *u = rdf("sample", "u", NULL);
  int32_t *ids = rdi("sample", "ids", NULL);
  for (int i = 0; i < 16; i++) {
    int got = decode_sample(x + (size_t)i * V, V, u[i]);
    CHECKF(got == ids[i], "row %d: %d vs %d", i, got, ids[i]);
    CHECKF(isfinite(x[(size_t)i * V + got]), "row %d sampled a filtered token", i);
  }
  /* counter-based: same (seed, row, step) -> same token; rows independent
   * of the batch split; another step draws anew somewhere. */
  int32_t a[16], b[16], c[8], d[16];
  decode_sample_rows(a, x, 16, V, 7, 0, 3);
  decode_sample_rows(b, x, 16, V, 7, 0, 3);
  decode_sample_rows(c, x + 8 * (size_t)V, 8, V, 7, 8, 3);
  decode_sample_rows(d, x, 16, V, 7, 0, 4);
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(memcmp(a + 8, c, sizeof c) == 0);
  CHECK(memcmp(a, d, sizeof a) != 0);
  for (int i = 0; i < 16; i++)
    CHECK(a[i] == decode_sample(x + (size_t)i * V, V, rng_uniform(7, (uint64_t)i, 3)));
  free(x);
  free(u);
  free(ids);
}

static void test_topk_ids(void) {
  float x[6] = {1, 3, 3, -2, 3, 0};
  int32_t ids[4];
  float vals[4];
  decode_topk_ids(x, 6, 4, ids, vals);
  CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 4 && ids[3] == 0);
  CHECK(vals[3] == 1);
}

static void test_cs(void) {
  char g[16];
  for (int c = 0; c < 3; c++) {
    snprintf(g, sizeof g, "cs%d", c);
    size_t nctx, ncand, k;
    float *ctx = rdf(g, "ctx", &nctx), *cand = rdf(g, "cand", &ncand);
    float *probs = rdf(g, "probs", &k), *ref = rdf(g, "scores", NULL);
    uint8_t *mask = rd(g, "mask", H5T_NATIVE_UINT8, 1, NULL);
    int C = (int)(ncand / k), S = (int)(nctx / (size_t)C);
    float sc[8];
    int sel = decode_cs_select(probs, cand, ctx, mask, (int)k, S, C, (float)attr(g, "alpha"), sc);
    CHECKF(sel == (int)attr(g, "sel"), "%s: chose %d, reference %d", g, sel, (int)attr(g, "sel"));
    CHECKF(same_masked(sc, ref, k, 1e-5), "%s scores differ", g);
    free(ctx);
    free(cand);
    free(probs);
    free(ref);
    free(mask);
  }
}

static void test_cad(void) {
  char g[16];
  float out[64];
  for (int c = 0; c < 4; c++) {
    snprintf(g, sizeof g, "cad%d", c);
    float *zc = rdf(g, "zc", NULL), *zn = rdf(g, "zn", NULL);
    float *ada = rdf(g, "ada", NULL), *cad = rdf(g, "cad", NULL);
    double js = decode_jsd(zc, zn, V);
    CHECKF(fabs(js - attr(g, "jsd")) <= 1e-6 * fmax(1e-3, attr(g, "jsd")) + 1e-9, "%s jsd %g vs %g",
           g, js, attr(g, "jsd"));
    float al = decode_cad(out, zc, zn, V, 0, 1, (float)attr(g, "floor"));
    CHECKF(fabs(al - attr(g, "alpha_ada")) <= 1e-6, "%s alpha %g vs %g", g, al, attr(g, "alpha_ada"));
    CHECKF(same_masked(out, ada, V, 1e-5), "%s adacad differs", g);
    CHECK(decode_cad(out, zc, zn, V, 0.5f, 0, 0) == 0.5f);
    CHECKF(same_masked(out, cad, V, 1e-5), "%s cad differs", g);
    /* CAD is the 2-variant combination with weights (1+α, -α) */
    float z2[128], w[2] = {1.5f, -0.5f}, out2[64];
    memcpy(z2, zc, V * sizeof(float));
    memcpy(z2 + V, zn, V * sizeof(float));
    decode_combine(out2, z2, w, 2, V);
    CHECK(same_masked(out2, cad, V, 1e-5));
    free(zc);
    free(zn);
    free(ada);
    free(cad);
  }
  /* peaked 50257-entry rows: get_jsd clamps nothing (jsd_big0) or, with
   * zeros, everything it clamps (1, 2); against the float64 mirror, and
   * the reference's own float32 evaluation within its rounding */
  for (int c = 0; c < 3; c++) {
    snprintf(g, sizeof g, "jsd_big%d", c);
    size_t nv;
    float *zc = rdf(g, "zc", &nv), *zn = rdf(g, "zn", NULL);
    double *work = malloc(2 * nv * sizeof(double));
    double js = decode_jsd(zc, zn, (int)nv), jw = decode_jsd_work(zc, zn, (int)nv, work);
    double want = attr(g, "jsd"), w32 = attr(g, "jsd_f32");
    CHECKF(fabs(js - want) <= 1e-9 * want && fabs(jw - want) <= 1e-9 * want, "%s jsd %.12g (work %.12g) vs %.12g", g,
           js, jw, want);
    CHECKF(fabs(js - w32) <= 1e-5, "%s jsd %.9g vs float32 get_jsd %.9g", g, js, w32);
    CHECKF(attr(g, "tiny") > 40000, "%s: %g probabilities below 1e-9", g, attr(g, "tiny"));
    free(zc), free(zn), free(work);
  }
  float *z = rdf("combine", "z", NULL), *w = rdf("combine", "w", NULL), *y = rdf("combine", "y", NULL);
  decode_combine(out, z, w, 3, V);
  CHECK(same_masked(out, y, V, 1e-5));
  free(z);
  free(w);
  free(y);
}

static void test_dola(void) {
  size_t n;
  int32_t *rows = rdi("dola_layers", "rows", &n);
  int nr = (int)(n / 15);
  for (int r = 0; r < nr; r++) {
    const int32_t *row = rows + (size_t)r * 15;
    int out[16];
    foil_err err;
    int got = decode_dola_layers(row[0], row[1], NULL, 0, out, 16, &err);
    if (row[2] == 0) {
      CHECKF(got == FOIL_EINVAL, "L=%d kind=%d: expected the empty-set error", row[0], row[1]);
      continue;
    }
    CHECKF(got == row[2], "L=%d kind=%d: %d layers, reference %d", row[0], row[1], got, row[2]);
    for (int i = 0; i < got && i < row[2]; i++) CHECK(out[i] == row[3 + i]);
  }
  free(rows);
  int list[4] = {0, 3, 9, 5}, out[4];
  CHECK(decode_dola_layers(6, DOLA_LIST, list, 4, out, 4, NULL) == 3 && out[2] == 5);
  list[0] = -1;
  CHECK(decode_dola_layers(6, DOLA_LIST, list, 4, out, 4, NULL) == FOIL_EINVAL);
  /* dola0/1: V = 50, random; dola2: the review's case (V = 4: HF picks
   * layer A, a floor at -87 picked B); dola3/4: V = 1000, early-exit logits
   * of scale up to 800. The layer must be HF's, the JSDs within kernels.h's
   * bound of the float64 ones (2e-6 + 4e-7·w, plus the log-sums' 3e-7
   * error, here inside the 2e-6). */
  char g[16];
  for (int c = 0; c < 5; c++) {
    snprintf(g, sizeof g, "dola%d", c);
    size_t nc, nv, nj;
    float *fin = rdf(g, "final", &nv), *cands = rdf(g, "cands", &nc);
    float *ref = rdf(g, "contrast", NULL), *pen = rdf(g, "penalized", NULL);
    double *jref = rd(g, "js", H5T_NATIVE_DOUBLE, sizeof(double), &nj);
    double *wref = rd(g, "w", H5T_NATIVE_DOUBLE, sizeof(double), NULL);
    int32_t *ids = rdi(g, "ids", &n);
    const int Vd = (int)nv, ncand = (int)(nc / nv);
    double *js = malloc(sizeof(double) * (size_t)ncand);
    int sel = decode_dola_select(cands, (size_t)Vd, fin, ncand, Vd, js);
    CHECKF(sel == (int)attr(g, "sel"), "%s: layer %d, reference %d", g, sel, (int)attr(g, "sel"));
    CHECK(nj == (size_t)ncand);
    for (int i = 0; i < ncand && i < (int)nj; i++)
      CHECKF(fabs(js[i] - jref[i]) <= 2e-6 + 4e-7 * wref[i], "%s layer %d: JSD %.9g vs %.9g", g, i, js[i], jref[i]);
    float *o = malloc(sizeof(float) * (size_t)Vd);
    uint8_t *seen = calloc((size_t)Vd, 1);
    decode_dola_contrast(o, fin, cands + (size_t)sel * Vd, Vd, 0.1f, 1);
    CHECKF(same_masked(o, ref, (size_t)Vd, 1e-5), "%s contrast differs", g);
    decode_repetition_penalty(o, Vd, ids, (int)n, 1.2f, seen);
    CHECKF(same_masked(o, pen, (size_t)Vd, 1e-5), "%s penalized differs", g);
    free(fin);
    free(cands);
    free(ref);
    free(pen);
    free(jref);
    free(wref);
    free(ids);
    free(js);
    free(o);
    free(seen);
  }
}

static void test_beam(void) {
  char g[16];
  for (int c = 0; c < 5; c++) {
    snprintf(g, sizeof g, "beam%d", c);
    size_t np, nout;
    int32_t *prompt = rdi(g, "prompt", &np), *ref = rdi(g, "out", &nout);
    int32_t *src_ref = rdi(g, "src", NULL), *next_ref = rdi(g, "next", NULL);
    float *z = rdf(g, "z", NULL), *za = rdf(g, "za", NULL);
    int nb = (int)attr(g, "nb"), steps = (int)attr(g, "steps"), cd = (int)attr(g, "cd");
    /* the reference ran max_new_tokens = z's step count */
    size_t nz;
    free(z);
    z = rdf(g, "z", &nz);
    int Tz = (int)(nz / ((size_t)nb * V));
    decode_beam *b = NULL;
    CHECK(decode_beam_new(&b, nb, (int)np, Tz, (float)attr(g, "lp"), (int)attr(g, "early"),
                          (int32_t)attr(g, "eos"), NULL) == 0);
    float *logp = malloc((size_t)nb * V * sizeof(float)), *work = malloc(2 * (size_t)V * sizeof(float));
    decode_cand cand[16];
    int src[8];
    int32_t next[8];
    int t = 0, ok = 1;
    for (; t < Tz; t++) {
      const float *zt = z + (size_t)t * nb * V;
      if (cd) {
        decode_cd_candidates(b, zt, za + (size_t)t * nb * V, V, 0.1f, 1.0f, 0.5f, nb > 1 ? 2 : 1,
                             t == 0, work, cand);
      } else {
        for (int i = 0; i < nb; i++) decode_log_softmax(logp + (size_t)i * V, zt + (size_t)i * V, V);
        decode_beam_topk(b, logp, V, cand);
      }
      int done = decode_beam_process(b, cand, 2 * nb, src, next);
      if (t < steps)
        for (int i = 0; i < nb; i++)
          ok &= src[i] == src_ref[t * nb + i] && next[i] == next_ref[t * nb + i];
      if (done) break;
    }
    CHECKF(ok, "%s: the beams' steps differ from the reference", g);
    CHECKF(t + 1 == steps || (t == Tz && steps == Tz), "%s: %d steps, reference %d", g, t + 1,
           steps);
    int32_t out[32];
    float score;
    int n = decode_beam_finalize(b, out, 32, &score);
    CHECKF(n == (int)nout && memcmp(out, ref, nout * sizeof *out) == 0, "%s: output differs", g);
    CHECKF(fabs(score - attr(g, "score")) <= 1e-5 * fmax(1, fabs(attr(g, "score"))), "%s: score %g vs %g",
           g, score, attr(g, "score"));
    decode_beam_destroy(&b);
    free(logp);
    free(work);
    free(prompt);
    free(ref);
    free(src_ref);
    free(next_ref);
    free(z);
    free(za);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE.h5\n", argv[0]);
    return 2;
  }
  file = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    fprintf(stderr, "cannot open %s\n", argv[1]);
    return 1;
  }
  RUN(test_argmax);
  RUN(test_filters);
  RUN(test_topk_ties);
  RUN(test_sample);
  RUN(test_topk_ids);
  RUN(test_cs);
  RUN(test_cad);
  RUN(test_dola);
  RUN(test_beam);
  H5Fclose(file);
  TEST_EXIT();
}
