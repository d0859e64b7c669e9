/* check_sampler.c: the tuner's global search (src/hyperopt/sampler.h, lowdisc.h): the scrambled
 * Halton points fill the cube as a low-discrepancy sequence must (one point per cell, in every
 * coordinate and in the first two jointly) and are scrambled (the seed matters; no two
 * coordinates move together as the plain sequence's large bases do); the Parzen densities are
 * densities (integrate to 1) that put the good results in l and the bad and diverged ones in g;
 * TPE beats space filling and random points on a smooth function; proposals are a function of
 * the seed and the told results only (twice the same, reset and resume reproduce them); bad
 * configurations and results are refused with a message and change nothing; allocation failure
 * at every point leaks nothing and changes nothing, and proposing never allocates. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hyperopt/lowdisc.h"
#include "hyperopt/sampler.h"
#include "testutil.h"

static rv_sampler_config config(size_t dim, uint64_t seed, size_t n_initial)
{
    return (rv_sampler_config){.dim = dim, .seed = seed, .n_initial = n_initial,
                               .n_candidates = 24, .good_fraction = 0.15};
}

static rv_sampler *make(const rv_sampler_config *c)
{
    rv_sampler *s = NULL;
    char err[RV_ERRLEN] = "";
    ck_assert_msg(rv_sampler_create(&s, c, NULL, err) == REVL_OK, "%s", err);
    return s;
}

/* the smooth test function: a bowl with its bottom at 0.3 in every coordinate */
static double bowl(const double *u, size_t dim)
{
    double f = 0;
    for (size_t d = 0; d < dim; d++)
        f += (u[d] - 0.3) * (u[d] - 0.3);
    return f;
}

static void assert_inside(const double *u, size_t dim)
{
    for (size_t d = 0; d < dim; d++)
        ck_assert_msg(u[d] > 0 && u[d] < 1, "u[%zu] = %.17g is not inside (0, 1)", d, u[d]);
}

/* n rounds of propose, evaluate the bowl, tell; the points into pts (n x dim) if not NULL; the
 * best value found */
static double search(rv_sampler *s, size_t dim, size_t n, double *pts)
{
    double u[64], best = INFINITY;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(rv_sampler_propose(s, u), REVL_OK);
        assert_inside(u, dim);
        double f = bowl(u, dim);
        best = fmin(best, f);
        ck_assert_int_eq(rv_sampler_tell(s, u, f), REVL_OK);
        if (pts)
            memcpy(pts + i * dim, u, dim * sizeof *u);
    }
    return best;
}

/* ------------------------------------------------------------------ configuration */

