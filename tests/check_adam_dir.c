/* check_adam_dir.c: Adam's weight steps (adam_dir.h) chosen for this processor give the same
 * bits as the plain loop, on random moments across their whole range and on edge inputs (zero
 * moments, s = 0, denormal and huge intermediates, tiny and zero eps, lengths that leave a
 * remainder after the groups of eight), and the same for the reverse pass's terms (u and its
 * partial derivatives). Says loudly when the vector path cannot run here. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "exact/fixed.h"
#include "optim/adam_dir.h"

#define N 1003

static uint64_t rng = 4242;
static rv_wide m[N], s[N];
static double y1[N], y2[N];

/* A random rv_wide of magnitude below 2^(bits) (bits <= 126), either sign when signed_ok. */
static rv_wide rand_wide(unsigned bits, int signed_ok)
{
    rv_uwide x = ((rv_uwide)rv_rand_u64(&rng) << 64) | rv_rand_u64(&rng);
    x >>= 128 - bits;
    rv_wide v = (rv_wide)x;
    return signed_ok && (rv_rand_u64(&rng) & 1) ? -v : v;
}

static rv_adam_terms t1, t2;

/* The reverse pass's terms (u and its derivatives), both versions, on m, s at [off, off + n). */
static long compare_terms(const rv_adam_dir *c, size_t off, size_t n)
{
    memset(&t1, 0x55, sizeof t1);
    memset(&t2, 0xaa, sizeof t2);
    double c1 = 0x1p-100 / c->m_scale, c2 = 0x1p-100 / c->s_scale;
    rv_adam_terms_plain(c, c1, c2, n, m + off, s + off, &t1);
    rv_adam_terms_run(c, c1, c2, n, m + off, s + off, &t2);
    long bad = 0;
    const double *a[] = {t1.u, t1.du_dm, t1.du_ds, t1.du_deps, t1.du_dc1, t1.du_dc2};
    const double *b[] = {t2.u, t2.du_dm, t2.du_ds, t2.du_deps, t2.du_dc1, t2.du_dc2};
    for (size_t k = 0; k < 6; k++)
        for (size_t i = 0; i < n; i++)
            bad += memcmp(&a[k][i], &b[k][i], sizeof a[k][i]) != 0;
    return bad;
}

static long n_terms;

/* Both versions' steps, and their terms run by run, on [0, n) of m, s; returns the number of
 * differing values. */
static long compare(const rv_adam_dir *c, size_t n)
{
    long bad_terms = 0;
    for (size_t off = 0; off < n; off += RV_ADAM_RUN) {
        size_t len = n - off < RV_ADAM_RUN ? n - off : RV_ADAM_RUN;
        bad_terms += compare_terms(c, off, len);
        n_terms += 6 * (long)len;
    }
    memset(y1, 0x55, sizeof y1);
    memset(y2, 0xaa, sizeof y2);
    rv_adam_steps_plain(c, n, m, s, y1);
    rv_adam_steps(c, n, m, s, y2);
    long bad = bad_terms;
    for (size_t i = 0; i < n; i++)
        bad += memcmp(&y1[i], &y2[i], sizeof y1[i]) != 0;
    return bad;
}

static long n_compared, n_special;

static void count(size_t n)
{
    n_compared += (long)n;
    for (size_t i = 0; i < n; i++)
        n_special += !isfinite(y1[i]) || (y1[i] != 0 && fabs(y1[i]) < 0x1p-1022) || y1[i] == 0;
}

