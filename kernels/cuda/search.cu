/* search.cu — exact top-k search for foil-serve on the GPU (twin:
 * topk_merge / topk_offer of cpu/topk.c, scan_topk of cpu/scan.c).
 *
 * Per tile of CUDA_SCAN_ROWS corpus rows:
 *   1. scores [nq, rows] = q · x_tile^T through cuBLAS (fp32, no TF32);
 *   2. chunk pass: one block per (query, chunk of 2048 scores) drops what
 *      cannot enter (NaN, filtered ids, not better than the list's last
 *      entry when it is full), bitonic-sorts the chunk in shared memory in
 *      the top-k order and keeps its best K as candidates (a chunk with
 *      nothing left skips the sort);
 *   3. merge pass: one block per query builds the new list by K rounds of
 *      "best candidate ranked after the previous pick" over the old list
 *      and the chunks' candidates.
 * The order is total (score desc, id asc) and every step is a pure
 * function of the set of (score, id) pairs, so the lists equal the CPU's
 * whenever the scores do, whatever the tiling. Cost: 2·nq·n·d flops and
 * one read of the rows, plus O(nq·n·log²2048) compares in shared memory
 * and K²·(rows/2048) per query and tile in the merge. */
#include <math.h>

#include "kernels/cuda/common.cuh"

enum { CHUNK = 2048, CHUNK_THREADS = 1024, NCHUNK = CUDA_SCAN_ROWS / CHUNK };

__global__ void k_topk_init(float *s, int64_t *id, size_t n) {
  FOR_N(i, n) {
    s[i] = -INFINITY;
    id[i] = -1;
  }
}
extern "C" void cuda_topk_init(float *top_score, int64_t *top_id, int nq, int K) {
  size_t n = (size_t)nq * K;
  if (n) k_topk_init<<<grid_for(n, 256), 256, 0, g_cuda.stream>>>(top_score, top_id, n);
}

/* Block (chunk, query): candidates cand_s/cand_i [nq][NCHUNK][K]. */
__global__ void k_topk_chunk(float *cand_s, long long *cand_i, const float *top_score,
                             const int64_t *top_id, int K, const float *scores, int nc,
                             const int64_t *ids, int64_t id0, int64_t id_lo, int64_t id_hi) {
  __shared__ float ss[CHUNK];
  __shared__ long long si[CHUNK];
  const int chunk = blockIdx.x, qi = blockIdx.y;
  const float *S = scores + (size_t)qi * nc;
  const best_t bar = {top_score[(size_t)qi * K + K - 1], (long long)top_id[(size_t)qi * K + K - 1]};
  const bool filter = id_lo <= id_hi;
  int valid = 0;
  for (int t = threadIdx.x; t < CHUNK; t += blockDim.x) {
    int j = chunk * CHUNK + t;
    best_t c = {-INFINITY, -1};
    if (j < nc) {
      c.s = S[j];
      c.i = ids ? (long long)ids[j] : id0 + j;
      if (c.s != c.s || (filter && (c.i < id_lo || c.i > id_hi)) || (bar.i >= 0 && !better(c, bar)))
        c = best_t{-INFINITY, -1};
    }
    ss[t] = c.s;
    si[t] = c.i;
    valid |= c.i >= 0;
  }
  size_t base = ((size_t)qi * NCHUNK + chunk) * K;
  /* Once the list is full most chunks hold nothing that can enter. */
  if (!__syncthreads_or(valid)) {
    for (int t = threadIdx.x; t < K; t += blockDim.x) {
      cand_s[base + t] = -INFINITY;
      cand_i[base + t] = -1;
    }
    return;
  }
  /* bitonic sort, best first */
  for (int k = 2; k <= CHUNK; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int t = threadIdx.x; t < CHUNK; t += blockDim.x) {
        int u = t ^ j;
        if (u > t) {
          best_t a = {ss[t], si[t]}, b = {ss[u], si[u]};
          bool first_half = (t & k) == 0;
          if (first_half ? better(b, a) : better(a, b)) {
            ss[t] = b.s, si[t] = b.i;
            ss[u] = a.s, si[u] = a.i;
          }
        }
      }
      __syncthreads();
    }
  for (int t = threadIdx.x; t < K; t += blockDim.x) {
    cand_s[base + t] = t < CHUNK ? ss[t] : -INFINITY;
    cand_i[base + t] = t < CHUNK ? si[t] : -1;
  }
}

