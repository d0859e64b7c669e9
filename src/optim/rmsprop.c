/* rmsprop.c: RMSprop with momentum (torch.optim.RMSprop, momentum > 0), exactly reversible:
 *   g <- g + lambda w                   (coupled weight decay, torch's weight_decay; optim.h)
 *   s <- beta2 s + (1-beta2) g^2        (beta2 = n / 2^24: torch's alpha)
 *   b <- gamma b + g / (sqrt(s) + eps)  (gamma = n / 2^16: torch's momentum)
 *   w <- w - alpha b
 * s and b are 128-bit fixed point with RMS_FRAC fractional bits, w is int64. The position update
 * uses only the new b, so w_t is recovered first; the Hessian direction -d f/d g_t is not affine
 * in g_t (b's term divides by sqrt(s_{t+1}), which holds g_t^2), so the driver asks for the
 * gradient first (RV_DIR_AFTER_GRAD). */
#include "optim/optim.h"
#include "optim/rms_dir.h"

#include "exact/rate.h"
#include "exact/round_vec.h"
#include "exact/wide_vec.h"

#include <math.h>
#include <string.h>

#define RMS_FRAC RV_RMS_FRAC
#define RMS_BOUND (126 - RMS_FRAC)

typedef struct rms_sg {
    double alpha, w_scale, eps; /* w_scale = 2^frac_bits: a move is (alpha b) w_scale, so that
                                   b = 0 moves nothing for every finite alpha (alpha w_scale
                                   overflows above about 4e291; the same bits otherwise) */
    double gamma, beta2, omb2, omb2_fixed;
    double lambda; /* weight decay, 0: none */
    rv_gamma_code code_gamma, code_beta2;
} rms_sg;

typedef struct rmsprop {
    size_t n_params, n_groups, n_sg;
    rv_wide *s, *b;
    double *ds, *db;
    rms_sg *sg;
    int w_bound;
    rv_moments_run moments; /* s's and b's exact multiply: lanes where the processor has them */
    rv_round_run rounded;   /* and their rounded one, in steps whose bits are not kept */
} rmsprop;

enum { SLOT_ALPHA, SLOT_EPS, SLOT_GAMMA, SLOT_B2, SLOT_DECAY, N_SLOTS };
enum { K_ALPHA, K_GAMMA, K_BETA2, K_EPS, K_LAMBDA, N_KINDS };

static const double wide_unit = 0x1p-100;

static int rms_create(void **self, const revl_allocator *a, size_t n_params, size_t n_steps,
                      size_t n_groups, unsigned frac_bits)
{
    rmsprop *o = rv_calloc(a, 1, sizeof *o);
    if (!o)
        return REVL_ERR_NOMEM;
    *self = o;
    o->n_params = n_params;
    o->n_groups = n_groups;
    o->n_sg = n_steps * n_groups;
    o->w_bound = 63 - (int)frac_bits;
    o->moments = rv_moments16_run_select();
    o->rounded = rv_round_run_select();
    o->s = rv_calloc(a, n_params, sizeof *o->s);
    o->b = rv_calloc(a, n_params, sizeof *o->b);
    o->ds = rv_calloc(a, n_params, sizeof *o->ds);
    o->db = rv_calloc(a, n_params, sizeof *o->db);
    o->sg = rv_calloc(a, o->n_sg, sizeof *o->sg);
    return o->s && o->b && o->ds && o->db && o->sg ? REVL_OK : REVL_ERR_NOMEM;
}

static void rms_destroy(void *self, const revl_allocator *a)
{
    rmsprop *o = self;
    if (!o)
        return;
    void *arrays[] = {o->s, o->b, o->ds, o->db, o->sg};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        rv_free(a, arrays[k]);
    rv_free(a, o);
}

static size_t rms_bytes(const void *self)
{
    const rmsprop *o = self;
    return sizeof *o + o->n_params * (2 * sizeof(rv_wide) + 2 * sizeof(double)) +
           o->n_sg * sizeof *o->sg;
}

static rv_state_vec rms_state(void *self, size_t k)
{
    rmsprop *o = self;
    return k == 0 ? (rv_state_vec){o->s, sizeof(rv_wide), wide_unit, "s"}
                  : (rv_state_vec){o->b, sizeof(rv_wide), wide_unit, "b"};
}

