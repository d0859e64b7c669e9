/* tune_schedule.c: revl's default way to tune (revl_tuner), what `make demo` runs, on the paper's
 * schedule setting (a tanh MLP 784-50-50-50-10, 100 momentum steps of batch 200 on 10,000
 * Fashion-MNIST images, validation on 10,000 others, test on t10k). First the old way for
 * comparison: today's hyper-optimiser loop (revl_hyperopt, Adam on per-step hypergradients from
 * the paper's start) for 50 meta-iterations, timed; then the tuner with the same number of
 * seconds: a global search over an 8-number family (log rate, momentum, log init scale, a linear
 * decay, one rate multiplier per layer), then per-step refinement by exact hypergradients, each
 * step kept only when the validation loss falls. Prints both results on the test set, writes
 * the best-so-far curves and the learned schedule to out/tune_schedule/ and plots them.
 *
 *   tune_schedule [--quick] [--out DIR] [--data DIR] [--seconds S] [--no-compare]
 *                 [--optimizer momentum|adam] [--threads N]
 *
 * --seconds S: the tuner's budget (default: the time the old loop took; 30 s with --no-compare).
 * Both are timed in this process's CPU seconds (one thread each), so that a busy machine does
 * not favour either.
 * --quick: 1,000 + 1,000 examples, T = 20, 5 old meta-iterations (seconds; for CI). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

#define N_LAYERS 4
#define N_GROUPS (2 * N_LAYERS)
#define MAX_POINTS 100000

typedef struct curve {
    double *t, *best; /* seconds since the start, best validation loss so far */
    size_t n;
    double t0, best_now;
    FILE *log;        /* progress lines also go here */
} curve;

static void curve_add(curve *c, double seconds, double best)
{
    if (c->n < MAX_POINTS) {
        c->t[c->n] = seconds;
        c->best[c->n] = best;
        c->n++;
    }
}

/* CPU seconds of this process: the budget's clock (revl_tuner_options.cpu_time) */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int old_report(const revl_hyperopt_report *r, void *user)
{
    curve *c = user;
    if (r->iteration == 0 || r->valid_loss < c->best_now)
        c->best_now = r->valid_loss;
    double s = cpu_now() - c->t0;
    curve_add(c, s, c->best_now);
    printf("old loop  meta %3zu  valid %.4f  best %.4f  %6.1f s\n", r->iteration + 1,
           r->valid_loss, c->best_now, s);
    fflush(stdout);
    return 0;
}

static int tuner_report(const revl_tuner_report *r, void *user)
{
    curve *c = user;
    curve_add(c, r->seconds, r->best_loss);
    if (r->phase == REVL_TUNE_PHASE_SEARCH)
        printf("tuner search %4zu  valid %.4f  best %.4f  %6.1f s  ~%.0f s left\n", r->index,
               r->loss, r->best_loss, r->seconds, r->eta_seconds);
    else
        printf("tuner refine %4zu  valid %.4f  best %.4f  step %.3g %s  %6.1f s  ~%.0f s left\n",
               r->index, r->loss, r->best_loss, r->step_size, r->accepted ? "kept" : "refused",
               r->seconds, r->eta_seconds);
    fflush(stdout);
    return 0;
}

static int write_curve(const char *dir, const char *name, const curve *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# seconds best_validation_loss\n");
    for (size_t i = 0; i < c->n; i++)
        fprintf(f, "%.4f %.8g\n", c->t[i], c->best[i]);
    return fclose(f);
}

static const char *group_name[N_GROUPS] = {"W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"};

static int write_schedule(const char *dir, const char *name, const double *x, size_t T)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# step");
    for (int g = 0; g < N_GROUPS; g++)
        fprintf(f, " %s", group_name[g]);
    fprintf(f, "\n");
    for (size_t t = 0; t < T; t++) {
        fprintf(f, "%zu", t);
        for (int g = 0; g < N_GROUPS; g++)
            fprintf(f, " %.8g", x[t * N_GROUPS + g]);
        fprintf(f, "\n");
    }
    return fclose(f);
}

