/* tutorial.c: the program docs/tutorial.md walks through, whole. A linear regression trained by
 * minibatch momentum SGD, given to revl as a gradient callback (its Hessian-vector products by
 * revl's finite differences); one exact train-and-reverse; then the hyper-optimiser learns the
 * learning rate and momentum of every step for the weights and the bias.
 * Usage: tutorial [--quick] [--out DIR]   (the run takes well under a second either way;
 * --quick is accepted for make examples-quick). Writes DIR/hyperparams.txt (the best schedule),
 * DIR/curve.dat (validation loss per meta-iteration) and its plot curve.png (with gnuplot).
 * Default DIR: out/tutorial. */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "example_util.h"
#include "revl.h"

#define N 400 /* training examples; [N, 2N) is the validation set */
#define D 8   /* features */
#define P (D + 1)
#define B 20  /* minibatch */
#define T 60  /* training steps */
#define ITER 30

typedef struct data { double x[2 * N][D], y[2 * N]; } data;

/* y = x . w_true + 0.5 + noise of sd 0.03, feature j uniform in [-c_j, c_j) with c_j from 1
 * down to 0.35 (an ill-conditioned problem: the small features learn slowly at a fixed rate);
 * a fixed generator, so every run (and the numbers quoted in the tutorial) is the same. */
static double uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) * 0x1p-52 - 1.0;
}

static void make_data(data *d)
{
    uint64_t s = 42;
    double w_true[D], c[D];
    for (int j = 0; j < D; j++) {
        c[j] = pow(0.35, j / (D - 1.0));
        w_true[j] = uniform(&s) / c[j];
    }
    for (size_t i = 0; i < 2 * N; i++) {
        double y = 0.5;
        for (int j = 0; j < D; j++) {
            d->x[i][j] = c[j] * uniform(&s);
            y += w_true[j] * d->x[i][j];
        }
        /* the sum of 12 uniforms in [-1, 1) has sd 2: scaled, a noise of sd 0.03 */
        double z = 0;
        for (int k = 0; k < 12; k++)
            z += uniform(&s);
        d->y[i] = y + 0.015 * z;
    }
}

/* Training loss at step t: half the mean squared error of a linear model on minibatch
 * t mod (N/B). w[D] is the bias. */
static int grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                void *user)
{
    const data *d = user;
    size_t first = (step % (N / B)) * B;
    double l = 0;
    for (int j = 0; j < P; j++)
        g[j] = 0;
    for (size_t i = first; i < first + B; i++) {
        double r = w[D] - d->y[i];
        for (int j = 0; j < D; j++)
            r += w[j] * d->x[i][j];
        for (int j = 0; j < D; j++)
            g[j] += r * d->x[i][j] / B;
        g[D] += r / B;
        l += 0.5 * r * r / B;
    }
    if (loss)
        *loss = l;
    return 0; /* nonzero stops the training with REVL_ERR_CALLBACK */
}

/* Validation objective: half the mean squared error on examples [N, 2N). */
static int objective(const double *w, const double *meta, double *f, double *dfdw,
                     double *dfdmeta, void *user)
{
    const data *d = user;
    *f = 0;
    for (int j = 0; j < P; j++)
        dfdw[j] = 0;
    for (size_t i = N; i < 2 * N; i++) {
        double r = w[D] - d->y[i];
        for (int j = 0; j < D; j++)
            r += w[j] * d->x[i][j];
        for (int j = 0; j < D; j++)
            dfdw[j] += r * d->x[i][j] / N;
        dfdw[D] += r / N;
        *f += 0.5 * r * r / N;
    }
    return 0;
}

static const char *plot_script =
    "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
    "set terminal @term size 640,420\n"
    "set output 'curve.png'\n"
    "set title 'Tutorial: validation loss while learning the schedule'\n"
    "set xlabel 'meta-iteration'\n"
    "set ylabel 'validation loss'\n"
    "set logscale y\n"
    "set grid\n"
    "plot 'curve.dat' using 1:2 with linespoints notitle\n";

typedef struct curve { double loss[ITER]; size_t n; } curve;

static int report(const revl_hyperopt_report *r, void *user)
{
    curve *c = user;
    if (c->n < ITER)
        c->loss[c->n++] = r->valid_loss;
    printf("meta %2zu  valid %.5f  |hypergrad| %.3g\n", r->iteration, r->valid_loss,
           r->hypergrad_norm);
    return 0; /* nonzero stops the run */
}

