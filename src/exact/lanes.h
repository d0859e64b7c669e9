/* lanes.h: the vector lanes shared by the exact run-level coders (coder_lanes.h for momentum's
 * 64-bit multiply, wide_lanes.h for Adam's and RMSprop's 128-bit ones) and the rounded
 * multiplies of steps whose bits are not kept (round_lanes.h). Included once per width, with NL
 * defined as 4 (AVX2) or 8 (AVX-512 F and DQ, the masks as bits); it defines VU (NL unsigned
 * 64-bit integers), VI (NL signed ones, also the comparison masks), L(name) (the name with the
 * width's suffix), LATTR (the width's target attribute), MULU(a, b) (the 64-bit products of the
 * low 32 bits of each lane), MULLO(a, b) (a b modulo 2^64 for b < 2^32: one instruction with
 * AVX-512 DQ, two 32-bit products with AVX2), MASK(m) (a comparison's lanes as the bits of an
 * int) and the helpers below (load_wide / store_wide: 128-bit values as two vectors);
 * exact/lanes_end.h undefines the macros again. The library is built without -march: these
 * functions run only behind a run-time check of the processor. */
#include "exact/wide.h"

#include <immintrin.h>

#if NL == 4
typedef unsigned long long v4u __attribute__((vector_size(32)));
typedef long long v4i __attribute__((vector_size(32)));
#define VU v4u
#define VI v4i
#define L(name) name##_4
#define LATTR __attribute__((target("avx2")))
#define MULU(a, b) ((VU)_mm256_mul_epu32((__m256i)(a), (__m256i)(b)))
#define MASK(m) _mm256_movemask_pd((__m256d)(m))
#define MULLO(a, b) (MULU(a, b) + (MULU((a) >> 32, b) << 32))
#elif NL == 8
typedef unsigned long long v8u __attribute__((vector_size(64)));
typedef long long v8i __attribute__((vector_size(64)));
#define VU v8u
#define VI v8i
#define L(name) name##_8
#define LATTR __attribute__((target("avx512f,avx512dq")))
#define MULU(a, b) ((VU)_mm512_mul_epu32((__m512i)(a), (__m512i)(b)))
#define MASK(m) ((int)_mm512_movepi64_mask((__m512i)(m)))
#define MULLO(a, b) ((VU)_mm512_mullo_epi64((__m512i)(a), (__m512i)(b)))
#else
#error "lanes.h: NL must be 4 or 8"
#endif

static inline LATTR VU L(splat)(uint64_t a) { return (VU){0} + a; }

static inline LATTR VU L(load)(const void *p)
{
    VU x;
    __builtin_memcpy(&x, p, sizeof x);
    return x;
}

static inline LATTR void L(store)(void *p, VU x) { __builtin_memcpy(p, &x, sizeof x); }

/* m ? a : b lane by lane */
static inline LATTR VU L(sel)(VI m, VU a, VU b) { return ((VU)m & a) | (~(VU)m & b); }

/* rv_mulhi64(a, b) for a < 2^31 and any b (a slot times a symbol reciprocal): the two
 * partial products cannot carry out of 64 bits */
static inline LATTR VU L(mulhi_small)(VU a, VU b)
{
    return (MULU(a, b >> 32) + (MULU(a, b) >> 32)) >> 32;
}