static int plot(const char *dir, const char *rate)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/plot.gp", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
            "set grid\n"
            "set terminal @term size 640,420\n"
            "set output 'best_vs_seconds.png'\n"
            "set title 'Best validation loss against seconds'\n"
            "set key noenhanced\n"
            "set yrange [*:1.0]\n"
            "set xlabel 'CPU seconds (one thread)'; set ylabel 'best validation cross-entropy'\n"
            "plot 'old_curve.dat' u 1:2 w steps lw 2 t 'old loop (revl_hyperopt)', "
            "'tuner_curve.dat' u 1:2 w steps lw 2 t 'tuner (search, then refinement)'\n"
            "set autoscale y\n"
            "set terminal @term size 1000,460\n"
            "set output 'alpha.png'\n"
            "set logscale y\n"
            "set xlabel 'training step'; set ylabel 'alpha (log scale)'\n"
            "set key outside bottom center horizontal\n"
            "set multiplot layout 1,2 title 'Tuned alpha per step'\n"
            "set title 'weights'\n"
            "plot 'alpha.dat' u 1:2 w l lw 2 t 'layer 1', '' u 1:4 w l lw 2 t 'layer 2', "
            "'' u 1:6 w l lw 2 t 'layer 3', '' u 1:8 w l lw 2 t 'layer 4'\n"
            "set title 'biases'\n"
            "plot 'alpha.dat' u 1:3 w l lw 2 t 'layer 1', '' u 1:5 w l lw 2 t 'layer 2', "
            "'' u 1:7 w l lw 2 t 'layer 3', '' u 1:9 w l lw 2 t 'layer 4'\n"
            "unset multiplot\n"
            "unset logscale y\n"
            "set output '%s.png'\n"
            "set ylabel '%s'\n"
            "set multiplot layout 1,2 title 'Tuned %s per step'\n"
            "set title 'weights'\n"
            "plot '%s.dat' u 1:2 w l lw 2 t 'layer 1', '' u 1:4 w l lw 2 t 'layer 2', "
            "'' u 1:6 w l lw 2 t 'layer 3', '' u 1:8 w l lw 2 t 'layer 4'\n"
            "set title 'biases'\n"
            "plot '%s.dat' u 1:3 w l lw 2 t 'layer 1', '' u 1:5 w l lw 2 t 'layer 2', "
            "'' u 1:7 w l lw 2 t 'layer 3', '' u 1:9 w l lw 2 t 'layer 4'\n"
            "unset multiplot\n",
            rate, rate, rate, rate, rate);
    if (fclose(f) != 0)
        return -1;
    return run_gnuplot(dir, "plot.gp");
}

/* Test loss and accuracy of weights w. */
static void on_test(revl_model *m, const revl_dataset *test, const double *w, double *loss,
                    double *acc)
{
    if (revl_model_evaluate(m, test, w, loss, NULL, acc) != REVL_OK)
        *loss = *acc = NAN;
}

/* Today's loop, as lr_schedule runs it, for `iterations` meta-iterations: its best validation
 * loss, the test loss of its best point (retrained: the old loop keeps no weights), seconds. */
