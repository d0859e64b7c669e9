/* learn_data.c: training data as hyperparameters, and how to plug your own model into revl.
 * The model is written here as callbacks: multinomial logistic regression trained (full batch,
 * T = 20 steps, alpha = 1, gamma = 0.9) on just 10 images, one per class, whose 7,840 pixels
 * (plus one log L2 strength) are the model's meta-parameters. The hyper-optimiser follows the
 * exact gradient of the validation loss (a user objective: 10,000 Fashion-MNIST images) with
 * respect to those pixels, so the 10 images become the training set that teaches most
 * (Maclaurin, Duvenaud & Adams 2015, section 3.3). Plots the learned images (gnuplot).
 *
 *   learn_data [--quick] [--init noise|means] [--iterations N] [--step S] [--out DIR] [--data DIR]
 *
 * --quick: 1,000 validation images, 8 meta-iterations, and a finite-difference check of the
 * hand-written Hessian-vector products (seconds; for CI). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

#define D 784 /* pixels per image */
#define K 10  /* classes = learned images */
#define NW (D * K + K)   /* parameters: W [D][K] row-major, then b [K] */
#define NM (D * K + 1)   /* meta: the K images X [K][D] row-major, then log L2 */
#define T_STEPS 20
#define LOG_INIT_SCALE -6.0 /* w0 = e^-6 z: nearly zero, as logistic regression usually starts */
#define LOG_L2_START -4.0
#define STEP_DEFAULT 1.0

static const char *class_names[K] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* ---------------------------------------------------------------- the model, by hand
 * Image n (n = 0..9) has label n. With z_n = x_n W + b (K logits), p_n = softmax(z_n) and
 * lambda = exp(meta[NM-1]), the training loss is
 *     L(w, X) = (1/K) sum_n -log p_n[n]  +  lambda/2 |W|^2        (biases not penalised).
 * Gradient: with delta_n = (p_n - e_n) / K,
 *     dL/dW = sum_n x_n^T delta_n + lambda W,     dL/db = sum_n delta_n.
 * Hessian-vector product for v = (V, vb), by the R-operator (Pearlmutter):
 *     r_n = R{z_n} = x_n V + vb,   R{delta_n} = (p_n * r_n - p_n (p_n . r_n)) / K,
 *     H v = (sum_n x_n^T R{delta_n} + lambda V,  sum_n R{delta_n}).
 * Mixed term hv_meta = d/dmeta (grad_w L . v). Writing the dot product out,
 *     grad_w L . v = sum_n delta_n . (x_n V + vb) + lambda <W, V>
 *                  = sum_n delta_n . r_n + lambda <W, V>.
 * Only term n depends on image x_n, in two places: r_n is linear in x_n (d r_n / d x_n = V^T),
 * and delta_n depends on x_n through z_n (d z_n / d x_n = W^T, d delta_n / d z_n = (diag p_n -
 * p_n p_n^T) / K, symmetric, so its product with r_n is exactly R{delta_n}). Hence
 *     d/dx_n[i] = sum_j V[i][j] delta_n[j] + sum_j W[i][j] R{delta_n}[j],
 *     d/dlog lambda = lambda <W, V>.
 * --quick checks all three products against central differences of the gradient. */

/* p[K] = softmax(x W + b) for one image x. */
static void softmax_row(const double *x, const double *w, double *p)
{
    const double *b = w + D * K;
    for (int j = 0; j < K; j++)
        p[j] = b[j];
    for (int i = 0; i < D; i++) {
        if (x[i] == 0)
            continue; /* many Fashion-MNIST pixels are exactly 0 */
        const double *wi = w + i * K;
        for (int j = 0; j < K; j++)
            p[j] += x[i] * wi[j];
    }
    double mx = p[0], s = 0;
    for (int j = 1; j < K; j++)
        mx = p[j] > mx ? p[j] : mx;
    for (int j = 0; j < K; j++)
        s += (p[j] = exp(p[j] - mx));
    for (int j = 0; j < K; j++)
        p[j] /= s;
}

/* delta[K][K] = (p_n - e_n) / K for the K learned images; returns the mean cross-entropy. */
static double deltas(const double *w, const double *X, double p[K][K], double delta[K][K])
{
    double ce = 0;
    for (int n = 0; n < K; n++) {
        softmax_row(X + n * D, w, p[n]);
        ce -= log(p[n][n]) / K;
        for (int j = 0; j < K; j++)
            delta[n][j] = (p[n][j] - (j == n)) / K;
    }
    return ce;
}

