/* check_rms_dir.c: RMSprop's state updates in lanes (rms_dir.h's rv_rms_run, as rmsprop.c uses
 * them) give the same bits as the scalar functions parameter by parameter (the plain version,
 * rv_adam_steps_narrow set): the same stop, the same s, b and weight steps, forward and reverse,
 * on random states and gradients of every size and on adversarial ones (NaN and infinite
 * gradients, a decay that overflows, gradients below s's resolution, the legacy rounding of small
 * negative terms, states at the bound, a singular s, eps tiny and zero, lambda zero and not), at
 * every position of a group of eight; and the lanes do take the common parameters; and the same
 * for the reverse pass's direction run (rv_rms_back_run). Says loudly
 * when the lanes cannot run here. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "optim/adam_dir.h"
#include "optim/rms_dir.h"

#define N 1003

static uint64_t rng = 777;
static double gr[N], wd[N], y[2][N];
static rv_wide s[2][N], b[2][N];

/* A random rv_wide of magnitude below 2^(bits) (bits <= 126), either sign when signed_ok. */
static rv_wide rand_wide(unsigned bits, int signed_ok)
{
    rv_uwide x = ((rv_uwide)rv_rand_u64(&rng) << 64) | rv_rand_u64(&rng);
    x >>= 128 - bits;
    rv_wide v = (rv_wide)x;
    return signed_ok && (rv_rand_u64(&rng) & 1) ? -v : v;
}

/* A value of random sign and magnitude 2^e, e in [lo, hi). */
static double rand_grad(int lo, int hi)
{
    double x = ldexp(1.0 + (double)(rv_rand_u64(&rng) >> 11) * 0x1p-53,
                     lo + (int)(rv_rand_u64(&rng) % (uint64_t)(hi - lo)));
    return rv_rand_u64(&rng) & 1 ? -x : x;
}

static long n_runs, n_stops, n_lanes, n_scalar;

/* rv_rms_run both ways on [0, n) (version 1 the plain one, version 0 the lanes), from the same
 * s[0], b[0]; 1 when the stop, s, b or the steps before the stop differ. Also counts the
 * parameters the lanes take, with rv_rms_run's own loop. */
static long compare(const rv_rms_dir *c, int sub, size_t n)
{
    static rv_wide s3[N], b3[N];
    static double y3[N];
    memcpy(s[1], s[0], sizeof s[0]);
    memcpy(b[1], b[0], sizeof b[0]);
    memcpy(s3, s[0], sizeof s3);
    memcpy(b3, b[0], sizeof b3);
    memset(y[0], 0x55, sizeof y[0]);
    memset(y[1], 0x55, sizeof y[1]);
    size_t stop[2];
    for (int v = 1; v >= 0; v--) {
        rv_adam_steps_narrow = v;
        stop[v] = rv_rms_run(c, sub, n, gr, wd, s[v], b[v], sub ? NULL : y[v]);
    }
    /* the lanes' share, on a copy */
    for (size_t j = 0;; j++) {
        size_t k = rv_rms_sums(c, sub, n - j, gr + j, wd + j, s3 + j, b3 + j, y3 + j);
        n_lanes += (long)k;
        j += k;
        if (j >= stop[1])
            break;
        n_scalar++;
    }
    n_runs++;
    n_stops += stop[0] < n;
    return stop[0] != stop[1] || memcmp(s[0], s[1], sizeof s[0]) != 0 ||
           memcmp(b[0], b[1], sizeof b[0]) != 0 ||
           (!sub && memcmp(y[0], y[1], stop[0] * sizeof y[0][0]) != 0);
}

static void lanes_banner(void)
{
    if (!rv_adam_steps_vector())
        printf("check_rms_dir: *** NO AVX-512F/DQ ON THIS CPU: THE LANES CANNOT RUN; ONLY THE "
               "PLAIN PATH WAS COMPARED WITH ITSELF ***\n");
}

/* The constants of a step: beta2 on its 2^-24 grid, eps, lambda, alpha, 2^frac_bits. */
static rv_rms_dir make_dir(double n2, double eps, double lambda, double alpha, double w_scale)
{
    return (rv_rms_dir){ldexp(0x1p24 - n2, 76), eps, lambda, alpha, w_scale};
}

