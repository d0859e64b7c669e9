/* adam_dir.c: Adam's weight steps (see adam_dir.h); the AVX-512 versions on dir_lanes.h's
 * primitives for the 128-bit moments. */
#include "optim/adam_dir.h"
#include "optim/dir_lanes.h"

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
    const double ic1 = 1.0 / c1, h = 1.0 / (2.0 * c2);
    for (size_t i = 0; i < n; i++)
        rv_adam_terms1(c, ic1, h, m[i], s[i], t, i);
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

#if RV_DIR_LANES

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
 * masked blends; the division by a is done on every lane, its result discarded where a = 0). */
__attribute__((target("avx512f,avx512dq"))) static void
terms_avx512(const rv_adam_dir *c, double c1, double c2, size_t n, const rv_wide *restrict m,
             const rv_wide *restrict s, rv_adam_terms *t)
{
    const double ic1s = 1.0 / c1, hs = 1.0 / (2.0 * c2);
    const __m512d ms = _mm512_set1_pd(c->m_scale), ss = _mm512_set1_pd(c->s_scale);
    const __m512d eps = _mm512_set1_pd(c->eps), ic1 = _mm512_set1_pd(ic1s), h = _mm512_set1_pd(hs);
    const __m512d one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
    const __m512d sign = _mm512_set1_pd(-0.0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d mhat = _mm512_mul_pd(wide8_to_double(m + i), ms);
        __m512d a = _mm512_sqrt_pd(_mm512_mul_pd(wide8_to_double(s + i), ss));
        __m512d d = _mm512_add_pd(a, eps), u = _mm512_div_pd(mhat, d), d2 = _mm512_mul_pd(d, d);
        __m512d r = _mm512_div_pd(one, d), e = _mm512_mul_pd(u, r);
        __m512d neg_e = _mm512_xor_pd(e, sign);
        _mm512_storeu_pd(t->u + i, u);
        _mm512_storeu_pd(t->du_dm + i, _mm512_mul_pd(r, ic1));
        __mmask8 pos = _mm512_cmp_pd_mask(a, zero, _CMP_GT_OQ);
        __m512d ds = _mm512_mul_pd(neg_e, _mm512_div_pd(h, a));
        _mm512_storeu_pd(t->du_ds + i, _mm512_mask_blend_pd(pos, zero, ds));
        __mmask8 d2pos = _mm512_cmp_pd_mask(d2, zero, _CMP_GT_OQ);
        _mm512_storeu_pd(t->du_deps + i, _mm512_mask_blend_pd(d2pos, zero, neg_e));
        _mm512_storeu_pd(t->du_dc1 + i, _mm512_mul_pd(_mm512_xor_pd(u, sign), ic1));
        __m512d dc2 = _mm512_mul_pd(_mm512_mul_pd(e, a), h);
        _mm512_storeu_pd(t->du_dc2 + i, _mm512_mask_blend_pd(d2pos, zero, dc2));
    }
    _mm256_zeroupper();
    for (; i < n; i++)
        rv_adam_terms1(c, ic1s, hs, m[i], s[i], t, i);
}


__attribute__((target("avx512f,avx512dq"))) static size_t
sums_avx512(const rv_adam_grad *c, int sub, size_t n, const double *restrict g,
            rv_wide *restrict m, rv_wide *restrict s)
{
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
        wide8_load(m + i, &ml, &mh);
        ok &= add8(sub, ml, mh, gml, gmh, &ml, &mh);
        wide8_load(s + i, &sl, &sh);
        ok &= add8(sub, sl, sh, gsl, gsh, &sl, &sh);
        if (!sub) /* s = 0 with m != 0 */
            ok &= ~(_mm512_testn_epi64_mask(_mm512_or_si512(sl, sh), _mm512_or_si512(sl, sh)) &
                    _mm512_test_epi64_mask(_mm512_or_si512(ml, mh), _mm512_or_si512(ml, mh)));
        /* the lanes before the first that is not ok */
        unsigned k = (unsigned)__builtin_ctz(~(unsigned)ok); /* 0..8 */
        wide8_store(m + i, k, ml, mh);
        wide8_store(s + i, k, sl, sh);
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
        if (wd)
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
