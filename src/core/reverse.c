/* reverse.c: the reverse pass. Walks the training back one step at a time, undoing w and v
 * exactly (the momentum multiply through the information buffer), and accumulates the
 * hypergradients with one fused gradient + Hessian-vector product per step. Ends by checking
 * that it arrived on w0 and v0 bit for bit with an empty buffer. */
#include "core/trainer.h"

#include <math.h>
#include <string.h>

/* Undo w <- w + alpha v, gather d alpha, and push dw into dv; u = (1-gamma) dv is the vector
 * the model's Hessian is applied to (gamma differs per group, so it goes inside the product). */
static void undo_weights_block(revl_trainer *t, size_t step, rv_block *blk)
{
    const rv_fixed fx = t->fx;
    blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const rv_step_group *sg = &t->steps[step * t->n_groups + g];
        size_t i0 = t->offsets[g] > blk->lo ? t->offsets[g] : blk->lo;
        size_t i1 = t->offsets[g + 1] < blk->hi ? t->offsets[g + 1] : blk->hi;
        double part = 0;
        for (size_t i = i0; i < i1; i++) {
            double vd = rv_to_double(fx, t->v[i]);
            int64_t step_w;
            part += t->dw[i] * vd;
            /* the same double product the forward pass rounded, so the same integer */
            if (!rv_round_fixed(sg->alpha * (double)t->v[i], &step_w) ||
                __builtin_sub_overflow(t->w[i], step_w, &t->w[i])) {
                if (!blk->err) {
                    blk->err = RV_W_RANGE;
                    blk->err_index = i;
                }
                continue;
            }
            t->wd[i] = rv_to_double(fx, t->w[i]);
            t->dv[i] += sg->alpha * t->dw[i];
            t->u[i] = sg->one_minus_gamma * t->dv[i];
        }
        t->partial[blk->part + (g - blk->g_first)] = part;
    }
}

/* Undo v <- gamma v - (1-gamma) g, gather d gamma, and apply the Hessian terms. Parameters are
 * visited in the opposite order of the forward pass: the block's stack unwinds last in, first
 * out. Chunked into short loops and with a local stack, as in the forward pass (trainer.c). */
static void undo_velocity_block(revl_trainer *t, size_t step, rv_block *blk)
{
    const rv_fixed fx = t->fx;
    rv_stack *stack_home = &t->buf.stacks[blk - t->blocks];
    rv_stack stack = *stack_home;
    const revl_allocator *a = &t->alloc;
    int64_t *restrict v = t->v;
    const double *restrict grad = t->grad, *restrict hv = t->hv;
    double *restrict dw = t->dw, *restrict dv = t->dv;
    uint64_t *restrict state = t->buf.state;
    blk->err = RV_OK;
    for (size_t g = blk->g_last + 1; g-- > blk->g_first;) {
        const rv_step_group sg = t->steps[step * t->n_groups + g];
        size_t i0 = t->offsets[g] > blk->lo ? t->offsets[g] : blk->lo;
        size_t i1 = t->offsets[g + 1] < blk->hi ? t->offsets[g + 1] : blk->hi;
        double part = 0;
        for (size_t c1 = i1; c1 > i0;) {
            size_t c0 = c1 - i0 > RV_CHUNK ? c1 - RV_CHUNK : i0;
            for (size_t i = c0; i < c1; i++) {
                int64_t step_g;
                if (!rv_round_fixed(sg.omg_fixed * grad[i], &step_g) ||
                    __builtin_add_overflow(v[i], step_g, &v[i])) {
                    if (!blk->err) {
                        blk->err = isfinite(grad[i]) ? RV_V_RANGE : RV_GRAD_NOT_FINITE;
                        blk->err_index = i;
                        blk->err_value = grad[i];
                    }
                    goto done;
                }
            }
            for (size_t i = c1; i-- > c0;)
                v[i] = rv_exact_div(a, &stack, &state[i], &sg.code, v[i]);
            int hv_finite = 1; /* checked here, where hv is read anyway, not in a pass of its own */
            for (size_t i = c0; i < c1; i++) {
                part += dv[i] * (rv_to_double(fx, v[i]) + grad[i]);
                hv_finite &= isfinite(hv[i]) != 0;
                dw[i] -= hv[i];
                dv[i] *= sg.gamma;
            }
            if (!hv_finite) {
                size_t i = c0;
                while (isfinite(hv[i]))
                    i++;
                blk->err = RV_HV_NOT_FINITE;
                blk->err_index = i;
                blk->err_value = hv[i];
                goto done;
            }
            c1 = c0;
        }
        t->partial[blk->part + (g - blk->g_first)] = part;
    }
done:
    *stack_home = stack;
    if (stack.nomem && !blk->err) {
        blk->err = RV_NOMEM;
        blk->err_index = blk->lo;
    }
}

/* Sum the blocks' partial sums per group, in block order: the same bits for any thread count. */
static void reduce_partials(const revl_trainer *t, double *out /* n_groups */)
{
    memset(out, 0, t->n_groups * sizeof *out);
    for (size_t b = 0; b < t->n_blocks; b++) {
        const rv_block *blk = &t->blocks[b];
        for (size_t g = blk->g_first; g <= blk->g_last; g++)
            out[g] += t->partial[blk->part + (g - blk->g_first)];
    }
}

