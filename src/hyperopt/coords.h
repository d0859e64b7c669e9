/* coords.h: the unconstrained coordinates z in which hyperparameters are learned and searched
 * (log alpha, logit gamma, logit beta1/beta2, log eps; log init scales and meta as they are),
 * shared by the hyper-optimiser, the schedule families and the tuner. */
#ifndef REVL_HYPEROPT_COORDS_H
#define REVL_HYPEROPT_COORDS_H

#include "base/internal.h"

/* Bounds that keep values usable: exp(log alpha) (and eps) stays a positive, finite normal
 * number, and a rate = sigmoid(logit) stays within [2^-b, 1 - 2^-b] of its grid (b = 16 for
 * gamma, 24 for the betas), where the trainer's n/2^b is neither 0 nor exactly 1. */
#define RV_LOG_ALPHA_MAX 700.0

/* RV_COORD_LOG0: log of a value that may be 0 (weight_decay, 0 by default for momentum and
 * RMSprop): z <= -RV_LOG_ALPHA_MAX is exactly 0, so the default has a finite coordinate. */
typedef enum rv_coord {
    RV_COORD_LOG,
    RV_COORD_LOGIT16,
    RV_COORD_LOGIT24,
    RV_COORD_AS_IS,
    RV_COORD_LOG0
} rv_coord;

/* The coordinate a kind is learned in, its learn bit (REVL_LEARN_*) and its name ("log alpha"). */
RV_HIDDEN rv_coord rv_kind_coord(revl_hyper kind);
RV_HIDDEN unsigned rv_kind_learn_bit(revl_hyper kind);
RV_HIDDEN const char *rv_kind_coord_name(revl_hyper kind);
/* natural -> z (logits clamped so that a rate of 1 has a finite coordinate) and back (clamped
 * into the ranges above); z -> natural of a non-finite z gives a finite value. */
RV_HIDDEN double rv_to_unconstrained(rv_coord c, double x);
RV_HIDDEN double rv_from_unconstrained(rv_coord c, double z);
/* d natural / d z at the applied natural value x (log, log0: x; logit: x (1 - x); as is: 1). */
RV_HIDDEN double rv_coord_dnatural(rv_coord c, double x);

#endif
