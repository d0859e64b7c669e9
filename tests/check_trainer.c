/* check_trainer.c: the public trainer API end to end: exact reversal bit for bit over random
 * schedules and adversarial values, hypergradients (d_w0, d_alpha, d_gamma, d_meta) against
 * central finite differences of the whole training run on a quadratic-like model and on
 * logistic regression (both user callbacks written here), truncation against its definition,
 * thread-count invariance, and every error path. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "revl.h"
#include "testutil.h"

/* ------------------------------------------------------------------ models as callbacks */

/* L = sum_i a_i/2 (w_i - c_i - s_t)^2 + b sin(w_i) + exp(meta0)/2 w_i^2: smooth, not quadratic,
 * step-dependent (s_t), with one meta-parameter (a log L2 penalty). */
typedef struct wavy {
    size_t p;
    double *a, *c;
    double b;
    int fail_grad_at, fail_hvp_at; /* step at which a callback fails; -1 never */
    int nan_at;                    /* step at which the gradient is NaN; -1 never */
    double scale_grad_at_step;     /* multiply the gradient at step nan_at... see huge_at */
    int huge_at;
    int nondeterministic;          /* count calls and perturb the gradient on the reverse pass */
    long calls;
} wavy;

static double shift(size_t step) { return 0.05 * (double)(step % 3); }

static int wavy_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                     void *user)
{
    wavy *q = user;
    q->calls++;
    if ((int)step == q->fail_grad_at)
        return 7;
    double lam = meta ? exp(meta[0]) : 0.0, l = 0;
    for (size_t i = 0; i < q->p; i++) {
        double d = w[i] - q->c[i] - shift(step);
        g[i] = q->a[i] * d + q->b * cos(w[i]) + lam * w[i];
        l += 0.5 * q->a[i] * d * d + q->b * sin(w[i]) + 0.5 * lam * w[i] * w[i];
    }
    if ((int)step == q->nan_at)
        g[q->p / 2] = NAN;
    if ((int)step == q->huge_at)
        g[q->p - 1] = 1e300;
    if (q->nondeterministic && q->calls > 1000000)
        g[0] += 1e-9;
    if (loss)
        *loss = l;
    return 0;
}

static int wavy_hvp(size_t step, const double *w, const double *meta, const double *v,
                    double *g, double *hv, double *hm, void *user)
{
    wavy *q = user;
    if ((int)step == q->fail_hvp_at)
        return 9;
    double lam = meta ? exp(meta[0]) : 0.0, wv = 0;
    for (size_t i = 0; i < q->p; i++) {
        hv[i] = (q->a[i] - q->b * sin(w[i]) + lam) * v[i];
        wv += w[i] * v[i];
    }
    if (hm)
        hm[0] = lam * wv;
    return 0;
}

static wavy *wavy_new(size_t p, uint64_t seed)
{
    wavy *q = calloc(1, sizeof *q);
    q->p = p;
    q->a = malloc(p * sizeof *q->a);
    q->c = malloc(p * sizeof *q->c);
    q->b = 0.3;
    q->fail_grad_at = q->fail_hvp_at = q->nan_at = q->huge_at = -1;
    for (size_t i = 0; i < p; i++) {
        q->a[i] = 0.5 + 1.5 * (double)((i * 7 + seed) % 11) / 10.0;
        q->c[i] = (double)((i * 3 + seed) % 5) - 2.0;
    }
    return q;
}

static void wavy_free(void *u)
{
    wavy *q = u;
    free(q->a);
    free(q->c);
    free(q);
}

static revl_model *wavy_model(wavy *q, size_t n_meta, int with_hvp)
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = q->p;
    d.n_meta = n_meta;
    d.grad = wavy_grad;
    d.hvp = with_hvp ? wavy_hvp : NULL;
    d.user = q;
    d.user_free = wavy_free;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    return m;
}

/* Binary logistic regression on a fixed synthetic set, minibatch of step t = examples
 * [t*B mod N, ...), mean loss + exp(meta0)/2 |w|^2. Exact HVP. */
typedef struct logreg {
    size_t n, dim, batch;
    double *x, *y;
} logreg;

static int logreg_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                       void *user)
{
    logreg *r = user;
    double lam = exp(meta[0]), l = 0;
    memset(g, 0, r->dim * sizeof *g);
    for (size_t k = 0; k < r->batch; k++) {
        size_t e = (step * r->batch + k) % r->n;
        const double *xe = r->x + e * r->dim;
        double z = 0;
        for (size_t j = 0; j < r->dim; j++)
            z += w[j] * xe[j];
        double p = 1.0 / (1.0 + exp(-z));
        l += -(r->y[e] * log(p) + (1 - r->y[e]) * log(1 - p));
        for (size_t j = 0; j < r->dim; j++)
            g[j] += (p - r->y[e]) * xe[j] / (double)r->batch;
    }
    for (size_t j = 0; j < r->dim; j++) {
        g[j] += lam * w[j];
        l += 0.5 * lam * w[j] * w[j] * (double)r->batch;
    }
    if (loss)
        *loss = l / (double)r->batch;
    return 0;
}

