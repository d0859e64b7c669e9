/* bench_adam_core.c: the exact Adam core (one thread, trivial model g = 0.01 w) against a plain
 * double Adam loop over the same model, measured side by side in one run, in CPU time (the
 * machine is shared), best of `reps` runs each.
 * Usage: bench_adam_core [max_P] [reps]   (defaults 10^7 and 3; prints one table) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plain_loops.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* torch.optim.Adam's step in doubles, the model call included (as the exact core's is). */
static double plain_adam_core(size_t p, size_t steps, double *w, double *m, double *s, double *g)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, alpha = 1e-3;
    double p1 = 1, p2 = 1;
    double t0 = cpu_now();
    memset(m, 0, p * sizeof *m);
    memset(s, 0, p * sizeof *s);
    for (size_t t = 0; t < steps; t++) {
        trivial_grad(t, w, NULL, g, NULL, &p);
        p1 *= b1;
        p2 *= b2;
        double c1 = 1 - p1, c2 = 1 - p2;
        plain_adam_update(p, w, m, s, g, alpha, b1, b2, eps, c1, c2);
    }
    return cpu_now() - t0;
}

static int exact_adam(size_t p, size_t steps, double *fwd, double *rev)
{
    revl_model *m = trivial_model(&p);
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    size_t off[2] = {0, p};
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.threads = 1;
    int rc = revl_schedule_create_for(&s, REVL_OPTIM_ADAM, steps, 1, off, NULL);
    if (!rc)
        rc = revl_trainer_create(&t, m, s, &o);
    double *w0 = malloc(p * 8), *dl = malloc(p * 8);
    for (size_t i = 0; i < p; i++) {
        w0[i] = 1 + 0.5 * sin((double)i); /* away from 0: g = 0 with eps makes du/dm 1/eps and the
                                               adjoints overflow within T steps */
        dl[i] = 1e-3;
    }
    double t0 = cpu_now();
    if (!rc)
        rc = revl_trainer_train(t, w0, NULL);
    *fwd = cpu_now() - t0;
    t0 = cpu_now();
    if (!rc)
        rc = revl_trainer_hypergrad(t, dl, NULL, NULL, NULL, NULL, NULL);
    *rev = cpu_now() - t0;
    if (rc)
        fprintf(stderr, "bench_adam_core: %s: %s\n", revl_strerror(rc),
                t ? revl_trainer_last_error(t) : "");
    free(w0);
    free(dl);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    size_t max_p = argc > 1 ? (size_t)atof(argv[1]) : 10000000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    printf("revl %s, exact Adam core, 1 thread, trivial gradient g = 0.01 w, CPU time, best of "
           "%d\n",
           revl_version_string(), reps);
    printf("%10s %5s | %9s %9s %9s | %9s %9s\n", "P", "T", "plain ns", "fwd ns", "rev ns",
           "fwd/plain", "rev/plain");
    for (size_t p = 10000; p <= max_p; p *= 10) {
        size_t steps = (size_t)(1e7 / (double)p);
        steps = steps > 200 ? 200 : steps < 5 ? 5 : steps;
        double *w = malloc(p * 8), *m = malloc(p * 8), *s = malloc(p * 8), *g = malloc(p * 8);
        double plain = 1e30, fwd = 1e30, rev = 1e30;
        for (int k = 0; k < reps; k++) {
            for (size_t i = 0; i < p; i++)
                w[i] = 1 + 0.5 * sin((double)i);
            double tp = plain_adam_core(p, steps, w, m, s, g), tf, tr;
            if (exact_adam(p, steps, &tf, &tr))
                return 1;
            plain = tp < plain ? tp : plain;
            fwd = tf < fwd ? tf : fwd;
            rev = tr < rev ? tr : rev;
        }
        free(w);
        free(m);
        free(s);
        free(g);
        double ns = 1e9 / ((double)p * (double)steps);
        printf("%10zu %5zu | %9.2f %9.2f %9.2f | %9.1f %9.1f\n", p, steps, plain * ns, fwd * ns,
               rev * ns, fwd / plain, rev / plain);
    }
    return 0;
}
