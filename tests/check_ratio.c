/* check_ratio.c: exact/ratio.h's multiply by a factor rho = 1 - c off the power-of-two grid:
 * c is applied within 2^-65; the multiply is ceil(rho |x|) with x's sign, checked against an
 * independent 192-bit product; L(y) (the fast path's reciprocal division) against plain 128-bit
 * division; the fast path against the general one (generic divisions, a base-n digit per
 * multiply), bit for bit in values, coder states and stacks, on random and edge inputs (0, +-1,
 * W's extremes, c at 2^-51, 1/2 and 1 - 2^-18); a run from fresh coder states and back returns
 * every value, state and stack bit for bit and never reads the empty stack; the buffer holds
 * rv_ratio_bits per multiply. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "exact/ratio.h"
#include "exact/ratio_run.h"

/* c = alpha lambda: rho from 1 - 2^-51 down to 2^-18 */
static const double cs[] = {0x1p-51, 1e-14, 1e-8, 1e-5, 3e-3, 0.03, 0.3, 0.5, 0.5 + 0x1p-40,
                            0.6, 0.97, 1 - 5e-6, 1 - 0x1p-18};
#define N_C (sizeof cs / sizeof cs[0])

static uint64_t rng = 12345;
static uint64_t next(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng >> 11 ^ rng << 29;
}

#define W_MAX (((rv_wide)1 << 123) - 1) /* adamw.c's |W| < 2^123 */

/* magnitudes from 0 to 2^123 - 1, both signs, with the edges every so often */
static rv_wide random_w(size_t i)
{
    static const int edge[] = {0, 1, -1, 2, -2, 3};
    if (i % 11 < 6)
        return i % 11 == 5 ? (i % 2 ? W_MAX : -W_MAX) : edge[i % 11];
    unsigned sh = (unsigned)(next() % 123);
    rv_wide v = (rv_wide)(((rv_uwide)next() << 64 | next()) >> (127 - sh));
    return i % 2 ? -v : v;
}

/* ceil((d x - h) 2^-64) from a 192-bit product of x and d (not k, which rv_ratio_floor uses) */
static rv_uwide ref_f(const rv_ratio *r, rv_uwide x)
{
    rv_uwide a = (rv_uwide)(uint64_t)x * r->d, b = (rv_uwide)(uint64_t)(x >> 64) * r->d;
    uint64_t low = (uint64_t)a, borrow = low < r->h;
    rv_uwide top = b + (a >> 64) - borrow;
    return top + (low - r->h != 0);
}

START_TEST(test_fraction_close)
{
    for (size_t j = 0; j < N_C; j++) {
        rv_ratio r;
        ck_assert(rv_ratio_make(&r, cs[j]));
        ck_assert(r.k != 0 && r.k + r.d == 0 && r.d >= (1ull << 46));
        ck_assert(r.fast == (cs[j] <= 0.5));
        long double applied = (long double)r.d * 0x1p-64L, want = 1.0L - (long double)cs[j];
        ck_assert_msg(fabsl(applied - want) <= 0x1p-65L, "c %.17g applied as %.20Lg", cs[j],
                      1.0L - applied);
    }
    rv_ratio r;
    ck_assert(rv_ratio_make(&r, 0) && r.k == 0);
    ck_assert(rv_ratio_make(&r, 0x1p-67) && r.k == 0); /* the identity: skipped */
    ck_assert(!rv_ratio_make(&r, -1e-9));
    ck_assert(!rv_ratio_make(&r, 1 - 0x1p-19));
    ck_assert(!rv_ratio_make(&r, NAN));
}
END_TEST

/* f against the reference; L(y) against plain division and its definition, both paths; x's
 * place in its fiber from the definition. */
