/* generate.c — the generation loops of generate.h. */
#include "model/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/decode.h"

void generate_opts_default(generate_opts *o) {
  memset(o, 0, sizeof *o);
  o->max_new_tokens = 256;
  o->eos_id = -1;
  o->temperature = 1.0f;
  o->top_p = 1.0f;
  o->repetition_penalty = 1.0f;
}

void generate_beam_default(generate_beam_cfg *c) {
  c->num_beams = 4;
  c->length_penalty = 1.0f;
  c->early_stopping = 0;
}

void generate_cs_default(generate_cs_cfg *c) {
  c->top_k = 5;
  c->alpha = 0.6f;
}

void generate_cd_default(generate_cd_cfg *c) {
  c->alpha = 0.1f;
  c->beta = 1.0f;
  c->tau_ama = 0.5f;
  c->num_beams = 5;
  c->length_penalty = 1.0f;
  c->early_stopping = 0;
  c->ignore_prefix = 1;
}

void generate_cad_weights(float alpha, float w[2]) {
  w[0] = 1.0f + alpha;
  w[1] = -alpha;
}

void generate_dola_default(generate_dola_cfg *c) {
  c->layers_kind = DOLA_HIGH;
  c->layers = NULL;
  c->n_layers = 0;
  c->relative_top = 0.1f;
}

/* ---- shared pieces -------------------------------------------------------------*/

/* The state of P prompts being generated: history (prompt + generated) per
 * row, output cursor, active flags. */
typedef struct {
  int P, V, maxlen, max_new;
  int32_t *hist; /* [P, maxlen] */
  int *hlen;     /* [P] */
  int *h0;       /* [P] the penalty's history starts at hist[p, h0[p]] (penalty_skip) */
  uint8_t *active;
  uint8_t *seen; /* [V] repetition-penalty scratch */
  double *ework; /* [V] sampling scratch (decode_sample_work) */
} gen_state;

static void state_free(gen_state *s) {
  free(s->hist);
  free(s->hlen);
  free(s->h0);
  free(s->active);
  free(s->seen);
  free(s->ework);
}

/* Checks the common arguments; maxlen = longest prompt + max_new_tokens. */
static int check_args(const decoder *d, const int32_t *ids, const int *lens, int P, int T,
                      const generate_opts *o, int rows_per_prompt, int *maxlen, foil_err *err) {
  const decoder_config *cfg = decoder_cfg(d);
  if (P < 1 || T < 1) return foil_err_set(err, FOIL_EINVAL, "generate: need >= 1 prompt of >= 1 token");
  if (o->max_new_tokens < 1)
    return foil_err_set(err, FOIL_EINVAL, "generate: max_new_tokens must be >= 1, got %d",
                        o->max_new_tokens);
  if (o->eos_id >= cfg->vocab)
    return foil_err_set(err, FOIL_EINVAL, "generate: eos_id %d outside the vocabulary (%d)",
                        (int)o->eos_id, cfg->vocab);
  if (o->do_sample && !(o->temperature > 0))
    return foil_err_set(err, FOIL_EINVAL, "generate: temperature must be > 0");
  if (!(o->top_p > 0) || !(o->repetition_penalty > 0))
    return foil_err_set(err, FOIL_EINVAL, "generate: top_p and repetition_penalty must be > 0");
  for (int p = 0; o->penalty_skip && p < P; p++)
    if (o->penalty_skip[p] < 0)
      return foil_err_set(err, FOIL_EINVAL, "generate: penalty_skip of prompt %d is %d (need >= 0)", p,
                          o->penalty_skip[p]);
  int longest = 0;
  for (int r = 0; r < P * rows_per_prompt; r++) {
    if (lens[r] < 1 || lens[r] > T)
      return foil_err_set(err, FOIL_EINVAL, "generate: prompt %d has length %d (need 1..%d)",
                          r / rows_per_prompt, lens[r], T);
    for (int t = 0; t < lens[r]; t++)
      if (ids[(size_t)r * T + t] < 0 || ids[(size_t)r * T + t] >= cfg->vocab)
        return foil_err_set(err, FOIL_EINVAL, "generate: prompt %d: token %d at %d outside the vocabulary",
                            r / rows_per_prompt, (int)ids[(size_t)r * T + t], t);
    if (lens[r] > longest) longest = lens[r];
  }
  if (longest + o->max_new_tokens > cfg->max_len)
    return foil_err_set(err, FOIL_EINVAL,
                        "generate: prompt (%d) + max_new_tokens (%d) exceeds the model's max_len %d",
                        longest, o->max_new_tokens, cfg->max_len);
  *maxlen = longest + o->max_new_tokens;
  return FOIL_OK;
}

