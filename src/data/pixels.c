/* pixels.c: bytes to the doubles the IDX loader makes of them (pixels.h). */
#include "data/pixels.h"

#include <immintrin.h>

static void to_double_plain(double *out, const uint8_t *in, size_t n)
{
    for (size_t k = 0; k < n; k++)
        out[k] = (double)in[k] / 255.0;
}

__attribute__((target("avx512f"))) static void to_double_avx512(double *out, const uint8_t *in,
                                                                size_t n)
{
    const __m512d d = _mm512_set1_pd(255.0);
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(in + k)));
        __m512d lo = _mm512_cvtepi32_pd(_mm512_castsi512_si256(w));
        __m512d hi = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(w, 1));
        _mm512_storeu_pd(out + k, _mm512_div_pd(lo, d));
        _mm512_storeu_pd(out + k + 8, _mm512_div_pd(hi, d));
    }
    to_double_plain(out + k, in + k, n - k);
}

void rv_pixels_to_double(double *out, const uint8_t *in, size_t n)
{
    if (__builtin_cpu_supports("avx512f"))
        to_double_avx512(out, in, n);
    else
        to_double_plain(out, in, n);
}
