/* elementwise.cu — the one-pass kernels: layernorm, GELU,
 * residual/scale, dropout, pooling, L2 normalization, sumsq, AdamW, EMA,
 * bf16 conversion. Each names its CPU twin (kernels/cpu/<file>.c).
 * Memory-bound: one read and one write per element unless stated. */
#include <math.h>

#include "kernels/cuda/common.cuh"

#define BLOCK 256
#define LAUNCH(kernel, n) kernel<<<grid_for((n), BLOCK), BLOCK, 0, g_cuda.stream>>>

/* ---- bf16 ------------------------------------------------------------------- */

__global__ void k_to_bf16(uint16_t *dst, const float *src, size_t n) {
  FOR_N(i, n) dst[i] = f32_to_bf16(src[i]);
}
__global__ void k_from_bf16(float *dst, const uint16_t *src, size_t n) {
  FOR_N(i, n) dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}
extern "C" void cuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
  LAUNCH(k_to_bf16, n)(dst, src, n);
}
extern "C" void cuda_bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
  LAUNCH(k_from_bf16, n)(dst, src, n);
}

/* ---- layernorm (twin: cpu/layernorm.c) -------------------------------------- */

/* One block per row; mean and variance in double, two passes. */
__global__ void k_ln_fwd(float *out, float *mean, float *rstd, const float *inp, const float *w,
                         const float *b, int C, float eps) {
  __shared__ double shm[32];
  const float *x = inp + (size_t)blockIdx.x * C;
  double s = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += x[c];
  double m = block_sum(s, shm) / C;
  double v = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    double d = (double)x[c] - m;
    v += d * d;
  }
  v = block_sum(v, shm);
  float mf = (float)m, rs = (float)(1.0 / sqrt(v / C + eps));
  float *o = out + (size_t)blockIdx.x * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = (x[c] - mf) * rs * w[c] + b[c];
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = mf;
    rstd[blockIdx.x] = rs;
  }
}
extern "C" void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                       const float *w, const float *b, int N, int C,
                                       float eps) {
  if (N > 0) k_ln_fwd<<<N, BLOCK, 0, g_cuda.stream>>>(out, mean, rstd, inp, w, b, C, eps);
}

__global__ void k_ln_bwd_dx(float *dinp, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int C) {
  __shared__ float shm[32];
  size_t row = blockIdx.x;
  const float *x = inp + row * C, *dy = dout + row * C;
  float m = mean[row], rs = rstd[row];
  float sg = 0.0f, sgx = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float g = w[c] * dy[c];
    sg += g;
    sgx += g * (x[c] - m) * rs;
  }
  float mg = block_sum(sg, shm) / C, mgx = block_sum(sgx, shm) / C;
  float *dx = dinp + row * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float xh = (x[c] - m) * rs;
    dx[c] += (w[c] * dy[c] - mg - xh * mgx) * rs;
  }
}
/* dw, db: one thread per column sums the rows in order. */
__global__ void k_ln_bwd_dw(float *dw, float *db, const float *dout, const float *inp,
                            const float *mean, const float *rstd, int N, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float aw = 0.0f, ab = 0.0f;
  for (int n = 0; n < N; n++) {
    float dy = dout[(size_t)n * C + c];
    aw += dy * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
    ab += dy;
  }
  if (dw) dw[c] += aw;
  if (db) db[c] += ab;
}
extern "C" void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                        const float *inp, const float *w, const float *mean,
                                        const float *rstd, int N, int C) {
  if (N <= 0) return;
  if (dinp) k_ln_bwd_dx<<<N, BLOCK, 0, g_cuda.stream>>>(dinp, dout, inp, w, mean, rstd, C);
  if (dw || db)
    k_ln_bwd_dw<<<(C + 127) / 128, 128, 0, g_cuda.stream>>>(dw, db, dout, inp, mean, rstd, N, C);
}

/* ---- GELU, residual, scale (twin: cpu/elementwise.c) ---------------------------- */

__device__ inline float gelu_exact(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }

