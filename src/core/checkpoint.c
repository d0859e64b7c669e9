/* checkpoint.c: a trainer's trajectory so far, to a file and back (docs/file-formats.md), so
 * that training continues, or the reverse pass runs, in another process with the bits of an
 * uninterrupted run. Everything the forward loop carries from one step to the next is saved
 * as exact integers: w, the optimiser's state vectors, the information buffer, the gradient
 * fingerprints, the start copies for the reverse pass, the step, the meta values. The
 * optimiser's per-(step, group) constants are not: they follow from the schedule values the
 * trajectory was trained with, which the file pins by a hash (taken when they were read, so a
 * schedule changed after training does not change it), and are recomputed on load. */
#include "base/ckptfile.h"
#include "core/shard.h"
#include "core/trainer.h"
#include "exact/wide.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char MAGIC[8] = {'R', 'E', 'V', 'L', 'C', 'K', 'P', 'T'};
#define VERSION 2u /* 2: a checkpoint taken during the reverse pass (RV_REVERSING) */
#define SHARDED 3u /* 3: one rank's share of a sharded trainer's forward checkpoint */
#define SHARDED_REV 4u /* 4: one rank's share of a sharded trainer's mid-reverse checkpoint */
#define OLDEST 1u  /* version 1: the forward checkpoints, still written and read as ever */
#define WHAT "revl trainer checkpoint"

/* The model's sizes and groups. */
static uint64_t model_hash(const revl_trainer *t)
{
    uint64_t h = rv_hash_u64(RV_HASH_INIT, t->n_params);
    h = rv_hash_u64(h, t->n_meta);
    h = rv_hash_u64(h, t->n_groups);
    for (size_t g = 0; g <= t->n_groups; g++)
        h = rv_hash_u64(h, t->offsets[g]);
    return h;
}

/* The schedule's values of every kind the optimiser reads, bit for bit, as they are now. */
uint64_t rv_trainer_schedule_hash(const revl_trainer *t)
{
    uint64_t h = rv_hash_u64(RV_HASH_INIT, t->n_steps);
    h = rv_hash_u64(h, t->n_groups);
    size_t n = t->n_steps * t->n_groups, shipped = t->opt->n_kinds_shipped;
    for (size_t k = 0; k < t->opt->n_kinds; k++) {
        const double *v = rv_schedule_values(t->sched, t->opt->kinds[k]);
        int zero = 1; /* a kind added later, all 0: the file of the optimiser without it */
        for (size_t j = 0; shipped && k >= shipped && j < n && zero; j++)
            zero = v[j] == 0;
        if (shipped && k >= shipped && zero)
            continue;
        h = rv_hash_u64(h, (uint64_t)t->opt->kinds[k]);
        h = rv_hash_f64s(h, v, n);
    }
    /* the clip only when one is finite: a run without clipping hashes as before it existed */
    if (rv_clip_in_schedule(t))
        h = rv_hash_f64s(rv_hash_u64(h, REVL_HYPER_CLIP),
                         rv_schedule_values(t->sched, REVL_HYPER_CLIP), t->n_steps * t->n_groups);
    return h;
}

/* The hash of the whole run the ranks agreed on when training (trainer.c's run_agreement). */
static uint64_t run_hash(const revl_trainer *t)
{
    return rv_hash_u64s(RV_HASH_INIT, t->agree, t->n_steps);
}

/* The int64 words of w as a hash (w full-length: every rank's, all-gathered). */
static uint64_t w_hash(const int64_t *w, size_t n)
{
    return rv_hash_u64s(RV_HASH_INIT, (const uint64_t *)w, n);
}

/* A sharded trainer's rank r of R keeps its share in <path>.rank<r>-of-<R> (NULL: no memory,
 * or the path too long). */
static char *rank_path(revl_trainer *t, const char *path)
{
    char sfx[64];
    snprintf(sfx, sizeof sfx, ".rank%d-of-%d", t->comm.rank, t->comm.size);
    size_t n = strlen(path), k = strlen(sfx);
    char *p = n + k <= RV_CKPT_PATH_MAX ? rv_alloc(&t->alloc, n + k + 1) : NULL;
    if (p) {
        memcpy(p, path, n);
        memcpy(p + n, sfx, k + 1);
    }
    return p;
}

/* What the reverse pass carries besides the trajectory (read_reverse reads it back). A sharded
 * trainer's rank holds dw and the optimiser's per-parameter adjoints only for its share (the
 * optimiser is made for n_local parameters, dw is gathered only at the end); the rest (d_meta,
 * the per-group adjoints, the hypergradients so far) every rank holds alike. */