static int logreg_hvp(size_t step, const double *w, const double *meta, const double *v,
                      double *g, double *hv, double *hm, void *user)
{
    logreg *r = user;
    double lam = exp(meta[0]), wv = 0;
    memset(hv, 0, r->dim * sizeof *hv);
    for (size_t k = 0; k < r->batch; k++) {
        size_t e = (step * r->batch + k) % r->n;
        const double *xe = r->x + e * r->dim;
        double z = 0, xv = 0;
        for (size_t j = 0; j < r->dim; j++) {
            z += w[j] * xe[j];
            xv += v[j] * xe[j];
        }
        double p = 1.0 / (1.0 + exp(-z));
        for (size_t j = 0; j < r->dim; j++)
            hv[j] += p * (1 - p) * xv * xe[j] / (double)r->batch;
    }
    for (size_t j = 0; j < r->dim; j++) {
        hv[j] += lam * v[j];
        wv += w[j] * v[j];
    }
    hm[0] = lam * wv;
    return 0;
}

static void logreg_free(void *u)
{
    logreg *r = u;
    free(r->x);
    free(r->y);
    free(r);
}

static revl_model *logreg_model(void)
{
    logreg *r = calloc(1, sizeof *r);
    r->n = 60;
    r->dim = 5;
    r->batch = 12;
    r->x = malloc(r->n * r->dim * sizeof *r->x);
    r->y = malloc(r->n * sizeof *r->y);
    uint64_t s = 99;
    for (size_t e = 0; e < r->n; e++) {
        double z = 0;
        for (size_t j = 0; j < r->dim; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(s >> 11) * 0x1p-53 * 2 - 1;
            r->x[e * r->dim + j] = j == 0 ? 1.0 : u;
            z += (j == 0 ? 0.3 : (double)j * 0.5 - 1) * r->x[e * r->dim + j];
        }
        r->y[e] = z + 0.3 * sin(7.0 * (double)e) > 0 ? 1.0 : 0.0;
    }
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = r->dim;
    d.n_meta = 1;
    d.grad = logreg_grad;
    d.hvp = logreg_hvp;
    d.user = r;
    d.user_free = logreg_free;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    return m;
}

/* ------------------------------------------------------------------ helpers */

static uint64_t rng = 2024;
static double uniform(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) * 0x1p-53;
}

static revl_schedule *two_group_schedule(size_t p, size_t steps)
{
    size_t off[3] = {0, p / 2, p};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, steps, 2, off), REVL_OK);
    return s;
}

/* The validation objective used throughout: f(w) = sum_i (w_i^2/2 + w_i * k_i). */
static double objective(const double *w, size_t p, double *grad)
{
    double f = 0;
    for (size_t i = 0; i < p; i++) {
        double k = 0.1 * (double)(i % 4) - 0.15;
        f += 0.5 * w[i] * w[i] + k * w[i];
        if (grad)
            grad[i] = w[i] + k;
    }
    return f;
}

static double train_f(revl_trainer *t, const double *w0, const double *meta, size_t p)
{
    double *w = malloc(p * sizeof *w);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(t, w), REVL_OK);
    double f = objective(w, p, NULL);
    free(w);
    return f;
}

/* w0 as the trainer holds it: rounded to the fixed-point grid of 2^-52 */
static void assert_on_start(const double *w, const double *w0, size_t p)
{
    for (size_t i = 0; i < p; i++) {
        double r = ldexp(nearbyint(ldexp(w0[i], 52)), -52);
        ck_assert_msg(memcmp(&w[i], &r, sizeof r) == 0, "w[%zu] = %a, w0 = %a", i, w[i], w0[i]);
    }
}

typedef struct hg {
    double *w0, *alpha, *gamma, *meta;
} hg;

static hg run_hypergrad(revl_trainer *t, const double *w0, const double *meta, size_t p,
                        size_t ng_steps, size_t nm, int truncated)
{
    hg h = {malloc(p * 8), malloc(ng_steps * 8), malloc(ng_steps * 8), malloc((nm + 1) * 8)};
    double *w = malloc(p * 8), *g = malloc(p * 8);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    revl_trainer_weights(t, w);
    objective(w, p, g);
    ck_assert_msg(revl_trainer_hypergrad(t, g, NULL, h.w0, h.alpha, h.gamma, h.meta) == REVL_OK,
                  "%s", revl_trainer_last_error(t));
    /* afterwards the trainer stands on w0 again, bit for bit */
    revl_trainer_weights(t, w);
    if (!truncated)
        assert_on_start(w, w0, p);
    free(w);
    free(g);
    return h;
}

static void hg_free(hg *h)
{
    free(h->w0);
    free(h->alpha);
    free(h->gamma);
    free(h->meta);
}

/* Central differences through whole training runs have two error sources: truncation
 * O(h^2 f''') and the fixed-point rounding of w, v (2^-52 per step, amplified by at most T).
 * With h ~ 1e-4..1e-5 both stay below 1e-7 relative on these smooth problems; 1e-6 relative
 * (plus 1e-9 absolute for near-zero components) leaves room while catching any wrong term. */
#define FD_REL 1e-6
#define FD_ABS 1e-9
static void assert_close(double fd, double rev, const char *what, size_t idx)
{
    ck_assert_msg(fabs(fd - rev) <= FD_REL * fmax(fabs(fd), fabs(rev)) + FD_ABS,
                  "%s[%zu]: finite difference %.12g, reverse %.12g", what, idx, fd, rev);
}

