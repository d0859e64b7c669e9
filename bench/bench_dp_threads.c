/* bench_dp_threads.c: two cores by exact data parallelism in one process (issue 22's target
 * "two threads: train + hypergradient >= 1.5x faster than one, same bits"). The paper's MLP
 * 784-50-50-50-10 tanh with a log L2 penalty per layer, 10,000 Fashion-MNIST examples, batch
 * 200, as a data-parallel model (revl_mlp_dp_create, N_MICRO micro-batches: they fix the bits)
 * with a sharded trainer (revl_trainer_create_sharded), on R = 1 and R = 2 ranks that are
 * threads, each with its own model and trainer, joined by tests/thread_comm.h. Timed per run:
 * train + validation gradient (of the training set: the mean of its two halves' gradients,
 * revl_model_evaluate, one half per rank on 2 ranks, so the same bits on 1 and 2) +
 * every hypergradient of the optimiser (revl_trainer_hypergrad_kinds_n, reversal verified), for
 * momentum, Adam and AdamW at each T. "same bits": w_T, d_w0, d_meta and every kind's
 * hypergradient memcmp-equal between R = 1 and R = 2 (exit 1 if not). For orientation, the
 * plain built-in MLP (revl_mlp_create + revl_trainer_create, one thread) doing the same work:
 * its bits differ from the data-parallel model's (floating-point batch sums, not rounded
 * integer sums of micro-batches). "comm" is the time rank 0 spends in the all-reduce per
 * training step (forward and reverse, waiting for the other rank included), the int64 words
 * and the calls per step (gradients, Hessian-vector products, the sharded trainer's all-gathers).
 * Usage: bench_dp_threads [T ...] (default 100 1000). Run with OMP_NUM_THREADS=1
 * OPENBLAS_NUM_THREADS=1 so that the rank threads are the only parallelism (make bench does). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/thread_comm.h"
#include "mlp_floor.h"
#include "plain_loops.h"

/* one micro-batch of 100 rows per rank at R = 2: the bits are those of any R dividing 2, and
 * the GEMMs twice as tall as with 4 (measured: 4 micro-batches cost R = 1 about 13% and R = 2
 * about 15% more time) */
#define N_MICRO 2
#define MAX_R 2

typedef struct job {
    revl_optimizer opt;
    size_t steps;
    const revl_dataset *train;
    const revl_dataset *half[2]; /* its two halves: the validation gradient's shares */
} job;

/* One rank's run; plain: the built-in MLP and trainer, no communicator. */
typedef struct rank_run {
    const job *j;
    int plain;
    revl_comm comm;      /* handed to the library: its all-reduce times thread_allreduce */
    revl_comm inner;     /* thread_comm's */
    double comm_seconds; /* in the all-reduce */
    double comm_words;   /* summed by it */
    double comm_calls;
    double seconds;      /* train + validation gradient + hypergradient */
    double *out;         /* w_T, d_w0, d_meta, each kind's hypergradient */
    size_t n_out;
} rank_run;

static int timed_allreduce(int64_t *data, size_t n, void *user)
{
    rank_run *r = user;
    double t0 = bench_now();
    int rc = r->inner.allreduce_i64(data, n, r->inner.user);
    r->comm_seconds += bench_now() - t0;
    r->comm_words += (double)n;
    r->comm_calls++;
    return rc;
}

static void check(int rc, const char *what, const char *msg)
{
    if (rc) {
        fprintf(stderr, "bench_dp_threads: %s: %s (%s)\n", what, revl_strerror(rc), msg);
        exit(1);
    }
}

/* The validation gradient (of the training set) as the mean of its two halves' gradients, each
 * half evaluated by one rank (revl_dp_micro_range of 2) and all-gathered through the int64
 * all-reduce (the other ranks add zeros to its bits): the same bits on 1 and 2 ranks, half the
 * work each on 2. */