START_TEST(test_same_bits_random)
{
    if (!rv_adam_steps_vector())
        printf("check_adam_dir: *** NO AVX-512F/DQ ON THIS CPU: THE VECTOR PATH CANNOT RUN; "
               "ONLY THE PLAIN PATH WAS COMPARED WITH ITSELF ***\n");
    long bad = 0;
    for (int rep = 0; rep < 400; rep++) {
        unsigned mb = 1 + (unsigned)(rv_rand_u64(&rng) % 126), sb = 1 + (unsigned)(rv_rand_u64(&rng) % 126);
        for (size_t i = 0; i < N; i++) {
            /* per element a random magnitude too, so one group of eight mixes binades */
            m[i] = rand_wide(1 + (unsigned)(rv_rand_u64(&rng) % mb), 1);
            s[i] = rand_wide(1 + (unsigned)(rv_rand_u64(&rng) % sb), 0);
        }
        double c1 = 1 - pow(0.9, 1 + rep % 50), c2 = 1 - pow(0.999, 1 + rep % 50);
        rv_adam_dir c = {0x1p-100 / c1, 0x1p-100 / c2, ldexp(1.0, -(int)(rv_rand_u64(&rng) % 60)),
                         ldexp(1e-3, (int)(rv_rand_u64(&rng) % 80)),
                         ldexp(1.0, 1 + (int)(rv_rand_u64(&rng) % 62))};
        size_t n = N - (size_t)(rv_rand_u64(&rng) % 16);
        bad += compare(&c, n);
        count(n);
    }
    printf("check_adam_dir: random moments (all binades, both signs): %ld steps and %ld reverse "
           "terms (u, du/dm, du/ds, du/deps, du/dc1, du/dc2) compared, %ld differ, vector path "
           "%s\n",
           n_compared, n_terms, bad, rv_adam_steps_vector() ? "AVX-512 (8 lanes)" : "NOT RUN");
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_same_bits_edge)
{
    const rv_wide big = ((rv_wide)1 << 125) + 12345;
    const rv_wide mv[] = {0, 1, -1, 2, -3, big, -big, (rv_wide)1 << 64, -((rv_wide)1 << 64),
                          ((rv_wide)1 << 64) - 1, (rv_wide)UINT64_MAX << 1, (rv_wide)1 << 63};
    const rv_wide sv[] = {0, 1, 2, big, (rv_wide)1 << 64, ((rv_wide)1 << 64) - 1, 3, (rv_wide)1 << 100};
    /* scales that make denormal, huge and overflowing intermediates; eps tiny, zero, huge */
    const double scales[] = {0x1p-100, 0x1p-1070, 0x1p-1000, 0x1p900, 1.0};
    const double epss[] = {1e-8, 0x1p-1074, 1e-300, 0.0, 1e300};
    const double alphas[] = {0x1p40, 0x1p-1000, 1e300, 0.0, DBL_MAX};
    long bad = 0, n = 0;
    const size_t nm = sizeof mv / sizeof mv[0], ns = sizeof sv / sizeof sv[0];
    for (size_t k = 0; k < N; k++) {
        m[k] = mv[k % nm];
        s[k] = sv[(k / nm) % ns];
    }
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t e = 0; e < 5; e++)
                for (size_t f = 0; f < sizeof alphas / sizeof alphas[0]; f++) {
                    rv_adam_dir c = {scales[a], scales[b], epss[e], alphas[f], 0x1p52};
                    bad += compare(&c, nm * ns);
                    count(nm * ns);
                    n += (long)(nm * ns);
                }
    /* every length up to 40 (remainders after groups of eight) */
    rv_adam_dir c = {0x1p-100 / 0.1, 0x1p-100 / 0.001, 1e-8, 0x1p40, 0x1p12};
    for (size_t len = 0; len <= 40; len++, n += (long)len)
        bad += compare(&c, len);
    printf("check_adam_dir: edge inputs (m, s in {0, 1, 2^64 +- 1, 2^125, ...}, eps in {1e-8, "
           "2^-1074, 0, 1e300}, denormal and overflowing scales, lengths 0..40): %ld steps "
           "(and their reverse terms) compared, %ld differ; %ld of all results compared so far were 0, denormal, Inf or "
           "NaN\n",
           n, bad, n_special);
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_narrow_switch)
{
    /* the test switch really selects the plain loop: forced on, the same bits trivially */
    rv_adam_steps_narrow = 1;
    for (size_t i = 0; i < N; i++) {
        m[i] = rand_wide(90, 1);
        s[i] = rand_wide(80, 0);
    }
    rv_adam_dir c = {0x1p-100 / 0.1, 0x1p-100 / 0.001, 1e-8, 0x1p40, 0x1p12};
    ck_assert_int_eq(compare(&c, N), 0);
    rv_adam_steps_narrow = 0;
}
END_TEST

/* The moments' sums (rv_adam_sums) as adam.c uses them, against adam.c's scalar code for each
 * parameter: adding, its probe (nothing changed on a failure), subtracting, the reverse pass's
 * (m's difference kept when s's fails). */
static int sum1(const rv_adam_grad *c, int sub, double g, rv_wide *pm, rv_wide *ps)
{
    rv_wide gm, gs, mi, si;
    if (!isfinite(g) || !rv_wide_round(c->omb1_fixed * g, &gm) ||
        !rv_wide_round(c->omb2_fixed * (g * g), &gs))
        return 0;
    if (gs == 0 && g != 0) /* at least one unit of s for g != 0 */
        gs = 1;
    if (sub)
        return rv_wide_add(*pm, -gm, pm) && rv_wide_add(*ps, -gs, ps);
    if (!rv_wide_add(*pm, gm, &mi) || !rv_wide_add(*ps, gs, &si) || (si == 0 && mi != 0))
        return 0;
    *pm = mi;
    *ps = si;
    return 1;
}