/* P prompts; prompt p's history starts from row p·stride of ids, its
 * penalty history after min(skip[p], length) ids (skip NULL: 0). */
static int state_init(gen_state *s, int P, int V, int maxlen, int max_new, const int32_t *ids,
                      const int *lens, int T, int stride, const int *skip, foil_err *err) {
  memset(s, 0, sizeof *s);
  s->P = P;
  s->V = V;
  s->maxlen = maxlen;
  s->max_new = max_new;
  s->hist = malloc((size_t)P * maxlen * sizeof *s->hist);
  s->hlen = malloc((size_t)P * sizeof *s->hlen);
  s->h0 = malloc((size_t)P * sizeof *s->h0);
  s->active = malloc((size_t)P);
  s->seen = calloc((size_t)V, 1);
  s->ework = malloc((size_t)V * sizeof *s->ework);
  if (!s->hist || !s->hlen || !s->h0 || !s->active || !s->seen || !s->ework) {
    state_free(s);
    return foil_err_set(err, FOIL_ENOMEM, "generate: out of memory");
  }
  for (int p = 0; p < P; p++) {
    int r = p * stride;
    memcpy(s->hist + (size_t)p * maxlen, ids + (size_t)r * T, (size_t)lens[r] * sizeof *ids);
    s->hlen[p] = lens[r];
    s->h0[p] = skip ? (skip[p] < lens[r] ? skip[p] : lens[r]) : 0;
    s->active[p] = 1;
  }
  return FOIL_OK;
}

/* The repetition penalty on prompt p's scores x [V] over its history past
 * the skipped prefix (hist[p, h0[p] .. hlen[p])). O(history). */
static void penalize(const generate_opts *o, gen_state *s, int p, float *x) {
  if (o->repetition_penalty != 1.0f)
    decode_repetition_penalty(x, s->V, s->hist + (size_t)p * s->maxlen + s->h0[p], s->hlen[p] - s->h0[p],
                              o->repetition_penalty, s->seen);
}

/* Repetition penalty over the history, then (sampling) temperature, top-k,
 * top-p and a draw, else the argmax. x is modified. */
static int pick(const generate_opts *o, gen_state *s, int p, float *x, int step, foil_err *err) {
  int V = s->V;
  penalize(o, s, p, x);
  if (!o->do_sample) {
    int t = decode_argmax(x, V);
    return t >= 0 ? t : foil_err_set(err, FOIL_EINTERNAL, "generate: every score of prompt %d is NaN", p);
  }
  if (o->temperature != 1.0f) decode_temperature(x, 1, V, o->temperature);
  if (o->top_k > 0) {
    int rc = decode_top_k(x, 1, V, o->top_k, 1, err);
    if (rc) return rc;
  }
  if (o->top_p < 1.0f) {
    int rc = decode_top_p(x, 1, V, o->top_p, 1, err);
    if (rc) return rc;
  }
  return decode_sample_work(x, V, rng_uniform(o->seed, o->first_row + (uint64_t)p, (uint64_t)step),
                            s->ework);
}

/* Records token tok for prompt p at step; deactivates it on EOS or at the
 * last step. */
