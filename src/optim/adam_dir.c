/* adam_dir.c: Adam's weight steps (see adam_dir.h). The AVX-512 version converts eight 128-bit
 * moments as rv_wide_to_double does: the high word, the low word's two 32-bit halves (vcvtqq2pd
 * rounds to nearest as cvtsi2sd does, and the halves are exact), the same two rounded sums. */
#include "optim/adam_dir.h"

int rv_adam_steps_narrow;

void rv_adam_steps_plain(const rv_adam_dir *c, size_t n, const rv_wide *restrict m,
                         const rv_wide *restrict s, double *restrict y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = rv_adam_step1(c, m[i], s[i]);
}

void rv_adam_terms_plain(const rv_adam_dir *c, double c1, double c2, size_t n,
                         const rv_wide *restrict m, const rv_wide *restrict s, rv_adam_terms *t)
{
    for (size_t i = 0; i < n; i++)
        rv_adam_terms1(c, c1, c2, m[i], s[i], t, i);
}

static int back_plain(const rv_adam_back *b, size_t i, size_t n, double *t1, double *t2)
{
    int finite = 1;
    for (; i < n; i++) {
        finite &= isfinite(b->hv[i]) != 0;
        rv_adam_back1(b, i, t1, t2);
    }
    return finite;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Eight rv_wide at p (16 words, low word first) as doubles. */
__attribute__((target("avx512f,avx512dq"))) static inline __m512d wide8_to_double(const rv_wide *p)
{
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    __m512i a = _mm512_loadu_si512((const void *)p), b = _mm512_loadu_si512((const void *)(p + 4));
    __m512i lo = _mm512_permutex2var_epi64(a, even, b), hi = _mm512_permutex2var_epi64(a, odd, b);
    __m512d lo_hi = _mm512_cvtepi64_pd(_mm512_srli_epi64(lo, 32));
    __m512d lo_lo = _mm512_cvtepi64_pd(_mm512_and_si512(lo, _mm512_set1_epi64(0xffffffff)));
    __m512d dlo = _mm512_add_pd(_mm512_mul_pd(lo_hi, _mm512_set1_pd(0x1p32)), lo_lo);
    return _mm512_add_pd(_mm512_mul_pd(_mm512_cvtepi64_pd(hi), _mm512_set1_pd(0x1p64)), dlo);
}

__attribute__((target("avx512f,avx512dq"))) static void
steps_avx512(const rv_adam_dir *c, size_t n, const rv_wide *restrict m, const rv_wide *restrict s,
             double *restrict y)
{
    const __m512d ms = _mm512_set1_pd(c->m_scale), ss = _mm512_set1_pd(c->s_scale);
    const __m512d eps = _mm512_set1_pd(c->eps), al = _mm512_set1_pd(c->alpha);
    const __m512d ws = _mm512_set1_pd(c->w_scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d mhat = _mm512_mul_pd(wide8_to_double(m + i), ms);
        __m512d d = _mm512_add_pd(_mm512_sqrt_pd(_mm512_mul_pd(wide8_to_double(s + i), ss)), eps);
        _mm512_storeu_pd(y + i, _mm512_mul_pd(_mm512_mul_pd(al, _mm512_div_pd(mhat, d)), ws));
    }
    /* no dirty upper state for the baseline SSE code that runs next (see update.c) */
    _mm256_zeroupper();
    rv_adam_steps_plain(c, n - i, m + i, s + i, y + i);
}

/* rv_adam_terms1 on eight lanes, operation for operation (a > 0 ? x : 0 and d2 > 0 ? x : 0 as
 * masked blends; the divisions are done on every lane, their results discarded there). */
__attribute__((target("avx512f,avx512dq"))) static void
terms_avx512(const rv_adam_dir *c, double c1, double c2, size_t n, const rv_wide *restrict m,
             const rv_wide *restrict s, rv_adam_terms *t)
{
    const __m512d ms = _mm512_set1_pd(c->m_scale), ss = _mm512_set1_pd(c->s_scale);
    const __m512d eps = _mm512_set1_pd(c->eps), vc1 = _mm512_set1_pd(c1), vc2 = _mm512_set1_pd(c2);
    const __m512d one = _mm512_set1_pd(1.0), two = _mm512_set1_pd(2.0), zero = _mm512_setzero_pd();
    const __m512d sign = _mm512_set1_pd(-0.0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d mhat = _mm512_mul_pd(wide8_to_double(m + i), ms);
        __m512d a = _mm512_sqrt_pd(_mm512_mul_pd(wide8_to_double(s + i), ss));
        __m512d d = _mm512_add_pd(a, eps), u = _mm512_div_pd(mhat, d), d2 = _mm512_mul_pd(d, d);
        __m512d neg_mhat = _mm512_xor_pd(mhat, sign);
        _mm512_storeu_pd(t->u + i, u);
        _mm512_storeu_pd(t->du_dm + i, _mm512_div_pd(one, _mm512_mul_pd(vc1, d)));
        __m512d ds = _mm512_div_pd(
            neg_mhat, _mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(two, a), vc2), d2));
        __mmask8 pos = _mm512_cmp_pd_mask(a, zero, _CMP_GT_OQ);
        _mm512_storeu_pd(t->du_ds + i, _mm512_mask_blend_pd(pos, zero, ds));
        __mmask8 d2pos = _mm512_cmp_pd_mask(d2, zero, _CMP_GT_OQ);
        _mm512_storeu_pd(t->du_deps + i,
                         _mm512_mask_blend_pd(d2pos, zero, _mm512_div_pd(neg_mhat, d2)));
        _mm512_storeu_pd(t->du_dc1 + i, _mm512_div_pd(_mm512_xor_pd(u, sign), vc1));
        __m512d dc2 = _mm512_div_pd(_mm512_mul_pd(mhat, a),
                                    _mm512_mul_pd(_mm512_mul_pd(two, vc2), d2));
        _mm512_storeu_pd(t->du_dc2 + i, _mm512_mask_blend_pd(d2pos, zero, dc2));
    }
    _mm256_zeroupper();
    for (; i < n; i++)
        rv_adam_terms1(c, c1, c2, m[i], s[i], t, i);
}


