/* trainer.h: the trainer handle, shared by the forward pass (trainer.c) and the reverse pass
 * (reverse.c) of the driver; the optimiser's own state lives behind t->opt (optim/optim.h). */
#ifndef REVL_TRAINER_H
#define REVL_TRAINER_H

#include "core/model.h"
#include "exact/fixed.h"
#include "exact/infobuf.h"
#include "optim/optim.h"

/* RV_PARTIAL: loaded from a checkpoint taken mid-training (steps_done < n_steps), so
 * revl_trainer_train_resume can take the remaining steps. RV_FORWARD_ONLY: trained by
 * revl_trainer_train_forward, which kept nothing to reverse (never in a checkpoint). */
enum rv_trainer_state {
    RV_FRESH = 0,
    RV_TRAINED = 1,
    RV_REVERSED = 2,
    RV_PARTIAL = 3,
    RV_FORWARD_ONLY = 4,
    RV_REVERSING = 5 /* loaded from a checkpoint taken mid-reverse: only hypergrad_resume (or a
                        new train) continues it */
};

struct revl_trainer {
    revl_allocator alloc;
    revl_model *model;
    const revl_schedule *sched;
    const rv_optim *opt;
    void *opt_self;      /* the optimiser's state, adjoints and per-(step, group) constants */
    unsigned frac_bits;
    size_t truncate;
    int threads;
    rv_fixed fx;
    size_t n_params, n_meta, n_steps, n_groups;
    size_t first_kept; /* first step whose bits are kept: n_steps - truncate, or 0 */
    size_t *offsets;   /* n_groups + 1, of this rank's parameters [lo, lo + n_local) */

    /* Sharding (revl_trainer_create_sharded, core/shard.h): this rank owns the blocks
     * [b_lo, b_lo + n_blocks) of n_blocks_all, i.e. the parameters [lo, lo + n_local); the
     * optimiser, its start copy, w_start and the buffer hold only those, indexed from lo (the
     * pass's arrays point at lo). w, wd, grad, dw, the directions and hv stay full-length,
     * all-gathered where the model or the caller needs them. Unsharded: one rank owns all,
     * and the *_all pointers alias the local ones. */
    revl_comm comm;
    int sharded;
    size_t lo, n_local, b_lo, n_blocks_all, n_parts_all, part_lo;
    size_t *offsets_all;  /* the schedule's offsets */
    rv_block *blocks_all; /* every rank's blocks, global indices, for the block-ordered sum */
    double *partial_all;  /* every rank's partial sums, in global block order */

    int64_t *w, *w_start; /* w_start: where the reverse pass must end (w0, or w_{T-K}) */
    void **state_start;   /* the optimiser's state vectors there (opt->n_state) */
    double *wd;           /* w as doubles, the point the model sees */
    double *grad, *meta;
    double *dw, *dir_a, *dir_b, *hv, *hv_meta, *dmeta;
    double *hyper_values; /* one (step, group)'s requested values, opt->n_kinds */
    double *partial;      /* per-(block, group) partial sums, opt->n_slots each */
    double *d_kinds;      /* the reverse pass's hypergradients, opt->n_kinds * n_steps * n_groups:
                             copied to the caller's arrays only when the pass succeeded */
    uint64_t *agree;      /* n_steps: what every rank must agree on at each step (the model's
                             `agree` during its calls; rv_trainer_prepare) */
    int64_t *vote;        /* 2 comm.size words for the sharded trainer's votes (status, agree),
                             made at create so that a vote never fails to join the all-reduce */
    uint64_t *fingerprint; /* n_steps: a hash of each step's gradient bits in the forward pass,
                              compared when the reverse pass recomputes it */
    double *sums;         /* their per-group totals for one step */
    /* gradient clipping (clip.c), made at the first train with a finite clip: the raw
     * gradient, the Hessian direction through the clip's adjoint (n_params each), c_k
     * (n_groups) and ||g|| of the step being taken or undone */
    double *clip_raw, *clip_dir, *clip_c, clip_norm;
    double *clip_tau; /* n_steps * n_groups: the clip values trained with */
    int clip_on;      /* the run trained last has a finite clip */
    double *bits_per_block;
    rv_block *blocks;
    size_t n_blocks, n_parts;
    rv_infobuf buf;
    rv_pass pass;
    struct rv_overlap *overlap; /* the forward's second thread (overlap.h), made on first use */

