/* lr_schedule.c: the paper's schedule experiment (Maclaurin, Duvenaud & Adams 2015, section
 * 3.1) on Fashion-MNIST, and what `make demo` runs. A tanh MLP 784-50-50-50-10 trains for
 * T = 100 steps of momentum SGD (batch 200) on 10,000 images; revl reverses each run exactly to
 * get the gradient of the validation loss (10,000 other images) with respect to a learning rate
 * and a momentum per step and per layer-and-kind (8 groups, 1600 numbers) and 8 initial weight
 * scales, and Adam follows it for 50 meta-iterations. Writes the learned hyperparameters, data
 * files and PNG plots (gnuplot) to out/lr_schedule/, and checks that the learned
 * hyperparameters give a lower validation loss than the starting ones.
 *
 *   lr_schedule [--quick] [--out DIR] [--data DIR] [--iterations N] [--threads N]
 *
 * --quick: 1,000 + 1,000 examples, T = 20, 5 meta-iterations (seconds; for CI). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

#define N_LAYERS 4
#define N_GROUPS (2 * N_LAYERS) /* group 2l = weights of layer l, 2l+1 = its biases */

typedef struct config {
    int quick;
    const char *out;
    const char *data;
    size_t n_train, n_valid, n_test, n_steps, iterations;
    int threads;
} config;

/* What the progress callback keeps: the meta-learning curve. */
typedef struct progress {
    size_t iterations, done;
    double *train_loss, *valid_loss, *norm, *seconds, *step_size;
    int *chaos;
    double total_seconds;
    double best_valid; /* the lowest validation loss reported: that of the best values */
} progress;

static int parse_args(int argc, char **argv, config *c)
{
    *c = (config){.out = "out/lr_schedule", .data = EXAMPLE_FASHION_DIR,
                  .n_train = 10000, .n_valid = 10000, .n_test = 10000, .n_steps = 100,
                  .iterations = 50};
    long iterations = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick"))
            c->quick = 1;
        else if (!strcmp(a, "--out") && i + 1 < argc)
            c->out = argv[++i];
        else if (!strcmp(a, "--data") && i + 1 < argc)
            c->data = argv[++i];
        else if (!strcmp(a, "--iterations") && i + 1 < argc)
            iterations = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--threads") && i + 1 < argc)
            c->threads = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--quick] [--out DIR] [--data DIR] [--iterations N] "
                            "[--threads N]\n", argv[0]);
            return 1;
        }
    }
    if (c->quick) {
        c->n_train = c->n_valid = c->n_test = 1000;
        c->n_steps = 20;
        c->iterations = 5;
    }
    if (iterations > 0)
        c->iterations = (size_t)iterations;
    return 0;
}

static void path_join(char *dst, size_t size, const char *dir, const char *name)
{
    snprintf(dst, size, "%s/%s", dir, name);
}

/* Training images [first, first + count) of the Fashion-MNIST training file (or the test file). */
static int load(revl_dataset *all, const config *c, int test, size_t count)
{
    return load_fashion(all, "lr_schedule", c->data, test ? "t10k" : "train", count);
}

