/* wide.h: 128-bit fixed-point states and their exact multiplication by a rate n / 2^bits
 * (rate.h's grids: bits = 16 for gamma, 24 for the betas), for optimiser states that span many decades (Adam's moments). The
 * discarded digit is pushed to the same coder as the 64-bit multiply uses (infobuf.h), so the
 * reverse pass undoes it bit for bit. */
#ifndef REVL_EXACT_WIDE_H
#define REVL_EXACT_WIDE_H

#include "exact/infobuf.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef __int128 rv_wide;
typedef unsigned __int128 rv_uwide;

/* Round y (already in units of the state's quantum) to the nearest rv_wide (ties to even), or
 * return 0 when y is NaN/Inf or |y| >= 2^126 (headroom so that a sum of two in-range values
 * cannot overflow). Below 2^52 adding and removing 1.5 * 2^52 (with y's sign) rounds to an
 * integer (ties to even; to an even one from 2^51 on, where the sum's ulp is 2); above, y is an integer
 * and its bits are shifted into place exactly, without libgcc's slow 128-bit conversion and
 * without a branch on the (data-random) sign.
 * Kept bits: the first version split y at 2^64 in doubles, hi = floor(y 2^-64), lo = y - hi 2^64,
 * which is exact except when y (rounded) is in (-2^64, 0): there lo = 2^64 + y was rounded to a
 * double (a multiple of 2^11 near 2^64) and a lo of exactly 2^64 became 0 through x86's
 * unsigned conversion (C leaves it undefined), so such y gave -2^64 + (fl(2^64 + y) mod 2^64),
 * not round(y). Recorded trajectories and the tests' bits depend on it, so
 * rv_wide_round_legacy reproduces it, in defined C; the branch to it is taken only for
 * |(1-beta) g| below 2^-36 (|g| < 2^-32 with the default betas), rare and predictable. */
static inline rv_wide rv_wide_round_legacy(double r)
{
    double lo = 0x1p64 + r; /* rounded, as the first version did */
    uint64_t u = lo < 0x1p63 ? (uint64_t)(int64_t)lo
                 : lo < 0x1p64 ? (uint64_t)(int64_t)(lo - 0x1p63) + (1ull << 63) : 0;
    return (rv_wide)(((rv_uwide)~0ull << 64) | u); /* hi = -1 */
}

static inline int rv_wide_round(double y, rv_wide *out)
{
    if (!(fabs(y) < 0x1p126))
        return 0;
    if (fabs(y) < 0x1p52) {
        double t = copysign(0x1.8p52, y);
        int64_t r = (int64_t)((y + t) - t);
        /* the first version: r in (-2^64, 0) goes through the legacy split (r = 0 from a
         * negative y is -0.0 there, whose floor is -0 = 0: exact) */
        *out = r < 0 ? rv_wide_round_legacy((double)r) : (rv_wide)r;
        return 1;
    }
    if (y < 0 && y > -0x1p64) {
        *out = rv_wide_round_legacy(y);
        return 1;
    }
    uint64_t b;
    memcpy(&b, &y, sizeof b);
    unsigned e = (unsigned)(b >> 52) & 0x7ff; /* 1075..1200: |y| = mant 2^(e-1075) */
    rv_uwide mag = (rv_uwide)((b & ((1ull << 52) - 1)) | (1ull << 52)) << (e - 1075);
    rv_uwide neg = (rv_uwide)0 - (rv_uwide)(b >> 63); /* all ones when y < 0 */
    *out = (rv_wide)((mag ^ neg) - neg);
    return 1;
}

/* x as a double: deterministic (two correctly rounded conversions and one rounded sum, the
 * same on every machine), within 2^-52 relative; libgcc's conversion is several times slower.
 * The low word's conversion is done in two exact halves and one rounded sum, which is the
 * correctly rounded (double)(uint64_t) (the same bits) without the branch on its top bit that
 * compilers emit before AVX-512. */
static inline double rv_wide_to_double(rv_wide x)
{
    uint64_t lo = (uint64_t)x;
    double dlo = (double)(int64_t)(lo >> 32) * 0x1p32 + (double)(int64_t)(lo & 0xffffffffu);
    return (double)(int64_t)(x >> 64) * 0x1p64 + dlo;
}

/* x in (-2^126, 2^126), the range every state is kept in: a sum of two in range cannot
 * overflow. A state read from a file is checked too (checkpoint.c). */
static inline int rv_wide_in_range(rv_wide x)
{
    const rv_wide lim = (rv_wide)1 << 126;
    return x < lim && x > -lim;
}

