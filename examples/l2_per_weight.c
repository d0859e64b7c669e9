/* l2_per_weight.c: one L2 penalty per weight, learned by hypergradient descent (Maclaurin,
 * Duvenaud & Adams 2015, section 3.2). Logistic regression (the built-in MLP with widths
 * {784, 10}) trains for T = 50 steps of momentum SGD (batch 200, alpha = 1, gamma = 0.9) on
 * 10,000 Fashion-MNIST images with the penalty sum_i exp(meta[i])/2 w_i^2; plain gradient
 * descent on the 7,850 log penalties follows the exact gradient of the loss on 10,000 other
 * images. The learned penalties of each class's 784 weights are drawn as a 28 x 28 image.
 *
 *   l2_per_weight [--quick] [--iterations N] [--step S] [--alpha A] [--out DIR] [--data DIR]
 *
 * --quick: 1,000 + 1,000 images, T = 20, 8 meta-iterations (seconds; for CI). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

#define D 784
#define K 10
#define NW (D * K + K) /* W [784][10] row-major, then b [10]; one penalty each */
#define LOG_L2_START -4.0
#define LOG_INIT_SCALE -6.0 /* w0 = e^-6 z: nearly zero, as logistic regression usually starts */
/* Plain gradient descent needs a large step: one weight barely moves the validation loss, so
 * the hypergradient of each log penalty is ~1e-4 (its norm over all 7,850 starts near 0.01). */
#define STEP_DEFAULT 3000.0

