/* embed.cu — token + position embedding (twin: cpu/embed.c).
 *
 * Forward: one thread per output element. Backward without atomics and
 * with the CPU's bits: the CPU adds each token's gradient into its id's row
 * in token order. Here a stable radix sort (CUB) groups the token indices
 * by id keeping token order inside each id; one block per id then adds its
 * tokens in that order, threads across the columns — the same sums in the
 * same order, parallel over distinct ids instead of serial over tokens.
 * dwpe: one block per position adds the batch rows in order. Cost: the
 * sort (a few passes over B·T int pairs) plus one read of dout per table. */
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/common.cuh"

__global__ void k_embed_fwd(float *out, const int32_t *ids, const float *wte, const float *wpe,
                            int T, int C, size_t n) {
  FOR_N(i, n) {
    size_t bt = i / C;
    int c = (int)(i % C), t = (int)(bt % T);
    out[i] = wte[(size_t)ids[bt] * C + c] + wpe[(size_t)t * C + c];
  }
}
extern "C" void cuda_embed_forward(float *out, const int32_t *ids, const float *wte,
                                   const float *wpe, int B, int T, int C) {
  size_t n = (size_t)B * T * C;
  if (n) k_embed_fwd<<<grid_for(n, 256), 256, 0, g_cuda.stream>>>(out, ids, wte, wpe, T, C, n);
}

__global__ void k_iota(int32_t *v, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) v[i] = i;
}

/* Block p starts a run of equal ids at sorted position p (else exits) and
 * adds the run's token rows into dwte[id], tokens in their original order. */
__global__ void k_embed_bwd_wte(float *dwte, const float *dout, const int32_t *sid,
                                const int32_t *stok, int BT, int C) {
  const int p = blockIdx.x;
  if (p > 0 && sid[p] == sid[p - 1]) return;
  const int id = sid[p];
  float *g = dwte + (size_t)id * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = g[c];
    for (int q = p; q < BT && sid[q] == id; q++) acc += dout[(size_t)stok[q] * C + c];
    g[c] = acc;
  }
}
__global__ void k_embed_bwd_wpe(float *dwpe, const float *dout, int B, int T, int C) {
  const int t = blockIdx.x;
  float *g = dwpe + (size_t)t * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = g[c];
    for (int b = 0; b < B; b++) acc += dout[((size_t)b * T + t) * C + c];
    g[c] = acc;
  }
}

extern "C" void cuda_embed_backward(float *dwte, float *dwpe, const float *dout,
                                    const int32_t *ids, int B, int T, int C) {
  const int BT = B * T;
  if (BT <= 0) return;
  if (dwpe) k_embed_bwd_wpe<<<T, 256, 0, g_cuda.stream>>>(dwpe, dout, B, T, C);
  if (!dwte) return;
  /* scratch: tokens, sorted ids, sorted tokens, CUB's temporary storage */
  size_t tmp_bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, tmp_bytes, (const int32_t *)nullptr, (int32_t *)nullptr,
                                  (const int32_t *)nullptr, (int32_t *)nullptr, BT, 0, 32,
                                  g_cuda.stream);
  const size_t ints = (size_t)BT * sizeof(int32_t);
  char *buf = nullptr;
  if (cudaMallocAsync(&buf, 3 * ints + tmp_bytes, g_cuda.stream) != cudaSuccess) {
    cudaGetLastError();
    return refuse(FOIL_ENOMEM, "cuda_embed_backward: no memory for the id sort");
  }
  int32_t *tok = (int32_t *)buf, *sid = (int32_t *)(buf + ints), *stok = (int32_t *)(buf + 2 * ints);
  k_iota<<<(BT + 255) / 256, 256, 0, g_cuda.stream>>>(tok, BT);
  /* ids are >= 0, so sorting their 32 bits as signed ints keeps them in order */
  cub::DeviceRadixSort::SortPairs(buf + 3 * ints, tmp_bytes, ids, sid, tok, stok, BT, 0, 32,
                                  g_cuda.stream);
  k_embed_bwd_wte<<<BT, 128, 0, g_cuda.stream>>>(dwte, dout, sid, stok, BT, C);
  cudaFreeAsync(buf, g_cuda.stream);
}
