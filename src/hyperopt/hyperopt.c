/* hyperopt.c: the hyper-optimiser: meta-iterations of train -> validation objective ->
 * exact hypergradient -> Adam or momentum-SGD update in unconstrained coordinates (log alpha,
 * logit gamma, logit beta1/beta2, log eps, log init scale, meta) for any optimiser, with a guard against the chaotic hypergradients of long
 * horizons and large learning rates, and the best hyperparameters seen so far. */
#include "hyperopt/hyperopt.h"
#include "hyperopt/coords.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <time.h>


void revl_hyperopt_report_init(revl_hyperopt_report *r)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
}

void revl_hyperopt_options_init(revl_hyperopt_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE;
    o->method = REVL_META_ADAM;
    o->step_size = 0.04;
    o->momentum = 0.9;
    o->adam_beta1 = 0.9;
    o->adam_beta2 = 0.999;
    o->adam_eps = 1e-8;
    o->iterations = 50;
    o->chaos_factor = 10.0;
    o->chaos_action = REVL_CHAOS_SHRINK;
    o->frac_bits = 52;
}

/* Options that make no sense are refused at create rather than producing NaN later. */
#define OPTION_FAIL(...) rv_fail(rv_create_err(), REVL_ERR_INVALID, "revl_hyperopt_create: " __VA_ARGS__)
static int check_options(const revl_hyperopt_options *o)
{
    const unsigned all = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE |
                         REVL_LEARN_META | REVL_LEARN_BETA1 | REVL_LEARN_BETA2 | REVL_LEARN_EPS |
                         REVL_LEARN_WEIGHT_DECAY | REVL_LEARN_CLIP;
    if (o->learn & ~all)
        return OPTION_FAIL("learn = %u has unknown bits (known: %u)", o->learn, all);
    if (o->method != REVL_META_ADAM && o->method != REVL_META_SGD)
        return OPTION_FAIL("method = %d is not REVL_META_ADAM or REVL_META_SGD", (int)o->method);
    if (!(isfinite(o->step_size) && o->step_size > 0))
        return OPTION_FAIL("step_size = %g must be finite and > 0", o->step_size);
    if (!(o->momentum >= 0 && o->momentum < 1))
        return OPTION_FAIL("momentum = %g outside [0, 1)", o->momentum);
    if (!(o->adam_beta1 >= 0 && o->adam_beta1 < 1) || !(o->adam_beta2 >= 0 && o->adam_beta2 < 1))
        return OPTION_FAIL("adam_beta1 = %g, adam_beta2 = %g: both must be in [0, 1)",
                           o->adam_beta1, o->adam_beta2);
    /* eps > 0: a coordinate whose gradient is exactly 0 would otherwise step by 0/0 */
    if (!(isfinite(o->adam_eps) && o->adam_eps > 0))
        return OPTION_FAIL("adam_eps = %g must be finite and > 0", o->adam_eps);
    if (!(isfinite(o->chaos_factor) && o->chaos_factor >= 0))
        return OPTION_FAIL("chaos_factor = %g must be finite and >= 0", o->chaos_factor);
    if (o->chaos_action != REVL_CHAOS_SHRINK && o->chaos_action != REVL_CHAOS_STOP)
        return OPTION_FAIL("chaos_action = %d is not SHRINK or STOP", (int)o->chaos_action);
    return REVL_OK;
}

static void free_arrays(revl_hyperopt *h)
{
    const revl_allocator *a = &h->alloc;
    double *arrays[] = {h->cur,  h->best,      h->m1,      h->m2,        h->prev,
                        h->prev_m1, h->prev_m2, h->prev_grad, h->grad, h->w0,
                        h->wT,   h->dfdw,      h->d_w0,    h->dfdmeta};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        rv_free(a, arrays[k]);
}

void revl_hyperopt_free(revl_hyperopt *h)
{
    if (!h)
        return;
    revl_allocator a = h->alloc;
    revl_trainer_free(h->trainer);
    revl_schedule_free(h->sched);
    free_arrays(h);
    rv_free(&a, h->offsets);
    rv_free(&a, h);
}

/* The schedule and trainer the hyper-optimiser owns, over the model's groups (kept in
 * h->offsets, so that a later change of the model's groups is seen). */