static int model_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                      void *user)
{
    double p[K][K], delta[K][K], lambda = exp(meta[NM - 1]), sq = 0;
    double ce = deltas(w, meta, p, delta);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < K; j++) {
            double s = lambda * w[i * K + j];
            for (int n = 0; n < K; n++)
                s += meta[n * D + i] * delta[n][j];
            g[i * K + j] = s;
            sq += w[i * K + j] * w[i * K + j];
        }
    for (int j = 0; j < K; j++) {
        g[D * K + j] = 0;
        for (int n = 0; n < K; n++)
            g[D * K + j] += delta[n][j];
    }
    if (loss)
        *loss = ce + 0.5 * lambda * sq;
    return 0;
}

static int model_hvp(size_t step, const double *w, const double *meta, const double *v,
                     double *g, double *hv, double *hv_meta, void *user)
{
    double p[K][K], delta[K][K], r[K][K], rdelta[K][K], lambda = exp(meta[NM - 1]), wv = 0;
    deltas(w, meta, p, delta);
    for (int n = 0; n < K; n++) { /* r_n = x_n V + vb, then R{delta_n} */
        const double *x = meta + n * D;
        for (int j = 0; j < K; j++)
            r[n][j] = v[D * K + j];
        for (int i = 0; i < D; i++)
            for (int j = 0; j < K; j++)
                r[n][j] += x[i] * v[i * K + j];
        double pr = 0;
        for (int j = 0; j < K; j++)
            pr += p[n][j] * r[n][j];
        for (int j = 0; j < K; j++)
            rdelta[n][j] = p[n][j] * (r[n][j] - pr) / K;
    }
    for (int i = 0; i < D; i++)
        for (int j = 0; j < K; j++) {
            double s = lambda * v[i * K + j];
            for (int n = 0; n < K; n++)
                s += meta[n * D + i] * rdelta[n][j];
            hv[i * K + j] = s;
            wv += w[i * K + j] * v[i * K + j];
        }
    for (int j = 0; j < K; j++) {
        hv[D * K + j] = 0;
        for (int n = 0; n < K; n++)
            hv[D * K + j] += rdelta[n][j];
    }
    if (hv_meta) {
        for (int n = 0; n < K; n++)
            for (int i = 0; i < D; i++) {
                double s = 0;
                for (int j = 0; j < K; j++)
                    s += v[i * K + j] * delta[n][j] + w[i * K + j] * rdelta[n][j];
                hv_meta[n * D + i] = s;
            }
        hv_meta[NM - 1] = lambda * wv;
    }
    return 0;
}

/* ---------------------------------------------------------------- the validation objective */
typedef struct validation {
    const double *x;
    const int32_t *y;
    size_t n;
} validation;

/* Mean cross-entropy of the logistic regression w over the validation images, its gradient
 * with respect to w, and (not asked by revl, for reporting) the accuracy. */
static double evaluate(const validation *v, const double *w, double *dfdw, double *accuracy)
{
    double f = 0, p[K];
    size_t correct = 0;
    if (dfdw)
        memset(dfdw, 0, NW * sizeof *dfdw);
    for (size_t m = 0; m < v->n; m++) {
        const double *x = v->x + m * D;
        int y = v->y[m], best = 0;
        softmax_row(x, w, p);
        f -= log(p[y]);
        for (int j = 1; j < K; j++)
            best = p[j] > p[best] ? j : best;
        correct += best == y;
        if (!dfdw)
            continue;
        p[y] -= 1;
        for (int i = 0; i < D; i++)
            if (x[i] != 0)
                for (int j = 0; j < K; j++)
                    dfdw[i * K + j] += x[i] * p[j];
        for (int j = 0; j < K; j++)
            dfdw[D * K + j] += p[j];
    }
    if (dfdw)
        for (size_t k = 0; k < NW; k++)
            dfdw[k] /= (double)v->n;
    if (accuracy)
        *accuracy = (double)correct / (double)v->n;
    return f / (double)v->n;
}

static int objective(const double *w, const double *meta, double *f, double *dfdw,
                     double *dfdmeta, void *user)
{
    *f = evaluate(user, w, dfdw, NULL);
    if (dfdmeta) /* f does not depend on the images directly, only through w */
        memset(dfdmeta, 0, NM * sizeof *dfdmeta);
    return 0;
}

/* ---------------------------------------------------------------- checks, plots, main */

/* Central differences of the gradient against the hand-written H v and d/dmeta (grad . v),
 * at random weights (w0 is too close to 0 to exercise the terms in W) along a random v, for a
 * sample of meta coordinates. Returns the worst error relative to the largest entry. */
