/* overlap.h: a second thread that runs the exact multiplies of a forward step (RV_FWD_MUL,
 * optim.h) while the calling thread computes the step's gradient in the model.
 *
 * The multiplies of the optimiser's states by their factors, and the buffer's digits they
 * push, read neither the gradient nor w, so they need not wait for the model. The worker
 * claims blocks one at a time from a shared counter; when the model returns, the calling
 * thread claims the rest, then waits until the worker has finished its last block. Each block
 * has its own stack and its own slice of the states, so who does a block, and in which order
 * the blocks are done, cannot change a bit.
 *
 * The worker sleeps on a condition variable between steps (it never spins), and the caller
 * waits only for a block the worker is inside of, never for a worker that has not been
 * scheduled yet: on a busy machine the step costs about what it costs without the worker. */
#ifndef REVL_OVERLAP_H
#define REVL_OVERLAP_H

#include "base/internal.h"

#include <stddef.h>

typedef struct revl_trainer revl_trainer;
typedef struct rv_overlap rv_overlap;

/* A stopped worker (no thread yet): NULL when out of memory. */
RV_HIDDEN rv_overlap *rv_overlap_create(const revl_allocator *a);
/* Stop and join the thread (if it was started), free. NULL is a no-op. */
RV_HIDDEN void rv_overlap_free(rv_overlap *ov, const revl_allocator *a);

/* Start the multiplies of `step` over t's blocks on the worker (flags: RV_FWD_MUL, and
 * RV_FWD_KEEP when the step's bits are kept). Returns 0 when no thread could be started: the
 * caller then does the multiplies itself (rv_overlap_finish still does them, on the caller). */
RV_HIDDEN int rv_overlap_post(rv_overlap *ov, revl_trainer *t, size_t step, int flags);
/* The caller's part: the blocks the worker has not claimed yet, then wait for the ones it is
 * still inside of. After it, every block of the step is multiplied and the worker touches no
 * block until the next post. */
RV_HIDDEN void rv_overlap_finish(rv_overlap *ov);
/* Blocks the worker thread has multiplied since it was created, and whether the posted job
 * has blocks not finished yet (tests, benches). */
RV_HIDDEN size_t rv_overlap_worker_blocks(rv_overlap *ov);
RV_HIDDEN int rv_overlap_busy(rv_overlap *ov);

#endif
