/* optim.h: the interface between the trainer driver (core/) and one exactly reversible
 * optimiser (one file each in optim/, registered in optim.c). The driver owns blocks, threads,
 * the coder's stacks, the model calls, the block-ordered reduction of partial sums, truncation,
 * verification and error messages; an optimiser owns its state vectors, their adjoints, its
 * per-(step, group) constants, and the per-block arithmetic of one step forward and back.
 * Layers: optim/ uses exact/ and base/ only. */
#ifndef REVL_OPTIM_H
#define REVL_OPTIM_H

#include "base/internal.h"
#include "exact/fixed.h"
#include "exact/infobuf.h"
#include "optim/adam_dir.h"

#include <math.h>
#include <stdint.h>

/* Parameters per run of the short loops each pass is split into: each parameter's work is a
 * long dependency chain, and short loop bodies let the processor overlap many parameters. */
#define RV_CHUNK 256

enum rv_fail_kind {
    RV_OK = 0,
    RV_GRAD_NOT_FINITE, /* value: the gradient */
    RV_GRAD_RANGE,      /* value: the product named by what */
    RV_STATE_RANGE,     /* a state (what, sym) left its range 2^bound */
    RV_W_RANGE,
    RV_HV_NOT_FINITE,
    RV_SINGULAR,        /* Adam-like: s = 0 while m != 0 (value: m) */
    RV_NOMEM
};

/* A block of RV_BLOCK parameters: its groups, its slot for partial sums, its first error. */
typedef struct rv_block {
    size_t lo, hi;          /* parameters [lo, hi) */
    size_t g_first, g_last; /* groups it touches */
    size_t part;            /* index of its first (block, group) partial-sum record */
    int err;                /* first failure in this block during the current pass */
    size_t err_index;
    double err_value;
    const char *err_what, *err_sym; /* names for RV_GRAD_RANGE / RV_STATE_RANGE messages */
    int err_bound;                  /* log2 of the range that was left */
} rv_block;

/* Record the block's first failure (later ones are dropped). */
static inline void rv_block_fail(rv_block *blk, int kind, size_t i, double x)
{
    if (!blk->err) {
        blk->err = kind;
        blk->err_index = i;
        blk->err_value = x;
    }
}
static inline void rv_block_fail_named(rv_block *blk, int kind, size_t i, double x,
                                       const char *what, const char *sym, int bound)
{
    if (!blk->err) {
        rv_block_fail(blk, kind, i, x);
        blk->err_what = what;
        blk->err_sym = sym;
        blk->err_bound = bound;
    }
}

/* The parameters [*i0, *i1) of group g inside the block. */
static inline void rv_block_range(const rv_block *blk, const size_t *offsets, size_t g,
                                  size_t *i0, size_t *i1)
{
    *i0 = offsets[g] > blk->lo ? offsets[g] : blk->lo;
    *i1 = offsets[g + 1] < blk->hi ? offsets[g + 1] : blk->hi;
}

/* The block's coder stack: optimisers work on a local copy (stores to their arrays cannot alias
 * it) and put it back, recording a failed growth. */
static inline rv_stack *rv_block_stack(rv_infobuf *buf, const rv_block *blk)
{
    return &buf->stacks[blk->lo / RV_BLOCK];
}
static inline void rv_block_stack_put(rv_stack *home, rv_stack stack, rv_block *blk)
{
    *home = stack;
    if (stack.nomem)
        rv_block_fail(blk, RV_NOMEM, blk->lo, 0);
}

/* After a chunk [c0, ...) whose Hessian-vector products were not all finite: record the first. */
static inline void rv_block_fail_hv(rv_block *blk, const double *hv, size_t c0)
{
    size_t i = c0;
    while (isfinite(hv[i]))
        i++;
    rv_block_fail(blk, RV_HV_NOT_FINITE, i, hv[i]);
}

/* The phases of a forward step (rv_optim.forward_block); RV_FWD_KEEP: keep the multiplies'
 * bits in the buffer (not set for the steps before truncation); RV_FWD_SINK (with KEEP):
 * forward-only training, the multiplies run the coder as when kept but drop its words after
 * each chunk (rv_stack_sink). */
enum { RV_FWD_MUL = 1, RV_FWD_UPDATE = 2, RV_FWD_KEEP = 4, RV_FWD_SINK = 8 };

/* The most words one parameter's multiplies of one step push: two 24-bit multiplies (Adam's m
 * and s) push at most two words each. */
#define RV_SINK_WORDS 4

