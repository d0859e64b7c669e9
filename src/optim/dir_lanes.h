/* dir_lanes.h: AVX-512 primitives on eight 128-bit fixed-point values (wide.h's rv_wide) held
 * as two vectors of words (lo, hi), shared by adam_dir.c and rms_dir.c. Each gives the bits of
 * wide.h's scalar operation on every lane it claims (the callers check which). RV_DIR_LANES is 1
 * where they exist (x86-64 with GCC or Clang; the processor is asked at run time). */
#ifndef REVL_DIR_LANES_H
#define REVL_DIR_LANES_H

#include "exact/wide.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define RV_DIR_LANES 1
#include <immintrin.h>

#define RV_DIR_LANES_FN __attribute__((target("avx512f,avx512dq"))) static inline

/* Eight rv_wide at p (16 words, low word first) as their low and high words. */
RV_DIR_LANES_FN void wide8_load(const rv_wide *p, __m512i *lo, __m512i *hi)
{
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    __m512i a = _mm512_loadu_si512((const void *)p), b = _mm512_loadu_si512((const void *)(p + 4));
    *lo = _mm512_permutex2var_epi64(a, even, b);
    *hi = _mm512_permutex2var_epi64(a, odd, b);
}

/* The first k (0..8) of eight (lo, hi) stored to p: two stores of four rv_wide each. */
RV_DIR_LANES_FN void wide8_store(rv_wide *p, unsigned k, __m512i lo, __m512i hi)
{
    const __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    __mmask8 lo4 = k >= 4 ? 0xff : (__mmask8)((1u << (2 * k)) - 1);
    __mmask8 hi4 = k >= 4 ? (__mmask8)((1u << (2 * (k - 4))) - 1) : 0;
    _mm512_mask_storeu_epi64((void *)p, lo4, _mm512_permutex2var_epi64(lo, first, hi));
    _mm512_mask_storeu_epi64((void *)(p + 4), hi4, _mm512_permutex2var_epi64(lo, second, hi));
}

/* Eight (lo, hi) as doubles, as rv_wide_to_double does: the high word, the low word's two 32-bit
 * halves (vcvtqq2pd rounds to nearest as cvtsi2sd does, and the halves are exact), the same two
 * rounded sums. */
RV_DIR_LANES_FN __m512d wide8_double(__m512i lo, __m512i hi)
{
    __m512d lo_hi = _mm512_cvtepi64_pd(_mm512_srli_epi64(lo, 32));
    __m512d lo_lo = _mm512_cvtepi64_pd(_mm512_and_si512(lo, _mm512_set1_epi64(0xffffffff)));
    __m512d dlo = _mm512_add_pd(_mm512_mul_pd(lo_hi, _mm512_set1_pd(0x1p32)), lo_lo);
    return _mm512_add_pd(_mm512_mul_pd(_mm512_cvtepi64_pd(hi), _mm512_set1_pd(0x1p64)), dlo);
}

/* Eight rv_wide at p as doubles. */
RV_DIR_LANES_FN __m512d wide8_to_double(const rv_wide *p)
{
    __m512i lo, hi;
    wide8_load(p, &lo, &hi);
    return wide8_double(lo, hi);
}

/* rv_wide_round of eight y as (lo, hi) words, for lanes that are not the legacy ones (y >= 0
 * or y <= -2^64) and below 2^126: below 2^52 the same add and subtract of 1.5 2^52 and
 * truncation; above, the mantissa shifted by e - 1075 (in [0, 74): variable shifts by 64 or
 * more give 0) and negated as 128 bits where y < 0. */
RV_DIR_LANES_FN void round8(__m512d y, __m512i *lo, __m512i *hi)
{
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
    __m512d ay = _mm512_abs_pd(y);
    __mmask8 small = _mm512_cmp_pd_mask(ay, _mm512_set1_pd(0x1p52), _CMP_LT_OQ);
    __m512d t = _mm512_or_pd(_mm512_and_pd(y, _mm512_set1_pd(-0.0)), _mm512_set1_pd(0x1.8p52));
    __m512i r = _mm512_cvttpd_epi64(_mm512_sub_pd(_mm512_add_pd(y, t), t));
    __m512i b = _mm512_castpd_si512(y);
    __m512i sh = _mm512_sub_epi64(_mm512_and_si512(_mm512_srli_epi64(b, 52), _mm512_set1_epi64(0x7ff)),
                                  _mm512_set1_epi64(1075));
    __m512i mant = _mm512_or_si512(_mm512_and_si512(b, _mm512_set1_epi64((1ll << 52) - 1)),
                                   _mm512_set1_epi64(1ll << 52));
    __m512i l = _mm512_sllv_epi64(mant, sh);
    __m512i h = _mm512_or_si512(_mm512_srlv_epi64(mant, _mm512_sub_epi64(_mm512_set1_epi64(64), sh)),
                                _mm512_sllv_epi64(mant, _mm512_sub_epi64(sh, _mm512_set1_epi64(64))));
    __mmask8 neg = _mm512_movepi64_mask(b);
    __m512i nl = _mm512_sub_epi64(zero, l);
    __m512i nh = _mm512_sub_epi64(zero, h);
    nh = _mm512_mask_sub_epi64(nh, _mm512_test_epi64_mask(l, l), nh, one);
    l = _mm512_mask_blend_epi64(neg, l, nl);
    h = _mm512_mask_blend_epi64(neg, h, nh);
    *lo = _mm512_mask_blend_epi64(small, l, r);
    *hi = _mm512_mask_blend_epi64(small, h, zero);
}

/* x + y (sub: x - y) on (lo, hi) words; the lanes whose result is within (-2^126, 2^126). */
RV_DIR_LANES_FN __mmask8 add8(int sub, __m512i xl, __m512i xh, __m512i yl, __m512i yh,
                              __m512i *lo, __m512i *hi)
{
    const __m512i one = _mm512_set1_epi64(1);
    __m512i l, h;
    if (sub) {
        l = _mm512_sub_epi64(xl, yl);
        h = _mm512_mask_sub_epi64(_mm512_sub_epi64(xh, yh), _mm512_cmplt_epu64_mask(xl, yl),
                                  _mm512_sub_epi64(xh, yh), one);
    } else {
        l = _mm512_add_epi64(xl, yl);
        h = _mm512_mask_add_epi64(_mm512_add_epi64(xh, yh), _mm512_cmplt_epu64_mask(l, xl),
                                  _mm512_add_epi64(xh, yh), one);
    }
    *lo = l;
    *hi = h;
    const __m512i lim = _mm512_set1_epi64(1ll << 62), nlim = _mm512_set1_epi64(-(1ll << 62));
    /* s < 2^126 and s > -2^126: hi < 2^62, and hi > -2^62 or (hi = -2^62 and lo != 0) */
    return _mm512_cmplt_epi64_mask(h, lim) &
           (_mm512_cmpgt_epi64_mask(h, nlim) |
            (_mm512_cmpeq_epi64_mask(h, nlim) & _mm512_test_epi64_mask(l, l)));
}

#else
#define RV_DIR_LANES 0
#endif

#endif
