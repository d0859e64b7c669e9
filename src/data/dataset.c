/* dataset.c: the labelled data set handle: n examples of dim doubles (row-major) and int32 labels.
 * Every operation builds its result in new memory and swaps it in only on success, so a failed
 * call leaves the previous contents untouched. */
#include "data/idx.h"
#include "data/pixels.h"
#include "base/internal.h"

#include <math.h>
#include <string.h>

struct revl_dataset {
    revl_allocator alloc;
    size_t n, dim, n_classes; /* all 0 while empty */
    double *x;                /* n*dim, row-major */
    int32_t *labels;          /* n */
    uint8_t *pixels;          /* NULL, or n*dim with x[k] == pixels[k] / 255.0 (pixels.h) */
    char err[RV_ERRLEN];
};

static int dataset_create(revl_dataset **out, const revl_allocator *allocator);

int revl_dataset_create(revl_dataset **out, const revl_allocator *allocator)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(dataset_create(out, allocator), "revl_dataset_create");
}

static int dataset_create(revl_dataset **out, const revl_allocator *allocator)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    revl_allocator a;
    rv_allocator_copy(&a, allocator);
    revl_dataset *d = rv_calloc(&a, 1, sizeof *d);
    if (!d)
        return REVL_ERR_NOMEM;
    d->alloc = a;
    *out = d;
    return REVL_OK;
}

/* x changes: its bytes no longer say what it holds. */
static void drop_pixels(revl_dataset *d)
{
    rv_free(&d->alloc, d->pixels);
    d->pixels = NULL;
}

static void release(revl_dataset *d)
{
    rv_free(&d->alloc, d->x);
    rv_free(&d->alloc, d->labels);
    drop_pixels(d);
    d->x = NULL;
    d->labels = NULL;
    d->n = d->dim = d->n_classes = 0;
}

const uint8_t *rv_dataset_pixels(const revl_dataset *d)
{
    return d->pixels;
}

void revl_dataset_free(revl_dataset *d)
{
    if (!d)
        return;
    revl_allocator a = d->alloc;
    release(d);
    rv_free(&a, d);
}

/* Take over x, labels and pixels (NULL: none; allocated through d's allocator), dropping the
 * old contents. */
static void adopt(revl_dataset *d, size_t n, size_t dim, size_t n_classes, double *x,
                  int32_t *labels, uint8_t *pixels)
{
    release(d);
    d->n = n;
    d->dim = dim;
    d->n_classes = n_classes;
    d->x = x;
    d->labels = labels;
    d->pixels = pixels;
    rv_clear(d->err); /* the call succeeded: an earlier failure's message no longer applies */
}

/* Fresh arrays for n examples of dim features, or REVL_ERR_NOMEM with nothing held. */
static int alloc_arrays(revl_dataset *d, size_t n, size_t dim, double **x, int32_t **labels)
{
    *x = rv_calloc(&d->alloc, n * dim, sizeof **x);
    *labels = rv_calloc(&d->alloc, n, sizeof **labels);
    if (!*x || !*labels) {
        rv_free(&d->alloc, *x);
        rv_free(&d->alloc, *labels);
        *x = NULL;
        *labels = NULL;
        return rv_fail(d->err, REVL_ERR_NOMEM, "out of memory for %zu examples of %zu features",
                       n, dim);
    }
    return REVL_OK;
}

int revl_dataset_set(revl_dataset *d, size_t n, size_t dim, size_t n_classes, const double *x,
                     const int32_t *labels)
{
    if (!d)
        return REVL_ERR_INVALID;
    if (!x || !labels)
        return rv_fail(d->err, REVL_ERR_INVALID, "%s is NULL", !x ? "x" : "labels");
    if (n == 0 || dim == 0 || n_classes == 0)
        return rv_fail(d->err, REVL_ERR_INVALID, "n = %zu, dim = %zu, n_classes = %zu: none may be 0",
                       n, dim, n_classes);
    int ok = 1;
    size_t bytes = rv_mul_size(rv_mul_size(n, dim, &ok), sizeof *x, &ok);
    if (!ok || bytes > SIZE_MAX / 2)
        return rv_fail(d->err, REVL_ERR_INVALID, "n = %zu times dim = %zu is too large", n, dim);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= n_classes)
            return rv_fail(d->err, REVL_ERR_INVALID, "labels[%zu] = %ld outside [0, %zu)", i,
                           (long)labels[i], n_classes);
    for (size_t k = 0; k < n * dim; k++)
        if (!isfinite(x[k]))
            return rv_fail(d->err, REVL_ERR_RANGE, "x[%zu] (example %zu, feature %zu) is not finite",
                           k, k / dim, k % dim);
    double *nx;
    int32_t *nl;
    int rc = alloc_arrays(d, n, dim, &nx, &nl);
    if (rc != REVL_OK)
        return rc;
    memcpy(nx, x, n * dim * sizeof *x);
    memcpy(nl, labels, n * sizeof *labels);
    adopt(d, n, dim, n_classes, nx, nl, NULL);
    return REVL_OK;
}

int revl_dataset_load_idx(revl_dataset *d, const char *images_path, const char *labels_path,
                          size_t max_n)
{
    if (!d)
        return REVL_ERR_INVALID;
    if (!images_path || !labels_path)
        return rv_fail(d->err, REVL_ERR_INVALID, "%s is NULL",
                       !images_path ? "images_path" : "labels_path");
    rv_idx_data data;
    int rc = rv_idx_load(&d->alloc, images_path, labels_path, max_n, &data, d->err);
    if (rc != REVL_OK)
        return rc;
    adopt(d, data.n, data.dim, data.n_classes, data.x, data.labels, data.pixels);
    return REVL_OK;
}