static int create_trainer(revl_hyperopt *h)
{
    h->offsets = rv_calloc(&h->alloc, h->n_groups + 1, sizeof *h->offsets);
    if (!h->offsets)
        return REVL_ERR_NOMEM;
    revl_model_group_offsets(h->model, h->offsets);
    int rc = revl_schedule_create_for(&h->sched, h->opt->id, h->n_steps, h->n_groups, h->offsets,
                                      &h->alloc);
    if (rc)
        return rc;
    revl_trainer_options to;
    revl_trainer_options_init(&to);
    to.frac_bits = h->opts.frac_bits;
    to.threads = h->opts.threads;
    to.allocator = &h->alloc;
    return revl_trainer_create(&h->trainer, h->model, h->sched, &to);
}

int revl_hyperopt_create(revl_hyperopt **out, revl_model *model, const revl_dataset *valid,
                         size_t n_steps, const revl_hyperopt_options *opts)
{
    return revl_hyperopt_create_for(out, model, valid, n_steps, REVL_OPTIM_MOMENTUM, opts);
}

static int hyperopt_create(revl_hyperopt **out, revl_model *model, const revl_dataset *valid,
                             size_t n_steps, revl_optimizer optimizer,
                             const revl_hyperopt_options *opts);

int revl_hyperopt_create_for(revl_hyperopt **out, revl_model *model, const revl_dataset *valid,
                             size_t n_steps, revl_optimizer optimizer,
                             const revl_hyperopt_options *opts)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(hyperopt_create(out, model, valid, n_steps, optimizer, opts), "revl_hyperopt_create_for");
}

static int hyperopt_create(revl_hyperopt **out, revl_model *model, const revl_dataset *valid,
                             size_t n_steps, revl_optimizer optimizer,
                             const revl_hyperopt_options *opts)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    const rv_optim *opt = rv_optim_get(optimizer);
    if (!model || n_steps == 0 || !opt)
        return REVL_ERR_INVALID;
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    if (opts) {
        if (rv_struct_size_check(rv_create_err(), RV_STRUCT_HYPEROPT_OPTIONS, opts->struct_size))
            return REVL_ERR_INVALID;
        o = *opts;
    }
    if (check_options(&o))
        return REVL_ERR_INVALID; /* the message is in rv_create_err() */
    /* f comes from the user's objective, or from a built-in model evaluating `valid` */
    if (!o.objective && (!valid || !model->builtin.evaluate))
        return REVL_ERR_INVALID;
    size_t g = revl_model_n_groups(model), p = revl_model_n_params(model);
    size_t nm = revl_model_n_meta(model);
    int ok = 1;
    size_t n_sg = rv_mul_size(n_steps, g, &ok);
    size_t n_theta = 0;
    if (ok && (__builtin_mul_overflow(n_sg, opt->n_kinds, &n_theta) ||
               __builtin_add_overflow(n_theta, g, &n_theta) ||
               __builtin_add_overflow(n_theta, nm, &n_theta)))
        ok = 0;
    size_t clip_off = (o.learn & REVL_LEARN_CLIP) ? n_theta : SIZE_MAX;
    if (ok && clip_off != SIZE_MAX && __builtin_add_overflow(n_theta, n_sg, &n_theta))
        ok = 0;
    if (!ok)
        return REVL_ERR_INVALID;

    revl_allocator alloc;
    rv_allocator_copy(&alloc, o.allocator);
    revl_hyperopt *h = rv_calloc(&alloc, 1, sizeof *h);
    if (!h)
        return REVL_ERR_NOMEM;
    h->alloc = alloc;
    h->opts = o;
    h->opts.allocator = NULL;
    h->model = model;
    h->valid = valid;
    h->opt = opt;
    h->n_kinds = opt->n_kinds;
    h->clip_off = clip_off;
    h->n_steps = n_steps;
    h->n_groups = g;
    h->n_params = p;
    h->n_meta = nm;
    h->n_sg = n_sg;
    h->n_theta = n_theta;
    h->best_loss = INFINITY;
    h->min_norm = INFINITY;
    h->step_size = o.step_size;

    int rc = create_trainer(h);
    if (rc) {
        revl_hyperopt_free(h);
        return rc;
    }
    const revl_allocator *a = &h->alloc;
    double **theta_arrays[] = {&h->cur,     &h->best,    &h->m1,        &h->m2,  &h->prev,
                               &h->prev_m1, &h->prev_m2, &h->prev_grad, &h->grad};
    double **param_arrays[] = {&h->w0, &h->wT, &h->dfdw, &h->d_w0};
    for (size_t k = 0; k < sizeof theta_arrays / sizeof theta_arrays[0]; k++)
        if (!(*theta_arrays[k] = rv_calloc(a, n_theta, sizeof(double))))
            rc = REVL_ERR_NOMEM;
    for (size_t k = 0; k < sizeof param_arrays / sizeof param_arrays[0]; k++)
        if (!(*param_arrays[k] = rv_calloc(a, p, sizeof(double))))
            rc = REVL_ERR_NOMEM;
    if (nm && !(h->dfdmeta = rv_calloc(a, nm, sizeof(double))))
        rc = REVL_ERR_NOMEM;
    if (rc) {
        revl_hyperopt_free(h);
        return rc;
    }
    /* momentum: the paper's starting point; other optimisers: their schedule defaults; meta
     * stays 0 from calloc */
    for (size_t j = 0; j < opt->n_kinds; j++)
        revl_schedule_get_kind(h->sched, opt->kinds[j], h->cur + j * n_sg);
    if (opt->id == REVL_OPTIM_MOMENTUM)
        for (size_t k = 0; k < n_sg; k++) {
            h->cur[k] = exp(-1.0);
            h->cur[n_sg + k] = 0.5;
        }
    for (size_t k = 0; k < g; k++)
        h->cur[opt->n_kinds * n_sg + k] = -3.0;
    for (size_t k = 0; k < nm; k++)
        h->cur[opt->n_kinds * n_sg + g + k] = model->builtin.meta_start;
    /* the schedule's clip (+inf): set_kind gives the finite start a learned log clip needs */
    if (clip_off != SIZE_MAX)
        revl_schedule_get_kind(h->sched, REVL_HYPER_CLIP, h->cur + clip_off);
    *out = h;
    return REVL_OK;
}

