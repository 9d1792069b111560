/* common.cuh — what the CUDA kernels share: the backend state (device,
 * stream, cuBLAS handle, workspace; owned by runtime.cu), launch helpers,
 * block reductions in a fixed tree, and Philox4x32-10 with the CPU's
 * constants and word order (kernels/cpu/philox.h) so dropout masks are the
 * CPU's bits. Internal to kernels/cuda. */
#ifndef FOIL_KERNELS_CUDA_COMMON_CUH
#define FOIL_KERNELS_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda/kernels_cuda.h"
extern "C" {
#include "kernels/kernels.h" /* enums (POOL_*) */
}

struct cuda_state {
  int device;              /* -1: not initialized */
  cudaStream_t stream;
  cublasHandle_t blas;
  double *red;             /* device reduction scratch, CUDA_RED_DOUBLES */
  double *red_host;        /* pinned mirror for results read back */
  cublasStatus_t blas_status; /* first cuBLAS failure since the last check */
  const char *bad_arg;        /* first refused launch since the last check */
  int bad_code;               /* its foil_err code */
};
enum { CUDA_RED_DOUBLES = 1 << 16 };
extern cuda_state g_cuda;

static inline void blas_note(cublasStatus_t s) {
  if (s != CUBLAS_STATUS_SUCCESS && g_cuda.blas_status == CUBLAS_STATUS_SUCCESS)
    g_cuda.blas_status = s;
}

/* A launcher that refuses its arguments (or cannot get memory) launches
 * nothing and says why at the next cuda_check / cuda_sync (FOIL_EINVAL,
 * FOIL_ENOMEM). */
static inline void refuse(int code, const char *why) {
  if (!g_cuda.bad_arg) {
    g_cuda.bad_arg = why;
    g_cuda.bad_code = code;
  }
}
static inline void bad_arg(const char *why) { refuse(FOIL_EINVAL, why); }

static inline unsigned grid_for(size_t n, int block) {
  size_t g = (n + (size_t)block - 1) / (size_t)block;
  return (unsigned)(g < 65535u * 64u ? (g ? g : 1) : 65535u * 64u);
}

/* Grid-stride loop over [0, n). */
#define FOR_N(i, n) \
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
       i += (size_t)gridDim.x * blockDim.x)

/* Sum over the block in a fixed tree (warp shuffles, then warp 0 over the
 * warps' sums): the same bits on every run for a fixed blockDim. All
 * threads get the result. shm: 32 elements. */
template <typename T>
__device__ inline T block_sum(T v, T *shm) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  /* warp 0 only: the others would read shm[0] while thread 0 writes it */
  v = warp == 0 && lane < nw ? shm[lane] : (T)0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x == 0) shm[0] = v;
  __syncthreads();
  v = shm[0];
  __syncthreads();
  return v;
}

__device__ inline float block_max(float v, float *shm) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  v = warp == 0 && lane < nw ? shm[lane] : -INFINITY;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x == 0) shm[0] = v;
  __syncthreads();
  v = shm[0];
  __syncthreads();
  return v;
}

/* (score, index) pairs in the top-k order: higher score first, equal
 * scores rank the lower index first; index -1 is "none" and ranks last. */
struct best_t {
  float s;
  long long i;
};
__device__ inline bool better(best_t a, best_t b) {
  if (a.i < 0) return false;
  if (b.i < 0) return true;
  return a.s > b.s || (a.s == b.s && a.i < b.i);
}
/* The best pair of the block (all threads get it). shm: 32 pairs. */
__device__ inline best_t block_best(best_t v, best_t *shm) {
  for (int o = 16; o > 0; o >>= 1) {
    best_t w;
    w.s = __shfl_xor_sync(0xffffffffu, v.s, o);
    w.i = __shfl_xor_sync(0xffffffffu, v.i, o);
    if (better(w, v)) v = w;
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < nw ? shm[lane] : best_t{-INFINITY, -1};
    for (int o = 16; o > 0; o >>= 1) {
      best_t w;
      w.s = __shfl_xor_sync(0xffffffffu, v.s, o);
      w.i = __shfl_xor_sync(0xffffffffu, v.i, o);
      if (better(w, v)) v = w;
    }
    if (lane == 0) shm[0] = v;
  }
  __syncthreads();
  v = shm[0];
  __syncthreads();
  return v;
}

/* Philox4x32-10, word `w` of the (seed, stream) sequence: block w/4, word
 * w%4 — kernels/cpu/philox.h's block_at. Host and device: the host copy is
 * checked against the CPU's rng_u32 by unit.cuda_host (no GPU needed). */
__host__ __device__ inline uint32_t mulhi32(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
  return __umulhi(a, b);
#else
  return (uint32_t)(((uint64_t)a * b) >> 32);
#endif
}
__host__ __device__ inline uint32_t philox_word(uint64_t seed, uint64_t stream, uint64_t w) {
  uint64_t block = w >> 2;
  uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = (uint32_t)stream,
           c3 = (uint32_t)(stream >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    uint32_t hi0 = mulhi32(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    uint32_t hi1 = mulhi32(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  switch (w & 3) {
    case 0: return c0;
    case 1: return c1;
    case 2: return c2;
    default: return c3;
  }
}

/* Dropout's scale for mask element i: 1/(1-p) when kept, else 0. Element i
 * takes half i%2 (low first) of word i/2, kept when >= ceil(p·65536). */
__host__ __device__ inline float dropout_scale_at(uint64_t seed, uint64_t stream, uint64_t i,
                                                  uint32_t thr, float keep_scale) {
  uint32_t w = philox_word(seed, stream, i >> 1);
  uint32_t h = (i & 1) ? w >> 16 : w & 0xFFFFu;
  return h >= thr ? keep_scale : 0.0f;
}

/* bf16 bits of f, round to nearest even (NaN stays a quiet NaN). */
__host__ __device__ inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static inline uint32_t dropout_thr(float p) { return (uint32_t)ceil((double)p * 65536.0); }

#endif
