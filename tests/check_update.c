/* check_update.c: the forward update (update.h) chosen for this processor gives the same bits
 * and stops at the same parameter as the plain loop, on random, adversarial and failing input. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "optim/update.h"

#define N 1000

static uint64_t rng = 77;

static void fill(double *g, int64_t *v, int64_t *w, int scale_bits)
{
    for (size_t i = 0; i < N; i++) {
        g[i] = (rv_rand_uniform(&rng) * 2 - 1) * ldexp(1.0, (int)(rv_rand_u64(&rng) % 12));
        v[i] = (int64_t)(rv_rand_u64(&rng) >> (64 - scale_bits)) - ((int64_t)1 << (scale_bits - 2));
        w[i] = (int64_t)(rv_rand_u64(&rng) >> (64 - scale_bits)) - ((int64_t)1 << (scale_bits - 2));
    }
}

/* Run both versions on copies of the same input and compare everything. */
static size_t compare(const double *g, const int64_t *v, const int64_t *w, double omg,
                      double alpha)
{
    static int64_t v1[N], v2[N], w1[N], w2[N];
    static double d1[N], d2[N];
    memcpy(v1, v, sizeof v1);
    memcpy(v2, v, sizeof v2);
    memcpy(w1, w, sizeof w1);
    memcpy(w2, w, sizeof w2);
    memset(d1, 0, sizeof d1);
    memset(d2, 0, sizeof d2);
    rv_update_fn fast = rv_update_select();
    size_t k1 = rv_update_plain(N, g, v1, w1, d1, omg, alpha, 0x1p-52);
    size_t k2 = fast(N, g, v2, w2, d2, omg, alpha, 0x1p-52);
    ck_assert_uint_eq(k1, k2);
    ck_assert_mem_eq(v1, v2, sizeof v1);
    ck_assert_mem_eq(w1, w2, sizeof w1);
    ck_assert_mem_eq(d1, d2, sizeof d1);
    return k1;
}

START_TEST(test_same_bits_random)
{
    static double g[N];
    static int64_t v[N], w[N];
    for (int rep = 0; rep < 200; rep++) {
        fill(g, v, w, 40 + rep % 20);
        size_t k = compare(g, v, w, (1 - 58982 / 65536.0) * 0x1p52, 0.37 * (1 + rep % 7));
        ck_assert_uint_eq(k, N);
    }
}
END_TEST

START_TEST(test_same_stop_on_failure)
{
    static double g[N];
    static int64_t v[N], w[N];
    /* each kind of failure, at positions inside and at the edges of groups of eight */
    size_t where[] = {0, 7, 8, 13, 999};
    for (size_t k = 0; k < sizeof where / sizeof where[0]; k++) {
        for (int kind = 0; kind < 4; kind++) {
            fill(g, v, w, 50);
            size_t i = where[k];
            switch (kind) {
            case 0: g[i] = NAN; break;
            case 1: g[i] = 1e300; break;
            case 2: v[i] = INT64_MIN + 5; g[i] = 1e3; break;  /* v - step overflows */
            default: w[i] = INT64_MAX - 3; v[i] = (int64_t)1 << 55; g[i] = 0; break; /* w + step overflows */
            }
            ck_assert_uint_eq(compare(g, v, w, 0.1 * 0x1p52, 0.5), i);
        }
    }
}
END_TEST

START_TEST(test_short_runs)
{
    /* lengths that leave a remainder after the groups of eight */
    static double g[N];
    static int64_t v[N], w[N];
    fill(g, v, w, 45);
    for (size_t n = 0; n < 20; n++) {
        int64_t v1[20], v2[20], w1[20], w2[20];
        double d1[20], d2[20];
        memcpy(v1, v, sizeof v1);
        memcpy(v2, v, sizeof v2);
        memcpy(w1, w, sizeof w1);
        memcpy(w2, w, sizeof w2);
        ck_assert_uint_eq(rv_update_plain(n, g, v1, w1, d1, 3e14, 0.2, 0x1p-52), n);
        ck_assert_uint_eq(rv_update_select()(n, g, v2, w2, d2, 3e14, 0.2, 0x1p-52), n);
        ck_assert_mem_eq(v1, v2, n * sizeof *v1);
        ck_assert_mem_eq(w1, w2, n * sizeof *w1);
        ck_assert_mem_eq(d1, d2, n * sizeof *d1);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("update");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_same_bits_random);
    tcase_add_test(tc, test_same_stop_on_failure);
    tcase_add_test(tc, test_short_runs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
