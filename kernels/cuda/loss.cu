/* loss.cu — softmax cross-entropy and InfoNCE (twin: cpu/loss.c), and the
 * exact top-k search for foil-serve (twin: cpu/topk.c, cpu/scan.c).
 *
 * Row kernels run one block per row with block reductions in a fixed tree;
 * row sums of exponentials are in double as on the CPU. InfoNCE's logits
 * and its gradients go through cuBLAS (fp32, no TF32); the loss and the
 * count of correct rows are added on the host in row order, so the loss
 * has the CPU's summation order over rows. The top-k search is in
 * search.cu. */
#include <math.h>

#include "kernels/cuda/common.cuh"

#define RBLOCK 256

/* ---- helpers ---------------------------------------------------------------- */

/* Softmax + cross-entropy of one row x[V] into p[V] (may alias), as the
 * CPU's softmax_xent_row; writes the row loss (double) and whether the
 * argmax (first maximal column) is the label. */
__device__ void xent_row(float *p, const float *x, int V, int label, int decoupled,
                         double *loss, int *right) {
  __shared__ double dshm[32];
  __shared__ float fshm[32];
  __shared__ best_t bshm[32];
  const float lab = x[label]; /* read before any thread writes p (p may be x) */
  best_t am = {-INFINITY, -1};
  float mx = -INFINITY;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    best_t c = {x[v], v};
    if (am.i < 0 || c.s > am.s) am = c; /* strided: first maximal index per thread */
    if (!(decoupled && v == label)) mx = fmaxf(mx, x[v]);
  }
  am = block_best(am, bshm);
  mx = block_max(mx, fshm);
  double s = 0.0;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    float e = decoupled && v == label ? 0.0f : expf(x[v] - mx);
    p[v] = e;
    s += e;
  }
  s = block_sum(s, dshm);
  float inv = (float)(1.0 / s);
  for (int v = threadIdx.x; v < V; v += blockDim.x) p[v] *= inv;
  if (threadIdx.x == 0) {
    *loss = log(s) - (double)(lab - mx);
    if (right) *right = am.i == label;
  }
}

__global__ void k_xent_fwd(float *losses, float *probs, const float *logits,
                           const int32_t *labels, int V) {
  __shared__ double l;
  size_t n = blockIdx.x;
  xent_row(probs + n * V, logits + n * V, V, labels[n], 0, &l, nullptr);
  if (threadIdx.x == 0) losses[n] = (float)l;
}
extern "C" void cuda_crossentropy_forward(float *losses, float *probs, const float *logits,
                                          const int32_t *labels, int N, int V) {
  if (N > 0) k_xent_fwd<<<N, RBLOCK, 0, g_cuda.stream>>>(losses, probs, logits, labels, V);
}

__global__ void k_xent_bwd(float *dlogits, const float *probs, const int32_t *labels, int V,
                           size_t n, float scale) {
  FOR_N(i, n) {
    size_t r = i / V;
    int v = (int)(i % V);
    float d = dlogits[i] + scale * probs[i];
    if (v == labels[r]) d -= scale;
    dlogits[i] = d;
  }
}
extern "C" void cuda_crossentropy_backward(float *dlogits, const float *probs,
                                           const int32_t *labels, int N, int V, float scale) {
  size_t n = (size_t)N * V;
  if (n) k_xent_bwd<<<grid_for(n, 256), 256, 0, g_cuda.stream>>>(dlogits, probs, labels, V, n, scale);
}

/* ---- InfoNCE -------------------------------------------------------------------- */

/* rows [0, nrows) of the probs in place; out[2r] = loss, out[2r+1] = right */
__global__ void k_infonce_rows(double *out, float *probs, const int32_t *labels, int nt,
                               int decoupled) {
  __shared__ double l;
  __shared__ int right;
  size_t r = blockIdx.x;
  float *p = probs + r * nt;
  xent_row(p, p, nt, labels[r], decoupled, &l, &right);
  if (threadIdx.x == 0) {
    out[2 * r] = l;
    out[2 * r + 1] = right;
  }
}

