/* trainer.c: the trainer handle and the exact forward pass: momentum SGD on int64 fixed-point
 * w and v, with multiplication by the momentum done exactly (infobuf.h) so that the reverse pass
 * (reverse.c) can undo every step bit for bit. */
#include "core/trainer.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void revl_trainer_options_init(revl_trainer_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->frac_bits = 52;
}

#define RV_THREADS_MIN_PARAMS 262144

int rv_trainer_threads(const revl_trainer *t)
{
    int nt = t->threads;
#ifdef _OPENMP
    /* By default only runs big enough to pay for it use threads: below a few hundred thousand
     * parameters a step takes well under a millisecond, and the threads' barriers would cost
     * more than they save (far more on a loaded machine, where a waiting thread spins on the
     * core the working one needs). */
    if (nt <= 0)
        nt = t->n_params >= RV_THREADS_MIN_PARAMS ? omp_get_max_threads() : 1;
#endif
    if (nt < 1)
        nt = 1;
    if ((size_t)nt > t->n_blocks)
        nt = (int)t->n_blocks;
    return nt;
}

void rv_trainer_note_peak(revl_trainer *t)
{
    size_t now = t->fixed_bytes + rv_infobuf_bytes(&t->buf);
    if (now > t->peak_bytes)
        t->peak_bytes = now;
}

static void trainer_free_arrays(revl_trainer *t)
{
    const revl_allocator *a = &t->alloc;
    void *arrays[] = {t->offsets, t->w, t->v, t->w_start, t->v_start, t->wd, t->grad, t->meta, t->dw, t->dv,
                      t->u, t->hv, t->hv_meta, t->dmeta, t->steps, t->partial,
                      t->bits_per_block, t->blocks};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        rv_free(a, arrays[k]);
    rv_infobuf_destroy(&t->buf);
}

/* Blocks, the groups each touches and where its partial sums go. */
static void trainer_layout_blocks(revl_trainer *t)
{
    size_t g = 0, part = 0;
    for (size_t b = 0; b < t->n_blocks; b++) {
        rv_block *blk = &t->blocks[b];
        blk->lo = b * RV_BLOCK;
        blk->hi = blk->lo + RV_BLOCK < t->n_params ? blk->lo + RV_BLOCK : t->n_params;
        while (t->offsets[g + 1] <= blk->lo)
            g++;
        blk->g_first = g;
        size_t gl = g;
        while (t->offsets[gl + 1] < blk->hi)
            gl++;
        blk->g_last = gl;
        blk->part = part;
        part += gl - g + 1;
    }
    t->n_parts = part;
}

