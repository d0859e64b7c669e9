/* trainer.c: the trainer handle and the exact forward pass of the driver: per step one model
 * gradient, then the optimiser's step on every block (in threads), with the bits its exact
 * multiplies discard kept in the information buffer so that the reverse pass (reverse.c) can
 * undo every step bit for bit; or, forward-only (revl_trainer_train_forward), the same steps
 * keeping nothing for a reverse pass. */
#include "base/ckptfile.h"
#include "core/overlap.h"
#include "core/trainer.h"
#include "core/shard.h"

#include <math.h>
#include <stdatomic.h>
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

uint64_t rv_fingerprint(const double *x, size_t n)
{
    const uint64_t prime = 0x100000001b3ULL;
    uint64_t h[4] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL, 0x9e3779b97f4a7c15ULL,
                     0xc2b2ae3d27d4eb4fULL};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) {
            uint64_t b;
            memcpy(&b, &x[i + k], sizeof b);
            h[k] = (h[k] ^ b) * prime;
        }
    for (; i < n; i++) {
        uint64_t b;
        memcpy(&b, &x[i], sizeof b);
        h[0] = (h[0] ^ b) * prime;
    }
    uint64_t r = h[0];
    for (int k = 1; k < 4; k++)
        r = (r ^ (h[k] >> 29) ^ h[k]) * prime;
    return r ^ (r >> 32);
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
    void *arrays[] = {t->offsets, t->w, t->w_start, t->wd, t->grad, t->meta, t->dw,
                      t->dir_a, t->dir_b, t->hv, t->hv_meta, t->dmeta, t->hyper_values,
                      t->partial, t->sums, t->bits_per_block, t->blocks, t->d_kinds,
                      t->fingerprint, t->agree, t->vote, t->clip_raw, t->clip_dir, t->clip_c,
                      t->clip_tau,
                      t->offsets_all != t->offsets ? t->offsets_all : NULL,
                      t->blocks_all != t->blocks ? t->blocks_all : NULL,
                      t->partial_all != t->partial ? t->partial_all : NULL};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        rv_free(a, arrays[k]);
    if (t->state_start)
        for (size_t k = 0; k < t->opt->n_state; k++)
            rv_free(a, t->state_start[k]);
    rv_free(a, t->state_start);
    rv_free(a, t->ckpt_path);
    rv_overlap_free(t->overlap, a); /* joins its thread first: nothing runs on the arrays */
    if (t->opt_self)
        t->opt->destroy(t->opt_self, a);
    rv_infobuf_destroy(&t->buf);
}

/* All blocks, the groups each touches and where its partial sums go; then this rank's share
 * of them with indices from t->lo (the same groups: the local offsets are the global ones
 * clamped to the share and shifted, which keeps every comparison with a block's bounds). */
static void trainer_layout_blocks(revl_trainer *t)
{
    size_t g = 0, part = 0;
    for (size_t b = 0; b < t->n_blocks_all; b++) {
        rv_block *blk = &t->blocks_all[b];
        blk->lo = b * RV_BLOCK;
        blk->hi = blk->lo + RV_BLOCK < t->n_params ? blk->lo + RV_BLOCK : t->n_params;
        while (t->offsets_all[g + 1] <= blk->lo)
            g++;
        blk->g_first = g;
        size_t gl = g;
        while (t->offsets_all[gl + 1] < blk->hi)
            gl++;
        blk->g_last = gl;
        blk->part = part;
        part += gl - g + 1;
    }
    t->n_parts_all = part;
    t->part_lo = t->n_blocks_all ? t->blocks_all[t->b_lo].part : 0;
    size_t end = t->b_lo + t->n_blocks;
    t->n_parts = (end < t->n_blocks_all ? t->blocks_all[end].part : part) - t->part_lo;
    if (t->blocks != t->blocks_all)
        for (size_t b = 0; b < t->n_blocks; b++) {
            t->blocks[b] = t->blocks_all[t->b_lo + b];
            t->blocks[b].lo -= t->lo;
            t->blocks[b].hi -= t->lo;
            t->blocks[b].part -= t->part_lo;
        }
}

