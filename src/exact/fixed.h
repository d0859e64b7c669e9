/* fixed.h: conversions between double and the int64 fixed-point numbers that hold w and v.
 * Both directions are pure functions of their inputs, so the reverse pass, recomputing the same
 * double products, rounds them to the same integers as the forward pass did. */
#ifndef REVL_FIXED_H
#define REVL_FIXED_H

#include <math.h>
#include <stdint.h>

/* 2^frac_bits and its inverse, exact powers of two. */
typedef struct rv_fixed {
    double scale, inv_scale;
} rv_fixed;

static inline rv_fixed rv_fixed_make(unsigned frac_bits)
{
    rv_fixed f = {ldexp(1.0, (int)frac_bits), ldexp(1.0, -(int)frac_bits)};
    return f;
}

static inline double rv_to_double(rv_fixed f, int64_t x)
{
    return (double)x * f.inv_scale;
}

/* Round x * 2^frac_bits to the nearest int64. Returns 0 when x is NaN/Inf or the result would
 * not fit (the comparison is written so that NaN fails it). */
static inline int rv_to_fixed(rv_fixed f, double x, int64_t *out)
{
    double y = x * f.scale;
    if (!(fabs(y) < 0x1p63))
        return 0;
    *out = (int64_t)llrint(y);
    return 1;
}

/* Round y (already in units of 2^-frac_bits) to the nearest int64, or return 0 when it is
 * NaN/Inf or does not fit. Products are scaled by folding 2^frac_bits into a constant factor:
 * scaling by a power of two commutes with rounding, so c * x and (c' * x) * 2^F agree. */
static inline int rv_round_fixed(double y, int64_t *out)
{
    if (!(fabs(y) < 0x1p63))
        return 0;
    *out = (int64_t)llrint(y);
    return 1;
}

#endif
