/* check_round_vec.c: the rounded multiplies of steps whose bits are not kept (round_vec.h):
 * the plain loops are the nearest rounding of x n / 2^bits (ties up, modulo 2^64 and 2^128 as
 * the optimisers always did), and every lane version gives the plain loop's bits on random and
 * edge values (0, +-1, the digit's edges, the ends of the ranges, negative ones whose low word
 * is 0), every rate on the grids' edges, and runs of every length against the lane width. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exact/coder_vec.h"
#include "exact/round_vec.h"

#define MAX_P 70

static uint64_t rng = 77;
static uint64_t rnd(void) { return rv_rand_u64(&rng); }

static rv_round_run runs[3];
static int n_runs;

static const uint32_t rates16[] = {1, 2, 3, 0x7fff, 0x8000, 58982, 65535, 65536};
static const uint32_t rates24[] = {1, 2, 0x7fffff, 0x800000, 15099494, 16760438, 16777215,
                                   16777216};

static int64_t some64(void)
{
    static const int64_t edge[] = {0, 1, -1, 0x7fff, 0x8000, 0xffff, 0x10000, -0x8000, -0x8001,
                                   -0x10000, INT64_MAX, INT64_MIN, INT64_MIN + 1, -(1ll << 62)};
    uint64_t u = rnd();
    if (u % 3 == 0)
        return edge[(u >> 8) % (sizeof edge / sizeof *edge)];
    return (int64_t)(rnd() >> (u >> 58)); /* every magnitude, either sign */
}

static rv_wide some128(unsigned bits)
{
    const rv_wide one = 1, big = (one << 126) - 1;
    const rv_wide edge[] = {0, 1, -1, (one << bits) - 1, one << bits, -(one << bits),
                            one << (bits - 1), -(one << (bits - 1)), -(one << (bits - 1)) - 1,
                            big, -big, one << 64, -(one << 64), (one << 64) - 1, -(one << 64) + 1,
                            -((one << 64) + (one << bits)), (one << 125) + 12345};
    uint64_t u = rnd();
    if (u % 3 == 0)
        return edge[(u >> 8) % (sizeof edge / sizeof *edge)];
    /* every magnitude below 2^126 */
    rv_wide x = (rv_wide)(((rv_uwide)rnd() << 64) | rnd()) >> (2 + (u >> 57) % 124);
    return x;
}

/* The plain loops against the arithmetic they stand for: floor((x n + 2^(bits-1)) / 2^bits),
 * computed with a wider product (|x| < 2^100 for the 128-bit one: no overflow) */
START_TEST(test_plain_is_nearest)
{
    for (int k = 0; k < 20000; k++) {
        int64_t x = some64(), y = x;
        uint32_t n = rates16[k % 8];
        rv_round_mul64_plain(&y, 1, n);
        __int128 e = (__int128)x * n + 0x8000;
        int64_t want = (int64_t)(uint64_t)(e >> 16); /* >> floors (arithmetic), mod 2^64 */
        ck_assert_msg(y == want, "x %lld n %u: %lld, want %lld", (long long)x, n, (long long)y,
                      (long long)want);
    }
    for (int k = 0; k < 20000; k++) {
        unsigned bits = k & 1 ? 24 : 16;
        rv_wide x = some128(bits) >> 26, y = x; /* |x| < 2^100 */
        uint32_t n = bits == 24 ? rates24[(k >> 1) % 8] : rates16[(k >> 1) % 8];
        rv_round_mul128_plain(&y, 1, n, bits);
        rv_wide want = (x * n + ((rv_wide)1 << (bits - 1))) >> bits;
        ck_assert_msg(y == want, "bits %u n %u: wrong", bits, n);
    }
}
END_TEST

/* Every version against the plain one, both multiplies, runs of 0..MAX_P */
START_TEST(test_lanes_are_plain)
{
    static int64_t v0[MAX_P], v_ref[MAX_P], v_vec[MAX_P];
    static rv_wide x0[MAX_P], x_ref[MAX_P], x_vec[MAX_P];
    const rv_round_run run = runs[_i];
    long compared = 0;
    for (int rep = 0; rep < 400; rep++) {
        size_t p = (size_t)(rnd() % (MAX_P + 1));
        unsigned bits = rep & 1 ? 24 : 16;
        uint32_t n = rep % 5 == 4 ? (uint32_t)(rnd() % (1u << bits)) + 1
                                  : (bits == 24 ? rates24 : rates16)[(rep >> 1) % 8];
        for (size_t i = 0; i < p; i++) {
            v0[i] = some64();
            x0[i] = some128(bits);
        }
        memcpy(v_ref, v0, sizeof v0);
        memcpy(v_vec, v0, sizeof v0);
        memcpy(x_ref, x0, sizeof x0);
        memcpy(x_vec, x0, sizeof x0);
        if (bits == 16) { /* momentum's: gamma's grid only */
            rv_round_mul64_plain(v_ref, p, n);
            run.mul64(v_vec, p, n);
            ck_assert_mem_eq(v_ref, v_vec, sizeof v_ref);
        }
        rv_round_mul128_plain(x_ref, p, n, bits);
        run.mul128(x_vec, p, n, bits);
        ck_assert_msg(!memcmp(x_ref, x_vec, sizeof x_ref), "%s: bits %u n %u p %zu differ",
                      run.name, bits, n, p);
        compared += (long)p;
    }
    ck_assert_int_gt(compared, 400 * MAX_P / 3); /* the runs were not all empty */
}
END_TEST

/* The selection is the widest version this processor runs, and the plain one on request */
START_TEST(test_selection)
{
    rv_round_run sel = rv_round_run_select();
    ck_assert_ptr_eq(sel.mul128, runs[n_runs - 1].mul128);
    rv_coder_plain_only(1);
    sel = rv_round_run_select();
    rv_coder_plain_only(0);
    ck_assert_ptr_eq(sel.mul64, rv_round_mul64_plain);
    ck_assert_ptr_eq(sel.mul128, rv_round_mul128_plain);
}
END_TEST

int main(void)
{
    const char *skipped = "";
    n_runs = rv_round_runs(runs, &skipped);
    printf("round_vec: versions compared:");
    for (int k = 0; k < n_runs; k++)
        printf(" %s", runs[k].name);
    printf("%s%s\n", *skipped ? "; this processor cannot run: " : "", skipped);
    Suite *s = suite_create("round_vec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_plain_is_nearest);
    tcase_add_loop_test(tc, test_lanes_are_plain, 0, n_runs);
    tcase_add_test(tc, test_selection);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