size_t revl_hyperopt_n_steps(const revl_hyperopt *h) { return h ? h->n_steps : 0; }
size_t revl_hyperopt_n_groups(const revl_hyperopt *h) { return h ? h->n_groups : 0; }
const char *revl_hyperopt_last_error(const revl_hyperopt *h)
{
    return h ? h->err : "hyper-optimiser is NULL";
}

size_t rv_hyperopt_kind_offset(const revl_hyperopt *h, revl_hyper kind)
{
    if (kind == REVL_HYPER_CLIP)
        return h->clip_off;
    int j = rv_optim_kind_index(h->opt, kind);
    return j < 0 ? SIZE_MAX : (size_t)j * h->n_sg;
}

/* One kind's n_sg values in its range. */
static int check_kind(revl_hyperopt *h, revl_hyper kind, const double *v)
{
    char why[128];
    for (size_t k = 0; k < h->n_sg; k++)
        if (rv_hyper_problem(kind, v[k], why, sizeof why))
            return rv_fail(h->err, REVL_ERR_INVALID, "%s at step %zu, group %zu", why,
                           k / h->n_groups, k % h->n_groups);
    return REVL_OK;
}

static int check_scales_meta(revl_hyperopt *h, const double *log_init_scales, const double *meta)
{
    for (size_t k = 0; log_init_scales && k < h->n_groups; k++)
        if (!isfinite(log_init_scales[k]))
            return rv_fail(h->err, REVL_ERR_INVALID, "log init scale of group %zu is not finite",
                           k);
    for (size_t k = 0; meta && k < h->n_meta; k++)
        if (!isfinite(meta[k]))
            return rv_fail(h->err, REVL_ERR_INVALID, "meta[%zu] is not finite", k);
    return REVL_OK;
}

int rv_hyperopt_check_theta(revl_hyperopt *h, const double *x)
{
    for (size_t j = 0; j < h->n_kinds; j++) {
        int rc = check_kind(h, h->opt->kinds[j], x + j * h->n_sg);
        if (rc)
            return rc;
    }
    if (h->clip_off != SIZE_MAX) {
        int rc = check_kind(h, REVL_HYPER_CLIP, x + h->clip_off);
        if (rc)
            return rc;
    }
    size_t off = h->n_kinds * h->n_sg;
    return check_scales_meta(h, x + off, x + off + h->n_groups);
}

void rv_hyperopt_values_replaced(revl_hyperopt *h)
{
    h->have_prev = 0;
}

int rv_hyperopt_not_in_step(revl_hyperopt *h, const char *function)
{
    if (!h->in_step)
        return REVL_OK;
    return rv_fail(h->err, REVL_ERR_STATE,
                   "%s called during meta-iteration %zu (from the objective callback?): the "
                   "values it would replace are in use", function, h->iteration);
}

