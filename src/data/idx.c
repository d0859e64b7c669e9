/* idx.c: MNIST-style IDX files (images and labels, gzip or plain) into doubles in [0, 1] and
 * int32 labels. Every malformation is REVL_ERR_IO naming the file and the fault: a silently
 * misread data set would spoil every experiment downstream of it. Both headers are read and
 * checked first, so that what a file announces is refused (too large, counts that disagree)
 * before anything is allocated for it; the data is then read into a buffer that grows with
 * what actually arrives, so a short file cannot make us allocate what its header claims. */
#include "data/idx.h"
#include "data/pixels.h"
#include "data/source.h"

#include <string.h>

#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_LABELS_MAGIC 0x00000801u /* unsigned bytes, 1 dimension */
#define IDX_FIRST_CHUNK ((size_t)1 << 20)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The magic number of an IDX file of type `want` (the other type named if it is that). */
static int check_magic(const char *path, const unsigned char *b, size_t len, int labels,
                       char *err)
{
    uint32_t want = labels ? IDX_LABELS_MAGIC : IDX_IMAGES_MAGIC;
    uint32_t other = labels ? IDX_IMAGES_MAGIC : IDX_LABELS_MAGIC;
    if (len < 4)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": not an IDX file (only %zu bytes)",
                       RV_PATH_ARG(path), len);
    uint32_t magic = be32(b);
    if (magic == other)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": is an IDX %s file (magic 0x%08x), expected %s (0x%08x)",
                       RV_PATH_ARG(path), labels ? "image" : "label", magic,
                       labels ? "labels" : "images", want);
    if (magic != want)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": bad magic number 0x%08x, expected 0x%08x (IDX %s: "
                       "unsigned bytes, %d dimension%s)",
                       RV_PATH_ARG(path), magic, want, labels ? "labels" : "images",
                       labels ? 1 : 3, labels ? "" : "s");
    return REVL_OK;
}

/* An image file's 16-byte header (len of them read): *n images of rows x cols. */
static int check_images(const char *path, const unsigned char *b, size_t len, size_t *n,
                        size_t *rows, size_t *cols, char *err)
{
    int rc = check_magic(path, b, len, 0, err);
    if (rc != REVL_OK)
        return rc;
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
    if (!ok || bytes >= RV_IDX_MAX_BYTES)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": header sizes %zu x %zu x %zu too large (the limit is "
                       "%zu bytes of pixels)",
                       RV_PATH_ARG(path), *n, *rows, *cols, (size_t)RV_IDX_MAX_BYTES - 1);
    return REVL_OK;
}

/* A label file's 8-byte header: *n labels. */
static int check_labels(const char *path, const unsigned char *b, size_t len, size_t *n,
                        char *err)
{
    int rc = check_magic(path, b, len, 1, err);
    if (rc != REVL_OK)
        return rc;
    if (len < 8)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": truncated header (%zu of 8 bytes)",
                       RV_PATH_ARG(path), len);
    *n = be32(b + 4);
    if (*n == 0)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": contains no labels", RV_PATH_ARG(path));
    if (*n >= RV_IDX_MAX_BYTES)
        return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": header announces %zu labels, too many",
                       RV_PATH_ARG(path), *n);
    return REVL_OK;
}

/* The `bytes` the header announced (`what`, for messages), then the end of the file: a buffer
 * grown by doubling as data arrives, so it is never much larger than the file's content. */