static void put_reverse(rv_ckpt_writer *w, revl_trainer *t)
{
    rv_ckpt_put_u64(w, t->rev_kinds);
    rv_ckpt_put_u64(w, t->rev_inputs);
    rv_ckpt_put_f64(w, t->dfdw_max);
    rv_ckpt_put_f64s(w, t->dw + t->lo, t->n_local);
    rv_ckpt_put_f64s(w, t->dmeta, t->n_meta);
    size_t count = 0, n;
    while (t->opt->adjoint(t->opt_self, count, &n))
        count++;
    rv_ckpt_put_u64(w, count);
    for (size_t k = 0; k < count; k++) {
        double *a = t->opt->adjoint(t->opt_self, k, &n);
        rv_ckpt_put_u64(w, n);
        rv_ckpt_put_f64s(w, a, n);
    }
    size_t n_sg = t->n_steps * t->n_groups;
    for (size_t k = 0; k <= t->opt->n_kinds; k++) /* and the clip's, at n_kinds */
        if (t->rev_kinds >> k & 1)
            rv_ckpt_put_f64s(w, t->d_kinds + k * n_sg, n_sg);
}

static int save_file(revl_trainer *t, const char *path, int reverse);

int rv_trainer_save_now(revl_trainer *t, const char *path)
{
    return save_file(t, path, 0);
}

int rv_trainer_save_reverse(revl_trainer *t, const char *path)
{
    return save_file(t, path, 1);
}

static void put_body(rv_ckpt_writer *w, revl_trainer *t, int reverse);
static int save_sharded(revl_trainer *t, const char *path, int rc, int reverse);

static int save_file(revl_trainer *t, const char *path, int reverse)
{
    if (t->sharded) /* all its callers reach here on every rank at once */
        return save_sharded(t, path, REVL_OK, reverse);
    rv_ckpt_writer *w = rv_alloc(&t->alloc, sizeof *w);
    if (!w)
        return rv_fail(t->err, REVL_ERR_NOMEM, "no memory to write a checkpoint");
    /* a forward checkpoint is written as version 1, byte for byte what earlier libraries
     * wrote and read; only a mid-reverse one needs version 2 */
    int rc = rv_ckpt_create(w, path, MAGIC, reverse ? VERSION : OLDEST, t->err);
    if (!rc) {
        put_body(w, t, reverse);
        rc = rv_ckpt_commit(w, t->err);
    }
    rv_free(&t->alloc, w);
    return rc;
}

/* Each rank writes its share to its temporary, the ranks vote, and only when every rank's is
 * on disk does any rename its temporary into place: a failure anywhere leaves every rank's
 * previous file, and every rank returns the lowest failing rank's status and message. rc: a
 * failure found before (every rank still joins both votes); reverse: a mid-reverse share. */
static int save_sharded(revl_trainer *t, const char *path, int rc, int reverse)
{
    char *rp = NULL;
    rv_ckpt_writer *w = NULL;
    int written = 0;
    if (!rc && !path)
        rc = rv_fail(t->err, REVL_ERR_INVALID, "revl_trainer_save: path is NULL");
    if (!rc && (!(rp = rank_path(t, path)) || !(w = rv_alloc(&t->alloc, sizeof *w))))
        rc = rv_fail(t->err, rp || strlen(path) + 32 <= RV_CKPT_PATH_MAX ? REVL_ERR_NOMEM
                                                                          : REVL_ERR_INVALID,
                     "no memory for, or too long a path of, this rank's checkpoint");
    if (!rc && !(rc = rv_ckpt_create(w, rp, MAGIC, reverse ? SHARDED_REV : SHARDED, t->err))) {
        put_body(w, t, reverse);
        written = !(rc = rv_ckpt_finish(w, t->err));
    }
    rc = rv_shard_vote(t, rc);
    if (written)
        rc = rc ? (rv_ckpt_abandon(w), rc) : rv_ckpt_place(w, t->err);
    /* a rename failing after every rank wrote (almost never) leaves the ranks' files of
     * different steps, which their loader refuses; every rank says so now */
    rc = rv_shard_vote(t, rc);
    rv_free(&t->alloc, w);
    rv_free(&t->alloc, rp);
    return rc;
}

/* Everything after the magic and version. A sharded trainer's rank writes its share of w, of
 * the start copies, the optimiser's states and the information buffer, and after the sizes
 * what identifies its share and the run (read_shard). */