/* The block of kind in theta, or NULL with a message naming the function. */
static double *kind_block(revl_hyperopt *h, double *theta, revl_hyper kind, const char *fn)
{
    size_t off = rv_hyperopt_kind_offset(h, kind);
    if (off != SIZE_MAX)
        return theta + off;
    const char *name = revl_hyper_name(kind);
    if (name)
        rv_fail(h->err, REVL_ERR_INVALID, "%s: this %s hyper-optimiser has no %s", fn,
                h->opt->name, name);
    else
        rv_fail(h->err, REVL_ERR_INVALID, "%s: unknown hyperparameter kind %d", fn, (int)kind);
    return NULL;
}

int revl_hyperopt_set(revl_hyperopt *h, const double *alpha, const double *gamma,
                      const double *log_init_scales, const double *meta)
{
    if (!h)
        return REVL_ERR_INVALID;
    int rc = rv_hyperopt_not_in_step(h, "revl_hyperopt_set");
    if (rc)
        return rc;
    double *ca = kind_block(h, h->cur, REVL_HYPER_ALPHA, "revl_hyperopt_set");
    double *cg = gamma ? kind_block(h, h->cur, REVL_HYPER_GAMMA, "revl_hyperopt_set") : NULL;
    if (gamma && !cg)
        return REVL_ERR_INVALID;
    rc = alpha ? check_kind(h, REVL_HYPER_ALPHA, alpha) : REVL_OK;
    if (!rc && gamma)
        rc = check_kind(h, REVL_HYPER_GAMMA, gamma);
    if (!rc)
        rc = check_scales_meta(h, log_init_scales, meta);
    if (rc)
        return rc;
    size_t n = h->n_sg, g = h->n_groups, off = h->n_kinds * n;
    if (alpha)
        memcpy(ca, alpha, n * sizeof *alpha);
    if (gamma)
        memcpy(cg, gamma, n * sizeof *gamma);
    if (log_init_scales)
        memcpy(h->cur + off, log_init_scales, g * sizeof *log_init_scales);
    if (meta && h->n_meta)
        memcpy(h->cur + off + g, meta, h->n_meta * sizeof *meta);
    rv_hyperopt_values_replaced(h);
    rv_clear(h->err);
    return REVL_OK;
}

/* before any meta-iteration there is no best yet: the current values stand in for it */
static const double *values_of(const revl_hyperopt *h, int best)
{
    return best && h->have_best ? h->best : h->cur;
}

int revl_hyperopt_get(const revl_hyperopt *hc, int best, double *alpha, double *gamma,
                      double *log_init_scales, double *meta)
{
    if (!hc)
        return REVL_ERR_INVALID;
    revl_hyperopt *h = (revl_hyperopt *)hc; /* the message is not what const protects */
    double *src = (double *)values_of(h, best);
    size_t n = h->n_sg, g = h->n_groups, off = h->n_kinds * n;
    const double *sa = kind_block(h, src, REVL_HYPER_ALPHA, "revl_hyperopt_get");
    const double *sg = gamma ? kind_block(h, src, REVL_HYPER_GAMMA, "revl_hyperopt_get") : NULL;
    if (gamma && !sg)
        return REVL_ERR_INVALID;
    if (alpha)
        memcpy(alpha, sa, n * sizeof *alpha);
    if (gamma)
        memcpy(gamma, sg, n * sizeof *gamma);
    if (log_init_scales)
        memcpy(log_init_scales, src + off, g * sizeof *log_init_scales);
    if (meta && h->n_meta)
        memcpy(meta, src + off + g, h->n_meta * sizeof *meta);
    return REVL_OK;
}

int revl_hyperopt_set_kind(revl_hyperopt *h, revl_hyper kind, const double *values)
{
    if (!h)
        return REVL_ERR_INVALID;
    int rc = rv_hyperopt_not_in_step(h, "revl_hyperopt_set_kind");
    if (rc)
        return rc;
    double *dst = kind == REVL_HYPER_CLIP && h->clip_off == SIZE_MAX
                      ? NULL
                      : kind_block(h, h->cur, kind, "revl_hyperopt_set_kind");
    if (!dst && !(kind == REVL_HYPER_CLIP && h->clip_off == SIZE_MAX))
        return REVL_ERR_INVALID;
    if (!values)
        return rv_fail(h->err, REVL_ERR_INVALID, "revl_hyperopt_set_kind: values is NULL");
    rc = check_kind(h, kind, values);
    if (rc)
        return rc;
    if (kind == REVL_HYPER_CLIP && h->clip_off == SIZE_MAX) { /* a fixed clip, not learned */
        rc = revl_schedule_set_kind(h->sched, kind, values);
        if (rc)
            return rv_fail(h->err, rc, "schedule: %s", revl_schedule_last_error(h->sched));
        rv_clear(h->err);
        return REVL_OK;
    }
    memcpy(dst, values, h->n_sg * sizeof *values);
    rv_hyperopt_values_replaced(h);
    rv_clear(h->err);
    return REVL_OK;
}

