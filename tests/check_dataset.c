/* check_dataset.c: the data set handle (set, subset, standardize, allocation failures) and the
 * IDX reader (gzip through zlib): round trips through plain and gzip files made here, every
 * kind of malformed file, corrupted and truncated gzip streams turned into REVL_ERR_IO naming the
 * file, headers announcing 2 GiB refused before any allocation, and the real Fashion-MNIST test
 * set when it is installed. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revl.h"
#include "data/pixels.h"
#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

static char tmpdir[256];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/revl-dataset-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

static const char *tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
    return buf;
}

static void write_bytes(const char *path, const unsigned char *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole file in a malloc'd buffer. */
static unsigned char *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t cap = 1 << 16, n = 0;
    unsigned char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    size_t got;
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap);
            ck_assert_ptr_nonnull(b);
        }
    }
    fclose(f);
    *len = n;
    return b;
}

/* gzip -c -n src > dst (-n: no name or time stamp, so the header is exactly 10 bytes) */
static void gzip_file(const char *src, const char *dst)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -c -n < '%s' > '%s'", src, dst);
    ck_assert_int_eq(system(cmd), 0);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Pixel k of a test image set: covers 0 and 255 and everything between. */
static unsigned char pixel(size_t k)
{
    return (unsigned char)((k * 37 + k / 7) % 256);
}

/* An IDX image file of n images rows x cols (malloc'd; *len bytes). */
static unsigned char *idx_images(uint32_t n, uint32_t rows, uint32_t cols, size_t *len)
{
    size_t data = (size_t)n * rows * cols;
    unsigned char *b = malloc(16 + data);
    ck_assert_ptr_nonnull(b);
    put_be32(b, 0x00000803);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t k = 0; k < data; k++)
        b[16 + k] = pixel(k);
    *len = 16 + data;
    return b;
}

/* An IDX label file of n labels i % n_classes, with the largest label last. */
static unsigned char *idx_labels(uint32_t n, unsigned n_classes, size_t *len)
{
    unsigned char *b = malloc(8 + n);
    ck_assert_ptr_nonnull(b);
    put_be32(b, 0x00000801);
    put_be32(b + 4, n);
    for (uint32_t i = 0; i < n; i++)
        b[8 + i] = (unsigned char)(i % n_classes);
    b[8 + n - 1] = (unsigned char)(n_classes - 1);
    *len = 8 + n;
    return b;
}

/* Write a standard pair (n images of rows x cols, labels of n_classes) as img.idx / lab.idx and
 * their gzip versions img.idx.gz / lab.idx.gz. */
static void write_pair(uint32_t n, uint32_t rows, uint32_t cols, unsigned n_classes)
{
    char p[512], q[512];
    size_t len;
    unsigned char *b = idx_images(n, rows, cols, &len);
    write_bytes(tmp_path(p, sizeof p, "img.idx"), b, len);
    free(b);
    gzip_file(p, tmp_path(q, sizeof q, "img.idx.gz"));
    b = idx_labels(n, n_classes, &len);
    write_bytes(tmp_path(p, sizeof p, "lab.idx"), b, len);
    free(b);
    gzip_file(p, tmp_path(q, sizeof q, "lab.idx.gz"));
}

/* Check d against write_pair's contents (first n examples). */
static void check_pair_contents(const revl_dataset *d, size_t n, size_t dim, size_t total,
                                unsigned n_classes)
{
    ck_assert_uint_eq(revl_dataset_n(d), n);
    ck_assert_uint_eq(revl_dataset_dim(d), dim);
    ck_assert_uint_eq(revl_dataset_n_classes(d), n_classes);
    const double *x = revl_dataset_x(d);
    const int32_t *y = revl_dataset_labels(d);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    /* the gather's bytes, kept with x (pixels.h); none only when memory was short for them
     * (test_nomem_everywhere), which test_idx_pixels rules out otherwise */
    const uint8_t *px = rv_dataset_pixels(d);
    for (size_t k = 0; k < n * dim; k++) {
        ck_assert_double_eq(x[k], pixel(k) / 255.0);
        if (px)
            ck_assert_uint_eq(px[k], pixel(k));
    }
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(y[i], i == total - 1 ? (int32_t)n_classes - 1 : (int32_t)(i % n_classes));
}

/* Load through a fresh dataset; returns the status and copies the message into msg. */
static int try_load(const char *img, const char *lab, size_t max_n, char *msg, size_t msg_size)
{
    revl_dataset *d;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    int rc = revl_dataset_load_idx(d, img, lab, max_n);
    snprintf(msg, msg_size, "%s", revl_dataset_last_error(d));
    if (rc != REVL_OK) { /* a failed load leaves the empty data set empty */
        ck_assert_uint_eq(revl_dataset_n(d), 0);
        ck_assert_ptr_null(revl_dataset_x(d));
    }
    revl_dataset_free(d);
    return rc;
}

/* Expect REVL_ERR_IO with a message that names `file` and contains `what`. */
static void expect_io(const char *img, const char *lab, const char *file, const char *what)
{
    char msg[512];
    ck_assert_int_eq(try_load(img, lab, 0, msg, sizeof msg), REVL_ERR_IO);
    ck_assert_msg(strstr(msg, file) != NULL, "message '%s' does not name %s", msg, file);
    ck_assert_msg(strstr(msg, what) != NULL, "message '%s' does not say '%s'", msg, what);
}

/* Every byte value, every length up to 40 and four misalignments: the lanes and the scalar tail
 * give the loader's doubles, v / 255.0, bit for bit. */
static void check_pixels_to_double(void)
{
    uint8_t in[44];
    double out[44];
    for (int start = 0; start < 256; start += 37)
        for (size_t off = 0; off < 4; off++)
            for (size_t n = 0; n <= 40; n++) {
                for (size_t k = 0; k < sizeof in; k++)
                    in[k] = (uint8_t)(start + 11 * k);
                out[off + n] = -1;
                rv_pixels_to_double(out + off, in + off, n);
                for (size_t k = 0; k < n; k++) {
                    double want = (double)in[off + k] / 255.0;
                    ck_assert_msg(memcmp(&out[off + k], &want, sizeof want) == 0,
                                  "byte %u: %.17g, not %.17g", in[off + k], out[off + k], want);
                }
                ck_assert(out[off + n] == -1); /* nothing written past n */
            }
    for (int v = 0; v < 256; v++) {
        uint8_t b[16];
        memset(b, v, sizeof b);
        rv_pixels_to_double(out, b, 16);
        double want = v / 255.0;
        for (size_t k = 0; k < 16; k++)
            ck_assert(memcmp(&out[k], &want, sizeof want) == 0);
    }
}

