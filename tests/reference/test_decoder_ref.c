/* test_decoder_ref.c — foil's GPT-2-style decoder against PyTorch.
 *
 * Reads the HDF5 file written by decoder_ref.py (a plain-torch GPT-2 in
 * float64 from the same float32 weights, padded batch, no dropout) and
 * checks, for every case in it:
 *   - logits [B,T,V], hidden LNF(x) [B,T,C]:   rel. error <= 1e-5
 *   - per-position nll [B,T]:                  rel. error <= 1e-5
 *   - loss (mean nll over targets >= 0):       rel. error <= 1e-5
 *   - every parameter gradient of (loss + <dhidden, hidden>): rel. error <= 1e-4
 *   - the KV-cache path: prefill of each row's first len-3 tokens (rows of
 *     different lengths), then one-token steps up to the row's length,
 *     inactive once a row is done: every next-token logits vector against
 *     torch's full forward at that position, rel. error <= 1e-5 (the whole
 *     set of compared vectors);
 *   - a case with "bf16" (decoder_set_precision ENC_BF16 against torch
 *     rounding the same operands): forward, nll, loss and cache 1e-4,
 *     gradients 2e-3 — foil's fp32 activation and torch's float64 one may
 *     round to neighbouring bf16 values (one bf16 step, 2^-8 relative),
 *     and the gradients pass through two such roundings per layer
 *     (encoder_ref's post_bf16 reasoning; observed values are printed);
 * rel. error of a tensor = ||foil - ref||_2 / ||ref||_2 over the tensor
 * (padded positions included: their logits and states are defined too,
 * since padded queries see the real keys before them), of a scalar
 * |foil - ref| / |ref|.
 * Usage: test_decoder_ref FILE.h5
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/decoder.h"
#include "tests/test.h"

/* Reads a whole dataset as mem_type into a new buffer; n gets the element
 * count, dims (if not NULL) the shape. NULL on failure. */
static void *read_ds(hid_t g, const char *name, hid_t mem_type, size_t elem, size_t *n,
                     int *ndim, hsize_t dims[4]) {
  hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
  if (ds < 0) return NULL;
  hid_t sp = H5Dget_space(ds);
  hsize_t d[4] = {0};
  int nd = H5Sget_simple_extent_ndims(sp);
  if (nd > 4) nd = -1;
  if (nd >= 0) H5Sget_simple_extent_dims(sp, d, NULL);
  size_t count = 1;
  for (int i = 0; i < nd; i++) count *= d[i];
  void *buf = nd >= 0 ? malloc(count * elem + 1) : NULL;
  if (buf && H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    free(buf);
    buf = NULL;
  }
  H5Sclose(sp);
  H5Dclose(ds);
  if (n) *n = count;
  if (ndim) *ndim = nd;
  if (dims) memcpy(dims, d, sizeof d);
  return buf;
}

static double attr_d(hid_t g, const char *name) {
  double v = NAN;
  hid_t a = H5Aopen(g, name, H5P_DEFAULT);
  if (a >= 0) {
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
  }
  return v;
}

static double rel_err_f(const float *a, const double *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = a[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The KV-cache path against torch's logits [B,T,V]: returns the rel. error
 * over all compared next-token vectors, or -1 on an API error. */
static double cache_path(decoder *d, const int32_t *ids, const uint8_t *mask, const double *ref,
                         int B, int T, int V) {
  foil_err err = {0};
  decoder_cache *c = NULL;
  int *len = calloc((size_t)B, sizeof(int)), *plen = calloc((size_t)B, sizeof(int));
  int32_t *tok = calloc((size_t)B, sizeof(int32_t));
  uint8_t *active = calloc((size_t)B, 1);
  float *lg = malloc(sizeof(float) * B * V);
  double num = 0, den = 0, res = -1;
  int Tp = 1, rc;
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) len[b] += mask[b * T + t];
    plen[b] = len[b] > 3 ? len[b] - 3 : 1;
    Tp = plen[b] > Tp ? plen[b] : Tp;
  }
  rc = decoder_cache_new(&c, d, B, T, 1, &err);
  rc = rc ? rc : decoder_prefill(d, c, ids, plen, T, lg, NULL, NULL, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc) goto out;
  for (;;) {
    int any = 0;
    for (int b = 0; b < B; b++) {
      /* lg holds the logits after position cache_len - 1 of active rows */
      int pos = decoder_cache_lens(c)[b] - 1;
      if (pos < len[b] && (active[b] || pos == plen[b] - 1)) {
        const double *r = ref + ((size_t)b * T + pos) * V;
        for (int v = 0; v < V; v++) {
          double e = lg[(size_t)b * V + v] - r[v];
          num += e * e;
          den += r[v] * r[v];
        }
      }
      active[b] = decoder_cache_lens(c)[b] < len[b];
      tok[b] = active[b] ? ids[b * T + decoder_cache_lens(c)[b]] : 0;
      any |= active[b];
    }
    if (!any) break;
    rc = decoder_step(d, c, tok, 1, active, lg, NULL, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) goto out;
    decoder_cache_commit(c, NULL, active);
  }
  res = sqrt(num / den);
out:
  decoder_cache_destroy(&c);
  free(len);
  free(plen);
  free(tok);
  free(active);
  free(lg);
  return res;
}

