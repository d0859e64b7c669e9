/* ratio.h: exact multiplication of a 128-bit fixed-point value by a factor rho = 1 - c in
 * [2^-18, 1] that is not on a power-of-two grid (wide.h's rates are n / 2^bits, with 1 - beta
 * off by up to 2^-25: AdamW's decay 1 - alpha lambda, alpha lambda ~ 1e-5, would be off by
 * 0.3%). c is applied as k 2^-64 (k = round(c 2^64)), so rho = d 2^-64 with d = 2^64 - k,
 * within 2^-65 of the request, and the multiply of a magnitude x >= 0 is, with h = floor(d/2),
 *   f(x) = ceil((d x - h) 2^-64) = x - floor((k x + h) 2^-64)
 * (one 128 x 64-bit product; within one unit of rho x; f(1) = 1 as h < d). f is nondecreasing
 * with steps of 0 or 1, so it reaches every integer y, from the run ("fiber") of x in
 * [L(y), L(y+1)) with L(y) = floor(((y - 1) 2^64 + h) / d) + 1; the fiber has floor(1/rho) or ceil(1/rho) members, and
 * the multiply pushes x's place in it, x - L(y), to the per-parameter coder (infobuf.h) when
 * it has more than one: the exact inverse pops it back. Only the forward pushes and only the
 * reverse pops, so the empty stack is never read.
 * Fast path, rho >= 1/2 (k <= 2^63: AdamW's usual alpha lambda ~ 1e-5): fibers have one or two
 * members, and the low 64 bits fr = (k x + h) mod 2^64 tell which: x is a fiber's upper member when
 * fr < k (the floor stepped at x), its lower one when fr >= d (it steps at x + 1); one uniform
 * bit is pushed in either case (a share 2c of the multiplies), nothing otherwise, and the
 * inverse needs L(y): two 2-by-1 word divisions by the normalised d with a precomputed
 * reciprocal (Moller & Granlund 2011, "Improved division by invariant integers", Alg. 4).
 * Why the offset h: W = w 2^60 with its low bits 0 (AdamW's first step) has k W = 0 mod 2^64
 * when k is a multiple of 16 (any double c above 2^-15 gives one), which without h would put
 * every such W at a fiber's end (a bit each); with h they sit mid-step.
 * Cost in buffer bits per multiply (rv_ratio_bits): the entropy of x's place, 2c for
 * rho >= 1/2, ~1.39 log2(1/rho) for small c (c/ln 2 is the information a multiply by rho
 * destroys on average; the fibers' unequal sizes cost the rest), log2(1/rho) at rho = 2^-j. The
 * first version (n / d with d <= 2^50, a digit popped each time) cost log2(1/rho) + 0.0015
 * bits, 100 times more at alpha lambda = 1e-5, and six coder operations per multiply; it also
 * injected up to 2^50 units of the last place, where f is off by less than one. */
#ifndef REVL_EXACT_RATIO_H
#define REVL_EXACT_RATIO_H

#include "exact/wide.h"

typedef struct rv_ratio {
    uint64_t k, d;   /* c = k 2^-64, rho = d 2^-64, k + d = 2^64, 0 <= k <= 2^64 - 2^46 */
    uint64_t h;      /* the offset: floor(d / 2) */
    uint64_t v;      /* fast path: floor((2^128 - 1) / d) - 2^64 */
    int fast;        /* d >= 2^63: fibers of one or two */
    rv_gamma_code n0, n1; /* otherwise: codes for fibers of floor(2^64/d) and one more */
} rv_ratio;

/* The factor 1 - c for c in [0, 1 - 2^-18] (taking c, not 1 - c, keeps a small c's digits);
 * 0 for any other c. k = 0 (c below 2^-65) is the identity: callers skip it. */
