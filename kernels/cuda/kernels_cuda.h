/* kernels_cuda.h — the CUDA backend of kernels.h, for GPU ranks.
 *
 * Naming: every launcher is the kernels.h function with a `cuda_` prefix and
 * the SAME arguments in the same order, with the same meaning (row-major,
 * backward accumulates, "writes" where kernels.h says so). The CPU function
 * of the same name without the prefix is its twin, and tests/gpu compares
 * each pair on the same inputs. A caller picks the backend per rank by
 * calling one name or the other; there is no run-time dispatch table.
 *
 * Memory: tensor arguments are DEVICE pointers (cuda_malloc). Scalars that
 * kernels.h returns or writes through a pointer (a loss, sumsq, `correct`,
 * `dscale`) stay on the HOST: those launchers synchronize the stream.
 *
 * Launch and errors: launchers run on the backend's stream (cuda_stream) in
 * issue order and return nothing, as in kernels.h; a launch or an
 * asynchronous fault is reported by the next cuda_check / cuda_sync as a
 * foil_err code (FOIL_EINTERNAL, FOIL_ENOMEM for allocations, FOIL_EUNAVAIL
 * when no device, FOIL_EINVAL when a launcher refused its sizes and
 * launched nothing). Nothing here exits or prints.
 *
 * Precision: fp32 everywhere unless a name says bf16. The fp32 GEMMs run
 * without TF32 (CUBLAS_DEFAULT_MATH), so they agree with the CPU to fp32
 * rounding; the bf16 GEMMs take bf16 operands (uint16_t bits, round to
 * nearest even) and accumulate in fp32.
 *
 * Determinism: no floating-point atomics. Each output is summed by one
 * thread or by one block in a fixed tree, so a kernel gives the same bits on
 * every run on the same GPU model and launch sizes. Dropout masks are the
 * CPU's bits exactly (the same Philox4x32-10 words, kernels/cpu/philox.h).
 *
 * One backend state per process (one process per GPU): cuda_init picks the
 * device, creates a stream, a cuBLAS handle and a small workspace; they are
 * released by cuda_shutdown. Not thread-safe: one host thread drives it.
 */
#ifndef FOIL_KERNELS_CUDA_H
#define FOIL_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "common/err.h" /* C linkage for foil_err_set in the .cu files */

/* ---- runtime ----------------------------------------------------------------- */

/* Number of CUDA devices this process can see (>= 0). 0 with err set to the
 * reason when there is none (no driver, CUDA_VISIBLE_DEVICES empty, ...). */
int cuda_device_count(foil_err *err);
/* Selects device local_rank % count (one process per GPU: the node-local
 * rank picks it), creates the stream, cuBLAS handle and workspace. Calling
 * it again after cuda_shutdown is allowed. */
int cuda_init(int local_rank, foil_err *err);
void cuda_shutdown(void);
/* The device in use (-1 before cuda_init) and its name/capability line. */
int cuda_device(void);
const char *cuda_backend(void);
/* The backend's stream, as a cudaStream_t (void * keeps this header C). */
void *cuda_stream(void);
/* Reports a failed launch since the last check (without waiting). */
int cuda_check(foil_err *err);
/* Waits for the stream; reports any launch or asynchronous error. */
int cuda_sync(foil_err *err);

int cuda_malloc(void **p, size_t bytes, foil_err *err);
void cuda_free(void *p); /* NULL is fine */
/* Copies on the stream, synchronously (host memory need not be pinned). */
int cuda_upload(void *dst_dev, const void *src_host, size_t bytes, foil_err *err);
int cuda_download(void *dst_host, const void *src_dev, size_t bytes, foil_err *err);
int cuda_memset0(void *dst_dev, size_t bytes, foil_err *err);
/* Device to device, on the stream (asynchronous). */
int cuda_copy(void *dst_dev, const void *src_dev, size_t bytes, foil_err *err);
/* height rows of width bytes, row i from src + i·spitch to dst + i·dpitch
 * (device to device, on the stream; cudaMemcpy2DAsync). */
int cuda_copy2d(void *dst_dev, size_t dpitch, const void *src_dev, size_t spitch, size_t width,
                size_t height, foil_err *err);

/* The device code's Philox word, dropout decision and bf16 rounding, run
 * on the host (no device needed): tests check them against kernels.h. */
uint32_t cuda_host_philox_word(uint64_t seed, uint64_t stream, uint64_t w);
int cuda_host_dropout_kept(uint64_t seed, uint64_t stream, uint64_t i, float p);
uint16_t cuda_host_bf16(float f);

/* ---- conversions (bf16 = upper 16 bits of fp32, rounded to nearest even) ---- */
void cuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
void cuda_bf16_to_f32(float *dst, const uint16_t *src, size_t n);

/* ---- the kernels.h twins (see kernels.h for each contract) -------------------- */
void cuda_embed_forward(float *out, const int32_t *ids, const float *wte, const float *wpe,
                        int B, int T, int C);
void cuda_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *ids,
                         int B, int T, int C);
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *w, const float *b, int N, int C, float eps);
void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w, const float *mean,
                             const float *rstd, int N, int C);
void cuda_matmul_forward(float *out, const float *inp, const float *W, const float *b, int N,
                         int C, int OC);
void cuda_matmul_backward(float *dinp, float *dW, float *db, const float *dout,
                          const float *inp, const float *W, int N, int C, int OC);
void cuda_gelu_forward(float *out, const float *inp, size_t n);
void cuda_gelu_backward(float *dinp, const float *inp, const float *out, const float *dout,
                        size_t n);
void cuda_residual_forward(float *out, const float *a, const float *b, size_t n);
void cuda_add_inplace(float *out, const float *a, size_t n);
void cuda_scale_inplace(float *x, size_t n, float s);
void cuda_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed,
                          uint64_t stream, uint64_t offset);
