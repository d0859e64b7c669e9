/* adam.c: Adam (torch.optim.Adam's formula), exactly reversible, with alpha, beta1, beta2 and
 * eps per step and group:
 *   m <- beta1 m + (1-beta1) g,   s <- beta2 s + (1-beta2) g^2      (betas = n / 2^24, exact)
 *   u = (m / c1) / (sqrt(s / c2) + eps),  c1 = 1 - prod beta1, c2 = 1 - prod beta2 (per group)
 *   w <- w - alpha u
 * m and s are 128-bit fixed point with ADAM_FRAC fractional bits (s spans many decades; m's
 * relative precision reaches w because Adam divides the gradient's scale out); w is int64.
 * u is a double computed from the fixed-point m and s, so the reverse pass recomputes it bit for
 * bit and w_t = w_{t+1} + round(alpha u) exactly. Adjoint: docs/method.md, "Adam". */
#include "optim/optim.h"

#include "optim/adam_dir.h"

#include "exact/rate.h"
#include "exact/wide.h"
#include "exact/round_vec.h"
#include "exact/wide_vec.h"

#include <math.h>
#include <string.h>

#define ADAM_FRAC 100 /* m, s in units of 2^-100: |m|, |s| < 2^26 */
#define ADAM_BOUND (126 - ADAM_FRAC)

typedef struct adam_sg {
    double alpha, w_scale;     /* alpha; 2^frac_bits (u to w units) */
    double eps;
    double beta1, beta2;       /* applied: n / 2^24 */
    double omb1_fixed, omb2_fixed; /* (1 - beta) 2^ADAM_FRAC: g, g^2 to state units */
    double omb1, omb2;         /* exact: 1 - n / 2^24 */
    double p1, p2;             /* prod of the applied betas up to this step (this group) */
    double c1, c2;             /* 1 - p1, 1 - p2 */
    double m_scale, s_scale;   /* 2^-ADAM_FRAC / c1, 2^-ADAM_FRAC / c2: two multiplies instead
                                  of two divisions per parameter-step */
    rv_gamma_code code1, code2;
} adam_sg;

typedef struct adam {
    size_t n_params, n_groups, n_sg;
    rv_wide *m, *s;
    double *dm, *ds;
    double *r1, *r2; /* per group: running sums of dc_t * prod beta (bias-correction path) */
    adam_sg *sg;
    int w_bound;
    rv_moments_run moments; /* the betas' exact multiply: lanes where the processor has them */
    rv_round_run rounded;   /* and their rounded one, in steps whose bits are not kept */
} adam;

enum { SLOT_ALPHA, SLOT_EPS, SLOT_C1, SLOT_C2, SLOT_B1, SLOT_B2, N_SLOTS };
enum { K_ALPHA, K_BETA1, K_BETA2, K_EPS };

static const double wide_unit = 0x1p-100; /* 2^-ADAM_FRAC */

static int adam_create(void **self, const revl_allocator *a, size_t n_params, size_t n_steps,
                       size_t n_groups, unsigned frac_bits)
{
    adam *o = rv_calloc(a, 1, sizeof *o);
    if (!o)
        return REVL_ERR_NOMEM;
    *self = o;
    o->n_params = n_params;
    o->n_groups = n_groups;
    o->n_sg = n_steps * n_groups;
    o->w_bound = 63 - (int)frac_bits;
    o->moments = rv_moments_run_select();
    o->rounded = rv_round_run_select();
    o->m = rv_calloc(a, n_params, sizeof *o->m);
    o->s = rv_calloc(a, n_params, sizeof *o->s);
    o->dm = rv_calloc(a, n_params, sizeof *o->dm);
    o->ds = rv_calloc(a, n_params, sizeof *o->ds);
    o->r1 = rv_calloc(a, n_groups, sizeof *o->r1);
    o->r2 = rv_calloc(a, n_groups, sizeof *o->r2);
    o->sg = rv_calloc(a, o->n_sg, sizeof *o->sg);
    return o->m && o->s && o->dm && o->ds && o->r1 && o->r2 && o->sg ? REVL_OK : REVL_ERR_NOMEM;
}

static void adam_destroy(void *self, const revl_allocator *a)
{
    adam *o = self;
    if (!o)
        return;
    void *arrays[] = {o->m, o->s, o->dm, o->ds, o->r1, o->r2, o->sg};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        rv_free(a, arrays[k]);
    rv_free(a, o);
}

