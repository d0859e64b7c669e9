/* ratio_run.h: ratio.h's fast path (rho >= 1/2) over a run of values kept split as
 * W_i = w_i 2^low + lo_i (lo_i in [0, 2^low), |W_i| < 2^123; AdamW's weights and their low bits),
 * giving exactly rv_ratio_mul / rv_ratio_div applied to each W_i in turn (forward in index order,
 * back in reverse), the coder's words in the same order. Why a separate path: gcc compiled the
 * per-value calls' 128-bit |W|, sign and split through the stack (104 instructions a forward
 * multiply; 70 here, on w's and lo's 64-bit words, measured with callgrind). Each chunk of 64
 * values is computed branch-free, the rare fiber ends (a share 2c of the values) marked in a
 * bit mask, and only then are their bits pushed (popped) in the scalar order: a push touches only
 * its own coder state and the stack, so doing it after its chunk's arithmetic changes no bit.
 * The reverse is ~150 instructions a value plain (two reciprocal divisions, the pop test, the
 * 128-bit value's double for S). ratio_lanes.c does both directions' arithmetic in AVX-512 IFMA
 * lanes (about 4x faster each way), the pushes, the pops and S's sum staying scalar, in order. */
#ifndef REVL_EXACT_RATIO_RUN_H
#define REVL_EXACT_RATIO_RUN_H

#include "exact/ratio.h"

#define RV_RATIO_RUN 64 /* values per mask word */

/* Value i of a run, forward: W_i <- f(|W_i|) with W_i's sign, wd_i = w_i inv_scale; returns bit 0
 * set when W_i is at a fiber's end (a bit to push), bit 1 when it is the fiber's upper member. */
static inline unsigned rv_ratio_run_one(const rv_ratio *r, int64_t *restrict w,
                                        int64_t *restrict lo, double *restrict wd,
                                        double inv_scale, unsigned low, size_t i)
{
    const uint64_t k = r->k, mask = (1ull << low) - 1;
    /* on 64-bit words (the compiler's 128-bit code spilled): with sg = 0 or -1 (W's sign,
     * w's), |W| = (W ^ sg) - sg, so k |W| + h = k (W ^ sg) + (h + (k & sg)), the addend
     * < 2^64; then W - sgn(W) P, P = pw 2^low + pl, in w's and lo's words */
    int64_t wi = w[i];
    uint64_t li = (uint64_t)lo[i], sg = (uint64_t)(wi >> 63);
    uint64_t xl = (((uint64_t)wi << low) | li) ^ sg;
    uint64_t xh = (uint64_t)(wi >> (64 - low)) ^ sg;
    rv_uwide a = (rv_uwide)xl * k + (r->h + (k & sg));
    rv_uwide P = (rv_uwide)xh * k + (uint64_t)(a >> 64);
    uint64_t fr = (uint64_t)a;
    uint64_t pw = (uint64_t)(P >> low), pl = (uint64_t)P & mask; /* P < 2^123 */
    uint64_t t = li - ((pl ^ sg) - sg); /* lo -+ pl, in (-2^low, 2^(low+1)) */
    w[i] = (int64_t)((uint64_t)wi - ((pw ^ sg) - sg) + (uint64_t)((int64_t)t >> low));
    lo[i] = (int64_t)(t & mask);
    wd[i] = (double)w[i] * inv_scale;
    /* W = 0 maps to 0 and pushes nothing (rv_ratio_mul) */
    return (((fr < k) | (fr >= r->d)) & ((wi | (int64_t)li) != 0)) | (unsigned)(fr < k) << 1;
}

/* A chunk's pushes, in index order: ends marks the values at a fiber's end, upper the upper
 * members (state: the chunk's first value's coder state). */
static inline void rv_ratio_run_push(const revl_allocator *al, rv_stack *s, uint64_t *state,
                                     uint64_t ends, uint64_t upper)
{
    for (; ends; ends &= ends - 1) {
        unsigned j = (unsigned)__builtin_ctzll(ends);
        state[j] = rv_push_bits(al, s, state[j], (uint32_t)(upper >> j) & 1, 1);
    }
}

/* W_i <- f(|W_i|) with W_i's sign for i < n, wd_i = w_i inv_scale; keep: the fiber places
 * pushed (state[i] is value i's coder state), else nothing kept (rv_ratio_mul_nokeep). r->fast,
 * r->k != 0. */
static inline void rv_ratio_run_mul(const revl_allocator *al, rv_stack *s, uint64_t *state,
                                    const rv_ratio *r, int64_t *restrict w, int64_t *restrict lo,
                                    double *restrict wd, double inv_scale, unsigned low, size_t n,
                                    int keep)
{
    for (size_t c0 = 0; c0 < n; c0 += RV_RATIO_RUN) {
        size_t m = n - c0 < RV_RATIO_RUN ? n - c0 : RV_RATIO_RUN;
        uint64_t ends = 0, upper = 0;
        for (size_t j = 0; j < m; j++) {
            unsigned f = rv_ratio_run_one(r, w, lo, wd, inv_scale, low, c0 + j);
            ends |= (uint64_t)(f & 1) << j;
            upper |= (uint64_t)(f >> 1) << j;
        }
        if (keep)
            rv_ratio_run_push(al, s, state + c0, ends, upper);
    }
}

/* rv_ratio_run_mul and rv_ratio_run_div with the arithmetic in AVX-512 IFMA lanes (ratio_lanes.c)
 * where the processor has them and low is 60; otherwise the plain ones. */
