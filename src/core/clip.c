/* clip.c: gradient clipping by global norm, the driver's hyperparameter of every optimiser
 * (REVL_HYPER_CLIP, tau per step and group), as torch.nn.utils.clip_grad_norm_:
 *   n = ||g||_2 over all parameters,  c_k = min(1, tau_k / (n + 1e-6)),  g_i <- c_k g_i (i in k).
 * The clip is a deterministic function of the gradient at the known w_t, so the reverse pass
 * recomputes the same bits and stays exact. Its adjoint (ubar: the adjoint of the clipped
 * gradient; K: the groups with c_k < 1, where c_k = tau_k / (n + 1e-6)):
 *   a_i = c_k ubar_i - g_i / (n (n + 1e-6)) sum_{k in K} c_k S_k,   S_k = sum_{j in k} ubar_j g_j,
 *   d f / d tau_k = S_k / (n + 1e-6) for k in K, 0 otherwise.
 * The Hessian-vector product must then be taken along a, which needs the gradient first: a
 * step with a finite tau has the model call the driver back between the gradient and the
 * product (rv_model_hvp_dir: one pass for the built-in MLP, two calls for other models); a
 * step without one costs nothing more. The sums run over the parameters in index order on one thread: the
 * same bits for any thread count. */
#include "core/trainer.h"

#include <math.h>
#include <string.h>

/* torch's clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1 */
#define RV_CLIP_EPS 1e-6

/* A finite tau at step of the schedule's array. */
static int any_finite(const double *tau, size_t step, size_t n_groups)
{
    tau += step * n_groups;
    for (size_t g = 0; g < n_groups; g++)
        if (!isinf(tau[g]))
            return 1;
    return 0;
}

int rv_clip_active(const revl_trainer *t, size_t step)
{
    return t->clip_on && any_finite(t->clip_tau, step, t->n_groups);
}

int rv_clip_in_schedule(const revl_trainer *t)
{
    const double *tau = rv_schedule_values(t->sched, REVL_HYPER_CLIP);
    for (size_t step = 0; step < t->n_steps; step++)
        if (any_finite(tau, step, t->n_groups))
            return 1;
    return 0;
}

int rv_clip_check(revl_trainer *t)
{
    t->clip_on = 0;
    if (!rv_clip_in_schedule(t))
        return REVL_OK;
    if (t->sharded)
        return rv_fail(t->err, REVL_ERR_INVALID,
                       "%s: gradient clipping (a finite clip) is not supported on a sharded "
                       "trainer (revl_trainer_create_sharded); use a data-parallel model",
                       t->busy);
    if (!t->clip_raw) {
        t->clip_raw = rv_calloc(&t->alloc, t->n_params, sizeof *t->clip_raw);
        t->clip_dir = rv_calloc(&t->alloc, t->n_params, sizeof *t->clip_dir);
        t->clip_c = rv_calloc(&t->alloc, t->n_groups, sizeof *t->clip_c);
        t->clip_tau = rv_calloc(&t->alloc, t->n_steps * t->n_groups, sizeof *t->clip_tau);
        if (!t->clip_raw || !t->clip_dir || !t->clip_c || !t->clip_tau) {
            rv_free(&t->alloc, t->clip_raw);
            rv_free(&t->alloc, t->clip_dir);
            rv_free(&t->alloc, t->clip_c);
            rv_free(&t->alloc, t->clip_tau);
            t->clip_raw = t->clip_dir = t->clip_c = t->clip_tau = NULL;
            return rv_fail(t->err, REVL_ERR_NOMEM, "no memory for gradient clipping");
        }
        t->fixed_bytes += (2 * t->n_params + t->n_groups + t->n_steps * t->n_groups) *
                          sizeof(double); /* in the stats' peak from now on */
    }
    /* the values trained with, as the optimiser's constants: a later change of the schedule
     * does not reach the reverse pass */
    memcpy(t->clip_tau, rv_schedule_values(t->sched, REVL_HYPER_CLIP),
           t->n_steps * t->n_groups * sizeof *t->clip_tau);
    t->clip_on = 1;
    return REVL_OK;
}

void rv_clip_grad(revl_trainer *t, size_t step)
{
    const double *tau = t->clip_tau + step * t->n_groups;
    double sq = 0;
    for (size_t i = 0; i < t->n_params; i++)
        sq += t->grad[i] * t->grad[i];
    t->clip_norm = sqrt(sq);
    for (size_t g = 0; g < t->n_groups; g++) {
        double c = tau[g] / (t->clip_norm + RV_CLIP_EPS);
        t->clip_c[g] = c < 1 ? c : 1;
        if (c < 1)
            for (size_t i = t->offsets_all[g]; i < t->offsets_all[g + 1]; i++)
                t->grad[i] *= c;
    }
}

void rv_clip_adjoint(revl_trainer *t, const double *v, const double *g, double *d_tau)
{
    double n = t->clip_norm, ne = n + RV_CLIP_EPS, rank = 0;
    for (size_t k = 0; k < t->n_groups; k++) {
        double c = t->clip_c[k];
        if (c < 1) {
            double s = 0; /* sum v_j g_j = -S_k (v = -ubar) */
            for (size_t i = t->offsets_all[k]; i < t->offsets_all[k + 1]; i++)
                s += v[i] * g[i];
            rank += c * s;
            if (d_tau)
                d_tau[k] -= s / ne;
        }
        for (size_t i = t->offsets_all[k]; i < t->offsets_all[k + 1]; i++)
            t->clip_dir[i] = c < 1 ? c * v[i] : v[i];
    }
    /* n = 0 only with g = 0, where the term is 0 */
    double f = n > 0 ? rank / (n * ne) : 0;
    if (f != 0)
        for (size_t i = 0; i < t->n_params; i++)
            t->clip_dir[i] -= g[i] * f;
}
