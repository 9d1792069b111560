/* test_generate_ref.c — model/generate.h's whole generations against
 * generate_ref.py (the reference loops re-implemented in PyTorch, one prompt
 * at a time, recomputing the whole sequence each step) on the same small
 * random GPT-2s, and the driver's own invariants:
 *   - greedy, contrastive search (k 5/α 0.6, k 4/α 0.4), beam search (and
 *     with a repetition penalty, and with its history past each prompt's
 *     first ids: penalty_skip; DoLa too), contrastive decoding (expert + amateur,
 *     beam 3; and with the amateur seeing the whole prompt), CAD, AdaCAD
 *     (and its per-step α), AdaCAD with a floor, DoLa ("high" and a list)
 *     give the reference's tokens exactly;
 *   - greedy equals re-running decoder_forward over the whole sequence;
 *   - contrastive search with α = 0 equals greedy; one beam equals greedy;
 *   - every method: a batch of prompts of different lengths equals each
 *     prompt alone;
 *   - sampling: same seed same tokens, batch = alone with first_row, top-k 1
 *     equals greedy; another seed differs;
 *   - bad prompts and options are refused with FOIL_EINVAL.
 * Usage: test_generate_ref FILE.h5
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/decode.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "tests/test.h"

static hid_t file;
static int P, T, N, CT;
static int32_t EOS;
static int32_t *ids, *cids;
static int *lens, *clens;

static void *rd(const char *path, hid_t mt, size_t elem, size_t *n) {
  hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
  if (ds < 0) {
    fprintf(stderr, "missing %s\n", path);
    exit(1);
  }
  hid_t sp = H5Dget_space(ds);
  hssize_t cnt = H5Sget_simple_extent_npoints(sp);
  void *buf = calloc((size_t)cnt + 1, elem);
  H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  H5Sclose(sp);
  H5Dclose(ds);
  if (n) *n = (size_t)cnt;
  return buf;
}

static int attr_i(const char *obj, const char *name) {
  int v = -1;
  hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    H5Aread(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
  }
  return v;
}

static decoder *load_model(const char *grp) {
  decoder_config cfg;
  decoder_config_default(&cfg);
  cfg.n_layers = attr_i(grp, "n_layers");
  cfg.d_model = attr_i(grp, "d_model");
  cfg.n_heads = attr_i(grp, "n_heads");
  cfg.d_ff = attr_i(grp, "d_ff");
  cfg.vocab = attr_i(grp, "vocab");
  cfg.max_len = attr_i(grp, "max_len");
  cfg.dropout = 0;
  decoder *d = NULL;
  foil_err err;
  if (decoder_new(&d, &cfg, &err)) {
    fprintf(stderr, "decoder_new: %s\n", err.msg);
    exit(1);
  }
  const encoder_tensor *t = decoder_tensors(d);
  float *p = decoder_params(d);
  for (int i = 0; i < DEC_NTENSORS; i++) {
    char path[128];
    snprintf(path, sizeof path, "%s/params/%s", grp, t[i].name);
    size_t n;
    float *a = rd(path, H5T_NATIVE_FLOAT, sizeof(float), &n);
    CHECKF(n == t[i].size, "%s: %zu floats, decoder wants %zu", path, n, t[i].size);
    memcpy(p + t[i].offset, a, (n < t[i].size ? n : t[i].size) * sizeof(float));
    free(a);
  }
  return d;
}

/* Compares out/out_len [P] with the reference group's out/len. */
static int same_as_ref(const char *name, const int32_t *out, const int *out_len, int np) {
  char path[64];
  snprintf(path, sizeof path, "%s/out", name);
  int32_t *ref = rd(path, H5T_NATIVE_INT32, 4, NULL);
  snprintf(path, sizeof path, "%s/len", name);
  int32_t *rlen = rd(path, H5T_NATIVE_INT32, 4, NULL);
  int ok = 1;
  for (int p = 0; p < np; p++) {
    int same = out_len[p] == rlen[p] &&
               memcmp(out + (size_t)p * N, ref + (size_t)p * N, (size_t)rlen[p] * 4) == 0;
    if (!same) {
      fprintf(stderr, "%s prompt %d:\n  foil", name, p);
      for (int i = 0; i < out_len[p]; i++) fprintf(stderr, " %d", out[(size_t)p * N + i]);
      fprintf(stderr, "\n  ref ");
      for (int i = 0; i < rlen[p]; i++) fprintf(stderr, " %d", ref[(size_t)p * N + i]);
      fprintf(stderr, "\n");
    }
    ok &= same;
  }
  free(ref);
  free(rlen);
  return ok;
}