static size_t adam_bytes(const void *self)
{
    const adam *o = self;
    return sizeof *o + o->n_params * (2 * sizeof(rv_wide) + 2 * sizeof(double)) +
           2 * o->n_groups * sizeof(double) + o->n_sg * sizeof *o->sg;
}

static rv_state_vec adam_state(void *self, size_t k)
{
    adam *o = self;
    return k == 0 ? (rv_state_vec){o->m, sizeof(rv_wide), wide_unit, "m"}
                  : (rv_state_vec){o->s, sizeof(rv_wide), wide_unit, "s"};
}

static double adam_prepare(void *self, size_t step, size_t group, const double *values)
{
    adam *o = self;
    adam_sg *sg = &o->sg[step * o->n_groups + group];
    const adam_sg *prev = step ? &o->sg[(step - 1) * o->n_groups + group] : NULL;
    uint32_t n1 = rv_rate_numerator(RV_GRID_BETA, values[K_BETA1]);
    uint32_t n2 = rv_rate_numerator(RV_GRID_BETA, values[K_BETA2]);
    sg->alpha = values[K_ALPHA];
    sg->w_scale = ldexp(1.0, 63 - o->w_bound);
    sg->eps = values[K_EPS];
    sg->beta1 = ldexp((double)n1, -24);
    sg->beta2 = ldexp((double)n2, -24);
    sg->omb1 = ldexp((double)((1u << 24) - n1), -24);
    sg->omb2 = ldexp((double)((1u << 24) - n2), -24);
    sg->omb1_fixed = ldexp(sg->omb1, ADAM_FRAC);
    sg->omb2_fixed = ldexp(sg->omb2, ADAM_FRAC);
    sg->p1 = (prev ? prev->p1 : 1.0) * sg->beta1;
    sg->p2 = (prev ? prev->p2 : 1.0) * sg->beta2;
    sg->c1 = 1.0 - sg->p1;
    sg->c2 = 1.0 - sg->p2;
    sg->m_scale = wide_unit / sg->c1;
    sg->s_scale = wide_unit / sg->c2;
    rv_gamma_code_make(&sg->code1, n1);
    rv_gamma_code_make(&sg->code2, n2);
    return (24.0 - log2((double)n1)) + (24.0 - log2((double)n2));
}

/* (1-beta1) g and (1-beta2) g^2 in state units, or a failure recorded in blk (when not NULL). */
static inline int moment_terms(const adam_sg *sg, rv_block *blk, size_t i, double g, rv_wide *gm,
                               rv_wide *gs)
{
    if (!isfinite(g)) {
        if (blk)
            rv_block_fail(blk, RV_GRAD_NOT_FINITE, i, g);
        return 0;
    }
    if (!rv_wide_round(sg->omb1_fixed * g, gm)) {
        if (blk)
            rv_block_fail_named(blk, RV_GRAD_RANGE, i, sg->omb1 * g, "(1-beta1)*gradient", "x",
                                ADAM_BOUND);
        return 0;
    }
    if (!rv_wide_round(sg->omb2_fixed * (g * g), gs)) {
        if (blk)
            rv_block_fail_named(blk, RV_GRAD_RANGE, i, sg->omb2 * (g * g),
                                "(1-beta2)*gradient^2", "x", ADAM_BOUND);
        return 0;
    }
    /* for g != 0 the true increment of s is > 0: at least one unit, so that a gradient below
     * s's resolution (|g| < about 3e-14, while (1-beta1) g is not below m's) still makes s > 0
     * (the same rule forward and back; adam_dir.c's lanes leave these to this code) */
    if (*gs == 0 && g != 0)
        *gs = 1;
    return 1;
}

/* m += (1-beta1) g, s += (1-beta2) g^2 after the betas' multiply. On failure nothing is changed,
 * and the failure is recorded in blk unless blk is NULL (a probe). Locals rather than stores
 * through m and s: a 128-bit value stored in halves and read back whole stalls store forwarding. */
static inline int adam_moments(const adam_sg *sg, rv_block *blk, size_t i, double g, rv_wide *m,
                               rv_wide *s)
{
    rv_wide gm, gs, mi, si;
    if (!moment_terms(sg, blk, i, g, &gm, &gs))
        return 0;
    if (!rv_wide_add(*m, gm, &mi)) {
        if (blk)
            rv_block_fail_named(blk, RV_STATE_RANGE, i, 0, "first moment", "m", ADAM_BOUND);
        return 0;
    }
    if (!rv_wide_add(*s, gs, &si)) {
        if (blk)
            rv_block_fail_named(blk, RV_STATE_RANGE, i, 0, "second moment", "s", ADAM_BOUND);
        return 0;
    }
    if (si == 0 && mi != 0) {
        if (blk)
            rv_block_fail_named(blk, RV_SINGULAR, i, rv_wide_to_double(mi) * wide_unit, "m",
                                "m", 0);
        return 0;
    }
    *m = mi;
    *s = si;
    return 1;
}