static const char *class_names[K] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static int load(revl_dataset **d, const char *dir, const char *set, size_t first, size_t n)
{
    revl_dataset *all = NULL;
    int rc = revl_dataset_create(&all, NULL);
    int loaded = 0; /* load_fashion reports its own failure */
    if (!rc)
        loaded = (rc = load_fashion(all, "l2_per_weight", dir, set, first + n)) == REVL_OK;
    if (!rc)
        rc = revl_dataset_create(d, NULL);
    if (!rc)
        rc = revl_dataset_subset(*d, all, first, n);
    if (rc && (!all || loaded))
        fprintf(stderr, "l2_per_weight: %s\n", revl_strerror(rc));
    revl_dataset_free(all);
    return rc != REVL_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The learned log penalties of the weights into class j as 28 x 28 matrices one under the
 * other (280 rows), and a 2 x 5 grid of heatmaps on one diverging colour scale centred on the
 * starting value: white = unchanged, blue = weaker, red = stronger, saturated beyond the 98th
 * percentile of the change. The script stays next to the data for redrawing. */
static void plot(const char *dir, const double *meta)
{
    double *dev = malloc(D * K * sizeof *dev), span = 1e-3;
    if (!dev)
        return;
    for (size_t k = 0; k < D * K; k++)
        dev[k] = fabs(meta[k] - LOG_L2_START);
    qsort(dev, D * K, sizeof *dev, cmp_double);
    span = fmax(span, dev[D * K * 98 / 100]);
    free(dev);
    char path[4096];
    snprintf(path, sizeof path, "%s/l2_per_weight.dat", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return;
    for (int j = 0; j < K; j++) {
        for (int r = 0; r < 28; r++)
            for (int c = 0; c < 28; c++)
                fprintf(fp, "%.5g%c", meta[(r * 28 + c) * K + j], c == 27 ? '\n' : ' ');
    }
    fclose(fp);
    snprintf(path, sizeof path, "%s/l2_per_weight.gp", dir);
    if (!(fp = fopen(path, "w")))
        return;
    fprintf(fp, "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
                "set terminal @term size 960,440\nset output 'l2_per_weight.png'\n"
                "set multiplot layout 2,5 title \"learned log L2 penalty per weight, per class: "
                "blue weaker, red stronger than at the start (%g; saturated at +-%.1f)\"\n"
                "set palette defined (-1 '#2166ac', 0 'white', 1 '#b2182b')\n"
                "set cbrange [%g:%g]\nunset colorbox\nunset xtics\nunset ytics\n"
                "set size ratio -1\nset yrange [27.5:-0.5]\nset xrange [-0.5:27.5]\n"
                "set lmargin 0.5\nset rmargin 0.5\n",
            LOG_L2_START, span, LOG_L2_START - span, LOG_L2_START + span);
    for (int j = 0; j < K; j++)
        fprintf(fp, "set title '%s'\nplot 'l2_per_weight.dat' matrix every :::%d::%d using "
                    "1:($2 - %d):3 with image notitle\n",
                class_names[j], 28 * j, 28 * j + 27, 28 * j);
    fprintf(fp, "unset multiplot\n");
    fclose(fp);
    int plotted = run_gnuplot(dir, "l2_per_weight.gp");
    if (plotted == 1)
        printf("l2_per_weight: gnuplot not found, skipping the plot (data and script in %s)\n",
               dir);
    else if (plotted != 0)
        printf("l2_per_weight: gnuplot failed (data and script in %s)\n", dir);
    else
        printf("l2_per_weight: wrote %s/l2_per_weight.png\n", dir);
}

static int report(const revl_hyperopt_report *r, void *user)
{
    printf("  meta-iteration %3zu  training loss %.4f  validation loss %.4f (accuracy %.1f%%)  "
           "|hypergradient| %.3g  %.2f s%s\n", r->iteration + 1, r->train_loss, r->valid_loss,
           100 * r->valid_accuracy, r->hypergrad_norm, r->seconds,
           r->chaos ? "  (chaos guard: step halved)" : "");
    fflush(stdout);
    return 0;
}

/* Train with penalties meta from w0 and evaluate on data: out = {loss, accuracy}. */
static int train_eval(revl_trainer *tr, revl_model *m, const double *w0, const double *meta,
                      const revl_dataset *data, double out[2])
{
    double w[NW];
    int rc = revl_trainer_train(tr, w0, meta);
    if (!rc)
        rc = revl_trainer_weights(tr, w);
    if (!rc)
        rc = revl_model_evaluate(m, data, w, &out[0], NULL, &out[1]);
    return rc;
}

static int fail(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "l2_per_weight: %s failed: %s (%s)\n", what, revl_strerror(rc), msg);
    printf("RESULT: FAILED l2_per_weight: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    int quick = 0;
    size_t iterations = 0;
    double step = STEP_DEFAULT, alpha = 1.0;
    const char *out = "out/l2_per_weight", *data = EXAMPLE_FASHION_DIR;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            iterations = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--step") && i + 1 < argc)
            step = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--alpha") && i + 1 < argc)
            alpha = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else {
            fprintf(stderr, "usage: l2_per_weight [--quick] [--iterations N] [--step S] "
                            "[--alpha A] [--out DIR] [--data DIR]\n");
            return 2;
        }
    }
    if (!iterations)
        iterations = quick ? 8 : 50;
    size_t n = quick ? 1000 : 10000, T = quick ? 20 : 50;
    double t_start = now();

    /* Training: the first n images of the training file; validation: the first n of the test
     * file; test (never seen by the meta-optimiser): the next n of the training file. */
    revl_dataset *train = NULL, *valid = NULL, *test = NULL;
    if (load(&train, data, "train", 0, n) || load(&valid, data, "t10k", 0, n) ||
        load(&test, data, "train", n, n))
        return 1;
    size_t widths[2] = {D, K};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.penalty = REVL_PENALTY_PER_WEIGHT;
    mo.batch_size = 200;
    revl_model *model = NULL;
    int rc = revl_mlp_create(&model, 2, widths, train, &mo);
    if (rc)
        return fail("revl_mlp_create", rc, "");

    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    ho.learn = REVL_LEARN_META; /* the 7,850 log penalties only */
    ho.method = REVL_META_SGD;
    ho.momentum = 0;
    ho.step_size = step;
    ho.iterations = iterations;
    ho.report = report;
    revl_hyperopt *h = NULL;
    rc = revl_hyperopt_create(&h, model, valid, T, &ho);
    if (rc)
        return fail("revl_hyperopt_create", rc, "");
    size_t G = revl_hyperopt_n_groups(h); /* 2: the weights, the biases */
    double *alphas = malloc(T * G * sizeof *alphas), *gammas = malloc(T * G * sizeof *gammas);
    double scales[2] = {LOG_INIT_SCALE, LOG_INIT_SCALE}, *meta0 = malloc(NW * sizeof *meta0);
    for (size_t k = 0; k < T * G; k++)
        alphas[k] = alpha, gammas[k] = 0.9;
    for (size_t k = 0; k < NW; k++)
        meta0[k] = LOG_L2_START;
    rc = revl_hyperopt_set(h, alphas, gammas, scales, meta0);
    if (rc)
        return fail("revl_hyperopt_set", rc, revl_hyperopt_last_error(h));

    printf("l2_per_weight: logistic regression, %zu training / %zu validation images, T = %zu, "
           "batch 200, alpha %g, gamma 0.9; %d log L2 penalties from %g; gradient descent, "
           "step %g, %zu meta-iterations\n", n, n, T, alpha, NW, LOG_L2_START, step, iterations);
    rc = revl_hyperopt_run(h);
    if (rc)
        return fail("revl_hyperopt_run", rc, revl_hyperopt_last_error(h));
    double *meta = malloc(NW * sizeof *meta);
    revl_hyperopt_get(h, 1, NULL, NULL, NULL, meta);

    /* Before and after, on validation and on the test images. */
    size_t offsets[3];
    revl_model_group_offsets(model, offsets);
    revl_schedule *sched = NULL;
    revl_trainer *tr = NULL;
    double w0[NW], v0[2], v1[2], t0[2], t1[2];
    revl_model_init_weights(model, scales, 0, w0); /* the hyper-optimiser's w0 (seed 0) */
    rc = revl_schedule_create(&sched, T, G, offsets);
    if (!rc)
        rc = revl_schedule_set_all(sched, alphas, gammas);
    if (!rc)
        rc = revl_trainer_create(&tr, model, sched, NULL);
    if (!rc)
        rc = train_eval(tr, model, w0, meta0, valid, v0);
    if (!rc)
        rc = train_eval(tr, model, w0, meta0, test, t0);
    if (!rc)
        rc = train_eval(tr, model, w0, meta, valid, v1);
    if (!rc)
        rc = train_eval(tr, model, w0, meta, test, t1);
    if (rc)
        return fail("training with the penalties", rc, tr ? revl_trainer_last_error(tr) : "");

    double lo = INFINITY, hi = -INFINITY, mean = 0;
    for (size_t k = 0; k < D * K; k++) {
        lo = fmin(lo, meta[k]);
        hi = fmax(hi, meta[k]);
        mean += meta[k] / (D * K);
    }
    printf("\n%-34s %10s %9s %10s %9s\n", "penalties", "valid loss", "valid acc", "test loss",
           "test acc");
    printf("%-34s %10.4f %8.1f%% %10.4f %8.1f%%\n", "start (all log L2 = -4)", v0[0],
           100 * v0[1], t0[0], 100 * t0[1]);
    printf("%-34s %10.4f %8.1f%% %10.4f %8.1f%%\n", "learned (best meta-iteration)", v1[0],
           100 * v1[1], t1[0], 100 * t1[1]);
    printf("learned log L2 of the weights: min %.3f, mean %.3f, max %.3f\n", lo, mean, hi);
    if (make_dirs(out) == 0)
        plot(out, meta);
    else
        printf("l2_per_weight: cannot create %s, no plot\n", out);
    printf("(%.1f s)\n", now() - t_start);

    int ok = v1[0] < v0[0];
    printf("RESULT: %s l2_per_weight validation loss %.4f -> %.4f (accuracy %.1f%% -> %.1f%%), "
           "test loss %.4f -> %.4f\n", ok ? "ok" : "FAILED", v0[0], v1[0], 100 * v0[1],
           100 * v1[1], t0[0], t1[0]);
    revl_trainer_free(tr);
    revl_schedule_free(sched);
    revl_hyperopt_free(h);
    revl_model_free(model);
    revl_dataset_free(train);
    revl_dataset_free(valid);
    revl_dataset_free(test);
    free(alphas), free(gammas), free(meta0), free(meta);
    return ok ? 0 : 1;
}
