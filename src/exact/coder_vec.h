/* coder_vec.h: the exact multiply by gamma = n/2^16 (infobuf.h's rv_exact_mul / rv_exact_div)
 * over a run of parameters of one block, with a plain version, the reference, and lane versions
 * (AVX2 four lanes, AVX-512 eight) chosen at run time. Every version leaves the same values,
 * the same states and the same words on the block's stack, in the same order. */
#ifndef REVL_CODER_VEC_H
#define REVL_CODER_VEC_H

#include "exact/infobuf.h"

/* mul: v[i] <- v[i] * gamma exactly for i = 0, 1, ..., n-1 (pushing to s);
 * div: its inverse, for i = n-1, ..., 0 (popping s last in, first out). */
typedef void (*rv_coder_run_fn)(const revl_allocator *a, rv_stack *s, uint64_t *state,
                                const rv_gamma_code *c, int64_t *v, size_t n);

typedef struct rv_coder_run {
    rv_coder_run_fn mul, div;
    const char *name;
} rv_coder_run;

RV_HIDDEN void rv_mul_run_plain(const revl_allocator *a, rv_stack *s, uint64_t *state,
                                const rv_gamma_code *c, int64_t *v, size_t n);
RV_HIDDEN void rv_div_run_plain(const revl_allocator *a, rv_stack *s, uint64_t *state,
                                const rv_gamma_code *c, int64_t *v, size_t n);

/* The fastest version this processor runs (the plain one under rv_coder_plain_only). */
RV_HIDDEN rv_coder_run rv_coder_run_select(void);
/* Every version, plain first: fills out[] (room for 3) with the ones this processor runs and
 * returns how many; *skipped (may be NULL) gets the names of those it cannot run, or "". */
RV_HIDDEN int rv_coder_runs(rv_coder_run *out, const char **skipped);
/* Tests and benchmarks only: make rv_coder_run_select (and every other run-level selection,
 * such as wide_vec.h's) choose the plain version (on = 1). */
RV_HIDDEN void rv_coder_plain_only(int on);

/* The run-level versions, in a table plain, AVX2 (4 lanes), AVX-512 F and DQ (8 lanes) (here
 * and in wide_vec.c): the index to select (the widest this processor runs; 0 under
 * rv_coder_plain_only); how many of the table this processor runs, with *skipped (may be NULL)
 * the names of the others, or "". */
RV_HIDDEN int rv_lanes_selected(void);
RV_HIDDEN int rv_lanes_versions(const char **skipped);

#endif
