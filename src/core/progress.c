/* progress.c: the trainer's progress callback (revl_trainer_set_progress): where a long train
 * or hypergradient stands, and a clean way for the caller to stop it (a search abandons a run
 * whose loss diverged). The forward (trainer.c) and the reverse (reverse.c) call
 * rv_trainer_progress after every step; it costs a comparison unless the callback is due. */
#include "core/trainer.h"
#include "core/shard.h"

#include <time.h>

double rv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int revl_trainer_set_progress(revl_trainer *t, revl_progress_fn fn, size_t every, void *user)
{
    if (!t)
        return REVL_ERR_INVALID;
    if (fn && every == 0)
        return rv_fail(t->err, REVL_ERR_INVALID,
                       "revl_trainer_set_progress: every must be at least 1");
    /* a running call reads these between its steps: not changed under it */
    int rc = rv_trainer_enter(t, "revl_trainer_set_progress");
    if (rc)
        return rc;
    t->progress = fn;
    t->progress_every = fn ? every : 0;
    t->progress_user = fn ? user : NULL;
    t->busy = NULL;
    return REVL_OK;
}

/* The trainer whose progress callback this thread is running now (NULL: none): its reading
 * calls are answered there, where the trainer stands between two steps (rv_trainer_enter_read).
 * Thread-local, so another thread reading at the same moment is still refused. */
static _Thread_local const revl_trainer *in_progress_of;

int rv_trainer_enter_read(revl_trainer *t, const char *call)
{
    if (in_progress_of == t)
        return 1;
    return rv_trainer_enter(t, call) == REVL_OK ? 0 : -1;
}

int rv_trainer_progress(revl_trainer *t, size_t step, int phase, int last, double loss)
{
    if (!t->progress)
        return REVL_OK;
    /* the steps this phase has taken: the forward counts up from 0 (train_resume included), the
     * reverse down from n_steps */
    size_t taken = phase ? t->n_steps - step : step;
    if (!last && taken % t->progress_every != 0)
        return REVL_OK;
    const revl_trainer *outer = in_progress_of; /* a callback of another trainer's run */
    in_progress_of = t;
    int stop = t->progress(step, phase, rv_now() - t->call_start, loss, t->progress_user);
    in_progress_of = outer;
    int rc = stop ? rv_fail(t->err, REVL_ERR_CALLBACK,
                            "stopped by the progress callback at step %zu (%s)", step,
                            phase ? "reverse" : "forward")
                  : REVL_OK;
    /* every rank calls at the same steps (the same `every`), so one rank's stop stops all */
    return rv_shard_vote(t, rc);
}
