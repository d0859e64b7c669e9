/* ratio_lanes.c: ratio_run.h's runs with their arithmetic in eight AVX-512 IFMA lanes, for
 * W = w 2^60 + lo. Lanes have no 64 x 64 -> 128-bit multiply: the forward's 123 x 64-bit product
 * k (W ^ sg) + h' and the reverse's high words v u1 (Moller-Granlund's reciprocal division) are
 * built from 52-bit limbs with vpmadd52luq/huq. The lanes compute exactly what
 * rv_ratio_run_one, rv_ratio_run_least_one and rv_ratio_run_restore_one compute, value by value
 * (the same integers, the same doubles), and hand the flags back as masks; the pushes and pops
 * then run as in the plain runs, in index order (reverse order back), and S is summed from the
 * lanes' terms in the plain order, so the buffer and every bit are the plain ones
 * (tests/check_ratio.c compares them). The selection honours rv_coder_plain_only. */
#include "exact/ratio_run.h"

#include "exact/coder_vec.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define LOW 60
#define LATTR __attribute__((target("avx512f,avx512dq,avx512ifma")))

LATTR static void
run_mul_ifma(const revl_allocator *al, rv_stack *s, uint64_t *state, const rv_ratio *r,
             int64_t *restrict w, int64_t *restrict lo, double *restrict wd, double inv_scale,
             size_t n, int keep)
{
    const __m512i m52 = _mm512_set1_epi64((1ll << 52) - 1), m60 = _mm512_set1_epi64((1ll << 60) - 1);
    const __m512i m20 = _mm512_set1_epi64((1ll << 20) - 1), zero = _mm512_setzero_si512();
    const __m512i K = _mm512_set1_epi64((long long)r->k), D = _mm512_set1_epi64((long long)r->d);
    const __m512i H = _mm512_set1_epi64((long long)r->h);
    const __m512i k0 = _mm512_set1_epi64((long long)(r->k & ((1ull << 52) - 1)));
    const __m512i k1 = _mm512_set1_epi64((long long)(r->k >> 52));
    const __m512d inv = _mm512_set1_pd(inv_scale);
    for (size_t c0 = 0; c0 < n; c0 += RV_RATIO_RUN) {
        size_t m = n - c0 < RV_RATIO_RUN ? n - c0 : RV_RATIO_RUN, j = 0;
        uint64_t ends = 0, upper = 0;
        for (; j + 8 <= m; j += 8) {
            size_t i = c0 + j;
            __m512i wv = _mm512_loadu_si512(w + i), lv = _mm512_loadu_si512(lo + i);
            __m512i sg = _mm512_srai_epi64(wv, 63);
            __m512i xl = _mm512_xor_si512(_mm512_or_si512(_mm512_slli_epi64(wv, LOW), lv), sg);
            __m512i xh = _mm512_xor_si512(_mm512_srai_epi64(wv, 64 - LOW), sg); /* < 2^59 */
            __m512i hh = _mm512_add_epi64(H, _mm512_and_si512(K, sg));        /* < 2^64 */
            /* x = xh 2^64 + xl in limbs x0 + x1 2^52 + x2 2^104 (x2 < 2^19), k = k0 + k1 2^52 */
            __m512i x0 = _mm512_and_si512(xl, m52);
            __m512i x1 = _mm512_and_si512(
                _mm512_or_si512(_mm512_srli_epi64(xl, 52), _mm512_slli_epi64(xh, 12)), m52);
            __m512i x2 = _mm512_srli_epi64(xh, 40);
            /* columns of 2^(52 c), each a sum of at most four terms < 2^52 */
            __m512i c0v = _mm512_and_si512(hh, m52), c1 = _mm512_srli_epi64(hh, 52);
            __m512i c2 = zero, c3 = zero;
            c0v = _mm512_madd52lo_epu64(c0v, x0, k0);
            c1 = _mm512_madd52hi_epu64(c1, x0, k0);
            c1 = _mm512_madd52lo_epu64(c1, x0, k1);
            c1 = _mm512_madd52lo_epu64(c1, x1, k0);
            c2 = _mm512_madd52hi_epu64(c2, x0, k1);
            c2 = _mm512_madd52hi_epu64(c2, x1, k0);
            c2 = _mm512_madd52lo_epu64(c2, x1, k1);
            c2 = _mm512_madd52lo_epu64(c2, x2, k0);
            c3 = _mm512_madd52hi_epu64(c3, x1, k1);
            c3 = _mm512_madd52hi_epu64(c3, x2, k0);
            c3 = _mm512_madd52lo_epu64(c3, x2, k1); /* x2 k1 < 2^31: no high part */
            c1 = _mm512_add_epi64(c1, _mm512_srli_epi64(c0v, 52));
            c0v = _mm512_and_si512(c0v, m52);
            c2 = _mm512_add_epi64(c2, _mm512_srli_epi64(c1, 52));
            c1 = _mm512_and_si512(c1, m52);
            c3 = _mm512_add_epi64(c3, _mm512_srli_epi64(c2, 52));
            c2 = _mm512_and_si512(c2, m52);
            /* the product's bits: fr = 0..63, pl = 64..123, pw = 124.. */
            __m512i fr = _mm512_or_si512(c0v, _mm512_slli_epi64(c1, 52));
            __m512i pl = _mm512_or_si512(_mm512_srli_epi64(c1, 12),
                                         _mm512_slli_epi64(_mm512_and_si512(c2, m20), 40));
            __m512i pw = _mm512_or_si512(_mm512_srli_epi64(c2, 20), _mm512_slli_epi64(c3, 32));
            __mmask8 up = _mm512_cmplt_epu64_mask(fr, K);
            __mmask8 end = (__mmask8)((up | _mm512_cmpge_epu64_mask(fr, D)) &
                                      _mm512_test_epi64_mask(_mm512_or_si512(wv, lv),
                                                             _mm512_or_si512(wv, lv)));
            __m512i t = _mm512_sub_epi64(lv, _mm512_sub_epi64(_mm512_xor_si512(pl, sg), sg));
            __m512i wn = _mm512_add_epi64(
                _mm512_sub_epi64(wv, _mm512_sub_epi64(_mm512_xor_si512(pw, sg), sg)),
                _mm512_srai_epi64(t, LOW));
            _mm512_storeu_si512(w + i, wn);
            _mm512_storeu_si512(lo + i, _mm512_and_si512(t, m60));
            _mm512_storeu_pd(wd + i, _mm512_mul_pd(_mm512_cvtepi64_pd(wn), inv));
            ends |= (uint64_t)end << j;
            upper |= (uint64_t)up << j;
        }
        for (; j < m; j++) {
            unsigned f = rv_ratio_run_one(r, w, lo, wd, inv_scale, LOW, c0 + j);
            ends |= (uint64_t)(f & 1) << j;
            upper |= (uint64_t)(f >> 1) << j;
        }
        if (keep)
            rv_ratio_run_push(al, s, state + c0, ends, upper);
    }
}

