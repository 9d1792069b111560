/* kernels.h — foil's math on flat float buffers.
 *
 * One header for every backend: kernels/cpu/ implements it in C with
 * OpenBLAS and OpenMP; the CUDA backend implements the same signatures.
 * Nothing here allocates, logs, opens files or talks to a network: callers
 * own every buffer, and kernels only read inputs and write outputs.
 *
 * Conventions
 *   - Row-major. A "[N,C]" buffer holds N rows of C floats.
 *   - Linear weights are stored [out, in] (as torch.nn.Linear), so a layer
 *     computes out = inp @ W^T + b.
 *   - Backward functions ACCUMULATE (+=) into parameter gradients (dW, db,
 *     dwte, ...) so micro-batches can add up; gradients w.r.t. activations
 *     are accumulated too unless the comment says "writes". Callers zero
 *     gradient buffers once per step.
 *   - mask: uint8 [B,T], 1 for a real token, 0 for padding.
 *   - Cost is stated in flops or passes over memory; "O(N·C)" means one pass.
 *   - Determinism: for a fixed thread count every kernel gives the same bits
 *     on every run. Reductions never depend on how OpenMP splits the work
 *     (each output is summed by one thread, in a fixed order).
 */
#ifndef FOIL_KERNELS_H
#define FOIL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- runtime -------------------------------------------------------------- */

/* Sets the number of threads every kernel (and OpenBLAS) uses, for the
 * whole process: on the calling thread at once and on any other thread
 * (one started before or after the call) from its next kernel call on —
 * each kernel applies the count to the thread that calls it, because
 * OpenMP's own setting (omp_set_num_threads) belongs to one thread. n <= 0
 * means all cores. Returns the count in effect. Never called: the OpenMP
 * defaults (OMP_NUM_THREADS, else all cores) hold on each thread.
 * kernels_get_threads: the count set, on any thread (never set: the
 * calling thread's omp_get_max_threads). Code outside the kernels that
 * opens its own parallel regions passes it as num_threads. */
int kernels_set_threads(int n);
int kernels_get_threads(void);
/* Human-readable backend description (static string). */
const char *kernels_backend(void);
/* A line for programs to log as a warning at startup, or NULL: the
 * OpenBLAS loaded at run time is not the OpenMP flavour foil is built for
 * (kernels/cpu/runtime.c: two thread pools on the same cores). Static
 * string. */
const char *kernels_backend_warning(void);

/* ---- counter-based RNG (Philox4x32-10) -------------------------------------
 * A random number is a pure function of (seed, stream, offset): the same
 * element of the same dropout site gets the same value on any thread count,
 * and a step can be replayed by calling again with the same arguments. */
uint32_t rng_u32(uint64_t seed, uint64_t stream, uint64_t offset);
/* Uniform float in [0,1) with 24 random bits. */
float rng_uniform(uint64_t seed, uint64_t stream, uint64_t offset);
/* n uniforms for offsets [offset, offset+n). O(n). */
void rng_uniform_fill(float *out, size_t n, uint64_t seed, uint64_t stream,
                      uint64_t offset);

/* ---- embedding: out[b,t] = wte[ids[b,t]] + wpe[t] ------------------------ */
void embed_forward(float *out, const int32_t *ids, const float *wte,
                   const float *wpe, int B, int T, int C);
/* dwte[ids[b,t]] += dout[b,t]; dwpe[t] += dout[b,t]. Either may be NULL.
 * Deterministic: each column range is owned by one thread. O(B·T·C). */
void embed_backward(float *dwte, float *dwpe, const float *dout,
                    const int32_t *ids, int B, int T, int C);

/* ---- layernorm over the last dim (C), biased variance, eps inside sqrt ---- */
/* Writes out, and mean/rstd [N] for the backward. O(N·C). */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C, float eps);
/* dinp += ..., dw += ..., db += ... */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C);

