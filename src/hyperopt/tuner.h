/* tuner.h: the tuner handle, shared by its driver (tuner.c: search, refinement, budget) and its
 * checkpoint (tuner_checkpoint.c). docs/hyperopt.md describes the method. */
#ifndef REVL_HYPEROPT_TUNER_H
#define REVL_HYPEROPT_TUNER_H

#include "core/model.h"
#include "hyperopt/sampler.h"
#include "optim/optim.h"

#include <time.h>

/* Layout of z (the families' output, revl.h): one step-major block of n_sg values per kind of
 * the optimiser in its order, then n_groups log init scales, then n_meta meta. */
struct revl_tuner {
    revl_allocator alloc;
    revl_tuner_options opts; /* validated copy; allocator cleared */
    revl_model *model;
    const revl_dataset *valid;
    const rv_optim *opt;
    size_t n_kinds, n_steps, n_groups, n_params, n_meta, n_sg, n_z;
    size_t z_clip;  /* the clip block of z when the families learn log clip (last, as in the
                       families' z); SIZE_MAX otherwise */
    revl_family *search, *refine; /* the tuner's own copies */
    size_t ns, nr;                /* n_theta of search and refine */
    double *lo, *hi;              /* the search box (ns each) */
    revl_schedule *sched;
    revl_trainer *trainer;
    rv_sampler *sampler;          /* NULL when the strategy has no search */

    /* scratch */
    double *z, *dz, *w0, *wT, *dfdw, *d_w0, *dfdmeta, *u, *theta_s;
    double *g_acc;                /* n_z: hypergradient summed over minibatch orders */

    /* the best point so far */
    double *best_z, *best_w;
    double best_loss, best_acc;
    int have_best, best_phase;

    /* the refinement: current point theta (nr), its loss and hypergradient (nr), Adam moments */
    double *theta, *grad, *m1, *m2, *cand;
    double *start_z;              /* n_z: the start point, the refine family's base */
    double cur_loss, step, min_norm;
    size_t adam_t;
    int have_point;               /* theta, cur_loss, grad describe a trained point */
    size_t start;                 /* refinement starts begun */
    size_t start_runs0;           /* runs used when the current start began */
    double start_seconds0;

    /* progress and budget */
    int phase;                    /* REVL_TUNE_PHASE_* */
    int search_rest;              /* the refinement's starts have all ended: search to the end */
    size_t search_evals, refine_iters, runs;
    double seconds_before;        /* time used before a checkpoint was loaded */
    struct timespec t0;           /* when this process's part of the run began */
    int clock_started;
    int in_step;
    double watch_first;           /* the current run's first training loss (watch, tuner.c) */
    int abandoned;                /* the current run was stopped as diverging */
    char err[RV_ERRLEN];
};

/* Seconds used so far (this process's part plus seconds_before), on the budget's clock. */
RV_HIDDEN double rv_tuner_seconds(revl_tuner *t);
/* The sampler's configuration from the options (n_initial 0 = 10: Halton points before the
 * Parzen proposals). */
RV_HIDDEN rv_sampler_config rv_tuner_sampler_config(const revl_tuner *t);
/* The options that shape the trajectory, hashed (checkpoints refuse another run's file). */
RV_HIDDEN uint64_t rv_tuner_options_hash(const revl_tuner *t);

#endif
