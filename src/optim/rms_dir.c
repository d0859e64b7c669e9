/* rms_dir.c: RMSprop's per-parameter runs (see rms_dir.h), the AVX-512 version on dir_lanes.h's
 * primitives. */
#include "optim/rms_dir.h"
#include "optim/adam_dir.h"
#include "optim/dir_lanes.h"

#if RV_DIR_LANES
/* rv_rms_add1 (sub: rv_rms_sub1) on eight lanes, for i from 0 on while each lane takes the common
 * path: every check of the scalar function passes, the terms are not the legacy rounding (a
 * negative gb above -2^64: wide.h), and (adding) the new s is not singular.
 * Stores the lanes before the first that does not and returns its index (n, or where fewer than
 * eight remain). */
__attribute__((target("avx512f,avx512dq"))) static size_t
run_avx512(const rv_rms_dir *c, int sub, size_t n, const double *restrict g,
           const double *restrict wd, rv_wide *restrict s, rv_wide *restrict b, double *restrict y)
{
    const __m512d o2 = _mm512_set1_pd(c->omb2_fixed), eps = _mm512_set1_pd(c->eps);
    const __m512d lam = _mm512_set1_pd(c->lambda), al = _mm512_set1_pd(c->alpha);
    const __m512d ws = _mm512_set1_pd(c->w_scale), unit = _mm512_set1_pd(0x1p-100);
    const __m512d fixed = _mm512_set1_pd(0x1p100);
    const __m512d big = _mm512_set1_pd(0x1p126), m64 = _mm512_set1_pd(-0x1p64);
    const __m512d zero = _mm512_setzero_pd();
    const __m512i one = _mm512_set1_epi64(1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d gv = _mm512_loadu_pd(g + i), gi = gv;
        if (c->lambda != 0)
            gi = _mm512_add_pd(gv, _mm512_mul_pd(lam, _mm512_loadu_pd(wd + i)));
        __mmask8 nonzero = _mm512_cmp_pd_mask(gi, zero, _CMP_NEQ_OQ);
        /* gs: (1-beta2) 2^100 gi^2 >= 0 is never the legacy rounding; one unit at least. Its
         * bound also refuses a non-finite g or gi (then gi^2 is Inf or NaN). */
        __m512d y2 = _mm512_mul_pd(o2, _mm512_mul_pd(gi, gi));
        __mmask8 ok = _mm512_cmp_pd_mask(y2, big, _CMP_LT_OQ);
        __m512i gsl, gsh, sl, sh, bl, bh, gbl, gbh;
        round8(y2, &gsl, &gsh);
        __m512i gs_or = _mm512_or_si512(gsl, gsh);
        gsl = _mm512_mask_mov_epi64(gsl, nonzero & _mm512_testn_epi64_mask(gs_or, gs_or), one);
        wide8_load(s + i, &sl, &sh);
        wide8_load(b + i, &bl, &bh);
        if (!sub)
            ok &= add8(0, sl, sh, gsl, gsh, &sl, &sh);
        /* gb from the new s forward, from the s there is back (the same one) */
        __m512d sa = _mm512_sqrt_pd(_mm512_mul_pd(wide8_double(sl, sh), unit));
        __m512d d = _mm512_add_pd(sa, eps);
        if (!sub) /* sqrt(s) = 0 with gi != 0 */
            ok &= ~(_mm512_cmp_pd_mask(sa, zero, _CMP_EQ_OQ) & nonzero);
        __m512d yb = _mm512_mul_pd(_mm512_div_pd(gi, d), fixed);
        ok &= _mm512_cmp_pd_mask(_mm512_abs_pd(yb), big, _CMP_LT_OQ) &
              ~(_mm512_cmp_pd_mask(yb, zero, _CMP_LT_OQ) & _mm512_cmp_pd_mask(yb, m64, _CMP_GT_OQ));
        round8(yb, &gbl, &gbh);
        ok &= add8(sub, bl, bh, gbl, gbh, &bl, &bh);
        if (sub) /* its range check cannot fail: see rv_rms_sub1 */
            (void)add8(1, sl, sh, gsl, gsh, &sl, &sh);
        unsigned k = (unsigned)__builtin_ctz(~(unsigned)ok); /* 0..8 */
        wide8_store(s + i, k, sl, sh);
        wide8_store(b + i, k, bl, bh);
        if (y) /* rv_rms_step1 */
            _mm512_mask_storeu_pd(
                y + i, (__mmask8)((1u << k) - 1),
                _mm512_mul_pd(_mm512_mul_pd(al, _mm512_mul_pd(wide8_double(bl, bh), unit)), ws));
        if (k < 8) {
            i += k;
            break;
        }
    }
    /* no dirty upper state for the baseline SSE code that runs next (see update.c) */
    _mm256_zeroupper();
    return i;
}

/* rv_rms_back1 on eight lanes, operation for operation (sa > 0 ? x : 0 and d2 > 0 ? x : 0 as
 * masked blends; the divisions are done on every lane, their results discarded there). */