START_TEST(test_random)
{
    lanes_banner();
    const double n2s[] = {16609444 /* 0.99 */, 16760439 /* 0.999 */, 1, 16777215};
    const double epss[] = {1e-8, 0x1p-1074, 0.0, 1e-300, 1.0};
    const double lambdas[] = {0.0, 1e-2, -3.0, 0x1p-1074};
    long bad = 0;
    for (int rep = 0; rep < 2000; rep++) {
        int sub = rep & 1;
        rv_rms_dir c = make_dir(n2s[rep % 4], epss[(rep / 4) % 5], lambdas[(rep / 20) % 4],
                                ldexp(1e-3, (int)(rv_rand_u64(&rng) % 40) - 20),
                                ldexp(1.0, 1 + (int)(rv_rand_u64(&rng) % 62)));
        int ge = (int)(rv_rand_u64(&rng) % 60); /* gradients around 2^-(ge) */
        unsigned sbits = 1 + (unsigned)(rv_rand_u64(&rng) % 125);
        for (size_t i = 0; i < N; i++) {
            gr[i] = rand_grad(-ge - 10, -ge + 10);
            wd[i] = rand_grad(-20, 20);
            s[0][i] = rand_wide(1 + (unsigned)(rv_rand_u64(&rng) % sbits), 0);
            b[0][i] = rand_wide(1 + (unsigned)(rv_rand_u64(&rng) % 125), 1);
        }
        bad += compare(&c, sub, N - (size_t)(rv_rand_u64(&rng) % 16));
    }
    printf("check_rms_dir: random states and gradients (all sizes, four betas, eps in {1e-8, "
           "2^-1074, 0, 1e-300, 1}, lambda in {0, 1e-2, -3, 2^-1074}): %ld runs, %ld stopped "
           "early, %ld parameters in lanes, %ld scalar between them, %ld differ\n",
           n_runs, n_stops, n_lanes, n_scalar, bad);
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_adversarial)
{
    lanes_banner();
    const double specials[] = {NAN,       INFINITY,   -INFINITY, 0.0,      -0.0,    0x1p-1074,
                               -0x1p-1074, 0x1p-48,   -0x1p-48,  -0x1p-60, 1e300,   -1e300,
                               0x1p60,     -0x1p40,   DBL_MAX,   -DBL_MIN, 1e-15,   -3e-15};
    const size_t n_spec = sizeof specials / sizeof specials[0];
    const rv_wide lim = (rv_wide)1 << 126;
    long bad = 0, runs0 = n_runs, stops0 = n_stops, lanes0 = n_lanes, scalar0 = n_scalar;
    for (int rep = 0; rep < 4000; rep++) {
        int sub = rep & 1, kind = (rep / 2) % 8;
        double lambda = rep % 3 == 0 ? 0.0 : rep % 3 == 1 ? 0.5 : 1e300;
        double eps = rep % 5 == 0 ? 0.0 : rep % 5 == 1 ? 0x1p-1074 : 1e-8;
        /* alpha huge too: alpha 2^frac_bits overflows, and b = 0 must still step 0 */
        rv_rms_dir c = make_dir(16609444, eps, lambda, rep % 7 == 0 ? 1e300 : 1e-3, 0x1p40);
        for (size_t i = 0; i < N; i++) {
            gr[i] = rand_grad(-30, 4);
            wd[i] = rand_grad(-10, 4);
            s[0][i] = rand_wide(100, 0);
            b[0][i] = rand_wide(110, 1);
        }
        /* one uncommon parameter at a position that walks through groups of eight, or many */
        size_t at = (size_t)rep % 300, k = (size_t)(rv_rand_u64(&rng) % 8);
        switch (kind) {
        case 0: /* special gradients and weights (the decay overflows at lambda = 1e300) */
            gr[at] = specials[(size_t)rep % n_spec];
            if (k == 0)
                wd[at] = specials[(size_t)(rep / 7) % n_spec];
            break;
        case 1: /* tiny gradients: below s's resolution (gs raised to one unit), gb's legacy
                 * rounding (negative and above -2^64), zero terms */
            for (size_t i = 0; i < N; i++)
                gr[i] = rand_grad(-1074, -25);
            break;
        case 2: /* s or b at the bound: the sum leaves the range or stays in */
            if (k & 1)
                s[0][at] = k & 2 ? lim - 1 - (rv_wide)(rv_rand_u64(&rng) % 4) : 0;
            else
                b[0][at] = (k & 2 ? lim - 1 : -lim + 1);
            gr[at] = (k & 4 ? 1 : -1) * ldexp(1.0, (int)(rv_rand_u64(&rng) % 40));
            break;
        case 3: /* a singular new s (s + gs = 0 with gi != 0), or s = 0 with g = 0 */
        {
            rv_wide gs = 0;
            double gi = rv_coupled_grad(gr[at], lambda, wd[at]);
            rv_rms_s_term(&c, gi, &gs);
            s[0][at] = sub ? 0 : -gs;
            if (k == 0)
                gr[at] = 0.0, wd[at] = 0.0;
            break;
        }
        case 4: /* many uncommon ones */
            for (size_t i = 0; i < N; i++)
                if (rv_rand_u64(&rng) % 16 == 0)
                    gr[i] = specials[rv_rand_u64(&rng) % n_spec];
            break;
        case 5: /* huge gradients: terms near and past the bound */
            for (size_t i = 0; i < N; i++)
                gr[i] = rand_grad(0, 14);
            break;
        case 6: /* small states, so gb is near its bound */
            for (size_t i = 0; i < N; i++) {
                s[0][i] = rand_wide(1 + (unsigned)(rv_rand_u64(&rng) % 20), 0);
                gr[i] = rand_grad(-10, 14);
            }
            break;
        default: /* zero gradients, weights and momentum buffers */
            for (size_t i = 0; i < N; i++)
                if (rv_rand_u64(&rng) % 2)
                    gr[i] = rv_rand_u64(&rng) % 2 ? 0.0 : -0.0, wd[i] = 0.0, b[0][i] = 0;
            break;
        }
        bad += compare(&c, sub, N - (size_t)(rv_rand_u64(&rng) % 300));
    }
    printf("check_rms_dir: adversarial inputs (non-finite gradients and weights, an overflowing "
           "decay, tiny and legacy-rounded terms, states at the bound, a singular s, eps 0 and "
           "2^-1074, alpha 1e300 with b = 0): %ld runs, %ld stopped early, %ld parameters in "
           "lanes, %ld scalar between them, "
           "%ld differ\n",
           n_runs - runs0, n_stops - stops0, n_lanes - lanes0, n_scalar - scalar0, bad);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_gt(n_stops - stops0, 500); /* the failures are exercised */
}
END_TEST