static decoder *ex, *am;

enum { M_GREEDY, M_CS, M_CS4, M_BEAM, M_BEAM_REP, M_CD, M_CD_FULL, M_CAD, M_ADACAD, M_ADAFLOOR, M_DOLA_HIGH, M_DOLA_LIST,
       M_BEAM_REP_SKIP, M_DOLA_SKIP, M_COUNT };
static const char *mname[M_COUNT] = {"greedy", "cs", "cs4", "beam", "beam_rep", "cd", "cd_full", "cad", "adacad",
                                     "adacad_floor", "dola_high", "dola_list", "beam_rep_skip", "dola_skip"};
/* generate_ref.py's SKIP: the penalty history of prompt p starts at its id SKIP[p] */
static const int SKIP[3] = {9, 3, 6}; /* prompts 0 and 2 whole (lens 9, 4, 6) */

/* Runs method m on prompts [p0, p0+np) of the case; out [np, N]. */
static int run(int m, int p0, int np, int32_t *out, int *out_len, float *alphas, foil_err *err) {
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  o.eos_id = EOS;
  const int32_t *pid = ids + (size_t)p0 * T;
  const int *pl = lens + p0;
  if (m == M_BEAM_REP_SKIP || m == M_DOLA_SKIP) o.penalty_skip = SKIP + p0;
  switch (m) {
    case M_GREEDY:
      return generate_plain(ex, pid, pl, np, T, &o, out, out_len, err);
    case M_CS:
    case M_CS4: {
      generate_cs_cfg c;
      generate_cs_default(&c);
      if (m == M_CS4) {
        c.top_k = 4;
        c.alpha = 0.4f;
      }
      return generate_cs(ex, pid, pl, np, T, &c, &o, out, out_len, err);
    }
    case M_BEAM:
    case M_BEAM_REP:
    case M_BEAM_REP_SKIP: {
      generate_beam_cfg c;
      generate_beam_default(&c);
      c.num_beams = 3;
      if (m != M_BEAM) {
        c.num_beams = 2;
        c.length_penalty = 0.8f;
        o.repetition_penalty = 2.0f;
        o.eos_id = -1;
      }
      return generate_beam(ex, pid, pl, np, T, &c, &o, out, out_len, err);
    }
    case M_CD:
    case M_CD_FULL: {
      generate_cd_cfg c;
      generate_cd_default(&c);
      c.num_beams = 3;
      if (m == M_CD_FULL) {
        c.num_beams = 2;
        c.ignore_prefix = 0;
        c.alpha = 0.2f;
        c.beta = 0.5f;
        c.tau_ama = 1.0f;
      }
      return generate_cd(ex, am, pid, pl, np, T, &c, &o, out, out_len, err);
    }
    case M_CAD:
    case M_ADACAD:
    case M_ADAFLOOR: {
      float w[2];
      generate_cad_weights(0.5f, w);
      generate_combine_cfg c = {2, w, m != M_CAD, m == M_ADAFLOOR ? 0.3f : 0};
      return generate_combine(ex, cids + (size_t)2 * p0 * CT, clens + 2 * p0, np, CT, &c, &o, out,
                              out_len, alphas, err);
    }
    default: {
      generate_dola_cfg c;
      generate_dola_default(&c);
      int list[4] = {0, 1, 2, 3};
      if (m == M_DOLA_LIST) {
        c.layers_kind = DOLA_LIST;
        c.layers = list;
        c.n_layers = 4;
      }
      o.repetition_penalty = 1.2f;
      return generate_dola(ex, pid, pl, np, T, &c, &o, out, out_len, err);
    }
  }
}