int revl_trainer_create(revl_trainer **out, revl_model *model, const revl_schedule *sched,
                        const revl_trainer_options *opts)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    if (!model || !sched)
        return REVL_ERR_INVALID;
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    if (opts) {
        if (rv_struct_size_check(NULL, RV_STRUCT_TRAINER_OPTIONS, opts->struct_size))
            return REVL_ERR_INVALID;
        o = *opts;
    }
    if (o.frac_bits < 1 || o.frac_bits > 62)
        return REVL_ERR_INVALID;
    size_t n_params = revl_model_n_params(model), n_groups = revl_schedule_n_groups(sched);
    revl_allocator alloc;
    rv_allocator_copy(&alloc, o.allocator);
    revl_trainer *t = rv_calloc(&alloc, 1, sizeof *t);
    if (!t)
        return REVL_ERR_NOMEM;
    t->alloc = alloc;
    t->model = model;
    t->sched = sched;
    t->frac_bits = o.frac_bits;
    t->truncate = o.truncate;
    t->threads = o.threads;
    t->fx = rv_fixed_make(o.frac_bits);
    t->update = rv_update_select();
    t->n_params = n_params;
    t->n_meta = revl_model_n_meta(model);
    t->n_steps = revl_schedule_n_steps(sched);
    t->n_groups = n_groups;
    t->first_kept = (o.truncate && o.truncate < t->n_steps) ? t->n_steps - o.truncate : 0;
    t->n_blocks = (n_params + RV_BLOCK - 1) / RV_BLOCK;

    const revl_allocator *a = &t->alloc;
    size_t p = n_params, nm = t->n_meta ? t->n_meta : 1;
    int ok = 1;
    rv_mul_size(t->n_steps, n_groups, &ok);
    t->offsets = rv_calloc(a, n_groups + 1, sizeof *t->offsets);
    if (!ok || !t->offsets) {
        revl_trainer_free(t);
        return ok ? REVL_ERR_NOMEM : REVL_ERR_INVALID;
    }
    revl_schedule_offsets(sched, t->offsets);
    if (t->offsets[n_groups] != n_params) {
        revl_trainer_free(t);
        return REVL_ERR_INVALID; /* the schedule's groups do not cover the model */
    }
    t->w = rv_calloc(a, p, sizeof *t->w);
    t->v = rv_calloc(a, p, sizeof *t->v);
    t->w_start = rv_calloc(a, p, sizeof *t->w_start);
    t->v_start = rv_calloc(a, p, sizeof *t->v_start);
    t->wd = rv_calloc(a, p, sizeof *t->wd);
    t->grad = rv_calloc(a, p, sizeof *t->grad);
    t->meta = rv_calloc(a, nm, sizeof *t->meta);
    t->dw = rv_calloc(a, p, sizeof *t->dw);
    t->dv = rv_calloc(a, p, sizeof *t->dv);
    t->u = rv_calloc(a, p, sizeof *t->u);
    t->hv = rv_calloc(a, p, sizeof *t->hv);
    t->hv_meta = rv_calloc(a, nm, sizeof *t->hv_meta);
    t->dmeta = rv_calloc(a, nm, sizeof *t->dmeta);
    t->steps = rv_calloc(a, t->n_steps * n_groups, sizeof *t->steps);
    t->blocks = rv_calloc(a, t->n_blocks, sizeof *t->blocks);
    t->bits_per_block = rv_calloc(a, t->n_blocks, sizeof *t->bits_per_block);
    int rc = REVL_ERR_NOMEM;
    if (t->w && t->v && t->w_start && t->v_start && t->wd && t->grad && t->meta && t->dw && t->dv && t->u &&
        t->hv && t->hv_meta && t->dmeta && t->steps && t->blocks && t->bits_per_block) {
        trainer_layout_blocks(t);
        t->partial = rv_calloc(a, t->n_parts, sizeof *t->partial);
        if (t->partial)
            rc = rv_infobuf_init(&t->buf, a, p);
    }
    if (rc) {
        revl_trainer_free(t);
        return rc;
    }
    t->fixed_bytes = sizeof *t + p * (4 * sizeof(int64_t) + 7 * sizeof(double)) +
                     3 * nm * sizeof(double) + t->n_steps * n_groups * sizeof *t->steps +
                     t->n_blocks * (sizeof *t->blocks + sizeof(double)) +
                     t->n_parts * sizeof(double);
    rv_trainer_note_peak(t);
    *out = t;
    return REVL_OK;
}

void revl_trainer_free(revl_trainer *t)
{
    if (!t)
        return;
    revl_allocator a = t->alloc;
    trainer_free_arrays(t);
    rv_free(&a, t);
}

const char *revl_trainer_last_error(const revl_trainer *t)
{
    return t ? t->err : "trainer is NULL";
}

int revl_trainer_weights(const revl_trainer *t, double *w)
{
    if (!t || !w)
        return REVL_ERR_INVALID;
    for (size_t i = 0; i < t->n_params; i++)
        w[i] = rv_to_double(t->fx, t->w[i]);
    return REVL_OK;
}

int revl_trainer_get_stats(const revl_trainer *t, revl_trainer_stats *out)
{
    if (!t || !out || out->struct_size < sizeof *out)
        return REVL_ERR_INVALID;
    out->steps_done = t->steps_done;
    out->buffer_bits = rv_infobuf_bits(&t->buf);
    out->buffer_bytes = rv_infobuf_bytes(&t->buf);
    out->peak_bytes = t->peak_bytes;
    out->last_loss = t->last_loss;
    return REVL_OK;
}

