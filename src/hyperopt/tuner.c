/* tuner.c: revl's default way to tune (docs/hyperopt.md, "The tuner"). A global search covers
 * a compact family's box (sampler.c: low-discrepancy points, then Parzen-estimator proposals),
 * each point one forward training; then the best points are refined by exact hypergradients in
 * a finer family, where a meta-step is kept only when the validation loss it produces is lower
 * (else the step shrinks and is retried from the same point), so chaos in the loss landscape
 * can slow the refinement but never make it worse. Both phases share one budget, in seconds or
 * in training runs (a forward training or a reverse pass counts one). */
#include "hyperopt/tuner.h"

#include "hyperopt/coords.h"
#include "hyperopt/family.h"
#include "models/mlp.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define MAX_STEP 1.0  /* a kept step may grow to change a coordinate by e (log) at most */
#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8

void revl_tuner_report_init(revl_tuner_report *r)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
}

void revl_tuner_result_init(revl_tuner_result *r)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
}

void revl_tuner_options_init(revl_tuner_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->strategy = REVL_TUNE_SEARCH_THEN_REFINE;
    o->search_fraction = 0.5;
    o->n_candidates = 24;
    o->good_fraction = 0.15;
    o->refine_starts = 3;
    o->refine_method = REVL_REFINE_BACKTRACK;
    o->refine_step = 0.05;
    o->step_grow = 1.5;
    o->step_shrink = 0.5;
    o->min_step = 0.003;
    o->n_orders = 1;
    o->frac_bits = 52;
}

#define OPTION_FAIL(...) rv_fail(rv_create_err(), REVL_ERR_INVALID, "revl_tuner_create: " __VA_ARGS__)
static int check_options(const revl_tuner_options *o)
{
    if (o->strategy != REVL_TUNE_SEARCH_THEN_REFINE && o->strategy != REVL_TUNE_SEARCH &&
        o->strategy != REVL_TUNE_REFINE)
        return OPTION_FAIL("strategy = %d is not a revl_tune_strategy", (int)o->strategy);
    if (!(isfinite(o->budget_seconds) && o->budget_seconds >= 0))
        return OPTION_FAIL("budget_seconds = %g must be finite and >= 0", o->budget_seconds);
    if (!(o->search_fraction > 0 && o->search_fraction < 1))
        return OPTION_FAIL("search_fraction = %g outside (0, 1)", o->search_fraction);
    if (o->n_candidates == 0)
        return OPTION_FAIL("n_candidates = 0: a proposal needs at least one candidate");
    if (!(o->good_fraction > 0 && o->good_fraction < 1))
        return OPTION_FAIL("good_fraction = %g outside (0, 1)", o->good_fraction);
    if (o->refine_starts == 0)
        return OPTION_FAIL("refine_starts = 0: refine at least one point");
    if (o->refine_method != REVL_REFINE_BACKTRACK && o->refine_method != REVL_REFINE_ADAM)
        return OPTION_FAIL("refine_method = %d is not BACKTRACK or ADAM", (int)o->refine_method);
    if (!(isfinite(o->refine_step) && o->refine_step > 0 && o->refine_step <= MAX_STEP))
        return OPTION_FAIL("refine_step = %g outside (0, %g]", o->refine_step, MAX_STEP);
    if (!(isfinite(o->step_grow) && o->step_grow >= 1))
        return OPTION_FAIL("step_grow = %g must be finite and >= 1", o->step_grow);
    if (!(o->step_shrink > 0 && o->step_shrink < 1))
        return OPTION_FAIL("step_shrink = %g outside (0, 1)", o->step_shrink);
    if (!(o->min_step > 0 && o->min_step < o->refine_step))
        return OPTION_FAIL("min_step = %g must be > 0 and below refine_step = %g", o->min_step,
                           o->refine_step);
    if (o->n_orders == 0)
        return OPTION_FAIL("n_orders = 0: average over at least one minibatch order");
    return REVL_OK;
}

void revl_tuner_free(revl_tuner *t)
{
    if (!t)
        return;
    revl_allocator a = t->alloc;
    revl_trainer_free(t->trainer);
    revl_schedule_free(t->sched);
    revl_family_free(t->search);
    revl_family_free(t->refine);
    rv_sampler_free(t->sampler);
    double *arrays[] = {t->lo,    t->hi,      t->z,     t->dz,    t->w0,     t->wT,
                        t->dfdw,  t->d_w0,    t->dfdmeta, t->u,   t->theta_s, t->g_acc,
                        t->best_z, t->best_w, t->theta, t->grad,  t->m1,     t->m2,
                        t->cand,  t->start_z};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        rv_free(&a, arrays[k]);
    rv_free(&a, t);
}

/* A family made for another run than this tuner's is refused by name. */
static int check_family(const revl_family *f, const char *which, revl_optimizer opt,
                        size_t n_steps, size_t n_groups, size_t n_meta)
{
    revl_optimizer fo;
    size_t ft, fg, fm;
    rv_family_shape(f, &fo, &ft, &fg, &fm);
    if (fo != opt || ft != n_steps || fg != n_groups || fm != n_meta)
        return OPTION_FAIL("the %s family was made for %s, %zu steps, %zu groups, %zu meta; the "
                           "tuner runs %s, %zu steps, %zu groups, %zu meta", which,
                           revl_optimizer_name(fo), ft, fg, fm, revl_optimizer_name(opt), n_steps,
                           n_groups, n_meta);
    return REVL_OK;
}

/* What the defaults learn: the rate, the optimiser's momentum-like rate, AdamW's weight decay,
 * the init scales and, when the model has them, the meta-parameters. Momentum's and RMSprop's
 * coupled decay (default 0, off) is learned only when asked for: it is the L2 penalty a model's
 * meta-parameter may already be, and the defaults then tune what they tuned before it. */
