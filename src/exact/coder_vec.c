/* coder_vec.c: the exact multiply by gamma over a run of parameters (coder_vec.h). The plain
 * loop is built from infobuf.h's inline operations, so its bits are by construction the
 * per-parameter ones; the lane versions (coder_lanes.h) are checked against it. */
#include "exact/coder_vec.h"

void rv_mul_run_plain(const revl_allocator *a, rv_stack *s, uint64_t *restrict state,
                      const rv_gamma_code *c, int64_t *restrict v, size_t n)
{
    rv_stack stk = *s; /* a local copy: the stores to v and state cannot alias it */
    for (size_t i = 0; i < n; i++)
        v[i] = rv_exact_mul(a, &stk, &state[i], c, v[i]);
    *s = stk;
}

void rv_div_run_plain(const revl_allocator *a, rv_stack *s, uint64_t *restrict state,
                      const rv_gamma_code *c, int64_t *restrict v, size_t n)
{
    rv_stack stk = *s;
    for (size_t i = n; i-- > 0;)
        v[i] = rv_exact_div(a, &stk, &state[i], c, v[i]);
    *s = stk;
}

static const rv_coder_run plain = {rv_mul_run_plain, rv_div_run_plain, "plain"};
static int plain_only; /* rv_coder_plain_only: tests and benchmarks only */

void rv_coder_plain_only(int on) { plain_only = on; }

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* four lanes: AVX2 */
typedef unsigned long long v4u __attribute__((vector_size(32)));
typedef long long v4i __attribute__((vector_size(32)));
#define VU v4u
#define VI v4i
#define NL 4
#define L(name) name##_4
#define LATTR __attribute__((target("avx2")))
#define MULU(a, b) ((VU)_mm256_mul_epu32((__m256i)(a), (__m256i)(b)))
#define MASK(m) _mm256_movemask_pd((__m256d)(m))
#include "exact/coder_lanes.h"
#undef VU
#undef VI
#undef NL
#undef L
#undef LATTR
#undef MULU
#undef MASK

/* eight lanes: AVX-512 F and DQ (the masks as bits) */
typedef unsigned long long v8u __attribute__((vector_size(64)));
typedef long long v8i __attribute__((vector_size(64)));
#define VU v8u
#define VI v8i
#define NL 8
#define L(name) name##_8
#define LATTR __attribute__((target("avx512f,avx512dq")))
#define MULU(a, b) ((VU)_mm512_mul_epu32((__m512i)(a), (__m512i)(b)))
#define MASK(m) ((int)_mm512_movepi64_mask((__m512i)(m)))
#include "exact/coder_lanes.h"
#undef VU
#undef VI
#undef NL
#undef L
#undef LATTR
#undef MULU
#undef MASK

static const rv_coder_run avx2 = {mul_run_4, div_run_4, "avx2 (4 lanes)"};
static const rv_coder_run avx512 = {mul_run_8, div_run_8, "avx512 (8 lanes)"};

static int has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

static int has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

int rv_coder_runs(rv_coder_run *out, const char **skipped)
{
    int m = 0;
    out[m++] = plain;
    if (has_avx2())
        out[m++] = avx2;
    if (has_avx512())
        out[m++] = avx512;
    if (skipped)
        *skipped = !has_avx2() ? "avx2 (4 lanes), avx512 (8 lanes)"
                   : !has_avx512() ? "avx512 (8 lanes)" : "";
    return m;
}

rv_coder_run rv_coder_run_select(void)
{
    if (plain_only)
        return plain;
    if (has_avx512())
        return avx512;
    if (has_avx2())
        return avx2;
    return plain;
}
#else
int rv_coder_runs(rv_coder_run *out, const char **skipped)
{
    out[0] = plain;
    if (skipped)
        *skipped = "avx2 (4 lanes), avx512 (8 lanes): not an x86-64 build";
    return 1;
}

rv_coder_run rv_coder_run_select(void) { return plain; }
#endif