static void put_body(rv_ckpt_writer *w, revl_trainer *t, int reverse)
{
    const rv_optim *opt = t->opt;
    size_t p = t->n_local; /* this rank's share (n_params unsharded) */
    rv_ckpt_put_name(w, opt->name);
    uint64_t sizes[] = {t->n_params, t->n_meta, t->n_steps, t->n_groups, t->frac_bits,
                        t->first_kept, opt->n_state, t->n_blocks};
    rv_ckpt_put_u64s(w, sizes, sizeof sizes / sizeof sizes[0]);
    for (size_t k = 0; k < opt->n_state; k++)
        rv_ckpt_put_u64(w, opt->state(t->opt_self, k).elem);
    if (t->sharded) {
        uint64_t shard[] = {(uint64_t)t->comm.rank, (uint64_t)t->comm.size, t->lo, t->n_local,
                            t->b_lo, t->n_blocks_all, run_hash(t), w_hash(t->w, t->n_params)};
        rv_ckpt_put_u64s(w, shard, sizeof shard / sizeof shard[0]);
    }
    rv_ckpt_put_u64(w, model_hash(t));
    rv_ckpt_put_u64(w, t->sched_hash); /* the values trained with, not the schedule's now */
    rv_ckpt_put_u64(w, reverse                          ? RV_REVERSING
                       : t->steps_done == t->n_steps ? RV_TRAINED
                                                     : RV_PARTIAL);
    rv_ckpt_put_u64(w, t->steps_done);
    rv_ckpt_put_f64(w, t->last_loss);
    rv_ckpt_put_f64s(w, t->meta, t->n_meta);
    rv_ckpt_put_ints(w, t->w + t->lo, 8, p);
    rv_ckpt_put_ints(w, t->w_start, 8, p);
    for (size_t k = 0; k < opt->n_state; k++) {
        rv_state_vec sv = opt->state(t->opt_self, k);
        rv_ckpt_put_ints(w, sv.data, sv.elem, p);
        rv_ckpt_put_ints(w, t->state_start[k], sv.elem, p);
    }
    rv_ckpt_put_u64s(w, t->fingerprint, t->n_steps);
    rv_ckpt_put_u64s(w, t->buf.state, p);
    for (size_t b = 0; b < t->n_blocks; b++) {
        const rv_stack *s = &t->buf.stacks[b];
        rv_ckpt_put_u64(w, s->len);
        rv_ckpt_put_u64(w, s->deficit);
        rv_ckpt_put_u64(w, (uint64_t)s->broken);
        rv_ckpt_put_u16s(w, s->words, s->len);
    }
    if (reverse)
        put_reverse(w, t);
}

static int save(revl_trainer *t, const char *path);

/* Refused (REVL_ERR_STATE, the running call unharmed) from a callback of the trainer's own
 * train or hypergrad: it would read or overwrite the trajectory in the middle of a step. */
int revl_trainer_save(revl_trainer *t, const char *path)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = rv_trainer_enter(t, "revl_trainer_save");
    if (rc)
        return rc;
    rc = save(t, path);
    t->busy = NULL;
    return rc;
}

static int save_checks(revl_trainer *t, const char *path);

/* A sharded trainer's ranks vote on the checks with the save itself (save_sharded). */
static int save(revl_trainer *t, const char *path)
{
    int rc = save_checks(t, path);
    if (t->sharded)
        return save_sharded(t, path, rc, 0);
    return rc ? rc : rv_trainer_save_now(t, path);
}

static int save_checks(revl_trainer *t, const char *path)
{
    if (!path)
        return rv_fail(t->err, REVL_ERR_INVALID, "revl_trainer_save: path is NULL");
    if (t->state == RV_REVERSING)
        return rv_fail(t->err, REVL_ERR_STATE,
                       "revl_trainer_save: a checkpoint taken mid-reverse is loaded; continue it "
                       "with revl_trainer_hypergrad_resume (or train anew)");
    if (t->state == RV_FORWARD_ONLY)
        return rv_fail(t->err, REVL_ERR_STATE,
                       "revl_trainer_save: trained forward-only: nothing to reverse or resume "
                       "from; use revl_trainer_train");
    if (t->state != RV_TRAINED && t->state != RV_PARTIAL)
        return rv_fail(t->err, REVL_ERR_STATE,
                       "revl_trainer_save: the trainer holds no trajectory (train it, or load "
                       "a checkpoint, first; a reversed trainer stands at w0 again)");
    rv_clear(t->err);
    return REVL_OK;
}

/* ---- loading: the body is walked twice over the file in memory, first only checking (into
 * nothing), then, once every check passed and every allocation succeeded, into the trainer. */