    int state;
    int forward_only;  /* the forward running keeps nothing for a reverse pass: no start copy,
                          no fingerprints, no checkpoints, the coder's words dropped (RV_FWD_SINK) */
    revl_progress_fn progress; /* revl_trainer_set_progress; NULL: none */
    size_t progress_every;
    void *progress_user;
    double call_start;         /* when the running call began (rv_now), for the progress */
    /* the call running now (train, hypergrad, weights ...), NULL between calls: a callback
     * that calls the trainer back, or a second thread, is refused, not obeyed. Atomic so that
     * the second thread's test-and-set is one (rv_trainer_enter), not a data race. */
    _Atomic(const char *) busy;
    double dfdw_max;   /* the largest |dfdw| of the reverse pass running, for messages */
    uint64_t rev_kinds;  /* the reverse pass running: bit k when the optimiser's kind k is
                            accumulated in d_kinds (saved in its checkpoints) */
    uint64_t rev_inputs; /* ... and the hash of its dfdw and dfdmeta */
    size_t steps_done;
    uint64_t sched_hash;  /* rv_trainer_schedule_hash of the values the constants were read from
                             (the trajectory's), for its checkpoints */
    double last_loss;
    size_t fixed_bytes, peak_bytes;
    char *ckpt_path;      /* revl_trainer_set_checkpoint: saved every ckpt_every steps */
    size_t ckpt_every;
    char err[RV_ERRLEN];
};

/* A 64-bit hash of the bits of n doubles (four interleaved FNV-style lanes, so it runs at
 * memory speed rather than at one multiply's latency per element). */
RV_HIDDEN uint64_t rv_fingerprint(const double *x, size_t n);

/* REVL_ERR_STATE naming both calls when `call` is made while another call of t runs (from one
 * of its callbacks, or from another thread); otherwise marks t busy with `call` until the call
 * sets t->busy back to NULL. Every revl_trainer_* call on a live handle but last_error and free
 * takes it. */
RV_HIDDEN int rv_trainer_enter(revl_trainer *t, const char *call);
/* The guard of the reading calls (weights, get_stats): 1 when this thread is in t's progress
 * callback (t stands between two steps, and the running call waits for the callback: a read
 * there is safe and takes nothing), 0 when it took the guard (set t->busy back to NULL after),
 * -1 when refused as rv_trainer_enter refuses (message in t->err). */
RV_HIDDEN int rv_trainer_enter_read(revl_trainer *t, const char *call);

/* The progress callback, if set, after the trainer came to stand at `step` (phase 0: forward,
 * `step` steps done; 1: reverse, stepping back to `step`) when the steps this phase has taken
 * are a multiple of its `every`, or `last`. REVL_ERR_CALLBACK with a message when it asked to
 * stop (voted on by every rank of a sharded trainer, whose ranks all set the same `every`). */
RV_HIDDEN int rv_trainer_progress(revl_trainer *t, size_t step, int phase, int last, double loss);
/* Seconds on a monotonic clock. */
RV_HIDDEN double rv_now(void);

/* Thread count for a pass over the blocks. */
RV_HIDDEN int rv_trainer_threads(const revl_trainer *t);
/* Report the first block failure of a pass as a status with a message; REVL_OK if none. */
RV_HIDDEN int rv_trainer_block_error(revl_trainer *t, size_t step, const char *pass);
RV_HIDDEN void rv_trainer_note_peak(revl_trainer *t);

/* The optimiser's per-(step, group) constants from the schedule (every step, in order), and
 * t->agree from the same values. */
RV_HIDDEN void rv_trainer_prepare(revl_trainer *t);
/* The forward loop from step `from` (w, states and buffer stand after from steps). */
RV_HIDDEN int rv_trainer_forward(revl_trainer *t, size_t from);
/* A hash of the schedule's values of the optimiser's kinds as they are now (checkpoint.c). */
RV_HIDDEN uint64_t rv_trainer_schedule_hash(const revl_trainer *t);
/* Write a checkpoint of the trajectory so far (checkpoint.c). */
RV_HIDDEN int rv_trainer_save_now(revl_trainer *t, const char *path);
/* The same in the reverse pass, w standing at steps_done: adds the adjoints, the
 * hypergradients so far and what identifies the pass (rev_kinds, rev_inputs, dfdw_max). */
RV_HIDDEN int rv_trainer_save_reverse(revl_trainer *t, const char *path);

/* Gradient clipping (clip.c). rv_clip_active: a finite clip at step of the run trained.
 * rv_clip_check: at train (and checkpoint load), refuses clipping on a sharded trainer, makes the
 * arrays and copies the schedule's clip values. rv_clip_grad: t->grad clipped in
 * place (clip_c, clip_norm set). rv_clip_adjoint: clip_dir = the adjoint through the clip of
 * the direction v (= -d f / d clipped g) at the raw gradient g; d_tau (n_groups, may be NULL)
 * += d f / d tau. */
RV_HIDDEN int rv_clip_active(const revl_trainer *t, size_t step);
RV_HIDDEN int rv_clip_check(revl_trainer *t);
/* A finite clip anywhere in the schedule as it is now. */
RV_HIDDEN int rv_clip_in_schedule(const revl_trainer *t);
RV_HIDDEN void rv_clip_grad(revl_trainer *t, size_t step);
RV_HIDDEN void rv_clip_adjoint(revl_trainer *t, const double *v, const double *g, double *d_tau);

/* The schedule's own arrays (read-only, NULL for kinds it lacks) and optimiser. */
RV_HIDDEN const double *rv_schedule_values(const revl_schedule *s, revl_hyper kind);
RV_HIDDEN const rv_optim *rv_schedule_optim(const revl_schedule *s);

#endif