/* Per chunk: the betas' multiply, the moments' sums up to the first failure j, the weight steps
 * of [c0, j) (adam_dir.h, eight lanes where the processor has them) and their moves; then j's
 * failure, recorded only now so that a weight failure before j is the one reported, as when
 * each parameter was done whole in turn. A failure leaves m and s part-updated; nothing reads
 * them, since a failed training leaves the trainer to be trained again (trainer.c). */
static void adam_forward_block(void *self, rv_pass *p, size_t step, rv_block *blk, int flags)
{
    adam *o = self;
    rv_stack *stack_home = rv_block_stack(p->buf, blk);
    rv_stack stack = *stack_home;
    const revl_allocator *a = p->alloc;
    rv_wide *restrict m = o->m, *restrict s = o->s;
    uint64_t *restrict state = p->buf->state;
    double y[RV_CHUNK];
    const int lanes = rv_adam_sums_lanes();
    if (flags & RV_FWD_MUL)
        blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const adam_sg sg = o->sg[step * o->n_groups + g];
        const rv_adam_dir dir = {sg.m_scale, sg.s_scale, sg.eps, sg.alpha, sg.w_scale};
        const rv_adam_grad gr = {sg.omb1_fixed, sg.omb2_fixed};
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        for (size_t c0 = i0; c0 < i1; c0 += RV_CHUNK) {
            size_t c1 = c0 + RV_CHUNK < i1 ? c0 + RV_CHUNK : i1;
            if (flags & RV_FWD_MUL) {
                if (flags & RV_FWD_KEEP) {
                    o->moments.mul(a, &stack, state + c0, &sg.code1, &sg.code2, m + c0, s + c0,
                                   c1 - c0);
                    rv_stack_sink(&stack, flags);
                } else { /* steps whose bits are not kept: rounded (round_vec.h) */
                    o->rounded.mul128(m + c0, c1 - c0, sg.code1.n, 24);
                    o->rounded.mul128(s + c0, c1 - c0, sg.code2.n, 24);
                }
            }
            if (!(flags & RV_FWD_UPDATE))
                continue;
            /* the common path in lanes (adam_dir.h), each parameter it leaves here */
            size_t j = c0;
            for (;; j++) {
                if (lanes)
                    j += rv_adam_sums(&gr, 0, c1 - j, p->grad + j, m + j, s + j);
                if (j == c1 || !adam_moments(&sg, NULL, j, p->grad[j], &m[j], &s[j]))
                    break;
            }
            rv_adam_steps(&dir, j - c0, m + c0, s + c0, y);
            if (c0 + rv_pass_move_w_run(p, blk, lanes, -1, c0, j - c0, y) < j)
                goto done;
            if (j < c1) {
                adam_moments(&sg, blk, j, p->grad[j], &m[j], &s[j]);
                goto done;
            }
        }
    }
done:
    rv_block_stack_put(stack_home, stack, blk);
}

static void adam_reverse_begin(void *self)
{
    adam *o = self;
    memset(o->dm, 0, o->n_params * sizeof *o->dm);
    memset(o->ds, 0, o->n_params * sizeof *o->ds);
    memset(o->r1, 0, o->n_groups * sizeof *o->r1);
    memset(o->r2, 0, o->n_groups * sizeof *o->r2);
}

static double *adam_adjoint(void *self, size_t k, size_t *n)
{
    adam *o = self;
    double *arrays[] = {o->dm, o->ds, o->r1, o->r2};
    *n = k < 2 ? o->n_params : o->n_groups;
    return k < 4 ? arrays[k] : NULL;
}

/* One chunk's partial sums (in parameter order: their bits), dw into dm and ds, and the Hessian
 * direction. The pointers are restrict-qualified locals: through adam's and the pass's pointers
 * every store reloaded them (measured 10 cycles a parameter); the per-parameter work now hides
 * under the sums' chain of dependent adds. */