/* the high word of a x b, 64 x 64 bits, from 52-bit limbs (a1, b1 < 2^12) */
LATTR static inline __m512i mulhi_8(__m512i a, __m512i b)
{
    const __m512i m52 = _mm512_set1_epi64((1ll << 52) - 1), zero = _mm512_setzero_si512();
    __m512i a0 = _mm512_and_si512(a, m52), a1 = _mm512_srli_epi64(a, 52);
    __m512i b0 = _mm512_and_si512(b, m52), b1 = _mm512_srli_epi64(b, 52);
    __m512i c0 = _mm512_madd52lo_epu64(zero, a0, b0), c1 = _mm512_madd52hi_epu64(zero, a0, b0);
    c1 = _mm512_madd52lo_epu64(c1, a0, b1);
    c1 = _mm512_madd52lo_epu64(c1, a1, b0);
    __m512i c2 = _mm512_madd52hi_epu64(zero, a0, b1);
    c2 = _mm512_madd52hi_epu64(c2, a1, b0);
    c2 = _mm512_madd52lo_epu64(c2, a1, b1); /* a1 b1 < 2^24: no high part */
    c1 = _mm512_add_epi64(c1, _mm512_srli_epi64(c0, 52));
    c2 = _mm512_add_epi64(c2, _mm512_srli_epi64(c1, 52));
    c1 = _mm512_and_si512(c1, m52);
    return _mm512_or_si512(_mm512_srli_epi64(c1, 12), _mm512_slli_epi64(c2, 40));
}

