/* attention.cu — multi-head self-attention over packed qkv (twin:
 * cpu/attention.c) and the KV-cache step (twin: attention_cache_forward).
 *
 * A straightforward, correct version first: one block per query row
 * (b, h, i) computes the row's scores, masked softmax (block reductions in a
 * fixed tree), dropout with the CPU's mask bits, and the weighted sum of V
 * (one thread per head column). The backward runs a row pass (dP, dS, dQ)
 * and a key pass (dK, dV), each output summed by one thread in order: no
 * atomics, same bits every run. It materializes att [B,NH,T,T] as the CPU
 * contract requires; a fused flash-style kernel that keeps scores on chip
 * is the next step for speed. Shared memory: (T + hs) floats per block
 * (T up to about 12k). Cost: 4·B·NH·T·T·hs flops forward, 8·… backward. */
#include <math.h>

#include "kernels/cuda/common.cuh"

#define ABLOCK 128

struct att_dims {
  int T, C, NH, hs;
  float scale;
};

__global__ void k_att_fwd(float *out, float *att, const float *qkv, const uint8_t *mask,
                          att_dims d, int causal, float p_drop, uint32_t thr, float ks,
                          uint64_t seed, uint64_t stream, uint64_t offset) {
  extern __shared__ float sh[]; /* row [T], q [hs] */
  __shared__ float red[32];
  const int T = d.T, C = d.C, hs = d.hs, C3 = 3 * C;
  const size_t bh = blockIdx.x / T;
  const int i = blockIdx.x % T, b = (int)(bh / d.NH), h = (int)(bh % d.NH);
  const float *base = qkv + (size_t)b * T * C3 + h * hs;
  float *row = sh, *q = sh + T;
  for (int e = threadIdx.x; e < hs; e += blockDim.x) q[e] = base[(size_t)i * C3 + e];
  __syncthreads();
  const uint8_t *m = mask + (size_t)b * T;
  const int jmax = causal ? i + 1 : T;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    float s = -INFINITY;
    if (j < jmax && m[j]) {
      const float *k = base + (size_t)j * C3 + C;
      float dot = 0.0f;
      for (int e = 0; e < hs; e++) dot += q[e] * k[e];
      s = d.scale * dot;
    }
    row[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = block_max(mx, red);
  float *arow = att + (bh * T + i) * T;
  float *o = out + ((size_t)b * T + i) * C + h * hs;
  if (mx == -INFINITY) { /* no visible key: zeros */
    for (int j = threadIdx.x; j < T; j += blockDim.x) arow[j] = 0.0f;
    for (int e = threadIdx.x; e < hs; e += blockDim.x) o[e] = 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    float e = row[j] == -INFINITY ? 0.0f : expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  float inv = 1.0f / block_sum(sum, red);
  const uint64_t moff = offset + (bh * T + i) * (uint64_t)T;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    float p = row[j] * inv;
    arow[j] = p;
    row[j] = p_drop > 0.0f ? p * dropout_scale_at(seed, stream, moff + j, thr, ks) : p;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < hs; e += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < jmax; j++) acc += row[j] * base[(size_t)j * C3 + 2 * C + e];
    o[e] = acc;
  }
}

/* Shared memory above the default 48 KB (the kernel's static arrays plus
 * `bytes` of dynamic) must be opted into per kernel; false when the device
 * cannot give that much. */
static bool smem_fits(const void *kernel, size_t bytes) {
  cudaFuncAttributes fa;
  size_t stat = cudaFuncGetAttributes(&fa, kernel) == cudaSuccess ? fa.sharedSizeBytes : 0;
  if (bytes + stat <= 48 * 1024) return true;
  int dev = g_cuda.device < 0 ? 0 : g_cuda.device, max_optin = 0;
  cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (bytes + stat > (size_t)max_optin) return false;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) ==
         cudaSuccess;
}

