/* check_coder_vec.c: every lane version of the run-level exact multiplies gives the plain loop's
 * bits: the same values, states, stack words in the same order, and the same deficit / broken /
 * nomem / capacity, forward and in reverse, on random and edge input (states at the coder's
 * bounds and corrupt ones, values 0, negative and extreme, runs of every length against the lane
 * width, stacks full, empty or in deficit). Momentum's 64-bit multiply by n/2^16 (coder_vec.h,
 * n from 1 to 2^16), Adam's two 128-bit moments by beta1, beta2 = n/2^24 (wide_vec.h, the
 * betas at 0.5, 0.9, 0.999, near 1 and the grid's edges, moments up to 2^126 and beyond) and
 * RMSprop's pair (wide_vec.h's moments16: s by beta2 = n/2^24, then b by gamma = n/2^16, gamma at
 * the grid's edges 1/2^16, 1 - 1/2^16 and 1 too). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exact/coder_vec.h"
#include "exact/wide_vec.h"

#define MAX_P 4200 /* a whole block and a bit: runs of any length against 4 and 8 lanes */
#define MAX_T 6

static uint64_t rng = 2024;
static uint64_t rnd(void) { return rv_rand_u64(&rng); }

static revl_allocator alloc;
static rv_coder_run runs[3];
static rv_moments_run mruns[2][3]; /* [0]: Adam's pair, [1]: RMSprop's (moments16) */
static int n_runs, n_mruns;
static long n_compared[3], n_mcompared[2][3];

typedef struct world {
    uint64_t state[MAX_P];
    int64_t v[MAX_P];
    rv_wide m[MAX_P], ms[MAX_P]; /* Adam's moments, or RMSprop's s and b */
    rv_stack s;
} world;

static world start, ref, vec;

static void world_copy(world *dst, const world *src, size_t p)
{
    memcpy(dst->state, src->state, p * sizeof *src->state);
    memcpy(dst->v, src->v, p * sizeof *src->v);
    memcpy(dst->m, src->m, p * sizeof *src->m);
    memcpy(dst->ms, src->ms, p * sizeof *src->ms);
    rv_free(&alloc, dst->s.words);
    dst->s = src->s;
    dst->s.words = src->s.cap ? rv_calloc(&alloc, src->s.cap, sizeof *src->s.words) : NULL;
    if (src->s.len)
        memcpy(dst->s.words, src->s.words, src->s.len * sizeof *src->s.words);
}

static void world_same(const world *x, const world *y, size_t p)
{
    ck_assert_mem_eq(x->v, y->v, p * sizeof *x->v);
    ck_assert_mem_eq(x->m, y->m, p * sizeof *x->m);
    ck_assert_mem_eq(x->ms, y->ms, p * sizeof *x->ms);
    ck_assert_mem_eq(x->state, y->state, p * sizeof *x->state);
    ck_assert_uint_eq(x->s.len, y->s.len);
    ck_assert_uint_eq(x->s.cap, y->s.cap);
    ck_assert_uint_eq(x->s.deficit, y->s.deficit);
    ck_assert_int_eq(x->s.broken, y->s.broken);
    ck_assert_int_eq(x->s.nomem, y->s.nomem);
    if (x->s.len)
        ck_assert_mem_eq(x->s.words, y->s.words, x->s.len * sizeof *x->s.words);
}

/* States: random in [2^47, 2^63), the bounds and their neighbours; corrupt ones (outside the
 * coder's range) when `corrupt`. */
static uint64_t some_state(int corrupt)
{
    static const uint64_t edge[] = {RV_STATE_LOW, RV_STATE_LOW + 1, RV_STATE_LOW + 0xffff,
                                    RV_STATE_LOW + 0x10000, (1ULL << 48) - 1, 1ULL << 48,
                                    (1ULL << 63) - 1, (1ULL << 63) - 0x10000,
                                    (1ULL << 62) + 0x7fff};
    /* (not 0: the plain forward loop would pop zeros from an empty stack for ever) */
    static const uint64_t bad[] = {1ULL << 32, RV_STATE_LOW - 1, 1ULL << 63, UINT64_MAX,
                                   (1ULL << 63) + 0x12345};
    uint64_t u = rnd();
    if (corrupt && u % 5 == 0)
        return bad[(u >> 8) % (sizeof bad / sizeof *bad)];
    if (u % 4 == 0)
        return edge[(u >> 8) % (sizeof edge / sizeof *edge)];
    return RV_STATE_LOW + (rnd() % ((1ULL << 63) - RV_STATE_LOW));
}