START_TEST(test_bad_config)
{
    struct {
        rv_sampler_config c;
        const char *want;
    } bad[] = {
        {{.dim = 0, .n_initial = 1, .n_candidates = 1, .good_fraction = 0.2}, "dim = 0"},
        {{.dim = RV_LOWDISC_MAX_DIM + 1, .n_initial = 1, .n_candidates = 1, .good_fraction = 0.2},
         "outside [1, 65536]"},
        {{.dim = 2, .n_initial = 0, .n_candidates = 1, .good_fraction = 0.2}, "n_initial"},
        {{.dim = 2, .n_initial = 1, .n_candidates = 0, .good_fraction = 0.2}, "n_candidates"},
        {{.dim = 2, .n_initial = 1, .n_candidates = 1, .good_fraction = 0}, "good_fraction = 0 "},
        {{.dim = 2, .n_initial = 1, .n_candidates = 1, .good_fraction = 1}, "good_fraction = 1 "},
        {{.dim = 2, .n_initial = 1, .n_candidates = 1, .good_fraction = -0.5}, "-0.5"},
        {{.dim = 2, .n_initial = 1, .n_candidates = 1, .good_fraction = NAN}, "nan"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rv_sampler *s = (rv_sampler *)&s; /* not NULL: create must clear it */
        char err[RV_ERRLEN] = "";
        ck_assert_int_eq(rv_sampler_create(&s, &bad[i].c, NULL, err), REVL_ERR_INVALID);
        ck_assert_ptr_null(s);
        expect_msg(err, bad[i].want);
    }
    char err[RV_ERRLEN] = "";
    rv_sampler *s = NULL;
    ck_assert_int_eq(rv_sampler_create(&s, NULL, NULL, err), REVL_ERR_INVALID);
    expect_msg(err, "config is NULL");
    rv_sampler_config c = config(2, 1, 1);
    ck_assert_int_eq(rv_sampler_create(NULL, &c, NULL, err), REVL_ERR_INVALID);
    expect_msg(err, "out is NULL");
    /* the limits themselves are fine */
    c.dim = RV_LOWDISC_MAX_DIM;
    c.good_fraction = 0x1p-52;
    ck_assert_int_eq(rv_sampler_create(&s, &c, NULL, err), REVL_OK);
    rv_sampler_free(s);
    rv_sampler_free(NULL);
}
END_TEST

/* A refused result changes nothing: the same count, the same next proposal. */
START_TEST(test_bad_results_refused)
{
    rv_sampler_config c = config(3, 5, 4);
    rv_sampler *s = make(&c);
    search(s, 3, 10, NULL);
    double before[3], after[3], u[3] = {0.5, 0.5, 0.5};
    ck_assert_int_eq(rv_sampler_propose(s, before), REVL_OK);
    struct {
        double u1, loss;
        const char *want;
    } bad[] = {
        {0.5, NAN, "loss = nan"},   {0.5, -INFINITY, "loss = -inf"},
        {1.5, 1.0, "u[1] = 1.5"},   {-0.0625, 1.0, "u[1] = -0.0625"},
        {NAN, 1.0, "u[1] = nan"},   {INFINITY, 1.0, "u[1] = inf"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        u[1] = bad[i].u1;
        ck_assert_int_eq(rv_sampler_tell(s, u, bad[i].loss), REVL_ERR_INVALID);
        expect_msg(rv_sampler_last_error(s), bad[i].want);
        ck_assert_uint_eq(rv_sampler_n_told(s), 10);
    }
    ck_assert_int_eq(rv_sampler_tell(s, NULL, 1.0), REVL_ERR_INVALID);
    expect_msg(rv_sampler_last_error(s), "u is NULL");
    ck_assert_int_eq(rv_sampler_propose(s, NULL), REVL_ERR_INVALID);
    expect_msg(rv_sampler_last_error(s), "u is NULL");
    ck_assert_int_eq(rv_sampler_propose(s, after), REVL_OK);
    ck_assert_mem_eq(before, after, sizeof before);
    /* the faces of the cube and +inf are results */
    u[1] = 1;
    u[2] = 0;
    ck_assert_int_eq(rv_sampler_tell(s, u, INFINITY), REVL_OK);
    ck_assert_uint_eq(rv_sampler_n_told(s), 11);
    ck_assert_int_eq(rv_sampler_propose(NULL, u), REVL_ERR_INVALID);
    ck_assert_int_eq(rv_sampler_tell(NULL, u, 1), REVL_ERR_INVALID);
    ck_assert_uint_eq(rv_sampler_n_told(NULL), 0);
    ck_assert_ptr_null(rv_sampler_point(NULL, 0, NULL));
    rv_sampler_free(s);
}
END_TEST

/* Told points are copies, returned with their losses in the order told. */
START_TEST(test_told_points_kept)
{
    rv_sampler_config c = config(2, 9, 3);
    rv_sampler *s = make(&c);
    double u[2];
    for (int i = 0; i < 40; i++) { /* through two doublings */
        u[0] = i / 40.0;
        u[1] = 1 - i / 40.0;
        ck_assert_int_eq(rv_sampler_tell(s, u, i % 3 ? 1.0 / (i + 1) : INFINITY), REVL_OK);
    }
    u[0] = u[1] = -1; /* the caller's array is not the sampler's */
    for (size_t k = 0; k < 40; k++) {
        double loss = 0;
        const double *p = rv_sampler_point(s, k, &loss);
        ck_assert_ptr_nonnull(p);
        ck_assert_double_eq(p[0], k / 40.0);
        ck_assert_double_eq(p[1], 1 - k / 40.0);
        ck_assert_double_eq(loss, k % 3 ? 1.0 / (k + 1) : INFINITY);
        ck_assert_ptr_eq(rv_sampler_point(s, k, NULL), p);
    }
    ck_assert_ptr_null(rv_sampler_point(s, 40, NULL));
    rv_sampler_free(s);
}
END_TEST

/* ------------------------------------------------------------------ determinism */

START_TEST(test_deterministic_per_seed)
{
    enum { DIM = 5, N = 40 };
    double a[N * DIM], b[N * DIM], other[N * DIM];
    rv_sampler_config c = config(DIM, 42, 8);
    rv_sampler *s = make(&c), *t = make(&c);
    search(s, DIM, N, a);
    search(t, DIM, N, b);
    ck_assert_mem_eq(a, b, sizeof a); /* bit for bit, Halton points and TPE proposals */
    c.seed = 43;
    rv_sampler *o = make(&c);
    search(o, DIM, N, other);
    for (size_t k = 0; k < N * DIM; k++) /* every coordinate of every point moved */
        ck_assert_msg(a[k] != other[k], "point %zu, coordinate %zu the same for seeds 42, 43",
                      k / DIM, k % DIM);
    rv_sampler_free(s);
    rv_sampler_free(t);
    rv_sampler_free(o);
}
END_TEST

/* Proposing changes nothing: twice gives the same point, in either phase. */
START_TEST(test_propose_twice)
{
    rv_sampler_config c = config(3, 7, 6);
    rv_sampler *s = make(&c);
    for (int i = 0; i < 20; i++) {
        double u[3], v[3];
        ck_assert_int_eq(rv_sampler_propose(s, u), REVL_OK);
        ck_assert_int_eq(rv_sampler_propose(s, v), REVL_OK);
        ck_assert_mem_eq(u, v, sizeof u);
        ck_assert_int_eq(rv_sampler_tell(s, u, bowl(u, 3)), REVL_OK);
    }
    rv_sampler_free(s);
}
END_TEST

/* A search reset and told its results again, and a new sampler told them (a resume), propose
 * what the search proposed after them, bit for bit. */
START_TEST(test_reset_and_resume)
{
    enum { DIM = 4, N = 36, CUT = 21 };
    double pts[N * DIM], u[DIM];
    rv_sampler_config c = config(DIM, 3, 10);
    rv_sampler *s = make(&c), *r = make(&c);
    search(s, DIM, N, pts);
    rv_sampler_reset(s);
    ck_assert_uint_eq(rv_sampler_n_told(s), 0);
    for (size_t k = 0; k < CUT; k++) {
        ck_assert_int_eq(rv_sampler_tell(s, pts + k * DIM, bowl(pts + k * DIM, DIM)), REVL_OK);
        ck_assert_int_eq(rv_sampler_tell(r, pts + k * DIM, bowl(pts + k * DIM, DIM)), REVL_OK);
    }
    for (size_t k = CUT; k < N; k++) {
        ck_assert_int_eq(rv_sampler_propose(s, u), REVL_OK);
        ck_assert_mem_eq(u, pts + k * DIM, sizeof u);
        ck_assert_int_eq(rv_sampler_propose(r, u), REVL_OK);
        ck_assert_mem_eq(u, pts + k * DIM, sizeof u);
        ck_assert_int_eq(rv_sampler_tell(s, u, bowl(u, DIM)), REVL_OK);
        ck_assert_int_eq(rv_sampler_tell(r, u, bowl(u, DIM)), REVL_OK);
    }
    /* reset then other results: the fit follows them, not the old ones */
    rv_sampler_reset(s);
    for (size_t k = 0; k < CUT; k++)
        ck_assert_int_eq(rv_sampler_tell(s, pts + k * DIM, 1.0 / (k + 1)), REVL_OK);
    double lg, lb, lg2, lb2;
    ck_assert_int_eq(rv_sampler_log_densities(s, pts, &lg, &lb), REVL_OK);
    rv_sampler *f = make(&c);
    for (size_t k = 0; k < CUT; k++)
        ck_assert_int_eq(rv_sampler_tell(f, pts + k * DIM, 1.0 / (k + 1)), REVL_OK);
    ck_assert_int_eq(rv_sampler_log_densities(f, pts, &lg2, &lb2), REVL_OK);
    ck_assert_double_eq(lg, lg2);
    ck_assert_double_eq(lb, lb2);
    rv_sampler_free(s);
    rv_sampler_free(r);
    rv_sampler_free(f);
}
END_TEST

/* ------------------------------------------------------------------ the Halton points */

/* Each coordinate d (base b): the first b^k points one in each of the b^k intervals, for the
 * largest b^k <= 512; the first two coordinates jointly: the first 72 points one in each cell of
 * the 8 x 9 grid (2^3 3^2). Independent uniform points fail this at once, and so would a digit
 * scrambling that is not a permutation. Every point strictly inside the cube. */
START_TEST(test_halton_fills_cells)
{
    enum { DIM = 8, N = 512 };
    static const unsigned base[DIM] = {2, 3, 5, 7, 11, 13, 17, 19};
    static double pts[N * DIM];
    for (uint64_t seed = 0; seed < 4; seed++) {
        rv_sampler_config c = config(DIM, seed, N);
        rv_sampler *s = make(&c);
        for (size_t i = 0; i < N; i++) { /* the initial phase ignores the losses */
            ck_assert_int_eq(rv_sampler_propose(s, pts + i * DIM), REVL_OK);
            assert_inside(pts + i * DIM, DIM);
            ck_assert_int_eq(rv_sampler_tell(s, pts + i * DIM, (double)(i % 7)), REVL_OK);
        }
        for (size_t d = 0; d < DIM; d++) {
            size_t cells = 1;
            while (cells * base[d] <= N)
                cells *= base[d];
            int seen[N] = {0};
            for (size_t i = 0; i < cells; i++) {
                size_t cell = (size_t)(pts[i * DIM + d] * (double)cells);
                ck_assert_msg(!seen[cell]++, "seed %d, coordinate %zu: two of the first %zu "
                              "points in cell %zu", (int)seed, d, cells, cell);
            }
        }
        int seen[72] = {0};
        for (size_t i = 0; i < 72; i++) {
            size_t cell = (size_t)(pts[i * DIM] * 8) * 9 + (size_t)(pts[i * DIM + 1] * 9);
            ck_assert_msg(!seen[cell]++, "seed %d: two of the first 72 points in cell %zu of 8 x 9",
                          (int)seed, cell);
        }
        rv_sampler_free(s);
    }
}
END_TEST

/* The plain Halton sequence in large bases b moves every coordinate as n / b for n < b: over
 * the first 256 points in 64 dimensions (bases up to 311), neighbouring coordinates then
 * correlate at nearly 1. Scrambled, they are as independent as random points (|r| about
 * 1/16 typically; 0.4 is six standard deviations). Also: the same seed gives the same points
 * through rv_lowdisc directly, and every coordinate depends on the seed. */
START_TEST(test_halton_scrambled)
{
    enum { DIM = 64, N = 256 };
    static double pts[N * DIM], other[DIM];
    rv_lowdisc q = {0}, q2 = {0};
    revl_allocator a;
    revl_allocator_init(&a);
    ck_assert_int_eq(rv_lowdisc_init(&q, DIM, 11, &a), REVL_OK);
    ck_assert_int_eq(rv_lowdisc_init(&q2, DIM, 12, &a), REVL_OK);
    ck_assert_uint_eq(q.base[DIM - 1], 311);
    for (size_t i = 0; i < N; i++)
        rv_lowdisc_point(&q, i, pts + i * DIM);
    for (size_t d = 0; d + 1 < DIM; d++) {
        double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
        for (size_t i = 0; i < N; i++) {
            mx += pts[i * DIM + d] / N;
            my += pts[i * DIM + d + 1] / N;
        }
        for (size_t i = 0; i < N; i++) {
            double x = pts[i * DIM + d] - mx, y = pts[i * DIM + d + 1] - my;
            sxx += x * x;
            syy += y * y;
            sxy += x * y;
        }
        double r = sxy / sqrt(sxx * syy);
        ck_assert_msg(fabs(r) < 0.4, "coordinates %zu and %zu correlate: r = %g", d, d + 1, r);
    }
    /* through the sampler: the same points */
    rv_sampler_config c = config(DIM, 11, 1000);
    rv_sampler *s = make(&c);
    double u[DIM];
    for (size_t i = 0; i < 20; i++) {
        ck_assert_int_eq(rv_sampler_propose(s, u), REVL_OK);
        ck_assert_mem_eq(u, pts + i * DIM, sizeof u);
        ck_assert_int_eq(rv_sampler_tell(s, u, 1), REVL_OK);
    }
    rv_lowdisc_point(&q2, 0, other);
    for (size_t d = 0; d < DIM; d++)
        ck_assert_msg(other[d] != pts[d], "coordinate %zu of point 0 ignores the seed", d);
    rv_sampler_free(s);
    rv_lowdisc_free(&q, &a);
    rv_lowdisc_free(&q2, &a);
}
END_TEST

/* ------------------------------------------------------------------ the Parzen densities */

/* integral over [0, 1] of exp(log density) by the midpoint rule on 200,000 cells: the error is
 * about h^2 / 24 |f'| (h = 5e-6, |f'| < 1e6 for kernels of width >= 0.01), below 1e-6 */
static void integral_1d(rv_sampler *s, double *good, double *bad)
{
    const size_t n = 200000;
    int rc = REVL_OK;
    *good = *bad = 0;
    for (size_t i = 0; i < n; i++) { /* asserts outside the loop: Check logs every one */
        double u = (i + 0.5) / n, lg, lb;
        rc |= rv_sampler_log_densities(s, &u, &lg, &lb);
        *good += exp(lg) / n;
        *bad += exp(lb) / n;
    }
    ck_assert_int_eq(rc, REVL_OK);
}

/* Both densities integrate to 1 (truncated kernels renormalised, weights summing to 1), also
 * with results on the faces of the cube and many at the same place (kernels at their narrowest
 * width: finite logs). */
START_TEST(test_densities_integrate_to_one)
{
    static const double x[] = {0.0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.31, 0.7, 1.0, 0.95, 0.5, 0.02,
                               0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3};
    rv_sampler_config c = config(1, 1, 1);
    c.good_fraction = 0.5;
    rv_sampler *s = make(&c);
    double good, bad;
    integral_1d(s, &good, &bad); /* nothing told: the prior */
    ck_assert_double_eq_tol(good, 1, 1e-9);
    ck_assert_double_eq_tol(bad, 1, 1e-9);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) {
        /* the good half: the results at 0.3 and the first ones */
        ck_assert_int_eq(rv_sampler_tell(s, &x[i], x[i] == 0.3 ? 0 : (double)i), REVL_OK);
        if (i == 0 || i == 5 || i + 1 == sizeof x / sizeof *x) {
            integral_1d(s, &good, &bad);
            ck_assert_msg(fabs(good - 1) < 1e-6 && fabs(bad - 1) < 1e-6,
                          "after %zu results: integral of l %.12f, of g %.12f", i + 1, good, bad);
        }
    }
    rv_sampler_free(s);

    /* two dimensions, a 1000 x 1000 midpoint grid: kernels of width >= 0.2 here (3 points),
     * error about h^2 / 24 |f''| < 1e-6 */
    c = config(2, 1, 1);
    c.good_fraction = 0.5;
    s = make(&c);
    static const double p[3][2] = {{0.2, 0.9}, {0.6, 0.1}, {0.95, 0.5}};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(rv_sampler_tell(s, p[i], i), REVL_OK);
    good = bad = 0;
    int rc = REVL_OK;
    const size_t n = 1000;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double u[2] = {(i + 0.5) / n, (j + 0.5) / n}, lg, lb;
            rc |= rv_sampler_log_densities(s, u, &lg, &lb);
            good += exp(lg) / (n * n);
            bad += exp(lb) / (n * n);
        }
    ck_assert_int_eq(rc, REVL_OK);
    ck_assert_msg(fabs(good - 1) < 1e-5 && fabs(bad - 1) < 1e-5, "2-D: l %.9f, g %.9f", good,
                  bad);
    rv_sampler_free(s);
}
END_TEST