/* ------------------------------------------------------------------ handle, set, getters */

START_TEST(test_create_and_getters)
{
    ck_assert_int_eq(revl_dataset_create(NULL, NULL), REVL_ERR_INVALID);
    revl_dataset *d = NULL;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(revl_dataset_n(d), 0);
    ck_assert_uint_eq(revl_dataset_dim(d), 0);
    ck_assert_uint_eq(revl_dataset_n_classes(d), 0);
    ck_assert_ptr_null(revl_dataset_x(d));
    ck_assert_ptr_null(revl_dataset_labels(d));
    ck_assert_str_eq(revl_dataset_last_error(d), "");
    revl_dataset_free(d);
    revl_dataset_free(NULL);
    ck_assert_uint_eq(revl_dataset_n(NULL), 0);
    ck_assert_uint_eq(revl_dataset_dim(NULL), 0);
    ck_assert_uint_eq(revl_dataset_n_classes(NULL), 0);
    ck_assert_ptr_null(revl_dataset_x(NULL));
    ck_assert_ptr_null(revl_dataset_labels(NULL));
    ck_assert_ptr_nonnull(revl_dataset_last_error(NULL));
    ck_assert_int_eq(revl_dataset_set(NULL, 1, 1, 1, (double[]){0}, (int32_t[]){0}),
                     REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_load_idx(NULL, "a", "b", 0), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_subset(NULL, NULL, 0, 1), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_standardize(NULL, NULL), REVL_ERR_INVALID);
}
END_TEST

START_TEST(test_set_copies)
{
    revl_dataset *d;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    double x[6] = {1, 2, 3, 4, 5, 6};
    int32_t y[3] = {0, 2, 1};
    ck_assert_int_eq(revl_dataset_set(d, 3, 2, 3, x, y), REVL_OK);
    x[0] = 99;
    y[0] = 2;
    ck_assert_uint_eq(revl_dataset_n(d), 3);
    ck_assert_uint_eq(revl_dataset_dim(d), 2);
    ck_assert_uint_eq(revl_dataset_n_classes(d), 3);
    ck_assert_double_eq(revl_dataset_x(d)[0], 1);
    ck_assert_double_eq(revl_dataset_x(d)[5], 6);
    ck_assert_int_eq(revl_dataset_labels(d)[0], 0);
    ck_assert_int_eq(revl_dataset_labels(d)[1], 2);
    /* replacing with a different shape */
    ck_assert_int_eq(revl_dataset_set(d, 1, 4, 7, x, (int32_t[]){6}), REVL_OK);
    ck_assert_uint_eq(revl_dataset_n(d), 1);
    ck_assert_uint_eq(revl_dataset_dim(d), 4);
    ck_assert_uint_eq(revl_dataset_n_classes(d), 7);
    ck_assert_double_eq(revl_dataset_x(d)[0], 99);
    revl_dataset_free(d);
}
END_TEST

/* A failed set must leave the 2x2 contents {1,2,3,4}, labels {0,1}, 2 classes. */
static void expect_unchanged(const revl_dataset *d)
{
    ck_assert_uint_eq(revl_dataset_n(d), 2);
    ck_assert_uint_eq(revl_dataset_dim(d), 2);
    ck_assert_uint_eq(revl_dataset_n_classes(d), 2);
    for (int k = 0; k < 4; k++)
        ck_assert_double_eq(revl_dataset_x(d)[k], k + 1);
    ck_assert_int_eq(revl_dataset_labels(d)[0], 0);
    ck_assert_int_eq(revl_dataset_labels(d)[1], 1);
    ck_assert_str_ne(revl_dataset_last_error(d), "");
}

START_TEST(test_set_bad_args)
{
    revl_dataset *d;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    double x[4] = {1, 2, 3, 4};
    int32_t y[2] = {0, 1};
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, x, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, NULL, y), REVL_ERR_INVALID);
    expect_unchanged(d);
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, x, NULL), REVL_ERR_INVALID);
    expect_unchanged(d);
    ck_assert_int_eq(revl_dataset_set(d, 0, 2, 2, x, y), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_set(d, 2, 0, 2, x, y), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 0, x, y), REVL_ERR_INVALID);
    expect_unchanged(d);
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 1, x, y), REVL_ERR_INVALID); /* label 1 >= 1 */
    ck_assert_ptr_nonnull(strstr(revl_dataset_last_error(d), "labels[1]"));
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, x, (int32_t[]){-1, 0}), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, x, (int32_t[]){0, 2}), REVL_ERR_INVALID);
    expect_unchanged(d);
    ck_assert_int_eq(revl_dataset_set(d, SIZE_MAX / 2, 4, 2, x, y), REVL_ERR_INVALID); /* overflow */
    expect_unchanged(d);
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, (double[]){1, NAN, 3, 4}, y), REVL_ERR_RANGE);
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, (double[]){1, 2, 3, -INFINITY}, y),
                     REVL_ERR_RANGE);
    expect_unchanged(d);
    revl_dataset_free(d);
}
END_TEST

/* ------------------------------------------------------------------ subset */