static int64_t some_v(void)
{
    uint64_t u = rnd();
    switch (u % 10) {
    case 0: return 0;
    case 1: return -1;
    case 2: return 1;
    case 3: return INT64_MIN;
    case 4: return INT64_MAX;
    case 5: return (int64_t)(rnd() % 131072) - 65536;
    case 6: return -(int64_t)(rnd() >> (u >> 8) % 63);
    default: return (int64_t)(rnd() >> (u >> 8) % 64);
    }
}

/* A moment: 0 often (a weight whose gradient has been 0), +-1, tiny, random of every size up to
 * 2^126 (Adam's bound) and a few beyond (the whole 128 bits). */
static rv_wide some_wide(void)
{
    uint64_t u = rnd();
    rv_uwide big = ((rv_uwide)rnd() << 64) | rnd();
    rv_wide x;
    switch (u % 10) {
    case 0:
    case 1: return 0;
    case 2: x = 1; break;
    case 3: x = (rv_wide)(rnd() % 70000); break;
    case 4: x = (rv_wide)(((rv_uwide)1 << 126) - 1 - rnd() % 3); break;
    case 5: x = (rv_wide)(big >> (1 + (u >> 8) % 4)); break; /* beyond 2^126 */
    default: x = (rv_wide)(big >> (2 + (u >> 8) % 126)); break;
    }
    return (u >> 16) % 2 ? -x : x;
}

/* beta = n/2^24: random, the grid's edges, 0.5, 0.9, 0.999, 0.9999 and near 1 */
static uint32_t some_beta(void)
{
    static const uint32_t edge[] = {1, 2, 3, 255, 65535, 65536, 1u << 23, 15099494, 16760438,
                                    16775538, (1u << 24) - 17, (1u << 24) - 2, (1u << 24) - 1};
    uint64_t u = rnd();
    return u % 2 ? edge[(u >> 8) % (sizeof edge / sizeof *edge)]
                 : 1 + (uint32_t)(rnd() % ((1u << 24) - 1));
}

static uint32_t some_n(void)
{
    static const uint32_t edge[] = {1, 2, 3, 255, 32767, 32768, 32769, 58982, 65535, 65536};
    uint64_t u = rnd();
    return u % 2 ? edge[(u >> 8) % (sizeof edge / sizeof *edge)] : 1 + (uint32_t)(rnd() % 65536);
}

static size_t some_p(void)
{
    uint64_t u = rnd();
    return u % 8 == 0 ? RV_BLOCK + (u >> 8) % 100 : (u >> 8) % 70;
}

/* A start: the stack holds a few words with some room, none, or is empty in deficit. */
static void make_start(size_t p, int corrupt)
{
    for (size_t i = 0; i < p; i++) {
        start.state[i] = some_state(corrupt);
        start.v[i] = some_v();
        start.m[i] = some_wide();
        start.ms[i] = some_wide();
    }
    rv_free(&alloc, start.s.words);
    memset(&start.s, 0, sizeof start.s);
    uint64_t u = rnd();
    size_t len = u % 3 == 0 ? 0 : (u >> 8) % 40;
    size_t cap = len + ((u >> 16) % 2 ? 0 : (u >> 24) % 30);
    start.s.words = cap ? rv_calloc(&alloc, cap, sizeof *start.s.words) : NULL;
    start.s.cap = cap;
    start.s.len = len;
    for (size_t j = 0; j < len; j++)
        start.s.words[j] = (rv_word)rnd();
    if (len == 0 && (u >> 32) % 3 == 0)
        start.s.deficit = 1 + (u >> 40) % 20;
}

/* One run-level multiply (kind 0: momentum's, 1: Adam's moments, 2: RMSprop's) with version r
 * (0: plain) of step t's rates, forward (mul) or reverse. */
static rv_gamma_code codes[2][MAX_T]; /* gamma, or beta1 and beta2, or beta2 and gamma */

