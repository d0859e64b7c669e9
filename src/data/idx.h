/* idx.h: reading MNIST-style IDX image and label files (gzip or plain) into plain arrays, for
 * revl_dataset_load_idx. Internal, never exported. */
#ifndef REVL_IDX_H
#define REVL_IDX_H

#include "base/internal.h"

#include <stddef.h>
#include <stdint.h>

/* A header announcing this many bytes of data (2 GiB) or more is refused before the data is
 * read. */
#define RV_IDX_MAX_BYTES ((size_t)1 << 31)

typedef struct rv_idx_data {
    size_t n, dim, n_classes;
    double *x;       /* n*dim, row-major, in [0, 1]; allocated through the allocator given */
    int32_t *labels; /* n */
    uint8_t *pixels; /* n*dim, the bytes x came from (x[k] = pixels[k] / 255.0), or NULL when
                        memory for them was short (pixels.h: a cache, never needed) */
} rv_idx_data;

/* Read images_path (magic 0x00000803) and labels_path (0x00000801), each gzip or plain, keeping
 * at most max_n examples (0 = all). n_classes is the largest label in the whole label file + 1.
 * REVL_OK fills *out (the caller frees x, labels and pixels); REVL_ERR_IO with a message naming the file
 * and the fault, or REVL_ERR_NOMEM; on error *out is zeroed and nothing is leaked. */
RV_HIDDEN int rv_idx_load(const revl_allocator *a, const char *images_path,
                          const char *labels_path, size_t max_n, rv_idx_data *out, char *err);

#endif