/* log l(u) - log g(u) in one dimension */
static double log_ratio(rv_sampler *s, double u)
{
    double lg, lb;
    ck_assert_int_eq(rv_sampler_log_densities(s, &u, &lg, &lb), REVL_OK);
    return lg - lb;
}

/* a sampler told 19 results of |u - 0.3| at u = 0.05, 0.1, ..., 0.95 */
static rv_sampler *v_shaped(const rv_sampler_config *c)
{
    rv_sampler *s = make(c);
    for (int i = 1; i < 20; i++) {
        double u = i / 20.0;
        ck_assert_int_eq(rv_sampler_tell(s, &u, fabs(u - 0.3)), REVL_OK);
    }
    return s;
}

/* 1-D results around a minimum at 0.3: l is above g there and below it far away, and the
 * proposal lands near 0.3. */
START_TEST(test_good_results_in_l)
{
    rv_sampler_config c = config(1, 4, 5);
    c.good_fraction = 0.25;
    rv_sampler *s = v_shaped(&c);
    ck_assert_msg(log_ratio(s, 0.3) > 1, "at 0.3: log l / g = %g", log_ratio(s, 0.3));
    ck_assert_msg(log_ratio(s, 0.85) < -1, "at 0.85: log l / g = %g", log_ratio(s, 0.85));
    rv_sampler_free(s);
    for (uint64_t seed = 0; seed < 10; seed++) {
        c.seed = seed;
        s = v_shaped(&c);
        double u;
        ck_assert_int_eq(rv_sampler_propose(s, &u), REVL_OK);
        ck_assert_msg(fabs(u - 0.3) < 0.15, "seed %d: proposed %g", (int)seed, u);
        rv_sampler_free(s);
    }
}
END_TEST

