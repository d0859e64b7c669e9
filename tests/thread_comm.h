/* thread_comm.h: a communicator (revl_comm) whose ranks are threads of one process, the contract
 * librevl_mpi implements over MPI; used by tests/check_dp.c and bench/bench_dp_threads.c.
 * The all-reduce has no lock and no buffer: each rank publishes its data pointer, then rank r
 * alone sums its own slice of the indices over every rank's data (in rank order; int64 sums are
 * exact, so no order could change the bits) and writes the sum into every rank's data there:
 * the ranks add disjoint slices in parallel, two barriers per call, any n. */
#ifndef REVL_THREAD_COMM_H
#define REVL_THREAD_COMM_H

#include <pthread.h>
#include <stdint.h>

#include "revl.h"

#define THREAD_COMM_MAX_RANKS 16

struct thread_shared;
typedef struct thread_slot { /* a rank's revl_comm.user: the library copies the communicator */
    struct thread_shared *s;
    int rank;
    int64_t *data; /* the argument of the call in progress */
} thread_slot;

typedef struct thread_shared {
    pthread_barrier_t barrier; /* of the `size` ranks, also for tests that pace the ranks */
    int size;
    thread_slot slot[THREAD_COMM_MAX_RANKS];
} thread_shared;

/* Index i is read and written between the barriers only by the rank whose slice holds it; a
 * rank publishes its next call's pointer after the second barrier, when nobody reads it. */
static inline int thread_allreduce(int64_t *data, size_t n, void *user)
{
    thread_slot *me = user;
    thread_shared *s = me->s;
    size_t R = (size_t)s->size, r = (size_t)me->rank;
    if (R == 1) /* the sum of one rank is its data: free, as revl_comm_init_local's */
        return 0;
    me->data = data;
    pthread_barrier_wait(&s->barrier);
    for (size_t i = n * r / R; i < n * (r + 1) / R; i++) {
        int64_t sum = 0;
        for (size_t q = 0; q < R; q++)
            sum += s->slot[q].data[i];
        for (size_t q = 0; q < R; q++)
            s->slot[q].data[i] = sum;
    }
    pthread_barrier_wait(&s->barrier);
    return 0;
}

/* Before the R (<= THREAD_COMM_MAX_RANKS) rank threads start / after they are joined. */
static inline void thread_shared_init(thread_shared *s, int R)
{
    pthread_barrier_init(&s->barrier, NULL, (unsigned)R);
    s->size = R;
    for (int r = 0; r < R; r++)
        s->slot[r] = (thread_slot){.s = s, .rank = r};
}

static inline void thread_shared_destroy(thread_shared *s)
{
    pthread_barrier_destroy(&s->barrier);
}

/* Rank r of s's ranks. */
static inline void thread_comm(revl_comm *c, int r, thread_shared *s)
{
    revl_comm_init_local(c);
    c->rank = r;
    c->size = s->size;
    c->allreduce_i64 = thread_allreduce;
    c->user = &s->slot[r];
}

#endif