/* After a chunk's exact multiplies under RV_FWD_SINK: empty the stack. Dropping the words
 * changes no bit of the forward: a multiply by n/2^bits (n <= 2^bits, bits 16 or 24) first
 * pushes bits bits (one word, or two when the state is high) and then pops log2(n) <= bits, so
 * it reads back at most as many words as it pushed, all its own (infobuf.h, wide.h): no
 * multiply ever reads a word an earlier one left. The states go on as when kept, and the stack
 * never holds more than one chunk's words (RV_SINK_WORDS * RV_CHUNK). */
static inline void rv_stack_sink(rv_stack *s, int flags)
{
    if (flags & RV_FWD_SINK)
        s->len = 0;
}

/* What the driver lends an optimiser during a pass. */
typedef struct rv_pass {
    const revl_allocator *alloc;
    rv_fixed fx;          /* w's fixed point */
    unsigned frac_bits;
    size_t n_groups;
    const size_t *offsets; /* n_groups + 1 */
    int64_t *w;
    double *wd;           /* w as doubles: the point the model sees */
    double *grad;         /* the gradient at w_t (reverse: recomputed at the undone w_t) */
    double *dw;           /* reverse: d f / d w */
    const double *hv;     /* reverse: H times the direction */
    double *dir_a, *dir_b; /* reverse: the Hessian direction (RV_DIR_FIXED, RV_DIR_AFTER_GRAD:
                              dir_a) or its affine coefficients (RV_DIR_AFFINE: a + b g) */
    rv_infobuf *buf;
    double *partial;      /* reverse: [(blk->part + g - blk->g_first) * n_slots + slot] */
    size_t n_slots;
} rv_pass;

/* How the reverse pass gets the Hessian-vector product's direction, which is always
 * -d f / d g_t (the driver then does dw -= H dir, dmeta -= d/dmeta (g . dir)). */
typedef enum rv_dir_mode {
    RV_DIR_FIXED,     /* known before the model call (momentum) */
    RV_DIR_AFFINE,    /* a + b g_t (Adam): one fused model call where the model has it */
    RV_DIR_AFTER_GRAD /* any function of g_t: gradient, direction(), then the product (one
                         pass where the model can: rv_model_hvp_dir) */
} rv_dir_mode;

/* A state vector, for the driver's start copy and end-of-reverse verification. */
typedef struct rv_state_vec {
    void *data;
    size_t elem;        /* 8 (int64) or 16 (rv_wide) bytes */
    double inv_scale;   /* to print a value as a double */
    const char *name;
} rv_state_vec;

typedef struct rv_optim {
    revl_optimizer id;
    const char *name;
    size_t n_kinds;
    const revl_hyper *kinds; /* the schedule's arrays, in this order */
    /* The kinds it shipped with (0: all); the later ones (momentum's and RMSprop's
     * weight_decay) have the neutral value 0 (the optimiser without them, bit for bit) and
     * enter a trainer checkpoint's schedule hash only where not all 0, so that the files
     * written before them still load. */
    size_t n_kinds_shipped;
    const double *defaults;  /* a new schedule's value per kind */
    rv_dir_mode dir_mode;
    size_t n_slots;          /* reverse partial sums per (block, group) */
    size_t n_state;          /* state vectors besides w */

    int (*create)(void **self, const revl_allocator *a, size_t n_params, size_t n_steps,
                  size_t n_groups, unsigned frac_bits);
    void (*destroy)(void *self, const revl_allocator *a);
    size_t (*bytes)(const void *self); /* memory it holds */
    rv_state_vec (*state)(void *self, size_t k);
    /* Constants of (step, group) from its requested values (n_kinds, in kinds order); called
     * in step-major order from step 0 at every train. Returns the buffer bits per parameter
     * the step keeps. */
    double (*prepare)(void *self, size_t step, size_t group, const double *values);
    /* Optional (NULL: none): a condition across kinds of one (step, group) that the schedule's
     * per-kind ranges cannot see (AdamW: alpha * weight_decay in [0, 1 - 2^-18]); returns NULL
     * or a message in buf. Checked by the trainer for every (step, group) before prepare. */
    const char *(*check)(const double *values, char *buf, size_t len);
    /* One forward step on one block, in the phases of flags (RV_FWD_*): RV_FWD_MUL, the exact
     * multiplies of the states by their factors (and the buffer), which read neither the
     * gradient nor w, so the driver may run them while the model computes the gradient; and
     * RV_FWD_UPDATE, the rest. MUL then UPDATE gives the bits of both in one call. Only a call
     * with RV_FWD_MUL clears blk->err. */
    void (*forward_block)(void *self, rv_pass *p, size_t step, rv_block *blk, int flags);
    void (*reverse_begin)(void *self); /* adjoints of the states to 0 */
    /* What the reverse pass carries from one step back to the next besides the driver's dw and
     * dmeta (the states' adjoints, running sums), for a checkpoint mid-reverse: its k-th array,
     * with its length in *n; NULL past the last. */
    double *(*adjoint)(void *self, size_t k, size_t *n);
    /* undo w (w_{t+1} -> w_t, wd too); partial sums that need only the new state; the
     * direction (FIXED) or its coefficients (AFFINE) */
    void (*undo_position)(void *self, rv_pass *p, size_t step, rv_block *blk);
    void (*direction)(void *self, rv_pass *p, size_t step, rv_block *blk); /* AFTER_GRAD */
    /* with the recomputed gradient and hv: undo the states, their partial sums, dw -= hv,
     * the states' adjoints one step back */
    void (*undo_state)(void *self, rv_pass *p, size_t step, rv_block *blk);
    /* the step's per-group sums (sums[g * n_slots + slot], added in block order) into
     * d_kinds[k][step * n_groups + g] (entries NULL when not wanted); called for the kept
     * steps from the last one down */
    void (*step_hypergrad)(void *self, size_t step, size_t n_groups, const double *sums,
                           double *const *d_kinds);
} rv_optim;