__attribute__((target("avx512f,avx512dq"))) static void
back_avx512(const rv_rms_dir *c, const rv_rms_back *r, size_t n, double *restrict t_eps,
            double *restrict t_decay)
{
    const __m512d eps = _mm512_set1_pd(c->eps), lam = _mm512_set1_pd(c->lambda);
    const __m512d omb2 = _mm512_set1_pd(r->omb2), unit = _mm512_set1_pd(0x1p-100);
    const __m512d two = _mm512_set1_pd(2.0), zero = _mm512_setzero_pd();
    const __m512d sign = _mm512_set1_pd(-0.0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d wd = _mm512_loadu_pd(r->wd + i), gi = _mm512_loadu_pd(r->g + i);
        if (c->lambda != 0)
            gi = _mm512_add_pd(gi, _mm512_mul_pd(lam, wd));
        __m512d sa = _mm512_sqrt_pd(_mm512_mul_pd(wide8_to_double(r->s + i), unit));
        __m512d d = _mm512_add_pd(sa, eps), d2 = _mm512_mul_pd(d, d);
        __m512d neg_gi = _mm512_xor_pd(gi, sign), db = _mm512_loadu_pd(r->db + i);
        __m512d db_ds = _mm512_mask_blend_pd(
            _mm512_cmp_pd_mask(sa, zero, _CMP_GT_OQ), zero,
            _mm512_div_pd(neg_gi, _mm512_mul_pd(_mm512_mul_pd(two, sa), d2)));
        __m512d de = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(d2, zero, _CMP_GT_OQ), zero,
                                          _mm512_div_pd(neg_gi, d2));
        _mm512_storeu_pd(t_eps + i, _mm512_mul_pd(db, de));
        __m512d ds = _mm512_add_pd(_mm512_loadu_pd(r->ds + i), _mm512_mul_pd(db, db_ds));
        _mm512_storeu_pd(r->ds + i, ds);
        __m512d u = _mm512_xor_pd(
            _mm512_add_pd(_mm512_div_pd(db, d),
                          _mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(two, omb2), gi), ds)),
            sign);
        _mm512_storeu_pd(r->u + i, u);
        _mm512_storeu_pd(t_decay + i, _mm512_mul_pd(u, wd));
        if (c->lambda != 0)
            _mm512_storeu_pd(r->dw + i,
                             _mm512_sub_pd(_mm512_loadu_pd(r->dw + i), _mm512_mul_pd(lam, u)));
    }
    _mm256_zeroupper();
    for (; i < n; i++)
        rv_rms_back1(c, r, i, t_eps, t_decay);
}

int rv_rms_lanes(void)
{
    return rv_adam_sums_lanes();
}

void rv_rms_back_run(const rv_rms_dir *c, const rv_rms_back *r, size_t n, double *t_eps,
                     double *t_decay)
{
    if (rv_rms_lanes())
        back_avx512(c, r, n, t_eps, t_decay);
    else
        for (size_t i = 0; i < n; i++)
            rv_rms_back1(c, r, i, t_eps, t_decay);
}

size_t rv_rms_sums(const rv_rms_dir *c, int sub, size_t n, const double *g, const double *wd,
                   rv_wide *s, rv_wide *b, double *y)
{
    if (!rv_rms_lanes())
        return 0;
    /* the two directions as constants, so that the branches on sub go */
    return sub ? run_avx512(c, 1, n, g, wd, s, b, NULL) : run_avx512(c, 0, n, g, wd, s, b, y);
}
#else
int rv_rms_lanes(void)
{
    return 0;
}

void rv_rms_back_run(const rv_rms_dir *c, const rv_rms_back *r, size_t n, double *t_eps,
                     double *t_decay)
{
    for (size_t i = 0; i < n; i++)
        rv_rms_back1(c, r, i, t_eps, t_decay);
}

size_t rv_rms_sums(const rv_rms_dir *c, int sub, size_t n, const double *g, const double *wd,
                   rv_wide *s, rv_wide *b, double *y)
{
    (void)c, (void)sub, (void)n, (void)g, (void)wd, (void)s, (void)b, (void)y;
    return 0;
}
#endif

size_t rv_rms_run(const rv_rms_dir *c, int sub, size_t n, const double *g, const double *wd,
                  rv_wide *s, rv_wide *b, double *y)
{
    const int lanes = rv_rms_lanes(); /* cheap: once per chunk */
    size_t i = 0;
    for (;; i++) {
        if (lanes)
            i += rv_rms_sums(c, sub, n - i, g + i, wd + i, s + i, b + i, y ? y + i : NULL);
        if (i == n)
            return n;
        if (sub ? !rv_rms_sub1(c, g[i], wd[i], &s[i], &b[i])
                : rv_rms_add1(c, g[i], wd[i], &s[i], &b[i], y ? &y[i] : NULL) != RV_RMS_OK)
            return i;
    }
}
