/* testutil_dp.h: the data-parallel test problems, shared by the single-process suite
 * (check_dp.c) and the MPI suite run on 1..4 ranks (tests/mpi/check_mpi.c): a logistic
 * regression given as per-micro-batch callbacks and the built-in MLP, trained with momentum or
 * Adam, reversed for every hypergradient. */
#ifndef REVL_TESTUTIL_DP_H
#define REVL_TESTUTIL_DP_H

#include "revl.h"

enum dp_fault {
    DP_FAULT_NONE = 0,
    DP_FAULT_CALLBACK = 1, /* fault_rank's callback returns 7 at fault_step, forward pass */
    DP_FAULT_NAN = 2,      /* fault_rank's gradient is NaN at fault_step, reverse pass */
    DP_FAULT_DRIFT = 3,    /* fault_rank's gradient moves by 2^-30 in the reverse pass */
    DP_FAULT_ALPHA = 4,    /* fault_rank's schedule has another alpha */
    /* fault_rank differs in what decides the bits but not in the point of any call before: */
    DP_FAULT_N_MICRO = 5,    /* its model has one more micro-batch */
    DP_FAULT_FRAC_BITS = 6,  /* its model rounds to 2^-39 */
    DP_FAULT_LAST_ALPHA = 7, /* its alpha differs at the last step only */
    DP_FAULT_TRUNCATE = 8,   /* its trainer keeps only the last 2 steps */
    DP_FAULT_STEPS = 9,      /* its schedule has one step less */
    DP_FAULT_META = 10,      /* its meta differs (its micro-batches hold no penalty) */
    DP_FAULT_DFDW = 11       /* its dfdw differs, hence its Hessian-vector directions */
};

typedef struct dp_case {
    int mlp;                 /* 0: logistic regression callbacks, 1: built-in MLP */
    revl_optimizer optimizer;
    int plain;               /* 1: the ordinary model (floating-point batch sums), no comm */
    size_t n_micro;
    const revl_comm *comm;   /* NULL = local */
    enum dp_fault fault;
    int fault_rank;          /* -1: every rank (DP_FAULT_CALLBACK) */
    size_t fault_step;
    int style;               /* 1: hvp writes hv_meta only in micro-batch 0; 2: grad and hvp add
                                into their outputs (both rely on the outputs being 0 on entry) */
    double alpha_delta;      /* added to alpha at step delta_step, every group (finite differences) */
    size_t delta_step;
    double clip;             /* > 0: every step and group clipped at this global norm, and d clip
                                is in the output as a last kind; 0: no clipping */
    double weight_decay;     /* > 0: every step and group (coupled for momentum and RMSprop,
                                decoupled for AdamW; Adam has none); 0: the default */
} dp_case;

/* Steps of the logistic regression and the MLP problems. */
#define DP_LR_STEPS 20
#define DP_MLP_STEPS 15

/* Runs train + hypergrad_kinds; on success *out (malloc'd, *n_out doubles) holds w_T, every
 * kind's hypergradient (the schedule's kinds, then clip when c->clip > 0), d_w0, d_meta, the last loss and the buffer size. Returns the status of
 * the call that failed (message in msg[256]) or REVL_OK. */
int dp_run(const dp_case *c, double **out, size_t *n_out, char *msg);

#endif
