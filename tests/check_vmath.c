/* check_vmath.c: the vectorised exp, tanh and logistic (base/vmath.h) against long-double libm
 * on dense grids over their whole range (so that a wrong coefficient, a wrong split of ln 2 or
 * a wrong reduction shows as errors of many ulp), their special values, and the promise that a
 * value's bits depend only on the value: not on its lane, the array length, the call or the
 * vector width (two lanes, four where the processor has AVX2, eight where it has AVX-512). The
 * loop tests run at most 8, 4 and 2 lanes (lane_caps). Not run under valgrind (make valgrind):
 * valgrind computes long double in double precision, so the reference would be off there. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vmath.h"

/* The error of got against the true value ref, in units of the last place of ref as a double
 * (subnormals: of the smallest subnormal). */
static double ulp_error(double got, long double ref)
{
    double r = (double)ref;
    if (isinf(r) || isinf(got))
        return got == r ? 0 : INFINITY;
    int e = fabs(r) < DBL_MIN ? -1074 : ilogb(r) - 52;
    return (double)(fabsl((long double)got - ref) / ldexpl(1.0L, e));
}

typedef void (*vfun)(double *, size_t);
typedef long double (*ref_fun)(long double);

static long double ref_exp(long double x) { return expl(x); }
static long double ref_tanh(long double x) { return tanhl(x); }
static long double ref_logistic(long double x) { return 1.0L / (1.0L + expl(-x)); }

/* the loop tests' widths: at most 8 lanes (AVX-512), 4 (AVX2), 2 */
static const int lane_caps[3] = {8, 4, 2};

/* largest error over n points evenly spaced on [lo, hi] and n log-spaced magnitudes in
 * [tiny, 1] (both signs when both_signs); vf runs on the whole array at once */
static double max_error(vfun vf, ref_fun rf, double lo, double hi, double tiny, int both_signs,
                        size_t n, double *worst_x)
{
    size_t total = 2 * n;
    double *x = malloc(total * sizeof *x), *y = malloc(total * sizeof *y);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (double)i / (double)(n - 1);
    for (size_t i = 0; i < n; i++) {
        double mag = exp(log(tiny) * (1.0 - (double)i / (double)(n - 1)));
        x[n + i] = both_signs && (i & 1) ? -mag : mag;
    }
    memcpy(y, x, total * sizeof *x);
    vf(y, total);
    double worst = 0;
    for (size_t i = 0; i < total; i++) {
        double err = ulp_error(y[i], rf(x[i]));
        if (!(err <= worst)) {
            worst = err;
            *worst_x = x[i];
        }
    }
    free(x);
    free(y);
    return worst;
}

/* Points where the reduction's k changes: x = (k + 1/2) ln 2, where |r| is largest. */
static double max_error_at_half_steps(vfun vf, ref_fun rf, double scale, int kmin, int kmax)
{
    double worst = 0;
    for (int k = kmin; k <= kmax; k++)
        for (int d = -2; d <= 2; d++) {
            double x = (k + 0.5) * 0.69314718055994530942 / scale * (1 + d * 1e-13);
            double y = x;
            vf(&y, 1);
            double err = ulp_error(y, rf(x));
            worst = err > worst ? err : worst;
        }
    return worst;
}

START_TEST(test_exp_accuracy)
{
    rv_vmath_max_lanes(lane_caps[_i]);
    double wx = 0;
    double err = max_error(rv_vexp, ref_exp, -708.3, 709.7, 1e-300, 1, 400000, &wx);
    ck_assert_msg(err <= 1.0, "exp: %.3f ulp at %.17g", err, wx);
    double half = max_error_at_half_steps(rv_vexp, ref_exp, 1.0, -1021, 1022);
    ck_assert_msg(half <= 1.0, "exp at (k + 1/2) ln 2: %.3f ulp", half);
    /* subnormal results: within one smallest subnormal */
    err = max_error(rv_vexp, ref_exp, -745.0, -708.4, 1, 0, 20000, &wx);
    ck_assert_msg(err <= 1.0, "exp subnormal: %.3f units at %.17g", err, wx);
}
END_TEST

