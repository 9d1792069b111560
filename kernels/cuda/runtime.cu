/* runtime.cu — the CUDA backend's state: device choice from the node-local
 * rank, one stream, one cuBLAS handle, a reduction scratch; errors turned
 * into foil_err codes. See kernels_cuda.h. */
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

cuda_state g_cuda = {-1, nullptr, nullptr, nullptr, nullptr, CUBLAS_STATUS_SUCCESS, nullptr, 0};
static char g_desc[256] = "cuda (not initialized)";

static int cuda_fail(cudaError_t e, const char *what, foil_err *err) {
  int code = e == cudaErrorMemoryAllocation ? FOIL_ENOMEM
             : (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) ? FOIL_EUNAVAIL
                                                                           : FOIL_EINTERNAL;
  return foil_err_set(err, code, "CUDA %s failed: %s (%s)", what, cudaGetErrorString(e),
                      cudaGetErrorName(e));
}

extern "C" int cuda_device_count(foil_err *err) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cuda_fail(e, "device query", err);
    cudaGetLastError(); /* not sticky: clear it */
    return 0;
  }
  if (n == 0) foil_err_set(err, FOIL_EUNAVAIL, "the CUDA driver reports 0 devices");
  return n;
}

extern "C" int cuda_init(int local_rank, foil_err *err) {
  if (g_cuda.device >= 0) return FOIL_OK;
  int n = cuda_device_count(err);
  if (n <= 0) return err ? err->code : FOIL_EUNAVAIL;
  if (local_rank < 0) local_rank = 0;
  int dev = local_rank % n;
  cudaError_t e = cudaSetDevice(dev);
  if (e != cudaSuccess) return cuda_fail(e, "cudaSetDevice", err);
  e = cudaStreamCreateWithFlags(&g_cuda.stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) return cuda_fail(e, "stream creation", err);
  e = cudaMalloc(&g_cuda.red, CUDA_RED_DOUBLES * sizeof(double));
  if (e == cudaSuccess) e = cudaMallocHost(&g_cuda.red_host, CUDA_RED_DOUBLES * sizeof(double));
  if (e != cudaSuccess) {
    cuda_shutdown();
    return cuda_fail(e, "workspace allocation", err);
  }
  cublasStatus_t s = cublasCreate(&g_cuda.blas);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(g_cuda.blas, g_cuda.stream);
  /* fp32 GEMMs stay fp32 (no TF32): the twins agree to fp32 rounding. */
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(g_cuda.blas, CUBLAS_DEFAULT_MATH);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasSetPointerMode(g_cuda.blas, CUBLAS_POINTER_MODE_HOST);
  if (s != CUBLAS_STATUS_SUCCESS) {
    g_cuda.device = dev;
    cuda_shutdown();
    return foil_err_set(err, FOIL_EINTERNAL, "cuBLAS initialization failed: %s",
                        cublasGetStatusString(s));
  }
  g_cuda.device = dev;
  g_cuda.blas_status = CUBLAS_STATUS_SUCCESS;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
    snprintf(g_desc, sizeof g_desc, "cuda (device %d of %d: %.160s, sm_%d%d, %.0f GiB)", dev, n,
             prop.name, prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30));
  return FOIL_OK;
}

extern "C" void cuda_shutdown(void) {
  if (g_cuda.blas) cublasDestroy(g_cuda.blas);
  if (g_cuda.red) cudaFree(g_cuda.red);
  if (g_cuda.red_host) cudaFreeHost(g_cuda.red_host);
  if (g_cuda.stream) cudaStreamDestroy(g_cuda.stream);
  g_cuda = cuda_state{-1, nullptr, nullptr, nullptr, nullptr, CUBLAS_STATUS_SUCCESS, nullptr, 0};
  snprintf(g_desc, sizeof g_desc, "cuda (not initialized)");
}

extern "C" int cuda_device(void) { return g_cuda.device; }
extern "C" const char *cuda_backend(void) { return g_desc; }
extern "C" void *cuda_stream(void) { return (void *)g_cuda.stream; }