START_TEST(test_against_reference)
{
    for (size_t j = 0; j < N_C; j++) {
        rv_ratio r;
        rv_ratio_make(&r, cs[j]);
        for (size_t i = 0; i < 3000; i++) {
            rv_wide w = random_w(i);
            rv_uwide x = (rv_uwide)(w < 0 ? -w : w);
            rv_wide y = rv_ratio_mul_nokeep(w, &r);
            ck_assert(y == (w < 0 ? -(rv_wide)ref_f(&r, x) : (rv_wide)ref_f(&r, x)));
            if (x == 0)
                continue;
            rv_uwide ym = ref_f(&r, x);
            rv_uwide z = ym - 1, q1 = z / r.d;
            rv_uwide want =
                (q1 << 64) + ((((rv_uwide)(uint64_t)(z - q1 * r.d) << 64) | r.h) / r.d) + 1;
            rv_uwide lo = rv_ratio_least(&r, ym);
            ck_assert(lo == want);
            ck_assert(ref_f(&r, lo) == ym && ref_f(&r, lo - 1) == ym - 1 && lo <= x);
            if (r.fast) { /* the general path's L(y): the same */
                rv_ratio g = r;
                g.fast = 0;
                ck_assert(rv_ratio_least(&g, ym) == want);
            }
        }
    }
}
END_TEST

/* The fast path (c <= 1/2) against the general path on the same factor, bit for bit: values,
 * coder states and stacks after a run forward, and back. */
START_TEST(test_fast_as_general)
{
    enum { P = 64, T = 30 };
    for (size_t j = 0; j < N_C; j++) {
        if (!(cs[j] <= 0.5))
            continue;
        revl_allocator alloc;
        rv_allocator_copy(&alloc, NULL);
        rv_infobuf b[2];
        rv_ratio r[2];
        rv_ratio_make(&r[0], cs[j]);
        r[1] = r[0];
        r[1].fast = 0;
        uint32_t n0 = (uint32_t)(((rv_uwide)1 << 64) / r[0].d); /* 1, or 2 at c = 1/2 */
        rv_gamma_code_make(&r[1].n0, n0);
        rv_gamma_code_make(&r[1].n1, n0 + 1);
        rv_wide x[2][P], x0[P];
        for (size_t i = 0; i < P; i++)
            x0[i] = x[0][i] = x[1][i] = random_w(i);
        for (int v = 0; v < 2; v++) {
            ck_assert_int_eq(rv_infobuf_init(&b[v], &alloc, P), REVL_OK);
            for (int t = 0; t < T; t++)
                for (size_t i = 0; i < P; i++)
                    x[v][i] = rv_ratio_mul(b[v].alloc, &b[v].stacks[0], &b[v].state[i], &r[v],
                                           x[v][i]);
        }
        ck_assert(memcmp(x[0], x[1], sizeof x[0]) == 0);
        ck_assert(memcmp(b[0].state, b[1].state, P * sizeof *b[0].state) == 0);
        ck_assert(b[0].stacks[0].len == b[1].stacks[0].len);
        ck_assert(b[0].stacks[0].len == 0 || /* an empty stack may have no array */
                  memcmp(b[0].stacks[0].words, b[1].stacks[0].words,
                         b[0].stacks[0].len * sizeof(rv_word)) == 0);
        for (int v = 0; v < 2; v++) {
            for (int t = T; t-- > 0;)
                for (size_t i = P; i-- > 0;)
                    x[v][i] = rv_ratio_div(b[v].alloc, &b[v].stacks[0], &b[v].state[i], &r[v],
                                           x[v][i]);
            ck_assert(memcmp(x[v], x0, sizeof x0) == 0);
            ck_assert(rv_infobuf_is_empty(&b[v]));
            rv_infobuf_destroy(&b[v]);
        }
    }
}
END_TEST

/* P values, T multiplies each (interleaved as a block's parameters are), then T divides in
 * reverse order, from fresh coder states; the buffer's bits against rv_ratio_bits. */