static void test_methods_vs_reference(void) {
  int32_t *out = calloc((size_t)P * N, 4), *one = calloc((size_t)N, 4);
  int out_len[8], one_len[1];
  float *alphas = calloc((size_t)P * N, sizeof(float));
  for (int m = 0; m < M_COUNT; m++) {
    foil_err err;
    memset(out, 0xff, (size_t)P * N * 4);
    int rc = run(m, 0, P, out, out_len, alphas, &err);
    CHECKF(rc == 0, "%s: %s", mname[m], err.msg);
    CHECKF(same_as_ref(mname[m], out, out_len, P), "%s differs from the reference", mname[m]);
    if (m == M_ADACAD || m == M_ADAFLOOR) {
      char path[64];
      snprintf(path, sizeof path, "%s/alpha", mname[m]);
      double *ra = rd(path, H5T_NATIVE_DOUBLE, 8, NULL);
      double md = 0;
      for (int p = 0; p < P; p++)
        for (int s = 0; s < out_len[p]; s++)
          md = fmax(md, fabs(alphas[(size_t)p * N + s] - ra[(size_t)p * N + s]));
      CHECKF(md < 1e-5, "%s: per-step alpha differs by %g", mname[m], md);
      free(ra);
    }
    /* one thread gives the tokens two gave (DoLa's rows run in parallel) */
    {
      int32_t *t1 = malloc((size_t)P * N * 4);
      int t1_len[8];
      memset(t1, 0xff, (size_t)P * N * 4);
      int orig = kernels_get_threads();
      kernels_set_threads(orig == 1 ? 2 : 1);
      rc = run(m, 0, P, t1, t1_len, NULL, &err);
      kernels_set_threads(orig);
      CHECKF(rc == 0 && memcmp(t1_len, out_len, (size_t)P * sizeof(int)) == 0 &&
                 memcmp(t1, out, (size_t)P * N * 4) == 0,
             "%s: %d threads differ from %d", mname[m], orig == 1 ? 2 : 1, orig);
      free(t1);
    }
    /* each prompt alone equals its row of the batch */
    for (int p = 0; p < P; p++) {
      rc = run(m, p, 1, one, one_len, NULL, &err);
      CHECKF(rc == 0 && one_len[0] == out_len[p] &&
                 memcmp(one, out + (size_t)p * N, (size_t)one_len[0] * 4) == 0,
             "%s: prompt %d alone differs from the batch", mname[m], p);
    }
  }
  free(out);
  free(one);
  free(alphas);
}

/* Greedy by re-running the full forward each step (no cache). */
static void test_greedy_vs_forward(void) {
  int32_t out[64];
  int out_len[8];
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  o.eos_id = -1; /* run the full length */
  foil_err err;
  CHECK(generate_plain(ex, ids, lens, P, T, &o, out, out_len, &err) == 0);
  int V = decoder_cfg(ex)->vocab;
  for (int p = 0; p < P; p++) {
    int32_t seq[64];
    int n = lens[p];
    memcpy(seq, ids + (size_t)p * T, (size_t)n * 4);
    int ok = out_len[p] == N;
    for (int s = 0; s < N; s++) {
      const float *logits;
      float loss;
      CHECK(decoder_forward(ex, seq, NULL, NULL, 1, n, 0, 0, 0, &loss, NULL, &logits, NULL, &err) ==
            0);
      int t = decode_argmax(logits + (size_t)(n - 1) * V, V);
      ok &= t == out[(size_t)p * N + s];
      seq[n++] = t;
    }
    CHECKF(ok, "prompt %d: cached greedy differs from re-running the forward", p);
  }
}

static void test_cs_alpha0_is_greedy(void) {
  int32_t a[64], b[64];
  int la[8], lb[8];
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  o.eos_id = EOS;
  generate_cs_cfg c = {5, 0.0f};
  foil_err err;
  CHECK(generate_plain(ex, ids, lens, P, T, &o, a, la, &err) == 0);
  CHECK(generate_cs(ex, ids, lens, P, T, &c, &o, b, lb, &err) == 0);
  for (int p = 0; p < P; p++)
    CHECKF(la[p] == lb[p] && memcmp(a + (size_t)p * N, b + (size_t)p * N, (size_t)la[p] * 4) == 0,
           "prompt %d", p);
}

/* Beam search with one beam and no EOS is greedy search. */
static void test_beam1_is_greedy(void) {
  int32_t a[64], b[64];
  int la[8], lb[8];
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  generate_beam_cfg c = {1, 1.0f, 0};
  foil_err err;
  CHECK(generate_plain(ex, ids, lens, P, T, &o, a, la, &err) == 0);
  CHECK(generate_beam(ex, ids, lens, P, T, &c, &o, b, lb, &err) == 0);
  for (int p = 0; p < P; p++)
    CHECKF(la[p] == N && lb[p] == N && memcmp(a + (size_t)p * N, b + (size_t)p * N, (size_t)N * 4) == 0,
           "prompt %d", p);
}