static int bad(revl_trainer *t, const char *path, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return rv_fail(t->err, REVL_ERR_IO, PATH_FMT ": %s", PATH_ARG(path), why);
}

/* n elements of elem bytes into dst, or (dst NULL) past them. */
static void take_ints(rv_ckpt_reader *r, void *dst, size_t elem, size_t n)
{
    if (!rv_ckpt_has(r, n, elem)) {
        r->short_read = 1;
        return;
    }
    if (dst)
        rv_ckpt_get_ints(r, dst, elem, n);
    else
        r->pos += n * elem;
}

/* The first of the n wide states at the cursor outside the range every sum keeps them in
 * (rv_wide_in_range: beyond it a later sum could overflow), or n; the cursor stays. Past the end
 * of a file cut short the reader gives 0, in range: take_ints reports the cut. */
static size_t wide_outside(const rv_ckpt_reader *r, size_t n)
{
    rv_ckpt_reader peek = *r;
    for (size_t i = 0; i < n; i++) {
        rv_wide x;
        rv_ckpt_get_ints(&peek, &x, sizeof x, 1);
        if (!rv_wide_in_range(x))
            return i;
    }
    return n;
}

/* What a sharded trainer's ranks compare before any applies its file: the run's hash and full
 * w's hash (from the header), and a hash of what every rank's file holds alike (meta, last
 * loss, fingerprints, state, step; read_body's check pass adds to it); w: this rank's share of
 * w goes to w + lo (full-length, the others' shares gathered into it before w's hash is
 * checked). */
typedef struct shard_seen {
    uint64_t run, w_hash, alike;
    int64_t *w;
} shard_seen;

/* The shard section of a sharded trainer's file: it must be this rank's share of this
 * division of the parameters. */
static int read_shard(revl_trainer *t, rv_ckpt_reader *r, shard_seen *v)
{
    static const char *const what[] = {"rank", "ranks", "first parameter", "parameters",
                                       "first block", "blocks in all"};
    uint64_t mine[] = {(uint64_t)t->comm.rank, (uint64_t)t->comm.size, t->lo, t->n_local,
                       t->b_lo, t->n_blocks_all};
    for (size_t k = 0; k < sizeof mine / sizeof mine[0]; k++) {
        uint64_t x = rv_ckpt_get_u64(r);
        if (x != mine[k])
            return bad(t, r->path, "this rank's share has %llu as its %s; the file %llu",
                       (unsigned long long)mine[k], what[k], (unsigned long long)x);
    }
    v->run = rv_ckpt_get_u64(r);
    v->w_hash = rv_ckpt_get_u64(r);
    return REVL_OK;
}

/* The header: everything that says whether the file belongs to this trainer (v: a sharded
 * trainer's, to read its shard section into). */