static void run_step(int kind, int r, world *w, size_t t, int fwd, size_t p)
{
    if (kind == 0 && fwd)
        runs[r].mul(&alloc, &w->s, w->state, &codes[0][t], w->v, p);
    else if (kind == 0)
        runs[r].div(&alloc, &w->s, w->state, &codes[0][t], w->v, p);
    else if (fwd)
        mruns[kind - 1][r].mul(&alloc, &w->s, w->state, &codes[0][t], &codes[1][t], w->m, w->ms,
                               p);
    else
        mruns[kind - 1][r].div(&alloc, &w->s, w->state, &codes[0][t], &codes[1][t], w->m, w->ms,
                               p);
}

/* T forward runs then T reverse runs from `start` (or the reverse first), every lane version
 * against plain after each run; a clean start (valid states, no deficit) must come back bit for
 * bit. */
static void compare_from_start(int kind, size_t p, int corrupt)
{
    size_t steps = 1 + rnd() % MAX_T;
    for (size_t t = 0; t < steps; t++) {
        rv_gamma_code_make(&codes[0][t], kind ? some_beta() : some_n());
        /* RMSprop's gamma: on its grid, and now and then a numerator beyond 2^16, which the
         * lanes must leave to the plain loop (a symbol can then need two words; a rate above 1
         * can take a value out of 128 bits: no round trip then) */
        rv_gamma_code_make(&codes[1][t], kind != 2 || rnd() % 16 == 0 ? some_beta() : some_n());
        corrupt |= kind == 2 && codes[1][t].n > (1u << 16);
    }
    /* the reverse first too: it meets the start's full or short stacks directly (no round trip
     * then: dividing a large value by the rate can leave the range, the multiply cannot bring
     * it back) */
    int reverse_first = rnd() % 3 == 0;
    corrupt |= reverse_first;
    int n = kind ? n_mruns : n_runs;
    for (int r = 1; r < n; r++) {
        world_copy(&ref, &start, p);
        world_copy(&vec, &start, p);
        for (int half = 0; half < 2; half++) {
            int fwd = half == reverse_first;
            for (size_t k = 0; k < steps; k++) {
                size_t t = fwd ? k : steps - 1 - k;
                run_step(kind, 0, &ref, t, fwd, p);
                run_step(kind, r, &vec, t, fwd, p);
                world_same(&ref, &vec, p);
            }
            if (half == 0 && vec.s.deficit) /* borrowed words: no way back */
                corrupt = 1;
        }
        if (!corrupt && !start.s.deficit) {
            ck_assert_mem_eq(vec.v, start.v, p * sizeof *vec.v);
            ck_assert_mem_eq(vec.m, start.m, p * sizeof *vec.m);
            ck_assert_mem_eq(vec.ms, start.ms, p * sizeof *vec.ms);
            ck_assert_mem_eq(vec.state, start.state, p * sizeof *vec.state);
            ck_assert_uint_eq(vec.s.len, start.s.len);
            if (start.s.len)
                ck_assert_mem_eq(vec.s.words, start.s.words, start.s.len * sizeof(rv_word));
            ck_assert(!vec.s.deficit && !vec.s.broken && !vec.s.nomem);
        }
        (kind ? n_mcompared[kind - 1] : n_compared)[r] += (long)(2 * steps * p);
    }
}

/* _i: 0 momentum, 1 Adam's moments, 2 RMSprop's */
START_TEST(test_random_clean)
{
    for (int rep = 0; rep < (_i ? 2000 : 3000); rep++) {
        size_t p = some_p();
        make_start(p, 0);
        compare_from_start(_i, p, 0);
    }
}
END_TEST

START_TEST(test_corrupt_states)
{
    for (int rep = 0; rep < (_i ? 1000 : 1500); rep++) {
        size_t p = some_p();
        make_start(p, 1);
        compare_from_start(_i, p, 1);
    }
}
END_TEST

/* A long run on one block at gamma near 1, as training does: the stack grows from empty
 * (through rv_stack_grow) forward and is unwound to empty in reverse. */