static double check_hvp(revl_model *m, const double *meta)
{
    double *v = malloc(NW * sizeof *v), *hv = malloc(NW * sizeof *hv);
    double *hm = malloc(NM * sizeof *hm), *gp = malloc(NW * sizeof *gp);
    double *gm = malloc(NW * sizeof *gm), *wp = malloc(NW * sizeof *wp);
    double *mp = malloc(NM * sizeof *mp), *w = malloc(NW * sizeof *w);
    double worst = 0, h = 1e-5, scale = 0;
    unsigned s = 7;
    for (size_t k = 0; k < 2 * NW; k++) {
        s = s * 1103515245u + 12345u;
        double u = (s >> 8) / 16777216.0 - 0.5;
        if (k < NW)
            v[k] = u;
        else
            w[k - NW] = 0.2 * u;
    }
    revl_model_hvp(m, 0, w, meta, v, hv, hm);
    /* H v against (grad(w + h v) - grad(w - h v)) / 2h, relative to the largest entry */
    for (size_t k = 0; k < NW; k++)
        wp[k] = w[k] + h * v[k];
    revl_model_grad(m, 0, wp, meta, gp, NULL);
    for (size_t k = 0; k < NW; k++)
        wp[k] = w[k] - h * v[k];
    revl_model_grad(m, 0, wp, meta, gm, NULL);
    for (size_t k = 0; k < NW; k++)
        scale = fmax(scale, fabs(hv[k]));
    for (size_t k = 0; k < NW; k++)
        worst = fmax(worst, fabs((gp[k] - gm[k]) / (2 * h) - hv[k]) / scale);
    /* d/dmeta_c (grad . v) for a few pixels of every image and for log lambda */
    memcpy(mp, meta, NM * sizeof *mp);
    double mscale = 0;
    for (size_t c = 0; c < NM; c++)
        mscale = fmax(mscale, fabs(hm[c]));
    for (size_t c = 0; c < NM; c += (c + 1 < NM ? 97 : 1)) {
        double dot[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            mp[c] = meta[c] + (sgn ? -h : h);
            revl_model_grad(m, 0, w, mp, gp, NULL);
            dot[sgn] = 0;
            for (size_t k = 0; k < NW; k++)
                dot[sgn] += gp[k] * v[k];
        }
        mp[c] = meta[c];
        worst = fmax(worst, fabs((dot[0] - dot[1]) / (2 * h) - hm[c]) / mscale);
    }
    free(v), free(hv), free(hm), free(gp), free(gm), free(wp), free(mp), free(w);
    return worst;
}

/* The 10 images as 28 x 28 matrices one under the other (280 rows) and a 2 x 5 grid of
 * grey-scale heatmaps; the script stays next to the data (learn_data.gp) for redrawing. */
static void plot(const char *dir, const char *stem, const char *title, const double *X)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.dat", dir, stem);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return;
    for (int n = 0; n < K; n++) {
        for (int r = 0; r < 28; r++)
            for (int c = 0; c < 28; c++)
                fprintf(fp, "%.5g%c", X[n * D + r * 28 + c], c == 27 ? '\n' : ' ');
    }
    fclose(fp);
    snprintf(path, sizeof path, "%s/%s.gp", dir, stem);
    if (!(fp = fopen(path, "w")))
        return;
    fprintf(fp, "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
                "set terminal @term size 900,440\nset output '%s.png'\n"
                "set multiplot layout 2,5 title '%s'\nset palette gray\nunset colorbox\n"
                "unset xtics\nunset ytics\nset size ratio -1\nset yrange [27.5:-0.5]\n"
                "set xrange [-0.5:27.5]\nset lmargin 0.5\nset rmargin 0.5\n", stem, title);
    for (int n = 0; n < K; n++)
        fprintf(fp, "set title '%s'\nplot '%s.dat' matrix every :::%d::%d using 1:($2 - %d):3 "
                    "with image notitle\n", class_names[n], stem, 28 * n, 28 * n + 27, 28 * n);
    fprintf(fp, "unset multiplot\n");
    fclose(fp);
    snprintf(path, sizeof path, "%s.gp", stem);
    int plotted = run_gnuplot(dir, path);
    if (plotted == 1)
        printf("learn_data: gnuplot not found, skipping the plot (data and script in %s)\n", dir);
    else if (plotted != 0)
        printf("learn_data: gnuplot failed for %s (data and script in %s)\n", stem, dir);
    else
        printf("learn_data: wrote %s/%s.png\n", dir, stem);
}