void cuda_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                           uint64_t stream, uint64_t offset);
/* scratch: unused by the forward (may be NULL); the backward needs B·NH·T·T
 * floats. One block per query row keeps (T + hs) floats in shared memory:
 * T up to about 50k on sm_90 (else FOIL_EINVAL). */
void cuda_attention_forward(float *out, float *att, float *scratch, const float *qkv,
                            const uint8_t *mask, int B, int T, int C, int NH, int causal,
                            float p_drop, uint64_t seed, uint64_t stream, uint64_t offset);
void cuda_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int C, int NH, float p_drop,
                             uint64_t seed, uint64_t stream, uint64_t offset);
/* len and rows_idx are device arrays too. */
void cuda_attention_cache_forward(float *out, float *scratch, const float *qkv,
                                  const float *kcache, const float *vcache, const int *len,
                                  const int *rows_idx, int n, int R, int max_len, int C, int NH);
void cuda_pool_forward(float *out, const float *inp, const uint8_t *mask, int B, int T, int C,
                       int mode);
void cuda_pool_backward(float *dinp, const float *dout, const uint8_t *mask, int B, int T,
                        int C, int mode);
void cuda_l2norm_forward(float *out, float *norm, const float *inp, int N, int C);
void cuda_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                          int N, int C);
void cuda_crossentropy_forward(float *losses, float *probs, const float *logits,
                               const int32_t *labels, int N, int V);
void cuda_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels,
                                int N, int V, float scale);
/* Returns the loss (host); correct is a host pointer (may be NULL). */
float cuda_infonce_forward(float *probs, int *correct, const float *q, int nq, const float *k,
                           int nk, const float *kx, int nx, int D, const int32_t *labels,
                           float scale, int decoupled);
/* dscale is a host pointer (may be NULL). */
void cuda_infonce_backward(float *dq, float *dk, float *dscale, float *probs, const float *q,
                           int nq, const float *k, int nk, const float *kx, int nx, int D,
                           const int32_t *labels, float scale, float weight);
/* Host result; blocks of 4096 in float, blocks added in double in order. */
double cuda_sumsq(const float *g, size_t n);
void cuda_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr,
                       float b1, float b2, float eps, float wd, int t);
void cuda_ema_update(float *dst, const float *src, size_t n, float m);
/* top_score/top_id, scores: device. Same order and ties as kernels.h. */
void cuda_topk_init(float *top_score, int64_t *top_id, int nq, int K);

/* ---- mixed precision and fused variants (GPU only; CPU twin named) ------------ */

/* out[N,OC] = inp @ W^T + b with bf16 inp [N,C] and W [OC,C], fp32
 * accumulate and output (b fp32, may be NULL). Twin: matmul_forward on the
 * bf16-rounded operands. 2·N·C·OC flops on the tensor cores. */
void cuda_matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *W,
                              const float *b, int N, int C, int OC);
/* dinp[N,C] += dout @ W and dW[OC,C] += dout^T @ inp from bf16 dout, W,
 * inp (fp32 accumulate, fp32 gradients); db += colsum(dout) (fp32 dout_f32,
 * may be NULL with db NULL). Twin: matmul_backward on rounded operands. */
void cuda_matmul_backward_bf16(float *dinp, float *dW, float *db, const uint16_t *dout,
                               const float *dout_f32, const uint16_t *inp, const uint16_t *W,
                               int N, int C, int OC);
/* The MLP's up-projection with GELU fused after the GEMM: pre = inp @ W^T
 * + b (kept for the backward) and out = GELU(pre) in one pass over the GEMM
 * output. Twin: matmul_forward then gelu_forward. */
void cuda_matmul_gelu_forward(float *out, float *pre, const float *inp, const float *W,
                              const float *b, int N, int C, int OC);
/* The same with bf16 inp and W (fp32 accumulate; pre, out, b fp32). */
void cuda_matmul_gelu_forward_bf16(float *out, float *pre, const uint16_t *inp, const uint16_t *W,
                                   const float *b, int N, int C, int OC);
/* AdamW on fp32 master weights p that also writes the bf16 working copy
 * p_bf16 (may be NULL). Twin: adamw_update then rounding. */
void cuda_adamw_update_bf16(float *p, uint16_t *p_bf16, const float *g, float *m, float *v,
                            size_t n, float lr, float b1, float b2, float eps, float wd, int t);
/* Exact top-k search of fp32 rows for foil-serve: scores q [nq,d] against
 * x [n,d] (row i's id: ids[i], device, when ids is not NULL, else id0 + i;
 * ids >= 0; filter as topk_offer's, none when id_lo > id_hi) and
 * merges them into the lists [nq,K] (device, from cuda_topk_init). Tiles
 * of CUDA_SCAN_ROWS rows are scored through cuBLAS, sorted in chunks in
 * shared memory and merged (search.cu); the result depends only on the set
 * of (score, id) pairs, so ties rank the lower id first as on the CPU.
 * K <= CUDA_TOPK_MAX, nq <= 65535 (else FOIL_EINVAL at cuda_check). scratch:
 * cuda_scan_topk_scratch(nq) floats.
 * Twin: topk_merge / topk_offer over the same scores. */
enum { CUDA_SCAN_ROWS = 1 << 18, CUDA_TOPK_MAX = 256 };
size_t cuda_scan_topk_scratch(int nq);
void cuda_scan_topk(float *top_score, int64_t *top_id, int nq, int K, const float *q, int d,
                    const float *x, int n, const int64_t *ids, int64_t id0, int64_t id_lo,
                    int64_t id_hi, float *scratch);

#ifdef __cplusplus
}
#endif
#endif