/* ---- linear: out[N,OC] = inp[N,C] @ W[OC,C]^T + b[OC] (b may be NULL) ----
 * 2·N·C·OC flops through foil's kernel, 64 rows at a time: W read once per
 * chunk without sgemm's packed copy of it (a row's bits do not depend on
 * the other rows, nor on the thread count). Writes out. The backward's two
 * products are sgemm's. */
void matmul_forward(float *out, const float *inp, const float *W,
                    const float *b, int N, int C, int OC);
/* dinp[N,C] += dout @ W, dW += dout^T @ inp, db += colsum(dout).
 * Any of dinp, dW, db may be NULL to skip it. 4·N·C·OC flops. */
void matmul_backward(float *dinp, float *dW, float *db, const float *dout,
                     const float *inp, const float *W, int N, int C, int OC);

/* ---- bf16 operands, fp32 accumulate (kernels/cpu/bf16.c) --------------------
 * bf16 = the upper 16 bits of an fp32, rounded to nearest even (NaN stays
 * NaN). The CPU twins of the CUDA backend's mixed-precision GEMMs: the same
 * bf16 products, fp32 sums in another order; plain threaded loops (a
 * reference and small models, not faster than fp32). */
void f32_to_bf16(uint16_t *dst, const float *src, size_t n);
void bf16_to_f32(float *dst, const uint16_t *src, size_t n);
/* out = inp @ W^T + b from bf16 inp [N,C] and W [OC,C]; writes out. */
void matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *W, const float *b, int N,
                         int C, int OC);
/* dinp += dout @ W, dW += dout^T @ inp from bf16 dout, inp, W; db +=
 * colsum(dout_f32) (db NULL or dout_f32 NULL: skipped; dinp, dW NULL:
 * skipped). */
void matmul_backward_bf16(float *dinp, float *dW, float *db, const uint16_t *dout, const float *dout_f32,
                          const uint16_t *inp, const uint16_t *W, int N, int C, int OC);
/* pre = inp @ W^T + b (bf16 operands), out = GELU(pre). */
void matmul_gelu_forward_bf16(float *out, float *pre, const uint16_t *inp, const uint16_t *W, const float *b,
                              int N, int C, int OC);

/* ---- exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2)) ---------------------------- */
void gelu_forward(float *out, const float *inp, size_t n);

/* sum_i e^(x[i] - m) over n floats, for log-sum-exp normalizers: each
 * exponential in float (vexp: relative error < 3e-7; -inf entries give
 * ~1e-38), summed in double over 8 lanes. Vectorized: ~10x faster than
 * libm's exp per entry. For m = max(x) the sum is >= 1, so its relative
 * error stays < 3e-7 and log(sum) is off by < 3e-7. O(n). */
double exp_sum(const float *x, size_t n, float m);
/* The largest of x[0..n) (-inf for n = 0; NaN entries are skipped), in 16
 * lanes: ~0.005 ms per 50257 entries where one compare chain took ~0.05. */
float max_of(const float *x, size_t n);
/* 0.5·(KL(m||p) + KL(m||q)) = 0.5·sum_i m_i·(2·log m_i - log p_i - log q_i)
 * for p = softmax(a), q = softmax(b), m = (p+q)/2 over n logits, given
 * each row's log-sum-exp la, lb (log(exp_sum(a, n, max a)) + max a): the
 * "JSD" DoLa and Hugging Face's DoLa decoding compute (F.kl_div(log p, m)
 * is KL(m||p)), in nats, not divided by n. The log-probabilities a - la,
 * b - lb are exact (one rounding to float, never floored: a term with
 * log p = -1000 counts its full m·1000, as HF's log_softmax); only the
 * exponentials underflow, e^x = 0 below x = -87, and a term whose p and q
 * both do is 0 (0·log 0 = 0; what is dropped is < 1.2e-38·|log p + log q|
 * per entry). log p = -inf against a finite log q gives +inf, as HF; both
 * -inf give 0. Float math (vexp, vlog), terms summed in double over 8
 * lanes in a fixed order (the same bits whatever the thread count: it runs
 * on the caller's thread): absolute error < 2e-6 + 4e-7·sum_i
 * m_i·(|log p_i| + |log q_i|) against libm in double (the second part:
 * vexp's relative error on m and the float rounding of the
 * log-probabilities, times terms that grow with |log p|: ~4e-4 at most
 * when half the mass sits at log p = -1000, about 10x less in practice).
 * 50257 entries: ~0.1 ms, 9x faster than libm. O(n). */
