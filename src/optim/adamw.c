/* adamw.c: AdamW (torch.optim.AdamW), exactly reversible, with alpha, beta1, beta2, eps and the
 * decoupled weight decay lambda per step and group:
 *   w <- w (1 - alpha lambda)                 (before the Adam step, as torch)
 *   then Adam's step (adam.c, composed through its table: this file adds only the decay).
 * The decay factor rho = 1 - alpha lambda is applied as 1 - k 2^-64 (exact/ratio.h; within
 * 2^-65 of the request), by the exact multiply with the information buffer, on a 128-bit
 * W = w 2^60 + lo, with 60 bits below w's quantum kept here as a state vector ("w's low bits";
 * the model sees w, W rounded down): the multiply is ceil(rho W), within one unit of W's last
 * place, 2^-60 of w's quantum, per step. Buffer: the entropy of W's place among the values
 * the multiply maps together, 2 alpha lambda bits per parameter-step for alpha lambda <= 1/2
 * (1.39 log2(1/rho) for a small alpha lambda; 2e-5 bits at 1e-5), log2(1/rho) at rho = 2^-j.
 * rho = 1 (lambda = 0, or alpha lambda below 2^-65) skips the multiply: Adam bit for bit.
 * Adjoint (docs/method.md, "AdamW"): with S = sum_i dw_i w_t,i over the group,
 *   d alpha += -lambda S,  d lambda = -alpha S,  dw <- rho dw  (before dw -= H dir).
 * Phase contract: the decay is a coder operation that reads w, so it runs in RV_FWD_UPDATE,
 * after the whole block's RV_FWD_MUL (Adam's betas) whether the driver calls the phases apart or
 * together, and before Adam's moves; the reverse undoes it after Adam's undo_position, from the
 * block's last parameter down, before Adam's undo_state undoes the betas. */
#include "optim/optim.h"

#include "exact/ratio_run.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LOW_BITS 60 /* W = w 2^LOW_BITS + lo, lo in [0, 2^LOW_BITS); |W| < 2^123 */

enum { SLOT_DECAY = 6, N_SLOTS_ADAMW }; /* Adam's six slots, then S */
enum { K_ALPHA, K_BETA1, K_BETA2, K_EPS, K_LAMBDA, N_KINDS };

typedef struct adamw_sg {
    double alpha, lambda;
    double rho; /* applied: 1 - k 2^-64 */
    int decay;  /* 0: rho = 1, no multiply */
    rv_ratio code;
} adamw_sg;

typedef struct adamw {
    void *adam; /* adam.c's state: m, s, the betas' constants */
    size_t n_params, n_groups;
    int64_t *lo;     /* w's low bits */
    adamw_sg *sg;
    double *adam_sums; /* n_groups x Adam's slots: its share of each step's sums */
    double unit;       /* W's quantum: 2^-(frac_bits + LOW_BITS) */
} adamw;

#define ADAM rv_optim_adam

static int adamw_create(void **self, const revl_allocator *a, size_t n_params, size_t n_steps,
                        size_t n_groups, unsigned frac_bits)
{
    adamw *o = rv_calloc(a, 1, sizeof *o);
    if (!o)
        return REVL_ERR_NOMEM;
    *self = o;
    o->n_params = n_params;
    o->n_groups = n_groups;
    o->unit = ldexp(1.0, -(int)(frac_bits + LOW_BITS));
    int rc = ADAM.create(&o->adam, a, n_params, n_steps, n_groups, frac_bits);
    o->lo = rv_calloc(a, n_params, sizeof *o->lo);
    o->sg = rv_calloc(a, n_steps * n_groups, sizeof *o->sg);
    o->adam_sums = rv_calloc(a, n_groups * ADAM.n_slots, sizeof *o->adam_sums);
    return rc ? rc : o->lo && o->sg && o->adam_sums ? REVL_OK : REVL_ERR_NOMEM;
}

static void adamw_destroy(void *self, const revl_allocator *a)
{
    adamw *o = self;
    if (!o)
        return;
    ADAM.destroy(o->adam, a);
    rv_free(a, o->lo);
    rv_free(a, o->sg);
    rv_free(a, o->adam_sums);
    rv_free(a, o);
}

static size_t adamw_bytes(const void *self)
{
    const adamw *o = self;
    return sizeof *o + ADAM.bytes(o->adam) + o->n_params * sizeof *o->lo +
           o->n_groups * ADAM.n_slots * sizeof(double);
}

static rv_state_vec adamw_state(void *self, size_t k)
{
    adamw *o = self;
    if (k < ADAM.n_state)
        return ADAM.state(o->adam, k);
    return (rv_state_vec){o->lo, sizeof *o->lo, o->unit, "w's low bits"};
}

