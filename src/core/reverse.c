/* reverse.c: the reverse pass of the driver. Walks the training back one step at a time: the
 * optimiser undoes w exactly, the model gives the gradient at the undone w_t and one
 * Hessian-vector product along -d f / d g_t, the optimiser undoes its states (its exact
 * multiplies through the information buffer) and moves the adjoints back; per-group partial
 * sums become hypergradients in block order. Ends by checking that it arrived on the start
 * (w and every state) bit for bit with an empty buffer. */
#include "base/ckptfile.h"
#include "core/trainer.h"
#include "core/shard.h"
#include "exact/wide.h"

#include <math.h>
#include <string.h>

/* Sum the blocks' partial sums per group and slot, in block order: the same bits for any
 * thread count, and (all blocks of all ranks, gathered) for any rank count. */
static int reduce_partials(revl_trainer *t)
{
    int rc = rv_shard_gather_partials(t);
    if (rc)
        return rc;
    size_t ns = t->opt->n_slots;
    memset(t->sums, 0, t->n_groups * ns * sizeof *t->sums);
    for (size_t b = 0; b < t->n_blocks_all; b++) {
        const rv_block *blk = &t->blocks_all[b];
        for (size_t g = blk->g_first; g <= blk->g_last; g++)
            for (size_t k = 0; k < ns; k++)
                t->sums[g * ns + k] += t->partial_all[(blk->part + (g - blk->g_first)) * ns + k];
    }
    return REVL_OK;
}

static double state_value(const rv_state_vec *sv, size_t i)
{
    if (sv->elem == sizeof(int64_t))
        return (double)((const int64_t *)sv->data)[i] * sv->inv_scale;
    return rv_wide_to_double(((const rv_wide *)sv->data)[i]) * sv->inv_scale;
}

/* After the walk back: w and every state where training started, the buffer empty (this
 * rank's share of them; the caller votes). */
static int verify_start(revl_trainer *t)
{
    const int64_t *w = t->w + t->lo;
    for (size_t i = 0; i < t->n_local; i++)
        if (w[i] != t->w_start[i])
            return rv_fail(t->err, REVL_ERR_INEXACT,
                           "reverse pass did not reproduce w at step %zu: first difference at "
                           "parameter %zu (%.17g, reversed %.17g); is the gradient deterministic?",
                           t->first_kept, t->lo + i, rv_to_double(t->fx, t->w_start[i]),
                           rv_to_double(t->fx, w[i]));
    for (size_t k = 0; k < t->opt->n_state; k++) {
        rv_state_vec sv = t->opt->state(t->opt_self, k);
        rv_state_vec start = sv;
        start.data = t->state_start[k];
        for (size_t i = 0; i < t->n_local; i++)
            if (memcmp((const char *)sv.data + i * sv.elem,
                       (const char *)start.data + i * sv.elem, sv.elem) != 0)
                return rv_fail(t->err, REVL_ERR_INEXACT,
                               "reverse pass did not reproduce %s at step %zu: first difference at "
                               "parameter %zu (%.17g, reversed %.17g); is the gradient "
                               "deterministic?",
                               sv.name, t->first_kept, t->lo + i, state_value(&start, i),
                               state_value(&sv, i));
    }
    if (!rv_infobuf_is_empty(&t->buf))
        return rv_fail(t->err, REVL_ERR_INEXACT,
                       "reverse pass ended with a non-empty information buffer; is the gradient "
                       "deterministic?");
    return REVL_OK;
}

/* The reverse walk for a failed hypergradient: the trainer must be trained again. */
static int reverse_fail(revl_trainer *t, int rc)
{
    t->state = RV_FRESH;
    return rc;
}

/* A block failure of the walk back. The forward pass took every step with the values the walk
 * back recomputes, so a value out of range here means the gradient changed (or the state came
 * from a forged checkpoint, which no training reached): not exact. A Hessian-vector product that
 * is not finite is the model's fault and stays a range error. */