START_TEST(test_subset)
{
    revl_dataset *src, *dst;
    ck_assert_int_eq(revl_dataset_create(&src, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_create(&dst, NULL), REVL_OK);
    double x[10];
    int32_t y[5] = {0, 1, 2, 3, 4};
    for (int k = 0; k < 10; k++)
        x[k] = k;
    ck_assert_int_eq(revl_dataset_set(src, 5, 2, 6, x, y), REVL_OK);

    ck_assert_int_eq(revl_dataset_subset(dst, src, 1, 3), REVL_OK);
    ck_assert_uint_eq(revl_dataset_n(dst), 3);
    ck_assert_uint_eq(revl_dataset_dim(dst), 2);
    ck_assert_uint_eq(revl_dataset_n_classes(dst), 6); /* kept from src, not recomputed */
    for (int k = 0; k < 6; k++)
        ck_assert_double_eq(revl_dataset_x(dst)[k], k + 2);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(revl_dataset_labels(dst)[i], i + 1);

    /* bounds: whole range ok, one past it not, count 0 not, overflow of first + count not */
    ck_assert_int_eq(revl_dataset_subset(dst, src, 0, 5), REVL_OK);
    ck_assert_uint_eq(revl_dataset_n(dst), 5);
    ck_assert_int_eq(revl_dataset_subset(dst, src, 4, 1), REVL_OK);
    ck_assert_int_eq(revl_dataset_subset(dst, src, 4, 2), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_subset(dst, src, 5, 1), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_subset(dst, src, 0, 6), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_subset(dst, src, 2, 0), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_subset(dst, src, SIZE_MAX, 2), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_subset(dst, src, 2, SIZE_MAX), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_subset(dst, NULL, 0, 1), REVL_ERR_INVALID);
    ck_assert_str_ne(revl_dataset_last_error(dst), "");
    /* the failures left dst as the last good subset: example 4 */
    ck_assert_uint_eq(revl_dataset_n(dst), 1);
    ck_assert_double_eq(revl_dataset_x(dst)[0], 8);
    ck_assert_int_eq(revl_dataset_labels(dst)[0], 4);

    /* in place */
    ck_assert_int_eq(revl_dataset_subset(src, src, 3, 2), REVL_OK);
    ck_assert_uint_eq(revl_dataset_n(src), 2);
    ck_assert_double_eq(revl_dataset_x(src)[0], 6);
    ck_assert_double_eq(revl_dataset_x(src)[3], 9);
    ck_assert_int_eq(revl_dataset_labels(src)[1], 4);

    /* from an empty data set */
    revl_dataset *empty;
    ck_assert_int_eq(revl_dataset_create(&empty, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_subset(dst, empty, 0, 1), REVL_ERR_INVALID);
    revl_dataset_free(empty);
    revl_dataset_free(src);
    revl_dataset_free(dst);
}
END_TEST

/* ------------------------------------------------------------------ standardize */

START_TEST(test_standardize)
{
    enum { N = 50, D = 4 };
    double x[N * D];
    int32_t y[N];
    uint64_t s = 7;
    for (int i = 0; i < N; i++) {
        y[i] = i % 3;
        x[i * D + 0] = 3.0 + 2.0 * (double)(i % 11);
        x[i * D + 1] = 5.25;            /* constant */
        x[i * D + 2] = 1e6 + (i & 1);   /* large offset, tiny spread */
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i * D + 3] = (double)(s >> 11) * 0x1p-53 - 0.5;
    }
    revl_dataset *d, *t;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_create(&t, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(d, N, D, 3, x, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(t, N, D, 3, x, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_standardize(d, NULL), REVL_OK);
    const double *z = revl_dataset_x(d);
    for (int j = 0; j < D; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < N; i++)
            m += z[i * D + j];
        m /= N;
        for (int i = 0; i < N; i++)
            v += (z[i * D + j] - m) * (z[i * D + j] - m);
        v /= N;
        ck_assert_double_eq_tol(m, 0.0, 1e-12);
        if (j == 1) { /* the constant feature becomes exactly 0 */
            for (int i = 0; i < N; i++)
                ck_assert_double_eq(z[i * D + j], 0.0);
        } else {
            ck_assert_double_eq_tol(v, 1.0, 1e-12);
        }
    }
    /* labels untouched */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(revl_dataset_labels(d)[i], i % 3);

    /* with a reference: t standardised by the statistics of the original data = d's result;
     * d (already standardised) as its own reference changes nothing but rounding */
    revl_dataset *orig;
    ck_assert_int_eq(revl_dataset_create(&orig, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(orig, N, D, 3, x, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_standardize(t, orig), REVL_OK);
    for (int k = 0; k < N * D; k++)
        ck_assert_double_eq(revl_dataset_x(t)[k], z[k]);
    ck_assert_int_eq(revl_dataset_standardize(d, d), REVL_OK);
    for (int k = 0; k < N * D; k++)
        ck_assert_double_eq_tol(revl_dataset_x(d)[k], revl_dataset_x(t)[k], 1e-12);

    /* a test set standardised with training statistics: its one example as in t */
    revl_dataset *one;
    ck_assert_int_eq(revl_dataset_create(&one, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(one, 1, D, 3, x, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_standardize(one, orig), REVL_OK);
    z = revl_dataset_x(t); /* d has been standardised twice by now; t once, by orig */
    for (int j = 0; j < D; j++)
        ck_assert_double_eq(revl_dataset_x(one)[j], z[j]);

    /* errors leave the contents alone */
    revl_dataset *other, *empty;
    ck_assert_int_eq(revl_dataset_create(&other, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_create(&empty, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(other, 2, 2, 3, (double[]){1, 2, 3, 4}, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_standardize(one, other), REVL_ERR_INVALID); /* dim 2 vs 4 */
    ck_assert_int_eq(revl_dataset_standardize(one, empty), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_standardize(empty, NULL), REVL_ERR_STATE);
    ck_assert_int_eq(revl_dataset_standardize(empty, one), REVL_ERR_STATE);
    for (int j = 0; j < D; j++)
        ck_assert_double_eq(revl_dataset_x(one)[j], z[j]);

    /* overflow: a reference with a huge spread is fine, but values that overflow when divided
     * by a tiny sd are refused and leave the data alone */
    revl_dataset *tiny, *huge;
    ck_assert_int_eq(revl_dataset_create(&tiny, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_create(&huge, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(tiny, 2, 1, 3, (double[]){0, 1e-300}, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(huge, 2, 1, 3, (double[]){1e300, -1e300}, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_standardize(huge, tiny), REVL_ERR_RANGE);
    ck_assert_double_eq(revl_dataset_x(huge)[0], 1e300);
    ck_assert_double_eq(revl_dataset_x(huge)[1], -1e300);
    ck_assert_int_eq(revl_dataset_standardize(huge, NULL), REVL_OK);
    ck_assert_double_eq_tol(revl_dataset_x(huge)[0], 1.0, 1e-12);
    ck_assert_double_eq_tol(revl_dataset_x(huge)[1], -1.0, 1e-12);

    /* finite features near DBL_MAX whose naive sum (or deviation from the mean) overflows: the
     * statistics are taken in units of a power of two, so they come out as those of the same
     * data scaled down by 2^-20, bit for bit */
    static const double big[][4] = {{1e308, 1.5e308, -1e308, 1.7e308},
                                    {1.7e308, -1.7e308, -1.7e308, -1.7e308},
                                    {1.6e308, 1.6e308, 1.6e308, 1.7e308}};
    for (size_t c = 0; c < sizeof big / sizeof big[0]; c++) {
        revl_dataset *a, *b;
        double small[4];
        for (int i = 0; i < 4; i++)
            small[i] = big[c][i] * 0x1p-20;
        ck_assert_int_eq(revl_dataset_create(&a, NULL), REVL_OK);
        ck_assert_int_eq(revl_dataset_create(&b, NULL), REVL_OK);
        ck_assert_int_eq(revl_dataset_set(a, 4, 1, 3, big[c], (int32_t[]){0, 1, 2, 0}), REVL_OK);
        ck_assert_int_eq(revl_dataset_set(b, 4, 1, 3, small, (int32_t[]){0, 1, 2, 0}), REVL_OK);
        ck_assert_msg(revl_dataset_standardize(a, NULL) == REVL_OK, "case %zu: %s", c,
                      revl_dataset_last_error(a));
        ck_assert_int_eq(revl_dataset_standardize(b, NULL), REVL_OK);
        double m = 0, v = 0;
        for (int i = 0; i < 4; i++) {
            ck_assert_double_eq(revl_dataset_x(a)[i], revl_dataset_x(b)[i]);
            m += revl_dataset_x(a)[i] / 4;
        }
        for (int i = 0; i < 4; i++)
            v += (revl_dataset_x(a)[i] - m) * (revl_dataset_x(a)[i] - m) / 4;
        ck_assert_double_eq_tol(m, 0.0, 1e-14);
        ck_assert_double_eq_tol(v, 1.0, 1e-14);
        revl_dataset_free(a);
        revl_dataset_free(b);
    }

    revl_dataset_free(tiny);
    revl_dataset_free(huge);
    revl_dataset_free(other);
    revl_dataset_free(empty);
    revl_dataset_free(one);
    revl_dataset_free(orig);
    revl_dataset_free(d);
    revl_dataset_free(t);
}
END_TEST

/* ------------------------------------------------------------------ IDX files */

START_TEST(test_idx_round_trip)
{
    write_pair(7, 3, 5, 4);
    char img[512], lab[512], imgz[512], labz[512];
    tmp_path(img, sizeof img, "img.idx");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(imgz, sizeof imgz, "img.idx.gz");
    tmp_path(labz, sizeof labz, "lab.idx.gz");
    revl_dataset *d;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    /* every combination of plain and gzip */
    const char *imgs[2] = {img, imgz}, *labs[2] = {lab, labz};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            ck_assert_int_eq(revl_dataset_load_idx(d, imgs[a], labs[b], 0), REVL_OK);
            check_pair_contents(d, 7, 15, 7, 4);
        }
    /* max_n: fewer examples, n_classes still from the whole label file */
    ck_assert_int_eq(revl_dataset_load_idx(d, imgz, labz, 2), REVL_OK);
    check_pair_contents(d, 2, 15, 7, 4);
    ck_assert_int_eq(revl_dataset_load_idx(d, img, lab, 7), REVL_OK);
    check_pair_contents(d, 7, 15, 7, 4);
    ck_assert_int_eq(revl_dataset_load_idx(d, img, lab, 1000), REVL_OK);
    check_pair_contents(d, 7, 15, 7, 4);
    /* pixel range */
    const double *x = revl_dataset_x(d);
    int saw0 = 0, saw1 = 0;
    for (size_t k = 0; k < 7 * 15; k++) {
        ck_assert(x[k] >= 0.0 && x[k] <= 1.0);
        saw0 |= x[k] == 0.0;
        saw1 |= x[k] == 1.0;
    }
    ck_assert(saw0);
    revl_dataset_free(d);
    (void)saw1;

    /* a larger gzip file (several deflate blocks) */
    write_pair(300, 28, 28, 10);
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_load_idx(d, imgz, labz, 0), REVL_OK);
    check_pair_contents(d, 300, 784, 300, 10);
    revl_dataset_free(d);
}
END_TEST

/* The bytes the minibatch gather reads: kept by a subset (from its first example), dropped by
 * whatever changes x; the built-in MLP's gradients from them are those from x itself. */
START_TEST(test_idx_pixels)
{
    check_pixels_to_double();
    write_pair(40, 4, 5, 3);
    char img[512], lab[512];
    tmp_path(img, sizeof img, "img.idx");
    tmp_path(lab, sizeof lab, "lab.idx");
    revl_dataset *d, *part, *plain;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_create(&part, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_create(&plain, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_load_idx(d, img, lab, 0), REVL_OK);
    ck_assert_ptr_nonnull(rv_dataset_pixels(d));
    check_pair_contents(d, 40, 20, 40, 3);
    ck_assert_int_eq(revl_dataset_load_idx(d, img, lab, 7), REVL_OK); /* the first 7 kept */
    ck_assert_ptr_nonnull(rv_dataset_pixels(d));
    check_pair_contents(d, 7, 20, 40, 3);
    ck_assert_int_eq(revl_dataset_load_idx(d, img, lab, 0), REVL_OK);
    ck_assert_int_eq(revl_dataset_subset(part, d, 3, 30), REVL_OK);
    const uint8_t *px = rv_dataset_pixels(part);
    const double *x = revl_dataset_x(part);
    ck_assert_ptr_nonnull(px);
    for (size_t k = 0; k < 30 * 20; k++) {
        ck_assert_uint_eq(px[k], pixel(3 * 20 + k));
        ck_assert_double_eq(x[k], px[k] / 255.0);
    }
    ck_assert_int_eq(revl_dataset_set(plain, 30, 20, 3, x, revl_dataset_labels(part)), REVL_OK);
    ck_assert_ptr_null(rv_dataset_pixels(plain));
    /* an MLP on each, batch 6 of 30: the gather from the bytes and from x, the same bits. The
     * first's memory ends against an inaccessible page (testutil.h): its gather, which reads the
     * permutation ahead to prefetch rows, faults if it reads past it in the epoch's last batch */
    const size_t widths[] = {20, 7, 3};
    revl_model *m[2];
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.batch_size = 6;
    guarded guard = {0};
    revl_allocator ga = guarded_allocator(&guard);
    revl_mlp_options og = o;
    og.allocator = &ga;
    ck_assert_int_eq(revl_mlp_create(&m[0], 3, widths, part, &og), REVL_OK);
    ck_assert_int_eq(revl_mlp_create(&m[1], 3, widths, plain, &o), REVL_OK);
    ck_assert_int_gt(guard.live, 0);
    size_t p = revl_model_n_params(m[0]), nm = revl_model_n_meta(m[0]);
    double w[256], meta[8] = {-2, -2, -2, -2, -2, -2, -2, -2}, g[2][256], loss[2];
    ck_assert_uint_le(p, 256);
    ck_assert_uint_le(nm, 8);
    for (size_t i = 0; i < p; i++)
        w[i] = 0.3 * sin(1.0 + (double)i);
    for (size_t step = 0; step < 12; step++) { /* two epochs: two permutations */
        for (int k = 0; k < 2; k++)
            ck_assert_int_eq(revl_model_grad(m[k], step, w, meta, g[k], &loss[k]), REVL_OK);
        ck_assert(memcmp(g[0], g[1], p * sizeof g[0][0]) == 0);
        ck_assert(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0);
    }
    /* standardised in place: the bytes go, and the MLP's gather reads the new x */
    ck_assert_int_eq(revl_dataset_standardize(part, NULL), REVL_OK);
    ck_assert_ptr_null(rv_dataset_pixels(part));
    ck_assert_int_eq(revl_dataset_standardize(plain, NULL), REVL_OK);
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(revl_model_grad(m[k], 5, w, meta, g[k], &loss[k]), REVL_OK);
    ck_assert(memcmp(g[0], g[1], p * sizeof g[0][0]) == 0);
    /* replaced by revl_dataset_set: none */
    ck_assert_int_eq(revl_dataset_set(d, 30, 20, 3, revl_dataset_x(plain),
                                      revl_dataset_labels(plain)), REVL_OK);
    ck_assert_ptr_null(rv_dataset_pixels(d));
    for (int k = 0; k < 2; k++)
        revl_model_free(m[k]);
    ck_assert_int_eq(guard.live, 0);
    guarded_done(&guard);
    revl_dataset_free(d);
    revl_dataset_free(part);
    revl_dataset_free(plain);
}
END_TEST

START_TEST(test_idx_failure_keeps_contents)
{
    write_pair(4, 2, 2, 3);
    char img[512], lab[512], missing[512];
    tmp_path(img, sizeof img, "img.idx");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(missing, sizeof missing, "no-such-file");
    revl_dataset *d;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_load_idx(d, img, lab, 0), REVL_OK);
    ck_assert_int_eq(revl_dataset_load_idx(d, img, missing, 0), REVL_ERR_IO);
    check_pair_contents(d, 4, 4, 4, 3);
    ck_assert_int_eq(revl_dataset_load_idx(d, lab, img, 0), REVL_ERR_IO);
    check_pair_contents(d, 4, 4, 4, 3);
    ck_assert_int_eq(revl_dataset_load_idx(d, NULL, lab, 0), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_load_idx(d, img, NULL, 0), REVL_ERR_INVALID);
    check_pair_contents(d, 4, 4, 4, 3);
    revl_dataset_free(d);
}
END_TEST

START_TEST(test_idx_missing_file)
{
    write_pair(4, 2, 2, 3);
    char img[512], lab[512], missing[512];
    tmp_path(img, sizeof img, "img.idx");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(missing, sizeof missing, "no-such-file.gz");
    expect_io(missing, lab, "no-such-file.gz", "cannot open");
    expect_io(img, missing, "no-such-file.gz", "cannot open");
    expect_io(tmpdir, lab, tmpdir, "not a regular file (a directory)");
}
END_TEST

START_TEST(test_idx_wrong_magic)
{
    write_pair(4, 2, 2, 3);
    char img[512], lab[512], bad[512];
    tmp_path(img, sizeof img, "img.idx");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(bad, sizeof bad, "bad.idx");
    /* swapped files */
    expect_io(lab, lab, "lab.idx", "label file");
    expect_io(img, img, "img.idx", "image file");
    size_t len;
    unsigned char *b = idx_images(4, 2, 2, &len);
    const unsigned char magics[][4] = {
        {0, 0, 8, 1}, /* labels: handled above; here as an image, "label file" */
        {0, 0, 8, 2}, /* 2 dimensions */
        {0, 0, 9, 3}, /* signed bytes */
        {0, 0, 0x0d, 3}, /* floats */
        {1, 0, 8, 3},
        {0x50, 0x4b, 3, 4}, /* a zip file */
    };
    for (size_t m = 0; m < sizeof magics / sizeof magics[0]; m++) {
        memcpy(b, magics[m], 4);
        write_bytes(bad, b, len);
        expect_io(bad, lab, "bad.idx", m == 0 ? "label file" : "bad magic number");
    }
    free(b);
    b = idx_labels(4, 3, &len);
    b[3] = 2; /* labels with 2 dimensions */
    write_bytes(bad, b, len);
    expect_io(img, bad, "bad.idx", "bad magic number 0x00000802");
    free(b);
    /* empty and tiny files */
    write_bytes(bad, (const unsigned char *)"", 0);
    expect_io(bad, lab, "bad.idx", "not an IDX file");
    write_bytes(bad, (const unsigned char *)"\x1f", 1);
    expect_io(img, bad, "bad.idx", "not an IDX file");
}
END_TEST

START_TEST(test_idx_truncated_and_trailing)
{
    write_pair(4, 3, 2, 3);
    char img[512], lab[512], bad[512], badz[512];
    tmp_path(img, sizeof img, "img.idx");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(bad, sizeof bad, "bad.idx");
    tmp_path(badz, sizeof badz, "bad.idx.gz");
    size_t len;
    unsigned char *b = idx_images(4, 3, 2, &len);
    /* every shorter length of the image file: truncated header or truncated pixels */
    for (size_t cut = 4; cut < len; cut++) {
        write_bytes(bad, b, cut);
        expect_io(bad, lab, "bad.idx", "truncated");
    }
    /* the same inside a gzip file: the IDX check runs on the decompressed bytes */
    write_bytes(bad, b, len - 1);
    gzip_file(bad, badz);
    expect_io(badz, lab, "bad.idx.gz", "truncated");
    /* trailing garbage */
    unsigned char *longer = malloc(len + 3);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, b, len);
    memcpy(longer + len, "xyz", 3);
    write_bytes(bad, longer, len + 3);
    expect_io(bad, lab, "bad.idx", "3 bytes of trailing garbage");
    gzip_file(bad, badz);
    expect_io(badz, lab, "bad.idx.gz", "trailing garbage");
    free(longer);
    /* zero sizes */
    put_be32(b + 8, 0);
    write_bytes(bad, b, 16);
    expect_io(bad, lab, "bad.idx", "zero-sized");
    put_be32(b + 4, 0);
    put_be32(b + 8, 3);
    write_bytes(bad, b, 16);
    expect_io(bad, lab, "bad.idx", "no images");
    /* absurd sizes: overflow or beyond the limit, not a huge allocation */
    put_be32(b + 4, 0xffffffffu);
    put_be32(b + 8, 0xffffffffu);
    put_be32(b + 12, 0xffffffffu);
    write_bytes(bad, b, len);
    expect_io(bad, lab, "bad.idx", "too large");
    free(b);

    b = idx_labels(4, 3, &len);
    for (size_t cut = 4; cut < len; cut++) {
        write_bytes(bad, b, cut);
        expect_io(img, bad, "bad.idx", "truncated");
    }
    b = realloc(b, len + 1);
    ck_assert_ptr_nonnull(b);
    b[len] = 0;
    write_bytes(bad, b, len + 1);
    expect_io(img, bad, "bad.idx", "1 bytes of trailing garbage");
    put_be32(b + 4, 0);
    write_bytes(bad, b, 8);
    expect_io(img, bad, "bad.idx", "no labels");
    free(b);
}
END_TEST

START_TEST(test_idx_mismatched_counts)
{
    char img[512], lab[512], lab5[512];
    write_pair(4, 2, 2, 3);
    tmp_path(img, sizeof img, "img.idx.gz");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(lab5, sizeof lab5, "lab5.idx");
    size_t len;
    unsigned char *b = idx_labels(5, 3, &len);
    write_bytes(lab5, b, len);
    free(b);
    char msg[512];
    ck_assert_int_eq(try_load(img, lab5, 0, msg, sizeof msg), REVL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(msg, "img.idx.gz has 4 images"));
    ck_assert_ptr_nonnull(strstr(msg, "lab5.idx has 5 labels"));
    /* max_n does not excuse a mismatch */
    ck_assert_int_eq(try_load(img, lab5, 2, msg, sizeof msg), REVL_ERR_IO);
    ck_assert_int_eq(try_load(img, lab, 2, msg, sizeof msg), REVL_OK);
}
END_TEST

START_TEST(test_idx_truncated_gzip)
{
    write_pair(20, 4, 4, 5);
    char imgz[512], lab[512], bad[512];
    tmp_path(imgz, sizeof imgz, "img.idx.gz");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(bad, sizeof bad, "cut.gz");
    size_t len;
    unsigned char *gz = read_bytes(imgz, &len);
    for (size_t cut = 2; cut < len; cut++) {
        write_bytes(bad, gz, cut);
        char msg[512];
        ck_assert_int_eq(try_load(bad, lab, 0, msg, sizeof msg), REVL_ERR_IO);
        ck_assert_msg(strstr(msg, "cut.gz: bad gzip data") != NULL, "cut %zu: %s", cut, msg);
    }
    /* a truncated gzip file with trailing garbage appended instead */
    write_bytes(bad, gz, len - 8);
    FILE *f = fopen(bad, "ab");
    ck_assert_ptr_nonnull(f);
    fputs("garbage!garbage!", f);
    fclose(f);
    expect_io(bad, lab, "cut.gz", "bad gzip data");
    /* two members concatenated: refused, not silently half-read */
    unsigned char *two = malloc(2 * len);
    ck_assert_ptr_nonnull(two);
    memcpy(two, gz, len);
    memcpy(two + len, gz, len);
    write_bytes(bad, two, 2 * len);
    expect_io(bad, lab, "cut.gz", "multi-member");
    free(two);
    free(gz);
}
END_TEST

START_TEST(test_idx_corrupted_gzip)
{
    write_pair(6, 4, 4, 5);
    char imgz[512], lab[512], bad[512];
    tmp_path(imgz, sizeof imgz, "img.idx.gz");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(bad, sizeof bad, "flip.gz");
    size_t len;
    unsigned char *gz = read_bytes(imgz, &len);
    int ok = 0, io = 0;
    /* every single-bit flip: either harmless (header time stamp, OS byte...) and then the data
     * is exactly right, or REVL_ERR_IO naming the file */
    for (size_t bit = 0; bit < 8 * len; bit++) {
        gz[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        write_bytes(bad, gz, len);
        gz[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        revl_dataset *d;
        ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
        int rc = revl_dataset_load_idx(d, bad, lab, 0);
        if (rc == REVL_OK) {
            check_pair_contents(d, 6, 16, 6, 5);
            ok++;
        } else {
            ck_assert_int_eq(rc, REVL_ERR_IO);
            ck_assert_ptr_nonnull(strstr(revl_dataset_last_error(d), "flip.gz"));
            io++;
        }
        revl_dataset_free(d);
    }
    ck_assert_int_gt(io, 8 * (int)len - 8 * 8); /* only bits of the 10-byte header may pass */
    ck_assert_int_gt(ok, 0);
    free(gz);
}
END_TEST

/* Load through the counting allocator; returns the status, the message in msg and the largest
 * allocation asked for in *biggest. */
static int load_counted(const char *img, const char *lab, char *msg, size_t msg_size,
                        size_t *biggest)
{
    failing c = {.fail_at = -1};
    revl_allocator a = failing_allocator(&c);
    revl_dataset *d;
    ck_assert_int_eq(revl_dataset_create(&d, &a), REVL_OK);
    int rc = revl_dataset_load_idx(d, img, lab, 0);
    snprintf(msg, msg_size, "%s", revl_dataset_last_error(d));
    revl_dataset_free(d);
    ck_assert_int_eq(c.live, 0);
    *biggest = c.biggest;
    return rc;
}

/* A header announcing 2 GiB of pixels (or 2^31 labels) or more is refused before the data is
 * read; one announcing just under it, in a short file, is "truncated" without the reader ever
 * asking for what the header claims. */
START_TEST(test_idx_size_limit)
{
    write_pair(4, 2, 2, 3);
    char img[512], lab[512], bad[512], badz[512], msg[512];
    tmp_path(img, sizeof img, "img.idx");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(bad, sizeof bad, "big.idx");
    tmp_path(badz, sizeof badz, "big.idx.gz");
    size_t len, biggest;
    unsigned char *b = idx_images(4, 2, 2, &len);
    const uint32_t sizes[][3] = {
        {1u << 21, 32, 32},       /* exactly 2 GiB */
        {1u << 31, 1, 1},         /* 2 GiB again, as a count */
        {0xffffffffu, 784, 1},    /* far beyond */
        {(1u << 31) - 1, 1, 1},   /* 2 GiB - 1: allowed by the header, truncated by the file */
    };
    for (int k = 0; k < 4; k++) {
        put_be32(b + 4, sizes[k][0]);
        put_be32(b + 8, sizes[k][1]);
        put_be32(b + 12, sizes[k][2]);
        write_bytes(bad, b, len);
        gzip_file(bad, badz);
        for (int z = 0; z < 2; z++) {
            const char *path = z ? badz : bad;
            int rc = load_counted(path, lab, msg, sizeof msg, &biggest);
            ck_assert_int_eq(rc, REVL_ERR_IO);
            ck_assert_msg(strstr(msg, z ? "big.idx.gz" : "big.idx") != NULL, "%s", msg);
            if (k < 3)
                ck_assert_msg(strstr(msg, "too large") != NULL, "%s", msg);
            else /* the count check comes first: 4 labels for 2^31 - 1 images */
                ck_assert_msg(strstr(msg, "labels") != NULL, "%s", msg);
            ck_assert_msg(biggest <= (1u << 17), "size %d: asked for %zu bytes", k, biggest);
        }
    }
    free(b);
    /* just under the limit with a matching label count: the data is read, found short */
    b = idx_images(1, 2, 2, &len);
    put_be32(b + 4, (1u << 31) - 1);
    put_be32(b + 8, 1);
    put_be32(b + 12, 1);
    write_bytes(bad, b, len);
    gzip_file(bad, badz);
    free(b);
    char blab[512];
    tmp_path(blab, sizeof blab, "big-labels.idx");
    b = idx_labels(1, 1, &len);
    put_be32(b + 4, (1u << 31) - 1);
    write_bytes(blab, b, len);
    free(b);
    for (int z = 0; z < 2; z++) {
        int rc = load_counted(z ? badz : bad, blab, msg, sizeof msg, &biggest);
        ck_assert_int_eq(rc, REVL_ERR_IO);
        ck_assert_msg(strstr(msg, "truncated: header announces 2147483647 images") != NULL,
                      "%s", msg);
        ck_assert_msg(biggest <= (1u << 20), "asked for %zu bytes", biggest);
    }
    /* labels: a count of 2^31 is refused from the header */
    b = idx_labels(4, 3, &len);
    put_be32(b + 4, 1u << 31);
    write_bytes(bad, b, len);
    free(b);
    ck_assert_int_eq(load_counted(img, bad, msg, sizeof msg, &biggest), REVL_ERR_IO);
    ck_assert_msg(strstr(msg, "big.idx: header announces 2147483648 labels, too many") != NULL,
                  "%s", msg);
}
END_TEST

/* zlib's verdicts become REVL_ERR_IO naming the file: a wrong CRC-32, a wrong length, a
 * corrupt block, a stream cut short. */
START_TEST(test_idx_zlib_errors)
{
    write_pair(6, 4, 4, 5);
    char imgz[512], lab[512], bad[512], msg[512];
    tmp_path(imgz, sizeof imgz, "img.idx.gz");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(bad, sizeof bad, "z.gz");
    size_t len;
    unsigned char *gz = read_bytes(imgz, &len);
    struct {
        size_t at;
        const char *reason;
    } cases[] = {
        {len - 8, "incorrect data check"},   /* CRC-32 in the trailer */
        {len - 4, "incorrect length check"}, /* ISIZE in the trailer */
        {3, "unknown header flags set"},     /* reserved FLG bits */
        {2, "unknown compression method"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        unsigned char keep = gz[cases[k].at];
        gz[cases[k].at] ^= k == 2 ? 0xe0 : 0x01;
        write_bytes(bad, gz, len);
        gz[cases[k].at] = keep;
        ck_assert_int_eq(try_load(bad, lab, 0, msg, sizeof msg), REVL_ERR_IO);
        ck_assert_msg(strstr(msg, "z.gz: bad gzip data: ") != NULL, "%s", msg);
        ck_assert_msg(strstr(msg, cases[k].reason) != NULL, "%s", msg);
    }
    write_bytes(bad, gz, len - 3);
    ck_assert_int_eq(try_load(bad, lab, 0, msg, sizeof msg), REVL_ERR_IO);
    ck_assert_msg(strstr(msg, "z.gz: bad gzip data: the compressed stream ends early") != NULL,
                  "%s", msg);
    free(gz);
}
END_TEST

/* ------------------------------------------------------------------ allocation failures */

START_TEST(test_nomem_everywhere)
{
    write_pair(5, 3, 3, 4);
    char img[512], lab[512], imgz[512], labz[512];
    tmp_path(img, sizeof img, "img.idx");
    tmp_path(lab, sizeof lab, "lab.idx");
    tmp_path(imgz, sizeof imgz, "img.idx.gz");
    tmp_path(labz, sizeof labz, "lab.idx.gz");
    failing c = {.fail_at = -1};
    revl_allocator a = failing_allocator(&c);

    /* create */
    revl_dataset *d = (revl_dataset *)&c;
    c.calls = 0;
    c.fail_at = 0;
    ck_assert_int_eq(revl_dataset_create(&d, &a), REVL_ERR_NOMEM);
    ck_assert_ptr_null(d);
    ck_assert_uint_eq(c.live, 0);
    c.fail_at = -1;
    ck_assert_int_eq(revl_dataset_create(&d, &a), REVL_OK);
    revl_dataset *src;
    ck_assert_int_eq(revl_dataset_create(&src, &a), REVL_OK);
    double x[4] = {1, 2, 3, 4};
    int32_t y[2] = {0, 1};
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, x, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(src, 2, 2, 2, x, y), REVL_OK);

    /* each operation, failing its k-th allocation for every k until it succeeds; a failure
     * returns REVL_ERR_NOMEM, leaks nothing and leaves the contents as they were */
    for (int op = 0; op < 7; op++) {
        int done = 0;
        for (long k = 0; k < 99 && !done; k++) {
            long live = c.live;
            c.calls = 0;
            c.fail_at = k;
            int rc;
            switch (op) {
            case 0: rc = revl_dataset_set(d, 2, 2, 2, x, y); break;
            case 1: rc = revl_dataset_subset(d, src, 0, 2); break;
            case 2: rc = revl_dataset_subset(d, d, 0, 2); break;
            case 3: rc = revl_dataset_standardize(d, src); break;
            case 4: rc = revl_dataset_load_idx(d, img, lab, 0); break;
            case 5: rc = revl_dataset_load_idx(d, imgz, labz, 0); break;
            default: rc = revl_dataset_load_idx(d, imgz, lab, 2); break;
            }
            c.fail_at = -1;
            if (rc == REVL_OK) {
                ck_assert_int_gt(k, 0); /* every operation allocates */
                done = 1;
            } else {
                ck_assert_msg(rc == REVL_ERR_NOMEM, "op %d, k %ld: %d", op, k, rc);
                ck_assert_uint_eq(c.live, live);
                ck_assert_ptr_nonnull(strstr(revl_dataset_last_error(d), "out of memory"));
                ck_assert_uint_eq(revl_dataset_n(d), 2);
                ck_assert_uint_eq(revl_dataset_dim(d), 2);
                for (int j = 0; j < 4; j++)
                    ck_assert_double_eq(revl_dataset_x(d)[j], x[j]);
            }
        }
        ck_assert_msg(done, "op %d never succeeded", op);
        if (op >= 4) /* check what loaded, then go back to the 2x2 contents */
            check_pair_contents(d, op == 6 ? 2 : 5, 9, 5, 4);
        ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, x, y), REVL_OK);
    }
    revl_dataset_free(d);
    revl_dataset_free(src);
    ck_assert_uint_eq(c.live, 0);
}
END_TEST

/* ------------------------------------------------------------------ the real data set */

START_TEST(test_fashion_mnist)
{
    const char *img = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *lab = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    /* dataset-fashion-mnist is in DEB_PKGS: missing, it is a failure, not a skip */
    ck_assert_msg(access(img, R_OK) == 0 && access(lab, R_OK) == 0,
                  "%s not installed (make deps installs dataset-fashion-mnist)", img);
    revl_dataset *d;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_msg(revl_dataset_load_idx(d, img, lab, 0) == REVL_OK, "%s",
                  revl_dataset_last_error(d));
    ck_assert_uint_eq(revl_dataset_n(d), 10000);
    ck_assert_uint_eq(revl_dataset_dim(d), 784);
    ck_assert_uint_eq(revl_dataset_n_classes(d), 10);
    const double *x = revl_dataset_x(d);
    const int32_t *y = revl_dataset_labels(d);
    size_t per_class[10] = {0};
    for (size_t i = 0; i < 10000; i++) {
        ck_assert(y[i] >= 0 && y[i] < 10);
        per_class[y[i]]++;
    }
    for (int k = 0; k < 10; k++) /* the test set is balanced */
        ck_assert_uint_eq(per_class[k], 1000);
    double lo = 1, hi = 0, sum = 0;
    for (size_t k = 0; k < 10000 * 784; k++) {
        lo = x[k] < lo ? x[k] : lo;
        hi = x[k] > hi ? x[k] : hi;
        sum += x[k];
    }
    ck_assert_double_eq(lo, 0.0);
    ck_assert_double_eq(hi, 1.0);
    double mean = sum / (10000.0 * 784);
    ck_assert_msg(mean > 0.2 && mean < 0.4, "mean pixel %g", mean); /* about 0.286 */
    /* a prefix with max_n is the same as the first examples */
    revl_dataset *p;
    ck_assert_int_eq(revl_dataset_create(&p, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_load_idx(p, img, lab, 100), REVL_OK);
    ck_assert_uint_eq(revl_dataset_n(p), 100);
    ck_assert_uint_eq(revl_dataset_n_classes(p), 10);
    ck_assert_int_eq(memcmp(revl_dataset_x(p), x, 100 * 784 * sizeof *x), 0);
    ck_assert_int_eq(memcmp(revl_dataset_labels(p), y, 100 * sizeof *y), 0);
    revl_dataset_free(p);
    revl_dataset_free(d);
}
END_TEST

static Suite *dataset_suite(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("handle");
    tcase_add_test(tc, test_create_and_getters);
    tcase_add_test(tc, test_set_copies);
    tcase_add_test(tc, test_set_bad_args);
    tcase_add_test(tc, test_subset);
    tcase_add_test(tc, test_standardize);
    suite_add_tcase(s, tc);

    tc = tcase_create("idx");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_set_timeout(tc, 300); /* valgrind */
    tcase_add_test(tc, test_idx_round_trip);
    tcase_add_test(tc, test_idx_pixels);
    tcase_add_test(tc, test_idx_failure_keeps_contents);
    tcase_add_test(tc, test_idx_missing_file);
    tcase_add_test(tc, test_idx_wrong_magic);
    tcase_add_test(tc, test_idx_truncated_and_trailing);
    tcase_add_test(tc, test_idx_mismatched_counts);
    tcase_add_test(tc, test_idx_truncated_gzip);
    tcase_add_test(tc, test_idx_corrupted_gzip);
    tcase_add_test(tc, test_idx_size_limit);
    tcase_add_test(tc, test_idx_zlib_errors);
    tcase_add_test(tc, test_nomem_everywhere);
    tcase_add_test(tc, test_fashion_mnist);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dataset_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