double softmax_mix_kl(const float *a, double la, const float *b, double lb, size_t n);
/* dinp += dout·GELU'(inp), GELU' = Φ(x) + x·φ(x). out is the forward's
 * output x·Φ(x): Φ is recovered as out/x (exact to a rounding), so the
 * backward costs one exp instead of a second erfc. */
void gelu_backward(float *dinp, const float *inp, const float *out, const float *dout,
                   size_t n);

/* ---- residual: out = a + b (writes) ---------------------------------------- */
void residual_forward(float *out, const float *a, const float *b, size_t n);
/* out += a */
void add_inplace(float *out, const float *a, size_t n);

/* ---- dropout with a replayable mask -----------------------------------------
 * Element i is kept (and scaled by 1/(1-p)) when dropout_kept(seed, stream,
 * i, p): 16 random bits per element, half i%2 of rng_u32(seed, stream, i/2)
 * (low half first), compared with ceil(p·65536) — so the keep probability
 * is within 1/65536 of 1-p, and one Philox word serves two elements. The
 * backward regenerates the same mask, so nothing is stored. p == 0 copies.
 * out may equal inp (in place). Element i of the buffer uses mask element
 * offset + i: a slice of a larger batch (GradCache's micro-batches) passes
 * its position and draws the masks the whole batch would. */
int dropout_kept(uint64_t seed, uint64_t stream, uint64_t i, float p);
void dropout_forward(float *out, const float *inp, size_t n, float p,
                     uint64_t seed, uint64_t stream, uint64_t offset);
/* dinp += dout · mask/(1-p) */
void dropout_backward(float *dinp, const float *dout, size_t n, float p,
                      uint64_t seed, uint64_t stream, uint64_t offset);

/* ---- multi-head self-attention core --------------------------------------
 * qkv [B,T,3C] holds q, k, v per token (C = NH·hs, head h in columns
 * h·hs..h·hs+hs-1 of each third). Keys with mask 0 are ignored; causal also
 * hides keys after the query. Probabilities are dropped out with prob p_drop
 * (stream `stream`, mask element = offset + index into att). Writes out [B,T,C] and
 * att [B,NH,T,T] (softmax probabilities before dropout, kept for backward).
 * scratch: B·NH·T·T floats (any contents), unused (may be NULL) when
 * p_drop == 0. Cost: 4·B·NH·T·T·hs flops. A query whose keys are all hidden
 * gets zeros. */
void attention_forward(float *out, float *att, float *scratch, const float *qkv,
                       const uint8_t *mask, int B, int T, int C, int NH,
                       int causal, float p_drop, uint64_t seed,
                       uint64_t stream, uint64_t offset);
/* dqkv += gradient w.r.t. qkv. scratch: B·NH·T·T floats (any contents). */
void attention_backward(float *dqkv, float *scratch, const float *dout,
                        const float *qkv, const float *att, int B, int T,
                        int C, int NH, float p_drop, uint64_t seed,
                        uint64_t stream, uint64_t offset);

