/* testutil.c: the failing, counting allocator of testutil.h. */
#include "testutil.h"

#include <stdlib.h>

static void *failing_alloc(size_t size, void *user)
{
    failing *f = user;
    if (f->calls++ == f->fail_at)
        return NULL;
    if (size > f->biggest)
        f->biggest = size;
    f->live++;
    return malloc(size);
}

static void failing_free(void *p, void *user)
{
    ((failing *)user)->live--;
    free(p);
}

revl_allocator failing_allocator(failing *f)
{
    revl_allocator a;
    revl_allocator_init(&a);
    a.alloc = failing_alloc;
    a.free = failing_free;
    a.user = f;
    return a;
}

revl_dataset *test_dataset(size_t n, size_t dim, size_t classes, uint64_t seed)
{
    double *x = malloc(n * dim * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    revl_dataset *d = NULL;
    if (!x || !y)
        goto out;
    uint64_t s = seed * 2654435761u + 1;
    for (size_t k = 0; k < n * dim; k++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[k] = (double)(s >> 11) * 0x1p-53 * 2 - 1;
    }
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)(i % classes);
    if (revl_dataset_create(&d, NULL) != REVL_OK ||
        revl_dataset_set(d, n, dim, classes, x, y) != REVL_OK) {
        revl_dataset_free(d);
        d = NULL;
    }
out:
    free(x);
    free(y);
    return d;
}
