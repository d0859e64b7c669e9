/* bench_overlap.c: do two cores help at the paper's shapes (issue 13, item 4)? Three ways a
 * second core could be used during training of the 784-50-50-50-10 tanh MLP (batch 200,
 * 10,000 Fashion-MNIST, float64), each measured against one thread in the same run:
 *   1. OpenBLAS on two threads for the model's dense products;
 *   2. the exact core on two threads (revl_trainer_options.threads = 2) at this P;
 *   3. the exact core of a step on a second thread while the model's gradient runs on the
 *      first: the exact multiply of the optimiser state (gamma v, or beta1 m and beta2 s) does
 *      not depend on the step's gradient, so it could overlap it. Measured here as T steps of
 *      the exact core (the trainer with a model that costs nothing, P = the MLP's parameter
 *      count) on a second thread next to T gradients of the MLP: if the wall time is near the
 *      larger of the two, overlap pays by the smaller one; if near their sum, it does not.
 * Then the overlap as built (core/overlap.h: revl_trainer_options.threads = 2 below 2^18
 * parameters runs each step's exact multiplies on a second thread during the gradient): the
 * trainer's exact forward on the MLP with threads = 1 and 2 against the plain double loop.
 * Every side is timed R times, interleaved round by round, and the median is printed.
 * Usage: bench_overlap [T] [R]   (defaults 100 and 7) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlp_floor.h"
#include "plain_loops.h"

/* OpenBLAS's own call; absent (NULL) with another BLAS, and then side 1 is not measured. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

typedef struct core_job {
    revl_trainer *tr;
    double *w0;
    double seconds;
} core_job;

typedef struct grad_job {
    revl_model *m;
    const double *w, *meta;
    double *g;
    size_t steps;
    double seconds;
} grad_job;

static void *run_core(void *arg)
{
    core_job *j = arg;
    double t0 = bench_now();
    bench_check(revl_trainer_train(j->tr, j->w0, NULL), "revl_trainer_train",
                revl_trainer_last_error(j->tr));
    j->seconds = bench_now() - t0;
    return NULL;
}

static void *run_grads(void *arg)
{
    grad_job *j = arg;
    double t0 = bench_now();
    for (size_t s = 0; s < j->steps; s++)
        bench_check(revl_model_grad(j->m, s, j->w, j->meta, j->g, NULL), "revl_model_grad",
                    revl_model_last_error(j->m));
    j->seconds = bench_now() - t0;
    return NULL;
}

/* Both jobs at once, the core on a new thread: the wall time. */
static double run_both(core_job *c, grad_job *g)
{
    pthread_t th;
    double t0 = bench_now();
    if (pthread_create(&th, NULL, run_core, c)) {
        fprintf(stderr, "bench_overlap: pthread_create failed\n");
        exit(1);
    }
    run_grads(g);
    pthread_join(th, NULL);
    return bench_now() - t0;
}

static revl_trainer *core_trainer(revl_model *trivial, revl_optimizer opt, size_t steps,
                                  int threads, revl_schedule **sched)
{
    size_t p = revl_model_n_params(trivial), offsets[2] = {0, p};
    bench_check(revl_schedule_create_for(sched, opt, steps, 1, offsets, NULL),
                "revl_schedule_create_for", "");
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.threads = threads;
    revl_trainer *tr = NULL;
    bench_check(revl_trainer_create(&tr, trivial, *sched, &o), "revl_trainer_create",
                revl_last_create_error());
    return tr;
}

/* The exact core alone on 1 and 2 threads against P: where the library's default (threads = 0)
 * should start using both cores, per optimiser. */