static int read_header(revl_trainer *t, rv_ckpt_reader *r, uint64_t *state, uint64_t *steps,
                       shard_seen *seen)
{
    const char *path = r->path;
    const rv_optim *opt = t->opt;
    char name[17];
    if (!rv_ckpt_get_name(r, opt->name, name))
        return rv_fail(t->err, REVL_ERR_IO, PATH_FMT ": a checkpoint of a %s trainer; this "
                       "trainer uses %s", PATH_ARG(path), name, opt->name);
    static const char *const what[] = {"parameters", "meta-parameters", "steps", "groups",
                                       "fractional bits", "first kept step (truncate)",
                                       "optimiser state vectors", "blocks"};
    uint64_t mine[] = {t->n_params, t->n_meta, t->n_steps, t->n_groups, t->frac_bits,
                       t->first_kept, opt->n_state, t->n_blocks};
    for (size_t k = 0; k < sizeof mine / sizeof mine[0]; k++) {
        uint64_t v = rv_ckpt_get_u64(r);
        if (v != mine[k]) {
            return bad(t, path, "checkpoint has %llu %s; this trainer has %llu",
                       (unsigned long long)v, what[k], (unsigned long long)mine[k]);
        }
    }
    for (size_t k = 0; k < opt->n_state; k++) {
        uint64_t v = rv_ckpt_get_u64(r), e = opt->state(t->opt_self, k).elem;
        if (v != e)
            return bad(t, path, "state vector element of %llu bytes; this trainer's has %llu",
                       (unsigned long long)v, (unsigned long long)e);
    }
    if ((r->version >= SHARDED) != t->sharded)
        return bad(t, path, t->sharded ? "not a sharded trainer's checkpoint (version %u); this "
                   "trainer is sharded" : "a sharded trainer's share (version %u); this trainer "
                   "is not sharded", (unsigned)r->version);
    int rc = t->sharded ? read_shard(t, r, seen) : REVL_OK;
    if (rc)
        return rc;
    if (rv_ckpt_get_u64(r) != model_hash(t))
        return rv_fail(t->err, REVL_ERR_IO, PATH_FMT ": written for a model with other groups "
                       "(its sizes' hash differs)", PATH_ARG(path));
    if (rv_ckpt_get_u64(r) != rv_trainer_schedule_hash(t))
        return rv_fail(t->err, REVL_ERR_IO, PATH_FMT ": written with other schedule values "
                       "than this trainer's schedule now holds", PATH_ARG(path));
    *state = rv_ckpt_get_u64(r);
    *steps = rv_ckpt_get_u64(r);
    /* versions 1 and 3 were written by forward passes only, 2 and 4 by reverse passes only */
    int rev_file = r->version == VERSION || r->version == SHARDED_REV;
    int reversing = *state == RV_REVERSING && rev_file;
    if (*state != RV_PARTIAL && *state != RV_TRAINED && !reversing)
        return bad(t, path, "invalid trainer state %llu", (unsigned long long)*state);
    if (rev_file && !reversing) /* one way to write each file */
        return bad(t, path, "a version %u file holds a checkpoint taken mid-reverse, not state %llu",
                   (unsigned)r->version, (unsigned long long)*state);
    if (reversing) { /* saved after a step back, never after the last one */
        if (*steps <= t->first_kept || *steps >= t->n_steps)
            return bad(t, path, "invalid step count %llu of %zu in the reverse pass",
                       (unsigned long long)*steps, t->n_steps);
    } else if (*steps > t->n_steps || (*state == RV_TRAINED) != (*steps == t->n_steps)) {
        return bad(t, path, "invalid step count %llu of %zu", (unsigned long long)*steps, t->n_steps);
    }
    if (r->short_read)
        return bad(t, path, "header cut short");
    return REVL_OK;
}

/* The body after the header; apply = 0 only checks and records each stack's length in len,
 * apply = 1 reads into the trainer, with words[b] the new array for stack b. */
static int read_body(revl_trainer *t, rv_ckpt_reader *r, uint64_t *len_out, rv_word **words,
                     int apply, shard_seen *v)
{
    const char *path = r->path;
    size_t p = t->n_local; /* n_params unsharded */
    double last_loss = rv_ckpt_get_f64(r);
    uint64_t alike = rv_hash_f64s(v ? v->alike : 0, &last_loss, 1);
    for (size_t j = 0; j < t->n_meta; j++) {
        double m = rv_ckpt_get_f64(r);
        if (!isfinite(m))
            return bad(t, path, "meta[%zu] is not finite", j);
        alike = rv_hash_f64s(alike, &m, 1);
        if (apply)
            t->meta[j] = m;
    }
    take_ints(r, apply ? t->w + t->lo : v ? v->w + t->lo : NULL, 8, p);
    take_ints(r, apply ? t->w_start : NULL, 8, p);
    for (size_t k = 0; k < t->opt->n_state; k++) {
        rv_state_vec sv = t->opt->state(t->opt_self, k);
        for (int start = 0; start < 2; start++) {
            size_t i = sv.elem == sizeof(rv_wide) ? wide_outside(r, p) : p;
            if (i < p)
                return bad(t, path, "%sstate %s of parameter %zu out of range (|x| >= 2^126)",
                           start ? "start " : "", sv.name, t->lo + i);
            take_ints(r, apply ? (start ? t->state_start[k] : sv.data) : NULL, sv.elem, p);
        }
    }
    if (v) /* check pass: the same in every rank's file */
        for (size_t s = 0; s < t->n_steps; s++)
            alike = rv_hash_u64(alike, rv_ckpt_get_u64(r));
    else
        take_ints(r, apply ? t->fingerprint : NULL, 8, t->n_steps);
    if (!rv_ckpt_has(r, p, 8))
        return bad(t, path, "cut short before the information buffer");
    for (size_t i = 0; i < p; i++) {
        uint64_t st = rv_ckpt_get_u64(r);
        /* a coder state outside [2^47, 2^63) would make decoding loop or lose bits */
        if (st < RV_STATE_LOW || st >> 63)
            return bad(t, path, "coder state %llu of parameter %zu out of range", (unsigned long long)st, i);
        if (apply)
            t->buf.state[i] = st;
    }
    for (size_t b = 0; b < t->n_blocks; b++) {
        uint64_t len = rv_ckpt_get_u64(r), deficit = rv_ckpt_get_u64(r);
        uint64_t broken = rv_ckpt_get_u64(r);
        if (r->short_read || !rv_ckpt_has(r, len, sizeof(rv_word)))
            return bad(t, path, "cut short in stack %zu (%llu words)", b, (unsigned long long)len);
        if (broken > 1 || (deficit && len))
            return bad(t, path, "stack %zu is inconsistent (broken %llu, deficit %llu with %llu words)",
                       b, (unsigned long long)broken, (unsigned long long)deficit,
                       (unsigned long long)len);
        if (!apply) {
            len_out[b] = len;
            r->pos += len * sizeof(rv_word);
            continue;
        }
        rv_stack *s = &t->buf.stacks[b];
        rv_ckpt_get_u16s(r, words[b], len);
        rv_free(&t->alloc, s->words);
        s->words = words[b];
        words[b] = NULL;
        s->cap = len + len / 4 + 64;
        s->len = len;
        s->deficit = deficit;
        s->broken = (int)broken;
        s->nomem = 0;
    }
    if (r->short_read)
        return bad(t, path, "cut short");
    if (v)
        v->alike = alike;
    if (apply) {
        t->last_loss = last_loss;
        for (size_t i = 0; i < t->n_params; i++) /* every rank's share: w is full-length */
            t->wd[i] = rv_to_double(t->fx, t->w[i]);
    }
    return REVL_OK;
}

