/* linalg.c — dense symmetric eigen-decomposition (kernels.h "linear
 * algebra"), through LAPACK's dsyevd as OpenBLAS ships it (Debian's
 * libopenblas exports the Fortran LAPACK symbols; no LAPACKE header is
 * needed). Double precision: PCA of a few thousand embedding rows wants
 * the small eigenvalues' share of the variance right. */
#include <stdlib.h>

#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

/* Fortran LAPACK: column-major, arguments by reference. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork, int *info);

int symeig(double *a, double *w, int n) {
  kernels_sync_threads();
  if (n <= 0) return 0;
  /* a is symmetric: its row-major and column-major readings agree; LAPACK
   * writes eigenvector j as column-major column j, i.e. the contiguous
   * a[j·n ..], which is row j in row-major terms. Workspace query first. */
  int lwork = -1, liwork = -1, info = 0, iw = 0;
  double wq = 0;
  dsyevd_("V", "U", &n, a, &n, w, &wq, &lwork, &iw, &liwork, &info);
  if (info != 0) return info;
  lwork = (int)wq + 1;
  liwork = iw;
  double *work = malloc((size_t)lwork * sizeof *work);
  int *iwork = malloc((size_t)liwork * sizeof *iwork);
  if (!work || !iwork) {
    free(work);
    free(iwork);
    return -1;
  }
  dsyevd_("V", "U", &n, a, &n, w, work, &lwork, iwork, &liwork, &info);
  free(work);
  free(iwork);
  return info;
}