/* rv_wide_round of eight y as (lo, hi) words, for lanes that are not the legacy ones (y >= 0
 * or y <= -2^64) and below 2^126: below 2^52 the same add and subtract of 1.5 2^52 and
 * truncation; above, the mantissa shifted by e - 1075 (in [0, 74): variable shifts by 64 or
 * more give 0) and negated as 128 bits where y < 0. */
__attribute__((target("avx512f,avx512dq"))) static inline void round8(__m512d y, __m512i *lo,
                                                                      __m512i *hi)
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
__attribute__((target("avx512f,avx512dq"))) static inline __mmask8
add8(int sub, __m512i xl, __m512i xh, __m512i yl, __m512i yh, __m512i *lo, __m512i *hi)
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

__attribute__((target("avx512f,avx512dq"))) static size_t
sums_avx512(const rv_adam_grad *c, int sub, size_t n, const double *restrict g,
            rv_wide *restrict m, rv_wide *restrict s)
{
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    const __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    const __m512d o1 = _mm512_set1_pd(c->omb1_fixed), o2 = _mm512_set1_pd(c->omb2_fixed);
    const __m512d inf = _mm512_set1_pd(INFINITY), big = _mm512_set1_pd(0x1p126);
    const __m512d zero = _mm512_setzero_pd(), m64 = _mm512_set1_pd(-0x1p64);
    const __m512d one = _mm512_set1_pd(1.0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d gv = _mm512_loadu_pd(g + i);
        __m512d y1 = _mm512_mul_pd(o1, gv), y2 = _mm512_mul_pd(o2, _mm512_mul_pd(gv, gv));
        __mmask8 ok = _mm512_cmp_pd_mask(_mm512_abs_pd(gv), inf, _CMP_LT_OQ) &
                      _mm512_cmp_pd_mask(_mm512_abs_pd(y1), big, _CMP_LT_OQ) &
                      _mm512_cmp_pd_mask(_mm512_abs_pd(y2), big, _CMP_LT_OQ) &
                      ~(_mm512_cmp_pd_mask(y1, zero, _CMP_LT_OQ) &
                        _mm512_cmp_pd_mask(y1, m64, _CMP_GT_OQ)) &
                      ~(_mm512_cmp_pd_mask(y2, zero, _CMP_LT_OQ) &
                        _mm512_cmp_pd_mask(y2, m64, _CMP_GT_OQ)) &
                      /* g != 0 with (1-beta2) g^2 below one unit: adam.c's minimum of one */
                      ~(_mm512_cmp_pd_mask(gv, zero, _CMP_NEQ_OQ) &
                        _mm512_cmp_pd_mask(y2, one, _CMP_LT_OQ));
        __m512i gml, gmh, gsl, gsh, ml, mh, sl, sh;
        round8(y1, &gml, &gmh);
        round8(y2, &gsl, &gsh);
        __m512i a = _mm512_loadu_si512((const void *)(m + i)), b = _mm512_loadu_si512((const void *)(m + i + 4));
        ok &= add8(sub, _mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b),
                   gml, gmh, &ml, &mh);
        a = _mm512_loadu_si512((const void *)(s + i));
        b = _mm512_loadu_si512((const void *)(s + i + 4));
        ok &= add8(sub, _mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b),
                   gsl, gsh, &sl, &sh);
        if (!sub) /* s = 0 with m != 0 */
            ok &= ~(_mm512_testn_epi64_mask(_mm512_or_si512(sl, sh), _mm512_or_si512(sl, sh)) &
                    _mm512_test_epi64_mask(_mm512_or_si512(ml, mh), _mm512_or_si512(ml, mh)));
        /* the lanes before the first that is not ok: two stores of four rv_wide each */
        unsigned k = (unsigned)__builtin_ctz(~(unsigned)ok); /* 0..8 */
        __mmask8 lo4 = k >= 4 ? 0xff : (__mmask8)((1u << (2 * k)) - 1);
        __mmask8 hi4 = k >= 4 ? (__mmask8)((1u << (2 * (k - 4))) - 1) : 0;
        _mm512_mask_storeu_epi64((void *)(m + i), lo4, _mm512_permutex2var_epi64(ml, first, mh));
        _mm512_mask_storeu_epi64((void *)(m + i + 4), hi4, _mm512_permutex2var_epi64(ml, second, mh));
        _mm512_mask_storeu_epi64((void *)(s + i), lo4, _mm512_permutex2var_epi64(sl, first, sh));
        _mm512_mask_storeu_epi64((void *)(s + i + 4), hi4, _mm512_permutex2var_epi64(sl, second, sh));
        if (k < 8) {
            i += k;
            break;
        }
    }
    _mm256_zeroupper();
    return i;
}