/* ---- attention of new tokens over a KV cache (generation) ------------------
 * n groups of R new query tokens; group g belongs to cache row
 * row = rows_idx[g] (rows_idx NULL: row g) and its tokens sit at position
 * len[row]. qkv [n,R,3C] holds the new tokens' q, k, v (layout as
 * attention_forward). kcache, vcache [rows, max_len, C] hold one layer's
 * cached keys/values, slot t = position t. Each query attends to its row's
 * slots 0..len[row]-1 and to its OWN new key/value (not to the other R-1
 * tokens of its group: they are alternatives, e.g. contrastive search's
 * candidates), scale 1/sqrt(hs), softmax, weighted sum into out [n,R,C]
 * (writes). This equals the last row of causal attention_forward over the
 * row's sequence followed by that token. No dropout (inference only).
 * scratch: n·NH·(max_len+1) floats (any contents). Work is split over
 * (group, head) pairs, each owning its outputs and scores, and every sum
 * runs in a fixed order: same bits on any thread count.
 * Cost: 4·n·R·NH·(len+1)·hs flops, one read of the rows' cached K and V per
 * query (memory-bound). */
void attention_cache_forward(float *out, float *scratch, const float *qkv,
                             const float *kcache, const float *vcache,
                             const int *len, const int *rows_idx, int n, int R,
                             int max_len, int C, int NH);

/* ---- pooling of [B,T,C] token states to [B,C] -------------------------------
 * mean over tokens with mask 1 (zero vector if none), or the first token. */
enum { POOL_MEAN = 0, POOL_FIRST = 1 };
void pool_forward(float *out, const float *inp, const uint8_t *mask, int B,
                  int T, int C, int mode);
/* dinp += ... */
void pool_backward(float *dinp, const float *dout, const uint8_t *mask, int B,
                   int T, int C, int mode);

/* ---- L2 normalization of rows: out = x / max(||x||, eps) ------------------- */
/* Writes out and norm [N] (the clamped norm). eps as torch F.normalize: 1e-12 */
void l2norm_forward(float *out, float *norm, const float *inp, int N, int C);
/* dinp += (dout - out·<out,dout>)/norm (where the norm was not clamped) */
void l2norm_backward(float *dinp, const float *dout, const float *out,
                     const float *norm, int N, int C);

/* ---- softmax cross-entropy ---------------------------------------------------
 * logits [N,V] -> probs [N,V] (writes), losses[N] = -log p[label].
 * Computed with the max subtracted, in float with double row sums. O(N·V). */
void crossentropy_forward(float *losses, float *probs, const float *logits,
                          const int32_t *labels, int N, int V);
/* dlogits += scale·(probs - onehot(label)) */
void crossentropy_backward(float *dlogits, const float *probs,
                           const int32_t *labels, int N, int V, float scale);

/* ---- InfoNCE ------------------------------------------------------------------
 * logits[i,j] = scale·<q_i, key_j> for nq queries against the nk keys k and
 * then the nx extra keys kx (a MoCo queue: negatives that get no gradient;
 * kx may be NULL with nx 0); softmax cross-entropy with target column
 * labels[i] (< nk); loss = mean over the nq rows. In-batch negatives are the
 * other keys; hard negatives are more rows of k. decoupled (DCL, Yeh et al.
 * 2021) drops the target column from the softmax denominator (needs
 * nk + nx >= 2). The symmetric loss of a model is two calls (see
 * model/loss.h). probs [nq, nk+nx] is written (decoupled: the target
 * column holds 0); returns the loss. correct (may be NULL) gets the number
 * of rows whose argmax is the label. Cost 2·nq·(nk+nx)·D flops. */
float infonce_forward(float *probs, int *correct, const float *q, int nq,
                      const float *k, int nk, const float *kx, int nx, int D,
                      const int32_t *labels, float scale, int decoupled);