/* This rank's share of the blocks and parameters, and the offsets of its groups there. */
static int trainer_shard(revl_trainer *t, const revl_comm *comm)
{
    const revl_allocator *a = &t->alloc;
    t->n_blocks_all = t->n_blocks;
    t->n_local = t->n_params;
    if (!comm)
        return REVL_OK;
    if (comm->struct_size < sizeof *comm || !comm->allreduce_i64 || comm->size < 1 ||
        comm->rank < 0 || comm->rank >= comm->size)
        return rv_fail(rv_create_err(), REVL_ERR_INVALID,
                       "revl_trainer_create_sharded: the communicator is not initialised");
    if (t->n_blocks < (size_t)comm->size)
        return rv_fail(rv_create_err(), REVL_ERR_INVALID,
                       "revl_trainer_create_sharded: %zu parameters make %zu blocks of %d, fewer "
                       "than the %d ranks", t->n_params, t->n_blocks, RV_BLOCK, comm->size);
    t->comm = *comm;
    t->sharded = 1;
    rv_shard_blocks(comm, t->n_blocks_all, &t->b_lo, &t->n_blocks);
    t->lo = t->b_lo * RV_BLOCK;
    size_t hi = (t->b_lo + t->n_blocks) * RV_BLOCK;
    t->n_local = (hi < t->n_params ? hi : t->n_params) - t->lo;
    t->offsets = rv_calloc(a, t->n_groups + 1, sizeof *t->offsets);
    if (!t->offsets)
        return REVL_ERR_NOMEM;
    for (size_t g = 0; g <= t->n_groups; g++) {
        size_t o = t->offsets_all[g];
        o = o < t->lo ? t->lo : o > t->lo + t->n_local ? t->lo + t->n_local : o;
        t->offsets[g] = o - t->lo;
    }
    return REVL_OK;
}

static int trainer_create(revl_trainer **out, revl_model *model, const revl_schedule *sched,
                        const revl_trainer_options *opts, const revl_comm *comm);

int revl_trainer_create(revl_trainer **out, revl_model *model, const revl_schedule *sched,
                        const revl_trainer_options *opts)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(trainer_create(out, model, sched, opts, NULL), "revl_trainer_create");
}

int revl_trainer_create_sharded(revl_trainer **out, revl_model *model, const revl_schedule *sched,
                                const revl_trainer_options *opts, const revl_comm *comm)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(trainer_create(out, model, sched, opts, comm),
                         "revl_trainer_create_sharded");
}

