/* bench_util.h: what the benchmark programs share: a monotonic clock and the trivial model
 * (L = 0.005 |w|^2, so g = 0.01 w and H v = 0.01 v) whose cost is negligible next to revl's. */
#ifndef REVL_BENCH_UTIL_H
#define REVL_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "revl.h"

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int trivial_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                        void *user)
{
    (void)step, (void)meta;
    size_t p = *(size_t *)user;
    for (size_t i = 0; i < p; i++)
        g[i] = 0.01 * w[i];
    if (loss)
        *loss = 0;
    return 0;
}

static int trivial_hvp(size_t step, const double *w, const double *meta, const double *v,
                       double *g, double *hv, double *hm, void *user)
{
    (void)step, (void)meta, (void)hm;
    size_t p = *(size_t *)user;
    for (size_t i = 0; i < p; i++)
        hv[i] = 0.01 * v[i];
    if (g) /* hvp_gives_grad lets the library ask for it, not always */
        for (size_t i = 0; i < p; i++)
            g[i] = 0.01 * w[i];
    return 0;
}

/* A model of *p parameters (p must outlive it), or exit with a message. */
static inline revl_model *trivial_model(size_t *p)
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = *p;
    d.grad = trivial_grad;
    d.hvp = trivial_hvp;
    d.hvp_gives_grad = 1;
    d.user = p;
    revl_model *m = NULL;
    int rc = revl_model_create(&m, &d);
    if (rc) {
        fprintf(stderr, "bench: revl_model_create: %s\n", revl_strerror(rc));
        exit(1);
    }
    return m;
}

static inline void bench_check(int rc, const char *what, const char *msg)
{
    if (rc) {
        fprintf(stderr, "bench: %s: %s (%s)\n", what, revl_strerror(rc), msg ? msg : "");
        exit(1);
    }
}

#endif