static double rms_prepare(void *self, size_t step, size_t group, const double *values)
{
    rmsprop *o = self;
    rms_sg *sg = &o->sg[step * o->n_groups + group];
    uint32_t ng = rv_rate_numerator(RV_GRID_GAMMA, values[K_GAMMA]);
    uint32_t n2 = rv_rate_numerator(RV_GRID_BETA, values[K_BETA2]);
    sg->alpha = values[K_ALPHA];
    sg->w_scale = ldexp(1.0, 63 - o->w_bound);
    sg->eps = values[K_EPS];
    sg->lambda = values[K_LAMBDA];
    sg->gamma = ldexp((double)ng, -16);
    sg->beta2 = ldexp((double)n2, -24);
    sg->omb2 = ldexp((double)((1u << 24) - n2), -24);
    sg->omb2_fixed = ldexp(sg->omb2, RMS_FRAC);
    rv_gamma_code_make(&sg->code_gamma, ng);
    rv_gamma_code_make(&sg->code_beta2, n2);
    return (16.0 - log2((double)ng)) + (24.0 - log2((double)n2));
}

/* rms_dir.h's view of a step and group */
static inline rv_rms_dir rms_dir(const rms_sg *sg)
{
    return (rv_rms_dir){sg->omb2_fixed, sg->eps, sg->lambda, sg->alpha, sg->w_scale};
}

/* Record why parameter i's forward update failed (rms_dir.h's rv_rms_add1). */
static void rms_forward_fail(rv_block *blk, const rms_sg *sg, int why, size_t i, double g,
                             double wd)
{
    double gi = rv_coupled_grad(g, sg->lambda, wd);
    if (why == RV_RMS_GRAD)
        rv_block_fail(blk, RV_GRAD_NOT_FINITE, i, g);
    else if (why == RV_RMS_DECAY)
        rv_block_fail_named(blk, RV_GRAD_RANGE, i, gi, "gradient+weight_decay*w", "x", 1024);
    else if (why == RV_RMS_TERM)
        rv_block_fail_named(blk, RV_GRAD_RANGE, i, sg->omb2 * (gi * gi), "(1-beta2)*gradient^2",
                            "x", RMS_BOUND);
    else if (why == RV_RMS_S)
        rv_block_fail_named(blk, RV_STATE_RANGE, i, 0, "second moment", "s", RMS_BOUND);
    else if (why == RV_RMS_SINGULAR)
        rv_block_fail_named(blk, RV_SINGULAR, i, gi, "the gradient", "g", 0);
    else
        rv_block_fail_named(blk, RV_STATE_RANGE, i, 0, "momentum buffer", "b", RMS_BOUND);
}

static void rms_forward_block(void *self, rv_pass *p, size_t step, rv_block *blk, int flags)
{
    rmsprop *o = self;
    rv_stack *stack_home = rv_block_stack(p->buf, blk);
    rv_stack stack = *stack_home;
    const revl_allocator *a = p->alloc;
    rv_wide *restrict s = o->s, *restrict b = o->b;
    uint64_t *restrict state = p->buf->state;
    double y[RV_CHUNK];
    const int lanes = rv_rms_lanes();
    if (flags & RV_FWD_MUL)
        blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const rms_sg sg = o->sg[step * o->n_groups + g];
        const rv_rms_dir c = rms_dir(&sg);
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        for (size_t c0 = i0; c0 < i1; c0 += RV_CHUNK) {
            size_t c1 = c0 + RV_CHUNK < i1 ? c0 + RV_CHUNK : i1;
            if (flags & RV_FWD_MUL) {
                if (flags & RV_FWD_KEEP) {
                    /* s by beta2 then b by gamma, parameter by parameter */
                    o->moments.mul(a, &stack, state + c0, &sg.code_beta2, &sg.code_gamma, s + c0,
                                   b + c0, c1 - c0);
                    rv_stack_sink(&stack, flags);
                } else { /* steps whose bits are not kept: rounded (round_vec.h) */
                    o->rounded.mul128(s + c0, c1 - c0, sg.code_beta2.n, 24);
                    o->rounded.mul128(b + c0, c1 - c0, sg.code_gamma.n, 16);
                }
            }
            if (!(flags & RV_FWD_UPDATE))
                continue;
            /* s and b of [c0, j) (in lanes where the processor has them: rms_dir.h), their
             * weight steps' moves, then j's failure, recorded only now so that a weight failure
             * before j is the one reported, as when each parameter was done whole in turn. A
             * failure leaves s and b part-updated; nothing reads them, since a failed training
             * leaves the trainer to be trained again (trainer.c) */
            size_t j =
                c0 + rv_rms_run(&c, 0, c1 - c0, p->grad + c0, p->wd + c0, s + c0, b + c0, y);
            if (c0 + rv_pass_move_w_run(p, blk, lanes, -1, c0, j - c0, y) < j)
                goto done;
            if (j < c1) {
                int why = rv_rms_add1(&c, p->grad[j], p->wd[j], &s[j], &b[j], NULL);
                rms_forward_fail(blk, &sg, why, j, p->grad[j], p->wd[j]);
                goto done;
            }
        }
    }