static void emit(const generate_opts *o, gen_state *s, int p, int32_t tok, int step, int32_t *out,
                 int *out_len) {
  out[(size_t)p * s->max_new + step] = tok;
  out_len[p] = step + 1;
  s->hist[(size_t)p * s->maxlen + s->hlen[p]++] = tok;
  if ((o->eos_id >= 0 && tok == o->eos_id) || step + 1 == s->max_new) s->active[p] = 0;
}

static int any_active(const gen_state *s) {
  for (int p = 0; p < s->P; p++)
    if (s->active[p]) return 1;
  return 0;
}

/* ---- greedy / sampling -------------------------------------------------------*/

int generate_plain(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                   const generate_opts *o, int32_t *out, int *out_len, foil_err *err) {
  int maxlen, rc = check_args(d, ids, lens, P, T, o, 1, &maxlen, err);
  if (rc) return rc;
  int V = decoder_cfg(d)->vocab;
  gen_state s;
  if ((rc = state_init(&s, P, V, maxlen, o->max_new_tokens, ids, lens, T, 1, o->penalty_skip, err)))
    return rc;
  decoder_cache *c = NULL;
  float *logits = malloc((size_t)P * V * sizeof *logits);
  int32_t *next = calloc((size_t)P, sizeof *next);
  if (!logits || !next) {
    rc = foil_err_set(err, FOIL_ENOMEM, "generate: out of memory for %d x %d logits", P, V);
    goto done;
  }
  if ((rc = decoder_cache_new(&c, d, P, maxlen, 1, err))) goto done;
  if ((rc = decoder_prefill(d, c, ids, lens, T, logits, NULL, NULL, err))) goto done;
  for (int step = 0; step < o->max_new_tokens; step++) {
    for (int p = 0; p < P; p++) {
      if (!s.active[p]) continue;
      int tok = pick(o, &s, p, logits + (size_t)p * V, step, err);
      if (tok < 0) {
        rc = tok;
        goto done;
      }
      next[p] = tok;
      emit(o, &s, p, tok, step, out, out_len);
    }
    if (!any_active(&s)) break;
    if ((rc = decoder_step(d, c, next, 1, s.active, logits, NULL, NULL, err))) goto done;
    decoder_cache_commit(c, NULL, s.active);
  }
done:
  decoder_cache_destroy(&c);
  free(logits);
  free(next);
  state_free(&s);
  return rc;
}

/* ---- contrastive search ------------------------------------------------------*/

