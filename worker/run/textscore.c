/* textscore.c — a set of generations scored with foil's text metrics
 * (worker/run/textscore.h). */
#define _POSIX_C_SOURCE 200809L
#include "worker/run/textscore.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "model/decoder.h"
#include "model/encoder.h"
#include "model/tokenizer.h"
#include "storage/ckpt.h"
#include "storage/hfmodel.h"
#include "worker/run/encode.h"
#include "worker/run/jsonl.h"

void textscore_set_free(textscore_set *s) {
  for (size_t i = 0; i < s->n; i++) {
    free(s->prompt[i]);
    free(s->generation[i]);
    free(s->reference[i]);
  }
  free(s->prompt);
  free(s->generation);
  free(s->reference);
  memset(s, 0, sizeof *s);
}

int textscore_add(textscore_set *s, const char *prompt, const char *generation,
                  const char *reference, foil_err *err) {
  /* grow the three arrays to the next power of two when n is one */
  if ((s->n & (s->n - 1)) == 0) {
    size_t cap = s->n ? 2 * s->n : 1;
    char **a = realloc(s->prompt, cap * sizeof *a);
    if (a) s->prompt = a;
    char **b = a ? realloc(s->generation, cap * sizeof *b) : NULL;
    if (b) s->generation = b;
    char **c = b ? realloc(s->reference, cap * sizeof *c) : NULL;
    if (c) s->reference = c;
    if (!c) return foil_err_set(err, FOIL_ENOMEM, "textscore: out of memory at row %zu", s->n);
  }
  char *p = strdup(prompt), *g = strdup(generation), *r = reference ? strdup(reference) : NULL;
  if (!p || !g || (reference && !r)) {
    free(p);
    free(g);
    free(r);
    return foil_err_set(err, FOIL_ENOMEM, "textscore: out of memory at row %zu", s->n);
  }
  s->prompt[s->n] = p;
  s->generation[s->n] = g;
  s->reference[s->n] = r;
  s->n++;
  if (r) s->n_ref++;
  return 0;
}

/* One row: "prompt" and "generation" strings, "reference" a string, null or absent. */
static int add_row(void *ctx, const cJSON *o, const char *path, int line, foil_err *err) {
  static const char *const keys[3] = {"prompt", "generation", "reference"};
  const char *val[3] = {NULL, NULL, NULL};
  for (int k = 0; k < 3; k++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
    if (k == 2 && (!v || cJSON_IsNull(v))) break; /* reference is optional */
    if (!cJSON_IsString(v))
      return foil_err_set(err, FOIL_EINVAL, "%s:%d: key \"%s\" is %s", path, line, keys[k],
                          v ? "not a string" : "missing");
    val[k] = v->valuestring;
  }
  return textscore_add(ctx, val[0], val[1], val[2], err);
}

int textscore_read_jsonl(const char *path, textscore_set *s, foil_err *err) {
  memset(s, 0, sizeof *s);
  int rc = jsonl_each(path, "one {\"prompt\", \"generation\"} object per line", add_row, s, err);
  if (!rc && s->n == 0)
    rc = foil_err_set(err, FOIL_EINVAL, "%s: no rows (one JSON object per line with \"prompt\" and "
                      "\"generation\")", path);
  if (rc) textscore_set_free(s);
  return rc;
}

void textscore_opts_default(textscore_opts *o) {
  memset(o, 0, sizeof *o);
  mauve_config_default(&o->mauve);
}

int textscore_text(const textscore_set *s, textscore_result *r, foil_err *err) {
  memset(&r->counts, 0, sizeof r->counts);
  r->n = s->n;
  for (size_t i = 0; i < s->n; i++) {
    int rc = tm_count(&r->counts, s->generation[i], err);
    if (rc) return rc;
  }
  for (int n = 2; n <= 1 + TM_NREP; n++) r->rep[n - 2] = tm_rep(&r->counts, n);
  r->diversity = tm_diversity(&r->counts);
  r->mean_length = s->n ? (double)r->counts.tokens / (double)s->n : 0;
  return 0;
}