int revl_hyperopt_get_kind(const revl_hyperopt *hc, int best, revl_hyper kind, double *values)
{
    if (!hc || !values)
        return REVL_ERR_INVALID;
    revl_hyperopt *h = (revl_hyperopt *)hc;
    if (kind == REVL_HYPER_CLIP && h->clip_off == SIZE_MAX) /* fixed: the owned schedule's */
        return revl_schedule_get_kind(h->sched, kind, values) ? REVL_ERR_INVALID : REVL_OK;
    const double *src = kind_block(h, (double *)values_of(h, best), kind, "revl_hyperopt_get_kind");
    if (!src)
        return REVL_ERR_INVALID;
    memcpy(values, src, h->n_sg * sizeof *values);
    return REVL_OK;
}

revl_optimizer revl_hyperopt_optimizer(const revl_hyperopt *h)
{
    return h ? h->opt->id : REVL_OPTIM_MOMENTUM;
}

/* ------------------------------------------------------------------ one meta-iteration */

/* The blocks of the layout (hyperopt.h): one per kind, then init scales and meta; the learn
 * bit of each and the coordinate it is learned in. */
typedef struct block {
    size_t lo, hi;
    unsigned bit;
    rv_coord coord;
    const char *name; /* of the coordinate, for messages */
    int kind;         /* the revl_hyper of a kind's block (chain rule), -1 for scales, meta */
} block;
#define MAX_BLOCKS (REVL_HYPER_COUNT + 3)

static size_t blocks_of(const revl_hyperopt *h, block b[MAX_BLOCKS])
{
    size_t n = h->n_sg, g = h->n_groups, nb = 0;
    for (size_t j = 0; j < h->n_kinds; j++) {
        revl_hyper kind = h->opt->kinds[j];
        b[nb++] = (block){j * n, (j + 1) * n, rv_kind_learn_bit(kind), rv_kind_coord(kind),
                          rv_kind_coord_name(kind), (int)kind};
    }
    size_t off = h->n_kinds * n;
    b[nb++] = (block){off, off + g, REVL_LEARN_INIT_SCALE, RV_COORD_AS_IS, "log init scale", -1};
    b[nb++] = (block){off + g, off + g + h->n_meta, REVL_LEARN_META, RV_COORD_AS_IS, "meta", -1};
    if (h->clip_off != SIZE_MAX)
        b[nb++] = (block){h->clip_off, h->clip_off + n, REVL_LEARN_CLIP,
                          rv_kind_coord(REVL_HYPER_CLIP), rv_kind_coord_name(REVL_HYPER_CLIP),
                          REVL_HYPER_CLIP};
    return nb;
}

/* One Adam or momentum-SGD update of the learned coordinates from gradient g (unconstrained
 * coordinates), at the step size in force. */
static void apply_update(revl_hyperopt *h, const double *g)
{
    const revl_hyperopt_options *o = &h->opts;
    block b[MAX_BLOCKS];
    size_t nb = blocks_of(h, b);
    h->adam_t++;
    double s = h->step_size;
    double c1 = 1.0 - pow(o->adam_beta1, (double)h->adam_t);
    double c2 = 1.0 - pow(o->adam_beta2, (double)h->adam_t);
    for (size_t j = 0; j < nb; j++) {
        if (!(o->learn & b[j].bit))
            continue;
        for (size_t k = b[j].lo; k < b[j].hi; k++) {
            double z = rv_to_unconstrained(b[j].coord, h->cur[k]);
            if (o->method == REVL_META_ADAM) {
                h->m1[k] = o->adam_beta1 * h->m1[k] + (1.0 - o->adam_beta1) * g[k];
                h->m2[k] = o->adam_beta2 * h->m2[k] + (1.0 - o->adam_beta2) * g[k] * g[k];
                z -= s * (h->m1[k] / c1) / (sqrt(h->m2[k] / c2) + o->adam_eps);
            } else {
                h->m1[k] = o->momentum * h->m1[k] + g[k];
                z -= s * h->m1[k];
            }
            h->cur[k] = rv_from_unconstrained(b[j].coord, z);
        }
    }
}

