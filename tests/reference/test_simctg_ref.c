/* test_simctg_ref.c — foil's SimCTG loss against PyTorch (simctg_ref.py).
 *
 * For every case in the file: the loss within rel. error 1e-5, the
 * gradient w.r.t. the last-layer states within rel. error 1e-4 (Frobenius
 * norm of the difference over that of the reference).
 * Usage: test_simctg_ref FILE.h5
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/simctg.h"
#include "tests/test.h"

static void *read_ds(hid_t g, const char *name, hid_t type, size_t elem, hsize_t dims[3], int *nd) {
  hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
  if (ds < 0) return NULL;
  hid_t sp = H5Dget_space(ds);
  *nd = H5Sget_simple_extent_ndims(sp);
  size_t n = 1;
  if (*nd >= 0 && *nd <= 3) {
    H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; i < *nd; i++) n *= dims[i];
  }
  void *buf = *nd >= 0 && *nd <= 3 ? malloc(n * elem + 1) : NULL;
  if (buf && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    free(buf);
    buf = NULL;
  }
  H5Sclose(sp);
  H5Dclose(ds);
  return buf;
}

static void one_case(hid_t file, const char *name) {
  hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
  CHECKF(g >= 0, "no case %s", name);
  if (g < 0) return;
  double margin = NAN;
  hid_t a = H5Aopen(g, "margin", H5P_DEFAULT);
  if (a >= 0) H5Aread(a, H5T_NATIVE_DOUBLE, &margin), H5Aclose(a);
  hsize_t hd[3] = {0}, md[3] = {0}, gd[3] = {0}, ld[3] = {0};
  int hn = -1, mn = -1, gn = -1, ln = -1;
  float *h = read_ds(g, "hidden", H5T_NATIVE_FLOAT, sizeof(float), hd, &hn);
  uint8_t *mask = read_ds(g, "mask", H5T_NATIVE_UINT8, 1, md, &mn);
  double *gref = read_ds(g, "grad", H5T_NATIVE_DOUBLE, sizeof(double), gd, &gn);
  double *lref = read_ds(g, "loss", H5T_NATIVE_DOUBLE, sizeof(double), ld, &ln);
  CHECKF(h && mask && gref && lref && hn == 3 && mn == 2 && gn == 3 && !isnan(margin), "%s: unreadable case", name);
  if (h && mask && gref && lref && hn == 3) {
    int B = (int)hd[0], T = (int)hd[1], C = (int)hd[2];
    float *grad = malloc(sizeof(float) * (size_t)B * T * C);
    simctg *s = NULL;
    foil_err err = {0};
    float loss = NAN;
    CHECK(simctg_new(&s, &err) == FOIL_OK);
    CHECKF(simctg_loss(s, h, mask, B, T, C, (float)margin, 0, &loss, grad, &err) == FOIL_OK, "%s", err.msg);
    double rl = fabs(loss - *lref) / fabs(*lref);
    CHECKF(rl <= 1e-5, "%s: loss %.8g, torch %.8g (rel %.3g)", name, loss, *lref, rl);
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)B * T * C; i++) {
      double d = grad[i] - gref[i];
      num += d * d;
      den += gref[i] * gref[i];
    }
    double rg = sqrt(num / den);
    CHECKF(den > 0 && rg <= 1e-4, "%s: gradient rel. error %.3g", name, rg);
    printf("%-28s loss %.6f (torch %.6f) grad rel %.2e\n", name, loss, *lref, rg);
    simctg_destroy(&s);
    free(grad);
  }
  free(h);
  free(mask);
  free(gref);
  free(lref);
  H5Gclose(g);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE.h5\n", argv[0]);
    return 2;
  }
  kernels_set_threads(1);
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECKF(f >= 0, "cannot open %s", argv[1]);
  if (f >= 0) {
    static const char *const cases[] = {"full_rows", "right_padded", "right_padded_margin_0.8",
                                        "pad_id_inside"};
    for (int i = 0; i < 4; i++) one_case(f, cases[i]);
    H5Fclose(f);
  }
  CHECK(test_checks >= 4 * 4);
  TEST_EXIT();
}