static unsigned default_learn(const revl_tuner *t)
{
    return REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_BETA1 | REVL_LEARN_INIT_SCALE |
           (t->opt->id == REVL_OPTIM_ADAMW ? REVL_LEARN_WEIGHT_DECAY : 0) |
           (t->n_meta ? REVL_LEARN_META : 0) |
           (t->z_clip != SIZE_MAX ? REVL_LEARN_CLIP : 0); /* z has one layout for both */
}

/* Whether a family learns log clip, which adds the clip block to z. */
static int learns_clip(const revl_family *f)
{
    return f && (rv_family_options(f)->learn & REVL_LEARN_CLIP);
}

/* The tuner's copies of the families (defaults where NULL), with the base point's meta at the
 * built-in model's start (a log L2 of 0 would be lambda = 1). */
static int make_families(revl_tuner *t, const revl_family *search, const revl_family *refine)
{
    revl_optimizer id = t->opt->id;
    int rc;
    if (search) {
        rc = rv_family_clone(&t->search, search, &t->alloc);
    } else {
        revl_family_options fo;
        revl_family_options_init(&fo);
        fo.type = REVL_FAMILY_SHAPE;
        fo.shape = REVL_SHAPE_LINEAR;
        fo.learn = default_learn(t);
        size_t layers = t->model->builtin.n_layers;
        fo.n_layers = layers && t->n_groups % layers == 0 ? layers : 0;
        rc = revl_family_create(&t->search, id, t->n_steps, t->n_groups, t->n_meta, &fo);
    }
    if (rc)
        return rc;
    if (refine) {
        rc = rv_family_clone(&t->refine, refine, &t->alloc);
    } else {
        revl_family_options fo;
        revl_family_options_init(&fo);
        fo.type = REVL_FAMILY_PER_STEP;
        fo.learn = default_learn(t);
        rc = revl_family_create(&t->refine, id, t->n_steps, t->n_groups, t->n_meta, &fo);
    }
    if (rc)
        return rc;
    if (t->n_meta && t->model->builtin.meta_start != 0 && !(search && refine)) {
        revl_family *fams[2] = {search ? NULL : t->search, refine ? NULL : t->refine};
        for (int k = 0; k < 2; k++) {
            if (!fams[k])
                continue;
            revl_family_get_base(fams[k], t->z);
            for (size_t j = 0; j < t->n_meta; j++)
                t->z[t->n_kinds * t->n_sg + t->n_groups + j] = t->model->builtin.meta_start;
            if ((rc = revl_family_set_base(fams[k], t->z)))
                return rc;
        }
    }
    t->ns = revl_family_n_theta(t->search);
    t->nr = revl_family_n_theta(t->refine);
    return REVL_OK;
}

static int watch(size_t step, int phase, double seconds, double loss, void *user);

static int create_trainer(revl_tuner *t)
{
    size_t *offsets = rv_calloc(&t->alloc, t->n_groups + 1, sizeof *offsets);
    if (!offsets)
        return REVL_ERR_NOMEM;
    revl_model_group_offsets(t->model, offsets);
    int rc = revl_schedule_create_for(&t->sched, t->opt->id, t->n_steps, t->n_groups, offsets,
                                      &t->alloc);
    rv_free(&t->alloc, offsets);
    if (rc)
        return rc;
    revl_trainer_options to;
    revl_trainer_options_init(&to);
    to.frac_bits = t->opts.frac_bits;
    to.threads = t->opts.threads;
    to.allocator = &t->alloc;
    rc = revl_trainer_create(&t->trainer, t->model, t->sched, &to);
    if (rc)
        return rc;
    return revl_trainer_set_progress(t->trainer, watch, 1, t);
}

static int alloc_arrays(revl_tuner *t)
{
    const revl_allocator *a = &t->alloc;
    size_t nz = t->n_z, p = t->n_params, ns = t->ns, nr = t->nr;
    struct { double **p; size_t n; } arr[] = {
        {&t->lo, ns},    {&t->hi, ns},     {&t->z, nz},     {&t->dz, nz},     {&t->w0, p},
        {&t->wT, p},     {&t->dfdw, p},    {&t->d_w0, p},   {&t->dfdmeta, t->n_meta + 1},
        {&t->u, ns},     {&t->theta_s, ns}, {&t->g_acc, nz}, {&t->best_z, nz}, {&t->best_w, p},
        {&t->theta, nr}, {&t->grad, nr},   {&t->m1, nr},    {&t->m2, nr},     {&t->cand, nr},
        {&t->start_z, nz}};
    for (size_t k = 0; k < sizeof arr / sizeof arr[0]; k++)
        if (!(*arr[k].p = rv_calloc(a, arr[k].n ? arr[k].n : 1, sizeof(double))))
            return REVL_ERR_NOMEM;
    return REVL_OK;
}

rv_sampler_config rv_tuner_sampler_config(const revl_tuner *t)
{
    const revl_tuner_options *o = &t->opts;
    return (rv_sampler_config){.dim = t->ns,
                               .seed = o->seed,
                               .n_initial = o->n_initial ? o->n_initial : 10,
                               .n_candidates = o->n_candidates,
                               .good_fraction = o->good_fraction};
}

