/* init_scales.c: does the hypergradient find the classic 1/sqrt(fan-in) initial weight scale?
 * A tanh MLP 784-50-50-50-10 trains for T = 100 steps on Fashion-MNIST with a fixed schedule
 * (alpha = e^-1, gamma = 0.5); only the 8 initial scales (weights and biases of each layer) are
 * learned, from two starting points (e^-4 and e^-2 for every group), with Adam on the exact
 * hypergradient. Prints the learned scales next to 1/sqrt(fan-in) and, for the first layer,
 * next to 1/sqrt(E|x|^2) (raw pixels are not unit-variance inputs), and plots them (gnuplot).
 *
 *   init_scales [--quick] [--out DIR] [--data DIR] [--iterations N] [--threads N] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

#define N_LAYERS 4
#define N_GROUPS (2 * N_LAYERS)
#define N_STARTS 2

static const double start_log_scale[N_STARTS] = {-4, -2};

/* The validation loss of the start (iteration 0) and the lowest seen: the loss of the best
 * values, which revl_hyperopt_get(h, 1, ...) returns. */
typedef struct progress {
    size_t iterations;
    double first, best;
} progress;

static int report(const revl_hyperopt_report *r, void *user)
{
    progress *p = user;
    if (r->iteration == 0)
        p->first = p->best = r->valid_loss;
    p->best = fmin(p->best, r->valid_loss);
    if (r->iteration == 0 || (r->iteration + 1) % 5 == 0 || r->iteration + 1 == p->iterations)
        printf("  meta %3zu/%zu  valid %.4f  |hypergrad| %.3e  %.2f s\n", r->iteration + 1,
               p->iterations, r->valid_loss, r->hypergrad_norm, r->seconds);
    fflush(stdout);
    return 0;
}

static const char *plot_script =
    "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
    "set terminal @term size 760,520\n"
    "set output 'init_scales.png'\n"
    "set title 'Learned initial scales, 784-50-50-50-10 tanh on Fashion-MNIST'\n"
    "unset xlabel\n"
    "set ylabel 'initial scale (standard deviation)'\n"
    "set logscale y\n"
    "set grid\n"
    "set key outside bottom center horizontal maxrows 3\n"
    "set xrange [0.5:4.5]\n"
    "set xtics ('layer 1 (784 in)' 1, 'layer 2 (50 in)' 2, 'layer 3 (50 in)' 3, "
    "'layer 4 (50 in)' 4)\n"
    "plot 'init_scales.dat' u 1:3 w lp lw 2 pt 7 t '1/sqrt(fan-in)', "
    "'' every ::0::0 u 1:8 w p pt 13 ps 2 t '1/sqrt(E|x|^2)', "
    "'' u 1:4 w lp lw 2 pt 5 t 'weights, from e^{-4}', "
    "'' u 1:6 w lp lw 2 pt 4 t 'weights, from e^{-2}', "
    "'' u 1:5 w lp lw 1 pt 9 dt 2 t 'biases, from e^{-4}', "
    "'' u 1:7 w lp lw 1 pt 8 dt 2 t 'biases, from e^{-2}'\n";

