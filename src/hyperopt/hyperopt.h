/* hyperopt.h: the hyper-optimiser handle, shared by the meta-iteration loop (hyperopt.c) and the
 * plain-text save/load of its hyperparameters (hyperopt_io.c). */
#ifndef REVL_HYPEROPT_H
#define REVL_HYPEROPT_H

#include "core/model.h"
#include "optim/optim.h"

/* Every hyperparameter vector (current, best, previous, gradients, optimiser moments) has the
 * same layout of n_theta numbers, in natural units for the values and in the unconstrained
 * coordinates for gradients and moments: one step-major block of n_sg = n_steps * n_groups per
 * kind of the optimiser, in its order (momentum: alpha, gamma; Adam: alpha, beta1, beta2, eps),
 * then
 *   [n_kinds n_sg, n_kinds n_sg + G)   log init scale per group
 *   [n_kinds n_sg + G, + n_meta)       meta
 * and, only when learn has REVL_LEARN_CLIP, a last step-major block of n_sg clip thresholds
 * (the driver's kind every optimiser has; at clip_off). Without that bit the layout is the one
 * files were written in before the clip existed, so old checkpoints and text files load
 * unchanged; the clip then stays in the owned schedule (+inf unless set_kind changed it). */
struct revl_hyperopt {
    revl_allocator alloc;
    revl_hyperopt_options opts; /* validated copy; opts.allocator cleared */
    revl_model *model;
    const revl_dataset *valid;
    revl_schedule *sched;
    revl_trainer *trainer;
    const rv_optim *opt;   /* its kinds give the layout */
    size_t n_kinds;
    size_t clip_off;   /* where the learned clip block starts; SIZE_MAX when it is not learned */
    size_t n_steps, n_groups, n_params, n_meta, n_sg, n_theta;

    double *cur;       /* current hyperparameters, natural units */
    double *best;      /* those that gave the lowest validation loss so far */
    double best_loss;  /* +inf until a meta-iteration has run */
    int have_best;

    /* The optimiser: first/second moments for Adam, velocity (m1) for SGD, in unconstrained
     * coordinates; adam_t counts the updates applied (bias correction). */
    double *m1, *m2;
    size_t adam_t;
    double step_size;  /* in force: opts.step_size halved by each chaos shrink */
    double min_norm;   /* running minimum of the hypergradient norm; +inf before the first */

    /* The point before the last applied update, its moments and the gradient that moved it,
     * so that the chaos guard can step back and take that update again at half the size. */
    double *prev, *prev_m1, *prev_m2, *prev_grad;
    size_t prev_adam_t;
    int have_prev;

    double *grad;      /* this meta-iteration's hypergradient, unconstrained coordinates */
    double *w0, *wT, *dfdw, *d_w0; /* n_params each */
    double *dfdmeta;   /* n_meta (NULL when 0) */
    size_t *offsets;   /* n_groups + 1: the model's groups when the hyper-optimiser was made */
    int in_step;       /* nonzero during revl_hyperopt_step: set and load are refused (a call
                          from the objective would change the values the step is using) */
    size_t iteration;  /* meta-iterations done */
    char err[RV_ERRLEN];
};

/* Check natural-unit values before they replace the current ones: every kind's block in its
 * range (optim.c), log init scales and meta finite; x is a whole n_theta vector. */
RV_HIDDEN int rv_hyperopt_check_theta(revl_hyperopt *h, const double *x);
/* Where kind's block starts in a theta vector, or SIZE_MAX when the optimiser lacks the kind. */
RV_HIDDEN size_t rv_hyperopt_kind_offset(const revl_hyperopt *h, revl_hyper kind);
/* The current values were replaced from outside (set, load): the optimiser's step-back point
 * no longer describes where they came from. */
RV_HIDDEN void rv_hyperopt_values_replaced(revl_hyperopt *h);
/* REVL_ERR_STATE naming `function` when called from inside a meta-iteration, else REVL_OK. */
RV_HIDDEN int rv_hyperopt_not_in_step(revl_hyperopt *h, const char *function);

#endif