static int reverse_block_error(revl_trainer *t, size_t step)
{
    int kind = RV_OK;
    for (size_t b = 0; b < t->n_blocks && !kind; b++)
        kind = t->blocks[b].err;
    int rc = rv_trainer_block_error(t, step, "reverse");
    if (rc == REVL_ERR_RANGE && kind != RV_HV_NOT_FINITE) {
        char why[RV_ERRLEN];
        memcpy(why, t->err, sizeof why);
        rc = rv_fail(t->err, REVL_ERR_INEXACT, "%.130s: the gradient differs from the "
                     "forward pass, so it is not deterministic (or a loaded checkpoint was "
                     "forged)", why);
    }
    return rc;
}

/* The mixed product with NaN or Inf would poison d_meta silently (hv_w is checked per block). */
static int check_hv_meta_finite(revl_trainer *t, size_t step)
{
    for (size_t j = 0; j < t->n_meta; j++)
        if (!isfinite(t->hv_meta[j]))
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "mixed Hessian-vector product (meta) is %s at step %zu, meta %zu "
                           "(reverse)",
                           isnan(t->hv_meta[j]) ? "NaN" : "infinite", step, j);
    return REVL_OK;
}

/* The reverse pass's own numbers overflowed: the caller's dfdw (or dfdmeta) is too large for
 * the run, not the model's fault. */
static int adjoint_overflow(revl_trainer *t, size_t step, const char *what)
{
    return rv_fail(t->err, REVL_ERR_RANGE,
                   "%s is not finite at step %zu (reverse): the adjoints overflowed; is dfdw too "
                   "large? (its largest |entry| is %g)", what, step, t->dfdw_max);
}

static int finite_all(const double *x, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= isfinite(x[i]) != 0;
    return ok;
}

typedef void (*rv_block_fn)(void *self, rv_pass *p, size_t step, rv_block *blk);

/* One of the optimiser's per-block functions over every block (of this rank), then the first
 * failure (of any rank). */
static int over_blocks(revl_trainer *t, rv_block_fn fn, size_t step, int nt)
{
    long nb = (long)t->n_blocks;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long b = 0; b < nb; b++)
        fn(t->opt_self, &t->pass, step, &t->blocks[b]);
    return rv_shard_vote(t, reverse_block_error(t, step));
}

/* After undo_position: every rank's w, and the direction or its coefficients when known. */
static int gather_position(revl_trainer *t)
{
    int rc = rv_shard_gather_w(t);
    if (!rc && t->opt->dir_mode != RV_DIR_AFTER_GRAD)
        rc = rv_shard_gather(t, t->dir_a);
    if (!rc && t->dir_b)
        rc = rv_shard_gather(t, t->dir_b);
    return rc;
}

/* The recomputed gradient must be the forward's, bit for bit: a difference would go unseen by
 * the end-of-run check wherever it changes no state (gamma = 1, say). */
static int check_fingerprint(revl_trainer *t, size_t step)
{
    uint64_t fp = rv_fingerprint(t->grad, t->n_params);
    if (fp != t->fingerprint[step])
        return rv_fail(t->err, REVL_ERR_INEXACT,
                       "the gradient at step %zu differs from the forward pass's (fingerprint "
                       "%016llx, forward %016llx): the model is not deterministic", step,
                       (unsigned long long)fp, (unsigned long long)t->fingerprint[step]);
    return REVL_OK;
}

/* What the model calls back between the gradient and the product (rv_model_hvp_dir). */
typedef struct dir_ctx {
    revl_trainer *t;
    size_t step;
    int nt;
    double *d_tau; /* NULL: d clip not wanted */
    int rc;        /* the direction's own failure (message in t->err), REVL_OK if none */
} dir_ctx;

/* The direction of an optimiser whose direction is any function of g (RV_DIR_AFTER_GRAD) into
 * dir_a, from the gradient in t->grad, checked against the forward pass's first. */
static int after_grad_dir(void *ctx, const double *grad)
{
    dir_ctx *c = ctx;
    revl_trainer *t = c->t;
    (void)grad; /* t->grad */
    int rc = check_fingerprint(t, c->step);
    if (!rc)
        rc = over_blocks(t, t->opt->direction, c->step, c->nt);
    if (!rc)
        rc = rv_shard_gather(t, t->dir_a);
    /* an overflowing direction would make the model's product Inf and the message blame it */
    if (!rc && !finite_all(t->dir_a, t->n_params))
        rc = adjoint_overflow(t, c->step, "the Hessian-vector direction");
    return c->rc = rc;
}