/* Equal losses rank in the order told: with ten results of one loss and a good fraction of
 * 0.2, the first two are the good set. */
START_TEST(test_ties_go_to_the_earlier)
{
    rv_sampler_config c = config(1, 4, 1);
    c.good_fraction = 0.2;
    rv_sampler *s = make(&c);
    for (int i = 0; i < 10; i++) {
        double u = i < 2 ? 0.1 + 0.05 * i : 0.5 + 0.05 * i;
        ck_assert_int_eq(rv_sampler_tell(s, &u, 1.0), REVL_OK);
    }
    ck_assert_msg(log_ratio(s, 0.125) > 1, "at 0.125: log l / g = %g", log_ratio(s, 0.125));
    rv_sampler_free(s);
}
END_TEST

/* +inf (a diverged run) is never good: 18 of 20 results diverged over [0, 0.9), 2 finite near
 * 0.96; with a good fraction of 0.5 the good set is those 2 only, and proposals go there. With
 * every run diverged the search keeps to the Halton sequence (the prior, covered evenly). */
START_TEST(test_diverged_results)
{
    rv_sampler_config c = config(1, 8, 4);
    c.good_fraction = 0.5;
    for (uint64_t seed = 0; seed < 10; seed++) {
        c.seed = seed;
        rv_sampler *s = make(&c);
        for (int i = 0; i < 18; i++) {
            double u = 0.025 + 0.05 * i;
            ck_assert_int_eq(rv_sampler_tell(s, &u, INFINITY), REVL_OK);
        }
        double u = 0.95;
        ck_assert_int_eq(rv_sampler_tell(s, &u, 2.0), REVL_OK);
        u = 0.97;
        ck_assert_int_eq(rv_sampler_tell(s, &u, 1.0), REVL_OK);
        ck_assert_msg(log_ratio(s, 0.2) < 0, "at 0.2: log l / g = %g", log_ratio(s, 0.2));
        ck_assert_msg(log_ratio(s, 0.96) > 1, "at 0.96: log l / g = %g", log_ratio(s, 0.96));
        ck_assert_int_eq(rv_sampler_propose(s, &u), REVL_OK);
        ck_assert_msg(u > 0.85, "seed %d: proposed %g among the diverged runs", (int)seed, u);
        rv_sampler_free(s);
    }

    enum { DIM = 3 };
    rv_lowdisc q = {0};
    revl_allocator a;
    revl_allocator_init(&a);
    ck_assert_int_eq(rv_lowdisc_init(&q, DIM, 5, &a), REVL_OK);
    c = config(DIM, 5, 4);
    rv_sampler *s = make(&c);
    for (size_t i = 0; i < 30; i++) {
        double u[DIM], h[DIM];
        ck_assert_int_eq(rv_sampler_propose(s, u), REVL_OK);
        rv_lowdisc_point(&q, i, h);
        ck_assert_mem_eq(u, h, sizeof u);
        ck_assert_int_eq(rv_sampler_tell(s, u, INFINITY), REVL_OK);
    }
    rv_lowdisc_free(&q, &a);
    rv_sampler_free(s);
}
END_TEST