static int report(const revl_hyperopt_report *r, void *user)
{
    printf("  meta-iteration %3zu  training loss %.4f  validation loss %.4f  |hypergradient| "
           "%.3g  %.2f s%s\n", r->iteration + 1, r->train_loss, r->valid_loss, r->hypergrad_norm,
           r->seconds, r->chaos ? "  (chaos guard: step halved)" : "");
    fflush(stdout);
    return 0;
}

/* Train the logistic regression on the images in meta from w0 and evaluate it. */
static int train_eval(revl_trainer *tr, const double *w0, const double *meta,
                      const validation *valid, const validation *test, double out[4])
{
    double *w = malloc(NW * sizeof *w);
    int rc = w ? revl_trainer_train(tr, w0, meta) : REVL_ERR_NOMEM;
    if (rc == REVL_OK) {
        revl_trainer_weights(tr, w);
        out[0] = evaluate(valid, w, NULL, &out[1]);
        out[2] = evaluate(test, w, NULL, &out[3]);
    }
    free(w);
    return rc;
}

static int load(revl_dataset **d, const char *dir, const char *set, size_t n)
{
    if (revl_dataset_create(d, NULL) != REVL_OK || load_fashion(*d, "learn_data", dir, set, n))
        return 1;
    if (revl_dataset_dim(*d) != D) {
        fprintf(stderr, "learn_data: %s has %zu pixels per image, not %d\n", set,
                revl_dataset_dim(*d), D);
        return 1;
    }
    return 0;
}

