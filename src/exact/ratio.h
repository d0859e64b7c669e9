/* ratio.h: exact multiplication of a 128-bit fixed-point value by a factor rho in
 * [2^-18, 1] that is not on a power-of-two grid (wide.h's rates are n / 2^bits, with 1 - beta
 * off by up to 2^-25: AdamW's decay 1 - alpha lambda, alpha lambda ~ 1e-5, would be off by
 * 0.3%). rho is applied as n / d with n = a 2^32 (a = floor(2^18 rho) <= 2^18) and
 * d = round(n / rho) <= 2^50, so within 2^-51 of the request (absolute).
 *   x <- floor(x / d) n + digit,  pushing x mod d,  popping digit < n
 * and the exact inverse, through the per-parameter coder (infobuf.h). The digits are coded in
 * parts so that every code the coder sees has frequencies of 2^13 or more (or a power of two):
 * x mod d as 16 + 16 uniform bits and a top part in base m = ceil(d (1 + 2^-10) / 2^32), the
 * popped digit as a base-a top part and 16 + 16 uniform bits. The base m is 2^-10 wider than
 * needed on purpose: each multiply then pushes at least 1.4e-3 bits more than it pops, so its
 * pops never need more words than it pushed (a base-a digit of frequency f = floor(2^31/a) can
 * return up to a 2^-31 / ln 2 = 1.8e-4 bits more than log2(a): below the margin), and the block's stack is never read while empty
 * (a fresh coder state sits at its lower bound, where a multiply that adds ~0 bits would borrow
 * a word). Cost: log2(1/rho) + log2(m 2^32 / d) ~ log2(1/rho) + 0.0015 bits per multiply.
 * The popped digit injects up to n units of the last place (up to 2^50), so the caller keeps
 * enough bits below the precision it needs (adamw.c: 60 below w's). */
#ifndef REVL_EXACT_RATIO_H
#define REVL_EXACT_RATIO_H

#include "exact/wide.h"

typedef struct rv_ratio {
    uint64_t n, d;       /* n = a 2^32, n <= d <= 2^50 */
    rv_gamma_code a, m;  /* the popped digit's top part (base a), the pushed remainder's (m) */
} rv_ratio;

/* The fraction for rho; 0 when rho is outside [2^-18, 1]. */
static inline int rv_ratio_make(rv_ratio *c, double rho)
{
    if (!(rho >= 0x1p-18 && rho <= 1.0))
        return 0;
    uint32_t a = (uint32_t)floor(ldexp(rho, 18)); /* 1 .. 2^18 */
    c->n = (uint64_t)a << 32;
    c->d = (uint64_t)nearbyint((double)c->n / rho); /* <= 2^50: exact in a double */
    if (c->d < c->n)
        c->d = c->n;
    rv_gamma_code_make(&c->a, a);
    /* m = ceil(d 1025 / 2^42) = ceil(d (1 + 2^-10) / 2^32) */
    rv_gamma_code_make(&c->m, (uint32_t)(((rv_uwide)c->d * 1025 + ((rv_uwide)1 << 42) - 1) >> 42));
    return 1;
}

/* y <- floor(y / d) n + digit (see above). */
static inline rv_uwide rv_ratio_mul_mag(const revl_allocator *al, rv_stack *s, uint64_t *st,
                                        const rv_ratio *c, rv_uwide y)
{
    rv_uwide q = y / c->d;
    uint64_t r = (uint64_t)(y - q * c->d);
    uint64_t t = rv_push_bits(al, s, *st, (uint32_t)(r & 0xffff), 16);
    t = rv_push_bits(al, s, t, (uint32_t)(r >> 16) & 0xffff, 16);
    t = rv_push_base_n(al, s, t, &c->m, (uint32_t)(r >> 32));
    uint32_t da, e1, e0;
    t = rv_pop_base_n(s, t, &c->a, &da);
    t = rv_pop_bits(s, t, 16, &e1);
    *st = rv_pop_bits(s, t, 16, &e0);
    return q * c->n + (((uint64_t)da << 32) | ((uint64_t)e1 << 16) | e0);
}

/* The exact inverse of rv_ratio_mul_mag. */
static inline rv_uwide rv_ratio_div_mag(const revl_allocator *al, rv_stack *s, uint64_t *st,
                                        const rv_ratio *c, rv_uwide y)
{
    rv_uwide q = y / c->n;
    uint64_t digit = (uint64_t)(y - q * c->n);
    uint64_t t = rv_push_bits(al, s, *st, (uint32_t)(digit & 0xffff), 16);
    t = rv_push_bits(al, s, t, (uint32_t)(digit >> 16) & 0xffff, 16);
    t = rv_push_base_n(al, s, t, &c->a, (uint32_t)(digit >> 32));
    uint32_t hi, mid, lo;
    t = rv_pop_base_n(s, t, &c->m, &hi);
    t = rv_pop_bits(s, t, 16, &mid);
    *st = rv_pop_bits(s, t, 16, &lo);
    return q * c->d + (((uint64_t)hi << 32) | ((uint64_t)mid << 16) | lo);
}

/* x <- x n / d exactly, on the magnitude minus one as wide.h does (0 stays 0 and costs
 * nothing; nothing else becomes 0). */
static inline rv_wide rv_ratio_mul(const revl_allocator *al, rv_stack *s, uint64_t *st,
                                   const rv_ratio *c, rv_wide x)
{
    if (x == 0)
        return 0;
    rv_uwide y = rv_ratio_mul_mag(al, s, st, c, (rv_uwide)(x < 0 ? -x : x) - 1);
    return x < 0 ? -(rv_wide)(y + 1) : (rv_wide)(y + 1);
}

/* The exact inverse of rv_ratio_mul. */
static inline rv_wide rv_ratio_div(const revl_allocator *al, rv_stack *s, uint64_t *st,
                                   const rv_ratio *c, rv_wide x)
{
    if (x == 0)
        return 0;
    rv_uwide y = rv_ratio_div_mag(al, s, st, c, (rv_uwide)(x < 0 ? -x : x) - 1);
    return x < 0 ? -(rv_wide)(y + 1) : (rv_wide)(y + 1);
}

/* x n / d rounded to nearest (ties up), for steps whose bits are not kept (truncation). */
static inline rv_wide rv_ratio_mul_rounded(rv_wide x, const rv_ratio *c)
{
    int neg = x < 0;
    rv_uwide y = (rv_uwide)(neg ? -x : x), q = y / c->d;
    rv_uwide r = y - q * c->d;
    rv_uwide z = q * c->n + (r * c->n + c->d / 2) / c->d;
    return neg ? -(rv_wide)z : (rv_wide)z;
}

#endif