/* n doubles into dst, or (dst NULL) past them. */
static void take_f64s(rv_ckpt_reader *r, double *dst, size_t n)
{
    if (!rv_ckpt_has(r, n, 8))
        r->short_read = 1;
    else if (dst)
        rv_ckpt_get_f64s(r, dst, n);
    else
        r->pos += n * 8;
}

/* h with the n 8-byte words read at `at` (already checked to be there). */
static uint64_t hash_words(const rv_ckpt_reader *r, size_t at, size_t n, uint64_t h)
{
    rv_ckpt_reader c = *r;
    c.pos = at;
    for (size_t i = 0; i < n; i++)
        h = rv_hash_u64(h, rv_ckpt_get_u64(&c));
    return h;
}

/* A mid-reverse checkpoint's section after the body (put_reverse); apply as read_body's; v (a
 * sharded trainer's check pass): what every rank's file holds alike goes into v->alike. */
static int read_reverse(revl_trainer *t, rv_ckpt_reader *r, int apply, shard_seen *v)
{
    const char *path = r->path;
    const rv_optim *opt = t->opt;
    uint64_t kinds = rv_ckpt_get_u64(r), inputs = rv_ckpt_get_u64(r);
    double dfdw_max = rv_ckpt_get_f64(r);
    if (kinds >> (opt->n_kinds + 1)) /* its kinds and the clip */
        return bad(t, path, "hypergradients of kinds %#llx; a %s schedule has %zu kinds and clip",
                   (unsigned long long)kinds, opt->name, opt->n_kinds);
    if (!(dfdw_max >= 0) || !isfinite(dfdw_max))
        return bad(t, path, "invalid largest |dfdw| %g", dfdw_max);
    take_f64s(r, apply ? t->dw + t->lo : NULL, t->n_local);
    size_t dmeta_at = r->pos;
    take_f64s(r, apply ? t->dmeta : NULL, t->n_meta);
    size_t count = 0, n;
    while (opt->adjoint(t->opt_self, count, &n))
        count++;
    uint64_t x = rv_ckpt_get_u64(r);
    if (!r->short_read && x != count)
        return bad(t, path, "%llu adjoint arrays; a %s trainer's reverse pass has %zu",
                   (unsigned long long)x, opt->name, count);
    for (size_t k = 0; k < count && !r->short_read; k++) {
        double *a = opt->adjoint(t->opt_self, k, &n);
        if ((x = rv_ckpt_get_u64(r)) != n && !r->short_read)
            return bad(t, path, "adjoint array %zu has %llu entries; this trainer's has %zu", k,
                       (unsigned long long)x, n);
        take_f64s(r, apply ? a : NULL, n);
    }
    size_t n_sg = t->n_steps * t->n_groups, kinds_at = r->pos;
    for (size_t k = 0; k <= opt->n_kinds; k++)
        if (kinds >> k & 1)
            take_f64s(r, apply ? t->d_kinds + k * n_sg : NULL, n_sg);
    if (r->short_read)
        return bad(t, path, "cut short in the reverse pass's adjoints");
    if (v) { /* the pass's inputs, d_meta and the hypergradients so far: every rank's alike */
        uint64_t h = rv_hash_u64(rv_hash_u64(v->alike, kinds), inputs);
        h = rv_hash_f64s(h, &dfdw_max, 1);
        h = hash_words(r, dmeta_at, t->n_meta, h);
        v->alike = hash_words(r, kinds_at, (r->pos - kinds_at) / 8, h);
    }
    if (apply) {
        t->rev_kinds = kinds;
        t->rev_inputs = inputs;
        t->dfdw_max = dfdw_max;
    }
    return REVL_OK;
}