static int tuner_create(revl_tuner **out, revl_model *model, const revl_dataset *valid,
                        size_t n_steps, revl_optimizer optimizer, const revl_family *search,
                        const revl_family *refine, const revl_tuner_options *opts)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    const rv_optim *opt = rv_optim_get(optimizer);
    if (!model)
        return OPTION_FAIL("model is NULL");
    if (n_steps == 0)
        return OPTION_FAIL("n_steps is 0");
    if (!opt)
        return OPTION_FAIL("optimizer = %d is not a revl_optimizer", (int)optimizer);
    revl_tuner_options o;
    revl_tuner_options_init(&o);
    if (opts) {
        if (rv_struct_size_check(rv_create_err(), RV_STRUCT_TUNER_OPTIONS, opts->struct_size))
            return REVL_ERR_INVALID;
        o = *opts;
    }
    if (check_options(&o))
        return REVL_ERR_INVALID;
    if (!o.objective && (!valid || !model->builtin.evaluate))
        return OPTION_FAIL("no objective: give a validation set with a built-in model, or "
                           "options.objective");
    if (o.test && !model->builtin.evaluate)
        return OPTION_FAIL("options.test needs a built-in model to evaluate it");
    if (o.n_orders > 1 && model->builtin.evaluate != rv_mlp_evaluate)
        return OPTION_FAIL("n_orders = %zu needs the built-in MLP (other models' minibatch order "
                           "is not the tuner's to change)", o.n_orders);
    if (o.budget_seconds == 0 && o.budget_runs == 0)
        return OPTION_FAIL("no budget: set budget_seconds or budget_runs (or both: the first "
                           "spent ends the tuning)");
    size_t g = revl_model_n_groups(model), nm = revl_model_n_meta(model);
    if (search && check_family(search, "search", optimizer, n_steps, g, nm))
        return REVL_ERR_INVALID;
    if (refine && check_family(refine, "refine", optimizer, n_steps, g, nm))
        return REVL_ERR_INVALID;
    int ok = 1;
    size_t n_sg = rv_mul_size(n_steps, g, &ok);
    size_t n_z = rv_mul_size(n_sg, opt->n_kinds, &ok);
    if (!ok || __builtin_add_overflow(n_z, g + nm, &n_z))
        return OPTION_FAIL("n_steps = %zu x %zu groups overflows", n_steps, g);
    if (search && refine && learns_clip(search) != learns_clip(refine))
        return OPTION_FAIL("the %s family learns log clip and the %s family does not: both "
                           "share one z", learns_clip(search) ? "search" : "refine",
                           learns_clip(search) ? "refine" : "search");
    size_t z_clip = learns_clip(search) || learns_clip(refine) ? n_z : SIZE_MAX;
    if (z_clip != SIZE_MAX && __builtin_add_overflow(n_z, n_sg, &n_z))
        return OPTION_FAIL("n_steps = %zu x %zu groups overflows", n_steps, g);

    revl_allocator alloc;
    rv_allocator_copy(&alloc, o.allocator);
    revl_tuner *t = rv_calloc(&alloc, 1, sizeof *t);
    if (!t)
        return REVL_ERR_NOMEM;
    t->alloc = alloc;
    t->opts = o;
    t->opts.allocator = NULL;
    t->model = model;
    t->valid = valid;
    t->opt = opt;
    t->n_kinds = opt->n_kinds;
    t->n_steps = n_steps;
    t->n_groups = g;
    t->n_params = revl_model_n_params(model);
    t->n_meta = nm;
    t->n_sg = n_sg;
    t->n_z = n_z;
    t->z_clip = z_clip;
    t->best_loss = INFINITY;
    t->best_acc = NAN;
    t->cur_loss = INFINITY;
    t->min_norm = INFINITY;
    t->step = o.refine_step;
    t->phase = o.strategy == REVL_TUNE_REFINE ? REVL_TUNE_PHASE_REFINE : REVL_TUNE_PHASE_SEARCH;

    /* t->z is scratch for make_families: allocate it first */
    int rc = (t->z = rv_calloc(&alloc, n_z, sizeof(double))) ? REVL_OK : REVL_ERR_NOMEM;
    if (!rc)
        rc = make_families(t, search, refine);
    if (!rc) {
        rv_free(&alloc, t->z);
        t->z = NULL;
        rc = alloc_arrays(t);
    }
    if (!rc)
        rc = create_trainer(t);
    if (!rc && o.strategy != REVL_TUNE_REFINE) {
        revl_family_get_bounds(t->search, t->lo, t->hi);
        rv_sampler_config sc = rv_tuner_sampler_config(t);
        rc = rv_sampler_create(&t->sampler, &sc, &alloc, rv_create_err());
    }
    if (rc) {
        if (rc != REVL_ERR_NOMEM && !rv_create_err()[0])
            rv_fail(rv_create_err(), rc, "revl_tuner_create: %s",
                    t->search && !t->refine ? revl_family_last_error(t->search) : "setup failed");
        revl_tuner_free(t);
        return rc;
    }
    *out = t;
    return REVL_OK;
}

int revl_tuner_create(revl_tuner **out, revl_model *model, const revl_dataset *valid,
                      size_t n_steps, revl_optimizer optimizer, const revl_family *search,
                      const revl_family *refine, const revl_tuner_options *opts)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(
        tuner_create(out, model, valid, n_steps, optimizer, search, refine, opts),
        "revl_tuner_create");
}

const char *revl_tuner_last_error(const revl_tuner *t)
{
    return t ? t->err : "tuner is NULL";
}

int revl_tuner_phase(const revl_tuner *t)
{
    return t ? t->phase : REVL_TUNE_PHASE_DONE;
}

/* ------------------------------------------------------------------ budget */

static void clock_now(const revl_tuner *t, struct timespec *ts)
{
    clock_gettime(t->opts.cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, ts);
}

double rv_tuner_seconds(revl_tuner *t)
{
    if (!t->clock_started)
        return t->seconds_before;
    struct timespec t1;
    clock_now(t, &t1);
    return t->seconds_before + (double)(t1.tv_sec - t->t0.tv_sec) +
           1e-9 * (double)(t1.tv_nsec - t->t0.tv_nsec);
}

/* The share of the budget used: the larger of the runs' and the seconds' shares. */
static double used(revl_tuner *t)
{
    double u = 0;
    if (t->opts.budget_runs)
        u = (double)t->runs / (double)t->opts.budget_runs;
    if (t->opts.budget_seconds > 0)
        u = fmax(u, rv_tuner_seconds(t) / t->opts.budget_seconds);
    return u;
}

static double search_share(const revl_tuner *t)
{
    switch (t->opts.strategy) {
    case REVL_TUNE_SEARCH: return 1.0;
    case REVL_TUNE_REFINE: return 0.0;
    default: return t->opts.search_fraction;
    }
}

