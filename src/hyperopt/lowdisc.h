/* lowdisc.h: a scrambled Halton sequence in (0, 1)^dim, the tuner's space-filling first points
 * (lowdisc.c). Deterministic per seed; any dimension (one prime base per coordinate). */
#ifndef REVL_HYPEROPT_LOWDISC_H
#define REVL_HYPEROPT_LOWDISC_H

#include "base/internal.h"

/* The largest dimension: its prime base (821,641) keeps digits in 32 bits with room to spare. */
#define RV_LOWDISC_MAX_DIM ((size_t)1 << 16)

typedef struct rv_lowdisc {
    size_t dim;
    uint64_t seed;
    uint32_t *base; /* the first dim primes */
} rv_lowdisc;

/* dim in [1, RV_LOWDISC_MAX_DIM] (checked by the caller); REVL_ERR_NOMEM leaves q empty. */
RV_HIDDEN int rv_lowdisc_init(rv_lowdisc *q, size_t dim, uint64_t seed, const revl_allocator *a);
RV_HIDDEN void rv_lowdisc_free(rv_lowdisc *q, const revl_allocator *a);
/* The index-th point (from 0), every coordinate in [2^-53, 1 - 2^-53]. In coordinate d (base
 * b), the points 0 .. b^k - 1 fall one in each interval [i b^-k, (i + 1) b^-k). */
RV_HIDDEN void rv_lowdisc_point(const rv_lowdisc *q, uint64_t index, double *u);

#endif
