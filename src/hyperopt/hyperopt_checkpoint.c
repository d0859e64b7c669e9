/* hyperopt_checkpoint.c: a hyper-optimiser between meta-iterations, to a file and back
 * (docs/file-formats.md), so that a killed hyper-optimisation continues where it stood with the
 * bits of an uninterrupted one: the current and best hyperparameters, the best loss, the
 * meta-optimiser's moments and step count, the chaos guard's step size, running minimum and
 * step-back point, and the iteration (which also picks a fresh_seed run's init noise). The
 * inner trainer is not saved: each meta-iteration trains afresh from these. Same container as
 * the trainer's checkpoint (base/ckptfile.h), another magic. */
#include "base/ckptfile.h"
#include "hyperopt/hyperopt.h"

#include <math.h>
#include <string.h>

static const char MAGIC[8] = {'R', 'E', 'V', 'L', 'H', 'O', 'P', 'T'};
#define VERSION 1u
#define WHAT "revl hyper-optimiser checkpoint"

/* The options that shape the trajectory (not iterations, callbacks, threads or allocator). */
static uint64_t options_hash(const revl_hyperopt *h)
{
    const revl_hyperopt_options *o = &h->opts;
    uint64_t hh = rv_hash_u64(RV_HASH_INIT, o->learn);
    hh = rv_hash_u64(hh, (uint64_t)o->method);
    double d[] = {o->step_size, o->momentum, o->adam_beta1, o->adam_beta2, o->adam_eps,
                  o->chaos_factor};
    hh = rv_hash_f64s(hh, d, sizeof d / sizeof d[0]);
    hh = rv_hash_u64(hh, (uint64_t)o->fresh_seed);
    hh = rv_hash_u64(hh, o->seed);
    hh = rv_hash_u64(hh, (uint64_t)o->chaos_action);
    hh = rv_hash_u64(hh, o->frac_bits);
    return rv_hash_u64(hh, o->objective ? 1 : 0);
}

/* The n_theta vectors, in file order. */
static size_t vecs(revl_hyperopt *h, double **v)
{
    double *all[] = {h->cur, h->best, h->m1, h->m2, h->prev, h->prev_m1, h->prev_m2,
                     h->prev_grad};
    memcpy(v, all, sizeof all);
    return sizeof all / sizeof all[0];
}

int revl_hyperopt_checkpoint_save(revl_hyperopt *h, const char *path)
{
    if (!h)
        return REVL_ERR_INVALID;
    if (!path)
        return rv_fail(h->err, REVL_ERR_INVALID, "revl_hyperopt_checkpoint_save: path is NULL");
    rv_clear(h->err);
    rv_ckpt_writer *w = rv_alloc(&h->alloc, sizeof *w);
    if (!w)
        return rv_fail(h->err, REVL_ERR_NOMEM, "no memory to write a checkpoint");
    int rc = rv_ckpt_create(w, path, MAGIC, VERSION, h->err);
    if (!rc) {
        rv_ckpt_put_name(w, h->opt->name);
        uint64_t sizes[] = {h->n_theta, h->n_steps, h->n_groups, h->n_params, h->n_meta};
        rv_ckpt_put_u64s(w, sizes, sizeof sizes / sizeof sizes[0]);
        rv_ckpt_put_u64(w, options_hash(h));
        uint64_t counts[] = {h->iteration, h->adam_t, h->prev_adam_t, (uint64_t)h->have_best,
                             (uint64_t)h->have_prev};
        rv_ckpt_put_u64s(w, counts, sizeof counts / sizeof counts[0]);
        double scalars[] = {h->best_loss, h->step_size, h->min_norm};
        rv_ckpt_put_f64s(w, scalars, sizeof scalars / sizeof scalars[0]);
        double *v[8];
        size_t nv = vecs(h, v);
        for (size_t k = 0; k < nv; k++)
            rv_ckpt_put_f64s(w, v[k], h->n_theta);
        rc = rv_ckpt_commit(w, h->err);
    }
    rv_free(&h->alloc, w);
    return rc;
}

static int bad(revl_hyperopt *h, const char *path, const char *why)
{
    return rv_fail(h->err, REVL_ERR_IO, PATH_FMT ": %s", PATH_ARG(path), why);
}

/* Value i of the 8 vectors is a learned clip not set yet (+inf, the schedule's default) in
 * one of the value vectors (cur, best, prev): a step refuses it, a checkpoint keeps it. */
static int unset_clip(const revl_hyperopt *h, size_t i, double v)
{
    size_t vec = i / h->n_theta, k = i % h->n_theta;
    return v == INFINITY && h->clip_off != SIZE_MAX && k >= h->clip_off &&
           (vec == 0 || vec == 1 || vec == 4);
}

