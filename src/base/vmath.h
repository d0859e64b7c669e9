/* vmath.h: exp, tanh, the logistic function and ReLU over arrays, in place, and the MLP's other
 * elementwise passes (the activations' slopes, sums, axpy), eight lanes at a time (AVX-512), four
 * (AVX2) or two, with only IEEE additions, multiplications and divisions (no libm, no fused
 * multiply-add: the library is built with -ffp-contract=off). The same input gives the same bits
 * on every call, at every position in the array, at every width and on every CPU with IEEE
 * doubles, which exact reversal needs from the model.
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
/* x > 0 ? x : 0 (NaN gives 0), in lanes */
RV_HIDDEN void rv_vrelu(double *x, size_t n);
/* The activations' slopes through h = act(z), in lanes, the same bits as the scalar
 * expressions: out = d * (1 - h * h), d * (h * (1 - h)), h > 0 ? d : 0 (out may be d) ... */
RV_HIDDEN void rv_vslope_tanh(const double *h, const double *d, double *out, size_t n);
RV_HIDDEN void rv_vslope_logistic(const double *h, const double *d, double *out, size_t n);
RV_HIDDEN void rv_vslope_relu(const double *h, const double *d, double *out, size_t n);
/* ... and the R-pass's rd = rd * (1 - h * h) - 2.0 * h * dz * rz,
 * rd * (h * (1 - h)) + (1 - 2.0 * h) * dz * rz, h > 0 ? rd : 0 */
RV_HIDDEN void rv_vr_slope_tanh(const double *h, const double *dz, const double *rz, double *rd,
                                size_t n);
RV_HIDDEN void rv_vr_slope_logistic(const double *h, const double *dz, const double *rz,
                                    double *rd, size_t n);
RV_HIDDEN void rv_vr_slope_relu(const double *h, const double *dz, const double *rz, double *rd,
                                size_t n);
/* sum of a[i] * b[i] in eight interleaved partial sums s[i mod 8] (each from 0, in order of i),
 * returned as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)): a fixed order, so the same bits
 * at every width, and eight independent chains of additions instead of one */
RV_HIDDEN double rv_vdot8(const double *a, const double *b, size_t n);
/* v[i] = a[i] + b[i] * g[i], in lanes (the scalar expression's bits; v may be any of the
 * inputs) */
RV_HIDDEN void rv_vaffine(double *v, const double *a, const double *b, const double *g, size_t n);
/* y[i] = y[i] + a * x[i], in lanes (the scalar expression's bits; x and y do not overlap
 * unless equal) */
RV_HIDDEN void rv_vaxpy(double *y, double a, const double *x, size_t n);
/* out[j] = out[j] + d[0][j] + d[1][j] + ... over rows of n, in row order (the bits of adding
 * each row in turn) */
RV_HIDDEN void rv_vcolumn_sums(const double *d, size_t rows, size_t n, double *out);
/* The lanes the calls above use now: 8 (AVX-512), 4 (AVX2) or 2. */
RV_HIDDEN int rv_vmath_lanes(void);
/* Tests only (not thread-safe): use at most this many lanes (2, 4 or 8; 0 = as many as there
 * are). */
RV_HIDDEN void rv_vmath_max_lanes(int lanes);

#endif
