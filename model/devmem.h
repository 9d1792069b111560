/* devmem.h — buffers on a backend, for the model objects that run on the
 * CPU or on this process's CUDA backend (encoder, optim, loss, moco) and
 * the jobs that feed them.
 *
 * A backend is DEVMEM_CPU (host memory, plain libc calls) or DEVMEM_CUDA
 * (device memory of kernels/cuda/kernels_cuda.h's backend, which the
 * caller has brought up with cuda_init or comm_use_gpu). Every function
 * takes the backend and does one or the other; in a build without CUDA the
 * CUDA side is absent and devmem_ready refuses it, so callers check once at
 * creation and never reach it.
 *
 * DEVMEM_KERN(backend, fn, args...) calls kernels.h's fn on the CPU and its
 * cuda_fn twin (same arguments) on CUDA: the model's objects are one source
 * for both backends, the same calls in the same order.
 *
 * On CUDA, zero and copy are queued on the backend's stream (in order with
 * the kernels; a failure shows at the next devmem_check or synchronizing
 * call), put and get are synchronous. Costs are the byte counts. */
#ifndef FOIL_MODEL_DEVMEM_H
#define FOIL_MODEL_DEVMEM_H

#include <stddef.h>

#include "common/err.h"
#include "kernels/kernels.h"
#ifdef FOIL_HAVE_CUDA
#include "kernels/cuda/kernels_cuda.h"
#define DEVMEM_KERN(backend, fn, ...) ((backend) == DEVMEM_CUDA ? cuda_##fn(__VA_ARGS__) : fn(__VA_ARGS__))
#else
#define DEVMEM_KERN(backend, fn, ...) ((void)(backend), fn(__VA_ARGS__))
#endif

enum { DEVMEM_CPU = 0, DEVMEM_CUDA = 1 };

/* FOIL_OK when buffers can live on backend now; else FOIL_EINVAL (unknown
 * backend), FOIL_EUNAVAIL (built without CUDA) or FOIL_EPRECOND (CUDA not
 * initialized), the message naming the object ("encoder": "a CUDA encoder
 * needs ..."). */
int devmem_ready(int backend, const char *object, foil_err *err);
/* "device" or "host": where backend's buffers are, for messages */
const char *devmem_where(int backend);

/* bytes zeroed on the backend (at least 1), NULL when out of memory.
 * Host buffers start on a 64-byte boundary like the device's (a cache
 * line: a CPU kernel's vector loads of an aligned row never straddle two
 * lines; with rows 16 bytes off, the few-row linear layer took up to 1.3x
 * as long on this project's CPUs): free them with devmem_free only. */
void *devmem_alloc(int backend, size_t bytes);
/* devmem_alloc for a buffer every pass reads or writes whole: weights,
 * their gradients, the optimizer's moments. On the host it also asks the
 * kernel for 2 MB pages over the buffer's whole 2 MB stretches
 * (madvise(MADV_HUGEPAGE), before anything touches it; honoured where
 * transparent huge pages are "always" or "madvise", ignored elsewhere):
 * streaming 4 KB pages costs a TLB miss, and in a VM a two-level page walk,
 * every 4 KB. Measured on this project's CPU VMs: the 12 linear layers of
 * GPT-2 small at 16 rows 22.1 -> 18.9 ms per pass, its LM head at 8 rows
 * 7.0 -> 5.8 ms.
 * Not for buffers used in part (a KV cache sized for max_len): a 2 MB
 * page is resident once one byte of it is touched. */
void *devmem_alloc_whole(int backend, size_t bytes);
void devmem_free(int backend, void *p); /* NULL is fine */

/* Buffers carved from one allocation, each on a 64-byte boundary (its
 * size rounded up to 16 floats). One list of takes both sizes the
 * allocation (base NULL: takes return NULL and only count) and hands out
 * the pieces, so the size cannot drift from the list. */
typedef struct {
  float *base;
  size_t used; /* floats */
} devmem_carve;
static inline float *devmem_take(devmem_carve *c, size_t n) {
  float *p = c->base ? c->base + c->used : NULL;
  c->used += (n + 15) & ~(size_t)15;
  return p;
}

void devmem_zero(int backend, void *p, size_t bytes);
/* within the backend's memory (src and dst do not overlap) */
void devmem_copy(int backend, void *dst, const void *src, size_t bytes);
/* height rows of width bytes: row i from src + i·spitch to dst + i·dpitch
 * (within the backend's memory; one call on CUDA, not height) */
void devmem_copy2d(int backend, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                   size_t height);
/* bytes from a buffer on src_backend to one on dst_backend: a copy within
 * one backend, else put or get (synchronous) */
int devmem_transfer(int dst_backend, void *dst, int src_backend, const void *src, size_t bytes, foil_err *err);
/* host memory into the backend's buffer, and back */
int devmem_put(int backend, void *dst, const void *host, size_t bytes, foil_err *err);
int devmem_get(int backend, void *host, const void *src, size_t bytes, foil_err *err);
/* The CUDA backend is driven by one host thread at a time. Code whose
 * device work may run on several threads of a process (foil-serve: the
 * loader builds a version while the query loop searches and encodes the
 * live one) holds this one process-wide lock around each piece of it.
 * Not recursive. */
void devmem_lock(void);
void devmem_unlock(void);
/* the backend's verdict on the work queued since the last check (CUDA:
 * launch and cuBLAS errors, without waiting); FOIL_OK on the CPU */
int devmem_check(int backend, foil_err *err);

#endif
