/* lowdisc.c: the scrambled Halton sequence of lowdisc.h. Coordinate d of point n is the radical
 * inverse of n in the d-th prime base b, with every digit position j passed through its own
 * pseudo-random permutation of {0, ..., b-1} (keyed by seed, d and j): "random-permutation"
 * scrambling (Braaten & Weller 1979; Owen 2017, "A randomized Halton algorithm in R"). The
 * permutation of a position is the same for every n, so the first b^k points still fill the b^k
 * intervals of width b^-k one each; it breaks the plain sequence's correlation between
 * coordinates of large bases (points on lines) and makes the seed matter. Positions beyond the
 * index's digits see digit 0, whose image is a random digit: the point lands at a random place
 * inside its cell, down to 2^-50, never on its edge. */
#include "hyperopt/lowdisc.h"

/* digit places below this only move the point by less than 2^-50 */
#define PRECISION 0x1p50

int rv_lowdisc_init(rv_lowdisc *q, size_t dim, uint64_t seed, const revl_allocator *a)
{
    q->dim = dim;
    q->seed = seed;
    q->base = rv_alloc_array(a, dim, sizeof *q->base);
    if (!q->base)
        return REVL_ERR_NOMEM;
    uint32_t p = 2;
    for (size_t d = 0; d < dim; d++, p++) {
        for (;; p++) { /* trial division by the primes found so far */
            size_t i = 0;
            while (i < d && (uint64_t)q->base[i] * q->base[i] <= p && p % q->base[i])
                i++;
            if (i == d || (uint64_t)q->base[i] * q->base[i] > p)
                break;
        }
        q->base[d] = p;
    }
    return REVL_OK;
}

void rv_lowdisc_free(rv_lowdisc *q, const revl_allocator *a)
{
    rv_free(a, q->base);
    q->base = NULL;
}

/* A pseudo-random permutation of {0, ..., b-1}: three rounds of (xor a key, multiply by an odd
 * key, xor-shift), each a bijection of the k-bit words [0, 2^k) with 2^k the smallest power of
 * two >= b, then cycle-walking (an image >= b is mapped again until it falls below b), which
 * turns a bijection of [0, 2^k) into one of [0, b) (Black & Rogaway 2002). O(1) time and no
 * table, so any base and dimension cost the same. */
static uint32_t permute(uint32_t x, uint32_t b, const uint64_t key[3])
{
    unsigned bits = 1;
    while (((uint32_t)1 << bits) < b)
        bits++;
    const uint32_t mask = ((uint32_t)1 << bits) - 1, shift = (bits + 1) / 2;
    do {
        for (int r = 0; r < 3; r++) {
            x = (x ^ (uint32_t)key[r]) & mask;
            x = (x * ((uint32_t)(key[r] >> 32) | 1u)) & mask;
            x ^= x >> shift;
        }
    } while (x >= b);
    return x;
}

void rv_lowdisc_point(const rv_lowdisc *q, uint64_t index, double *u)
{
    for (size_t d = 0; d < q->dim; d++) {
        const uint32_t b = q->base[d];
        uint32_t digit[64];
        unsigned n_digits = 0;
        uint64_t n = index;
        for (double place = 1; place < PRECISION; place *= b) {
            uint64_t key[3], s = q->seed;
            s = rv_rand_u64(&s) ^ ((uint64_t)d << 8 | n_digits); /* the stream of (seed, d, j) */
            for (int r = 0; r < 3; r++)
                key[r] = rv_rand_u64(&s);
            digit[n_digits++] = permute((uint32_t)(n % b), b, key);
            n /= b;
        }
        /* Horner from the deepest place, starting at the middle of the last cell */
        double x = 0.5;
        while (n_digits)
            x = (x + digit[--n_digits]) / b;
        u[d] = x < 0x1p-53 ? 0x1p-53 : x > 1 - 0x1p-53 ? 1 - 0x1p-53 : x;
    }
}
