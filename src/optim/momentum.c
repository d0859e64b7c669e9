/* momentum.c: heavy-ball momentum SGD, the paper's optimiser, exactly reversible:
 *   g' = g + lambda w            (coupled weight decay, torch.optim.SGD's; optim.h)
 *   v <- gamma v - (1-gamma) g'  (gamma = n/2^16, the multiply exact through the buffer)
 *   w <- w + alpha v
 * on int64 fixed-point w and v. The exact multiply is coder_vec.h's and the forward update after
 * it update.h's, each plain or in vector lanes chosen at run time, with the same bits. */
#include "exact/coder_vec.h"
#include "exact/round_vec.h"
#include "optim/optim.h"
#include "optim/update.h"

#include <math.h>
#include <string.h>

/* alpha and gamma of one (step, group), prepared once per train() call. */
typedef struct mom_sg {
    double alpha;
    double lambda;          /* weight decay, 0: none */
    double gamma;           /* applied: n / 2^16 */
    double one_minus_gamma; /* exact: 1 - n / 2^16 */
    double omg_fixed;       /* (1 - gamma) * 2^frac_bits: gradient to velocity units */
    rv_gamma_code code;
} mom_sg;

typedef struct momentum {
    size_t n_params, n_groups;
    int64_t *v;
    double *dv;
    mom_sg *sg; /* n_steps * n_groups */
    size_t n_sg;
    double scale, inv_scale;
    int bound; /* |v| < 2^bound */
    rv_update_fn update;
    rv_coder_run coder;
    rv_round_run rounded; /* gamma's rounded multiply, in steps whose bits are not kept */
} momentum;

enum { SLOT_ALPHA, SLOT_GAMMA, SLOT_DECAY, N_SLOTS };
enum { K_ALPHA, K_GAMMA, K_LAMBDA, N_KINDS };

static int mom_create(void **self, const revl_allocator *a, size_t n_params, size_t n_steps,
                      size_t n_groups, unsigned frac_bits)
{
    momentum *o = rv_calloc(a, 1, sizeof *o);
    if (!o)
        return REVL_ERR_NOMEM;
    o->n_params = n_params;
    o->n_groups = n_groups;
    o->n_sg = n_steps * n_groups;
    o->v = rv_calloc(a, n_params, sizeof *o->v);
    o->dv = rv_calloc(a, n_params, sizeof *o->dv);
    o->sg = rv_calloc(a, o->n_sg, sizeof *o->sg);
    rv_fixed fx = rv_fixed_make(frac_bits);
    o->scale = fx.scale;
    o->inv_scale = fx.inv_scale;
    o->bound = 63 - (int)frac_bits;
    o->update = rv_update_select();
    o->coder = rv_coder_run_select();
    o->rounded = rv_round_run_select();
    *self = o;
    return o->v && o->dv && o->sg ? REVL_OK : REVL_ERR_NOMEM;
}

static void mom_destroy(void *self, const revl_allocator *a)
{
    momentum *o = self;
    if (!o)
        return;
    rv_free(a, o->v);
    rv_free(a, o->dv);
    rv_free(a, o->sg);
    rv_free(a, o);
}

static size_t mom_bytes(const void *self)
{
    const momentum *o = self;
    return sizeof *o + o->n_params * (sizeof *o->v + sizeof *o->dv) + o->n_sg * sizeof *o->sg;
}

static rv_state_vec mom_state(void *self, size_t k)
{
    momentum *o = self;
    return (rv_state_vec){o->v, sizeof *o->v, o->inv_scale, "v"};
}

static double mom_prepare(void *self, size_t step, size_t group, const double *values)
{
    momentum *o = self;
    mom_sg *sg = &o->sg[step * o->n_groups + group];
    uint32_t num = rv_gamma_numerator(values[K_GAMMA]);
    sg->alpha = values[K_ALPHA];
    sg->lambda = values[K_LAMBDA];
    sg->gamma = num / 65536.0;
    sg->one_minus_gamma = (65536 - num) / 65536.0;
    sg->omg_fixed = sg->one_minus_gamma * o->scale;
    rv_gamma_code_make(&sg->code, num);
    return 16.0 - log2((double)num);
}