static int read_body(const revl_allocator *a, rv_source *s, size_t bytes, const char *what,
                     unsigned char **out, char *err)
{
    *out = NULL;
    size_t cap = bytes < IDX_FIRST_CHUNK ? bytes : IDX_FIRST_CHUNK, len = 0;
    unsigned char *buf = rv_alloc(a, cap);
    int rc = buf ? REVL_OK : REVL_ERR_NOMEM;
    while (rc == REVL_OK) {
        size_t got;
        rc = rv_source_read(s, buf + len, cap - len, &got, err);
        len += got;
        if (rc != REVL_OK || len < cap || cap == bytes)
            break;
        size_t ncap = cap > bytes / 2 ? bytes : 2 * cap;
        unsigned char *nbuf = rv_alloc_array(a, ncap, 1);
        if (!nbuf) {
            rc = REVL_ERR_NOMEM;
            break;
        }
        memcpy(nbuf, buf, len);
        rv_free(a, buf);
        buf = nbuf;
        cap = ncap;
    }
    if (rc == REVL_ERR_NOMEM)
        rc = rv_fail(err, rc, "out of memory reading " RV_PATH_FMT, RV_PATH_ARG(s->path));
    else if (rc == REVL_OK && len < bytes)
        rc = rv_fail(err, REVL_ERR_IO,
                     RV_PATH_FMT ": truncated: header announces %s but only %zu bytes follow",
                     RV_PATH_ARG(s->path), what, len);
    size_t extra = 0;
    if (rc == REVL_OK)
        rc = rv_source_finish(s, RV_IDX_MAX_BYTES, &extra, err);
    if (rc == REVL_OK && extra > RV_IDX_MAX_BYTES)
        rc = rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": more than %zu bytes of trailing garbage "
                     "after %s", RV_PATH_ARG(s->path), (size_t)RV_IDX_MAX_BYTES, what);
    else if (rc == REVL_OK && extra)
        rc = rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": %zu bytes of trailing garbage after %s",
                     RV_PATH_ARG(s->path), extra, what);
    if (rc != REVL_OK) {
        rv_free(a, buf);
        return rc;
    }
    *out = buf;
    return REVL_OK;
}

/* Open path and read its first `len` bytes (fewer if the file is shorter) into b. */
static int read_head(const revl_allocator *a, rv_source *s, const char *path, unsigned char *b,
                     size_t len, size_t *got, char *err)
{
    *got = 0;
    int rc = rv_source_open(s, a, path, err);
    return rc == REVL_OK ? rv_source_read(s, b, len, got, err) : rc;
}

int rv_idx_load(const revl_allocator *a, const char *images_path, const char *labels_path,
                size_t max_n, rv_idx_data *out, char *err)
{
    memset(out, 0, sizeof *out);
    rv_source si = {.a = a}, sl = {.a = a};
    unsigned char hi[16], hl[8], *img = NULL, *lab = NULL;
    size_t got, n_img = 0, rows = 0, cols = 0, n_lab = 0;
    double *x = NULL;
    int32_t *labels = NULL;
    char what_img[96], what_lab[48];

    int rc = read_head(a, &si, images_path, hi, sizeof hi, &got, err);
    if (rc == REVL_OK)
        rc = check_images(images_path, hi, got, &n_img, &rows, &cols, err);
    if (rc == REVL_OK)
        rc = read_head(a, &sl, labels_path, hl, sizeof hl, &got, err);
    if (rc == REVL_OK)
        rc = check_labels(labels_path, hl, got, &n_lab, err);
    if (rc == REVL_OK && n_img != n_lab)
        rc = rv_fail(err, REVL_ERR_IO,
                     RV_PATH_FMT " has %zu images but " RV_PATH_FMT " has %zu labels",
                     RV_PATH_ARG(images_path), n_img, RV_PATH_ARG(labels_path), n_lab);
    size_t n = max_n && max_n < n_img ? max_n : n_img, dim = rows * cols;
    snprintf(what_img, sizeof what_img, "%zu images of %zu x %zu (%zu bytes)", n_img, rows, cols,
             n_img * dim);
    snprintf(what_lab, sizeof what_lab, "%zu labels", n_lab);
    if (rc == REVL_OK)
        rc = read_body(a, &si, n_img * dim, what_img, &img, err);
    if (rc == REVL_OK)
        rc = read_body(a, &sl, n_lab, what_lab, &lab, err);
    rv_source_close(&si);
    rv_source_close(&sl);
    if (rc == REVL_OK) {
        x = rv_alloc_array(a, n * dim, sizeof *x); /* n*dim < RV_IDX_MAX_BYTES: filled below */
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
            if (lab[i] > max_label)
                max_label = lab[i];
        for (size_t i = 0; i < n; i++)
            labels[i] = lab[i];
        rv_pixels_to_double(x, img, n * dim);
        /* the bytes kept for the gather (pixels.h), trimmed to the n images kept */
        out->pixels = rv_alloc_array(a, n * dim, 1);
        if (out->pixels)
            memcpy(out->pixels, img, n * dim);
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
