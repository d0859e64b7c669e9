/* transfer.c: do hyperparameters learned on a small network help a larger one? Learns (or
 * loads, --schedule FILE) a per-step, per-layer-and-kind learning rate and momentum schedule and
 * the 8 initial scales on a tanh MLP 784-50-50-50-10, applies them unchanged to 784-200-200-200-10
 * (the groups match by layer and kind; the init scales also rescaled by sqrt(50/fan-in)), and
 * compares with the best constant schedule of a small grid on each network, on validation and
 * on test data. Reports whatever comes out; it checks
 * only that the learned schedule beats the starting one on the network it was learned on.
 *
 *   transfer [--quick] [--out DIR] [--data DIR] [--schedule FILE] [--iterations N] [--threads N]
 *
 * Without --schedule it uses out/lr_schedule/hyperparams.txt when that file exists and fits
 * (T = 100), else it learns one (25 meta-iterations). --quick: 1,000 images, T = 20, 5
 * meta-iterations, and 784-100-100-100-10 as the wide network. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

#define N_LAYERS 4
#define N_GROUPS (2 * N_LAYERS)
#define N_NETS 2

enum { START, GRID, GRID_LEARNED_INIT, LEARNED_SCHEDULE, LEARNED_ALL, LEARNED_RESCALED, N_ROWS };
static const char *row_name[N_ROWS] = {
    "start: alpha e^-1, gamma 0.5, init e^-3",
    "best constant alpha, gamma (grid), init e^-3",
    "best constant alpha, gamma (grid), learned init",
    "learned schedule, init e^-3",
    "learned schedule and learned init",
    "learned schedule, learned init x sqrt(50/fan-in)",
};

typedef struct result {
    double valid, test, acc;
    int diverged;
} result;

/* Train T steps with these hyperparameters (same init noise and minibatches for every
 * condition) and evaluate. A run that leaves the fixed-point range or turns NaN counts as
 * diverged, not as an error. */
static int run(revl_model *m, size_t T, int threads, const double *alpha, const double *gamma,
               const double *log_scales, const revl_dataset *valid, const revl_dataset *test,
               result *r)
{
    size_t P = revl_model_n_params(m), off[N_GROUPS + 1];
    revl_model_group_offsets(m, off);
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    revl_trainer_options to;
    revl_trainer_options_init(&to);
    to.threads = threads;
    double *w = malloc(P * sizeof *w);
    *r = (result){NAN, NAN, NAN, 0};
    int rc = w ? REVL_OK : REVL_ERR_NOMEM;
    if (rc == REVL_OK)
        rc = revl_schedule_create(&s, T, N_GROUPS, off);
    if (rc == REVL_OK)
        rc = revl_schedule_set_all(s, alpha, gamma);
    if (rc == REVL_OK)
        rc = revl_trainer_create(&t, m, s, &to);
    if (rc == REVL_OK)
        rc = revl_model_init_weights(m, log_scales, 0, w);
    if (rc == REVL_OK) {
        rc = revl_trainer_train(t, w, NULL);
        if (rc == REVL_ERR_RANGE) {
            r->diverged = 1;
            rc = REVL_OK;
            goto out;
        }
    }
    if (rc == REVL_OK)
        rc = revl_trainer_weights(t, w);
    if (rc == REVL_OK)
        rc = revl_model_evaluate(m, valid, w, &r->valid, NULL, NULL);
    if (rc == REVL_OK)
        rc = revl_model_evaluate(m, test, w, &r->test, NULL, &r->acc);
    if (rc == REVL_OK && !(isfinite(r->valid) && isfinite(r->test)))
        r->diverged = 1;
    if (rc != REVL_OK)
        fprintf(stderr, "transfer: training failed: %s (%s)\n", revl_strerror(rc),
                t ? revl_trainer_last_error(t) : "");
out:
    revl_trainer_free(t);
    revl_schedule_free(s);
    free(w);
    return rc;
}

static double loss_or_inf(const result *r)
{
    return r->diverged ? INFINITY : r->valid;
}

static int report(const revl_hyperopt_report *r, void *user)
{
    const size_t *iterations = user;
    if (r->iteration == 0 || (r->iteration + 1) % 5 == 0 || r->iteration + 1 == *iterations)
        printf("  meta %3zu/%zu  valid %.4f  |hypergrad| %.3e  %.2f s\n", r->iteration + 1,
               *iterations, r->valid_loss, r->hypergrad_norm, r->seconds);
    fflush(stdout);
    return 0;
}

