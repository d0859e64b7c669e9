/* fuzz_idx.c: libFuzzer target for revl_dataset_load_idx (IDX parsing, and gzip files read
 * through zlib). FUZZ_NEEDS: revl_dataset_load_idx
 * Input: byte 0 picks the mode, byte 1 is max_n (0 = all), the rest is file content:
 *   mode 0: the rest is split into an image file and a label file at the offset in bytes 2-3;
 *   mode 1: the rest is the image file, with a well-formed label file of matching count;
 *   mode 2: the rest is the label file, with a well-formed image file of matching count.
 * Every input must end in REVL_OK with a consistent data set, or REVL_ERR_IO / REVL_ERR_NOMEM
 * with a message; never a crash, leak, hang or undefined behaviour. */
#include "revl.h"

#include "fuzz_util.h"

#include <math.h>
#include <stdint.h>

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t count_of(const uint8_t *file, size_t len)
{
    if (len < 8)
        return 1;
    uint32_t n = ((uint32_t)file[4] << 24) | ((uint32_t)file[5] << 16) |
                 ((uint32_t)file[6] << 8) | file[7];
    return n > 4096 ? 4096 : n; /* a larger count gets a (truncated) companion of 4096 */
}

/* A well-formed companion: labels (i % 10) or 2x2 images, for `count` examples. */
static void write_companion(const char *path, int labels, uint32_t count)
{
    size_t header = labels ? 8 : 16, per = labels ? 1 : 4;
    unsigned char *b = calloc(1, header + (size_t)count * per);
    if (!b)
        abort();
    put_be32(b, labels ? 0x00000801u : 0x00000803u);
    put_be32(b + 4, count);
    if (!labels) {
        put_be32(b + 8, 2);
        put_be32(b + 12, 2);
    }
    for (size_t i = 0; i < (size_t)count * per; i++)
        b[header + i] = labels ? (unsigned char)(i % 10) : (unsigned char)(i * 37);
    fuzz_write(path, b, header + (size_t)count * per);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = data[0] % 3;
    size_t max_n = data[1];
    data += 2;
    size -= 2;
    const char *images = fuzz_path(0), *labels = fuzz_path(1);
    if (mode == 0) {
        size_t cut = 0;
        if (size >= 2) {
            cut = ((size_t)data[0] << 8 | data[1]);
            data += 2;
            size -= 2;
        }
        if (cut > size)
            cut = size;
        fuzz_write(images, data, cut);
        fuzz_write(labels, data + cut, size - cut);
    } else if (mode == 1) {
        fuzz_write(images, data, size);
        write_companion(labels, 1, count_of(data, size));
    } else {
        fuzz_write(labels, data, size);
        write_companion(images, 0, count_of(data, size));
    }

    revl_dataset *d = NULL;
    if (revl_dataset_create(&d, NULL) != REVL_OK)
        abort();
    int rc = revl_dataset_load_idx(d, images, labels, max_n);
    if (rc == REVL_OK) {
        size_t n = revl_dataset_n(d), dim = revl_dataset_dim(d), k = revl_dataset_n_classes(d);
        const double *x = revl_dataset_x(d);
        const int32_t *y = revl_dataset_labels(d);
        if (max_n && n > max_n)
            __builtin_trap();
        if (n && (!x || !y || dim == 0 || k == 0))
            __builtin_trap();
        for (size_t i = 0; i < n * dim; i++)
            if (!(x[i] >= 0.0 && x[i] <= 1.0))
                __builtin_trap();
        for (size_t i = 0; i < n; i++)
            if (y[i] < 0 || (size_t)y[i] >= k)
                __builtin_trap();
    } else {
        if (rc != REVL_ERR_IO && rc != REVL_ERR_NOMEM)
            __builtin_trap();
        const char *msg = revl_dataset_last_error(d);
        if (!msg || !msg[0])
            __builtin_trap();
    }
    revl_dataset_free(d);
    return 0;
}