static int trainer_create(revl_trainer **out, revl_model *model, const revl_schedule *sched,
                        const revl_trainer_options *opts, const revl_comm *comm)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    if (!model || !sched)
        return rv_fail(rv_create_err(), REVL_ERR_INVALID, "revl_trainer_create: %s is NULL",
                       model ? "sched" : "model");
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    if (opts) {
        if (rv_struct_size_check(rv_create_err(), RV_STRUCT_TRAINER_OPTIONS, opts->struct_size))
            return REVL_ERR_INVALID;
        o = *opts;
    }
    if (o.frac_bits < 1 || o.frac_bits > 62)
        return rv_fail(rv_create_err(), REVL_ERR_INVALID,
                       "revl_trainer_create: frac_bits = %u outside 1..62", o.frac_bits);
    size_t n_params = revl_model_n_params(model), n_groups = revl_schedule_n_groups(sched);
    revl_allocator alloc;
    rv_allocator_copy(&alloc, o.allocator);
    revl_trainer *t = rv_calloc(&alloc, 1, sizeof *t);
    if (!t)
        return REVL_ERR_NOMEM;
    t->alloc = alloc;
    t->model = model;
    t->sched = sched;
    t->opt = rv_schedule_optim(sched);
    t->frac_bits = o.frac_bits;
    t->truncate = o.truncate;
    t->threads = o.threads;
    t->fx = rv_fixed_make(o.frac_bits);
    t->n_params = n_params;
    t->n_meta = revl_model_n_meta(model);
    t->n_steps = revl_schedule_n_steps(sched);
    t->n_groups = n_groups;
    t->first_kept = (o.truncate && o.truncate < t->n_steps) ? t->n_steps - o.truncate : 0;
    t->n_blocks = (n_params + RV_BLOCK - 1) / RV_BLOCK;

    const revl_allocator *a = &t->alloc;
    const rv_optim *opt = t->opt;
    size_t p = n_params, nm = t->n_meta ? t->n_meta : 1;
    int ok = 1;
    rv_mul_size(t->n_steps, n_groups, &ok);
    t->offsets = t->offsets_all = rv_calloc(a, n_groups + 1, sizeof *t->offsets);
    if (!ok || !t->offsets) {
        revl_trainer_free(t);
        return ok ? REVL_ERR_NOMEM : REVL_ERR_INVALID;
    }
    revl_schedule_offsets(sched, t->offsets);
    if (t->offsets[n_groups] != n_params) {
        size_t covered = t->offsets[n_groups];
        revl_trainer_free(t);
        return rv_fail(rv_create_err(), REVL_ERR_INVALID,
                       "revl_trainer_create: the schedule's groups cover %zu parameters, the "
                       "model has %zu", covered, n_params);
    }
    int shard_rc = trainer_shard(t, comm);
    if (shard_rc) {
        revl_trainer_free(t);
        return shard_rc;
    }
    size_t pl = t->n_local; /* what this rank's optimiser, start copy and buffer hold */
    int opt_rc = opt->create(&t->opt_self, a, pl, t->n_steps, n_groups, t->frac_bits), rc = opt_rc;
    t->w = rv_calloc(a, p, sizeof *t->w);
    t->w_start = rv_calloc(a, pl, sizeof *t->w_start);
    t->state_start = rv_calloc(a, opt->n_state, sizeof *t->state_start);
    t->wd = rv_calloc(a, p, sizeof *t->wd);
    t->grad = rv_calloc(a, p, sizeof *t->grad);
    t->meta = rv_calloc(a, nm, sizeof *t->meta);
    t->dw = rv_calloc(a, p, sizeof *t->dw);
    t->dir_a = rv_calloc(a, p, sizeof *t->dir_a);
    if (opt->dir_mode == RV_DIR_AFFINE)
        t->dir_b = rv_calloc(a, p, sizeof *t->dir_b);
    t->hv = rv_calloc(a, p, sizeof *t->hv);
    t->hv_meta = rv_calloc(a, nm, sizeof *t->hv_meta);
    t->dmeta = rv_calloc(a, nm, sizeof *t->dmeta);
    t->hyper_values = rv_calloc(a, opt->n_kinds, sizeof *t->hyper_values);
    t->sums = rv_calloc(a, n_groups * opt->n_slots, sizeof *t->sums);
    t->blocks = rv_calloc(a, t->n_blocks, sizeof *t->blocks);
    t->blocks_all = t->sharded ? rv_calloc(a, t->n_blocks_all, sizeof *t->blocks_all) : t->blocks;
    t->fingerprint = rv_calloc(a, t->n_steps, sizeof *t->fingerprint);
    t->agree = rv_calloc(a, t->n_steps, sizeof *t->agree);
    if (t->sharded)
        t->vote = rv_calloc(a, 2 * (size_t)t->comm.size, sizeof *t->vote);
    int ok_kinds = 1;
    /* the optimiser's kinds, then the driver's clip (at index opt->n_kinds) */
    size_t n_kind_values = rv_mul_size(opt->n_kinds + 1, rv_mul_size(t->n_steps, n_groups, &ok_kinds),
                                       &ok_kinds);
    if (ok_kinds)
        t->d_kinds = rv_calloc(a, n_kind_values, sizeof *t->d_kinds);
    t->bits_per_block = rv_calloc(a, t->n_blocks, sizeof *t->bits_per_block);
    size_t state_bytes = 0;
    int states_ok = t->state_start != NULL; /* every start copy, not only the last one */
    if (!rc && t->state_start)
        for (size_t k = 0; k < opt->n_state; k++) {
            size_t elem = opt->state(t->opt_self, k).elem;
            state_bytes += pl * elem;
            if (!(t->state_start[k] = rv_calloc(a, pl, elem)))
                states_ok = 0;
        }
    if (!rc)
        rc = REVL_ERR_NOMEM;
    if (!opt_rc && states_ok && t->w && t->w_start && t->wd && t->grad && t->meta &&
        t->dw && t->dir_a && (t->dir_b || opt->dir_mode != RV_DIR_AFFINE) && t->hv &&
        t->hv_meta && t->dmeta && t->hyper_values && t->sums && t->blocks && t->blocks_all &&
        t->bits_per_block && t->fingerprint && t->agree && (t->vote || !t->sharded) &&
        t->d_kinds) {
        trainer_layout_blocks(t);
        t->partial = rv_calloc(a, t->n_parts * opt->n_slots, sizeof *t->partial);
        t->partial_all = t->sharded ? rv_calloc(a, t->n_parts_all * opt->n_slots,
                                                sizeof *t->partial_all)
                                    : t->partial;
        if (t->partial && t->partial_all)
            rc = rv_infobuf_init(&t->buf, a, pl);
    }
    if (rc) {
        revl_trainer_free(t);
        return rc;
    }
    /* the optimiser sees this rank's slice of every full-length array, from index 0 */
    size_t lo = t->lo;
    t->pass = (rv_pass){.alloc = a, .fx = t->fx, .frac_bits = t->frac_bits,
                        .n_groups = n_groups, .offsets = t->offsets, .w = t->w + lo,
                        .wd = t->wd + lo, .grad = t->grad + lo, .dw = t->dw + lo,
                        .hv = t->hv + lo, .dir_a = t->dir_a + lo,
                        .dir_b = t->dir_b ? t->dir_b + lo : NULL, .buf = &t->buf,
                        .partial = t->partial, .n_slots = opt->n_slots};
    size_t sharded_extra = t->sharded ? (n_groups + 1) * sizeof(size_t) +
                                            t->n_blocks_all * sizeof *t->blocks_all +
                                            t->n_parts_all * opt->n_slots * sizeof(double)
                                      : 0;
    t->fixed_bytes = sizeof *t + opt->bytes(t->opt_self) + state_bytes + sharded_extra +
                     p * (sizeof(int64_t) + (t->dir_b ? 6 : 5) * sizeof(double)) +
                     pl * sizeof(int64_t) +
                     3 * nm * sizeof(double) + t->n_blocks * (sizeof *t->blocks + sizeof(double)) +
                     (t->n_parts + n_groups) * opt->n_slots * sizeof(double) +
                     n_kind_values * sizeof(double) + 2 * t->n_steps * sizeof(uint64_t) +
                     (t->vote ? 2 * (size_t)t->comm.size * sizeof(int64_t) : 0);
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