static void run_case(hid_t file, const char *name) {
  hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
  CHECKF(g >= 0, "no group %s", name);
  if (g < 0) return;
  decoder_config cfg;
  decoder_config_default(&cfg);
  cfg.n_layers = (int)attr_d(g, "n_layers");
  cfg.d_model = (int)attr_d(g, "d_model");
  cfg.n_heads = (int)attr_d(g, "n_heads");
  cfg.d_ff = (int)attr_d(g, "d_ff");
  cfg.vocab = (int)attr_d(g, "vocab");
  cfg.max_len = (int)attr_d(g, "max_len");
  cfg.ln_eps = (float)attr_d(g, "ln_eps");
  const int bf16 = attr_d(g, "bf16") == 1.0;
  const double tol_fwd = bf16 ? 1e-4 : 1e-5, tol_grad = bf16 ? 2e-3 : 1e-4;
  cfg.dropout = 0.0f; /* the reference has no dropout */
  foil_err err = {0};
  decoder *d = NULL;
  int rc = decoder_new(&d, &cfg, &err);
  if (!rc && bf16) rc = decoder_set_precision(d, ENC_BF16, &err);
  CHECKF(rc == 0, "%s: %s", name, err.msg);
  if (rc) {
    H5Gclose(g);
    return;
  }
  const encoder_tensor *t = decoder_tensors(d);
  for (int i = 0; i < DEC_NTENSORS; i++) {
    char path[128];
    snprintf(path, sizeof path, "params/%s", t[i].name);
    size_t n = 0;
    int nd = 0;
    hsize_t dims[4];
    float *w = read_ds(g, path, H5T_NATIVE_FLOAT, sizeof(float), &n, &nd, dims);
    CHECKF(w && n == t[i].size && nd == t[i].ndim, "%s: param %s missing or wrong shape", name, path);
    for (int k = 0; w && k < nd && k < t[i].ndim; k++)
      CHECKF((int)dims[k] == t[i].shape[k], "%s: %s dim %d is %d, foil has %d", name, path, k,
             (int)dims[k], t[i].shape[k]);
    if (w && n == t[i].size) memcpy(decoder_params(d) + t[i].offset, w, n * sizeof(float));
    free(w);
  }
  hsize_t idd[4];
  int32_t *ids = read_ds(g, "ids", H5T_NATIVE_INT32, 4, NULL, NULL, idd);
  uint8_t *mask = read_ds(g, "mask", H5T_NATIVE_UINT8, 1, NULL, NULL, NULL);
  int32_t *targets = read_ds(g, "targets", H5T_NATIVE_INT32, 4, NULL, NULL, NULL);
  float *dhidden = read_ds(g, "dhidden", H5T_NATIVE_FLOAT, 4, NULL, NULL, NULL);
  double *ref_logits = read_ds(g, "logits", H5T_NATIVE_DOUBLE, 8, NULL, NULL, NULL);
  double *ref_hidden = read_ds(g, "hidden", H5T_NATIVE_DOUBLE, 8, NULL, NULL, NULL);
  double *ref_nll = read_ds(g, "nll", H5T_NATIVE_DOUBLE, 8, NULL, NULL, NULL);
  double *ref_loss = read_ds(g, "loss", H5T_NATIVE_DOUBLE, 8, NULL, NULL, NULL);
  CHECK(ids && mask && targets && dhidden && ref_logits && ref_hidden && ref_nll && ref_loss);
  if (!ids || !mask || !targets || !dhidden || !ref_logits || !ref_hidden || !ref_nll || !ref_loss)
    goto free_data;
  const int B = (int)idd[0], T = (int)idd[1], C = cfg.d_model, V = cfg.vocab;
  const size_t N = (size_t)B * T;

  float loss = 0;
  const float *hidden = NULL, *logits = NULL, *nll = NULL;
  decoder_zero_grads(d);
  rc = decoder_forward(d, ids, targets, mask, B, T, 1, 7, 0, &loss, &hidden, &logits, &nll, &err);
  CHECKF(rc == 0, "%s: %s", name, err.msg);
  if (rc) goto free_data;
  double e_lg = rel_err_f(logits, ref_logits, N * V), e_h = rel_err_f(hidden, ref_hidden, N * C);
  double e_nll = rel_err_f(nll, ref_nll, N), e_loss = fabs(loss - *ref_loss) / fabs(*ref_loss);
  CHECKF(e_lg <= tol_fwd, "%s: logits rel err %.3g > %g", name, e_lg, tol_fwd);
  CHECKF(e_h <= tol_fwd, "%s: hidden rel err %.3g > %g", name, e_h, tol_fwd);
  CHECKF(e_nll <= tol_fwd, "%s: nll rel err %.3g > %g", name, e_nll, tol_fwd);
  CHECKF(e_loss <= tol_fwd, "%s: loss %.8f vs torch %.8f (rel %.3g)", name, loss, *ref_loss, e_loss);
  rc = decoder_backward(d, 1.0f, dhidden, &err);
  CHECKF(rc == 0, "%s: %s", name, err.msg);
  double worst = 0;
  const char *worst_name = "";
  for (int i = 0; i < DEC_NTENSORS; i++) {
    char path[128];
    snprintf(path, sizeof path, "grads/%s", t[i].name);
    size_t n = 0;
    double *gr = read_ds(g, path, H5T_NATIVE_DOUBLE, 8, &n, NULL, NULL);
    CHECKF(gr && n == t[i].size, "%s: %s missing", name, path);
    if (!gr) continue;
    double e = rel_err_f(decoder_grads(d) + t[i].offset, gr, n);
    CHECKF(e <= tol_grad, "%s: gradient of %s rel err %.3g > %g", name, t[i].name, e, tol_grad);
    if (e > worst) worst = e, worst_name = t[i].name;
    free(gr);
  }
  double e_cache = cache_path(d, ids, mask, ref_logits, B, T, V);
  CHECKF(e_cache >= 0 && e_cache <= tol_fwd, "%s: KV-cache logits rel err %.3g > %g", name, e_cache, tol_fwd);
  printf("  %-16s logits %.2e  hidden %.2e  nll %.2e  loss %.2e  grad %.2e (%s)  cache %.2e\n",
         name, e_lg, e_h, e_nll, e_loss, worst, worst_name, e_cache);
free_data:
  free(ids);
  free(mask);
  free(targets);
  free(dhidden);
  free(ref_logits);
  free(ref_hidden);
  free(ref_nll);
  free(ref_loss);
  decoder_destroy(&d);
  H5Gclose(g);
}

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)g;
  (void)info;
  char (*names)[64] = data;
  for (int i = 0; i < 16; i++)
    if (!names[i][0]) {
      snprintf(names[i], 64, "%s", name);
      break;
    }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s REFERENCE.h5\n", argv[0]);
    return 2;
  }
  kernels_set_threads(2);
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    fprintf(stderr, "cannot open %s (run decoder_ref.py first)\n", argv[1]);
    return 1;
  }
  char names[16][64] = {{0}};
  H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, collect, names);
  int ncase = 0;
  for (int i = 0; i < 16 && names[i][0]; i++, ncase++) run_case(f, names[i]);
  CHECKF(ncase >= 3, "expected at least 3 cases, found %d", ncase);
  H5Fclose(f);
  TEST_EXIT();
}
