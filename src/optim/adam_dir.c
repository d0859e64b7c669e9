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
#else
int rv_adam_steps_vector(void)
{
    return 0;
}

void rv_adam_steps(const rv_adam_dir *c, size_t n, const rv_wide *m, const rv_wide *s, double *y)
{
    rv_adam_steps_plain(c, n, m, s, y);
}
#endif