/* Add, or return 0 when the sum leaves (-2^126, 2^126). */
static inline int rv_wide_add(rv_wide x, rv_wide y, rv_wide *out)
{
    /* in range, x + y cannot overflow; wrapping instead of undefined behaviour keeps a state
     * a corrupt file put out of range (a reverse pass's divide) an error, never a crash */
    rv_wide s = (rv_wide)((rv_uwide)x + (rv_uwide)y);
    if (!rv_wide_in_range(s))
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

/* The multiply below works on the magnitude minus one, x = sign (1 + y), y >= 0, so that it maps
 * 0 to 0 without touching the buffer and every other value to one of the same sign, never 0:
 * a state that is 0 (a weight whose gradient has always been 0) stays exactly 0 and costs no
 * bits, and one that is not never becomes 0 by the digit the multiply injects. */
static inline rv_uwide rv_wide_mul_mag(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                       const rv_gamma_code *c, unsigned bits, rv_uwide y);
static inline rv_uwide rv_wide_div_mag(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                       const rv_gamma_code *c, unsigned bits, rv_uwide y);

/* x <- x * n / 2^bits exactly (bits 16 or 24), as sign(x) (1 + (|x| - 1) n / 2^bits). The
 * magnitude and the sign are applied in unsigned arithmetic (modulo 2^128, the same bits): a
 * value at -2^127, which only a rate above 1 can make (a test's out-of-grid one), is then no
 * undefined negation. */
static inline rv_wide rv_wide_mul(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                  const rv_gamma_code *c, unsigned bits, rv_wide x)
{
    if (x == 0)
        return 0;
    rv_uwide ux = (rv_uwide)x, mag = x < 0 ? -ux : ux; /* unsigned: defined for -2^127 too */
    rv_uwide y = rv_wide_mul_mag(a, s, st, c, bits, mag - 1) + 1;
    return (rv_wide)(x < 0 ? -y : y);
}

/* The exact inverse of rv_wide_mul. */
static inline rv_wide rv_wide_div(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                  const rv_gamma_code *c, unsigned bits, rv_wide x)
{
    if (x == 0)
        return 0;
    rv_uwide ux = (rv_uwide)x, mag = x < 0 ? -ux : ux; /* unsigned: defined for -2^127 too */
    rv_uwide y = rv_wide_div_mag(a, s, st, c, bits, mag - 1) + 1;
    return (rv_wide)(x < 0 ? -y : y);
}

/* y <- floor(y / 2^bits) n + pop(base n), pushing y mod 2^bits (16 bits, then the rest). */
static inline rv_uwide rv_wide_mul_mag(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                       const rv_gamma_code *c, unsigned bits, rv_uwide x)
{
    uint32_t r = (uint32_t)(x & ((1u << bits) - 1));
    rv_uwide q = x >> bits;
    uint64_t t = rv_push_bits(a, s, *st, r & 0xffff, 16);
    if (bits > 16)
        t = rv_push_bits(a, s, t, r >> 16, bits - 16);
    uint32_t digit;
    *st = rv_pop_base_n(s, t, c, &digit);
    return q * c->n + digit;
}

/* x * n / 2^bits rounded to nearest, for steps whose bits are not kept (truncation). */
static inline rv_wide rv_wide_mul_rounded(rv_wide x, uint32_t n, unsigned bits)
{
    rv_wide q = x >> bits;
    uint64_t r = (uint64_t)((rv_uwide)x & ((1u << bits) - 1));
    return (rv_wide)((rv_uwide)q * n + ((r * n + (1ull << (bits - 1))) >> bits));
}

/* The inverse of rv_wide_mul_mag: q = y div n, push y mod n, pop the low bits back. */
static inline rv_uwide rv_wide_div_mag(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                       const rv_gamma_code *c, unsigned bits, rv_uwide y)
{
    /* division by n <= 2^24 in three 64-bit steps: each partial remainder is below n, so each
     * dividend fits 56 bits */
    uint64_t hi = (uint64_t)(y >> 64), lo = (uint64_t)y, r;
    uint64_t qh = rv_divmod(hi, c->n, c->inv_n, &r);
    uint64_t qm = rv_divmod((r << 32) | (lo >> 32), c->n, c->inv_n, &r);
    uint64_t ql = rv_divmod((r << 32) | (lo & 0xffffffffu), c->n, c->inv_n, &r);
    rv_uwide q = ((rv_uwide)qh << 64) | (qm << 32 | ql);
    uint64_t t = rv_push_base_n(a, s, *st, c, (uint32_t)r);
    uint32_t d_hi = 0, d_lo;
    if (bits > 16)
        t = rv_pop_bits(s, t, bits - 16, &d_hi);
    *st = rv_pop_bits(s, t, 16, &d_lo);
    return (q << bits) + ((d_hi << 16) | d_lo);
}

#endif
