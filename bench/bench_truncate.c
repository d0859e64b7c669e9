/* bench_truncate.c: cost and memory of K-step truncated hypergradients against full reversal,
 * measured side by side (trivial model, P = 10^5, T = 1000, gamma = 0.9).
 * Usage: bench_truncate [P] [T] */
#include <math.h>

#include "bench_util.h"

int main(int argc, char **argv)
{
    size_t p = argc > 1 ? (size_t)atof(argv[1]) : 100000;
    size_t steps = argc > 2 ? (size_t)atof(argv[2]) : 1000;
    revl_model *m = trivial_model(&p);
    size_t off[2] = {0, p};
    revl_schedule *s = NULL;
    bench_check(revl_schedule_create(&s, steps, 1, off), "schedule", NULL);
    revl_schedule_fill(s, 0.05, 0.9);
    double *w0 = malloc(p * sizeof *w0), *g = malloc(p * sizeof *g);
    for (size_t i = 0; i < p; i++) {
        w0[i] = sin((double)i);
        g[i] = 1e-3;
    }
    printf("truncated hypergradients: P = %zu, T = %zu, gamma = 0.9, 1 thread\n", p, steps);
    printf("%8s | %10s %10s %10s | %14s %14s | %9s %9s\n", "K", "train s", "reverse s",
           "total s", "buffer bytes", "peak bytes", "time/full", "buf/full");
    size_t ks[] = {0, 1000, 100, 10};
    double full_time = 0, full_bytes = 0;
    for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
        if (ks[k] >= steps && k > 0)
            continue;
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.truncate = ks[k];
        o.threads = 1;
        revl_trainer *t = NULL;
        bench_check(revl_trainer_create(&t, m, s, &o), "trainer", NULL);
        double t0 = bench_now();
        bench_check(revl_trainer_train(t, w0, NULL), "train", revl_trainer_last_error(t));
        double t1 = bench_now();
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(t, &st);
        bench_check(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), "hypergrad",
                    revl_trainer_last_error(t));
        double t2 = bench_now();
        revl_trainer_stats st2 = {.struct_size = sizeof st2};
        revl_trainer_get_stats(t, &st2);
        if (k == 0) {
            full_time = t2 - t0;
            full_bytes = (double)st.buffer_bytes;
        }
        char label[32];
        snprintf(label, sizeof label, ks[k] ? "%zu" : "full", ks[k]);
        printf("%8s | %10.3f %10.3f %10.3f | %14zu %14zu | %9.3f %9.3f\n", label, t1 - t0,
               t2 - t1, t2 - t0, st.buffer_bytes, st2.peak_bytes, (t2 - t0) / full_time,
               (double)st.buffer_bytes / full_bytes);
        revl_trainer_free(t);
    }
    free(w0);
    free(g);
    revl_schedule_free(s);
    revl_model_free(m);
    return 0;
}