/* Common parameters only: all in the lanes, nothing left to the scalar functions; every length
 * up to 40 leaves its remainder after the groups of eight to them. */
START_TEST(test_lanes_take_common)
{
    lanes_banner();
    long bad = 0, lanes0 = n_lanes, scalar0 = n_scalar;
    for (int rep = 0; rep < 200; rep++) {
        rv_rms_dir c = make_dir(16609444, 1e-8, rep % 2 ? 1e-2 : 0.0, 1e-3, 0x1p40);
        for (size_t i = 0; i < N; i++) {
            gr[i] = rand_grad(-20, 2);
            wd[i] = rand_grad(-5, 2);
            s[0][i] = rand_wide(80, 0);
            b[0][i] = rand_wide(100, 1); /* |gb| about 2^90: never the legacy rounding */
        }
        /* the reverse after the forward: back to the start */
        static rv_wide s0[N], b0[N];
        memcpy(s0, s[0], sizeof s0);
        memcpy(b0, b[0], sizeof b0);
        size_t n = N - 3 - (size_t)(rv_rand_u64(&rng) % 8) * 8; /* N - 3 is 1000 */
        bad += compare(&c, 0, n);
        bad += compare(&c, 1, n);
        bad += memcmp(s[0], s0, sizeof s0) != 0 || memcmp(b[0], b0, sizeof b0) != 0;
    }
    long lanes = n_lanes - lanes0, scalar = n_scalar - scalar0;
    rv_rms_dir c = make_dir(16609444, 1e-8, 0.0, 1e-3, 0x1p40);
    for (size_t len = 0; len <= 40; len++)
        bad += compare(&c, (int)(len & 1), len);
    printf("check_rms_dir: common parameters: %ld in lanes, %ld scalar, %ld differ; lanes %s\n",
           lanes, scalar, bad, rv_rms_lanes() ? "AVX-512 (8 lanes)" : "NOT RUN (plain only)");
    ck_assert_int_eq(bad, 0);
    if (rv_adam_steps_vector()) {
        ck_assert_int_eq(scalar, 0);
        ck_assert_int_gt(lanes, 200 * 2 * 900);
    }
}
END_TEST

