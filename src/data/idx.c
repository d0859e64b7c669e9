/* idx.c: MNIST-style IDX files (images and labels, gzip or plain) into doubles in [0, 1] and
 * int32 labels. Every malformation is REVL_ERR_IO naming the file and the fault: a silently
 * misread data set would spoil every experiment downstream of it. */
#include "data/idx.h"
#include "data/inflate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_LABELS_MAGIC 0x00000801u /* unsigned bytes, 1 dimension */


static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The whole file into a new buffer; at most RV_IDX_MAX_BYTES. */
static int read_file(const revl_allocator *a, const char *path, unsigned char **out,
                     size_t *out_len, char *err)
{
    *out = NULL;
    *out_len = 0;
    char why[128];
    FILE *f = rv_open_regular(path, err);
    if (!f)
        return REVL_ERR_IO;
    /* one byte more than a regular file's size, so that end of file is seen without regrowth */
    size_t cap = (size_t)1 << 16;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 &&
        (unsigned long long)st.st_size < RV_IDX_MAX_BYTES)
        cap = (size_t)st.st_size + 1;
    unsigned char *buf = rv_alloc(a, cap);
    if (!buf) {
        fclose(f);
        return rv_fail(err, REVL_ERR_NOMEM, "out of memory reading " RV_PATH_FMT, RV_PATH_ARG(path));
    }
    size_t len = 0;
    int rc = REVL_OK;
    for (;;) {
        if (len == cap) { /* grow by doubling, up to one byte past the limit to detect it */
            size_t ncap = cap > RV_IDX_MAX_BYTES / 2 ? RV_IDX_MAX_BYTES + 1 : cap * 2;
            unsigned char *nbuf = rv_alloc(a, ncap);
            if (!nbuf) {
                rc = rv_fail(err, REVL_ERR_NOMEM, "out of memory reading " RV_PATH_FMT,
                             RV_PATH_ARG(path));
                break;
            }
            memcpy(nbuf, buf, len);
            rv_free(a, buf);
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len > RV_IDX_MAX_BYTES) {
            rc = rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": larger than the limit of %zu bytes",
                         RV_PATH_ARG(path), (size_t)RV_IDX_MAX_BYTES);
            break;
        }
        if (got == 0) {
            if (ferror(f)) {
                rv_errno_text(errno, why, sizeof why);
                rc = rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": read error: %s", RV_PATH_ARG(path), why);
            }
            break;
        }
    }
    fclose(f);
    if (rc != REVL_OK) {
        rv_free(a, buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return REVL_OK;
}

/* The file's contents, decompressed when it starts with the gzip magic bytes 1f 8b (which no
 * IDX file can: its magic starts with two zero bytes). */
static int load_bytes(const revl_allocator *a, const char *path, unsigned char **out,
                      size_t *out_len, char *err)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    int rc = read_file(a, path, &raw, &raw_len, err);
    if (rc != REVL_OK)
        return rc;
    if (raw_len < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
        *out = raw;
        *out_len = raw_len;
        return REVL_OK;
    }
    char why[RV_ERRLEN];
    rc = rv_gunzip(a, raw, raw_len, RV_IDX_MAX_BYTES, out, out_len, why);
    rv_free(a, raw);
    if (rc == REVL_ERR_NOMEM)
        return rv_fail(err, rc, "out of memory decompressing " RV_PATH_FMT, RV_PATH_ARG(path));
    if (rc != REVL_OK)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": bad gzip data: %s", RV_PATH_ARG(path), why);
    return REVL_OK;
}

/* Check an image file's header against its length; *n images of rows x cols. */
static int check_images(const char *path, const unsigned char *b, size_t len, size_t *n,
                        size_t *rows, size_t *cols, char *err)
{
    if (len < 4)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": not an IDX file (only %zu bytes)",
                       RV_PATH_ARG(path), len);
    uint32_t magic = be32(b);
    if (magic == IDX_LABELS_MAGIC)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": is an IDX label file (magic 0x%08x), expected images (0x%08x)",
                       RV_PATH_ARG(path), magic, IDX_IMAGES_MAGIC);
    if (magic != IDX_IMAGES_MAGIC)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": bad magic number 0x%08x, expected 0x%08x (IDX images: "
                       "unsigned bytes, 3 dimensions)",
                       RV_PATH_ARG(path), magic, IDX_IMAGES_MAGIC);
    if (len < 16)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": truncated header (%zu of 16 bytes)",
                       RV_PATH_ARG(path), len);
    *n = be32(b + 4);
    *rows = be32(b + 8);
    *cols = be32(b + 12);
    if (*n == 0)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": contains no images", RV_PATH_ARG(path));
    if (*rows == 0 || *cols == 0)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": zero-sized images (%zu x %zu)",
                       RV_PATH_ARG(path), *rows, *cols);
    int ok = 1;
    size_t bytes = rv_mul_size(rv_mul_size(*n, *rows, &ok), *cols, &ok);
    if (!ok || bytes > RV_IDX_MAX_BYTES)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": header sizes %zu x %zu x %zu too large",
                       RV_PATH_ARG(path), *n, *rows, *cols);
    if (len - 16 < bytes)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": truncated: header announces %zu images of %zu x %zu (%zu bytes) "
                       "but only %zu bytes follow",
                       RV_PATH_ARG(path), *n, *rows, *cols, bytes, len - 16);
    if (len - 16 > bytes)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": %zu bytes of trailing garbage after %zu images of %zu x %zu",
                       RV_PATH_ARG(path), len - 16 - bytes, *n, *rows, *cols);
    return REVL_OK;
}

