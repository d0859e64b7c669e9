/* bench_scale.c: the scale run (make bench-scale): P = 10^6 parameters for T = 10^4 steps of a
 * cheap model, forward and exact reversal, with the peak memory against storing the trajectory
 * (P*T*8 bytes = 80 GB) and against the expected buffer P*T*log2(1/gamma)/8 bytes.
 * Usage: bench_scale [P] [T] [threads] */
#include <math.h>

#include "bench_util.h"

int main(int argc, char **argv)
{
    size_t p = argc > 1 ? (size_t)atof(argv[1]) : 1000000;
    size_t steps = argc > 2 ? (size_t)atof(argv[2]) : 10000;
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    revl_model *m = trivial_model(&p);
    size_t off[2] = {0, p};
    revl_schedule *s = NULL;
    bench_check(revl_schedule_create(&s, steps, 1, off), "schedule", NULL);
    revl_schedule_fill(s, 0.05, 0.9);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.threads = threads;
    revl_trainer *t = NULL;
    bench_check(revl_trainer_create(&t, m, s, &o), "trainer", NULL);
    double *w0 = malloc(p * sizeof *w0), *g = malloc(p * sizeof *g);
    for (size_t i = 0; i < p; i++) {
        w0[i] = sin((double)i);
        g[i] = 1e-3;
    }
    printf("scale run: P = %zu, T = %zu, gamma = 0.9, threads = %d (0 = all)\n", p, steps, threads);
    double t0 = bench_now();
    bench_check(revl_trainer_train(t, w0, NULL), "train", revl_trainer_last_error(t));
    double t1 = bench_now();
    revl_trainer_stats st = {.struct_size = sizeof st};
    revl_trainer_get_stats(t, &st);
    printf("forward: %.1f s, buffer %.1f MB holding %.1f MB of information\n", t1 - t0,
           (double)st.buffer_bytes / 1e6, st.buffer_bits / 8e6);
    bench_check(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), "hypergrad",
                revl_trainer_last_error(t));
    double t2 = bench_now();
    revl_trainer_get_stats(t, &st);
    double expected = (double)p * (double)steps * (16 - log2(nearbyint(0.9 * 65536))) / 8;
    double trajectory = (double)p * (double)steps * 8;
    printf("reverse: %.1f s, exact (w0 and v0 = 0 recovered bit for bit)\n", t2 - t1);
    printf("peak memory %.1f MB: %.3f%% of the stored trajectory (%.1f GB); expected buffer "
           "%.1f MB\n", (double)st.peak_bytes / 1e6, 100 * (double)st.peak_bytes / trajectory,
           trajectory / 1e9, expected / 1e6);
    free(w0);
    free(g);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    return 0;
}
