/* cuda_shim.c — a host-memory stand-in for the CUDA backend, for tests
 * only: unit.gpu_shim runs gpu.encoder's test (the encoder, optimizer, loss
 * and queue on DEVMEM_CUDA) on machines without a GPU, so the logic of the
 * CUDA paths — which buffer goes to which twin, sizes, copies between host
 * and "device" — is exercised every run, not first on a device.
 *
 * "Device" memory is malloc'ed and registered; every launcher checks that
 * each of its tensor arguments lies inside a registered block (and each
 * host argument outside), then runs the CPU twin. A pointer of the wrong
 * kind (a host buffer handed to a launcher, a device one read by the host
 * through cuda_download's source being host memory, ...) aborts with the
 * launcher's name. Scalars come back as the twins return them. This proves
 * nothing about the CUDA kernels themselves (gpu.* does that on a GPU). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"

typedef struct {
  char *p;
  size_t n;
} block;
static block *g_blocks;
static size_t g_nblocks, g_cap;
static int g_up;
static const char *g_bad; /* a launcher's bad argument, reported by the next check (as bad_arg) */

static int is_dev(const void *p) {
  const char *c = p;
  for (size_t i = 0; i < g_nblocks; i++)
    if (c >= g_blocks[i].p && c < g_blocks[i].p + g_blocks[i].n) return 1;
  return 0;
}
static void need(int ok, const char *fn, const char *what) {
  if (ok) return;
  fprintf(stderr, "cuda_shim: %s: %s\n", fn, what);
  abort();
}
/* a device tensor argument (NULL allowed where the twin allows it) */
#define DEV(p) need(!(p) || is_dev(p), __func__, #p " is not device memory")
/* a device range of bytes (> 0): its first and last byte */
#define DEVN(p, bytes) need(is_dev(p) && is_dev((const char *)(p) + (bytes)-1), __func__, #p " is not device memory of that size")
#define HOST(p) need(!(p) || !is_dev(p), __func__, #p " is device memory, the host's was expected")

int cuda_device_count(foil_err *err) {
  (void)err;
  return 1;
}
int cuda_init(int local_rank, foil_err *err) {
  (void)local_rank, (void)err;
  g_up = 1;
  return FOIL_OK;
}
void cuda_shutdown(void) { g_up = 0; }
int cuda_device(void) { return g_up ? 0 : -1; }
const char *cuda_backend(void) { return "cuda shim (host memory standing in for a device; tests only)"; }
void *cuda_stream(void) { return NULL; }
int cuda_check(foil_err *err) {
  if (!g_up) return foil_err_set(err, FOIL_EPRECOND, "the CUDA backend is not initialized (cuda_init)");
  const char *bad = g_bad;
  g_bad = NULL;
  return bad ? foil_err_set(err, FOIL_EINVAL, "%s", bad) : FOIL_OK;
}
int cuda_sync(foil_err *err) { return cuda_check(err); }