/* The body, the reverse section of a mid-reverse checkpoint, and nothing after them. */
static int read_all(revl_trainer *t, rv_ckpt_reader *r, uint64_t state, uint64_t *len_out,
                    rv_word **words, int apply, shard_seen *v)
{
    int rc = read_body(t, r, len_out, words, apply, v);
    if (!rc && state == RV_REVERSING)
        rc = read_reverse(t, r, apply, v);
    if (!rc && r->pos != r->end)
        return bad(t, r->path, "%zu bytes of unknown data after the body", r->end - r->pos);
    return rc;
}

static int load(revl_trainer *t, const char *path);

/* Refused from the trainer's own callbacks, as revl_trainer_save. */
int revl_trainer_load(revl_trainer *t, const char *path)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = rv_trainer_enter(t, "revl_trainer_load");
    if (rc)
        return rc;
    rc = load(t, path);
    t->busy = NULL;
    return rc;
}

static int agree_files(revl_trainer *t, const char *path, int rc, shard_seen *v,
                       uint64_t state, uint64_t steps);

/* A sharded trainer's ranks each read their own file (rank_path) and check it; they vote, agree
 * that the files are of one save (agree_files), and only then does any rank apply its own. */
static int load(revl_trainer *t, const char *path)
{
    shard_seen seen = {0}, *v = t->sharded ? &seen : NULL;
    char *rp = NULL;
    rv_ckpt_reader r;
    int rc = REVL_OK, opened = 0;
    uint64_t state = 0, steps = 0;
    rv_word **words = rv_calloc(&t->alloc, t->n_blocks, sizeof *words);
    uint64_t *len = rv_calloc(&t->alloc, t->n_blocks, sizeof *len);
    rv_clear(t->err);
    if (!path)
        rc = rv_fail(t->err, REVL_ERR_INVALID, "revl_trainer_load: path is NULL");
    else if (revl_schedule_n_steps(t->sched) != t->n_steps ||
             revl_schedule_n_groups(t->sched) != t->n_groups)
        rc = rv_fail(t->err, REVL_ERR_STATE, "the schedule changed shape since the trainer was made");
    else if (!words || !len || (v && !(v->w = rv_calloc(&t->alloc, t->n_params, sizeof *v->w))))
        rc = rv_fail(t->err, REVL_ERR_NOMEM, "no memory to load " PATH_FMT, PATH_ARG(path));
    else if (v && !(rp = rank_path(t, path)))
        rc = rv_fail(t->err, strlen(path) + 32 > RV_CKPT_PATH_MAX ? REVL_ERR_INVALID : REVL_ERR_NOMEM,
                     "no memory for, or too long a path of, this rank's checkpoint");
    if (!rc) {
        rc = rv_ckpt_open_versions(&r, &t->alloc, rp ? rp : path, MAGIC, WHAT, OLDEST,
                                   SHARDED_REV, t->err); /* read_header says whose a file is */
        opened = !rc;
    }
    if (!rc)
        rc = read_header(t, &r, &state, &steps, v);
    size_t body = opened ? r.pos : 0;
    if (!rc)
        rc = read_all(t, &r, state, len, NULL, 0, v);
    for (size_t b = 0; !rc && b < t->n_blocks; b++)
        if (!(words[b] = rv_calloc(&t->alloc, len[b] + len[b] / 4 + 64, sizeof(rv_word))))
            rc = rv_fail(t->err, REVL_ERR_NOMEM, "no memory for the information buffer of "
                         PATH_FMT, PATH_ARG(path));
    if (v)
        rc = agree_files(t, path, rc, v, state, steps);
    if (!rc) {
        if (v) /* every rank's share; this rank's own written again by read_all */
            memcpy(t->w, v->w, t->n_params * sizeof *t->w);
        r.pos = body;
        r.short_read = 0;
        rc = read_all(t, &r, state, NULL, words, 1, NULL); /* checked above: cannot fail */
        t->state = (int)state;
        t->steps_done = (size_t)steps;
        if ((rc = rv_clip_check(t)) != REVL_OK)
            t->state = RV_FRESH;
    }
    if (!rc) {
        rv_trainer_prepare(t);
        rv_trainer_note_peak(t);
    }
    for (size_t b = 0; words && b < t->n_blocks; b++)
        rv_free(&t->alloc, words[b]);
    rv_free(&t->alloc, words);
    rv_free(&t->alloc, len);
    rv_free(&t->alloc, seen.w);
    rv_free(&t->alloc, rp);
    if (opened)
        rv_ckpt_close(&r);
    return rc;
}