/* The two reading calls take a const handle (their shipped signature) but still take the in-use
 * guard: a second thread reading w or the counters while a step writes them would get a torn
 * mix. From the running call's own progress callback they answer (the trainer stands at the
 * step the callback is told). The trainer was allocated non-const, so writing its guard and
 * message is defined. */
int revl_trainer_weights(const revl_trainer *ct, double *w)
{
    if (!ct || !w)
        return REVL_ERR_INVALID;
    revl_trainer *t = (revl_trainer *)ct;
    int held = rv_trainer_enter_read(t, "revl_trainer_weights");
    if (held < 0)
        return REVL_ERR_STATE;
    for (size_t i = 0; i < t->n_params; i++)
        w[i] = rv_to_double(t->fx, t->w[i]);
    if (!held)
        t->busy = NULL;
    return REVL_OK;
}

int revl_trainer_get_stats(const revl_trainer *ct, revl_trainer_stats *out)
{
    /* a size never shipped (smaller, larger, garbage) is refused, as for every struct */
    if (!ct || !out || rv_struct_size_check(NULL, RV_STRUCT_TRAINER_STATS, out->struct_size))
        return REVL_ERR_INVALID;
    revl_trainer *t = (revl_trainer *)ct;
    int held = rv_trainer_enter_read(t, "revl_trainer_get_stats");
    if (held < 0)
        return REVL_ERR_STATE;
    out->steps_done = t->steps_done;
    out->buffer_bits = rv_infobuf_bits(&t->buf);
    out->buffer_bytes = rv_infobuf_bytes(&t->buf);
    out->peak_bytes = t->peak_bytes;
    out->last_loss = t->last_loss;
    if (!held)
        t->busy = NULL;
    return REVL_OK;
}