/* Check every output of the hypergradient against finite differences of the training run. */
static void check_against_fd(revl_model *m, revl_schedule *s, const double *w0, double *meta,
                             size_t truncate)
{
    size_t p = revl_model_n_params(m), nm = revl_model_n_meta(m);
    size_t steps = revl_schedule_n_steps(s), ng = revl_schedule_n_groups(s);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.truncate = truncate;
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
    hg h = run_hypergrad(t, w0, meta, p, steps * ng, nm, truncate != 0);
    double *wp = malloc(p * 8), *alpha = malloc(steps * ng * 8), *gamma = malloc(steps * ng * 8);
    size_t first = truncate ? steps - truncate : 0;

    /* d_w0 (d w_{T-K} when truncated: perturb w0 only when not truncated) */
    if (!truncate) {
        for (size_t i = 0; i < p; i += (p > 6 ? p / 5 : 1)) {
            double hh = 1e-5;
            memcpy(wp, w0, p * 8);
            wp[i] = w0[i] + hh;
            double fp = train_f(t, wp, meta, p);
            wp[i] = w0[i] - hh;
            double fm = train_f(t, wp, meta, p);
            assert_close((fp - fm) / (2 * hh), h.w0[i], "d_w0", i);
        }
    }
    revl_schedule_get_all(s, alpha, gamma);
    /* d_alpha and d_gamma at a spread of steps, every group */
    for (size_t step = first; step < steps; step += (steps - first > 8 ? (steps - first) / 4 : 1)) {
        for (size_t g = 0; g < ng; g++) {
            size_t k = step * ng + g;
            double a0 = alpha[k], g0 = gamma[k], hh = 1e-5 * fmax(1, fabs(a0));
            revl_schedule_set(s, step, g, a0 + hh, g0);
            double fp = train_f(t, w0, meta, p);
            revl_schedule_set(s, step, g, a0 - hh, g0);
            double fm = train_f(t, w0, meta, p);
            revl_schedule_set(s, step, g, a0, g0);
            assert_close((fp - fm) / (2 * hh), h.alpha[k], "d_alpha", k);
            /* gamma is applied as n/2^16: step it by whole units of 2^-16 around the applied
             * value (the hypergradient is taken there) */
            double ga = revl_gamma_applied(g0), gh = 8.0 / 65536.0;
            if (ga + gh > 1.0 || ga - gh < 0x1p-16)
                continue;
            revl_schedule_set(s, step, g, a0, ga + gh);
            fp = train_f(t, w0, meta, p);
            revl_schedule_set(s, step, g, a0, ga - gh);
            fm = train_f(t, w0, meta, p);
            revl_schedule_set(s, step, g, a0, g0);
            /* the gamma step is larger (1.2e-4), so the O(h^2) truncation term is too */
            double fd = (fp - fm) / (2 * gh);
            ck_assert_msg(fabs(fd - h.gamma[k]) <= 2e-6 * fmax(fabs(fd), 1.0),
                          "d_gamma[%zu]: finite difference %.12g, reverse %.12g", k, fd, h.gamma[k]);
        }
    }
    for (size_t step = 0; step < first; step++)
        for (size_t g = 0; g < ng; g++) {
            ck_assert(h.alpha[step * ng + g] == 0.0);
            ck_assert(h.gamma[step * ng + g] == 0.0);
        }
    /* d_meta (when truncated it counts meta's effect through the last K steps only, which a
     * finite difference of the whole run cannot isolate) */
    for (size_t j = 0; j < nm && !truncate; j++) {
        double m0 = meta[j], hh = 1e-5;
        meta[j] = m0 + hh;
        double fp = train_f(t, w0, meta, p);
        meta[j] = m0 - hh;
        double fm = train_f(t, w0, meta, p);
        meta[j] = m0;
        assert_close((fp - fm) / (2 * hh), h.meta[j], "d_meta", j);
    }
    hg_free(&h);
    free(wp);
    free(alpha);
    free(gamma);
    revl_trainer_free(t);
}

/* ------------------------------------------------------------------ tests: hypergradients */