/* Backward of weight·loss: dq += ..., dk += ... (either may be NULL; kx gets
 * none), and *dscale += d(weight·loss)/d(scale) when dscale is not NULL
 * (learnable temperature). probs is overwritten with the logits' gradient.
 * Cost 4·nq·(nk+nx)·D flops; dscale adds two passes over q and dq, or,
 * with dq NULL, 2·nq·(nk+nx)·D flops.
 * dscale with dq: taken from dq's own product, as (<q, dq after> −
 * <q, dq before>)/scale, so it carries the rounding of dq's elements, an
 * absolute error of about 2^-24·rms(dq before)·√(nq·D)·rms(q)/scale.
 * Negligible when dq comes in zeroed or holding a gradient of this call's
 * size (model/loss.c: zeroed, then the symmetric direction's key gradient
 * of the same size; relative error 1e-8 to 1e-7); the whole of a small
 * dscale when dq already holds a much larger gradient (nq = nk = 64,
 * D 256, scale 20, dscale 2e-6: prior elements of about 100 give 98%
 * error). So dq must come in zeroed or small, or be NULL (then dscale is
 * computed directly). The CUDA backend computes it directly always, from
 * a scratch product. */
void infonce_backward(float *dq, float *dk, float *dscale, float *probs,
                      const float *q, int nq, const float *k, int nk,
                      const float *kx, int nx, int D, const int32_t *labels,
                      float scale, float weight);

/* ---- optimizer ------------------------------------------------------------------ */
/* sum g^2 over n floats: 4096-element blocks summed in float, blocks added
 * in double in a fixed grouping (same bits for any thread count). O(n). */
double sumsq(const float *g, size_t n);
void scale_inplace(float *x, size_t n, float s);
/* One AdamW step as torch.optim.AdamW (decoupled weight decay, bias
 * correction; t is the 1-based step):
 *   p *= 1 - lr·wd;  m = b1·m + (1-b1)·g;  v = b2·v + (1-b2)·g²;
 *   p -= lr/(1-b1^t) · m / (sqrt(v)/sqrt(1-b2^t) + eps).   O(n). */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n,
                  float lr, float b1, float b2, float eps, float wd, int t);
/* Exponential moving average (MoCo's momentum encoder): dst = m·dst +
 * (1-m)·src. O(n). */
void ema_update(float *dst, const float *src, size_t n, float m);

/* ---- streaming top-k ----------------------------------------------------------
 * Keeps, per query, the K best (score, id) pairs seen so far, best first, so
 * a corpus of any size can be scored chunk by chunk in memory independent of
 * its size. The order is total: higher score first; EQUAL SCORES RANK THE
 * LOWER id FIRST. So the lists depend only on the set of (score, id) pairs
 * offered — not on how the corpus was chunked, in which order the chunks
 * came, or the thread count. (torch.topk, which sentence-transformers uses,
 * leaves the order of tied scores unspecified; foil's rule is the one to
 * compare against.) An empty slot holds id -1 and score -INFINITY and ranks
 * below every real candidate, so a corpus smaller than K leaves the tail
 * empty. NaN scores are never taken. Ids offered must be >= 0 and distinct.
 *
 * top_score [nq,K] and top_id [nq,K] are owned by the caller.
 * topk_init empties the nq lists. O(nq·K). */
void topk_init(float *top_score, int64_t *top_id, int nq, int K);
/* Offers scores [nq, nc] (row stride ld >= nc) of the corpus rows with ids
 * id0 .. id0+nc-1 to the lists. Cost: nq·nc compares plus O(K) per
 * candidate that enters a list (on a shuffled corpus about K·ln(n/K) per
 * query over the whole corpus). Queries are split across threads, each list
 * owned by one thread. */
void topk_merge(float *top_score, int64_t *top_id, int nq, int K,
                const float *scores, int nc, size_t ld, int64_t id0);

/* Offers n candidates to ONE list (K slots, same order and empty slots as
 * above). Candidate j has score scores[j] and id ids[j]; it is skipped when
 * ids[j] < 0, or when id_lo <= id_hi and ids[j] is outside [id_lo, id_hi]
 * (the filter; id_lo > id_hi: none). The list stores ids[j], or key0 + j
 * when key0 >= 0 (a row number, for callers that rescore rows: the filter
 * still reads ids, and ties then rank the lower row first). Cost: n compares,
 * 16 at a time while the list is full, plus O(K) per entering candidate. */