START_TEST(test_long_training_like)
{
    static const uint32_t gammas[] = {58982, 65535, 32768, 1, 65536, 64880};
    for (int g = 0; g < 6; g++) {
        size_t p = RV_BLOCK - g;
        for (size_t i = 0; i < p; i++) {
            start.state[i] = RV_STATE_LOW;
            start.v[i] = some_v() >> (g * 7);
        }
        rv_free(&alloc, start.s.words);
        memset(&start.s, 0, sizeof start.s);
        rv_gamma_code c;
        rv_gamma_code_make(&c, gammas[g]);
        for (int r = 1; r < n_runs; r++) {
            world_copy(&ref, &start, p);
            world_copy(&vec, &start, p);
            for (int t = 0; t < 40; t++) {
                rv_mul_run_plain(&alloc, &ref.s, ref.state, &c, ref.v, p);
                runs[r].mul(&alloc, &vec.s, vec.state, &c, vec.v, p);
            }
            world_same(&ref, &vec, p);
            for (int t = 0; t < 40; t++) {
                rv_div_run_plain(&alloc, &ref.s, ref.state, &c, ref.v, p);
                runs[r].div(&alloc, &vec.s, vec.state, &c, vec.v, p);
                world_same(&ref, &vec, p);
            }
            ck_assert_mem_eq(vec.v, start.v, p * sizeof *vec.v);
            ck_assert_uint_eq(vec.s.len, 0);
            for (size_t i = 0; i < p; i++)
                ck_assert_uint_eq(vec.state[i], RV_STATE_LOW);
            n_compared[r] += 80L * (long)p;
        }
    }
}
END_TEST

/* Adam (_i 0) or RMSprop (_i 1) on one block as training runs it: moments from 0 and gradient
 * terms added between the multiplies (subtracted again in reverse), default and extreme rates;
 * the stack grows from empty forward and is unwound to empty in reverse. */
START_TEST(test_moments_training_like)
{
    static const uint32_t b1s[] = {15099494, 15099494, 1u << 23, (1u << 24) - 1, 1, 16760438};
    static const uint32_t b2s[2][6] = {{16760438, 16775538, 15099494, (1u << 24) - 1, 65536, 1},
                                       {58982, 65535, 32768, 65536, 1, 64880}}; /* gamma */
    const rv_moments_run *runs_i = mruns[_i];
    rv_moments_run_fn mul_plain = runs_i[0].mul, div_plain = runs_i[0].div;
    enum { STEPS = 30 };
    static rv_wide gm[STEPS][RV_BLOCK], gs[STEPS][RV_BLOCK];
    for (int b = 0; b < 6; b++) {
        size_t p = RV_BLOCK - (size_t)b;
        rv_gamma_code c1, c2;
        rv_gamma_code_make(&c1, b1s[b]);
        rv_gamma_code_make(&c2, b2s[_i][b]);
        for (size_t i = 0; i < p; i++) {
            start.state[i] = RV_STATE_LOW;
            start.m[i] = start.ms[i] = 0;
        }
        for (int t = 0; t < STEPS; t++)
            for (size_t i = 0; i < p; i++) { /* (1-beta1) g, (1-beta2) g^2: sums below 2^120 */
                uint64_t u = rnd();
                int sh = 20 + (int)(u % 40);
                gm[t][i] = u % 7 == 0 ? 0 : (rv_wide)(rnd() >> 8) << sh >> 6;
                if (u & 1)
                    gm[t][i] = -gm[t][i];
                gs[t][i] = gm[t][i] ? (rv_wide)(rnd() >> 8) << sh : 0;
            }
        rv_free(&alloc, start.s.words);
        memset(&start.s, 0, sizeof start.s);
        for (int r = 1; r < n_mruns; r++) {
            world_copy(&ref, &start, p);
            world_copy(&vec, &start, p);
            for (int t = 0; t < STEPS; t++) {
                mul_plain(&alloc, &ref.s, ref.state, &c1, &c2, ref.m, ref.ms, p);
                runs_i[r].mul(&alloc, &vec.s, vec.state, &c1, &c2, vec.m, vec.ms, p);
                for (size_t i = 0; i < p; i++) {
                    ref.m[i] += gm[t][i], vec.m[i] += gm[t][i];
                    ref.ms[i] += gs[t][i], vec.ms[i] += gs[t][i];
                }
            }
            world_same(&ref, &vec, p);
            for (int t = STEPS; t-- > 0;) {
                for (size_t i = 0; i < p; i++) {
                    ref.m[i] -= gm[t][i], vec.m[i] -= gm[t][i];
                    ref.ms[i] -= gs[t][i], vec.ms[i] -= gs[t][i];
                }
                div_plain(&alloc, &ref.s, ref.state, &c1, &c2, ref.m, ref.ms, p);
                runs_i[r].div(&alloc, &vec.s, vec.state, &c1, &c2, vec.m, vec.ms, p);
                world_same(&ref, &vec, p);
            }
            ck_assert_uint_eq(vec.s.len, 0);
            for (size_t i = 0; i < p; i++) {
                ck_assert(vec.m[i] == 0 && vec.ms[i] == 0);
                ck_assert_uint_eq(vec.state[i], RV_STATE_LOW);
            }
            n_mcompared[_i][r] += 2L * STEPS * (long)p;
        }
    }
}
END_TEST