static int check_labels(const char *path, const unsigned char *b, size_t len, size_t *n,
                        char *err)
{
    if (len < 4)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": not an IDX file (only %zu bytes)",
                       RV_PATH_ARG(path), len);
    uint32_t magic = be32(b);
    if (magic == IDX_IMAGES_MAGIC)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": is an IDX image file (magic 0x%08x), expected labels (0x%08x)",
                       RV_PATH_ARG(path), magic, IDX_LABELS_MAGIC);
    if (magic != IDX_LABELS_MAGIC)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": bad magic number 0x%08x, expected 0x%08x (IDX labels: "
                       "unsigned bytes, 1 dimension)",
                       RV_PATH_ARG(path), magic, IDX_LABELS_MAGIC);
    if (len < 8)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": truncated header (%zu of 8 bytes)",
                       RV_PATH_ARG(path), len);
    *n = be32(b + 4);
    if (*n == 0)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": contains no labels", RV_PATH_ARG(path));
    if (len - 8 < *n)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": truncated: header announces %zu labels but only %zu bytes follow",
                       RV_PATH_ARG(path), *n, len - 8);
    if (len - 8 > *n)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": %zu bytes of trailing garbage after %zu labels",
                       RV_PATH_ARG(path), len - 8 - *n, *n);
    return REVL_OK;
}

int rv_idx_load(const revl_allocator *a, const char *images_path, const char *labels_path,
                size_t max_n, rv_idx_data *out, char *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *img = NULL, *lab = NULL;
    size_t img_len = 0, lab_len = 0, n_img = 0, rows = 0, cols = 0, n_lab = 0;
    double *x = NULL;
    int32_t *labels = NULL;

    /* both headers are checked before anything large is allocated for the result */
    int rc = load_bytes(a, images_path, &img, &img_len, err);
    if (rc == REVL_OK)
        rc = check_images(images_path, img, img_len, &n_img, &rows, &cols, err);
    if (rc == REVL_OK)
        rc = load_bytes(a, labels_path, &lab, &lab_len, err);
    if (rc == REVL_OK)
        rc = check_labels(labels_path, lab, lab_len, &n_lab, err);
    if (rc == REVL_OK && n_img != n_lab)
        rc = rv_fail(err, REVL_ERR_IO, RV_PATH_FMT " has %zu images but " RV_PATH_FMT " has %zu labels",
                     RV_PATH_ARG(images_path), n_img, RV_PATH_ARG(labels_path), n_lab);
    size_t n = max_n && max_n < n_img ? max_n : n_img, dim = rows * cols;
    if (rc == REVL_OK) {
        x = rv_calloc(a, n * dim, sizeof *x); /* n*dim <= RV_IDX_MAX_BYTES: no overflow */
        labels = rv_calloc(a, n, sizeof *labels);
        if (!x || !labels)
            rc = rv_fail(err, REVL_ERR_NOMEM, "out of memory for %zu examples of %zu features",
                         n, dim);
    }
    if (rc == REVL_OK) {
        /* labels are unsigned bytes, so every value 0..255 is a class; n_classes comes from the
         * whole file so that parts loaded with different max_n agree on it */
        unsigned max_label = 0;
        for (size_t i = 0; i < n_lab; i++)
            if (lab[8 + i] > max_label)
                max_label = lab[8 + i];
        for (size_t i = 0; i < n; i++)
            labels[i] = lab[8 + i];
        double scale[256];
        for (int v = 0; v < 256; v++)
            scale[v] = v / 255.0;
        const unsigned char *px = img + 16;
        for (size_t k = 0; k < n * dim; k++)
            x[k] = scale[px[k]];
        out->n = n;
        out->dim = dim;
        out->n_classes = (size_t)max_label + 1;
        out->x = x;
        out->labels = labels;
    } else {
        rv_free(a, x);
        rv_free(a, labels);
    }
    rv_free(a, img);
    rv_free(a, lab);
    return rc;
}