/* Block per query: the new list from the old one and nchunk·K candidates. */
__global__ void k_topk_merge(float *top_score, int64_t *top_id, int K, const float *cand_s,
                             const long long *cand_i, int ncand) {
  __shared__ best_t bshm[32];
  __shared__ float ns[CUDA_TOPK_MAX];
  __shared__ long long ni[CUDA_TOPK_MAX];
  const int qi = blockIdx.x;
  float *ls = top_score + (size_t)qi * K;
  int64_t *li = top_id + (size_t)qi * K;
  const float *cs = cand_s + (size_t)qi * NCHUNK * K;
  const long long *ci = cand_i + (size_t)qi * NCHUNK * K;
  best_t prev = {INFINITY, -1};
  bool have_prev = false;
  int r = 0;
  for (; r < K; r++) {
    best_t mine = {-INFINITY, -1};
    for (int j = threadIdx.x; j < K + ncand; j += blockDim.x) {
      best_t c = j < K ? best_t{ls[j], (long long)li[j]} : best_t{cs[j - K], ci[j - K]};
      if (c.i < 0 || (have_prev && !better(prev, c))) continue;
      if (better(c, mine)) mine = c;
    }
    best_t pick = block_best(mine, bshm);
    if (pick.i < 0) break; /* no more candidates: the rest stays empty */
    if (threadIdx.x == 0) {
      ns[r] = pick.s;
      ni[r] = pick.i;
    }
    prev = pick;
    have_prev = true;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < K; e += blockDim.x) {
    ls[e] = e < r ? ns[e] : -INFINITY;
    li[e] = e < r ? ni[e] : -1;
  }
}

extern "C" size_t cuda_scan_topk_scratch(int nq) {
  /* scores [nq, CUDA_SCAN_ROWS] + candidates [nq, NCHUNK, K_MAX] (float + long long) */
  return (size_t)nq * CUDA_SCAN_ROWS + (size_t)nq * NCHUNK * CUDA_TOPK_MAX * 3;
}

extern "C" void cuda_scan_topk(float *top_score, int64_t *top_id, int nq, int K, const float *q,
                               int d, const float *x, int n, const int64_t *ids, int64_t id0,
                               int64_t id_lo, int64_t id_hi, float *scratch) {
  if (nq <= 0 || n <= 0) return;
  /* queries are the grid's y dimension */
  if (nq > 65535 || K <= 0 || K > CUDA_TOPK_MAX)
    return bad_arg("cuda_scan_topk: needs nq <= 65535 and 1 <= K <= CUDA_TOPK_MAX");
  const float one = 1.0f, zero = 0.0f;
  float *scores = scratch;
  float *cand_s = scratch + (size_t)nq * CUDA_SCAN_ROWS;
  long long *cand_i = (long long *)(cand_s + (size_t)nq * NCHUNK * CUDA_TOPK_MAX);
  for (int r0 = 0; r0 < n; r0 += CUDA_SCAN_ROWS) {
    int nc = n - r0 < CUDA_SCAN_ROWS ? n - r0 : CUDA_SCAN_ROWS;
    int nchunk = (nc + CHUNK - 1) / CHUNK;
    blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_T, CUBLAS_OP_N, nc, nq, d, &one,
                          x + (size_t)r0 * d, d, q, d, &zero, scores, nc));
    k_topk_chunk<<<dim3(nchunk, nq), CHUNK_THREADS, 0, g_cuda.stream>>>(
        cand_s, cand_i, top_score, top_id, K, scores, nc, ids ? ids + r0 : NULL, id0 + r0, id_lo,
        id_hi);
    k_topk_merge<<<nq, 256, 0, g_cuda.stream>>>(top_score, top_id, K, cand_s, cand_i, nchunk * K);
  }
}