static double eta(revl_tuner *t)
{
    double u = used(t), s = rv_tuner_seconds(t);
    if (u <= 0)
        return NAN;
    return u >= 1 ? 0.0 : s * (1.0 - u) / u;
}

/* ------------------------------------------------------------------ one training */

/* The schedule from z: each kind's block in natural units (the schedule checks the ranges). */
static int load_schedule(revl_tuner *t, const double *z)
{
    for (size_t j = 0; j < t->n_kinds; j++) {
        revl_hyper kind = t->opt->kinds[j];
        rv_coord c = rv_kind_coord(kind);
        double *x = t->dz; /* scratch: dz is not in use while a point is loaded */
        for (size_t k = 0; k < t->n_sg; k++)
            x[k] = rv_from_unconstrained(c, z[j * t->n_sg + k]);
        int rc = revl_schedule_set_kind(t->sched, kind, x);
        if (rc)
            return rv_fail(t->err, rc, "schedule: %s", revl_schedule_last_error(t->sched));
    }
    if (t->z_clip != SIZE_MAX) {
        double *x = t->dz;
        for (size_t k = 0; k < t->n_sg; k++)
            x[k] = rv_from_unconstrained(RV_COORD_LOG, z[t->z_clip + k]);
        int rc = revl_schedule_set_kind(t->sched, REVL_HYPER_CLIP, x);
        if (rc)
            return rv_fail(t->err, rc, "schedule: %s", revl_schedule_last_error(t->sched));
    }
    return REVL_OK;
}

static const double *meta_of(const revl_tuner *t, const double *z)
{
    return t->n_meta ? z + t->n_kinds * t->n_sg + t->n_groups : NULL;
}

/* f(w_T) (and df/dw_T, df/dmeta when want_grad) from the objective or the validation set. */
static int objective(revl_tuner *t, const double *meta, int want_grad, double *f, double *acc)
{
    *f = NAN;
    *acc = NAN;
    if (t->n_meta)
        memset(t->dfdmeta, 0, t->n_meta * sizeof *t->dfdmeta);
    if (t->opts.objective) {
        int rc = t->opts.objective(t->wT, meta, f, t->dfdw, t->n_meta ? t->dfdmeta : NULL,
                                   t->opts.objective_user);
        if (rc)
            return rv_fail(t->err, REVL_ERR_CALLBACK, "objective callback returned %d", rc);
    } else {
        int rc = revl_model_evaluate(t->model, t->valid, t->wT, f, want_grad ? t->dfdw : NULL,
                                     acc);
        if (rc)
            return rv_fail(t->err, rc, "validation objective: %s",
                           revl_model_last_error(t->model));
    }
    return REVL_OK;
}

/* The trainer's progress callback: a run whose training loss leaves the finite numbers or rises
 * above ABANDON times its first step's has diverged, and is stopped there (early abandonment:
 * the search spends nothing more on it). */
#define ABANDON 4.0
static int watch(size_t step, int phase, double seconds, double loss, void *user)
{
    revl_tuner *t = user;
    (void)step, (void)seconds;
    if (phase != 0)
        return 0;
    if (isnan(t->watch_first))
        t->watch_first = loss;
    if (isfinite(loss) && !(loss > ABANDON * fabs(t->watch_first)))
        return 0;
    t->abandoned = 1;
    return 1;
}

/* Train at z from its init scales (seed: the tuner's) and evaluate. A run that leaves the
 * fixed-point range or produces a non-finite loss diverged: *f = +inf, REVL_OK. keep: the trainer
 * keeps what the reverse pass needs. Counts one run. */
static int train_eval(revl_tuner *t, const double *z, int keep, int want_grad, double *f,
                      double *acc)
{
    int rc = load_schedule(t, z);
    if (rc)
        return rc;
    rc = revl_model_init_weights(t->model, z + t->n_kinds * t->n_sg, t->opts.seed, t->w0);
    if (rc)
        return rv_fail(t->err, rc, "initial weights: %s", revl_model_last_error(t->model));
    const double *meta = meta_of(t, z);
    /* the same arithmetic either way (same w_T bits); forward-only keeps nothing to reverse */
    t->watch_first = NAN;
    t->abandoned = 0;
    rc = keep ? revl_trainer_train(t->trainer, t->w0, meta)
              : revl_trainer_train_forward(t->trainer, t->w0, meta);
    t->runs++;
    if (rc == REVL_ERR_RANGE || (rc == REVL_ERR_CALLBACK && t->abandoned)) {
        *f = INFINITY;
        *acc = NAN;
        return REVL_OK;
    }
    if (rc)
        return rv_fail(t->err, rc, "training: %s", revl_trainer_last_error(t->trainer));
    revl_trainer_weights(t->trainer, t->wT);
    rc = objective(t, meta, want_grad, f, acc);
    if (rc)
        return rc;
    if (!isfinite(*f))
        *f = INFINITY;
    return REVL_OK;
}

/* The trained point z is the best so far: keep it with its weights. */
static void note_best(revl_tuner *t, const double *z, double f, double acc)
{
    if (!(f < t->best_loss))
        return;
    t->best_loss = f;
    t->best_acc = acc;
    t->have_best = 1;
    t->best_phase = t->phase;
    memcpy(t->best_z, z, t->n_z * sizeof *z);
    memcpy(t->best_w, t->wT, t->n_params * sizeof *t->wT);
}

