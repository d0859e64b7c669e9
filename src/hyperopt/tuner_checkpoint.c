/* tuner_checkpoint.c: a tuner between steps, to a file and back (docs/file-formats.md), so that
 * a killed tuning continues with the bits of an uninterrupted one: the phase and counters, the
 * search's told results (the sampler proposes from them), the best point with its weights, and
 * the refinement's point, loss, hypergradient, moments and step. The trainer is not saved: the
 * next step trains afresh from these. Same container as the other checkpoints. */
#include "base/ckptfile.h"
#include "hyperopt/tuner.h"

#include <math.h>
#include <string.h>

static const char MAGIC[8] = {'R', 'E', 'V', 'L', 'T', 'U', 'N', 'E'};
#define VERSION 1u
#define WHAT "revl tuner checkpoint"
#define N_SIZES 7
#define N_COUNTS 11
#define N_SCALARS 6

/* The options that shape the trajectory (not callbacks, threads, allocator or test set). */
uint64_t rv_tuner_options_hash(const revl_tuner *t)
{
    const revl_tuner_options *o = &t->opts;
    uint64_t words[] = {(uint64_t)o->strategy, o->budget_runs, (uint64_t)o->cpu_time,
                        o->n_initial, o->n_candidates, o->refine_starts,
                        (uint64_t)o->refine_method, o->n_orders, o->seed, o->frac_bits,
                        o->objective ? 1u : 0u};
    double reals[] = {o->budget_seconds, o->search_fraction, o->good_fraction, o->refine_step,
                      o->step_grow, o->step_shrink, o->min_step};
    uint64_t h = rv_hash_u64s(RV_HASH_INIT, words, sizeof words / sizeof words[0]);
    return rv_hash_f64s(h, reals, sizeof reals / sizeof reals[0]);
}

/* The vectors after the told results, in file order, and their lengths. */
static size_t vecs(revl_tuner *t, double **v, size_t *n)
{
    double *all[] = {t->lo,    t->hi,   t->best_z, t->best_w, t->start_z,
                     t->theta, t->grad, t->m1,     t->m2};
    size_t len[] = {t->ns, t->ns, t->n_z, t->n_params, t->n_z, t->nr, t->nr, t->nr, t->nr};
    memcpy(v, all, sizeof all);
    memcpy(n, len, sizeof len);
    return sizeof all / sizeof all[0];
}

int revl_tuner_checkpoint_save(revl_tuner *t, const char *path)
{
    if (!t)
        return REVL_ERR_INVALID;
    if (!path)
        return rv_fail(t->err, REVL_ERR_INVALID, "revl_tuner_checkpoint_save: path is NULL");
    if (t->in_step)
        return rv_fail(t->err, REVL_ERR_STATE,
                       "revl_tuner_checkpoint_save called during a step (from a callback?)");
    rv_clear(t->err);
    rv_ckpt_writer *w = rv_alloc(&t->alloc, sizeof *w);
    if (!w)
        return rv_fail(t->err, REVL_ERR_NOMEM, "no memory to write a checkpoint");
    int rc = rv_ckpt_create(w, path, MAGIC, VERSION, t->err);
    if (!rc) {
        rv_ckpt_put_name(w, t->opt->name);
        uint64_t sizes[N_SIZES] = {t->n_z, t->ns, t->nr, t->n_steps, t->n_groups, t->n_params,
                                   t->n_meta};
        rv_ckpt_put_u64s(w, sizes, N_SIZES);
        rv_ckpt_put_u64(w, rv_tuner_options_hash(t));
        size_t told = t->sampler ? rv_sampler_n_told(t->sampler) : 0;
        uint64_t counts[N_COUNTS] = {(uint64_t)t->phase, t->search_evals, t->refine_iters,
                                     t->runs, (uint64_t)t->have_best, (uint64_t)t->best_phase,
                                     (uint64_t)t->have_point, t->start, t->adam_t, told,
                                     (uint64_t)t->search_rest};
        rv_ckpt_put_u64s(w, counts, N_COUNTS);
        double scalars[N_SCALARS] = {rv_tuner_seconds(t), t->best_loss, t->best_acc,
                                     t->cur_loss, t->step, t->min_norm};
        rv_ckpt_put_f64s(w, scalars, N_SCALARS);
        for (size_t k = 0; k < told; k++) {
            double loss;
            const double *u = rv_sampler_point(t->sampler, k, &loss);
            rv_ckpt_put_f64s(w, u, t->ns);
            rv_ckpt_put_f64(w, loss);
        }
        double *v[9];
        size_t n[9], nv = vecs(t, v, n);
        for (size_t k = 0; k < nv; k++)
            rv_ckpt_put_f64s(w, v[k], n[k]);
        rc = rv_ckpt_commit(w, t->err);
    }
    rv_free(&t->alloc, w);
    return rc;
}