START_TEST(test_tanh_accuracy)
{
    rv_vmath_max_lanes(lane_caps[_i]);
    double wx = 0;
    double err = max_error(rv_vtanh, ref_tanh, -25, 25, 1e-300, 1, 400000, &wx);
    ck_assert_msg(err <= 2.5, "tanh: %.3f ulp at %.17g", err, wx);
    err = max_error(rv_vtanh, ref_tanh, -1.5, 1.5, 1e-12, 1, 400000, &wx);
    ck_assert_msg(err <= 2.5, "tanh near 0: %.3f ulp at %.17g", err, wx);
    /* tanh reduces 2|x|: its steps sit at (k + 1/2) ln 2 / 2 */
    double half = max_error_at_half_steps(rv_vtanh, ref_tanh, 2.0, 0, 57);
    ck_assert_msg(half <= 2.5, "tanh at reduction steps: %.3f ulp", half);
}
END_TEST

START_TEST(test_logistic_accuracy)
{
    rv_vmath_max_lanes(lane_caps[_i]);
    double wx = 0;
    double err = max_error(rv_vlogistic, ref_logistic, -708, 40, 1e-300, 1, 400000, &wx);
    ck_assert_msg(err <= 2.5, "logistic: %.3f ulp at %.17g", err, wx);
    err = max_error(rv_vlogistic, ref_logistic, -745, -708, 1, 0, 20000, &wx);
    ck_assert_msg(err <= 2.0, "logistic subnormal: %.3f units at %.17g", err, wx);
}
END_TEST

START_TEST(test_special_values)
{
    rv_vmath_max_lanes(lane_caps[_i]);
    double e[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 710, -746, 1e300, -1e300, 5e-324};
    double t[10], l[10];
    size_t n = sizeof e / sizeof *e;
    memcpy(t, e, sizeof e);
    memcpy(l, e, sizeof e);
    rv_vexp(e, n);
    rv_vtanh(t, n);
    rv_vlogistic(l, n);
    double want_e[] = {1, 1, INFINITY, 0, NAN, INFINITY, 0, INFINITY, 0, 1};
    double want_t[] = {0, -0.0, 1, -1, NAN, 1, -1, 1, -1, 5e-324};
    double want_l[] = {0.5, 0.5, 1, 0, NAN, 1, 0, 1, 0, 0.5};
    for (size_t i = 0; i < n; i++) {
        if (isnan(want_e[i])) {
            ck_assert(isnan(e[i]) && isnan(t[i]) && isnan(l[i]));
            continue;
        }
        ck_assert_msg(e[i] == want_e[i], "exp case %zu: %g", i, e[i]);
        ck_assert_msg(t[i] == want_t[i] && signbit(t[i]) == signbit(want_t[i]),
                      "tanh case %zu: %g", i, t[i]);
        ck_assert_msg(l[i] == want_l[i], "logistic case %zu: %g", i, l[i]);
    }
}
END_TEST

/* Each value alone, in bulk at even and odd positions, and in a second call: the same bits. */
START_TEST(test_same_bits_everywhere)
{
    rv_vmath_max_lanes(lane_caps[_i]);
    vfun fs[3] = {rv_vexp, rv_vtanh, rv_vlogistic};
    enum { N = 101 };
    uint64_t s = 12345;
    double x[N + 1];
    for (size_t i = 0; i <= N; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        x[i] = ((double)(s >> 11) * 0x1p-53 - 0.5) * 40;
    }
    for (int f = 0; f < 3; f++) {
        double bulk[N + 1], shifted[N + 1], again[N + 1];
        memcpy(bulk, x, sizeof x);
        memcpy(shifted, x, sizeof x);
        fs[f](bulk, N);
        fs[f](shifted + 1, N); /* x[i] now in the other lane */
        memcpy(again, x, sizeof x);
        fs[f](again, N);
        for (size_t i = 0; i < N; i++) {
            double alone = x[i];
            fs[f](&alone, 1);
            ck_assert_mem_eq(&alone, &bulk[i], sizeof alone);
            ck_assert_mem_eq(&again[i], &bulk[i], sizeof alone);
        }
        for (size_t i = 1; i <= N; i++) {
            double alone = x[i];
            fs[f](&alone, 1);
            ck_assert_mem_eq(&alone, &shifted[i], sizeof alone);
        }
        ck_assert_mem_eq(&bulk[N], &x[N], sizeof *x); /* past the end untouched */
    }
}
END_TEST

/* The widths give the same bits: each wider code the processor has (eight lanes with AVX-512,
 * four with AVX2) against the two-lane code, over every kind of input (a width the processor
 * does not have is the next narrower one, and the test says so). */