/* Why the update of parameter i failed (update.h stops before it, leaving it unchanged). */
static void update_fail(const momentum *o, rv_block *blk, const mom_sg *sg, size_t i,
                        double grad, double g, int64_t v)
{
    int64_t step_g, vi;
    if (!isfinite(grad))
        rv_block_fail(blk, RV_GRAD_NOT_FINITE, i, grad);
    else if (!isfinite(g)) /* the decay overflowed */
        rv_block_fail_named(blk, RV_GRAD_RANGE, i, g, "gradient+weight_decay*w", "x", 1024);
    else if (!rv_round_fixed(sg->omg_fixed * g, &step_g))
        rv_block_fail_named(blk, RV_GRAD_RANGE, i, sg->one_minus_gamma * g,
                            "(1-gamma)*gradient", "x", o->bound);
    else if (__builtin_sub_overflow(v, step_g, &vi))
        rv_block_fail_named(blk, RV_STATE_RANGE, i, 0, "velocity", "v", o->bound);
    else
        rv_block_fail(blk, RV_W_RANGE, i, 0);
}

/* One forward step on one block: v <- gamma v - (1-gamma) g exactly, w <- w + alpha v.
 * Done in chunks (RV_CHUNK) of two short loops, the coder (RV_FWD_MUL) then the rest
 * (RV_FWD_UPDATE), rather than one long one. The stack lives in a local copy so stores to the
 * arrays cannot alias it. */
static void mom_forward_block(void *self, rv_pass *p, size_t step, rv_block *blk, int flags)
{
    momentum *o = self;
    rv_stack *stack_home = rv_block_stack(p->buf, blk);
    rv_stack stack = *stack_home;
    const revl_allocator *a = p->alloc;
    int64_t *restrict w = p->w, *restrict v = o->v;
    const double *restrict grad = p->grad;
    double *restrict wd = p->wd;
    uint64_t *restrict state = p->buf->state;
    if (flags & RV_FWD_MUL)
        blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const mom_sg sg = o->sg[step * o->n_groups + g];
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        for (size_t c0 = i0; c0 < i1; c0 += RV_CHUNK) {
            size_t c1 = c0 + RV_CHUNK < i1 ? c0 + RV_CHUNK : i1;
            if (flags & RV_FWD_MUL) {
                if (flags & RV_FWD_KEEP) {
                    o->coder.mul(a, &stack, state + c0, &sg.code, v + c0, c1 - c0);
                    rv_stack_sink(&stack, flags);
                } else /* steps whose bits are not kept: rounded (round_vec.h) */
                    o->rounded.mul64(v + c0, c1 - c0, sg.code.n);
            }
            if (!(flags & RV_FWD_UPDATE))
                continue;
            const double *gc = grad + c0; /* the gradient the update sees: g' */
            double decayed[RV_CHUNK];
            if (sg.lambda != 0) {
                for (size_t i = c0; i < c1; i++)
                    decayed[i - c0] = rv_coupled_grad(grad[i], sg.lambda, wd[i]);
                gc = decayed;
            }
            size_t k = o->update(c1 - c0, gc, v + c0, w + c0, wd + c0, sg.omg_fixed, sg.alpha,
                                 p->fx.inv_scale);
            if (k < c1 - c0) {
                update_fail(o, blk, &sg, c0 + k, grad[c0 + k], gc[k], v[c0 + k]);
                goto done;
            }
        }
    }
done:
    rv_block_stack_put(stack_home, stack, blk);
}

static void mom_reverse_begin(void *self)
{
    momentum *o = self;
    memset(o->dv, 0, o->n_params * sizeof *o->dv);
}

static double *mom_adjoint(void *self, size_t k, size_t *n)
{
    momentum *o = self;
    *n = o->n_params;
    return k == 0 ? o->dv : NULL;
}