static void adam_undo_run(const adam_sg *sg, size_t n,
                          const rv_adam_terms *restrict t, const double *restrict dw,
                          double *restrict dm, double *restrict ds, double *restrict dir_a,
                          double *restrict dir_b, double sums[4])
{
    double s_alpha = sums[0], s_eps = sums[1], s_c1 = sums[2], s_c2 = sums[3];
    const double alpha = sg->alpha, a_scale = -sg->omb1, b_scale = -2.0 * sg->omb2;
    for (size_t k = 0; k < n; k++) {
        s_alpha += dw[k] * t->u[k];
        s_eps += dw[k] * t->du_deps[k];
        s_c1 += dw[k] * t->du_dc1[k];
        s_c2 += dw[k] * t->du_dc2[k];
        double m = dm[k] - alpha * dw[k] * t->du_dm[k];
        double s = ds[k] - alpha * dw[k] * t->du_ds[k];
        dm[k] = m;
        ds[k] = s;
        dir_a[k] = a_scale * m;
        dir_b[k] = b_scale * s;
    }
    sums[0] = s_alpha;
    sums[1] = s_eps;
    sums[2] = s_c1;
    sums[3] = s_c2;
}

/* Undo w <- w - alpha u; the partial sums of u's dependence on alpha, eps, c1, c2; dw into dm
 * and ds; the Hessian direction -d f/d g = a + b g with a = -(1-beta1) dm, b = -2 (1-beta2) ds. */
static void adam_undo_position(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    adam *o = self;
    rv_adam_terms t; /* u's partial derivatives for a chunk: adam_dir.h (eight lanes) */
    double y[RV_CHUNK];
    const int lanes = rv_adam_sums_lanes();
    _Static_assert(RV_ADAM_RUN == RV_CHUNK, "adam_dir.h's run is the chunk");
    blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const adam_sg *sg = &o->sg[step * o->n_groups + g];
        const rv_adam_dir dir = {sg->m_scale, sg->s_scale, sg->eps, sg->alpha, sg->w_scale};
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        double sums[4] = {0, 0, 0, 0}; /* alpha, eps, c1, c2 */
        for (size_t c0 = i0; c0 < i1; c0 += RV_CHUNK) {
            size_t c1 = c0 + RV_CHUNK < i1 ? c0 + RV_CHUNK : i1;
            /* the forward pass refused s = 0 with m != 0 */
            rv_adam_terms_run(&dir, sg->c1, sg->c2, c1 - c0, o->m + c0, o->s + c0, &t);
            /* the moves first (in lanes: adam_dir.h), then the sums */
            for (size_t k = 0; k < c1 - c0; k++)
                y[k] = sg->alpha * t.u[k] * sg->w_scale; /* as rv_adam_step1 */
            if (rv_pass_move_w_run(p, blk, lanes, +1, c0, c1 - c0, y) < c1 - c0)
                return; /* recorded in blk: the pass fails, nothing reads its adjoints */
            adam_undo_run(sg, c1 - c0, &t, p->dw + c0, o->dm + c0, o->ds + c0, p->dir_a + c0,
                          p->dir_b + c0, sums);
        }
        double *part = &p->partial[(blk->part + (g - blk->g_first)) * p->n_slots];
        part[SLOT_ALPHA] = sums[0];
        part[SLOT_EPS] = sums[1];
        part[SLOT_C1] = sums[2];
        part[SLOT_C2] = sums[3];
    }
}

/* Undo the moments with the recomputed gradient (in the reverse order of the forward pass's
 * coder operations), the betas' partial sums, dw -= hv, and the moments' adjoints one step back. */
