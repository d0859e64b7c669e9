/* check_ratio.c: exact/ratio.h's multiply by a factor off the power-of-two grid: the fraction is
 * within 2^-51 of the factor; the multiply is within n units of x n / d; a run of multiplies
 * from fresh coder states (the worst case: every state at its lower bound, the stack empty) and
 * back returns every value, state and stack bit for bit, and never reads the empty stack. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "exact/ratio.h"

static const double rhos[] = {1 - 1e-14, 1 - 1e-8, 1 - 1e-5, 1 - 3e-3, 0.97, 0.5, 0.03, 0x1p-18};
#define N_RHO (sizeof rhos / sizeof rhos[0])

static uint64_t rng = 12345;
static uint64_t next(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng >> 11;
}

START_TEST(test_fraction_close)
{
    for (size_t k = 0; k < N_RHO; k++) {
        rv_ratio c;
        ck_assert(rv_ratio_make(&c, rhos[k]));
        ck_assert(c.n <= c.d && c.d <= (1ull << 50));
        ck_assert_msg(fabs((double)c.n / (double)c.d - rhos[k]) <= 0x1p-51 + 0x1p-53,
                      "rho %.17g applied as %.17g", rhos[k], (double)c.n / (double)c.d);
    }
    rv_ratio c;
    ck_assert(!rv_ratio_make(&c, 0x1p-19));
    ck_assert(!rv_ratio_make(&c, 1.0000001));
    ck_assert(!rv_ratio_make(&c, NAN));
}
END_TEST

/* P values, T multiplies each (interleaved as a block's parameters are), then T divides in
 * reverse order. */
START_TEST(test_round_trip_from_fresh_states)
{
    enum { P = 64, T = 40 };
    for (size_t k = 0; k < N_RHO; k++) {
        revl_allocator alloc;
        rv_allocator_copy(&alloc, NULL); /* malloc/free */
        rv_infobuf b;
        ck_assert_int_eq(rv_infobuf_init(&b, &alloc, P), REVL_OK);
        rv_ratio c;
        rv_ratio_make(&c, rhos[k]);
        rv_wide x0[P], x[P];
        for (size_t i = 0; i < P; i++) {
            /* magnitudes from 0 to 2^122, both signs */
            unsigned sh = (unsigned)(next() % 122);
            rv_wide v = ((rv_wide)next() << 64 | next()) >> (127 - sh);
            x0[i] = x[i] = i % 7 == 0 ? 0 : (i % 2 ? -v : v);
        }
        for (int t = 0; t < T; t++)
            for (size_t i = 0; i < P; i++) {
                rv_wide before = x[i];
                x[i] = rv_ratio_mul(b.alloc, &b.stacks[0], &b.state[i], &c, x[i]);
                ck_assert_msg(b.stacks[0].deficit == 0, "rho %g: the empty stack was read at "
                              "step %d, value %zu", rhos[k], t, i);
                /* within n units of x n / d (x below 2^123: the product fits a long double's
                 * range, its 64-bit mantissa is enough for this bound) */
                long double want = (long double)before * c.n / c.d;
                ck_assert(fabsl((long double)x[i] - want) <= (long double)c.n * 1.0001L +
                                                                  fabsl(want) * 0x1p-60L);
            }
        for (int t = T; t-- > 0;)
            for (size_t i = P; i-- > 0;)
                x[i] = rv_ratio_div(b.alloc, &b.stacks[0], &b.state[i], &c, x[i]);
        ck_assert(memcmp(x, x0, sizeof x) == 0);
        ck_assert_msg(rv_infobuf_is_empty(&b), "rho %g: the buffer is not empty", rhos[k]);
        rv_infobuf_destroy(&b);
    }
}
END_TEST

/* The rounded multiply of the truncated steps: x n / d to nearest. */
START_TEST(test_rounded)
{
    rv_ratio c;
    rv_ratio_make(&c, 0.75);
    ck_assert(c.n * 4 == c.d * 3);
    ck_assert(rv_ratio_mul_rounded(4, &c) == 3);
    ck_assert(rv_ratio_mul_rounded(-4, &c) == -3);
    ck_assert(rv_ratio_mul_rounded(2, &c) == 2); /* 1.5: ties up */
    ck_assert(rv_ratio_mul_rounded(0, &c) == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ratio");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fraction_close);
    tcase_add_test(tc, test_round_trip_from_fresh_states);
    tcase_add_test(tc, test_rounded);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