static int report(const revl_hyperopt_report *r, void *user)
{
    progress *p = user;
    size_t i = r->iteration;
    if (i < p->iterations) {
        p->train_loss[i] = r->train_loss;
        p->valid_loss[i] = r->valid_loss;
        p->norm[i] = r->hypergrad_norm;
        p->seconds[i] = r->seconds;
        p->step_size[i] = r->step_size;
        p->chaos[i] = r->chaos;
    }
    p->done = i + 1;
    if (i == 0 || r->valid_loss < p->best_valid)
        p->best_valid = r->valid_loss;
    p->total_seconds += r->seconds;
    double left = p->total_seconds / (double)(i + 1) * (double)(p->iterations - i - 1);
    printf("meta %3zu/%zu  train %.4f  valid %.4f (acc %.3f)  |hypergrad| %.3e  %5.2f s  "
           "~%.0f s left",
           i + 1, p->iterations, r->train_loss, r->valid_loss, r->valid_accuracy,
           r->hypergrad_norm, r->seconds, left);
    if (r->chaos) /* the norm jumped: the update was discarded and the meta step halved */
        printf("  (chaos guard: meta step now %g)", r->step_size);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* Train once with the given hyperparameters, from the same initial noise and minibatches as the
 * hyper-optimiser, and evaluate on the validation and test sets: an independent check that the
 * saved hyperparameters do what the meta-learning curve says. */
static int evaluate(revl_model *m, const config *c, const double *alpha, const double *gamma,
                    const double *log_scales, const revl_dataset *valid, const revl_dataset *test,
                    double *valid_loss, double *test_loss, double *test_acc)
{
    size_t P = revl_model_n_params(m), off[N_GROUPS + 1];
    revl_model_group_offsets(m, off);
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    double *w = malloc(P * sizeof *w);
    revl_trainer_options to;
    revl_trainer_options_init(&to);
    to.threads = c->threads;
    int rc = w ? REVL_OK : REVL_ERR_NOMEM;
    if (rc == REVL_OK)
        rc = revl_schedule_create(&s, c->n_steps, N_GROUPS, off);
    if (rc == REVL_OK)
        rc = revl_schedule_set_all(s, alpha, gamma);
    if (rc == REVL_OK)
        rc = revl_trainer_create(&t, m, s, &to);
    if (rc == REVL_OK)
        rc = revl_model_init_weights(m, log_scales, 0, w);
    if (rc == REVL_OK)
        rc = revl_trainer_train(t, w, NULL);
    if (rc == REVL_OK)
        rc = revl_trainer_weights(t, w);
    if (rc == REVL_OK)
        rc = revl_model_evaluate(m, valid, w, valid_loss, NULL, NULL);
    if (rc == REVL_OK)
        rc = revl_model_evaluate(m, test, w, test_loss, NULL, test_acc);
    if (rc != REVL_OK)
        fprintf(stderr, "lr_schedule: evaluation failed: %s (%s)\n", revl_strerror(rc),
                t ? revl_trainer_last_error(t) : "");
    revl_trainer_free(t);
    revl_schedule_free(s);
    free(w);
    return rc;
}

static const char *group_name[N_GROUPS] = {"W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"};

/* step-major T x G array as a table: step, then one column per group */
static int write_table(const char *path, const char *what, const double *x, size_t T)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# learned %s per step; columns: step", what);
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

static int write_curve(const char *path, const progress *p, size_t done)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# meta-iteration train_loss valid_loss hypergrad_norm seconds meta_step "
               "chaos_guard_fired\n");
    for (size_t i = 0; i < done; i++)
        fprintf(f, "%zu %.8g %.8g %.8g %.4f %g %d\n", i + 1, p->train_loss[i], p->valid_loss[i],
                p->norm[i], p->seconds[i], p->step_size[i], p->chaos[i]);
    return fclose(f);
}