/* A step with a finite clip (clip.c): the gradient clipped as in the forward pass (the
 * optimiser undoes its states with the clipped one), the optimiser's direction v, then the
 * clip's adjoint of v (which needs the raw gradient) into clip_dir, the product's direction;
 * d_tau += d f / d clip. */
static int clipped_dir(void *ctx, const double *grad)
{
    dir_ctx *c = ctx;
    revl_trainer *t = c->t;
    size_t step = c->step;
    (void)grad; /* t->grad */
    int rc = check_fingerprint(t, step);
    if (rc != REVL_OK)
        return c->rc = rc;
    memcpy(t->clip_raw, t->grad, t->n_params * sizeof *t->grad);
    rv_clip_grad(t, step);
    if (t->opt->dir_mode == RV_DIR_AFTER_GRAD &&
        (rc = over_blocks(t, t->opt->direction, step, c->nt)) != REVL_OK)
        return c->rc = rc;
    const double *v = t->dir_a;
    if (t->opt->dir_mode == RV_DIR_AFFINE) { /* v = a + b g at the clipped g */
        rv_affine_dir(t->clip_dir, t->dir_a, t->dir_b, t->grad, t->n_params);
        v = t->clip_dir;
    }
    if (!finite_all(v, t->n_params))
        return c->rc = adjoint_overflow(t, step, "the Hessian-vector direction");
    if (v == t->clip_dir) { /* rv_clip_adjoint writes clip_dir: v must be elsewhere */
        memcpy(t->hv, v, t->n_params * sizeof *t->hv);
        v = t->hv;
    }
    rv_clip_adjoint(t, v, t->clip_raw, c->d_tau);
    return c->rc = REVL_OK;
}

/* The gradient at the undone w_t and the Hessian-vector products along the direction. A
 * direction that needs the gradient (RV_DIR_AFTER_GRAD, or a clipped step) is computed while
 * the model holds its forward pass: one pass for the built-in MLP, two for other models. */
static int model_step(revl_trainer *t, size_t step, int nt, double *d_tau)
{
    const double *meta = t->n_meta ? t->meta : NULL;
    int clipped = rv_clip_active(t, step), rc;
    dir_ctx c = {.t = t, .step = step, .nt = nt, .d_tau = d_tau, .rc = REVL_OK};
    if (clipped || t->opt->dir_mode == RV_DIR_AFTER_GRAD) {
        rc = rv_model_hvp_dir(t->model, step, t->wd, meta, clipped ? clipped_dir : after_grad_dir,
                              &c, clipped ? t->clip_dir : t->dir_a, t->grad, t->hv, t->hv_meta);
        if (c.rc)
            return c.rc;
        if (rc)
            return rv_fail(t->err, rc, "%s (reverse)", revl_model_last_error(t->model));
        return check_hv_meta_finite(t, step);
    }
    /* an overflowing direction would make the model's product Inf and the message blame it */
    if (!finite_all(t->dir_a, t->n_params) || (t->dir_b && !finite_all(t->dir_b, t->n_params)))
        return adjoint_overflow(t, step, "the Hessian-vector direction");
    if (t->opt->dir_mode == RV_DIR_FIXED)
        rc = rv_model_hvp_grad(t->model, step, t->wd, meta, t->dir_a, t->grad, t->hv, t->hv_meta);
    else
        rc = rv_model_hvp_affine(t->model, step, t->wd, meta, t->dir_a, t->dir_b, t->grad, t->hv,
                                 t->hv_meta);
    if (rc)
        return rv_fail(t->err, rc, "%s (reverse)", revl_model_last_error(t->model));
    if ((rc = check_fingerprint(t, step)) != REVL_OK)
        return rc;
    return check_hv_meta_finite(t, step);
}

static int hypergrad(revl_trainer *t, const double *dfdw, const double *dfdmeta, double *d_w0,
                     size_t n_kinds, double *const *d_kinds, double *d_meta);

/* The kinds revl_trainer_hypergrad_kinds shipped with (alpha .. eps): an old program's array has
 * exactly these entries, whatever REVL_HYPER_COUNT has grown to since (docs/api-stability.md). */
#define RV_HYPER_KINDS_SHIPPED 5

