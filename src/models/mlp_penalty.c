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

/* sum of a[i] b[i] as eight interleaved partial sums (i mod 8) added pairwise at the end: a
 * fixed order, so the same bits on every call, and eight independent chains of additions where
 * one chain waits on each addition's latency (a layer of 39,250 weights: 0.05 ms a sum) */
static double dot8(const double *a, const double *b, size_t n)
{
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++)
        s[j] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
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
                value += 0.5 * lam * dot8(w + lo, w + lo, hi - lo);
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
                hv_meta[l] = lam * dot8(w + lo, v + lo, hi - lo);
        }
    } else if (m->penalty == REVL_PENALTY_PER_WEIGHT) {
        for (size_t i = 0; i < m->n_params; i++) {
            hv[i] += m->lambda[i] * v[i];
            if (hv_meta)
                hv_meta[i] = m->lambda[i] * (w[i] * v[i]);
        }
    }
}
