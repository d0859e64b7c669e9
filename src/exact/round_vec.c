/* round_vec.c: the rounded multiplies of steps whose bits are not kept, over a run of
 * parameters (round_vec.h). The plain loops are the per-parameter operations; the lane versions
 * (round_lanes.h) are checked against them (tests/check_round_vec.c). The selection follows
 * coder_vec.c's (rv_lanes_selected). */
#include "exact/round_vec.h"

#include "exact/coder_vec.h"

#include <string.h>

void rv_round_mul64_plain(int64_t *v, size_t n_v, uint32_t n)
{
    for (size_t i = 0; i < n_v; i++)
        v[i] = rv_mul_rounded(v[i], n);
}

void rv_round_mul128_plain(rv_wide *x, size_t n_x, uint32_t n, unsigned bits)
{
    for (size_t i = 0; i < n_x; i++)
        x[i] = rv_wide_mul_rounded(x[i], n, bits);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define NL 4
#include "exact/lanes.h"
#include "exact/round_lanes.h"
#include "exact/lanes_end.h"

#define NL 8
#include "exact/lanes.h"
#include "exact/round_lanes.h"
#include "exact/lanes_end.h"

static const rv_round_run versions[3] = {
    {rv_round_mul64_plain, rv_round_mul128_plain, "plain"},
    {round_mul64_4, round_mul128_4, "avx2 (4 lanes)"},
    {round_mul64_8, round_mul128_8, "avx512 (8 lanes)"}};
#else
static const rv_round_run versions[1] = {{rv_round_mul64_plain, rv_round_mul128_plain, "plain"}};
#endif

int rv_round_runs(rv_round_run *out, const char **skipped)
{
    int n = rv_lanes_versions(skipped);
    memcpy(out, versions, (size_t)n * sizeof *out);
    return n;
}

rv_round_run rv_round_run_select(void) { return versions[rv_lanes_selected()]; }