START_TEST(test_widths_same_bits)
{
    int cap = lane_caps[_i];
    rv_vmath_max_lanes(cap);
    int lanes = rv_vmath_lanes();
    if (lanes != cap)
        fprintf(stderr, "check_vmath: %d lanes asked for, %d here: compared with two\n", cap,
                lanes);
    /* the widest code runs where the processor has it, not a narrower one */
    if (cap == 8 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        ck_assert_int_eq(lanes, 8);
    if (cap == 4 && __builtin_cpu_supports("avx2"))
        ck_assert_int_eq(lanes, 4);
    rv_vmath_max_lanes(2); /* and the cap is kept: the reference below is the two-lane code */
    ck_assert_int_eq(rv_vmath_lanes(), 2);
    vfun fs[3] = {rv_vexp, rv_vtanh, rv_vlogistic};
    enum { N = 200003 };
    double *x = malloc(N * sizeof *x), *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    uint64_t s = 99;
    for (size_t i = 0; i < N; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        uint64_t bits = s ^ (s >> 29);
        double r;
        memcpy(&r, &bits, sizeof r); /* any double: NaNs, infinities, subnormals included */
        x[i] = i % 3 == 0 ? r : i % 3 == 1 ? -800 + 1600 * (double)(s >> 11) * 0x1p-53
                                           : -30 + 60 * (double)(s >> 11) * 0x1p-53;
    }
    for (int f = 0; f < 3; f++) {
        memcpy(a, x, N * sizeof *x);
        memcpy(b, x, N * sizeof *x);
        rv_vmath_max_lanes(cap);
        fs[f](a, N);
        rv_vmath_max_lanes(2);
        fs[f](b, N);
        for (size_t i = 0; i < N; i++)
            ck_assert_msg(memcmp(&a[i], &b[i], sizeof *a) == 0 || (isnan(a[i]) && isnan(b[i])),
                          "function %d at %.17g: %.17g on %d lanes, %.17g on 2", f, x[i], a[i],
                          lanes, b[i]);
    }
    rv_vmath_max_lanes(0);
    free(x);
    free(a);
    free(b);
}
END_TEST

/* The slopes, ReLU, the axpy and the affine direction at every width are the scalar expressions of vmath.h bit for
 * bit (NaN for NaN), with a tail, with out = d (or x = y), and nothing past the end written. */
static int same_or_nan(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

START_TEST(test_slopes_same_bits)
{
    rv_vmath_max_lanes(lane_caps[_i]);
    enum { N = 1003, K = 4 };
    double *in[K], out[N + 1], ref[N];
    uint64_t s = 7;
    for (int k = 0; k < K; k++) {
        in[k] = malloc(N * sizeof *in[k]);
        for (size_t i = 0; i < N; i++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            double u = (double)(s >> 11) * 0x1p-53;
            /* mostly activations' values, some of every kind of double */
            in[k][i] = i % 17 == 0 ? (double[]){0.0, -0.0, NAN, INFINITY, -INFINITY}[i % 5]
                                   : k == 0 ? 2 * u - 1 : 8 * u - 4;
        }
    }
    const double *h = in[0], *d = in[1], *dz = in[1], *rz = in[2], *rd0 = in[3];
    const double a = 0.3710471;
    /* 6: ReLU itself, in place; 7: y + a x; 8: the affine direction a + b g (a: out) */
    for (int f = 0; f < 9; f++) {
        for (int alias = 0; alias < 2; alias++) {
            /* out starts as y0; the slopes' d and the sums' x are in[1], or out itself when
             * alias (for the slopes, out then starts as d: the same values) */
            const double *y0 = f < 3 || f == 6 ? d : rd0, *x = alias ? y0 : d;
            for (size_t i = 0; i < N; i++) {
                double hi = h[i], rd = rd0[i];
                ref[i] = f == 0   ? d[i] * (1.0 - hi * hi)
                         : f == 1 ? d[i] * (hi * (1.0 - hi))
                         : f == 2 ? (hi > 0 ? d[i] : 0.0)
                         : f == 3 ? rd * (1.0 - hi * hi) - 2.0 * hi * dz[i] * rz[i]
                         : f == 4 ? rd * (hi * (1.0 - hi)) + (1.0 - 2.0 * hi) * dz[i] * rz[i]
                         : f == 5 ? (hi > 0 ? rd : 0.0)
                         : f == 6 ? (d[i] > 0 ? d[i] : 0.0)
                         : f == 7 ? rd + a * x[i]
                                  : rd + x[i] * rz[i];
            }
            out[N] = 12345.0;
            memcpy(out, y0, N * sizeof *out);
            const double *src = alias ? out : d;
            switch (f) {
            case 0: rv_vslope_tanh(h, src, out, N); break;
            case 1: rv_vslope_logistic(h, src, out, N); break;
            case 2: rv_vslope_relu(h, src, out, N); break;
            case 3: rv_vr_slope_tanh(h, dz, rz, out, N); break;
            case 4: rv_vr_slope_logistic(h, dz, rz, out, N); break;
            case 5: rv_vr_slope_relu(h, dz, rz, out, N); break;
            case 6: rv_vrelu(out, N); break;
            case 7: rv_vaxpy(out, a, src, N); break;
            default: rv_vaffine(out, out, src, rz, N); break;
            }
            for (size_t i = 0; i < N; i++)
                ck_assert_msg(same_or_nan(out[i], ref[i]),
                              "function %d (%d lanes, alias %d) at %zu: %.17g, scalar %.17g", f,
                              rv_vmath_lanes(), alias, i, out[i], ref[i]);
            ck_assert(out[N] == 12345.0);
        }
    }
    rv_vmath_max_lanes(0);
    for (int k = 0; k < K; k++)
        free(in[k]);
}
END_TEST

/* Column sums at every width: each row added in turn, bit for bit, for widths with and without
 * a tail of columns (the paper's 50 and 10), NaN and infinities included; nothing past n. */
START_TEST(test_column_sums_same_bits)
{
    rv_vmath_max_lanes(lane_caps[_i]);
    enum { ROWS = 37, MAXN = 53 };
    static double d[ROWS * MAXN];
    uint64_t s = 11;
    for (size_t i = 0; i < ROWS * MAXN; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        d[i] = i % 97 == 5 ? (i % 2 ? NAN : -INFINITY)
                           : ((double)(s >> 11) * 0x1p-53 - 0.5) * ldexp(1.0, (int)(s % 40));
    }
    size_t widths[] = {1, 7, 8, 10, 16, 50, 53};
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
        size_t n = widths[w];
        double out[MAXN + 1], ref[MAXN];
        for (size_t j = 0; j < n; j++)
            out[j] = ref[j] = 0.25 * (double)j - 3;
        out[n] = 12345.0;
        for (size_t r = 0; r < ROWS; r++)
            for (size_t j = 0; j < n; j++)
                ref[j] += d[r * n + j];
        rv_vcolumn_sums(d, ROWS, n, out);
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(same_or_nan(out[j], ref[j]), "%d lanes, n %zu, column %zu: %.17g, %.17g",
                          rv_vmath_lanes(), n, j, out[j], ref[j]);
        ck_assert(out[n] == 12345.0);
    }
    rv_vmath_max_lanes(0);
}
END_TEST

/* rv_vdot8 at every width: the eight partial sums of its definition (vmath.h), bit for bit, for
 * lengths with and without a tail, with products of both signs and of every size. */
START_TEST(test_dot8_same_bits)
{
    rv_vmath_max_lanes(lane_caps[_i]);
    enum { N = 1003 };
    static double a[N], b[N];
    uint64_t s = 5;
    for (size_t i = 0; i < N; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        /* mostly alike magnitudes, whose sums round differently in another order */
        a[i] = ((double)(s >> 11) * 0x1p-53 - 0.5) * (i % 50 ? 1.0 : ldexp(1.0, (int)(s % 30)));
        b[i] = i % 3 ? a[i] : -0.7 * a[(i * 7) % N];
    }
    size_t lens[] = {0, 1, 5, 7, 8, 9, 15, 16, 17, 250, N};
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
        size_t n = lens[l];
        double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (size_t i = 0; i < n; i++)
            p[i % 8] += a[i] * b[i]; /* the tail's into p[0], p[1], ... as well */
        double want = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        double got = rv_vdot8(a, b, n);
        ck_assert_msg(memcmp(&got, &want, sizeof got) == 0, "%d lanes, n %zu: %.17g, not %.17g",
                      rv_vmath_lanes(), n, got, want);
    }
    rv_vmath_max_lanes(0);
}
END_TEST

static Suite *vmath_suite(void)
{
    Suite *s = suite_create("vmath");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_exp_accuracy, 0, 3);
    tcase_add_loop_test(tc, test_tanh_accuracy, 0, 3);
    tcase_add_loop_test(tc, test_logistic_accuracy, 0, 3);
    tcase_add_loop_test(tc, test_special_values, 0, 3);
    tcase_add_loop_test(tc, test_same_bits_everywhere, 0, 3);
    tcase_add_loop_test(tc, test_widths_same_bits, 0, 2);
    tcase_add_loop_test(tc, test_slopes_same_bits, 0, 3);
    tcase_add_loop_test(tc, test_column_sums_same_bits, 0, 3);
    tcase_add_loop_test(tc, test_dot8_same_bits, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vmath_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
