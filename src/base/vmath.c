/* vmath.c: exp, tanh and logistic over arrays (vmath.h), written with the compiler's generic
 * vector types (lane code in vmath_lanes.h): two lanes per instruction on any target (SSE2 on
 * x86-64), four where the processor has AVX2, eight where it has AVX-512, and every lane does
 * the same IEEE operations in the same order as every other: the bits do not depend on the
 * lane, the array length or the instruction set.
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
#define NL 2
#define LATTR
#include "base/vmath_lanes.h"

#if defined(__x86_64__)
/* four lanes where the processor has AVX2, chosen at run time */
#define NL 4
#define LATTR __attribute__((target("avx2")))
#include "base/vmath_lanes.h"

/* eight lanes where the processor has AVX-512 (dq for the 64-bit compares' masks as vectors):
 * the same operations again, so the same bits, and half the instructions of four lanes
 * (measured: tanh 3.89 -> 2.85 ns per value over 10,000 values, docs/performance.md, "The MLP
 * against its floor") */
#define NL 8
#define LATTR __attribute__((target("avx512f,avx512dq")))
#include "base/vmath_lanes.h"
#endif

static int max_lanes; /* rv_vmath_max_lanes: tests only; 0 = no cap */

void rv_vmath_max_lanes(int lanes) { max_lanes = lanes; }

int rv_vmath_lanes(void)
{
#if defined(__x86_64__)
    int cap = max_lanes ? max_lanes : 8;
    if (cap >= 8 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return 8;
    if (cap >= 4 && __builtin_cpu_supports("avx2"))
        return 4;
#endif
    return 2;
}

/* fn_NL for the widest NL there is, as a function designator */
#if defined(__x86_64__)
#define RV_WIDEST(fn) (rv_vmath_lanes() == 8 ? fn##_8 : rv_vmath_lanes() == 4 ? fn##_4 : fn##_2)
#else
#define RV_WIDEST(fn) fn##_2
#endif
/* pub(params) calls it with args */
#define RV_DISPATCH(pub, fn, params, ...)                                                         \
    void pub params { RV_WIDEST(fn)(__VA_ARGS__); }

RV_DISPATCH(rv_vexp, map_exp, (double *x, size_t n), x, n)
RV_DISPATCH(rv_vtanh, map_tanh, (double *x, size_t n), x, n)
RV_DISPATCH(rv_vlogistic, map_logistic, (double *x, size_t n), x, n)
RV_DISPATCH(rv_vrelu, map_relu, (double *x, size_t n), x, n)

#define RV_SLOPE_PARAMS (const double *h, const double *d, double *out, size_t n)
RV_DISPATCH(rv_vslope_tanh, slope_tanh, RV_SLOPE_PARAMS, h, d, out, n)
RV_DISPATCH(rv_vslope_logistic, slope_logistic, RV_SLOPE_PARAMS, h, d, out, n)
RV_DISPATCH(rv_vslope_relu, slope_relu, RV_SLOPE_PARAMS, h, d, out, n)

#define RV_R_SLOPE_PARAMS (const double *h, const double *dz, const double *rz, double *rd, size_t n)
RV_DISPATCH(rv_vr_slope_tanh, r_slope_tanh, RV_R_SLOPE_PARAMS, h, dz, rz, rd, n)
RV_DISPATCH(rv_vr_slope_logistic, r_slope_logistic, RV_R_SLOPE_PARAMS, h, dz, rz, rd, n)
RV_DISPATCH(rv_vr_slope_relu, r_slope_relu, RV_R_SLOPE_PARAMS, h, dz, rz, rd, n)

double rv_vdot8(const double *a, const double *b, size_t n) { return RV_WIDEST(dot8)(a, b, n); }

RV_DISPATCH(rv_vaffine, affine,
            (double *v, const double *a, const double *b, const double *g, size_t n), v, a, b, g,
            n)
RV_DISPATCH(rv_vaxpy, axpy, (double *y, double a, const double *x, size_t n), y, a, x, n)
RV_DISPATCH(rv_vcolumn_sums, column_sums,
            (const double *d, size_t rows, size_t n, double *out), d, rows, n, out)