/* The three public entries; `call` is the one the caller called, the prefix of its messages
 * (one prefix: the Python and Julia wrappers add none when the message starts with it). */
static int hypergrad_entry(revl_trainer *t, const char *call, const double *dfdw,
                           const double *dfdmeta, double *d_w0, size_t n_kinds,
                           double *const *d_kinds, double *d_meta)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = rv_trainer_enter(t, call);
    if (rc)
        return rc;
    rc = hypergrad(t, dfdw, dfdmeta, d_w0, d_kinds ? n_kinds : 0, d_kinds, d_meta);
    t->busy = NULL;
    return rc;
}

int revl_trainer_hypergrad_kinds_n(revl_trainer *t, const double *dfdw, const double *dfdmeta,
                                   double *d_w0, size_t n_kinds, double *const *d_kinds,
                                   double *d_meta)
{
    return hypergrad_entry(t, "revl_trainer_hypergrad_kinds_n", dfdw, dfdmeta, d_w0, n_kinds,
                           d_kinds, d_meta);
}

int revl_trainer_hypergrad_kinds(revl_trainer *t, const double *dfdw, const double *dfdmeta,
                                 double *d_w0, double *const d_kinds[5], double *d_meta)
{
    return hypergrad_entry(t, "revl_trainer_hypergrad_kinds", dfdw, dfdmeta, d_w0,
                           RV_HYPER_KINDS_SHIPPED, d_kinds, d_meta);
}

/* The caller's arrays of d_kinds (n_entries) as user_out[j], the array of the optimiser's kind
 * j, or NULL; the message names `call`. */
static int kinds_wanted(revl_trainer *t, const char *call, size_t n_kinds,
                        double *const *d_kinds, double *user_out[REVL_HYPER_COUNT])
{
    const rv_optim *opt = t->opt;
    for (size_t k = 0; d_kinds && k < n_kinds; k++) {
        if (!d_kinds[k])
            continue;
        if (k >= REVL_HYPER_COUNT)
            return rv_fail(t->err, REVL_ERR_INVALID,
                           "%s: d_kinds[%zu] is not NULL, but this library knows %d kinds",
                           call, k, REVL_HYPER_COUNT);
        /* the driver's clip goes after the optimiser's kinds */
        int j = k == REVL_HYPER_CLIP ? (int)opt->n_kinds : rv_optim_kind_index(opt, (revl_hyper)k);
        if (j < 0)
            return rv_fail(t->err, REVL_ERR_INVALID,
                           "%s: this %s schedule has no %s (its entry must be NULL)",
                           call, opt->name, revl_hyper_name((revl_hyper)k));
        user_out[j] = d_kinds[k];
    }
    return REVL_OK;
}

/* The checks of hypergrad's arguments (message in t->err); user_out as kinds_wanted's. */
static int hypergrad_inputs(revl_trainer *t, const double *dfdw, const double *dfdmeta,
                            size_t n_kinds, double *const *d_kinds,
                            double *user_out[REVL_HYPER_COUNT])
{
    const char *fn = t->busy; /* the function the caller called */
    if (t->state != RV_TRAINED)
        return rv_fail(t->err, REVL_ERR_STATE, "%s: %s", fn,
                       t->state == RV_REVERSED
                           ? "already reversed; call revl_trainer_train first"
                       : t->state == RV_FORWARD_ONLY
                           ? "trained forward-only: nothing to reverse; use revl_trainer_train"
                       : t->state == RV_REVERSING
                           ? "a checkpoint taken mid-reverse is loaded; continue it with "
                             "revl_trainer_hypergrad_resume (or train anew)"
                           : "no completed training; call revl_trainer_train first");
    if (!dfdw)
        return rv_fail(t->err, REVL_ERR_INVALID, "%s: dfdw is NULL", fn);
    int rc = kinds_wanted(t, fn, n_kinds, d_kinds, user_out);
    if (rc)
        return rc;
    t->dfdw_max = 0;
    for (size_t i = 0; i < t->n_params; i++) {
        if (!isfinite(dfdw[i]))
            return rv_fail(t->err, REVL_ERR_RANGE, "dfdw[%zu] is not finite", i);
        t->dfdw_max = fmax(t->dfdw_max, fabs(dfdw[i]));
    }
    for (size_t j = 0; dfdmeta && j < t->n_meta; j++)
        if (!isfinite(dfdmeta[j]))
            return rv_fail(t->err, REVL_ERR_RANGE, "dfdmeta[%zu] is not finite", j);
    return REVL_OK;
}