int rv_trainer_block_error(revl_trainer *t, size_t step, const char *pass)
{
    for (size_t b = 0; b < t->n_blocks; b++) {
        const rv_block *blk = &t->blocks[b];
        size_t i = blk->err_index;
        double x = blk->err_value;
        switch (blk->err) {
        case RV_OK:
            continue;
        case RV_GRAD_NOT_FINITE:
            return rv_fail(t->err, REVL_ERR_RANGE, "gradient is %s at step %zu, parameter %zu (%s)",
                           isnan(x) ? "NaN" : "infinite", step, i, pass);
        case RV_GRAD_RANGE:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "(1-gamma)*gradient = %g outside the fixed-point range (|x| < 2^%u) "
                           "at step %zu, parameter %zu (%s)",
                           x, 63 - t->frac_bits, step, i, pass);
        case RV_V_RANGE:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "velocity left the fixed-point range (|v| < 2^%u) at step %zu, "
                           "parameter %zu (%s)",
                           63 - t->frac_bits, step, i, pass);
        case RV_W_RANGE:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "weight left the fixed-point range (|w| < 2^%u) at step %zu, "
                           "parameter %zu (%s)",
                           63 - t->frac_bits, step, i, pass);
        case RV_HV_NOT_FINITE:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "Hessian-vector product is %s at step %zu, parameter %zu (%s)",
                           isnan(x) ? "NaN" : "infinite", step, i, pass);
        case RV_NOMEM:
            return rv_fail(t->err, REVL_ERR_NOMEM,
                           "no memory to grow the information buffer at step %zu (%s)", step, pass);
        }
    }
    return REVL_OK;
}

static inline void block_fail(rv_block *blk, int kind, size_t i, double x)
{
    if (!blk->err) {
        blk->err = kind;
        blk->err_index = i;
        blk->err_value = x;
    }
}

/* Why the update of parameter i failed (update.h stops before it, leaving it unchanged). */
static void update_fail(rv_block *blk, const rv_step_group *sg, size_t i, double g, int64_t v)
{
    int64_t step_g, vi;
    if (!isfinite(g))
        block_fail(blk, RV_GRAD_NOT_FINITE, i, g);
    else if (!rv_round_fixed(sg->omg_fixed * g, &step_g))
        block_fail(blk, RV_GRAD_RANGE, i, sg->one_minus_gamma * g);
    else if (__builtin_sub_overflow(v, step_g, &vi))
        block_fail(blk, RV_V_RANGE, i, 0);
    else
        block_fail(blk, RV_W_RANGE, i, 0);
}

/* Multiply by n/2^16 rounding to nearest, for steps whose bits are not kept (truncation). */
static inline int64_t rounded_mul(int64_t x, uint32_t n)
{
    int64_t q = x >> 16;
    uint64_t r = (uint64_t)x & 0xffff;
    return (int64_t)((uint64_t)q * n + ((r * n + 0x8000) >> 16));
}

/* One forward step on one block: v <- gamma v - (1-gamma) g exactly, w <- w + alpha v.
 * Done in chunks (RV_CHUNK) of two short loops, the coder then the rest, rather than one long
 * one. The stack lives in a local copy so stores to the arrays cannot alias it. */
static void forward_block(revl_trainer *t, size_t step, rv_block *blk, int keep_bits)
{
    const rv_fixed fx = t->fx;
    rv_stack *stack_home = &t->buf.stacks[blk - t->blocks];
    rv_stack stack = *stack_home;
    const revl_allocator *a = &t->alloc;
    int64_t *restrict w = t->w, *restrict v = t->v;
    const double *restrict grad = t->grad;
    double *restrict wd = t->wd;
    uint64_t *restrict state = t->buf.state;
    blk->err = RV_OK;
    for (size_t g = blk->g_first; g <= blk->g_last; g++) {
        const rv_step_group sg = t->steps[step * t->n_groups + g];
        size_t i0 = t->offsets[g] > blk->lo ? t->offsets[g] : blk->lo;
        size_t i1 = t->offsets[g + 1] < blk->hi ? t->offsets[g + 1] : blk->hi;
        for (size_t c0 = i0; c0 < i1; c0 += RV_CHUNK) {
            size_t c1 = c0 + RV_CHUNK < i1 ? c0 + RV_CHUNK : i1;
            if (keep_bits)
                for (size_t i = c0; i < c1; i++)
                    v[i] = rv_exact_mul(a, &stack, &state[i], &sg.code, v[i]);
            else
                for (size_t i = c0; i < c1; i++)
                    v[i] = rounded_mul(v[i], sg.code.n);
            size_t k = t->update(c1 - c0, grad + c0, v + c0, w + c0, wd + c0, sg.omg_fixed,
                                 sg.alpha, fx.inv_scale);
            if (k < c1 - c0) {
                update_fail(blk, &sg, c0 + k, grad[c0 + k], v[c0 + k]);
                goto done;
            }
        }
    }
done:
    *stack_home = stack;
    if (stack.nomem)
        block_fail(blk, RV_NOMEM, blk->lo, 0);
}