static int fail(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "tutorial: %s: %s (%s)\n", what, revl_strerror(rc), msg ? msg : "");
    printf("RESULT: FAIL %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    const char *out = "out/tutorial";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--quick") != 0) {
            fprintf(stderr, "usage: tutorial [--quick] [--out DIR]\n");
            return 2;
        }
    }
    static data d;
    make_data(&d);

    /* 1. the model: the gradient as a callback, H v by finite differences */
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = P;
    def.grad = grad; /* def.hvp = NULL: finite differences */
    def.user = &d;   /* your data, handed back to every callback */
    revl_model *m = NULL;
    int rc = revl_model_create(&m, &def);
    if (rc)
        return fail("revl_model_create", rc, NULL);

    /* 2. two parameter groups: the weights and the bias */
    size_t groups[3] = {0, D, P};
    if ((rc = revl_model_set_groups(m, 2, groups)))
        return fail("revl_model_set_groups", rc, revl_model_last_error(m));

    /* 3. train exactly, then reverse */
    revl_schedule *s = NULL;
    if ((rc = revl_schedule_create(&s, T, 2, groups)))
        return fail("revl_schedule_create", rc, NULL);
    revl_schedule_fill(s, 0.3, 0.9);
    revl_trainer *t = NULL;
    if ((rc = revl_trainer_create(&t, m, s, NULL)))
        return fail("revl_trainer_create", rc, NULL);
    double w0[P] = {0}, w[P];
    if ((rc = revl_trainer_train(t, w0, NULL)))
        return fail("revl_trainer_train", rc, revl_trainer_last_error(t));
    revl_trainer_weights(t, w);
    double f, dfdw[P], d_w0[P], d_alpha[T * 2], d_gamma[T * 2];
    objective(w, NULL, &f, dfdw, NULL, &d);
    if ((rc = revl_trainer_hypergrad(t, dfdw, NULL, d_w0, d_alpha, d_gamma, NULL)))
        return fail("revl_trainer_hypergrad", rc, revl_trainer_last_error(t));
    revl_trainer_stats st;
    revl_trainer_stats_init(&st);
    revl_trainer_get_stats(t, &st);
    printf("one run: valid %.5f after %d steps of alpha 0.3, gamma 0.9; reversed exactly to w0\n",
           f, T);
    printf("  df/dalpha of the first step: weights %.4g, bias %.4g; peak memory %zu bytes\n",
           d_alpha[0], d_alpha[1], st.peak_bytes);
    revl_trainer_free(t);
    revl_schedule_free(s);

    /* 4. learn the schedule */
    curve c = {.n = 0};
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o); /* learn alpha, gamma, init scales; Adam, step 0.04 */
    o.objective = objective;        /* a callback model needs the objective as a callback */
    o.objective_user = &d;
    o.iterations = ITER;
    o.report = report;
    o.report_user = &c;
    revl_hyperopt *h = NULL;
    if ((rc = revl_hyperopt_create(&h, m, NULL, T, &o)))
        return fail("revl_hyperopt_create", rc, NULL);
    if ((rc = revl_hyperopt_run(h)))
        return fail("revl_hyperopt_run", rc, revl_hyperopt_last_error(h));

    char path[4096];
    if (make_dirs(out) != 0) {
        fprintf(stderr, "tutorial: cannot create %s\n", out);
        return fail("output directory", REVL_ERR_IO, out);
    }
    snprintf(path, sizeof path, "%s/hyperparams.txt", out);
    if ((rc = revl_hyperopt_save(h, 1, path))) /* 1: the best so far, by validation loss */
        return fail("revl_hyperopt_save", rc, revl_hyperopt_last_error(h));
    snprintf(path, sizeof path, "%s/curve.dat", out);
    FILE *fc = fopen(path, "w");
    if (!fc)
        return fail("curve.dat", REVL_ERR_IO, path);
    fprintf(fc, "# meta-iteration  validation loss\n");
    for (size_t i = 0; i < c.n; i++)
        fprintf(fc, "%zu %.17g\n", i, c.loss[i]);
    fclose(fc);
    snprintf(path, sizeof path, "%s/curve.gp", out);
    fc = fopen(path, "w");
    if (!fc || fputs(plot_script, fc) < 0 || fclose(fc) != 0)
        return fail("curve.gp", REVL_ERR_IO, path);
    int drew = run_gnuplot(out, "curve.gp");
    if (drew == 1)
        printf("gnuplot not found: skipping the plot\n");
    else if (drew != 0)
        printf("warning: gnuplot failed\n");
    revl_hyperopt_free(h);
    revl_model_free(m);

    double best = c.loss[0];
    for (size_t i = 0; i < c.n; i++)
        best = c.loss[i] < best ? c.loss[i] : best;
    printf("wrote %s/: hyperparams.txt curve.dat curve.gp%s\n", out, drew == 0 ? " curve.png" : "");
    /* the noise (sd 0.03) puts the floor near 0.03^2 / 2 = 0.00045 */
    if (c.n != ITER || !(best < 0.1 * c.loss[0])) {
        printf("RESULT: FAIL validation loss %.5f -> best %.5f in %zu meta-iterations\n",
               c.loss[0], best, c.n);
        return 1;
    }
    printf("RESULT: ok tutorial: validation loss %.5f -> %.5f in %d meta-iterations\n", c.loss[0],
           best, ITER);
    return 0;
}
