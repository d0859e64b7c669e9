/* check_infobuf.c: the exact multiply by n/2^16 and the information buffer, on their own:
 * round trips bit for bit over random and adversarial values, the exact rational result, and
 * the buffer's size against the information it holds. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exact/infobuf.h"

static uint64_t rng = 12345;
static uint64_t next_u64(void)
{
    return rv_rand_u64(&rng);
}

/* Values that stress the arithmetic: zero, +-1, the extremes of int64, random of every size. */
static int64_t adversarial_value(size_t i)
{
    switch (i % 8) {
    case 0: return 0;
    case 1: return -1;
    case 2: return INT64_MAX >> 1;
    case 3: return -(INT64_MAX >> 1);
    case 4: return (int64_t)(next_u64() >> 2) - (int64_t)(1ULL << 61);
    case 5: return (int64_t)(next_u64() % 65536) - 32768;
    default: return (int64_t)(next_u64() >> (i % 60)) * ((i & 1) ? 1 : -1);
    }
}

/* Run `steps` multiplications on n values with per-step numerators, then undo them. */
static void round_trip(size_t n, size_t steps, const uint32_t *nums, int64_t *x)
{
    revl_allocator a;
    revl_allocator_init(&a);
    rv_infobuf b;
    ck_assert_int_eq(rv_infobuf_init(&b, &a, n), REVL_OK);
    ck_assert_int_eq(rv_infobuf_reset(&b, NULL), REVL_OK);
    int64_t *orig = malloc(n * sizeof *orig);
    memcpy(orig, x, n * sizeof *x);
    rv_gamma_code *codes = malloc(steps * sizeof *codes);
    for (size_t s = 0; s < steps; s++)
        rv_gamma_code_make(&codes[s], nums[s]);
    for (size_t s = 0; s < steps; s++)
        for (size_t i = 0; i < n; i++)
            x[i] = rv_exact_mul(&a, &b.stacks[i / RV_BLOCK], &b.state[i], &codes[s], x[i]);
    for (size_t s = steps; s-- > 0;)
        for (size_t i = n; i-- > 0;)
            x[i] = rv_exact_div(&a, &b.stacks[i / RV_BLOCK], &b.state[i], &codes[s], x[i]);
    ck_assert_mem_eq(x, orig, n * sizeof *x);
    ck_assert(rv_infobuf_is_empty(&b));
    rv_infobuf_destroy(&b);
    free(codes);
    free(orig);
}

START_TEST(test_round_trip_every_gamma_extreme)
{
    /* gamma from 2^-16 to 1, including the two ends, powers of two and odd numerators */
    uint32_t nums[] = {1, 2, 3, 255, 256, 32767, 32768, 58982, 65535, 65536, 1, 65536, 40000};
    size_t steps = sizeof nums / sizeof nums[0], n = 3 * RV_BLOCK + 17;
    int64_t *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = adversarial_value(i);
    round_trip(n, steps, nums, x);
    free(x);
}
END_TEST

START_TEST(test_round_trip_random_long)
{
    /* T = 1000 random momenta in [0.5, 1]: many words spilled and read back */
    size_t steps = 1000, n = 300;
    uint32_t *nums = malloc(steps * sizeof *nums);
    for (size_t s = 0; s < steps; s++)
        nums[s] = 32768 + (uint32_t)(next_u64() % 32769);
    int64_t *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = adversarial_value(i);
    round_trip(n, steps, nums, x);
    free(x);
    free(nums);
}
END_TEST

START_TEST(test_exact_mul_is_the_rational)
{
    /* The result is floor(x/2^16)*n plus a digit below n: within n of x*n/2^16, and exactly
     * x when n = 2^16. */
    revl_allocator a;
    revl_allocator_init(&a);
    rv_infobuf b;
    ck_assert_int_eq(rv_infobuf_init(&b, &a, 1), REVL_OK);
    for (int k = 0; k < 20000; k++) {
        uint32_t n = 1 + (uint32_t)(next_u64() % 65536);
        rv_gamma_code c;
        rv_gamma_code_make(&c, n);
        int64_t x = adversarial_value((size_t)k);
        int64_t y = rv_exact_mul(&a, &b.stacks[0], &b.state[0], &c, x);
        long double exact = (long double)x * n / 65536.0L;
        ck_assert_msg(fabsl((long double)y - exact) <= n + 1, "x=%lld n=%u y=%lld", (long long)x, n,
                      (long long)y);
        rv_gamma_code_make(&c, 65536);
        ck_assert(rv_exact_mul(&a, &b.stacks[0], &b.state[0], &c, x) == x);
    }
    rv_infobuf_destroy(&b);
}
END_TEST