static inline int rv_ratio_make(rv_ratio *r, double c)
{
    if (!(c >= 0 && c <= 1 - 0x1p-18))
        return 0;
    memset(r, 0, sizeof *r);
    r->k = (uint64_t)nearbyint(ldexp(c, 64)); /* < 2^64 - 2^45: fits */
    r->d = (uint64_t)0 - r->k;                /* 2^64 - k (k = 0: d = 0, never used) */
    r->h = r->d >> 1;
    r->fast = r->k <= (1ull << 63);
    if (r->k == 0)
        return 1;
    if (r->fast) {
        r->v = (uint64_t)(~(rv_uwide)0 / r->d); /* the quotient's 2^64 wraps away */
    } else {
        uint32_t n0 = (uint32_t)(((rv_uwide)1 << 64) / r->d); /* 2 .. 2^18 */
        rv_gamma_code_make(&r->n0, n0);
        rv_gamma_code_make(&r->n1, n0 + 1);
    }
    return 1;
}

/* The applied factor as a double. */
static inline double rv_ratio_rho(const rv_ratio *r)
{
    return 1.0 - ldexp((double)r->k, -64);
}

/* Expected buffer bits per multiply of a uniformly placed x: the entropy of x's place in its
 * fiber, which has n0 + 1 members for a share (n0 + 1) t of the x, t = 1 - n0 rho. */
static inline double rv_ratio_bits(const rv_ratio *r)
{
    if (r->k == 0)
        return 0;
    double c = ldexp((double)r->k, -64);
    double n0 = floor(1 / (1 - c));
    if (!r->fast)
        n0 = r->n0.n;
    else if (n0 > 1) /* c = 1/2 exactly */
        n0 = 1;
    double t = 1 - n0 + n0 * c, share = (n0 + 1) * t;
    return share * log2(n0 + 1) + (1 - share) * log2(n0);
}

/* k x + h = P 2^64 + fr, x < 2^124: P = floor(c x + h 2^-64) and fr, the step test's low
 * word. */
static inline rv_uwide rv_ratio_floor(const rv_ratio *r, rv_uwide x, uint64_t *fr)
{
    rv_uwide a = (rv_uwide)(uint64_t)x * r->k + r->h, b = (rv_uwide)(uint64_t)(x >> 64) * r->k;
    *fr = (uint64_t)a;
    return b + (a >> 64);
}

/* (u1 2^64 + u0) / d for u1 < d, d >= 2^63, with v = floor((2^128 - 1) / d) - 2^64: the
 * quotient, *rem the remainder (Moller & Granlund, Alg. 4: one product, two corrections). */
static inline uint64_t rv_ratio_div21(uint64_t u1, uint64_t u0, uint64_t d, uint64_t v,
                                      uint64_t *rem)
{
    rv_uwide q = (rv_uwide)v * u1 + (((rv_uwide)u1 << 64) | u0);
    uint64_t q1 = (uint64_t)(q >> 64) + 1, q0 = (uint64_t)q;
    uint64_t rr = u0 - q1 * d;
    uint64_t over = (uint64_t)0 - (rr > q0); /* data-random: masks, not a branch */
    q1 += over;
    rr += over & d;
    if (rr >= d) {
        q1++;
        rr -= d;
    }
    *rem = rr;
    return q1;
}

/* L(y) = floor(((y - 1) 2^64 + h) / d) + 1, the least x with f(x) = y, for y >= 1 (wraps
 * for a y no x < 2^128 reaches, never undefined). */
static inline rv_uwide rv_ratio_least(const rv_ratio *r, rv_uwide y)
{
    rv_uwide z = y - 1;
    if (r->fast) {
        uint64_t rem, q1 = rv_ratio_div21((uint64_t)(z >> 64), (uint64_t)z, r->d, r->v, &rem);
        uint64_t q0 = rv_ratio_div21(rem, r->h, r->d, r->v, &rem);
        return (((rv_uwide)q1 << 64) | q0) + 1;
    }
    rv_uwide q1 = z / r->d;
    uint64_t rem = (uint64_t)(z - q1 * r->d);
    return (q1 << 64) + (uint64_t)((((rv_uwide)rem << 64) | r->h) / r->d) + 1;
}