/* rv_mulhi64 for any a, b: four 32-bit products */
static inline LATTR VU L(mulhi)(VU a, VU b)
{
    VU ah = a >> 32, bh = b >> 32, m32 = L(splat)(0xffffffffu);
    VU ll = MULU(a, b), lh = MULU(a, bh), hl = MULU(ah, b), hh = MULU(ah, bh);
    VU mid = (ll >> 32) + (lh & m32) + (hl & m32);
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

/* y / d and y % d for y < 2^63 and d < 2^32, by rv_divmod's estimate: for y < 2^63 it is at
 * most one below the quotient (y inv / 2^64 > y/d - 1/(2d) - 1/2, so its floor is more than
 * y/d - 2), so one correction makes it exact, and the remainder before it, < 2d, compares as
 * signed. The quotient is unique: these are rv_divmod's bits. */
static inline LATTR VU L(divmod)(VU y, VU d, VU inv, VU *rem)
{
    VU q = L(mulhi)(y, inv);
    VU r = y - MULLO(q, d);
    VU over = (VU)((VI)r >= (VI)d);
    *rem = r - (over & d);
    return q - over; /* over is all ones: q + 1 */
}

/* The same for y < d 2^32 (a quotient below 2^32), the divisions of the reverse passes' coders
 * that take most of their time. inv32 is L(inv32_of)(d, rv_divmod's inv) in every lane.
 *  - Four lanes: rv_divmod's estimate as above; it is never above the quotient, so it is below
 *    2^32 and its product with d is one 32-bit multiply (MULLO is two with AVX2).
 *  - Eight lanes: a double estimate (AVX-512 DQ converts 64-bit integers), inv32 the bits of
 *    1/d rounded. y rounded, times 1/d rounded, rounded, is within 3.01 2^-53 of y/d relative,
 *    so within 2^-19 of it (y/d < 2^32): truncated, it is q - 1, q or q + 1. Capped at 2^32 - 1
 *    (it is q + 1 = 2^32 only for q = 2^32 - 1), its product with d is again one 32-bit
 *    multiply, and the remainder y - e d lies in (-d, 2d), so one correction either way makes
 *    it exact: the unique quotient, rv_divmod's bits. (Directed rounding modes double the
 *    error bound, still far below 1/2.) About half of rv_divmod's operations: no 64-bit
 *    high product. */
static inline LATTR VU L(inv32_of)(uint64_t d, uint64_t inv)
{
#if NL == 4
    (void)d;
    return L(splat)(inv);
#else
    (void)inv;
    double r = 1.0 / (double)d;
    uint64_t bits;
    __builtin_memcpy(&bits, &r, sizeof bits);
    return L(splat)(bits);
#endif
}

static inline LATTR VU L(divmod32)(VU y, VU d, VU inv32, VU *rem)
{
#if NL == 4
    VU q = L(mulhi)(y, inv32);
    VU r = y - MULU(q, d);
    VU over = (VU)((VI)r >= (VI)d);
    *rem = r - (over & d);
    return q - over;
#else
    __m512d e = _mm512_mul_pd(_mm512_cvtepu64_pd((__m512i)y), (__m512d)inv32);
    VU q = (VU)_mm512_min_epu64(_mm512_cvttpd_epu64(e), (__m512i)L(splat)(0xffffffffu));
    VU r = y - MULU(q, d);
    VU under = (VU)((VI)r < 0), over = (VU)((VI)r >= (VI)d);
    *rem = r + (under & d) - (over & d);
    return q + under - over; /* the masks are all ones: q - 1 and q + 1 */
#endif
}

/* NL consecutive rv_wide (wide.h) as their low and high halves, lane j = element j */
#if NL == 4
static inline LATTR void L(load_wide)(const rv_wide *p, VU *lo, VU *hi)
{
    __m256i a = _mm256_loadu_si256((const __m256i *)p);
    __m256i b = _mm256_loadu_si256((const __m256i *)p + 1);
    /* unpack gives the order 0, 2, 1, 3; the permute puts 1 and 2 back */
    *lo = (VU)_mm256_permute4x64_epi64(_mm256_unpacklo_epi64(a, b), 0xd8);
    *hi = (VU)_mm256_permute4x64_epi64(_mm256_unpackhi_epi64(a, b), 0xd8);
}

static inline LATTR void L(store_wide)(rv_wide *p, VU lo, VU hi)
{
    __m256i l = _mm256_permute4x64_epi64((__m256i)lo, 0xd8);
    __m256i h = _mm256_permute4x64_epi64((__m256i)hi, 0xd8);
    _mm256_storeu_si256((__m256i *)p, _mm256_unpacklo_epi64(l, h));
    _mm256_storeu_si256((__m256i *)p + 1, _mm256_unpackhi_epi64(l, h));
}
#else
static inline LATTR void L(load_wide)(const rv_wide *p, VU *lo, VU *hi)
{
    __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512((const __m512i *)p + 1);
    *lo = (VU)_mm512_permutex2var_epi64(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b);
    *hi = (VU)_mm512_permutex2var_epi64(a, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), b);
}

static inline LATTR void L(store_wide)(rv_wide *p, VU lo, VU hi)
{
    __m512i l = (__m512i)lo, h = (__m512i)hi;
    __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    __m512i second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    _mm512_storeu_si512(p, _mm512_permutex2var_epi64(l, first, h));
    _mm512_storeu_si512((__m512i *)p + 1, _mm512_permutex2var_epi64(l, second, h));
}
#endif