/* rv_adam_back1 on eight lanes, operation for operation. */
__attribute__((target("avx512f,avx512dq"))) static int back_avx512(const rv_adam_back *b,
                                                                   size_t n, double *t1,
                                                                   double *t2)
{
    const __m512d unit = _mm512_set1_pd(0x1p-100), inf = _mm512_set1_pd(INFINITY);
    const __m512d b1 = _mm512_set1_pd(b->beta1), b2 = _mm512_set1_pd(b->beta2);
    __mmask8 finite = 0xff;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d g = _mm512_loadu_pd(b->g + i), hv = _mm512_loadu_pd(b->hv + i);
        __m512d dm = _mm512_loadu_pd(b->dm + i), ds = _mm512_loadu_pd(b->ds + i);
        __m512d mm = _mm512_sub_pd(_mm512_mul_pd(wide8_to_double(b->m + i), unit), g);
        __m512d ss = _mm512_sub_pd(_mm512_mul_pd(wide8_to_double(b->s + i), unit), _mm512_mul_pd(g, g));
        _mm512_storeu_pd(t1 + i, _mm512_mul_pd(dm, mm));
        _mm512_storeu_pd(t2 + i, _mm512_mul_pd(ds, ss));
        finite &= _mm512_cmp_pd_mask(_mm512_abs_pd(hv), inf, _CMP_LT_OQ);
        _mm512_storeu_pd(b->dw + i, _mm512_sub_pd(_mm512_loadu_pd(b->dw + i), hv));
        _mm512_storeu_pd(b->dm + i, _mm512_mul_pd(dm, b1));
        _mm512_storeu_pd(b->ds + i, _mm512_mul_pd(ds, b2));
    }
    _mm256_zeroupper();
    return (finite == 0xff) & back_plain(b, i, n, t1, t2);
}

/* rv_pass_move_w on eight lanes up to the first that fails: vcvtpd2qq rounds in the current
 * mode as llrint does; the overflow of the 64-bit sum from the signs. */
