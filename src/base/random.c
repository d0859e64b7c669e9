/* random.c: a small deterministic generator (splitmix64) so that init noise and minibatch
 * orders are the same bits on every platform and for every thread count. */
#include "base/internal.h"

#include <math.h>

uint64_t rv_rand_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double rv_rand_uniform(uint64_t *state)
{
    /* 53 random bits, shifted off 0 so that log() below is finite */
    return ((double)(rv_rand_u64(state) >> 11) + 0.5) * 0x1p-53;
}

double rv_rand_normal(uint64_t *state)
{
    double u1 = rv_rand_uniform(state), u2 = rv_rand_uniform(state);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