static void test_sampling(void) {
  int32_t a[64], b[64], c1[16], g[64];
  int la[8], lb[8], lc[1], lg[8];
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  o.do_sample = 1;
  o.temperature = 1.3f;
  o.top_p = 0.9f;
  o.top_k = 20;
  o.seed = 11;
  foil_err err;
  CHECK(generate_plain(ex, ids, lens, P, T, &o, a, la, &err) == 0);
  CHECK(generate_plain(ex, ids, lens, P, T, &o, b, lb, &err) == 0);
  CHECK(memcmp(a, b, sizeof(int32_t) * (size_t)P * N) == 0);
  o.first_row = 2;
  CHECK(generate_plain(ex, ids + 2 * (size_t)T, lens + 2, 1, T, &o, c1, lc, &err) == 0);
  CHECK(lc[0] == la[2] && memcmp(c1, a + 2 * (size_t)N, (size_t)lc[0] * 4) == 0);
  o.first_row = 0;
  o.seed = 12;
  CHECK(generate_plain(ex, ids, lens, P, T, &o, b, lb, &err) == 0);
  CHECK(memcmp(a, b, sizeof(int32_t) * (size_t)P * N) != 0);
  /* top-k 1 sampling is greedy */
  o.top_k = 1;
  o.top_p = 1;
  CHECK(generate_plain(ex, ids, lens, P, T, &o, b, lb, &err) == 0);
  o.do_sample = 0;
  CHECK(generate_plain(ex, ids, lens, P, T, &o, g, lg, &err) == 0);
  CHECK(memcmp(g, b, sizeof(int32_t) * (size_t)P * N) == 0);
}

static void test_bad_input(void) {
  int32_t out[64];
  int ol[8];
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N;
  foil_err err;
  int bad_lens[3] = {0, 4, 6};
  CHECK(generate_plain(ex, ids, bad_lens, P, T, &o, out, ol, &err) == FOIL_EINVAL);
  int32_t bad_ids[9] = {1, 2, 999};
  int l1[1] = {3};
  CHECK(generate_plain(ex, bad_ids, l1, 1, 9, &o, out, ol, &err) == FOIL_EINVAL);
  CHECK(strstr(err.msg, "vocabulary") != NULL);
  o.max_new_tokens = 1000;
  CHECK(generate_plain(ex, ids, lens, P, T, &o, out, ol, &err) == FOIL_EINVAL);
  CHECK(strstr(err.msg, "max_len") != NULL);
  o.max_new_tokens = N;
  generate_cs_cfg c = {0, 0.5f};
  CHECK(generate_cs(ex, ids, lens, P, T, &c, &o, out, ol, &err) == FOIL_EINVAL);
  generate_dola_cfg dc;
  generate_dola_default(&dc);
  int list[1] = {9};
  dc.layers_kind = DOLA_LIST;
  dc.layers = list;
  dc.n_layers = 1;
  CHECK(generate_dola(ex, ids, lens, P, T, &dc, &o, out, ol, &err) == FOIL_EINVAL);
  generate_combine_cfg cc = {3, NULL, 1, 0};
  CHECK(generate_combine(ex, cids, clens, 1, CT, &cc, &o, out, ol, NULL, &err) == FOIL_EINVAL);
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
  ex = load_model("expert");
  am = load_model("amateur");
  P = attr_i("/", "P");
  T = attr_i("/", "T");
  CT = attr_i("/", "cT");
  ids = rd("ids", H5T_NATIVE_INT32, 4, NULL);
  lens = rd("lens", H5T_NATIVE_INT, sizeof(int), NULL);
  cids = rd("cids", H5T_NATIVE_INT32, 4, NULL);
  clens = rd("clens", H5T_NATIVE_INT, sizeof(int), NULL);
  N = attr_i("/", "max_new");
  EOS = attr_i("/", "eos");
  RUN(test_methods_vs_reference);
  RUN(test_greedy_vs_forward);
  RUN(test_cs_alpha0_is_greedy);
  RUN(test_beam1_is_greedy);
  RUN(test_sampling);
  RUN(test_bad_input);
  decoder_destroy(&ex);
  decoder_destroy(&am);
  free(ids);
  free(lens);
  free(cids);
  free(clens);
  H5Fclose(file);
  TEST_EXIT();
}