int generate_cs(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                const generate_cs_cfg *cfg, const generate_opts *o, int32_t *out, int *out_len,
                foil_err *err) {
  int maxlen, rc = check_args(d, ids, lens, P, T, o, 1, &maxlen, err);
  if (rc) return rc;
  const decoder_config *dc = decoder_cfg(d);
  int V = dc->vocab, C = dc->d_model, K = cfg->top_k;
  if (K < 1 || K > V) return foil_err_set(err, FOIL_EINVAL, "contrastive search: top_k must be in 1..%d", V);
  if (!(cfg->alpha >= 0 && cfg->alpha <= 1))
    return foil_err_set(err, FOIL_EINVAL, "contrastive search: alpha must be in [0, 1]");
  gen_state s;
  if ((rc = state_init(&s, P, V, maxlen, o->max_new_tokens, ids, lens, T, 1, o->penalty_skip, err)))
    return rc;
  decoder_cache *c = NULL;
  float *logits = malloc((size_t)P * V * sizeof *logits);
  float *clog = malloc((size_t)P * V * sizeof *clog); /* the winners' next logits */
  float *chid = malloc((size_t)P * K * C * sizeof *chid);
  float *wh = malloc((size_t)P * C * sizeof *wh); /* the winners' states, active prompts */
  float *ctx = malloc((size_t)P * maxlen * C * sizeof *ctx);
  float *prompt_h = malloc((size_t)P * T * C * sizeof *prompt_h);
  int32_t *cand = calloc((size_t)P * K, sizeof *cand);
  int *choice = calloc((size_t)P, sizeof *choice);
  int *nctx = calloc((size_t)P, sizeof *nctx);
  float pk[64], *pkv = K <= 64 ? pk : malloc((size_t)K * sizeof *pkv);
  if (!logits || !clog || !chid || !wh || !ctx || !prompt_h || !cand || !choice || !nctx || !pkv) {
    rc = foil_err_set(err, FOIL_ENOMEM, "contrastive search: out of memory");
    goto done;
  }
  if ((rc = decoder_cache_new(&c, d, P, maxlen, K, err))) goto done;
  if ((rc = decoder_prefill(d, c, ids, lens, T, logits, prompt_h, NULL, err))) goto done;
  for (int p = 0; p < P; p++) {
    memcpy(ctx + (size_t)p * maxlen * C, prompt_h + (size_t)p * T * C,
           (size_t)lens[p] * C * sizeof *ctx);
    nctx[p] = lens[p];
  }
  free(prompt_h);
  prompt_h = NULL;
  for (int step = 0; step < o->max_new_tokens; step++) {
    /* 1. the k candidates of every active prompt */
    for (int p = 0; p < P; p++) {
      if (!s.active[p]) continue;
      float *x = logits + (size_t)p * V;
      penalize(o, &s, p, x);
      decode_topk_ids(x, V, K, cand + (size_t)p * K, NULL);
    }
    /* 2. one forward of k candidate rows per prompt on the shared cache:
     * states only; the selection needs no candidate logits */
    if ((rc = decoder_step(d, c, cand, K, s.active, NULL, chid, NULL, err))) goto done;
    /* 3. selection, commit of the winner, its state carried on */
    int na = 0;
    for (int p = 0; p < P; p++) {
      if (!s.active[p]) continue;
      decode_probs_at(pkv, logits + (size_t)p * V, V, cand + (size_t)p * K, K);
      int w = decode_cs_select(pkv, chid + (size_t)p * K * C, ctx + (size_t)p * maxlen * C, NULL,
                               K, nctx[p], C, cfg->alpha, NULL);
      choice[p] = w;
      memcpy(ctx + ((size_t)p * maxlen + nctx[p]++) * C, chid + ((size_t)p * K + w) * C,
             (size_t)C * sizeof *ctx);
      memcpy(wh + (size_t)na++ * C, chid + ((size_t)p * K + w) * C, (size_t)C * sizeof *wh);
    }
    /* 4. the LM head for the winners alone (k times fewer rows than the
     * candidates' logits, which HF computes and drops) */
    if ((rc = decoder_lm_head(d, clog, wh, na, err))) goto done;
    for (int p = 0, g = 0; p < P; p++)
      if (s.active[p])
        memcpy(logits + (size_t)p * V, clog + (size_t)g++ * V, (size_t)V * sizeof *logits);
    decoder_cache_commit(c, choice, s.active);
    for (int p = 0; p < P; p++)
      if (s.active[p]) emit(o, &s, p, cand[(size_t)p * K + choice[p]], step, out, out_len);
    if (!any_active(&s)) break;
  }
done:
  decoder_cache_destroy(&c);
  free(logits);
  free(clog);
  free(chid);
  free(ctx);
  free(prompt_h);
  free(wh);
  free(cand);
  free(choice);
  free(nctx);
  if (pkv != pk) free(pkv);
  state_free(&s);
  return rc;
}

/* ---- N prompt variants: weighted combination (CAD, AdaCAD, ...) --------------*/