/* f(w_T) and its gradients, from the user's objective or the built-in model on `valid`. */
static int objective(revl_hyperopt *h, const double *meta, double *f, double *acc)
{
    *f = NAN;
    *acc = NAN;
    if (h->n_meta)
        memset(h->dfdmeta, 0, h->n_meta * sizeof *h->dfdmeta);
    if (h->opts.objective) {
        int rc = h->opts.objective(h->wT, meta, f, h->dfdw, h->dfdmeta, h->opts.objective_user);
        if (rc)
            return rv_fail(h->err, REVL_ERR_CALLBACK,
                           "objective callback returned %d at meta-iteration %zu", rc,
                           h->iteration);
    } else {
        int rc = revl_model_evaluate(h->model, h->valid, h->wT, f, h->dfdw, acc);
        if (rc)
            return rv_fail(h->err, rc, "validation objective at meta-iteration %zu: %s",
                           h->iteration, revl_model_last_error(h->model));
    }
    if (!isfinite(*f))
        return rv_fail(h->err, REVL_ERR_RANGE,
                       "validation objective is %g at meta-iteration %zu", *f, h->iteration);
    for (size_t i = 0; i < h->n_params; i++)
        if (!isfinite(h->dfdw[i]))
            return rv_fail(h->err, REVL_ERR_RANGE,
                           "gradient of the validation objective is %g at parameter %zu "
                           "(meta-iteration %zu)", h->dfdw[i], i, h->iteration);
    for (size_t j = 0; j < h->n_meta; j++)
        if (!isfinite(h->dfdmeta[j]))
            return rv_fail(h->err, REVL_ERR_RANGE,
                           "meta-gradient of the validation objective is %g at meta[%zu] "
                           "(meta-iteration %zu)", h->dfdmeta[j], j, h->iteration);
    return REVL_OK;
}

/* Train at the current hyperparameters, evaluate f and take the hypergradient into h->grad in
 * unconstrained coordinates; *norm over the learned ones. Changes no hyperparameter. */