START_TEST(test_round_trip_from_fresh_states)
{
    enum { P = 512, T = 24 };
    for (size_t j = 0; j < N_C; j++) {
        revl_allocator alloc;
        rv_allocator_copy(&alloc, NULL); /* malloc/free */
        rv_infobuf b;
        ck_assert_int_eq(rv_infobuf_init(&b, &alloc, P), REVL_OK);
        rv_ratio r;
        rv_ratio_make(&r, cs[j]);
        static rv_wide x0[P], x[P];
        /* multiplies of |x| >= 2^20 and of 0 < |x| < 2^20; x = +-(2^123 - 1) */
        size_t large = 0, small = 0, extreme = 0;
        for (size_t i = 0; i < P; i++) {
            x0[i] = x[i] = random_w(i);
            extreme += x[i] == W_MAX || x[i] == -W_MAX;
        }
        double bits0 = rv_infobuf_bits(&b);
        for (int t = 0; t < T; t++)
            for (size_t i = 0; i < P; i++) {
                rv_wide before = x[i];
                large += before >= (1 << 20) || before <= -(1 << 20);
                small += before != 0 && before < (1 << 20) && before > -(1 << 20);
                x[i] = rv_ratio_mul(b.alloc, &b.stacks[0], &b.state[i], &r, x[i]);
                ck_assert(x[i] == rv_ratio_mul_nokeep(before, &r));
                ck_assert((x[i] == 0) == (before == 0) && (x[i] < 0) == (before < 0));
            }
        /* the edges are not uniformly placed in their fibers: 2^123 - 1 sits at a fiber's
         * end for every c, and its image at one's start (a few bits each); small values are
         * in fibers of one (x = 1 and 2 at rho = 0.7) or of two (x = 1 at 1/2): bounded by
         * the largest fiber */
        double got = rv_infobuf_bits(&b) - bits0, want = rv_ratio_bits(&r) * (double)large;
        double most = log2(r.fast ? 2 : r.n1.n) * (double)small;
        ck_assert_msg(got >= 0.85 * want - 4.0 * (double)extreme &&
                          got <= 1.15 * want + most + 4.0 * (double)extreme,
                      "c %g: %.1f bits, want %.1f",
                      cs[j], got, want);
        for (int t = T; t-- > 0;)
            for (size_t i = P; i-- > 0;) {
                x[i] = rv_ratio_div(b.alloc, &b.stacks[0], &b.state[i], &r, x[i]);
                ck_assert(b.stacks[0].deficit == 0);
            }
        ck_assert(memcmp(x, x0, sizeof x) == 0);
        ck_assert_msg(rv_infobuf_is_empty(&b), "c %g: the buffer is not empty", cs[j]);
        rv_infobuf_destroy(&b);
    }
}
END_TEST

/* A weight at AdamW's first step has 60 zero bits below its quantum (W = w 2^60). The half-unit
 * h in floor((k x + h) / 2^64) puts such values in fibers of one member at the factors AdamW
 * uses (alpha lambda from 1e-3 up), so they keep no bit; without h every one of them keeps a
 * bit (measured: 572 of 572). Deterministic, unlike the buffer's statistical bounds. */
START_TEST(test_whole_weights_keep_nothing)
{
    const double c[] = {1e-3, 3e-3, 0.01, 0.026, 0.05};
    for (size_t j = 0; j < sizeof c / sizeof c[0]; j++) {
        revl_allocator alloc;
        rv_allocator_copy(&alloc, NULL);
        rv_infobuf b;
        ck_assert_int_eq(rv_infobuf_init(&b, &alloc, 1), REVL_OK);
        rv_ratio r;
        ck_assert(rv_ratio_make(&r, c[j]));
        for (int64_t m = 1; m < 4000; m += 7) {
            rv_wide x = (rv_wide)(m * 104729) << 60; /* whole weights, both signs */
            if (m % 2)
                x = -x;
            uint64_t st0 = b.state[0];
            rv_wide y = rv_ratio_mul(b.alloc, &b.stacks[0], &b.state[0], &r, x);
            ck_assert_msg(b.state[0] == st0 && b.stacks[0].len == 0,
                          "c %g: a whole weight (m = %lld) kept a bit", c[j], (long long)m);
            ck_assert(rv_ratio_div(b.alloc, &b.stacks[0], &b.state[0], &r, y) == x);
        }
        rv_infobuf_destroy(&b);
    }
}
END_TEST

