/* blas_threads.c: revl_blas_threads, the BLAS library's thread count for the process (revl.h).
 * The built-in MLP's bits depend on it, and the faster count depends on the machine's load
 * (docs/performance.md, "BLAS threads"); OpenBLAS reads its count from the environment once,
 * at load, so a program that cannot set the environment first (Python after numpy, a library
 * inside a larger program) needs this call to fix it. */
#include "base/internal.h"

#ifndef RV_CBLAS_NETLIB
/* OpenBLAS's own controls. Weak: a build against another CBLAS (pkg-config's generic blas) has
 * no such symbols, and the call then reports that there is no control instead of failing to
 * load. The reference BLAS build (RV_CBLAS_NETLIB) does not look for them at all, so that it
 * never steers an OpenBLAS that some other part of the process loaded. */
extern void openblas_set_num_threads(int n) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));
#endif

int revl_blas_threads(int n)
{
    if (n < 0)
        return REVL_ERR_INVALID;
#ifdef RV_CBLAS_NETLIB
    return 0;
#else
    if (!openblas_set_num_threads || !openblas_get_num_threads)
        return 0;
    int before = openblas_get_num_threads();
    if (n > 0)
        openblas_set_num_threads(n);
    return before;
#endif
}
