/* pixels.c: bytes to the doubles the IDX loader makes of them (pixels.h). */
#include "data/pixels.h"

#include <immintrin.h>

/* v / 255.0 for every byte v, folded by the compiler (a correctly rounded division, as at run
 * time): a look-up instead of a division per feature, for the scalar code */
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

/* v / 255 for eight bytes widened to doubles: q = v r with r = RN(1/255) is off by one ulp for
 * 24 of the 256 values, and one fused correction step, q + (v - 255 q) r (the residual exact
 * in a fused multiply-add), rounds correctly for all of them (tests/check_dataset.c compares
 * every byte value with v / 255.0). Three arithmetic instructions per eight values where the
 * table took eight loads through a gather (measured: docs/performance.md, "The MLP against its
 * floor"). */
__attribute__((target("avx512f"))) static inline __m512d div255_8(__m256i v32)
{
    const __m512d r = _mm512_set1_pd(1.0 / 255.0), d = _mm512_set1_pd(255.0);
    __m512d v = _mm512_cvtepi32_pd(v32), q = _mm512_mul_pd(v, r);
    return _mm512_fmadd_pd(_mm512_fnmadd_pd(q, d, v), r, q);
}

__attribute__((target("avx512f"))) static void to_double_avx512(double *out, const uint8_t *in,
                                                                size_t n)
{
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(in + k)));
        _mm512_storeu_pd(out + k, div255_8(_mm512_castsi512_si256(w)));
        _mm512_storeu_pd(out + k + 8, div255_8(_mm512_extracti64x4_epi64(w, 1)));
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
