/* trainer.h: the trainer handle, shared by the forward pass (trainer.c) and the reverse pass
 * (reverse.c). */
#ifndef REVL_TRAINER_H
#define REVL_TRAINER_H

#include "exact/fixed.h"
#include "exact/infobuf.h"
#include "core/model.h"
#include "optim/update.h"

/* alpha and gamma of one (step, group), prepared once per train() call. */
typedef struct rv_step_group {
    double alpha;
    double gamma;          /* applied: n / 2^16 */
    double one_minus_gamma; /* exact: 1 - n / 2^16 */
    double omg_fixed;       /* (1 - gamma) * 2^frac_bits: gradient to velocity units */
    rv_gamma_code code;
} rv_step_group;

/* A block of RV_BLOCK parameters: its groups, its slot for partial sums, its first error. */
typedef struct rv_block {
    size_t lo, hi;           /* parameters [lo, hi) */
    size_t g_first, g_last;  /* groups it touches */
    size_t part;             /* index of its first partial sum */
    int err;                 /* first failure in this block during the current pass */
    size_t err_index;
    double err_value;
} rv_block;

enum rv_trainer_state { RV_FRESH = 0, RV_TRAINED = 1, RV_REVERSED = 2 };

enum rv_fail_kind {
    RV_OK = 0,
    RV_GRAD_NOT_FINITE,
    RV_GRAD_RANGE,
    RV_V_RANGE,
    RV_W_RANGE,
    RV_HV_NOT_FINITE,
    RV_NOMEM
};

/* Parameters per run of the short loops each pass is split into: each parameter's work is a
 * long dependency chain, and short loop bodies let the processor overlap many parameters. */
#define RV_CHUNK 256

struct revl_trainer {
    revl_allocator alloc;
    revl_model *model;
    const revl_schedule *sched;
    unsigned frac_bits;
    size_t truncate;
    int threads;
    rv_fixed fx;
    size_t n_params, n_meta, n_steps, n_groups;
    size_t first_kept; /* first step whose bits are kept: n_steps - truncate, or 0 */
    size_t *offsets;   /* n_groups + 1 */

    int64_t *w, *v;
    int64_t *w_start, *v_start; /* where the reverse pass must end: w0 and 0, or w_{T-K} and
                                   v_{T-K} when truncated */
    double *wd;        /* w as doubles, the point the model sees */
    double *grad, *meta;
    double *dw, *dv, *u, *hv, *hv_meta, *dmeta;
    rv_step_group *steps; /* n_steps * n_groups */
    double *partial;      /* per-(block, group) partial sums */
    double *bits_per_block;
    rv_block *blocks;
    size_t n_blocks, n_parts;
    rv_infobuf buf;
    rv_update_fn update; /* the forward update, plain or vectorised (same bits) */

    int state;
    size_t steps_done;
    double last_loss;
    size_t fixed_bytes, peak_bytes;
    char err[RV_ERRLEN];
};

/* Thread count for a pass over the blocks. */
RV_HIDDEN int rv_trainer_threads(const revl_trainer *t);
/* Report the first block failure of a pass as a status with a message; REVL_OK if none. */
RV_HIDDEN int rv_trainer_block_error(revl_trainer *t, size_t step, const char *pass);
RV_HIDDEN void rv_trainer_note_peak(revl_trainer *t);

#endif
