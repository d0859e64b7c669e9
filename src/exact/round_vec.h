/* round_vec.h: the multiplies of the optimisers' states by their rates in steps whose bits are
 * not kept (the steps before a truncated run's first kept one: optim.h's RV_FWD_MUL without
 * RV_FWD_KEEP; the forward-only path keeps the coder, for the exact forward's bits), over a run
 * of parameters: momentum's 64-bit v by gamma = n / 2^16 and the 128-bit moments by n / 2^bits
 * (wide.h's rv_wide_mul_rounded), rounded to nearest, ties up.
 * A plain version, the reference (the per-parameter operations), and lane versions (AVX2 four
 * lanes, AVX-512 eight) chosen at run time as coder_vec.h's are; all give the same bits, being
 * the same integer arithmetic modulo 2^64 and 2^128. */
#ifndef REVL_EXACT_ROUND_VEC_H
#define REVL_EXACT_ROUND_VEC_H

#include "exact/wide.h"

/* x n / 2^16 rounded to nearest, for steps whose bits are not kept (momentum's v) */
static inline int64_t rv_mul_rounded(int64_t x, uint32_t n)
{
    int64_t q = x >> 16;
    uint64_t r = (uint64_t)x & 0xffff;
    return (int64_t)((uint64_t)q * n + ((r * n + 0x8000) >> 16));
}

typedef struct rv_round_run {
    /* v[i] <- rv_mul_rounded(v[i], n) for i < n_v (n <= 2^16) */
    void (*mul64)(int64_t *v, size_t n_v, uint32_t n);
    /* x[i] <- rv_wide_mul_rounded(x[i], n, bits) for i < n_x (bits 16 or 24, n <= 2^bits) */
    void (*mul128)(rv_wide *x, size_t n_x, uint32_t n, unsigned bits);
    const char *name;
} rv_round_run;

RV_HIDDEN void rv_round_mul64_plain(int64_t *v, size_t n_v, uint32_t n);
RV_HIDDEN void rv_round_mul128_plain(rv_wide *x, size_t n_x, uint32_t n, unsigned bits);

/* The fastest version this processor runs (the plain one under rv_coder_plain_only). */
RV_HIDDEN rv_round_run rv_round_run_select(void);
/* Every version, plain first (room for 3 in out): as rv_coder_runs. */
RV_HIDDEN int rv_round_runs(rv_round_run *out, const char **skipped);

#endif
