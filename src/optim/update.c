/* update.c: the forward pass's per-parameter update (see update.h). The AVX-512 version does
 * eight parameters at once with the same IEEE products and the same round-to-nearest
 * conversions (vcvtpd2qq and vcvtqq2pd round as cvtsd2si and cvtsi2sd do), so its bits equal
 * the plain loop's; a group of eight with any failure is redone by the plain loop, which finds
 * the first failing parameter. */
#include "optim/update.h"

#include "exact/fixed.h"

#include <math.h>

size_t rv_update_plain(size_t n, const double *restrict grad, int64_t *restrict v,
                       int64_t *restrict w, double *restrict wd, double omg_fixed, double alpha,
                       double inv_scale)
{
    for (size_t i = 0; i < n; i++) {
        int64_t step_g, step_w, vi, wi;
        if (!rv_round_fixed(omg_fixed * grad[i], &step_g) ||
            __builtin_sub_overflow(v[i], step_g, &vi))
            return i;
        /* alpha * v in units of 2^-frac_bits is alpha times v's integer */
        if (!rv_round_fixed(alpha * (double)vi, &step_w) ||
            __builtin_add_overflow(w[i], step_w, &wi))
            return i;
        v[i] = vi;
        w[i] = wi;
        wd[i] = (double)wi * inv_scale;
    }
    return n;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f,avx512dq"))) static size_t
update_avx512(size_t n, const double *restrict grad, int64_t *restrict v, int64_t *restrict w,
              double *restrict wd, double omg_fixed, double alpha, double inv_scale)
{
    const __m512d c_omg = _mm512_set1_pd(omg_fixed), c_alpha = _mm512_set1_pd(alpha);
    const __m512d c_inv = _mm512_set1_pd(inv_scale), c_limit = _mm512_set1_pd(0x1p63);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d y1 = _mm512_mul_pd(c_omg, _mm512_loadu_pd(grad + i));
        __mmask8 ok = _mm512_cmp_pd_mask(_mm512_abs_pd(y1), c_limit, _CMP_LT_OQ);
        __m512i s1 = _mm512_cvtpd_epi64(y1);
        __m512i v0 = _mm512_loadu_si512(v + i);
        __m512i v1 = _mm512_sub_epi64(v0, s1);
        /* signed overflow of v0 - s1: operands of different signs and a result whose sign
         * differs from v0 */
        __m512i ovf = _mm512_and_si512(_mm512_xor_si512(v0, s1), _mm512_xor_si512(v0, v1));
        ok &= (__mmask8)~_mm512_movepi64_mask(ovf);
        __m512d y2 = _mm512_mul_pd(c_alpha, _mm512_cvtepi64_pd(v1));
        ok &= _mm512_cmp_pd_mask(_mm512_abs_pd(y2), c_limit, _CMP_LT_OQ);
        __m512i s2 = _mm512_cvtpd_epi64(y2);
        __m512i w0 = _mm512_loadu_si512(w + i);
        __m512i w1 = _mm512_add_epi64(w0, s2);
        /* signed overflow of w0 + s2: both operands' signs differ from the result's */
        ovf = _mm512_and_si512(_mm512_xor_si512(w0, w1), _mm512_xor_si512(s2, w1));
        ok &= (__mmask8)~_mm512_movepi64_mask(ovf);
        if (ok != 0xff) {
            _mm256_zeroupper(); /* see below */
            size_t k = rv_update_plain(8, grad + i, v + i, w + i, wd + i, omg_fixed, alpha,
                                       inv_scale);
            if (k < 8)
                return i + k;
            continue;
        }
        _mm512_storeu_si512(v + i, v1);
        _mm512_storeu_si512(w + i, w1);
        _mm512_storeu_pd(wd + i, _mm512_mul_pd(_mm512_cvtepi64_pd(w1), c_inv));
    }
    /* Leave no dirty upper vector state to the plain SSE code that runs next (here and in the
     * rest of the library, built for baseline x86-64): gcc does not always clear it before a
     * call, and the processor then slows every later SSE instruction (measured: the reverse
     * pass ran 1.9 times slower). */
    _mm256_zeroupper();
    return i + rv_update_plain(n - i, grad + i, v + i, w + i, wd + i, omg_fixed, alpha, inv_scale);
}

rv_update_fn rv_update_select(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return update_avx512;
    return rv_update_plain;
}
#else
rv_update_fn rv_update_select(void)
{
    return rv_update_plain;
}
#endif
