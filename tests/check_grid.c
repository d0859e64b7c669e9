/* check_grid.c: checking hypergradients by finite differences on the grids revl trains on
 * (docs/checking.md): revl_fixed_round gives the w0 training really starts from and the
 * reverse pass returns to; gamma steps must be multiples of 2^-16, because gamma is applied as
 * the nearest n/2^16, or the difference sees no change at all. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "revl.h"

#define P 4
#define T 30

/* L_t(w) = 1/2 sum_i c_i (1 + (t mod 3)/10) (w_i - 1)^2 */
static double curv(size_t t, int i) { return (i + 1) * (1.0 + 0.1 * (double)(t % 3)); }

static int grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                void *user)
{
    double l = 0;
    for (int i = 0; i < P; i++) {
        g[i] = curv(step, i) * (w[i] - 1.0);
        l += 0.5 * g[i] * (w[i] - 1.0);
    }
    if (loss)
        *loss = l;
    return 0;
}

static int hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
               double *hv, double *hm, void *user)
{
    for (int i = 0; i < P; i++)
        hv[i] = curv(step, i) * v[i];
    return 0;
}

/* f(w_T) = 1/2 |w_T|^2, after training from w0 with every gamma = gamma and alpha = 0.1.
 * With d != NULL, also the exact hypergradients and the weights after the reverse pass. */
typedef struct run_out {
    double f, d_w0[P], d_gamma[T], d_alpha[T], w_back[P];
} run_out;

static void run(const double *w0, double gamma, size_t gamma_step, double gamma_other,
                unsigned frac_bits, run_out *d)
{
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = P;
    def.grad = grad;
    def.hvp = hvp;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &def), REVL_OK);
    size_t off[2] = {0, P};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, T, 1, off), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill(s, 0.1, gamma_other), REVL_OK);
    ck_assert_int_eq(revl_schedule_set(s, gamma_step, 0, 0.1, gamma), REVL_OK);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.frac_bits = frac_bits;
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    double w[P], dfdw[P];
    ck_assert_int_eq(revl_trainer_weights(t, w), REVL_OK);
    d->f = 0;
    for (int i = 0; i < P; i++) {
        d->f += 0.5 * w[i] * w[i];
        dfdw[i] = w[i];
    }
    ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, NULL, d->d_w0, d->d_alpha, d->d_gamma, NULL),
                     REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(t, d->w_back), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}

START_TEST(test_fixed_round)
{
    double x[4] = {0.1, -0.1, 1.0 / 3, 2.5};
    ck_assert_int_eq(revl_fixed_round(10, x, 4), REVL_OK);
    ck_assert(x[0] == 102.0 / 1024 && x[1] == -102.0 / 1024); /* 102.4 -> 102 */
    ck_assert(x[2] == 341.0 / 1024 && x[3] == 2.5);          /* on the grid: unchanged */
    double y[2] = {0.1, 0.3};
    ck_assert_int_eq(revl_fixed_round(52, y, 2), REVL_OK);
    ck_assert(y[0] == ldexp(llrint(ldexp(0.1, 52)), -52) && y[1] == ldexp(llrint(ldexp(0.3, 52)), -52));
    /* out of range or not finite: REVL_ERR_RANGE, nothing changed */
    double bad[3] = {0.1, 2048.0, 0.2}; /* |w| < 2^11 with 52 bits */
    ck_assert_int_eq(revl_fixed_round(52, bad, 3), REVL_ERR_RANGE);
    ck_assert(bad[0] == 0.1 && bad[1] == 2048.0 && bad[2] == 0.2);
    bad[1] = 2047.5;
    ck_assert_int_eq(revl_fixed_round(52, bad, 3), REVL_OK);
    bad[1] = NAN;
    ck_assert_int_eq(revl_fixed_round(52, bad, 3), REVL_ERR_RANGE);
    ck_assert_int_eq(revl_fixed_round(0, x, 4), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_fixed_round(63, x, 4), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_fixed_round(52, NULL, 1), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_fixed_round(52, NULL, 0), REVL_OK);
}
END_TEST

/* The reverse pass returns to w0 bit for bit only when w0 is on the grid: otherwise to the
 * rounded w0, which revl_fixed_round predicts exactly. */
START_TEST(test_reversal_returns_to_the_rounded_w0)
{
    const unsigned bits[2] = {52, 20};
    for (int b = 0; b < 2; b++) {
        double w0[P] = {0.1, -0.7, 1.0 / 3, 0.25}, r[P];
        for (int i = 0; i < P; i++)
            r[i] = w0[i];
        ck_assert_int_eq(revl_fixed_round(bits[b], r, P), REVL_OK);
        run_out d;
        run(w0, 0.5, 0, 0.5, bits[b], &d);
        int off_grid = 0;
        for (int i = 0; i < P; i++) {
            ck_assert(d.w_back[i] == r[i]);
            off_grid += d.w_back[i] != w0[i];
        }
        /* 0.25 is on every grid; 0.1 and 1/3 are on neither (-0.7 is on the 52-bit one) */
        ck_assert_int_eq(off_grid, b == 0 ? 2 : 3);
        run(r, 0.5, 0, 0.5, bits[b], &d);
        for (int i = 0; i < P; i++)
            ck_assert(d.w_back[i] == r[i]);
    }
}
END_TEST

/* d f / d gamma of one step against central differences: a step of 2^-10 (64 grid units)
 * agrees; a step below half a grid unit changes nothing that is applied, so the difference
 * is 0 while the hypergradient is not. */
START_TEST(test_gamma_differences_on_the_grid)
{
    double w0[P] = {0.5, -0.25, 0.75, 0.125}; /* on the grid */
    const double g0 = revl_gamma_applied(0.9);
    const size_t k = 7;
    run_out d, plus, minus;
    run(w0, g0, k, g0, 52, &d);
    ck_assert(d.d_gamma[k] != 0);
    const double h = 0x1p-10;
    run(w0, g0 + h, k, g0, 52, &plus);
    run(w0, g0 - h, k, g0, 52, &minus);
    double fd = (plus.f - minus.f) / (2 * h);
    /* the truncation error h^2 f''' / 6 is far below this on a quadratic */
    ck_assert_msg(fabs(fd - d.d_gamma[k]) <= 1e-5 * fabs(d.d_gamma[k]), "fd %.9g vs %.9g", fd,
                  d.d_gamma[k]);
    const double tiny = 0x1p-18; /* a quarter of a grid unit */
    run(w0, g0 + tiny, k, g0, 52, &plus);
    run(w0, g0 - tiny, k, g0, 52, &minus);
    ck_assert(plus.f == minus.f && plus.f == d.f);
    /* w0 differences: on the grid, any step is exact */
    for (int i = 0; i < P; i++) {
        double wp[P], wm[P];
        for (int j = 0; j < P; j++)
            wp[j] = wm[j] = w0[j];
        wp[i] += h;
        wm[i] -= h;
        run(wp, g0, k, g0, 52, &plus);
        run(wm, g0, k, g0, 52, &minus);
        fd = (plus.f - minus.f) / (2 * h);
        ck_assert_msg(fabs(fd - d.d_w0[i]) <= 1e-6 * fabs(d.d_w0[i]) + 1e-12, "w0[%d]: %.9g vs %.9g",
                      i, fd, d.d_w0[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grid");
    TCase *tc = tcase_create("finite differences");
    tcase_add_test(tc, test_fixed_round);
    tcase_add_test(tc, test_reversal_returns_to_the_rounded_w0);
    tcase_add_test(tc, test_gamma_differences_on_the_grid);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
