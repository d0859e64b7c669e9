/* schedule.c: alpha and gamma per (step, group), validated when set, so that the trainer can
 * trust every value it reads. */
#include "core/model.h"

#include <math.h>
#include <string.h>

struct revl_schedule {
    revl_allocator alloc;
    size_t n_steps, n_groups;
    size_t *offsets;
    double *alpha, *gamma; /* n_steps*n_groups, step-major */
    char err[RV_ERRLEN];
};

double revl_gamma_applied(double gamma)
{
    if (!(gamma >= 0x1p-16 && gamma <= 1.0))
        return NAN;
    return nearbyint(gamma * 65536.0) / 65536.0;
}

static int check_pair(char *err, size_t step, size_t group, double alpha, double gamma)
{
    if (!isfinite(alpha))
        return rv_fail(err, REVL_ERR_INVALID, "alpha is not finite at step %zu, group %zu", step,
                       group);
    if (!(gamma >= 0x1p-16 && gamma <= 1.0))
        return rv_fail(err, REVL_ERR_INVALID,
                       "gamma = %g outside [2^-16, 1] at step %zu, group %zu", gamma, step, group);
    return REVL_OK;
}

int revl_schedule_create_with(revl_schedule **out, size_t n_steps, size_t n_groups,
                              const size_t *offsets, const revl_allocator *allocator)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    if (n_steps == 0 || rv_check_offsets(NULL, n_groups, offsets, 0) != REVL_OK)
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
    s->n_steps = n_steps;
    s->n_groups = n_groups;
    s->offsets = rv_calloc(&a, n_groups + 1, sizeof *s->offsets);
    s->alpha = rv_calloc(&a, n, sizeof *s->alpha);
    s->gamma = rv_calloc(&a, n, sizeof *s->gamma);
    if (!s->offsets || !s->alpha || !s->gamma) {
        revl_schedule_free(s);
        return REVL_ERR_NOMEM;
    }
    memcpy(s->offsets, offsets, (n_groups + 1) * sizeof *offsets);
    revl_schedule_fill(s, 0.1, 0.9);
    *out = s;
    return REVL_OK;
}

int revl_schedule_create(revl_schedule **out, size_t n_steps, size_t n_groups,
                         const size_t *offsets)
{
    return revl_schedule_create_with(out, n_steps, n_groups, offsets, NULL);
}

void revl_schedule_free(revl_schedule *s)
{
    if (!s)
        return;
    revl_allocator a = s->alloc;
    rv_free(&a, s->offsets);
    rv_free(&a, s->alpha);
    rv_free(&a, s->gamma);
    rv_free(&a, s);
}

int revl_schedule_fill(revl_schedule *s, double alpha, double gamma)
{
    if (!s)
        return REVL_ERR_INVALID;
    if (!isfinite(alpha))
        return rv_fail(s->err, REVL_ERR_INVALID, "revl_schedule_fill: alpha is not finite");
    if (!(gamma >= 0x1p-16 && gamma <= 1.0))
        return rv_fail(s->err, REVL_ERR_INVALID,
                       "revl_schedule_fill: gamma = %g outside [2^-16, 1]", gamma);
    for (size_t k = 0; k < s->n_steps * s->n_groups; k++) {
        s->alpha[k] = alpha;
        s->gamma[k] = gamma;
    }
    return REVL_OK;
}

int revl_schedule_set(revl_schedule *s, size_t step, size_t group, double alpha, double gamma)
{
    if (!s)
        return REVL_ERR_INVALID;
    if (step >= s->n_steps || group >= s->n_groups)
        return rv_fail(s->err, REVL_ERR_INVALID,
                       "step %zu, group %zu outside the schedule (%zu steps, %zu groups)", step,
                       group, s->n_steps, s->n_groups);
    int rc = check_pair(s->err, step, group, alpha, gamma);
    if (rc)
        return rc;
    s->alpha[step * s->n_groups + group] = alpha;
    s->gamma[step * s->n_groups + group] = gamma;
    return REVL_OK;
}

int revl_schedule_set_all(revl_schedule *s, const double *alpha, const double *gamma)
{
    if (!s)
        return REVL_ERR_INVALID;
    size_t n = s->n_steps * s->n_groups;
    for (size_t k = 0; k < n; k++) {
        int rc = check_pair(s->err, k / s->n_groups, k % s->n_groups, alpha ? alpha[k] : 0.0,
                            gamma ? gamma[k] : 1.0);
        if (rc)
            return rc;
    }
    if (alpha)
        memcpy(s->alpha, alpha, n * sizeof *alpha);
    if (gamma)
        memcpy(s->gamma, gamma, n * sizeof *gamma);
    return REVL_OK;
}

int revl_schedule_get_all(const revl_schedule *s, double *alpha, double *gamma)
{
    if (!s)
        return REVL_ERR_INVALID;
    size_t n = s->n_steps * s->n_groups;
    if (alpha)
        memcpy(alpha, s->alpha, n * sizeof *alpha);
    if (gamma)
        memcpy(gamma, s->gamma, n * sizeof *gamma);
    return REVL_OK;
}

int revl_schedule_offsets(const revl_schedule *s, size_t *offsets)
{
    if (!s || !offsets)
        return REVL_ERR_INVALID;
    memcpy(offsets, s->offsets, (s->n_groups + 1) * sizeof *offsets);
    return REVL_OK;
}

void rv_schedule_arrays(const revl_schedule *s, const double **alpha, const double **gamma)
{
    *alpha = s->alpha;
    *gamma = s->gamma;
}

size_t revl_schedule_n_steps(const revl_schedule *s) { return s ? s->n_steps : 0; }
size_t revl_schedule_n_groups(const revl_schedule *s) { return s ? s->n_groups : 0; }
const char *revl_schedule_last_error(const revl_schedule *s) { return s ? s->err : "schedule is NULL"; }