/* One chunk's partial sums for alpha and the decay (in parameter order: their bits), dw into dv,
 * the direction u = (1-gamma) dv and the decay's dw -= lambda u. Restrict-qualified locals: through
 * the optimiser's and the pass's pointers every store made gcc reload them. */
static void mom_undo_run(const mom_sg *sg, double inv_scale, size_t n, const int64_t *restrict v,
                         const double *restrict wd, double *restrict dw, double *restrict dv,
                         double *restrict u, double sums[2])
{
    double part = sums[0], decay = sums[1];
    const double alpha = sg->alpha, omg = sg->one_minus_gamma, lambda = sg->lambda;
    for (size_t k = 0; k < n; k++) {
        part += dw[k] * ((double)v[k] * inv_scale); /* rv_to_double */
        dv[k] += alpha * dw[k];
        u[k] = omg * dv[k];
        decay += u[k] * wd[k]; /* at lambda = 0 too: d lambda there is not 0 */
        if (lambda != 0)       /* dw -= 0 u could turn a -0 into +0 */
            dw[k] -= lambda * u[k];
    }
    sums[0] = part;
    sums[1] = decay;
}

/* Undo w <- w + alpha v, gather d alpha, and push dw into dv; u = (1-gamma) dv is the vector
 * the model's Hessian is applied to (gamma differs per group, so it goes inside the product).
 * u = -d f / d g', so the decay's share of g' = g + lambda w_t is dw -= lambda u (the driver
 * does dw -= H u) and d lambda = -sum u w_t, with w_t the weight just undone. The
 * moves run in Adam's mover's lanes where the processor has them. */
static void mom_undo_position(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    momentum *o = self;
    const int lanes = rv_adam_sums_lanes();
    double y[RV_CHUNK];
    blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const mom_sg *sg = &o->sg[step * o->n_groups + g];
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        double sums[2] = {0, 0}; /* alpha, decay */
        for (size_t c0 = i0; c0 < i1; c0 += RV_CHUNK) {
            size_t n = i1 - c0 < RV_CHUNK ? i1 - c0 : RV_CHUNK;
            /* alpha * v in units of 2^-frac_bits is alpha times v's integer (update.h) */
            const double alpha = sg->alpha;
            for (size_t k = 0; k < n; k++)
                y[k] = alpha * (double)o->v[c0 + k];
            if (rv_pass_move_w_run(p, blk, lanes, -1, c0, n, y) < n)
                return; /* recorded in blk: the pass fails, nothing reads its adjoints */
            mom_undo_run(sg, p->fx.inv_scale, n, o->v + c0, p->wd + c0, p->dw + c0, o->dv + c0,
                         p->dir_a + c0, sums);
        }
        double *partial = &p->partial[(blk->part + (g - blk->g_first)) * N_SLOTS];
        partial[SLOT_ALPHA] = sums[0];
        partial[SLOT_DECAY] = sums[1];
    }
}

/* Undo v <- gamma v - (1-gamma) g, gather d gamma, and apply the Hessian terms. Parameters are
 * visited in the opposite order of the forward pass: the block's stack unwinds last in, first
 * out. Chunked into short loops and with a local stack, as in the forward pass. */
