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
    const __m512d eps = _mm512_set1_pd(c->eps), af = _mm512_set1_pd(c->alpha_fixed);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d mhat = _mm512_mul_pd(wide8_to_double(m + i), ms);
        __m512d d = _mm512_add_pd(_mm512_sqrt_pd(_mm512_mul_pd(wide8_to_double(s + i), ss)), eps);
        _mm512_storeu_pd(y + i, _mm512_mul_pd(af, _mm512_div_pd(mhat, d)));
    }
    /* no dirty upper state for the baseline SSE code that runs next (see update.c) */
    _mm256_zeroupper();
    rv_adam_steps_plain(c, n - i, m + i, s + i, y + i);
}

/* rv_adam_terms1 on eight lanes, operation for operation (a > 0 ? x : 0 as a masked blend; the
 * division is done on every lane, its result discarded where a = 0). */
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
        _mm512_storeu_pd(t->du_deps + i, _mm512_div_pd(neg_mhat, d2));
        _mm512_storeu_pd(t->du_dc1 + i, _mm512_div_pd(_mm512_xor_pd(u, sign), vc1));
        _mm512_storeu_pd(t->du_dc2 + i, _mm512_div_pd(_mm512_mul_pd(mhat, a),
                                                      _mm512_mul_pd(_mm512_mul_pd(two, vc2), d2)));
    }
    _mm256_zeroupper();
    for (; i < n; i++)
        rv_adam_terms1(c, c1, c2, m[i], s[i], t, i);
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
#else
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
