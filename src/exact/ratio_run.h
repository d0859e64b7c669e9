/* ratio_run.h: ratio.h's fast path (rho >= 1/2) over a run of values kept split as
 * W_i = w_i 2^low + lo_i (lo_i in [0, 2^low), |W_i| < 2^123; AdamW's weights and their low bits),
 * giving exactly rv_ratio_mul / rv_ratio_div applied to each W_i in turn (forward in index order,
 * back in reverse), the coder's words in the same order. Why a separate path: the per-value
 * calls spent most of their time outside the two products (a branch on W = 0, the 128-bit shifts
 * and multiply-subtract of the split, a divide's data-random correction branch). Here each chunk
 * of 64 values is computed branch-free, the rare fiber ends (a share 2c of the values) marked in
 * a bit mask, and only then are their bits pushed (popped) in the scalar order: a push touches only
 * its own coder state and the stack, so doing it after its chunk's arithmetic changes no bit. */
#ifndef REVL_EXACT_RATIO_RUN_H
#define REVL_EXACT_RATIO_RUN_H

#include "exact/ratio.h"

#define RV_RATIO_RUN 64 /* values per mask word */

static inline rv_wide rv_ratio_run_join(int64_t w, int64_t lo, unsigned low)
{
    /* w 2^low + lo with lo < 2^low: the high word is w >> (64 - low), the low one an OR */
    uint64_t l = ((uint64_t)w << low) | (uint64_t)lo;
    return (rv_wide)(((rv_uwide)(uint64_t)(w >> (64 - low)) << 64) | l);
}

static inline void rv_ratio_run_split(rv_wide W, unsigned low, int64_t *w, int64_t *lo)
{
    *w = (int64_t)(W >> low); /* floor: lo stays in [0, 2^low) */
    *lo = (int64_t)((uint64_t)W & ((1ull << low) - 1));
}

/* W_i <- f(|W_i|) with W_i's sign for i < n, wd_i = w_i inv_scale; keep: the fiber places
 * pushed (state[i] is value i's coder state), else nothing kept (rv_ratio_mul_nokeep). r->fast,
 * r->k != 0. */
static inline void rv_ratio_run_mul(const revl_allocator *al, rv_stack *s, uint64_t *state,
                                    const rv_ratio *r, int64_t *restrict w, int64_t *restrict lo,
                                    double *restrict wd, double inv_scale, unsigned low, size_t n,
                                    int keep)
{
    const uint64_t k = r->k, d = r->d, h = r->h;
    for (size_t c0 = 0; c0 < n; c0 += RV_RATIO_RUN) {
        size_t m = n - c0 < RV_RATIO_RUN ? n - c0 : RV_RATIO_RUN;
        uint64_t ends = 0, upper = 0;
        for (size_t j = 0; j < m; j++) {
            size_t i = c0 + j;
            rv_wide W = rv_ratio_run_join(w[i], lo[i], low);
            rv_uwide sign, x = rv_ratio_abs(W, &sign);
            rv_uwide a = (rv_uwide)(uint64_t)x * k + h;
            rv_uwide y = x - ((rv_uwide)(uint64_t)(x >> 64) * k + (a >> 64));
            uint64_t fr = (uint64_t)a;
            /* W = 0 maps to 0 and pushes nothing (rv_ratio_mul) */
            ends |= (uint64_t)(((fr < k) | (fr >= d)) & (x != 0)) << j;
            upper |= (uint64_t)(fr < k) << j;
            rv_ratio_run_split(rv_ratio_signed(y, sign), low, &w[i], &lo[i]);
            wd[i] = (double)w[i] * inv_scale;
        }
        for (; keep && ends; ends &= ends - 1) {
            unsigned j = (unsigned)__builtin_ctzll(ends);
            state[c0 + j] = rv_push_bits(al, s, state[c0 + j], (uint32_t)(upper >> j) & 1, 1);
        }
    }
}

/* The exact inverse of rv_ratio_run_mul with keep, values n - 1 down to 0; sum_i g[i] W_i unit
 * (the restored W_i, summed from i = n - 1 down) returned, and g[i] *= rho after its term. */
static inline double rv_ratio_run_div(const revl_allocator *al, rv_stack *s, uint64_t *state,
                                      const rv_ratio *r, int64_t *restrict w,
                                      int64_t *restrict lo, double *restrict wd, double inv_scale,
                                      unsigned low, size_t n, double *restrict g, double unit,
                                      double rho)
{
    (void)al;
    const uint64_t k = r->k, h = r->h;
    double sum = 0;
    rv_uwide least[RV_RATIO_RUN];
    for (size_t c1 = n; c1 > 0;) {
        size_t c0 = c1 > RV_RATIO_RUN ? c1 - RV_RATIO_RUN : 0;
        uint64_t pops = 0;
        for (size_t i = c0; i < c1; i++) {
            rv_uwide sign, y = rv_ratio_abs(rv_ratio_run_join(w[i], lo[i], low), &sign);
            rv_uwide L = rv_ratio_least(r, y); /* y = 0: wraps, masked below */
            /* a pop when L + 1 is in L's fiber (rv_ratio_div_mag) */
            pops |= (uint64_t)(((uint64_t)(L + 1) * k + h < k) & (y != 0)) << (i - c0);
            least[i - c0] = y != 0 ? L : 0;
        }
        for (; pops; pops &= ~(1ull << (63 - __builtin_clzll(pops)))) {
            unsigned j = 63u - (unsigned)__builtin_clzll(pops);
            uint32_t bit;
            state[c0 + j] = rv_pop_bits(s, state[c0 + j], 1, &bit);
            least[j] += bit;
        }
        for (size_t i = c1; i-- > c0;) {
            rv_uwide sign = (rv_uwide)(rv_wide)(w[i] >> 63); /* W's sign is w's */
            rv_wide W = rv_ratio_signed(least[i - c0], sign);
            rv_ratio_run_split(W, low, &w[i], &lo[i]);
            wd[i] = (double)w[i] * inv_scale;
            sum += g[i] * (rv_wide_to_double(W) * unit);
            g[i] *= rho;
        }
        c1 = c0;
    }
    return sum;
}

#endif
