/* sampler.h: the tuner's global search over the unit cube [0, 1]^dim (the family's box, scaled):
 * low-discrepancy points first, then proposals from Parzen estimators of the good and the bad
 * evaluations (Bergstra et al., "Algorithms for Hyper-Parameter Optimization", NeurIPS 2011).
 * Deterministic: a proposal is a function of the seed, its index and the results told before
 * it, so a resumed search (the told results reloaded) proposes the same points. */
#ifndef REVL_HYPEROPT_SAMPLER_H
#define REVL_HYPEROPT_SAMPLER_H

#include "base/internal.h"

typedef struct rv_sampler rv_sampler;

typedef struct rv_sampler_config {
    size_t dim;            /* in [1, RV_LOWDISC_MAX_DIM = 65536] */
    uint64_t seed;
    size_t n_initial;      /* low-discrepancy points before model-based proposals (>= 1) */
    size_t n_candidates;   /* candidates drawn from the good density per proposal (>= 1) */
    double good_fraction;  /* in (0, 1): share of the told results modelled as good */
} rv_sampler_config;

/* NULL allocator = malloc/free. REVL_ERR_INVALID (message in err) for a bad config. */
RV_HIDDEN int rv_sampler_create(rv_sampler **out, const rv_sampler_config *cfg,
                                const revl_allocator *a, char *err);
RV_HIDDEN void rv_sampler_free(rv_sampler *s);
/* The next point u[dim] in (0, 1)^dim: the n_told-th point of a scrambled low-discrepancy
 * sequence while n_told < n_initial (or while every told loss is +inf), else the best of
 * n_candidates draws from the good density by the ratio good / bad. Does not change the sampler
 * (proposing twice gives the same point) and does not allocate. */
RV_HIDDEN int rv_sampler_propose(rv_sampler *s, double *u);
/* Record the result of evaluating u (copied; every u[d] in [0, 1]): loss finite, or +inf for a
 * run that diverged or failed (always counted among the bad). A NaN or -inf loss or a point
 * outside the cube: REVL_ERR_INVALID; that and REVL_ERR_NOMEM leave the sampler as it was. */
RV_HIDDEN int rv_sampler_tell(rv_sampler *s, const double *u, double loss);
RV_HIDDEN size_t rv_sampler_n_told(const rv_sampler *s);
/* The k-th told point and its loss (loss NULL ok), for checkpoints and the best points; NULL
 * when k >= n_told. The pointer is valid until the next tell, reset or free. */
RV_HIDDEN const double *rv_sampler_point(const rv_sampler *s, size_t k, double *loss);
/* Forget every told result (before a checkpoint's results are told again). */
RV_HIDDEN void rv_sampler_reset(rv_sampler *s);
/* The message of the last failed propose or tell. */
RV_HIDDEN const char *rv_sampler_last_error(const rv_sampler *s);
/* log l(u) and log g(u), the good and the bad densities of the results told so far at u in
 * [0, 1]^dim, whose difference ranks the candidates (for tests and reports; either NULL ok).
 * A set without results is the prior (uniform: log 0). */
RV_HIDDEN int rv_sampler_log_densities(rv_sampler *s, const double *u, double *log_good,
                                       double *log_bad);

#endif
