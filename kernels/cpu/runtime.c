/* runtime.c — thread count and backend identity of the CPU kernels.
 *
 * Threading, chosen deliberately: foil links the OpenMP flavour of OpenBLAS.
 * Then sgemm and foil's own `omp parallel` loops draw on ONE libgomp thread
 * pool. With the pthread flavour there are two pools on the same cores, and
 * OpenMP threads spinning after a parallel region starve OpenBLAS's threads
 * (on a 2-core machine that costs ~30%). With one pool, an sgemm issued
 * inside a parallel region runs single-threaded in its caller's thread (the
 * attention kernel relies on that), and one issued outside uses all threads.
 */
#include <omp.h>

#include "kernels/kernels.h"

/* OpenBLAS's own API (declared here to avoid depending on its config
 * header's location). */
void openblas_set_num_threads(int n);
int openblas_get_parallel(void);
char *openblas_get_config(void);

int kernels_set_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return n;
}

int kernels_get_threads(void) { return omp_get_max_threads(); }

const char *kernels_backend(void) {
  /* openblas_get_parallel: 0 sequential, 1 pthreads, 2 OpenMP. */
  switch (openblas_get_parallel()) {
    case 2: return "cpu (OpenBLAS, OpenMP flavour)";
    case 1: return "cpu (OpenBLAS, pthread flavour: expect thread contention)";
    default: return "cpu (OpenBLAS, sequential flavour)";
  }
}