START_TEST(test_fd_wavy_all_outputs)
{
    size_t p = 12, steps = 30;
    revl_model *m = wavy_model(wavy_new(p, 1), 1, 1);
    revl_schedule *s = two_group_schedule(p, steps);
    for (size_t t = 0; t < steps; t++) {
        revl_schedule_set(s, t, 0, 0.05 + 0.002 * (double)t, 0.9);
        revl_schedule_set(s, t, 1, 0.08, 0.5 + 0.01 * (double)t);
    }
    double w0[12], meta[1] = {-1.0};
    for (size_t i = 0; i < p; i++)
        w0[i] = sin(1.7 * (double)i);
    check_against_fd(m, s, w0, meta, 0);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_fd_logreg_all_outputs)
{
    revl_model *m = logreg_model();
    size_t steps = 25;
    size_t off[4] = {0, 1, 3, 5}; /* bias, then two groups of weights */
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, steps, 3, off), REVL_OK);
    for (size_t t = 0; t < steps; t++)
        for (size_t g = 0; g < 3; g++)
            revl_schedule_set(s, t, g, 0.5 + 0.1 * (double)g, 0.6 + 0.01 * (double)t);
    double w0[5] = {0.1, -0.2, 0.3, 0.05, -0.4}, meta[1] = {-3.0};
    check_against_fd(m, s, w0, meta, 0);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_fd_without_hvp_uses_finite_differences)
{
    /* the documented fallback: central differences of the gradient, ~1e-8 relative */
    size_t p = 8, steps = 20;
    revl_model *m = wavy_model(wavy_new(p, 3), 1, 0);
    revl_model *exact = wavy_model(wavy_new(p, 3), 1, 1);
    revl_schedule *s = two_group_schedule(p, steps);
    double w0[8], meta[1] = {-0.5};
    for (size_t i = 0; i < p; i++)
        w0[i] = cos((double)i);
    revl_trainer *t1 = NULL, *t2 = NULL;
    ck_assert_int_eq(revl_trainer_create(&t1, m, s, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_create(&t2, exact, s, NULL), REVL_OK);
    hg a = run_hypergrad(t1, w0, meta, p, steps * 2, 1, 0);
    hg b = run_hypergrad(t2, w0, meta, p, steps * 2, 1, 0);
    for (size_t i = 0; i < p; i++)
        ck_assert_double_eq_tol(a.w0[i], b.w0[i], 1e-6 * fmax(1, fabs(b.w0[i])));
    for (size_t k = 0; k < steps * 2; k++) {
        ck_assert_double_eq_tol(a.alpha[k], b.alpha[k], 1e-6 * fmax(1, fabs(b.alpha[k])));
        ck_assert_double_eq_tol(a.gamma[k], b.gamma[k], 1e-6 * fmax(1, fabs(b.gamma[k])));
    }
    ck_assert_double_eq_tol(a.meta[0], b.meta[0], 1e-6 * fmax(1, fabs(b.meta[0])));
    hg_free(&a);
    hg_free(&b);
    revl_trainer_free(t1);
    revl_trainer_free(t2);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_model_free(exact);
}
END_TEST

START_TEST(test_model_hvp_fallback_against_exact)
{
    size_t p = 10;
    revl_model *fd = wavy_model(wavy_new(p, 5), 1, 0), *ex = wavy_model(wavy_new(p, 5), 1, 1);
    double w[10], v[10], h1[10], h2[10], hm1[1], hm2[1], meta[1] = {0.2};
    for (size_t i = 0; i < p; i++) {
        w[i] = 0.3 * (double)i - 1;
        v[i] = sin((double)i + 0.5);
    }
    ck_assert_int_eq(revl_model_hvp(fd, 3, w, meta, v, h1, hm1), REVL_OK);
    ck_assert_int_eq(revl_model_hvp(ex, 3, w, meta, v, h2, hm2), REVL_OK);
    for (size_t i = 0; i < p; i++)
        ck_assert_double_eq_tol(h1[i], h2[i], 1e-7 * fmax(1, fabs(h2[i])));
    ck_assert_double_eq_tol(hm1[0], hm2[0], 1e-7 * fmax(1, fabs(hm2[0])));
    revl_model_free(fd);
    revl_model_free(ex);
}
END_TEST

/* ------------------------------------------------------------------ tests: exact reversal */

/* Train and reverse with a random schedule; the reverse pass itself verifies the start bit for
 * bit (REVL_ERR_INEXACT otherwise); we check weights again here with memcmp. */
static void reverse_random(size_t p, size_t steps, size_t ng, double gmin, double gmax,
                           double wscale, int threads)
{
    wavy *q = wavy_new(p, 11);
    revl_model *m = wavy_model(q, 0, 1);
    size_t *off = malloc((ng + 1) * sizeof *off);
    for (size_t g = 0; g <= ng; g++)
        off[g] = g * p / ng;
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, steps, ng, off), REVL_OK);
    for (size_t t = 0; t < steps; t++)
        for (size_t g = 0; g < ng; g++) {
            double lg = log(gmin) + (log(gmax) - log(gmin)) * uniform();
            ck_assert_int_eq(revl_schedule_set(s, t, g, 0.001 + 0.2 * uniform(), exp(lg)), REVL_OK);
        }
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.threads = threads;
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
    double *w0 = malloc(p * 8), *w = malloc(p * 8), *g = malloc(p * 8);
    for (size_t i = 0; i < p; i++) {
        switch (i % 5) {
        case 0: w0[i] = 0; break;
        case 1: w0[i] = -wscale; break;
        case 2: w0[i] = wscale * (2 * uniform() - 1); break;
        case 3: w0[i] = 0x1p-52; break;
        default: w0[i] = -0x1p-40 * (double)i; break;
        }
    }
    ck_assert_msg(revl_trainer_train(t, w0, NULL) == REVL_OK, "%s", revl_trainer_last_error(t));
    revl_trainer_weights(t, w);
    objective(w, p, g);
    ck_assert_msg(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL) == REVL_OK, "%s",
                  revl_trainer_last_error(t));
    revl_trainer_weights(t, w);
    assert_on_start(w, w0, p);
    revl_trainer_stats st = {.struct_size = sizeof st};
    ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_OK);
    ck_assert_uint_eq(st.steps_done, 0);
    ck_assert(fabs(st.buffer_bits) < 1e-6);
    free(w0);
    free(w);
    free(g);
    free(off);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}

START_TEST(test_reverse_long_horizon) { reverse_random(50, 1000, 3, 0.5, 1.0, 1.0, 1); }
END_TEST
START_TEST(test_reverse_tiny_gammas) { reverse_random(40, 200, 4, 0x1p-16, 0.01, 1.0, 1); }
END_TEST
START_TEST(test_reverse_full_range_gammas) { reverse_random(300, 300, 7, 0x1p-16, 1.0, 2.0, 1); }
END_TEST
START_TEST(test_reverse_large_p) { reverse_random(100000, 20, 5, 0.8, 0.999, 1.0, 0); }
END_TEST
START_TEST(test_reverse_near_range_limit) { reverse_random(64, 100, 2, 0.9, 1.0, 1000.0, 1); }
END_TEST