int cuda_malloc(void **p, size_t bytes, foil_err *err) {
  *p = NULL;
  if (g_nblocks == g_cap) {
    size_t cap = g_cap ? 2 * g_cap : 64;
    block *b = realloc(g_blocks, cap * sizeof *b);
    if (!b) return foil_err_set(err, FOIL_ENOMEM, "shim: out of memory");
    g_blocks = b, g_cap = cap;
  }
  char *m = malloc(bytes ? bytes : 1);
  if (!m) return foil_err_set(err, FOIL_ENOMEM, "shim: out of memory for %zu bytes", bytes);
  memset(m, 0xA5, bytes ? bytes : 1); /* not zero: cudaMalloc does not clear */
  g_blocks[g_nblocks++] = (block){m, bytes ? bytes : 1};
  *p = m;
  return FOIL_OK;
}
void cuda_free(void *p) {
  if (!p) return;
  for (size_t i = 0; i < g_nblocks; i++)
    if (g_blocks[i].p == p) {
      free(p);
      g_blocks[i] = g_blocks[--g_nblocks];
      return;
    }
  need(0, __func__, "not the start of a device block");
}
int cuda_upload(void *dst, const void *src, size_t bytes, foil_err *err) {
  (void)err;
  if (!bytes) return FOIL_OK;
  DEV(dst);
  HOST(src);
  memcpy(dst, src, bytes);
  return FOIL_OK;
}
int cuda_download(void *dst, const void *src, size_t bytes, foil_err *err) {
  (void)err;
  if (!bytes) return FOIL_OK;
  HOST(dst);
  DEV(src);
  memcpy(dst, src, bytes);
  return FOIL_OK;
}
int cuda_memset0(void *dst, size_t bytes, foil_err *err) {
  (void)err;
  if (!bytes) return FOIL_OK;
  DEV(dst);
  memset(dst, 0, bytes);
  return FOIL_OK;
}
int cuda_copy(void *dst, const void *src, size_t bytes, foil_err *err) {
  (void)err;
  if (!bytes) return FOIL_OK; /* a zero-length copy may point one past a block (as cudaMemcpy allows) */
  DEV(dst);
  DEV(src);
  memmove(dst, src, bytes);
  return FOIL_OK;
}

int cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                foil_err *err) {
  (void)err;
  if (!width || !height) return FOIL_OK;
  DEVN(dst, (height - 1) * dpitch + width);
  DEVN(src, (height - 1) * spitch + width);
  for (size_t i = 0; i < height; i++) memmove((char *)dst + i * dpitch, (const char *)src + i * spitch, width);
  return FOIL_OK;
}

void cuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
  DEV(dst), DEV(src);
  f32_to_bf16(dst, src, n);
}
void cuda_bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
  DEV(dst), DEV(src);
  bf16_to_f32(dst, src, n);
}
void cuda_embed_forward(float *out, const int32_t *ids, const float *wte, const float *wpe, int B, int T, int C) {
  DEV(out), DEV(ids), DEV(wte), DEV(wpe);
  embed_forward(out, ids, wte, wpe, B, T, C);
}
void cuda_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *ids, int B, int T, int C) {
  DEV(dwte), DEV(dwpe), DEV(dout), DEV(ids);
  embed_backward(dwte, dwpe, dout, ids, B, T, C);
}
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                            int N, int C, float eps) {
  DEV(out), DEV(mean), DEV(rstd), DEV(inp), DEV(w), DEV(b);
  layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
}
void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                             const float *mean, const float *rstd, int N, int C) {
  DEV(dinp), DEV(dw), DEV(db), DEV(dout), DEV(inp), DEV(w), DEV(mean), DEV(rstd);
  layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}
