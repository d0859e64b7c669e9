/* testutil.h: what several test suites share: an allocator that fails a chosen allocation and
 * counts the blocks still live, for the allocation-failure tests. */
#ifndef REVL_TESTUTIL_H
#define REVL_TESTUTIL_H

#include "revl.h"

/* Fails call number fail_at (0-based; -1 never); live counts allocations not yet freed and
 * biggest is the largest size asked for. Initialize with designated fields, e.g.
 * failing f = {.fail_at = -1}. */
typedef struct failing {
    long calls, fail_at, live;
    size_t biggest;
} failing;

/* An allocator routing to malloc/free through f. */
revl_allocator failing_allocator(failing *f);

/* n examples of dim features in (-1, 1) from a fixed generator (seed), labels i mod classes;
 * NULL if the library refuses. */
revl_dataset *test_dataset(size_t n, size_t dim, size_t classes, uint64_t seed);

/* In a Check test: the message contains `want`. */
#define expect_msg(msg, want)                                                                  \
    do {                                                                                       \
        const char *m_ = (msg);                                                                \
        ck_assert_msg(m_ != NULL && strstr(m_, (want)) != NULL, "message '%s' lacks '%s'",     \
                      m_ ? m_ : "(null)", (want));                                             \
    } while (0)

#endif