int generate_combine(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                     const generate_combine_cfg *cfg, const generate_opts *o, int32_t *out,
                     int *out_len, float *alphas, foil_err *err) {
  int N = cfg->n_variants;
  if (N < 1 || (cfg->adaptive && N != 2) || (!cfg->adaptive && !cfg->weights))
    return foil_err_set(err, FOIL_EINVAL,
                        "combine: need n_variants >= 1 and weights, or adaptive with 2 variants");
  int maxlen, rc = check_args(d, ids, lens, P, T, o, N, &maxlen, err);
  if (rc) return rc;
  int V = decoder_cfg(d)->vocab, R = P * N;
  /* histories: the first variant's prompt (repetition penalty) */
  gen_state s;
  if ((rc = state_init(&s, P, V, maxlen, o->max_new_tokens, ids, lens, T, N, o->penalty_skip, err)))
    return rc;
  decoder_cache *c = NULL;
  float *logits = malloc((size_t)R * V * sizeof *logits);
  float *z = malloc((size_t)P * V * sizeof *z), *av = malloc((size_t)P * sizeof *av);
  /* JSD scratch, one per prompt (the prompts run in parallel) */
  double *jw = cfg->adaptive ? malloc((size_t)P * 2 * V * sizeof *jw) : NULL;
  int32_t *next = calloc((size_t)R, sizeof *next);
  uint8_t *ract = malloc((size_t)R);
  if (!logits || !z || !av || !next || !ract || (cfg->adaptive && !jw)) {
    rc = foil_err_set(err, FOIL_ENOMEM, "combine: out of memory");
    goto done;
  }
  if ((rc = decoder_cache_new(&c, d, R, maxlen, 1, err))) goto done;
  if ((rc = decoder_prefill(d, c, ids, lens, T, logits, NULL, NULL, err))) goto done;
  for (int step = 0; step < o->max_new_tokens; step++) {
    /* the prompts' combined logits in parallel (each a pure function of its
     * rows: the bits do not depend on the threads), then the picks in order */
#pragma omp parallel for num_threads(kernels_get_threads()) schedule(static)
    for (int p = 0; p < P; p++) {
      if (!s.active[p]) continue;
      const float *zp = logits + (size_t)p * N * V;
      float *zo = z + (size_t)p * V;
      if (cfg->adaptive) {
        /* decode_cad's adaptive α (JSD, floor), its JSD with kept exps */
        float a = (float)decode_jsd_work(zp, zp + V, V, jw + (size_t)p * 2 * V);
        if (cfg->alpha_floor > 0 && a < cfg->alpha_floor) a = cfg->alpha_floor;
        decode_cad(zo, zp, zp + V, V, a, 0, 0);
        av[p] = a;
      } else {
        decode_combine(zo, zp, cfg->weights, N, V);
      }
    }
    for (int p = 0; p < P; p++) {
      if (!s.active[p]) continue;
      if (cfg->adaptive && alphas) alphas[(size_t)p * o->max_new_tokens + step] = av[p];
      int tok = pick(o, &s, p, z + (size_t)p * V, step, err);
      if (tok < 0) {
        rc = tok;
        goto done;
      }
      for (int i = 0; i < N; i++) next[p * N + i] = tok;
      emit(o, &s, p, tok, step, out, out_len);
    }
    if (!any_active(&s)) break;
    for (int r = 0; r < R; r++) ract[r] = s.active[r / N];
    if ((rc = decoder_step(d, c, next, 1, ract, logits, NULL, NULL, err))) goto done;
    decoder_cache_commit(c, NULL, ract);
  }
done:
  decoder_cache_destroy(&c);
  free(logits);
  free(z);
  free(av);
  free(jw);
  free(next);
  free(ract);
  state_free(&s);
  return rc;
}

/* ---- DoLa ------------------------------------------------------------------------*/

