/* wide.h: 128-bit fixed-point states and their exact multiplication by a rate n / 2^bits
 * (rate.h's grids: bits = 16 for gamma, 24 for the betas), for optimiser states that span many decades (Adam's moments). The
 * discarded digit is pushed to the same coder as the 64-bit multiply uses (infobuf.h), so the
 * reverse pass undoes it bit for bit. */
#ifndef REVL_EXACT_WIDE_H
#define REVL_EXACT_WIDE_H

#include "exact/infobuf.h"

#include <math.h>
#include <stdint.h>

typedef __int128 rv_wide;
typedef unsigned __int128 rv_uwide;

/* Round y (already in units of the state's quantum) to the nearest rv_wide, or return 0 when y
 * is NaN/Inf or |y| >= 2^126 (headroom so that a sum of two in-range values cannot overflow). */
static inline int rv_wide_round(double y, rv_wide *out)
{
    if (!(fabs(y) < 0x1p126))
        return 0;
    *out = (rv_wide)nearbyint(y);
    return 1;
}

/* Add, or return 0 when the sum leaves (-2^126, 2^126). */
static inline int rv_wide_add(rv_wide x, rv_wide y, rv_wide *out)
{
    rv_wide s = x + y; /* both below 2^126 in magnitude: cannot overflow */
    const rv_wide lim = (rv_wide)1 << 126;
    if (s >= lim || s <= -lim)
        return 0;
    *out = s;
    return 1;
}

/* Encode a uniform k-bit digit r (k <= 16; frequency 2^(31-k) each). */
static inline uint64_t rv_push_bits(const revl_allocator *a, rv_stack *s, uint64_t st, uint32_t r,
                                    unsigned k)
{
    unsigned fb = RV_SCALE_BITS - k; /* log2 of the frequency */
    if (st >= (1ULL << (63 - k))) {
        rv_push_word(a, s, (rv_word)st);
        st >>= RV_WORD_BITS;
    }
    return ((st >> fb) << RV_SCALE_BITS) + (st & ((1ULL << fb) - 1)) + ((uint64_t)r << fb);
}

/* Decode a uniform k-bit digit. */
static inline uint64_t rv_pop_bits(rv_stack *s, uint64_t st, unsigned k, uint32_t *r)
{
    unsigned fb = RV_SCALE_BITS - k;
    uint64_t slot = st & ((1ULL << RV_SCALE_BITS) - 1);
    *r = (uint32_t)(slot >> fb);
    st = ((st >> RV_SCALE_BITS) << fb) + (slot & ((1ULL << fb) - 1));
    if (st < RV_STATE_LOW)
        st = (st << RV_WORD_BITS) | rv_pop_word(s);
    return st;
}

/* x <- x * n / 2^bits exactly (bits 16 or 24): push x mod 2^bits (16 bits, then the rest),
 * x <- floor(x / 2^bits) n + pop(base n). */
static inline rv_wide rv_wide_mul(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                  const rv_gamma_code *c, unsigned bits, rv_wide x)
{
    uint32_t r = (uint32_t)((rv_uwide)x & ((1u << bits) - 1));
    rv_wide q = x >> bits; /* arithmetic shift: floor division */
    uint64_t t = rv_push_bits(a, s, *st, r & 0xffff, 16);
    if (bits > 16)
        t = rv_push_bits(a, s, t, r >> 16, bits - 16);
    uint32_t digit;
    *st = rv_pop_base_n(s, t, c, &digit);
    return (rv_wide)((rv_uwide)q * c->n + digit);
}

/* x * n / 2^bits rounded to nearest, for steps whose bits are not kept (truncation). */
static inline rv_wide rv_wide_mul_rounded(rv_wide x, uint32_t n, unsigned bits)
{
    rv_wide q = x >> bits;
    uint64_t r = (uint64_t)((rv_uwide)x & ((1u << bits) - 1));
    return (rv_wide)((rv_uwide)q * n + ((r * n + (1ull << (bits - 1))) >> bits));
}

/* The exact inverse of rv_wide_mul. */
static inline rv_wide rv_wide_div(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                  const rv_gamma_code *c, unsigned bits, rv_wide x)
{
    /* floor division by n <= 2^24 without a branch on the sign (as rv_exact_div), in three
     * 64-bit steps: each partial remainder is below n, so each dividend fits 56 bits */
    uint64_t sign = (uint64_t)(x >> 127);
    rv_uwide y = (rv_uwide)x ^ (((rv_uwide)sign << 64) | sign);
    uint64_t hi = (uint64_t)(y >> 64), lo = (uint64_t)y, r;
    uint64_t qh = rv_divmod(hi, c->n, c->inv_n, &r);
    uint64_t qm = rv_divmod((r << 32) | (lo >> 32), c->n, c->inv_n, &r);
    uint64_t ql = rv_divmod((r << 32) | (lo & 0xffffffffu), c->n, c->inv_n, &r);
    rv_uwide qy = ((rv_uwide)qh << 64) | (qm << 32 | ql);
    rv_uwide q = qy ^ (((rv_uwide)sign << 64) | sign);
    uint32_t rem = (uint32_t)((r ^ sign) + (sign & c->n));
    uint64_t t = rv_push_base_n(a, s, *st, c, rem);
    uint32_t d_hi = 0, d_lo;
    if (bits > 16)
        t = rv_pop_bits(s, t, bits - 16, &d_hi);
    *st = rv_pop_bits(s, t, 16, &d_lo);
    return (rv_wide)((q << bits) + ((d_hi << 16) | d_lo));
}

#endif
