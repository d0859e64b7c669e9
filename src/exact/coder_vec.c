/* coder_vec.c: the exact multiply by gamma over a run of parameters (coder_vec.h). The plain
 * loop is built from infobuf.h's inline operations, so its bits are by construction the
 * per-parameter ones; the lane versions (coder_lanes.h) are checked against it. */
#include "exact/coder_vec.h"

#include <string.h>

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

static const rv_coder_run versions[3] = {{rv_mul_run_plain, rv_div_run_plain, "plain"},
                                         {mul_run_4, div_run_4, "avx2 (4 lanes)"},
                                         {mul_run_8, div_run_8, "avx512 (8 lanes)"}};

/* the index in versions[] of the widest this processor runs */
static int lanes_cpu(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return 2;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#else
static const rv_coder_run versions[1] = {{rv_mul_run_plain, rv_div_run_plain, "plain"}};

static int lanes_cpu(void) { return 0; }
#endif

int rv_lanes_selected(void) { return plain_only ? 0 : lanes_cpu(); }

int rv_lanes_versions(const char **skipped)
{
    int w = lanes_cpu();
    if (skipped) {
#if defined(__x86_64__) && defined(__GNUC__)
        *skipped = w == 0 ? "avx2 (4 lanes), avx512 (8 lanes)" : w == 1 ? "avx512 (8 lanes)" : "";
#else
        *skipped = "avx2 (4 lanes), avx512 (8 lanes): not an x86-64 build";
#endif
    }
    return w + 1;
}

int rv_coder_runs(rv_coder_run *out, const char **skipped)
{
    int n = rv_lanes_versions(skipped);
    memcpy(out, versions, (size_t)n * sizeof *out);
    return n;
}

rv_coder_run rv_coder_run_select(void) { return versions[rv_lanes_selected()]; }