__global__ void k_gelu_fwd(float *out, const float *inp, size_t n) {
  FOR_N(i, n) out[i] = gelu_exact(inp[i]);
}
__global__ void k_gelu_bwd(float *dinp, const float *inp, const float *out, const float *dout,
                           size_t n) {
  FOR_N(i, n) {
    float x = inp[i];
    float cdf = x != 0.0f ? out[i] / x : 0.5f;
    float pdf = expf(-0.5f * x * x) * 0.3989422804014327f;
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}
extern "C" void cuda_gelu_forward(float *out, const float *inp, size_t n) {
  LAUNCH(k_gelu_fwd, n)(out, inp, n);
}
extern "C" void cuda_gelu_backward(float *dinp, const float *inp, const float *out,
                                   const float *dout, size_t n) {
  LAUNCH(k_gelu_bwd, n)(dinp, inp, out, dout, n);
}

/* out[r,c] = pre[r,c] + b[c] written back to pre, and GELU of it to out:
 * the epilogue of cuda_matmul_gelu_forward (blas.cu), one pass. */
__global__ void k_bias_gelu(float *out, float *pre, const float *b, int OC, size_t n) {
  FOR_N(i, n) {
    float x = pre[i] + (b ? b[i % OC] : 0.0f);
    pre[i] = x;
    out[i] = gelu_exact(x);
  }
}
extern "C" void foil_cuda_bias_gelu(float *out, float *pre, const float *b, int N, int OC) {
  size_t n = (size_t)N * OC;
  LAUNCH(k_bias_gelu, n)(out, pre, b, OC, n);
}

__global__ void k_residual(float *out, const float *a, const float *b, size_t n) {
  FOR_N(i, n) out[i] = a[i] + b[i];
}
__global__ void k_add(float *out, const float *a, size_t n) { FOR_N(i, n) out[i] += a[i]; }
__global__ void k_scale(float *x, size_t n, float s) { FOR_N(i, n) x[i] *= s; }
extern "C" void cuda_residual_forward(float *out, const float *a, const float *b, size_t n) {
  LAUNCH(k_residual, n)(out, a, b, n);
}
extern "C" void cuda_add_inplace(float *out, const float *a, size_t n) {
  LAUNCH(k_add, n)(out, a, n);
}
extern "C" void cuda_scale_inplace(float *x, size_t n, float s) { LAUNCH(k_scale, n)(x, n, s); }

/* ---- dropout: the CPU's mask bits (cpu/elementwise.c, cpu/philox.h) ------------- */

/* A dropped element is +0 whatever its input (as the CPU), a kept one x/(1-p). */
__global__ void k_dropout_fwd(float *out, const float *inp, size_t n, uint32_t thr, float ks,
                              uint64_t seed, uint64_t stream, uint64_t offset) {
  FOR_N(i, n) {
    float s = dropout_scale_at(seed, stream, offset + i, thr, ks);
    out[i] = s != 0.0f ? inp[i] * s : 0.0f;
  }
}
__global__ void k_dropout_bwd(float *dinp, const float *dout, size_t n, uint32_t thr, float ks,
                              uint64_t seed, uint64_t stream, uint64_t offset) {
  FOR_N(i, n) {
    float s = dropout_scale_at(seed, stream, offset + i, thr, ks);
    dinp[i] += s != 0.0f ? dout[i] * s : 0.0f;
  }
}
extern "C" void cuda_dropout_forward(float *out, const float *inp, size_t n, float p,
                                     uint64_t seed, uint64_t stream, uint64_t offset) {
  if (p <= 0.0f) {
    if (out != inp)
      cudaMemcpyAsync(out, inp, n * sizeof(float), cudaMemcpyDeviceToDevice, g_cuda.stream);
    return;
  }
  LAUNCH(k_dropout_fwd, n)(out, inp, n, dropout_thr(p), 1.0f / (1.0f - p), seed, stream, offset);
}
extern "C" void cuda_dropout_backward(float *dinp, const float *dout, size_t n, float p,
                                      uint64_t seed, uint64_t stream, uint64_t offset) {
  if (p <= 0.0f) {
    cuda_add_inplace(dinp, dout, n);
    return;
  }
  LAUNCH(k_dropout_bwd, n)(dinp, dout, n, dropout_thr(p), 1.0f / (1.0f - p), seed, stream,
                           offset);
}

/* ---- pooling (twin: cpu/pool.c) ----------------------------------------------- */

/* One thread per (b, c): tokens summed in order. */
__global__ void k_pool_fwd(float *out, const float *inp, const uint8_t *mask, int B, int T,
                           int C, int mode) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= (size_t)B * C) return;
  int b = (int)(i / C), c = (int)(i % C);
  const float *x = inp + (size_t)b * T * C + c;
  if (mode == POOL_FIRST) {
    out[i] = x[0];
    return;
  }
  float s = 0.0f;
  int cnt = 0;
  for (int t = 0; t < T; t++)
    if (mask[(size_t)b * T + t]) {
      s += x[(size_t)t * C];
      cnt++;
    }
  out[i] = cnt ? s / (float)cnt : 0.0f;
}
__global__ void k_pool_bwd(float *dinp, const float *dout, const uint8_t *mask, int B, int T,
                           int C, int mode) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= (size_t)B * C) return;
  int b = (int)(i / C), c = (int)(i % C);
  float *dx = dinp + (size_t)b * T * C + c;
  if (mode == POOL_FIRST) {
    dx[0] += dout[i];
    return;
  }
  int cnt = 0;
  for (int t = 0; t < T; t++) cnt += mask[(size_t)b * T + t] != 0;
  if (!cnt) return;
  float g = dout[i] * (1.0f / (float)cnt);
  for (int t = 0; t < T; t++)
    if (mask[(size_t)b * T + t]) dx[(size_t)t * C] += g;
}
extern "C" void cuda_pool_forward(float *out, const float *inp, const uint8_t *mask, int B,
                                  int T, int C, int mode) {
  size_t n = (size_t)B * C;
  if (n) k_pool_fwd<<<grid_for(n, BLOCK), BLOCK, 0, g_cuda.stream>>>(out, inp, mask, B, T, C, mode);
}
extern "C" void cuda_pool_backward(float *dinp, const float *dout, const uint8_t *mask, int B,
                                   int T, int C, int mode) {
  size_t n = (size_t)B * C;
  if (n) k_pool_bwd<<<grid_for(n, BLOCK), BLOCK, 0, g_cuda.stream>>>(dinp, dout, mask, B, T, C, mode);
}