/* Header and scalars checked; vectors into tmp (8 n_theta). */
static int parse(revl_hyperopt *h, rv_ckpt_reader *r, uint64_t *counts, double *scalars,
                 double *tmp)
{
    const char *path = r->path;
    char name[17], why[160];
    if (!rv_ckpt_get_name(r, h->opt->name, name)) {
        snprintf(why, sizeof why, "a checkpoint of a %s hyper-optimiser; this one uses %s", name,
                 h->opt->name);
        return bad(h, path, why);
    }
    static const char *const what[] = {"hyperparameters", "steps", "groups", "parameters",
                                       "meta-parameters"};
    uint64_t mine[] = {h->n_theta, h->n_steps, h->n_groups, h->n_params, h->n_meta};
    for (size_t k = 0; k < sizeof mine / sizeof mine[0]; k++) {
        uint64_t v = rv_ckpt_get_u64(r);
        if (v != mine[k]) {
            snprintf(why, sizeof why, "checkpoint has %llu %s; this hyper-optimiser has %llu",
                     (unsigned long long)v, what[k], (unsigned long long)mine[k]);
            return bad(h, path, why);
        }
    }
    if (rv_ckpt_get_u64(r) != options_hash(h))
        return bad(h, path, "written with other options (learn, method, meta step, moments, "
                            "seed, chaos guard, frac_bits or objective)");
    for (int k = 0; k < 5; k++)
        counts[k] = rv_ckpt_get_u64(r);
    for (int k = 0; k < 3; k++)
        scalars[k] = rv_ckpt_get_f64(r);
    if (!rv_ckpt_has(r, 8 * h->n_theta, sizeof(double)) ||
        r->end - r->pos != 8 * h->n_theta * sizeof(double))
        return bad(h, path, "its vectors are cut short or followed by unknown data");
    rv_ckpt_get_f64s(r, tmp, 8 * h->n_theta);
    if (counts[3] > 1 || counts[4] > 1 || counts[1] > counts[0] + 1 || counts[2] > counts[1])
        return bad(h, path, "inconsistent counters");
    /* best_loss: +inf before the first iteration; step: positive; running minimum >= 0 */
    if (!(scalars[0] == INFINITY || isfinite(scalars[0])) || !(scalars[1] > 0) ||
        !isfinite(scalars[1]) || !(scalars[2] >= 0))
        return bad(h, path, "invalid best loss, meta step or running minimum");
    for (size_t i = 0; i < 8 * h->n_theta; i++)
        if (!isfinite(tmp[i]) && !unset_clip(h, i, tmp[i]))
            return bad(h, path, "a hyperparameter or moment is not finite");
    if (rv_hyperopt_check_theta(h, tmp) != REVL_OK ||
        (counts[3] && rv_hyperopt_check_theta(h, tmp + h->n_theta) != REVL_OK) ||
        (counts[4] && rv_hyperopt_check_theta(h, tmp + 4 * h->n_theta) != REVL_OK)) {
        snprintf(why, sizeof why, "holds values outside their range (%.100s)", h->err);
        return bad(h, path, why);
    }
    return REVL_OK;
}

int revl_hyperopt_checkpoint_load(revl_hyperopt *h, const char *path)
{
    if (!h)
        return REVL_ERR_INVALID;
    if (!path)
        return rv_fail(h->err, REVL_ERR_INVALID, "revl_hyperopt_checkpoint_load: path is NULL");
    /* from the objective: the running meta-iteration uses the values a load would replace */
    int rc = rv_hyperopt_not_in_step(h, "revl_hyperopt_checkpoint_load");
    if (rc)
        return rc;
    rv_clear(h->err);
    rv_ckpt_reader r;
    rc = rv_ckpt_open(&r, &h->alloc, path, MAGIC, WHAT, VERSION, h->err);
    if (rc)
        return rc;
    double *tmp = rv_calloc(&h->alloc, 8 * h->n_theta, sizeof *tmp);
    uint64_t counts[5];
    double scalars[3];
    rc = tmp ? parse(h, &r, counts, scalars, tmp)
             : rv_fail(h->err, REVL_ERR_NOMEM, "no memory to load " PATH_FMT, PATH_ARG(path));
    if (!rc) {
        double *v[8];
        size_t nv = vecs(h, v);
        for (size_t k = 0; k < nv; k++)
            memcpy(v[k], tmp + k * h->n_theta, h->n_theta * sizeof *tmp);
        h->iteration = (size_t)counts[0];
        h->adam_t = (size_t)counts[1];
        h->prev_adam_t = (size_t)counts[2];
        h->have_best = (int)counts[3];
        h->have_prev = (int)counts[4];
        h->best_loss = scalars[0];
        h->step_size = scalars[1];
        h->min_norm = scalars[2];
    }
    rv_free(&h->alloc, tmp);
    rv_ckpt_close(&r);
    return rc;
}

size_t revl_hyperopt_iterations_done(const revl_hyperopt *h)
{
    return h ? h->iteration : 0;
}
