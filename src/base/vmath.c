/* vmath.c: exp, tanh and logistic over arrays (vmath.h), written with the compiler's generic
 * vector types (lane code in vmath_lanes.h): two lanes per instruction on any target (SSE2 on
 * x86-64), four where the processor has AVX2, and every lane does the same IEEE operations in
 * the same order as every other: the bits do not depend on the lane, the array length or the
 * instruction set.
 *
 * exp(x) = 2^k (1 + p(r)) with integer k near x / ln 2, r = x - k ln 2 in [-ln 2, ln 2) (ln 2
 * split in two so that k * LN2_HI is exact) and p(r) = expm1(r) by its Taylor series. 2^k is
 * applied as two halves so that k from -1076 to 1024 needs no branch: overflow gives inf,
 * underflow 0. */
#include "base/vmath.h"

#include <string.h>

/* the constants every width shares */
static const double LOG2E = 0x1.71547652b82fep0;
static const double LN2_HI = 0x1.62e42fee00000p-1; /* 32 significant bits */
static const double LN2_LO = 0x1.a39ef35793c76p-33;
static const double SHIFT = 0x1.8p52; /* x + SHIFT rounds x to an integer held in the low bits */
/* exp(710) overflows and exp(-746) underflows to 0; clamping there keeps k in range */
static const double EXP_HI = 710.0, EXP_LO = -746.0;
/* tanh(20) rounds to 1 and expm1(40) is finite */
static const double TANH_HI = 20.0;

/* two lanes: SSE2, on every x86-64 (and generic code elsewhere) */
typedef double v2d __attribute__((vector_size(16)));
typedef long long v2i __attribute__((vector_size(16)));
typedef unsigned long long v2u __attribute__((vector_size(16))); /* wraps (NaN lanes) */
#define VD v2d
#define VI v2i
#define VU v2u
#define NL 2
#define L(name) name##_2
#define LATTR
#include "base/vmath_lanes.h"
#undef VD
#undef VI
#undef VU
#undef NL
#undef L
#undef LATTR

#if defined(__x86_64__)
/* four lanes where the processor has AVX2, chosen at run time */
typedef double v4d __attribute__((vector_size(32)));
typedef long long v4i __attribute__((vector_size(32)));
typedef unsigned long long v4u __attribute__((vector_size(32)));
#define VD v4d
#define VI v4i
#define VU v4u
#define NL 4
#define L(name) name##_4
#define LATTR __attribute__((target("avx2")))
#include "base/vmath_lanes.h"
#undef VD
#undef VI
#undef VU
#undef NL
#undef L
#undef LATTR
#endif

static int narrow_only; /* rv_vmath_narrow: tests only */

void rv_vmath_narrow(int on) { narrow_only = on; }

static int wide(void)
{
#if defined(__x86_64__)
    return !narrow_only && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#define RV_DISPATCH(pub, fn)                                                                      \
    void pub(double *x, size_t n)                                                                 \
    {                                                                                             \
        if (wide())                                                                               \
            fn##_4(x, n);                                                                         \
        else                                                                                      \
            fn##_2(x, n);                                                                         \
    }
#else
#define RV_DISPATCH(pub, fn)                                                                      \
    void pub(double *x, size_t n) { fn##_2(x, n); }
#endif

RV_DISPATCH(rv_vexp, map_exp)
RV_DISPATCH(rv_vtanh, map_tanh)
RV_DISPATCH(rv_vlogistic, map_logistic)