int generate_dola(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                  const generate_dola_cfg *cfg, const generate_opts *o, int32_t *out,
                  int *out_len, foil_err *err) {
  int maxlen, rc = check_args(d, ids, lens, P, T, o, 1, &maxlen, err);
  if (rc) return rc;
  const decoder_config *dc = decoder_cfg(d);
  int V = dc->vocab, L = dc->n_layers;
  if (!(cfg->relative_top > 0 && cfg->relative_top <= 1))
    return foil_err_set(err, FOIL_EINVAL, "dola: relative_top must be in (0, 1]");
  int lay[64];
  int nc = decode_dola_layers(L, cfg->layers_kind, cfg->layers, cfg->n_layers, lay, 64, err);
  if (nc < 0) return nc;
  gen_state s;
  if ((rc = state_init(&s, P, V, maxlen, o->max_new_tokens, ids, lens, T, 1, o->penalty_skip, err)))
    return rc;
  decoder_cache *c = NULL;
  /* only the candidate premature layers and the final one are headed:
   * which[0..nc) = lay, which[nc] = L; layers [nc+1, P, V] */
  int which[65];
  memcpy(which, lay, (size_t)nc * sizeof *which);
  which[nc] = L;
  float *layers = malloc((size_t)(nc + 1) * P * V * sizeof *layers);
  float *x = malloc((size_t)P * V * sizeof *x);
  int32_t *next = calloc((size_t)P, sizeof *next);
  if (!layers || !x || !next) {
    rc = foil_err_set(err, FOIL_ENOMEM, "dola: out of memory");
    goto done;
  }
  if ((rc = decoder_cache_new(&c, d, P, maxlen, 1, err))) goto done;
  if ((rc = decoder_prefill(d, c, ids, lens, T, NULL, NULL, NULL, err))) goto done;
  if ((rc = decoder_layer_logits(d, c, which, nc + 1, layers, err))) goto done;
  for (int step = 0; step < o->max_new_tokens; step++) {
    /* the rows' contrasts in parallel (each a pure function of its row's
     * logits: the bits do not depend on the threads), then the picks in
     * order; layer i of row p at layers + (i·P + p)·V */
#pragma omp parallel for num_threads(kernels_get_threads()) schedule(static)
    for (int p = 0; p < P; p++) {
      if (!s.active[p]) continue;
      const float *fin = layers + ((size_t)nc * P + p) * V, *cand = layers + (size_t)p * V;
      const size_t stride = (size_t)P * V;
      int sel = nc == 1 ? 0 : decode_dola_select(cand, stride, fin, nc, V, NULL);
      decode_dola_contrast(x + (size_t)p * V, fin, cand + (size_t)sel * stride, V, cfg->relative_top, 1);
    }
    for (int p = 0; p < P; p++) {
      if (!s.active[p]) continue;
      int tok = pick(o, &s, p, x + (size_t)p * V, step, err);
      if (tok < 0) {
        rc = tok;
        goto done;
      }
      next[p] = tok;
      emit(o, &s, p, tok, step, out, out_len);
    }
    if (!any_active(&s)) break;
    if ((rc = decoder_step(d, c, next, 1, s.active, NULL, NULL, NULL, err))) goto done;
    if ((rc = decoder_layer_logits(d, c, which, nc + 1, layers, err))) goto done;
    decoder_cache_commit(c, NULL, s.active);
  }
done:
  decoder_cache_destroy(&c);
  free(layers);
  free(x);
  free(next);
  state_free(&s);
  return rc;
}

/* ---- beam search and contrastive decoding -------------------------------------*/

/* Prompts repeated nb times: ids [P·nb, T], lens [P·nb]. ignore_prefix keeps
 * only each prompt's last token (at position 0): ids [P·nb, 1], so the
 * amateur's cache (1 + max_new_tokens positions) takes it whatever T is. */
static int expand_prompts(const int32_t *ids, const int *lens, int P, int T, int nb,
                          int ignore_prefix, int32_t **eids, int **elens, foil_err *err) {
  const int W = ignore_prefix ? 1 : T;
  *eids = malloc((size_t)P * nb * W * sizeof **eids);
  *elens = malloc((size_t)P * nb * sizeof **elens);
  if (!*eids || !*elens) return foil_err_set(err, FOIL_ENOMEM, "beam: out of memory");
  for (int p = 0; p < P; p++)
    for (int b = 0; b < nb; b++) {
      int32_t *dst = *eids + ((size_t)p * nb + b) * W;
      if (ignore_prefix) {
        dst[0] = ids[(size_t)p * T + lens[p] - 1];
        (*elens)[p * nb + b] = 1;
      } else {
        memcpy(dst, ids + (size_t)p * T, (size_t)lens[p] * sizeof *dst);
        (*elens)[p * nb + b] = lens[p];
      }
    }
  return FOIL_OK;
}

