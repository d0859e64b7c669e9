/* round_lanes.h: the lane code of round_vec.c, included once per vector width after
 * exact/lanes.h. Each lane does rv_mul_rounded's / rv_wide_mul_rounded's integer operations,
 * modulo 2^64 (and 2^128 as a high and a low 64-bit half), so the bits are the plain ones. */

static LATTR void L(round_mul64)(int64_t *v, size_t n_v, uint32_t n)
{
    const VU vn = L(splat)(n), half = L(splat)(0x8000);
    size_t i = 0;
    for (; i + NL <= n_v; i += NL) {
        VU x = L(load)(v + i);
        VU q = (VU)((VI)x >> 16), r = x & 0xffff;
        L(store)(v + i, MULLO(q, vn) + ((MULU(r, vn) + half) >> 16));
    }
    _mm256_zeroupper(); /* see update.c: no dirty upper state into the plain code */
    rv_round_mul64_plain(v + i, n_v - i, n);
}

/* q n + t modulo 2^128 for q = (qh, ql), n < 2^32 and t < 2^32, as wide_lanes.h's wide_mul:
 * ql n = a0 + a1 2^32 from two 32-bit products */
static inline LATTR void L(round_mul128_at)(rv_wide *p, VU vn, VU half, VU low_mask,
                                            unsigned bits)
{
    const VU m32 = L(splat)(0xffffffffu);
    VU lo, hi;
    L(load_wide)(p, &lo, &hi);
    VU ql = (lo >> bits) | (hi << (64 - bits)), qh = (VU)((VI)hi >> bits);
    VU t = (MULU(lo & low_mask, vn) + half) >> bits;
    VU a0 = MULU(ql, vn), a1 = MULU(ql >> 32, vn);
    VU yl = a0 + (a1 << 32);
    VU yh = MULLO(qh, vn) + (a1 >> 32) + (((a0 >> 32) + (a1 & m32)) >> 32);
    VU yl2 = yl + t;
    yh -= (VU)((VI)(yl2 < t)); /* the carry: the comparison's mask is -1 */
    L(store_wide)(p, yl2, yh);
}

static LATTR void L(round_mul128)(rv_wide *x, size_t n_x, uint32_t n, unsigned bits)
{
    /* bits is 16 or 24 (round_vec.h), the two that check_round_vec compares with the plain loop */
    const VU vn = L(splat)(n), half = L(splat)(1ull << (bits - 1));
    const VU low_mask = L(splat)((1ull << bits) - 1);
    size_t i = 0;
    for (; i + NL <= n_x; i += NL)
        L(round_mul128_at)(x + i, vn, half, low_mask, bits);
    _mm256_zeroupper();
    rv_round_mul128_plain(x + i, n_x - i, n, bits);
}
