/* overlap.c: the worker thread of overlap.h.
 *
 * A job is one step's multiplies over the trainer's blocks. Blocks are claimed from one atomic
 * word holding the job's number (high 32 bits) and the next block (low 32 bits), so a worker
 * that wakes late, after the caller has done the whole job alone, claims nothing of it and
 * nothing of a later job it was not woken for. The caller waits only for blocks the worker has
 * claimed and not finished yet (a short spin that yields its core): never for a worker that
 * has not been scheduled, which on a busy machine could take a whole time slice. */
#include "core/overlap.h"
#include "core/trainer.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

struct rv_overlap {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t thread;
    int started, quit; /* quit: under mu */
    uint32_t posted;   /* the last job's number: written under mu, read by the worker under mu */
    /* the job: written by the caller before it posts (under mu), copied by the worker under mu */
    revl_trainer *t;
    size_t step;
    int flags;
    uint32_t n_blocks;
    _Atomic uint64_t claim;  /* job << 32 | next block */
    _Atomic uint32_t done;   /* blocks of the current job finished, by either thread */
    _Atomic size_t worker_blocks;
};

/* Claim and run blocks of job `job` until none is left; the worker counts its own. */
static void run_blocks(rv_overlap *ov, revl_trainer *t, uint32_t job, size_t step, int flags,
                       uint32_t n_blocks, int is_worker)
{
    uint64_t c = atomic_load_explicit(&ov->claim, memory_order_relaxed);
    for (;;) {
        if ((uint32_t)(c >> 32) != job || (uint32_t)c >= n_blocks)
            return;
        if (!atomic_compare_exchange_weak_explicit(&ov->claim, &c, c + 1, memory_order_acquire,
                                                   memory_order_relaxed))
            continue; /* c now holds the current word */
        uint32_t b = (uint32_t)c;
        t->opt->forward_block(t->opt_self, &t->pass, step, &t->blocks[b], flags);
        if (is_worker)
            atomic_fetch_add_explicit(&ov->worker_blocks, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&ov->done, 1, memory_order_release);
        c = atomic_load_explicit(&ov->claim, memory_order_relaxed);
    }
}

static void *worker(void *arg)
{
    rv_overlap *ov = arg;
    uint32_t seen = 0;
    pthread_mutex_lock(&ov->mu);
    for (;;) {
        while (ov->posted == seen && !ov->quit)
            pthread_cond_wait(&ov->wake, &ov->mu);
        if (ov->quit)
            break;
        seen = ov->posted;
        revl_trainer *t = ov->t;
        size_t step = ov->step;
        int flags = ov->flags;
        uint32_t n = ov->n_blocks;
        pthread_mutex_unlock(&ov->mu);
        run_blocks(ov, t, seen, step, flags, n, 1);
        pthread_mutex_lock(&ov->mu);
    }
    pthread_mutex_unlock(&ov->mu);
    return NULL;
}

rv_overlap *rv_overlap_create(const revl_allocator *a)
{
    rv_overlap *ov = rv_calloc(a, 1, sizeof *ov);
    if (!ov)
        return NULL;
    if (pthread_mutex_init(&ov->mu, NULL) != 0) {
        rv_free(a, ov);
        return NULL;
    }
    if (pthread_cond_init(&ov->wake, NULL) != 0) {
        pthread_mutex_destroy(&ov->mu);
        rv_free(a, ov);
        return NULL;
    }
    atomic_init(&ov->claim, 0);
    atomic_init(&ov->done, 0);
    atomic_init(&ov->worker_blocks, 0);
    return ov;
}

void rv_overlap_free(rv_overlap *ov, const revl_allocator *a)
{
    if (!ov)
        return;
    if (ov->started) {
        pthread_mutex_lock(&ov->mu);
        ov->quit = 1;
        pthread_cond_signal(&ov->wake);
        pthread_mutex_unlock(&ov->mu);
        pthread_join(ov->thread, NULL);
    }
    pthread_cond_destroy(&ov->wake);
    pthread_mutex_destroy(&ov->mu);
    rv_free(a, ov);
}

int rv_overlap_post(rv_overlap *ov, revl_trainer *t, size_t step, int flags)
{
    /* started lazily, so a trainer that never overlaps never has the thread; one that cannot
     * be started (no resources) leaves the caller to do every block, with the same bits */
    if (!ov->started)
        ov->started = pthread_create(&ov->thread, NULL, worker, ov) == 0;
    pthread_mutex_lock(&ov->mu);
    uint32_t job = ov->posted + 1;
    ov->posted = job;
    ov->t = t;
    ov->step = step;
    ov->flags = flags;
    ov->n_blocks = (uint32_t)t->n_blocks;
    atomic_store_explicit(&ov->done, 0, memory_order_relaxed);
    atomic_store_explicit(&ov->claim, (uint64_t)job << 32, memory_order_release);
    if (ov->started)
        pthread_cond_signal(&ov->wake);
    pthread_mutex_unlock(&ov->mu);
    return ov->started;
}

void rv_overlap_finish(rv_overlap *ov)
{
    /* only this thread posts, so it may read the job without the lock */
    run_blocks(ov, ov->t, ov->posted, ov->step, ov->flags, ov->n_blocks, 0);
    while (atomic_load_explicit(&ov->done, memory_order_acquire) < ov->n_blocks)
        sched_yield(); /* the worker is inside its last block */
}

size_t rv_overlap_worker_blocks(rv_overlap *ov)
{
    return ov ? atomic_load_explicit(&ov->worker_blocks, memory_order_relaxed) : 0;
}

int rv_overlap_busy(rv_overlap *ov)
{
    return atomic_load_explicit(&ov->done, memory_order_acquire) < ov->n_blocks;
}
