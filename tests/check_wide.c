/* check_wide.c: wide.h's rounding and conversion give the same bits as the first version (the
 * reference below: a double split at 2^64, with x86's out-of-range unsigned conversion of 2^64
 * to 0 spelled out), on random and edge inputs across every binade the moments use. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "exact/wide.h"

static int ref_round(double y, rv_wide *out)
{
    if (!(fabs(y) < 0x1p126))
        return 0;
    if (fabs(y) < 0x1p52)
        y = y >= 0 ? (y + 0x1.8p52) - 0x1.8p52 : (y - 0x1.8p52) + 0x1.8p52;
    double hi = floor(y * 0x1p-64), lo = y - hi * 0x1p64; /* lo in [0, 2^64] */
    uint64_t ulo = lo >= 0x1p64 ? 0 : (uint64_t)lo;
    *out = (rv_wide)(((rv_uwide)(uint64_t)(int64_t)hi << 64) | ulo);
    return 1;
}

static double ref_to_double(rv_wide x)
{
    return (double)(int64_t)(x >> 64) * 0x1p64 + (double)(uint64_t)x;
}

static uint64_t rng = 12345;

static uint64_t next(void)
{
    return rv_rand_u64(&rng);
}

static long compare_round(double y)
{
    rv_wide a = 0, b = 0;
    int ka = ref_round(y, &a), kb = rv_wide_round(y, &b);
    if (ka != kb || (ka && a != b)) {
        fprintf(stderr, "rv_wide_round(%a) differs from the reference\n", y);
        return 1;
    }
    return 0;
}

START_TEST(test_round_same_bits)
{
    long bad = 0, n = 0;
    const double edge[] = {0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0x1p-1074, -0x1p-1074,
                           0x1p51 + 0.5, -0x1p51 - 0.5, 0x1p52 - 0.5, -0x1p52 + 0.5, 0x1p52,
                           -0x1p52, -0x1p53 - 2, -1024, -1025, -3072, -0x1p63, 0x1p63, -0x1p64,
                           0x1p64, -0x1p64 + 2048, 0x1p64 - 2048, 0x1p126, -0x1p126,
                           0x1.fffffffffffffp125, -0x1.fffffffffffffp125, INFINITY, -INFINITY,
                           NAN, 1e300, -1e-300};
    for (size_t k = 0; k < sizeof edge / sizeof edge[0]; k++, n++)
        bad += compare_round(edge[k]);
    for (long k = 0; k < 4000000; k++, n++) {
        double y;
        uint64_t b = next();
        switch (k % 4) {
        case 0: /* any bit pattern */
            memcpy(&y, &b, sizeof y);
            break;
        case 1: /* every binade from 2^-130 to 2^133 */
            y = ldexp((double)(int64_t)b, (int)(next() % 200) - 193);
            break;
        case 2: /* near integers and half-integers below 2^64 */
            y = (double)(int64_t)(b >> (next() % 64)) * (next() & 1 ? 1 : -1) +
                (double)(next() % 4) * 0.25;
            break;
        default: /* near powers of two, both signs */
            y = ldexp(next() & 1 ? 1.0 : -1.0, (int)(next() % 140) - 10) +
                (double)((int)(next() % 5) - 2);
        }
        bad += compare_round(y);
    }
    printf("check_wide: rv_wide_round vs the reference: %ld inputs, %ld differ\n", n, bad);
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(test_to_double_same_bits)
{
    long bad = 0, n = 0;
    const rv_wide edge[] = {0, 1, -1, (rv_wide)1 << 63, -((rv_wide)1 << 63), ((rv_wide)1 << 64) - 1,
                            (rv_wide)UINT64_MAX, ((rv_wide)1 << 125) + 1, -((rv_wide)1 << 125) - 1};
    for (size_t k = 0; k < sizeof edge / sizeof edge[0]; k++, n++)
        bad += ref_to_double(edge[k]) != rv_wide_to_double(edge[k]);
    for (long k = 0; k < 4000000; k++, n++) {
        rv_wide x = (rv_wide)(((rv_uwide)next() << 64) | next()) >> (next() % 127);
        double a = ref_to_double(x), b = rv_wide_to_double(x);
        bad += memcmp(&a, &b, sizeof a) != 0;
    }
    printf("check_wide: rv_wide_to_double vs the reference: %ld inputs, %ld differ\n", n, bad);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* rv_wide_mul_rounded (the betas' and RMSprop's gamma multiply in steps whose bits are not
 * kept) is x n / 2^bits rounded to nearest, ties up: e = x n - y 2^bits lies in
 * [-2^(bits-1), 2^(bits-1)), checked modulo 2^128 (e is small, so the wrap is exact), for x
 * of every size and sign and n over the grids; rounding down instead (no half unit) puts e in
 * [0, 2^bits) and fails whenever the discarded part is at least half. */
START_TEST(test_mul_rounded_nearest)
{
    long bad = 0, n_ties = 0;
    for (int rep = 0; rep < 200000; rep++) {
        unsigned bits = rep % 2 ? 24 : 16;
        uint32_t n = 1 + (uint32_t)(next() % ((1u << bits) - 1));
        unsigned mag = 1 + (unsigned)(next() % 125);
        rv_uwide u = ((rv_uwide)next() << 64 | next()) >> (128 - mag);
        rv_wide x = next() % 2 ? -(rv_wide)u : (rv_wide)u;
        if (rep % 7 == 0) { /* an exact tie: the discarded part is one half */
            x = (rv_wide)(((rv_uwide)x >> bits << bits) | (1u << (bits - 1)));
            n = 1;
        }
        rv_wide y = rv_wide_mul_rounded(x, n, bits);
        rv_wide e = (rv_wide)((rv_uwide)x * n - ((rv_uwide)y << bits));
        rv_wide half = (rv_wide)1 << (bits - 1);
        n_ties += rep % 7 == 0;
        if ((e < -half || e >= half) && bad++ < 5)
            fprintf(stderr, "x n / 2^%u: x = %.17g, n = %u: error %lld / 2^%u\n", bits,
                    ref_to_double(x), n, (long long)e, bits);
    }
    ck_assert_int_gt(n_ties, 1000);
    ck_assert_int_eq(bad, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wide");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_round_same_bits);
    tcase_add_test(tc, test_to_double_same_bits);
    tcase_add_test(tc, test_mul_rounded_nearest);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
