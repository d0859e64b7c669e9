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