/* The hypergradient of the run the trainer holds, in z coordinates, added to t->g_acc. */
static int add_hypergrad(revl_tuner *t, const double *z)
{
    size_t n = t->n_sg, off = t->n_kinds * n;
    for (size_t i = 0; i < t->n_params; i++)
        if (!isfinite(t->dfdw[i]))
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "gradient of the validation objective is %g at parameter %zu",
                           t->dfdw[i], i);
    double *d_kinds[REVL_HYPER_COUNT] = {0};
    for (size_t j = 0; j < t->n_kinds; j++)
        d_kinds[t->opt->kinds[j]] = t->dz + j * n;
    if (t->z_clip != SIZE_MAX)
        d_kinds[REVL_HYPER_CLIP] = t->dz + t->z_clip;
    const double *meta = meta_of(t, z);
    int rc = revl_trainer_hypergrad_kinds_n(t->trainer, t->dfdw, meta ? t->dfdmeta : NULL,
                                            t->d_w0, REVL_HYPER_COUNT, d_kinds,
                                            meta ? t->dz + off + t->n_groups : NULL);
    t->runs++;
    if (rc)
        return rv_fail(t->err, rc, "hypergradient: %s", revl_trainer_last_error(t->trainer));
    rc = revl_model_init_scales_grad(t->model, t->w0, t->d_w0, t->dz + off);
    if (rc)
        return rv_fail(t->err, rc, "init scale gradient: %s", revl_model_last_error(t->model));
    /* to z: the chain rule at the values the trainer applied */
    for (size_t j = 0; j < t->n_kinds; j++) {
        revl_hyper kind = t->opt->kinds[j];
        rv_coord c = rv_kind_coord(kind);
        for (size_t k = 0; k < n; k++) {
            double x = revl_hyper_applied(kind, rv_from_unconstrained(c, z[j * n + k]));
            t->dz[j * n + k] *= rv_coord_dnatural(c, x);
        }
    }
    for (size_t k = 0; t->z_clip != SIZE_MAX && k < n; k++) /* d / d log clip = clip d / d clip */
        t->dz[t->z_clip + k] *= rv_from_unconstrained(RV_COORD_LOG, z[t->z_clip + k]);
    for (size_t k = 0; k < t->n_z; k++) {
        if (!isfinite(t->dz[k]))
            return rv_fail(t->err, REVL_ERR_RANGE, "hypergradient is %g at z[%zu]", t->dz[k], k);
        t->g_acc[k] += t->dz[k];
    }
    return REVL_OK;
}

/* ------------------------------------------------------------------ the search */

static int report(revl_tuner *t, revl_tuner_report *r, size_t index, double loss, double step,
                  int accepted)
{
    if (!r)
        return REVL_OK;
    r->phase = t->phase == REVL_TUNE_PHASE_DONE ? REVL_TUNE_PHASE_REFINE : t->phase;
    r->index = index;
    r->loss = loss;
    r->best_loss = t->best_loss;
    r->step_size = step;
    r->accepted = accepted;
    r->start = t->start;
    r->seconds = rv_tuner_seconds(t);
    r->eta_seconds = eta(t);
    r->runs = t->runs;
    return REVL_OK;
}

static int search_step(revl_tuner *t, revl_tuner_report *r)
{
    int rc = rv_sampler_propose(t->sampler, t->u);
    if (rc)
        return rv_fail(t->err, rc, "search: no memory for a proposal");
    for (size_t i = 0; i < t->ns; i++)
        t->theta_s[i] = t->lo[i] + t->u[i] * (t->hi[i] - t->lo[i]);
    rc = revl_family_map(t->search, t->theta_s, t->z);
    if (rc)
        return rv_fail(t->err, rc, "search family: %s", revl_family_last_error(t->search));
    double f, acc;
    rc = train_eval(t, t->z, 0, 0, &f, &acc);
    if (rc)
        return rc;
    rc = rv_sampler_tell(t->sampler, t->u, f);
    if (rc)
        return rv_fail(t->err, rc, "search: no memory to record evaluation %zu", t->search_evals);
    note_best(t, t->z, f, acc);
    report(t, r, t->search_evals, f, NAN, 1);
    t->search_evals++;
    return REVL_OK;
}

/* ------------------------------------------------------------------ the refinement */

/* z of refinement start k: the k-th best distinct finite search result, else the refine
 * family's base point. 0 when there is none (fewer finite results than starts). */
static int start_point(revl_tuner *t, size_t k, double *z)
{
    if (!t->sampler) {
        if (k > 0)
            return 0;
        revl_family_get_base(t->refine, z);
        return 1;
    }
    size_t n = rv_sampler_n_told(t->sampler);
    /* selection of the k-th best by repeated minimum over losses above the previous one: the
     * told list is short and this runs once per start */
    double prev = -INFINITY;
    size_t pick = SIZE_MAX;
    for (size_t rank = 0; rank <= k; rank++) {
        double best = INFINITY;
        pick = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            double l;
            rv_sampler_point(t->sampler, i, &l);
            if (l > prev && l < best) {
                best = l;
                pick = i;
            }
        }
        if (pick == SIZE_MAX)
            return 0;
        prev = best;
    }
    const double *u = rv_sampler_point(t->sampler, pick, NULL);
    for (size_t i = 0; i < t->ns; i++)
        t->theta_s[i] = t->lo[i] + u[i] * (t->hi[i] - t->lo[i]);
    return revl_family_map(t->search, t->theta_s, z) == REVL_OK;
}

/* g_acc (d f / d z) to d f / d theta through the refine family's transpose, into t->grad. */
static int to_theta(revl_tuner *t, const double *theta)
{
    int rc = revl_family_vjp(t->refine, theta, t->g_acc, t->grad);
    if (rc)
        return rv_fail(t->err, rc, "refine family transpose: %s",
                       revl_family_last_error(t->refine));
    for (size_t i = 0; i < t->nr; i++)
        if (!isfinite(t->grad[i]))
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "hypergradient is %g at theta[%zu] of the refine family", t->grad[i],
                           i);
    return REVL_OK;
}

enum measure_mode {
    LOSS,      /* the loss only: a forward-only training will do */
    LOSS_KEEP, /* the loss, the run kept for a reverse pass that may follow (one order) */
    LOSS_GRAD  /* the loss and its hypergradient */
};

/* Loss (averaged over the minibatch orders) at the refine family's theta; with LOSS_GRAD, its
 * hypergradient with respect to theta into t->grad. Leaves t->z = map(theta). */