static double gr[N];
static rv_wide m2[N], s2[N];
static long n_sum_lanes, n_sum_scalar, n_sum_runs;

/* Both ways on g, m, s [0, n): the scalar loop to its first failure, and adam.c's loop (the lanes
 * to their first uncommon parameter, it scalar, the lanes again from the next); the same stop
 * and the same m, s everywhere, or 1. */
static long compare_sums(const rv_adam_grad *c, int sub, size_t n)
{
    memcpy(m2, m, sizeof m);
    memcpy(s2, s, sizeof s);
    size_t i = 0, j = 0;
    while (i < n && sum1(c, sub, gr[i], &m[i], &s[i]))
        i++;
    for (;; j++) {
        size_t k = rv_adam_sums(c, sub, n - j, gr + j, m2 + j, s2 + j);
        n_sum_lanes += (long)k;
        j += k;
        if (j == n || !sum1(c, sub, gr[j], &m2[j], &s2[j]))
            break;
        n_sum_scalar++;
    }
    n_sum_runs++;
    return i != j || memcmp(m, m2, sizeof m) != 0 || memcmp(s, s2, sizeof s) != 0;
}

/* A gradient of random sign and magnitude 2^e, e in [lo, hi). */
static double rand_grad(int lo, int hi)
{
    double x = ldexp(1.0 + (double)(rv_rand_u64(&rng) >> 11) * 0x1p-53,
                     lo + (int)(rv_rand_u64(&rng) % (uint64_t)(hi - lo)));
    return rv_rand_u64(&rng) & 1 ? -x : x;
}

START_TEST(test_sums_same_bits)
{
    const double b1 = 15099494, b2 = 16760439; /* 0.9 and 0.999 on the 2^-24 grid */
    const rv_adam_grad c = {ldexp(0x1p24 - b1, 76), ldexp(0x1p24 - b2, 76)};
    const rv_wide lim = (rv_wide)1 << 126;
    const double specials[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 0x1p-40, -0x1p-40, -0x1p-60,
                               -0x1p-1074, 0x1p-1074, -0x1p-33, 0x1p23, -0x1p23, 0x1p13, 1e300};
    const size_t n_spec = sizeof specials / sizeof specials[0];
    long bad = 0, clean_bad = 0;
    for (int rep = 0; rep < 3000; rep++) {
        int sub = rep & 1, kind = (rep / 2) % 7;
        size_t n = N - (size_t)(rv_rand_u64(&rng) % 300);
        if (kind == 6) /* common parameters only, whole groups of eight: all in lanes */
            n &= ~(size_t)7;
        long scalar_before = n_sum_scalar, lanes_before = n_sum_lanes;
        for (size_t i = 0; i < N; i++) {
            gr[i] = rand_grad(-30, 10);
            m[i] = rand_wide(110, 1);
            s[i] = rand_wide(110, 0);
        }
        /* one uncommon parameter at a position that walks through a group of eight and a
         * chunk, or several at random */
        size_t at = (size_t)rep % 300, k = (size_t)(rv_rand_u64(&rng) % 8);
        switch (kind) {
        case 0: /* special gradients */
            gr[at] = specials[(size_t)rep % n_spec];
            break;
        case 1: /* tiny gradients: the legacy rounding of negative terms, zero terms */
            for (size_t i = 0; i < N; i++)
                gr[i] = rand_grad(-1074, -25);
            break;
        case 2: /* a moment at the bound: its sum leaves the range by a quantum or stays in */
            if (k & 1)
                m[at] = (k & 2 ? lim - 1 : -lim + 1);
            else
                s[at] = (k & 2 ? lim - 1 : -lim + 1);
            gr[at] = (k & 4 ? 1 : -1) * ldexp(1.0, -(int)(rv_rand_u64(&rng) % 80));
            if (rep % 3 == 0) { /* the sum exactly at the bound, or a quantum inside */
                rv_wide gt = 0, bound = k & 2 ? lim : -lim;
                double y = (k & 1 ? c.omb1_fixed : c.omb2_fixed) * (k & 1 ? gr[at] : gr[at] * gr[at]);
                rv_wide_round(y, &gt);
                rv_wide x = (sub ? bound + gt : bound - gt) + (rv_wide)(rep % 2 ? 0 : bound > 0 ? -1 : 1);
                if (x < lim && x > -lim)
                    *(k & 1 ? &m[at] : &s[at]) = x;
            }
            break;
        case 3: /* s + (1-beta2) g^2 = 0 with m + (1-beta1) g != 0 (and = 0) */
        {
            rv_wide gs = 0;
            rv_wide_round(c.omb2_fixed * (gr[at] * gr[at]), &gs);
            s[at] = sub ? gs : -gs;
            if (k == 0) {
                rv_wide gm = 0;
                rv_wide_round(c.omb1_fixed * gr[at], &gm);
                m[at] = sub ? gm : -gm;
            }
            break;
        }
        case 4: /* many uncommon ones */
            for (size_t i = 0; i < N; i++)
                if (rv_rand_u64(&rng) % 16 == 0)
                    gr[i] = specials[rv_rand_u64(&rng) % n_spec];
            break;
        case 6:
            break;
        default: /* terms and gradients of every size up to the bound */
            for (size_t i = 0; i < N; i++)
                gr[i] = rand_grad(-80, 14);
            break;
        }
        bad += compare_sums(&c, sub, n);
        if (kind == 6 && rv_adam_sums_lanes())
            clean_bad += n_sum_scalar != scalar_before || n_sum_lanes - lanes_before != (long)n;
    }
    printf("check_adam_dir: the moments' sums (forward and reverse) on %ld runs (non-finite, "
           "legacy-rounded, zero and huge gradients, moments at the bound, s = 0 with m != 0, "
           "at every position of a chunk): %ld differ; %ld parameters in lanes, %ld scalar "
           "between them; lanes %s\n",
           n_sum_runs, bad, n_sum_lanes, n_sum_scalar,
           rv_adam_sums_lanes() ? "AVX-512 (8 lanes)" : "NOT RUN (plain only)");
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(clean_bad, 0); /* the lanes do take the common parameters */
}
END_TEST

