/* wide_vec.h: Adam's exact multiply of its two 128-bit moments by beta1 = n1/2^24 and
 * beta2 = n2/2^24 (wide.h's rv_wide_mul / rv_wide_div, bits = 24), and RMSprop's of s by
 * beta2 = n1/2^24 then b by gamma = n2/2^16 (the "moments16": the second one's bits = 16), over
 * a run of parameters of one block, with a plain version, the reference, and lane versions (AVX2
 * four lanes, AVX-512 eight) chosen at run time. Every version leaves the same values, the same states and the
 * same words on the block's stack, in the same order. */
#ifndef REVL_EXACT_WIDE_VEC_H
#define REVL_EXACT_WIDE_VEC_H

#include "exact/wide.h"

/* mul: for i = 0, 1, ..., n-1: m[i] <- m[i] beta1 then s[i] <- s[i] beta2 exactly (pushing to
 * st; RMSprop's pair: s by beta2, then b by gamma); div: its inverse, for i = n-1, ..., 0, s[i]
 * first (popping st last in, first out). */
typedef void rv_moments_run_op(const revl_allocator *a, rv_stack *st, uint64_t *state,
                               const rv_gamma_code *c1, const rv_gamma_code *c2, rv_wide *m,
                               rv_wide *s, size_t n);
typedef rv_moments_run_op *rv_moments_run_fn;

typedef struct rv_moments_run {
    rv_moments_run_fn mul, div;
    const char *name;
} rv_moments_run;

/* The plain versions: Adam's pair, and RMSprop's (m[i] by c1 with bits 24, then s[i] by c2 with
 * bits 16). */
RV_HIDDEN rv_moments_run_op rv_moments_mul_plain, rv_moments_div_plain;
RV_HIDDEN rv_moments_run_op rv_moments16_mul_plain, rv_moments16_div_plain;

/* The fastest version this processor runs (the plain one under rv_coder_plain_only). */
RV_HIDDEN rv_moments_run rv_moments_run_select(void);
/* Every version, plain first: fills out[] (room for 3) with the ones this processor runs and
 * returns how many; *skipped (may be NULL) gets the names of those it cannot run, or "". */
RV_HIDDEN int rv_moments_runs(rv_moments_run *out, const char **skipped);
/* The same two for RMSprop's pair. */
RV_HIDDEN rv_moments_run rv_moments16_run_select(void);
RV_HIDDEN int rv_moments16_runs(rv_moments_run *out, const char **skipped);

#endif