static int measure(revl_tuner *t, const double *theta, enum measure_mode mode, double *f,
                   double *acc)
{
    int grad = mode == LOSS_GRAD, keep = mode != LOSS;
    int rc = revl_family_map(t->refine, theta, t->z);
    if (rc)
        return rv_fail(t->err, rc, "refine family: %s", revl_family_last_error(t->refine));
    size_t n_orders = t->opts.n_orders;
    uint64_t own = 0;
    if (n_orders > 1)
        rv_mlp_order_seed(t->model, &own);
    memset(t->g_acc, 0, t->n_z * sizeof *t->g_acc);
    double sum = 0, sum_acc = 0;
    rc = REVL_OK;
    for (size_t k = 0; k < n_orders && !rc; k++) {
        if (n_orders > 1)
            revl_mlp_set_order_seed(t->model, own + k);
        double fk, ak;
        rc = train_eval(t, t->z, keep, grad, &fk, &ak);
        if (!rc && fk == INFINITY) {
            sum = INFINITY;
            break;
        }
        if (!rc && k == 0 && n_orders == 1)
            note_best(t, t->z, fk, ak);
        if (!rc && grad)
            rc = add_hypergrad(t, t->z);
        sum += fk;
        sum_acc += ak;
    }
    if (n_orders > 1)
        revl_mlp_set_order_seed(t->model, own);
    if (rc)
        return rc;
    *f = sum / (double)n_orders;
    *acc = sum_acc / (double)n_orders;
    if (grad && *f < INFINITY) {
        for (size_t k = 0; k < t->n_z; k++)
            t->g_acc[k] /= (double)n_orders;
        return to_theta(t, theta);
    }
    return REVL_OK;
}

/* The hypergradient at theta whose run (one order) the trainer still holds from measure(..,
 * KEEP): the validation gradient, then the reverse pass, into t->grad. */
static int grad_of_held_run(revl_tuner *t, const double *theta)
{
    double f, acc;
    int rc = revl_family_map(t->refine, theta, t->z);
    if (rc)
        return rv_fail(t->err, rc, "refine family: %s", revl_family_last_error(t->refine));
    rc = objective(t, meta_of(t, t->z), 1, &f, &acc);
    if (rc)
        return rc;
    memset(t->g_acc, 0, t->n_z * sizeof *t->g_acc);
    rc = add_hypergrad(t, t->z);
    if (rc)
        return rc;
    return to_theta(t, theta);
}

/* The averaged point of several orders is not one training's: its weights are not kept, so the
 * best point of an averaged refinement is noted by the first order's run (measure) only when
 * n_orders == 1; with more orders it is retrained once on the model's own order. */
static int note_best_averaged(revl_tuner *t, const double *theta, double f)
{
    if (t->opts.n_orders == 1 || !(f < t->best_loss))
        return REVL_OK;
    double f0, a0;
    int rc = revl_family_map(t->refine, theta, t->z);
    if (!rc)
        rc = train_eval(t, t->z, 0, 0, &f0, &a0);
    if (rc)
        return rc;
    note_best(t, t->z, f0, a0);
    return REVL_OK;
}

/* Adam's moments take the new hypergradient (the direction of the next steps). */
static void take_grad(revl_tuner *t)
{
    t->adam_t++;
    for (size_t i = 0; i < t->nr; i++) {
        t->m1[i] = ADAM_B1 * t->m1[i] + (1.0 - ADAM_B1) * t->grad[i];
        t->m2[i] = ADAM_B2 * t->m2[i] + (1.0 - ADAM_B2) * t->grad[i] * t->grad[i];
    }
}

/* cand = theta - step * d / max|d|, d = Adam's direction: the largest coordinate moves by step.
 * The ADAM method takes d unnormalised (today's hyper-optimiser). */
static void propose_step(revl_tuner *t, int normalise)
{
    double c1 = 1.0 - pow(ADAM_B1, (double)t->adam_t), c2 = 1.0 - pow(ADAM_B2, (double)t->adam_t);
    double big = 0;
    for (size_t i = 0; i < t->nr; i++) {
        t->cand[i] = (t->m1[i] / c1) / (sqrt(t->m2[i] / c2) + ADAM_EPS);
        big = fmax(big, fabs(t->cand[i]));
    }
    double s = normalise && big > 0 ? t->step / big : t->step;
    for (size_t i = 0; i < t->nr; i++)
        t->cand[i] = t->theta[i] - s * t->cand[i];
}

/* Begin refinement start t->start: train its point, take its hypergradient. */
static int begin_start(revl_tuner *t, revl_tuner_report *r)
{
    for (;;) {
        if (t->start >= t->opts.refine_starts || !start_point(t, t->start, t->z)) {
            /* every start has ended before the budget: the rest goes to the search, which
             * never loses what it has found */
            if (t->sampler) {
                t->phase = REVL_TUNE_PHASE_SEARCH;
                t->search_rest = 1;
                return search_step(t, r);
            }
            t->phase = REVL_TUNE_PHASE_DONE;
            rv_fail(t->err, REVL_OK, "tuning finished: %zu refinement start(s) done",
                    t->start);
            return report(t, r, t->refine_iters, NAN, NAN, 0);
        }
        memcpy(t->start_z, t->z, t->n_z * sizeof *t->z);
        int rc = revl_family_set_base(t->refine, t->z);
        if (!rc)
            rc = revl_family_project(t->refine, t->z, t->theta);
        if (rc)
            return rv_fail(t->err, rc, "refinement start %zu: %s", t->start,
                           revl_family_last_error(t->refine));
        memset(t->m1, 0, t->nr * sizeof *t->m1);
        memset(t->m2, 0, t->nr * sizeof *t->m2);
        t->adam_t = 0;
        t->step = t->opts.refine_step;
        t->min_norm = INFINITY;
        double f, acc;
        rc = measure(t, t->theta, LOSS_GRAD, &f, &acc);
        if (rc)
            return rc;
        if (f == INFINITY) { /* the start point diverges with this family: try the next */
            t->start++;
            continue;
        }
        rc = note_best_averaged(t, t->theta, f);
        if (rc)
            return rc;
        t->cur_loss = f;
        take_grad(t);
        t->have_point = 1;
        report(t, r, t->refine_iters, f, t->step, 1);
        t->refine_iters++;
        return REVL_OK;
    }
}