extern "C" void cuda_attention_forward(float *out, float *att, float *scratch, const float *qkv,
                                       const uint8_t *mask, int B, int T, int C, int NH,
                                       int causal, float p_drop, uint64_t seed, uint64_t stream,
                                       uint64_t offset) {
  (void)scratch; /* the dropped row lives in shared memory */
  if (B <= 0 || T <= 0) return;
  att_dims d = {T, C, NH, C / NH, 1.0f / sqrtf((float)(C / NH))};
  size_t shm = (size_t)(T + d.hs) * sizeof(float);
  if (!smem_fits((const void *)k_att_fwd, shm)) return bad_arg("attention: T too large for shared memory");
  float ks = p_drop > 0.0f ? 1.0f / (1.0f - p_drop) : 1.0f;
  k_att_fwd<<<(unsigned)((size_t)B * NH * T), ABLOCK, shm, g_cuda.stream>>>(
      out, att, qkv, mask, d, causal, p_drop, p_drop > 0.0f ? dropout_thr(p_drop) : 0, ks, seed,
      stream, offset);
}

/* Row pass: for query i of (b,h): dP_j = drop(dO_i·v_j), dS_j = P_ij·(dP_j −
 * Σ_l P_il dP_l)·scale into scratch, and dq_i += Σ_j dS_j k_j. */
__global__ void k_att_bwd_rows(float *dqkv, float *dS, const float *dout, const float *qkv,
                               const float *att, att_dims d, float p_drop, uint32_t thr,
                               float ks, uint64_t seed, uint64_t stream, uint64_t offset) {
  extern __shared__ float sh[]; /* ds [T], dO [hs] */
  __shared__ float red[32];
  const int T = d.T, C = d.C, hs = d.hs, C3 = 3 * C;
  const size_t bh = blockIdx.x / T;
  const int i = blockIdx.x % T, b = (int)(bh / d.NH), h = (int)(bh % d.NH);
  const float *base = qkv + (size_t)b * T * C3 + h * hs;
  const float *P = att + (bh * T + i) * T;
  float *row = sh, *go = sh + T;
  for (int e = threadIdx.x; e < hs; e += blockDim.x) go[e] = dout[((size_t)b * T + i) * C + h * hs + e];
  __syncthreads();
  const uint64_t moff = offset + (bh * T + i) * (uint64_t)T;
  float acc = 0.0f;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    const float *v = base + (size_t)j * C3 + 2 * C;
    float dp = 0.0f;
    for (int e = 0; e < hs; e++) dp += go[e] * v[e];
    if (p_drop > 0.0f) dp *= dropout_scale_at(seed, stream, moff + j, thr, ks);
    row[j] = dp;
    acc += P[j] * dp;
  }
  float sum = block_sum(acc, red);
  float *dsrow = dS + (bh * T + i) * T;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    float s = P[j] * (row[j] - sum) * d.scale;
    row[j] = s;
    dsrow[j] = s;
  }
  __syncthreads();
  float *dq = dqkv + ((size_t)b * T + i) * C3 + h * hs;
  for (int e = threadIdx.x; e < hs; e += blockDim.x) {
    float a = 0.0f;
    for (int j = 0; j < T; j++) a += row[j] * base[(size_t)j * C3 + C + e];
    dq[e] += a;
  }
}

/* Key pass: for key j of (b,h): dk_j += Σ_i dS_ij q_i, dv_j += Σ_i drop(P_ij) dO_i. */
__global__ void k_att_bwd_keys(float *dqkv, const float *dS, const float *dout, const float *qkv,
                               const float *att, att_dims d, float p_drop, uint32_t thr,
                               float ks, uint64_t seed, uint64_t stream, uint64_t offset) {
  extern __shared__ float sh[]; /* ds column [T], dropped P column [T] */
  const int T = d.T, C = d.C, hs = d.hs, C3 = 3 * C;
  const size_t bh = blockIdx.x / T;
  const int j = blockIdx.x % T, b = (int)(bh / d.NH), h = (int)(bh % d.NH);
  float *dsc = sh, *pc = sh + T;
  for (int i = threadIdx.x; i < T; i += blockDim.x) {
    size_t at = (bh * T + i) * T + j;
    dsc[i] = dS[at];
    float p = att[at];
    if (p_drop > 0.0f) p *= dropout_scale_at(seed, stream, offset + at, thr, ks);
    pc[i] = p;
  }
  __syncthreads();
  const float *base = qkv + (size_t)b * T * C3 + h * hs;
  float *dk = dqkv + ((size_t)b * T + j) * C3 + C + h * hs, *dv = dk + C;
  const float *go = dout + (size_t)b * T * C + h * hs;
  for (int e = threadIdx.x; e < hs; e += blockDim.x) {
    float ak = 0.0f, av = 0.0f;
    for (int i = 0; i < T; i++) {
      ak += dsc[i] * base[(size_t)i * C3 + e];
      av += pc[i] * go[(size_t)i * C + e];
    }
    dk[e] += ak;
    dv[e] += av;
  }
}