/* Exact cases: rho = 3/4 and 1/2 by hand. */
START_TEST(test_by_hand)
{
    rv_ratio r;
    rv_ratio_make(&r, 0.25);
    ck_assert(rv_ratio_mul_nokeep(4, &r) == 3);
    ck_assert(rv_ratio_mul_nokeep(-4, &r) == -3);
    ck_assert(rv_ratio_mul_nokeep(2, &r) == 2); /* ceil(1.5) */
    ck_assert(rv_ratio_mul_nokeep(1, &r) == 1);
    ck_assert(rv_ratio_mul_nokeep(0, &r) == 0);
    ck_assert(fabs(rv_ratio_bits(&r) - 0.5) < 1e-15); /* 2c */
    rv_ratio_make(&r, 0.5);
    ck_assert(rv_ratio_mul_nokeep(7, &r) == 4);
    ck_assert(rv_ratio_bits(&r) == 1);
    rv_ratio_make(&r, 0.75); /* rho = 1/4: fibers of 4, two bits */
    ck_assert(!r.fast && r.n0.n == 4 && rv_ratio_bits(&r) == 2);
    ck_assert(rv_ratio_least(&r, 3) == 9);
}
END_TEST

/* ratio_run.h's runs against rv_ratio_mul / rv_ratio_div one value at a time (adamw.c's scalar
 * path), bit for bit: w, lo, wd, the coder states, the stack's words, length and deficit, and
 * the reverse's sum and scaled g; the forward in both versions, plain and (where the processor
 * has them) IFMA lanes. Values split as adamw.c keeps them (W = w 2^60 + lo), runs of 203 (three
 * full mask words and a part that ends in a part of eight lanes), the bounds +-(2^123 - 1), 0, +-1 among them. */
enum { RUN_P = 203, RUN_LOW = 60 };

typedef struct run_side {
    rv_infobuf b;
    int64_t w[RUN_P], lo[RUN_P];
    double wd[RUN_P], g[RUN_P];
} run_side;

static void run_same(const run_side *a, const run_side *b)
{
    ck_assert(memcmp(a->w, b->w, sizeof a->w) == 0 && memcmp(a->lo, b->lo, sizeof a->lo) == 0);
    ck_assert(memcmp(a->wd, b->wd, sizeof a->wd) == 0 && memcmp(a->g, b->g, sizeof a->g) == 0);
    ck_assert(memcmp(a->b.state, b->b.state, RUN_P * sizeof *a->b.state) == 0);
    const rv_stack *x = &a->b.stacks[0], *y = &b->b.stacks[0];
    ck_assert(x->len == y->len && x->deficit == y->deficit);
    ck_assert(x->len == 0 || memcmp(x->words, y->words, x->len * sizeof(rv_word)) == 0);
}

/* the reference: one value at a time, as adamw.c's decay_range and undo_range */
static void run_scalar(run_side *v, const rv_ratio *r, int back, int keep, double *sum)
{
    const double inv = 0x1p-20, unit = 0x1p-80;
    double part = 0; /* a group's sum, as adamw.c's */
    for (size_t n = 0; n < RUN_P; n++) {
        size_t i = back ? RUN_P - 1 - n : n;
        rv_wide W = (rv_wide)v->w[i] * ((rv_wide)1 << RUN_LOW) + v->lo[i];
        rv_stack *s = &v->b.stacks[0];
        if (back)
            W = rv_ratio_div(v->b.alloc, s, &v->b.state[i], r, W);
        else
            W = keep ? rv_ratio_mul(v->b.alloc, s, &v->b.state[i], r, W)
                     : rv_ratio_mul_nokeep(W, r);
        v->w[i] = (int64_t)(W >> RUN_LOW);
        v->lo[i] = (int64_t)(W - (rv_wide)v->w[i] * ((rv_wide)1 << RUN_LOW));
        v->wd[i] = (double)v->w[i] * inv;
        if (back) {
            part += v->g[i] * (rv_wide_to_double(W) * unit);
            v->g[i] *= rv_ratio_rho(r);
        }
    }
    if (back)
        *sum += part;
}

static void run_fast(run_side *v, const rv_ratio *r, int back, int keep, double *sum, int lanes)
{
    rv_stack *s = &v->b.stacks[0];
    if (!back && lanes)
        rv_ratio_run_mul_fast(v->b.alloc, s, v->b.state, r, v->w, v->lo, v->wd, 0x1p-20,
                              RUN_LOW, RUN_P, keep);
    else if (back && lanes)
        *sum += rv_ratio_run_div_fast(v->b.alloc, s, v->b.state, r, v->w, v->lo, v->wd, 0x1p-20,
                                      RUN_LOW, RUN_P, v->g, 0x1p-80, rv_ratio_rho(r));
    else if (back)
        *sum += rv_ratio_run_div(v->b.alloc, s, v->b.state, r, v->w, v->lo, v->wd, 0x1p-20,
                                 RUN_LOW, RUN_P, v->g, 0x1p-80, rv_ratio_rho(r));
    else
        rv_ratio_run_mul(v->b.alloc, s, v->b.state, r, v->w, v->lo, v->wd, 0x1p-20, RUN_LOW,
                         RUN_P, keep);
}