static void end_start(revl_tuner *t)
{
    t->have_point = 0;
    t->start++;
}

static int refine_step(revl_tuner *t, revl_tuner_report *r)
{
    if (!t->have_point)
        return begin_start(t, r);
    double f, acc;
    int rc;
    if (t->opts.refine_method == REVL_REFINE_ADAM) {
        /* today's hyper-optimiser: every step taken; a hypergradient norm far above the running
         * minimum (chaos) halves the step and the update is not taken */
        propose_step(t, 0);
        memcpy(t->theta, t->cand, t->nr * sizeof *t->theta);
        rc = measure(t, t->theta, LOSS_GRAD, &f, &acc);
        if (rc)
            return rc;
        if (f == INFINITY)
            return rv_fail(t->err, REVL_ERR_RANGE,
                           "refinement (Adam): training diverged at meta-iteration %zu; the "
                           "backtracking method (REVL_REFINE_BACKTRACK) cannot do this",
                           t->refine_iters);
        rc = note_best_averaged(t, t->theta, f);
        if (rc)
            return rc;
        double sq = 0;
        for (size_t i = 0; i < t->nr; i++)
            sq += t->grad[i] * t->grad[i];
        double norm = sqrt(sq);
        int chaos = t->min_norm > 0 && isfinite(t->min_norm) && norm > 10.0 * t->min_norm;
        if (chaos) {
            t->step *= 0.5;
        } else {
            t->min_norm = fmin(t->min_norm, norm);
            take_grad(t);
        }
        t->cur_loss = f;
        report(t, r, t->refine_iters, f, t->step, !chaos);
        t->refine_iters++;
        return REVL_OK;
    }
    /* backtracking: keep the step only if the loss falls */
    propose_step(t, 1);
    rc = measure(t, t->cand, t->opts.n_orders == 1 ? LOSS_KEEP : LOSS, &f, &acc);
    if (rc)
        return rc;
    int accepted = f < t->cur_loss;
    double step = t->step;
    if (accepted) {
        rc = note_best_averaged(t, t->cand, f);
        if (rc)
            return rc;
        memcpy(t->theta, t->cand, t->nr * sizeof *t->theta);
        t->cur_loss = f;
        /* the hypergradient at the new point: the run just made is reversed directly */
        if (t->opts.n_orders == 1) {
            rc = grad_of_held_run(t, t->theta);
        } else {
            rc = measure(t, t->theta, LOSS_GRAD, &f, &acc);
        }
        if (rc)
            return rc;
        take_grad(t);
        t->step = fmin(t->step * t->opts.step_grow, MAX_STEP);
    } else {
        t->step *= t->opts.step_shrink;
    }
    report(t, r, t->refine_iters, f, step, accepted);
    t->refine_iters++;
    if (t->step < t->opts.min_step)
        end_start(t);
    return REVL_OK;
}

/* ------------------------------------------------------------------ driver */

int revl_tuner_step(revl_tuner *t, revl_tuner_report *r)
{
    if (!t)
        return REVL_ERR_INVALID;
    if (r && rv_struct_size_check(t->err, RV_STRUCT_TUNER_REPORT, r->struct_size))
        return REVL_ERR_INVALID;
    if (t->in_step)
        return rv_fail(t->err, REVL_ERR_STATE,
                       "revl_tuner_step called during a step (from a callback?)");
    rv_clear(t->err);
    if (!t->clock_started) {
        clock_now(t, &t->t0);
        t->clock_started = 1;
    }
    if (t->phase != REVL_TUNE_PHASE_DONE && used(t) >= 1.0)
        t->phase = REVL_TUNE_PHASE_DONE;
    if (t->phase == REVL_TUNE_PHASE_SEARCH && !t->search_rest && used(t) >= search_share(t))
        t->phase = t->opts.strategy == REVL_TUNE_SEARCH ? REVL_TUNE_PHASE_DONE
                                                        : REVL_TUNE_PHASE_REFINE;
    if (t->phase == REVL_TUNE_PHASE_DONE) {
        report(t, r, t->phase == REVL_TUNE_PHASE_SEARCH ? t->search_evals : t->refine_iters,
               NAN, NAN, 0);
        return rv_fail(t->err, REVL_OK, "tuning finished: budget spent (%zu runs, %.3g s)",
                       t->runs, rv_tuner_seconds(t));
    }
    t->in_step = 1;
    int rc;
    if (t->phase == REVL_TUNE_PHASE_SEARCH) {
        rc = search_step(t, r);
    } else {
        rc = refine_step(t, r);
    }
    t->in_step = 0;
    return rc;
}

int revl_tuner_run(revl_tuner *t)
{
    if (!t)
        return REVL_ERR_INVALID;
    while (t->phase != REVL_TUNE_PHASE_DONE) {
        revl_tuner_report r;
        revl_tuner_report_init(&r);
        int rc = revl_tuner_step(t, &r);
        if (rc)
            return rc;
        if (t->phase == REVL_TUNE_PHASE_DONE && isnan(r.loss))
            break; /* the step only found the budget spent: nothing to report */
        char note[RV_ERRLEN];
        memcpy(note, t->err, sizeof note);
        if (t->opts.report && t->opts.report(&r, t->opts.report_user)) {
            rv_fail(t->err, REVL_OK, "run stopped by the report callback after %s %zu",
                    r.phase == REVL_TUNE_PHASE_SEARCH ? "evaluation" : "meta-iteration",
                    r.index);
            return REVL_OK;
        }
        memcpy(t->err, note, sizeof note);
    }
    return REVL_OK;
}

