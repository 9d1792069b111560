/* runtime.c — thread count and backend identity of the CPU kernels.
 *
 * Threading, chosen deliberately: foil links the OpenMP flavour of OpenBLAS.
 * Then sgemm and foil's own `omp parallel` loops draw on ONE libgomp thread
 * pool. With the pthread flavour there are two pools on the same cores, and
 * OpenMP threads spinning after a parallel region starve OpenBLAS's threads
 * (on a 2-core machine that costs ~30%). With one pool, an sgemm issued
 * inside a parallel region runs single-threaded in its caller's thread (the
 * attention kernel relies on that), and one issued outside uses all threads.
 *
 * The count is process-wide: kernels_set_threads stores it, and each
 * kernel applies it to the thread that calls it (threads.h), because
 * OpenMP's own setting belongs to the calling thread only.
 */
#include <omp.h>
#include <stdatomic.h>

#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

atomic_int kernels_nthreads_;

/* OpenBLAS's own API (declared here to avoid depending on its config
 * header's location). */
void openblas_set_num_threads(int n);
int openblas_get_parallel(void);
char *openblas_get_config(void);

int kernels_set_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  atomic_store_explicit(&kernels_nthreads_, n, memory_order_relaxed);
  omp_set_num_threads(n);      /* this thread now; the others at their next kernel (threads.h) */
  openblas_set_num_threads(n); /* process-wide (the pthread flavour's only setting) */
  return n;
}

int kernels_get_threads(void) {
  int n = atomic_load_explicit(&kernels_nthreads_, memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

const char *kernels_backend(void) {
  /* openblas_get_parallel: 0 sequential, 1 pthreads, 2 OpenMP. */
  switch (openblas_get_parallel()) {
    case 2: return "cpu (OpenBLAS, OpenMP flavour)";
    case 1: return "cpu (OpenBLAS, pthread flavour: expect thread contention)";
    default: return "cpu (OpenBLAS, sequential flavour)";
  }
}

const char *kernels_backend_warning(void) {
  if (openblas_get_parallel() == 2) return NULL;
  return "OpenBLAS is not its OpenMP flavour here (openblas_get_parallel() != 2): its threads and the "
         "kernels' OpenMP threads contend for the cores (~30% slower on 2 cores); the build's RUNPATH "
         "picks .../openblas-openmp, a copied binary or LD_LIBRARY_PATH may not";
}