static void threads_table(size_t steps, int rounds)
{
    static const size_t ps[] = {8192, 16384, 32768, 65536, 131072, 262144};
    static const revl_optimizer opts[3] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM,
                                           REVL_OPTIM_RMSPROP};
    printf("\nexact core alone (trivial model), T = %zu: 2 threads / 1 thread, median of %d\n",
           steps, rounds);
    printf("%-9s |", "optimiser");
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++)
        printf(" %8zu", ps[k]);
    printf("\n");
    for (int oi = 0; oi < 3; oi++) {
        printf("%-9s |", revl_optimizer_name(opts[oi]));
        for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) {
            size_t p = ps[k];
            revl_model *m = trivial_model(&p);
            double *w0 = calloc(p, sizeof *w0), t[2][99];
            for (size_t i = 0; i < p; i++)
                w0[i] = 0.01 * (double)(i % 17) - 0.08;
            revl_schedule *s1 = NULL, *s2 = NULL;
            revl_trainer *t1 = core_trainer(m, opts[oi], steps, 1, &s1);
            revl_trainer *t2 = core_trainer(m, opts[oi], steps, 2, &s2);
            for (int r = 0; r < rounds; r++) {
                core_job c1 = {t1, w0, 0}, c2 = {t2, w0, 0};
                run_core(&c1);
                run_core(&c2);
                t[0][r] = c1.seconds;
                t[1][r] = c2.seconds;
            }
            printf(" %8.2f", bench_median(t[1], rounds) / bench_median(t[0], rounds));
            revl_trainer_free(t1);
            revl_trainer_free(t2);
            revl_schedule_free(s1);
            revl_schedule_free(s2);
            revl_model_free(m);
            free(w0);
        }
        printf("\n");
    }
}

/* The exact forward of the MLP with the core on one thread and with the built-in overlap, each
 * against the plain double loop of the same optimiser and model. */
static void built_in_table(revl_model *mlp, const double *w0, const double *meta, size_t steps,
                           int rounds)
{
    size_t p = revl_model_n_params(mlp), ng = revl_model_n_groups(mlp);
    size_t *off = malloc((ng + 1) * sizeof *off);
    double *w = malloc(p * sizeof *w);
    if (!off || !w) {
        fprintf(stderr, "bench_overlap: out of memory\n");
        exit(1);
    }
    revl_model_group_offsets(mlp, off);
    printf("\nthe overlap as built: the MLP's exact forward with threads = 1 and 2 (the "
           "multiplies on a second thread\nduring each gradient), T = %zu, median of %d, seconds\n",
           steps, rounds);
    printf("%-9s | %8s %8s %8s | %9s %9s %9s\n", "optimiser", "plain", "exact 1t", "exact 2t",
           "1t/plain", "2t/plain", "2t/1t");
    static const revl_optimizer opts[2] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM};
    for (int oi = 0; oi < 2; oi++) {
        revl_optimizer opt = opts[oi];
        revl_schedule *s = bench_schedule(opt, steps, ng, off);
        revl_trainer *tr[2];
        for (int k = 0; k < 2; k++) {
            revl_trainer_options o;
            revl_trainer_options_init(&o);
            o.threads = k + 1;
            tr[k] = NULL;
            bench_check(revl_trainer_create(&tr[k], mlp, s, &o), "revl_trainer_create",
                        revl_last_create_error());
        }
        double t[3][99];
        for (int r = 0; r < rounds; r++) {
            t[0][r] = plain_run(opt, mlp, steps, w0, meta, w);
            for (int k = 0; k < 2; k++) {
                double t0 = bench_now();
                bench_check(revl_trainer_train(tr[k], w0, meta), "revl_trainer_train",
                            revl_trainer_last_error(tr[k]));
                t[1 + k][r] = bench_now() - t0;
            }
        }
        double m0 = bench_median(t[0], rounds), m1 = bench_median(t[1], rounds), m2 = bench_median(t[2], rounds);
        printf("%-9s | %8.3f %8.3f %8.3f | %9.3f %9.3f %9.3f\n", revl_optimizer_name(opt), m0, m1,
               m2, m1 / m0, m2 / m0, m2 / m1);
        revl_trainer_free(tr[0]);
        revl_trainer_free(tr[1]);
        revl_schedule_free(s);
    }
    free(off);
    free(w);
}

enum { S_GRAD1, S_GRAD2, S_CORE1, S_CORE2, S_BOTH, N_SIDES };

