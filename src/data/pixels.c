/* pixels.c: bytes to the doubles the IDX loader makes of them (pixels.h). */
#include "data/pixels.h"

#include <immintrin.h>

/* v / 255.0 for every byte v, folded by the compiler (a correctly rounded division, as at run
 * time): a look-up instead of a division per feature, a third of the time on a batch in cache
 * (over whole runs the gather waits on memory either way: docs/performance.md, "The MLP
 * against its floor") */
#define PX1(v) (v) / 255.0
#define PX4(v) PX1(v), PX1(v + 1), PX1(v + 2), PX1(v + 3)
#define PX16(v) PX4(v), PX4(v + 4), PX4(v + 8), PX4(v + 12)
#define PX64(v) PX16(v), PX16(v + 16), PX16(v + 32), PX16(v + 48)
static const double pixel_value[256] = {PX64(0), PX64(64), PX64(128), PX64(192)};

static void to_double_plain(double *out, const uint8_t *in, size_t n)
{
    for (size_t k = 0; k < n; k++)
        out[k] = pixel_value[in[k]];
}

/* sixteen bytes widened to indices, then two gathers of eight from the table */
__attribute__((target("avx512f"))) static void to_double_avx512(double *out, const uint8_t *in,
                                                                size_t n)
{
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(in + k)));
        __m256i lo = _mm512_castsi512_si256(w), hi = _mm512_extracti64x4_epi64(w, 1);
        _mm512_storeu_pd(out + k, _mm512_i32gather_pd(lo, pixel_value, 8));
        _mm512_storeu_pd(out + k + 8, _mm512_i32gather_pd(hi, pixel_value, 8));
    }
    _mm256_zeroupper(); /* no dirty upper state for the SSE code after (update.c says why) */
    to_double_plain(out + k, in + k, n - k);
}

void rv_pixels_to_double(double *out, const uint8_t *in, size_t n)
{
    if (__builtin_cpu_supports("avx512f"))
        to_double_avx512(out, in, n);
    else
        to_double_plain(out, in, n);
}
