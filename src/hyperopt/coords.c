/* coords.c: the unconstrained coordinates of hyperparameters (coords.h). */
#include "hyperopt/coords.h"

#include <float.h>
#include <math.h>

rv_coord rv_kind_coord(revl_hyper kind)
{
    switch (kind) {
    case REVL_HYPER_ALPHA:
    case REVL_HYPER_EPS:
    case REVL_HYPER_CLIP:
        return RV_COORD_LOG;
    case REVL_HYPER_WEIGHT_DECAY:
        return RV_COORD_LOG0;
    case REVL_HYPER_GAMMA:
        return RV_COORD_LOGIT16;
    case REVL_HYPER_BETA1:
    case REVL_HYPER_BETA2:
        return RV_COORD_LOGIT24;
    }
    return RV_COORD_AS_IS;
}

unsigned rv_kind_learn_bit(revl_hyper kind)
{
    switch (kind) {
    case REVL_HYPER_ALPHA: return REVL_LEARN_ALPHA;
    case REVL_HYPER_GAMMA: return REVL_LEARN_GAMMA;
    case REVL_HYPER_BETA1: return REVL_LEARN_BETA1;
    case REVL_HYPER_BETA2: return REVL_LEARN_BETA2;
    case REVL_HYPER_EPS: return REVL_LEARN_EPS;
    case REVL_HYPER_WEIGHT_DECAY: return REVL_LEARN_WEIGHT_DECAY;
    case REVL_HYPER_CLIP: return REVL_LEARN_CLIP; /* reserved: refused by the hyper-optimiser */
    }
    return 0;
}

unsigned revl_hyper_learn_bit(revl_hyper kind)
{
    return rv_kind_learn_bit(kind);
}

const char *rv_kind_coord_name(revl_hyper kind)
{
    switch (kind) {
    case REVL_HYPER_ALPHA: return "log alpha";
    case REVL_HYPER_GAMMA: return "logit gamma";
    case REVL_HYPER_BETA1: return "logit beta1";
    case REVL_HYPER_BETA2: return "logit beta2";
    case REVL_HYPER_EPS: return "log eps";
    case REVL_HYPER_WEIGHT_DECAY: return "log weight_decay";
    case REVL_HYPER_CLIP: return "log clip";
    }
    return "?";
}

double rv_to_unconstrained(rv_coord c, double x)
{
    if (c == RV_COORD_LOG)
        return log(x);
    if (c == RV_COORD_LOG0)
        return x > 0 ? fmax(log(x), -RV_LOG_ALPHA_MAX) : -RV_LOG_ALPHA_MAX;
    if (c == RV_COORD_LOGIT16 || c == RV_COORD_LOGIT24) {
        /* logit(1 - 2^-b) = log(2^b - 1) */
        const double lim = log(c == RV_COORD_LOGIT16 ? 65535.0 : 16777215.0);
        double z = log(x) - log1p(-x);
        return z > lim ? lim : z < -lim ? -lim : z;
    }
    return x;
}

double rv_from_unconstrained(rv_coord c, double z)
{
    if (c == RV_COORD_LOG)
        return exp(fmin(fmax(z, -RV_LOG_ALPHA_MAX), RV_LOG_ALPHA_MAX));
    if (c == RV_COORD_LOG0)
        return z > -RV_LOG_ALPHA_MAX ? exp(fmin(z, RV_LOG_ALPHA_MAX)) : 0.0;
    if (c == RV_COORD_LOGIT16 || c == RV_COORD_LOGIT24) {
        double lo = c == RV_COORD_LOGIT16 ? 0x1p-16 : 0x1p-24;
        double x = 1.0 / (1.0 + exp(-z));
        return fmin(fmax(x, lo), 1.0 - lo);
    }
    /* log init scales and meta are used as they are; only keep them finite */
    return isfinite(z) ? z : copysign(DBL_MAX, z);
}

double rv_coord_dnatural(rv_coord c, double x)
{
    if (c == RV_COORD_LOG || c == RV_COORD_LOG0)
        return x;
    if (c == RV_COORD_LOGIT16 || c == RV_COORD_LOGIT24)
        return x * (1.0 - x);
    return 1.0;
}