START_TEST(test_gamma_code_tables)
{
    /* frequencies sum to 2^31 and the reciprocal symbol search equals plain division */
    for (uint32_t n = 1; n <= 65536; n += (n < 300 ? 1 : 997)) {
        rv_gamma_code c;
        rv_gamma_code_make(&c, n);
        uint64_t sum = (uint64_t)c.k * (c.f + 1ULL) + (uint64_t)(n - c.k) * c.f;
        ck_assert_uint_eq(sum, 1ULL << 31);
        for (int k = 0; k < 200; k++) {
            uint64_t slot = next_u64() & ((1ULL << 31) - 1);
            uint64_t want = slot < c.boundary ? slot / (c.f + 1ULL)
                                              : c.k + (slot - c.boundary) / c.f;
            uint64_t got = slot < c.boundary ? rv_mulhi64(slot, c.rcp_wide)
                                             : c.k + rv_mulhi64(slot - c.boundary, c.rcp_f);
            ck_assert_uint_eq(got, want);
        }
    }
}
END_TEST

START_TEST(test_gamma_numerator)
{
    ck_assert_uint_eq(rv_gamma_numerator(1.0), 65536);
    ck_assert_uint_eq(rv_gamma_numerator(0x1p-16), 1);
    ck_assert_uint_eq(rv_gamma_numerator(0.5), 32768);
    ck_assert_uint_eq(rv_gamma_numerator(0.9), 58982); /* 0.9*65536 = 58982.4 */
    ck_assert(revl_gamma_applied(0.9) == 58982.0 / 65536.0);
    ck_assert(isnan(revl_gamma_applied(0.0)));
    ck_assert(isnan(revl_gamma_applied(1.5)));
    ck_assert(isnan(revl_gamma_applied(NAN)));
}
END_TEST

/* The buffer holds sum log2(2^16/n) bits, and occupies that plus a fixed cost per parameter. */
static void check_bits(double gamma)
{
    size_t n = 2 * RV_BLOCK, steps = 400;
    uint32_t num = rv_gamma_numerator(gamma);
    rv_gamma_code c;
    rv_gamma_code_make(&c, num);
    revl_allocator a;
    revl_allocator_init(&a);
    rv_infobuf b;
    ck_assert_int_eq(rv_infobuf_init(&b, &a, n), REVL_OK);
    double theory = (double)n * (double)steps * (16.0 - log2((double)num));
    double per_block[2] = {theory / 2, theory / 2};
    ck_assert_int_eq(rv_infobuf_reset(&b, per_block), REVL_OK);
    size_t reserved = rv_infobuf_bytes(&b);
    int64_t *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = adversarial_value(i);
    for (size_t s = 0; s < steps; s++)
        for (size_t i = 0; i < n; i++)
            x[i] = rv_exact_mul(&a, &b.stacks[i / RV_BLOCK], &b.state[i], &c, x[i]);
    double bits = rv_infobuf_bits(&b);
    size_t bytes = rv_infobuf_bytes(&b);
    /* information: the coder loses ~2^-16 bits per operation to its state's finite precision
     * and ~(n/2^31)^2 to the quantised frequencies; 0.2% would catch a coder with a state
     * bound too close to its frequency total (32-bit words: 1.3% over at gamma 0.9) */
    ck_assert_msg(fabs(bits - theory) <= 2e-3 * theory + 0.1 * (double)n,
                  "gamma %g: %.0f bits held, theory %.0f", gamma, bits, theory);
    /* memory: within 1% of the information plus the 8-byte state per parameter and the
     * reservation slack of 64 words per block */
    ck_assert_msg((double)bytes <= 1.01 * theory / 8 + 8.1 * (double)n,
                  "gamma %g: %zu bytes for %.0f bits", gamma, bytes, theory);
    /* reserved from the schedule: no growth during the run */
    ck_assert_uint_eq(bytes, reserved);
    for (size_t s = steps; s-- > 0;)
        for (size_t i = n; i-- > 0;)
            x[i] = rv_exact_div(&a, &b.stacks[i / RV_BLOCK], &b.state[i], &c, x[i]);
    ck_assert(rv_infobuf_is_empty(&b));
    ck_assert(fabs(rv_infobuf_bits(&b)) < 1e-9);
    free(x);
    rv_infobuf_destroy(&b);
}

START_TEST(test_bits_gamma_05) { check_bits(0.5); }
END_TEST
START_TEST(test_bits_gamma_09) { check_bits(0.9); }
END_TEST
START_TEST(test_bits_gamma_098) { check_bits(0.98); }
END_TEST
START_TEST(test_bits_gamma_0999) { check_bits(0.999); }
END_TEST