int textscore_coherence(const textscore_set *s, const char *encoder_ckpt, int max_len, int batch,
                        double *out, foil_err *err) {
  encoder *enc = NULL;
  tokenizer *tok = NULL;
  int rc = ckpt_open_encoder(encoder_ckpt, &enc, &tok, NULL, err);
  if (rc) return rc;
  int ml = hf_encode_len(encoder_ckpt, encoder_cfg(enc)->max_len); /* as sentence-transformers */
  if (max_len > 0 && max_len < ml) ml = max_len;
  int D = encoder_out_dim(enc);
  float *a = malloc(s->n * (size_t)D * sizeof *a), *b = malloc(s->n * (size_t)D * sizeof *b);
  if (!a || !b) rc = foil_err_set(err, FOIL_ENOMEM, "coherence: out of memory for %zu embeddings", 2 * s->n);
  if (!rc) rc = encode_texts(enc, tok, s->prompt, s->n, ml, batch > 0 ? batch : 32, a, err);
  if (!rc) rc = encode_texts(enc, tok, s->generation, s->n, ml, batch > 0 ? batch : 32, b, err);
  if (!rc) *out = tm_coherence(a, b, s->n, D);
  free(a);
  free(b);
  encoder_destroy(&enc);
  tokenizer_destroy(&tok);
  return rc;
}

int textscore_mauve(const float *p, int np, const float *q, int nq, int d,
                    const mauve_config *cfg, textscore_result *r, foil_err *err) {
  mauve_result m;
  int rc = mauve_compute(p, np, q, nq, d, cfg, &m, err);
  if (rc) return rc;
  r->has_mauve = 1;
  r->mauve = m.mauve;
  r->mauve_star = m.mauve_star;
  r->frontier_integral = m.frontier_integral;
  r->mauve_buckets = m.num_buckets;
  r->mauve_n_p = np;
  r->mauve_n_q = nq;
  r->mauve_runs = 1;
  r->mauve_run[0] = m.mauve;
  r->mauve_std = 0;
  mauve_result_clear(&m);
  return 0;
}

/* Rows a.. and b.. (k each) have the same references, row by row (the same
 * text, or both none). */
static int same_refs(const textscore_set *s, size_t a, size_t b, size_t k) {
  for (size_t i = 0; i < k; i++) {
    const char *x = s->reference[a + i], *y = s->reference[b + i];
    if (!x != !y || (x && strcmp(x, y))) return 0;
  }
  return 1;
}

/* MAUVE of each run of k rows against its own references (o->run_rows;
 * k = n: one run), then the means over runs into r. qf [n, C] the
 * generations' features; the references' are computed per run, a run
 * whose references are the first run's reusing them. */
static int mauve_runs(decoder *dec, const tokenizer *tok, const textscore_set *s, const textscore_opts *o,
                      const float *qf, size_t k, textscore_result *r, foil_err *err) {
  const int C = decoder_cfg(dec)->d_model;
  const size_t nr = s->n / k;
  char **refs = malloc(k * sizeof *refs);
  float *pf = malloc(k * (size_t)C * sizeof *pf), *pf0 = malloc(k * (size_t)C * sizeof *pf0);
  int rc = refs && pf && pf0 ? 0 : foil_err_set(err, FOIL_ENOMEM, "MAUVE: out of memory for features");
  size_t np0 = 0;
  double sum[3] = {0, 0, 0};
  for (size_t g = 0; !rc && g < nr; g++) {
    const size_t lo = g * k;
    size_t np = 0;
    for (size_t i = 0; i < k; i++)
      if (s->reference[lo + i]) refs[np++] = s->reference[lo + i];
    if (!np) {
      rc = foil_err_set(err, FOIL_EINVAL, "MAUVE: run %zu (rows %zu..%zu) has no reference", g, lo, lo + k - 1);
      break;
    }
    const float *p = pf0;
    if (g == 0) {
      rc = textscore_features(dec, tok, refs, np, o->max_len, o->batch, pf0, err);
      np0 = np;
    } else if (np != np0 || !same_refs(s, 0, lo, k)) {
      rc = textscore_features(dec, tok, refs, np, o->max_len, o->batch, pf, err);
      p = pf;
    }
    textscore_result one;
    if (!rc) rc = textscore_mauve(p, (int)np, qf + lo * (size_t)C, (int)k, C, &o->mauve, &one, err);
    if (rc) break;
    if (g == 0) r->mauve_buckets = one.mauve_buckets, r->mauve_n_p = one.mauve_n_p, r->mauve_n_q = one.mauve_n_q;
    r->mauve_run[g] = one.mauve;
    sum[0] += one.mauve, sum[1] += one.mauve_star, sum[2] += one.frontier_integral;
  }
  if (!rc) {
    r->has_mauve = 1;
    r->mauve_runs = (int)nr;
    r->mauve = sum[0] / (double)nr;
    r->mauve_star = sum[1] / (double)nr;
    r->frontier_integral = sum[2] / (double)nr;
    double ss = 0;
    for (size_t g = 0; g < nr; g++) ss += (r->mauve_run[g] - r->mauve) * (r->mauve_run[g] - r->mauve);
    r->mauve_std = nr > 1 ? sqrt(ss / (double)(nr - 1)) : 0;
  }
  free(refs);
  free(pf);
  free(pf0);
  return rc;
}