done:
    rv_block_stack_put(stack_home, stack, blk);
}

static void rms_reverse_begin(void *self)
{
    rmsprop *o = self;
    memset(o->ds, 0, o->n_params * sizeof *o->ds);
    memset(o->db, 0, o->n_params * sizeof *o->db);
}

static double *rms_adjoint(void *self, size_t k, size_t *n)
{
    rmsprop *o = self;
    *n = o->n_params;
    return k == 0 ? o->ds : k == 1 ? o->db : NULL;
}

/* Undo w <- w - alpha b (the moves in lanes where the processor has them: Adam's mover); d alpha
 * (summed in parameter order: its bits) and dw into db, through restrict-qualified locals (through
 * the optimiser's and the pass's pointers every store made gcc reload them). */
static void rms_undo_position(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    rmsprop *o = self;
    const int lanes = rv_adam_sums_lanes();
    double y[RV_CHUNK], bd[RV_CHUNK];
    blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const rms_sg *sg = &o->sg[step * o->n_groups + g];
        const double alpha = sg->alpha, w_scale = sg->w_scale;
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        double s_alpha = 0;
        for (size_t c0 = i0; c0 < i1; c0 += RV_CHUNK) {
            size_t n = i1 - c0 < RV_CHUNK ? i1 - c0 : RV_CHUNK;
            for (size_t k = 0; k < n; k++) {
                bd[k] = rv_wide_to_double(o->b[c0 + k]) * wide_unit;
                y[k] = alpha * bd[k] * w_scale;
            }
            if (rv_pass_move_w_run(p, blk, lanes, +1, c0, n, y) < n)
                return; /* recorded in blk: the pass fails, nothing reads its adjoints */
            const double *restrict dw = p->dw + c0;
            double *restrict db = o->db + c0;
            for (size_t k = 0; k < n; k++) {
                s_alpha += dw[k] * bd[k];
                db[k] -= alpha * dw[k];
            }
        }
        p->partial[(blk->part + (g - blk->g_first)) * N_SLOTS + SLOT_ALPHA] = s_alpha;
    }
}

/* With g_t known: b's dependence on s_{t+1} and eps, and the direction
 * u = -d f/d g = -(db / D + 2 (1-beta2) g ds), g the decayed gradient; the decay's share of
 * g = g_model + lambda w_t: dw -= lambda u (the driver does dw -= H u), d lambda = -sum u w_t. */
static void rms_direction(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    rmsprop *o = self;
    double t_eps[RV_CHUNK], t_decay[RV_CHUNK];
    blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const rms_sg *sg = &o->sg[step * o->n_groups + g];
        const rv_rms_dir c = rms_dir(sg);
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        double s_eps = 0, s_decay = 0;
        /* the terms in lanes where the processor has them (rms_dir.h), their sums in order */
        for (size_t c0 = i0; c0 < i1; c0 += RV_CHUNK) {
            size_t n = c0 + RV_CHUNK < i1 ? RV_CHUNK : i1 - c0;
            const rv_rms_back r = {sg->omb2, p->grad + c0, p->wd + c0, o->s + c0,
                                   o->db + c0, o->ds + c0, p->dir_a + c0, p->dw + c0};
            rv_rms_back_run(&c, &r, n, t_eps, t_decay);
            for (size_t k = 0; k < n; k++) {
                s_eps += t_eps[k];
                s_decay += t_decay[k];
            }
        }
        double *part = &p->partial[(blk->part + (g - blk->g_first)) * N_SLOTS];
        part[SLOT_EPS] = s_eps;
        part[SLOT_DECAY] = s_decay;
    }
}

/* Undo b then s (the reverse of the forward's coder order), their rates' partial sums,
 * dw -= hv, and the adjoints one step back. */