void cuda_matmul_forward(float *out, const float *inp, const float *W, const float *b, int N, int C, int OC) {
  DEV(out), DEV(inp), DEV(W), DEV(b);
  matmul_forward(out, inp, W, b, N, C, OC);
}
void cuda_matmul_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp, const float *W,
                          int N, int C, int OC) {
  DEV(dinp), DEV(dW), DEV(db), DEV(dout), DEV(inp), DEV(W);
  matmul_backward(dinp, dW, db, dout, inp, W, N, C, OC);
}
void cuda_gelu_forward(float *out, const float *inp, size_t n) {
  DEV(out), DEV(inp);
  gelu_forward(out, inp, n);
}
void cuda_gelu_backward(float *dinp, const float *inp, const float *out, const float *dout, size_t n) {
  DEV(dinp), DEV(inp), DEV(out), DEV(dout);
  gelu_backward(dinp, inp, out, dout, n);
}
void cuda_residual_forward(float *out, const float *a, const float *b, size_t n) {
  DEV(out), DEV(a), DEV(b);
  residual_forward(out, a, b, n);
}
void cuda_add_inplace(float *out, const float *a, size_t n) {
  DEV(out), DEV(a);
  add_inplace(out, a, n);
}
void cuda_scale_inplace(float *x, size_t n, float s) {
  DEV(x);
  scale_inplace(x, n, s);
}
void cuda_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t stream,
                          uint64_t offset) {
  DEV(out), DEV(inp);
  dropout_forward(out, inp, n, p, seed, stream, offset);
}
void cuda_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed, uint64_t stream,
                           uint64_t offset) {
  DEV(dinp), DEV(dout);
  dropout_backward(dinp, dout, n, p, seed, stream, offset);
}
void cuda_attention_forward(float *out, float *att, float *scratch, const float *qkv, const uint8_t *mask, int B,
                            int T, int C, int NH, int causal, float p_drop, uint64_t seed, uint64_t stream,
                            uint64_t offset) {
  DEV(out), DEV(att), DEV(scratch), DEV(qkv), DEV(mask);
  attention_forward(out, att, scratch, qkv, mask, B, T, C, NH, causal, p_drop, seed, stream, offset);
}
void cuda_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *att,
                             int B, int T, int C, int NH, float p_drop, uint64_t seed, uint64_t stream,
                             uint64_t offset) {
  DEV(dqkv), DEV(scratch), DEV(dout), DEV(qkv), DEV(att);
  attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH, p_drop, seed, stream, offset);
}
void cuda_pool_forward(float *out, const float *inp, const uint8_t *mask, int B, int T, int C, int mode) {
  DEV(out), DEV(inp), DEV(mask);
  pool_forward(out, inp, mask, B, T, C, mode);
}
void cuda_pool_backward(float *dinp, const float *dout, const uint8_t *mask, int B, int T, int C, int mode) {
  DEV(dinp), DEV(dout), DEV(mask);
  pool_backward(dinp, dout, mask, B, T, C, mode);
}
void cuda_l2norm_forward(float *out, float *norm, const float *inp, int N, int C) {
  DEV(out), DEV(norm), DEV(inp);
  l2norm_forward(out, norm, inp, N, C);
}
void cuda_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int N, int C) {
  DEV(dinp), DEV(dout), DEV(out), DEV(norm);
  l2norm_backward(dinp, dout, out, norm, N, C);
}
float cuda_infonce_forward(float *probs, int *correct, const float *q, int nq, const float *k, int nk,
                           const float *kx, int nx, int D, const int32_t *labels, float scale, int decoupled) {
  DEV(probs), HOST(correct), DEV(q), DEV(k), DEV(kx), DEV(labels);
  return infonce_forward(probs, correct, q, nq, k, nk, kx, nx, D, labels, scale, decoupled);
}
void cuda_infonce_backward(float *dq, float *dk, float *dscale, float *probs, const float *q, int nq, const float *k,
                           int nk, const float *kx, int nx, int D, const int32_t *labels, float scale, float weight) {
  DEV(dq), DEV(dk), HOST(dscale), DEV(probs), DEV(q), DEV(k), DEV(kx), DEV(labels);
  infonce_backward(dq, dk, dscale, probs, q, nq, k, nk, kx, nx, D, labels, scale, weight);
}
double cuda_sumsq(const float *g, size_t n) {
  DEV(g);
  return sumsq(g, n);
}
void cuda_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                       float eps, float wd, int t) {
  DEV(p), DEV(g), DEV(m), DEV(v);
  adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, t);
}
void cuda_ema_update(float *dst, const float *src, size_t n, float m) {
  DEV(dst), DEV(src);
  ema_update(dst, src, n, m);
}
void cuda_matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *W, const float *b, int N, int C,
                              int OC) {
  DEV(out), DEV(inp), DEV(W), DEV(b);
  matmul_forward_bf16(out, inp, W, b, N, C, OC);
}
void cuda_matmul_backward_bf16(float *dinp, float *dW, float *db, const uint16_t *dout, const float *dout_f32,
                               const uint16_t *inp, const uint16_t *W, int N, int C, int OC) {
  DEV(dinp), DEV(dW), DEV(db), DEV(dout), DEV(dout_f32), DEV(inp), DEV(W);
  matmul_backward_bf16(dinp, dW, db, dout, dout_f32, inp, W, N, C, OC);
}
void cuda_matmul_gelu_forward_bf16(float *out, float *pre, const uint16_t *inp, const uint16_t *W, const float *b,
                                   int N, int C, int OC) {
  DEV(out), DEV(pre), DEV(inp), DEV(W), DEV(b);
  matmul_gelu_forward_bf16(out, pre, inp, W, b, N, C, OC);
}

