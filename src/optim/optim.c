/* optim.c: the table of registered optimisers, and the hyperparameter kinds they share: names,
 * ranges and applied values (the one place that knows them; schedule and hyper-optimiser ask
 * here). */
#include "optim/optim.h"

#include "exact/rate.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>

static const rv_optim *const registered[REVL_OPTIM_COUNT] = {
    [REVL_OPTIM_MOMENTUM] = &rv_optim_momentum,
    [REVL_OPTIM_ADAM] = &rv_optim_adam,
    [REVL_OPTIM_RMSPROP] = &rv_optim_rmsprop,
    [REVL_OPTIM_ADAMW] = &rv_optim_adamw,
};

const rv_optim *rv_optim_get(revl_optimizer id)
{
    return (unsigned)id < REVL_OPTIM_COUNT ? registered[id] : NULL;
}

const char *revl_optimizer_name(revl_optimizer opt)
{
    const rv_optim *o = rv_optim_get(opt);
    return o ? o->name : NULL;
}

static const char *const hyper_names[REVL_HYPER_COUNT] = {"alpha", "gamma", "beta1", "beta2",
                                                          "eps",   "weight_decay", "clip"};

const char *revl_hyper_name(revl_hyper kind)
{
    return (unsigned)kind < REVL_HYPER_COUNT ? hyper_names[kind] : NULL;
}

double revl_hyper_applied(revl_hyper kind, double value)
{
    switch (kind) {
    case REVL_HYPER_ALPHA:
        return isfinite(value) ? value : NAN;
    case REVL_HYPER_GAMMA:
        return rv_rate_applied(RV_GRID_GAMMA, value);
    case REVL_HYPER_BETA1:
    case REVL_HYPER_BETA2:
        return rv_rate_applied(RV_GRID_BETA, value);
    case REVL_HYPER_EPS:
        return isfinite(value) && value > 0 ? value : NAN;
    case REVL_HYPER_WEIGHT_DECAY:
        return isfinite(value) && value >= 0 ? value : NAN;
    case REVL_HYPER_CLIP:
        return value > 0 ? value : NAN; /* +inf: no clipping */
    }
    return NAN;
}

/* value with the fewest significant digits that read back as it (%g's six would show a value
 * just outside [2^-16, 1] as "1", inside the interval printed next to it) */
static const char *shortest(double value, char out[32])
{
    for (int digits = 6; digits < 17; digits++) {
        snprintf(out, 32, "%.*g", digits, value);
        if (strtod(out, NULL) == value || isnan(value))
            return out;
    }
    snprintf(out, 32, "%.17g", value);
    return out;
}

const char *rv_hyper_problem(revl_hyper kind, double value, char *buf, size_t len)
{
    if (!isnan(revl_hyper_applied(kind, value)))
        return NULL;
    char v[32];
    switch (kind) {
    case REVL_HYPER_ALPHA:
        snprintf(buf, len, "alpha is not finite");
        break;
    case REVL_HYPER_GAMMA:
        snprintf(buf, len, "gamma = %s outside [2^-16, 1]", shortest(value, v));
        break;
    case REVL_HYPER_BETA1:
    case REVL_HYPER_BETA2:
        snprintf(buf, len, "%s = %s outside [2^-24, 1-2^-24]", hyper_names[kind],
                 shortest(value, v));
        break;
    case REVL_HYPER_EPS:
        snprintf(buf, len, "eps = %s must be finite and > 0", shortest(value, v));
        break;
    case REVL_HYPER_WEIGHT_DECAY:
        snprintf(buf, len, "weight_decay = %g must be finite and >= 0", value);
        break;
    case REVL_HYPER_CLIP:
        snprintf(buf, len, "clip = %g must be > 0 (+inf: no clipping)", value);
        break;
    default:
        snprintf(buf, len, "unknown hyperparameter kind %d", (int)kind);
    }
    return buf;
}

int rv_optim_kind_index(const rv_optim *o, revl_hyper kind)
{
    for (size_t k = 0; k < o->n_kinds; k++)
        if (o->kinds[k] == kind)
            return (int)k;
    return -1;
}