START_TEST(test_reverse_zero_gradient)
{
    /* a = c = b = 0: the gradient is 0 everywhere, only the momentum acts */
    wavy *q = wavy_new(30, 0);
    for (size_t i = 0; i < q->p; i++)
        q->a[i] = q->c[i] = 0;
    q->b = 0;
    revl_model *m = wavy_model(q, 0, 1);
    revl_schedule *s = two_group_schedule(30, 50);
    revl_schedule_fill(s, 0.3, 0.77);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[30], w[30], g[30] = {0}, d[30];
    for (size_t i = 0; i < 30; i++)
        w0[i] = (double)i - 15;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    revl_trainer_weights(t, w);
    ck_assert_mem_eq(w, w0, sizeof w); /* v stays 0, w cannot move */
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, d, NULL, NULL, NULL), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_threads_bit_identical)
{
    /* P spans several blocks; 1 and 2 threads must give the same w_T and hypergradients */
    size_t p = 20000, steps = 15;
    double *w0 = malloc(p * 8), *wa = malloc(p * 8), *wb = malloc(p * 8);
    for (size_t i = 0; i < p; i++)
        w0[i] = sin((double)i);
    hg res[2];
    for (int k = 0; k < 2; k++) {
        revl_model *m = wavy_model(wavy_new(p, 2), 0, 1);
        revl_schedule *s = two_group_schedule(p, steps);
        revl_schedule_fill(s, 0.1, 0.93);
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.threads = k + 1;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
        revl_trainer_weights(t, k ? wb : wa);
        revl_trainer_free(t);
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        res[k] = run_hypergrad(t, w0, NULL, p, steps * 2, 0, 0);
        revl_trainer_free(t);
        revl_schedule_free(s);
        revl_model_free(m);
    }
    ck_assert_mem_eq(wa, wb, p * 8);
    ck_assert_mem_eq(res[0].w0, res[1].w0, p * 8);
    ck_assert_mem_eq(res[0].alpha, res[1].alpha, steps * 2 * 8);
    ck_assert_mem_eq(res[0].gamma, res[1].gamma, steps * 2 * 8);
    hg_free(&res[0]);
    hg_free(&res[1]);
    free(w0);
    free(wa);
    free(wb);
}
END_TEST

START_TEST(test_buffer_bits_and_stats)
{
    size_t p = 1000, steps = 200;
    revl_model *m = wavy_model(wavy_new(p, 4), 0, 1);
    revl_schedule *s = two_group_schedule(p, steps);
    revl_schedule_fill(s, 0.05, 0.9);
    for (size_t t = 0; t < steps; t++)
        revl_schedule_set(s, t, 1, 0.05, 0.98);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double *w0 = calloc(p, 8);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    revl_trainer_stats st = {.struct_size = sizeof st};
    ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_OK);
    double theory = (double)steps * (double)(p / 2) *
                    (32.0 - log2(revl_gamma_applied(0.9) * 65536) -
                     log2(revl_gamma_applied(0.98) * 65536));
    ck_assert_msg(fabs(st.buffer_bits - theory) <= 2e-3 * theory + 0.1 * (double)p,
                  "%.0f bits, theory %.0f", st.buffer_bits, theory);
    ck_assert_msg((double)st.buffer_bytes <= 1.01 * theory / 8 + 8.0 * (double)p + 256, "%zu bytes",
                  st.buffer_bytes);
    ck_assert_uint_eq(st.steps_done, steps);
    ck_assert(st.peak_bytes >= st.buffer_bytes);
    ck_assert(isfinite(st.last_loss));
    free(w0);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ tests: truncation */