static const char *adamw_check(const double *values, char *buf, size_t len)
{
    double x = values[K_ALPHA] * values[K_LAMBDA];
    if (values[K_LAMBDA] == 0 || (x >= 0 && x <= 1 - 0x1p-18))
        return NULL;
    snprintf(buf, len,
             "alpha*weight_decay = %g outside [0, 1 - 2^-18] (alpha = %g, weight_decay = %g: "
             "the decay factor 1 - alpha*weight_decay must be in (0, 1])",
             x, values[K_ALPHA], values[K_LAMBDA]);
    return buf;
}

static double adamw_prepare(void *self, size_t step, size_t group, const double *values)
{
    adamw *o = self;
    adamw_sg *sg = &o->sg[step * o->n_groups + group];
    double bits = ADAM.prepare(o->adam, step, group, values); /* Adam's kinds come first */
    sg->alpha = values[K_ALPHA];
    sg->lambda = values[K_LAMBDA];
    /* checked by adamw_check; a value it refused is never trained with */
    sg->decay = sg->lambda != 0 && rv_ratio_make(&sg->code, sg->alpha * sg->lambda) &&
                sg->code.k != 0;
    sg->rho = sg->decay ? rv_ratio_rho(&sg->code) : 1.0;
    return sg->decay ? bits + rv_ratio_bits(&sg->code) : bits;
}

static inline rv_wide w_wide(const int64_t *w, const int64_t *lo, size_t i)
{
    return (rv_wide)w[i] * ((rv_wide)1 << LOW_BITS) + lo[i];
}

/* Locals, not loads through p and o: the stores to w, lo and wd could alias those (a double,
 * an int64), which made the compiler reload them for every parameter. */
typedef struct w_view {
    int64_t *w, *lo;
    double *wd;
    rv_fixed fx;
} w_view;

static inline w_view view_of(adamw *o, rv_pass *p)
{
    return (w_view){p->w, o->lo, p->wd, p->fx};
}

static inline void w_split(const w_view *v, size_t i, rv_wide W)
{
    int64_t w = (int64_t)(W >> LOW_BITS); /* floor: lo stays in [0, 2^LOW_BITS) */
    v->w[i] = w;
    v->lo[i] = (int64_t)(W - (rv_wide)w * ((rv_wide)1 << LOW_BITS));
    v->wd[i] = rv_to_double(v->fx, w);
}

/* W <- ceil(rho W) (on |W|) for parameters i0 .. i1 - 1 (keep: through the buffer; a constant
 * where it is called, so each loop has no branch on it). */
static inline void decay_range(const w_view *v, const revl_allocator *al, rv_stack *stack,
                               uint64_t *state, const rv_ratio *code, size_t i0, size_t i1,
                               int keep)
{
    const rv_ratio c = *code;
    const w_view lv = *v;
    for (size_t i = i0; i < i1; i++) {
        rv_wide W = w_wide(lv.w, lv.lo, i);
        W = keep ? rv_ratio_mul(al, stack, &state[i], &c, W) : rv_ratio_mul_nokeep(W, &c);
        w_split(&lv, i, W);
    }
}

/* W <- ceil(rho W) (on |W|) for the block's parameters, in order (keep: through the buffer).
 * rho <= 1: W cannot leave its range. */
static void decay_forward(adamw *o, rv_pass *p, size_t step, rv_block *blk, int keep)
{
    rv_stack *home = rv_block_stack(p->buf, blk);
    rv_stack stack = *home;
    w_view v = view_of(o, p);
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const adamw_sg *sg = &o->sg[step * o->n_groups + g];
        if (!sg->decay)
            continue;
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        if (sg->code.fast) /* the usual alpha lambda <= 1/2 */
            rv_ratio_run_mul_fast(p->alloc, &stack, p->buf->state + i0, &sg->code, v.w + i0,
                                  v.lo + i0, v.wd + i0, v.fx.inv_scale, LOW_BITS, i1 - i0, keep);
        else if (keep)
            decay_range(&v, p->alloc, &stack, p->buf->state, &sg->code, i0, i1, 1);
        else
            decay_range(&v, p->alloc, &stack, p->buf->state, &sg->code, i0, i1, 0);
    }
    rv_block_stack_put(home, stack, blk);
}

static void adamw_forward_block(void *self, rv_pass *p, size_t step, rv_block *blk, int flags)
{
    adamw *o = self;
    if (flags & RV_FWD_MUL)
        ADAM.forward_block(o->adam, p, step, blk, flags & ~RV_FWD_UPDATE);
    if (!(flags & RV_FWD_UPDATE))
        return;
    decay_forward(o, p, step, blk, flags & RV_FWD_KEEP);
    ADAM.forward_block(o->adam, p, step, blk, flags & ~RV_FWD_MUL);
}

