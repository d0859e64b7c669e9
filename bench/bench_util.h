/* bench_util.h: what the benchmark programs share: a monotonic clock and the trivial model
 * (L = 0.005 |w|^2, so g = 0.01 w and H v = 0.01 v) whose cost is negligible next to revl's. */
#ifndef REVL_BENCH_UTIL_H
#define REVL_BENCH_UTIL_H

#include <stdint.h>
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

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of x[0..n), n >= 1 (x is sorted in place). */
static inline double bench_median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, bench_cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* One line under a table: the target for a figure, the worst value measured against it,
 * and whether it is met (docs/performance.md says why where it is not). */
static inline void bench_target(const char *what, double worst, const char *cmp, double limit)
{
    int met = cmp[0] == '<' ? worst <= limit : worst >= limit;
    printf("target: %s %s %g: worst measured %.2f: %s\n", what, cmp, limit, worst,
           met ? "met" : "NOT MET");
}

/* Threads of the trivial model's loops (same bits for any count: elementwise): set to the
 * trainer's thread count where a benchmark measures threads, so that a serial model call does
 * not cap the exact core's speed-up (Amdahl) in a measurement of the core. */
static int bench_model_threads = 1;

static int trivial_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                        void *user)
{
    (void)step, (void)meta;
    long p = (long)*(size_t *)user;
#pragma omp parallel for schedule(static) num_threads(bench_model_threads) if (bench_model_threads > 1)
    for (long i = 0; i < p; i++)
        g[i] = 0.01 * w[i];
    if (loss)
        *loss = 0;
    return 0;
}

static int trivial_hvp(size_t step, const double *w, const double *meta, const double *v,
                       double *g, double *hv, double *hm, void *user)
{
    (void)step, (void)meta, (void)hm;
    long p = (long)*(size_t *)user;
#pragma omp parallel for schedule(static) num_threads(bench_model_threads) if (bench_model_threads > 1)
    for (long i = 0; i < p; i++) {
        hv[i] = 0.01 * v[i];
        if (g) /* hvp_gives_grad lets the library ask for it, not always */
            g[i] = 0.01 * w[i];
    }
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

/* A table of run-level versions against the first (plain) one: for P = 10^4, 10^5, ... up to
 * max_p, T = 10^7 / P steps (at most max_steps), one row per version: run(k, P, T, &fwd, &rev)
 * returns a checksum every version must share (0: failed) and its times in ns per
 * parameter-step. */
typedef uint64_t (*bench_version_fn)(int k, size_t p, size_t steps, double *fwd, double *rev);

static inline void bench_versions_table(int n, const char *const *names, const char *skipped,
                                        size_t max_p, size_t max_steps, bench_version_fn run)
{
    if (*skipped)
        printf("*** not run on this CPU: %s ***\n", skipped);
    printf("%10s %6s | %-17s %9s %9s | %9s %9s | %s\n", "P", "T", "version", "fwd ns", "rev ns",
           "plain/fwd", "plain/rev", "same bits");
    for (size_t p = 10000; p <= max_p; p *= 10) {
        size_t steps = (size_t)(1e7 / (double)p);
        steps = steps > max_steps ? max_steps : steps;
        double f0 = 0, r0 = 0;
        uint64_t ref = 0;
        for (int k = 0; k < n; k++) {
            double f, r;
            uint64_t sum = run(k, p, steps, &f, &r);
            if (k == 0) {
                f0 = f;
                r0 = r;
                ref = sum;
            }
            printf("%10zu %6zu | %-17s %9.2f %9.2f | %9.2f %9.2f | %s\n", p, steps, names[k], f,
                   r, f0 / f, r0 / r, sum == ref && sum ? "yes" : "NO");
        }
    }
}

#endif
