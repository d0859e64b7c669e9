/* chaos.c: where exact hypergradients stop being useful. For a grid of learning rates alpha and
 * horizons T, train a small MLP on Fashion-MNIST with one constant alpha (gamma = 0.9), reverse
 * the training, and measure |d f / d log alpha| (f = validation loss): it grows with T and alpha
 * until it explodes, the limit Maclaurin et al. report. Prints the table, plots it (gnuplot).
 * Usage: chaos [--quick] [--out DIR (default out/chaos)] [--data DIR] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

#define MAX_A 11
#define MAX_T 8

static int load(revl_dataset **d, const char *dir, const char *set, size_t n)
{
    return revl_dataset_create(d, NULL) != REVL_OK ||
           load_fashion(*d, "chaos", dir, set, n) != REVL_OK;
}

/* One cell of the grid: train T steps at alpha, f = validation loss at w_T, and
 * d f / d log alpha = alpha * sum_t d f / d alpha_t (one alpha shared by every step and
 * parameter). Also the 2-norm over steps of d f / d log alpha_t (a per-step schedule's
 * hypergradient). Returns the status; *f is NaN when training left the fixed-point range. */
static int cell(revl_model *m, const revl_dataset *valid, const double *w0, double alpha,
                size_t T, double *f, double *dlog, double *dnorm)
{
    size_t P = revl_model_n_params(m), off[2] = {0, P};
    revl_schedule *s = NULL;
    revl_trainer *tr = NULL;
    double *w = malloc(P * sizeof *w), *dfdw = malloc(P * sizeof *dfdw);
    double *da = malloc(T * sizeof *da);
    *f = *dlog = *dnorm = NAN;
    int rc = w && dfdw && da ? revl_schedule_create(&s, T, 1, off) : REVL_ERR_NOMEM;
    if (rc == REVL_OK)
        rc = revl_schedule_fill(s, alpha, 0.9);
    if (rc == REVL_OK)
        rc = revl_trainer_create(&tr, m, s, NULL);
    if (rc == REVL_OK)
        rc = revl_trainer_train(tr, w0, NULL);
    if (rc == REVL_OK)
        rc = revl_trainer_weights(tr, w);
    if (rc == REVL_OK)
        rc = revl_model_evaluate(m, valid, w, f, dfdw, NULL);
    if (rc == REVL_OK && !isfinite(*f))
        rc = REVL_ERR_RANGE;
    if (rc == REVL_OK)
        rc = revl_trainer_hypergrad(tr, dfdw, NULL, NULL, da, NULL, NULL);
    if (rc == REVL_OK) {
        double sum = 0, sq = 0;
        for (size_t t = 0; t < T; t++) {
            sum += alpha * da[t];
            sq += alpha * da[t] * alpha * da[t];
        }
        *dlog = sum;
        *dnorm = sqrt(sq);
    } else if (rc == REVL_ERR_RANGE) {
        *f = NAN; /* diverged: w or v left the fixed-point range, or the loss overflowed */
    } else {
        fprintf(stderr, "chaos: alpha %g T %zu: %s (%s)\n", alpha, T, revl_strerror(rc),
                tr ? revl_trainer_last_error(tr) : "");
    }
    revl_trainer_free(tr);
    revl_schedule_free(s);
    free(w), free(dfdw), free(da);
    return rc == REVL_ERR_RANGE ? REVL_OK : rc;
}

/* Two panels from chaos.dat (one curve per T): the validation loss, smooth in alpha, and the
 * hypergradient of that same loss, which explodes at long horizons and large alpha. The script
 * stays next to the data (chaos.gp) so the plot can be redrawn. */
