/* blas.cu — the linear layer through cuBLAS (twin: cpu/matmul.c).
 *
 * Row-major [N,C] buffers are column-major [C,N] to cuBLAS, so
 *   out[N,OC] = inp[N,C] @ W[OC,C]^T   is  out^T = W^T(op T) · inp^T,
 *   dinp[N,C] += dout @ W              is  dinp^T += W^T · dout^T,
 *   dW[OC,C]  += dout^T @ inp          is  dW^T += inp^T · dout (op T).
 * fp32: cublasSgemm without TF32 (runtime.cu sets CUBLAS_DEFAULT_MATH).
 * bf16: cublasGemmEx with bf16 operands, CUBLAS_COMPUTE_32F (fp32
 * accumulate, fp32 output) on the tensor cores. Bias add and the bias
 * gradient are small kernels; db is summed per column by one thread, rows
 * in order (no atomics). Cost: 2·N·C·OC flops forward, 4·N·C·OC backward. */
#include "kernels/cuda/common.cuh"

extern "C" void foil_cuda_bias_gelu(float *out, float *pre, const float *b, int N, int OC);

__global__ void k_add_bias(float *out, const float *b, int OC, size_t n) {
  FOR_N(i, n) out[i] += b[i % OC];
}
__global__ void k_colsum(float *db, const float *dout, int N, int OC) {
  int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float s = 0.0f;
  for (int r = 0; r < N; r++) s += dout[(size_t)r * OC + o];
  db[o] += s;
}

static void add_bias(float *out, const float *b, int N, int OC) {
  size_t n = (size_t)N * OC;
  if (b && n) k_add_bias<<<grid_for(n, 256), 256, 0, g_cuda.stream>>>(out, b, OC, n);
}
static void bias_grad(float *db, const float *dout, int N, int OC) {
  if (db && OC > 0) k_colsum<<<(OC + 127) / 128, 128, 0, g_cuda.stream>>>(db, dout, N, OC);
}

extern "C" void cuda_matmul_forward(float *out, const float *inp, const float *W, const float *b,
                                    int N, int C, int OC) {
  const float one = 1.0f, zero = 0.0f;
  blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, W, C, inp, C,
                        &zero, out, OC));
  add_bias(out, b, N, OC);
}

extern "C" void cuda_matmul_backward(float *dinp, float *dW, float *db, const float *dout,
                                     const float *inp, const float *W, int N, int C, int OC) {
  const float one = 1.0f;
  if (dinp)
    blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, W, C, dout, OC,
                          &one, dinp, C));
  if (dW)
    blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout,
                          OC, &one, dW, C));
  bias_grad(db, dout, N, OC);
}

extern "C" void cuda_matmul_gelu_forward(float *out, float *pre, const float *inp, const float *W,
                                         const float *b, int N, int C, int OC) {
  const float one = 1.0f, zero = 0.0f;
  blas_note(cublasSgemm(g_cuda.blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, W, C, inp, C,
                        &zero, pre, OC));
  foil_cuda_bias_gelu(out, pre, b, N, OC);
}

static cublasStatus_t gemm_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                const uint16_t *A, int lda, const uint16_t *B, int ldb,
                                float beta, float *Cm, int ldc) {
  const float one = 1.0f;
  return cublasGemmEx(g_cuda.blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, B, CUDA_R_16BF,
                      ldb, &beta, Cm, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

extern "C" void cuda_matmul_forward_bf16(float *out, const uint16_t *inp, const uint16_t *W,
                                         const float *b, int N, int C, int OC) {
  blas_note(gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, W, C, inp, C, 0.0f, out, OC));
  add_bias(out, b, N, OC);
}

extern "C" void cuda_matmul_backward_bf16(float *dinp, float *dW, float *db,
                                          const uint16_t *dout, const float *dout_f32,
                                          const uint16_t *inp, const uint16_t *W, int N, int C,
                                          int OC) {
  if (dinp) blas_note(gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, W, C, dout, OC, 1.0f, dinp, C));
  if (dW) blas_note(gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, C, dout, OC, 1.0f, dW, C));
  if (db && dout_f32) bias_grad(db, dout_f32, N, OC);
}

extern "C" void cuda_matmul_gelu_forward_bf16(float *out, float *pre, const uint16_t *inp,
                                              const uint16_t *W, const float *b, int N, int C,
                                              int OC) {
  blas_note(gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, W, C, inp, C, 0.0f, pre, OC));
  foil_cuda_bias_gelu(out, pre, b, N, OC);
}
