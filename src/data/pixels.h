/* pixels.h: a data set's images kept as their bytes too, when they came from IDX files, so that
 * the minibatch gather reads one byte per feature instead of eight (the gather of a large data
 * set runs from memory, not cache). The loader makes x from the bytes with
 * rv_pixels_to_double, and so does the gather, so it gives x's bits exactly. */
#ifndef REVL_PIXELS_H
#define REVL_PIXELS_H

#include "base/internal.h"

#include <stddef.h>
#include <stdint.h>

/* d's bytes (n * dim, row-major) with x[k] == pixels[k] / 255.0 for every k, or NULL when x did
 * not come from an IDX file unchanged (revl_dataset_set, revl_dataset_standardize, or memory
 * for the bytes was short: the bytes are a cache, never needed). */
RV_HIDDEN const uint8_t *rv_dataset_pixels(const revl_dataset *d);

/* out[k] = in[k] / 255.0 (correctly rounded) for k < n, looked up in a table of the 256 values,
 * gathers of eight with AVX-512 where the processor has it. */
RV_HIDDEN void rv_pixels_to_double(double *out, const uint8_t *in, size_t n);

#endif