static void rms_undo_state(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    rmsprop *o = self;
    rv_stack *stack_home = rv_block_stack(p->buf, blk);
    rv_stack stack = *stack_home;
    const revl_allocator *a = p->alloc;
    rv_wide *restrict s = o->s, *restrict b = o->b;
    const double *restrict grad = p->grad, *restrict hv = p->hv, *restrict wd = p->wd;
    double *restrict ds = o->ds, *restrict db = o->db, *restrict dw = p->dw;
    uint64_t *restrict state = p->buf->state;
    blk->err = RV_OK;
    for (size_t g = blk->g_last + 1; g-- > blk->g_first;) {
        const rms_sg sg = o->sg[step * o->n_groups + g];
        const rv_rms_dir c = rms_dir(&sg);
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        double s_gamma = 0, s_b2 = 0;
        for (size_t c1 = i1; c1 > i0;) {
            size_t c0 = c1 - i0 > RV_CHUNK ? c1 - RV_CHUNK : i0;
            /* in lanes where the processor has them (rms_dir.h), up to a failure */
            size_t j = c0 + rv_rms_run(&c, 1, c1 - c0, grad + c0, wd + c0, s + c0, b + c0, NULL);
            if (j < c1) {
                rv_block_fail_named(blk, RV_STATE_RANGE, j,
                                    rv_coupled_grad(grad[j], sg.lambda, wd[j]), "a state", "s|b",
                                    RMS_BOUND);
                goto done;
            }
            /* for i = c1-1 down to c0: b, then s */
            o->moments.div(a, &stack, state + c0, &sg.code_beta2, &sg.code_gamma, s + c0, b + c0,
                           c1 - c0);
            int hv_finite = 1;
            for (size_t i = c0; i < c1; i++) {
                double gi = rv_coupled_grad(grad[i], sg.lambda, wd[i]);
                s_gamma += db[i] * (rv_wide_to_double(b[i]) * wide_unit);
                s_b2 += ds[i] * (rv_wide_to_double(s[i]) * wide_unit - gi * gi);
                hv_finite &= isfinite(hv[i]) != 0;
                dw[i] -= hv[i];
                db[i] *= sg.gamma;
                ds[i] *= sg.beta2;
            }
            if (!hv_finite) {
                rv_block_fail_hv(blk, hv, c0);
                goto done;
            }
            c1 = c0;
        }
        double *part = &p->partial[(blk->part + (g - blk->g_first)) * N_SLOTS];
        part[SLOT_GAMMA] = s_gamma;
        part[SLOT_B2] = s_b2;
    }
done:
    rv_block_stack_put(stack_home, stack, blk);
}

static void rms_step_hypergrad(void *self, size_t step, size_t n_groups, const double *sums,
                               double *const *d_kinds)
{
    rmsprop *o = self;
    for (size_t g = 0; g < n_groups; g++) {
        const double *sum = &sums[g * N_SLOTS];
        size_t k = step * n_groups + g;
        if (d_kinds[K_ALPHA])
            d_kinds[K_ALPHA][k] = -sum[SLOT_ALPHA];
        if (d_kinds[K_GAMMA])
            d_kinds[K_GAMMA][k] = sum[SLOT_GAMMA];
        if (d_kinds[K_BETA2])
            d_kinds[K_BETA2][k] = sum[SLOT_B2];
        if (d_kinds[K_EPS])
            d_kinds[K_EPS][k] = sum[SLOT_EPS];
        if (d_kinds[K_LAMBDA])
            d_kinds[K_LAMBDA][k] = -sum[SLOT_DECAY];
    }
    (void)o;
}

static const revl_hyper rms_kinds[N_KINDS] = {REVL_HYPER_ALPHA, REVL_HYPER_GAMMA,
                                              REVL_HYPER_BETA2, REVL_HYPER_EPS,
                                              REVL_HYPER_WEIGHT_DECAY};
static const double rms_defaults[N_KINDS] = {1e-2, 0.9, 0.99, 1e-8, 0.0};

const rv_optim rv_optim_rmsprop = {
    .id = REVL_OPTIM_RMSPROP,
    .name = "rmsprop",
    .n_kinds = N_KINDS,
    .kinds = rms_kinds,
    .n_kinds_shipped = 4, /* weight_decay came later */
    .defaults = rms_defaults,
    .dir_mode = RV_DIR_AFTER_GRAD,
    .n_slots = N_SLOTS,
    .n_state = 2,
    .create = rms_create,
    .destroy = rms_destroy,
    .bytes = rms_bytes,
    .state = rms_state,
    .prepare = rms_prepare,
    .forward_block = rms_forward_block,
    .reverse_begin = rms_reverse_begin,
    .adjoint = rms_adjoint,
    .undo_position = rms_undo_position,
    .direction = rms_direction,
    .undo_state = rms_undo_state,
    .step_hypergrad = rms_step_hypergrad,
};
