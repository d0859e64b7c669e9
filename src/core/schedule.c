/* schedule.c: the hyperparameters of one optimiser per (step, group), one step-major array per
 * kind the optimiser has, validated when set, so that the trainer can trust every value it
 * reads. The alpha/gamma calls of revl 0.1 work on every schedule that has both kinds. */
#include "core/trainer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct revl_schedule {
    revl_allocator alloc;
    const rv_optim *opt;
    size_t n_steps, n_groups;
    size_t *offsets;
    double *values[REVL_HYPER_COUNT]; /* n_steps*n_groups, step-major; NULL for absent kinds */
    char err[RV_ERRLEN];
};

double revl_gamma_applied(double gamma)
{
    return revl_hyper_applied(REVL_HYPER_GAMMA, gamma);
}

/* REVL_OK, or REVL_ERR_INVALID with "<prefix><problem><suffix>" in err. */
static int check_value(char *err, revl_hyper kind, double v, const char *prefix, size_t step,
                       size_t group)
{
    char why[128];
    if (!rv_hyper_problem(kind, v, why, sizeof why))
        return REVL_OK;
    if (prefix)
        return rv_fail(err, REVL_ERR_INVALID, "%s%s", prefix, why);
    return rv_fail(err, REVL_ERR_INVALID, "%s at step %zu, group %zu", why, step, group);
}

/* The array of a kind, or NULL with a message when the schedule does not have it. */
static double *kind_array(const revl_schedule *s, char *err, revl_hyper kind, const char *fn)
{
    double *a = (unsigned)kind < REVL_HYPER_COUNT ? s->values[kind] : NULL;
    if (!a) {
        const char *name = revl_hyper_name(kind);
        if (name)
            rv_fail(err, REVL_ERR_INVALID, "%s: this %s schedule has no %s", fn, s->opt->name, name);
        else
            rv_fail(err, REVL_ERR_INVALID, "%s: unknown hyperparameter kind %d", fn, (int)kind);
    }
    return a;
}

static int schedule_create(revl_schedule **out, revl_optimizer optimizer, size_t n_steps,
                             size_t n_groups, const size_t *offsets, const revl_allocator *allocator);

int revl_schedule_create_for(revl_schedule **out, revl_optimizer optimizer, size_t n_steps,
                             size_t n_groups, const size_t *offsets, const revl_allocator *allocator)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(schedule_create(out, optimizer, n_steps, n_groups, offsets, allocator), "revl_schedule_create_for");
}

static int schedule_create(revl_schedule **out, revl_optimizer optimizer, size_t n_steps,
                             size_t n_groups, const size_t *offsets, const revl_allocator *allocator)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    const rv_optim *opt = rv_optim_get(optimizer);
    if (!opt || n_steps == 0 || rv_check_offsets(NULL, n_groups, offsets, 0) != REVL_OK)
        return REVL_ERR_INVALID;
    int ok = 1;
    size_t n = rv_mul_size(n_steps, n_groups, &ok);
    if (!ok)
        return REVL_ERR_INVALID;
    revl_allocator a;
    rv_allocator_copy(&a, allocator);
    revl_schedule *s = rv_calloc(&a, 1, sizeof *s);
    if (!s)
        return REVL_ERR_NOMEM;
    s->alloc = a;
    s->opt = opt;
    s->n_steps = n_steps;
    s->n_groups = n_groups;
    s->offsets = rv_calloc(&a, n_groups + 1, sizeof *s->offsets);
    int rc = s->offsets ? REVL_OK : REVL_ERR_NOMEM;
    for (size_t k = 0; k < opt->n_kinds && !rc; k++)
        if (!(s->values[opt->kinds[k]] = rv_calloc(&a, n, sizeof(double))))
            rc = REVL_ERR_NOMEM;
    /* the driver's kind, in every schedule (trainer.h: rv_clip_*) */
    if (!rc && !(s->values[REVL_HYPER_CLIP] = rv_calloc(&a, n, sizeof(double))))
        rc = REVL_ERR_NOMEM;
    if (rc) {
        revl_schedule_free(s);
        return rc;
    }
    memcpy(s->offsets, offsets, (n_groups + 1) * sizeof *offsets);
    for (size_t k = 0; k < opt->n_kinds; k++)
        revl_schedule_fill_kind(s, opt->kinds[k], opt->defaults[k]);
    revl_schedule_fill_kind(s, REVL_HYPER_CLIP, INFINITY);
    *out = s;
    return REVL_OK;
}