/* The registered optimisers (optim.c); NULL for an unknown id. */
RV_HIDDEN const rv_optim *rv_optim_get(revl_optimizer id);

/* NULL when value is in the kind's range, else a message ("gamma = 2 outside [2^-16, 1]") in buf. */
RV_HIDDEN const char *rv_hyper_problem(revl_hyper kind, double value, char *buf, size_t len);
/* Position of kind in o->kinds, or -1. */
RV_HIDDEN int rv_optim_kind_index(const rv_optim *o, revl_hyper kind);

/* Coupled weight decay (torch.optim.SGD / RMSprop weight_decay): the gradient the update sees,
 * g + lambda w_t, in double from the w_t the model saw (wd), so the same bits forward and back.
 * lambda = 0 gives g itself (not g + 0 w, which turns -0 into +0): the optimiser's bits without
 * the kind. Its adjoint (docs/method.md): with u = -d f / d g' (the Hessian direction),
 * dw -= lambda u besides the driver's dw -= H u, and d lambda = -sum_group u_i w_t,i. */
static inline double rv_coupled_grad(double g, double lambda, double wd)
{
    return lambda != 0 ? g + lambda * wd : g;
}

/* w[i] moved by sign * round(y) (y in w's units: the same double product forward and back, so
 * the same integer), wd[i] with it; 0 with RV_W_RANGE recorded when w would leave int64. */
static inline int rv_pass_move_w(rv_pass *p, rv_block *blk, size_t i, double y, int sign)
{
    int64_t step;
    int bad = !rv_round_fixed(y, &step) ||
              (sign > 0 ? __builtin_add_overflow(p->w[i], step, &p->w[i])
                        : __builtin_sub_overflow(p->w[i], step, &p->w[i]));
    if (bad) {
        rv_block_fail(blk, RV_W_RANGE, i, 0);
        return 0;
    }
    p->wd[i] = rv_to_double(p->fx, p->w[i]);
    return 1;
}

/* Move w[i0 + k] by y[k] (rv_pass_move_w's sign) for k < n, in lanes (adam_dir.h's
 * rv_adam_moves, when lanes) up to each parameter they leave to rv_pass_move_w; returns the first
 * k whose move failed (recorded in blk, w written as rv_pass_move_w writes it), or n. */
static inline size_t rv_pass_move_w_run(rv_pass *p, rv_block *blk, int lanes, int sign, size_t i0,
                                        size_t n, const double *y)
{
    for (size_t k = 0; k < n; k++) {
        if (lanes)
            k += rv_adam_moves(sign, p->fx.inv_scale, n - k, y + k, p->w + i0 + k,
                               p->wd + i0 + k);
        if (k < n && !rv_pass_move_w(p, blk, i0 + k, y[k], sign))
            return k;
    }
    return n;
}

extern RV_HIDDEN const rv_optim rv_optim_momentum;
extern RV_HIDDEN const rv_optim rv_optim_adam;
extern RV_HIDDEN const rv_optim rv_optim_rmsprop;
extern RV_HIDDEN const rv_optim rv_optim_adamw;

#endif