/* search: the scores of each tile on the host, then topk_offer per query */
void cuda_topk_init(float *top_score, int64_t *top_id, int nq, int K) {
  if (nq <= 0) return;
  DEV(top_score), DEV(top_id);
  topk_init(top_score, top_id, nq, K);
}
size_t cuda_scan_topk_scratch(int nq) { return (size_t)nq * CUDA_SCAN_ROWS; }
void cuda_scan_topk(float *top_score, int64_t *top_id, int nq, int K, const float *q, int d, const float *x, int n,
                    const int64_t *ids, int64_t id0, int64_t id_lo, int64_t id_hi, float *scratch) {
  if (nq <= 0 || n <= 0) return;
  if (nq > 65535 || K <= 0 || K > CUDA_TOPK_MAX) {
    g_bad = "cuda_scan_topk: needs nq <= 65535 and 1 <= K <= CUDA_TOPK_MAX";
    return;
  }
  DEVN(top_score, (size_t)nq * K * sizeof(float)), DEVN(top_id, (size_t)nq * K * sizeof(int64_t));
  DEVN(q, (size_t)nq * d * sizeof(float)), DEVN(x, (size_t)n * d * sizeof(float));
  DEVN(scratch, cuda_scan_topk_scratch(nq) * sizeof(float));
  if (ids) DEVN(ids, (size_t)n * sizeof(int64_t));
  int64_t *own = malloc(sizeof(int64_t) * (size_t)(n < CUDA_SCAN_ROWS ? n : CUDA_SCAN_ROWS));
  need(own != NULL, __func__, "out of host memory");
  for (int r0 = 0; r0 < n; r0 += CUDA_SCAN_ROWS) {
    int nc = n - r0 < CUDA_SCAN_ROWS ? n - r0 : CUDA_SCAN_ROWS;
    matmul_forward(scratch, q, x + (size_t)r0 * d, NULL, nq, d, nc);
    for (int j = 0; j < nc; j++) own[j] = ids ? ids[r0 + j] : id0 + r0 + j;
    for (int i = 0; i < nq; i++)
      topk_offer(top_score + (size_t)i * K, top_id + (size_t)i * K, K, scratch + (size_t)i * nc, nc, own, id_lo,
                 id_hi, -1);
  }
  free(own);
}

/* the decoder's cross-entropy and cached attention */
void cuda_attention_cache_forward(float *out, float *scratch, const float *qkv, const float *kcache,
                                  const float *vcache, const int *len, const int *rows_idx, int n, int R,
                                  int max_len, int C, int NH) {
  DEV(out), DEV(scratch), DEV(qkv), DEV(kcache), DEV(vcache), DEV(len), DEV(rows_idx);
  attention_cache_forward(out, scratch, qkv, kcache, vcache, len, rows_idx, n, R, max_len, C, NH);
}
void cuda_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, int N, int V,
                                float scale) {
  DEV(dlogits), DEV(probs), DEV(labels);
  crossentropy_backward(dlogits, probs, labels, N, V, scale);
}
void cuda_crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *labels, int N,
                               int V) {
  DEV(losses), DEV(probs), DEV(logits), DEV(labels);
  crossentropy_forward(losses, probs, logits, labels, N, V);
}
