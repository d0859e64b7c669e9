/* alloc.c: the allocator hooks. Every handle copies the caller's revl_allocator (or the malloc
 * default) and routes all its memory through it, so an embedding program controls memory and
 * tests can fail any single allocation. */
#define _DEFAULT_SOURCE /* madvise and MADV_HUGEPAGE (Linux); the code stands without them */
#include "base/internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void *default_alloc(size_t size, void *user)
{
    (void)user;
    return malloc(size);
}

static void default_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

void revl_allocator_init(revl_allocator *a)
{
    if (!a)
        return;
    a->struct_size = sizeof *a;
    a->alloc = default_alloc;
    a->free = default_free;
    a->user = NULL;
}

void rv_allocator_copy(revl_allocator *dst, const revl_allocator *src)
{
    revl_allocator_init(dst);
    /* an allocator missing either hook, or of a struct_size never shipped (a caller that forgot
     * revl_allocator_init: its hooks are garbage too), falls back to malloc (revl.h) */
    if (src && rv_struct_size_check(NULL, RV_STRUCT_ALLOCATOR, src->struct_size) == REVL_OK &&
        src->alloc && src->free) {
        dst->alloc = src->alloc;
        dst->free = src->free;
        dst->user = src->user;
    }
}

size_t rv_mul_size(size_t n, size_t size, int *ok)
{
    size_t r;
    if (__builtin_mul_overflow(n, size, &r)) {
        *ok = 0;
        return 0;
    }
    return r;
}

void *rv_alloc(const revl_allocator *a, size_t size)
{
    return a->alloc(size ? size : 1, a->user);
}

void *rv_alloc_array(const revl_allocator *a, size_t n, size_t size)
{
    int ok = 1;
    size_t bytes = rv_mul_size(n, size, &ok);
    if (!ok)
        return NULL;
    void *p = rv_alloc(a, bytes);
#ifdef MADV_HUGEPAGE
    /* Advice only (an allocator's memory that cannot take it just returns an error, ignored):
     * a 376 MB data set then costs ~180 page faults instead of ~92,000, which were half of
     * loading Fashion-MNIST. Only whole 2 MiB pages inside the block are advised. */
    const uintptr_t huge = (uintptr_t)1 << 21;
    if (p && bytes >= 4 * huge) {
        uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
        uintptr_t hi = ((uintptr_t)p + bytes) & ~(huge - 1);
        if (hi > lo)
            (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
#endif
    return p;
}

void *rv_calloc(const revl_allocator *a, size_t n, size_t size)
{
    void *p = rv_alloc_array(a, n, size);
    if (p)
        memset(p, 0, n * size); /* n * size did not overflow: rv_alloc_array checked */
    return p;
}

void rv_free(const revl_allocator *a, void *p)
{
    if (p)
        a->free(p, a->user);
}