int rv_trainer_block_error(revl_trainer *t, size_t step, const char *pass)
{
    for (size_t b = 0; b < t->n_blocks; b++) {
        const rv_block *blk = &t->blocks[b];
        size_t i = blk->err_index + t->lo; /* as the caller numbers parameters */
        double x = blk->err_value;
        switch (blk->err) {
        case RV_OK:
            continue;
        case RV_GRAD_NOT_FINITE:
            return rv_fail(t->err, REVL_ERR_RANGE, "gradient is %s at step %zu, parameter %zu (%s)",
                           isnan(x) ? "NaN" : "infinite", step, i, pass);
        case RV_GRAD_RANGE:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "%s = %g outside the fixed-point range (|x| < 2^%d) "
                           "at step %zu, parameter %zu (%s)",
                           blk->err_what, x, blk->err_bound, step, i, pass);
        case RV_STATE_RANGE:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "%s left the fixed-point range (|%s| < 2^%d) at step %zu, "
                           "parameter %zu (%s)",
                           blk->err_what, blk->err_sym, blk->err_bound, step, i, pass);
        case RV_W_RANGE:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "weight left the fixed-point range (|w| < 2^%u) at step %zu, "
                           "parameter %zu (%s)",
                           63 - t->frac_bits, step, i, pass);
        case RV_HV_NOT_FINITE:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "Hessian-vector product is %s at step %zu, parameter %zu (%s)",
                           isnan(x) ? "NaN" : "infinite", step, i, pass);
        case RV_SINGULAR:
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "second moment s is 0 while %s = %g is not at step %zu, parameter %zu "
                           "(%s): the update's derivative in s is infinite there",
                           blk->err_what, x, step, i, pass);
        case RV_NOMEM:
            return rv_fail(t->err, REVL_ERR_NOMEM,
                           "no memory to grow the information buffer at step %zu (%s)", step, pass);
        }
    }
    return REVL_OK;
}

void rv_trainer_prepare(revl_trainer *t)
{
    const rv_optim *opt = t->opt;
    const double *values[REVL_HYPER_COUNT];
    for (size_t k = 0; k < opt->n_kinds; k++)
        values[k] = rv_schedule_values(t->sched, opt->kinds[k]);
    const double *clip = rv_schedule_values(t->sched, REVL_HYPER_CLIP);
    t->sched_hash = rv_trainer_schedule_hash(t);
    memset(t->bits_per_block, 0, t->n_blocks * sizeof *t->bits_per_block);
    /* what decides the bits besides the model's point: every rank of a data-parallel or
     * sharded run must agree on it, step by step */
    uint64_t run = RV_HASH_INIT;
    uint64_t shape[] = {t->n_params, t->n_steps, t->first_kept, t->frac_bits, t->n_groups,
                        (uint64_t)opt->id};
    run = rv_hash_u64s(run, shape, sizeof shape / sizeof shape[0]);
    for (size_t g = 0; g <= t->n_groups; g++)
        run = rv_hash_u64(run, t->offsets_all[g]);
    for (size_t step = 0; step < t->n_steps; step++) {
        t->agree[step] = rv_hash_u64(run, step);
        for (size_t g = 0; g < t->n_groups; g++) {
            size_t k = step * t->n_groups + g;
            for (size_t j = 0; j < opt->n_kinds; j++)
                t->hyper_values[j] = values[j][k];
            t->agree[step] = rv_hash_f64s(t->agree[step], t->hyper_values, opt->n_kinds);
            if (clip[k] != INFINITY) /* no clip: the hash of the runs before clipping */
                t->agree[step] = rv_hash_f64s(t->agree[step], &clip[k], 1);
            double bits = opt->prepare(t->opt_self, step, g, t->hyper_values);
            if (step < t->first_kept)
                continue;
            for (size_t b = 0; b < t->n_blocks; b++) {
                const rv_block *blk = &t->blocks[b];
                if (g < blk->g_first || g > blk->g_last)
                    continue;
                size_t i0, i1;
                rv_block_range(blk, t->offsets, g, &i0, &i1);
                t->bits_per_block[b] += bits * (double)(i1 - i0);
            }
        }
    }
}

/* Forward-only: each stack holds at most one chunk's words (RV_FWD_SINK), in place of the
 * kept steps' bits, so that no step allocates and the buffer never grows. */