/* rv_ratio_div21 in lanes: (u1 2^64 + u0) / d, u1 < d, the remainder into *rem */
LATTR static inline __m512i div21_8(__m512i u1, __m512i u0, __m512i d, __m512i v, __m512i *rem)
{
    const __m512i one = _mm512_set1_epi64(1);
    __m512i q0 = _mm512_add_epi64(_mm512_mullo_epi64(v, u1), u0);
    __m512i q1 = _mm512_add_epi64(_mm512_add_epi64(mulhi_8(v, u1), u1), one);
    q1 = _mm512_mask_add_epi64(q1, _mm512_cmplt_epu64_mask(q0, u0), q1, one); /* q0's carry */
    __m512i rr = _mm512_sub_epi64(u0, _mm512_mullo_epi64(q1, d));
    __mmask8 over = _mm512_cmpgt_epu64_mask(rr, q0);
    q1 = _mm512_mask_sub_epi64(q1, over, q1, one);
    rr = _mm512_mask_add_epi64(rr, over, rr, d);
    __mmask8 ge = _mm512_cmpge_epu64_mask(rr, d);
    q1 = _mm512_mask_add_epi64(q1, ge, q1, one);
    *rem = _mm512_mask_sub_epi64(rr, ge, rr, d);
    return q1;
}

LATTR static double run_div_ifma(rv_stack *s, uint64_t *state, const rv_ratio *r,
                                 int64_t *restrict w, int64_t *restrict lo, double *restrict wd,
                                 double inv_scale, size_t n, double *restrict g, double unit,
                                 double rho)
{
    const __m512i m60 = _mm512_set1_epi64((1ll << 60) - 1), one = _mm512_set1_epi64(1);
    const __m512i ones64 = _mm512_set1_epi64(-1), m32 = _mm512_set1_epi64(0xffffffffll);
    const __m512i K = _mm512_set1_epi64((long long)r->k), D = _mm512_set1_epi64((long long)r->d);
    const __m512i H = _mm512_set1_epi64((long long)r->h), V = _mm512_set1_epi64((long long)r->v);
    const __m512d inv = _mm512_set1_pd(inv_scale), p32 = _mm512_set1_pd(0x1p32);
    const __m512d p64 = _mm512_set1_pd(0x1p64), un = _mm512_set1_pd(unit);
    const __m512d rh = _mm512_set1_pd(rho);
    double sum = 0, term[RV_RATIO_RUN];
    uint64_t q1[RV_RATIO_RUN], q0[RV_RATIO_RUN];
    for (size_t c1 = n; c1 > 0;) {
        size_t c0 = c1 > RV_RATIO_RUN ? c1 - RV_RATIO_RUN : 0, m = c1 - c0, j = 0;
        uint64_t pops = 0;
        for (; j + 8 <= m; j += 8) {
            size_t i = c0 + j;
            __m512i wv = _mm512_loadu_si512(w + i), lv = _mm512_loadu_si512(lo + i);
            __m512i sg = _mm512_srai_epi64(wv, 63);
            __m512i t = _mm512_sub_epi64(lv, _mm512_add_epi64(sg, one));
            __m512i w2 = _mm512_add_epi64(wv, _mm512_srai_epi64(t, LOW));
            __m512i zl = _mm512_xor_si512(
                _mm512_or_si512(_mm512_slli_epi64(w2, LOW), _mm512_and_si512(t, m60)), sg);
            __m512i zh = _mm512_xor_si512(_mm512_srai_epi64(w2, 64 - LOW), sg);
            __m512i rem, hi = div21_8(zh, zl, D, V, &rem);
            __m512i qlo = div21_8(rem, H, D, V, &rem);
            __mmask8 nz = _mm512_test_epi64_mask(_mm512_or_si512(wv, lv), _mm512_or_si512(wv, lv));
            _mm512_storeu_si512(q1 + j, _mm512_mask_mov_epi64(ones64, nz, hi));
            _mm512_storeu_si512(q0 + j, _mm512_mask_mov_epi64(ones64, nz, qlo));
            __m512i next = _mm512_add_epi64(
                _mm512_mullo_epi64(_mm512_add_epi64(qlo, _mm512_set1_epi64(2)), K), H);
            pops |= (uint64_t)(_mm512_cmplt_epu64_mask(next, K) & nz) << j;
        }
        for (; j < m; j++)
            pops |= (uint64_t)rv_ratio_run_least_one(r, w, lo, LOW, c0 + j, &q1[j], &q0[j]) << j;
        uint64_t ones = rv_ratio_run_pop(s, state + c0, pops);
        for (j = 0; j + 8 <= m; j += 8) {
            size_t i = c0 + j;
            __m512i wv = _mm512_loadu_si512(w + i), sg = _mm512_srai_epi64(wv, 63);
            __m512i bit = _mm512_maskz_mov_epi64((__mmask8)(ones >> j), one);
            __m512i a = _mm512_sub_epi64(
                _mm512_add_epi64(one, bit),
                _mm512_and_si512(sg, _mm512_add_epi64(one, _mm512_slli_epi64(bit, 1))));
            __m512i ql = _mm512_xor_si512(_mm512_loadu_si512(q0 + j), sg);
            __m512i qh = _mm512_xor_si512(_mm512_loadu_si512(q1 + j), sg);
            __m512i t = _mm512_add_epi64(_mm512_and_si512(ql, m60), a);
            __m512i wn = _mm512_add_epi64(
                _mm512_or_si512(_mm512_slli_epi64(qh, 64 - LOW), _mm512_srli_epi64(ql, LOW)),
                _mm512_srai_epi64(t, LOW));
            _mm512_storeu_si512(w + i, wn);
            _mm512_storeu_si512(lo + i, _mm512_and_si512(t, m60));
            _mm512_storeu_pd(wd + i, _mm512_mul_pd(_mm512_cvtepi64_pd(wn), inv));
            /* the 128-bit (qh, ql) + a, a sign-extended, to a double as rv_wide_to_double */
            __m512i wl = _mm512_add_epi64(ql, a);
            __m512i wh = _mm512_add_epi64(qh, _mm512_srai_epi64(a, 63));
            wh = _mm512_mask_add_epi64(wh, _mm512_cmplt_epu64_mask(wl, ql), wh, one);
            __m512d dlo = _mm512_add_pd(
                _mm512_mul_pd(_mm512_cvtepi64_pd(_mm512_srli_epi64(wl, 32)), p32),
                _mm512_cvtepi64_pd(_mm512_and_si512(wl, m32)));
            __m512d x = _mm512_add_pd(_mm512_mul_pd(_mm512_cvtepi64_pd(wh), p64), dlo);
            __m512d gv = _mm512_loadu_pd(g + i);
            _mm512_storeu_pd(term + j, _mm512_mul_pd(gv, _mm512_mul_pd(x, un)));
            _mm512_storeu_pd(g + i, _mm512_mul_pd(gv, rh));
        }
        for (; j < m; j++)
            term[j] = rv_ratio_run_restore_one(w, lo, wd, inv_scale, LOW, c0 + j, q1[j], q0[j],
                                               (ones >> j) & 1, g, unit, rho);
        for (j = m; j-- > 0;) /* S in the scalar order */
            sum += term[j];
        c1 = c0;
    }
    return sum;
}