int main(int argc, char **argv)
{
    size_t steps = argc > 1 ? (size_t)atol(argv[1]) : 100;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (steps < 1)
        steps = 1;
    if (rounds < 1 || rounds > 99)
        rounds = 7;
    revl_dataset *train = bench_fashion_mnist("bench_overlap", 10000);
    static const size_t widths[5] = {784, 50, 50, 50, 10};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 200;
    mo.activation = REVL_ACT_TANH;
    mo.penalty = REVL_PENALTY_PER_LAYER;
    revl_model *mlp = NULL;
    bench_check(revl_mlp_create(&mlp, 5, widths, train, &mo), "revl_mlp_create", "");
    size_t p = revl_model_n_params(mlp), ng = revl_model_n_groups(mlp);
    double *w = malloc(p * sizeof *w), *g = malloc(p * sizeof *g), *w0 = malloc(p * sizeof *w0);
    double *scales = malloc(ng * sizeof *scales), meta[4] = {-6, -6, -6, -6};
    if (!w || !g || !w0 || !scales) {
        fprintf(stderr, "bench_overlap: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < ng; k++)
        scales[k] = -2;
    revl_model_init_weights(mlp, scales, 1, w);
    memcpy(w0, w, p * sizeof *w);
    size_t pp = p;
    revl_model *trivial = trivial_model(&pp);
    int have_blas_threads = openblas_set_num_threads != NULL;
    printf("MLP 784-50-50-50-10 tanh, batch 200, P = %zu, T = %zu, median of %d interleaved "
           "rounds, seconds\n", p, steps, rounds);
    printf("%-9s | %8s %8s %8s | %8s %8s %8s | %8s %8s %9s\n", "optimiser", "grad 1t",
           "grad 2t", "2t/1t", "core 1t", "core 2t", "2t/1t", "serial", "overlap", "ovl/ser");
    static const revl_optimizer opts[2] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM};
    for (int oi = 0; oi < 2; oi++) {
        revl_schedule *s1 = NULL, *s2 = NULL;
        revl_trainer *t1 = core_trainer(trivial, opts[oi], steps, 1, &s1);
        revl_trainer *t2 = core_trainer(trivial, opts[oi], steps, 2, &s2);
        double times[N_SIDES][99];
        for (int r = 0; r < rounds; r++) {
            grad_job gj = {mlp, w, meta, g, steps, 0};
            core_job c1 = {t1, w0, 0}, c2 = {t2, w0, 0};
            if (have_blas_threads)
                openblas_set_num_threads(1);
            run_grads(&gj);
            times[S_GRAD1][r] = gj.seconds;
            if (have_blas_threads) {
                openblas_set_num_threads(2);
                run_grads(&gj);
                openblas_set_num_threads(1);
            }
            times[S_GRAD2][r] = have_blas_threads ? gj.seconds : 0;
            run_core(&c1);
            times[S_CORE1][r] = c1.seconds;
            run_core(&c2);
            times[S_CORE2][r] = c2.seconds;
            times[S_BOTH][r] = run_both(&c1, &gj);
        }
        double m[N_SIDES];
        for (int s = 0; s < N_SIDES; s++)
            m[s] = bench_median(times[s], rounds);
        double serial = m[S_GRAD1] + m[S_CORE1];
        printf("%-9s | %8.3f ", revl_optimizer_name(opts[oi]), m[S_GRAD1]);
        if (have_blas_threads)
            printf("%8.3f %8.2f | ", m[S_GRAD2], m[S_GRAD2] / m[S_GRAD1]);
        else
            printf("%8s %8s | ", "n/a", "n/a");
        printf("%8.3f %8.3f %8.2f | %8.3f %8.3f %9.2f\n", m[S_CORE1], m[S_CORE2],
               m[S_CORE2] / m[S_CORE1], serial, m[S_BOTH], m[S_BOTH] / serial);
        revl_trainer_free(t1);
        revl_trainer_free(t2);
        revl_schedule_free(s1);
        revl_schedule_free(s2);
    }
    if (!have_blas_threads)
        printf("grad 2t: not measured (the BLAS is not OpenBLAS)\n");
    if (have_blas_threads)
        openblas_set_num_threads(1);
    built_in_table(mlp, w0, meta, steps, rounds);
    threads_table(steps, rounds);
    printf("ovl/ser: the exact core on a second thread next to the gradients, against the two "
           "one after the other;\n  the best overlap could reach is max/sum = the larger of "
           "grad 1t and core 1t over serial\n");
    revl_model_free(trivial);
    revl_model_free(mlp);
    revl_dataset_free(train);
    free(w);
    free(g);
    free(w0);
    free(scales);
    return 0;
}