/* Read the schedule into per-(step, group) tables and reserve the buffer for the kept steps. */
static int prepare_steps(revl_trainer *t)
{
    size_t n = t->n_steps * t->n_groups;
    int rc = REVL_OK;
    memset(t->bits_per_block, 0, t->n_blocks * sizeof *t->bits_per_block);
    const double *alpha, *gamma;
    rv_schedule_arrays(t->sched, &alpha, &gamma);
    for (size_t k = 0; k < n; k++) {
        rv_step_group *sg = &t->steps[k];
        uint32_t num = rv_gamma_numerator(gamma[k]);
        sg->alpha = alpha[k];
        sg->gamma = num / 65536.0;
        sg->one_minus_gamma = (65536 - num) / 65536.0;
        sg->omg_fixed = sg->one_minus_gamma * t->fx.scale;
        rv_gamma_code_make(&sg->code, num);
        size_t step = k / t->n_groups, g = k % t->n_groups;
        if (step < t->first_kept)
            continue;
        double bits = 16.0 - log2((double)num);
        for (size_t b = 0; b < t->n_blocks; b++) {
            const rv_block *blk = &t->blocks[b];
            if (g < blk->g_first || g > blk->g_last)
                continue;
            size_t i0 = t->offsets[g] > blk->lo ? t->offsets[g] : blk->lo;
            size_t i1 = t->offsets[g + 1] < blk->hi ? t->offsets[g + 1] : blk->hi;
            t->bits_per_block[b] += bits * (double)(i1 - i0);
        }
    }
    if (rv_infobuf_reset(&t->buf, t->bits_per_block) != REVL_OK)
        rc = rv_fail(t->err, REVL_ERR_NOMEM, "no memory to reserve the information buffer");
    return rc;
}

int revl_trainer_train(revl_trainer *t, const double *w0, const double *meta)
{
    if (!t)
        return REVL_ERR_INVALID;
    rv_clear(t->err);
    t->state = RV_FRESH;
    t->steps_done = 0;
    if (!w0)
        return rv_fail(t->err, REVL_ERR_INVALID, "revl_trainer_train: w0 is NULL");
    if (t->n_meta && !meta)
        return rv_fail(t->err, REVL_ERR_INVALID,
                       "revl_trainer_train: meta is NULL but the model has %zu meta-parameters",
                       t->n_meta);
    if (revl_schedule_n_steps(t->sched) != t->n_steps ||
        revl_schedule_n_groups(t->sched) != t->n_groups)
        return rv_fail(t->err, REVL_ERR_STATE, "the schedule changed shape since the trainer was made");
    for (size_t j = 0; j < t->n_meta; j++) {
        if (!isfinite(meta[j]))
            return rv_fail(t->err, REVL_ERR_RANGE, "meta[%zu] is not finite", j);
        t->meta[j] = meta[j];
    }
    for (size_t i = 0; i < t->n_params; i++) {
        if (!rv_to_fixed(t->fx, w0[i], &t->w[i]))
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "w0[%zu] = %g is %s the fixed-point range (|w| < 2^%u)", i, w0[i],
                           isfinite(w0[i]) ? "outside" : "not finite, so outside",
                           63 - t->frac_bits);
        t->wd[i] = rv_to_double(t->fx, t->w[i]);
    }
    memset(t->v, 0, t->n_params * sizeof *t->v);
    int rc = prepare_steps(t);
    if (rc)
        return rc;
    if (t->first_kept == 0) {
        memcpy(t->w_start, t->w, t->n_params * sizeof *t->w);
        memset(t->v_start, 0, t->n_params * sizeof *t->v_start);
    }
    int nt = rv_trainer_threads(t);
    for (size_t step = 0; step < t->n_steps; step++) {
        if (step == t->first_kept && step > 0) {
            memcpy(t->w_start, t->w, t->n_params * sizeof *t->w);
            memcpy(t->v_start, t->v, t->n_params * sizeof *t->v);
        }
        double loss = NAN;
        rc = revl_model_grad(t->model, step, t->wd, t->n_meta ? t->meta : NULL, t->grad, &loss);
        if (rc)
            return rv_fail(t->err, rc, "%s (forward)", revl_model_last_error(t->model));
        int keep = step >= t->first_kept;
        long nb = (long)t->n_blocks;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (long b = 0; b < nb; b++)
            forward_block(t, step, &t->blocks[b], keep);
        rc = rv_trainer_block_error(t, step, "forward");
        if (rc)
            return rc;
        t->last_loss = loss;
        t->steps_done = step + 1;
    }
    rv_trainer_note_peak(t);
    t->state = RV_TRAINED;
    return REVL_OK;
}