/* y = f(x) for x >= 1, pushing x's place in its fiber. */
static inline rv_uwide rv_ratio_mul_mag(const revl_allocator *al, rv_stack *s, uint64_t *st,
                                        const rv_ratio *r, rv_uwide x)
{
    uint64_t fr;
    rv_uwide y = x - rv_ratio_floor(r, x, &fr);
    if (r->fast) {
        if (fr < r->k || fr >= r->d) /* rare for a small c: a predictable branch */
            *st = rv_push_bits(al, s, *st, fr < r->k, 1);
        return y;
    }
    rv_uwide lo = rv_ratio_least(r, y);
    uint32_t n = (uint32_t)(rv_ratio_least(r, y + 1) - lo);
    *st = rv_push_base_n(al, s, *st, n == r->n0.n ? &r->n0 : &r->n1, (uint32_t)(x - lo));
    return y;
}

/* The exact inverse of rv_ratio_mul_mag, for y >= 1. */
static inline rv_uwide rv_ratio_div_mag(const revl_allocator *al, rv_stack *s, uint64_t *st,
                                        const rv_ratio *r, rv_uwide y)
{
    (void)al;
    rv_uwide lo = rv_ratio_least(r, y);
    uint32_t j;
    if (r->fast) {
        if ((uint64_t)(lo + 1) * r->k + r->h >= r->k) /* lo + 1 starts the next fiber */
            return lo;
        *st = rv_pop_bits(s, *st, 1, &j);
        return lo + j;
    }
    uint32_t n = (uint32_t)(rv_ratio_least(r, y + 1) - lo);
    *st = rv_pop_base_n(s, *st, n == r->n0.n ? &r->n0 : &r->n1, &j);
    return lo + j;
}

/* |x| and back with x's sign, without a branch on the sign (data-random in a network's
 * weights): sign is all ones for x < 0. */
static inline rv_uwide rv_ratio_abs(rv_wide x, rv_uwide *sign)
{
    *sign = (rv_uwide)(x >> 127); /* arithmetic shift (gcc/clang) */
    return ((rv_uwide)x ^ *sign) - *sign;
}

static inline rv_wide rv_ratio_signed(rv_uwide m, rv_uwide sign)
{
    return (rv_wide)((m ^ sign) - sign);
}

/* x <- f(|x|) with x's sign, exactly (0 stays 0 and costs nothing; nothing else becomes 0). */
static inline rv_wide rv_ratio_mul(const revl_allocator *al, rv_stack *s, uint64_t *st,
                                   const rv_ratio *r, rv_wide x)
{
    if (x == 0)
        return 0;
    rv_uwide sign, m = rv_ratio_abs(x, &sign);
    return rv_ratio_signed(rv_ratio_mul_mag(al, s, st, r, m), sign);
}

/* The exact inverse of rv_ratio_mul. */
static inline rv_wide rv_ratio_div(const revl_allocator *al, rv_stack *s, uint64_t *st,
                                   const rv_ratio *r, rv_wide x)
{
    if (x == 0)
        return 0;
    rv_uwide sign, m = rv_ratio_abs(x, &sign);
    return rv_ratio_signed(rv_ratio_div_mag(al, s, st, r, m), sign);
}

/* f(|x|) with x's sign, nothing kept, for steps whose bits are not kept (truncation): the same
 * value as rv_ratio_mul. */
static inline rv_wide rv_ratio_mul_nokeep(rv_wide x, const rv_ratio *r)
{
    uint64_t fr;
    rv_uwide sign, m = rv_ratio_abs(x, &sign);
    return rv_ratio_signed(m - rv_ratio_floor(r, m, &fr), sign);
}

#endif