/* Every rank joins: the vote on rc (the lowest failing rank's status and message to all); then
 * that every rank's file is of the same save (run, step, meta, fingerprints, w's hash); then
 * that the shares, gathered, make the w whose hash the files hold. */
static int agree_files(revl_trainer *t, const char *path, int rc, shard_seen *v,
                       uint64_t state, uint64_t steps)
{
    rc = rv_shard_vote(t, rc);
    if (rc)
        return rc;
    uint64_t word = rv_hash_u64(rv_hash_u64(v->alike, state), steps);
    word = rv_hash_u64(rv_hash_u64(word, v->run), v->w_hash);
    rc = rv_shard_agree(t, REVL_OK, word);
    if (rc == REVL_ERR_INVALID) { /* the words differ: t->vote holds them after the status words */
        size_t R = (size_t)t->comm.size, q = 1;
        while (q + 1 < R && t->vote[R + q] == t->vote[R])
            q++;
        return rv_fail(t->err, REVL_ERR_IO, PATH_FMT ": rank %zu's file is not of the same save "
                       "as rank 0's (another run or step)", PATH_ARG(path), q);
    }
    if (!rc)
        rc = rv_shard_gather(t, v->w);
    if (!rc && w_hash(v->w, t->n_params) != v->w_hash)
        rc = rv_fail(t->err, REVL_ERR_IO, PATH_FMT ": the ranks' shares of w are not the w "
                     "their files were saved with", PATH_ARG(path));
    return rv_shard_vote(t, rc);
}

static int train_resume(revl_trainer *t);

/* Refused from the trainer's own callbacks, as revl_trainer_save. */
int revl_trainer_train_resume(revl_trainer *t)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = rv_trainer_enter(t, "revl_trainer_train_resume");
    if (rc)
        return rc;
    rc = train_resume(t);
    t->busy = NULL;
    return rc;
}

static int train_resume(revl_trainer *t)
{
    if (t->state != RV_PARTIAL)
        return rv_fail(t->err, REVL_ERR_STATE,
                       "revl_trainer_train_resume: no partial training to continue (load a "
                       "checkpoint taken mid-training first)");
    if (revl_schedule_n_steps(t->sched) != t->n_steps ||
        revl_schedule_n_groups(t->sched) != t->n_groups)
        return rv_fail(t->err, REVL_ERR_STATE, "the schedule changed shape since the trainer was made");
    rv_clear(t->err);
    t->state = RV_FRESH; /* a failed step leaves a trainer that must be trained again */
    t->forward_only = 0; /* a checkpoint is always of a trajectory that reverses */
    return rv_trainer_forward(t, t->steps_done);
}

static int set_checkpoint(revl_trainer *t, const char *path, size_t every);

int revl_trainer_set_checkpoint(revl_trainer *t, const char *path, size_t every)
{
    if (!t)
        return REVL_ERR_INVALID;
    /* the path is what a running train's saves read: not freed under them */
    int rc = rv_trainer_enter(t, "revl_trainer_set_checkpoint");
    if (rc)
        return rc;
    rc = set_checkpoint(t, path, every);
    t->busy = NULL;
    return rc;
}

static int set_checkpoint(revl_trainer *t, const char *path, size_t every)
{
    if (path && every == 0)
        return rv_fail(t->err, REVL_ERR_INVALID,
                       "revl_trainer_set_checkpoint: every must be at least 1");
    char *copy = NULL;
    if (path) {
        size_t n = strlen(path);
        if (n > RV_CKPT_PATH_MAX)
            return rv_fail(t->err, REVL_ERR_INVALID, "revl_trainer_set_checkpoint: path too long");
        if (!(copy = rv_alloc(&t->alloc, n + 1)))
            return rv_fail(t->err, REVL_ERR_NOMEM, "no memory for the checkpoint path");
        memcpy(copy, path, n + 1);
    }
    rv_free(&t->alloc, t->ckpt_path);
    t->ckpt_path = copy;
    t->ckpt_every = path ? every : 0;
    return REVL_OK;
}