/* Perplexity, and MAUVE of the references against the generations when
 * some row has a reference, under the scorer checkpoint's decoder. */
static int score_lm(const textscore_set *s, const textscore_opts *o, textscore_result *r,
                    foil_err *err) {
  decoder *dec = NULL;
  tokenizer *tok = NULL;
  int rc = ckpt_open_decoder(o->scorer_ckpt, &dec, &tok, NULL, err);
  if (rc) return rc;
  double sum = 0;
  int64_t cnt = 0;
  rc = textscore_nll(dec, tok, s->prompt, s->generation, s->n, o->max_len, o->batch, &sum, &cnt, err);
  if (!rc) {
    r->has_perplexity = 1;
    r->perplexity = tm_perplexity(sum, cnt);
    r->ppl_tokens = cnt;
  }
  if (!rc && s->n_ref > 0) {
    const int C = decoder_cfg(dec)->d_model;
    float *qf = malloc(s->n * (size_t)C * sizeof *qf);
    if (!qf) rc = foil_err_set(err, FOIL_ENOMEM, "MAUVE: out of memory for features");
    if (!rc) rc = textscore_features(dec, tok, s->generation, s->n, o->max_len, o->batch, qf, err);
    if (!rc) rc = mauve_runs(dec, tok, s, o, qf, o->run_rows ? o->run_rows : s->n, r, err);
    free(qf);
  }
  decoder_destroy(&dec);
  tokenizer_destroy(&tok);
  return rc;
}

int textscore_run(const textscore_set *s, const textscore_opts *o, textscore_result *r,
                  foil_err *err) {
  memset(r, 0, sizeof *r);
  if (o->run_rows && (s->n % o->run_rows || s->n / o->run_rows > TEXTSCORE_MAX_RUNS))
    return foil_err_set(err, FOIL_EINVAL, "textscore: %zu rows are not 1 to %d runs of run_rows %zu", s->n,
                        TEXTSCORE_MAX_RUNS, o->run_rows);
  int rc = textscore_text(s, r, err);
  if (!rc && o->encoder_ckpt) {
    rc = textscore_coherence(s, o->encoder_ckpt, o->max_len, o->batch, &r->coherence, err);
    if (!rc) r->has_coherence = 1;
  }
  if (!rc && o->scorer_ckpt) rc = score_lm(s, o, r, err);
  return rc;
}

/* ---- the scorer decoder ---------------------------------------------------- */

/* Tokens of text (BPE adds no special token), at most max; *n the full
 * count. ids malloc'ed. */
static int tokens(const tokenizer *tok, const char *text, int32_t **ids, int *n, foil_err *err) {
  size_t len = strlen(text);
  int cap = (int)(len < 1024 ? len + 8 : 1024), full = 0;
  for (;;) {
    int32_t *buf = malloc((size_t)cap * sizeof *buf);
    if (!buf) return foil_err_set(err, FOIL_ENOMEM, "textscore: out of memory tokenizing");
    int rc = tokenizer_encode(tok, text, len, 0, buf, cap, &full, err);
    if (rc) {
      free(buf);
      return rc;
    }
    if (full <= cap) {
      *ids = buf;
      *n = full;
      return 0;
    }
    free(buf);
    cap = full;
  }
}