int revl_dataset_subset(revl_dataset *dst, const revl_dataset *src, size_t first, size_t count)
{
    if (!dst)
        return REVL_ERR_INVALID;
    if (!src)
        return rv_fail(dst->err, REVL_ERR_INVALID, "source data set is NULL");
    if (count == 0 || first > src->n || count > src->n - first)
        return rv_fail(dst->err, REVL_ERR_INVALID,
                       "examples [%zu, %zu + %zu) outside the source's %zu (count must be > 0)",
                       first, first, count, src->n);
    /* new arrays first: dst may be src itself */
    double *nx;
    int32_t *nl;
    int rc = alloc_arrays(dst, count, src->dim, &nx, &nl);
    if (rc != REVL_OK)
        return rc;
    memcpy(nx, src->x + first * src->dim, count * src->dim * sizeof *nx);
    memcpy(nl, src->labels + first, count * sizeof *nl);
    uint8_t *np = src->pixels ? rv_alloc_array(&dst->alloc, count * src->dim, 1) : NULL;
    if (np) /* short of memory: none, the gather reads x */
        memcpy(np, src->pixels + first * src->dim, count * src->dim);
    adopt(dst, count, src->dim, src->n_classes, nx, nl, np);
    return REVL_OK;
}

int revl_dataset_standardize(revl_dataset *d, const revl_dataset *reference)
{
    if (!d)
        return REVL_ERR_INVALID;
    const revl_dataset *r = reference ? reference : d;
    if (d->n == 0)
        return rv_fail(d->err, REVL_ERR_STATE, "data set is empty");
    if (r->n == 0)
        return rv_fail(d->err, REVL_ERR_INVALID, "reference data set is empty");
    if (r->dim != d->dim)
        return rv_fail(d->err, REVL_ERR_INVALID, "reference has %zu features, data set has %zu",
                       r->dim, d->dim);
    size_t n = r->n, dim = d->dim;
    double *mean = rv_calloc(&d->alloc, 3 * dim, sizeof *mean); /* dim <= n*dim: no overflow */
    if (!mean)
        return rv_fail(d->err, REVL_ERR_NOMEM, "out of memory for %zu feature statistics", dim);
    double *sd = mean + dim, *unit = sd + dim;
    /* Each feature is measured in units of a power of two, 2^e >= its largest |value|, so that
     * no sum or difference overflows for finite features near DBL_MAX; scaling by a power of two
     * is exact, so for every other feature the bits are those of the plain formulas. Two passes
     * (mean, then squared deviations) for accuracy; a feature whose values are all equal is
     * constant: its mean is that value exactly and its sd 1 (unit 2^0), so it becomes exactly
     * 0. Non-finite statistics are refused. */
    for (size_t j = 0; j < dim; j++) {
        double lo = r->x[j], hi = r->x[j], sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            double v = r->x[i * dim + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        unit[j] = 0;
        if (lo == hi) {
            mean[j] = lo;
            sd[j] = 1.0;
            continue;
        }
        int e;
        frexp(fmax(fabs(lo), fabs(hi)), &e);
        unit[j] = e;
        for (size_t i = 0; i < n; i++)
            sum += ldexp(r->x[i * dim + j], -e);
        mean[j] = sum / (double)n;
        /* deviations scaled by the largest one, so that neither tiny nor huge spreads
         * underflow or overflow when squared; big > 0 since lo != hi */
        double big = fmax(ldexp(hi, -e) - mean[j], mean[j] - ldexp(lo, -e)), ss = 0.0;
        for (size_t i = 0; i < n; i++) {
            double dv = (ldexp(r->x[i * dim + j], -e) - mean[j]) / big;
            ss += dv * dv;
        }
        sd[j] = big * sqrt(ss / (double)n); /* population sd: the reference gets sd 1 */
        if (!isfinite(mean[j]) || !isfinite(sd[j])) {
            rv_free(&d->alloc, mean);
            return rv_fail(d->err, REVL_ERR_RANGE,
                           "feature %zu: mean or standard deviation overflows", j);
        }
    }
    /* a dry run first, so that an overflow (d far outside reference's range) changes nothing */
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = 0; j < dim; j++)
            if (!isfinite((ldexp(d->x[i * dim + j], -(int)unit[j]) - mean[j]) / sd[j])) {
                rv_free(&d->alloc, mean);
                return rv_fail(d->err, REVL_ERR_RANGE,
                               "example %zu, feature %zu overflows when standardised", i, j);
            }
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = 0; j < dim; j++)
            d->x[i * dim + j] = (ldexp(d->x[i * dim + j], -(int)unit[j]) - mean[j]) / sd[j];
    drop_pixels(d);
    rv_free(&d->alloc, mean);
    rv_clear(d->err);
    return REVL_OK;
}

size_t revl_dataset_n(const revl_dataset *d) { return d ? d->n : 0; }
size_t revl_dataset_dim(const revl_dataset *d) { return d ? d->dim : 0; }
size_t revl_dataset_n_classes(const revl_dataset *d) { return d ? d->n_classes : 0; }
const double *revl_dataset_x(const revl_dataset *d) { return d ? d->x : NULL; }
const int32_t *revl_dataset_labels(const revl_dataset *d) { return d ? d->labels : NULL; }
const char *revl_dataset_last_error(const revl_dataset *d) { return d ? d->err : "dataset is NULL"; }