int revl_schedule_create_with(revl_schedule **out, size_t n_steps, size_t n_groups,
                              const size_t *offsets, const revl_allocator *allocator)
{
    return revl_schedule_create_for(out, REVL_OPTIM_MOMENTUM, n_steps, n_groups, offsets,
                                    allocator);
}

int revl_schedule_create(revl_schedule **out, size_t n_steps, size_t n_groups,
                         const size_t *offsets)
{
    return revl_schedule_create_for(out, REVL_OPTIM_MOMENTUM, n_steps, n_groups, offsets, NULL);
}

void revl_schedule_free(revl_schedule *s)
{
    if (!s)
        return;
    revl_allocator a = s->alloc;
    rv_free(&a, s->offsets);
    for (size_t k = 0; k < REVL_HYPER_COUNT; k++)
        rv_free(&a, s->values[k]);
    rv_free(&a, s);
}

revl_optimizer revl_schedule_optimizer(const revl_schedule *s)
{
    return s ? s->opt->id : REVL_OPTIM_MOMENTUM;
}

size_t revl_schedule_kinds(const revl_schedule *s, revl_hyper *kinds)
{
    if (!s)
        return 0;
    if (kinds)
        memcpy(kinds, s->opt->kinds, s->opt->n_kinds * sizeof *kinds);
    return s->opt->n_kinds;
}

int revl_schedule_fill_kind(revl_schedule *s, revl_hyper kind, double value)
{
    if (!s)
        return REVL_ERR_INVALID;
    double *a = kind_array(s, s->err, kind, "revl_schedule_fill_kind");
    if (!a)
        return REVL_ERR_INVALID;
    int rc = check_value(s->err, kind, value, "revl_schedule_fill_kind: ", 0, 0);
    if (rc)
        return rc;
    for (size_t k = 0; k < s->n_steps * s->n_groups; k++)
        a[k] = value;
    return REVL_OK;
}

int revl_schedule_set_kind(revl_schedule *s, revl_hyper kind, const double *values)
{
    if (!s)
        return REVL_ERR_INVALID;
    double *a = kind_array(s, s->err, kind, "revl_schedule_set_kind");
    if (!a)
        return REVL_ERR_INVALID;
    if (!values)
        return rv_fail(s->err, REVL_ERR_INVALID, "revl_schedule_set_kind: values is NULL");
    size_t n = s->n_steps * s->n_groups;
    for (size_t k = 0; k < n; k++) {
        int rc = check_value(s->err, kind, values[k], NULL, k / s->n_groups, k % s->n_groups);
        if (rc)
            return rc;
    }
    memcpy(a, values, n * sizeof *values);
    return REVL_OK;
}

int revl_schedule_get_kind(const revl_schedule *s, revl_hyper kind, double *values)
{
    if (!s || !values)
        return REVL_ERR_INVALID;
    char err[RV_ERRLEN];
    const double *a = kind_array(s, err, kind, "revl_schedule_get_kind");
    if (!a)
        return REVL_ERR_INVALID;
    memcpy(values, a, s->n_steps * s->n_groups * sizeof *values);
    return REVL_OK;
}

/* ---- the alpha/gamma calls of revl 0.1 */

static int need_alpha_gamma(revl_schedule *s, const char *fn)
{
    if (s->values[REVL_HYPER_ALPHA] && s->values[REVL_HYPER_GAMMA])
        return REVL_OK;
    return rv_fail(s->err, REVL_ERR_INVALID,
                   "%s: this %s schedule has no gamma; use revl_schedule_set_kind / get_kind", fn,
                   s->opt->name);
}