static void adamw_reverse_begin(void *self)
{
    adamw *o = self;
    ADAM.reverse_begin(o->adam);
}

static double *adamw_adjoint(void *self, size_t k, size_t *n)
{
    adamw *o = self;
    return ADAM.adjoint(o->adam, k, n); /* the decay carries nothing back */
}

/* The decay's undo for parameters i1 - 1 down to i0, one at a time (rho < 1/2, or none): S's
 * terms, dw <- rho dw. */
static double undo_range(const w_view *v, const adamw *o, rv_pass *p, rv_stack *stack,
                         const adamw_sg *sg, size_t i0, size_t i1)
{
    double s = 0;
    for (size_t i = i1; i-- > i0;) {
        rv_wide W = w_wide(v->w, v->lo, i);
        if (sg->decay) {
            W = rv_ratio_div(p->alloc, stack, &p->buf->state[i], &sg->code, W);
            w_split(v, i, W);
        }
        s += p->dw[i] * (rv_wide_to_double(W) * o->unit);
        p->dw[i] *= sg->rho;
    }
    return s;
}

/* Adam's undo (w_{t+1} + alpha u: the decayed w_t), then the decay's, from the last parameter
 * down; S = sum dw_i w_t,i with dw = d f / d w_{t+1}; then dw <- rho dw. */
static void adamw_undo_position(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    adamw *o = self;
    ADAM.undo_position(o->adam, p, step, blk);
    rv_stack *home = rv_block_stack(p->buf, blk);
    rv_stack stack = *home;
    w_view v = view_of(o, p);
    for (size_t g = blk->g_last + 1; g-- > blk->g_first;) {
        const adamw_sg *sg = &o->sg[step * o->n_groups + g];
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        double s;
        if (sg->decay && sg->code.fast) /* the usual alpha lambda <= 1/2 */
            s = rv_ratio_run_div_fast(p->alloc, &stack, p->buf->state + i0, &sg->code,
                                      v.w + i0, v.lo + i0, v.wd + i0, v.fx.inv_scale, LOW_BITS,
                                      i1 - i0, p->dw + i0, o->unit, sg->rho);
        else
            s = undo_range(&v, o, p, &stack, sg, i0, i1);
        p->partial[(blk->part + (g - blk->g_first)) * p->n_slots + SLOT_DECAY] = s;
    }
    rv_block_stack_put(home, stack, blk);
}

static void adamw_undo_state(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    adamw *o = self;
    ADAM.undo_state(o->adam, p, step, blk);
}

static void adamw_step_hypergrad(void *self, size_t step, size_t n_groups, const double *sums,
                                 double *const *d_kinds)
{
    adamw *o = self;
    const size_t na = ADAM.n_slots;
    for (size_t g = 0; g < n_groups; g++)
        memcpy(&o->adam_sums[g * na], &sums[g * N_SLOTS_ADAMW], na * sizeof *sums);
    ADAM.step_hypergrad(o->adam, step, n_groups, o->adam_sums, d_kinds); /* kinds 0..3 */
    for (size_t g = 0; g < n_groups; g++) {
        const adamw_sg *sg = &o->sg[step * n_groups + g];
        double s = sums[g * N_SLOTS_ADAMW + SLOT_DECAY];
        size_t k = step * n_groups + g;
        if (d_kinds[K_ALPHA])
            d_kinds[K_ALPHA][k] += -sg->lambda * s;
        if (d_kinds[K_LAMBDA])
            d_kinds[K_LAMBDA][k] = -sg->alpha * s;
    }
}

static const revl_hyper adamw_kinds[N_KINDS] = {REVL_HYPER_ALPHA, REVL_HYPER_BETA1,
                                                REVL_HYPER_BETA2, REVL_HYPER_EPS,
                                                REVL_HYPER_WEIGHT_DECAY};
static const double adamw_defaults[N_KINDS] = {1e-3, 0.9, 0.999, 1e-8, 0.01};

const rv_optim rv_optim_adamw = {
    .id = REVL_OPTIM_ADAMW,
    .name = "adamw",
    .n_kinds = N_KINDS,
    .kinds = adamw_kinds,
    .defaults = adamw_defaults,
    .dir_mode = RV_DIR_AFFINE,
    .n_slots = N_SLOTS_ADAMW,
    .n_state = 3,
    .create = adamw_create,
    .destroy = adamw_destroy,
    .bytes = adamw_bytes,
    .state = adamw_state,
    .prepare = adamw_prepare,
    .check = adamw_check,
    .forward_block = adamw_forward_block,
    .reverse_begin = adamw_reverse_begin,
    .adjoint = adamw_adjoint,
    .undo_position = adamw_undo_position,
    .undo_state = adamw_undo_state,
    .step_hypergrad = adamw_step_hypergrad,
};
