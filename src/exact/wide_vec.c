/* wide_vec.c: Adam's and RMSprop's exact multiply of their two moments over a run of parameters
 * (wide_vec.h). The plain loop is wide.h's inline operations in the optimisers' order, so its
 * bits are by construction the per-parameter ones; the lane versions (wide_lanes.h) are checked against it
 * (tests/check_coder_vec.c). The selection follows coder_vec.c's (rv_lanes_selected). */
#include "exact/wide_vec.h"

#include "exact/coder_vec.h"

#include <string.h>

/* The plain runs for a second moment of bits2 = 24 or 16 (a constant once inlined). */
static inline __attribute__((always_inline)) void
moments_mul_plain(unsigned bits2, const revl_allocator *a, rv_stack *st, uint64_t *restrict state,
                  const rv_gamma_code *c1, const rv_gamma_code *c2, rv_wide *restrict m,
                  rv_wide *restrict s, size_t n)
{
    rv_stack stk = *st; /* a local copy: the stores to m, s and state cannot alias it */
    for (size_t i = 0; i < n; i++) {
        m[i] = rv_wide_mul(a, &stk, &state[i], c1, 24, m[i]);
        s[i] = rv_wide_mul(a, &stk, &state[i], c2, bits2, s[i]);
    }
    *st = stk;
}

static inline __attribute__((always_inline)) void
moments_div_plain(unsigned bits2, const revl_allocator *a, rv_stack *st, uint64_t *restrict state,
                  const rv_gamma_code *c1, const rv_gamma_code *c2, rv_wide *restrict m,
                  rv_wide *restrict s, size_t n)
{
    rv_stack stk = *st;
    for (size_t i = n; i-- > 0;) {
        s[i] = rv_wide_div(a, &stk, &state[i], c2, bits2, s[i]);
        m[i] = rv_wide_div(a, &stk, &state[i], c1, 24, m[i]);
    }
    *st = stk;
}

/* flatten: with two callers gcc stopped inlining rv_wide_div_mag into the plain reverse, which
 * then ran about 4% slower (measured) */
#define PLAIN(name, op, bits2)                                                                  \
    __attribute__((flatten)) void name(const revl_allocator *a, rv_stack *st, uint64_t *restrict state,                  \
              const rv_gamma_code *c1, const rv_gamma_code *c2, rv_wide *restrict m,            \
              rv_wide *restrict s, size_t n)                                                    \
    {                                                                                           \
        op(bits2, a, st, state, c1, c2, m, s, n);                                               \
    }
PLAIN(rv_moments_mul_plain, moments_mul_plain, 24)
PLAIN(rv_moments_div_plain, moments_div_plain, 24)
PLAIN(rv_moments16_mul_plain, moments_mul_plain, 16)
PLAIN(rv_moments16_div_plain, moments_div_plain, 16)
#undef PLAIN

#if defined(__x86_64__) && defined(__GNUC__)
#define NL 4
#include "exact/lanes.h"
#include "exact/wide_lanes.h"
#include "exact/lanes_end.h"

#define NL 8
#include "exact/lanes.h"
#include "exact/wide_lanes.h"
#include "exact/lanes_end.h"

/* [0]: bits2 = 24, [1]: 16 */
static const rv_moments_run versions[2][3] = {
    {{rv_moments_mul_plain, rv_moments_div_plain, "plain"},
     {moments_mul_4, moments_div_4, "avx2 (4 lanes)"},
     {moments_mul_8, moments_div_8, "avx512 (8 lanes)"}},
    {{rv_moments16_mul_plain, rv_moments16_div_plain, "plain"},
     {moments16_mul_4, moments16_div_4, "avx2 (4 lanes)"},
     {moments16_mul_8, moments16_div_8, "avx512 (8 lanes)"}}};
#else
static const rv_moments_run versions[2][1] = {
    {{rv_moments_mul_plain, rv_moments_div_plain, "plain"}},
    {{rv_moments16_mul_plain, rv_moments16_div_plain, "plain"}}};
#endif

int rv_moments_runs(rv_moments_run *out, const char **skipped)
{
    int n = rv_lanes_versions(skipped);
    memcpy(out, versions[0], (size_t)n * sizeof *out);
    return n;
}

int rv_moments16_runs(rv_moments_run *out, const char **skipped)
{
    int n = rv_lanes_versions(skipped);
    memcpy(out, versions[1], (size_t)n * sizeof *out);
    return n;
}

rv_moments_run rv_moments_run_select(void) { return versions[0][rv_lanes_selected()]; }

rv_moments_run rv_moments16_run_select(void) { return versions[1][rv_lanes_selected()]; }
