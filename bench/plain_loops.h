/* plain_loops.h: the loops revl's exact trainer replaces, in doubles, calling the same model:
 * momentum SGD, torch.optim.Adam's, AdamW's and RMSprop's (momentum > 0) updates with the
 * benchmarks' constants below, each returning its wall time, and revl's schedule with the same
 * constants; the baselines of bench_mlp, bench_adam_core and bench_overlap. */
#ifndef REVL_BENCH_PLAIN_LOOPS_H
#define REVL_BENCH_PLAIN_LOOPS_H

#include <math.h>
#include <string.h>

#include "bench_util.h"

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

/* torch.optim.RMSprop's update of one step with momentum > 0 (revl's RMSprop, rmsprop.c):
 * s <- beta2 s + (1-beta2) g^2, b <- gamma b + g / (sqrt(s) + eps), w <- w - alpha b. */
static inline void plain_rmsprop_update(size_t p, double *w, double *s, double *b, const double *g,
                                        double alpha, double gamma, double beta2, double eps)
{
    for (size_t i = 0; i < p; i++) {
        s[i] = beta2 * s[i] + (1 - beta2) * g[i] * g[i];
        b[i] = gamma * b[i] + g[i] / (sqrt(s[i]) + eps);
        w[i] -= alpha * b[i];
    }
}

/* The benchmarks' hyperparameters, in revl's names: momentum SGD (v <- gamma v - (1-gamma) g,
 * w <- w + alpha v); Adam and AdamW as torch's defaults but alpha (torch's lr); RMSprop as a torch
 * user runs it with momentum (torch's lr, alpha, momentum, eps = revl's alpha, beta2, gamma,
 * eps); weight decay only in AdamW's. */
#define MOM_ALPHA 0.3
#define MOM_GAMMA 0.9
#define ADAM_ALPHA 0.003
#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8
#define ADAMW_LAMBDA 0.01 /* torch.optim.AdamW's default weight_decay */
#define RMS_ALPHA 0.001
#define RMS_GAMMA 0.9
#define RMS_BETA2 0.99 /* torch.optim.RMSprop's default alpha */
#define RMS_EPS 1e-8

/* The loop revl's optimiser opt replaces, in doubles, with the constants above and the same
 * model: w <- w0, then `steps` gradients and updates; returns its wall time. */
static inline double plain_run(revl_optimizer opt, revl_model *m, size_t steps, const double *w0,
                               const double *meta, double *w)
{
    size_t p = revl_model_n_params(m);
    /* the two states: momentum's v (and an unused one), Adam's m and s, RMSprop's s and b */
    double *a = calloc(p, sizeof *a), *b = calloc(p, sizeof *b), *g = malloc(p * sizeof *g);
    memcpy(w, w0, p * sizeof *w);
    double p1 = 1, p2 = 1, t0 = bench_now();
    for (size_t t = 0; t < steps; t++) {
        int rc = revl_model_grad(m, t, w, meta, g, NULL);
        bench_check(rc, "plain gradient", revl_model_last_error(m));
        p1 *= ADAM_BETA1;
        p2 *= ADAM_BETA2;
        if (opt == REVL_OPTIM_ADAM)
            plain_adam_update(p, w, a, b, g, ADAM_ALPHA, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, 1 - p1,
                              1 - p2);
        else if (opt == REVL_OPTIM_ADAMW)
            plain_adamw_update(p, w, a, b, g, ADAM_ALPHA, ADAMW_LAMBDA, ADAM_BETA1, ADAM_BETA2,
                               ADAM_EPS, 1 - p1, 1 - p2);
        else if (opt == REVL_OPTIM_RMSPROP)
            plain_rmsprop_update(p, w, a, b, g, RMS_ALPHA, RMS_GAMMA, RMS_BETA2, RMS_EPS);
        else
            for (size_t i = 0; i < p; i++) {
                a[i] = MOM_GAMMA * a[i] - (1 - MOM_GAMMA) * g[i];
                w[i] += MOM_ALPHA * a[i];
            }
    }
    double dt = bench_now() - t0;
    free(a);
    free(b);
    free(g);
    return dt;
}

/* revl's schedule of opt for `steps` steps with the constants above in every step and group (the
 * kinds the constants do not name, weight_decay but AdamW's, 0), or exit with a message. */
static inline revl_schedule *bench_schedule(revl_optimizer opt, size_t steps, size_t ng,
                                            const size_t *off)
{
    static const double value[REVL_OPTIM_COUNT][REVL_HYPER_COUNT] = {
        [REVL_OPTIM_MOMENTUM] = {[REVL_HYPER_ALPHA] = MOM_ALPHA, [REVL_HYPER_GAMMA] = MOM_GAMMA},
        [REVL_OPTIM_ADAM] = {[REVL_HYPER_ALPHA] = ADAM_ALPHA, [REVL_HYPER_BETA1] = ADAM_BETA1,
                             [REVL_HYPER_BETA2] = ADAM_BETA2, [REVL_HYPER_EPS] = ADAM_EPS},
        [REVL_OPTIM_ADAMW] = {[REVL_HYPER_ALPHA] = ADAM_ALPHA, [REVL_HYPER_BETA1] = ADAM_BETA1,
                              [REVL_HYPER_BETA2] = ADAM_BETA2, [REVL_HYPER_EPS] = ADAM_EPS,
                              [REVL_HYPER_WEIGHT_DECAY] = ADAMW_LAMBDA},
        [REVL_OPTIM_RMSPROP] = {[REVL_HYPER_ALPHA] = RMS_ALPHA, [REVL_HYPER_GAMMA] = RMS_GAMMA,
                                [REVL_HYPER_BETA2] = RMS_BETA2, [REVL_HYPER_EPS] = RMS_EPS},
    };
    revl_schedule *s = NULL;
    bench_check(revl_schedule_create_for(&s, opt, steps, ng, off, NULL), "revl_schedule_create_for",
                "");
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t n = revl_schedule_kinds(s, kinds);
    for (size_t k = 0; k < n; k++)
        bench_check(revl_schedule_fill_kind(s, kinds[k], value[opt][kinds[k]]),
                    "revl_schedule_fill_kind", revl_schedule_last_error(s));
    return s;
}

#endif