/* The plain runs are the per-parameter operations in order (what momentum.c, adam.c and
 * rmsprop.c did before): _i 0 momentum's, 1 Adam's moments, 2 RMSprop's (s by beta2 with bits
 * 24, then b by gamma with bits 16; in reverse b first). */
START_TEST(test_plain_is_the_inline_op)
{
    size_t p = 1000;
    make_start(p, 0);
    world_copy(&ref, &start, p);
    world_copy(&vec, &start, p);
    rv_gamma_code c, c1, c2;
    unsigned bits2 = _i == 2 ? 16 : 24;
    rv_gamma_code_make(&c, 58982);
    rv_gamma_code_make(&c1, _i == 2 ? 16760438 : 15099494);
    rv_gamma_code_make(&c2, _i == 2 ? 58982 : 16760438);
    if (_i == 0) {
        rv_mul_run_plain(&alloc, &ref.s, ref.state, &c, ref.v, p);
        for (size_t i = 0; i < p; i++)
            vec.v[i] = rv_exact_mul(&alloc, &vec.s, &vec.state[i], &c, vec.v[i]);
    } else {
        (_i == 2 ? rv_moments16_mul_plain : rv_moments_mul_plain)(&alloc, &ref.s, ref.state, &c1,
                                                                  &c2, ref.m, ref.ms, p);
        for (size_t i = 0; i < p; i++) {
            vec.m[i] = rv_wide_mul(&alloc, &vec.s, &vec.state[i], &c1, 24, vec.m[i]);
            vec.ms[i] = rv_wide_mul(&alloc, &vec.s, &vec.state[i], &c2, bits2, vec.ms[i]);
        }
    }
    world_same(&ref, &vec, p);
    if (_i == 0) {
        rv_div_run_plain(&alloc, &ref.s, ref.state, &c, ref.v, p);
        for (size_t i = p; i-- > 0;)
            vec.v[i] = rv_exact_div(&alloc, &vec.s, &vec.state[i], &c, vec.v[i]);
    } else {
        (_i == 2 ? rv_moments16_div_plain : rv_moments_div_plain)(&alloc, &ref.s, ref.state, &c1,
                                                                  &c2, ref.m, ref.ms, p);
        for (size_t i = p; i-- > 0;) {
            vec.ms[i] = rv_wide_div(&alloc, &vec.s, &vec.state[i], &c2, bits2, vec.ms[i]);
            vec.m[i] = rv_wide_div(&alloc, &vec.s, &vec.state[i], &c1, 24, vec.m[i]);
        }
    }
    world_same(&ref, &vec, p);
}
END_TEST

/* The lanes' division for quotients below 2^32 (lanes.h's divmod32: a double estimate on eight
 * lanes, rv_divmod's on four), included here at both widths and called directly: quotient and
 * remainder against C's / and %, at the edges the reverse passes' data rarely reaches
 * (y = d 2^32 - 1 and the multiples of d next to it, where the estimate is off by one either
 * way), for divisors from 1 to 2^31 + 1 (the coders' n, f and f + 1). */
#define NL 4
#include "exact/lanes.h"
static LATTR void divmod32_lanes_4(uint64_t d, const uint64_t *y, uint64_t *q, uint64_t *r)
{
    VU rem, quo = L(divmod32)(L(load)(y), L(splat)(d), L(inv32_of)(d, UINT64_MAX / d), &rem);
    L(store)(q, quo);
    L(store)(r, rem);
}
#include "exact/lanes_end.h"
#define NL 8
#include "exact/lanes.h"
static LATTR void divmod32_lanes_8(uint64_t d, const uint64_t *y, uint64_t *q, uint64_t *r)
{
    VU rem, quo = L(divmod32)(L(load)(y), L(splat)(d), L(inv32_of)(d, UINT64_MAX / d), &rem);
    L(store)(q, quo);
    L(store)(r, rem);
}
#include "exact/lanes_end.h"