static int hypergradient(revl_hyperopt *h, double *f, double *acc, double *train_loss,
                         double *norm)
{
    size_t n = h->n_sg, g = h->n_groups, off = h->n_kinds * n;
    double *alpha = h->cur, *scales = h->cur + off; /* alpha is every optimiser's first kind */
    double *meta = h->n_meta ? h->cur + off + g : NULL;
    if (revl_model_n_groups(h->model) != g)
        return rv_fail(h->err, REVL_ERR_STATE,
                       "the model's groups changed since the hyper-optimiser was made (%zu, now %zu)",
                       g, revl_model_n_groups(h->model));
    /* same count, moved boundaries: init scales (model groups) and the schedule (ours) would
     * no longer describe the same parameters */
    for (size_t k = 1; k < g; k++)
        if (h->model->offsets[k] != h->offsets[k])
            return rv_fail(h->err, REVL_ERR_STATE,
                           "the model's groups changed since the hyper-optimiser was made "
                           "(offsets[%zu] was %zu, now %zu)", k, h->offsets[k],
                           h->model->offsets[k]);
    if (h->opts.learn & REVL_LEARN_ALPHA)
        for (size_t k = 0; k < n; k++)
            if (!(alpha[k] > 0))
                return rv_fail(h->err, REVL_ERR_INVALID,
                               "alpha = %g at step %zu, group %zu: log alpha is learned, so alpha "
                               "must be positive", alpha[k], k / g, k % g);
    int wdk = rv_optim_kind_index(h->opt, REVL_HYPER_WEIGHT_DECAY);
    if ((h->opts.learn & REVL_LEARN_WEIGHT_DECAY) && wdk >= 0) /* log 0 would be -inf */
        for (size_t k = 0; k < n; k++)
            if (!(h->cur[(size_t)wdk * n + k] > 0))
                return rv_fail(h->err, REVL_ERR_INVALID,
                               "weight_decay = %g at step %zu, group %zu: log weight_decay is "
                               "learned, so weight_decay must be positive",
                               h->cur[(size_t)wdk * n + k], k / g, k % g);
    const double *clip = h->clip_off != SIZE_MAX ? h->cur + h->clip_off : NULL;
    for (size_t k = 0; clip && k < n; k++) /* log(+inf) is a coordinate no step can move */
        if (!isfinite(clip[k]))
            return rv_fail(h->err, REVL_ERR_INVALID,
                           "clip = %g at step %zu, group %zu: log clip is learned, so clip must "
                           "be finite (set a starting threshold with revl_hyperopt_set_kind)",
                           clip[k], k / g, k % g);
    int rc = clip ? revl_schedule_set_kind(h->sched, REVL_HYPER_CLIP, clip) : REVL_OK;
    for (size_t j = 0; j < h->n_kinds && !rc; j++)
        rc = revl_schedule_set_kind(h->sched, h->opt->kinds[j], h->cur + j * n);
    if (rc)
        return rv_fail(h->err, rc, "schedule: %s", revl_schedule_last_error(h->sched));
    /* fresh_seed changes the init noise only: a built-in model's minibatch order is fixed at
     * its creation and a callback model sees only the step index */
    uint64_t seed = h->opts.seed + (h->opts.fresh_seed ? (uint64_t)h->iteration : 0);
    rc = revl_model_init_weights(h->model, scales, seed, h->w0);
    if (rc)
        return rv_fail(h->err, rc, "initial weights at meta-iteration %zu: %s", h->iteration,
                       revl_model_last_error(h->model));
    rc = revl_trainer_train(h->trainer, h->w0, meta);
    if (rc)
        return rv_fail(h->err, rc, "training at meta-iteration %zu: %s", h->iteration,
                       revl_trainer_last_error(h->trainer));
    revl_trainer_weights(h->trainer, h->wT);
    revl_trainer_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    revl_trainer_get_stats(h->trainer, &st);
    *train_loss = st.last_loss;
    rc = objective(h, meta, f, acc);
    if (rc)
        return rc;
    double *d_kinds[REVL_HYPER_COUNT] = {0}, *d_scales = h->grad + off;
    double *d_meta = h->n_meta ? h->grad + off + g : NULL;
    for (size_t j = 0; j < h->n_kinds; j++)
        d_kinds[h->opt->kinds[j]] = h->grad + j * n;
    if (clip)
        d_kinds[REVL_HYPER_CLIP] = h->grad + h->clip_off;
    rc = revl_trainer_hypergrad_kinds_n(h->trainer, h->dfdw, meta ? h->dfdmeta : NULL, h->d_w0,
                                        REVL_HYPER_COUNT, d_kinds, d_meta);
    if (rc)
        return rv_fail(h->err, rc, "hypergradient at meta-iteration %zu: %s", h->iteration,
                       revl_trainer_last_error(h->trainer));
    rc = revl_model_init_scales_grad(h->model, h->w0, h->d_w0, d_scales);
    if (rc)
        return rv_fail(h->err, rc, "init scale gradient: %s", revl_model_last_error(h->model));
    /* chain rule to the unconstrained coordinates (log: x; logit: x (1 - x)), rates as the
     * trainer applied them */
    block b[MAX_BLOCKS];
    size_t nb = blocks_of(h, b);
    for (size_t j = 0; j < nb; j++) {
        if (b[j].kind < 0)
            continue;
        for (size_t k = b[j].lo; k < b[j].hi; k++) {
            double x = revl_hyper_applied((revl_hyper)b[j].kind, h->cur[k]);
            h->grad[k] *= rv_coord_dnatural(b[j].coord, x);
        }
    }
    double sq = 0;
    for (size_t j = 0; j < nb; j++) {
        if (!(h->opts.learn & b[j].bit))
            continue;
        for (size_t k = b[j].lo; k < b[j].hi; k++) {
            if (!isfinite(h->grad[k]))
                return rv_fail(h->err, REVL_ERR_RANGE,
                               "hypergradient is %g at coordinate %zu of the %s block "
                               "(meta-iteration %zu)", h->grad[k], k - b[j].lo, b[j].name,
                               h->iteration);
            sq += h->grad[k] * h->grad[k];
        }
    }
    *norm = sqrt(sq);
    if (!isfinite(*norm))
        return rv_fail(h->err, REVL_ERR_RANGE,
                       "hypergradient norm overflows at meta-iteration %zu", h->iteration);
    return REVL_OK;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

/* The chaos guard fired: do not apply this update. SHRINK halves the step and, when it can,
 * returns to the point before the previous update and takes that update again at the new
 * step: the previous step is what led here, and with a fixed seed the same hyperparameters
 * would give the same exploding gradient on every later iteration. */
static void chaos(revl_hyperopt *h, double norm)
{
    double lim = h->opts.chaos_factor;
    if (h->opts.chaos_action == REVL_CHAOS_STOP) {
        rv_fail(h->err, REVL_OK,
                "chaos guard: hypergradient norm %.6g > %g x running minimum %.6g at iteration "
                "%zu; stopped without applying this update", norm, lim, h->min_norm,
                h->iteration);
        return;
    }
    h->step_size *= 0.5;
    if (h->have_prev) {
        memcpy(h->cur, h->prev, h->n_theta * sizeof *h->cur);
        memcpy(h->m1, h->prev_m1, h->n_theta * sizeof *h->m1);
        memcpy(h->m2, h->prev_m2, h->n_theta * sizeof *h->m2);
        h->adam_t = h->prev_adam_t;
        apply_update(h, h->prev_grad);
    }
    rv_fail(h->err, REVL_OK,
            "chaos guard: hypergradient norm %.6g > %g x running minimum %.6g at iteration %zu; "
            "step halved to %g%s", norm, lim, h->min_norm, h->iteration, h->step_size,
            h->have_prev ? "; update discarded, previous update retaken at the new step"
                         : "; update discarded");
}

int revl_hyperopt_step(revl_hyperopt *h, revl_hyperopt_report *report)
{
    if (!h)
        return REVL_ERR_INVALID;
    if (report && rv_struct_size_check(h->err, RV_STRUCT_HYPEROPT_REPORT, report->struct_size))
        return REVL_ERR_INVALID;
    if (h->in_step)
        return rv_fail(h->err, REVL_ERR_STATE,
                       "revl_hyperopt_step called during meta-iteration %zu (from the objective "
                       "callback?)", h->iteration);
    rv_clear(h->err);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double f = NAN, acc = NAN, train_loss = NAN, norm = 0;
    h->in_step = 1;
    int rc = hypergradient(h, &f, &acc, &train_loss, &norm);
    h->in_step = 0;
    if (rc)
        return rc;
    /* a first run that learned nothing usually means a starting point that cannot learn: say
     * so instead of letting the meta-optimiser wander from there */
    double chance = h->model->builtin.chance_loss;
    if (h->iteration == 0 && chance > 0 && !(train_loss < chance))
        rv_fail(h->err, REVL_OK,
                "warning: training loss %.4g after meta-iteration 0 is no better than chance "
                "(%.4g, the log of the number of classes): check the starting hyperparameters "
                "(alpha, init scales, and meta: a log L2 of 0 is lambda = 1)", train_loss, chance);
    /* the loss belongs to the hyperparameters that produced it, i.e. those before the update */
    if (f < h->best_loss) {
        h->best_loss = f;
        h->have_best = 1;
        memcpy(h->best, h->cur, h->n_theta * sizeof *h->best);
    }
    /* a running minimum of exactly 0 (nothing learned, or a stationary point) gives no scale */
    int fired = h->opts.chaos_factor > 0 && h->min_norm > 0 && isfinite(h->min_norm) &&
                norm > h->opts.chaos_factor * h->min_norm;
    if (fired) {
        chaos(h, norm);
    } else {
        h->min_norm = fmin(h->min_norm, norm);
        size_t bytes = h->n_theta * sizeof(double);
        memcpy(h->prev, h->cur, bytes);
        memcpy(h->prev_m1, h->m1, bytes);
        memcpy(h->prev_m2, h->m2, bytes);
        memcpy(h->prev_grad, h->grad, bytes);
        h->prev_adam_t = h->adam_t;
        h->have_prev = 1;
        apply_update(h, h->grad);
    }
    if (report) {
        report->iteration = h->iteration;
        report->train_loss = train_loss;
        report->valid_loss = f;
        report->valid_accuracy = h->opts.objective ? NAN : acc;
        report->hypergrad_norm = norm;
        report->step_size = h->step_size;
        report->chaos = fired;
        report->seconds = seconds_since(&t0);
    }
    h->iteration++;
    return REVL_OK;
}

int revl_hyperopt_run(revl_hyperopt *h)
{
    if (!h)
        return REVL_ERR_INVALID;
    rv_clear(h->err);
    /* each step clears the message; keep the last chaos note so that it survives the run */
    char note[RV_ERRLEN] = "";
    for (size_t i = 0; i < h->opts.iterations; i++) {
        revl_hyperopt_report r;
        memset(&r, 0, sizeof r);
        r.struct_size = sizeof r;
        int rc = revl_hyperopt_step(h, &r);
        if (rc)
            return rc;
        if (r.chaos || (r.iteration == 0 && !strncmp(h->err, "warning:", 8)))
            memcpy(note, h->err, sizeof note);
        if (h->opts.report && h->opts.report(&r, h->opts.report_user)) {
            rv_fail(h->err, REVL_OK, "run stopped by the report callback after meta-iteration %zu",
                    r.iteration);
            return REVL_OK;
        }
        if (r.chaos && h->opts.chaos_action == REVL_CHAOS_STOP)
            return REVL_OK;
    }
    memcpy(h->err, note, sizeof note);
    return REVL_OK;
}