/* After the walk back: w and v where training started, the buffer empty. */
static int verify_start(revl_trainer *t)
{
    for (size_t i = 0; i < t->n_params; i++) {
        if (t->w[i] != t->w_start[i])
            return rv_fail(t->err, REVL_ERR_INEXACT,
                           "reverse pass did not reproduce w at step %zu: first difference at "
                           "parameter %zu (%.17g, reversed %.17g); is the gradient deterministic?",
                           t->first_kept, i, rv_to_double(t->fx, t->w_start[i]),
                           rv_to_double(t->fx, t->w[i]));
        if (t->v[i] != t->v_start[i])
            return rv_fail(t->err, REVL_ERR_INEXACT,
                           "reverse pass did not reproduce v at step %zu: first difference at "
                           "parameter %zu (%.17g, reversed %.17g); is the gradient deterministic?",
                           t->first_kept, i, rv_to_double(t->fx, t->v_start[i]),
                           rv_to_double(t->fx, t->v[i]));
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
 * back recomputes, so a value out of range here means the gradient changed: not exact. A
 * Hessian-vector product that is not finite is the model's fault and stays a range error. */
static int reverse_block_error(revl_trainer *t, size_t step)
{
    int kind = RV_OK;
    for (size_t b = 0; b < t->n_blocks && !kind; b++)
        kind = t->blocks[b].err;
    int rc = rv_trainer_block_error(t, step, "reverse");
    if (rc == REVL_ERR_RANGE && kind != RV_HV_NOT_FINITE) {
        char why[RV_ERRLEN];
        memcpy(why, t->err, sizeof why);
        rc = rv_fail(t->err, REVL_ERR_INEXACT, "%.150s: the gradient differs from the "
                     "forward pass, so it is not deterministic", why);
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

int revl_trainer_hypergrad(revl_trainer *t, const double *dfdw, const double *dfdmeta,
                           double *d_w0, double *d_alpha, double *d_gamma, double *d_meta)
{
    if (!t)
        return REVL_ERR_INVALID;
    if (t->state != RV_TRAINED)
        return rv_fail(t->err, REVL_ERR_STATE,
                       t->state == RV_REVERSED
                           ? "revl_trainer_hypergrad: already reversed; call revl_trainer_train first"
                           : "revl_trainer_hypergrad: no completed training; call revl_trainer_train first");
    if (!dfdw)
        return rv_fail(t->err, REVL_ERR_INVALID, "revl_trainer_hypergrad: dfdw is NULL");
    for (size_t i = 0; i < t->n_params; i++)
        if (!isfinite(dfdw[i]))
            return rv_fail(t->err, REVL_ERR_RANGE, "dfdw[%zu] is not finite", i);
    for (size_t j = 0; dfdmeta && j < t->n_meta; j++)
        if (!isfinite(dfdmeta[j]))
            return rv_fail(t->err, REVL_ERR_RANGE, "dfdmeta[%zu] is not finite", j);
    rv_clear(t->err);
    size_t ng = t->n_groups, nm = t->n_meta;
    memcpy(t->dw, dfdw, t->n_params * sizeof *t->dw);
    memset(t->dv, 0, t->n_params * sizeof *t->dv);
    for (size_t j = 0; j < nm; j++)
        t->dmeta[j] = dfdmeta ? dfdmeta[j] : 0.0;
    if (d_alpha)
        memset(d_alpha, 0, t->n_steps * ng * sizeof *d_alpha);
    if (d_gamma)
        memset(d_gamma, 0, t->n_steps * ng * sizeof *d_gamma);
    int nt = rv_trainer_threads(t);
    long nb = (long)t->n_blocks;
    for (size_t step = t->n_steps; step-- > t->first_kept;) {
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (long b = 0; b < nb; b++)
            undo_weights_block(t, step, &t->blocks[b]);
        int rc = reverse_block_error(t, step);
        if (rc)
            return reverse_fail(t, rc);
        if (d_alpha)
            reduce_partials(t, d_alpha + step * ng);
        rc = rv_model_hvp_grad(t->model, step, t->wd, t->n_meta ? t->meta : NULL, t->u, t->grad,
                               t->hv, t->hv_meta);
        if (rc)
            return reverse_fail(t, rv_fail(t->err, rc, "%s (reverse)", revl_model_last_error(t->model)));
        if ((rc = check_hv_meta_finite(t, step)))
            return reverse_fail(t, rc);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (long b = 0; b < nb; b++)
            undo_velocity_block(t, step, &t->blocks[b]);
        rc = reverse_block_error(t, step);
        if (rc)
            return reverse_fail(t, rc);
        if (d_gamma)
            reduce_partials(t, d_gamma + step * ng);
        for (size_t j = 0; j < nm; j++)
            t->dmeta[j] -= t->hv_meta[j];
        t->steps_done = step;
    }
    int rc = verify_start(t);
    if (rc)
        return reverse_fail(t, rc);
    if (d_w0)
        memcpy(d_w0, t->dw, t->n_params * sizeof *d_w0);
    if (d_meta)
        memcpy(d_meta, t->dmeta, nm * sizeof *d_meta);
    t->state = RV_REVERSED;
    return REVL_OK;
}