/* ------------------------------------------------------------------ results */

static int need_best(const revl_tuner *tc, const char *fn)
{
    revl_tuner *t = (revl_tuner *)tc; /* the message is not what const protects */
    if (t->have_best)
        return REVL_OK;
    return rv_fail(t->err, REVL_ERR_STATE, "%s: no evaluation has finished yet", fn);
}

int revl_tuner_get_result(revl_tuner *t, revl_tuner_result *r)
{
    if (!t || !r)
        return REVL_ERR_INVALID;
    if (rv_struct_size_check(t->err, RV_STRUCT_TUNER_RESULT, r->struct_size))
        return REVL_ERR_INVALID;
    revl_tuner_result out = *r;
    out.valid_loss = t->best_loss;
    out.valid_accuracy = t->opts.objective ? NAN : t->best_acc;
    out.test_loss = out.test_accuracy = NAN;
    if (t->opts.test && t->have_best) {
        int rc = revl_model_evaluate(t->model, t->opts.test, t->best_w, &out.test_loss, NULL,
                                     &out.test_accuracy);
        if (rc)
            return rv_fail(t->err, rc, "test set: %s", revl_model_last_error(t->model));
    }
    out.search_evaluations = t->search_evals;
    out.refine_iterations = t->refine_iters;
    out.runs = t->runs;
    out.seconds = rv_tuner_seconds(t);
    out.best_phase = t->best_phase;
    *r = out;
    return REVL_OK;
}

int revl_tuner_best_kind(const revl_tuner *t, revl_hyper kind, double *values)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = need_best(t, "revl_tuner_best_kind");
    if (rc)
        return rc;
    int j = rv_optim_kind_index(t->opt, kind);
    if (j < 0 || !values)
        return rv_fail(((revl_tuner *)t)->err, REVL_ERR_INVALID,
                       "revl_tuner_best_kind: %s", !values ? "values is NULL"
                       : "the optimiser has no such kind");
    rv_coord c = rv_kind_coord(kind);
    for (size_t k = 0; k < t->n_sg; k++)
        values[k] = rv_from_unconstrained(c, t->best_z[(size_t)j * t->n_sg + k]);
    return REVL_OK;
}

int revl_tuner_best_scales_meta(const revl_tuner *t, double *log_init_scales, double *meta)
{
    if (!t)
        return REVL_ERR_INVALID;
    int rc = need_best(t, "revl_tuner_best_scales_meta");
    if (rc)
        return rc;
    size_t off = t->n_kinds * t->n_sg;
    if (log_init_scales)
        memcpy(log_init_scales, t->best_z + off, t->n_groups * sizeof *log_init_scales);
    if (meta && t->n_meta)
        memcpy(meta, t->best_z + off + t->n_groups, t->n_meta * sizeof *meta);
    return REVL_OK;
}

int revl_tuner_best_z(const revl_tuner *t, double *z)
{
    if (!t || !z)
        return REVL_ERR_INVALID;
    int rc = need_best(t, "revl_tuner_best_z");
    if (!rc)
        memcpy(z, t->best_z, t->n_z * sizeof *z);
    return rc;
}

int revl_tuner_best_weights(const revl_tuner *t, double *w)
{
    if (!t || !w)
        return REVL_ERR_INVALID;
    int rc = need_best(t, "revl_tuner_best_weights");
    if (!rc)
        memcpy(w, t->best_w, t->n_params * sizeof *w);
    return rc;
}

int revl_tuner_best_schedule(const revl_tuner *t, revl_schedule *s)
{
    if (!t || !s)
        return REVL_ERR_INVALID;
    int rc = need_best(t, "revl_tuner_best_schedule");
    if (rc)
        return rc;
    revl_tuner *tm = (revl_tuner *)t;
    if (revl_schedule_optimizer(s) != t->opt->id || revl_schedule_n_steps(s) != t->n_steps ||
        revl_schedule_n_groups(s) != t->n_groups)
        return rv_fail(tm->err, REVL_ERR_INVALID,
                       "revl_tuner_best_schedule: the schedule is not %s with %zu steps and %zu "
                       "groups", t->opt->name, t->n_steps, t->n_groups);
    /* checked as a whole first (the tuner's own schedule), so that s is untouched on error */
    rc = load_schedule(tm, t->best_z);
    for (size_t j = 0; j < t->n_kinds && !rc; j++) {
        revl_schedule_get_kind(t->sched, t->opt->kinds[j], tm->dz);
        rc = revl_schedule_set_kind(s, t->opt->kinds[j], tm->dz);
    }
    if (!rc && t->z_clip != SIZE_MAX) {
        revl_schedule_get_kind(t->sched, REVL_HYPER_CLIP, tm->dz);
        rc = revl_schedule_set_kind(s, REVL_HYPER_CLIP, tm->dz);
    }
    if (rc)
        return rv_fail(tm->err, rc, "revl_tuner_best_schedule: %s", revl_schedule_last_error(s));
    return REVL_OK;
}

int revl_tuner_refine_point(const revl_tuner *t, double *theta, double *grad, double *loss)
{
    if (!t)
        return REVL_ERR_INVALID;
    if (!t->have_point)
        return rv_fail(((revl_tuner *)t)->err, REVL_ERR_STATE,
                       "revl_tuner_refine_point: no refinement start is in progress");
    if (theta)
        memcpy(theta, t->theta, t->nr * sizeof *theta);
    if (grad)
        memcpy(grad, t->grad, t->nr * sizeof *grad);
    if (loss)
        *loss = t->cur_loss;
    return REVL_OK;
}

size_t revl_tuner_n_theta(const revl_tuner *t, int phase)
{
    if (!t)
        return 0;
    return phase == REVL_TUNE_PHASE_SEARCH ? t->ns : phase == REVL_TUNE_PHASE_REFINE ? t->nr : 0;
}