/* ------------------------------------------------------------------ the search */

/* 60 evaluations of the 4-D bowl (10 Halton points, then TPE), 10 seeds: the mean best value
 * is below 0.4 times that of 60 Halton points and of 60 independent uniform points (measured:
 * TPE 0.011, Halton 0.040, uniform 0.046; with l and g swapped TPE reaches 0.10). */
START_TEST(test_tpe_beats_space_filling)
{
    enum { DIM = 4, N = 60, SEEDS = 10 };
    double tpe = 0, halton = 0, uniform = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        rv_sampler_config c = config(DIM, seed, 10);
        rv_sampler *s = make(&c);
        tpe += search(s, DIM, N, NULL) / SEEDS;
        rv_sampler_free(s);
        c.n_initial = N;
        s = make(&c);
        halton += search(s, DIM, N, NULL) / SEEDS;
        rv_sampler_free(s);
        uint64_t st = seed * 7 + 3;
        double best = INFINITY, u[DIM];
        for (int i = 0; i < N; i++) {
            for (int d = 0; d < DIM; d++)
                u[d] = rv_rand_uniform(&st);
            best = fmin(best, bowl(u, DIM));
        }
        uniform += best / SEEDS;
    }
    ck_assert_msg(tpe < 0.4 * halton && tpe < 0.4 * uniform,
                  "mean best: TPE %g, Halton %g, uniform %g", tpe, halton, uniform);
}
END_TEST