/* The gnuplot script is written next to the data so the plots can be redrawn or restyled. */
static const char *plot_script =
    "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
    "set terminal @term size 1000,460\n"
    "set grid\n"
    "set key outside bottom center horizontal\n"
    "L1 = 'layer 1 (784-50)'; L2 = 'layer 2 (50-50)'; L3 = 'layer 3 (50-50)'; "
    "L4 = 'layer 4 (50-10)'\n"
    "set xlabel 'training step'\n"
    "set output 'alpha.png'\n"
    "set multiplot layout 1,2 title 'Learned learning rate per step "
    "(Fashion-MNIST, 784-50-50-50-10 tanh)'\n"
    "set ylabel 'alpha'\n"
    "set title 'weights'\n"
    "plot 'alpha.dat' u 1:2 w l lw 2 t L1, '' u 1:4 w l lw 2 t L2, '' u 1:6 w l lw 2 t L3, "
    "'' u 1:8 w l lw 2 t L4\n"
    "set title 'biases'\n"
    "plot 'alpha.dat' u 1:3 w l lw 2 t L1, '' u 1:5 w l lw 2 t L2, '' u 1:7 w l lw 2 t L3, "
    "'' u 1:9 w l lw 2 t L4\n"
    "unset multiplot\n"
    "set output 'gamma.png'\n"
    "set multiplot layout 1,2 title 'Learned momentum per step'\n"
    "set ylabel 'gamma'\n"
    "set yrange [0:1]\n"
    "set title 'weights'\n"
    "plot 'gamma.dat' u 1:2 w l lw 2 t L1, '' u 1:4 w l lw 2 t L2, '' u 1:6 w l lw 2 t L3, "
    "'' u 1:8 w l lw 2 t L4\n"
    "set title 'biases'\n"
    "plot 'gamma.dat' u 1:3 w l lw 2 t L1, '' u 1:5 w l lw 2 t L2, '' u 1:7 w l lw 2 t L3, "
    "'' u 1:9 w l lw 2 t L4\n"
    "unset multiplot\n"
    "set autoscale y\n"
    "set terminal @term size 640,420\n"
    "set key inside top right\n"
    "set output 'learning_curve.png'\n"
    "set title 'Meta-learning curve'\n"
    "set xlabel 'meta-iteration'\n"
    "set ylabel 'cross-entropy after T steps'\n"
    "plot 'learning_curve.dat' u 1:2 w lp pt 7 ps 0.6 lw 2 t 'training (last minibatch)', "
    "'' u 1:3 w lp pt 7 ps 0.6 lw 2 t 'validation'\n";

/* Runs gnuplot in dir on script; 1 when gnuplot is not installed, -1 when it failed. */
static int plot(const char *dir, const char *script_name, const char *script)
{
    char path[4096];
    path_join(path, sizeof path, dir, script_name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(script, f) < 0 || fclose(f) != 0)
        return -1;
    return run_gnuplot(dir, script_name);
}