int revl_schedule_fill(revl_schedule *s, double alpha, double gamma)
{
    if (!s)
        return REVL_ERR_INVALID;
    int rc = need_alpha_gamma(s, "revl_schedule_fill");
    if (!rc)
        rc = check_value(s->err, REVL_HYPER_ALPHA, alpha, "revl_schedule_fill: ", 0, 0);
    if (!rc)
        rc = check_value(s->err, REVL_HYPER_GAMMA, gamma, "revl_schedule_fill: ", 0, 0);
    if (rc)
        return rc;
    for (size_t k = 0; k < s->n_steps * s->n_groups; k++) {
        s->values[REVL_HYPER_ALPHA][k] = alpha;
        s->values[REVL_HYPER_GAMMA][k] = gamma;
    }
    return REVL_OK;
}

int revl_schedule_set(revl_schedule *s, size_t step, size_t group, double alpha, double gamma)
{
    if (!s)
        return REVL_ERR_INVALID;
    int rc = need_alpha_gamma(s, "revl_schedule_set");
    if (rc)
        return rc;
    if (step >= s->n_steps || group >= s->n_groups)
        return rv_fail(s->err, REVL_ERR_INVALID,
                       "step %zu, group %zu outside the schedule (%zu steps, %zu groups)", step,
                       group, s->n_steps, s->n_groups);
    rc = check_value(s->err, REVL_HYPER_ALPHA, alpha, NULL, step, group);
    if (!rc)
        rc = check_value(s->err, REVL_HYPER_GAMMA, gamma, NULL, step, group);
    if (rc)
        return rc;
    s->values[REVL_HYPER_ALPHA][step * s->n_groups + group] = alpha;
    s->values[REVL_HYPER_GAMMA][step * s->n_groups + group] = gamma;
    return REVL_OK;
}

int revl_schedule_set_all(revl_schedule *s, const double *alpha, const double *gamma)
{
    if (!s)
        return REVL_ERR_INVALID;
    int rc = need_alpha_gamma(s, "revl_schedule_set_all");
    if (rc)
        return rc;
    size_t n = s->n_steps * s->n_groups;
    for (size_t k = 0; k < n; k++) {
        rc = check_value(s->err, REVL_HYPER_ALPHA, alpha ? alpha[k] : 0.0, NULL, k / s->n_groups,
                         k % s->n_groups);
        if (!rc)
            rc = check_value(s->err, REVL_HYPER_GAMMA, gamma ? gamma[k] : 1.0, NULL,
                             k / s->n_groups, k % s->n_groups);
        if (rc)
            return rc;
    }
    if (alpha)
        memcpy(s->values[REVL_HYPER_ALPHA], alpha, n * sizeof *alpha);
    if (gamma)
        memcpy(s->values[REVL_HYPER_GAMMA], gamma, n * sizeof *gamma);
    return REVL_OK;
}

int revl_schedule_get_all(const revl_schedule *s, double *alpha, double *gamma)
{
    if (!s)
        return REVL_ERR_INVALID;
    size_t n = s->n_steps * s->n_groups;
    if ((alpha && !s->values[REVL_HYPER_ALPHA]) || (gamma && !s->values[REVL_HYPER_GAMMA]))
        return REVL_ERR_INVALID;
    if (alpha)
        memcpy(alpha, s->values[REVL_HYPER_ALPHA], n * sizeof *alpha);
    if (gamma)
        memcpy(gamma, s->values[REVL_HYPER_GAMMA], n * sizeof *gamma);
    return REVL_OK;
}

int revl_schedule_offsets(const revl_schedule *s, size_t *offsets)
{
    if (!s || !offsets)
        return REVL_ERR_INVALID;
    memcpy(offsets, s->offsets, (s->n_groups + 1) * sizeof *offsets);
    return REVL_OK;
}

const double *rv_schedule_values(const revl_schedule *s, revl_hyper kind)
{
    return s->values[kind];
}

const rv_optim *rv_schedule_optim(const revl_schedule *s)
{
    return s->opt;
}

size_t revl_schedule_n_steps(const revl_schedule *s) { return s ? s->n_steps : 0; }
size_t revl_schedule_n_groups(const revl_schedule *s) { return s ? s->n_groups : 0; }
const char *revl_schedule_last_error(const revl_schedule *s) { return s ? s->err : "schedule is NULL"; }