static int fail(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "learn_data: %s failed: %s (%s)\n", what, revl_strerror(rc), msg);
    printf("RESULT: FAILED learn_data: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    int quick = 0, from_means = 0;
    size_t iterations = 0;
    double step = 0;
    const char *out = "out/learn_data", *data = EXAMPLE_FASHION_DIR;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--init") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "means") || !strcmp(argv[i + 1], "noise")))
            from_means = !strcmp(argv[++i], "means");
        else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            iterations = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--step") && i + 1 < argc)
            step = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else {
            fprintf(stderr, "usage: learn_data [--quick] [--init noise|means] [--iterations N] "
                            "[--step S] [--out DIR] [--data DIR]\n");
            return 2;
        }
    }
    if (!iterations)
        iterations = quick ? 8 : 40;
    if (!(step > 0))
        step = STEP_DEFAULT;
    size_t n_valid = quick ? 1000 : 10000;
    double t_start = now();

    /* Validation: the first n_valid images of the test file. A "test" set the meta-optimiser
     * never sees, the first n_valid of the training file, shows whether the pixels overfit the
     * validation set; the next n_valid give the class means (baseline, and --init means). */
    revl_dataset *vd = NULL, *td = NULL;
    if (load(&vd, data, "t10k", n_valid) || load(&td, data, "train", 2 * n_valid))
        return 1;
    validation valid = {revl_dataset_x(vd), revl_dataset_labels(vd), revl_dataset_n(vd)};
    validation test = {revl_dataset_x(td), revl_dataset_labels(td), n_valid};
    validation rest = {test.x + n_valid * D, test.y + n_valid, revl_dataset_n(td) - n_valid};

    /* meta: 10 starting images and log L2 = -4 */
    double *meta = calloc(NM, sizeof *meta), *means = calloc(NM, sizeof *means);
    double count[K] = {0};
    for (size_t m = 0; m < rest.n; m++) {
        count[rest.y[m]]++;
        for (int i = 0; i < D; i++)
            means[rest.y[m] * D + i] += rest.x[m * D + i];
    }
    for (int n = 0; n < K; n++)
        for (int i = 0; i < D; i++)
            means[n * D + i] /= count[n] > 0 ? count[n] : 1;
    means[NM - 1] = LOG_L2_START;
    if (from_means) {
        memcpy(meta, means, NM * sizeof *meta);
    } else {
        unsigned s = 1;
        for (int k = 0; k < D * K; k++) {
            s = s * 1103515245u + 12345u;
            meta[k] = 0.1 * ((s >> 8) / 16777216.0); /* faint noise in [0, 0.1) */
        }
    }
    meta[NM - 1] = LOG_L2_START;

    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = NW;
    def.n_meta = NM;
    def.grad = model_grad;
    def.hvp = model_hvp;
    revl_model *model = NULL;
    int rc = revl_model_create(&model, &def);
    if (rc)
        return fail("revl_model_create", rc, "");

    double log_scale = LOG_INIT_SCALE, *w0 = malloc(NW * sizeof *w0);
    revl_model_init_weights(model, &log_scale, 0, w0); /* the hyper-optimiser's w0 (seed 0) */
    if (quick) {
        double worst = check_hvp(model, meta);
        printf("learn_data: hand-written H v and d/dmeta (grad . v) vs central differences: "
               "worst relative error %.2e\n", worst);
        if (!(worst < 1e-6)) {
            printf("RESULT: FAILED learn_data: Hessian-vector products off by %.2e\n", worst);
            return 1;
        }
    }

    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    ho.learn = REVL_LEARN_META; /* the pixels and log L2 only; alpha, gamma, init stay */
    ho.method = REVL_META_SGD;
    ho.momentum = 0;
    ho.step_size = step;
    ho.iterations = iterations;
    ho.objective = objective;
    ho.objective_user = &valid;
    ho.report = report;
    revl_hyperopt *h = NULL;
    rc = revl_hyperopt_create(&h, model, NULL, T_STEPS, &ho);
    if (rc)
        return fail("revl_hyperopt_create", rc, "");
    double alpha[T_STEPS], gamma[T_STEPS];
    for (int t = 0; t < T_STEPS; t++)
        alpha[t] = 1.0, gamma[t] = 0.9;
    rc = revl_hyperopt_set(h, alpha, gamma, &log_scale, meta);
    if (rc)
        return fail("revl_hyperopt_set", rc, revl_hyperopt_last_error(h));

    printf("learn_data: 10 images (%s start), logistic regression T = %d, alpha 1, gamma 0.9; "
           "%zu validation images; gradient descent, step %g, %zu meta-iterations\n",
           from_means ? "class-mean" : "noise", T_STEPS, valid.n, step, iterations);
    rc = revl_hyperopt_run(h);
    if (rc)
        return fail("revl_hyperopt_run", rc, revl_hyperopt_last_error(h));
    double *learned = malloc(NM * sizeof *learned);
    revl_hyperopt_get(h, 1, NULL, NULL, NULL, learned);

    /* Before and after, and the class means as a baseline training set. */
    size_t off[2] = {0, NW};
    revl_schedule *sched = NULL;
    revl_trainer *tr = NULL;
    double r0[4], r1[4], rm[4];
    rc = revl_schedule_create(&sched, T_STEPS, 1, off);
    if (!rc)
        rc = revl_schedule_fill(sched, 1.0, 0.9);
    if (!rc)
        rc = revl_trainer_create(&tr, model, sched, NULL);
    if (!rc)
        rc = train_eval(tr, w0, meta, &valid, &test, r0);
    if (!rc)
        rc = train_eval(tr, w0, learned, &valid, &test, r1);
    if (!rc)
        rc = train_eval(tr, w0, means, &valid, &test, rm);
    if (rc)
        return fail("training on the images", rc, tr ? revl_trainer_last_error(tr) : "");
    printf("\n%-30s %10s %9s %10s %9s\n", "trained on 10 images", "valid loss", "valid acc",
           "test loss", "test acc");
    printf("%-30s %10.4f %8.1f%% %10.4f %8.1f%%\n", from_means ? "start (class means)"
           : "start (noise)", r0[0], 100 * r0[1], r0[2], 100 * r0[3]);
    printf("%-30s %10.4f %8.1f%% %10.4f %8.1f%%\n", "learned (best meta-iteration)", r1[0],
           100 * r1[1], r1[2], 100 * r1[3]);
    printf("%-30s %10.4f %8.1f%% %10.4f %8.1f%%\n", "class means (baseline)", rm[0],
           100 * rm[1], rm[2], 100 * rm[3]);
    printf("learned L2 strength exp(%.3f) = %.4g\n", learned[NM - 1], exp(learned[NM - 1]));

    if (make_dirs(out) == 0) {
        plot(out, "learn_data", "10 training images learned by hypergradient descent", learned);
        plot(out, "learn_data_start", from_means ? "starting images (class means)"
                                                 : "starting images (noise)", meta);
    } else {
        printf("learn_data: cannot create %s, no plots\n", out);
    }
    printf("(%.1f s)\n", now() - t_start);

    int ok = r1[0] < r0[0];
    printf("RESULT: %s learn_data validation loss %.4f -> %.4f (accuracy %.1f%% -> %.1f%%), test "
           "loss %.4f -> %.4f\n", ok ? "ok" : "FAILED", r0[0], r1[0], 100 * r0[1], 100 * r1[1],
           r0[2], r1[2]);
    revl_trainer_free(tr);
    revl_schedule_free(sched);
    revl_hyperopt_free(h);
    revl_model_free(model);
    revl_dataset_free(vd);
    revl_dataset_free(td);
    free(meta), free(means), free(learned), free(w0);
    return ok ? 0 : 1;
}