static int walk_back(revl_trainer *t, double *const user_out[REVL_HYPER_COUNT], double *d_w0,
                     double *d_meta);

static int hypergrad(revl_trainer *t, const double *dfdw, const double *dfdmeta, double *d_w0,
                     size_t n_kinds, double *const *d_kinds, double *d_meta)
{
    const rv_optim *opt = t->opt;
    double *user_out[REVL_HYPER_COUNT] = {0}; /* in the optimiser's kind order */
    /* voted: a sharded trainer's rank whose arguments fail must not leave the others waiting */
    int rc = rv_shard_vote(t, hypergrad_inputs(t, dfdw, dfdmeta, n_kinds, d_kinds, user_out));
    if (rc)
        return rc;
    rv_clear(t->err);
    size_t nm = t->n_meta;
    memcpy(t->dw, dfdw, t->n_params * sizeof *t->dw);
    opt->reverse_begin(t->opt_self);
    for (size_t j = 0; j < nm; j++)
        t->dmeta[j] = dfdmeta ? dfdmeta[j] : 0.0;
    /* the hypergradients go to the trainer's own arrays, the caller's only on success */
    size_t n_sg = t->n_steps * t->n_groups;
    t->rev_kinds = 0;
    for (size_t k = 0; k <= opt->n_kinds; k++) /* and the clip at n_kinds */
        if (user_out[k]) {
            t->rev_kinds |= 1ull << k;
            memset(t->d_kinds + k * n_sg, 0, n_sg * sizeof *t->d_kinds);
        }
    t->rev_inputs = rv_hash_f64s(rv_hash_f64s(RV_HASH_INIT, dfdw, t->n_params), t->dmeta, nm);
    return walk_back(t, user_out, d_w0, d_meta);
}

/* The walk from w standing at t->steps_done (n_steps: the start of the pass) back to
 * first_kept, with the adjoints, dmeta and the kinds of rev_kinds accumulated so far; saving
 * a checkpoint every ckpt_every steps walked (not after the last: only the checks are left);
 * then the checks and, on success, the results to the caller's arrays. */
static int walk_back(revl_trainer *t, double *const user_out[REVL_HYPER_COUNT], double *d_w0,
                     double *d_meta)
{
    const rv_optim *opt = t->opt;
    size_t ng = t->n_groups, nm = t->n_meta, n_sg = t->n_steps * ng;
    double *out[REVL_HYPER_COUNT] = {0};
    for (size_t k = 0; k <= opt->n_kinds; k++) /* and the clip at n_kinds */
        if (t->rev_kinds >> k & 1)
            out[k] = t->d_kinds + k * n_sg;
    double *d_tau = out[opt->n_kinds];
    int nt = rv_trainer_threads(t), rc;
    for (size_t step = t->steps_done; step-- > t->first_kept;) {
        rc = over_blocks(t, opt->undo_position, step, nt);
        if (!rc)
            rc = gather_position(t);
        if (!rc) {
            t->model->agree = t->agree[step];
            rc = model_step(t, step, nt, d_tau ? d_tau + step * ng : NULL);
            t->model->agree = 0;
        }
        if (!rc)
            rc = over_blocks(t, opt->undo_state, step, nt);
        if (!rc)
            rc = reduce_partials(t);
        if (rc)
            return reverse_fail(t, rc);
        opt->step_hypergrad(t->opt_self, step, ng, t->sums, out);
        for (size_t j = 0; j < nm; j++)
            t->dmeta[j] -= t->hv_meta[j];
        t->steps_done = step;
        if (t->ckpt_path && step > t->first_kept && (t->n_steps - step) % t->ckpt_every == 0 &&
            (rc = rv_trainer_save_reverse(t, t->ckpt_path)) != REVL_OK)
            return reverse_fail(t, rc);
        rc = rv_trainer_progress(t, step, 1, step == t->first_kept, NAN);
        if (rc)
            return reverse_fail(t, rc);
    }
    rc = rv_shard_vote(t, verify_start(t));
    if (!rc)
        rc = rv_shard_gather(t, t->dw);
    if (rc)
        return reverse_fail(t, rc);
    int finite = finite_all(t->dw, t->n_params) && finite_all(t->dmeta, nm);
    for (size_t k = 0; k <= opt->n_kinds; k++)
        finite &= !out[k] || finite_all(out[k], n_sg);
    if (!finite)
        return reverse_fail(t, adjoint_overflow(t, t->first_kept, "a hypergradient"));
    for (size_t k = 0; k <= opt->n_kinds; k++)
        if (user_out[k])
            memcpy(user_out[k], out[k], n_sg * sizeof *out[k]);
    if (d_w0)
        memcpy(d_w0, t->dw, t->n_params * sizeof *d_w0);
    if (d_meta)
        memcpy(d_meta, t->dmeta, nm * sizeof *d_meta);
    t->state = RV_REVERSED;
    return REVL_OK;
}

