/* devmem.c — buffers on a backend (see devmem.h). */
#define _DEFAULT_SOURCE /* madvise */
#include "model/devmem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int devmem_ready(int backend, const char *object, foil_err *err) {
  if (backend != DEVMEM_CPU && backend != DEVMEM_CUDA)
    return foil_err_set(err, FOIL_EINVAL, "%s: unknown backend %d", object, backend);
  if (backend == DEVMEM_CPU) return FOIL_OK;
#ifdef FOIL_HAVE_CUDA
  if (cuda_device() < 0)
    return foil_err_set(err, FOIL_EPRECOND, "a CUDA %s needs the CUDA backend initialized (cuda_init)", object);
  return FOIL_OK;
#else
  return foil_err_set(err, FOIL_EUNAVAIL, "a CUDA %s: this foil was built without CUDA (FOIL_CUDA=OFF or no nvcc)",
                      object);
#endif
}

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
void devmem_lock(void) { pthread_mutex_lock(&g_lock); }
void devmem_unlock(void) { pthread_mutex_unlock(&g_lock); }

const char *devmem_where(int backend) { return backend == DEVMEM_CUDA ? "device" : "host"; }

void *devmem_alloc(int backend, size_t bytes) {
#ifdef FOIL_HAVE_CUDA
  if (backend == DEVMEM_CUDA) {
    void *p = NULL;
    if (cuda_malloc(&p, bytes, NULL) || cuda_memset0(p, bytes ? bytes : 1, NULL)) {
      cuda_free(p);
      return NULL;
    }
    return p;
  }
#endif
  (void)backend;
  /* calloc'ed with 64 bytes to spare (calloc leaves a large buffer's pages
   * untouched until used), moved up by 1..64 bytes to the next boundary;
   * the byte before it keeps the shift for devmem_free */
  unsigned char *raw = bytes <= SIZE_MAX - 64 ? calloc(bytes + 64, 1) : NULL;
  if (!raw) return NULL;
  const size_t shift = 64 - (uintptr_t)raw % 64;
  raw[shift - 1] = (unsigned char)shift;
  return raw + shift;
}

void *devmem_alloc_whole(int backend, size_t bytes) {
  unsigned char *p = devmem_alloc(backend, bytes);
#ifdef MADV_HUGEPAGE
  const uintptr_t huge = (uintptr_t)2 << 20;
  if (p && backend == DEVMEM_CPU) {
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), b = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (a < b) (void)madvise((void *)a, b - a, MADV_HUGEPAGE); /* advice: a refusal changes nothing */
  }
#endif
  return p;
}

void devmem_free(int backend, void *p) {
#ifdef FOIL_HAVE_CUDA
  if (backend == DEVMEM_CUDA) {
    cuda_free(p);
    return;
  }
#endif
  (void)backend;
  if (!p) return;
  unsigned char *q = p;
  free(q - q[-1]);
}

void devmem_zero(int backend, void *p, size_t bytes) {
#ifdef FOIL_HAVE_CUDA
  if (backend == DEVMEM_CUDA) {
    cuda_memset0(p, bytes, NULL);
    return;
  }
#endif
  (void)backend;
  memset(p, 0, bytes);
}

void devmem_copy(int backend, void *dst, const void *src, size_t bytes) {
#ifdef FOIL_HAVE_CUDA
  if (backend == DEVMEM_CUDA) {
    cuda_copy(dst, src, bytes, NULL);
    return;
  }
#endif
  (void)backend;
  memcpy(dst, src, bytes);
}

void devmem_copy2d(int backend, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                   size_t height) {
#ifdef FOIL_HAVE_CUDA
  if (backend == DEVMEM_CUDA) {
    cuda_copy2d(dst, dpitch, src, spitch, width, height, NULL);
    return;
  }
#endif
  (void)backend;
  for (size_t i = 0; i < height; i++) memcpy((char *)dst + i * dpitch, (const char *)src + i * spitch, width);
}

int devmem_put(int backend, void *dst, const void *host, size_t bytes, foil_err *err) {
#ifdef FOIL_HAVE_CUDA
  if (backend == DEVMEM_CUDA) return cuda_upload(dst, host, bytes, err);
#endif
  (void)backend, (void)err;
  memcpy(dst, host, bytes);
  return FOIL_OK;
}

int devmem_get(int backend, void *host, const void *src, size_t bytes, foil_err *err) {
#ifdef FOIL_HAVE_CUDA
  if (backend == DEVMEM_CUDA) return cuda_download(host, src, bytes, err);
#endif
  (void)backend, (void)err;
  memcpy(host, src, bytes);
  return FOIL_OK;
}

int devmem_check(int backend, foil_err *err) {
#ifdef FOIL_HAVE_CUDA
  if (backend == DEVMEM_CUDA) return cuda_check(err);
#endif
  (void)backend, (void)err;
  return FOIL_OK;
}

int devmem_transfer(int dst_backend, void *dst, int src_backend, const void *src, size_t bytes, foil_err *err) {
  if (src_backend == dst_backend) {
    devmem_copy(dst_backend, dst, src, bytes);
    return FOIL_OK;
  }
  return src_backend == DEVMEM_CPU ? devmem_put(dst_backend, dst, src, bytes, err)
                                   : devmem_get(src_backend, dst, src, bytes, err);
}
