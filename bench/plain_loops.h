/* plain_loops.h: the loops revl's exact trainer replaces, in doubles, calling the same model:
 * momentum SGD (alpha 0.3, gamma 0.9), torch.optim.Adam's update (the ADAM_* constants) and
 * torch.optim.AdamW's (the same and weight decay ADAMW_LAMBDA), each returning its wall time;
 * the baselines of bench_mlp, bench_adam_core and bench_overlap. */
#ifndef REVL_BENCH_PLAIN_LOOPS_H
#define REVL_BENCH_PLAIN_LOOPS_H

#include <math.h>
#include <string.h>

#include "bench_util.h"

/* The loop revl replaces: momentum SGD in doubles with the same schedule and model. */
static inline double plain_training(revl_model *m, size_t steps, const double *w0,
                                    const double *meta, double *w)
{
    size_t p = revl_model_n_params(m);
    double *v = calloc(p, sizeof *v), *g = malloc(p * sizeof *g);
    memcpy(w, w0, p * sizeof *w);
    double t0 = bench_now();
    for (size_t t = 0; t < steps; t++) {
        int rc = revl_model_grad(m, t, w, meta, g, NULL);
        bench_check(rc, "plain gradient", revl_model_last_error(m));
        for (size_t i = 0; i < p; i++) {
            v[i] = 0.9 * v[i] - 0.1 * g[i];
            w[i] += 0.3 * v[i];
        }
    }
    double dt = bench_now() - t0;
    free(v);
    free(g);
    return dt;
}

/* torch.optim.Adam's update of one step in doubles; c1, c2: the bias corrections. */
static inline void plain_adam_update(size_t p, double *w, double *m, double *s, const double *g,
                                     double alpha, double b1, double b2, double eps, double c1,
                                     double c2)
{
    for (size_t i = 0; i < p; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        s[i] = b2 * s[i] + (1 - b2) * g[i] * g[i];
        w[i] -= alpha * (m[i] / c1) / (sqrt(s[i] / c2) + eps);
    }
}

/* torch.optim.AdamW's update of one step: the decoupled decay w <- w (1 - alpha lambda), then
 * Adam's, in the same pass over w (torch's foreach kernels make two; one is the faster floor). */
static inline void plain_adamw_update(size_t p, double *w, double *m, double *s, const double *g,
                                      double alpha, double lambda, double b1, double b2,
                                      double eps, double c1, double c2)
{
    const double rho = 1 - alpha * lambda;
    for (size_t i = 0; i < p; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        s[i] = b2 * s[i] + (1 - b2) * g[i] * g[i];
        w[i] = w[i] * rho - alpha * (m[i] / c1) / (sqrt(s[i] / c2) + eps);
    }
}

/* The loop revl's Adam (lambda = 0) or AdamW replaces: torch.optim.Adam's or AdamW's update in
 * doubles, same model. */
#define ADAM_ALPHA 0.003
#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8
#define ADAMW_LAMBDA 0.01 /* torch.optim.AdamW's default weight_decay */
static inline double plain_adam_wd(revl_model *m, size_t steps, const double *w0,
                                   const double *meta, double *w, double lambda)
{
    size_t p = revl_model_n_params(m);
    double *mo = calloc(p, sizeof *mo), *so = calloc(p, sizeof *so), *g = malloc(p * sizeof *g);
    memcpy(w, w0, p * sizeof *w);
    double p1 = 1, p2 = 1, t0 = bench_now();
    for (size_t t = 0; t < steps; t++) {
        int rc = revl_model_grad(m, t, w, meta, g, NULL);
        bench_check(rc, "plain gradient", revl_model_last_error(m));
        p1 *= ADAM_BETA1;
        p2 *= ADAM_BETA2;
        double c1 = 1 - p1, c2 = 1 - p2;
        if (lambda == 0)
            plain_adam_update(p, w, mo, so, g, ADAM_ALPHA, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, c1,
                              c2);
        else
            plain_adamw_update(p, w, mo, so, g, ADAM_ALPHA, lambda, ADAM_BETA1, ADAM_BETA2,
                               ADAM_EPS, c1, c2);
    }
    double dt = bench_now() - t0;
    free(mo);
    free(so);
    free(g);
    return dt;
}

static inline double plain_adam(revl_model *m, size_t steps, const double *w0,
                                const double *meta, double *w)
{
    return plain_adam_wd(m, steps, w0, meta, w, 0);
}

static inline double plain_adamw(revl_model *m, size_t steps, const double *w0,
                                 const double *meta, double *w)
{
    return plain_adam_wd(m, steps, w0, meta, w, ADAMW_LAMBDA);
}

/* seconds for `reps` calls of fn(f) in a row: the floor run the way the model runs */

#endif