/* The reverse pass's adjoint run (rv_adam_back_run): lanes against the plain loop. */
static double hv_[N], dw_[2][N], dm_[2][N], ds_[2][N], t1_[2][RV_ADAM_RUN], t2_[2][RV_ADAM_RUN];

START_TEST(test_back_same_bits)
{
    const double specials[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 0x1p-1074, 1e300, -1e-300};
    long bad = 0, runs = 0;
    for (int rep = 0; rep < 2000; rep++) {
        for (size_t i = 0; i < N; i++) {
            gr[i] = rand_grad(-80, 60);
            hv_[i] = rand_grad(-100, 100);
            dw_[0][i] = dw_[1][i] = rand_grad(-100, 100);
            dm_[0][i] = dm_[1][i] = rand_grad(-100, 100);
            ds_[0][i] = ds_[1][i] = rand_grad(-100, 100);
            m[i] = rand_wide(1 + (unsigned)(rv_rand_u64(&rng) % 126), 1);
            s[i] = rand_wide(1 + (unsigned)(rv_rand_u64(&rng) % 126), 0);
        }
        if (rep % 3 == 0) /* a non-finite or extreme value at a position walking through a run */
            for (int k = 0; k < 3; k++) {
                size_t at = (size_t)(rep + 97 * k) % RV_ADAM_RUN;
                double v = specials[(size_t)(rep / 3 + k) % 8];
                double *where[] = {&hv_[at], &gr[at], &dm_[0][at], &ds_[0][at]};
                *where[k % 4] = v;
                dm_[1][at] = dm_[0][at];
                ds_[1][at] = ds_[0][at];
            }
        size_t n = RV_ADAM_RUN - (size_t)(rv_rand_u64(&rng) % 20);
        int ok[2];
        for (int v = 0; v < 2; v++) {
            rv_adam_steps_narrow = v;
            rv_adam_back b = {0.9, 0.999, gr, hv_, m, s, dw_[v], dm_[v], ds_[v]};
            memset(t1_[v], 0x55, sizeof t1_[v]);
            memset(t2_[v], 0x55, sizeof t2_[v]);
            ok[v] = rv_adam_back_run(&b, n, t1_[v], t2_[v]);
        }
        rv_adam_steps_narrow = 0;
        bad += ok[0] != ok[1] || memcmp(t1_[0], t1_[1], sizeof t1_[0]) ||
               memcmp(t2_[0], t2_[1], sizeof t2_[0]) || memcmp(dw_[0], dw_[1], sizeof dw_[0]) ||
               memcmp(dm_[0], dm_[1], sizeof dm_[0]) || memcmp(ds_[0], ds_[1], sizeof ds_[0]);
        runs += !ok[0];
    }
    printf("check_adam_dir: the reverse adjoint run (betas' terms, dw -= hv, dm, ds scaled): 2000 "
           "runs, %ld with a non-finite hv, %ld differ; lanes %s\n",
           runs, bad, rv_adam_steps_vector() ? "AVX-512 (8 lanes)" : "NOT RUN (plain only)");
    ck_assert_int_eq(bad, 0);
    ck_assert_int_gt(runs, 0);
}
END_TEST