START_TEST(test_truncate_fd_last_steps)
{
    size_t p = 10, steps = 30;
    revl_model *m = wavy_model(wavy_new(p, 6), 1, 1);
    revl_schedule *s = two_group_schedule(p, steps);
    for (size_t t = 0; t < steps; t++)
        revl_schedule_set(s, t, 1, 0.07, 0.6 + 0.01 * (double)t);
    double w0[10], meta[1] = {-1.5};
    for (size_t i = 0; i < p; i++)
        w0[i] = 0.2 * (double)i - 1;
    check_against_fd(m, s, w0, meta, 10);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_truncate_equals_full_when_early_steps_exact)
{
    /* With gamma = 1 in the untracked steps, the truncated trajectory is the full one, so the
     * last K steps' hypergradients must equal the full reversal's bit for bit; and K = T is the
     * full reversal itself. */
    size_t p = 50, steps = 40, K = 12;
    revl_model *m = wavy_model(wavy_new(p, 8), 0, 1);
    revl_schedule *s = two_group_schedule(p, steps);
    for (size_t t = 0; t < steps; t++)
        for (size_t g = 0; g < 2; g++)
            revl_schedule_set(s, t, g, 0.02, t < steps - K ? 1.0 : 0.85);
    double w0[50];
    for (size_t i = 0; i < p; i++)
        w0[i] = cos(0.3 * (double)i);
    hg res[3];
    size_t truncs[3] = {0, K, steps};
    size_t bytes[3];
    for (int k = 0; k < 3; k++) {
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.truncate = truncs[k];
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        res[k] = run_hypergrad(t, w0, NULL, p, steps * 2, 0, truncs[k] != 0 && truncs[k] < steps);
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(t, &st);
        bytes[k] = st.buffer_bytes;
        revl_trainer_free(t);
    }
    size_t tail = (steps - K) * 2;
    ck_assert_mem_eq(res[0].alpha + tail, res[1].alpha + tail, K * 2 * 8);
    ck_assert_mem_eq(res[0].gamma + tail, res[1].gamma + tail, K * 2 * 8);
    ck_assert_mem_eq(res[0].alpha, res[2].alpha, steps * 2 * 8);
    ck_assert_mem_eq(res[0].w0, res[2].w0, p * 8);
    for (size_t k = 0; k < tail; k++)
        ck_assert(res[1].alpha[k] == 0.0 && res[1].gamma[k] == 0.0);
    ck_assert(bytes[1] <= bytes[0]);
    for (int k = 0; k < 3; k++)
        hg_free(&res[k]);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_truncate_memory_is_k_steps)
{
    size_t p = 2000, steps = 200;
    revl_model *m = wavy_model(wavy_new(p, 9), 0, 1);
    revl_schedule *s = two_group_schedule(p, steps);
    revl_schedule_fill(s, 0.05, 0.9);
    double *w0 = calloc(p, 8);
    double bits[2];
    for (int k = 0; k < 2; k++) {
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.truncate = k ? 20 : 0;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(t, &st);
        bits[k] = st.buffer_bits;
        revl_trainer_free(t);
    }
    double per_step = (double)p * (16 - log2(revl_gamma_applied(0.9) * 65536));
    ck_assert_msg(fabs(bits[1] - 20 * per_step) <= 0.01 * 20 * per_step + 2.0 * (double)p,
                  "truncated: %.0f bits, 20 steps hold %.0f", bits[1], 20 * per_step);
    ck_assert(bits[0] > 9 * bits[1]);
    free(w0);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* g_i = 0.9 sin(0.7 i + 0.3 t): no w dependence, so a double-precision loop is the trajectory */
static double drift_g(size_t i, size_t t) { return 0.9 * sin(0.7 * (double)i + 0.3 * (double)t); }

static int drift_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                      void *user)
{
    (void)w;
    (void)meta;
    size_t p = *(const size_t *)user;
    for (size_t i = 0; i < p; i++)
        g[i] = drift_g(i, step);
    if (loss)
        *loss = 0;
    return 0;
}

START_TEST(test_truncate_forward_unbiased)
{
    /* The steps whose bits are not kept multiply v by gamma rounding to nearest: against a
     * double-precision loop, the mean error of w_T over 4096 weights stays far below one
     * fixed-point unit per step (rounding down instead, -1/2 unit a multiply, drifts v by
     * -1/(2 (1 - gamma)) units and w by alpha times that every step: about 45 units here). */
    size_t p = 4096, steps = 100;
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = p;
    d.grad = drift_grad;
    d.user = &p;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    size_t off[2] = {0, p};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, steps, 1, off), REVL_OK);
    const double alpha = 0.1, gamma = revl_gamma_applied(0.9);
    ck_assert_int_eq(revl_schedule_fill(s, alpha, 0.9), REVL_OK);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.frac_bits = 24;
    o.truncate = 1; /* 99 steps multiply by gamma rounding */
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
    double *w0 = malloc(p * sizeof *w0), *wT = malloc(p * sizeof *wT);
    for (size_t i = 0; i < p; i++)
        w0[i] = cos(0.37 * (double)i);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(t, wT), REVL_OK);
    double mean = 0, unit = 0x1p-24;
    for (size_t i = 0; i < p; i++) {
        double v = 0, w = w0[i];
        for (size_t k = 0; k < steps; k++) {
            v = gamma * v - (1 - gamma) * drift_g(i, k);
            w += alpha * v;
        }
        mean += (wT[i] - w) / unit / (double)p;
    }
    ck_assert_msg(fabs(mean) < 1.0, "mean error of w_T: %.3f fixed-point units", mean);
    free(w0);
    free(wT);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ tests: errors */

static revl_trainer *small_trainer(wavy **qout, revl_model **mout, revl_schedule **sout,
                                   size_t steps)
{
    wavy *q = wavy_new(8, 1);
    revl_model *m = wavy_model(q, 0, 1);
    revl_schedule *s = two_group_schedule(8, steps);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    *qout = q;
    *mout = m;
    *sout = s;
    return t;
}