int main(int argc, char **argv)
{
    int quick = 0, threads = 0;
    const char *out = "out/init_scales", *data = EXAMPLE_FASHION_DIR;
    long iters_arg = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            iters_arg = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: init_scales [--quick] [--out DIR] [--data DIR] "
                            "[--iterations N] [--threads N]\n");
            return 2;
        }
    }
    size_t n = quick ? 1000 : 10000, T = quick ? 20 : 100;
    size_t iterations = iters_arg > 0 ? (size_t)iters_arg : quick ? 5 : 40;
    int ok = 0;

    revl_dataset *all = NULL, *train = NULL, *valid = NULL;
    revl_model *model = NULL;
    revl_hyperopt *h = NULL;
    revl_dataset_create(&all, NULL);
    revl_dataset_create(&train, NULL);
    revl_dataset_create(&valid, NULL);
    if (!all || !train || !valid || load_fashion(all, "init_scales", data, "train", 2 * n) != REVL_OK ||
        revl_dataset_subset(train, all, 0, n) != REVL_OK ||
        revl_dataset_subset(valid, all, n, n) != REVL_OK)
        goto done;

    size_t widths[N_LAYERS + 1] = {784, 50, 50, 50, 10};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.threads = threads;
    if (revl_mlp_create(&model, N_LAYERS + 1, widths, train, &mo) != REVL_OK)
        goto done;

    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho); /* alpha e^-1, gamma 0.5 kept fixed: learn scales only */
    ho.learn = REVL_LEARN_INIT_SCALE;
    ho.step_size = 0.1; /* 8 numbers only: a larger meta step than the schedule's 0.04 */
    ho.iterations = iterations;
    ho.report = report;
    progress p = {.iterations = iterations};
    ho.report_user = &p;
    ho.threads = threads;

    printf("revl %s: learning the 8 initial scales of a 784-50-50-50-10 tanh MLP "
           "(%zu + %zu Fashion-MNIST images, T = %zu, alpha = e^-1, gamma = 0.5, "
           "%zu meta-iterations)\n", revl_version_string(), n, n, T, iterations);
    double learned[N_STARTS][N_GROUPS], loss0[N_STARTS], loss1[N_STARTS];
    for (int s = 0; s < N_STARTS; s++) {
        revl_hyperopt_free(h);
        h = NULL;
        double ls[N_GROUPS];
        for (int g = 0; g < N_GROUPS; g++)
            ls[g] = start_log_scale[s];
        int rc = revl_hyperopt_create(&h, model, valid, T, &ho);
        if (rc == REVL_OK)
            rc = revl_hyperopt_set(h, NULL, NULL, ls, NULL);
        printf("start %d: every scale e^%.0f = %.4f\n", s + 1, start_log_scale[s], exp(ls[0]));
        if (rc == REVL_OK)
            rc = revl_hyperopt_run(h);
        if (rc != REVL_OK) {
            fprintf(stderr, "init_scales: %s (%s)\n", revl_strerror(rc),
                    h ? revl_hyperopt_last_error(h) : "");
            goto done;
        }
        revl_hyperopt_get(h, 1, NULL, NULL, learned[s], NULL);
        loss0[s] = p.first;
        loss1[s] = p.best;
    }

    /* 1/sqrt(fan-in) gives unit-variance pre-activations for unit-variance inputs; pixels in
     * [0, 1] are not, and what matters is E|x|^2 = sum over inputs of E[x_i^2] */
    const double *x = revl_dataset_x(train);
    double sq = 0;
    for (size_t i = 0; i < n * widths[0]; i++)
        sq += x[i] * x[i];
    double input_rule = 1 / sqrt(sq / (double)n);
    printf("\nlayer  fan-in  1/sqrt(fan-in)   learned weight scale      learned bias scale\n");
    printf("                               from e^%.0f   from e^%.0f     from e^%.0f   "
           "from e^%.0f\n", start_log_scale[0], start_log_scale[1], start_log_scale[0],
           start_log_scale[1]);
    for (int l = 0; l < N_LAYERS; l++)
        printf("%5d  %6zu  %14.4f   %9.4f   %9.4f     %9.4f   %9.4f\n", l + 1, widths[l],
               1 / sqrt((double)widths[l]), exp(learned[0][2 * l]), exp(learned[1][2 * l]),
               exp(learned[0][2 * l + 1]), exp(learned[1][2 * l + 1]));
    printf("layer 1 sees raw pixels: E|x|^2 = %.1f per image, so unit-variance pre-activations "
           "need scale 1/sqrt(E|x|^2) = %.4f\n", sq / (double)n, input_rule);
    printf("validation loss: from e^%.0f %.4f -> %.4f, from e^%.0f %.4f -> %.4f\n",
           start_log_scale[0], loss0[0], loss1[0], start_log_scale[1], loss0[1], loss1[1]);

    char path[4096];
    if (make_dirs(out) != 0) {
        fprintf(stderr, "init_scales: cannot create %s\n", out);
        goto done;
    }
    snprintf(path, sizeof path, "%s/init_scales.dat", out);
    FILE *f = fopen(path, "w");
    if (!f)
        goto done;
    fprintf(f, "# layer fan_in 1/sqrt(fan_in) weights_from_start1 biases_from_start1 "
               "weights_from_start2 biases_from_start2 1/sqrt(E|x|^2) (layer 1; else "
               "1/sqrt(fan_in)); starts e^%.0f, e^%.0f\n", start_log_scale[0], start_log_scale[1]);
    for (int l = 0; l < N_LAYERS; l++)
        fprintf(f, "%d %zu %.6f %.6f %.6f %.6f %.6f %.6f\n", l + 1, widths[l],
                1 / sqrt((double)widths[l]), exp(learned[0][2 * l]), exp(learned[0][2 * l + 1]),
                exp(learned[1][2 * l]), exp(learned[1][2 * l + 1]),
                l == 0 ? input_rule : 1 / sqrt((double)widths[l]));
    if (fclose(f) != 0)
        goto done;
    snprintf(path, sizeof path, "%s/init_scales.gp", out);
    f = fopen(path, "w");
    if (!f || fputs(plot_script, f) < 0 || fclose(f) != 0)
        goto done;
    int plotted = 0;
    int drew = run_gnuplot(out, "init_scales.gp");
    if (drew == 1)
        printf("gnuplot not found: skipping the plot\n");
    else if (drew != 0 && strchr(out, '\'') == NULL)
        printf("warning: gnuplot failed\n");
    plotted = drew == 0;
    printf("files written in %s/: init_scales.dat init_scales.gp%s\n", out,
           plotted ? " init_scales.png" : "");

    ok = loss1[0] < loss0[0] && loss1[1] < loss0[1];
    for (int s = 0; s < N_STARTS; s++)
        for (int g = 0; g < N_GROUPS; g++)
            ok = ok && isfinite(learned[s][g]);
    if (ok)
        printf("RESULT: ok init_scales validation loss %.4f -> %.4f and %.4f -> %.4f\n", loss0[0],
               loss1[0], loss0[1], loss1[1]);
    else
        printf("RESULT: FAIL init_scales validation loss %.4f -> %.4f and %.4f -> %.4f\n",
               loss0[0], loss1[0], loss0[1], loss1[1]);
done:
    revl_hyperopt_free(h);
    revl_model_free(model);
    revl_dataset_free(valid);
    revl_dataset_free(train);
    revl_dataset_free(all);
    return ok ? 0 : 1;
}