static int blas_check(foil_err *err) {
  if (g_cuda.bad_arg) {
    const char *why = g_cuda.bad_arg;
    g_cuda.bad_arg = nullptr;
    g_cuda.blas_status = CUBLAS_STATUS_SUCCESS;
    return foil_err_set(err, g_cuda.bad_code, "CUDA launcher did nothing: %s", why);
  }
  cublasStatus_t s = g_cuda.blas_status;
  g_cuda.blas_status = CUBLAS_STATUS_SUCCESS;
  if (s == CUBLAS_STATUS_SUCCESS) return FOIL_OK;
  return foil_err_set(err, FOIL_EINTERNAL, "cuBLAS call failed: %s", cublasGetStatusString(s));
}

extern "C" int cuda_check(foil_err *err) {
  if (g_cuda.device < 0)
    return foil_err_set(err, FOIL_EPRECOND, "the CUDA backend is not initialized (cuda_init)");
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_fail(e, "kernel launch", err);
  return blas_check(err);
}

extern "C" int cuda_sync(foil_err *err) {
  if (g_cuda.device < 0)
    return foil_err_set(err, FOIL_EPRECOND, "the CUDA backend is not initialized (cuda_init)");
  cudaError_t e = cudaStreamSynchronize(g_cuda.stream);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_fail(e, "stream", err);
  return blas_check(err);
}

/* The CUDA runtime's current device belongs to each host thread, the
 * backend's state (g_cuda: device, stream) to the process: a thread other
 * than cuda_init's (foil-serve's loader uploading a version) would
 * allocate on device 0 and copy on another device's stream. Called by the
 * entry points other threads use; once per thread, then a compare. */
static int this_thread_device(foil_err *err) {
  static thread_local int dev = -1;
  if (dev == g_cuda.device || g_cuda.device < 0) return FOIL_OK; /* before cuda_init: as the runtime has it */
  cudaError_t e = cudaSetDevice(g_cuda.device);
  if (e != cudaSuccess) return cuda_fail(e, "cudaSetDevice", err);
  dev = g_cuda.device;
  return FOIL_OK;
}

extern "C" int cuda_malloc(void **p, size_t bytes, foil_err *err) {
  *p = nullptr;
  int rc = this_thread_device(err);
  if (rc) return rc;
  cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    *p = nullptr;
    cudaGetLastError();
    return foil_err_set(err, FOIL_ENOMEM, "cudaMalloc of %zu bytes failed: %s", bytes,
                        cudaGetErrorString(e));
  }
  return FOIL_OK;
}

extern "C" void cuda_free(void *p) {
  if (p) cudaFree(p);
}

extern "C" int cuda_upload(void *dst, const void *src, size_t bytes, foil_err *err) {
  int rc = this_thread_device(err);
  if (rc) return rc;
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_cuda.stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(g_cuda.stream);
  return e == cudaSuccess ? FOIL_OK : cuda_fail(e, "upload", err);
}

extern "C" int cuda_download(void *dst, const void *src, size_t bytes, foil_err *err) {
  int rc = this_thread_device(err);
  if (rc) return rc;
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_cuda.stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(g_cuda.stream);
  return e == cudaSuccess ? FOIL_OK : cuda_fail(e, "download", err);
}

extern "C" int cuda_memset0(void *dst, size_t bytes, foil_err *err) {
  cudaError_t e = cudaMemsetAsync(dst, 0, bytes, g_cuda.stream);
  return e == cudaSuccess ? FOIL_OK : cuda_fail(e, "memset", err);
}

extern "C" int cuda_copy(void *dst, const void *src, size_t bytes, foil_err *err) {
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_cuda.stream);
  return e == cudaSuccess ? FOIL_OK : cuda_fail(e, "device copy", err);
}

extern "C" int cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                           size_t height, foil_err *err) {
  if (!width || !height) return FOIL_OK;
  cudaError_t e = cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice,
                                    g_cuda.stream);
  return e == cudaSuccess ? FOIL_OK : cuda_fail(e, "device 2D copy", err);
}

/* The device code's Philox, dropout and bf16 helpers run on the host, for
 * unit.cuda_host (checks them against the CPU kernels without a GPU). */
extern "C" uint32_t cuda_host_philox_word(uint64_t seed, uint64_t stream, uint64_t w) {
  return philox_word(seed, stream, w);
}
extern "C" int cuda_host_dropout_kept(uint64_t seed, uint64_t stream, uint64_t i, float p) {
  return dropout_scale_at(seed, stream, i, dropout_thr(p), 1.0f) != 0.0f;
}
extern "C" uint16_t cuda_host_bf16(float f) { return f32_to_bf16(f); }
