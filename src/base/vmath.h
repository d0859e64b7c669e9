/* vmath.h: exp, tanh and the logistic function over arrays, in place, four lanes at a time
 * (AVX2) or two, with only IEEE additions, multiplications and divisions (no libm, no fused
 * multiply-add: the library is built with -ffp-contract=off). The same input gives the same bits on every call, at every
 * position in the array and on every CPU with IEEE doubles, which exact reversal needs from the
 * model.
 *
 * Accuracy against the exact value (tests/check_vmath.c checks it on dense grids over the whole
 * range against long-double libm): exp within 1 ulp (largest seen 0.95; subnormal results,
 * x < -708.4, within one smallest subnormal), tanh and logistic within 2.5 ulp (largest seen
 * 2.26 and 2.20, from the final division and the rounding of its denominator; glibc's are
 * within 1). NaN gives NaN, +-inf the limits, -0 stays -0 for tanh. */
#ifndef REVL_BASE_VMATH_H
#define REVL_BASE_VMATH_H

#include "base/internal.h"

RV_HIDDEN void rv_vexp(double *x, size_t n);
RV_HIDDEN void rv_vtanh(double *x, size_t n);
RV_HIDDEN void rv_vlogistic(double *x, size_t n);
/* Tests only (not thread-safe): nonzero = use the two-lane code even where AVX2 is there. */
RV_HIDDEN void rv_vmath_narrow(int on);

#endif
