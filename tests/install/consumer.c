/* consumer.c: a program outside the tree, built only with `pkg-config --cflags --libs revl`
 * against an installed revl (tests/check_install.sh). It defines a quadratic training loss as
 * callbacks, trains, reverses exactly, and checks the hypergradients against central finite
 * differences of the whole training run. Exits nonzero on any failure.
 *   L(w, meta, t) = 1/2 sum_i a_i (1 + (t mod 3)/10) (w_i - c_i)^2 + meta/2 |w|^2
 *   f(w_T)        = 1/2 |w_T - target|^2
 * No libm: only what pkg-config gives is linked. */
#include <revl.h>

#include <stdio.h>
#include <string.h>

#define P 4
#define T 40
#define G 2

static const double a[P] = {1.0, 0.5, 2.0, 1.5};
static const double c[P] = {0.3, -0.7, 0.1, 0.9};
static const double target[P] = {0.2, -0.5, 0.4, 0.6};

static double scale(size_t t) { return 1.0 + 0.1 * (double)(t % 3); }

static int grad_fn(size_t t, const double *w, const double *meta, double *g, double *loss,
                   void *user)
{
    (void)user;
    double l = 0;
    for (int i = 0; i < P; i++) {
        double d = w[i] - c[i];
        g[i] = a[i] * scale(t) * d + meta[0] * w[i];
        l += 0.5 * a[i] * scale(t) * d * d + 0.5 * meta[0] * w[i] * w[i];
    }
    if (loss)
        *loss = l;
    return 0;
}

static int hvp_fn(size_t t, const double *w, const double *meta, const double *v, double *g,
                  double *hv_w, double *hv_meta, void *user)
{
    double m = 0;
    for (int i = 0; i < P; i++) {
        hv_w[i] = (a[i] * scale(t) + meta[0]) * v[i];
        m += w[i] * v[i];
    }
    if (hv_meta)
        hv_meta[0] = m;
    return g ? grad_fn(t, w, meta, g, NULL, user) : 0;
}

static double fabs_(double x) { return x < 0 ? -x : x; }

static int fail(const char *what, int rc)
{
    fprintf(stderr, "consumer: %s failed: %s\n", what, revl_strerror(rc));
    return 1;
}

/* f(w_T) for the given hyperparameters (a fresh schedule and trainer each time). */
static int run(revl_model *m, const double *alpha, const double *gamma, const double *w0,
               const double *meta, double *f, revl_trainer **keep, revl_schedule **keep_s)
{
    static const size_t offsets[G + 1] = {0, 2, 4};
    revl_schedule *s = NULL;
    revl_trainer *tr = NULL;
    int rc = revl_schedule_create(&s, T, G, offsets);
    if (rc == REVL_OK)
        rc = revl_schedule_set_all(s, alpha, gamma);
    if (rc == REVL_OK)
        rc = revl_trainer_create(&tr, m, s, NULL);
    if (rc == REVL_OK)
        rc = revl_trainer_train(tr, w0, meta);
    double w[P];
    if (rc == REVL_OK)
        rc = revl_trainer_weights(tr, w);
    if (rc == REVL_OK) {
        *f = 0;
        for (int i = 0; i < P; i++)
            *f += 0.5 * (w[i] - target[i]) * (w[i] - target[i]);
    }
    if (rc == REVL_OK && keep) {
        *keep = tr;
        *keep_s = s;
        return REVL_OK;
    }
    revl_trainer_free(tr);
    revl_schedule_free(s);
    return rc;
}

/* Compare one hypergradient vector with central differences of f along each coordinate of x. */
static int check(const char *name, revl_model *m, double *x, size_t n, const double *hg, double h,
                 double tol, double *alpha, double *gamma, double *w0, double *meta)
{
    double big = 0, worst = 0;
    for (size_t k = 0; k < n; k++)
        big = fabs_(hg[k]) > big ? fabs_(hg[k]) : big;
    for (size_t k = 0; k < n; k++) {
        double x0 = x[k], fp, fm;
        x[k] = x0 + h;
        int rc = run(m, alpha, gamma, w0, meta, &fp, NULL, NULL);
        x[k] = x0 - h;
        if (rc == REVL_OK)
            rc = run(m, alpha, gamma, w0, meta, &fm, NULL, NULL);
        x[k] = x0;
        if (rc != REVL_OK)
            return fail("finite-difference run", rc);
        double fd = (fp - fm) / (2 * h), err = fabs_(fd - hg[k]) / big;
        worst = err > worst ? err : worst;
        if (err > tol) {
            fprintf(stderr, "consumer: d_%s[%zu] = %.12g, finite differences %.12g (rel %.2g > %.0g)\n",
                    name, k, hg[k], fd, err, tol);
            return 1;
        }
    }
    printf("consumer: d_%-6s %3zu entries match central differences, worst relative error %.2g\n",
           name, n, worst);
    return 0;
}