static int bad(revl_tuner *t, const char *path, const char *why)
{
    return rv_fail(t->err, REVL_ERR_IO, PATH_FMT ": %s", PATH_ARG(path), why);
}

/* Everything read and checked into a fresh sampler and tmp before the tuner changes. */
static int parse(revl_tuner *t, rv_ckpt_reader *r, uint64_t *c, double *s, rv_sampler *fresh,
                 double *tmp, size_t n_tmp)
{
    const char *path = r->path;
    char name[17], why[200];
    if (!rv_ckpt_get_name(r, t->opt->name, name)) {
        snprintf(why, sizeof why, "a checkpoint of a %s tuner; this one uses %s", name,
                 t->opt->name);
        return bad(t, path, why);
    }
    static const char *const what[N_SIZES] = {"z coordinates", "search coordinates",
                                              "refine coordinates", "steps", "groups",
                                              "parameters", "meta-parameters"};
    uint64_t mine[N_SIZES] = {t->n_z, t->ns, t->nr, t->n_steps, t->n_groups, t->n_params,
                              t->n_meta};
    for (size_t k = 0; k < N_SIZES; k++) {
        uint64_t v = rv_ckpt_get_u64(r);
        if (v != mine[k]) {
            snprintf(why, sizeof why, "checkpoint has %llu %s; this tuner has %llu",
                     (unsigned long long)v, what[k], (unsigned long long)mine[k]);
            return bad(t, path, why);
        }
    }
    if (rv_ckpt_get_u64(r) != rv_tuner_options_hash(t))
        return bad(t, path, "written with other options (strategy, budget, sampler, refinement, "
                            "orders, seed, frac_bits or objective)");
    rv_ckpt_get_u64s(r, c, N_COUNTS);
    rv_ckpt_get_f64s(r, s, N_SCALARS);
    if (r->short_read)
        return bad(t, path, "cut short in its header");
    uint64_t told = c[9];
    if (c[0] > REVL_TUNE_PHASE_DONE || c[4] > 1 || c[5] > REVL_TUNE_PHASE_REFINE || c[6] > 1 ||
        (!t->sampler && told) || told != c[1] || c[7] > t->opts.refine_starts ||
        (c[0] == REVL_TUNE_PHASE_SEARCH && t->opts.strategy == REVL_TUNE_REFINE) || c[10] > 1 ||
        (c[10] && c[0] == REVL_TUNE_PHASE_REFINE))
        return bad(t, path, "inconsistent counters");
    if (!(isfinite(s[0]) && s[0] >= 0) || !(s[1] == INFINITY || isfinite(s[1])) ||
        (c[4] && !isfinite(s[1])) || !(s[3] == INFINITY || isfinite(s[3])) ||
        !(isfinite(s[4]) && s[4] > 0) || !(s[5] >= 0))
        return bad(t, path, "invalid time, loss, step or running minimum");
    if (!rv_ckpt_has(r, told, (t->ns + 1) * sizeof(double)))
        return bad(t, path, "its search results are cut short");
    double *u = tmp; /* the told points pass through tmp's first ns entries */
    for (uint64_t k = 0; k < told; k++) {
        rv_ckpt_get_f64s(r, u, t->ns);
        double loss = rv_ckpt_get_f64(r);
        for (size_t i = 0; i < t->ns; i++)
            if (!(u[i] > 0 && u[i] < 1))
                return bad(t, path, "a search point lies outside the unit cube");
        if (!(loss == INFINITY || isfinite(loss)))
            return bad(t, path, "a search result's loss is NaN or -inf");
        int rc = rv_sampler_tell(fresh, u, loss);
        if (rc)
            return rv_fail(t->err, rc, "no memory to load " PATH_FMT, PATH_ARG(path));
    }
    if (r->end - r->pos != n_tmp * sizeof(double))
        return bad(t, path, "its vectors are cut short or followed by unknown data");
    rv_ckpt_get_f64s(r, tmp, n_tmp);
    for (size_t i = 0; i < n_tmp; i++)
        if (!isfinite(tmp[i]))
            return bad(t, path, "a stored vector holds a value that is not finite");
    return REVL_OK;
}

