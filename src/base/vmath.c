/* vmath.c: exp, tanh and logistic over arrays (vmath.h), written with the compiler's generic
 * vector types so that two lanes run per instruction on any target (SSE2 on x86-64) and every
 * lane does the same IEEE operations in the same order as every other: the bits do not depend
 * on the lane, the array length or the instruction set.
 *
 * exp(x) = 2^k (1 + p(r)) with integer k near x / ln 2, r = x - k ln 2 in [-ln 2, ln 2) (ln 2
 * split in two so that k * LN2_HI is exact) and p(r) = expm1(r) by its Taylor series. 2^k is applied
 * as two halves so that k from -1076 to 1024 needs no branch: overflow gives inf, underflow 0. */
#include "base/vmath.h"

#include <string.h>

typedef double v2d __attribute__((vector_size(16)));
typedef long long v2i __attribute__((vector_size(16)));          /* comparison masks */
typedef unsigned long long v2u __attribute__((vector_size(16))); /* integer arithmetic: it
                                                                    wraps (NaN lanes) */

#define LANES 2

static const double LOG2E = 0x1.71547652b82fep0;
static const double LN2_HI = 0x1.62e42fee00000p-1; /* 32 significant bits */
static const double LN2_LO = 0x1.a39ef35793c76p-33;
static const double SHIFT = 0x1.8p52; /* x + SHIFT rounds x to an integer held in the low bits */
/* exp(710) overflows and exp(-746) underflows to 0; clamping there keeps k in range */
static const double EXP_HI = 710.0, EXP_LO = -746.0;
/* tanh(20) rounds to 1 and expm1(40) is finite */
static const double TANH_HI = 20.0;

static inline v2d splat(double a) { return (v2d){a, a}; }

/* m ? a : b lane by lane, m from a comparison (all ones or all zeros) */
static inline v2d sel(v2i m, v2d a, v2d b) { return (v2d)(((v2i)a & m) | ((v2i)b & ~m)); }

/* x clamped to [lo, hi]; NaN stays NaN (both comparisons are false for it) */
static inline v2d clamp(v2d x, double lo, double hi)
{
    x = sel(x > splat(hi), splat(hi), x);
    return sel(x < splat(lo), splat(lo), x);
}

static inline v2d vabs(v2d x) { return (v2d)((v2i)x & (v2i){INT64_MAX, INT64_MAX}); }

/* |m| with the sign of s */
static inline v2d with_sign(v2d m, v2d s)
{
    v2i sign = (v2i){INT64_MIN, INT64_MIN};
    return (v2d)(((v2i)m & ~sign) | ((v2i)s & sign));
}

/* 2^k for integer k in [-1022, 1023] (two's complement in k) */
static inline v2d pow2(v2u k) { return (v2d)((k + 1023) << 52); }

/* x in [EXP_LO, EXP_HI] (or NaN) as 2^k1 * 2^k2 * (1 + p), k1 + k2 = k, with k = round(y)
 * (r in [-ln2/2, ln2/2]: exp's best) or, when down, k = floor(y) (r in [0, ln 2), so that
 * expm1 = (2^k - 1) + 2^k p adds two terms of one sign: tanh's best) */
static inline v2d exp_parts(v2d x, int floor_k, v2d *s1, v2d *s2)
{
    v2d y = x * splat(LOG2E);
    v2d t = y + splat(SHIFT);
    v2d kd = t - splat(SHIFT);
    v2u k = (v2u)t - (v2u)splat(SHIFT);
    v2i down = (kd > y) & (v2i){-floor_k, -floor_k};
    kd = sel(down, kd - splat(1.0), kd);
    k = k + (v2u)down; /* down is all ones (-1) where true */
    v2d r = (x - kd * splat(LN2_HI)) - kd * splat(LN2_LO);
    /* k1 = floor(k / 2) by a logical shift of k + 2048 > 0 (SSE2 has no 64-bit arithmetic one) */
    v2u k1 = ((k + 2048) >> 1) - 1024;
    *s1 = pow2(k1);
    *s2 = pow2(k - k1);
    /* expm1(r) = r + r^2 (1/2! + r (1/3! + ... + r / n!)): n = 16 on [0, ln 2), 13 on
     * [-ln2/2, ln2/2] (the first term left out below 0.15 ulp of p either way) */
    static const double c[15] = {
        1.0 / 20922789888000.0, 1.0 / 1307674368000.0, 1.0 / 87178291200.0,
        1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
        1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
        1.0 / 24.0, 1.0 / 6.0, 0.5};
    int first = floor_k ? 0 : 3;
    v2d q = splat(c[first]);
    for (int j = first + 1; j < 15; j++)
        q = splat(c[j]) + r * q;
    return r + (r * r) * q;
}

static inline v2d exp_lanes(v2d x)
{
    v2d s1, s2;
    v2d p = exp_parts(clamp(x, EXP_LO, EXP_HI), 0, &s1, &s2);
    return (s1 + s1 * p) * s2; /* s1 * p is exact, so one rounding before the scaling */
}

/* tanh|x| = e / (e + 2) with e = expm1(2|x|) = (2^k - 1) + 2^k p (two terms >= 0, so no
 * cancellation), sign restored */
static inline v2d tanh_lanes(v2d x)
{
    v2d s1, s2;
    v2d a = clamp(vabs(x), 0.0, TANH_HI);
    v2d p = exp_parts(a + a, 1, &s1, &s2);
    v2d s = s1 * s2; /* 2^k, k in [0, 58] */
    v2d e = (s - splat(1.0)) + s * p;
    return with_sign(e / (e + splat(2.0)), x);
}

/* logistic(x) = 1 / (1 + t) for x >= 0 and t / (1 + t) for x < 0, t = exp(-|x|) <= 1 */
static inline v2d logistic_lanes(v2d x)
{
    v2d t = exp_lanes(-vabs(x));
    return sel(x < splat(0.0), t, splat(1.0)) / (splat(1.0) + t);
}

/* f over x[0..n): whole vectors, then the tail through a padded vector, so a value's bits do
 * not depend on where it sits */
#define RV_VMAP(name, lanes_fn)                                                                   \
    void name(double *x, size_t n)                                                                \
    {                                                                                             \
        size_t i = 0;                                                                             \
        for (; i + LANES <= n; i += LANES) {                                                      \
            v2d v;                                                                                \
            memcpy(&v, x + i, sizeof v);                                                          \
            v = lanes_fn(v);                                                                      \
            memcpy(x + i, &v, sizeof v);                                                          \
        }                                                                                         \
        if (i < n) {                                                                              \
            v2d v = splat(0.0);                                                                   \
            memcpy(&v, x + i, (n - i) * sizeof *x);                                               \
            v = lanes_fn(v);                                                                      \
            memcpy(x + i, &v, (n - i) * sizeof *x);                                               \
        }                                                                                         \
    }

RV_VMAP(rv_vexp, exp_lanes)
RV_VMAP(rv_vtanh, tanh_lanes)
RV_VMAP(rv_vlogistic, logistic_lanes)