static void valid_gradient(rank_run *r, revl_model *m, const double *w, double *dfdw)
{
    size_t p = revl_model_n_params(m), first, count;
    const revl_comm *c = &r->comm;
    int64_t *both = calloc(2 * p, sizeof *both);
    double *g = malloc(p * sizeof *g), loss;
    check(revl_dp_micro_range(2, c->rank, c->size, &first, &count), "range", "");
    for (size_t h = first; h < first + count; h++) {
        check(revl_model_evaluate(m, r->j->half[h], w, &loss, g, NULL), "evaluate",
              revl_model_last_error(m));
        memcpy(both + h * p, g, p * sizeof *g);
    }
    if (c->size > 1)
        check(c->allreduce_i64(both, 2 * p, c->user), "all-gather", "");
    double g0, g1;
    for (size_t i = 0; i < p; i++) {
        memcpy(&g0, both + i, sizeof g0);
        memcpy(&g1, both + p + i, sizeof g1);
        dfdw[i] = 0.5 * g0 + 0.5 * g1;
    }
    free(both);
    free(g);
}

static void *rank_main(void *arg)
{
    rank_run *r = arg;
    const job *j = r->j;
    const size_t *widths = bench_paper_widths;
    revl_mlp_options mo = bench_paper_options();
    revl_model *m = NULL;
    check(r->plain ? revl_mlp_create(&m, 5, widths, j->train, &mo)
                   : revl_mlp_dp_create(&m, 5, widths, j->train, &mo, N_MICRO, 0, &r->comm),
          "model", "");
    size_t p = revl_model_n_params(m), ng = revl_model_n_groups(m), off[16];
    if (ng > 8)
        check(REVL_ERR_INVALID, "groups", "more than 8");
    revl_model_group_offsets(m, off);
    revl_schedule *s = bench_schedule(j->opt, j->steps, ng, off);
    if (!s)
        check(REVL_ERR_NOMEM, "schedule", "");
    revl_trainer *t = NULL;
    check(r->plain ? revl_trainer_create(&t, m, s, NULL)
                   : revl_trainer_create_sharded(&t, m, s, NULL, &r->comm),
          "trainer", "");
    revl_hyper kinds[5];
    size_t nk = revl_schedule_kinds(s, kinds), block = j->steps * ng;
    r->n_out = 2 * p + 4 + nk * block;
    double *o = r->out = calloc(r->n_out, sizeof *o), *d_kinds[REVL_HYPER_COUNT] = {0};
    for (size_t k = 0; k < nk; k++)
        d_kinds[kinds[k]] = o + 2 * p + 4 + k * block;
    double *w0 = malloc(p * sizeof *w0), *dfdw = malloc(p * sizeof *dfdw), loss;
    double log_scales[8] = {-3, -3, -3, -3, -3, -3, -3, -3}, meta[4] = {-6, -6, -6, -6};
    revl_model_init_weights(m, log_scales, 1, w0);
    /* warm up (a collective gradient), then start together */
    check(revl_model_grad(m, 0, w0, meta, dfdw, &loss), "warm-up", revl_model_last_error(m));
    if (!r->plain)
        pthread_barrier_wait(&((thread_slot *)r->inner.user)->s->barrier);
    r->comm_seconds = r->comm_words = r->comm_calls = 0;
    double t0 = bench_now();
    check(revl_trainer_train(t, w0, meta), "train", revl_trainer_last_error(t));
    revl_trainer_weights(t, o);
    valid_gradient(r, m, o, dfdw);
    check(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, o + p, REVL_HYPER_COUNT, d_kinds,
                                         o + 2 * p),
          "hypergrad", revl_trainer_last_error(t)); /* REVL_OK: reversal verified */
    r->seconds = bench_now() - t0;
    free(w0);
    free(dfdw);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    return NULL;
}

