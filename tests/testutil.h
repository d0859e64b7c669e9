/* testutil.h: what several test suites share: an allocator that fails a chosen allocation and
 * counts the blocks still live, for the allocation-failure tests; one that puts an inaccessible
 * page after every block, for reads past an array's end. */
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

/* An allocator of the given hooks and user pointer (revl_allocator_init's struct_size). */
revl_allocator test_allocator(void *(*alloc)(size_t, void *), void (*release)(void *, void *),
                              void *user);

/* An allocator routing to malloc/free through f. */
revl_allocator failing_allocator(failing *f);

/* An allocator whose every block ends against a page that can be neither read nor written
 * (mmap, mprotect): a read or a write past a block's end, rounded up to 16 bytes (malloc's
 * alignment), faults at once in a plain build, where a heap over-read goes unseen without ASan.
 * live counts the blocks not yet freed; guarded_done releases the bookkeeping. Initialize with
 * guarded g = {0}. */
typedef struct guarded {
    long live;
    size_t n, cap;
    struct guarded_block *blocks;
} guarded;
revl_allocator guarded_allocator(guarded *g);
void guarded_done(guarded *g);

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
