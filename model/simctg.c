/* simctg.c — SimCTG's token-level contrastive loss (see simctg.h). */
#include "model/simctg.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

struct simctg {
  size_t cap_u, cap_tt;   /* floats held by unit and by sim/dsim */
  float *unit, *dunit;    /* [B·T·C] unit states and d(loss)/d(unit) */
  float *norms;           /* [B·T] */
  float *sim, *dsim;      /* [T,T] one row's cosines and their gradient */
};

int simctg_new(simctg **out, foil_err *err) {
  *out = calloc(1, sizeof **out);
  return *out ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "out of memory");
}

void simctg_destroy(simctg **sp) {
  if (!sp || !*sp) return;
  simctg *s = *sp;
  free(s->unit);
  free(s->dunit);
  free(s->norms);
  free(s->sim);
  free(s->dsim);
  free(s);
  *sp = NULL;
}

/* Grows the scratch for B rows of T tokens of width C. */
static int reserve(simctg *s, int B, int T, int C, foil_err *err) {
  size_t nu = (size_t)B * T * C, ntt = (size_t)T * T;
  if (nu > s->cap_u) {
    float *u = realloc(s->unit, nu * sizeof(float));
    if (u) s->unit = u;
    float *du = u ? realloc(s->dunit, nu * sizeof(float)) : NULL;
    if (du) s->dunit = du;
    float *n = du ? realloc(s->norms, (size_t)B * T * sizeof(float)) : NULL;
    if (n) s->norms = n;
    if (!u || !du || !n) return foil_err_set(err, FOIL_ENOMEM, "out of memory for SimCTG (%zu floats)", nu);
    s->cap_u = nu;
  }
  if (ntt > s->cap_tt) {
    float *a = realloc(s->sim, ntt * sizeof(float)), *b = a ? realloc(s->dsim, ntt * sizeof(float)) : NULL;
    if (a) s->sim = a;
    if (b) s->dsim = b;
    if (!a || !b) return foil_err_set(err, FOIL_ENOMEM, "out of memory for SimCTG (%zu floats)", 2 * ntt);
    s->cap_tt = ntt;
  }
  return FOIL_OK;
}

static int real_tokens(const uint8_t *mask, int b, int T) {
  if (!mask) return T;
  int n = 0;
  for (int t = 0; t < T; t++) n += mask[(size_t)b * T + t] != 0;
  return n;
}

double simctg_pairs(const uint8_t *mask, int B, int T) {
  double z = 0;
  for (int b = 0; b < B; b++) {
    double L = real_tokens(mask, b, T);
    z += L * (L - 1);
  }
  return z;
}

int simctg_loss(simctg *s, const float *hidden, const uint8_t *mask, int B, int T, int C,
                float margin, double norm, float *loss, float *dhidden, foil_err *err) {
  *loss = 0.0f;
  if (B < 0 || T < 0 || C < 1)
    return foil_err_set(err, FOIL_EINVAL, "SimCTG: bad sizes B %d T %d C %d", B, T, C);
  if (dhidden) memset(dhidden, 0, sizeof(float) * (size_t)B * T * C);
  if (norm <= 0) norm = simctg_pairs(mask, B, T);
  if (B == 0 || T == 0 || norm <= 0) return FOIL_OK;
  int rc = reserve(s, B, T, C, err);
  if (rc) return rc;
  l2norm_forward(s->unit, s->norms, hidden, B * T, C);
  if (dhidden) memset(s->dunit, 0, sizeof(float) * (size_t)B * T * C);
  const float inv = (float)(1.0 / norm);
  double total = 0;
  for (int b = 0; b < B; b++) {
    const int L = real_tokens(mask, b, T);
    if (L < 2) continue;
    const float *u = s->unit + (size_t)b * T * C;
    /* cosines of the first L positions: sim[i,j] = <u_i, u_j> */
    matmul_forward(s->sim, u, u, NULL, L, C, L);
    if (dhidden) memset(s->dsim, 0, sizeof(float) * (size_t)L * L);
    for (int i = 0; i < L; i++) {
      if (mask && !mask[(size_t)b * T + i]) continue; /* SimCTG's input_mask on the row sum */
      const float *si = s->sim + (size_t)i * L;
      double row = 0;
      for (int j = 0; j < L; j++) {
        if (j == i) continue;
        float v = margin - si[i] + si[j];
        if (v > 0.0f) {
          row += v;
          if (dhidden) {
            s->dsim[(size_t)i * L + j] += inv;
            s->dsim[(size_t)i * L + i] -= inv;
          }
        }
      }
      total += row;
    }
    if (!dhidden) continue;
    /* d/du = (dS + dS^T)·u over the first L positions: symmetrize, one matmul */
    for (int i = 0; i < L; i++)
      for (int j = i; j < L; j++) {
        float g = s->dsim[(size_t)i * L + j] + s->dsim[(size_t)j * L + i];
        s->dsim[(size_t)i * L + j] = s->dsim[(size_t)j * L + i] = g;
      }
    matmul_backward(s->dunit + (size_t)b * T * C, NULL, NULL, s->dsim, NULL, u, L, C, L);
  }
  /* through u = h/||h|| (positions without a gradient add zero) */
  if (dhidden) l2norm_backward(dhidden, s->dunit, s->unit, s->norms, B * T, C);
  *loss = (float)(total / norm);
  return FOIL_OK;
}