/* In 64 dimensions proposals stay finite and inside the cube and improve on the start. */
START_TEST(test_many_dimensions)
{
    enum { DIM = 64 };
    rv_sampler_config c = config(DIM, 2, 8);
    rv_sampler *s = make(&c);
    double first = search(s, DIM, 8, NULL), later = search(s, DIM, 40, NULL);
    ck_assert_msg(later < first, "best of 8 Halton points %g, of 40 TPE proposals %g", first,
                  later);
    rv_sampler_free(s);
}
END_TEST

/* ------------------------------------------------------------------ memory */

/* Fail each allocation in turn along create and 40 rounds of propose and tell (three growths):
 * create fails cleanly; a tell that fails leaves the count and the next proposal as they were
 * and works when retried; propose never allocates; nothing leaks. */
START_TEST(test_nomem_sweep)
{
    enum { DIM = 3, N = 40 };
    double ref[N * DIM];
    rv_sampler_config c = config(DIM, 6, 5);
    rv_sampler *r = make(&c);
    search(r, DIM, N, ref);
    rv_sampler_free(r);
    int failures = 0;
    for (long k = 0;; k++) {
        failing f = {.fail_at = k};
        revl_allocator a = failing_allocator(&f);
        rv_sampler *s = NULL;
        char err[RV_ERRLEN] = "";
        int rc = rv_sampler_create(&s, &c, &a, err);
        if (rc != REVL_OK) {
            ck_assert_int_eq(rc, REVL_ERR_NOMEM);
            ck_assert_ptr_null(s);
            expect_msg(err, "no memory");
            ck_assert_int_eq(f.live, 0);
            failures++;
            continue;
        }
        for (size_t i = 0; i < N; i++) {
            double u[DIM], v[DIM];
            long calls = f.calls;
            ck_assert_int_eq(rv_sampler_propose(s, u), REVL_OK);
            ck_assert_int_eq(f.calls, calls);
            ck_assert_mem_eq(u, ref + i * DIM, sizeof u);
            rc = rv_sampler_tell(s, u, bowl(u, DIM));
            if (rc != REVL_OK) {
                ck_assert_int_eq(rc, REVL_ERR_NOMEM);
                expect_msg(rv_sampler_last_error(s), "no memory");
                ck_assert_uint_eq(rv_sampler_n_told(s), i);
                ck_assert_int_eq(rv_sampler_propose(s, v), REVL_OK);
                ck_assert_mem_eq(u, v, sizeof u);
                failures++;
                ck_assert_int_eq(rv_sampler_tell(s, u, bowl(u, DIM)), REVL_OK);
            }
        }
        rv_sampler_free(s);
        ck_assert_msg(f.live == 0, "fail_at %ld: %ld blocks leaked", k, f.live);
        if (f.calls <= k) /* no allocation failed: every one has been tried */
            break;
    }
    ck_assert_int_ge(failures, 6); /* create's three, three growths */
}
END_TEST

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_bad_results_refused);
    tcase_add_test(tc, test_told_points_kept);
    tcase_add_test(tc, test_deterministic_per_seed);
    tcase_add_test(tc, test_propose_twice);
    tcase_add_test(tc, test_reset_and_resume);
    tcase_add_test(tc, test_halton_fills_cells);
    tcase_add_test(tc, test_halton_scrambled);
    tcase_add_test(tc, test_densities_integrate_to_one);
    tcase_add_test(tc, test_good_results_in_l);
    tcase_add_test(tc, test_ties_go_to_the_earlier);
    tcase_add_test(tc, test_diverged_results);
    tcase_add_test(tc, test_tpe_beats_space_filling);
    tcase_add_test(tc, test_many_dimensions);
    tcase_add_test(tc, test_nomem_sweep);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sampler_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
