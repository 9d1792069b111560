/* threads.h — the kernels' thread count on every thread that runs them.
 * Internal to the CPU kernels.
 *
 * omp_set_num_threads sets the calling thread's nthreads ICV only: a
 * thread started later (foil-serve's loader) would run every parallel
 * region, and OpenBLAS's OpenMP flavour every sgemm (it follows the
 * caller's omp_get_max_threads), on all cores. So kernels_set_threads also
 * keeps the count in a process-wide variable, and every kernel that opens
 * a parallel region or calls BLAS/LAPACK starts with kernels_sync_threads:
 * the calling thread's ICV is set to that count when it differs (once per
 * thread, then a load and a compare). Inside a parallel region it does
 * nothing (the region's own team is what runs).
 */
#ifndef FOIL_KERNELS_CPU_THREADS_H
#define FOIL_KERNELS_CPU_THREADS_H

#include <omp.h>
#include <stdatomic.h>

/* kernels_set_threads's count; 0 until it is called (then the OpenMP
 * defaults, OMP_NUM_THREADS or all cores, stand). Defined in runtime.c. */
extern atomic_int kernels_nthreads_;

static inline void kernels_sync_threads(void) {
  int n = atomic_load_explicit(&kernels_nthreads_, memory_order_relaxed);
  if (n > 0 && omp_get_max_threads() != n && !omp_in_parallel()) omp_set_num_threads(n);
}

#endif
