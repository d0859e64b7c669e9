/* rate.h: the grids on which multiplicative rates are applied exactly. A rate r (momentum
 * gamma, Adam's and RMSprop's betas) is applied as the rational n / 2^bits, n = round(r 2^bits),
 * so that multiplying a fixed-point state by it can be undone through the information buffer
 * (infobuf.h, wide.h). This is the one place that rounds and range-checks a rate. */
#ifndef REVL_EXACT_RATE_H
#define REVL_EXACT_RATE_H

#include <math.h>
#include <stdint.h>

typedef struct rv_rate_grid {
    unsigned bits;     /* denominator 2^bits */
    uint32_t n_min, n_max; /* allowed numerators */
} rv_rate_grid;

/* momentum gamma: n / 2^16, n in 1..2^16 (gamma = 1 allowed: no bits kept) */
static const rv_rate_grid RV_GRID_GAMMA = {16, 1, 1u << 16};
/* betas: n / 2^24, n in 1..2^24-1 (1 - beta is applied within 0.03% of the request at 0.9999,
 * and beta = 1 is refused: Adam's bias correction would divide by 0) */
static const rv_rate_grid RV_GRID_BETA = {24, 1, (1u << 24) - 1};

/* Is r a rate this grid can apply? (NaN fails.) */
static inline int rv_rate_ok(rv_rate_grid g, double r)
{
    return r >= ldexp((double)g.n_min, -(int)g.bits) && r <= ldexp((double)g.n_max, -(int)g.bits);
}

/* The numerator of the applied rate, clamped into the grid's range. */
static inline uint32_t rv_rate_numerator(rv_rate_grid g, double r)
{
    double n = nearbyint(ldexp(r, (int)g.bits));
    if (!(n >= g.n_min))
        n = g.n_min;
    if (n > g.n_max)
        n = g.n_max;
    return (uint32_t)n;
}

/* The rate actually applied for r, or NaN when the grid cannot apply r. */
static inline double rv_rate_applied(rv_rate_grid g, double r)
{
    return rv_rate_ok(g, r) ? ldexp((double)rv_rate_numerator(g, r), -(int)g.bits) : NAN;
}

#endif