static void reserve_sink(revl_trainer *t)
{
    for (size_t b = 0; b < t->n_blocks; b++) {
        size_t n = t->blocks[b].hi - t->blocks[b].lo;
        t->bits_per_block[b] = (double)(RV_WORD_BITS * RV_SINK_WORDS * (n < RV_CHUNK ? n : RV_CHUNK));
    }
}

/* Read the schedule into the optimiser's per-(step, group) constants and reserve the buffer for
 * the kept steps. */
static int prepare_steps(revl_trainer *t)
{
    const rv_optim *opt = t->opt;
    for (size_t k = 0; opt->check && k < t->n_steps * t->n_groups; k++) {
        char why[160];
        for (size_t j = 0; j < opt->n_kinds; j++)
            t->hyper_values[j] = rv_schedule_values(t->sched, opt->kinds[j])[k];
        if (opt->check(t->hyper_values, why, sizeof why))
            return rv_fail(t->err, REVL_ERR_INVALID, "revl_trainer_train: %s at step %zu, group %zu",
                           why, k / t->n_groups, k % t->n_groups);
    }
    int rc = rv_clip_check(t);
    if (rc)
        return rc;
    rv_trainer_prepare(t);
    if (t->forward_only)
        reserve_sink(t);
    if (rv_infobuf_reset(&t->buf, t->bits_per_block) != REVL_OK)
        return rv_fail(t->err, REVL_ERR_NOMEM, "no memory to reserve the information buffer");
    return REVL_OK;
}

/* Copy w and the optimiser's states to where the reverse pass must end. */
static void save_start(revl_trainer *t)
{
    memcpy(t->w_start, t->w + t->lo, t->n_local * sizeof *t->w);
    for (size_t k = 0; k < t->opt->n_state; k++) {
        rv_state_vec sv = t->opt->state(t->opt_self, k);
        memcpy(t->state_start[k], sv.data, t->n_local * sv.elem);
    }
}

int rv_trainer_enter(revl_trainer *t, const char *call)
{
    const char *running = NULL;
    if (!atomic_compare_exchange_strong(&t->busy, &running, call))
        return rv_fail(t->err, REVL_ERR_STATE,
                       "%s called while %s runs on the same trainer (from a callback, or another "
                       "thread?): refused, the running call is unchanged", call, running);
    if (t->progress)
        t->call_start = rv_now();
    return REVL_OK;
}

static int train(revl_trainer *t, const double *w0, const double *meta, int forward_only);

int revl_trainer_train(revl_trainer *t, const double *w0, const double *meta)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = rv_trainer_enter(t, "revl_trainer_train");
    if (rc)
        return rc;
    rc = train(t, w0, meta, 0);
    t->busy = NULL;
    return rc;
}

int revl_trainer_train_forward(revl_trainer *t, const double *w0, const double *meta)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = rv_trainer_enter(t, "revl_trainer_train_forward");
    if (rc)
        return rc;
    rc = train(t, w0, meta, 1);
    t->busy = NULL;
    return rc;
}

/* The checks of train's arguments (message in t->err), taking meta and w0 into t. */
static int train_inputs(revl_trainer *t, const double *w0, const double *meta)
{
    if (!w0)
        return rv_fail(t->err, REVL_ERR_INVALID, "%s: w0 is NULL", t->busy);
    if (t->n_meta && !meta)
        return rv_fail(t->err, REVL_ERR_INVALID,
                       "%s: meta is NULL but the model has %zu meta-parameters", t->busy,
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
        if (isnan(w0[i])) /* not "= nan is not finite": NaN said once */
            return rv_fail(t->err, REVL_ERR_RANGE, "w0[%zu] is NaN", i);
        if (!rv_to_fixed(t->fx, w0[i], &t->w[i]))
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "w0[%zu] = %g is %s the fixed-point range (|w| < 2^%u)", i, w0[i],
                           isfinite(w0[i]) ? "outside" : "not finite, so outside",
                           63 - t->frac_bits);
        t->wd[i] = rv_to_double(t->fx, t->w[i]);
    }
    return REVL_OK;
}

/* The hash of the whole run every rank of a sharded trainer must agree on. */
static uint64_t run_agreement(const revl_trainer *t)
{
    return rv_hash_u64s(RV_HASH_INIT, t->agree, t->n_steps);
}