/* The reverse pass's direction run (rv_rms_back_run): lanes against the plain loop, on random
 * and edge inputs (s = 0, gi = 0, eps 0 and tiny, lambda 0 and not, non-finite adjoints). */
#define RUN 256
static double db_[RUN], ds_[2][RUN], u_[2][RUN], dw_[2][RUN], te_[2][RUN], td_[2][RUN];

/* The same bits, except that any NaN equals any NaN: which operand's payload and sign a NaN
 * result carries is not fixed by IEEE 754, and compilers may swap the operands of + and *
 * (clang does here); the direction is refused downstream whenever it is not finite. */
static int same_bits(const double *p, const double *q, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&p[i], &q[i], sizeof p[i]) != 0 && !(isnan(p[i]) && isnan(q[i])))
            return 0;
    return 1;
}

START_TEST(test_back_same_bits)
{
    lanes_banner();
    const double specials[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 0x1p-1074, 1e300, -1e-300};
    const double epss[] = {1e-8, 0x1p-1074, 0.0, 1e-300, 1.0};
    long bad = 0;
    for (int rep = 0; rep < 2000; rep++) {
        double lambda = rep % 3 == 0 ? 0.0 : rep % 3 == 1 ? 1e-2 : -7.0;
        rv_rms_dir c = make_dir(16609444, epss[rep % 5], lambda, 1e-3, 0x1p40);
        for (size_t i = 0; i < RUN; i++) {
            gr[i] = rand_grad(-80, 20);
            wd[i] = rand_grad(-30, 10);
            s[0][i] = rand_wide(1 + (unsigned)(rv_rand_u64(&rng) % 126), 0);
            db_[i] = rand_grad(-100, 100);
            ds_[0][i] = ds_[1][i] = rand_grad(-100, 100);
            dw_[0][i] = dw_[1][i] = rv_rand_u64(&rng) % 4 ? rand_grad(-100, 100) : -0.0;
        }
        if (rep % 2) /* zeros and specials at positions walking through the run */
            for (int k = 0; k < 6; k++) {
                size_t at = (size_t)(rep + 37 * k) % RUN;
                double v = specials[(size_t)(rep / 2 + k) % 8];
                if (k % 3 == 0)
                    s[0][at] = 0, gr[at] = k % 2 ? 0.0 : v;
                else if (k % 3 == 1)
                    db_[at] = v;
                else
                    ds_[0][at] = ds_[1][at] = v;
            }
        size_t n = RUN - (size_t)(rv_rand_u64(&rng) % 20);
        for (int v = 0; v < 2; v++) {
            rv_adam_steps_narrow = v;
            memset(u_[v], 0x55, sizeof u_[v]);
            const rv_rms_back r = {0.01, gr, wd, s[0], db_, ds_[v], u_[v], dw_[v]};
            rv_rms_back_run(&c, &r, n, te_[v], td_[v]);
        }
        bad += !same_bits(ds_[0], ds_[1], RUN) || !same_bits(u_[0], u_[1], RUN) ||
               !same_bits(dw_[0], dw_[1], RUN) || !same_bits(te_[0], te_[1], n) ||
               !same_bits(td_[0], td_[1], n);
    }
    rv_adam_steps_narrow = 0;
    printf("check_rms_dir: the direction run (ds, u, dw and the eps and decay terms) on 2000 runs "
           "(s = 0, gi = 0, eps 0 and 2^-1074, lambda 0 and not, non-finite adjoints): %ld differ; "
           "lanes %s\n",
           bad, rv_rms_lanes() ? "AVX-512 (8 lanes)" : "NOT RUN (plain only)");
    ck_assert_int_eq(bad, 0);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("rms_dir");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_random);
    tcase_add_test(tc, test_adversarial);
    tcase_add_test(tc, test_lanes_take_common);
    tcase_add_test(tc, test_back_same_bits);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