START_TEST(test_corruption_detected)
{
    /* undoing with a different momentum than was applied cannot end on an empty buffer */
    size_t n = 64;
    revl_allocator a;
    revl_allocator_init(&a);
    rv_infobuf b;
    ck_assert_int_eq(rv_infobuf_init(&b, &a, n), REVL_OK);
    rv_gamma_code c1, c2;
    rv_gamma_code_make(&c1, 58982);
    rv_gamma_code_make(&c2, 58983);
    int64_t x[64], orig[64];
    for (size_t i = 0; i < n; i++)
        orig[i] = x[i] = adversarial_value(i);
    for (int s = 0; s < 50; s++)
        for (size_t i = 0; i < n; i++)
            x[i] = rv_exact_mul(&a, &b.stacks[0], &b.state[i], &c1, x[i]);
    for (int s = 0; s < 50; s++)
        for (size_t i = n; i-- > 0;)
            x[i] = rv_exact_div(&a, &b.stacks[0], &b.state[i], s == 25 ? &c2 : &c1, x[i]);
    ck_assert(!rv_infobuf_is_empty(&b) || memcmp(x, orig, sizeof x) != 0);
    rv_infobuf_destroy(&b);
}
END_TEST

/* The stack's "broken" state: a word read from the empty stack is a zero borrowed (deficit);
 * paying it back with a zero is exact, with anything else the run was not exact and the stack
 * says so (broken), and the buffer is then never empty. A reset starts the next run clean:
 * no deficit, not broken, not out of memory, empty again. */
START_TEST(test_broken_stack)
{
    revl_allocator a;
    revl_allocator_init(&a);
    rv_infobuf b;
    ck_assert_int_eq(rv_infobuf_init(&b, &a, RV_BLOCK + 10), REVL_OK); /* two stacks */
    ck_assert_int_eq(rv_infobuf_reset(&b, NULL), REVL_OK);
    rv_stack *s = &b.stacks[1];
    /* borrowed and repaid with a zero: exact */
    ck_assert_uint_eq(rv_pop_word(s), 0);
    ck_assert_uint_eq(s->deficit, 1);
    ck_assert(!rv_infobuf_is_empty(&b));
    rv_push_word(&a, s, 0);
    ck_assert(s->deficit == 0 && !s->broken && s->len == 0);
    ck_assert(rv_infobuf_is_empty(&b));
    /* repaid with a nonzero word: broken, and the word is not stored */
    for (rv_word w = 1; w != 0; w = (rv_word)(w << 1)) {
        ck_assert_uint_eq(rv_pop_word(s), 0);
        rv_push_word(&a, s, w);
        ck_assert_msg(s->broken, "word %u repaid a deficit unnoticed", (unsigned)w);
        ck_assert(s->deficit == 0 && s->len == 0);
        ck_assert(!rv_infobuf_is_empty(&b));
        s->broken = 0;
    }
    /* once broken, later exact work does not clear it */
    rv_pop_word(s);
    rv_push_word(&a, s, 0x8000);
    rv_pop_word(s);
    rv_push_word(&a, s, 0);
    rv_push_word(&a, s, 7);
    ck_assert_uint_eq(rv_pop_word(s), 7);
    ck_assert(s->broken && !rv_infobuf_is_empty(&b));
    /* a reset forgets the previous run's flags and words, on every stack */
    b.stacks[0].nomem = 1;
    rv_pop_word(&b.stacks[0]);
    b.state[3] = RV_STATE_LOW + 5;
    ck_assert_int_eq(rv_infobuf_reset(&b, NULL), REVL_OK);
    for (size_t k = 0; k < b.n_blocks; k++)
        ck_assert(!b.stacks[k].broken && !b.stacks[k].deficit && !b.stacks[k].nomem &&
                  !b.stacks[k].len);
    ck_assert(rv_infobuf_is_empty(&b));
    /* and with a reservation too */
    s->broken = 1;
    double bits[2] = {1000, 1000};
    ck_assert_int_eq(rv_infobuf_reset(&b, bits), REVL_OK);
    ck_assert(!s->broken && rv_infobuf_is_empty(&b));
    rv_infobuf_destroy(&b);
}
END_TEST

static Suite *infobuf_suite(void)
{
    Suite *s = suite_create("infobuf");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip_every_gamma_extreme);
    tcase_add_test(tc, test_round_trip_random_long);
    tcase_add_test(tc, test_exact_mul_is_the_rational);
    tcase_add_test(tc, test_gamma_code_tables);
    tcase_add_test(tc, test_gamma_numerator);
    tcase_add_test(tc, test_bits_gamma_05);
    tcase_add_test(tc, test_bits_gamma_09);
    tcase_add_test(tc, test_bits_gamma_098);
    tcase_add_test(tc, test_bits_gamma_0999);
    tcase_add_test(tc, test_corruption_detected);
    tcase_add_test(tc, test_broken_stack);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(infobuf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
