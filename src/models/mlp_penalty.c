/* mlp_penalty.c: the MLP's L2 penalties with log-scale strengths meta (one per layer or one per
 * parameter), their gradient, their Hessian-vector product and the mixed meta term, all exact. */
#include "models/mlp.h"

#include "base/vmath.h"

#include <math.h>
#include <string.h>

void rv_mlp_penalty_prepare(rv_mlp *m, const double *meta)
{
    if (m->n_meta == 0)
        return;
    /* compare bits: equal bits give equal exp() bits, NaN included */
    if (m->lambda_valid && memcmp(m->meta_seen, meta, m->n_meta * sizeof *meta) == 0)
        return;
    for (size_t j = 0; j < m->n_meta; j++)
        m->lambda[j] = exp(meta[j]);
    memcpy(m->meta_seen, meta, m->n_meta * sizeof *meta);
    m->lambda_valid = 1;
}

double rv_mlp_penalty_grad(const rv_mlp *m, const double *w, double *grad, int with_value)
{
    double value = 0;
    if (m->penalty == REVL_PENALTY_PER_LAYER) {
        for (size_t l = 0; l < m->n_layers; l++) {
            size_t lo = m->offsets[2 * l], hi = m->offsets[2 * l + 2];
            double lam = m->lambda[l];
            rv_vaxpy(grad + lo, lam, w + lo, hi - lo);
            if (with_value)
                value += 0.5 * lam * rv_vdot8(w + lo, w + lo, hi - lo);
        }
    } else if (m->penalty == REVL_PENALTY_PER_WEIGHT) {
        for (size_t i = 0; i < m->n_params; i++) {
            value += 0.5 * m->lambda[i] * (w[i] * w[i]);
            grad[i] += m->lambda[i] * w[i];
        }
    }
    return value;
}

void rv_mlp_penalty_hvp(const rv_mlp *m, const double *w, const double *v, double *hv,
                        double *hv_meta)
{
    if (m->penalty == REVL_PENALTY_PER_LAYER) {
        for (size_t l = 0; l < m->n_layers; l++) {
            size_t lo = m->offsets[2 * l], hi = m->offsets[2 * l + 2];
            double lam = m->lambda[l];
            rv_vaxpy(hv + lo, lam, v + lo, hi - lo);
            if (hv_meta)
                hv_meta[l] = lam * rv_vdot8(w + lo, v + lo, hi - lo);
        }
    } else if (m->penalty == REVL_PENALTY_PER_WEIGHT) {
        for (size_t i = 0; i < m->n_params; i++) {
            hv[i] += m->lambda[i] * v[i];
            if (hv_meta)
                hv_meta[i] = m->lambda[i] * (w[i] * v[i]);
        }
    }
}