/* t->busy names the call (train or train_forward) in the messages. */
static int train(revl_trainer *t, const double *w0, const double *meta, int forward_only)
{
    rv_clear(t->err);
    t->state = RV_FRESH;
    t->steps_done = 0;
    t->forward_only = forward_only;
    /* a sharded trainer's ranks vote before any other collective, on their arguments and on
     * the run (schedule, truncation, step count): a rank that differs fails every rank here */
    int rc = train_inputs(t, w0, meta);
    if (!rc)
        rc = prepare_steps(t);
    rc = rv_shard_agree(t, rc, rc ? 0 : run_agreement(t));
    if (rc)
        return rc;
    for (size_t k = 0; k < t->opt->n_state; k++) {
        rv_state_vec sv = t->opt->state(t->opt_self, k);
        memset(sv.data, 0, t->n_local * sv.elem);
    }
    if (t->first_kept == 0 && !forward_only)
        save_start(t);
    return rv_trainer_forward(t, 0);
}

/* With two threads or more asked for, a model below the size at which the blocks themselves
 * are split between threads (RV_THREADS_MIN_PARAMS) has the exact multiplies of each step run
 * on a second thread during the model's gradient (overlap.h); NULL when not, or when the
 * worker cannot be made (the step is then done in one pass, with the same bits). */
static rv_overlap *overlap_for(revl_trainer *t)
{
    if (t->threads < 2 || t->n_local >= RV_THREADS_MIN_PARAMS)
        return NULL;
    if (!t->overlap)
        t->overlap = rv_overlap_create(&t->alloc);
    return t->overlap;
}

int rv_trainer_forward(revl_trainer *t, size_t from)
{
    int rc, nt = rv_trainer_threads(t);
    const int fwd_only = t->forward_only;
    rv_overlap *ov = overlap_for(t);
    for (size_t step = from; step < t->n_steps; step++) {
        if (step == t->first_kept && step > 0 && !fwd_only)
            save_start(t);
        /* forward-only, the kept steps run the coder (the same bits) but drop its words */
        int keep = step < t->first_kept ? 0 : fwd_only ? RV_FWD_KEEP | RV_FWD_SINK : RV_FWD_KEEP;
        if (ov)
            rv_overlap_post(ov, t, step, RV_FWD_MUL | keep);
        double loss = NAN;
        t->model->agree = t->agree[step];
        rc = revl_model_grad(t->model, step, t->wd, t->n_meta ? t->meta : NULL, t->grad, &loss);
        t->model->agree = 0;
        if (ov)
            rv_overlap_finish(ov); /* every block multiplied; the worker waits for the next */
        if (rc)
            return rv_fail(t->err, rc, "%s (forward)", revl_model_last_error(t->model));
        if (!fwd_only)
            t->fingerprint[step] = rv_fingerprint(t->grad, t->n_params);
        if (rv_clip_active(t, step))
            rv_clip_grad(t, step);
        /* overlapped, the update stays on this thread: splitting it between two (OpenMP, or
         * the worker again) measured no faster at these sizes (bench_overlap) */
        int phases = ov ? RV_FWD_UPDATE : RV_FWD_MUL | RV_FWD_UPDATE, ntu = ov ? 1 : nt;
        long nb = (long)t->n_blocks;
#pragma omp parallel for schedule(static) num_threads(ntu) if (ntu > 1)
        for (long b = 0; b < nb; b++)
            t->opt->forward_block(t->opt_self, &t->pass, step, &t->blocks[b], phases | keep);
        rc = rv_shard_vote(t, rv_trainer_block_error(t, step, "forward"));
        if (!rc)
            rc = rv_shard_gather_w(t);
        if (rc)
            return rc;
        t->last_loss = loss;
        t->steps_done = step + 1;
        if (t->ckpt_path && !fwd_only &&
            (t->steps_done % t->ckpt_every == 0 || t->steps_done == t->n_steps) &&
            (rc = rv_trainer_save_now(t, t->ckpt_path)) != REVL_OK)
            return rc;
        if ((rc = rv_trainer_progress(t, step + 1, 0, step + 1 == t->n_steps, loss)) != REVL_OK)
            return rc;
    }
    rv_trainer_note_peak(t);
    t->state = fwd_only ? RV_FORWARD_ONLY : RV_TRAINED;
    return REVL_OK;
}