/* The weights' moves (rv_adam_moves) as adam.c uses them, against rv_pass_move_w's arithmetic
 * (fixed.h's rv_round_fixed, the overflow-checked sum, w written even when it overflows). */
static int move1(int sign, double inv, double y, int64_t *w, double *wd)
{
    int64_t step;
    int bad = !rv_round_fixed(y, &step) || (sign > 0 ? __builtin_add_overflow(*w, step, w)
                                                      : __builtin_sub_overflow(*w, step, w));
    if (!bad)
        *wd = (double)*w * inv;
    return !bad;
}

static int64_t w_[2][N];
static double y_[N], wd_[2][N];

START_TEST(test_moves_same_bits)
{
    const double specials[] = {NAN, INFINITY, -INFINITY, 0x1p63, -0x1p63, 0x1.fffffffffffffp62,
                               -0x1.fffffffffffffp62, 0.5, -0.5, 1.5, 2.5, -2.5, -0.0, 0x1p52 + 1};
    long bad = 0, fails = 0, lanes = 0;
    for (int rep = 0; rep < 4000; rep++) {
        int sign = rep & 1 ? 1 : -1, kind = (rep / 2) % 4;
        size_t n = N - (size_t)(rv_rand_u64(&rng) % 40);
        double inv = ldexp(1.0, -(int)(rv_rand_u64(&rng) % 60));
        for (size_t i = 0; i < N; i++) {
            y_[i] = rand_grad(-4, kind == 1 ? 64 : 40);
            w_[0][i] = w_[1][i] = (int64_t)(rv_rand_u64(&rng) >> (kind == 2 ? 0 : 20));
            wd_[0][i] = wd_[1][i] = -1;
        }
        size_t at = (size_t)rep % 300;
        if (kind == 0)
            y_[at] = specials[(size_t)(rep / 8) % 14];
        else if (kind == 3) { /* w + step exactly at INT64_MAX / MIN, or one past */
            int64_t edge = rep & 4 ? INT64_MAX : INT64_MIN, d = (int64_t)(rv_rand_u64(&rng) % 1000);
            y_[at] = (double)d;
            int64_t st = (edge > 0) == (sign > 0) ? d : -d;
            w_[0][at] = w_[1][at] = (int64_t)((uint64_t)edge - (uint64_t)st * (sign > 0 ? 1 : -1) +
                                              (uint64_t)(rep & 8 ? 1 : 0) * (edge > 0 ? 1 : -1));
        }
        for (size_t i = 0; i < n; i++)
            fails += !move1(sign, inv, y_[i], &w_[0][i], &wd_[0][i]);
        for (size_t i = 0; i < n; i++) {
            size_t k = rv_adam_moves(sign, inv, n - i, y_ + i, w_[1] + i, wd_[1] + i);
            lanes += (long)k;
            if ((i += k) < n)
                move1(sign, inv, y_[i], &w_[1][i], &wd_[1][i]);
        }
        bad += memcmp(w_[0], w_[1], sizeof w_[0]) != 0 || memcmp(wd_[0], wd_[1], sizeof wd_[0]) != 0;
    }
    printf("check_adam_dir: the weights' moves (both signs; non-finite, huge and tie steps, sums "
           "at and one past the int64 range): 4000 runs, %ld moves failed, %ld in lanes, %ld "
           "differ; lanes %s\n",
           fails, lanes, bad, rv_adam_steps_vector() ? "AVX-512 (8 lanes)" : "NOT RUN (plain only)");
    ck_assert_int_eq(bad, 0);
    ck_assert_int_gt(fails, 1000);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("adam_dir");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_same_bits_random);
    tcase_add_test(tc, test_same_bits_edge);
    tcase_add_test(tc, test_narrow_switch);
    tcase_add_test(tc, test_sums_same_bits);
    tcase_add_test(tc, test_back_same_bits);
    tcase_add_test(tc, test_moves_same_bits);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