extern "C" void cuda_attention_backward(float *dqkv, float *scratch, const float *dout,
                                        const float *qkv, const float *att, int B, int T, int C,
                                        int NH, float p_drop, uint64_t seed, uint64_t stream,
                                        uint64_t offset) {
  if (B <= 0 || T <= 0) return;
  att_dims d = {T, C, NH, C / NH, 1.0f / sqrtf((float)(C / NH))};
  uint32_t thr = p_drop > 0.0f ? dropout_thr(p_drop) : 0;
  float ks = p_drop > 0.0f ? 1.0f / (1.0f - p_drop) : 1.0f;
  unsigned rows = (unsigned)((size_t)B * NH * T);
  if (!smem_fits((const void *)k_att_bwd_rows, (size_t)(T + d.hs) * sizeof(float)) ||
      !smem_fits((const void *)k_att_bwd_keys, (size_t)2 * T * sizeof(float)))
    return bad_arg("attention: T too large for shared memory");
  k_att_bwd_rows<<<rows, ABLOCK, (size_t)(T + d.hs) * sizeof(float), g_cuda.stream>>>(
      dqkv, scratch, dout, qkv, att, d, p_drop, thr, ks, seed, stream, offset);
  k_att_bwd_keys<<<rows, ABLOCK, (size_t)2 * T * sizeof(float), g_cuda.stream>>>(
      dqkv, scratch, dout, qkv, att, d, p_drop, thr, ks, seed, stream, offset);
}

/* KV-cache step: one block per (group, head); the R queries one after the
 * other; scores in scratch (n·NH·(max_len+1) floats, as the CPU). */
__global__ void k_att_cache(float *out, float *scratch, const float *qkv, const float *kcache,
                            const float *vcache, const int *len, const int *rows_idx, int R,
                            int max_len, int C, int NH) {
  __shared__ float red[32];
  const int gh = blockIdx.x, g = gh / NH, h = gh % NH, hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
  const int row = rows_idx ? rows_idx[g] : g, L = len[row];
  const float *K = kcache + (size_t)row * max_len * C + h * hs;
  const float *V = vcache + (size_t)row * max_len * C + h * hs;
  float *s = scratch + (size_t)gh * (max_len + 1);
  for (int r = 0; r < R; r++) {
    const float *q = qkv + ((size_t)g * R + r) * C3 + h * hs;
    const float *kn = q + C, *vn = q + 2 * C;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= L; j += blockDim.x) {
      const float *k = j < L ? K + (size_t)j * C : kn;
      float dot = 0.0f;
      for (int e = 0; e < hs; e++) dot += q[e] * k[e];
      s[j] = dot * scale;
      mx = fmaxf(mx, s[j]);
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j <= L; j += blockDim.x) {
      s[j] = expf(s[j] - mx);
      sum += s[j];
    }
    float inv = 1.0f / block_sum(sum, red); /* its __syncthreads publishes s[] */
    float *o = out + ((size_t)g * R + r) * C + h * hs;
    for (int e = threadIdx.x; e < hs; e += blockDim.x) {
      float acc = 0.0f;
      for (int j = 0; j <= L; j++) acc += s[j] * inv * (j < L ? V[(size_t)j * C + e] : vn[e]);
      o[e] = acc;
    }
    __syncthreads(); /* s[] is rewritten by the next query */
  }
}

extern "C" void cuda_attention_cache_forward(float *out, float *scratch, const float *qkv,
                                             const float *kcache, const float *vcache,
                                             const int *len, const int *rows_idx, int n, int R,
                                             int max_len, int C, int NH) {
  if (n <= 0 || R <= 0) return;
  k_att_cache<<<(unsigned)(n * NH), ABLOCK, 0, g_cuda.stream>>>(out, scratch, qkv, kcache, vcache,
                                                                len, rows_idx, R, max_len, C, NH);
}