static int hypergrad_resume(revl_trainer *t, double *d_w0, size_t n_kinds,
                            double *const *d_kinds, double *d_meta);

/* Refused from the trainer's own callbacks, as revl_trainer_hypergrad. */
int revl_trainer_hypergrad_resume(revl_trainer *t, double *d_w0, size_t n_kinds,
                                  double *const *d_kinds, double *d_meta)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = rv_trainer_enter(t, "revl_trainer_hypergrad_resume");
    if (rc)
        return rc;
    rc = hypergrad_resume(t, d_w0, d_kinds ? n_kinds : 0, d_kinds, d_meta);
    t->busy = NULL;
    return rc;
}

static int resume_checks(revl_trainer *t, size_t n_kinds, double *const *d_kinds,
                         double *user_out[REVL_HYPER_COUNT]);

/* Voted: a sharded trainer's rank whose arguments fail must not leave the others waiting. */
static int hypergrad_resume(revl_trainer *t, double *d_w0, size_t n_kinds,
                            double *const *d_kinds, double *d_meta)
{
    double *user_out[REVL_HYPER_COUNT] = {0};
    int rc = rv_shard_vote(t, resume_checks(t, n_kinds, d_kinds, user_out));
    if (rc)
        return rc;
    rv_clear(t->err);
    t->state = RV_FRESH; /* a failed step leaves a trainer that must be trained again */
    return walk_back(t, user_out, d_w0, d_meta);
}

static int resume_checks(revl_trainer *t, size_t n_kinds, double *const *d_kinds,
                         double *user_out[REVL_HYPER_COUNT])
{
    static const char call[] = "revl_trainer_hypergrad_resume";
    if (t->state != RV_REVERSING)
        return rv_fail(t->err, REVL_ERR_STATE,
                       "%s: no interrupted reverse pass to continue (load a checkpoint taken "
                       "during revl_trainer_hypergrad first)", call);
    if (revl_schedule_n_steps(t->sched) != t->n_steps ||
        revl_schedule_n_groups(t->sched) != t->n_groups)
        return rv_fail(t->err, REVL_ERR_STATE, "the schedule changed shape since the trainer was made");
    int rc = kinds_wanted(t, call, n_kinds, d_kinds, user_out);
    if (rc)
        return rc;
    for (size_t k = 0; k <= t->opt->n_kinds; k++)
        if (user_out[k] && !(t->rev_kinds >> k & 1))
            return rv_fail(t->err, REVL_ERR_INVALID,
                           "%s: the interrupted pass did not accumulate %s (it was not asked for); "
                           "its entry must be NULL", call,
                           k < t->opt->n_kinds ? revl_hyper_name(t->opt->kinds[k]) : "clip");
    return REVL_OK;
}

int revl_trainer_hypergrad(revl_trainer *t, const double *dfdw, const double *dfdmeta,
                           double *d_w0, double *d_alpha, double *d_gamma, double *d_meta)
{
    double *d_kinds[REVL_HYPER_GAMMA + 1] = {0};
    d_kinds[REVL_HYPER_ALPHA] = d_alpha;
    d_kinds[REVL_HYPER_GAMMA] = d_gamma;
    return hypergrad_entry(t, "revl_trainer_hypergrad", dfdw, dfdmeta, d_w0,
                           REVL_HYPER_GAMMA + 1, d_kinds, d_meta);
}