START_TEST(test_divmod32)
{
    const int width = _i == 0 ? 4 : 8;
    if (_i == 0 ? !__builtin_cpu_supports("avx2")
                : !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")))
        return; /* nor do the runs that use it: main reports the width NOT TESTED */
    const uint64_t fixed_d[] = {1, 2, 3, 7, 128, 32767, 32768, 65535, 65536, 65537, 9437184,
                                15099494, 16777215, 16777216, 131072, 2147483647, 2147483648u,
                                2147483649u};
    long checked = 0;
    for (size_t t = 0; t < 200 + sizeof fixed_d / sizeof *fixed_d; t++) {
        uint64_t d = t < sizeof fixed_d / sizeof *fixed_d ? fixed_d[t]
                                                         : 1 + rnd() % ((1ULL << 31) + 1);
        uint64_t top = d << 32; /* y < top */
        uint64_t ys[64];
        size_t ny = 0;
        ys[ny++] = 0;
        ys[ny++] = top - 1;
        ys[ny++] = top - d;
        ys[ny++] = top - d - 1;
        ys[ny++] = d - 1;
        ys[ny++] = d;
        for (int j = 0; j < 12; j++) { /* k d - 1, k d, k d + 1 for a random k < 2^32 */
            uint64_t k = 1 + rnd() % 0xffffffffu;
            ys[ny++] = k * d - 1;
            ys[ny++] = k * d;
            ys[ny++] = k * d + 1 < top ? k * d + 1 : top - 1;
        }
        while (ny % 8 || ny < 56)
            ys[ny++] = rnd() % top;
        for (size_t j0 = 0; j0 < ny; j0 += (size_t)width) {
            uint64_t q[8], r[8];
            (_i == 0 ? divmod32_lanes_4 : divmod32_lanes_8)(d, ys + j0, q, r);
            for (int j = 0; j < width; j++) {
                uint64_t y = ys[j0 + (size_t)j];
                if (q[j] != y / d || r[j] != y % d)
                    ck_abort_msg("divmod32 (%d lanes): %llu / %llu gave %llu rem %llu", width,
                                 (unsigned long long)y, (unsigned long long)d,
                                 (unsigned long long)q[j], (unsigned long long)r[j]);
                checked++;
            }
        }
    }
    ck_assert_int_gt(checked, 10000);
}
END_TEST

static Suite *coder_vec_suite(void)
{
    Suite *s = suite_create("coder_vec");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_divmod32, 0, 2);
    tcase_add_loop_test(tc, test_plain_is_the_inline_op, 0, 3);
    tcase_add_loop_test(tc, test_random_clean, 0, 3);
    tcase_add_loop_test(tc, test_corrupt_states, 0, 3);
    tcase_add_test(tc, test_long_training_like);
    tcase_add_loop_test(tc, test_moments_training_like, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    revl_allocator_init(&alloc);
    const char *skipped = "";
    n_runs = rv_coder_runs(runs, &skipped);
    n_mruns = rv_moments_runs(mruns[0], NULL); /* the same processor check: the same skips */
    if (rv_moments16_runs(mruns[1], NULL) != n_mruns)
        return EXIT_FAILURE;
    SRunner *sr = srunner_create(coder_vec_suite());
    srunner_set_fork_status(sr, CK_NOFORK); /* the counts below are gathered in this process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("check_coder_vec: compared against %s:", runs[0].name);
    for (int r = 1; r < n_runs; r++)
        printf(" %s (%ld parameter-steps)", runs[r].name, n_compared[r]);
    printf("%s\n", n_runs == 1 ? " NOTHING (no lane version runs here)" : "");
    for (int k = 0; k < 2; k++) {
        printf("check_coder_vec: %s compared against %s:", k ? "RMSprop's s, b" : "Adam's moments",
               mruns[k][0].name);
        for (int r = 1; r < n_mruns; r++)
            printf(" %s (%ld parameter-steps)", mruns[k][r].name, n_mcompared[k][r]);
        printf("%s\n", n_mruns == 1 ? " NOTHING (no lane version runs here)" : "");
    }
    if (*skipped)
        printf("check_coder_vec: *** NOT TESTED on this CPU: %s ***\n", skipped);
    if (n_runs == 1)
        return EXIT_FAILURE;
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