int textscore_nll(decoder *dec, const tokenizer *tok, char *const *prompts, char *const *gens,
                  size_t n, int max_len, int batch, double *nll_sum, int64_t *ntok, foil_err *err) {
  const int L = max_len > 0 && max_len < decoder_cfg(dec)->max_len ? max_len : decoder_cfg(dec)->max_len;
  if (L < 2) return foil_err_set(err, FOIL_EINVAL, "perplexity: max_len %d leaves no token to score", L);
  if (batch < 1) batch = 16;
  const int32_t eot = tokenizer_pad_id(tok);
  int32_t *ids = malloc((size_t)batch * L * sizeof *ids), *tg = malloc((size_t)batch * L * sizeof *tg);
  uint8_t *mask = malloc((size_t)batch * L);
  int rc = 0;
  double sum = 0;
  int64_t cnt = 0;
  if (!ids || !tg || !mask) rc = foil_err_set(err, FOIL_ENOMEM, "perplexity: out of memory");
  for (size_t r0 = 0; !rc && r0 < n; r0 += (size_t)batch) {
    int B = (int)(n - r0 < (size_t)batch ? n - r0 : (size_t)batch), T = 1;
    for (int b = 0; b < B * L; b++) ids[b] = eot, tg[b] = -1, mask[b] = 0;
    for (int b = 0; b < B && !rc; b++) {
      int32_t *p = NULL, *g = NULL;
      int np = 0, ng = 0;
      rc = tokens(tok, prompts[r0 + b], &p, &np, err);
      if (!rc) rc = tokens(tok, gens[r0 + b], &g, &ng, err);
      if (!rc) {
        /* [EOT] prompt generation; when it does not fit, the prompt keeps
         * its last L/2 tokens at most and the generation its first ones */
        int kp = np, kg = ng;
        if (1 + kp + kg > L) {
          if (kp > L / 2) kp = L / 2;
          if (1 + kp + kg > L) kg = L - 1 - kp;
        }
        int32_t *row = ids + (size_t)b * L, *trow = tg + (size_t)b * L;
        uint8_t *mrow = mask + (size_t)b * L;
        int len = 0;
        row[len++] = eot;
        for (int i = np - kp; i < np; i++) row[len++] = p[i];
        int first = len;
        for (int i = 0; i < kg; i++) row[len++] = g[i];
        for (int t = 0; t < len; t++) mrow[t] = 1;
        for (int t = first - 1; t + 1 < len; t++) trow[t] = row[t + 1];
        if (len > T) T = len;
      }
      free(p);
      free(g);
    }
    if (rc) break;
    /* rows were laid out with stride L; decoder_forward wants stride T */
    for (int b = 1; b < B; b++) {
      memmove(ids + (size_t)b * T, ids + (size_t)b * L, (size_t)T * sizeof *ids);
      memmove(tg + (size_t)b * T, tg + (size_t)b * L, (size_t)T * sizeof *tg);
      memmove(mask + (size_t)b * T, mask + (size_t)b * L, (size_t)T);
    }
    float loss;
    const float *nll = NULL;
    rc = decoder_forward(dec, ids, tg, mask, B, T, 0, 0, 0, &loss, NULL, NULL, &nll, err);
    for (int i = 0; !rc && i < B * T; i++)
      if (tg[i] >= 0) sum += nll[i], cnt++;
  }
  free(ids);
  free(tg);
  free(mask);
  if (!rc) *nll_sum = sum, *ntok = cnt;
  return rc;
}

int textscore_features(decoder *dec, const tokenizer *tok, char *const *texts, size_t n,
                       int max_len, int batch, float *out, foil_err *err) {
  const int L = max_len > 0 && max_len < decoder_cfg(dec)->max_len ? max_len : decoder_cfg(dec)->max_len;
  const int C = decoder_cfg(dec)->d_model;
  if (batch < 1) batch = 16;
  const int32_t eot = tokenizer_pad_id(tok);
  int32_t *ids = malloc((size_t)batch * L * sizeof *ids);
  uint8_t *mask = malloc((size_t)batch * L);
  int *lens = malloc((size_t)batch * sizeof *lens);
  int rc = 0;
  if (!ids || !mask || !lens) rc = foil_err_set(err, FOIL_ENOMEM, "MAUVE features: out of memory");
  for (size_t r0 = 0; !rc && r0 < n; r0 += (size_t)batch) {
    int B = (int)(n - r0 < (size_t)batch ? n - r0 : (size_t)batch), T = 1;
    for (int b = 0; b < B && !rc; b++) {
      int32_t *t = NULL;
      int nt = 0;
      rc = tokens(tok, texts[r0 + b], &t, &nt, err);
      if (rc) break;
      /* the first L tokens (mauve-text: truncation keeps the head); an empty
       * text is the end-of-text token alone */
      int k = nt < L ? nt : L;
      lens[b] = k ? k : 1;
      if (k) memcpy(ids + (size_t)b * L, t, (size_t)k * sizeof *ids);
      else ids[(size_t)b * L] = eot;
      if (lens[b] > T) T = lens[b];
      free(t);
    }
    if (rc) break;
    int32_t *packed = malloc((size_t)B * T * sizeof *packed);
    if (!packed) {
      rc = foil_err_set(err, FOIL_ENOMEM, "MAUVE features: out of memory");
      break;
    }
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) {
        int in = t < lens[b];
        packed[(size_t)b * T + t] = in ? ids[(size_t)b * L + t] : eot;
        mask[(size_t)b * T + t] = (uint8_t)in;
      }
    float loss;
    const float *hidden = NULL;
    rc = decoder_forward(dec, packed, NULL, mask, B, T, 0, 0, 0, &loss, &hidden, NULL, NULL, err);
    for (int b = 0; !rc && b < B; b++)
      memcpy(out + (r0 + (size_t)b) * C, hidden + ((size_t)b * T + lens[b] - 1) * C,
             (size_t)C * sizeof *out);
    free(packed);
  }
  free(ids);
  free(mask);
  free(lens);
  return rc;
}