/* ---- L2 normalization (twin: cpu/loss.c), one block per row ---------------------- */

__global__ void k_l2_fwd(float *out, float *norm, const float *inp, int C) {
  __shared__ double shm[32];
  const float *x = inp + (size_t)blockIdx.x * C;
  double s = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += (double)x[c] * x[c];
  s = block_sum(s, shm);
  float nr = (float)sqrt(s);
  if (nr < 1e-12f) nr = 1e-12f;
  if (threadIdx.x == 0) norm[blockIdx.x] = nr;
  for (int c = threadIdx.x; c < C; c += blockDim.x) out[(size_t)blockIdx.x * C + c] = x[c] / nr;
}
__global__ void k_l2_bwd(float *dinp, const float *dout, const float *out, const float *norm,
                         int C) {
  __shared__ double shm[32];
  size_t r = blockIdx.x;
  const float *y = out + r * C, *dy = dout + r * C;
  int clamped = norm[r] <= 1e-12f;
  double dot = 0.0;
  if (!clamped)
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += (double)y[c] * dy[c];
  float d = (float)block_sum(dot, shm), inv = 1.0f / norm[r];
  for (int c = threadIdx.x; c < C; c += blockDim.x) dinp[r * C + c] += (dy[c] - y[c] * d) * inv;
}
extern "C" void cuda_l2norm_forward(float *out, float *norm, const float *inp, int N, int C) {
  if (N > 0) k_l2_fwd<<<N, BLOCK, 0, g_cuda.stream>>>(out, norm, inp, C);
}
extern "C" void cuda_l2norm_backward(float *dinp, const float *dout, const float *out,
                                     const float *norm, int N, int C) {
  if (N > 0) k_l2_bwd<<<N, BLOCK, 0, g_cuda.stream>>>(dinp, dout, out, norm, C);
}

