/* comm.c: the single-process communicator and the split of micro-batches over ranks. */
#include "base/internal.h"

#include <string.h>

/* One rank: the sum over ranks is the data itself. */
static int local_allreduce(int64_t *data, size_t n, void *user)
{
    return 0;
}

void revl_comm_init_local(revl_comm *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->struct_size = sizeof *c;
    c->rank = 0;
    c->size = 1;
    c->allreduce_i64 = local_allreduce;
}

int revl_dp_micro_range(size_t n_micro, int rank, int size, size_t *first, size_t *count)
{
    if (!first || !count || size < 1 || rank < 0 || rank >= size)
        return REVL_ERR_INVALID;
    size_t r = (size_t)rank, R = (size_t)size;
    /* the first n_micro % R ranks take one more */
    size_t base = n_micro / R, extra = n_micro % R;
    *first = r * base + (r < extra ? r : extra);
    *count = base + (r < extra);
    return REVL_OK;
}
