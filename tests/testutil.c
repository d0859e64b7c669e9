/* testutil.c: the allocators of testutil.h (failing and counting; guarded) and its data set. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "testutil.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

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

revl_allocator test_allocator(void *(*alloc)(size_t, void *), void (*release)(void *, void *),
                              void *user)
{
    revl_allocator a;
    revl_allocator_init(&a);
    a.alloc = alloc;
    a.free = release;
    a.user = user;
    return a;
}

revl_allocator failing_allocator(failing *f)
{
    return test_allocator(failing_alloc, failing_free, f);
}

struct guarded_block {
    void *ptr, *base;
    size_t len;
};

static void *guarded_alloc(size_t size, void *user)
{
    guarded *g = user;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), used = (size + 15) & ~(size_t)15;
    size_t span = (used + page - 1) / page * page;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 64;
        struct guarded_block *b = realloc(g->blocks, cap * sizeof *b);
        if (!b)
            return NULL;
        g->blocks = b;
        g->cap = cap;
    }
    unsigned char *base =
        mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (mprotect(base + span, page, PROT_NONE) != 0) {
        munmap(base, span + page);
        return NULL;
    }
    void *ptr = base + span - used;
    g->blocks[g->n++] = (struct guarded_block){ptr, base, span + page};
    g->live++;
    return ptr;
}

static void guarded_free(void *ptr, void *user)
{
    guarded *g = user;
    for (size_t i = 0; i < g->n; i++)
        if (g->blocks[i].ptr == ptr) {
            munmap(g->blocks[i].base, g->blocks[i].len);
            g->blocks[i] = g->blocks[--g->n];
            g->live--;
            return;
        }
    abort(); /* not a block of this allocator */
}

revl_allocator guarded_allocator(guarded *g)
{
    return test_allocator(guarded_alloc, guarded_free, g);
}

void guarded_done(guarded *g)
{
    free(g->blocks);
    g->blocks = NULL;
    g->n = g->cap = 0;
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