RV_HIDDEN void rv_ratio_run_mul_fast(const revl_allocator *al, rv_stack *s, uint64_t *state,
                                     const rv_ratio *r, int64_t *restrict w,
                                     int64_t *restrict lo, double *restrict wd, double inv_scale,
                                     unsigned low, size_t n, int keep);
RV_HIDDEN double rv_ratio_run_div_fast(const revl_allocator *al, rv_stack *s, uint64_t *state,
                                      const rv_ratio *r, int64_t *restrict w,
                                      int64_t *restrict lo, double *restrict wd, double inv_scale,
                                      unsigned low, size_t n, double *restrict g, double unit,
                                      double rho);
/* 1 when rv_ratio_run_mul_fast takes the lanes on this processor (tests, benchmarks) */
RV_HIDDEN int rv_ratio_run_lanes(void);

/* Value i of a run, back, first half: q = L(|W_i|) - 1 into *q1 (high word), *q0; returns 1 when a
 * bit is to be popped (L + 1 is in L's fiber). */
static inline unsigned rv_ratio_run_least_one(const rv_ratio *r, const int64_t *w,
                                              const int64_t *lo, unsigned low, size_t i,
                                              uint64_t *q1, uint64_t *q0)
{
    const uint64_t k = r->k, mask = (1ull << low) - 1;
    /* z = |W| - 1 on words: W - 1 for W > 0, ~W for W < 0 (sg = -1) */
    int64_t wi = w[i];
    uint64_t sg = (uint64_t)(wi >> 63), t = (uint64_t)lo[i] - (sg + 1);
    uint64_t w2 = (uint64_t)wi + (uint64_t)((int64_t)t >> low);
    uint64_t zl = ((w2 << low) | (t & mask)) ^ sg;
    uint64_t zh = (uint64_t)((int64_t)w2 >> (64 - low)) ^ sg;
    /* q = floor((z 2^64 + h) / d) (rv_ratio_least), two 2-by-1 divisions */
    uint64_t rem, hi = rv_ratio_div21(zh, zl, r->d, r->v, &rem);
    uint64_t qlo = rv_ratio_div21(rem, r->h, r->d, r->v, &rem);
    /* W = 0: q = -1, so that q + 1 = 0, and no pop */
    uint64_t nz = (uint64_t)0 - (uint64_t)((wi | lo[i]) != 0);
    *q1 = hi | ~nz;
    *q0 = qlo | ~nz;
    /* a pop when L + 1 = q + 2 is in L's fiber (rv_ratio_div_mag) */
    return ((qlo + 2) * k + r->h < k) & (nz & 1);
}

/* A chunk's pops, from its last value down (state: the chunk's first value's coder state); the
 * popped bits in the result's bits. */
static inline uint64_t rv_ratio_run_pop(rv_stack *s, uint64_t *state, uint64_t pops)
{
    uint64_t ones = 0;
    for (; pops; pops &= ~(1ull << (63 - __builtin_clzll(pops)))) {
        unsigned j = 63u - (unsigned)__builtin_clzll(pops);
        uint32_t bit;
        state[j] = rv_pop_bits(s, state[j], 1, &bit);
        ones |= (uint64_t)bit << j;
    }
    return ones;
}

/* Value i of a run, back, second half: W_i = (q + 1 + bit) with W_i's sign into w, lo and wd;
 * returns S's term g[i] W_i unit (from the 128-bit value, as the scalar path: the same as
 * w 2^low + lo when the value is in range, which only a wrong buffer breaks); g[i] *= rho. */
static inline double rv_ratio_run_restore_one(int64_t *restrict w, int64_t *restrict lo,
                                              double *restrict wd, double inv_scale,
                                              unsigned low, size_t i, uint64_t q1, uint64_t q0,
                                              uint64_t bit, double *restrict g, double unit,
                                              double rho)
{
    const uint64_t mask = (1ull << low) - 1;
    /* x = q + 1 + bit with W's sign: (q ^ sg) + a, a = 1 + bit, or -bit for sg = -1 */
    uint64_t sg = (uint64_t)(w[i] >> 63);
    uint64_t a = (1 + bit) - (sg & (1 + 2 * bit));
    uint64_t ql = q0 ^ sg, qh = q1 ^ sg;
    uint64_t t = (ql & mask) + a; /* in [-1, 2^low + 1] */
    int64_t wn = (int64_t)(((qh << (64 - low)) | (ql >> low)) + (uint64_t)((int64_t)t >> low));
    w[i] = wn;
    lo[i] = (int64_t)(t & mask);
    wd[i] = (double)wn * inv_scale;
    rv_uwide W = (((rv_uwide)qh << 64) | ql) + (rv_uwide)(rv_wide)(int64_t)a;
    double term = g[i] * (rv_wide_to_double((rv_wide)W) * unit);
    g[i] *= rho;
    return term;
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
    double sum = 0;
    uint64_t q1[RV_RATIO_RUN], q0[RV_RATIO_RUN];
    for (size_t c1 = n; c1 > 0;) {
        size_t c0 = c1 > RV_RATIO_RUN ? c1 - RV_RATIO_RUN : 0;
        uint64_t pops = 0;
        for (size_t i = c0; i < c1; i++)
            pops |= (uint64_t)rv_ratio_run_least_one(r, w, lo, low, i, &q1[i - c0], &q0[i - c0])
                    << (i - c0);
        uint64_t ones = rv_ratio_run_pop(s, state + c0, pops);
        for (size_t i = c1; i-- > c0;)
            sum += rv_ratio_run_restore_one(w, lo, wd, inv_scale, low, i, q1[i - c0], q0[i - c0],
                                            (ones >> (i - c0)) & 1, g, unit, rho);
        c1 = c0;
    }
    return sum;
}

#endif