static void adam_undo_state(void *self, rv_pass *p, size_t step, rv_block *blk)
{
    adam *o = self;
    rv_stack *stack_home = rv_block_stack(p->buf, blk);
    rv_stack stack = *stack_home;
    const revl_allocator *a = p->alloc;
    rv_wide *restrict m = o->m, *restrict s = o->s;
    const double *restrict grad = p->grad, *restrict hv = p->hv;
    double *restrict dm = o->dm, *restrict ds = o->ds, *restrict dw = p->dw;
    uint64_t *restrict state = p->buf->state;
    const int lanes = rv_adam_sums_lanes();
    double t1[RV_CHUNK], t2[RV_CHUNK];
    blk->err = RV_OK;
    for (size_t g = blk->g_last + 1; g-- > blk->g_first;) {
        const adam_sg sg = o->sg[step * o->n_groups + g];
        const rv_adam_grad gr = {sg.omb1_fixed, sg.omb2_fixed};
        size_t i0, i1;
        rv_block_range(blk, p->offsets, g, &i0, &i1);
        double s_b1 = 0, s_b2 = 0;
        for (size_t c1 = i1; c1 > i0;) {
            size_t c0 = c1 - i0 > RV_CHUNK ? c1 - RV_CHUNK : i0;
            for (size_t i = c0; i < c1; i++) {
                if (lanes && (i += rv_adam_sums(&gr, 1, c1 - i, grad + i, m + i, s + i)) == c1)
                    break;
                rv_wide gm, gs;
                if (!moment_terms(&sg, blk, i, grad[i], &gm, &gs))
                    goto done;
                if (!rv_wide_add(m[i], -gm, &m[i]) || !rv_wide_add(s[i], -gs, &s[i])) {
                    rv_block_fail_named(blk, RV_STATE_RANGE, i, grad[i], "a moment", "m|s",
                                        ADAM_BOUND);
                    goto done;
                }
            }
            o->moments.div(a, &stack, state + c0, &sg.code1, &sg.code2, m + c0, s + c0, c1 - c0);
            /* the betas' terms in lanes (adam_dir.h), their sums in order */
            const rv_adam_back back = {sg.beta1, sg.beta2, grad + c0, hv + c0, m + c0, s + c0,
                                       dw + c0,   dm + c0,  ds + c0};
            int hv_finite = rv_adam_back_run(&back, c1 - c0, t1, t2);
            for (size_t k = 0; k < c1 - c0; k++) {
                s_b1 += t1[k];
                s_b2 += t2[k];
            }
            if (!hv_finite) {
                rv_block_fail_hv(blk, hv, c0);
                goto done;
            }
            c1 = c0;
        }
        double *part = &p->partial[(blk->part + (g - blk->g_first)) * p->n_slots];
        part[SLOT_B1] = s_b1;
        part[SLOT_B2] = s_b2;
    }
done:
    rv_block_stack_put(stack_home, stack, blk);
}

/* Per group: d alpha, d eps directly; d beta through the moments plus the bias corrections of
 * this and every later step: c_t = 1 - prod_{j<=t} beta_j, d c_t / d beta_k = -prod_t / beta_k. */
static void adam_step_hypergrad(void *self, size_t step, size_t n_groups, const double *sums,
                                double *const *d_kinds)
{
    adam *o = self;
    for (size_t g = 0; g < n_groups; g++) {
        const adam_sg *sg = &o->sg[step * n_groups + g];
        const double *sum = &sums[g * N_SLOTS];
        size_t k = step * n_groups + g;
        o->r1[g] += -sg->alpha * sum[SLOT_C1] * sg->p1;
        o->r2[g] += -sg->alpha * sum[SLOT_C2] * sg->p2;
        if (d_kinds[K_ALPHA])
            d_kinds[K_ALPHA][k] = -sum[SLOT_ALPHA];
        if (d_kinds[K_BETA1])
            d_kinds[K_BETA1][k] = sum[SLOT_B1] - o->r1[g] / sg->beta1;
        if (d_kinds[K_BETA2])
            d_kinds[K_BETA2][k] = sum[SLOT_B2] - o->r2[g] / sg->beta2;
        if (d_kinds[K_EPS])
            d_kinds[K_EPS][k] = -sg->alpha * sum[SLOT_EPS];
    }
}

static const revl_hyper adam_kinds[] = {REVL_HYPER_ALPHA, REVL_HYPER_BETA1, REVL_HYPER_BETA2,
                                        REVL_HYPER_EPS};
static const double adam_defaults[] = {1e-3, 0.9, 0.999, 1e-8};

const rv_optim rv_optim_adam = {
    .id = REVL_OPTIM_ADAM,
    .name = "adam",
    .n_kinds = 4,
    .kinds = adam_kinds,
    .defaults = adam_defaults,
    .dir_mode = RV_DIR_AFFINE,
    .n_slots = N_SLOTS,
    .n_state = 2,
    .create = adam_create,
    .destroy = adam_destroy,
    .bytes = adam_bytes,
    .state = adam_state,
    .prepare = adam_prepare,
    .forward_block = adam_forward_block,
    .reverse_begin = adam_reverse_begin,
    .adjoint = adam_adjoint,
    .undo_position = adam_undo_position,
    .undo_state = adam_undo_state,
    .step_hypergrad = adam_step_hypergrad,
};
