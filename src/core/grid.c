/* grid.c: revl_fixed_round, the trainer's fixed-point rounding offered to callers, so that a
 * finite-difference check can start from (and compare with) the w0 training really uses. */
#include "base/internal.h"
#include "exact/fixed.h"

int revl_fixed_round(unsigned int frac_bits, double *x, size_t n)
{
    if (frac_bits < 1 || frac_bits > 62 || (!x && n))
        return REVL_ERR_INVALID;
    rv_fixed f = rv_fixed_make(frac_bits);
    int64_t q;
    for (size_t i = 0; i < n; i++) /* all checked first: on error nothing changes */
        if (!rv_to_fixed(f, x[i], &q))
            return REVL_ERR_RANGE;
    for (size_t i = 0; i < n; i++) {
        rv_to_fixed(f, x[i], &q);
        x[i] = rv_to_double(f, q);
    }
    return REVL_OK;
}