int main(int argc, char **argv)
{
    config c;
    if (parse_args(argc, argv, &c))
        return 2;
    double t_start = now();
    const size_t T = c.n_steps, G = N_GROUPS, TG = c.n_steps * N_GROUPS;
    int ok = 0;

    revl_dataset *all = NULL, *train = NULL, *valid = NULL, *test = NULL;
    revl_model *model = NULL;
    revl_hyperopt *h = NULL, *h2 = NULL;
    double *buf = calloc(6 * TG + 5 * c.iterations + 4 * G, sizeof(double));
    progress p = {.iterations = c.iterations, .chaos = calloc(c.iterations, sizeof(int))};
    if (!buf || !p.chaos) {
        free(buf);
        free(p.chaos);
        fprintf(stderr, "lr_schedule: out of memory\n");
        return 1;
    }
    double *alpha0 = buf, *gamma0 = alpha0 + TG, *alpha = gamma0 + TG, *gamma = alpha + TG;
    double *alpha_back = gamma + TG, *gamma_back = alpha_back + TG;
    p.train_loss = gamma_back + TG;
    p.valid_loss = p.train_loss + c.iterations;
    p.norm = p.valid_loss + c.iterations;
    p.seconds = p.norm + c.iterations;
    p.step_size = p.seconds + c.iterations;
    double *scales0 = p.step_size + c.iterations, *scales = scales0 + G;
    double *scales_back = scales + G;

    revl_dataset_create(&all, NULL);
    revl_dataset_create(&train, NULL);
    revl_dataset_create(&valid, NULL);
    revl_dataset_create(&test, NULL);
    if (!all || !train || !valid || !test)
        goto done;
    /* training = the first n_train images of the training file, validation = the next n_valid;
     * the test set (t10k) is never seen by the meta-optimiser. */
    if (load(all, &c, 0, c.n_train + c.n_valid) != REVL_OK ||
        revl_dataset_subset(train, all, 0, c.n_train) != REVL_OK ||
        revl_dataset_subset(valid, all, c.n_train, c.n_valid) != REVL_OK ||
        load(test, &c, 1, c.n_test) != REVL_OK)
        goto done;
    revl_dataset_free(all);
    all = NULL;

    size_t widths[N_LAYERS + 1] = {784, 50, 50, 50, 10};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo); /* tanh, batch 200, minibatch seed 0 */
    mo.threads = c.threads;
    int rc = revl_mlp_create(&model, N_LAYERS + 1, widths, train, &mo);
    if (rc != REVL_OK) {
        fprintf(stderr, "lr_schedule: MLP: %s\n", revl_strerror(rc));
        goto done;
    }

    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    ho.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE;
    ho.method = REVL_META_ADAM;
    ho.step_size = 0.04;
    ho.iterations = c.iterations;
    ho.report = report;
    ho.report_user = &p;
    ho.threads = c.threads;
    rc = revl_hyperopt_create(&h, model, valid, T, &ho);
    if (rc != REVL_OK) {
        fprintf(stderr, "lr_schedule: hyperopt: %s\n", revl_strerror(rc));
        goto done;
    }
    revl_hyperopt_get(h, 0, alpha0, gamma0, scales0, NULL); /* alpha e^-1, gamma 0.5, scale e^-3 */

    printf("revl %s: learning %zu learning rates, %zu momenta and %zu init scales of a "
           "784-50-50-50-10 tanh MLP\n", revl_version_string(), TG, TG, G);
    printf("Fashion-MNIST: %zu training, %zu validation, %zu test images; batch 200, T = %zu, "
           "%zu meta-iterations of Adam (step 0.04)\n",
           c.n_train, c.n_valid, c.n_test, T, c.iterations);
    printf("start: alpha = e^-1 = %.4f, gamma = %.2f, init scale e^-3 = %.4f (all groups)\n",
           alpha0[0], gamma0[0], exp(scales0[0]));

    rc = revl_hyperopt_run(h);
    if (rc != REVL_OK) {
        fprintf(stderr, "lr_schedule: meta-optimisation failed: %s (%s)\n", revl_strerror(rc),
                revl_hyperopt_last_error(h));
        goto done;
    }
    size_t done_iters = p.done < c.iterations ? p.done : c.iterations;

    /* the learned hyperparameters: the best-so-far by validation loss */
    revl_hyperopt_get(h, 1, alpha, gamma, scales, NULL);
    if (make_dirs(c.out) != 0) {
        fprintf(stderr, "lr_schedule: cannot create %s: %s\n", c.out, strerror(errno));
        goto done;
    }
    char path[4096];
    path_join(path, sizeof path, c.out, "hyperparams.txt");
    if ((rc = revl_hyperopt_save(h, 1, path)) != REVL_OK) {
        fprintf(stderr, "lr_schedule: %s\n", revl_hyperopt_last_error(h));
        goto done;
    }
    /* the file must load back to the same numbers */
    rc = revl_hyperopt_create(&h2, model, valid, T, &ho);
    if (rc == REVL_OK)
        rc = revl_hyperopt_load(h2, path);
    if (rc == REVL_OK)
        rc = revl_hyperopt_get(h2, 0, alpha_back, gamma_back, scales_back, NULL);
    if (rc != REVL_OK) {
        fprintf(stderr, "lr_schedule: reading back %s failed: %s\n", path,
                h2 ? revl_hyperopt_last_error(h2) : revl_strerror(rc));
        goto done;
    }
    double back_err = 0;
    for (size_t i = 0; i < TG; i++)
        back_err = fmax(back_err, fmax(fabs(alpha_back[i] - alpha[i]) / alpha[i],
                                       fabs(gamma_back[i] - gamma[i])));
    for (size_t g = 0; g < G; g++)
        back_err = fmax(back_err, fabs(scales_back[g] - scales[g]));

    char name[4096];
    path_join(name, sizeof name, c.out, "alpha.dat");
    int werr = write_table(name, "alpha", alpha, T);
    path_join(name, sizeof name, c.out, "gamma.dat");
    werr |= write_table(name, "gamma (as applied: n/2^16)", gamma, T);
    path_join(name, sizeof name, c.out, "learning_curve.dat");
    werr |= write_curve(name, &p, done_iters);
    path_join(name, sizeof name, c.out, "init_scales.dat");
    FILE *f = fopen(name, "w");
    if (f) {
        fprintf(f, "# layer kind(0 weights, 1 biases) fan_in learned_log_scale learned_scale "
                   "1/sqrt(fan_in)\n");
        for (size_t g = 0; g < G; g++)
            fprintf(f, "%zu %zu %zu %.6f %.6f %.6f\n", g / 2 + 1, g % 2, widths[g / 2], scales[g],
                    exp(scales[g]), 1 / sqrt((double)widths[g / 2]));
        werr |= fclose(f);
    } else
        werr = -1;
    if (werr) {
        fprintf(stderr, "lr_schedule: writing data files to %s failed\n", c.out);
        goto done;
    }
    int plotted = plot(c.out, "plots.gp", plot_script);
    if (plotted == 1)
        printf("gnuplot not found: skipping the plots (install gnuplot-nox, or run "
               "'gnuplot plots.gp' in %s later)\n", c.out);
    else if (plotted < 0)
        printf("warning: gnuplot failed; the data files are in %s\n", c.out);

    /* independent check: train once more with the start and the learned hyperparameters */
    double v0, te0, acc0, v1, te1, acc1;
    if (evaluate(model, &c, alpha0, gamma0, scales0, valid, test, &v0, &te0, &acc0) != REVL_OK ||
        evaluate(model, &c, alpha, gamma, scales, valid, test, &v1, &te1, &acc1) != REVL_OK)
        goto done;

    /* the retrained loss must be the hyper-optimiser's best: same noise, minibatches and bits */
    double repro = fabs(v1 - p.best_valid);
    printf("\nlearned init scales (e^log scale) against 1/sqrt(fan-in):\n");
    for (size_t l = 0; l < N_LAYERS; l++)
        printf("  layer %zu (%3zu in): weights %.4f  biases %.4f  1/sqrt(fan-in) %.4f\n", l + 1,
               widths[l], exp(scales[2 * l]), exp(scales[2 * l + 1]),
               1 / sqrt((double)widths[l]));
    printf("\n                           validation loss   test loss   test accuracy\n");
    printf("start hyperparameters           %.4f          %.4f        %.3f\n", v0, te0, acc0);
    printf("learned hyperparameters         %.4f          %.4f        %.3f\n", v1, te1, acc1);
    printf("(retrained from the saved values: %s the best validation loss of the run, "
           "difference %.1e)\n", repro <= 1e-12 * p.best_valid ? "exactly" : "NOT", repro);
    printf("\nfiles written in %s/:\n  hyperparams.txt (revl_hyperopt_save; loads back, max "
           "difference %.1e)\n  alpha.dat gamma.dat init_scales.dat learning_curve.dat "
           "plots.gp\n",
           c.out, back_err);
    if (plotted == 0)
        printf("  alpha.png gamma.png learning_curve.png\n");
    printf("total time %.1f s\n", now() - t_start);

    ok = v1 < v0 && back_err < 1e-12 && done_iters == c.iterations &&
         repro <= 1e-12 * p.best_valid;
    if (ok)
        printf("RESULT: ok lr_schedule validation loss %.4f -> %.4f\n", v0, v1);
    else
        printf("RESULT: FAIL lr_schedule validation loss %.4f -> %.4f, %zu/%zu meta-iterations, "
               "file read-back difference %.1e, retrained loss off by %.1e\n",
               v0, v1, done_iters, c.iterations, back_err, repro);
done:
    revl_hyperopt_free(h2);
    revl_hyperopt_free(h);
    revl_model_free(model);
    revl_dataset_free(test);
    revl_dataset_free(valid);
    revl_dataset_free(train);
    revl_dataset_free(all);
    free(buf);
    free(p.chaos);
    return ok ? 0 : 1;
}