static const char *plot_script =
    "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
    "set terminal @term size 900,460\n"
    "set output 'transfer.png'\n"
    "set title 'Test loss after T steps: schedules learned on 784-50-50-50-10'\n"
    "set style data histogram\n"
    "set style histogram cluster gap 1\n"
    "set style fill solid 0.8 border -1\n"
    "set boxwidth 0.9\n"
    "set ylabel 'test cross-entropy'\n"
    "set logscale y\n"
    "set yrange [0.3:*]\n"
    "set ytics (0.3, 0.4, 0.5, 0.6, 0.8, 1, 2, 5, 10, 20, 50, 100)\n"
    "set xrange [-0.6:1.6]\n"
    "set arrow from graph 0, first log(10) to graph 1, first log(10) nohead dt 2\n"
    "set label 'uniform guess (ln 10)' at graph 0.01, first log(10) offset 0,0.6\n"
    "set grid ytics\n"
    "set key outside bottom center horizontal\n"
    "set xtics ('learned on (50 wide)' 0, 'transferred to the wide network' 1)\n"
    "plot for [c=1:6] 'transfer_test.dat' u (column(c+1)) t word('start grid grid+init "
    "schedule schedule+init schedule+rescaled-init', c)\n";

int main(int argc, char **argv)
{
    int quick = 0, threads = 0;
    const char *out = "out/transfer", *data = EXAMPLE_FASHION_DIR;
    const char *schedule = NULL;
    long iters_arg = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--schedule") && i + 1 < argc)
            schedule = argv[++i];
        else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            iters_arg = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: transfer [--quick] [--out DIR] [--data DIR] "
                            "[--schedule FILE] [--iterations N] [--threads N]\n");
            return 2;
        }
    }
    size_t n = quick ? 1000 : 10000, T = quick ? 20 : 100;
    size_t iterations = iters_arg > 0 ? (size_t)iters_arg : quick ? 5 : 25;
    const size_t TG = T * N_GROUPS;
    const size_t wide = quick ? 100 : 200; /* --quick: a narrower "wide" net, for time */
    size_t widths[N_NETS][N_LAYERS + 1] = {{784, 50, 50, 50, 10}, {784, wide, wide, wide, 10}};
    char wide_name[64];
    snprintf(wide_name, sizeof wide_name, "784-%zu-%zu-%zu-10", wide, wide, wide);
    const double grid_log_alpha[] = {-3, -2, -1, 0, 1}, grid_gamma[] = {0.5, 0.9};
    int ok = 0;

    revl_dataset *all = NULL, *train = NULL, *valid = NULL, *test = NULL;
    revl_model *model[N_NETS] = {NULL, NULL};
    revl_hyperopt *h = NULL;
    double *alpha = malloc(4 * TG * sizeof(double));
    if (!alpha)
        return 1;
    double *gamma = alpha + TG, *ca = gamma + TG, *cg = ca + TG;
    double scales[N_GROUPS], start_scales[N_GROUPS];
    result res[N_NETS][N_ROWS];
    double best_a[N_NETS][2] = {{0}}, best_g[N_NETS][2] = {{0}}; /* [net][init e^-3, learned] */

    revl_dataset_create(&all, NULL);
    revl_dataset_create(&train, NULL);
    revl_dataset_create(&valid, NULL);
    revl_dataset_create(&test, NULL);
    if (!all || !train || !valid || !test || load_fashion(all, "transfer", data, "train", 2 * n) != REVL_OK ||
        revl_dataset_subset(train, all, 0, n) != REVL_OK ||
        revl_dataset_subset(valid, all, n, n) != REVL_OK || load_fashion(test, "transfer", data, "t10k", n) != REVL_OK)
        goto done;
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.threads = threads;
    for (int k = 0; k < N_NETS; k++)
        if (revl_mlp_create(&model[k], N_LAYERS + 1, widths[k], train, &mo) != REVL_OK)
            goto done;

    /* 1. the schedule, learned on the small network (or read from lr_schedule's file) */
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho); /* learns alpha, gamma, init scales; Adam, step 0.04 */
    ho.iterations = iterations;
    ho.report = report;
    ho.report_user = &iterations;
    ho.threads = threads;
    int rc = revl_hyperopt_create(&h, model[0], valid, T, &ho);
    if (rc != REVL_OK)
        goto done;
    revl_hyperopt_get(h, 0, NULL, NULL, start_scales, NULL);
    const char *from = schedule;
    FILE *probe = NULL;
    if (!from && !quick && (probe = fopen("out/lr_schedule/hyperparams.txt", "r")) != NULL) {
        fclose(probe);
        from = "out/lr_schedule/hyperparams.txt";
    }
    if (from) {
        rc = revl_hyperopt_load(h, from);
        if (rc == REVL_OK)
            printf("schedule: read from %s\n", from);
        else if (schedule) {
            fprintf(stderr, "transfer: %s\n", revl_hyperopt_last_error(h));
            goto done;
        } else {
            printf("schedule: %s does not fit (%s); learning one\n", from,
                   revl_hyperopt_last_error(h));
            from = NULL;
        }
    }
    if (!from) {
        printf("schedule: learning it on 784-50-50-50-10 (%zu + %zu images, T = %zu, %zu "
               "meta-iterations)\n", n, n, T, iterations);
        if ((rc = revl_hyperopt_run(h)) != REVL_OK) {
            fprintf(stderr, "transfer: %s\n", revl_hyperopt_last_error(h));
            goto done;
        }
    }
    revl_hyperopt_get(h, from ? 0 : 1, alpha, gamma, scales, NULL);

    /* 2. every condition on both networks; the grid is searched on each network by validation
     * loss, as one would tune a constant schedule for it */
    for (int k = 0; k < N_NETS; k++) {
        printf("network 784-%zu-%zu-%zu-10: %zu parameters\n", widths[k][1], widths[k][2],
               widths[k][3], revl_model_n_params(model[k]));
        for (size_t i = 0; i < TG; i++) {
            ca[i] = exp(-1);
            cg[i] = 0.5;
        }
        if (run(model[k], T, threads, ca, cg, start_scales, valid, test, &res[k][START]))
            goto done;
        res[k][GRID].diverged = res[k][GRID_LEARNED_INIT].diverged = 1;
        for (int init = 0; init < 2; init++) {
            result *best = &res[k][init ? GRID_LEARNED_INIT : GRID];
            for (size_t a = 0; a < sizeof grid_log_alpha / sizeof *grid_log_alpha; a++)
                for (size_t g = 0; g < sizeof grid_gamma / sizeof *grid_gamma; g++) {
                    for (size_t i = 0; i < TG; i++) {
                        ca[i] = exp(grid_log_alpha[a]);
                        cg[i] = grid_gamma[g];
                    }
                    result r;
                    if (run(model[k], T, threads, ca, cg, init ? scales : start_scales, valid,
                            test, &r))
                        goto done;
                    if (loss_or_inf(&r) < loss_or_inf(best)) {
                        *best = r;
                        best_a[k][init] = grid_log_alpha[a];
                        best_g[k][init] = grid_gamma[g];
                    }
                }
        }
        if (run(model[k], T, threads, alpha, gamma, start_scales, valid, test,
                &res[k][LEARNED_SCHEDULE]) ||
            run(model[k], T, threads, alpha, gamma, scales, valid, test, &res[k][LEARNED_ALL]))
            goto done;
        /* init scales carried over as scale * sqrt(fan-in), the quantity 1/sqrt(fan-in) keeps
         * constant across widths; biases and the first layer (784 inputs in both) unchanged */
        double rescaled[N_GROUPS];
        for (int g = 0; g < N_GROUPS; g++)
            rescaled[g] = scales[g] + (g % 2 ? 0 : 0.5 * log((double)widths[0][g / 2] /
                                                              (double)widths[k][g / 2]));
        if (run(model[k], T, threads, alpha, gamma, rescaled, valid, test,
                &res[k][LEARNED_RESCALED]))
            goto done;
    }

    printf("\n%-49s %-24s %-24s\n", "", "784-50-50-50-10 (source)", wide_name);
    printf("%-49s %-24s %-24s\n", "", "valid   test    acc", "valid   test    acc");
    for (int row = 0; row < N_ROWS; row++) {
        printf("%-49s", row_name[row]);
        for (int k = 0; k < N_NETS; k++) {
            const result *r = &res[k][row];
            if (r->diverged)
                printf(" %-24s", "diverged");
            else
                printf(" %.4f  %.4f  %.3f%s ", r->valid, r->test, r->acc,
                       r->valid > log(10.0) ? "!" : " ");
        }
        printf("\n");
    }
    printf("(!: worse than a uniform guess, ln 10 = 2.30: the training blew up without leaving "
           "the fixed-point range)\n");
    for (int k = 0; k < N_NETS; k++)
        printf("best constant on %s: alpha = e^%.0f, gamma = %.1f (init e^-3); alpha = e^%.0f, "
               "gamma = %.1f (learned init)\n", k ? "the wide net" : "the source net",
               best_a[k][0], best_g[k][0], best_a[k][1], best_g[k][1]);
    /* the fair baseline: whichever grid row (init e^-3 or the learned init) validates better */
    const result *tg = &res[1][GRID];
    if (loss_or_inf(&res[1][GRID_LEARNED_INIT]) < loss_or_inf(tg))
        tg = &res[1][GRID_LEARNED_INIT];
    const result *tl = &res[1][LEARNED_ALL], *tr = &res[1][LEARNED_RESCALED];
    printf("transfer to the wide network, test loss: best constant schedule of the grid %.4f; "
           "learned schedule and init as they are %.4f (%s), with the init rescaled %.4f (%s)\n",
           tg->diverged ? NAN : tg->test, tl->diverged ? NAN : tl->test,
           loss_or_inf(tl) < loss_or_inf(tg) ? "better" : "worse",
           tr->diverged ? NAN : tr->test, loss_or_inf(tr) < loss_or_inf(tg) ? "better" : "worse");

    if (make_dirs(out) != 0) {
        fprintf(stderr, "transfer: cannot create %s\n", out);
        goto done;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/transfer.dat", out);
    FILE *f = fopen(path, "w");
    if (!f)
        goto done;
    fprintf(f, "# network(0 = 784-50-50-50-10, 1 = %s) condition(0 start, 1 grid, "
               "2 grid + learned init, 3 learned schedule, 4 learned schedule + init, "
               "5 learned schedule + init rescaled by sqrt(50/fan-in)) "
               "valid_loss test_loss test_accuracy diverged\n", wide_name);
    for (int k = 0; k < N_NETS; k++)
        for (int row = 0; row < N_ROWS; row++) {
            const result *r = &res[k][row];
            fprintf(f, "%d %d %.6f %.6f %.4f %d\n", k, row, r->diverged ? -1 : r->valid,
                    r->diverged ? -1 : r->test, r->diverged ? 0 : r->acc, r->diverged);
        }
    if (fclose(f) != 0)
        goto done;
    snprintf(path, sizeof path, "%s/transfer_test.dat", out);
    f = fopen(path, "w");
    if (!f)
        goto done;
    fprintf(f, "# test loss (0 when diverged); rows: network 0, 1; columns: network, then the "
               "%d conditions of transfer.dat\n", N_ROWS);
    for (int k = 0; k < N_NETS; k++) {
        fprintf(f, "%d", k);
        for (int row = 0; row < N_ROWS; row++)
            fprintf(f, " %.6f", res[k][row].diverged ? 0 : res[k][row].test);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0)
        goto done;
    snprintf(path, sizeof path, "%s/transfer.gp", out);
    f = fopen(path, "w");
    if (!f || fputs(plot_script, f) < 0 || fclose(f) != 0)
        goto done;
    int plotted = 0;
    int drew = run_gnuplot(out, "transfer.gp");
    if (drew == 1)
        printf("gnuplot not found: skipping the plot\n");
    else if (drew != 0 && strchr(out, '\'') == NULL)
        printf("warning: gnuplot failed\n");
    plotted = drew == 0;
    printf("files written in %s/: transfer.dat transfer_test.dat transfer.gp%s\n", out,
           plotted ? " transfer.png" : "");

    /* the one thing checked: on the network it was learned on, the schedule beats its start */
    ok = !res[0][LEARNED_ALL].diverged && res[0][LEARNED_ALL].valid < res[0][START].valid;
    if (ok)
        printf("RESULT: ok transfer source-net validation loss %.4f -> %.4f; wide net test loss "
               "learned %.4f, rescaled init %.4f, best constant %.4f\n", res[0][START].valid,
               res[0][LEARNED_ALL].valid, tl->test, tr->test, tg->test);
    else
        printf("RESULT: FAIL transfer: the learned schedule does not beat its start on the "
               "source network\n");
done:
    revl_hyperopt_free(h);
    for (int k = 0; k < N_NETS; k++)
        revl_model_free(model[k]);
    revl_dataset_free(test);
    revl_dataset_free(valid);
    revl_dataset_free(train);
    revl_dataset_free(all);
    free(alpha);
    return ok ? 0 : 1;
}