static void mom_undo_state(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    momentum *o = self;
    const rv_fixed fx = p->fx;
    rv_stack *stack_home = rv_block_stack(p->buf, blk);
    rv_stack stack = *stack_home;
    const revl_allocator *a = p->alloc;
    int64_t *restrict v = o->v;
    const double *restrict grad = p->grad, *restrict hv = p->hv, *restrict wd = p->wd;
    double *restrict dw = p->dw, *restrict dv = o->dv;
    uint64_t *restrict state = p->buf->state;
    const int lanes = rv_adam_sums_lanes();
    double y[RV_CHUNK]; /* the velocity's steps, in units of v */
    blk->err = RV_OK;
    for (size_t g = blk->g_last + 1; g-- > blk->g_first;) {
        const mom_sg sg = o->sg[step * o->n_groups + g];
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        double part = 0;
        for (size_t c1 = i1; c1 > i0;) {
            size_t c0 = c1 - i0 > RV_CHUNK ? c1 - RV_CHUNK : i0, j = c0;
            if (lanes) { /* v += round(y) in Adam's mover's lanes, up to a parameter they leave */
                for (size_t k = 0; k < c1 - c0; k++)
                    y[k] = sg.omg_fixed * rv_coupled_grad(grad[c0 + k], sg.lambda, wd[c0 + k]);
                j += rv_adam_moves(+1, 1.0, c1 - c0, y, v + c0, NULL);
            }
            for (; j < c1; j++) {
                int64_t step_g;
                if (!rv_round_fixed(sg.omg_fixed * rv_coupled_grad(grad[j], sg.lambda, wd[j]),
                                    &step_g) ||
                    __builtin_add_overflow(v[j], step_g, &v[j])) {
                    if (isfinite(grad[j]))
                        rv_block_fail_named(blk, RV_STATE_RANGE, j, grad[j], "velocity", "v",
                                            o->bound);
                    else
                        rv_block_fail(blk, RV_GRAD_NOT_FINITE, j, grad[j]);
                    goto done;
                }
            }
            o->coder.div(a, &stack, state + c0, &sg.code, v + c0, c1 - c0);
            int hv_finite = 1; /* checked here, where hv is read anyway, not in a pass of its own */
            for (size_t i = c0; i < c1; i++) {
                part += dv[i] * (rv_to_double(fx, v[i]) + rv_coupled_grad(grad[i], sg.lambda, wd[i]));
                hv_finite &= isfinite(hv[i]) != 0;
                dw[i] -= hv[i];
                dv[i] *= sg.gamma;
            }
            if (!hv_finite) {
                rv_block_fail_hv(blk, hv, c0);
                goto done;
            }
            c1 = c0;
        }
        p->partial[(blk->part + (g - blk->g_first)) * N_SLOTS + SLOT_GAMMA] = part;
    }
done:
    rv_block_stack_put(stack_home, stack, blk);
}

static void mom_step_hypergrad(void *self, size_t step, size_t n_groups, const double *sums,
                               double *const *d_kinds)
{
    for (size_t g = 0; g < n_groups; g++) {
        if (d_kinds[K_ALPHA])
            d_kinds[K_ALPHA][step * n_groups + g] = sums[g * N_SLOTS + SLOT_ALPHA];
        if (d_kinds[K_GAMMA])
            d_kinds[K_GAMMA][step * n_groups + g] = sums[g * N_SLOTS + SLOT_GAMMA];
        if (d_kinds[K_LAMBDA])
            d_kinds[K_LAMBDA][step * n_groups + g] = -sums[g * N_SLOTS + SLOT_DECAY];
    }
}

static const revl_hyper mom_kinds[N_KINDS] = {REVL_HYPER_ALPHA, REVL_HYPER_GAMMA,
                                              REVL_HYPER_WEIGHT_DECAY};
static const double mom_defaults[N_KINDS] = {0.1, 0.9, 0.0};

const rv_optim rv_optim_momentum = {
    .id = REVL_OPTIM_MOMENTUM,
    .name = "momentum",
    .n_kinds = N_KINDS,
    .kinds = mom_kinds,
    .n_kinds_shipped = 2, /* weight_decay came later */
    .defaults = mom_defaults,
    .dir_mode = RV_DIR_FIXED,
    .n_slots = N_SLOTS,
    .n_state = 1,
    .create = mom_create,
    .destroy = mom_destroy,
    .bytes = mom_bytes,
    .state = mom_state,
    .prepare = mom_prepare,
    .forward_block = mom_forward_block,
    .reverse_begin = mom_reverse_begin,
    .adjoint = mom_adjoint,
    .undo_position = mom_undo_position,
    .undo_state = mom_undo_state,
    .step_hypergrad = mom_step_hypergrad,
};
