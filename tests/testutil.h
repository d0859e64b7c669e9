/* testutil.h: what several test suites share: an allocator that fails a chosen allocation and
 * counts the blocks still live, for the allocation-failure tests. */
#ifndef REVL_TESTUTIL_H
#define REVL_TESTUTIL_H

#include "revl.h"

/* Fails call number fail_at (0-based; -1 never); live counts allocations not yet freed. */
typedef struct failing {
    long calls, fail_at, live;
} failing;

/* An allocator routing to malloc/free through f. */
revl_allocator failing_allocator(failing *f);

#endif