/* The job on R thread ranks (R = 0: the plain model in this thread); runs[r] holds rank r's. */
static double run(const job *j, int R, rank_run *runs)
{
    static thread_shared sh;
    if (R == 0) {
        runs[0] = (rank_run){.j = j, .plain = 1};
        revl_comm_init_local(&runs[0].comm);
        rank_main(&runs[0]);
        return runs[0].seconds;
    }
    thread_shared_init(&sh, R);
    pthread_t th[MAX_R];
    for (int r = 0; r < R; r++) {
        runs[r] = (rank_run){.j = j};
        thread_comm(&runs[r].inner, r, &sh);
        runs[r].comm = runs[r].inner;
        runs[r].comm.allreduce_i64 = timed_allreduce;
        runs[r].comm.user = &runs[r];
        pthread_create(&th[r], NULL, rank_main, &runs[r]);
    }
    double worst = 0;
    for (int r = 0; r < R; r++) {
        pthread_join(th[r], NULL);
        worst = fmax(worst, runs[r].seconds);
    }
    thread_shared_destroy(&sh);
    return worst;
}

int main(int argc, char **argv)
{
    revl_dataset *all = bench_fashion_mnist("bench_dp_threads", 10000), *train = NULL;
    revl_dataset_create(&train, NULL);
    revl_dataset_subset(train, all, 0, 10000);
    revl_dataset *half[2] = {NULL, NULL};
    for (int h = 0; h < 2; h++) {
        revl_dataset_create(&half[h], NULL);
        revl_dataset_subset(half[h], all, (size_t)h * 5000, 5000);
    }
    const char *omp = getenv("OMP_NUM_THREADS"), *ob = getenv("OPENBLAS_NUM_THREADS");
    printf("MLP 784-50-50-50-10 + L2 per layer, 10,000 examples, batch 200, %d micro-batches; "
           "OMP_NUM_THREADS=%s OPENBLAS_NUM_THREADS=%s\n",
           N_MICRO, omp ? omp : "(unset)", ob ? ob : "(unset)");
    printf("each run: train + validation gradient + every hypergradient (reversal verified); "
           "dp = revl_mlp_dp_create + sharded trainer on R thread ranks; plain = revl_mlp_create "
           "+ revl_trainer_create, one thread (other bits)\n");
    printf("%9s %6s | %9s %9s %9s | %9s %9s | %12s %10s %10s | %s\n", "optimiser", "T",
           "plain s", "dp R=1 s", "dp R=2 s", "R1/R2", "plain/R2", "comm ms/step", "words/step",
           "calls/step", "same bits R=1, R=2");
    const revl_optimizer opts[3] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM, REVL_OPTIM_ADAMW};
    int nt = argc > 1 ? argc - 1 : 2, all_same = 1;
    double worst = INFINITY;
    for (int o = 0; o < 3; o++)
        for (int k = 0; k < nt; k++) {
            job j = {opts[o], argc > 1 ? strtoul(argv[k + 1], NULL, 10) : (k ? 1000 : 100),
                     train, {half[0], half[1]}};
            rank_run plain[1], one[1], two[MAX_R];
            double tp = run(&j, 0, plain), t1 = run(&j, 1, one), t2 = run(&j, 2, two);
            int same = 1;
            for (int r = 0; r < 2; r++)
                same &= two[r].n_out == one[0].n_out &&
                        memcmp(two[r].out, one[0].out, one[0].n_out * sizeof(double)) == 0;
            double steps = (double)j.steps;
            printf("%9s %6zu | %9.3f %9.3f %9.3f | %9.2f %9.2f | %12.3f %10.0f %10.1f | %s\n",
                   revl_optimizer_name(j.opt), j.steps, tp, t1, t2, t1 / t2, tp / t2,
                   1e3 * two[0].comm_seconds / steps, two[0].comm_words / steps,
                   two[0].comm_calls / steps, same ? "yes" : "NO");
            all_same &= same;
            worst = fmin(worst, same ? t1 / t2 : 0);
            free(plain[0].out);
            free(one[0].out);
            for (int r = 0; r < 2; r++)
                free(two[r].out);
        }
    bench_target("two thread ranks: train + hypergradient speed-up over one (same bits)", worst,
                 ">=", 1.5);
    revl_dataset_free(half[0]);
    revl_dataset_free(half[1]);
    revl_dataset_free(train);
    revl_dataset_free(all);
    return all_same ? 0 : 1;
}