int revl_tuner_checkpoint_load(revl_tuner *t, const char *path)
{
    if (!t)
        return REVL_ERR_INVALID;
    if (!path)
        return rv_fail(t->err, REVL_ERR_INVALID, "revl_tuner_checkpoint_load: path is NULL");
    if (t->in_step)
        return rv_fail(t->err, REVL_ERR_STATE,
                       "revl_tuner_checkpoint_load called during a step (from a callback?): "
                       "the state it would replace is in use");
    rv_clear(t->err);
    double *v[9];
    size_t n[9], nv = vecs(t, v, n), n_tmp = 0;
    for (size_t k = 0; k < nv; k++)
        n_tmp += n[k];
    rv_ckpt_reader r;
    int rc = rv_ckpt_open(&r, &t->alloc, path, MAGIC, WHAT, VERSION, t->err);
    if (rc)
        return rc;
    double *tmp = rv_calloc(&t->alloc, n_tmp > t->ns ? n_tmp : t->ns, sizeof *tmp);
    rv_sampler *fresh = NULL;
    if (!tmp)
        rc = rv_fail(t->err, REVL_ERR_NOMEM, "no memory to load " PATH_FMT, PATH_ARG(path));
    if (!rc && t->sampler) {
        rv_sampler_config sc = rv_tuner_sampler_config(t);
        rc = rv_sampler_create(&fresh, &sc, &t->alloc, t->err);
    }
    uint64_t c[N_COUNTS];
    double s[N_SCALARS];
    if (!rc)
        rc = parse(t, &r, c, s, fresh, tmp, n_tmp);
    if (!rc) {
        if (t->sampler) {
            rv_sampler_free(t->sampler);
            t->sampler = fresh;
            fresh = NULL;
        }
        const double *p = tmp;
        for (size_t k = 0; k < nv; p += n[k], k++)
            memcpy(v[k], p, n[k] * sizeof *p);
        t->phase = (int)c[0];
        t->search_evals = (size_t)c[1];
        t->refine_iters = (size_t)c[2];
        t->runs = (size_t)c[3];
        t->have_best = (int)c[4];
        t->best_phase = (int)c[5];
        t->have_point = (int)c[6];
        t->start = (size_t)c[7];
        t->adam_t = (size_t)c[8];
        t->search_rest = (int)c[10];
        t->seconds_before = s[0];
        t->clock_started = 0;
        t->best_loss = s[1];
        t->best_acc = s[2];
        t->cur_loss = s[3];
        t->step = s[4];
        t->min_norm = s[5];
        /* the refinement's base point is the start's z (the coordinates theta does not
         * control) */
        if (t->have_point)
            rc = revl_family_set_base(t->refine, t->start_z);
        if (rc)
            rc = rv_fail(t->err, REVL_ERR_IO, PATH_FMT ": its refinement start point is "
                         "refused by the refine family (%s)", PATH_ARG(path),
                         revl_family_last_error(t->refine));
    }
    rv_sampler_free(fresh);
    rv_free(&t->alloc, tmp);
    rv_ckpt_close(&r);
    return rc;
}