/* Load a gzip IDX pair (argv[1], argv[2]): decompression through the library's zlib works from
 * an install, and for a static link the pkg-config file has brought zlib along. */
static int load_data(const char *images, const char *labels)
{
    revl_dataset *d = NULL;
    int rc = revl_dataset_create(&d, NULL);
    if (rc == REVL_OK)
        rc = revl_dataset_load_idx(d, images, labels, 100);
    if (rc != REVL_OK) {
        fprintf(stderr, "consumer: loading %s: %s\n", images, d ? revl_dataset_last_error(d) : "");
        revl_dataset_free(d);
        return 1;
    }
    printf("consumer: loaded %zu examples of %zu features from %s\n", revl_dataset_n(d),
           revl_dataset_dim(d), images);
    rc = revl_dataset_n(d) == 100 && revl_dataset_dim(d) > 0 ? 0 : 1;
    revl_dataset_free(d);
    return rc;
}

int main(int argc, char **argv)
{
    printf("consumer: revl %s (built against %d.%d.%d)\n", revl_version_string(),
           REVL_VERSION_MAJOR, REVL_VERSION_MINOR, REVL_VERSION_PATCH);
    if (revl_version_number() / 10000 != REVL_VERSION_MAJOR)
        return fail("major version check", REVL_ERR_STATE);
    if (argc == 3 && load_data(argv[1], argv[2]) != 0)
        return 1;

    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = P;
    def.n_meta = 1;
    def.grad = grad_fn;
    def.hvp = hvp_fn;
    revl_model *m = NULL;
    int rc = revl_model_create(&m, &def);
    if (rc != REVL_OK)
        return fail("revl_model_create", rc);

    /* gamma a multiple of 2^-16, so the applied momentum is exactly this one */
    double alpha[T * G], gamma[T * G], w0[P] = {0.5, -0.25, 1.125, 0.0}, meta[1] = {0.05};
    for (size_t t = 0; t < T; t++)
        for (size_t g = 0; g < G; g++) {
            alpha[t * G + g] = 0.05 + 0.002 * (double)((t * 7 + g * 3) % 11);
            gamma[t * G + g] = (g ? 58982.0 : 52429.0) / 65536.0; /* about 0.9 and 0.8 */
        }

    revl_trainer *tr = NULL;
    revl_schedule *s = NULL;
    double f;
    rc = run(m, alpha, gamma, w0, meta, &f, &tr, &s);
    if (rc != REVL_OK)
        return fail("training", rc);
    double w[P], dfdw[P];
    if ((rc = revl_trainer_weights(tr, w)) != REVL_OK)
        return fail("revl_trainer_weights", rc);
    for (int i = 0; i < P; i++)
        dfdw[i] = w[i] - target[i];

    double d_w0[P], d_alpha[T * G], d_gamma[T * G], d_meta[1];
    rc = revl_trainer_hypergrad(tr, dfdw, NULL, d_w0, d_alpha, d_gamma, d_meta);
    if (rc != REVL_OK) {
        fprintf(stderr, "consumer: %s\n", revl_trainer_last_error(tr));
        return fail("revl_trainer_hypergrad", rc);
    }
    double back[P];
    if ((rc = revl_trainer_weights(tr, back)) != REVL_OK)
        return fail("revl_trainer_weights after reversal", rc);
    if (memcmp(back, w0, sizeof w0) != 0) {
        fprintf(stderr, "consumer: the reversal did not return to w0 bit for bit\n");
        return 1;
    }
    printf("consumer: trained %d steps (f = %.6g), reversed to w0 bit for bit\n", T, f);
    revl_trainer_free(tr);
    revl_schedule_free(s);

    /* 1e-6 relative to the largest entry of each hypergradient; steps h keep the truncation
     * error (h^2) and the fixed-point rounding (2^-52 / h) both far below that. */
    int bad = 0;
    bad |= check("w0", m, w0, P, d_w0, 1e-5, 1e-6, alpha, gamma, w0, meta);
    bad |= check("alpha", m, alpha, T * G, d_alpha, 1e-5, 1e-6, alpha, gamma, w0, meta);
    bad |= check("meta", m, meta, 1, d_meta, 1e-5, 1e-6, alpha, gamma, w0, meta);
    /* gamma is applied as n/2^16, so its differences take steps of whole 2^-16 units
     * (h = 2^-10); the truncation error h^2 f''' stays far below 1e-6 on this problem. */
    bad |= check("gamma", m, gamma, T * G, d_gamma, 1.0 / 1024, 1e-6, alpha, gamma, w0, meta);
    revl_model_free(m);
    if (bad)
        return 1;
    printf("consumer: OK\n");
    return 0;
}