static void plot(const char *dir, size_t nT, const size_t *Ts)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/chaos.gp", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return;
    fprintf(fp, "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
                "set terminal @term size 1000,420\nset output 'chaos.png'\n"
                "set multiplot layout 1,2 title 'MLP 784-50-10 on Fashion-MNIST, gamma = 0.9'\n"
                "set xlabel 'log learning rate'\n");
    for (int c = 0; c < 2; c++) {
        fprintf(fp, c ? "set logscale y\nset format y '10^{%%L}'\nset key top left\n"
                        "set ylabel '|d f / d log alpha|'\nplot "
                      : "set key top right\nset ylabel 'validation loss f after T steps'\nplot ");
        for (size_t j = 0; j < nT; j++)
            fprintf(fp, "%s'chaos.dat' using 2:($1 == %zu ? %s : 1/0) with linespoints lw 2 "
                    "title 'T = %zu'", j ? ", " : "", Ts[j], c ? "abs($4)" : "$3", Ts[j]);
        fprintf(fp, "\n");
    }
    fprintf(fp, "unset multiplot\n");
    fclose(fp);
    int plotted = run_gnuplot(dir, "chaos.gp");
    if (plotted == 1)
        printf("chaos: gnuplot not found, skipping the plot (data and script in %s)\n", dir);
    else if (plotted != 0)
        printf("chaos: gnuplot failed, no plot (data and script in %s)\n", dir);
    else
        printf("chaos: wrote %s/chaos.png\n", dir);
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *out = "out/chaos", *data = EXAMPLE_FASHION_DIR;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else {
            fprintf(stderr, "usage: chaos [--quick] [--out DIR] [--data DIR]\n");
            return 2;
        }
    }
    /* Quick: 3 x 3 grid on 500 examples; default: 11 learning rates x 4 horizons on 2,000. */
    const double logas_full[] = {-4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1};
    const double logas_quick[] = {-4, -1, 1};
    const size_t Ts_full[] = {10, 30, 100, 300}, Ts_quick[] = {10, 30, 100};
    const double *logas = quick ? logas_quick : logas_full;
    const size_t *Ts = quick ? Ts_quick : Ts_full;
    size_t nA = quick ? 3 : 11, nT = quick ? 3 : 4, n_train = quick ? 500 : 2000;

    revl_dataset *train = NULL, *valid = NULL;
    if (load(&train, data, "train", n_train) || load(&valid, data, "t10k", n_train))
        return 1;
    size_t widths[3] = {784, 50, 10};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 100;
    revl_model *m = NULL;
    if (revl_mlp_create(&m, 3, widths, train, &mo) != REVL_OK)
        return 1;
    size_t P = revl_model_n_params(m);
    double *w0 = malloc(P * sizeof *w0), scales[4] = {-3, -3, -3, -3};
    revl_model_init_weights(m, scales, 1, w0);

    printf("chaos: MLP 784-50-10 tanh, %zu training / %zu validation examples, batch 100, "
           "gamma 0.9\n", n_train, n_train);
    char path[4096];
    snprintf(path, sizeof path, "%s/chaos.dat", out);
    FILE *fp = make_dirs(out) == 0 ? fopen(path, "w") : NULL;
    if (!fp) {
        fprintf(stderr, "chaos: cannot write %s\n", path);
        return 1;
    }
    fprintf(fp, "# T log_alpha valid_loss dfdlogalpha norm_over_steps (diverged runs left out)\n");
    double g[MAX_T][MAX_A], fv[MAX_T][MAX_A], t0 = now();
    for (size_t j = 0; j < nT; j++) {
        for (size_t i = 0; i < nA; i++) {
            double dn;
            if (cell(m, valid, w0, exp(logas[i]), Ts[j], &fv[j][i], &g[j][i], &dn) != REVL_OK)
                return 1;
            if (isfinite(fv[j][i]))
                fprintf(fp, "%zu %g %.6g %.6g %.6g\n", Ts[j], logas[i], fv[j][i], g[j][i], dn);
        }
        printf("  T = %zu done (%.0f s)\n", Ts[j], now() - t0);
        fflush(stdout);
    }
    fclose(fp);

    printf("\n|d f / d log alpha| (validation loss f in brackets; '-' = training diverged)\n");
    printf("%8s", "lr \\ T");
    for (size_t j = 0; j < nT; j++)
        printf("  %13zu", Ts[j]);
    printf("\n");
    for (size_t i = 0; i < nA; i++) {
        printf("  e^%+4.1f", logas[i]);
        for (size_t j = 0; j < nT; j++) {
            if (isfinite(fv[j][i]))
                printf("  %7.1e(%4.2f)", fabs(g[j][i]), fv[j][i]);
            else
                printf("  %13s", "-");
        }
        printf("\n");
    }
    printf("(%.1f s in all)\n", now() - t0);
    plot(out, nT, Ts);

    /* Check: at the largest learning rate that trains for every T, the hypergradient grows by
     * more than 1000x from the shortest horizon to the longest, and by 100x more than at the
     * smallest learning rate, where it grows only about in proportion to T. */
    int ia = -1;
    for (size_t i = 0; i < nA; i++) {
        int ok = 1;
        for (size_t j = 0; j < nT; j++)
            ok &= isfinite(fv[j][i]);
        if (ok)
            ia = (int)i;
    }
    int pass = ia > 0;
    double grow_hi = 0, grow_lo = 0;
    if (pass) {
        grow_hi = fabs(g[nT - 1][ia]) / fabs(g[0][ia]);
        grow_lo = fabs(g[nT - 1][0]) / fabs(g[0][0]);
        pass = grow_hi > 1e3 && grow_hi > 100 * grow_lo;
    }
    free(w0);
    revl_model_free(m);
    revl_dataset_free(train);
    revl_dataset_free(valid);
    if (!pass) {
        printf("RESULT: FAILED chaos: hypergradient growth T=%zu->%zu: %.3g at lr e^%g, %.3g at "
               "e^%g\n", Ts[0], Ts[nT - 1], grow_hi, ia >= 0 ? logas[ia] : NAN, grow_lo, logas[0]);
        return 1;
    }
    printf("RESULT: ok chaos growth of |df/dlog alpha| from T=%zu to T=%zu: x%.3g at lr e^%g, "
           "x%.3g at lr e^%g\n", Ts[0], Ts[nT - 1], grow_hi, logas[ia], grow_lo, logas[0]);
    return 0;
}