int rv_ratio_run_lanes(void)
{
    __builtin_cpu_init(); /* no cached flag: threads call this */
    return __builtin_cpu_supports("avx512ifma") &&
           rv_lanes_selected() == 2; /* avx512f and dq; honours rv_coder_plain_only */
}
#else
int rv_ratio_run_lanes(void) { return 0; }
#endif

void rv_ratio_run_mul_fast(const revl_allocator *al, rv_stack *s, uint64_t *state,
                           const rv_ratio *r, int64_t *restrict w, int64_t *restrict lo,
                           double *restrict wd, double inv_scale, unsigned low, size_t n, int keep)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (low == LOW && rv_ratio_run_lanes()) {
        run_mul_ifma(al, s, state, r, w, lo, wd, inv_scale, n, keep);
        return;
    }
#endif
    rv_ratio_run_mul(al, s, state, r, w, lo, wd, inv_scale, low, n, keep);
}

double rv_ratio_run_div_fast(const revl_allocator *al, rv_stack *s, uint64_t *state,
                             const rv_ratio *r, int64_t *restrict w, int64_t *restrict lo,
                             double *restrict wd, double inv_scale, unsigned low, size_t n,
                             double *restrict g, double unit, double rho)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (low == LOW && rv_ratio_run_lanes())
        return run_div_ifma(s, state, r, w, lo, wd, inv_scale, n, g, unit, rho);
#endif
    return rv_ratio_run_div(al, s, state, r, w, lo, wd, inv_scale, low, n, g, unit, rho);
}