__attribute__((target("avx512f,avx512dq"))) static size_t
moves_avx512(int sign, double inv_scale, size_t n, const double *restrict y, int64_t *restrict w,
             double *restrict wd)
{
    const __m512d lim = _mm512_set1_pd(0x1p63), sc = _mm512_set1_pd(inv_scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d yv = _mm512_loadu_pd(y + i);
        __mmask8 ok = _mm512_cmp_pd_mask(_mm512_abs_pd(yv), lim, _CMP_LT_OQ);
        __m512i step = _mm512_cvtpd_epi64(yv), wv = _mm512_loadu_si512((const void *)(w + i));
        __m512i r, ovf;
        if (sign > 0) { /* overflow: the operands' signs equal and the sum's differs */
            r = _mm512_add_epi64(wv, step);
            ovf = _mm512_andnot_si512(_mm512_xor_si512(wv, step), _mm512_xor_si512(wv, r));
        } else { /* overflow: the operands' signs differ and the difference's from w's */
            r = _mm512_sub_epi64(wv, step);
            ovf = _mm512_and_si512(_mm512_xor_si512(wv, step), _mm512_xor_si512(wv, r));
        }
        ok &= (__mmask8)~_mm512_movepi64_mask(ovf);
        unsigned k = (unsigned)__builtin_ctz(~(unsigned)ok);
        __mmask8 done = (__mmask8)((1u << k) - 1);
        _mm512_mask_storeu_epi64((void *)(w + i), done, r);
        _mm512_mask_storeu_pd(wd + i, done, _mm512_mul_pd(_mm512_cvtepi64_pd(r), sc));
        if (k < 8) {
            i += k;
            break;
        }
    }
    _mm256_zeroupper();
    return i;
}

int rv_adam_steps_vector(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

void rv_adam_steps(const rv_adam_dir *c, size_t n, const rv_wide *m, const rv_wide *s, double *y)
{
    if (!rv_adam_steps_narrow && rv_adam_steps_vector()) /* cheap: once per chunk */
        steps_avx512(c, n, m, s, y);
    else
        rv_adam_steps_plain(c, n, m, s, y);
}

void rv_adam_terms_run(const rv_adam_dir *c, double c1, double c2, size_t n, const rv_wide *m,
                       const rv_wide *s, rv_adam_terms *t)
{
    if (!rv_adam_steps_narrow && rv_adam_steps_vector())
        terms_avx512(c, c1, c2, n, m, s, t);
    else
        rv_adam_terms_plain(c, c1, c2, n, m, s, t);
}
size_t rv_adam_sums(const rv_adam_grad *c, int sub, size_t n, const double *g, rv_wide *m,
                    rv_wide *s)
{
    if (!rv_adam_steps_narrow && rv_adam_steps_vector())
        return sub ? sums_avx512(c, 1, n, g, m, s) : sums_avx512(c, 0, n, g, m, s);
    return 0;
}
int rv_adam_back_run(const rv_adam_back *b, size_t n, double *t1, double *t2)
{
    if (!rv_adam_steps_narrow && rv_adam_steps_vector())
        return back_avx512(b, n, t1, t2);
    return back_plain(b, 0, n, t1, t2);
}
size_t rv_adam_moves(int sign, double inv_scale, size_t n, const double *y, int64_t *w,
                     double *wd)
{
    if (!rv_adam_steps_narrow && rv_adam_steps_vector())
        return sign > 0 ? moves_avx512(1, inv_scale, n, y, w, wd)
                        : moves_avx512(-1, inv_scale, n, y, w, wd);
    return 0;
}
#else
size_t rv_adam_moves(int sign, double inv_scale, size_t n, const double *y, int64_t *w,
                     double *wd)
{
    (void)sign, (void)inv_scale, (void)n, (void)y, (void)w, (void)wd;
    return 0;
}
int rv_adam_back_run(const rv_adam_back *b, size_t n, double *t1, double *t2)
{
    return back_plain(b, 0, n, t1, t2);
}
size_t rv_adam_sums(const rv_adam_grad *c, int sub, size_t n, const double *g, rv_wide *m,
                    rv_wide *s)
{
    (void)c, (void)sub, (void)n, (void)g, (void)m, (void)s;
    return 0;
}
void rv_adam_terms_run(const rv_adam_dir *c, double c1, double c2, size_t n, const rv_wide *m,
                       const rv_wide *s, rv_adam_terms *t)
{
    rv_adam_terms_plain(c, c1, c2, n, m, s, t);
}

int rv_adam_steps_vector(void)
{
    return 0;
}

void rv_adam_steps(const rv_adam_dir *c, size_t n, const rv_wide *m, const rv_wide *s, double *y)
{
    rv_adam_steps_plain(c, n, m, s, y);
}
#endif