/* ---- optimizer (twin: cpu/adamw.c) -------------------------------------------------- */

/* Block j sums g² over elements [4096·j, 4096·j + 4096) in float (a fixed
 * tree), writes it as a double; a second one-block pass adds the blocks in
 * order in double. Differs from the CPU only in the order inside a block. */
#define SUMSQ_BLK 4096
__global__ void k_sumsq_blocks(double *part, const float *g, size_t n) {
  __shared__ float shm[32];
  size_t lo = (size_t)blockIdx.x * SUMSQ_BLK, hi = lo + SUMSQ_BLK < n ? lo + SUMSQ_BLK : n;
  float s = 0.0f;
  for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += g[i] * g[i];
  s = block_sum(s, shm);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}
__global__ void k_sum_parts(double *out, const double *part, size_t nparts) {
  if (threadIdx.x == 0 && blockIdx.x == 0) {
    double s = 0.0;
    for (size_t i = 0; i < nparts; i++) s += part[i];
    *out = s;
  }
}
extern "C" double cuda_sumsq(const float *g, size_t n) {
  /* chunks of (CUDA_RED_DOUBLES-1)·4096 elements; chunk sums added in order on the host */
  double total = 0.0;
  const size_t per = (size_t)(CUDA_RED_DOUBLES - 1) * SUMSQ_BLK;
  for (size_t off = 0; off < n; off += per) {
    size_t m = n - off < per ? n - off : per, nb = (m + SUMSQ_BLK - 1) / SUMSQ_BLK;
    k_sumsq_blocks<<<(unsigned)nb, BLOCK, 0, g_cuda.stream>>>(g_cuda.red + 1, g + off, m);
    k_sum_parts<<<1, 32, 0, g_cuda.stream>>>(g_cuda.red, g_cuda.red + 1, nb);
    cudaMemcpyAsync(g_cuda.red_host, g_cuda.red, sizeof(double), cudaMemcpyDeviceToHost,
                    g_cuda.stream);
    if (cudaStreamSynchronize(g_cuda.stream) != cudaSuccess) return NAN;
    total += g_cuda.red_host[0];
  }
  return total;
}

__global__ void k_adamw(float *p, uint16_t *pb, const float *g, float *m, float *v, size_t n,
                        float b1, float b2, float eps, float step, float decay, float bc2_sqrt) {
  FOR_N(i, n) {
    float gi = g[i];
    float mi = m[i] + (gi - m[i]) * (1.0f - b1);
    float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    float pi = p[i] * decay - step * (mi / denom);
    p[i] = pi;
    if (pb) pb[i] = f32_to_bf16(pi);
  }
}
extern "C" void cuda_adamw_update_bf16(float *p, uint16_t *p_bf16, const float *g, float *m,
                                       float *v, size_t n, float lr, float b1, float b2,
                                       float eps, float wd, int t) {
  double bc1 = 1.0 - pow((double)b1, t);
  float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, t));
  float step = (float)((double)lr / bc1);
  float decay = (float)(1.0 - (double)lr * wd);
  LAUNCH(k_adamw, n)(p, p_bf16, g, m, v, n, b1, b2, eps, step, decay, bc2_sqrt);
}
extern "C" void cuda_adamw_update(float *p, const float *g, float *m, float *v, size_t n,
                                  float lr, float b1, float b2, float eps, float wd, int t) {
  cuda_adamw_update_bf16(p, nullptr, g, m, v, n, lr, b1, b2, eps, wd, t);
}

__global__ void k_ema(float *dst, const float *src, size_t n, float m) {
  const float one_m = 1.0f - m;
  FOR_N(i, n) dst[i] = m * dst[i] + one_m * src[i];
}
extern "C" void cuda_ema_update(float *dst, const float *src, size_t n, float m) {
  LAUNCH(k_ema, n)(dst, src, n, m);
}
