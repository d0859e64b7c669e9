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
/* four lanes: AVX2 */
#define NL 4
#include "exact/lanes.h"
#include "exact/coder_lanes.h"
#include "exact/lanes_end.h"

/* eight lanes: AVX-512 F and DQ */
#define NL 8
#include "exact/lanes.h"
#include "exact/coder_lanes.h"
#include "exact/lanes_end.h"

static const rv_coder_run avx2 = {mul_run_4, div_run_4, "avx2 (4 lanes)"};
static const rv_coder_run avx512 = {mul_run_8, div_run_8, "avx512 (8 lanes)"};

int rv_lanes_cpu(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return 8;
    return __builtin_cpu_supports("avx2") ? 4 : 0;
}
#else
/* never chosen: rv_lanes_cpu() is 0 */
static const rv_coder_run avx2 = {rv_mul_run_plain, rv_div_run_plain, "plain"};
static const rv_coder_run avx512 = {rv_mul_run_plain, rv_div_run_plain, "plain"};

int rv_lanes_cpu(void) { return 0; }
#endif

int rv_lanes_selected(void) { return plain_only ? 0 : rv_lanes_cpu(); }

const char *rv_lanes_skipped(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    int w = rv_lanes_cpu();
    return w == 0 ? "avx2 (4 lanes), avx512 (8 lanes)" : w == 4 ? "avx512 (8 lanes)" : "";
#else
    return "avx2 (4 lanes), avx512 (8 lanes): not an x86-64 build";
#endif
}

int rv_coder_runs(rv_coder_run *out, const char **skipped)
{
    int m = 0, w = rv_lanes_cpu();
    out[m++] = plain;
    if (w >= 4)
        out[m++] = avx2;
    if (w >= 8)
        out[m++] = avx512;
    if (skipped)
        *skipped = rv_lanes_skipped();
    return m;
}

rv_coder_run rv_coder_run_select(void)
{
    int w = rv_lanes_selected();
    return w == 8 ? avx512 : w == 4 ? avx2 : plain;
}