void topk_offer(float *top_score, int64_t *top_id, int K, const float *scores, int n,
                const int64_t *ids, int64_t id_lo, int64_t id_hi, int64_t key0);

/* ---- top-k scan of stored vectors ----------------------------------------------
 * Exact inner products of float32 queries with stored rows of float32,
 * IEEE float16 (uint16_t bits) or int8 with a per-row scale, fused with the
 * top-k lists (model/vsearch.h builds search on these).
 * score = Σ_j q_j·x_j in float32 (float16 widened exactly; int8: the integer
 * row's sum times the row's scale). One accumulator per row, summed in a
 * fixed order, every multiply-add explicit (kernels/cpu/scan.c): a row's
 * bits depend on the build only — not on the thread count, nor on the
 * path (direct or sgemm, chosen by nq: the sgemm only selects rows, whose
 * kept scores are the direct path's), so a query gets the same bits alone
 * as in a batch.
 * Single-threaded: callers split rows over threads and give each thread its
 * own lists and scratch; the sgemm runs in its caller's thread when called
 * inside a parallel region (or with one kernel thread). */
enum { SCAN_F32 = 0, SCAN_F16 = 1, SCAN_I8 = 2 };
enum {
  SCAN_ROWS = 512,      /* rows scored per step (a chunk: 512 KB of float32 rows at d 256) */
  SCAN_QTILE = 256,     /* queries per sgemm: a score tile of 512 KB stays in L2 */
  SCAN_DIRECT_MAX = 4,  /* up to this many queries: row-by-row dot products */
};
/* scores[i] = score of row i (of n rows at x) for the query q [d]. Reads
 * the rows once: n·d multiply-adds, memory-bound. */
void scan_dot(float *scores, const float *q, int d, int dtype, const void *x,
              const float *scales, int n);
/* dst[i] = x[i] as float32 (float16 widened exactly, int8 converted). O(n). */
void scan_widen(float *dst, int dtype, const void *x, size_t n);
/* Floats of scratch scan_topk needs: a score tile and a widened chunk. */
size_t scan_topk_scratch(int d);
/* Offers the scores of n rows (x, scales for SCAN_I8, ids: n each, from the
 * range's first row) for nq queries q [nq,d] to the lists top_score/top_id
 * [nq,K] (as topk_offer, with its filter; row0 >= 0: the lists store row
 * numbers row0 + i instead of ids). In chunks of SCAN_ROWS rows from the
 * range's start: nq <= SCAN_DIRECT_MAX scores each chunk with scan_dot per
 * query; more queries widen the chunk to float32 once and score it with
 * sgemm per tile of SCAN_QTILE queries. So that bits do not depend on how a
 * caller splits rows, ranges must start at multiples of SCAN_ROWS of their
 * block and nq must be the whole batch. Cost: 2·nq·n·d flops, the rows read
 * from memory once, plus the lists' merges. scratch: scan_topk_scratch(d). */
void scan_topk(float *top_score, int64_t *top_id, int nq, int K, const float *q, int d,
               int dtype, const void *x, const float *scales, const int64_t *ids, int n,
               int64_t id_lo, int64_t id_hi, int64_t row0, float *scratch);

/* ---- linear algebra ------------------------------------------------------------
 * Eigen-decomposition of a symmetric matrix a [n,n] (double; one triangle
 * is read, so both must hold the same matrix): on return w [n] holds the
 * eigenvalues in ASCENDING order and ROW j of a (a[j·n .. j·n+n)) the unit
 * eigenvector of w[j] (each vector's sign is LAPACK's choice). Allocates its workspace
 * (the one kernel that does: LAPACK sizes it). Returns 0, a positive count
 * of eigenvalues that failed to converge, or -1 when out of memory.
 * Cost ~ 4·n³ flops (divide and conquer, LAPACK dsyevd); same bits for a
 * given thread count. */
int symeig(double *a, double *w, int n);

#endif