/* The shared loop: one expert (beam search) or expert + amateur (CD). */
static int beam_loop(decoder *d, decoder *ama, const int32_t *ids, const int *lens, int P, int T,
                     int nb, float lp, int early, const generate_cd_cfg *cd,
                     const generate_opts *o, int32_t *out, int *out_len, foil_err *err) {
  int maxlen, rc = check_args(d, ids, lens, P, T, o, 1, &maxlen, err);
  if (rc) return rc;
  int V = decoder_cfg(d)->vocab, R = P * nb;
  if (nb < 1) return foil_err_set(err, FOIL_EINVAL, "beam: num_beams must be >= 1");
  if (ama) {
    const decoder_config *ac = decoder_cfg(ama);
    if (ac->vocab != V)
      return foil_err_set(err, FOIL_EINVAL, "contrastive decoding: the amateur's vocabulary (%d) is not the expert's (%d)",
                          ac->vocab, V);
    if (maxlen > ac->max_len && !cd->ignore_prefix)
      return foil_err_set(err, FOIL_EINVAL, "contrastive decoding: the amateur's max_len %d is too short",
                          ac->max_len);
    if (!(cd->alpha > 0 && cd->alpha <= 1) || !(cd->tau_ama > 0))
      return foil_err_set(err, FOIL_EINVAL, "contrastive decoding: need 0 < alpha <= 1 and tau_ama > 0");
  }
  int amax = ama && cd->ignore_prefix ? 1 + o->max_new_tokens : maxlen;
  if (ama && amax > decoder_cfg(ama)->max_len)
    return foil_err_set(err, FOIL_EINVAL, "contrastive decoding: the amateur's max_len %d is too short",
                        decoder_cfg(ama)->max_len);
  decode_beam **bs = calloc((size_t)P, sizeof *bs);
  decoder_cache *c = NULL, *ca = NULL;
  int32_t *eids = NULL, *aids = NULL;
  int *elens = NULL, *alens = NULL;
  float *logits = malloc((size_t)R * V * sizeof *logits);
  float *alog = ama ? malloc((size_t)R * V * sizeof *alog) : NULL;
  float *logp = malloc((size_t)nb * V * sizeof *logp);
  float *work = malloc(2 * (size_t)V * sizeof *work);
  decode_cand *cand = malloc((size_t)2 * nb * sizeof *cand);
  int *src = malloc((size_t)R * sizeof *src), *bsrc = malloc((size_t)nb * sizeof *bsrc);
  int32_t *next = calloc((size_t)R, sizeof *next);
  uint8_t *ract = malloc((size_t)R), *pdone = calloc((size_t)P, 1), *seen = calloc((size_t)V, 1);
  int32_t *hist = malloc((size_t)maxlen * sizeof *hist);
  if (!seen || !hist || !bs || !logits || (ama && !alog) || !logp || !work || !cand || !src || !bsrc || !next ||
      !ract || !pdone) {
    rc = foil_err_set(err, FOIL_ENOMEM, "beam: out of memory");
    goto done;
  }
  for (int p = 0; p < P; p++)
    if ((rc = decode_beam_new(&bs[p], nb, lens[p], o->max_new_tokens, lp, early, o->eos_id, err)))
      goto done;
  if ((rc = expand_prompts(ids, lens, P, T, nb, 0, &eids, &elens, err))) goto done;
  if ((rc = decoder_cache_new(&c, d, R, maxlen, 1, err))) goto done;
  if ((rc = decoder_prefill(d, c, eids, elens, T, logits, NULL, NULL, err))) goto done;
  if (ama) {
    if ((rc = expand_prompts(ids, lens, P, T, nb, cd->ignore_prefix, &aids, &alens, err))) goto done;
    if ((rc = decoder_cache_new(&ca, ama, R, amax, 1, err))) goto done;
    if ((rc = decoder_prefill(ama, ca, aids, alens, cd->ignore_prefix ? 1 : T, alog, NULL, NULL, err)))
      goto done;
  }
  for (int step = 0; step < o->max_new_tokens; step++) {
    for (int p = 0; p < P; p++) {
      for (int b = 0; b < nb; b++) src[p * nb + b] = p * nb + b;
      if (pdone[p]) continue;
      const float *z = logits + (size_t)p * nb * V;
      if (ama) {
        decode_cd_candidates(bs[p], z, alog + (size_t)p * nb * V, V, cd->alpha, cd->beta,
                             cd->tau_ama, nb > 1 ? 2 : 1, step == 0, work, cand);
      } else {
        for (int b = 0; b < nb; b++) {
          float *lb = logp + (size_t)b * V;
          decode_log_softmax(lb, z + (size_t)b * V, V);
          if (o->repetition_penalty != 1.0f) { /* HF: on the log-probs, over prompt + beam */
            int ng, k = o->penalty_skip ? o->penalty_skip[p] : 0; /* the prompt from k on */
            if (k > lens[p]) k = lens[p];
            const int32_t *g = decode_beam_tokens(bs[p], b, &ng);
            memcpy(hist, ids + (size_t)p * T + k, (size_t)(lens[p] - k) * sizeof *hist);
            memcpy(hist + lens[p] - k, g, (size_t)ng * sizeof *hist);
            decode_repetition_penalty(lb, V, hist, lens[p] - k + ng, o->repetition_penalty, seen);
          }
        }
        decode_beam_topk(bs[p], logp, V, cand);
      }
      pdone[p] = (uint8_t)decode_beam_process(bs[p], cand, 2 * nb, bsrc, next + (size_t)p * nb);
      for (int b = 0; b < nb; b++) src[p * nb + b] = p * nb + bsrc[b];
    }
    if (step + 1 == o->max_new_tokens) break;
    int any = 0;
    for (int r = 0; r < R; r++) any |= (ract[r] = (uint8_t)!pdone[r / nb]);
    if (!any) break;
    if ((rc = decoder_cache_reorder(c, src, err))) goto done;
    if ((rc = decoder_step(d, c, next, 1, ract, logits, NULL, NULL, err))) goto done;
    decoder_cache_commit(c, NULL, ract);
    if (ama) {
      if ((rc = decoder_cache_reorder(ca, src, err))) goto done;
      if ((rc = decoder_step(ama, ca, next, 1, ract, alog, NULL, NULL, err))) goto done;
      decoder_cache_commit(ca, NULL, ract);
    }
  }
  for (int p = 0; p < P; p++)
    out_len[p] = decode_beam_finalize(bs[p], out + (size_t)p * o->max_new_tokens, o->max_new_tokens,
                                      NULL);
done:
  if (bs)
    for (int p = 0; p < P; p++) decode_beam_destroy(&bs[p]);
  free(bs);
  decoder_cache_destroy(&c);
  decoder_cache_destroy(&ca);
  free(eids);
  free(elens);
  free(aids);
  free(alens);
  free(logits);
  free(alog);
  free(logp);
  free(work);
  free(cand);
  free(src);
  free(bsrc);
  free(next);
  free(ract);
  free(pdone);
  free(seen);
  free(hist);
  return rc;
}

int generate_beam(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                  const generate_beam_cfg *c, const generate_opts *o, int32_t *out,
                  int *out_len, foil_err *err) {
  return beam_loop(d, NULL, ids, lens, P, T, c->num_beams, c->length_penalty, c->early_stopping,
                   NULL, o, out, out_len, err);
}

int generate_cd(decoder *expert, decoder *amateur, const int32_t *ids, const int *lens, int P,
                int T, const generate_cd_cfg *c, const generate_opts *o, int32_t *out,
                int *out_len, foil_err *err) {
  if (!amateur) return foil_err_set(err, FOIL_EINVAL, "contrastive decoding: no amateur model");
  return beam_loop(expert, amateur, ids, lens, P, T, c->num_beams, c->length_penalty,
                   c->early_stopping, c, o, out, out_len, err);
}