START_TEST(test_run_as_scalar)
{
    static const double more[] = {0.25, 1.0 / 3, 0.5 - 0x1p-30}; /* rho = 2^-2, c near 1/2 */
    printf("check_ratio: the decay's runs compared in %s\n",
           rv_ratio_run_lanes() ? "plain and IFMA lanes" : "plain (no IFMA lanes here)");
    enum { T = 40 }; /* at c >= 0.3, 24-40 bits a value: words spill to the stack */
    static run_side v[2];
    for (size_t j = 0; j < N_C + 3; j++) {
        double c = j < N_C ? cs[j] : more[j - N_C];
        if (!(c <= 0.5))
            continue;
        revl_allocator alloc;
        rv_allocator_copy(&alloc, NULL);
        rv_ratio r;
        rv_ratio_make(&r, c);
        ck_assert(r.fast);
        /* plain runs, lanes' runs, the reverse on a dry stack in both */
        for (int mode = 0; mode < 4; mode++) {
            int lanes = mode & 1, deficit = mode >> 1;
            for (int s = 0; s < 2; s++)
                ck_assert_int_eq(rv_infobuf_init(&v[s].b, &alloc, RUN_P), REVL_OK);
            for (size_t i = 0; i < RUN_P; i++) {
                rv_wide W = random_w(i);
                v[0].w[i] = (int64_t)(W >> RUN_LOW);
                v[0].lo[i] = (int64_t)(W - (rv_wide)v[0].w[i] * ((rv_wide)1 << RUN_LOW));
                v[0].g[i] = (double)(int64_t)(next() >> 11) * 0x1p-40 - 1;
                v[0].wd[i] = 0;
                if (deficit) /* arbitrary coder states over an empty stack: pops run dry */
                    v[0].b.state[i] = RV_STATE_LOW + (next() >> 18);
            }
            memcpy(v[1].w, v[0].w, sizeof v[0].w);
            memcpy(v[1].lo, v[0].lo, sizeof v[0].lo);
            memcpy(v[1].g, v[0].g, sizeof v[0].g);
            memcpy(v[1].wd, v[0].wd, sizeof v[0].wd);
            memcpy(v[1].b.state, v[0].b.state, RUN_P * sizeof *v[0].b.state);
            double sum[2] = {0, 0};
            for (int t = 0; t < T && !deficit; t++) { /* forward, bits kept except at t = 5 */
                run_scalar(&v[0], &r, 0, t != 5, NULL);
                run_fast(&v[1], &r, 0, t != 5, NULL, lanes);
                run_same(&v[0], &v[1]);
            }
            ck_assert(deficit || c < 0.3 || v[0].b.stacks[0].len > RUN_P / 2);
            for (int t = 0; t < T; t++) {
                run_scalar(&v[0], &r, 1, 1, &sum[0]);
                run_fast(&v[1], &r, 1, 1, &sum[1], lanes);
                run_same(&v[0], &v[1]);
                ck_assert(memcmp(&sum[0], &sum[1], sizeof sum[0]) == 0);
            }
            ck_assert(!deficit || c < 3e-3 || v[0].b.stacks[0].deficit > 0); /* ran dry */
            for (int s = 0; s < 2; s++)
                rv_infobuf_destroy(&v[s].b);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ratio");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fraction_close);
    tcase_add_test(tc, test_against_reference);
    tcase_add_test(tc, test_fast_as_general);
    tcase_add_test(tc, test_round_trip_from_fresh_states);
    tcase_add_test(tc, test_by_hand);
    tcase_add_test(tc, test_run_as_scalar);
    tcase_add_test(tc, test_whole_weights_keep_nothing);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