START_TEST(test_error_null_and_sizes)
{
    revl_model *m = NULL;
    revl_model_def d;
    revl_model_def_init(&d);
    ck_assert_int_eq(revl_model_create(NULL, &d), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_create(&m, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID); /* n_params 0, no grad */
    d.n_params = 4;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID); /* no grad */
    d.grad = wavy_grad;
    d.struct_size = 8;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID); /* struct too small */
    ck_assert_ptr_null(m);
    revl_model_free(NULL);
    revl_schedule_free(NULL);
    revl_trainer_free(NULL);

    revl_schedule *s = NULL;
    size_t bad1[3] = {0, 5, 5}, bad2[3] = {1, 2, 4}, good[3] = {0, 2, 4};
    ck_assert_int_eq(revl_schedule_create(&s, 0, 2, good), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_create(&s, 3, 0, good), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_create(&s, 3, 2, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_create(&s, 3, 2, bad1), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_create(&s, 3, 2, bad2), REVL_ERR_INVALID);
    size_t nine[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8}; /* n_steps * n_groups overflows size_t */
    ck_assert_int_eq(revl_schedule_create(&s, (size_t)1 << 62, 8, nine), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_create(&s, 3, 2, good), REVL_OK);
    ck_assert_int_eq(revl_schedule_set(s, 0, 0, 0.1, 0.0), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_schedule_last_error(s), "gamma"));
    ck_assert_int_eq(revl_schedule_set(s, 0, 0, 0.1, 1.0 + 1e-12), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_set(s, 0, 0, 0.1, 0x1p-17), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_set(s, 0, 0, 0.1, 0x1p-16), REVL_OK);
    ck_assert_int_eq(revl_schedule_set(s, 1, 1, NAN, 0.5), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_schedule_last_error(s), "alpha"));
    ck_assert_int_eq(revl_schedule_set(s, 1, 1, INFINITY, 0.5), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_set(s, 3, 0, 0.1, 0.5), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_set(s, 0, 2, 0.1, 0.5), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_fill(s, 0.1, NAN), REVL_ERR_INVALID);
    double a[6] = {1, 1, 1, 1, 1, 1}, g[6] = {0.5, 0.5, 0.5, 0.5, 2.0, 0.5}, got[6];
    ck_assert_int_eq(revl_schedule_set_all(s, a, g), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_schedule_last_error(s), "step 2, group 0"));
    revl_schedule_get_all(s, got, NULL);
    ck_assert(got[4] != 1.0); /* nothing changed on error */

    /* a schedule whose groups do not cover the model */
    wavy *q = wavy_new(5, 0);
    m = wavy_model(q, 0, 1);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_create(&t, NULL, s, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_create(&t, m, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_create(NULL, m, s, NULL), REVL_ERR_INVALID);
    revl_schedule_free(s);
    size_t off5[2] = {0, 5};
    ck_assert_int_eq(revl_schedule_create(&s, 3, 1, off5), REVL_OK);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.frac_bits = 0;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_ERR_INVALID);
    o.frac_bits = 63;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_ERR_INVALID);
    o.frac_bits = 40;
    o.struct_size = 4;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_hypergrad(t, NULL, NULL, NULL, NULL, NULL, NULL), REVL_ERR_STATE);
    ck_assert_int_eq(revl_trainer_weights(t, NULL), REVL_ERR_INVALID);
    revl_trainer_stats st = {.struct_size = 1};
    ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_set_groups(m, 2, bad1), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_model_last_error(m), "offsets"));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    ck_assert_str_eq(revl_strerror(REVL_ERR_INEXACT), "reversal not exact");
    ck_assert_str_eq(revl_strerror(12345), "unknown status");
    ck_assert_uint_eq(revl_version_number(), REVL_VERSION_NUMBER);
}
END_TEST