extern "C" float cuda_infonce_forward(float *probs, int *correct, const float *q, int nq,
                                      const float *k, int nk, const float *kx, int nx, int D,
                                      const int32_t *labels, float scale, int decoupled) {
  const int nt = nk + nx;
  const float zero = 0.0f;
  blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_T, CUBLAS_OP_N, nk, nq, D, &scale, k, D, q, D,
                        &zero, probs, nt));
  if (nx > 0)
    blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_T, CUBLAS_OP_N, nx, nq, D, &scale, kx, D, q, D,
                          &zero, probs + nk, nt));
  double total = 0.0;
  int right = 0;
  const int per = CUDA_RED_DOUBLES / 2;
  for (int r0 = 0; r0 < nq; r0 += per) {
    int m = nq - r0 < per ? nq - r0 : per;
    k_infonce_rows<<<m, RBLOCK, 0, g_cuda.stream>>>(g_cuda.red, probs + (size_t)r0 * nt,
                                                    labels + r0, nt, decoupled);
    cudaMemcpyAsync(g_cuda.red_host, g_cuda.red, 2 * (size_t)m * sizeof(double),
                    cudaMemcpyDeviceToHost, g_cuda.stream);
    if (cudaStreamSynchronize(g_cuda.stream) != cudaSuccess) return NAN;
    for (int r = 0; r < m; r++) {
      total += g_cuda.red_host[2 * r]; /* rows in order, as the CPU */
      right += g_cuda.red_host[2 * r + 1] != 0.0;
    }
  }
  if (correct) *correct = right;
  return nq > 0 ? (float)(total / nq) : 0.0f;
}

__global__ void k_infonce_grad(float *probs, const int32_t *labels, int nt, size_t n, float w) {
  FOR_N(i, n) {
    float g = probs[i] * w;
    if ((int)(i % nt) == labels[i / nt]) g -= w;
    probs[i] = g;
  }
}
__global__ void k_dot_blocks(double *part, const float *a, const float *b, size_t n) {
  __shared__ double shm[32];
  size_t lo = (size_t)blockIdx.x * 4096, hi = lo + 4096 < n ? lo + 4096 : n;
  double s = 0.0;
  for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)a[i] * b[i];
  s = block_sum(s, shm);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}
__global__ void k_axpy(float *y, const float *x, size_t n, float a) { FOR_N(i, n) y[i] += a * x[i]; }

/* <a, b> in double: blocks of 4096 summed in a tree, blocks in order on the host. */
static double dot_f64(const float *a, const float *b, size_t n) {
  double total = 0.0;
  const size_t per = (size_t)CUDA_RED_DOUBLES * 4096;
  for (size_t off = 0; off < n; off += per) {
    size_t m = n - off < per ? n - off : per, nb = (m + 4095) / 4096;
    k_dot_blocks<<<(unsigned)nb, RBLOCK, 0, g_cuda.stream>>>(g_cuda.red, a + off, b + off, m);
    cudaMemcpyAsync(g_cuda.red_host, g_cuda.red, nb * sizeof(double), cudaMemcpyDeviceToHost,
                    g_cuda.stream);
    if (cudaStreamSynchronize(g_cuda.stream) != cudaSuccess) return NAN;
    for (size_t i = 0; i < nb; i++) total += g_cuda.red_host[i];
  }
  return total;
}

extern "C" void cuda_infonce_backward(float *dq, float *dk, float *dscale, float *probs,
                                      const float *q, int nq, const float *k, int nk,
                                      const float *kx, int nx, int D, const int32_t *labels,
                                      float scale, float weight) {
  const int nt = nk + nx;
  const float one = 1.0f, zero = 0.0f;
  size_t n = (size_t)nq * nt;
  if (n)
    k_infonce_grad<<<grid_for(n, 256), 256, 0, g_cuda.stream>>>(probs, labels, nt, n,
                                                                 weight / (float)nq);
  if (dscale) {
    /* d/dscale = Σ_i <q_i, (G [K; Kx])_i>; tmp = G [K; Kx] also gives dq. */
    float *tmp = nullptr;
    size_t qn = (size_t)nq * D;
    if (cudaMallocAsync(&tmp, qn * sizeof(float) + 1, g_cuda.stream) != cudaSuccess) {
      cudaGetLastError();
      return refuse(FOIL_ENOMEM, "cuda_infonce_backward: no memory for the dscale product");
    }
    blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_N, D, nq, nk, &one, k, D, probs, nt,
                          &zero, tmp, D));
    if (nx > 0)
      blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_N, D, nq, nx, &one, kx, D,
                            probs + nk, nt, &one, tmp, D));
    *dscale += (float)dot_f64(q, tmp, qn);
    if (dq && qn) k_axpy<<<grid_for(qn, 256), 256, 0, g_cuda.stream>>>(dq, tmp, qn, scale);
    cudaFreeAsync(tmp, g_cuda.stream);
  } else if (dq) {
    blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_N, D, nq, nk, &scale, k, D, probs,
                          nt, &one, dq, D));
    if (nx > 0)
      blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_N, D, nq, nx, &scale, kx, D,
                            probs + nk, nt, &one, dq, D));
  }
  if (dk)
    blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_T, D, nk, nq, &scale, q, D, probs,
                          nt, &one, dk, D));
}