static int old_loop(revl_model *m, const revl_dataset *valid, const revl_dataset *test, size_t T,
                    revl_optimizer opt, size_t iterations, int threads, curve *c,
                    double *seconds, double *test_loss, double *test_acc)
{
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    ho.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_BETA1 | REVL_LEARN_BETA2 |
               REVL_LEARN_INIT_SCALE;
    ho.iterations = iterations;
    ho.report = old_report;
    ho.report_user = c;
    ho.threads = threads;
    revl_hyperopt *h = NULL;
    c->t0 = cpu_now();
    int rc = revl_hyperopt_create_for(&h, m, valid, T, opt, &ho);
    if (!rc)
        rc = revl_hyperopt_run(h);
    *seconds = cpu_now() - c->t0;
    if (rc) {
        fprintf(stderr, "old loop: %s\n", h ? revl_hyperopt_last_error(h) : revl_strerror(rc));
        revl_hyperopt_free(h);
        return rc;
    }
    /* the best values, trained once more to evaluate them on the test set */
    size_t P = revl_model_n_params(m), TG = T * N_GROUPS, off[N_GROUPS + 1];
    revl_model_group_offsets(m, off);
    double *buf = malloc((P + 2 * TG + N_GROUPS) * sizeof *buf);
    revl_schedule *s = NULL;
    revl_trainer *tr = NULL;
    revl_trainer_options to;
    revl_trainer_options_init(&to);
    to.threads = threads;
    rc = buf ? revl_schedule_create_for(&s, opt, T, N_GROUPS, off, NULL) : REVL_ERR_NOMEM;
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = rc ? 0 : revl_schedule_kinds(s, kinds);
    for (size_t k = 0; k < nk && !rc; k++)
        if (!(rc = revl_hyperopt_get_kind(h, 1, kinds[k], buf + P)))
            rc = revl_schedule_set_kind(s, kinds[k], buf + P);
    if (!rc)
        rc = revl_hyperopt_get(h, 1, NULL, NULL, buf + P + 2 * TG, NULL);
    if (!rc)
        rc = revl_trainer_create(&tr, m, s, &to);
    if (!rc)
        rc = revl_model_init_weights(m, buf + P + 2 * TG, 0, buf);
    if (!rc)
        rc = revl_trainer_train(tr, buf, NULL);
    if (!rc)
        rc = revl_trainer_weights(tr, buf);
    if (!rc)
        on_test(m, test, buf, test_loss, test_acc);
    revl_trainer_free(tr);
    revl_schedule_free(s);
    revl_hyperopt_free(h);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    const char *out = "out/tune_schedule", *data = EXAMPLE_FASHION_DIR;
    int quick = 0, compare = 1, threads = 0;
    double seconds = 0;
    revl_optimizer opt = REVL_OPTIM_MOMENTUM;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick"))
            quick = 1;
        else if (!strcmp(a, "--no-compare"))
            compare = 0;
        else if (!strcmp(a, "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(a, "--seconds") && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--threads") && i + 1 < argc)
            threads = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--optimizer") && i + 1 < argc && !strcmp(argv[i + 1], "adam"))
            opt = REVL_OPTIM_ADAM, i++;
        else if (!strcmp(a, "--optimizer") && i + 1 < argc && !strcmp(argv[i + 1], "momentum"))
            opt = REVL_OPTIM_MOMENTUM, i++;
        else {
            fprintf(stderr, "usage: %s [--quick] [--out DIR] [--data DIR] [--seconds S] "
                            "[--no-compare] [--optimizer momentum|adam] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    if (!(seconds >= 0 && isfinite(seconds))) {
        fprintf(stderr, "tune_schedule: --seconds must be a finite number >= 0\n");
        return 2;
    }
    size_t n = quick ? 1000 : 10000, T = quick ? 20 : 100, iterations = quick ? 5 : 50;
    if (make_dirs(out) != 0) {
        fprintf(stderr, "tune_schedule: cannot create %s\n", out);
        return 1;
    }
    int status = 1;
    revl_dataset *all = NULL, *train = NULL, *valid = NULL, *test = NULL;
    revl_model *m = NULL;
    revl_tuner *tu = NULL;
    curve oc = {0}, tc = {0};
    oc.t = calloc(2 * MAX_POINTS, sizeof(double));
    tc.t = calloc(2 * MAX_POINTS, sizeof(double));
    double *w = NULL, *x = NULL;
    if (!oc.t || !tc.t)
        goto done;
    oc.best = oc.t + MAX_POINTS;
    tc.best = tc.t + MAX_POINTS;
    revl_dataset_create(&all, NULL);
    revl_dataset_create(&train, NULL);
    revl_dataset_create(&valid, NULL);
    revl_dataset_create(&test, NULL);
    if (!all || !train || !valid || !test ||
        load_fashion(all, "tune_schedule", data, "train", 2 * n) != REVL_OK ||
        revl_dataset_subset(train, all, 0, n) != REVL_OK ||
        revl_dataset_subset(valid, all, n, n) != REVL_OK ||
        load_fashion(test, "tune_schedule", data, "t10k", n) != REVL_OK)
        goto done;
    size_t widths[N_LAYERS + 1] = {784, 50, 50, 50, 10};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    if (revl_mlp_create(&m, N_LAYERS + 1, widths, train, &mo) != REVL_OK)
        goto done;
    size_t P = revl_model_n_params(m);
    w = malloc(P * sizeof *w);
    x = malloc(T * N_GROUPS * sizeof *x);
    if (!w || !x)
        goto done;
    const char *on = revl_optimizer_name(opt);
    printf("tune_schedule: %s, MLP 784-50-50-50-10 tanh, %zu + %zu Fashion-MNIST images, T = %zu, "
           "batch 200\n", on, n, n, T);

    double old_s = 0, old_test = NAN, old_acc = NAN;
    if (compare) {
        printf("== the old loop: revl_hyperopt, %zu meta-iterations of Adam on per-step "
               "hypergradients\n", iterations);
        if (old_loop(m, valid, test, T, opt, iterations, threads, &oc, &old_s, &old_test,
                     &old_acc))
            goto done;
        if (seconds == 0)
            seconds = old_s;
    }
    if (seconds == 0)
        seconds = quick ? 5 : 30;

    printf("== the tuner: %.1f CPU s (search over the 8-number family, then per-step "
           "refinement)\n", seconds);
    revl_tuner_options to;
    revl_tuner_options_init(&to);
    to.budget_seconds = seconds;
    to.cpu_time = 1;
    to.report = tuner_report;
    to.report_user = &tc;
    to.test = test;
    to.threads = threads;
    if (revl_tuner_create(&tu, m, valid, T, opt, NULL, NULL, &to) != REVL_OK) {
        fprintf(stderr, "tune_schedule: %s\n", revl_last_create_error());
        goto done;
    }
    if (revl_tuner_run(tu) != REVL_OK) {
        fprintf(stderr, "tune_schedule: %s\n", revl_tuner_last_error(tu));
        goto done;
    }
    revl_tuner_result res;
    revl_tuner_result_init(&res);
    if (revl_tuner_get_result(tu, &res) != REVL_OK)
        goto done;
    printf("tuner: %zu search evaluations, %zu refinement meta-iterations, %zu runs, %.1f s\n",
           res.search_evaluations, res.refine_iterations, res.runs, res.seconds);
    printf("\n%-34s %12s %12s %10s\n", "result (best point)", "valid loss", "test loss",
           "test acc");
    if (compare)
        printf("%-34s %12.4f %12.4f %9.1f%%\n", "old loop (revl_hyperopt)",
               oc.n ? oc.best[oc.n - 1] : NAN, old_test, 100 * old_acc);
    printf("%-34s %12.4f %12.4f %9.1f%%\n", "tuner (same seconds)", res.valid_loss,
           res.test_loss, 100 * res.test_accuracy);
    if (compare)
        printf("the tuner's test loss is %s the old loop's (%.4f vs %.4f)\n",
               res.test_loss < old_test ? "below" : "NOT below", res.test_loss, old_test);

    /* an independent check: the best schedule, trained again from its init scales, gives the
     * tuner's best weights bit for bit */
    int same = 0;
    {
        size_t off[N_GROUPS + 1];
        double scales[N_GROUPS];
        revl_model_group_offsets(m, off);
        revl_schedule *s = NULL;
        revl_trainer *tr = NULL;
        revl_trainer_options tro;
        revl_trainer_options_init(&tro);
        tro.threads = threads;
        double *wb = malloc(P * sizeof *wb);
        if (wb && revl_schedule_create_for(&s, opt, T, N_GROUPS, off, NULL) == REVL_OK &&
            revl_tuner_best_schedule(tu, s) == REVL_OK &&
            revl_tuner_best_scales_meta(tu, scales, NULL) == REVL_OK &&
            revl_trainer_create(&tr, m, s, &tro) == REVL_OK &&
            revl_model_init_weights(m, scales, to.seed, w) == REVL_OK &&
            revl_trainer_train_forward(tr, w, NULL) == REVL_OK &&
            revl_trainer_weights(tr, w) == REVL_OK && revl_tuner_best_weights(tu, wb) == REVL_OK)
            same = memcmp(w, wb, P * sizeof *w) == 0;
        revl_trainer_free(tr);
        revl_schedule_free(s);
        free(wb);
    }
    if (!same) {
        fprintf(stderr, "tune_schedule: the best schedule trained again does not give the "
                        "tuner's best weights\n");
        goto done;
    }

    /* the learned schedule and the curves */
    revl_hyper rate = opt == REVL_OPTIM_ADAM ? REVL_HYPER_BETA1 : REVL_HYPER_GAMMA;
    if (revl_tuner_best_kind(tu, REVL_HYPER_ALPHA, x) || write_schedule(out, "alpha.dat", x, T) ||
        revl_tuner_best_kind(tu, rate, x) ||
        write_schedule(out, opt == REVL_OPTIM_ADAM ? "beta1.dat" : "gamma.dat", x, T) ||
        write_curve(out, "tuner_curve.dat", &tc) || write_curve(out, "old_curve.dat", &oc)) {
        fprintf(stderr, "tune_schedule: cannot write the results to %s\n", out);
        goto done;
    }
    int pr = plot(out, revl_hyper_name(rate));
    if (pr == 1)
        printf("gnuplot not found: data files in %s, plot script %s/plot.gp\n", out, out);
    else if (pr != 0)
        fprintf(stderr, "tune_schedule: gnuplot failed on %s/plot.gp\n", out);
    else
        printf("plots: %s/best_vs_seconds.png, alpha.png, %s.png\n", out,
               revl_hyper_name(rate));
    printf("RESULT: ok tuner test loss %.4f (acc %.1f%%)", res.test_loss,
           100 * res.test_accuracy);
    if (compare)
        printf(", old loop %.4f (acc %.1f%%) in %.1f s", old_test, 100 * old_acc, old_s);
    printf("; best weights reproduced by retraining\n");
    status = 0;
done:
    revl_tuner_free(tu);
    revl_model_free(m);
    revl_dataset_free(all);
    revl_dataset_free(train);
    revl_dataset_free(valid);
    revl_dataset_free(test);
    free(oc.t);
    free(tc.t);
    free(w);
    free(x);
    return status;
}