START_TEST(test_error_meta_required)
{
    revl_model *m = wavy_model(wavy_new(4, 0), 1, 1);
    size_t off[2] = {0, 4};
    revl_schedule *s = NULL;
    revl_schedule_create(&s, 3, 1, off);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[4] = {0}, meta[1] = {NAN};
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "meta"));
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_ERR_RANGE);
    meta[0] = 0;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    double g[4] = {1, 1, NAN, 1};
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), REVL_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "dfdw[2]"));
    g[2] = 1;
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), REVL_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "already reversed"));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_error_w0_out_of_range)
{
    wavy *q;
    revl_model *m;
    revl_schedule *s;
    revl_trainer *t = small_trainer(&q, &m, &s, 5);
    double w0[8] = {0, 0, 0, 2048.0, 0, 0, 0, 0};
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "w0[3]"));
    w0[3] = -2047.0;
    w0[5] = INFINITY;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "w0[5]"));
    w0[5] = 0;
    w0[3] = 1;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_error_gradient_nan_and_huge)
{
    wavy *q;
    revl_model *m;
    revl_schedule *s;
    revl_trainer *t = small_trainer(&q, &m, &s, 10);
    double w0[8] = {0}, g[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    q->nan_at = 6;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_RANGE);
    ck_assert_str_eq(revl_trainer_last_error(t), "gradient is NaN at step 6, parameter 4 (forward)");
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), REVL_ERR_STATE);
    q->nan_at = -1;
    q->huge_at = 3;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "at step 3, parameter 7"));
    q->huge_at = -1;
    /* still usable */
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_error_weights_leave_range)
{
    /* a huge learning rate drives w out of |w| < 2^11 */
    wavy *q;
    revl_model *m;
    revl_schedule *s;
    revl_trainer *t = small_trainer(&q, &m, &s, 50);
    revl_schedule_fill(s, 1e6, 0.5);
    double w0[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_RANGE);
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "fixed-point range"));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_error_callbacks_fail)
{
    wavy *q;
    revl_model *m;
    revl_schedule *s;
    revl_trainer *t = small_trainer(&q, &m, &s, 10);
    double w0[8] = {0}, g[8] = {1, 1, 1, 1, 1, 1, 1, 1}, d[8];
    q->fail_grad_at = 4;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_CALLBACK);
    ck_assert_str_eq(revl_trainer_last_error(t),
                     "gradient callback returned 7 at step 4 (forward)");
    q->fail_grad_at = -1;
    q->fail_hvp_at = 2;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, d, NULL, NULL, NULL), REVL_ERR_CALLBACK);
    ck_assert_str_eq(revl_trainer_last_error(t),
                     "Hessian-vector callback returned 9 at step 2 (reverse)");
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, d, NULL, NULL, NULL), REVL_ERR_STATE);
    q->fail_hvp_at = -1;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, d, NULL, NULL, NULL), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_error_nondeterministic_gradient)
{
    wavy *q;
    revl_model *m;
    revl_schedule *s;
    revl_trainer *t = small_trainer(&q, &m, &s, 30);
    double w0[8] = {1, -1, 0.5, 0, 0, 2, 3, -3}, g[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    q->nondeterministic = 1;
    q->calls = 1000001; /* every later gradient is perturbed */
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), REVL_ERR_INEXACT);
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "the gradient at step 29 differs"));
    ck_assert_ptr_nonnull(strstr(revl_trainer_last_error(t), "deterministic"));
    q->nondeterministic = 0;
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_allocation_failure_every_point)
{
    /* Fail the k-th allocation for every k along model, schedule and trainer creation, train and
     * hypergradient: each run ends with REVL_ERR_NOMEM or succeeds (k past the last allocation),
     * and after freeing nothing is live. Once per optimiser (_i): each has its own states and
     * start copies (Adam's first one's failure once went unnoticed). */
    revl_optimizer opt = (revl_optimizer)_i;
    size_t p = 9000, steps = 6; /* three blocks: several stacks to reserve */
    long k;
    for (k = 0;; k++) {
        failing f = {.fail_at = k};
        revl_allocator a = failing_allocator(&f);
        wavy *q = wavy_new(p, 1);
        revl_model_def d;
        revl_model_def_init(&d);
        d.n_params = p;
        d.grad = wavy_grad;
        d.user = q;
        d.user_free = wavy_free;
        d.allocator = &a; /* no hvp: the finite-difference workspace is allocated lazily too */
        revl_model *m = NULL;
        revl_schedule *s = NULL;
        revl_trainer *t = NULL;
        int rc = revl_model_create(&m, &d);
        size_t off[3] = {0, p / 3, p};
        if (rc == REVL_OK)
            rc = revl_schedule_create_for(&s, opt, steps, 2, off, &a);
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.allocator = &a;
        if (rc == REVL_OK)
            rc = revl_trainer_create(&t, m, s, &o);
        double *w0 = calloc(p, 8), *g = malloc(p * 8);
        for (size_t i = 0; i < p; i++)
            g[i] = 1;
        if (rc == REVL_OK)
            rc = revl_trainer_train(t, w0, NULL);
        if (rc == REVL_OK)
            rc = revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL);
        int done = f.calls <= k; /* nothing failed: we are past the last allocation */
        if (done)
            ck_assert_int_eq(rc, REVL_OK);
        else
            ck_assert_msg(rc == REVL_ERR_NOMEM, "k = %ld: status %d", k, rc);
        if (!done && t) {
            /* the handle is still usable once memory is back */
            f.fail_at = -1;
            ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
            ck_assert_int_eq(revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL), REVL_OK);
        }
        if (!m)
            wavy_free(q);
        revl_trainer_free(t);
        revl_schedule_free(s);
        revl_model_free(m);
        ck_assert_msg(f.live == 0, "k = %ld: %ld allocations leaked", k, f.live);
        free(w0);
        free(g);
        if (done)
            break;
    }
    ck_assert(k > 10); /* the run really allocates through the hooks */
}
END_TEST

static Suite *trainer_suite(void)
{
    Suite *s = suite_create("trainer");
    TCase *fd = tcase_create("hypergradients");
    tcase_set_timeout(fd, 300);
    tcase_add_test(fd, test_fd_wavy_all_outputs);
    tcase_add_test(fd, test_fd_logreg_all_outputs);
    tcase_add_test(fd, test_fd_without_hvp_uses_finite_differences);
    tcase_add_test(fd, test_model_hvp_fallback_against_exact);
    suite_add_tcase(s, fd);
    TCase *ex = tcase_create("exact");
    tcase_set_timeout(ex, 300);
    tcase_add_test(ex, test_reverse_long_horizon);
    tcase_add_test(ex, test_reverse_tiny_gammas);
    tcase_add_test(ex, test_reverse_full_range_gammas);
    tcase_add_test(ex, test_reverse_large_p);
    tcase_add_test(ex, test_reverse_near_range_limit);
    tcase_add_test(ex, test_reverse_zero_gradient);
    tcase_add_test(ex, test_threads_bit_identical);
    tcase_add_test(ex, test_buffer_bits_and_stats);
    suite_add_tcase(s, ex);
    TCase *tr = tcase_create("truncation");
    tcase_set_timeout(tr, 300);
    tcase_add_test(tr, test_truncate_fd_last_steps);
    tcase_add_test(tr, test_truncate_equals_full_when_early_steps_exact);
    tcase_add_test(tr, test_truncate_memory_is_k_steps);
    tcase_add_test(tr, test_truncate_forward_unbiased);
    suite_add_tcase(s, tr);
    TCase *er = tcase_create("errors");
    tcase_set_timeout(er, 300);
    tcase_add_test(er, test_error_null_and_sizes);
    tcase_add_test(er, test_error_meta_required);
    tcase_add_test(er, test_error_w0_out_of_range);
    tcase_add_test(er, test_error_gradient_nan_and_huge);
    tcase_add_test(er, test_error_weights_leave_range);
    tcase_add_test(er, test_error_callbacks_fail);
    tcase_add_test(er, test_error_nondeterministic_gradient);
    tcase_add_loop_test(er, test_allocation_failure_every_point, 0, REVL_OPTIM_COUNT);
    suite_add_tcase(s, er);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(trainer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
