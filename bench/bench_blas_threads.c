/* bench_blas_threads.c: what the BLAS library's thread count costs the paper's network, MLP
 * 784-50-50-50-10 + L2 per layer on 10,000 Fashion-MNIST examples, batch 200, momentum SGD and
 * Adam (plain_loops.h's constants): plain training, revl's exact forward, and train + every
 * hypergradient, each run under the count the process started with (OpenBLAS: its environment
 * variables, else one thread per core) and under revl_blas_threads(1), alternately in one run,
 * medians of the rounds, and whether both counts end on the same bits. The reverse pass is
 * verified under both. With "busy", a child process spins on a core for the whole run (another
 * job on the machine). make bench runs it quiet and busy, with the environment as a user's
 * program would have it (no OPENBLAS_NUM_THREADS or OMP_NUM_THREADS).
 * Usage: bench_blas_threads [T] [rounds] [busy]   (default 100 5) */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mlp_floor.h"
#include "plain_loops.h"

#define MAX_ROUNDS 15

enum { PLAIN, EXACT, BOTH, N_SIDES };

/* seconds of one side: plain training, the exact forward, or forward + hypergradient (of
 * dfdw . w_T, into d_w0); the weights it ends on in w */
static double run_side(int side, revl_optimizer opt, revl_model *m, size_t steps,
                       const double *w0, const double *meta, double *w, const double *dfdw,
                       double *d_w0)
{
    if (side == PLAIN)
        return plain_run(opt, m, steps, w0, meta, w);
    size_t off[16];
    revl_model_group_offsets(m, off);
    revl_schedule *s = bench_schedule(opt, steps, revl_model_n_groups(m), off);
    revl_trainer *t = NULL;
    bench_check(revl_trainer_create(&t, m, s, NULL), "revl_trainer_create",
                revl_last_create_error());
    double t0 = bench_now();
    bench_check(revl_trainer_train(t, w0, meta), "train", revl_trainer_last_error(t));
    double d_meta[4];
    if (side == BOTH)
        bench_check(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, d_w0, 0, NULL, d_meta),
                    "hypergrad (reversal verified)", revl_trainer_last_error(t));
    double dt = bench_now() - t0;
    revl_trainer_weights(t, w); /* w_T (w_0 after the reverse pass) */
    revl_trainer_free(t);
    revl_schedule_free(s);
    return dt;
}

int main(int argc, char **argv)
{
    size_t steps = argc > 1 ? (size_t)atol(argv[1]) : 100;
    int rounds = argc > 2 ? atoi(argv[2]) : 5, busy = argc > 3 && !strcmp(argv[3], "busy");
    if (steps < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_blas_threads [T >= 1] [rounds 1..%d] [busy]\n", MAX_ROUNDS);
        return 2;
    }
    int start = revl_blas_threads(0);
    if (start <= 1) {
        printf("bench_blas_threads: the BLAS library %s; nothing to compare\n",
               start == 0 ? "offers no thread control" : "starts on one thread here");
        return 0;
    }
    double meta[4] = {-6, -6, -6, -6};
    revl_dataset *all = bench_fashion_mnist("bench_blas_threads", 10000), *train = NULL;
    bench_check(revl_dataset_create(&train, NULL), "revl_dataset_create", "");
    bench_check(revl_dataset_subset(train, all, 0, 10000), "revl_dataset_subset",
                revl_dataset_last_error(train));
    const size_t *widths = bench_paper_widths;
    revl_mlp_options mo = bench_paper_options();
    revl_model *m = NULL;
    bench_check(revl_mlp_create(&m, 5, widths, train, &mo), "revl_mlp_create",
                revl_last_create_error());
    size_t p = revl_model_n_params(m), ng = revl_model_n_groups(m);
    double *w0 = malloc(p * sizeof *w0), *w = malloc(p * sizeof *w), *dfdw = malloc(p * sizeof *w);
    double *w_start = malloc(p * sizeof *w_start), *d_w0 = malloc(p * sizeof *d_w0);
    for (size_t i = 0; i < p; i++)
        dfdw[i] = 1e-3 * (double)(i % 7) - 3e-3;
    double log_scales[16];
    for (size_t g = 0; g < ng; g++)
        log_scales[g] = -3;
    revl_model_init_weights(m, log_scales, 1, w0);
    const char *ob = getenv("OPENBLAS_NUM_THREADS"), *omp = getenv("OMP_NUM_THREADS");
    printf("MLP 784-50-50-50-10 + L2 per layer, batch 200, T = %zu; BLAS threads at start: %d "
           "(OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s), against revl_blas_threads(1); "
           "alternately, median of %d rounds, seconds; %s\n",
           steps, start, ob ? ob : "(unset)", omp ? omp : "(unset)", rounds,
           busy ? "another process spinning on one core" : "nothing else running");
    fflush(stdout);
    pid_t hog = busy ? fork() : 0;
    if (hog == 0 && busy)
        for (volatile unsigned long spin = 0;; spin++) /* the other job, until killed */
            ;
    if (hog < 0) {
        perror("bench_blas_threads: fork");
        return 1;
    }
    printf("optimiser |   side      |  %2d threads   1 thread |  ratio | same w_T bits\n", start);
    static const revl_optimizer opts[2] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM};
    static const char *side_name[N_SIDES] = {"plain", "exact fwd", "fwd+hyper"};
    double worst = 1e300;
    for (int k = 0; k < 2; k++)
        for (int side = 0; side < N_SIDES; side++) {
            double t_start[MAX_ROUNDS], t_one[MAX_ROUNDS];
            int same = 1;
            for (int r = 0; r < rounds; r++) {
                revl_blas_threads(start);
                t_start[r] = run_side(side, opts[k], m, steps, w0, meta, w_start, dfdw, d_w0);
                revl_blas_threads(1);
                t_one[r] = run_side(side, opts[k], m, steps, w0, meta, w, dfdw, d_w0);
                same &= memcmp(w, w_start, p * sizeof *w) == 0;
            }
            double a = bench_median(t_start, rounds), b = bench_median(t_one, rounds);
            worst = a / b < worst ? a / b : worst;
            printf("%-9s | %-11s | %10.3f %10.3f | %6.2f | %s\n", revl_optimizer_name(opts[k]),
                   side_name[side], a, b, a / b, same ? "yes" : "no");
        }
    revl_blas_threads(start);
    if (hog > 0) {
        kill(hog, SIGKILL);
        waitpid(hog, NULL, 0);
    }
    printf("ratio: time under the starting count over time under one BLAS thread; least %.2f\n"
           "same w_T bits: the weights each side ends on (fwd+hyper: w_0 again) under both counts\n",
           worst);
    revl_model_free(m);
    revl_dataset_free(train);
    revl_dataset_free(all);
    free(w0);
    free(w);
    free(w_start);
    free(d_w0);
    free(dfdw);
    return 0;
}
